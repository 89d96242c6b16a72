"""Quantized MultiHeadAttention and GroupQueryAttention (``quantize("int8")``, ``"int4"``): their query, key,
value and output projections are quantized as Keras's EinsumDense sublayers are. The forward against a plain NumPy
attention over the dequantized kernels (the inputs of each projection quantized as Keras's int8 path does), the
gradients of the inputs and of what still trains (the biases) against float64 finite differences, the
variables, model.quantize reaching the layers, and the refusals. One body per backend."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, quantizers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


@pytest.fixture(autouse=True)
def fresh_session():
    gpu_dl.utils.clear_session(free_memory=False)      # the paths asserted carry numbered names
    yield
    gpu_dl.utils.clear_session(free_memory=False)


PROJECTIONS = ("query", "key", "value", "attention_output")


def _make(kind, dtype="float32"):
    if kind == "mha":
        return layers.MultiHeadAttention(2, 3, dtype=dtype)
    return layers.GroupQueryAttention(3, 4, 2, dtype=dtype)


def _built(kind, rng, xp, dtype="float32"):
    layer = _make(kind, dtype)
    q, v = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 7, 4))
    layer(xp.asarray(q.astype(dtype)), xp.asarray(v.astype(dtype)))
    layer.set_weights([(rng.standard_normal(w.shape) * 0.5 + 0.3).astype(dtype) for w in layer.get_weights()])
    return layer, q, v


def _dequantized_kernels(layer, mode, shapes):
    """The float kernels the quantized ones stand for, in the float kernels' shapes, from the variables alone."""
    w = {var.path.split("/", 1)[1]: var.numpy() for var in layer.weights}
    kernels = {}
    for name in PROJECTIONS:
        shape, reduced = shapes[name], 2 if name == "attention_output" else 1
        kernel, scale = w[f"{name}/kernel"], w[f"{name}/kernel_scale"]
        if mode == "int8":
            kernels[name] = kernel.astype("float64") / scale.reshape(shape[reduced:])
            continue
        columns = int(numpy.prod(shape[reduced:]))
        values = quantizers.unpack_int4(kernel, columns, axis=-1).astype("float64")
        groups = w[f"{name}/g_idx"].astype(int)
        values = (values - w[f"{name}/kernel_zero"][groups]) * scale[groups]
        kernels[name] = values.reshape(shape)
    return kernels, w


def _fake_quantized(x, axes):
    """Keras's int8 inputs quantizer, as a float: rows scaled to [-127, 127] over the reduced axes, rounded."""
    x = x.astype("float32")
    scale = numpy.float32(127) / (numpy.abs(x).max(axis=axes, keepdims=True) + numpy.float32(1e-7))
    return numpy.clip(numpy.round(x * scale), -127, 127).astype("float64") / scale


def _expected(layer, kernels, w, q, v, quantized_inputs):
    heads_ratio = layer._query_heads // kernels["key"].shape[1]

    def project(name, x):
        if quantized_inputs:
            x = _fake_quantized(x, -1)
        return numpy.einsum("btd,dnk->btnk", x, kernels[name]) + w[f"{name}/bias"]
    qh, kh, vh = project("query", q), project("key", v), project("value", v)
    kh, vh = numpy.repeat(kh, heads_ratio, axis=2), numpy.repeat(vh, heads_ratio, axis=2)
    scores = numpy.einsum("btnk,bsnk->bnts", qh, kh) / numpy.sqrt(qh.shape[-1])
    e = numpy.exp(scores - scores.max(axis=-1, keepdims=True))
    heads = numpy.einsum("bnts,bsnv->btnv", e / e.sum(axis=-1, keepdims=True), vh)
    if quantized_inputs:
        heads = _fake_quantized(heads, (-2, -1))
    return numpy.einsum("btnv,nvo->bto", heads, kernels["attention_output"]) + w["attention_output/bias"]


@pytest.mark.parametrize("mode", ["int8", "int4"])
@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_forward_over_the_dequantized_kernels(xp, rng, kind, mode):
    layer, q, v = _built(kind, rng, xp)
    shapes = {name: tuple(layer._projections[name][0].shape) for name in PROJECTIONS}
    float_out = to_numpy(layer(xp.asarray(q.astype("float32")), xp.asarray(v.astype("float32"))))
    layer.quantize(mode)
    kernels, w = _dequantized_kernels(layer, mode, shapes)
    out = to_numpy(layer(xp.asarray(q.astype("float32")), xp.asarray(v.astype("float32"))))
    want = _expected(layer, kernels, w, q.astype("float32"), v.astype("float32"), mode == "int8")
    numpy.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    # quantization moved the outputs, but not far
    assert not numpy.array_equal(out, float_out)
    numpy.testing.assert_allclose(out, float_out, atol=0.2 * numpy.abs(float_out).max())


