"""RNN of several cells with ``return_state``: its states nested per cell as Keras gives them, on arrays and on
symbolic tensors, in functional models (nested initial states, states feeding later layers, nested model
outputs), with the gradients of all of them against float64 finite differences."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.layers.symbolic import flatten_structure
from gradcheck import assert_gradient


def structure(value):
    """A nested result as lists of shapes (tuples of Keras's as lists)."""
    if isinstance(value, (list, tuple)):
        return [structure(v) for v in value]
    return tuple(value.shape)


def stack(dtype="float64", **flags):
    return layers.RNN([layers.LSTMCell(4, dtype=dtype), layers.GRUCell(2, dtype=dtype)], return_state=True,
                      name="stack", dtype=dtype, **flags)


def test_the_call_on_arrays_nests_the_states_per_cell(xp, rng):
    rnn = stack(return_sequences=True)
    x = xp.asarray(rng.standard_normal((3, 5, 2)))
    out, (h1, c1), (h2,) = rnn(x)     # the built-in cells' initial states are lists: each cell's states a list
    lstm = layers.LSTM(4, return_sequences=True, return_state=True, dtype="float64")
    gru = layers.GRU(2, return_sequences=True, return_state=True, dtype="float64")
    lstm.build((None, None, 2))
    gru.build((None, None, 4))
    lstm.set_weights(rnn.cell.cells[0].get_weights())
    gru.set_weights(rnn.cell.cells[1].get_weights())
    seq, want_h1, want_c1 = lstm(x)
    want_out, want_h2 = gru(seq)
    for a, b in zip((out, h1, c1, h2), (want_out, want_h1, want_c1, want_h2)):
        numpy.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-12, atol=1e-14)
    # initial states given per cell: each cell's come back in the form given (Keras's), a bare state bare
    given = [[xp.asarray(rng.standard_normal((3, 4))) for _ in range(2)], xp.asarray(rng.standard_normal((3, 2)))]
    result = rnn(x, initial_state=given)
    assert structure(result) == [(3, 5, 2), [(3, 4), (3, 4)], (3, 2)]
    flat = rnn(x, initial_state=given[0] + [given[1]])      # given flat: gpu_dl takes it too, nested as usual
    assert structure(flat) == [(3, 5, 2), [(3, 4), (3, 4)], [(3, 2)]]
    for a, b in zip(flatten_structure(result), flatten_structure(flat)):
        numpy.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_the_symbolic_call_nests_the_states_as_the_cells_state_sizes():
    rnn = stack()
    out = rnn(gpu_dl.Input((5, 2), dtype="float64"))
    # LSTMCell's state_size is a list: its states in a list; GRUCell's an int: its state alone
    assert structure(out) == [(None, 2), [(None, 4), (None, 4)], (None, 2)]
    assert rnn.compute_output_shape((None, 5, 2)) == [(None, 2), [(None, 4), (None, 4)], (None, 2)]
    node = rnn._inbound_nodes[0]
    assert node.outputs == flatten_structure(out)
    assert [t._keras_history.tensor_index for t in flatten_structure(out)] == [0, 1, 2, 3]


def nested_model(dtype="float64"):
    """A stack of an LSTMCell and a GRUCell started from states given per cell, its last states feeding a Dense
    head; the outputs are the sequence and the head, and the model gives them with the nested states too."""
    inputs = [gpu_dl.Input((5, 2), dtype=dtype, name="seq"), gpu_dl.Input((4,), dtype=dtype, name="h0"),
              gpu_dl.Input((4,), dtype=dtype, name="c0"), gpu_dl.Input((2,), dtype=dtype, name="g0")]
    rnn = stack(dtype, return_sequences=True)
    seq, (h1, c1), h2 = rnn(inputs[0], initial_state=[[inputs[1], inputs[2]], inputs[3]])
    joined = layers.Concatenate(name="joined", dtype=dtype)([h2, c1])
    head = layers.Dense(3, name="head", dtype=dtype)(joined)
    return gpu_dl.Model(inputs, [seq, head], name="nested")


