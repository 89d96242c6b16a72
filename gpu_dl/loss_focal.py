"""Focal and generalized cross-entropies: Keras 3's ``BinaryFocalCrossentropy``,
``CategoricalFocalCrossentropy`` and ``CategoricalGeneralizedCrossEntropy``.

Forward formulas follow Keras 3.15 step by step (the same clips at
``epsilon() = 1e-7``, the same order of smoothing, sigmoid/softmax and
renormalisation), so float32 values agree with Keras to rounding. Gradients are
the exact derivatives of those formulas, zero where a clip is active.

These losses never take the model's fused softmax + cross-entropy path
(``softmax_fusable`` stays False): the focal factor needs the clipped
probabilities themselves, so a softmax output layer runs as it is and its
backward takes this loss's gradient.
"""
from __future__ import annotations

import numbers

import numpy

from .backend import array_module, floatx
from .loss_base import (EPSILON, BinaryCrossentropy, CategoricalCrossentropy, LossFunctionWrapper, _check_axis,
                     _batch_shape, _check_smoothing, _inside, _is_whole, _log_sigmoid, _pair, _same_shape,
                     followed, reduce_weighted_values)


def _check_gamma(gamma, owner):
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma >= 0:
        raise ValueError(f"{owner}: `gamma` must be a number >= 0, got {gamma!r}.")
    return float(gamma)


def _power_grad(base, gamma):
    """d(base**gamma)/d(base), finite where base is 0 (there: 1 for gamma == 1, else 0, as gamma > 1 gives)."""
    xp = array_module(base)
    positive = base > 0
    safe = xp.where(positive, base, base.dtype.type(1))
    at_zero = base.dtype.type(1 if gamma == 1 else 0)
    return xp.where(positive, gamma * safe ** (gamma - 1), at_zero)


def _spread(weights, shape, axes):
    """Weights shaped like the per-sample values, reshaped to broadcast against ``shape`` (1 along ``axes``)."""
    if weights.ndim == 0:
        return weights
    return weights.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


# ------------------------------------------------------------ binary focal
def _binary_focal_parts(y_true, y_pred, apply_class_balancing, alpha, gamma, from_logits, label_smoothing):
    xp, t, p = _pair(y_true, y_pred)
    _same_shape(t, p, "binary_focal_crossentropy")
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        p = xp.exp(_log_sigmoid(xp, p))
    # Keras computes the cross-entropy from the (clipped) probability even with from_logits.
    clipped = xp.clip(p, EPSILON, 1.0 - EPSILON)
    bce = -(t * xp.log(clipped) + (1.0 - t) * xp.log(1.0 - clipped))
    base = 1.0 - (t * p + (1.0 - t) * (1.0 - p))     # 1 - p_t, from the unclipped probability
    weight = t * alpha + (1.0 - t) * (1.0 - alpha) if apply_class_balancing else None
    return xp, t, p, clipped, bce, base, weight


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    """Mean over ``axis`` of ``(1 - p_t)**gamma * bce`` (times ``alpha``/``1 - alpha`` with class balancing).

    ``p_t = t p + (1 - t)(1 - p)``; ``bce`` is the binary cross-entropy of the
    probability clipped to [eps, 1 - eps] (with ``from_logits``, of its sigmoid).
    """
    _, _, _, _, bce, base, weight = _binary_focal_parts(y_true, y_pred, apply_class_balancing, alpha, gamma,
                                                        from_logits, label_smoothing)
    values = base ** gamma * bce
    if weight is not None:
        values = weight * values
    return values.mean(axis=axis)


def _binary_focal_crossentropy_grad(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                                    from_logits=False, label_smoothing=0.0, axis=-1):
    xp, t, p, clipped, bce, base, weight = _binary_focal_parts(y_true, y_pred, apply_class_balancing, alpha,
                                                               gamma, from_logits, label_smoothing)
    dbce = (-t / clipped + (1.0 - t) / (1.0 - clipped)) * _inside(p, EPSILON, 1.0 - EPSILON)
    # d(1 - p_t)/dp = 1 - 2t.
    grad = _power_grad(base, gamma) * (1.0 - 2.0 * t) * bce + base ** gamma * dbce
    if weight is not None:
        grad = weight * grad
    if from_logits:
        grad = grad * p * (1.0 - p)
    return grad / p.shape[axis]


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """Binary cross-entropy scaled by the focal factor ``(1 - p_t)**gamma``; mean over ``axis``."""

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, reduction="sum_over_batch_size", name="binary_focal_crossentropy", dtype=None):
        owner = "BinaryFocalCrossentropy"
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
            raise ValueError(f"{owner}: `alpha` (the weight of class 1) must be a number in [0, 1], got {alpha!r}.")
        gamma = _check_gamma(gamma, owner)
        label_smoothing = _check_smoothing(label_smoothing, owner)
        axis = _check_axis(axis, owner)
        self.apply_class_balancing, self.alpha, self.gamma = bool(apply_class_balancing), float(alpha), gamma
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), label_smoothing, axis
        super().__init__(binary_focal_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         grad_fn=_binary_focal_crossentropy_grad, apply_class_balancing=self.apply_class_balancing,
                         alpha=self.alpha, gamma=gamma, from_logits=self.from_logits,
                         label_smoothing=label_smoothing, axis=axis)

    def weighted_grad(self, y_true, y_pred, weights):
        grad = self.grad(y_true, y_pred)
        return grad * _spread(weights, grad.shape, (self.axis % grad.ndim,))

    validate_targets = BinaryCrossentropy.validate_targets


