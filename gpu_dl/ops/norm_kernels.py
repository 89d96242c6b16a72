"""Launchers of ``kernels/normalization.cu``: layer and RMS normalization of the rows of a 2-D CuPy array.

The only place that knows the kernels' geometry. Every array is ``(rows, width)``
(x, y, dy, dx), ``(width,)`` (gamma, beta, scale and their gradients) or
``(rows,)`` (the saved mean and inv), C-contiguous, all of x's dtype, float32
or float64: ``gpu_dl.ops.normalization`` views a layer's input as rows of its
normalized trailing axes and sends only those here. Bad arguments raise a
TypeError or ValueError naming the kernel and the argument instead of
launching. The statistics saved for the backward (mean, inv) keep x's dtype:
float32 for float32 input, as the NumPy path keeps them.

float16 is not taken: both layers normalize in float32 at least (Keras's
LayerNormalization and RMSNormalization do), so a float16 input reaches these
launchers already cast.
"""
from __future__ import annotations

import math

import numpy

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "normalization.cu"
_CACHE = 4             # NORM_CACHE: vectors per thread held in registers
_MAX_THREADS = 1024    # NORM_MAX_THREADS
_WARP_ROWS = 4         # NORM_WARP_ROWS: rows per block when a warp takes a row
_PARAM_TY = 8          # NORM_PARAM_TY
_MIN_ROWS_PER_PART = 64
_FINISH_TY = 8          # NORM_FINISH_TY: a warp per column, 8 columns per block
_OPS = ("layernorm_fwd", "rmsnorm_fwd", "layernorm_bwd_data", "rmsnorm_bwd_data", "norm_bwd_params",
        "norm_bwd_params_finish")


def kernel_names():
    """The ``extern "C"`` kernels of normalization.cu (tests/test_kernel_compile.py checks the file defines these)."""
    return {f"{op}_{suffix}" for op in _OPS for suffix in ("f32", "f64")}


def _rows_of(x, kernel, argument="x"):
    """``(rows, width)`` of a checked 2-D input."""
    launch.check_device_array(x, kernel, argument)
    if x.ndim != 2:
        raise ValueError(f"{kernel}: `{argument}` must be 2-D (rows, width), got shape {tuple(x.shape)}.")
    rows, width = (int(d) for d in x.shape)
    if width < 1:
        raise ValueError(f"{kernel}: `{argument}` must have at least one column to normalize, got shape "
                         f"{tuple(x.shape)}.")
    return rows, width


def _row_geometry(rows, width, vec):
    """``grid, block`` of the row kernels: TX threads per row (a power of two in [32, 1024], enough for the row's
    vectors to fit NORM_CACHE per thread where they can), 4 rows per block when a warp takes a row."""
    per_thread = math.ceil(width / vec / _CACHE)
    threads = min(_MAX_THREADS, max(32, 1 << max(0, per_thread - 1).bit_length()))
    rows_per_block = _WARP_ROWS if threads == 32 else 1
    return (math.ceil(rows / rows_per_block),), (threads, rows_per_block)


def layernorm_forward(x, gamma, beta, epsilon, *, want_stats=True):
    """``(y, mean, inv)`` of the rows of ``x``: ``y = (x - mean) * (inv * gamma) + beta``,
    ``inv = 1 / sqrt(mean((x - mean)**2) + epsilon)``. ``gamma``/``beta`` None: ones/zeros. ``mean`` and
    ``inv`` are None unless ``want_stats`` (a training call keeps them for the backward)."""
    kernel = launch.kernel_name("layernorm_fwd", x)
    rows, width = _rows_of(x, kernel)
    launch.check_optional_device_array(gamma, kernel, "gamma", dtype=x.dtype, shape=(width,))
    launch.check_optional_device_array(beta, kernel, "beta", dtype=x.dtype, shape=(width,))
    y = launch.empty_output(x.shape, x.dtype)
    mean = launch.empty_output((rows,), x.dtype) if want_stats else None
    inv = launch.empty_output((rows,), x.dtype) if want_stats else None
    if rows:
        vec = launch.vector_width(x.dtype, width, x, y, gamma, beta)
        grid, block = _row_geometry(rows, width, vec)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, (
            x, launch.optional(gamma), launch.optional(beta), y, launch.optional(mean), launch.optional(inv),
            *launch.int32s(rows, width), launch.scalar(epsilon, x.dtype), numpy.int32(vec)))
    return y, mean, inv


def rmsnorm_forward(x, scale, epsilon, *, want_stats=True):
    """``(y, inv)`` of the rows of ``x``: ``y = x * inv * scale``, ``inv = 1 / sqrt(mean(x**2) + epsilon)``.
    ``scale`` None: ones. ``inv`` is None unless ``want_stats``."""
    kernel = launch.kernel_name("rmsnorm_fwd", x)
    rows, width = _rows_of(x, kernel)
    launch.check_optional_device_array(scale, kernel, "scale", dtype=x.dtype, shape=(width,))
    y = launch.empty_output(x.shape, x.dtype)
    inv = launch.empty_output((rows,), x.dtype) if want_stats else None
    if rows:
        vec = launch.vector_width(x.dtype, width, x, y, scale)
        grid, block = _row_geometry(rows, width, vec)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, (
            x, launch.optional(scale), y, launch.optional(inv), *launch.int32s(rows, width),
            launch.scalar(epsilon, x.dtype), numpy.int32(vec)))
    return y, inv


