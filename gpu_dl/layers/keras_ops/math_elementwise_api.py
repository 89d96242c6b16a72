"""Keras's element-wise maths functions of ``keras.ops`` (``arccos``, ``log1p``, ``arctan2``, ``mod``, ``isnan``,
``bitwise_and``, ``stop_gradient``, ``saturate_cast``, ...), offered as ``gpu_dl.ops.<name>``.

As the other ops: on arrays (NumPy or CuPy) each computes at once, in the array's module (Python numbers and
lists go to the current device as floatx and int32); on symbolic tensors it records Keras's operation
(``math_elementwise.py``). ``allclose`` on arrays gives a Python bool, ``ndim`` an int and ``size`` an int32
scalar array, as Keras on torch gives them; ``dtype`` and ``is_tensor`` read their argument.

``stop_gradient`` on an array returns a view of it that ``loss.backward()`` takes for a constant, as a
detached torch tensor is (the gradient does not reach the call that made it); on a loss value, its value
detached from its gradient.
"""
from __future__ import annotations

import numbers

import numpy

from ... import backprop as _backprop
from ..operations import broadcast_shapes
from ..symbolic import is_symbolic
from . import _array, _local, _taking_variables
from . import math_elementwise as _me
from .base import on_one_device, standardize_dtype

__all__ = [
    "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2", "arctanh", "cbrt", "ceil", "floor", "round",
    "trunc", "sign", "signbit", "cosh", "sinh", "tan", "deg2rad", "rad2deg", "erfc", "erfinv", "exp2", "expm1",
    "log10", "log1p", "log2", "logaddexp", "logaddexp2", "reciprocal", "rsqrt", "fabs", "fmod", "mod",
    "floor_divide", "fmax", "fmin", "hypot", "heaviside", "sinc", "i0", "ldexp", "nextafter", "copy",
    "divide_no_nan", "nan_to_num", "isfinite", "isinf", "isnan", "isneginf", "isposinf", "isreal", "isclose",
    "allclose", "real", "imag", "conj", "conjugate", "angle", "gcd", "lcm", "bitwise_and", "bitwise_invert",
    "bitwise_not", "bitwise_or", "bitwise_xor", "bitwise_left_shift", "bitwise_right_shift", "left_shift",
    "right_shift", "stop_gradient", "saturate_cast", "is_tensor", "ndim", "size", "dtype",
]


def _apply_unary(cls, x, *args):
    if is_symbolic(x):
        return cls(*args).apply(x)
    op = _local(cls, *args)
    x = _array(x)
    op.arguments = [None]
    op.dtype = op.result_dtype([x], [None])
    if op.casts_inputs and x.dtype != op.dtype:
        x = x.astype(op.dtype)
    return op.forward_function(x)


def _apply_binary(cls, values, *args):
    """``cls(*args)`` on Keras's positional arguments ``values``: recorded where one is symbolic, else computed
    (the numbers among them kept as numbers, which weigh in the result's dtype as Keras's weak types do)."""
    if any(is_symbolic(v) for v in values):
        return cls(*args).apply(*values)
    op = _local(cls, *args)
    # The two tensors' places take numbers or arrays; isclose's rtol and atol after them are settings.
    values = [v if isinstance(v, numbers.Real) and not isinstance(v, (bool, numpy.generic)) else _array(v)
              for v in values[:2]] + list(values[2:])
    if not any(hasattr(v, "shape") for v in values[:2]):
        values[0] = _array(values[0])
    values = on_one_device(values[:2]) + values[2:]
    arrays = [v for v in values if hasattr(v, "shape")]
    if len(arrays) == 2:
        broadcast_shapes(arrays[0].shape, arrays[1].shape, _me._function_name(cls))
    op.arguments = [None if hasattr(v, "shape") else op.accept_argument(i, v) for i, v in enumerate(values)]
    op.dtype = op.result_dtype(arrays, op.arguments)
    return op.forward_function(*op.operands(arrays))


def _unary_function(cls, name):
    def function(x):
        return _apply_unary(cls, x)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"Keras's ``{name}``: element-wise (``{cls.__name__}`` on symbolic tensors)."
    return function


