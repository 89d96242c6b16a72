"""Fixtures shared by the suite.

``xp`` runs a test body once per backend: NumPy always, CuPy where a CUDA
device answers (skipped otherwise). It also makes that backend current, so
layers built inside the test put their weights there. Every other test runs
with NumPy current, on a GPU machine too, where the process's default device
would be the GPU: such tests are written with NumPy arrays in and out.
Keras, the oracle of many tests, runs on the CPU wherever the suite runs
(``KERAS_TORCH_DEVICE=cpu`` unless set): on a machine with CUDA its torch
backend would put its tensors on the GPU, which the tests' NumPy
comparisons cannot read. Keras's backend is torch (``KERAS_BACKEND=torch`` unless set) for every test, whichever
imports Keras first: Keras reads the variable once, at its first import, and without it takes the backend of
``~/.keras/keras.json`` (TensorFlow by default), whose failed import leaves some of Keras's modules in
``sys.modules``, bound to the backend module that failed: a later import of Keras on torch succeeds, and then
``keras.backend.clear_session()`` and others raise AttributeError.

Every test starts from the same state of the global random generators (gpu_dl's,
NumPy's, Python's), whichever tests ran before it in its worker, and runs with
kernel outputs poisoned (NaN, or all bits set for other dtypes) before each
launch, so an element a kernel fails to write cannot pass.

Under pytest-xdist (``-n 2``, as the README's test command runs) each worker
gets its share of the cores for BLAS, OpenMP and torch threads, and the tests
marked ``slow`` are handed out first.
"""
import os

import numpy
import pytest

from gpu_dl import backend
from gpu_dl.backend import device as device_state
from gpu_dl.backend import launch

os.environ.setdefault("KERAS_TORCH_DEVICE", "cpu")
os.environ.setdefault("KERAS_BACKEND", "torch")


def pytest_configure(config):
    # The controller sets this before it starts the workers, whose NumPy and torch read it once, at import:
    # with one thread pool per core in every worker, N workers would run N times as many threads as cores.
    # A value already in the environment is kept.
    workers = getattr(config.option, "numprocesses", None)
    if workers and not hasattr(config, "workerinput"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, str(max(1, cores // workers)))


def pytest_addoption(parser):
    parser.addoption("--gpu-bodies-only", action="store_true",
                     help="run only the test bodies that run on the GPU: the xp fixture's cupy case and the tests "
                          "that take cupy_only (the emulated GPU's runs; profiling/gpu_check.sh's tests group)")


def runs_on_gpu(item):
    """Whether a collected test runs on the GPU: the xp fixture's cupy case, or a test that takes cupy_only."""
    callspec = getattr(item, "callspec", None)
    return "cupy_only" in item.fixturenames or (callspec is not None and callspec.params.get("xp") == "cupy")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--gpu-bodies-only"):
        config.hook.pytest_deselected(items=[item for item in items if not runs_on_gpu(item)])
        items[:] = [item for item in items if runs_on_gpu(item)]
    # In an xdist worker (each collects the whole list in the same order, and the controller hands tests out
    # in that order): the long tests first, so that they start early and the short ones fill in around them,
    # rather than one worker running a long test alone at the end.
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _gpu_available():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.fixture(autouse=True)
def numpy_backend_unless_asked():
    # Autouse fixtures are set up before the ones a test asks for, so xp and cupy_only still switch to the GPU.
    saved = (device_state._requested, device_state._resolved)
    backend.set_device("cpu")
    yield
    device_state._requested, device_state._resolved = saved


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
def seeded_generators():
    # gpu_dl's generator (unseeded initializers, dropout, shuffling), NumPy's and Python's global ones start
    # every test from one state: what an unseeded draw gives does not depend on the tests a worker ran before.
    backend.config.set_random_seed(0)
    yield


@pytest.fixture(autouse=True)
def poisoned_kernel_outputs():
    with launch.poisoned_outputs():
        yield


@pytest.fixture
def on_cpu():
    """The NumPy backend current for the test, whatever was current before (restored after)."""
    previous = backend.get_device()
    backend.set_device("cpu")
    yield
    backend.set_device(previous)


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


@pytest.fixture
def eager_rnn_loops():
    """The LSTM/GRU step loops launched step by step from the host (CUDA-graph replay off, ``gpu_dl.ops.rnn_graphs``),
    for tests that pin the eager loop's own work; the setting is restored after."""
    from gpu_dl.backend import config
    from gpu_dl.ops import rnn_graphs
    previous = config.rnn_graphs()
    config.set_rnn_graphs(False)
    rnn_graphs.clear()
    yield
    config.set_rnn_graphs(previous)


@pytest.fixture
def keras_schedule_free_as_on_jax(monkeypatch):
    """Keras 3.15's ScheduleFreeAdamW keeps ``momentum_old = momentum.value`` to recover the average from the
    ``z`` before the step. On JAX and TensorFlow that is a value; on torch it is the slot's own tensor, which
    the step's in-place update of ``z`` then changes. gpu_dl follows the rule (the paper's, and Keras on JAX),
    so the oracle runs Keras's update with each read of a variable's value taken as a copy, as on JAX, the
    variables themselves still assigned in place."""
    import keras
    from keras.src.backend.torch import core
    value = core.Variable.value
    update_step = keras.optimizers.ScheduleFreeAdamW.update_step

    def assign_in_place(variable, new):
        import torch
        with torch.no_grad():
            value.fget(variable).copy_(new)

    def update_with_values_read_as_copies(self, gradient, variable, learning_rate):
        with monkeypatch.context() as inside:
            inside.setattr(core.Variable, "value", property(lambda v: value.fget(v).clone()))
            inside.setattr(core.Variable, "_direct_assign", assign_in_place)
            return update_step(self, gradient, variable, learning_rate)
    monkeypatch.setattr(keras.optimizers.ScheduleFreeAdamW, "update_step", update_with_values_read_as_copies)
