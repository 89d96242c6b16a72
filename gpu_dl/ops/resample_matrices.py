"""Resampling one axis at a time through a dense (n_out, n_in) weight matrix, and the matrices of the resizes that
need one: PyTorch's bicubic ``interpolate`` (Keras 3.15's torch backend's ``resize(interpolation="bicubic")``),
PyTorch's antialiased bilinear and bicubic ``interpolate`` (``antialias=True``) and JAX's ``scale_and_translate``
(Keras's ``scale_and_translate``, which its torch backend ports).

The matrices are made on the host (an axis has few entries) in float64 and cast to the images' dtype; the images
stay on their device and go through one ``tensordot`` per axis, so NumPy and CuPy arrays take the same path. The
backward of an axis is the product with the transposed matrix. (``ops/resize.py`` keeps its gathers for the
bilinear and nearest resizes, whose two and one taps a dense matrix would waste.)

- bicubic (``align_corners=False``): output ``o`` reads ``src = scale (o + 0.5) - 0.5``, ``scale = n_in / n_out``
  (not clamped, unlike bilinear), the four inputs ``floor(src) - 1 .. floor(src) + 2`` clamped into the axis, with
  Keys's cubic convolution weights of ``A = -0.75`` at ``t = src - floor(src)``;
- antialiased (PyTorch's ``_upsample_*_aa``): output ``o`` centred at ``c = scale (o + 0.5)`` reads the inputs
  ``j`` in ``[int(c - support + 0.5), int(c + support + 0.5))`` (clipped to the axis) with weights
  ``filter((j - c + 0.5) / max(scale, 1))`` normalised to sum 1, ``support = (1 or 2) * max(scale, 1)``: the
  triangle for bilinear, Keys's cubic with ``a = -0.5`` for bicubic;
- ``scale_and_translate``: output ``o`` samples ``f = (o + 0.5 - translation) / scale - 0.5``; input ``i`` weighs
  ``kernel(|f - i| / k)`` with ``k = max(1 / scale, 1)`` when antialiasing (else 1), the column normalised to sum
  1 (zero where the sum is tiny) and zero where ``f`` lies outside ``[-0.5, n_in - 0.5]``; kernels: triangle,
  Keys's cubic (``a = -0.5``), Lanczos of radius 3 and 5.
"""
from __future__ import annotations

import numpy

from ..backend import array_module

SCALE_AND_TRANSLATE_KERNELS = ("linear", "cubic", "lanczos3", "lanczos5")


def apply_axis(x, axis, matrix):
    """``x`` resampled along ``axis`` by ``matrix`` (n_out, n_in), a host array (cast to x's dtype)."""
    xp = array_module(x)
    m = xp.asarray(matrix.astype(x.dtype, copy=False))
    y = xp.tensordot(x, m, axes=((axis,), (1,)))
    return xp.ascontiguousarray(xp.moveaxis(y, -1, axis))


def apply_axis_backward(dy, axis, matrix):
    """The gradient of ``apply_axis`` with respect to its input."""
    return apply_axis(dy, axis, numpy.ascontiguousarray(matrix.T))


def _keys(x, a):
    """Keys's cubic convolution kernel of parameter ``a`` at |x|."""
    x = numpy.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return numpy.where(x < 1, near, numpy.where(x < 2, far, 0.0))


def _scale(n_in, n_out, dtype):
    """PyTorch's ``n_in / n_out``, in float64 for float64 images and float32 otherwise (its ``opmath`` type)."""
    real = numpy.float64 if numpy.dtype(dtype) == numpy.float64 else numpy.float32
    return float(real(n_in) / real(n_out))


