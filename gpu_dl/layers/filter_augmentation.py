"""Keras 3's filter layers: RandomSharpness, RandomGaussianBlur.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape. Both
act only in training, draw on the host from their own generator and filter
each channel with a small kernel, zero-padded to keep the size
(``gpu_dl.ops.color.correlate_same``: one array operation per kernel tap).
With Keras 3.15's numbers:

- ``RandomSharpness(factor, value_range)``: per image f ~ U(factor) (a
  number f means (0, f)), s = 2 f, ``B`` the 3 x 3 kernel with 5/13 in the
  middle and 1/13 around it: ``clip(x + (1 - s)(B x - x), *value_range)`` —
  s = 1 keeps the image, s < 1 softens it, s > 1 sharpens it.
- ``RandomGaussianBlur(factor=1.0, kernel_size=3, sigma=1.0, value_range)``:
  each image blurred with probability p ~ U(factor); one pair of standard
  deviations for the batch, ``(σx, σy) ~ U(sigma) + 1e-6`` (a number σ means
  (0, σ); both in [0, 1] as Keras requires), the kernel Keras's normalised
  Gaussian of ``kernel_size`` (odd); every image, blurred or not, clipped to
  ``value_range`` (not sorted, as Keras keeps it). A pair of different
  kernel sizes is refused: Keras's torch backend pads both axes by the
  first and reshapes the kernel, so what it would compute is not a blur.

Backward: both are linear between their clips; the kernels are symmetric,
so the adjoint filters with the same kernel.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import array_module
from ..ops.color import correlate_same, correlate_same_backward, gaussian_kernel
from .augment_common import ImageAugmentLayer, value_range_checked
from .color_augmentation import keras_factor
from .preprocessing import _where

SHARPNESS_KERNEL = numpy.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=numpy.float64) / 13.0


class RandomSharpness(ImageAugmentLayer):
    """Sharpens or softens each image by a random amount (module docstring)."""

    pairs_outside_training = 1      # Keras's draws its factors outside training too

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        self.value_range = value_range_checked(self, value_range, sort=True)

    def _augment(self, x):
        s = self.per_image(2.0 * self.uniform(x.shape[0], *self.factor), x)
        z = x + (1.0 - s) * (correlate_same(x, SHARPNESS_KERNEL) - x)
        low, high = (float(v) for v in self.value_range)
        return array_module(x).clip(z, low, high), (s, (z >= low) & (z <= high))

    def _input_gradient(self, dy):
        s, inside = self.saved()
        g = dy * inside
        return s * g + (1.0 - s) * correlate_same_backward(g, SHARPNESS_KERNEL)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range}


def _kernel_size(layer, kernel_size):
    message = (f"{_where(layer)}: kernel_size must be a positive odd integer or a pair of equal ones, "
               f"got {kernel_size!r}.")
    sizes = tuple(kernel_size) if isinstance(kernel_size, (tuple, list)) else (kernel_size, kernel_size)
    if len(sizes) != 2 or sizes[0] != sizes[1]:
        raise ValueError(message)
    for v in sizes:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != int(v) or v < 1 or int(v) % 2 == 0:
            raise ValueError(message)
    return int(sizes[0]), int(sizes[1])


class RandomGaussianBlur(ImageAugmentLayer):
    """Blurs each image with probability drawn from ``factor`` (module docstring)."""

    def __init__(self, factor=1.0, kernel_size=3, sigma=1.0, value_range=(0, 255), data_format=None, seed=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        self.kernel_size = _kernel_size(self, kernel_size)
        self.sigma = keras_factor(self, sigma, (0, 1), what="sigma")
        self.value_range = value_range_checked(self, value_range, sort=False)

    def _augment(self, x):
        n = x.shape[0]
        probability = self.uniform(n, *self.factor)
        apply = self.per_image(self.host_rng().random(n) < probability, x)
        sigma_x, sigma_y = self.uniform(2, *self.sigma).astype(numpy.float32) + numpy.float32(1e-6)
        kernel = gaussian_kernel(self.kernel_size[0], sigma_x, sigma_y, x.dtype)
        xp = array_module(x)
        z = xp.where(apply, correlate_same(x, kernel), x)
        low, high = (float(v) for v in self.value_range)
        return xp.clip(z, low, high), (apply, kernel, (z >= low) & (z <= high))

    def _input_gradient(self, dy):
        apply, kernel, inside = self.saved()
        g = dy * inside
        return array_module(dy).where(apply, correlate_same_backward(g, kernel), g)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "kernel_size": self.kernel_size, "sigma": self.sigma,
                "value_range": self.value_range}
