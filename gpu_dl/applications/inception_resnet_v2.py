"""InceptionResNetV2 (Szegedy et al., 2017), as Keras 3.15's ``keras.applications.inception_resnet_v2`` builds it:
the same layers, layer names, configs and weight shapes, so weights move between the two (Keras 3 files, and
Keras's ImageNet files in the Keras 2 HDF5 format).

Each residual block adds its branch, scaled, to its input with ``CustomScaleLayer``, Keras's layer of this module
(its files name it so, and gpu_dl reads and writes it under that name).

Images are channels_last (gpu_dl's only layout); inputs are at least 75x75 (299x299 by default).
"""
from __future__ import annotations

import numbers

from .. import layers
from . import imagenet_utils
from ._common import check_arguments, finish, head, weights_file

_CHANNEL_AXIS = 3


class CustomScaleLayer(layers.Layer):
    """``inputs[0] + inputs[1] * scale`` for a list of two tensors of one shape: the shortcut plus the scaled
    residual branch. Its call is traced (gpu_dl's composite layers), which gives its gradients."""

    keras_module = "keras.src.applications.inception_resnet_v2"

    def __init__(self, scale, **kwargs):
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise TypeError(f"CustomScaleLayer: `scale` must be a number, got {scale!r}.")
        super().__init__(**kwargs)
        self.scale = scale

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale})
        return config

    def call(self, inputs):
        return inputs[0] + inputs[1] * self.scale


def conv2d_bn(x, filters, kernel_size, strides=1, padding="same", activation="relu", use_bias=False, name=None):
    """Conv2D, then (without a bias) BatchNormalization without scale, then the activation; named ``name``,
    ``name_bn`` and ``name_ac`` (Keras's numbered names where ``name`` is None)."""
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias, name=name)(x)
    if not use_bias:
        x = layers.BatchNormalization(axis=_CHANNEL_AXIS, scale=False, name=None if name is None else f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=None if name is None else f"{name}_ac")(x)
    return x


def inception_resnet_block(x, scale, block_type, block_idx, activation="relu"):
    """One Inception-ResNet block of ``block_type`` ("block35", "block17" or "block8"): its branches
    concatenated, a 1x1 convolution back to the input's channels, added to the input times ``scale``."""
    if block_type == "block35":
        branch_0 = conv2d_bn(x, 32, 1)
        branch_1 = conv2d_bn(x, 32, 1)
        branch_1 = conv2d_bn(branch_1, 32, 3)
        branch_2 = conv2d_bn(x, 32, 1)
        branch_2 = conv2d_bn(branch_2, 48, 3)
        branch_2 = conv2d_bn(branch_2, 64, 3)
        branches = [branch_0, branch_1, branch_2]
    elif block_type == "block17":
        branch_0 = conv2d_bn(x, 192, 1)
        branch_1 = conv2d_bn(x, 128, 1)
        branch_1 = conv2d_bn(branch_1, 160, [1, 7])
        branch_1 = conv2d_bn(branch_1, 192, [7, 1])
        branches = [branch_0, branch_1]
    elif block_type == "block8":
        branch_0 = conv2d_bn(x, 192, 1)
        branch_1 = conv2d_bn(x, 192, 1)
        branch_1 = conv2d_bn(branch_1, 224, [1, 3])
        branch_1 = conv2d_bn(branch_1, 256, [3, 1])
        branches = [branch_0, branch_1]
    else:
        raise ValueError(f"Unknown Inception-ResNet block type. Expects 'block35', 'block17' or 'block8', but got: "
                         f"{block_type!r}")
    block_name = f"{block_type}_{block_idx}"
    mixed = layers.Concatenate(axis=_CHANNEL_AXIS, name=f"{block_name}_mixed")(branches)
    up = conv2d_bn(mixed, x.shape[_CHANNEL_AXIS], 1, activation=None, use_bias=True, name=f"{block_name}_conv")
    x = CustomScaleLayer(scale)([x, up])
    if activation is not None:
        x = layers.Activation(activation, name=f"{block_name}_ac")(x)
    return x


