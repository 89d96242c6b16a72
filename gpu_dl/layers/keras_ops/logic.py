"""Comparisons, logical operations, ``any`` and ``all``: bool outputs, no gradient."""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import numpy_functions as fn
from ..operations import Operation
from .base import NUMPY, KerasOperation
from .reductions import Reduction


# ------------------------------------------------------------------ comparisons and logic (no gradient)
class Comparison(KerasOperation):
    """Two tensors, numbers or arrays compared element-wise, broadcast as NumPy does: a bool tensor, no gradient.
    The operands are compared in their common dtype (Keras's)."""

    arity = 2
    casts_inputs = False
    compare = "greater"

    def result_dtype(self, tensors, arguments):
        self.operand_dtype = KerasOperation.result_dtype(self, tensors, arguments)
        return "bool"

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments, shapes)

    def constant_dtype(self, array):
        return self.operand_dtype       # the constants compare in the operands' common dtype, not bool

    def scalar_operand(self, value):
        return numpy.dtype(self.operand_dtype).type(value)

    def forward_function(self, *operands):
        xp = backend.array_module(*[o for o in operands if hasattr(o, "shape") and not numpy.isscalar(o)])
        return getattr(xp, self.compare)(*operands)

    def backward(self, dy):
        count = sum(a is None for a in self.arguments)
        return None if count == 1 else [None] * count


def _comparison(name, compare):
    return type(name, (Comparison,), {"compare": compare, "__module__": __name__,
                                      "__doc__": f"Keras's {NUMPY} {name}: ``{compare}`` element-wise, bool."})


Greater = _comparison("Greater", "greater")


GreaterEqual = _comparison("GreaterEqual", "greater_equal")


Less = _comparison("Less", "less")


LessEqual = _comparison("LessEqual", "less_equal")


Equal = _comparison("Equal", "equal")


NotEqual = _comparison("NotEqual", "not_equal")


LogicalAnd = _comparison("LogicalAnd", "logical_and")


LogicalOr = _comparison("LogicalOr", "logical_or")


LogicalXor = _comparison("LogicalXor", "logical_xor")


class LogicalNot(Comparison):
    arity = 1
    compare = "logical_not"


class Any(Reduction):
    """``any(x, axis=None, keepdims=False)`` (``All``): a bool tensor, no gradient."""

    casts_inputs = False
    reduce = "any"

    def result_dtype(self, tensors, arguments):
        return "bool"

    def forward_array(self, x):
        return getattr(x.astype(bool), self.reduce)(axis=fn.normalize_axes(self.axis, x.ndim), keepdims=self.keepdims)

    def backward(self, dy):
        return None


class All(Any):
    reduce = "all"