def test_states_given_per_cell_and_feeding_later_layers_train(xp, rng):
    model = nested_model()
    rnn, dense = model.get_layer("stack"), model.get_layer("head")
    xs = [xp.asarray(rng.standard_normal(s)) for s in ((3, 5, 2), (3, 4), (3, 4), (3, 2))]
    seq, head = model(xs)
    want_seq, (_, want_c1), want_h2 = rnn(xs[0], initial_state=[[xs[1], xs[2]], xs[3]])
    kernel, bias = dense.get_weights()
    numpy.testing.assert_allclose(to_numpy(seq), to_numpy(want_seq), rtol=1e-12)
    numpy.testing.assert_allclose(to_numpy(head), numpy.concatenate([to_numpy(want_h2), to_numpy(want_c1)], -1)
                                  @ kernel + bias, rtol=1e-12)
    ws = [xp.asarray(rng.standard_normal(a.shape)) for a in (seq, head)]

    def objective(inputs):
        return sum(float((o * w).sum()) for o, w in zip(model.forward(inputs, training=True), ws))

    objective(xs)
    grads = model.backward(ws)
    for i in range(len(xs)):
        assert_gradient(lambda v, i=i: objective(xs[:i] + [v] + xs[i + 1:]), xs[i], grads[i], rng,
                        what=f"model input {i}")
    for var in model.trainable_weights:
        objective(xs)
        model.backward(ws, input_gradient=False)
        grad, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return objective(xs)
        assert_gradient(of_weight, original.copy(), grad, rng, what=var.path, directions=2)
        var.value[...] = original


def test_a_model_gives_the_nested_states_among_its_outputs(xp, rng, tmp_path):
    inputs = gpu_dl.Input((5, 2), dtype="float64")
    rnn = stack()
    out = rnn(inputs)
    model = gpu_dl.Model(inputs, out)
    x = xp.asarray(rng.standard_normal((3, 5, 2)))
    got = model(x)
    assert structure(got) == [(3, 2), [(3, 4), (3, 4)], (3, 2)]
    assert structure(model.predict(to_numpy(x), verbose=0)) == structure(got)
    for a, b in zip(flatten_structure(got), flatten_structure(rnn(x))):
        numpy.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    # gradients of the flat outputs reach the states' own: d/dh2 of sum(h2 * w) is w
    ws = [xp.asarray(rng.standard_normal(a.shape)) for a in flatten_structure(got)]
    model.forward(x, training=True)
    dx = model.backward(ws)

    def objective(v):
        return sum(float((o * w).sum()) for o, w in zip(model.forward(v, training=True), ws))
    assert_gradient(objective, x, dx, rng)
    config = model.get_config()
    assert config["output_layers"] == [["stack", 0, 0], [["stack", 0, 1], ["stack", 0, 2]], ["stack", 0, 3]]
    model.save(tmp_path / "nested.keras")
    again = gpu_dl.models.load_model(tmp_path / "nested.keras")
    assert structure(again.output) == [(None, 2), [(None, 4), (None, 4)], (None, 2)]
    for a, b in zip(flatten_structure(again.predict(to_numpy(x), verbose=0)), flatten_structure(got)):
        numpy.testing.assert_allclose(a, to_numpy(b), rtol=1e-12)


def test_a_model_of_nested_initial_states_comes_back_from_its_config(rng):
    model = nested_model()
    config = model.get_config()
    entry = next(e for e in config["layers"] if e["name"] == "stack")
    states = entry["inbound_nodes"][0]["kwargs"]["initial_state"]
    assert [[s["config"]["keras_history"] for s in states[0]], states[1]["config"]["keras_history"]] == \
        [[["h0", 0, 0], ["c0", 0, 0]], ["g0", 0, 0]]
    again = gpu_dl.Model.from_config(config)
    again.set_weights(model.get_weights())
    xs = [rng.standard_normal(s) for s in ((3, 5, 2), (3, 4), (3, 4), (3, 2))]
    for a, b in zip(again.predict(xs, verbose=0), model.predict(xs, verbose=0)):
        numpy.testing.assert_array_equal(a, b)
    assert again.get_config() == config
    clone = gpu_dl.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for a, b in zip(clone.predict(xs, verbose=0), model.predict(xs, verbose=0)):
        numpy.testing.assert_array_equal(a, b)


def test_nested_gradients_and_bad_initial_states(rng):
    rnn = stack()
    x = rng.standard_normal((2, 3, 2))
    out = rnn(x, training=True)
    # backward takes the gradients flat or as the call returned them
    nested = rnn.backward([numpy.ones_like(out[0]), [None, numpy.ones((2, 4))], [numpy.ones((2, 2))]])
    rnn(x, training=True)
    flat = rnn.backward([numpy.ones_like(out[0]), None, numpy.ones((2, 4)), numpy.ones((2, 2))])
    numpy.testing.assert_array_equal(nested, flat)
    with pytest.raises(ValueError, match="'stack': initial_state needs 3 arrays in all"):
        rnn(x, initial_state=[[numpy.zeros((2, 4))], numpy.zeros((2, 2))])
    with pytest.raises(ValueError, match="'stack': initial_state needs 3 tensor"):
        rnn(gpu_dl.Input((3, 2)), initial_state=[[gpu_dl.Input((4,))], gpu_dl.Input((2,))])
    with pytest.raises(TypeError, match="initial_state mixes symbolic tensors and arrays"):
        rnn(gpu_dl.Input((3, 2)), initial_state=[[gpu_dl.Input((4,)), numpy.zeros((2, 4))], gpu_dl.Input((2,))])
