"""gpu_dl.quantizers against Keras 3's keras.quantizers (torch backend) on the same arrays: the same quantized
values, scales, fake-quantized values and gradients, float8 values, and int4 packings, bit for bit."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from gpu_dl import quantizers  # noqa: E402


def host(tensor):
    return keras.ops.convert_to_numpy(tensor)


RNG = numpy.random.default_rng(7)
X = RNG.standard_normal((9, 6)).astype("float32")


@pytest.mark.parametrize("axis", [0, -1, (0, 1)])
def test_abs_max_quantize(axis):
    for ours, theirs in zip(quantizers.abs_max_quantize(X, axis), keras.quantizers.abs_max_quantize(X, axis)):
        assert ours.dtype == host(theirs).dtype
        numpy.testing.assert_array_equal(ours, host(theirs))


@pytest.mark.parametrize("to_numpy", [True, False])
def test_grouped_quantization_with_zero_point(to_numpy):
    ours = quantizers.abs_max_quantize_grouped_with_zero_point(X, 4, to_numpy=to_numpy)
    theirs = keras.quantizers.abs_max_quantize_grouped_with_zero_point(X, 4, to_numpy=to_numpy)
    for a, b in zip(ours, theirs):
        assert a.dtype == host(b).dtype
        numpy.testing.assert_array_equal(a, host(b))


def gpu_dl_input(value):
    """A gpu_dl symbolic tensor of ``value``'s shape (its first axis as the batch axis)."""
    import gpu_dl
    shape = numpy.shape(value)
    return gpu_dl.Input(shape[1:] if shape else (), batch_size=shape[0] if shape else None)


@pytest.mark.parametrize("bits, narrow, per_channel", [(8, False, False), (4, True, False), (8, False, True)])
def test_fake_quant_values_and_gradients(bits, narrow, per_channel):
    x = RNG.uniform(-2.5, 2.5, (5, 6)).astype("float32")
    if per_channel:
        low, high, axis = RNG.uniform(-2, -0.2, 6).astype("float32"), RNG.uniform(0.2, 2, 6).astype("float32"), -1
    else:
        low, high, axis = numpy.float32(-1.1), numpy.float32(0.9), None
    dy = RNG.standard_normal((5, 6)).astype("float32")
    tx, tlow, thigh = (torch.tensor(numpy.asarray(v), requires_grad=True) for v in (x, low, high))
    expected = keras.quantizers.fake_quant_with_min_max_vars(tx, tlow, thigh, bits, narrow, axis)
    (expected * torch.tensor(dy)).sum().backward()

    numpy.testing.assert_array_equal(quantizers.fake_quant_with_min_max_vars(x, low, high, bits, narrow, axis),
                                     host(expected.detach()))
    operation = quantizers.FakeQuantWithMinMaxVars(bits, narrow, axis)
    operation.apply(*[gpu_dl_input(v) for v in (x, low, high)])
    operation([x, numpy.asarray(low), numpy.asarray(high)], training=True)
    gradients = operation.backward(dy)
    for ours, theirs in zip(gradients, (tx, tlow, thigh)):
        numpy.testing.assert_allclose(ours, host(theirs.grad), rtol=1e-6, atol=1e-6)


def test_float8_functions():
    amax = numpy.array([0.0, 1.5, numpy.inf, 3.0, 1e-30], "float32")
    scale = numpy.array([0.5, 2.0, 3.0, 4.0, 1.0], "float32")
    for margin in (0, 2):
        numpy.testing.assert_array_equal(quantizers.compute_float8_scale(amax, scale, 448.0, margin),
                                         host(keras.quantizers.compute_float8_scale(amax, scale, 448.0, margin)))
    history = RNG.uniform(0, 1, 8).astype("float32")
    numpy.testing.assert_array_equal(quantizers.compute_float8_amax_history(X, history),
                                     host(keras.quantizers.compute_float8_amax_history(X, history)))
    values = (RNG.standard_normal(4000) * numpy.exp(RNG.uniform(-28, 14, 4000))).astype("float32")
    for dtype in ("float8_e4m3fn", "float8_e5m2"):
        for s in (numpy.float32(1.0), numpy.float32(0.37), numpy.float32(3e-3)):
            numpy.testing.assert_array_equal(quantizers.quantize_and_dequantize(values, s, dtype, "float32"),
                                             host(keras.quantizers.quantize_and_dequantize(values, s, dtype,
                                                                                           "float32")))


@pytest.mark.parametrize("shape, axis", [((5, 4), 0), ((5, 3), 1), ((4, 5, 3), 1), ((4, 5, 3), -1)])
def test_int4_packing(shape, axis):
    values = RNG.integers(-8, 8, shape).astype("int8")
    ours, theirs = quantizers.pack_int4(values, axis), keras.quantizers.pack_int4(values, axis)
    numpy.testing.assert_array_equal(ours[0], host(theirs[0]))
    assert ours[1:] == tuple(theirs[1:])
    numpy.testing.assert_array_equal(quantizers.unpack_int4(ours[0], ours[2], axis),
                                     host(keras.quantizers.unpack_int4(theirs[0], theirs[2], axis)))


def test_serialized_quantizers_and_configs_read_both_ways():
    for theirs, ours in ((keras.quantizers.AbsMaxQuantizer(axis=0, value_range=(-100, 100)),
                          quantizers.AbsMaxQuantizer(axis=0, value_range=(-100, 100))),
                         (keras.quantizers.Int8QuantizationConfig(), quantizers.Int8QuantizationConfig()),
                         (keras.quantizers.Int4QuantizationConfig(block_size=64),
                          quantizers.Int4QuantizationConfig(block_size=64))):
        assert quantizers.serialize(ours) == keras.quantizers.serialize(theirs)
        read = quantizers.deserialize(keras.quantizers.serialize(theirs))
        assert type(read).__name__ == type(theirs).__name__
        assert quantizers.serialize(read) == keras.quantizers.serialize(theirs)
        back = keras.quantizers.deserialize(quantizers.serialize(ours))
        assert keras.quantizers.serialize(back) == keras.quantizers.serialize(theirs)
