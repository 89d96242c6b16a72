"""2-D pooling on NHWC data: max and average over windows, and global max/average over H x W.

Shapes: x (N, H, W, C) -> y (N, OH, OW, C) with
OH = (H + top + bottom - pool_h) // stride_h + 1. ``pool_size`` and
``strides`` are (int, int), ``padding`` ((top, bottom), (left, right)) as
``ops.convolution.conv_padding`` gives it (Keras "same" puts the odd pad
bottom/right). Padded positions are not part of a window: max pooling never
picks one, and average pooling divides by the number of in-bounds positions,
as Keras (TensorFlow) does with "same".

Max pooling returns, beside y, ``argmax`` (int32, shaped like y): the
window-local position r * pool_w + q of the first maximum in row-major
order; a NaN in the window wins (NumPy's argmax). Its backward routes dy
there. The global versions return (N, C) and, for max, the position
h * W + w.

The NumPy path loops over the pool_h * pool_w taps of the window, each one
strided slice over all windows at once, in arithmetic rather than selects
(``where`` and masked copies mispredict a branch per element on data whose
comparisons come out mixed, several times slower). The NaN and infinity
rules need selects; inputs holding NaN or infinities take that slower
path. CuPy arrays go to ``kernels/pooling.cu``.
"""
from __future__ import annotations

import numpy

from .convolution import is_cupy


def pool_output_shape(input_shape, pool_size, strides, padding) -> tuple:
    """(N, OH, OW, C) of a pooling (sizes may be None); (N, OD, OH, OW, C) for a volume's 3-tuples."""
    n, *spatial, c = input_shape
    out = tuple(None if s is None else (s + p[0] + p[1] - k) // st + 1
                for s, k, st, p in zip(spatial, pool_size, strides, padding))
    return (n,) + out + (c,)


def _taps(out_hw, pool_size, strides):
    """For each window tap (r, q): its index r * pool_w + q and the padded-input slices of all windows."""
    for r in range(pool_size[0]):
        rows = slice(r, r + strides[0] * (out_hw[0] - 1) + 1, strides[0])
        for q in range(pool_size[1]):
            cols = slice(q, q + strides[1] * (out_hw[1] - 1) + 1, strides[1])
            yield r * pool_size[1] + q, rows, cols


def _in_bounds(shape_hw, padding):
    """(1, H + pads, W + pads, 1) mask of the positions that are not padding."""
    (pt, pb), (pl, pr) = padding
    mask = numpy.zeros((1, shape_hw[0] + pt + pb, shape_hw[1] + pl + pr, 1), dtype=bool)
    mask[:, pt:pt + shape_hw[0], pl:pl + shape_hw[1], :] = True
    return mask


def _padded(x, padding):
    (pt, pb), (pl, pr) = padding
    return numpy.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if (pt or pb or pl or pr) else x


def _geometry(input_shape, pool_size, strides, padding):
    _, oh, ow, _ = pool_output_shape(input_shape, pool_size, strides, padding)
    if oh < 1 or ow < 1:
        raise ValueError(f"pooling: input {tuple(input_shape)} with pool {pool_size}, strides {strides} and "
                         f"padding {padding} leaves no output position.")
    return oh, ow


def max_pool2d_forward(x, pool_size, strides, padding):
    """(y, argmax); see the module docstring."""
    if is_cupy(x):
        from .pool_kernels import max_pool2d_forward_cuda
        return max_pool2d_forward_cuda(x, pool_size, strides, padding)
    oh, ow = _geometry(x.shape, pool_size, strides, padding)
    if x.dtype.kind == "f" and numpy.isfinite(x).all():
        return _max_pool_finite(x, pool_size, strides, padding, (oh, ow))
    return _max_pool_any(x, pool_size, strides, padding, (oh, ow))


def _max_pool_any(x, pool_size, strides, padding, out_hw):
    """Max pooling with the NaN rule (a NaN wins over numbers) and padding never picked, by selects."""
    oh, ow = out_hw
    xp_, valid = _padded(x, padding), _in_bounds(x.shape[1:3], padding)
    shape = (x.shape[0], oh, ow, x.shape[3])
    best = numpy.full(shape, numpy.nan, dtype=x.dtype)
    argmax = numpy.full(shape, -1, dtype=numpy.int32)
    seen = numpy.zeros(shape, dtype=bool)
    for tap, rows, cols in _taps((oh, ow), pool_size, strides):
        v = xp_[:, rows, cols, :]
        # first in-bounds value; later ones win when strictly greater, or NaN over a number
        take = valid[:, rows, cols, :] & (~seen | (v > best) | (numpy.isnan(v) & ~numpy.isnan(best)))
        best = numpy.where(take, v, best)
        argmax[take] = tap
        seen |= take
    return best, argmax


