"""Colour arithmetic of the image augmentation layers, written once for NumPy and CuPy arrays.

Every function takes channels_last images (N, H, W, C) and works in their
dtype; the formulas are Keras 3.15's (its torch backend's, where the
backends differ), so the layers built on them give Keras's numbers:

- ``rgb_to_grayscale``: (N, H, W, 3) -> (N, H, W, 1), ``0.2989 r + 0.587 g +
  0.114 b`` (one channel is returned as it is);
- ``rgb_to_hsv`` / ``hsv_to_rgb``: (N, H, W, 3) <-> three (N, H, W) planes,
  hue in [0, 1), dm_pix's formulas as Keras writes them;
- ``rescale``: Keras's ``_transform_value_range``, an affine map of one
  value range onto another;
- ``correlate_same``: each channel correlated with one small 2-D kernel,
  zero padding of ``k // 2`` on each side (what Keras's depthwise "same"
  convolution and its Gaussian blur compute for odd kernels); the loop runs
  over the kernel's taps, each an array operation on the whole batch;
- ``gaussian_kernel``: Keras's (size, size) Gaussian, the outer product of
  two normalised 1-D kernels.
"""
from __future__ import annotations

import numpy

from ..backend import array_module

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def rgb_to_grayscale(x):
    """(N, H, W, 3) -> (N, H, W, 1) luminance; (N, H, W, 1) -> itself (a copy)."""
    if x.shape[-1] == 1:
        return x.copy()
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).astype(x.dtype, copy=False)[..., None]


def rgb_to_hsv(x):
    """(N, H, W, 3) RGB -> (hue, saturation, value), each (N, H, W) of x's dtype."""
    xp = array_module(x)
    eps = numpy.finfo(x.dtype).eps
    x = xp.where(xp.abs(x) < eps, xp.zeros((), x.dtype), x)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    value = xp.maximum(xp.maximum(r, g), b)
    range_ = value - xp.minimum(xp.minimum(r, g), b)
    one = xp.ones((), x.dtype)
    safe_value = xp.where(value > 0, value, one)
    safe_range = xp.where(range_ > 0, range_, one)
    saturation = xp.where(value > 0, range_ / safe_value, 0 * one)
    norm = 1.0 / (6.0 * safe_range)
    hue = xp.where(value == g, norm * (b - r) + 2.0 / 6.0, norm * (r - g) + 4.0 / 6.0)
    hue = xp.where(value == r, norm * (g - b), hue)
    hue = xp.where(range_ > 0, hue, 0 * one) + (hue < 0.0).astype(x.dtype)
    return hue.astype(x.dtype, copy=False), saturation.astype(x.dtype, copy=False), value


def hue_weights(hue):
    """The (N, H, W, 3) weights d of ``hsv_to_rgb``: channel c is ``v (1 - s + s d_c)``."""
    xp = array_module(hue)
    dh = xp.remainder(hue, 1.0) * 6.0
    return xp.stack([xp.clip(xp.abs(dh - 3.0) - 1.0, 0.0, 1.0), xp.clip(2.0 - xp.abs(dh - 2.0), 0.0, 1.0),
                     xp.clip(2.0 - xp.abs(dh - 4.0), 0.0, 1.0)], axis=-1).astype(hue.dtype, copy=False)


def hsv_to_rgb(hue, saturation, value):
    """Three (N, H, W) planes -> (N, H, W, 3) RGB."""
    s, v = saturation[..., None], value[..., None]
    return v * ((1.0 - s) + s * hue_weights(hue))


def rescale(x, source, target):
    """Keras's ``_transform_value_range``: x mapped from the range ``source`` onto ``target`` (unchanged when the
    two are equal)."""
    if float(source[0]) == float(target[0]) and float(source[1]) == float(target[1]):
        return x
    unit = (x - float(source[0])) / (float(source[1]) - float(source[0]))
    return unit * (float(target[1]) - float(target[0])) + float(target[0])


def correlate_same(x, kernel):
    """(N, H, W, C) images, each channel correlated with ``kernel`` (kh, kw), both odd, zero-padded to keep
    (H, W). Its adjoint is the same operation with the kernel turned by 180 degrees."""
    xp = array_module(x)
    kernel = numpy.asarray(kernel, dtype=numpy.float64)
    kh, kw = kernel.shape
    n, h, w, c = x.shape
    ph, pw = kh // 2, kw // 2
    padded = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
    padded[:, ph:ph + h, pw:pw + w] = x
    out = xp.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            out += x.dtype.type(kernel[i, j]) * padded[:, i:i + h, j:j + w]
    return out


def correlate_same_backward(dy, kernel):
    """The gradient of ``correlate_same`` with respect to its images."""
    return correlate_same(dy, numpy.asarray(kernel)[::-1, ::-1])


def gaussian_kernel(size, sigma_x, sigma_y, dtype):
    """Keras's (size, size) Gaussian: rows weighted by ``sigma_y``, columns by ``sigma_x``, computed in ``dtype``
    as Keras computes it."""
    dtype = numpy.dtype(dtype)

    def one_axis(sigma):
        t = numpy.arange(size, dtype=dtype) - dtype.type((size - 1) / 2)
        k = numpy.exp(dtype.type(-0.5) * (t / dtype.type(sigma)) ** 2)
        return k / k.sum()

    return numpy.outer(one_axis(sigma_y), one_axis(sigma_x)).astype(dtype)
