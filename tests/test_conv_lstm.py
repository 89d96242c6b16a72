"""ConvLSTM1D, ConvLSTM2D and ConvLSTM3D: forward against plain convolution sums written out step by step, backward
against float64 finite differences (input, initial states, every weight), masks, go_backwards, dropout,
stateful calls, shapes, parameter counts and bad input."""
import re

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


def sigmoid(z):
    return 1 / (1 + numpy.exp(-z))


def plain_same_pads(size, window, stride, dilation):
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (window - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def plain_conv(x, kernel, strides=None, padding="valid", dilation=None):
    """x (N, H, W, C) convolved with kernel (KH, KW, C, O), one tap at a time (volumes: x (N, D, H, W, C),
    kernel (KD, KH, KW, C, O))."""
    rank = kernel.ndim - 2
    strides, dilation = strides or (1,) * rank, dilation or (1,) * rank
    pads = [(0, 0)] * rank if padding == "valid" else [
        plain_same_pads(x.shape[1 + a], kernel.shape[a], strides[a], dilation[a]) for a in range(rank)]
    padded = numpy.pad(x, [(0, 0)] + pads + [(0, 0)])
    out = [(padded.shape[1 + a] - dilation[a] * (kernel.shape[a] - 1) - 1) // strides[a] + 1 for a in range(rank)]
    y = numpy.zeros((x.shape[0],) + tuple(out) + (kernel.shape[-1],))
    for tap in numpy.ndindex(kernel.shape[:rank]):
        window = tuple(slice(k * d, k * d + s * (o - 1) + 1, s) for k, d, s, o in zip(tap, dilation, strides, out))
        y += padded[(slice(None),) + window] @ kernel[tap]
    return y


def expected(x, weights, strides=None, padding="valid", dilation=None, go_backwards=False, h0=None, c0=None,
             mask=None, input_masks=None, recurrent_masks=None):
    """Every step's h (N, T, OH, OW, F) and the last c from Keras's ConvLSTM cell formulas (2-D or 3-D layout).

    ``input_masks`` / ``recurrent_masks``: four per-gate masks (N, H, W, 4, C) / (N, OH, OW, 4, F)."""
    kernel, recurrent = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else numpy.zeros(kernel.shape[-1])
    f = recurrent.shape[-2]
    t = x.shape[1]
    h = c = None
    outputs = []
    for step in (range(t - 1, -1, -1) if go_backwards else range(t)):
        x_t = x[:, step]
        gates = []
        for k in range(4):
            x_k = x_t if input_masks is None else x_t * input_masks[..., k, :]
            xz = plain_conv(x_k, kernel[..., k * f:(k + 1) * f], strides, padding, dilation) + bias[k * f:(k + 1) * f]
            if h is None:
                h = numpy.zeros(xz.shape) if h0 is None else h0
                c = numpy.zeros(xz.shape) if c0 is None else c0
            h_k = h if recurrent_masks is None else h * recurrent_masks[..., k, :]
            gates.append(xz + plain_conv(h_k, recurrent[..., k * f:(k + 1) * f], padding="same"))
        i, fg, g, o = sigmoid(gates[0]), sigmoid(gates[1]), numpy.tanh(gates[2]), sigmoid(gates[3])
        c_new = fg * c + i * g
        h_new = o * numpy.tanh(c_new)
        if mask is not None:
            keep = mask[:, step].reshape((-1,) + (1,) * (c.ndim - 1))
            c_new, h_new = numpy.where(keep, c_new, c), numpy.where(keep, h_new, h)
        h, c = h_new, c_new
        outputs.append(h)
    return numpy.stack(outputs, axis=1), c


def make(cls=layers.ConvLSTM2D, filters=3, kernel_size=3, **kwargs):
    return cls(filters, kernel_size, bias_initializer="random_normal", dtype="float64", **kwargs)


@pytest.mark.parametrize("n,t,f,k,padding,strides", [
    (1, 1, 1, 1, "valid", 1),
    (3, 5, 3, 3, "same", 1),
    (3, 5, 1, 3, "valid", 2),
    (1, 5, 3, 1, "same", 2),
    (3, 1, 3, 3, "valid", 1),
    (1, 5, 1, 3, "same", (2, 1)),
])
@pytest.mark.parametrize("return_sequences,go_backwards", [(False, False), (True, True)])
def test_forward_matches_plain_convolution_sums(xp, rng, n, t, f, k, padding, strides, return_sequences,
                                                go_backwards):
    layer = make(filters=f, kernel_size=k, padding=padding, strides=strides, return_sequences=return_sequences,
                 go_backwards=go_backwards)
    x = rng.standard_normal((n, t, 3, 5, 2))
    y = to_numpy(layer(xp.asarray(x)))
    s = (strides, strides) if isinstance(strides, int) else strides
    want, _ = expected(x, layer.get_weights(), s, padding, go_backwards=go_backwards)
    numpy.testing.assert_allclose(y, want if return_sequences else want[:, -1], rtol=1e-10, atol=1e-12)
    assert y.shape[1:] == tuple(layer.compute_output_shape((None, t, 3, 5, 2)))[1:]


def test_forward_with_dilation_and_rectangular_kernel(xp, rng):
    layer = make(kernel_size=(2, 3), dilation_rate=(1, 2), padding="same", return_sequences=True)
    x = rng.standard_normal((2, 3, 3, 5, 2))
    y = to_numpy(layer(xp.asarray(x)))
    want, _ = expected(x, layer.get_weights(), padding="same", dilation=(1, 2))
    numpy.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("padding,strides", [("valid", 1), ("same", 2)])
def test_conv_lstm1d_is_the_2d_layer_on_rows_of_height_one(xp, rng, padding, strides):
    layer = make(layers.ConvLSTM1D, kernel_size=3, padding=padding, strides=strides, return_state=True)
    x = rng.standard_normal((3, 4, 5, 2))
    y, h, c = (to_numpy(a) for a in layer(xp.asarray(x)))
    weights = [w[None] if w.ndim == 3 else w for w in layer.get_weights()]   # (k, a, b) -> (1, k, a, b)
    want, c_last = expected(x[:, :, None], weights, (1, strides), padding)
    numpy.testing.assert_allclose(y, want[:, -1, 0], rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(h, want[:, -1, 0], rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(c, c_last[:, 0], rtol=1e-10, atol=1e-12)
    assert [w.shape for w in layer.weights] == [(3, 2, 12), (3, 3, 12), (12,)]


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3},
    {"kernel_size": (2, 3, 1), "padding": "same", "strides": (2, 1, 2), "return_sequences": True,
     "go_backwards": True},
    {"kernel_size": 2, "padding": "same", "dilation_rate": (2, 1, 2), "return_sequences": True},
    {"kernel_size": (3, 1, 2), "strides": 2, "go_backwards": True, "use_bias": False},
])
def test_conv_lstm3d_forward_matches_plain_convolution_sums(xp, rng, kwargs):
    layer = make(layers.ConvLSTM3D, filters=2, return_state=True, **kwargs)
    x = rng.standard_normal((2, 3, 3, 4, 5, 2))
    y, h, c = (to_numpy(a) for a in layer(xp.asarray(x)))
    want, c_last = expected(x, layer.get_weights(), layer.strides, layer.padding, layer.dilation_rate,
                            go_backwards=layer.go_backwards)
    numpy.testing.assert_allclose(y, want if layer.return_sequences else want[:, -1], rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(h, want[:, -1], rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(c, c_last, rtol=1e-10, atol=1e-12)
    assert [y.shape, h.shape, c.shape] == layer.compute_output_shape((2, 3, 3, 4, 5, 2))
    window = layer.kernel_size
    assert [w.shape for w in layer.weights] == [window + (2, 8), window + (2, 8)] + [(8,)] * layer.use_bias


# ------------------------------------------------------------------------------------------- gradients
def check_gradients(layer, x, rng, output_grads, initial_state=None, mask=None):
    """Finite differences of sum(<outputs, w>) for the input, the initial states and every weight."""
    def objective_of(v, states=initial_state):
        out = layer(v, training=True, initial_state=states, mask=mask)
        outs = out if isinstance(out, list) else [out]
        return sum((o * w).sum() for o, w in zip(outs, output_grads) if w is not None)

    def run_backward():
        layer(x, training=True, initial_state=initial_state, mask=mask)
        return layer.backward(output_grads if len(output_grads) > 1 else output_grads[0])

    dx = run_backward()
    assert_gradient(objective_of, x, dx, rng, what=f"{layer.name} input")
    if initial_state is not None:
        grads = layer.initial_state_gradients
        for i, what in enumerate(("h0", "c0")):
            def objective(s, i=i):
                states = list(initial_state)
                states[i] = s
                return objective_of(x, states)
            assert_gradient(objective, initial_state[i], grads[i], rng, what=f"{layer.name} {what}")
    for var in layer.trainable_weights:
        run_backward()
        grad, original = var.grad.copy(), var.value.copy()

        def objective(value, var=var):
            var.value[...] = value
            return objective_of(x)

        assert_gradient(objective, original.copy(), grad, rng, what=f"{layer.name} {var.name}")
        var.value[...] = original


@pytest.mark.parametrize("cls,shape,kwargs", [
    (layers.ConvLSTM2D, (2, 3, 3, 5, 2), {"padding": "valid", "strides": 2, "return_sequences": True}),
    (layers.ConvLSTM2D, (1, 2, 3, 5, 1), {"padding": "same", "kernel_size": 2, "dilation_rate": 2,
                                          "go_backwards": True}),
    (layers.ConvLSTM1D, (3, 2, 5, 2), {"padding": "same", "return_sequences": True, "go_backwards": True,
                                       "use_bias": False}),
    (layers.ConvLSTM3D, (1, 2, 3, 3, 5, 1), {"padding": "same", "kernel_size": (2, 3, 2), "dilation_rate": (2, 1, 1),
                                             "return_sequences": True, "go_backwards": True}),
    (layers.ConvLSTM3D, (2, 2, 3, 1, 5, 2), {"kernel_size": (3, 1, 3), "strides": (1, 1, 2)}),
])
def test_gradients_match_finite_differences(xp, rng, cls, shape, kwargs):
    kwargs = {"kernel_size": 3, **kwargs}
    layer = make(cls, filters=2, **kwargs)
    x = xp.asarray(rng.standard_normal(shape))
    check_gradients(layer, x, rng, [xp.asarray(rng.standard_normal(layer.compute_output_shape(shape)))])


# (the layer, its inputs' spatial sizes) for the tests of states, masks and dropout
SPATIAL = [(layers.ConvLSTM2D, (3, 5)), (layers.ConvLSTM3D, (3, 1, 4))]


@pytest.mark.parametrize("cls,spatial", SPATIAL)
def test_initial_state_and_return_state_gradients(xp, rng, cls, spatial):
    layer = make(cls, filters=2, padding="same", return_sequences=True, return_state=True)
    x = rng.standard_normal((2, 3) + spatial + (1,))
    h0, c0 = rng.standard_normal((2,) + spatial + (2,)), rng.standard_normal((2,) + spatial + (2,))
    y, h, c = (to_numpy(a) for a in layer(xp.asarray(x), initial_state=[xp.asarray(h0), xp.asarray(c0)]))
    want, c_last = expected(x, layer.get_weights(), padding="same", h0=h0, c0=c0)
    numpy.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(h, want[:, -1], rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(c, c_last, rtol=1e-10, atol=1e-12)
    grads = [xp.asarray(rng.standard_normal(a.shape)) for a in (y, h, c)]
    check_gradients(layer, xp.asarray(x), rng, grads, initial_state=[xp.asarray(h0), xp.asarray(c0)])
    # a state alone may carry the gradient
    check_gradients(layer, xp.asarray(x), rng, [None, None, grads[2]], initial_state=[xp.asarray(h0), xp.asarray(c0)])


@pytest.mark.parametrize("cls,spatial", SPATIAL)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_steps_hold_the_states(xp, rng, go_backwards, cls, spatial):
    layer = make(cls, filters=2, padding="same", return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = rng.standard_normal((3, 4) + spatial + (1,))
    mask = numpy.array([[True, True, True, True], [True, False, True, False], [False, False, True, True]])
    y, h, c = (to_numpy(a) for a in layer(xp.asarray(x), mask=xp.asarray(mask)))
    want, c_last = expected(x, layer.get_weights(), padding="same", go_backwards=go_backwards, mask=mask)
    numpy.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(c, c_last, rtol=1e-10, atol=1e-12)
    grads = [xp.asarray(rng.standard_normal(a.shape)) for a in (y, h, c)]
    h0, c0 = (xp.asarray(rng.standard_normal((3,) + spatial + (2,))) for _ in range(2))
    check_gradients(layer, xp.asarray(x), rng, grads, initial_state=[h0, c0], mask=xp.asarray(mask))


class RepeatingSeeds:
    """Stands in for a layer's seed generator: every call takes the same ``per_call`` seed pairs, so the dropout
    masks (and the function finite differences see) stay fixed."""

    def __init__(self, seed, per_call):
        self.seed, self.per_call, self.taken = seed, per_call, 0

    def next(self):
        pair = (self.seed, self.taken % self.per_call)
        self.taken += 1
        return pair


def keras_numpy_masks(seed, first, shape, rate):
    """Keras's NumPy backend's four per-gate masks of ``shape`` from the pairs (seed, first), (seed, first + 1),
    ..., stacked on the next-to-last axis as the layer applies them."""
    return numpy.stack([(numpy.random.default_rng(numpy.array([seed, first + g], numpy.uint32)).uniform(size=shape)
                         < 1 - rate) / (1 - rate) for g in range(4)], axis=-2)


@pytest.mark.parametrize("cls,spatial", SPATIAL)
def test_dropout_masks_each_gate_as_keras_does(xp, rng, cls, spatial):
    layer = make(cls, filters=2, padding="same", return_sequences=True, dropout=0.5, recurrent_dropout=0.25, seed=6)
    x = rng.standard_normal((2, 3) + spatial + (1,))
    y = to_numpy(layer(xp.asarray(x), training=True))
    assert layer.seed_generator.state.numpy().tolist() == [6, 8]     # four pairs per rate, input masks first
    input_masks = keras_numpy_masks(6, 0, (2,) + spatial + (1,), 0.5)          # (N, H, W, gates, channels)
    recurrent_masks = keras_numpy_masks(6, 4, (2,) + spatial + (2,), 0.25)     # (N, OH, OW, gates, filters)
    want, _ = expected(x, layer.get_weights(), padding="same", input_masks=input_masks,
                       recurrent_masks=recurrent_masks)
    if xp is numpy:     # on the GPU the masks are drawn there, from other streams
        numpy.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)
    # inference ignores dropout, and takes its pairs all the same
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), expected(x, layer.get_weights(), padding="same")[0],
                                  rtol=1e-10, atol=1e-12)
    assert layer.seed_generator.state.numpy().tolist() == [6, 16]
    layer.seed_generator = RepeatingSeeds(6, 8)
    check_gradients(layer, xp.asarray(x), rng, [xp.asarray(rng.standard_normal(y.shape))])


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_numpy_dropout_masks_are_keras_s_in_either_data_format(rng, data_format):
    layer = layers.ConvLSTM1D(2, 3, padding="same", return_sequences=True, dropout=0.5, recurrent_dropout=0.25, seed=3,
                              data_format=data_format, dtype="float64")
    x = rng.standard_normal((2, 3, 5, 1))           # (N, T, steps, channels)
    given = x if data_format == "channels_last" else x.transpose(0, 1, 3, 2)
    y = layer(given, training=True)
    y = y if data_format == "channels_last" else y.transpose(0, 1, 3, 2)
    # Keras draws each mask in the shape of a step (or state) in the layer's data format.
    shapes = [(2, 5, 1), (2, 5, 2)] if data_format == "channels_last" else [(2, 1, 5), (2, 2, 5)]
    masks = [keras_numpy_masks(3, first, shape, rate) for first, shape, rate in zip((0, 4), shapes, (0.5, 0.25))]
    masks = [m if data_format == "channels_last" else m.transpose(0, 3, 2, 1) for m in masks]   # (N, S, gates, C)
    kernel, recurrent, bias = layer.get_weights()
    want, _ = expected(x[:, :, None], [kernel[None], recurrent[None], bias], padding="same",
                       input_masks=masks[0][:, None], recurrent_masks=masks[1][:, None])
    numpy.testing.assert_allclose(y, want[:, :, 0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls,spatial", SPATIAL)
def test_stateful_calls_continue_the_sequence(xp, rng, cls, spatial):
    layer = make(cls, filters=2, padding="same", stateful=True)
    x = rng.standard_normal((2, 4) + spatial + (1,))
    first = layer(xp.asarray(x[:, :2]))
    second = to_numpy(layer(xp.asarray(x[:, 2:])))
    want, _ = expected(x, layer.get_weights(), padding="same")
    numpy.testing.assert_allclose(to_numpy(first), want[:, 1], rtol=1e-10)
    numpy.testing.assert_allclose(second, want[:, -1], rtol=1e-10)
    assert layer.carried_batch_size == 2 and layer.states[0].shape == (2,) + spatial + (2,)
    layer.reset_state()
    # Keras's reset: zeros, of the shape the states had
    assert [s.shape for s in layer.states] == [(2,) + spatial + (2,)] * 2 and not any(
        to_numpy(s).any() for s in layer.states)
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), want[:, -1], rtol=1e-10)
    with pytest.raises(ValueError, match="stateful"):
        layer(xp.asarray(x[:1]))
    layer.reset_state()
    with pytest.raises(ValueError, match="stateful.*keep their shape after reset_state"):
        layer(xp.asarray(x[:1]), initial_state=[xp.zeros((1,) + spatial + (2,))] * 2)


@pytest.mark.parametrize("cls,spatial", [(layers.ConvLSTM1D, (5,))] + SPATIAL)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_channels_first_is_channels_last_with_the_channels_moved(xp, rng, cls, spatial, return_sequences):
    kwargs = {"filters": 2, "kernel_size": 2, "padding": "same", "return_sequences": return_sequences,
              "return_state": True}
    last, first = make(cls, **kwargs), make(cls, data_format="channels_first", **kwargs)
    x = rng.standard_normal((2, 3) + spatial + (3,))
    states = [rng.standard_normal((2,) + spatial + (2,)) for _ in range(2)]
    want = [to_numpy(a) for a in last(xp.asarray(x), initial_state=[xp.asarray(s) for s in states])]
    x_first = xp.asarray(numpy.moveaxis(x, -1, 2))
    states_first = [xp.asarray(numpy.moveaxis(s, -1, 1)) for s in states]
    first.build(x_first.shape)
    first.set_weights(last.get_weights())
    got = first(x_first, initial_state=states_first)
    leads = [2 if return_sequences else 1, 1, 1]
    for g, w, lead in zip(got, want, leads):
        numpy.testing.assert_allclose(to_numpy(g), numpy.moveaxis(w, -1, lead), rtol=1e-12, atol=1e-12)
    assert [tuple(g.shape) for g in got] == first.compute_output_shape(x_first.shape)
    check_gradients(first, x_first, rng, [xp.asarray(rng.standard_normal(g.shape)) for g in got],
                    initial_state=states_first)
    with pytest.raises(ValueError, match="built for 3 input channels"):
        first(x_first[:, :, :2])
    with pytest.raises(ValueError, match=r"initial_state\[0\] must have shape"):
        first(x_first, initial_state=[xp.asarray(s) for s in states])   # channels_last states
    stateful = make(cls, data_format="channels_first", filters=2, kernel_size=2, padding="same", stateful=True)
    stateful(x_first)
    assert [tuple(s.shape) for s in stateful.states] == [tuple(s.shape) for s in states_first]
    needs = re.escape(str((1, 2) + spatial))
    with pytest.raises(ValueError, match=rf"carries states of shape .*; this input needs {needs}\."):
        stateful(x_first[:1])


# ------------------------------------------------------------------------------- shapes and config
def test_shapes_parameter_counts_and_config():
    layer = layers.ConvLSTM2D(3, 2, padding="same", return_state=True)
    assert layer.compute_output_shape((None, 3, 5, 6, 2)) == [(None, 5, 6, 3)] * 3
    layer.build((None, 3, 5, 6, 2))
    assert layer.count_params() == 252   # 2*2*(2+3)*12 + 12, as Keras's summary prints
    assert layer.get_weights()[2][3:6].tolist() == [1, 1, 1]   # unit_forget_bias
    one = layers.ConvLSTM1D(3, 2, return_sequences=True)
    assert one.compute_output_shape((None, 4, 7, 2)) == (None, 4, 6, 3)
    one.build((None, 4, 7, 2))
    assert one.count_params() == 132
    config = layer.get_config()
    again = layers.ConvLSTM2D.from_config(config)
    assert again.get_config() == config
    assert config["kernel_size"] == (2, 2) and config["data_format"] == "channels_last"
    three = layers.ConvLSTM3D(3, 2, padding="same", return_state=True)
    assert three.compute_output_shape((None, 3, 4, 5, 6, 2)) == [(None, 4, 5, 6, 3)] * 3
    three.build((None, 3, 4, 5, 6, 2))
    assert three.count_params() == 492   # 2*2*2*(2+3)*12 + 12
    config = three.get_config()
    assert layers.ConvLSTM3D.from_config(config).get_config() == config and config["kernel_size"] == (2, 2, 2)
    valid = layers.ConvLSTM3D(3, (2, 3, 1), strides=(1, 2, 1), return_sequences=True)
    assert valid.compute_output_shape((None, 4, 3, 7, 5, 2)) == (None, 4, 2, 3, 5, 3)


def test_in_a_model_with_summary(capsys):
    gpu_dl.backend.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((3, 5, 6, 2)), layers.ConvLSTM2D(3, 2, padding="same"),
                               layers.Flatten(), layers.Dense(2)])
    model.summary()
    out = capsys.readouterr().out
    assert "(None, 5, 6, 3)" in out and "252" in out
    model.compile(optimizer="adam", loss="mse")
    x = numpy.random.default_rng(0).standard_normal((4, 3, 5, 6, 2)).astype("float32")
    y = numpy.zeros((4, 2), dtype="float32")
    first = model.train_on_batch(x, y)
    for _ in range(3):
        last = model.train_on_batch(x, y)
    assert last < first


