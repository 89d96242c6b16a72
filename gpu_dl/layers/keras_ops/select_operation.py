"""``select`` of ``gpu_dl.ops`` on symbolic tensors: Keras's class ``Select`` of ``keras.src.ops.numpy``
with Keras's constructor arguments as its config. It gives its choices' dtype, with gradients to the choices and
a tensor default.
"""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import reductions_sorting as rs
from ...ops.arithmetic import reduce_to_shape
from ..operations import Operation
from ..symbolic import is_symbolic
from .base import KerasOperation, _float


class Select(KerasOperation):
    """``select(condlist, choicelist, default=0)``: per element, the first choice whose condition holds, ``default``
    (a number, a constant array or a tensor) where none does. Keras records the two lists of tensors and the
    default as the call's positional arguments; the node's inputs are the conditions, the choices and a tensor
    default, in that order. The conditions are bool tensors; the result has the broadcast shape of all and the
    dtype of the choices (of several dtypes, NumPy's promotion of them and of a tensor default). Gradients go to
    the float choices and a float tensor default, each where it is the one chosen; none to the conditions."""

    arity = None
    list_arguments = (0, 1)
    casts_inputs = False

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.count = None       # the number of (condition, choice) pairs

    def apply(self, condlist, choicelist, default=0):
        where = self._where()
        if not isinstance(condlist, (list, tuple)) or not isinstance(choicelist, (list, tuple)):
            raise TypeError(f"{where}: condlist and choicelist must be lists of tensors, got {condlist!r:.80} and "
                            f"{choicelist!r:.80}.")
        if len(condlist) != len(choicelist) or not condlist:
            raise ValueError(f"{where}: condlist and choicelist must be equally long and not empty, got "
                             f"{len(condlist)} and {len(choicelist)}.")
        if not all(is_symbolic(t) for t in (*condlist, *choicelist)):
            raise TypeError(f"{where}: on symbolic tensors, condlist and choicelist hold symbolic tensors only (a "
                            "constant array among them is not taken: make it a weight, or compare a tensor).")
        conditions = [str(t.dtype) for t in condlist]
        if any(d != "bool" for d in conditions):
            raise TypeError(f"{where}: the conditions must be bool tensors (comparisons), got dtypes {conditions}.")
        if self.count is not None and self.count != len(condlist):
            raise ValueError(f"{where} was first called with {self.count} choices; a later call with "
                             f"{len(condlist)} needs an operation of its own.")
        self.count = len(condlist)
        return super().apply(*condlist, *choicelist, default)

    def accept_argument(self, position, value):
        if position < 2 * self.count:
            raise TypeError(f"{self._where()}: condlist and choicelist hold symbolic tensors only.")
        return super().accept_argument(position, value)

    def keras_arguments(self, tensors):
        flat, n = super().keras_arguments(tensors), self.count
        return [flat[:n], flat[n:2 * n], flat[2 * n]]

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments, shapes)

    def result_dtype(self, tensors, arguments):
        n = self.count
        dtypes = [t.dtype for t in tensors[n:2 * n]] + ([tensors[2 * n].dtype] if arguments[2 * n] is None else [])
        return numpy.result_type(*dtypes).name

    def operands(self, arrays):
        xp = backend.array_module(*arrays)
        given = iter(arrays)
        n = self.count
        out = []
        for position, a in enumerate(self.arguments):
            value = next(given) if a is None else xp.asarray(a)
            out.append(value.astype(bool, copy=False) if position < n else value.astype(self.dtype, copy=False))
        return out

    def forward_function(self, *operands):
        n = self.count
        return rs.select_forward(operands[:n], operands[n:2 * n], operands[2 * n])

    def backward(self, dy):
        operands, _ = self.saved()
        n = self.count
        gradients = [None] * n + (rs.select_backward(dy, operands[:n]) if _float(self.dtype) else [None] * (n + 1))
        out = [None if g is None or not _float(o.dtype) else reduce_to_shape(g, o.shape)
               for g, o, a in zip(gradients, operands, self.arguments) if a is None]
        return out if len(out) > 1 else out[0]


OPERATIONS = {cls.__name__: cls for cls in (Select,)}
