"""2-D convolution (NHWC, float32), forward and forward + backward, against cuDNN through PyTorch on the same GPU.

Shapes: every ``conv_shapes.ALL_SHAPES`` entry (batch 128; the seed
architecture's layers on 28x28 and 32x32, and ResNet's 3x3 64->64 at
56x56), "same" padding, stride 1.

gpu_dl:
- forward: one launch of ``conv2d_forward_cuda`` with the bias and a relu
  epilogue, as inference runs it (``want_z=False``: it writes y = relu(conv
  + bias) alone);
- forward + backward: that forward writing z = conv + bias too (the relu
  gradient reads z), the relu gradient
  (``activation_backward_cuda``: dz = dy * (z > 0)),
  ``conv2d_backward_input_cuda``, ``conv2d_backward_kernel_cuda`` and the
  bias gradient (dz summed over axes 0, 1, 2): the calls a Conv2D layer
  with a relu activation makes in a training step, input gradient included.
PyTorch: ``F.relu(F.conv2d(x, w, b, padding=p), inplace=True)`` on
channels_last tensors (input and filter), under ``torch.no_grad()`` for the
forward; forward + backward through autograd, with the input, the filter
and the bias requiring grad and ``y.backward(dy)`` (so cuDNN's backward data
and filter, the relu gradient and the bias reduction).
``torch.backends.cudnn.benchmark = True``: cuDNN picks its fastest
algorithm per shape during the warm-up.

Precision: the tables are run twice, the same precision on both sides each
time. TF32: gpu_dl ``precision="tf32"``, ``torch.backends.cudnn.allow_tf32
= True`` and ``torch.backends.cuda.matmul.allow_tf32 = True``. Strict
float32: gpu_dl ``precision="float32"``, both PyTorch flags False. The
targets apply to the TF32 table: cuDNN time / gpu_dl time >= 1.0 on the
seed shapes and >= 0.8 on the ResNet shape (> 1 means gpu_dl is faster).
A note table adds gpu_dl ``precision="bfloat16"`` on the seed shapes,
beside PyTorch under ``torch.autocast(dtype=torch.bfloat16)`` (which casts
x and w to bfloat16 on every call and returns bfloat16; gpu_dl reads and
writes float32 and rounds the operands inside the kernel).

Results are checked before anything is timed: y (with the relu) and the
gradients of the convolution alone (dx, dkernel, dbias for dz = dy: where z
is within rounding error of 0 the relu's mask may differ from the
reference's, which moves dx by a whole dy * w term and says nothing about
the convolution) of both libraries against a float64 reference (PyTorch in
float64 on the GPU; without PyTorch, gpu_dl's NumPy path on the first 4
samples), as max |difference| / max |reference| over each output. gpu_dl
must be within 1e-2 in TF32, 1e-4 in float32, 3e-2 in bfloat16; a row that
is not is printed as a MISMATCH line, not timed, and the script exits with
status 1.
cuDNN's error is reported beside it for comparison (its FFT and Winograd
algorithms are not exact in float32 either).

Timing: CUDA events, median of 50 repeats after 5 warm-up calls, L2
flushed before each repeat (``bc.time_gpu``'s default). These kernels are
compute-bound and their operands are mostly a few MB, so the flush costs
the timed work only its first reads from DRAM; it is kept to be
conservative (no operand starts warm in L2) and alike for both sides.
FLOPs: forward = 2 * N * H * W * Cout * KH * KW * Cin (``ConvShape.flops``);
forward + backward = 3x that (backward data and backward filter each cost
one forward; the elementwise relu gradient and bias reduction are not
counted). For context, the device's own rate is measured in the same run:
``torch.matmul`` of two 8192 x 8192 float32 matrices in TF32 and in strict
float32 (cuBLAS); each TFLOP/s is also given as a fraction of the matmul
rate in the same precision. Without PyTorch, gpu_dl is reported alone and
the strict-float32 rate comes from ``cupy.matmul``.

Backward pieces (TF32 and strict float32 sections): each piece of the
backward timed on its own, the same way (CUDA events, L2 flushed, after the
result check above passed; the relu gradient is checked against
dy * (z > 0) first): the relu gradient (``activation_backward_cuda``;
PyTorch ``aten.threshold_backward``), dx (``conv2d_backward_input_cuda``,
its kernel-transpose copy included; PyTorch
``aten.convolution_backward`` with output_mask (True, False, False)),
dkernel (``conv2d_backward_kernel_cuda``: the split-K tensor-core, tiled
float32 or exact kernel and, with more than one split, ``conv2d_bwd_filter_reduce``; mask
(False, True, False)) and dbias (``conv.bias_gradient``; mask (False,
False, True)). The last column lists the kernels gpu_dl launched for the
piece, with grid and threads, recorded from the launchers on an untimed
call. What the table is there to settle (2026-11-24, H100): the TF32
forward + backward took 10 to 40 times the forward. By the launch
geometry, most of that was the bias gradient: CuPy's ``sum(axis=0)`` of
the (N*OH*OW, Cout) dy ran ceil(Cout / 32) blocks of 512 threads, each
thread adding N*OH*OW / 16 values one after the other (6272 for
128x28x28, 25088 for ResNet's 128x56x56), about 0.2 to 0.4 us each:
1.4 to 2 ms on the seed shapes, about 10 ms on ResNet, the whole gap.
``bias_gradient`` now sums in two stages of about sqrt(N*OH*OW) rows
each; the dbias row shows what that costs. Next in line, also visible
here: ``conv2d_bwd_filter_reduce_f32`` (ceil(KH*KW*Cin*Cout / 256)
blocks, each thread adding all the splits in order: 4 to 8 blocks and
392 to 512 serial adds on the seed 3x3-input and 1x1 shapes), and in
strict float32 the exact backward-filter kernel (one thread per dk
element summing up to 57344 positions in a row on ResNet). The reduce now
runs 32 outputs x 8 split-stripes per block, 4 loads in flight per thread.

Row tiles (TF32, every shape): the forward (as inference runs it) and
backward data timed with each row tile of their tensor-core kernels forced
in turn (``conv_kernels.forced_row_tile``: 128 or 64 rows of N*OH*OW or
N*H*W per block), beside the tile the launcher's rule picks on this device
and the kernels launched for each. The two tiles must give the same bits
(each output's sum over k runs in the same order whatever the block's
height); a pair that does not is a MISMATCH. The table is there to confirm
or correct the rule (``conv_kernels._row_tile``).

Strict float32 kernels (every shape): precision "float32" runs the tiled
float32 kernels on sm_80 and newer (``conv2d_*_f32tile_*``: scalar FMAs in
the tensor-core kernels' shared-memory tiles), so the strict float32
tables above time them there. Beside them, the forward (as inference runs
it), backward data and backward filter timed with the exact kernels (one
thread per output, what the 2026-11-24 H100 tables timed) and the tiled
ones forced in turn (``conv_kernels.forced_float32_kernel``). The two
must give the same results (the same bits by construction); a pair that
does not is a MISMATCH.

Usage: python profiling/bench_conv2d.py [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_conv2d.py   (tiny shapes: bench_common.py, conv_shapes.py)
"""
from __future__ import annotations

