"""Losses called on symbolic tensors in a layer's call against Keras 3 itself (where Keras is installed): the same
programs (tests/symbolic_loss_cases.py) give the same losses per epoch and the same weights after training. The
guide's endpoint layer as Keras's "Training & evaluation with the built-in methods" writes it; every built-in
loss object under three reductions, with and without sample weights given as an input; loss functions with
their arguments; the mask of padded steps reaching the predictions; reduction "none"."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from symbolic_loss_cases import (C, N, SPECS, endpoint, endpoint_data, endpoint_model, function_endpoint,  # noqa: E402
                                 guide_model, logistic_endpoint, targets)


def _train_both(ours, theirs, data, epochs=3, batch_size=None, y=None):
    """Copy ``ours``'s weights into ``theirs``, fit both (Adam, compiled without a loss) on ``data`` in order, and
    require the same loss per epoch and the same weights after."""
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam")
    theirs.compile(optimizer=keras.optimizers.Adam())
    fitted = [m.fit(data, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0).history["loss"]
              for m in (ours, theirs)]
    numpy.testing.assert_allclose(fitted[0], fitted[1], rtol=2e-5, atol=1e-6)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    return fitted[0]


def test_guide_endpoint_layer_trains_as_keras():
    ours, theirs = guide_model(gpu_dl), guide_model(keras)
    rng = numpy.random.default_rng(0)
    data = {"inputs": rng.random((3, 3)).astype("float32"), "targets": rng.random((3, 10)).astype("float32")}
    _train_both(ours, theirs, data)
    numpy.testing.assert_allclose(ours.predict(data, verbose=0), theirs.predict(data, verbose=0), rtol=1e-5)
    assert ours.evaluate(data, verbose=0) == pytest.approx(theirs.evaluate(data, verbose=0), rel=1e-5)


def test_guide_endpoint_with_sample_weights_as_an_input():
    def build(lib):
        inputs, targets, weights = lib.Input((3,), name="inputs"), lib.Input((10,), name="targets"), \
            lib.Input((), name="weights")
        out = logistic_endpoint(lib)(name="predictions")(targets, lib.layers.Dense(10)(inputs), weights)
        return lib.Model([inputs, targets, weights], out)
    rng = numpy.random.default_rng(1)
    data = {"inputs": rng.random((8, 3)).astype("float32"), "targets": rng.random((8, 10)).astype("float32"),
            "weights": rng.random(8).astype("float32")}
    _train_both(build(gpu_dl), build(keras), data, batch_size=4)


CASES = [(name, reduction, weighted) for name in SPECS
         for reduction, weighted in [("sum_over_batch_size", True), ("sum", False), ("mean_with_sample_weight", True)]]


@pytest.mark.parametrize("name, reduction, weighted", CASES, ids=[f"{n}-{r}-{w}" for n, r, w in CASES])
def test_every_builtin_loss_in_a_layer_trains_as_keras(name, reduction, weighted):
    rng = numpy.random.default_rng(3)
    data = endpoint_data(name, rng, weighted)
    _train_both(endpoint_model(gpu_dl, name, reduction, weighted), endpoint_model(keras, name, reduction, weighted),
                data, batch_size=N)


def test_reduction_none_adds_the_sum_of_the_weighted_values_as_keras():
    rng = numpy.random.default_rng(4)
    data = endpoint_data("Huber", rng, True)
    _train_both(endpoint_model(gpu_dl, "Huber", "none", True), endpoint_model(keras, "Huber", "none", True), data,
                batch_size=N)


FUNCTIONS = [("mean_squared_error", {}, None, "normal"), ("huber", {"delta": 0.3}, None, "normal"),
             ("binary_crossentropy", {"from_logits": True}, None, "uniform"),
             ("categorical_crossentropy", {"label_smoothing": 0.2}, "softmax", "onehot"),
             ("sparse_categorical_crossentropy", {"from_logits": True}, None, "ids"),
             ("kl_divergence", {}, "softmax", "probs")]


@pytest.mark.parametrize("fn_name, settings, activation, kind", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_loss_functions_in_a_layer_train_as_keras(fn_name, settings, activation, kind):
    def build(lib):
        _, shape, dtype = targets(kind, numpy.random.default_rng(0))
        x, t = lib.Input((3,), name="x"), lib.Input(shape, dtype=dtype, name="t")
        p = lib.layers.Dense(C, activation=activation)(x)
        return lib.Model([x, t], function_endpoint(lib, getattr(lib.losses, fn_name), **settings)()(t, p))
    rng = numpy.random.default_rng(5)
    y, _, _ = targets(kind, rng)
    _train_both(build(gpu_dl), build(keras), {"x": rng.standard_normal((N, 3)).astype("float32"), "t": y})


def test_mask_of_padded_steps_reaches_the_loss_as_in_keras():
    def build(lib):
        tokens, t = lib.Input((4,), dtype="int32", name="tokens"), lib.Input((4, C), name="t")
        p = lib.layers.Dense(C)(lib.layers.Embedding(6, 3, mask_zero=True)(tokens))
        return lib.Model([tokens, t], endpoint(lib, lib.losses.MeanSquaredError())()(t, p))
    rng = numpy.random.default_rng(6)
    data = {"tokens": numpy.array([[3, 1, 0, 0], [2, 2, 5, 0], [1, 0, 0, 0]], "int32"),
            "t": rng.standard_normal((3, 4, C)).astype("float32")}
    _train_both(build(gpu_dl), build(keras), data)
