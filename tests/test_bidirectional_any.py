"""Bidirectional over RNN(cell), RNN([cells]), ConvLSTM1D, ConvLSTM2D and ConvLSTM3D: the merged outputs equal the two
directions run by hand, gradients equal float64 finite differences, and the states, masks, stateful calls,
configs and files behave as for LSTM."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.layers.symbolic import flatten_structure
from gpu_dl.models import keras_config
from test_rnn_wrappers import check_layer_gradients

MERGE_MODES = ["concat", "sum", "mul", "ave", None]
# name: (a wrapped layer given its flags, the input shape, its states' shapes for that input)
WRAPPED = {
    "rnn_lstm_cell": (lambda **k: layers.RNN(layers.LSTMCell(3, bias_initializer="random_normal", dtype="float64"),
                                             dtype="float64", **k), (2, 4, 3), [(2, 3), (2, 3)]),
    "rnn_stacked": (lambda **k: layers.RNN([layers.LSTMCell(3, dtype="float64"),
                                            layers.GRUCell(2, bias_initializer="random_normal", dtype="float64")],
                                           dtype="float64", **k), (2, 4, 3), [(2, 3), (2, 3), (2, 2)]),
    "conv_lstm2d": (lambda **k: layers.ConvLSTM2D(2, (2, 2), padding="same", bias_initializer="random_normal",
                                                  dtype="float64", **k), (2, 3, 3, 2, 2), [(2, 3, 2, 2)] * 2),
    "conv_lstm1d": (lambda **k: layers.ConvLSTM1D(2, 2, bias_initializer="random_normal", dtype="float64", **k),
                    (2, 3, 4, 2), [(2, 3, 2)] * 2),
    "conv_lstm3d": (lambda **k: layers.ConvLSTM3D(2, (2, 1, 2), padding="same", bias_initializer="random_normal",
                                                  dtype="float64", **k), (2, 3, 2, 3, 2, 1), [(2, 2, 3, 2, 2)] * 2),
}


def wrapped(name, merge_mode="concat", **flags):
    make, shape, states = WRAPPED[name]
    return layers.Bidirectional(make(**flags), merge_mode=merge_mode, dtype="float64"), shape, states


def by_hand(layer, x, initial, mask=None):
    """The two directions run as separate layers with the wrapper's weights, then merged."""
    f, b = layer.forward_layer, layer.backward_layer
    forward = type(f).from_config(f.get_config())
    backward = type(b).from_config(b.get_config())
    for copy, original in ((forward, f), (backward, b)):
        copy.build(x.shape)
        copy.set_weights(original.get_weights())
    count = f.state_count
    y_f = forward(x, mask=mask, initial_state=None if initial is None else initial[:count])
    y_b = backward(x, mask=mask, initial_state=None if initial is None else initial[count:])
    states = []
    if layer.return_state:
        states = flatten_structure(y_f[1:]) + flatten_structure(y_b[1:])
        y_f, y_b = y_f[0], y_b[0]
    y_f, y_b = to_numpy(y_f), to_numpy(y_b)
    if layer.return_sequences:
        y_b = y_b[:, ::-1]
    merged = {"concat": lambda: [numpy.concatenate([y_f, y_b], -1)], "sum": lambda: [y_f + y_b],
              "mul": lambda: [y_f * y_b], "ave": lambda: [(y_f + y_b) / 2], None: lambda: [y_f, y_b]}
    return merged[layer.merge_mode]() + [to_numpy(s) for s in states]


@pytest.mark.parametrize("name", WRAPPED)
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_outputs_and_states_are_the_two_directions_merged(xp, rng, name, merge_mode, return_sequences):
    layer, shape, state_shapes = wrapped(name, merge_mode, return_sequences=return_sequences, return_state=True)
    x = xp.asarray(rng.standard_normal(shape))
    initial = [xp.asarray(rng.standard_normal(s)) for s in state_shapes * 2]
    got = layer(x, initial_state=initial)
    want = by_hand(layer, x, initial)
    out_shape = layer.compute_output_shape(shape)
    if name == "rnn_stacked":
        # each direction's states nested per cell, as Keras's: on arrays each built-in cell's in a list; the
        # shapes as a symbolic call gives them, the GRUCell's (an int state_size) alone
        assert [len(s) for s in got[-4:]] == [2, 1, 2, 1]
        assert [type(s) for s in out_shape[-4:]] == [list, tuple, list, tuple]
        got = flatten_structure(got)
        out_shape = out_shape[:-4] + out_shape[-4] + [out_shape[-3]] + out_shape[-2] + [out_shape[-1]]
    assert len(got) == len(want) == (2 if merge_mode is None else 1) + 2 * len(state_shapes)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(to_numpy(g), w, rtol=1e-12, atol=1e-12)
    assert [tuple(s) for s in out_shape] == [tuple(g.shape) for g in got]
    for g, w in zip(flatten_structure(layer(x)), by_hand(layer, x, None)):          # from zeros
        numpy.testing.assert_allclose(to_numpy(g), w, rtol=1e-12, atol=1e-12)


