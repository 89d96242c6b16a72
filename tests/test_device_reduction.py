"""ops/device_reduction.py: leading-axis sums against NumPy's float64 sums, on both sides of the two-stage split
(4096 rows) and with rows left over after the parts; other axes and non-contiguous arrays as plain sums."""
import numpy
import pytest

from gpu_dl.backend import to_numpy
from gpu_dl.ops import device_reduction as red


def test_row_split_parts_of_about_sqrt_rows():
    assert red.row_split(1) == red.row_split(4095) == 1
    assert red.row_split(4096) == 64
    for rows in (4097, 5003, 65536, 32 * 64 * 64, 64 * 1024):
        parts = red.row_split(rows)
        assert parts * parts <= rows * 1.1 and rows // parts <= 2 * numpy.sqrt(rows), (rows, parts)
        assert rows - parts * (rows // parts) < parts      # the leftover rows: fewer than one per part


# Leading axes whose product is on both sides of 4096 rows (64 * 67 = 4288 leaves rows after the parts), a
# leading axis listed out of order or as a negative number, keepdims both ways.
@pytest.mark.parametrize("shape, axes", [((4, 5, 6), (0,)), ((4, 5, 6), (0, 1)), ((64, 67, 3), (0, 1)),
                                         ((64, 67, 3), (1, 0)), ((4100, 2, 3), (0,)), ((8, 16, 40, 2), (0, 1, 2)),
                                         ((4100, 3), -2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float16])
def test_sum_axes_over_leading_axes(xp, rng, shape, axes, keepdims, dtype):
    if dtype == numpy.float16 and xp is numpy:
        pytest.skip("NumPy arrays take NumPy's own float16 sum, which adds in float16")
    a = rng.standard_normal(shape).astype(dtype)
    got = red.sum_axes(xp.asarray(a), axes, keepdims=keepdims)
    want = a.astype(numpy.float64).sum(axis=axes, keepdims=keepdims)
    assert got.dtype == dtype and got.shape == want.shape
    # float16: the split adds in float32; NumPy's one-stage float16 sum is pairwise
    tolerance = (1e-5, 1e-3) if dtype == numpy.float32 else (1e-2, 0.5)
    numpy.testing.assert_allclose(to_numpy(got).astype(numpy.float64), want, *tolerance)


# Not a leading prefix, every axis, no axis, a transposed (non-contiguous) array: a plain sum.
@pytest.mark.parametrize("axes", [(1,), (0, 2), (1, 2), (0, 1, 2), ()])
@pytest.mark.parametrize("transposed", [False, True])
def test_sum_axes_other_axes_and_layouts(xp, rng, axes, transposed):
    a = rng.standard_normal((70, 80, 5)).astype(numpy.float32)
    if transposed:
        a = a.transpose(1, 0, 2)
    got = red.sum_axes(xp.asarray(a) if not transposed else xp.asarray(a.transpose(1, 0, 2)).transpose(1, 0, 2),
                       axes, keepdims=True)
    want = a.astype(numpy.float64).sum(axis=axes, keepdims=True)
    assert got.shape == want.shape
    numpy.testing.assert_allclose(to_numpy(got), want, rtol=1e-5, atol=1e-3)
