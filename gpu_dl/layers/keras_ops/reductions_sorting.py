"""The reductions, quantiles, sorting, searching, segment and scatter operations of ``gpu_dl.ops`` on symbolic
tensors: Keras's classes of ``keras.src.ops.numpy``, ``keras.src.ops.math`` and ``keras.src.ops.core`` with
Keras's constructor arguments as their configs. The maths is ``ops/reductions_sorting.py``.

Dtypes follow Keras's: ``amax``, ``amin``, ``ptp``, ``nanmax``, ``nanmin``, ``sort``, ``trace``, ``cumprod``,
``nancumsum``, ``nancumprod``, ``nansum``, ``nanprod``, ``diff``, the segment and scatter operations keep an
integer input's dtype (bool becomes int32 where Keras's does); ``average``, the quantiles, ``median``,
``nanmean``, ``nanvar``, ``nanstd``, ``trapezoid``, ``correlate`` and ``corrcoef`` give floatx for integers
(a float input keeps its dtype); the indices (``argsort``, ``argpartition``, ``nanargmax``, ``top_k``'s,
``searchsorted``, ``digitize``, ``bincount``'s) and counts are int32, ``in_top_k`` and ``isin`` bool, none with
a gradient; ``select`` gives its choices' dtype, with gradients to the choices and a tensor default. Where
Keras's torch backend turns float64 into float32 (``median``, ``average``, the quantiles),
float64 stays float64 here, as for the other ops: gradient checks run in it.
"""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import numpy_functions as fn
from ...ops import reductions_sorting as rs
from ...ops.arithmetic import reduce_to_shape
from ..operations import Operation, broadcast_shapes
from ..symbolic import is_symbolic
from .base import (CORE, MATH, GradientToFirst, KerasOperation, WithoutGradient, _axes, _axis_setting, _float,
                   _reduced_shape, _several_outputs, _xp)
from .reductions import Arg, Cumulative, Max, Reduction


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


# ------------------------------------------------------------------ reductions
class Amax(Max):
    config_keys = ("axis", "keepdims")

    def __init__(self, axis=None, keepdims=False, name=None, **kwargs):
        super().__init__(axis=axis, keepdims=keepdims, initial=None, name=name, **kwargs)


class Amin(Amax):
    largest = False


class Ptp(Reduction):
    def forward_array(self, x):
        if x.dtype == bool:
            raise TypeError(f"{self._where()}: ptp subtracts, which bool tensors do not; cast them first.")
        axes = fn.normalize_axes(self.axis, x.ndim)
        return x.max(axis=axes, keepdims=self.keepdims) - x.min(axis=axes, keepdims=self.keepdims)

    def backward_function(self, dy, operands, y):
        x, = operands
        axes = fn.normalize_axes(self.axis, x.ndim)
        high, low = x.max(axis=axes, keepdims=self.keepdims), x.min(axis=axes, keepdims=self.keepdims)
        return [rs.ptp_backward(dy, x, high, low, self.axis, self.keepdims)]


class CountNonzero(WithoutGradient, Reduction):
    """``count_nonzero(x, axis=None)``: int32 counts, no gradient."""

    fixed_dtype = "int32"
    config_keys = ("axis",)
    casts_inputs = False

    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(axis=axis, keepdims=False, name=name, **kwargs)

    def forward_array(self, x):
        return (x != 0).sum(axis=fn.normalize_axes(self.axis, x.ndim)).astype("int32")


_KEEP = object()


class Average(Reduction):
    """``average(x, axis=None, weights=None)``: the weights (None, a constant array or a symbolic tensor, of x's
    shape or of the axis's length) are the call's keyword argument, as Keras records it. Weights given as a
    tensor are the node's second input and take their gradient."""

    config_keys = ("axis",)
    keeps_integers = False
    arity = None                # x, and weights given as a tensor
    keyword_arguments = tensor_keywords = ("weights",)
    weighting = None

    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(axis=axis, keepdims=False, name=name, **kwargs)
        if self.axis is not None and not isinstance(self.axis, int):
            raise ValueError(f"{self._where()} takes one axis or None, got {axis!r}.")

    def apply(self, x, weights=_KEEP):
        if not is_symbolic(x):
            raise TypeError(f"{self._where()}: x must be a symbolic tensor here, got {x!r:.80}.")
        if weights is _KEEP:                    # a later call on tensors: the weights of the first
            weights = self.weighting
        if is_symbolic(weights):
            self.weighting = None
            return super().apply(x, weights)
        if weights is not None:
            if not (hasattr(weights, "shape") and hasattr(weights, "dtype")):
                raise TypeError(f"{self._where()}: weights must be None, a constant array or a symbolic tensor, got "
                                f"{weights!r:.80}.")
            weights = numpy.array(backend.to_numpy(weights), copy=True)
        self.weighting = weights
        return super().apply(x)

    def keras_keywords(self):
        return {"weights": self.weighting}

    def keras_call(self, tensors):
        if len(self.arguments) == 2:            # the weights a tensor
            return [tensors[0]], {"weights": tensors[1]}
        return super().keras_call(tensors)

    @classmethod
    def decode_keyword(cls, key, value, where):
        if value is None:
            return None
        return cls.decode_argument(1, value, where)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        weights = tuple(shapes[1]) if len(shapes) > 1 else (
            None if self.weighting is None else self.weighting.shape)
        if weights is not None:
            self._check_weights(shape, weights)
        return super().output_shape_of(arguments, shapes[:1])

    def _check_weights(self, shape, weights_shape):
        weights_shape = tuple(weights_shape)
        same = len(weights_shape) == len(shape) and all(
            a is None or b is None or a == b for a, b in zip(shape, weights_shape))
        along = False
        if self.axis is not None and len(weights_shape) == 1:
            n = shape[self.axis % len(shape)]
            along = n is None or weights_shape[0] is None or n == weights_shape[0]
        if not (same or along):
            raise ValueError(f"{self._where()}: weights must have x's shape {shape} or, with an axis, its length along "
                             f"the axis; got weights of shape {weights_shape}.")

    def _weighting(self, x, w=None):
        """The weights as an array of x's dtype that broadcasts against x."""
        w = _xp(x).asarray(self.weighting if w is None else w).astype(x.dtype, copy=False)
        if w.shape != x.shape:
            shape = [1] * x.ndim
            shape[self.axis % x.ndim] = -1
            w = w.reshape(shape)
        return w

    def forward_function(self, x, weights=None):
        return self.forward_array(x, weights)

    def forward_array(self, x, weights=None):
        axes = fn.normalize_axes(self.axis, x.ndim)
        if weights is None and self.weighting is None:
            return x.mean(axis=axes)
        self._check_weights(x.shape, (self.weighting if weights is None else weights).shape)
        w = self._weighting(x, weights)
        return (x * w).sum(axis=axes) / _xp(x).broadcast_to(w, x.shape).sum(axis=axes)

    def backward_function(self, dy, operands, y):
        x = operands[0]
        axes = fn.normalize_axes(self.axis, x.ndim)
        if len(operands) == 1 and self.weighting is None:
            return fn.mean_backward(dy, operands, y, self.axis, False)
        given = operands[1] if len(operands) > 1 else None
        w = _xp(x).broadcast_to(self._weighting(x, given), x.shape)
        total = w.sum(axis=axes, keepdims=True)
        kept = fn._kept(dy, axes, False) / total
        dx = kept * w
        if given is None:
            return [dx]
        # d(sum(x w) / sum(w)) / dw = (x - average) / sum(w), summed over what the weights broadcast along.
        dw = kept * (x - fn._kept(y, axes, False))
        if given.shape != x.shape:
            dw = dw.sum(axis=tuple(i for i in range(x.ndim) if i != self.axis % x.ndim)).reshape(given.shape)
        return [dx, dw]