def bicubic_matrix(n_in, n_out, dtype=numpy.float32):
    """PyTorch's bicubic sampling of one axis (align_corners=False, no antialiasing) for images of ``dtype``."""
    scale = _scale(n_in, n_out, dtype)
    source = scale * (numpy.arange(n_out) + 0.5) - 0.5
    low = numpy.minimum(numpy.floor(source).astype(numpy.int64), n_in - 1)
    t = numpy.clip(source - low, 0.0, 1.0)
    m = numpy.zeros((n_out, n_in))
    rows = numpy.arange(n_out)
    for k, weight in enumerate((_keys(t + 1, -0.75), _keys(t, -0.75), _keys(1 - t, -0.75), _keys(2 - t, -0.75))):
        numpy.add.at(m, (rows, numpy.clip(low - 1 + k, 0, n_in - 1)), weight)
    return m


def antialias_matrix(n_in, n_out, interpolation, dtype=numpy.float32):
    """PyTorch's antialiased sampling of one axis for images of ``dtype``: ``interpolation`` "bilinear" (triangle)
    or "bicubic"."""
    scale = _scale(n_in, n_out, dtype)
    taps = 2 if interpolation == "bilinear" else 4
    support = taps * 0.5 * scale if scale >= 1.0 else taps * 0.5
    stretch = 1.0 / scale if scale >= 1.0 else 1.0
    centre = scale * (numpy.arange(n_out) + 0.5)
    first = numpy.maximum(numpy.trunc(centre - support + 0.5).astype(numpy.int64), 0)
    stop = numpy.minimum(numpy.trunc(centre + support + 0.5).astype(numpy.int64), n_in)
    j = numpy.arange(n_in)[None, :]
    distance = (j - centre[:, None] + 0.5) * stretch
    if interpolation == "bilinear":
        weights = numpy.maximum(1.0 - numpy.abs(distance), 0.0)
    else:
        weights = _keys(distance, -0.5)
    weights = numpy.where((j >= first[:, None]) & (j < stop[:, None]), weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return numpy.where(total != 0, weights / numpy.where(total != 0, total, 1.0), 0.0)


def _lanczos(radius, x):
    y = radius * numpy.sin(numpy.pi * x) * numpy.sin(numpy.pi * x / radius)
    safe = numpy.where(x != 0, numpy.pi ** 2 * x ** 2, 1.0)
    out = numpy.where(x > 1e-3, y / safe, 1.0)
    return numpy.where(x > radius, 0.0, out)


def scale_and_translate_matrix(n_in, n_out, scale, translation, kernel, antialias, dtype=numpy.float32):
    """JAX's ``scale_and_translate`` weights of one axis, as an (n_out, n_in) matrix, computed in ``dtype`` (the
    scale's and translation's)."""
    if kernel not in SCALE_AND_TRANSLATE_KERNELS:
        raise ValueError(f"scale_and_translate: kernel must be one of {SCALE_AND_TRANSLATE_KERNELS}, got {kernel!r}.")
    real = numpy.dtype(dtype).type
    inv_scale = real(1.0) / real(scale)
    kernel_scale = max(inv_scale, real(1.0)) if antialias else real(1.0)
    sample = (numpy.arange(n_out, dtype=real) + real(0.5)) * inv_scale - real(translation) * inv_scale - real(0.5)
    x = numpy.abs(sample[None, :] - numpy.arange(n_in, dtype=real)[:, None]) / kernel_scale
    if kernel == "linear":
        weights = numpy.maximum(real(0.0), real(1.0) - x)
    elif kernel == "cubic":
        weights = numpy.where(x >= 1.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, ((1.5 * x - 2.5) * x) * x + 1.0)
        weights = numpy.where(x >= 2.0, 0.0, weights)
    else:
        weights = _lanczos(3.0 if kernel == "lanczos3" else 5.0, x)
    weights = weights.astype(real)
    total = weights.sum(axis=0, keepdims=True)
    weights = numpy.where(numpy.abs(total) > 1000.0 * float(numpy.finfo(numpy.float32).eps),
                          weights / numpy.where(total != 0, total, real(1.0)), real(0.0))
    inside = (sample >= -0.5) & (sample <= n_in - 0.5)
    return numpy.where(inside[None, :], weights, real(0.0)).T.astype(real)
