"""SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells and RNN: one step against plain NumPy, gradients against
float64 finite differences, RNN(cell) against the matching layer, stacked cells against chained layers,
configs and bad input."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.layers.symbolic import flatten_structure, pack_like
from gradcheck import assert_gradient


def sigmoid(z):
    return 1 / (1 + numpy.exp(-z))


def expected_step(kind, x, states, weights):
    """One step from the formulas: (h, [new states])."""
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else None
    h = states[0]
    u = recurrent.shape[0]
    if kind == "LSTMCell":
        z = x @ kernel + h @ recurrent + (0 if bias is None else bias)
        i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), numpy.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
        c = f * states[1] + i * g
        h = o * numpy.tanh(c)
        return h, [h, c]
    if kind == "GRUCell":
        xw = x @ kernel + (0 if bias is None else bias[0])
        hr = h @ recurrent + (0 if bias is None else bias[1])
        z, r = sigmoid(xw[:, :u] + hr[:, :u]), sigmoid(xw[:, u:2 * u] + hr[:, u:2 * u])
        h = z * h + (1 - z) * numpy.tanh(xw[:, 2 * u:] + r * hr[:, 2 * u:])
        return h, [h]
    if kind == "GRUCell-reset-before":
        xw = x @ kernel + (0 if bias is None else bias)
        z = sigmoid(xw[:, :u] + h @ recurrent[:, :u])
        r = sigmoid(xw[:, u:2 * u] + h @ recurrent[:, u:2 * u])
        h = z * h + (1 - z) * numpy.tanh(xw[:, 2 * u:] + (r * h) @ recurrent[:, 2 * u:])
        return h, [h]
    h = numpy.tanh(x @ kernel + h @ recurrent + (0 if bias is None else bias))
    return h, [h]


KINDS = ["LSTMCell", "GRUCell", "SimpleRNNCell"]
ALL_KINDS = KINDS + ["GRUCell-reset-before"]
LAYER_OF = {"LSTMCell": "LSTM", "GRUCell": "GRU", "SimpleRNNCell": "SimpleRNN"}


def make(kind, units, **kwargs):
    if kind == "GRUCell-reset-before":
        return layers.GRUCell(units, reset_after=False, bias_initializer="random_normal", dtype="float64", **kwargs)
    return getattr(layers, kind)(units, bias_initializer="random_normal", dtype="float64", **kwargs)


def n_states(kind):
    return 2 if kind == "LSTMCell" else 1


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("n,d,u", [(1, 1, 1), (3, 5, 33), (2, 3, 4)])
def test_one_step_matches_numpy(xp, rng, kind, n, d, u):
    cell = make(kind, u)
    x = rng.standard_normal((n, d))
    states = [rng.standard_normal((n, u)) for _ in range(n_states(kind))]
    h, new_states = cell(xp.asarray(x), [xp.asarray(s) for s in states])
    want_h, want_states = expected_step(kind, x, states, cell.get_weights())
    numpy.testing.assert_allclose(to_numpy(h), want_h, rtol=1e-10, atol=1e-12)
    assert isinstance(new_states, list) and len(new_states) == len(want_states)
    for got, want in zip(new_states, want_states):
        numpy.testing.assert_allclose(to_numpy(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["GRUCell", "SimpleRNNCell"])
def test_single_state_given_as_an_array_comes_back_as_an_array(rng, kind):
    cell = make(kind, 3)
    h, state = cell(rng.standard_normal((2, 4)), numpy.zeros((2, 3)))
    assert not isinstance(state, list)
    numpy.testing.assert_array_equal(state, h)


def test_lstm_cell_takes_keras_arguments_and_defaults():
    cell = layers.LSTMCell(5)
    assert (cell.state_size, cell.output_size) == ([5, 5], 5)
    assert (layers.GRUCell(3).state_size, layers.SimpleRNNCell(2).state_size) == (3, 2)
    cell.build((None, 4))
    assert [w.shape for w in cell.weights] == [(4, 20), (5, 20), (20,)]
    numpy.testing.assert_array_equal(cell.bias.numpy()[5:10], 1)         # unit_forget_bias
    gru = layers.GRUCell(3, reset_after=False)
    gru.build((None, 2))
    assert [w.shape for w in gru.weights] == [(2, 9), (3, 9), (9,)]
    assert [s.shape for s in cell.get_initial_state(7)] == [(7, 5), (7, 5)]
    assert float(abs(cell.get_initial_state(2)[1]).sum()) == 0


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("n,d,u", [(1, 1, 1), (3, 4, 33)])
def test_one_step_gradients(xp, rng, kind, n, d, u):
    """Finite differences of <h, w_h> + sum <state_k, w_k> for x, each state and each weight."""
    cell = make(kind, u)
    x = xp.asarray(rng.standard_normal((n, d)))
    states = [xp.asarray(rng.standard_normal((n, u))) for _ in range(n_states(kind))]
    w_h = xp.asarray(rng.standard_normal((n, u)))
    w_states = [xp.asarray(rng.standard_normal((n, u))) for _ in states]

    def objective(x_, states_):
        h, new = cell(x_, states_, training=True)
        return (h * w_h).sum() + sum((s * w).sum() for s, w in zip(new, w_states))

    objective(x, states)
    dx = cell.backward([w_h, w_states])
    d_states = cell.state_gradients
    grads = [v.grad.copy() for v in cell.weights]
    assert_gradient(lambda v: objective(v, states), x, dx, rng, what="x_t")
    for k in range(len(states)):
        def of_state(v, k=k):
            return objective(x, states[:k] + [v] + states[k + 1:])
        assert_gradient(of_state, states[k], d_states[k], rng, what=f"states[{k}]")
    for variable, grad in zip(cell.weights, grads):
        original = variable.value.copy()

        def of_weight(v, variable=variable):
            variable.value[...] = v
            return objective(x, states)
        assert_gradient(of_weight, original, grad, rng, what=variable.name)
        variable.value[...] = original


def chained_layers(cells, x, **flags):
    """The layers matching ``cells``, with their weights, each but the last returning sequences."""
    out = []
    for i, cell in enumerate(cells):
        last = i == len(cells) - 1
        config = {k: v for k, v in cell.get_config().items() if k != "name"}
        layer = getattr(layers, LAYER_OF[type(cell).__name__])(
            **config, return_state=True, return_sequences=flags.get("return_sequences", False) if last else True,
            go_backwards=flags.get("go_backwards", False) and i == 0)
        layer.build((None, None, cell.kernel.shape[0]))
        layer.set_weights(cell.get_weights())
        out.append(layer)
    return out


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("return_sequences,go_backwards", [(False, False), (True, True)])
def test_rnn_of_a_cell_is_the_matching_layer(xp, rng, kind, return_sequences, go_backwards):
    cell = make(kind, 4)
    rnn = layers.RNN(cell, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    x = rng.standard_normal((3, 6, 5))
    mask = numpy.ones((3, 6), bool)
    mask[0, 4:] = mask[2, :2] = False
    initial = [rng.standard_normal((3, 4)) for _ in range(n_states(kind))]
    got = rnn(xp.asarray(x), mask=xp.asarray(mask), initial_state=[xp.asarray(s) for s in initial])
    layer = chained_layers([cell], x, return_sequences=return_sequences, go_backwards=go_backwards)[0]
    want = layer(xp.asarray(x), mask=xp.asarray(mask), initial_state=[xp.asarray(s) for s in initial])
    assert len(got) == 1 + n_states(kind)
    for a, b in zip(got, want):
        numpy.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def run_rnn_gradients(rnn, x, rng, initial, xp, mask=None):
    """Finite differences of the outputs and states against w, for the input, initial states and weights."""
    out = rnn(x, training=True, mask=mask, initial_state=initial)
    ws = [xp.asarray(rng.standard_normal(o.shape)) for o in flatten_structure(out)]

    def objective(x_, initial_):
        flat = flatten_structure(rnn(x_, training=True, mask=mask, initial_state=initial_))
        return sum((o * w).sum() for o, w in zip(flat, ws))

    objective(x, initial)
    dx = rnn.backward(pack_like(out, ws))       # the gradients in the structure of the call's outputs
    d_initial = rnn.initial_state_gradients
    grads = [v.grad.copy() for v in rnn.weights]
    assert_gradient(lambda v: objective(v, initial), x, dx, rng, what="x")
    for k in range(len(initial)):
        def of_state(v, k=k):
            return objective(x, initial[:k] + [v] + initial[k + 1:])
        assert_gradient(of_state, initial[k], d_initial[k], rng, what=f"initial_state[{k}]")
    for variable, grad in zip(rnn.weights, grads):
        original = variable.value.copy()

        def of_weight(v, variable=variable):
            variable.value[...] = v
            return objective(x, initial)
        assert_gradient(of_weight, original, grad, rng, what=variable.path, directions=2)
        variable.value[...] = original


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t,u", [(1, 1), (17, 33)])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_rnn_gradients(xp, rng, kind, t, u, return_sequences):
    rnn = layers.RNN(make(kind, u), return_sequences=return_sequences, return_state=True)
    x = xp.asarray(rng.standard_normal((3, t, 2)))
    initial = [xp.asarray(rng.standard_normal((3, u))) for _ in range(n_states(kind))]
    run_rnn_gradients(rnn, x, rng, initial, xp)


@pytest.mark.parametrize("t", [1, 17])
def test_stacked_cells_gradients(xp, rng, t):
    rnn = layers.RNN([make("LSTMCell", 3), make("SimpleRNNCell", 1), make("GRUCell", 33)], return_sequences=True,
                     return_state=True, go_backwards=True)
    x = xp.asarray(rng.standard_normal((3, t, 2)))
    initial = [xp.asarray(rng.standard_normal((3, u))) for u in (3, 3, 1, 33)]
    run_rnn_gradients(rnn, x, rng, initial, xp)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_stacked_cells_equal_chained_layers(xp, rng, go_backwards):
    cells = [make("GRUCell", 4), make("LSTMCell", 3)]
    rnn = layers.RNN(layers.StackedRNNCells(cells), return_sequences=True, return_state=True,
                     go_backwards=go_backwards)
    x = rng.standard_normal((3, 7, 2))
    mask = numpy.ones((3, 7), bool)
    mask[1, 5:] = mask[2, :3] = False
    got = rnn(xp.asarray(x), mask=xp.asarray(mask))
    # Keras's form: the states nested per cell, each cell's as a list (the built-in cells' initial states are lists)
    assert len(got) == 3 and [len(s) for s in got[1:]] == [1, 2]
    got = flatten_structure(got)
    y, chained_states = xp.asarray(x), []
    step_mask = xp.asarray(mask)
    for i, layer in enumerate(chained_layers(cells, x, return_sequences=True, go_backwards=go_backwards)):
        y, *states = layer(y, mask=step_mask)
        chained_states += states
        if go_backwards:
            step_mask = step_mask[:, ::-1]
    assert len(got) == 1 + 1 + 2
    for a, b in zip(got, [y] + chained_states):
        numpy.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-12, atol=1e-14)
    assert rnn.state_size == [4, 3, 3]
    assert rnn.cell.state_size == [4, [3, 3]] and rnn.cell.output_size == 3


def test_stacked_cells_called_on_one_step(rng):
    cells = [make("LSTMCell", 3), make("SimpleRNNCell", 2)]
    stacked = layers.StackedRNNCells(cells)
    x = rng.standard_normal((2, 4))
    states = stacked.get_initial_state(2)
    h, new_states = stacked(x, states, training=True)
    h1, s1 = expected_step("LSTMCell", x, [numpy.zeros((2, 3))] * 2, cells[0].get_weights())
    h2, s2 = expected_step("SimpleRNNCell", h1, [numpy.zeros((2, 2))], cells[1].get_weights())
    numpy.testing.assert_allclose(h, h2, rtol=1e-12)
    numpy.testing.assert_allclose(new_states[0][1], s1[1], rtol=1e-12)
    w = rng.standard_normal(h.shape)
    dx = stacked.backward(w)
    assert_gradient(lambda v: (stacked(v, states)[0] * w).sum(), x, dx, rng, what="x_t")


def test_rnn_trains_in_a_model_and_keeps_its_weights_through_files(rng, tmp_path):
    gpu_dl.backend.set_random_seed(3)
    model = gpu_dl.Sequential([layers.Input((6, 3)), layers.RNN(layers.LSTMCell(5), return_sequences=True),
                               layers.RNN([layers.SimpleRNNCell(4), layers.GRUCell(3)]),
                               layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((16, 6, 3)).astype("float32"), rng.integers(0, 2, 16)
    before = model.get_weights()
    losses = [model.train_on_batch(x, y) for _ in range(5)]
    assert losses[-1] < losses[0]
    assert all(not numpy.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.count_params() == 4 * (3 * 5 + 5 * 5 + 5) + (5 * 4 + 4 * 4 + 4) + (4 * 9 + 3 * 9 + 18) + 3 * 2 + 2
    model.save(tmp_path / "m.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.layers[1].cell, layers.StackedRNNCells)


def test_configs_round_trip():
    rnn = layers.RNN([layers.LSTMCell(3, unit_forget_bias=False, dropout=0.25), layers.GRUCell(2, reset_after=False)],
                     return_sequences=True, go_backwards=True)
    config = rnn.get_config()
    assert config["cell"]["class_name"] == "StackedRNNCells"
    again = layers.RNN.from_config(config)
    assert again.get_config() == config
    cell = layers.GRUCell(4, activation="relu", seed=7)
    assert layers.GRUCell.from_config(cell.get_config()).get_config() == cell.get_config()
    assert set(layers.SimpleRNNCell(2).get_config()) == {
        "name", "trainable", "dtype", "units", "activation", "use_bias", "kernel_initializer",
        "recurrent_initializer", "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
        "bias_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
        "recurrent_dropout", "seed"}


def test_stateful_rnn_carries_its_states(rng):
    cell = make("LSTMCell", 3)
    rnn = layers.RNN(cell, stateful=True)
    x = rng.standard_normal((2, 8, 4))
    rnn(x[:, :5])
    rnn.reset_state()
    whole = layers.RNN(make("LSTMCell", 3))
    whole(x)
    whole.set_weights(rnn.get_weights())
    rnn(x[:, :5])
    numpy.testing.assert_allclose(rnn(x[:, 5:]), whole(x), rtol=1e-12)
    assert [s.shape for s in rnn.states] == [(2, 3), (2, 3)]
    rnn.reset_state()
    # zeroed, of the batch size they had (Keras's reset_state)
    assert [s.shape for s in rnn.states] == [(2, 3), (2, 3)] and not any(s.numpy().any() for s in rnn.states)


class MyCell(layers.Layer):
    state_size = 3

    def call(self, x, states):
        return x, states


class NestedStateCell(MyCell):
    state_size = [(3,), (2, 4)]


@pytest.mark.parametrize("cell,error,words", [
    (NestedStateCell(), ValueError, r"the cell NestedStateCell must have a state_size that is a positive integer "
                                    r"or a non-empty list of positive integers"),
    ([layers.LSTMCell(2), MyCell()], TypeError, "MyCell is not one of gpu_dl's built-in cells"),
    (layers.Dense(3), ValueError, "`cell` must be an RNN cell"),
    ("lstm", ValueError, "`cell` must be an RNN cell"),
])
def test_bad_cells_are_refused_naming_the_layer(cell, error, words):
    with pytest.raises(error, match=words) as info:
        layers.RNN(cell, name="my_rnn")
    assert "RNN layer 'my_rnn'" in str(info.value)


def test_bad_inputs_are_refused_naming_the_layer(rng):
    rnn = layers.RNN(layers.GRUCell(3), name="seq")
    with pytest.raises(ValueError, match=r"RNN layer 'seq' expects inputs of rank 3"):
        rnn(rng.standard_normal((2, 4)))
    rnn(rng.standard_normal((2, 5, 4)))
    with pytest.raises(ValueError, match=r"RNN layer 'seq' was built for 4 features per step"):
        rnn(rng.standard_normal((2, 5, 6)))
    cell = layers.LSTMCell(2, name="step")
    with pytest.raises(ValueError, match=r"LSTMCell 'step' is called on one time step"):
        cell(rng.standard_normal((2, 5, 4)), cell.get_initial_state(2))
    cell(rng.standard_normal((2, 4)), cell.get_initial_state(2))
    with pytest.raises(ValueError, match=r"LSTMCell 'step' was built for 4 features per step"):
        cell(rng.standard_normal((2, 3)), cell.get_initial_state(2))
    with pytest.raises(ValueError, match=r"LSTMCell 'step' takes 2 state\(s\)"):
        cell(rng.standard_normal((2, 4)), [numpy.zeros((2, 2))])
    with pytest.raises(ValueError, match=r"RNN layer 'other': its cell 'step' was built for 4 features"):
        layers.RNN(cell, name="other")(rng.standard_normal((2, 5, 3)))
