"""Keras's reductions, quantiles, sorting, searching, segment and scatter functions as ``gpu_dl.ops.<name>``.

On arrays (NumPy or CuPy) each computes at once and returns arrays of the same module (numbers and lists go to
the current device); on symbolic tensors it records Keras's operation (``reductions_extra.py``,
``statistics.py``, ``sorting_searching.py``, ``segments_scatter.py``, ``select_operation.py``), with an
exact backward where Keras's op has a gradient. ``unique`` and ``nonzero`` compute on arrays only: their results'
sizes depend on the values.
"""
from __future__ import annotations

import numbers

import numpy

from ... import backend, backprop as _backprop
from ..symbolic import is_symbolic
from . import _array, _local, _symbolic, _taking_variables
from . import reductions_extra as _extra
from . import statistics as _statistics
from . import sorting_searching as _sorting
from . import segments_scatter as _segments
from . import select_operation as _select

__all__ = [
    "amax", "amin", "average", "count_nonzero", "cumprod", "median", "quantile", "percentile", "ptp", "nanargmax",
    "nanargmin", "nancumprod", "nancumsum", "nanmax", "nanmean", "nanmedian", "nanmin", "nanpercentile", "nanprod",
    "nanquantile", "nanstd", "nansum", "nanvar", "trace", "argsort", "sort", "argpartition", "top_k", "in_top_k",
    "searchsorted", "digitize", "bincount", "histogram", "unique", "nonzero", "isin", "corrcoef", "diff",
    "trapezoid", "correlate", "segment_sum", "segment_max", "segment_min", "segment_prod", "scatter",
    "scatter_update", "slice_update", "select",
]

def _one(cls, x, *args, **kwargs):
    """The operation ``cls(*args, **kwargs)`` on one tensor: recorded on a symbolic one, computed on an array
    (integers as floatx where Keras's result is float)."""
    if is_symbolic(x):
        return cls(*args, **kwargs).apply(x)
    x = _array(x)
    op = _local(cls, *args, **kwargs)
    if x.dtype.kind in "iub" and not op.keeps_integers:
        x = x.astype(backend.floatx())
    return _in_module(op.forward_array(x), backend.array_module(x))


def _in_module(result, xp):
    """A result as arrays of ``xp`` (a whole reduction may give a NumPy scalar)."""
    if isinstance(result, (list, tuple)):
        return type(result)(_in_module(r, xp) for r in result)
    return result if backend.array_module(result) is xp else xp.asarray(result)


def _constant(value):
    """A list or tuple argument as a NumPy array (lists of numbers are constants in Keras's calls)."""
    return numpy.asarray(value) if isinstance(value, (list, tuple)) else value


def _many(cls, values, *args, **kwargs):
    """The operation ``cls(*args, **kwargs)`` on several arguments: recorded when one is symbolic, else computed
    on arrays of one module."""
    if _symbolic(*values):
        return cls(*args, **kwargs).apply(*[v if is_symbolic(v) else _constant(v) for v in values])
    op = _local(cls, *args, **kwargs)
    arrays = [_array(v) for v in values]
    xp = backend.array_module(*[a for a in arrays if a.ndim]) if any(a.ndim for a in arrays) else \
        backend.array_module(*arrays)
    arrays = [xp.asarray(a) for a in arrays]
    if not op.keeps_integers and arrays[0].dtype.kind in "iub":
        arrays[0] = arrays[0].astype(backend.floatx())
    op.arguments = [None] * len(arrays)
    op.dtype = op.result_dtype(arrays, op.arguments)
    return _in_module(op.forward_function(*op.operands(arrays)), xp)


def _value_sized(name, *values):
    if _symbolic(*values):
        raise ValueError(f"{name}: the size of its result depends on the values, so gpu_dl computes it on arrays "
                         "only, not on symbolic tensors; compute it on the data before the model.")


# ------------------------------------------------------------------ reductions
def amax(x, axis=None, keepdims=False):
    return _one(_extra.Amax, x, axis, keepdims)


