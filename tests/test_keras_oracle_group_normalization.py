"""GroupNormalization against Keras 3 itself (where Keras is installed): same weights and inputs give the same
outputs; a small CNN takes the same training steps; .keras files move both ways, groups=-1 included."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend, layers  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


@pytest.mark.parametrize("shape,kwargs", [
    ((5, 16), {"groups": 4}),
    ((1, 3, 6), {"groups": 3, "epsilon": 0.1}),
    ((3, 4, 5, 6), {"groups": 2}),
    ((2, 6, 3, 5), {"groups": 3, "axis": 1, "center": False}),
    ((3, 4, 6, 2), {"groups": 2, "axis": -2, "scale": False}),
    ((2, 17, 33), {"groups": -1}),
    ((3, 7, 4), {"groups": 1}),
])
def test_matches_keras(rng, shape, kwargs):
    ours, theirs = layers.GroupNormalization(**kwargs), keras.layers.GroupNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    weights = [rng.standard_normal(tuple(w.shape)).astype("float32") for w in theirs.weights]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = (rng.standard_normal(shape) * 3 + 0.5).astype("float32")
    numpy.testing.assert_allclose(ours(x, training=True), keras.ops.convert_to_numpy(theirs(x, training=True)),
                                  rtol=1e-5, atol=2e-5)
    assert ours.get_config()["groups"] == theirs.get_config()["groups"]


def _cnn(lib):
    # No bias before a group norm: the normalization removes most of its effect (all of it per instance), and
    # Adam would turn the rounding in the small gradient left into steps of full size. Flatten, not a global
    # average, after the one-group-per-channel norm: each of its channels has mean zero over the image, so the
    # average would be zero (float32 rounding, ~1e-7) and every weight below the last bias would train on
    # rounding noise, which depends on the BLAS and convolution kernels the machine picks.
    L = lib.layers
    return lib.Sequential([L.Input((7, 6, 2)), L.Conv2D(6, 3, padding="same", use_bias=False),
                           L.GroupNormalization(3), L.Activation("relu"), L.Conv2D(4, 3, use_bias=False),
                           L.GroupNormalization(-1, center=False), L.Flatten(), L.Dense(5, activation="softmax")])


def test_cnn_with_group_norm_takes_keras_s_training_steps(rng):
    backend.set_random_seed(6)
    assert_training_steps_match(keras, _cnn(gpu_dl), _cnn(keras), rng, (7, 6, 2), classes=5, batch=6)


def test_files_move_both_ways(rng, tmp_path):
    keras.utils.set_random_seed(1)
    theirs = _cnn(keras)
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "k.keras")
    ours = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    x = rng.standard_normal((4, 7, 6, 2)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "g.keras")
    back = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(back.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs.load_weights(tmp_path / "g.weights.h5")
