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
from keras_ops_harness import assert_input_gradients, assert_trains, assert_weight_gradients, fitting_shape, \
    op_case_tests

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
    ("average_tensor_weights", lambda a, b: ops.average(b, axis=1, weights=a),
     lambda a, b: numpy.average(b, 1, a)),
    ("average_tensor_weights_along", lambda a, b: ops.average(b, axis=2, weights=a[0, 0]),
     lambda a, b: numpy.average(b, 2, a[0, 0])),
    ("average_tensor_weights_batch", lambda a, b: ops.average(b, axis=0, weights=a),
     lambda a, b: numpy.average(b, 0, a)),
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
    ("select", lambda a, b: ops.select([ops.greater(a, 1.2), ops.less(b, 0.0)], [a * 2.0, b], 0.5),
     lambda a, b: numpy.select([a > 1.2, b < 0.0], [a * 2.0, b], 0.5)),
    ("select_tensor_default", lambda a, b: ops.select([ops.less(a, 1.2), ops.greater(b, 0.5)], [a, ops.tanh(b)], b),
     lambda a, b: numpy.select([a < 1.2, b > 0.5], [a, numpy.tanh(b)], b)),
    ("select_broadcast", lambda a, b: ops.select([ops.greater(a[:, :, :1], 1.2)], [b], a[:, :1] * 3.0),
     lambda a, b: numpy.select([a[:, :, :1] > 1.2], [b], a[:, :1] * 3.0)),
]


def _scatter(b):
    out = numpy.zeros((4, 3, 4))
    numpy.add.at(out, ROWS[:, 0], b)
    return out


(test_each_op_on_arrays_computes_what_numpy_does, test_each_op_in_a_functional_model_computes_what_numpy_does,
 test_each_op_has_the_gradient_of_finite_differences, test_each_op_is_saved_and_loaded_as_keras_writes_it) = \
    op_case_tests(CASES, rtol=1e-10, atol=1e-12, output_shape=fitting_shape)


# ------------------------------------------------------------------ dtypes, odd sizes, array-only ops
# (id, the call, Keras's result dtype for int32 and for bool inputs (torch backend), None where Keras refuses)
DTYPES = [
    ("amax", lambda x: ops.amax(x, axis=0), "int32", "bool"),
    ("amin", lambda x: ops.amin(x), "int32", "bool"),
    ("average", lambda x: ops.average(x, axis=1), "float32", "float32"),
    ("count_nonzero", lambda x: ops.count_nonzero(x, axis=1), "int32", "int32"),
    ("cumprod", lambda x: ops.cumprod(x, axis=1), "int32", "int32"),
    ("median", lambda x: ops.median(x, axis=1), "float32", "float32"),
    ("quantile", lambda x: ops.quantile(x, 0.3), "float32", "float32"),
    ("ptp", lambda x: ops.ptp(x, axis=1), "int32", None),
    ("nanargmax", lambda x: ops.nanargmax(x, axis=1), "int32", "int32"),
    ("nancumsum", lambda x: ops.nancumsum(x, axis=1), "int32", "int32"),
    ("nancumprod", lambda x: ops.nancumprod(x), "int32", "int32"),
    ("nanmax", lambda x: ops.nanmax(x, axis=1), "int32", "bool"),
    ("nanmean", lambda x: ops.nanmean(x, axis=1), "float32", "float32"),
    ("nanprod", lambda x: ops.nanprod(x, axis=1), "int32", "int32"),
    ("nansum", lambda x: ops.nansum(x, axis=1), "int32", "int32"),
    ("nanvar", lambda x: ops.nanvar(x, axis=1), "float32", "float32"),
    ("trace", lambda x: ops.trace(x), "int32", "int32"),
    ("argsort", lambda x: ops.argsort(x), "int32", "int32"),
    ("sort", lambda x: ops.sort(x, axis=0), "int32", "bool"),
    ("argpartition", lambda x: ops.argpartition(x, 1), "int32", "int32"),
    ("searchsorted", lambda x: ops.searchsorted(ops.sort(ops.reshape(x, (-1,))), x), "int32", None),
    ("digitize", lambda x: ops.digitize(x, numpy.array([1.0, 3.0])), "int32", "int32"),
    ("isin", lambda x: ops.isin(x, numpy.array([1, 5])), "bool", "bool"),
    ("corrcoef", lambda x: ops.corrcoef(x), "float32", "float32"),
    ("diff", lambda x: ops.diff(x), "int32", "bool"),
    ("trapezoid", lambda x: ops.trapezoid(x), "float32", "float32"),
    ("segment_sum", lambda x: ops.segment_sum(x, numpy.array([0, 0, 1]), num_segments=2), "int32", "bool"),
    ("segment_max", lambda x: ops.segment_max(x, numpy.array([0, 1, 1])), "int32", "bool"),
    ("scatter", lambda x: ops.scatter(numpy.array([[0], [2], [0]]), x, (4, 4)), "int32", "bool"),
    ("slice_update", lambda x: ops.slice_update(x, (1, 1), x[:2, :2]), "int32", "bool"),
]
VALUES = numpy.array([[1, 5, 3, 0], [4, 2, 6, 6], [0, 7, 1, 2]])


