"""LSTM forward and forward + backward: gpu_dl's layer against torch.nn.LSTM (cuDNN) on the same GPU.

gpu_dl: ``gpu_dl.layers.LSTM(units, return_sequences=True)`` on the GPU
backend, called as ``y = layer(x, training=True)`` and, for the backward,
``layer.backward(dy)`` (input and weight gradients): one cuBLAS product for
every step's input projection, then per step a cuBLAS product with the
recurrent kernel and one fused cell kernel (kernels/lstm_cell.cu).
At (64, 128, 256, 512) the GPU work of a step is a few microseconds, so the
host's work between launches sets the time: the step loops check their
arrays and bind their kernels once per call, and each step is then one
product written into a preallocated buffer (cupy.dot with out=) and one
cell launch, forward and backward (the backward cell kernel adds the
output's gradient itself), with no other launch or allocation.
profiling/rnn_step_host_work.py counts that and times the loops' host
work per step with the launches made no-ops on the emulated GPU (CPU-side
Python only, not a GPU time): the loops of commit c6955ba took 20.6 us
forward and 23.6 us backward per step (backward: 1 elementwise launch and
3 allocations besides its product and cell launch), the present ones 15
and 16 us, most of it the emulator's own stand-in for CuPy's indexing and
cupy.dot. This script has not yet been run on a GPU with the present loops.

Above 64 units those step loops run, by default, as CUDA graphs
(gpu_dl/ops/rnn_graphs.py): captured at the first call of a shape and
replayed after, one graph launch each way instead of 2T launches, with the
inputs copied into the graph's static buffers before and the outputs copied
out after. The main table times the layer as it runs by default (graphs
on); a second table, for the cases that take the step loops, times it with
graphs off (eager: every step launched from the host) and on, checks that
both give the same bits, and counts the captures and replays.

PyTorch: ``torch.nn.LSTM(input, hidden, batch_first=True)`` (cuDNN), eager,
training-mode forward (parameters and input require gradients) and
``out.backward(dy)``. Both sides float32 with the same weights: Keras's
kernel (in, 4u) and recurrent kernel (u, 4u) transposed into weight_ih_l0
and weight_hh_l0 (gate order i, f, g, o in both), the whole bias in
bias_ih_l0 and zeros in bias_hh_l0.

Precision: strict float32 on both sides. TF32 is off in cuDNN and in
PyTorch's matmuls (torch.backends.cudnn.allow_tf32 = False,
torch.backends.cuda.matmul.allow_tf32 = False) and in CuPy's (CUPY_TF32=0,
set before CuPy is imported; it is CuPy's default). Outputs and input
gradients are compared before timing (max |difference| <= 1e-3 of the
largest value) with PyTorch's, or without PyTorch with the same layer's on
gpu_dl's NumPy backend (float32); a case that differs prints MISMATCH, is
not timed, and the script exits with status 1.

Times: the median of CUDA-event-timed repeats after a warm-up, without an
L2 flush between repeats (these cases are bound by latency and launch
overhead, not by DRAM bandwidth), and host wall-clock microseconds per call
(the device drained after each round), which is what a training loop waits
for when every step is a few small launches. "cuDNN / gpu_dl" above 1 means
gpu_dl is faster. Targets: >= 1.0x at (batch 64, seq 128, input 256,
hidden 512) and >= 1.5x at (32, 32, 32, 64).

Where the layer takes the persistent LSTM kernels (lstm_persistent_fwd_f32
and lstm_persistent_bwd_f32: the whole sequence in one launch each way, the
recurrent kernel on chip; hidden <= 64, so the small case), a
second table times the same layer with that path switched off, i.e. its
step loops of a cuBLAS product and a cell kernel per step: what the
persistent kernels gain, forward and forward + backward. A third table
times the two persistent kernels alone, launched on preallocated buffers at
the case's sequence length and at 8 times it: the difference over the extra
steps is the kernels' time per step, free of the host work that a single
launch between two CUDA events also measures.

The smoke run (``GPU_DL_BENCH_SMOKE=1``, see ``bench_common.py``) takes
two tiny cases, one above the persistent kernels' 64 units and one below.

Usage: python profiling/bench_lstm.py [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_lstm.py   (tiny cases)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["CUPY_TF32"] = "0"   # before CuPy is imported: strict float32 matmuls

import cupy  # noqa: E402
import numpy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_common as bc  # noqa: E402
from gpu_dl import backend, layers  # noqa: E402
from gpu_dl.ops import rnn_graphs, rnn_kernels  # noqa: E402

DEVICE = "cuda"   # PyTorch's device
# (batch, seq, input features, hidden units); smoke: the step loops (72 units) and the persistent kernels (24)
CASES = bc.smoke([(64, 128, 256, 512), (32, 32, 32, 64)], [(3, 5, 7, 72), (4, 6, 5, 24)])
TARGETS = dict(zip(CASES, [1.0, 1.5]))
TOLERANCE = 1e-3

problems: list = []   # one line per case whose result differs from the reference


def weights(inp, units, seed=0):
    rng = numpy.random.default_rng(seed)
    limit = numpy.sqrt(6.0 / (inp + 4 * units))
    kernel = rng.uniform(-limit, limit, (inp, 4 * units)).astype(numpy.float32)
    recurrent = (rng.standard_normal((units, 4 * units)) / numpy.sqrt(units)).astype(numpy.float32)
    bias = (rng.standard_normal(4 * units) * 0.1).astype(numpy.float32)
    return kernel, recurrent, bias


def inputs(batch, seq, inp, units, seed=1):
    rng = numpy.random.default_rng(seed)
    x = cupy.asarray(rng.standard_normal((batch, seq, inp)).astype(numpy.float32))
    dy = cupy.asarray(rng.standard_normal((batch, seq, units)).astype(numpy.float32))
    return x, dy


def ours(x, units, w):
    layer = layers.LSTM(units, return_sequences=True)
    layer(x, training=True)   # builds it
    layer.set_weights(list(w))
    return layer


def theirs(torch, inp, units, w):
    kernel, recurrent, bias = w
    lstm = torch.nn.LSTM(inp, units, batch_first=True).cuda()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
        lstm.bias_hh_l0.zero_()
    return lstm


def _relative(a, b):
    a, b = cupy.asarray(a), cupy.asarray(b)
    return float(cupy.abs(a - b).max()) / max(float(cupy.abs(b).max()), 1e-30)


def check_same_result(torch, layer, lstm, x, dy):
    """(output difference, input-gradient difference), each relative to the largest PyTorch value."""
    y = layer(x, training=True)
    dx = layer.backward(dy)
    xt = torch.as_tensor(x, device=DEVICE).detach().clone().requires_grad_(True)
    out, _ = lstm(xt)
    out.backward(torch.as_tensor(dy, device=DEVICE))
    torch.cuda.synchronize()
    return _relative(y, out.detach()), _relative(dx, xt.grad)


def check_against_numpy(layer, x, dy, units, w):
    """As ``check_same_result``, without PyTorch: the reference is the same layer on gpu_dl's NumPy backend."""
    y = layer(x, training=True)
    dx = layer.backward(dy)
    backend.set_device("cpu")
    try:
        x_host, dy_host = cupy.asnumpy(x), cupy.asnumpy(dy)
        reference = ours(x_host, units, w)
        y_want = reference(x_host, training=True)
        dx_want = reference.backward(dy_host)
    finally:
        backend.set_device("gpu")
    return _relative(y, y_want), _relative(dx, dx_want)