import math
import sys
import traceback
from pathlib import Path

import cupy
import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_common as bc  # noqa: E402
import conv_shapes  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.ops import activation_kernels, conv_kernels  # noqa: E402
from gpu_dl.ops import convolution as conv  # noqa: E402
from gpu_dl.ops.activation_kernels import activation_backward_cuda  # noqa: E402
from gpu_dl.ops.conv_kernels import (  # noqa: E402
    conv2d_backward_input_cuda, conv2d_backward_kernel_cuda, conv2d_forward_cuda,
)

DEVICE = "cuda"          # PyTorch's device
REPEATS = 50
MATMUL_SIZE = bc.smoke(8192, 64)
SEED_SHAPES = bc.smoke(conv_shapes.SEED_SHAPES, conv_shapes.SMOKE_SEED_SHAPES)
RESNET_SHAPES = bc.smoke(conv_shapes.RESNET_SHAPES, conv_shapes.SMOKE_RESNET_SHAPES)
ALL_SHAPES = SEED_SHAPES + RESNET_SHAPES
# Largest max |gpu_dl - float64 reference| / max |reference| accepted, per precision.
TOLERANCE = {"tf32": 1e-2, "float32": 1e-4, "bfloat16": 3e-2}
# Smallest cuDNN time / gpu_dl time (the TF32 table's targets).
TARGETS = {shape.name: 1.0 for shape in SEED_SHAPES}
TARGETS.update({shape.name: 0.8 for shape in RESNET_SHAPES})
# Samples the NumPy reference computes when PyTorch is missing.
NUMPY_CHECK_SAMPLES = 4
OUTPUTS = ("y", "dx", "dkernel", "dbias")

problems: list = []   # one line per wrong result or failed call


def geometry(shape):
    return {"strides": (1, 1), "padding": shape.padding, "dilation": (1, 1)}


def torch_padding(shape):
    (pt, pb), (pl, pr) = shape.padding
    return (pt, pl) if (pt, pl) == (pb, pr) else "same"


class Case:
    """One shape's arrays: CuPy NHWC for gpu_dl; PyTorch channels_last views of the same data."""

    def __init__(self, shape, torch, seed=0):
        rng = numpy.random.default_rng(seed)
        fan_in = shape.window * shape.window * shape.cin
        self.shape = shape
        self.x = cupy.asarray(rng.standard_normal((shape.batch, shape.size, shape.size, shape.cin),
                                                  dtype=numpy.float32))
        self.kernel = cupy.asarray(rng.standard_normal((shape.window, shape.window, shape.cin, shape.cout),
                                                       dtype=numpy.float32) / numpy.float32(numpy.sqrt(fan_in)))
        self.bias = cupy.asarray(rng.standard_normal(shape.cout, dtype=numpy.float32) * numpy.float32(0.1))
        self.dy = cupy.asarray(rng.standard_normal((shape.batch, shape.size, shape.size, shape.cout),
                                                   dtype=numpy.float32))
        if torch is None:
            return
        cl = torch.channels_last
        # x, w, b: leaves of their own (copies, channels_last); dy: a view of the CuPy array, no copy.
        self.tx = nchw(torch, self.x).detach().clone(memory_format=cl).requires_grad_(True)
        self.tw = (torch.as_tensor(self.kernel, device=DEVICE).permute(3, 2, 0, 1)
                   .contiguous(memory_format=cl).requires_grad_(True))
        self.tb = torch.as_tensor(self.bias, device=DEVICE).detach().clone().requires_grad_(True)
        self.tdy = nchw(torch, self.dy)
        self.tdy_bf16 = self.tdy.to(torch.bfloat16)


