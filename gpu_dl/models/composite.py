"""Composite layers and subclassed models: a ``call`` made of other layers, trained through a traced graph.

The most common Keras pattern is a ``Layer`` subclass that makes sublayers in
``__init__`` and composes them in ``call`` (and a ``Model`` subclass that does
the same). gpu_dl has no automatic differentiation, so such a class, when it
has no ``backward`` of its own, is trained the way a functional model is: when
it is built for an input shape, its ``call`` runs once on symbolic tensors
(``keras.Input``'s ``KerasTensor``), which records the sublayers' calls and the
operators between them (``+ - * / ** @``, indexing) and the ``gpu_dl.ops`` functions as a graph (an array
a sublayer is called on, such as ``ops.arange(maxlen)`` fed to an Embedding, becomes a constant of the graph); a
``Functional`` of that graph (kept by the layer, not among its sublayers) then
runs its forward and backward passes. Its weights are its own (made with
``add_weight``), then the sublayers' (``Layer.weights`` lists them in Keras's
order; the graph adds none).

A variable the call uses in operators or ``gpu_dl.ops`` functions (``ops.matmul(x,
self.w) + self.b``; its own, or another layer's) is one read of the graph,
which takes the variable's value each time the graph runs and sets its
``grad`` in the backward pass, so the optimizer trains it as any weight; an
``assign``, ``assign_add`` or ``assign_sub`` of it is an update the graph
performs each time it runs forward (``layers/variable_operations.py``).

A loss the call adds (``self.add_loss(kl)``, ``kl`` a symbolic scalar made
of the call's tensors) is part of the graph: its forward computes the value,
records it among the layer's ``losses`` (layers/layer_losses.py), and its
backward seeds it with 1, the gradient of the model's total loss with respect
to it, so its gradient reaches the weights; an inner composite layer's losses
are in its own graph, which runs in the outer one's.

Where ``call`` names ``training``, it is traced once per value (True, False),
so a body that branches on it in Python gets the graph of each branch; a call
is given the graph of its training value. Graphs are kept per input shape.

A ``call`` the tracing cannot follow (NumPy functions on its input or on a
weight's array, Python branching on values) runs as written (eagerly) in every
call, and its ``backward`` raises a NotImplementedError that names the layer
and says what to do; a loss it adds is an array, which a training step refuses
with such an error.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..layers import layer_losses
from ..layers.base import Layer, call_arguments
from ..layers.input_spec import holds_input_specs
from ..layers.symbolic import KerasTensor, Node, is_symbolic, tracing
from ..layers.variable_operations import traced_outputs


def _batchless(shape):
    return (None,) + tuple(shape[1:])


def _key(shapes, dtypes):
    return tuple((tuple(s[1:]), str(d)) for s, d in zip(shapes, dtypes))


def _where(layer):
    return f"Layer '{layer.name}' ({type(layer).__name__})"


def _takes_training(layer):
    return call_arguments(type(layer).call)[0]


def _trace(layer, shapes, dtypes, training):
    """``(graph, None)``: the ``Functional`` of ``layer.call`` on symbolic inputs of ``shapes``; or ``(None, why)``."""
    from ..layers.core import InputLayer
    from .functional import Functional
    several = len(shapes) > 1 or layer.__dict__.get("_takes_list", False)
    inputs = [InputLayer(shape=s[1:], dtype=d, name=f"{layer.name}_input" + (f"_{i}" if several else "")).output
              for i, (s, d) in enumerate(zip(shapes, dtypes))]
    kwargs = {"training": training} if _takes_training(layer) else {}
    try:
        with tracing(inputs) as trace:  # arrays a sublayer is called on become constants of the graph
            out = layer.call(list(inputs) if several else inputs[0], **kwargs)
            out = traced_outputs(trace, out)    # variables returned, updates no output depends on
        flat = list(out) if isinstance(out, (list, tuple)) else [out]
        if not flat or not all(is_symbolic(t) for t in flat):
            raise TypeError(f"call returned {type(out).__name__} for symbolic inputs, not the symbolic tensor(s) "
                            "of its layers")
        graph = Functional(list(inputs) if several else inputs[0], list(out) if isinstance(out, tuple) else out,
                           name=layer.name, added_losses=trace.losses)
    except Exception as e:          # whatever the user's call does on tensors it was not written for
        return None, f"its call could not be traced on symbolic tensors ({type(e).__name__}: {e})"
    return graph, None


def _graph(layer, shapes, dtypes, training):
    """The graph for inputs of ``shapes`` and ``dtypes`` (one each per input) and ``training``, traced once; None
    when the call cannot be traced (the reason is kept for the error ``backward`` raises)."""
    traces = layer.__dict__.get("_traces")
    if traces is None:
        traces = layer.__dict__["_traces"] = {}
    key = (_key(shapes, dtypes), bool(training) if _takes_training(layer) else None)
    if key not in traces:
        traces[key] = _trace(layer, shapes, dtypes, bool(training))
    graph, reason = traces[key]
    if graph is None:
        layer.__dict__["_trace_error"] = reason
    return graph


def _shapes_of(layer, input_shape):
    """``(several, shapes)``: the input shape(s) as a list of batchless tuples."""
    several = isinstance(input_shape, list) or (isinstance(input_shape, tuple) and input_shape
                                                and isinstance(input_shape[0], (list, tuple)))
    shapes = [_batchless(s) for s in input_shape] if several else [_batchless(input_shape)]
    return several, shapes


def _float_dtype(layer, dtype):
    return layer.dtype if numpy.dtype(dtype).kind == "f" else numpy.dtype(dtype).name


# ------------------------------------------------------------------ building
def build(layer, input_shape, own_build=None):
    """Build ``layer`` for ``input_shape`` (one shape, or a list of one per input): its own ``build`` if it has
    one (``own_build``: a subclassed model's, unwrapped), then the trace of its call (for training=False), which
    builds its sublayers."""
    several, shapes = _shapes_of(layer, input_shape)
    if several:
        layer.__dict__["_takes_list"] = True
    if own_build is not None:
        own_build(layer, input_shape)
    elif not getattr(type(layer).build, "_library_build", False):
        layer.build(input_shape)
    layer.built = True
    if holds_input_specs(layer.input_spec):       # a Keras InputSpec the layer set itself stays
        layer._built_input_shape = shapes if several else shapes[0]
    else:
        layer.input_spec = shapes if several else shapes[0]
    _graph(layer, shapes, [layer.dtype] * len(shapes), False)


def output_shape(layer, input_shape):
    """The output shape(s) for ``input_shape``, from the traced graph (or, for a call that cannot be traced, from
    running it on zeros)."""
    several, shapes = _shapes_of(layer, input_shape)
    layer.ensure_built(input_shape)
    graph = _graph(layer, shapes, [layer.dtype] * len(shapes), False)
    batch = (input_shape[0] if several else input_shape)[0]
    if graph is not None:
        outs = [(batch,) + tuple(t.shape[1:]) if t.shape and t.shape[0] is None else tuple(t.shape)
                for t in graph.outputs]
        return outs if graph._multi else outs[0]
    if any(d is None for s in shapes for d in s[1:]):
        raise ValueError(f"{_where(layer)}: its output shape for inputs of shape {input_shape} is unknown: "
                         f"{layer.__dict__.get('_trace_error')}. Give the class a compute_output_shape method.")
    zeros = [backend.to_device(numpy.zeros((2,) + s[1:], dtype=layer.dtype)) for s in shapes]
    with layer_losses.dropped_losses():     # a call on zeros, for its shapes: what it adds is no loss
        y = _eager(layer, zeros if several else zeros[0], False, None)
    ys = list(y) if isinstance(y, (list, tuple)) else [y]
    outs = [(batch,) + tuple(a.shape[1:]) for a in ys]
    return outs if isinstance(y, (list, tuple)) else outs[0]


# ------------------------------------------------------------------ calls
def _eager(layer, x, training, mask):
    takes_training, takes_mask, _ = call_arguments(type(layer).call)
    kwargs = {}
    if takes_training:
        kwargs["training"] = training
    if takes_mask and mask is not None:
        kwargs["mask"] = mask
    with tracing(None):             # on arrays, even inside the trace of another layer's call
        return layer.call(x, **kwargs)


def _arrays(layer, x):
    several = isinstance(x, (list, tuple))
    xs = []
    for a in (x if several else [x]):
        a = layer._as_input(a)
        if a.dtype.kind == "f" and a.dtype != layer.dtype:
            a = a.astype(layer.dtype)
        xs.append(a)
    return several, xs


def forward(layer, x, training, mask):
    """The call on arrays: the output as the graph gives it (an array, or a list of one per output), or the
    eager call's output; ``_output_mask`` is then the mask that reached the output."""
    several, xs = _arrays(layer, x)
    shapes = [_batchless(a.shape) for a in xs]
    layer.ensure_built(shapes if several else shapes[0])
    graph = _graph(layer, shapes, [_float_dtype(layer, a.dtype) for a in xs], training)
    arg = xs if several else xs[0]
    layer.__dict__["_active_graph"] = graph
    if graph is None:
        layer.__dict__["_output_mask"] = None
        return _eager(layer, arg, training, mask)
    y = graph.forward(arg, training=training, mask=mask)
    layer.__dict__["_output_mask"] = graph.output_mask
    return y


def call(layer, x, training, mask):
    """``layer(x)`` on arrays: its output in the structure its call gives it."""
    y = forward(layer, x, training, mask)
    graph = layer.__dict__.get("_active_graph")
    if graph is not None:
        y = graph._structured(y if graph._multi else [y])
    layer._activity_output = y if layer.activity_regularizer is not None else None
    if layer.activity_regularizer is not None:
        layer_losses.record_activity(layer, y)
    return y


def symbolic_call(layer, x, training=None, mask=None):
    """``layer(x)`` on symbolic tensors (in a functional model, or in the call of another composite layer): one
    node for the whole layer, with outputs of the shapes its traced graph gives."""
    where = _where(layer)
    if mask is not None:
        raise ValueError(f"{where}: in a functional model masks pass along the edges by themselves; a `mask` "
                         "argument is not taken in a call on symbolic tensors.")
    several = isinstance(x, (list, tuple))
    tensors = list(x) if several else [x]
    if not all(is_symbolic(t) for t in tensors):
        raise TypeError(f"{where} was called on a list that mixes symbolic tensors (from keras.Input) and other "
                        f"values ({', '.join(type(t).__name__ for t in tensors)}); give symbolic tensors only.")
    shapes = [_batchless(t.shape) for t in tensors]
    layer.ensure_built(shapes if several else shapes[0])
    graph = _graph(layer, shapes, [_float_dtype(layer, t.dtype) for t in tensors], bool(training))
    if graph is not None:
        outputs = [KerasTensor(t.shape, dtype=t.dtype) for t in graph.outputs]
        multi = graph._multi
    else:
        shape = output_shape(layer, shapes if several else shapes[0])
        multi = isinstance(shape, list)
        outputs = [KerasTensor(s, dtype=layer.dtype) for s in (shape if multi else [shape])]
    kwargs = {} if training is None else {"training": bool(training)}
    Node(layer, args=(tensors if several else tensors[0],), kwargs=kwargs, outputs=outputs)
    return list(outputs) if multi else outputs[0]


def untrainable_message(layer):
    reason = layer.__dict__.get("_trace_error") or "its call has not run on arrays yet"
    return (f"{_where(layer)} cannot be trained through: {reason}. gpu_dl has no automatic differentiation; it "
            "trains a Layer subclass without a backward method by tracing its call into a graph of layer calls. "
            "Build the call from gpu_dl layers, gpu_dl.ops functions and the operators + - * / ** @ and indexing "
            "on symbolic tensors and on the layer's weights (sublayers such as Dense, or variables made with "
            "add_weight), or give the class a backward(dy) method that returns the input gradient and sets each "
            "weight's .grad.")


def backward(layer, dy, input_gradient=None):
    """The backward pass of the last call through its graph; a NotImplementedError when it ran eagerly."""
    graph = layer.__dict__.get("_active_graph")
    if graph is None:
        raise NotImplementedError(untrainable_message(layer))
    wanted = layer.input_gradient_wanted if input_gradient is None else input_gradient
    return graph.backward(dy, input_gradient=wanted)


def active_graph(layer):
    return layer.__dict__.get("_active_graph") if isinstance(layer, Layer) and layer._composite else None
