"""Checks the normalization kernels' tests share: a kernel's output against the NumPy path's."""
import numpy

from gpu_dl.backend import to_numpy


def assert_written_close(got, want, dtype, what, tolerance):
    """``got`` (on either backend) has ``dtype``, no element left unwritten (the launchers poison outputs with
    NaN before the launch) and equals ``want`` within ``tolerance`` (assert_allclose's rtol / atol)."""
    got = to_numpy(got)
    assert got.dtype == numpy.dtype(dtype), f"{what}: dtype {got.dtype}, expected {dtype}"
    assert not numpy.isnan(got).any(), f"{what}: {numpy.isnan(got).sum()} unwritten (NaN) elements"
    numpy.testing.assert_allclose(got, numpy.asarray(want).reshape(got.shape), err_msg=what, **tolerance)


def to_device(cupy, *arrays):
    """Each array on the device (None stays None)."""
    return [None if a is None else cupy.asarray(a) for a in arrays]
