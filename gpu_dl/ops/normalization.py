"""Batch and layer normalization: forward and analytic backward, written once for NumPy and CuPy arrays.

Shapes: ``x`` of any rank; ``stat_axes`` the axes the mean and variance are
taken over (batch norm: all but the feature axis; layer norm: the normalized
axes); ``gamma`` and ``beta`` already shaped to broadcast against ``x`` (size 1
along ``stat_axes`` for batch norm, along the other axes for layer norm), or
None. Every array keeps ``x``'s dtype.

Numerics follow Keras 3: the output is ``(x - mean) * (gamma / sqrt(variance +
epsilon)) + beta`` with the biased variance (computed here in two passes, the
mean of squared deviations, which Keras's E[x^2] - E[x]^2 equals to rounding);
a mask of padded steps leaves them out of the statistics as Keras's masked
moments do: sums over the kept positions divided by their count plus 1e-7
(Keras's backend epsilon), the masked positions still normalized with those
statistics.

The backward through batch statistics is the standard one: with ``xhat`` the
normalized input, ``dxhat = dy * gamma``, ``c`` the count and ``w`` the kept
positions (all of them without a mask),
``dx = inv * (dxhat - w * (sum(dxhat) + xhat * sum(dxhat * xhat)) / c)``, plus
the term Keras's 1e-7 in the masked count leaves (the kept deviations then sum
to ``mean * 1e-7`` instead of zero). Through fixed statistics (inference) it
is ``dx = dxhat * inv``.

``l2_normalize`` is Keras's ``ops.normalize(x, axis, order=2, epsilon)``, which
UnitNormalization calls with epsilon 1e-12: ``x * min(1 / sqrt(sum(x**2)),
1 / epsilon)`` over the given axes, so an all-zero slice stays zero. Its
backward, with ``r`` that factor: ``dx = r * dy - x * r**3 * sum(x * dy)``
where the cap is not reached, ``r * dy`` where it is (``r`` is constant there).

On the GPU, layer normalization and RMS normalization over the trailing axes
of a C-contiguous float32/float64 CuPy array run as the fused kernels of
``kernels/normalization.cu`` (``layer_norm_fused`` and ``rms_norm_fused``
below, chosen by ``fused_rows_apply``): one launch for the forward, one for
dx and one or two for the parameters' gradients. Batch normalization over
the last axis of such an array (channels_last) runs as those of
``kernels/batchnorm.cu`` (``batch_norm_fused`` and its inference and
backward forms, chosen by ``fused_channels_apply``): three launches for a
training forward (the moving statistics updated in the second), two for an
inference forward, three for the backward. Group normalization over the
last axis of such an array runs as those of ``kernels/groupnorm.cu``
(``group_norm_fused``, also chosen by ``fused_channels_apply``): three
launches for the forward, two for the parameters' gradients and three for
dx. Everything else (NumPy, other
axes, strided views, masks, per-step statistics, Keras's deprecated
``rms_scaling``) runs the array operations here, which are also the
reference the kernels are tested against.
"""
from __future__ import annotations

import numpy

from ..backend import array_module
# by name, not `from . import norm_kernels`: that asks the package for the attribute first, whose __getattr__
# (Keras's ops) imports the layers, which import this module
from .batchnorm_kernels import batchnorm_backward, batchnorm_forward_inference, batchnorm_forward_train
from .groupnorm_kernels import groupnorm_backward, groupnorm_forward
from .norm_kernels import (layernorm_backward_data, layernorm_forward, norm_backward_params,
                           rmsnorm_backward_data, rmsnorm_forward)
from .device_reduction import is_cupy, sum_axes

# Keras's backend.epsilon(), which its masked moments add to the count of kept positions.
MASKED_COUNT_EPSILON = 1e-7


class Statistics:
    """What a forward pass kept for its backward: the input, its mean, 1/sqrt(variance + epsilon), and for a
    masked batch the kept positions (booleans broadcastable to ``x``), their count plus 1e-7, and that 1e-7
    as it survived rounding in ``x``'s dtype."""

    __slots__ = ("x", "mean", "inv", "kept", "count", "count_excess")

    def __init__(self, x, mean, inv, kept=None, count=None, count_excess=None):
        self.x, self.mean, self.inv = x, mean, inv
        self.kept, self.count, self.count_excess = kept, count, count_excess


