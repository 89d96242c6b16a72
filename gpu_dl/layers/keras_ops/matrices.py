"""Keras's diagonals (``diag``, ``diagflat``, ``diagonal``) and products (``kron``, ``outer``, ``inner``,
``vdot``, ``cross``, ``cdist``, ``vander``), with exact backwards.
"""
from __future__ import annotations

import numpy

from ...ops import numpy_functions as fn
from ...ops.arithmetic import reduce_to_shape
from ..operations import broadcast_shapes
from .base import MATH, _axes, _xp
from .array_base import ArrayOperation, Selection, _each_axis, _int


def _diagonal_length(rows, cols, offset):
    if rows is None or cols is None:
        return None
    return max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))


class Diag(Selection):
    """``diag(x, k=0)``: of a vector, the square matrix with it on the k-th diagonal; of a matrix, its k-th
    diagonal."""

    config_keys = ("k",)

    def __init__(self, k=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = _int(k, "k", self._where())

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) == 1:
            size = None if shape[0] is None else shape[0] + abs(self.k)
            return (size, size)
        if len(shape) == 2:
            return (_diagonal_length(shape[0], shape[1], self.k),)
        raise ValueError(f"{self._where()} takes a tensor of 1 or 2 axes, got shape {shape}.")

    def select(self, x):
        self.output_shape_of(None, [x.shape])
        return _xp(x).diag(x, self.k)


