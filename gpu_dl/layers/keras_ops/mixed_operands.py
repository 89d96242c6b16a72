"""The base of the operations of several arguments, some integer (indices, ids, bins): ``_Mixed`` keeps
constants in their own dtype, and ``_only_floats`` drops the gradients of integer operands. The maths of the
families on it is ``ops/reductions_sorting.py``.
"""
from __future__ import annotations

import numpy

from .base import KerasOperation, _float


def _only_floats(gradients, operands):
    """None in place of the gradients of integer operands."""
    return [g if g is not None and _float(o.dtype) else None for g, o in zip(gradients, operands)]


class _Mixed(KerasOperation):
    """An operation of several arguments, some integer (indices, ids): constants keep their own dtype and the
    forward casts what it computes with."""

    casts_inputs = False

    def constant_dtype(self, array):
        return None

    def scalar_operand(self, value):
        return value

    def _shapes(self, arguments, shapes):
        given = iter(shapes)
        return [tuple(next(given)) if a is None else tuple(numpy.shape(a)) for a in arguments]

    def _dtypes(self, tensors, arguments):
        given = iter(tensors)
        return [next(given).dtype if a is None else numpy.asarray(a).dtype.name for a in arguments]
