"""Merging several arrays into one, forward and backward, for NumPy and CuPy arrays alike.

The merge layers' maths. Element-wise merges (sum, difference, product,
maximum, minimum) broadcast as Keras's merge layers do: inputs of lower rank
get axes of size 1 inserted after the batch axis (``aligned``), then sizes of
1 stretch; each input's gradient is summed back over the axes it was stretched
along (``unbroadcast``). Masks are (batch, ...) booleans of padded steps,
widened to the inputs' rank by trailing axes of size 1. Loops run over the
inputs (a handful), never over elements.

The dot product of two inputs along one axis of each (``batch_dot``, Keras's
``batch_dot``) is one batched matrix product: each input's summed axis is
moved next to the other's, the rest folded into matrix rows and columns. On
CuPy arrays the same code runs as cuBLAS batched GEMMs; ``l2_normalize`` is
Keras's ``ops.normalize`` for ``Dot(normalize=True)``.
"""
from __future__ import annotations

import math

from ..backend import array_module


def aligned(xs):
    """The inputs reshaped (views) to one rank, by axes of size 1 after the batch axis, as Keras's
    ``expand_dims(x, axis=1)``."""
    rank = max(x.ndim for x in xs)
    return [x if x.ndim == rank else x.reshape((x.shape[0],) + (1,) * (rank - x.ndim) + tuple(x.shape[1:]))
            for x in xs]


