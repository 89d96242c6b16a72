"""gpu_dl's reductions, quantiles, sorting, searching, segment and scatter ops against keras.ops (where Keras is
installed): the same calls give the same values, dtypes and shapes on arrays and on symbolic tensors; functional
models written with either library's ops hold the same operations in their configs, predict and train the same,
and their .keras files load in the other library and predict the same."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_ops_oracle_harness import assert_same_operations_and_outputs, operations  # noqa: E402
from keras_steps import assert_training_steps_match, keras_loads_our_file, ours_loads_keras_file  # noqa: E402

SEQ = numpy.array([-1.0, -0.2, 0.1, 0.9], dtype="float32")
IDS = numpy.array([1, 0, 1, 2])
CELLS = numpy.array([[0, 1], [2, 3], [3, 0]])

# (id, the call on lib's ops and x, a (4, 6) tensor of distinct values)
CALLS = [
    ("amax", lambda ops, x: ops.amax(x, axis=1)),
    ("amin", lambda ops, x: ops.amin(x, axis=0, keepdims=True)),
    ("average", lambda ops, x: ops.average(x, axis=1)),
    ("average_weights", lambda ops, x: ops.average(x, axis=1, weights=numpy.arange(1.0, 7.0, dtype="float32"))),
    ("count_nonzero", lambda ops, x: ops.count_nonzero(x, axis=0)),
    ("cumprod", lambda ops, x: ops.cumprod(x, axis=1)),
    ("cumprod_flat", lambda ops, x: ops.cumprod(x)),
    ("median", lambda ops, x: ops.median(x, axis=1)),
    ("median_even", lambda ops, x: ops.median(x, axis=0, keepdims=True)),
    ("quantile", lambda ops, x: ops.quantile(x, numpy.array([0.1, 0.5, 0.95], "float32"), axis=1)),
    ("quantile_nearest", lambda ops, x: ops.quantile(x, 0.3, axis=0, method="nearest")),
    ("quantile_lower", lambda ops, x: ops.quantile(x, 0.3, axis=0, method="lower")),
    ("quantile_higher", lambda ops, x: ops.quantile(x, 0.3, axis=1, method="higher")),
    ("quantile_midpoint", lambda ops, x: ops.quantile(x, 0.3, axis=1, method="midpoint")),
    ("percentile", lambda ops, x: ops.percentile(x, 35.0, axis=1, keepdims=True)),
    ("ptp", lambda ops, x: ops.ptp(x, axis=1)),
    ("nanargmax", lambda ops, x: ops.nanargmax(x, axis=1)),
    ("nanargmin", lambda ops, x: ops.nanargmin(x, axis=0)),
    ("nancumprod", lambda ops, x: ops.nancumprod(x, axis=0)),
    ("nancumsum", lambda ops, x: ops.nancumsum(x, axis=1)),
    ("nanmax", lambda ops, x: ops.nanmax(x, axis=1)),
    ("nanmin", lambda ops, x: ops.nanmin(x, axis=0)),
    ("nanmean", lambda ops, x: ops.nanmean(x, axis=1)),
    ("nanmedian", lambda ops, x: ops.nanmedian(x, axis=1)),
    ("nanpercentile", lambda ops, x: ops.nanpercentile(x, 60.0, axis=1)),
    ("nanprod", lambda ops, x: ops.nanprod(x, axis=1)),
    ("nanquantile", lambda ops, x: ops.nanquantile(x, 0.6, axis=0)),
    ("nanstd", lambda ops, x: ops.nanstd(x, axis=1)),
    ("nansum", lambda ops, x: ops.nansum(x, axis=0)),
    ("nanvar", lambda ops, x: ops.nanvar(x, axis=1)),
    ("trace", lambda ops, x: ops.trace(x, offset=1)),
    ("argsort", lambda ops, x: ops.argsort(x, axis=1)),
    ("sort", lambda ops, x: ops.sort(x, axis=0)),
    ("argpartition", lambda ops, x: ops.sort(ops.argpartition(x, 2)[:, :3], axis=1)),
    ("top_k", lambda ops, x: ops.top_k(x, 3)),
    ("in_top_k", lambda ops, x: ops.in_top_k(numpy.array([0, 5, 2, 3]), x, 2)),
    ("searchsorted", lambda ops, x: ops.searchsorted(SEQ, x)),
    ("searchsorted_right", lambda ops, x: ops.searchsorted(SEQ, x, side="right")),
    ("digitize", lambda ops, x: ops.digitize(x, SEQ)),
    ("histogram", lambda ops, x: ops.histogram(ops.reshape(x, (-1,)), bins=5)),
    ("isin", lambda ops, x: ops.isin(ops.argmax(x, axis=1), numpy.array([1, 4]))),
    ("corrcoef", lambda ops, x: ops.corrcoef(x)),
    ("diff", lambda ops, x: ops.diff(x, n=2)),
    ("diff_axis", lambda ops, x: ops.diff(x, axis=0)),
    ("trapezoid", lambda ops, x: ops.trapezoid(x, dx=0.5)),
    ("trapezoid_axis", lambda ops, x: ops.trapezoid(x, axis=0)),
    ("correlate_valid", lambda ops, x: ops.correlate(x[0], x[1, :3])),
    ("correlate_same", lambda ops, x: ops.correlate(x[0], x[1, :4], mode="same")),
    ("correlate_full", lambda ops, x: ops.correlate(x[0, :3], x[1], mode="full")),
    ("segment_sum", lambda ops, x: ops.segment_sum(x, IDS)),
    ("segment_max", lambda ops, x: ops.segment_max(x, IDS, num_segments=4)),
    ("segment_min", lambda ops, x: ops.segment_min(x, IDS, num_segments=3)),
    ("segment_prod", lambda ops, x: ops.segment_prod(x, IDS, num_segments=3)),
    ("scatter", lambda ops, x: ops.scatter(numpy.array([[1], [3], [1], [0]]), x, (5, 6))),
    ("scatter_nd", lambda ops, x: ops.scatter(CELLS, x[0, :3], (4, 6))),
    ("scatter_update", lambda ops, x: ops.scatter_update(x, CELLS, x[1, :3] * 2)),
    ("scatter_update_add", lambda ops, x: ops.scatter_update(x, CELLS, x[1, :3], reduction="add")),
    ("scatter_update_max", lambda ops, x: ops.scatter_update(x, CELLS, x[1, :3], reduction="max")),
    ("scatter_update_mul", lambda ops, x: ops.scatter_update(x, CELLS, x[1, :3], reduction="mul")),
    ("slice_update", lambda ops, x: ops.slice_update(x, (1, 2), x[:2, :3])),
    ("bincount", lambda ops, x: ops.bincount(ops.argmax(x, axis=1), minlength=7)),
    ("unique", lambda ops, x: ops.unique(ops.argmax(x, axis=0))),
    ("nonzero", lambda ops, x: ops.nonzero(ops.greater(x, 0.3))),
    ("select", lambda ops, x: ops.select([ops.greater(x, 0.5), ops.less(x, -0.5)], [x, x * 2], 0.25)),
]
CALL_IDS = [c[0] for c in CALLS]
# Keras's torch backend computes these on int32 input too (the rest: float inputs only, or integers inside)
INTEGER_CALLS = {"amax", "amin", "average", "count_nonzero", "cumprod", "median", "quantile", "percentile", "ptp",
                 "nanargmax", "nancumsum", "nanmax", "nanmean", "nansum", "nanvar", "trace", "argsort", "sort",
                 "top_k", "searchsorted", "digitize", "corrcoef", "diff", "trapezoid", "segment_sum", "segment_max",
                 "scatter", "slice_update", "nanprod", "nanmedian", "argpartition"}
# Keras's torch argpartition casts its input to int32 first (so floats within one unit tie): integers only
FLOAT_REFUSED = {"argpartition"}


def _values(rng, dtype):
    if dtype == "int32":
        return rng.permutation(24).reshape(4, 6).astype("int32") - 12
    return (rng.permutation(24).reshape(4, 6) / 12.0 - 1.0 + rng.uniform(0, 0.01, (4, 6))).astype(dtype)


def _flat(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


@pytest.mark.parametrize("dtype", ["float32", "int32"])
@pytest.mark.parametrize("name,call", CALLS, ids=CALL_IDS)
def test_same_values_dtypes_and_shapes_as_keras_on_arrays(name, call, dtype, rng):
    if dtype == "int32" and name not in INTEGER_CALLS:
        pytest.skip("Keras's torch backend takes float inputs here")
    if dtype == "float32" and name in FLOAT_REFUSED:
        pytest.skip("Keras's torch backend truncates float inputs here")
    x = _values(rng, dtype)
    ours, theirs = _flat(call(gpu_dl.ops, x)), _flat(call(keras.ops, x))
    if name == "nonzero":                 # Keras's torch nonzero stacks the axes' indices in one tensor
        ours = [numpy.stack([backend.to_numpy(a) for a in ours])]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        a, b = backend.to_numpy(a), keras.ops.convert_to_numpy(b)
        if name == "top_k" and b.dtype == numpy.int64:
            b = b.astype("int32")         # Keras's torch top_k gives int64 indices on arrays, int32 on tensors
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, a.dtype, b.shape, b.dtype)
        numpy.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name,call", [c for c in CALLS if c[0] not in (
    "bincount", "unique", "nonzero", "corrcoef", "histogram")], ids=[
    c for c in CALL_IDS if c not in ("bincount", "unique", "nonzero", "corrcoef", "histogram")])
def test_same_shapes_and_dtypes_as_keras_on_symbolic_tensors(name, call):
    ours = _flat(call(gpu_dl.ops, gpu_dl.Input(batch_shape=(4, 6))))
    theirs = _flat(call(keras.ops, keras.Input(batch_shape=(4, 6))))
    assert [(tuple(t.shape), t.dtype) for t in ours] == [(tuple(t.shape), t.dtype) for t in theirs]


def test_histogram_and_corrcoef_shapes_on_symbolic_tensors():
    counts, edges = gpu_dl.ops.histogram(gpu_dl.Input(batch_shape=(24,)), bins=5)
    theirs = keras.ops.histogram(keras.Input(batch_shape=(24,)), bins=5)
    assert (counts.shape, edges.shape, counts.dtype) == (tuple(theirs[0].shape), tuple(theirs[1].shape),
                                                         theirs[0].dtype)
    # Keras writes corrcoef's result as x's shape; its values are (rows, rows), which gpu_dl gives.
    assert gpu_dl.ops.corrcoef(gpu_dl.Input(batch_shape=(4, 6))).shape == (4, 4)


def pooled(lib):
    """A model pooling a Dense layer's outputs along the sequence with these ops."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(6, 4), name="x")
    h = L.Dense(5, name="h")(x)
    values, indices = ops.top_k(ops.transpose(h, (0, 2, 1)), 2)
    parts = [ops.amax(h, axis=1), ops.amin(h, axis=1), ops.ptp(h, axis=1), ops.median(h, axis=1),
             ops.average(h, axis=-1, weights=numpy.linspace(0.5, 2.0, 5, dtype="float32"))[:, :5],
             ops.quantile(h, 0.25, axis=1), ops.percentile(h, 70.0, axis=1, method="midpoint"),
             ops.mean(ops.quantile(h, [0.2, 0.6], axis=1, method="nearest"), axis=0),
             ops.nanmean(h, axis=1), ops.nanstd(h, axis=1), ops.nanmax(h, axis=1), ops.nansum(h, axis=1),
             ops.nanmedian(h, axis=1), ops.nanquantile(h, 0.8, axis=1), ops.nanvar(h, axis=1),
             ops.nanprod(ops.tanh(h), axis=1), ops.nanmin(h, axis=1), ops.nanpercentile(h, 10.0, axis=1),
             ops.sum(ops.cumprod(ops.tanh(h), axis=1), axis=1), ops.sum(ops.nancumsum(h, axis=1), axis=1),
             ops.sum(ops.nancumprod(ops.tanh(h), axis=1), axis=1),
             ops.trace(ops.reshape(h[:, :5], (-1, 5, 5)), axis1=1, axis2=2)[:, None],
             ops.sum(ops.diff(h, axis=1), axis=1), ops.trapezoid(h, axis=1),
             ops.sort(h, axis=1)[:, 2], ops.mean(values, axis=-1),
             ops.cast(ops.argsort(h, axis=1)[:, 0], "float32"),
             ops.cast(ops.nanargmax(h, axis=1), "float32"), ops.cast(ops.nanargmin(h, axis=1), "float32"),
             # (a 1-D count: Keras's torch count_nonzero transposes results of two or more axes)
             ops.cast(ops.count_nonzero(ops.relu(h), axis=(1, 2)), "float32")[:, None],
             ops.cast(ops.digitize(h[:, 0], numpy.array([-0.5, 0.0, 0.5], "float32")), "float32"),
             ops.cast(ops.searchsorted(numpy.array([-0.5, 0.0, 0.5], "float32"), h[:, 1]), "float32"),
             ops.cast(ops.isin(ops.argmax(h, axis=1), numpy.array([0, 2])), "float32"),
             ops.cast(indices[:, :, 0], "float32")]
    joined = ops.concatenate(parts, axis=-1)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(joined), name="pooled")


