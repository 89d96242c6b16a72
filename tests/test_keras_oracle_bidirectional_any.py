"""Bidirectional over RNN(cell), RNN([cells]), ConvLSTM1D, ConvLSTM2D and ConvLSTM3D against Keras 3 itself: same
weights, same outputs and states, the same training steps, and .keras files written by either load in the other."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def wrapped(lib, name, **flags):
    L = lib.layers
    if name == "rnn_lstm_cell":
        return L.RNN(L.LSTMCell(3), **flags)
    if name == "rnn_stacked":
        return L.RNN([L.GRUCell(3), L.LSTMCell(2)], **flags)
    if name == "conv_lstm2d":
        return L.ConvLSTM2D(2, (2, 2), padding="same", **flags)
    if name == "conv_lstm3d":
        return L.ConvLSTM3D(2, (1, 2, 2), padding="same", **flags)
    return L.ConvLSTM1D(2, 2, **flags)


SHAPES = {"rnn_lstm_cell": ((2, 5, 3), [(2, 3)] * 2), "rnn_stacked": ((2, 5, 3), [(2, 3), (2, 2), (2, 2)]),
          "conv_lstm2d": ((2, 3, 4, 3, 2), [(2, 4, 3, 2)] * 2), "conv_lstm1d": ((2, 3, 5, 2), [(2, 4, 2)] * 2),
          "conv_lstm3d": ((2, 3, 2, 3, 2, 2), [(2, 2, 3, 2, 2)] * 2)}


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("merge_mode", ["concat", "mul", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_outputs_and_states_match_keras(rng, name, merge_mode, return_sequences):
    shape, state_shapes = SHAPES[name]
    x = rng.standard_normal(shape).astype("float32")
    initial = [rng.standard_normal(s).astype("float32") for s in state_shapes * 2]
    flags = {"return_sequences": return_sequences, "return_state": True}
    ours = gpu_dl.layers.Bidirectional(wrapped(gpu_dl, name, **flags), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(wrapped(keras, name, **flags), merge_mode=merge_mode)
    if name == "rnn_stacked":   # Keras's form: each direction's states per cell (the GRUCell's alone here)
        initial = [initial[0], initial[1:3], initial[3], initial[4:]]
    got = ours(x, initial_state=initial)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    want = theirs(x, initial_state=initial)
    # each direction's states nested per cell as Keras nests them, on arrays and on symbolic tensors
    assert structure(got) == structure(want)
    assert structure(ours(gpu_dl.Input(shape[1:]))) == structure(theirs(keras.Input(shape[1:])))
    for g, w in zip(keras.tree.flatten(got), keras.tree.flatten(want)):
        numpy.testing.assert_allclose(g, keras.ops.convert_to_numpy(w), rtol=1e-5, atol=1e-6)
    zeros = ours(x)
    assert structure(zeros) == structure(theirs(x))
    for g, w in zip(keras.tree.flatten(zeros), keras.tree.flatten(theirs(x))):        # from zeros
        numpy.testing.assert_allclose(g, keras.ops.convert_to_numpy(w), rtol=1e-5, atol=1e-6)


def structure(value):
    """A nested result as lists of shapes (without the batch size; Keras's tuples as lists)."""
    if isinstance(value, (list, tuple)):
        return [structure(v) for v in value]
    return tuple(value.shape)[1:]


@pytest.mark.parametrize("name", ["rnn_lstm_cell", "rnn_stacked", "conv_lstm2d", "conv_lstm3d"])
def test_masked_sequences_match_keras(rng, name):
    shape, _ = SHAPES[name]
    x = rng.standard_normal(shape).astype("float32")
    mask = numpy.ones(shape[:2], bool)
    mask[0, 1] = mask[1, 0] = False
    ours = gpu_dl.layers.Bidirectional(wrapped(gpu_dl, name, return_sequences=True))
    theirs = keras.layers.Bidirectional(wrapped(keras, name, return_sequences=True))
    got = ours(x, mask=mask)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    numpy.testing.assert_allclose(got, keras.ops.convert_to_numpy(theirs(x, mask=mask)), rtol=1e-5, atol=1e-6)


def stack(lib, name):
    L = lib.layers
    shape, _ = SHAPES[name]
    middle = [L.Bidirectional(wrapped(lib, name, return_sequences=True), merge_mode="sum")]
    middle += [L.Flatten()] if name.startswith("conv") else [L.GlobalAveragePooling1D()]
    return lib.Sequential([L.Input(shape[1:])] + middle + [L.Dense(3, activation="softmax")])


@pytest.mark.parametrize("name", SHAPES)
def test_training_steps_match_keras(rng, name):
    ours, theirs = stack(gpu_dl, name), stack(keras, name)
    assert_training_steps_match(keras, ours, theirs, rng, SHAPES[name][0][1:], classes=3, batch=4, steps=3)


@pytest.mark.parametrize("name", ["rnn_lstm_cell", "rnn_stacked", "conv_lstm2d", "conv_lstm3d"])
@pytest.mark.parametrize("writer", ["keras", "gpu_dl"])
def test_keras_files_load_both_ways(rng, tmp_path, name, writer):
    """Weights under '<bidirectional>/forward_layer/cell/vars' (stacked: '.../cell/cells/<cell>/vars')."""
    lib, other = (keras, gpu_dl) if writer == "keras" else (gpu_dl, keras)
    model = stack(lib, name)
    model.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    model.save(tmp_path / "bidirectional.keras")
    loaded = (keras.models.load_model if other is keras else gpu_dl.models.load_model)(tmp_path / "bidirectional.keras")
    bidirectional = loaded.layers[0]
    assert type(bidirectional.forward_layer).__name__ == type(model.layers[0].forward_layer).__name__
    assert bidirectional.backward_layer.go_backwards and not bidirectional.forward_layer.go_backwards
    x = rng.standard_normal(SHAPES[name][0]).astype("float32")
    numpy.testing.assert_allclose(numpy.asarray(loaded.predict(x, verbose=0)),
                                  numpy.asarray(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
