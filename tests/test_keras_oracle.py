"""Whole models against Keras 3 itself: same weights and batches give the same losses and weights.

Runs only where Keras is installed (an optional dev dependency); skipped otherwise.
"""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers, optimizers  # noqa: E402


def build_pair(loss, last_activation, outputs, optimizer_name, regularizer=None):
    def stack(lib):
        return [lib.layers.Dense(7, activation="tanh", kernel_regularizer=regularizer),
                lib.layers.Dense(outputs, activation=last_activation)]
    ours = gpu_dl.Sequential([layers.Input((5,))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((5,))] + stack(keras))
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=optimizers.get(optimizer_name), loss=loss)
    theirs.compile(optimizer=keras.optimizers.get(optimizer_name), loss=loss)
    return ours, theirs


@pytest.mark.parametrize("loss,activation,outputs", [
    ("sparse_categorical_crossentropy", "softmax", 4),
    ("categorical_crossentropy", "softmax", 4),
    ("binary_crossentropy", "sigmoid", 1),
    ("mse", None, 3),
    ("huber", None, 3),
])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "nadam"])
def test_training_steps_match_keras(loss, activation, outputs, optimizer):
    gpu_dl.backend.set_random_seed(5)
    rng = numpy.random.default_rng(5)
    ours, theirs = build_pair(loss, activation, outputs, optimizer, regularizer="l2")
    for step in range(4):
        x = rng.standard_normal((9, 5)).astype("float32")
        if loss == "sparse_categorical_crossentropy":
            y = rng.integers(0, outputs, 9)
        elif loss == "categorical_crossentropy":
            y = numpy.eye(outputs, dtype="float32")[rng.integers(0, outputs, 9)]
        elif loss == "binary_crossentropy":
            y = rng.integers(0, 2, (9, 1)).astype("float32")
        else:
            y = rng.standard_normal((9, outputs)).astype("float32")
        ours_loss = ours.train_on_batch(x, y)
        theirs_loss = float(theirs.train_on_batch(x, y))
        ours.reset_metrics()
        theirs.reset_metrics()
        assert ours_loss == pytest.approx(theirs_loss, rel=2e-5, abs=1e-6), f"step {step}"
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


def test_evaluate_loss_matches_keras_with_penalties():
    # Weight and activity penalties count in evaluate's loss and in fit's val_loss, as in Keras 3.
    rng = numpy.random.default_rng(11)
    x = rng.standard_normal((10, 5)).astype("float32")
    y = rng.standard_normal((10, 3)).astype("float32")

    def stack(lib):
        return [lib.layers.Dense(7, activation="tanh", kernel_regularizer="l2", 
                                activity_regularizer=lib.regularizers.L1L2(l1=0.01, l2=0.02)),
                lib.layers.ActivityRegularization(l1=0.05),
                lib.layers.Dense(3, bias_regularizer="l1")]
    ours = gpu_dl.Sequential([layers.Input((5,))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((5,))] + stack(keras))
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss="mse")
    assert ours.evaluate(x, y, batch_size=4, verbose=0) == pytest.approx(
        theirs.evaluate(x, y, batch_size=4, verbose=0), rel=2e-6)
    ours_val = ours.fit(x, y, batch_size=5, epochs=1, validation_data=(x, y), shuffle=False, verbose=0)
    theirs_val = theirs.fit(x, y, batch_size=5, epochs=1, validation_data=(x, y), shuffle=False, verbose=0)
    for key in ("loss", "val_loss"):
        assert ours_val.history[key][0] == pytest.approx(theirs_val.history[key][0], rel=2e-5), key
