"""Fused softmax + cross-entropy, forward and backward, against PyTorch on the same GPU.

gpu_dl: one launch of softmax_xent_sparse_f32 writing the per-sample loss
and d loss / d logits (the training step's call; probabilities not written).
PyTorch: ``F.cross_entropy(logits, labels, reduction="sum")`` and its
``backward()``, eager, float32.

A second table times the loss Keras 3 computes from a softmax output, what a model compiled with
(sparse) categorical cross-entropy on a softmax trains with: the probabilities clipped to
[1e-7, 1 - 1e-7] before the log. gpu_dl: the same one launch with ``epsilon=1e-7``. PyTorch: what
Keras's torch backend runs for it, ``softmax``, ``clamp``, ``log``, the label's entry, ``sum``, and
``backward()``, eager, float32 (several launches; there is no fused clipped loss in PyTorch).

Bytes counted (both sides, the least either must move): logits read once,
labels read once (int64), the gradient written once, the per-sample loss
written once. Target: gpu_dl >= 85% of the copy bandwidth and >= 2x PyTorch
at (4096, 1000).

Before a shape or a register-cache setting is timed, gpu_dl's gradient is
checked against PyTorch's (without PyTorch, against gpu_dl's NumPy path in
float64): max |difference| < 1e-5, else the script stops with a MISMATCH.

Usage: python profiling/bench_softmax_xent.py [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_softmax_xent.py   (tiny shapes: bench_common.py)
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
from gpu_dl.ops.softmax_xent import softmax_xent, softmax_xent_cuda  # noqa: E402

# Smoke shapes take the same kernels: classes in the register cache, beyond it (4096), and narrow (<= 128).
BANDWIDTH_SHAPES = bc.smoke([(4096, 1000), (65536, 1000), (16384, 4096), (262144, 128)],
                            [(5, 1000), (3, 4096), (9, 128)])
SMALL_SHAPES = bc.smoke([(32, 10), (256, 10), (128, 1000)], [(3, 10), (2, 1000)])
TARGET_SHAPE = bc.smoke((4096, 1000), (5, 1000))   # where the register-cache settings are compared
TOLERANCE = 1e-5   # max |difference| of the gradients
KERAS_EPSILON = 1e-7   # Keras's clip of the probabilities of a softmax output
# Register-cache and occupancy settings compared at the target shape (values per lane; default 32).
VARIANTS = {"cache 32, 8 blocks/SM (default)": (), "cache 32, 1 block/SM": ("-DSXE_MIN_BLOCKS_F32=1",),
            "cache 16, 8 blocks/SM": ("-DSXE_CACHE_F32=16",)}


def inputs(rows, classes, seed=0):
    rng = numpy.random.default_rng(seed)
    logits = cupy.asarray((rng.standard_normal((rows, classes)) * 3).astype(numpy.float32))
    labels = cupy.asarray(rng.integers(0, classes, rows))
    return logits, labels


def bytes_moved(rows, classes):
    return rows * classes * 4 * 2 + rows * (8 + 4)


def ours(logits, labels, options=(), epsilon=0.0):
    return lambda: softmax_xent_cuda(logits, labels, sparse=True, epsilon=epsilon, want_probs=False, options=options)


def torch_loss(torch, x, y, epsilon):
    """PyTorch's sum of the per-sample losses: its fused cross-entropy, or with ``epsilon`` the clipped
    probabilities' log as Keras's torch backend computes it."""
    if not epsilon:
        return torch.nn.functional.cross_entropy(x, y, reduction="sum")
    probabilities = torch.softmax(x, dim=-1).clamp(epsilon, 1.0 - epsilon)
    return -torch.log(probabilities).gather(1, y[:, None]).sum()


def theirs(torch, logits, labels, epsilon=0.0):
    x = torch.as_tensor(logits, device="cuda").detach().clone().requires_grad_(True)
    y = torch.as_tensor(labels, device="cuda")

    def step():
        x.grad = None
        torch_loss(torch, x, y, epsilon).backward()
    return step


def check_same_result(torch, logits, labels, options=(), epsilon=0.0):
    """gpu_dl computes PyTorch's gradient (so the comparison is of like with like); without PyTorch, the NumPy
    path's in float64. Raises AssertionError (a MISMATCH) otherwise, also under ``python -O``."""
    _, _, dlogits = softmax_xent_cuda(logits, labels, sparse=True, epsilon=epsilon, want_probs=False,
                                      options=options)
    if torch is not None:
        x = torch.as_tensor(logits, device="cuda").detach().clone().requires_grad_(True)
        torch_loss(torch, x, torch.as_tensor(labels, device="cuda"), epsilon).backward()
        reference, what = cupy.asarray(x.grad), "PyTorch"
    else:
        _, _, reference = softmax_xent(cupy.asnumpy(logits).astype(numpy.float64), cupy.asnumpy(labels),
                                       sparse=True, epsilon=epsilon, want_probs=False)
        what = "gpu_dl's NumPy path (float64)"
    difference = float(cupy.abs(dlogits - cupy.asarray(reference)).max())
    if not difference < TOLERANCE:   # NaN counts as a difference
        setting = " ".join(options + ((f"epsilon={epsilon}",) if epsilon else ()))
        raise AssertionError(f"MISMATCH at {tuple(logits.shape)}{' with ' + setting if setting else ''}: "
                             f"gpu_dl's gradient and {what}'s differ by {difference}")


