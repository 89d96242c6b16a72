"""Mixed precision against Keras 3 itself (where Keras is installed): the same "mixed_float16" Dense, Conv2D and LSTM
models trained a few steps in both libraries end with the same weights and loss scale (to float16 rounding), and
.keras files of mixed models move both ways: policies, predictions and the LossScaleOptimizer's state."""
import json
import os
import warnings
import zipfile

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


@pytest.fixture(autouse=True)
def both_mixed():
    """Both libraries' global policy "mixed_float16" for the test, float32 (or what it was) after."""
    theirs_before = keras.config.dtype_policy()
    gpu_dl.mixed_precision.set_global_policy("mixed_float16")
    keras.config.set_dtype_policy("mixed_float16")
    yield
    gpu_dl.utils.clear_session(free_memory=False)      # the global policy follows floatx again
    keras.config.set_dtype_policy(theirs_before)


def mlp(lib):
    return lib.Sequential([lib.Input((6,)), lib.layers.Dense(16, activation="relu"), lib.layers.Dense(3),
                           lib.layers.Activation("softmax", dtype="float32")])


def cnn(lib):
    return lib.Sequential([lib.Input((8, 8, 2)), lib.layers.Conv2D(4, 3, activation="relu"),
                           lib.layers.MaxPooling2D(), lib.layers.Conv2D(3, 2, padding="same"),
                           lib.layers.GlobalAveragePooling2D(), lib.layers.Dense(3, activation="softmax")])


def normalized(lib):
    """BatchNormalization and LayerNormalization compute in float32 inside the mixed model, as Keras's do."""
    return lib.Sequential([lib.Input((6,)), lib.layers.Dense(12), lib.layers.BatchNormalization(),
                           lib.layers.Activation("relu"), lib.layers.Dense(8), lib.layers.LayerNormalization(),
                           lib.layers.Dense(3, activation="softmax")])


def rnn(lib):
    inputs = lib.Input((5, 3))
    hidden = lib.layers.LSTM(6)(inputs)
    return lib.Model(inputs, lib.layers.Dense(3, activation="softmax", dtype="float32")(hidden))


def own_weight_layer(lib):
    """A layer whose call reads its own weight (``ops.matmul(x, self.w)``) and calls a Dense; Keras autocasts both
    to float16 in a "mixed_float16" call. The dtype of the product is recorded where the call sees it."""
    class OwnWeight(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(5, activation="tanh")
            self.seen = []

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 7), initializer="glorot_uniform", name="w")

        def call(self, x):
            h = lib.ops.matmul(x, self.w)
            self.seen.append(str(h.dtype).replace("torch.", ""))
            return self.dense(lib.ops.relu(h))

    return OwnWeight()


def own_weight(lib):
    return lib.Sequential([lib.Input((6,)), own_weight_layer(lib), lib.layers.Dense(3, activation="softmax")])


MODELS = {"mlp": (mlp, (6,)), "cnn": (cnn, (8, 8, 2)), "lstm": (rnn, (5, 3)), "normalized": (normalized, (6,)),
          "own_weight": (own_weight, (6,))}


@pytest.mark.parametrize("name", list(MODELS))
def test_same_training_steps_as_keras(xp, name):
    make, sample = MODELS[name]
    ours, theirs = make(gpu_dl), make(keras)
    assert [l.dtype_policy.name for l in ours.layers] == [l.dtype_policy.name for l in theirs.layers]
    assert [l.compute_dtype for l in ours.layers] == [l.compute_dtype for l in theirs.layers]
    rng = numpy.random.default_rng(7)
    # Random weights; a moving variance stays positive.
    ours.set_weights([(numpy.abs(1 + rng.standard_normal(v.shape)) if "variance" in v.name else
                       rng.standard_normal(v.shape) * 0.4).astype("float32") for v in ours.weights])
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert type(ours.optimizer).__name__ == type(theirs.optimizer).__name__ == "LossScaleOptimizer"
    x = rng.standard_normal((12,) + sample).astype("float32")
    ours_out, theirs_out = ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs(x))
    assert ours_out.dtype == theirs_out.dtype
    numpy.testing.assert_allclose(ours_out.astype("float32"), theirs_out.astype("float32"), rtol=1e-2, atol=2e-3)
    for step in range(4):
        x = rng.standard_normal((8,) + sample).astype("float32")
        y = rng.integers(0, 3, 8)
        ours_loss, theirs_loss = ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y))
        assert ours_loss == pytest.approx(theirs_loss, rel=5e-3, abs=1e-3), f"step {step}"
    assert ours.optimizer.dynamic_scale == float(keras.ops.convert_to_numpy(theirs.optimizer.dynamic_scale))
    assert ours.optimizer.iterations == int(keras.ops.convert_to_numpy(theirs.optimizer.iterations))
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype == numpy.float32
        numpy.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-3)
    if name == "own_weight":
        assert set(ours.layers[0].seen) == {"float16"} and theirs.layers[0].seen[-1] == "float16"
        assert ours.layers[0].w.grad.dtype == numpy.float32


