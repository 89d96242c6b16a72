"""int8 quantization of layers (``quantize("int8")``): the int8 weights and scales, the forward against a plain
NumPy expectation of Keras's int8 path on both backends, the inputs' gradient through the dequantized kernel,
training the other weights, the quantized policies, saving and loading, and the refusals."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.dtype_policies import DTypePolicy, QuantizedDTypePolicy


@pytest.fixture(autouse=True)
def fresh_session():
    gpu_dl.utils.clear_session(free_memory=False)      # the paths asserted carry numbered names
    yield
    gpu_dl.utils.clear_session(free_memory=False)


def quantize_rows(x):
    scale = numpy.float32(127) / (numpy.abs(x).max(axis=-1, keepdims=True) + numpy.float32(1e-7))
    return numpy.clip(numpy.round(x * scale), -127, 127), scale


def dense_model(activation=None, use_bias=True):
    return gpu_dl.Sequential([gpu_dl.Input((17,)), layers.Dense(33, activation="relu"),
                              layers.Dense(3, activation=activation, use_bias=use_bias)])


def test_dense_int8_weights_and_forward(xp):
    rng = numpy.random.default_rng(0)
    model = dense_model()
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    kernel, bias = (w.copy() for w in model.layers[0].get_weights())
    model.quantize("int8")
    dense = model.layers[0]
    assert [(w.path, w.dtype, w.shape, w.trainable) for w in dense.weights] == [
        ("sequential/dense/bias", "float32", (33,), True), ("sequential/dense/kernel", "int8", (17, 33), False),
        ("sequential/dense/kernel_scale", "float32", (33,), False)]
    assert dense.dtype_policy == QuantizedDTypePolicy("int8", "float32")
    assert (dense.dtype_policy.name, dense.compute_dtype, dense.variable_dtype) == \
        ("int8_from_float32", "float32", "float32")
    expected_scale = numpy.float32(127) / (numpy.abs(kernel).max(axis=0) + numpy.float32(1e-7))
    numpy.testing.assert_array_equal(dense.kernel_scale.numpy(), expected_scale)
    numpy.testing.assert_array_equal(dense.kernel.numpy(), numpy.round(kernel * expected_scale))

    x = rng.standard_normal((5, 17)).astype("float32")
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    y = to_numpy(dense(xp.asarray(x)))
    rows, row_scale = quantize_rows(x)
    exact = rows.astype(numpy.int64) @ dense.kernel.numpy().astype(numpy.int64)
    expected = exact.astype("float32") / (expected_scale * row_scale) + bias
    numpy.testing.assert_array_equal(y, numpy.maximum(expected, 0))
    # the dequantized product is close to the float one
    numpy.testing.assert_allclose(y, numpy.maximum(x @ kernel + bias, 0), atol=0.1 * numpy.abs(x @ kernel).max())


def test_integer_product_is_exact_for_long_rows(xp):
    # 4096 terms of 127 * 127 exceed float32's exact integers; the product must not round
    layer = layers.Dense(2, use_bias=False)
    layer.build((None, 4096))
    layer.kernel.assign(numpy.full((4096, 2), 1.0, "float32"))
    layer.quantize("int8")
    x = numpy.ones((1, 4096), "float32")
    x[0, 0] = 1.0 + 1 / 127         # one row value 128/127: rows quantize to 127s and one 127
    y = to_numpy(layer(xp.asarray(x)))
    rows, row_scale = quantize_rows(x)
    exact = int(rows.astype(numpy.int64).sum()) * 127
    assert exact > 2 ** 24
    numpy.testing.assert_array_equal(y, numpy.float32(exact) / (layer.kernel_scale.numpy() * row_scale))


def test_dense_int8_inputs_gradient_and_training(xp):
    rng = numpy.random.default_rng(1)
    layer = layers.Dense(4, activation="tanh")
    layer.build((None, 6))
    layer.set_weights([rng.standard_normal((6, 4)).astype("float32"), rng.standard_normal(4).astype("float32")])
    layer.quantize("int8")
    x = rng.standard_normal((3, 6)).astype("float32")
    dy = rng.standard_normal((3, 4)).astype("float32")
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    layer.input_gradient_wanted = True
    y = to_numpy(layer(xp.asarray(x), training=True))
    dx = to_numpy(layer.backward(xp.asarray(dy)))
    dz = dy * (1 - y ** 2)
    dequantized = layer.kernel.numpy() / layer.kernel_scale.numpy()
    numpy.testing.assert_allclose(dx, dz @ dequantized.T, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(to_numpy(layer.bias.grad), dz.sum(axis=0), rtol=1e-5, atol=1e-6)
    assert getattr(layer.kernel, "grad", None) is None

    model = dense_model("softmax")
    model.quantize("int8")
    frozen = [w.numpy().copy() for w in model.non_trainable_weights]
    biases = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(rng.standard_normal((8, 17)).astype("float32"), rng.integers(0, 3, 8), epochs=2, verbose=0)
    assert [w.name for w in model.trainable_weights] == ["bias", "bias"]
    assert all(numpy.array_equal(a, w.numpy()) for a, w in zip(frozen, model.non_trainable_weights))
    assert not any(numpy.array_equal(a, w.numpy()) for a, w in zip(biases, model.trainable_weights))


def test_quantized_policies():
    policy = gpu_dl.dtype_policies.get("int8_from_float32")
    assert isinstance(policy, QuantizedDTypePolicy) and policy.quantization_mode == "int8"
    assert policy.get_config() == {"mode": "int8", "source_name": "float32"}
    assert repr(policy) == '<QuantizedDTypePolicy "int8_from_float32">'
    assert gpu_dl.dtype_policies.serialize(policy) == {
        "module": "keras.dtype_policies", "class_name": "QuantizedDTypePolicy",
        "config": {"mode": "int8", "source_name": "float32"}, "registered_name": None}
    assert gpu_dl.dtype_policies.deserialize(gpu_dl.dtype_policies.serialize(policy)) == policy
    with pytest.raises(ValueError, match="doesn't work well with compute_dtype='float16'"):
        QuantizedDTypePolicy("int8", "mixed_float16")
    assert policy != DTypePolicy("float32") and DTypePolicy("float32").quantization_mode is None
    with pytest.raises(ValueError, match=r"Invalid quantization mode. Expected one of .* Received: mode=int9"):
        QuantizedDTypePolicy("int9", "float32")
    with pytest.raises(ValueError, match="Invalid mode for GPTQDTypePolicy"):
        gpu_dl.dtype_policies.get("gptq_from_float32")
    with pytest.raises(ValueError, match="valid pair"):
        gpu_dl.dtype_policies.get("int8_float32")
    # a layer made with the policy builds int8 weights, as one loaded from a quantized model's config
    dense = layers.Dense(3, dtype="int8_from_float32")
    dense.build((None, 4))
    assert dense.kernel.dtype == "int8" and dense.kernel_scale.shape == (3,)
    assert layers.Dense.from_config(dense.get_config()).dtype_policy == dense.dtype_policy


def test_quantize_refusals():
    unbuilt = gpu_dl.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match="Cannot quantize a layer that isn't yet built. Layer 'sequential'"):
        unbuilt.quantize("int8")
    model = dense_model()
    with pytest.raises(ValueError, match="Invalid quantization mode"):
        model.quantize("int9")
    with pytest.raises(ValueError, match="You must provide either `mode` or `config`"):
        model.quantize()
    with pytest.raises(ValueError, match="For AWQ, you must pass an .AWQConfig. object"):
        model.quantize("awq")
    with pytest.raises(ValueError, match="Contradictory arguments"):
        model.quantize("int8", config=gpu_dl.quantizers.Float8QuantizationConfig())
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        model.quantize("int8", bad=1)
    model.quantize("int8", filters=[model.layers[1].name + "$"])
    assert [layer.dtype_policy.name for layer in model.layers] == ["float32", "int8_from_float32"]
    with pytest.raises(ValueError, match="filters"):
        model.quantize("int8", filters=3)
    model.quantize("int8", filters=lambda layer: False)
    assert model.layers[0].dtype_policy.name == "float32"
    with pytest.raises(ValueError, match=f"Layer '{model.layers[1].name}' is already quantized with "
                                         "dtype_policy='int8_from_float32'"):
        model.quantize("int8")
    with pytest.raises(ValueError, match="compute_dtype='float16'"):
        half = layers.Dense(2, dtype="mixed_float16")
        half.build((None, 3))
        half.quantize("int8")


def test_quantized_model_saves_and_loads(tmp_path):
    rng = numpy.random.default_rng(2)
    model = dense_model(use_bias=False)
    model.quantize("int8", config=gpu_dl.quantizers.Int8QuantizationConfig(
        weight_quantizer=gpu_dl.quantizers.AbsMaxQuantizer(axis=0, value_range=(-100, 100))))
    assert numpy.abs(model.layers[1].kernel.numpy()).max() == 100
    x = rng.standard_normal((4, 17)).astype("float32")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "q.keras")
    model.save_weights(tmp_path / "q.weights.h5")
    loaded = gpu_dl.models.load_model(tmp_path / "q.keras")
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    assert isinstance(loaded.layers[1].quantization_config, gpu_dl.quantizers.Int8QuantizationConfig)
    again = dense_model(use_bias=False)
    again.quantize("int8")
    again.load_weights(tmp_path / "q.weights.h5")
    numpy.testing.assert_array_equal(again.predict(x, verbose=0), expected)
    float_model = dense_model(use_bias=False)
    with pytest.raises(ValueError):
        float_model.load_weights(tmp_path / "q.weights.h5")


def test_embedding_int8_rows_and_scales(xp):
    rng = numpy.random.default_rng(3)
    layer = layers.Embedding(13, 5, mask_zero=True)
    layer.build((None, 4))
    table = rng.standard_normal((13, 5)).astype("float32")
    layer.set_weights([table])
    layer.quantize("int8")
    assert [(w.name, w.dtype, w.shape, w.trainable) for w in layer.weights] == [
        ("embeddings", "int8", (13, 5), False), ("embeddings_scale", "float32", (13,), False)]
    assert layer.dtype_policy.name == "int8_from_float32"
    scale = numpy.float32(127) / (numpy.abs(table).max(axis=1) + numpy.float32(1e-7))
    numpy.testing.assert_array_equal(layer.embeddings_scale.numpy(), scale)
    numpy.testing.assert_array_equal(layer.embeddings.numpy(), numpy.round(table * scale[:, None]))
    ids = rng.integers(0, 13, (3, 4))
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    out = to_numpy(layer(xp.asarray(ids), training=True))
    numpy.testing.assert_array_equal(out, layer.embeddings.numpy()[ids].astype("float32") / scale[ids][..., None])
    numpy.testing.assert_allclose(out, table[ids], atol=numpy.abs(table).max() / 127)
    assert layer.backward(xp.ones((3, 4, 5), "float32")) is None
    assert getattr(layer.embeddings, "grad", None) is None
    numpy.testing.assert_array_equal(to_numpy(layer.compute_mask(xp.asarray(ids))), ids != 0)
    config = layer.get_config()
    assert config["dtype"]["class_name"] == "QuantizedDTypePolicy"
    assert config["quantization_config"]["class_name"] == "Int8QuantizationConfig"
    rebuilt = layers.Embedding.from_config(config)
    rebuilt.build((None, 4))
    assert rebuilt.embeddings.dtype == "int8" and rebuilt.quantization_config.mode == "int8"


@pytest.mark.parametrize("equation, input_shape, output_shape, bias_axes, reduced, scale_shape", [
    ("ab,bc->ac", (4,), (5,), "c", (0,), (1, 5)),
    ("abc,cde->abde", (3, 4), (3, 2, 5), "de", (0,), (1, 1, 2, 5)),
    ("abcd,cde->abe", (3, 4, 5), (3, 6), "e", (0, 1), (1, 1, 6)),    # two reduced axes for one output axis
])
def test_einsum_dense_int8(xp, equation, input_shape, output_shape, bias_axes, reduced, scale_shape):
    rng = numpy.random.default_rng(4)
    layer = layers.EinsumDense(equation, output_shape, bias_axes=bias_axes)
    layer.build((None,) + input_shape)
    kernel = rng.standard_normal(layer.kernel.shape).astype("float32")
    bias = rng.standard_normal(layer.bias.shape).astype("float32")
    layer.set_weights([kernel, bias])
    layer.quantize("int8")
    assert [(w.name, w.dtype, w.trainable) for w in layer.weights] == [
        ("bias", "float32", True), ("kernel", "int8", False), ("kernel_scale", "float32", False)]
    kernel_scale = numpy.float32(127) / (numpy.abs(kernel).max(axis=reduced, keepdims=True) + numpy.float32(1e-7))
    numpy.testing.assert_array_equal(layer.kernel.numpy(), numpy.round(kernel * kernel_scale))
    # the scale is kept along the output's axes: the kept kernel axes last, size 1 for the others
    assert layer.kernel_scale.shape == scale_shape
    numpy.testing.assert_array_equal(layer.kernel_scale.numpy().reshape(-1), kernel_scale.reshape(-1))

    x = rng.standard_normal((2,) + input_shape).astype("float32")
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    layer.input_gradient_wanted = True
    y = to_numpy(layer(xp.asarray(x), training=True))
    input_spec, rest = equation.split(",")
    weight_spec, output_spec = rest.split("->")
    input_reduced = tuple(i for i, c in enumerate(input_spec) if c not in output_spec)
    x_scale = numpy.float32(127) / (numpy.abs(x).max(axis=input_reduced, keepdims=True) + numpy.float32(1e-7))
    x_int = numpy.round(x * x_scale).astype(numpy.int64)
    exact = numpy.einsum(equation, x_int, layer.kernel.numpy().astype(numpy.int64))
    x_scale_out = x_scale.reshape(x_scale.shape[:len(output_spec) - 1] + (1,))
    expected = exact.astype("float32") / (x_scale_out * layer.kernel_scale.numpy()) + bias
    numpy.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    numpy.testing.assert_allclose(y, numpy.einsum(equation, x, kernel) + bias, atol=0.05 * numpy.abs(y).max())
    dy = rng.standard_normal(y.shape).astype("float32")
    dx = to_numpy(layer.backward(xp.asarray(dy)))
    dequantized = layer.kernel.numpy() / kernel_scale
    numpy.testing.assert_allclose(dx, numpy.einsum(f"{output_spec},{weight_spec}->{input_spec}", dy, dequantized),
                                  rtol=1e-5, atol=1e-5)
    assert getattr(layer.kernel, "grad", None) is None and layer.bias.grad is not None


def test_dtype_policy_map():
    policy_map = gpu_dl.dtype_policies.DTypePolicyMap(default_policy="float32")
    policy_map["head"] = "int8_from_float32"
    policy_map["encoder/.*"] = "float64"
    assert (policy_map.name, policy_map.compute_dtype, len(policy_map), "head" in policy_map) == \
        ("map_float32", "float32", 2, True)
    assert policy_map["head"] == QuantizedDTypePolicy("int8", "float32")
    assert policy_map["encoder/dense"].name == "float64"
    assert policy_map["encoder"].name == "float32"         # a pattern matches whole paths only
    policy_map["encoder/de.*"] = "float32"
    with pytest.raises(ValueError, match="matches multiple dtype policy specification keys"):
        policy_map["encoder/dense"]
    with pytest.raises(ValueError, match="already exist"):
        policy_map["head"] = "float32"
    with pytest.raises(ValueError, match="Cannot interpret the assigned value"):
        policy_map["x"] = "int8x"
    with pytest.raises(ValueError, match="cannot be a `DTypePolicyMap`"):
        gpu_dl.dtype_policies.DTypePolicyMap(policy_map)
    again = gpu_dl.dtype_policies.deserialize(gpu_dl.dtype_policies.serialize(policy_map))
    assert list(again) == list(policy_map) and again["head"] == policy_map["head"]
    # a layer takes the policy of its name
    head = layers.Dense(3, dtype=again, name="head")
    head.build((None, 4))
    assert head.kernel.dtype == "int8" and layers.Dense(3, dtype=again).dtype_policy.name == "float32"


def check_int4_per_column(layer, kernel, values):
    """An int4 kernel quantized per column: its scale and values against NumPy's; the dequantized kernel."""
    scale = numpy.float32(7) / (numpy.abs(kernel).max(axis=0) + numpy.float32(1e-7))
    numpy.testing.assert_array_equal(layer.kernel_scale.numpy(), scale)
    numpy.testing.assert_array_equal(values, numpy.clip(numpy.round(kernel * scale), -8, 7))
    return values / scale


