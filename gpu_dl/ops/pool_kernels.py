"""Launchers of ``kernels/pooling.cu``: 2-D max and average pooling, windowed and global, on NHWC CuPy arrays.

The only place that knows the kernels' geometry. ``gpu_dl.ops.pool`` sends
CuPy float32/float64 arrays here. Every launcher checks its arguments (dtype,
C-contiguity, shapes, the pooling geometry) and raises a TypeError or
ValueError that names the kernel and the argument instead of launching.

Geometry arguments: ``pool_size`` and ``strides`` are ``(rows, cols)``
pairs of positive ints; ``padding`` is ``((top, bottom), (left, right))``,
each pad in ``[0, pool)`` (Keras's "same" padding puts the extra row/column
at the bottom/right; the caller computes the numbers). The output size is
``OH = (H + top + bottom - ph) // sh + 1`` (``OW`` alike). Positions in the
padding never win a max and are not counted in an average.

The windowed backwards come in two forms with the same results bit for bit
(``backward_form``): ``*_bwd_disjoint`` (output-stationary) where strides >=
pool size in both axes, ``*_bwd_rows`` (a gather over input rows) elsewhere.

float16 arrays (a layer computing under "mixed_float16") have no kernel of
their own: each launcher casts them to float32, runs the float32 kernel and
casts its float outputs back to float16 (``launch.float16_through_float32``):
correct, not yet faster.
"""
from __future__ import annotations

import numpy

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "pooling.cu"
_THREADS = 256
_GLOBAL_MAX_THREADS = 1024   # POOL_GLOBAL_MAX_THREADS in pooling.cu
_MAX_GRID_Y = 65535   # CUDA's limit on gridDim.y


def _pair(value, kernel, argument, minimum):
    """``value`` as a pair of Python ints, each at least ``minimum``."""
    try:
        a, b = value
        pair = (int(a), int(b))
    except (TypeError, ValueError):
        raise TypeError(f"{kernel}: `{argument}` must be a pair of ints, got {value!r}.") from None
    if pair != (a, b):
        raise TypeError(f"{kernel}: `{argument}` must be a pair of ints, got {value!r}.")
    if min(pair) < minimum:
        raise ValueError(f"{kernel}: `{argument}` must be at least {minimum} in both dimensions, got {value!r}.")
    return pair


