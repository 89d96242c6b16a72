"""Regularization layers beside Dropout: SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout, AlphaDropout
and ActivityRegularization, with Keras 3's arguments, defaults and configs.

The random ones act in training only (a call with ``training=True``, as
``fit`` makes) and pass their input through unchanged otherwise. As in
Keras, each with a rate (or stddev) above 0 holds a ``SeedGenerator`` of its
``seed`` as ``seed_generator`` (its state is among the layer's ``variables``,
not its weights), and each draw takes the generator's next seed pair
(``gpu_dl.random``'s draws, ``ops/random_draws.py``): on the input's device,
the same noise run after run for one seed; on NumPy the values Keras's NumPy
backend draws for that seed. Without a seed the generator's seed comes from
Python's ``random``, which ``set_random_seed`` seeds. Each keeps the one
array its backward multiplies by: the gradient of every one of them is ``dy``
times that array (``dy`` itself for the additive GaussianNoise).
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..backend import array_module, floatx
from ..ops import random_draws
from .base import Layer
from .seed_generator import SeedGenerator
from .spatial import SpatialLayer

# SELU's constants, as Keras's AlphaDropout writes them: dropped units take SELU's negative saturation value.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def dropout_rate(rate, what):
    """A rate in [0, 1) as a float: 1 would drop everything (and scale by infinity)."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"{what} must be a number in [0, 1), got {rate!r}.")
    return float(rate)


def layer_seed_generator(layer, seed):
    """The ``SeedGenerator`` of ``seed`` a random layer draws from, a bad seed refused under the layer's name."""
    try:
        return SeedGenerator(seed)
    except ValueError as e:
        raise ValueError(f"{type(layer).__name__} layer '{layer.name}': {e}") from None


def keep_mask_of_pair(pair, x, shape, rate):
    """A mask of ``shape`` (broadcasting against ``x``) in x's dtype on x's device: 1 / (1 - rate) where a
    uniform draw of the seed pair ``pair`` falls below 1 - rate, 0 elsewhere. The draws are float64 on the host,
    as Keras's NumPy backend draws them (one seed, its masks), and in x's float type on the GPU (half the bytes
    of float64 for float32 inputs). The scale is in the mask so that a dropout's backward is one multiply."""
    xp = array_module(x)
    keep = 1.0 - rate
    uniform = random_draws.dropout_mask(xp, pair, shape, numpy.float64 if xp is numpy else x.dtype)
    if uniform.dtype != x.dtype:
        return (uniform < keep).astype(x.dtype) / x.dtype.type(keep)
    # The draws' own buffer takes the mask and then its scale: the same values as the expression above (0 or 1
    # divided by the scale), without the three arrays it allocates, each training step, on the GPU.
    xp.less(uniform, keep, out=uniform)
    return xp.divide(uniform, x.dtype.type(keep), out=uniform)


def seeded_keep_mask(seed_generator, x, shape, rate):
    """``keep_mask_of_pair`` of the next seed pair of ``seed_generator``."""
    return keep_mask_of_pair(seed_generator.next(), x, shape, rate)


class KeepMaskDropout:
    """The call and backward of a dropout that multiplies by a scaled keep-mask (Dropout, SpatialDropout*):
    the layer gives ``rate``, ``seed_generator`` (where rate > 0) and ``mask_shape(shape)``, the shape of the
    mask it draws."""

    def call(self, x, training=False):
        if not training or self.rate == 0:
            self._saved = (None,) if training else None
            return x
        mask = seeded_keep_mask(self.seed_generator, x, self.mask_shape(x.shape), self.rate)
        self._saved = (mask,)
        return x * mask

    def backward(self, dy):
        (mask,) = self.saved()
        return dy if mask is None else dy * mask


class _SpatialDropout(KeepMaskDropout, SpatialLayer):
    """Dropout of whole channels: one draw per (sample, channel), shared by all its positions."""

    supports_masking = True

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = dropout_rate(rate, f"{type(self).__name__} layer '{self.name}': rate")
        self.seed = seed
        if self.rate > 0:
            self.seed_generator = layer_seed_generator(self, seed)

    def compute_output_shape(self, input_shape):
        self.check_rank(input_shape)
        return tuple(input_shape)

    def mask_shape(self, shape):
        """(N, 1, ..., C), or (N, C, 1, ...) for channels_first."""
        channel = 1 if self.channels_first else len(shape) - 1
        return tuple(n if a in (0, channel) else 1 for a, n in enumerate(shape))

    def get_config(self):
        # Keras 3 writes exactly these keys (no "trainable"): its SpatialDropout layers take no others.
        config = {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype}
        return {**config, "data_format": self.data_format} if self.takes_data_format else config


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of (batch, steps, channels) sequences with probability ``rate`` in training,
    scaling the rest by 1 / (1 - rate)."""

    rank = 1
    takes_data_format = False

    def __init__(self, rate, seed=None, **kwargs):
        if "data_format" in kwargs:
            raise TypeError("SpatialDropout1D got an unexpected keyword argument: data_format (it takes "
                            "channels_last input only, as in Keras).")
        super().__init__(rate, seed=seed, **kwargs)


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps of (batch, height, width, channels) images with probability ``rate`` in
    training, scaling the rest by 1 / (1 - rate)."""

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, data_format=data_format, **kwargs)


