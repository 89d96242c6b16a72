"""Keras 3's metrics at an operating point: PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity,
SpecificityAtSensitivity.

Each keeps the confusion counts of ``confusion_metrics`` at ``num_thresholds``
thresholds spread evenly over [0, 1] (0 and 1 included, unlike AUC's widened
ends; one threshold is 0.5), and reports the best value of one rate among the
thresholds where the other rate reaches the given value, or 0 where none
does. With more than one threshold, predictions are clipped to [0, 1] first,
as Keras's evenly spaced bucketing does: one above 1 is not above 1.0.
"""
from __future__ import annotations

import numbers

import numpy

from .confusion_metrics import _ConfusionMetric, _divide_no_nan
from .metric_base import in_metric_dtype


class SensitivitySpecificityBase(_ConfusionMetric):
    """Counts at evenly spaced thresholds; subclasses name their constraint (``VALUE``) and pick the rates."""

    VALUE = "value"

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        where = type(self).__name__
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(f"{where}: {self.VALUE} must be a number in [0, 1], got {value!r}.")
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, numbers.Integral) \
                or num_thresholds < 1:
            raise ValueError(f"{where}: num_thresholds must be an integer > 0, got {num_thresholds!r}.")
        self.value, self.num_thresholds = value, int(num_thresholds)
        n = self.num_thresholds
        thresholds = [0.5] if n == 1 else [0.0] + [(i + 1) * 1.0 / (n - 1) for i in range(n - 2)] + [1.0]
        super().__init__(thresholds=thresholds, class_id=class_id, name=name, dtype=dtype)
        self._clip = n > 1        # Keras takes even two thresholds, 0 and 1, for evenly spaced here

    def _rates(self):
        """(recall = sensitivity, specificity, precision) at each threshold, 0 where undefined."""
        tp, fp, tn, fn = self._count_arrays()
        return (_divide_no_nan(numpy, tp, tp + fn), _divide_no_nan(numpy, tn, tn + fp),
                _divide_no_nan(numpy, tp, tp + fp))

    def _best_where(self, constrained, dependent):
        """The largest ``dependent`` among thresholds where ``constrained`` >= the value; 0 if there is none."""
        return float(numpy.max(numpy.where(constrained >= self.value, dependent, 0.0), initial=0.0))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "class_id": self.class_id,
                "num_thresholds": self.num_thresholds, self.VALUE: self.value}


class SensitivityAtSpecificity(SensitivitySpecificityBase):
    """The best sensitivity tp / (tp + fn) at a threshold where the specificity tn / (tn + fp) is >= ``specificity``."""

    VALUE = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)
        self.specificity = specificity

    @in_metric_dtype
    def result(self):
        sensitivity, specificity, _ = self._rates()
        return self._best_where(specificity, sensitivity)


class SpecificityAtSensitivity(SensitivitySpecificityBase):
    """The best specificity at a threshold where the sensitivity is >= ``sensitivity``."""

    VALUE = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)
        self.sensitivity = sensitivity

    @in_metric_dtype
    def result(self):
        sensitivity, specificity, _ = self._rates()
        return self._best_where(sensitivity, specificity)


class PrecisionAtRecall(SensitivitySpecificityBase):
    """The best precision tp / (tp + fp) at a threshold where the recall tp / (tp + fn) is >= ``recall``."""

    VALUE = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)
        self.recall = recall

    @in_metric_dtype
    def result(self):
        recall, _, precision = self._rates()
        return self._best_where(recall, precision)


class RecallAtPrecision(SensitivitySpecificityBase):
    """The best recall at a threshold where the precision is >= ``precision`` (0 where none reaches it)."""

    VALUE = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)
        self.precision = precision

    @in_metric_dtype
    def result(self):
        recall, _, precision = self._rates()
        return self._best_where(precision, recall)