def unbroadcast(g, shape):
    """``g`` summed over the axes along which an input of ``shape`` (same rank as ``g``) was stretched."""
    axes = tuple(i for i, (gs, s) in enumerate(zip(g.shape, shape)) if s == 1 and gs != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def widened_mask(mask, x):
    """A (batch, ...) mask with trailing axes of size 1 up to ``x``'s rank, or None."""
    if mask is None:
        return None
    return mask.reshape(tuple(mask.shape) + (1,) * (x.ndim - mask.ndim)) if mask.ndim < x.ndim else mask


def input_gradients(g_full, xs_aligned, originals):
    """Each input's gradient from the gradient ``g_full[i]`` that reached its aligned form."""
    return [unbroadcast(g, a.shape).reshape(o.shape) for g, a, o in zip(g_full, xs_aligned, originals)]


# ------------------------------------------------------------------ sum, mean, difference
def sum_forward(xs):
    xs = aligned(xs)
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


def sum_backward(dy, originals, scale=None):
    """Gradients of ``scale * (x1 + x2 + ...)`` (``scale`` None: 1)."""
    g = dy if scale is None else dy * dy.dtype.type(scale)
    xs = aligned(originals)
    return input_gradients([g] * len(xs), xs, originals)


def difference_forward(xs):
    a, b = aligned(xs)
    return a - b


def difference_backward(dy, originals):
    xs = aligned(originals)
    return input_gradients([dy, -dy], xs, originals)


# ------------------------------------------------------------------ product
def product_forward(xs, masks=None):
    """x1 * x2 * ..., with Keras's masking: a masked-out value counts as 1, and where every input has a
    mask the output is 0 at steps no input keeps. Returns (y, what backward needs)."""
    xp = array_module(xs[0])
    xs = aligned(xs)
    masks = masks or [None] * len(xs)
    widened = [widened_mask(m, x) for m, x in zip(masks, xs)]
    factors = [x if m is None else xp.where(m, x, x.dtype.type(1)) for x, m in zip(xs, widened)]
    y = factors[0]
    for f in factors[1:]:
        y = y * f
    keep = None
    if all(m is not None for m in widened):
        keep = widened[0]
        for m in widened[1:]:
            keep = keep | m
        y = xp.where(keep, y, y.dtype.type(0))
    return y, (factors, widened, keep)


def product_backward(dy, originals, saved):
    """Gradients of the product: each input's is dy times the product of the others (from running
    products from both ends, no division), zero where its mask replaced it or the output was zeroed."""
    xp = array_module(dy)
    factors, widened, keep = saved
    if keep is not None:
        dy = xp.where(keep, dy, dy.dtype.type(0))
    n = len(factors)
    before = [None] * n        # product of factors[:i]
    after = [None] * n         # product of factors[i + 1:]
    for i in range(1, n):
        before[i] = factors[i - 1] if before[i - 1] is None else before[i - 1] * factors[i - 1]
    for i in range(n - 2, -1, -1):
        after[i] = factors[i + 1] if after[i + 1] is None else after[i + 1] * factors[i + 1]
    grads = []
    for i in range(n):
        g = dy
        if before[i] is not None:
            g = g * before[i]
        if after[i] is not None:
            g = g * after[i]
        if widened[i] is not None:
            g = xp.where(widened[i], g, g.dtype.type(0))
        grads.append(g)
    return input_gradients(grads, aligned(originals), originals)


# ------------------------------------------------------------------ maximum, minimum
def extreme_forward(xs, masks=None, largest=True):
    """The element-wise maximum (``largest``) or minimum, folded over the inputs as Keras folds it: a value
    whose mask is False is replaced by the running result (and the running result, where its mask is False,
    by the value), so masked-out steps do not compete. Returns (y, source), ``source`` the index of the input
    each output element came from (ties: the earlier input)."""
    xp = array_module(xs[0])
    xs = aligned(xs)
    masks = masks or [None] * len(xs)
    widened = [widened_mask(m, x) for m, x in zip(masks, xs)]
    pick_op = xp.maximum if largest else xp.minimum
    y = xs[0]
    out_mask = widened[0]
    shape = tuple(max(sizes) for sizes in zip(*(x.shape for x in xs)))
    source = xp.zeros(shape, dtype=xp.int32)
    for i in range(1, len(xs)):
        x, mask = xs[i], widened[i]
        x_source = xp.int32(i)
        if mask is not None:
            x = xp.where(mask, x, y)
            x_source = xp.where(mask, x_source, source)
        if out_mask is not None:
            y = xp.where(out_mask, y, x)
            source = xp.where(out_mask, source, x_source)
        out_mask = out_mask | mask if (mask is not None and out_mask is not None) else None
        takes = x > y if largest else x < y
        source = xp.where(takes, x_source, source)
        y = pick_op(y, x)
    return y, xp.broadcast_to(source, y.shape)


def extreme_backward(dy, originals, source):
    xp = array_module(dy)
    zero = dy.dtype.type(0)
    grads = [xp.where(source == i, dy, zero) for i in range(len(originals))]
    return input_gradients(grads, aligned(originals), originals)


# ------------------------------------------------------------------ concatenation
def concatenate_forward(xs, axis):
    return array_module(xs[0]).concatenate(xs, axis=axis)


def concatenate_backward(dy, originals, axis):
    xp = array_module(dy)
    cuts = []
    total = 0
    for x in originals[:-1]:
        total += x.shape[axis]
        cuts.append(total)
    return [xp.ascontiguousarray(g) for g in xp.split(dy, cuts, axis=axis)]


def concatenated_mask(xs, masks, axis):
    """Keras's mask of a concatenation: each input's mask (all True where it has none) spread over the
    input's shape, concatenated along ``axis``, then any() over the last axis. None when no input has one."""
    if all(m is None for m in masks):
        return None
    xp = array_module(xs[0])
    spread = []
    for x, m in zip(xs, masks):
        if m is None:
            spread.append(xp.ones(x.shape, dtype=bool))
        else:
            spread.append(xp.broadcast_to(widened_mask(m, x), x.shape))
    return xp.concatenate(spread, axis=axis).any(axis=-1)


# ------------------------------------------------------------------ dot product along one axis of each input
L2_EPSILON = 1e-7   # Keras's backend.epsilon(): the floor of a norm in ops.normalize


def l2_normalize(x, axis):
    """Keras's ``ops.normalize(x, axis)``: ``x * min(1 / ||x||, 1 / epsilon)``, the norm taken along ``axis``.
    Returns (y, (inverse norm, where it was floored)); the floor keeps a zero vector zero instead of NaN."""
    xp = array_module(x)
    squares = (x * x).sum(axis=axis, keepdims=True)
    floor = x.dtype.type(L2_EPSILON * L2_EPSILON)
    # 1 / sqrt(max(s, eps^2)) is min(1 / sqrt(s), 1 / eps) without dividing by zero.
    inverse = x.dtype.type(1) / xp.sqrt(xp.maximum(squares, floor))
    return x * inverse, (inverse, squares <= floor)


def l2_normalize_backward(dy, y, scale, axis):
    """The gradient of ``x`` from that of ``y = l2_normalize(x, axis)``: ``inv * (dy - y * sum(dy * y))``, the
    sum along ``axis``, or ``inv * dy`` where the norm was floored (there the scale is a constant)."""
    xp = array_module(dy)
    inverse, floored = scale
    along = xp.where(floored, dy.dtype.type(0), (dy * y).sum(axis=axis, keepdims=True))
    return inverse * (dy - y * along)


def _batch_dot_operands(x, y, axes):
    """``x`` as (batch, rows, k) and ``y`` as (batch, k, columns) matrices (views where the layout allows),
    with the shapes of their axis-moved forms."""
    xp = array_module(x)
    ax, ay = axes
    xm = xp.moveaxis(x, ax, -1)      # (batch, x's other axes..., k)
    ym = xp.moveaxis(y, ay, 1)       # (batch, k, y's other axes...)
    batch, k = x.shape[0], x.shape[ax]
    rows, columns = math.prod(xm.shape[1:-1]), math.prod(ym.shape[2:])
    return xm.reshape(batch, rows, k), ym.reshape(batch, k, columns), xm.shape, ym.shape


def batch_dot(x, y, axes):
    """Keras's ``batch_dot`` for ``axes = (ax, ay)``, both past the batch axis:
    ``out[b, i..., j...] = sum_k x[b, ..k at ax..] * y[b, ..k at ay..]``, ``i`` running over ``x``'s other axes
    and ``j`` over ``y``'s; shape (batch, 1) when both inputs are (batch, k)."""
    xp = array_module(x)
    a, b, xm_shape, ym_shape = _batch_dot_operands(x, y, axes)
    out = xp.matmul(a, b)
    shape = tuple(xm_shape[:-1]) + tuple(ym_shape[2:])
    return out.reshape(shape if len(shape) > 1 else shape + (1,))


def batch_dot_backward(grad, x, y, axes):
    """The gradients ``(dx, dy)`` from ``grad``, that of ``batch_dot(x, y, axes)``: ``grad @ y^T`` and
    ``x^T @ grad`` in the matrix forms, moved back to the inputs' layouts."""
    xp = array_module(grad)
    ax, ay = axes
    a, b, xm_shape, ym_shape = _batch_dot_operands(x, y, axes)
    g = grad.reshape(a.shape[0], a.shape[1], b.shape[2])
    dx = xp.matmul(g, b.swapaxes(1, 2)).reshape(xm_shape)
    dy = xp.matmul(a.swapaxes(1, 2), g).reshape(ym_shape)
    return xp.ascontiguousarray(xp.moveaxis(dx, -1, ax)), xp.ascontiguousarray(xp.moveaxis(dy, 1, ay))
