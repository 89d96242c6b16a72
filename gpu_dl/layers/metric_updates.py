"""Metrics updated in a traced call: ``self.accuracy.update_state(targets, ops.sigmoid(logits))`` in a layer's call.

Keras 3 (with the torch backend, which runs eagerly) updates such a metric each time the layer is called on
data: in fit and evaluate (the model's logs then show it, ``Model.metrics``), and in predict; not when the
layer is called on symbolic tensors to make a model. gpu_dl traces the call of a composite layer or subclassed
model into a graph (``models/composite.py``): there ``update_state`` records a ``MetricUpdate``, an operation
of the graph that runs the metric's own ``update_state`` on the call's arrays each time the graph runs forward,
and gives nothing back (no gradient goes through it); so does ``reset_state``. Their arguments may be the call's
symbolic tensors, and numbers, arrays, strings or None, which it keeps as they are; an update of no tensor
(``self.calls.update_state(1.0)``) reads the traced call's first input to belong to the graph. Each operation of
a metric also reads the one recorded before it for that metric, so they run in the order the call made them; the
graph runs every update it records even where no output depends on it (``variable_operations.traced_outputs``).
``result()`` in a traced call, and calling the metric (``metric(y, p)``: the update, then the result), give the
result when the graph runs, a tensor of the graph of the shape the result has when traced (a dict result is
refused: it is no one tensor).

``update_state`` on symbolic tensors outside the trace of a call (on a model's symbolic inputs) is a TypeError:
nothing would run it. Within ``updates_suppressed()`` (a call run on zeros to learn its output's shape) updates
are skipped, as Keras's symbolic call leaves its metrics untouched.
"""
from __future__ import annotations

import contextlib
import contextvars
import weakref

import numpy

from .. import backend
from .base import Variable, as_operand
from .operations import Operation
from .symbolic import active_trace, is_symbolic, trace_anchor, tracing_symbolic

_TENSOR = object()      # a tensor's place among an update's arguments
_suppressed: contextvars.ContextVar = contextvars.ContextVar("gpu_dl_metric_updates_suppressed", default=False)
_direct: contextvars.ContextVar = contextvars.ContextVar("gpu_dl_metric_methods_direct", default=False)
# Per trace under way: the output of the last operation recorded for each metric (by id), which the next reads.
_last = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def updates_suppressed():
    """Within it, metrics are not updated (a call run to learn a shape)."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def suppressed():
    return _suppressed.get()


def intercepts(args, kwargs):
    """Whether a metric's method called with these arguments is recorded in a graph (a call is being traced, or a
    symbolic tensor is among them) rather than run at once."""
    if _direct.get():
        return False
    return tracing_symbolic() or any(is_symbolic(v) for v in args) or any(is_symbolic(v) for v in kwargs.values())


class MetricUpdate(Operation):
    """``metric.<method>(*args, **kwargs)`` in a traced graph, ``method`` "update_state" or "reset_state" (None:
    none), then, ``with_result``, the metric's result as its output. ``positional`` and ``keywords`` hold the
    arguments, with ``_TENSOR`` where the graph gives a tensor; ``anchored``: the first tensor is only the traced
    call's input; ``after``: the last tensor is only the output of the metric's operation before it."""

    arity = None
    casts_inputs = False
    keras_module = None

    def __init__(self, metric, method, positional, keywords, anchored, after, with_result, result_shape, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.metric, self.method = metric, method
        self.positional, self.keywords = positional, keywords
        self.anchored, self.after = anchored, after
        self.with_result, self.result_shape = with_result, tuple(result_shape)

    def _where(self):
        return f"Metric '{self.metric.name}' ({type(self.metric).__name__}) updated in a traced call"

    def result_dtype(self, tensors, arguments):
        return numpy.dtype(self.metric.dtype).name if self.with_result else backend.floatx()

    def output_shape_of(self, arguments, shapes):
        return self.result_shape if self.with_result else ()

    def forward_function(self, *arrays):
        given = iter(arrays[int(self.anchored):len(arrays) - int(self.after)])
        args = [next(given) if a is _TENSOR else a for a in self.positional]
        kwargs = {k: next(given) if v is _TENSOR else v for k, v in self.keywords.items()}
        xp = backend.array_module(*arrays)
        if self.method is not None and not suppressed():
            getattr(self.metric, self.method)(*args, **kwargs)
        if not self.with_result:
            return xp.zeros((), dtype=self.dtype)
        return xp.asarray(_value(self.metric.result()), dtype=self.dtype).reshape(self.result_shape)

    def backward(self, dy):
        count = len(self.arguments)
        return None if count == 1 else [None] * count

    def get_config(self):
        raise NotImplementedError(f"{self._where()} is part of the graph of that call, which is not saved.")


def _value(result):
    if isinstance(result, Variable):
        return result.value
    return result


def _result_shape(metric):
    """The shape of the metric's result (from its current state), or a TypeError for a dict result."""
    token = _direct.set(True)
    try:
        result = metric.result()
    finally:
        _direct.reset(token)
    if isinstance(result, dict):
        raise TypeError(f"Metric '{metric.name}' ({type(metric).__name__}) called in a traced call gives a dict "
                        "result, which is not one tensor of the graph: call its update_state(...) there instead, and "
                        "read its results from the model's logs.")
    return tuple(getattr(_value(result), "shape", ()))


def record(metric, method, args, kwargs, with_result=False):
    """``metric.<method>(*args, **kwargs)`` (``method`` "update_state", "reset_state" or None) in the call being
    traced: None, or with ``with_result`` the tensor of the metric's result after it."""
    where = f"Metric '{metric.name}' ({type(metric).__name__})"
    if active_trace() is None:
        raise TypeError(f"{where}: {method or 'result'} got symbolic tensors outside the call of a layer. A metric is "
                        "updated on data: in the call of a layer of your own (traced into a graph that updates it "
                        "each time the layer runs), or given to compile(metrics=[...]).")
    tensors = []

    def place(value, label):
        value = as_operand(value)
        if is_symbolic(value):
            tensors.append(value)
            return _TENSOR
        if isinstance(value, (list, tuple, dict)) and _holds_tensor(value):
            raise TypeError(f"{where}: its argument {label} holds symbolic tensors in a "
                            f"{type(value).__name__}; in a traced call {method} takes tensors as arguments of "
                            "their own.")
        return value
    positional = [place(v, f"#{i}") for i, v in enumerate(args)]
    keywords = {k: place(v, repr(k)) for k, v in kwargs.items()}
    anchored = not tensors
    if anchored:
        tensors.append(trace_anchor())
    last = _last.setdefault(active_trace(), {})
    before = last.get(id(metric))
    if before is not None:
        tensors.append(before)
    shape = _result_shape(metric) if with_result else ()
    output = MetricUpdate(metric, method, positional, keywords, anchored, before is not None, with_result,
                          shape).apply(*tensors)
    last[id(metric)] = output
    if method is not None:
        active_trace().side_effects.append(output)
    return output if with_result else None


def _holds_tensor(value):
    items = value.values() if isinstance(value, dict) else value
    return any(is_symbolic(v) or (isinstance(v, (list, tuple, dict)) and _holds_tensor(v)) for v in items)
