"""Fused optimizer updates against the copy bandwidth and PyTorch's fused optimizers, same GPU.

One update of a 64-Mi-element float32 variable (256 MiB per array) by each
rule's kernel, L2 flushed before each timed repeat. Bytes counted: every
array the rule reads once (variable, gradient, slots) plus every array it
writes once (variable, slots). PyTorch: ``torch.optim.<Rule>(fused=True)``
where it has a fused kernel, else its default (foreach) implementation,
stepping the same sizes. Target: >= 80% of the copy bandwidth.

Usage: python profiling/bench_optimizers.py [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_optimizers.py   (tiny arrays: bench_common.py)
"""
from __future__ import annotations

import sys
from pathlib import Path

import cupy
import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_common as bc  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.ops import optimizer_update as update  # noqa: E402

N = bc.smoke(64 << 20, 4099)   # smoke: a size that is no multiple of the kernels' 16-byte vectors


def arrays(count, seed=0):
    rng = cupy.random.RandomState(seed)
    return [rng.standard_normal(N, dtype=cupy.float32) * 0.01 for _ in range(count)]


def positive(a):
    return cupy.abs(a) + 1e-3


# rule -> (arrays read, arrays written, gpu_dl call factory, torch optimizer factory)
def cases():
    def adam():
        value, grad, m, v = arrays(4)
        v = positive(v)
        return lambda: update.adam_update(value, grad, m, v, None, 1e-3, 0.9, 0.999, 1e-7)

    def sgd_momentum():
        value, grad, m = arrays(3)
        return lambda: update.sgd_update(value, grad, m, 1e-2, 0.9, False)

    def rmsprop():
        value, grad, v = arrays(3)
        v = positive(v)
        return lambda: update.rmsprop_update(value, grad, v, None, None, 1e-3, 0.9, 0.0, 1e-7)

    def adagrad():
        value, grad, acc = arrays(3)
        acc = positive(acc)
        return lambda: update.adagrad_update(value, grad, acc, 1e-3, 1e-7)

    def torch_step(torch, make):
        parameter = torch.nn.Parameter(torch.randn(N, device="cuda") * 0.01)
        parameter.grad = torch.randn(N, device="cuda") * 0.01
        optimizer = make([parameter])
        optimizer.step()   # creates the state before timing
        return optimizer.step

    return [
        ("Adam", 4, 3, adam, lambda t: torch_step(t, lambda p: t.optim.Adam(p, lr=1e-3, eps=1e-7, fused=True)),
         "fused"),
        ("SGD, momentum 0.9", 3, 2, sgd_momentum,
         lambda t: torch_step(t, lambda p: t.optim.SGD(p, lr=1e-2, momentum=0.9, fused=True)), "fused"),
        ("RMSprop", 3, 2, rmsprop, lambda t: torch_step(t, lambda p: t.optim.RMSprop(p, lr=1e-3, eps=1e-7)),
         "foreach"),
        ("Adagrad", 3, 2, adagrad, lambda t: torch_step(t, lambda p: t.optim.Adagrad(p, lr=1e-3, fused=True)),
         "fused"),
    ]


def run():
    backend.set_device("gpu")
    torch = bc.torch_or_none()
    copy = bc.copy_bandwidth()
    rows = []
    for name, reads, writes, ours, theirs, torch_kind in cases():
        moved = (reads + writes) * N * 4
        ms = bc.time_gpu(ours(), repeats=30)
        cells = [name, f"{moved / 2**20:.0f}", f"{ms * 1e3:.0f}", f"{moved / (ms * 1e-3) / copy:.0%}"]
        if torch is not None:
            try:
                torch_ms = bc.time_gpu(theirs(torch), repeats=30, sync=torch.cuda.synchronize)
                cells += [f"{torch_ms * 1e3:.0f} ({torch_kind})", f"{moved / (torch_ms * 1e-3) / copy:.0%}",
                          f"{torch_ms / ms:.2f}x"]
                torch.cuda.empty_cache()
            except Exception as exc:   # an older PyTorch without fused=True for this rule
                cells += [f"n/a ({exc.__class__.__name__})", "-", "-"]
        else:
            cells += ["-", "-", "-"]
        rows.append(cells)
        cupy.get_default_memory_pool().free_all_blocks()
        backend.empty_cache()
    return (bc.header("Fused optimizer updates, float32, 64 Mi elements per array") +
            f"\nDevice-to-device copy: {copy / 1e9:.0f} GB/s (read + written). Medians of 30 CUDA-event-timed "
            "repeats, L2 flushed before each.\n\n" +
            bc.table(["rule", "MiB moved", "gpu_dl us", "of copy BW", "PyTorch us", "PyTorch of copy BW",
                      "speed-up"], rows))


if __name__ == "__main__":
    numpy.seterr(all="ignore")
    bc.main(run, __doc__.splitlines()[0])