def run():
    backend.set_device("gpu")
    torch = bc.torch_or_none()
    if torch is not None:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    out = [bc.header("LSTM (return_sequences=True), float32: gpu_dl's layer against torch.nn.LSTM (cuDNN)"),
           "Strict float32 on both sides: TF32 off in cuDNN and PyTorch matmuls (torch.backends.cudnn.allow_tf32 = "
           "False, torch.backends.cuda.matmul.allow_tf32 = False) and in CuPy (CUPY_TF32=0). "
           "GPU times: median of CUDA-event-timed repeats, no L2 flush (latency-bound cases). "
           "Wall: host microseconds per call, device drained per round. Ratios are cuDNN time / gpu_dl time "
           "(above 1: gpu_dl faster).\n"]
    if torch is None:
        out.append("PyTorch with CUDA is not installed: gpu_dl alone, its results checked against its NumPy "
                   "backend's.\n")
    rows, graph_rows_, persistent_rows, kernel_rows = [], [], [], []
    for batch, seq, inp, units in CASES:
        shape = f"({batch}, {seq}, {inp}, {units})"
        w = weights(inp, units)
        x, dy = inputs(batch, seq, inp, units)
        layer = ours(x, units, w)
        lstm = theirs(torch, inp, units, w) if torch is not None else None
        if lstm is not None:
            y_diff, dx_diff = check_same_result(torch, layer, lstm, x, dy)
        else:
            y_diff, dx_diff = check_against_numpy(layer, x, dy, units, w)
        if max(y_diff, dx_diff) > TOLERANCE or not numpy.isfinite([y_diff, dx_diff]).all():
            line = (f"MISMATCH at {shape}: output differs by {y_diff:.2e}, input gradient by {dx_diff:.2e} "
                    f"(relative to the largest value; tolerance {TOLERANCE}); not timed.")
            print(line)
            problems.append(line)
            rows.append([shape, "MISMATCH"] + ["-"] * 7)
            continue
        repeats = 20 if seq * units > 10000 else 50
        calls = 10 if seq * units > 10000 else 100

        def fwd():
            layer(x, training=True)

        def fwd_bwd():
            layer(x, training=True)
            layer.backward(dy)

        ms = {"fwd": bc.time_gpu(fwd, repeats=repeats, flush=False),
              "both": bc.time_gpu(fwd_bwd, repeats=repeats, flush=False)}
        wall = {"fwd": bc.time_wall_per_call(fwd, calls=calls), "both": bc.time_wall_per_call(fwd_bwd, calls=calls)}
        cells = []
        if lstm is not None:
            xt = torch.as_tensor(x, device=DEVICE).detach().clone().requires_grad_(True)
            dyt = torch.as_tensor(dy, device=DEVICE)

            def t_fwd():
                lstm(xt)

            def t_both():
                xt.grad = None
                lstm.zero_grad(set_to_none=True)
                o, _ = lstm(xt)
                o.backward(dyt)

            t_ms = {"fwd": bc.time_gpu(t_fwd, repeats=repeats, flush=False, sync=torch.cuda.synchronize),
                    "both": bc.time_gpu(t_both, repeats=repeats, flush=False, sync=torch.cuda.synchronize)}
            t_wall = {"fwd": bc.time_wall_per_call(t_fwd, calls=calls),
                      "both": bc.time_wall_per_call(t_both, calls=calls)}
            for key in ("fwd", "both"):
                cells.append((t_ms[key], t_wall[key]))
        for i, key in enumerate(("fwd", "both")):
            name = "forward" if key == "fwd" else "forward + backward"
            row = [shape, name, f"{ms[key] * 1e3:.0f}", f"{wall[key]:.0f}"]
            if cells:
                t_gpu, t_wall_us = cells[i]
                ratio_gpu, ratio_wall = t_gpu / ms[key], t_wall_us / wall[key]
                target = TARGETS[(batch, seq, inp, units)]
                row += [f"{t_gpu * 1e3:.0f}", f"{t_wall_us:.0f}", f"{ratio_gpu:.2f}x", f"{ratio_wall:.2f}x",
                        f">= {target}x: GPU {'met' if ratio_gpu >= target else 'NOT met'}, "
                        f"wall {'met' if ratio_wall >= target else 'NOT met'}"]
            else:
                row += ["-"] * 5
            rows.append(row)

        if rnn_kernels.persistent_applies(batch, units, numpy.float32):
            persistent_rows += step_loop_rows(layer, x, dy, shape, ms, wall)
            kernel_rows += persistent_kernel_rows(batch, seq, units, shape)
        else:
            graph_rows_ += graph_rows(layer, x, dy, shape, repeats, calls)
    out.append(bc.table(["(batch, seq, input, hidden)", "pass", "gpu_dl GPU us", "gpu_dl wall us/call",
                         "cuDNN GPU us", "cuDNN wall us/call", "cuDNN / gpu_dl (GPU)", "cuDNN / gpu_dl (wall)",
                         "target"], rows))
    if graph_rows_:
        out.append("\nThe step loops launched from the host step by step (eager: backend.set_rnn_graphs(False)) "
                   "against their CUDA graphs replayed (graphs on, the default); captures / replays counted over "
                   "the graph side's calls:\n\n" +
                   bc.table(["(batch, seq, input, hidden)", "pass", "eager GPU us", "eager wall us/call",
                             "graph GPU us", "graph wall us/call", "eager / graph (GPU)", "eager / graph (wall)",
                             "max abs. difference (h; h and dx)", "captures / replays"], graph_rows_))
    if persistent_rows:
        out.append("\nThe layer with the persistent kernels (as above) against its step loops "
                   "(persistent path switched off):\n\n" +
                   bc.table(["(batch, seq, input, hidden)", "pass", "step loop GPU us", "step loop wall us/call",
                             "persistent GPU us", "persistent wall us/call", "step loop / persistent (wall)",
                             "max abs. difference (h; h and dx)"], persistent_rows))
    if kernel_rows:
        out.append(f"\nThe persistent kernels alone (one launch each between CUDA events, buffers preallocated), "
                   f"at the case's sequence length T and at {LONG_FACTOR} T; per step: the difference over the "
                   f"extra steps, which the host's launch work does not enter:\n\n" +
                   bc.table(["(batch, seq, input, hidden)", "kernel", "GPU us (T steps)",
                             f"GPU us ({LONG_FACTOR} T steps)", "GPU us per step"], kernel_rows))
    return "\n".join(out)