def moments(x, stat_axes, kept=None):
    """``(mean, variance, count, count_excess)`` over ``stat_axes`` (kept dimensions).

    Without ``kept``, ``count`` and ``count_excess`` are None. With ``kept`` (booleans broadcastable to
    ``x``), only those positions count, as Keras's masked moments count them.
    """
    xp = array_module(x)
    if kept is None:
        mean = x.mean(axis=stat_axes, keepdims=True)
        centred = x - mean
        return mean, (centred * centred).mean(axis=stat_axes, keepdims=True), None, None
    kept = xp.broadcast_to(kept, x.shape)
    n = kept.sum(axis=stat_axes, keepdims=True, dtype=x.dtype)
    count = n + x.dtype.type(MASKED_COUNT_EPSILON)
    mean = xp.where(kept, x, 0).sum(axis=stat_axes, keepdims=True) / count
    centred = xp.where(kept, x - mean, 0)
    variance = (centred * centred).sum(axis=stat_axes, keepdims=True) / count
    return mean, variance, count, count - n


def normalize(x, mean, variance, epsilon, gamma=None, beta=None):
    """``(y, inv)``: ``y = (x - mean) * (inv * gamma) + beta`` with ``inv = 1 / sqrt(variance + epsilon)``."""
    xp = array_module(x)
    inv = 1 / xp.sqrt(variance + x.dtype.type(epsilon))
    scale = inv if gamma is None else inv * gamma
    y = (x - mean) * scale
    if beta is not None:
        y += beta
    return y, inv


def batch_norm_train(x, stat_axes, epsilon, gamma=None, beta=None, kept=None):
    """Normalize with the statistics of ``x`` itself: ``(y, mean, variance, Statistics)``."""
    mean, variance, count, excess = moments(x, stat_axes, kept)
    y, inv = normalize(x, mean, variance, epsilon, gamma, beta)
    return y, mean, variance, Statistics(x, mean, inv, kept, count, excess)


def batch_norm_inference(x, mean, variance, epsilon, gamma=None, beta=None):
    """Normalize with given (moving) statistics: ``(y, Statistics)``."""
    y, inv = normalize(x, mean, variance, epsilon, gamma, beta)
    return y, Statistics(x, mean, inv)


def normalize_backward(dy, saved, stat_axes, param_axes, gamma=None, *, through_statistics,
                       need_input_grad=True, need_param_grads=True):
    """``(dx, dgamma, dbeta)`` of ``normalize``; dgamma and dbeta summed over ``param_axes`` (kept
    dimensions), dx None unless ``need_input_grad``, dgamma and dbeta None unless ``need_param_grads``.

    ``through_statistics``: the mean and variance were the input's own (training), so the gradient flows
    through them too; otherwise they were constants (inference, a frozen batch norm).
    """
    x, mean, inv = saved.x, saved.mean, saved.inv
    xhat = (x - mean) * inv
    dgamma = dbeta = dx = None
    if need_param_grads:
        # over the leading (batch) axes: split on the GPU, where CuPy would run a few long blocks
        dgamma = sum_axes(dy * xhat, param_axes, keepdims=True)
        dbeta = sum_axes(dy, param_axes, keepdims=True)
    if not need_input_grad:
        return dx, dgamma, dbeta
    dxhat = dy if gamma is None else dy * gamma
    if not through_statistics:
        return dxhat * inv, dgamma, dbeta
    if saved.kept is None:
        # Averages over the statistics' axes: the unmasked count is exact.
        centre = dxhat.mean(axis=stat_axes, keepdims=True)
        spread = (dxhat * xhat).mean(axis=stat_axes, keepdims=True)
        return inv * (dxhat - centre - xhat * spread), dgamma, dbeta
    xp = array_module(x)
    count = saved.count
    total = dxhat.sum(axis=stat_axes, keepdims=True)
    spread = (dxhat * xhat).sum(axis=stat_axes, keepdims=True)
    # d(variance)/d(mean) = -2 * sum(kept * (x - mean)) / count = -2 * mean * count_excess / count.
    through_mean = inv * inv * spread * mean * saved.count_excess / count - inv * total
    per_kept = (through_mean - inv * spread * xhat) / count
    return dxhat * inv + xp.where(saved.kept, per_kept, 0), dgamma, dbeta


def rms_scale(x, stat_axes, epsilon, gamma=None):
    """Keras's deprecated ``rms_scaling`` layer norm: ``(y, Statistics)`` with ``y = x * inv * gamma`` and
    ``inv = 1 / sqrt(variance + epsilon)`` (the variance about the mean; ``x`` itself is not centred)."""
    xp = array_module(x)
    mean, variance, _, _ = moments(x, stat_axes)
    inv = 1 / xp.sqrt(variance + x.dtype.type(epsilon))
    y = x * inv if gamma is None else x * (inv * gamma)
    return y, Statistics(x, mean, inv)


