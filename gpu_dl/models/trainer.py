"""Keras 3's overridable steps: ``train_step``, ``test_step``, ``predict_step``, ``compute_loss``,
``compute_metrics``, ``get_metrics_result`` and ``metrics``, as "Customizing what happens in fit()" uses them.

``Trainer`` is a base of ``Model`` (as in Keras, ``Model(Trainer, Layer)``).
Its default steps are Keras's torch trainer's: ``y_pred = self(x,
training=True)``, ``zero_grad()``, ``loss = compute_loss(...)``, the loss
tracker updated with the batch size, ``loss.backward()`` (``gpu_dl/backprop.py``
follows it through the call), ``optimizer.apply(grads, trainable_weights)``,
then ``compute_metrics``. ``metrics`` is Keras's: the loss tracker (a
``Mean`` named "loss"), the compiled metrics as one metric named
"compile_metrics" whose result is a dict, then the metrics the model holds
in its attributes (``self.loss_tracker = Mean(name="loss")``) and those its
layers hold (``layers/layer_metrics.py``).

A model whose class overrides none of them trains as before, through
``Model``'s fused step (softmax fused into the loss, metric sums kept on the
device). A class that overrides one is *routed* when it is made
(``__init_subclass__``): fit, evaluate and their ``*_on_batch`` forms call its
steps with ``data`` in Keras's structure (``x``; ``(x, y)``; ``(x, y,
sample_weight)``; ``train_on_batch`` always gives the three), the targets and
sample weights of several outputs in the structure they were given in (a
list, a tuple or a dict, ``Given``; those of one output given as a list or a
tuple of one array stay one; one array of weights beside several
targets given for each target by fit and evaluate on arrays, as Keras's array
adapter gives it; a streaming batch's tuples as lists, as Keras's torch
DataLoader makes them), also to ``compute_loss`` and ``compute_metrics``,
and take the dict a step returns as Keras does: batch logs are the step's dict flattened
(a nested dict's entries under their own keys) and sorted by key, with
values as floats; an epoch's (and evaluate's) logs are
``get_metrics_result()`` where its keys are the step's, else the step's
dict; validation logs are evaluate's with ``val_`` before each key; the
metrics reset at each epoch and at evaluate's start are ``self.metrics``;
evaluate's list follows ``self.metrics``' order, as Keras's
``_flatten_metrics_in_order``. A class that overrides only ``predict_step``
keeps the fused fit and evaluate; predict calls its step on each batch and
concatenates what it returns, in its structure.

Routed fit and evaluate reuse ``Model``'s loops: the class gets the versions
below of the methods the loops call (``_prepare``, ``_train_step``,
``_logs``, ...), each falling back to the library's own where the step it
serves is not overridden. With ``train_step`` or ``test_step`` overridden, the
data are converted and checked as arrays of the same length only (the step
decides what it reads: a GAN's images need no targets).

``Model(inputs, outputs)`` with a subclass, ``CustomModel(inputs, outputs)`` (the guide's form), gives a
functional model of that class, as Keras does: the instance's class becomes a subclass of both.
"""
from __future__ import annotations

import inspect
import numbers

import numpy

from .. import backend, backprop, metric_base
from ..backend.user_warnings import warn
from ..callbacks import CallbackList, ProgbarLogger
from ..callbacks.base import pythonify_logs
from ..layers import layer_losses
from . import compiled_metrics, execution
from . import data_checks as checks

# The methods a subclass may override to change what fit, evaluate and predict do with each batch.
_TRAIN_TEST = ("train_step", "test_step", "compute_loss", "compute_metrics", "get_metrics_result", "metrics")
_FREE_DATA = ("train_step", "test_step")
# Attributes of a model that hold metrics for the library's own use, not the user's.
# Where a model keeps its loss trackers and its views of the compiled metrics: not metrics it holds itself.
INTERNAL_ATTRIBUTES = frozenset({"_metrics", "_trainer_views", "_trainer_output_losses"})


def _library(owner):
    return owner.__module__.split(".")[0] == "gpu_dl"


def _owner(cls, name):
    return next((k for k in cls.__mro__ if name in k.__dict__), None)


def _overridden(cls, name):
    """Whether ``cls`` has its own ``name`` step: one of a class outside gpu_dl, or of a gpu_dl class that
    defines its steps as a user's class would (``_library_steps = True``: the Distiller)."""
    owner = _owner(cls, name)
    return owner is not None and (not _library(owner) or owner.__dict__.get("_library_steps", False))


def _next(model, name):
    """The implementation of ``name`` after the routed one (the library's own for this model's class)."""
    routed = _ROUTED.get(name)
    for klass in type(model).__mro__:
        found = klass.__dict__.get(name)
        if found is not None and found is not routed:
            return found.__get__(model, type(model))
    raise AttributeError(name)


def _batchless(shape):
    if isinstance(shape, list):
        return [_batchless(s) for s in shape]
    return (None,) + tuple(shape[1:])


def _shapes(x):
    if x is None:
        return None
    return [None if a is None else a.shape for a in x] if isinstance(x, tuple) else x.shape


def _length(x):
    return len(next(a for a in x if a is not None)) if isinstance(x, tuple) else len(x)


def _batch_size(x):
    leaves = backprop._flat(x) or []
    first = next((a for a in leaves if a is not None), None)
    return 0 if first is None else int(first.shape[0])


class Keyed(tuple):
    """The arrays of a dict given to fit or evaluate (inputs, targets or sample weights), one per key in the dict's
    order, batched and moved as a tuple is; a step of the caller's own gets the dict back (``as_given``), as
    Keras hands its steps the structures they were given."""

    def __new__(cls, values, keys):
        keyed = super().__new__(cls, values)
        keyed.keys_ = tuple(keys)
        return keyed

    def like(self, values):
        return Keyed(values, self.keys_)

    def as_given(self):
        return dict(zip(self.keys_, self))