def _binary_function(cls, name, first="x1", second="x2"):
    """Keras's function ``name(x1, x2)`` of ``cls`` (``name(x, y)`` for the bitwise ones, as Keras names them)."""
    if first == "x1":
        def function(x1, x2):
            return _apply_binary(cls, [x1, x2])
    else:
        def function(x, y):
            return _apply_binary(cls, [x, y])
    function.__name__ = function.__qualname__ = name
    function.__doc__ = (f"Keras's ``{name}({first}, {second})``: element-wise, broadcast as NumPy does "
                        f"(``{cls.__name__}`` on symbolic tensors).")
    return function


arccos = _unary_function(_me.Arccos, "arccos")
arccosh = _unary_function(_me.Arccosh, "arccosh")
arcsin = _unary_function(_me.Arcsin, "arcsin")
arcsinh = _unary_function(_me.Arcsinh, "arcsinh")
arctan = _unary_function(_me.Arctan, "arctan")
arctanh = _unary_function(_me.Arctanh, "arctanh")
cbrt = _unary_function(_me.Cbrt, "cbrt")
ceil = _unary_function(_me.Ceil, "ceil")
floor = _unary_function(_me.Floor, "floor")
trunc = _unary_function(_me.Trunc, "trunc")
sign = _unary_function(_me.Sign, "sign")
signbit = _unary_function(_me.Signbit, "signbit")
cosh = _unary_function(_me.Cosh, "cosh")
sinh = _unary_function(_me.Sinh, "sinh")
tan = _unary_function(_me.Tan, "tan")
deg2rad = _unary_function(_me.Deg2rad, "deg2rad")
rad2deg = _unary_function(_me.Rad2deg, "rad2deg")
erfc = _unary_function(_me.Erfc, "erfc")
erfinv = _unary_function(_me.Erfinv, "erfinv")
exp2 = _unary_function(_me.Exp2, "exp2")
expm1 = _unary_function(_me.Expm1, "expm1")
log10 = _unary_function(_me.Log10, "log10")
log1p = _unary_function(_me.Log1p, "log1p")
log2 = _unary_function(_me.Log2, "log2")
reciprocal = _unary_function(_me.Reciprocal, "reciprocal")
rsqrt = _unary_function(_me.Rsqrt, "rsqrt")
fabs = _unary_function(_me.Fabs, "fabs")
sinc = _unary_function(_me.Sinc, "sinc")
i0 = _unary_function(_me.I0, "i0")
copy = _unary_function(_me.Copy, "copy")
isfinite = _unary_function(_me.Isfinite, "isfinite")
isinf = _unary_function(_me.Isinf, "isinf")
isnan = _unary_function(_me.Isnan, "isnan")
isneginf = _unary_function(_me.Isneginf, "isneginf")
isposinf = _unary_function(_me.Isposinf, "isposinf")
isreal = _unary_function(_me.Isreal, "isreal")
real = _unary_function(_me.Real, "real")
imag = _unary_function(_me.Imag, "imag")
conj = _unary_function(_me.Conjugate, "conj")
conjugate = _unary_function(_me.Conjugate, "conjugate")
angle = _unary_function(_me.Angle, "angle")
bitwise_invert = _unary_function(_me.BitwiseInvert, "bitwise_invert")
bitwise_not = _unary_function(_me.BitwiseNot, "bitwise_not")