def test_copies_are_made_from_the_config_and_named_as_keras_names_them():
    inner = layers.RNN(layers.GRUCell(3), name="seq", return_sequences=True)
    layer = layers.Bidirectional(inner)
    f, b = layer.forward_layer, layer.backward_layer
    assert (f.name, b.name) == ("forward_seq", "backward_seq")
    assert type(f) is type(b) is layers.RNN and f is not inner and f.cell is not inner.cell
    assert (f.go_backwards, b.go_backwards) == (False, True)
    assert f.zero_output_for_mask and b.zero_output_for_mask     # Keras zeros masked steps of the sequences
    conv = layers.Bidirectional(layers.ConvLSTM2D(2, 3, name="forward_video"))
    assert (conv.forward_layer.name, conv.backward_layer.name) == ("forward_video", "backward_forward_video")


@pytest.mark.parametrize("name", WRAPPED)
@pytest.mark.parametrize("merge_mode", ["concat", "mul", None])
def test_gradients_of_input_weights_and_initial_states_match_finite_differences(xp, rng, name, merge_mode):
    layer, shape, state_shapes = wrapped(name, merge_mode, return_sequences=True, return_state=True)
    x = xp.asarray(rng.standard_normal(shape))
    initial = [xp.asarray(rng.standard_normal(s)) for s in state_shapes * 2]
    outputs = flatten_structure(layer(x, initial_state=initial))
    grads = [xp.asarray(rng.standard_normal(o.shape)) for o in outputs]
    grads[-1] = None                                             # an unused state takes None
    check_layer_gradients(layer, x, rng, grads, initial_state=initial)
    assert len(layer.initial_state_gradients) == len(initial)


@pytest.mark.parametrize("name", ["rnn_lstm_cell", "conv_lstm2d", "conv_lstm3d"])
def test_masked_steps_merge_zeros_and_pass_gradients(xp, rng, name):
    layer, shape, _ = wrapped(name, return_sequences=True)
    x = xp.asarray(rng.standard_normal(shape))
    mask = xp.asarray(numpy.array([[True, True, False] + [True] * (shape[1] - 3), [False] + [True] * (shape[1] - 1)]))
    got = to_numpy(layer(x, mask=mask))
    numpy.testing.assert_allclose(got, by_hand(layer, x, None, mask=mask)[0], rtol=1e-12, atol=1e-12)
    assert not got[0, 2].any() and not got[1, 0].any()
    assert layer.compute_mask(x, mask) is mask
    dy = xp.asarray(rng.standard_normal(got.shape))
    check_layer_gradients(layer, x, rng, [dy], call=lambda v, _: layer(v, training=True, mask=mask))


def test_an_explicit_backward_layer_of_another_cell_splits_the_initial_states(xp, rng):
    forward = layers.RNN(layers.LSTMCell(3, dtype="float64"), return_state=True, dtype="float64")
    backward = layers.RNN(layers.GRUCell(2, dtype="float64"), return_state=True, go_backwards=True, dtype="float64",
                          name="back")
    layer = layers.Bidirectional(forward, backward_layer=backward, dtype="float64")
    assert layer.backward_layer is backward
    x = xp.asarray(rng.standard_normal((2, 4, 3)))
    initial = [xp.asarray(rng.standard_normal((2, u))) for u in (3, 3, 2)]
    got = layer(x, initial_state=initial)
    assert [tuple(g.shape) for g in got] == [(2, 5), (2, 3), (2, 3), (2, 2)]
    for g, w in zip(got, by_hand(layer, x, initial)):
        numpy.testing.assert_allclose(to_numpy(g), w, rtol=1e-12, atol=1e-12)
    check_layer_gradients(layer, x, rng, [xp.asarray(rng.standard_normal(g.shape)) for g in got],
                          initial_state=initial)
    with pytest.raises(ValueError, match=r"initial_state needs a list of 3 arrays: the forward layer's h, c, "
                                         r"then the backward layer's h, got 4"):
        layer(x, initial_state=initial + initial[:1])
    with pytest.raises(ValueError, match=r"RNN layer 'back': initial_state\[0\] must have shape \(2, 2\)"):
        layer(x, initial_state=initial[:2] + [initial[0]])


