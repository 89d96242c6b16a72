"""Losses that layers add in their calls: Keras's ``Layer.add_loss`` and ``Layer.losses``.

As in Keras 3, a call on arrays that no other call is running inside is a
*top-level call*: it first clears the losses its layer and every layer within it
added before, so ``layer.losses`` holds those of its last top-level call. Each
loss is recorded on the layer that added it (``record``), and also on the
top-level call running (``Call.entries``), which is where a model's training
step reads the losses to add to its loss.

A loss is recorded as one of three kinds:

- ``"traced"``: a value the graph traced from a composite layer's ``call``
  computed (``self.add_loss(symbolic scalar)`` during the trace,
  models/composite.py); that graph's backward seeds it with 1, the gradient of
  the model's total loss with respect to it, so its gradient reaches the weights;
- ``"array"``: ``add_loss`` of an array, in a call that runs as written (a layer
  with its own ``backward``, or a composite call that could not be traced). It
  counts in the loss a model reports; gpu_dl cannot differentiate it, so a
  training step refuses it, naming the layer, unless the layer's class sets
  ``backward_includes_added_losses`` (its backward adds that loss's gradient);
- ``"activity"``: a layer's activity penalty on its output, which Keras lists
  among the layer's losses too; computed when ``losses`` is read (the model's
  loss computes its own, with its gradient, Model._regularization).

``losses`` adds, as Keras does, the penalties of the regularizers of the layer's
trainable weights (sublayers' included), computed from their current values.
"""
from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import weakref

import numpy

from .. import backend, backprop
from .scopes import get_stateless_scope
from .symbolic import is_symbolic, record_traced_loss, tracing_symbolic

_call: contextvars.ContextVar = contextvars.ContextVar("gpu_dl_top_level_call", default=None)
# The layers holding losses now: a top-level call has nothing to clear while it is empty.
_holders = weakref.WeakSet()


class Call:
    """A top-level call: its layer, and ``entries``, the ``(layer, value, kind)`` of each loss recorded in it.
    ``keep=False``: a call run only to learn a shape, whose losses are dropped."""

    def __init__(self, layer, keep=True):
        self.layer = layer
        self.keep = keep
        self.entries = []

    def added(self):
        """The entries a model adds to its loss: those of ``add_loss`` (the activity penalties apart)."""
        return [entry for entry in self.entries if entry[2] != "activity"]


@contextlib.contextmanager
def top_level_call(layer, keep=True):
    """Within it, ``layer`` runs a call on arrays. Where no other call is running, that call is a top-level call:
    the losses ``layer`` and the layers within it added before are cleared, and the ``Call`` is yielded; inside
    another call, the running one is."""
    running = _call.get()
    if running is not None:
        yield running
        return
    clear(layer)
    call = Call(layer, keep)
    token = _call.set(call)
    try:
        yield call
    finally:
        _call.reset(token)


@contextlib.contextmanager
def dropped_losses():
    """Within it, calls record no losses (a call run on zeros to learn an output shape)."""
    token = _call.set(Call(None, keep=False))
    try:
        yield
    finally:
        _call.reset(token)


