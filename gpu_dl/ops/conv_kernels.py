"""Launchers of ``kernels/conv2d.cu``: 2-D convolution (NHWC) forward and backward on CuPy arrays.

The only place that knows those kernels' geometry. ``gpu_dl/ops/convolution.py``
sends CuPy arrays here; the NumPy path there is the reference the kernels are
tested against (tests/test_conv2d_kernel.py also has its own).

Which kernel runs (simple, per call):

- float64 arrays: the exact kernels (``conv2d_*_f64``), always.
- float32 arrays: ``precision`` (default ``gpu_dl.backend.conv_precision()``)
  picks ``"tf32"`` or ``"bfloat16"`` -> the tensor-core kernels
  (``conv2d_*_{tf32,bf16}_n{32,64}``), or ``"float32"`` -> the tiled float32
  kernels (``conv2d_*_f32tile_n{32,64}``: the tensor-core kernels' tiles,
  loaders and pipeline with scalar FMAs), which give the same bits as the
  exact ``conv2d_*_f32`` kernels (every output's terms in the same order, one
  FMA each, padding and off-pixel taps skipped, not multiplied by zero). On a
  GPU older than sm_80 (no cp.async, no tf32/bf16 mma) the exact kernels run
  whatever the precision; ``forced_float32_kernel("exact")`` runs them on any
  GPU (tests, benchmarks).
- The tiled kernels (tensor-core and float32) handle every shape; their column tile is 32 when
  the GEMM has at most 32 columns (Cout forward and backward filter, Cin
  backward data), 64 otherwise. Forward and backward data take 128 rows
  (N*OH*OW, N*H*W) per block, or 64 where that spreads the grid over the
  device's SMs clearly better: where the busiest SM (ceil(blocks / SMs)
  tiles) gets at most 0.8 of the rows it gets with 128 (``_row_tile``;
  the SM count is read once per device). They load an operand in 16-byte
  chunks when its contiguous dimension is a multiple of 4 and its address
  16-byte aligned, element by element otherwise (Cin = 3).
- Backward filter splits the reduction over N*OH*OW into a number of
  blocks that depends on the shapes only, writes one partial dW per split
  and sums them in a fixed order (8 interleaved stripes of the splits, 4
  accumulators each, then the stripes in turn): the same inputs give the
  same bits on every call, on every GPU. Precision "float32" splits the
  same way whichever of its kernels runs (the tiled rule, in whole tiles of
  32 positions), so the exact and the tiled kernels agree bit for bit.
- float16 arrays (a layer computing under "mixed_float16"): there is no
  float16 kernel; each launcher casts them to float32, runs the float32
  kernels and casts its outputs back to float16
  (``launch.float16_through_float32``): correct, not yet faster.
"""
from __future__ import annotations

import contextlib
import math

import numpy

from .. import backend
from ..backend import launch
from ..backend.kernels import get_kernel
from . import activation_kernels

_KERNEL_FILE = "conv2d.cu"
_TC_NAME = {"tf32": "tf32", "bfloat16": "bf16"}
# The tiled float32 kernels' infix (kernels/conv2d.cu: CONV_FMA_F32); "exact" or "tiled" (forced_float32_kernel).
_F32_TILED = "f32tile"
_forced_float32_kernel = None
# Tensor-core tiles (kernels/conv2d.cu): rows per block of forward / backward data (128, or 64 where the
# 128-row grid fills the SMs poorly: _row_tile), and of backward filter.
_TC_TILE_M = 128
_TC_SMALL_TILE_M = 64
# The 64-row tile runs where it cuts the rows of the busiest SM to at most this fraction of the 128-row grid's:
# its blocks reuse each B tile over half the rows, so an even spread must win more than that to pay.
_SMALL_TILE_GAIN = 0.8
_forced_row_tile = None   # forced_row_tile's setting
_TC_FILTER_TILE_M = 64
_TC_FILTER_TILE_K = 32
_TC_FILTER_THREADS = 128
_EXACT_THREADS = 256
# The split reduce's block: 32 consecutive outputs by 8 stripes of the splits (REDUCE_COLS, REDUCE_STRIPES).
_REDUCE_COLUMNS, _REDUCE_STRIPES = 32, 8
# Backward filter splits the reduction until about this many blocks run, with at least this much work per split.
_TARGET_BLOCKS = 1024
_MIN_TILES_PER_SPLIT = 8       # tiled kernels (and precision "float32"): p-tiles of 32 positions
_MIN_POSITIONS_PER_SPLIT = 256  # exact float64 kernels
# 32-bit indices with room for a tile's overshoot past the end of a dimension.
_INDEX_LIMIT = 2**31 - 2**16