@pytest.mark.parametrize("block_size", [None, 4])
def test_dense_int4(xp, block_size):
    rng = numpy.random.default_rng(5)
    layer = layers.Dense(5, activation="tanh")
    layer.build((None, 10))
    kernel = rng.standard_normal((10, 5)).astype("float32")
    bias = rng.standard_normal(5).astype("float32")
    layer.set_weights([kernel, bias])
    layer.quantize("int4", config=gpu_dl.quantizers.Int4QuantizationConfig(block_size=block_size))
    assert layer.dtype_policy.name == f"int4/{block_size or -1}_from_float32"
    names = [(w.name, w.dtype, w.shape) for w in layer.weights]
    assert names[:3] == [("bias", "float32", (5,)), ("kernel", "int8", (10, 3)),
                         ("kernel_scale", "float32", (5,) if block_size is None else (3, 5))]
    values = gpu_dl.quantizers.unpack_int4(layer.kernel.numpy(), 5, axis=-1)
    assert values.min() >= -8 and values.max() <= 7
    if block_size is None:
        dequantized = check_int4_per_column(layer, kernel, values)
    else:
        assert names[3:] == [("kernel_zero", "int8", (3, 5)), ("g_idx", "float32", (10,))]
        numpy.testing.assert_array_equal(layer.g_idx.numpy(), numpy.arange(10) // 4)
        rows = numpy.arange(10) // 4
        dequantized = (values - layer.kernel_zero.numpy()[rows]) * layer.kernel_scale.numpy()[rows]
    numpy.testing.assert_allclose(dequantized, kernel, atol=numpy.abs(kernel).max() / 7 + 1e-6)
    x = rng.standard_normal((3, 10)).astype("float32")
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    layer.input_gradient_wanted = True
    y = to_numpy(layer(xp.asarray(x), training=True))
    numpy.testing.assert_allclose(y, numpy.tanh(x @ dequantized.astype("float32") + bias), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype("float32")
    dx = to_numpy(layer.backward(xp.asarray(dy)))
    numpy.testing.assert_allclose(dx, (dy * (1 - y ** 2)) @ dequantized.T, rtol=1e-5, atol=1e-5)
    rebuilt = layers.Dense.from_config(layer.get_config())
    rebuilt.build((None, 10))
    assert [(w.name, w.shape) for w in rebuilt.weights] == [(w.name, w.shape) for w in layer.weights]


@pytest.mark.parametrize("block_size", [None, 4])
def test_embedding_int4(xp, block_size):
    rng = numpy.random.default_rng(6)
    layer = layers.Embedding(6, 9)
    layer.build((None, 4))
    table = rng.standard_normal((6, 9)).astype("float32")
    layer.set_weights([table])
    layer.quantize("int4", config=gpu_dl.quantizers.Int4QuantizationConfig(block_size=block_size))
    assert layer.dtype_policy.name == f"int4/{block_size or -1}_from_float32"
    names = [(w.name, w.dtype, w.shape, w.trainable) for w in layer.weights]
    assert names[:2] == [("embeddings", "int8", (6, 5), False),
                         ("embeddings_scale", "float32", (6,) if block_size is None else (6, 3), False)]
    values = gpu_dl.quantizers.unpack_int4(layer.embeddings.numpy(), 9, axis=-1)
    assert values.min() >= -8 and values.max() <= 7
    if block_size is None:
        assert len(names) == 2
        scale = numpy.float32(7) / (numpy.abs(table).max(axis=1) + numpy.float32(1e-7))
        numpy.testing.assert_array_equal(layer.embeddings_scale.numpy(), scale)
        numpy.testing.assert_array_equal(values, numpy.clip(numpy.round(table * scale[:, None]), -8, 7))
        dequantized = values / scale[:, None]
    else:
        assert names[2:] == [("embeddings_zero", "int8", (6, 3), False), ("g_idx", "float32", (9,), False)]
        columns = numpy.arange(9) // 4
        numpy.testing.assert_array_equal(layer.g_idx.numpy(), columns)
        # each group of 4 columns (the last one zero-padded) spans [-8, 7] from its minimum to its maximum
        groups = numpy.concatenate([table, numpy.zeros((6, 3), "float32")], axis=1).reshape(6, 3, 4)
        scale = (groups.max(axis=-1) - groups.min(axis=-1) + numpy.float32(1e-7)) / numpy.float32(15)
        numpy.testing.assert_allclose(layer.embeddings_scale.numpy(), scale, rtol=1e-6)
        scale = layer.embeddings_scale.numpy()
        # Keras clips the zero point to [-8, 7]: a group whose values do not straddle 0 saturates, as in Keras
        zero = numpy.clip(numpy.round(-groups.min(axis=-1) / scale) - 8, -8, 7)
        numpy.testing.assert_array_equal(layer.embeddings_zero.numpy(), zero)
        numpy.testing.assert_array_equal(
            values, numpy.clip(numpy.round(table / scale[:, columns]) + zero[:, columns], -8, 7))
        dequantized = (values - zero[:, columns]) * scale[:, columns]
    if block_size is None:
        numpy.testing.assert_allclose(dequantized, table, atol=numpy.abs(table).max() / 7 + 1e-6)
    ids = rng.integers(0, 6, (3, 4))
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    out = to_numpy(layer(xp.asarray(ids), training=True))
    numpy.testing.assert_allclose(out, dequantized.astype("float32")[ids], rtol=1e-6, atol=1e-6)
    assert layer.backward(xp.ones((3, 4, 9), "float32")) is None
    rebuilt = layers.Embedding.from_config(layer.get_config())
    rebuilt.build((None, 4))
    assert [(w.name, w.shape) for w in rebuilt.weights] == [(w.name, w.shape) for w in layer.weights]
    rebuilt.set_weights(layer.get_weights())
    numpy.testing.assert_array_equal(to_numpy(rebuilt(xp.asarray(ids))), out)
    with pytest.raises(ValueError, match="already quantized"):
        layer.quantize("int4")


def test_int4_policies():
    # a layer built from an int4 policy makes the packed variables its file holds
    layer = layers.EinsumDense("abc,cd->abd", (3, 5), bias_axes="d", dtype="int4/2_from_float32")
    layer.build((None, 3, 4))
    assert [(w.name, w.dtype, w.shape) for w in layer.weights] == [
        ("bias", "float32", (5,)), ("kernel", "int8", (4, 3)), ("kernel_scale", "float32", (2, 5)),
        ("kernel_zero", "int8", (2, 5)), ("g_idx", "float32", (4,))]
    numpy.testing.assert_array_equal(layer.g_idx.numpy(), [0, 0, 1, 1])
    policy = gpu_dl.dtype_policies.get("int4/128_from_float32")
    assert (type(policy).__name__, policy.block_size, policy.get_config()) == \
        ("Int4DTypePolicy", 128, {"mode": "int4/128", "source_name": "float32"})
    with pytest.raises(ValueError, match="Invalid block_size"):
        gpu_dl.dtype_policies.get("int4/0_from_float32")


class TaggedEmbedding(layers.Embedding):
    """A subclass that does not override ``quantize``: Keras's type check refuses to quantize it."""


def test_a_layer_that_cannot_quantize_is_skipped_with_a_warning():
    inputs = gpu_dl.Input((4,), dtype="int32")
    embedding = TaggedEmbedding(9, 3)
    model = gpu_dl.Model(inputs, layers.Dense(2)(layers.Flatten()(embedding(inputs))))
    with pytest.warns(UserWarning, match="TaggedEmbedding does not have a `quantize\\(\\)` method"):
        model.quantize("int8")
    assert embedding.dtype_policy.quantization_mode is None
    assert model.layers[-1].dtype_policy.name == "int8_from_float32"


@pytest.mark.parametrize("block_size", [None, 3])
def test_einsum_dense_int4(xp, block_size):
    # "abc,dc->abd": the reduced axis comes last in the kernel, and Keras's 2-D view is a plain reshape of it
    rng = numpy.random.default_rng(7)
    layer = layers.EinsumDense("abc,dc->abd", (3, 5), bias_axes="d", activation="tanh")
    layer.build((None, 3, 4))
    kernel, bias = rng.standard_normal((5, 4)).astype("float32"), rng.standard_normal(5).astype("float32")
    layer.set_weights([kernel, bias])
    layer.quantize("int4", config=gpu_dl.quantizers.Int4QuantizationConfig(block_size=block_size))
    flat = kernel.reshape(4, 5)
    values = gpu_dl.quantizers.unpack_int4(layer.kernel.numpy(), 5, axis=-1)
    assert layer.kernel.shape == (4, 3) and values.min() >= -8 and values.max() <= 7
    if block_size is None:
        dequantized = check_int4_per_column(layer, flat, values)
    else:
        rows = numpy.arange(4) // 3
        numpy.testing.assert_array_equal(layer.g_idx.numpy(), rows)
        dequantized = (values - layer.kernel_zero.numpy()[rows]) * layer.kernel_scale.numpy()[rows]
    dequantized = dequantized.astype("float32").reshape(5, 4)
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    layer.input_gradient_wanted = True
    y = to_numpy(layer(xp.asarray(x), training=True))
    numpy.testing.assert_allclose(y, numpy.tanh(numpy.einsum("abc,dc->abd", x, dequantized) + bias), rtol=1e-5,
                                  atol=1e-6)
    dy = rng.standard_normal(y.shape).astype("float32")
    dx = to_numpy(layer.backward(xp.asarray(dy)))
    numpy.testing.assert_allclose(dx, numpy.einsum("abd,dc->abc", dy * (1 - y ** 2), dequantized), rtol=1e-5,
                                  atol=1e-5)
    assert getattr(layer.kernel, "grad", None) is None and layer.bias.grad is not None
    rebuilt = layers.EinsumDense.from_config(layer.get_config())
    rebuilt.build((None, 3, 4))
    assert [(w.name, w.shape) for w in rebuilt.weights] == [(w.name, w.shape) for w in layer.weights]
