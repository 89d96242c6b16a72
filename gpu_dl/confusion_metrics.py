"""Keras 3's confusion-matrix metrics: TruePositives ... FalseNegatives, Precision, Recall and AUC.

Each counts, over all batches seen, the (weighted) predictions above each
threshold among the positive and the negative targets. A prediction is
positive at threshold ``t`` when it is greater than ``t``; a target is positive
when it is non-zero. Without ``multi_label`` every entry of y_pred is one
prediction (labels of several columns are pooled); AUC with ``multi_label``
keeps one set of counts per column and averages the columns' areas. Where the
thresholds are evenly spaced over [0, 1] (AUC's from num_thresholds always
are), predictions are clipped to [0, 1] first, as Keras's bucketing does.

Counting is one pass over the batch, whatever the number of thresholds: each
prediction's rank among the sorted thresholds (``searchsorted``) says at how
many of them it is positive, a weighted ``bincount`` of those ranks and a
cumulative sum give the counts at every threshold. The counts are float64
arrays of the inputs' module, on the GPU for CuPy arrays.
"""
from __future__ import annotations

import numbers

import numpy

from .backend import array_module, to_numpy
from .losses import squeeze_or_expand_to_same_rank
from .metric_base import Metric, StateVariable, add_parts, in_metric_dtype, replace_part, state_array
from .ops.scattering import bin_counts

_EPSILON = 1e-7                 # Keras's backend.epsilon(), which widens AUC's end thresholds
_NEG_INF = -1e10                # Keras's threshold when only top_k decides


def _thresholds(value, where):
    """(float64 array, single) from a number or a list of numbers in [0, 1]; single: a number was given."""
    single = isinstance(value, numbers.Real) and not isinstance(value, bool)
    try:
        values = numpy.atleast_1d(numpy.asarray(value, dtype=numpy.float64))
    except (TypeError, ValueError):
        values = None
    if values is None or isinstance(value, bool) or values.ndim != 1 or not values.size \
            or not numpy.all((values >= 0) & (values <= 1)):
        raise ValueError(f"{where}: thresholds must be a number or a list of numbers in [0, 1], got {value!r}.")
    return values, single


def _optional_positive_int(value, what, where):
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
        raise ValueError(f"{where}: {what} must be a non-negative integer or None, got {value!r}.")
    return None if value is None else int(value)


def _evenly_spaced(thresholds):
    """Keras's is_evenly_distributed_thresholds: Keras then buckets predictions clipped to [0, 1], so one
    above 1 is not above the top threshold (1.0, or AUC's 1 + 1e-7) and one below 0 is above AUC's -1e-7."""
    n = len(thresholds)
    return n >= 3 and bool(numpy.allclose(thresholds, numpy.arange(n, dtype=numpy.float32) / (n - 1), atol=_EPSILON))


def _divide_no_nan(xp, a, b):
    return xp.where(b == 0, 0.0, a / xp.where(b == 0, 1.0, b))


class _DeviceConstants:
    """Host arrays a metric passes to every update, copied to each array module once, not every batch."""

    def __init__(self, **arrays):
        self._host, self._copies = arrays, {}

    def on(self, xp):
        if xp.__name__ not in self._copies:
            self._copies[xp.__name__] = {k: None if a is None else xp.asarray(a) for k, a in self._host.items()}
        return self._copies[xp.__name__]


def _threshold_table(thresholds, label_weights=None):
    order = numpy.argsort(thresholds, kind="stable")
    return _DeviceConstants(sorted=thresholds[order], unsort=numpy.argsort(order, kind="stable"),
                            label_weights=label_weights)