def rms_scale_backward(dy, saved, stat_axes, param_axes, gamma=None, *, need_input_grad=True,
                       need_param_grads=True):
    """``(dx, dgamma)`` of ``rms_scale``; dgamma summed over ``param_axes`` (kept dimensions)."""
    x, mean, inv = saved.x, saved.mean, saved.inv
    dgamma = dx = None
    if need_param_grads:
        dgamma = sum_axes(dy * (x * inv), param_axes, keepdims=True)
    if need_input_grad:
        dz = dy if gamma is None else dy * gamma
        # y = x * inv: d/dx through x, and through inv by way of the variance, whose gradient is 2 (x - mean) / n.
        spread = (dz * x).mean(axis=stat_axes, keepdims=True)
        dx = inv * (dz - (x - mean) * (inv * inv) * spread)
    return dx, dgamma


def l2_normalize(x, axes, epsilon):
    """``(y, inv)``: ``y = x * inv`` with ``inv = min(1 / sqrt(sum(x**2, axes)), 1 / epsilon)`` (kept dimensions)."""
    xp = array_module(x)
    square_sum = (x * x).sum(axis=axes, keepdims=True)
    with numpy.errstate(divide="ignore"):       # a zero slice: 1/0 = inf, then capped
        inv = 1 / xp.sqrt(square_sum)
    inv = xp.minimum(inv, _l2_cap(x.dtype, epsilon))
    # In float16 the cap is inf, as in Keras, and a zero slice comes out NaN (0 * inf) as it does there.
    with numpy.errstate(invalid="ignore"):
        return x * inv, inv


def _l2_cap(dtype, epsilon):
    """``1 / epsilon`` in ``dtype``, as Keras converts it: inf where it overflows the type (1e12 in float16),
    made without the overflow warning of a plain cast."""
    cap = 1 / epsilon
    return dtype.type(cap) if cap <= float(numpy.finfo(dtype).max) else dtype.type(numpy.inf)


def l2_normalize_backward(dy, x, inv, axes, epsilon):
    """The gradient of ``l2_normalize`` with respect to ``x``, from its ``inv``."""
    xp = array_module(x)
    # Where the cap holds, inv does not depend on x.
    cube = xp.where(inv < _l2_cap(x.dtype, epsilon), inv * inv * inv, 0)
    return inv * dy - x * (cube * (x * dy).sum(axis=axes, keepdims=True))


def rms_normalize(x, axes, epsilon, scale=None):
    """Keras 3's ``ops.rms_normalization``: ``(y, inv)`` with ``y = x * inv * scale`` and
    ``inv = 1 / sqrt(mean(x**2, axes) + epsilon)`` (kept dimensions); ``x`` is not centred."""
    xp = array_module(x)
    inv = 1 / xp.sqrt((x * x).mean(axis=axes, keepdims=True) + x.dtype.type(epsilon))
    y = x * inv if scale is None else x * inv * scale
    return y, inv


def rms_normalize_backward(dy, x, inv, axes, param_axes, scale=None, *, need_input_grad=True,
                           need_param_grads=True):
    """``(dx, dscale)`` of ``rms_normalize``; dscale summed over ``param_axes`` (kept dimensions).

    With ``m = mean(x**2)``, ``d inv / d x = -inv**3 * x / n``, so ``dx = inv * dz - x * inv**3 * mean(dz * x)``
    where ``dz = dy * scale``."""
    dx = dscale = None
    if need_param_grads:
        dscale = sum_axes(dy * (x * inv), param_axes, keepdims=True)
    if need_input_grad:
        dz = dy if scale is None else dy * scale
        dx = inv * dz - x * ((inv * inv * inv) * (dz * x).mean(axis=axes, keepdims=True))
    return dx, dscale


# ------------------------------------------------------------------ fused kernels over the trailing axes

class RowStatistics:
    """What a fused forward kept for its backward: the input ``x`` itself (not a reshaped view, so memory
    reports that count arrays by identity count it once), the per-row ``mean`` (None for RMS normalization)
    and ``inv`` (``(rows,)``), and the ``width`` of a row."""

    __slots__ = ("x", "mean", "inv", "width")

    def __init__(self, x, mean, inv, width):
        self.x, self.mean, self.inv, self.width = x, mean, inv, width

    def rows(self, a):
        """``a`` (``x`` or an array of its shape) as the ``(rows, width)`` the kernels take, contiguous, in
        ``x``'s dtype."""
        import cupy
        return cupy.ascontiguousarray(a, dtype=self.x.dtype).reshape(-1, self.width)


