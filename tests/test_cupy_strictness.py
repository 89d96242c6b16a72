"""What CuPy refuses, asserted on the CuPy at hand: a real GPU's, and the emulated GPU's stand-in, which must
refuse the same (host NumPy operands in a ufunc, a host ``out=``, scatter-adds on dtypes CuPy's atomics lack,
synchronisations inside ``cupyx.allow_synchronize(False)``), so that code passing on the emulator passes on a GPU.

GPU tier only (``cupy_only``): ``tests/emulated_gpu/run.py`` runs it on the stand-in.
"""
import numpy
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:cupyx.allow_synchronize")


def _synchronizes(action):
    """Whether ``action()`` raises CuPy's DeviceSynchronized inside ``cupyx.allow_synchronize(False)``."""
    cupyx = pytest.importorskip("cupyx")
    try:
        with cupyx.allow_synchronize(False):
            action()
    except Exception as e:          # cupyx's DeviceSynchronized, by name: its module differs between CuPy versions
        if type(e).__name__ == "DeviceSynchronized":
            return True
        raise
    return False


def test_a_ufunc_refuses_host_arrays_and_takes_scalars(cupy_only):
    cupy = cupy_only
    a = cupy.arange(3, dtype=cupy.float64)
    for host in (numpy.ones(3), numpy.ones(()), numpy.ones((1, 3))):
        for call in (lambda: a + host, lambda: host * a, lambda: cupy.add(a, host), lambda: cupy.maximum(host, a),
                     lambda: a @ numpy.ones((3, 2)) if host.ndim else a < host):
            with pytest.raises(TypeError, match="Unsupported type"):
                call()
    with pytest.raises(TypeError, match="Unsupported type"):
        cupy.add(numpy.ones(3), numpy.ones(3))          # no device array at all
    numpy.testing.assert_array_equal(cupy.asnumpy(a + 1 + 0.5 + numpy.float32(2) + numpy.int64(1) + True),
                                     numpy.arange(3) + 5.5)


def test_an_out_that_is_not_a_device_array_is_refused(cupy_only):
    cupy = cupy_only
    a = cupy.ones((2, 3), dtype=cupy.float32)
    with pytest.raises(TypeError):
        cupy.multiply(a, 2, out=numpy.empty((2, 3), numpy.float32))
    with pytest.raises(TypeError):
        numpy.matmul(a, a.T, out=numpy.empty((2, 2), numpy.float32))
    out = cupy.empty((2, 2), dtype=cupy.float32)
    assert cupy.matmul(a, a.T, out=out) is out and float(out.sum()) == 12.0


def test_results_stay_on_the_device_down_to_0_d(cupy_only):
    cupy = cupy_only
    a = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
    for value in (a.sum(), a[1, 2], a.max() * 2, cupy.asarray(0.5) / 2):
        assert isinstance(value, cupy.ndarray) and value.ndim == 0
    assert float(a[1, 2]) == 5.0


def test_add_at_takes_host_indices_and_refuses_dtypes_without_atomics(cupy_only):
    cupy = cupy_only
    target = cupy.zeros(4, dtype=cupy.float32)
    cupy.add.at(target, numpy.array([0, 2, 2]), cupy.ones(3, dtype=cupy.float32))
    numpy.testing.assert_array_equal(cupy.asnumpy(target), [1, 0, 2, 0])
    for dtype in ("int64", "int8", "bool"):
        with pytest.raises(TypeError, match="scatter_add only supports"):
            cupy.add.at(cupy.zeros(4, dtype=dtype), cupy.asarray([1, 1]), cupy.ones(2, dtype=dtype))


def test_reads_back_and_size_dependent_functions_synchronise(cupy_only):
    cupy = cupy_only
    a = cupy.asarray([0.0, 2.0, 0.0, 3.0])
    ids = cupy.asarray([0, 1, 1, 3])
    for action in (lambda: a.get(), lambda: cupy.asnumpy(a), lambda: a[1].item(), lambda: float(a.sum()),
                   lambda: int(ids[0]), lambda: bool(a[0] > 1), lambda: a.tolist(), lambda: cupy.bincount(ids),
                   lambda: cupy.bincount(ids, minlength=5), lambda: cupy.nonzero(a), lambda: cupy.flatnonzero(a),
                   lambda: cupy.argwhere(a), lambda: cupy.unique(ids), lambda: a[a > 1],
                   lambda: cupy.cuda.Device().synchronize()):
        assert _synchronizes(action)
    target = cupy.zeros(4)

    def step():
        y = cupy.tanh(a * 2 + 1).sum(axis=0, keepdims=True)
        cupy.add.at(target, ids, a)
        return cupy.where(a > 1, y, 0), cupy.argmax(a), a[ids]
    assert not _synchronizes(step)
    numpy.testing.assert_allclose(cupy.asnumpy(target), [0, 2, 0, 3])


def test_layers_on_the_gpu_take_host_numpy_inputs_to_the_device(cupy_only):
    """As Keras converts a NumPy input to a tensor on the current device: the weights live there, and CuPy
    refuses host operands (a ConvLSTM's dropout masks were drawn in the input's module, then met the kernel)."""
    from gpu_dl import layers
    from gpu_dl.backend import to_numpy
    cupy = cupy_only
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 5)).astype("float32")
    dense = layers.Dense(3)
    from_host = dense(x)
    assert isinstance(from_host, cupy.ndarray)
    k, b = dense.get_weights()
    numpy.testing.assert_allclose(to_numpy(from_host), x @ k + b, rtol=1e-5, atol=1e-6)
    conv_lstm = layers.ConvLSTM2D(3, 3, padding="same", dropout=0.3, recurrent_dropout=0.2, seed=1)
    y = conv_lstm(rng.standard_normal((2, 4, 5, 5, 2)).astype("float32"), training=True)
    assert isinstance(y, cupy.ndarray) and y.shape == (2, 5, 5, 3) and bool(cupy.isfinite(y).all())
