"""Newer layers and optimizers, forward and forward + backward, against PyTorch on the same GPU.

Most of these have no kernel of their own: their GPU path is CuPy array
operations (einsum, batched matmuls through cuBLAS, element-wise and
reduction kernels) or existing kernels run in new ways (Conv3D and
Conv3DTranspose: conv2d.cu once per kernel depth tap; ConvLSTM2D: conv2d.cu
and lstm_cell.cu's fused cells; Lion and Lamb: optimizers.cu). CTC has
kernels/ctc.cu, LayerNormalization and RMSNormalization over the last
axis run the fused kernels of kernels/normalization.cu and
BatchNormalization over the channels of NHWC those of kernels/batchnorm.cu,
GroupNormalization over the channels of NHWC those of kernels/groupnorm.cu
(a row that ran the array path instead is reported as a problem, not
timed). One table per family:

- attention: MultiHeadAttention (batch 32, sequence 128, 8 heads of 64,
  model width 512), GroupQueryAttention (8 query heads, 2 key/value heads of
  64) and Attention (dot scores, no scale, width 512) against the same
  projections written as torch matmuls around
  ``F.scaled_dot_product_attention`` (``enable_gqa=True`` for the grouped
  heads where PyTorch has it, else the key/value heads repeated);
- 3-D convolution and pooling: Conv3D (8 volumes of 16^3, 32 -> 64
  channels, 3x3x3 "same") against ``F.conv3d``, Conv3DTranspose (8 volumes
  of 8^3, 64 -> 32, 2x2x2 stride 2) against ``F.conv_transpose3d``,
  MaxPooling3D and AveragePooling3D (2x2x2 over 8 x 32^3 x 32) against
  ``F.max_pool3d`` and ``F.avg_pool3d``;
- ConvLSTM2D (8 sequences of 10 steps, 32x32 images, 16 -> 32 filters, 3x3
  "same", return_sequences) against a step loop of two ``F.conv2d`` and the
  LSTM gates in torch ops (Keras's gate order i, f, c, o; sigmoid and tanh);
- normalization: GroupNormalization (32 x 64x64 x 64 channels, 8 groups)
  against ``F.group_norm``, LayerNormalization and RMSNormalization over the
  last axis of (32, 128, 512) and of (64, 1024, 1024) against
  ``F.layer_norm`` and ``F.rms_norm`` (the formula in torch ops where
  PyTorch lacks it), BatchNormalization in training (batch statistics,
  moving statistics updated) over NHWC (128, 28, 28, 32) and
  (128, 56, 56, 64) against ``torch.nn.BatchNorm2d`` in training mode on
  the same memory seen as NCHW (channels_last, which cuDNN takes as it is);
- EinsumDense ``abc,cde->abde`` (32 x 128 x 512 to 8 heads of 64, bias on
  ``de``) against ``torch.einsum`` plus the bias;
- Resizing (bilinear, 32 images 128x128x3 to 256x256) against
  ``F.interpolate(mode="bilinear", align_corners=False)``;
- Lion and Lamb: one update of a 64-Mi-element float32 variable (the
  ``gpu_dl.ops.optimizer_update`` functions the optimizers call) against the
  same rule written in torch ops (PyTorch has neither optimizer);
- the CTC loss (``gpu_dl.ops.ctc``: log-softmax as array operations, then
  kernels/ctc.cu's alpha pass forward, its beta pass and gradient kernel
  backward) per sample, (batch 32, 200 steps, 32 classes, labels of up to 40)
  and (16, 800, 64, up to 100), against ``log_softmax`` and
  ``F.ctc_loss(reduction="none")`` with padded int64 targets on the GPU
  (PyTorch's own CUDA kernels: its cuDNN path takes only int32 targets on the
  host, concatenated). Every label row fits in the steps (PyTorch's gradient
  of an impossible row is NaN).

Layouts: gpu_dl is channels_last; PyTorch gets the same memory as a
permuted view (NDHWC seen as NCDHW is PyTorch's channels_last_3d format,
which cuDNN takes as it is), weights converted once before timing.
Precision: strict float32 on both sides (CUPY_TF32=0, set before CuPy is
imported; gpu_dl's convolutions ``backend.set_conv_precision("float32")``
instead of their default TF32; torch.backends.cudnn.allow_tf32 and
torch.backends.cuda.matmul.allow_tf32 off).

Checks before timing: outputs and input gradients (for a given dy), or the
updated variable and slots, compared with PyTorch's as max |difference| /
max |reference| <= TOLERANCE; without PyTorch, with the same layer (same
weights) or update on gpu_dl's NumPy path. CTC is compared with a float64
reference instead (PyTorch's ``F.ctc_loss`` on the float64 logits, or
without PyTorch gpu_dl's NumPy path in float64), gpu_dl's float32 result and
PyTorch's each: a float32 log-space recursion drifts from the exact one by
about sqrt(T) * eps * |log-likelihood| (``ctc_float32_tolerance``), so its
gradient gets that bound and its loss TOLERANCE; the "error" cell is
gpu_dl's, PyTorch's in brackets. A case that differs prints MISMATCH, is
not timed, and the script exits with status 1.

Timing: ``bc.time_gpu`` (CUDA events, median of repeats after a warm-up, L2
flushed before each repeat). gpu_dl's forward is ``layer(x,
training=True)``, its forward + backward that and ``layer.backward(dy)``;
PyTorch's forward runs with inputs requiring gradients (the graph kept, as
for training), its forward + backward adds ``y.backward(dy)`` (autograd).
Work counted: FLOPs of the products (forward; forward + backward = 3x) as
a fraction of a float32 cuBLAS product of 8192^2 matrices measured in the
same run (``bc.matmul_rate``), or the least bytes a pass must move (forward:
read x, write y; backward: read dy (and x where the gradient needs it),
write dx; optimizers: every array read and written once) as a fraction of
the copy bandwidth (``bc.copy_bandwidth``). Passes moving under 256 MiB are
not bandwidth figures (DESIGN.md): their fraction is left out ("-") and
their time is mostly latency and launches. "PyTorch / gpu_dl" above 1 means
gpu_dl is faster.

The smoke run (``GPU_DL_BENCH_SMOKE=1``, see ``bench_common.py``) takes
every row at tiny shapes.

Usage: python profiling/bench_layers.py [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_layers.py   (tiny shapes)
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
from gpu_dl.ops import optimizer_update as update  # noqa: E402
from gpu_dl.ops.normalization import ChannelStatistics, GroupStatistics, RowStatistics  # noqa: E402

DEVICE = "cuda"   # PyTorch's device
REPEATS = 30
TOLERANCE = 1e-3   # max |diff| / max |reference|, every output and gradient
LARGE = bc.smoke(256 << 20, 32 << 10)   # bytes moved from which a pass is a bandwidth figure
MIB = 1 << 20

problems: list = []   # one line per case whose result differs from the reference


def host(a):
    return cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else numpy.asarray(a)


def _relative(got, want):
    got, want = numpy.asarray(host(got), dtype=numpy.float64), numpy.asarray(want, dtype=numpy.float64)
    return float(numpy.abs(got - want).max()) / max(float(numpy.abs(want).max()), 1e-30)


def from_torch(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else host(t)


class Case:
    """One layer at one shape: how to build it and call it, its work, and PyTorch's version of it.

    ``make()`` builds the layer (unbuilt); ``call(layer, xs, training)`` runs it on the list of inputs;
    ``torch_model(torch, weights)`` returns a function of the inputs (PyTorch tensors, gpu_dl's layout)
    computing the same thing with ``weights`` (the layer's, as NumPy arrays); ``work`` = (forward,
    forward + backward) in FLOPs or bytes, per ``kind`` ("flops" or "bytes"). ``fused(layer)``, where given,
    says whether the layer's last training call ran its fused kernel: a case that should and did not is a
    problem (not timed), so a table row never times the array path in the kernel's name."""

    def __init__(self, name, label, shapes, make, torch_model, kind, work, call=None, fused=None):
        self.name, self.label, self.shapes, self.make, self.torch_model = name, label, shapes, make, torch_model
        self.kind, self.work, self.fused = kind, work, fused
        self.call = call or (lambda layer, xs, training: layer(xs[0], training=training))


def inputs(shapes, seed=1):
    rng = numpy.random.default_rng(seed)
    return [rng.standard_normal(s).astype(numpy.float32) for s in shapes]


# ------------------------------------------------------------------ the cases, family by family
def attention_cases():
    b, t, heads, width = bc.smoke((32, 128, 8, 64), (2, 5, 2, 4))
    kv_heads = bc.smoke(2, 1)
    d = heads * width
    label = f"({b}, {t}, {d}), {heads} x {width}"
    products = 2 * (2 * b * t * heads * t * width)            # scores and weighted values
    mha_flops = 4 * 2 * b * t * d * d + products
    gqa_flops = 2 * 2 * b * t * d * d + 2 * 2 * b * t * d * kv_heads * width + products

    def two(layer, xs, training):
        return layer(xs[0], xs[1], training=training)

    def heads_model(groups):
        def model(torch, w):
            wq, bq, wk, bk, wv, bv, wo, bo = (torch.as_tensor(a, device=DEVICE) for a in w)
            F = torch.nn.functional

            def project(x, kernel, bias):   # (B, T, D) @ (D, heads, width) -> (B, heads, T, width)
                y = x @ kernel.reshape(kernel.shape[0], -1) + bias.reshape(-1)
                return y.view(x.shape[0], x.shape[1], kernel.shape[1], kernel.shape[2]).transpose(1, 2)

            def run(query, value):
                q, k, v = project(query, wq, bq), project(value, wk, bk), project(value, wv, bv)
                if groups < heads:
                    try:
                        o = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                    except TypeError:   # PyTorch before 2.5: the key/value heads repeated
                        k, v = k.repeat_interleave(heads // groups, 1), v.repeat_interleave(heads // groups, 1)
                        o = F.scaled_dot_product_attention(q, k, v)
                else:
                    o = F.scaled_dot_product_attention(q, k, v)
                o = o.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)
                return o @ wo.reshape(-1, wo.shape[-1]) + bo
            return run
        return model

    def dot_model(torch, w):
        def run(query, value):   # Attention(): scores q.v unscaled, softmax, weights @ v
            return torch.nn.functional.scaled_dot_product_attention(query, value, value, scale=1.0)
        return run

    return [
        Case("MultiHeadAttention", label, [(b, t, d)] * 2, lambda: layers.MultiHeadAttention(heads, width),
             heads_model(heads), "flops", mha_flops, call=two),
        Case("GroupQueryAttention", label + f", {kv_heads} kv heads", [(b, t, d)] * 2,
             lambda: layers.GroupQueryAttention(width, heads, kv_heads), heads_model(kv_heads), "flops",
             gqa_flops, call=two),
        Case("Attention (dot)", f"({b}, {t}, {d})", [(b, t, d)] * 2, lambda: layers.Attention(), dot_model,
             "flops", 2 * 2 * b * t * t * d, call=lambda layer, xs, training: layer(xs, training=training)),
    ]


def conv3d_cases():
    n, s, cin, cout = bc.smoke((8, 16, 32, 64), (2, 4, 3, 5))
    nt, st, ct_in, ct_out = bc.smoke((8, 8, 64, 32), (2, 3, 5, 3))
    pn, ps, pc = bc.smoke((8, 32, 32), (2, 6, 4))

    def ndhwc(torch, x):   # NDHWC memory seen as NCDHW: PyTorch's channels_last_3d, no copy
        return x.permute(0, 4, 1, 2, 3)

    def back(y):
        return y.permute(0, 2, 3, 4, 1)

    def conv_model(torch, w):
        kernel = torch.as_tensor(w[0], device=DEVICE).permute(4, 3, 0, 1, 2)   # (kd,kh,kw,in,out) -> (out,in,...)
        kernel = kernel.contiguous(memory_format=torch.channels_last_3d)
        bias = torch.as_tensor(w[1], device=DEVICE)
        return lambda x: back(torch.nn.functional.conv3d(ndhwc(torch, x), kernel, bias, padding=1))

    def transpose_model(torch, w):
        kernel = torch.as_tensor(w[0], device=DEVICE).permute(4, 3, 0, 1, 2)   # (kd,kh,kw,out,in) -> (in,out,...)
        kernel = kernel.contiguous(memory_format=torch.channels_last_3d)
        bias = torch.as_tensor(w[1], device=DEVICE)
        return lambda x: back(torch.nn.functional.conv_transpose3d(ndhwc(torch, x), kernel, bias, stride=2))

    def pool_model(kind):
        def model(torch, w):
            pool = getattr(torch.nn.functional, f"{kind}_pool3d")
            return lambda x: back(pool(ndhwc(torch, x), 2))
        return model

    conv_flops = 2 * n * s ** 3 * cout * 27 * cin
    transpose_flops = 2 * nt * st ** 3 * ct_in * ct_out * 8
    x_bytes = 4 * pn * ps ** 3 * pc
    y_bytes = x_bytes // 8
    pool_bytes = (x_bytes + y_bytes, x_bytes + y_bytes + y_bytes + x_bytes)   # fwd: x, y; bwd: dy, dx
    return [
        Case("Conv3D", f"({n}, {s}^3, {cin}) -> {cout}, 3x3x3 same", [(n, s, s, s, cin)],
             lambda: layers.Conv3D(cout, 3, padding="same"), conv_model, "flops", conv_flops),
        Case("Conv3DTranspose", f"({nt}, {st}^3, {ct_in}) -> {ct_out}, 2x2x2 /2", [(nt, st, st, st, ct_in)],
             lambda: layers.Conv3DTranspose(ct_out, 2, strides=2), transpose_model, "flops", transpose_flops),
        Case("MaxPooling3D", f"({pn}, {ps}^3, {pc}), 2x2x2", [(pn, ps, ps, ps, pc)],
             lambda: layers.MaxPooling3D(2), pool_model("max"), "bytes", pool_bytes),
        Case("AveragePooling3D", f"({pn}, {ps}^3, {pc}), 2x2x2", [(pn, ps, ps, ps, pc)],
             lambda: layers.AveragePooling3D(2), pool_model("avg"), "bytes", pool_bytes),
    ]


def conv_lstm_cases():
    n, steps, size, cin, filters = bc.smoke((8, 10, 32, 16, 32), (2, 3, 5, 3, 4))

    def model(torch, w):
        F = torch.nn.functional
        kernel = torch.as_tensor(w[0], device=DEVICE).permute(3, 2, 0, 1).contiguous(
            memory_format=torch.channels_last)
        recurrent = torch.as_tensor(w[1], device=DEVICE).permute(3, 2, 0, 1).contiguous(
            memory_format=torch.channels_last)
        bias = torch.as_tensor(w[2], device=DEVICE)

        def run(x):   # x (N, T, H, W, C)
            frames = x.permute(0, 1, 4, 2, 3)   # channels_last views of (N, C, H, W) per step
            h = torch.zeros(n, filters, size, size, device=DEVICE).contiguous(memory_format=torch.channels_last)
            c = torch.zeros_like(h)
            outputs = []
            for t in range(steps):
                z = F.conv2d(frames[:, t], kernel, bias, padding=1) + F.conv2d(h, recurrent, padding=1)
                i, f, g, o = z.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            return torch.stack(outputs, 1).permute(0, 1, 3, 4, 2)
        return run

    flops = steps * 2 * n * size * size * 4 * filters * 9 * (cin + filters)
    return [Case("ConvLSTM2D", f"({n}, {steps}, {size}x{size}, {cin}) -> {filters}, 3x3 same",
                 [(n, steps, size, size, cin)],
                 lambda: layers.ConvLSTM2D(filters, 3, padding="same", return_sequences=True), model, "flops",
                 flops)]


def elementwise_bytes(shape, out_shape=None, backward_reads_x=True):
    """Least bytes (float32): forward reads x and writes y; backward reads dy (and x) and writes dx."""
    x = 4 * int(numpy.prod(shape))
    y = x if out_shape is None else 4 * int(numpy.prod(out_shape))
    return x + y, x + y + y + x + (x if backward_reads_x else 0)


def normalization_cases():
    gn_shape = bc.smoke((32, 64, 64, 64), (2, 5, 5, 8))
    groups = bc.smoke(8, 4)
    row_shapes = bc.smoke([(32, 128, 512), (64, 1024, 1024)], [(2, 5, 16), (3, 7, 24)])
    image_shapes = bc.smoke([(128, 28, 28, 32), (128, 56, 56, 64)], [(2, 5, 5, 8), (3, 4, 4, 33)])

    def group_model(torch, w):
        gamma, beta = (torch.as_tensor(a, device=DEVICE) for a in w)
        return lambda x: torch.nn.functional.group_norm(x.permute(0, 3, 1, 2), groups, gamma, beta,
                                                        1e-3).permute(0, 2, 3, 1)

    def layer_model(torch, w):
        gamma, beta = (torch.as_tensor(a, device=DEVICE) for a in w)
        return lambda x: torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, 1e-3)

    def rms_model(torch, w):
        scale = torch.as_tensor(w[0], device=DEVICE)
        if hasattr(torch.nn.functional, "rms_norm"):
            return lambda x: torch.nn.functional.rms_norm(x, x.shape[-1:], scale, 1e-6)
        return lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * scale

    def batch_model(torch, w):   # training mode: batch statistics, running statistics moved (momentum 0.01)
        gamma, beta, moving_mean, moving_variance = (torch.as_tensor(a, device=DEVICE) for a in w)
        bn = torch.nn.BatchNorm2d(len(w[0]), eps=1e-3, momentum=0.01, device=DEVICE).train()
        with torch.no_grad():
            for target, value in ((bn.weight, gamma), (bn.bias, beta), (bn.running_mean, moving_mean),
                                  (bn.running_var, moving_variance)):
                target.copy_(value)
        # NHWC memory seen as NCHW is channels_last: cuDNN's NHWC batch norm, no copy
        return lambda x: bn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def fused(layer):   # kernels/normalization.cu's record (RMSNormalization keeps it beside its input)
        saved = layer.saved()
        return isinstance(saved[1] if isinstance(saved, tuple) else saved, RowStatistics)

    def batch_fused(layer):   # kernels/batchnorm.cu's record, first in BatchNormalization's
        return isinstance(layer.saved()[0], ChannelStatistics)

    def group_fused(layer):   # kernels/groupnorm.cu's record
        return isinstance(layer.saved(), GroupStatistics)

    cases = [Case("GroupNormalization", f"{gn_shape}, {groups} groups", [gn_shape],
                  lambda: layers.GroupNormalization(groups), group_model, "bytes", elementwise_bytes(gn_shape),
                  fused=group_fused)]
    for shape in row_shapes:
        cases += [Case("LayerNormalization", str(shape), [shape], lambda: layers.LayerNormalization(), layer_model,
                       "bytes", elementwise_bytes(shape), fused=fused),
                  Case("RMSNormalization", str(shape), [shape], lambda: layers.RMSNormalization(), rms_model,
                       "bytes", elementwise_bytes(shape), fused=fused)]
    cases += [Case("BatchNormalization (training)", str(shape), [shape], lambda: layers.BatchNormalization(),
                   batch_model, "bytes", elementwise_bytes(shape), fused=batch_fused) for shape in image_shapes]
    return cases


