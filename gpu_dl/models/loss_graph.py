"""Losses written with ``gpu_dl.ops``, trained through a traced graph.

gpu_dl has no automatic differentiation. A loss without a gradient of its own
(a plain function ``fn(y_true, y_pred)`` given to compile, a
``LossFunctionWrapper`` without ``grad_fn``, a ``Loss`` subclass with a
``call`` and no ``grad``; ``Loss.traced`` says which) is trained the way a
composite layer is (``composite.py``): its call runs once on symbolic tensors
(``KerasTensor``) of the targets' and predictions' shapes, batch axis None,
in the loss's dtype (Keras's ``Loss.__call__`` converts both to it), which
records its ``gpu_dl.ops`` functions and the operators between them as a
graph: a ``Functional`` of ``y_true`` and ``y_pred`` (of those of the two the
call reads). Its forward gives the per-sample values (``Loss.per_sample``);
its backward, seeded with the factors of the loss's reduction (sample and
class weights, masks, the 1/N of the mean, the output's loss weight), gives
d loss / d y_pred (``Loss.training_grad``).

The graph is made once per pair of sample shapes (and dtype) and kept by the
loss. The names of its operations come from a counter of its own, so tracing a
loss does not change the names later layers and operations get (Keras's
losses run eagerly and name nothing). A call the tracing cannot follow (NumPy
functions on the tensors, Python branching on their values) is a TypeError
naming the loss and saying what to do, raised when the targets are checked,
before a training step changes anything; a call that cannot take the shapes is
a ValueError.
"""
from __future__ import annotations

import collections
import contextlib
import itertools

from .. import backend
from ..layers import base, layer_losses
from ..layers.symbolic import is_symbolic, tracing

_STATE = "_traced_loss_state"     # the last training forward: (y_true, y_pred, traced, values' shape and dtype)
_GRAPHS = "_traced_loss_graphs"   # per key: (Traced, None) or (None, the exception to raise)


class Traced:
    """A loss's graph for one key: ``graph``, a Functional of the inputs it reads, and ``reads``, which those are
    (0: y_true, 1: y_pred), in the graph's input order."""

    def __init__(self, graph, reads):
        self.graph = graph
        self.reads = reads


@contextlib.contextmanager
def _own_names():
    """Layers and operations made inside take their names from counters of their own."""
    kept = base._name_counters
    base._name_counters = collections.defaultdict(itertools.count)
    try:
        yield
    finally:
        base._name_counters = kept


def describe(loss):
    """How messages name ``loss``."""
    fn = getattr(loss, "fn", None)
    if getattr(loss, "given_as_function", False) and fn is not None:
        return f"Loss function '{getattr(fn, '__name__', fn)}'"
    return f"Loss '{loss.name}' ({type(loss).__name__})"


def _ancestors(tensor):
    """The ids of ``tensor`` and of every tensor it is computed from."""
    seen, stack = set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t._keras_history is not None:
            layer, index, _ = t._keras_history
            stack.extend(layer._inbound_nodes[index].input_tensors)
    return seen


def _untraceable(loss, shapes, why):
    true_shape, pred_shape = shapes
    return TypeError(
        f"{describe(loss)} cannot be trained: gpu_dl has no automatic differentiation, so it trains a loss without "
        "a gradient of its own through the graph its call records on symbolic y_true and y_pred (here of shapes "
        f"{true_shape} and {pred_shape}), and {why}. Write the loss with gpu_dl.ops functions (ops.mean, "
        "ops.square, ops.where, ops.clip, ...) and the operators + - * / ** on y_true and y_pred: no NumPy "
        "functions or array methods on them, no Python `if` on their values (use ops.where). Or give it its "
        "gradient: a Loss subclass with grad(y_true, y_pred) returning d(sum of the per-sample losses)/d(y_pred), "
        "or gpu_dl.losses.LossFunctionWrapper(fn, grad_fn=...).")