def fused_rows_apply(x, axes, *params):
    """Whether the fused kernels take a normalization of ``x`` over ``axes``: a CuPy float32/float64 array,
    C-contiguous, ``axes`` its trailing axes (so each normalized slice is one contiguous row) and not empty,
    and the parameters (None or arrays) of its dtype."""
    if not is_cupy(x) or x.dtype not in (numpy.float32, numpy.float64) or not x.flags.c_contiguous:
        return False
    axes = tuple(sorted(a % x.ndim for a in axes))
    if not axes or axes != tuple(range(x.ndim - len(axes), x.ndim)) or 0 in x.shape[axes[0]:]:
        return False
    return all(p is None or p.dtype == x.dtype for p in params)


def _as_rows(x, axes):
    width = 1
    for a in axes:
        width *= x.shape[a]
    return x.reshape(-1, width)


def _flat(param):
    """A parameter (any shape spanning the normalized axes) as the contiguous ``(width,)`` the kernels read."""
    if param is None:
        return None
    import cupy
    return cupy.ascontiguousarray(param.reshape(-1))


def layer_norm_fused(x, axes, epsilon, gamma=None, beta=None, *, want_stats=True):
    """``(y, RowStatistics or None)``: ``batch_norm_train``'s layer normalization of ``x`` over its trailing
    ``axes`` in one kernel launch (``fused_rows_apply`` must hold)."""
    rows = _as_rows(x, axes)
    y, mean, inv = layernorm_forward(rows, _flat(gamma), _flat(beta), epsilon, want_stats=want_stats)
    return y.reshape(x.shape), RowStatistics(x, mean, inv, rows.shape[1]) if want_stats else None


def layer_norm_fused_backward(dy, saved, gamma=None, *, need_input_grad=True, want_gamma=True, want_beta=True):
    """``(dx, dgamma, dbeta)`` of ``layer_norm_fused`` (``normalize_backward``'s, through the statistics);
    dgamma and dbeta flat ``(width,)``, each None unless wanted, dx None unless ``need_input_grad``."""
    dy, x = saved.rows(dy), saved.rows(saved.x)
    dgamma, dbeta = norm_backward_params(dy, x, saved.mean, saved.inv, want_gamma=want_gamma,
                                                      want_beta=want_beta)
    dx = None
    if need_input_grad:
        dx = layernorm_backward_data(dy, x, saved.mean, saved.inv, _flat(gamma))
        dx = dx.reshape(saved.x.shape)
    return dx, dgamma, dbeta


def rms_norm_fused(x, axes, epsilon, scale=None, *, want_stats=True):
    """``(y, RowStatistics or None)``: ``rms_normalize`` of ``x`` over its trailing ``axes`` in one kernel launch
    (``fused_rows_apply`` must hold)."""
    rows = _as_rows(x, axes)
    y, inv = rmsnorm_forward(rows, _flat(scale), epsilon, want_stats=want_stats)
    return y.reshape(x.shape), RowStatistics(x, None, inv, rows.shape[1]) if want_stats else None


def rms_norm_fused_backward(dy, saved, scale=None, *, need_input_grad=True, need_param_grads=True):
    """``(dx, dscale)`` of ``rms_norm_fused``; dscale flat ``(width,)`` or None, dx None unless wanted."""
    dy, x = saved.rows(dy), saved.rows(saved.x)
    dscale = None
    if need_param_grads:
        dscale, _ = norm_backward_params(dy, x, None, saved.inv, want_beta=False)
    dx = None
    if need_input_grad:
        dx = rmsnorm_backward_data(dy, x, saved.inv, _flat(scale)).reshape(saved.x.shape)
    return dx, dscale


# ----------------------------------------------------------- fused batch normalization over the last axis

class ChannelStatistics:
    """What a fused batch-norm training forward kept for its backward: the input ``x`` itself (counted once by
    memory reports, as ``RowStatistics``), and its per-channel ``mean`` and ``inv`` (``(channels,)``)."""

    __slots__ = ("x", "mean", "inv")

    def __init__(self, x, mean, inv):
        self.x, self.mean, self.inv = x, mean, inv


def fused_channels_apply(x, axis, *params):
    """Whether the batch-norm kernels take ``x`` normalized per ``axis``: a non-empty CuPy float32/float64 array,
    C-contiguous, ``axis`` its last (channels_last: each row of channels contiguous), and the parameters (None
    or arrays) of its dtype."""
    if not is_cupy(x) or x.dtype not in (numpy.float32, numpy.float64) or not x.flags.c_contiguous:
        return False
    if x.ndim < 2 or axis % x.ndim != x.ndim - 1 or x.size == 0:
        return False
    return all(p is None or p.dtype == x.dtype for p in params)


