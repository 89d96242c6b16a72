"""Host work of one call of an LSTM layer on the emulated GPU, kernels taken out.

One ``gpu_dl.layers.LSTM(64, return_sequences=True)`` call on batch 32,
sequence 32, input 32 (the small case of ``profiling/bench_lstm.py``,
where the whole time loop is one persistent-kernel launch each way), and
the same layer with ``return_sequences=False``: per call of the inference
forward, the training forward and the backward, the work it issues on
device arrays (RawKernel launches, matrix products, elementwise ufunc calls,
other NumPy functions, fills, copies and allocations, as
``tests/device_work.py`` counts them), and the host microseconds it spends
with every RawKernel launch a no-op (best of 50 calls, timed without the
counters) at that shape and at a tiny one (batch 2, sequence 4, input 4,
hidden 8), whose arithmetic is negligible: what is left there is the
Python of the call, its allocations and its operations' dispatch.

The times are the emulator's (its CuPy stand-in is Python over NumPy, its
products and copies run on this CPU: at the full shape the input
projection's product takes most of the forward), not a GPU's: they compare
versions of the layer on one machine. The counts carry over to a GPU as they are, where
each product, elementwise operation, fill and copy is a launch (with its
host work) and each allocation a call of CuPy's memory pool. Run from the
repository root:

    python tests/emulated_gpu/run_script.py profiling/rnn_layer_host_work.py
"""
import sys
import time
from pathlib import Path

import cupy
import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from device_work import DeviceWork  # noqa: E402
from gpu_dl import backend, layers  # noqa: E402

if not cupy.__version__.endswith("emulated"):
    raise SystemExit("rnn_layer_host_work.py patches the emulated GPU's CuPy: run it with "
                     "tests/emulated_gpu/run_script.py")

N, T, D, U = 32, 32, 32, 64


def _one_call(layer, x, dy, training):
    """(forward counts, backward counts or None) of one call."""
    with DeviceWork(cupy, no_op_launches=True) as work:
        layer(x, training=training)
        forward = work.take()
        if training:
            layer.backward(dy)
        return forward, (work.take() if training else None)


def _seconds(layer, x, dy, training, repeats=50):
    """Best host seconds of a forward call and of its backward, the launches no-ops."""
    forward, backward = [], []
    with _NoOpLaunches():
        for _ in range(repeats):
            start = time.perf_counter()
            layer(x, training=training)
            forward.append(time.perf_counter() - start)
            if training:
                start = time.perf_counter()
                layer.backward(dy)
                backward.append(time.perf_counter() - start)
    return min(forward), (min(backward) if backward else None)


class _NoOpLaunches:
    """Every RawKernel launch a no-op, nothing counted."""

    def __enter__(self):
        self.call = cupy.RawKernel.__call__
        cupy.RawKernel.__call__ = lambda kernel, *args, **kwargs: None

    def __exit__(self, *exc):
        cupy.RawKernel.__call__ = self.call


def _case(shape, units, return_sequences, rng):
    """(layer, x, dy) of one case, the layer built."""
    n, t, _ = shape
    x = cupy.asarray(rng.standard_normal(shape).astype("float32"))
    layer = layers.LSTM(units, return_sequences=return_sequences)
    layer.build(x.shape)
    dy = cupy.asarray(rng.standard_normal((n, t, units) if return_sequences else (n, units)).astype("float32"))
    return layer, x, dy


def main():
    backend.set_device("gpu")
    rng = numpy.random.default_rng(0)
    for return_sequences in (True, False):
        full, tiny = _case((N, T, D), U, return_sequences, rng), _case((2, 4, 4), 8, return_sequences, rng)
        print(f"LSTM({U}, return_sequences={return_sequences}), batch {N}, sequence {T}, input {D} "
              "(host us per call at that shape / at the tiny one):")
        with numpy.errstate(all="ignore"):     # the no-op launches leave the buffers as they were allocated
            for training in (False, True):
                _one_call(*full, training)     # warm-up: kernels bound, caches filled
                found = _one_call(*full, training)
                seconds = zip(_seconds(*full, training), _seconds(*tiny, training))
                names = ("inference forward",) if not training else ("training forward", "backward")
                for name, work, (spent, spent_tiny) in zip(names, found, seconds):
                    listed = ", ".join(f"{value} {key}" for key, value in sorted(work.items()))
                    print(f"  {name:17s} {spent * 1e6:5.0f} / {spent_tiny * 1e6:4.0f} us host: {listed}")


if __name__ == "__main__":
    main()