def _trace(loss, true_shape, pred_shape, dtype):
    """``(Traced, None)`` for the call on symbolic tensors of these shapes (batch axis None), or ``(None, error)``."""
    from ..layers.core import InputLayer
    from .functional import Functional
    shapes = ((None,) + tuple(true_shape), (None,) + tuple(pred_shape))
    with _own_names():
        inputs = [InputLayer(shape=true_shape, dtype=dtype, name="y_true").output,
                  InputLayer(shape=pred_shape, dtype=dtype, name="y_pred").output]
        try:
            with tracing(inputs) as trace:
                out = loss.call(*inputs)
        except ValueError as e:     # the operations' shape and argument checks
            return None, ValueError(f"{describe(loss)} cannot compute on targets of shape {shapes[0]} and "
                                    f"predictions of shape {shapes[1]} (batch axis None): {e}")
        except Exception as e:      # whatever the user's call does on tensors it was not written for
            return None, _untraceable(loss, shapes, f"its call could not be traced ({type(e).__name__}: {e})")
        if not is_symbolic(out):
            return None, _untraceable(loss, shapes, f"its call returned {type(out).__name__} for them, not the "
                                                    "symbolic tensor of its per-sample losses")
        if trace.side_effects:
            return None, TypeError(f"{describe(loss)} updates a metric in its call, which a loss's graph does not "
                                   "run: give the metric to compile(metrics=[...]), or update it in the call of a "
                                   "layer of your own.")
        reached = _ancestors(out)
        reads = tuple(i for i, t in enumerate(inputs) if id(t) in reached)
        if not reads:
            return None, _untraceable(loss, shapes, "its value does not depend on either")
        try:
            graph = Functional([inputs[i] for i in reads] if len(reads) > 1 else inputs[reads[0]], out,
                               name=f"{loss.name}_graph")
        except (TypeError, ValueError) as e:
            return None, _untraceable(loss, shapes, f"its graph could not be made ({e})")
    return Traced(graph, reads), None


def traced(loss, true_shape, pred_shape):
    """The ``Traced`` graph of ``loss`` for targets and predictions of these shapes (batch axis first), traced on
    first use; raises the TypeError or ValueError that says why there is none."""
    graphs = loss.__dict__.get(_GRAPHS)
    if graphs is None:
        graphs = loss.__dict__[_GRAPHS] = {}
    key = (tuple(true_shape[1:]), tuple(pred_shape[1:]), str(loss.dtype))
    if key not in graphs:
        graphs[key] = _trace(loss, tuple(true_shape[1:]), tuple(pred_shape[1:]), loss.dtype)
    found, error = graphs[key]
    if error is not None:
        raise error
    return found


def check(loss, true_shape, pred_shape):
    """Raise what training ``loss`` on these shapes (the batch sizes may be None) would raise."""
    traced(loss, true_shape, pred_shape)


def forward(loss, y_true, y_pred, training=False):
    """The per-sample values of ``loss`` for arrays ``y_true`` and ``y_pred``, from its graph; with ``training``
    the graph keeps what its backward needs for ``gradient`` on the same two arrays."""
    found = traced(loss, y_true.shape, y_pred.shape)
    arrays = [a.astype(loss.dtype, copy=False) for a in (y_true, y_pred)]
    given = [arrays[i] for i in found.reads]
    with layer_losses.dropped_losses():     # the graph's own call: it adds nothing to the model's losses
        values = found.graph.forward(given if len(given) > 1 else given[0], training=training)
    values = backend.array_module(y_pred).asarray(values)    # NumPy gives a reduction to 0-d as a scalar
    loss.__dict__[_STATE] = (y_true, y_pred, found, values.shape, values.dtype) if training else None
    return values


def gradient(loss, y_true, y_pred, weights):
    """d(sum(weights * values))/d(y_pred), the values those ``forward`` gives; ``weights`` has their shape, or is a
    number (each value's weight). Runs the forward again unless the last one trained on these two arrays."""
    state = loss.__dict__.get(_STATE)
    if state is None or state[0] is not y_true or state[1] is not y_pred:
        forward(loss, y_true, y_pred, training=True)
        state = loss.__dict__[_STATE]
    loss.__dict__[_STATE] = None      # the arrays are not kept past the step
    _, _, found, shape, dtype = state
    xp = backend.array_module(y_pred)
    seed = xp.broadcast_to(xp.asarray(weights, dtype=dtype), shape).astype(dtype)
    grads = found.graph.backward(seed)
    grads = dict(zip(found.reads, grads if len(found.reads) > 1 else [grads]))
    grad = grads.get(1)
    if grad is None:        # the values do not depend on y_pred (or only through integers)
        return xp.zeros(y_pred.shape, dtype=y_pred.dtype)
    return grad.astype(y_pred.dtype, copy=False).reshape(y_pred.shape)