def _channels(x):
    return x.reshape(-1, x.shape[-1])


def batch_norm_fused(x, epsilon, gamma=None, beta=None, *, moving_mean=None, moving_variance=None,
                     momentum=0.99):
    """``batch_norm_train`` of ``x`` over all but its last axis in three kernel launches
    (``fused_channels_apply`` must hold): ``(y, mean, variance, ChannelStatistics)``, the statistics flat
    ``(channels,)``. ``moving_mean``/``moving_variance`` (flat, contiguous, ``x``'s dtype), where given, are
    updated in place as the layer's moving update does it."""
    y, mean, variance, inv = batchnorm_forward_train(_channels(x), _flat(gamma), _flat(beta), epsilon,
                                                     moving_mean=moving_mean, moving_variance=moving_variance,
                                                     momentum=momentum)
    return y.reshape(x.shape), mean, variance, ChannelStatistics(x, mean, inv)


def batch_norm_fused_inference(x, mean, variance, epsilon, gamma=None, beta=None):
    """``batch_norm_inference`` of ``x`` with flat ``(channels,)`` statistics in two kernel launches:
    ``(y, Statistics)``, the Statistics shaped for ``normalize_backward``."""
    y, inv = batchnorm_forward_inference(_channels(x), _flat(mean), _flat(variance), _flat(gamma), _flat(beta),
                                         epsilon)
    shape = (1,) * (x.ndim - 1) + (x.shape[-1],)
    return y.reshape(x.shape), Statistics(x, mean.reshape(shape), inv.reshape(shape))


def batch_norm_fused_backward(dy, saved, gamma=None, *, need_input_grad=True):
    """``(dx, dgamma, dbeta)`` of ``batch_norm_fused`` (``normalize_backward``'s, through the statistics);
    dgamma and dbeta flat ``(channels,)``, dx None unless ``need_input_grad``."""
    import cupy
    x = saved.x
    dy = cupy.ascontiguousarray(dy, dtype=x.dtype)
    dx, dgamma, dbeta = batchnorm_backward(_channels(dy), _channels(x), saved.mean, saved.inv, _flat(gamma),
                                           need_input_grad=need_input_grad)
    return None if dx is None else dx.reshape(x.shape), dgamma, dbeta


# ----------------------------------------------------------- fused group normalization over the last axis

class GroupStatistics:
    """What a fused group-norm forward kept for its backward: the input ``x`` itself (counted once by memory
    reports, as ``RowStatistics``), its ``groups`` and the per-(sample, group) ``mean`` and ``inv``
    (``(samples, groups)``)."""

    __slots__ = ("x", "groups", "mean", "inv")

    def __init__(self, x, groups, mean, inv):
        self.x, self.groups, self.mean, self.inv = x, groups, mean, inv


def _samples_positions_channels(x):
    return x.reshape(x.shape[0], -1, x.shape[-1])


def group_norm_fused(x, groups, epsilon, gamma=None, beta=None):
    """``batch_norm_train`` of ``x`` viewed as (..., groups, C / groups), the statistics per sample and group
    over every non-batch axis, in three kernel launches (``fused_channels_apply`` must hold for the last axis):
    ``(y, GroupStatistics)``."""
    y, mean, inv = groupnorm_forward(_samples_positions_channels(x), groups, _flat(gamma), _flat(beta), epsilon)
    return y.reshape(x.shape), GroupStatistics(x, groups, mean, inv)


def group_norm_fused_backward(dy, saved, gamma=None, *, need_input_grad=True, need_param_grads=True):
    """``(dx, dgamma, dbeta)`` of ``group_norm_fused`` (``normalize_backward``'s, through the statistics);
    dgamma and dbeta flat ``(channels,)`` or None unless ``need_param_grads``, dx None unless
    ``need_input_grad``."""
    import cupy
    x = saved.x
    dy = cupy.ascontiguousarray(dy, dtype=x.dtype)
    dx, dgamma, dbeta = groupnorm_backward(
        _samples_positions_channels(dy), _samples_positions_channels(x), saved.groups, saved.mean, saved.inv,
        _flat(gamma), need_input_grad=need_input_grad, want_gamma=need_param_grads, want_beta=need_param_grads)
    return None if dx is None else dx.reshape(x.shape), dgamma, dbeta