def einsum_cases():
    b, t, d, heads, width = bc.smoke((32, 128, 512, 8, 64), (2, 5, 16, 2, 4))

    def model(torch, w):
        kernel, bias = (torch.as_tensor(a, device=DEVICE) for a in w)
        return lambda x: torch.einsum("abc,cde->abde", x, kernel) + bias

    return [Case("EinsumDense abc,cde->abde", f"({b}, {t}, {d}) -> ({heads}, {width})", [(b, t, d)],
                 lambda: layers.EinsumDense("abc,cde->abde", output_shape=(None, heads, width), bias_axes="de"),
                 model, "flops", 2 * b * t * d * heads * width)]


def resizing_cases():
    n, size, channels, target = bc.smoke((32, 128, 3, 256), (2, 5, 3, 9))

    def model(torch, w):
        return lambda x: torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), size=(target, target),
                                                         mode="bilinear", align_corners=False).permute(0, 2, 3, 1)

    shape = (n, size, size, channels)
    return [Case("Resizing (bilinear)", f"{shape} -> {target}x{target}", [shape],
                 lambda: layers.Resizing(target, target), model, "bytes",
                 elementwise_bytes(shape, (n, target, target, channels), backward_reads_x=False))]


FAMILIES = [("Attention", attention_cases), ("3-D convolution and pooling", conv3d_cases),
            ("ConvLSTM2D", conv_lstm_cases), ("Normalization", normalization_cases),
            ("EinsumDense", einsum_cases), ("Resizing", resizing_cases)]


