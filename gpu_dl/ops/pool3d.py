"""3-D pooling on NDHWC volumes: max and average over windows, and global max/average over D x H x W.

Shapes: x (N, D, H, W, C) -> y (N, OD, OH, OW, C) with OD = (D + front + back - pool_d) // stride_d + 1 (and
so on); ``pool_size`` and ``strides`` are (int, int, int), ``padding`` ((front, back), (top, bottom),
(left, right)) as ``ops.convolution.conv_padding`` gives it for three axes. As in the 2-D ops (``pool.py``),
padded positions are not part of a window: max pooling never picks one, and average pooling divides by
the number of in-bounds positions (Keras's "same").

One body for NumPy and CuPy arrays: the padded input seen through ``as_strided`` (both modules have it)
as the (N, OD, OH, OW, KD, KH, KW, C) view of its windows. Average pooling sums that view; max pooling
copies it once as (N, OD, OH, OW, KD*KH*KW, C) rows and takes their argmax, so ``argmax`` (int32, shaped
like y) holds the window-local position (a * KH + b) * KW + q of the first maximum in row-major order (a
NaN wins where the array module's argmax lets it, as NumPy's does). The backward passes add each window
tap's gradient back with one strided add per tap (the windows' positions within one tap are distinct):
a loop over the pool's taps, each over all windows at once.

Global pooling is the 2-D global ops on the volume read as (N, D*H, W, C) (a reshape, no copy), so CuPy
arrays go to ``kernels/pooling.cu``; the global max's argmax is the position (d * H + h) * W + w.
"""
from __future__ import annotations

import numpy

from ..backend import array_module
from . import pool


def _output_size(input_shape, pool_size, strides, padding):
    out = pool.pool_output_shape(input_shape, pool_size, strides, padding)[1:4]
    if min(out) < 1:
        raise ValueError(f"pool3d: input {tuple(input_shape)} with pool {pool_size}, strides {strides} and padding "
                         f"{padding} leaves no output position.")
    return out


def _padded(x, padding, value):
    if not any(p for pair in padding for p in pair):
        return x
    return array_module(x).pad(x, ((0, 0),) + tuple(padding) + ((0, 0),), constant_values=value)


def _window_view(x_padded, pool_size, strides, out):
    """(N, OD, OH, OW, KD, KH, KW, C) read-only-by-convention view of the padded input's windows."""
    xp = array_module(x_padded)
    s_n, s_d, s_h, s_w, s_c = x_padded.strides
    shape = (x_padded.shape[0],) + tuple(out) + tuple(pool_size) + (x_padded.shape[-1],)
    steps = (s_n, s_d * strides[0], s_h * strides[1], s_w * strides[2], s_d, s_h, s_w, s_c)
    return xp.lib.stride_tricks.as_strided(x_padded, shape=shape, strides=steps)


def _in_bounds(xp, input_shape, pool_size, strides, padding, out, dtype):
    """(1, OD, OH, OW, KD, KH, KW, 1) windows of a mask that is 1 inside the input, 0 on the padding."""
    ones = xp.ones((1,) + tuple(input_shape[1:4]) + (1,), dtype=dtype)
    return _window_view(_padded(ones, padding, 0), pool_size, strides, out)


def _taps(pool_size, strides, out):
    """For each window tap: its window-local index and the padded input's slices of that tap in all windows."""
    for a in range(pool_size[0]):
        for b in range(pool_size[1]):
            for q in range(pool_size[2]):
                yield ((a * pool_size[1] + b) * pool_size[2] + q,
                       tuple(slice(t, t + s * (o - 1) + 1, s) for t, s, o in zip((a, b, q), strides, out)))