def confusion_counts(y_true, y_pred, thresholds, sample_weight=None, multi_label=False, label_weights=None,
                     table=None):
    """(tp, fp, tn, fn) at each threshold: float64 arrays (K,), or (K, labels) with ``multi_label``.

    ``table``: the ``_threshold_table`` of ``thresholds`` and ``label_weights``, which a metric keeps so
    that their device copies are made once, not in every training step."""
    xp = array_module(y_true, y_pred)
    constants = (table or _threshold_table(thresholds, label_weights)).on(xp)
    label_weights = constants["label_weights"]
    y_pred = xp.asarray(y_pred, dtype=xp.float64)
    y_true = xp.asarray(y_true)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    weights = xp.ones(y_pred.shape, dtype=xp.float64)
    if sample_weight is not None:
        sample_weight = xp.asarray(sample_weight, dtype=xp.float64)
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight[..., None]
                                                          if sample_weight.ndim == y_true.ndim - 1 else sample_weight)
        weights = weights * xp.broadcast_to(sample_weight, y_pred.shape)
    if label_weights is not None and not multi_label:
        weights = weights * xp.broadcast_to(label_weights, y_pred.shape)
    positive = xp.broadcast_to(y_true != 0, y_pred.shape)

    sorted_thresholds = constants["sorted"]
    k = len(thresholds)
    # rank = how many thresholds lie strictly below the prediction = at how many it is positive
    rank = xp.searchsorted(sorted_thresholds, y_pred, side="left")
    rank = xp.where(xp.isnan(y_pred), 0, rank)
    labels = y_pred.shape[-1] if multi_label and y_pred.ndim > 1 else 1
    if labels > 1:
        rank = rank + (k + 1) * xp.arange(labels)          # one block of ranks per column
    rank, positive, weights = rank.reshape(-1), positive.reshape(-1), weights.reshape(-1)
    size = labels * (k + 1)
    by_rank_pos = bin_counts(rank, size, xp.where(positive, weights, 0.0)).reshape(labels, k + 1)
    by_rank_neg = bin_counts(rank, size, xp.where(positive, 0.0, weights)).reshape(labels, k + 1)
    # positive at sorted threshold j: rank > j
    above_pos = by_rank_pos.sum(axis=1, keepdims=True) - xp.cumsum(by_rank_pos, axis=1)[:, :k]
    above_neg = by_rank_neg.sum(axis=1, keepdims=True) - xp.cumsum(by_rank_neg, axis=1)[:, :k]
    tp, fp = above_pos, above_neg
    fn = by_rank_pos.sum(axis=1, keepdims=True) - tp
    tn = by_rank_neg.sum(axis=1, keepdims=True) - fp
    unsort = constants["unsort"]
    counts = [c[:, unsort].T for c in (tp, fp, tn, fn)]      # (K, labels), in the caller's order
    return tuple(c if multi_label else c[:, 0] for c in counts)


class _CountsState:
    """The counts ``_counts`` (tp, fp, tn, fn: arrays of shape ``_count_shape``, float64 sums; None before any
    update) read and set as Keras's state variables: ``_STATE`` gives each variable's name and its count's
    index, in Keras's order."""

    _STATE = (("true_positives", 0), ("false_positives", 1), ("true_negatives", 2), ("false_negatives", 3))

    def _make_state_variables(self, shape):
        self._count_shape = tuple(shape)
        for name, _ in self._STATE:
            StateVariable(self, name, shape=shape)

    def _read_state(self, name):
        counts = self._counts
        return state_array(None if counts is None else counts[dict(self._STATE)[name]], self._count_shape,
                           self.dtype)

    def _write_state(self, name, array):
        self._counts = replace_part(self._counts, dict(self._STATE)[name], array, [self._count_shape] * 4)


