"""Products and selection: ``einsum``, ``tensordot``/``dot``, ``where``, ``take``/``take_along_axis`` and
``one_hot`` (no gradient)."""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import numpy_functions as fn
from ..operations import Operation, broadcast_shapes
from .base import (NN, GradientToFirst, KerasOperation, WithoutGradient, _axes, _eager, _float, _nested_list, _xp,
                   standardize_dtype)


# ------------------------------------------------------------------ products and selection
class Einsum(KerasOperation):
    """``einsum(subscripts, *operands)``: tensors (or constant arrays) named by distinct letters (no ``...``, no
    repeated letter within an operand, on symbolic tensors)."""

    config_keys = ("subscripts",)
    arity = None
    keeps_integers = False

    def __init__(self, subscripts, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.subscripts = str(subscripts)

    def output_shape_of(self, arguments, shapes):
        try:
            inputs, output = fn.parse_subscripts(self.subscripts, len(arguments))
        except ValueError as e:
            raise ValueError(f"{self._where()}: {e}") from None
        given = iter(shapes)
        sizes = {}
        for term, a in zip(inputs, arguments):
            shape = tuple(next(given) if a is None else a.shape)
            if len(shape) != len(term):
                raise ValueError(f"{self._where()}: {term!r} names {len(term)} axes of an operand of shape {shape}.")
            for letter, n in zip(term, shape):
                sizes.setdefault(letter, []).append(n)
        out = []
        for letter in output:
            known = {n for n in sizes[letter] if n is not None}
            if len(known - {1}) > 1:
                raise ValueError(f"{self._where()}: the letter {letter!r} stands for the sizes {sorted(known)}.")
            out.append((known - {1}).pop() if known - {1} else (None if None in sizes[letter] else 1))
        return tuple(out)

    def forward_function(self, *operands):
        return _xp(operands[0]).einsum(self.subscripts, *operands)

    def backward_function(self, dy, operands, y):
        return fn.einsum_backward(dy, operands, y, self.subscripts)


class Where(KerasOperation):
    """``where(condition, x1, x2)``: the condition a tensor or array (non-zero: True), x1 and x2 tensors, numbers
    or arrays; the gradient goes to x1 where the condition holds, to x2 elsewhere."""

    arity = 3

    def result_dtype(self, tensors, arguments):
        positions = [i for i, a in enumerate(arguments) if a is None]
        values = [t.dtype for i, t in zip(positions, tensors) if i > 0]
        floats = [d for d in values if _float(d)]
        if floats:
            return numpy.result_type(*floats).name
        return numpy.result_type(*values).name if values else backend.floatx()

    def operands(self, arrays):
        given = iter(arrays)
        operands = []
        xp = backend.array_module(*arrays)
        for position, a in enumerate(self.arguments):
            if a is None:
                value = next(given)
            elif isinstance(a, numpy.ndarray):
                value = xp.asarray(a)
            else:
                value = a
            if position == 0:
                value = value.astype(bool) if hasattr(value, "astype") else bool(value)
            elif hasattr(value, "astype"):
                value = value.astype(self.dtype, copy=False)
            else:
                value = numpy.dtype(self.dtype).type(value)
            operands.append(value)
        return operands

    casts_inputs = False

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments, shapes)

    def forward_function(self, condition, a, b):
        return _xp(a if hasattr(a, "shape") else b).where(condition, a, b)

    def backward_function(self, dy, operands, y):
        return fn.where_backward(dy, operands, y)


class Take(GradientToFirst, KerasOperation):
    """``take(x, indices, axis=None)``: indices a constant integer array (or an integer tensor)."""

    arity = 2
    config_keys = ("axis",)
    casts_inputs = False

    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = None if axis is None else int(axis)

    def accept_argument(self, position, value):
        if position == 1 and isinstance(value, (int, numpy.integer)) and not isinstance(value, bool):
            value = numpy.asarray(value)
        value = super().accept_argument(position, value)
        if position == 0 or not isinstance(value, numpy.ndarray) or value.dtype.kind not in "iu":
            raise TypeError(f"{self._where()}: the tensor comes first, then integer indices (an array or an integer "
                            f"tensor), got {value!r:.80} in position {position}.")
        return value

    def result_dtype(self, tensors, arguments):
        return tensors[0].dtype

    def _index_shape(self, arguments, shapes):
        given = iter(shapes)
        x_shape = tuple(next(given)) if arguments[0] is None else arguments[0].shape
        i_shape = tuple(next(given)) if arguments[1] is None else arguments[1].shape
        return x_shape, i_shape

    def output_shape_of(self, arguments, shapes):
        x_shape, i_shape = self._index_shape(arguments, shapes)
        if self.axis is None:
            return i_shape
        axis = _axes(self.axis, len(x_shape), self._where())[0]
        return x_shape[:axis] + i_shape + x_shape[axis + 1:]

    def operands(self, arrays):
        x = arrays[0]
        xp = backend.array_module(x)
        indices = arrays[1] if self.arguments[1] is None else self._constant(xp)
        return [x, indices.astype("int64", copy=False)]

    def _constant(self, xp):
        key = xp.__name__
        if key not in self._on_device:
            self._on_device[key] = xp.asarray(self.arguments[1])
        return self._on_device[key]

    def forward_function(self, x, indices):
        return fn.take_forward(x, indices, self.axis)

    def backward_function(self, dy, operands, y):
        return fn.take_backward(dy, operands, y, self.axis)