def top_level(method):
    """Runs ``method`` (a layer's ``__call__`` or a model's ``forward``) within ``top_level_call(self)``. A
    top-level call on arrays is recorded for ``loss.backward()`` (``gpu_dl/backprop.py``)."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if _call.get() is not None:         # inside a running call: nothing to open (the common case, kept cheap)
            return method(self, *args, **kwargs)
        with top_level_call(self) as call:
            outputs = method(self, *args, **kwargs)
        training = kwargs.get("training")
        if training is None and len(args) > 1 and isinstance(args[1], (bool, numpy.bool_)):
            training = args[1]          # layer(x, True)
        if args and not is_symbolic(args[0]):
            backprop.record_call(self, args[0], outputs, call, bool(training))
        return outputs
    return run


def recorded_count():
    """How many losses the running top-level call has recorded so far (0 outside one)."""
    call = _call.get()
    return 0 if call is None else len(call.entries)


def record(layer, value, kind):
    """Record the loss ``value`` (an array; for ``"activity"``, an ``ActivityLoss``) as added by ``layer``."""
    call = _call.get()
    if call is not None and not call.keep:
        return
    losses = layer.__dict__.get("_losses")
    if losses is None:
        losses = layer.__dict__["_losses"] = []
    losses.append((value, kind))
    _holders.add(layer)
    scope = get_stateless_scope()
    if scope is not None and scope.collect_losses:
        scope.add_loss(value.value() if kind == "activity" else value)
    if call is not None:
        call.entries.append((layer, value, kind))


class ActivityLoss:
    """A layer's activity penalty on one call's output, as Keras adds it to the layer's losses: the regularizer's
    value divided by the batch size (0 for an empty batch)."""

    __slots__ = ("regularizer", "output")

    def __init__(self, regularizer, output):
        self.regularizer, self.output = regularizer, output

    def value(self):
        penalty = self.regularizer(self.output)
        if self.output.ndim == 0:
            return penalty
        batch = self.output.shape[0]
        return penalty / penalty.dtype.type(batch) if batch else penalty * penalty.dtype.type(0)


def record_activity(layer, outputs):
    """After a call of ``layer`` (which has an activity regularizer) on arrays: its penalty on each output."""
    for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
        if hasattr(output, "shape") and hasattr(output, "dtype"):
            record(layer, ActivityLoss(layer.activity_regularizer, output), "activity")


def _flat(loss):
    if isinstance(loss, dict):
        return [v for key in sorted(loss) for v in _flat(loss[key])]
    if isinstance(loss, (list, tuple)):
        return [v for item in loss for v in _flat(item)]
    return [loss]


def add_loss(layer, loss):
    """``layer.add_loss(loss)``: see the module docstring. ``loss`` is a value or a list, tuple or dict of them;
    each is recorded as it is (a non-scalar one counts by its sum, as in Keras)."""
    values = _flat(loss)
    for value in values:
        if is_symbolic(value):
            continue
        if not (hasattr(value, "shape") and hasattr(value, "dtype")) or \
                getattr(value.dtype, "kind", None) not in tuple("biuf"):
            raise ValueError("`add_loss()` can only be called from inside `build()` or `call()`, on a tensor "
                             f"input. Received invalid value: {value!r:.200} (layer '{layer.name}': gpu_dl takes an "
                             "array of real numbers, or in a traced call a symbolic tensor).")
    symbolic = [v for v in values if is_symbolic(v)]
    where = f"Layer '{layer.name}' ({type(layer).__name__})"
    if tracing_symbolic():
        if len(symbolic) != len(values):
            # Raised inside the trace of a composite call: the call then runs as written, and training refuses
            # the loss it adds (a value the graph does not compute has no gradient in it).
            raise TypeError(f"{where}: add_loss got an array while its call was traced on symbolic tensors; a "
                            "loss the traced graph computes is made from the call's symbolic tensors, with the "
                            "operators and gpu_dl.ops.")
        for value in symbolic:
            record_traced_loss(layer, value)
        return
    if symbolic:
        raise ValueError(f"{where}: add_loss got the symbolic tensor {symbolic[0]!r}. A loss of symbolic tensors is "
                         "taken in the call of a layer or subclassed model (traced into a graph, which computes it "
                         "in each call); outside such a call, as in Keras 3, add_loss takes values, not symbolic "
                         "tensors. For a functional model, add the loss in the call of one of its layers.")
    for value in values:
        record(layer, backend.to_device(value), "array")


def own_losses(layer):
    """The values of the losses ``layer`` itself added in its last top-level call, in order."""
    return [value.value() if kind == "activity" else value for value, kind in layer.__dict__.get("_losses") or ()]


def flatten_layers(layer):
    """The layers within ``layer`` (itself apart), each once, in the order Keras's ``_flatten_layers`` walks
    them."""
    found, seen = [], {id(layer)}
    queue = collections.deque(layer._loss_sublayers())
    while queue:
        item = queue.popleft()
        if id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        queue.extendleft(item._loss_sublayers())
    return found


def losses(layer):
    """``layer.losses``: its own losses, then those of the layers within it, then the penalties of its trainable
    weights' regularizers."""
    found = own_losses(layer)
    if _holders:
        for item in flatten_layers(layer):
            found.extend(own_losses(item))
    found.extend(var.regularizer(var.value) for var in layer.trainable_weights if var.regularizer is not None)
    return found


def clear(layer):
    """Forget the losses ``layer`` and the layers within it added (Keras's ``_clear_losses``)."""
    if not _holders:
        return
    for item in [layer] + flatten_layers(layer):
        if item.__dict__.get("_losses"):
            item.__dict__["_losses"] = []
            _holders.discard(item)


def untrainable_message(layer):
    """Why a training step cannot take the gradient of a loss ``layer`` added on arrays, and what to do."""
    where = f"Layer '{layer.name}' ({type(layer).__name__})"
    why = layer.__dict__.get("_trace_error")
    ran = f"its call ran as written, not traced ({why})" if why else "its call ran on arrays (it has its own backward)"
    return (f"{where} added a loss with add_loss in a training step, but {ran}: gpu_dl has no automatic "
            "differentiation to take that loss's gradient, and training on it would silently leave it out. Add the "
            "loss in the call of a layer or subclassed model without its own backward, made of the call's tensors "
            "with the operators and gpu_dl.ops (the call is traced into a graph that trains through the loss); or, "
            "in a layer with its own backward, add the loss's gradient there and set the class attribute "
            "backward_includes_added_losses = True. evaluate() and predict() take such a loss as it is.")
