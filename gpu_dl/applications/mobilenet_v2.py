"""MobileNetV2 (Sandler et al., 2018), as Keras 3.15's ``keras.applications.MobileNetV2`` builds it: the same
layers, layer names, configs and weight shapes, so weights move between the two.

Images are channels_last (gpu_dl's only layout); inputs are at least 32x32.
"""
from __future__ import annotations

import numbers

from .. import layers
from ..backend.user_warnings import warn
from . import imagenet_utils
from ._common import finish, weights_file

# The square input sizes Keras publishes ImageNet weights for, and the width multipliers.
_IMAGENET_ROWS = (96, 128, 160, 192, 224)
_IMAGENET_ALPHAS = (0.35, 0.50, 0.75, 1.0, 1.3, 1.4)
# (filters, stride, expansion) of the 17 inverted residual blocks, block_id 0..16.
_BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
           (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
           (320, 1, 6))


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None):
    """MobileNetV2 (Keras's ``keras.applications.MobileNetV2``): inputs preprocessed by
    ``mobilenet_v2.preprocess_input`` (scaled to -1..1).

    ``alpha``: the width multiplier (one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4 with imagenet weights). ``weights``:
    None, "imagenet" (Keras's ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_<alpha>_<rows>[_no_top].h5``
    found on this machine, see ``imagenet_utils.default_dirs``) or a weights file's path. ``name`` defaults to
    ``mobilenetv2_<alpha>_<rows>`` as in Keras.
    """
    fn_name = "MobileNetV2"
    weights = imagenet_utils.check_weights(fn_name, weights)
    imagenet_utils.check_classes(fn_name, weights, include_top, classes)
    imagenet_utils.check_pooling(fn_name, pooling)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"{fn_name}: `alpha` should be a positive number. Received alpha={alpha!r}")
    if include_top:
        imagenet_utils.validate_activation(fn_name, classifier_activation, weights)
    if input_shape is not None and input_tensor is not None:
        tensor_cols = getattr(input_tensor, "shape", (None,) * 3)[2]
        if tensor_cols != tuple(input_shape)[1]:
            raise ValueError(f"{fn_name}: input_tensor.shape[2] must equal input_shape[1]; Received "
                             f"`input_tensor.shape={input_tensor.shape}`, `input_shape={input_shape}`")
    # Keras's default size is the given square side when it is one ImageNet weights exist for, else 224.
    if input_shape is not None:
        rows, cols = tuple(input_shape)[:2] if len(tuple(input_shape)) >= 2 else (None, None)
    elif input_tensor is not None and len(getattr(input_tensor, "shape", ())) == 4:
        rows, cols = input_tensor.shape[1], input_tensor.shape[2]
    else:
        rows = cols = None
    default_size = rows if rows == cols and rows in _IMAGENET_ROWS else 224
    input_shape = imagenet_utils.obtain_input_shape(fn_name, input_shape, default_size=default_size, min_size=32,
                                                    require_flatten=include_top, weights=weights)
    rows, cols = input_shape[0], input_shape[1]
    if weights == "imagenet":
        if alpha not in _IMAGENET_ALPHAS:
            raise ValueError(f"{fn_name}: if imagenet weights are being loaded, alpha must be one of `0.35`, `0.50`, "
                             f"`0.75`, `1.0`, `1.3` or `1.4` only; Received `alpha={alpha}`")
        if rows != cols or rows not in _IMAGENET_ROWS:
            rows = 224
            warn("`input_shape` is undefined or non-square, or `rows` is not in [96, 128, 160, 192, 224]. "
                 "Weights for input shape (224, 224) will be loaded as the default.")
    suffix = "" if include_top else "_no_top"
    path = weights_file(fn_name, weights,
                        f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{suffix}.h5",
                        "mobilenet_v2")
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)
    channel_axis = -1

    first_block_filters = _make_divisible(32 * alpha, 8)
    x = layers.Conv2D(first_block_filters, kernel_size=3, strides=(2, 2), padding="same", use_bias=False,
                      name="Conv1")(img_input)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride, expansion=expansion,
                                block_id=block_id)
    last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_block_filters, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=1e-3, momentum=0.999, name="Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)
    if name is None:
        name = f"mobilenetv2_{alpha:0.2f}_{rows}"
    return finish(img_input, input_tensor, x, name, path)


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); a residual Add where shapes allow."""
    channel_axis = -1
    in_channels = inputs.shape[channel_axis]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same", use_bias=False, activation=None,
                          name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(axis=channel_axis, epsilon=1e-3, momentum=0.999, name=f"{prefix}expand_BN")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None, use_bias=False,
                               padding="same" if stride == 1 else "valid", name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=1e-3, momentum=0.999, name=f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, kernel_size=1, padding="same", use_bias=False, activation=None,
                      name=f"{prefix}project")(x)
    x = layers.BatchNormalization(axis=channel_axis, epsilon=1e-3, momentum=0.999, name=f"{prefix}project_BN")(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _make_divisible(v, divisor, min_value=None):
    """``v`` rounded to a multiple of ``divisor``, never more than 10% below it (the MobileNet rule)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


preprocess_input = imagenet_utils.preprocessing("tf", "MobileNetV2")
decode_predictions = imagenet_utils.decode_predictions
