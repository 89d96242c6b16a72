"""Keras's ``keras.ops`` functions, offered as ``gpu_dl.ops.<name>`` (``from gpu_dl import ops``).

Each function takes what Keras's does. On arrays (NumPy or CuPy) it computes
at once and returns an array of the same module; Python numbers and lists
become arrays of the current device's module. On symbolic tensors (from
``keras.Input``, in a functional model or in the traced ``call`` of a
composite layer) it records an operation of the graph, as Keras does
(``operations.py``): a forward, an exact backward, and Keras's class, module
and config in a saved ``.keras`` file.

The constants (``arange``, ``zeros``, ``ones``, ``eye``, ``full``, ``linspace``) are arrays; an operator or an
operation given one beside a symbolic tensor keeps it in the graph.
"""
from __future__ import annotations

import functools
import numbers
import re

import numpy

from ... import backend, backprop as _backprop
from ..base import Variable, as_operand
from ..indexing_operations import Matmul
from ..symbolic import is_symbolic
from . import operations as _ops
from .base import _eager, on_one_device

__all__ = [
    "shape", "cast", "arange", "zeros", "ones", "zeros_like", "ones_like", "convert_to_tensor", "convert_to_numpy",
    "reshape", "transpose", "expand_dims", "squeeze", "concatenate", "stack",
    "mean", "sum", "max", "min", "sqrt", "square", "exp", "log", "tanh", "sigmoid", "relu", "softmax",
    "maximum", "minimum", "clip", "add", "subtract", "multiply", "divide", "true_divide", "power", "negative",
    "abs", "absolute", "matmul", "einsum", "where", "take", "take_along_axis", "get_item",
    "sin", "cos", "erf", "gelu", "silu", "swish", "softplus", "log_softmax", "logsumexp",
    "split", "tile", "repeat", "pad", "broadcast_to", "flip", "roll", "slice", "one_hot", "argmax", "argmin",
    "cumsum", "var", "std", "prod", "norm", "dot", "tensordot",
    "tril", "triu", "eye", "full", "full_like", "linspace", "greater", "greater_equal", "less", "less_equal", "equal",
    "not_equal", "logical_and", "logical_or", "logical_xor", "logical_not", "any", "all", "moments", "normalize",
    "relu6", "leaky_relu", "elu", "selu", "celu", "softsign", "squareplus", "tanh_shrink", "hard_tanh",
    "log_sigmoid", "hard_sigmoid", "sparse_sigmoid", "sparse_plus", "hard_silu", "hard_swish", "hard_shrink",
    "soft_shrink", "threshold", "glu", "sparsemax",
]

_python_abs, _python_slice, _python_any, _python_all = abs, slice, any, all


def _symbolic(*values):
    for value in values:
        if is_symbolic(value) or (isinstance(value, (list, tuple)) and _symbolic(*value)):
            return True
    return False


def _array(x, dtype=None):
    """``x`` as an array: a NumPy or CuPy array stays in its module; numbers and lists go to the current device
    (Python floats as floatx and ints as int32, as Keras converts them)."""
    if hasattr(x, "shape") and hasattr(x, "dtype") and not is_symbolic(x):
        return x if dtype is None else x.astype(_ops.standardize_dtype(dtype), copy=False)
    if dtype is None:
        host = numpy.asarray(x)
        if host.dtype == numpy.float64 and not isinstance(x, numpy.generic):
            dtype = backend.floatx()
        elif host.dtype.kind in "iu" and not isinstance(x, numpy.generic):
            dtype = "int32"
        return backend.to_device(host, dtype=dtype)
    return backend.to_device(numpy.asarray(x), dtype=_ops.standardize_dtype(dtype))


def _unary(op, x):
    if is_symbolic(x):
        return op.apply(x)
    x = _array(x)
    if x.dtype.kind in "iub" and not op.keeps_integers:
        x = x.astype(backend.floatx())
    return op.forward_function(x)


# ------------------------------------------------------------------ shapes, dtypes, constants
def shape(x):
    """The shape as a tuple: of a symbolic tensor, with None for the sizes unknown until run (the batch)."""
    if is_symbolic(x):
        return tuple(x.shape)
    return tuple(int(n) for n in (x.shape if hasattr(x, "shape") else numpy.shape(x)))


