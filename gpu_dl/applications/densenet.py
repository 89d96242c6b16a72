"""DenseNet121, DenseNet169 and DenseNet201 (Huang et al., 2017), as Keras 3.15's ``keras.applications.densenet``
builds them: the same layers, layer names, configs and weight shapes, so weights move between the two (Keras 3
files, and Keras's ImageNet files in the Keras 2 HDF5 format).

Images are channels_last (gpu_dl's only layout, and the only one Keras builds DenseNet for); inputs are at
least 32x32.
"""
from __future__ import annotations

from .. import layers
from . import imagenet_utils
from ._common import check_arguments, finish, head, weights_file

_BN_AXIS = 3
_BN_EPSILON = 1.001e-5


def dense_block(x, blocks, name):
    """``blocks`` conv blocks, each concatenating 32 new channels to its input."""
    for i in range(blocks):
        x = conv_block(x, 32, name=f"{name}_block{i + 1}")
    return x


def transition_block(x, reduction, name):
    """BatchNormalization, ReLU, a 1x1 convolution to ``reduction`` of the channels and a 2x2 average pool."""
    x = layers.BatchNormalization(axis=_BN_AXIS, epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(int(x.shape[_BN_AXIS] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def conv_block(x, growth_rate, name):
    """The bottleneck (BN, ReLU, 1x1 to 4 * ``growth_rate``; BN, ReLU, 3x3 to ``growth_rate``) concatenated to
    its input."""
    x1 = layers.BatchNormalization(axis=_BN_AXIS, epsilon=_BN_EPSILON, name=f"{name}_0_bn")(x)
    x1 = layers.Activation("relu", name=f"{name}_0_relu")(x1)
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(x1)
    x1 = layers.BatchNormalization(axis=_BN_AXIS, epsilon=_BN_EPSILON, name=f"{name}_1_bn")(x1)
    x1 = layers.Activation("relu", name=f"{name}_1_relu")(x1)
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x1)
    return layers.Concatenate(axis=_BN_AXIS, name=f"{name}_concat")([x, x1])


def DenseNet(blocks, include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="densenet", fn_name="DenseNet"):
    """The DenseNet with ``blocks`` conv blocks in each of its four dense blocks (Keras's ``densenet.DenseNet``).
    "imagenet" weights exist for the three published depths only (``DenseNet121``, ``DenseNet169``,
    ``DenseNet201``)."""
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=224, min_size=32)
    blocks = list(blocks)
    depth = {(6, 12, 24, 16): 121, (6, 12, 32, 32): 169, (6, 12, 48, 32): 201}.get(tuple(blocks))
    if weights == "imagenet" and depth is None:
        # Keras would go on without loading anything; there is no file to look for.
        raise ValueError(f"{fn_name}: weights='imagenet' exist for blocks [6, 12, 24, 16], [6, 12, 32, 32] and "
                         f"[6, 12, 48, 32] only. Received: blocks={blocks}")
    suffix = "" if include_top else "_notop"
    path = weights_file(fn_name, weights, f"densenet{depth}_weights_tf_dim_ordering_tf_kernels{suffix}.h5",
                        "densenet")
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=_BN_AXIS, epsilon=_BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, count in enumerate(blocks):
        x = dense_block(x, count, name=f"conv{stage + 2}")
        if stage < 3:
            x = transition_block(x, 0.5, name=f"pool{stage + 2}")
    x = layers.BatchNormalization(axis=_BN_AXIS, epsilon=_BN_EPSILON, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)

    x = head(x, include_top, pooling, classes, classifier_activation, pool_names=("avg_pool", "max_pool"))
    return finish(img_input, input_tensor, x, name, path)


def DenseNet121(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet121"):
    """DenseNet121 (Keras's ``keras.applications.DenseNet121``): inputs preprocessed by
    ``densenet.preprocess_input`` (scaled to 0..1, then normalised by ImageNet's mean and deviation).

    ``weights``: None (random), "imagenet" (Keras's ``densenet121_weights_tf_dim_ordering_tf_kernels[_notop].h5``
    found on this machine: see ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape``
    (height, width, 3) with sides of at least 32 (the top needs (224, 224, 3) with imagenet weights);
    ``pooling`` None, "avg" or "max" without the top.
    """
    return DenseNet([6, 12, 24, 16], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name, fn_name="DenseNet121")


def DenseNet169(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet169"):
    """DenseNet169 (Keras's ``keras.applications.DenseNet169``); arguments as ``DenseNet121``'s."""
    return DenseNet([6, 12, 32, 32], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name, fn_name="DenseNet169")


def DenseNet201(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet201"):
    """DenseNet201 (Keras's ``keras.applications.DenseNet201``); arguments as ``DenseNet121``'s."""
    return DenseNet([6, 12, 48, 32], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name, fn_name="DenseNet201")


preprocess_input = imagenet_utils.preprocessing("torch", "DenseNet")
decode_predictions = imagenet_utils.decode_predictions