class Given(tuple):
    """Targets or sample weights as the loops move them (a tuple: one entry per output of a model of several, or
    per entry of the list a step of the caller's reads itself) that remember the structure they were given in,
    so that the caller's steps and ``compute_loss`` get them back in it (``as_given``), as Keras hands them on:
    a list or a tuple (``kind``) of the entries at ``slots``, a dict (``kind`` dict, ``slots`` its ``(key,
    entry)`` pairs in the dict's order), or one array (``kind`` None: the entry at ``slots[0]``)."""

    def __new__(cls, values, kind, slots):
        given = super().__new__(cls, values)
        given.kind, given.slots = kind, tuple(slots)
        return given

    def like(self, values):
        return Given(values, self.kind, self.slots)

    def as_given(self):
        if self.kind is dict:
            return {key: self[i] for key, i in self.slots}
        if self.kind is None:
            return self[self.slots[0]]
        return self.kind(self[i] for i in self.slots)


def given_form(model, values, original):
    """``values`` (the per-output tuple ``_prepare`` made of the targets or sample weights ``original`` of a model
    of several outputs) as a ``Given`` in ``original``'s structure: a dict of its keys, a list or tuple of its
    entries (those of the outputs with a loss where it holds only theirs), or its one array."""
    if original is None or not isinstance(values, tuple) or isinstance(values, Given):
        return values
    keys = list(model._output_keys)
    if isinstance(original, dict):
        return Given(values, dict, [(key, keys.index(key)) for key in original if key in keys])
    present = [i for i, v in enumerate(values) if v is not None]
    if isinstance(original, (list, tuple)):
        slots = range(len(values)) if len(original) == len(values) else present
        return Given(values, list if isinstance(original, list) else tuple, slots)
    return Given(values, None, present[:1]) if present else values


def weights_in_targets_form(sample_weight, y):
    """One sample-weight array for the targets of several outputs, as Keras's array adapter gives it to the steps:
    that array for each output, in the targets' structure (``train_on_batch`` and streaming batches keep it one
    array)."""
    if isinstance(sample_weight, Given) and sample_weight.kind is None and isinstance(y, Given):
        return Given(sample_weight, y.kind, y.slots)
    if hasattr(sample_weight, "shape") and isinstance(y, (Given, Keyed)):
        # a step of the caller's own reads the targets: the same array for each of their entries
        return y.like(sample_weight for _ in y)
    return sample_weight


def one_in_list(value):
    """Whether ``value`` is a list (or tuple) of one array: the targets or sample weights of a model of one output,
    as Keras also takes them."""
    return isinstance(value, (list, tuple)) and len(value) == 1 and hasattr(value[0], "shape")


def one_output_given(value, original):
    """The targets or sample weights ``value`` (one array) of a model of one output in the structure ``original``
    gave them in: a ``Given`` list (tuple) of the array where they came as a list (tuple) of one array, as Keras
    hands them to the steps, ``compute_loss`` and ``compute_metrics`` (its adapters keep the structure); else
    ``value``."""
    if value is None or isinstance(value, Given) or not one_in_list(original):
        return value
    return Given((value,), list if isinstance(original, list) else tuple, [0])


def as_streamed(value):
    """Targets or sample weights of a streaming batch as Keras's torch backend hands them on: its DataLoader turns
    the tuples of a batch into lists."""
    if isinstance(value, Given) and value.kind is tuple:
        return Given(value, list, value.slots)
    return value


def _as_given(value):
    return value.as_given() if isinstance(value, (Keyed, Given)) else value