def cast(x, dtype):
    if is_symbolic(x):
        return _ops.Cast(dtype).apply(x)
    if not hasattr(x, "dtype"):
        # a Python number or list converts to the dtype at once, as Keras's does: cast(0.9, "float64") is 0.9,
        # not its float32 rounding
        return _array(x, _ops.standardize_dtype(dtype))
    return _array(x).astype(_ops.standardize_dtype(dtype))


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """``x`` as an array of its module (numbers and lists: of the current device); a symbolic tensor is
    returned as it is, or cast to ``dtype``."""
    if sparse or ragged:
        raise ValueError("gpu_dl has no sparse or ragged tensors.")
    if is_symbolic(x):
        return x if dtype is None or _ops.standardize_dtype(dtype) == x.dtype else cast(x, dtype)
    return _array(x, dtype)


def convert_to_numpy(x):
    if is_symbolic(x):
        raise TypeError(f"convert_to_numpy: the symbolic tensor {x.name} has no values; call the model on arrays.")
    return backend.to_numpy(x) if hasattr(x, "shape") else numpy.asarray(x)


def arange(start, stop=None, step=None, dtype=None):
    """Keras's ``arange``: int32 for integer bounds, floatx where a bound is a float (or ``dtype``)."""
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    if dtype is None:
        floats = _python_any(isinstance(v, (float, numpy.floating)) or (hasattr(v, "dtype") and v.dtype.kind == "f")
                     for v in (start, stop, step))
        dtype = backend.floatx() if floats else "int32"
    values = [v.item() if hasattr(v, "item") else v for v in (start, stop, step)]
    return backend.to_device(numpy.arange(*values, dtype=_ops.standardize_dtype(dtype)))


def _size(value):
    if value is None:
        raise ValueError("a constant's shape holds None: its sizes must be known (the batch size is not known "
                         "while a model is being made; broadcast a constant without the batch axis instead).")
    return int(value)


def zeros(shape, dtype=None):
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(_size(n) for n in shape)
    return backend.to_device(numpy.zeros(shape, dtype=_ops.standardize_dtype(dtype or backend.floatx())))


def ones(shape, dtype=None):
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(_size(n) for n in shape)
    return backend.to_device(numpy.ones(shape, dtype=_ops.standardize_dtype(dtype or backend.floatx())))


def zeros_like(x, dtype=None):
    if is_symbolic(x):
        return _ops.ZerosLike(dtype).apply(x)
    x = _array(x)
    return backend.array_module(x).zeros(x.shape, dtype=_ops.standardize_dtype(dtype) if dtype else x.dtype)


def ones_like(x, dtype=None):
    if is_symbolic(x):
        return _ops.OnesLike(dtype).apply(x)
    x = _array(x)
    return backend.array_module(x).ones(x.shape, dtype=_ops.standardize_dtype(dtype) if dtype else x.dtype)


def reshape(x, newshape):
    if is_symbolic(x):
        return _ops.Reshape(newshape).apply(x)
    return _ops.Reshape.forward_array(_eager(_ops.Reshape, newshape=tuple(
        (newshape,) if isinstance(newshape, numbers.Integral) else newshape)), _array(x))


def transpose(x, axes=None):
    if is_symbolic(x):
        return _ops.Transpose(axes).apply(x)
    return _array(x).transpose(None if axes is None else tuple(axes))


def expand_dims(x, axis):
    if is_symbolic(x):
        return _ops.ExpandDims(axis).apply(x)
    return backend.array_module(_array(x)).expand_dims(_array(x), axis if isinstance(axis, int) else tuple(axis))


def squeeze(x, axis=None):
    if is_symbolic(x):
        return _ops.Squeeze(axis).apply(x)
    return backend.array_module(_array(x)).squeeze(_array(x), axis=axis if axis is None or isinstance(axis, int)
                                                   else tuple(axis))