def training_passes(layer, x, dy):
    """``(forward, forward_backward)``: the layer's training forward on ``x``, and that followed by its backward
    from ``dy`` (returning ``(y, dx)``)."""
    def forward():
        return layer(x, training=True)

    def forward_backward():
        y = layer(x, training=True)
        return y, layer.backward(dy)
    return forward, forward_backward


def step_loop_rows(layer, x, dy, shape, persistent_ms, persistent_wall):
    """Time the layer with the persistent kernels switched off; check it against the persistent path."""
    forward, forward_backward = training_passes(layer, x, dy)
    with_persistent = [a.copy() for a in forward_backward()]
    real_test = rnn_kernels.persistent_applies
    rnn_kernels.persistent_applies = lambda *args: False   # ops/rnn.py looks it up on every call
    try:
        by_loop = forward_backward()
        differences = {"fwd": float(cupy.abs(by_loop[0] - with_persistent[0]).max()),
                       "both": max(float(cupy.abs(a - b).max()) for a, b in zip(by_loop, with_persistent))}
        ms = {"fwd": bc.time_gpu(forward, repeats=50, flush=False),
              "both": bc.time_gpu(forward_backward, repeats=50, flush=False)}
        wall = {"fwd": bc.time_wall_per_call(forward, calls=100),
                "both": bc.time_wall_per_call(forward_backward, calls=100)}
    finally:
        rnn_kernels.persistent_applies = real_test
    return [[shape, "forward" if key == "fwd" else "forward + backward", f"{ms[key] * 1e3:.0f}", f"{wall[key]:.0f}",
             f"{persistent_ms[key] * 1e3:.0f}", f"{persistent_wall[key]:.0f}",
             f"{wall[key] / persistent_wall[key]:.2f}x", f"{differences[key]:.1e}"] for key in ("fwd", "both")]


