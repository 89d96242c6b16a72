"""Bidirectional with return_state and initial_state, and TimeDistributed: forward against plain NumPy,
backward (initial states included) against float64 finite differences, shapes, masks, configs and bad
input. Against Keras 3 itself: tests/test_keras_oracle_rnn_wrappers.py."""
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.layers.symbolic import flatten_structure
from gradcheck import assert_gradient

KINDS = ["LSTM", "GRU", "SimpleRNN"]
MERGE_MODES = ["concat", "sum", "mul", "ave", None]


def sigmoid(z):
    return 1 / (1 + numpy.exp(-z))


def step_loop(kind, x, weights, states, go_backwards=False):
    """Every step's h (N, T, U) in the order read, and the last states ([h] or [h, c]), from the formulas."""
    kernel, recurrent, bias = weights
    u = recurrent.shape[0]
    h = states[0]
    c = states[1] if kind == "LSTM" else None
    outputs = []
    for step in (range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])):
        x_t = x[:, step]
        if kind == "LSTM":
            z = x_t @ kernel + h @ recurrent + bias
            i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), numpy.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
            c = f * c + i * g
            h = o * numpy.tanh(c)
        elif kind == "GRU":
            xw, hr = x_t @ kernel + bias[0], h @ recurrent + bias[1]
            z = sigmoid(xw[:, :u] + hr[:, :u])
            r = sigmoid(xw[:, u:2 * u] + hr[:, u:2 * u])
            h = z * h + (1 - z) * numpy.tanh(xw[:, 2 * u:] + r * hr[:, 2 * u:])
        else:
            h = numpy.tanh(x_t @ kernel + h @ recurrent + bias)
        outputs.append(h)
    return numpy.stack(outputs, axis=1), ([h, c] if kind == "LSTM" else [h])


def bidirectional(kind, units, merge_mode="concat", name=None, **kwargs):
    inner = getattr(layers, kind)(units, bias_initializer="random_normal", dtype="float64", **kwargs)
    return layers.Bidirectional(inner, merge_mode=merge_mode, dtype="float64", name=name)


def n_states(kind):
    return 2 if kind == "LSTM" else 1


def check_layer_gradients(layer, x, rng, output_grads, *, initial_state=None, call=None):
    """Finite differences of sum(<output_i, w_i>) (w_i None: output i unused) for the input, every weight and
    every initial state."""
    call = call or (lambda v, given: layer(v, training=True, **({} if given is None else {"initial_state": given})))

    def objective(v, given=initial_state):
        out = call(v, given)
        outs = flatten_structure(out) if isinstance(out, list) else [out]     # an RNN's states nested per cell
        return sum((o * w).sum() for o, w in zip(outs, output_grads) if w is not None)

    dy = output_grads if len(output_grads) > 1 else output_grads[0]
    call(x, initial_state)
    dx = layer.backward(dy)
    assert_gradient(objective, x, dx, rng, what=f"{layer.name} input")
    if initial_state is not None:
        gradients = layer.initial_state_gradients
        assert len(gradients) == len(initial_state)
        for i, state in enumerate(initial_state):
            def of_state(value, i=i):
                given = list(initial_state)
                given[i] = value
                return objective(x, given)
            assert_gradient(of_state, state, gradients[i], rng, what=f"{layer.name} initial state {i}")
    for var in layer.trainable_weights:
        call(x, initial_state)
        layer.backward(dy)
        grad, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return objective(x)
        assert_gradient(of_weight, original.copy(), grad, rng, what=f"{layer.name} {var.name}")
        var.value[...] = original