def scattered(lib):
    """A model updating, scattering and segment-reducing a Dense layer's outputs (a fixed batch of 4)."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(batch_shape=(4, 6, 4), name="x")
    h = L.Dense(5, name="h")(x)
    first = h[:, 0]                                                                # (4, 5)
    parts = [ops.segment_sum(first, IDS, num_segments=3), ops.segment_max(first, IDS, num_segments=3),
             ops.segment_min(first, IDS, num_segments=3), ops.segment_prod(ops.tanh(first), IDS, num_segments=3),
             ops.scatter(numpy.array([[0], [2], [0], [1]]), first, (3, 5))]
    per_row = ops.reshape(ops.transpose(ops.stack(parts, axis=0), (1, 0, 2)), (1, -1))      # (1, 75)
    updated = ops.scatter_update(first, CELLS, h[0, 1, :3]) + \
        ops.scatter_update(first, CELLS, h[1, 1, :3], reduction="add") + \
        ops.slice_update(first, (1, 2), h[:2, 2, :2])
    pooled = ops.concatenate([updated, ops.broadcast_to(per_row, (4, 75))], axis=-1)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(pooled), name="scattered")


def selected(lib):
    """A model choosing between a Dense layer's outputs with select (two lists of tensors and a tensor default),
    and averaging them with weights that are a tensor (the call's keyword)."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(6, 4), name="x")
    h = L.Dense(5, name="h")(x)
    chosen = ops.select([ops.greater(h, 0.5), ops.less(h, -0.5)], [h * 2.0, ops.tanh(h)], h * 0.25)
    constant = ops.select([ops.greater(h, 0.0)], [h], 0.1)
    averaged = ops.average(h, axis=-1, weights=ops.sigmoid(chosen))[:, :, None]
    joined = ops.reshape(ops.concatenate([chosen, constant, averaged], axis=-1), (-1, 66))
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(joined), name="selected")


