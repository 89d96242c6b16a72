"""gpu_dl.quantizers: the quantization functions against plain NumPy expectations on both backends, fake
quantization's straight-through gradient, int4 packing round trips, and the quantizer catalogue."""
import numpy
import pytest

import gpu_dl
from gpu_dl import quantizers
from gpu_dl.backend import to_numpy


def test_abs_max_quantize_per_axis(xp):
    x = numpy.random.default_rng(0).standard_normal((17, 3)).astype("float32")
    for axis in (0, -1, (0, 1)):
        q, scale = quantizers.abs_max_quantize(xp.asarray(x), axis)
        axes = axis if isinstance(axis, tuple) else (axis,)
        expected_scale = numpy.float32(127) / (numpy.abs(x).max(axis=axes, keepdims=True) + numpy.float32(1e-7))
        assert q.dtype == numpy.int8 and scale.dtype == numpy.float32
        numpy.testing.assert_array_equal(to_numpy(scale), expected_scale)
        numpy.testing.assert_array_equal(to_numpy(q), numpy.clip(numpy.round(x * expected_scale), -127, 127))
        # the largest magnitude per slice maps to +-127, and dequantizing is within half a step
        assert numpy.abs(to_numpy(q)).max(axis=axes).min() == 127
        assert numpy.all(numpy.abs(to_numpy(q) / expected_scale - x) <= 0.5 / expected_scale + 1e-6)
    q_host, scale_host = quantizers.abs_max_quantize(xp.asarray(x), 0, to_numpy=True)
    assert type(q_host) is type(xp.asarray(x))
    numpy.testing.assert_array_equal(to_numpy(q_host), to_numpy(quantizers.abs_max_quantize(xp.asarray(x), 0)[0]))


def test_abs_max_quantizer_and_its_config():
    quantizer = quantizers.AbsMaxQuantizer(axis=0, value_range=(-100, 100))
    x = numpy.array([[1.0, -4.0], [2.0, 2.0]], dtype="float32")
    q, scale = quantizer(x)
    numpy.testing.assert_array_equal(q, [[50, -100], [100, 50]])
    assert quantizer(x, axis=1)[1].shape == (2, 1)
    config = quantizer.get_config()
    assert config == {"value_range": (-100, 100), "epsilon": 1e-7, "output_dtype": "int8", "axis": (0,)}
    again = quantizers.deserialize(quantizers.serialize(quantizer))
    assert isinstance(again, quantizers.AbsMaxQuantizer) and again.get_config() == config
    with pytest.raises(ValueError, match=r"within the interval \[-128, 127\]"):
        quantizers.AbsMaxQuantizer(value_range=(-200, 200))
    assert isinstance(quantizers.get("abs_max_quantizer"), quantizers.AbsMaxQuantizer)
    assert quantizers.get(quantizer) is quantizer and quantizers.get(None) is None
    with pytest.raises(ValueError, match="Could not interpret quantizer identifier"):
        quantizers.get("nope")
    with pytest.raises(NotImplementedError):
        quantizers.Quantizer().get_config()
    assert gpu_dl.Quantizer is quantizers.Quantizer


def test_quantization_configs():
    config = quantizers.Int8QuantizationConfig()
    assert config.mode == "int8" and isinstance(config.activation_quantizer, quantizers.AbsMaxQuantizer)
    again = quantizers.deserialize(quantizers.serialize(config))
    assert isinstance(again, quantizers.Int8QuantizationConfig) and again.weight_quantizer is None
    assert again.activation_quantizer.get_config() == config.activation_quantizer.get_config()
    int4 = quantizers.Int4QuantizationConfig(block_size=None,
                                             weight_quantizer=quantizers.AbsMaxQuantizer(value_range=(-8, 7)))
    assert int4.mode == "int4" and quantizers.deserialize(quantizers.serialize(int4)).block_size is None
    with pytest.raises(ValueError, match="value_range=\\(-8, 7\\)"):
        quantizers.Int4QuantizationConfig(block_size=None, weight_quantizer=quantizers.AbsMaxQuantizer())
    with pytest.raises(ValueError, match="does not support custom quantizers"):
        quantizers.Int4QuantizationConfig(weight_quantizer=quantizers.AbsMaxQuantizer(value_range=(-8, 7)))
    with pytest.raises(ValueError, match="block_size must be None, -1, or a positive integer"):
        quantizers.Int4QuantizationConfig(block_size=0)
    with pytest.raises(ValueError, match="output_dtype='int8'"):
        quantizers.Int8QuantizationConfig(weight_quantizer=quantizers.AbsMaxQuantizer(output_dtype="int16"))
    assert quantizers.Float8QuantizationConfig().mode == "float8"