# =========================================================================================== Bidirectional
def expected_bidirectional(kind, layer, x, initial, merge_mode, return_sequences):
    """The wrapped layers' outputs from the formulas, merged: [output(s), *forward_states, *backward_states]."""
    weights = layer.get_weights()
    count = n_states(kind)
    forward, forward_states = step_loop(kind, x, weights[:3], initial[:count])
    backward, backward_states = step_loop(kind, x, weights[3:], initial[count:], go_backwards=True)
    forward, backward = (forward, backward[:, ::-1]) if return_sequences else (forward[:, -1], backward[:, -1])
    if merge_mode is None:
        merged = [forward, backward]
    else:
        merged = [{"concat": numpy.concatenate([forward, backward], -1), "sum": forward + backward,
                   "mul": forward * backward, "ave": (forward + backward) / 2}[merge_mode]]
    return merged + forward_states + backward_states


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_returns_both_directions_states_from_given_initial_states(xp, rng, kind, merge_mode,
                                                                               return_sequences):
    layer = bidirectional(kind, 3, merge_mode, return_sequences=return_sequences, return_state=True)
    x = rng.standard_normal((2, 5, 4))
    initial = [rng.standard_normal((2, 3)) for _ in range(2 * n_states(kind))]
    got = layer(xp.asarray(x), initial_state=[xp.asarray(s) for s in initial])
    want = expected_bidirectional(kind, layer, x, initial, merge_mode, return_sequences)
    assert isinstance(got, list) and len(got) == len(want) == (2 if merge_mode is None else 1) + len(initial)
    for i, (g, w) in enumerate(zip(got, want)):
        numpy.testing.assert_allclose(to_numpy(g), w, rtol=1e-10, atol=1e-12, err_msg=f"output {i}")
    shapes = layer.compute_output_shape((None, 5, 4))
    assert [tuple(s[1:]) for s in shapes] == [tuple(g.shape[1:]) for g in got]
    # without initial_state the states start from zeros
    from_zeros = layer(xp.asarray(x))
    want = expected_bidirectional(kind, layer, x, [numpy.zeros((2, 3))] * len(initial), merge_mode, return_sequences)
    for g, w in zip(from_zeros, want):
        numpy.testing.assert_allclose(to_numpy(g), w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
def test_bidirectional_state_gradients_match_finite_differences(xp, rng, kind, merge_mode):
    return_sequences = merge_mode in ("concat", "mul", None)
    layer = bidirectional(kind, 3, merge_mode, return_sequences=return_sequences, return_state=True)
    x = xp.asarray(rng.standard_normal((2, 4, 3)))
    initial = [xp.asarray(rng.standard_normal((2, 3))) for _ in range(2 * n_states(kind))]
    outputs = layer(x, initial_state=initial)
    grads = [xp.asarray(rng.standard_normal(o.shape)) for o in outputs]
    grads[-1] = None            # a state the model does not use
    check_layer_gradients(layer, x, rng, grads, initial_state=initial)


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_gradients_through_states_alone(xp, rng, kind):
    """Only the returned states carry a gradient (an encoder whose states start a decoder)."""
    layer = bidirectional(kind, 2, return_state=True)
    x = xp.asarray(rng.standard_normal((3, 5, 2)))
    outputs = layer(x)
    grads = [None] + [xp.asarray(rng.standard_normal(o.shape)) for o in outputs[1:]]
    check_layer_gradients(layer, x, rng, grads)
    # from zeros: the initial states still get their gradients
    assert [tuple(g.shape) for g in layer.initial_state_gradients] == [(3, 2)] * (2 * n_states(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_states_in_float32_agree_with_float64(xp, rng, kind):
    """float32 takes the fused cell kernels on the GPU (for a small LSTM the persistent whole-sequence
    kernels, into which the initial states and the states' gradients go): the same numbers as float64's
    array arithmetic, to float32 rounding."""
    x = rng.standard_normal((3, 7, 4))
    initial = [rng.standard_normal((3, 5)) for _ in range(2 * n_states(kind))]
    runs = {}
    for dtype in ("float32", "float64"):
        layer = layers.Bidirectional(getattr(layers, kind)(5, return_sequences=True, return_state=True, dtype=dtype),
                                     dtype=dtype)
        layer.build(x.shape)
        if dtype == "float64":
            layer.set_weights(runs["float32"][0])
        cast = [xp.asarray(a, dtype=dtype) for a in [x] + initial]
        outputs = layer(cast[0], initial_state=cast[1:], training=True)
        grads = [xp.asarray(numpy.linspace(-1, 1, o.size).reshape(o.shape), dtype=dtype) for o in outputs]
        dx = layer.backward(grads)
        runs[dtype] = (layer.get_weights(), [to_numpy(a) for a in outputs + [dx] + layer.initial_state_gradients],
                       [to_numpy(v.grad) for v in layer.trainable_weights])
    for single, double in zip(runs["float32"][1] + runs["float32"][2], runs["float64"][1] + runs["float64"][2]):
        assert single.dtype == numpy.float32
        numpy.testing.assert_allclose(single, double, rtol=1e-4, atol=1e-5)


def test_bidirectional_initial_state_without_return_state_and_with_a_mask(xp, rng):
    layer = bidirectional("GRU", 3, "sum", return_sequences=True)
    x = rng.standard_normal((3, 6, 2))
    mask = numpy.ones((3, 6), bool)
    mask[0, 4:] = False
    mask[2, :2] = False
    initial = [xp.asarray(rng.standard_normal((3, 3))) for _ in range(2)]
    y = layer(xp.asarray(x), mask=xp.asarray(mask), initial_state=initial)
    assert not isinstance(y, list) and not to_numpy(y)[~mask].any()     # zeros at masked steps, as Keras merges
    alone = layers.GRU(3, return_sequences=True, dtype="float64")
    alone.build(x.shape)
    alone.set_weights(layer.get_weights()[:3])
    numpy.testing.assert_allclose(to_numpy(layer.forward_layer(xp.asarray(x[1:2]), initial_state=[initial[0][1:2]])),
                                  to_numpy(alone(xp.asarray(x[1:2]), initial_state=[initial[0][1:2]])), rtol=1e-12)
    dy = xp.asarray(rng.standard_normal(y.shape))
    check_layer_gradients(layer, xp.asarray(x), rng, [dy], initial_state=initial,
                          call=lambda v, given: layer(v, training=True, mask=xp.asarray(mask), initial_state=given))


def test_bidirectional_with_a_different_backward_layer_splits_the_initial_states(xp, rng):
    """LSTM forwards and GRU backwards: the first two arrays are the LSTM's h and c, the third the GRU's h."""
    layer = layers.Bidirectional(layers.LSTM(3, return_state=True, dtype="float64"), dtype="float64",
                                 backward_layer=layers.GRU(2, go_backwards=True, return_state=True, dtype="float64"))
    x = xp.asarray(rng.standard_normal((2, 4, 3)))
    initial = [xp.asarray(rng.standard_normal((2, u))) for u in (3, 3, 2)]
    output, h_f, c_f, h_b = layer(x, initial_state=initial)
    assert output.shape == (2, 5) and h_f.shape == c_f.shape == (2, 3) and h_b.shape == (2, 2)
    numpy.testing.assert_allclose(to_numpy(output), numpy.concatenate([to_numpy(h_f), to_numpy(h_b)], -1))
    assert layer.compute_output_shape((None, 4, 3)) == [(None, 5), (None, 3), (None, 3), (None, 2)]
    check_layer_gradients(layer, x, rng, [xp.asarray(rng.standard_normal(o.shape)) for o in (output, h_f, c_f, h_b)],
                          initial_state=initial)
    with pytest.raises(ValueError, match=r"initial_state needs a list of 3 arrays: the forward layer's h, c, "
                                         r"then the backward layer's h, got 4"):
        layer(x, initial_state=initial + [initial[2]])


def test_bidirectional_initial_state_is_checked(xp):
    layer = layers.Bidirectional(layers.LSTM(3, name="lstm", stateful=True), name="enc")
    x = xp.ones((2, 4, 5), dtype="float32")
    states = [xp.zeros((2, 3), dtype="float32") for _ in range(4)]
    with pytest.raises(ValueError, match=r"Bidirectional layer 'enc': initial_state needs a list of 4 arrays: the "
                                         r"forward layer's h, c, then the backward layer's h, c, got 2 array\(s\)"):
        layer(x, initial_state=states[:2])
    with pytest.raises(ValueError, match=r"'enc'.*needs a list of 4 arrays.*got a single ndarray"):
        layer(x, initial_state=numpy.zeros((2, 3), "float32"))
    states[3] = xp.zeros((2, 4), dtype="float32")
    with pytest.raises(ValueError, match=r"'backward_lstm': initial_state\[1\] must have shape \(2, 3\), got \(2, 4\)"):
        layer(x, initial_state=states)
    # neither layer ran: both keep the zero states of their build (Keras's, for the batch of 2)
    assert [tuple(st.shape) for st in layer.states] == [(2, 3)] * 4
    assert not any(to_numpy(st).any() for st in layer.states)
    gru = layers.Bidirectional(layers.GRU(3), name="bi_gru")
    with pytest.raises(ValueError, match=r"'bi_gru': initial_state needs a list of 2 arrays: the forward layer's h, "
                                         r"then the backward layer's h, got 4"):
        gru(x, initial_state=[xp.zeros((2, 3), dtype="float32")] * 4)


def test_bidirectional_backward_takes_one_gradient_per_returned_array(xp, rng):
    layer = bidirectional("SimpleRNN", 2, return_state=True, name="bi_rnn")
    x = xp.asarray(rng.standard_normal((2, 3, 2)))
    outputs = layer(x, training=True)
    assert len(outputs) == 3
    with pytest.raises(ValueError, match=r"'bi_rnn': backward takes 3 gradient\(s\).*got 4"):
        layer.backward([xp.zeros(o.shape) for o in outputs] + [None])
    dx = layer.backward([xp.zeros(outputs[0].shape)])          # the states' gradients left out: zeros
    assert dx.shape == x.shape and not to_numpy(dx).any()


def test_bidirectional_checks_return_state_and_stateful_against_its_backward_layer():
    with pytest.raises(ValueError, match=r"backward_layer 'back' must have the same return_state as layer 'fwd' "
                                         r"\(True\), got False"):
        layers.Bidirectional(layers.LSTM(3, return_state=True, name="fwd"),
                             backward_layer=layers.LSTM(3, go_backwards=True, name="back"))
    with pytest.raises(ValueError, match=r"same stateful as layer"):
        layers.Bidirectional(layers.GRU(3), backward_layer=layers.GRU(3, go_backwards=True, stateful=True))
    with pytest.raises(ValueError,
                       match=r"backward_layer must be a recurrent layer \(LSTM, GRU, SimpleRNN, RNN, ConvLSTM1D"):
        layers.Bidirectional(layers.GRU(3), backward_layer=layers.Dense(3))


def test_bidirectional_return_state_config_round_trips(xp, rng):
    layer = bidirectional("LSTM", 3, None, return_sequences=True, return_state=True)
    x = xp.asarray(rng.standard_normal((2, 4, 3)))
    outputs = layer(x)
    copy = layers.Bidirectional.from_config(layer.get_config())
    assert copy.return_state and copy.backward_layer.return_state and copy.merge_mode is None
    copy.build(x.shape)
    copy.set_weights(layer.get_weights())
    for a, b in zip(copy(x), outputs):
        numpy.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_a_stateful_bidirectional_layer_carries_both_directions_states(xp, rng):
    layer = bidirectional("LSTM", 2, stateful=True)
    assert layer.states is None
    layer(xp.asarray(rng.standard_normal((3, 4, 2))))
    assert len(layer.states) == 4 and all(s.shape == (3, 2) for s in layer.states)
    assert any(to_numpy(s).any() for s in layer.states)
    layer.reset_state()
    # Keras's reset zeroes the states, keeping their batch size
    assert all(s.shape == (3, 2) and not to_numpy(s).any() for s in layer.states)


# ========================================================================================= TimeDistributed
def time_distributed(inner, **kwargs):
    return layers.TimeDistributed(inner, **kwargs)


def test_time_distributed_dense_is_one_product_per_step(xp, rng):
    layer = time_distributed(layers.Dense(3, activation="tanh", bias_initializer="random_normal", dtype="float64"))
    assert layer.dtype == "float64" and layer.name.startswith("time_distributed")
    x = rng.standard_normal((4, 7, 5))
    y = to_numpy(layer(xp.asarray(x)))
    kernel, bias = layer.get_weights()
    numpy.testing.assert_allclose(y, numpy.tanh(x @ kernel + bias), rtol=1e-12)
    assert layer.weights == layer.layer.weights and [w.shape for w in layer.get_weights()] == [(5, 3), (3,)]
    assert layer.compute_output_shape((None, 7, 5)) == (None, 7, 3)
    assert layer(xp.asarray(rng.standard_normal((2, 1, 5)))).shape == (2, 1, 3)     # any number of steps
    assert layer(xp.zeros((0, 3, 5))).shape == (0, 3, 3)


def max_pool_2x2(images):
    n, h, w, c = images.shape
    return images[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


@pytest.mark.parametrize("n,t", [(1, 1), (3, 4), (2, 17)])
def test_time_distributed_convolution_pooling_and_flatten_on_video(xp, rng, n, t):
    conv = time_distributed(layers.Conv2D(4, 3, padding="same", bias_initializer="random_normal", dtype="float64"))
    pool = time_distributed(layers.MaxPooling2D(dtype="float64"))
    flat = time_distributed(layers.Flatten(dtype="float64"))
    x = rng.standard_normal((n, t, 6, 5, 2))
    y = conv(xp.asarray(x))
    assert y.shape == (n, t, 6, 5, 4) and conv.compute_output_shape((None, None, 6, 5, 2)) == (None, None, 6, 5, 4)
    # every step through the same convolution: the wrapped layer on each step's images alone
    for step in range(t):
        numpy.testing.assert_allclose(to_numpy(y[:, step]), to_numpy(conv.layer(xp.asarray(x[:, step]))), rtol=1e-12)
    pooled = pool(y)
    numpy.testing.assert_array_equal(to_numpy(pooled), max_pool_2x2(to_numpy(y).reshape(n * t, 6, 5, 4)).reshape(
        n, t, 3, 2, 4))
    numpy.testing.assert_array_equal(to_numpy(flat(pooled)), to_numpy(pooled).reshape(n, t, 24))
    assert flat.compute_output_shape(pool.compute_output_shape((None, t, 6, 5, 4))) == (None, t, 24)


def test_time_distributed_dropout_and_embedding(xp, rng):
    dropout = time_distributed(layers.Dropout(0.5, seed=3, dtype="float64"))
    x = xp.asarray(rng.standard_normal((4, 6, 8)) + 3)
    numpy.testing.assert_array_equal(to_numpy(dropout(x)), to_numpy(x))             # inference: as it is
    y, x_host = to_numpy(dropout(x, training=True)), to_numpy(x)
    kept = y != 0
    numpy.testing.assert_allclose(y[kept], 2 * x_host[kept], rtol=1e-12)
    assert 0.3 < kept.mean() < 0.7
    numpy.testing.assert_array_equal(to_numpy(dropout.backward(xp.ones(x.shape))), 2.0 * kept)
    ids = rng.integers(0, 5, (3, 4, 6))
    embedding = time_distributed(layers.Embedding(5, 2))
    out = to_numpy(embedding(xp.asarray(ids)))
    table = embedding.get_weights()[0]
    assert out.shape == (3, 4, 6, 2)
    numpy.testing.assert_array_equal(out, table[ids])


WRAPPED = {
    "Dense": lambda: layers.Dense(3, activation="sigmoid", bias_initializer="random_normal", dtype="float64"),
    "Conv2D": lambda: layers.Conv2D(2, (2, 3), strides=(1, 2), bias_initializer="random_normal", dtype="float64"),
    "Conv1D": lambda: layers.Conv1D(2, 2, dtype="float64"),
    "Flatten": lambda: layers.Flatten(dtype="float64"),
    "MaxPooling2D": lambda: layers.MaxPooling2D(dtype="float64"),
    "AveragePooling2D": lambda: layers.AveragePooling2D((2, 1), dtype="float64"),
    "GlobalAveragePooling2D": lambda: layers.GlobalAveragePooling2D(dtype="float64"),
    "LSTM": lambda: layers.LSTM(2, dtype="float64", bias_initializer="random_normal"),
    "BatchNormalization": lambda: layers.BatchNormalization(gamma_initializer="random_normal",
                                                            beta_initializer="random_normal", dtype="float64"),
    "BatchNormalization-axis1": lambda: layers.BatchNormalization(axis=1, gamma_initializer="random_normal",
                                                                  dtype="float64"),
}
SHAPES = {"Dense": (3, 5, 4), "Conv1D": (2, 3, 5, 2), "LSTM": (2, 3, 4, 2), "BatchNormalization": (3, 5, 4)}


@pytest.mark.parametrize("name", sorted(WRAPPED))
def test_time_distributed_gradients_match_finite_differences(xp, rng, name):
    layer = time_distributed(WRAPPED[name]())
    # pooling windows see distinct values, so that the maximum does not move under the finite differences
    shape = SHAPES.get(name.split("-")[0], (2, 3, 4, 5, 2))
    x = xp.asarray(rng.permutation(numpy.prod(shape)).reshape(shape) / 10.0 if "Max" in name
                   else rng.standard_normal(shape))
    y = layer(x, training=True)
    assert tuple(y.shape[1:]) == tuple(layer.compute_output_shape((None,) + shape[1:])[1:])
    check_layer_gradients(layer, x, rng, [xp.asarray(rng.standard_normal(y.shape))])


def batch_norm_per_step(x, gamma, beta, epsilon, kept=None):
    """Plain NumPy: each step ``x[:, t]`` of (batch, steps, ..., features) normalized over its batch (and its
    other axes) alone, only the kept samples counted; the per-step means and variances."""
    y, means, variances = numpy.empty_like(x), [], []
    for t in range(x.shape[1]):
        step = x[:, t].reshape(-1, x.shape[-1])
        counted = step if kept is None else x[kept[:, t], t].reshape(-1, x.shape[-1])
        extra = 0 if kept is None else 1e-7       # Keras's masked moments add its epsilon to the count
        mean = counted.sum(axis=0) / (len(counted) + extra)
        variance = ((counted - mean) ** 2).sum(axis=0) / (len(counted) + extra)
        y[:, t] = ((step - mean) / numpy.sqrt(variance + epsilon) * gamma + beta).reshape(y[:, t].shape)
        means.append(mean)
        variances.append(variance)
    return y, means, variances


@pytest.mark.parametrize("shape", [(3, 5, 4), (2, 1, 3), (1, 4, 3, 2, 5), (4, 17, 1)])
def test_time_distributed_batch_norm_takes_statistics_per_step(xp, rng, shape):
    """As Keras's one call per step: each step normalized with its own batch statistics, and the moving
    statistics moved once per step, in step order."""
    layer = time_distributed(layers.BatchNormalization(momentum=0.7, gamma_initializer="random_normal",
                                                       beta_initializer="random_normal", dtype="float64"))
    x = rng.standard_normal(shape) * 3 + rng.standard_normal(shape[1:])      # steps with different statistics
    layer.build(shape)
    gamma, beta, moving_mean, moving_variance = layer.get_weights()
    y = to_numpy(layer(xp.asarray(x), training=True))
    want, means, variances = batch_norm_per_step(x, gamma, beta, 1e-3)
    numpy.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    for mean, variance in zip(means, variances):
        moving_mean = moving_mean * 0.7 + mean * 0.3
        moving_variance = moving_variance * 0.7 + variance * 0.3
    numpy.testing.assert_allclose(layer.get_weights()[2], moving_mean, rtol=1e-12)
    numpy.testing.assert_allclose(layer.get_weights()[3], moving_variance, rtol=1e-12)
    # inference: the moving statistics for every step, the moving statistics unchanged
    before = layer.get_weights()
    y = to_numpy(layer(xp.asarray(x), training=False))
    numpy.testing.assert_allclose(y, (x - moving_mean) / numpy.sqrt(moving_variance + 1e-3) * gamma + beta,
                                  rtol=1e-10, atol=1e-12)
    for a, b in zip(layer.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)
    # the layer outside TimeDistributed takes the whole batch's statistics again
    inner = layer.layer
    flat = x.reshape((-1,) + shape[2:])
    numpy.testing.assert_allclose(to_numpy(inner(xp.asarray(flat), training=True)),
                                  (flat - flat.reshape(-1, shape[-1]).mean(0))
                                  / numpy.sqrt(flat.reshape(-1, shape[-1]).var(0) + 1e-3) * gamma + beta,
                                  rtol=1e-10, atol=1e-12)


def test_time_distributed_batch_norm_leaves_padded_steps_out_of_each_steps_statistics(xp, rng):
    model = gpu_dl.Sequential([layers.Input((4, 3)), layers.Masking(0.0),
                               layers.TimeDistributed(layers.BatchNormalization(dtype="float64"))])
    x = rng.standard_normal((5, 4, 3))
    kept = rng.random((5, 4)) < 0.7
    kept[0] = True                      # every step keeps a sample
    x[~kept] = 0.0
    layer = model.layers[-1]
    y = to_numpy(layer(xp.asarray(x), training=True, mask=xp.asarray(kept)))
    want, _, _ = batch_norm_per_step(x, 1.0, 0.0, 1e-3, kept)
    numpy.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-12)
    check_layer_gradients(layer, xp.asarray(x), rng, [xp.asarray(rng.standard_normal(x.shape))],
                          call=lambda v, given: layer(v, training=True, mask=xp.asarray(kept)))
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, rng.standard_normal(x.shape))       # the mask reaches it inside a model too
    with pytest.raises(ValueError, match="one axis less than the input.*TimeDistributed"):
        layers.TimeDistributed(layers.BatchNormalization())(
            xp.asarray(rng.standard_normal((2, 3, 4, 2)), dtype="float32"), training=True,
            mask=xp.asarray(numpy.ones((2, 3), bool)))


def test_time_distributed_dropout_gradient(xp, rng):
    layer = time_distributed(layers.Dropout(0.4, seed=5, dtype="float64"))
    x = xp.asarray(rng.standard_normal((2, 3, 4)))
    w = xp.asarray(rng.standard_normal((2, 3, 4)))

    def objective(v):
        layer.layer.seed_generator.state.assign([5, 0])      # the same mask on every call
        return (layer(v, training=True) * w).sum()
    objective(x)
    assert_gradient(objective, x, layer.backward(w), rng, what="TimeDistributed(Dropout) input")


def test_time_distributed_passes_the_mask_through(xp, rng):
    """As Keras: the mask of padded steps reaches the recurrent layer after it, and the loss."""
    gpu_dl.utils.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((5,)), layers.Embedding(7, 3, mask_zero=True),
                               layers.TimeDistributed(layers.Dense(4, activation="relu")),
                               layers.LSTM(2, return_sequences=True),
                               layers.TimeDistributed(layers.Dense(2, activation="softmax"))])
    x = numpy.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no "does not support masking" on the way
        y = to_numpy(model.predict(x, verbose=0))
    numpy.testing.assert_array_equal(to_numpy(model.output_mask), x != 0)
    # masked steps repeat the LSTM's last output, so the head's output repeats too
    numpy.testing.assert_allclose(y[0, 2:], numpy.broadcast_to(y[0, 1], (3, 2)), rtol=1e-6)
    assert model.layers[1].compute_mask(None, xp.asarray(x != 0)) is not None


