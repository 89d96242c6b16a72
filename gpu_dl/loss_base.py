"""The losses' arithmetic and classes: the base of the Keras 3 catalogue in ``gpu_dl.losses``.

Each loss has a function form with its Keras name (``mean_squared_error(y_true,
y_pred)`` and so on) that returns per-sample values, shape ``y_pred.shape[:-1]``
(Keras averages or sums over the last axis), and a class (``MeanSquaredError``)
whose instances give

- ``call(y_true, y_pred)``: the per-sample values;
- ``grad(y_true, y_pred)``: d(sum of the per-sample values)/d(y_pred), shape of
  ``y_pred`` (the model divides by the batch size for "sum_over_batch_size");
- ``loss(y_true, y_pred, sample_weight=None)``: the reduced value, a 0-d array,
  with Keras 3's reductions;
- ``validate_targets(y_true, output_shape)``: a host-side check of the targets
  against the model output, run before training changes anything.

A loss of the caller's own needs no ``grad`` where its ``call`` is written
with ``gpu_dl.ops`` (as Keras's custom losses are): it is traced on symbolic
tensors into a graph whose backward gives the gradient (``Loss.traced``,
``models/loss_graph.py``), and so is a plain function given to compile.

Formulas, epsilons and clipping are Keras 3's (``epsilon() = 1e-7``); gradients
are the exact derivatives of those formulas, zero where a clip is active. Where
target and prediction ranks differ by one and the longer one ends in a 1, the
shapes are aligned as Keras's ``squeeze_or_expand_to_same_rank`` aligns them.

Everything runs on the array module of its inputs (NumPy or CuPy). The losses
kept in modules of their own (``loss_focal``, ``loss_overlap``, ``loss_circle``)
build on these; ``gpu_dl.losses`` gathers all of them into the catalogue.
"""
from __future__ import annotations

import functools
import math
import numbers
import sys

import numpy

from . import backprop
from .backend import array_module, floatx, standardize_dtype
from .backend.user_warnings import warn
from .catalogue import snake_case
from .ops.softmax_xent import softmax_xent

EPSILON = 1e-7  # Keras's backend.epsilon()
_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
_SPARSE_HINT = ("use loss='sparse_categorical_crossentropy', or one-hot encode them with "
                "gpu_dl.utils.to_categorical(y, num_classes={classes})")


# ------------------------------------------------------------------ symbolic tensors
def any_symbolic(*values):
    """Whether any of ``values`` is a symbolic tensor (``keras.Input``'s). Without the module that defines them
    loaded there are none, and checking costs nothing."""
    symbolic = sys.modules.get(__package__ + ".layers.symbolic")
    return symbolic is not None and any(isinstance(v, symbolic.KerasTensor) for v in values)


def symbolic_form(fn):
    """``fn(y_true, y_pred, **kwargs)``, a loss function of arrays, that also takes symbolic tensors: in the call
    of a layer (traced into a graph) or a functional model it records one operation computing the per-sample
    values, whose backward is the loss class's gradient (``loss_symbolic``)."""
    @functools.wraps(fn)
    def loss_function(y_true, y_pred, *args, **kwargs):
        if any_symbolic(y_true, y_pred):
            from . import loss_symbolic     # it builds on the layers' graph operations: import late
            return loss_symbolic.function_call(loss_function, y_true, y_pred, args, kwargs)
        return fn(y_true, y_pred, *args, **kwargs)
    return loss_function


# ------------------------------------------------------------------ shapes
def aligned_shapes(shape1, shape2, expand_rank_1=True):
    """Keras's ``squeeze_or_expand_to_same_rank`` on shapes.

    When the ranks differ by one and the longer shape ends in 1, that 1 is
    dropped, except that a rank-1 partner gets a trailing 1 instead.
    """
    shape1, shape2 = tuple(shape1), tuple(shape2)
    if len(shape1) == len(shape2) + 1 and shape1[-1] == 1:
        if len(shape2) == 1 and expand_rank_1:
            shape2 = shape2 + (1,)
        else:
            shape1 = shape1[:-1]
    elif len(shape2) == len(shape1) + 1 and shape2[-1] == 1:
        if len(shape1) == 1 and expand_rank_1:
            shape1 = shape1 + (1,)
        else:
            shape2 = shape2[:-1]
    return shape1, shape2


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Both arrays reshaped as ``aligned_shapes`` says."""
    shape1, shape2 = aligned_shapes(x1.shape, x2.shape, expand_rank_1)
    return x1.reshape(shape1), x2.reshape(shape2)


def _aligned(y_true, y_pred):
    """``squeeze_or_expand_to_same_rank`` of arrays or symbolic tensors (``gpu_dl.ops``), as Keras's
    LossFunctionWrapper aligns what it hands its function."""
    true_shape, pred_shape = aligned_shapes(y_true.shape, y_pred.shape)
    if len(true_shape) == len(tuple(y_true.shape)) and len(pred_shape) == len(tuple(y_pred.shape)):
        return y_true, y_pred
    from .layers import keras_ops as ops     # the ops record graph operations on symbolic tensors: import late

    def fit(x, rank):
        if rank == len(tuple(x.shape)):
            return x
        return ops.expand_dims(x, -1) if rank > len(tuple(x.shape)) else ops.squeeze(x, -1)
    return fit(y_true, len(true_shape)), fit(y_pred, len(pred_shape))


def _pair(y_true, y_pred, align=True):
    """(xp, y_true, y_pred): arrays of one module, y_true in y_pred's float dtype, aligned."""
    xp = array_module(y_true, y_pred)
    y_pred = xp.asarray(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(floatx())
    y_true = xp.asarray(y_true).astype(y_pred.dtype, copy=False)
    if align:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return xp, y_true, y_pred


def _same_shape(y_true, y_pred, what):
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{what}: `y_true` and `y_pred` must have the same shape, "
                         f"got y_true.shape={y_true.shape} and y_pred.shape={y_pred.shape}.")


def _inside(x, low, high):
    """Where clip(x, low, high) passes x through: its derivative there is 1, elsewhere 0."""
    return (x >= low) & (x <= high)


def _check_axis(axis, owner):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"{owner}: `axis` must be of type `int`, got axis={axis!r} of type {type(axis).__name__}.")
    return int(axis)