BUILDERS = [pooled, scattered, selected]
NAMES = ["pooled", "scattered", "selected"]


def _data(rng, n):
    return rng.standard_normal((n, 6, 4)).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.parametrize("build", BUILDERS, ids=NAMES)
def test_same_operations_and_outputs_as_keras(build, rng):
    backend.set_random_seed(0)
    assert_same_operations_and_outputs(keras, build(gpu_dl), build(keras), _data(rng, 4)[0])


@pytest.mark.parametrize("build", BUILDERS, ids=NAMES)
def test_training_steps_match_keras(build, rng):
    backend.set_random_seed(1)
    assert_training_steps_match(keras, build(gpu_dl), build(keras), rng, (6, 4), classes=3, batch=4)


@pytest.mark.parametrize("build", BUILDERS, ids=NAMES)
def test_files_written_by_keras_load_and_predict_the_same(build, tmp_path, rng):
    keras.utils.set_random_seed(0)
    x, y = _data(rng, 8)
    theirs = build(keras)
    if build is scattered:                  # a fixed batch of 4: Keras trains and predicts in batches of 4
        theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        theirs.fit(x, y, epochs=1, batch_size=4, verbose=0)
        theirs.save(tmp_path / "k.keras")
        ours = load_model(tmp_path / "k.keras")
        numpy.testing.assert_allclose(ours.predict(x, batch_size=4, verbose=0),
                                      theirs.predict(x, batch_size=4, verbose=0), rtol=1e-5, atol=1e-6)
        return
    ours_loads_keras_file(keras, theirs, x, y, tmp_path, load_model)


