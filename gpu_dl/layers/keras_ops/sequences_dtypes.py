"""Keras's sequences (``geomspace``, ``logspace``) and the dtype operations ``array``, ``view``,
``empty_like`` and ``multi_hot`` (all but ``array`` send no gradient back).
"""
from __future__ import annotations

import math

import numpy

from ... import backend
from ..operations import broadcast_shapes
from ..symbolic import is_symbolic
from .base import NN, WithDtype, WithoutGradient, _axes, _float, _xp, standardize_dtype
from .array_base import ArrayOperation, _int
from .matrices import _two_shapes


class Logspace(ArrayOperation):
    """``logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0)``: ``base`` to the powers
    evenly spaced from start to stop, along a new ``axis``; start and stop tensors or numbers, floats."""

    arity = 2
    config_keys = ("num", "endpoint", "base", "dtype", "axis")
    keeps_integers = False
    casts_inputs = False

    def __init__(self, num=50, endpoint=True, base=10, dtype=None, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num = _int(num, "num", self._where(), low=0)
        self.endpoint = bool(endpoint)
        self.base = base
        self.target = None if dtype is None else standardize_dtype(dtype)
        self.axis = _int(axis, "axis", self._where())

    def get_config(self):
        return {"name": self.name, "num": self.num, "endpoint": self.endpoint, "base": self.base,
                "dtype": self.target, "axis": self.axis}

    def result_dtype(self, tensors, arguments):
        if self.target is not None:
            return self.target if _float(self.target) else backend.floatx()
        return super().result_dtype(tensors, arguments)

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        shape = broadcast_shapes(a, b, self._where())
        axis = _axes(self.axis, len(shape) + 1, self._where())[0]
        return shape[:axis] + (self.num,) + shape[axis:]

    def operands(self, arrays):
        xp = backend.array_module(*arrays)
        given = iter(arrays)
        return [next(given).astype(self.dtype) if a is None else xp.asarray(a, dtype=self.dtype)
                for a in self.arguments]

    def _steps(self, xp, ndim, dtype):
        """The fractions of the way from start to stop, shaped to broadcast along the new axis."""
        count = self.num - 1 if self.endpoint else self.num
        t = xp.arange(self.num, dtype=dtype) / (count if count > 0 else 1)
        axis = _axes(self.axis, ndim + 1, self._where())[0]
        return t.reshape((1,) * axis + (-1,) + (1,) * (ndim - axis)), axis

    def _exponents(self, a, b):
        xp = _xp(a)
        a, b = xp.broadcast_arrays(a, b)
        shape = a.shape
        t, axis = self._steps(xp, len(shape), a.dtype)
        return xp.expand_dims(a, axis) * (1 - t) + xp.expand_dims(b, axis) * t, t, axis, shape

    def forward_function(self, a, b):
        exponents, _, _, _ = self._exponents(a, b)
        return (self.base ** exponents).astype(a.dtype)

    def backward_function(self, dy, operands, y):
        a, b = operands
        _, t, axis, shape = self._exponents(a, b)
        g = dy * y * math.log(self.base)
        return [(g * (1 - t)).sum(axis=axis), (g * t).sum(axis=axis)]


class Geomspace(Logspace):
    """``geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0)``: numbers evenly spaced on a log scale
    from start to stop (the sign of start's, as Keras's torch backend gives it)."""

    config_keys = ("num", "endpoint", "dtype", "axis")

    def __init__(self, num=50, endpoint=True, dtype=None, axis=0, name=None, **kwargs):
        super().__init__(num=num, endpoint=endpoint, base=10, dtype=dtype, axis=axis, name=name, **kwargs)

    def get_config(self):
        return {"name": self.name, "num": self.num, "endpoint": self.endpoint, "dtype": self.target,
                "axis": self.axis}

    def forward_function(self, a, b):
        xp = _xp(a)
        exponents, _, axis, _ = self._exponents(xp.log10(xp.abs(a)), xp.log10(xp.abs(b)))
        return (10.0 ** exponents * xp.expand_dims(xp.sign(a), axis)).astype(a.dtype)

    def backward_function(self, dy, operands, y):
        a, b = operands
        xp = _xp(dy)
        shape = numpy.broadcast_shapes(a.shape, b.shape)
        t, axis = self._steps(xp, len(shape), dy.dtype)
        # y = sign(a) 10^((1 - t) log10|a| + t log10|b|): dy/da = y (1 - t) / a, dy/db = y t / b
        g = dy * y
        return [(g * (1 - t)).sum(axis=axis) / a, (g * t).sum(axis=axis) / b]


# ------------------------------------------------------------------ dtypes
class Array(WithDtype, ArrayOperation):
    """``array(x, dtype=None)``: the tensor, cast to ``dtype`` when given (``EmptyLike``: zeros of its shape)."""

    def forward_array(self, x):
        return x.astype(self.target or x.dtype, copy=True)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [dy.astype(x.dtype) if _float(x.dtype) and _float(self.dtype) else None]


class EmptyLike(WithoutGradient, Array):
    """``empty_like(x, dtype=None)``: a tensor of x's shape, of ``dtype`` or x's; gpu_dl fills it with zeros (Keras
    leaves its values undefined). No gradient."""

    def forward_array(self, x):
        return _xp(x).zeros(x.shape, dtype=self.target or x.dtype)


class View(WithoutGradient, Array):
    """``view(x, dtype=None)``: the same bytes read as ``dtype``; the last axis scales by the ratio of the item
    sizes. No gradient: it reads bits, not values (Keras's torch backend's view is not differentiable either)."""

    _source_dtype = None

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        return tuple(self._shape(shape, self._source_dtype))

    def apply(self, x):
        self._source_dtype = x.dtype if is_symbolic(x) else None
        return super().apply(x)

    def _shape(self, shape, dtype):
        old = numpy.dtype(dtype).itemsize
        new = numpy.dtype(self.target or dtype).itemsize
        if old == new:
            return shape
        if not shape:
            raise ValueError(f"{self._where()}: a scalar cannot be viewed as a dtype of another item size.")
        if shape[-1] is not None:
            if shape[-1] * old % new:
                raise ValueError(f"{self._where()}: the last axis ({shape[-1]} x {old} bytes) cannot be viewed as "
                                 f"{self.target} ({new} bytes each).")
            shape[-1] = shape[-1] * old // new
        return shape

    def forward_array(self, x):
        self._shape(list(x.shape), x.dtype)
        return _xp(x).ascontiguousarray(x).view(self.target or x.dtype)


class MultiHot(WithoutGradient, ArrayOperation):
    """``multi_hot(inputs, num_classes, axis=-1, dtype=None, sparse=False)`` of ``keras.src.ops.nn``: integer
    classes in, per sample (the first axis; a vector is one sample) a 1 for each class present, floatx by default
    (Keras's symbolic result claims the input's dtype, its computed one is ``dtype``; gpu_dl gives ``dtype``). A
    class out of range sets nothing. No gradient."""

    keras_module = NN
    config_keys = ("num_classes", "axis", "dtype", "sparse")
    casts_inputs = False

    def __init__(self, num_classes=None, axis=-1, dtype=None, sparse=False, name=None, **kwargs):
        if num_classes is None and "num_tokens" in kwargs:
            num_classes = kwargs.pop("num_tokens")
        super().__init__(name=name, **kwargs)
        if num_classes is None:
            raise ValueError(f"{self._where()}: `num_classes` must be given.")
        if sparse:
            raise ValueError(f"{self._where()}: gpu_dl has no sparse tensors.")
        self.num_classes = _int(num_classes, "num_classes", self._where(), low=1)
        self.axis = _int(axis, "axis", self._where())
        self.target = standardize_dtype(dtype or backend.floatx())
        self.sparse = False

    def get_config(self):
        return {"name": self.name, "num_classes": self.num_classes, "axis": self.axis, "dtype": self.target,
                "sparse": self.sparse}

    def result_dtype(self, tensors, arguments):
        return self.target

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        if self.axis == -1:
            shape.append(self.num_classes)
        elif 0 <= self.axis < len(shape):
            shape.insert(self.axis, self.num_classes)
        else:
            raise ValueError(f"{self._where()}: `axis` must be -1 or in [0, {len(shape)}), got {self.axis}.")
        return tuple(shape[-1:] if len(shape) == 2 else shape[:1] + shape[2:])

    def forward_array(self, x):
        if x.dtype.kind not in "iub":
            x = x.astype(numpy.int64)
        xp = _xp(x)
        self.output_shape_of(None, [x.shape])
        hot = x[..., None] == xp.arange(self.num_classes)
        if self.axis != -1:
            hot = xp.moveaxis(hot, -1, self.axis)
        return hot.any(axis=1 if x.ndim > 1 else 0).astype(self.target)


OPERATIONS = {cls.__name__: cls for cls in (Logspace, Geomspace, Array, EmptyLike, View, MultiHot)}
