"""Keras 3's per-sample correlations: ``pearson_correlation`` and ``concordance_correlation``.

Each gives one coefficient per sample along ``axis`` (an integer or a tuple),
in y_pred's float dtype; the metrics PearsonCorrelation and
ConcordanceCorrelation (in ``metrics``) average them over all samples seen,
as Keras's streaming versions do. Variances are population variances (ddof
0). A sample whose values are all equal has no Pearson coefficient: NaN, as
in Keras.
"""
from __future__ import annotations

import numpy

from .backend import array_module, floatx
from .losses import squeeze_or_expand_to_same_rank

_EPSILON = 1e-7                 # Keras's backend.epsilon() in the concordance denominator


def _pair(y_true, y_pred):
    xp = array_module(y_true, y_pred)
    y_pred = xp.asarray(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(floatx())
    y_true = xp.asarray(y_true).astype(y_pred.dtype, copy=False)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def pearson_correlation(y_true, y_pred, axis=-1):
    """mean(z(y_true) * z(y_pred)) along ``axis``, z the deviations from the mean over their standard deviation."""
    y_true, y_pred = _pair(y_true, y_pred)
    t = y_true - y_true.mean(axis=axis, keepdims=True)
    p = y_pred - y_pred.mean(axis=axis, keepdims=True)
    with numpy.errstate(divide="ignore", invalid="ignore"):     # constant samples: NaN, as Keras gives
        t = t / t.std(axis=axis, keepdims=True)
        p = p / p.std(axis=axis, keepdims=True)
    return (t * p).mean(axis=axis)


def concordance_correlation(y_true, y_pred, axis=-1):
    """Lin's coefficient, mean(2 cov / (var_t + var_p + (mean_t - mean_p)^2 + eps)) along ``axis``."""
    y_true, y_pred = _pair(y_true, y_pred)
    true_mean = y_true.mean(axis=axis, keepdims=True)
    pred_mean = y_pred.mean(axis=axis, keepdims=True)
    true_var = (y_true - true_mean).var(axis=axis, keepdims=True)
    pred_var = (y_pred - pred_mean).var(axis=axis, keepdims=True)
    # Keras centres y_true on y_pred's mean here; the mean of the product is the covariance all the same
    # (y_pred's deviations average to 0), and writing it as Keras does keeps its rounding.
    covariance = (y_true - pred_mean) * (y_pred - pred_mean)
    norm = true_var + pred_var + (true_mean - pred_mean) ** 2
    return (2 * covariance / (norm + _EPSILON)).mean(axis=axis)
