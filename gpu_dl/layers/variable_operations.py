"""Variables in a traced call: ``ops.matmul(x, self.w) + self.b``, ``self.total.assign_add(ops.sum(x, axis=0))``.

The call of a composite layer (or a subclassed model) is traced on symbolic
tensors into a graph (``models/composite.py``). A variable it uses (made with
``add_weight``, its own or another layer's) becomes one ``VariableRead`` of
that graph: the operation reads the variable's value each time the graph runs
(never a copy taken while tracing: the optimizer updates the value in place
after each step, ``set_weights`` and ``load_weights`` write into it), and its
backward sets the variable's ``grad`` (the sum of what its uses send back), so
the optimizer updates it, regularizer and constraint included, as any weight.
A non-trainable variable gets no gradient.

``variable.assign(value)``, ``assign_add`` and ``assign_sub`` in a traced call
record a ``VariableUpdate``: each time the graph runs forward it computes the
new value, writes it into the variable and gives it as its output; later uses
of the variable in the call read that output. No gradient goes through an
update. Where the call returns something no update feeds, ``AfterUpdates``
makes the first output wait for them, so every update recorded runs in every
call; so do the metric updates the call records (``metric_updates.py``).
These graphs are not saved, so Keras has no such classes.
"""
from __future__ import annotations

import numpy

from .. import backend, dtype_policies
from ..ops import arithmetic
from .base import Variable, writable_value
from .operations import Operation, broadcast_shapes
from .symbolic import active_trace, is_symbolic, traced_variable

_UPDATES = {"assign": "assign", "add": "assign_add", "sub": "assign_sub"}


class VariableRead(Operation):
    """The value of ``variable`` in a traced graph. It reads the traced call's first input only to belong to the
    graph (no gradient goes back to it). Made inside the autocast scope of a traced call (a "mixed_float16"
    layer's), a float variable made with ``autocast=True`` reads as the scope's dtype, as Keras's
    ``AutocastScope`` casts it there; its gradient reaches it in its own dtype."""

    arity = 1
    casts_inputs = False
    keras_module = None

    def __init__(self, variable, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.variable = variable
        # Where the traced call also updates the variable, the value read before the update must stay as it was
        # when the update writes the new one in place (or when it is an output, which the optimizer's step would
        # change in place): then the read is a copy.
        self.copies = False
        cast = dtype_policies.autocast_dtype()
        stored = numpy.dtype(variable.dtype)
        self.cast = None
        if cast is not None and variable.autocast and stored.kind == "f" and stored != numpy.dtype(cast):
            self.cast = numpy.dtype(cast)

    def result_dtype(self, tensors, arguments):
        return (self.cast or numpy.dtype(self.variable.dtype)).name

    def output_shape_of(self, arguments, shapes):
        return tuple(self.variable.shape)

    @property
    def output(self):
        """The tensor of the read in its graph."""
        return self._inbound_nodes[0].outputs[0]

    def forward_function(self, anchor):
        value = self.variable._value        # as stored: the cast is the one chosen when the call was traced
        if self.cast is not None:
            return value.astype(self.cast)
        return value.copy() if self.copies else value

    def backward(self, dy):
        var = self.variable
        if var.trainable and dy is not None and numpy.dtype(var.dtype).kind == "f":
            dy = arithmetic.reduce_to_shape(dy, var.shape)
            # A fresh C-ordered array of the variable's dtype: the optimizers' kernels take contiguous gradients,
            # and the array the graph sent back may be another tensor's gradient too.
            var.grad = backend.array_module(dy).array(dy, dtype=var._value.dtype, order="C", copy=True)
        return None


class VariableUpdate(Operation):
    """``variable.assign(value)`` (``kind`` "assign"), ``assign_add`` ("add") or ``assign_sub`` ("sub") in a
    traced graph. Its arguments are the variable's tensor before the update (its read, or the previous update's
    result, which orders the updates) and the value (a tensor, a number or an array); its output is the new
    value, of the variable's shape and dtype."""

    arity = 2
    keras_module = None

    def __init__(self, variable, kind, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.variable = variable
        self.kind = kind

    def _where(self):
        return f"Variable '{self.variable.path}': {_UPDATES[self.kind]}"

    def result_dtype(self, tensors, arguments):
        return numpy.dtype(self.variable.dtype).name

    def output_shape_of(self, arguments, shapes):
        shapes = iter(shapes)
        current = next(shapes)
        value = next(shapes) if arguments[1] is None else tuple(numpy.shape(arguments[1]))
        target = tuple(self.variable.shape)
        if self.kind == "assign":
            fits = len(value) == len(target) and all(v is None or v == t for v, t in zip(value, target))
        else:
            fits = broadcast_shapes(current, value, self._where()) == target
        if not fits:
            raise ValueError(f"{self._where()}: the variable has shape {target}; a value of shape {value} does not "
                             f"fit it{'' if self.kind == 'assign' else ' (the result must keep the shape)'}.")
        return target

    def forward_function(self, current, value):
        xp = backend.array_module(current)
        if self.kind == "assign":
            new = xp.asarray(value, dtype=current.dtype)
        elif self.kind == "add":
            new = current + value
        else:
            new = current - value
        target = self.variable
        if tuple(new.shape) != tuple(target.shape):
            raise ValueError(f"{self._where()}: the variable has shape {tuple(target.shape)}; the new value has "
                             f"shape {tuple(new.shape)}.")
        writable_value(target)[...] = new
        return new

    def backward(self, dy):
        count = sum(a is None for a in self.arguments)
        return None if count == 1 else [None] * count


class AfterUpdates(Operation):
    """The first of its tensors, once the others (updates no output depends on) are computed; its gradient goes
    to the first alone."""

    arity = None
    casts_inputs = False
    keras_module = None

    def result_dtype(self, tensors, arguments):
        return tensors[0].dtype

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0])

    def forward_function(self, first, *updates):
        return first

    def backward(self, dy):
        return [dy] + [None] * (len(self.arguments) - 1)


