"""gpu_dl's array ops against keras.ops (where Keras is installed): the same calls on arrays give the same values,
dtypes and shapes; on symbolic tensors the same shapes, dtypes and recorded operations (module, class, config);
functional models written with either library's ops give the same outputs and training steps, and their .keras
files load in the other library and predict the same."""
import json
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_ops_oracle_harness import builder_tests, operations  # noqa: E402
from keras_steps import assert_training_steps_match, ours_loads_keras_file  # noqa: E402

_rng = numpy.random.default_rng(7)
A = _rng.uniform(0.5, 2.0, (3, 4, 6)).astype("float32")            # positive
B = _rng.standard_normal((3, 4, 6)).astype("float32")               # signed
V = _rng.standard_normal(5).astype("float32")
IMG = _rng.standard_normal((2, 4, 6, 8)).astype("float32")
COLS = _rng.standard_normal((2, 8, 6)).astype("float32")
IDS = numpy.array([[0, 3, 3], [5, 1, 0]], dtype="int32")
INTS = numpy.arange(24, dtype="int32").reshape(2, 3, 4)

# (id, the call written once for keras.ops and gpu_dl.ops)
EAGER = [
    ("append", lambda o: o.append(A, B, axis=1)), ("append_flat", lambda o: o.append(A, INTS)),
    ("array_split", lambda o: o.array_split(B, 4, axis=2)), ("hsplit", lambda o: o.hsplit(B, [1, 3])),
    ("vsplit", lambda o: o.vsplit(B, 3)), ("dsplit", lambda o: o.dsplit(B, [2, 5])),
    ("hstack", lambda o: o.hstack([A, B])), ("vstack", lambda o: o.vstack([V, V])),
    ("dstack", lambda o: o.dstack([A, B])), ("hstack_ints", lambda o: o.hstack([INTS, INTS])),
    ("moveaxis", lambda o: o.moveaxis(B, [0, 2], [2, 0])), ("swapaxes", lambda o: o.swapaxes(B, 0, 2)),
    ("ravel", lambda o: o.ravel(INTS)), ("rot90", lambda o: o.rot90(B, k=3, axes=(2, 0))),
    ("fliplr", lambda o: o.fliplr(B)), ("flipud", lambda o: o.flipud(B)),
    ("diag", lambda o: o.diag(V, k=-2)), ("diag_matrix", lambda o: o.diag(B[0], k=2)),
    ("diagflat", lambda o: o.diagflat(B[0, :2], k=1)), ("diagonal", lambda o: o.diagonal(B, 1, 2, 0)),
    ("tri", lambda o: o.tri(3, 5, k=1)), ("tri_int", lambda o: o.tri(4, dtype="int32")),
    ("vander", lambda o: o.vander(V, 4)), ("vander_increasing", lambda o: o.vander(V, increasing=True)),
    ("vander_ints", lambda o: o.vander(INTS[0, 0], 3)),
    ("kron", lambda o: o.kron(B[0], A[1, :2])), ("kron_ints", lambda o: o.kron(INTS[0], INTS[1])),
    ("outer", lambda o: o.outer(V, B[0])), ("inner", lambda o: o.inner(B, A[0])),
    ("inner_ints", lambda o: o.inner(INTS, INTS[0])), ("vdot", lambda o: o.vdot(V, V * 2.0)),
    # (Keras's torch backend crosses along the first axis of 3 when no axis is given: these have one, the last)
    ("cross", lambda o: o.cross(B[:2, ..., :3], A[:2, ..., 3:])),
    ("cross_axis", lambda o: o.cross(B[:2, :3], A[:2, 1:], axis=1)),
    ("meshgrid", lambda o: o.meshgrid(V, B[0, 0])), ("meshgrid_ij", lambda o: o.meshgrid(V, B[0, 0], V,
                                                                                        indexing="ij")),
    ("unstack", lambda o: o.unstack(o.convert_to_tensor(B), axis=1)),
    ("unravel_index", lambda o: o.unravel_index(IDS, (2, 3))),
    ("depth_to_space", lambda o: o.depth_to_space(IMG, 2)),
    ("depth_to_space_first", lambda o: o.depth_to_space(IMG, 2, data_format="channels_first")),
    ("space_to_depth", lambda o: o.space_to_depth(IMG, 2)),
    ("space_to_depth_first", lambda o: o.space_to_depth(IMG, 2, data_format="channels_first")),
    ("extract_sequences", lambda o: o.extract_sequences(B, 3, 2)),
    ("unfold", lambda o: o.unfold(o.convert_to_tensor(IMG), 3, dilation=1, padding=1, stride=2)),
    ("unfold_pairs", lambda o: o.unfold(o.convert_to_tensor(IMG), (2, 3), dilation=(2, 1), padding=(0, 1),
                                        stride=(1, 2))),
    ("fold", lambda o: o.fold(o.convert_to_tensor(COLS), (3, 4), 2)),
    ("fold_padded", lambda o: o.fold(o.convert_to_tensor(COLS), (5, 3), 2, padding=1, stride=2)),
    ("empty", lambda o: o.empty((2, 3)).shape), ("empty_like", lambda o: o.empty_like(INTS).shape),
    ("geomspace", lambda o: o.geomspace(1.0, 1000.0, 4)), ("geomspace_arrays", lambda o: o.geomspace(A, A * 5.0, 3)),
    ("geomspace_open", lambda o: o.geomspace(2, 32, 4, endpoint=False)),
    ("logspace", lambda o: o.logspace(0.0, 2.0, 5, base=2.0)), ("logspace_arrays", lambda o: o.logspace(B, A, 4)),
    ("array", lambda o: o.array(INTS, dtype="float32")), ("identity", lambda o: o.identity(3)),
    ("bartlett", lambda o: o.bartlett(7)), ("blackman", lambda o: o.blackman(6)),
    ("hamming", lambda o: o.hamming(5)), ("hanning", lambda o: o.hanning(8)), ("kaiser", lambda o: o.kaiser(9, 4.0)),
    ("rearrange", lambda o: o.rearrange(IMG, "b h w c -> b c h w")),
    ("rearrange_groups", lambda o: o.rearrange(IMG, "b (h1 h) (w1 w) c -> (b h1 w1) h w c", h1=2, w1=3)),
    ("rearrange_merge", lambda o: o.rearrange(IMG, "b h w c -> h (b w) c")),
    ("view", lambda o: o.view(B, "int32")), ("view_half", lambda o: o.view(B, "float16")),
    ("multi_hot", lambda o: o.multi_hot(IDS, 6)), ("multi_hot_int", lambda o: o.multi_hot(IDS, 6, dtype="int32")),
    ("cdist", lambda o: o.cdist(B, A)), ("cdist_ints", lambda o: o.cdist(INTS, INTS)),
]


