"""A subclassed model whose call returns a dict (or a dict nesting a tuple) against Keras 3 itself (where Keras is
installed): the same weights give the same outputs in the same structure from a call and from predict, and the
same summary rows; compute_output_shape gives the shapes in that structure (Keras's symbolic call gives it: its
subclassed model has no compute_output_shape). Compiled after its first call with a dict of losses, it trains as
Keras's does."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def _model(lib, nested):
    L = lib.layers

    class Heads(lib.Model):
        def __init__(self):
            super().__init__(name="heads")
            self.trunk = L.Dense(4, activation="tanh", name="trunk")
            self.score = L.Dense(1, name="score")
            self.label = L.Dense(3, activation="softmax", name="label")

        def call(self, x):
            h = self.trunk(x)
            if nested:
                return {"score": self.score(h), "pair": (self.label(h), h)}
            return {"score": self.score(h), "label": self.label(h)}
    return Heads()


def _twins(nested):
    x = np.random.RandomState(0).rand(6, 5).astype("float32")
    ours, theirs = _model(gpu_dl, nested), _model(keras, nested)
    ours(x), theirs(x)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    return ours, theirs, x


def _same(got, expected):
    assert type(got) is type(expected)
    if isinstance(expected, dict):
        assert list(got) == list(expected)
        for k in expected:
            _same(got[k], expected[k])
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _same(g, e)
    else:
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nested", [False, True])
def test_call_and_predict_give_the_dict_keras_gives(nested):
    ours, theirs, x = _twins(nested)
    expected_call = keras.tree.map_structure(lambda t: keras.ops.convert_to_numpy(t), theirs(x))
    got_call = ours(x)
    _same({k: got_call[k] for k in got_call}, expected_call)
    _same(ours.predict(x, batch_size=4, verbose=0), theirs.predict(x, batch_size=4, verbose=0))


@pytest.mark.parametrize("nested", [False, True])
def test_compute_output_shape_gives_the_structure_of_keras_symbolic_call(nested):
    ours, theirs, _ = _twins(nested)
    spec = theirs.compute_output_spec(keras.KerasTensor((None, 5)))
    expected = keras.tree.map_structure(lambda t: tuple(t.shape), spec)
    got = ours.compute_output_shape((None, 5))
    assert got == expected and list(got) == list(expected)
    if nested:
        assert isinstance(got["pair"], tuple)


def _rows(model):
    lines = []
    model.summary(print_fn=lambda line, *a, **k: lines.append(line))
    return [" ".join(line.replace("│", " ").split()) for line in "\n".join(lines).splitlines()
            if "Dense" in line]


@pytest.mark.parametrize("nested", [False, True])
def test_summary_lists_the_layers_as_keras_does(nested):
    ours, theirs, _ = _twins(nested)
    assert _rows(ours) == _rows(theirs) and len(_rows(ours)) == 3


def test_a_dict_of_losses_given_after_the_first_call_trains_as_keras():
    ours, theirs, x = _twins(False)
    y = {"score": np.linspace(0, 1, 6, dtype="float32")[:, None], "label": np.eye(3, dtype="float32")[[0, 1, 2] * 2]}
    logs = []
    for model in (ours, theirs):
        model.compile(optimizer="sgd", loss={"score": "mse", "label": "categorical_crossentropy"},
                      metrics={"label": ["accuracy"]})
        logs.append(model.fit(x, y, epochs=2, batch_size=3, shuffle=False, verbose=0).history)
    assert list(logs[0]) == list(logs[1]) == ["label_accuracy", "label_loss", "loss", "score_loss"]
    for key in logs[1]:
        np.testing.assert_allclose(logs[0][key], logs[1][key], rtol=1e-5, atol=1e-6)
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5, atol=1e-6)


def _functional(lib):
    inputs = lib.Input((5,))
    a = lib.layers.Dense(3, name="a")(inputs)
    return lib.Model(inputs, {"z": a, "pair": (lib.layers.Dense(2, name="b")(a), lib.layers.Dense(1, name="c")(a))})


def test_a_functional_model_of_a_dict_nesting_a_tuple_is_as_keras():
    # the structure a traced subclassed call gives is one a functional model takes too, as Keras's does
    ours, theirs = _functional(gpu_dl), _functional(keras)
    ours.set_weights(theirs.get_weights())
    x = np.random.RandomState(2).rand(4, 5).astype("float32")
    _same(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    assert ours.compute_output_shape((None, 5)) == theirs.compute_output_shape((None, 5))
    assert list(ours.compute_output_shape((None, 5))) == list(theirs.compute_output_shape((None, 5)))
    assert ours.output_names == theirs.output_names