def _joined(cls, xs, axis):
    if not isinstance(xs, (list, tuple)) or not xs:
        raise TypeError(f"{cls.__name__.lower()} takes a list of tensors, got {type(xs).__name__}.")
    if _symbolic(*xs):
        return cls(axis).apply(list(xs))
    arrays = [_array(x) for x in xs]
    xp = backend.array_module(*arrays)
    return (xp.concatenate if cls is _ops.Concatenate else xp.stack)([xp.asarray(a) for a in arrays], axis=axis)


def concatenate(xs, axis=0):
    return _joined(_ops.Concatenate, xs, axis)


def stack(x, axis=0):
    return _joined(_ops.Stack, x, axis)


# ------------------------------------------------------------------ reductions and element-wise maths
def mean(x, axis=None, keepdims=False):
    return _unary(_ops.Mean(axis, keepdims) if is_symbolic(x) else
                  _eager(_ops.Mean, axis=_ops._axis_setting(axis), keepdims=keepdims), x)


def sum(x, axis=None, keepdims=False):
    return _unary(_ops.Sum(axis, keepdims) if is_symbolic(x) else
                  _eager(_ops.Sum, axis=_ops._axis_setting(axis), keepdims=keepdims), x)


def max(x, axis=None, keepdims=False, initial=None):
    return _unary(_ops.Max(axis, keepdims, initial) if is_symbolic(x) else
                  _eager(_ops.Max, axis=_ops._axis_setting(axis), keepdims=keepdims, initial=initial), x)


def min(x, axis=None, keepdims=False, initial=None):
    return _unary(_ops.Min(axis, keepdims, initial) if is_symbolic(x) else
                  _eager(_ops.Min, axis=_ops._axis_setting(axis), keepdims=keepdims, initial=initial), x)


def _elementwise(cls):
    def function(x):
        return _unary(cls() if is_symbolic(x) else _eager(cls), x)
    function.__name__ = function.__qualname__ = cls.__name__.lower()
    function.__doc__ = f"Keras's ``{cls.__name__.lower()}``: element-wise."
    return function


sqrt = _elementwise(_ops.Sqrt)
square = _elementwise(_ops.Square)
exp = _elementwise(_ops.Exp)
log = _elementwise(_ops.Log)
tanh = _elementwise(_ops.Tanh)
sigmoid = _elementwise(_ops.Sigmoid)
relu = _elementwise(_ops.Relu)


def softmax(x, axis=-1):
    return _unary(_ops.Softmax(axis) if is_symbolic(x) else _eager(_ops.Softmax, axis=_ops._axis_setting(axis)), x)


def clip(x, x_min, x_max):
    if is_symbolic(x):
        return _ops.Clip(x_min, x_max).apply(x)
    x = _array(x)
    return backend.array_module(x).clip(x, x_min, x_max)


def _weak(number, other):
    """A Python number beside an array, as NumPy 2 and torch take it: in the array's dtype where that holds the
    number's kind (a float beside float32 stays float32). NumPy 1.x compares a 0-d float32 array with a Python
    float in float64, so the number is made a scalar of that dtype here."""
    if not isinstance(number, numbers.Real) or isinstance(number, bool) or not hasattr(other, "dtype"):
        return number
    kind = other.dtype.kind
    if kind == "f" or (kind in "iu" and isinstance(number, numbers.Integral)):
        try:
            return other.dtype.type(number)
        except OverflowError:
            return number
    return number


def _binary(cls, eager, x1, x2):
    if is_symbolic(x1) or is_symbolic(x2):
        return cls().apply(x1, x2)
    a = x1 if isinstance(x1, numbers.Real) else _array(x1)
    b = x2 if isinstance(x2, numbers.Real) else _array(x2)
    a, b = _weak(a, b), _weak(b, a)
    xp = backend.array_module(*[v for v in (a, b) if hasattr(v, "shape")]) if \
        _python_any(hasattr(v, "shape") for v in (a, b)) else backend.xp()
    a, b = on_one_device((a, b))
    return eager(xp)(a, b) if _python_any(hasattr(v, "shape") for v in (a, b)) else xp.asarray(eager(xp)(a, b))


def maximum(x1, x2):
    return _binary(_ops.Maximum, lambda xp: xp.maximum, x1, x2)


