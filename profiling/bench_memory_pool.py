"""Host cost of gpu_dl's caching pool: microseconds per malloc + free pair, on the CPU.

The pool's bookkeeping is Python on the path of every CuPy array, so its
cost per call matters for small models whose steps are host-bound. This
replays a training-like pattern through the entry points the CuPy glue uses
(``malloc(nbytes, stream)``, and ``release_later(address)`` from finalisers)
against a fake raw allocator: each step allocates the same 60 arrays of 15
sizes (512 B to 4 MiB) and frees them in a mixed order, as a forward and
backward pass do.

On a GPU it also times what a CuPy user pays per array: ``cupy.empty`` of
a small array and its release, through gpu_dl's pool (bookkeeping plus the
CuPy glue: MemoryPointer, finaliser) and through CuPy's own Cython pool.

Usage: python profiling/bench_memory_pool.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpu_dl.backend.memory_pool import CachingPool  # noqa: E402


class FakeRaw:
    def __init__(self):
        self.next = 1 << 40

    def malloc(self, nbytes):
        address, self.next = self.next, self.next + nbytes
        return address

    def free(self, address, nbytes):
        pass


def run(steps=2000, seed=0):
    rng = numpy.random.default_rng(seed)
    sizes = [int(s) for s in numpy.geomspace(512, 4 << 20, 15).astype(int)]
    pattern = [sizes[i % len(sizes)] for i in rng.permutation(60)]
    pool = CachingPool(FakeRaw())
    for _ in range(20):   # warm: segments exist, as after a first epoch
        live = [pool.malloc(n, 0) for n in pattern]
        for address in live:
            pool.release_later(address)
    t0 = time.perf_counter()
    for step in range(steps):
        live = []
        for i, n in enumerate(pattern):
            live.append(pool.malloc(n, 0))
            if i % 3 == 2:                      # some arrays die during the pass
                pool.release_later(live.pop(len(live) // 2))
        for address in reversed(live):          # the rest at the end of the step
            pool.release_later(address)
    elapsed = time.perf_counter() - t0
    return elapsed / (steps * len(pattern)) * 1e6, pool.stats()


def cupy_array_cost(calls=20000):
    """Microseconds per ``cupy.empty(256)`` + release under gpu_dl's pool and under CuPy's, or None."""
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return None
    from gpu_dl.backend import cupy_allocator
    out = {}
    for name in ("gpu_dl pool", "CuPy pool"):
        if name == "gpu_dl pool":
            cupy_allocator.install_allocator()
        else:
            cupy_allocator.uninstall_allocator()
        for _ in range(1000):
            cupy.empty(256, dtype=cupy.float32)
        t0 = time.perf_counter()
        for _ in range(calls):
            cupy.empty(256, dtype=cupy.float32)
        out[name] = (time.perf_counter() - t0) / calls * 1e6
    return out


if __name__ == "__main__":
    per_pair, stats = run()
    print(f"pool bookkeeping alone (fake device): {per_pair:.2f} us per malloc + free pair; "
          f"cache hits {stats['cache_hits']}, device allocations {stats['num_device_allocs']}")
    costs = cupy_array_cost()
    if costs is not None:
        for name, us in costs.items():
            print(f"cupy.empty(256) + release, {name}: {us:.2f} us")
