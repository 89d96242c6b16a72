"""InceptionV3 (Szegedy et al., 2016), as Keras 3.15's ``keras.applications.inception_v3`` builds it: the same
layers, layer names, configs and weight shapes, so weights move between the two (Keras 3 files, and Keras's
ImageNet files in the Keras 2 HDF5 format).

Images are channels_last (gpu_dl's only layout); inputs are at least 75x75 (299x299 by default).
"""
from __future__ import annotations

from .. import layers
from . import imagenet_utils
from ._common import check_arguments, finish, head, weights_file

# The channel axis of an NHWC image, as Keras passes it to BatchNormalization and the concatenations.
_CHANNEL_AXIS = 3


def conv2d_bn(x, filters, num_row, num_col, padding="same", strides=(1, 1), name=None):
    """Conv2D (no bias), BatchNormalization (no scale) and a ReLU, named ``name_conv``, ``name_bn`` and ``name``
    (Keras's numbered names where ``name`` is None)."""
    x = layers.Conv2D(filters, (num_row, num_col), strides=strides, padding=padding, use_bias=False,
                      name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=_CHANNEL_AXIS, scale=False, name=None if name is None else f"{name}_bn")(x)
    return layers.Activation("relu", name=name)(x)


def _average_pool_branch(x, filters):
    branch_pool = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x)
    return conv2d_bn(branch_pool, filters, 1, 1)


def _block35(x, pool_filters, name):
    """mixed0..mixed2 (35x35 at the default size): 1x1, 5x5 and double 3x3 branches and an average pool."""
    branch1x1 = conv2d_bn(x, 64, 1, 1)
    branch5x5 = conv2d_bn(x, 48, 1, 1)
    branch5x5 = conv2d_bn(branch5x5, 64, 5, 5)
    branch3x3dbl = conv2d_bn(x, 64, 1, 1)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3)
    branch_pool = _average_pool_branch(x, pool_filters)
    return layers.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=_CHANNEL_AXIS, name=name)


def _block17(x, c7, name):
    """mixed4..mixed7 (17x17): 1x1, factorised 7x7 and double 7x7 branches (``c7`` inner filters) and a pool."""
    branch1x1 = conv2d_bn(x, 192, 1, 1)
    branch7x7 = conv2d_bn(x, c7, 1, 1)
    branch7x7 = conv2d_bn(branch7x7, c7, 1, 7)
    branch7x7 = conv2d_bn(branch7x7, 192, 7, 1)
    branch7x7dbl = conv2d_bn(x, c7, 1, 1)
    for filters, rows, cols in ((c7, 7, 1), (c7, 1, 7), (c7, 7, 1), (192, 1, 7)):
        branch7x7dbl = conv2d_bn(branch7x7dbl, filters, rows, cols)
    branch_pool = _average_pool_branch(x, 192)
    return layers.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=_CHANNEL_AXIS, name=name)


def _block8(x, i):
    """mixed9, mixed10 (8x8): 1x1, split 3x3 and split double 3x3 branches and an average pool."""
    branch1x1 = conv2d_bn(x, 320, 1, 1)
    branch3x3 = conv2d_bn(x, 384, 1, 1)
    branch3x3_1 = conv2d_bn(branch3x3, 384, 1, 3)
    branch3x3_2 = conv2d_bn(branch3x3, 384, 3, 1)
    branch3x3 = layers.concatenate([branch3x3_1, branch3x3_2], axis=_CHANNEL_AXIS, name=f"mixed9_{i}")
    branch3x3dbl = conv2d_bn(x, 448, 1, 1)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 384, 3, 3)
    branch3x3dbl_1 = conv2d_bn(branch3x3dbl, 384, 1, 3)
    branch3x3dbl_2 = conv2d_bn(branch3x3dbl, 384, 3, 1)
    # Unnamed in Keras: a numbered "concatenate".
    branch3x3dbl = layers.concatenate([branch3x3dbl_1, branch3x3dbl_2], axis=_CHANNEL_AXIS)
    branch_pool = _average_pool_branch(x, 192)
    return layers.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=_CHANNEL_AXIS,
                              name=f"mixed{9 + i}")


def InceptionV3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="inception_v3"):
    """InceptionV3 (Keras's ``keras.applications.InceptionV3``): inputs preprocessed by
    ``inception_v3.preprocess_input`` (scaled to -1..1).

    ``weights``: None (random), "imagenet" (Keras's ``inception_v3_weights_tf_dim_ordering_tf_kernels[_notop].h5``
    found on this machine: see ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape``
    (height, width, 3) with sides of at least 75 (the top needs (299, 299, 3) with imagenet weights);
    ``pooling`` None, "avg" or "max" without the top.
    """
    fn_name = "InceptionV3"
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=299, min_size=75)
    suffix = "" if include_top else "_notop"
    path = weights_file(fn_name, weights, f"inception_v3_weights_tf_dim_ordering_tf_kernels{suffix}.h5",
                        "inception_v3")
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    x = conv2d_bn(img_input, 32, 3, 3, strides=(2, 2), padding="valid")
    x = conv2d_bn(x, 32, 3, 3, padding="valid")
    x = conv2d_bn(x, 64, 3, 3)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = conv2d_bn(x, 80, 1, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, 3, padding="valid")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)

    for i, pool_filters in enumerate((32, 64, 64)):
        x = _block35(x, pool_filters, f"mixed{i}")
    # mixed3: the reduction to 17x17.
    branch3x3 = conv2d_bn(x, 384, 3, 3, strides=(2, 2), padding="valid")
    branch3x3dbl = conv2d_bn(x, 64, 1, 1)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3)
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3, strides=(2, 2), padding="valid")
    branch_pool = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = layers.concatenate([branch3x3, branch3x3dbl, branch_pool], axis=_CHANNEL_AXIS, name="mixed3")
    for i, c7 in enumerate((128, 160, 160, 192)):
        x = _block17(x, c7, f"mixed{4 + i}")
    # mixed8: the reduction to 8x8.
    branch3x3 = conv2d_bn(x, 192, 1, 1)
    branch3x3 = conv2d_bn(branch3x3, 320, 3, 3, strides=(2, 2), padding="valid")
    branch7x7x3 = conv2d_bn(x, 192, 1, 1)
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 1, 7)
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 7, 1)
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 3, 3, strides=(2, 2), padding="valid")
    branch_pool = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = layers.concatenate([branch3x3, branch7x7x3, branch_pool], axis=_CHANNEL_AXIS, name="mixed8")
    for i in range(2):
        x = _block8(x, i)

    x = head(x, include_top, pooling, classes, classifier_activation)
    return finish(img_input, input_tensor, x, name, path)


preprocess_input = imagenet_utils.preprocessing("tf", "InceptionV3")
decode_predictions = imagenet_utils.decode_predictions
