"""LSTM, GRU, SimpleRNN and Bidirectional: forward against a plain NumPy step loop, backward against
float64 finite differences, shapes, parameter counts, configs and bad input."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import array_module, to_numpy
from gradcheck import assert_gradient


def sigmoid(z):
    return 1 / (1 + numpy.exp(-z))


def expected_sequence(kind, x, weights, go_backwards=False, recurrent_mask=None, input_mask=None):
    """Every step's hidden state (N, T, U), step by step from the formulas, and the last cell state (LSTM);
    ``recurrent_mask`` (N, U) multiplies h_{t-1} where it enters the recurrent products, a (G, N, U) one gate g's
    product by mask g; ``input_mask`` (G, N, D) x_t in gate g's input projection by mask g."""
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else None
    n, t, _ = x.shape
    u = recurrent.shape[0]
    h, c = numpy.zeros((n, u)), numpy.zeros((n, u))
    outputs = []
    for step in (range(t - 1, -1, -1) if go_backwards else range(t)):
        x_t = x[:, step]
        if input_mask is None:
            x_proj = x_t @ kernel
        else:
            width = kernel.shape[1] // len(input_mask)
            x_proj = numpy.concatenate([(x_t * m) @ kernel[:, g * width:(g + 1) * width]
                                        for g, m in enumerate(input_mask)], axis=1)
        hm = h if recurrent_mask is None else h * recurrent_mask
        if recurrent_mask is not None and recurrent_mask.ndim == 3:
            # one mask per gate: each gate's columns of the product take h under its own
            gates = recurrent_mask.shape[0]
            hg = [h * m for m in recurrent_mask]
            product = numpy.concatenate([hg[g] @ recurrent[:, g * u:(g + 1) * u] for g in range(gates)], axis=1)
        else:
            hg = [hm] * 4
            product = hm @ recurrent
        if kind == "LSTM":
            z = x_proj + product + (0 if bias is None else bias)
            i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), numpy.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
            c = f * c + i * g
            h = o * numpy.tanh(c)
        elif kind == "GRU-reset-before":      # reset_after=False: r scales h before its product
            xw = x_proj + (0 if bias is None else bias)
            z = sigmoid(xw[:, :u] + product[:, :u])
            r = sigmoid(xw[:, u:2 * u] + product[:, u:2 * u])
            hh = numpy.tanh(xw[:, 2 * u:] + (r * hg[2]) @ recurrent[:, 2 * u:])
            h = z * h + (1 - z) * hh
        elif kind == "GRU":
            xw = x_proj + (0 if bias is None else bias[0])
            hr = product + (0 if bias is None else bias[1])
            z = sigmoid(xw[:, :u] + hr[:, :u])
            r = sigmoid(xw[:, u:2 * u] + hr[:, u:2 * u])
            hh = numpy.tanh(xw[:, 2 * u:] + r * hr[:, 2 * u:])
            h = z * h + (1 - z) * hh
        else:
            h = numpy.tanh(x_proj + product + (0 if bias is None else bias))
        outputs.append(h)
    return numpy.stack(outputs, axis=1), c


KINDS = ["LSTM", "GRU", "SimpleRNN"]
ALL_KINDS = KINDS + ["GRU-reset-before"]


def make(kind, units, **kwargs):
    if kind == "GRU-reset-before":
        return layers.GRU(units, reset_after=False, bias_initializer="random_normal", dtype="float64", **kwargs)
    return getattr(layers, kind)(units, bias_initializer="random_normal", dtype="float64", **kwargs)


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("n,t,d,u", [(1, 1, 1, 1), (3, 17, 5, 33), (2, 4, 3, 2)])
@pytest.mark.parametrize("return_sequences,go_backwards", [(False, False), (True, False), (True, True)])
def test_forward_matches_step_loop(xp, rng, kind, n, t, d, u, return_sequences, go_backwards):
    layer = make(kind, u, return_sequences=return_sequences, go_backwards=go_backwards)
    x = rng.standard_normal((n, t, d))
    y = to_numpy(layer(xp.asarray(x)))
    want, _ = expected_sequence(kind, x, layer.get_weights(), go_backwards)
    numpy.testing.assert_allclose(y, want if return_sequences else want[:, -1], rtol=1e-10, atol=1e-12)
    assert y.shape[1:] == tuple(layer.compute_output_shape((None, t, d)))[1:]