# ------------------------------------------------------------------ running a case
def ours_pass(case, layer, xs, dy):
    """(output, input gradients): a training forward, then the layer's backward."""
    y = case.call(layer, xs, True)
    grads = layer.backward(dy)
    return y, list(grads) if isinstance(grads, (list, tuple)) else [grads]


def built_layer(case, xs):
    layer = case.make()
    case.call(layer, xs, False)   # builds it
    return layer


def check(torch, case, layer, xs_host, dy_host):
    """The largest relative difference of the output and input gradients from the reference."""
    xs = [cupy.asarray(a) for a in xs_host]
    y, grads = ours_pass(case, layer, xs, cupy.asarray(dy_host))
    if torch is not None:
        ts = [torch.as_tensor(a, device=DEVICE).requires_grad_(True) for a in xs_host]
        out = case.torch_model(torch, layer.get_weights())(*ts)
        out.backward(torch.as_tensor(dy_host, device=DEVICE))
        want_y, want_grads = from_torch(out), [from_torch(t.grad) for t in ts]
    else:
        backend.set_device("cpu")
        try:
            reference = built_layer(case, xs_host)
            reference.set_weights(layer.get_weights())
            want_y, want_grads = ours_pass(case, reference, xs_host, dy_host)
        finally:
            backend.set_device("gpu")
    return max([_relative(y, want_y)] + [_relative(g, w) for g, w in zip(grads, want_grads)])


