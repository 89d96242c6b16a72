"""What compile and the training loop take for a model of several outputs, as Keras 3 takes it.

``SeveralOutputs`` is the part of a model's loop that differs with several
outputs, shared by the models that can have them: ``Functional``, and
``Sequential`` when its last layer is a model of several outputs. Where those
outputs have no names (a Sequential whose last layer gives a list), dicts
are refused, as Keras refuses them, and the logs are named as Keras names
them there: ``<loss>_loss`` after each loss, each metric by its own name.

compile: ``loss`` is one loss for every output, a list of one per output, or a
dict keyed by every output's name (None: that output has no loss; a model that
gives its outputs in a dict may leave an output out of it, as Keras takes it);
``loss_weights`` a list or a dict (missing names weigh 1), or with one loss for
every output one weight for all of them (a number, or a list or dict of one:
Keras packs the weights with the losses and refuses more); ``metrics`` a list
of one entry per output or a dict keyed by output names, each entry a metric
or a list of them. The total loss is the sum of the outputs' losses times their
weights (plus the regularization penalties); each output's loss gradient,
times its weight, starts the backward pass at that output.

Data: ``y`` (and ``sample_weight`` when given per output) is a list in the
order of the outputs or a dict keyed by their names; where some outputs have no
loss, ``y`` may also hold the targets of those with one only (a list in their
order, or the array itself for one), as Keras takes them. One ``sample_weight``
array weighs every output's loss. Logs are named as Keras names them:
``loss``, ``<output>_loss`` for each output with a loss (when more than one
has one), ``<output>_<metric>``; ``evaluate`` lists them in that order.
"""
from __future__ import annotations

import numbers

import numpy

from .. import losses as losses_module, metric_base, metrics as metrics_module
from . import compiled_metrics, data_checks as checks, execution

_ACCURACY_WORDS = ("accuracy", "acc", "crossentropy", "ce")


def _is_structure(value):
    return isinstance(value, (list, tuple, dict))


def _is_weight(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and bool(numpy.isfinite(value))


def _by_output(model, value, what, missing=None, require_all=False):
    """One entry per output from a list of one entry per output or a dict keyed by output names (where the
    model's outputs have names to key by). With ``require_all``, a dict must name every output."""
    names, model_name = model._output_keys, model.name
    if isinstance(value, dict) and not model._outputs_keyed:
        raise ValueError(f"`{what}` is a dict, but model '{model_name}' gives its {len(names)} outputs as a list, "
                         f"without names to key them by (Keras keys a Sequential's outputs only when its last layer "
                         f"gives them in a dict): give `{what}` as a list of one entry per output.")
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
                             "output without one; Keras takes a dict that leaves outputs out only from a model "
                             "made with a dict of outputs, and refuses this one with \"Expected keys "
                             f"{names} in loss dict\").")
        return [value.get(k, missing) for k in names]
    value = list(value)
    if len(value) != len(names):
        raise ValueError(f"Model '{model_name}' has {len(names)} outputs ({', '.join(names)}); `{what}` as a list "
                         f"must have one entry per output, got {len(value)}.")
    return value


def _metrics_per_output(model, metrics, what, losses):
    """The metric identifiers of compile's ``metrics`` or ``weighted_metrics``, a list per output, checked."""
    names = model._output_keys
    if metrics is None:
        per_output = [[] for _ in names]
    elif _is_structure(metrics):
        per_output = [[] if m is None else list(m) if isinstance(m, (list, tuple)) else [m]
                      for m in _by_output(model, metrics, what)]
    else:
        raise ValueError(f"Model '{model.name}' has {len(names)} outputs: `{what}` must be a list of one entry per "
                         f"output or a dict keyed by the output names {names}, each entry a metric or a list of "
                         f"them; got {metrics!r:.200}.")
    for ids, resolved in zip(per_output, losses):
        for identifier in ids:
            # Names that depend on data shapes resolve at fit time; all others must resolve now.
            if not (isinstance(identifier, str) and identifier.lower() in _ACCURACY_WORDS):
                metrics_module.get(identifier, loss=resolved)
    return per_output


