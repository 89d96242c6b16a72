"""The NumPy convolution against PyTorch's CPU convolution on the same cores, float32.

Forward, and forward + both gradients (input and kernel; the bias gradient
is one sum on both sides), of each shape in ``conv_shapes.py``. Both
libraries get the same number of threads (``--threads``, default 2: the
CPU-only CI machines have two cores); PyTorch runs on NCHW tensors, its
fastest CPU layout, gpu_dl on NHWC. The two run alternately, one call each
in blocks of calls (so a slow spell of a shared machine hits both), and
each gets the median of its ``--repeats`` wall-clock times. A block starts
with a pause and an untimed call: after a product OpenBLAS's worker threads
spin for up to about 0.1 s (OpenMP's for less), and on two cores a library
that starts while the other's threads spin runs at half speed.
Target: gpu_dl >= 0.5x PyTorch.

Usage: taskset -c 0,1 python profiling/bench_conv_cpu.py [--threads 2] [--out FILE]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


_BLOCKS = 3             # blocks per library and shape, alternating
_SETTLE_SECONDS = 0.3   # pause before a block: longer than either library's spin-wait


def _limit_threads(threads: int):
    # BLAS reads these when NumPy is first imported: set them before that.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def _blas_kernels() -> str:
    """Which CPU's kernels the BLAS picked (OPENBLAS_CORETYPE overrides its choice), via threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:
        return ""
    found = [info.get("architecture") for info in threadpoolctl.threadpool_info() if info.get("architecture")]
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return (f", {'/'.join(found)} kernels" if found else "") + (f", OPENBLAS_CORETYPE={coretype}" if coretype else "")


def run(threads: int, repeats: int) -> str:
    import datetime
    import platform
    import statistics
    import time

    import numpy
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from conv_shapes import ALL_SHAPES
    from gpu_dl.ops import conv

    torch.set_num_threads(threads)

    def median_seconds(*fns):
        """Median seconds of each of ``fns`` over ``repeats`` calls, run in alternating blocks."""
        times = [[] for _ in fns]
        per_block = max(1, repeats // _BLOCKS)
        for _ in range(_BLOCKS):
            for fn, spent in zip(fns, times):
                time.sleep(_SETTLE_SECONDS)
                fn()   # warm-up
                for _ in range(per_block):
                    t0 = time.perf_counter()
                    fn()
                    spent.append(time.perf_counter() - t0)
        return [statistics.median(t) for t in times]

    rows = []
    for shape in ALL_SHAPES:
        rng = numpy.random.default_rng(0)
        x = rng.standard_normal((shape.batch, shape.size, shape.size, shape.cin), dtype=numpy.float32)
        kernel = rng.standard_normal((shape.window, shape.window, shape.cin, shape.cout), dtype=numpy.float32)
        args = {"padding": shape.padding}

        def ours_forward():
            return conv.conv2d_forward(x, kernel, **args)

        def ours_step():
            y = conv.conv2d_forward(x, kernel, **args)
            conv.conv2d_backward_input(y, kernel, x.shape, **args)
            conv.conv2d_backward_kernel(x, y, kernel.shape, **args)

        tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
        tk = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).requires_grad_(True)
        pad = (shape.window - 1) // 2 if shape.window % 2 else "same"

        def torch_forward():
            with torch.no_grad():
                return torch.nn.functional.conv2d(tx, tk, padding=pad)

        def torch_step():
            y = torch.nn.functional.conv2d(tx, tk, padding=pad)
            y.backward(y.detach())

        numpy.testing.assert_allclose(ours_forward(), torch_forward().numpy().transpose(0, 2, 3, 1),
                                      rtol=1e-3, atol=1e-3 * numpy.sqrt(shape.window ** 2 * shape.cin))
        t_fwd, t_torch_fwd = median_seconds(ours_forward, torch_forward)
        t_step, t_torch_step = median_seconds(ours_step, torch_step)
        gflop = shape.flops() / 1e9
        rows.append((shape.label(),
                     f"{t_fwd * 1e3:.1f}", f"{t_torch_fwd * 1e3:.1f}", f"{t_torch_fwd / t_fwd:.2f}x",
                     f"{gflop / t_fwd:.0f}",
                     f"{t_step * 1e3:.1f}", f"{t_torch_step * 1e3:.1f}", f"{t_torch_step / t_step:.2f}x",
                     f"{3 * gflop / t_step:.0f}"))
    columns = ["shape (N x H x W x Cin -> Cout, window)", "fwd ms", "torch fwd ms", "fwd vs torch", "fwd GFLOP/s",
               "fwd+bwd ms", "torch fwd+bwd ms", "fwd+bwd vs torch", "fwd+bwd GFLOP/s"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"] \
        if hasattr(numpy, "show_config") and numpy.lib.NumpyVersion(numpy.__version__) >= "1.25.0" else "?"
    head = (f"## NumPy convolution vs PyTorch CPU, float32\n\n"
            f"Date: {datetime.date.today().isoformat()}; CPU: {platform.processor() or platform.machine()}, "
            f"{threads} threads (os.cpu_count() = {os.cpu_count()}, affinity {len(os.sched_getaffinity(0))} cores); "
            f"NumPy {numpy.__version__} ({blas}{_blas_kernels()}); PyTorch {torch.__version__}. "
            f"Ratios are PyTorch time / gpu_dl time (> 1: gpu_dl faster); fwd+bwd FLOPs counted as 3x forward.\n")
    return head + "\n" + "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", help="also write the markdown here")
    args = parser.parse_args()
    _limit_threads(args.threads)
    text = run(args.threads, args.repeats)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