def measure(torch, case):
    xs_host = inputs(case.shapes)
    xs = [cupy.asarray(a) for a in xs_host]
    layer = built_layer(case, xs)
    y = case.call(layer, xs, False)
    dy_host = numpy.random.default_rng(2).standard_normal(y.shape).astype(numpy.float32)
    dy = cupy.asarray(dy_host)
    error = check(torch, case, layer, xs_host, dy_host)
    if case.fused is not None:
        case.call(layer, xs, True)
        if not case.fused(layer):
            line = f"NOT FUSED: {case.name} at {case.label} ran the array path, not its kernel; not timed"
            print(line, file=sys.stderr, flush=True)
            problems.append(line)
            return None
    if not error <= TOLERANCE:   # NaN counts as a mismatch
        line = (f"MISMATCH: {case.name} at {case.label}: differs by {error:.2e} (max |diff| / max |reference|, "
                f"tolerance {TOLERANCE}); not timed")
        print(line, file=sys.stderr, flush=True)
        problems.append(line)
        return None
    ms = {"fwd": bc.time_gpu(lambda: case.call(layer, xs, True), repeats=REPEATS),
          "both": bc.time_gpu(lambda: ours_pass(case, layer, xs, dy), repeats=REPEATS)}
    torch_ms = {}
    if torch is not None:
        ts = [torch.as_tensor(a, device=DEVICE).requires_grad_(True) for a in xs_host]
        dyt = torch.as_tensor(dy_host, device=DEVICE)
        run = case.torch_model(torch, layer.get_weights())

        def both():
            for t in ts:
                t.grad = None
            run(*ts).backward(dyt)

        torch_ms = {"fwd": bc.time_gpu(lambda: run(*ts), repeats=REPEATS, sync=torch.cuda.synchronize),
                    "both": bc.time_gpu(both, repeats=REPEATS, sync=torch.cuda.synchronize)}
    return error, ms, torch_ms