def nchw(torch, a):
    return torch.as_tensor(a, device=DEVICE).permute(0, 3, 1, 2)


def nhwc(t):
    """A PyTorch NCHW tensor as a C-contiguous NHWC CuPy float32 array."""
    return cupy.asarray(t.detach().float().permute(0, 2, 3, 1).contiguous())


# ------------------------------------------------------------------------------------------- gpu_dl
def ours_forward(case, precision):
    args = geometry(case.shape)
    return lambda: conv2d_forward_cuda(case.x, case.kernel, case.bias, activation="relu", precision=precision,
                                       want_z=False, **args)


def ours_training_step(x, kernel, bias, dy, shape, precision):
    """The timed forward + backward: one gpu_dl training step of the layer (relu gradient included)."""
    args = geometry(shape)
    z, y = conv2d_forward_cuda(x, kernel, bias, activation="relu", precision=precision, **args)
    dz = activation_backward_cuda(z, y, dy, "relu", {})
    dx = conv2d_backward_input_cuda(dz, kernel, x.shape, precision=precision, **args)
    dkernel = conv2d_backward_kernel_cuda(x, dz, kernel.shape, precision=precision, **args)
    return y, dx, dkernel, conv.bias_gradient(dz)


def ours_step(case, precision):
    return lambda: ours_training_step(case.x, case.kernel, case.bias, case.dy, case.shape, precision)


def ours_outputs(x, kernel, bias, dy, shape, precision):
    """The checked [y, dx, dkernel, dbias]: y with the relu epilogue, the gradients with dz = dy (see check_ours)."""
    args = geometry(shape)
    _, y = conv2d_forward_cuda(x, kernel, bias, activation="relu", precision=precision, want_z=False, **args)
    dx = conv2d_backward_input_cuda(dy, kernel, x.shape, precision=precision, **args)
    dkernel = conv2d_backward_kernel_cuda(x, dy, kernel.shape, precision=precision, **args)
    return [y, dx, dkernel, conv.bias_gradient(dy)]


# ------------------------------------------------------------------------------------------ PyTorch
def autocast(torch, bf16):
    return torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=bf16)


def torch_forward(torch, case, bf16=False):
    F, pad = torch.nn.functional, torch_padding(case.shape)

    def forward():
        with torch.no_grad(), autocast(torch, bf16):
            return F.relu(F.conv2d(case.tx, case.tw, case.tb, padding=pad), inplace=True)
    return forward


def torch_step(torch, case, bf16=False):
    F, pad = torch.nn.functional, torch_padding(case.shape)
    dy = case.tdy_bf16 if bf16 else case.tdy

    def step():
        case.tx.grad = case.tw.grad = case.tb.grad = None
        with autocast(torch, bf16):
            y = F.relu(F.conv2d(case.tx, case.tw, case.tb, padding=pad), inplace=True)
        y.backward(dy)
        return y
    return step


def torch_outputs(torch, case, bf16=False):
    """PyTorch's counterpart of ``ours_outputs``: y through the relu, the gradients of the convolution alone."""
    F = torch.nn.functional
    y = torch_forward(torch, case, bf16)()
    case.tx.grad = case.tw.grad = case.tb.grad = None
    with autocast(torch, bf16):
        z = F.conv2d(case.tx, case.tw, case.tb, padding=torch_padding(case.shape))
    z.backward(case.tdy_bf16 if bf16 else case.tdy)
    outputs = [nhwc(y), nhwc(case.tx.grad), cupy.asarray(case.tw.grad.float().permute(2, 3, 1, 0).contiguous()),
               cupy.asarray(case.tb.grad.float().contiguous())]
    case.tx.grad = case.tw.grad = case.tb.grad = None
    return outputs


def set_torch_precision(torch, precision):
    """The PyTorch flags for "tf32" or "float32"; returns how they read back, for the table's title."""
    if torch is None:
        return "no PyTorch"
    tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return (f"torch.backends.cudnn.allow_tf32 = {torch.backends.cudnn.allow_tf32}, "
            f"torch.backends.cuda.matmul.allow_tf32 = {torch.backends.cuda.matmul.allow_tf32}")


