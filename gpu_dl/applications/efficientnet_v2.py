"""EfficientNetV2B0 to B3, S, M and L (Tan and Le, 2021), as Keras 3.15's ``keras.applications.efficientnet_v2``
builds them: the same layers, layer names, configs and weight shapes, so weights move between the two (Keras 3
files, and Keras's ImageNet files in the Keras 2 HDF5 format).

The models take pixels in 0..255 and preprocess them themselves, as Keras's do (``include_preprocessing``): the
B models (by their name, as Keras decides) with a Rescaling by 1/255 and a Normalization by ImageNet's mean and
variance, S, M and L with a Rescaling to about -1..1; ``preprocess_input`` returns its input. The early stages
are fused MBConv blocks (one full convolution in place of the expansion and the depthwise one). As in Keras,
each block's drop connect is a Dropout (one draw per sample) at the rate Keras calls the survival probability,
``drop_connect_rate * b / blocks`` for block ``b``.

Images are channels_last (gpu_dl's only layout); inputs are at least 32x32.
"""
from __future__ import annotations

import copy
import math

from .. import initializers, layers
from . import imagenet_utils
from ._common import check_arguments, finish, head, weights_file
from .efficientnet import CONV_KERNEL_INITIALIZER, DENSE_KERNEL_INITIALIZER, project, residual, squeeze_excite

_URL = "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"
_BN_AXIS = 3
_KEYS = ("kernel_size", "num_repeat", "input_filters", "output_filters", "expand_ratio", "se_ratio", "strides",
         "conv_type")
# The stages of each model, as Keras lists them (its DEFAULT_BLOCKS_ARGS), one tuple of _KEYS per stage;
# conv_type 1 is a fused MBConv block, 0 an MBConv block.
_B_STAGES = ((3, 1, 32, 16, 1, 0, 1, 1), (3, 2, 16, 32, 4, 0, 2, 1), (3, 2, 32, 48, 4, 0, 2, 1),
             (3, 3, 48, 96, 4, 0.25, 2, 0), (3, 5, 96, 112, 6, 0.25, 1, 0), (3, 8, 112, 192, 6, 0.25, 2, 0))
_STAGES = {
    "efficientnetv2-s": ((3, 2, 24, 24, 1, 0.0, 1, 1), (3, 4, 24, 48, 4, 0.0, 2, 1), (3, 4, 48, 64, 4, 0, 2, 1),
                         (3, 6, 64, 128, 4, 0.25, 2, 0), (3, 9, 128, 160, 6, 0.25, 1, 0),
                         (3, 15, 160, 256, 6, 0.25, 2, 0)),
    "efficientnetv2-m": ((3, 3, 24, 24, 1, 0, 1, 1), (3, 5, 24, 48, 4, 0, 2, 1), (3, 5, 48, 80, 4, 0, 2, 1),
                         (3, 7, 80, 160, 4, 0.25, 2, 0), (3, 14, 160, 176, 6, 0.25, 1, 0),
                         (3, 18, 176, 304, 6, 0.25, 2, 0), (3, 5, 304, 512, 6, 0.25, 1, 0)),
    "efficientnetv2-l": ((3, 4, 32, 32, 1, 0, 1, 1), (3, 7, 32, 64, 4, 0, 2, 1), (3, 7, 64, 96, 4, 0, 2, 1),
                         (3, 10, 96, 192, 4, 0.25, 2, 0), (3, 19, 192, 224, 6, 0.25, 1, 0),
                         (3, 25, 224, 384, 6, 0.25, 2, 0), (3, 7, 384, 640, 6, 0.25, 1, 0)),
    **{f"efficientnetv2-b{i}": _B_STAGES for i in range(4)},
}
DEFAULT_BLOCKS_ARGS = {name: [dict(zip(_KEYS, stage)) for stage in stages] for name, stages in _STAGES.items()}
# Keras's initializers of the convolutions and the classifier are those of EfficientNet.