def check_gradients(layer, x, rng, grads_of_outputs):
    """Finite differences of sum(<outputs, w>) for the input and every weight."""
    def objective_of(v):
        out = layer(v, training=True)
        outs = out if isinstance(out, list) else [out]
        return sum((o * w).sum() for o, w in zip(outs, grads_of_outputs) if w is not None)

    layer(x, training=True)
    dx = layer.backward(grads_of_outputs if len(grads_of_outputs) > 1 else grads_of_outputs[0])
    assert_gradient(objective_of, x, dx, rng, what=f"{layer.name} input")
    for var in layer.trainable_weights:
        layer(x, training=True)
        layer.backward(grads_of_outputs if len(grads_of_outputs) > 1 else grads_of_outputs[0])
        grad, original = var.grad.copy(), var.value.copy()

        def objective(value, var=var):
            var.value[...] = value
            return objective_of(x)

        assert_gradient(objective, original.copy(), grad, rng, what=f"{layer.name} {var.name}")
        var.value[...] = original


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("n,t,d,u", [(1, 1, 2, 1), (3, 17, 4, 5), (2, 3, 1, 33)])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_gradients_match_finite_differences(xp, rng, kind, n, t, d, u, return_sequences):
    layer = make(kind, u, return_sequences=return_sequences, go_backwards=(t == 3))
    x = xp.asarray(rng.standard_normal((n, t, d)))
    shape = (n, t, u) if return_sequences else (n, u)
    check_gradients(layer, x, rng, [xp.asarray(rng.standard_normal(shape))])


@pytest.mark.parametrize("kind", KINDS)
def test_return_state_gradients(xp, rng, kind):
    layer = make(kind, 3, return_sequences=True, return_state=True)
    x = xp.asarray(rng.standard_normal((2, 5, 4)))
    outputs = layer(x)
    assert len(outputs) == (3 if kind == "LSTM" else 2)
    want, c_last = expected_sequence(kind, to_numpy(x), layer.get_weights())
    numpy.testing.assert_allclose(to_numpy(outputs[1]), want[:, -1], rtol=1e-10)
    if kind == "LSTM":
        numpy.testing.assert_allclose(to_numpy(outputs[2]), c_last, rtol=1e-10)
    grads = [xp.asarray(rng.standard_normal(o.shape)) for o in outputs]
    grads[0] = None if kind == "GRU" else grads[0]      # a state alone may carry the gradient
    check_gradients(layer, x, rng, grads)


def test_custom_activations_take_the_array_path(xp, rng):
    layer = layers.LSTM(4, activation="relu", recurrent_activation="hard_sigmoid", dtype="float64",
                        return_sequences=True)
    x = xp.asarray(rng.standard_normal((2, 6, 3)))
    check_gradients(layer, x, rng, [xp.asarray(rng.standard_normal((2, 6, 4)))])


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_dropout_masks_are_fixed_within_a_call_and_differentiated(xp, rng, kind):
    layer = make(kind, 4, dropout=0.3, recurrent_dropout=0.4, seed=7, return_sequences=True)
    x = xp.asarray(rng.standard_normal((3, 5, 6)))
    w = xp.asarray(rng.standard_normal((3, 5, 4)))

    def objective(v):
        layer.seed_generator.state.assign([7, 0])          # the same masks on every call
        return (layer(v, training=True) * w).sum()

    objective(x)
    dx = layer.backward(w)
    assert_gradient(objective, x, dx, rng, what=f"{kind} input with dropout")
    eval_out = to_numpy(layer(x, training=False))
    layer.seed_generator.state.assign([7, 0])
    assert not numpy.allclose(to_numpy(layer(x, training=True)), eval_out)
    want, _ = expected_sequence(kind, to_numpy(x), layer.get_weights())
    numpy.testing.assert_allclose(eval_out, want, rtol=1e-10)    # inference ignores dropout


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_per_gate_masks_forward_and_gradients(xp, rng, monkeypatch, kind, return_sequences, dropout):
    layer = make(kind, 5, dropout=dropout, recurrent_dropout=0.4, seed=3, return_sequences=return_sequences,
                 go_backwards=True)
    x = xp.asarray(rng.standard_normal((3, 4, 2)))
    layer(x)
    input_mask, recurrent_mask = layer._dropout_masks(x, True)
    gates = GATE_MASKS[kind]
    assert recurrent_mask.shape == ((gates, 3, 5) if gates > 1 else (3, 5))
    assert input_mask is None if not dropout else input_mask.shape == ((gates, 3, 2) if gates > 1 else (3, 2))
    if gates > 1:        # the gates' masks differ
        assert not numpy.array_equal(to_numpy(recurrent_mask[0]), to_numpy(recurrent_mask[1]))
    monkeypatch.setattr(layer, "_dropout_masks", lambda v, training: (input_mask, recurrent_mask) if training else
                        (None, None))
    host_input = None if input_mask is None else to_numpy(input_mask)
    plain_x = to_numpy(x) if host_input is None or gates > 1 else to_numpy(x) * host_input[:, None, :]
    want, _ = expected_sequence(kind, plain_x, layer.get_weights(), go_backwards=True,
                                recurrent_mask=to_numpy(recurrent_mask),
                                input_mask=host_input if gates > 1 else None)
    got = to_numpy(layer(x, training=True))
    numpy.testing.assert_allclose(got, want if return_sequences else want[:, -1], rtol=1e-10, atol=1e-12)
    shape = (3, 4, 5) if return_sequences else (3, 5)
    check_gradients(layer, x, rng, [xp.asarray(rng.standard_normal(shape))])