# ------------------------------------------------------------------------------------------- checks
def reference(torch, case):
    """float64 [y, dx, dkernel, dbias] (as ``ours_outputs``) and the number of samples they cover."""
    if torch is not None:
        F = torch.nn.functional
        tx = case.tx.detach().double().requires_grad_(True)
        tw = case.tw.detach().double().requires_grad_(True)
        tb = case.tb.detach().double().requires_grad_(True)
        z = F.conv2d(tx, tw, tb, padding=torch_padding(case.shape))
        z.backward(case.tdy.double())
        return [nhwc_f64(F.relu(z)), nhwc_f64(tx.grad),
                cupy.asarray(tw.grad.detach().permute(2, 3, 1, 0).contiguous()),
                cupy.asarray(tb.grad.detach().contiguous())], case.shape.batch
    n = min(NUMPY_CHECK_SAMPLES, case.shape.batch)
    x = cupy.asnumpy(case.x[:n]).astype(numpy.float64)
    kernel = cupy.asnumpy(case.kernel).astype(numpy.float64)
    dy = cupy.asnumpy(case.dy[:n]).astype(numpy.float64)
    args = geometry(case.shape)
    z = conv.conv2d_forward(x, kernel, **args) + cupy.asnumpy(case.bias).astype(numpy.float64)
    outputs = [numpy.maximum(z, 0), conv.conv2d_backward_input(dy, kernel, x.shape, **args),
               conv.conv2d_backward_kernel(x, dy, kernel.shape, **args), dy.sum(axis=(0, 1, 2))]
    return [cupy.asarray(o) for o in outputs], n


def nhwc_f64(t):
    return cupy.asarray(t.detach().permute(0, 2, 3, 1).contiguous())


def relative_error(got, want):
    """max |got - want| / max |want|, in float64."""
    want = cupy.asarray(want, dtype=cupy.float64)
    scale = float(cupy.abs(want).max()) or 1.0
    return float(cupy.abs(cupy.asarray(got, dtype=cupy.float64) - want).max()) / scale


def errors(outputs, want):
    return {name: relative_error(o, w) for name, o, w in zip(OUTPUTS, outputs, want)}


def worst(errs):
    name = max(errs, key=errs.get)
    return f"{errs[name]:.1e} ({name})"


def check_ours(case, precision, want, samples):
    """gpu_dl's errors per output; a problem line and False when beyond the tolerance.

    The gradients are checked through the convolution alone (dz = dy, no relu mask): wherever z is within
    rounding error of 0, the relu's mask may differ from the float64 reference's, which moves a dx element
    by a whole dy * w term and says nothing about the convolution. y is checked with the relu epilogue.
    """
    c = case
    if samples < c.shape.batch:
        got = ours_outputs(cupy.ascontiguousarray(c.x[:samples]), c.kernel, c.bias,
                           cupy.ascontiguousarray(c.dy[:samples]), c.shape, precision)
    else:
        got = ours_outputs(c.x, c.kernel, c.bias, c.dy, c.shape, precision)
    errs = errors(got, want)
    bad = {k: v for k, v in errs.items() if not v <= TOLERANCE[precision]}   # NaN counts as bad
    if bad:
        line = (f"MISMATCH: gpu_dl {precision} {c.shape.label()}: max |diff| / max |ref| "
                + ", ".join(f"{k} {v:.2e}" for k, v in bad.items())
                + f" > {TOLERANCE[precision]:g}; not timed")
        print(line, file=sys.stderr, flush=True)
        problems.append(line)
    return errs, not bad


# ------------------------------------------------------------------------------------------- timing
def time_torch(torch, fn):
    return bc.time_gpu(fn, repeats=REPEATS, sync=torch.cuda.synchronize)


def matmul_rates(torch):
    """FLOP/s of an 8192^3 float32 matmul in TF32 and in strict float32 (None where not measured)."""
    n = MATMUL_SIZE
    flops = 2 * n ** 3
    rates = {}
    if torch is None:
        a = cupy.ones((n, n), dtype=cupy.float32)
        ms = bc.time_gpu(lambda: cupy.matmul(a, a), repeats=10, flush=False)
        return {"tf32": None, "float32": flops / (ms * 1e-3)}
    for precision in ("tf32", "float32"):
        set_torch_precision(torch, precision)
        rates[precision] = flops / (torch_matmul_ms(torch, n) * 1e-3)
    torch.cuda.empty_cache()
    return rates


def torch_matmul_ms(torch, n):
    a = torch.randn(n, n, device=DEVICE)
    b = torch.randn(n, n, device=DEVICE)
    return bc.time_gpu(lambda: torch.matmul(a, b), repeats=20, flush=False, sync=torch.cuda.synchronize)


def tflops(flops, ms):
    return flops / (ms * 1e-3) / 1e12


def fraction(flops, ms, rate):
    return "-" if rate is None else f"{flops / (ms * 1e-3) / rate:.0%}"


