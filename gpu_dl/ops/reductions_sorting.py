"""Forward and backward of the reductions, quantiles, sorting, searching, segment and scatter functions of
``gpu_dl.ops`` (``layers/keras_ops/``: ``reductions_extra.py``, ``statistics.py``, ``sorting_searching.py``,
``segments_scatter.py``, ``select_operation.py``).

Each forward takes arrays of one module (NumPy or CuPy) and the operation's settings; each backward takes the
output gradient ``dy``, the forward's operands and output ``y``, and returns one gradient per operand (None for
integer operands). The gradients are the ones Keras's torch backend computes: an extreme's gradient is shared
equally between tied elements, a quantile's goes to the one or two order statistics it interpolates, a product's
is the product of the other factors (exact where some are zero). Sorting and grouping use sorts, gathers and
``add.at`` scatters only, which NumPy and CuPy both have.
"""
from __future__ import annotations

import numpy

from ..backend import array_module
from .numpy_functions import _kept, normalize_axes
from .scattering import add_at

QUANTILE_METHODS = ("linear", "lower", "higher", "midpoint", "nearest")


# ---------------------------------------------------------------- helpers
def lines(x, axis):
    """``x`` with the ``axis`` axes (None: all) moved last and laid out as one: (lines of shape kept + (n,),
    the permutation, the kept axes)."""
    axes = normalize_axes(axis, x.ndim)
    kept = [i for i in range(x.ndim) if i not in axes]
    perm = kept + list(axes)
    moved = x.transpose(perm)
    return moved.reshape(tuple(x.shape[i] for i in kept) + (-1,)), perm, kept


def unlines(flat, shape, perm):
    """The inverse of ``lines``: an array of ``shape`` from its lines."""
    moved_shape = tuple(shape[i] for i in perm)
    return flat.reshape(moved_shape).transpose(tuple(numpy.argsort(perm)))


def _inverse_permutation(order):
    return array_module(order).argsort(order, axis=-1)


def stable_argsort(x, axis=-1):
    """Indices that sort ``x`` along ``axis``, ties in their order of appearance, NaN last."""
    xp = array_module(x)
    return xp.argsort(x, axis=axis, kind="stable") if xp is numpy else xp.argsort(x, axis=axis)


# ---------------------------------------------------------------- extremes and counts
def extreme_share(x, y, axes, keepdims):
    """Where ``x`` equals its extreme ``y`` over ``axes``, divided by how many do (the share of the gradient)."""
    xp = array_module(x)
    hit = (x == _kept(y, axes, keepdims)).astype(x.dtype)
    return hit / xp.maximum(hit.sum(axis=axes, keepdims=True), 1)


def ptp_backward(dy, x, y_max, y_min, axis, keepdims):
    axes = normalize_axes(axis, x.ndim)
    d = _kept(dy, axes, keepdims)
    return d * (extreme_share(x, y_max, axes, keepdims) - extreme_share(x, y_min, axes, keepdims))


# ---------------------------------------------------------------- quantiles
def quantile_forward(x, q, axis, method, keepdims, ignore_nan):
    """The ``q`` quantiles (an array of numbers in [0, 1]) of ``x`` over ``axis``, as torch.quantile computes them
    (``nanquantile`` when ``ignore_nan``): q's axes first, then the reduced shape. Returns (result, what the
    backward needs)."""
    xp = array_module(x)
    flat, perm, kept = lines(x, axis)
    order = stable_argsort(flat)
    ordered = xp.take_along_axis(flat, order, axis=-1)
    nan = xp.isnan(flat)
    n = flat.shape[-1]
    count = (n - nan.sum(axis=-1)) if ignore_nan else xp.full(flat.shape[:-1], n)
    qs = q.reshape(-1).astype(x.dtype)
    position = (count[..., None] - 1).astype(x.dtype) * qs                   # kept + (nq,)
    low, high = xp.floor(position), xp.ceil(position)
    weight = position - low
    if method == "lower":
        high, weight = low, xp.zeros_like(weight)
    elif method == "higher":
        low, weight = high, xp.zeros_like(weight)
    elif method == "nearest":
        low = high = xp.round(position)
        weight = xp.zeros_like(weight)
    elif method == "midpoint":
        weight = xp.full_like(weight, 0.5)
    low = xp.clip(low, 0, max(n - 1, 0)).astype("int64")
    high = xp.clip(high, 0, max(n - 1, 0)).astype("int64")
    if n == 0:
        values = xp.full(position.shape, numpy.nan, dtype=x.dtype)
    else:
        a = xp.take_along_axis(ordered, low, axis=-1)
        b = xp.take_along_axis(ordered, high, axis=-1)
        values = a + weight * (b - a)
        empty = (count == 0) if ignore_nan else nan.any(axis=-1)
        values = xp.where(empty[..., None], x.dtype.type(numpy.nan), values)
    y = xp.moveaxis(values, -1, 0).reshape(q.shape + flat.shape[:-1])
    if keepdims:
        y = y.reshape(q.shape + tuple(1 if i not in kept else n_ for i, n_ in enumerate(x.shape)))
    return y, (order, low, high, weight, perm)


