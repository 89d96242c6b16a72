"""CosineSimilarity(axis=...) keeps its axis among its function's arguments (as Keras's does): the gradients that
training takes from it (weighted by sample weights or a mask, or not) reduce over that axis, checked against
float64 finite differences, and a model with a rank-3 output trains with it as Keras 3 does (the oracle where it is
installed)."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, losses


@pytest.mark.parametrize("axis, shape", [(1, (4, 3, 5)), (-2, (4, 3, 5)), (0, (3, 4)), (1, (2, 3, 4, 2))])
def test_weighted_gradient_reduces_over_the_axis(xp, axis, shape):
    rng = numpy.random.default_rng(0)
    t, p = rng.standard_normal(shape), rng.standard_normal(shape)
    loss = losses.CosineSimilarity(axis=axis)
    values_shape = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    assert loss.values_shape(shape, shape) == values_shape
    w = rng.random(values_shape)
    direction = rng.standard_normal(shape)
    eps = 1e-6

    def total(pred):
        return float(backend.to_numpy((xp.asarray(w) * loss.call(xp.asarray(t), xp.asarray(pred))).sum()))
    numeric = (total(p + eps * direction) - total(p - eps * direction)) / (2 * eps)
    grad = backend.to_numpy(loss.training_grad(xp.asarray(t), xp.asarray(p), xp.asarray(w)))
    assert grad.shape == shape
    assert float((grad * direction).sum()) == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    uniform = backend.to_numpy(loss.training_grad(xp.asarray(t), xp.asarray(p), 0.5))
    numpy.testing.assert_allclose(uniform, backend.to_numpy(
        loss.training_grad(xp.asarray(t), xp.asarray(p), xp.full(values_shape, 0.5))), rtol=1e-12)


def test_a_model_step_follows_the_finite_difference_of_its_loss(on_cpu):
    rng = numpy.random.default_rng(1)
    x, y = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 5))
    sw = rng.random((4, 5))
    backend.set_random_seed(0)
    model = gpu_dl.Sequential([gpu_dl.layers.Input((3, 2), dtype="float64"),
                               gpu_dl.layers.Dense(5, dtype="float64")])
    model.compile(optimizer=gpu_dl.optimizers.SGD(1.0), loss=losses.CosineSimilarity(axis=1))
    kernel, bias = model.get_weights()
    loss = losses.CosineSimilarity(axis=1, dtype="float64")
    direction = rng.standard_normal(kernel.shape)
    eps = 1e-6

    def value(k):
        return float(loss(y, x @ k + bias, sample_weight=sw))
    numeric = (value(kernel + eps * direction) - value(kernel - eps * direction)) / (2 * eps)
    assert model.train_on_batch(x, y, sample_weight=sw) == pytest.approx(value(kernel), rel=1e-10)
    step = kernel - model.get_weights()[0]      # SGD at rate 1: the gradient
    assert float((step * direction).sum()) == pytest.approx(numeric, rel=1e-6)


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("weighted", [False, True])
def test_training_on_a_rank_3_output_as_keras(on_cpu, keras, weighted):
    rng = numpy.random.default_rng(2)

    def make(lib):
        inputs = lib.Input((3, 4))
        return lib.Model(inputs, lib.layers.Dense(5)(inputs))
    ours, theirs = make(gpu_dl), make(keras)
    theirs.set_weights(ours.get_weights())
    x, y = rng.standard_normal((10, 3, 4)).astype("float32"), rng.standard_normal((10, 3, 5)).astype("float32")
    sw = rng.random((10, 5)).astype("float32") if weighted else None
    ours.compile(optimizer="adam", loss=losses.CosineSimilarity(axis=1))
    theirs.compile(optimizer="adam", loss=keras.losses.CosineSimilarity(axis=1))
    histories = [m.fit(x, y, sample_weight=sw, batch_size=4, epochs=3, shuffle=False, verbose=0).history
                 for m in (ours, theirs)]
    numpy.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=2e-5, atol=1e-6)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