def compile_settings(model, loss, loss_weights, metrics, weighted_metrics):
    """``(losses, weights, metric identifiers, weighted metric identifiers, loss labels)``, one entry per output,
    checked; raises before anything changes. A loss's label is how Keras names it where the outputs have no names:
    the string it was given as, else its name."""
    names = model._output_keys
    # As Keras: a model that gives its outputs in a dict takes a dict of losses for some of them only.
    entries = _by_output(model, loss, "loss", require_all=model._dict_output_keys() is None) \
        if _is_structure(loss) else [loss] * len(names)
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
    if loss is not None and all(entry is None for entry in losses):
        raise ValueError(f"compile(): no output of model '{model.name}' has a loss; give at least one.")
    if loss_weights is None or loss is None:       # no compiled loss: nothing to weigh, as Keras takes it
        weights = [1.0] * len(names)
    elif not _is_structure(loss):
        # Keras packs the weights with the losses: one loss, for every output, takes one weight (a number, or a
        # list or dict of one, whatever its key), which weighs every output's loss.
        flat = list(loss_weights.values()) if isinstance(loss_weights, dict) else \
            list(loss_weights) if isinstance(loss_weights, (list, tuple)) else [loss_weights]
        if len(flat) != 1:
            raise ValueError(f"`loss_weights` must match the number of losses, got 1 losses and {len(flat)} weights: "
                             f"model '{model.name}' has one `loss` for its {len(names)} outputs, which takes one "
                             "weight for every output's loss (a number, or a list of one), as in Keras. To weigh "
                             f"the outputs apart, give `loss` per output too (a list of {len(names)} or a dict keyed "
                             f"by the output names {names}).")
        if not _is_weight(flat[0]):
            raise ValueError(f"`loss_weights`, the weight of the one `loss` of model '{model.name}', must be a "
                             f"finite number, got {flat[0]!r}.")
        weights = flat * len(names)
    elif _is_structure(loss_weights):
        weights = _by_output(model, loss_weights, "loss_weights", missing=1.0)
    else:
        raise ValueError(f"`loss_weights` must be a list of one number per output or a dict keyed by the output "
                         f"names {names}, got {loss_weights!r}.")
    for name, w in zip(names, weights):
        if not _is_weight(w):
            raise ValueError(f"`loss_weights` for output '{name}' must be a finite number, got {w!r}.")
    weights = [float(w) for w in weights]
    per_output = _metrics_per_output(model, metrics, "metrics", losses)
    weighted = _metrics_per_output(model, weighted_metrics, "weighted_metrics", losses)
    labels = [None if resolved is None else entry if isinstance(entry, str) else resolved.name
              for entry, resolved in zip(entries, losses)]
    return losses, weights, per_output, weighted, labels


def targets(model, y, y_name, output_shapes):
    """``(arrays, by_label)``: ``y`` as a tuple of one host array per output (None where an output needs none),
    checked against the outputs' losses, and the arrays given keyed by how messages name them."""
    names = model._output_keys
    if y is None and not any(loss is not None or ids or weighted for loss, ids, weighted in zip(
            model._output_losses, model._output_metric_ids, model._output_weighted_ids)):
        return (None,) * len(names), {}     # no compiled loss and no metrics: the added losses need no targets
    if y is None:
        raise ValueError(f"`{y_name}` is required to train or evaluate: pass the targets, a list of one array per "
                         f"output or a dict keyed by the output names {names}.")
    with_loss = [i for i, loss in enumerate(model._output_losses) if loss is not None]
    if len(with_loss) < len(names) and (
            (hasattr(y, "shape") and len(with_loss) == 1) or
            (isinstance(y, (list, tuple)) and len(y) != len(names) and len(y) == len(with_loss))):
        # As Keras takes them: the targets of the outputs with a loss only, in their order.
        given = [y] if hasattr(y, "shape") else list(y)
        y = [None] * len(names)
        for i, data in zip(with_loss, given):
            y[i] = data
    if not isinstance(y, (list, tuple, dict)) or hasattr(y, "shape"):
        what = f"an array of shape {tuple(y.shape)}" if hasattr(y, "shape") else f"a {type(y).__name__}"
        raise ValueError(f"Model '{model.name}' has {len(names)} outputs ({', '.join(names)}); pass `{y_name}` as a "
                         f"list of {len(names)} arrays or a dict keyed by the output names, got {what}.")
    if isinstance(y, (list, tuple)) and len(y) != len(names):
        raise ValueError(f"Model '{model.name}' has {len(names)} outputs ({', '.join(names)}); `{y_name}` must hold "
                         f"{len(names)} arrays, one per output, got a list of {len(y)}.")
    entries = _by_output(model, y, y_name)
    arrays, by_label = [], {}
    for i, (name, data) in enumerate(zip(names, entries)):
        label = f"{y_name}[{name!r}]" if isinstance(y, dict) else f"{y_name}[{i}] (output '{name}')"
        needed = model._output_losses[i] is not None or model._output_metric_ids[i] or model._output_weighted_ids[i]
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


