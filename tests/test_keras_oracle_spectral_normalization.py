"""SpectralNormalization against Keras 3 itself (where Keras is installed): a training call's output, vector_u
and kernel, gradients (Keras's, of the loss with respect to the stored kernel), weights and their counts,
configs, training steps and .keras files both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

WRAPPED = [("Dense", (4,), (2, 6)), ("Conv2D", (3, (2, 3)), (2, 5, 6, 2)), ("Conv1D", (4, 3), (2, 7, 3)),
           ("Conv2DTranspose", (2, 3), (2, 4, 3, 2)), ("DepthwiseConv2D", (3,), (2, 5, 5, 2))]


@pytest.mark.parametrize("name,args,shape", WRAPPED)
@pytest.mark.parametrize("iterations", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_training_call_matches_keras(rng, name, args, shape, iterations, dtype):
    ours = layers.SpectralNormalization(getattr(layers, name)(*args, dtype=dtype), power_iterations=iterations)
    theirs = keras.layers.SpectralNormalization(getattr(keras.layers, name)(*args, dtype=dtype),
                                                power_iterations=iterations, dtype=dtype)
    x = rng.standard_normal(shape).astype(dtype)
    ours(x)
    theirs(x)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    theirs.set_weights(ours.get_weights())
    # float64 too: Keras's torch backend rounds u and v to float32 (its ops.normalize returns float32)
    tolerance = 1e-5
    for _ in range(2):
        numpy.testing.assert_allclose(ours(x, training=True), keras.ops.convert_to_numpy(theirs(x, training=True)),
                                      rtol=tolerance, atol=tolerance)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            numpy.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
    numpy.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x)), rtol=tolerance, atol=tolerance)
    assert tuple(ours.compute_output_shape((None,) + shape[1:])) == \
        tuple(theirs.compute_output_shape((None,) + shape[1:]))
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    assert set(ours_config) == set(theirs_config) and ours_config["power_iterations"] == iterations


def test_gradients_match_keras(rng):
    """Keras's gradients of a loss: the wrapped layer's at the stored W / sigma, none through sigma."""
    import torch
    ours = layers.SpectralNormalization(layers.Dense(3, dtype="float64"), power_iterations=2)
    theirs = keras.layers.SpectralNormalization(keras.layers.Dense(3, dtype="float64"), power_iterations=2,
                                                dtype="float64")
    x = rng.standard_normal((5, 4))
    ours(x)
    theirs(x)
    theirs.set_weights(ours.get_weights())
    y = ours(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = ours.backward(dy)
    x_torch = torch.tensor(x, requires_grad=True)
    (theirs(x_torch, training=True) * torch.tensor(dy)).sum().backward()
    # to float32 rounding: Keras's u and v are float32 (see test_a_training_call_matches_keras)
    numpy.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-6, atol=1e-7)
    numpy.testing.assert_allclose(ours.layer.kernel.grad, theirs.layer.kernel.value.grad.numpy(), rtol=1e-6, atol=1e-7)
    numpy.testing.assert_allclose(ours.layer.bias.grad, theirs.layer.bias.value.grad.numpy(), rtol=1e-6, atol=1e-7)


def stack(lib):
    return [lib.layers.SpectralNormalization(lib.layers.Conv2D(4, 3, activation="relu")),
            lib.layers.MaxPooling2D(2),
            lib.layers.Flatten(),
            lib.layers.SpectralNormalization(lib.layers.Dense(6, activation="tanh"), power_iterations=2),
            lib.layers.SpectralNormalization(lib.layers.Dense(3, activation="softmax"))]


@pytest.mark.parametrize("optimizer", ["Adam", "SGD"])
def test_training_steps_match_keras(rng, optimizer):
    gpu_dl.backend.set_random_seed(5)
    ours = gpu_dl.Sequential([layers.Input((7, 6, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((7, 6, 2))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (7, 6, 2), classes=3, batch=5, optimizer=optimizer)


def test_files_both_ways(tmp_path, rng):
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((7, 6, 2))] + stack(keras))
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((8, 7, 6, 2)).astype("float32"), rng.integers(0, 3, 8)
    theirs.fit(x, y, epochs=1, batch_size=4, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert ours.layers[3].power_iterations == 2
    # trained on in gpu_dl, read back by Keras
    ours.fit(x, y, epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    again = keras.models.load_model(tmp_path / "g.keras")
    for a, b in zip(ours.get_weights(), again.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(again.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