def _values(result):
    if isinstance(result, (list, tuple)) and result and not isinstance(result[0], int):
        return [_values(r) for r in result]
    if isinstance(result, tuple):
        return result
    return numpy.asarray(keras.ops.convert_to_numpy(result)) if not isinstance(result, numpy.ndarray) else result


def _assert_same(ours, theirs, what):
    if isinstance(theirs, list):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(theirs), what
        for o, t in zip(ours, theirs):
            _assert_same(o, t, what)
        return
    if isinstance(theirs, tuple):
        assert tuple(ours) == theirs, what
        return
    ours = backend.to_numpy(ours)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (what, ours.shape, ours.dtype, theirs.shape,
                                                                         theirs.dtype)
    numpy.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-6, err_msg=what)


@pytest.mark.parametrize("name,call", EAGER, ids=[c[0] for c in EAGER])
def test_the_same_calls_give_keras_s_values_dtypes_and_shapes(name, call):
    _assert_same(call(gpu_dl.ops), _values(call(keras.ops)), name)


# (id, the call on symbolic tensors x (None, 4, 6), img (None, 4, 6, 8), ids (None, 3) int32, written once)
SYMBOLIC = [
    ("append", lambda o, x, img, ids: o.append(x, x, axis=2)),
    ("append_flat", lambda o, x, img, ids: o.append(x, ids)),
    ("array_split", lambda o, x, img, ids: o.array_split(x, 4, axis=-1)),
    ("array_split_batch", lambda o, x, img, ids: o.array_split(x, 2)),
    ("hsplit", lambda o, x, img, ids: o.hsplit(x, [1, 3])), ("vsplit", lambda o, x, img, ids: o.vsplit(x, [1])),
    ("dsplit", lambda o, x, img, ids: o.dsplit(x, 3)),
    ("hstack", lambda o, x, img, ids: o.hstack([x, x])), ("vstack", lambda o, x, img, ids: o.vstack([x, x])),
    ("dstack", lambda o, x, img, ids: o.dstack([x, x])),
    ("moveaxis", lambda o, x, img, ids: o.moveaxis(img, [1, 3], [3, 1])),
    ("moveaxis_batch", lambda o, x, img, ids: o.moveaxis(x, 0, -1)),
    ("swapaxes", lambda o, x, img, ids: o.swapaxes(img, -1, 1)), ("ravel", lambda o, x, img, ids: o.ravel(x)),
    ("rot90", lambda o, x, img, ids: o.rot90(img, axes=(1, 2))),
    ("fliplr", lambda o, x, img, ids: o.fliplr(x)), ("flipud", lambda o, x, img, ids: o.flipud(x)),
    ("diag", lambda o, x, img, ids: o.diag(o.ravel(x), k=1)), ("diag_matrix", lambda o, x, img, ids: o.diag(x[0])),
    ("diagflat", lambda o, x, img, ids: o.diagflat(x[0], k=-2)),
    ("diagonal", lambda o, x, img, ids: o.diagonal(img, 1, 1, 2)),
    ("kron", lambda o, x, img, ids: o.kron(x, x)), ("outer", lambda o, x, img, ids: o.outer(x, x)),
    ("inner", lambda o, x, img, ids: o.inner(x, x)), ("vdot", lambda o, x, img, ids: o.vdot(x, x)),
    ("cross", lambda o, x, img, ids: o.cross(x[..., :3], x[..., 3:])),
    ("meshgrid", lambda o, x, img, ids: o.meshgrid(x[0, 0], x[0])),
    ("unstack", lambda o, x, img, ids: o.unstack(x, axis=1)),
    ("unravel_index", lambda o, x, img, ids: o.unravel_index(ids, (2, 3))),
    ("depth_to_space", lambda o, x, img, ids: o.depth_to_space(img, 2)),
    ("space_to_depth", lambda o, x, img, ids: o.space_to_depth(img, 2)),
    ("space_to_depth_first", lambda o, x, img, ids: o.space_to_depth(o.moveaxis(img, 1, 3), 2, "channels_first")),
    ("extract_sequences", lambda o, x, img, ids: o.extract_sequences(x, 3, 2)),
    ("unfold", lambda o, x, img, ids: o.unfold(img, 2, padding=1)),
    ("fold", lambda o, x, img, ids: o.fold(x, (3, 4), 2)),
    ("empty_like", lambda o, x, img, ids: o.empty_like(ids, dtype="float32")),
    ("geomspace", lambda o, x, img, ids: o.geomspace(x, x * 2.0, 3)),
    ("logspace", lambda o, x, img, ids: o.logspace(x, 1.0, 4, base=3)),
    ("array", lambda o, x, img, ids: o.array(ids, dtype="float32")),
    ("view", lambda o, x, img, ids: o.view(x, "int32")),
    ("cdist", lambda o, x, img, ids: o.cdist(x, x)),
    ("vander", lambda o, x, img, ids: o.vander(x[0, 0], 3)),
]


