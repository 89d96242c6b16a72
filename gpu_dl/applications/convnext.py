"""ConvNeXtTiny, Small, Base, Large and XLarge (Liu et al., 2022), as Keras 3.15's ``keras.applications.convnext``
builds them: the same layers (the stem and downsampling blocks as nested Sequential models, as in Keras), layer
names, configs and weight shapes, so weights move between the two (Keras 3 files, and Keras's ImageNet files in
the Keras 2 HDF5 format).

The models take pixels in 0..255 and normalise them themselves (a Normalization by ImageNet's mean and variance,
unless ``include_preprocessing=False``), so ``preprocess_input`` returns its input. Each block scales its branch
by ``LayerScale`` and, with a drop path rate, drops it per sample in training with ``StochasticDepth``: Keras's
layers of this module (its files name them so, and gpu_dl reads and writes them under that name).

Images are channels_last (gpu_dl's only layout, and the only one Keras builds ConvNeXt for); inputs are at least
32x32.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend, initializers, layers, random
from . import imagenet_utils
from ._common import check_arguments, finish, weights_file

_KERAS_MODULE = "keras.src.applications.convnext"
MODEL_CONFIGS = {
    "tiny": {"depths": [3, 3, 9, 3], "projection_dims": [96, 192, 384, 768], "default_size": 224},
    "small": {"depths": [3, 3, 27, 3], "projection_dims": [96, 192, 384, 768], "default_size": 224},
    "base": {"depths": [3, 3, 27, 3], "projection_dims": [128, 256, 512, 1024], "default_size": 224},
    "large": {"depths": [3, 3, 27, 3], "projection_dims": [192, 384, 768, 1536], "default_size": 224},
    "xlarge": {"depths": [3, 3, 27, 3], "projection_dims": [256, 512, 1024, 2048], "default_size": 224},
}


def _rate(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{where}: `{name}` must be a number in [0, 1), got {value!r}.")
    return value


class StochasticDepth(layers.Layer):
    """Drops its input per sample in training (Huang et al., 2016): each sample is kept with probability
    ``1 - drop_path_rate`` and scaled by its inverse, or zeroed; the identity in inference. Keras draws from its
    global generator (no seed of the layer's own): so does gpu_dl (``gpu_dl.random``, seed None)."""

    keras_module = _KERAS_MODULE

    def __init__(self, drop_path_rate, **kwargs):
        super().__init__(**kwargs)
        self.drop_path_rate = _rate(drop_path_rate, "drop_path_rate", f"StochasticDepth '{self.name}'")

    def call(self, x, training=False):
        if not training:
            self._saved = None
            return x
        keep_prob = 1 - self.drop_path_rate
        draws = random.uniform((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype)
        # floor(keep_prob + u) is 1 with probability keep_prob (Keras's draw), else 0.
        scale = backend.array_module(x).floor(keep_prob + draws) / x.dtype.type(keep_prob)
        self._saved = (scale,)
        return x * scale

    def backward(self, dy):
        (scale,) = self.saved()
        return dy * scale

    def get_config(self):
        config = super().get_config()
        config.update({"drop_path_rate": self.drop_path_rate})
        return config


class LayerScale(layers.Layer):
    """Its input times a learned scale per channel (Touvron et al., 2021), ``gamma`` of shape
    (``projection_dim``,) starting at ``init_values``."""

    keras_module = _KERAS_MODULE

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        where = f"LayerScale '{self.name}'"
        if isinstance(init_values, bool) or not isinstance(init_values, numbers.Real):
            raise TypeError(f"{where}: `init_values` must be a number, got {init_values!r}.")
        if isinstance(projection_dim, bool) or not isinstance(projection_dim, numbers.Integral) or projection_dim < 1:
            raise ValueError(f"{where}: `projection_dim` must be a positive integer, got {projection_dim!r}.")
        self.init_values = init_values
        self.projection_dim = int(projection_dim)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.projection_dim:
            raise ValueError(f"LayerScale '{self.name}': the input's last axis ({input_shape[-1]}) must be "
                             f"projection_dim={self.projection_dim}.")
        # Unnamed, as Keras makes it: "variable", "variable_1", ...
        self.gamma = self.add_weight(shape=(self.projection_dim,),
                                     initializer=initializers.Constant(self.init_values), trainable=True)

    def call(self, x, training=False):
        self._saved = (x,) if training else None
        return x * self.gamma.value

    def backward(self, dy):
        (x,) = self.saved()
        if self.trainable:
            self.gamma.grad = (dy * x).reshape(-1, self.projection_dim).sum(axis=0)
        return dy * self.gamma.value

    def get_config(self):
        config = super().get_config()
        config.update({"init_values": self.init_values, "projection_dim": self.projection_dim})
        return config


def ConvNeXtBlock(projection_dim, drop_path_rate=0.0, layer_scale_init_value=1e-6, name=None):
    """The ConvNeXt block as a function of its input: depthwise 7x7 (a grouped Conv2D), LayerNormalization,
    Dense to 4x, GELU, Dense back, LayerScale, and StochasticDepth (the identity Activation without drop path)
    before the residual Add."""
    def apply(inputs):
        x = layers.Conv2D(filters=projection_dim, kernel_size=7, padding="same", groups=projection_dim,
                          name=f"{name}_depthwise_conv")(inputs)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_layernorm")(x)
        x = layers.Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(x)
        x = layers.Activation("gelu", name=f"{name}_gelu")(x)
        x = layers.Dense(projection_dim, name=f"{name}_pointwise_conv_2")(x)
        if layer_scale_init_value is not None:
            x = LayerScale(layer_scale_init_value, projection_dim, name=f"{name}_layer_scale")(x)
        if drop_path_rate:
            layer = StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")
        else:
            layer = layers.Activation("linear", name=f"{name}_identity")
        return inputs + layer(x)
    return apply


def ConvNeXt(depths, projection_dims, drop_path_rate=0.0, layer_scale_init_value=1e-6, default_size=224,
             name="convnext", include_preprocessing=True, include_top=True, weights=None, input_tensor=None,
             input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", weights_name=None,
             fn_name="ConvNeXt"):
    """The ConvNeXt of four stages of ``depths`` blocks of ``projection_dims`` channels (Keras's
    ``convnext.ConvNeXt``). "imagenet" weights need the published configuration of ``weights_name``
    ("convnext_tiny" .. "convnext_xlarge"), named in the model's ``name``: Keras's file
    ``<weights_name>[_notop].h5``."""
    from ..models import Sequential
    if not isinstance(depths, (list, tuple)) or len(depths) != 4 or not isinstance(projection_dims, (list, tuple)) \
            or len(projection_dims) != 4:
        raise ValueError(f"{fn_name}: `depths` and `projection_dims` must be lists of 4 (one per stage). Received: "
                         f"depths={depths!r}, projection_dims={projection_dims!r}")
    _rate(drop_path_rate, "drop_path_rate", fn_name)
    weights, input_shape = check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation,
                                           input_shape, default_size=default_size, min_size=32)
    if weights == "imagenet":
        expected = MODEL_CONFIGS.get(str(weights_name).split("convnext_")[-1])
        if expected is None:
            raise ValueError(f"{fn_name}: weights='imagenet' need `weights_name`, one of "
                             f"{['convnext_' + k for k in MODEL_CONFIGS]}. Received: weights_name={weights_name!r}")
        if list(depths) != expected["depths"] or list(projection_dims) != expected["projection_dims"]:
            raise ValueError(f"{fn_name}: architecture configuration does not match {weights_name} variant. When "
                             "using pre-trained weights, the model architecture must match the pre-trained "
                             f"configuration exactly. Expected depths: {expected['depths']}, got: {list(depths)}. "
                             f"Expected projection_dims: {expected['projection_dims']}, got: "
                             f"{list(projection_dims)}.")
        if weights_name not in name:
            raise ValueError(f'{fn_name}: model name "{name}" does not match weights variant "{weights_name}". '
                             "When using imagenet weights, model name must contain the weights variant (e.g., "
                             f'"{weights_name}").')
    path = weights_file(fn_name, weights, f"{weights_name}{'' if include_top else '_notop'}.h5", "convnext")
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)

    x = img_input
    if include_preprocessing and input_shape[-1] == 3:
        x = layers.Normalization(mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
                                 variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2],
                                 name=f"{name}_prestem_normalization")(x)

    stem = Sequential([layers.Conv2D(projection_dims[0], kernel_size=4, strides=4, name=f"{name}_stem_conv"),
                       layers.LayerNormalization(epsilon=1e-6, name=f"{name}_stem_layernorm")],
                      name=f"{name}_stem")
    downsample_layers = [stem] + [
        Sequential([layers.LayerNormalization(epsilon=1e-6, name=f"{name}_downsampling_layernorm_{i}"),
                    layers.Conv2D(projection_dims[i + 1], kernel_size=2, strides=2,
                                  name=f"{name}_downsampling_conv_{i}")],
                   name=f"{name}_downsampling_block_{i}")
        for i in range(3)]
    # The drop path rate grows linearly from 0 over the blocks, as in the original ConvNeXt.
    depth_drop_rates = [float(r) for r in numpy.linspace(0.0, drop_path_rate, sum(depths))]
    cur = 0
    for i in range(4):
        x = downsample_layers[i](x)
        for j in range(depths[i]):
            x = ConvNeXtBlock(projection_dim=projection_dims[i], drop_path_rate=depth_drop_rates[cur + j],
                              layer_scale_init_value=layer_scale_init_value, name=f"{name}_stage_{i}_block_{j}")(x)
        cur += depths[i]

    if include_top:
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
        x = layers.Dense(classes, activation=classifier_activation, name=f"{name}_head_dense")(x)
    else:
        if pooling == "avg":
            x = layers.GlobalAveragePooling2D()(x)
        elif pooling == "max":
            x = layers.GlobalMaxPooling2D()(x)
        x = layers.LayerNormalization(epsilon=1e-6)(x)
    return finish(img_input, input_tensor, x, name, path)


