"""EfficientNetB0 to B7 (Tan and Le, 2019), as Keras 3.15's ``keras.applications.efficientnet`` builds them: the
same layers, layer names, configs and weight shapes, so weights move between the two (Keras 3 files, and Keras's
ImageNet files in the Keras 2 HDF5 format).

The models take pixels in 0..255: Keras puts the preprocessing inside them (a Rescaling by 1/255 and a
Normalization whose mean and variance are weights, read from the weights file; with ``weights="imagenet"`` a
further Rescaling, by the reciprocal square roots of ImageNet's standard deviations, exactly as Keras has it),
so ``preprocess_input`` returns its input. The blocks' drop connect is a Dropout of one draw per sample
(``noise_shape=(None, 1, 1, 1)``) before the residual Add, at a rate growing along the network.

Images are channels_last (gpu_dl's only layout); inputs are at least 32x32.
"""
from __future__ import annotations

import copy
import math

from .. import layers
from . import imagenet_utils
from ._common import check_arguments, finish, head, weights_file

_URL = "https://storage.googleapis.com/keras-applications/"
_BN_AXIS = 3
# The seven stages of EfficientNetB0, scaled in width and depth by the other models.
DEFAULT_BLOCKS_ARGS = [
    {"kernel_size": 3, "repeats": 1, "filters_in": 32, "filters_out": 16, "expand_ratio": 1, "id_skip": True,
     "strides": 1, "se_ratio": 0.25},
    {"kernel_size": 3, "repeats": 2, "filters_in": 16, "filters_out": 24, "expand_ratio": 6, "id_skip": True,
     "strides": 2, "se_ratio": 0.25},
    {"kernel_size": 5, "repeats": 2, "filters_in": 24, "filters_out": 40, "expand_ratio": 6, "id_skip": True,
     "strides": 2, "se_ratio": 0.25},
    {"kernel_size": 3, "repeats": 3, "filters_in": 40, "filters_out": 80, "expand_ratio": 6, "id_skip": True,
     "strides": 2, "se_ratio": 0.25},
    {"kernel_size": 5, "repeats": 3, "filters_in": 80, "filters_out": 112, "expand_ratio": 6, "id_skip": True,
     "strides": 1, "se_ratio": 0.25},
    {"kernel_size": 5, "repeats": 4, "filters_in": 112, "filters_out": 192, "expand_ratio": 6, "id_skip": True,
     "strides": 2, "se_ratio": 0.25},
    {"kernel_size": 3, "repeats": 1, "filters_in": 192, "filters_out": 320, "expand_ratio": 6, "id_skip": True,
     "strides": 1, "se_ratio": 0.25},
]
# Keras's initializers of the convolutions and the classifier, given as it gives them (serialized).
CONV_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                           "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                            "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}
IMAGENET_STDDEV_RGB = [0.229, 0.224, 0.225]
_BLOCK_ARGUMENTS = {"kernel_size", "repeats", "filters_in", "filters_out", "expand_ratio", "id_skip", "strides",
                    "se_ratio"}


def _check_blocks_args(fn_name, blocks_args):
    if not isinstance(blocks_args, (list, tuple)) or not blocks_args or \
            not all(isinstance(a, dict) and set(a) <= _BLOCK_ARGUMENTS and "repeats" in a for a in blocks_args):
        raise ValueError(f"{fn_name}: `blocks_args` should be 'default' or a list of dicts with the keys "
                         f"{sorted(_BLOCK_ARGUMENTS)} ('repeats' required). Received: blocks_args={blocks_args!r:.300}")
    for args in blocks_args:
        if args["repeats"] <= 0:
            raise ValueError(f"{fn_name}: the number of repeats in `EfficientNet` must be > 0. "
                             f"Received: repeats={args['repeats']}")