@pytest.mark.parametrize("name,call,int_dtype,bool_dtype", DTYPES, ids=[d[0] for d in DTYPES])
def test_integer_and_bool_inputs_give_keras_s_dtypes(xp, name, call, int_dtype, bool_dtype):
    for values, dtype in ((VALUES.astype("int32"), int_dtype), (VALUES > 2, bool_dtype)):
        if dtype is not None:
            y = call(xp.asarray(values))
            assert array_module(y) is xp and y.dtype == numpy.dtype(dtype), (name, values.dtype, y.dtype)
            symbolic = call(gpu_dl.Input(batch_shape=values.shape, dtype=values.dtype.name))
            assert symbolic.dtype == dtype, (name, symbolic.dtype)
            fitting_shape(symbolic.shape, y.shape)


def test_integer_tensors_go_through_models_without_gradients(xp):
    calls = [lambda t: ops.cumprod(t, axis=1), ops.sort, lambda t: ops.median(t, axis=1),
             lambda t: ops.amax(t, axis=1), lambda t: ops.segment_sum(t, numpy.array([0, 1, 0]), num_segments=2),
             lambda t: ops.nansum(t, axis=1), ops.diff, lambda t: ops.quantile(t, 0.5, axis=1)]
    x = xp.asarray(VALUES.astype("int32"))
    for call in calls:
        ids = gpu_dl.Input((4,), dtype="int32")
        y = call(ids)
        model = gpu_dl.Model(ids, y)
        got, want = model.forward(x, training=True), call(x)
        assert got.dtype == want.dtype == numpy.dtype(y.dtype)
        numpy.testing.assert_array_equal(to_numpy(got), to_numpy(want))
        if got.dtype.kind in "iu":          # (an integer input cast to floats gets a gradient, as for ops.mean)
            assert model.backward(xp.ones(got.shape, dtype=got.dtype)) is None


def test_float_inputs_keep_their_dtype(xp):
    x = xp.asarray(VALUES.astype("float32"))
    for y in (ops.median(x), ops.nanstd(x, axis=0), ops.average(x, axis=1), ops.quantile(x, 0.5), ops.cumprod(x),
              ops.sort(x), ops.trapezoid(x), ops.corrcoef(x), ops.top_k(x, 2)[0]):
        assert y.dtype == numpy.float32
    assert ops.top_k(x, 2)[1].dtype == numpy.int32 and ops.median(x.astype("float64")).dtype == numpy.float64


@pytest.mark.parametrize("size", [1, 3, 17])
def test_odd_sizes_and_whole_tensor_reductions(xp, rng, size):
    x = rng.standard_normal((size, 3))
    d = xp.asarray(x)
    checks = [
        (ops.median(d), numpy.median(x)), (ops.quantile(d, [0.1, 0.5, 1.0]), numpy.quantile(x, [0.1, 0.5, 1.0])),
        (ops.percentile(d, 25, axis=0, keepdims=True), numpy.percentile(x, 25, axis=0, keepdims=True)),
        (ops.quantile(d, 0.6, keepdims=True), numpy.quantile(x, 0.6, keepdims=True)),
        (ops.cumprod(d), numpy.cumprod(x)), (ops.nancumsum(d), numpy.nancumsum(x)), (ops.sort(d, axis=None),
                                                                                     numpy.sort(x, axis=None)),
        (ops.ptp(d), numpy.ptp(x)), (ops.amax(d), x.max()), (ops.count_nonzero(d > 0), (x > 0).sum()),
        (ops.average(d, weights=numpy.abs(x) + 0.1), numpy.average(x, weights=numpy.abs(x) + 0.1)),
        (ops.average(d), x.mean()), (ops.nanvar(d), x.var()), (ops.argsort(d, axis=0), numpy.argsort(x, axis=0)),
        (ops.argpartition(d, 0, axis=None)[:1], numpy.argmin(x)[None]),
        (ops.trapezoid(d, x=numpy.arange(3.0) ** 2), (x[:, 1:] + x[:, :-1]) @ numpy.array([1.0, 3.0]) / 2),
        (ops.diff(d, n=3, axis=0), numpy.diff(x, n=3, axis=0)), (ops.trace(d, offset=-1), numpy.trace(x, -1)),
        (ops.segment_sum(d, numpy.arange(size) % 2), numpy.stack([x[0::2].sum(0)] + ([x[1::2].sum(0)] if size > 1
                                                                                     else []))),
    ]
    for got, want in checks:
        assert array_module(got) is xp
        numpy.testing.assert_allclose(to_numpy(got), want, rtol=1e-10, atol=1e-12)


