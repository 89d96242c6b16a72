"""The exact integer product of the int8 layers (``layers.quantized.integer_product``): float32 products over
blocks of at most 1024 terms, equal to an int64 NumPy product on random int8 data with the extreme values
(-128 and 127) included, at 1 term, the block bound, one past it and about 3000 terms, for matmuls and for
einsums that sum over one or two axes; and the layers' int8 forward through it."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.layers import quantized
from gpu_dl.layers.quantized import EXACT_FLOAT32_TERMS, integer_product


def int8_data(rng, shape):
    """Random int8 values with both extremes present."""
    a = rng.integers(-128, 128, size=shape, dtype=numpy.int8)
    flat = a.reshape(-1)
    flat[: flat.size // 3] = -128       # many extreme terms: the worst case of the bound
    flat[flat.size // 3: flat.size // 2] = 127
    flat[:] = flat[rng.permutation(flat.size)]
    return a


class Spy:
    """A contraction that records its operands' dtypes and summed sizes."""

    def __init__(self, contract, axis):
        self.contract, self.axis, self.calls = contract, axis, []

    def __call__(self, a, b):
        self.calls.append((a.dtype, a.shape[self.axis]))
        return self.contract(a, b)


@pytest.mark.parametrize("k", [1, EXACT_FLOAT32_TERMS, EXACT_FLOAT32_TERMS + 1, 3001])
def test_matmul_is_the_int64_product(xp, k):
    rng = numpy.random.default_rng(k)
    a, b = int8_data(rng, (3, k)), int8_data(rng, (k, 17))
    a[0], b[:, 0] = -128, -128          # one output sums k terms of 2**14, the largest there are
    spy = Spy(lambda p, q: p @ q, -1)
    got = integer_product(xp.asarray(a), xp.asarray(b), spy)
    assert got.dtype == numpy.float64 and type(got) is type(xp.asarray(a))
    want = a.astype(numpy.int64) @ b.astype(numpy.int64)
    numpy.testing.assert_array_equal(to_numpy(got), want.astype(numpy.float64))
    assert int(want[0, 0]) == k * 2 ** 14
    # float32 products, each summing at most the bound
    assert all(dtype == numpy.float32 and size <= EXACT_FLOAT32_TERMS for dtype, size in spy.calls)
    assert sum(size for _, size in spy.calls) == k
    assert len(spy.calls) == -(-k // EXACT_FLOAT32_TERMS)


def test_the_bound_is_the_last_exact_float32_sum():
    # one more term of 2**14 than the bound leaves float32's exact integers: blocks are needed there
    assert EXACT_FLOAT32_TERMS * 2 ** 14 == 2 ** 24
    assert numpy.float32(2 ** 24) + numpy.float32(1) == numpy.float32(2 ** 24)


@pytest.mark.parametrize("c, d, calls", [
    (40, 30, 2),        # 1200 terms: blocks of 34 along c, each 34 * 30 = 1020 terms
    (3, 7, 1),          # 21 terms: one float32 product
    (2, 1100, 1),       # d alone exceeds the bound: one float64 product
])
def test_einsum_over_two_axes_is_the_int64_product(xp, c, d, calls):
    rng = numpy.random.default_rng(c * d)
    equation = "abcd,cde->abe"
    a, b = int8_data(rng, (2, 3, c, d)), int8_data(rng, (c, d, 5))
    layout = quantized.EinsumScaleLayout("abcd", "cde", "abe")
    assert layout.pairs == ((2, 0), (3, 1)) and layout.terms(a.shape, b.shape) == c * d
    spy = Spy(lambda p, q: xp.einsum(equation, p, q), 2)
    got = integer_product(xp.asarray(a), xp.asarray(b), spy, layout.pairs, layout.terms(a.shape, b.shape))
    want = numpy.einsum(equation, a.astype(numpy.int64), b.astype(numpy.int64))
    numpy.testing.assert_array_equal(to_numpy(got), want.astype(numpy.float64))
    assert len(spy.calls) == calls
    expected_dtype = numpy.float64 if c * d > EXACT_FLOAT32_TERMS and calls == 1 else numpy.float32
    assert all(dtype == expected_dtype for dtype, _ in spy.calls)


def test_einsum_summing_an_axis_of_the_inputs_alone(xp):
    # "abc,cd->ad" sums b in the inputs alone: each output holds b * c terms, blocked along c
    rng = numpy.random.default_rng(5)
    layout = quantized.EinsumScaleLayout("abc", "cd", "ad")
    a, b = int8_data(rng, (2, 9, 300)), int8_data(rng, (300, 4))
    assert layout.pairs == ((2, 0),) and layout.terms(a.shape, b.shape) == 2700
    spy = Spy(lambda p, q: xp.einsum("abc,cd->ad", p, q), 2)
    got = integer_product(xp.asarray(a), xp.asarray(b), spy, layout.pairs, layout.terms(a.shape, b.shape))
    numpy.testing.assert_array_equal(to_numpy(got), numpy.einsum("abc,cd->ad", a.astype(numpy.int64),
                                                                 b.astype(numpy.int64)).astype(numpy.float64))
    assert all(9 * size <= EXACT_FLOAT32_TERMS for _, size in spy.calls) and len(spy.calls) == 3


def test_other_dtypes_take_float64(xp):
    a, b = numpy.full((2, 3), 300, numpy.int16), numpy.full((3, 2), -300, numpy.int16)
    spy = Spy(lambda p, q: p @ q, -1)
    numpy.testing.assert_array_equal(to_numpy(integer_product(xp.asarray(a), xp.asarray(b), spy)),
                                     numpy.full((2, 2), -270000.0))
    assert [dtype for dtype, _ in spy.calls] == [numpy.float64]


def test_einsum_dense_int8_forward_is_exact_over_many_terms(xp):
    # 2 x 700 = 1400 terms per output: the layer's product goes in two blocks and stays the int64 product
    rng = numpy.random.default_rng(8)
    layer = layers.EinsumDense("abc,bcd->ad", (6,))
    layer.build((None, 2, 700))
    layer.set_weights([rng.standard_normal((2, 700, 6)).astype("float32")])
    layer.quantize("int8")
    x = rng.standard_normal((3, 2, 700)).astype("float32")
    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    y = to_numpy(layer(xp.asarray(x)))
    scale = numpy.float32(127) / (numpy.abs(x).max(axis=(1, 2), keepdims=True) + numpy.float32(1e-7))
    x_int = numpy.clip(numpy.round(x * scale), -127, 127).astype(numpy.int64)
    exact = numpy.einsum("abc,bcd->ad", x_int, layer.kernel.numpy().astype(numpy.int64))
    numpy.testing.assert_array_equal(y, exact.astype("float32") / (scale.reshape(3, 1) *
                                                                   layer.kernel_scale.numpy().reshape(1, 6)))
