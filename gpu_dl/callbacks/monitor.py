"""Callbacks that watch one logged quantity: which way is better, and what counts as an improvement."""
from __future__ import annotations

import numpy

from ..backend.user_warnings import warn
from .base import Callback


# Metrics that Keras 3 marks as better when higher (``_direction = "up"``); the
# other built-in metrics average a loss and are better when lower.
_METRICS_UP = frozenset({
    "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "CosineSimilarity", "R2Score",
    "AUC", "Precision", "Recall", "PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity",
    "SpecificityAtSensitivity", "F1Score", "FBetaScore", "IoU", "MeanIoU", "BinaryIoU", "OneHotIoU",
    "OneHotMeanIoU", "PearsonCorrelation", "ConcordanceCorrelation",
})
_METRICS_DOWN = frozenset({
    "MeanSquaredError", "RootMeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "LogCoshError", "KLDivergence", "Poisson", "Hinge", "SquaredHinge",
    "CategoricalHinge", "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
})


def _holds_metrics(entry):
    """Whether ``entry`` of ``model.metrics`` is the one holding the compiled metrics (Keras's CompileMetrics)."""
    return entry.name == "compile_metrics" and isinstance(getattr(entry, "metrics", None), list)


def _metric_direction(metric):
    """"up", "down" or None (unknown) for a compiled metric, as Keras 3's ``Metric._direction``."""
    direction = getattr(metric, "_direction", None)
    if direction in ("up", "down"):
        return direction
    name = type(metric).__name__
    if name in _METRICS_UP:
        return "up"
    if name in _METRICS_DOWN:
        return "down"
    # A metric that averages a loss function (Keras: a fn in losses.ALL_OBJECTS) is minimised.
    fn = getattr(metric, "_fn", None)
    if fn is not None:
        from .. import losses
        owner = getattr(fn, "__self__", None)
        if getattr(fn, "__module__", None) == losses.__name__ or isinstance(owner, losses.Loss):
            return "down"
    return None


def _print_msg(message):
    # Keras's callbacks print through io_utils.print_msg: the interactive-logging switch sends them to the logger.
    from ..utils.io_utils import print_msg
    print_msg(message)


class MonitorCallback(Callback):
    """Base of callbacks that watch one logged quantity (Keras 3's ``MonitorCallback``).

    ``mode="auto"`` minimises ``loss``/``val_loss`` and otherwise asks the
    compiled metric of that name which way is better; an unknown direction is
    an error asking for ``mode="min"`` or ``mode="max"``. An improvement is a
    change beyond ``min_delta`` in the better direction.
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.")
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = numpy.less
        elif self.mode == "max":
            self.monitor_op = numpy.greater
        else:
            metric_name = self.monitor.removeprefix("val_")
            if metric_name == "loss":
                self.monitor_op = numpy.less
            held = getattr(self.model, "metrics", None) or []
            # The compiled metrics are inside the "compile_metrics" entry, as in Keras; gpu_dl also asks the
            # metrics the model's layers hold.
            found = [m for entry in held for m in (entry.metrics if _holds_metrics(entry) else [entry])]
            for metric in found:
                if metric.name == metric_name:
                    direction = _metric_direction(metric)
                    if direction is not None:
                        self.monitor_op = numpy.greater if direction == "up" else numpy.less
            if self.monitor_op is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but gpu_dl isn't able to "
                    "automatically determine whether that metric should be maximized or minimized. Pass "
                    "`mode='max'` in order to monitor based on the highest metric value, or pass `mode='min'` "
                    "in order to use the lowest value.")
        if self.monitor_op is numpy.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))
