"""The Keras training API: compile, fit, evaluate, predict, *_on_batch.

``Model`` holds the loop; a subclass (``Sequential``, ``Functional``) supplies
the graph: ``layers``, ``forward(x, training, mask)``,
``backward(dy, from_logits, input_gradient)``, ``_flat_output_shape``,
``build`` and ``input_spec``.

As in Keras, a model is a ``Layer``: it can be a layer of another model
(``Sequential([base, Dense(10)])``, or ``base(x)`` on a symbolic tensor in a
functional graph). Its weights are its layers' weights, in their order; its
``trainable`` flag sets its layers'; called as a layer it runs ``forward`` and
``backward`` and reports the activity penalties of its layers' calls
(``_activity_outputs``), so the outer model's loss counts them
(``nested.py`` holds the checks and the per-call state this needs).

One training step: host batch -> device -> forward through the layers ->
loss (fused softmax + cross-entropy from the last layer's logits where the
last activation is softmax) -> backward in reverse -> regularizer gradients ->
optimizer update -> metric sums (kept on the device). Nothing is copied back
to the host inside the step; the progress bar reads the running loss when it
draws.

The loss a step reports and trains on is Keras's total: the compiled loss (if
any), the regularization penalties and the sum of each loss the layers added
in the step's forward pass (``add_loss``, layers/layer_losses.py); the graph a
composite call was traced into sends the added losses' gradients back itself.
Compiled without a loss, a model trains on the rest, and a step where there is
no loss at all raises Keras's "No loss to compute".
"""
from __future__ import annotations

import contextlib
import numbers
import warnings

import numpy

from .. import backend, dtype_policies, losses as losses_module, metric_base, metrics as metrics_module, optimizers
from ..backend.nvtx import nvtx_range
from ..callbacks import CallbackList, History, ProgbarLogger
from ..catalogue import keras_snake_case
from ..utils.io_utils import print_msg
from ..layers import build_shapes, gradients as gradient_pass, layer_losses, layer_metrics
from ..layers.base import Layer, _marks_composite, _unique_variables as _unique, build_by_run, building_by_run, \
    unique_name
from ..layers.input_spec import holds_input_specs
from .array_epochs import ArrayEpochs
from . import compiled_metrics, composite, data_checks as checks, execution, host_ids, streaming, trainer
from .multi_output import SeveralOutputs

_ACCURACY_WORDS = ("accuracy", "acc", "crossentropy", "ce")
# Where a model keeps its compiled metrics and what they were compiled from: not metrics it holds itself.
_COMPILED_METRIC_ATTRIBUTES = frozenset({"_metrics", "_weighted_metrics", "_metric_identifiers",
                                         "_weighted_identifiers", "_output_metric_ids", "_output_weighted_ids",
                                         "_compile_args"}) | trainer.INTERNAL_ATTRIBUTES
# The keys of a functional model's config: Model.from_config makes a functional model of a config holding them.
FUNCTIONAL_CONFIG_KEYS = ("name", "layers", "input_layers", "output_layers")


# ------------------------------------------------------- data sets given as x
# A data set (gpu_dl.data.SequenceDataset, or anything with ``as_arrays()`` and a
# ``batch_size``) is turned into arrays at the top of fit/evaluate/predict; the rest
# of those methods sees arrays only. Keras's rules for data sets apply: no `y` or
# `sample_weight` beside it, its own batch size, and in fit its own shuffle flag
# instead of fit's `shuffle` (True: fit reshuffles the windows each epoch with the
# backend's random generator, as it does for arrays; False: chronological order).
# fit and evaluate read the windows in chronological order; predict returns outputs
# in the order one pass of the data set yields them.

def _is_dataset(x):
    return callable(getattr(x, "as_arrays", None)) and hasattr(x, "batch_size")


def _dataset_input(x, y, batch_size, sample_weight, method, name="x", batch_name="batch_size", in_order=True):
    """``(x, y, batch_size, shuffle)``: a data set's arrays, batch size and shuffle flag.

    Input that is not a data set comes back unchanged, with ``shuffle=None``.
    ``in_order=False`` takes the windows in the order one pass of the data set yields them.
    """
    if not _is_dataset(x):
        return x, y, batch_size, None
    if y is not None:
        raise ValueError(f"`y` must not be given when `{name}` is a data set: the data set yields the targets.")
    if sample_weight is not None:
        raise ValueError(f"`sample_weight` is not supported when `{name}` is a data set.")
    if x.batch_size is None:
        raise ValueError(f"`{name}` yields single windows (batch_size=None): {method}() needs batches; "
                         "make the data set with a batch_size.")
    if batch_size is not None and batch_size != x.batch_size:
        raise ValueError(f"`{batch_name}` must not be given when `{name}` is a data set: its batches hold "
                         f"batch_size={x.batch_size} windows, set when it was made (got {batch_name}={batch_size!r}).")
    xs, ys = x.as_arrays(in_order=in_order)
    if ys is None and method != "predict":
        raise ValueError(f"`{name}` yields inputs only (it was made with targets=None): {method}() needs targets.")
    return xs, ys, x.batch_size, bool(x.shuffle)


# ------------------------------------------------------- one input or several
# A model of several inputs (gpu_dl.Model(inputs=[a, b], ...)) takes them as a tuple of arrays, one per input,
# all with the same number of samples; a model of one input takes the array itself. These helpers slice, move
# and measure either form, so the loop below is written once for both.

# A model of several outputs takes its targets (and per-output sample weights) the same way, as a tuple of one
# array per output, None for an output that has neither a loss nor metrics.

def _length(x):
    return len(next(a for a in x if a is not None)) if isinstance(x, tuple) else len(x)


def _like(x, parts):
    """``parts`` in the form of the tuple ``x``: a tuple, or the same kind of tuple where it keeps more (the keys of
    the dict it came from, ``trainer.Keyed``)."""
    return x.like(parts) if hasattr(x, "like") else tuple(parts)


def _take(x, index):
    if x is None:
        return None
    return _like(x, (None if a is None else a[index] for a in x)) if isinstance(x, tuple) else x[index]


def _flat(out):
    """A batch's outputs as a list of one array per output."""
    return out if isinstance(out, list) else [out]


def _shapes(x):
    if x is None:
        return None
    return [None if a is None else a.shape for a in x] if isinstance(x, tuple) else x.shape


def checked_training(model, training):
    """``training`` as a model's call takes it (True, False, None, or an integer flag); a TypeError naming the
    model otherwise (an array there is a second input given positionally: ``model(x, y)``)."""
    if training is None or isinstance(training, (bool, int, numpy.bool_, numpy.integer)):
        return training
    raise TypeError(f"Model '{model.name}': `training` must be True, False or None, got {type(training).__name__}; "
                    "a model's call takes its inputs as its first argument (a list or dict of them for several), "
                    "and targets are not among them.")


def _batchless(shape):
    """The shape(s) with the batch axis unknown (None)."""
    if isinstance(shape, list):
        return [_batchless(s) for s in shape]
    return (None,) + tuple(shape[1:])


def _first_batch_shape(shape, batch_size):
    """The shape(s) of the first batch of ``batch_size`` samples of data of ``shape`` (all of it for None)."""
    if isinstance(shape, list):
        return [None if s is None else _first_batch_shape(s, batch_size) for s in shape]
    return tuple(shape) if batch_size is None else (min(batch_size, shape[0]),) + tuple(shape[1:])


def _shape_list(shape):
    """One shape, or shapes (a list or tuple of them), as a list of tuples; None as None."""
    if shape is None:
        return None
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [tuple(s) for s in shape]
    return [tuple(shape)]


def _on_device(x):
    if isinstance(x, tuple):
        return _like(x, (None if a is None else backend.to_device(a) for a in x))
    return backend.to_device(x)


def _reduced_loss(loss, y, y_pred, sw, mask, training, scale=1.0):
    """``scale`` times the loss's reduced value (0-d, on the device) and, when ``training``, its gradient with
    respect to ``y_pred`` (else None)."""
    per_sample = loss.per_sample(y, y_pred, training)
    uniform = loss.uniform_reduction_weight(y, y_pred, per_sample.size, sw, output_mask=mask)
    if uniform is not None:   # every value weighs the same: a scalar, not an array of equal weights
        factor = per_sample.dtype.type(uniform)
        value = per_sample.sum() * factor
        grad_factor = per_sample.dtype.type(uniform * scale)
        return value, (loss.training_grad(y, y_pred, grad_factor) if training else None)
    weights = loss.reduction_weights(y, y_pred, per_sample, sw, output_mask=mask)
    value = (weights * per_sample).sum()
    dout = None
    if training:
        if scale != 1.0:
            weights = weights * weights.dtype.type(scale)
        # The loss spreads the weights itself: its values need not be one per row of y_pred.
        dout = loss.training_grad(y, y_pred, weights)
    return value, dout