# ------------------------------------------------------------------ the optimizers
def optimizer_cases():
    n = bc.smoke(64 << 20, 4099)   # smoke: no multiple of the kernels' 16-byte vectors
    lr, beta_1, beta_2, epsilon, t = 1e-4, 0.9, 0.99, 1e-7, 3
    corrections = (1 - beta_1 ** t, 1 - beta_2 ** t)

    def lion(xp_update, value, grad, m):
        xp_update.lion_update(value, grad, m, lr, beta_1, beta_2)

    def lamb(xp_update, value, grad, m, v):
        xp_update.lamb_update(value, grad, m, v, lr, beta_1, beta_2, epsilon, *corrections)

    def torch_lion(torch, value, grad, m):
        value.sub_(lr * torch.sign(m * beta_1 + grad * (1 - beta_1)))
        m.mul_(beta_2).add_(grad * (1 - beta_2))

    def torch_lamb(torch, value, grad, m, v):
        m.add_((grad - m) * (1 - beta_1))
        v.add_((grad * grad - v) * (1 - beta_2))
        r = (m / corrections[0]) / (torch.sqrt(v / corrections[1]) + epsilon)
        w_norm, r_norm = torch.linalg.vector_norm(value), torch.linalg.vector_norm(r)
        ratio = torch.where((w_norm > 0) & (r_norm > 0), w_norm / r_norm, torch.ones_like(w_norm))
        value.sub_(ratio * lr * r)

    # (name, arrays, arrays written, gpu_dl rule, PyTorch rule)
    return n, [("Lion", 3, 2, lion, torch_lion), ("Lamb", 4, 3, lamb, torch_lamb)]


