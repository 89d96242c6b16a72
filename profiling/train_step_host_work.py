"""Host work per training step of ``Model.fit`` on the GPU path, kernels taken out, on the emulated GPU.

The digits MLP and the digits CNN of ``gpu_dl.models.examples`` (Adam,
sparse categorical cross-entropy, ``metrics=["accuracy"]``, batch 32,
``verbose=0``): per training step, what ``fit`` issues on device arrays, as
``tests/device_work.py`` counts it with ``every_launch`` and ``transfers``:
RawKernel launches, matrix products, elementwise ufunc calls (reductions
included), other NumPy functions, fills, copies, allocations (every new
device buffer), host-to-device uploads and device-to-host syncs (every
point where CuPy makes the host wait: ``asnumpy``/``get``, ``float``/
``item``/``bool`` of a device array, a ``synchronize``, size read-backs); and
the host microseconds per step with every RawKernel launch a no-op (nothing
counted, new buffers zeroed: the emulator's products are slow on the
subnormal numbers of uninitialised memory), BLAS on one thread (its
threads, on a busy machine, made one small product take milliseconds). Per-step
figures are the difference between a fit of 40 steps and one of 8, over the
32 steps between (the per-fit work, callbacks' epoch ends and the first
step's binding, cancels), the times the best of 5 fits of each.

The times are the emulator's (its CuPy stand-in is Python over NumPy, its
products and the other operations run on this CPU), not a GPU's: they
compare versions of the step on one machine. The counts carry over to a GPU
as they are, where each product, elementwise operation, function, fill and
copy is a launch with its host work, each allocation a call of CuPy's memory
pool and each sync a stall of the host until the device has caught up. Run
from the repository root:

    python tests/emulated_gpu/run_script.py profiling/train_step_host_work.py
"""
import sys
import time
from pathlib import Path

import cupy
import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from device_work import DeviceWork  # noqa: E402
from gpu_dl import backend, data  # noqa: E402
from gpu_dl.models import examples  # noqa: E402

if not cupy.__version__.endswith("emulated"):
    raise SystemExit("train_step_host_work.py patches the emulated GPU's CuPy: run it with "
                     "tests/emulated_gpu/run_script.py")

BATCH, SHORT, LONG, REPEATS = 32, 8, 40, 5
ORDER = ("launches", "products", "elementwise", "functions", "fills", "copies", "allocations", "uploads", "syncs")


def compiled(name):
    """(model, x, y) of one example model on the digits, compiled as the benchmarks compile it, trained once."""
    backend.set_random_seed(0)
    (x, y), _ = data.load_digits(image_shape=name == "cnn")
    model = examples.build_model(name, x.shape[1:], 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:BATCH * SHORT], y[:BATCH * SHORT], batch_size=BATCH, epochs=1, verbose=0)   # kernels bound
    return model, x, y


def fit(model, x, y, steps):
    model.fit(x[:BATCH * steps], y[:BATCH * steps], batch_size=BATCH, epochs=1, verbose=0)


def counts(model, x, y, steps):
    with DeviceWork(cupy, no_op_launches=True, every_launch=True, transfers=True) as work:
        fit(model, x, y, steps)
        return work.take()


class _NoOpLaunches:
    """Every RawKernel launch a no-op, nothing counted, and new buffers zeroed: what the launches would have
    written is left as allocated, and the emulator's products over uninitialised memory (subnormal numbers)
    would take many times their time over zeros."""

    def __enter__(self):
        self.launch = cupy.RawKernel.__call__
        cupy.RawKernel.__call__ = lambda kernel, *args, **kwargs: None
        cupy.empty, cupy.empty_like = cupy.zeros, cupy.zeros_like

    def __exit__(self, *exc):
        cupy.RawKernel.__call__ = self.launch
        del cupy.empty, cupy.empty_like     # the stand-in's module __getattr__ gives them again


def seconds(model, x, y, steps):
    with _NoOpLaunches():
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            fit(model, x, y, steps)
            best = min(best, time.perf_counter() - start)
    return best


def per_step(name):
    """(host microseconds per step, {category: count per step}) of one example model."""
    model, x, y = compiled(name)
    with numpy.errstate(all="ignore"):     # the no-op launches leave their outputs as they were allocated
        short, long = counts(model, x, y, SHORT), counts(model, x, y, LONG)
        spent = (seconds(model, x, y, LONG) - seconds(model, x, y, SHORT)) / (LONG - SHORT)
    work = {key: (long.get(key, 0) - short.get(key, 0)) / (LONG - SHORT) for key in ORDER}
    return spent * 1e6, work


def main():
    try:    # the emulator's products are tiny: BLAS threads would only contend for the cores
        import threadpoolctl
        threadpoolctl.threadpool_limits(1)
    except ImportError:
        pass
    print(f"| model | host us/step | {' | '.join(ORDER)} |")
    print("|---|---:|" + "---:|" * len(ORDER))
    backend.set_device("gpu")
    for name in ("mlp", "cnn"):
        spent, work = per_step(name)
        print(f"| {name} | {spent:.0f} | " + " | ".join(f"{work[key]:g}" for key in ORDER) + " |")


if __name__ == "__main__":
    main()