def keras_numpy_keep(seed, counter, shape, rate):
    """The scaled keep-mask Keras's NumPy backend's dropout draws for the seed pair (seed, counter)."""
    uniform = numpy.random.default_rng(numpy.array([seed, counter], numpy.uint32)).uniform(size=shape)
    return (uniform < 1 - rate) / (1 - rate)


# Pairs a call takes per rate above 0 with a recurrent_dropout: Keras's cells draw one mask per gate then.
GATE_MASKS = {"LSTM": 4, "GRU": 3, "GRU-reset-before": 3, "SimpleRNN": 1}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_dropout_masks_come_from_the_seed_generator_as_keras_s(rng, kind):
    layer = make(kind, 4, dropout=0.3, recurrent_dropout=0.4, seed=5, return_sequences=True)
    state = layer.seed_generator.state
    assert layer.variables[-1] is state and state not in layer.weights and state.numpy().tolist() == [5, 0]
    x = rng.standard_normal((3, 5, 6))
    y = layer(x, training=True)
    count = GATE_MASKS[kind]
    assert state.numpy().tolist() == [5, 2 * count]        # input pairs, then recurrent pairs
    # on NumPy the masks Keras's NumPy backend draws, one per pair: Keras's gated cells drop each gate's input and
    # h_{t-1} with masks of their own
    input_mask = numpy.stack([keras_numpy_keep(5, g, (3, 6), 0.3) for g in range(count)])
    recurrent_mask = numpy.stack([keras_numpy_keep(5, count + g, (3, 4), 0.4) for g in range(count)])
    if count == 1:
        want, _ = expected_sequence(kind, x * input_mask[0][:, None, :], layer.get_weights(),
                                    recurrent_mask=recurrent_mask[0])
    else:
        want, _ = expected_sequence(kind, x, layer.get_weights(), recurrent_mask=recurrent_mask, input_mask=input_mask)
    numpy.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(layer(x), expected_sequence(kind, x, layer.get_weights())[0], rtol=1e-10)
    assert state.numpy().tolist() == [5, 4 * count]        # inference takes the pairs too, as Keras's RNN does


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_input_dropout_alone_is_keras_s_mask(rng, kind):
    layer = make(kind, 4, dropout=0.5, seed=9, return_sequences=True)
    x = rng.standard_normal((3, 5, 6))
    y = layer(x, training=True)
    want, _ = expected_sequence(kind, x * keras_numpy_keep(9, 0, (3, 6), 0.5)[:, None, :], layer.get_weights())
    numpy.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    assert layer.seed_generator.state.numpy().tolist() == [9, 1]
    assert make(kind, 4).seed_generator.state.numpy()[1] == 0      # every layer holds one, as Keras's cells
    if kind == "LSTM":
        layers.LSTM(4, dropout=0.5, seed=9, implementation=1)(x)
        with pytest.raises(ValueError, match="LSTM layer .*`implementation` must be 1 or 2"):
            layers.LSTM(4, implementation=3)


def test_draws_stay_on_the_device(xp, rng):
    x = xp.asarray(rng.standard_normal((4, 3, 5)).astype("float32"))
    for layer in (layers.LSTM(3, dropout=0.5, recurrent_dropout=0.5, seed=1), layers.GRU(3, dropout=0.5, seed=1),
                  layers.SimpleRNN(3, recurrent_dropout=0.5, seed=1)):
        y = layer(x, training=True)
        assert type(y) is type(x) and y.dtype == numpy.float32
        assert layer.seed_generator.state.numpy()[1] > 0


