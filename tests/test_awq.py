"""AWQ (gpu_dl/awq.py, layers/awq_weights.py, quantization_calibration.py): the config and policy, the algorithm
against a plain NumPy transcription of it, its error against plain round-to-nearest where a few input channels carry
large activations, the calibration of a model's Dense layers, the quantized forward, and saving and loading."""
import h5py
import numpy
import pytest

import gpu_dl
from gpu_dl import awq, layers
from gpu_dl.quantization_calibration import get_dataloader as calibration_windows
from gpu_dl.dtype_policies import AWQDTypePolicy
from gpu_dl.quantizers import AWQConfig


# ------------------------------------------------------------------ a plain transcription of the algorithm
def plain_round_to_nearest(w, groups, padded):
    """4-bit asymmetric quantization of w [out, in] per row and group: (values, scale, zero)."""
    count = groups.max() + 1
    low = numpy.stack([w[:, groups == g].min(axis=1) for g in range(count)], axis=1)
    high = numpy.stack([w[:, groups == g].max(axis=1) for g in range(count)], axis=1)
    if padded:      # the last, partial group is padded with zeros
        low[:, -1], high[:, -1] = numpy.minimum(low[:, -1], 0), numpy.maximum(high[:, -1], 0)
    flat = low == high
    low[flat] -= 1
    high[flat] += 1
    scale = (high - low) / numpy.float32(15)
    scale[scale <= 0] = 1e-8
    zero = numpy.mod(numpy.round(-low / scale), 256)
    values = numpy.clip(numpy.round(w / scale[:, groups] + zero[:, groups]), 0, 15)
    return values, scale, zero


def plain_awq(w, magnitudes, grid, group_size):
    w = w.astype(numpy.float32)
    n = w.shape[1]
    groups = numpy.arange(n) // group_size if group_size > 0 else numpy.zeros(n, dtype=int)
    padded = group_size > 0 and n % group_size != 0 and n > group_size
    x = numpy.where(magnitudes < 1e-8, 1, magnitudes).astype(numpy.float32)
    best = None
    for i in range(grid + 1):
        s = numpy.ones_like(x) if i == 0 else numpy.maximum(x ** numpy.float32(i / grid), numpy.float32(1e-4))
        s = s / numpy.sqrt(s.max() * s.min())
        values, scale, zero = plain_round_to_nearest(w * s, groups, padded)
        restored = (values - zero[:, groups]) * scale[:, groups] / s
        loss = numpy.mean((w - restored) ** 2 * x ** 2)
        if best is None or loss < best[0]:
            best = (loss, s)
    values, scale, zero = plain_round_to_nearest(w * best[1], groups, padded)
    return values, scale, zero, best[1], groups


SHAPES = [(7, 13, 4, 20), (5, 9, -1, 7), (3, 17, 17, 5), (1, 33, 8, 10), (6, 5, 8, 3), (4, 3, 1, 4)]


