"""GPTQ post-training quantization (``gpu_dl/gptq.py``, ``gpu_dl/quantization_calibration.py``): the algorithm
against a plain NumPy transcription of the reference GPTQ on small odd shapes, its output error against
round-to-nearest on correlated inputs, the Hessian, the quantization parameters, GPTQConfig and
GPTQDTypePolicy, Dense and EinsumDense layers quantized by ``model.quantize("gptq")`` (weights, forward and
inputs' gradient on both backends, saving and loading) and the refusals."""
import numpy
import pytest

import gpu_dl
from gpu_dl import gptq, layers, quantization_calibration
from gpu_dl.backend import to_numpy
from gpu_dl.dtype_policies import GPTQDTypePolicy
from gpu_dl.quantizers import GPTQConfig
import keras_steps

fresh_sessions = keras_steps.fresh_sessions


def row_params(w, bits, symmetric=False):
    """Per-row levels of a slice of columns, written out: min/max per row (widened by one where equal)."""
    low, high = w.min(axis=1), w.max(axis=1)
    if symmetric:
        high = numpy.maximum(numpy.abs(low), high)
        low = numpy.where(low < 0, -high, low)
    low, high = numpy.where(low == high, low - 1, low), numpy.where(low == high, high + 1, high)
    maxq = 2 ** bits - 1
    if symmetric:
        return (high - low) / maxq, numpy.full_like(low, (maxq + 1) / 2), maxq
    # a zero point that uint8 cannot hold: the range takes in zero
    wrapped = (numpy.round(-low / ((high - low) / maxq)) < 0) | (numpy.round(-low / ((high - low) / maxq)) > 255)
    low, high = numpy.where(wrapped, numpy.minimum(low, 0), low), numpy.where(wrapped, numpy.maximum(high, 0), high)
    scale = (high - low) / maxq
    return scale, numpy.round(-low / scale), maxq


def reference_gptq(w, hessian, bits, blocksize, group_size, act_order, damping=0.01):
    """The reference GPTQ (Frantar et al., fasterquant), column by column in float64: dead inputs, damping,
    activation order, the upper Cholesky factor of the inverse Hessian, per-block error propagation. Returns the
    dequantized (out, in) weight in the original column order."""
    w, h = w.astype(numpy.float64).copy(), hessian.astype(numpy.float64).copy()
    dead = numpy.diag(h) == 0
    h[dead, dead] = 1
    h[numpy.diag_indices_from(h)] += damping * numpy.mean(numpy.diag(h))
    columns = w.shape[1]
    perm = numpy.argsort(-numpy.diag(h), kind="stable") if act_order else numpy.arange(columns)
    w, h = w[:, perm], h[perm][:, perm]
    hinv = numpy.linalg.cholesky(numpy.linalg.inv(h)).T
    deq = numpy.zeros_like(w)
    group = columns if group_size == -1 else group_size
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        w1, err1 = w[:, i1:i2].copy(), numpy.zeros((w.shape[0], i2 - i1))
        for i in range(i2 - i1):
            if (i1 + i) % group == 0:
                scale, zero, maxq = row_params(w[:, i1 + i:i1 + i + group], bits)
            q = numpy.clip(numpy.round(w1[:, i] / scale + zero), 0, maxq)
            deq[:, i1 + i] = scale * (q - zero)
            err1[:, i] = (w1[:, i] - deq[:, i1 + i]) / hinv[i1 + i, i1 + i]
            w1[:, i:] -= numpy.outer(err1[:, i], hinv[i1 + i, i1 + i:i2])
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return deq[:, numpy.argsort(perm)]


def dequantize(levels, scale, zero, g_idx):
    groups = g_idx.astype(numpy.int64)
    return (levels - zero[:, groups].astype(numpy.float64)) * scale[:, groups]


def correlated(rng, n, features, rank=4):
    return (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, features))
            + 0.1 * rng.standard_normal((n, features))).astype(numpy.float32)


def scale_zero(bits, group_size, symmetric=False):
    return lambda w: gptq.compute_quantization_parameters(w, bits=bits, symmetric=symmetric, per_channel=True,
                                                          group_size=group_size)


