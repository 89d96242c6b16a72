"""The CUDA profiler API: mark the part of a run a profiler records.

``start()`` and ``stop()`` call ``cudaProfilerStart`` / ``cudaProfilerStop``
on the current GPU, so ``nsys profile --capture-range=cudaProfilerApi`` (or
``ncu --profile-from-start off``) records only what runs between them. With
no profiler attached the calls cost next to nothing. On the CPU both do
nothing: there is no CUDA context to profile.
"""
from __future__ import annotations

from .device import get_device


def start() -> bool:
    """Start profile collection on the GPU; returns whether it was asked for (False on the CPU)."""
    if get_device() != "gpu":
        return False
    import cupy
    cupy.cuda.runtime.profilerStart()
    return True


def stop() -> bool:
    """Stop profile collection on the GPU; returns whether it was asked for (False on the CPU)."""
    if get_device() != "gpu":
        return False
    import cupy
    # Kernels run asynchronously: wait for those launched inside the range, so the capture holds their work.
    cupy.cuda.runtime.deviceSynchronize()
    cupy.cuda.runtime.profilerStop()
    return True
