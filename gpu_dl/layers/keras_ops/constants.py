"""Dtypes and constants: ``cast``, ``zeros_like``/``ones_like``/``full_like`` (no gradient), and the constant
arrays a traced ``call`` captures."""
from __future__ import annotations

import numpy

from ... import backend
from .base import CORE, KerasOperation, WithoutGradient, _float, _xp, standardize_dtype


# ------------------------------------------------------------------ dtypes and constants of a tensor's shape
class Cast(KerasOperation):
    keras_module = CORE
    config_keys = ("dtype",)
    casts_inputs = False

    def __init__(self, dtype, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target = standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.target}

    def result_dtype(self, tensors, arguments):
        return self.target

    def forward_array(self, x):
        return x.astype(self.target)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [dy.astype(x.dtype) if _float(x.dtype) and _float(self.target) else None]


class ZerosLike(WithoutGradient, KerasOperation):
    """A tensor of ``x``'s shape filled with zeros (``OnesLike``: ones); of ``dtype``, or ``x``'s. No gradient."""

    config_keys = ("dtype",)
    casts_inputs = False
    fill = 0

    def __init__(self, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.target}

    def result_dtype(self, tensors, arguments):
        return self.target or tensors[0].dtype

    def forward_array(self, x):
        return _xp(x).full(x.shape, self.fill, dtype=self.target or x.dtype)


class OnesLike(ZerosLike):
    fill = 1


class TracedConstant(WithoutGradient, KerasOperation):
    """An array a layer was called on while a composite layer's call was traced (``ops.arange(maxlen)`` fed to
    an ``Embedding``): an operation of the traced graph whose output is the array, so the layers it feeds are
    calls of the graph and train. It reads the traced call's first input only to belong to the graph (no
    gradient goes back). Graphs of traced calls are not saved, so Keras has no such class."""

    casts_inputs = False
    keras_module = None

    def __init__(self, value=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = numpy.array(backend.to_numpy(value), copy=True)

    def result_dtype(self, tensors, arguments):
        return self.value.dtype.name

    def output_shape_of(self, arguments, shapes):
        return self.value.shape

    def forward_function(self, anchor):
        key = _xp(anchor).__name__
        if key not in self._on_device:
            self._on_device[key] = _xp(anchor).asarray(self.value)
        return self._on_device[key]


class FullLike(KerasOperation):
    """``full_like(x, fill_value, dtype=None)``: ``x``'s shape filled with a number; no gradient."""

    arity = 2
    config_keys = ("dtype",)
    casts_inputs = False

    def __init__(self, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.target}

    def accept_argument(self, position, value):
        if position != 1 or isinstance(value, numpy.ndarray):
            raise TypeError(f"{self._where()}: the tensor comes first, then a number, got {value!r:.80} in position "
                            f"{position}.")
        return super().accept_argument(position, value)

    def result_dtype(self, tensors, arguments):
        return self.target or tensors[0].dtype

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0])

    def operands(self, arrays):
        return [arrays[0]]

    def forward_function(self, x):
        return _xp(x).full(x.shape, self.arguments[1], dtype=self.dtype)

    def backward(self, dy):
        return None
