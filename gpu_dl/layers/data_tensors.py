"""Tensors a graph sends no gradient to: the targets and sample weights of a built-in loss on symbolic tensors.

A built-in loss called on symbolic tensors (``loss(y_true, y_pred, sample_weight)`` in a layer's call,
``gpu_dl/loss_symbolic.py``) is one operation of the graph whose backward is the loss's hand-written gradient,
which is d loss / d y_pred alone for most losses (``Loss.has_target_grad``: those with a gradient with respect
to their targets as well, BinaryCrossentropy's, train through computed targets and are not checked here).
Keras differentiates through ``y_true`` and the sample weights too; they are
data almost always (targets and weights fed as inputs), but where one is computed from trainable weights
those weights would silently get no gradient through it. ``require_data`` refuses such a graph when it is
made: it walks back from the tensor through the graph and raises a ValueError naming the layer whose
trainable weights it reaches. Inside the trace of a composite layer's call the walk ends at the trace's
inputs: those it reaches are kept (``Trace.data_inputs``), the traced graph lists them (``data_inputs``),
and the layer's call on symbolic tensors checks the tensors given for them in the graph around it.
"""
from __future__ import annotations

from .symbolic import active_trace


def _trains(layer):
    """Whether ``layer`` (a layer or operation of a graph) holds trainable weights a gradient would reach."""
    variable = getattr(layer, "variable", None)     # a read of a variable in a traced call
    if variable is not None:
        return bool(variable.trainable)
    return bool(layer.trainable_weights)


def require_data(tensor, what, where):
    """Raise a ValueError (``where``: who says it; ``what``: the tensor's role) where ``tensor`` is computed from
    trainable weights in the graph being made; record the trace inputs it is computed from."""
    trace = active_trace()
    positions = {id(t): i for i, t in enumerate(trace.inputs)} if trace is not None else {}
    seen, stack = set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if id(t) in positions:
            trace.data_inputs.add(positions[id(t)])
            continue
        history = getattr(t, "_keras_history", None)
        if history is None:
            continue
        layer = history.operation
        if _trains(layer):
            raise ValueError(f"{where}: its {what} is computed from the trainable weights of layer '{layer.name}' "
                             f"({type(layer).__name__}). gpu_dl trains a built-in loss called on symbolic tensors "
                             "through its gradient with respect to y_pred alone, so those weights would get no "
                             "gradient through it. Give it data (an Input of the model), or write the loss "
                             "with gpu_dl.ops functions (ops.mean, ops.square, ...), which train through every "
                             "tensor.")
        stack.extend(layer._inbound_nodes[history.node_index].input_tensors)