def _convnext(variant, fn_name, include_top, include_preprocessing, weights, input_tensor, input_shape, pooling,
              classes, classifier_activation, name):
    config = MODEL_CONFIGS[variant]
    return ConvNeXt(weights_name=f"convnext_{variant}", depths=config["depths"],
                    projection_dims=config["projection_dims"], drop_path_rate=0.0, layer_scale_init_value=1e-6,
                    default_size=config["default_size"], name=name, include_top=include_top,
                    include_preprocessing=include_preprocessing, weights=weights, input_tensor=input_tensor,
                    input_shape=input_shape, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, fn_name=fn_name)


def ConvNeXtTiny(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                 input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", name="convnext_tiny"):
    """ConvNeXtTiny (Keras's ``keras.applications.ConvNeXtTiny``), taking pixels in 0..255 (its own
    normalisation off with ``include_preprocessing=False``).

    ``weights``: None (random), "imagenet" (Keras's ``convnext_tiny[_notop].h5`` found on this machine: see
    ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape`` (height, width, 3) with sides of
    at least 32 (the top needs (224, 224, 3) with imagenet weights); ``pooling`` None, "avg" or "max" without
    the top (a LayerNormalization follows, as in Keras). Small, Base, Large and XLarge are deeper or wider.
    """
    return _convnext("tiny", "ConvNeXtTiny", include_top, include_preprocessing, weights, input_tensor, input_shape,
                     pooling, classes, classifier_activation, name)


def ConvNeXtSmall(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                  input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                  name="convnext_small"):
    """ConvNeXtSmall (Keras's ``keras.applications.ConvNeXtSmall``); arguments as ``ConvNeXtTiny``'s."""
    return _convnext("small", "ConvNeXtSmall", include_top, include_preprocessing, weights, input_tensor,
                     input_shape, pooling, classes, classifier_activation, name)


def ConvNeXtBase(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                 input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", name="convnext_base"):
    """ConvNeXtBase (Keras's ``keras.applications.ConvNeXtBase``); arguments as ``ConvNeXtTiny``'s."""
    return _convnext("base", "ConvNeXtBase", include_top, include_preprocessing, weights, input_tensor, input_shape,
                     pooling, classes, classifier_activation, name)


def ConvNeXtLarge(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                  input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                  name="convnext_large"):
    """ConvNeXtLarge (Keras's ``keras.applications.ConvNeXtLarge``); arguments as ``ConvNeXtTiny``'s."""
    return _convnext("large", "ConvNeXtLarge", include_top, include_preprocessing, weights, input_tensor,
                     input_shape, pooling, classes, classifier_activation, name)


def ConvNeXtXLarge(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
                   input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                   name="convnext_xlarge"):
    """ConvNeXtXLarge (Keras's ``keras.applications.ConvNeXtXLarge``); arguments as ``ConvNeXtTiny``'s."""
    return _convnext("xlarge", "ConvNeXtXLarge", include_top, include_preprocessing, weights, input_tensor,
                     input_shape, pooling, classes, classifier_activation, name)


def preprocess_input(x, data_format=None):
    """``x`` unchanged: ConvNeXt normalises its inputs itself (see the module's docstring), as in Keras."""
    return x


decode_predictions = imagenet_utils.decode_predictions
