"""Keras's reductions, quantiles, sorting, searching, segment and scatter ops as ``gpu_dl.ops.<name>``: on arrays
against NumPy, in functional models (outputs against NumPy, gradients against float64 finite differences, saving
and loading), their dtypes, and what they refuse."""
import numpy
import pytest

import gpu_dl
from gpu_dl import ops
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import load_model
from gpu_dl.models.saving import model_config, model_from_config
from gradcheck import assert_gradient

N = 5
KEEP = numpy.array([[True, False, True, True], [True, True, True, True], [False, True, False, True]])
W4 = numpy.array([1.0, 2.0, 0.5, 3.0])
SEQ = numpy.array([-0.5, 0.0, 0.25, 0.6])
BINS = numpy.array([-0.7, -0.1, 0.3, 0.8])
IDS = numpy.array([2, 0, 2, 1, 0])
ROWS = numpy.array([[1], [0], [1], [3], [1]])
CELLS = numpy.array([[0, 2], [3, 1], [0, 2]])
NAN = numpy.nan


def _nan(b):
    return ops.where(KEEP, b, NAN)


def _with_nan(b):
    return numpy.where(KEEP, b, NAN)


def _argpartition_values(x, kth):
    """x's kth + 1 smallest of the last axis in ascending order, then the others in their order (x without ties)."""
    ordered = numpy.sort(x, axis=-1)
    rest = x[x > ordered[..., kth:kth + 1]].reshape(x.shape[:-1] + (x.shape[-1] - kth - 1,))
    return numpy.concatenate([ordered[..., :kth + 1], rest], axis=-1)


def _in_top_k(a, b, k):
    target = a[:, 0].argmax(-1)
    row = b[:, 0]
    picked = numpy.take_along_axis(row, target[:, None], axis=-1)
    return (row > picked).sum(-1) < k


def _segments(b, ufunc, fill, count=3):
    out = numpy.full((count,) + b.shape[1:], fill)
    ufunc.at(out, IDS, b)
    return out


def _scatter_update(b, updates, ufunc):
    out = b.copy()
    if ufunc is None:
        out[CELLS[:, 0], CELLS[:, 1]] = updates
    else:
        ufunc.at(out, (CELLS[:, 0], CELLS[:, 1]), updates)
    return out


def _trace(x, offset, axis1, axis2):
    return numpy.trace(x, offset=offset, axis1=axis1, axis2=axis2)