def _symbolic(lib, call):
    x, img = lib.Input((4, 6), name="x"), lib.Input((4, 6, 8), name="img")
    ids = lib.Input((3,), dtype="int32", name="ids")
    result = call(lib.ops, x, img, ids)
    return result if isinstance(result, (list, tuple)) else [result]


def _recorded(tensor):
    op = tensor._keras_history[0]
    config = {k: v for k, v in op.get_config().items() if k != "name"}
    return type(op).__module__ if isinstance(op, keras.Operation) else op.keras_module, type(op).__name__, \
        json.dumps(config, sort_keys=True, default=list)


@pytest.mark.parametrize("name,call", SYMBOLIC, ids=[c[0] for c in SYMBOLIC])
def test_symbolic_calls_record_keras_s_operations_shapes_and_dtypes(name, call):
    ours, theirs = _symbolic(gpu_dl, call), _symbolic(keras, call)
    assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in theirs]
    assert [t.dtype for t in ours] == [t.dtype for t in theirs]
    assert _recorded(ours[0]) == _recorded(theirs[0])


def test_multi_hot_s_symbolic_dtype_is_the_one_computed():
    """Keras's symbolic multi_hot claims the input's dtype; the tensor it computes has ``dtype`` (floatx), which
    gpu_dl's symbolic result has."""
    ours, theirs = _symbolic(gpu_dl, lambda o, x, img, ids: o.multi_hot(ids, 6)), \
        _symbolic(keras, lambda o, x, img, ids: o.multi_hot(ids, 6))
    assert ours[0].shape == theirs[0].shape == (None, 6)
    assert _recorded(ours[0]) == _recorded(theirs[0])
    assert ours[0].dtype == keras.backend.standardize_dtype(keras.ops.multi_hot(IDS, 6).dtype) == "float32"


