"""Keras's operations between complex tensors and real ones: ``Polar`` (``keras.src.ops.nn``), ``ViewAsComplex``
and ``ViewAsReal`` (``keras.src.ops.math``), with Keras's classes, modules and configs and exact backwards.

A complex tensor's gradient is held as one complex array, dL/d(real part) + i dL/d(imaginary part), so a chain
such as ``view_as_real(polar(r, theta))`` or ``view_as_real(view_as_complex(x))`` differentiates exactly back to
its real inputs. gpu_dl's other operations take real tensors: complex ones are for these three (and ``eig``'s
results).

Dtypes are Keras's on torch: ``polar`` gives complex64 from float32 (and from integers, as floatx) and complex128
from float64; ``view_as_complex`` gives complex64 whatever the float dtype (Keras casts both parts to complex64);
``view_as_real`` gives the parts' float dtype (float32 from complex64, float64 from complex128).
"""
from __future__ import annotations

import numpy

from ... import backend
from ..operations import Operation
from .base import MATH, NN, KerasOperation, _xp

__all__ = ["Polar", "ViewAsComplex", "ViewAsReal", "complex_dtype", "real_dtype", "OPERATIONS"]


def complex_dtype(dtype):
    """The complex dtype of a float one: complex64 for float16 and float32, complex128 for float64."""
    return "complex128" if numpy.dtype(dtype) == numpy.float64 else "complex64"


def real_dtype(dtype):
    """The float dtype of a complex one's parts."""
    return "float64" if numpy.dtype(dtype) == numpy.complex128 else "float32"


def _is_complex(dtype):
    return numpy.dtype(dtype).kind == "c"


class Polar(Operation):
    """``polar(abs_, angle)``: ``abs_ * (cos(angle) + i sin(angle))``, broadcast as NumPy does."""

    keras_module = NN
    casts_inputs = False

    def _where_function(self):
        return f"polar ({self._where()})"

    def result_dtype(self, tensors, arguments):
        for t in tensors:
            if _is_complex(t.dtype):
                raise TypeError(f"{self._where_function()}: `abs_` and `angle` must be real tensors, got "
                                f"{t.dtype}.")
        floats = [t.dtype for t in tensors if numpy.dtype(t.dtype).kind == "f"]
        return complex_dtype(numpy.result_type(*floats) if floats else backend.floatx())

    def operands(self, arrays):
        """The magnitude and angle in the float dtype of the result's parts (numbers and constants too)."""
        dtype = real_dtype(self.dtype)
        xp = backend.array_module(*arrays)
        given = iter(arrays)
        return [next(given).astype(dtype, copy=False) if a is None else xp.asarray(a, dtype=dtype)
                for a in self.arguments]

    def forward_function(self, r, theta):
        xp = _xp(r) if hasattr(r, "shape") else _xp(theta)
        y = xp.empty(numpy.broadcast_shapes(numpy.shape(r), numpy.shape(theta)), dtype=self.dtype)
        y.real = r * xp.cos(theta)
        y.imag = r * xp.sin(theta)
        return y

    def backward_function(self, dy, operands, y):
        r, theta = operands
        xp = _xp(dy)
        cos, sin = xp.cos(theta), xp.sin(theta)
        return [dy.real * cos + dy.imag * sin, r * (dy.imag * cos - dy.real * sin)]


class ViewAsComplex(KerasOperation):
    """``view_as_complex(x)``: a real tensor of shape ``(..., 2)`` as the complex tensor ``x[..., 0] + i x[..., 1]``
    (complex64)."""

    keras_module = MATH
    casts_inputs = False

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if not shape or shape[-1] != 2:
            raise ValueError(f"view_as_complex ({self._where()}): the last axis must hold 2 numbers (the real and "
                             f"imaginary parts), got shape {shape}.")
        return shape[:-1]

    def result_dtype(self, tensors, arguments):
        if _is_complex(tensors[0].dtype):
            raise TypeError(f"view_as_complex ({self._where()}): `x` must be a real tensor, got {tensors[0].dtype}.")
        return "complex64"

    def forward_function(self, x):
        y = _xp(x).empty(x.shape[:-1], dtype=self.dtype)
        y.real = x[..., 0]
        y.imag = x[..., 1]
        return y

    def backward_function(self, dy, operands, y):
        x = operands[0]
        return [_xp(dy).stack([dy.real, dy.imag], axis=-1).astype(x.dtype, copy=False)]


class ViewAsReal(KerasOperation):
    """``view_as_real(x)``: a complex tensor as the real tensor of shape ``(..., 2)`` of its real and imaginary
    parts."""

    keras_module = MATH
    casts_inputs = False

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0]) + (2,)

    def result_dtype(self, tensors, arguments):
        if not _is_complex(tensors[0].dtype):
            raise TypeError(f"view_as_real ({self._where()}): `x` must be a complex tensor (from polar, "
                            f"view_as_complex or eig), got {tensors[0].dtype}.")
        return real_dtype(tensors[0].dtype)

    def forward_function(self, x):
        return _xp(x).stack([x.real, x.imag], axis=-1)

    def _as_input(self, x):
        """The complex array as it is (the layers' check of inputs takes real numbers only)."""
        if hasattr(x, "dtype") and _is_complex(x.dtype):
            return x
        return super()._as_input(x)

    def backward(self, dy):
        # The operand is complex: KerasOperation.backward would take it for one that takes no gradient.
        return Operation.backward(self, dy)

    def backward_function(self, dy, operands, y):
        x = operands[0]
        dx = _xp(dy).empty(x.shape, dtype=x.dtype)
        dx.real = dy[..., 0]
        dx.imag = dy[..., 1]
        return [dx]


OPERATIONS = {cls.__name__: cls for cls in (Polar, ViewAsComplex, ViewAsReal)}