def amin(x, axis=None, keepdims=False):
    return _one(_extra.Amin, x, axis, keepdims)


def ptp(x, axis=None, keepdims=False):
    """The range (maximum - minimum) along ``axis``; the gradient goes to the extremes, shared between ties."""
    return _one(_extra.Ptp, x, axis, keepdims)


def average(x, axis=None, weights=None):
    """The (weighted) mean along one axis or all; ``weights`` of x's shape or of the axis's length."""
    if is_symbolic(x) or is_symbolic(weights):
        return _extra.Average(axis).apply(x, weights=_constant(weights))
    op = _local(_extra.Average, axis)
    x = _array(x)
    if weights is not None:
        w = _array(weights)
        x = x.astype(numpy.result_type(x.dtype, w.dtype, backend.floatx()) if x.dtype.kind in "iub" or
                     w.dtype.kind == "f" else x.dtype)
        op.weighting = backend.to_numpy(w)
    elif x.dtype.kind in "iub":
        x = x.astype(backend.floatx())
    return _in_module(op.forward_array(x), backend.array_module(x))


def count_nonzero(x, axis=None):
    return _one(_extra.CountNonzero, x, axis)


def cumprod(x, axis=None, dtype=None):
    return _one(_extra.Cumprod, x, axis, dtype)


def nancumprod(x, axis=None, dtype=None):
    return _one(_extra.Nancumprod, x, axis, dtype)


def nancumsum(x, axis=None, dtype=None):
    return _one(_extra.Nancumsum, x, axis, dtype)


def nanmax(x, axis=None, keepdims=False):
    return _one(_extra.Nanmax, x, axis, keepdims)


def nanmin(x, axis=None, keepdims=False):
    return _one(_extra.Nanmin, x, axis, keepdims)


def nansum(x, axis=None, keepdims=False):
    return _one(_extra.Nansum, x, axis, keepdims)


def nanprod(x, axis=None, keepdims=False):
    return _one(_extra.Nanprod, x, axis, keepdims)


def nanmean(x, axis=None, keepdims=False):
    return _one(_extra.Nanmean, x, axis, keepdims)


def nanvar(x, axis=None, keepdims=False):
    return _one(_extra.Nanvar, x, axis, keepdims)


def nanstd(x, axis=None, keepdims=False):
    return _one(_extra.Nanstd, x, axis, keepdims)


def nanargmax(x, axis=None, keepdims=False):
    return _one(_extra.Nanargmax, x, axis, keepdims)


def nanargmin(x, axis=None, keepdims=False):
    return _one(_extra.Nanargmin, x, axis, keepdims)


def median(x, axis=None, keepdims=False):
    return _one(_statistics.Median, x, axis, keepdims)


def nanmedian(x, axis=None, keepdims=False):
    return _one(_statistics.Nanmedian, x, axis, keepdims)


def _q(q):
    """q as given, or numbers as a float64 array (their digits kept whatever x's float dtype)."""
    return q if is_symbolic(q) or (hasattr(q, "shape") and hasattr(q, "dtype")) else numpy.asarray(q, "float64")


def quantile(x, q, axis=None, method="linear", keepdims=False):
    """The ``q`` quantiles (numbers in [0, 1]) along ``axis``: q's axis first; methods as NumPy's (``linear``,
    ``lower``, ``higher``, ``midpoint``, ``nearest``)."""
    return _many(_statistics.Quantile, (x, _q(q)), axis, method, keepdims)


def percentile(x, q, axis=None, method="linear", keepdims=False):
    return _many(_statistics.Percentile, (x, _q(q)), axis, method, keepdims)


def nanquantile(x, q, axis=None, method="linear", keepdims=False):
    return _many(_statistics.Nanquantile, (x, _q(q)), axis, method, keepdims)


def nanpercentile(x, q, axis=None, method="linear", keepdims=False):
    return _many(_statistics.Nanpercentile, (x, _q(q)), axis, method, keepdims)