# ------------------------------------------------------------------ functional models
def rearranging(lib):
    """A model of the rearranging ops: axes moved, flipped and rotated, blocks and windows, joins and splits,
    diagonals and products."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(4, 6), name="x")
    h = L.Dense(8, name="h")(x)                                                           # (None, 4, 8)
    img = ops.reshape(h, (-1, 2, 2, 8))
    blocks = ops.space_to_depth(ops.depth_to_space(img, 2), 2)                            # (None, 2, 2, 8)
    first = ops.depth_to_space(ops.moveaxis(img, -1, 1), 2, data_format="channels_first")  # (None, 2, 4, 4)
    patches = ops.unfold(first, 2, padding=1)                                             # (None, 8, 25)
    folded = ops.fold(patches, (4, 4), 2, padding=1)                                      # (None, 2, 4, 4)
    windows = ops.extract_sequences(h, 3, 2)                                              # (None, 4, 3, 3)
    parts = ops.array_split(h, 3, axis=2)
    left, right = ops.hsplit(h, [1])
    first_row, *rows = ops.unstack(h, axis=1)
    stacked = ops.dstack([ops.fliplr(h), ops.rot90(h, axes=(1, 2))[:, :4, :4], ops.swapaxes(h[:, :, :4], 1, 2)])
    crossed = ops.cross(h[..., :3], h[..., 3:6])
    pooled = [ops.mean(t, axis=1) for t in (blocks, first, folded, windows, stacked)] + [
        ops.sum(p, axis=-1) for p in parts] + [
        ops.mean(ops.hstack([left, right]), axis=-1), ops.mean(ops.append(first_row, rows[-1], axis=1), axis=1,
                                                                keepdims=True),
        ops.diagonal(h, 1, 1, 2), crossed[:, 0], ops.mean(ops.cdist(h, h * 0.5 + 1.0), axis=1),
        ops.reshape(ops.kron(ops.mean(h, axis=1, keepdims=True), numpy.array([[1.0, -0.5]], dtype="float32")),
                    (-1, 16)),
        ops.inner(h[:, 0], numpy.linspace(-1, 1, 16, dtype="float32").reshape(2, 8)),
        ops.mean(ops.dstack([h, h]), axis=1)]
    joined = ops.concatenate([ops.reshape(p, (-1, int(numpy.prod(p.shape[1:])))) for p in pooled], axis=-1)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(joined), name="rearranging")


def spaced(lib):
    """A model of the sequences, grids and products of numbers: geomspace, logspace, vander, outer and meshgrid
    (each batch's rows against one another), multi_hot and unravel_index of integer ids."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(5,), name="x")
    h = L.Dense(4, activation="sigmoid", name="h")(x)                                   # (None, 4), in (0, 1)
    geo = ops.moveaxis(ops.geomspace(h + 0.5, h + 2.0, 3), 0, -1)                       # (None, 4, 3)
    log = ops.moveaxis(ops.logspace(h, h * 0.5 + 1.0, 3, base=2), 0, -1)
    grid_a, grid_b = ops.meshgrid(ops.sum(h, axis=1), ops.mean(h, axis=1), indexing="ij")
    pooled = [ops.reshape(geo, (-1, 12)), ops.reshape(log, (-1, 12)),
              ops.expand_dims(ops.sum(ops.outer(h, h[0]), axis=0), 0) * h,
              ops.sum(grid_a * grid_b, axis=1, keepdims=True)]
    joined = ops.concatenate(pooled, axis=-1)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(joined), name="spaced")


def mixing(lib):
    """A model of the ops that read across samples or make matrices: diag and diagflat of the first sample's
    values, vdot of the first two samples, flipud (the batch reversed), dsplit, array and view. (Not vander: Keras's
    torch backend cannot differentiate it, torch.vander writing in place.)"""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(4, 6), name="x")
    h = L.Dense(6, name="h")(x)                                                         # (None, 4, 6)
    mixed = ops.matmul(h, ops.diag(h[0, 0], k=0))                                       # (None, 4, 6)
    square = ops.diagflat(ops.mean(h, axis=0)[:2, 0], k=1)                              # (3, 3)
    pooled = [ops.mean(mixed, axis=1), ops.vdot(ops.ravel(h[0]), ops.ravel(h[1])) * 0.05 * ops.mean(h, axis=1),
              ops.mean(ops.matmul(ops.dsplit(h, 2)[1], square), axis=1), ops.mean(ops.flipud(h), axis=1),
              ops.mean(ops.view(ops.array(h, dtype="float32"), "float32"), axis=1)]
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(ops.concatenate(pooled, axis=-1)),
                     name="mixing")


