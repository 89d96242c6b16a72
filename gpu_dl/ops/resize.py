"""Image resizing to any size, as Keras 3's ``Resizing`` on its torch backend computes it, and its transpose.

Images are channels_last (N, H, W, C); any other axes work too, the op goes
one axis at a time. Both interpolations are PyTorch's ``F.interpolate``
without antialiasing, which Keras 3.15's torch backend calls:

- ``bilinear`` (``align_corners=False``, half-pixel centres): output ``o``
  along an axis of ``n_in`` entries reads the input at
  ``src = max(scale * (o + 0.5) - 0.5, 0)``, ``scale = n_in / n_out``, from
  ``i0 = min(floor(src), n_in - 1)`` with weight ``1 - t`` and
  ``i1 = min(i0 + 1, n_in - 1)`` with weight ``t = src - i0`` (clipped to
  [0, 1]); ``scale`` and the weights are of the images' float type, as
  PyTorch's ``opmath`` type, and ``src`` is rounded once from the exact
  ``scale * (o + 0.5) - 0.5``, as PyTorch's fused multiply-add rounds it.
- ``nearest`` (PyTorch's ``nearest-exact``, which Keras maps "nearest" to):
  ``i = min(floor((o + 0.5) * scale), n_in - 1)`` with ``scale`` a float32.

2-D runs the width first, then the height, the order PyTorch's separable
products take. The sampling plan of an axis (indices and weights, one
entry per output position) is made on the host and is tiny; the images
stay on their device: one gather per interpolation node along the axis,
with array operations only, so NumPy and CuPy arrays take the same path.

The backward is the transpose of each axis's interpolation: every output
gradient is added back onto the input entries it read, with the same
weights, by one scatter-add per node (no loops over elements), the height
first, then the width.
"""
from __future__ import annotations

import functools

import numpy

from ..backend import array_module
from .device_reduction import is_cupy
from .scattering import scatter_taps

INTERPOLATIONS = ("bilinear", "nearest")


def _compute_dtype(dtype):
    dtype = numpy.dtype(dtype)
    return dtype if dtype in (numpy.float32, numpy.float64) else numpy.dtype(numpy.float32)


def axis_plan(n_in, n_out, interpolation, dtype=numpy.float32):
    """The sampling plan of one axis on the host: [(indices (n_out,) int64, weights (n_out,) or None)]."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"resize: interpolation must be one of {', '.join(map(repr, INTERPOLATIONS))}, "
                         f"got {interpolation!r}.")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"resize: sizes must be >= 1, got {n_in} -> {n_out}.")
    out = numpy.arange(n_out)
    if interpolation == "nearest":
        scale = numpy.float32(n_in) / numpy.float32(n_out)
        # PyTorch: floorf((o + 0.5) * scale), the product taken in double and rounded to float.
        position = ((out + 0.5) * numpy.float64(scale)).astype(numpy.float32)
        return [(numpy.minimum(numpy.floor(position).astype(numpy.int64), n_in - 1), None)]
    real = numpy.dtype(_compute_dtype(dtype)).type
    scale = real(n_in) / real(n_out)
    # PyTorch's float32 kernels fuse the product and the subtraction (one rounding): taken in double here.
    source = numpy.maximum((numpy.float64(scale) * (out + 0.5) - 0.5).astype(real), real(0))
    lower = numpy.minimum(numpy.floor(source).astype(numpy.int64), n_in - 1)
    upper_weight = numpy.clip(source - lower.astype(real), real(0), real(1)).astype(real)
    upper = numpy.minimum(lower + 1, n_in - 1)
    return [(lower, (real(1) - upper_weight).astype(real)), (upper, upper_weight)]


@functools.lru_cache(maxsize=64)
def _array_plan(xp, device, n_in, n_out, interpolation, dtype):
    """``axis_plan`` as arrays of ``xp`` in ``dtype`` on ``device``, made once per sizes: each call used to
    copy its four index and weight arrays from pageable host memory, a copy that stalls the host."""
    del device      # part of the key only: the arrays are made on the current device
    return tuple((xp.asarray(index), None if weight is None else xp.asarray(weight, dtype=dtype))
                 for index, weight in axis_plan(n_in, n_out, interpolation, dtype))


def _plan_of(x, n_in, n_out, interpolation):
    return _array_plan(array_module(x), getattr(getattr(x, "device", None), "id", None), n_in, n_out,
                       interpolation, numpy.dtype(x.dtype))


def _broadcast(weights, ndim, axis):
    return weights.reshape((1,) * axis + (-1,) + (1,) * (ndim - axis - 1))


def resize_axis(x, axis, n_out, interpolation):
    """``x`` resized along ``axis`` to ``n_out`` entries (module docstring)."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    xp = array_module(x)
    out = None
    for index, weight in _plan_of(x, n_in, n_out, interpolation):
        value = xp.take(x, index, axis=axis)
        if weight is not None:
            value = value * _broadcast(weight, x.ndim, axis)
        out = value if out is None else out + value
    return out


