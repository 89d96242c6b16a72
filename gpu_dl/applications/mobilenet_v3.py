"""MobileNetV3Small and MobileNetV3Large (Howard et al., 2019), as Keras 3.15's ``keras.applications`` builds
them: the same layers and operations, names, configs and weight shapes, so weights move between the two (Keras 3
files, and Keras's ImageNet files in the Keras 2 HDF5 format).

The models take pixels in 0..255: Keras puts the scaling to -1..1 inside them (a Rescaling layer, unless
``include_preprocessing=False``), so ``preprocess_input`` returns its input. The squeeze-and-excitation gates'
hard sigmoid is written as Keras writes it, ``ReLU(6)(x + 3) * (1 / 6)``: an Add and a Multiply operation on
symbolic tensors, recorded in the model's config as Keras records them.

Images are channels_last (gpu_dl's only layout); inputs are at least 32x32, of any size with the top.
"""
from __future__ import annotations

import numbers

from .. import layers
from ..backend.user_warnings import warn
from . import imagenet_utils
from ._common import finish, weights_file

_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
# Small: (expansion, filters, kernel, stride, squeeze-excite, activation) of blocks 0..10; "k" is the model's
# kernel size (5, or 3 when minimalistic), "se" its squeeze-excite ratio, "act" its activation (hard_swish, or
# relu when minimalistic).
_SMALL = ((1, 16, 3, 2, "se", "relu"), (72 / 16, 24, 3, 2, None, "relu"), (88 / 24, 24, 3, 1, None, "relu"),
          (4, 40, "k", 2, "se", "act"), (6, 40, "k", 1, "se", "act"), (6, 40, "k", 1, "se", "act"),
          (3, 48, "k", 1, "se", "act"), (3, 48, "k", 1, "se", "act"), (6, 96, "k", 2, "se", "act"),
          (6, 96, "k", 1, "se", "act"), (6, 96, "k", 1, "se", "act"))
_LARGE = ((1, 16, 3, 1, None, "relu"), (4, 24, 3, 2, None, "relu"), (3, 24, 3, 1, None, "relu"),
          (3, 40, "k", 2, "se", "relu"), (3, 40, "k", 1, "se", "relu"), (3, 40, "k", 1, "se", "relu"),
          (6, 80, 3, 2, None, "act"), (2.5, 80, 3, 1, None, "act"), (2.3, 80, 3, 1, None, "act"),
          (2.3, 80, 3, 1, None, "act"), (6, 112, 3, 1, "se", "act"), (6, 112, 3, 1, "se", "act"),
          (6, 160, "k", 2, "se", "act"), (6, 160, "k", 1, "se", "act"), (6, 160, "k", 1, "se", "act"))


def _input_shape(fn_name, input_shape, input_tensor):
    """Keras's reading of ``input_shape`` and ``input_tensor`` for MobileNetV3 (no default size: any height and
    width, at least 32), with gpu_dl's checks of the shape's form."""
    if input_shape is not None:
        try:
            input_shape = tuple(input_shape)
        except TypeError:
            raise ValueError(f"{fn_name}: `input_shape` must be a tuple of three integers. "
                             f"Received: input_shape={input_shape!r}") from None
        if len(input_shape) != 3 or not all(d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool)
                                                          and d > 0) for d in input_shape):
            raise ValueError(f"{fn_name}: `input_shape` must be a tuple of three positive integers (height, width, "
                             f"channels; None for a free height or width). Received: input_shape={input_shape}")
        if input_tensor is not None and len(getattr(input_tensor, "shape", ())) == 4 and \
                input_tensor.shape[2] != input_shape[1]:
            raise ValueError(f"{fn_name}: input_shape[1] must equal input_tensor.shape[2]. Received "
                             f"input_shape={input_shape}, input_tensor.shape={input_tensor.shape}")
    elif input_tensor is not None and len(getattr(input_tensor, "shape", ())) == 4:
        input_shape = tuple(input_tensor.shape[1:])
    else:
        input_shape = (None, None, 3)
    rows, cols = input_shape[0], input_shape[1]
    if rows and cols and (rows < 32 or cols < 32):
        raise ValueError(f"{fn_name}: `input_shape`: input size must be at least 32x32; Received "
                         f"`input_shape={input_shape}`")
    return input_shape