# (id, the expression on a (N, 3, 4) positive and b (N, 3, 4) signed, written once with gpu_dl.ops for arrays and
# symbolic tensors alike; what NumPy makes of it)
CASES = [
    ("amax", lambda a, b: ops.amax(b, axis=1), lambda a, b: b.max(1)),
    ("amin_keepdims", lambda a, b: ops.amin(b, axis=(1, 2), keepdims=True), lambda a, b: b.min((1, 2), keepdims=True)),
    ("ptp", lambda a, b: ops.ptp(b, axis=-1), lambda a, b: numpy.ptp(b, axis=-1)),
    ("ptp_keepdims", lambda a, b: ops.ptp(b, axis=(1, 2), keepdims=True),
     lambda a, b: numpy.ptp(b, axis=(1, 2), keepdims=True)),
    ("average", lambda a, b: ops.average(b, axis=2), lambda a, b: b.mean(2)),
    ("average_weights", lambda a, b: ops.average(b, axis=2, weights=W4), lambda a, b: numpy.average(b, 2, W4)),
    ("count_nonzero", lambda a, b: ops.sum(b, axis=2) * ops.count_nonzero(ops.relu(b), axis=2),
     lambda a, b: b.sum(2) * (b > 0).sum(2)),
    ("cumprod", lambda a, b: ops.cumprod(b, axis=1), lambda a, b: numpy.cumprod(b, axis=1)),
    ("cumprod_zeros", lambda a, b: ops.cumprod(ops.relu(b), axis=-1), lambda a, b: numpy.cumprod(b * (b > 0), -1)),
    ("median", lambda a, b: ops.median(b, axis=2), lambda a, b: numpy.median(b, axis=2)),
    ("median_odd", lambda a, b: ops.median(b, axis=1, keepdims=True), lambda a, b: numpy.median(b, 1, keepdims=True)),
    ("quantile", lambda a, b: ops.transpose(ops.quantile(b, [0.25, 0.9], axis=2), (1, 0, 2)),
     lambda a, b: numpy.quantile(b, [0.25, 0.9], axis=2).transpose(1, 0, 2)),
    ("quantile_axes", lambda a, b: ops.quantile(b, 0.3, axis=(1, 2), keepdims=True),
     lambda a, b: numpy.quantile(b, 0.3, axis=(1, 2), keepdims=True)),
    ("percentile_midpoint", lambda a, b: ops.percentile(b, 40, axis=2, method="midpoint"),
     lambda a, b: numpy.percentile(b, 40, axis=2, method="midpoint")),
    ("percentile_lower", lambda a, b: ops.percentile(b, 40, axis=2, method="lower"),
     lambda a, b: numpy.percentile(b, 40, axis=2, method="lower")),
    ("quantile_higher", lambda a, b: ops.quantile(b, 0.4, axis=1, method="higher"),
     lambda a, b: numpy.quantile(b, 0.4, axis=1, method="higher")),
    ("quantile_nearest", lambda a, b: ops.quantile(b, 0.7, axis=2, method="nearest"),
     lambda a, b: numpy.quantile(b, 0.7, axis=2, method="nearest")),
    ("nanmax", lambda a, b: ops.nanmax(_nan(b), axis=2), lambda a, b: numpy.nanmax(_with_nan(b), axis=2)),
    ("nanmin", lambda a, b: ops.nanmin(_nan(b), axis=1), lambda a, b: numpy.nanmin(_with_nan(b), axis=1)),
    ("nansum", lambda a, b: ops.nansum(_nan(b), axis=(1, 2)), lambda a, b: numpy.nansum(_with_nan(b), axis=(1, 2))),
    ("nanprod", lambda a, b: ops.nanprod(_nan(b), axis=2, keepdims=True),
     lambda a, b: numpy.nanprod(_with_nan(b), axis=2, keepdims=True)),
    ("nanmean", lambda a, b: ops.nanmean(_nan(b), axis=2), lambda a, b: numpy.nanmean(_with_nan(b), axis=2)),
    ("nanvar", lambda a, b: ops.nanvar(_nan(b), axis=1), lambda a, b: numpy.nanvar(_with_nan(b), axis=1)),
    ("nanstd", lambda a, b: ops.nanstd(_nan(b), axis=(1, 2), keepdims=True),
     lambda a, b: numpy.nanstd(_with_nan(b), axis=(1, 2), keepdims=True)),
    ("nanmedian", lambda a, b: ops.nanmedian(_nan(b), axis=2), lambda a, b: numpy.nanmedian(_with_nan(b), axis=2)),
    ("nanquantile", lambda a, b: ops.nanquantile(_nan(b), 0.35, axis=2),
     lambda a, b: numpy.nanquantile(_with_nan(b), 0.35, axis=2)),
    ("nanpercentile", lambda a, b: ops.nanpercentile(_nan(b), 80, axis=1),
     lambda a, b: numpy.nanpercentile(_with_nan(b), 80, axis=1)),
    ("nancumsum", lambda a, b: ops.nancumsum(_nan(b), axis=2), lambda a, b: numpy.nancumsum(_with_nan(b), axis=2)),
    ("nancumprod", lambda a, b: ops.nancumprod(_nan(b), axis=1), lambda a, b: numpy.nancumprod(_with_nan(b), 1)),
    ("nanargmax", lambda a, b: ops.take_along_axis(b, ops.expand_dims(ops.nanargmax(_nan(b), axis=2), 2), axis=2),
     lambda a, b: numpy.nanmax(_with_nan(b), axis=2, keepdims=True)),
    ("nanargmin", lambda a, b: ops.take_along_axis(b, ops.nanargmin(_nan(b), axis=1, keepdims=True), axis=1),
     lambda a, b: numpy.nanmin(_with_nan(b), axis=1, keepdims=True)),
    ("trace", lambda a, b: ops.trace(b, axis1=1, axis2=2), lambda a, b: _trace(b, 0, 1, 2)),
    ("trace_offset", lambda a, b: ops.trace(b, offset=1, axis1=-1, axis2=1), lambda a, b: _trace(b, 1, 2, 1)),
    ("diff", lambda a, b: ops.diff(b), lambda a, b: numpy.diff(b)),
    ("diff_2", lambda a, b: ops.diff(b, n=2, axis=1), lambda a, b: numpy.diff(b, n=2, axis=1)),
    ("trapezoid", lambda a, b: ops.trapezoid(b, dx=0.5, axis=1), lambda a, b: (b[:, 1:] + b[:, :-1]).sum(1) / 4),
    ("sort", lambda a, b: ops.sort(b, axis=1), lambda a, b: numpy.sort(b, axis=1)),
    ("sort_last", lambda a, b: ops.sort(b), lambda a, b: numpy.sort(b)),
    ("argsort", lambda a, b: ops.take_along_axis(a, ops.argsort(b), axis=-1),
     lambda a, b: numpy.take_along_axis(a, numpy.argsort(b), -1)),
    ("argpartition", lambda a, b: ops.take_along_axis(b, ops.argpartition(b, 1), axis=-1),
     lambda a, b: _argpartition_values(b, 1)),
    ("top_k", lambda a, b: ops.top_k(b, 2)[0], lambda a, b: -numpy.sort(-b)[..., :2]),
    ("top_k_indices", lambda a, b: ops.take_along_axis(a, ops.top_k(b, 3)[1], axis=-1),
     lambda a, b: numpy.take_along_axis(a, numpy.argsort(-b)[..., :3], -1)),
    ("in_top_k", lambda a, b: ops.where(ops.in_top_k(ops.argmax(a[:, 0], axis=-1), b[:, 0], 2), b[:, 0, 0], 0.0),
     lambda a, b: numpy.where(_in_top_k(a, b, 2), b[:, 0, 0], 0.0)),
    ("searchsorted", lambda a, b: b * ops.searchsorted(SEQ, b), lambda a, b: b * numpy.searchsorted(SEQ, b)),
    ("searchsorted_right", lambda a, b: b * ops.searchsorted(SEQ, b, side="right"),
     lambda a, b: b * numpy.searchsorted(SEQ, b, side="right")),
    ("digitize", lambda a, b: b * ops.digitize(b, BINS), lambda a, b: b * numpy.digitize(b, BINS)),
    ("isin", lambda a, b: ops.where(ops.isin(ops.argmax(b, axis=-1), [0, 3]), ops.max(b, axis=-1), 0.0),
     lambda a, b: numpy.where(numpy.isin(b.argmax(-1), [0, 3]), b.max(-1), 0.0)),
    ("isin_invert", lambda a, b: ops.where(ops.isin(ops.argmax(b, axis=-1), [0, 3], invert=True), a[..., 0], 0.0),
     lambda a, b: numpy.where(~numpy.isin(b.argmax(-1), [0, 3]), a[..., 0], 0.0)),
    ("segment_sum", lambda a, b: ops.segment_sum(b, IDS, num_segments=3),
     lambda a, b: _segments(b, numpy.add, 0.0)),
    ("segment_max", lambda a, b: ops.segment_max(b, IDS, num_segments=3),
     lambda a, b: _segments(b, numpy.maximum, -numpy.inf)),
    ("segment_min", lambda a, b: ops.segment_min(b, IDS, num_segments=3),
     lambda a, b: _segments(b, numpy.minimum, numpy.inf)),
    ("segment_prod", lambda a, b: ops.segment_prod(b, IDS, num_segments=3),
     lambda a, b: _segments(b, numpy.multiply, 1.0)),
    ("scatter", lambda a, b: ops.scatter(ROWS, b, (4, 3, 4)), lambda a, b: _scatter(b)),
    ("scatter_update", lambda a, b: ops.scatter_update(b, CELLS, a[:3, 0]),
     lambda a, b: _scatter_update(b, a[:3, 0], None)),
    ("scatter_update_add", lambda a, b: ops.scatter_update(b, CELLS, a[:3, 0], reduction="add"),
     lambda a, b: _scatter_update(b, a[:3, 0], numpy.add)),
    ("scatter_update_max", lambda a, b: ops.scatter_update(b, CELLS, a[:3, 0] - 1.25, reduction="max"),
     lambda a, b: _scatter_update(b, a[:3, 0] - 1.25, numpy.maximum)),
    ("scatter_update_min", lambda a, b: ops.scatter_update(b, CELLS, 1.25 - a[:3, 0], reduction="min"),
     lambda a, b: _scatter_update(b, 1.25 - a[:3, 0], numpy.minimum)),
    ("scatter_update_mul", lambda a, b: ops.scatter_update(b, CELLS, a[:3, 0], reduction="mul"),
     lambda a, b: _scatter_update(b, a[:3, 0], numpy.multiply)),
    ("slice_update", lambda a, b: ops.slice_update(b, (0, 1, 1), a[:, :2, :2]),
     lambda a, b: numpy.concatenate([b[:, :1], numpy.concatenate([b[:, 1:, :1], a[:, :2, :2], b[:, 1:, 3:]], 2)], 1)),
]
IDS_OF_CASES = [c[0] for c in CASES]


