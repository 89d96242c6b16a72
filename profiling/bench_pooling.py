"""2-D pooling (NHWC, float32), forward, backward and forward + backward, against the copy bandwidth and PyTorch.

Operations (Keras geometry; "same" padding from ``gpu_dl.ops.convolution.same_padding``):
- max 2x2 stride 2 and max 3x3 stride 2 "same", average 2x2 stride 2 and
  average 3x3 stride 2 "same" (padding not counted), at (128, 56, 56, 64),
  (128, 28, 28, 32), (128, 32, 32, 32) and (128, 112, 112, 64) (the output
  of a ResNet stem, where its 3x3/2 max pool runs: the shape large enough for
  every pass to be a bandwidth figure);
- global average and global max at (128, 7, 7, 512), (128, 56, 56, 64) and
  (128, 112, 112, 64).
gpu_dl: the ``gpu_dl.ops.pool_kernels`` launchers; backward is the backward
call alone with a fixed dy (and, for max, the argmax of one forward call
made beforehand); forward + backward is the forward call, then the backward
call. The windowed backward runs the form ``pool_kernels.backward_form``
names (2x2/2: disjoint, 3x3/2: rows), which the row label gives.
PyTorch: ``F.max_pool2d(..., return_indices=True)``, ``F.avg_pool2d(...,
count_include_pad=False)``, ``F.adaptive_avg_pool2d(x, 1)`` and
``F.adaptive_max_pool2d(x, 1, return_indices=True)`` on channels_last
tensors, under ``torch.no_grad()`` for the forward; forward + backward
through autograd (``y.backward(dy)``, the input requiring grad); backward
alone is ``torch.autograd.grad(y, x, dy, retain_graph=True)`` on one graph
built beforehand.
Asymmetric "same" padding: 3x3/2 on an even size pads one row and column at
the bottom/right only, and PyTorch's pooling pads both sides alike. With
``padding`` = the top/left pad and ``ceil_mode=True`` PyTorch adds the same
last, partial window, whose positions past the input max pooling never picks
and ``count_include_pad=False`` average pooling does not count: the same
function, with no ``F.pad`` copy (which would add traffic to PyTorch's side
and, for average pooling, count the pad). Both results are compared before
timing (y and dx, max |diff| <= 1e-5 * max |ref|; without PyTorch against
gpu_dl's NumPy path). Where gpu_dl and PyTorch differ, gpu_dl's result is
checked against its NumPy path as well (``check_twice``): if it differs
there too, the mismatch is printed, that row is not timed and the script
exits with status 1; if it matches, PyTorch's result is the wrong one, and
the case is listed under "PyTorch's results differ" and timed.

Bytes counted (the least either library must move, float32 = 4 B): forward
reads x and writes y (and, for max, an int32 argmax the size of y); backward
reads dy (and the argmax) and writes dx (its own pass, "bwd"); forward +
backward is the sum.
PyTorch writes int64 indices for max pooling, moving more than this count;
its fraction of the copy bandwidth is still computed from the same count.

Method: CUDA events, median of 50 repeats after 5 warm-up calls, L2
flushed before each repeat (``bc.time_gpu``); bandwidth = bytes counted /
time, as a fraction of a device-to-device copy (``bc.copy_bandwidth``)
measured in the same run. Only passes moving >= 256 MiB are bandwidth
rows (target: >= 85% of the copy bandwidth). The rest are small (the
smallest fit in the L2; all are short enough for launch latency to weigh):
they are reported as microseconds, device time per call and host wall-clock
time per call (``bc.time_wall_per_call``, launch and Python overhead
included), not as bandwidth.

The smoke run (``GPU_DL_BENCH_SMOKE=1``, see ``bench_common.py``) takes
shapes of a few images of 3 to 12 pixels a side, odd and even (so both
"same" paddings), and counts passes from 32 KiB up as bandwidth rows, so
both tables have rows.

Usage: python profiling/bench_pooling.py [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_pooling.py   (tiny shapes)
"""
from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path

import cupy
import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_common as bc  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.ops import pool  # noqa: E402
from gpu_dl.ops import pool_kernels as kernels  # noqa: E402
from gpu_dl.ops.convolution import same_padding  # noqa: E402