def test_nan_reductions_of_all_nan_lines(xp):
    x = xp.asarray(numpy.array([[numpy.nan, numpy.nan], [1.0, numpy.nan]]))
    numpy.testing.assert_array_equal(to_numpy(ops.nanmax(x, axis=1)), [numpy.nan, 1.0])
    numpy.testing.assert_array_equal(to_numpy(ops.nanargmax(x, axis=1)), [-1, 0])
    numpy.testing.assert_array_equal(to_numpy(ops.nanmedian(x, axis=1)), [numpy.nan, 1.0])
    numpy.testing.assert_array_equal(to_numpy(ops.nansum(x, axis=1)), [0.0, 1.0])
    numpy.testing.assert_array_equal(to_numpy(ops.quantile(x, 0.5, axis=1)), [numpy.nan, numpy.nan])
    numpy.testing.assert_array_equal(to_numpy(ops.nancumprod(x, axis=1)), [[1.0, 1.0], [1.0, 1.0]])


def test_correlate_on_arrays_and_its_gradient(xp, rng):
    for n, m in ((7, 3), (3, 7), (6, 4), (4, 4), (1, 5)):
        x1, x2 = rng.standard_normal(n), rng.standard_normal(m)
        full = numpy.correlate(x1, x2, "full")
        for mode in ("full", "same", "valid"):
            length = {"full": n + m - 1, "same": n, "valid": abs(n - m) + 1}[mode]
            start = (n + m - 1 - length) // 2
            got = ops.correlate(xp.asarray(x1), xp.asarray(x2), mode=mode)
            numpy.testing.assert_allclose(to_numpy(got), full[start:start + length], rtol=1e-12, atol=1e-14)
    a, b = gpu_dl.Input((), dtype="float64"), gpu_dl.Input((), dtype="float64")
    for mode in ("full", "same", "valid"):
        model = gpu_dl.Model([a, b], ops.correlate(a, b, mode=mode))
        xs = [xp.asarray(rng.standard_normal(7)), xp.asarray(rng.standard_normal(4))]
        y = model.forward(xs, training=True)
        assert_input_gradients(model, xs, xp.asarray(rng.standard_normal(y.shape)), rng, f"correlate {mode}: input")


def test_corrcoef_and_its_gradient(xp, rng):
    x = rng.standard_normal((4, 9))
    numpy.testing.assert_allclose(to_numpy(ops.corrcoef(xp.asarray(x))), numpy.corrcoef(x), rtol=1e-12, atol=1e-14)
    assert float(ops.corrcoef(xp.asarray(x[0]))) == pytest.approx(1.0)
    inputs = gpu_dl.Input((9,), dtype="float64")
    model = gpu_dl.Model(inputs, ops.corrcoef(inputs))
    assert model.output_shape == (None, None)
    d = xp.asarray(x)
    w = xp.asarray(rng.standard_normal((4, 4)))
    model.forward(d, training=True)
    grad = model.backward(w)
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), d, grad, rng, what="corrcoef")


