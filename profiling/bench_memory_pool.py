"""Host cost of gpu_dl's caching pool: microseconds per malloc + free pair, on the CPU.

The pool's bookkeeping is Python on the path of every CuPy array, so its
cost per call matters for small models whose steps are host-bound. This
replays training-like patterns through the entry points the CuPy glue uses
(``malloc(nbytes, stream)``, and ``release_later(address)`` from finalisers)
against a fake raw allocator:

- ``repeated``: each step allocates the same 60 arrays of 15 sizes (512 B to
  4 MiB) and frees them in a mixed order, as a forward and backward pass do
  (a third die during the pass, the rest at the end, last allocated first);
- ``short batch``: the same, but every 25th step the batch-dependent sizes
  (two thirds of them) shrink, as the last, smaller batch of an epoch does:
  new sizes that no freed block was serving;
- ``random``: sizes drawn at random over the small and large pools (every
  request a size the pool has hardly seen), for the slow path: best fit,
  splitting and merging.

``harness`` is the same loop over a pool that does nothing, the cost of the
benchmark's own Python; the figures printed for the pool include it.

On a GPU it also times what a CuPy user pays per array: ``cupy.empty`` of
a small array and its release, through gpu_dl's pool (bookkeeping plus the
CuPy glue: MemoryPointer, finaliser) and through CuPy's own Cython pool.

Usage: python profiling/bench_memory_pool.py [--steps N] [--repeats R]
       [--pool-file PATH]   (another memory_pool.py, e.g. an older one from
                             ``git show REV:gpu_dl/backend/memory_pool.py``)
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_memory_pool.py   (20 steps, 1 run, 200 CuPy arrays)
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from importlib.machinery import SourceFileLoader
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpu_dl.backend.memory_pool import CachingPool  # noqa: E402

PATTERN_ARRAYS = 60
PATTERN_SIZES = 15
# bench_common.py's smoke switch (not imported from there: this script runs without CuPy).
SMOKE = os.environ.get("GPU_DL_BENCH_SMOKE", "") == "1"


class FakeRaw:
    """A raw allocator that bumps addresses; nothing is ever short."""

    def __init__(self):
        self.next = 1 << 40
        self.mallocs = 0

    def malloc(self, nbytes):
        self.mallocs += 1
        address, self.next = self.next, self.next + nbytes
        return address

    def free(self, address, nbytes):
        pass


class NullPool:
    """The benchmark loop's own cost: a pool that does no bookkeeping."""

    def __init__(self, raw):
        pass

    def malloc(self, nbytes, stream=0):
        return nbytes

    def release_later(self, address):
        pass

    def stats(self):
        return {"cache_hits": 0, "num_device_allocs": 0}


def load_pool_class(path):
    """``CachingPool`` of another copy of memory_pool.py (imported as a sibling of the real one)."""
    loader = SourceFileLoader("gpu_dl.backend._bench_memory_pool", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.CachingPool


def _patterns(seed, kind):
    """The request sizes of each step: a list of patterns and which step uses which."""
    rng = numpy.random.default_rng(seed)
    sizes = [int(s) for s in numpy.geomspace(512, 4 << 20, PATTERN_SIZES).astype(int)]
    order = [i % PATTERN_SIZES for i in rng.permutation(PATTERN_ARRAYS)]
    full = [sizes[i] for i in order]
    if kind == "repeated":
        return [full], lambda step: 0
    # two thirds of the sizes scale with the batch (activations), the rest are weights
    batch_dependent = set(rng.permutation(PATTERN_SIZES)[: 2 * PATTERN_SIZES // 3].tolist())
    short = [max(1, sizes[i] * 9 // 32) if i in batch_dependent else sizes[i] for i in order]
    return [full, short], lambda step: 1 if step % 25 == 24 else 0


def run(steps=2000, seed=0, kind="repeated", pool_class=CachingPool):
    """Microseconds per malloc + release_later pair, and the pool's final statistics."""
    raw = FakeRaw()
    pool = pool_class(raw)
    malloc, release = pool.malloc, pool.release_later
    if kind == "random":
        rng = numpy.random.default_rng(seed)
        small = rng.integers(1, 1 << 20, size=PATTERN_ARRAYS * 64).tolist()
        large = rng.integers((1 << 20) + 1, 24 << 20, size=PATTERN_ARRAYS * 64).tolist()
        pick = rng.random(PATTERN_ARRAYS * 64) < 0.85
        pool_sizes = [int(s if p else b) for s, b, p in zip(small, large, pick)]
        patterns = [pool_sizes[i:i + PATTERN_ARRAYS] for i in range(0, len(pool_sizes), PATTERN_ARRAYS)]
        which = lambda step: step % len(patterns)  # noqa: E731
    else:
        patterns, which = _patterns(seed, kind)
    for step in range(25):        # warm: segments exist, as after a first epoch
        live = [malloc(n, 0) for n in patterns[which(step)]]
        for address in live:
            release(address)
    t0 = time.perf_counter()
    for step in range(steps):
        live = []
        for i, n in enumerate(patterns[which(step)]):
            live.append(malloc(n, 0))
            if i % 3 == 2:                      # some arrays die during the pass
                release(live.pop(len(live) // 2))
        for address in reversed(live):          # the rest at the end of the step
            release(address)
    elapsed = time.perf_counter() - t0
    return elapsed / (steps * PATTERN_ARRAYS) * 1e6, pool.stats()


def cupy_array_cost(calls=200 if SMOKE else 20000):
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
        for _ in range(10 if SMOKE else 1000):
            cupy.empty(256, dtype=cupy.float32)
        t0 = time.perf_counter()
        for _ in range(calls):
            cupy.empty(256, dtype=cupy.float32)
        out[name] = (time.perf_counter() - t0) / calls * 1e6
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20 if SMOKE else 2000)
    parser.add_argument("--repeats", type=int, default=1 if SMOKE else 3, help="best of this many runs")
    parser.add_argument("--pool-file", help="time the CachingPool of this memory_pool.py instead")
    args = parser.parse_args(argv)
    pool_class = load_pool_class(args.pool_file) if args.pool_file else CachingPool
    if SMOKE:
        print("Smoke run (GPU_DL_BENCH_SMOKE=1): too few calls for any figure below to be a measurement.")
    print(f"pool: {args.pool_file or 'gpu_dl.backend.memory_pool'}; {args.steps} steps of "
          f"{PATTERN_ARRAYS} arrays; best of {args.repeats}; Python {sys.version.split()[0]}")
    harness = min(run(args.steps, kind="repeated", pool_class=NullPool)[0] for _ in range(args.repeats))
    print(f"  {'harness (no pool)':<14} {harness:6.2f} us per malloc + free pair")
    for kind in ("repeated", "short batch", "random"):
        best, stats = None, None
        for _ in range(args.repeats):
            us, stats = run(args.steps, kind=kind, pool_class=pool_class)
            best = us if best is None else min(best, us)
        print(f"  {kind:<14} {best:6.2f} us per malloc + free pair (pool alone ~{best - harness:.2f}); "
              f"cache hits {stats['cache_hits']}, device allocations {stats['num_device_allocs']}")
    costs = cupy_array_cost()
    if costs is not None:
        for name, us in costs.items():
            print(f"cupy.empty(256) + release, {name}: {us:.2f} us")


if __name__ == "__main__":
    main()
