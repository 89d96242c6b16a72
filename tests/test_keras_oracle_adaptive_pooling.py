"""The adaptive pooling layers against Keras 3 itself (where Keras is installed, on its torch backend, whose
windows these are): outputs and gradients, output shapes, configs key for key, training steps and .keras
files both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402
from test_keras_oracle_cnn_layers import assert_configs_match  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch",
                                reason="the windows are those of Keras's torch backend")

CASES = [   # (rank, input spatial sizes, output_size)
    (1, (1,), 1), (1, (7,), 5), (1, (17,), 2), (1, (3,), 7),
    (2, (1, 3), (2, 5)), (2, (7, 17), (5, 2)), (2, (17, 7), 5), (2, (3, 1), (7, 2)),
    (3, (1, 3, 7), (1, 2, 5)), (3, (7, 3, 17), (2, 5, 5)), (3, (3, 2, 1), 3),
]
NAMES = ["AdaptiveMaxPooling", "AdaptiveAveragePooling"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rank,sizes,output_size", CASES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_gradients_shapes_and_configs_match_keras(rng, name, rank, sizes, output_size, data_format, dtype):
    import torch
    cls = f"{name}{rank}D"
    shape = (2,) + ((3,) + sizes if data_format == "channels_first" else sizes + (3,))
    x = rng.standard_normal(shape).astype(dtype)
    ours = getattr(layers, cls)(output_size, data_format=data_format, dtype=dtype)
    theirs = getattr(keras.layers, cls)(output_size, data_format=data_format, dtype=dtype)
    y_ours = ours(x, training=True)
    x_torch = torch.tensor(x, requires_grad=True)
    y_theirs = theirs(x_torch)
    assert y_ours.shape == tuple(y_theirs.shape) and y_ours.dtype == dtype
    tolerance = 1e-6 if dtype == "float32" else 1e-13
    numpy.testing.assert_allclose(y_ours, y_theirs.detach().numpy(), rtol=tolerance, atol=tolerance)
    dy = rng.standard_normal(y_ours.shape).astype(dtype)
    (y_theirs * torch.tensor(dy)).sum().backward()
    numpy.testing.assert_allclose(ours.backward(dy), x_torch.grad.numpy(), rtol=tolerance, atol=tolerance)
    symbolic = (None,) + shape[1:]
    assert tuple(ours.compute_output_shape(symbolic)) == tuple(theirs.compute_output_shape(symbolic))
    assert_configs_match(ours, theirs)


def stack(lib, data_format="channels_last"):
    return [lib.layers.Conv2D(4, 3, activation="relu", data_format=data_format),
            lib.layers.AdaptiveMaxPooling2D((3, 4), data_format=data_format),
            lib.layers.Reshape((12, 4) if data_format == "channels_last" else (4, 12)),
            lib.layers.AdaptiveAveragePooling1D(5, data_format=data_format),
            lib.layers.Flatten(),
            lib.layers.Dense(3, activation="softmax")]


def test_training_steps_match_keras(rng):
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((9, 7, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((9, 7, 2))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (9, 7, 2), classes=3, batch=5)


def test_files_written_by_keras_load_and_predict_the_same(tmp_path):
    keras.utils.set_random_seed(0)
    L = keras.layers
    theirs = keras.Sequential([keras.Input((2, 7, 9, 5)), L.AdaptiveAveragePooling3D((3, 2, 4)),
                               L.Reshape((6, 4, 5)), L.AdaptiveMaxPooling2D(3, data_format="channels_first"),
                               L.Flatten(), L.Dense(2)])
    theirs.compile(optimizer="adam", loss="mse")
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((6, 2, 7, 9, 5)).astype("float32")
    theirs.fit(x, rng.standard_normal((6, 2)).astype("float32"), epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    for a, b in zip(ours.layers, theirs.layers):
        if type(a).__name__.startswith("Adaptive"):
            assert_configs_match(a, b)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_keras_loads_a_model_gpu_dl_trained(tmp_path, rng):
    gpu_dl.backend.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((2, 9, 7))] + stack(gpu_dl, "channels_first"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((8, 2, 9, 7)).astype("float32"), rng.integers(0, 3, 8)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    for a, b in zip(model.layers, theirs.layers):
        if type(a).__name__.startswith("Adaptive"):
            assert_configs_match(a, b)