def _scatter(b):
    out = numpy.zeros((4, 3, 4))
    numpy.add.at(out, ROWS[:, 0], b)
    return out


def _arrays(rng, dtype="float64"):
    a = rng.uniform(0.5, 2.0, (N, 3, 4))
    b = rng.uniform(0.2, 1.0, (N, 3, 4)) * rng.choice([-1, 1], (N, 3, 4))    # away from 0 and from ties
    return a.astype(dtype), b.astype(dtype)


def _reached(tensor, inputs):
    seen, stack, found = set(), [tensor], []
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if any(t is i for i in inputs):
            found.append(t)
        layer, index, _ = t._keras_history
        stack.extend(layer._inbound_nodes[index].input_tensors)
    return found


def _model(expression):
    a, b = gpu_dl.Input((3, 4), name="a", dtype="float64"), gpu_dl.Input((3, 4), name="b", dtype="float64")
    y = expression(a, b)
    used = [i for i, t in enumerate((a, b)) if any(t is r for r in _reached(y, (a, b)))]
    return gpu_dl.Model([(a, b)[i] for i in used], y), used


def _same_shape(symbolic, actual):
    assert len(symbolic) == len(actual) and all(s is None or s == n for s, n in zip(symbolic, actual)), \
        (symbolic, actual)