def MobileNetV3(stack, last_point_ch, input_shape=None, alpha=1.0, model_type="large", minimalistic=False,
                include_top=True, weights="imagenet", input_tensor=None, classes=1000, pooling=None,
                dropout_rate=0.2, classifier_activation="softmax", include_preprocessing=True, name=None,
                fn_name="MobileNetV3"):
    """The MobileNetV3 graph around the blocks ``stack`` lists (Keras's ``mobilenet_v3.MobileNetV3``)."""
    weights = imagenet_utils.check_weights(fn_name, weights)
    imagenet_utils.check_classes(fn_name, weights, include_top, classes)
    imagenet_utils.check_pooling(fn_name, pooling)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"{fn_name}: `alpha` should be a positive number. Received alpha={alpha!r}")
    if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, numbers.Real) or not 0 <= dropout_rate <= 1:
        raise ValueError(f"{fn_name}: `dropout_rate` should be a rate in [0, 1]. Received "
                         f"dropout_rate={dropout_rate!r}")
    if include_top:
        imagenet_utils.validate_activation(fn_name, classifier_activation, weights)
    input_shape = _input_shape(fn_name, input_shape, input_tensor)
    path = weights
    if weights == "imagenet":
        if (alpha not in (0.75, 1.0)) if not minimalistic else alpha != 1.0:
            raise ValueError(f"{fn_name}: if imagenet weights are being loaded, alpha can be one of `0.75`, `1.0` "
                             f"for non minimalistic or `1.0` for minimalistic only. Received alpha={alpha}")
        if input_shape[0] != input_shape[1] or input_shape[0] != 224:
            warn("`input_shape` is undefined or non-square, or `rows` is not 224. Weights for input shape "
                 "(224, 224) will be loaded as the default.")
        model_name = f"{model_type}{'_minimalistic' if minimalistic else ''}_224_{float(alpha)}_float"
        file_name = f"weights_mobilenet_v3_{model_name}{'' if include_top else '_no_top_v2'}.h5"
        path = weights_file(fn_name, weights, file_name, "mobilenet_v3", url=_URL + file_name)
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    if minimalistic:
        kernel, activation, se_ratio = 3, relu, None
    else:
        kernel, activation, se_ratio = 5, hard_swish, 0.25
    x = img_input
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0)(x)
    x = layers.Conv2D(16, kernel_size=3, strides=(2, 2), padding="same", use_bias=False, name="conv")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name="conv_bn")(x)
    x = activation(x)
    for block_id, (expansion, filters, kernel_size, stride, se, act) in enumerate(stack):
        x = _inverted_res_block(x, expansion, _depth(filters * alpha), kernel if kernel_size == "k" else kernel_size,
                                stride, se_ratio if se else None, activation if act == "act" else relu, block_id)
    last_conv_ch = _depth(x.shape[-1] * 6)
    if alpha > 1.0:
        last_point_ch = _depth(last_point_ch * alpha)
    x = layers.Conv2D(last_conv_ch, kernel_size=1, padding="same", use_bias=False, name="conv_1")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name="conv_1_bn")(x)
    x = activation(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Conv2D(last_point_ch, kernel_size=1, padding="same", use_bias=True, name="conv_2")(x)
        x = activation(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate)(x)
        x = layers.Conv2D(classes, kernel_size=1, padding="same", name="logits")(x)
        x = layers.Flatten()(x)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    return finish(img_input, input_tensor, x, name, path)


def MobileNetV3Small(input_shape=None, alpha=1.0, minimalistic=False, include_top=True, weights="imagenet",
                     input_tensor=None, classes=1000, pooling=None, dropout_rate=0.2, classifier_activation="softmax",
                     include_preprocessing=True, name="MobileNetV3Small"):
    """MobileNetV3Small (Keras's ``keras.applications.MobileNetV3Small``), taking pixels in 0..255 (or -1..1 with
    ``include_preprocessing=False``).

    ``alpha``: the width multiplier (0.75 or 1.0 with imagenet weights, 1.0 when ``minimalistic``);
    ``minimalistic``: 3x3 kernels, ReLU and no squeeze-and-excitation; ``dropout_rate``: the Dropout before the
    classifier (none at 0). ``weights``: None, "imagenet" (Keras's
    ``weights_mobilenet_v3_small[_minimalistic]_224_<alpha>_float[_no_top_v2].h5`` found on this machine, see
    ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape`` (height, width, channels): sides
    of at least 32, any size (None) by default, with or without the top.
    """
    return MobileNetV3(_SMALL, 1024, input_shape, alpha, "small", minimalistic, include_top, weights, input_tensor,
                       classes, pooling, dropout_rate, classifier_activation, include_preprocessing, name=name,
                       fn_name="MobileNetV3Small")


def MobileNetV3Large(input_shape=None, alpha=1.0, minimalistic=False, include_top=True, weights="imagenet",
                     input_tensor=None, classes=1000, pooling=None, dropout_rate=0.2, classifier_activation="softmax",
                     include_preprocessing=True, name="MobileNetV3Large"):
    """MobileNetV3Large (Keras's ``keras.applications.MobileNetV3Large``); arguments as ``MobileNetV3Small``'s
    (Keras's file ``weights_mobilenet_v3_large[_minimalistic]_224_<alpha>_float[_no_top_v2].h5``)."""
    return MobileNetV3(_LARGE, 1280, input_shape, alpha, "large", minimalistic, include_top, weights, input_tensor,
                       classes, pooling, dropout_rate, classifier_activation, include_preprocessing, name=name,
                       fn_name="MobileNetV3Large")


def relu(x):
    """A ReLU layer (Keras's numbered "re_lu")."""
    return layers.ReLU()(x)


def hard_sigmoid(x):
    """``ReLU(6)(x + 3) * (1 / 6)``, with the operations Keras records."""
    return layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def hard_swish(x):
    """An Activation("hard_swish") layer (Keras's hard_silu)."""
    return layers.Activation("hard_swish")(x)


def _depth(v, divisor=8, min_value=None):
    """``v`` rounded to a multiple of ``divisor``, never more than 10% below it."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _se_block(inputs, filters, se_ratio, prefix):
    """Squeeze and excitation: global average, 1x1 down to ``filters * se_ratio``, ReLU, 1x1 back, hard sigmoid,
    times the input."""
    x = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(inputs)
    x = layers.Conv2D(_depth(filters * se_ratio), kernel_size=1, padding="same",
                      name=f"{prefix}squeeze_excite_conv")(x)
    x = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(x)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", name=f"{prefix}squeeze_excite_conv_1")(x)
    x = hard_sigmoid(x)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, x])


def _inverted_res_block(x, expansion, filters, kernel_size, stride, se_ratio, activation, block_id):
    """Expand (1x1; not in block 0), depthwise ``kernel_size``, squeeze-excite where ``se_ratio``, project
    (1x1, linear); a residual Add where shapes allow."""
    shortcut = x
    prefix = "expanded_conv_"
    infilters = x.shape[-1]
    if block_id:
        prefix = f"expanded_conv_{block_id}_"
        x = layers.Conv2D(_depth(infilters * expansion), kernel_size=1, padding="same", use_bias=False,
                          name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=f"{prefix}expand_bn")(x)
        x = activation(x)
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size), name=f"{prefix}depthwise_pad")(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=stride, padding="same" if stride == 1 else "valid",
                               use_bias=False, name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=f"{prefix}depthwise_bn")(x)
    x = activation(x)
    if se_ratio:
        x = _se_block(x, _depth(infilters * expansion), se_ratio, prefix)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=f"{prefix}project_bn")(x)
    if stride == 1 and infilters == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def preprocess_input(x, data_format=None):
    """``x`` unchanged: MobileNetV3 scales its inputs itself (see the module's docstring), as in Keras."""
    return x


decode_predictions = imagenet_utils.decode_predictions