def InceptionResNetV2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name="inception_resnet_v2"):
    """InceptionResNetV2 (Keras's ``keras.applications.InceptionResNetV2``): inputs preprocessed by
    ``inception_resnet_v2.preprocess_input`` (scaled to -1..1).

    ``weights``: None (random), "imagenet" (Keras's
    ``inception_resnet_v2_weights_tf_dim_ordering_tf_kernels[_notop].h5`` found on this machine: see
    ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape`` (height, width, 3) with sides of
    at least 75 (the top needs (299, 299, 3) with imagenet weights); ``pooling`` None, "avg" or "max" without
    the top.
    """
    fn_name = "InceptionResNetV2"
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=299, min_size=75)
    suffix = "" if include_top else "_notop"
    path = weights_file(fn_name, weights, f"inception_resnet_v2_weights_tf_dim_ordering_tf_kernels{suffix}.h5",
                        "inception_resnet_v2")
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    # Stem.
    x = conv2d_bn(img_input, 32, 3, strides=2, padding="valid")
    x = conv2d_bn(x, 32, 3, padding="valid")
    x = conv2d_bn(x, 64, 3)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = conv2d_bn(x, 80, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, padding="valid")
    x = layers.MaxPooling2D(3, strides=2)(x)
    # Mixed 5b (Inception-A).
    branch_0 = conv2d_bn(x, 96, 1)
    branch_1 = conv2d_bn(x, 48, 1)
    branch_1 = conv2d_bn(branch_1, 64, 5)
    branch_2 = conv2d_bn(x, 64, 1)
    branch_2 = conv2d_bn(branch_2, 96, 3)
    branch_2 = conv2d_bn(branch_2, 96, 3)
    branch_pool = layers.AveragePooling2D(3, strides=1, padding="same")(x)
    branch_pool = conv2d_bn(branch_pool, 64, 1)
    x = layers.Concatenate(axis=_CHANNEL_AXIS, name="mixed_5b")([branch_0, branch_1, branch_2, branch_pool])
    for block_idx in range(1, 11):
        x = inception_resnet_block(x, scale=0.17, block_type="block35", block_idx=block_idx)
    # Mixed 6a (Reduction-A).
    branch_0 = conv2d_bn(x, 384, 3, strides=2, padding="valid")
    branch_1 = conv2d_bn(x, 256, 1)
    branch_1 = conv2d_bn(branch_1, 256, 3)
    branch_1 = conv2d_bn(branch_1, 384, 3, strides=2, padding="valid")
    branch_pool = layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = layers.Concatenate(axis=_CHANNEL_AXIS, name="mixed_6a")([branch_0, branch_1, branch_pool])
    for block_idx in range(1, 21):
        x = inception_resnet_block(x, scale=0.1, block_type="block17", block_idx=block_idx)
    # Mixed 7a (Reduction-B).
    branch_0 = conv2d_bn(x, 256, 1)
    branch_0 = conv2d_bn(branch_0, 384, 3, strides=2, padding="valid")
    branch_1 = conv2d_bn(x, 256, 1)
    branch_1 = conv2d_bn(branch_1, 288, 3, strides=2, padding="valid")
    branch_2 = conv2d_bn(x, 256, 1)
    branch_2 = conv2d_bn(branch_2, 288, 3)
    branch_2 = conv2d_bn(branch_2, 320, 3, strides=2, padding="valid")
    branch_pool = layers.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = layers.Concatenate(axis=_CHANNEL_AXIS, name="mixed_7a")([branch_0, branch_1, branch_2, branch_pool])
    for block_idx in range(1, 10):
        x = inception_resnet_block(x, scale=0.2, block_type="block8", block_idx=block_idx)
    x = inception_resnet_block(x, scale=1.0, activation=None, block_type="block8", block_idx=10)
    x = conv2d_bn(x, 1536, 1, name="conv_7b")

    x = head(x, include_top, pooling, classes, classifier_activation)
    return finish(img_input, input_tensor, x, name, path)


preprocess_input = imagenet_utils.preprocessing("tf", "InceptionResNetV2")
decode_predictions = imagenet_utils.decode_predictions
