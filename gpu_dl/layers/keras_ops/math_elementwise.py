"""The element-wise maths of ``keras.ops`` beyond the basic arithmetic: inverse and hyperbolic trigonometry,
roots, logarithms and exponentials of other bases, rounding, ``erfc``/``erfinv``/``i0``/``sinc``, the
two-tensor functions (``arctan2``, ``logaddexp``, ``hypot``, ``mod``, ``fmax``, ``heaviside``, ``ldexp``, ...),
the predicates (``isnan``, ``isclose``, ``signbit``, ...), the bitwise operations on integers, the real-number
cases of the complex functions (``real``, ``imag``, ``conj``, ``angle``), ``stop_gradient``,
``saturate_cast``, ``ndim`` and ``size``: Keras's classes, modules and configs, with hand-written backwards.

Dtypes follow what Keras 3.15 computes on the torch backend for float32, integer and bool inputs: the
functions of real analysis, ``ceil`` and ``floor`` included, give floatx for integers and bools; ``round``,
``trunc``, ``sign``, ``copy``, ``nan_to_num``, ``real``/``imag``/``conj``, the bitwise functions and
``mod``/``fmod``/``floor_divide``/``fmax``/``fmin``/``gcd``/``lcm`` keep integers; the predicates give bool. Where
Keras 3.15 turns a 64-bit result into 32 bits (its ``result_type``: ``arctan2`` of two float64 tensors is
float32 there), gpu_dl keeps float64 as its other operations do, so float64 models (gradient checks) stay
float64; integer tensors of two widths promote as NumPy's do. A Python float beside an integer tensor makes
the result floatx, as in Keras.

Gradients: exact where the function is differentiable; zero for the piecewise-constant ones (``floor``,
``ceil``, ``round``, ``trunc``, ``sign``, ``floor_divide``, ``angle``, ``imag``), as Keras on torch gives
(torch has none for ``floor_divide`` and ``heaviside``; gpu_dl gives zero, and ``heaviside``'s x2 its exact
one); none for integer and bool results, nor through ``stop_gradient``, whose backward sends nothing.
"""
from __future__ import annotations

import math
import numbers
import re

import numpy

from ... import backend
from ..operations import Operation
from .base import CORE, MATH, NUMPY, KerasOperation, WithDtype, _float, _xp


def _c(x, value):
    """``value`` as a scalar of ``x``'s dtype (float32 stays float32)."""
    return x.dtype.type(value)


def _special(name):
    """SciPy's (cupyx's on CuPy) special function ``name`` in the input's dtype; imported at first use, as the
    exact GELU's ``erf`` is, so programs that never ask for it do not load SciPy."""
    def function(x):
        if _xp(x).__name__ == "cupy":
            from cupyx.scipy import special
        else:
            from scipy import special
        return getattr(special, name)(x).astype(x.dtype, copy=False)
    function.__name__ = name
    return function


_erfc, _erfinv, _i1 = _special("erfc"), _special("erfinv"), _special("i1")


def _kind(dtype):
    return numpy.dtype(dtype).kind


def _function_name(cls):
    """The ``keras.ops`` function that records ``cls``: its class name in snake case (``bitwise_and``)."""
    return getattr(cls, "function_name", None) or re.sub("(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


_TAKES = {"biu": "an integer or bool", "iu": "an integer"}


def _number(value, argument, where, optional=False):
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: `{argument}` must be a number{' or None' if optional else ''}, got {value!r:.80} "
                        f"of type {type(value).__name__}.")
    return value.item() if isinstance(value, numpy.generic) else value


# ------------------------------------------------------------------ one tensor
class Unary(KerasOperation):
    """A function of one tensor, element-wise: ``function(x)``, and ``derivative(x, y)`` (None: the function is
    piecewise constant, its gradient zero). ``kinds`` are the dtype kinds it takes."""

    keeps_integers = False
    kinds = "biuf"
    function = derivative = None

    def _refuse(self, dtype):
        if _kind(dtype) not in self.kinds:
            raise TypeError(f"{_function_name(type(self))}: `x` must be {_TAKES.get(self.kinds, 'a real')} tensor, "
                            f"got dtype {numpy.dtype(dtype)}.")

    def result_dtype(self, tensors, arguments):
        self._refuse(tensors[0].dtype)
        return super().result_dtype(tensors, arguments)

    def forward_array(self, x):
        return type(self).function(x)

    def backward_function(self, dy, operands, y):
        x, = operands
        if type(self).derivative is None:
            return [_xp(dy).zeros_like(dy)]
        return [dy * type(self).derivative(x, y)]