def test_keras_mixed_file_loads_and_predicts_the_same_in_gpu_dl(xp, tmp_path):
    theirs = cnn(keras)
    rng = numpy.random.default_rng(1)
    x, y = rng.standard_normal((10, 8, 8, 2)).astype("float32"), rng.integers(0, 3, 10)
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.fit(x, y, epochs=2, batch_size=5, verbose=0)
    theirs.save(tmp_path / "k.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # every variable, the optimizer's included, is read
        ours = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert [l.dtype_policy.name for l in ours.layers] == ["mixed_float16"] * len(ours.layers)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))
    expected = theirs.predict(x, verbose=0)
    got = ours.predict(x, verbose=0)
    assert got.dtype == expected.dtype == numpy.float16
    numpy.testing.assert_allclose(got.astype("float32"), expected.astype("float32"), rtol=1e-2, atol=2e-3)
    # The optimizer's state came along: the loss scale, its counter and the inner Adam's steps.
    assert isinstance(ours.optimizer, gpu_dl.optimizers.LossScaleOptimizer)
    assert ours.optimizer.dynamic_scale == float(keras.ops.convert_to_numpy(theirs.optimizer.dynamic_scale))
    assert ours.optimizer.step_counter == int(keras.ops.convert_to_numpy(theirs.optimizer.step_counter))
    # (at least one of the four steps applied: a step whose scaled gradients overflow is skipped, and how many do
    # depends on Keras's initial weights, drawn from its global seed state)
    assert ours.optimizer.iterations == int(keras.ops.convert_to_numpy(theirs.optimizer.iterations)) >= 1
    assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=5e-3, abs=1e-3)


def test_gpu_dl_mixed_file_loads_and_predicts_the_same_in_keras(xp, tmp_path):
    ours = mlp(gpu_dl)
    rng = numpy.random.default_rng(2)
    x, y = rng.standard_normal((10, 6)).astype("float32"), rng.integers(0, 3, 10)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ours.fit(x, y, epochs=2, batch_size=5, verbose=0)
    ours.save(tmp_path / "g.keras")
    with zipfile.ZipFile(tmp_path / "g.keras") as archive:
        written = json.loads(archive.read("config.json"))
    assert written["config"]["dtype"]["config"]["name"] == "mixed_float16"
    assert [entry["config"]["dtype"] for entry in written["config"]["layers"][1:]] == [
        {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}
        for name in ("mixed_float16", "mixed_float16", "float32")]
    assert written["compile_config"]["optimizer"]["class_name"] == "Adam"     # as Keras: what compile was given
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # Keras reads every variable, its inner optimizer's included
        theirs = keras.models.load_model(tmp_path / "g.keras")
    assert [l.dtype_policy.name for l in theirs.layers] == ["mixed_float16", "mixed_float16", "float32"]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                                  ours.predict(x, verbose=0), rtol=1e-2, atol=2e-3)
    assert type(theirs.optimizer).__name__ == "LossScaleOptimizer"
    assert float(keras.ops.convert_to_numpy(theirs.optimizer.dynamic_scale)) == ours.optimizer.dynamic_scale
    assert int(keras.ops.convert_to_numpy(theirs.optimizer.iterations)) == ours.optimizer.iterations >= 2
    assert float(theirs.train_on_batch(x, y)) == pytest.approx(ours.train_on_batch(x, y), rel=5e-3, abs=1e-3)