def pack(x, y=None, sample_weight=None):
    """A batch as Keras hands it to a step (``pack_x_y_sample_weight``): ``x`` (a tuple of several inputs as
    ``(x,)``), ``(x, y)`` or ``(x, y, sample_weight)``; the arrays of a dict as that dict."""
    x, y, sample_weight = _as_given(x), _as_given(y), _as_given(sample_weight)
    if y is None:
        return (x,) if isinstance(x, (tuple, list)) else x
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """Keras's ``unpack_x_y_sample_weight``: ``(x, y, sample_weight)`` of a batch ``x``, ``(x,)``, ``(x, y)`` or
    ``(x, y, sample_weight)`` (None for what it lacks)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) in (1, 2, 3):
        return tuple(data) + (None,) * (3 - len(data))
    raise ValueError(f"Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, found: "
                     f"a tuple of {len(data)}.")


# ------------------------------------------------------------------ metrics that read the model's state
class _LossTracker(metric_base.Metric):
    """Keras's loss tracker (a ``Mean`` named "loss"), kept in the running sums the fused step keeps too, so
    ``model.metrics[0].result()`` is the loss of the batches since the last reset either way."""

    def __init__(self, model):
        super().__init__(name="loss")
        self._model = model

    def update_state(self, values, sample_weight=None):
        from ..metrics import _samplewise
        if isinstance(values, backprop.LossValue):
            values = values.value
        xp = backend.array_module(values)
        values = xp.asarray(values)
        if values.dtype.kind != "f":
            values = values.astype(backend.floatx())
        if values.ndim == 0 and isinstance(sample_weight, numbers.Real):
            # the steps' form (the loss, weighed by the batch size): nothing to read back from the device
            total, count = values * values.dtype.type(sample_weight), float(sample_weight)
        else:
            values, weights = _samplewise(xp, values, sample_weight)
            total = values.sum()
            if weights is None:
                count = values.shape[0] if values.ndim else 1
            else:
                count = float(backend.to_numpy(weights.sum()))
        model = self._model
        model._loss_sum = total if model._loss_sum is None else model._loss_sum + total
        model._loss_count += count

    def result(self):
        model = self._model
        if model._loss_sum is None or not model._loss_count:
            return 0.0
        return compiled_metrics.loss_mean(model._loss_sum, model._loss_count)

    def reset_state(self):
        self._model._loss_sum, self._model._loss_count = None, 0


class _CompileMetrics(metric_base.Metric):
    """Keras's ``CompileMetrics``: the metrics given to compile as one metric named "compile_metrics", whose
    result is a dict of theirs (Keras's names: an output's name before a metric's for several outputs, a name
    met again numbered ``_1``, ``_2``..., a weighted metric's taken name as ``weighted_<name>``). The
    ``metrics`` see the targets and predictions, the ``weighted_metrics`` the sample weights too. Built from the
    shapes of the first batch it sees."""

    def __init__(self, model):
        super().__init__(name="compile_metrics")
        self._model = model

    @property
    def metrics(self):
        return list(self._model._metrics or []) + list(getattr(self._model, "_weighted_metrics", ()))

    @property
    def variables(self):
        """As Keras's ``CompileMetrics.variables``: its metrics' variables, in their order."""
        return [v for metric in self.metrics for v in metric.variables]

    def _entries(self):
        """``(metric, the output it reads, whether it is weighted)`` of each compiled metric, unweighted first."""
        model = self._model
        several = getattr(model, "_multi", False)
        plain = list(getattr(model, "_metric_outputs", ())) if several else [0] * len(model._metrics or [])
        weighted = list(getattr(model, "_weighted_outputs", ())) if several else \
            [0] * len(getattr(model, "_weighted_metrics", ()))
        return [(m, i, False) for m, i in zip(model._metrics or [], plain)] + \
            [(m, i, True) for m, i in zip(getattr(model, "_weighted_metrics", ()), weighted)]

    def update_state(self, y_true, y_pred, sample_weight=None):
        model = self._model
        several = getattr(model, "_multi", False)
        preds = _per_output(model, y_pred, "y_pred") if several else [y_pred]
        truths = _per_output(model, y_true, "y") if several else [_one_entry(y_true)]
        truths = [None if t is None else _on_device_like(t, p) for t, p in zip(truths, preds)]
        if model._metrics is None:
            if several:
                model._resolve_metrics([None if t is None else t.shape for t in truths], [p.shape for p in preds])
            else:
                model._resolve_metrics(truths[0].shape, preds[0].shape)
        weights = _metric_weights_per_output(model, sample_weight, len(preds))
        for metric, i, weighted in self._entries():
            mask = backprop.output_mask(preds[i])
            steps = None if mask is None else mask.astype(preds[i].dtype)
            weight = None if not weighted or weights[i] is None else _on_device_like(weights[i], preds[i])
            weight = compiled_metrics.metric_weights(weight, steps)
            if weight is None:
                metric.update_state(truths[i], preds[i])
            else:
                metric.update_state(truths[i], preds[i], sample_weight=weight)

    def result(self):
        model = self._model
        names = getattr(model, "_output_keys", None) if getattr(model, "_multi", False) else None
        entries = self._entries()
        keys = compiled_metrics.log_names([(m, None if names is None else names[i], weighted)
                                           for m, i, weighted in entries])
        return {key: metric.result() for key, (metric, _, _) in zip(keys, entries)}

    def reset_state(self):
        for metric in self.metrics:
            metric.reset_state()


def _one_entry(value):
    """The targets or sample weights of a model of one output: also where they come as a list (or tuple) of one
    array, as Keras's steps may get them (its compiled loss and metrics flatten them)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def _metric_weights_per_output(model, sample_weight, count):
    """The weights each output's weighted metrics take, as Keras's ``CompileMetrics`` spreads them: a dict's by
    output, a list's (or tuple's) in order, one array for every output, as are the first of a list shorter than
    the outputs (a model of one output takes the first)."""
    if sample_weight is None:
        return [None] * count
    if isinstance(sample_weight, dict) and getattr(model, "_multi", False):
        return _per_output(model, sample_weight, "sample_weight")
    if isinstance(sample_weight, dict):         # flattened as Keras's tree flattens a dict: by sorted key
        flat = [sample_weight[key] for key in sorted(sample_weight)]
    else:
        flat = list(sample_weight) if isinstance(sample_weight, (list, tuple)) else [sample_weight]
    if len(flat) < count:
        flat = [flat[0]] * count
    return flat[:count]


# Views of the model's state: making one must not reset it (Metric runs a library metric's reset_state when made).
_LossTracker._initial_state = _CompileMetrics._initial_state = metric_base.Metric._initial_state


def _per_output(model, value, what):
    """``value`` (targets, predictions or weights of a model of several outputs) as a list of one per output."""
    count = len(model._output_keys)
    if value is None:
        return [None] * count
    if isinstance(value, dict):
        keys = model._output_keys if set(value) <= set(model._output_keys) else sorted(value)
        return [value.get(k) for k in keys]
    if isinstance(value, (list, tuple)) and len(value) == count:
        return list(value)
    if count == 1 or (what == "sample_weight" and hasattr(value, "shape")):
        return [value] * count      # one array of weights weighs every output's loss, as Keras's
    with_loss = [i for i, loss in enumerate(model._output_losses) if loss is not None]
    given = [value] if hasattr(value, "shape") else list(value) if isinstance(value, (list, tuple)) else None
    if given is not None and len(given) == len(with_loss):
        # the targets of the outputs with a loss only, in their order, as Keras takes them
        entries = [None] * count
        for i, entry in zip(with_loss, given):
            entries[i] = entry
        return entries
    raise ValueError(f"Model '{model.name}' has {count} outputs: `{what}` must hold one entry per output (a list, "
                     f"or a dict keyed by {model._output_keys}), got {type(value).__name__}.")


def _on_device_like(value, like):
    """Targets or weights as an array on ``like``'s device; floats in ``like``'s dtype."""
    module = backend.array_module(like)
    value = module.asarray(backend.to_numpy(value) if backend.array_module(value) is not module else value)
    if value.dtype.kind in "fb" and value.dtype != like.dtype:
        value = value.astype(like.dtype)
    return value


# ------------------------------------------------------------------ the steps
class Trainer:
    """Keras 3's ``Trainer`` steps for ``Model``: see the module docstring."""

    # Class flags set by __init_subclass__: the class overrides a step of fit/evaluate; one that reads the data
    # itself (train_step or test_step); predict_step.
    _custom_steps = False
    _free_data = False
    _custom_predict = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._custom_steps = any(_overridden(cls, name) for name in _TRAIN_TEST)
        cls._free_data = any(_overridden(cls, name) for name in _FREE_DATA)
        cls._custom_predict = _overridden(cls, "predict_step")
        if not cls._custom_steps:
            return
        for name, routed in _ROUTED.items():
            owner = _owner(cls, name)
            if owner is None or (_library(owner) and not owner.__dict__.get("_library_steps", False)):
                # the class's own version (a reset_metrics of its own) stays
                setattr(cls, name, routed)

    # -------------------------------------------------------------- gradients
    def zero_grad(self):
        """Clear the gradient of every weight (``v.grad = None``), as torch's ``Module.zero_grad()``: call it
        before ``loss.backward()``, which adds to what the gradients hold."""
        backprop.zero_grad(self.weights)

    # -------------------------------------------------------------- execution settings (execution.py)
    _run_eagerly = False
    _jit_compile = None
    steps_per_execution = 1     # Keras's default before compile

    @property
    def run_eagerly(self):
        """Keras's ``run_eagerly`` (compile's argument; False by default). gpu_dl's steps always run eagerly."""
        return self._run_eagerly

    @run_eagerly.setter
    def run_eagerly(self, value):
        self._run_eagerly = value

    @property
    def jit_compile(self):
        """Keras's ``jit_compile``: what compile resolved (``"auto"``: False, as Keras's torch backend resolves
        it); False before compile. gpu_dl compiles no graph of the step, so it changes nothing that runs
        (``execution.py``)."""
        if self._jit_compile is None:
            self._jit_compile = False
        return self._jit_compile

    @jit_compile.setter
    def jit_compile(self, value):
        self._jit_compile = execution.jit_setting(self, value)

    # Keras's functions of one execution, made by make_*_function; compile clears them.
    train_function = test_function = predict_function = None

    def make_train_function(self, force=False):
        """Keras's ``make_train_function``: sets and returns ``train_function(data)``, which runs ``train_step``
        on each batch of the list ``data`` and returns the last one's logs (``execution.make_function``)."""
        return execution.make_function(self, "train", force)

    def make_test_function(self, force=False):
        """Keras's ``make_test_function``: ``test_function(data)`` runs ``test_step`` on each batch of ``data``."""
        return execution.make_function(self, "test", force)

    def make_predict_function(self, force=False):
        """Keras's ``make_predict_function``: ``predict_function(data)`` gives the outputs of ``predict_step`` for
        the batches of ``data``, concatenated along the batch axis."""
        return execution.make_function(self, "predict", force)

    def get_state_tree(self, value_format="backend_tensor"):
        """Keras's ``get_state_tree``: ``{"trainable_variables", "non_trainable_variables", "optimizer_variables",
        "metrics_variables"}``, each a nested dict of the values by the parts of their paths; ``value_format``
        "backend_tensor" (the device arrays) or "numpy_array" (copies). The optimizer's entries are named as
        Keras names its variables (``<optimizer>/iteration``, ``<optimizer>/<weight path with '_'>_momentum``).
        gpu_dl's built-in metrics keep their sums as arrays, not variables: "metrics_variables" holds those of
        metrics made with ``add_variable`` only."""
        return execution.get_state_tree(self, value_format)

    def set_state_tree(self, state_tree):
        """Keras's ``set_state_tree``: assign the values of a dict shaped as ``get_state_tree``'s (any of its four
        keys); paths the model does not have are passed over, as in Keras."""
        execution.set_state_tree(self, state_tree)

    def stateless_compute_loss(self, trainable_variables, non_trainable_variables, metrics_variables, x=None,
                               y=None, y_pred=None, sample_weight=None, training=True):
        """Keras's ``stateless_compute_loss``: ``compute_loss`` with the model's ``trainable_variables``,
        ``non_trainable_variables`` and ``metrics_variables`` read as the values given (in those orders; the
        weight penalties computed on them), no variable of the model changed. Returns ``(loss,
        (trainable_variables, non_trainable_variables, metrics_variables))``: the trainable values as given,
        the others as the computation left them (the loss trackers it updated)."""
        from ..layers.scopes import StatelessScope
        groups = (("trainable_variables", self.trainable_variables, trainable_variables),
                  ("non_trainable_variables", self.non_trainable_variables, non_trainable_variables),
                  ("metrics_variables", self.metrics_variables, metrics_variables))
        for what, own, given in groups:
            if not isinstance(given, (list, tuple)) or len(given) != len(own):
                length = len(given) if isinstance(given, (list, tuple)) else type(given).__name__
                raise ValueError(f"Model '{self.name}': stateless_compute_loss() takes `{what}` as a list of one "
                                 f"value per variable of model.{what} ({len(own)}), got {length}.")
        mapping = [pair for _, own, given in groups for pair in zip(own, given)]
        with StatelessScope(state_mapping=mapping) as scope:
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return loss, (trainable_variables, [scope.get_current_value(v) for v in self.non_trainable_variables],
                      [scope.get_current_value(v) for v in self.metrics_variables])

    # -------------------------------------------------------------- metrics
    def _views(self):
        views = self.__dict__.get("_trainer_views")
        if views is None:
            views = self.__dict__["_trainer_views"] = (_LossTracker(self), _CompileMetrics(self))
        return views

    @property
    def _loss_tracker(self):
        return self._views()[0]

    @property
    def _compile_metrics(self):
        return self._views()[1]

    def _output_loss_trackers(self):
        """Keras's per-output loss trackers (``Mean`` metrics named "<output>_loss"), where several outputs have a
        loss: as ``{output index: tracker}``."""
        if not getattr(self, "_multi", False) or not getattr(self, "compiled", False):
            return {}
        with_loss = [i for i, loss in enumerate(self._output_losses) if loss is not None]
        if len(with_loss) < 2:
            return {}
        keyed = self._outputs_keyed
        names = tuple(f"{self._output_keys[i] if keyed else self._loss_labels[i]}_loss" for i in with_loss)
        kept = self.__dict__.get("_trainer_output_losses")
        if kept is None or kept[0] != names:
            from ..metrics import Mean
            kept = self.__dict__["_trainer_output_losses"] = (names, {i: Mean(name=n) for i, n in
                                                                    zip(with_loss, names)})
        return kept[1]

    def _has_compiled_metrics(self):
        return bool(getattr(self, "_metric_identifiers", None) or getattr(self, "_weighted_identifiers", None)) or \
            any(self.__dict__.get("_output_metric_ids") or ()) or any(self.__dict__.get("_output_weighted_ids") or ())

    @property
    def metrics(self):
        """Keras's ``metrics``: once compiled, the loss tracker and the compiled metrics (as one, named
        "compile_metrics"), then the metrics the model and its layers hold (``layers/layer_metrics.py``). A
        subclass may override it: its metrics are then the ones fit resets at each epoch and evaluate at its
        start."""
        found = []
        if getattr(self, "compiled", False):
            found.append(self._loss_tracker)
            if self._has_compiled_metrics():
                found.append(self._compile_metrics)
            found.extend(self._output_loss_trackers().values())
        return found + self._tracked_metrics()

    def get_metrics_result(self):
        """The results of ``self.metrics`` as a dict: a metric's own name, or the entries of a dict result."""
        found = {}
        for metric in self.metrics:
            result = metric.result()
            if isinstance(result, dict):
                found.update(result)
            else:
                found[metric.name] = result
        return found

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with the batch and return ``get_metrics_result()``, as Keras's does (the
        compiled ``metrics`` take no sample weights, the ``weighted_metrics`` take ``sample_weight``)."""
        del x
        if self._has_compiled_metrics():
            self._compile_metrics.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    # -------------------------------------------------------------- the loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras's total loss: the compiled loss of ``y`` and ``y_pred`` (with ``sample_weight``; per output and
        weighted for several outputs) plus each of ``self.losses`` (the losses the layers added in the model's
        last call, and the weight regularizers' penalties). A ``LossValue``: with ``training`` and ``y_pred``
        from ``self(x, training=True)``, its ``backward()`` trains through that call. Raises Keras's "No loss
        to compute" where there is no loss."""
        del x
        from .model import _loss_input, _reduced_loss
        total, seeds, included = None, [], {}
        if self._has_compiled_loss():
            several = getattr(self, "_multi", False)
            preds = _per_output(self, y_pred, "y_pred") if several else [y_pred]
            truths = _per_output(self, y, "y") if several else [_one_entry(y)]
            weights = _per_output(self, sample_weight, "sample_weight") if several else [_one_entry(sample_weight)]
            losses = self._output_losses if several else [self.loss]
            one = self.__dict__.get("_loss_weight")
            scales = self._loss_weights if several else [1.0 if one is None else one]
            trackers = self._output_loss_trackers()
            for i, (loss, scale, pred, truth, weight) in enumerate(zip(losses, scales, preds, truths, weights)):
                if loss is None:
                    continue
                if pred is None or truth is None:
                    raise ValueError(f"compute_loss of model '{self.name}': the compiled loss needs `y` and `y_pred`.")
                # As Keras's losses: a float16 output (a model under mixed_float16) counts in float32; its
                # gradient goes back through the float16 output's call, which takes it in float16.
                counted = _loss_input(pred)
                truth = _on_device_like(truth, counted)
                weight = None if weight is None else _on_device_like(weight, counted)
                wanted = training and backprop.needs_gradient(pred)
                value, dout = _reduced_loss(loss, truth, counted, weight, backprop.output_mask(pred), wanted,
                                            scale=scale)
                if i in trackers:       # each output's loss, unweighted, as Keras's compile loss records it
                    trackers[i].update_state(value, sample_weight=pred.shape[0])
                value = value if scale == 1.0 else value * value.dtype.type(scale)
                total = value if total is None else total + value
                if wanted:
                    seeds.append(backprop.seed(pred, lambda dout=dout: dout))
        added = layer_losses.losses(self)
        if added:
            float_dtype = backend.floatx()
            for part in added:
                part = part if part.dtype.kind == "f" else part.astype(float_dtype)
                part = part.sum()
                total = part if total is None else total + part
            if training:
                seeds.extend(backprop.variable_seed(var, lambda var=var: var.regularizer.gradient(var.value))
                             for var in self.trainable_weights if var.regularizer is not None)
                for layer in [self] + layer_losses.flatten_layers(self):
                    record = backprop.latest_call(layer)
                    if record is not None and record.adds_losses:
                        included[record] = 1
        if total is None:
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        why = None
        if not seeds:
            why = backprop.why_no_gradient(y_pred) if training else \
                "backward(): this loss was computed with training=False, which keeps no gradient."
        return backprop.LossValue(total, seeds, included, why)

    def _compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """``compute_loss``, also where an override has no ``training`` argument (Keras added it in 3.3)."""
        if "training" in inspect.signature(self.compute_loss).parameters:
            return self.compute_loss(x, y, y_pred, sample_weight, training=training)
        return self.compute_loss(x, y, y_pred, sample_weight)

    # -------------------------------------------------------------- the steps
    def train_step(self, data):
        """One training step on ``data`` (Keras's torch trainer's): forward, loss, backward, optimizer, metrics.
        Returns the logs (``compute_metrics``)."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        self.zero_grad()
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        if not isinstance(loss, backprop.LossValue):
            raise TypeError(f"compute_loss of model '{self.name}' returned a {type(loss).__name__}: the built-in "
                            "train_step takes the gradient of a loss value (it has a backward()). Build it from "
                            "super().compute_loss(...) and gpu_dl Loss objects called on y_pred, combined with "
                            "+ - * / (a term of your own: a Loss subclass whose call uses gpu_dl.ops).")
        self._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        if self.trainable_weights:
            loss.backward()
            trainable_weights = self.trainable_weights[:]
            self.optimizer.apply([v.grad for v in trainable_weights], trainable_weights)
        else:
            warn("The model does not have any trainable weights.")
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        """One evaluation step on ``data``: forward (training=False), loss, metrics. Returns the logs."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        self._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def predict_step(self, data):
        """The outputs for one batch ``data``."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # -------------------------------------------------------------- what the loops call
    # Model's loops call these; a routed class gets the versions further down. They give the logs as made; the
    # callbacks get them put in order by CallbackList (pythonify_logs, as Keras's CallbackList does), so
    # History's keys, too.
    def _batch_logs(self):
        """The logs a batch hook gets."""
        return self._logs()

    def _train_logs(self):
        """An epoch's training logs, read before validation."""
        return self._logs()

    def _end_logs(self):
        """An evaluation's logs, as its end hook gets them and it returns them."""
        return self._logs()

    def _evaluate_result(self, logs, return_dict):
        """What evaluate() and the ``*_on_batch`` methods return for ``logs``: with ``return_dict`` the logs as
        Keras 3 returns them (``pythonify_logs``: by sorted key); else the list in Keras's order."""
        return pythonify_logs(logs) if return_dict else self._listed(logs)