def _max_pool_finite(x, pool_size, strides, padding, out_hw):
    """Max pooling of finite x: padding as -inf, which every window's in-bounds values beat, so a
    running maximum and a running argmax of the strictly greater decide, without selects."""
    (pt, pb), (pl, pr) = padding
    if pt or pb or pl or pr:
        x = numpy.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-numpy.inf)
    taps = list(_taps(out_hw, pool_size, strides))
    _, rows, cols = taps[0]
    best = x[:, rows, cols, :].copy()
    index = numpy.int8 if len(taps) <= 127 else numpy.int32   # a quarter of the bytes per pass where it fits
    argmax = numpy.zeros(best.shape, dtype=index)
    greater, step = numpy.empty(best.shape, dtype=bool), numpy.empty_like(argmax)
    for tap, rows, cols in taps[1:]:
        v = x[:, rows, cols, :]
        numpy.greater(v, best, out=greater)
        numpy.maximum(best, v, out=best)
        numpy.subtract(index(tap), argmax, out=step)   # argmax += greater * (tap - argmax)
        numpy.multiply(step, greater, out=step)
        argmax += step
    return best, argmax.astype(numpy.int32)


def max_pool2d_backward(dy, argmax, input_shape, pool_size, strides, padding):
    if is_cupy(dy):
        from .pool_kernels import max_pool2d_backward_cuda
        return max_pool2d_backward_cuda(dy, argmax, tuple(input_shape), pool_size, strides, padding)
    if dy.dtype.kind == "f" and numpy.isfinite(dy).all():   # dy * 0 is 0 for the taps that did not win
        return _scatter_taps(dy, input_shape, pool_size, strides, padding, lambda tap: dy * (argmax == tap))
    return _scatter_taps(dy, input_shape, pool_size, strides, padding,
                         lambda tap: numpy.where(argmax == tap, dy, dy.dtype.type(0)))


def _window_counts(input_shape, pool_size, strides, padding, out_hw, dtype):
    valid = _in_bounds(input_shape[1:3], padding)
    count = numpy.zeros((1,) + out_hw + (1,), dtype=dtype)
    for _, rows, cols in _taps(out_hw, pool_size, strides):
        count += valid[:, rows, cols, :]
    return count


def avg_pool2d_forward(x, pool_size, strides, padding):
    if is_cupy(x):
        from .pool_kernels import avg_pool2d_forward_cuda
        return avg_pool2d_forward_cuda(x, pool_size, strides, padding)
    oh, ow = _geometry(x.shape, pool_size, strides, padding)
    xp_ = _padded(x, padding)
    total = numpy.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    for _, rows, cols in _taps((oh, ow), pool_size, strides):
        total += xp_[:, rows, cols, :]
    return total / _window_counts(x.shape, pool_size, strides, padding, (oh, ow), x.dtype)


def avg_pool2d_backward(dy, input_shape, pool_size, strides, padding):
    if is_cupy(dy):
        from .pool_kernels import avg_pool2d_backward_cuda
        return avg_pool2d_backward_cuda(dy, tuple(input_shape), pool_size, strides, padding)
    share = dy / _window_counts(input_shape, pool_size, strides, padding, dy.shape[1:3], dy.dtype)
    return _scatter_taps(dy, input_shape, pool_size, strides, padding, lambda tap: share)


def _scatter_taps(dy, input_shape, pool_size, strides, padding, gradient_of_tap):
    """Sum each tap's gradient (shaped like dy) into the padded input's positions, then drop the padding."""
    n, h, w, c = input_shape
    (pt, pb), (pl, pr) = padding
    dx = numpy.zeros((n, h + pt + pb, w + pl + pr, c), dtype=dy.dtype)
    disjoint = all(s >= k for s, k in zip(strides, pool_size))   # no position in two windows: assign, not add
    for tap, rows, cols in _taps(dy.shape[1:3], pool_size, strides):
        if disjoint:
            dx[:, rows, cols, :] = gradient_of_tap(tap)
        else:
            dx[:, rows, cols, :] += gradient_of_tap(tap)   # within one tap the windows' positions are distinct
    return dx[:, pt:pt + h, pl:pl + w, :]


def global_max_pool2d_forward(x):
    """(y (N, C), argmax (N, C) int32 holding h * W + w)."""
    if is_cupy(x):
        from .pool_kernels import global_max_pool2d_forward_cuda
        return global_max_pool2d_forward_cuda(x)
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    argmax = flat.argmax(axis=1).astype(numpy.int32)
    return numpy.take_along_axis(flat, argmax[:, None, :], axis=1)[:, 0, :], argmax


def global_max_pool2d_backward(dy, argmax, input_shape):
    if is_cupy(dy):
        from .pool_kernels import global_max_pool2d_backward_cuda
        return global_max_pool2d_backward_cuda(dy, argmax, tuple(input_shape))
    n, h, w, c = input_shape
    dx = numpy.zeros((n, h * w, c), dtype=dy.dtype)
    numpy.put_along_axis(dx, argmax[:, None, :].astype(numpy.intp), dy[:, None, :], axis=1)
    return dx.reshape(input_shape)


def global_avg_pool2d_forward(x):
    if is_cupy(x):
        from .pool_kernels import global_avg_pool2d_forward_cuda
        return global_avg_pool2d_forward_cuda(x)
    return x.mean(axis=(1, 2))


def global_avg_pool2d_backward(dy, input_shape):
    if is_cupy(dy):
        from .pool_kernels import global_avg_pool2d_backward_cuda
        return global_avg_pool2d_backward_cuda(dy, tuple(input_shape))
    n, h, w, c = input_shape
    share = dy / dy.dtype.type(h * w)
    return numpy.ascontiguousarray(numpy.broadcast_to(share[:, None, None, :], (n, h, w, c)))