def test_a_cell_keeps_its_masks_until_reset(xp, rng):
    cell = layers.LSTMCell(4, dropout=0.5, recurrent_dropout=0.5, seed=3, dtype="float64")
    x = xp.asarray(rng.standard_normal((2, 5)))
    states = [xp.asarray(rng.standard_normal((2, 4))) for _ in range(2)]
    plain = to_numpy(cell(x, states)[0])
    assert cell.seed_generator.state.numpy().tolist() == [3, 0]
    first = to_numpy(cell(x, states, training=True)[0])
    assert cell.seed_generator.state.numpy().tolist() == [3, 8]       # four masks per rate, one per gate
    assert len(cell.get_dropout_mask(x)) == 4 and len(cell.get_recurrent_dropout_mask(states[0])) == 4
    numpy.testing.assert_array_equal(to_numpy(cell(x, states, training=True)[0]), first)     # the same masks
    assert not numpy.allclose(first, plain)
    numpy.testing.assert_array_equal(to_numpy(cell(x, states)[0]), plain)
    with pytest.raises(ValueError, match="LSTMCell .* holds the dropout masks .*reset_dropout_mask"):
        cell(xp.concatenate([x, x]), [xp.concatenate([s, s]) for s in states], training=True)
    cell.reset_dropout_mask()
    cell.reset_recurrent_dropout_mask()
    assert not numpy.allclose(to_numpy(cell(x, states, training=True)[0]), first)
    assert cell.seed_generator.state.numpy().tolist() == [3, 16]
    if xp is numpy:   # Keras's NumPy-backend masks: each gate's own input and recurrent masks
        cell.reset_dropout_mask()
        cell.reset_recurrent_dropout_mask()
        cell.seed_generator.state.assign([3, 0])
        h = cell(x, states, training=True)[0]
        kernel, recurrent, bias = cell.get_weights()
        dropped = [(x * keras_numpy_keep(3, g, (2, 5), 0.5), states[0] * keras_numpy_keep(3, 4 + g, (2, 4), 0.5))
                   for g in range(4)]
        z = numpy.concatenate([x_g @ kernel[:, 4 * g:4 * g + 4] + h_g @ recurrent[:, 4 * g:4 * g + 4]
                               for g, (x_g, h_g) in enumerate(dropped)], axis=1) + bias
        i, f, g, o = sigmoid(z[:, :4]), sigmoid(z[:, 4:8]), numpy.tanh(z[:, 8:12]), sigmoid(z[:, 12:])
        numpy.testing.assert_allclose(h, o * numpy.tanh(f * states[1] + i * g), rtol=1e-10)


def test_lstm_forget_bias_starts_at_one_and_weight_layout():
    layer = layers.LSTM(3)
    layer.build((None, 5, 2))
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (2, 12) and recurrent.shape == (3, 12) and bias.shape == (12,)
    numpy.testing.assert_array_equal(bias, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    numpy.testing.assert_allclose(recurrent @ recurrent.T, numpy.eye(3), atol=1e-5)   # orthogonal rows
    gru = layers.GRU(3)
    gru.build((None, 5, 2))
    assert [w.shape for w in gru.get_weights()] == [(2, 9), (3, 9), (2, 9)]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_weights_are_c_contiguous(xp, kind):
    # The orthogonal recurrent kernel is built as a transpose; the GPU optimizer kernels update
    # weights in place and refuse any other layout.
    layer = getattr(layers, kind)(5)
    layer.build((None, 4, 3))
    assert all(v.value.flags.c_contiguous for v in layer.weights), [v.value.strides for v in layer.weights]


def test_stacked_and_bidirectional_summary_counts(capsys):
    model = gpu_dl.Sequential([
        layers.Input((17, 8)),
        layers.LSTM(33, return_sequences=True),
        layers.Bidirectional(layers.GRU(5, return_sequences=True)),
        layers.SimpleRNN(7),
        layers.Dense(2),
    ])
    model.summary()
    text = capsys.readouterr().out
    lstm = 4 * (8 * 33 + 33 * 33 + 33)
    gru = 2 * (3 * (33 * 5 + 5 * 5) + 2 * 3 * 5)
    rnn = 10 * 7 + 7 * 7 + 7
    for shape, count in [("(None, 17, 33)", lstm), ("(None, 17, 10)", gru), ("(None, 7)", rnn)]:
        assert shape in text and f"{count:,}" in text, (shape, count)
    assert model.count_params() == lstm + gru + rnn + 7 * 2 + 2


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_gradients(xp, rng, merge_mode):
    layer = layers.Bidirectional(make("LSTM", 3, return_sequences=True), merge_mode=merge_mode, dtype="float64")
    x = xp.asarray(rng.standard_normal((2, 4, 3)))
    y = layer(x)
    forward, _ = expected_sequence("LSTM", to_numpy(x), layer.get_weights()[:3])
    backward, _ = expected_sequence("LSTM", to_numpy(x), layer.get_weights()[3:], go_backwards=True)
    backward = backward[:, ::-1]
    want = {"concat": numpy.concatenate([forward, backward], -1), "sum": forward + backward,
            "mul": forward * backward, "ave": (forward + backward) / 2}[merge_mode]
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10)
    check_gradients(layer, x, rng, [xp.asarray(rng.standard_normal(y.shape))])