def measure(torch, case, precision, want, samples, rate, bf16_torch=False, pieces=False):
    """Per pass ("fwd", "fwd+bwd"): {ours_ms, torch_ms, ...}; plus the check's errors, and with ``pieces``
    the backward's pieces timed alone (``measure_pieces``)."""
    shape = case.shape
    result = {"errors": None, "torch_errors": None, "ok": False, "error": None}
    try:
        result["errors"], result["ok"] = check_ours(case, precision, want, samples)
    except Exception as exc:   # a launcher that raises: report it, keep the other rows
        traceback.print_exc()
        result["error"] = f"{exc.__class__.__name__}: {exc}"
        problems.append(f"ERROR: gpu_dl {precision} {shape.label()}: {result['error']}")
    if torch is not None and samples == shape.batch:
        result["torch_errors"] = errors(torch_outputs(torch, case, bf16_torch), want)
    for name, flops, ours_fn, theirs_fn in (
            ("fwd", shape.flops(), ours_forward(case, precision), torch_forward),
            ("fwd+bwd", 3 * shape.flops(), ours_step(case, precision), torch_step)):
        ms = bc.time_gpu(ours_fn, repeats=REPEATS) if result["ok"] else None
        torch_ms = time_torch(torch, theirs_fn(torch, case, bf16_torch)) if torch is not None else None
        result[name] = {"flops": flops, "ms": ms, "torch_ms": torch_ms, "rate": rate}
    if pieces:
        result["pieces"] = measure_pieces(torch, case, precision, result["ok"])
    return result


# ------------------------------------------------------------------------------------------- backward pieces
# One backward of the layer, piece by piece: what each costs alone, beside cuDNN's own piece. dx, dkernel and
# dbias take dz = dy, the inputs check_ours has checked (the relu mask does not change their cost).
PIECES = ("relu gradient", "dx (backward data)", "dkernel (backward filter)", "dbias")


def grid_text(grid):
    return "(" + ", ".join(str(int(g)) for g in grid) + ")"


def recorded_launches(fn):
    """Call ``fn`` once with the conv2d and activation launchers' ``get_kernel`` wrapped: the kernels it
    launched, as "name grid x threads" (CuPy's own kernels, such as a reduction, are not seen)."""
    modules = (conv_kernels, activation_kernels)
    originals = [module.get_kernel for module in modules]
    seen = []

    def recording(get_kernel):
        def get(filename, name, *options):
            kernel = get_kernel(filename, name, *options)

            def launch(grid, block, args, *rest, **kwargs):
                seen.append(f"{name} {grid_text(grid)} x {math.prod(int(b) for b in block)}")
                return kernel(grid, block, args, *rest, **kwargs)
            return launch
        return get
    try:
        for module, get_kernel in zip(modules, originals):
            module.get_kernel = recording(get_kernel)
        fn()
    finally:
        for module, get_kernel in zip(modules, originals):
            module.get_kernel = get_kernel
    return seen


def bias_reductions(rows, channels):
    """The CuPy reductions ``conv.bias_gradient`` runs on a (rows, channels) dy, as text."""
    parts = conv.bias_row_split(rows)
    if parts == 1:
        return f"CuPy sum(axis=0) of ({rows}, {channels})"
    per_part = rows // parts
    text = f"CuPy sum(axis=1) of ({parts}, {per_part}, {channels}) + sum(axis=0) of ({parts}, {channels})"
    left = rows - parts * per_part
    return text + (f" + sum(axis=0) of ({left}, {channels}) + add" if left else "")


def ours_pieces(case, precision):
    """piece -> the call that computes it alone, on the layer's forward (z, y) and dz = dy."""
    c, args = case, geometry(case.shape)
    z, y = conv2d_forward_cuda(c.x, c.kernel, c.bias, activation="relu", precision=precision, **args)
    return {
        "relu gradient": lambda: activation_backward_cuda(z, y, c.dy, "relu", {}),
        "dx (backward data)": lambda: conv2d_backward_input_cuda(c.dy, c.kernel, c.x.shape, precision=precision,
                                                                 **args),
        "dkernel (backward filter)": lambda: conv2d_backward_kernel_cuda(c.x, c.dy, c.kernel.shape,
                                                                         precision=precision, **args),
        "dbias": lambda: conv.bias_gradient(c.dy),
    }, (z, y)


def check_relu_gradient(case, precision, z, y):
    """gpu_dl's relu gradient against dy * (z > 0); a problem line and False where it differs at all."""
    got = activation_backward_cuda(z, y, case.dy, "relu", {})
    want = cupy.where(z > 0, case.dy, cupy.float32(0))
    if bool(cupy.array_equal(got, want)):
        return True
    line = f"MISMATCH: gpu_dl {precision} {case.shape.label()}: the relu gradient is not dy * (z > 0); not timed"
    print(line, file=sys.stderr, flush=True)
    problems.append(line)
    return False