def round_filters(filters, width_coefficient, min_depth, depth_divisor):
    """``filters`` scaled by ``width_coefficient`` and rounded to a multiple of ``depth_divisor``."""
    filters *= width_coefficient
    minimum_depth = min_depth or depth_divisor
    return int(max(minimum_depth, int(filters + depth_divisor / 2) // depth_divisor * depth_divisor))


def round_repeats(repeats, depth_coefficient):
    return int(math.ceil(depth_coefficient * repeats))


def MBConvBlock(input_filters, output_filters, expand_ratio=1, kernel_size=3, strides=1, se_ratio=0.0,
                bn_momentum=0.9, activation="swish", survival_probability=0.8, name=None):
    """The mobile inverted bottleneck (expand 1x1, depthwise, squeeze-excite, project 1x1) as a function of its
    input tensor."""
    def apply(inputs):
        filters = input_filters * expand_ratio
        x = inputs
        if expand_ratio != 1:
            x = layers.Conv2D(filters=filters, kernel_size=1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                              padding="same", data_format="channels_last", use_bias=False,
                              name=f"{name}expand_conv")(inputs)
            x = layers.BatchNormalization(axis=_BN_AXIS, momentum=bn_momentum, name=f"{name}expand_bn")(x)
            x = layers.Activation(activation, name=f"{name}expand_activation")(x)
        x = layers.DepthwiseConv2D(kernel_size=kernel_size, strides=strides,
                                   depthwise_initializer=CONV_KERNEL_INITIALIZER, padding="same",
                                   data_format="channels_last", use_bias=False, name=f"{name}dwconv2")(x)
        x = layers.BatchNormalization(axis=_BN_AXIS, momentum=bn_momentum, name=f"{name}bn")(x)
        x = layers.Activation(activation, name=f"{name}activation")(x)
        if 0 < se_ratio <= 1:
            x = squeeze_excite(x, input_filters, filters, se_ratio, activation, name)
        x = project(x, output_filters, name, momentum=bn_momentum)
        return residual(x, inputs, strides == 1 and input_filters == output_filters, survival_probability, name)
    return apply


def FusedMBConvBlock(input_filters, output_filters, expand_ratio=1, kernel_size=3, strides=1, se_ratio=0.0,
                     bn_momentum=0.9, activation="swish", survival_probability=0.8, name=None):
    """The fused block: one ``kernel_size`` convolution in place of the expansion and the depthwise convolution
    (the projection itself when ``expand_ratio`` is 1), as a function of its input tensor."""
    def apply(inputs):
        filters = input_filters * expand_ratio
        x = inputs
        if expand_ratio != 1:
            x = layers.Conv2D(filters, kernel_size=kernel_size, strides=strides,
                              kernel_initializer=CONV_KERNEL_INITIALIZER, data_format="channels_last",
                              padding="same", use_bias=False, name=f"{name}expand_conv")(inputs)
            x = layers.BatchNormalization(axis=_BN_AXIS, momentum=bn_momentum, name=f"{name}expand_bn")(x)
            x = layers.Activation(activation=activation, name=f"{name}expand_activation")(x)
        if 0 < se_ratio <= 1:
            x = squeeze_excite(x, input_filters, filters, se_ratio, activation, name)
        # without an expansion, the projection is the block's one full convolution
        x = project(x, output_filters, name, momentum=bn_momentum, kernel_size=1 if expand_ratio != 1 else kernel_size,
                    strides=1 if expand_ratio != 1 else strides)
        if expand_ratio == 1:
            x = layers.Activation(activation=activation, name=f"{name}project_activation")(x)
        return residual(x, inputs, strides == 1 and input_filters == output_filters, survival_probability, name)
    return apply


def _check_blocks_args(fn_name, blocks_args):
    if not isinstance(blocks_args, (list, tuple)) or not blocks_args or \
            not all(isinstance(a, dict) and set(a) == set(_KEYS) for a in blocks_args):
        raise ValueError(f"{fn_name}: `blocks_args` should be 'default' or a list of dicts with the keys "
                         f"{list(_KEYS)}. Received: blocks_args={blocks_args!r:.300}")
    for args in blocks_args:
        if args["num_repeat"] <= 0:
            raise ValueError(f"{fn_name}: the number of repeats in `EfficientNetV2` must be > 0. "
                             f"Received: num_repeat={args['num_repeat']}")
        if args["conv_type"] not in (0, 1):
            raise ValueError(f"{fn_name}: `conv_type` should be 0 (MBConv) or 1 (fused MBConv). "
                             f"Received: conv_type={args['conv_type']!r}")


def EfficientNetV2(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2, drop_connect_rate=0.2,
                   depth_divisor=8, min_depth=8, bn_momentum=0.9, activation="swish", blocks_args="default",
                   name="efficientnetv2", include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax", include_preprocessing=True,
                   weights_name=None, fn_name="EfficientNetV2"):
    """The EfficientNetV2 of ``width_coefficient`` and ``depth_coefficient`` (Keras's
    ``efficientnet_v2.EfficientNetV2``). ``blocks_args="default"`` takes the stages of the model ``name``
    names (``efficientnetv2-b0`` .. ``-b3``, ``-s``, ``-m``, ``-l``), as in Keras; "imagenet" weights are Keras's
    file ``<name>[_notop].h5``, named after the model as Keras names it (``weights_name`` "b0" .. "b3", "-s",
    "-m", "-l", as Keras's, says which model's weights they are)."""
    if isinstance(blocks_args, str) and blocks_args == "default":
        if name not in DEFAULT_BLOCKS_ARGS:
            raise ValueError(f"{fn_name}: blocks_args='default' takes the stages of the model `name` names, one of "
                             f"{sorted(DEFAULT_BLOCKS_ARGS)}. Received: name={name!r}")
        blocks_args = DEFAULT_BLOCKS_ARGS[name]
    _check_blocks_args(fn_name, blocks_args)
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=default_size, min_size=32)
    if weights == "imagenet" and weights_name is None:
        raise ValueError(f"{fn_name}: weights='imagenet' need `weights_name` (b0..b3, -s, -m, -l), the file's "
                         "model.")
    # As Keras, the file is named after the model's name (efficientnetv2-b0 .. -l unless renamed: a renamed
    # model looks for a file of its own name, Keras's download of it checked against the hash of weights_name's).
    file_name = f"{name}{'' if include_top else '_notop'}.h5"
    path = weights_file(fn_name, weights, file_name, "efficientnet_v2", url=_URL + file_name)
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    x = img_input
    if include_preprocessing:
        # As Keras: the B models' preprocessing is chosen by the model's name.
        if name.split("-")[-1].startswith("b") and input_shape[_BN_AXIS - 1] == 3:
            x = layers.Rescaling(scale=1.0 / 255)(x)
            x = layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.229**2, 0.224**2, 0.225**2],
                                     axis=_BN_AXIS)(x)
        else:
            x = layers.Rescaling(scale=1.0 / 128.0, offset=-1)(x)

    def filters_of(count):
        return round_filters(filters=count, width_coefficient=width_coefficient, min_depth=min_depth,
                             depth_divisor=depth_divisor)

    x = layers.Conv2D(filters=filters_of(blocks_args[0]["input_filters"]), kernel_size=3, strides=2,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, padding="same", use_bias=False,
                      name="stem_conv")(x)
    x = layers.BatchNormalization(axis=_BN_AXIS, momentum=bn_momentum, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = copy.deepcopy(list(blocks_args))
    b = 0
    blocks = float(sum(args["num_repeat"] for args in blocks_args))
    for i, args in enumerate(blocks_args):
        args["input_filters"] = filters_of(args["input_filters"])
        args["output_filters"] = filters_of(args["output_filters"])
        block = (MBConvBlock, FusedMBConvBlock)[args.pop("conv_type")]
        for j in range(round_repeats(repeats=args.pop("num_repeat"), depth_coefficient=depth_coefficient)):
            if j > 0:
                args["strides"] = 1
                args["input_filters"] = args["output_filters"]
            x = block(activation=activation, bn_momentum=bn_momentum,
                      survival_probability=drop_connect_rate * b / blocks, name=f"block{i + 1}{chr(j + 97)}_",
                      **args)(x)
            b += 1

    x = layers.Conv2D(filters=filters_of(1280), kernel_size=1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                      padding="same", data_format="channels_last", use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(axis=_BN_AXIS, momentum=bn_momentum, name="top_bn")(x)
    x = layers.Activation(activation=activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, kernel_initializer=DENSE_KERNEL_INITIALIZER,
                         bias_initializer=initializers.Constant(0.0), name="predictions")(x)
    else:
        x = head(x, False, pooling, classes, classifier_activation, pool_names=("avg_pool", "max_pool"))
    return finish(img_input, input_tensor, x, name, path)


# (width, depth, default size) of each model, by its weights name.
_SCALES = {"b0": (1.0, 1.0, 224), "b1": (1.0, 1.1, 240), "b2": (1.1, 1.2, 260), "b3": (1.2, 1.4, 300),
           "-s": (1.0, 1.0, 384), "-m": (1.0, 1.0, 480), "-l": (1.0, 1.0, 480)}


def _efficientnet_v2(variant, fn_name, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, include_preprocessing, name):
    width, depth, size = _SCALES[variant]
    # The stages are the variant's whatever the model's name (Keras looks them up by the name).
    return EfficientNetV2(width_coefficient=width, depth_coefficient=depth, default_size=size,
                          blocks_args=DEFAULT_BLOCKS_ARGS[f"efficientnetv2-{variant.lstrip('-')}"], name=name,
                          include_top=include_top, weights=weights, input_tensor=input_tensor,
                          input_shape=input_shape, pooling=pooling, classes=classes,
                          classifier_activation=classifier_activation, include_preprocessing=include_preprocessing,
                          weights_name=variant, fn_name=fn_name)


def EfficientNetV2B0(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", include_preprocessing=True,
                     name="efficientnetv2-b0"):
    """EfficientNetV2B0 (Keras's ``keras.applications.EfficientNetV2B0``), taking pixels in 0..255 (its own
    preprocessing off with ``include_preprocessing=False``).

    ``weights``: None (random), "imagenet" (Keras's ``efficientnetv2-b0[_notop].h5`` found on this machine: see
    ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape`` (height, width, 3) with sides of
    at least 32 (the top needs (224, 224, 3) with imagenet weights); ``pooling`` None, "avg" or "max" without
    the top. B1, B2, B3, S, M and L are for inputs of 240, 260, 300, 384, 480 and 480.
    """
    return _efficientnet_v2("b0", "EfficientNetV2B0", include_top, weights, input_tensor, input_shape, pooling,
                            classes, classifier_activation, include_preprocessing, name)


def EfficientNetV2B1(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", include_preprocessing=True,
                     name="efficientnetv2-b1"):
    """EfficientNetV2B1 (Keras's ``keras.applications.EfficientNetV2B1``); arguments as ``EfficientNetV2B0``'s."""
    return _efficientnet_v2("b1", "EfficientNetV2B1", include_top, weights, input_tensor, input_shape, pooling,
                            classes, classifier_activation, include_preprocessing, name)


def EfficientNetV2B2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", include_preprocessing=True,
                     name="efficientnetv2-b2"):
    """EfficientNetV2B2 (Keras's ``keras.applications.EfficientNetV2B2``); arguments as ``EfficientNetV2B0``'s."""
    return _efficientnet_v2("b2", "EfficientNetV2B2", include_top, weights, input_tensor, input_shape, pooling,
                            classes, classifier_activation, include_preprocessing, name)


def EfficientNetV2B3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", include_preprocessing=True,
                     name="efficientnetv2-b3"):
    """EfficientNetV2B3 (Keras's ``keras.applications.EfficientNetV2B3``); arguments as ``EfficientNetV2B0``'s."""
    return _efficientnet_v2("b3", "EfficientNetV2B3", include_top, weights, input_tensor, input_shape, pooling,
                            classes, classifier_activation, include_preprocessing, name)


