"""Conv3DTranspose against Keras 3 itself (where Keras is installed): outputs and shapes for the same weights,
training steps, and .keras files written by either load in the other."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

CASES = [
    {"filters": 2, "kernel_size": 2},
    {"filters": 3, "kernel_size": (2, 3, 1), "strides": (2, 1, 3), "padding": "same", "activation": "relu"},
    {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1, "use_bias": False},
    {"filters": 2, "kernel_size": (3, 2, 3), "strides": (3, 2, 2), "padding": "same", "output_padding": (1, 0, 1)},
    {"filters": 2, "kernel_size": (2, 4, 3), "strides": 2, "padding": "same", "output_padding": 0},
    {"filters": 1, "kernel_size": 2, "dilation_rate": (2, 1, 2), "padding": "same"},
    {"filters": 2, "kernel_size": 1, "strides": 3},
]


@pytest.mark.parametrize("args", CASES)
def test_outputs_match_keras(rng, args):
    x = rng.standard_normal((2, 3, 2, 3, 2)).astype("float32")
    ours, theirs = layers.Conv3DTranspose(**args), keras.layers.Conv3DTranspose(**args)
    got = ours(x)
    theirs.build(x.shape)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    numpy.testing.assert_allclose(got, keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-5)
    assert ours.compute_output_shape((None, 3, 2, 3, 2)) == tuple(theirs.compute_output_shape((None, 3, 2, 3, 2)))
    assert ours.get_config()["output_padding"] == theirs.get_config()["output_padding"]


def stack(lib):
    L = lib.layers
    return lib.Sequential([L.Input((2, 3, 2, 2)), L.Conv3DTranspose(3, 2, strides=2, padding="same", activation="tanh"),
                           L.Conv3DTranspose(2, (3, 1, 2), output_padding=(0, 0, 1), strides=(1, 1, 2)),
                           L.GlobalAveragePooling3D(), L.Dense(3, activation="softmax")])


def test_training_steps_match_keras(rng):
    assert_training_steps_match(keras, stack(gpu_dl), stack(keras), rng, (2, 3, 2, 2), classes=3, batch=4, steps=3)


@pytest.mark.parametrize("writer", ["keras", "gpu_dl"])
def test_keras_files_load_both_ways(rng, tmp_path, writer):
    lib, other = (keras, gpu_dl) if writer == "keras" else (gpu_dl, keras)
    model = stack(lib)
    model.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    model.save(tmp_path / "up.keras")
    loaded = (keras.models.load_model if other is keras else gpu_dl.models.load_model)(tmp_path / "up.keras")
    assert type(loaded.layers[0]).__name__ == "Conv3DTranspose"
    x = rng.standard_normal((2, 2, 3, 2, 2)).astype("float32")
    numpy.testing.assert_allclose(numpy.asarray(loaded.predict(x, verbose=0)),
                                  numpy.asarray(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