def test_grouped_quantization_with_zero_point(xp):
    x = numpy.random.default_rng(1).standard_normal((7, 3)).astype("float32")
    q, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(xp.asarray(x), 3)
    assert (q.shape, scale.shape, zero.shape, q.dtype, zero.dtype) == ((7, 3), (3, 3), (3, 3), numpy.int8,
                                                                        numpy.int8)
    padded = numpy.concatenate([x, numpy.zeros((2, 3), "float32")]).reshape(3, 3, 3)
    low, high = padded.min(axis=1), padded.max(axis=1)
    expected_scale = (high - low + numpy.float32(1e-7)) / numpy.float32(15)
    numpy.testing.assert_array_equal(to_numpy(scale), expected_scale)
    expected_zero = numpy.clip(numpy.round(-low / expected_scale) - 8, -8, 7)
    numpy.testing.assert_array_equal(to_numpy(zero), expected_zero)
    rows = numpy.arange(7) // 3
    expected = numpy.clip(numpy.round(x / expected_scale[rows]) + expected_zero[rows], -8, 7)
    numpy.testing.assert_array_equal(to_numpy(q), expected)
    with pytest.raises(ValueError, match="2-D"):
        quantizers.abs_max_quantize_grouped_with_zero_point(xp.zeros((2, 2, 2), "float32"), 2)


def nudged(low, high, bits, narrow):
    quant_min, quant_max = (1 if narrow else 0), 2 ** bits - 1
    scale = (high - low) / (quant_max - quant_min)
    zero = numpy.round(numpy.clip(quant_min - low / scale, quant_min, quant_max))
    return (quant_min - zero) * scale, (quant_max - zero) * scale, scale


@pytest.mark.parametrize("bits, narrow", [(8, False), (4, True)])
def test_fake_quant_forward_per_tensor_and_per_channel(xp, bits, narrow):
    rng = numpy.random.default_rng(2)
    x = rng.uniform(-3, 3, (6, 5))
    for low, high, axis in ((-1.25, 0.75, None), (rng.uniform(-2, -0.1, 5), rng.uniform(0.1, 2, 5), -1)):
        y = quantizers.fake_quant_with_min_max_vars(xp.asarray(x), xp.asarray(low), xp.asarray(high), bits,
                                                    narrow, axis)
        nmin, nmax, scale = nudged(numpy.asarray(low), numpy.asarray(high), bits, narrow)
        expected = nmin + numpy.floor((numpy.clip(x, nmin, nmax) - nmin) / scale + 0.5) * scale
        numpy.testing.assert_allclose(to_numpy(y), expected, atol=1e-12)
        assert y.dtype == numpy.float64
        # at most 2**bits levels, all within the nudged range
        assert len(numpy.unique(to_numpy(y))) <= (2 ** bits) * (1 if axis is None else 5)
        assert numpy.all(to_numpy(y) >= nmin - 1e-12) and numpy.all(to_numpy(y) <= nmax + 1e-12)


def test_fake_quant_gradient_passes_straight_through_and_reaches_the_range(xp):
    rng = numpy.random.default_rng(3)
    x = rng.uniform(-2, 2, (4, 3)).astype("float32")
    low, high = rng.uniform(-1.5, -0.5, 3).astype("float32"), rng.uniform(0.5, 1.5, 3).astype("float32")
    dy = rng.standard_normal((4, 3)).astype("float32")
    tensors = [gpu_dl.Input((3,), batch_size=4), gpu_dl.Input((), batch_size=3), gpu_dl.Input((), batch_size=3)]
    symbolic = quantizers.fake_quant_with_min_max_vars(*tensors, num_bits=8, axis=1)
    operation = symbolic._keras_history[0]
    y = operation([xp.asarray(x), xp.asarray(low), xp.asarray(high)], training=True)
    numpy.testing.assert_array_equal(to_numpy(y), to_numpy(quantizers.fake_quant_with_min_max_vars(x, low, high,
                                                                                                    axis=1)))
    dx, dmin, dmax = operation.backward(xp.asarray(dy))
    nmin, nmax, _ = nudged(low, high, 8, False)
    numpy.testing.assert_array_equal(to_numpy(dx), numpy.where((x >= nmin) & (x <= nmax), dy, 0))
    numpy.testing.assert_allclose(to_numpy(dmin), numpy.where(x <= nmin, dy, 0).sum(axis=0), rtol=1e-6)
    numpy.testing.assert_allclose(to_numpy(dmax), numpy.where(x >= nmax, dy, 0).sum(axis=0), rtol=1e-6)
    assert dmin.shape == (3,) and numpy.any(to_numpy(dmin) != 0) and numpy.any(to_numpy(dmax) != 0)


