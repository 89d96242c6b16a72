"""Layers with weights of their own (``add_weight``) against Keras 3 itself (where Keras is installed): the same class
bodies (tests/own_weight_classes.py, from Keras's subclassing guide) in both libraries give the same weights in the
same order, train step for step alike, keep the same running sums, and their ``.weights.h5`` files load both
ways."""
import os
import re

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from keras_steps import assert_training_steps_match  # noqa: E402
from own_weight_classes import (  # noqa: E402
    compute_sum, linear, linear_made_in_init, mixed, mlp_block, scaled_classifier)


def linears(lib):
    return lib.Sequential([lib.Input((5,)), linear(lib)(8), linear(lib)(3), lib.layers.Activation("softmax")])


def block(lib):
    return lib.Sequential([lib.Input((5,)), mlp_block(lib)(8, 3), lib.layers.Activation("softmax")])


def functional(lib):
    inputs = lib.Input((5,))
    h = mlp_block(lib)(6, 3)(linear_made_in_init(lib)(4, input_dim=5)(inputs))
    return lib.Model(inputs, lib.layers.Activation("softmax")(h))


def with_counter(lib):
    return lib.Sequential([lib.Input((5,)), mixed(lib)(4), lib.layers.Dense(3, activation="softmax")])


def subclassed(lib):
    model = scaled_classifier(lib)(8, 3)
    model(numpy.zeros((2, 5), dtype="float32"))         # built by a first call, as in Keras
    return model


MODELS = [linears, block, functional, with_counter, subclassed]


def _plain(name):
    """A variable's name without the counter Keras and gpu_dl number nameless variables by."""
    return re.sub(r"^variable(_\d+)?$", "variable", name)


def _described(variables):
    return [(_plain(v.name), tuple(v.shape), bool(v.trainable)) for v in variables]


@pytest.mark.parametrize("make", MODELS, ids=[m.__name__ for m in MODELS])
def test_same_weights_in_the_same_order_and_training_steps(make):
    ours, theirs = make(gpu_dl), make(keras)
    assert _described(ours.weights) == _described(theirs.weights)
    assert _described(ours.trainable_weights) == _described(theirs.trainable_weights)
    assert _described(ours.non_trainable_weights) == _described(theirs.non_trainable_weights)
    rng = numpy.random.default_rng(7)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.standard_normal((6, 5)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert_training_steps_match(keras, ours, theirs, rng, (5,), classes=3, batch=8)


def test_a_layer_with_own_weights_and_sublayers_orders_them_as_keras():
    ours, theirs = mixed(gpu_dl)(3), mixed(keras)(3)
    x = numpy.ones((2, 4), dtype="float32")
    ours(x)
    theirs(x)
    assert _described(ours.weights) == _described(theirs.weights)
    assert [_plain(v.name) for v in ours.weights] == ["scale", "calls", "kernel", "bias", "variable", "variable"]
    assert float(ours.calls.numpy()) == float(theirs.calls.numpy()) == 1.0


def test_running_sums_match_keras():
    ours, theirs = compute_sum(gpu_dl)(3), compute_sum(keras)(3)
    rng = numpy.random.default_rng(8)
    for _ in range(3):
        x = rng.standard_normal((4, 3)).astype("float32")
        numpy.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6, atol=1e-6)
    numpy.testing.assert_allclose(ours.total.numpy(), theirs.total.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make", MODELS, ids=[m.__name__ for m in MODELS])
def test_weights_files_load_both_ways(make, tmp_path):
    ours, theirs = make(gpu_dl), make(keras)
    rng = numpy.random.default_rng(9)
    ours.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()])
    x = rng.standard_normal((6, 5)).astype("float32")
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs.load_weights(tmp_path / "g.weights.h5")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 for w in theirs.get_weights()])
    theirs.save_weights(tmp_path / "k.weights.h5")
    back = make(gpu_dl)
    back.load_weights(tmp_path / "k.weights.h5")
    for a, b in zip(back.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(back.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