DEVICE = "cuda"          # PyTorch's device
REPEATS = 50
LARGE = bc.smoke(256 << 20, 32 << 10)   # bytes moved from which a pass is a bandwidth figure
TARGET = 0.85            # of the copy bandwidth
TOLERANCE = 1e-5         # max |diff| / max |ref| of y and dx against the other library
STEM = bc.smoke((128, 112, 112, 64), (4, 12, 12, 16))
WINDOWED_SHAPES = bc.smoke([(128, 56, 56, 64), (128, 28, 28, 32), (128, 32, 32, 32), STEM],
                           [(3, 8, 8, 16), (2, 7, 7, 8), (2, 9, 9, 8), STEM])
WINDOWS = [("max", 2, 2), ("max", 3, 2), ("avg", 2, 2), ("avg", 3, 2)]   # (kind, window, stride)
GLOBAL_SHAPES = bc.smoke([(128, 7, 7, 512), (128, 56, 56, 64), STEM], [(2, 3, 3, 40), (3, 8, 8, 16), STEM])
GLOBALS = ["global avg", "global max"]

problems: list = []   # one line per wrong result or failed call
torch_notes: list = []   # one line per case where PyTorch's result, not gpu_dl's, is the one that differs


def nchw(torch, a):
    """NHWC memory viewed as NCHW: channels_last strides, no copy."""
    return torch.as_tensor(a, device=DEVICE).permute(0, 3, 1, 2)


def leaf(torch, a):
    return nchw(torch, a).detach().clone(memory_format=torch.channels_last).requires_grad_(True)


def nhwc(t):
    return cupy.asarray(t.detach().permute(0, 2, 3, 1).contiguous())


def random(shape, seed):
    return cupy.asarray(numpy.random.default_rng(seed).standard_normal(shape, dtype=numpy.float32))


class Case:
    """One pooling at one shape: the calls of both libraries, the bytes each pass moves, a reference check."""

    def __init__(self, label, shape, bytes_fwd, bytes_bwd):
        self.label, self.shape = label, shape
        self.bytes = {"fwd": bytes_fwd, "bwd": bytes_bwd, "fwd+bwd": bytes_fwd + bytes_bwd}   # the passes, in order
        self.ours = {}          # pass -> callable
        self.theirs = {}        # pass -> callable (PyTorch)
        self.reference = None   # callable -> [y, dx] laid out as gpu_dl's: PyTorch's, else the NumPy path's
        self.numpy_reference = None   # callable -> [y, dx] from gpu_dl's NumPy path: the second opinion

    def check(self, got, want):
        """Raise AssertionError unless got and want ([y, dx]) agree within TOLERANCE."""
        for name, g, w in zip(("y", "dx"), got, want):
            g, w = cupy.asarray(g), cupy.asarray(w)
            if g.shape != w.shape:
                raise AssertionError(f"{name}: gpu_dl shape {g.shape}, reference shape {w.shape}")
            scale = float(cupy.abs(w).max()) or 1.0
            error = float(cupy.abs(g.astype(cupy.float64) - w.astype(cupy.float64)).max()) / scale
            if not error <= TOLERANCE:   # NaN counts as wrong
                raise AssertionError(f"{name}: max |diff| / max |ref| = {error:.2e} > {TOLERANCE:g}")


