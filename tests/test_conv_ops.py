"""ops/convolution.py: forward against a plain NumPy expectation, both gradients against float64 finite differences.

The expectation sums, tap by tap, the products of a strided slice of the
padded input with that tap's (Cin, Cout) matrix: a formulation that shares
nothing with the im2col view the NumPy path uses, or with the GPU kernels.
"""
import numpy
import pytest

from gpu_dl.backend import to_numpy
from gpu_dl.ops import convolution as conv
from gradcheck import assert_gradient


def expected_conv(x, kernel, strides, padding, dilation):
    kh, kw, _, cout = kernel.shape
    (pt, pb), (pl, pr) = padding
    padded = numpy.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh = (x.shape[1] + pt + pb - dilation[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (x.shape[2] + pl + pr - dilation[1] * (kw - 1) - 1) // strides[1] + 1
    y = numpy.zeros((x.shape[0], oh, ow, cout))
    for r in range(kh):
        for q in range(kw):
            h0, w0 = r * dilation[0], q * dilation[1]
            patch = padded[:, h0:h0 + strides[0] * (oh - 1) + 1:strides[0],
                           w0:w0 + strides[1] * (ow - 1) + 1:strides[1]]
            y += numpy.einsum("nhwc,co->nhwo", patch, kernel[r, q])
    return y


# (batch, H, W, Cin, Cout, kernel, strides, padding, dilation): odd sizes, strides 1-3, dilation 1-2,
# asymmetric and "same" padding, 1x1 and non-square kernels.
CASES = [
    (1, 1, 1, 1, 1, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (3, 17, 17, 3, 5, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    (2, 17, 33, 3, 4, (3, 3), (2, 2), ((0, 1), (1, 1)), (1, 1)),
    (1, 33, 17, 17, 3, (1, 1), (3, 3), ((0, 0), (0, 0)), (1, 1)),
    (3, 17, 17, 2, 33, (3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),
    (2, 9, 11, 4, 3, (2, 5), (2, 3), ((1, 2), (0, 3)), (1, 1)),
    (1, 3, 3, 3, 2, (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (2, 8, 7, 3, 2, (3, 2), (1, 1), ((1, 3), (2, 1)), (2, 1)),
    (2, 17, 9, 1, 5, (3, 3), (2, 1), ((1, 1), (0, 2)), (1, 2)),   # one channel: tap-major im2col
    # stride 1 with Cin >= max(8, 4 Cout): the forward's tap-split product; with Cout >= max(8, 4 Cin),
    # the input gradient's (the turned kernel's channels are swapped)
    (3, 17, 17, 17, 4, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    (2, 9, 11, 8, 33, (2, 5), (1, 1), ((0, 1), (2, 2)), (1, 1)),
    (1, 17, 9, 33, 3, (3, 3), (1, 1), ((2, 2), (0, 4)), (2, 2)),
    (2, 5, 5, 8, 4, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (1, 3, 3, 9, 2, (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)),
]


@pytest.mark.parametrize("case", CASES)
def test_conv2d_forward_matches_expectation(xp, rng, case):
    n, h, w, cin, cout, window, strides, padding, dilation = case
    x = rng.standard_normal((n, h, w, cin))
    kernel = rng.standard_normal(window + (cin, cout))
    y = conv.conv2d_forward(xp.asarray(x), xp.asarray(kernel), strides=strides, padding=padding, dilation=dilation)
    numpy.testing.assert_allclose(to_numpy(y), expected_conv(x, kernel, strides, padding, dilation),
                                  rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_conv2d_gradients_match_finite_differences(xp, rng, case):
    n, h, w, cin, cout, window, strides, padding, dilation = case
    args = {"strides": strides, "padding": padding, "dilation": dilation}
    x = xp.asarray(rng.standard_normal((n, h, w, cin)))
    kernel = xp.asarray(rng.standard_normal(window + (cin, cout)))
    y = conv.conv2d_forward(x, kernel, **args)
    weights = xp.asarray(rng.standard_normal(y.shape))
    dx = conv.conv2d_backward_input(weights, kernel, x.shape, **args)
    dkernel = conv.conv2d_backward_kernel(x, weights, kernel.shape, **args)
    assert dx.dtype == numpy.float64 and dkernel.dtype == numpy.float64
    assert_gradient(lambda v: (conv.conv2d_forward(v, kernel, **args) * weights).sum(), x, dx, rng,
                    what="conv2d input")
    assert_gradient(lambda v: (conv.conv2d_forward(x, v, **args) * weights).sum(), kernel, dkernel, rng,
                    what="conv2d kernel")
    numpy.testing.assert_allclose(to_numpy(conv.bias_gradient(weights)), to_numpy(weights).sum(axis=(0, 1, 2)))


# Row counts on both sides of the two-stage split (4096), with and without rows left over after the parts.
@pytest.mark.parametrize("rows, channels", [(1, 3), (17, 64), (4095, 5), (4096, 1), (5003, 3), (10000, 64)])
def test_bias_gradient_sums_every_row(xp, rng, rows, channels):
    dy = rng.standard_normal((rows, channels))
    cases = [(numpy.float64, 1e-10), (numpy.float32, 2e-3)]
    if rows >= 4096:   # the two stages add float16 in float32 (a one-stage sum's accumulator is its library's)
        cases.append((numpy.float16, 0.5))
    for dtype, atol in cases:
        cast = dy.astype(dtype)
        got = conv.bias_gradient(xp.asarray(cast).reshape(1, rows, 1, channels))
        assert got.dtype == dtype and got.shape == (channels,)
        numpy.testing.assert_allclose(to_numpy(got).astype(numpy.float64), cast.astype(numpy.float64).sum(axis=0),
                                      rtol=1e-3 if dtype == numpy.float16 else 1e-6, atol=atol)


def test_bias_gradient_splits_a_convolutions_rows():
    """The benchmark's dy (128 x 28 x 28 and 128 x 56 x 56 rows) is summed in about sqrt(M) parts of about
    sqrt(M) rows (CuPy's one-stage reduction over axis 0 runs ceil(C / 32) blocks); small ones in one stage."""
    assert conv.bias_row_split(1) == conv.bias_row_split(4095) == 1
    for rows in (128 * 28 * 28, 128 * 56 * 56):
        parts = conv.bias_row_split(rows)
        assert 300 <= parts <= 700 and rows // parts <= 700, (rows, parts)
    assert conv.bias_row_split(4096) == 64


def test_conv2d_float32_stays_float32(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 6, 6, 3)), dtype=xp.float32)
    kernel = xp.asarray(rng.standard_normal((3, 3, 3, 4)), dtype=xp.float32)
    y = conv.conv2d_forward(x, kernel, padding=((1, 1), (1, 1)))
    assert y.dtype == numpy.float32 and y.shape == (2, 6, 6, 4)
    dx = conv.conv2d_backward_input(y, kernel, x.shape, padding=((1, 1), (1, 1)))
    dk = conv.conv2d_backward_kernel(x, y, kernel.shape, padding=((1, 1), (1, 1)))
    assert dx.dtype == numpy.float32 and dk.dtype == numpy.float32


@pytest.mark.parametrize("cin,strides", [(1, (1, 1)), (3, (1, 1)), (3, (2, 2)), (16, (1, 1))])
@pytest.mark.parametrize("budget,blocks", [(1, 5 * 19), ("two samples", 3)])
def test_conv2d_blocks_give_the_same_result(monkeypatch, rng, cin, strides, budget, blocks):
    """The NumPy path takes im2col rows in blocks (of samples, or of one sample's output rows), and the
    tap split (Cin = 16, Cout = 4) rows in blocks; blocks of any size, a short last one included, must
    give what one block does."""
    x = rng.standard_normal((5, 19, 17, cin))
    kernel = rng.standard_normal((3, 3, cin, 4))
    padding = ((1, 1), (1, 1))
    dy = rng.standard_normal(conv.conv2d_forward(x, kernel, strides=strides, padding=padding).shape)

    def all_three():
        return (conv.conv2d_forward(x, kernel, strides=strides, padding=padding),
                conv.conv2d_backward_input(dy, kernel, x.shape, strides=strides, padding=padding),
                conv.conv2d_backward_kernel(x, dy, kernel.shape, strides=strides, padding=padding))

    whole = all_three()
    windows = conv._windows(conv._padded(x, padding), (3, 3), (1, 1), (1, 1), (19, 17))
    if budget == "two samples":
        budget = 2 * 19 * 17 * 9 * cin * x.itemsize
    monkeypatch.setattr(conv, "_IM2COL_BYTES", budget)
    monkeypatch.setattr(conv, "_TAP_SPLIT_BLOCK_BYTES", 1)
    assert len(conv._row_blocks(5 * 21 * 19, 20, 8)) == 8          # 1995 rows in blocks of 256
    assert len(list(conv._column_blocks(windows))) == blocks   # 5 samples of 19 output rows: 95 bands, or 2+2+1
    for a, b in zip(whole, all_three()):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size,window,stride,dilation,expected", [
    (28, 3, 1, 1, (1, 1)), (28, 3, 2, 1, (0, 1)), (5, 2, 2, 1, (0, 1)), (6, 1, 2, 1, (0, 0)),
    (7, 3, 1, 2, (2, 2)), (10, 4, 3, 1, (1, 2)), (1, 5, 1, 1, (2, 2)),
])
def test_same_padding_puts_the_odd_pad_after(size, window, stride, dilation, expected):
    pads = conv.same_padding(size, window, stride, dilation)
    assert pads == expected
    assert conv.conv_output_length(size, window, stride, dilation, *pads) == -(-size // stride)


def test_no_output_position_is_an_error():
    with pytest.raises(ValueError, match="no output position"):
        conv.conv2d_forward(numpy.ones((1, 2, 2, 1)), numpy.ones((3, 3, 1, 1)))
