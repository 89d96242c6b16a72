"""Calls that give a layer's input tensors by keyword (``layer(inputs=x)``, ``mha(query=q, value=v, key=k)``,
``lstm(sequences=x)``), as Keras binds the first argument of a call by its name: on arrays, in functional models,
in the traced call of a composite layer, and in the configs Keras writes for them (their nodes keep the tensors
among the kwargs), against Keras 3 itself where it is installed."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy


def _inputs(xp, shape=(2, 4, 3), seed=0):
    return xp.asarray(numpy.random.default_rng(seed).standard_normal(shape).astype("float32"))


CALLS = [
    (lambda: layers.Dense(3), lambda layer, x: layer(inputs=x), lambda layer, x: layer(x)),
    (lambda: layers.LSTM(2, return_sequences=True), lambda layer, x: layer(sequences=x), lambda layer, x: layer(x)),
    (lambda: layers.Bidirectional(layers.GRU(2)), lambda layer, x: layer(sequences=x), lambda layer, x: layer(x)),
    (lambda: layers.MultiHeadAttention(2, 2), lambda layer, x: layer(query=x, value=x * 2, key=x - 1),
     lambda layer, x: layer(x, x * 2, x - 1)),
    (lambda: layers.GroupQueryAttention(2, 2, 1), lambda layer, x: layer(query=x, value=x * 2),
     lambda layer, x: layer(x, x * 2)),
    (lambda: layers.Attention(), lambda layer, x: layer(inputs=[x, x * 2]), lambda layer, x: layer([x, x * 2])),
    (lambda: layers.Concatenate(), lambda layer, x: layer(inputs=[x, x]), lambda layer, x: layer([x, x])),
    (lambda: layers.RandomFlip(seed=3), lambda layer, x: layer(data=x[..., None], training=False),
     lambda layer, x: layer(x[..., None], training=False)),
    (lambda: layers.RMSNormalization(), lambda layer, x: layer(x=x), lambda layer, x: layer(x)),
]


@pytest.mark.parametrize("index", range(len(CALLS)))
def test_a_layer_takes_its_inputs_by_keyword_on_arrays(xp, index):
    make, by_keyword, positional = CALLS[index]
    layer = make()
    x = _inputs(xp)
    numpy.testing.assert_array_equal(to_numpy(by_keyword(layer, x)), to_numpy(positional(layer, x)))


def test_other_keywords_are_refused_with_the_first_argument_s_name():
    dense = layers.Dense(3, name="d")
    with pytest.raises(TypeError, match=r"Layer 'd' \(Dense\) was called without its first argument .*`inputs`.*x"):
        dense(x=numpy.ones((1, 2), "float32"))
    with pytest.raises(TypeError, match="without its first argument .*no arguments"):
        dense()
    with pytest.raises(TypeError, match="`sequences`"):
        layers.LSTM(2)(inputs=numpy.ones((1, 2, 2), "float32"))


class Block(layers.Layer):
    """A composite layer whose call names its input ``features`` and calls its sublayers by keyword."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.attend = layers.MultiHeadAttention(2, 3)
        self.norm = layers.LayerNormalization()
        self.project = layers.Dense(3)

    def call(self, features, training=None):
        attended = self.attend(query=features, value=features, training=training)
        return self.project(inputs=self.norm(inputs=features + attended))


def test_a_composite_layer_traces_keyword_calls_and_trains(xp):
    x, target = _inputs(xp), _inputs(xp, seed=1)
    block = Block()
    y = block(features=x)
    numpy.testing.assert_array_equal(to_numpy(y), to_numpy(block(x)))
    inputs = gpu_dl.Input((4, 3))
    model = gpu_dl.Model(inputs, Block(name="block")(features=inputs))
    model.compile(gpu_dl.optimizers.SGD(0.1), "mse")
    first = model.evaluate(x, target, verbose=0)
    model.fit(x, target, epochs=3, verbose=0)
    assert model.evaluate(x, target, verbose=0) < first


os.environ.setdefault("KERAS_BACKEND", "torch")


def _program(lib):
    L = lib.layers
    inputs = lib.Input((4, 3), name="x")
    dense = L.Dense(3, name="dense")(inputs=inputs)
    attended = L.MultiHeadAttention(2, 2, name="mha")(query=dense, value=inputs, key=dense)
    weighted = L.Attention(name="attention")(inputs=[attended, dense])
    both = L.Concatenate(name="concat")(inputs=[weighted, inputs])
    recurrent = L.LSTM(2, name="lstm")(sequences=both)
    return lib.Model(inputs, L.Dense(1, name="out")(inputs=recurrent))


def test_keyword_calls_match_keras_and_keras_s_files_load(tmp_path):
    keras = pytest.importorskip("keras")
    theirs, ours = _program(keras), _program(gpu_dl)
    ours.set_weights(theirs.get_weights())
    x = numpy.random.default_rng(2).standard_normal((5, 4, 3)).astype("float32")
    want = keras.ops.convert_to_numpy(theirs.predict(x, verbose=0))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    # Keras writes the keyword calls' tensors among the nodes' kwargs; such a file loads here
    nodes = {layer["name"]: layer["inbound_nodes"] for layer in theirs.get_config()["layers"]}
    assert not nodes["mha"][0]["args"] and sorted(nodes["mha"][0]["kwargs"]) == ["key", "query", "value"]
    assert not nodes["lstm"][0]["args"] and list(nodes["lstm"][0]["kwargs"]) == ["sequences"]
    theirs.save(tmp_path / "theirs.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "theirs.keras")
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    # and gpu_dl's file of the same program (its nodes keep the tensors by keyword too) loads in Keras
    ours.save(tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(back.predict(x, verbose=0)), want, rtol=1e-5,
                                  atol=1e-6)
    theirs_config = keras.Model.from_config(theirs.get_config())
    assert [layer.name for layer in theirs_config.layers] == [layer.name for layer in loaded.layers]
