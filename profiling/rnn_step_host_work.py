"""Host work per step of the LSTM and GRU step loops (gpu_dl/ops/rnn.py), kernels taken out, on the emulated
GPU.

Per step of each loop's forward and backward: how many cell launches, matrix
products and other operations on device arrays (elementwise ufunc calls,
NumPy functions, allocations: cupy.empty / zeros / ascontiguousarray ... and
ufunc results, ``@`` included, without ``out=``) the loop issues, and the host microseconds it spends, with every
RawKernel launch a no-op and the arrays tiny (batch 4, input 8, hidden 80:
above 64 units, so the step loop rather than the persistent kernels), so
that what is timed is the Python between launches. Per-step figures are
the difference between a 136-step and an 8-step sequence over 128 steps
(the per-call work cancels), the best of 5 runs each.

The times are the emulator's (its CuPy stand-in is Python over NumPy), not
a GPU's: they compare versions of the loop on one machine; the counts carry
over to a GPU as they are. Run from the repository root:

    python tests/emulated_gpu/run_script.py profiling/rnn_step_host_work.py
"""
import collections
import time

import cupy
import numpy

from gpu_dl import activations, backend
from gpu_dl.ops import rnn

if not cupy.__version__.endswith("emulated"):
    raise SystemExit("rnn_step_host_work.py patches the emulated GPU's CuPy: run it with "
                     "tests/emulated_gpu/run_script.py")

# the loops launched step by step: CUDA-graph replay (on by default) would issue no per-step work to count
backend.set_rnn_graphs(False)
counts = collections.Counter()
cupy.RawKernel.__call__ = lambda self, *args, **kwargs: counts.update(["cell launches"])
_ufunc, _function = cupy.ndarray.__array_ufunc__, cupy.ndarray.__array_function__


def _counting_ufunc(array, ufunc, method, *inputs, **kwargs):
    counts["products" if ufunc is numpy.matmul else "elementwise"] += 1
    counts["allocations"] += kwargs.get("out") is None     # the result is a new array
    return _ufunc(array, ufunc, method, *inputs, **kwargs)


def _counting_function(array, func, types, args, kwargs):
    counts["products" if func is numpy.dot else "other functions"] += 1
    return _function(array, func, types, args, kwargs)


def _counting(name):
    original = getattr(cupy, name)

    def allocate(*args, **kwargs):
        counts["allocations"] += 1
        return original(*args, **kwargs)
    return allocate


cupy.ndarray.__array_ufunc__, cupy.ndarray.__array_function__ = _counting_ufunc, _counting_function
for _name in ("empty", "zeros", "empty_like", "zeros_like", "array", "ascontiguousarray"):
    setattr(cupy, _name, _counting(_name))

N, D, U = 4, 8, 80
TANH, SIGMOID = activations.get("tanh"), activations.get("sigmoid")
rng = numpy.random.default_rng(0)


def run(kind, steps):
    """(forward seconds, backward seconds, forward counts, backward counts) of one call each way."""
    def device(*shape):
        return cupy.asarray((rng.standard_normal(shape) * 0.1).astype("float32"))
    g = 4 if kind == "LSTM" else 3
    bias = device(g * U) if kind == "LSTM" else device(2, g * U)
    states = (device(N, U), device(N, U)) if kind == "LSTM" else (device(N, U),)
    arrays = (device(steps, N, D), device(D, g * U), device(U, g * U), bias) + states
    dh_seq = device(steps, N, U)
    counts.clear()
    start = time.perf_counter()
    if kind == "LSTM":
        _, _, saved = rnn.lstm_forward(*arrays, TANH, SIGMOID, training=True)
    else:
        _, saved = rnn.gru_forward(*arrays, TANH, SIGMOID, training=True)
    forward, forward_counts = time.perf_counter() - start, dict(counts)
    counts.clear()
    start = time.perf_counter()
    (rnn.lstm_backward if kind == "LSTM" else rnn.gru_backward)(saved, dh_seq)
    return forward, time.perf_counter() - start, forward_counts, dict(counts)


def main():
    for kind in ("LSTM", "GRU"):
        with numpy.errstate(all="ignore"):     # the no-op launches leave the buffers as they were allocated
            run(kind, 4)
            short, long = [run(kind, 8) for _ in range(5)], [run(kind, 136) for _ in range(5)]
        for name, index in (("forward", 0), ("backward", 1)):
            seconds = (min(r[index] for r in long) - min(r[index] for r in short)) / 128
            a, b = short[0][2 + index], long[0][2 + index]
            per_step = {key: (b.get(key, 0) - a.get(key, 0)) / 128 for key in sorted(set(a) | set(b))}
            work = ", ".join(f"{value:g} {key}" for key, value in per_step.items() if value)
            print(f"{kind:4s} {name:8s} {seconds * 1e6:5.1f} us of host work per step: {work}")


if __name__ == "__main__":
    main()