class Cumprod(Cumulative):
    """``cumprod(x, axis=None, dtype=None)``: axis None runs over the flattened tensor; bool gives int32."""

    skip_nan = False

    def result_dtype(self, tensors, arguments):
        dtype = self.target or tensors[0].dtype
        return "int32" if dtype == "bool" else dtype

    def _values(self, x):
        x = x.astype(self.result_dtype([x], [None]), copy=False)
        if self.skip_nan and _float(x.dtype):
            x = _xp(x).where(_xp(x).isnan(x), x.dtype.type(self.neutral), x)
        return x

    neutral = 1

    def forward_array(self, x):
        values = self._values(x)
        return _xp(x).cumprod(values, axis=self.axis).astype(values.dtype, copy=False)

    def backward_function(self, dy, operands, y):
        x, = operands
        g = rs.cumprod_backward(dy, self._values(x), self.axis)
        return [_xp(x).where(_xp(x).isnan(x), 0, g) if self.skip_nan else g]


class Nancumprod(Cumprod):
    skip_nan = True


class Nancumsum(Cumprod):
    skip_nan = True
    neutral = 0

    def forward_array(self, x):
        values = self._values(x)
        return _xp(x).cumsum(values, axis=self.axis).astype(values.dtype, copy=False)

    def backward_function(self, dy, operands, y):
        x, = operands
        g, = fn.cumsum_backward(dy, operands, y, self.axis)
        return [_xp(x).where(_xp(x).isnan(x), 0, g)]


# ------------------------------------------------------------------ reductions skipping NaN
class _NanReduction(Reduction):
    """A reduction of the non-NaN elements (integers have none)."""

    def _clean(self, x, fill):
        xp = _xp(x)
        return (xp.where(xp.isnan(x), x.dtype.type(fill), x), xp.isnan(x)) if _float(x.dtype) else \
            (x, xp.zeros(x.shape, dtype=bool))


class Nansum(_NanReduction):
    def result_dtype(self, tensors, arguments):
        return "int32" if tensors[0].dtype == "bool" else super().result_dtype(tensors, arguments)

    def forward_array(self, x):
        clean, _ = self._clean(x, 0)
        return clean.sum(axis=fn.normalize_axes(self.axis, x.ndim), keepdims=self.keepdims).astype(
            "int32" if x.dtype == bool else x.dtype, copy=False)

    def backward_function(self, dy, operands, y):
        x, = operands
        g, = fn.sum_backward(dy, operands, y, self.axis, self.keepdims)
        return [_xp(x).where(_xp(x).isnan(x), 0, g)]


class Nanprod(Nansum):
    def forward_array(self, x):
        clean, _ = self._clean(x, 1)
        return clean.prod(axis=fn.normalize_axes(self.axis, x.ndim), keepdims=self.keepdims).astype(
            "int32" if x.dtype == bool else x.dtype, copy=False)

    def backward_function(self, dy, operands, y):
        x, = operands
        clean, nan = self._clean(x, 1)
        g, = fn.prod_backward(dy, [clean], y, self.axis, self.keepdims)
        return [_xp(x).where(nan, 0, g)]


class Nanmax(_NanReduction):
    largest = True

    def forward_array(self, x):
        if not _float(x.dtype):
            return fn.extreme_forward(x, self.axis, self.keepdims, None, self.largest)
        axes = fn.normalize_axes(self.axis, x.ndim)
        clean, nan = self._clean(x, -numpy.inf if self.largest else numpy.inf)
        y = (clean.max if self.largest else clean.min)(axis=axes, keepdims=self.keepdims)
        return _xp(x).where(nan.all(axis=axes, keepdims=self.keepdims), x.dtype.type(numpy.nan), y)

    def backward_function(self, dy, operands, y):
        x, = operands
        axes = fn.normalize_axes(self.axis, x.ndim)
        return [fn._kept(dy, axes, self.keepdims) * rs.extreme_share(x, y, axes, self.keepdims)]


class Nanmin(Nanmax):
    largest = False


class Nanmean(_NanReduction):
    keeps_integers = False

    def _count(self, nan, axes):
        return (~nan).sum(axis=axes, keepdims=True)

    def forward_array(self, x):
        axes = fn.normalize_axes(self.axis, x.ndim)
        clean, nan = self._clean(x, 0)
        mean = clean.sum(axis=axes, keepdims=True) / self._count(nan, axes).astype(x.dtype)
        return mean if self.keepdims else mean.reshape(_reduced_shape(x.shape, axes, False))

    def backward_function(self, dy, operands, y):
        x, = operands
        axes = fn.normalize_axes(self.axis, x.ndim)
        _, nan = self._clean(x, 0)
        return [_xp(x).where(nan, 0, fn._kept(dy, axes, self.keepdims) / self._count(nan, axes).astype(x.dtype))]


