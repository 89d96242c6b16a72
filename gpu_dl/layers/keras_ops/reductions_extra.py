"""The reductions beyond ``reductions.py`` of ``gpu_dl.ops`` on symbolic tensors: ``amax``, ``amin``,
``ptp``, ``count_nonzero``, ``average``, the cumulative products and the reductions skipping NaN, as Keras's
classes of ``keras.src.ops.numpy`` with Keras's constructor arguments as their configs. The maths is
``ops/reductions_sorting.py``.

Dtypes follow Keras's: ``amax``, ``amin``, ``ptp``, ``nanmax``, ``nanmin``, ``cumprod``, ``nancumsum``,
``nancumprod``, ``nansum`` and ``nanprod`` keep an integer input's dtype (bool becomes int32 where Keras's
does); ``average``, ``nanmean``, ``nanvar`` and ``nanstd`` give floatx for integers (a float input keeps its
dtype); ``nanargmax``'s indices and the counts are int32, without a gradient. Where Keras's torch backend
turns float64 into float32 (``average``), float64 stays float64 here, as for the other ops: gradient checks
run in it.
"""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import numpy_functions as fn, reductions_sorting as rs
from ..symbolic import is_symbolic
from .base import WithoutGradient, _float, _reduced_shape, _xp
from .reductions import Arg, Cumulative, Max, Reduction


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


OPERATIONS = {cls.__name__: cls for cls in (Amax, Amin, Ptp, CountNonzero, Average, Cumprod, Nancumprod, Nancumsum,
    Nansum, Nanprod, Nanmax, Nanmin, Nanmean, Nanvar, Nanstd, Nanargmax, Nanargmin)}