# ------------------------------------------------------- categorical focal
def _softmax(xp, z, axis):
    e = xp.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _alpha_array(xp, alpha, p, owner="categorical_focal_crossentropy"):
    alpha = xp.asarray(alpha, dtype=p.dtype)
    if alpha.ndim and alpha.shape[-1] != p.shape[-1]:
        raise ValueError(f"{owner}: `alpha` has {alpha.shape[-1]} per-class weights but y_pred has "
                         f"{p.shape[-1]} classes along its last axis.")
    return alpha


def _categorical_focal_parts(y_true, y_pred, alpha, gamma, from_logits, label_smoothing, axis):
    xp, t, p = _pair(y_true, y_pred)
    _same_shape(t, p, "categorical_focal_crossentropy")
    if label_smoothing:
        # Keras divides by the size of the last axis whatever `axis` is.
        t = t * (1.0 - label_smoothing) + label_smoothing / t.shape[-1]
    probs = _softmax(xp, p, axis) if from_logits else p
    sums = probs.sum(axis=axis, keepdims=True)
    q = probs / sums
    clipped = xp.clip(q, EPSILON, 1.0 - EPSILON)
    # alpha (a scalar or one weight per class) broadcasts against the last axis, as in Keras.
    return xp, t, probs, sums, q, clipped, _alpha_array(xp, alpha, p)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    """``sum(alpha * (1 - c)**gamma * -t log c, axis)``, ``c`` the renormalised probabilities clipped to
    [eps, 1 - eps] (with ``from_logits``, of the softmax of ``y_pred``)."""
    axis = _check_axis(axis, "categorical_focal_crossentropy")
    xp, t, _, _, _, clipped, alpha = _categorical_focal_parts(y_true, y_pred, alpha, gamma, from_logits,
                                                              label_smoothing, axis)
    cce = -t * xp.log(clipped)
    return ((1.0 - clipped) ** gamma * alpha * cce).sum(axis=axis)


def _categorical_focal_crossentropy_grad(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                         label_smoothing=0.0, axis=-1):
    xp, t, probs, sums, q, clipped, alpha = _categorical_focal_parts(y_true, y_pred, alpha, gamma, from_logits,
                                                                     label_smoothing, axis)
    rest = 1.0 - clipped          # >= eps: no power of 0 below
    log_c = xp.log(clipped)
    dclipped = alpha * t * (_power_grad(rest, gamma) * log_c - rest ** gamma / clipped)
    dq = dclipped * _inside(q, EPSILON, 1.0 - EPSILON)
    dprobs = (dq - (dq * q).sum(axis=axis, keepdims=True)) / sums          # through q = probs / sum(probs)
    if not from_logits:
        return dprobs
    return probs * (dprobs - (dprobs * probs).sum(axis=axis, keepdims=True))  # through the softmax


def _check_class_weights(alpha, owner):
    if isinstance(alpha, (list, tuple)) or (isinstance(alpha, numpy.ndarray) and alpha.ndim == 1):
        values = list(alpha)
        if not values or any(isinstance(a, bool) or not isinstance(a, numbers.Real) or not a >= 0 for a in values):
            raise ValueError(f"{owner}: `alpha` must be a number >= 0 or a non-empty list of numbers >= 0 "
                             f"(one weight per class), got {alpha!r}.")
        return [float(a) for a in values]
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha >= 0:
        raise ValueError(f"{owner}: `alpha` must be a number >= 0 or a list of numbers >= 0 (one weight per "
                         f"class), got {alpha!r}.")
    return float(alpha)


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """Categorical cross-entropy scaled per class by ``alpha * (1 - p)**gamma``; sum over ``axis``."""

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy", dtype=None):
        owner = "CategoricalFocalCrossentropy"
        self.alpha = _check_class_weights(alpha, owner)
        self.gamma = _check_gamma(gamma, owner)
        self.label_smoothing = _check_smoothing(label_smoothing, owner)
        self.axis = _check_axis(axis, owner)
        self.from_logits = bool(from_logits)
        super().__init__(categorical_focal_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         grad_fn=_categorical_focal_crossentropy_grad, alpha=self.alpha, gamma=self.gamma,
                         from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis)

    def weighted_grad(self, y_true, y_pred, weights):
        grad = self.grad(y_true, y_pred)
        return grad * _spread(weights, grad.shape, (self.axis % grad.ndim,))

    validate_targets = CategoricalCrossentropy.validate_targets