def minimum(x1, x2):
    return _binary(_ops.Minimum, lambda xp: xp.minimum, x1, x2)


def _arithmetic(name, symbolic):
    def function(x1, x2):
        if is_symbolic(x1) or is_symbolic(x2):
            from .. import operations
            return getattr(operations, symbolic)().apply(x1, x2)
        return _binary(None, lambda xp: getattr(xp, name), x1, x2)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"Keras's ``{name}``: element-wise, broadcast as NumPy does (``{symbolic}`` on tensors)."
    return function


add = _arithmetic("add", "Add")
subtract = _arithmetic("subtract", "Subtract")
multiply = _arithmetic("multiply", "Multiply")
divide = _arithmetic("divide", "TrueDivide")
true_divide = _arithmetic("true_divide", "TrueDivide")
power = _arithmetic("power", "Power")


def negative(x):
    return -x if is_symbolic(x) else backend.array_module(_array(x)).negative(_array(x))


def absolute(x):
    return _python_abs(x) if is_symbolic(x) else backend.array_module(_array(x)).abs(_array(x))


abs = absolute


def get_item(x, key):
    return x[key] if is_symbolic(x) else _array(x)[key]


# ------------------------------------------------------------------ products and selection
def matmul(x1, x2):
    if is_symbolic(x1) or is_symbolic(x2):
        return Matmul().apply(x1, x2)
    a, b = _array(x1), _array(x2)
    xp = backend.array_module(a, b)
    return xp.matmul(xp.asarray(a), xp.asarray(b))


def einsum(subscripts, *operands, **kwargs):
    if kwargs:
        raise TypeError(f"einsum takes no keyword arguments in gpu_dl, got {sorted(kwargs)}.")
    if _symbolic(*operands):
        return _ops.Einsum(subscripts).apply(*operands)
    arrays = [_array(x) for x in operands]
    xp = backend.array_module(*arrays)
    return xp.einsum(subscripts, *[xp.asarray(a) for a in arrays])


def where(condition, x1=None, x2=None):
    if x1 is None or x2 is None:
        if is_symbolic(condition):
            raise ValueError("where(condition) without x1 and x2 (the indices of the non-zero elements) has no "
                             "shape known before the values: it is not taken on symbolic tensors.")
        if x1 is not None or x2 is not None:
            raise ValueError("where takes both x1 and x2, or neither.")
        c = _array(condition)
        return backend.array_module(c).nonzero(c)
    if _symbolic(condition, x1, x2):
        return _ops.Where().apply(condition, x1, x2)
    values = [v if isinstance(v, numbers.Real) else _array(v) for v in (condition, x1, x2)]
    arrays = [v for v in values if hasattr(v, "shape")]
    xp = backend.array_module(*arrays) if arrays else backend.xp()
    condition = xp.asarray(values[0]).astype(bool)
    return xp.where(condition, *[xp.asarray(v) if hasattr(v, "shape") else v for v in values[1:]])


def take(x, indices, axis=None):
    if _symbolic(x, indices):
        return _ops.Take(axis).apply(x, indices)
    x = _array(x)
    xp = backend.array_module(x)
    return xp.take(x, xp.asarray(_array(indices)), axis=axis)


def take_along_axis(x, indices, axis=None):
    if _symbolic(x, indices):
        return _ops.TakeAlongAxis(axis).apply(x, indices)
    from ...ops import numpy_functions
    x = _array(x)
    xp = backend.array_module(x)
    return numpy_functions.take_along_axis_forward(x, xp.asarray(_array(indices)), axis)


# ------------------------------------------------------------------ trigonometry and activations
def _local(cls, *args, **kwargs):
    """An operation object for computing on arrays, named without taking a name from the graph's counter."""
    return cls(*args, name=cls.__name__.lower(), **kwargs)


def _made(x, cls, *args):
    """The operation ``cls(*args)`` for ``x``: one of the graph's, named by its counter, for a symbolic tensor;
    one for computing at once otherwise."""
    return cls(*args) if is_symbolic(x) else _local(cls, *args)


sin = _elementwise(_ops.Sin)
cos = _elementwise(_ops.Cos)
erf = _elementwise(_ops.Erf)
silu = _elementwise(_ops.Silu)
softplus = _elementwise(_ops.Softplus)


