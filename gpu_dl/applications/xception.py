"""Xception (Chollet, 2017), as Keras 3.15's ``keras.applications.xception`` builds it: the same layers, layer
names, configs and weight shapes, so weights move between the two (Keras 3 files, and Keras's ImageNet files in
the Keras 2 HDF5 format).

Images are channels_last (gpu_dl's only layout); inputs are at least 71x71 (299x299 by default).
"""
from __future__ import annotations

from .. import layers
from . import imagenet_utils
from ._common import check_arguments, finish, head, weights_file


def _sepconv_bn(x, filters, name):
    """A 3x3 separable convolution without bias and its batch normalization, named ``name`` and ``name_bn``."""
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x)


def _shortcut(x, filters):
    """The strided 1x1 convolution and batch normalization of a downsampling block's residual, left for Keras's
    numbered names (conv2d, batch_normalization) as Keras leaves them."""
    residual = layers.Conv2D(filters, (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
    return layers.BatchNormalization(axis=-1)(residual)


def _downsampling_block(x, block, filters, activate_first=True):
    """Two separable convolutions then a strided 3x3 max pooling, added to the strided 1x1 shortcut."""
    residual = _shortcut(x, filters[1])
    if activate_first:
        x = layers.Activation("relu", name=f"block{block}_sepconv1_act")(x)
    x = _sepconv_bn(x, filters[0], f"block{block}_sepconv1")
    x = layers.Activation("relu", name=f"block{block}_sepconv2_act")(x)
    x = _sepconv_bn(x, filters[1], f"block{block}_sepconv2")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return layers.add([x, residual])


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="xception"):
    """Xception (Keras's ``keras.applications.Xception``): inputs preprocessed by ``xception.preprocess_input``
    (scaled to -1..1).

    ``weights``: None (random), "imagenet" (Keras's ``xception_weights_tf_dim_ordering_tf_kernels[_notop].h5``
    found on this machine: see ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape``
    (height, width, 3) with sides of at least 71 (the top needs (299, 299, 3) with imagenet weights);
    ``pooling`` None, "avg" or "max" without the top.
    """
    fn_name = "Xception"
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=299, min_size=71)
    suffix = "" if include_top else "_notop"
    path = weights_file(fn_name, weights, f"xception_weights_tf_dim_ordering_tf_kernels{suffix}.h5", "xception")
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(img_input)
    x = layers.BatchNormalization(axis=-1, name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(axis=-1, name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)

    # Entry flow: the first block starts on the activation above, the others with their own.
    x = _downsampling_block(x, 2, (128, 128), activate_first=False)
    x = _downsampling_block(x, 3, (256, 256))
    x = _downsampling_block(x, 4, (728, 728))
    # Middle flow: eight blocks of three activated separable convolutions around an identity shortcut.
    for block in range(5, 13):
        residual = x
        for conv in (1, 2, 3):
            x = layers.Activation("relu", name=f"block{block}_sepconv{conv}_act")(x)
            x = _sepconv_bn(x, 728, f"block{block}_sepconv{conv}")
        x = layers.add([x, residual])
    # Exit flow.
    x = _downsampling_block(x, 13, (728, 1024))
    for conv, filters in ((1, 1536), (2, 2048)):
        x = _sepconv_bn(x, filters, f"block14_sepconv{conv}")
        x = layers.Activation("relu", name=f"block14_sepconv{conv}_act")(x)

    x = head(x, include_top, pooling, classes, classifier_activation)
    return finish(img_input, input_tensor, x, name, path)


preprocess_input = imagenet_utils.preprocessing("tf", "Xception")
decode_predictions = imagenet_utils.decode_predictions
