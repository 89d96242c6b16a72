"""Forward and backward of the array functions ``gpu_dl.ops`` offers under Keras's names (``layers/keras_ops``).

Each forward takes arrays of one module (NumPy or CuPy) and the operation's
settings; each backward takes the output gradient ``dy``, the forward's
operands and output ``y``, and returns one gradient per operand (None where
an operand takes none). The gradients are the ones Keras's torch backend
computes: a maximum's (or minimum's) gradient is shared equally between tied
elements, a clip passes the gradient where the value lies within its bounds,
ends included.
"""
from __future__ import annotations

import math

import numpy

from ..backend import array_module
from . import elementwise


def normalize_axes(axis, ndim):
    """``axis`` (None, an int or a sequence of them) as a sorted tuple of non-negative axes of an ``ndim`` array."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, numpy.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for an array of {ndim} axes.")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axis {axis} repeats an axis.")
    return tuple(sorted(out))


def _kept(a, axes, keepdims):
    """``a``, reduced over ``axes`` without keepdims, with those axes put back as size 1."""
    return a if keepdims else a.reshape([1 if i in axes else n for i, n in
                                         enumerate(_unreduced_shape(a.shape, axes))])


def _unreduced_shape(shape, axes):
    shape, out = list(shape), []
    for i in range(len(shape) + len(axes)):
        out.append(1 if i in axes else shape.pop(0))
    return out


# ---------------------------------------------------------------- reductions
def mean_forward(x, axis, keepdims):
    return x.mean(axis=normalize_axes(axis, x.ndim), keepdims=keepdims)


def mean_backward(dy, operands, y, axis, keepdims):
    x, = operands
    axes = normalize_axes(axis, x.ndim)
    count = int(numpy.prod([x.shape[a] for a in axes])) if axes else 1
    xp = array_module(dy)
    return [xp.broadcast_to(_kept(dy, axes, keepdims), x.shape) / dy.dtype.type(max(count, 1))]


def sum_forward(x, axis, keepdims):
    return x.sum(axis=normalize_axes(axis, x.ndim), keepdims=keepdims)


def sum_backward(dy, operands, y, axis, keepdims):
    x, = operands
    xp = array_module(dy)
    return [xp.broadcast_to(_kept(dy, normalize_axes(axis, x.ndim), keepdims), x.shape).copy()]


def extreme_forward(x, axis, keepdims, initial, largest):
    xp = array_module(x)
    axes = normalize_axes(axis, x.ndim)
    y = (x.max if largest else x.min)(axis=axes, keepdims=keepdims)
    if initial is not None:
        y = (xp.maximum if largest else xp.minimum)(y, x.dtype.type(initial))
    return y


def extreme_backward(dy, operands, y, axis, keepdims, initial, largest):
    """The gradient of a max or min: shared equally between the elements equal to the result."""
    x, = operands
    axes = normalize_axes(axis, x.ndim)
    hit = (x == _kept(y, axes, keepdims)).astype(dy.dtype)
    count = hit.sum(axis=axes, keepdims=True)
    share = _kept(dy, axes, keepdims) / array_module(dy).maximum(count, 1)
    return [hit * share]


# ---------------------------------------------------------------- element-wise
def sqrt_backward(dy, operands, y):
    return [dy * (0.5 / y)]


def square_backward(dy, operands, y):
    return [dy * (2 * operands[0])]


def exp_backward(dy, operands, y):
    return [dy * y]


def log_backward(dy, operands, y):
    return [dy / operands[0]]


def tanh_backward(dy, operands, y):
    return [dy * (1 - y * y)]


def sigmoid_forward(x):
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))                      # never overflows
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(dy, operands, y):
    return [dy * y * (1 - y)]


def relu_forward(x):
    return array_module(x).maximum(x, x.dtype.type(0))


def relu_backward(dy, operands, y):
    return [dy * (operands[0] > 0)]


def softmax_forward(x, axis):
    xp = array_module(x)
    axes = normalize_axes(axis, x.ndim)
    e = xp.exp(x - x.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


def softmax_backward(dy, operands, y, axis):
    axes = normalize_axes(axis, y.ndim)
    return [y * (dy - (dy * y).sum(axis=axes, keepdims=True))]


def pick_backward(dy, operands, y, largest):
    """The gradients of maximum(a, b) (or minimum): to the larger (smaller) operand, halved between ties."""
    a, b = operands
    wins = (a > b) if largest else (a < b)
    share = wins.astype(dy.dtype) + (a == b).astype(dy.dtype) * dy.dtype.type(0.5)
    return [dy * share, dy * (1 - share)]


def clip_forward(x, x_min, x_max):
    xp = array_module(x)
    return xp.minimum(xp.maximum(x, x.dtype.type(x_min)), x.dtype.type(x_max))


def clip_backward(dy, operands, y, x_min, x_max):
    x, = operands
    return [dy * ((x >= x_min) & (x <= x_max))]


# ---------------------------------------------------------------- shapes
def reshape_forward(x, newshape):
    """``x`` reshaped to ``newshape``, where a None takes the size of the same axis of ``x`` (the batch axis of a
    shape Keras read as ``ops.shape(x)[0]`` on a symbolic tensor)."""
    shape = [x.shape[i] if n is None and i < x.ndim else (-1 if n is None else n) for i, n in enumerate(newshape)]
    return x.reshape(shape)


def reshape_backward(dy, operands, y):
    return [dy.reshape(operands[0].shape)]


def transpose_forward(x, axes):
    return x.transpose(None if axes is None else tuple(axes))


def transpose_backward(dy, operands, y, axes):
    if axes is None:
        return [dy.transpose()]
    return [dy.transpose(tuple(numpy.argsort([a % dy.ndim for a in axes])))]


def expand_dims_forward(x, axis):
    return array_module(x).expand_dims(x, axis if isinstance(axis, int) else tuple(axis))


def squeeze_forward(x, axes):
    return x.reshape([n for i, n in enumerate(x.shape) if i not in axes])


def concatenate_forward(xs, axis):
    return array_module(*xs).concatenate(xs, axis=axis)


def concatenate_backward(dy, operands, y, axis):
    axis = axis % dy.ndim
    ends = numpy.cumsum([x.shape[axis] for x in operands])[:-1]
    return list(array_module(dy).split(dy, [int(e) for e in ends], axis=axis))


def stack_forward(xs, axis):
    return array_module(*xs).stack(xs, axis=axis)


def stack_backward(dy, operands, y, axis):
    xp = array_module(dy)
    return [xp.take(dy, i, axis=axis) for i in range(len(operands))]


# ---------------------------------------------------------------- products, selection
def parse_subscripts(subscripts, count):
    """``(inputs, output)``: the letters of each operand and of the result of an einsum without ``...``."""
    text = subscripts.replace(" ", "")
    if "." in text:
        raise ValueError(f"einsum subscripts with '...' are not supported on symbolic tensors, got {subscripts!r}.")
    left, arrow, right = text.partition("->")
    inputs = left.split(",")
    if len(inputs) != count:
        raise ValueError(f"einsum subscripts {subscripts!r} name {len(inputs)} operand(s); {count} were given.")
    if not arrow:
        letters = "".join(inputs)
        right = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for term in inputs + [right]:
        if (term and not term.isalpha()) or len(set(term)) != len(term):
            raise ValueError(f"einsum subscripts {subscripts!r}: each operand's letters (and the result's) must be "
                             "distinct letters (no diagonals) for the gradient.")
    return inputs, right


def einsum_backward(dy, operands, y, subscripts):
    """Each operand's gradient: the einsum of ``dy`` with the other operands, broadcast along the letters that
    only that operand has (they were summed away)."""
    xp = array_module(dy)
    inputs, output = parse_subscripts(subscripts, len(operands))
    grads = []
    for i, (term, x) in enumerate(zip(inputs, operands)):
        others = [(t, o) for j, (t, o) in enumerate(zip(inputs, operands)) if j != i]
        present = "".join(c for c in term if c in output or any(c in t for t, _ in others))
        spec = ",".join([output] + [t for t, _ in others]) + "->" + present
        g = xp.einsum(spec, dy, *[o for _, o in others])
        g = g.reshape([x.shape[k] if c in present else 1 for k, c in enumerate(term)])
        grads.append(xp.broadcast_to(g, x.shape).astype(dy.dtype, copy=False))
    return grads


def where_backward(dy, operands, y):
    condition = operands[0].astype(bool)
    return [None, dy * condition, dy * ~condition]


def take_forward(x, indices, axis):
    xp = array_module(x)
    return xp.take(x, indices, axis=axis)


def take_backward(dy, operands, y, axis):
    x, indices = operands
    xp = array_module(dy)
    if axis is None:
        g = xp.zeros(x.size, dtype=dy.dtype)
        _add_at(xp, g, (indices % x.size).ravel(), dy.ravel())
        return [g.reshape(x.shape), None]
    axis = axis % x.ndim
    moved = xp.moveaxis(dy, list(range(axis, axis + indices.ndim)), list(range(indices.ndim)))
    moved = moved.reshape((indices.size,) + moved.shape[indices.ndim:])
    g = xp.zeros((x.shape[axis],) + x.shape[:axis] + x.shape[axis + 1:], dtype=dy.dtype)
    _add_at(xp, g, (indices % x.shape[axis]).ravel(), moved)
    return [xp.moveaxis(g, 0, axis), None]


def take_along_axis_forward(x, indices, axis):
    xp = array_module(x)
    if axis is None:
        return xp.take_along_axis(x.ravel(), indices.ravel() if indices.ndim != 1 else indices, axis=0)
    shape = numpy.broadcast_shapes(tuple(n for i, n in enumerate(x.shape) if i != axis % x.ndim),
                                   tuple(n for i, n in enumerate(indices.shape) if i != axis % x.ndim))
    axis = axis % x.ndim
    x_shape = shape[:axis] + (x.shape[axis],) + shape[axis:]
    i_shape = shape[:axis] + (indices.shape[axis],) + shape[axis:]
    return xp.take_along_axis(xp.broadcast_to(x, x_shape), xp.broadcast_to(indices, i_shape), axis=axis)


def take_along_axis_backward(dy, operands, y, axis):
    x, indices = operands
    xp = array_module(dy)
    if axis is None:
        g = xp.zeros(x.size, dtype=dy.dtype)
        _add_at(xp, g, (indices.ravel() % x.size), dy.ravel())
        return [g.reshape(x.shape), None]
    axis = axis % x.ndim
    full_x = dy.shape[:axis] + (x.shape[axis],) + dy.shape[axis + 1:]
    idx = xp.broadcast_to(indices, dy.shape) % x.shape[axis]
    g = xp.zeros(full_x, dtype=dy.dtype)
    grid = list(xp.indices(dy.shape, sparse=True))
    grid[axis] = idx
    _add_at(xp, g, tuple(grid), dy)
    return [g, None]


def _add_at(xp, target, index, values):
    xp.add.at(target, index, values)        # CuPy's is an atomic-add scatter, as in ops/embedding.py


# ---------------------------------------------------------------- element-wise: trigonometry and activations
def sin_backward(dy, operands, y):
    return [dy * array_module(dy).cos(operands[0])]


def cos_backward(dy, operands, y):
    return [-dy * array_module(dy).sin(operands[0])]


def erf_forward(x):
    return elementwise._erf(x)


def erf_backward(dy, operands, y):
    x, = operands
    return [dy * (array_module(x).exp(-x * x) * x.dtype.type(2 / math.sqrt(math.pi)))]


def gelu_backward(dy, operands, y, approximate):
    return [elementwise.gelu_backward(operands[0], y, dy, approximate=approximate)]


def silu_backward(dy, operands, y):
    return [elementwise.silu_backward(operands[0], y, dy)]


def softplus_backward(dy, operands, y):
    return [elementwise.softplus_backward(operands[0], y, dy)]


def log_softmax_forward(x, axis):
    return elementwise.log_softmax_forward(x, axis=normalize_axes(axis, x.ndim))


def log_softmax_backward(dy, operands, y, axis):
    return [elementwise.log_softmax_backward(operands[0], y, dy, axis=normalize_axes(axis, y.ndim))]


def logsumexp_forward(x, axis, keepdims):
    """log(sum(exp(x))) over ``axis``: the largest element is taken out first, so nothing overflows."""
    xp = array_module(x)
    axes = normalize_axes(axis, x.ndim)
    top = x.max(axis=axes, keepdims=True)
    top = xp.where(xp.isfinite(top), top, x.dtype.type(0))
    y = xp.log(xp.exp(x - top).sum(axis=axes, keepdims=True)) + top
    return y if keepdims else y.reshape([n for i, n in enumerate(y.shape) if i not in axes])


def logsumexp_backward(dy, operands, y, axis, keepdims):
    x, = operands
    axes = normalize_axes(axis, x.ndim)
    return [_kept(dy, axes, keepdims) * array_module(x).exp(x - _kept(y, axes, keepdims))]


# ---------------------------------------------------------------- statistics
def var_forward(x, axis, keepdims):
    return x.var(axis=normalize_axes(axis, x.ndim), keepdims=keepdims)


def var_backward(dy, operands, y, axis, keepdims):
    x, = operands
    axes = normalize_axes(axis, x.ndim)
    count = int(numpy.prod([x.shape[a] for a in axes])) if axes else 1
    centred = x - x.mean(axis=axes, keepdims=True)
    return [_kept(dy, axes, keepdims) * centred * x.dtype.type(2 / max(count, 1))]


def std_forward(x, axis, keepdims):
    return x.std(axis=normalize_axes(axis, x.ndim), keepdims=keepdims)


def std_backward(dy, operands, y, axis, keepdims):
    """(x - mean) / (n std), 0 where the deviation is 0 (every element equal)."""
    x, = operands
    axes = normalize_axes(axis, x.ndim)
    count = int(numpy.prod([x.shape[a] for a in axes])) if axes else 1
    centred = x - x.mean(axis=axes, keepdims=True)
    s = _kept(y, axes, keepdims)
    xp = array_module(x)
    scale = xp.where(s > 0, 1 / (xp.where(s > 0, s, 1) * x.dtype.type(max(count, 1))), 0).astype(x.dtype)
    return [_kept(dy, axes, keepdims) * centred * scale]


def moments_backward(dys, operands, ys, axes, keepdims):
    dmean, dvar = dys
    x, = operands
    axes = normalize_axes(axes, x.ndim)
    count = int(numpy.prod([x.shape[a] for a in axes])) if axes else 1
    centred = x - x.mean(axis=axes, keepdims=True)
    return [(_kept(dmean, axes, keepdims) + _kept(dvar, axes, keepdims) * centred * x.dtype.type(2)) /
            x.dtype.type(max(count, 1))]


def prod_forward(x, axis, keepdims):
    return x.prod(axis=normalize_axes(axis, x.ndim), keepdims=keepdims)


def prod_backward(dy, operands, y, axis, keepdims):
    """Each element's gradient is the product of the others (exact with zeros): the products before it times
    those after it, along the reduced axes laid out as one."""
    x, = operands
    xp = array_module(x)
    axes = normalize_axes(axis, x.ndim)
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = x.transpose(kept + list(axes))
    flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
    ones = xp.ones(flat.shape[:-1] + (1,), dtype=x.dtype)
    before = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    after = xp.cumprod(xp.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    others = (before * after).reshape(moved.shape).transpose(tuple(numpy.argsort(kept + list(axes))))
    return [_kept(dy, axes, keepdims) * others]


def cumsum_forward(x, axis):
    return array_module(x).cumsum(x, axis=axis)


def cumsum_backward(dy, operands, y, axis):
    x, = operands
    xp = array_module(dy)
    if axis is None:
        return [xp.cumsum(dy[::-1])[::-1].reshape(x.shape)]
    flipped = xp.flip(dy, axis=axis)
    return [xp.flip(xp.cumsum(flipped, axis=axis), axis=axis)]


def norm_forward(x, ord, axis, keepdims):
    """The 2-norm (Frobenius for two axes) over ``axis``; None: of all the elements."""
    xp = array_module(x)
    return xp.sqrt((x * x).sum(axis=normalize_axes(axis, x.ndim), keepdims=keepdims))


def norm_backward(dy, operands, y, ord, axis, keepdims):
    x, = operands
    xp = array_module(x)
    axes = normalize_axes(axis, x.ndim)
    n = _kept(y, axes, keepdims)
    return [_kept(dy, axes, keepdims) * x / xp.where(n > 0, n, 1)]


def l2_normalize_forward(x, axis, epsilon):
    """Keras's normalize of order 2: x * min(1 / sqrt(sum(x^2)), 1 / epsilon)."""
    xp = array_module(x)
    square_sum = (x * x).sum(axis=axis, keepdims=True)
    with numpy.errstate(divide="ignore"):
        inverse = xp.minimum(1 / xp.sqrt(square_sum), x.dtype.type(1 / epsilon))
    return x * inverse