def _check_smoothing(value, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{owner}: `label_smoothing` must be a number in [0, 1], got {value!r}.")
    return float(value)


# ---------------------------------------------------- regression: forward
@symbolic_form
def mean_squared_error(y_true, y_pred):
    """``mean((y_true - y_pred)**2, axis=-1)``."""
    _, t, p = _pair(y_true, y_pred)
    return ((t - p) ** 2).mean(axis=-1)


@symbolic_form
def mean_absolute_error(y_true, y_pred):
    """``mean(|y_true - y_pred|, axis=-1)``."""
    xp, t, p = _pair(y_true, y_pred)
    return xp.abs(t - p).mean(axis=-1)


@symbolic_form
def mean_absolute_percentage_error(y_true, y_pred):
    """``100 * mean(|(y_true - y_pred) / max(|y_true|, eps)|, axis=-1)``."""
    xp, t, p = _pair(y_true, y_pred)
    return 100.0 * xp.abs((t - p) / xp.maximum(xp.abs(t), EPSILON)).mean(axis=-1)


@symbolic_form
def mean_squared_logarithmic_error(y_true, y_pred):
    """``mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))**2, axis=-1)``."""
    xp, t, p = _pair(y_true, y_pred)
    return ((xp.log(xp.maximum(p, EPSILON) + 1.0) - xp.log(xp.maximum(t, EPSILON) + 1.0)) ** 2).mean(axis=-1)


@symbolic_form
def huber(y_true, y_pred, delta=1.0):
    """``mean(0.5 e**2 if |e| <= delta else delta |e| - 0.5 delta**2, axis=-1)``, ``e = y_pred - y_true``."""
    xp, t, p = _pair(y_true, y_pred)
    error = p - t
    abs_error = xp.abs(error)
    quadratic = 0.5 * error ** 2
    linear = delta * abs_error - 0.5 * delta ** 2
    return xp.where(abs_error <= delta, quadratic, linear).mean(axis=-1)


@symbolic_form
def log_cosh(y_true, y_pred):
    """``mean(log(cosh(y_pred - y_true)), axis=-1)`` as ``x + softplus(-2x) - log 2`` (no overflow)."""
    xp, t, p = _pair(y_true, y_pred)
    x = p - t
    return (x + xp.logaddexp(0.0, -2.0 * x) - math.log(2.0)).mean(axis=-1)


def _l2_inverse_norm(x, axis):
    """``1 / max(||x||, eps)`` along ``axis``: Keras 3's normalize caps the inverse norm at 1/eps."""
    xp = array_module(x)
    return 1.0 / xp.maximum(xp.sqrt((x * x).sum(axis=axis, keepdims=True)), EPSILON)


@symbolic_form
def cosine_similarity(y_true, y_pred, axis=-1):
    """``-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)``: the negative similarity, a loss."""
    _, t, p = _pair(y_true, y_pred)
    return -((t * _l2_inverse_norm(t, axis)) * (p * _l2_inverse_norm(p, axis))).sum(axis=axis)


# ---------------------------------------------------- regression: gradients
def _mean_scale(p, axis=-1):
    return 1.0 / p.shape[axis]


def _mean_squared_error_grad(y_true, y_pred):
    _, t, p = _pair(y_true, y_pred)
    return 2.0 * (p - t) * _mean_scale(p)


def _mean_absolute_error_grad(y_true, y_pred):
    xp, t, p = _pair(y_true, y_pred)
    return xp.sign(p - t) * _mean_scale(p)


def _mean_absolute_percentage_error_grad(y_true, y_pred):
    xp, t, p = _pair(y_true, y_pred)
    return (100.0 * _mean_scale(p)) * xp.sign(p - t) / xp.maximum(xp.abs(t), EPSILON)


def _mean_squared_logarithmic_error_grad(y_true, y_pred):
    xp, t, p = _pair(y_true, y_pred)
    clipped = xp.maximum(p, EPSILON)
    diff = xp.log(clipped + 1.0) - xp.log(xp.maximum(t, EPSILON) + 1.0)
    # max(p, eps) passes p only above eps: below it the loss does not move with p.
    return (2.0 * _mean_scale(p)) * diff / (clipped + 1.0) * (p >= EPSILON)


def _huber_grad(y_true, y_pred, delta=1.0):
    xp, t, p = _pair(y_true, y_pred)
    error = p - t
    return xp.where(xp.abs(error) <= delta, error, delta * xp.sign(error)) * _mean_scale(p)


def _log_cosh_grad(y_true, y_pred):
    xp, t, p = _pair(y_true, y_pred)
    return xp.tanh(p - t) * _mean_scale(p)


def _cosine_similarity_grad(y_true, y_pred, axis=-1):
    xp, t, p = _pair(y_true, y_pred)
    t_unit = t * _l2_inverse_norm(t, axis)
    inv = _l2_inverse_norm(p, axis)
    p_unit = p * inv
    # Above the eps floor d(p/|p|)/dp = (I - u u^T)/|p|; on the floor p/eps is linear in p.
    scaled = xp.sqrt((p * p).sum(axis=axis, keepdims=True)) > EPSILON
    along = (t_unit * p_unit).sum(axis=axis, keepdims=True) * scaled
    return -inv * (t_unit - along * p_unit)


# ------------------------------------------------------------------ hinge
def _hinge_labels(xp, t):
    """Keras turns targets that are all 0 or 1 into -1/+1 (decided over the whole batch)."""
    binary = xp.all((t == 0) | (t == 1))
    return xp.where(binary, 2.0 * t - 1.0, t)


@symbolic_form
def hinge(y_true, y_pred):
    """``mean(max(1 - y_true * y_pred, 0), axis=-1)``; {0, 1} targets become {-1, 1}."""
    xp, t, p = _pair(y_true, y_pred)
    t = _hinge_labels(xp, t)
    return xp.maximum(1.0 - t * p, 0.0).mean(axis=-1)


@symbolic_form
def squared_hinge(y_true, y_pred):
    """``mean(max(1 - y_true * y_pred, 0)**2, axis=-1)``; {0, 1} targets become {-1, 1}."""
    xp, t, p = _pair(y_true, y_pred)
    t = _hinge_labels(xp, t)
    return (xp.maximum(1.0 - t * p, 0.0) ** 2).mean(axis=-1)


@symbolic_form
def categorical_hinge(y_true, y_pred):
    """``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`` over the last axis."""
    xp, t, p = _pair(y_true, y_pred)
    pos = (t * p).sum(axis=-1)
    neg = ((1.0 - t) * p).max(axis=-1)
    return xp.maximum(neg - pos + 1.0, 0.0)


def _hinge_grad(y_true, y_pred):
    xp, t, p = _pair(y_true, y_pred)
    t = _hinge_labels(xp, t)
    return -t * ((1.0 - t * p) > 0) * _mean_scale(p)


def _squared_hinge_grad(y_true, y_pred):
    xp, t, p = _pair(y_true, y_pred)
    t = _hinge_labels(xp, t)
    return -2.0 * t * xp.maximum(1.0 - t * p, 0.0) * _mean_scale(p)


def _categorical_hinge_grad(y_true, y_pred):
    xp, t, p = _pair(y_true, y_pred)
    others = (1.0 - t) * p
    # The max passes its gradient to its (first) largest entry.
    at_max = xp.arange(p.shape[-1]) == others.argmax(axis=-1)[..., None]
    active = ((others.max(axis=-1) - (t * p).sum(axis=-1) + 1.0) > 0)[..., None]
    return (at_max * (1.0 - t) - t) * active


# ------------------------------------------------------- probabilistic
@symbolic_form
def kl_divergence(y_true, y_pred):
    """``sum(t * log(t / p), axis=-1)`` with both clipped to [eps, 1]."""
    xp, t, p = _pair(y_true, y_pred)
    t = xp.clip(t, EPSILON, 1.0)
    p = xp.clip(p, EPSILON, 1.0)
    return (t * xp.log(t / p)).sum(axis=-1)


@symbolic_form
def poisson(y_true, y_pred):
    """``mean(y_pred - y_true * log(y_pred + eps), axis=-1)``."""
    xp, t, p = _pair(y_true, y_pred)
    return (p - t * xp.log(p + EPSILON)).mean(axis=-1)


def _kl_divergence_grad(y_true, y_pred):
    xp, t, p = _pair(y_true, y_pred)
    return -xp.clip(t, EPSILON, 1.0) / xp.clip(p, EPSILON, 1.0) * _inside(p, EPSILON, 1.0)


def _poisson_grad(y_true, y_pred):
    _, t, p = _pair(y_true, y_pred)
    return (1.0 - t / (p + EPSILON)) * _mean_scale(p)


def _log_sigmoid(xp, x):
    return -xp.logaddexp(0.0, -x)


@symbolic_form
def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Mean over ``axis`` of ``-(t log p + (1 - t) log(1 - p))``.

    Probabilities are clipped to [eps, 1 - eps] first; with ``from_logits`` the
    log-sigmoids are computed directly (what Keras's TensorFlow, JAX and torch
    backends do), so large logits neither overflow nor clip. Label smoothing
    moves targets towards 0.5: ``t (1 - s) + s / 2``.
    """
    xp, t, p = _pair(y_true, y_pred)
    _same_shape(t, p, "binary_crossentropy")
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = -(t * _log_sigmoid(xp, p) + (1.0 - t) * _log_sigmoid(xp, -p))
    else:
        p = xp.clip(p, EPSILON, 1.0 - EPSILON)
        values = -(t * xp.log(p) + (1.0 - t) * xp.log(1.0 - p))
    return values.mean(axis=axis)


def _binary_crossentropy_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    xp, t, p = _pair(y_true, y_pred)
    _same_shape(t, p, "binary_crossentropy")
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        grad = xp.exp(_log_sigmoid(xp, p)) - t
    else:
        clipped = xp.clip(p, EPSILON, 1.0 - EPSILON)
        grad = (-t / clipped + (1.0 - t) / (1.0 - clipped)) * _inside(p, EPSILON, 1.0 - EPSILON)
    return grad * _mean_scale(p, axis)


def _binary_crossentropy_target_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """d(binary_crossentropy summed)/d(y_true): -(log p - log(1 - p)) per entry (the logit itself from logits),
    times the smoothing's 1 - s and the mean's 1 / size."""
    xp, t, p = _pair(y_true, y_pred)
    _same_shape(t, p, "binary_crossentropy")
    if from_logits:
        grad = -p
    else:
        p = xp.clip(p, EPSILON, 1.0 - EPSILON)
        grad = -(xp.log(p) - xp.log(1.0 - p))
    return grad * ((1.0 - label_smoothing) * _mean_scale(p, axis))


def _clipped_normalised(xp, p):
    """Keras's probability path: rows renormalised to sum 1, then clipped to [eps, 1 - eps]."""
    sums = p.sum(axis=-1, keepdims=True)
    q = p / sums
    return q, xp.clip(q, EPSILON, 1.0 - EPSILON), sums


def _probability_path_grad(xp, t, p):
    """d(-sum t log clip(p / sum p))/dp, last axis."""
    q, clipped, sums = _clipped_normalised(xp, p)
    g = -t / clipped * _inside(q, EPSILON, 1.0 - EPSILON)   # d loss / d q
    return (g - (g * q).sum(axis=-1, keepdims=True)) / sums  # through q = p / sum(p)


def _smooth(t, label_smoothing):
    if not label_smoothing:
        return t
    return t * (1.0 - label_smoothing) + label_smoothing / t.shape[-1]


@symbolic_form
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """``-sum(t * log(p), axis)`` for one-hot or probability targets.

    Probabilities are renormalised to sum 1 over ``axis`` and clipped to
    [eps, 1 - eps]; ``from_logits`` uses log-softmax. Label smoothing:
    ``t (1 - s) + s / C``.
    """
    axis = _check_axis(axis, "categorical_crossentropy")
    xp, t, p = _pair(y_true, y_pred)
    _same_shape(t, p, "categorical_crossentropy")
    t, p = xp.moveaxis(t, axis, -1), xp.moveaxis(p, axis, -1)
    t = _smooth(t, label_smoothing)
    if from_logits:
        return softmax_xent(p, t, sparse=False)[0]
    _, clipped, _ = _clipped_normalised(xp, p)
    return -(t * xp.log(clipped)).sum(axis=-1)


def _categorical_crossentropy_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    xp, t, p = _pair(y_true, y_pred)
    _same_shape(t, p, "categorical_crossentropy")
    t, p = xp.moveaxis(t, axis, -1), xp.moveaxis(p, axis, -1)
    t = _smooth(t, label_smoothing)
    grad = softmax_xent(p, t, sparse=False)[2] if from_logits else _probability_path_grad(xp, t, p)
    return xp.moveaxis(grad, -1, axis)


def _sparse_labels(y_true, y_pred, axis, ignore_class):
    """(xp, labels as int64 with the class axis gone, y_pred with classes last, valid mask or None)."""
    xp = array_module(y_true, y_pred)
    p = xp.asarray(y_pred)
    if p.dtype.kind != "f":
        p = p.astype(floatx())
    labels = xp.asarray(y_true)
    if labels.ndim == p.ndim and labels.shape[axis] == 1:
        labels = labels.squeeze(axis=axis)
    expected = p.shape[:axis % p.ndim] + p.shape[axis % p.ndim + 1:]
    if labels.shape != expected:
        raise ValueError(f"sparse_categorical_crossentropy: `y_true` must hold one class id per sample, shape "
                         f"{expected} (or {expected + (1,)}), for y_pred of shape {p.shape}; got {labels.shape}.")
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = xp.where(valid, labels, 0)
    # Keras casts the ids to int: float ids are truncated. Only read from here on: int64 ids are not copied, and
    # classes already last need no moved view (each a device operation per training step).
    classes_last = p if axis % p.ndim == p.ndim - 1 else xp.moveaxis(p, axis, -1)
    return xp, labels.astype(xp.int64, copy=False), classes_last, valid


@symbolic_form
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """``-log(p[label])`` with probabilities renormalised and clipped to [eps, 1 - eps] (or log-softmax).

    Samples whose label equals ``ignore_class`` give 0.
    """
    xp, labels, p, valid = _sparse_labels(y_true, y_pred, axis, ignore_class)
    if from_logits:
        values = softmax_xent(p, labels, sparse=True)[0]
    else:
        _, clipped, _ = _clipped_normalised(xp, p)
        values = -xp.log(xp.take_along_axis(clipped, labels[..., None], axis=-1)[..., 0])
    return values if valid is None else values * valid


def _sparse_categorical_crossentropy_grad(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    xp, labels, p, valid = _sparse_labels(y_true, y_pred, axis, ignore_class)
    if from_logits:
        grad = softmax_xent(p, labels, sparse=True)[2]
    else:
        onehot = (labels[..., None] == xp.arange(p.shape[-1])).astype(p.dtype)
        grad = _probability_path_grad(xp, onehot, p)
    if valid is not None:
        grad = grad * valid[..., None]
    return xp.moveaxis(grad, -1, axis)


# ------------------------------------------------------------- reduction
def _standardize_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`: expected one of {_REDUCTIONS}, got {reduction!r}.")
    return reduction


def _divide_no_nan(xp, total, divisor):
    divisor = xp.asarray(divisor, dtype=total.dtype)
    safe = xp.where(divisor == 0, 1, divisor)
    return xp.where(divisor == 0, 0, total / safe).astype(total.dtype)


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size"):
    """Keras 3's reduction: weight (and mask) the per-sample values, then sum or average them."""
    reduction = _standardize_reduction(reduction)
    xp = array_module(values, sample_weight, mask)
    dtype = values.dtype
    if sample_weight is not None:
        sample_weight = xp.asarray(sample_weight, dtype=dtype)
    if mask is not None:
        mask = xp.asarray(mask).astype(dtype)
        if reduction in ("mean", "sum_over_batch_size"):
            # Masked entries get weight 0 and the others total/valid, so the
            # average runs over the unmasked entries only.
            mask = mask * _divide_no_nan(xp, xp.asarray(mask.size, dtype=dtype), mask.sum())
        if sample_weight is None:
            sample_weight = mask
        else:
            mask, sample_weight = squeeze_or_expand_to_same_rank(mask, sample_weight)
            sample_weight = sample_weight * mask
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * sample_weight
    if reduction in ("none", None) or values.shape in ((), (0,)):
        return xp.asarray(values, dtype=dtype)   # 0-d NumPy products come back as scalars
    total = xp.asarray(values.sum(), dtype=dtype)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return _divide_no_nan(xp, total, sample_weight.sum())
    return _divide_no_nan(xp, total, values.size)


def reduction_weights(values, sample_weight=None, mask=None, reduction="sum_over_batch_size"):
    """Factors ``w`` with ``reduce_weighted_values(values, ...) == (w * values).sum()``.

    They are the reduction's gradient with respect to the per-sample values,
    which training multiplies into the loss's ``grad``.
    """
    reduction = _standardize_reduction(reduction)
    if reduction in ("none", None):
        raise ValueError("reduction 'none' gives no scalar loss to train on.")
    xp = array_module(values, sample_weight, mask)
    dtype = values.dtype
    if values.ndim == 0 and (sample_weight is not None or mask is not None):
        # One value for the batch (a loss that reduces everything) times weights of the batch's shape: Keras's
        # reduction multiplies them out and reduces the product, the value times the reduction of the weights.
        return reduce_weighted_values(xp.ones((), dtype), sample_weight, mask, reduction)

    def spread(a):
        a = xp.asarray(a).astype(dtype)
        return xp.broadcast_to(squeeze_or_expand_to_same_rank(values, a)[1], values.shape)

    effective = None  # the sample weights Keras's reduction sees, mask included
    if mask is not None:
        effective = spread(mask)
        if reduction in ("mean", "sum_over_batch_size"):
            effective = effective * _divide_no_nan(xp, xp.asarray(effective.size, dtype=dtype), effective.sum())
    if sample_weight is not None:
        effective = spread(sample_weight) if effective is None else effective * spread(sample_weight)
    weights = xp.ones(values.shape, dtype=dtype) if effective is None else effective
    if reduction == "sum":
        return weights
    if reduction == "mean_with_sample_weight" and effective is not None:
        return _divide_no_nan(xp, weights, weights.sum())
    return weights / dtype.type(max(values.size, 1))


# ------------------------------------------------------------ target checks
def _batch_shape(y_true, output_shape):
    """The output shape with its unknown (None) batch size filled from the targets."""
    shape = tuple(output_shape)
    if shape and shape[0] is None:
        shape = (len(y_true),) + shape[1:]
    return shape


def _shapes_match(a, b):
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _is_whole(y):
    return y.dtype.kind in "iub" or bool(numpy.all(numpy.equal(numpy.mod(y, 1), 0)))


def _looks_like_class_ids(y_true, output_shape):
    classes = output_shape[-1] if output_shape else None
    return (classes not in (None, 1) and (y_true.ndim == 1 or (y_true.ndim == 2 and y_true.shape[1] == 1))
            and _is_whole(y_true))


def _check_elementwise_targets(loss_name, y_true, output_shape):
    """Targets must have the model output's shape, after Keras's rank alignment."""
    out = _batch_shape(y_true, output_shape)
    t, p = aligned_shapes(y_true.shape, out)
    if _shapes_match(t, p):
        return
    message = (f"Loss '{loss_name}': targets `y` of shape {y_true.shape} do not fit the model output of shape "
               f"{tuple(output_shape)}; pass `y` of shape {out}.")
    if _looks_like_class_ids(y_true, output_shape):
        message += " If `y` holds class ids, " + _SPARSE_HINT.format(classes=output_shape[-1]) + "."
    raise ValueError(message)


# ------------------------------------------------------------------ calls that backward() follows
def _call_gradient(loss, y_true, y_pred, sample_weight):
    """d(loss(y_true, y_pred, sample_weight))/d(y_pred), from the loss's own gradient and its reduction's weights
    (as a training step takes them), in ``y_pred``'s dtype."""
    xp = array_module(y_true, y_pred, sample_weight)
    truth, pred = loss._converted(xp, y_true, y_pred)
    if sample_weight is not None:
        sample_weight = xp.asarray(sample_weight)
    per_sample = loss.per_sample(truth, pred, training=True)
    uniform = loss.uniform_reduction_weight(truth, pred, per_sample.size, sample_weight)
    weights = pred.dtype.type(uniform) if uniform is not None else \
        loss.reduction_weights(truth, pred, per_sample, sample_weight)
    return loss.training_grad(truth, pred, weights).astype(y_pred.dtype, copy=False)


def followed(method):
    """Decorates ``Loss.__call__``: called on an output of a model or layer called with training=True, it returns
    a ``backprop.LossValue`` whose ``backward()`` trains through that call (``gpu_dl/backprop.py``); otherwise the
    value as it is."""
    @functools.wraps(method)
    def call(self, y_true, y_pred, sample_weight=None):
        value = method(self, y_true, y_pred, sample_weight)
        return backprop.tracked(value, y_pred, lambda: _call_gradient(self, y_true, y_pred, sample_weight))
    return call


# ------------------------------------------------------------------ classes
class Loss:
    """Base class: subclasses define ``call`` (per-sample values) and ``grad``, or only a ``call`` written with
    ``gpu_dl.ops``, which training traces for its gradient (``traced``).

    ``reduction`` is one of Keras 3's: "sum_over_batch_size" (sum of the
    weighted values over their number), "sum", "mean" (as
    "sum_over_batch_size"), "mean_with_sample_weight" (over the sum of the
    weights), "none"/None (no reduction). ``dtype`` (floatx() by default) is
    the type ``__call__`` computes in.
    """

    softmax_fusable = False  # True where call_from_logits can take the logits of a softmax layer

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a string, got {name!r}.")
        self.name = name or snake_case(type(self).__name__)
        self.reduction = _standardize_reduction(reduction)
        self.dtype = standardize_dtype(dtype, f"{type(self).__name__}: dtype")

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must define call(y_true, y_pred).")

    def grad(self, y_true, y_pred):
        """d(sum of the per-sample values)/d(y_pred): a traced loss's comes from its graph."""
        if self.traced:
            from .models import loss_graph     # the graph runs as a functional model, a level above; import late
            return loss_graph.gradient(self, y_true, y_pred, 1.0)
        raise NotImplementedError(f"{type(self).__name__} must define grad(y_true, y_pred): gpu_dl trains with "
                                  "the gradient of the per-sample losses summed over the batch.")

    @property
    def traced(self):
        """Whether this loss trains through the graph its ``call`` records on symbolic tensors
        (``models/loss_graph.py``): where it has no gradient of its own, or where the gradient it inherits was
        written for another ``call`` than its own (a subclass that changes the call of a loss with a gradient)."""
        mro = type(self).__mro__
        call_owner = next(k for k in mro if "call" in k.__dict__)
        for k in mro:
            if k is Loss:
                return True
            if ("grad" in k.__dict__ or "weighted_grad" in k.__dict__) and self._writes_gradient(k):
                # The call the gradient was written beside; a class with a gradient and no call of its own wrote
                # it for the call of its subclasses.
                written_for = next((c for c in k.__mro__ if "call" in c.__dict__), Loss)
                return written_for is not Loss and written_for is not call_owner
        return True

    def _writes_gradient(self, cls):
        """Whether ``cls``'s ``grad`` or ``weighted_grad`` computes a gradient for this loss (not one that passes
        it on to a function the loss was not given)."""
        return True

    def per_sample(self, y_true, y_pred, training=False):
        """The per-sample values a training or evaluation step takes: ``call``'s, or a traced loss's from its
        graph, which with ``training`` keeps what ``training_grad`` needs for the same arrays."""
        if not self.traced:
            return self.call(y_true, y_pred)
        from .models import loss_graph     # the graph runs as a functional model, a level above; import late
        return loss_graph.forward(self, y_true, y_pred, training)

    def training_grad(self, y_true, y_pred, weights):
        """d(sum(weights * per-sample values))/d(y_pred), as a training step takes it: ``weights`` a number (every
        value's weight) or an array of the values' shape. A traced loss's comes from its graph (whatever
        gradient methods its class inherits: they were written for another call); the others' from ``grad``
        times the number, or from ``weighted_grad``."""
        if self.traced:
            from .models import loss_graph     # the graph runs as a functional model, a level above; import late
            return loss_graph.gradient(self, y_true, y_pred, weights)
        if hasattr(weights, "shape") and weights.shape != ():
            return self.weighted_grad(y_true, y_pred, weights)
        return self.grad(y_true, y_pred) * weights

    def target_grad(self, y_true, y_pred):
        """d(sum of the per-sample values)/d(y_true), for a loss called on symbolic tensors whose targets are
        computed by the graph (Keras differentiates through them); None where the loss has none, and its targets
        must then be data."""
        return None

    @property
    def has_target_grad(self):
        """Whether ``training_target_grad`` gives a gradient: a loss with its own ``target_grad``, not traced."""
        return not self.traced and type(self).target_grad is not Loss.target_grad

    def training_target_grad(self, y_true, y_pred, weights):
        """d(sum(weights * per-sample values))/d(y_true), ``weights`` as ``training_grad`` takes them; None where
        the loss has no ``target_grad``."""
        if not self.has_target_grad:
            return None
        grad = self.target_grad(y_true, y_pred)
        if not (hasattr(weights, "shape") and weights.shape != ()):
            return grad * weights
        axis = self._reduced_axis()
        if weights.ndim == grad.ndim - 1 and isinstance(axis, int):
            return grad * array_module(weights).expand_dims(weights, axis % grad.ndim)
        return grad * weights.reshape(weights.shape + (1,) * (grad.ndim - weights.ndim))

    @followed
    def __call__(self, y_true, y_pred, sample_weight=None):
        """The reduced loss (a 0-d array; the weighted values for reduction "none"), as Keras's ``Loss.__call__``.
        On symbolic tensors (in the call of a layer, or a functional model) it records one operation of the graph
        (``loss_symbolic``), which computes this in each call and trains through it."""
        if any_symbolic(y_true, y_pred, sample_weight):
            from . import loss_symbolic     # it builds on the layers' graph operations: import late
            return loss_symbolic.loss_call(self, y_true, y_pred, sample_weight)
        xp = array_module(y_true, y_pred, sample_weight)
        y_true, y_pred = self._converted(xp, y_true, y_pred)
        values = self.call(y_true, y_pred)
        return reduce_weighted_values(values, sample_weight, self._mask(y_true, y_pred), self.reduction)

    def _converted(self, xp, y_true, y_pred):
        """``y_true`` and ``y_pred`` as ``__call__`` computes with them: arrays of the loss's dtype."""
        return xp.asarray(y_true, dtype=self.dtype), xp.asarray(y_pred, dtype=self.dtype)

    def values_shape(self, true_shape, pred_shape):
        """The shape of ``call``'s per-sample values for targets and predictions of these shapes (None: a size not
        known): the predictions' (ranks aligned as Keras aligns them) without the axis the loss reduces, or, for
        a loss traced from its call, its graph's."""
        if self.traced:
            from .models import loss_graph     # the graph runs as a functional model, a level above; import late
            return tuple(loss_graph.traced(self, true_shape, pred_shape).graph.outputs[0].shape)
        _, pred_shape = aligned_shapes(true_shape, pred_shape)
        axis = self._reduced_axis()
        if not pred_shape:
            return ()
        axis %= len(pred_shape)
        return tuple(pred_shape[:axis]) + tuple(pred_shape[axis + 1:])

    def _reduced_axis(self):
        """The axis ``call`` reduces: the loss's ``axis``, or its function's (a wrapper keeps it among the
        function's arguments: CosineSimilarity), the last by default."""
        axis = getattr(self, "axis", None)
        return getattr(self, "_fn_kwargs", {}).get("axis", -1) if axis is None else axis

    def weighted_grad(self, y_true, y_pred, weights):
        """d(sum(weights * call(y_true, y_pred)))/d(y_pred); ``weights`` has the per-sample values' shape.

        Each value here depends only on its own slice of ``y_pred`` along the axis the loss reduces (``axis``,
        the last by default), so the weights scale ``grad`` with that axis put back in. Losses whose values mix
        samples (Circle) or reduce over several axes (Dice) override it. A traced loss's graph takes ``weights``
        (or a number, every value's weight) as the seed of its backward pass.
        """
        if self.traced:
            from .models import loss_graph     # the graph runs as a functional model, a level above; import late
            return loss_graph.gradient(self, y_true, y_pred, weights)
        grad = self.grad(y_true, y_pred)
        axis = self._reduced_axis()
        if weights.ndim == grad.ndim - 1 and isinstance(axis, int):
            # the reduced axis, where it was: (N, C, K) values reduced over axis 1 are (N, K)
            return grad * array_module(weights).expand_dims(weights, axis % grad.ndim)
        return grad * weights.reshape(weights.shape + (1,) * (grad.ndim - weights.ndim))

    def _mask(self, y_true, y_pred):
        """Entries the reduction leaves out (Keras's loss mask), or None."""
        return None

    def _masks(self, y_true, y_pred, output_mask):
        """This loss's own mask and the model output's mask of padded steps, together (or None)."""
        own = self._mask(y_true, y_pred)
        if output_mask is None or own is None:
            return own if output_mask is None else output_mask
        return own & output_mask

    def reduction_weights(self, y_true, y_pred, values, sample_weight=None, output_mask=None):
        """Per-value factors of this loss's reduction: the scalar loss is ``(w * values).sum()``.

        ``output_mask``: the model output's mask of padded steps (Keras's mask on y_pred), which the
        reduction leaves out as it does the loss's own mask.
        """
        return reduction_weights(values, sample_weight, self._masks(y_true, y_pred, output_mask), self.reduction)

    def uniform_reduction_weight(self, y_true, y_pred, values_size, sample_weight=None, output_mask=None):
        """The single value of every ``reduction_weights`` factor when no sample weight or mask applies, else None.

        Saves building an array of equal weights in every training step.
        """
        if sample_weight is not None or output_mask is not None or self._mask(y_true, y_pred) is not None:
            return None
        return 1.0 if self.reduction == "sum" else 1.0 / max(int(values_size), 1)

    def validate_targets(self, y_true, output_shape):
        """Raise a ValueError saying what to do if host targets ``y_true`` cannot train ``output_shape``.

        A traced loss takes the shapes its call takes (Keras checks none): its call is traced for them here, so a
        call that cannot be traced is refused before training changes anything."""
        if self.traced:
            from .models import loss_graph     # the graph runs as a functional model, a level above; import late
            loss_graph.check(self, numpy.shape(y_true), tuple(output_shape))
            return
        _check_elementwise_targets(self.name, numpy.asarray(y_true), output_shape)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class LossFunctionWrapper(Loss):
    """A loss from a per-sample function ``fn(y_true, y_pred, **kwargs)`` and its gradient ``grad_fn``.

    ``grad_fn(y_true, y_pred, **kwargs)`` returns d(sum of fn's values)/d(y_pred). Without it the loss is traced
    (``Loss.traced``): ``fn`` is then written with ``gpu_dl.ops``, and gets ``y_true`` and ``y_pred`` with their
    ranks aligned as Keras's wrapper aligns them (a trailing axis of 1 dropped or added). ``given_as_function``
    marks the wrapper compile makes of a plain function, which a saved file writes as that function, as Keras
    does.
    """

    given_as_function = False

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, *, grad_fn=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"LossFunctionWrapper: `fn` must be callable, got {fn!r}.")
        if grad_fn is not None and not callable(grad_fn):
            raise TypeError(f"LossFunctionWrapper: `grad_fn` must be callable or None, got {grad_fn!r}.")
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype)
        self.fn = fn
        self.grad_fn = grad_fn
        self._fn_kwargs = kwargs

    def _writes_gradient(self, cls):
        # The wrapper's own grad passes the gradient on to grad_fn: without one it has none.
        return cls is not LossFunctionWrapper or self.grad_fn is not None

    def call(self, y_true, y_pred):
        if self.grad_fn is None:
            y_true, y_pred = _aligned(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def grad(self, y_true, y_pred):
        if self.grad_fn is None or self.traced:     # traced: grad_fn was written for another call
            return super().grad(y_true, y_pred)
        shape = array_module(y_pred).asarray(y_pred).shape
        # The gradient comes in the aligned shape; hand it back in y_pred's own.
        return self.grad_fn(y_true, y_pred, **self._fn_kwargs).reshape(shape)

    def get_config(self):
        config = super().get_config()
        if type(self) is LossFunctionWrapper:
            # As Keras's: the wrapper itself names its functions (saving writes them by their registered name);
            # its subclasses fix theirs in __init__. Keras's has no grad_fn: a traced wrapper writes none.
            config.update(fn=self.fn)
            if self.grad_fn is not None:
                config.update(grad_fn=self.grad_fn)
        config.update(self._fn_kwargs)
        return config


def _simple(cls_name, fn, grad_fn, default_name, doc):
    """A loss class with no arguments beyond Keras's (reduction, name, dtype)."""

    def __init__(self, reduction="sum_over_batch_size", name=default_name, dtype=None):
        LossFunctionWrapper.__init__(self, fn, reduction=reduction, name=name, dtype=dtype, grad_fn=grad_fn)

    return type(cls_name, (LossFunctionWrapper,), {
        "__init__": __init__, "__doc__": doc, "__module__": __name__,
        "get_config": Loss.get_config,
    })


MeanSquaredError = _simple("MeanSquaredError", mean_squared_error, _mean_squared_error_grad,
                           "mean_squared_error", "Mean of squared errors over the last axis.")
MeanAbsoluteError = _simple("MeanAbsoluteError", mean_absolute_error, _mean_absolute_error_grad,
                            "mean_absolute_error", "Mean of absolute errors over the last axis.")
MeanAbsolutePercentageError = _simple(
    "MeanAbsolutePercentageError", mean_absolute_percentage_error, _mean_absolute_percentage_error_grad,
    "mean_absolute_percentage_error", "100 * mean |(y_true - y_pred) / max(|y_true|, eps)| over the last axis.")
MeanSquaredLogarithmicError = _simple(
    "MeanSquaredLogarithmicError", mean_squared_logarithmic_error, _mean_squared_logarithmic_error_grad,
    "mean_squared_logarithmic_error", "Mean squared difference of log(max(x, eps) + 1) over the last axis.")
LogCosh = _simple("LogCosh", log_cosh, _log_cosh_grad, "log_cosh", "Mean of log(cosh(error)) over the last axis.")
Hinge = _simple("Hinge", hinge, _hinge_grad, "hinge",
                "Mean of max(1 - y_true * y_pred, 0); {0,1} targets become {-1,1}.")
SquaredHinge = _simple("SquaredHinge", squared_hinge, _squared_hinge_grad, "squared_hinge",
                       "Mean of max(1 - y_true * y_pred, 0)**2; {0,1} targets become {-1,1}.")
CategoricalHinge = _simple("CategoricalHinge", categorical_hinge, _categorical_hinge_grad, "categorical_hinge",
                           "max(max((1 - t) * p) - sum(t * p) + 1, 0) over the last axis.")
KLDivergence = _simple("KLDivergence", kl_divergence, _kl_divergence_grad, "kl_divergence",
                       "sum(t * log(t / p)) over the last axis, both clipped to [eps, 1].")
Poisson = _simple("Poisson", poisson, _poisson_grad, "poisson", "Mean of y_pred - y_true * log(y_pred + eps).")


class Huber(LossFunctionWrapper):
    """Quadratic for |error| <= delta, linear beyond; mean over the last axis."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not delta > 0:
            raise ValueError(f"Huber: `delta` must be a number > 0, got {delta!r}.")
        super().__init__(huber, reduction=reduction, name=name, dtype=dtype, grad_fn=_huber_grad, delta=float(delta))


class CosineSimilarity(LossFunctionWrapper):
    """The negative cosine similarity along ``axis`` (-1 for aligned vectors), a loss to minimise."""

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        axis = _check_axis(axis, "CosineSimilarity")
        super().__init__(cosine_similarity, reduction=reduction, name=name, dtype=dtype,
                         grad_fn=_cosine_similarity_grad, axis=axis)


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary cross-entropy of probabilities (or logits, ``from_logits=True``); mean over ``axis``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        label_smoothing = _check_smoothing(label_smoothing, "BinaryCrossentropy")
        axis = _check_axis(axis, "BinaryCrossentropy")
        super().__init__(binary_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         grad_fn=_binary_crossentropy_grad, from_logits=bool(from_logits),
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), label_smoothing, axis

    def target_grad(self, y_true, y_pred):
        return _binary_crossentropy_target_grad(y_true, y_pred, **self._fn_kwargs)

    def validate_targets(self, y_true, output_shape):
        y_true = numpy.asarray(y_true)
        _check_elementwise_targets(self.name, y_true, output_shape)
        low, high = float(y_true.min()), float(y_true.max())
        if low < 0 or high > 1:
            message = (f"Loss '{self.name}': targets must be in [0, 1] (0/1 labels or probabilities); "
                       f"got values from {low:g} to {high:g}.")
            if _is_whole(y_true) and high > 1:
                message += (" For more than two classes use a softmax output with "
                            "loss='sparse_categorical_crossentropy'.")
            raise ValueError(message)


class CategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy of one-hot (or probability) targets against probabilities, or logits.

    With ``from_logits=False`` Keras renormalises the predictions to sum 1 and
    clips them to [1e-7, 1 - 1e-7]. ``call_from_logits`` computes the same loss
    from the logits of a softmax layer through a fused, log-sum-exp softmax +
    cross-entropy with the same clip, and its gradient through the clip: a
    probability below 1e-7 (or above 1 - 1e-7) costs the log of its bound
    (-log 1e-7 ~= 16.1 at most per unit of target) and passes no gradient, as in
    Keras. The two paths agree to float32 rounding, saturated or not.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        label_smoothing = _check_smoothing(label_smoothing, "CategoricalCrossentropy")
        axis = _check_axis(axis, "CategoricalCrossentropy")
        super().__init__(categorical_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         grad_fn=_categorical_crossentropy_grad, from_logits=bool(from_logits),
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), label_smoothing, axis

    @property
    def softmax_fusable(self):
        return not self.from_logits and self.axis == -1

    def call_from_logits(self, y_true, logits, row_weights=None, grad_scale=1.0, want_grad=True):
        """(per-sample loss, softmax probabilities, d loss / d logits) from the logits of a softmax output.

        The gradient is that of ``grad_scale * (row_weights * loss).sum()`` (without weights, of
        ``grad_scale * loss.sum()``); it is None unless ``want_grad``.
        """
        xp = array_module(y_true, logits)
        targets = xp.asarray(y_true).astype(logits.dtype, copy=False)
        _same_shape(targets, logits, self.name)
        return softmax_xent(logits, targets, sparse=False, label_smoothing=self.label_smoothing, epsilon=EPSILON,
                            row_weights=row_weights, grad_scale=grad_scale, want_grad=want_grad)

    def validate_targets(self, y_true, output_shape):
        y_true = numpy.asarray(y_true)
        classes = output_shape[self.axis] if output_shape else None
        if _looks_like_class_ids(y_true, output_shape):
            raise ValueError(
                f"Loss '{self.name}' expects one-hot targets of shape {_batch_shape(y_true, output_shape)}, "
                f"but `y` holds integer class labels of shape {y_true.shape}: "
                + _SPARSE_HINT.format(classes=classes) + ".")
        if classes == 1:
            warn(f"Loss '{self.name}' on an output with 1 column is always 0; "
                 "use 'binary_crossentropy' for two classes.", SyntaxWarning)
        _check_elementwise_targets(self.name, y_true, output_shape)


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy of integer class ids against probabilities (or logits).

    Samples labelled ``ignore_class`` give 0 and are left out of the average.
    ``call_from_logits`` is the fused softmax + cross-entropy, with Keras's clip
    of the probabilities to [1e-7, 1 - 1e-7] (see ``CategoricalCrossentropy``).
    """

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        if ignore_class is not None and (isinstance(ignore_class, bool)
                                         or not isinstance(ignore_class, numbers.Integral)):
            raise ValueError("SparseCategoricalCrossentropy: `ignore_class` must be an integer or None, "
                             f"got {ignore_class!r}.")
        axis = _check_axis(axis, "SparseCategoricalCrossentropy")
        ignore_class = None if ignore_class is None else int(ignore_class)
        super().__init__(sparse_categorical_crossentropy, reduction=reduction, name=name, dtype=dtype,
                         grad_fn=_sparse_categorical_crossentropy_grad, from_logits=bool(from_logits),
                         ignore_class=ignore_class, axis=axis)
        self.from_logits, self.ignore_class, self.axis = bool(from_logits), ignore_class, axis

    @property
    def softmax_fusable(self):
        return not self.from_logits and self.axis == -1

    def call_from_logits(self, y_true, logits, row_weights=None, grad_scale=1.0, want_grad=True):
        """(per-sample loss, softmax probabilities, d loss / d logits) from the logits of a softmax output.

        The gradient is that of ``grad_scale * (row_weights * loss).sum()`` (without weights, of
        ``grad_scale * loss.sum()``); it is None unless ``want_grad``.
        """
        xp, labels, logits, valid = _sparse_labels(y_true, logits, -1, self.ignore_class)
        if valid is not None:
            # Ignored samples weigh nothing: folded into the row weights, the kernel zeroes their gradient.
            valid = valid.astype(logits.dtype)
            row_weights = valid if row_weights is None else row_weights * valid
        loss, probs, dlogits = softmax_xent(logits, labels, sparse=True, epsilon=EPSILON, row_weights=row_weights,
                                            grad_scale=grad_scale, want_grad=want_grad)
        if valid is not None:
            loss = loss * valid
        return loss, probs, dlogits

    def _converted(self, xp, y_true, y_pred):
        # Class ids stay as given (a float cast would round ids above 2**24).
        return xp.asarray(y_true), xp.asarray(y_pred, dtype=self.dtype)

    def _mask(self, y_true, y_pred):
        if self.ignore_class is None:
            return None
        labels = y_true
        if labels.ndim == y_pred.ndim and labels.shape[self.axis] == 1:
            labels = labels.squeeze(axis=self.axis)
        return labels != self.ignore_class

    def validate_targets(self, y_true, output_shape):
        y_true = numpy.asarray(y_true)
        out = _batch_shape(y_true, output_shape)
        axis = self.axis % len(out)
        classes = out[axis]
        per_sample = out[:axis] + out[axis + 1:]
        if y_true.shape not in (per_sample, per_sample + (1,)):
            message = (f"Loss '{self.name}' expects one integer class id per sample, `y` of shape {per_sample}, "
                       f"for the model output of shape {tuple(output_shape)}; got {y_true.shape}.")
            if y_true.shape == out:
                message += (" These look like one-hot rows: use loss='categorical_crossentropy', "
                            "or pass the class ids y.argmax(axis=-1).")
            raise ValueError(message)
        if not _is_whole(y_true):
            bad = y_true[numpy.mod(y_true, 1) != 0].flat[0]
            raise ValueError(f"Loss '{self.name}' needs integer class ids in `y`; got non-integer values such as "
                             f"{float(bad):g}. For probability targets use loss='categorical_crossentropy'.")
        labels = y_true if self.ignore_class is None else y_true[y_true != self.ignore_class]
        if labels.size and classes is not None and (labels.min() < 0 or labels.max() >= classes):
            worst = f"min {labels.min():g}" if labels.min() < 0 else f"max {labels.max():g}"
            raise ValueError(f"Loss '{self.name}': class labels in `y` must be in [0, {classes}); got {worst}. "
                             f"The model has {classes} outputs: check the labels, or give the last layer as many "
                             "units as there are classes.")