def quantile_backward(dy, x, q, saved, keepdims):
    """The gradient of ``quantile_forward``: each quantile's to the order statistics it interpolates."""
    xp = array_module(dy)
    order, low, high, weight, perm = saved
    n = order.shape[-1]
    d = dy.reshape((int(numpy.prod(q.shape, dtype=numpy.int64)),) + order.shape[:-1])
    d = xp.moveaxis(d, 0, -1)                                                 # kept + (nq,)
    # each line's two order statistics per quantile take (1 - w) and w of its gradient: scattered into the sorted
    # line as flat places (line * n + rank)
    lines_count = int(numpy.prod(order.shape[:-1], dtype=numpy.int64))
    line = (xp.arange(lines_count) * n).reshape(order.shape[:-1] + (1,))
    on_sorted = xp.zeros(lines_count * n, dtype=x.dtype)
    xp.add.at(on_sorted, (line + low).reshape(-1), ((1 - weight) * d).reshape(-1).astype(x.dtype))
    xp.add.at(on_sorted, (line + high).reshape(-1), (weight * d).reshape(-1).astype(x.dtype))
    flat = xp.take_along_axis(on_sorted.reshape(order.shape), _inverse_permutation(order), axis=-1)
    return unlines(flat, x.shape, perm)


# ---------------------------------------------------------------- running products
def cumprod_backward(dy, x, axis):
    """The gradient of a running product along ``axis`` (x laid out flat when None), exact where factors are 0:
    before a line's first zero it is the usual sum of dy * y / x over the later outputs; at the first zero, the
    sum over the later outputs of dy times their products with that factor left out; after it, 0."""
    xp = array_module(dy)
    shape = x.shape
    if axis is None:
        x, dy, axis = x.reshape(-1), dy.reshape(-1), 0
    x = xp.moveaxis(x, axis, -1)
    dy = xp.moveaxis(dy, axis, -1)
    n = x.shape[-1]
    zero = x == 0
    first = xp.where(zero.any(axis=-1), zero.argmax(axis=-1), n)[..., None]      # the first zero, or n
    at = xp.arange(n)
    before = at < first
    safe = xp.where(zero, 1, x)
    y = xp.cumprod(safe, axis=-1)
    # before the first zero: sum over i >= j, i < first of dy_i y_i / x_j
    upto = xp.where(before, dy * y, 0)
    tail = xp.flip(xp.cumsum(xp.flip(upto, axis=-1), axis=-1), axis=-1)
    g = xp.where(before, tail / safe, 0)
    # at the first zero: y_i with that factor as 1 is the plain running product of the safe factors up to the
    # next zero; beyond the next zero the products are 0 again
    later_zero = zero & (at > first)
    live = xp.cumsum(later_zero, axis=-1) == 0
    at_zero = xp.where(live & (at >= first), dy * y, 0).sum(axis=-1, keepdims=True)
    g = xp.where(at == first, at_zero, g)
    return xp.moveaxis(g, -1, axis if len(shape) else 0).reshape(shape)


# ---------------------------------------------------------------- sorting
def sorted_scatter(dy_sorted, order, n):
    """Gradients given in sorted order (the first ``k`` places of each line) sent back to the elements' places."""
    xp = array_module(dy_sorted)
    k = dy_sorted.shape[-1]
    if k < n:
        dy_sorted = xp.concatenate([dy_sorted, xp.zeros(dy_sorted.shape[:-1] + (n - k,), dy_sorted.dtype)], axis=-1)
    return xp.take_along_axis(dy_sorted, _inverse_permutation(order), axis=-1)