@pytest.mark.parametrize("out_features, in_features, group_size, grid", SHAPES)
def test_algorithm_matches_a_plain_transcription(xp, out_features, in_features, group_size, grid):
    rng = numpy.random.default_rng(out_features * 100 + in_features)
    w = rng.normal(size=(out_features, in_features)).astype("float32")
    magnitudes = numpy.abs(rng.normal(size=in_features)).astype("float32")
    magnitudes[rng.integers(0, in_features, 2)] *= 40
    magnitudes[0] = 0       # a channel that stayed silent counts as 1
    values, scale, zero, awq_scales, g_idx = (numpy.asarray(gpu_dl.backend.to_numpy(a)) for a in
                                              awq.quantize_matrix(xp.asarray(w), xp.asarray(magnitudes), grid,
                                                                  group_size))
    e_values, e_scale, e_zero, e_scales, e_groups = plain_awq(w, magnitudes, grid, group_size)
    assert values.dtype == numpy.uint8 and zero.dtype == numpy.uint8
    assert scale.dtype == awq_scales.dtype == g_idx.dtype == numpy.float32
    groups = 1 if group_size == -1 else -(-in_features // group_size)
    assert scale.shape == zero.shape == (out_features, groups)
    numpy.testing.assert_allclose(awq_scales, e_scales, rtol=1e-6)
    numpy.testing.assert_array_equal(values, e_values)
    numpy.testing.assert_array_equal(zero, e_zero)
    numpy.testing.assert_allclose(scale, e_scale, rtol=1e-6)
    numpy.testing.assert_array_equal(g_idx, e_groups)


def test_awq_error_is_below_round_to_nearest_with_large_activation_channels(xp):
    rng = numpy.random.default_rng(5)
    x = rng.normal(size=(256, 64)).astype("float32")
    x[:, [3, 20, 41]] *= 30         # a few channels with large activations
    w = rng.normal(size=(24, 64)).astype("float32")
    magnitudes = numpy.abs(x).max(axis=0)
    reference = x @ w.T

    def output_error(magnitudes):
        values, scale, zero, awq_scales, g_idx = awq.quantize_matrix(xp.asarray(w), xp.asarray(magnitudes), 20, 16)
        restored = gpu_dl.backend.to_numpy(awq.dequantize(values, scale, zero, g_idx) / awq_scales)
        return numpy.linalg.norm(x @ restored.T - reference)

    awq_error = output_error(magnitudes)
    # with every channel alike the search keeps the scales at 1: plain round-to-nearest in groups
    rtn_error = output_error(numpy.ones(64, dtype="float32"))
    values, scale, zero = plain_round_to_nearest(w, numpy.arange(64) // 16, False)
    plain = (values - zero[:, numpy.arange(64) // 16]) * scale[:, numpy.arange(64) // 16]
    assert rtn_error == pytest.approx(numpy.linalg.norm(x @ plain.T - reference), rel=1e-5)
    assert awq_error < 0.8 * rtn_error


# ------------------------------------------------------------------ config and policy
def test_config_defaults_validation_and_round_trip():
    config = AWQConfig(dataset=None, tokenizer=None)
    assert (config.weight_bits, config.num_samples, config.sequence_length, config.group_size,
            config.num_grid_points, config.quantization_layer_structure, config.mode) == \
        (4, 128, 512, 128, 20, None, "awq")
    assert config.dtype_policy_string() == "awq/4/128"
    custom = AWQConfig([[1, 2]], str, num_samples=3, sequence_length=7, group_size=-1, num_grid_points=5)
    again = gpu_dl.quantizers.deserialize(gpu_dl.quantizers.serialize(custom))
    assert isinstance(again, AWQConfig)
    assert again.get_config() == {"dataset": None, "tokenizer": None, "weight_bits": 4, "num_samples": 3,
                                  "sequence_length": 7, "group_size": -1, "num_grid_points": 5,
                                  "quantization_layer_structure": None}
    for kwargs, message in [({"weight_bits": 8}, "only supports 4-bit"), ({"num_samples": 0}, "num_samples must be"),
                            ({"sequence_length": -2}, "sequence_length must be"),
                            ({"group_size": 0}, "Invalid group_size"), ({"group_size": -3}, "Invalid group_size"),
                            ({"num_grid_points": 0}, "num_grid_points must be"),
                            ({"num_samples": 2.5}, "num_samples must be"),
                            ({"quantization_layer_structure": [1]}, "quantization_layer_structure must be")]:
        with pytest.raises(ValueError, match=message):
            AWQConfig(None, None, **kwargs)


def test_awq_policy():
    policy = gpu_dl.dtype_policies.get("awq/4/64_from_float32")
    assert isinstance(policy, AWQDTypePolicy)
    assert (policy.name, policy.quantization_mode, policy.weight_bits, policy.group_size, policy.compute_dtype,
            policy.variable_dtype) == ("awq/4/64_from_float32", "awq", 4, 64, "float32", "float32")
    serialized = gpu_dl.dtype_policies.serialize(policy)
    assert serialized["class_name"] == "AWQDTypePolicy"
    assert serialized["config"] == {"mode": "awq/4/64", "source_name": "float32"}
    assert gpu_dl.dtype_policies.deserialize(serialized) == policy
    assert policy != AWQDTypePolicy("awq/4/-1", "float32")
    for mode, message in [("awq/4", "Expected format"), ("awq/x/4", "must be integers"),
                          ("awq/8/4", "only supports 4-bit"), ("awq/4/0", "Invalid group_size")]:
        with pytest.raises(ValueError, match=message):
            AWQDTypePolicy(mode, "float32")


# ------------------------------------------------------------------ models
SEQ, VOCAB, WIDTH = 8, 20, 7


def token_model(head_in_block=True):
    rng = numpy.random.default_rng(3)
    model = gpu_dl.Sequential([layers.Input((SEQ,), dtype="int32"), layers.Embedding(VOCAB, WIDTH),
                               layers.Dense(11, activation="relu"), layers.Dense(5)])
    weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    weights[0][:, [1, 4]] *= 25       # two embedding channels with large activations
    model.set_weights(weights)
    blocks = model.layers[1:] if head_in_block else model.layers[1:2]
    return model, {"pre_block_layers": [model.layers[0]], "sequential_blocks": blocks}


def token_data():
    return [numpy.random.default_rng(4).integers(0, VOCAB, size=(53,))]


def awq_config(structure, **kwargs):
    return AWQConfig(token_data(), str, num_samples=5, sequence_length=SEQ, group_size=3, num_grid_points=6,
                     quantization_layer_structure=structure, **kwargs)


@pytest.mark.filterwarnings("ignore:Invalid quantization mode")      # the Embedding is skipped, as in Keras
def test_model_quantize_calibrates_dense_layers(xp):
    model, structure = token_model()
    table, k1, b1, k2, b2 = model.get_weights()
    model.quantize("awq", config=awq_config(structure))
    assert [layer.dtype_policy.name for layer in model.layers] == ["float32"] + ["awq/4/3_from_float32"] * 2
    windows = calibration_windows(str, SEQ, token_data(), 5)
    assert windows.shape == (5, 1, SEQ) and windows.dtype == numpy.int32
    embedded = table[windows[:, 0]]
    dense, head = model.layers[1:]
    assert "call" not in vars(dense) and "call" not in vars(head)       # the recording hooks are gone
    expected = awq.quantize_matrix(k1.T, numpy.abs(embedded).max(axis=(0, 1)), 6, 3)
    for var, value in zip((dense.kernel_scale, dense.kernel_zero, dense.awq_scales, dense.g_idx), expected[1:]):
        numpy.testing.assert_array_equal(var.numpy(), value)
    assert dense.kernel is dense.quantized_kernel and dense.kernel.shape == (6, WIDTH)
    numpy.testing.assert_array_equal(gpu_dl.quantizers.unpack_int4(dense.kernel.numpy(), 11, dtype="uint8"),
                                     expected[0])
    # the next block is calibrated on the outputs of the quantized first one
    k1_restored = awq.dequantized_kernel(dense.kernel.numpy(), *expected[1:], 11, "float32")
    hidden = numpy.maximum(embedded @ k1_restored + b1, 0)
    expected_head = awq.quantize_matrix(k2.T, numpy.abs(hidden).max(axis=(0, 1)), 6, 3)
    numpy.testing.assert_array_equal(head.awq_scales.numpy(), expected_head[3])
    k2_restored = awq.dequantized_kernel(head.kernel.numpy(), *expected_head[1:], 5, "float32")
    tokens = numpy.random.default_rng(9).integers(0, VOCAB, size=(3, SEQ))
    out = model.predict(tokens, verbose=0)
    expected_out = numpy.maximum(table[tokens] @ k1_restored + b1, 0) @ k2_restored + b2
    numpy.testing.assert_allclose(out, expected_out, rtol=1e-5, atol=1e-5)
    # Keras's order: the bias the float layer had, then the AWQ variables
    assert [w.dtype for w in model.get_weights()][1:7] == ["float32", "uint8", "float32", "uint8", "float32",
                                                          "float32"]


@pytest.mark.filterwarnings("ignore:Invalid quantization mode")
def test_a_layer_outside_the_blocks_keeps_computing_in_float():
    model, structure = token_model(head_in_block=False)
    float_head = model.layers[2].kernel.numpy()
    model.quantize("awq", config=awq_config(structure))
    head = model.layers[2]
    assert head.dtype_policy.name == "awq/4/3_from_float32" and head.is_awq_calibrated is False
    x = numpy.random.default_rng(1).normal(size=(2, 11)).astype("float32")
    numpy.testing.assert_allclose(head(x), x @ float_head + head.bias.numpy(), rtol=1e-6)


def test_quantize_refusals():
    model, structure = token_model()
    with pytest.raises(ValueError, match="For AWQ, you must pass an `AWQConfig`"):
        model.quantize("awq")
    with pytest.raises(ValueError, match="requires a dataset and tokenizer"):
        model.quantize("awq", config=AWQConfig(token_data(), None, quantization_layer_structure=structure))
    with pytest.raises(ValueError, match="a valid quantization structure must be provided"):
        model.quantize("awq", config=AWQConfig(token_data(), str))
    with pytest.raises(ValueError, match="No sequential blocks"):
        model.quantize("awq", config=awq_config({"pre_block_layers": [], "sequential_blocks": []}))
    with pytest.raises(ValueError, match="must be a dict with the keys"):
        model.quantize("awq", config=awq_config({"sequential_blocks": model.layers[1]}))
    with pytest.raises(ValueError, match="Contradictory arguments"):
        model.quantize("int8", config=awq_config(structure))
    class NotAWQ(gpu_dl.quantizers.QuantizationConfig):
        mode = "awq"

    with pytest.raises(ValueError, match="Mode 'awq' requires a valid `config` argument of type `AWQConfig`"):
        model.layers[1].quantize(config=NotAWQ())
    with pytest.raises(TypeError, match="must be an iterable"):
        model.quantize("awq", config=AWQConfig("text", str, quantization_layer_structure=structure))
    # nothing changed on the way
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)


@pytest.mark.filterwarnings("ignore:Invalid quantization mode")
def test_quantized_model_saves_and_loads(tmp_path):
    model, structure = token_model()
    model.quantize("awq", config=awq_config(structure))
    tokens = numpy.random.default_rng(2).integers(0, VOCAB, size=(4, SEQ))
    expected = model.predict(tokens, verbose=0)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    loaded = gpu_dl.models.load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict(tokens, verbose=0), expected)
    assert isinstance(loaded.layers[1].dtype_policy, AWQDTypePolicy)
    assert isinstance(loaded.layers[1].quantization_config, AWQConfig)
    fresh = gpu_dl.Sequential([layers.Input((SEQ,), dtype="int32"), layers.Embedding(VOCAB, WIDTH),
                               layers.Dense(11, activation="relu", dtype="awq/4/3_from_float32"),
                               layers.Dense(5, dtype="awq/4/3_from_float32")])
    fresh.load_weights(tmp_path / "m.weights.h5")
    numpy.testing.assert_array_equal(fresh.predict(tokens, verbose=0), expected)
    with h5py.File(tmp_path / "m.weights.h5") as f:
        group = f["layers/dense/vars"]
        assert sorted(group) == ["0", "1", "2", "3", "4", "5"]
        assert [(group[k].shape, group[k].dtype.name) for k in "012345"] == [
            ((11,), "float32"), ((6, WIDTH), "uint8"), ((11, 3), "float32"), ((11, 3), "uint8"), ((WIDTH,), "float32"),
            ((WIDTH,), "float32")]


def einsum_model(lib, dtype=None, embedding=False):
    policy = {} if dtype is None else {"dtype": dtype}
    front = [lib.layers.Input((SEQ,), dtype="int32"), lib.layers.Embedding(VOCAB, 8)] if embedding else \
        [lib.layers.Input((5, 8))]
    return lib.Sequential(front + [
        lib.layers.EinsumDense("abc,cd->abd", (None, 6), bias_axes="d", activation="relu", **policy),
        lib.Sequential([     # a block of two: its outputs have the rank of its inputs, as the calibration needs
            lib.layers.EinsumDense("abc,cde->abde", (None, 3, 4), **policy),       # a projection: kernel (6, 3, 4)
            lib.layers.EinsumDense("abcd,cde->abe", (None, 7), bias_axes="e", **policy)])])  # an output: (3, 4, 7)


def test_einsum_dense_layers_are_calibrated(xp):
    model = einsum_model(gpu_dl)
    rng = numpy.random.default_rng(6)
    weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(weights)
    data = [rng.normal(size=(90,)).astype("float32") * 3]
    config = AWQConfig(data, str, num_samples=4, sequence_length=8, group_size=5, num_grid_points=4,
                       quantization_layer_structure={"pre_block_layers": [], "sequential_blocks": model.layers})
    model.quantize("awq", config=config)
    first, (projection, output) = model.layers[0], model.layers[1].layers
    assert [v.name for v in first.weights] == ["bias", "kernel", "kernel_scale", "zero_point", "awq_scales", "g_idx"]
    assert projection.kernel.shape == (6, 6) and projection.kernel_scale.shape == (12, 2)
    assert output.kernel.shape == (4, 12) and output.kernel_scale.shape == (7, 3)

    def quantized(layer, kernel, inputs):
        rows = layer.awq_scales.shape[0]
        values, scale, zero, awq_scales, g_idx = awq.quantize_matrix(
            kernel.reshape(rows, -1).T, numpy.abs(inputs.reshape(-1, rows)).max(axis=0), 4, 5)
        numpy.testing.assert_array_equal(layer.kernel_zero.numpy(), zero)
        # the einsum's inputs may differ from NumPy's by a rounding, and so the magnitudes
        numpy.testing.assert_allclose(layer.awq_scales.numpy(), awq_scales, rtol=1e-6)
        return (awq.dequantize(values, scale, zero, g_idx).T / awq_scales[:, None]).reshape(kernel.shape)

    # the calibration's inputs: the token windows (as floats), each (1, 8) taken as (1, 1, 8)
    x = calibration_windows(str, 8, data, 4).astype("float32")
    k1 = quantized(first, weights[0], x)
    # the next block's: the quantized first block's output for each window
    x = numpy.maximum(x @ k1 + weights[1], 0)
    k2 = quantized(projection, weights[2], x)
    # within a block, every layer is calibrated before any is quantized: the output layer sees the float projection
    k3 = quantized(output, weights[3], numpy.einsum("abc,cde->abde", x, weights[2]))
    inputs = rng.normal(size=(2, 5, 8)).astype("float32")
    h = numpy.einsum("abc,cde->abde", numpy.maximum(inputs @ k1 + weights[1], 0), k2)
    expected = numpy.einsum("abcd,cde->abe", h, k3) + weights[4]
    # outputs near 0 are differences of sums reaching ~1e3, each rounded in float32 in an order the BLAS
    # and einsum build choose (1e-4 apart between two x86 machines): the absolute tolerance follows that scale
    scale = numpy.abs(expected).max()
    numpy.testing.assert_allclose(model.predict(inputs, verbose=0), expected, rtol=1e-5, atol=1e-6 * scale)


def test_attention_is_skipped_with_a_warning():
    inputs = layers.Input((SEQ,), dtype="int32")
    embedded = layers.Embedding(VOCAB, 8)(inputs)
    attention = layers.MultiHeadAttention(2, 4)
    model = gpu_dl.Model(inputs, layers.Dense(3)(attention(embedded, embedded)))
    config = AWQConfig(token_data(), str, num_samples=3, sequence_length=SEQ, group_size=4,
                       quantization_layer_structure={"pre_block_layers": [model.layers[1]],
                                                     "sequential_blocks": [model.layers[-1]]})
    with pytest.warns(UserWarning, match="Received: quantization_mode=awq") as record:
        model.quantize("awq", config=config)
    assert len(record) == 2         # the Embedding and the attention
    assert attention.dtype_policy.name == "float32" and attention.get_weights()[0].dtype == numpy.float32
    assert model.layers[-1].dtype_policy.name == "awq/4/4_from_float32" and model.layers[-1].is_awq_calibrated


def test_calibration_windows_refusals():
    # a dataset shorter than the windows is tiled: each window is a run of the repeated ids
    windows = calibration_windows(str, 4, [numpy.arange(3)], 2)[:, 0]
    assert windows.shape == (2, 4)
    numpy.testing.assert_array_equal(windows, (windows[:, :1] + numpy.arange(4)) % 3)
    with pytest.raises(ValueError, match="needs a `tokenizer` with a `tokenize` method"):
        calibration_windows(str, 4, ["some text"], 2)
    with pytest.raises(ValueError, match="dataset` is empty"):
        calibration_windows(str, 4, [], 2)
    with pytest.raises(TypeError, match="must be an iterable"):
        calibration_windows(str, 4, 12, 2)


@pytest.mark.filterwarnings("ignore:Invalid quantization mode")
def test_quantized_dense_inputs_gradient_and_training(xp):
    model, structure = token_model()
    model.quantize("awq", config=awq_config(structure))
    layer = model.layers[1]
    rng = numpy.random.default_rng(7)
    x = rng.standard_normal((3, WIDTH)).astype("float32")
    dy = rng.standard_normal((3, 11)).astype("float32")
    layer.input_gradient_wanted = True
    y = gpu_dl.backend.to_numpy(layer(xp.asarray(x), training=True))
    dx = gpu_dl.backend.to_numpy(layer.backward(xp.asarray(dy)))
    dz = dy * (y > 0)
    restored = awq.dequantized_kernel(layer.kernel.numpy(), layer.kernel_scale.numpy(), layer.kernel_zero.numpy(),
                                      layer.awq_scales.numpy(), layer.g_idx.numpy(), 11, "float32")
    numpy.testing.assert_allclose(y, numpy.maximum(x @ restored + layer.bias.numpy(), 0), rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(dx, dz @ restored.T, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(layer.bias.grad), dz.sum(axis=0), rtol=1e-5, atol=1e-5)
    # training moves the biases (and the float embedding) alone
    frozen = [w.numpy().copy() for w in model.non_trainable_weights]
    biases = [w.numpy().copy() for w in model.layers[1].trainable_weights + model.layers[2].trainable_weights]
    model.compile(optimizer="adam", loss="mse")
    model.fit(rng.integers(0, VOCAB, (6, SEQ)), rng.standard_normal((6, SEQ, 5)).astype("float32"), epochs=2,
              verbose=0)
    assert [w.name for w in model.layers[1].trainable_weights] == ["bias"]
    assert all(numpy.array_equal(a, w.numpy()) for a, w in zip(frozen, model.non_trainable_weights))
    assert not any(numpy.array_equal(a, w.numpy()) for a, w in
                   zip(biases, model.layers[1].trainable_weights + model.layers[2].trainable_weights))


@pytest.mark.filterwarnings("ignore:Invalid quantization mode")
def test_filters_leave_layers_in_float():
    model, structure = token_model()
    head = model.layers[2]
    kernel = head.kernel.numpy().copy()
    model.quantize("awq", config=awq_config(structure), filters=lambda layer: layer is not head)
    assert model.layers[1].dtype_policy.name == "awq/4/3_from_float32" and model.layers[1].is_awq_calibrated
    assert head.dtype_policy.name == "float32"
    numpy.testing.assert_array_equal(head.kernel.numpy(), kernel)