def EfficientNetV2S(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", include_preprocessing=True,
                    name="efficientnetv2-s"):
    """EfficientNetV2S (Keras's ``keras.applications.EfficientNetV2S``); arguments as ``EfficientNetV2B0``'s."""
    return _efficientnet_v2("-s", "EfficientNetV2S", include_top, weights, input_tensor, input_shape, pooling,
                            classes, classifier_activation, include_preprocessing, name)


def EfficientNetV2M(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", include_preprocessing=True,
                    name="efficientnetv2-m"):
    """EfficientNetV2M (Keras's ``keras.applications.EfficientNetV2M``); arguments as ``EfficientNetV2B0``'s."""
    return _efficientnet_v2("-m", "EfficientNetV2M", include_top, weights, input_tensor, input_shape, pooling,
                            classes, classifier_activation, include_preprocessing, name)


def EfficientNetV2L(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", include_preprocessing=True,
                    name="efficientnetv2-l"):
    """EfficientNetV2L (Keras's ``keras.applications.EfficientNetV2L``); arguments as ``EfficientNetV2B0``'s."""
    return _efficientnet_v2("-l", "EfficientNetV2L", include_top, weights, input_tensor, input_shape, pooling,
                            classes, classifier_activation, include_preprocessing, name)


def preprocess_input(x, data_format=None):
    """``x`` unchanged: EfficientNetV2 preprocesses its inputs itself (see the module's docstring), as in Keras."""
    return x


decode_predictions = imagenet_utils.decode_predictions