def _unary(name, function, derivative, module=NUMPY, keeps_integers=False, kinds="biuf", doc=None):
    return type(name, (Unary,), {
        "function": staticmethod(function), "derivative": None if derivative is None else staticmethod(derivative),
        "keras_module": module, "keeps_integers": keeps_integers, "kinds": kinds, "__module__": __name__,
        "__doc__": doc or f"Keras's {module} {name}: element-wise, one tensor."})


def _sq(x):
    return x * x


Arccos = _unary("Arccos", lambda x: _xp(x).arccos(x), lambda x, y: -1 / _xp(x).sqrt(_c(x, 1) - _sq(x)))
Arccosh = _unary("Arccosh", lambda x: _xp(x).arccosh(x), lambda x, y: 1 / _xp(x).sqrt(_sq(x) - _c(x, 1)))
Arcsin = _unary("Arcsin", lambda x: _xp(x).arcsin(x), lambda x, y: 1 / _xp(x).sqrt(_c(x, 1) - _sq(x)))
Arcsinh = _unary("Arcsinh", lambda x: _xp(x).arcsinh(x), lambda x, y: 1 / _xp(x).sqrt(_sq(x) + _c(x, 1)))
Arctan = _unary("Arctan", lambda x: _xp(x).arctan(x), lambda x, y: 1 / (_sq(x) + _c(x, 1)))
Arctanh = _unary("Arctanh", lambda x: _xp(x).arctanh(x), lambda x, y: 1 / (_c(x, 1) - _sq(x)))
Cbrt = _unary("Cbrt", lambda x: _xp(x).cbrt(x), lambda x, y: 1 / (_c(x, 3) * _sq(y)))
Cosh = _unary("Cosh", lambda x: _xp(x).cosh(x), lambda x, y: _xp(x).sinh(x))
Sinh = _unary("Sinh", lambda x: _xp(x).sinh(x), lambda x, y: _xp(x).cosh(x))
Tan = _unary("Tan", lambda x: _xp(x).tan(x), lambda x, y: _c(x, 1) + _sq(y))
Deg2rad = _unary("Deg2rad", lambda x: x * _c(x, math.pi / 180), lambda x, y: _c(x, math.pi / 180))
Rad2deg = _unary("Rad2deg", lambda x: x * _c(x, 180 / math.pi), lambda x, y: _c(x, 180 / math.pi))
Exp2 = _unary("Exp2", lambda x: _xp(x).exp2(x), lambda x, y: y * _c(x, math.log(2)))
Expm1 = _unary("Expm1", lambda x: _xp(x).expm1(x), lambda x, y: y + _c(x, 1))
Log10 = _unary("Log10", lambda x: _xp(x).log10(x), lambda x, y: 1 / (x * _c(x, math.log(10))))
Log1p = _unary("Log1p", lambda x: _xp(x).log1p(x), lambda x, y: 1 / (x + _c(x, 1)))
Log2 = _unary("Log2", lambda x: _xp(x).log2(x), lambda x, y: 1 / (x * _c(x, math.log(2))))
Reciprocal = _unary("Reciprocal", lambda x: _c(x, 1) / x, lambda x, y: -_sq(y))
Fabs = _unary("Fabs", lambda x: _xp(x).fabs(x), lambda x, y: _xp(x).sign(x))
Ceil = _unary("Ceil", lambda x: _xp(x).ceil(x), None)
Floor = _unary("Floor", lambda x: _xp(x).floor(x), None)
Erfc = _unary("Erfc", _erfc, lambda x, y: _xp(x).exp(-_sq(x)) * _c(x, -2 / math.sqrt(math.pi)), module=MATH)
Erfinv = _unary("Erfinv", _erfinv, lambda x, y: _xp(x).exp(_sq(y)) * _c(x, math.sqrt(math.pi) / 2), module=MATH)
Rsqrt = _unary("Rsqrt", lambda x: _c(x, 1) / _xp(x).sqrt(x), lambda x, y: _c(x, -0.5) * y * _sq(y), module=MATH)
I0 = _unary("I0", lambda x: _xp(x).i0(x).astype(x.dtype, copy=False), lambda x, y: _i1(x),
            doc="Keras's I0: the modified Bessel function of the first kind, order 0; its derivative is i1.")