def windowed_case(torch, kind, window, stride, shape):
    n, h, w, c = shape
    pool_size, strides = (window, window), (stride, stride)
    padding = (same_padding(h, window, stride), same_padding(w, window, stride))
    (pt, pb), (pl, pr) = padding
    _, oh, ow, _ = pool.pool_output_shape(shape, pool_size, strides, padding)
    x, dy = random(shape, 0), random((n, oh, ow, c), 1)
    index_bytes = 4 * n * oh * ow * c if kind == "max" else 0
    bytes_x, bytes_y = 4 * n * h * w * c, 4 * n * oh * ow * c
    torch_note = "; PyTorch ceil_mode" if (pb, pr) != (pt, pl) else ""
    form = kernels.backward_form(pool_size, strides)
    label = f"{kind} {window}x{window}/{stride} same, pad {padding}, bwd {form}{torch_note}"
    case = Case(label, shape, bytes_x + bytes_y + index_bytes, bytes_y + index_bytes + bytes_x)

    if kind == "max":
        case.ours["fwd"] = lambda: kernels.max_pool2d_forward_cuda(x, pool_size, strides, padding)
        argmax = case.ours["fwd"]()[1]   # what the backward alone reads
        case.ours["bwd"] = lambda: kernels.max_pool2d_backward_cuda(dy, argmax, x.shape, pool_size, strides, padding)

        def ours_step():
            y, argmax = kernels.max_pool2d_forward_cuda(x, pool_size, strides, padding)
            return y, kernels.max_pool2d_backward_cuda(dy, argmax, x.shape, pool_size, strides, padding)
    else:
        case.ours["fwd"] = lambda: kernels.avg_pool2d_forward_cuda(x, pool_size, strides, padding)
        case.ours["bwd"] = lambda: kernels.avg_pool2d_backward_cuda(dy, x.shape, pool_size, strides, padding)

        def ours_step():
            y = kernels.avg_pool2d_forward_cuda(x, pool_size, strides, padding)
            return y, kernels.avg_pool2d_backward_cuda(dy, x.shape, pool_size, strides, padding)
    case.ours["fwd+bwd"] = ours_step

    def numpy_reference():
        xn, dyn = cupy.asnumpy(x), cupy.asnumpy(dy)
        if kind == "max":
            y, argmax = pool.max_pool2d_forward(xn, pool_size, strides, padding)
            return [y, pool.max_pool2d_backward(dyn, argmax, shape, pool_size, strides, padding)]
        return [pool.avg_pool2d_forward(xn, pool_size, strides, padding),
                pool.avg_pool2d_backward(dyn, shape, pool_size, strides, padding)]
    case.reference = case.numpy_reference = numpy_reference
    if torch is None:
        return case

    F = torch.nn.functional
    if pb - pt not in (0, 1) or pr - pl not in (0, 1):
        raise ValueError(f"{label}: no PyTorch padding/ceil_mode gives padding {padding}")
    tx, tdy = leaf(torch, x), nchw(torch, dy)
    args = {"kernel_size": window, "stride": stride, "padding": (pt, pl), "ceil_mode": (pb, pr) != (pt, pl)}
    if kind == "max":
        def torch_pool(t):
            return F.max_pool2d(t, return_indices=True, **args)[0]

        def torch_forward():
            with torch.no_grad():
                return F.max_pool2d(tx, return_indices=True, **args)
    else:
        def torch_pool(t):
            return F.avg_pool2d(t, count_include_pad=False, **args)

        def torch_forward():
            with torch.no_grad():
                return F.avg_pool2d(tx, count_include_pad=False, **args)
    case.theirs["fwd"] = torch_forward
    case.theirs["bwd"] = torch_backward_alone(torch, tx, tdy, torch_pool)
    case.theirs["fwd+bwd"] = torch_autograd_step(tx, tdy, torch_pool)
    case.reference = lambda: torch_reference(tx, tdy, torch_pool, nhwc)
    return case


def global_case(torch, kind, shape):
    n, h, w, c = shape
    x, dy = random(shape, 0), random((n, c), 1)
    index_bytes = 4 * n * c if kind == "global max" else 0
    bytes_x, bytes_y = 4 * n * h * w * c, 4 * n * c
    case = Case(kind, shape, bytes_x + bytes_y + index_bytes, bytes_y + index_bytes + bytes_x)

    if kind == "global max":
        case.ours["fwd"] = lambda: kernels.global_max_pool2d_forward_cuda(x)
        argmax = case.ours["fwd"]()[1]   # what the backward alone reads
        case.ours["bwd"] = lambda: kernels.global_max_pool2d_backward_cuda(dy, argmax, x.shape)

        def ours_step():
            y, argmax = kernels.global_max_pool2d_forward_cuda(x)
            return y, kernels.global_max_pool2d_backward_cuda(dy, argmax, x.shape)
    else:
        case.ours["fwd"] = lambda: kernels.global_avg_pool2d_forward_cuda(x)
        case.ours["bwd"] = lambda: kernels.global_avg_pool2d_backward_cuda(dy, x.shape)

        def ours_step():
            y = kernels.global_avg_pool2d_forward_cuda(x)
            return y, kernels.global_avg_pool2d_backward_cuda(dy, x.shape)
    case.ours["fwd+bwd"] = ours_step

    def numpy_reference():
        xn, dyn = cupy.asnumpy(x), cupy.asnumpy(dy)
        if kind == "global max":
            y, argmax = pool.global_max_pool2d_forward(xn)
            return [y, pool.global_max_pool2d_backward(dyn, argmax, shape)]
        return [pool.global_avg_pool2d_forward(xn), pool.global_avg_pool2d_backward(dyn, shape)]
    case.reference = case.numpy_reference = numpy_reference
    if torch is None:
        return case

    F = torch.nn.functional
    tx = leaf(torch, x)
    tdy = torch.as_tensor(dy, device=DEVICE).reshape(n, c, 1, 1)   # (N, C, 1, 1): also channels_last
    if kind == "global max":
        def torch_pool(t):
            return F.adaptive_max_pool2d(t, 1, return_indices=True)[0]

        def torch_forward():
            with torch.no_grad():
                return F.adaptive_max_pool2d(tx, 1, return_indices=True)
    else:
        def torch_pool(t):
            return F.adaptive_avg_pool2d(t, 1)

        def torch_forward():
            with torch.no_grad():
                return F.adaptive_avg_pool2d(tx, 1)
    case.theirs["fwd"] = torch_forward
    case.theirs["bwd"] = torch_backward_alone(torch, tx, tdy, torch_pool)
    case.theirs["fwd+bwd"] = torch_autograd_step(tx, tdy, torch_pool)
    case.reference = lambda: torch_reference(tx, tdy, torch_pool,
                                             lambda t: cupy.asarray(t.detach().reshape(n, c).contiguous()))
    return case