def argpartition_forward(x, kth, axis):
    """Keras's torch argpartition: the ``kth + 1`` smallest in ascending order, then the others by position."""
    xp = array_module(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    moved = xp.moveaxis(x, axis, -1)
    n = moved.shape[-1]
    order = stable_argsort(moved)
    bottom = order[..., :kth + 1]
    chosen = _inverse_permutation(order) <= kth
    rest = stable_argsort(chosen.astype("int8"))[..., :n - kth - 1]
    return xp.moveaxis(xp.concatenate([bottom, rest], axis=-1), -1, axis).astype("int32")


# ---------------------------------------------------------------- correlation, differences, areas
def valid_correlate(a, b):
    """out[..., k] = sum_j a[..., k + j] * b[..., j] over the places where b fits in a (a gather and an
    einsum: (len(a) - len(b) + 1) * len(b) products)."""
    xp = array_module(a)
    m = b.shape[-1]
    count = a.shape[-1] - m + 1
    index = xp.arange(count)[:, None] + xp.arange(m)[None, :]
    return xp.einsum("...kj,...j->...k", a[..., index], b)


def correlate_window(n, m, mode):
    """Where Keras's torch correlate cuts its output from the full correlation: (start, length)."""
    full = n + m - 1
    if mode == "full":
        return 0, full
    length = max(n, m) - min(n, m) + 1 if mode == "valid" else n
    return (full - length) // 2, length


def correlate_forward(x1, x2, mode):
    xp = array_module(x1)
    m = x2.shape[-1]
    padded = xp.pad(x1, (m - 1, m - 1))
    start, length = correlate_window(x1.shape[-1], m, mode)
    return valid_correlate(padded, x2)[start:start + length]


def correlate_backward(dy, x1, x2, mode):
    xp = array_module(dy)
    n, m = x1.shape[-1], x2.shape[-1]
    start, length = correlate_window(n, m, mode)
    full = xp.zeros(n + m - 1, dtype=dy.dtype)
    full[start:start + length] = dy
    g1 = valid_correlate(full, x2[::-1])
    g2 = valid_correlate(full, x1)[::-1]
    return g1, g2


def diff_forward(x, n, axis):
    xp = array_module(x)
    for _ in range(n):
        x = xp.diff(x, axis=axis)
    return x


def diff_backward(dy, x, n, axis):
    """The adjoint of ``n`` differences: each step gives u[j - 1] - u[j] (0 outside)."""
    xp = array_module(dy)
    axis = axis % x.ndim
    for _ in range(n):
        widths = [(0, 0)] * dy.ndim
        widths[axis] = (1, 1)
        padded = xp.pad(dy, widths)
        dy = xp.diff(padded, axis=axis) * -1
    return dy


def trapezoid_weights(xp, size, dx, x, dtype):
    """Each sample's weight in the trapezoid rule along an axis of ``size``: half its intervals' widths."""
    if x is None:
        widths = xp.full(max(size - 1, 0), dx, dtype=dtype)
    else:
        widths = xp.diff(xp.asarray(x).astype(dtype))
    weights = xp.zeros(size, dtype=dtype)
    if size > 1:
        weights[:-1] += widths / 2
        weights[1:] += widths / 2
    return weights


def corrcoef_forward(x):
    """The rows' correlation coefficients (clipped to [-1, 1], as torch does), and the normalised centred rows."""
    xp = array_module(x)
    centred = x - x.mean(axis=-1, keepdims=True)
    length = xp.sqrt((centred * centred).sum(axis=-1, keepdims=True))
    z = centred / length
    return xp.clip(z @ z.T, -1, 1), (z, length)


def corrcoef_backward(dy, saved):
    z, length = saved
    dz = (dy + dy.T) @ z
    dcentred = (dz - (dz * z).sum(axis=-1, keepdims=True) * z) / length
    return dcentred - dcentred.mean(axis=-1, keepdims=True)


# ---------------------------------------------------------------- grouped reductions (segments, scatters)
def groups(ids, count):
    """Each element's place in a dense (count, longest group) table of its group: (row, column, longest), the
    elements with an id outside [0, count) left out (row -1)."""
    xp = array_module(ids)
    ids = ids.astype("int64").reshape(-1)
    valid = (ids >= 0) & (ids < count)
    key = xp.where(valid, ids, count)
    order = stable_argsort(key)
    sizes = xp.bincount(key, minlength=count + 1)
    starts = xp.cumsum(sizes) - sizes
    rank = xp.empty_like(order)
    rank[order] = xp.arange(order.size) - starts[key[order]]
    longest = int(sizes[:count].max()) if count and ids.size else 0
    return xp.where(valid, key, -1), rank, max(longest, 1)


def grouped_table(data, row, column, count, longest, fill):
    """The elements of ``data`` (rows along its first axis) laid out per group: (count, longest) + rest, ``fill``
    where a group has fewer."""
    xp = array_module(data)
    table = xp.full((count, longest) + data.shape[1:], fill, dtype=data.dtype)
    valid = row >= 0
    table[row[valid], column[valid]] = data[valid]
    return table


def segment_forward(data, ids, count, reduction):
    """Keras's segment_{sum, max, min, prod}: ``(count,) + data.shape[1:]``; an empty segment holds 0 for a sum,
    1 for a product, -inf (+inf) for a maximum (minimum) of floats, the dtype's extreme for integers. A sum
    scatters with ``add.at``; the others reduce a table of the rows per segment (``grouped_table``: count x the
    longest segment's length rows, plain gathers and writes on NumPy and CuPy alike)."""
    xp = array_module(data)
    row, column, longest = groups(ids, count)
    if reduction == "sum":
        out = xp.zeros((count,) + data.shape[1:], dtype=data.dtype)
        valid = row >= 0
        add_at(out, row[valid], data[valid])
        return out, (row, column, longest)
    fill = _identity(data.dtype, reduction)
    table = grouped_table(data, row, column, count, longest, fill)
    out = {"max": table.max, "min": table.min, "prod": table.prod}[reduction](axis=1)
    return out, (row, column, longest)


def _identity(dtype, reduction):
    dtype = numpy.dtype(dtype)
    if reduction == "prod":
        return 1
    if dtype.kind == "f":
        return -numpy.inf if reduction == "max" else numpy.inf
    if dtype.kind == "b":
        return reduction == "min"
    info = numpy.iinfo(dtype)
    return info.min if reduction == "max" else info.max


def segment_backward(dy, data, y, saved, reduction):
    xp = array_module(dy)
    row, column, longest = saved
    valid = row >= 0
    g = xp.zeros_like(data)
    if reduction == "sum":
        g[valid] = dy[row[valid]]
        return g
    count = y.shape[0]
    if reduction in ("max", "min"):
        hit = (data[valid] == y[row[valid]]).astype(data.dtype)
        ties = xp.zeros(y.shape, dtype=data.dtype)
        add_at(ties, row[valid], hit)
        g[valid] = dy[row[valid]] * hit / xp.maximum(ties[row[valid]], 1)
        return g
    table = grouped_table(data, row, column, count, longest, 1)
    ones = xp.ones((count, 1) + data.shape[1:], dtype=data.dtype)
    before = xp.cumprod(xp.concatenate([ones, table[:, :-1]], axis=1), axis=1)
    after = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(table, axis=1)[:, :-1]], axis=1), axis=1), axis=1)
    others = before * after
    g[valid] = dy[row[valid]] * others[row[valid], column[valid]]
    return g


