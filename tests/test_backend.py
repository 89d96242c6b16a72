"""Device choice: auto falls back to NumPy, cpu is NumPy, gpu without a GPU is a clear error."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend
from gpu_dl.backend import device as device_module
from gpu_dl.backend import launch, to_numpy


@pytest.fixture
def restore_device():
    saved = (device_module._requested, device_module._resolved)
    yield
    device_module._requested, device_module._resolved = saved


def test_cpu_is_numpy(restore_device):
    assert gpu_dl.set_device("cpu") == "cpu"
    assert backend.xp() is numpy
    assert "CPU" in backend.describe_device()


def test_env_var_chooses_device(restore_device, monkeypatch):
    monkeypatch.setenv("GPU_DL_DEVICE", "CPU")
    device_module._requested = device_module._resolved = None
    assert backend.get_device() == "cpu"
    monkeypatch.setenv("GPU_DL_DEVICE", "tpu")
    device_module._requested = device_module._resolved = None
    with pytest.raises(ValueError, match="GPU_DL_DEVICE must be one of"):
        backend.get_device()


def test_gpu_without_cupy_is_a_clear_error_and_keeps_previous_choice(restore_device, monkeypatch):
    gpu_dl.set_device("cpu")
    monkeypatch.setattr(device_module, "_probe_cupy", lambda: (None, "CuPy is not importable (test)"))
    with pytest.raises(backend.DeviceUnavailableError, match="requested but CuPy is not importable.*cuda12"):
        gpu_dl.set_device("gpu")
    assert backend.get_device() == "cpu"
    assert gpu_dl.set_device("auto") == "cpu"


@pytest.mark.parametrize("bad", ["tpu", "", 3, None])
def test_set_device_rejects_unknown_words(restore_device, bad):
    with pytest.raises((ValueError, TypeError), match="device must be one of"):
        gpu_dl.set_device(bad)


def test_set_random_seed_makes_initialisation_reproducible():
    from gpu_dl import layers
    backend.set_random_seed(7)
    a = layers.Dense(4)
    a.ensure_built((None, 3))
    backend.set_random_seed(7)
    b = layers.Dense(4)
    b.ensure_built((None, 3))
    numpy.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    with pytest.raises(ValueError, match="seed"):
        backend.set_random_seed(-1)


POISON_DTYPES = ["float16", "float32", "float64", "complex64", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64", "bool"]


def assert_poisoned(xp, array, dtype):
    dtype = numpy.dtype(dtype)
    assert array.dtype == dtype
    if dtype.kind in "fc":
        assert bool(xp.isnan(array).all())
        return
    bits = to_numpy(array.view(f"u{dtype.itemsize}"))
    assert (bits == numpy.iinfo(bits.dtype).max).all()           # every bit set
    if dtype.kind == "i":
        assert (to_numpy(array) == -1).all()
    if dtype.kind == "b":
        assert (to_numpy(array.view(numpy.uint8)) > 1).all()     # neither False nor True: detectably unwritten


@pytest.mark.parametrize("dtype", POISON_DTYPES)
def test_poison_fills_every_dtype_and_only_the_view_it_is_given(xp, dtype):
    array = xp.zeros((4, 6), dtype=dtype)
    with launch.poisoned_outputs(False):
        assert launch.poison(array) is array
    assert not bool(array.astype(bool).any())                     # not poisoning: poison() changes nothing
    with launch.poisoned_outputs():
        assert launch.poison(array[:, 1::2]) is not None
    assert_poisoned(xp, array[:, 1::2], dtype)
    assert not bool(array[:, 0::2].astype(bool).any())            # the columns outside the view are untouched


@pytest.mark.parametrize("dtype", POISON_DTYPES)
def test_empty_output_is_poisoned_for_every_dtype(cupy_only, dtype):
    with launch.poisoned_outputs():
        out = launch.empty_output((3, 5), dtype)
    assert isinstance(out, cupy_only.ndarray) and out.shape == (3, 5)
    assert_poisoned(cupy_only, out, dtype)
    with launch.poisoned_outputs(False):
        out = launch.empty_output((2,), dtype)
    assert out.shape == (2,) and out.dtype == numpy.dtype(dtype)