def record_update(variable, kind, value):
    """The update of ``variable`` by ``value`` in the call being traced: its symbolic result, which later uses
    of the variable in the call read."""
    trace = active_trace()
    current = traced_variable(variable)
    read = trace.reads.get(id(variable))
    if read is not None:
        read.copies = True
    result = VariableUpdate(variable, kind).apply(current, value)
    trace.variables[id(variable)] = (variable, result)
    return result


def traced_outputs(trace, out):
    """The output of a traced call as its graph takes it: variables returned become their tensors (their value
    after the call's updates), and where some of the call's updates feed no output, the first output waits for
    them (``AfterUpdates``). Anything but a tensor, a variable or a list or tuple of them is given back as it is
    (the caller says what it cannot take)."""
    several = isinstance(out, (list, tuple))
    items = [traced_variable(o) if isinstance(o, Variable) else o for o in (out if several else [out])]
    if not items or not all(is_symbolic(t) for t in items):
        return out
    for read in trace.reads.values():
        if any(t is read.output for t in items):
            read.copies = True     # given out as it is, the optimizer's in-place step would change it
    updates = [tensor for _, tensor in trace.variables.values()
               if isinstance(tensor._keras_history.operation, VariableUpdate)] + list(trace.side_effects)
    reached = _ancestors(items)
    pending = [t for t in updates if id(t) not in reached]
    if pending:
        items[0] = AfterUpdates().apply(items[0], *pending)
    return type(out)(items) if several else items[0]


def _ancestors(tensors):
    """The ids of ``tensors`` and of every tensor they are computed from."""
    seen, stack = set(), list(tensors)
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        history = tensor._keras_history
        if history is not None:
            stack.extend(history.operation._inbound_nodes[history.node_index].input_tensors)
    return seen