def l2_normalize_backward(dy, operands, y, axis, epsilon):
    x, = operands
    xp = array_module(x)
    square_sum = (x * x).sum(axis=axis, keepdims=True)
    bounded = square_sum < x.dtype.type(epsilon) ** 2      # where 1 / epsilon is the smaller factor
    safe = xp.where(bounded, 1, square_sum)
    inverse = xp.where(bounded, x.dtype.type(1 / epsilon), 1 / xp.sqrt(safe))
    free = (~bounded) * (dy * x).sum(axis=axis, keepdims=True) * inverse ** 3
    return [dy * inverse - x * free]


# ---------------------------------------------------------------- rearranging
def split_sections(size, indices_or_sections, where):
    """The (start, stop) of each part of an axis of ``size`` split as NumPy's ``split`` does."""
    if isinstance(indices_or_sections, (int, numpy.integer)):
        count = int(indices_or_sections)
        if count < 1 or size % count:
            raise ValueError(f"{where}: an axis of size {size} cannot be split into {count} equal parts.")
        ends = [size // count * i for i in range(count + 1)]
    else:
        ends = [0] + [min(max(int(i), 0), size) for i in indices_or_sections] + [size]
    return [(a, max(a, b)) for a, b in zip(ends[:-1], ends[1:])]


def split_backward(dys, operands, ys, axis):
    return [array_module(dys[0]).concatenate(dys, axis=axis)]


def tile_repeats(repeats, ndim):
    repeats = (int(repeats),) if isinstance(repeats, (int, numpy.integer)) else tuple(int(r) for r in repeats)
    return (1,) * (ndim - len(repeats)) + repeats


def tile_backward(dy, operands, y, repeats):
    x, = operands
    repeats = tile_repeats(repeats, x.ndim)
    shape = (1,) * (len(repeats) - x.ndim) + tuple(x.shape)
    g = dy.reshape([n for r, s in zip(repeats, shape) for n in (r, s)])
    return [g.sum(axis=tuple(range(0, g.ndim, 2))).reshape(x.shape)]


def repeat_indices(size, repeats):
    """The indices ``take`` reads to repeat each of ``size`` elements ``repeats`` times (one number or each's)."""
    return numpy.repeat(numpy.arange(size), numpy.broadcast_to(numpy.asarray(repeats, dtype=numpy.int64), (size,)))


def pad_widths(pad_width, ndim):
    return [tuple(int(v) for v in pair) for pair in numpy.broadcast_to(numpy.asarray(pad_width), (ndim, 2))]


def pad_forward(x, pad_width, constant_values):
    xp = array_module(x)
    return xp.pad(x, pad_widths(pad_width, x.ndim), mode="constant",
                  constant_values=0 if constant_values is None else constant_values)


def pad_backward(dy, operands, y, pad_width):
    widths = pad_widths(pad_width, dy.ndim)
    return [dy[tuple(slice(a, n - b) for (a, b), n in zip(widths, dy.shape))]]


def flip_backward(dy, operands, y, axis):
    return [array_module(dy).flip(dy, axis=axis)]


def roll_backward(dy, operands, y, shift, axis):
    negated = -shift if isinstance(shift, int) else tuple(-s for s in shift)
    return [array_module(dy).roll(dy, negated, axis=axis)]


def slice_forward(x, start_indices, shape):
    return x[tuple(slice(s, s + n) for s, n in zip(start_indices, shape))]


def slice_backward(dy, operands, y, start_indices, shape):
    x, = operands
    g = array_module(dy).zeros(x.shape, dtype=dy.dtype)
    g[tuple(slice(s, s + n) for s, n in zip(start_indices, shape))] = dy
    return [g]


def triangle_backward(dy, operands, y, k, lower):
    xp = array_module(dy)
    return [(xp.tril if lower else xp.triu)(dy, k)]


# ---------------------------------------------------------------- products
def tensordot_subscripts(a_ndim, b_ndim, axes):
    """The einsum subscripts of ``tensordot(a, b, axes)``: axes an int (the last ``axes`` of a with the first of b)
    or two sequences of axes."""
    if isinstance(axes, (int, numpy.integer)):
        a_axes, b_axes = list(range(a_ndim - int(axes), a_ndim)), list(range(int(axes)))
    else:
        a_axes, b_axes = ([int(a)] if isinstance(a, (int, numpy.integer)) else [int(i) for i in a] for a in axes)
    a_axes, b_axes = [i % a_ndim for i in a_axes], [i % b_ndim for i in b_axes]
    if len(a_axes) != len(b_axes):
        raise ValueError(f"tensordot's axes {axes} pair {len(a_axes)} axes of the first operand with {len(b_axes)} "
                         "of the second.")
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    a_term = [next(letters) for _ in range(a_ndim)]
    b_term = [next(letters) for _ in range(b_ndim)]
    for i, j in zip(a_axes, b_axes):
        b_term[j] = a_term[i]
    out = [c for i, c in enumerate(a_term) if i not in a_axes] + [c for j, c in enumerate(b_term) if j not in b_axes]
    return "".join(a_term) + "," + "".join(b_term) + "->" + "".join(out)


def dot_subscripts(a_ndim, b_ndim):
    """NumPy's ``dot``: a product of scalars, or the last axis of a against the second-to-last of b (its only, for
    a vector)."""
    if a_ndim == 0 or b_ndim == 0:
        letters = "abcdefghijklmnopqrstuvwxyz"
        a, b = letters[:a_ndim], letters[a_ndim:a_ndim + b_ndim]
        return f"{a},{b}->{a}{b}"
    return tensordot_subscripts(a_ndim, b_ndim, ([a_ndim - 1], [max(b_ndim - 2, 0)]))