_capabilities: dict = {}


def kernel_names() -> set:
    """The ``extern "C"`` names of conv2d.cu that these launchers use."""
    names = set()
    for prec in (*_TC_NAME.values(), _F32_TILED):
        for nb in (32, 64):
            names |= {f"conv2d_fwd_{prec}_n{nb}", f"conv2d_bwd_data_{prec}_n{nb}", f"conv2d_bwd_filter_{prec}_n{nb}",
                      f"conv2d_fwd_{prec}_m64_n{nb}", f"conv2d_bwd_data_{prec}_m64_n{nb}"}
    for suffix in ("f32", "f64"):
        names |= {f"conv2d_fwd_{suffix}", f"conv2d_bwd_data_{suffix}", f"conv2d_bwd_filter_{suffix}",
                  f"conv2d_bwd_filter_reduce_{suffix}"}
    return names


# ----------------------------------------------------------------------------------------- checks
def _pair(value, what: str, kernel: str) -> tuple:
    try:
        a, b = value
        a, b = int(a), int(b)
        if (a, b) != tuple(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{kernel}: `{what}` must be a pair of integers, got {value!r}.") from None
    if a < 1 or b < 1:
        raise ValueError(f"{kernel}: `{what}` must be >= 1, got {value!r}.")
    return a, b


def _padding(value, kernel: str) -> tuple:
    """((pt, pb), (pl, pr)) -> (pt, pb, pl, pr), non-negative integers."""
    try:
        (pt, pb), (pl, pr) = value
        pads = tuple(int(p) for p in (pt, pb, pl, pr))
        if pads != (pt, pb, pl, pr):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{kernel}: `padding` must be ((top, bottom), (left, right)) integers, "
                         f"got {value!r}.") from None
    if min(pads) < 0:
        raise ValueError(f"{kernel}: `padding` must be non-negative, got {value!r}.")
    return pads


def _output_size(size, k, stride, dilation, before, after):
    return (size + before + after - dilation * (k - 1) - 1) // stride + 1


def _shape4(a, kernel: str, what: str, layout: str) -> tuple:
    if a.ndim != 4:
        raise ValueError(f"{kernel}: `{what}` must be 4-D {layout}, got shape {tuple(a.shape)}.")
    return tuple(int(s) for s in a.shape)


def _check_indices(kernel: str, **sizes):
    for what, size in sizes.items():
        if size >= _INDEX_LIMIT:
            raise ValueError(f"{kernel}: {what} is {size}; the kernels index with 32-bit integers "
                             f"(at most {_INDEX_LIMIT - 1}). Split the batch.")


def _mode(dtype, precision, kernel: str) -> str:
    """"float64", "float32", "tf32" or "bfloat16": the arithmetic this call uses."""
    known = backend.config.CONV_PRECISIONS
    if precision is not None and precision not in known:
        raise ValueError(f"{kernel}: `precision` must be None or one of {', '.join(map(repr, known))}, "
                         f"got {precision!r}.")
    if numpy.dtype(dtype) == numpy.float64:
        return "float64"
    mode = precision if precision is not None else backend.conv_precision()
    if mode in _TC_NAME and not _has_tensor_cores():
        return "float32"
    return mode


def _tiled_prefix(mode: str):
    """The infix of the tiled kernels that run ``mode`` ("tf32", "bf16", "f32tile"), or None: the exact kernels."""
    if mode in _TC_NAME:
        return _TC_NAME[mode]
    if mode == "float32" and _forced_float32_kernel != "exact" and _has_tensor_cores():
        return _F32_TILED
    return None


@contextlib.contextmanager
def forced_float32_kernel(kind: str):
    """Within the block, precision "float32" runs the ``"exact"`` (one thread per output) or the ``"tiled"``
    kernels (the default on sm_80 and newer; older GPUs run the exact ones whatever this says): for tests and
    benchmarks that compare the two. Both give the same bits."""
    global _forced_float32_kernel
    if kind not in ("exact", "tiled"):
        raise ValueError(f"forced_float32_kernel: `kind` must be 'exact' or 'tiled', got {kind!r}.")
    previous, _forced_float32_kernel = _forced_float32_kernel, kind
    try:
        yield
    finally:
        _forced_float32_kernel = previous


