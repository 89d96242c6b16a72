"""The shared base of Keras's array operations beyond the basic shapes (``ArrayOperation``) and the checks of
their settings.

The operations that only move elements (``Selection``) take their exact backward from the forward itself: the
forward run on the elements' positions tells where each output element came from, and the gradient is added back
there (``scatter_back``). The others have their own.

The families: moving axes and ``rearrange`` (``axes_rearrange``), diagonals and products (``matrices``), blocks
and windows (``blocks_windows``), joining and splitting (``stacking_splitting``), sequences and dtypes
(``sequences_dtypes``).
"""
from __future__ import annotations

import numpy

from ..symbolic import KerasTensor, Node, is_symbolic
from .base import KerasOperation, _axes, _xp


def scatter_back(select, shape, dy):
    """The gradient, for an input of ``shape``, of ``y = select(x)`` where ``select`` only picks (and repeats) the
    input's elements and fills zeros: ``select`` of the input's positions (counted from 1, so 0 marks a filled zero)
    says where each element of ``dy`` goes."""
    xp = _xp(dy)
    size = int(numpy.prod(shape))
    where = select(xp.arange(1, size + 1, dtype=numpy.int64).reshape(shape))
    g = xp.zeros(size + 1, dtype=dy.dtype)
    xp.add.at(g, where.ravel(), dy.ravel())
    return g[1:].reshape(shape)


def _int(value, what, where, low=None):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise TypeError(f"{where}: `{what}` must be an integer, got {value!r:.80} of type {type(value).__name__}.")
    if low is not None and value < low:
        raise ValueError(f"{where}: `{what}` must be at least {low}, got {value}.")
    return int(value)


def _ints(value, what, where, count=None):
    """An int or a sequence of ints, kept as Keras keeps it (an int stays an int, a sequence becomes a tuple)."""
    if isinstance(value, (int, numpy.integer)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, (list, tuple)) or (count is not None and len(value) != count):
        raise TypeError(f"{where}: `{what}` must be an integer or {count or 'a sequence of'} integers, got "
                        f"{value!r:.80}.")
    return tuple(_int(v, what, where) for v in value)


def _each_axis(axes, ndim, where):
    """Each of ``axes`` as a non-negative axis, in the order given (``_axes`` sorts them)."""
    return [_axes(a, ndim, where)[0] for a in axes]


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


class ArrayOperation(KerasOperation):
    """Keras's config: the name and the settings ``config_keys`` names, tuples written as lists."""

    def get_config(self):
        config = {"name": self.name}
        for key in self.config_keys:
            config[key] = _jsonable(getattr(self, key))
        return config


class Selection(ArrayOperation):
    """One tensor in; each output element is one of the input's, or a zero: ``select`` says which, for arrays of
    either module and of any dtype (the positions' included)."""

    def select(self, x):
        raise NotImplementedError

    def forward_array(self, x):
        return self.select(x)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [scatter_back(self.select, x.shape, dy)]


def _several(op, tensors, shapes, dtypes):
    """The symbolic call of an operation of several outputs on ``tensors`` (all symbolic): its output tensors."""
    if not tensors or not all(is_symbolic(t) for t in tensors):
        raise TypeError(f"{op._where()} takes symbolic tensors, got {tensors!r:.120}.")
    if op.arguments is not None:
        raise ValueError(f"{op._where()} was called already; a later call needs an operation of its own.")
    op.arguments = [None] * len(tensors)
    op.dtype = dtypes[0] if dtypes else op.result_dtype(tensors, op.arguments)
    op.built = True
    outputs = [KerasTensor(shape, dtype=dtype) for shape, dtype in zip(shapes, dtypes)]
    Node(op, args=(list(tensors) if len(tensors) > 1 else tensors[0],), outputs=outputs)
    return outputs
