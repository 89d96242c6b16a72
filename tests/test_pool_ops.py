"""ops/pool.py: each pooling against a plain NumPy expectation, gradients against float64 finite differences.

The expectation visits every output position and reduces its window's
in-bounds values (a loop over positions, on small sizes), the argmax
being the first maximum in row-major window order with NaN winning.
"""
import numpy
import pytest

from gpu_dl.backend import to_numpy
from gpu_dl.ops import pool
from gradcheck import assert_gradient


def expected_pool(x, pool_size, strides, padding, kind):
    n, h, w, c = x.shape
    (pt, pb), (pl, pr) = padding
    oh = (h + pt + pb - pool_size[0]) // strides[0] + 1
    ow = (w + pl + pr - pool_size[1]) // strides[1] + 1
    y = numpy.empty((n, oh, ow, c))
    argmax = numpy.empty((n, oh, ow, c), dtype=numpy.int32)
    for i in range(oh):
        for j in range(ow):
            positions = [(r * pool_size[1] + q, i * strides[0] - pt + r, j * strides[1] - pl + q)
                         for r in range(pool_size[0]) for q in range(pool_size[1])]
            positions = [(t, a, b) for t, a, b in positions if 0 <= a < h and 0 <= b < w]
            values = numpy.stack([x[:, a, b, :] for _, a, b in positions], axis=-1)   # (n, c, taps)
            if kind == "avg":
                y[:, i, j, :] = values.mean(axis=-1)
            else:
                first = values.argmax(axis=-1)
                y[:, i, j, :] = numpy.take_along_axis(values, first[..., None], axis=-1)[..., 0]
                argmax[:, i, j, :] = numpy.array([t for t, _, _ in positions])[first]
    return y, argmax


