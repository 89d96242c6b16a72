"""Keras's joining (``append``, ``hstack``, ``vstack``, ``dstack``) and splitting (``array_split``,
``hsplit``, ``vsplit``, ``dsplit``, ``unstack``) operations, ``meshgrid`` and ``unravel_index`` (which sends no
gradient back).
"""
from __future__ import annotations

import numpy

from ...ops import numpy_functions as fn
from ..symbolic import is_symbolic
from .base import CORE, _axes, _float, _xp
from .shapes import Concatenate
from .array_base import ArrayOperation, _int, _ints, _several


def _at_least(shape, ndim):
    """NumPy's atleast_2d / atleast_3d of a shape (2: (n,) -> (1, n); 3: (n,) -> (1, n, 1), (a, b) -> (a, b, 1))."""
    shape = tuple(shape)
    if len(shape) >= ndim:
        return shape
    if ndim == 2:
        return (1,) * (2 - len(shape)) + shape
    return {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}[len(shape)]


class Hstack(Concatenate):
    """``hstack(xs)``: joined along axis 1 (axis 0 for vectors); one argument, a list of tensors (``Vstack``: axis 0
    of tensors of two axes or more; ``Dstack``: axis 2 of tensors of three or more)."""

    config_keys = ()
    least = 1

    def __init__(self, name=None, **kwargs):
        super().__init__(axis=0, name=name, **kwargs)

    def get_config(self):
        return {"name": self.name}

    def _layout(self, shapes):
        """The shapes the tensors take before joining, and the axis joined."""
        shapes = [_at_least(s, self.least) for s in shapes]
        axis = 0 if self.least == 1 and len(shapes[0]) == 1 else {1: 1, 2: 0, 3: 2}[self.least]
        return shapes, axis

    def output_shape_of(self, arguments, shapes):
        shapes, self.axis = self._layout([tuple(s) for s in shapes])
        return Concatenate.output_shape_of(self, arguments, shapes)

    def forward_function(self, *xs):
        shapes, axis = self._layout([x.shape for x in xs])
        return fn.concatenate_forward([x.reshape(s) for x, s in zip(xs, shapes)], axis)

    def backward_function(self, dy, operands, y):
        shapes, axis = self._layout([x.shape for x in operands])
        parts = fn.concatenate_backward(dy, [x.reshape(s) for x, s in zip(operands, shapes)], y, axis)
        return [g.reshape(x.shape) for g, x in zip(parts, operands)]


class Vstack(Hstack):
    least = 2


class Dstack(Hstack):
    least = 3


class Append(ArrayOperation):
    """``append(x1, x2, axis=None)``: x2 after x1 along ``axis``, or both flattened (axis None)."""

    arity = 2
    config_keys = ("axis",)

    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = None if axis is None else _int(axis, "axis", self._where())

    def _shapes(self, arguments, shapes):
        given = iter(shapes)
        return [tuple(next(given)) if a is None else a.shape for a in arguments]

    def output_shape_of(self, arguments, shapes):
        a, b = self._shapes(arguments, shapes)
        if self.axis is None:
            return (None if None in a + b else int(numpy.prod(a)) + int(numpy.prod(b)),)
        if len(a) != len(b):
            raise ValueError(f"{self._where()}: x1 and x2 must have the same number of axes, got shapes {a} and {b}.")
        return Concatenate.output_shape_of(self, [None, None], [a, b])      # its rule, on this axis

    def _flat(self, x):
        return x.reshape(-1) if self.axis is None else x

    def forward_function(self, x1, x2):
        return _xp(x1).concatenate([self._flat(x1), self._flat(x2)], axis=0 if self.axis is None else self.axis)

    def backward_function(self, dy, operands, y):
        a, b = operands
        parts = fn.concatenate_backward(dy, [self._flat(a), self._flat(b)], y, 0 if self.axis is None else self.axis)
        return [parts[0].reshape(a.shape), parts[1].reshape(b.shape)]


