"""Device choice: auto falls back to NumPy, cpu is NumPy, gpu without a GPU is a clear error."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend
from gpu_dl.backend import device as device_module


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