def optimizer_rows(torch, copy_rate):
    n, cases = optimizer_cases()
    rows = []
    for name, count, written, rule, torch_rule in cases:
        rng = numpy.random.default_rng(3)
        arrays = [rng.standard_normal(n).astype(numpy.float32) for _ in range(count)]
        if count == 4:
            arrays[3] = numpy.abs(arrays[3]) + 1e-3   # Lamb's second moment
        ours = [cupy.asarray(a) for a in arrays]
        rule(update, *ours)
        if torch is not None:
            theirs = [torch.as_tensor(a, device=DEVICE) for a in arrays]
            torch_rule(torch, *theirs)
            want = [from_torch(a) for a in theirs]
        else:
            want = [a.copy() for a in arrays]
            rule(update, *want)   # NumPy arrays: the NumPy path
        error = max(_relative(o, w) for i, (o, w) in enumerate(zip(ours, want)) if i != 1)   # 1: the gradient
        label = f"{n:,} float32"
        if not error <= TOLERANCE:
            line = (f"MISMATCH: {name} at {label}: differs by {error:.2e} (max |diff| / max |reference|, "
                    f"tolerance {TOLERANCE}); not timed")
            print(line, file=sys.stderr, flush=True)
            problems.append(line)
            rows.append([name, label, "update", f"{error:.1e}", "not timed"] + ["-"] * 6)
            continue
        nbytes = 4 * n * (count + written)
        ms = bc.time_gpu(lambda: rule(update, *ours), repeats=REPEATS)
        torch_ms = None
        if torch is not None:
            ts = [torch.as_tensor(a, device=DEVICE) for a in arrays]
            torch_ms = bc.time_gpu(lambda: torch_rule(torch, *ts), repeats=REPEATS, sync=torch.cuda.synchronize)
        rows.append([name, label, "update", f"{error:.1e}"]
                    + cells("bytes", nbytes, ms, torch_ms, copy_rate))
    return rows


# ------------------------------------------------------------------ the CTC loss
def ctc_cases():
    """(batch, steps, classes, max_label_length), labels in 1 .. classes - 1 padded with the blank 0."""
    return bc.smoke([(32, 200, 32, 40), (16, 800, 64, 100)], [(2, 7, 5, 3), (3, 9, 4, 2)])


