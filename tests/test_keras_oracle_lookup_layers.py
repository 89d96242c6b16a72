"""The numeric preprocessing layers against Keras 3 itself (torch backend, where Keras is installed): the same
outputs for the same inputs and configuration, adapt() learns the same state (Keras's own code run on the same
data), configs agree, and `.keras` files holding these layers (adapted) load both ways and predict the same."""
import json
import os
import types

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402


def plain(config):
    """A config without its dtype (a DTypePolicy in Keras) and its name (numbered per library), tuples as lists."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k not in ("dtype", "name")}))


def theirs_out(layer, *args, **kwargs):
    return keras.ops.convert_to_numpy(layer(*args, **kwargs))


@pytest.fixture
def keras_adapt_without_tensorflow(monkeypatch):
    # Keras 3.15's adapt() looks for tf.data.Dataset before it takes arrays or iterables; without TensorFlow
    # installed, a stand-in lets its own code run.
    from keras.src.layers.preprocessing import discretization
    monkeypatch.setattr(discretization, "tf", types.SimpleNamespace(
        data=types.SimpleNamespace(Dataset=type("Dataset", (), {})), is_tensor=lambda x: False))


# ------------------------------------------------------------------ CategoryEncoding
@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
@pytest.mark.parametrize("shape", [(), (5,), (4, 3), (6, 1), (1, 1)])
def test_category_encoding_matches_keras(rng, mode, shape):
    ids = rng.integers(0, 5, shape)
    ours, theirs = gpu_dl.layers.CategoryEncoding(5, output_mode=mode), keras.layers.CategoryEncoding(5, mode)
    expected = theirs_out(theirs, ids)
    got = backend.to_numpy(ours(ids))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    numpy.testing.assert_array_equal(got, expected)
    assert plain(ours.get_config()) == plain(theirs.get_config())


def test_category_encoding_one_hot_rank3_and_count_weights_match_keras(rng):
    ids = rng.integers(0, 4, (2, 3, 2))
    numpy.testing.assert_array_equal(backend.to_numpy(gpu_dl.layers.CategoryEncoding(4, "one_hot")(ids)),
                                     theirs_out(keras.layers.CategoryEncoding(4, "one_hot"), ids))
    ids, weights = rng.integers(0, 4, (5, 3)), rng.random((5, 3))
    got = backend.to_numpy(gpu_dl.layers.CategoryEncoding(4, "count")(ids, count_weights=weights))
    expected = theirs_out(keras.layers.CategoryEncoding(4, "count"), ids, count_weights=weights)
    assert got.dtype == expected.dtype
    numpy.testing.assert_allclose(got, expected, rtol=1e-6)


def test_category_encoding_bad_arguments_are_refused_as_keras_refuses_them():
    for kwargs in ({"num_tokens": 0}, {"num_tokens": 3, "output_mode": "int"}):
        with pytest.raises(ValueError):
            keras.layers.CategoryEncoding(**kwargs)
        with pytest.raises(ValueError, match="CategoryEncoding layer"):
            gpu_dl.layers.CategoryEncoding(**kwargs)
    with pytest.raises(Exception):     # Keras on torch: a RuntimeError from one_hot
        keras.layers.CategoryEncoding(3)(numpy.array([[0, 3]]))
    with pytest.raises(ValueError, match="CategoryEncoding layer"):
        gpu_dl.layers.CategoryEncoding(3)(numpy.array([[0, 3]]))


# ------------------------------------------------------------------ Discretization
@pytest.mark.parametrize("n,epsilon,num_bins,batches", [(1000, 0.01, 4, 1), (37, 0.01, 5, 1), (5000, 0.001, 7, 3),
                                                        (300, 0.1, 3, 4), (17, 0.01, 10, 2), (64, 0.05, 1, 1)])
def test_discretization_adapt_learns_keras_s_boundaries(rng, keras_adapt_without_tensorflow, n, epsilon, num_bins,
                                                         batches):
    data = (rng.standard_normal((n, 3)) * 4 + 1).astype("float32")
    data = numpy.array_split(data, batches) if batches > 1 else data
    ours = gpu_dl.layers.Discretization(num_bins=num_bins, epsilon=epsilon)
    theirs = keras.layers.Discretization(num_bins=num_bins, epsilon=epsilon)
    ours.adapt(data)
    theirs.adapt(data)
    assert ours.bin_boundaries == theirs.bin_boundaries        # the same float32 steps: the same bits
    assert plain(ours.get_config()) == plain(theirs.get_config())


@pytest.mark.parametrize("mode", ["int", "one_hot", "multi_hot", "count"])
@pytest.mark.parametrize("shape", [(7,), (4, 3), (5, 1)])
def test_discretization_matches_keras(rng, mode, shape):
    boundaries = [-1.0, 0.1, 0.5, 2.0]
    x = rng.standard_normal(shape).astype("float32")
    x.flat[:2] = [0.1, -1.0]
    ours = gpu_dl.layers.Discretization(bin_boundaries=boundaries, output_mode=mode)
    theirs = keras.layers.Discretization(bin_boundaries=boundaries, output_mode=mode)
    expected = theirs_out(theirs, x)
    got = backend.to_numpy(ours(x))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    numpy.testing.assert_array_equal(got, expected)
    assert ours.compute_output_shape((None,) + shape[1:]) == tuple(theirs.compute_output_shape((None,) + shape[1:]))
    assert plain(ours.get_config()) == plain(theirs.get_config())


def test_discretization_bad_arguments_are_refused_as_keras_refuses_them():
    for kwargs in ({}, {"bin_boundaries": [0.0], "num_bins": 2}, {"num_bins": -1}, {"num_bins": 2,
                                                                                  "output_mode": "tf_idf"}):
        with pytest.raises(ValueError):
            keras.layers.Discretization(**kwargs)
        with pytest.raises(ValueError, match="Discretization layer"):
            gpu_dl.layers.Discretization(**kwargs)


# ------------------------------------------------------------------ files both ways
def _model(lib, first, inputs=3):
    L = lib.layers
    return lib.Sequential([lib.Input((inputs,)), first, L.Dense(4, activation="relu"),
                           L.Dense(2, activation="softmax")])


def _discretization(lib, data):
    layer = lib.layers.Discretization(num_bins=4, output_mode="count")
    if lib is keras:
        from keras.src.layers.preprocessing.discretization import Discretization
        Discretization.update_state(layer, data)       # adapt()'s own steps, without its tf.data check
        Discretization.finalize_state(layer)
    else:
        layer.adapt(data)
    return layer


MAKERS = {"category_encoding": lambda lib, data: lib.layers.CategoryEncoding(6, output_mode="multi_hot"),
          "discretization": _discretization}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_keras_file_loads_in_gpu_dl_and_predicts_the_same(rng, tmp_path, kind):
    x = rng.integers(0, 6, (32, 3)).astype("float32")
    keras.utils.set_random_seed(2)
    theirs = _model(keras, MAKERS[kind](keras, x))
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.fit(x, rng.integers(0, 2, 32), epochs=2, batch_size=8, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert plain(ours.layers[0].get_config()) == plain(theirs.layers[0].get_config())
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_gpu_dl_file_loads_in_keras_and_predicts_the_same(rng, tmp_path, kind):
    x = rng.integers(0, 6, (32, 3)).astype("float32")
    backend.set_random_seed(3)
    ours = _model(gpu_dl, MAKERS[kind](gpu_dl, x))
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ours.fit(x, rng.integers(0, 2, 32), epochs=2, batch_size=8, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert plain(ours.layers[0].get_config()) == plain(theirs.layers[0].get_config())
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ IntegerLookup (Keras needs TensorFlow for it)
LOOKUP_CASES = [{}, {"mask_token": 0}, {"num_oov_indices": 2}, {"num_oov_indices": 0, "vocabulary": [1, 2, 3, 4, 5]},
                {"output_mode": "one_hot"}, {"output_mode": "multi_hot", "mask_token": 0},
                {"output_mode": "count", "max_tokens": 6, "pad_to_max_tokens": True}, {"output_mode": "tf_idf"},
                {"invert": True, "vocabulary": [3, 1, 4, 5]}]


@pytest.mark.parametrize("kwargs", LOOKUP_CASES)
def test_integer_lookup_matches_keras(rng, kwargs):
    pytest.importorskip("tensorflow")
    data = rng.integers(0, 7, (20, 3))
    ours, theirs = gpu_dl.layers.IntegerLookup(**kwargs), keras.layers.IntegerLookup(**kwargs)
    if "vocabulary" not in kwargs:
        ours.adapt(data)
        theirs.adapt(data)
    assert ours.get_vocabulary() == theirs.get_vocabulary()
    assert ours.vocabulary_size() == theirs.vocabulary_size()
    x = rng.integers(1, 6, (4, 3)) if kwargs.get("num_oov_indices") == 0 else rng.integers(-1, 9, (4, 3))
    expected = theirs_out(theirs, x)
    got = backend.to_numpy(ours(x))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    numpy.testing.assert_allclose(got, expected, rtol=1e-6)
    assert plain(ours.get_config()) == plain(theirs.get_config())


@pytest.mark.parametrize("mode", ["int", "tf_idf"])
def test_integer_lookup_files_move_both_ways(rng, tmp_path, mode):
    pytest.importorskip("tensorflow")
    x = rng.integers(0, 9, (32, 3)).astype("float32")

    def model(lib):
        layer = lib.layers.IntegerLookup(output_mode="count" if mode == "int" else "tf_idf")
        layer.adapt(x.astype("int64"))
        return _model(lib, layer)
    for save_lib, load in ((keras, gpu_dl.models.load_model), (gpu_dl, keras.models.load_model)):
        source = model(save_lib)
        source.save(tmp_path / "m.keras")
        loaded = load(tmp_path / "m.keras")
        assert loaded.layers[0].get_vocabulary() == source.layers[0].get_vocabulary()
        numpy.testing.assert_allclose(loaded.predict(x, verbose=0), source.predict(x, verbose=0), rtol=1e-5,
                                      atol=1e-6)
