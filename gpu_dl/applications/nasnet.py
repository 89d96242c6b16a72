"""NASNetMobile and NASNetLarge (Zoph et al., 2018), as Keras 3.15's ``keras.applications.nasnet`` builds them:
the same layers, layer names, configs and weight shapes, so weights move between the two (Keras 3 files, and
Keras's ImageNet files in the Keras 2 HDF5 format).

Keras 3.15 refuses NASNetMobile on its torch backend (a bug of that backend); gpu_dl builds it, as Keras's
other backends do. Images are channels_last (gpu_dl's only layout, and the only one Keras builds NASNet for);
inputs are at least 32x32.
"""
from __future__ import annotations

import numbers

from .. import layers
from . import imagenet_utils
from ._common import check_arguments, finish, head, weights_file

_URL = "https://storage.googleapis.com/tensorflow/keras-applications/nasnet/"
# Keras's local file names, and the names it downloads them from, by (default size, include_top).
_IMAGENET_FILES = {(224, True): ("nasnet_mobile.h5", "NASNet-mobile.h5"),
                   (224, False): ("nasnet_mobile_no_top.h5", "NASNet-mobile-no-top.h5"),
                   (331, True): ("nasnet_large.h5", "NASNet-large.h5"),
                   (331, False): ("nasnet_large_no_top.h5", "NASNet-large-no-top.h5")}
_BN = dict(axis=-1, momentum=0.9997, epsilon=1e-3)