def graph_rows(layer, x, dy, shape, repeats, calls):
    """Time the layer's step loops eager (graphs off) and replayed from CUDA graphs (on); check both agree."""
    forward, forward_backward = training_passes(layer, x, dy)
    results, ms, wall = {}, {}, {}
    previous = backend.rnn_graphs()
    try:
        for graphs in (False, True):
            backend.set_rnn_graphs(graphs)
            rnn_graphs.clear()
            results[graphs] = [a.copy() for a in forward_backward()]    # with graphs: the captures
            ms[graphs] = {"fwd": bc.time_gpu(forward, repeats=repeats, flush=False),
                          "both": bc.time_gpu(forward_backward, repeats=repeats, flush=False)}
            wall[graphs] = {"fwd": bc.time_wall_per_call(forward, calls=calls),
                            "both": bc.time_wall_per_call(forward_backward, calls=calls)}
        stats = rnn_graphs.stats()
    finally:
        backend.set_rnn_graphs(previous)
    pairs = list(zip(results[False], results[True]))
    differences = {"fwd": float(cupy.abs(pairs[0][0] - pairs[0][1]).max()),
                   "both": max(float(cupy.abs(a - b).max()) for a, b in pairs)}
    counted = f"{stats['captures']} / {stats['replays']}" + (f" (refused: {stats['refused']})" if stats["refused"]
                                                              else "")
    return [[shape, "forward" if key == "fwd" else "forward + backward", f"{ms[False][key] * 1e3:.0f}",
             f"{wall[False][key]:.0f}", f"{ms[True][key] * 1e3:.0f}", f"{wall[True][key]:.0f}",
             f"{ms[False][key] / ms[True][key]:.2f}x", f"{wall[False][key] / wall[True][key]:.2f}x",
             f"{differences[key]:.1e}", counted] for key in ("fwd", "both")]