# ------------------------------------------------------------------ routed versions
def _step_logs(model, method, logs):
    if not isinstance(logs, dict):
        raise TypeError(f"{type(model).__name__}.{method} must return a dict of logs (a metric's name to its value, "
                        f"as {{m.name: m.result() for m in self.metrics}}), got {type(logs).__name__}.")
    model.__dict__["_trainer_step_logs"] = logs


def _last_logs(model):
    return model.__dict__.get("_trainer_step_logs") or {}


def _metrics_or_logs(model):
    """Keras's ``_get_metrics_result_or_logs``: the metrics' results where their keys are the last step's."""
    logs = _last_logs(model)
    results = model.get_metrics_result()
    return results if set(logs) == set(results) else logs


def _routed_prepare(self, x, y, sample_weight=None, class_weight=None, x_name="x", y_name="y", batch_size=None):
    if not type(self)._free_data:
        x, ys, sw, output_shape = _next(self, "_prepare")(x, y, sample_weight, class_weight, x_name, y_name,
                                                          batch_size)
        several = getattr(self, "_multi", False)      # a subclassed model's outputs are known once it is built
        # compute_loss and compute_metrics get them as given
        if several:
            ys, sw = given_form(self, ys, y), given_form(self, sw, sample_weight)
        else:
            ys, sw = one_output_given(ys, y), one_output_given(sw, sample_weight)
        return x, ys, sw, output_shape
    from .model import Model
    dtype = getattr(self, "dtype", None) or backend.floatx()
    if isinstance(x, dict):
        # the step gets the dict as it was given (Keras's steps do): its arrays, keyed
        x = Keyed((checks.features(a, f"{x_name}[{k!r}]", dtype) for k, a in x.items()), x)
    elif type(self)._host_features is not Model._host_features:
        x = self._host_features(x, x_name)
    elif isinstance(x, (list, tuple)):
        x = tuple(checks.features(a, f"{x_name}[{i}]", dtype) for i, a in enumerate(x))
    else:
        x = checks.features(x, x_name, dtype)
    if isinstance(y, dict):
        y = Keyed((None if a is None else checks.targets(a, f"{y_name}[{k!r}]") for k, a in y.items()), y)
        y = y.like(None if a is None else a.astype(dtype, copy=False) if a.dtype.kind == "f" else a for a in y)
    elif isinstance(y, (list, tuple)):
        y = Given((None if a is None else checks.targets(a, f"{y_name}[{i}]") for i, a in enumerate(y)),
                  list if isinstance(y, list) else tuple, range(len(y)))
        y = y.like(None if a is None else a.astype(dtype, copy=False) if a.dtype.kind == "f" else a for a in y)
    elif y is not None:
        y = checks.targets(y, y_name)
        y = y.astype(dtype, copy=False) if y.dtype.kind == "f" else y
    lengths = {x_name: x[0] if isinstance(x, tuple) else x}
    if y is not None:
        lengths[y_name] = next((a for a in y if a is not None), None) if isinstance(y, tuple) else y
    checks.same_length({k: v for k, v in lengths.items() if v is not None})
    n = _length(x)
    if isinstance(sample_weight, dict):
        sw = Keyed((checks.sample_weights(w, n, f"sample_weight[{k!r}]", values_shape="any")
                    for k, w in sample_weight.items()), sample_weight)
        if class_weight is not None:
            raise ValueError("`class_weight` needs the targets of a model of one output, not weights per output.")
        return x, y, sw.like(None if w is None else w.astype(dtype) for w in sw), None
    if isinstance(sample_weight, (list, tuple)) and isinstance(y, tuple) and len(sample_weight) == len(y) and all(
            w is None or hasattr(w, "__len__") for w in sample_weight):
        # weights per entry of a list (tuple) of targets, as Keras takes them: the step gets that list
        if class_weight is not None:
            raise ValueError("`class_weight` needs the targets of a model of one output, not weights per output.")
        sw = Given((None if w is None else checks.sample_weights(w, n, f"sample_weight[{i}]", values_shape="any")
                    for i, w in enumerate(sample_weight)), list if isinstance(sample_weight, list) else tuple,
                   range(len(sample_weight)))
        return x, y, sw.like(None if w is None else w.astype(dtype) for w in sw), None
    sw = checks.sample_weights(sample_weight, n, values_shape="any")
    cw = None
    if class_weight is not None:
        one = isinstance(y, Given) and len(y) == 1
        if y is None or (isinstance(y, tuple) and not one):
            raise ValueError("`class_weight` needs the targets of a model of one output.")
        cw = checks.class_weights_to_sample_weights(class_weight, y[0] if one else y, None)
    if cw is not None:
        sw = cw if sw is None else sw * cw
    if sw is not None:
        sw = sw.astype(dtype)
    return x, y, sw, None


