"""Launchers of ``kernels/groupnorm.cu``: group normalization over the last axis of a 3-D CuPy array.

The only place that knows the kernels' geometry. x, y, dy, dx are ``(samples,
positions, width)`` (a channels_last input with its spatial axes flattened,
positions 1 for ``(N, C)``), split into ``groups`` groups of ``width / groups``
consecutive channels; gamma, beta and their gradients ``(width,)``; the
per-(sample, group) statistics ``(samples, groups)``. C-contiguous, all of x's
dtype, float32 or float64: ``gpu_dl.ops.normalization`` sends only those here.
Bad arguments raise a TypeError or ValueError naming the kernel and the
argument instead of launching.

float16 is not taken: GroupNormalization normalizes in float32 (as Keras's
does), so a float16 input reaches these launchers already cast.
"""
from __future__ import annotations

import math
import numbers

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "groupnorm.cu"
_THREADS = 256         # GN_THREADS: threads of the per-pair kernels and of the element-wise passes
_CHUNK = 8             # GN_CHUNK: values each thread loads at once
_TY = 8                # GN_TY: thread rows of gn_bwd_params
_FINISH_TY = 8         # GN_FINISH_TY: warps per block of the finishing kernels
_MAX_PARTS = 65535     # gridDim.y
_MIN_ROWS_PER_PART = 64
_OPS = ("gn_fwd_stats", "gn_fwd_finish", "gn_apply", "gn_bwd_params", "gn_bwd_params_finish", "gn_bwd_stats",
        "gn_bwd_finish", "gn_bwd_data")


def kernel_names():
    """The ``extern "C"`` kernels of groupnorm.cu (tests/test_kernel_compile.py checks the file defines these)."""
    return {f"{op}_{suffix}" for op in _OPS for suffix in ("f32", "f64")}


