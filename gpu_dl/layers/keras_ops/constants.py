"""Dtypes and constants: ``cast``, ``zeros_like``/``ones_like``/``full_like`` (no gradient), and the constant
arrays a traced ``call`` captures."""
from __future__ import annotations

import numpy

from ... import backend
from .base import CORE, KerasOperation, WithDtype, WithoutGradient, _float, _xp


# ------------------------------------------------------------------ dtypes and constants of a tensor's shape
class Cast(WithDtype, KerasOperation):
    keras_module = CORE

    def __init__(self, dtype, name=None, **kwargs):     # Keras's cast has no default dtype
        super().__init__(dtype, name=name, **kwargs)

    def forward_array(self, x):
        return x.astype(self.target)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [dy.astype(x.dtype) if _float(x.dtype) and _float(self.target) else None]


class ZerosLike(WithoutGradient, WithDtype, KerasOperation):
    """A tensor of ``x``'s shape filled with zeros (``OnesLike``: ones); of ``dtype``, or ``x``'s. No gradient."""

    fill = 0

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


class FullLike(WithDtype, KerasOperation):
    """``full_like(x, fill_value, dtype=None)``: ``x``'s shape filled with a number; no gradient."""

    arity = 2

    def accept_argument(self, position, value):
        if position != 1 or isinstance(value, numpy.ndarray):
            raise TypeError(f"{self._where()}: the tensor comes first, then a number, got {value!r:.80} in position "
                            f"{position}.")
        return super().accept_argument(position, value)

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0])

    def operands(self, arrays):
        return [arrays[0]]

    def forward_function(self, x):
        return _xp(x).full(x.shape, self.arguments[1], dtype=self.dtype)

    def backward(self, dy):
        return None