def test_unit_normalization_computes_in_float16_without_warnings_as_keras_does(xp, rng):
    """Keras normalizes in the float16 compute dtype, 1 / 1e-12 becoming inf there; gpu_dl the same, with no
    overflow warning from that cap, forward or backward. A zero slice is NaN in both (0 * inf)."""
    x = rng.standard_normal((4, 6)).astype("float32")
    x[2] = 0
    ours, theirs = gpu_dl.layers.UnitNormalization(), keras.layers.UnitNormalization()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ours(xp.asarray(x), training=True)
        dx = ours.backward(xp.ones_like(y))
    want = keras.ops.convert_to_numpy(theirs(x))
    assert y.dtype == want.dtype == numpy.float16
    assert numpy.isfinite(gpu_dl.backend.to_numpy(dx)[[0, 1, 3]]).all()
    numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(y), want, rtol=1e-3, atol=1e-3)
    assert numpy.isnan(want[2]).all() and numpy.isnan(gpu_dl.backend.to_numpy(y)[2]).all()


def _optimizer_datasets(path):
    """(name, dtype) of each optimizer dataset of a weights file, or of the one inside a .keras archive, sorted."""
    import h5py
    if str(path).endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            path = path.with_suffix(".extracted.weights.h5")
            path.write_bytes(archive.read("model.weights.h5"))
    found = []
    with h5py.File(path) as f:
        f["optimizer"].visititems(lambda name, obj: found.append((name, str(obj.dtype)))
                                  if isinstance(obj, h5py.Dataset) else None)
    return sorted(found)


def _scale_state(lib, optimizer):
    """The LossScaleOptimizer's step_counter and dynamic_scale: (value, dtype) each."""
    return [(float(lib.ops.convert_to_numpy(v)), str(numpy.dtype(v.dtype))) for v in optimizer.variables[2:4]]


def test_loss_scale_state_is_written_with_keras_dtypes_and_files_load_both_ways(xp, tmp_path):
    """step_counter is int32 and dynamic_scale float32 in both libraries' variables and files; each library reads
    the other's .keras and .weights.h5 files to the same state."""
    rng = numpy.random.default_rng(3)
    x, y = rng.standard_normal((10, 6)).astype("float32"), rng.integers(0, 3, 10)
    models = {}
    for lib in (gpu_dl, keras):
        model = mlp(lib)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=3, batch_size=5, verbose=0)
        model.save(tmp_path / f"{lib.__name__}.keras")
        model.save_weights(tmp_path / f"{lib.__name__}.weights.h5")
        models[lib] = model
    ours, theirs = models[gpu_dl], models[keras]
    assert [d for _, d in _scale_state(gpu_dl, ours.optimizer)] == ["int32", "float32"]
    assert _scale_state(gpu_dl, ours.optimizer) == _scale_state(keras, theirs.optimizer)
    assert _scale_state(gpu_dl, ours.optimizer)[0][0] >= 1           # a counter that a file must carry
    for suffix in (".keras", ".weights.h5"):
        written = _optimizer_datasets(tmp_path / f"gpu_dl{suffix}")
        assert written == _optimizer_datasets(tmp_path / f"keras{suffix}")
        assert ("vars/2", "int32") in written and ("vars/3", "float32") in written
    for source, target in ((gpu_dl, keras), (keras, gpu_dl)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # every variable, the optimizer's included, is read
            loaded = target.models.load_model(tmp_path / f"{source.__name__}.keras")
        assert _scale_state(target, loaded.optimizer) == _scale_state(source, models[source].optimizer)
        fresh = mlp(target)
        fresh.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        fresh.optimizer.build(fresh.trainable_variables)
        fresh.load_weights(tmp_path / f"{source.__name__}.weights.h5")
        assert _scale_state(target, fresh.optimizer) == _scale_state(source, models[source].optimizer)