def test_top_k_values_and_indices_in_a_model(xp, rng):
    inputs = gpu_dl.Input((6,), dtype="float64")
    values, indices = ops.top_k(inputs, 3)
    assert values.shape == indices.shape == (None, 3) and indices.dtype == "int32"
    picked = ops.take_along_axis(ops.exp(inputs), indices, axis=-1)
    model = gpu_dl.Model(inputs, [values, picked])
    x = rng.standard_normal((4, 6))
    got_values, got_picked = model.forward(xp.asarray(x))
    numpy.testing.assert_allclose(to_numpy(got_picked), numpy.exp(-numpy.sort(-x)[:, :3]), rtol=1e-14)
    numpy.testing.assert_allclose(to_numpy(got_values), -numpy.sort(-x)[:, :3], rtol=1e-15)
    got = model.forward(xp.asarray(x), training=True)
    dys = [xp.asarray(rng.standard_normal(v.shape)) for v in got]
    grad = model.backward(dys)

    def objective(v):
        return sum((y * dy).sum() for y, dy in zip(model.forward(v, training=True), dys))
    assert_gradient(objective, xp.asarray(x), grad, rng, what="top_k")


def test_histogram_on_arrays_and_tensors(xp, rng):
    x = rng.standard_normal(40)
    counts, edges = ops.histogram(xp.asarray(x), bins=7)
    want_counts, want_edges = numpy.histogram(x, bins=7)
    numpy.testing.assert_array_equal(to_numpy(counts), want_counts)
    numpy.testing.assert_allclose(to_numpy(edges), want_edges, rtol=1e-12)
    counts, edges = ops.histogram(xp.asarray(x), bins=4, range=(-1.0, 1.0))
    numpy.testing.assert_array_equal(to_numpy(counts), numpy.histogram(x, bins=4, range=(-1.0, 1.0))[0])
    counts, edges = ops.histogram(gpu_dl.Input((), dtype="float32"), bins=5)
    assert counts.shape == (5,) and edges.shape == (6,) and counts.dtype == "float32"


def test_bincount_unique_nonzero_and_select_on_arrays(xp, rng):
    ids = rng.integers(0, 6, 20)
    d = xp.asarray(ids)
    numpy.testing.assert_array_equal(to_numpy(ops.bincount(d, minlength=9)), numpy.bincount(ids, minlength=9))
    weights = rng.standard_normal(20)
    numpy.testing.assert_allclose(to_numpy(ops.bincount(d, weights=xp.asarray(weights))),
                                  numpy.bincount(ids, weights=weights), rtol=1e-12)
    rows = to_numpy(ops.bincount(xp.asarray(ids.reshape(4, 5))))
    numpy.testing.assert_array_equal(rows, [numpy.bincount(r, minlength=ids.max() + 1) for r in ids.reshape(4, 5)])
    assert ops.bincount(d).dtype == numpy.int32
    values, index, inverse, counts = ops.unique(d, return_index=True, return_inverse=True, return_counts=True)
    want = numpy.unique(ids, return_index=True, return_inverse=True, return_counts=True)
    for got, expected in zip((values, index, inverse, counts), want):
        numpy.testing.assert_array_equal(to_numpy(got), expected.reshape(to_numpy(got).shape))
    assert index.dtype == inverse.dtype == counts.dtype == numpy.int32
    padded = ops.unique(xp.asarray(numpy.array([3, 1, 3])), size=4, fill_value=-1)
    numpy.testing.assert_array_equal(to_numpy(padded), [1, 3, -1, -1])
    numpy.testing.assert_array_equal(to_numpy(ops.unique(xp.asarray(numpy.array([[1, 2], [1, 2], [0, 5]])), axis=0)),
                                     [[0, 5], [1, 2]])
    x = rng.standard_normal((3, 4))
    for got, expected in zip(ops.nonzero(xp.asarray(x > 0)), numpy.nonzero(x > 0)):
        assert got.dtype == numpy.int32
        numpy.testing.assert_array_equal(to_numpy(got), expected)
    d = xp.asarray(x)
    got = ops.select([d > 0.5, d < -0.5], [d, -2 * d], 7.0)
    numpy.testing.assert_allclose(to_numpy(got), numpy.select([x > 0.5, x < -0.5], [x, -2 * x], 7.0), rtol=1e-15)


def test_bincount_in_a_functional_model(xp, rng, tmp_path):
    ids = gpu_dl.Input((5,), dtype="int32")
    counts = ops.bincount(ids, minlength=8)
    weighted = ops.bincount(ids, weights=numpy.linspace(0.5, 2.5, 10).reshape(2, 5), minlength=8)
    assert counts.shape == weighted.shape == (None, None) and counts.dtype == "int32" and weighted.dtype == "float64"
    model = gpu_dl.Model(ids, ops.cast(counts, "float64") + weighted)
    x = rng.integers(0, 8, (2, 5))
    want = numpy.stack([numpy.bincount(r, minlength=8) + numpy.bincount(r, w, minlength=8)
                        for r, w in zip(x, numpy.linspace(0.5, 2.5, 10).reshape(2, 5))])
    numpy.testing.assert_allclose(to_numpy(model.forward(xp.asarray(x))), want, rtol=1e-12)
    model.save(tmp_path / "m.keras")
    numpy.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(x, verbose=0), want, rtol=1e-12)