def _routed_resolve_metrics(self, y_shape, output_shape):
    if isinstance(y_shape, list) and len(y_shape) == 1 and not getattr(self, "_multi", False):
        y_shape = y_shape[0]            # the targets of the one output, given as a list of one
    if output_shape is not None:        # else the compile metrics resolve from their first batch
        _next(self, "_resolve_metrics")(y_shape, output_shape)


def _routed_start(self, x_shape, batch_size=None):
    if not getattr(self, "built", False):
        self._build_by_run(_batchless(list(x_shape) if isinstance(x_shape, tuple) and x_shape and
                                      isinstance(x_shape[0], tuple) else x_shape))
    self._fused_softmax = False         # the steps compute the loss from y_pred


def _routed_train_step(self, x, y, sw, ids_checked=False):
    _step_logs(self, "train_step", self.train_step(pack(x, y, sw)))


def _routed_test_step(self, x, y, sw, ids_checked=False):
    _step_logs(self, "test_step", self.test_step(pack(x, y, sw)))


def _routed_logs(self, prefix=""):
    return {prefix + k: v for k, v in pythonify_logs(_metrics_or_logs(self)).items()}


def _routed_batch_logs(self):
    return _last_logs(self)


def _routed_train_logs(self):
    return dict(_metrics_or_logs(self))


