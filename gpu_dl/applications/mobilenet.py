"""MobileNet (v1; Howard et al., 2017), as Keras 3.15's ``keras.applications.mobilenet`` builds it: the same
layers, layer names, configs and weight shapes, so weights move between the two (Keras 3 files, and Keras's
ImageNet files in the Keras 2 HDF5 format).

Images are channels_last (gpu_dl's only layout); inputs are at least 32x32.
"""
from __future__ import annotations

import numbers

from .. import layers
from ..backend.user_warnings import warn
from . import imagenet_utils
from ._common import check_arguments, finish, weights_file

# The square input sizes Keras publishes ImageNet weights for, and the width multipliers with their file names.
_IMAGENET_ROWS = (128, 160, 192, 224)
_IMAGENET_ALPHAS = {1.0: "1_0", 0.75: "7_5", 0.50: "5_0", 0.25: "2_5"}
# (pointwise filters, stride) of the 13 depthwise separable blocks, block_id 1..13.
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
           (512, 1), (1024, 2), (1024, 1))


def MobileNet(input_shape=None, alpha=1.0, depth_multiplier=1, dropout=1e-3, include_top=True, weights="imagenet",
              input_tensor=None, pooling=None, classes=1000, classifier_activation="softmax", name=None):
    """MobileNet (Keras's ``keras.applications.MobileNet``): inputs preprocessed by ``mobilenet.preprocess_input``
    (scaled to -1..1).

    ``alpha``: the width multiplier (0.25, 0.5, 0.75 or 1.0 with imagenet weights); ``depth_multiplier``: the
    depthwise convolutions' channel multiplier (1 with imagenet weights); ``dropout``: the rate of the Dropout
    before the classifier. ``weights``: None, "imagenet" (Keras's ``mobilenet_<alpha>_<rows>_tf[_no_top].h5``
    found on this machine, see ``imagenet_utils.default_dirs``) or a weights file's path. ``name`` defaults to
    ``mobilenet_<alpha>_<rows>`` as in Keras.
    """
    fn_name = "MobileNet"
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"{fn_name}: `alpha` should be a positive number. Received alpha={alpha!r}")
    if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, numbers.Integral) or \
            depth_multiplier < 1:
        raise ValueError(f"{fn_name}: `depth_multiplier` should be a positive integer. Received "
                         f"depth_multiplier={depth_multiplier!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
        raise ValueError(f"{fn_name}: `dropout` should be a rate in [0, 1]. Received dropout={dropout!r}")
    # Keras's default size is the given square side when it is one ImageNet weights exist for, else 224.
    default_size = 224
    if input_shape is not None and len(tuple(input_shape)) >= 2:
        rows, cols = tuple(input_shape)[:2]
        if rows == cols and rows in _IMAGENET_ROWS:
            default_size = rows
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=default_size, min_size=32)
    rows = input_shape[0]
    if weights == "imagenet":
        if depth_multiplier != 1:
            raise ValueError(f"{fn_name}: if imagenet weights are being loaded, depth multiplier must be 1. "
                             f"Received depth_multiplier={depth_multiplier}")
        if alpha not in _IMAGENET_ALPHAS:
            raise ValueError(f"{fn_name}: if imagenet weights are being loaded, alpha can be one of `0.25`, `0.50`, "
                             f"`0.75` or `1.0` only. Received alpha={alpha}")
        if rows != input_shape[1] or rows not in _IMAGENET_ROWS:
            rows = 224
            warn("`input_shape` is undefined or non-square, or `rows` is not in [128, 160, 192, 224]. "
                 "Weights for input shape (224, 224) will be loaded as the default.")
        suffix = "" if include_top else "_no_top"
        path = weights_file(fn_name, weights, f"mobilenet_{_IMAGENET_ALPHAS[alpha]}_{rows}_tf{suffix}.h5",
                            "mobilenet")
    else:
        path = weights
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    x = layers.Conv2D(int(32 * alpha), (3, 3), padding="same", use_bias=False, strides=(2, 2),
                      name="conv1")(img_input)
    x = layers.BatchNormalization(axis=-1, name="conv1_bn")(x)
    x = layers.ReLU(6.0, name="conv1_relu")(x)
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = _depthwise_conv_block(x, filters, alpha, depth_multiplier, stride, block_id)

    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, (1, 1), padding="same", name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape_2")(x)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)
    if name is None:
        name = f"mobilenet_{alpha:0.2f}_{rows}"
    return finish(img_input, input_tensor, x, name, path)


def _depthwise_conv_block(inputs, pointwise_conv_filters, alpha, depth_multiplier, stride, block_id):
    """Depthwise 3x3 (stride 2 after a bottom/right zero padding), BN, ReLU6, pointwise 1x1, BN, ReLU6."""
    x = inputs
    if stride != 1:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D((3, 3), padding="same" if stride == 1 else "valid", depth_multiplier=depth_multiplier,
                               strides=(stride, stride), use_bias=False, name=f"conv_dw_{block_id}")(x)
    x = layers.BatchNormalization(axis=-1, name=f"conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(int(pointwise_conv_filters * alpha), (1, 1), padding="same", use_bias=False, strides=(1, 1),
                      name=f"conv_pw_{block_id}")(x)
    x = layers.BatchNormalization(axis=-1, name=f"conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


preprocess_input = imagenet_utils.preprocessing("tf", "MobileNet")
decode_predictions = imagenet_utils.decode_predictions
