"""Keras 3's colour layers: RandomGrayscale, RandomHue, RandomSaturation, RandomColorDegeneration, RandomInvert.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape. Like
the other random image layers they act only in training (or when called
directly without ``training``) and pass their input through at inference,
as Keras 3.15's do; each draws on the host from its own generator (one seed,
one sequence on either backend). Per image n, with Keras 3.15's numbers
(``gpu_dl.ops.color`` holds the colour arithmetic):

- ``RandomGrayscale(factor=0.5)``: with probability ``factor`` every channel
  becomes the luminance ``0.2989 r + 0.587 g + 0.114 b`` (1 or 3 channels).
- ``RandomHue(factor, value_range)``: the image scaled to [0, 1], its HSV
  hue turned by ``±f / 2`` (sign and f ~ U(factor) drawn per image; f = 1
  turns it half way round whatever the sign), back to RGB, clipped to
  [0, 1] and scaled back.
- ``RandomSaturation(factor, value_range)``: f ~ U(factor) (a number f
  means (-|f|, |f|), as Keras reads it), ``k = f / (1 - f + 1e-7)``; the HSV
  saturation of the image *as given* (Keras does not rescale it) times k,
  clipped to ``value_range``: 0.5 keeps the image, 0 makes it grey, and
  negative draws clip to value_range's low end.
- ``RandomColorDegeneration(factor, value_range)``: f ~ U(factor),
  ``clip(x + f (gray(x) - x), *value_range)``.
- ``RandomInvert(factor=1.0, value_range)``: with probability p ~ U(factor)
  the image becomes ``value_range[1] - x``.

Backward: grayscale, saturation, colour degeneration and invert give the
gradient of their images (linear maps, and for saturation the closed form
of the HSV round trip below); RandomHue is input-side only and its backward
raises.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import array_module
from ..ops.color import GRAY_WEIGHTS, hsv_to_rgb, hue_weights, rescale, rgb_to_grayscale, rgb_to_hsv
from .augment_common import ImageAugmentLayer, value_range_checked
from .color_augmentation import keras_factor
from .preprocessing import _where

KERAS_EPSILON = 1e-7


def grayscale_backward(g):
    """The adjoint of broadcasting ``rgb_to_grayscale`` over the channels: (N, H, W, C) -> (N, H, W, C)."""
    if g.shape[-1] == 1:
        return g
    total = g.sum(axis=-1, keepdims=True)
    weights = array_module(g).asarray(GRAY_WEIGHTS, dtype=g.dtype)
    return total * weights


class RandomGrayscale(ImageAugmentLayer):
    """Turns each image grey with probability ``factor`` (module docstring). Keras 3.15 leaves ``seed`` out of
    its config; this layer keeps it there, and Keras reads such a config."""

    pairs_outside_training = 1      # Keras's draws its probabilities outside training too

    def __init__(self, factor=0.5, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 <= factor <= 1:
            raise ValueError(f"{_where(self)}: factor must be a number in [0, 1], got {factor!r}.")
        self.factor = factor

    def _augment(self, x):
        self.check_channels(x, (1, 3))
        apply = self.per_image(self.host_rng().random(x.shape[0]) < self.factor, x)
        return array_module(x).where(apply, rgb_to_grayscale(x), x), (apply,)

    def _input_gradient(self, dy):
        (apply,) = self.saved()
        return array_module(dy).where(apply, grayscale_backward(dy), dy)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomHue(ImageAugmentLayer):
    """Turns each image's hue by a random angle (module docstring); input-side only."""

    draws_per_call = pairs_outside_training = 2     # Keras's draws outside training too

    differentiable = False
    why_not = "the hue turn is piecewise in each pixel's channel order"

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        self.value_range = value_range_checked(self, value_range, sort=False)

    def _augment(self, x):
        self.check_channels(x, (3,))
        n = x.shape[0]
        rng = self.host_rng()
        sign = numpy.where(rng.random(n) > 0.5, -1.0, 1.0)
        turn = self.per_image(sign * self.uniform(n, *self.factor) * 0.5, x)[..., 0]
        xp = array_module(x)
        hue, saturation, value = rgb_to_hsv(rescale(x, self.value_range, (0, 1)))
        hue = hue + turn
        hue = xp.where(hue > 1.0, hue - 1.0, hue)
        hue = xp.where(hue < 0.0, hue + 1.0, hue)
        y = xp.clip(hsv_to_rgb(hue, saturation, value), 0.0, 1.0)
        return rescale(y, (0, 1), self.value_range).astype(x.dtype, copy=False), None

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