class Nanvar(Nanmean):
    root = False

    def forward_array(self, x):
        axes = fn.normalize_axes(self.axis, x.ndim)
        clean, nan = self._clean(x, 0)
        count = self._count(nan, axes).astype(x.dtype)
        centred = _xp(x).where(nan, 0, clean - clean.sum(axis=axes, keepdims=True) / count)
        var = (centred * centred).sum(axis=axes, keepdims=self.keepdims) / count.reshape(
            _reduced_shape(x.shape, axes, self.keepdims))
        return _xp(x).sqrt(var) if self.root else var

    def backward_function(self, dy, operands, y):
        x, = operands
        xp = _xp(x)
        axes = fn.normalize_axes(self.axis, x.ndim)
        clean, nan = self._clean(x, 0)
        count = self._count(nan, axes).astype(x.dtype)
        centred = xp.where(nan, 0, clean - clean.sum(axis=axes, keepdims=True) / count)
        d = fn._kept(dy, axes, self.keepdims)
        if self.root:
            s = fn._kept(y, axes, self.keepdims)
            d = xp.where(s > 0, d / (2 * xp.where(s > 0, s, 1)), 0)
        return [d * 2 * centred / count]


class Nanstd(Nanvar):
    root = True


class Nanargmax(Arg):
    """``nanargmax(x, axis=None, keepdims=False)``: NaN skipped; -1 where all are NaN, as Keras's torch gives."""

    def forward_array(self, x):
        if not _float(x.dtype):
            return super().forward_array(x)
        xp = _xp(x)
        nan = xp.isnan(x)
        y = super().forward_array(xp.where(nan, x.dtype.type(-numpy.inf if self.largest else numpy.inf), x))
        axes = fn.normalize_axes(self.axis, x.ndim)
        return xp.where(nan.all(axis=axes, keepdims=self.keepdims).reshape(y.shape), -1, y).astype("int32")


class Nanargmin(Nanargmax):
    largest = False


