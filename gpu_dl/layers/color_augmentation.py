"""Keras 3's RandomContrast and RandomBrightness: one random factor per image, the result clipped to
``value_range``.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape. Like
the other random image layers they act only in training (or when called
directly without ``training``), draw on the host from their own generator
(one seed, one sequence on either backend) and keep the images on their
device.

- ``RandomContrast``: per image n, ``c_n ~ U(1 - lower, 1 + upper)`` and
  ``y = clip((x - m) * c_n + m, *value_range)`` with m the mean of each
  channel over the image's height, then its width (Keras's order).
- ``RandomBrightness``: per image n, ``d_n ~ U(lower, upper) * (high - low)``
  and ``y = clip(x + d_n, low, high)``.

``factor`` is read as Keras 3.15 reads it (``_set_factor``): a number f in
the bounds (contrast [0, 1], brightness [-1, 1]) means (max(-|f|, lower
bound), |f|) — so a contrast factor f draws from [1, 1 + f], as Keras's code
does whatever its docstring says — and a pair (a, b) is refused when a is
above the upper bound or b below the lower one, then sorted (so contrast's
(-0.5, 0.5) draws from [1.5, 1.5]). Values must also be finite numbers here.

Backward: the clip passes the gradient where its input lay in
[low, high] (PyTorch's clamp); the contrast adds the mean's share,
``dx = c g + (1 - c) mean_hw(g)``.
"""
from __future__ import annotations

import math

from ..backend import array_module
from .preprocessing import _RandomImageLayer, _is_number, _where


def keras_factor(layer, factor, bounds, what="factor"):
    """``factor`` (or the argument ``what``) as the (lower, upper) pair Keras 3.15 makes of it (module
    docstring)."""
    low, high = bounds
    message = (f"{_where(layer)}: {what} must be a number in [{low}, {high}] or a pair (lower, upper) of numbers "
               f"(lower <= {high}, upper >= {low}), got {factor!r}.")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(v) and math.isfinite(v) for v in factor):
            raise ValueError(message)
        if factor[0] > high or factor[1] < low:
            raise ValueError(message)
        return tuple(sorted(float(v) for v in factor))
    if not _is_number(factor) or not math.isfinite(factor) or factor < low or factor > high:
        raise ValueError(message)
    f = abs(float(factor))
    return max(-f, float(low)), f


def value_range_pair(layer, value_range):
    if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in value_range)):
        raise ValueError(f"{_where(layer)}: value_range must be a pair (low, high) of numbers, got {value_range!r}.")
    return value_range


class _ColorLayer(_RandomImageLayer):
    """A per-image random change of values, clipped to ``value_range``."""

    bounds = (-1, 1)
    dict_entries = "unchanged"          # Keras's dict inputs keep their boxes and masks

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, self.bounds)

    def _draw(self, n, low, high, x):
        """n uniform numbers from [low, high] (either order, as Keras's ``min + (max - min) * u``), on x's
        device as (n, 1, 1, 1) of its dtype."""
        u = self.host_rng().random(n)
        return array_module(x).asarray(low + (high - low) * u, dtype=x.dtype).reshape(n, 1, 1, 1)

    def _clip(self, z):
        low, high = (float(v) for v in self.value_range)
        inside = (z >= low) & (z <= high)
        return array_module(z).clip(z, low, high), inside

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


class RandomContrast(_ColorLayer):
    """Scales each image's deviation from its per-channel mean by a random factor (module docstring)."""

    bounds = (0, 1)

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(factor, value_range, seed=seed, data_format=data_format, **kwargs)
        value_range = value_range_pair(self, value_range)
        if value_range[0] > value_range[1]:
            raise ValueError(f"{_where(self)}: value_range must be (low, high) with low <= high, got {value_range!r}.")
        self.value_range = value_range

    def _augment(self, x):
        lower, upper = self.factor
        c = self._draw(x.shape[0], 1.0 - lower, 1.0 + upper, x)
        # Keras's order: the mean over the height, then over the width (its float32 rounding)
        mean = x.mean(axis=1, keepdims=True).mean(axis=2, keepdims=True)
        y, inside = self._clip((x - mean) * c + mean)
        return y, (c, inside)

    def _backward(self, dy):
        c, inside = self.saved()
        if not self.input_gradient_wanted:
            return None
        g = self.to_last(dy) * inside
        return self.from_last(g * c + (1 - c) * g.mean(axis=(1, 2), keepdims=True))


class RandomBrightness(_ColorLayer):
    """Adds a random fraction of the value range to each image (module docstring)."""

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(factor, value_range, seed=seed, data_format=data_format, **kwargs)
        self.value_range = sorted(value_range_pair(self, value_range))   # Keras sorts it

    def _augment(self, x):
        low, high = self.value_range
        delta = self._draw(x.shape[0], *self.factor, x) * (high - low)
        y, inside = self._clip(x + delta)
        return y, (inside,)

    def _backward(self, dy):
        (inside,) = self.saved()
        if not self.input_gradient_wanted:
            return None
        return self.from_last(self.to_last(dy) * inside)
