"""The quantiles, ``median``, ``trace``, ``diff``, ``trapezoid``, ``correlate``, ``corrcoef``,
``histogram`` and ``bincount`` of ``gpu_dl.ops`` on symbolic tensors: Keras's classes of ``keras.src.ops.numpy``
with Keras's constructor arguments as their configs. The maths is ``ops/reductions_sorting.py``.

Dtypes follow Keras's: ``trace`` and ``diff`` keep an integer input's dtype; the quantiles, ``median``,
``trapezoid``, ``correlate`` and ``corrcoef`` give floatx for integers (a float input keeps its dtype);
``bincount``'s counts are int32, without a gradient. Where Keras's torch backend turns float64 into float32
(``median``, the quantiles), float64 stays float64 here, as for the other ops: gradient checks run in it.
"""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import reductions_sorting as rs
from .base import GradientToFirst, KerasOperation, WithoutGradient, _axes, _axis_setting, _float, _reduced_shape, \
    _several_outputs, _xp
from .reductions import Reduction
from .mixed_operands import _Mixed, _only_floats


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


OPERATIONS = {cls.__name__: cls for cls in (Quantile, Percentile, Nanquantile, Nanpercentile, Median, Nanmedian, Trace,
    Diff, Trapezoid, Correlate, Corrcoef, Histogram, Bincount)}