def test_a_stateful_wrapper_carries_both_directions_states(xp, rng):
    layer, shape, state_shapes = wrapped("conv_lstm1d", stateful=True, return_state=True)
    x = xp.asarray(rng.standard_normal(shape))
    assert layer.stateful and layer.states is None
    first = layer(x)
    assert [tuple(s.shape) for s in layer.states] == state_shapes * 2
    second = layer(x, initial_state=None)
    want = by_hand(layer, x, [s for s in first[1:]])
    for g, w in zip(second, want):
        numpy.testing.assert_allclose(to_numpy(g), w, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"ConvLSTM1D layer 'forward_.*is stateful"):
        layer(x[:1])
    layer.reset_state()
    # zeroed, of the shapes they had (Keras's reset_state)
    assert [tuple(s.shape) for s in layer.states] == state_shapes * 2 and not any(to_numpy(s).any()
                                                                                   for s in layer.states)
    rnn, _, _ = wrapped("rnn_stacked", stateful=True)
    rnn(xp.asarray(rng.standard_normal((2, 4, 3))))
    # one list per cell and direction, as Keras's forward.states + backward.states of stacked cells
    assert [len(group) for group in rnn.states] == [2, 1, 2, 1] and rnn.carried_batch_size == 2


def test_rnn_errors_name_the_rnn_layer_not_the_layer_it_runs(xp, rng):
    rnn = layers.RNN(layers.LSTMCell(3), stateful=True, name="rnn")
    rnn(xp.zeros((2, 4, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"^RNN layer 'rnn' is stateful and carries states for batches of 2"):
        rnn(xp.zeros((3, 4, 3), dtype="float32"))
    rnn = layers.RNN(layers.GRUCell(3), name="rnn")
    with pytest.raises(ValueError, match=r"^RNN layer 'rnn': initial_state\[0\] must have shape \(2, 3\), "
                                         r"got \(2, 4\)"):
        rnn(xp.zeros((2, 4, 3), dtype="float32"), initial_state=[xp.zeros((2, 4), dtype="float32")])
    stacked = layers.RNN([layers.GRUCell(3), layers.LSTMCell(2, name="top")], name="rnn")
    with pytest.raises(ValueError, match=r"^RNN layer 'rnn' \(cell 'top'\): initial_state\[1\] must have shape"):
        stacked(xp.zeros((2, 4, 3), dtype="float32"),
                initial_state=[xp.zeros((2, 3), dtype="float32"), xp.zeros((2, 2), dtype="float32"),
                               xp.zeros((2, 3), dtype="float32")])


@pytest.mark.parametrize("name", WRAPPED)
def test_configs_and_files_round_trip(rng, tmp_path, name):
    layer, shape, _ = wrapped(name, "ave", return_sequences=True)
    model = gpu_dl.Sequential([layers.Input(shape[1:], dtype="float64"), layer])
    x = rng.standard_normal(shape)
    want = model.predict(x, verbose=0)
    copy = layers.Bidirectional.from_config(layer.get_config())
    assert type(copy.forward_layer) is type(layer.forward_layer) and copy.merge_mode == "ave"
    assert copy.forward_layer.name == layer.forward_layer.name and copy.backward_layer.go_backwards
    model.save(tmp_path / "bidirectional.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "bidirectional.keras")
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-12, atol=1e-12)
    assert loaded.layers[0].forward_layer.name == layer.forward_layer.name


def test_loading_takes_only_gpu_dls_recurrent_layers_as_the_wrapped_layer():
    entry = keras_config._layer_entry(layers.Bidirectional(layers.RNN(layers.SimpleRNNCell(2))))
    entry["config"]["layer"] = {"module": "somewhere", "class_name": "Dense", "config": {"units": 2}}
    with pytest.raises(ValueError, match=r"wrapped layer Dense is not supported.*LSTM, GRU, SimpleRNN, RNN"):
        keras_config._layer_from_entry(entry, "test")
    with pytest.raises(ValueError, match="not one of gpu_dl's recurrent layers"):
        layers.Bidirectional.layer_from_entry({"class_name": "Dense", "config": {"units": 2}})
