"""What compile and the training loop take for a functional model of several outputs, as Keras 3 takes it.

compile: ``loss`` is one loss for every output, a list of one per output, or a
dict keyed by every output's name (None: that output has no loss);
``loss_weights`` a list or a dict (missing names weigh 1); ``metrics`` a list
of one entry per output or a dict keyed by output names, each entry a metric
or a list of them. The total loss is the sum of the outputs' losses times their
weights (plus the regularization penalties); each output's loss gradient,
times its weight, starts the backward pass at that output.

Data: ``y`` (and ``sample_weight`` when given per output) is a list in the
order of the outputs or a dict keyed by their names; one ``sample_weight``
array weighs every output's loss. Logs are named as Keras names them:
``loss``, ``<output>_loss`` for each output with a loss (when more than one
has one), ``<output>_<metric>``; ``evaluate`` lists them in that order.
"""
from __future__ import annotations

import numbers

import numpy

from .. import losses as losses_module, metrics as metrics_module
from . import data_checks as checks

_ACCURACY_WORDS = ("accuracy", "acc", "crossentropy", "ce")


def _is_structure(value):
    return isinstance(value, (list, tuple, dict))


def _by_output(value, names, what, model_name, missing=None, require_all=False):
    """One entry per output from a list of ``len(names)`` entries or a dict keyed by output names."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"`{what}` is keyed by {', '.join(repr(k) for k in unknown)}, which "
                             f"{'is not an output' if len(unknown) == 1 else 'are not outputs'} of model "
                             f"'{model_name}'; its outputs are {names}.")
        absent = [k for k in names if k not in value]
        if require_all and absent:
            raise ValueError(f"`{what}` as a dict needs an entry for every output of model '{model_name}' "
                             f"({names}); it has none for {', '.join(repr(k) for k in absent)} (give None for an "
                             "output without one).")
        return [value.get(k, missing) for k in names]
    value = list(value)
    if len(value) != len(names):
        raise ValueError(f"Model '{model_name}' has {len(names)} outputs ({', '.join(names)}); `{what}` as a list "
                         f"must have one entry per output, got {len(value)}.")
    return value


def compile_settings(model, loss, loss_weights, metrics, weighted_metrics):
    """``(losses, weights, metric identifiers)``, one entry per output, checked; raises before anything changes."""
    names = model.output_names
    if weighted_metrics is not None:
        raise ValueError("`weighted_metrics` is not supported by gpu_dl; pass the metrics in `metrics`.")
    if loss is None:
        raise ValueError(f"compile() needs a `loss`: one for all outputs of model '{model.name}', a list of one per "
                         f"output, or a dict keyed by the output names {names}.")
    entries = _by_output(loss, names, "loss", model.name, require_all=True) if _is_structure(loss) \
        else [loss] * len(names)
    losses = []
    for name, entry in zip(names, entries):
        if entry is None:
            losses.append(None)
            continue
        resolved = losses_module.get(entry)
        if resolved.reduction in ("none", None):
            raise ValueError(f"The loss of output '{name}' has reduction 'none', which gives no scalar to train on: "
                             "use 'sum_over_batch_size' (the default) or 'sum'.")
        losses.append(resolved)
    if all(entry is None for entry in losses):
        raise ValueError(f"compile(): no output of model '{model.name}' has a loss; give at least one.")
    if loss_weights is None:
        weights = [1.0] * len(names)
    elif _is_structure(loss_weights):
        weights = _by_output(loss_weights, names, "loss_weights", model.name, missing=1.0)
    else:
        raise ValueError(f"`loss_weights` must be a list of one number per output or a dict keyed by the output "
                         f"names {names}, got {loss_weights!r}.")
    for name, w in zip(names, weights):
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not numpy.isfinite(w):
            raise ValueError(f"`loss_weights` for output '{name}' must be a finite number, got {w!r}.")
    weights = [float(w) for w in weights]
    if metrics is None:
        per_output = [[] for _ in names]
    elif _is_structure(metrics):
        per_output = [[] if m is None else list(m) if isinstance(m, (list, tuple)) else [m]
                      for m in _by_output(metrics, names, "metrics", model.name)]
    else:
        raise ValueError(f"Model '{model.name}' has {len(names)} outputs: `metrics` must be a list of one entry per "
                         f"output or a dict keyed by the output names {names}, each entry a metric or a list of "
                         f"them; got {metrics!r:.200}.")
    for name, ids, resolved in zip(names, per_output, losses):
        for identifier in ids:
            # Names that depend on data shapes resolve at fit time; all others must resolve now.
            if not (isinstance(identifier, str) and identifier.lower() in _ACCURACY_WORDS):
                metrics_module.get(identifier, loss=resolved)
    return losses, weights, per_output


def targets(model, y, y_name, output_shapes):
    """``(arrays, by_label)``: ``y`` as a tuple of one host array per output (None where an output needs none),
    checked against the outputs' losses, and the arrays given keyed by how messages name them."""
    names = model.output_names
    if y is None:
        raise ValueError(f"`{y_name}` is required to train or evaluate: pass the targets, a list of one array per "
                         f"output or a dict keyed by the output names {names}.")
    if not isinstance(y, (list, tuple, dict)) or hasattr(y, "shape"):
        what = f"an array of shape {tuple(y.shape)}" if hasattr(y, "shape") else f"a {type(y).__name__}"
        raise ValueError(f"Model '{model.name}' has {len(names)} outputs ({', '.join(names)}); pass `{y_name}` as a "
                         f"list of {len(names)} arrays or a dict keyed by the output names, got {what}.")
    if isinstance(y, (list, tuple)) and len(y) != len(names):
        raise ValueError(f"Model '{model.name}' has {len(names)} outputs ({', '.join(names)}); `{y_name}` must hold "
                         f"{len(names)} arrays, one per output, got a list of {len(y)}.")
    entries = _by_output(y, names, y_name, model.name)
    arrays, by_label = [], {}
    for i, (name, data) in enumerate(zip(names, entries)):
        label = f"{y_name}[{name!r}]" if isinstance(y, dict) else f"{y_name}[{i}] (output '{name}')"
        needed = model._output_losses[i] is not None or model._output_metric_ids[i]
        if data is None:
            if needed:
                raise ValueError(f"`{y_name}` has no targets for output '{name}', which has a loss or metrics.")
            arrays.append(None)
            continue
        array = checks.targets(data, label)
        if model._output_losses[i] is not None:
            model._output_losses[i].validate_targets(array, output_shapes[i])
        if array.dtype.kind == "f":
            array = array.astype(model.dtype, copy=False)
        arrays.append(array)
        by_label[label] = array
    return tuple(arrays), by_label


def sample_weights(model, sample_weight, n):
    """A tuple of one weight array per output (None where none applies), or None when none is given."""
    if sample_weight is None:
        return None
    names = model.output_names
    per_output = isinstance(sample_weight, dict) or (
        isinstance(sample_weight, (list, tuple)) and len(sample_weight) == len(names)
        and all(w is None or hasattr(w, "__len__") for w in sample_weight))
    if per_output:
        entries = _by_output(sample_weight, names, "sample_weight", model.name)
        found = [None if w is None else checks.sample_weights(w, n, f"sample_weight for output '{name}'")
                 for name, w in zip(names, entries)]
    else:
        found = [checks.sample_weights(sample_weight, n)] * len(names)
    return tuple(None if w is None else w.astype(model.dtype) for w in found)