LONG_FACTOR = 8


def persistent_kernel_rows(batch, seq, units, shape):
    """Time lstm_persistent_fwd_f32 and lstm_persistent_bwd_f32 alone at ``seq`` and LONG_FACTOR * ``seq`` steps."""
    rng = numpy.random.default_rng(2)

    def normal(*shape_, scale=1.0):
        return cupy.asarray((rng.standard_normal(shape_) * scale).astype(numpy.float32))

    recurrent = normal(units, 4 * units, scale=1 / numpy.sqrt(units))
    times = {"lstm_persistent_fwd_f32": [], "lstm_persistent_bwd_f32": []}
    for steps in (seq, LONG_FACTOR * seq):
        xw = normal(steps, batch, 4 * units)
        h_seq = cupy.empty((steps + 1, batch, units), cupy.float32)
        c_seq = cupy.empty((steps + 1, batch, units), cupy.float32)
        gates = cupy.empty((steps, batch, 4 * units), cupy.float32)
        h_seq[0], c_seq[0] = normal(batch, units), normal(batch, units)
        dh_seq, dz = normal(steps, batch, units), cupy.empty((steps, batch, 4 * units), cupy.float32)
        dh0, dc0 = cupy.empty((batch, units), cupy.float32), cupy.empty((batch, units), cupy.float32)

        def forward():
            rnn_kernels.lstm_sequence_forward_persistent_cuda(xw, recurrent, h_seq[0], c_seq[0], h_seq, c_seq, gates)

        def backward():
            rnn_kernels.lstm_sequence_backward_persistent_cuda(dh_seq, None, None, gates, c_seq, recurrent, dz, dh0,
                                                               dc0)

        forward()   # the gates and cell states the backward reads
        times["lstm_persistent_fwd_f32"].append(bc.time_gpu(forward, repeats=50, flush=False))
        times["lstm_persistent_bwd_f32"].append(bc.time_gpu(backward, repeats=50, flush=False))
    extra = (LONG_FACTOR - 1) * seq
    return [[shape, name, f"{short * 1e3:.1f}", f"{long_ * 1e3:.1f}", f"{(long_ - short) * 1e3 / extra:.2f}"]
            for name, (short, long_) in times.items()]


if __name__ == "__main__":
    bc.main(run, __doc__.splitlines()[0])
    sys.exit(1 if problems else 0)