def torch_pieces(torch, case):
    """cuDNN's pieces: aten.convolution_backward with one output selected, and the relu's threshold_backward;
    None where the padding is not symmetric (convolution_backward takes one pad per side pair)."""
    pad = torch_padding(case.shape)
    if isinstance(pad, str):
        return None
    aten, F, c = torch.ops.aten, torch.nn.functional, case
    with torch.no_grad():
        y = F.relu(F.conv2d(c.tx, c.tw, c.tb, padding=pad))
        x, w = c.tx.detach(), c.tw.detach()

    def backward(mask):
        def call():
            with torch.no_grad():
                return aten.convolution_backward(c.tdy, x, w, [w.shape[0]], [1, 1], list(pad), [1, 1], False,
                                                 [0, 0], 1, mask)
        return call
    return {
        "relu gradient": lambda: aten.threshold_backward(c.tdy, y, 0),
        "dx (backward data)": backward([True, False, False]),
        "dkernel (backward filter)": backward([False, True, False]),
        "dbias": backward([False, False, True]),
    }


def measure_pieces(torch, case, precision, ok):
    """piece -> {ms, torch_ms, kernels}: each backward piece timed alone (only after gpu_dl's check passed)."""
    if ok:
        pieces, (z, y) = ours_pieces(case, precision)
        ok = check_relu_gradient(case, precision, z, y)
    theirs = torch_pieces(torch, case) if torch is not None else None
    out = {}
    for piece in PIECES:
        kernels = recorded_launches(pieces[piece]) if ok else []
        if piece == "dbias" and ok:
            kernels.append(bias_reductions(case.dy.size // case.shape.cout, case.shape.cout))
        out[piece] = {"ms": bc.time_gpu(pieces[piece], repeats=REPEATS) if ok else None,
                      "torch_ms": time_torch(torch, theirs[piece]) if theirs is not None else None,
                      "kernels": kernels}
    return out


# ------------------------------------------------------------------------------------------- row tiles
ROW_TILES = (128, 64)


def tile_calls(case, precision):
    """pass -> the call: the forward as inference runs it (bias, relu, y alone) and backward data."""
    c, args = case, geometry(case.shape)
    return {
        "forward": lambda: conv2d_forward_cuda(c.x, c.kernel, c.bias, activation="relu", precision=precision,
                                               want_z=False, **args)[1],
        "backward data": lambda: conv2d_backward_input_cuda(c.dy, c.kernel, c.x.shape, precision=precision, **args),
    }


def measure_forced(case, precision, ok, calls, forcings, what):
    """pass -> {rule, kernels, ms}: the launch the launchers pick for each of ``calls``, and per entry of
    ``forcings`` (key -> a context manager forcing a kernel choice) its launch and time (only after the result
    check passed, and only where every forced choice's output is the same as the first one's; ``what`` names
    them in the MISMATCH line)."""
    out = {}
    for name, call in calls.items():
        r = {"rule": [], "kernels": dict.fromkeys(forcings, ()), "ms": dict.fromkeys(forcings)}
        out[name] = r
        if not ok:
            continue
        r["rule"] = recorded_launches(call)
        outputs = {}
        for key, forced in forcings.items():
            with forced():
                r["kernels"][key] = recorded_launches(call)
                outputs[key] = call()
        first = outputs[next(iter(forcings))]
        if not all(bool(cupy.array_equal(first, o)) for o in outputs.values()):
            line = (f"MISMATCH: gpu_dl {precision} {case.shape.label()} {name}: {what} give different results; "
                    "not timed")
            print(line, file=sys.stderr, flush=True)
            problems.append(line)
            continue
        for key, forced in forcings.items():
            with forced():
                r["ms"][key] = bc.time_gpu(call, repeats=REPEATS)
    return out


def measure_tiles(case, precision, ok):
    """measure_forced over the forward and backward data, with each row tile forced in turn."""
    forcings = {rows: (lambda rows=rows: conv_kernels.forced_row_tile(rows)) for rows in ROW_TILES}
    return measure_forced(case, precision, ok, tile_calls(case, precision), forcings, "the 128- and 64-row tiles")


def forced_rows(results, keys, picked):
    """Table rows of measure_forced's results for its two ``keys``: shape, pass, the choice the launchers made
    (``picked(first kernel name)``), each key's time, their ratio, each key's launches."""
    rows = []
    for shape, measured in results:
        for name, r in measured.items():
            ms = [r["ms"][k] for k in keys]
            rows.append([shape.label(), name, "-" if not r["rule"] else picked(r["rule"][0])]
                        + ["not timed" if m is None else f"{m * 1e3:.1f}" for m in ms]
                        + ["-" if None in ms else f"{ms[0] / ms[1]:.2f}x",
                           " / ".join(" + ".join(r["kernels"][k]) or "-" for k in keys)])
    return rows


def tile_table(results, precision):
    rows = forced_rows(results, ROW_TILES, lambda kernel: "64" if "_m64_" in kernel else "128")
    return (f"\n### Row tiles of forward and backward data ({precision})\n\nEach pass timed with the 128-row and "
            "the 64-row tensor-core tile forced in turn; \"rule\" is the tile conv_kernels picks on this device; "
            "\"128 / 64\" > 1 means the 64-row tile is faster.\n\n"
            + bc.table(["shape", "pass", "rule", "128-row us", "64-row us", "128 / 64",
                        "gpu_dl kernels, 128 / 64 rows (grid x threads)"], rows))


# ------------------------------------------------------------------------------------------- float32 kernels
FLOAT32_KERNELS = ("exact", "tiled")


def measure_float32_kernels(case, ok):
    """measure_forced over forward, backward data and backward filter at precision "float32", with the exact and
    the tiled kernels forced in turn (they must give the same bits)."""
    c, args = case, geometry(case.shape)
    calls = dict(tile_calls(case, "float32"))
    calls["backward filter"] = lambda: conv2d_backward_kernel_cuda(c.x, c.dy, c.kernel.shape, precision="float32",
                                                                   **args)
    forcings = {kind: (lambda kind=kind: conv_kernels.forced_float32_kernel(kind)) for kind in FLOAT32_KERNELS}
    return measure_forced(case, "float32", ok, calls, forcings, "the exact and the tiled float32 kernels")


def float32_kernel_table(results):
    rows = forced_rows(results, FLOAT32_KERNELS, lambda kernel: "tiled" if "_f32tile_" in kernel else "exact")
    return ("\n### Strict float32: exact and tiled kernels\n\nEach pass at precision \"float32\" timed with the "
            "exact kernels (one thread per output) and the tiled ones (scalar FMAs in shared-memory tiles) forced "
            "in turn; they give the same bits. \"launched\" is the kind conv_kernels runs by default on this "
            "device (the strict float32 tables above time it); \"exact / tiled\" > 1 means the tiled kernel is "
            "faster.\n\n"
            + bc.table(["shape", "pass", "launched", "exact us", "tiled us", "exact / tiled",
                        "gpu_dl kernels, exact / tiled (grid x threads)"], rows))


# ------------------------------------------------------------------------------------------- tables
def pass_row(shape, timing, targets):
    ms, torch_ms, flops, rate = timing["ms"], timing["torch_ms"], timing["flops"], timing["rate"]
    ours_cells = ["not timed", "-", "-"] if ms is None else \
        [f"{ms * 1e3:.1f}", f"{tflops(flops, ms):.1f}", fraction(flops, ms, rate)]
    torch_cells = ["-", "-", "-"] if torch_ms is None else \
        [f"{torch_ms * 1e3:.1f}", f"{tflops(flops, torch_ms):.1f}", fraction(flops, torch_ms, rate)]
    ratio = torch_ms / ms if ms is not None and torch_ms is not None else None
    row = [shape.label()] + ours_cells + torch_cells + ["-" if ratio is None else f"{ratio:.2f}x"]
    if targets:
        target = TARGETS[shape.name]
        met = "not timed" if ms is None else "-" if ratio is None else ("yes" if ratio >= target else "no")
        row += [f">= {target:.1f}x", met]
    return row


def pass_columns(targets):
    columns = ["shape (N x H x W x Cin -> Cout, window)", "gpu_dl us", "gpu_dl TFLOP/s", "of matmul rate",
               "cuDNN us", "cuDNN TFLOP/s", "cuDNN of matmul rate", "cuDNN / gpu_dl"]
    return columns + (["target", "met"] if targets else [])


def check_table(results, precision, samples_note):
    rows = []
    for shape, r in results:
        ours = r["error"] or ("-" if r["errors"] is None else worst(r["errors"]))
        theirs = "-" if r["torch_errors"] is None else worst(r["torch_errors"])
        rows.append([shape.label(), ours, "ok" if r["ok"] else "MISMATCH" if r["error"] is None else "ERROR",
                     theirs])
    return (f"\nResult check ({precision}; {samples_note}): the largest max |diff| / max |ref| over y, dx, "
            f"dkernel, dbias (the gradients for dz = dy; tolerance for gpu_dl {TOLERANCE[precision]:g}).\n\n"
            + bc.table(["shape", "gpu_dl error", "gpu_dl", "PyTorch error"], rows))


def pieces_table(results):
    """One row per shape and backward piece: its time alone, its share of gpu_dl's forward + backward, cuDNN's
    piece, and the kernels gpu_dl launched for it."""
    rows = []
    for shape, r in results:
        step_ms = r["fwd+bwd"]["ms"]
        for piece in PIECES:
            t = r["pieces"][piece]
            ms, torch_ms = t["ms"], t["torch_ms"]
            rows.append([shape.label(), piece, "not timed" if ms is None else f"{ms * 1e3:.1f}",
                         "-" if ms is None or not step_ms else f"{ms / step_ms:.0%}",
                         "-" if torch_ms is None else f"{torch_ms * 1e3:.1f}",
                         "-" if ms is None or torch_ms is None else f"{torch_ms / ms:.2f}x",
                         " + ".join(t["kernels"]) or "-"])
    return ("\nBackward pieces, each timed alone (dz = dy for dx, dkernel and dbias; the relu gradient from the "
            "forward's z, y). cuDNN's pieces: torch.ops.aten.convolution_backward with output_mask selecting dx, "
            "dkernel or dbias, and aten.threshold_backward for the relu. \"share\" is the piece's time over "
            "gpu_dl's forward + backward above.\n\n"
            + bc.table(["shape", "piece", "gpu_dl us", "share of gpu_dl fwd+bwd", "cuDNN us", "cuDNN / gpu_dl",
                        "gpu_dl kernels (grid x threads)"], rows))


def precision_section(title, results, precision, targets, samples_note):
    out = [f"\n### {title}\n"]
    for name, what in (("fwd", "Forward (bias + relu)"),
                       ("fwd+bwd", "Forward + backward (dx, dkernel, dbias; FLOPs = 3x forward)")):
        out.append(f"\n{what}:\n\n" + bc.table(pass_columns(targets),
                                                [pass_row(shape, r[name], targets) for shape, r in results]))
    if results and "pieces" in results[0][1]:
        out.append(pieces_table(results))
    out.append(check_table(results, precision, samples_note))
    return "".join(out)


def free(torch):
    cupy.get_default_memory_pool().free_all_blocks()
    backend.empty_cache()
    if torch is not None:
        torch.cuda.empty_cache()


def run():
    backend.set_device("gpu")
    torch = bc.torch_or_none()
    if torch is not None:
        torch.backends.cudnn.benchmark = True
    rates = matmul_rates(torch)
    results = {"tf32": [], "float32": [], "bfloat16": []}
    tiles, float32_kernels = [], []
    flags = {}
    samples_note = "reference: PyTorch float64 on the GPU, every sample"
    for shape in ALL_SHAPES:
        case = Case(shape, torch)
        want, samples = reference(torch, case)
        if torch is None:
            samples_note = ("reference: gpu_dl's NumPy path in float64, every sample" if samples == shape.batch
                            else f"reference: gpu_dl's NumPy path in float64 on the first {samples} samples "
                                 "(gpu_dl run on the same samples)")
        for precision in ("tf32", "float32"):
            flags[precision] = set_torch_precision(torch, precision)
            results[precision].append((shape, measure(torch, case, precision, want, samples, rates[precision],
                                                      pieces=True)))
        tiles.append((shape, measure_tiles(case, "tf32", results["tf32"][-1][1]["ok"])))
        float32_kernels.append((shape, measure_float32_kernels(case, results["float32"][-1][1]["ok"])))
        if shape in SEED_SHAPES:
            set_torch_precision(torch, "tf32")
            results["bfloat16"].append((shape, measure(torch, case, "bfloat16", want, samples, rates["tf32"],
                                                       bf16_torch=True)))
        del case, want
        free(torch)

    def rate_text(precision):
        return "not measured" if rates[precision] is None else f"{rates[precision] / 1e12:.0f} TFLOP/s"
    matmul = "torch.matmul" if torch is not None else "cupy.matmul"
    out = [bc.header("2-D convolution, NHWC float32, batch 128, \"same\" padding, stride 1: gpu_dl vs cuDNN"),
           ("PyTorch " + torch.__version__ + f", cuDNN {torch.backends.cudnn.version()}; "
            "torch.backends.cudnn.benchmark = True; PyTorch tensors channels_last."
            if torch is not None else "PyTorch with CUDA not found: gpu_dl alone.") + "\n",
           f"Device matmul rate ({matmul}, {MATMUL_SIZE}^3 float32): TF32 {rate_text('tf32')}, "
           f"strict float32 {rate_text('float32')}. Times are medians of {REPEATS} CUDA-event-timed repeats, "
           "L2 flushed before each. gpu_dl forward: conv2d_forward_cuda with bias and relu epilogue (one "
           "launch); PyTorch forward: F.relu(F.conv2d(x, w, b), inplace=True). Forward + backward also "
           "computes the relu gradient, dx, dkernel and dbias on both sides. \"cuDNN / gpu_dl\" is a ratio of "
           "times: > 1 means gpu_dl is faster.\n"]
    out.append(precision_section(f"TF32 (gpu_dl precision=\"tf32\"; {flags['tf32']})", results["tf32"], "tf32",
                                 True, samples_note))
    out.append(precision_section(f"Strict float32 (gpu_dl precision=\"float32\"; {flags['float32']}); "
                                 "no targets", results["float32"], "float32", False, samples_note))
    out.append(precision_section("Note: bfloat16 operands, float32 accumulation (gpu_dl precision=\"bfloat16\"; "
                                 "PyTorch under torch.autocast(dtype=torch.bfloat16), which casts x and w to "
                                 "bfloat16 on every call and returns y in bfloat16); seed shapes; \"of matmul "
                                 "rate\" against the TF32 matmul", results["bfloat16"], "bfloat16", False,
                                 samples_note))
    out.append(tile_table(tiles, "tf32"))
    out.append(float32_kernel_table(float32_kernels))
    if problems:
        out.append("\n**Problems** (these rows were not timed):\n\n" + "\n".join(f"- {p}" for p in problems) + "\n")
    return "".join(out)


if __name__ == "__main__":
    bc.main(run, __doc__.splitlines()[0])
    sys.exit(1 if problems else 0)
