"""What the CPU benchmarks (bench_conv_cpu.py, bench_train_cpu.py, bench_int8_matmul.py) share;
bench_common.py is the GPU ones'.

Both compare gpu_dl's NumPy path with PyTorch on the same cores and the
same number of threads, the two libraries alternating in blocks of calls
(a slow spell of a shared machine hits both). A block starts with a pause
and an untimed call: after a product OpenBLAS's worker threads spin for up
to about 0.1 s (OpenMP's for less), and on two cores a library that starts
while the other's threads spin runs at about half speed. Without PyTorch
they time gpu_dl alone, its PyTorch columns "-".

Smoke mode (``GPU_DL_BENCH_SMOKE=1``, as the GPU scripts have it): every
table and result check on tiny shapes, one block per library and case (one
untimed call, at most two timed ones) and no pause, so CI finds a broken
script in seconds (``tests/test_bench_smoke.py``). Its figures measure
nothing, and its tables say so.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

SMOKE = os.environ.get("GPU_DL_BENCH_SMOKE", "") == "1"


def smoke(full, tiny):
    """``tiny`` in smoke mode, else ``full``: the one switch the scripts' shapes and counts go through."""
    return tiny if SMOKE else full


BLOCKS = smoke(3, 1)                 # timed blocks per library and case, alternating
SETTLE_SECONDS = smoke(0.3, 0.0)     # pause before a block: longer than either library's spin-wait
SMOKE_NOTE = ("**Smoke run** (GPU_DL_BENCH_SMOKE=1): tiny shapes, 1 untimed call and at most 2 timed ones per "
              "library and case, to show that every path of the script runs; no figure below is a measurement.\n")


def torch_or_none():
    """PyTorch, or None: the benchmarks then time gpu_dl alone."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def at_most_two(count: int) -> int:
    """A count of timed repeats: at most 2 in smoke mode."""
    return smoke(count, min(count, 2))


def limit_threads(threads: int):
    """Cap the BLAS and OpenMP pools; they read these when NumPy and PyTorch are first imported."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def alternate_in_blocks(fns, measure_block, warm_up=lambda fn: fn()):
    """One list per fn of what ``measure_block(fn)`` returns over ``BLOCKS`` rounds, the fns in turn,
    each block after a pause and ``warm_up(fn)``."""
    results = [[] for _ in fns]
    for _ in range(BLOCKS):
        for fn, values in zip(fns, results):
            time.sleep(SETTLE_SECONDS)
            warm_up(fn)
            values.extend(measure_block(fn))
    return results


def median_seconds(repeats: int, *fns):
    """The median wall-clock seconds of each of ``fns`` over ``repeats`` calls (at least one per block), run in
    alternating blocks (``alternate_in_blocks``)."""
    import statistics
    per_block = max(1, repeats // BLOCKS)

    def block(fn):
        times = []
        for _ in range(per_block):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times
    return [statistics.median(t) for t in alternate_in_blocks(fns, block)]


def header(title: str, threads: int, details: str) -> str:
    """A table's heading: the title, the machine, what the figures are; in smoke mode, that they are nothing."""
    return f"## {title}\n\n{machine_line(threads)} {details}\n" + (f"\n{SMOKE_NOTE}" if SMOKE else "")


def machine_line(threads: int) -> str:
    """Date, CPU, threads, NumPy with its BLAS and the kernels that BLAS picked, PyTorch."""
    import numpy
    torch = torch_or_none()
    blas = "?"
    if numpy.lib.NumpyVersion(numpy.__version__) >= "1.25.0":
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    return (f"Date: {datetime.date.today().isoformat()}; CPU: {platform.processor() or platform.machine()}, "
            f"{threads} threads (os.cpu_count() = {os.cpu_count()}, affinity {len(os.sched_getaffinity(0))} "
            f"cores); NumPy {numpy.__version__} ({blas}{_blas_kernels()}); "
            + (f"PyTorch {torch.__version__}." if torch is not None else "PyTorch is not installed: gpu_dl alone."))


def _blas_kernels() -> str:
    """Which CPU's kernels the BLAS picked (OPENBLAS_CORETYPE overrides its choice), via threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:
        return ""
    found = list(dict.fromkeys(info["architecture"] for info in threadpoolctl.threadpool_info()
                               if info.get("architecture")))   # NumPy's and SciPy's OpenBLAS may both be loaded
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return (f", {'/'.join(found)} kernels" if found else "") + (f", OPENBLAS_CORETYPE={coretype}" if coretype else "")


def table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(run, description: str, count_name: str, count_default: int, count_help: str):
    """Parse --threads, the benchmark's own count option and --out; cap threads; print (and write) run's text."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(f"--{count_name}", type=int, default=count_default, help=count_help)
    parser.add_argument("--out", help="also write the markdown here")
    args = parser.parse_args()
    limit_threads(args.threads)
    text = run(args.threads, getattr(args, count_name))
    print(text)
    if args.out:
        Path(args.out).write_text(text)
