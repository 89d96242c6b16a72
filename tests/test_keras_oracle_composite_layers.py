"""Composite layers and subclassed models against Keras 3 itself (where Keras is installed): the same class bodies
(tests/composite_classes.py) in both libraries give the same weights in the same order and shapes, the same
outputs for the same weights, the same losses and weights after training steps, and the same parameter counts."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from composite_classes import branching, classifier, residual, shared, stack  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def in_sequential(lib, make):
    return lib.Sequential([lib.Input((5,)), lib.layers.Dense(5), make(lib)(5),
                           lib.layers.Dense(3, activation="softmax")])


def in_functional(lib, make):
    inputs = lib.Input((5,))
    block = make(lib)(5)
    h = block(lib.layers.Dense(5)(inputs))
    if h.shape[-1] == 5:
        h = block(h)            # called twice: shared weights
    return lib.Model(inputs, lib.layers.Dense(3, activation="softmax")(h))


def subclassed(lib, make=None):
    model = classifier(lib)()
    model(numpy.zeros((2, 5), dtype="float32"))         # built by a first call, as in Keras
    return model


MAKERS = {"residual": residual, "shared": shared, "stack": lambda lib: (lambda units: stack(lib)(units)),
          "branching": branching}
CASES = [(wrap, name) for wrap in (in_sequential, in_functional) for name in MAKERS] + [(subclassed, None)]


def _pair(wrap, name):
    make = MAKERS.get(name)
    return wrap(gpu_dl, make), wrap(keras, make)


@pytest.mark.parametrize("wrap, name", CASES, ids=[f"{w.__name__}-{n}" for w, n in CASES])
def test_same_weights_outputs_and_training(wrap, name):
    rng = numpy.random.default_rng(5)
    ours, theirs = _pair(wrap, name)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.standard_normal((7, 5)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    if name != "branching" and wrap is not subclassed:       # Dropout draws different masks in each library
        assert_training_steps_match(keras, ours, theirs, rng, (5,), classes=3, batch=8)


def test_weight_order_matches_keras_by_layer():
    ours, theirs = stack(gpu_dl)(4), stack(keras)(4)
    x = numpy.zeros((2, 5), dtype="float32")
    ours(x)
    theirs(x)
    ours_names = [v.path.split("/")[-1] for v in ours.weights]
    theirs_names = [v.path.split("/")[-1] for v in theirs.weights]
    assert ours_names == theirs_names
    assert [v.shape for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]


def test_summary_parameter_counts_match():
    for wrap, name in CASES:
        ours, theirs = _pair(wrap, name)
        lines, their_lines = [], []
        ours.summary(print_fn=lines.append)
        theirs.summary(print_fn=lambda line, *args, **kwargs: their_lines.append(line))

        def totals(text_lines):
            return [line.split("(")[0].strip() for line in "\n".join(text_lines).splitlines() if "params:" in line]
        assert totals(lines) == totals(their_lines), (wrap.__name__, name)


def test_subclassed_weights_file_loads_in_keras(tmp_path):
    ours, theirs = subclassed(gpu_dl), subclassed(keras)
    rng = numpy.random.default_rng(2)
    ours.set_weights([rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    ours.save_weights(tmp_path / "m.weights.h5")
    theirs.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    theirs.save_weights(tmp_path / "k.weights.h5")
    back = subclassed(gpu_dl)
    back.load_weights(tmp_path / "k.weights.h5")
    for a, b in zip(back.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_composite_layer_weights_file_loads_in_keras(tmp_path):
    ours, theirs = in_sequential(gpu_dl, MAKERS["stack"]), in_sequential(keras, MAKERS["stack"])
    rng = numpy.random.default_rng(3)
    ours.set_weights([rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    ours.save_weights(tmp_path / "m.weights.h5")
    theirs.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def _registered_block(lib):
    @lib.saving.register_keras_serializable(package="CompositeOracle")
    class Block(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.d1 = lib.layers.Dense(units, activation="relu")
            self.d2 = lib.layers.Dense(units)

        def call(self, x):
            return x + self.d2(self.d1(x))

        def get_config(self):
            return {**super().get_config(), "units": self.units}
    return Block


def test_keras_file_of_a_model_with_a_composite_layer_loads_both_ways(tmp_path):
    block = _registered_block(gpu_dl)
    _registered_block(keras)
    model = gpu_dl.Sequential([gpu_dl.Input((4,)), block(4), gpu_dl.layers.Dense(2)])
    x = numpy.random.default_rng(4).standard_normal((5, 4)).astype("float32")
    model.save(tmp_path / "m.keras")
    ours = gpu_dl.models.load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(ours.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.warns(UserWarning):       # Keras warns about a layer without build() when it loads it
        theirs = keras.models.load_model(tmp_path / "m.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