@pytest.mark.parametrize("name,expression,expected", CASES, ids=IDS_OF_CASES)
def test_each_op_on_arrays_computes_what_numpy_does(xp, rng, name, expression, expected):
    a, b = _arrays(rng)
    y = expression(xp.asarray(a), xp.asarray(b))
    assert array_module(y) is xp
    numpy.testing.assert_allclose(to_numpy(y), expected(a, b), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,expression,expected", CASES, ids=IDS_OF_CASES)
def test_each_op_in_a_functional_model_computes_what_numpy_does(xp, rng, name, expression, expected):
    model, used = _model(expression)
    a, b = _arrays(rng)
    y = model.forward([xp.asarray((a, b)[i]) for i in used])
    assert array_module(y) is xp and y.dtype == numpy.float64
    want = expected(a, b)
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10, atol=1e-12)
    _same_shape(model.output_shape, want.shape)


@pytest.mark.parametrize("name,expression,expected", CASES, ids=IDS_OF_CASES)
def test_each_op_has_the_gradient_of_finite_differences(xp, rng, name, expression, expected):
    model, used = _model(expression)
    arrays = [xp.asarray(v) for v in _arrays(rng)]
    want = expected(*(to_numpy(v) for v in arrays))
    xs = [arrays[i] for i in used]
    w = xp.asarray(rng.standard_normal(want.shape))
    model.forward(xs, training=True)
    grads = model.backward(w)
    for i, (value, grad) in enumerate(zip(xs, grads if len(xs) > 1 else [grads])):
        grad = xp.zeros_like(value) if grad is None else grad

        def objective(v, i=i):
            given = list(xs)
            given[i] = v
            return (model.forward(given, training=True) * w).sum()
        assert_gradient(objective, value, grad, rng, what=f"{name}: input {i}")


@pytest.mark.parametrize("name,expression,expected", CASES, ids=IDS_OF_CASES)
def test_each_op_is_saved_and_loaded_as_keras_writes_it(tmp_path, rng, name, expression, expected):
    model, used = _model(expression)
    a, b = _arrays(rng)
    xs = [(a, b)[i] for i in used]
    rebuilt = model_from_config(model_config(model))
    numpy.testing.assert_allclose(rebuilt.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-12)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_allclose(loaded.predict(xs, verbose=0), expected(a, b), rtol=1e-10, atol=1e-12)