class Diagflat(Selection):
    """``diagflat(x, k=0)``: the square matrix with the flattened tensor on its k-th diagonal."""

    config_keys = ("k",)

    def __init__(self, k=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = _int(k, "k", self._where())

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        size = None if None in shape else int(numpy.prod(shape)) + abs(self.k)
        return (size, size)

    def select(self, x):
        return _xp(x).diag(x.reshape(-1), self.k)


class Diagonal(Selection):
    """``diagonal(x, offset=0, axis1=0, axis2=1)``: the diagonal of the plane of ``axis1`` and ``axis2``, as the
    last axis."""

    config_keys = ("offset", "axis1", "axis2")

    def __init__(self, offset=0, axis1=0, axis2=1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.offset = _int(offset, "offset", self._where())
        self.axis1 = _int(axis1, "axis1", self._where())
        self.axis2 = _int(axis2, "axis2", self._where())

    def _plane(self, ndim):
        if ndim < 2:
            raise ValueError(f"{self._where()} takes a tensor of two axes or more, got {ndim}.")
        plane = _each_axis([self.axis1, self.axis2], ndim, self._where())
        if plane[0] == plane[1]:
            raise ValueError(f"{self._where()}: axis1={self.axis1} and axis2={self.axis2} are one axis.")
        return plane

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        a, b = self._plane(len(shape))
        return tuple(n for i, n in enumerate(shape) if i not in (a, b)) + (
            _diagonal_length(shape[a], shape[b], self.offset),)

    def select(self, x):
        a, b = self._plane(x.ndim)
        return _xp(x).diagonal(x, self.offset, a, b)


def _two_shapes(arguments, shapes):
    given = iter(shapes)
    return [tuple(next(given)) if a is None else tuple(numpy.shape(a)) for a in arguments]


class Product(ArrayOperation):
    """Two tensors (or a tensor and a constant array) in; Keras's dtype of the two."""

    arity = 2


class Outer(Product):
    """``outer(x1, x2)``: every element of the flattened x1 times every element of the flattened x2."""

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        return tuple(None if None in s else int(numpy.prod(s)) for s in (a, b))

    def forward_function(self, a, b):
        return a.reshape(-1, 1) * b.reshape(1, -1)

    def backward_function(self, dy, operands, y):
        a, b = operands
        return [(dy @ b.reshape(-1)).reshape(a.shape), (a.reshape(-1) @ dy).reshape(b.shape)]


class Inner(Product):
    """``inner(x1, x2)``: the products summed over the last axes (x1's other axes, then x2's)."""

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        if not a or not b:
            return a or b
        if a[-1] is not None and b[-1] is not None and a[-1] != b[-1]:
            raise ValueError(f"{self._where()}: the last axes of x1 and x2 must agree, got shapes {a} and {b}.")
        return a[:-1] + b[:-1]

    @staticmethod
    def subscripts(a_ndim, b_ndim):
        letters = "abcdefghijklmnopqrstuvwxy"
        first, second = letters[:a_ndim - 1], letters[a_ndim - 1:a_ndim + b_ndim - 2]
        return f"{first}z,{second}z->{first}{second}"

    def forward_function(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            return a * b
        return _xp(a).einsum(self.subscripts(a.ndim, b.ndim), a, b)

    def backward_function(self, dy, operands, y):
        a, b = operands
        if a.ndim == 0 or b.ndim == 0:
            return [(dy * b).sum() if a.ndim == 0 else dy * b, (dy * a).sum() if b.ndim == 0 else dy * a]
        return fn.einsum_backward(dy, operands, y, self.subscripts(a.ndim, b.ndim))


class Vdot(Product):
    """``vdot(x1, x2)``: the sum of the products of the flattened tensors (a scalar)."""

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        if None not in a + b and int(numpy.prod(a)) != int(numpy.prod(b)):
            raise ValueError(f"{self._where()}: x1 and x2 must have as many elements, got shapes {a} and {b}.")
        return ()

    def forward_function(self, a, b):
        if a.size != b.size:
            raise ValueError(f"{self._where()}: x1 and x2 must have as many elements, got shapes {a.shape} and "
                             f"{b.shape}.")
        return (a.reshape(-1) * b.reshape(-1)).sum()

    def backward_function(self, dy, operands, y):
        a, b = operands
        return [dy * b.reshape(a.shape), dy * a.reshape(b.shape)]


class Kron(Product):
    """``kron(x1, x2)``: the Kronecker product (the smaller rank padded with leading axes of 1)."""

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        rank = max(len(a), len(b))
        a, b = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
        return tuple(None if m is None or n is None else m * n for m, n in zip(a, b))

    @staticmethod
    def _spread(a, b):
        """a and b of one rank, reshaped to (a0, 1, a1, 1, ...) and (1, b0, 1, b1, ...); and the interleaved shape
        (a0, b0, a1, b1, ...)."""
        rank = max(a.ndim, b.ndim)
        sa, sb = (1,) * (rank - a.ndim) + a.shape, (1,) * (rank - b.ndim) + b.shape
        return (a.reshape([n for m in sa for n in (m, 1)]), b.reshape([n for m in sb for n in (1, m)]),
                [n for pair in zip(sa, sb) for n in pair])

    def forward_function(self, a, b):
        wide_a, wide_b, pairs = self._spread(a, b)
        return (wide_a * wide_b).reshape([m * n for m, n in zip(pairs[::2], pairs[1::2])])

    def backward_function(self, dy, operands, y):
        a, b = operands
        wide_a, wide_b, pairs = self._spread(a, b)
        g = dy.reshape(pairs)
        ga = (g * wide_b).sum(axis=tuple(range(1, g.ndim, 2)))
        gb = (g * wide_a).sum(axis=tuple(range(0, g.ndim, 2)))
        return [ga.reshape(a.shape), gb.reshape(b.shape)]


def _cross3(a, b):
    """The cross product of 3-vectors along the last axis (broadcast)."""
    xp = _xp(a)
    return xp.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


class Cross(Product):
    """``cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None)``: the cross product of 2- or 3-vectors along
    ``axisa`` of x1 and ``axisb`` of x2 (``axis``, when given, names all three), the result's vectors along
    ``axisc``; of two 2-vectors, the scalar z component. (Keras's torch backend, given no axis, crosses along the
    first axis of size 3 instead of the last; gpu_dl takes the last, as Keras documents and its other backends
    do.)"""

    config_keys = ("axisa", "axisb", "axisc", "axis")

    def __init__(self, axisa=-1, axisb=-1, axisc=-1, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        where = self._where()
        self.axisa, self.axisb, self.axisc = (_int(a, key, where) for a, key in
                                              ((axisa, "axisa"), (axisb, "axisb"), (axisc, "axisc")))
        self.axis = None if axis is None else _int(axis, "axis", where)

    def _settings(self):
        return (self.axisa, self.axisb, self.axisc) if self.axis is None else (self.axis,) * 3

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        axisa, axisb, axisc = self._settings()
        ia, ib = _axes(axisa, len(a), self._where())[0], _axes(axisb, len(b), self._where())[0]
        for what, n in (("x1", a[ia]), ("x2", b[ib])):
            if n is not None and n not in (2, 3):
                raise ValueError(f"{self._where()}: the vectors of {what} must have 2 or 3 components, got {n}.")
        rest = broadcast_shapes(a[:ia] + a[ia + 1:], b[:ib] + b[ib + 1:], self._where())
        if a[ia] == 2 and b[ib] == 2:
            return rest
        ic = _axes(axisc, len(rest) + 1, self._where())[0]
        return rest[:ic] + (3,) + rest[ic:]

    def _vectors(self, a, b):
        """a and b with their vectors last, padded to 3 components; and whether both had 2."""
        xp = _xp(a)
        axisa, axisb, _ = self._settings()
        a, b = xp.moveaxis(a, axisa, -1), xp.moveaxis(b, axisb, -1)
        for v in (a, b):
            if v.shape[-1] not in (2, 3):
                raise ValueError(f"{self._where()}: the vectors must have 2 or 3 components, got {v.shape[-1]}.")
        flat = a.shape[-1] == 2 and b.shape[-1] == 2

        def padded(v):
            return xp.concatenate([v, xp.zeros(v.shape[:-1] + (1,), v.dtype)], axis=-1) if v.shape[-1] == 2 else v
        return padded(a), padded(b), flat

    def forward_function(self, a, b):
        a3, b3, flat = self._vectors(a, b)
        c = _cross3(a3, b3)
        return c[..., 2] if flat else _xp(c).moveaxis(c, -1, self._settings()[2])

    def backward_function(self, dy, operands, y):
        a, b = operands
        xp = _xp(dy)
        a3, b3, flat = self._vectors(a, b)
        if flat:
            g = xp.zeros(dy.shape + (3,), dy.dtype)
            g[..., 2] = dy
        else:
            g = xp.moveaxis(dy, self._settings()[2], -1)
        # d(a x b) . g: a gets b x g, b gets g x a
        ga, gb = _cross3(b3, g), _cross3(g, a3)
        axisa, axisb, _ = self._settings()
        ga = reduce_to_shape(ga[..., :a.shape[axisa]], xp.moveaxis(a, axisa, -1).shape)
        gb = reduce_to_shape(gb[..., :b.shape[axisb]], xp.moveaxis(b, axisb, -1).shape)
        return [xp.moveaxis(ga, -1, axisa), xp.moveaxis(gb, -1, axisb)]


class CDist(Product):
    """``cdist(x, y)`` of ``keras.src.ops.math``: the Euclidean distances between the rows of x (..., m, d) and of y
    (..., n, d), (..., m, n), the leading axes broadcast. A distance of 0 sends no gradient (the square root's
    slope is infinite there)."""

    keras_module = MATH
    keeps_integers = False

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        if len(a) < 2 or len(b) < 2:
            raise ValueError(f"{self._where()} takes tensors of two axes or more, got shapes {a} and {b}.")
        if a[-1] is not None and b[-1] is not None and a[-1] != b[-1]:
            raise ValueError(f"{self._where()}: the last axes of x and y must agree, got shapes {a} and {b}.")
        return broadcast_shapes(a[:-2], b[:-2], self._where()) + (a[-2], b[-2])

    def forward_function(self, a, b):
        self.output_shape_of([None, None], [a.shape, b.shape])
        diff = a[..., :, None, :] - b[..., None, :, :]
        return _xp(diff).sqrt((diff * diff).sum(axis=-1))

    def backward_function(self, dy, operands, y):
        a, b = operands
        xp = _xp(dy)
        diff = a[..., :, None, :] - b[..., None, :, :]
        scale = xp.where(y > 0, dy / xp.where(y > 0, y, 1), 0)[..., None] * diff
        return [scale.sum(axis=-2), -scale.sum(axis=-3)]


class Vander(ArrayOperation):
    """``vander(x, N=None, increasing=False)``: of a vector, its powers as columns (N of them, len(x) when None),
    the highest first unless ``increasing``."""

    config_keys = ("N", "increasing")

    def __init__(self, N=None, increasing=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.N = None if N is None else _int(N, "N", self._where(), low=0)
        if not isinstance(increasing, bool):
            raise TypeError(f"{self._where()}: `increasing` must be a bool, got {increasing!r:.80}.")
        self.increasing = increasing

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) != 1:
            raise ValueError(f"{self._where()} takes a tensor of one axis, got shape {shape}.")
        return shape + (shape[0] if self.N is None else self.N,)

    def _powers(self, x, shift=0):
        """The powers of the columns (less ``shift``, none below 0), of x's dtype (so x's powers keep it)."""
        count = x.shape[0] if self.N is None else self.N
        powers = numpy.maximum(numpy.arange(count) - shift, 0)
        return _xp(x).asarray((powers if self.increasing else powers[::-1]).astype(x.dtype))

    def forward_array(self, x):
        self.output_shape_of(None, [x.shape])
        return x[:, None] ** self._powers(x)[None, :]

    def backward_function(self, dy, operands, y):
        x, = operands
        return [(dy * self._powers(x)[None, :] * x[:, None] ** self._powers(x, 1)[None, :]).sum(axis=1)]


OPERATIONS = {cls.__name__: cls for cls in (Diag, Diagflat, Diagonal, Outer, Inner, Vdot, Kron, Cross, CDist, Vander)}
