"""Layers under "mixed_float16": float32 weights, float16 computations and outputs, float32 gradients.

Expectations are NumPy computations in float16 (the inputs and weights rounded to float16 as the layer reads them),
compared to float16 rounding; the gradients' dtypes and values are checked against them too."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, mixed_precision, optimizers


@pytest.fixture(autouse=True)
def global_policy_restored():
    yield
    gpu_dl.utils.clear_session(free_memory=False)      # the global policy follows floatx again


def host(a):
    return numpy.asarray(backend.to_numpy(a))


def f16(a):
    return numpy.asarray(a, dtype=numpy.float32).astype(numpy.float16)


def test_dense_computes_in_float16_and_its_gradients_reach_float32_weights(xp, rng):
    dense = layers.Dense(5, activation="tanh", dtype="mixed_float16")
    x = rng.standard_normal((7, 3)).astype("float32")
    y = dense(xp.asarray(x), training=True)
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    assert dense.kernel.value.dtype == numpy.float32      # outside the call: the float32 variable itself
    assert y.dtype == numpy.float16
    z = f16(x).astype(numpy.float32) @ f16(kernel).astype(numpy.float32) + f16(bias).astype(numpy.float32)
    expected = numpy.tanh(f16(z).astype(numpy.float32))
    numpy.testing.assert_allclose(host(y).astype(numpy.float32), expected, rtol=4e-3, atol=4e-3)
    dy = rng.standard_normal((7, 5)).astype("float32")
    dx = dense.backward(xp.asarray(dy))
    dz = f16(dy).astype(numpy.float32) * (1.0 - f16(expected).astype(numpy.float32) ** 2)
    assert dense.kernel.grad.dtype == numpy.float32 and dense.bias.grad.dtype == numpy.float32
    # The input was float32: its gradient comes back in float32 (the gradient of the cast to float16).
    assert dx.dtype == numpy.float32
    numpy.testing.assert_allclose(host(dense.kernel.grad), f16(x).astype(numpy.float32).T @ dz, rtol=2e-2,
                                  atol=2e-2)
    numpy.testing.assert_allclose(host(dense.bias.grad), dz.sum(0), rtol=2e-2, atol=2e-2)
    numpy.testing.assert_allclose(host(dx), dz @ f16(kernel).astype(numpy.float32).T, rtol=2e-2, atol=2e-2)


def test_variables_read_as_float16_inside_the_call_only(xp):
    seen = {}

    class Reads(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight((2,), "ones", name="w")
            self.raw = self.add_weight((2,), "ones", name="raw", autocast=False)
            self.count = self.add_weight((), "zeros", name="count", dtype="int32", trainable=False)

        def call(self, x):
            seen.update(w=self.w.value.dtype, raw=self.raw.value.dtype, count=self.count.value.dtype,
                        sum=(x + self.w).dtype)
            return x * self.w

        def backward(self, dy):
            return dy

    layer = Reads(dtype="mixed_float16")
    out = layer(xp.ones((1, 2), dtype="float32"))
    assert seen == {"w": numpy.float16, "raw": numpy.float32, "count": numpy.int32, "sum": numpy.float16}
    assert out.dtype == numpy.float16 and layer.w.value.dtype == numpy.float32


def test_float32_output_layer_and_batch_normalization_in_a_mixed_model(xp, rng):
    mixed_precision.set_global_policy("mixed_float16")
    norm = layers.BatchNormalization()
    head = layers.Activation("softmax", dtype="float32")
    model = gpu_dl.Sequential([layers.Input((4,)), layers.Dense(6), norm, layers.Dense(3), head])
    x = xp.asarray(rng.standard_normal((9, 4)).astype("float32"))
    hidden = model.layers[0](x)
    normalized = norm(hidden, training=True)
    assert hidden.dtype == numpy.float16 and normalized.dtype == numpy.float16
    # Keras's BatchNormalization computes its statistics in float32 from the float16 input.
    h = host(hidden).astype(numpy.float32)
    mean, var = h.mean(0), h.var(0)
    numpy.testing.assert_allclose(host(norm.moving_mean.value), 0.01 * mean, rtol=1e-5, atol=1e-7)
    numpy.testing.assert_allclose(host(norm.moving_variance.value), 0.99 + 0.01 * var, rtol=1e-5, atol=1e-7)
    assert norm.moving_mean.value.dtype == numpy.float32
    numpy.testing.assert_allclose(host(normalized).astype(numpy.float32), (h - mean) / numpy.sqrt(var + 1e-3),
                                  rtol=3e-3, atol=3e-3)
    logits = model.layers[2](normalized)
    probabilities = head(logits, training=True)
    assert probabilities.dtype == numpy.float32
    expected = numpy.exp(host(logits).astype(numpy.float32))
    numpy.testing.assert_allclose(host(probabilities), expected / expected.sum(-1, keepdims=True), rtol=1e-5,
                                  atol=1e-6)
    # The float32 layer's input gradient goes back to the float16 layer before it in float16.
    assert head.backward(xp.ones((9, 3), dtype="float32")).dtype == numpy.float16
    assert model.predict(host(x), verbose=0).dtype == numpy.float32


def test_training_step_gradients_match_float32_within_float16_rounding(xp, rng):
    """One SGD step of a mixed model (its loss scaled by 2**15, the gradients unscaled) moves the weights as the
    same step in float32 does, to float16 rounding."""
    x = rng.standard_normal((16, 4)).astype("float32")
    y = rng.standard_normal((16, 2)).astype("float32")
    weights = [rng.standard_normal(s).astype("float32") * 0.5 for s in ((4, 8), (8,), (8, 2), (2,))]
    moved = {}
    for policy in ("float32", "mixed_float16"):
        mixed_precision.set_global_policy(policy)
        model = gpu_dl.Sequential([layers.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(2)])
        model.set_weights(weights)
        model.compile(optimizers.SGD(learning_rate=0.1), "mse")
        assert isinstance(model.optimizer, optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
        model.train_on_batch(xp.asarray(x), xp.asarray(y))
        moved[policy] = model.get_weights()
    for a, b, w in zip(moved["mixed_float16"], moved["float32"], weights):
        assert a.dtype == numpy.float32
        numpy.testing.assert_allclose(a - w, b - w, rtol=2e-2, atol=2e-3)
        assert not numpy.array_equal(a, w)


@pytest.mark.parametrize("make, shape", [
    (lambda dtype: layers.Conv2D(4, 3, padding="same", activation="relu", dtype=dtype), (2, 7, 6, 3)),
    (lambda dtype: layers.Conv2D(4, 3, strides=2, groups=1, dtype=dtype), (2, 9, 8, 2)),
    (lambda dtype: layers.MaxPooling2D(2, dtype=dtype), (2, 6, 6, 3)),
    (lambda dtype: layers.AveragePooling2D(3, strides=2, padding="same", dtype=dtype), (1, 7, 5, 2)),
    (lambda dtype: layers.GlobalMaxPooling2D(dtype=dtype), (3, 4, 5, 2)),
    (lambda dtype: layers.GlobalAveragePooling2D(dtype=dtype), (3, 4, 5, 2)),
    (lambda dtype: layers.LSTM(5, return_sequences=True, dtype=dtype), (3, 6, 4)),
    (lambda dtype: layers.GRU(5, dtype=dtype), (3, 6, 4)),
], ids=["conv_same_relu", "conv_strided", "maxpool", "avgpool_same", "global_max", "global_avg", "lstm", "gru"])
def test_kernels_and_cells_under_float16_match_float32_to_float16_rounding(xp, rng, make, shape):
    """The CuPy kernels exist in float32 and float64 only: float16 inputs run through float32 and come back as
    float16 (the fused recurrent cells give way to the CuPy array path, in float16). On both backends the outputs
    and gradients match the float32 layer on the same float16-rounded inputs and weights."""
    mixed, plain = make("mixed_float16"), make("float32")
    x = f16(rng.standard_normal(shape)).astype(numpy.float32)
    mixed.build(x.shape)
    plain.build(x.shape)
    rounded = [f16(w).astype(numpy.float32) for w in mixed.get_weights()]
    mixed.set_weights(rounded)
    plain.set_weights(rounded)
    y_mixed, y_plain = mixed(xp.asarray(x), training=True), plain(xp.asarray(x), training=True)
    assert y_mixed.dtype == numpy.float16
    numpy.testing.assert_allclose(host(y_mixed).astype(numpy.float32), host(y_plain), rtol=1e-2, atol=1e-2)
    dy = f16(rng.standard_normal(y_plain.shape)).astype(numpy.float32)
    dx_mixed, dx_plain = mixed.backward(xp.asarray(dy)), plain.backward(xp.asarray(dy))
    assert dx_mixed.dtype == numpy.float32         # the input was float32
    numpy.testing.assert_allclose(host(dx_mixed), host(dx_plain), rtol=3e-2, atol=3e-2)
    for a, b in zip(mixed.trainable_weights, plain.trainable_weights):
        assert a.grad.dtype == numpy.float32
        numpy.testing.assert_allclose(host(a.grad), host(b.grad), rtol=3e-2, atol=5e-2)


@pytest.mark.parametrize("kind", ["add", "concatenate", "attention", "multi_head_attention"])
def test_layers_of_several_inputs_compute_in_float16(xp, rng, kind):
    def make(dtype):
        return {"add": lambda: layers.Add(dtype=dtype), "concatenate": lambda: layers.Concatenate(dtype=dtype),
                "attention": lambda: layers.Attention(dtype=dtype),
                "multi_head_attention": lambda: layers.MultiHeadAttention(2, 3, dtype=dtype)}[kind]()

    def run(layer, a, b):
        if kind == "multi_head_attention":
            return layer(a, b, training=True)
        return layer([a, b], training=True)

    mixed, plain = make("mixed_float16"), make("float32")
    a = f16(rng.standard_normal((2, 5, 4))).astype(numpy.float32)
    b = f16(rng.standard_normal((2, 5, 4))).astype(numpy.float32)
    y_mixed = run(mixed, xp.asarray(a), xp.asarray(b))
    if mixed.weights:
        rounded = [f16(w).astype(numpy.float32) for w in mixed.get_weights()]
        run(plain, xp.asarray(a), xp.asarray(b))
        mixed.set_weights(rounded)
        plain.set_weights(rounded)
        y_mixed = run(mixed, xp.asarray(a), xp.asarray(b))
    y_plain = run(plain, xp.asarray(a), xp.asarray(b))
    assert y_mixed.dtype == numpy.float16
    numpy.testing.assert_allclose(host(y_mixed).astype(numpy.float32), host(y_plain), rtol=1e-2, atol=1e-2)
    dy = f16(rng.standard_normal(y_plain.shape)).astype(numpy.float32)
    dx_mixed, dx_plain = mixed.backward(xp.asarray(dy)), plain.backward(xp.asarray(dy))
    for d_mixed, d_plain in zip(dx_mixed, dx_plain):
        assert d_mixed.dtype == numpy.float32
        numpy.testing.assert_allclose(host(d_mixed), host(d_plain), rtol=3e-2, atol=3e-2)
    for w_mixed, w_plain in zip(mixed.trainable_weights, plain.trainable_weights):
        assert w_mixed.grad.dtype == numpy.float32
        numpy.testing.assert_allclose(host(w_mixed.grad), host(w_plain.grad), rtol=3e-2, atol=5e-2)


@pytest.mark.parametrize("cell", [layers.LSTMCell, layers.GRUCell, layers.SimpleRNNCell])
def test_a_cell_steps_in_float16(xp, rng, cell):
    mixed, plain = cell(4, dtype="mixed_float16"), cell(4, dtype="float32")
    x = f16(rng.standard_normal((3, 5))).astype(numpy.float32)
    mixed.build(x.shape)
    plain.build(x.shape)
    rounded = [f16(w).astype(numpy.float32) for w in mixed.get_weights()]
    mixed.set_weights(rounded)
    plain.set_weights(rounded)
    h_mixed, states = mixed(xp.asarray(x), mixed.get_initial_state(3), training=True)
    h_plain, _ = plain(xp.asarray(x), plain.get_initial_state(3), training=True)
    assert h_mixed.dtype == numpy.float16
    assert all(s.dtype == numpy.float16 for s in (states if isinstance(states, (list, tuple)) else [states]))
    numpy.testing.assert_allclose(host(h_mixed).astype(numpy.float32), host(h_plain), rtol=1e-2, atol=1e-2)
    dh = rng.standard_normal(h_plain.shape).astype(numpy.float32)
    mixed.backward(xp.asarray(dh))
    plain.backward(xp.asarray(dh))
    for w_mixed, w_plain in zip(mixed.trainable_weights, plain.trainable_weights):
        assert w_mixed.grad.dtype == numpy.float32
        numpy.testing.assert_allclose(host(w_mixed.grad), host(w_plain.grad), rtol=3e-2, atol=5e-2)
