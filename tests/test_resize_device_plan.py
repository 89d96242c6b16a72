"""ops/resize.py's GPU backward (an atomic-add scatter per interpolation node) and its cached sampling plans,
against the dense float64 interpolation matrices of each axis, upsampling and downsampling, float32 and
float16."""
import numpy
import pytest

from gpu_dl.backend import to_numpy
from gpu_dl.ops import resize as rs


def dense_matrix(n_in, n_out, interpolation):
    """(n_out, n_in) float64: row o holds the weights output o reads its input entries with."""
    m = numpy.zeros((n_out, n_in))
    for index, weight in rs.axis_plan(n_in, n_out, interpolation, numpy.float64):
        numpy.add.at(m, (numpy.arange(n_out), index), 1.0 if weight is None else weight)
    return m


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("size, target", [((5, 7), (11, 16)), ((12, 9), (5, 4)), ((6, 6), (6, 13))])
@pytest.mark.parametrize("dtype, rtol", [(numpy.float32, 1e-5), (numpy.float16, 3e-3)])
def test_resize_backward_is_the_transposed_interpolation(xp, rng, interpolation, size, target, dtype, rtol):
    dy = rng.standard_normal((2,) + target + (3,)).astype(dtype)
    rows, cols = dense_matrix(size[0], target[0], interpolation), dense_matrix(size[1], target[1], interpolation)
    want = numpy.einsum("ph,qw,npqc->nhwc", rows, cols, dy.astype(numpy.float64))
    got = rs.resize_backward(xp.asarray(dy), *size, interpolation=interpolation)
    assert got.dtype == dtype and got.shape == (2,) + size + (3,)
    numpy.testing.assert_allclose(to_numpy(got).astype(numpy.float64), want, rtol=rtol, atol=rtol)


def test_resize_reuses_its_device_plans(xp, rng):
    x = xp.asarray(rng.standard_normal((1, 4, 6, 2)).astype(numpy.float32))
    rs.resize(x, 8, 3)
    first = rs._plan_of(x, 6, 3, "bilinear")
    rs.resize(x, 8, 3)
    assert rs._plan_of(x, 6, 3, "bilinear") is first
    (index, weight), _ = first
    assert type(index) is type(x) and weight.dtype == numpy.float32
    assert rs._plan_of(x.astype(numpy.float64), 6, 3, "bilinear")[0][1].dtype == numpy.float64