class _ConfusionMetric(_CountsState, Metric):
    """Counts at thresholds, for class ``class_id`` alone or among the ``top_k`` predictions when given."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        where = f"{type(self).__name__}"
        self.top_k = _optional_positive_int(top_k, "top_k", where)
        self.class_id = _optional_positive_int(class_id, "class_id", where)
        self.init_thresholds = thresholds
        default = 0.5 if self.top_k is None else _NEG_INF
        self.thresholds, self._single = (numpy.array([default]), True) if thresholds is None else \
            _thresholds(thresholds, where)
        self._table = _threshold_table(self.thresholds)
        self._clip = _evenly_spaced(self.thresholds)
        super().__init__(name=name, dtype=dtype)
        self._make_state_variables((len(self.thresholds),))

    def reset_state(self):
        self._counts = None       # (tp, fp, tn, fn), arrays of the inputs' module

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = array_module(y_true, y_pred)
        y_pred = xp.asarray(y_pred, dtype=xp.float64)
        y_true = xp.asarray(y_true)
        if self.top_k is not None:
            # Keras: predictions outside each row's top k count as negative at every threshold
            kth = xp.sort(y_pred, axis=-1)[..., -self.top_k][..., None]
            y_pred = xp.where(y_pred >= kth, y_pred, _NEG_INF - 1.0)
        if self.class_id is not None:
            if y_pred.ndim < 2:
                raise ValueError(f"{type(self).__name__}: class_id needs y_pred of shape (samples, classes), got "
                                 f"{tuple(y_pred.shape)}.")
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
        if self._clip:
            y_pred = xp.clip(y_pred, 0.0, 1.0)
        batch = confusion_counts(y_true, y_pred, self.thresholds, sample_weight, table=self._table)
        self._counts = add_parts(self._counts, batch)

    def _count_arrays(self):
        if self._counts is None:
            zeros = numpy.zeros(len(self.thresholds))
            return zeros, zeros, zeros, zeros
        return tuple(to_numpy(c) for c in self._counts)

    def _report(self, values):
        values = numpy.asarray(values, dtype=numpy.float64)
        return float(values[0]) if self._single else [float(v) for v in values]

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class _CountMetric(_ConfusionMetric):
    INDEX = 0

    @property
    def _STATE(self):
        return (("accumulator", self.INDEX),)

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds=thresholds, name=name, dtype=dtype)

    @in_metric_dtype
    def result(self):
        return self._report(self._count_arrays()[self.INDEX])

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds}


class TruePositives(_CountMetric):
    """The (weighted) number of positive targets predicted positive."""
    INDEX = 0


class FalsePositives(_CountMetric):
    """The (weighted) number of negative targets predicted positive."""
    INDEX = 1


class TrueNegatives(_CountMetric):
    """The (weighted) number of negative targets predicted negative."""
    INDEX = 2


class FalseNegatives(_CountMetric):
    """The (weighted) number of positive targets predicted negative."""
    INDEX = 3


class Precision(_ConfusionMetric):
    """tp / (tp + fp): of the predictions above the threshold, the fraction whose target is positive."""

    _STATE = (("true_positives", 0), ("false_positives", 1))

    @in_metric_dtype
    def result(self):
        tp, fp, _, _ = self._count_arrays()
        return self._report(_divide_no_nan(numpy, tp, tp + fp))


class Recall(_ConfusionMetric):
    """tp / (tp + fn): of the positive targets, the fraction predicted above the threshold."""

    _STATE = (("true_positives", 0), ("false_negatives", 3))

    @in_metric_dtype
    def result(self):
        tp, _, _, fn = self._count_arrays()
        return self._report(_divide_no_nan(numpy, tp, tp + fn))


class AUC(_CountsState, Metric):
    """The area under the ROC or precision-recall curve, as a Riemann sum over ``num_thresholds`` thresholds
    spread evenly over [0, 1] (the ends widened by 1e-7), Keras's approximation."""

    CURVES = ("ROC", "PR")
    SUMMATIONS = ("interpolation", "minoring", "majoring")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        where = "AUC"
        if not isinstance(curve, str) or curve.upper() not in self.CURVES:
            raise ValueError(f"{where}: curve must be one of {self.CURVES}, got {curve!r}.")
        if not isinstance(summation_method, str) or summation_method.lower() not in self.SUMMATIONS:
            raise ValueError(f"{where}: summation_method must be one of {self.SUMMATIONS}, got {summation_method!r}.")
        self.curve, self.summation_method = curve.upper(), summation_method.lower()
        if thresholds is not None:
            values, _ = _thresholds(thresholds, where)
            self.thresholds = numpy.concatenate([[0.0 - _EPSILON], numpy.sort(values), [1.0 + _EPSILON]])
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, numbers.Integral) \
                    or num_thresholds <= 1:
                raise ValueError(f"{where}: num_thresholds must be an integer > 1, got {num_thresholds!r}.")
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self.thresholds = numpy.array([0.0 - _EPSILON] + inner + [1.0 + _EPSILON])
        self.num_thresholds = len(self.thresholds)
        self._init_thresholds = thresholds
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else numpy.asarray(label_weights, dtype=numpy.float64)
        self.from_logits = bool(from_logits)
        self._table = _threshold_table(self.thresholds, self.label_weights)
        self._clip = _evenly_spaced(self.thresholds)
        super().__init__(name=name, dtype=dtype)
        # Keras makes its counts here, or with multi_label and no num_labels at the first update
        if not self.multi_label or num_labels:
            self._make_state_variables((self.num_thresholds, num_labels) if self.multi_label else
                                       (self.num_thresholds,))

    def reset_state(self):
        self._counts = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = array_module(y_true, y_pred)
        y_pred = xp.asarray(y_pred, dtype=xp.float64)
        if "_count_shape" not in self.__dict__:
            self._make_state_variables((self.num_thresholds, y_pred.shape[-1]))
        if self.from_logits:
            y_pred = 1.0 / (1.0 + xp.exp(-y_pred))
        if self._clip:
            y_pred = xp.clip(y_pred, 0.0, 1.0)
        batch = confusion_counts(y_true, y_pred, self.thresholds, sample_weight, self.multi_label,
                                 self.label_weights, table=self._table)
        self._counts = add_parts(self._counts, batch)

    def _by_label(self, areas):
        """The per-threshold areas summed: over labels, their (weighted) mean with multi_label."""
        if not self.multi_label:
            return float(areas.sum())
        per_label = areas.sum(axis=0)
        if self.label_weights is None:
            return float(per_label.mean())
        return float(_divide_no_nan(numpy, (per_label * self.label_weights).sum(), self.label_weights.sum()))

    def _interpolated_pr(self, tp, fp, fn):
        """Davis and Goadrich's interpolation of the precision-recall curve between thresholds."""
        n = self.num_thresholds
        dtp = tp[:n - 1] - tp[1:]
        p = tp + fp
        dp = p[:n - 1] - p[1:]
        slope = _divide_no_nan(numpy, dtp, numpy.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:n - 1] > 0) & (p[1:] > 0)
        ratio = numpy.where(both, _divide_no_nan(numpy, p[:n - 1], numpy.maximum(p[1:], 0)), 1.0)
        with numpy.errstate(divide="ignore", invalid="ignore"):
            increments = _divide_no_nan(numpy, slope * (dtp + intercept * numpy.log(ratio)),
                                        numpy.maximum(tp[1:] + fn[1:], 0))
        return self._by_label(increments)

    @in_metric_dtype
    def result(self):
        if self._counts is None:
            return 0.0
        tp, fp, tn, fn = (to_numpy(c) for c in self._counts)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolated_pr(tp, fp, fn)
        recall = _divide_no_nan(numpy, tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(numpy, fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(numpy, tp, tp + fp)
        n = self.num_thresholds
        if self.summation_method == "interpolation":
            heights = (y[:n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = numpy.minimum(y[:n - 1], y[1:])
        else:
            heights = numpy.maximum(y[:n - 1], y[1:])
        return self._by_label((x[:n - 1] - x[1:]) * heights)

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds,
                  "curve": self.curve, "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels, "from_logits": self.from_logits,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist()}
        if self._init_thresholds is not None:
            config["thresholds"] = self.thresholds[1:-1].tolist()
        return config


class FBetaScore(Metric):
    """F-beta per class from predictions of shape (samples, classes): (1 + beta^2) P R / (beta^2 P + R).

    A prediction counts for a class when it is above ``threshold``, or without one when it is its row's
    largest value (ties all count). ``average``: None (one score per class), "micro" (from the counts of
    all classes pooled), "macro" (their mean) or "weighted" (weighted by each class's positive targets).
    """

    AVERAGES = (None, "micro", "macro", "weighted")

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        where = type(self).__name__
        if average not in self.AVERAGES:
            raise ValueError(f"{where}: average must be one of {self.AVERAGES}, got {average!r}.")
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta > 0:
            raise ValueError(f"{where}: beta must be a number > 0, got {beta!r}.")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                                      or not 0 < threshold <= 1):
            raise ValueError(f"{where}: threshold must be a number in (0, 1] or None, got {threshold!r}.")
        self.average, self.beta, self.threshold = average, float(beta), threshold
        super().__init__(name=name, dtype=dtype)

    _STATE = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")

    def reset_state(self):
        self._sums = None      # true positives, false positives, false negatives, positive targets

    def _read_state(self, name):
        index = self._STATE.index(name)
        return state_array(None if self._sums is None else self._sums[index], self._sum_shape, self.dtype)

    def _write_state(self, name, array):
        self._sums = replace_part(self._sums, self._STATE.index(name), array, [self._sum_shape] * 4)

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = array_module(y_true, y_pred)
        y_true = xp.asarray(y_true, dtype=xp.float64)
        y_pred = xp.asarray(y_pred, dtype=xp.float64)
        if y_true.ndim != 2 or y_pred.ndim != 2:
            raise ValueError(f"{type(self).__name__} expects 2-D y_true and y_pred of shape (samples, classes), "
                             f"got {tuple(y_true.shape)} and {tuple(y_pred.shape)}.")
        if self.threshold is None:
            predicted = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (xp.abs(y_pred) > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.astype(xp.float64)
        weight = 1.0 if sample_weight is None else xp.asarray(sample_weight, dtype=xp.float64).reshape(-1, 1)
        axis = None if self.average == "micro" else 0
        if "_sum_shape" not in self.__dict__:
            # Keras makes its four sums at the first update, one per class (one in all with "micro")
            self._sum_shape = () if axis is None else (y_pred.shape[-1],)
            for name in self._STATE:
                StateVariable(self, name, shape=self._sum_shape)
        batch = tuple((v * weight).sum(axis=axis) for v in (predicted * y_true, predicted * (1 - y_true),
                                                             (1 - predicted) * y_true, y_true))
        self._sums = add_parts(self._sums, batch)

    @in_metric_dtype
    def result(self):
        if self._sums is None:
            return 0.0
        tp, fp, fn, positives = (to_numpy(s) for s in self._sums)
        precision = tp / (tp + fp + _EPSILON)
        recall = tp / (tp + fn + _EPSILON)
        beta2 = self.beta ** 2
        score = (1 + beta2) * (precision * recall) / (beta2 * precision + recall + _EPSILON)
        if self.average == "weighted":
            return float((score * positives / (positives.sum() + _EPSILON)).sum())
        if self.average is not None:
            return float(numpy.mean(score))
        return [float(s) for s in numpy.atleast_1d(score)]

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """FBetaScore with beta = 1: the harmonic mean of precision and recall."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config