def trace(x, offset=0, axis1=0, axis2=1):
    return _one(_statistics.Trace, x, offset, axis1, axis2)


def diff(a, n=1, axis=-1):
    return _one(_statistics.Diff, a, n, axis)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    """The trapezoid rule along ``axis``: samples ``dx`` apart, or at the points ``x`` (1-D, numbers)."""
    if x is not None and is_symbolic(x):
        raise TypeError("trapezoid: x (the sample points) must be numbers or an array, not a symbolic tensor.")
    if x is not None:
        x = backend.to_numpy(_array(x))
    return _one(_statistics.Trapezoid, y, x, dx, axis)


def correlate(x1, x2, mode="valid"):
    return _many(_statistics.Correlate, (x1, x2), mode)


def corrcoef(x):
    return _one(_statistics.Corrcoef, x)


# ------------------------------------------------------------------ sorting and searching
def sort(x, axis=-1):
    return _one(_sorting.Sort, x, axis)


def argsort(x, axis=-1):
    return _one(_sorting.Argsort, x, axis)


def argpartition(x, kth, axis=-1):
    return _one(_sorting.Argpartition, x, kth, axis)


def top_k(x, k, sorted=True):
    """``(values, indices)``: the k largest along the last axis, descending, with their int32 indices."""
    if is_symbolic(x):
        return tuple(_sorting.TopK(k, sorted).apply(x))
    return tuple(_local(_sorting.TopK, k, sorted).forward_array(_array(x)))


def in_top_k(targets, predictions, k):
    return _many(_sorting.InTopK, (targets, predictions), k)


def searchsorted(sorted_sequence, values, side="left"):
    return _many(_sorting.SearchSorted, (sorted_sequence, values), side)


def digitize(x, bins):
    return _many(_sorting.Digitize, (x, bins))


def isin(x1, x2, assume_unique=False, invert=False):
    return _many(_sorting.IsIn, (x1, x2), assume_unique, invert)


def histogram(x, bins=10, range=None):
    """``(counts, bin_edges)`` of a 1-D tensor in ``bins`` equal bins over ``range`` (the values' when None)."""
    if is_symbolic(x):
        return tuple(_statistics.Histogram(bins, range).apply(x))
    return tuple(_local(_statistics.Histogram, bins, range).forward_array(_array(x)))


def bincount(x, weights=None, minlength=0, sparse=False):
    """How often each non-negative integer occurs in ``x`` (1-D, or 2-D: per row), summing ``weights`` instead of
    ones where given; at least ``minlength`` long."""
    if is_symbolic(weights):
        raise TypeError("bincount: weights must be None or an array, not a symbolic tensor.")
    if weights is not None:
        weights = _array(weights)
    if is_symbolic(x):
        return _statistics.Bincount(weights, minlength, sparse).apply(x)
    x = _array(x)
    return _local(_statistics.Bincount, weights, minlength, sparse).forward_array(x)


def unique(x, sorted=True, return_index=False, return_inverse=False, return_counts=False, axis=None, size=None,
           fill_value=None):
    """The distinct values (sorted), and where asked the index of each's first occurrence, each element's
    place among them and their counts (int32). ``size`` pads (with ``fill_value``, or the smallest value) or cuts
    the values, indices and counts to that length. On arrays only."""
    _value_sized("unique", x)
    x = _array(x)
    xp = backend.array_module(x)
    results = xp.unique(x, return_index=True, return_inverse=True, return_counts=True, axis=axis)
    values, index, inverse, counts = results
    if axis is None:
        inverse = inverse.reshape(x.shape)
    if size is not None:
        size = int(size)
        found = values.shape[0 if axis is None else axis]
        if found >= size:
            cut = [slice(None)] * values.ndim
            cut[0 if axis is None else axis] = slice(0, size)
            values, index, counts = values[tuple(cut)], index[:size], counts[:size]
        else:
            fill = values.min() if fill_value is None and values.size else (fill_value or 0)
            widths = [(0, 0)] * values.ndim
            widths[0 if axis is None else axis] = (0, size - found)
            values = xp.pad(values, widths, constant_values=fill)
            index = xp.pad(index, (0, size - found))
            counts = xp.pad(counts, (0, size - found))
    wanted = [values] + [r.astype("int32") for r, asked in ((index, return_index), (inverse, return_inverse),
                                                           (counts, return_counts)) if asked]
    return wanted[0] if len(wanted) == 1 else tuple(wanted)