class RandomSaturation(ImageAugmentLayer):
    """Scales each image's HSV saturation by a random factor (module docstring). Keras's draws its factor
    outside training too, and so takes a seed pair in any call.

    Backward, per pixel with V = max, m = min, R = V - m, S = R / V and s' = clip(k S) (with ``inside`` where
    the clip passed it): the output is ``V (1 - s' + s' d_c)`` with ``d_c = (x_c - m) / R``; the gradient
    flows to x_c through d_c, and to the channels holding the maximum and the minimum through V, m and S.
    """

    pairs_outside_training = 1

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (-1, 1))
        self.value_range = value_range_checked(self, value_range, sort=True)

    def _augment(self, x):
        self.check_channels(x, (3,))
        # Keras's float32 draw and f / (1 - f + epsilon), rounded as Keras rounds them
        f = self.uniform(x.shape[0], *self.factor).astype(numpy.float32)
        k = self.per_image(f / ((numpy.float32(1) - f) + numpy.float32(KERAS_EPSILON)), x)[..., 0]
        xp = array_module(x)
        hue, saturation, value = rgb_to_hsv(x)
        scaled = saturation * k
        low, high = (float(v) for v in self.value_range)
        s_new = xp.clip(scaled, low, high)
        inside = (scaled >= low) & (scaled <= high)
        y = hsv_to_rgb(hue, s_new, value)
        return y, (x, k, s_new, inside, hue_weights(hue))

    def _input_gradient(self, dy):
        x, k, s_new, inside, d_forward = self.saved()
        xp = array_module(dy)
        v = x.max(axis=-1)
        m = x.min(axis=-1)
        r = v - m
        generic = r > 0
        safe_r = xp.where(generic, r, 1.0)
        safe_v = xp.where(v > 0, v, 1.0)
        d = xp.where(generic[..., None], (x - m[..., None]) / safe_r[..., None], d_forward)
        s_ = s_new[..., None]
        grad_v = (dy * (1.0 - s_ + s_ * d)).sum(axis=-1)
        grad_s = (dy * v[..., None] * (d - 1.0)).sum(axis=-1) * k * inside * (v > 0)
        grad_d = dy * s_ * v[..., None] * generic[..., None]
        dx = grad_d / safe_r[..., None]
        grad_m = (grad_d * (x - v[..., None])).sum(axis=-1) / safe_r ** 2 - grad_s / safe_v
        grad_v = grad_v - (grad_d * (x - m[..., None])).sum(axis=-1) / safe_r ** 2 + grad_s * m / safe_v ** 2
        channel = xp.arange(3).reshape(1, 1, 1, 3)
        dx = dx + (channel == x.argmax(axis=-1)[..., None]) * grad_v[..., None]
        dx = dx + (channel == x.argmin(axis=-1)[..., None]) * grad_m[..., None]
        return dx.astype(dy.dtype, copy=False)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


class RandomColorDegeneration(ImageAugmentLayer):
    """Blends each image towards its grey version by a random factor (module docstring)."""

    pairs_outside_training = 1      # Keras's draws its factors outside training too

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (-1, 1))
        self.value_range = value_range_checked(self, value_range, sort=True)

    def _augment(self, x):
        self.check_channels(x, (1, 3))
        f = self.per_image(self.uniform(x.shape[0], *self.factor), x)
        z = x + f * (rgb_to_grayscale(x) - x)
        low, high = (float(v) for v in self.value_range)
        return array_module(x).clip(z, low, high), (f, (z >= low) & (z <= high))

    def _input_gradient(self, dy):
        f, inside = self.saved()
        g = dy * inside
        return (1.0 - f) * g + f * grayscale_backward(g)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


class RandomInvert(ImageAugmentLayer):
    """Inverts each image (``value_range[1] - x``) with a random probability (module docstring)."""

    def __init__(self, factor=1.0, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        self.value_range = value_range_checked(self, value_range, sort=False)

    def _augment(self, x):
        n = x.shape[0]
        probability = self.uniform(n, *self.factor)
        apply = self.per_image(self.host_rng().random(n) < probability, x)
        high = x.dtype.type(self.value_range[1])
        return array_module(x).where(apply, high - x, x), (apply,)

    def _input_gradient(self, dy):
        (apply,) = self.saved()
        return array_module(dy).where(apply, -dy, dy)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}