class SpatialDropout3D(_SpatialDropout):
    """Drops whole feature volumes of (batch, depth, height, width, channels) data with probability
    ``rate`` in training, scaling the rest by 1 / (1 - rate)."""

    rank = 3

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, data_format=data_format, **kwargs)


class _Noise(Layer):
    """A layer of any input shape that draws noise in training; a subclass makes ``seed_generator`` (from
    ``self.seed``) once its rate or stddev is known to be above 0, as Keras does."""

    fixed_input_axes = ()
    supports_masking = True

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def backward(self, dy):
        (factor,) = self.saved()
        return dy if factor is None else dy * factor


class GaussianNoise(_Noise):
    """Adds zero-mean normal noise of standard deviation ``stddev`` to its input in training."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if (isinstance(stddev, bool) or not isinstance(stddev, numbers.Real) or not math.isfinite(stddev)
                or stddev < 0):
            raise ValueError(f"GaussianNoise layer '{self.name}': stddev must be a finite number >= 0, "
                             f"got {stddev!r}.")
        self.stddev = float(stddev)
        if self.stddev > 0:
            self.seed_generator = layer_seed_generator(self, seed)

    def call(self, x, training=False):
        self._saved = (None,) if training else None    # the noise is added: the gradient is dy itself
        if not training or self.stddev == 0:
            return x
        return x + random_draws.normal(array_module(x), self.seed_generator.next(), x.shape, 0.0, self.stddev,
                                       x.dtype)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(_Noise):
    """Multiplies its input by normal noise of mean 1 and standard deviation sqrt(rate / (1 - rate)) in
    training (the variance Dropout's mask has at the same rate)."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = dropout_rate(rate, f"GaussianDropout layer '{self.name}': rate")
        if self.rate > 0:
            self.seed_generator = layer_seed_generator(self, seed)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            self._saved = (None,) if training else None
            return x
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        noise = random_draws.normal(array_module(x), self.seed_generator.next(), x.shape, 1.0, stddev, x.dtype)
        self._saved = (noise,)
        return x * noise

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class AlphaDropout(_Noise):
    """Dropout for SELU networks: in training, each unit is dropped with probability ``rate`` to SELU's
    negative saturation value -alpha * scale, then all are moved by a * x + b, which keeps a
    standard-normal input's mean 0 and variance 1 (Keras's a and b)."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = dropout_rate(rate, f"AlphaDropout layer '{self.name}': rate")
        if noise_shape is not None:
            given = noise_shape
            try:
                noise_shape = tuple(noise_shape) if not isinstance(noise_shape, str) else None
            except TypeError:
                noise_shape = None
            if noise_shape is None or any(
                    d is not None and (isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1)
                    for d in noise_shape):
                raise ValueError(f"AlphaDropout layer '{self.name}': noise_shape must be a tuple of positive "
                                 f"integers or None, got {given!r}.")
            noise_shape = tuple(None if d is None else int(d) for d in noise_shape)
        self.noise_shape = noise_shape
        if self.rate > 0:
            self.seed_generator = layer_seed_generator(self, seed)

    def _mask_shape(self, shape):
        if self.noise_shape is None:
            return tuple(shape)
        wrong = len(self.noise_shape) != len(shape) or any(d is not None and d not in (1, n)
                                                           for d, n in zip(self.noise_shape, shape))
        if wrong:
            raise ValueError(f"AlphaDropout layer '{self.name}': noise_shape {self.noise_shape} does not fit an "
                             f"input of shape {tuple(shape)}: it needs the input's rank, and each entry None, 1 "
                             "or the input's size.")
        return tuple(n if d is None else d for d, n in zip(self.noise_shape, shape))

    def call(self, x, training=False):
        if not training or self.rate == 0:
            self._saved = (None,) if training else None
            return x
        xp = array_module(x)
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * self.rate
        # Keras draws the uniform values in floatx whatever the input's dtype.
        uniform = random_draws.uniform(xp, self.seed_generator.next(), self._mask_shape(x.shape), 0.0, 1.0, floatx())
        kept = (uniform >= uniform.dtype.type(self.rate)).astype(x.dtype)
        # a * (x * kept + alpha_p * (1 - kept)) + b, as Keras computes it, with a * kept kept for backward.
        scale = kept * x.dtype.type(a)
        self._saved = (scale,)
        return (x * kept + (1 - kept) * x.dtype.type(alpha_p)) * x.dtype.type(a) + x.dtype.type(b)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


class ActivityRegularization(Layer):
    """Passes its input through and adds ``l1 * sum(|x|) + l2 * sum(x**2)`` of it, divided by the batch
    size as Keras 3 divides activity penalties, to the training loss."""

    fixed_input_axes = ()
    supports_masking = True

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        from .. import regularizers     # catalogues sit above layers; import late
        if "activity_regularizer" in kwargs:
            raise TypeError("ActivityRegularization takes l1 and l2, not activity_regularizer.")
        super().__init__(**kwargs)
        try:
            self.activity_regularizer = regularizers.L1L2(l1=l1, l2=l2)
        except ValueError as e:
            raise ValueError(f"ActivityRegularization layer '{self.name}': {e}") from None
        self.l1, self.l2 = self.activity_regularizer.l1, self.activity_regularizer.l2

    def call(self, x, training=False):
        self._saved = () if training else None
        return x

    def backward(self, dy):
        # The penalty's own gradient joins dy before this (the model adds it at each layer's output).
        self.saved()
        return dy

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        return {**config, "l1": self.l1, "l2": self.l2}