def _input_shape(kernel, input_shape, argument):
    """Checked ``(N, H, W, C)`` of a pooling's input: H and W at least 1, fewer than 2**31 elements."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"{kernel}: `{argument}` must be a shape (N, H, W, C), got {input_shape!r}.") from None
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError(f"{kernel}: `{argument}` must be a shape (N, H, W, C) (NHWC, channels last), "
                         f"got {tuple(input_shape)}.")
    if shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"{kernel}: `{argument}` {shape} has an empty spatial size (H, W) = {shape[1:3]}: "
                         "nothing to pool over.")
    if shape[0] * shape[1] * shape[2] * shape[3] >= 2**31:
        raise ValueError(f"{kernel}: `{argument}` {shape} has 2**31 elements or more; kernels index with 32-bit "
                         "integers.")
    return shape


def _geometry(kernel, input_shape, pool_size, strides, padding, argument="input_shape"):
    """Checked ``(N, H, W, C, OH, OW, ph, pw, sh, sw, pt, pl)`` of a windowed pooling."""
    shape = _input_shape(kernel, input_shape, argument)
    ph, pw = _pair(pool_size, kernel, "pool_size", 1)
    sh, sw = _pair(strides, kernel, "strides", 1)
    try:
        rows, cols = padding
    except (TypeError, ValueError):
        raise TypeError(f"{kernel}: `padding` must be ((top, bottom), (left, right)), got {padding!r}.") from None
    pt, pb = _pair(rows, kernel, "padding", 0)
    pl, pr = _pair(cols, kernel, "padding", 0)
    if max(pt, pb) >= ph or max(pl, pr) >= pw:
        raise ValueError(f"{kernel}: `padding` {padding!r} must be smaller than `pool_size` {(ph, pw)} on each "
                         "side (a window made of padding alone has no value).")
    n, h, w, c = shape
    oh = (h + pt + pb - ph) // sh + 1
    ow = (w + pl + pr - pw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{kernel}: the input's spatial size {(h, w)} with padding {padding!r} is smaller than "
                         f"`pool_size` {(ph, pw)}: no output position.")
    if n * oh * ow * c >= 2**31:
        raise ValueError(f"{kernel}: the output {(n, oh, ow, c)} has 2**31 elements or more; kernels index with "
                         "32-bit integers.")
    return n, h, w, c, oh, ow, ph, pw, sh, sw, pt, pl


def _launch_windowed(name, arrays, geometry, items, vec):
    if items:
        grid, block = launch.grid_1d(items // vec, _THREADS)
        get_kernel(_KERNEL_FILE, name)(grid, block, tuple(arrays) + launch.int32s(*geometry, vec))


def backward_form(pool_size, strides):
    """Which windowed backward kernel runs: ``"disjoint"`` where windows do not overlap, else ``"rows"``.

    The rule (pooling.cu's header states it too): strides >= pool size in both axes takes the
    output-stationary ``*_bwd_disjoint`` kernel, every other geometry the row-gather ``*_bwd_rows``.
    """
    (ph, pw), (sh, sw) = pool_size, strides
    return "disjoint" if sh >= ph and sw >= pw else "rows"


def _launch_backward(kernel, arrays, geometry):
    """Launch ``kernel``'s form (``maxpool2d_bwd_f32`` runs as ``maxpool2d_bwd_<form>_f32``) on ``arrays``.

    disjoint: the forwards' 1-D grid-stride loop over the (N, OH, OW, C / V) dy items. rows: a 2-D grid,
    blockIdx.x over the N*H input rows, blockIdx.y over tiles of TY columns (at most 65535 tiles, the kernel
    strides over the rest); block (TX, TY) with TX = min(C / V, 32) channel vectors, TY = 256 // TX columns.
    """
    n, h, w, c, _, _, ph, pw, sh, sw = geometry[:10]
    if n * h * w * c == 0:
        return
    vec = launch.vector_width(arrays[0].dtype, c, *arrays)
    op, suffix = kernel.rsplit("_", 1)
    form = backward_form((ph, pw), (sh, sw))
    name = f"{op}_{form}_{suffix}"
    if form == "disjoint":
        _launch_windowed(name, arrays, geometry, arrays[0].size, vec)
        return
    tx = min(c // vec, 32)
    ty = _THREADS // tx
    grid = (n * h, min(-(-w // ty), _MAX_GRID_Y))
    get_kernel(_KERNEL_FILE, name)(grid, (tx, ty), tuple(arrays) + launch.int32s(*geometry, vec))


def _check_input(x, op):
    """The kernel name for input ``x`` (float32/float64 CuPy array), after checking it."""
    kernel = f"{op}_{launch.float_suffix(x.dtype, op, 'x')}"
    if x.ndim != 4:   # before the layout check: a view of the wrong rank is rarely contiguous
        raise ValueError(f"{kernel}: `x` must have shape (N, H, W, C) (NHWC, channels last), got {tuple(x.shape)}.")
    launch.check_device_array(x, kernel, "x")
    return kernel


def _check_gradient(dy, op):
    kernel = f"{op}_{launch.float_suffix(dy.dtype, op, 'dy')}"
    launch.check_device_array(dy, kernel, "dy")
    return kernel


# ------------------------------------------------------------------------------------ windowed pooling
@launch.float16_through_float32
def max_pool2d_forward_cuda(x, pool_size, strides, padding):
    """Launcher of ``maxpool2d_fwd_{f32,f64}``: ``(y, argmax)`` of max pooling NHWC ``x``.

    ``y`` is ``(N, OH, OW, C)`` of x's dtype; ``argmax`` int32 of the same shape holds the window-local
    position ``r * pw + q`` of each maximum (the first one in row-major order; the first NaN if any).
    """
    kernel = _check_input(x, "maxpool2d_fwd")
    geometry = _geometry(kernel, x.shape, pool_size, strides, padding, "x")
    n, _, _, c, oh, ow = geometry[:6]
    y = launch.empty_output((n, oh, ow, c), x.dtype)
    argmax = launch.empty_output((n, oh, ow, c), numpy.int32)
    vec = launch.vector_width(x.dtype, c, x, y, argmax)
    _launch_windowed(kernel, (x, y, argmax), geometry, y.size, vec)
    return y, argmax


@launch.float16_through_float32
def max_pool2d_backward_cuda(dy, argmax, input_shape, pool_size, strides, padding):
    """Launcher of ``maxpool2d_bwd_{disjoint,rows}_{f32,f64}``: ``dx`` (``input_shape``) of max pooling.

    ``dy`` is the gradient of the forward's ``y`` and ``argmax`` the forward's int32 argmax, both
    ``(N, OH, OW, C)``. Each ``dx`` element sums the ``dy`` of the windows whose argmax points at it.
    """
    kernel = _check_gradient(dy, "maxpool2d_bwd")
    geometry = _geometry(kernel, input_shape, pool_size, strides, padding)
    n, h, w, c, oh, ow = geometry[:6]
    launch.check_device_array(dy, kernel, "dy", shape=(n, oh, ow, c))
    launch.check_device_array(argmax, kernel, "argmax", dtype=numpy.int32, shape=(n, oh, ow, c))
    dx = launch.empty_output((n, h, w, c), dy.dtype)
    _launch_backward(kernel, (dy, argmax, dx), geometry)
    return dx


@launch.float16_through_float32
def avg_pool2d_forward_cuda(x, pool_size, strides, padding):
    """Launcher of ``avgpool2d_fwd_{f32,f64}``: ``y`` (``(N, OH, OW, C)``) of average pooling NHWC ``x``.

    Each window's sum is divided by the number of its positions inside the input (padding is not counted).
    """
    kernel = _check_input(x, "avgpool2d_fwd")
    geometry = _geometry(kernel, x.shape, pool_size, strides, padding, "x")
    n, _, _, c, oh, ow = geometry[:6]
    y = launch.empty_output((n, oh, ow, c), x.dtype)
    vec = launch.vector_width(x.dtype, c, x, y)
    _launch_windowed(kernel, (x, y), geometry, y.size, vec)
    return y


@launch.float16_through_float32
def avg_pool2d_backward_cuda(dy, input_shape, pool_size, strides, padding):
    """Launcher of ``avgpool2d_bwd_{disjoint,rows}_{f32,f64}``: ``dx`` (``input_shape``) of average pooling.

    Each ``dx`` element sums ``dy / count`` over the windows that hold it.
    """
    kernel = _check_gradient(dy, "avgpool2d_bwd")
    geometry = _geometry(kernel, input_shape, pool_size, strides, padding)
    n, h, w, c, oh, ow = geometry[:6]
    launch.check_device_array(dy, kernel, "dy", shape=(n, oh, ow, c))
    dx = launch.empty_output((n, h, w, c), dy.dtype)
    _launch_backward(kernel, (dy, dx), geometry)
    return dx


# -------------------------------------------------------------------------------------- global pooling
def _global_block(hw, c):
    """``(TX, TY)``: TX channels (a power of two, at most 32) by TY slices of H*W (about 4+ positions each)."""
    tx = 1
    while tx < min(c, 32):
        tx *= 2
    ty = 1
    while ty * 2 <= min(32, max(1, hw // 4)) and tx * ty * 2 <= _GLOBAL_MAX_THREADS:
        ty *= 2
    return tx, ty


def _launch_global_reduction(kernel, arrays, n, hw, c):
    if n * c == 0:
        return
    tx, ty = _global_block(hw, c)
    tiles = -(-c // tx)
    get_kernel(_KERNEL_FILE, kernel)((n * tiles,), (tx, ty), tuple(arrays) + launch.int32s(n, hw, c))


@launch.float16_through_float32
def global_max_pool2d_forward_cuda(x):
    """Launcher of ``global_maxpool2d_fwd_{f32,f64}``: ``(y, argmax)``, both ``(N, C)``, of NHWC ``x``.

    ``argmax`` (int32) is ``h * W + w`` of each maximum over the H*W positions (the first one; the first
    NaN if any).
    """
    kernel = _check_input(x, "global_maxpool2d_fwd")
    n, h, w, c = _input_shape(kernel, x.shape, "x")
    y = launch.empty_output((n, c), x.dtype)
    argmax = launch.empty_output((n, c), numpy.int32)
    _launch_global_reduction(kernel, (x, y, argmax), n, h * w, c)
    return y, argmax


@launch.float16_through_float32
def global_max_pool2d_backward_cuda(dy, argmax, input_shape):
    """Launcher of ``global_maxpool2d_bwd_{f32,f64}``: ``dx`` (``input_shape``): dy at each argmax, 0 elsewhere."""
    kernel = _check_gradient(dy, "global_maxpool2d_bwd")
    n, h, w, c = _input_shape(kernel, input_shape, "input_shape")
    launch.check_device_array(dy, kernel, "dy", shape=(n, c))
    launch.check_device_array(argmax, kernel, "argmax", dtype=numpy.int32, shape=(n, c))
    dx = launch.empty_output((n, h, w, c), dy.dtype)
    if dx.size:
        vec = launch.vector_width(dy.dtype, c, dy, argmax, dx)
        grid, block = launch.grid_1d(dx.size // vec, _THREADS)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, (dy, argmax, dx) + launch.int32s(n, h * w, c, vec))
    return dx


@launch.float16_through_float32
def global_avg_pool2d_forward_cuda(x):
    """Launcher of ``global_avgpool2d_fwd_{f32,f64}``: ``y`` (``(N, C)``), the mean of NHWC ``x`` over H and W."""
    kernel = _check_input(x, "global_avgpool2d_fwd")
    n, h, w, c = _input_shape(kernel, x.shape, "x")
    y = launch.empty_output((n, c), x.dtype)
    _launch_global_reduction(kernel, (x, y), n, h * w, c)
    return y


@launch.float16_through_float32
def global_avg_pool2d_backward_cuda(dy, input_shape):
    """Launcher of ``global_avgpool2d_bwd_{f32,f64}``: ``dx`` (``input_shape``) = ``dy / (H * W)`` broadcast."""
    kernel = _check_gradient(dy, "global_avgpool2d_bwd")
    n, h, w, c = _input_shape(kernel, input_shape, "input_shape")
    launch.check_device_array(dy, kernel, "dy", shape=(n, c))
    dx = launch.empty_output((n, h, w, c), dy.dtype)
    if dx.size:
        vec = launch.vector_width(dy.dtype, c, dy, dx)
        grid, block = launch.grid_1d(dx.size // vec, _THREADS)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, (dy, dx) + launch.int32s(n, h * w, c, vec))
    return dx