class TakeAlongAxis(Take):
    def output_shape_of(self, arguments, shapes):
        x_shape, i_shape = self._index_shape(arguments, shapes)
        if self.axis is None:
            return i_shape if len(i_shape) == 1 else (None if None in i_shape else int(numpy.prod(i_shape)),)
        if len(x_shape) != len(i_shape):
            raise ValueError(f"{self._where()}: x and indices must have the same number of axes, got shapes "
                             f"{x_shape} and {i_shape}.")
        axis = _axes(self.axis, len(x_shape), self._where())[0]
        rest = broadcast_shapes(x_shape[:axis] + x_shape[axis + 1:], i_shape[:axis] + i_shape[axis + 1:],
                                self._where())
        return rest[:axis] + (i_shape[axis],) + rest[axis:]

    def forward_function(self, x, indices):
        return fn.take_along_axis_forward(x, indices, self.axis)

    def backward_function(self, dy, operands, y):
        from ...ops.arithmetic import reduce_to_shape
        gx, gi = fn.take_along_axis_backward(dy, operands, y, self.axis)
        return [reduce_to_shape(gx, operands[0].shape), gi]


class OneHot(WithoutGradient, KerasOperation):
    """``one_hot(x, num_classes, axis=-1, dtype=None, sparse=False)`` of ``keras.src.ops.nn``: integer classes in,
    a new axis of ``num_classes`` (1 at the class, 0 elsewhere, all 0 for a class out of range) out, floatx by
    default. No gradient."""

    keras_module = NN
    config_keys = ("num_classes", "axis", "dtype", "sparse")
    casts_inputs = False

    def __init__(self, num_classes, axis=-1, dtype=None, sparse=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if sparse:
            raise ValueError(f"{self._where()}: gpu_dl has no sparse tensors.")
        self.num_classes, self.axis, self.sparse = int(num_classes), int(axis), False
        self.target = standardize_dtype(dtype or backend.floatx())

    def get_config(self):
        return {"name": self.name, "num_classes": self.num_classes, "axis": self.axis, "dtype": self.target,
                "sparse": self.sparse}

    def result_dtype(self, tensors, arguments):
        return self.target

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        shape.insert(_axes(self.axis, len(shape) + 1, self._where())[0], self.num_classes)
        return tuple(shape)

    def forward_array(self, x):
        xp = _xp(x)
        hot = (x[..., None] == xp.arange(self.num_classes)).astype(self.target)
        return xp.moveaxis(hot, -1, self.axis)


# ------------------------------------------------------------------ products
class Tensordot(KerasOperation):
    """``tensordot(x1, x2, axes=2)``: tensors (or a constant array), as an einsum of the paired axes."""

    arity = 2
    config_keys = ("axes",)
    keeps_integers = False

    def __init__(self, axes=2, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axes = int(axes) if isinstance(axes, (int, numpy.integer)) else tuple(
            int(a) if isinstance(a, (int, numpy.integer)) else tuple(int(i) for i in a) for a in axes)

    def get_config(self):
        return {"name": self.name, "axes": _nested_list(self.axes)}

    def subscripts(self, a_ndim, b_ndim):
        return fn.tensordot_subscripts(a_ndim, b_ndim, self.axes)

    def _shapes(self, arguments, shapes):
        given = iter(shapes)
        return [tuple(next(given)) if a is None else a.shape for a in arguments]

    def output_shape_of(self, arguments, shapes):
        a, b = self._shapes(arguments, shapes)
        try:
            spec = self.subscripts(len(a), len(b))
        except (ValueError, IndexError) as e:
            raise ValueError(f"{self._where()}: {e}") from None
        return Einsum.output_shape_of(_eager(Einsum, subscripts=spec, name=self.name), arguments, shapes)

    def forward_function(self, a, b):
        return _xp(a).einsum(self.subscripts(a.ndim, b.ndim), a, b)

    def backward_function(self, dy, operands, y):
        a, b = operands
        return fn.einsum_backward(dy, operands, y, self.subscripts(a.ndim, b.ndim))


class Dot(Tensordot):
    """``dot(x1, x2)``: NumPy's dot (the last axis of x1 against the second-to-last of x2)."""

    config_keys = ()

    def __init__(self, name=None, **kwargs):
        KerasOperation.__init__(self, name=name, **kwargs)

    def get_config(self):
        return {"name": self.name}

    def subscripts(self, a_ndim, b_ndim):
        return fn.dot_subscripts(a_ndim, b_ndim)