def ctc_inputs(batch, steps, classes, length):
    rng = numpy.random.default_rng(4)
    logits = (rng.standard_normal((batch, steps, classes)) * 2).astype(numpy.float32)
    labels = numpy.zeros((batch, length), dtype=numpy.int64)
    lengths = rng.integers(1, length + 1, batch)
    for b, n in enumerate(lengths):
        labels[b, :n] = rng.integers(1, classes, n)   # n + repeats <= 2n - 1 <= steps: every row fits
    return logits, labels, lengths


def ctc_float32_tolerance(steps, loss, grad):
    """Bound on a float32 gradient's max |diff| / max |reference| against float64: any float32 log-space
    recursion (gpu_dl's, PyTorch's) rounds alpha and beta once per step at the log-likelihood's magnitude,
    a drift of about sqrt(T) * eps * (1 + |loss|) in every occupancy (tests/test_ctc_kernel.py's
    FLOAT32_ROUNDING: NumPy's float32 path reaches 0.4 of that, PyTorch's CPU float32 about 0.3 at
    (16, 800, 64); 6 of it is the bound there too). The loss itself keeps TOLERANCE."""
    scale = numpy.sqrt(steps) * float(numpy.finfo(numpy.float32).eps) * (1 + float(numpy.abs(loss).max()))
    return 6 * scale / max(float(numpy.abs(grad).max()), 1e-30)


def ctc_rows(torch, copy_rate):
    from gpu_dl.ops.ctc import ctc_backward, ctc_forward
    rows = []
    for batch, steps, classes, length in ctc_cases():
        logits_host, labels_host, lengths = ctc_inputs(batch, steps, classes, length)
        logits, labels = cupy.asarray(logits_host), cupy.asarray(labels_host)
        label = f"({batch}, {steps}, {classes}), labels <= {length}"

        def ours():
            loss, saved = ctc_forward(labels, logits)
            return loss, ctc_backward(saved)

        loss, grad = ours()
        if torch is not None:
            F = torch.nn.functional
            targets = torch.as_tensor(labels_host, device=DEVICE)
            input_lengths = torch.full((batch,), steps, dtype=torch.int64, device=DEVICE)
            target_lengths = torch.as_tensor(lengths, dtype=torch.int64, device=DEVICE)
            z = torch.as_tensor(logits_host, device=DEVICE).requires_grad_(True)

            def theirs(z=z):
                return F.ctc_loss(z.log_softmax(2).transpose(0, 1), targets, input_lengths, target_lengths,
                                  blank=0, reduction="none")

            def torch_result(z):
                z = z.detach().requires_grad_(True)
                result = theirs(z)
                result.sum().backward()
                return [from_torch(result).astype(numpy.float64), from_torch(z.grad).astype(numpy.float64)]

            # The reference: PyTorch in float64 on the same (float32) logits.
            want = torch_result(z.double())
            torch_result_32 = torch_result(z)
        else:
            want_loss, saved = ctc_forward(labels_host, logits_host.astype(numpy.float64))   # the NumPy path
            want = [want_loss, ctc_backward(saved)]
        loss_error, grad_error = _relative(loss, want[0]), _relative(grad, want[1])
        error = max(loss_error, grad_error)
        grad_tolerance = ctc_float32_tolerance(steps, want[0], want[1])
        torch_cell = ""
        if torch is not None:
            torch_errors = [_relative(torch_result_32[0], want[0]), _relative(torch_result_32[1], want[1])]
            torch_cell = f" (PyTorch {max(torch_errors):.1e})"
            if not (torch_errors[0] <= TOLERANCE and torch_errors[1] <= grad_tolerance):
                print(f"note: PyTorch's float32 CTC at {label} differs from float64 by {torch_errors[0]:.2e} "
                      f"(loss) and {torch_errors[1]:.2e} (gradient; bound {grad_tolerance:.2e})",
                      file=sys.stderr, flush=True)
        if not (loss_error <= TOLERANCE and grad_error <= grad_tolerance):
            line = (f"MISMATCH: CTC at {label}: gpu_dl's float32 result differs from the float64 reference by "
                    f"{loss_error:.2e} (loss; tolerance {TOLERANCE}) and {grad_error:.2e} (gradient; tolerance "
                    f"{grad_tolerance:.2e}), as max |diff| / max |reference|; not timed")
            print(line, file=sys.stderr, flush=True)
            problems.append(line)
            rows.append(["CTC", label, "MISMATCH", "-", "not timed"] + ["-"] * 7)
            continue
        logits_bytes = 4 * batch * steps * classes
        work = (logits_bytes + 4 * batch, 2 * logits_bytes + 4 * batch)   # read logits, write loss (and dlogits)
        ms = {"fwd": bc.time_gpu(lambda: ctc_forward(labels, logits), repeats=REPEATS),
              "both": bc.time_gpu(ours, repeats=REPEATS)}
        torch_ms = {}
        if torch is not None:
            def both():
                z.grad = None
                theirs().sum().backward()

            torch_ms = {"fwd": bc.time_gpu(theirs, repeats=REPEATS, sync=torch.cuda.synchronize),
                        "both": bc.time_gpu(both, repeats=REPEATS, sync=torch.cuda.synchronize)}
        for key, name, amount in (("fwd", "forward", work[0]), ("both", "forward + backward", work[1])):
            rows.append(["CTC", label, name, f"{error:.1e}{torch_cell}"]
                        + cells("bytes", amount, ms[key], torch_ms.get(key), copy_rate))
    return rows