def sample_weights(model, sample_weight, n, ys=None, output_shapes=None):
    """A tuple of one weight array per output (None where none applies), or None when none is given. With the
    targets ``ys`` and ``output_shapes``, an output's weights may be one per value of its loss (per step of a
    sequence output), as Keras takes them."""
    if sample_weight is None:
        return None
    names = model._output_keys

    def values_shape(i):
        if ys is None or output_shapes is None or ys[i] is None:
            return None
        return lambda: model._loss_values_shape(ys[i], output_shapes[i], model._output_losses[i])
    per_output = isinstance(sample_weight, dict) or (
        isinstance(sample_weight, (list, tuple)) and len(sample_weight) == len(names)
        and all(w is None or hasattr(w, "__len__") for w in sample_weight))
    if per_output:
        entries = _by_output(model, sample_weight, "sample_weight")
        found = [None if w is None else checks.sample_weights(w, n, f"sample_weight for output '{name}'",
                                                              values_shape(i))
                 for i, (name, w) in enumerate(zip(names, entries))]
    else:
        found = [checks.sample_weights(sample_weight, n, values_shape=values_shape(i)) for i in range(len(names))]
    return tuple(None if w is None else w.astype(model.dtype) for w in found)


class SeveralOutputs:
    """What a model of several outputs adds to ``Model``'s loop (a mixin, before ``Model`` among the bases): one
    loss, loss weight, target and metric set per output. Each method is ``Model``'s while the model has one
    output (``_multi`` false).

    The model gives ``_multi``, ``_output_count``, ``_output_keys`` (the outputs' names in messages, and as keys where
    ``_outputs_keyed``) and ``_output_layers()`` (the layers making the outputs)."""

    _outputs_keyed = True           # whether the outputs have names that dicts of losses and targets are keyed by
    _metric_outputs = ()            # the output each metric reads
    _weighted_outputs = ()          # the output each weighted metric reads
    _last_output_losses = ()        # the last step's loss of each output (None where it has none)
    _output_loss_sums = None        # the running sums of each output's loss on the device

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                **kwargs):
        if self._binds_later(loss, metrics, weighted_metrics):
            self._compile_later(optimizer, loss, metrics, loss_weights, weighted_metrics, kwargs)
            return
        self.__dict__.pop("_pending_compile", None)
        self.__dict__.pop("_compile_if_several", None)
        if not self._multi:
            super().compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights,
                            weighted_metrics=weighted_metrics, **kwargs)
            self._compiled_outputs = 1
            if self._composite and self._built_graph() is None:
                # Compiled for one output before its first call: compiled again for its outputs where it turns
                # out to give several (one loss for each of them).
                self._compile_if_several = dict(optimizer=self._given_optimizer, loss=loss, metrics=metrics,
                                                loss_weights=loss_weights, weighted_metrics=weighted_metrics,
                                                **kwargs)
            return
        execution.set_compile_flags(self, **kwargs)
        self._note_compile(loss)
        same_outputs = self.compiled and self.__dict__.get("_compiled_outputs") == self._output_count
        if loss is None and same_outputs:
            # As Keras 3: a compile without a loss keeps the loss (and its weights) of an earlier compile.
            loss, loss_weights = self._compile_args["loss"], self._compile_args["loss_weights"]
        if metrics is None and weighted_metrics is None and same_outputs:
            metrics = self._compile_args["metrics"]         # and one without metrics its metrics
        new_optimizer = self._compile_optimizer(optimizer, kwargs.get("auto_scale_loss", True))
        self._metrics_given = metrics is not None or weighted_metrics is not None
        losses, weights, metric_ids, weighted_ids, labels = compile_settings(self, loss, loss_weights, metrics,
                                                                             weighted_metrics)
        self.optimizer, self.loss = new_optimizer, losses
        self._loss_labels = labels
        self._output_losses, self._loss_weights, self._output_metric_ids = losses, weights, metric_ids
        self._output_weighted_ids = weighted_ids
        # Kept as given: a saved file's compile_config writes them in the structure they came in.
        self._compile_args = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics,
                              "weighted_metrics": weighted_metrics}
        self._metric_identifiers = []
        self._weighted_identifiers = []
        self._metrics = None
        self._weighted_metrics = []
        self._output_loss_sums = [None] * len(losses)
        self.compiled = True
        self._compiled_outputs = self._output_count

    def _binds_later(self, loss, metrics, weighted_metrics):
        """Whether compile waits for the model's outputs to bind losses and metrics to them: those of a subclassed
        model whose call has not been traced yet, given per output (as Keras's compiled loss binds on the first
        call)."""
        return self._composite and self._built_graph() is None and (
            isinstance(loss, (list, tuple, dict)) or isinstance(metrics, dict) or isinstance(weighted_metrics, dict))

    def _compile_later(self, optimizer, loss, metrics, loss_weights, weighted_metrics, kwargs):
        """Compile's optimizer now, its losses and metrics at the first fit, evaluate or *_on_batch (``_prepare``)."""
        execution.set_compile_flags(self, **kwargs)
        self._note_compile(loss)
        self.optimizer = self._compile_optimizer(optimizer, kwargs.get("auto_scale_loss", True))
        self._compile_args = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics,
                              "weighted_metrics": weighted_metrics}
        self._pending_compile = dict(self._compile_args, optimizer=self._given_optimizer, **kwargs)
        self._metrics_given = metrics is not None or weighted_metrics is not None
        self._metrics = None
        self._weighted_metrics = []
        self.compiled = True
        self._compiled_outputs = self._output_count

    def _compile_pending(self):
        return self.__dict__.get("_pending_compile") is not None or bool(self.__dict__.get("_compile_if_several"))

    def _bind_pending_compile(self):
        """Compile again with the arguments ``_compile_later`` (or a compile for one output) kept, the model's
        outputs now known."""
        pending = self.__dict__.pop("_pending_compile", None)
        several = self.__dict__.pop("_compile_if_several", None)
        if self._built_graph() is None:
            self._finish_build()        # built by build(shape) alone: its call is traced now
        if pending is not None and self._built_graph() is None:
            raise ValueError(f"Model '{self.name}' was compiled with a loss or metrics per output, but its call "
                             f"could not be traced into a graph of layer calls "
                             f"({self.__dict__.get('_trace_error')}), so its outputs cannot be trained apart: "
                             "give it one loss, or make its call traceable.")
        arguments = pending if pending is not None else several if self._multi else None
        if arguments is not None:
            optimizer = self.optimizer
            self.compile(**arguments)
            self.optimizer = optimizer      # the one compile made (a LossScaleOptimizer wrapping it stays the same)

    def _require_compiled(self, method):
        super()._require_compiled(method)
        if self._compile_pending() and self._built_graph() is not None:
            self._bind_pending_compile()        # called (so traced) since it was compiled
        compiled_for = self.__dict__.get("_compiled_outputs", 1)
        if compiled_for != self._output_count:
            # A Sequential's last layer changed since: its losses and metrics no longer fit its outputs.
            raise ValueError(f"Model '{self.name}' was compiled for {compiled_for} output(s) and now gives "
                             f"{self._output_count}: call compile() again before `{method}()`.")

    def _prepare(self, x, y, sample_weight=None, class_weight=None, x_name="x", y_name="y", batch_size=None):
        from .model import _batchless, _length, _shapes     # model.py builds its Model on this class
        if self._compile_pending():
            # A subclassed model compiled before its first call: its outputs are known once it is built.
            self._checked_features(x, x_name, batch_size)
            self._bind_pending_compile()
        if not self._multi:
            return super()._prepare(x, y, sample_weight, class_weight, x_name, y_name, batch_size)
        x = self._checked_features(x, x_name)
        output_shapes = self._flat_output_shape(_batchless(_shapes(x)))
        if class_weight is not None:
            raise ValueError(f"`class_weight` is only supported for models with a single output; model '{self.name}' "
                             f"has {len(self._output_keys)}. Weigh the samples with `sample_weight` instead.")
        ys, by_label = targets(self, y, y_name, output_shapes)
        checks.same_length({x_name: x[0] if isinstance(x, tuple) else x, **by_label})
        sw = sample_weights(self, sample_weight, _length(x), ys, output_shapes)
        return x, ys, sw, output_shapes

    def _resolve_metrics(self, y_shape, output_shape):
        if not self._multi:
            return super()._resolve_metrics(y_shape, output_shape)
        if self._metrics is None:
            found, weighted = [[(i, metrics_module.get(m, loss=self._output_losses[i], y_true_shape=y_shape[i],
                                                       y_pred_shape=output_shape[i]))
                                for i, ids in enumerate(per_output) for m in ids]
                               for per_output in (self._output_metric_ids, self._output_weighted_ids)]
            self._metric_outputs = [i for i, _ in found]
            self._metrics = [metric for _, metric in found]
            self._weighted_outputs = [i for i, _ in weighted]
            self._weighted_metrics = [metric for _, metric in weighted]
        self._loss_trackers_built = True

    def _start(self, x_shape, batch_size=None):
        if not self._multi:
            return super()._start(x_shape, batch_size)
        # The fused softmax + cross-entropy path is for one output; several outputs take each loss's own gradient.
        self._fused_softmax = False
        for layer in self._output_layers():
            layer.keep_preactivation = False

    def _has_compiled_loss(self):
        if not self._multi:
            return super()._has_compiled_loss()
        return any(loss is not None for loss in self._output_losses)

    def _loss_and_gradient(self, y, y_pred, sw, training):
        if not self._multi:
            return super()._loss_and_gradient(y, y_pred, sw, training)
        from .model import _loss_input, _reduced_loss
        y_pred = _loss_input(y_pred)
        total, values, douts = None, [], []
        for i, (loss, weight) in enumerate(zip(self._output_losses, self._loss_weights)):
            if loss is None:
                values.append(None)
                douts.append(None)
                continue
            value, dout = _reduced_loss(loss, y[i], y_pred[i], None if sw is None else sw[i], self.output_mask[i],
                                        training, scale=weight)
            values.append(value)
            douts.append(dout)
            weighted = value * value.dtype.type(weight)
            total = weighted if total is None else total + weighted
        self._last_output_losses = values
        return total, y_pred, douts

    def _track(self, value, y, y_pred, n, sw=None):
        if not self._multi:
            return super()._track(value, y, y_pred, n, sw)
        weighed = compiled_metrics.loss_times(value, n)
        self._loss_sum = weighed if self._loss_sum is None else self._loss_sum + weighed
        self._loss_count += n
        for i, v in enumerate(self._last_output_losses):
            if v is not None:
                weighed = compiled_metrics.loss_times(v, n)
                self._output_loss_sums[i] = weighed if self._output_loss_sums[i] is None else \
                    self._output_loss_sums[i] + weighed
        steps = [None if mask is None else mask.astype(p.dtype) for mask, p in zip(self.output_mask, y_pred)]
        for metric, i in zip(self._metrics, self._metric_outputs):
            if steps[i] is None:
                metric.update_state(y[i], y_pred[i])
            else:
                metric.update_state(y[i], y_pred[i], sample_weight=steps[i])
        for metric, i in zip(self._weighted_metrics, self._weighted_outputs):
            weights = compiled_metrics.metric_weights(None if sw is None else sw[i], steps[i])
            if weights is None:
                metric.update_state(y[i], y_pred[i])
            else:
                metric.update_state(y[i], y_pred[i], sample_weight=weights)

    def reset_metrics(self):
        super().reset_metrics()
        if self._multi:
            self._output_loss_sums = [None] * len(self._output_keys)

    def _log_names(self):
        """The log keys in the order the logs hold them: the total loss, each output's loss (when more than one
        output has one, as Keras logs them), then each output's metrics (``_listed`` gives evaluate's
        list in Keras's order).

        As Keras names them: after the outputs' names, or, where the outputs have none (a Sequential whose last
        layer gives a list), a loss after the loss itself and a metric by its own name. Keras numbers a metric's
        name met again (``mae``, ``mae_1``); two losses of one name share one log, the later one's (Keras's
        logs are a dict)."""
        with_loss = [i for i, loss in enumerate(self._output_losses) if loss is not None]
        losses = [f"{self._output_keys[i] if self._outputs_keyed else self._loss_labels[i]}_loss" for i in with_loss]
        return ["loss"] + (losses if len(losses) > 1 else []) + compiled_metrics.log_names(self._metric_entries())

    def _metric_entries(self):
        """``(metric, output label, weighted)`` of each compiled metric, the unweighted first (``log_names``)."""
        def label(i):
            return self._output_keys[i] if self._outputs_keyed else None
        return [(m, label(i), False) for m, i in zip(self._metrics or [], self._metric_outputs)] + \
            [(m, label(i), True) for m, i in zip(self._weighted_metrics, self._weighted_outputs)]

    def _metric_order(self):
        if not self._multi:
            return super()._metric_order()
        # As Keras's Model.metrics: the loss, the compiled metrics (under their own names), the outputs' losses.
        return ["loss"] + [m.name for m, _, _ in self._metric_entries()] + self._output_loss_names() + \
            [m.name for m in self._tracked_metrics()]

    def _logs(self, prefix=""):
        if not self._multi:
            return super()._logs(prefix)
        values = [compiled_metrics.loss_mean(self._loss_sum, self._loss_count)]
        with_loss = [i for i, loss in enumerate(self._output_losses) if loss is not None]
        if len(with_loss) > 1:
            values += [compiled_metrics.loss_mean(self._output_loss_sums[i], self._loss_count) for i in with_loss]
        values += [metric.result() for metric, _, _ in self._metric_entries()]
        # A metric whose result is a dict logs its entries under their own keys (as Keras flattens them), after
        # the others, sorted.
        logs, spread = {}, []
        for name, value in zip(self._log_names(), values):
            if isinstance(value, dict):
                spread += metric_base.log_entries(name, value)
            else:
                logs[prefix + name] = metric_base.log_value(value)
        for key, value in sorted(spread, key=lambda entry: entry[0]):
            logs[prefix + key] = value
        return self._add_tracked_logs(logs, prefix)

    def _output_loss_names(self):
        """Each output's loss log where more than one output has a loss, in the order of Keras's loss trackers:
        the outputs' order, or for a model whose outputs are a dict and a loss given as a dict, that dict's."""
        if not self._multi:
            return super()._output_loss_names()
        keyed = self._outputs_keyed
        with_loss = [i for i, loss in enumerate(self._output_losses) if loss is not None]
        if len(with_loss) < 2:
            return []
        given = self._compile_args.get("loss")
        if keyed and isinstance(given, dict) and self._dict_output_keys() is not None:
            place = {key: n for n, key in enumerate(given)}
            with_loss.sort(key=lambda i: place.get(self._output_keys[i], len(place)))
        return [f"{self._output_keys[i] if keyed else self._loss_labels[i]}_loss" for i in with_loss]