def flat_targets(indices, shape):
    """Scatter indices (..., d) into ``shape``: each update's flat place among the first d axes' cells."""
    xp = array_module(indices)
    d = indices.shape[-1]
    index = indices.reshape(-1, d).astype("int64")
    index = xp.where(index < 0, index + xp.asarray(shape[:d]), index)
    return xp.ravel_multi_index(tuple(index.T), shape[:d]) if d else xp.zeros(index.shape[0], "int64")


def last_of_each(targets):
    """The positions of the last occurrence of each distinct value of the 1-D ``targets``."""
    xp = array_module(targets)
    order = stable_argsort(targets)
    ordered = targets[order]
    last = xp.ones(ordered.shape, dtype=bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    return order[last]


# ---------------------------------------------------------------- select
def select_forward(conditions, choices, default):
    """Per element, the first of ``choices`` whose condition (bool arrays) holds, ``default`` where none does; all
    broadcast together, in the dtype of the choices and the default (which the caller makes one)."""
    xp = array_module(*conditions, *choices, default)
    out = xp.broadcast_to(default, numpy.broadcast_shapes(*[a.shape for a in (*conditions, *choices, default)]))
    for condition, choice in zip(reversed(conditions), reversed(choices)):
        out = xp.where(condition, choice, out)
    return out


def select_backward(dy, conditions):
    """The gradients of select's choices and of its default, in ``dy``'s shape: ``dy`` where each is the one
    chosen (the first choice whose condition holds; the default where none does), zeros elsewhere."""
    xp = array_module(dy)
    zero = xp.zeros((), dtype=dy.dtype)
    taken = xp.zeros(dy.shape, dtype=bool)
    gradients = []
    for condition in conditions:
        gradients.append(xp.where(condition & ~taken, dy, zero))
        taken = taken | condition
    gradients.append(xp.where(taken, zero, dy))
    return gradients