# ------------------------------------------------------------------ tables
COLUMNS = ["layer", "shape", "pass", "error", "gpu_dl us", "unit", "gpu_dl rate", "gpu_dl of device",
           "PyTorch us", "PyTorch rate", "PyTorch of device", "PyTorch / gpu_dl"]


def cells(kind, work, ms, torch_ms, device_rate):
    """Time, rate and fraction of the device's rate for both sides (from "gpu_dl us" on)."""
    unit, scale = ("TFLOP/s", 1e12) if kind == "flops" else ("GB/s", 1e9)
    bandwidth_row = kind == "flops" or work >= LARGE

    def side(t):
        rate = work / (t * 1e-3)
        return [f"{t * 1e3:.1f}", f"{rate / scale:.2f}", f"{rate / device_rate:.0%}" if bandwidth_row else "-"]

    ours = side(ms)
    row = [ours[0], unit] + ours[1:]
    if torch_ms is None:
        return row + ["-"] * 4
    return row + side(torch_ms) + [f"{torch_ms / ms:.2f}x"]


def run():
    backend.set_device("gpu")
    backend.set_conv_precision("float32")   # gpu_dl's convolutions default to TF32; compared in strict float32
    torch = bc.torch_or_none()
    if torch is not None:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    copy_rate, matmul = bc.copy_bandwidth(), bc.matmul_rate()
    out = [bc.header("Newer layers and optimizers, float32: gpu_dl against PyTorch"),
           "Strict float32 on both sides (CUPY_TF32=0, gpu_dl's convolutions in float32; PyTorch's cuDNN and matmul "
           "TF32 off). Times: median of "
           "CUDA-event-timed repeats, L2 flushed before each. Device figures measured in this run: copy "
           f"bandwidth {copy_rate / 1e9:.0f} GB/s (read + written), float32 cuBLAS product "
           f"{matmul / 1e12:.1f} TFLOP/s. \"of device\": the rate as a fraction of the one in its unit; "
           f"bytes rows under {LARGE / MIB:g} MiB are not bandwidth figures (\"-\"). \"error\": max |diff| / "
           "max |reference| of the output and input gradients (optimizers: variable and slots) before timing. "
           "PyTorch / gpu_dl above 1: gpu_dl faster.\n"]
    if torch is None:
        out.append("PyTorch with CUDA is not installed: gpu_dl alone, its results checked against its NumPy "
                   "backend's.\n")
    for family, make_cases in FAMILIES:
        rows = []
        for case in make_cases():
            measured = measure(torch, case)
            if measured is None:
                rows.append([case.name, case.label, "MISMATCH", "-", "not timed"] + ["-"] * 7)
                continue
            error, ms, torch_ms = measured
            work = case.work if isinstance(case.work, tuple) else (case.work, 3 * case.work)
            rate = matmul if case.kind == "flops" else copy_rate
            for key, name, amount in (("fwd", "forward", work[0]), ("both", "forward + backward", work[1])):
                rows.append([case.name, case.label, name, f"{error:.1e}"]
                            + cells(case.kind, amount, ms[key], torch_ms.get(key), rate))
        out.append(f"### {family}\n\n" + bc.table(COLUMNS, rows))
    out.append("### Optimizer updates (Lion, Lamb)\n\n" + bc.table(COLUMNS, optimizer_rows(torch, copy_rate)))
    out.append("### CTC loss (per sample; forward + backward: d loss / d logits)\n\n"
               + bc.table(COLUMNS, ctc_rows(torch, copy_rate)))
    if problems:
        out.append("**Problems** (these rows were not timed):\n\n" + "\n".join(f"- {p}" for p in problems) + "\n")
    return "\n".join(out)


if __name__ == "__main__":
    bc.main(run, __doc__.splitlines()[0])
    sys.exit(1 if problems else 0)