def _has_tensor_cores() -> bool:
    """True on sm_80 and newer (cp.async, mma.sync tf32 / bf16)."""
    import cupy
    device = cupy.cuda.runtime.getDevice()
    if device not in _capabilities:
        _capabilities[device] = int(cupy.cuda.Device(device).compute_capability) >= 80
    return _capabilities[device]


# The device's SM count (a module name, so that tests can stand in a device of another size).
_multiprocessors = launch.multiprocessors


def _row_tile(rows: int, tiles_n: int) -> int:
    """Rows per block (128 or 64) of the forward / backward-data tensor-core grid of ``rows`` x ``tiles_n`` tiles.

    The grid's blocks spread over the device's SMs in waves; the busiest SM computes ceil(blocks / SMs) tiles.
    64 where that SM's rows with 64-row tiles are at most ``_SMALL_TILE_GAIN`` of its rows with 128-row tiles:
    grids of a few waves whose last one leaves many SMs idle (25088 rows, one column tile, 132 SMs: 196 blocks
    of 128, the busiest SM 256 rows; 392 of 64, 192 rows), and grids smaller than the device.
    """
    if _forced_row_tile is not None:
        return _forced_row_tile
    import cupy
    return _row_tile_on(rows, tiles_n, _multiprocessors(cupy.cuda.runtime.getDevice()))


def _row_tile_on(rows: int, tiles_n: int, sms: int) -> int:
    """``_row_tile``'s rule for a device of ``sms`` multiprocessors."""
    def busiest(tile):
        return math.ceil(math.ceil(rows / tile) * tiles_n / sms) * tile
    return _TC_SMALL_TILE_M if busiest(_TC_SMALL_TILE_M) <= _SMALL_TILE_GAIN * busiest(_TC_TILE_M) else _TC_TILE_M


@contextlib.contextmanager
def forced_row_tile(rows: int):
    """Within the block, forward and backward-data tensor-core launches use ``rows`` (128 or 64) rows per block
    whatever ``_row_tile`` would choose: for benchmarks and tests that compare the two tiles."""
    global _forced_row_tile
    if rows not in (_TC_TILE_M, _TC_SMALL_TILE_M):
        raise ValueError(f"forced_row_tile: `rows` must be {_TC_TILE_M} or {_TC_SMALL_TILE_M}, got {rows!r}.")
    previous, _forced_row_tile = _forced_row_tile, rows
    try:
        yield
    finally:
        _forced_row_tile = previous


