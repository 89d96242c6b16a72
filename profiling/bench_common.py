"""What every benchmark shares: device facts, timing with CUDA events, L2 flushing, copy bandwidth, tables.

Method (DESIGN.md, "How we measure speed"): same GPU and process for gpu_dl
and PyTorch; warm-up first; the median of many repeats timed with CUDA
events; L2 flushed (a memset over twice its size, then a read of it, so no
dirty line is left to write back) before each timed repeat
of a bandwidth figure; bandwidth = bytes read + bytes written over time, as a
fraction of a device-to-device copy of 512 MiB measured in the same run (the
faster of cudaMemcpy and a 16-byte copy kernel).
Small shapes are reported as microseconds per call, not as bandwidth.

Smoke mode (``GPU_DL_BENCH_SMOKE=1``): every benchmark script runs each of
its code paths (result checks, every table, every precision) on tiny shapes,
and every timing here is one call, without a warm-up or an L2 flush worth the
name, so a broken script fails in seconds instead of minutes into a GPU session; it runs on the
emulated GPU too (``tests/emulated_gpu/run_script.py``). Its figures measure
nothing, and its tables say so. Without the variable, nothing changes.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path

import cupy
import numpy

SMOKE = os.environ.get("GPU_DL_BENCH_SMOKE", "") == "1"
# What a smoke run copies for the copy-bandwidth baseline (the full run: 512 MiB).
SMOKE_COPY_BYTES = 1 << 20
_flush_buffer = None


def smoke(full, tiny):
    """``tiny`` in smoke mode, else ``full``: the one switch the scripts' shapes and counts go through."""
    return tiny if SMOKE else full


def device_name() -> str:
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else name


def l2_bytes() -> int:
    return int(cupy.cuda.runtime.deviceGetAttribute(cupy.cuda.runtime.cudaDevAttrL2CacheSize,
                                                    cupy.cuda.runtime.getDevice()))


def flush_l2():
    """Evict the timed kernel's inputs from L2, leaving it clean.

    A memset over twice the L2's size evicts everything, but leaves the L2
    full of dirty lines whose write-back would then be charged to the timed
    kernel (tens of MB: as much as a small kernel moves itself). Reading the
    buffer back afterwards leaves clean lines of it instead.
    """
    global _flush_buffer
    if _flush_buffer is None:
        _flush_buffer = cupy.empty(smoke(2 * l2_bytes(), SMOKE_COPY_BYTES) // 4, dtype=cupy.uint32)
    _flush_buffer.fill(1)
    _flush_buffer.max()


def time_gpu(fn, *, repeats=50, warmup=5, flush=True, sync=None):
    """Median milliseconds of ``fn()`` between two CUDA events on the current stream.

    ``sync`` (optional) is called before reading the events, for work queued
    on another framework's stream (PyTorch uses the same legacy default
    stream as CuPy unless told otherwise, so events order both).
    """
    if SMOKE:
        repeats, warmup = 1, 0
    for _ in range(warmup):
        fn()
    cupy.cuda.runtime.deviceSynchronize()
    times = []
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    for _ in range(repeats):
        if flush:
            flush_l2()
        start.record()
        fn()
        end.record()
        if sync is not None:
            sync()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return statistics.median(times)


def time_wall_per_call(fn, *, calls=200, warmup=20, rounds=5):
    """Median over rounds of host wall-clock microseconds per call, the device drained after each round.

    For small shapes, where what a user waits for is launch and Python
    overhead rather than memory traffic.
    """
    if SMOKE:
        calls, warmup, rounds = 1, 0, 1
    for _ in range(warmup):
        fn()
    cupy.cuda.runtime.deviceSynchronize()
    per_call = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        cupy.cuda.runtime.deviceSynchronize()
        per_call.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(per_call)


# The copy kernel of the baseline: 16 bytes per thread and iteration, a grid-stride loop.
_COPY_SOURCE = r"""
extern "C" __global__ void copy_16_bytes(const uint4* __restrict__ src, uint4* __restrict__ dst, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dst[i] = src[i];
}
"""


def copy_bandwidths(nbytes: int = 512 << 20) -> dict:
    """Bytes per second (read + written) of a device-to-device copy of ``nbytes``, two ways: ``memcpy``
    (cudaMemcpyAsync) and ``kernel`` (16-byte loads and stores, as bandwidth-bound kernels are written)."""
    nbytes = smoke(nbytes, min(nbytes, SMOKE_COPY_BYTES))
    src = cupy.empty(nbytes, dtype=cupy.uint8)
    src.fill(3)
    dst = cupy.empty_like(src)

    def memcpy():
        cupy.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, nbytes,
                                      cupy.cuda.runtime.memcpyDeviceToDevice,
                                      cupy.cuda.get_current_stream().ptr)

    kernel = cupy.RawKernel(_COPY_SOURCE, "copy_16_bytes")
    n = nbytes // 16
    sms = cupy.cuda.runtime.deviceGetAttribute(cupy.cuda.runtime.cudaDevAttrMultiProcessorCount,
                                               cupy.cuda.runtime.getDevice())

    def copy_kernel():
        kernel((sms * 8,), (512,), (src, dst, numpy.int64(n)))

    return {name: 2 * nbytes / (time_gpu(fn, repeats=30, flush=False) * 1e-3)
            for name, fn in (("memcpy", memcpy), ("kernel", copy_kernel))}


def copy_bandwidth(nbytes: int = 512 << 20) -> float:
    """The bandwidth ceiling of this run: the faster of ``copy_bandwidths``' two copies (either can be the
    faster one; taking one alone let well-written kernels measure above 100% of it)."""
    return max(copy_bandwidths(nbytes).values())


def matmul_rate(n: int = 8192) -> float:
    """FLOP/s of cuBLAS's float32 product of two ``n`` x ``n`` matrices (``cupy.matmul``): the compute ceiling
    a benchmark quotes its FLOP rates against. Strict float32 where the script set ``CUPY_TF32=0`` before
    importing CuPy (its default), TF32 otherwise. Smoke mode multiplies 64 x 64."""
    n = smoke(n, 64)
    a = cupy.ones((n, n), dtype=cupy.float32)
    return 2 * n ** 3 / (time_gpu(lambda: cupy.matmul(a, a), repeats=10, flush=False) * 1e-3)


SMOKE_NOTE = ("**Smoke run** (GPU_DL_BENCH_SMOKE=1): tiny shapes, one call per timing "
              "(no warm-up), to show that every path of the script runs; the shapes, counts and targets the text "
              "names are the full run's, and no figure below is a measurement.\n")


def header(title: str) -> str:
    today = datetime.date.today().isoformat()
    return (f"## {title}\n\nDevice: {device_name()}; date: {today}; CuPy {cupy.__version__}.\n"
            + (f"\n{SMOKE_NOTE}" if SMOKE else ""))


def table(columns, rows) -> str:
    """A markdown table of ``rows`` (sequences of already formatted cells)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def torch_or_none():
    """PyTorch with CUDA, or None (benchmarks then report gpu_dl alone)."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def main(run, description: str):
    """The command line every benchmark shares: print ``run()``'s markdown, and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", help="also write the markdown here")
    args = parser.parse_args()
    text = run()
    print(text)
    if args.out:
        Path(args.out).write_text(text)
