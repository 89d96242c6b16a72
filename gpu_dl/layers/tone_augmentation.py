"""Keras 3's tone layers: RandomPosterization, Solarization, AutoContrast, Equalization.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape and
dtype. Each maps the images from ``value_range`` onto [0, 255] (Keras's
``_transform_value_range``), works there and maps back, with Keras 3.15's
numbers:

- ``RandomPosterization(factor, value_range)``: keeps b bits of each value
  (b = factor when its two ends agree, else b ~ randint[lower, upper), the
  upper end excluded as Keras's randint does): ``floor(v / 2^(8-b)) 2^(8-b)``
  of ``v = trunc(x)``. Values outside [0, 255] clip (Keras's uint8 cast would
  wrap them).
- ``Solarization(addition_factor, threshold_factor, value_range)``: per image
  ``a ~ U(a_lo, a_hi * 255)``, ``t ~ U(t_lo, t_hi * 255)`` (Keras scales only
  the upper ends); ``r = clip(v + a, 0, 255)``, then r where ``r < t``, else
  ``255 - r``.
- ``AutoContrast(value_range)``: each channel of each image stretched so its
  minimum and maximum reach the ends of ``value_range``; a constant channel
  is left as it is. It applies at inference as well, as Keras's does.
- ``Equalization(value_range, bins=256)``: histogram equalisation of each
  channel — its histogram taken over the whole batch, as Keras 3.15 takes it
  (``images[..., i]``) — in training only, as Keras 3.15's ``if training``.

Random layers act in training only, draw on the host from their own
generator and keep the images on their device.

Gradients: Solarization and AutoContrast give the true gradient almost
everywhere (``±1`` between the clip and the threshold; the stretch with its
minimum's and maximum's share). RandomPosterization and Equalization are
piecewise constant (zero gradient almost everywhere, undefined at the
steps): they are input-side only, and their backward raises.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import array_module
from ..ops.color import rescale
from ..ops.scattering import bin_counts
from .augment_common import ImageAugmentLayer, unit_pair, value_range_checked
from .color_augmentation import keras_factor
from .preprocessing import _where

BYTE = (0, 255)


class RandomPosterization(ImageAugmentLayer):
    """Keeps a random number of bits of each value (module docstring); input-side only."""

    differentiable = False
    why_not = "posterization is piecewise constant"

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        # whole numbers kept as ints: Keras's torch randint refuses floats, and Keras reads this config
        self.factor = tuple(int(v) if v == int(v) else v for v in keras_factor(self, factor, (1, 8)))
        self.value_range = value_range_checked(self, value_range, sort=True)

    @property
    def draws_per_call(self):
        """Keras's layer draws its bit counts (in any call, training or not) unless the factor fixes them."""
        return 0 if self.factor[0] == self.factor[1] else 1

    pairs_outside_training = draws_per_call

    def _augment(self, x):
        n = x.shape[0]
        low, high = self.factor
        # Keras's draw: uint8 integers in [low, high)
        bits = (numpy.full(n, int(low)) if low == high
                else self.host_rng().integers(low=int(low), high=int(high), size=(n,), dtype=numpy.uint8))
        step = self.per_image(2.0 ** (8 - bits), x)
        xp = array_module(x)
        v = xp.trunc(xp.clip(rescale(x, self.value_range, BYTE), 0, 255))
        y = rescale(xp.floor(v / step) * step, BYTE, self.value_range)
        return y.astype(x.dtype, copy=False), None

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


class Solarization(ImageAugmentLayer):
    """Adds a random amount and inverts the values above a random threshold (module docstring)."""

    draws_per_call = 2

    def __init__(self, addition_factor=0.0, threshold_factor=0.0, value_range=(0, 255), seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.addition_factor = unit_pair(self, addition_factor, "addition_factor")
        self.threshold_factor = unit_pair(self, threshold_factor, "threshold_factor")
        self.value_range = value_range_checked(self, value_range, sort=True)

    def _augment(self, x):
        n = x.shape[0]
        addition = self.per_image(self.uniform(n, self.addition_factor[0], self.addition_factor[1] * 255), x)
        threshold = self.per_image(self.uniform(n, self.threshold_factor[0], self.threshold_factor[1] * 255), x)
        xp = array_module(x)
        z = rescale(x, self.value_range, BYTE) + addition
        r = xp.clip(z, 0, 255)
        kept = r < threshold
        y = rescale(xp.where(kept, r, 255 - r), BYTE, self.value_range)
        # d y / d x: the two range maps cancel; +1 below the threshold, -1 above, 0 where the clip held.
        slope = xp.where(kept, 1, -1).astype(x.dtype) * ((z >= 0) & (z <= 255))
        return y.astype(x.dtype, copy=False), (slope,)

    def _input_gradient(self, dy):
        (slope,) = self.saved()
        return dy * slope

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "addition_factor": self.addition_factor,
                "threshold_factor": self.threshold_factor}


