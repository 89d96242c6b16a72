"""Overlap losses for segmentation: Keras 3's ``Dice`` and ``Tversky``.

Both sum over ``axis`` (None, Keras's default: every axis, the batch axis
included, so the whole batch gives one value; a tuple such as ``(1, 2, 3)``
gives one value per image). The per-sample values therefore have the shape of
``y_pred`` without ``axis``, a 0-d array for ``axis=None``. The ``epsilon()``
(1e-7) in the denominator is Keras's.
"""
from __future__ import annotations

import numbers

from .backend import array_module
from .loss_base import (EPSILON, LossFunctionWrapper, _pair, _same_shape, aligned_shapes, reduce_weighted_values,
                        symbolic_form)


def _check_axes(axis, owner):
    """None, an integer or a tuple of integers (a JSON config gives a list back: it becomes a tuple)."""
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    if not axes or any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
        raise ValueError(f"{owner}: `axis` must be None, an integer or a tuple of integers, got {axis!r}.")
    return tuple(int(a) for a in axes) if isinstance(axis, (list, tuple)) else int(axis)


def _reduced_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(a % ndim for a in axes))


def _without_summed_axes(value, axis):
    """``value`` (summed with kept dimensions) without the summed axes: a 0-d array for axis=None. The
    arithmetic before it stays on arrays of full rank, which NumPy 1.x (value-based casting) keeps in float32
    next to Python floats, where it would turn 0-d results into float64."""
    return value.reshape(()) if axis is None else value.squeeze(axis=axis if isinstance(axis, int) else tuple(axis))


def _sum_keep(x, axis):
    return x.sum(axis=axis if axis is None or isinstance(axis, int) else tuple(axis), keepdims=True)


def _check_pair(y_true, y_pred, owner):
    xp, t, p = _pair(y_true, y_pred)
    _same_shape(t, p, owner)
    return xp, t, p


@symbolic_form
def dice(y_true, y_pred, axis=None):
    """``1 - 2 sum(t p) / (sum(t) + sum(p) + eps)``, sums over ``axis`` (None: all axes)."""
    _, t, p = _check_pair(y_true, y_pred, "dice")
    value = 1.0 - 2.0 * _sum_keep(t * p, axis) / (_sum_keep(t, axis) + _sum_keep(p, axis) + EPSILON)
    return _without_summed_axes(value, axis)


def _dice_grad(y_true, y_pred, axis=None):
    _, t, p = _check_pair(y_true, y_pred, "dice")
    intersection = _sum_keep(t * p, axis)
    denominator = _sum_keep(t, axis) + _sum_keep(p, axis) + EPSILON
    return -2.0 * (t * denominator - intersection) / (denominator * denominator)


@symbolic_form
def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """``1 - sum(t p) / (sum(t p) + alpha sum((1 - p) t) + beta sum(p (1 - t)) + eps)`` over ``axis``."""
    _, t, p = _check_pair(y_true, y_pred, "tversky")
    intersection = _sum_keep(t * p, axis)
    fp = _sum_keep((1.0 - p) * t, axis)     # Keras's names: y_true plays "inputs", y_pred "targets"
    fn = _sum_keep(p * (1.0 - t), axis)
    return _without_summed_axes(1.0 - intersection / (intersection + fp * alpha + fn * beta + EPSILON), axis)


def _tversky_grad(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    _, t, p = _check_pair(y_true, y_pred, "tversky")
    intersection = _sum_keep(t * p, axis)
    denominator = intersection + _sum_keep((1.0 - p) * t, axis) * alpha + _sum_keep(p * (1.0 - t), axis) * beta \
        + EPSILON
    d_denominator = t - alpha * t + beta * (1.0 - t)
    return -(t * denominator - intersection * d_denominator) / (denominator * denominator)


class _OverlapLoss(LossFunctionWrapper):
    """What Dice and Tversky share: weights spread over the summed axes, one value for axis=None."""

    def reduction_weights(self, y_true, y_pred, values, sample_weight=None, output_mask=None):
        masks = self._masks(y_true, y_pred, output_mask)
        if values.ndim == 0 and (sample_weight is not None or masks is not None):
            # One value for the batch times weights of the batch's shape: Keras's reduction multiplies them
            # out and reduces the product, which is the value times the reduction of the weights alone.
            xp = array_module(values, sample_weight)
            return reduce_weighted_values(xp.ones((), values.dtype), sample_weight, masks, self.reduction)
        return super().reduction_weights(y_true, y_pred, values, sample_weight, output_mask)

    def values_shape(self, true_shape, pred_shape):
        if self.axis is None:
            return ()
        _, pred_shape = aligned_shapes(true_shape, pred_shape)
        axes = _reduced_axes(self.axis, len(pred_shape))
        return tuple(n for i, n in enumerate(pred_shape) if i not in axes)

    def weighted_grad(self, y_true, y_pred, weights):
        grad = self.grad(y_true, y_pred)
        if weights.ndim == 0:
            return grad * weights
        axes = _reduced_axes(self.axis, grad.ndim)
        return grad * weights.reshape(tuple(1 if i in axes else n for i, n in enumerate(grad.shape)))


class Dice(_OverlapLoss):
    """``1 - 2 |t p| / (|t| + |p| + eps)``, sums over ``axis`` (None: the whole batch gives one value)."""

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        self.axis = _check_axes(axis, "Dice")
        super().__init__(dice, reduction=reduction, name=name, dtype=dtype, grad_fn=_dice_grad, axis=self.axis)


class Tversky(_OverlapLoss):
    """``1 - |t p| / (|t p| + alpha |(1 - p) t| + beta |p (1 - t)| + eps)``; alpha = beta = 0.5 is Dice."""

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky", axis=None,
                 dtype=None):
        for key, value in (("alpha", alpha), ("beta", beta)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
                raise ValueError(f"Tversky: `{key}` must be a number >= 0, got {value!r}.")
        self.alpha, self.beta = float(alpha), float(beta)
        self.axis = _check_axes(axis, "Tversky")
        super().__init__(tversky, reduction=reduction, name=name, dtype=dtype, grad_fn=_tversky_grad,
                         alpha=self.alpha, beta=self.beta, axis=self.axis)