def swish(x):
    """Keras's ``swish``: ``silu`` (recorded as Keras's ``Silu``)."""
    return silu(x)


def gelu(x, approximate=True):
    return _unary(_made(x, _ops.Gelu, approximate), x)


def log_softmax(x, axis=-1):
    return _unary(_made(x, _ops.LogSoftmax, axis), x)


def logsumexp(x, axis=None, keepdims=False):
    return _unary(_made(x, _ops.Logsumexp, axis, keepdims), x)


def activation(cls, x, *args):
    """The activation operation ``cls(*args)`` (``operations.ActivationOperation``) on ``x``: recorded on a symbolic
    tensor; computed at once on an array (integers as floatx), with gpu_dl's activation function."""
    if is_symbolic(x):
        return cls(*args).apply(x)
    x = _array(x)
    if x.dtype.kind in "iub":
        x = x.astype(backend.floatx())
    return _local(cls, *args).forward_array(x)


def relu6(x):
    return activation(_ops.Relu6, x)


def leaky_relu(x, negative_slope=0.2):
    return activation(_ops.LeakyRelu, x, negative_slope)


def elu(x, alpha=1.0):
    return activation(_ops.Elu, x, alpha)


def selu(x):
    return activation(_ops.Selu, x)


def celu(x, alpha=1.0):
    return activation(_ops.Celu, x, alpha)


def softsign(x):
    return activation(_ops.Softsign, x)


def squareplus(x, b=4):
    return activation(_ops.Squareplus, x, b)


def tanh_shrink(x):
    return activation(_ops.TanhShrink, x)


def hard_tanh(x):
    return activation(_ops.HardTanh, x)


def log_sigmoid(x):
    return activation(_ops.LogSigmoid, x)


def hard_sigmoid(x):
    return activation(_ops.HardSigmoid, x)


def sparse_sigmoid(x):
    return activation(_ops.SparseSigmoid, x)


def sparse_plus(x):
    return activation(_ops.SparsePlus, x)


def hard_silu(x):
    return activation(_ops.HardSilu, x)


def hard_swish(x):
    """Keras's ``hard_swish``: ``hard_silu`` (recorded as Keras's ``HardSilu``)."""
    return hard_silu(x)


def hard_shrink(x, threshold=0.5):
    return activation(_ops.HardShrink, x, threshold)


def soft_shrink(x, threshold=0.5):
    return activation(_ops.SoftShrink, x, threshold)


def threshold(x, threshold, default_value):
    return activation(_ops.Threshold, x, threshold, default_value)


def glu(x, axis=-1):
    """The first half of ``axis`` times the sigmoid of the second half: the axis halves."""
    return activation(_ops.Glu, x, axis)


def sparsemax(x, axis=-1):
    return activation(_ops.Sparsemax, x, axis)


# ------------------------------------------------------------------ statistics
def var(x, axis=None, keepdims=False):
    return _unary(_made(x, _ops.Var, axis, keepdims), x)


def std(x, axis=None, keepdims=False):
    return _unary(_made(x, _ops.Std, axis, keepdims), x)


def prod(x, axis=None, keepdims=False, dtype=None):
    return _unary(_made(x, _ops.Prod, axis, keepdims, dtype), x)


def norm(x, ord=None, axis=None, keepdims=False):
    """Keras's ``linalg.norm`` for the 2-norm of vectors and the Frobenius norm (see ``operations.Norm``)."""
    return _unary(_made(x, _ops.Norm, ord, axis, keepdims), x)


def cumsum(x, axis=None, dtype=None):
    return _unary(_made(x, _ops.Cumsum, axis, dtype), x)


def argmax(x, axis=None, keepdims=False):
    """The int32 index of the largest element (the first of ties) along ``axis`` (None: of the flattened tensor);
    no gradient."""
    return _unary(_made(x, _ops.Argmax, axis, keepdims), x)


def argmin(x, axis=None, keepdims=False):
    return _unary(_made(x, _ops.Argmin, axis, keepdims), x)