def torch_autograd_step(tx, tdy, torch_pool):
    def step():
        tx.grad = None
        y = torch_pool(tx)
        y.backward(tdy)
        return y
    return step


def torch_backward_alone(torch, tx, tdy, torch_pool):
    """PyTorch's backward pass alone: one graph built here, its gradient taken again at each call."""
    y = torch_pool(tx)

    def step():
        return torch.autograd.grad(y, tx, tdy, retain_graph=True)
    return step


def torch_reference(tx, tdy, torch_pool, y_to_ours):
    """[y, dx] from PyTorch, as gpu_dl lays them out."""
    tx.grad = None
    y = torch_pool(tx)
    y.backward(tdy)
    result = [y_to_ours(y), nhwc(tx.grad)]
    tx.grad = None
    return result


def cases(torch):
    """(factory of a Case, label, input shape) of every row group."""
    for kind, window, stride in WINDOWS:
        for shape in WINDOWED_SHAPES:
            yield (functools.partial(windowed_case, torch, kind, window, stride, shape),
                   f"{kind} {window}x{window}/{stride}", shape)
    for kind in GLOBALS:
        for shape in GLOBAL_SHAPES:
            yield functools.partial(global_case, torch, kind, shape), kind, shape


def free(torch):
    cupy.get_default_memory_pool().free_all_blocks()
    backend.empty_cache()
    if torch is not None:
        torch.cuda.empty_cache()


def check_twice(case, got):
    """Check gpu_dl's [y, dx] against ``case.reference`` (PyTorch's where it ran); where they differ, against
    gpu_dl's NumPy path too, to tell which side is wrong: AssertionError naming both differences where gpu_dl
    differs from its NumPy path as well, else a line in ``torch_notes`` (PyTorch is the one that differs).

    Seen on PyTorch 2.11's CUDA build: ``F.avg_pool2d`` backward on channels_last tensors with padding > 0
    maps every input pixel to the windows of the pixel ``padding`` rows and columns further up and left
    (pytorch/pytorch#188344, fixed by pull request 188345), so this script's "same" 3x3/2 average pooling
    of odd sizes (padding 1) gets a wrong PyTorch dx; the forward and padding 0 are right."""
    try:
        case.check(got, case.reference())
    except AssertionError as exc:
        if case.reference is case.numpy_reference:
            raise
        try:
            case.check(got, case.numpy_reference())
        except AssertionError as second:
            raise AssertionError(f"against PyTorch {exc}; against gpu_dl's NumPy path {second}") from None
        line = (f"PyTorch differs: {case.label} at {case.shape}: against PyTorch {exc}, while gpu_dl matches "
                f"its NumPy path (PyTorch's result is the wrong one; timed all the same)")
        print(line, file=sys.stderr, flush=True)
        torch_notes.append(line)