def EfficientNet(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2, drop_connect_rate=0.2,
                 depth_divisor=8, activation="swish", blocks_args="default", name="efficientnet", include_top=True,
                 weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
                 classifier_activation="softmax", weights_name=None, fn_name="EfficientNet"):
    """The EfficientNet of ``width_coefficient`` and ``depth_coefficient`` (Keras's ``efficientnet.EfficientNet``):
    ``dropout_rate`` before the classifier, ``drop_connect_rate`` the rate of the last block's drop connect.
    "imagenet" weights are Keras's file ``<name>[_notop].h5`` (``efficientnet<weights_name>`` unless renamed)."""
    if isinstance(blocks_args, str) and blocks_args == "default":
        blocks_args = DEFAULT_BLOCKS_ARGS
    _check_blocks_args(fn_name, blocks_args)
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=default_size, min_size=32)
    if weights == "imagenet" and weights_name is None:
        raise ValueError(f"{fn_name}: weights='imagenet' need `weights_name` (b0..b7), the file's model.")
    # As Keras, the file is named after the model's name (efficientnetb0 .. b7 unless renamed: a renamed model
    # looks for a file of its own name, Keras's download of it checked against the hash of weights_name's).
    file_name = f"{name}{'' if include_top else '_notop'}.h5"
    path = weights_file(fn_name, weights, file_name, "", url=_URL + file_name)
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    def round_filters(filters, divisor=depth_divisor):
        filters *= width_coefficient
        new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        if new_filters < 0.9 * filters:
            new_filters += divisor
        return int(new_filters)

    def round_repeats(repeats):
        return int(math.ceil(depth_coefficient * repeats))

    x = layers.Rescaling(1.0 / 255.0)(img_input)
    x = layers.Normalization(axis=_BN_AXIS)(x)
    if weights == "imagenet":
        x = layers.Rescaling([1.0 / math.sqrt(stddev) for stddev in IMAGENET_STDDEV_RGB])(x)
    x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(round_filters(32), 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name="stem_conv")(x)
    x = layers.BatchNormalization(axis=_BN_AXIS, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = copy.deepcopy(list(blocks_args))
    b = 0
    blocks = float(sum(round_repeats(args["repeats"]) for args in blocks_args))
    for i, args in enumerate(blocks_args):
        args["filters_in"] = round_filters(args.get("filters_in", 32))
        args["filters_out"] = round_filters(args.get("filters_out", 16))
        for j in range(round_repeats(args.pop("repeats"))):
            if j > 0:
                args["strides"] = 1
                args["filters_in"] = args["filters_out"]
            x = block(x, activation, drop_connect_rate * b / blocks, name=f"block{i + 1}{chr(j + 97)}_", **args)
            b += 1

    x = layers.Conv2D(round_filters(1280), 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name="top_conv")(x)
    x = layers.BatchNormalization(axis=_BN_AXIS, name="top_bn")(x)
    x = layers.Activation(activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, kernel_initializer=DENSE_KERNEL_INITIALIZER,
                         name="predictions")(x)
    else:
        x = head(x, False, pooling, classes, classifier_activation, pool_names=("avg_pool", "max_pool"))
    return finish(img_input, input_tensor, x, name, path)


def squeeze_excite(x, filters_in, filters, se_ratio, activation, name):
    """Squeeze and excitation as both of Keras's EfficientNets make it: the pooled ``filters`` channels reduced to
    ``max(1, int(filters_in * se_ratio))`` and expanded back to weights in 0..1 that scale ``x``."""
    filters_se = max(1, int(filters_in * se_ratio))
    se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
    se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
    se = layers.Conv2D(filters_se, 1, padding="same", activation=activation,
                       kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}se_reduce")(se)
    se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid", kernel_initializer=CONV_KERNEL_INITIALIZER,
                       name=f"{name}se_expand")(se)
    return layers.multiply([x, se], name=f"{name}se_excite")


def project(x, filters_out, name, momentum=0.99, kernel_size=1, strides=1):
    """The projection of a block: a convolution without bias (1x1 unless told) and its batch normalization."""
    x = layers.Conv2D(filters_out, kernel_size, strides=strides, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}project_conv")(x)
    return layers.BatchNormalization(axis=_BN_AXIS, momentum=momentum, name=f"{name}project_bn")(x)