@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_variables_after_quantization(rng, kind):
    layer, _, _ = _built(kind, rng, numpy)
    layer.quantize("int8")
    name = layer.name
    assert [(v.path, v.dtype, v.trainable) for v in layer.weights] == [
        (f"{name}/{p}/{what}", dtype, what == "bias") for p in PROJECTIONS
        for what, dtype in (("bias", "float32"), ("kernel", "int8"), ("kernel_scale", "float32"))]
    assert [v.path for v in layer.trainable_weights] == [f"{name}/{p}/bias" for p in PROJECTIONS]
    # the layer keeps its float policy; the projections take the quantized one
    assert layer.dtype_policy.quantization_mode is None
    assert layer._quantized_projection("query").dtype_policy.name == "int8_from_float32"


@pytest.mark.parametrize("mode", ["int8", "int4"])
@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_gradients_of_the_inputs_and_biases(xp, rng, kind, mode):
    layer, q, v = _built(kind, rng, xp, dtype="float64")
    # Keras's int8 path without an inputs quantizer (the inputs times the dequantized kernel) is differentiable
    config = quantizers.Int8QuantizationConfig(activation_quantizer=None) if mode == "int8" else None
    layer.quantize(mode, config=config)
    xs = [xp.asarray(q), xp.asarray(v)]

    def call(inputs):
        return layer(inputs[0], inputs[1], training=True)
    out = call(xs)
    w1 = xp.asarray(rng.standard_normal(out.shape))
    grads = layer.backward(w1)
    for i, g in enumerate(grads):
        def f(x, i=i):
            return (call(xs[:i] + [x] + xs[i + 1:]) * w1).sum()
        assert_gradient(f, xs[i], g, rng, what=f"input {i}")
    trainable = layer.trainable_weights
    assert [v.name for v in trainable] == ["bias"] * 4
    for var, g in [(v, v.grad) for v in trainable]:
        original = var.value.copy()

        def f(value, var=var, original=original):
            var.value[...] = value
            loss = (call(xs) * w1).sum()
            var.value[...] = original
            return loss
        # atol: the key bias's gradient is 0 (a shift of every score of a row), its difference quotient noise
        assert_gradient(f, original.copy(), g, rng, atol=1e-7, what=var.path)


def test_model_quantize_reaches_the_attention_layers(rng):
    q, v = gpu_dl.Input((5, 4)), gpu_dl.Input((7, 6))
    out = layers.Dense(3)(layers.MultiHeadAttention(2, 3)(q, v))
    model = gpu_dl.Model([q, v], out)
    # the filters match the projections' names, as Keras's match its sublayers': not the attention layer's
    model.quantize("int4", filters="multi_head")
    assert all(v.dtype == "float32" for v in model.weights)
    model.quantize("int4", filters="query|key|value|attention_output")
    assert {v.path: v.dtype for v in model.weights}["multi_head_attention/query/kernel"] == "int8"
    assert "multi_head_attention/attention_output/g_idx" in [v.path for v in model.weights]
    assert model.layers[-1].dtype_policy.quantization_mode is None      # left out by the filter
    with pytest.raises(ValueError, match="already quantized"):
        model.layers[2].quantize("int8")


@pytest.mark.parametrize("kind", ["mha", "gqa"])
def test_some_projections_quantized_and_the_config_that_rebuilds_them(rng, kind):
    layer, q, v = _built(kind, rng, numpy)
    float_out = to_numpy(layer(q.astype("float32"), v.astype("float32")))
    layer.quantize_projections("int8", chosen=lambda dense: dense.name in ("key", "attention_output"))
    dtypes = {var.path.split("/", 1)[1]: var.dtype for var in layer.weights}
    assert dtypes["query/kernel"] == dtypes["value/kernel"] == "float32"
    assert dtypes["key/kernel"] == dtypes["attention_output/kernel"] == "int8" and "key/kernel_scale" in dtypes
    assert layer.dtype_policy.quantization_mode is None
    out = to_numpy(layer(q.astype("float32"), v.astype("float32")))
    assert not numpy.array_equal(out, float_out)
    numpy.testing.assert_allclose(out, float_out, atol=0.05 * numpy.abs(float_out).max())     # int8's error
    config = layer.get_config()
    assert config["projection_dtypes"] == {"query": None, "key": gpu_dl.dtype_policies.serialize(
        layer._quantized_projection("key").dtype_policy), "value": None, "attention_output": config[
        "projection_dtypes"]["key"]}
    again = type(layer).from_config(config)
    again(q.astype("float32"), v.astype("float32"))
    assert [(w.name, w.dtype, w.shape) for w in again.weights] == [(w.name, w.dtype, w.shape) for w in layer.weights]
    again.set_weights(layer.get_weights())
    numpy.testing.assert_array_equal(to_numpy(again(q.astype("float32"), v.astype("float32"))), out)
    assert again.get_config() == config
    with pytest.raises(ValueError, match="projection_dtypes"):
        type(layer).from_config({**config, "projection_dtypes": "int8"})


def test_refusals():
    layer = layers.MultiHeadAttention(2, 3)
    with pytest.raises(ValueError, match="isn't yet built"):
        layer.quantize("int8")
    layer(numpy.zeros((1, 2, 4), "float32"), numpy.zeros((1, 3, 4), "float32"))
    with pytest.raises(ValueError, match="mode"):
        layer.quantize("int2")
    assert layer.dtype_policy.quantization_mode is None and layer._quantized_projection("query") is None