def resize_axis_backward(dy, axis, n_in, interpolation):
    """The gradient of ``resize_axis`` with respect to its input of ``n_in`` entries along ``axis``."""
    n_out = dy.shape[axis]
    if n_in == n_out:
        return dy
    xp = array_module(dy)
    if is_cupy(dy):
        return _scatter_axis_backward(dy, axis, n_in, interpolation)
    g = xp.moveaxis(dy, axis, 0).reshape(n_out, -1)
    rest = g.shape[1]
    column = xp.arange(rest, dtype=xp.int64)
    taps = (((xp.asarray(index)[:, None] * rest + column[None, :]).ravel(),
             (g if weight is None else g * xp.asarray(weight, dtype=dy.dtype)[:, None]).ravel())
            for index, weight in axis_plan(n_in, n_out, interpolation, dy.dtype))
    dx = scatter_taps(taps, n_in * rest, xp)
    moved = dx.astype(dy.dtype, copy=False).reshape((n_in,) + tuple(numpy.delete(dy.shape, axis)))
    return xp.ascontiguousarray(xp.moveaxis(moved, 0, axis))


def _scatter_axis_backward(dy, axis, n_in, interpolation):
    """``resize_axis_backward`` on CuPy arrays: one atomic-add scatter of whole slices per interpolation node,
    into a gradient shaped like the input. CuPy's ``bincount`` would make two host synchronisations per call
    (its check for negative bins and its maximum bin, each a reduction over an int64 index per element of
    dy), and add in a float64 copy; float16 adds in float32 here (atomic float16 adds would round each time)."""
    xp = array_module(dy)
    acc = numpy.float32 if dy.dtype == numpy.float16 else dy.dtype
    # the scatter's target is C-contiguous with the axis first: the scatter indexes it as a flat array
    moved = xp.zeros((n_in,) + dy.shape[:axis] + dy.shape[axis + 1:], dtype=acc)
    for index, weight in _plan_of(dy, n_in, dy.shape[axis], interpolation):
        part = dy if weight is None else dy * _broadcast(weight, dy.ndim, axis)
        xp.add.at(moved, index, xp.moveaxis(part, axis, 0).astype(acc, copy=False))
    return xp.ascontiguousarray(xp.moveaxis(moved, 0, axis)).astype(dy.dtype, copy=False)


def resize(x, height, width, interpolation="bilinear"):
    """Channels_last images (N, H, W, C) resized to (N, height, width, C), of the input's float dtype."""
    if x.ndim != 4:
        raise ValueError(f"resize: images must have rank 4 (N, H, W, C), got shape {tuple(x.shape)}.")
    y = resize_axis(resize_axis(x, 2, width, interpolation), 1, height, interpolation)
    return array_module(y).ascontiguousarray(y)


def resize_backward(dy, height, width, interpolation="bilinear"):
    """The gradient of ``resize`` with respect to its (N, height, width, C) input, for dy (N, H', W', C)."""
    return resize_axis_backward(resize_axis_backward(dy, 1, height, interpolation), 2, width, interpolation)
