"""Metrics: Keras 3's stateful metrics.

A metric accumulates with ``update_state(y_true, y_pred, sample_weight=None)``,
reports with ``result()`` (a Python float) and starts over with
``reset_state()``. The running sums are 0-d arrays of the inputs' module: on
the GPU they stay on the device, and ``result()`` is the only place that
copies anything to the host.

Like Keras's ``Mean``, averaging metrics first reduce each sample's values to
one number (their mean), then average those over all samples seen (weighted
by ``sample_weight`` where given).

``get(identifier, loss=..., y_true_shape=..., y_pred_shape=...)`` resolves what
``compile(metrics=[...])`` was given, as Keras 3's compile does: "accuracy"
and "acc" become binary accuracy when the output has one column, sparse
categorical accuracy when the targets have lower rank than the output (or a
last axis of 1 against several output columns), and categorical accuracy
otherwise; "crossentropy" and "ce" resolve the same way to cross-entropies.
A metric given by string is named as written ("acc", "mse").
"""
from __future__ import annotations

import inspect
import numbers

import numpy

from . import losses
from .backend import array_module, floatx, to_numpy
from .catalogue import from_keras_config, keras_config, keras_snake_case, lookup, snake_case
from .confusion_metrics import (AUC, F1Score, FalseNegatives, FalsePositives, FBetaScore, Precision, Recall,
                                TrueNegatives, TruePositives)
from .correlation_metrics import concordance_correlation, pearson_correlation
from .iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from .losses import squeeze_or_expand_to_same_rank
from .metric_base import (Metric, StateVariable, add_parts, in_metric_dtype, mean_result, replace_part,
                          state_array)
from .sensitivity_metrics import (PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity,
                                  SpecificityAtSensitivity)