def _scatter_taps(dy, input_shape, pool_size, strides, padding, gradient_of_tap):
    """Sum each tap's gradient (shaped like dy) into the padded input's positions, then drop the padding."""
    xp = array_module(dy)
    n, d, h, w, c = input_shape
    (pf, pb), (pt, pbo), (pl, pr) = padding
    dx = xp.zeros((n, d + pf + pb, h + pt + pbo, w + pl + pr, c), dtype=dy.dtype)
    for tap, (depths, rows, cols) in _taps(pool_size, strides, dy.shape[1:4]):
        dx[:, depths, rows, cols, :] += gradient_of_tap(tap)
    return dx[:, pf:pf + d, pt:pt + h, pl:pl + w, :]


def max_pool3d_forward(x, pool_size, strides, padding):
    """(y, argmax); see the module docstring."""
    xp = array_module(x)
    out = _output_size(x.shape, pool_size, strides, padding)
    # padding as the lowest value, which no in-bounds value loses to, so a plain argmax never picks it unless a
    # window's in-bounds values all equal it (fixed below)
    low = -numpy.inf if x.dtype.kind == "f" else numpy.iinfo(x.dtype).min
    taps = pool_size[0] * pool_size[1] * pool_size[2]
    rows = _window_view(_padded(x, padding, low), pool_size, strides, out).reshape(
        (x.shape[0],) + tuple(out) + (taps, x.shape[-1]))          # the one copy: every window's values
    argmax = rows.argmax(axis=4)
    # the maximum as a second reduction: CuPy's take_along_axis at argmax builds an index array per axis and a
    # flat int64 index per output (about a dozen launches); max reads the rows once. A NaN wins in both.
    y = rows.max(axis=4)
    if any(p for pair in padding for p in pair):
        first_inside = _in_bounds(xp, x.shape, pool_size, strides, padding, out, numpy.int8).reshape(
            (1,) + tuple(out) + (taps, 1)).argmax(axis=4)
        argmax = xp.where(y == low, first_inside, argmax)
    return xp.asarray(y), xp.asarray(argmax.astype(numpy.int32))


def max_pool3d_backward(dy, argmax, input_shape, pool_size, strides, padding):
    """dL/dx (N, D, H, W, C): each dy element goes to its window's argmax position."""
    xp = array_module(dy)
    zero = dy.dtype.type(0)
    return _scatter_taps(dy, input_shape, pool_size, strides, padding,
                         lambda tap: xp.where(argmax == tap, dy, zero))   # a select: a NaN in dy stays put


def _window_counts(xp, input_shape, pool_size, strides, padding, out, dtype):
    """(1, OD, OH, OW, 1): how many of each window's positions are in the input."""
    return _in_bounds(xp, input_shape, pool_size, strides, padding, out, dtype).sum(axis=(4, 5, 6))


def avg_pool3d_forward(x, pool_size, strides, padding):
    xp = array_module(x)
    out = _output_size(x.shape, pool_size, strides, padding)
    total = _window_view(_padded(x, padding, 0), pool_size, strides, out).sum(axis=(4, 5, 6))
    return xp.asarray(total / _window_counts(xp, x.shape, pool_size, strides, padding, out, x.dtype))


def avg_pool3d_backward(dy, input_shape, pool_size, strides, padding):
    xp = array_module(dy)
    share = dy / _window_counts(xp, input_shape, pool_size, strides, padding, dy.shape[1:4], dy.dtype)
    return _scatter_taps(dy, input_shape, pool_size, strides, padding, lambda tap: share)


def _as_image(shape):
    n, d, h, w, c = shape
    return n, d * h, w, c


def global_max_pool3d_forward(x):
    """(y (N, C), argmax (N, C) int32 holding (d * H + h) * W + w)."""
    return pool.global_max_pool2d_forward(x.reshape(_as_image(x.shape)))


def global_max_pool3d_backward(dy, argmax, input_shape):
    return pool.global_max_pool2d_backward(dy, argmax, _as_image(input_shape)).reshape(tuple(input_shape))


def global_avg_pool3d_forward(x):
    return pool.global_avg_pool2d_forward(x.reshape(_as_image(x.shape)))


def global_avg_pool3d_backward(dy, input_shape):
    return pool.global_avg_pool2d_backward(dy, _as_image(input_shape)).reshape(tuple(input_shape))
