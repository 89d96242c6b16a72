"""The exact int8 x int8 product of the quantized layers on the CPU: float64 products against float32 blocks.

The int8 Dense and EinsumDense multiply the quantized inputs (M, K) by the int8 kernel (K, N) exactly. The
"float64" column times what they did before: both operands cast to float64 and one product. The "float32 blocks"
column times ``layers.quantized.integer_product``: float32 products over blocks of at most 1024 terms along K
(exact: each partial sum is an integer of magnitude <= 2**24), added in float64. Both include the casts, as the
layers pay them on every call. The "torch float32" column is PyTorch's float32 matmul of the same shapes (no
cast), the cost of an unquantized layer's product on the same cores. Before a shape is timed, both of gpu_dl's
products are checked equal to NumPy's int64 product on four rows.

Usage: taskset -c 0,1 python profiling/bench_int8_matmul.py [--threads 2] [--repeats 9] [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_int8_matmul.py   (seconds: every check and column, tiny shapes)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cpu_bench  # noqa: E402

SHAPES = [(128, 1024, 4096), (128, 4096, 1024), (128, 3000, 3000), (32, 1025, 1024)]
SMOKE_SHAPES = [(3, 1025, 17), (2, 33, 5)]


def run(threads: int, repeats: int) -> str:
    import numpy

    from gpu_dl.layers.quantized import EXACT_FLOAT32_TERMS, integer_product

    torch = cpu_bench.torch_or_none()
    if torch is not None:
        torch.set_num_threads(threads)
    repeats = cpu_bench.at_most_two(repeats)


    rows = []
    for m, k, n in cpu_bench.smoke(SHAPES, SMOKE_SHAPES):
        rng = numpy.random.default_rng(0)
        a = rng.integers(-127, 128, size=(m, k), dtype=numpy.int8)
        b = rng.integers(-128, 128, size=(k, n), dtype=numpy.int8)

        def before():
            return a.astype(numpy.float64) @ b.astype(numpy.float64)

        def after():
            return integer_product(a, b)

        want = a[:4].astype(numpy.int64) @ b.astype(numpy.int64)
        for fn in (before, after):
            numpy.testing.assert_array_equal(fn()[:4], want.astype(numpy.float64))
        fns = [before, after]
        if torch is not None:
            ta, tb = torch.from_numpy(a.astype(numpy.float32)), torch.from_numpy(b.astype(numpy.float32))
            fns.append(lambda: ta @ tb)
        times = cpu_bench.median_seconds(repeats, *fns)
        t_before, t_after = times[:2]
        t_torch = times[2] if torch is not None else None
        rows.append((f"{m} x {k} @ {k} x {n}", f"{t_before * 1e3:.2f}", f"{t_after * 1e3:.2f}",
                     f"{t_before / t_after:.2f}x", str(-(-k // EXACT_FLOAT32_TERMS)),
                     "-" if t_torch is None else f"{t_torch * 1e3:.2f}"))
    columns = ["shape (M x K @ K x N)", "float64 ms", "float32 blocks ms", "float64 / float32 blocks", "blocks",
               "torch float32 ms"]
    head = cpu_bench.header("Exact int8 x int8 product: float64 vs float32 blocks (NumPy)", threads,
                            "Milliseconds per product, casts included; the ratio > 1: the blocks are faster.")
    return head + "\n" + cpu_bench.table(columns, rows) + "\n"


if __name__ == "__main__":
    cpu_bench.main(run, __doc__.splitlines()[0], "repeats", 9, "timed calls per case")
