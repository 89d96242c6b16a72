"""Adaptive max and average pooling: windows chosen so that the output has a given size.

Shapes: x (N, S1, ..., Sk, C) channels_last, k = 1, 2 or 3 spatial axes, -> y (N, O1, ..., Ok, C) for
``output_size`` (O1, ..., Ok). Output position i along an axis of input size S pools the positions
start = floor(i * S / O) to end = ceil((i + 1) * S / O) (exclusive): PyTorch's rule, which Keras 3 runs
on its torch backend. Windows differ in size by one at most, neighbours may share a position, and an
output larger than its input repeats positions.

A window is the product of one interval per axis, so its max or mean is the max or mean along the last
spatial axis, then along the one before, and so on: each stage is a 1-D adaptive pooling of one axis,
a loop over that axis's output positions, each one slice reduced over all the other axes at once. For
max pooling, taking the first maximum of each stage (last axis first) picks the window's first maximum
in row-major order, as ``ops/pool.py`` and PyTorch do on ties; its ``argmax`` is the tuple of the stages'
window-local positions, which the backward routes dy through in reverse. NumPy and CuPy arrays run the
same code (array operations, no kernel).
"""
from __future__ import annotations

from ..backend import array_module


def adaptive_windows(size: int, out: int):
    """[(start, end)] of each of the ``out`` windows along an axis of ``size`` positions (PyTorch's rule)."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _check(shape, output_size):
    rank = len(output_size)
    if len(shape) != rank + 2:
        raise ValueError(f"adaptive pooling: an output size of {rank} axes takes inputs of rank {rank + 2} "
                         f"(batch, {rank} spatial axes, channels), got shape {tuple(shape)}.")
    if any(int(o) < 1 for o in output_size) or any(int(s) < 1 for s in shape[1:-1]):
        raise ValueError(f"adaptive pooling: input {tuple(shape)} to output size {tuple(output_size)}: every "
                         "spatial size must be >= 1.")


def _index(axis, where):
    return (slice(None),) * axis + (where,)


def _stage_shapes(input_shape, output_size):
    """The input shape of each stage, last spatial axis first: what stage ``axis`` reduces to its output."""
    shape, stages = list(input_shape), []
    for axis in range(len(output_size), 0, -1):
        stages.append((axis, tuple(shape)))
        shape[axis] = int(output_size[axis - 1])
    return stages


def adaptive_avg_pool_forward(x, output_size):
    """y (N, *output_size, C): the mean of each window."""
    _check(x.shape, output_size)
    xp = array_module(x)
    for axis, shape in _stage_shapes(x.shape, output_size):
        out = int(output_size[axis - 1])
        y = xp.empty(shape[:axis] + (out,) + shape[axis + 1:], dtype=x.dtype)
        for i, (start, end) in enumerate(adaptive_windows(shape[axis], out)):
            y[_index(axis, i)] = x[_index(axis, slice(start, end))].sum(axis=axis) / (end - start)
        x = y
    return x


def adaptive_avg_pool_backward(dy, input_shape):
    """dL/dx (input_shape): each dy element shared equally by its window's positions."""
    output_size = tuple(dy.shape[1:-1])
    xp = array_module(dy)
    for axis, shape in reversed(_stage_shapes(tuple(input_shape), output_size)):
        dx = xp.zeros(shape, dtype=dy.dtype)
        for i, (start, end) in enumerate(adaptive_windows(shape[axis], output_size[axis - 1])):
            # += : neighbouring windows may share a position
            dx[_index(axis, slice(start, end))] += dy[_index(axis, slice(i, i + 1))] / (end - start)
        dy = dx
    return dy


def adaptive_max_pool_forward(x, output_size):
    """(y (N, *output_size, C), argmax): the largest value of each window; ``argmax`` as the module docstring."""
    _check(x.shape, output_size)
    xp = array_module(x)
    argmax = []
    for axis, shape in _stage_shapes(x.shape, output_size):
        out = int(output_size[axis - 1])
        y = xp.empty(shape[:axis] + (out,) + shape[axis + 1:], dtype=x.dtype)
        where = xp.empty(y.shape, dtype="int32")
        for i, (start, end) in enumerate(adaptive_windows(shape[axis], out)):
            window = x[_index(axis, slice(start, end))]
            first = window.argmax(axis=axis)        # the first maximum (a NaN wins, as argmax has it)
            where[_index(axis, i)] = first
            y[_index(axis, i)] = xp.take_along_axis(window, xp.expand_dims(first, axis), axis=axis) \
                .squeeze(axis)
        argmax.append(where)
        x = y
    return x, tuple(argmax)


def adaptive_max_pool_backward(dy, argmax, input_shape):
    """dL/dx (input_shape): each dy element goes to its window's first maximum."""
    output_size = tuple(dy.shape[1:-1])
    xp = array_module(dy)
    zero = dy.dtype.type(0)
    stages = _stage_shapes(tuple(input_shape), output_size)
    for (axis, shape), where in reversed(list(zip(stages, argmax))):
        dx = xp.zeros(shape, dtype=dy.dtype)
        for i, (start, end) in enumerate(adaptive_windows(shape[axis], output_size[axis - 1])):
            offsets = xp.arange(end - start).reshape((1,) * axis + (-1,) + (1,) * (dy.ndim - axis - 1))
            picked = where[_index(axis, slice(i, i + 1))] == offsets
            # a select, not a product: a NaN in dy stays at the one position it belongs to
            dx[_index(axis, slice(start, end))] += xp.where(
                picked, dy[_index(axis, slice(i, i + 1))], zero)
        dy = dx
    return dy
