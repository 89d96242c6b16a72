"""Which array module runs the maths: NumPy on the host, or CuPy on an NVIDIA GPU.

The choice comes from ``gpu_dl.set_device(...)`` or, failing that, the
``GPU_DL_DEVICE`` environment variable (``auto``, ``cpu`` or ``gpu``; default
``auto``). ``auto`` takes the GPU when CuPy imports and a device answers, and
NumPy otherwise. Nothing here needs CuPy to be installed.

Choose the device before building a model: weights live on the device that
was current when the layer was built.
"""
from __future__ import annotations

import contextlib
import os

import numpy

DEVICE_WORDS = ("auto", "cpu", "gpu")


class DeviceUnavailableError(RuntimeError):
    """The GPU was asked for, but CuPy or a CUDA device is missing."""


_requested: str | None = None   # what set_device() was given, else None (use the env var)
_resolved: tuple | None = None  # (word, module) once resolved


def _normalise(device, where):
    if not isinstance(device, str):
        raise TypeError(f"{where} must be one of {DEVICE_WORDS}, got {device!r} of type {type(device).__name__}.")
    word = device.strip().lower()
    if word == "cuda":
        word = "gpu"
    if word not in DEVICE_WORDS:
        raise ValueError(f"{where} must be one of {DEVICE_WORDS}, got {device!r}.")
    return word


def _probe_cupy():
    """Return (cupy module, None) when a CUDA device answers, else (None, reason)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return None, f"CuPy is not importable ({exc.__class__.__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy found no CUDA device ({exc.__class__.__name__}: {exc})"
    if count < 1:
        return None, "CuPy found no CUDA device"
    return cupy, None


def _resolve():
    global _resolved
    if _resolved is not None:
        return _resolved
    if _requested is not None:
        word = _requested
    else:
        word = _normalise(os.environ.get("GPU_DL_DEVICE", "auto"), "GPU_DL_DEVICE")
    if word == "cpu":
        _resolved = ("cpu", numpy)
        return _resolved
    cupy, reason = _probe_cupy()
    if cupy is not None:
        _resolved = ("gpu", cupy)
        from .memory import install_allocator   # here, not at the top: memory imports this module
        install_allocator()
    elif word == "gpu":
        raise DeviceUnavailableError(
            f"device 'gpu' was requested but {reason}. Install the CUDA extra "
            "(pip install 'gpu_dl[cuda12]' or 'gpu_dl[cuda13]') on a machine with an NVIDIA GPU, "
            "or use device 'cpu' / GPU_DL_DEVICE=cpu."
        )
    else:
        _resolved = ("cpu", numpy)
    return _resolved


def set_device(device: str) -> str:
    """Choose the backend: ``"auto"``, ``"cpu"`` or ``"gpu"``. Returns the device in use.

    ``"gpu"`` without CuPy or a CUDA device raises ``DeviceUnavailableError``
    and leaves the previous choice in place.
    """
    global _requested, _resolved
    word = _normalise(device, "device")
    previous = (_requested, _resolved)
    _requested, _resolved = word, None
    try:
        return _resolve()[0]
    except Exception:
        _requested, _resolved = previous
        raise


def _parse_device_name(device_name):
    """``(word, index)`` of a Keras device name: ``"cpu"``/``"cpu:0"`` -> ``("cpu", None)``; ``"gpu"``, ``"cuda"``,
    ``"gpu:1"``, ``"cuda:1"`` -> ``("gpu", index or None)``; else a ValueError."""
    if not isinstance(device_name, str):
        raise ValueError("Invalid value for argument `device_name`. Expected a string like 'gpu:0' or 'cpu'. "
                         f"Received: device_name='{device_name}'")
    kind, _, index = device_name.strip().lower().partition(":")
    kind = "gpu" if kind == "cuda" else kind
    if kind not in ("cpu", "gpu") or (index and not index.isdigit()):
        raise ValueError(f"device: unknown device name {device_name!r}; expected 'cpu', 'gpu', 'gpu:<index>', "
                         "'cuda' or 'cuda:<index>'.")
    return kind, (int(index) if index and kind == "gpu" else None)


@contextlib.contextmanager
def device_scope(device_name):
    """Keras's ``keras.device(device_name)``: inside, arrays (weights of layers built there, data moved to the
    device) are made with NumPy for ``"cpu"`` and with CuPy on the GPU for ``"gpu"``/``"cuda"`` (``"gpu:1"``: that
    GPU); the device in use before comes back after. Gives the device's name (``"cpu"``, ``"gpu:0"``). A GPU name
    without CuPy or a CUDA device raises ``DeviceUnavailableError``; an index past the GPUs a ValueError."""
    global _requested, _resolved
    kind, index = _parse_device_name(device_name)
    previous = (_requested, _resolved)
    set_device(kind)
    try:
        if kind == "cpu":
            yield "cpu"
            return
        cupy = xp()
        count = cupy.cuda.runtime.getDeviceCount()
        if index is not None and index >= count:
            raise ValueError(f"device: {device_name!r} names GPU {index}, but {count} GPU(s) answer "
                             f"(indices 0 to {count - 1}).")
        with cupy.cuda.Device(index if index is not None else cupy.cuda.Device().id) as chosen:
            yield f"gpu:{chosen.id}"
    finally:
        _requested, _resolved = previous


def get_device() -> str:
    """``"cpu"`` or ``"gpu"``: the device the next model will be built on."""
    return _resolve()[0]


def xp():
    """The array module of the current device: ``numpy`` or ``cupy``."""
    return _resolve()[1]


def array_module(*arrays):
    """The array module the given arrays live in (CuPy if any of them is a CuPy array)."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy
            return cupy
    return numpy


def to_numpy(a):
    """A NumPy array holding ``a`` (copied to the host if it is on the GPU)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return numpy.asarray(a)


def to_device(a, dtype=None):
    """``a`` as an array of the current device's module, converted to ``dtype`` if given. Text (a NumPy array of
    str, bytes or Python objects) stays a host NumPy array: the layers that read text work on the host."""
    if dtype is None and isinstance(a, numpy.ndarray) and a.dtype.kind in "OUS":
        return a
    module = xp()
    return module.asarray(a, dtype=dtype)


def describe_device() -> str:
    """One line that says where the maths runs, for the start of training."""
    word, module = _resolve()
    if word == "cpu":
        return f"gpu_dl: running on CPU (NumPy {numpy.__version__})"
    device = module.cuda.Device()
    props = module.cuda.runtime.getDeviceProperties(device.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    total = props["totalGlobalMem"] / 2**30
    return f"gpu_dl: running on GPU {device.id}: {name} ({total:.1f} GiB, CuPy {module.__version__})"