def bandwidth_table(torch, copy, epsilon):
    """Time and fraction of the copy bandwidth of every BANDWIDTH_SHAPES shape, gpu_dl and PyTorch."""
    rows_out = []
    for rows, classes in BANDWIDTH_SHAPES:
        logits, labels = inputs(rows, classes)
        check_same_result(torch, logits, labels, epsilon=epsilon)
        ms = bc.time_gpu(ours(logits, labels, epsilon=epsilon))
        fraction = bytes_moved(rows, classes) / (ms * 1e-3) / copy
        if torch is not None:
            torch_ms = bc.time_gpu(theirs(torch, logits, labels, epsilon), sync=torch.cuda.synchronize)
            torch_cells = [f"{torch_ms * 1e3:.1f}", f"{bytes_moved(rows, classes) / (torch_ms * 1e-3) / copy:.0%}",
                           f"{torch_ms / ms:.2f}x"]
        else:
            torch_cells = ["-", "-", "-"]
        rows_out.append([f"({rows}, {classes})", f"{bytes_moved(rows, classes) / 2**20:.1f}", f"{ms * 1e3:.1f}",
                         f"{fraction:.0%}"] + torch_cells)
    return bc.table(["shape", "MiB moved", "gpu_dl us", "of copy BW", "PyTorch us", "PyTorch of copy BW",
                     "speed-up"], rows_out)


def run():
    backend.set_device("gpu")
    torch = bc.torch_or_none()
    copy = bc.copy_bandwidth()
    out = [bc.header("Fused softmax + cross-entropy, forward + backward (float32, sparse labels)"),
           f"Device-to-device copy: {copy / 1e9:.0f} GB/s (read + written). "
           "Times are medians of 50 CUDA-event-timed repeats, L2 flushed before each.\n"]
    out.append(bandwidth_table(torch, copy, epsilon=0.0))
    out.append(f"\nKeras's loss on a softmax output (probabilities clipped to [{KERAS_EPSILON}, 1 - {KERAS_EPSILON}]; "
               "PyTorch unfused, as Keras's torch backend runs it):\n\n" +
               bandwidth_table(torch, copy, epsilon=KERAS_EPSILON))

    variant_rows = []
    logits, labels = inputs(*TARGET_SHAPE)
    for name, options in VARIANTS.items():
        check_same_result(torch, logits, labels, options)
        ms = bc.time_gpu(ours(logits, labels, options))
        variant_rows.append([name, f"{ms * 1e3:.1f}", f"{bytes_moved(*TARGET_SHAPE) / (ms * 1e-3) / copy:.0%}"])
    out.append(f"\nRegister cache per lane at {TARGET_SHAPE}:\n\n" +
               bc.table(["setting", "gpu_dl us", "of copy BW"], variant_rows))

    small_rows = []
    for rows, classes in SMALL_SHAPES:
        logits, labels = inputs(rows, classes)
        us = bc.time_wall_per_call(ours(logits, labels))
        torch_us = bc.time_wall_per_call(theirs(torch, logits, labels)) if torch is not None else None
        small_rows.append([f"({rows}, {classes})", f"{us:.1f}", "-" if torch_us is None else f"{torch_us:.1f}",
                           "-" if torch_us is None else f"{torch_us / us:.2f}x"])
    out.append("\nSmall shapes: host wall-clock microseconds per call (launch and Python overhead; "
               "not a bandwidth figure):\n\n" +
               bc.table(["shape", "gpu_dl us/call", "PyTorch us/call", "speed-up"], small_rows))
    return "\n".join(out)


if __name__ == "__main__":
    bc.main(run, __doc__.splitlines()[0])