def residual(x, inputs, skip, drop_rate, name):
    """With ``skip``, the block's input added back after a drop connect of rate ``drop_rate`` (a Dropout with one
    draw per sample; none for a rate of 0); else ``x``."""
    if skip:
        if drop_rate:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def block(inputs, activation="swish", drop_rate=0.0, name="", filters_in=32, filters_out=16, kernel_size=3,
          strides=1, expand_ratio=1, se_ratio=0.0, id_skip=True):
    """The mobile inverted bottleneck: expand (1x1, unless ``expand_ratio`` is 1), depthwise ``kernel_size``,
    squeeze and excitation (for 0 < ``se_ratio`` <= 1), project (1x1); with ``id_skip`` and equal shapes the
    input added back after a drop connect of rate ``drop_rate``."""
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer=CONV_KERNEL_INITIALIZER,
                          name=f"{name}expand_conv")(inputs)
        x = layers.BatchNormalization(axis=_BN_AXIS, name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    else:
        x = inputs
    if strides == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size), name=f"{name}dwconv_pad")(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=conv_pad, use_bias=False,
                               depthwise_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(axis=_BN_AXIS, name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        x = squeeze_excite(x, filters_in, filters, se_ratio, activation, name)
    x = project(x, filters_out, name)
    # Keras drops only for a rate above 0
    return residual(x, inputs, id_skip and strides == 1 and filters_in == filters_out,
                    drop_rate if drop_rate > 0 else 0, name)


# (width, depth, default size, dropout before the classifier) of B0..B7.
_SCALES = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
           "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
           "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5)}


def _efficientnet(variant, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation,
                  name):
    width, depth, size, dropout = _SCALES[variant]
    return EfficientNet(width, depth, size, dropout, name=name, include_top=include_top, weights=weights,
                        input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation, weights_name=variant,
                        fn_name=f"EfficientNet{variant.upper()}")


def EfficientNetB0(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="efficientnetb0"):
    """EfficientNetB0 (Keras's ``keras.applications.EfficientNetB0``), taking pixels in 0..255.

    ``weights``: None (random), "imagenet" (Keras's ``efficientnetb0[_notop].h5`` found on this machine: see
    ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape`` (height, width, 3) with sides of
    at least 32 (the top needs (224, 224, 3) with imagenet weights); ``pooling`` None, "avg" or "max" without
    the top. B1..B7 are wider and deeper, for inputs of 240, 260, 300, 380, 456, 528 and 600.
    """
    return _efficientnet("b0", include_top, weights, input_tensor, input_shape, pooling, classes,
                         classifier_activation, name)


def EfficientNetB1(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="efficientnetb1"):
    """EfficientNetB1 (Keras's ``keras.applications.EfficientNetB1``); arguments as ``EfficientNetB0``'s."""
    return _efficientnet("b1", include_top, weights, input_tensor, input_shape, pooling, classes,
                         classifier_activation, name)


def EfficientNetB2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="efficientnetb2"):
    """EfficientNetB2 (Keras's ``keras.applications.EfficientNetB2``); arguments as ``EfficientNetB0``'s."""
    return _efficientnet("b2", include_top, weights, input_tensor, input_shape, pooling, classes,
                         classifier_activation, name)


def EfficientNetB3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="efficientnetb3"):
    """EfficientNetB3 (Keras's ``keras.applications.EfficientNetB3``); arguments as ``EfficientNetB0``'s."""
    return _efficientnet("b3", include_top, weights, input_tensor, input_shape, pooling, classes,
                         classifier_activation, name)


def EfficientNetB4(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="efficientnetb4"):
    """EfficientNetB4 (Keras's ``keras.applications.EfficientNetB4``); arguments as ``EfficientNetB0``'s."""
    return _efficientnet("b4", include_top, weights, input_tensor, input_shape, pooling, classes,
                         classifier_activation, name)


def EfficientNetB5(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="efficientnetb5"):
    """EfficientNetB5 (Keras's ``keras.applications.EfficientNetB5``); arguments as ``EfficientNetB0``'s."""
    return _efficientnet("b5", include_top, weights, input_tensor, input_shape, pooling, classes,
                         classifier_activation, name)


def EfficientNetB6(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="efficientnetb6"):
    """EfficientNetB6 (Keras's ``keras.applications.EfficientNetB6``); arguments as ``EfficientNetB0``'s."""
    return _efficientnet("b6", include_top, weights, input_tensor, input_shape, pooling, classes,
                         classifier_activation, name)


def EfficientNetB7(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name="efficientnetb7"):
    """EfficientNetB7 (Keras's ``keras.applications.EfficientNetB7``); arguments as ``EfficientNetB0``'s."""
    return _efficientnet("b7", include_top, weights, input_tensor, input_shape, pooling, classes,
                         classifier_activation, name)


def preprocess_input(x, data_format=None):
    """``x`` unchanged: EfficientNet preprocesses its inputs itself (see the module's docstring), as in Keras."""
    return x


decode_predictions = imagenet_utils.decode_predictions