def _routed_reset_metrics(self):
    self.__dict__["_trainer_step_logs"] = {}
    for metric in self.metrics:
        metric.reset_state()


def flatten_in_order(model, logs):
    """Keras's ``_flatten_metrics_in_order``: the values of ``logs`` in the order of ``model.metrics`` (the compiled
    metrics' own names in their place), then the other keys sorted; one value alone as itself."""
    names = []
    for metric in model.metrics:
        names.extend(m.name for m in metric.metrics) if isinstance(metric, _CompileMetrics) else \
            names.append(metric.name)
    values = [logs[name] for name in names if name in logs]
    values += [logs[key] for key in sorted(logs) if key not in names]
    return values[0] if len(values) == 1 else values


# A step's logs are already in Keras's order (``pythonify_logs``: sorted, a nested dict's entries at its key's place).
def _routed_evaluate_result(self, logs, return_dict):
    return logs if return_dict else flatten_in_order(self, logs)


def _routed_batch_result(self, return_dict):
    logs = pythonify_logs(_last_logs(self))
    return logs if return_dict else flatten_in_order(self, logs)


def _on_batch(model, method, x, y, sample_weight, class_weight, return_dict):
    model._require_compiled(method)
    x, y, sw, output_shape = model._prepare(x, y, sample_weight, class_weight)
    model._resolve_metrics(_shapes(y), output_shape)
    model._start(_shapes(x))
    model.reset_metrics()
    xb, yb, swb = model._device_batch(x, y, sw, slice(None))
    step = "train_step" if method == "train_on_batch" else "test_step"
    data = (_as_given(xb), _as_given(yb), _as_given(swb))       # as Keras hands it: all three
    _step_logs(model, step, getattr(model, step)(data))
    return model._batch_result(return_dict)