# (shape, pool, strides, padding): odd sizes, overlapping and gapped windows, asymmetric padding.
CASES = [
    ((1, 1, 1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
    ((3, 17, 17, 3), (2, 2), (2, 2), ((0, 1), (0, 1))),
    ((2, 17, 33, 5), (3, 3), (2, 2), ((1, 1), (1, 1))),
    ((1, 33, 17, 2), (3, 3), (1, 1), ((1, 1), (1, 1))),
    ((2, 9, 11, 3), (2, 3), (3, 1), ((1, 0), (2, 0))),
    ((3, 3, 3, 4), (3, 3), (3, 3), ((0, 0), (0, 0))),
    ((2, 7, 8, 1), (2, 2), (3, 3), ((0, 1), (1, 0))),
    ((1, 13, 14, 2), (12, 11), (1, 2), ((0, 0), (0, 0))),   # 132 taps: past an int8 window index
]


@pytest.mark.parametrize("shape,pool_size,strides,padding", CASES)
def test_max_pool_matches_expectation_and_finite_differences(xp, rng, shape, pool_size, strides, padding):
    x_host = rng.standard_normal(shape)
    x = xp.asarray(x_host)
    y, argmax = pool.max_pool2d_forward(x, pool_size, strides, padding)
    want_y, want_argmax = expected_pool(x_host, pool_size, strides, padding, "max")
    numpy.testing.assert_array_equal(to_numpy(y), want_y)
    numpy.testing.assert_array_equal(to_numpy(argmax), want_argmax)
    assert argmax.dtype == numpy.int32
    weights = xp.asarray(rng.standard_normal(y.shape))
    dx = pool.max_pool2d_backward(weights, argmax, x.shape, pool_size, strides, padding)
    assert_gradient(lambda v: (pool.max_pool2d_forward(v, pool_size, strides, padding)[0] * weights).sum(),
                    x, dx, rng, what="max pooling input")


@pytest.mark.parametrize("shape,pool_size,strides,padding", CASES)
def test_average_pool_matches_expectation_and_finite_differences(xp, rng, shape, pool_size, strides, padding):
    x_host = rng.standard_normal(shape)
    x = xp.asarray(x_host)
    y = pool.avg_pool2d_forward(x, pool_size, strides, padding)
    numpy.testing.assert_allclose(to_numpy(y), expected_pool(x_host, pool_size, strides, padding, "avg")[0],
                                  rtol=1e-12, atol=1e-12)
    weights = xp.asarray(rng.standard_normal(y.shape))
    dx = pool.avg_pool2d_backward(weights, x.shape, pool_size, strides, padding)
    assert_gradient(lambda v: (pool.avg_pool2d_forward(v, pool_size, strides, padding) * weights).sum(),
                    x, dx, rng, what="average pooling input")


def test_max_pool_ties_pick_the_first_and_nan_wins(xp):
    x = numpy.zeros((1, 2, 4, 2))
    x[0, :, :, 0] = [[1, 3, 3, 0], [3, 2, 5, 5]]     # ties: first in row-major window order
    x[0, :, :, 1] = [[1, numpy.nan, 7, 9], [numpy.nan, 2, 8, 1]]
    y, argmax = pool.max_pool2d_forward(xp.asarray(x), (2, 2), (2, 2), ((0, 0), (0, 0)))
    numpy.testing.assert_array_equal(to_numpy(argmax)[0, 0, :, 0], [1, 2])
    numpy.testing.assert_array_equal(to_numpy(argmax)[0, 0, :, 1], [1, 1])
    assert numpy.isnan(to_numpy(y)[0, 0, 0, 1]) and to_numpy(y)[0, 0, 1, 1] == 9


@pytest.mark.parametrize("shape,pool_size,strides,padding", CASES)
def test_max_pool_ties_in_finite_data_pick_the_first(xp, rng, shape, pool_size, strides, padding):
    """Finite inputs take the NumPy path's select-free loop: with ties everywhere (values in {-1, 0, 1})
    it must still pick each window's first maximum, and never its padding."""
    x_host = rng.integers(-1, 2, shape).astype(numpy.float64)
    y, argmax = pool.max_pool2d_forward(xp.asarray(x_host), pool_size, strides, padding)
    want_y, want_argmax = expected_pool(x_host, pool_size, strides, padding, "max")
    numpy.testing.assert_array_equal(to_numpy(y), want_y)
    numpy.testing.assert_array_equal(to_numpy(argmax), want_argmax)


def test_max_pool_backward_keeps_a_nan_gradient_at_its_argmax(xp):
    x = numpy.arange(16.0).reshape(1, 4, 4, 1)
    y, argmax = pool.max_pool2d_forward(xp.asarray(x), (2, 2), (2, 2), ((0, 0), (0, 0)))
    dy = numpy.ones((1, 2, 2, 1))
    dy[0, 0, 0, 0] = numpy.nan
    dx = to_numpy(pool.max_pool2d_backward(xp.asarray(dy), argmax, x.shape, (2, 2), (2, 2), ((0, 0), (0, 0))))
    assert numpy.isnan(dx[0, 1, 1, 0]) and numpy.isnan(dx).sum() == 1     # 5 is the first window's maximum
    assert numpy.nansum(dx) == 3.0 and (dx[~numpy.isnan(dx)] != 0).sum() == 3


def test_max_pool_never_picks_padding_even_below_every_value(xp):
    """An all -inf window with padding still routes its gradient to an in-bounds position."""
    x = xp.asarray(numpy.full((1, 3, 3, 1), -numpy.inf))
    y, argmax = pool.max_pool2d_forward(x, (2, 2), (2, 2), ((0, 1), (0, 1)))
    assert to_numpy(argmax)[0, 1, 1, 0] == 0          # (2, 2) is the window's only in-bounds position
    dx = pool.max_pool2d_backward(xp.ones(y.shape), argmax, x.shape, (2, 2), (2, 2), ((0, 1), (0, 1)))
    assert float(to_numpy(dx).sum()) == 4.0


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 17, 5, 3), (2, 4, 33, 17)])
def test_global_pools_match_expectation_and_finite_differences(xp, rng, shape):
    x_host = rng.standard_normal(shape)
    x = xp.asarray(x_host)
    y, argmax = pool.global_max_pool2d_forward(x)
    numpy.testing.assert_array_equal(to_numpy(y), x_host.max(axis=(1, 2)))
    flat = x_host.reshape(shape[0], -1, shape[3])
    numpy.testing.assert_array_equal(to_numpy(argmax), flat.argmax(axis=1))
    numpy.testing.assert_allclose(to_numpy(pool.global_avg_pool2d_forward(x)), x_host.mean(axis=(1, 2)),
                                  rtol=1e-12)
    weights = xp.asarray(rng.standard_normal((shape[0], shape[3])))
    dx = pool.global_max_pool2d_backward(weights, argmax, x.shape)
    assert_gradient(lambda v: (pool.global_max_pool2d_forward(v)[0] * weights).sum(), x, dx, rng,
                    what="global max pooling input")
    dx = pool.global_avg_pool2d_backward(weights, x.shape)
    assert_gradient(lambda v: (pool.global_avg_pool2d_forward(v) * weights).sum(), x, dx, rng,
                    what="global average pooling input")


def test_float32_pooling_stays_float32(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 5, 5, 3)), dtype=xp.float32)
    y, _ = pool.max_pool2d_forward(x, (2, 2), (2, 2), ((0, 1), (0, 1)))
    assert y.dtype == numpy.float32
    y = pool.avg_pool2d_forward(x, (2, 2), (2, 2), ((0, 1), (0, 1)))
    assert y.dtype == numpy.float32
    assert pool.avg_pool2d_backward(y, x.shape, (2, 2), (2, 2), ((0, 1), (0, 1))).dtype == numpy.float32