def _sinc_derivative(x, y):
    xp = _xp(x)
    zero = x == 0
    safe = xp.where(zero, _c(x, 1), x)
    return xp.where(zero, _c(x, 0), (xp.cos(_c(x, math.pi) * x) - y) / safe)


Sinc = _unary("Sinc", lambda x: _xp(x).sinc(x), _sinc_derivative,
              doc="Keras's Sinc: sin(pi x) / (pi x), 1 at 0 (the normalised sinc, NumPy's and torch's).")


def _angle(x):
    """The angle of a real number: pi for the negative ones, 0 for the rest (-0.0 included, as torch), NaN for
    NaN."""
    xp = _xp(x)
    return xp.where(xp.isnan(x), x, xp.where(x < 0, _c(x, math.pi), _c(x, 0)))


Angle = _unary("Angle", _angle, None,
               doc="Keras's Angle on real tensors: pi where x < 0, else 0 (NaN stays NaN); gradient zero.")


# the rounding and sign functions keep integers (a bool tensor passes through unchanged)
def _on_floats(function):
    def applied(x):
        return function(x) if _float(x.dtype) else x.copy()
    return applied


Trunc = _unary("Trunc", _on_floats(lambda x: _xp(x).trunc(x)), None, keeps_integers=True)
Sign = _unary("Sign", lambda x: x.copy() if x.dtype == bool else _xp(x).sign(x), None, keeps_integers=True)
Copy = _unary("Copy", lambda x: x.copy(), lambda x, y: _c(x, 1), keeps_integers=True,
              doc="Keras's Copy: a new tensor of the same values; its gradient passes unchanged.")
Real = _unary("Real", lambda x: x.copy(), lambda x, y: _c(x, 1), keeps_integers=True,
              doc="Keras's Real on real tensors: the values themselves.")
Imag = _unary("Imag", lambda x: _xp(x).zeros_like(x), None, keeps_integers=True,
              doc="Keras's Imag on real tensors: zeros (Keras on torch refuses a real tensor; NumPy gives zeros).")
Conjugate = _unary("Conjugate", lambda x: x.copy(), lambda x, y: _c(x, 1), keeps_integers=True,
                   doc="Keras's Conjugate (``conj`` and ``conjugate``) on real tensors: the values themselves.")
BitwiseInvert = _unary("BitwiseInvert", lambda x: _xp(x).invert(x), None, keeps_integers=True, kinds="biu")
BitwiseNot = _unary("BitwiseNot", lambda x: _xp(x).invert(x), None, keeps_integers=True, kinds="biu")