def _backward_inputs(kernel, dy, x, mean, inv):
    """Check the arrays every backward takes; ``(rows, width)``."""
    rows, width = _rows_of(x, kernel)
    launch.check_device_array(dy, kernel, "dy", dtype=x.dtype, shape=x.shape)
    launch.check_optional_device_array(mean, kernel, "mean", dtype=x.dtype, shape=(rows,))
    if inv is None:
        raise ValueError(f"{kernel}: `inv` (saved by the forward) is required.")
    launch.check_device_array(inv, kernel, "inv", dtype=x.dtype, shape=(rows,))
    return rows, width


def layernorm_backward_data(dy, x, mean, inv, gamma):
    """``dx`` of ``layernorm_forward`` from its saved ``mean`` and ``inv``; ``gamma`` None: ones."""
    kernel = launch.kernel_name("layernorm_bwd_data", x)
    if mean is None:
        raise ValueError(f"{kernel}: `mean` (saved by the forward) is required.")
    rows, width = _backward_inputs(kernel, dy, x, mean, inv)
    launch.check_optional_device_array(gamma, kernel, "gamma", dtype=x.dtype, shape=(width,))
    dx = launch.empty_output(x.shape, x.dtype)
    if rows:
        vec = launch.vector_width(x.dtype, width, dy, x, gamma, dx)
        grid, block = _row_geometry(rows, width, vec)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, (
            dy, x, launch.optional(gamma), mean, inv, dx, *launch.int32s(rows, width, vec)))
    return dx


def rmsnorm_backward_data(dy, x, inv, scale):
    """``dx`` of ``rmsnorm_forward`` from its saved ``inv``; ``scale`` None: ones."""
    kernel = launch.kernel_name("rmsnorm_bwd_data", x)
    rows, width = _backward_inputs(kernel, dy, x, None, inv)
    launch.check_optional_device_array(scale, kernel, "scale", dtype=x.dtype, shape=(width,))
    dx = launch.empty_output(x.shape, x.dtype)
    if rows:
        vec = launch.vector_width(x.dtype, width, dy, x, scale, dx)
        grid, block = _row_geometry(rows, width, vec)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, (
            dy, x, launch.optional(scale), inv, dx, *launch.int32s(rows, width, vec)))
    return dx


def rows_per_part(rows):
    """Rows each block of ``norm_bwd_params`` sums: about sqrt(rows), at least 64, a multiple of 8. From the
    shape alone, so the summation order (and the bits of the result) is the same on every device."""
    per_part = max(_MIN_ROWS_PER_PART, math.isqrt(max(rows, 0)))
    return -(-per_part // _PARAM_TY) * _PARAM_TY


def norm_backward_params(dy, x, mean, inv, *, want_gamma=True, want_beta=True):
    """``(dgamma, dbeta)``: column sums of ``dy * xhat`` and of ``dy`` over the rows, ``xhat = (x - mean) * inv``
    (``mean`` None: ``x * inv``, RMSNormalization's dscale). Each None unless wanted. One launch for at most
    ``rows_per_part(rows)`` rows, else a partial sum per part and a second launch adding them."""
    kernel = launch.kernel_name("norm_bwd_params", x)
    rows, width = _backward_inputs(kernel, dy, x, mean, inv)
    dgamma = launch.empty_output((width,), x.dtype) if want_gamma else None
    dbeta = launch.empty_output((width,), x.dtype) if want_beta else None
    if not (want_gamma or want_beta):
        return dgamma, dbeta
    if rows == 0:   # a sum over no rows
        for a in (dgamma, dbeta):
            if a is not None:
                a.fill(0)
        return dgamma, dbeta
    per_part = rows_per_part(rows)
    parts = math.ceil(rows / per_part)   # at most about sqrt(2**31): within gridDim.y's 65535
    if parts == 1:
        partial_gamma, partial_beta = dgamma, dbeta
    else:
        partial_gamma = launch.empty_output((parts, width), x.dtype) if want_gamma else None
        partial_beta = launch.empty_output((parts, width), x.dtype) if want_beta else None
    get_kernel(_KERNEL_FILE, kernel)((math.ceil(width / 32), parts), (32, _PARAM_TY), (
        dy, x, launch.optional(mean), inv, launch.optional(partial_gamma), launch.optional(partial_beta),
        *launch.int32s(rows, width, per_part)))
    if parts > 1:
        get_kernel(_KERNEL_FILE, launch.kernel_name("norm_bwd_params_finish", x))(
            (math.ceil(width / _FINISH_TY),), (32, _FINISH_TY), (
                launch.optional(partial_gamma), launch.optional(partial_beta), launch.optional(dgamma),
                launch.optional(dbeta), *launch.int32s(parts, width)))
    return dgamma, dbeta
