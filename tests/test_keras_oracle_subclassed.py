"""Subclassed models against Keras 3 itself: the same program (a Model subclass making its layers in __init__ and
composing them in call) run with gpu_dl and with Keras, and what each prints or gives compared: the summary of a
model not yet built, ``build(input_shape)``, variable paths, the logs of the batch hooks, and the optimizer's
learning rate as user code reads and sets it."""
import numpy
import pytest

import gpu_dl

keras = pytest.importorskip("keras")

from keras_steps import assert_same_summary, summary_rows  # noqa: E402


def _fresh():
    gpu_dl.backend.clear_session()
    keras.utils.clear_session()         # the same layer names on both sides


def _classes(lib):
    L = lib.layers

    class Inner(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    class Net(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.stem = L.Dense(4)
            self.drop = L.Dropout(0.1)
            self.norm = L.BatchNormalization()
            self.blocks = [L.Dense(3), L.Dense(3)]
            self.heads = {"out": L.Dense(2)}
            self.inner = Inner()
            self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")

        def call(self, x):
            h = self.norm(self.drop(self.stem(x)))
            for block in self.blocks:
                h = block(h)
            return self.inner(self.heads["out"](h)) * self.scale
    return Net


# ------------------------------------------------------------------ summary before the model is built
@pytest.mark.parametrize("show_trainable", [False, True])
def test_summary_of_an_unbuilt_model_as_keras(monkeypatch, show_trainable):
    _fresh()
    ours, theirs = _classes(gpu_dl)(name="net"), _classes(keras)(name="net")
    assert not ours.built
    rows, total, _ = summary_rows(ours, monkeypatch)
    # each layer is listed, unknown shapes and no parameters but the model's own; Dropout (built when it is made,
    # in Keras) counts its 0 parameters
    assert [r[1:3] for r in rows] == [("?", "0 (unbuilt)"), ("?", "0"), ("?", "0 (unbuilt)")] + \
        [("?", "0 (unbuilt)")] * 4
    assert total == "Total params: 2 (8.00 B)"
    assert_same_summary(ours, theirs, monkeypatch)
    lines = {}
    for name, model in (("ours", ours), ("theirs", theirs)):
        printed = []
        model.summary(print_fn=lambda line, **kwargs: printed.append(line), show_trainable=show_trainable)
        text = "\n".join(printed).splitlines()
        cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text if line.startswith("│")]
        lines[name] = [line.strip() for line in text if "params" in line or line.startswith("Model")] + \
            [c[-1] for c in cells if c[-1]]
    assert lines["ours"] == lines["theirs"]


def test_summary_after_a_call_as_keras(monkeypatch):
    _fresh()
    ours, theirs = _classes(gpu_dl)(), _classes(keras)()
    x = numpy.linspace(-1, 1, 10, dtype="float32").reshape(2, 5)
    ours(x)
    theirs(x)
    rows, _, _ = summary_rows(ours, monkeypatch)
    # a composite layer without compute_output_shape has no output shape Keras can print
    assert rows[-1][:2] == ("inner (Inner)", "?") and rows[0][1] == "(2, 4)"
    assert_same_summary(ours, theirs, monkeypatch)