class _AlwaysOrTraining(ImageAugmentLayer):
    """A deterministic layer: no seed (Keras's has none, and its config no seed key)."""

    draws = False
    draws_per_call = 0

    def __init__(self, value_range, data_format=None, **kwargs):
        super().__init__(seed=None, data_format=data_format, **kwargs)
        self.value_range = value_range_checked(self, value_range, sort=True)

    def get_config(self):
        config = {**super().get_config(), "value_range": self.value_range}
        config.pop("seed")
        return config


class AutoContrast(_AlwaysOrTraining):
    """Stretches each channel of each image over ``value_range`` (module docstring), in training and at
    inference. Keras 3.15 reduces over axes (1, 2) whatever the data format (channels and height of
    channels_first images); this layer takes each channel's minimum and maximum in both formats.

    Backward, where a channel's maximum M exceeds its minimum m: ``y = lo + (hi - lo)(x - m)/(M - m)``, the
    gradient reaching x directly and through m and M (the first pixel holding each)."""

    def __init__(self, value_range=(0, 255), data_format=None, **kwargs):
        super().__init__(value_range, data_format=data_format, **kwargs)

    def call(self, x, training=False):
        last = self.to_last(x)
        y, saved = self._augment(last)
        self._saved = saved if training else None
        return self.from_last(y)

    def _augment(self, x):
        xp = array_module(x)
        # Keras's arithmetic, rounded as Keras rounds it: on [0, 255], scale = 255 / (max - min) and
        # offset = -min * scale, v * scale + offset clipped to [0, 255], then back onto value_range. PyTorch
        # divides a number by a tensor as the tensor's reciprocal times the number.
        low = x.min(axis=(1, 2), keepdims=True)
        high = x.max(axis=(1, 2), keepdims=True)
        v = rescale(x, self.value_range, BYTE)
        v_low, v_high = ((low, high) if v is x
                         else (v.min(axis=(1, 2), keepdims=True), v.max(axis=(1, 2), keepdims=True)))
        scale = (1 / xp.where(v_high > v_low, v_high - v_low, 1)) * 255.0
        z = xp.clip(v * scale + -v_low * scale, 0, 255)
        spread = high > low
        width = xp.where(spread, high - low, 1)
        lo, hi = (float(end) for end in self.value_range)
        y = xp.where(spread, rescale(z, BYTE, self.value_range), x)
        return y.astype(x.dtype, copy=False), (x, low, high, width, spread, hi - lo)

    def _input_gradient(self, dy):
        x, low, high, width, spread, span = self.saved()
        xp = array_module(dy)
        n, h, w, c = x.shape
        scale = span / width
        grad_low = (dy * (x - high)).sum(axis=(1, 2), keepdims=True) * scale / width
        grad_high = -(dy * (x - low)).sum(axis=(1, 2), keepdims=True) * scale / width
        pixel = xp.arange(h * w).reshape(1, h, w, 1)
        first_min = pixel == x.reshape(n, h * w, c).argmin(axis=1).reshape(n, 1, 1, c)
        first_max = pixel == x.reshape(n, h * w, c).argmax(axis=1).reshape(n, 1, 1, c)
        dx = dy * scale + first_min * grad_low + first_max * grad_high
        return xp.where(spread, dx, dy).astype(dy.dtype, copy=False)


class Equalization(_AlwaysOrTraining):
    """Equalises the histogram of each channel over the batch (module docstring), in training only;
    input-side only."""

    differentiable = False
    why_not = "equalization is piecewise constant"

    def __init__(self, value_range=(0, 255), bins=256, data_format=None, **kwargs):
        super().__init__(value_range, data_format=data_format, **kwargs)
        if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
            raise ValueError(f"{_where(self)}: bins must be a positive integer, got {bins!r}.")
        self.bins = int(bins)

    def _augment(self, x):
        xp = array_module(x)
        c, bins = x.shape[-1], self.bins
        lo, hi = (float(v) for v in self.value_range)
        scale = 255.0 / (hi - lo)
        v = x * scale + (0.0 - lo * scale)                           # Keras's _scale_values onto [0, 255]
        # the histogram's bins, computed in float32 as Keras computes them
        index = (v.astype(numpy.float32) * numpy.float32(bins - 1) / numpy.float32(255)).astype(xp.int32)
        index = xp.clip(index, 0, bins - 1) + xp.arange(c, dtype=xp.int32) * bins
        hist = bin_counts(index.ravel(), c * bins).reshape(c, bins)
        cdf = xp.cumsum(hist, axis=1)
        cdf_min = xp.take_along_axis(cdf, xp.argmax(cdf > 0, axis=1)[:, None], axis=1)
        denominator = cdf[:, -1:] - cdf_min
        denominator = xp.where(denominator == 0, 1, denominator)
        table = ((cdf - cdf_min) * 255).astype(numpy.float32) / denominator.astype(numpy.float32)
        table = xp.clip(xp.round(table), 0, 255)
        lookup = xp.clip(v / 255.0 * (bins - 1), 0, bins - 1).astype(xp.int32) + xp.arange(c, dtype=xp.int32) * bins
        equalized = xp.take(table.ravel(), lookup)
        flat = (hist > 0).sum(axis=1) <= 1                            # one used bin: the channel is kept
        y = xp.where(flat, v, equalized) * ((hi - lo) / 255.0) + lo
        return y.astype(x.dtype, copy=False), None

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}