def test_average_with_weights_of_x_s_shape_and_their_gradient(xp, rng):
    x, weights = rng.standard_normal((4, 3)), rng.uniform(0.5, 2.0, (4, 3))
    got = ops.average(xp.asarray(x), axis=0, weights=xp.asarray(weights))
    numpy.testing.assert_allclose(to_numpy(got), numpy.average(x, axis=0, weights=weights), rtol=1e-12)
    inputs = gpu_dl.Input(batch_shape=(4, 3), dtype="float64")
    model = gpu_dl.Model(inputs, ops.average(inputs, axis=0, weights=weights))
    d = xp.asarray(x)
    w = xp.asarray(rng.standard_normal(3))
    numpy.testing.assert_allclose(to_numpy(model.forward(d)), numpy.average(x, axis=0, weights=weights), rtol=1e-12)
    model.forward(d, training=True)
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), d, model.backward(w), rng,
                    what="average")


class SortedPooling(gpu_dl.layers.Layer):
    """A composite layer: a Dense, then its outputs' median, top-2 mean, range and 0.8-quantile along the
    sequence, concatenated."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = gpu_dl.layers.Dense(units, dtype=kwargs.get("dtype"))

    def call(self, x):
        h = self.dense(x)
        top = ops.mean(ops.top_k(ops.transpose(h, (0, 2, 1)), 2)[0], axis=-1)
        return ops.concatenate([ops.median(h, axis=1), top, ops.ptp(h, axis=1),
                                ops.quantile(h, 0.8, axis=1), ops.nanmean(ops.sort(h, axis=1)[:, 1:], axis=1)],
                               axis=-1)


def test_a_composite_layer_using_these_ops_has_exact_gradients_and_trains(xp, rng):
    gpu_dl.backend.set_random_seed(4)
    inputs = gpu_dl.Input((5, 3), dtype="float64")
    model = gpu_dl.Model(inputs, gpu_dl.layers.Dense(1, dtype="float64")(SortedPooling(4, dtype="float64")(inputs)))
    x = xp.asarray(rng.standard_normal((6, 5, 3)))
    w = xp.asarray(rng.standard_normal((6, 1)))
    assert_weight_gradients(model, x, w, rng)
    assert_trains(model, to_numpy(x), rng.standard_normal((6, 1)), learning_rate=0.02, epochs=20, batch_size=6)


def test_select_s_saved_call_holds_its_lists_and_bad_ones_are_refused(rng):
    x = gpu_dl.Input((4,), name="x", dtype="float64")
    model = gpu_dl.Model(x, ops.select([ops.greater(x, 0.0), ops.less(x, -1.0)], [x * 2.0, -x], x * 3.0))
    entry = [e for e in model_config(model)["config"]["layers"] if e["class_name"] == "Select"][0]
    assert (entry["module"], entry["config"]) == ("keras.src.ops.numpy", {"name": entry["name"]})
    args = entry["inbound_nodes"][0]["args"]
    assert [len(a) if isinstance(a, list) else a["class_name"] for a in args] == [2, 2, "__keras_tensor__"]
    assert args[0][0]["config"]["dtype"] == "bool" and args[1][1]["config"]["dtype"] == "float64"
    values = rng.standard_normal((3, 4)) * 2

    def edited(edit):
        config = model_config(model)
        edit([e for e in config["config"]["layers"] if e["class_name"] == "Select"][0]["inbound_nodes"][0])
        return config

    # Keras's call without a default: 0
    numpy.testing.assert_array_equal(model_from_config(edited(lambda n: n["args"].pop())).forward(values),
                                     numpy.select([values > 0, values < -1], [values * 2, -values], 0.0))
    for edit, match in [
            (lambda n: n["args"].__setitem__(0, 5), "the call cannot be made: .*condlist and choicelist must be lists"),
            (lambda n: n["args"].__setitem__(1, [1.0, 2.0]), "must be a symbolic tensor"),
            (lambda n: n["args"].__setitem__(2, [n["args"][2]]), "must be a symbolic tensor.*a number"),
            (lambda n: n["args"][1].pop(), "equally long"),
            (lambda n: n["kwargs"].update(default=0.0), "takes no keyword arguments; its call gives 'default'")]:
        with pytest.raises(ValueError, match=match):
            model_from_config(edited(edit))


# ------------------------------------------------------------------ refusals
def test_what_these_ops_refuse():
    x = gpu_dl.Input((3, 4))
    refusals = [
        (lambda: ops.amax(x, axis=3), ValueError, "out of range"),
        (lambda: ops.quantile(x, 0.5, method="cubic"), ValueError, "method must be one of"),
        (lambda: ops.quantile(numpy.ones(3), 1.5), ValueError, r"q must lie in \[0, 1\]"),
        (lambda: ops.percentile(numpy.ones(3), -1), ValueError, r"q must lie in \[0, 100\]"),
        (lambda: ops.quantile(x, numpy.ones((2, 2)) / 2), ValueError, "1-D array"),
        (lambda: ops.correlate(numpy.ones(3), numpy.ones(2), mode="wide"), ValueError, "mode must be"),
        (lambda: ops.correlate(x, numpy.ones(2)), ValueError, "x1 must be 1-D"),
        (lambda: ops.trace(x, axis1=1, axis2=-2), ValueError, "must differ"),
        (lambda: ops.trace(numpy.ones(3)), ValueError, "at least 2 axes"),
        (lambda: ops.argpartition(numpy.ones(3), 3), ValueError, "kth must lie"),
        (lambda: ops.top_k(x, 5), ValueError, "k=5"),
        (lambda: ops.searchsorted(numpy.ones((2, 2)), x), ValueError, "sorted_sequence must be 1-D"),
        (lambda: ops.digitize(x, numpy.ones((2, 2))), ValueError, "bins must be 1-D"),
        (lambda: ops.searchsorted(numpy.ones(3), x, side="middle"), ValueError, "side must be"),
        (lambda: ops.segment_sum(x, numpy.array([[0, 1]])), ValueError, "segment_ids must be 1-D"),
        (lambda: ops.segment_sum(numpy.ones((3, 2)), numpy.array([0.0, 1.0, 1.0])), TypeError, "must be integers"),
        (lambda: ops.scatter_update(x, numpy.array([[0, 1]]), numpy.ones(4), reduction="avg"), ValueError,
         "reduction must be"),
        (lambda: ops.scatter_update(x, numpy.array([[0, 1]]), numpy.ones((1, 5))), ValueError, "updates must have"),
        (lambda: ops.scatter(numpy.array([[0, 1, 2, 3]]), numpy.ones(1), (2, 2)), ValueError, "indices' last axis"),
        (lambda: ops.slice_update(x, (0, 2, 0), numpy.ones((1, 2, 4))), ValueError, "do not fit"),
        (lambda: ops.average(x, axis=1, weights=numpy.ones(4)), ValueError, "weights must have"),
        (lambda: ops.average(x, axis=(1, 2)), ValueError, "one axis or None"),
        (lambda: ops.diff(x, n=-1), ValueError, "n must be >= 0"),
        (lambda: ops.histogram(x), ValueError, "1-D tensor"),
        (lambda: ops.corrcoef(gpu_dl.Input((2, 3, 4))), ValueError, "1-D or 2-D"),
        (lambda: ops.ptp(numpy.ones(3, bool)), TypeError, "bool"),
        (lambda: ops.unique(x), ValueError, "depends on the values"),
        (lambda: ops.nonzero(x), ValueError, "depends on the values"),
        (lambda: ops.bincount(numpy.ones(3)), ValueError, "tensor of integers"),
        (lambda: ops.bincount(gpu_dl.Input((2, 3, 4), dtype="int32")), ValueError, "1-D or 2-D"),
        (lambda: ops.bincount(numpy.array([-1, 2])), ValueError, "non-negative"),
        (lambda: ops.select([x], [x], 0.0), TypeError, "conditions must be bool tensors"),
        (lambda: ops.select([x > 0], [numpy.ones(3)], 0.0), TypeError, "symbolic tensors only"),
        (lambda: ops.select(x > 0, [x], 0.0), TypeError, "must be lists of tensors"),
        (lambda: ops.select([numpy.ones(2, bool)], [], 0.0), ValueError, "equally long"),
    ]
    for call, error, message in refusals:
        with pytest.raises(error, match=message):
            call()