arctan2 = _binary_function(_me.Arctan2, "arctan2")
logaddexp = _binary_function(_me.Logaddexp, "logaddexp")
logaddexp2 = _binary_function(_me.Logaddexp2, "logaddexp2")
fmod = _binary_function(_me.Fmod, "fmod")
mod = _binary_function(_me.Mod, "mod")
floor_divide = _binary_function(_me.FloorDivide, "floor_divide")
fmax = _binary_function(_me.Fmax, "fmax")
fmin = _binary_function(_me.Fmin, "fmin")
hypot = _binary_function(_me.Hypot, "hypot")
heaviside = _binary_function(_me.Heaviside, "heaviside")
ldexp = _binary_function(_me.Ldexp, "ldexp")
nextafter = _binary_function(_me.Nextafter, "nextafter")
divide_no_nan = _binary_function(_me.DivideNoNan, "divide_no_nan")
gcd = _binary_function(_me.Gcd, "gcd")
lcm = _binary_function(_me.Lcm, "lcm")
bitwise_and = _binary_function(_me.BitwiseAnd, "bitwise_and", "x", "y")
bitwise_or = _binary_function(_me.BitwiseOr, "bitwise_or", "x", "y")
bitwise_xor = _binary_function(_me.BitwiseXor, "bitwise_xor", "x", "y")
bitwise_left_shift = _binary_function(_me.BitwiseLeftShift, "bitwise_left_shift", "x", "y")
bitwise_right_shift = _binary_function(_me.BitwiseRightShift, "bitwise_right_shift", "x", "y")
left_shift = _binary_function(_me.LeftShift, "left_shift", "x", "y")
right_shift = _binary_function(_me.RightShift, "right_shift", "x", "y")


def round(x, decimals=0):
    """Keras's ``round``: to ``decimals`` places, halves to even; integers keep their dtype; gradient zero."""
    return _apply_unary(_me.Round, x, decimals)


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN and the infinities replaced by numbers (None: the dtype's extremes); integers pass unchanged."""
    return _apply_unary(_me.NanToNum, x, nan, posinf, neginf)


def saturate_cast(x, dtype):
    """``x`` clipped to the range of ``dtype``, then cast to it (no wrap-around, unlike ``cast``)."""
    return _apply_unary(_me.SaturateCast, x, standardize_dtype(dtype))


def isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Where ``|x1 - x2| <= atol + rtol * |x2|``, a bool tensor (NaNs equal with ``equal_nan``)."""
    return _apply_binary(_me.Isclose, [x1, x2, rtol, atol], equal_nan)


def allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Whether ``isclose`` holds everywhere: a Python bool on arrays, a bool scalar tensor on symbolic ones."""
    if is_symbolic(x1) or is_symbolic(x2):
        return _me.AllClose(rtol, atol, equal_nan).apply(x1, x2)
    return bool(_apply_binary(_me.AllClose, [x1, x2], rtol, atol, equal_nan))


def ndim(x):
    """The number of axes: an int for an array, an ``Ndim`` operation's int32 scalar for a symbolic tensor."""
    if is_symbolic(x):
        return _me.Ndim().apply(x)
    return int(x.ndim) if hasattr(x, "ndim") else numpy.ndim(x)


def size(x):
    """The number of elements, an int32 scalar of the array's module (``Size`` on symbolic tensors)."""
    return _apply_unary(_me.Size, x)


def dtype(x):
    """The dtype's name, as Keras standardises it: ``"float32"``, ``"int32"``, ``"bool"``, ..."""
    return standardize_dtype(x.dtype)


def is_tensor(x):
    """Whether ``x`` is a tensor of the backend: a NumPy or CuPy array (not a symbolic tensor, as in Keras)."""
    return not is_symbolic(x) and type(x).__module__.split(".")[0] in ("numpy", "cupy") and \
        hasattr(x, "shape") and not isinstance(x, numpy.generic)


def stop_gradient(variable):
    """``variable`` itself, through which no gradient goes: on a symbolic tensor Keras's ``StopGradient``, whose
    backward sends nothing; on an array a view that backward takes for a constant; on a loss value its value."""
    if is_symbolic(variable):
        return _me.StopGradient().apply(variable)
    if isinstance(variable, _backprop.LossValue):
        return variable.detach()
    return _array(variable).view()


# On arrays, loss.backward() refuses the outputs of these functions where they come from a recorded call
# (gpu_dl/backprop.py); stop_gradient is the exception: its output is a constant to backward, as it says.
for _name in __all__:
    _function = _taking_variables(globals()[_name], traced=_name not in ("dtype", "is_tensor", "ndim"))
    globals()[_name] = _function if _name in ("stop_gradient", "dtype", "is_tensor", "ndim") else \
        _backprop.followed(_function, _name)
del _name, _function