def _routed_train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
    """One step of ``train_step`` on one batch, given ``(x, y, sample_weight)`` as Keras gives it."""
    return _on_batch(self, "train_on_batch", x, y, sample_weight, class_weight, return_dict)


def _routed_test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
    return _on_batch(self, "test_on_batch", x, y, sample_weight, None, return_dict)


def _metrics_names(self):
    return [m.name for m in self.metrics]


_ROUTED = {
    "_prepare": _routed_prepare,
    "_resolve_metrics": _routed_resolve_metrics,
    "_start": _routed_start,
    "_train_step": _routed_train_step,
    "_test_step": _routed_test_step,
    "_logs": _routed_logs,
    "_end_logs": _routed_logs,
    "_batch_logs": _routed_batch_logs,
    "_train_logs": _routed_train_logs,
    "reset_metrics": _routed_reset_metrics,
    "_evaluate_result": _routed_evaluate_result,
    "_batch_result": _routed_batch_result,
    "train_on_batch": _routed_train_on_batch,
    "test_on_batch": _routed_test_on_batch,
    "metrics_names": property(_metrics_names),
}


# ------------------------------------------------------------------ predict with a predict_step of its own
def _concatenated(parts):
    """The batches' outputs joined along the batch axis, in the structure of one batch's."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concatenated([p[k] for p in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        joined = [_concatenated([p[i] for p in parts]) for i in range(len(first))]
        return joined if isinstance(first, list) else tuple(joined)
    if first is None:
        return None
    return numpy.concatenate([numpy.asarray(backend.to_numpy(p)) for p in parts], axis=0)


def _host(value):
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v) for v in value)
    if isinstance(value, dict):
        return {k: _host(v) for k, v in value.items()}
    return value if value is None else numpy.asarray(backend.to_numpy(value))


def _device_data(value):
    """A batch's arrays (in its structure) on the device."""
    if isinstance(value, (list, tuple)):
        return type(value)(_device_data(v) for v in value)
    if isinstance(value, dict):
        return {k: _device_data(v) for k, v in value.items()}
    if value is None:
        return None
    array = numpy.asarray(value) if not hasattr(value, "shape") else value
    if array.dtype == numpy.float64:
        array = array.astype(backend.floatx())
    return backend.to_device(array)