def test_time_distributed_softmax_head_trains_through_the_fused_loss(xp, rng):
    def make():
        gpu_dl.utils.set_random_seed(4)
        return gpu_dl.Sequential([layers.Input((6, 3)), layers.GRU(5, return_sequences=True),
                                  layers.TimeDistributed(layers.Dense(4, activation="softmax"))])
    model, plain = make(), make()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain._last_is_softmax = lambda: False      # the same model through the unfused softmax
    x = rng.standard_normal((8, 6, 3)).astype("float32")
    y = rng.integers(0, 4, (8, 6))
    for _ in range(3):
        assert model.train_on_batch(x, y) == pytest.approx(plain.train_on_batch(x, y), rel=1e-5)
    assert model._fused_softmax and not plain._fused_softmax
    for a, b in zip(model.get_weights(), plain.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_time_distributed_summary_and_parameters(capsys):
    model = gpu_dl.Sequential([
        layers.Input((4, 8, 8, 3)),
        layers.TimeDistributed(layers.Conv2D(5, 3)),
        layers.TimeDistributed(layers.MaxPooling2D()),
        layers.TimeDistributed(layers.Flatten()),
        layers.TimeDistributed(layers.Dense(6)),
        layers.LSTM(2),
    ])
    model.summary()
    text = capsys.readouterr().out
    conv, dense, lstm = 3 * 3 * 3 * 5 + 5, 45 * 6 + 6, 4 * (6 * 2 + 2 * 2 + 2)
    for shape, count in [("(None, 4, 6, 6, 5)", conv), ("(None, 4, 3, 3, 5)", 0), ("(None, 4, 45)", 0),
                         ("(None, 4, 6)", dense), ("(None, 2)", lstm)]:
        line = next(line for line in text.splitlines() if shape in line)
        assert line.rstrip(" │|").endswith(f"{count:,}"), line
    assert model.count_params() == conv + dense + lstm
    assert len(model.trainable_weights) == 2 + 2 + 3


def test_time_distributed_freezes_the_layer_it_wraps(xp, rng):
    layer = time_distributed(layers.Dense(2))
    layer.build((None, 3, 4))
    assert len(layer.trainable_weights) == 2 and not layer.non_trainable_weights
    layer.trainable = False
    assert not layer.layer.trainable and layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    model = gpu_dl.Sequential([layers.Input((3, 4)), layer, layers.Dense(1)])
    assert len(model.trainable_weights) == 2          # the last Dense's only
    before = layer.get_weights()
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(rng.standard_normal((4, 3, 4)).astype("float32"), numpy.ones((4, 3, 1), "float32"))
    for a, b in zip(before, layer.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_time_distributed_configs_and_files_round_trip(rng, tmp_path):
    model = gpu_dl.Sequential([
        layers.Input((3, 6, 6, 1)),
        layers.TimeDistributed(layers.Conv2D(2, 3, activation="relu"), name="frames"),
        layers.TimeDistributed(layers.AveragePooling2D(2)),
        layers.TimeDistributed(layers.Flatten()),
        layers.Bidirectional(layers.GRU(3, return_sequences=True)),
        layers.TimeDistributed(layers.Dense(2, kernel_regularizer="l2")),
    ])
    x = rng.standard_normal((2, 3, 6, 6, 1)).astype("float32")
    want = to_numpy(model.predict(x, verbose=0))
    copy = gpu_dl.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), want)
    assert copy.layers[0].name == "frames" and copy.layers[0].layer.activation.name == "relu"
    assert copy.layers[-1].layer.kernel_regularizer is not None
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, rng.standard_normal((2, 3, 2)).astype("float32"), epochs=1, verbose=0)
    model.save(tmp_path / "video.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "video.keras")
    numpy.testing.assert_array_equal(to_numpy(loaded.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))
    model.save_weights(tmp_path / "video.weights.h5")
    copy.load_weights(tmp_path / "video.weights.h5")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))