def _metric_list(metrics, what, loss):
    """The metric identifiers of compile's ``metrics`` or ``weighted_metrics`` for a model of one output, checked
    (those that do not depend on the data's shapes resolved now)."""
    if metrics is None:
        found = []
    elif isinstance(metrics, (list, tuple)):
        # Keras flattens the metrics of a model of one output: [["mae"]] (a list for each output) is ["mae"].
        found = [m for entry in metrics for m in (entry if isinstance(entry, (list, tuple)) else [entry])]
    elif isinstance(metrics, dict):
        raise ValueError(f"This model has one output: `{what}` must be a list, not a dict.")
    else:
        found = [metrics]
    for identifier in found:
        # Names that depend on data shapes resolve at fit time; all others must resolve now.
        if not (isinstance(identifier, str) and identifier.lower() in _ACCURACY_WORDS):
            metrics_module.get(identifier, loss=loss)
    return found


def one_loss_weight(loss_weights):
    """The weight of the one loss of a model of one output, as Keras's compiled loss takes ``loss_weights``: a
    float, or a list, tuple or dict of one number (whatever its key); None for no weight."""
    if loss_weights is None:
        return None
    if loss_weights and not isinstance(loss_weights, (list, tuple, dict, float)):
        raise ValueError("Expected `loss_weights` argument to be a float (single output case) or a list, tuple, or "
                         f"dict (multiple output case). Received instead: loss_weights={loss_weights!r} of type "
                         f"{type(loss_weights).__name__}.")
    flat = list(loss_weights.values()) if isinstance(loss_weights, dict) else \
        list(loss_weights) if isinstance(loss_weights, (list, tuple)) else [loss_weights]
    if len(flat) != 1:
        raise ValueError(f"`loss_weights` must match the number of losses, got 1 losses and {len(flat)} weights: "
                         "this model has one output, whose loss takes one weight (a float, or a list or dict of "
                         "one).")
    weight = flat[0]
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not numpy.isfinite(weight):
        raise ValueError(f"`loss_weights`, the weight of the model's one loss, must be a finite number, got "
                         f"{weight!r}.")
    return float(weight)


def _loss_input(y_pred):
    """A model output as the losses and metrics take it: float16 (a model computing under "mixed_float16") as
    float32, as Keras's losses and metrics compute in float32; anything else as it is."""
    if isinstance(y_pred, (list, tuple)):
        return type(y_pred)(_loss_input(p) for p in y_pred)
    if getattr(y_pred, "dtype", None) == numpy.float16:
        return y_pred.astype(numpy.float32)
    return y_pred


def _scaled_gradient(dout):
    """The gradient of the output (an array, a list of them and None) times the step's loss scale."""
    if isinstance(dout, (list, tuple)):
        return type(dout)(_scaled_gradient(d) for d in dout)
    return gradient_pass.scaled(dout)


def _weighted(value, weight):
    """A reduced loss times its compiled weight (None: no weight)."""
    return value if weight is None else value * value.dtype.type(weight)


def _total(value, penalty, added):
    """The total loss: the compiled loss, the regularization penalties and the added losses (each None where there
    is none; 0.0 where all are). Only arrays are added: a Python 0.0 added to a float32 loss scalar would make it
    float64 on NumPy 1.26."""
    parts = [part for part in (value, penalty, added) if part is not None]
    if not parts:
        return 0.0
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def activity_of(layer):
    """(layer, output) of each call with an activity regularizer in ``layer``'s last call: its own, and those inside
    it (a model's layers, a composite layer's traced graph)."""
    if isinstance(layer, Model):
        return layer._activity_outputs()
    found = []
    graph = composite.active_graph(layer)
    if graph is not None:
        found.extend(graph._activity_outputs())
    if layer.activity_regularizer is not None and layer._activity_output is not None:
        found.append((layer, layer._activity_output))
    return found