@pytest.mark.parametrize("out, inputs, bits, blocksize, group_size, act_order", [
    (7, 13, 4, 128, -1, False), (5, 33, 3, 8, 4, False), (3, 17, 4, 6, 3, True), (9, 33, 2, 11, 11, True),
    (1, 5, 8, 8, -1, True)])
def test_matches_reference_gptq(out, inputs, bits, blocksize, group_size, act_order):
    rng = numpy.random.default_rng(out * inputs)
    w = rng.standard_normal((out, inputs)).astype(numpy.float32)
    x = correlated(rng, 60, inputs)
    x[:, 1] = 0         # an input never seen: a dead Hessian diagonal
    hessian = 2 / 60 * x.T @ x
    damped = gptq.damped_hessian(hessian, 0.01)
    levels, scale, zero, g_idx = gptq.gptq_quantize_matrix(
        w, gptq.inverse_hessian(damped, "float64"), blocksize=blocksize, group_size=group_size,
        activation_order=act_order, order_metric=numpy.diagonal(damped), compute_scale_zero=scale_zero(bits, -1),
        cholesky=True)
    expected = reference_gptq(w, hessian, bits, blocksize, group_size, act_order)
    assert levels.dtype == numpy.int32 and levels.min() >= 0 and levels.max() <= 2 ** bits - 1
    groups = -(-inputs // group_size) if group_size > 0 else 1
    assert scale.shape == zero.shape == (out, groups) and zero.dtype == numpy.uint8
    got = dequantize(levels, scale, zero, g_idx)
    # float32 against float64: a rare rounding tie may go the other way
    close = numpy.isclose(got, expected, rtol=1e-4, atol=1e-5)
    assert close.mean() > 0.97, close.mean()
    numpy.testing.assert_allclose(numpy.sort(g_idx.astype(int)), numpy.arange(inputs) // (group_size if group_size
                                                                                          > 0 else inputs))


def test_error_smaller_than_round_to_nearest_on_correlated_inputs():
    rng = numpy.random.default_rng(3)
    for _ in range(3):
        x = correlated(rng, 300, 37)
        w = rng.standard_normal((37, 11)).astype(numpy.float32)
        damped = gptq.damped_hessian(2 / 300 * x.T @ x, 0.01)
        errors = {}
        for name, feedback, cholesky in [("rtn", numpy.eye(37, dtype=numpy.float32), False),
                                         ("keras", gptq.inverse_hessian(damped), False),
                                         ("reference", gptq.inverse_hessian(damped, "float64"), True)]:
            result = gptq.gptq_quantize_matrix(w.T, feedback, blocksize=16, group_size=8,
                                               compute_scale_zero=scale_zero(3, 8), cholesky=cholesky)
            errors[name] = numpy.sum((x @ w - x @ dequantize(*result).T) ** 2)
        assert errors["reference"] < errors["keras"] < errors["rtn"], errors
        assert errors["reference"] < 0.5 * errors["rtn"], errors


def test_identity_feedback_is_round_to_nearest_in_groups():
    rng = numpy.random.default_rng(4)
    w = rng.standard_normal((6, 10)).astype(numpy.float32)
    levels, scale, zero, g_idx = gptq.gptq_quantize_matrix(w, numpy.eye(10, dtype=numpy.float32), blocksize=4,
                                                           group_size=4, compute_scale_zero=scale_zero(4, 4))
    for g in range(3):
        s, z, maxq = row_params(w[:, 4 * g:4 * g + 4].astype(numpy.float64), 4)
        numpy.testing.assert_allclose(scale[:, g], s, rtol=1e-6)
        numpy.testing.assert_array_equal(zero[:, g], z)
        numpy.testing.assert_array_equal(levels[:, 4 * g:4 * g + 4],
                                         numpy.clip(numpy.round(w[:, 4 * g:4 * g + 4] / s[:, None] + z[:, None]),
                                                    0, maxq))
    numpy.testing.assert_allclose(g_idx, numpy.arange(10) / 4)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("per_channel, group_size", [(True, -1), (True, 4), (False, -1), (False, 4)])