def test_float8_scale_and_amax_history(xp):
    amax = numpy.array([0.0, 1.5, numpy.inf, 3.0], "float32")
    scale = numpy.array([0.5, 2.0, 3.0, 4.0], "float32")
    new = quantizers.compute_float8_scale(xp.asarray(amax), xp.asarray(scale), 448.0, margin=1)
    numpy.testing.assert_allclose(to_numpy(new), [0.5, 1.5 * 2 / 448, 3.0, 3.0 * 2 / 448], rtol=1e-6)
    history = numpy.array([1.0, 2.0, 3.0], "float32")
    x = numpy.array([[-5.0, 1.0]], "float32")
    numpy.testing.assert_array_equal(to_numpy(quantizers.compute_float8_amax_history(xp.asarray(x),
                                                                                     xp.asarray(history))),
                                     [5.0, 3.0, 1.0])


@pytest.mark.parametrize("dtype, values, expected", [
    ("float8_e4m3fn", [1.0625, 1.1875, 500.0, -3.3, 0.0, 2.0 ** -9 * 0.5, 2.0 ** -9 * 1.5, 0.0013],
     [1.0, 1.25, 448.0, -3.25, 0.0, 0.0, 2.0 ** -8, 2.0 ** -9]),
    ("float8_e5m2", [1.125, 1.375, 1e6, -3.3, 2.0 ** -16 * 2.5], [1.0, 1.5, 57344.0, -3.5, 2.0 ** -15]),
])
def test_quantize_and_dequantize_rounds_to_the_float8_grid(xp, dtype, values, expected):
    # ties go to the even mantissa; values beyond the range clip to its largest; subnormals have a fixed step
    out = quantizers.quantize_and_dequantize(xp.asarray(values, dtype="float32"), numpy.float32(1.0), dtype,
                                             "float32")
    numpy.testing.assert_array_equal(to_numpy(out), numpy.asarray(expected, "float32"))
    scaled = quantizers.quantize_and_dequantize(xp.asarray(values, dtype="float32"), numpy.float32(0.5), dtype,
                                                "float32")
    numpy.testing.assert_array_equal(to_numpy(scaled)[:2], numpy.asarray(expected, "float32")[:2])
    with pytest.raises(ValueError, match="quantized_dtype must be one of"):
        quantizers.quantize_and_dequantize(xp.asarray(values), 1.0, "int8", "float32")


def test_int4_packing_round_trips(xp):
    values = numpy.random.default_rng(4).integers(-8, 8, (5, 4, 3)).astype("int8")
    for axis in (0, 1, -1):
        packed, shape, length = quantizers.pack_int4(xp.asarray(values), axis)
        assert packed.dtype == numpy.int8 and shape == tuple(packed.shape) and length == values.shape[axis]
        assert packed.shape[axis] == (values.shape[axis] + 1) // 2
        front = numpy.moveaxis(values, axis, 0)
        front = numpy.concatenate([front, numpy.zeros((front.shape[0] % 2,) + front.shape[1:], "int8")])
        expected = ((front[::2].astype(int) & 15) | ((front[1::2].astype(int) & 15) << 4)).astype("uint8")
        numpy.testing.assert_array_equal(to_numpy(packed).view("uint8"), numpy.moveaxis(expected, 0, axis))
        numpy.testing.assert_array_equal(to_numpy(quantizers.unpack_int4(packed, length, axis)), values)
    unsigned = values.astype("uint8") & 15
    packed, _, length = quantizers.pack_int4(xp.asarray(unsigned), 0, dtype="uint8")
    numpy.testing.assert_array_equal(to_numpy(quantizers.unpack_int4(packed, length, 0, dtype="uint8")), unsigned)
    with pytest.raises(TypeError, match="Expected int8 tensor for packing, got int32"):
        quantizers.pack_int4(xp.asarray(values.astype("int32")))
    with pytest.raises(ValueError, match="'int8' or 'uint8'"):
        quantizers.unpack_int4(packed, length, dtype="int4")
