"""Fixtures shared by the suite.

``xp`` runs a test body once per backend: NumPy always, CuPy where a CUDA
device answers (skipped otherwise). It also makes that backend current, so
layers built inside the test put their weights there.

Every test runs with kernel outputs poisoned (NaN, or -1 for integers)
before each launch, so an element a kernel fails to write cannot pass.
"""
import numpy
import pytest

from gpu_dl import backend
from gpu_dl.backend import launch


def _gpu_available():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    if request.param == "cupy":
        if not _gpu_available():
            pytest.skip("no CUDA device: the GPU tier runs on a GPU machine")
        previous = backend.get_device()
        backend.set_device("gpu")
        import cupy
        yield cupy
    else:
        previous = backend.get_device()
        backend.set_device("cpu")
        yield numpy
    backend.set_device(previous)


@pytest.fixture
def rng():
    return numpy.random.default_rng(1234)


@pytest.fixture(autouse=True)
def poisoned_kernel_outputs():
    with launch.poisoned_outputs():
        yield


@pytest.fixture
def cupy_only():
    """CuPy, for tests of a kernel launcher itself; skipped without a CUDA device."""
    if not _gpu_available():
        pytest.skip("no CUDA device: the GPU tier runs on a GPU machine")
    previous = backend.get_device()
    backend.set_device("gpu")
    import cupy
    yield cupy
    backend.set_device(previous)