def test_quantization_parameters(symmetric, per_channel, group_size):
    rng = numpy.random.default_rng(5)
    w = rng.standard_normal((5, 11)).astype(numpy.float32)
    w[2] = 0.5      # a constant row
    scale, zero, maxq = gptq.compute_quantization_parameters(w, bits=3, symmetric=symmetric,
                                                             per_channel=per_channel, group_size=group_size)
    assert maxq == 7 and zero.dtype == numpy.uint8
    if per_channel and group_size > 0:
        padded = numpy.pad(w, [(0, 0), (0, 1)])
        pieces = [row_params(padded[:, i:i + 4], 3, symmetric) for i in range(0, 12, 4)]
        expected_scale = numpy.stack([p[0] for p in pieces], axis=1)
        expected_zero = numpy.stack([p[1] for p in pieces], axis=1)
    elif per_channel:
        expected_scale, expected_zero = (v[:, None] for v in row_params(w, 3, symmetric)[:2])
    else:
        s, z, _ = row_params(w.reshape(1, -1), 3, symmetric)
        expected_scale, expected_zero = numpy.full((5, 1), s[0]), numpy.full((5, 1), z[0])
    numpy.testing.assert_allclose(scale, expected_scale, rtol=1e-6)
    numpy.testing.assert_array_equal(zero, expected_zero.astype(numpy.uint8))


def test_hessian_is_the_running_mean_of_the_streamed_inputs():
    rng = numpy.random.default_rng(6)
    dense = layers.Dense(4)
    dense.build((None, 9))
    dense.quantize("gptq", config=GPTQConfig(None, None, group_size=-1))
    state = gptq.GPTQ(dense, GPTQConfig(None, None))
    chunks = [rng.standard_normal((2, 3, 9)).astype(numpy.float32), rng.standard_normal((5, 9)).astype("float32")]
    for chunk in chunks:
        state.update_hessian_with_batch(chunk)
    x = numpy.concatenate([c.reshape(-1, 9) for c in chunks]).astype(numpy.float64)
    assert state.num_samples == 11
    numpy.testing.assert_allclose(state.hessian, 2 / 11 * x.T @ x, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"Hessian dimensions \(9\) do not match input features \(8\)"):
        state.update_hessian_with_batch(numpy.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match="rank >= 2"):
        state.update_hessian_with_batch(numpy.zeros(9, "float32"))


# ---------------------------------------------------------------- config and policy
def test_config_arguments_round_trip_and_refusals():
    config = GPTQConfig(["text"], str.split, weight_bits=3, num_samples=7, per_channel=False, sequence_length=5,
                        hessian_damping=0.1, group_size=-1, symmetric=True, activation_order=True)
    assert config.mode == "gptq" and config.dtype_policy_string() == "gptq/3/-1"
    assert config.get_config() == {
        "dataset": None, "tokenizer": None, "weight_bits": 3, "num_samples": 7, "per_channel": False,
        "sequence_length": 5, "hessian_damping": 0.1, "group_size": -1, "symmetric": True, "activation_order": True,
        "quantization_layer_structure": None}
    again = gpu_dl.quantizers.deserialize(gpu_dl.quantizers.serialize(config))
    assert isinstance(again, GPTQConfig) and again.get_config() == config.get_config()
    defaults = GPTQConfig(None, None).get_config()
    assert (defaults["weight_bits"], defaults["num_samples"], defaults["per_channel"], defaults["sequence_length"],
            defaults["hessian_damping"], defaults["group_size"], defaults["symmetric"],
            defaults["activation_order"]) == (4, 128, True, 512, 0.01, 128, False, False)
    for kwargs, message in [({"weight_bits": 5}, "Unsupported weight_bits 5"),
                            ({"num_samples": 0}, "num_samples must be a positive integer"),
                            ({"sequence_length": -1}, "sequence_length must be a positive integer"),
                            ({"hessian_damping": 1.5}, "hessian_damping must be between 0 and 1"),
                            ({"group_size": 0}, "Invalid group_size"), ({"group_size": -2}, "Invalid group_size")]:
        with pytest.raises(ValueError, match=message):
            GPTQConfig(None, None, **kwargs)