class Round(Unary):
    """``round(x, decimals=0)``: to the nearest multiple of ``10 ** -decimals``, halves to even (NumPy's and
    torch's); integers keep their dtype. Gradient zero."""

    keeps_integers = True
    config_keys = ("decimals",)

    def __init__(self, decimals=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(decimals, bool) or not isinstance(decimals, numbers.Integral):
            raise TypeError(f"round: `decimals` must be an integer, got {decimals!r:.80} of type "
                            f"{type(decimals).__name__}.")
        self.decimals = int(decimals)

    def forward_array(self, x):
        if x.dtype == bool or (not _float(x.dtype) and self.decimals >= 0):
            return x.copy()
        xp = _xp(x)
        if not _float(x.dtype):
            # Integers to tens, hundreds, ...: rounded in float64 (exact below 2 ** 53), as Keras rounds them in
            # floats, without relying on integer support for negative decimals in the array module.
            factor = 10.0 ** -self.decimals
            return (xp.rint(x / factor) * factor).astype(x.dtype)
        return xp.round(x, self.decimals)


class NanToNum(Unary):
    """``nan_to_num(x, nan=0.0, posinf=None, neginf=None)``: NaN and the infinities replaced (None: the
    dtype's largest and smallest numbers); the gradient passes where x is finite."""

    keeps_integers = True
    config_keys = ("nan", "posinf", "neginf")

    def __init__(self, nan=0.0, posinf=None, neginf=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.nan = _number(nan, "nan", "nan_to_num")
        self.posinf = _number(posinf, "posinf", "nan_to_num", optional=True)
        self.neginf = _number(neginf, "neginf", "nan_to_num", optional=True)

    def forward_array(self, x):
        if not _float(x.dtype):
            return x.copy()
        return _xp(x).nan_to_num(x, nan=self.nan, posinf=self.posinf, neginf=self.neginf)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [dy * _xp(x).isfinite(x)]


class StopGradient(Unary):
    """``stop_gradient(variable)``: the tensor itself forward; backward sends nothing, so what computed it gets
    no gradient through this path (a weight read only through it is not trained by it)."""

    keras_module = CORE
    keeps_integers = True

    def forward_array(self, x):
        return x

    def backward(self, dy):
        return None


class Predicate(Unary):
    """A bool test of one tensor, element-wise (``isnan``, ``signbit``, ...): no gradient."""

    casts_inputs = False

    def result_dtype(self, tensors, arguments):
        self._refuse(tensors[0].dtype)
        return "bool"

    def backward(self, dy):
        return None


def _predicate(name, on_floats, on_integers):
    """``on_floats(x)`` for float tensors, ``on_integers(x)`` for integer and bool ones."""
    def function(x):
        return on_floats(x) if _float(x.dtype) else on_integers(x)
    return type(name, (Predicate,), {"function": staticmethod(function), "__module__": __name__,
                                     "__doc__": f"Keras's {NUMPY} {name}: a bool tensor, no gradient."})


def _none(x):
    return _xp(x).zeros(x.shape, dtype=bool)


def _all(x):
    return _xp(x).ones(x.shape, dtype=bool)


Signbit = _predicate("Signbit", lambda x: _xp(x).signbit(x), lambda x: x < 0 if x.dtype.kind == "i" else _none(x))
Isfinite = _predicate("Isfinite", lambda x: _xp(x).isfinite(x), _all)
Isinf = _predicate("Isinf", lambda x: _xp(x).isinf(x), _none)
Isnan = _predicate("Isnan", lambda x: _xp(x).isnan(x), _none)
Isneginf = _predicate("Isneginf", lambda x: _xp(x).isinf(x) & (x < 0), _none)
Isposinf = _predicate("Isposinf", lambda x: _xp(x).isinf(x) & (x > 0), _none)
Isreal = _predicate("Isreal", _all, _all)


class Ndim(Predicate):
    """``ndim(x)`` on a symbolic tensor: the rank, an int32 scalar (Keras 3.15's symbolic result claims shape
    ``(rank,)`` and floatx; the value it computes is the rank)."""

    kinds = "biuf"

    def result_dtype(self, tensors, arguments):
        return "int32"

    def output_shape_of(self, arguments, shapes):
        return ()

    def forward_array(self, x):
        return _xp(x).asarray(x.ndim, dtype="int32")


class Size(Ndim):
    """``size(x)`` on a symbolic tensor: the number of elements, an int32 scalar, counted when it runs (the
    batch size is not known before)."""

    def forward_array(self, x):
        return _xp(x).asarray(x.size, dtype="int32")


def _exact(value):
    """A NumPy number as the Python number of the same value (which compare exactly across ints and floats)."""
    return value.item() if hasattr(value, "item") else value


class SaturateCast(WithDtype, Unary):
    """``saturate_cast(x, dtype)``: ``x`` clipped to what ``dtype`` holds (and ``x``'s dtype holds), then cast, as
    Keras does; between floats the gradient passes where x was inside the limits."""

    keras_module = CORE

    def __init__(self, dtype, name=None, **kwargs):     # Keras's saturate_cast has no default dtype
        super().__init__(dtype, name=name, **kwargs)

    @staticmethod
    def _range(dtype):
        dtype = numpy.dtype(dtype)
        if dtype == bool:
            return 0, 1
        info = numpy.iinfo(dtype) if dtype.kind in "iu" else numpy.finfo(dtype)
        return info.min, info.max

    def limits(self, dtype):
        """The clip's bounds in the input's ``dtype``, nudged toward zero where the target's bound does not fit
        in it (float32's nearest to int32's largest is above it), as Keras means to nudge them. The bounds are
        compared as Python numbers, exactly (Keras 3.15 compares them in the input's dtype under NumPy 2, which
        misses that case: its float32 3e9 saturate-cast to int32 wraps to the smallest int32)."""
        in_min, in_max = self._range(dtype)
        out_min, out_max = self._range(self.target)
        low = numpy.asarray(max(_exact(in_min), _exact(out_min))).astype(dtype)
        if _exact(low) < _exact(out_min):
            low = numpy.nextafter(low, 0, dtype=dtype)
        high = numpy.asarray(min(_exact(in_max), _exact(out_max))).astype(dtype)
        if _exact(high) > _exact(out_max):
            high = numpy.nextafter(high, 0, dtype=dtype)
        return numpy.dtype(dtype).type(low), numpy.dtype(dtype).type(high)

    def forward_array(self, x):
        low, high = self.limits(x.dtype)
        return _xp(x).clip(x, low, high).astype(self.target)

    def backward_function(self, dy, operands, y):
        x, = operands
        if not (_float(x.dtype) and _float(self.target)):
            return [None]
        low, high = self.limits(x.dtype)
        return [(dy * ((x >= low) & (x <= high))).astype(x.dtype)]


# ------------------------------------------------------------------ two tensors
def _is_float_constant(value):
    return isinstance(value, float) or (isinstance(value, numpy.ndarray) and value.dtype.kind == "f")


class Binary(KerasOperation):
    """A function of two tensors (or a tensor and a number or array), element-wise, broadcast as NumPy does:
    ``function(a, b)`` and ``derivatives(a, b, y)``, the factors of the gradient for each (None: zero)."""

    arity = 2
    kinds = "biuf"
    float_result = False       # integers give floatx
    bool_result = "bool"       # the dtype of two bool tensors' result
    casts_inputs = False
    function = derivatives = None

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments, shapes)

    @classmethod
    def dtype_of(cls, dtypes, constants):
        """The result's dtype for tensors of ``dtypes`` and constants (Python numbers, host arrays) beside them."""
        name = _function_name(cls)
        for dtype in list(dtypes) + [c.dtype for c in constants if isinstance(c, numpy.ndarray)]:
            if _kind(dtype) not in cls.kinds:
                takes = {"biu": "integer or bool", "iu": "integer"}.get(cls.kinds, "real")
                raise TypeError(f"{name}: the arguments must be {takes} tensors, got dtype {numpy.dtype(dtype)}.")
        if "f" not in cls.kinds and _python_floats(constants):
            raise TypeError(f"{name}: the arguments must be integers, got a float among {constants!r:.80}.")
        floats = [d for d in dtypes if _float(d)]
        if floats:
            return numpy.result_type(*floats).name
        if cls.float_result or any(_is_float_constant(c) for c in constants):
            return backend.floatx()
        integers = [d for d in dtypes if _kind(d) in "iu"]
        if integers:
            return numpy.result_type(*integers).name
        if any(isinstance(c, numbers.Integral) or (isinstance(c, numpy.ndarray) and c.dtype.kind in "iu")
               for c in constants):
            return "int32"
        return cls.bool_result

    def result_dtype(self, tensors, arguments):
        return self.dtype_of([t.dtype for t in tensors], [a for a in arguments if a is not None])

    def operand_dtype(self, position, dtype):
        """The dtype the argument at ``position`` (of ``dtype``) is computed in."""
        return self.dtype

    def operands(self, arrays):
        xp = backend.array_module(*arrays)
        given = iter(arrays)
        operands = []
        for position, a in enumerate(self.arguments):
            if a is None:
                array = next(given)
                target = self.operand_dtype(position, array.dtype)
                operands.append(array if array.dtype == target else array.astype(target))
            elif isinstance(a, numpy.ndarray):
                key = (xp.__name__, position)
                if key not in self._on_device:
                    self._on_device[key] = xp.asarray(a.astype(self.operand_dtype(position, a.dtype)))
                operands.append(self._on_device[key])
            else:
                dtype = numpy.dtype(self.operand_dtype(position, numpy.asarray(a).dtype))
                operands.append(dtype.type(a))
        return operands

    def forward_function(self, a, b):
        return type(self).function(a, b)

    def backward_function(self, dy, operands, y):
        a, b = operands
        if type(self).derivatives is None:
            return [_xp(dy).zeros_like(dy), _xp(dy).zeros_like(dy)]
        da, db = type(self).derivatives(a, b, y)
        return [None if d is None else dy * d for d in (da, db)]


def _python_floats(constants):
    return [c for c in constants if _is_float_constant(c)]


def _binary(name, function, derivatives, kinds="biuf", float_result=False, bool_result="bool", doc=None):
    return type(name, (Binary,), {
        "function": staticmethod(function),
        "derivatives": None if derivatives is None else staticmethod(derivatives),
        "kinds": kinds, "float_result": float_result, "bool_result": bool_result, "__module__": __name__,
        "__doc__": doc or f"Keras's {NUMPY} {name}: element-wise, two tensors broadcast as NumPy does."})


def _xp_of(a, b):
    """The array module of the operands, one of which may be a NumPy scalar (a constant beside a CuPy tensor)."""
    return _xp(b) if isinstance(a, numpy.generic) or not hasattr(a, "shape") else _xp(a)


def _arctan2_derivatives(a, b, y):
    r = a * a + b * b
    return b / r, -a / r


def _logaddexp_derivatives(a, b, y):
    xp = _xp(y)
    return xp.exp(a - y), xp.exp(b - y)


def _logaddexp2_derivatives(a, b, y):
    xp = _xp(y)
    return xp.exp2(a - y), xp.exp2(b - y)


def _hypot_derivatives(a, b, y):
    xp = _xp(y)
    zero = y == 0
    safe = xp.where(zero, _c(y, 1), y)
    return xp.where(zero, _c(y, 0), a / safe), xp.where(zero, _c(y, 0), b / safe)


def _divide_no_nan(a, b):
    xp = _xp_of(a, b)
    zero = b == 0
    y = a / xp.where(zero, b.dtype.type(1), b)
    return xp.where(zero, y.dtype.type(0), y)


def _divide_no_nan_derivatives(a, b, y):
    xp = _xp(y)
    zero = b == 0
    safe = xp.where(zero, _c(y, 1), b)
    return xp.where(zero, _c(y, 0), 1 / safe), xp.where(zero, _c(y, 0), -a / (safe * safe))


def _fmax_derivatives(a, b, y):
    # the module's ufunc, not `a >= b`: a NumPy scalar compared with a CuPy array hands CuPy a host 0-d array
    first = _xp(y).greater_equal(a, b) | _xp(y).isnan(b)      # ties and a NaN in b go to a, as torch's fmax does
    return first, ~first


def _fmin_derivatives(a, b, y):
    first = _xp(y).less_equal(a, b) | _xp(y).isnan(b)
    return first, ~first


Arctan2 = _binary("Arctan2", lambda a, b: _xp_of(a, b).arctan2(a, b), _arctan2_derivatives, float_result=True)
Logaddexp = _binary("Logaddexp", lambda a, b: _xp_of(a, b).logaddexp(a, b), _logaddexp_derivatives,
                    float_result=True)
Logaddexp2 = _binary("Logaddexp2", lambda a, b: _xp_of(a, b).logaddexp2(a, b), _logaddexp2_derivatives,
                     float_result=True)
Hypot = _binary("Hypot", lambda a, b: _xp_of(a, b).hypot(a, b), _hypot_derivatives, float_result=True)
Heaviside = _binary("Heaviside", lambda a, b: _xp_of(a, b).heaviside(a, b), lambda a, b, y: (None, a == 0),
                    float_result=True, doc="Keras's Heaviside: 0 where x1 < 0, 1 where x1 > 0, x2 where x1 == 0; the "
                    "gradient reaches x2 where x1 == 0, x1 none (zero).")
Nextafter = _binary("Nextafter", lambda a, b: _xp_of(a, b).nextafter(a, b), lambda a, b, y: (_c(y, 1), None),
                    float_result=True, doc="Keras's Nextafter: the next number of the dtype after x1 toward x2 (in the "
                    "inputs' dtype: Keras 3.15 steps in float64 and rounds back to float32, which gives x1 there). "
                    "Its gradient is 1 for x1 and 0 for x2.")
DivideNoNan = _binary("DivideNoNan", _divide_no_nan, _divide_no_nan_derivatives, float_result=True,
                      doc="Keras's DivideNoNan: x1 / x2, and 0 where x2 == 0 (its gradient too).")
Fmod = _binary("Fmod", lambda a, b: _xp_of(a, b).fmod(a, b), lambda a, b, y: (1, -_xp(y).trunc(a / b)),
               bool_result="int32", doc="Keras's Fmod: the remainder of x1 / x2 truncated (the sign of x1).")
Mod = _binary("Mod", lambda a, b: _xp_of(a, b).mod(a, b), lambda a, b, y: (1, -_xp(y).floor(a / b)),
              bool_result="int32", doc="Keras's Mod: the remainder of x1 / x2 floored (the sign of x2).")
FloorDivide = _binary("FloorDivide", lambda a, b: _xp_of(a, b).floor_divide(a, b), None)
Fmax = _binary("Fmax", lambda a, b: _xp_of(a, b).fmax(a, b), _fmax_derivatives,
               doc="Keras's Fmax: the larger, a NaN ignored where the other is a number.")
Fmin = _binary("Fmin", lambda a, b: _xp_of(a, b).fmin(a, b), _fmin_derivatives,
               doc="Keras's Fmin: the smaller, a NaN ignored where the other is a number.")
Gcd = _binary("Gcd", lambda a, b: _xp_of(a, b).gcd(a, b), None, kinds="iu")
Lcm = _binary("Lcm", lambda a, b: _xp_of(a, b).lcm(a, b), None, kinds="iu")
BitwiseAnd = _binary("BitwiseAnd", lambda a, b: _xp_of(a, b).bitwise_and(a, b), None, kinds="biu")
BitwiseOr = _binary("BitwiseOr", lambda a, b: _xp_of(a, b).bitwise_or(a, b), None, kinds="biu")
BitwiseXor = _binary("BitwiseXor", lambda a, b: _xp_of(a, b).bitwise_xor(a, b), None, kinds="biu")
BitwiseLeftShift = _binary("BitwiseLeftShift", lambda a, b: _xp_of(a, b).left_shift(a, b), None, kinds="iu")
BitwiseRightShift = _binary("BitwiseRightShift", lambda a, b: _xp_of(a, b).right_shift(a, b), None, kinds="iu")
LeftShift = _binary("LeftShift", lambda a, b: _xp_of(a, b).left_shift(a, b), None, kinds="iu")
RightShift = _binary("RightShift", lambda a, b: _xp_of(a, b).right_shift(a, b), None, kinds="iu")


class Ldexp(Binary):
    """``ldexp(x1, x2)``: x1 times 2 to the power x2, an integer tensor or number (a TypeError otherwise, as in
    Keras); floatx for an integer x1. The gradient reaches x1 only."""

    float_result = True

    @classmethod
    def exponent_check(cls, dtype):
        if _kind(dtype) not in "iu":
            raise TypeError(f"ldexp: the exponent `x2` must be an integer tensor or number, got dtype "
                            f"{numpy.dtype(dtype)}.")

    def result_dtype(self, tensors, arguments):
        x1, x2 = arguments
        self.exponent_check(tensors[-1].dtype if x2 is None else numpy.asarray(x2).dtype)
        return self.dtype_of([tensors[0].dtype], []) if x1 is None else self.dtype_of([], [x1])

    def operand_dtype(self, position, dtype):
        return self.dtype if position == 0 else dtype

    @staticmethod
    def function(a, b):
        return _xp_of(a, b).ldexp(a, b).astype(a.dtype if hasattr(a, "dtype") else None, copy=False)

    def backward_function(self, dy, operands, y):
        a, b = operands
        return [dy * _xp(dy).ldexp(_xp(dy).ones_like(dy), b), None]


class Isclose(Binary):
    """``isclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False)``: ``|x1 - x2| <= atol + rtol * |x2|``, a bool
    tensor, no gradient. ``rtol`` and ``atol`` are arguments of the call (Keras records them in the node),
    ``equal_nan`` the operation's setting."""

    arity = 4
    config_keys = ("equal_nan",)

    def __init__(self, equal_nan=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.equal_nan = bool(equal_nan)

    def accept_argument(self, position, value):
        if position >= 2:
            return _number(value, ("rtol", "atol")[position - 2], "isclose")
        return super().accept_argument(position, value)

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments[:2], shapes)

    def result_dtype(self, tensors, arguments):
        self.common = self.dtype_of([t.dtype for t in tensors], [a for a in arguments[:2] if a is not None])
        return "bool"

    def operand_dtype(self, position, dtype):
        return self.common if position < 2 else dtype

    def forward_function(self, a, b, rtol, atol):
        return _xp_of(a, b).isclose(a, b, rtol=float(rtol), atol=float(atol), equal_nan=self.equal_nan)

    def operands(self, arrays):
        operands = super().operands(arrays)
        return operands[:2] + [float(a) for a in self.arguments[2:]]

    def backward(self, dy):
        count = sum(a is None for a in self.arguments)
        return None if count == 1 else [None] * count


class AllClose(Isclose):
    """``allclose(x1, x2, rtol=1e-5, atol=1e-8, equal_nan=False)`` on symbolic tensors: one bool scalar for the
    whole batch, no gradient."""

    arity = 2
    config_keys = ("rtol", "atol", "equal_nan")
    function_name = "allclose"

    def __init__(self, rtol=1e-5, atol=1e-8, equal_nan=False, name=None, **kwargs):
        super().__init__(equal_nan=equal_nan, name=name, **kwargs)
        self.rtol, self.atol = _number(rtol, "rtol", "allclose"), _number(atol, "atol", "allclose")

    def accept_argument(self, position, value):
        return Binary.accept_argument(self, position, value)

    def output_shape_of(self, arguments, shapes):
        Operation.output_shape_of(self, arguments, shapes)      # the shapes must broadcast
        return ()

    def operands(self, arrays):
        return Binary.operands(self, arrays)

    def forward_function(self, a, b):
        xp = _xp_of(a, b)
        return xp.asarray(xp.isclose(a, b, rtol=float(self.rtol), atol=float(self.atol),
                                     equal_nan=self.equal_nan).all())


OPERATIONS = {cls.__name__: cls for cls in (
    Arccos, Arccosh, Arcsin, Arcsinh, Arctan, Arctanh, Cbrt, Cosh, Sinh, Tan, Deg2rad, Rad2deg, Exp2, Expm1, Log10,
    Log1p, Log2, Reciprocal, Fabs, Ceil, Floor, Erfc, Erfinv, Rsqrt, I0, Sinc, Angle, Trunc, Sign, Copy, Real, Imag,
    Conjugate, BitwiseInvert, BitwiseNot, Round, NanToNum, StopGradient, Signbit, Isfinite, Isinf, Isnan, Isneginf,
    Isposinf, Isreal, Ndim, Size, SaturateCast, Arctan2, Logaddexp, Logaddexp2, Hypot, Heaviside, Nextafter,
    DivideNoNan, Fmod, Mod, FloorDivide, Fmax, Fmin, Gcd, Lcm, BitwiseAnd, BitwiseOr, BitwiseXor, BitwiseLeftShift,
    BitwiseRightShift, LeftShift, RightShift, Ldexp, Isclose, AllClose)}