def test_configs_round_trip(rng):
    model = gpu_dl.Sequential([
        layers.Input((6, 3)),
        layers.LSTM(4, return_sequences=True, go_backwards=True, recurrent_dropout=0.1, unit_forget_bias=False),
        layers.Bidirectional(layers.GRU(2, return_sequences=True), merge_mode="ave"),
        layers.SimpleRNN(3, activation="relu"),
    ])
    copy = gpu_dl.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))
    assert copy.layers[0].go_backwards and not copy.layers[0].unit_forget_bias
    assert copy.layers[1].merge_mode == "ave" and copy.layers[2].activation.name == "relu"


def test_bad_input_names_the_layer(xp):
    lstm = layers.LSTM(4, name="seq")
    with pytest.raises(ValueError, match=r"seq.*rank 3 \(batch, timesteps, features\)"):
        lstm(xp.ones((2, 5), dtype="float32"))
    assert not lstm.built
    with pytest.raises(ValueError, match=r"seq.*sequence length \(timesteps\) is 0"):
        lstm(xp.ones((2, 0, 3), dtype="float32"))
    lstm(xp.ones((2, 5, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"seq.*built for 3 features.*with 4"):
        lstm(xp.ones((2, 5, 4), dtype="float32"))
    for make_bad, match in [(lambda: layers.LSTM(0), "units"), (lambda: layers.GRU(3, dropout=1.0), "dropout"),
                            (lambda: layers.SimpleRNN(3, recurrent_dropout=-0.1), "recurrent_dropout"),
                            (lambda: layers.Bidirectional(layers.Dense(3)),
                             "recurrent layer.*LSTM, GRU, SimpleRNN, RNN"),
                            (lambda: layers.Bidirectional(layers.LSTM(3), merge_mode="max"), "merge_mode")]:
        with pytest.raises((ValueError, TypeError), match=match):
            make_bad()


def test_gradient_clipping_applies_to_recurrent_weights(rng):
    """The seeds' exploding gradients: clipnorm bounds each weight's update."""
    model = gpu_dl.Sequential([layers.Input((9, 2)), layers.SimpleRNN(4, recurrent_initializer="ones"),
                               layers.Dense(1)])
    model.compile(optimizer=gpu_dl.optimizers.SGD(learning_rate=1.0, clipnorm=0.5), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    x = (rng.standard_normal((8, 9, 2)) * 10).astype("float32")
    model.train_on_batch(x, numpy.full((8, 1), 100.0, dtype="float32"))
    for a, b in zip(model.get_weights(), before):
        assert numpy.linalg.norm(a - b) <= 0.5 + 1e-5
    assert array_module(model.layers[0].recurrent_kernel.value) is not None


def test_bidirectional_checks_its_backward_layer():
    """A backward_layer reading the same way as the forward one would be turned around and merged wrongly."""
    with pytest.raises(ValueError, match=r"backward_layer 'back'.*other direction.*go_backwards=False for both"):
        layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(3, name="back"))
    with pytest.raises(ValueError, match="return_state"):
        layers.Bidirectional(layers.GRU(3), backward_layer=layers.GRU(3, go_backwards=True, return_state=True))
    layer = layers.Bidirectional(layers.LSTM(3), backward_layer=layers.GRU(2, go_backwards=True))
    assert layer.compute_output_shape((None, 4, 2)) == (None, 5)


def test_bidirectional_config_keeps_its_backward_layer(rng):
    model = gpu_dl.Sequential([
        layers.Input((5, 3)),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True),
                             backward_layer=layers.GRU(2, return_sequences=True, go_backwards=True, name="back")),
        layers.Bidirectional(layers.SimpleRNN(3), merge_mode="sum"),
    ])
    copy = gpu_dl.Sequential.from_config(model.get_config())
    assert [w.shape for w in copy.get_weights()] == [w.shape for w in model.get_weights()]
    backward = copy.layers[0].backward_layer
    assert isinstance(backward, layers.GRU) and backward.name == "back" and backward.go_backwards
    copy.set_weights(model.get_weights())
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))