class _ModelBase(trainer.Trainer, Layer):
    """Base of trainable models. See the module docstring.

    ``Model(inputs, outputs)`` (or ``Model(inputs=..., outputs=..., name=...)``) makes a functional model,
    as ``keras.Model`` does; so does a subclass given them (``CustomModel(inputs, outputs)``), which stays an
    instance of its class. The steps fit, evaluate and predict run may be overridden (``trainer.py``).
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from .functional import Functional
            return super().__new__(Functional)
        return super().__new__(cls)

    # A model's build builds its layers and its input_spec is its inputs': neither is Layer's.
    build_marks_built = False
    # How many inputs the model takes and outputs it gives (a functional model's may be several).
    _input_count = 1
    _output_count = 1
    # The mask of padded steps a model is called with reaches its first layers; its output's mask is the one
    # its last forward computed (compute_mask).
    takes_mask = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A model's backward (Sequential's, Functional's, or one a subclass writes by hand) is one gradient pass
        # where it is the top-level backward (layers/gradients.py): the step's gradients, summed over the calls
        # that reach one variable.
        own = cls.__dict__.get("backward")
        if own is not None and not getattr(own, "_opens_pass", False):
            cls.backward = gradient_pass.opens_pass(own)

    def __init__(self, *args, name=None, trainable=True, dtype=None, **kwargs):
        if trainer.functional_arguments(args, kwargs):
            trainer.become_functional(self, args, dict(kwargs, name=name, trainable=trainable))
            return
        if kwargs or len(args) > 3:
            raise TypeError(f"{type(self).__name__} takes the arguments name, trainable and dtype (or inputs and "
                            f"outputs, for a functional model); got {len(args)} positional argument(s) and "
                            f"{sorted(kwargs)}.")
        name, trainable, dtype = (tuple(args) + (name, trainable, dtype)[len(args):])[:3]
        if not self._composite and type(self).call is not Layer.call:
            raise TypeError(f"{type(self).__name__}: a subclassed model with its own backward() is not supported. "
                            "gpu_dl trains a subclassed model through the graph traced from its call (which sums the "
                            "gradients of a variable several of its layers read): remove backward(), or write a "
                            "Layer subclass with call() and backward() and use it in a Sequential or functional "
                            "model (or in a subclassed model's call).")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Model name must be a non-empty string, got {name!r}.")
        # A subclassed model (layers made in __init__, composed in call) is named after its class, as in Keras.
        self.name = name or unique_name(keras_snake_case(type(self).__name__) if self._composite else "model")
        self._trainable = bool(trainable)
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._metric_identifiers = []
        self._weighted_identifiers = []
        self._metrics = None            # resolved Metric objects, once shapes are known
        self._weighted_metrics = []     # those of weighted_metrics, which take the sample weights
        self._loss_sum = None           # running sums on the device: loss * samples, samples
        self._loss_count = 0
        self.output_mask = None         # the last forward's mask of padded output steps (Keras's mask)
        # What Layer.__init__ sets that a model used as a layer needs too (a model's dtype, input_spec and built
        # come from its layers, so Layer.__init__ itself is not run).
        self._weights = []
        self._inbound_nodes = []
        self.activity_regularizer = None
        self.declared_input_shape = None
        self.keep_preactivation = False
        self._preactivation = None
        self._saved = None
        self._activity_output = None
        self.input_gradient_wanted = True
        if self._composite:
            # Built from the first data it sees, by tracing its call (composite.py).
            self.dtype_policy = dtype
            self.built = False
            self.input_spec = None
        elif dtype is not None:
            raise TypeError(f"{type(self).__name__} takes no dtype argument; its layers have theirs.")
        else:
            # As a Keras model's: the global policy when it is made (compile reads it: mixed_float16 scales the
            # loss), whatever its layers' policies are.
            self._dtype_policy = dtype_policies.get(None)

    # ------------------------------------------------------------------ a subclassed model
    # A subclass of Model that makes its layers in __init__ and composes them in call (no inputs and outputs
    # given): its layers are its sublayers, and it runs, trains and builds through the graph traced from its
    # call, as a composite layer does (composite.py). Sequential and Functional override all of these.
    @property
    def layers(self):
        return self._sublayers()

    def build(self, input_shape=None):
        if not self._composite:
            self.built = True
            return
        if input_shape is None:
            raise ValueError(f"build() of model '{self.name}' needs an input_shape: a subclassed model is built "
                             "for the shape of its inputs (or by calling it on data).")
        if building_by_run():
            composite.build(self, input_shape)
            return
        # A script's model.build(shape) marks the model built for that shape, as Keras's does: its sublayers are
        # built by its first call (which traces it), or by load_weights.
        if any(not layer.built and not build_shapes.built_at_init(layer) for layer in self._sublayers()):
            warnings.warn(f"`build()` was called on layer '{self.name}', however the layer does not have a `build()` "
                          "method implemented and it looks like it has unbuilt state. This will cause the layer to "
                          "be marked as built, despite not being actually built, which may cause failures down the "
                          "line. Make sure to implement a proper `build()` method.", UserWarning, stacklevel=2)
        composite.build(self, input_shape, trace=False)
    build._library_build = True

    def _build_by_run(self, input_shape):
        """Build as a first call does: a subclassed model's call traced for ``input_shape``, building its
        sublayers."""
        with build_by_run():
            self.build(input_shape)

    def _finish_build(self):
        """The sublayers of a subclassed model marked built by ``build(shape)`` alone, built by tracing its call
        for that shape (what loading weights into it needs)."""
        if not (self._composite and self.built and getattr(type(self).build, "_library_build", False)):
            return
        shape = self.input_spec
        if shape is None or self._built_graph() is not None or holds_input_specs(shape):
            return
        composite.build(self, shape)

    @layer_losses.top_level
    def forward(self, x, training=False, mask=None):
        """The output for ``x`` through the graph traced from ``call`` (an array, or a list of one per output)."""
        y = composite.forward(self, x, training, mask)
        self.output_mask = self.__dict__.get("_output_mask")
        return y

    @_marks_composite
    @gradient_pass.opens_pass
    def backward(self, dy, from_logits=False, input_gradient=True):
        if not self._composite:
            raise NotImplementedError(f"{type(self).__name__} has no backward pass.")
        return composite.backward(self, dy, input_gradient and self.input_gradient_wanted)

    def _check_input_shape(self, shape, name="x"):
        """Whether the traced call takes inputs of ``shape`` (each layer checks what reaches it)."""
        if isinstance(shape, tuple) and shape and isinstance(shape[0], (list, tuple)):
            shape = list(shape)
        try:
            self.compute_output_shape(_batchless(shape))
        except ValueError as e:
            raise ValueError(f"Model '{self.name}' cannot take `{name}` of shape {shape}: {e}") from None

    def _built_graph(self):
        traces = self.__dict__.get("_traces") or {}
        return next((graph for graph, _ in traces.values() if graph is not None), None)

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """Keras's ``quantize``: quantize the weights of every layer within the model that can be (``"int8"``,
        ``"int4"``: Dense, EinsumDense, Embedding, ReversibleEmbedding; ``"float8"``, ``"awq"``: Dense, EinsumDense,
        AWQ calibrating those of the structure's blocks (``gpu_dl/awq.py``); int8, int4, float8:
        the projections of MultiHeadAttention and GroupQueryAttention, Keras's EinsumDense sublayers), after
        the checks Keras makes (a built model, a known mode). ``filters`` (a regex, a list of them, or a callable
        taking a layer) picks the layers by name; as Keras applies them to the layers that hold weights, they pick
        an attention layer's projections by theirs (``query``, ``key``, ``value``, ``attention_output``).
        ``"gptq"`` (with a ``GPTQConfig``) prepares Dense and EinsumDense and then calibrates and quantizes those of
        the structure's blocks (``gpu_dl/gptq.py``)."""
        import re
        from ..layers import quantized
        type_check = kwargs.pop("type_check", True)
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if filters is not None and not isinstance(filters, (str, list, tuple)) and not callable(filters):
            raise ValueError("The `filters` argument must be a regex string, a list of regex strings, or a callable. "
                             f"Received: {type(filters)}")
        config = quantized.resolve_config(mode, config, f"Model '{self.name}'")
        quantized.check_quantize_args(self, config.mode)
        structure = None
        if config.mode in ("gptq", "awq"):
            from .. import quantization_calibration
            # refused before any layer changes (Keras checks after quantizing the layers)
            structure = quantization_calibration.resolve_structure(self, config)

        def chosen(layer):
            if filters is None:
                return True
            if isinstance(filters, str):
                return bool(re.search(filters, layer.name))
            if isinstance(filters, (list, tuple)):
                return any(re.search(pattern, layer.name) for pattern in filters)
            return bool(filters(layer))

        targets = [layer for layer in layer_losses.flatten_layers(self)
                   if (not layer._loss_sublayers() or getattr(layer, "quantizes_sublayers", False))
                   and hasattr(layer, "quantize") and (getattr(layer, "quantizes_sublayers", False) or chosen(layer))]
        for layer in targets:
            # a mode a layer does not run is refused before any layer changes, so that a model is not left half
            # quantized; a subclass the type check refuses is skipped with a warning below, as in Keras
            owner = next(c for c in type(layer).__mro__ if "quantize" in vars(c))
            if owner is type(layer) or not type_check:
                try:
                    quantized.check_layer_mode(layer, config.mode)
                except NotImplementedError:
                    pass        # skipped with Keras's warning below
        for layer in targets:
            try:
                if getattr(layer, "quantizes_sublayers", False):
                    layer.quantize_projections(config.mode, config=config, chosen=chosen)
                    continue
                layer.quantize(config.mode, type_check=type_check, config=config)
            except NotImplementedError as e:
                warnings.warn(str(e))
        if config.mode == "awq":
            from .. import awq
            awq.awq_quantize(config, structure)
        if config.mode == "gptq":
            from .. import gptq
            gptq.gptq_quantize(config, structure, chosen)

    def get_quantization_layer_structure(self, mode=None):
        """Keras's hook for the quantization modes that calibrate block after block (``"gptq"``, ``"awq"``): a model
        returns ``{"pre_block_layers": [...], "sequential_blocks": [...]}`` for ``mode``, the layers calibration
        inputs go through first and the blocks quantized one after the other; None (as here) where it has none."""
        del mode
        return None

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        from .summary import print_summary
        # Unbuilt, a subclassed model's table lists its layers as Keras does: '?' and "0 (unbuilt)" for each.
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable, layer_range=layer_range)

    def _subclassed_summary_rows(self):
        """One row per layer, with Keras's output shape of a subclassed model's layer: that of its last call on
        symbolic tensors outside the model's own call (in a functional model), else what its compute_output_shape
        gives for the shape its build recorded (the batch size included, as a call on arrays gave it), else '?'
        (a layer never built, or one Keras builds when it is made, which records no shape)."""
        from .summary import _format_shape, params_text, trainable_text
        graph = self._built_graph()
        own = set() if graph is None else graph._node_set
        rows = []
        for layer in self.layers:
            shape_text = "?"
            calls = [n for n in layer._inbound_nodes if n not in own]
            if calls:
                shapes = [_format_shape(t.shape) for t in calls[-1].outputs]
                shape_text = shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"
            elif layer.built:
                shape_text = _built_output_shape(layer)
            rows.append((f"{layer.name} ({type(layer).__name__})", shape_text, params_text(layer),
                         trainable_text(layer), None))
        return rows

    # ------------------------------------------------------------------ weights (of self.layers)
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        self._set_own_weights_trainable(self._trainable)
        for layer in self.layers:
            layer.trainable = value

    # A subclassed model's own weights (made with add_weight) come first, as in Keras; then its layers'.
    @property
    def weights(self):
        return _unique(list(self._weights) + [v for layer in self.layers for v in layer.weights])

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return _unique([v for v in self._weights if v.trainable] +
                       [v for layer in self.layers for v in layer.trainable_weights])

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return _unique([v for v in self._weights if not v.trainable] +
                       [v for layer in self.layers for v in layer.non_trainable_weights])

    def _weight_count_message(self, variables, given):
        return (f"Model '{self.name}' has {len(variables)} weight arrays"
                f"{'' if self.built else ' (it is not built yet: build it or fit it first)'}; got {given}.")

    def _weight_label(self, i, var):
        return f"set_weights: array {i}, for '{var.path}',"

    # ------------------------------------------------------------- as a layer
    def ensure_built(self, input_shape):
        if not self.built:
            # inside a traced call (or a Sequential built from data), the batch size Keras's build gets
            self._build_by_run(build_shapes.with_stand_in(input_shape))

    def check_input_shape(self, shape):
        """Called as a layer of another model: a ValueError naming this model when ``shape`` does not fit it."""
        self._check_input_shape(shape, "input")

    def compute_mask(self, x, mask=None):
        return self.output_mask

    def symbolic_compute_mask(self, x, mask, outputs):
        """On symbolic tensors, a subclassed model's outputs have the masks that reach them in its traced call
        (``composite.carried_masks``) and no other; Sequential and Functional say what reaches theirs."""
        return [None] * len(outputs)

    def compute_output_shape(self, input_shape):
        """The output shape for ``input_shape``, in the structure the model gives its outputs, as Keras gives it:
        a dict of shapes for a model made with a dict of outputs (even of one), a list or tuple for one made with
        a list or tuple (even of one), the shape itself for one made with a tensor. The models holding this one
        read the flat form (``_flat_output_shape``: one shape, or a list of one per output).

        A dict has its keys in the order ``outputs`` gave them when ``input_shape`` is the model's own input
        shape, in sorted order otherwise, as Keras orders them (it takes a shortcut for its own input shapes)."""
        flat = self._flat_output_shape(input_shape)
        shapes = self._structured(flat if isinstance(flat, list) else [flat], symbolic=True)
        # (a subclassed model's in sorted order, as Keras's symbolic call of it gives them)
        if isinstance(shapes, dict) and (self._composite or _shape_list(input_shape) != _shape_list(self.input_shape)):
            shapes = {key: shapes[key] for key in sorted(shapes)}
        return shapes

    def _flat_output_shape(self, input_shape):
        # A subclassed model's shapes come from its traced call; Sequential and Functional give their own.
        if self._composite:
            return composite.output_shape(self, input_shape)
        raise NotImplementedError(f"Model '{self.name}' has no layers to compute an output shape from.")

    def _loss_sublayers(self):
        return _unique(list(self.layers) + self._sublayers())

    def _flat_layers(self):
        """The layers of this model and of the models among them, depth first (models left out)."""
        found = []
        for layer in self.layers:
            if isinstance(layer, Model):
                found.extend(layer._flat_layers())
            else:
                found.append(layer)
        return found

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Choose optimizer, loss and metrics (Keras 3's arguments). The execution flags set ``run_eagerly``,
        ``jit_compile`` and ``steps_per_execution`` as Keras does (``execution.py``: gpu_dl's steps run as they
        are; ``steps_per_execution`` calls the batch callbacks once per that many batches).

        Without a ``loss`` the model trains on the losses its layers add (``add_loss``, regularizers), as in
        Keras; fit and evaluate raise Keras's "No loss to compute" where there are none. As in Keras 3, a compile
        without a loss keeps the loss of an earlier compile, and one without metrics its metrics.
        ``weighted_metrics`` are metrics computed with the sample (and class) weights fit and evaluate are given,
        which ``metrics`` leave out (``compiled_metrics``)."""
        execution.set_compile_flags(self, run_eagerly, steps_per_execution, jit_compile)
        self._note_compile(loss)
        # As Keras 3, a compile without a loss keeps the compiled loss of an earlier compile, its weight included.
        reused = loss is None and self.compiled and not isinstance(self.loss, list) and self.loss is not None
        if reused:
            loss = self.loss
        if metrics is None and weighted_metrics is None and self.compiled and self.__dict__.get("_metrics_given"):
            metrics = list(self._metric_identifiers)
        self._metrics_given = metrics is not None or weighted_metrics is not None
        if isinstance(loss, (list, tuple)) and len(loss) == 1:
            loss = loss[0]      # as Keras takes it: the loss of the one output, in a list
        if isinstance(loss, (list, tuple, dict)):
            raise ValueError("This model has one output: `loss` must be a single loss, not a list or dict.")
        loss_weight = self.__dict__.get("_loss_weight") if reused else one_loss_weight(loss_weights)
        new_optimizer = self._compile_optimizer(optimizer, auto_scale_loss)
        new_loss = None if loss is None else losses_module.get(loss)
        if new_loss is not None and new_loss.reduction in ("none", None):
            raise ValueError("Loss reduction 'none' gives no scalar to train on: use 'sum_over_batch_size' "
                             "(the default) or 'sum'.")
        metric_ids = _metric_list(metrics, "metrics", new_loss)
        weighted_ids = _metric_list(weighted_metrics, "weighted_metrics", new_loss)
        self.optimizer, self.loss, self._metric_identifiers = new_optimizer, new_loss, metric_ids
        if not reused:
            # what a saved compile_config writes: the weight as it was given (Keras's form)
            self._loss_weights_given = None if new_loss is None else loss_weights
            # Keras's compile_config writes the loss as compile was given it: a name stays a name
            self._loss_given = loss if isinstance(loss, str) else None
        self._loss_weight = None if new_loss is None else loss_weight
        self._weighted_identifiers = weighted_ids
        self._metrics = None
        self._weighted_metrics = []
        self.compiled = True

    def _compile_optimizer(self, optimizer, auto_scale_loss):
        """The optimizer compile takes: ``optimizer``'s, wrapped in a ``LossScaleOptimizer`` where the model's
        policy is "mixed_float16" and ``auto_scale_loss`` is set, as Keras's compile wraps it (float16 gradients
        need the loss scaled up, and the optimizer scaling them down)."""
        new_optimizer = optimizers.get(optimizer)
        # What compile_config writes, as Keras's: the optimizer compile was given, not the wrapper.
        self._given_optimizer = new_optimizer
        if auto_scale_loss and new_optimizer is not None and self.dtype_policy.name == "mixed_float16" and \
                not isinstance(new_optimizer, optimizers.LossScaleOptimizer):
            new_optimizer = optimizers.LossScaleOptimizer(new_optimizer, name="loss_scale_optimizer")
        return new_optimizer

    def _require_compiled(self, method):
        if not self.compiled:
            raise ValueError(f"You must call `compile()` before calling `{method}()`.")

    def _tracked_metrics(self):
        """The metrics the model and its layers hold, which fit and evaluate reset and report beside the compiled
        ones, as Keras's do."""
        return layer_metrics.model_metrics(self, _COMPILED_METRIC_ATTRIBUTES, lambda layer: isinstance(layer, Model))

    @property
    def metrics_names(self):
        """Keras 3's: the names of its ``Model.metrics``. None before compile; then ``loss``, ``compile_metrics``
        where compile was given metrics (Keras's compiled metrics are one metric object, whatever their number),
        and, once a fit, evaluate, train_on_batch or test_on_batch has run since compile, the loss of each output
        where more than one output has a loss; then the metrics the model and its layers hold. The names of what
        evaluate returns are the keys of its dict."""
        if not self.compiled:
            return []
        names = ["loss"] + (["compile_metrics"] if self.__dict__.get("_metrics_given") else [])
        # Two outputs' losses of one name (outputs of one layer, or of a Sequential's last layer giving a list)
        # share one log but, as Keras keeps a tracker for each, appear here once each.
        built = self.__dict__.get("_loss_trackers_built")
        names += self._output_loss_names() if built else []
        return names + [m.name for m in self._tracked_metrics()]

    def _note_compile(self, loss):
        """What ``metrics_names`` follows of a compile: Keras makes its loss trackers afresh for a new ``loss``
        and builds them at the first step after (a compile without a loss keeps them)."""
        if loss is not None or not self.compiled:
            self._loss_trackers_built = False

    def _output_loss_names(self):
        """The log keys of the outputs' losses, in the order of Keras's loss trackers (none for one output)."""
        return []

    def _metric_order(self):
        """The names of the model's metrics in Keras's order (``Model.metrics``), for evaluate's list: the loss,
        then each compiled metric's own name, the outputs' losses, then the metrics the model and its layers
        hold."""
        return ["loss"] + [m.name for m in (self._metrics or []) + self._weighted_metrics] + \
            self._output_loss_names() + [m.name for m in self._tracked_metrics()]

    def _listed(self, logs):
        """The logs as evaluate and the *_on_batch methods list them (``compiled_metrics.in_keras_order``)."""
        return compiled_metrics.in_keras_order(logs, self._metric_order())

    # --------------------------------------------------------- data validation
    def _prepare(self, x, y, sample_weight=None, class_weight=None, x_name="x", y_name="y", batch_size=None):
        """Check x/y against the model and the loss; returns host arrays. Changes nothing but a subclassed model
        not built yet, which is built for the first batch of ``batch_size`` (``_checked_features``)."""
        x = self._checked_features(x, x_name, batch_size)
        output_shape = self._flat_output_shape(_batchless(_shapes(x)))
        if y is None and self.loss is None and not self._metric_identifiers and not self._weighted_identifiers:
            # No compiled loss and no metrics: the losses the layers add need no targets, as in Keras.
            if sample_weight is not None or class_weight is not None:
                raise ValueError("`sample_weight` and `class_weight` weigh the compiled loss; this model was "
                                 "compiled without one (its layers add its losses), so they do not apply.")
            return x, None, None, output_shape
        if y is None:
            raise ValueError(f"`{y_name}` is required to train or evaluate: pass the targets.")
        y = checks.targets(self._one_target(y, y_name), y_name)
        checks.same_length({x_name: x[0] if isinstance(x, tuple) else x, y_name: y})
        if self.loss is not None:
            self.loss.validate_targets(y, output_shape)
        if trainer.one_in_list(sample_weight):
            sample_weight = sample_weight[0]        # as Keras takes them: the weights of the one output, in a list
        sw = checks.sample_weights(sample_weight, _length(x), values_shape=lambda: self._loss_values_shape(
            y, output_shape, self.loss))
        cw = checks.class_weights_to_sample_weights(class_weight, y, output_shape[-1], len(output_shape))
        if cw is not None:
            sw = cw if sw is None else sw * cw
        if y.dtype.kind == "f":
            y = y.astype(self.dtype, copy=False)
        if sw is not None:
            sw = sw.astype(self.dtype)
        return x, y, sw, output_shape

    @staticmethod
    def _loss_values_shape(y, output_shape, loss):
        """The shape of the per-sample values the compiled ``loss`` reduces for targets ``y`` and an output of
        ``output_shape`` (the output's without its last axis where there is no loss, for the metrics alone),
        which sample weights of more than one axis must have."""
        if loss is None:
            return tuple(output_shape[:-1])
        return loss.values_shape(y.shape, (len(y),) + tuple(output_shape[1:]))

    def _one_target(self, y, y_name):
        """The targets of a model of one output: the array, also when given (as Keras takes them) as a list of
        one array, or, from a model that gives its output in a dict, keyed as that output."""
        if isinstance(y, (list, tuple)) and len(y) == 1 and hasattr(y[0], "shape"):
            return y[0]
        if isinstance(y, dict):
            keys = self._dict_output_keys()
            if keys is None:
                raise ValueError(f"Model '{self.name}' has one output: pass `{y_name}` as an array (or a list of "
                                 f"one array), not a dict (keys {sorted(map(str, y))}). Keras takes a dict of "
                                 "targets from a model made with a dict of outputs, keyed as they are.")
            if set(y) != set(keys):
                raise ValueError(f"Model '{self.name}' has the one output {keys}: `{y_name}` as a dict must hold "
                                 f"its targets under that key, got the keys {sorted(map(str, y))}.")
            return y[keys[0]]
        return y

    @property
    def _output_keys(self):
        """The names by which dicts of losses, metrics, targets and sample weights are keyed and logs and messages
        name the outputs: ``output_names``, except where a functional model was made with a dict of outputs,
        whose keys Keras uses instead (whatever its output layers are named)."""
        return self.output_names

    def _dict_output_keys(self):
        """The keys of the dict this model gives its outputs in (in the order it gives them), or None when it
        gives no dict."""
        return None

    def _host_features(self, x, name):
        """The inputs ``x`` as host arrays of the model's dtype: one array, or a tuple with one per input."""
        return checks.features(x, name, self.dtype)

    def _checked_features(self, x, name, batch_size=None):
        """``_host_features`` checked against the model: their shapes, and the ids of the layers that take them as
        they are (``host_ids``; device batches made from them may then skip those layers' device checks). A
        subclassed model not built yet is built first, for their first batch of ``batch_size``."""
        x = self._host_features(x, name)
        if self._composite and not self.built:
            self._build_by_run(self._build_shape(_shapes(x), batch_size))
        elif self._composite:
            shape = self._build_shape(_shapes(x), batch_size)
            shape = shape[0] if isinstance(shape, list) else shape
            if shape:
                composite.first_batch(self, shape[0])
        self._check_input_shape(_shapes(x), name)
        host_ids.check(self, x)
        return x

    def _input_calls(self):
        """``(input position, layer, position in that layer's inputs, the call's keyword arguments)`` for each call
        the forward pass hands one of the model's inputs unchanged (``host_ids`` reads them). None known here: the
        subclasses say."""
        return []

    def _resolve_metrics(self, y_shape, output_shape):
        if self._metrics is None:
            self._metrics, self._weighted_metrics = [
                [metrics_module.get(m, loss=self.loss, y_true_shape=y_shape, y_pred_shape=output_shape) for m in ids]
                for ids in (self._metric_identifiers, self._weighted_identifiers)]
        self._loss_trackers_built = True

    def _start(self, x_shape, batch_size=None):
        if not self.built:
            self._build_by_run(self._data_build_shape(x_shape, batch_size))
        self._fused_softmax = bool(getattr(self.loss, "softmax_fusable", False) and self._last_is_softmax())
        self._output_layer().keep_preactivation = self._fused_softmax

    def _data_build_shape(self, x_shape, batch_size=None):
        """The shape ``build`` is given where a pass over data of ``x_shape`` in batches of ``batch_size`` builds
        the model: its batch axis None (a Sequential keeps the first batch's size, as Keras records it)."""
        return _batchless(x_shape)

    def _build_shape(self, x_shape, batch_size=None):
        """The shape a model is built for before a pass over data of ``x_shape`` in batches of ``batch_size`` (one
        batch of all of it for None): as Keras builds a subclassed model, that of the first batch (its own
        ``build`` gets it; its traced graph serves any batch size), and for a Sequential or functional model any
        batch size."""
        return _first_batch_shape(x_shape, batch_size) if self._composite else _batchless(x_shape)

    # A Sequential or functional model called as a layer: its layers run under their own policies (as Keras's
    # functional models leave the conversion of inputs to their layers), whatever the model's own policy is.
    def _call_dtype(self):
        return super()._call_dtype() if self._composite else self.dtype

    def _policy_call(self, given_dtype, function, *args, **kwargs):
        if self._composite:
            return super()._policy_call(given_dtype, function, *args, **kwargs)
        self.__dict__["_cast_io"] = None
        return function(*args, **kwargs)

    def _symbolic_dtype(self):
        return super()._symbolic_dtype() if self._composite else self.dtype

    def _output_layer(self):
        """The layer whose output is the model's output (the one a fused softmax loss reads the logits of)."""
        return self if self._composite else self.layers[-1]

    def _last_is_softmax(self):
        if self._composite or self._output_layer()._composite:
            return False        # its logits are inside its graph
        if self._output_layer().compute_dtype == "float16":
            # As in Keras, a softmax computed in float16 gives the float32 loss its float16 probabilities (a
            # probability that rounds to 0 costs the clipped log(1e-7)): the loss is not fused with it.
            return False
        activation = getattr(self._output_layer(), "activation", None)
        return bool(getattr(activation, "is_softmax", False))

    # ---------------------------------------------------------------- the step
    def _loss_and_gradient(self, y, y_pred, sw, training):
        """Loss value (0-d, on the device) and d(loss)/d(model output or logits); compiled without a loss, None
        for both (no gradient reaches the output: only the added losses' gradients reach the weights). As Keras's
        losses, it computes in float32 from a float16 output (a model under a mixed policy)."""
        y_pred = _loss_input(y_pred)
        loss = self.loss
        if loss is None:
            return None, y_pred, None
        mask = self.output_mask
        # compile's loss_weights: the one loss times its weight, in the value and in its gradient, as Keras's
        weight = self.__dict__.get("_loss_weight")
        scale = 1.0 if weight is None else weight
        if self._fused_softmax:
            logits = _loss_input(self._output_layer().saved_preactivation())
            # The reduction's weights depend only on the per-sample values' shape and dtype: known
            # before the loss runs, so the fused kernel scales the gradient rows as it writes them.
            rows = logits.size // max(logits.shape[-1], 1)
            uniform = loss.uniform_reduction_weight(y, logits, rows, sw, output_mask=mask)
            if uniform is not None:
                per_sample, y_pred, dout = loss.call_from_logits(y, logits, grad_scale=uniform * scale,
                                                                 want_grad=training)
                value = per_sample.sum() * logits.dtype.type(uniform)
                return _weighted(value, weight), y_pred, dout
            module = backend.array_module(logits)
            shape_of_values = module.broadcast_to(module.zeros((), logits.dtype), logits.shape[:-1])
            weights = loss.reduction_weights(y, logits, shape_of_values, sw, output_mask=mask)
            per_sample, y_pred, dout = loss.call_from_logits(y, logits, row_weights=weights, grad_scale=scale,
                                                             want_grad=training)
            return _weighted((weights * per_sample).sum(), weight), y_pred, dout
        value, dout = _reduced_loss(loss, y, y_pred, sw, mask, training, scale=scale)
        return _weighted(value, weight), y_pred, dout

    def _regularization(self, gradients=True):
        """Weight and activity penalties of the last forward pass, as Keras 3 adds them to the loss in training
        and in evaluation alike; with ``gradients``, the weight penalties' gradients join the weights' ``grad``
        (the activity penalties' join the backward pass)."""
        penalty = None          # None where nothing is penalised: see _total
        for var in self.trainable_weights:
            if var.regularizer is not None:
                term = var.regularizer(var.value)
                penalty = term if penalty is None else penalty + term
                if gradients:
                    # a weight no call used in this step (an untied table read only one way) has no loss
                    # gradient: its penalty's is all it gets, as Keras differentiates the sum
                    gradient_pass.add(var, gradient_pass.scaled(var.regularizer.gradient(var.value)))
        for layer, out in self._activity_outputs():
            # Keras 3 divides the activity penalty by the batch size.
            term = layer.activity_regularizer(out) / out.dtype.type(out.shape[0])
            penalty = term if penalty is None else penalty + term
        return penalty

    def _activity_outputs(self):
        """(layer, output) of each call in the last forward pass whose layer has an activity regularizer, those
        made inside the models among the layers included."""
        graph = composite.active_graph(self)
        if graph is not None:       # a subclassed model: the calls of its traced graph
            return graph._activity_outputs()
        return [entry for layer in self.layers for entry in activity_of(layer)]

    def _train_step(self, x, y, sw, ids_checked=False):
        """One optimizer step on the device batch. ``ids_checked``: ``x`` was made from host arrays that
        ``_checked_features`` passed, so the id layers taking it skip their device read-back."""
        with nvtx_range("train_step"):
            with host_ids.prechecked(self, x, ids_checked), layer_losses.top_level_call(self) as call, \
                    self._loss_computes_activation_in(self._fused_softmax):
                y_pred = self.forward(x, training=True)
            added = self._added_loss(call, training=True)
            with nvtx_range("loss"):
                value, y_pred, dout = self._loss_and_gradient(y, y_pred, sw, training=True)
            if dout is None:
                dout = self._no_output_gradient(y_pred)
            # The step's gradients: what its backward pass and the weight penalties set (those of earlier steps
            # are cleared first, so a weight this step does not reach is left alone, as Keras leaves it).
            weights = self.trainable_weights
            scale = self.optimizer.dynamic_scale if isinstance(self.optimizer, optimizers.LossScaleOptimizer) else None
            # A scaled loss may overflow float16 gradients: the optimizer skips that step and lowers the scale, so
            # NumPy's overflow warnings say nothing the user must act on.
            quiet = numpy.errstate(over="ignore", invalid="ignore") if scale is not None else contextlib.nullcontext()
            with gradient_pass.gradient_pass(weights), gradient_pass.loss_scale(scale), quiet:
                self.backward(_scaled_gradient(dout), from_logits=self._fused_softmax, input_gradient=False)
                value = _total(value, self._regularization(), added)
            with nvtx_range("optimizer_step"):
                self.optimizer.apply(weights)
            self._track(value, y, y_pred, _length(x), sw)

    def _test_step(self, x, y, sw, ids_checked=False):
        with host_ids.prechecked(self, x, ids_checked), layer_losses.top_level_call(self) as call, \
                self._loss_computes_activation_in(self._fused_softmax):
            y_pred = self.forward(x, training=False)
        added = self._added_loss(call, training=False)
        value, y_pred, _ = self._loss_and_gradient(y, y_pred, sw, training=False)
        value = _total(value, self._regularization(gradients=False), added)
        self._track(value, y, y_pred, _length(x), sw)

    @contextlib.contextmanager
    def _loss_computes_activation_in(self, fused):
        """Around a step's forward pass whose loss is the fused softmax cross-entropy (``fused``), which computes
        the softmax of the output layer's logits and gives its probabilities as the model's output: a model that
        can (``Sequential._activation_left_to_loss``) has that layer leave its softmax out, work thrown away."""
        previous = self.__dict__.get("_loss_computes_activation", False)
        self.__dict__["_loss_computes_activation"] = bool(fused)
        try:
            yield
        finally:
            self.__dict__["_loss_computes_activation"] = previous

    def _no_output_gradient(self, y_pred):
        """What ``backward`` takes for an output no compiled loss reads: None (the graph models skip the calls no
        gradient reaches, as Keras leaves their weights without one)."""
        return None

    def _has_compiled_loss(self):
        return self.loss is not None

    def _added_loss(self, call, training):
        """The sum of the losses the layers added in the forward pass ``call`` ran (None where they added none),
        as Keras adds them to the compiled loss: each by its sum. Raises Keras's error where the model has no loss
        at all, and, in training, where a loss was added on arrays that no backward differentiates."""
        entries = call.added()
        if not call.entries and not self._has_compiled_loss() and \
                not any(var.regularizer is not None for var in self.trainable_weights):
            raise ValueError(f"No loss to compute. Provide a `loss` argument in `compile()`. (Model '{self.name}' was "
                             "compiled without one, and its layers added no loss in this call: no add_loss, no "
                             "regularizer.)")
        if training:
            refused = [layer for layer, _, kind in entries
                       if kind == "array" and not layer.backward_includes_added_losses]
            if refused and self.trainable_weights:
                raise NotImplementedError(layer_losses.untrainable_message(refused[0]))
        total = None
        for _, value, _ in entries:
            part = (value if value.dtype.kind == "f" else value.astype(backend.floatx())).sum()
            total = part if total is None else total + part
        return total

    def _track(self, value, y, y_pred, n, sw=None):
        self._loss_sum = metric_base.add_weighted(self._loss_sum, value, n, self._loss_tracker.sum_dtype(y_pred))
        self._loss_count += n
        # As in Keras, a mask of padded output steps leaves those steps out of the metrics too.
        steps = None if self.output_mask is None else self.output_mask.astype(y_pred.dtype)
        for metrics, weights in ((self._metrics, steps), (self._weighted_metrics, compiled_metrics.metric_weights(
                sw, steps))):
            for metric in metrics:
                if weights is None:
                    metric.update_state(y, y_pred)
                else:
                    metric.update_state(y, y_pred, sample_weight=weights)

    def reset_metrics(self):
        self._loss_sum, self._loss_count = None, 0
        for metric in (self._metrics or []) + self._weighted_metrics + self._tracked_metrics():
            metric.reset_state()

    def _add_tracked_logs(self, logs, prefix):
        """The results of the metrics the model and its layers hold, after the compiled ones, as Keras's logs take
        them: under their names (a name logged already takes the later value), a dict result's entries under
        their keys."""
        for metric in self._tracked_metrics():
            for key, value in metric_base.log_entries(metric.name, metric.result()):
                logs[prefix + key] = value
        return logs

    def _logs_of_names(self):
        """``{log key: (metric, whether a dict result of it spreads its entries after the others)}`` of the compiled
        metrics, in the order of the logs: the loss (None), the metrics logged under their own names, then, sorted,
        those under other names (numbered, ``weighted_``) and those whose results are dicts."""
        metrics = (self._metrics or []) + self._weighted_metrics
        weighted = [False] * len(self._metrics or []) + [True] * len(self._weighted_metrics)
        keys = compiled_metrics.log_names([(m, None, w) for m, w in zip(metrics, weighted)])
        named = [(key, m) for key, m in zip(keys, metrics) if key == m.name]
        rest = sorted(((key, m) for key, m in zip(keys, metrics) if key != m.name), key=lambda entry: entry[0])
        return {"loss": None, **dict(named + rest)}

    def _logs(self, prefix=""):
        """The loss and the metrics by log key, as Keras's ``get_metrics_result`` gives them: each metric under its
        name (a name met again numbered: ``mae_1``; a weighted metric's taken name as ``weighted_mae``), a dict
        result's entries under their keys. The callbacks and History get them sorted (``pythonify_logs``, where
        CallbackList hands them on); evaluate's list takes them in Keras's order of the metrics (``_listed``)."""
        logs = {prefix + "loss": self._loss_tracker.result() if self._loss_sum is not None else float("nan")}
        named, rest = [], []
        for key, metric in list(self._logs_of_names().items())[1:]:
            result = metric.result()
            entries = metric_base.log_entries(key, result)
            (rest if isinstance(result, dict) or key != metric.name else named).extend(entries)
        for key, value in named + sorted(rest, key=lambda entry: entry[0]):
            logs[prefix + key] = value
        return self._add_tracked_logs(logs, prefix)

    # ----------------------------------------------------------------- batching
    def _check_stateful_batches(self, n, batch_size, name="x", batch_name="batch_size"):
        """Stateful recurrent layers continue each sample's sequence from one batch to the next, so every
        batch must have the size they carry states for: data that would end in a smaller batch is refused
        before any batch runs (and changes the states)."""
        stateful = [layer for layer in self._flat_layers() if getattr(layer, "stateful", False)]
        if not stateful or n == 0:
            return
        carried = next((l.carried_batch_size for l in stateful if l.carried_batch_size is not None), None)
        size = carried if carried is not None else min(n, batch_size)
        if batch_size < n and n % batch_size or min(n, batch_size) != size:
            raise ValueError(
                f"Model '{self.name}': the stateful layer(s) {', '.join(repr(l.name) for l in stateful)} need every "
                f"batch to have {size} samples; `{name}` has {n} samples in batches of {batch_name}={batch_size}. "
                f"Give a {batch_name} that divides the number of samples"
                + (f" and equals {carried} (the batch size the states are carried for; it stays after reset_state(), "
                   "so another batch size needs a new model)." if carried is not None else "."))

    def _device_batch(self, x, y, sw, index):
        xb = _on_device(_take(x, index))
        yb = None if y is None else _on_device(_take(y, index))
        swb = None if sw is None else _on_device(_take(sw, index))
        return xb, yb, swb

    # ---------------------------------------------------------------------- fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` passes over the data; returns a ``History``.

        ``x`` is one of:

        - arrays: a NumPy or CuPy array, or what NumPy makes one of (nested lists, a CPU torch tensor), for a
          model with one input; a list or tuple of them in the order of the inputs, or a dict of them by input
          name, for several. ``y`` and ``sample_weight`` are arrays too (a list or dict for several outputs),
          taken in batches of ``batch_size`` (32 where None), shuffled with ``shuffle``, split by
          ``validation_split``;
        - the windowed data set of ``timeseries_dataset_from_array``: its windows and targets, in its batches;
        - batches yielded as ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` by a ``PyDataset`` (what
          ``image_dataset_from_directory`` returns is one), a Python generator or iterator, a PyTorch
          ``torch.utils.data.DataLoader``, a ``tf.data.Dataset``, or a grain ``MapDataset``, ``IterDataset`` or
          ``DataLoader`` (``gpu_dl/data/foreign_datasets.py``; neither TensorFlow nor grain is imported). ``y``,
          ``sample_weight`` and ``validation_split`` are refused beside them and ``batch_size`` is ignored;
          ``steps_per_epoch`` takes that many batches an epoch (needed for an endless one).

        ``validation_data`` is ``(x, y)`` or ``(x, y, sample_weight)`` of arrays, or any of the data sets above."""
        self._require_compiled("fit")
        if streaming.is_stream(x):
            return streaming.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                                 validation_data, shuffle, class_weight, sample_weight, initial_epoch,
                                 steps_per_epoch, validation_steps, validation_batch_size, validation_freq)
        x, y, batch_size, dataset_shuffle = _dataset_input(x, y, batch_size, sample_weight, "fit")
        if dataset_shuffle is not None:
            if validation_split:
                raise ValueError("`validation_split` needs arrays; with a data set as `x`, pass `validation_data`.")
            shuffle = dataset_shuffle
        if _is_dataset(validation_data):
            vx, vy, validation_batch_size, _ = _dataset_input(
                validation_data, None, validation_batch_size, None, "fit", "validation_data", "validation_batch_size")
            validation_data = (vx, vy)
        batch_size = checks.positive_int(32 if batch_size is None else batch_size, "batch_size")
        epochs = backend.config.capped_epochs(checks.non_negative_int(epochs, "epochs"))
        initial_epoch = checks.non_negative_int(initial_epoch, "initial_epoch")
        verbose = checks.verbosity(verbose)
        validation_freq = checks.positive_int(validation_freq, "validation_freq")
        split = checks.validation_split(validation_split)
        val_stream = streaming.is_stream(validation_data)
        callbacks = self._check_callbacks(callbacks)
        x, y, sw, output_shape = self._prepare(x, y, sample_weight, class_weight, batch_size=batch_size)
        sw = trainer.weights_in_targets_form(sw, y)
        val = None
        if val_stream:
            val = streaming.validation_stream(self, validation_data, validation_steps, validation_batch_size)
        elif validation_data is not None:
            val = self._validation_arrays(validation_data)
        elif split > 0:
            cut = checks.split_for_validation(_length(x), split)
            head, tail = slice(None, cut), slice(cut, None)
            val = (_take(x, tail), _take(y, tail), None if sw is None else _take(sw, tail))
            x, y, sw = _take(x, head), _take(y, head), None if sw is None else _take(sw, head)
        val_batch_size = batch_size if validation_batch_size is None else \
            checks.positive_int(validation_batch_size, "validation_batch_size")
        epochs_of = ArrayEpochs(_length(x), batch_size, steps_per_epoch, shuffle)
        val_epochs = None if val is None or val_stream else \
            ArrayEpochs(_length(val[0]), val_batch_size, validation_steps, steps_name="validation_steps")
        self._check_stateful_batches(_length(x), batch_size)
        if val is not None and not val_stream:
            self._check_stateful_batches(_length(val[0]), val_batch_size, "validation data", "validation_batch_size")

        # All checks passed: from here on the model may change.
        self._resolve_metrics(_shapes(y), output_shape)
        self._start(_shapes(x), batch_size)
        steps = epochs_of.known_steps
        history = History()
        self.history = history
        listeners = list(callbacks) + [history]
        if verbose:
            print_msg(backend.describe_device())
            listeners.append(ProgbarLogger(verbose))
        params = {"verbose": verbose, "epochs": epochs, "steps": steps, "batch_size": batch_size}
        cbs = CallbackList(listeners, self, params)
        self.stop_training = False
        logs = {}
        # A callback restoring an interrupted run (BackupAndRestore) sets the epoch to resume from, as in Keras.
        self._initial_epoch = None
        cbs.call("on_train_begin", {})
        initial_epoch = self._initial_epoch or initial_epoch
        for epoch in range(initial_epoch, epochs):
            with nvtx_range(f"epoch {epoch + 1}"):
                logs = self._fit_epoch(epoch, x, y, sw, epochs_of, cbs)
                if val is not None and (epoch + 1) % validation_freq == 0:
                    # As in Keras, validation runs the callbacks' test hooks (with un-prefixed logs).
                    logs.update(streaming.evaluate_pass(self, val, cbs, {"steps": val.known_steps}, prefix="val_")
                                if val_stream else self._evaluate_arrays(*val, val_epochs, prefix="val_", cbs=cbs))
            cbs.call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        if epochs > 0:
            # As Keras: after the last epoch (even one stopped early), before on_train_end.
            self.optimizer.finalize_variable_values(self.trainable_weights)
        # Keras hands on_train_end the last epoch's logs.
        cbs.call("on_train_end", logs)
        return history

    def _fit_epoch(self, epoch, x, y, sw, epochs_of, cbs):
        """One epoch over the training arrays (the batches ``epochs_of``, an ``ArrayEpochs``, hands out); returns
        the epoch's training logs."""
        self.reset_metrics()
        cbs.call("on_epoch_begin", epoch, {})
        for step, index in epochs_of.epoch():
            cbs.batch("on_train_batch_begin", step, dict)
            self._train_step(*self._device_batch(x, y, sw, index), ids_checked=True)
            cbs.batch("on_train_batch_end", step, self._batch_logs)
            if self.stop_training:
                break
        return self._train_logs()

    def _check_callbacks(self, callbacks):
        from ..callbacks import Callback
        callbacks = [] if callbacks is None else \
            list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"`callbacks` must be gpu_dl.callbacks.Callback instances, got {cb!r}.")
        return callbacks

    def _validation_arrays(self, validation_data):
        if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
            raise ValueError("`validation_data` must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val).")
        vx, vy = validation_data[0], validation_data[1]
        vsw = validation_data[2] if len(validation_data) == 3 else None
        vx, vy, vsw, _ = self._prepare(vx, vy, vsw, x_name="validation_data[0]", y_name="validation_data[1]")
        return vx, vy, trainer.weights_in_targets_form(vsw, vy)

    # ----------------------------------------------------------------- evaluate
    def _evaluate_arrays(self, x, y, sw, epochs_of, prefix="", cbs=None):
        """Loss and metrics over arrays, from fresh sums (fit has read its training logs before this), over the
        first batches of a new pass of ``epochs_of`` (an ``ArrayEpochs``)."""
        epochs_of.restart()
        self.reset_metrics()
        if cbs is not None:
            cbs.call("on_test_begin", {})
        for step, index in epochs_of.epoch():
            if cbs is not None:
                cbs.batch("on_test_batch_begin", step, dict)
            self._test_step(*self._device_batch(x, y, sw, index), ids_checked=True)
            if cbs is not None:
                cbs.batch("on_test_batch_end", step, self._batch_logs)
        logs = self._end_logs()
        if cbs is not None:
            cbs.call("on_test_end", logs)
        return {prefix + name: value for name, value in logs.items()}

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (and metrics) over the data: a float, a list ``[loss, *metrics]``, or a dict (``return_dict``).

        ``x`` (with ``y`` and ``sample_weight`` where it is arrays) is any input ``fit`` takes: arrays (a list or
        dict of them for several inputs), the data set of ``timeseries_dataset_from_array``, or batches from a
        ``PyDataset``, a Python generator or iterator, a torch ``DataLoader``, a ``tf.data.Dataset`` or a grain
        ``MapDataset``, ``IterDataset`` or ``DataLoader``; ``steps`` takes that many batches."""
        self._require_compiled("evaluate")
        if streaming.is_stream(x):
            return streaming.evaluate(self, x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict)
        x, y, batch_size, _ = _dataset_input(x, y, batch_size, sample_weight, "evaluate")
        batch_size = checks.positive_int(32 if batch_size is None else batch_size, "batch_size")
        verbose = checks.verbosity(verbose)
        callbacks = self._check_callbacks(callbacks)
        x, y, sw, output_shape = self._prepare(x, y, sample_weight, batch_size=batch_size)
        sw = trainer.weights_in_targets_form(sw, y)
        self._check_stateful_batches(_length(x), batch_size)
        self._resolve_metrics(_shapes(y), output_shape)
        self._start(_shapes(x), batch_size)
        epochs_of = ArrayEpochs(_length(x), batch_size, steps, steps_name="steps")
        listeners = list(callbacks) + ([ProgbarLogger(verbose)] if verbose else [])
        cbs = CallbackList(listeners, self, {"verbose": verbose, "steps": epochs_of.known_steps})
        logs = self._evaluate_arrays(x, y, sw, epochs_of, cbs=cbs)
        return self._evaluate_result(logs, return_dict)

    # ------------------------------------------------------------------ predict
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x``, as NumPy arrays in the structure of a call on arrays: one array, a list of
        one per output, or the dict a model was made with. ``x`` is any input ``fit`` takes: arrays (a list or
        dict of them for several inputs), the data set of ``timeseries_dataset_from_array``, or batches (``x`` or a
        tuple whose first element is ``x``) from a ``PyDataset``, a Python generator or iterator, a torch
        ``DataLoader``, a ``tf.data.Dataset`` or a grain ``MapDataset``, ``IterDataset`` or ``DataLoader``.
        A class with a ``predict_step`` of its own gives what that step returns, joined along the batch axis."""
        if self._custom_predict:
            return trainer.predict(self, x, batch_size, verbose, steps, callbacks)
        if streaming.is_stream(x):
            return streaming.predict(self, x, batch_size, verbose, steps, callbacks)
        x, _, batch_size, _ = _dataset_input(x, None, batch_size, None, "predict", in_order=False)
        batch_size = checks.positive_int(32 if batch_size is None else batch_size, "batch_size")
        verbose = checks.verbosity(verbose)
        callbacks = self._check_callbacks(callbacks)
        x = self._checked_features(x, "x", batch_size)
        self._check_stateful_batches(_length(x), batch_size)
        if not self.built:
            self._build_by_run(self._data_build_shape(_shapes(x), batch_size))
        epochs_of = ArrayEpochs(_length(x), batch_size, steps, steps_name="steps")
        listeners = list(callbacks) + ([ProgbarLogger(verbose)] if verbose else [])
        cbs = CallbackList(listeners, self, {"verbose": verbose, "steps": epochs_of.known_steps})
        cbs.call("on_predict_begin", {})
        outputs = []
        for step, index in epochs_of.epoch():
            cbs.batch("on_predict_batch_begin", step, dict)
            xb = _on_device(_take(x, index))
            with host_ids.prechecked(self, xb):
                out = self.forward(xb, training=False)
            outputs.append([backend.to_numpy(o) for o in out] if isinstance(out, list) else backend.to_numpy(out))
            cbs.batch("on_predict_batch_end", step, lambda: {"outputs": self._structured(_flat(outputs[-1]))})
        cbs.call("on_predict_end", {})
        if outputs and isinstance(outputs[0], list):    # several outputs: one array each
            return self._structured([numpy.concatenate(parts, axis=0) for parts in zip(*outputs)])
        return self._structured([numpy.concatenate(outputs, axis=0)])

    def _structured(self, flat, symbolic=False):
        """The outputs, given as a list of one per output, in the structure the model gives them (here: the
        output itself for one, the list for several; a subclassed model's, the structure its call returns, a tuple
        for a tuple); ``symbolic`` for tensors of a call on tensors."""
        graph = self._built_graph() if self._composite else None
        if graph is not None and isinstance(graph._outputs_struct, dict):
            return graph._structured(flat, True)        # in its call's key order, on arrays too, as Keras's call
        if graph is not None and isinstance(graph._outputs_struct, (list, tuple)) and \
                any(isinstance(t, (list, tuple, dict)) for t in graph._outputs_struct):
            return graph._structured(flat, True)      # nested as its call returns them, on arrays too
        if graph is not None and isinstance(graph._outputs_struct, tuple) and len(flat) > 1:
            return tuple(flat)
        return flat[0] if len(flat) == 1 else list(flat)

    # ------------------------------------------------------------- on one batch
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns that batch's loss (and metrics), as Keras 3 does."""
        self._require_compiled("train_on_batch")
        x, y, sw, output_shape = self._prepare(x, y, sample_weight, class_weight)
        self._resolve_metrics(_shapes(y), output_shape)
        self._start(_shapes(x))
        self.reset_metrics()
        self._train_step(*self._device_batch(x, y, sw, slice(None)), ids_checked=True)
        return self._batch_result(return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        x, y, sw, output_shape = self._prepare(x, y, sample_weight)
        self._resolve_metrics(_shapes(y), output_shape)
        self._start(_shapes(x))
        self.reset_metrics()
        self._test_step(*self._device_batch(x, y, sw, slice(None)), ids_checked=True)
        return self._batch_result(return_dict)

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(_length(self._host_features(x, "x")), 1), verbose=0)

    def _batch_result(self, return_dict):
        return self._evaluate_result(self._logs(), return_dict)

    # ------------------------------------------------------------------ saving
    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Write the whole model (config, weights, optimizer state) to a Keras 3 ``.keras`` file."""
        from . import saving
        saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def to_json(self, **kwargs):
        """The model's config as Keras 3 serialises it (``config.json``'s object, compile settings included), as a
        JSON string; ``kwargs`` go to ``json.dumps``. ``gpu_dl.models.model_from_json`` reads it back."""
        import json

        from .keras_config import model_config
        return json.dumps(model_config(self), **kwargs)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """As Keras's ``Model.from_config``: the config of a functional model (with ``name``, ``layers``,
        ``input_layers`` and ``output_layers``, as ``get_config`` writes it) makes a ``Functional``, of the
        subclass ``cls`` where that has no constructor of its own (or one of ``*args, **kwargs``). Other
        configs go to the class's constructor; ``Model`` itself takes only ``name`` and ``trainable`` (a
        Sequential's config is refused, as Keras refuses it: ``Sequential.from_config`` reads it)."""
        if not isinstance(config, dict):
            raise ValueError(f"{cls.__name__}.from_config takes a config dict, got {type(config).__name__}.")
        from .functional import Functional
        if all(key in config for key in FUNCTIONAL_CONFIG_KEYS) and (
                cls in (Model, Functional) or trainer.functional_like(cls)):
            model = Functional.from_config(config, custom_objects=custom_objects)
            if cls not in (Model, Functional):
                # a subclass made functionally (CustomModel(inputs, outputs)) comes back as that class, as Keras's
                model.__class__ = trainer.functional_class(cls)
            return model
        if cls is Model:
            unknown = sorted(str(key) for key in config if key not in ("name", "trainable"))
            if unknown:
                sequential = " (a Sequential's config: use Sequential.from_config)" if "layers" in config else ""
                raise ValueError(f"Model.from_config: unrecognized keys {unknown} in the config{sequential}. It makes "
                                 f"a functional model from a config with the keys {list(FUNCTIONAL_CONFIG_KEYS)}, "
                                 "as Model.get_config writes it.")
        return cls(**config)

    def get_compile_config(self):
        """Keras's compile config of the model (optimizer, loss, metrics as ``compile`` was given them, serialised),
        ``{}`` before ``compile``. Saving writes it; a class may override it with ``compile_from_config``."""
        from .keras_config import _compile_config
        return _compile_config(self) or {}

    def compile_from_config(self, config):
        """Compile the model as a ``get_compile_config`` dict says (what loading a file does)."""
        from .keras_config import compile_from_config
        if config:
            compile_from_config(self, config, f"Model '{self.name}': compile_from_config()")

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras's ``Model.export``: ``format="onnx"`` writes an ONNX file of the inference pass
        (``onnx_export.py``; keyword ``opset_version``). The other formats Keras writes (a TensorFlow SavedModel,
        OpenVINO, LiteRT, a torch ExportedProgram) are traced by that runtime's framework, which gpu_dl does not
        use: they raise, saying what gpu_dl writes instead."""
        formats = ("tf_saved_model", "onnx", "openvino", "litert", "torch")
        if format not in formats:
            raise ValueError(f"Unrecognized format={format}. Supported formats are: {list(formats)}.")
        if format != "onnx":
            raise NotImplementedError(
                f"Model '{self.name}': export(format={format!r}) is not supported: exporting to a TensorFlow "
                "SavedModel, OpenVINO, LiteRT or torch needs that runtime's framework, which gpu_dl does not use. "
                "gpu_dl exports ONNX (model.export('name.onnx', format='onnx')), which ONNX Runtime and OpenVINO "
                "run; or save the whole model with model.save('name.keras') (Keras 3 loads it, and can export it "
                "from there) or its weights with model.save_weights('name.weights.h5').")
        from .onnx_export import export_onnx
        export_onnx(self, filepath, verbose=verbose, input_signature=input_signature, **kwargs)

    def save_weights(self, filepath, overwrite=True, max_shard_size=None):
        """Write the weights (and optimizer state) to a Keras 3 ``.weights.h5`` file."""
        from . import saving
        saving.save_weights(self, filepath, overwrite=overwrite, max_shard_size=max_shard_size)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Read weights from a ``.weights.h5`` or ``.keras`` file, or a legacy Keras 2 ``.h5`` weights file
        (``by_name=True`` matches its layers by name); nothing changes if they do not fit."""
        from . import saving
        # Keras would load nothing into the unbuilt sublayers of a model built by build(shape) alone (silently);
        # they are built for that shape first.
        self._finish_build()
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)


class Model(SeveralOutputs, _ModelBase):
    __doc__ = _ModelBase.__doc__

    # What ``SeveralOutputs`` reads of a subclassed model: the outputs of its traced call (one before it is traced).
    # Sequential and Functional give their own.
    def _traced_outputs(self):
        graph = self._built_graph() if self._composite else None
        return graph if graph is not None and graph._multi else None

    @property
    def _multi(self):
        return self._traced_outputs() is not None

    @property
    def _output_count(self):
        graph = self._traced_outputs()
        return 1 if graph is None else graph._output_count

    @property
    def _output_keys(self):
        graph = self._traced_outputs()
        return self.output_names if graph is None else graph._output_keys

    @property
    def _outputs_keyed(self):
        # As Keras: a subclassed model's outputs are keyed where its call returns them in a dict; a tuple's or
        # list's have no names, and the logs name their losses after the losses themselves.
        return not self._composite or self._dict_output_keys() is not None

    def _dict_output_keys(self):
        from .functional import _keyed_outputs      # it imports this module at its top
        graph = self._traced_outputs()
        return None if graph is None or not _keyed_outputs(graph._outputs_struct) else list(graph._outputs_struct)

    def _output_layers(self):
        return self._traced_outputs()._output_layers()


def _built_output_shape(layer):
    """The summary's text of the output shape ``layer`` gives for the input shape its build recorded, or '?'."""
    from .summary import _format_shape
    config = layer.get_build_config()
    if not config or "input_shape" not in config:
        return "?"
    if layer._composite and type(layer).compute_output_shape.__module__.startswith("gpu_dl."):
        return "?"      # Keras has no output shape for a call it did not trace, unless the class gives one
    try:
        shape = layer.compute_output_shape(tuple(config["input_shape"]))
    except NotImplementedError:
        return "?"
    if isinstance(shape, list):
        return "[" + ", ".join(_format_shape(tuple(s)) for s in shape) + "]"
    return _format_shape(tuple(shape))