def _positive_int(fn_name, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{fn_name}: `{name}` should be a positive integer. Received {name}={value!r}")


def NASNet(input_shape=None, penultimate_filters=4032, num_blocks=6, stem_block_filters=96, skip_reduction=True,
           filter_multiplier=2, include_top=True, weights="imagenet", input_tensor=None, pooling=None, classes=1000,
           default_size=None, classifier_activation="softmax", name="NASNet", fn_name="NASNet"):
    """A NASNet-A model (Keras's ``nasnet.NASNet``): ``num_blocks`` normal cells at each of three scales,
    ``penultimate_filters`` channels before the top (a multiple of 24 * ``filter_multiplier`` ** 2). "imagenet"
    weights exist for the two published models only, told by ``default_size`` (224: mobile, 331: large)."""
    for argument in ("penultimate_filters", "num_blocks", "stem_block_filters", "filter_multiplier"):
        _positive_int(fn_name, argument, locals()[argument])
    if isinstance(input_shape, tuple) and None in input_shape and weights == "imagenet":
        raise ValueError(f"{fn_name}: when specifying the input shape of a NASNet and loading `ImageNet` weights, "
                         f"the input_shape argument must be static (no None entries). Got: "
                         f"`input_shape={input_shape}`.")
    if default_size is None:
        default_size = 331
    if weights == "imagenet" and (default_size, include_top) not in _IMAGENET_FILES:
        raise ValueError(f"{fn_name}: ImageNet weights can only be loaded with NASNetLarge or NASNetMobile "
                         f"(default_size 331 or 224). Received: default_size={default_size}")
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=default_size, min_size=32)
    if penultimate_filters % (24 * (filter_multiplier ** 2)) != 0:
        raise ValueError(f"{fn_name}: for NASNet-A models, the `penultimate_filters` must be a multiple of 24 * "
                         f"(`filter_multiplier` ** 2). Current value: {penultimate_filters}")
    path = weights
    if weights == "imagenet":
        local, remote = _IMAGENET_FILES[default_size, bool(include_top)]
        path = weights_file(fn_name, weights, local, "nasnet", url=_URL + remote)
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    filters = penultimate_filters // 24
    x = layers.Conv2D(stem_block_filters, (3, 3), strides=(2, 2), padding="valid", use_bias=False, name="stem_conv1",
                      kernel_initializer="he_normal")(img_input)
    x = layers.BatchNormalization(**_BN, name="stem_bn1")(x)
    p = None
    x, p = _reduction_a_cell(x, p, filters // (filter_multiplier ** 2), block_id="stem_1")
    x, p = _reduction_a_cell(x, p, filters // filter_multiplier, block_id="stem_2")
    for scale in range(3):
        if scale:
            x, p0 = _reduction_a_cell(x, p, filters * filter_multiplier ** scale,
                                      block_id=f"reduce_{scale * num_blocks}")
            p = p if skip_reduction else p0
        for i in range(num_blocks):
            block_id = f"{i}" if scale == 0 else f"{scale * num_blocks + i + 1}"
            x, p = _normal_a_cell(x, p, filters * filter_multiplier ** scale, block_id=block_id)
    x = layers.Activation("relu")(x)

    if include_top:
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = head(x, False, pooling, classes, classifier_activation)
    return finish(img_input, input_tensor, x, name, path)


def NASNetMobile(input_shape=None, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                 classes=1000, classifier_activation="softmax", name="nasnet_mobile"):
    """NASNetMobile (Keras's ``keras.applications.NASNetMobile``): inputs preprocessed by ``nasnet.preprocess_input``
    (scaled to -1..1).

    ``weights``: None (random), "imagenet" (Keras's ``nasnet_mobile[_no_top].h5`` found on this machine: see
    ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape`` (height, width, 3) with sides of
    at least 32, (224, 224, 3) when not given (with or without the top; the top needs it with imagenet weights);
    ``pooling`` None, "avg" or "max" without the top.
    """
    if not include_top and input_shape is None:
        input_shape = (224, 224, 3)
    return NASNet(input_shape, penultimate_filters=1056, num_blocks=4, stem_block_filters=32, skip_reduction=False,
                  filter_multiplier=2, include_top=include_top, weights=weights, input_tensor=input_tensor,
                  pooling=pooling, classes=classes, default_size=224, classifier_activation=classifier_activation,
                  name=name, fn_name="NASNetMobile")


def NASNetLarge(input_shape=None, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="nasnet_large"):
    """NASNetLarge (Keras's ``keras.applications.NASNetLarge``); arguments as ``NASNetMobile``'s, for inputs of
    331x331 (Keras's ``nasnet_large[_no_top].h5``), any size of at least 32 without the top."""
    return NASNet(input_shape, penultimate_filters=4032, num_blocks=6, stem_block_filters=96, skip_reduction=True,
                  filter_multiplier=2, include_top=include_top, weights=weights, input_tensor=input_tensor,
                  pooling=pooling, classes=classes, default_size=331, classifier_activation=classifier_activation,
                  name=name, fn_name="NASNetLarge")


def _separable_conv_block(ip, filters, kernel_size=(3, 3), strides=(1, 1), block_id=None):
    """Two [ReLU, separable convolution, batch normalization], the first with ``strides`` (after Keras's
    centring zero padding when 2)."""
    x = layers.Activation("relu")(ip)
    if strides == (2, 2):
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"separable_conv_1_pad_{block_id}")(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = layers.SeparableConv2D(filters, kernel_size, strides=strides, name=f"separable_conv_1_{block_id}",
                               padding=conv_pad, use_bias=False)(x)
    x = layers.BatchNormalization(**_BN, name=f"separable_conv_1_bn_{block_id}")(x)
    x = layers.Activation("relu")(x)
    x = layers.SeparableConv2D(filters, kernel_size, name=f"separable_conv_2_{block_id}", padding="same",
                               use_bias=False)(x)
    return layers.BatchNormalization(**_BN, name=f"separable_conv_2_bn_{block_id}")(x)


def _adjust_block(p, ip, filters, block_id=None):
    """The previous cell's output ``p`` brought to ``ip``'s width (a factorised strided reduction) or to
    ``filters`` channels (a 1x1 projection)."""
    if p is None:
        return ip
    if p.shape[-2] != ip.shape[-2]:
        p = layers.Activation("relu", name=f"adjust_relu_1_{block_id}")(p)
        p1 = layers.AveragePooling2D((1, 1), strides=(2, 2), padding="valid", name=f"adjust_avg_pool_1_{block_id}")(p)
        p1 = layers.Conv2D(filters // 2, (1, 1), padding="same", use_bias=False, name=f"adjust_conv_1_{block_id}",
                           kernel_initializer="he_normal")(p1)
        # The second path starts one pixel down and right: padded at the bottom right, cropped at the top left.
        p2 = layers.ZeroPadding2D(padding=((0, 1), (0, 1)))(p)
        p2 = layers.Cropping2D(cropping=((1, 0), (1, 0)))(p2)
        p2 = layers.AveragePooling2D((1, 1), strides=(2, 2), padding="valid", name=f"adjust_avg_pool_2_{block_id}")(p2)
        p2 = layers.Conv2D(filters // 2, (1, 1), padding="same", use_bias=False, name=f"adjust_conv_2_{block_id}",
                           kernel_initializer="he_normal")(p2)
        p = layers.concatenate([p1, p2], axis=-1)
        return layers.BatchNormalization(**_BN, name=f"adjust_bn_{block_id}")(p)
    if p.shape[-1] != filters:
        p = layers.Activation("relu")(p)
        p = layers.Conv2D(filters, (1, 1), strides=(1, 1), padding="same", name=f"adjust_conv_projection_{block_id}",
                          use_bias=False, kernel_initializer="he_normal")(p)
        return layers.BatchNormalization(**_BN, name=f"adjust_bn_{block_id}")(p)
    return p


def _squeeze(ip, filters, kind, block_id):
    """ReLU, 1x1 convolution to ``filters`` and batch normalization of the cell's input."""
    h = layers.Activation("relu")(ip)
    h = layers.Conv2D(filters, (1, 1), strides=(1, 1), padding="same", name=f"{kind}_conv_1_{block_id}",
                      use_bias=False, kernel_initializer="he_normal")(h)
    return layers.BatchNormalization(**_BN, name=f"{kind}_bn_1_{block_id}")(h)


def _normal_a_cell(ip, p, filters, block_id=None):
    """The Normal cell of NASNet-A (Fig. 4 of the paper); returns (its output, its input)."""
    p = _adjust_block(p, ip, filters, block_id)
    h = _squeeze(ip, filters, "normal", block_id)
    x1_1 = _separable_conv_block(h, filters, kernel_size=(5, 5), block_id=f"normal_left1_{block_id}")
    x1_2 = _separable_conv_block(p, filters, block_id=f"normal_right1_{block_id}")
    x1 = layers.add([x1_1, x1_2], name=f"normal_add_1_{block_id}")
    x2_1 = _separable_conv_block(p, filters, (5, 5), block_id=f"normal_left2_{block_id}")
    x2_2 = _separable_conv_block(p, filters, (3, 3), block_id=f"normal_right2_{block_id}")
    x2 = layers.add([x2_1, x2_2], name=f"normal_add_2_{block_id}")
    x3 = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same", name=f"normal_left3_{block_id}")(h)
    x3 = layers.add([x3, p], name=f"normal_add_3_{block_id}")
    x4_1 = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same", name=f"normal_left4_{block_id}")(p)
    x4_2 = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same", name=f"normal_right4_{block_id}")(p)
    x4 = layers.add([x4_1, x4_2], name=f"normal_add_4_{block_id}")
    x5 = _separable_conv_block(h, filters, block_id=f"normal_left5_{block_id}")
    x5 = layers.add([x5, h], name=f"normal_add_5_{block_id}")
    x = layers.concatenate([p, x1, x2, x3, x4, x5], axis=-1, name=f"normal_concat_{block_id}")
    return x, ip


def _reduction_a_cell(ip, p, filters, block_id=None):
    """The Reduction cell of NASNet-A (Fig. 4 of the paper), halving the size; returns (its output, its input)."""
    p = _adjust_block(p, ip, filters, block_id)
    h = _squeeze(ip, filters, "reduction", block_id)
    h3 = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(h, 3), name=f"reduction_pad_1_{block_id}")(h)
    x1_1 = _separable_conv_block(h, filters, (5, 5), strides=(2, 2), block_id=f"reduction_left1_{block_id}")
    x1_2 = _separable_conv_block(p, filters, (7, 7), strides=(2, 2), block_id=f"reduction_right1_{block_id}")
    x1 = layers.add([x1_1, x1_2], name=f"reduction_add_1_{block_id}")
    x2_1 = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="valid", name=f"reduction_left2_{block_id}")(h3)
    x2_2 = _separable_conv_block(p, filters, (7, 7), strides=(2, 2), block_id=f"reduction_right2_{block_id}")
    x2 = layers.add([x2_1, x2_2], name=f"reduction_add_2_{block_id}")
    x3_1 = layers.AveragePooling2D((3, 3), strides=(2, 2), padding="valid", name=f"reduction_left3_{block_id}")(h3)
    x3_2 = _separable_conv_block(p, filters, (5, 5), strides=(2, 2), block_id=f"reduction_right3_{block_id}")
    x3 = layers.add([x3_1, x3_2], name=f"reduction_add3_{block_id}")
    x4 = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same", name=f"reduction_left4_{block_id}")(x1)
    x4 = layers.add([x2, x4])
    x5_1 = _separable_conv_block(x1, filters, (3, 3), block_id=f"reduction_left4_{block_id}")
    x5_2 = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="valid", name=f"reduction_right5_{block_id}")(h3)
    x5 = layers.add([x5_1, x5_2], name=f"reduction_add4_{block_id}")
    x = layers.concatenate([x2, x3, x4, x5], axis=-1, name=f"reduction_concat_{block_id}")
    return x, ip


preprocess_input = imagenet_utils.preprocessing("tf", "NASNet")
decode_predictions = imagenet_utils.decode_predictions
