"""The base of the operations ``gpu_dl.ops`` records (``operations.py`` gathers them): Keras's operation
modules, the axis and dtype rules they share, and ``KerasOperation``."""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import numpy_functions as fn
from ..operations import Operation
from ..symbolic import is_symbolic

NUMPY, NN, CORE = "keras.src.ops.numpy", "keras.src.ops.nn", "keras.src.ops.core"
MATH, LINALG = "keras.src.ops.math", "keras.src.ops.linalg"


def standardize_dtype(dtype):
    """A dtype as Keras names it: ``"float32"``, ``"int32"``, ``"bool"``, ... (Python's int and float: int32 and
    floatx, as Keras takes them)."""
    # (strings compared as strings: numpy.dtype("float64") == "float" holds, and int64 == "int")
    if dtype is int or (isinstance(dtype, str) and dtype == "int"):
        return "int32"
    if dtype is float or (isinstance(dtype, str) and dtype == "float"):
        return backend.floatx()
    if dtype is bool:
        return "bool"
    try:
        return numpy.dtype(getattr(dtype, "name", dtype)).name
    except TypeError:
        raise TypeError(f"{dtype!r} is not a dtype.") from None


def _float(dtype):
    return numpy.dtype(dtype).kind == "f"


def _axis_setting(axis):
    """An axis setting as Keras keeps it: None, an int, or a tuple of ints."""
    if axis is None or isinstance(axis, (int, numpy.integer)):
        return None if axis is None else int(axis)
    return tuple(int(a) for a in axis)


def _axes(axis, ndim, where):
    try:
        return fn.normalize_axes(axis, ndim)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _reduced_shape(shape, axes, keepdims):
    return tuple(1 if i in axes else n for i, n in enumerate(shape)) if keepdims else \
        tuple(n for i, n in enumerate(shape) if i not in axes)


class KerasOperation(Operation):
    """One tensor in, one tensor out, with settings; integer inputs take no gradient."""

    arity = 1
    keras_module = NUMPY
    keeps_integers = True       # an integer input keeps its dtype (else: floatx)

    def result_dtype(self, tensors, arguments):
        dtypes = [t.dtype for t in tensors]
        floats = [d for d in dtypes if _float(d)]
        if floats:
            return numpy.result_type(*floats).name
        return numpy.result_type(*dtypes).name if self.keeps_integers and dtypes else backend.floatx()

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0])

    def forward_function(self, x):
        return self.forward_array(x)

    def backward(self, dy):
        operands, _ = self.saved()
        if not any(_float(o.dtype) for o, a in zip(operands, self.arguments) if a is None):
            return None if sum(a is None for a in self.arguments) == 1 else [None] * sum(
                a is None for a in self.arguments)
        return super().backward(dy)


class WithDtype:
    """Mixed in before an operation's base class: the ``dtype`` setting of Keras's config, the result's dtype
    where given, else the first input's."""

    config_keys = ("dtype",)
    casts_inputs = False

    def __init__(self, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.target}

    def result_dtype(self, tensors, arguments):
        return self.target or tensors[0].dtype


class GradientToFirst:
    """Mixed in before an operation's base class, for an operation of ``(x, second)`` whose second operand
    (quantiles, indices) is not differentiated: no gradient unless x is float; x's gradient alone where the
    second is a constant, else the pair ``backward_function`` gives."""

    def backward(self, dy):
        operands, y = self.saved()
        if not _float(operands[0].dtype):
            return None if self.arguments[1] is not None else [None, None]
        g = self.backward_function(dy, operands, y)
        return g[0] if self.arguments[1] is not None else g


class WithoutGradient:
    """Mixed in before an operation's base class: its result (indices, counts, truth values, fills) takes no
    gradient back to any operand. ``fixed_dtype``, where set, is the result's dtype whatever the inputs'."""

    fixed_dtype = None

    def result_dtype(self, tensors, arguments):
        return self.fixed_dtype or super().result_dtype(tensors, arguments)

    def backward_function(self, dy, operands, y):
        return [None] * len(operands)


def _several_outputs(op, x, count):
    """The symbolic call of an operation of ``count`` outputs (split, moments): its tensors, as a list."""
    from ..symbolic import KerasTensor, Node
    if not is_symbolic(x):
        raise TypeError(f"{op._where()} takes a symbolic tensor, got {x!r:.80}.")
    if op.arguments is not None:
        raise ValueError(f"{op._where()} was called already; a later call needs an operation of its own.")
    shapes = op.output_shape_of([None], [x.shape])
    op.arguments = [None]
    op.dtype = op.result_dtype([x], [None])
    op.built = True
    outputs = [KerasTensor(shape, dtype=op.dtype) for shape in shapes]
    Node(op, args=(x,), outputs=outputs)
    return outputs


def _xp(x):
    return backend.array_module(x)


def on_one_device(values):
    """``values`` (arrays and numbers) with the host NumPy arrays among them moved to the device where another
    is a device array: CuPy's functions refuse host operands, where Keras's ops take NumPy arrays anywhere."""
    xp = backend.array_module(*[v for v in values if hasattr(v, "shape")])
    if xp is numpy:
        return list(values)
    return [xp.asarray(v) if isinstance(v, numpy.ndarray) else v for v in values]


def _nested_tuple(value):
    return tuple(_nested_tuple(v) for v in value) if isinstance(value, (list, tuple)) else int(value)


def _nested_list(value):
    return [_nested_list(v) for v in value] if isinstance(value, tuple) else value


def _eager(cls, **config):
    """An operation object for computing on arrays: it gets no name of its own (names are taken per use in a
    graph only, so computing on arrays does not change the names later operations get)."""
    op = cls.__new__(cls)
    op.__dict__.update(config)
    return op