def nonzero(x):
    """The int32 indices of the non-zero elements, one array per axis. On arrays only."""
    _value_sized("nonzero", x)
    x = _array(x)
    return tuple(i.astype("int32") for i in backend.array_module(x).nonzero(x))


def select(condlist, choicelist, default=0):
    """Per element, the value of the first choice whose condition holds, ``default`` where none does. On symbolic
    tensors it records Keras's ``Select`` (``select_operation.Select``)."""
    if not isinstance(condlist, (list, tuple)) or not isinstance(choicelist, (list, tuple)):
        raise TypeError("select: condlist and choicelist must be lists of tensors.")
    if len(condlist) != len(choicelist) or not condlist:
        raise ValueError(f"select: condlist and choicelist must be equally long and not empty, got "
                         f"{len(condlist)} and {len(choicelist)}.")
    if _symbolic(*condlist, *choicelist, default):
        return _select.Select().apply(list(condlist), list(choicelist), default)
    conditions = [_array(c) for c in condlist]
    choices = [_array(c) for c in choicelist]
    xp = backend.array_module(*conditions, *choices)
    conditions = [xp.asarray(c).astype(bool) for c in conditions]
    choices = [xp.asarray(c) for c in choices]
    dtype = numpy.result_type(*[c.dtype for c in choices])
    shape = numpy.broadcast_shapes(*[c.shape for c in conditions + choices])
    out = xp.broadcast_to(xp.asarray(default if isinstance(default, numbers.Number) else _array(default))
                          .astype(dtype), shape)
    for condition, choice in zip(reversed(conditions), reversed(choices)):
        out = xp.where(condition, choice.astype(dtype, copy=False), out)
    return out


# ------------------------------------------------------------------ segments and scatters
def segment_sum(data, segment_ids, num_segments=None, sorted=False):
    return _many(_segments.SegmentSum, (data, segment_ids), num_segments, sorted)


def segment_max(data, segment_ids, num_segments=None, sorted=False):
    return _many(_segments.SegmentMax, (data, segment_ids), num_segments, sorted)


def segment_min(data, segment_ids, num_segments=None, sorted=False):
    return _many(_segments.SegmentMin, (data, segment_ids), num_segments, sorted)


def segment_prod(data, segment_ids, num_segments=None, sorted=False):
    return _many(_segments.SegmentProd, (data, segment_ids), num_segments, sorted)


def scatter(indices, values, shape):
    return _many(_segments.Scatter, (indices, values), shape)


def scatter_update(inputs, indices, updates, reduction=None):
    return _many(_segments.ScatterUpdate, (inputs, indices, updates), reduction)


def slice_update(inputs, start_indices, updates):
    """``inputs`` with the block at ``start_indices`` (numbers) replaced by ``updates``."""
    if _symbolic(inputs, updates):
        return _segments.SliceUpdate().apply(inputs, tuple(start_indices), updates)
    op = _local(_segments.SliceUpdate)
    inputs = _array(inputs)
    return op.forward_function(inputs, tuple(int(s) for s in start_indices),
                               backend.array_module(inputs).asarray(_array(updates)))


# On arrays, loss.backward() refuses these functions' outputs (gpu_dl/backprop.py); variables are their tensors
# in a traced call, as for the other ops.
for _name in __all__:
    globals()[_name] = _backprop.followed(_taking_variables(globals()[_name]), _name)
del _name