@pytest.mark.parametrize("kind", KINDS)
def test_a_built_layer_takes_any_sequence_length(xp, rng, kind):
    layer = make(kind, 3, return_sequences=True)
    bidirectional = layers.Bidirectional(make(kind, 2), dtype="float64")
    layer(xp.asarray(rng.standard_normal((2, 5, 4))))
    bidirectional(xp.asarray(rng.standard_normal((2, 5, 4))))
    for t in (1, 17):
        x = rng.standard_normal((3, t, 4))
        want, _ = expected_sequence(kind, x, layer.get_weights())
        numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), want, rtol=1e-10, atol=1e-12)
        assert bidirectional(xp.asarray(x)).shape == (3, 4)
    with pytest.raises(ValueError, match=r"built for 4 features.*with 5"):
        layer(xp.ones((2, 5, 5)))


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_batch_gives_empty_outputs_and_zero_gradients(xp, kind):
    """As in Keras (and gpu_dl's Dense), a batch of 0 sequences is not an error."""
    layer = make(kind, 3, return_sequences=True, return_state=True)
    outputs = layer(xp.zeros((0, 4, 2)), training=True)
    assert [o.shape for o in outputs] == [(0, 4, 3)] + [(0, 3)] * (len(outputs) - 1)
    dx = layer.backward([xp.zeros(o.shape) for o in outputs])
    assert dx.shape == (0, 4, 2)
    for var in layer.trainable_weights:
        assert var.grad.shape == var.shape and not to_numpy(var.grad).any()
    assert layers.Bidirectional(make(kind, 2), dtype="float64")(xp.zeros((0, 4, 2))).shape == (0, 4)


def test_bidirectional_checks_both_layers_before_running_either(xp):
    backward = layers.GRU(2, go_backwards=True, name="back")
    backward(xp.ones((1, 3, 4), dtype="float32"))
    layer = layers.Bidirectional(layers.GRU(2), backward_layer=backward)
    with pytest.raises(ValueError, match=r"'back' was built for 4 features.*with 3"):
        layer(xp.ones((2, 5, 3), dtype="float32"), training=True)
    assert layer.forward_layer._saved is None and backward._saved is None


