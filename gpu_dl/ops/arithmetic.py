"""Element-wise arithmetic of two operands (or one), forward and backward, for NumPy and CuPy arrays alike.

What ``x + y``, ``x - y``, ``x * y``, ``x / y``, ``x ** y``, ``-x`` and
``abs(x)`` compute on a model's tensors (``layers/operations.py``). Operands
are arrays or scalars of the arrays' dtype and broadcast as NumPy broadcasts
(shapes aligned at their last axes, sizes of 1 stretching), as keras.ops do.
Each ``*_backward(dy, operands, y)`` returns one gradient per operand, of the
broadcast shape; ``reduce_to_shape`` sums it back to the operand's own shape.
"""
from __future__ import annotations

import numpy

from ..backend import array_module
from .device_reduction import sum_axes


def reduce_to_shape(g, shape):
    """``g`` summed over the axes along which an operand of ``shape`` was broadcast to ``g.shape``."""
    shape = tuple(shape)
    extra = g.ndim - len(shape)
    if extra:
        g = sum_axes(g, tuple(range(extra)))
    stretched = tuple(i for i, (gs, s) in enumerate(zip(g.shape, shape)) if s == 1 and gs != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


def add_forward(a, b):
    return a + b


def add_backward(dy, operands, y):
    return dy, dy


def subtract_forward(a, b):
    return a - b


def subtract_backward(dy, operands, y):
    return dy, -dy


def multiply_forward(a, b):
    return a * b


def multiply_backward(dy, operands, y):
    a, b = operands
    return dy * b, dy * a


def true_divide_forward(a, b):
    return a / b


def true_divide_backward(dy, operands, y):
    a, b = operands
    da = dy / b
    return da, -da * y          # d(a/b)/db = -a/b**2 = -(1/b) * (a/b)


def power_forward(a, b):
    return a ** b


def power_backward(dy, operands, y):
    """d(a**b)/da = b * a**(b - 1); d(a**b)/db = a**b * log(a), taken as 0 where a is 0 (and y with it), as
    PyTorch's autograd takes it, so that ``0 ** b`` with b > 0 sends no NaN back."""
    a, b = operands
    xp = array_module(dy)
    with numpy.errstate(invalid="ignore", divide="ignore"):   # 0 ** -1, log of a negative base: inf, NaN
        da = dy * b * a ** (b - 1)
        if not hasattr(b, "shape") or b.ndim == 0:
            return da, None         # a scalar exponent takes no gradient
        db = xp.where(a == 0, 0, dy * y * xp.log(xp.where(a == 0, 1, a)))
    return da, db.astype(dy.dtype, copy=False)

def negative_forward(a):
    return -a


def negative_backward(dy, operands, y):
    return (-dy,)


def absolute_forward(a):
    return abs(a)


def absolute_backward(dy, operands, y):
    (a,) = operands
    return (dy * array_module(dy).sign(a),)