def test_policy_name_config_and_refusals():
    policy = gpu_dl.dtype_policies.get("gptq/4/128_from_float32")
    assert isinstance(policy, GPTQDTypePolicy) and policy.name == "gptq/4/128_from_float32"
    assert (policy.quantization_mode, policy.weight_bits, policy.group_size) == ("gptq", 4, 128)
    assert policy.compute_dtype == policy.variable_dtype == "float32"
    assert policy.get_config() == {"mode": "gptq/4/128", "source_name": "float32"}
    serialized = gpu_dl.dtype_policies.serialize(policy)
    assert serialized["class_name"] == "GPTQDTypePolicy"
    assert gpu_dl.dtype_policies.deserialize(serialized) == policy
    assert policy != GPTQDTypePolicy("gptq/8/128", "float32")
    for mode, message in [("gptq/4", "Expected format 'gptq/<weight_bits>/<group_size>'"),
                          ("gptq/four/8", "must be integers"), ("gptq/5/8", "Invalid weight_bits"),
                          ("gptq/4/0", "Invalid group_size")]:
        with pytest.raises(ValueError, match=message):
            GPTQDTypePolicy(mode, "float32")


# ---------------------------------------------------------------- the model pass
V, S, D, H, O = 23, 9, 12, 37, 5


def ids_tokenizer(x):
    return numpy.asarray(x, dtype=numpy.int64).reshape(1, -1)


ids_tokenizer.tokenize = ids_tokenizer


def token_model(rng, lib=gpu_dl):
    """Token ids -> Embedding -> Dense(relu) -> Dense, built with ``lib`` (gpu_dl or Keras), its weights drawn from
    ``rng`` (None: as made)."""
    inputs = lib.Input((S,), dtype="int32")
    embedding = lib.layers.Embedding(V, D, name="emb")
    first, second = lib.layers.Dense(H, activation="relu", name="d1"), lib.layers.Dense(O, name="d2")
    model = lib.Model(inputs, second(first(embedding(inputs))))
    if rng is not None:
        model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model, embedding, first, second


def calibration_config(embedding, blocks, **kwargs):
    rng = numpy.random.default_rng(11)
    dataset = [rng.integers(0, V, size=(1, S)) for _ in range(6)]
    settings = dict(weight_bits=4, num_samples=4, sequence_length=7, group_size=8,
                    quantization_layer_structure={"pre_block_layers": [embedding], "sequential_blocks": blocks})
    return GPTQConfig(dataset, ids_tokenizer, **{**settings, **kwargs})


def expected_layer(kernel, inputs, config):
    """A float kernel's quantization from the layer's inputs, with the algorithm's parts checked above."""
    x = inputs.reshape(-1, inputs.shape[-1]).astype(numpy.float32)
    hessian = gptq.damped_hessian(2 / len(x) * x.T @ x, 0.01)
    levels, scale, zero, g_idx = gptq.gptq_quantize_matrix(
        kernel.T, gptq.inverse_hessian(hessian, "float64"), group_size=config.group_size,
        blocksize=gptq.layer_blocksize(config.group_size, x.shape[1]), cholesky=True,
        activation_order=config.activation_order, order_metric=numpy.diagonal(hessian),
        compute_scale_zero=scale_zero(config.weight_bits, config.group_size))
    return dequantize(levels, scale, zero, g_idx).T


