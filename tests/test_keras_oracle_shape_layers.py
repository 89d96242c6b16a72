"""Permute, RepeatVector, Identity and UnitNormalization against Keras 3 itself (where Keras is installed).

Same outputs, shapes, configs and masks; the same training steps in a model holding all four; Keras-saved
files load in gpu_dl and predict the same, and gpu_dl's load in Keras.
"""
import json
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

CASES = [
    ("Permute", {"dims": (2, 1)}, (3, 17, 5)),
    ("Permute", {"dims": (3, 1, 2)}, (2, 3, 1, 4)),
    ("RepeatVector", {"n": 5}, (3, 17)),
    ("RepeatVector", {"n": 1}, (1, 1)),
    ("Identity", {}, (4, 3, 2)),
    ("UnitNormalization", {}, (3, 17)),
    ("UnitNormalization", {"axis": 1}, (2, 5, 3)),
    ("UnitNormalization", {"axis": [1, 2]}, (2, 5, 3)),
    ("UnitNormalization", {"axis": (-3, -1)}, (4, 3, 2, 5)),
    ("UnitNormalization", {"axis": 0}, (5, 3)),
]


def plain(config):
    """A config without its dtype entry (a DTypePolicy in Keras, a string in gpu_dl) and its name (numbered by
    how many layers of the class each library has made), tuples as lists."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k not in ("dtype", "name")}))


@pytest.mark.parametrize("name,kwargs,shape", CASES)
def test_same_outputs_shapes_and_configs(rng, name, kwargs, shape):
    ours, theirs = getattr(gpu_dl.layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    x = rng.standard_normal(shape).astype("float32")
    x.reshape(-1)[:3] = 0        # a zero slice for UnitNormalization along some axes
    numpy.testing.assert_allclose(backend.to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)),
                                  rtol=1e-6, atol=1e-7)
    symbolic = (None,) + shape[1:]
    assert ours.compute_output_shape(symbolic) == tuple(theirs.compute_output_shape(symbolic))
    assert plain(ours.get_config()) == plain(theirs.get_config())


def test_unit_normalization_of_a_zero_slice_is_zero_in_both(rng):
    x = numpy.zeros((2, 3), "float32")
    x[1] = rng.standard_normal(3)
    ours, theirs = gpu_dl.layers.UnitNormalization()(x), keras.layers.UnitNormalization()(x)
    numpy.testing.assert_array_equal(backend.to_numpy(ours)[0], 0)
    numpy.testing.assert_allclose(backend.to_numpy(ours), keras.ops.convert_to_numpy(theirs), rtol=1e-6)


@pytest.mark.parametrize("name,kwargs,passes", [("Identity", {}, True), ("UnitNormalization", {}, True),
                                                 ("Permute", {"dims": (2, 1)}, False)])
def test_masks_pass_or_stop_as_in_keras(rng, name, kwargs, passes):
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    x[0, 2:] = 0

    def model(lib):
        return lib.Sequential([lib.Input((4, 3)), lib.layers.Masking(), getattr(lib.layers, name)(**kwargs)])
    ours = model(gpu_dl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # Keras warns as it builds the model too
        theirs = model(keras)
    with warnings.catch_warnings(record=True) as ours_warnings:
        warnings.simplefilter("always")
        ours(x)
    with warnings.catch_warnings(record=True) as theirs_warnings:
        warnings.simplefilter("always")
        their_mask = getattr(theirs(x), "_keras_mask", None)
    if passes:
        numpy.testing.assert_array_equal(backend.to_numpy(ours.output_mask), keras.ops.convert_to_numpy(their_mask))
    else:
        assert ours.output_mask is None and their_mask is None
    dropped = [any("mask" in str(w.message) for w in found) for found in (ours_warnings, theirs_warnings)]
    assert dropped == [not passes, not passes]


def _model(lib):
    L = lib.layers
    return lib.Sequential([lib.Input((6, 3)), L.Permute((2, 1)), L.Dense(5, activation="tanh"), L.Permute((2, 1)),
                           L.UnitNormalization(), L.Flatten(), L.Dense(4), L.RepeatVector(3), L.Identity(),
                           L.UnitNormalization(axis=[1, 2]), L.Flatten(), L.Dense(5, activation="softmax")])


def test_a_model_with_all_four_takes_keras_s_training_steps(rng):
    backend.set_random_seed(5)
    assert_training_steps_match(keras, _model(gpu_dl), _model(keras), rng, (6, 3), classes=5, batch=7)


def test_a_keras_file_loads_and_predicts_the_same(rng, tmp_path):
    keras.utils.set_random_seed(1)
    theirs = _model(keras)
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((9, 6, 3)).astype("float32")
    theirs.fit(x, rng.integers(0, 5, 9), epochs=2, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    expected = theirs.predict(x, verbose=0)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    fresh = _model(gpu_dl)
    fresh.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_keras_loads_a_gpu_dl_file_and_predicts_the_same(rng, tmp_path):
    backend.set_random_seed(2)
    ours = _model(gpu_dl)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((9, 6, 3)).astype("float32")
    ours.fit(x, rng.integers(0, 5, 9), epochs=2, batch_size=3, verbose=0)
    ours.save(tmp_path / "g.keras")
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    expected = ours.predict(x, verbose=0)
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    fresh = _model(keras)
    fresh.load_weights(tmp_path / "g.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
