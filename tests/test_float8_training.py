"""float8 training of Dense and EinsumDense (``quantize("float8")``, ``"float8_from_float32"``): the variables of
the delayed scaling, the fake-quantized forward and backward against plain NumPy expectations on both backends,
the scales and amax histories after a training step as Keras's formulas give them, the optimizers' assignment of
variables marked ``overwrite_with_gradient``, and saving and loading.

The fake quantization passes gradients straight through (its derivative is defined, not taken), so the gradients
are checked against the NumPy expectation of that rule rather than against finite differences."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, optimizers
from gpu_dl.backend import to_numpy
from gpu_dl.dtype_policies import QuantizedFloat8DTypePolicy
from gpu_dl.layers.float8_training import round_to_bfloat16
from optimizer_writing_classes import OURS

NAMES = ["inputs_scale", "inputs_amax_history", "kernel_scale", "kernel_amax_history", "outputs_grad_scale",
         "outputs_grad_amax_history"]


@pytest.fixture(autouse=True)
def fresh_session():
    gpu_dl.utils.clear_session(free_memory=False)      # the paths asserted carry numbered names
    yield
    gpu_dl.utils.clear_session(free_memory=False)


def float8_values(exponent_bits, mantissa_bits, finite_max):
    """Every non-negative finite value of a float8 format, built from its fields."""
    bias = 2 ** (exponent_bits - 1) - 1
    values = [m / 2 ** mantissa_bits * 2.0 ** (1 - bias) for m in range(2 ** mantissa_bits)]      # subnormals
    for e in range(1, 2 ** exponent_bits):
        values += [(1 + m / 2 ** mantissa_bits) * 2.0 ** (e - bias) for m in range(2 ** mantissa_bits)]
    values = numpy.array(sorted(set(values)))
    return values[values <= finite_max]


E4M3 = float8_values(4, 3, 448.0)
E5M2 = float8_values(5, 2, 57344.0)


def nearest(x, grid):
    """``x`` rounded to the nearest value of ``grid`` (by sign and magnitude; random inputs have no ties)."""
    magnitude = numpy.abs(x.astype(numpy.float64))
    index = numpy.abs(magnitude[..., None] - grid).argmin(axis=-1)
    return (numpy.sign(x) * grid[index]).astype(x.dtype)


def qdq(x, scale, grid):
    scale = numpy.float32(scale)
    return nearest(numpy.clip(x / scale, -grid[-1], grid[-1]).astype(numpy.float32), grid) * scale


def bf16(x):
    """float32 to the nearest bfloat16 value: of the two bfloat16 neighbours (truncation and one step away from
    zero), the closer one."""
    x = numpy.asarray(x, numpy.float32)
    low = (x.view(numpy.uint32) & numpy.uint32(0xFFFF0000)).view(numpy.float32)
    high = ((x.view(numpy.uint32) & numpy.uint32(0xFFFF0000)) + numpy.uint32(0x10000)).view(numpy.float32)
    return numpy.where(numpy.abs(x - low) <= numpy.abs(high - x), low, high)


def next_scale(history, scale, largest):
    amax = numpy.float32(history.max())
    return numpy.float32(1) / (numpy.float32(largest) / amax) if amax > 0 else numpy.float32(scale)


def rolled(history, values):
    out = numpy.roll(history, -1)
    out[0] = numpy.abs(values).max()
    return out


def set_state(layer, rng, length):
    """Scales and histories with values of their own: a scale per operand and histories with a largest entry."""
    state = {}
    for operand, scale in (("inputs", 0.02), ("kernel", 0.003), ("outputs_grad", 1e-4)):
        history = numpy.abs(rng.standard_normal(length)).astype("float32")
        getattr(layer, f"{operand}_scale").assign(numpy.float32(scale))
        getattr(layer, f"{operand}_amax_history").assign(history)
        state[operand] = (numpy.float32(scale), history)
    return state


def test_dense_float8_variables_and_policy():
    model = gpu_dl.Sequential([gpu_dl.Input((5,)), layers.Dense(3, name="d")])
    model.quantize("float8")
    dense = model.layers[0]
    assert [(w.path, w.shape, w.trainable, w.overwrite_with_gradient) for w in dense.weights] == [
        ("sequential/d/kernel", (5, 3), True, False), ("sequential/d/bias", (3,), True, False)] + [
        (f"sequential/d/{n}", (1024,) if n.endswith("history") else (), True, True) for n in NAMES]
    for name in NAMES:
        var = getattr(dense, name)
        assert var.dtype == "float32" and not var.autocast
        numpy.testing.assert_array_equal(var.numpy(), 0 if name.endswith("history") else 1)
    assert dense.dtype_policy == QuantizedFloat8DTypePolicy("float8", "float32")
    assert dense.dtype_policy.get_config() == {"mode": "float8", "source_name": "float32",
                                               "amax_history_length": 1024}
    assert isinstance(dense.quantization_config, gpu_dl.quantizers.Float8QuantizationConfig)
    with pytest.raises(ValueError, match="already quantized"):
        dense.quantize("float8")
    # built from the policy (a layer of a saved model): the float8 variables first, a history of the policy's length
    direct = layers.Dense(2, dtype=QuantizedFloat8DTypePolicy("float8", "float32", amax_history_length=16))
    direct.build((None, 4))
    assert [w.name for w in direct.weights] == NAMES + ["kernel", "bias"]
    assert direct.inputs_amax_history.shape == (16,)
    assert gpu_dl.dtype_policies.get("float8_from_float32") == QuantizedFloat8DTypePolicy("float8", "float32")
    assert QuantizedFloat8DTypePolicy("float8", "float32", 16) != QuantizedFloat8DTypePolicy("float8", "float32")
    with pytest.raises(TypeError, match="`amax_history_length` must be an integer"):
        QuantizedFloat8DTypePolicy("float8", "float32", amax_history_length=2.5)
    serialized = gpu_dl.dtype_policies.serialize(direct.dtype_policy)
    assert serialized["class_name"] == "QuantizedFloat8DTypePolicy"
    assert gpu_dl.dtype_policies.deserialize(serialized) == direct.dtype_policy
    assert layers.Dense.from_config(direct.get_config()).dtype_policy == direct.dtype_policy


def test_dense_float8_forward_and_backward(xp):
    rng = numpy.random.default_rng(0)
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    dense = layers.Dense(7, activation="tanh")
    dense.build((None, 17))
    kernel = rng.standard_normal((17, 7)).astype("float32") * 0.3
    bias = rng.standard_normal(7).astype("float32")
    dense.set_weights([kernel, bias])
    dense.quantize("float8")
    state = set_state(dense, rng, 1024)
    x = rng.standard_normal((5, 17)).astype("float32") * 3
    dy = rng.standard_normal((5, 7)).astype("float32") * 0.01

    y = dense(xp.asarray(x), training=True)
    xq, kq = qdq(x, state["inputs"][0], E4M3), qdq(kernel, state["kernel"][0], E4M3)
    z = xq @ kq + bf16(bias)
    numpy.testing.assert_allclose(to_numpy(y), numpy.tanh(z), rtol=1e-6, atol=1e-6)
    dense.input_gradient_wanted = True
    dx = dense.backward(xp.asarray(dy))
    dz = dy * (1 - numpy.tanh(z) ** 2)
    dzq = qdq(dz.astype("float32"), state["outputs_grad"][0], E5M2)
    numpy.testing.assert_allclose(to_numpy(dx), dzq @ kq.T, rtol=1e-5, atol=1e-9)
    numpy.testing.assert_allclose(to_numpy(dense.kernel.grad), xq.T @ dzq, rtol=1e-5, atol=1e-9)
    numpy.testing.assert_allclose(to_numpy(dense.bias.grad), bf16(dz.sum(axis=0)), rtol=1e-2)
    numpy.testing.assert_array_equal(to_numpy(dense.bias.grad), to_numpy(round_to_bfloat16(dense.bias.grad)))
    # each scale's gradient is its next value, each history's the rolled history with the operand's amax
    for operand, values, largest in (("inputs", x, 448.0), ("kernel", kernel, 448.0), ("outputs_grad", dz, 57344.0)):
        scale, history = state[operand]
        numpy.testing.assert_allclose(to_numpy(getattr(dense, f"{operand}_scale").grad),
                                      next_scale(history, scale, largest), rtol=1e-6)
        numpy.testing.assert_allclose(to_numpy(getattr(dense, f"{operand}_amax_history").grad),
                                      rolled(history, values), rtol=1e-6)
    # inference leaves the variables' gradients alone and computes the same outputs
    numpy.testing.assert_array_equal(to_numpy(dense(xp.asarray(x))), to_numpy(y))


def test_einsum_dense_float8_forward_and_backward(xp):
    rng = numpy.random.default_rng(1)
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    layer = layers.EinsumDense("abc,cde->abde", (3, 2, 4), bias_axes="de")
    layer.build((None, 3, 5))
    kernel = rng.standard_normal((5, 2, 4)).astype("float32") * 0.4
    bias = rng.standard_normal((2, 4)).astype("float32")
    layer.set_weights([kernel, bias])
    layer.quantize("float8")
    assert [w.name for w in layer.weights] == ["kernel", "bias"] + NAMES
    state = set_state(layer, rng, 1024)
    x = rng.standard_normal((4, 3, 5)).astype("float32")
    dy = rng.standard_normal((4, 3, 2, 4)).astype("float32") * 0.01
    y = layer(xp.asarray(x), training=True)
    xq, kq = qdq(x, state["inputs"][0], E4M3), qdq(kernel, state["kernel"][0], E4M3)
    numpy.testing.assert_allclose(to_numpy(y), numpy.einsum("abc,cde->abde", xq, kq) + bf16(bias), rtol=1e-5,
                                  atol=1e-6)
    layer.input_gradient_wanted = True
    dx = layer.backward(xp.asarray(dy))
    dzq = qdq(dy, state["outputs_grad"][0], E5M2)
    numpy.testing.assert_allclose(to_numpy(dx), numpy.einsum("abde,cde->abc", dzq, kq), rtol=1e-5, atol=1e-9)
    numpy.testing.assert_allclose(to_numpy(layer.kernel.grad), numpy.einsum("abc,abde->cde", xq, dzq), rtol=1e-5,
                                  atol=1e-9)
    numpy.testing.assert_array_equal(to_numpy(layer.bias.grad), bf16(to_numpy(xp.asarray(dy).sum(axis=(0, 1)))))
    scale, history = state["outputs_grad"]
    numpy.testing.assert_allclose(to_numpy(layer.outputs_grad_scale.grad), next_scale(history, scale, 57344.0),
                                  rtol=1e-6)


def test_train_step_updates_the_scales_as_keras_formulas_say(xp):
    rng = numpy.random.default_rng(2)
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    model = gpu_dl.Sequential([gpu_dl.Input((6,)), layers.Dense(4, dtype="float8_from_float32")])
    dense = model.layers[0]
    kernel = dense.kernel.numpy()
    x = rng.standard_normal((8, 6)).astype("float32")
    y = rng.standard_normal((8, 4)).astype("float32")
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(x, y)
    # the first step: histories of zeros keep the scales at one, and record the step's amax
    for name in ("inputs_scale", "kernel_scale", "outputs_grad_scale"):
        assert getattr(dense, name).numpy() == 1
    for name, values in (("inputs_amax_history", x), ("kernel_amax_history", kernel)):
        numpy.testing.assert_array_equal(getattr(dense, name).numpy(), rolled(numpy.zeros(1024, "float32"), values))
    z = qdq(x, 1, E4M3) @ qdq(kernel, 1, E4M3) + bf16(dense.bias.numpy() * 0)
    dz = 2 * (z - y) / z.size
    numpy.testing.assert_allclose(dense.outputs_grad_amax_history.numpy()[0], numpy.abs(dz).max(), rtol=1e-5)
    assert not dense.outputs_grad_amax_history.numpy()[1:].any()
    histories = {n: getattr(dense, n).numpy() for n in NAMES if n.endswith("history")}
    kernel = dense.kernel.numpy()
    model.train_on_batch(x, y)
    # the second: scales from the histories the first step left, histories rolled once more
    for operand, largest in (("inputs", 448.0), ("kernel", 448.0), ("outputs_grad", 57344.0)):
        numpy.testing.assert_allclose(getattr(dense, f"{operand}_scale").numpy(),
                                      next_scale(histories[f"{operand}_amax_history"], 1, largest), rtol=1e-6)
    numpy.testing.assert_array_equal(dense.kernel_amax_history.numpy(),
                                     rolled(histories["kernel_amax_history"], kernel))


def overwritten_pair(xp):
    plain = gpu_dl.Variable(xp.ones(3, dtype="float32"), "plain")
    marked = gpu_dl.Variable(xp.ones(3, dtype="float32"), "marked")
    marked.overwrite_with_gradient = True
    return plain, marked


@pytest.mark.parametrize("make", [lambda: optimizers.SGD(0.5, momentum=0.9), lambda: optimizers.Adam(0.1),
                                  lambda: optimizers.SGD(0.5, loss_scale_factor=4.0, clipvalue=0.1,
                                                         weight_decay=0.5),
                                  lambda: OURS["MomentumSGD"](0.1)])
def test_optimizers_assign_gradients_to_overwritten_variables(xp, make):
    plain, marked = overwritten_pair(xp)
    opt = make()
    grad = xp.asarray([2.0, -3.0, 5.0], dtype="float32")
    opt.apply_gradients([(grad, plain), (grad, marked)])
    numpy.testing.assert_array_equal(marked.numpy(), [2.0, -3.0, 5.0])
    assert not numpy.allclose(plain.numpy(), 1)
    # no slots for the overwritten variable, as Keras makes none
    assert opt._slots[marked] == {}
    # a built-in rule's slots are the plain variable's; one written Keras's way made its variables for it alone
    # (the list also holds the iteration count and the learning rate, as Keras's does)
    slots = [v.name for v in opt.variables if v.name not in ("iteration", "learning_rate")]
    assert len(slots) == len(opt._slots[plain]) or slots == ["plain_momentum"]


def test_overwritten_variables_under_accumulation_ema_and_loss_scaling(xp):
    plain, marked = overwritten_pair(xp)
    opt = optimizers.SGD(0.1, gradient_accumulation_steps=2, use_ema=True)
    first, second = xp.asarray([1.0, 5.0, -2.0], "float32"), xp.asarray([3.0, 4.0, -1.0], "float32")
    opt.apply_gradients([(first, plain), (first, marked)])
    numpy.testing.assert_array_equal(marked.numpy(), 1)       # the accumulating call keeps the value
    # Keras keeps the maximum of the gradients and the accumulator, which starts at zero
    numpy.testing.assert_array_equal(to_numpy(opt._slots[marked]["gradient_accumulator"]), [1.0, 5.0, 0.0])
    opt.apply_gradients([(second, plain), (second, marked)])
    numpy.testing.assert_array_equal(marked.numpy(), [3.0, 5.0, 0.0])
    numpy.testing.assert_array_equal(to_numpy(opt._slots[marked]["gradient_accumulator"]), 0)
    assert "average" not in opt._slots[marked]
    numpy.testing.assert_allclose(plain.numpy(), 1 - 0.1 * to_numpy(first + second) / 2, rtol=1e-6)
    plain, marked = overwritten_pair(xp)
    scaled = optimizers.LossScaleOptimizer(optimizers.SGD(0.1), initial_scale=8.0)
    scaled.apply_gradients([(first * 8, plain), (first, marked)])
    numpy.testing.assert_array_equal(marked.numpy(), to_numpy(first))
    numpy.testing.assert_allclose(plain.numpy(), 1 - 0.1 * to_numpy(first), rtol=1e-6)
    with pytest.raises(TypeError, match="`overwrite_with_gradient` must be a boolean"):
        marked.overwrite_with_gradient = 1


def test_bfloat16_rounding(xp):
    values = numpy.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -3.3, 1e-40, numpy.inf,
                          -numpy.inf, numpy.nan, 3.4e38], "float32")
    out = to_numpy(round_to_bfloat16(xp.asarray(values)))
    # ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7, 1 + 3*2^-8 halfway between 1 + 2^-7 and 1 + 2^-6
    numpy.testing.assert_array_equal(out[:4], [1.0, 1.0, 1 + 2 ** -6, 1 + 2 ** -7])
    numpy.testing.assert_array_equal(out[4:6], bf16(values[4:6]))
    # beyond the largest bfloat16 by more than half a step: infinity, as a cast rounds it
    assert out[6] == numpy.inf and out[7] == -numpy.inf and numpy.isnan(out[8]) and out[9] == numpy.inf


def test_float8_model_saves_and_loads(tmp_path):
    rng = numpy.random.default_rng(3)
    model = gpu_dl.Sequential([gpu_dl.Input((6,)), layers.Dense(5, activation="relu"),
                               layers.EinsumDense("ab,bc->ac", 3, bias_axes="c")])
    model.quantize("float8")
    x = rng.standard_normal((8, 6)).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, rng.standard_normal((8, 3)).astype("float32"), epochs=2, batch_size=4, verbose=0)
    assert model.layers[0].inputs_scale.numpy() != 1
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "f8.keras")
    model.save_weights(tmp_path / "f8.weights.h5")
    loaded = gpu_dl.models.load_model(tmp_path / "f8.keras")
    assert [l.dtype_policy for l in loaded.layers] == [QuantizedFloat8DTypePolicy("float8", "float32")] * 2
    # a layer built from the float8 policy makes its float8 variables first, as Keras's does
    for ours, theirs in zip(loaded.layers, model.layers):
        assert sorted(w.name for w in ours.weights) == sorted(w.name for w in theirs.weights)
        for w in theirs.weights:
            numpy.testing.assert_array_equal(getattr(ours, w.name).numpy(), w.numpy())
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    again = gpu_dl.Sequential([gpu_dl.Input((6,)), layers.Dense(5, activation="relu"),
                               layers.EinsumDense("ab,bc->ac", 3, bias_axes="c")])
    again.quantize("float8")
    again.load_weights(tmp_path / "f8.weights.h5")
    numpy.testing.assert_array_equal(again.predict(x, verbose=0), expected)
