"""The compiled metrics' logs as Keras 3 names and orders them (its ``CompileMetrics`` and ``Trainer``).

``compile(metrics=..., weighted_metrics=...)``: the ``metrics`` see the targets and predictions only (and the mask
of padded output steps); the ``weighted_metrics`` also the sample weights fit and evaluate are given, class weights
included (``weights``). Each metric logs under its name, after its output's name for a model of several named
outputs (``<output>_<name>``). A name met again among ``metrics`` is numbered (``mae_1``, ``mae_2``); a weighted
metric whose name is taken is logged as ``weighted_<name>`` (``<output>_weighted_<name>``), numbered in turn
where that is taken too (``log_names``).

``evaluate`` and the ``*_on_batch`` methods list the logs as Keras's ``_flatten_metrics_in_order`` does
(``in_keras_order``): the values of the names of ``Model.metrics`` in their order (the loss; each compiled
metric's own name, a weighted one's too; each output's loss; the metrics the layers hold), a name matched as
often as it is listed, then the other logs sorted by key.
"""
from __future__ import annotations

import numpy

from .. import backend

from ..loss_base import squeeze_or_expand_to_same_rank


def log_names(entries):
    """The log key of each ``(metric, output label or None, weighted)`` of ``entries``, the unweighted metrics
    first, as Keras's ``CompileMetrics.result`` names them."""
    counters, names = {}, []
    for metric, label, weighted in entries:
        name = metric.name if label is None else f"{label}_{metric.name}"
        if name not in counters:
            counters[name] = 1
        elif not weighted:
            index = counters[name]
            counters[name] += 1
            name = f"{name}_{index}"
        else:
            name = f"weighted_{metric.name}" if label is None else f"{label}_weighted_{metric.name}"
            if name not in counters:
                counters[name] = 1
            else:
                index = counters[name]
                counters[name] += 1
                name = f"{name}_{index}"
        names.append(name)
    return names


def metric_weights(sample_weight, steps):
    """What a weighted metric takes as its sample weights: the sample (and class) weights times the mask of padded
    output steps (as floats), either of them None. Weights of one value per sample spread over the steps."""
    if sample_weight is None or steps is None:
        return steps if sample_weight is None else sample_weight
    steps, sample_weight = squeeze_or_expand_to_same_rank(steps, sample_weight.astype(steps.dtype, copy=False))
    if sample_weight.ndim < steps.ndim:
        sample_weight = sample_weight.reshape(sample_weight.shape + (1,) * (steps.ndim - sample_weight.ndim))
    return sample_weight * steps


def in_keras_order(logs, names):
    """``logs``'s values as Keras's evaluate lists them: those of ``names`` (the names of the model's metrics in
    order, repeats included) found among the logs, then the others by sorted key; one value alone as itself."""
    values = [logs[name] for name in names if name in logs]
    listed = set(names)
    values += [logs[key] for key in sorted(logs) if key not in listed]
    return values[0] if len(values) == 1 else values


def loss_times(value, count):
    """A batch's loss ``value`` times its ``count`` of samples, for the running sum, in the loss's float dtype:
    NumPy 1.26 turns a float32 scalar times a Python int into float64 (NumPy 2 keeps float32)."""
    dtype = getattr(value, "dtype", None)
    return value * (dtype.type(count) if dtype is not None and dtype.kind == "f" else count)


def loss_mean(total, count):
    """The running loss ``total / count`` as a Python float, divided in the loss's own float dtype (at least
    float32), as Keras's loss tracker (a ``Mean`` of float32 variables) divides: a Python division of the float32
    sum would hand back float64 arithmetic, a value no float32 computation gives. NaN before any batch."""
    if total is None:
        return float("nan")
    total = numpy.asarray(backend.to_numpy(total))
    dtype = numpy.promote_types(total.dtype, numpy.float32) if total.dtype.kind == "f" else numpy.dtype("float32")
    return float(total.astype(dtype) / dtype.type(max(count, 1)))