def _tc_rows_launch(direction: str, prefix: str, rows: int, columns: int):
    """``(kernel name, grid, block)`` of a forward / backward-data tiled launch (``prefix``: tf32, bf16 or
    f32tile): M = ``rows``, Ncols = ``columns``."""
    nb = _tile_n(columns)
    tiles_n = math.ceil(columns / nb)
    bm = _row_tile(rows, tiles_n)
    tile = f"_n{nb}" if bm == _TC_TILE_M else f"_m{bm}_n{nb}"
    warps = (bm // 32) * (nb // 32)   # every warp computes 32 x 32
    return f"conv2d_{direction}_{prefix}{tile}", (math.ceil(rows / bm) * tiles_n,), (32 * warps,)


def _aligned(a) -> bool:
    return a.data.ptr % 16 == 0


def _tile_n(columns: int) -> int:
    return 32 if columns <= 32 else 64


def _dims(N, H, W, Cin, OH, OW, Cout, KH, KW, sh, sw, dh, dw, pt, pl) -> tuple:
    """The 15 int arguments every conv2d.cu kernel takes, in its order."""
    return tuple(numpy.int32(v) for v in (N, H, W, Cin, OH, OW, Cout, KH, KW, sh, sw, dh, dw, pt, pl))


def _geometry(kernel, strides, padding, dilation):
    sh, sw = _pair(strides, "strides", kernel)
    dh, dw = _pair(dilation, "dilation", kernel)
    pt, pb, pl, pr = _padding(padding, kernel)
    return sh, sw, dh, dw, pt, pb, pl, pr


def _output_hw(kernel, H, W, KH, KW, geometry):
    sh, sw, dh, dw, pt, pb, pl, pr = geometry
    OH = _output_size(H, KH, sh, dh, pt, pb)
    OW = _output_size(W, KW, sw, dw, pl, pr)
    if OH < 1 or OW < 1:
        raise ValueError(f"{kernel}: the output would be {OH} x {OW}: input {H} x {W} with padding "
                         f"({pt}, {pb}), ({pl}, {pr}) is smaller than the dilated {KH} x {KW} kernel.")
    return OH, OW


def _check_kernel_shape(kernel_name, KH, KW, what):
    if KH < 1 or KW < 1:
        raise ValueError(f"{kernel_name}: `{what}` must have a spatial size of at least 1 x 1, got {KH} x {KW}.")


# ---------------------------------------------------------------------------------------- forward
@launch.float16_through_float32
def conv2d_forward_cuda(x, kernel, bias, *, strides, padding, dilation, activation="linear",
                        activation_params=None, precision=None, want_z=True):
    """z = conv2d(x, kernel) + bias and y = activation(z), in one launch.

    ``x`` (N, H, W, Cin) and ``kernel`` (KH, KW, Cin, Cout) are C-contiguous CuPy arrays of one
    float dtype, ``bias`` (Cout,) or None; ``strides`` and ``dilation`` are (int, int), ``padding``
    ((top, bottom), (left, right)). Returns ``(z, y)``, both (N, OH, OW, Cout); ``y`` is ``z``
    itself for the linear activation. With ``want_z=False`` and another activation the kernel
    writes y only (half the output traffic) and ``z`` is None; the linear activation's ``z`` is
    ``y`` and is returned whatever ``want_z`` says.
    """
    name = "conv2d_fwd"
    suffix = launch.float_suffix(x.dtype, name, "x")
    launch.check_device_array(x, name, "x")
    N, H, W, Cin = _shape4(x, name, "x", "(batch, height, width, channels)")
    launch.check_device_array(kernel, name, "kernel", dtype=x.dtype)
    KH, KW, kernel_cin, Cout = _shape4(kernel, name, "kernel", "(height, width, in_channels, out_channels)")
    if kernel_cin != Cin:
        raise ValueError(f"{name}: `kernel` has {kernel_cin} input channels (shape[2]) but `x` has {Cin} "
                         f"(shape[3]); kernel shape {tuple(kernel.shape)}, x shape {tuple(x.shape)}.")
    _check_kernel_shape(name, KH, KW, "kernel")
    if bias is not None:
        launch.check_device_array(bias, name, "bias", dtype=x.dtype, shape=(Cout,))
    geometry = _geometry(name, strides, padding, dilation)
    sh, sw, dh, dw, pt, pb, pl, pr = geometry
    OH, OW = _output_hw(name, H, W, KH, KW, geometry)
    scalars = activation_kernels._scalars(x.dtype, activation, activation_params or {})
    mode = _mode(x.dtype, precision, name)
    M, K = N * OH * OW, KH * KW * Cin
    _check_indices(name, **{"N*OH*OW": M, "KH*KW*Cin": K, "Cout": Cout, "the output size": M * Cout})

    y = launch.empty_output((N, OH, OW, Cout), x.dtype)
    if activation == "linear":
        z = y
    else:
        z = launch.empty_output(y.shape, x.dtype) if want_z else None   # null: the kernel skips z
    if y.size == 0:
        return z, y
    dims = _dims(N, H, W, Cin, OH, OW, Cout, KH, KW, sh, sw, dh, dw, pt, pl)
    prefix = _tiled_prefix(mode)
    if prefix is not None:
        kname, grid, block = _tc_rows_launch("fwd", prefix, M, Cout)
        vec = (numpy.int32(Cin % 4 == 0 and _aligned(x)), numpy.int32(Cout % 4 == 0 and _aligned(kernel)))
        args = (x, kernel, launch.optional(bias), launch.optional(z), y) + dims + scalars + vec
        get_kernel(_KERNEL_FILE, kname)(grid, block, args)
    else:
        grid, block = launch.grid_1d(y.size, _EXACT_THREADS)
        get_kernel(_KERNEL_FILE, f"conv2d_fwd_{suffix}")(
            grid, block, (x, kernel, launch.optional(bias), launch.optional(z), y) + dims + scalars)
    return z, y


# ---------------------------------------------------------------------------------- backward data
@launch.float16_through_float32
def conv2d_backward_input_cuda(dy, kernel, input_shape, *, strides, padding, dilation, precision=None):
    """dx (``input_shape`` = (N, H, W, Cin)): the gradient of conv2d with respect to its input.

    ``dy`` (N, OH, OW, Cout) and ``kernel`` (KH, KW, Cin, Cout) are C-contiguous CuPy arrays of one
    float dtype; OH, OW must be what the forward computes from ``input_shape`` and the geometry.
    """
    name = "conv2d_bwd_data"
    suffix = launch.float_suffix(dy.dtype, name, "dy")
    launch.check_device_array(dy, name, "dy")
    N, OH, OW, Cout = _shape4(dy, name, "dy", "(batch, out_height, out_width, out_channels)")
    launch.check_device_array(kernel, name, "kernel", dtype=dy.dtype)
    KH, KW, Cin, kernel_cout = _shape4(kernel, name, "kernel", "(height, width, in_channels, out_channels)")
    _check_kernel_shape(name, KH, KW, "kernel")
    try:
        in_n, H, W, in_c = (int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: `input_shape` must be (batch, height, width, channels), "
                         f"got {input_shape!r}.") from None
    if kernel_cout != Cout:
        raise ValueError(f"{name}: `kernel` has {kernel_cout} output channels (shape[3]) but `dy` has {Cout}.")
    if in_c != Cin or in_n != N:
        raise ValueError(f"{name}: `input_shape` {tuple(input_shape)} does not match `kernel` "
                         f"({Cin} input channels) and `dy` (batch {N}).")
    geometry = _geometry(name, strides, padding, dilation)
    sh, sw, dh, dw, pt, pb, pl, pr = geometry
    if min(H, W) < 0 or _output_hw(name, H, W, KH, KW, geometry) != (OH, OW):
        raise ValueError(f"{name}: `dy` is {OH} x {OW} but the forward of an input {H} x {W} with this geometry "
                         f"gives {_output_hw(name, H, W, KH, KW, geometry)}.")
    mode = _mode(dy.dtype, precision, name)
    M, K = N * H * W, KH * KW * Cout
    _check_indices(name, **{"N*H*W": M, "KH*KW*Cout": K, "Cin": Cin, "the output size": M * Cin})

    dx = launch.empty_output((N, H, W, Cin), dy.dtype)
    if dx.size == 0:
        return dx
    dims = _dims(N, H, W, Cin, OH, OW, Cout, KH, KW, sh, sw, dh, dw, pt, pl)
    prefix = _tiled_prefix(mode)
    if prefix is not None:
        import cupy
        kernel_t = cupy.ascontiguousarray(kernel.transpose(0, 1, 3, 2))   # (KH, KW, Cout, Cin): B is (K, Cin)
        kname, grid, block = _tc_rows_launch("bwd_data", prefix, M, Cin)
        vec = (numpy.int32(Cout % 4 == 0 and _aligned(dy)), numpy.int32(Cin % 4 == 0 and _aligned(kernel_t)))
        get_kernel(_KERNEL_FILE, kname)(grid, block, (dy, kernel_t, dx) + dims + vec)
    else:
        grid, block = launch.grid_1d(dx.size, _EXACT_THREADS)
        get_kernel(_KERNEL_FILE, f"conv2d_bwd_data_{suffix}")(grid, block, (dy, kernel, dx) + dims)
    return dx


# -------------------------------------------------------------------------------- backward filter
@launch.float16_through_float32
def conv2d_backward_kernel_cuda(x, dy, kernel_shape, *, strides, padding, dilation, precision=None):
    """dkernel (``kernel_shape`` = (KH, KW, Cin, Cout)): the gradient of conv2d with respect to its kernel.

    ``x`` (N, H, W, Cin) and ``dy`` (N, OH, OW, Cout) are C-contiguous CuPy arrays of one float dtype.
    The reduction over N*OH*OW is split over blocks and summed in a fixed order: reproducible bits.
    """
    name = "conv2d_bwd_filter"
    suffix = launch.float_suffix(x.dtype, name, "x")
    launch.check_device_array(x, name, "x")
    N, H, W, Cin = _shape4(x, name, "x", "(batch, height, width, channels)")
    launch.check_device_array(dy, name, "dy", dtype=x.dtype)
    dy_n, OH, OW, Cout = _shape4(dy, name, "dy", "(batch, out_height, out_width, out_channels)")
    try:
        KH, KW, k_cin, k_cout = (int(s) for s in kernel_shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: `kernel_shape` must be (height, width, in_channels, out_channels), "
                         f"got {kernel_shape!r}.") from None
    _check_kernel_shape(name, KH, KW, "kernel_shape")
    if k_cin != Cin or k_cout != Cout:
        raise ValueError(f"{name}: `kernel_shape` {tuple(kernel_shape)} does not match `x` ({Cin} channels) "
                         f"and `dy` ({Cout} channels).")
    if dy_n != N:
        raise ValueError(f"{name}: `dy` has batch {dy_n} but `x` has {N}.")
    geometry = _geometry(name, strides, padding, dilation)
    sh, sw, dh, dw, pt, pb, pl, pr = geometry
    if _output_hw(name, H, W, KH, KW, geometry) != (OH, OW):
        raise ValueError(f"{name}: `dy` is {OH} x {OW} but the forward of `x` ({H} x {W}) with this geometry "
                         f"gives {_output_hw(name, H, W, KH, KW, geometry)}.")
    mode = _mode(x.dtype, precision, name)
    P, KF = N * OH * OW, KH * KW * Cin
    count = KF * Cout
    _check_indices(name, **{"N*OH*OW": P, "KH*KW*Cin": KF, "Cout": Cout})

    dk = launch.empty_output((KH, KW, Cin, Cout), x.dtype)
    if dk.size == 0:
        return dk
    dims = _dims(N, H, W, Cin, OH, OW, Cout, KH, KW, sh, sw, dh, dw, pt, pl)
    prefix = _tiled_prefix(mode)
    # The tiled kernels' split of the p-tiles of 32 positions; precision "float32" splits so in the exact
    # kernels too (per_split * 32 positions), so that both sum the same terms in each split: the same bits.
    nb = _tile_n(Cout)
    tiles_mn = math.ceil(KF / _TC_FILTER_TILE_M) * math.ceil(Cout / nb)
    p_tiles = math.ceil(P / _TC_FILTER_TILE_K)
    per_split = max(_MIN_TILES_PER_SPLIT, math.ceil(p_tiles / max(1, _TARGET_BLOCKS // tiles_mn)))
    blocks = math.ceil(count / _EXACT_THREADS)
    if prefix is None and mode == "float32":
        per_split *= _TC_FILTER_TILE_K
    elif prefix is None:
        per_split = max(_MIN_POSITIONS_PER_SPLIT, math.ceil(P / max(1, _TARGET_BLOCKS // blocks)))
    splits = max(1, math.ceil((P if prefix is None else p_tiles) / per_split))
    _check_indices(name, **{"the partial sums' size": splits * count})
    partial = dk if splits == 1 else launch.empty_output((splits, count), x.dtype)
    if prefix is not None:
        vec = (numpy.int32(Cin % 4 == 0 and _aligned(x)), numpy.int32(Cout % 4 == 0 and _aligned(dy)))
        get_kernel(_KERNEL_FILE, f"conv2d_bwd_filter_{prefix}_n{nb}")(
            (tiles_mn, 1, splits), (_TC_FILTER_THREADS,), (x, dy, partial) + dims + (numpy.int32(per_split),) + vec)
    else:
        get_kernel(_KERNEL_FILE, f"conv2d_bwd_filter_{suffix}")(
            (blocks, splits), (_EXACT_THREADS,), (x, dy, partial) + dims + (numpy.int32(per_split),))
    if splits > 1:
        _sum_splits(partial, dk)
    return dk


def _sum_splits(partial, out):
    """``out`` (any shape of ``count`` elements) = ``partial`` (splits, count) summed over its first axis.

    Both C-contiguous CuPy arrays of one dtype (float32 or float64). The order of the additions is
    fixed by ``splits`` alone: 8 stripes, stripe t summing the splits s = t (mod 8) with 4 accumulators
    (accumulator j of stripe t takes s = t + 8*(4i + j)), each stripe's total (a0 + a1) + (a2 + a3),
    and out = the stripes' totals added in the order t = 0..7, each sum starting from zero.
    """
    name = "conv2d_bwd_filter_reduce"
    suffix = launch.float_suffix(partial.dtype, name, "partial")
    launch.check_device_array(partial, name, "partial")
    if partial.ndim != 2:
        raise ValueError(f"{name}: `partial` must be 2-D (splits, count), got shape {tuple(partial.shape)}.")
    splits, count = (int(s) for s in partial.shape)
    launch.check_device_array(out, name, "out", dtype=partial.dtype)
    if out.size != count:
        raise ValueError(f"{name}: `out` has {out.size} elements but `partial` sums to {count}.")
    if count:
        get_kernel(_KERNEL_FILE, f"conv2d_bwd_filter_reduce_{suffix}")(
            (math.ceil(count / _REDUCE_COLUMNS),), (_REDUCE_COLUMNS, _REDUCE_STRIPES),
            (partial, out, numpy.int32(count), numpy.int32(splits)))
    return out


# ------------------------------------------------------------------------------- grouped (groups > 1)
# A grouped convolution (kernel (KH, KW, Cin/groups, Cout)) runs the launchers above once per group, on that
# group's channel slices copied contiguous (the kernels read C-contiguous NHWC), and writes each result
# into its channel block of one output. Cost over one ungrouped launch of the same FLOPs: `groups` launches
# (each with Cin/groups and Cout/groups channels: narrow GEMMs that fill tensor-core tiles poorly) and one
# extra read and write of the sliced inputs and of the outputs.
def _group_slices(total, groups):
    step = total // groups
    return [slice(g * step, (g + 1) * step) for g in range(groups)]


def _slice(a, sl):
    import cupy
    return cupy.ascontiguousarray(a[..., sl])


@launch.float16_through_float32
def grouped_conv2d_forward_cuda(x, kernel, bias, groups, *, strides, padding, dilation, activation="linear",
                                activation_params=None, precision=None, want_z=True):
    """``(z, y)`` of a grouped convolution: output channel block g from input channel block g.
    ``want_z`` as in ``conv2d_forward_cuda`` (z None when not wanted and the activation is not linear)."""
    cin, cout = int(x.shape[-1]), int(kernel.shape[-1])
    z = y = None
    for x_sl, k_sl in zip(_group_slices(cin, groups), _group_slices(cout, groups)):
        zg, yg = conv2d_forward_cuda(_slice(x, x_sl), _slice(kernel, k_sl),
                                     None if bias is None else _slice(bias, k_sl),
                                     strides=strides, padding=padding, dilation=dilation, activation=activation,
                                     activation_params=activation_params, precision=precision, want_z=want_z)
        if y is None:
            y = launch.empty_output(yg.shape[:-1] + (cout,), yg.dtype)
            z = y if zg is yg else None if zg is None else launch.empty_output(y.shape, yg.dtype)
        y[..., k_sl] = yg
        if z is not None and z is not y:
            z[..., k_sl] = zg
    return z, y


@launch.float16_through_float32
def grouped_conv2d_backward_input_cuda(dy, kernel, input_shape, groups, *, strides, padding, dilation,
                                       precision=None):
    """dx of a grouped convolution: input channel block g from dy's channel block g."""
    cin, cout = int(input_shape[-1]), int(dy.shape[-1])
    dx = launch.empty_output(tuple(int(s) for s in input_shape), dy.dtype)
    for x_sl, k_sl in zip(_group_slices(cin, groups), _group_slices(cout, groups)):
        dx[..., x_sl] = conv2d_backward_input_cuda(_slice(dy, k_sl), _slice(kernel, k_sl),
                                                   tuple(input_shape[:-1]) + (cin // groups,), strides=strides,
                                                   padding=padding, dilation=dilation, precision=precision)
    return dx


@launch.float16_through_float32
def grouped_conv2d_backward_kernel_cuda(x, dy, kernel_shape, groups, *, strides, padding, dilation,
                                        precision=None):
    """dkernel (KH, KW, Cin/groups, Cout) of a grouped convolution."""
    cin, cout = int(x.shape[-1]), int(dy.shape[-1])
    dk = launch.empty_output(tuple(int(s) for s in kernel_shape), x.dtype)
    for x_sl, k_sl in zip(_group_slices(cin, groups), _group_slices(cout, groups)):
        dk[..., k_sl] = conv2d_backward_kernel_cuda(_slice(x, x_sl), _slice(dy, k_sl),
                                                    tuple(kernel_shape[:-1]) + (cout // groups,), strides=strides,
                                                    padding=padding, dilation=dilation, precision=precision)
    return dk