# ------------------------------------------------ generalized cross-entropy
def _class_ids(y_true, y_pred, owner):
    """(xp, one-hot of the class ids (y_pred's dtype), y_pred): ids of shape y_pred.shape[:-1] (or with a
    trailing 1)."""
    xp = array_module(y_true, y_pred)
    p = xp.asarray(y_pred)
    if p.dtype.kind != "f":
        p = p.astype(floatx())
    labels = xp.asarray(y_true)
    if labels.ndim == p.ndim and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.shape != p.shape[:-1]:
        raise ValueError(f"{owner}: `y_true` must hold one class id per sample, shape {p.shape[:-1]} (or "
                         f"{p.shape[:-1] + (1,)}), for y_pred of shape {p.shape}; got {labels.shape}.")
    # Keras casts the ids to int (float ids truncate); an id outside [0, classes) selects nothing.
    labels = labels.astype(xp.int64)
    onehot = (labels[..., None] == xp.arange(p.shape[-1])).astype(p.dtype)
    return xp, onehot, p


def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """``(1 - p**q) / q``, ``p`` the predicted probability of the true class id ``y_true`` (no clipping)."""
    _, onehot, p = _class_ids(y_true, y_pred, "categorical_generalized_cross_entropy")
    p_true = (p * onehot).sum(axis=-1)
    return (1.0 - p_true ** q) / q


def _categorical_generalized_cross_entropy_grad(y_true, y_pred, q):
    xp, onehot, p = _class_ids(y_true, y_pred, "categorical_generalized_cross_entropy")
    p_true = (p * onehot).sum(axis=-1, keepdims=True)
    with numpy.errstate(divide="ignore"):   # p_true == 0: the exact derivative is infinite, as in Keras
        return -onehot * p_true ** (q - 1.0)


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """``(1 - p**q) / q`` of the probability ``p`` of each sample's integer class id; ``q`` in (0, 1)."""

    def __init__(self, q=0.5, reduction="sum_over_batch_size", name="categorical_generalized_cross_entropy",
                 dtype=None):
        # Keras 3.15 refuses q = 1 here too (its function form would take it: the loss is then 1 - p).
        if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0 < q < 1:
            raise ValueError(f"CategoricalGeneralizedCrossEntropy: `q` must be a number in the interval (0, 1), "
                             f"got {q!r}.")
        self.q = float(q)
        super().__init__(categorical_generalized_cross_entropy, reduction=reduction, name=name, dtype=dtype,
                         grad_fn=_categorical_generalized_cross_entropy_grad, q=self.q)

    @followed()
    def __call__(self, y_true, y_pred, sample_weight=None):
        # Class ids stay as given (a cast to a float dtype would round ids above 2**24).
        xp = array_module(y_true, y_pred, sample_weight)
        y_pred = xp.asarray(y_pred, dtype=self.dtype)
        return reduce_weighted_values(self.call(xp.asarray(y_true), y_pred), sample_weight, None, self.reduction)

    def validate_targets(self, y_true, output_shape):
        y_true = numpy.asarray(y_true)
        out = _batch_shape(y_true, output_shape)
        classes, per_sample = out[-1], out[:-1]
        if y_true.shape not in (per_sample, per_sample + (1,)):
            raise ValueError(f"Loss '{self.name}' expects one integer class id per sample, `y` of shape "
                             f"{per_sample}, for the model output of shape {tuple(output_shape)}; got "
                             f"{y_true.shape}.")
        if not _is_whole(y_true):
            raise ValueError(f"Loss '{self.name}' needs integer class ids in `y`.")
        if y_true.size and classes is not None and (y_true.min() < 0 or y_true.max() >= classes):
            raise ValueError(f"Loss '{self.name}': class ids in `y` must be in [0, {classes}); got values from "
                             f"{y_true.min():g} to {y_true.max():g}.")
