"""Device-memory pool, public face: install it, read its statistics, release its cache.

On the GPU backend gpu_dl's caching pool (``memory_pool.CachingPool``) serves
CuPy's allocations, installed when the GPU backend is chosen.
``GPU_DL_ALLOCATOR`` picks another: ``cupy`` keeps CuPy's own pool, ``raw``
calls cudaMalloc/cudaFree for every array (for compute-sanitizer, whose
memcheck sees an out-of-bounds access only at the edge of a real allocation,
not inside a pool's segment). Nothing here imports CuPy unless the GPU
backend is current.
"""
from __future__ import annotations

import os

from . import device as _device
from .memory_report import format_summary

ALLOCATOR_CHOICES = ("gpu_dl", "cupy", "raw")
_NO_POOL_ON_CPU = ("gpu_dl memory summary: the current device is the CPU (NumPy); "
                   "there is no device memory pool.")


def _glue():
    """The CuPy glue module when the GPU backend is current, else None."""
    if _device.get_device() != "gpu":
        return None
    from . import cupy_allocator
    return cupy_allocator


def _current_pool(device=None):
    """``(device name, pool or None)`` for a CUDA device (current one when None); None on CPU."""
    glue = _glue()
    if glue is None:
        return None
    device_id = glue.current_device_id(device)
    return f"CUDA device {device_id}", glue.get_pool(device_id)


def install_allocator() -> bool:
    """Make gpu_dl's pool CuPy's allocator when the GPU is current; True if it is installed."""
    choice = os.environ.get("GPU_DL_ALLOCATOR", "gpu_dl").strip().lower()
    if choice not in ALLOCATOR_CHOICES:
        raise ValueError(f"GPU_DL_ALLOCATOR must be one of {ALLOCATOR_CHOICES}, got {choice!r}.")
    glue = _glue()
    if glue is None:
        return False
    if choice in ("cupy", "raw"):
        glue.uninstall_allocator()          # back to CuPy's own pool, if gpu_dl's was installed
        if choice == "raw":
            import cupy
            cupy.cuda.set_allocator(None)   # CuPy's unpooled cudaMalloc per array
        return False
    glue.install_allocator()
    return True


def memory_stats(device=None) -> dict:
    """The pool's counters for a CUDA device (current one when None); ``{}`` on CPU or before any allocation."""
    found = _current_pool(device)
    if found is None or found[1] is None:
        return {}
    return found[1].stats()


def empty_cache() -> int:
    """Give the current device's wholly free cached segments back to CUDA; returns the bytes released."""
    found = _current_pool()
    if found is None or found[1] is None:
        return 0
    return found[1].empty_cache()


def memory_summary(device=None) -> str:
    """A table of the pool's statistics, like ``torch.cuda.memory_summary()``."""
    found = _current_pool(device)
    if found is None:
        return _NO_POOL_ON_CPU
    name, pool = found
    if pool is None:
        return (f"gpu_dl memory summary: {name} has no gpu_dl memory pool yet "
                "(nothing allocated there through gpu_dl's allocator).")
    return format_summary(pool.stats(), f"gpu_dl device memory summary, {name}")
