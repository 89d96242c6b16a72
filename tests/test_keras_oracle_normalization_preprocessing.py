"""Normalization (the preprocessing layer) against Keras 3 itself (where Keras is installed): adapt() gives the same
weights (the same bits for a NumPy array; batched data merged by Keras's own code), calls give the same outputs,
given statistics and configs agree, files move both ways, and a model holding one takes the same training steps."""
import json
import os
import types

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def plain(config):
    """A config without its dtype (a DTypePolicy in Keras) and its name (numbered per library), tuples as lists."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k not in ("dtype", "name")}))


@pytest.mark.parametrize("shape,kwargs", [((50, 4), {}), ((1, 3), {}), ((20, 5, 3), {}), ((20, 5, 3), {"axis": 1}),
                                          ((9, 4, 3), {"axis": (1, 2)}), ((12, 3), {"axis": None}),
                                          ((30, 4), {"invert": True})])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adapt_gives_keras_s_weights_and_outputs(rng, shape, kwargs, dtype):
    data = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    ours, theirs = gpu_dl.layers.Normalization(**kwargs), keras.layers.Normalization(**kwargs)
    ours.adapt(data)
    theirs.adapt(data)
    assert [w.path for w in ours.weights] == [w.path.replace(theirs.name, ours.name) for w in theirs.weights]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype
        numpy.testing.assert_array_equal(a, b)
    x = (rng.standard_normal(shape) * 3 + 1).astype("float32")
    numpy.testing.assert_allclose(backend.to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6,
                                  atol=1e-6)
    assert plain(ours.get_config()) == plain(theirs.get_config())


def test_batched_adapt_merges_as_keras_s_own_code_does(rng, monkeypatch):
    # Keras 3.15 looks for tf.data.Dataset before it takes an iterable; without TensorFlow installed, a stand-in
    # lets its own batch-merging code run.
    from keras.src.layers.preprocessing import normalization as keras_normalization
    monkeypatch.setattr(keras_normalization, "tf", types.SimpleNamespace(data=types.SimpleNamespace(
        Dataset=type("Dataset", (), {}))))
    data = (rng.standard_normal((37, 4, 3)) * [1, 2, 3] + [0, 5, -1]).astype("float32")
    batches = [data[:5], data[5:6], (data[6:20], None), data[20:]]
    ours, theirs = gpu_dl.layers.Normalization(), keras.layers.Normalization()
    ours.adapt(batches)
    theirs.adapt(batches)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs,shape", [({"mean": 3.0, "variance": 2.0}, (4, 3)),
                                          ({"mean": [1.0, 2.0, 3.0], "variance": [1.0, 4.0, 0.0]}, (4, 3)),
                                          ({"axis": (1, 2), "mean": [1.0, -1.0], "variance": [4.0, 0.25]}, (3, 5, 2)),
                                          ({"mean": [1.0, 2.0], "variance": [1.0, 4.0], "invert": True}, (6, 2))])
def test_given_statistics_match(rng, kwargs, shape):
    ours, theirs = gpu_dl.layers.Normalization(**kwargs), keras.layers.Normalization(**kwargs)
    x = rng.standard_normal(shape).astype("float32")
    numpy.testing.assert_allclose(backend.to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6)
    assert ours.weights == [] and theirs.weights == []
    assert plain(ours.get_config()) == plain(theirs.get_config())


def _model(lib, norm):
    L = lib.layers
    return lib.Sequential([lib.Input((4,)), norm, L.Dense(6, activation="relu"), L.Dense(3, activation="softmax")])


def test_a_model_with_an_adapted_normalization_takes_keras_s_training_steps(rng):
    data = rng.standard_normal((40, 4)) * [10, 1, 0.1, 3] + [5, 0, 1, -2]
    ours, theirs = gpu_dl.layers.Normalization(), keras.layers.Normalization()
    ours.adapt(data)
    theirs.adapt(data)
    backend.set_random_seed(8)
    assert_training_steps_match(keras, _model(gpu_dl, ours), _model(keras, theirs), rng, (4,), classes=3, batch=8)


def test_a_keras_file_loads_and_predicts_the_same(rng, tmp_path):
    x = (rng.standard_normal((32, 4)) * [10, 1, 0.1, 3] + [5, 0, 1, -2]).astype("float32")
    norm = keras.layers.Normalization()
    norm.adapt(x)
    keras.utils.set_random_seed(2)
    theirs = _model(keras, norm)
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.fit(x, rng.integers(0, 3, 32), epochs=2, batch_size=8, verbose=0)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours = gpu_dl.models.load_model(tmp_path / "k.keras")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype
        numpy.testing.assert_array_equal(a, b)
    expected = theirs.predict(x, verbose=0)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    fresh = _model(gpu_dl, gpu_dl.layers.Normalization())
    fresh.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("given", [False, True], ids=["adapted", "given"])
def test_keras_loads_a_gpu_dl_file_and_predicts_the_same(rng, tmp_path, given):
    x = (rng.standard_normal((32, 4)) * [10, 1, 0.1, 3] + [5, 0, 1, -2]).astype("float32")
    if given:
        norm = gpu_dl.layers.Normalization(mean=[5.0, 0.0, 1.0, -2.0], variance=[100.0, 1.0, 0.01, 9.0])
    else:
        norm = gpu_dl.layers.Normalization()
        norm.adapt(x)
    backend.set_random_seed(3)
    ours = _model(gpu_dl, norm)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ours.fit(x, rng.integers(0, 3, 32), epochs=2, batch_size=8, verbose=0)
    ours.save(tmp_path / "g.keras")
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.dtype == b.dtype
        numpy.testing.assert_array_equal(a, b)
    expected = ours.predict(x, verbose=0)
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    fresh = _model(keras, keras.layers.Normalization(**({"mean": norm.input_mean, "variance": norm.input_variance}
                                                        if given else {})))
    fresh.load_weights(tmp_path / "g.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_summaries_count_the_same_params(rng):
    data = rng.standard_normal((10, 4))
    ours, theirs = gpu_dl.layers.Normalization(), keras.layers.Normalization()
    ours.adapt(data)
    theirs.adapt(data)
    lines, their_lines = [], []
    _model(gpu_dl, ours).summary(print_fn=lambda text: lines.extend(text.splitlines()))
    _model(keras, theirs).summary(print_fn=lambda line, **kwargs: their_lines.extend(line.splitlines()))

    def totals(text):
        return [line.strip() for line in text if "params:" in line]
    assert totals(lines) == totals(their_lines)