def positions_per_part(positions, group_width):
    """Positions each block of ``gn_fwd_stats``/``gn_bwd_stats`` takes of one (sample, group): enough for a full
    chunk per thread (256 x 8 values), and few enough parts for gridDim.y. From the shape alone, so the order of
    every merge (and the bits of the result) is the same on every device."""
    return max(-(-_THREADS * _CHUNK // group_width), -(-positions // _MAX_PARTS), 1)


def rows_per_part(rows):
    """Rows each block of ``gn_bwd_params`` takes: about sqrt(rows), at least 64, a multiple of 64."""
    per_part = max(_MIN_ROWS_PER_PART, math.isqrt(max(rows, 0)))
    step = _TY * _CHUNK
    return -(-per_part // step) * step


def _shape_of(x, kernel, groups):
    """``(samples, positions, width, group_width)`` of a checked 3-D input split into ``groups``."""
    launch.check_device_array(x, kernel, "x")
    if x.ndim != 3:
        raise ValueError(f"{kernel}: `x` must be 3-D (samples, positions, channels), got shape {tuple(x.shape)}.")
    samples, positions, width = (int(d) for d in x.shape)
    if min(samples, positions, width) < 1:
        raise ValueError(f"{kernel}: `x` must have at least one sample, position and channel (statistics of no "
                         f"values are undefined), got shape {tuple(x.shape)}.")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or not 1 <= groups <= width \
            or width % groups:
        raise ValueError(f"{kernel}: `groups` must be a positive integer dividing the {width} channels, "
                         f"got {groups!r}.")
    return samples, positions, width, width // int(groups)


def _required(a, kernel, argument, dtype, shape):
    if a is None:
        raise ValueError(f"{kernel}: `{argument}` (saved by the forward) is required.")
    return launch.check_device_array(a, kernel, argument, dtype=dtype, shape=shape)


def _pair_geometry(samples, groups, positions, group_width):
    per_part = positions_per_part(positions, group_width)
    parts = math.ceil(positions / per_part)
    return per_part, parts, (samples * groups, parts), (_THREADS,)


def _finish_grid(count):
    return (math.ceil(count / _FINISH_TY),), (32, _FINISH_TY)


def groupnorm_forward(x, groups, gamma, beta, epsilon):
    """``(y, mean, inv)``: each (sample, group)'s mean and biased variance over its positions and channels,
    ``inv = 1 / sqrt(variance + epsilon)`` (both ``(samples, groups)``), ``y = (x - mean) * (inv * gamma) +
    beta``. ``gamma``/``beta`` None: ones/zeros."""
    kernel = launch.kernel_name("gn_fwd_stats", x)
    samples, positions, width, group_width = _shape_of(x, kernel, groups)
    launch.check_optional_device_array(gamma, kernel, "gamma", dtype=x.dtype, shape=(width,))
    launch.check_optional_device_array(beta, kernel, "beta", dtype=x.dtype, shape=(width,))
    per_part, parts, grid, block = _pair_geometry(samples, groups, positions, group_width)
    part_mean = launch.empty_output((samples * groups, parts), x.dtype)
    part_m2 = launch.empty_output((samples * groups, parts), x.dtype)
    get_kernel(_KERNEL_FILE, kernel)(grid, block, (x, part_mean, part_m2,
                                                   *launch.int32s(positions, width, group_width, per_part)))
    mean = launch.empty_output((samples, groups), x.dtype)
    inv = launch.empty_output((samples, groups), x.dtype)
    grid, block = _finish_grid(samples * groups)
    get_kernel(_KERNEL_FILE, launch.kernel_name("gn_fwd_finish", x))(grid, block, (
        part_mean, part_m2, mean, inv, *launch.int32s(samples * groups, parts, positions, group_width, per_part),
        launch.scalar(epsilon, x.dtype)))
    y = launch.empty_output(x.shape, x.dtype)
    vec = launch.vector_width(x.dtype, width, x, gamma, beta, y)
    grid, block = launch.grid_1d(x.size // vec, _THREADS)
    get_kernel(_KERNEL_FILE, launch.kernel_name("gn_apply", x))(grid, block, (
        x, mean, inv, launch.optional(gamma), launch.optional(beta), y,
        *launch.int32s(samples, positions, width, group_width, vec)))
    return y, mean, inv


def groupnorm_backward(dy, x, groups, mean, inv, gamma, *, need_input_grad=True, want_gamma=True, want_beta=True):
    """``(dx, dgamma, dbeta)`` of ``groupnorm_forward`` from its ``mean`` and ``inv``: ``dgamma = sum dy * xhat``
    and ``dbeta = sum dy`` per channel over samples and positions (each None unless wanted), and per (sample,
    group) ``dx = inv * (g - mean(g) - xhat * mean(g * xhat))`` with ``g = dy * gamma`` (None unless
    ``need_input_grad``). ``gamma`` None: ones."""
    kernel = launch.kernel_name("gn_bwd_stats", x)
    samples, positions, width, group_width = _shape_of(x, kernel, groups)
    launch.check_device_array(dy, kernel, "dy", dtype=x.dtype, shape=x.shape)
    _required(mean, kernel, "mean", x.dtype, (samples, groups))
    _required(inv, kernel, "inv", x.dtype, (samples, groups))
    launch.check_optional_device_array(gamma, kernel, "gamma", dtype=x.dtype, shape=(width,))
    dgamma = dbeta = dx = None
    if want_gamma or want_beta:
        rows = samples * positions
        per_part = rows_per_part(rows)
        parts = math.ceil(rows / per_part)
        part_dgamma = launch.empty_output((parts, width), x.dtype)
        part_dbeta = launch.empty_output((parts, width), x.dtype)
        get_kernel(_KERNEL_FILE, launch.kernel_name("gn_bwd_params", x))((math.ceil(width / 32), parts), (32, _TY), (
            dy, x, mean, inv, part_dgamma, part_dbeta, *launch.int32s(rows, positions, width, group_width, per_part)))
        dgamma = launch.empty_output((width,), x.dtype) if want_gamma else None
        dbeta = launch.empty_output((width,), x.dtype) if want_beta else None
        grid, block = _finish_grid(width)
        get_kernel(_KERNEL_FILE, launch.kernel_name("gn_bwd_params_finish", x))(grid, block, (
            part_dgamma, part_dbeta, launch.optional(dgamma), launch.optional(dbeta), *launch.int32s(parts, width)))
    if not need_input_grad:
        return dx, dgamma, dbeta
    per_part, parts, grid, block = _pair_geometry(samples, groups, positions, group_width)
    part_g = launch.empty_output((samples * groups, parts), x.dtype)
    part_gx = launch.empty_output((samples * groups, parts), x.dtype)
    get_kernel(_KERNEL_FILE, kernel)(grid, block, (dy, x, launch.optional(gamma), mean, inv, part_g, part_gx,
                                                   *launch.int32s(positions, width, group_width, per_part)))
    centre = launch.empty_output((samples, groups), x.dtype)
    spread = launch.empty_output((samples, groups), x.dtype)
    grid, block = _finish_grid(samples * groups)
    get_kernel(_KERNEL_FILE, launch.kernel_name("gn_bwd_finish", x))(grid, block, (
        part_g, part_gx, centre, spread, *launch.int32s(samples * groups, parts, positions * group_width)))
    dx = launch.empty_output(x.shape, x.dtype)
    vec = launch.vector_width(x.dtype, width, dy, x, gamma, dx)
    grid, block = launch.grid_1d(x.size // vec, _THREADS)
    get_kernel(_KERNEL_FILE, launch.kernel_name("gn_bwd_data", x))(grid, block, (
        dy, x, launch.optional(gamma), mean, inv, centre, spread, dx,
        *launch.int32s(samples, positions, width, group_width, vec)))
    return dx, dgamma, dbeta