def test_model_pass_quantizes_dense_blocks_from_their_inputs(xp):
    rng = numpy.random.default_rng(0)
    model, embedding, first, second = token_model(rng)
    config = calibration_config(embedding, [first, second])
    samples = quantization_calibration.get_dataloader(ids_tokenizer, 7, config.dataset, 4)
    first_inputs = numpy.concatenate([to_numpy(embedding(s)) for s in samples])
    first_expected = expected_layer(to_numpy(first.kernel.value), first_inputs, config)
    second_kernel = to_numpy(second.kernel.value).copy()
    model.quantize("gptq", config=config)
    # the second block saw the first's outputs after its quantization
    second_inputs = numpy.maximum(first_inputs @ first_expected + to_numpy(first.bias.value), 0)
    second_expected = expected_layer(second_kernel, second_inputs, config)
    for dense, expected, rows, units in [(first, first_expected, D, H), (second, second_expected, H, O)]:
        assert dense.dtype_policy == GPTQDTypePolicy("gptq/4/8", "float32") and dense.is_gptq_calibrated
        assert "call" not in vars(dense)        # the calibration's hooks are gone
        assert [(w.path, numpy.dtype(w.dtype).name, w.shape, w.trainable) for w in dense.weights] == [
            (f"{dense.name}/bias", "float32", (units,), True),
            (f"{dense.name}/kernel", "uint8", ((units + 1) // 2, rows), False),
            (f"{dense.name}/kernel_scale", "float32", (units, -(-rows // 8)), False),
            (f"{dense.name}/kernel_zero", "uint8", (units, -(-rows // 8)), False),
            (f"{dense.name}/g_idx", "float32", (rows,), False)]
        numpy.testing.assert_allclose(to_numpy(gptq.dequantized_kernel(dense, "float64")), expected, rtol=1e-4,
                                      atol=1e-5)
    x = rng.integers(0, V, size=(3, S))
    hidden = numpy.maximum(to_numpy(embedding(x)) @ first_expected + to_numpy(first.bias.value), 0)
    numpy.testing.assert_allclose(model.predict(xp.asarray(x), verbose=0),
                                  hidden @ second_expected + to_numpy(second.bias.value), rtol=1e-4, atol=1e-4)


def test_inputs_gradient_through_the_dequantized_kernel(xp):
    rng = numpy.random.default_rng(1)
    dense = layers.Dense(5, activation="tanh", dtype="gptq/8/4_from_float32")
    dense.build((None, 7))
    # calibrated values, as a weights file gives them
    gptq.install_gptq(dense, rng.integers(0, 256, size=(5, 7)), rng.uniform(0.01, 0.02, size=(5, 2)),
                      rng.integers(100, 150, size=(5, 2)), numpy.arange(7) / 4)
    kernel = to_numpy(gptq.dequantized_kernel(dense, "float64"))
    x = rng.standard_normal((3, 7))
    dense.input_gradient_wanted = True
    y = dense(xp.asarray(x.astype("float32")), training=True)
    numpy.testing.assert_allclose(to_numpy(y), numpy.tanh(x @ kernel + to_numpy(dense.bias.value)), rtol=1e-5,
                                  atol=1e-6)
    dy = rng.standard_normal((3, 5))
    dx = to_numpy(dense.backward(xp.asarray(dy.astype("float32"))))
    direction, eps = rng.standard_normal(x.shape), 1e-6

    def loss(inputs):
        return numpy.sum(numpy.tanh(inputs @ kernel + to_numpy(dense.bias.value)) * dy)
    numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
    numpy.testing.assert_allclose(numpy.sum(dx * direction), numeric, rtol=1e-4)


def test_composite_block_layers_see_their_inputs():
    class Block(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.up, self.down = layers.Dense(H, activation="relu"), layers.Dense(D)

        def call(self, x):
            return x + self.down(self.up(x))

    rng = numpy.random.default_rng(2)
    inputs = gpu_dl.Input((S,), dtype="int32")
    embedding, block = layers.Embedding(V, D), Block()
    model = gpu_dl.Model(inputs, block(embedding(inputs)))
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    config = calibration_config(embedding, [block], group_size=-1, weight_bits=8)
    samples = quantization_calibration.get_dataloader(ids_tokenizer, 7, config.dataset, 4)
    up_inputs = numpy.concatenate([to_numpy(embedding(s)) for s in samples])
    up_expected = expected_layer(to_numpy(block.up.kernel.value), up_inputs, config)
    down_expected = expected_layer(to_numpy(block.down.kernel.value), numpy.maximum(
        up_inputs @ to_numpy(block.up.kernel.value) + to_numpy(block.up.bias.value), 0), config)
    model.quantize("gptq", config=config)
    # both layers of the block were calibrated in one pass over the block, on its float computations
    numpy.testing.assert_allclose(to_numpy(gptq.dequantized_kernel(block.up, "float64")), up_expected, rtol=1e-4,
                                  atol=1e-5)
    numpy.testing.assert_allclose(to_numpy(gptq.dequantized_kernel(block.down, "float64")), down_expected, rtol=1e-4,
                                  atol=1e-5)


def test_strings_go_through_the_tokenizer_and_filters_pick_layers():
    rng = numpy.random.default_rng(3)
    model, embedding, first, second = token_model(rng)

    class Chars:
        def tokenize(self, text):
            return numpy.array([ord(c) % V for c in text])
    config = GPTQConfig(["a quick brown fox", "jumps over"], Chars(), num_samples=3, sequence_length=6,
                        group_size=-1, quantization_layer_structure={"pre_block_layers": [embedding],
                                                                     "sequential_blocks": [first, second]})
    samples = quantization_calibration.get_dataloader(Chars(), 6, config.dataset, 3)
    assert samples.shape == (3, 1, 6) and samples.dtype == numpy.int32
    assert set(samples.ravel()) <= {ord(c) % V for c in "a quick brown foxjumps over"}
    kernel = to_numpy(second.kernel.value).copy()
    model.quantize("gptq", config=config, filters="d1")
    assert first.is_gptq_calibrated and second.dtype_policy.quantization_mode is None
    numpy.testing.assert_array_equal(to_numpy(second.kernel.value), kernel)


def test_saving_and_loading(tmp_path):
    rng = numpy.random.default_rng(4)
    model, embedding, first, second = token_model(rng)
    model.quantize("gptq", config=calibration_config(embedding, [first, second], activation_order=True))
    x = rng.integers(0, V, size=(3, S))
    y = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), y)
    assert loaded.layers[2].dtype_policy == GPTQDTypePolicy("gptq/4/8", "float32")
    assert loaded.layers[2].quantization_config.get_config()["quantization_layer_structure"] is None
    model.save_weights(tmp_path / "m.weights.h5")
    # the layers made with the policy, as a model file's config makes them
    inputs = gpu_dl.Input((S,), dtype="int32")
    policy = "gptq/4/8_from_float32"
    hidden = layers.Dense(H, activation="relu", dtype=policy)(layers.Embedding(V, D)(inputs))
    other = gpu_dl.Model(inputs, layers.Dense(O, dtype=policy)(hidden))
    other.load_weights(tmp_path / "m.weights.h5")
    numpy.testing.assert_array_equal(other.predict(x, verbose=0), y)


def test_refusals():
    rng = numpy.random.default_rng(5)
    model, embedding, first, second = token_model(rng)
    with pytest.raises(ValueError, match="For GPTQ, you must pass a `GPTQConfig` object"):
        model.quantize("gptq")
    with pytest.raises(ValueError, match="requires a valid `config` argument of type `GPTQConfig`"):
        class Other(gpu_dl.quantizers.QuantizationConfig):
            mode = "gptq"
        model.quantize(config=Other())
    with pytest.raises(ValueError, match="For mode='gptq', a valid quantization structure must be provided"):
        model.quantize("gptq", config=GPTQConfig([[1, 2]], ids_tokenizer))
    with pytest.raises(ValueError, match="requires a dataset and a tokenizer"):
        model.quantize("gptq", config=GPTQConfig(None, None, quantization_layer_structure={
            "pre_block_layers": [embedding], "sequential_blocks": [first]}))
    with pytest.raises(ValueError, match="No sequential blocks found"):
        model.quantize("gptq", config=GPTQConfig([[1]], ids_tokenizer, quantization_layer_structure={
            "pre_block_layers": [embedding], "sequential_blocks": []}))
    # none of the refusals above changed a layer
    assert all(layer.dtype_policy.quantization_mode is None for layer in model.layers)
    with pytest.raises(TypeError, match="must be an iterable"):
        quantization_calibration.get_dataloader(ids_tokenizer, 4, "text", 2)
    with pytest.raises(ValueError, match="Provided dataset is empty"):
        quantization_calibration.get_dataloader(ids_tokenizer, 4, [], 2)
    with pytest.raises(ValueError, match="needs a `tokenizer` with a `tokenize` method"):
        quantization_calibration.get_dataloader(None, 4, ["text"], 2)
    einsum = layers.EinsumDense("abc,cdef->abdef", output_shape=(5, 2, 3, 4))
    einsum.build((None, 5, 6))
    with pytest.raises(TypeError, match=r"Unsupported layer type for GPTQ: EinsumDense with a kernel of shape "
                                        r"\(6, 2, 3, 4\)"):
        einsum.quantize("gptq", config=GPTQConfig(None, None))
    # a layer GPTQ does not quantize refuses as Keras's (which Model.quantize turns into a warning)
    with pytest.raises(NotImplementedError, match="Received: quantization_mode=gptq"):
        embedding.quantize("gptq", config=GPTQConfig(None, None))
    assert embedding.dtype_policy.quantization_mode is None


@pytest.mark.parametrize("equation, output_shape, bias_axes, token_shape", [
    ("abc,cd->abd", (S, 9), "d", (11,)), ("abc,cde->abde", (S, 3, 4), "de", (11,)),
    ("abcd,cde->abe", (S, 11), "e", (3, 4))])
def test_einsum_dense_block(xp, equation, output_shape, bias_axes, token_shape):
    """A 2-D kernel, a 3-D one whose input axis is the largest (Keras's (in, heads * head_dim) view) and one whose
    output axis is ((heads * head_dim, out))."""
    rng = numpy.random.default_rng(6)
    inputs = gpu_dl.Input((S,), dtype="int32")
    embedding = layers.Embedding(V, int(numpy.prod(token_shape)))
    einsum = layers.EinsumDense(equation, output_shape, bias_axes=bias_axes)
    reshape = layers.Reshape((-1,) + token_shape)
    model = gpu_dl.Model(inputs, einsum(reshape(embedding(inputs))))
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    kernel = to_numpy(einsum.kernel.value).copy()
    rows, columns = gptq.gptq_kernel_shape(einsum)
    config = calibration_config(embedding, [einsum], group_size=4, activation_order=True, sequence_length=S)
    config.quantization_layer_structure["pre_block_layers"].append(reshape)
    samples = quantization_calibration.get_dataloader(ids_tokenizer, S, config.dataset, 4)
    seen = numpy.concatenate([to_numpy(embedding(s)).reshape(-1, rows) for s in samples])
    expected = expected_layer(kernel.reshape(rows, columns), seen, config).reshape(kernel.shape)
    model.quantize("gptq", config=config)
    zero_shape = (columns, -(-rows // 4))
    assert [(w.name, numpy.dtype(w.dtype).name, w.shape) for w in einsum.weights] == [
        ("bias", "float32", einsum.bias.shape), ("kernel", "uint8", ((columns + 1) // 2, rows)),
        ("kernel_scale", "float32", zero_shape), ("zero_point", "uint8", zero_shape), ("g_idx", "float32", (rows,))]
    assert einsum.get_config()["gptq_unpacked_column_size"] == columns
    x = rng.standard_normal((3, S) + token_shape).astype(numpy.float32)
    einsum.input_gradient_wanted = True
    y = einsum(xp.asarray(x), training=True)
    plan = einsum._plan(x.shape)
    spec = f"{plan.input_spec},{plan.weight_spec}->{plan.output_spec}"
    numpy.testing.assert_allclose(to_numpy(y), numpy.einsum(spec, x, expected) + to_numpy(einsum.bias.value),
                                  rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape)
    dx = to_numpy(einsum.backward(xp.asarray(dy.astype("float32"))))
    direction, eps = rng.standard_normal(x.shape), 1e-6

    def loss(value):
        return numpy.sum(numpy.einsum(spec, value, expected) * dy)
    numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
    numpy.testing.assert_allclose(numpy.sum(dx * direction), numeric, rtol=1e-4)
    # a layer made from the config (as a model file loads it) has the same variables
    again = layers.EinsumDense.from_config(einsum.get_config())
    again.build((None, S) + token_shape)
    assert [(w.name, w.shape) for w in again.weights] == [(w.name, w.shape) for w in einsum.weights]