@pytest.mark.parametrize("build", BUILDERS, ids=NAMES)
def test_keras_loads_files_written_by_gpu_dl(build, tmp_path, rng):
    backend.set_random_seed(2)
    x, y = _data(rng, 4 if build is scattered else 8)
    ours = build(gpu_dl)
    if build is scattered:
        ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        ours.fit(x, y, epochs=1, batch_size=4, verbose=0)
        ours.save(tmp_path / "g.keras")
        theirs = keras.models.load_model(tmp_path / "g.keras")
        numpy.testing.assert_allclose(theirs.predict(x, batch_size=4, verbose=0),
                                      ours.predict(x, batch_size=4, verbose=0), rtol=1e-5, atol=1e-6)
        assert operations(ours.get_config()) == operations(theirs.get_config())
        return
    theirs, written = keras_loads_our_file(keras, ours, x, y, tmp_path)
    assert operations(written) == operations(theirs.get_config())


def counted(lib):
    """A model of integer ids: their counts (bincount, at least 8 long) through a Dense layer."""
    ids = lib.Input(shape=(5,), dtype="int32", name="ids")
    counts = lib.ops.reshape(lib.ops.cast(lib.ops.bincount(ids, minlength=8), "float32"), (-1, 8))
    return lib.Model(ids, lib.layers.Dense(3, activation="softmax", name="probs")(counts))


def test_a_bincount_model_loads_both_ways(tmp_path, rng):
    keras.utils.set_random_seed(0)
    x, y = rng.integers(0, 8, (9, 5)).astype("int32"), rng.integers(0, 3, 9)
    theirs = counted(keras)
    ours = counted(gpu_dl)
    assert operations(ours.get_config()) == operations(theirs.get_config())
    ours_loads_keras_file(keras, theirs, x, y, tmp_path, load_model)
    backend.set_random_seed(1)
    theirs, written = keras_loads_our_file(keras, counted(gpu_dl), x, y, tmp_path)
    assert operations(written) == operations(theirs.get_config())