# ---------------------------------------------------- accuracy functions
def accuracy(y_true, y_pred):
    """1.0 where ``y_true == y_pred`` exactly, else 0.0."""
    xp = array_module(y_true, y_pred)
    y_pred = xp.asarray(y_pred)
    y_true = xp.asarray(y_true).astype(y_pred.dtype, copy=False)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).astype(floatx())


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where ``(y_pred > threshold)`` equals ``y_true``."""
    xp = array_module(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(xp.asarray(y_true), xp.asarray(y_pred))
    predicted = (y_pred > threshold).astype(y_true.dtype)
    return (y_true == predicted).astype(floatx())


def _argmax_matches(xp, labels, y_pred):
    """1.0 where argmax(y_pred) equals the (float) label, shaped like the labels (Keras's rules)."""
    original_shape = labels.shape
    reshape = labels.ndim == y_pred.ndim and labels.shape[-1] == 1
    if reshape:
        labels = labels.squeeze(axis=-1)
    predicted = y_pred.argmax(axis=-1)
    if labels.dtype.kind not in "iu":       # integer labels are compared with the integer argmax as they are
        predicted = predicted.astype(labels.dtype)
    # the comparison written as floats where they are to go: (labels == predicted).astype(floatx()) without the
    # boolean array between (an allocation and a copy on the device per step)
    matches = xp.empty(numpy.broadcast_shapes(labels.shape, predicted.shape), floatx())
    xp.equal(labels, predicted, out=matches)
    return matches.reshape(original_shape) if reshape else matches


def categorical_accuracy(y_true, y_pred):
    """1.0 where the argmax of the one-hot ``y_true`` equals the argmax of ``y_pred``."""
    xp = array_module(y_true, y_pred)
    y_pred = xp.asarray(y_pred)
    labels = _as_compared_ids(xp.asarray(y_true).argmax(axis=-1), y_pred)
    return _argmax_matches(xp, labels, y_pred)


def _as_compared_ids(labels, y_pred):
    """Class ids as Keras compares them with the argmax of ``y_pred``: cast to y_pred's dtype. Integer ids are
    kept as they are where that cast cannot change the outcome, which saves two casts (device operations) a step:
    every argmax, below the class count, is exact in a float dtype whose integers are exact up to that count, so
    an id rounding to an argmax there is that argmax."""
    if labels.dtype.kind in "iu" and y_pred.dtype.kind == "f" and \
            y_pred.shape[-1] <= 2 ** (numpy.finfo(y_pred.dtype).nmant + 1):
        return labels
    return labels.astype(y_pred.dtype)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the class id ``y_true`` equals the argmax of ``y_pred``."""
    xp = array_module(y_true, y_pred)
    y_pred = xp.asarray(y_pred)
    labels = _as_compared_ids(xp.asarray(y_true), y_pred)
    matches = _argmax_matches(xp, labels, y_pred)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = matches.squeeze(axis=-1)
    return matches


def in_top_k(targets, predictions, k):
    """True where the target's score is >= the k-th largest score of its row (ties count as in)."""
    xp = array_module(targets, predictions)
    classes = predictions.shape[-1]
    target_scores = xp.take_along_axis(predictions, targets.astype(xp.int64)[:, None], axis=-1)[:, 0]
    kth_largest = xp.sort(predictions, axis=-1)[:, max(classes - k, 0)]
    return target_scores >= kth_largest


def _top_k_matches(xp, labels, y_pred, k):
    original_shape = labels.shape
    if y_pred.ndim > 2:
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    matches = in_top_k(labels.reshape(-1), y_pred, k).astype(floatx())
    return matches.reshape(original_shape)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the one-hot ``y_true``'s class is among the ``k`` highest scores of ``y_pred``."""
    xp = array_module(y_true, y_pred)
    y_pred = xp.asarray(y_pred)
    return _top_k_matches(xp, xp.asarray(y_true).argmax(axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1.0 where the class id ``y_true`` is among the ``k`` highest scores of ``y_pred``.

    With ``from_sorted_ids``, ``y_pred`` holds class ids sorted by score and
    its first ``k`` columns are the top k.
    """
    xp = array_module(y_true, y_pred)
    y_pred = xp.asarray(y_pred)
    labels = xp.asarray(y_true)
    if not from_sorted_ids:
        return _top_k_matches(xp, labels.astype(xp.int64), y_pred, k)
    original_shape = labels.shape
    if y_pred.ndim > 2:
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    matches = (labels.reshape(-1)[:, None].astype(y_pred.dtype) == y_pred[:, :k]).any(axis=1)
    return matches.astype(floatx()).reshape(original_shape)


# ------------------------------------------- loss functions as metrics
# Keras 3 exports these loss functions from keras.metrics too: the losses' own per-sample values.
mean_squared_error = losses.mean_squared_error
mean_absolute_error = losses.mean_absolute_error
mean_absolute_percentage_error = losses.mean_absolute_percentage_error
mean_squared_logarithmic_error = losses.mean_squared_logarithmic_error
binary_crossentropy = losses.binary_crossentropy
categorical_crossentropy = losses.categorical_crossentropy
sparse_categorical_crossentropy = losses.sparse_categorical_crossentropy
binary_focal_crossentropy = losses.binary_focal_crossentropy
categorical_focal_crossentropy = losses.categorical_focal_crossentropy
hinge = losses.hinge
squared_hinge = losses.squared_hinge
categorical_hinge = losses.categorical_hinge
huber = losses.huber
kl_divergence = losses.kl_divergence
log_cosh = losses.log_cosh
poisson = losses.poisson


# ----------------------------------------------------------------- base
def _samplewise(xp, values, sample_weight, reduce="mean"):
    """Keras's reduce_to_samplewise_values: one value per sample (weighted), and the per-sample weights.

    ``reduce`` ("mean" or "sum") folds each sample's trailing axes.
    """
    def fold(x, axes):
        return x.mean(axis=axes) if reduce == "mean" else x.sum(axis=axes)

    if sample_weight is not None:
        sample_weight = xp.asarray(sample_weight, dtype=values.dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        if values.ndim > sample_weight.ndim:
            values = fold(values, tuple(range(sample_weight.ndim, values.ndim)))
        sample_weight = xp.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if sample_weight.ndim > 1:
            sample_weight = fold(sample_weight, tuple(range(1, sample_weight.ndim)))
    if values.ndim > 1:
        values = fold(values, tuple(range(1, values.ndim)))
    return values, sample_weight


class Sum(Metric):
    """The (weighted) sum of all values seen, in the metric's dtype as Keras's; its state reads as Keras's
    ``total`` variable."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        StateVariable(self, "total")

    def reset_state(self):
        self._total = None

    def update_state(self, values, sample_weight=None):
        xp = array_module(values, sample_weight)
        values, _ = _samplewise(xp, xp.asarray(values, dtype=self.dtype), sample_weight, reduce="sum")
        batch = values.sum()
        self._total = batch if self._total is None else self._total + batch

    def _read_state(self, name):
        return numpy.zeros((), self.dtype) if self._total is None else \
            array_module(self._total).asarray(self._total, dtype=self.dtype)

    def _write_state(self, name, array):
        self._total = array

    def result(self):
        return 0.0 if self._total is None else float(numpy.dtype(self.dtype).type(to_numpy(self._total)))


class Mean(Metric):
    """The (weighted) mean of all values seen: per-sample means, averaged over the samples. Summed in the
    metric's dtype and divided in it, as Keras's; its state reads as Keras's ``total`` and ``count`` variables
    (``variables``, the model's ``metrics_variables``)."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        StateVariable(self, "total")
        StateVariable(self, "count")

    def reset_state(self):
        self._total = None        # 0-d array of the inputs' module, in the metric's dtype
        self._weight_total = None  # the same, summing sample weights
        self._unweighted = 0      # samples seen without weights (known on the host from shapes)

    def update_state(self, values, sample_weight=None):
        xp = array_module(values, sample_weight)
        values, sample_weight = _samplewise(xp, xp.asarray(values, dtype=self.dtype), sample_weight)
        batch_total = values.sum()
        self._total = batch_total if self._total is None else self._total + batch_total
        if sample_weight is None:
            self._unweighted += values.shape[0] if values.ndim >= 1 else 1
        else:
            weights = sample_weight.sum()
            self._weight_total = weights if self._weight_total is None else self._weight_total + weights

    def _count(self):
        """The count of samples (or their weights) as a number or a 0-d array."""
        count = numpy.dtype(self.dtype).type(self._unweighted)
        return count if self._weight_total is None else self._weight_total + count

    def _read_state(self, name):
        value = self._total if name == "total" else self._count()
        return numpy.zeros((), self.dtype) if value is None else array_module(value).asarray(value, dtype=self.dtype)

    def _write_state(self, name, array):
        if name == "total":
            self._total = array
        else:
            self._weight_total, self._unweighted = array, 0

    def result(self):
        if self._total is None:
            return 0.0
        return mean_result(self._total, self._count(), self.dtype)


class MeanMetricWrapper(Mean):
    """The mean over all samples of a per-sample function ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: `fn` must be callable, got {fn!r}.")
        super().__init__(name=name or "mean_metric_wrapper", dtype=dtype)     # Keras's name, whatever fn is
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        # As Keras's: the wrapper itself names its function (saving writes it by its registered name); its
        # subclasses fix theirs in __init__.
        own = {"fn": self._fn} if type(self) is MeanMetricWrapper else {}
        return {**super().get_config(), **own, **self._fn_kwargs}


def _wrapper_class(cls_name, fn, default_name, doc, **defaults):
    """A MeanMetricWrapper subclass over ``fn`` with Keras's (name, dtype, **defaults) arguments."""
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                  inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default_name),
                  inspect.Parameter("dtype", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)]
    parameters += [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v)
                   for k, v in defaults.items()]
    signature = inspect.Signature(parameters)

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop("self")
        name, dtype = arguments.pop("name"), arguments.pop("dtype")
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **arguments)
        for key, value in arguments.items():
            setattr(self, key, value)

    __init__.__signature__ = signature
    return type(cls_name, (MeanMetricWrapper,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"`k` must be a positive integer, got {k!r}.")
    return int(k)


# ------------------------------------------------------------ accuracies
class Accuracy(MeanMetricWrapper):
    """How often predictions equal the targets exactly."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches 0/1 targets."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise ValueError(f"BinaryAccuracy: `threshold` must be a number, got {threshold!r}.")
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=float(threshold))
        self.threshold = float(threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of the prediction is the one-hot target's class."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of the prediction is the integer target."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target's class is among the ``k`` highest scores."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        self.k = _check_k(k)
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=self.k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer target is among the ``k`` highest scores."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        self.k = _check_k(k)
        self.from_sorted_ids = bool(from_sorted_ids)
        kwargs = {"from_sorted_ids": True} if from_sorted_ids else {}
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=self.k, **kwargs)


# ---------------------------------------------- losses averaged as metrics
def _positive_cosine_similarity(y_true, y_pred, axis=-1):
    """The cosine similarity itself (the loss of that name is its negative)."""
    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


MeanSquaredError = _wrapper_class("MeanSquaredError", losses.mean_squared_error, "mean_squared_error",
                                  "Mean of the squared errors.")
MeanAbsoluteError = _wrapper_class("MeanAbsoluteError", losses.mean_absolute_error, "mean_absolute_error",
                                   "Mean of the absolute errors.")
MeanAbsolutePercentageError = _wrapper_class(
    "MeanAbsolutePercentageError", losses.mean_absolute_percentage_error, "mean_absolute_percentage_error",
    "Mean absolute percentage error.")
MeanSquaredLogarithmicError = _wrapper_class(
    "MeanSquaredLogarithmicError", losses.mean_squared_logarithmic_error, "mean_squared_logarithmic_error",
    "Mean squared logarithmic error.")
CosineSimilarity = _wrapper_class("CosineSimilarity", _positive_cosine_similarity, "cosine_similarity",
                                  "Mean cosine similarity (1 for aligned vectors).", axis=-1)
LogCoshError = _wrapper_class("LogCoshError", losses.log_cosh, "logcosh", "Mean log(cosh(error)).")
KLDivergence = _wrapper_class("KLDivergence", losses.kl_divergence, "kl_divergence",
                              "Mean Kullback-Leibler divergence.")
Poisson = _wrapper_class("Poisson", losses.poisson, "poisson", "Mean Poisson loss.")
Hinge = _wrapper_class("Hinge", losses.hinge, "hinge", "Mean hinge loss.")
SquaredHinge = _wrapper_class("SquaredHinge", losses.squared_hinge, "squared_hinge", "Mean squared hinge loss.")
CategoricalHinge = _wrapper_class("CategoricalHinge", losses.categorical_hinge, "categorical_hinge",
                                  "Mean categorical hinge loss.")
BinaryCrossentropy = _wrapper_class("BinaryCrossentropy", losses.binary_crossentropy, "binary_crossentropy",
                                    "Mean binary cross-entropy.", from_logits=False, label_smoothing=0)
CategoricalCrossentropy = _wrapper_class(
    "CategoricalCrossentropy", losses.categorical_crossentropy, "categorical_crossentropy",
    "Mean categorical cross-entropy.", from_logits=False, label_smoothing=0, axis=-1)
SparseCategoricalCrossentropy = _wrapper_class(
    "SparseCategoricalCrossentropy", losses.sparse_categorical_crossentropy, "sparse_categorical_crossentropy",
    "Mean sparse categorical cross-entropy.", from_logits=False, ignore_class=None, axis=-1)


def _checked_axis(axis, where):
    """An integer or a tuple of integers (a list, as a JSON config gives it back, becomes a tuple)."""
    if isinstance(axis, (list, tuple)) and axis:
        axes = tuple(axis)
    else:
        axes = (axis,)
    if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
        raise ValueError(f"{where}: axis must be an integer or a tuple of integers, got {axis!r}.")
    return tuple(int(a) for a in axes) if isinstance(axis, (list, tuple)) else int(axis)


class PearsonCorrelation(MeanMetricWrapper):
    """The Pearson correlation of each sample along ``axis``, averaged over all samples seen."""

    def __init__(self, name="pearson_correlation", dtype=None, axis=-1):
        self.axis = _checked_axis(axis, "PearsonCorrelation")
        super().__init__(pearson_correlation, name=name, dtype=dtype, axis=self.axis)


class ConcordanceCorrelation(MeanMetricWrapper):
    """Lin's concordance correlation of each sample along ``axis``, averaged over all samples seen."""

    def __init__(self, name="concordance_correlation", dtype=None, axis=-1):
        self.axis = _checked_axis(axis, "ConcordanceCorrelation")
        super().__init__(concordance_correlation, name=name, dtype=dtype, axis=self.axis)


class RootMeanSquaredError(Mean):
    """Square root of the mean squared error over all elements seen."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = array_module(y_true, y_pred)
        y_true = xp.asarray(y_true, dtype=self.dtype)
        y_pred = xp.asarray(y_pred, dtype=self.dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        super().update_state((y_pred - y_true) ** 2, sample_weight=sample_weight)

    def result(self):
        return float(numpy.sqrt(numpy.dtype(self.dtype).type(super().result())))


class R2Score(Metric):
    """The coefficient of determination per output column, 1 - SS_res / SS_tot, over all samples seen.

    ``class_aggregation``: "uniform_average" (the columns' mean), "variance_weighted_average" (weighted
    by each column's SS_tot) or None (one score per column); ``num_regressors`` > 0 gives the adjusted
    R^2, 1 - (1 - R^2)(n - 1)/(n - p - 1), n the number of values seen. y_true, y_pred: (samples, outputs).
    """

    AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        if class_aggregation not in self.AGGREGATIONS:
            raise ValueError(f"R2Score: class_aggregation must be one of {self.AGGREGATIONS}, "
                             f"got {class_aggregation!r}.")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, numbers.Integral) or num_regressors < 0:
            raise ValueError(f"R2Score: num_regressors must be an integer >= 0, got {num_regressors!r}.")
        self.class_aggregation, self.num_regressors = class_aggregation, int(num_regressors)
        super().__init__(name=name, dtype=dtype)
        StateVariable(self, "num_samples")

    # Keras's names of the sums per column, with their places in ``_sums``, in the order Keras makes them
    _SUMS = (("squared_sum", 1), ("sum", 0), ("residual", 2), ("count", 3))

    def _read_state(self, name):
        if name == "num_samples":
            return numpy.asarray(self._values, dtype=self.dtype)
        return state_array(None if self._sums is None else self._sums[dict(self._SUMS)[name]], self._columns,
                           self.dtype)

    def _write_state(self, name, array):
        if name == "num_samples":
            self._values = int(to_numpy(array))
        else:
            self._sums = replace_part(self._sums, dict(self._SUMS)[name], array, [self._columns] * 4)

    def reset_state(self):
        self._sums = None          # per column: sum w*y, sum w*y^2, sum w*(y - p)^2, sum w
        self._values = 0           # values seen (samples x outputs), known from shapes

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = array_module(y_true, y_pred)
        y_true = xp.asarray(y_true, dtype=xp.float64)
        y_pred = xp.asarray(y_pred, dtype=xp.float64)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if y_true.ndim != 2 or y_pred.ndim != 2:
            raise ValueError(f"R2Score expects 2-D y_true and y_pred of shape (samples, outputs), got "
                             f"{tuple(y_true.shape)} and {tuple(y_pred.shape)}.")
        w = xp.ones(y_true.shape) if sample_weight is None else xp.asarray(sample_weight, dtype=xp.float64)
        if w.ndim == 1:
            w = w[:, None]
        w = xp.broadcast_to(w, y_true.shape)
        if "_columns" not in self.__dict__:
            # Keras makes its sums per column at the first update
            self._columns = (y_true.shape[1],)
            for name, _ in self._SUMS:
                StateVariable(self, name, shape=self._columns)
        batch = ((w * y_true).sum(0), (w * y_true * y_true).sum(0), (w * (y_true - y_pred) ** 2).sum(0), w.sum(0))
        self._sums = add_parts(self._sums, batch)
        self._values += y_true.size

    @in_metric_dtype
    def result(self):
        if self._sums is None:
            return 0.0
        total_y, total_y2, residual, count = (to_numpy(v) for v in self._sums)
        with numpy.errstate(divide="ignore", invalid="ignore"):
            total = total_y2 - total_y * (total_y / count)
            raw = 1 - residual / total
        raw = numpy.where(numpy.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = float(raw.mean())
        elif self.class_aggregation == "variance_weighted_average":
            score = float((total * raw).sum() / total.sum())
        else:
            return [float(v) for v in raw]
        n, p = self._values, self.num_regressors
        if p and p < n - 1:      # Keras falls back to plain R^2 (with a warning) when n - p - 1 <= 0
            score = 1 - (1 - score) * (n - 1) / (n - p - 1)
        return score

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


# ---------------------------------------------------------------- registry
_CLASSES = {cls.__name__: cls for cls in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, RootMeanSquaredError,
    MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, CosineSimilarity, LogCoshError,
    KLDivergence, Poisson, Hinge, SquaredHinge, CategoricalHinge, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, TruePositives, FalsePositives, TrueNegatives, FalseNegatives, Precision, Recall,
    AUC, FBetaScore, F1Score, R2Score, PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity,
    SpecificityAtSensitivity, IoU, BinaryIoU, MeanIoU, OneHotIoU, OneHotMeanIoU, PearsonCorrelation,
    ConcordanceCorrelation)}


def _huber():
    return MeanMetricWrapper(losses.huber, name="huber")


_NAMES = {snake_case(name): cls for name, cls in _CLASSES.items()}
_NAMES.update({
    # Keras 3's aliases, then older names of the same metrics.
    "mse": MeanSquaredError, "mae": MeanAbsoluteError, "mape": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "bce": BinaryCrossentropy,
    "rmse": RootMeanSquaredError,
    "logcosh": LogCoshError, "log_cosh": LogCoshError,
    "kld": KLDivergence, "kullback_leibler_divergence": KLDivergence,
    "cosine_proximity": CosineSimilarity,
    "huber": _huber, "huber_loss": _huber,
})

_ACCURACY_WORDS = ("accuracy", "acc")
_CROSSENTROPY_WORDS = ("crossentropy", "ce")


def _binary_or_sparse(loss, y_true_shape, y_pred_shape):
    """Keras 3's is_binary_or_sparse_categorical; without shapes, the loss decides."""
    if y_true_shape is not None and y_pred_shape is not None:
        y_true_shape, y_pred_shape = tuple(y_true_shape), tuple(y_pred_shape)
        is_binary = y_pred_shape[-1] == 1
        is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and (y_pred_shape[-1] or 0) > 1)
        return is_binary, is_sparse
    return isinstance(loss, losses.BinaryCrossentropy), isinstance(loss, losses.SparseCategoricalCrossentropy)


def deserialize(config, custom_objects=None):
    """The metric a ``serialize`` dict (or a Keras one) describes; ``custom_objects`` maps names to classes."""
    return from_keras_config("metrics", config, {snake_case(n): c for n, c in _CLASSES.items()}, custom_objects)


def serialize(metric):
    """Keras's config dict: ``{"module", "class_name", "config", "registered_name"}``."""
    if not isinstance(metric, Metric):
        raise TypeError(f"serialize expects a gpu_dl Metric, got {metric!r}.")
    return keras_config(metric, "keras.metrics", _CLASSES.get(type(metric).__name__) is type(metric))


def _without_arguments(factory, identifier):
    """``factory()``; a metric that needs arguments (IoU's num_classes, PrecisionAtRecall's recall) says so."""
    needed = [p.name for p in inspect.signature(factory).parameters.values()
              if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if needed:
        example = ", ".join(f"{n}=..." for n in needed)
        raise ValueError(f"The metric {identifier!r} needs {', '.join(needed)}: pass an instance such as "
                         f"gpu_dl.metrics.{factory.__name__}({example}) instead of its name or class.")
    return factory()


def get(identifier, *, loss=None, y_true_shape=None, y_pred_shape=None):
    """A Metric from a name, a Metric, a Metric class, a config dict, a Loss or a per-sample function.

    ``loss`` (the compiled Loss) and the shapes of the targets and of the
    model output resolve "accuracy"/"acc" and "crossentropy"/"ce".
    """
    if identifier is None:
        raise ValueError("Expected a metric, got None.")
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        word = identifier.strip().lower()
        if word in _ACCURACY_WORDS + _CROSSENTROPY_WORDS:
            is_binary, is_sparse = _binary_or_sparse(loss, y_true_shape, y_pred_shape)
            if word in _ACCURACY_WORDS:
                choices = (BinaryAccuracy, SparseCategoricalAccuracy, CategoricalAccuracy)
            else:
                choices = (BinaryCrossentropy, SparseCategoricalCrossentropy, CategoricalCrossentropy)
            cls = choices[0] if is_binary else choices[1] if is_sparse else choices[2]
            return cls(name=identifier)
        metric = _without_arguments(lookup("metrics", identifier, _NAMES), identifier)
        metric.name = identifier
        return metric
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if inspect.isclass(identifier) and issubclass(identifier, Metric):
        return _without_arguments(identifier, identifier.__name__)
    if isinstance(identifier, losses.Loss):
        # The loss's per-sample values, averaged over the samples.
        return MeanMetricWrapper(identifier.call, name=identifier.name)
    if callable(identifier):
        # Named as Keras's compile names it: the function's name (an object's class name) in snake case.
        name = getattr(identifier, "__name__", None) or type(identifier).__name__
        return MeanMetricWrapper(identifier, name=keras_snake_case(name) or "mean_metric_wrapper")
    raise TypeError(f"Could not interpret metric identifier {identifier!r}: expected a metric name such as "
                    "'accuracy' or 'mae', a gpu_dl.metrics.Metric, a config dict or a function "
                    "fn(y_true, y_pred) returning per-sample values.")