def measure(torch, case, copy):
    """Rows of the bandwidth table and of the small-shape table for one case."""
    large, small = [], []
    try:
        got = case.ours["fwd+bwd"]()
        check_twice(case, got)
        ok = True
    except Exception as exc:   # a wrong result or a launcher that raises: report it, keep the other rows
        if not isinstance(exc, AssertionError):
            traceback.print_exc()
        line = f"MISMATCH or ERROR: {case.label} at {case.shape}: {exc.__class__.__name__}: {exc}; not timed"
        print(line, file=sys.stderr, flush=True)
        problems.append(line)
        ok = False
    for name, moved in case.bytes.items():
        ms = bc.time_gpu(case.ours[name], repeats=REPEATS) if ok else None
        torch_ms = (bc.time_gpu(case.theirs[name], repeats=REPEATS, sync=torch.cuda.synchronize)
                    if torch is not None else None)
        head = [case.label, str(case.shape), name, f"{moved / 2**20:.1f}"]
        ratio = "-" if ms is None or torch_ms is None else f"{torch_ms / ms:.2f}x"
        if moved >= LARGE:
            if ms is None:
                ours = ["not timed", "-", "-", f">= {TARGET:.0%}", "not timed"]
            else:
                rate = moved / (ms * 1e-3)
                ours = [f"{ms * 1e3:.1f}", f"{rate / 1e9:.0f}", f"{rate / copy:.0%}", f">= {TARGET:.0%}",
                        "yes" if rate / copy >= TARGET else "no"]
            theirs = ["-", "-"] if torch_ms is None else \
                [f"{torch_ms * 1e3:.1f}", f"{moved / (torch_ms * 1e-3) / copy:.0%}"]
            large.append(head + ours + theirs + [ratio])
        else:
            us = None if ms is None else bc.time_wall_per_call(case.ours[name])
            torch_us = None if torch is None else bc.time_wall_per_call(case.theirs[name])
            host_ratio = "-" if us is None or torch_us is None else f"{torch_us / us:.2f}x"
            small.append(head + ["not timed" if ms is None else f"{ms * 1e3:.1f}",
                                 "-" if torch_ms is None else f"{torch_ms * 1e3:.1f}", ratio,
                                 "not timed" if us is None else f"{us:.1f}",
                                 "-" if torch_us is None else f"{torch_us:.1f}", host_ratio])
    return large, small


def run():
    backend.set_device("gpu")
    torch = bc.torch_or_none()
    copy = bc.copy_bandwidth()
    large, small = [], []
    for make, label, shape in cases(torch):
        try:
            case = make()
        except Exception as exc:
            traceback.print_exc()
            problems.append(f"ERROR setting up {label} at {shape}: {exc.__class__.__name__}: {exc}")
            continue
        rows_large, rows_small = measure(torch, case, copy)
        large += rows_large
        small += rows_small
        del case
        free(torch)

    versions = f"PyTorch {torch.__version__}" if torch is not None else "PyTorch with CUDA not found: gpu_dl alone"
    out = [bc.header("2-D pooling, NHWC float32: gpu_dl vs the copy bandwidth and PyTorch"),
           f"{versions}; PyTorch tensors channels_last. Device-to-device copy: {copy / 1e9:.0f} GB/s (read + "
           f"written). Times are medians of {REPEATS} CUDA-event-timed repeats, L2 flushed before each. Bytes: "
           "x read and y written (+ int32 argmax for max) forward; dy (+ argmax) read and dx written backward "
           "(\"bwd\": the backward call alone; \"bwd rows\"/\"bwd disjoint\": the form of windowed backward "
           "gpu_dl runs). "
           "\"PyTorch / gpu_dl\" is a ratio of times: > 1 means gpu_dl is faster. \"PyTorch ceil_mode\": "
           "Keras \"same\" padding with the extra row/column at the bottom/right, reproduced in PyTorch with "
           "ceil_mode=True (checked equal).\n",
           f"\nBandwidth rows (passes moving >= {LARGE / 2**20:g} MiB):\n\n" +
           bc.table(["operation", "input (N, H, W, C)", "pass", "MiB moved", "gpu_dl us", "gpu_dl GB/s",
                     "of copy BW", "target", "met", "PyTorch us", "PyTorch of copy BW", "PyTorch / gpu_dl"],
                    large),
           f"\nSmall rows (passes moving < {LARGE / 2**20:g} MiB: launch latency and L2 effects, not bandwidth): "
           "device microseconds per call (CUDA events, L2 flushed) and host wall-clock microseconds per call "
           "(back-to-back calls, launch and Python overhead included):\n\n" +
           bc.table(["operation", "input (N, H, W, C)", "pass", "MiB moved", "gpu_dl us", "PyTorch us",
                     "PyTorch / gpu_dl", "gpu_dl us/call (host)", "PyTorch us/call (host)",
                     "PyTorch / gpu_dl (host)"], small)]
    if problems:
        out.append("\n**Problems** (these rows were not timed):\n\n" + "\n".join(f"- {p}" for p in problems) + "\n")
    if torch_notes:
        out.append("\n**PyTorch's results differ** from gpu_dl's kernels and its NumPy path alike (see "
                   "``check_twice``; these rows were timed):\n\n" + "\n".join(f"- {p}" for p in torch_notes) + "\n")
    return "".join(out)


if __name__ == "__main__":
    bc.main(run, __doc__.splitlines()[0])
    sys.exit(1 if problems else 0)