@pytest.mark.parametrize("cls,build_shape,call_shape,match", [
    (layers.ConvLSTM2D, None, (2, 3, 5, 2), "rank 5"),
    (layers.ConvLSTM2D, (2, 3, 5, 6, 2), (2, 3, 5, 6, 3), "built for 2 input channels"),
    (layers.ConvLSTM2D, None, (2, 3, 5, 2, 1), "cols window 3 is larger"),
    (layers.ConvLSTM2D, None, (2, 0, 5, 6, 1), "sequence length"),
    (layers.ConvLSTM3D, None, (2, 3, 5, 6, 2), r"rank 6 \(batch, time, depth, rows, cols, channels\)"),
    (layers.ConvLSTM3D, (1, 2, 3, 3, 3, 2), (1, 2, 3, 3, 3, 1), "built for 2 input channels"),
    (layers.ConvLSTM3D, None, (1, 2, 2, 5, 6, 1), "depth window 3 is larger"),
])
def test_bad_input_names_the_layer(cls, build_shape, call_shape, match):
    layer = cls(2, 3, name="clstm")
    if build_shape is not None:
        layer(numpy.zeros(build_shape, dtype="float32"))
    weights = [w.copy() for w in layer.get_weights()]
    with pytest.raises(ValueError, match=match) as info:
        layer(numpy.zeros(call_shape, dtype="float32"))
    assert "clstm" in str(info.value)
    after = layer.get_weights()
    assert len(after) == len(weights) and all((a == b).all() for a, b in zip(after, weights))


def test_bad_arguments_name_the_layer():
    with pytest.raises(ValueError, match="'c1'.*padding"):
        layers.ConvLSTM2D(2, 3, padding="causal", name="c1")
    with pytest.raises(ValueError, match="'c2'.*data_format must be 'channels_last' or 'channels_first'"):
        layers.ConvLSTM3D(2, 3, data_format="channels_middle", name="c2")
    with pytest.raises(ValueError, match="'c3'.*strides"):
        layers.ConvLSTM1D(2, 3, strides=2, dilation_rate=2, name="c3")
    layer = layers.ConvLSTM1D(2, 3, padding="same", name="c4")
    with pytest.raises(ValueError, match="'c4'.*initial_state"):
        layer(numpy.zeros((1, 2, 5, 1), dtype="float32"), initial_state=[numpy.zeros((1, 5, 2))])