def _sample_shape(build):
    return (5,) if build is spaced else (4, 6)


def _data(rng, n, build):
    return rng.standard_normal((n,) + _sample_shape(build)).astype("float32"), rng.integers(0, 3, n)


(test_same_operations_and_outputs_as_keras, test_training_steps_match_keras,
 test_files_written_by_keras_load_and_predict_the_same, test_keras_loads_files_written_by_gpu_dl) = \
    builder_tests(keras, [rearranging, spaced, mixing], _data, _sample_shape)


def integer_ids(lib):
    """multi_hot and unravel_index of integer ids feeding a Dense (no gradient goes back through them)."""
    ops, L = lib.ops, lib.layers
    ids = lib.Input(shape=(3,), dtype="int32", name="ids")
    rows, cols = ops.unravel_index(ids, (2, 3))
    coords = ops.cast(ops.concatenate([rows, cols], axis=-1), "float32")
    joined = ops.concatenate([ops.multi_hot(ids, 6), coords], axis=-1)
    return lib.Model(ids, L.Dense(3, activation="softmax", name="probs")(joined))


def test_integer_id_ops_train_as_keras_s_and_files_load(tmp_path, rng):
    backend.set_random_seed(3)
    ours, theirs = integer_ids(gpu_dl), integer_ids(keras)
    assert operations(ours.get_config()) == operations(theirs.get_config())
    ids = lambda rng, n: rng.integers(0, 6, (n, 3)).astype("int32")     # noqa: E731
    assert_training_steps_match(keras, ours, theirs, rng, None, classes=3, batch=5, inputs=ids)
    keras.utils.set_random_seed(0)
    ours_loads_keras_file(keras, integer_ids(keras), ids(rng, 9), rng.integers(0, 3, 9), tmp_path, load_model)


def rearranged_batch(lib):
    """Keras's symbolic rearrange needs every size known: a model of a fixed batch size."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(batch_shape=(4, 4, 6), name="x")
    h = L.Dense(8, name="h")(x)
    h = ops.rearrange(h, "b h (w c) -> b (w h) c", c=2)
    h = ops.rearrange(h, "b l c -> b (c l)")
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(h))


def test_rearrange_matches_keras_in_a_model_of_a_fixed_batch(tmp_path, rng):
    backend.set_random_seed(4)
    ours, theirs = rearranged_batch(gpu_dl), rearranged_batch(keras)
    assert ours.output_shape == theirs.output_shape == (4, 3)
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((4, 4, 6)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs(x)), rtol=2e-5,
                                  atol=2e-6)
    assert_training_steps_match(keras, ours, theirs, rng, (4, 6), classes=3, batch=4)
    ours.save(tmp_path / "g.keras")
    numpy.testing.assert_allclose(keras.models.load_model(tmp_path / "g.keras").predict(x, verbose=0),
                                  ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # The axis lengths (c=2) are the call's keywords in both files: each library reads the other's.
    theirs.save(tmp_path / "k.keras")
    numpy.testing.assert_allclose(load_model(tmp_path / "k.keras").predict(x, verbose=0),
                                  keras.ops.convert_to_numpy(theirs(x)), rtol=2e-5, atol=2e-6)
    numpy.testing.assert_allclose(load_model(tmp_path / "g.keras").predict(x, verbose=0), ours.predict(x, verbose=0),
                                  rtol=1e-6)


@pytest.mark.parametrize("shapes, axis", [([(None, None, 3), (None, 5, 3)], -1), ([(None, 5, 3), (None, None, 3)], -1),
                                          ([(None, None, 3), (None, 5, 2)], 2), ([(2, None), (None, 4)], 0)])
def test_concatenate_takes_the_first_tensors_size_off_the_axis_as_keras(shapes, axis):
    """Off the joined axis the output has the first tensor's size, unknown where it is though another tensor's is
    known, as Keras's ``ops.concatenate`` gives it."""
    def shape(lib):
        return tuple(lib.ops.concatenate([lib.KerasTensor(s) for s in shapes], axis=axis).shape)
    assert shape(gpu_dl) == shape(keras)
    assert shape(gpu_dl)[0 if axis else 1] == shapes[0][0 if axis else 1]