def moments(x, axes, keepdims=False, synchronized=False):
    """``(mean, variance)`` over ``axes``: on symbolic tensors one operation of two outputs, as in Keras."""
    if is_symbolic(x):
        return tuple(_ops.Moments(axes, keepdims, synchronized).apply(x))
    return tuple(_unary(_local(_ops.Moments, axes, keepdims, synchronized), x))


def normalize(x, axis=-1, order=2, epsilon=None):
    """Keras's ``normalize``: ``x`` divided by its L2 norm along ``axis`` (at most ``1 / epsilon`` times x)."""
    return _unary(_made(x, _ops.Normalize, axis, order, epsilon), x)


# ------------------------------------------------------------------ rearranging
def _rearranged(cls, x, *args):
    if is_symbolic(x):
        return cls(*args).apply(x)
    return _local(cls, *args).forward_array(_array(x))


def split(x, indices_or_sections, axis=0):
    """A list of parts: ``indices_or_sections`` equal ones, or cut at those indices."""
    if is_symbolic(x):
        return _ops.Split(indices_or_sections, axis).apply(x)
    x = _array(x)
    op = _local(_ops.Split, indices_or_sections, axis)
    return [x[(_python_slice(None),) * (axis % x.ndim) + (_python_slice(a, b),)]
            for a, b in op._bounds(x.shape[axis])]


def tile(x, repeats):
    return _rearranged(_ops.Tile, x, repeats)


def repeat(x, repeats, axis=None):
    return _rearranged(_ops.Repeat, x, repeats, axis)


def pad(x, pad_width, mode="constant", constant_values=None):
    if is_symbolic(x):
        return _ops.Pad(pad_width, mode).apply(x, constant_values=constant_values)
    op = _local(_ops.Pad, pad_width, mode)
    op.constant_values = constant_values
    return op.forward_array(_array(x))


def broadcast_to(x, shape):
    return _rearranged(_ops.BroadcastTo, x, shape)


def flip(x, axis=None):
    return _rearranged(_ops.Flip, x, axis)


def roll(x, shift, axis=None):
    return _rearranged(_ops.Roll, x, shift, axis)


def slice(x, start_indices, shape):
    """Keras's ``slice``: the block of ``shape`` starting at ``start_indices`` (numbers)."""
    if is_symbolic(x):
        return _ops.Slice(shape).apply(x, tuple(start_indices))
    x = _array(x)
    return x[tuple(_python_slice(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))]


def tril(x, k=0):
    return _rearranged(_ops.Tril, x, k)


def triu(x, k=0):
    return _rearranged(_ops.Triu, x, k)


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Integer classes as one-hot vectors (floatx by default) along a new ``axis``; no gradient."""
    return _rearranged(_ops.OneHot, x, num_classes, axis, dtype, sparse)


# ------------------------------------------------------------------ products
def tensordot(x1, x2, axes=2):
    if is_symbolic(x1) or is_symbolic(x2):
        return _ops.Tensordot(axes).apply(x1, x2)
    a, b = _array(x1), _array(x2)
    xp = backend.array_module(a, b)
    return xp.tensordot(xp.asarray(a), xp.asarray(b), axes=axes)


def dot(x1, x2):
    if is_symbolic(x1) or is_symbolic(x2):
        return _ops.Dot().apply(x1, x2)
    a, b = _array(x1), _array(x2)
    xp = backend.array_module(a, b)
    return xp.dot(xp.asarray(a), xp.asarray(b))


# ------------------------------------------------------------------ constants
def eye(N, M=None, k=0, dtype=None):
    return backend.to_device(numpy.eye(int(N), None if M is None else int(M), int(k),
                                       dtype=_ops.standardize_dtype(dtype or backend.floatx())))


def full(shape, fill_value, dtype=None):
    """``shape`` filled with ``fill_value``, of ``dtype`` or the number's (floatx for a float, int32 for an int)."""
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(_size(n) for n in shape)
    fill = _array(fill_value, dtype)
    return backend.array_module(fill).full(shape, fill.item(), dtype=fill.dtype)


