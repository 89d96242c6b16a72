"""Launchers of ``kernels/batchnorm.cu``: batch normalization over the last axis of a 2-D CuPy array.

The only place that knows the kernels' geometry. Every array is ``(rows, width)``
(x, y, dy, dx: rows = N*H*W... of a channels_last input, width = its channels)
or ``(width,)`` (gamma, beta, the statistics, the moving statistics and the
gradients of gamma and beta), C-contiguous, all of x's dtype, float32 or
float64: ``gpu_dl.ops.normalization`` views a layer's input as rows of
channels and sends only those here. Bad arguments raise a TypeError or
ValueError naming the kernel and the argument instead of launching.

float16 is not taken: BatchNormalization normalizes in float32 at least (as
Keras's does), so a float16 input reaches these launchers already cast.
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "batchnorm.cu"
_TY = 8                # BN_TY: thread rows of the per-part kernels
_CHUNK = 8             # BN_CHUNK: rows each thread loads at once
_FINISH_TY = 8         # BN_FINISH_TY: channels (warps) per block of the finishing kernels
_THREADS = 256         # BN_THREADS
_MIN_ROWS_PER_PART = 64
_OPS = ("bn_fwd_stats", "bn_fwd_finish", "bn_scale", "bn_apply", "bn_bwd_params", "bn_bwd_finish", "bn_bwd_data")


def kernel_names():
    """The ``extern "C"`` kernels of batchnorm.cu (tests/test_kernel_compile.py checks the file defines these)."""
    return {f"{op}_{suffix}" for op in _OPS for suffix in ("f32", "f64")}


def rows_per_part(rows):
    """Rows each block of ``bn_fwd_stats`` and ``bn_bwd_params`` takes: about sqrt(rows), at least 64, a multiple
    of 64 (8 thread rows of 8-row chunks). From the shape alone, so the order of every sum and merge (and the
    bits of the result) is the same on every device."""
    per_part = max(_MIN_ROWS_PER_PART, math.isqrt(max(rows, 0)))
    step = _TY * _CHUNK
    return -(-per_part // step) * step


def _rows_of(x, kernel, argument="x"):
    """``(rows, width)`` of a checked 2-D input with at least one row and one channel."""
    launch.check_device_array(x, kernel, argument)
    if x.ndim != 2:
        raise ValueError(f"{kernel}: `{argument}` must be 2-D (rows, channels), got shape {tuple(x.shape)}.")
    rows, width = (int(d) for d in x.shape)
    if rows < 1 or width < 1:
        raise ValueError(f"{kernel}: `{argument}` must have at least one row and one channel (batch statistics "
                         f"of no values are undefined), got shape {tuple(x.shape)}.")
    return rows, width


def _per_part_geometry(rows, width):
    per_part = rows_per_part(rows)
    parts = math.ceil(rows / per_part)
    return per_part, parts, (math.ceil(width / 32), parts), (32, _TY)


def _finish_geometry(width):
    return (math.ceil(width / _FINISH_TY),), (32, _FINISH_TY)


def _apply(x, mean, scale, beta):
    """``y = (x - mean) * scale + beta`` in one element-wise pass."""
    kernel = launch.kernel_name("bn_apply", x)
    rows, width = x.shape
    y = launch.empty_output(x.shape, x.dtype)
    vec = launch.vector_width(x.dtype, width, x, mean, scale, beta, y)
    grid, block = launch.grid_1d(rows * width // vec, _THREADS)
    get_kernel(_KERNEL_FILE, kernel)(grid, block, (
        x, mean, scale, launch.optional(beta), y, *launch.int32s(rows, width, vec)))
    return y


def batchnorm_forward_train(x, gamma, beta, epsilon, *, moving_mean=None, moving_variance=None, momentum=0.99):
    """``(y, mean, variance, inv)`` of a training call: each channel's mean and biased variance over the rows,
    ``inv = 1 / sqrt(variance + epsilon)``, ``y = (x - mean) * (inv * gamma) + beta``. ``gamma``/``beta`` None:
    ones/zeros. ``moving_mean``/``moving_variance``, where given, are updated in place as Keras updates them:
    ``moving * momentum + batch * (1 - momentum)``."""
    kernel = launch.kernel_name("bn_fwd_stats", x)
    rows, width = _rows_of(x, kernel)
    launch.check_optional_device_array(gamma, kernel, "gamma", dtype=x.dtype, shape=(width,))
    launch.check_optional_device_array(beta, kernel, "beta", dtype=x.dtype, shape=(width,))
    launch.check_optional_device_array(moving_mean, kernel, "moving_mean", dtype=x.dtype, shape=(width,))
    launch.check_optional_device_array(moving_variance, kernel, "moving_variance", dtype=x.dtype, shape=(width,))
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise ValueError(f"{kernel}: `momentum` must be a number in [0, 1], got {momentum!r}.")
    per_part, parts, grid, block = _per_part_geometry(rows, width)
    part_mean = launch.empty_output((parts, width), x.dtype)
    part_m2 = launch.empty_output((parts, width), x.dtype)
    get_kernel(_KERNEL_FILE, kernel)(grid, block, (x, part_mean, part_m2, *launch.int32s(rows, width, per_part)))
    mean, variance, inv, scale = (launch.empty_output((width,), x.dtype) for _ in range(4))
    grid, block = _finish_geometry(width)
    get_kernel(_KERNEL_FILE, launch.kernel_name("bn_fwd_finish", x))(grid, block, (
        part_mean, part_m2, launch.optional(gamma), mean, variance, inv, scale, launch.optional(moving_mean),
        launch.optional(moving_variance), *launch.int32s(rows, width, per_part), launch.scalar(epsilon, x.dtype),
        launch.scalar(momentum, x.dtype), launch.scalar(1.0 - momentum, x.dtype)))
    return _apply(x, mean, scale, beta), mean, variance, inv


def batchnorm_forward_inference(x, mean, variance, gamma, beta, epsilon):
    """``(y, inv)`` with given (moving) statistics: ``inv = 1 / sqrt(variance + epsilon)``,
    ``y = (x - mean) * (inv * gamma) + beta``, rounded step by step as the NumPy path rounds it."""
    kernel = launch.kernel_name("bn_scale", x)
    rows, width = _rows_of(x, kernel)
    for argument, a in (("mean", mean), ("variance", variance)):
        if a is None:
            raise ValueError(f"{kernel}: `{argument}` is required.")
        launch.check_device_array(a, kernel, argument, dtype=x.dtype, shape=(width,))
    launch.check_optional_device_array(gamma, kernel, "gamma", dtype=x.dtype, shape=(width,))
    launch.check_optional_device_array(beta, kernel, "beta", dtype=x.dtype, shape=(width,))
    inv = launch.empty_output((width,), x.dtype)
    scale = launch.empty_output((width,), x.dtype)
    get_kernel(_KERNEL_FILE, kernel)((math.ceil(width / _THREADS),), (_THREADS,), (
        variance, launch.optional(gamma), inv, scale, numpy.int32(width), launch.scalar(epsilon, x.dtype)))
    return _apply(x, mean, scale, beta), inv


def batchnorm_backward(dy, x, mean, inv, gamma, *, need_input_grad=True):
    """``(dx, dgamma, dbeta)`` of ``batchnorm_forward_train`` from its ``mean`` and ``inv``: ``dgamma = sum dy *
    xhat``, ``dbeta = sum dy`` over the rows (``xhat = (x - mean) * inv``), ``dx = inv * gamma / M * (M * dy -
    dbeta - xhat * dgamma)`` with M = rows (None unless ``need_input_grad``). ``gamma`` None: ones."""
    kernel = launch.kernel_name("bn_bwd_params", x)
    rows, width = _rows_of(x, kernel)
    launch.check_device_array(dy, kernel, "dy", dtype=x.dtype, shape=x.shape)
    for argument, a in (("mean", mean), ("inv", inv)):
        if a is None:
            raise ValueError(f"{kernel}: `{argument}` (saved by the forward) is required.")
        launch.check_device_array(a, kernel, argument, dtype=x.dtype, shape=(width,))
    launch.check_optional_device_array(gamma, kernel, "gamma", dtype=x.dtype, shape=(width,))
    per_part, parts, grid, block = _per_part_geometry(rows, width)
    part_dxm = launch.empty_output((parts, width), x.dtype)
    part_dbeta = launch.empty_output((parts, width), x.dtype)
    get_kernel(_KERNEL_FILE, kernel)(grid, block, (dy, x, mean, part_dxm, part_dbeta,
                                                   *launch.int32s(rows, width, per_part)))
    dgamma = launch.empty_output((width,), x.dtype)
    dbeta = launch.empty_output((width,), x.dtype)
    grid, block = _finish_geometry(width)
    get_kernel(_KERNEL_FILE, launch.kernel_name("bn_bwd_finish", x))(grid, block, (
        part_dxm, part_dbeta, inv, dgamma, dbeta, *launch.int32s(parts, width)))
    if not need_input_grad:
        return None, dgamma, dbeta
    dx = launch.empty_output(x.shape, x.dtype)
    vec = launch.vector_width(x.dtype, width, dy, x, mean, inv, gamma, dgamma, dbeta, dx)
    grid, block = launch.grid_1d(rows * width // vec, _THREADS)
    get_kernel(_KERNEL_FILE, launch.kernel_name("bn_bwd_data", x))(grid, block, (
        dy, x, mean, inv, launch.optional(gamma), dgamma, dbeta, dx, *launch.int32s(rows, width),
        launch.scalar(1.0 / rows, x.dtype), numpy.int32(vec)))
    return dx, dgamma, dbeta