def test_time_distributed_bad_input_names_the_layer(xp):
    layer = time_distributed(layers.Dense(3, name="head"), name="per_step")
    with pytest.raises(ValueError, match=r"TimeDistributed layer 'per_step' applies layer 'head' \(Dense\) to every "
                                         r"step along axis 1.*rank >= 3.*got shape \(2, 5\) \(rank 2\)"):
        layer(xp.ones((2, 5), dtype="float32"))
    assert not layer.built and not layer.layer.built
    layer(xp.ones((2, 4, 5), dtype="float32"))
    with pytest.raises(ValueError, match=r"'head'.*incompatible.*\(None, 5\)"):
        layer(xp.ones((2, 4, 6), dtype="float32"))
    with pytest.raises(ValueError, match=r"'per_step'.*rank >= 3"):
        layer.compute_output_shape((None, 5))
    for bad in (layers.Input((3,)), "dense", None):
        with pytest.raises(TypeError, match="TimeDistributed wraps a gpu_dl layer"):
            layers.TimeDistributed(bad)
    several = time_distributed(layers.LSTM(2, return_state=True), name="states")
    with pytest.raises(ValueError, match=r"'states'.*several arrays.*one output"):
        several.compute_output_shape((None, 3, 4, 2))
    with pytest.raises(ValueError, match=r"'states'.*returned 3 arrays.*one output"):
        several(xp.ones((1, 3, 4, 2), dtype="float32"))
    with pytest.raises(ValueError, match=r"'layer' must name one of gpu_dl's layer classes"):
        layers.TimeDistributed.from_config({"layer": {"class_name": "os.system", "config": {}}})
    with pytest.raises(ValueError, match=r"'flat_input'.*rank >= 3"):
        gpu_dl.Sequential([layers.Input((4,)), layers.TimeDistributed(layers.Dense(2), name="flat_input")])


def test_wrappers_share_keras_s_wrapper_base():
    """TimeDistributed and SpectralNormalization are Keras's ``Wrapper``s: each refuses what is not one layer,
    naming itself, and passes ``trainable`` on to the layer it wraps. TimeDistributed also takes a model (as
    Keras does; tests/test_nested_models_more.py), SpectralNormalization does not."""
    for wrapper in (layers.TimeDistributed, layers.SpectralNormalization):
        assert issubclass(wrapper, layers.Wrapper)
        with pytest.raises(TypeError, match=f"{wrapper.__name__} wraps a gpu_dl layer"):
            wrapper("dense")
        model = gpu_dl.Sequential([layers.Input((3,)), layers.Dense(2)])
        if wrapper is layers.SpectralNormalization:
            with pytest.raises(TypeError, match=f"{wrapper.__name__} wraps one layer; '{model.name}' is a model"):
                wrapper(model)
        else:
            assert wrapper(model).layer is model
        inner = layers.Dense(2)
        wrapped = wrapper(inner)
        wrapped.trainable = False
        assert inner.trainable is False and wrapped.dtype == inner.dtype