# ------------------------------------------------------------------------------------------- stateful
@pytest.mark.parametrize("kind", KINDS)
def test_a_stateful_layer_continues_the_sequence_across_calls(xp, rng, kind):
    stateful = make(kind, 4, return_sequences=True, stateful=True)
    plain = make(kind, 4, return_sequences=True)
    x = xp.asarray(rng.standard_normal((3, 8, 2)))
    whole = to_numpy(plain(x))
    stateful(x[:, :1])
    stateful.set_weights(plain.get_weights())
    stateful.reset_state()
    first, second = to_numpy(stateful(x[:, :5])), to_numpy(stateful(x[:, 5:]))
    numpy.testing.assert_allclose(numpy.concatenate([first, second], axis=1), whole, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(to_numpy(stateful.states[0]), whole[:, -1], rtol=1e-12, atol=1e-14)
    assert len(stateful.states) == (2 if kind == "LSTM" else 1) and stateful.carried_batch_size == 3
    stateful.reset_state()
    # Keras's reset zeroes the states and keeps their batch size
    assert [to_numpy(s).tolist() for s in stateful.states] == [[[0.0] * 4] * 3] * len(stateful.states)
    assert stateful.carried_batch_size == 3
    numpy.testing.assert_allclose(to_numpy(stateful(x[:, :5])), first, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_a_stateful_layer_backpropagates_within_the_batch(xp, rng, kind):
    """Truncated backpropagation through time: the carried states are constants of the batch."""
    layer = make(kind, 3, stateful=True)
    prime, x = (xp.asarray(rng.standard_normal((2, t, 4))) for t in (3, 5))
    dy = xp.asarray(rng.standard_normal((2, 3)))

    def run(v):
        layer.reset_state()
        layer(prime)                      # the states batch x starts from
        return layer(v, training=True)

    run(x)
    dx = layer.backward(dy)
    assert_gradient(lambda v: (run(v) * dy).sum(), x, dx, rng, what=f"{kind} input after carried states")
    for var in layer.trainable_weights:
        run(x)
        layer.backward(dy)
        grad, original = var.grad.copy(), var.value.copy()

        def objective(value, var=var, original=original):
            var.value[...] = original     # the carried states come from the weights as they were
            layer.reset_state()
            layer(prime)
            var.value[...] = value
            return (layer(x, training=True) * dy).sum()
        assert_gradient(objective, original.copy(), grad, rng, what=f"{kind} {var.name} after carried states")
        var.value[...] = original


def test_a_stateful_layer_refuses_another_batch_size_even_after_reset(xp, rng):
    layer = layers.LSTM(2, stateful=True, name="carry")
    layer(xp.asarray(rng.standard_normal((3, 4, 2)), dtype=xp.float32))
    before = [to_numpy(s) for s in layer.states]
    refused = r"'carry' is stateful and carries states for batches of 3 samples; got a batch of 2.*reset_state\(\)"
    with pytest.raises(ValueError, match=refused):
        layer(xp.ones((2, 4, 2), dtype=xp.float32))
    with pytest.raises(ValueError, match=refused):      # Keras checks it with initial states given too
        layer(xp.ones((2, 4, 2), dtype=xp.float32), initial_state=[xp.zeros((2, 2), dtype=xp.float32)] * 2)
    for a, b in zip(before, layer.states):
        numpy.testing.assert_array_equal(a, to_numpy(b))
    # as in Keras, reset_state() zeroes the states and keeps their batch size
    layer.reset_state()
    with pytest.raises(ValueError, match=refused):
        layer(xp.ones((2, 4, 2), dtype=xp.float32))
    assert layer(xp.ones((3, 4, 2), dtype=xp.float32)).shape == (3, 2)
    wrapped = layers.Bidirectional(layers.GRU(2, stateful=True))
    wrapped(xp.ones((5, 3, 2), dtype=xp.float32))
    assert wrapped.stateful and wrapped.carried_batch_size == 5
    wrapped.reset_state()
    assert wrapped.carried_batch_size == 5 and [to_numpy(s).shape for s in wrapped.states] == [(5, 2)] * 2
    assert not any(to_numpy(s).any() for s in wrapped.states)
    with pytest.raises(ValueError, match="batches of 5 samples; got a batch of 1"):
        wrapped(xp.ones((1, 3, 2), dtype=xp.float32))


def test_a_model_with_stateful_layers_checks_every_batch_size_before_running(xp, rng):
    gpu_dl.utils.set_random_seed(5)
    # (a stateful layer needs its batch size when it is built, as Keras's does)
    model = gpu_dl.Sequential([layers.Input((4, 2), batch_size=4), layers.LSTM(3, stateful=True, name="carry"),
                               layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((8, 4, 2)).astype("float32")
    y = rng.standard_normal((8, 1)).astype("float32")
    with pytest.raises(ValueError, match=r"'carry'.*every batch to have 4 samples; `x` has 10 samples in batches "
                                         r"of batch_size=4"):
        model.predict(numpy.concatenate([x, x[:2]]), batch_size=4, verbose=0)
    assert not any(to_numpy(s).any() for s in model.layers[0].states)
    in_one = model.predict(x, batch_size=4, verbose=0)
    model.layers[0].reset_state()
    in_halves = numpy.concatenate([model.predict(x[:4], batch_size=4, verbose=0),
                                   model.predict(x[4:], batch_size=4, verbose=0)])
    numpy.testing.assert_allclose(in_one, in_halves, rtol=1e-6)
    carried = to_numpy(model.layers[0].states[0])
    with pytest.raises(ValueError, match=r"batch_size=2.*equals 4.*reset_state\(\)"):
        model.evaluate(x, y, batch_size=2, verbose=0)
    with pytest.raises(ValueError, match=r"validation data.*validation_batch_size=3"):
        model.fit(x, y, batch_size=4, validation_data=(x, y), validation_batch_size=3, verbose=0)
    numpy.testing.assert_array_equal(to_numpy(model.layers[0].states[0]), carried)
    assert model.optimizer.iterations == 0
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2 and model.optimizer.iterations == 4


# -------------------------------------------------------------------------------------- initial_state
@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_starts_the_sequence_and_gets_its_gradient(xp, rng, kind):
    layer = make(kind, 3, return_sequences=True)
    x = xp.asarray(rng.standard_normal((2, 6, 4)))
    states = [xp.asarray(rng.standard_normal((2, 3))) for _ in range(2 if kind == "LSTM" else 1)]
    # a sequence continued from given states is the tail of the whole sequence
    whole = to_numpy(layer(x))
    prefix = make(kind, 3, return_state=True)
    prefix(x[:, :3])
    prefix.set_weights(layer.get_weights())
    carried = prefix(x[:, :3])[1:]
    numpy.testing.assert_allclose(to_numpy(layer(x[:, 3:], initial_state=carried)), whole[:, 3:], rtol=1e-12)
    dy = xp.asarray(rng.standard_normal((2, 6, 3)))

    def loss(*given):
        return (layer(x, initial_state=list(given), training=True) * dy).sum()
    loss(*states)
    layer.backward(dy)
    for i, state in enumerate(states):
        others = list(states)

        def of_state(value, i=i, others=others):
            others[i] = value
            return loss(*others)
        assert_gradient(of_state, state, layer.initial_state_gradients[i], rng, what=f"{kind} initial state {i}")


def test_initial_state_is_checked(xp):
    lstm = layers.LSTM(3, name="enc")
    x = xp.ones((2, 4, 5), dtype="float32")
    with pytest.raises(ValueError, match=r"'enc': initial_state needs 2 array\(s\) of shape \(2, 3\), got 1"):
        lstm(x, initial_state=[xp.zeros((2, 3), dtype="float32")])
    with pytest.raises(ValueError, match=r"'enc': initial_state\[1\] must have shape \(2, 3\), got \(2, 4\)"):
        lstm(x, initial_state=[xp.zeros((2, 3), dtype="float32"), xp.zeros((2, 4), dtype="float32")])
    with pytest.raises(TypeError, match=r"'head' \(Dense\) takes no initial_state"):
        layers.Dense(2, name="head")(x, initial_state=[x])


def test_a_stateful_layer_built_for_a_batch_size_starts_from_zero_states_of_it():
    model = gpu_dl.Sequential([layers.Input((4, 2), batch_size=3), layers.GRU(5, stateful=True, name="carry_gru"),
                               layers.RepeatVector(2), layers.LSTM(2, stateful=True, return_sequences=True)])
    gru, lstm = model.layers[0], model.layers[2]
    assert [s.shape for s in gru.states] == [(3, 5)] and [s.shape for s in lstm.states] == [(3, 2)] * 2
    assert not any(s.numpy().any() for s in gru.states + lstm.states) and gru.carried_batch_size == 3
    with pytest.raises(ValueError, match="'carry_gru'.*batches of 3 samples; got a batch of 2"):
        gru(numpy.ones((2, 4, 2), "float32"))
    conv = gpu_dl.Sequential([layers.Input((3, 6, 2), batch_size=2), layers.ConvLSTM1D(4, 3, stateful=True)])
    assert [s.shape for s in conv.layers[0].states] == [(2, 4, 4)] * 2
    # without a batch size at its build, Keras's error
    with pytest.raises(ValueError, match=r"simple_rnn.*When using `stateful=True` in a RNN, the batch size must be "
                                         r"static. Found dynamic batch size: sequence.shape=\(None, 4, 2\)"):
        gpu_dl.Sequential([layers.Input((4, 2)), layers.SimpleRNN(2, stateful=True)])
    # a layer called on arrays first is built for their batch size
    free = layers.SimpleRNN(2, stateful=True)
    free(numpy.ones((6, 4, 2), "float32"))
    assert free.carried_batch_size == 6


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_a_stateful_layer_starts_from_what_is_assigned_to_its_state_variables(xp, rng, kind):
    layer = getattr(layers, kind)(3, stateful=True, return_sequences=True, dtype="float64")
    x = xp.asarray(rng.standard_normal((2, 4, 5)))
    layer(x)
    held = layer.states
    given = [rng.standard_normal((2, 3)) for _ in held]
    for variable, value in zip(held, given):
        variable.assign(xp.asarray(value))
        numpy.testing.assert_array_equal(variable.numpy(), value)
    fresh = getattr(layers, kind)(3, return_sequences=True, dtype="float64")
    fresh.build(x.shape)
    fresh.set_weights(layer.get_weights())
    want = to_numpy(fresh(x, initial_state=[xp.asarray(v) for v in given]))
    numpy.testing.assert_allclose(to_numpy(layer(x)), want, rtol=1e-12, atol=1e-14)
    # the same Variables now hold the states the call ended with (the last step's h), and are not weights
    assert all(a is b for a, b in zip(layer.states, held)) and not layer.non_trainable_weights
    numpy.testing.assert_allclose(held[0].numpy(), want[:, -1], rtol=1e-12, atol=1e-14)
    layer.reset_states()
    assert not any(v.numpy().any() for v in held) and [v.shape for v in held] == [(2, 3)] * len(held)
    with pytest.raises(ValueError, match="has shape \\(2, 3\\); cannot assign a value of shape \\(3, 3\\)"):
        held[0].assign(xp.zeros((3, 3)))