# ------------------------------------------------------------------ splitting (several outputs)
class ArraySplit(ArrayOperation):
    """``array_split(x, indices_or_sections, axis=0)``: ``indices_or_sections`` parts as equal as can be (the first
    ones one longer); a list of tensors."""

    config_keys = ("indices_or_sections", "axis")

    def __init__(self, indices_or_sections, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.indices_or_sections = _int(indices_or_sections, "indices_or_sections", self._where(), low=1)
        self.axis = _int(axis, "axis", self._where())

    def _axis(self, ndim):
        return _axes(self.axis, ndim, self._where())[0]

    def _bounds(self, size):
        count = self.indices_or_sections
        sizes = [size // count + (1 if i < size % count else 0) for i in range(count)]
        ends = numpy.cumsum([0] + sizes).tolist()
        return list(zip(ends[:-1], ends[1:]))

    def apply(self, x):
        shapes = self.output_shape_of([None], [x.shape]) if is_symbolic(x) else None
        return _several(self, [x], shapes, [x.dtype] * len(shapes))

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        axis = self._axis(len(shape))
        if shape[axis] is None:
            return [shape] * self.indices_or_sections
        return [shape[:axis] + (b - a,) + shape[axis + 1:] for a, b in self._bounds(shape[axis])]

    def forward_array(self, x):
        axis = self._axis(x.ndim)
        return [x[(slice(None),) * axis + (slice(a, b),)] for a, b in self._bounds(x.shape[axis])]

    def forward_function(self, x):
        return self.forward_array(x)

    def backward(self, dy):
        operands, y = self.saved()
        x, = operands
        if not _float(x.dtype):
            return None
        dys = dy if isinstance(dy, (list, tuple)) else [dy]
        return _xp(dys[0]).concatenate(list(dys), axis=self._axis(x.ndim))


class Hsplit(ArraySplit):
    """``hsplit(x, indices_or_sections)``: ``split`` along axis 1 (axis 0 of a vector); ``Vsplit``: axis 0 of a
    tensor of two axes or more, ``Dsplit``: axis 2 of three or more."""

    config_keys = ("indices_or_sections",)
    least = 1

    def __init__(self, indices_or_sections, name=None, **kwargs):
        ArrayOperation.__init__(self, name=name, **kwargs)
        self.indices_or_sections = _ints(indices_or_sections, "indices_or_sections", self._where())
        if isinstance(self.indices_or_sections, int) and self.indices_or_sections < 1:
            raise ValueError(f"{self._where()}: `indices_or_sections` must be at least 1, got {indices_or_sections}.")

    def _axis(self, ndim):
        if ndim < self.least:
            raise ValueError(f"{self._where()} takes a tensor of {self.least} axes or more, got {ndim}.")
        return {1: 0 if ndim == 1 else 1, 2: 0, 3: 2}[self.least]

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        axis = self._axis(len(shape))
        if shape[axis] is None:
            if isinstance(self.indices_or_sections, int):
                return [shape] * self.indices_or_sections
            # the parts up to the last index are known, the last one is not (as Keras gives them)
            ends = [0] + list(self.indices_or_sections) + [None]
            return [shape[:axis] + (None if b is None else max(b - a, 0),) + shape[axis + 1:]
                    for a, b in zip(ends[:-1], ends[1:])]
        return [shape[:axis] + (b - a,) + shape[axis + 1:] for a, b in self._bounds(shape[axis])]

    def _bounds(self, size):
        return fn.split_sections(size, self.indices_or_sections, self._where())


class Vsplit(Hsplit):
    least = 2


class Dsplit(Hsplit):
    least = 3


class Unstack(ArrayOperation):
    """``unstack(x, num=None, axis=0)`` of ``keras.src.ops.core``: the slices along ``axis``, that axis removed; a
    list of tensors."""

    keras_module = CORE
    config_keys = ("num", "axis")

    def __init__(self, num=None, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num = None if num is None else _int(num, "num", self._where(), low=1)
        self.axis = _int(axis, "axis", self._where())

    def apply(self, x):
        shapes = self.output_shape_of([None], [x.shape]) if is_symbolic(x) else None
        return _several(self, [x], shapes, [x.dtype] * len(shapes))

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        axis = _axes(self.axis, len(shape), self._where())[0]
        num = self.num if shape[axis] is None else shape[axis]
        if num is None:
            raise ValueError(f"{self._where()}: the size of axis {self.axis} is not known; give `num`.")
        if self.num is not None and self.num != num:
            raise ValueError(f"{self._where()}: num={self.num}, but axis {self.axis} has {num} slices.")
        return [shape[:axis] + shape[axis + 1:]] * num

    def forward_array(self, x):
        self.output_shape_of(None, [x.shape])
        axis = _axes(self.axis, x.ndim, self._where())[0]
        return [x[(slice(None),) * axis + (i,)] for i in range(x.shape[axis])]

    def forward_function(self, x):
        return self.forward_array(x)

    def backward(self, dy):
        operands, y = self.saved()
        x, = operands
        if not _float(x.dtype):
            return None
        dys = dy if isinstance(dy, (list, tuple)) else [dy]
        return _xp(dys[0]).stack(list(dys), axis=_axes(self.axis, x.ndim, self._where())[0])


class Meshgrid(ArrayOperation):
    """``meshgrid(*x, indexing="xy")``: of n tensors (each flattened), n grids of their lengths ("xy": the first two
    swapped, as NumPy's)."""

    config_keys = ("indexing",)
    arity = None

    def __init__(self, indexing="xy", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if indexing not in ("xy", "ij"):
            raise ValueError(f"{self._where()}: `indexing` must be 'xy' or 'ij', got {indexing!r}.")
        self.indexing = indexing

    def apply(self, *xs):
        if not xs:
            raise TypeError(f"{self._where()} takes one tensor or more.")
        shapes = self.output_shape_of([None] * len(xs), [x.shape for x in xs])
        dtype = self.result_dtype(xs, [None] * len(xs))
        return _several(self, list(xs), shapes, [dtype] * len(shapes))

    def _sizes(self, shapes):
        sizes = [None if None in tuple(s) else int(numpy.prod(s)) for s in shapes]
        if self.indexing == "xy" and len(sizes) > 1:
            sizes[0], sizes[1] = sizes[1], sizes[0]
        return tuple(sizes)

    def output_shape_of(self, arguments, shapes):
        return [self._sizes(shapes)] * len(shapes)

    def forward_function(self, *xs):
        grids = _xp(xs[0]).meshgrid(*[x.reshape(-1) for x in xs], indexing=self.indexing)
        return [g.copy() for g in grids]

    def backward(self, dy):
        operands, y = self.saved()
        if not any(_float(x.dtype) for x in operands):
            return None if len(operands) == 1 else [None] * len(operands)
        dys = dy if isinstance(dy, (list, tuple)) else [dy]
        grads = []
        for i, (x, g) in enumerate(zip(operands, dys)):
            axis = i
            if self.indexing == "xy" and len(operands) > 1 and i < 2:
                axis = 1 - i
            grads.append(g.sum(axis=tuple(a for a in range(g.ndim) if a != axis)).reshape(x.shape))
        return grads if len(grads) > 1 else grads[0]


class UnravelIndex(ArrayOperation):
    """``unravel_index(indices, shape)``: the coordinates, one tensor per axis of ``shape``, of flat indices;
    integers of the indices' dtype, no gradient."""

    config_keys = ("shape",)
    casts_inputs = False

    def __init__(self, shape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        shape = (shape,) if isinstance(shape, (int, numpy.integer)) else shape
        self.shape = tuple(_int(n, "shape", self._where(), low=1) for n in shape)

    def apply(self, indices):
        if is_symbolic(indices) and numpy.dtype(indices.dtype).kind not in "iu":
            raise TypeError(f"{self._where()} takes integer indices, got {indices.dtype}.")
        return _several(self, [indices], self.output_shape_of([None], [indices.shape]),
                        [indices.dtype] * len(self.shape))

    def output_shape_of(self, arguments, shapes):
        return [tuple(shapes[0])] * len(self.shape)

    def forward_array(self, indices):
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{self._where()} takes integer indices, got {indices.dtype}.")
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= int(numpy.prod(self.shape))):
            raise ValueError(f"{self._where()}: an index is out of range for the shape {self.shape}.")
        strides = numpy.cumprod((1,) + self.shape[:0:-1])[::-1].tolist()
        return [((indices // s) % n).astype(indices.dtype) for s, n in zip(strides, self.shape)]

    def forward_function(self, indices):
        return self.forward_array(indices)

    def backward(self, dy):
        return None


OPERATIONS = {cls.__name__: cls for cls in (Hstack, Vstack, Dstack, Append, ArraySplit, Hsplit, Vsplit, Dsplit,
    Unstack, Meshgrid, UnravelIndex)}