# ------------------------------------------------------------------ quantiles
class Quantile(GradientToFirst, KerasOperation):
    """``quantile(x, q, axis=None, method="linear", keepdims=False)``: q (a number, or a 1-D constant array or
    tensor, in [0, 1]) is the call's second argument; q's axis comes first in the result. The gradient goes to the
    one or two order statistics each quantile interpolates; q takes none."""

    arity = 2
    config_keys = ("axis", "method", "keepdims")
    keeps_integers = False
    ignore_nan = False
    scale = 1.0

    def __init__(self, axis=None, method="linear", keepdims=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if method not in rs.QUANTILE_METHODS:
            raise ValueError(f"{self._where()}: method must be one of {', '.join(rs.QUANTILE_METHODS)}, got "
                             f"{method!r}.")
        self.axis, self.method, self.keepdims = _axis_setting(axis), method, bool(keepdims)

    @classmethod
    def decode_argument(cls, position, value, where):
        if position == 1 and isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            return numpy.array(value, dtype="float64")
        return super().decode_argument(position, value, where)

    def output_shape_of(self, arguments, shapes):
        given = iter(shapes)
        x_shape = tuple(next(given))
        q_shape = tuple(next(given)) if arguments[1] is None else tuple(numpy.shape(arguments[1]))
        if len(q_shape) > 1:
            raise ValueError(f"{self._where()}: q must be a number or a 1-D array, got shape {q_shape}.")
        return q_shape + _reduced_shape(x_shape, _axes(self.axis, len(x_shape), self._where()), self.keepdims)

    def _q(self, x, q):
        xp = _xp(x)
        q = xp.asarray(q, dtype=x.dtype) / x.dtype.type(self.scale)
        if bool(((q < 0) | (q > 1)).any()):
            bound = "[0, 100]" if self.scale != 1 else "[0, 1]"
            raise ValueError(f"{self._where()}: q must lie in {bound}.")
        return q

    def forward_function(self, x, q):
        y, _ = rs.quantile_forward(x, self._q(x, q), self.axis, self.method, self.keepdims, self.ignore_nan)
        return y

    def backward_function(self, dy, operands, y):
        x, q = operands
        q = self._q(x, q)
        _, saved = rs.quantile_forward(x, q, self.axis, self.method, self.keepdims, self.ignore_nan)
        return [rs.quantile_backward(dy, x, q, saved, self.keepdims), None]


class Percentile(Quantile):
    scale = 100.0


class Nanquantile(Quantile):
    ignore_nan = True


class Nanpercentile(Percentile):
    ignore_nan = True


class Median(Reduction):
    """``median(x, axis=None, keepdims=False)``: the 0.5 quantile, averaging the middle two."""

    keeps_integers = False
    ignore_nan = False

    def _run(self, x):
        return rs.quantile_forward(x, _xp(x).asarray(0.5, dtype=x.dtype), self.axis, "linear", self.keepdims,
                                   self.ignore_nan)

    def forward_array(self, x):
        return self._run(x)[0]

    def backward_function(self, dy, operands, y):
        x, = operands
        return [rs.quantile_backward(dy, x, _xp(x).asarray(0.5, dtype=x.dtype), self._run(x)[1], self.keepdims)]


class Nanmedian(Median):
    ignore_nan = True


# ------------------------------------------------------------------ trace, differences, areas, correlation
class Trace(KerasOperation):
    """``trace(x, offset=0, axis1=0, axis2=1)``: the sum of a diagonal; bool gives int32."""

    config_keys = ("offset", "axis1", "axis2")
    casts_inputs = False

    def __init__(self, offset=0, axis1=0, axis2=1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.offset, self.axis1, self.axis2 = int(offset), int(axis1), int(axis2)

    def result_dtype(self, tensors, arguments):
        dtype = tensors[0].dtype
        return "int32" if dtype in ("bool", "int8", "int16", "uint8", "uint16") else dtype

    def _axes(self, ndim):
        if ndim < 2:
            raise ValueError(f"{self._where()}: trace takes a tensor of at least 2 axes, got {ndim}.")
        a, b = (_axes(a, ndim, self._where())[0] for a in (self.axis1, self.axis2))
        if a == b:
            raise ValueError(f"{self._where()}: axis1 and axis2 must differ, got {self.axis1} and {self.axis2}.")
        return a, b

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        a, b = self._axes(len(shape))
        return tuple(n for i, n in enumerate(shape) if i not in (a, b))

    def forward_array(self, x):
        a, b = self._axes(x.ndim)
        return x.trace(offset=self.offset, axis1=a, axis2=b).astype(self.result_dtype([x], [None]), copy=False)

    def backward_function(self, dy, operands, y):
        x, = operands
        xp = _xp(x)
        a, b = self._axes(x.ndim)
        eye = xp.eye(x.shape[a], x.shape[b], k=self.offset, dtype=dy.dtype)
        g = dy[..., None, None] * eye
        return [xp.moveaxis(g, (-2, -1), (a, b))]


class Diff(KerasOperation):
    """``diff(a, n=1, axis=-1)``: the n-th differences along the axis (bool: where neighbours differ)."""

    config_keys = ("n", "axis")

    def __init__(self, n=1, axis=-1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.n, self.axis = int(n), int(axis)
        if self.n < 0:
            raise ValueError(f"{self._where()}: n must be >= 0, got {n}.")

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        axis = _axes(self.axis, len(shape), self._where())[0]
        if shape[axis] is not None:
            shape[axis] = max(shape[axis] - self.n, 0)
        return tuple(shape)

    def forward_array(self, x):
        _axes(self.axis, x.ndim, self._where())
        return rs.diff_forward(x, self.n, self.axis)

    def backward_function(self, dy, operands, y):
        return [rs.diff_backward(dy, operands[0], self.n, self.axis)]


class Trapezoid(KerasOperation):
    """``trapezoid(y, x=None, dx=1.0, axis=-1)``: the trapezoid rule along the axis, samples ``dx`` apart (or at
    the constant sample points ``x``, computing on arrays)."""

    config_keys = ("x", "dx", "axis")
    keeps_integers = False

    def __init__(self, x=None, dx=1.0, axis=-1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if x is not None and not isinstance(x, numpy.ndarray) and not hasattr(x, "shape"):
            x = numpy.asarray(x, dtype="float64")
        self.x, self.dx, self.axis = x, float(dx), int(axis)

    def get_config(self):
        if self.x is not None:
            raise ValueError(f"{self._where()}: a model saves trapezoid with x=None only (its samples dx apart).")
        return {"name": self.name, "x": None, "dx": self.dx, "axis": self.axis}

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        shape.pop(_axes(self.axis, len(shape), self._where())[0])
        return tuple(shape)

    def _weighting(self, y):
        xp = _xp(y)
        axis = _axes(self.axis, y.ndim, self._where())[0]
        if self.x is not None and tuple(numpy.shape(self.x)) != (y.shape[axis],):
            raise ValueError(f"{self._where()}: x must be 1-D of the axis's length {y.shape[axis]}, got shape "
                             f"{tuple(numpy.shape(self.x))}.")
        w = rs.trapezoid_weights(xp, y.shape[axis], self.dx, self.x, y.dtype)
        shape = [1] * y.ndim
        shape[axis] = -1
        return w.reshape(shape), axis

    def forward_array(self, y):
        w, axis = self._weighting(y)
        return (y * w).sum(axis=axis)

    def backward_function(self, dy, operands, y):
        w, axis = self._weighting(operands[0])
        return [_xp(dy).expand_dims(dy, axis) * w]


class Correlate(_Mixed):
    """``correlate(x1, x2, mode="valid")``: the cross-correlation of two 1-D tensors, cut as Keras's torch backend
    cuts it (``same``: x1's length)."""

    arity = 2
    config_keys = ("mode",)

    def __init__(self, mode="valid", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if mode not in ("valid", "same", "full"):
            raise ValueError(f"{self._where()}: mode must be 'valid', 'same' or 'full', got {mode!r}.")
        self.mode = mode

    def result_dtype(self, tensors, arguments):
        dtypes = self._dtypes(tensors, arguments)
        return "float64" if "float64" in dtypes or "int64" in dtypes else backend.floatx()

    def output_shape_of(self, arguments, shapes):
        (n,), (m,) = self._check(self._shapes(arguments, shapes))
        if n is None or m is None:
            return (None,)
        return (rs.correlate_window(n, m, self.mode)[1],)

    def _check(self, shapes):
        for which, shape in zip(("x1", "x2"), shapes):
            if len(shape) != 1:
                raise ValueError(f"{self._where()}: {which} must be 1-D, got shape {shape}.")
        return shapes

    def forward_function(self, x1, x2):
        xp = _xp(x1 if hasattr(x1, "shape") else x2)
        x1, x2 = (xp.asarray(v).astype(self.dtype) for v in (x1, x2))
        self._check([x1.shape, x2.shape])
        return rs.correlate_forward(x1, x2, self.mode)

    def backward_function(self, dy, operands, y):
        x1, x2 = operands
        xp = _xp(dy)
        a, b = (xp.asarray(v).astype(dy.dtype) for v in (x1, x2))
        return _only_floats(list(rs.correlate_backward(dy, a, b, self.mode)), [xp.asarray(x1), xp.asarray(x2)])


class Corrcoef(KerasOperation):
    """``corrcoef(x)``: the correlation coefficients of the rows of a 1-D or 2-D tensor (variables in rows)."""

    keeps_integers = False

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) not in (1, 2):
            raise ValueError(f"{self._where()}: corrcoef takes a 1-D or 2-D tensor, got shape {shape}.")
        return () if len(shape) == 1 else (shape[0], shape[0])

    def forward_array(self, x):
        self.output_shape_of([None], [x.shape])
        c, _ = rs.corrcoef_forward(x.reshape(-1, x.shape[-1]))
        return c.reshape(()) if x.ndim == 1 else c

    def backward_function(self, dy, operands, y):
        x, = operands
        _, saved = rs.corrcoef_forward(x.reshape(-1, x.shape[-1]))
        return [rs.corrcoef_backward(dy.reshape(1, 1) if x.ndim == 1 else dy, saved).reshape(x.shape)]


# ------------------------------------------------------------------ sorting
class Sort(KerasOperation):
    """``sort(x, axis=-1)``: the gradient goes back to where each value came from."""

    config_keys = ("axis",)

    def __init__(self, axis=-1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = None if axis is None else int(axis)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if self.axis is None:
            return (None if None in shape else int(numpy.prod(shape)),)
        _axes(self.axis, len(shape), self._where())
        return shape

    def _order(self, x):
        if self.axis is None:
            x = x.reshape(-1)
        moved = _xp(x).moveaxis(x, -1 if self.axis is None else self.axis, -1)
        return moved, rs.stable_argsort(moved)

    def forward_array(self, x):
        _axes(-1 if self.axis is None else self.axis, max(x.ndim, 1), self._where())
        moved, order = self._order(x)
        return _xp(x).moveaxis(_xp(x).take_along_axis(moved, order, axis=-1), -1, 0 if self.axis is None
                               else self.axis)

    def backward_function(self, dy, operands, y):
        x, = operands
        xp = _xp(x)
        moved, order = self._order(x)
        axis = 0 if self.axis is None else self.axis
        g = rs.sorted_scatter(xp.moveaxis(dy, axis, -1), order, moved.shape[-1])
        return [xp.moveaxis(g, -1, axis).reshape(x.shape)]


class Argsort(WithoutGradient, Sort):
    """``argsort(x, axis=-1)``: int32 indices, ties in order; no gradient."""

    fixed_dtype = "int32"
    casts_inputs = False

    def forward_array(self, x):
        _axes(-1 if self.axis is None else self.axis, max(x.ndim, 1), self._where())
        _, order = self._order(x)
        return _xp(x).moveaxis(order, -1, 0 if self.axis is None else self.axis).astype("int32")


class Argpartition(Argsort):
    """``argpartition(x, kth, axis=-1)``: the indices of the kth + 1 smallest (ascending), then the rest by
    position, as Keras's torch backend orders them; int32, no gradient."""

    config_keys = ("kth", "axis")

    def __init__(self, kth, axis=-1, name=None, **kwargs):
        super().__init__(axis=axis, name=name, **kwargs)
        self.kth = int(kth)

    def _check(self, shape):
        size = int(numpy.prod(shape)) if self.axis is None else shape[_axes(self.axis, len(shape), self._where())[0]]
        if size is not None and not 0 <= self.kth < size:
            raise ValueError(f"{self._where()}: kth must lie in [0, {size}), got {self.kth}.")

    def output_shape_of(self, arguments, shapes):
        if None not in tuple(shapes[0]):
            self._check(tuple(shapes[0]))
        return super().output_shape_of(arguments, shapes)

    def forward_array(self, x):
        self._check(x.shape)
        return rs.argpartition_forward(x, self.kth, self.axis)


class TopK(KerasOperation):
    """``top_k(x, k, sorted=True)`` of ``keras.src.ops.math``: two outputs, the k largest along the last axis
    (in descending order) and their int32 indices (the first of ties first); the values' gradient goes back to
    where they came from."""

    keras_module = MATH
    config_keys = ("k", "sorted")

    def __init__(self, k, sorted=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k, self.sorted = int(k), bool(sorted)

    def apply(self, x):
        values, indices = _several_outputs(self, x, 2)
        indices.dtype = "int32"
        return [values, indices]

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        if not shape or (shape[-1] is not None and not 0 <= self.k <= shape[-1]):
            raise ValueError(f"{self._where()}: k={self.k} must lie within the last axis of shape {tuple(shape)}.")
        shape[-1] = self.k
        return [tuple(shape), tuple(shape)]

    def _order(self, x):
        xp = _xp(x)
        key = -x if x.dtype.kind in "fi" else ~x if x.dtype == bool else xp.iinfo(x.dtype).max - x
        return rs.stable_argsort(key)[..., :self.k]

    def forward_array(self, x):
        self.output_shape_of([None], [x.shape])
        order = self._order(x)
        return [_xp(x).take_along_axis(x, order, axis=-1), order.astype("int32")]

    def backward(self, dy):
        operands, y = self.saved()
        x, = operands
        if not _float(x.dtype):
            return None
        dvalues = dy[0] if isinstance(dy, (list, tuple)) else dy
        order = rs.stable_argsort(-x)
        return rs.sorted_scatter(dvalues.astype(x.dtype, copy=False), order, x.shape[-1])


class InTopK(WithoutGradient, _Mixed):
    """``in_top_k(targets, predictions, k)`` of ``keras.src.ops.math``: whether each target's prediction is at least
    the k-th largest of its row (ties count in); bool, no gradient."""

    fixed_dtype = "bool"
    keras_module = MATH
    arity = 2
    config_keys = ("k",)

    def __init__(self, k, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = int(k)

    def output_shape_of(self, arguments, shapes):
        targets, predictions = self._shapes(arguments, shapes)
        if len(targets) != 1 or len(predictions) != 2:
            raise ValueError(f"{self._where()}: targets must be 1-D and predictions 2-D, got shapes {targets} and "
                             f"{predictions}.")
        broadcast_shapes(targets, predictions[:1], self._where())
        return targets

    def forward_function(self, targets, predictions):
        xp = _xp(predictions)
        targets = xp.asarray(targets).astype("int64")
        self.output_shape_of([None, None], [targets.shape, predictions.shape])
        k = min(self.k, predictions.shape[-1])
        if k <= 0:
            return xp.zeros(targets.shape, dtype=bool)
        kth = -xp.sort(-predictions, axis=-1)[:, k - 1]
        return xp.take_along_axis(predictions, targets[:, None], axis=-1)[:, 0] >= kth


class SearchSorted(WithoutGradient, _Mixed):
    """``searchsorted(sorted_sequence, values, side="left")``: int32 places in a 1-D sorted sequence."""

    fixed_dtype = "int32"
    arity = 2
    config_keys = ("side",)

    def __init__(self, side="left", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if side not in ("left", "right"):
            raise ValueError(f"{self._where()}: side must be 'left' or 'right', got {side!r}.")
        self.side = side

    def output_shape_of(self, arguments, shapes):
        sequence, values = self._shapes(arguments, shapes)
        if len(sequence) != 1:
            raise ValueError(f"{self._where()}: sorted_sequence must be 1-D, got shape {sequence}.")
        return values

    def forward_function(self, sequence, values):
        xp = _xp(sequence if hasattr(sequence, "shape") else values)
        sequence, values = xp.asarray(sequence), xp.asarray(values)
        self.output_shape_of([None, None], [sequence.shape, values.shape])
        return xp.searchsorted(sequence, values, side=self.side).astype("int32")


class Digitize(WithoutGradient, _Mixed):
    """``digitize(x, bins)``: the int32 bin of each element, i with bins[i - 1] <= x < bins[i] (increasing
    bins)."""

    fixed_dtype = "int32"
    arity = 2

    def output_shape_of(self, arguments, shapes):
        x, bins = self._shapes(arguments, shapes)
        if len(bins) != 1:
            raise ValueError(f"{self._where()}: bins must be 1-D, got shape {bins}.")
        return x

    def forward_function(self, x, bins):
        xp = _xp(x if hasattr(x, "shape") else bins)
        x, bins = xp.asarray(x), xp.asarray(bins)
        self.output_shape_of([None, None], [x.shape, bins.shape])
        if x.dtype == bool:
            x = x.astype("uint8")
        return xp.searchsorted(bins, x, side="right").astype("int32")


class IsIn(WithoutGradient, _Mixed):
    """``isin(x1, x2, assume_unique=False, invert=False)``: whether each element of x1 is among x2's; bool."""

    fixed_dtype = "bool"
    arity = 2
    config_keys = ("assume_unique", "invert")

    def __init__(self, assume_unique=False, invert=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.assume_unique, self.invert = bool(assume_unique), bool(invert)

    def output_shape_of(self, arguments, shapes):
        return self._shapes(arguments, shapes)[0]

    def forward_function(self, x1, x2):
        xp = _xp(x1 if hasattr(x1, "shape") else x2)
        x1, x2 = xp.asarray(x1), xp.asarray(x2).reshape(-1)
        ordered = xp.sort(x2)
        if ordered.size == 0:
            found = xp.zeros(x1.shape, dtype=bool)
        else:
            place = xp.clip(xp.searchsorted(ordered, x1), 0, ordered.size - 1)
            found = ordered[place] == x1
        return ~found if self.invert else found


# ------------------------------------------------------------------ segments and scatters
class SegmentReduction(_Mixed):
    """``segment_sum(data, segment_ids, num_segments=None, sorted=False)`` and its kin of ``keras.src.ops.math``:
    data's rows reduced per segment id (ids outside [0, num_segments) dropped); num_segments None: the largest id
    + 1, known only on arrays."""

    keras_module = MATH
    arity = 2
    config_keys = ("num_segments", "sorted")
    reduction = "sum"

    def __init__(self, num_segments=None, sorted=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_segments = None if num_segments is None else int(num_segments)
        self.sorted = bool(sorted)

    def result_dtype(self, tensors, arguments):
        return self._dtypes(tensors, arguments)[0]

    def output_shape_of(self, arguments, shapes):
        data, ids = self._shapes(arguments, shapes)
        if len(ids) != 1 or not data or (None not in (data[0], ids[0]) and data[0] != ids[0]):
            raise ValueError(f"{self._where()}: segment_ids must be 1-D, as long as data's first axis; got data of "
                             f"shape {data} and segment_ids of shape {ids}.")
        return (self.num_segments,) + tuple(data[1:])

    def _count(self, ids):
        if self.num_segments is not None:
            return self.num_segments
        return int(ids.max()) + 1 if ids.size else 0

    def forward_function(self, data, ids):
        xp = _xp(data)
        ids = xp.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{self._where()}: segment_ids must be integers, got {ids.dtype}.")
        self.output_shape_of([None, None], [data.shape, ids.shape])
        y, _ = rs.segment_forward(data, ids, self._count(ids), self.reduction)
        return y

    def backward_function(self, dy, operands, y):
        data, ids = operands
        ids = _xp(data).asarray(ids)
        saved = rs.groups(ids, y.shape[0])
        return [rs.segment_backward(dy, data, y, saved, self.reduction), None]


class SegmentSum(SegmentReduction):
    pass


class SegmentMax(SegmentReduction):
    reduction = "max"


class SegmentMin(SegmentReduction):
    reduction = "min"


class SegmentProd(SegmentReduction):
    reduction = "prod"


class Scatter(_Mixed):
    """``scatter(indices, values, shape)`` of ``keras.src.ops.core``: zeros of ``shape`` with ``values`` added at
    ``indices`` (integer, last axis indexing the first axes of shape); the values' gradient is dy read there."""

    keras_module = CORE
    arity = 2
    config_keys = ("shape",)

    def __init__(self, shape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.shape = tuple(int(n) for n in shape)

    def result_dtype(self, tensors, arguments):
        return self._dtypes(tensors, arguments)[1]

    def output_shape_of(self, arguments, shapes):
        indices, values = self._shapes(arguments, shapes)
        if not indices or indices[-1] is None or indices[-1] > len(self.shape):
            raise ValueError(f"{self._where()}: indices' last axis must index at most the {len(self.shape)} axes of "
                             f"shape {self.shape}, got indices of shape {indices}.")
        want = tuple(indices[:-1]) + self.shape[indices[-1]:]
        if len(values) != len(want) or any(a is not None and b is not None and a != b for a, b in zip(values, want)):
            raise ValueError(f"{self._where()}: values must have shape {want} for indices of shape {indices}, got "
                             f"{values}.")
        return self.shape

    def forward_function(self, indices, values):
        xp = _xp(values)
        indices = xp.asarray(indices)
        self.output_shape_of([None, None], [indices.shape, values.shape])
        d = indices.shape[-1]
        out = xp.zeros((int(numpy.prod(self.shape[:d], dtype=numpy.int64)),) + self.shape[d:], dtype=values.dtype)
        xp.add.at(out, rs.flat_targets(indices, self.shape), values.reshape((-1,) + self.shape[d:]))
        return out.reshape(self.shape)

    def backward_function(self, dy, operands, y):
        indices, values = operands
        indices = _xp(dy).asarray(indices)
        d = indices.shape[-1]
        flat = dy.reshape((-1,) + self.shape[d:])
        return [None, flat[rs.flat_targets(indices, self.shape)].reshape(values.shape)]


class ScatterUpdate(_Mixed):
    """``scatter_update(inputs, indices, updates, reduction=None)`` of ``keras.src.ops.core``: inputs with the
    cells at ``indices`` replaced by (reduction None) or combined with ("add", "max", "min", "mul") ``updates``.
    Where indices repeat a cell without a reduction, the last of its updates is written (and takes the
    gradient), as NumPy's assignment does."""

    keras_module = CORE
    arity = 3
    config_keys = ("reduction",)

    def __init__(self, reduction=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if reduction not in (None, "add", "max", "min", "mul"):
            raise ValueError(f"{self._where()}: reduction must be None, 'add', 'max', 'min' or 'mul', got "
                             f"{reduction!r}.")
        self.reduction = reduction

    def result_dtype(self, tensors, arguments):
        return self._dtypes(tensors, arguments)[0]

    def output_shape_of(self, arguments, shapes):
        inputs, indices, updates = self._shapes(arguments, shapes)
        if not indices or indices[-1] is None or indices[-1] > len(inputs):
            raise ValueError(f"{self._where()}: indices' last axis must index at most the {len(inputs)} axes of "
                             f"inputs, got indices of shape {indices}.")
        want = tuple(indices[:-1]) + tuple(inputs[indices[-1]:])
        if len(updates) != len(want) or any(a is not None and b is not None and a != b for a, b in zip(updates, want)):
            raise ValueError(f"{self._where()}: updates must have shape {want}, got {updates}.")
        return inputs

    def _layout(self, inputs, indices, updates):
        xp = _xp(inputs)
        indices = xp.asarray(indices)
        d = indices.shape[-1]
        rest = inputs.shape[d:]
        targets = rs.flat_targets(indices, inputs.shape)
        return targets, rest, xp.asarray(updates).astype(inputs.dtype).reshape((-1,) + rest)

    def forward_function(self, inputs, indices, updates):
        xp = _xp(inputs)
        self.output_shape_of([None, None, None], [inputs.shape, xp.asarray(indices).shape, xp.asarray(updates).shape])
        targets, rest, values = self._layout(inputs, indices, updates)
        out = inputs.reshape((-1,) + rest).copy()
        if self.reduction is None:
            written = rs.last_of_each(targets)
            out[targets[written]] = values[written]
        elif self.reduction == "add":
            xp.add.at(out, targets, values)
        else:
            cells, inverse = xp.unique(targets, return_inverse=True)
            kind = {"max": "max", "min": "min", "mul": "prod"}[self.reduction]
            combined, _ = rs.segment_forward(xp.concatenate([out[cells], values]),
                                             xp.concatenate([xp.arange(cells.size), inverse.reshape(-1)]),
                                             int(cells.size), kind)
            out[cells] = combined
        return out.reshape(inputs.shape)

    def backward_function(self, dy, operands, y):
        inputs, indices, updates = operands
        xp = _xp(dy)
        targets, rest, values = self._layout(inputs, indices, updates)
        flat = dy.reshape((-1,) + rest)
        updates_shape = xp.asarray(updates).shape
        if self.reduction == "add":
            g_inputs, g_updates = flat, flat[targets]
        elif self.reduction is None:
            g_inputs = flat.copy()
            g_inputs[targets] = 0
            written = rs.last_of_each(targets)
            g_updates = xp.zeros_like(values)
            g_updates[written] = flat[targets[written]]
        else:
            base = inputs.reshape((-1,) + rest)
            cells, inverse = xp.unique(targets, return_inverse=True)
            kind = {"max": "max", "min": "min", "mul": "prod"}[self.reduction]
            data = xp.concatenate([base[cells], values])
            ids = xp.concatenate([xp.arange(cells.size), inverse.reshape(-1)])
            reduced = y.reshape((-1,) + rest)[cells]
            g = rs.segment_backward(flat[cells], data, reduced, rs.groups(ids, int(cells.size)), kind)
            g_inputs = flat.copy()
            g_inputs[cells] = g[:cells.size]
            g_updates = g[cells.size:]
        return _only_floats([g_inputs.reshape(inputs.shape), None, g_updates.reshape(updates_shape)],
                            [inputs, xp.asarray(indices), xp.asarray(updates)])


class SliceUpdate(_Mixed):
    """``slice_update(inputs, start_indices, updates)`` of ``keras.src.ops.core``: inputs with the block at
    ``start_indices`` (numbers, the call's second argument) replaced by ``updates``."""

    keras_module = CORE
    arity = 3

    def accept_argument(self, position, value):
        if position == 1 and isinstance(value, (list, tuple)) and \
                all(isinstance(v, (int, numpy.integer)) and not isinstance(v, bool) for v in value):
            return tuple(int(v) for v in value)
        if position == 1:
            raise TypeError(f"{self._where()}: start_indices must be a tuple of numbers, got {value!r:.80}.")
        return super().accept_argument(position, value)

    @classmethod
    def decode_argument(cls, position, value, where):
        if position == 1 and isinstance(value, list) and all(isinstance(v, int) for v in value):
            return tuple(value)
        return super().decode_argument(position, value, where)

    def same_arguments(self, arguments):
        return len(arguments) == len(self.arguments) and all(
            (a is None) == (b is None) and (a is None or isinstance(a, tuple) and a == b or
                                           isinstance(a, numpy.ndarray) and numpy.array_equal(a, b))
            for a, b in zip(self.arguments, arguments))

    def keras_arguments(self, tensors):
        given = iter(tensors)
        return [next(given) if a is None else (list(a) if isinstance(a, tuple) else a) for a in self.arguments]

    def result_dtype(self, tensors, arguments):
        return self._dtypes(tensors, arguments)[0]

    def output_shape_of(self, arguments, shapes):
        given = iter(shapes)
        inputs = tuple(next(given)) if arguments[0] is None else tuple(numpy.shape(arguments[0]))
        start = arguments[1]
        updates = tuple(next(given)) if arguments[2] is None else tuple(numpy.shape(arguments[2]))
        self._check(inputs, start, updates)
        return inputs

    def _check(self, inputs, start, updates):
        if len(start) != len(inputs) or len(updates) != len(inputs):
            raise ValueError(f"{self._where()}: start_indices {tuple(start)} and updates of shape {updates} must name "
                             f"each of the {len(inputs)} axes of inputs of shape {inputs}.")
        for s, n, size in zip(start, updates, inputs):
            if s < 0 or (None not in (n, size) and s + n > size):
                raise ValueError(f"{self._where()}: updates of shape {updates} from {tuple(start)} do not fit in "
                                 f"inputs of shape {inputs}.")

    def _block(self, start, updates_shape):
        return tuple(slice(int(s), int(s) + int(n)) for s, n in zip(start, updates_shape))

    def forward_function(self, inputs, start, updates):
        xp = _xp(inputs)
        updates = xp.asarray(updates)
        self._check(inputs.shape, start, updates.shape)
        out = inputs.copy()
        out[self._block(start, updates.shape)] = updates.astype(inputs.dtype, copy=False)
        return out

    def backward_function(self, dy, operands, y):
        inputs, start, updates = operands
        xp = _xp(dy)
        updates = xp.asarray(updates)
        block = self._block(start, updates.shape)
        g_inputs = dy.copy()
        g_inputs[block] = 0
        return _only_floats([g_inputs, None, dy[block].astype(updates.dtype, copy=False)],
                            [inputs, numpy.zeros(0, "int32"), updates])

    def backward(self, dy):
        operands, y = self.saved()
        g = self.backward_function(dy, operands, y)
        tensors = [g[i] for i, a in enumerate(self.arguments) if a is None]
        return tensors if len(tensors) > 1 else tensors[0]


class Histogram(KerasOperation):
    """``histogram(x, bins=10, range=None)``: two outputs, the counts in ``bins`` equal bins over ``range`` (the
    values' range when None) and the bin edges, of x's dtype (floats as given); no gradient."""

    config_keys = ("bins", "range")
    casts_inputs = False

    def __init__(self, bins=10, range=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.bins = int(bins)
        if self.bins < 1:
            raise ValueError(f"{self._where()}: bins must be a positive number, got {bins!r}.")
        if range is not None and (len(range) != 2 or not range[0] <= range[1]):
            raise ValueError(f"{self._where()}: range must be (low, high) with low <= high, got {range!r}.")
        self.range = None if range is None else tuple(float(v) for v in range)

    def apply(self, x):
        return _several_outputs(self, x, 2)

    def result_dtype(self, tensors, arguments):
        return tensors[0].dtype

    def output_shape_of(self, arguments, shapes):
        if len(shapes[0]) != 1:
            raise ValueError(f"{self._where()}: histogram takes a 1-D tensor, got shape {tuple(shapes[0])}.")
        return [(self.bins,), (self.bins + 1,)]

    def forward_array(self, x):
        xp = _xp(x)
        self.output_shape_of([None], [x.shape])
        values = x.astype(x.dtype if _float(x.dtype) else backend.floatx())
        low, high = self.range if self.range is not None else (
            (float(values.min()), float(values.max())) if values.size else (0.0, 1.0))
        if low == high:
            low, high = low - 0.5, high + 0.5
        edges = xp.linspace(low, high, self.bins + 1).astype(values.dtype)
        place = xp.floor((values - values.dtype.type(low)) / values.dtype.type(high - low) * self.bins)
        place = xp.where(values == values.dtype.type(high), self.bins - 1, place).astype("int64")
        inside = (values >= values.dtype.type(low)) & (values <= values.dtype.type(high))
        counts = xp.bincount(xp.where(inside, place, self.bins), minlength=self.bins + 1)[:self.bins]
        return [counts.astype(x.dtype), edges.astype(x.dtype)]

    def backward(self, dy):
        return None


class Bincount(WithoutGradient, KerasOperation):
    """``bincount(x, weights=None, minlength=0, sparse=False)``: how often each non-negative integer occurs in x
    (1-D, or 2-D: per row), summing the constant ``weights`` (x's shape) instead of ones where given; at least
    ``minlength`` long (the last axis is None on symbolic tensors: its length depends on the values). int32
    without weights, else the weights' dtype; no gradient."""

    config_keys = ("weights", "minlength", "sparse")
    casts_inputs = False

    def __init__(self, weights=None, minlength=0, sparse=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if sparse:
            raise ValueError(f"{self._where()}: gpu_dl has no sparse tensors.")
        # the weights: an array given, or the nested list of a config read back
        self.counted = None if weights is None else numpy.array(
            backend.to_numpy(weights) if hasattr(weights, "shape") else weights, copy=True)
        self.minlength, self.sparse = int(minlength), False

    def get_config(self):
        return {"name": self.name, "weights": None if self.counted is None else self.counted.tolist(),
                "minlength": self.minlength, "sparse": self.sparse}

    def result_dtype(self, tensors, arguments):
        if self.counted is None or self.counted.dtype == bool:
            return "int32"
        return self.counted.dtype.name

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) not in (1, 2):
            raise ValueError(f"{self._where()}: x must be 1-D or 2-D, got shape {shape}.")
        return shape[:-1] + (None,)

    def forward_array(self, x):
        xp = _xp(x)
        if x.dtype.kind not in "iu" or x.ndim not in (1, 2):
            raise ValueError(f"{self._where()}: x must be a 1-D or 2-D tensor of integers, got {x.dtype} of shape "
                             f"{x.shape}.")
        if x.size and int(x.min()) < 0:
            raise ValueError(f"{self._where()}: x must hold non-negative integers.")
        if self.counted is not None and self.counted.shape != x.shape:
            raise ValueError(f"{self._where()}: weights must have x's shape {x.shape}, got {self.counted.shape}.")
        length = max(self.minlength, int(x.max()) + 1 if x.size else 0)
        rows = 1 if x.ndim == 1 else x.shape[0]
        flat = (x.reshape(rows, -1).astype("int64") + length * xp.arange(rows)[:, None]).reshape(-1)
        weights = None if self.counted is None else xp.asarray(self.counted.reshape(-1).astype("float64"))
        counts = xp.bincount(flat, weights=weights, minlength=rows * length)
        return counts.reshape(x.shape[:-1] + (length,)).astype(self.result_dtype([x], [None]))


# ------------------------------------------------------------------ select
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


OPERATIONS = {cls.__name__: cls for cls in (
    Amax, Amin, Ptp, CountNonzero, Average, Cumprod, Nancumprod, Nancumsum, Nansum, Nanprod, Nanmax, Nanmin, Nanmean,
    Nanvar, Nanstd, Nanargmax, Nanargmin, Quantile, Percentile, Nanquantile, Nanpercentile, Median, Nanmedian, Trace,
    Diff, Trapezoid, Correlate, Corrcoef, Sort, Argsort, Argpartition, TopK, InTopK, SearchSorted, Digitize, IsIn,
    SegmentSum, SegmentMax, SegmentMin, SegmentProd, Scatter, ScatterUpdate, SliceUpdate, Histogram,
    Bincount, Select)}
