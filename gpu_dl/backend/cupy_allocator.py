"""gpu_dl's caching pool as CuPy's device allocator: one pool per CUDA device.

This module imports CuPy; only the GPU path imports it (through
``gpu_dl.backend.memory``). CuPy calls the installed allocator with a byte
count and keeps the returned memory alive as long as any array views it; the
memory object holds a ``_BlockOwner`` whose finaliser hands the block back to
the pool when CuPy lets go of it.
"""
from __future__ import annotations

import threading

import cupy

from . import nvml
from .memory_pool import CachingPool, RawOutOfMemory

_runtime = cupy.cuda.runtime
_get_device = _runtime.getDevice
# Looked up once: ``allocate`` runs for every CuPy array.
_get_current_stream = cupy.cuda.get_current_stream
_UnownedMemory = cupy.cuda.UnownedMemory
_MemoryPointer = cupy.cuda.MemoryPointer
_ALLOCATION_ERROR = getattr(_runtime, "errorMemoryAllocation", 2)  # cudaErrorMemoryAllocation

_pools: dict = {}                 # CUDA device id -> CachingPool
_lock = threading.Lock()          # guards _pools and the install state
_previous_allocator = None        # CuPy's allocator before install, restored by uninstall


class CudaRawAllocator:
    """cudaMalloc / cudaFree on one device, in the raw-allocator interface of ``CachingPool``."""

    def __init__(self, device_id: int):
        self.device_id = device_id

    def malloc(self, nbytes: int) -> int:
        with cupy.cuda.Device(self.device_id):
            try:
                return int(_runtime.malloc(nbytes))
            except _runtime.CUDARuntimeError as exc:
                if getattr(exc, "status", None) != _ALLOCATION_ERROR:
                    raise
                raise RawOutOfMemory(f"cudaMalloc of {nbytes} bytes failed on device {self.device_id}") from exc

    def free(self, address: int, nbytes: int) -> None:
        with cupy.cuda.Device(self.device_id):
            _runtime.free(address)


def device_memory_info(device_id: int):
    """``(free, total)`` bytes of a device: NVML (nvidia-ml-py) if present, else cudaMemGetInfo; None if neither
    answers."""
    try:
        info = nvml.memory_info_by_pci_bus_id(_runtime.deviceGetPCIBusId(device_id))
    except Exception:   # the bus-id query itself failed
        info = None
    if info is not None:
        return info
    try:
        with cupy.cuda.Device(device_id):
            free, total = _runtime.memGetInfo()
        return int(free), int(total)
    except Exception:
        return None


def current_device_id(device=None) -> int:
    """``device`` as a CUDA device id; the current device when None."""
    return _runtime.getDevice() if device is None else int(device)


def get_pool(device=None, create: bool = False):
    """The pool of a device (current one when None); None if it has none and ``create`` is false."""
    device_id = current_device_id(device)
    with _lock:
        pool = _pools.get(device_id)
        if pool is None and create:
            pool = _pools[device_id] = CachingPool(
                CudaRawAllocator(device_id),
                device_memory_info=lambda: device_memory_info(device_id),
                device=f"CUDA device {device_id}",
            )
        return pool


class _BlockOwner:
    """Kept alive by CuPy's memory object; its finaliser returns the block to the pool."""
    __slots__ = ("pool", "address")

    def __init__(self, pool, address):
        self.pool, self.address = pool, address

    def __del__(self):
        # Finalisers may run inside the pool's own malloc (garbage collection):
        # release_later never blocks on the pool's lock.
        self.pool.release_later(self.address)


def allocate(nbytes: int):
    """CuPy allocator: a ``MemoryPointer`` to a pool block of ``nbytes`` on the current device and stream."""
    device_id = _get_device()
    pool = _pools.get(device_id) or get_pool(device_id, create=True)
    address = pool.malloc(int(nbytes), _get_current_stream().ptr)
    memory = _UnownedMemory(address, nbytes, _BlockOwner(pool, address), device_id)
    return _MemoryPointer(memory, 0)


def install_allocator() -> None:
    """Make the pool CuPy's allocator (idempotent); CuPy's own pool gives back what it cached."""
    global _previous_allocator
    with _lock:
        current = cupy.cuda.get_allocator()
        if current is allocate:
            return
        _previous_allocator = current
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.cuda.set_allocator(allocate)


def uninstall_allocator() -> None:
    """Restore the allocator CuPy had before ``install_allocator``; live blocks stay valid."""
    global _previous_allocator
    with _lock:
        if cupy.cuda.get_allocator() is allocate:
            cupy.cuda.set_allocator(_previous_allocator)
        _previous_allocator = None


def is_installed() -> bool:
    return cupy.cuda.get_allocator() is allocate