def predict(model, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
    """``Model.predict`` for a class with a ``predict_step`` of its own: the step on each batch (a batch of arrays
    as Keras hands it, ``x`` or ``(x,)`` for several inputs; a PyDataset's or generator's as it yields it),
    what it returns joined along the batch axis in its structure, as NumPy arrays."""
    from . import streaming
    from .array_epochs import ArrayEpochs
    from .model import _dataset_input
    verbose = checks.verbosity(verbose)
    callbacks = model._check_callbacks(callbacks)
    stream = None
    if streaming.is_stream(x):
        streaming._refuse(x, "x", batch_size=batch_size)
        stream = streaming.Stream(x, streaming.checked_steps(steps, "steps"), False, "x", "steps")
        known = stream.known_steps
        batches = ((step, raw) for step, _, raw in stream.epoch())
    else:
        x, _, batch_size, _ = _dataset_input(x, None, batch_size, None, "predict", in_order=False)
        batch_size = checks.positive_int(32 if batch_size is None else batch_size, "batch_size")
        if isinstance(x, (list, tuple)):
            x = tuple(checks.as_array(a, f"x[{i}]") for i, a in enumerate(x))
        else:
            x = checks.as_array(x, "x")
        epochs_of = ArrayEpochs(_length(x), batch_size, steps, steps_name="steps")
        known = epochs_of.known_steps
        batches = ((step, pack(tuple(a[index] for a in x) if isinstance(x, tuple) else x[index]))
                   for step, index in epochs_of.epoch())
    listeners = list(callbacks) + ([ProgbarLogger(verbose)] if verbose else [])
    cbs = CallbackList(listeners, model, {"verbose": verbose, "steps": known})
    cbs.call("on_predict_begin", {})
    outputs = []
    for step, data in batches:
        cbs.batch("on_predict_batch_begin", step, dict)
        outputs.append(_host(model.predict_step(_device_data(data))))
        cbs.batch("on_predict_batch_end", step, lambda: {"outputs": outputs[-1]})
    if stream is not None and stream.stopped:
        warn(streaming.RAN_OUT)
    cbs.call("on_predict_end", {})
    if not outputs:
        raise ValueError("predict() got no batches to run on.")
    return _concatenated(outputs)


# ------------------------------------------------------------------ Model(inputs, outputs) of a subclass
def functional_arguments(args, kwargs):
    """Whether a model's constructor arguments are a functional model's (``inputs`` and ``outputs``), as Keras
    tells them apart."""
    return (len(args) == 2 and not isinstance(args[0], str)) or (len(args) == 1 and "outputs" in kwargs) or \
        ("inputs" in kwargs and "outputs" in kwargs)


_functional_classes: dict = {}


def functional_class(cls):
    """The class a functional model of the ``Model`` subclass ``cls`` has: a subclass of both, which keeps
    ``cls``'s methods (``train_step``, ...) before ``Functional``'s (made once per class)."""
    from .functional import Functional
    if issubclass(cls, Functional):
        return cls
    klass = _functional_classes.get(cls)
    if klass is None:
        klass = _functional_classes[cls] = type(cls.__name__, (cls, Functional), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
    return klass


def user_class(model):
    """The class of the caller's a functional model was made of (``CustomModel(inputs, outputs)``), or None for a
    library class: the one a saved config names."""
    for cls, klass in _functional_classes.items():
        if type(model) is klass:
            return cls
    return None if _library(type(model)) else type(model)


def functional_like(cls):
    """Whether ``cls``'s constructor takes a functional model's arguments, as Keras tells it for a saved model's
    class: it has none of its own, or one of ``(*args, **kwargs)``."""
    init = cls.__init__
    owner = _owner(cls, "__init__")
    if owner is None or _library(owner):
        return True
    spec = inspect.getfullargspec(init)
    return spec.varargs == "args" and spec.varkw == "kwargs"


def become_functional(model, args, kwargs):
    """Make ``model``, an instance of a ``Model`` subclass given functional arguments, a functional model of
    that class (Keras's ``inject_functional_model_class``): its class becomes a subclass of both, which keeps
    the subclass's methods (``train_step``, ...) before ``Functional``'s."""
    from .functional import Functional
    model.__class__ = functional_class(type(model))
    Functional.__init__(model, *args, **kwargs)