def full_like(x, fill_value, dtype=None):
    if is_symbolic(x):
        return _ops.FullLike(dtype).apply(x, fill_value)
    x = _array(x)
    return backend.array_module(x).full(x.shape, fill_value, dtype=_ops.standardize_dtype(dtype) if dtype else x.dtype)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``num`` evenly spaced numbers from ``start`` to ``stop`` (floatx unless ``dtype``), as an array."""
    values = numpy.linspace(start, stop, int(num), endpoint=endpoint, retstep=retstep, axis=axis)
    array = values[0] if retstep else values
    array = backend.to_device(array, dtype=_ops.standardize_dtype(dtype or backend.floatx()))
    return (array, values[1]) if retstep else array


# ------------------------------------------------------------------ comparisons and logic
def _compare(cls):
    name = "_".join(part.lower() for part in re.findall("[A-Z][a-z]*", cls.__name__))

    def function(x1, x2):
        if is_symbolic(x1) or is_symbolic(x2):
            return cls().apply(x1, x2)
        return _binary(None, lambda xp: getattr(xp, cls.compare), x1, x2)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"Keras's ``{name}``: element-wise, broadcast as NumPy does; a bool tensor, no gradient."
    return function


greater = _compare(_ops.Greater)
greater_equal = _compare(_ops.GreaterEqual)
less = _compare(_ops.Less)
less_equal = _compare(_ops.LessEqual)
equal = _compare(_ops.Equal)
not_equal = _compare(_ops.NotEqual)
logical_and = _compare(_ops.LogicalAnd)
logical_or = _compare(_ops.LogicalOr)
logical_xor = _compare(_ops.LogicalXor)


def logical_not(x):
    if is_symbolic(x):
        return _ops.LogicalNot().apply(x)
    x = _array(x)
    return backend.array_module(x).logical_not(x)


def any(x, axis=None, keepdims=False):
    return _rearranged(_ops.Any, x, axis, keepdims)


def all(x, axis=None, keepdims=False):
    return _rearranged(_ops.All, x, axis, keepdims)


# ------------------------------------------------------------------ variables
def _taking_variables(function, traced=True):
    """``function`` taking variables (``layers.base.Variable``) where it takes tensors, as Keras's ops do: in the
    call of a layer being traced a variable (or its value array) is its tensor in the graph, which reads it each
    time the graph runs and trains it; elsewhere its value. With ``traced=False`` always its value (``shape``,
    ``convert_to_numpy``)."""
    def resolve(value):
        if isinstance(value, (list, tuple)):
            return type(value)(resolve(v) for v in value)
        return as_operand(value) if traced else (value.value if isinstance(value, Variable) else value)

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        return function(*[resolve(a) for a in args], **{k: resolve(v) for k, v in kwargs.items()})
    return wrapped


# On arrays, loss.backward() follows concatenate and stack and refuses the others' outputs (gpu_dl/backprop.py).
for _name in __all__:
    globals()[_name] = _backprop.followed(
        _taking_variables(globals()[_name], traced=_name not in ("shape", "convert_to_numpy")), _name)
del _name

# Keras's further families of ops: each family's operation classes in <family>.py (gathered in operations.py),
# its functions, wrapped as the ones above are, in <family>_api.py.
from . import (math_elementwise_api, reductions_sorting_api, arrays_api, linalg_fft_api,  # noqa: E402
               nn_api, control_flow_api, nn_conv_api, complex_views_api)
for _family in (math_elementwise_api, reductions_sorting_api, arrays_api, linalg_fft_api, nn_api, control_flow_api,
                nn_conv_api, complex_views_api):
    globals().update({_name: getattr(_family, _name) for _name in _family.__all__})
    __all__ += _family.__all__
del _family

# Keras's namespaces keras.ops.nn, keras.ops.linalg, keras.ops.image and keras.ops.numpy. This module's own
# `numpy` is NumPy, which its functions use: NAMESPACES is where gpu_dl.ops looks each namespace up.
from . import nn_namespace as nn, image_api as image, numpy_namespace  # noqa: E402
linalg = linalg_fft_api.linalg_namespace(globals())
NAMESPACES = {"nn": nn, "linalg": linalg, "image": image, "numpy": numpy_namespace}
__all__ += list(NAMESPACES)
