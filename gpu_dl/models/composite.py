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
runs its forward and backward passes (a subclassed model that a script builds with ``model.build(shape)`` is only
marked built for that shape, as Keras marks it: its first call traces it). Its weights are its own (made with
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
are in its own graph, which runs in the outer one's. A loss object or function
the call applies to its tensors (``self.loss_fn(targets, logits, weights)``)
is one operation of the graph (``loss_symbolic.py``); the tensors it takes as
targets and sample weights must be data, which a call on symbolic tensors
checks (``layers/data_tensors.py``).

Where ``call`` names ``training``, it is traced once per value (True, False),
so a body that branches on it in Python gets the graph of each branch; a call
is given the graph of its training value. Graphs are kept per input shape.

Its arguments are bound to its call's signature as Keras binds them: the
first argument, and any other that is a tensor or a list, tuple or dict of
them (``LogisticEndpoint()(targets, logits)``, ``layer(x, context=c)``), are
inputs of the graph; the other arguments (numbers, strings, None) are
constants of it, and a graph is traced per value. In a functional model such
a call is one node whose inputs are all those tensors, and its backward gives
each of them its gradient.

Masks of padded steps reach the call as Keras delivers them (``layers/masks.py``):
each input reached by one has it as ``_keras_mask`` in the trace, so the
layers called on it inside see it; a call that names ``mask`` gets the masks
of its one tensor argument (a call of several tensor arguments, ``<name>_mask``
for each it names), symbolic tensors it may compute with. The graph is traced
again per mask reaching it (or not). Its output's mask is the one that reached
it in the graph; one that supports masking (``supports_masking = True`` or
its own ``compute_mask``) gives ``compute_mask`` where none did.

A metric the call updates (``self.accuracy.update_state(targets, probs)``) is
updated by the graph each time it runs forward (``layers/metric_updates.py``).

A ``call`` the tracing cannot follow (NumPy functions on its input or on a
weight's array, Python branching on values) runs as written (eagerly) in every
call, and its ``backward`` raises a NotImplementedError that names the layer
and says what to do; a loss it adds is an array, which a training step refuses
with such an error.
"""
from __future__ import annotations

import functools
import inspect

import numpy

from .. import backend, dtype_policies
from ..layers import build_shapes, gradients, layer_losses, masks, metric_updates
from ..layers.base import Layer, Variable, call_arguments, check_symbolic_mask, name_scope
from ..layers.data_tensors import require_data
from ..layers.input_spec import holds_input_specs
from ..layers.masks import edge_mask
from ..layers.symbolic import (KerasTensor, MaskSpec, Node, active_trace, flatten_structure, is_symbolic,
                              traced_constant, tracing)
from ..layers.variable_operations import traced_outputs

_TENSOR = "tensor"      # a tensor's place in the skeleton of a call's arguments


def _batchless(shape):
    return (None,) + tuple(shape[1:])


def _where(layer):
    return f"Layer '{layer.name}' ({type(layer).__name__})"


def _takes_training(layer):
    return call_arguments(type(layer).call)[0]


# ------------------------------------------------------------------ the arguments of a call
@functools.lru_cache(maxsize=None)
def _signature(cls):
    """The signature of ``cls.call`` without ``self``, or None where it cannot be read."""
    try:
        parameters = list(inspect.signature(cls.call).parameters.values())[1:]
        return inspect.Signature(parameters)
    except (TypeError, ValueError):
        return None


def _is_tensor(value):
    """Whether ``value`` is one of a call's tensors: a symbolic tensor, a variable, or an array of one or more
    axes (NumPy's scalars and 0-d arrays are not)."""
    if is_symbolic(value) or isinstance(value, Variable):
        return True
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, numpy.generic) and \
        len(value.shape) > 0


def _split(value, leaves, where):
    """The skeleton of ``value`` (hashable: what stays when its tensors are taken out), its tensors appended to
    ``leaves`` in the order a Node lists them (lists in order, dicts by sorted key)."""
    if _is_tensor(value):
        leaves.append(value)
        return _TENSOR
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_split(v, leaves, where) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _split(value[k], leaves, where)) for k in sorted(value)))
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"{where} is a {type(value).__name__}: a composite layer's call takes tensors (arrays, "
                        "symbolic tensors, or lists, tuples and dicts of them) and other values that are constants "
                        "of its traced graph (numbers, strings, booleans, None).") from None
    return ("constant", type(value), value)


def _rebuild(skeleton, leaves):
    """The value of ``skeleton`` with the next tensors of the iterator ``leaves`` in its tensors' places."""
    if skeleton == _TENSOR:
        return next(leaves)
    kind, body = skeleton[0], skeleton[1]
    if kind == "constant":
        return skeleton[2]
    if kind == "dict":
        return {k: _rebuild(s, leaves) for k, s in body}
    items = [_rebuild(s, leaves) for s in body]
    return items if kind == "list" else tuple(items)


def _count(skeleton):
    if skeleton == _TENSOR:
        return 1
    return 0 if skeleton[0] == "constant" else sum(_count(s[1] if skeleton[0] == "dict" else s) for s in skeleton[1])


class _Call:
    """One call of a composite layer, bound to its call's signature as Keras binds it (``CallSpec``).

    ``skeleton`` = (the positional arguments' skeletons, ``(name, skeleton)`` of the keyword ones by name): the
    arguments without their tensors, which keys the graphs traced for them; ``leaves``: the tensors (arrays or
    symbolic tensors), positional first, then keywords by name, as a Node lists them and as the graph takes them;
    ``first``: how many of them the first argument holds."""

    def __init__(self, skeleton, leaves):
        self.skeleton = skeleton
        self.leaves = list(leaves)
        self.first = _count(skeleton[0][0]) if skeleton[0] else 0

    @classmethod
    def of(cls, positional, keywords, where, names=()):
        """The call of ``positional`` and ``keywords`` arguments; ``names``: the positional ones' (for errors)."""
        leaves = []
        names = list(names) + [f"#{i}" for i in range(len(names), len(positional))]
        skeleton = (tuple(_split(v, leaves, f"{where}: argument {n!r}") for n, v in zip(names, positional)),
                    tuple((k, _split(keywords[k], leaves, f"{where}: argument {k!r}")) for k in sorted(keywords)))
        return cls(skeleton, leaves)

    def arguments(self):
        """``(positional, keywords)`` as the call takes them, its tensors in their places."""
        it = iter(self.leaves)
        positional = [_rebuild(s, it) for s in self.skeleton[0]]
        keywords = {k: _rebuild(s, it) for k, s in self.skeleton[1]}
        return positional, keywords

    @property
    def takes_list(self):
        return bool(self.skeleton[0]) and self.skeleton[0][0] != _TENSOR

    @property
    def only_first(self):
        """Whether the call has no argument but its first."""
        return len(self.skeleton[0]) == 1 and not self.skeleton[1]


def _first_value(layer, x):
    """The first argument as the call takes it: a tensor, or a list of them (nested lists of numbers become
    arrays, as Keras converts them)."""
    if _is_tensor(x):
        return x
    if isinstance(x, dict) and x and all(_is_tensor(v) for v in x.values()):
        return dict(x)
    if isinstance(x, (list, tuple)) and x and all(_is_tensor(v) or isinstance(v, (list, tuple)) for v in x):
        return [v if _is_tensor(v) else layer._as_input(v) for v in x]
    return layer._as_input(x)


def _bind(layer, x, args, kwargs, training, mask):
    """``(call, training, mask)``: the arguments of ``layer(x, *args, **kwargs)`` bound to its call's signature;
    a ``training`` or ``mask`` bound positionally is taken out and given back."""
    where = _where(layer)
    signature = _signature(type(layer))
    x = _first_value(layer, x)
    if signature is None:
        return _Call.of((x,) + tuple(args), kwargs, where), training, mask
    try:
        bound = signature.bind(x, *args, **kwargs)
    except TypeError as e:
        if len(args) == 1 and not kwargs and (args[0] is None or isinstance(args[0], (bool, numpy.bool_))) and \
                training is None:
            bound, training = signature.bind(x), args[0]    # layer(x, True): the training flag, as gpu_dl took it
        else:
            raise TypeError(f"{where}: {e}; its call takes call{signature}.") from None
    parameters = signature.parameters
    for name in ("training", "mask"):
        if name in bound.arguments and parameters[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                                 inspect.Parameter.POSITIONAL_ONLY):
            value = bound.arguments.pop(name)
            if name == "training" and training is None:
                training = value
            elif name == "mask" and mask is None:
                mask = value
    names = [p.name for p in parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return _Call.of(bound.args, bound.kwargs, where, names[:len(bound.args)]), training, mask


def _converted(layer, leaves):
    """Array tensors checked and as the layer computes with them (floats in its dtype); variables as their
    tensor in a call being traced, else their value; symbolic tensors as they are."""
    out = []
    for a in leaves:
        if isinstance(a, Variable):
            a = a.current()
        if not is_symbolic(a):
            a = layer._as_input(a)
            if a.dtype.kind == "f" and a.dtype != layer.compute_dtype and layer.autocast:
                a = a.astype(layer.compute_dtype)
        out.append(a)
    return out


def _float_dtype(layer, dtype):
    """The dtype a tensor of ``dtype`` enters the layer's call with: floats in the layer's dtype, unless the layer
    was made with ``autocast=False``."""
    return layer.compute_dtype if numpy.dtype(dtype).kind == "f" and layer.autocast else numpy.dtype(dtype).name


def _mask_key(mask):
    return None if mask is None else tuple(mask.shape[1:])


def _spec(layer, call, leaf_masks):
    """What keys and makes a call's graph: its skeleton, its tensors' batchless shapes and dtypes, and the
    batchless shapes of the masks reaching them."""
    shapes = tuple(_batchless(t.shape) for t in call.leaves)
    dtypes = tuple(_float_dtype(layer, t.dtype) for t in call.leaves)
    return call.skeleton, shapes, dtypes, tuple(_mask_key(m) for m in leaf_masks)


# ------------------------------------------------------------------ tracing
def _slots(layer, skeleton):
    """``[(parameter name or None, skeleton, first tensor, tensor count)]`` per argument of ``skeleton``, the
    names Keras's mask rule reads (None for the arguments of ``*args`` and ``**kwargs``)."""
    signature = _signature(type(layer))
    parameters = list(signature.parameters.values()) if signature is not None else []
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    named = {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    slots = [(positional[i] if i < len(positional) else None, s) for i, s in enumerate(skeleton[0])] + \
        [(k if k in named else None, s) for k, s in skeleton[1]]
    found, start = [], 0
    for name, s in slots:
        found.append((name, s, start, _count(s)))
        start += _count(s)
    return found


def _mask_arguments(layer, skeleton, mask_at, given):
    """The mask arguments Keras passes a call (its ``_get_mask`` rule), where a mask reaches them: for a call of one
    tensor argument that names ``mask``, that argument's masks (in its structure); for several, ``<name>_mask``
    for each tensor argument whose name it names so. ``mask_at(i)``: the mask of the call's i-th tensor (None
    where none reaches it); ``given``: the keyword arguments the call has already."""
    takes_mask = call_arguments(type(layer).call)[1]
    signature = _signature(type(layer))
    names = set(signature.parameters) if signature is not None else set()
    tensor_slots = [slot for slot in _slots(layer, skeleton) if slot[3]]
    wanted = []
    if len(tensor_slots) == 1 and takes_mask:
        wanted = [("mask", tensor_slots[0])]
    elif len(tensor_slots) > 1:
        wanted = [(f"{slot[0]}_mask", slot) for slot in tensor_slots
                  if slot[0] is not None and f"{slot[0]}_mask" in names]
    found = {}
    for key, (_, arg, start, count) in wanted:
        if key in given:
            continue
        leaf_masks = [mask_at(i) for i in range(start, start + count)]
        if any(m is not None for m in leaf_masks):
            found[key] = _rebuild(arg, iter(leaf_masks))
    return found


def _trace(layer, spec, training):
    """``(graph, None)``: the ``Functional`` of ``layer.call`` on symbolic inputs as ``spec`` describes them
    (``_spec``); or ``(None, why)``."""
    from ..layers.core import InputLayer
    from .functional import Functional
    skeleton, shapes, dtypes, mask_shapes = spec
    several = len(shapes) > 1 or (skeleton[0] and skeleton[0][0] != _TENSOR)
    inputs = [InputLayer(shape=s[1:], batch_size=s[0], dtype=d,
                         name=f"{layer.name}_input" + (f"_{i}" if several else "")).output
              for i, (s, d) in enumerate(zip(shapes, dtypes))]
    for tensor, m in zip(inputs, mask_shapes):
        if m is not None:
            tensor._keras_mask = MaskSpec((None,) + tuple(m))
    # The sublayers first called here are built for the batch size Keras's builds get: the call's on arrays (or
    # the one a Sequential was built for), else the stand-in batch size of Keras's trace of a symbolic call.
    stand_in = layer.__dict__.get("_trace_batch") or build_shapes.KERAS_TRACE_BATCH
    try:
        with tracing(inputs) as trace, build_shapes.stand_in_batch(stand_in, build_shapes.KERAS_TRACE_BATCH):
            positional, keywords = _Call(skeleton, inputs).arguments()
            context = {"training": training} if _takes_training(layer) else {}
            context.update(_mask_arguments(layer, skeleton, lambda i: inputs[i]._keras_mask, keywords))
            # Variables read in the call itself autocast as in Keras's call of the layer from outside any scope
            # (sublayers choose their own scopes when they run).
            with dtype_policies.autocast_scope(None):
                scope = dtype_policies.layer_scope_dtype(layer)
            with dtype_policies.autocast_scope(None if scope is ... else scope), name_scope(layer):
                out = layer.call(*positional, **keywords, **context)
            out = traced_outputs(trace, out)    # variables returned, updates no output depends on
        flat = flatten_structure(out)     # a dict (or nested lists and dicts) of outputs, as Keras allows
        if not flat or not all(is_symbolic(t) for t in flat):
            raise TypeError(f"call returned {type(out).__name__} for symbolic inputs, not the symbolic tensor(s) "
                            "of its layers")
        graph = Functional(list(inputs) if several else inputs[0], out,
                           name=layer.name, added_losses=trace.losses, traced=True)
        graph.data_inputs = tuple(sorted(trace.data_inputs))
    except Exception as e:          # whatever the user's call does on tensors it was not written for
        return None, f"its call could not be traced on symbolic tensors ({type(e).__name__}: {e})"
    return graph, None


def _graph(layer, spec, training):
    """The graph for ``spec`` and ``training``, traced once; None when the call cannot be traced (the reason is
    kept for the error ``backward`` raises)."""
    traces = layer.__dict__.get("_traces")
    if traces is None:
        traces = layer.__dict__["_traces"] = {}
    key = (spec, bool(training) if _takes_training(layer) else None)
    if key not in traces:
        traces[key] = _trace(layer, spec, bool(training))
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


def _first_only_spec(layer, input_shape):
    """The spec of a call on its first argument alone, of ``input_shape`` (a list of shapes: a list of tensors)."""
    several, shapes = _shapes_of(layer, input_shape)
    skeleton = ((("list", (_TENSOR,) * len(shapes)) if several else _TENSOR,), ())
    dtypes = tuple(_float_dtype(layer, layer.compute_dtype) for _ in shapes)
    return skeleton, tuple(shapes), dtypes, (None,) * len(shapes)


# ------------------------------------------------------------------ building
def build(layer, input_shape, own_build=None, spec=None, shapes=None, batch=None, trace=True):
    """Build ``layer`` for ``input_shape`` (its first argument's: one shape, or a list of one per tensor): its own
    ``build`` if it has one (``own_build``: a subclassed model's, unwrapped), given the shapes of the call's tensor
    arguments as Keras gives them (``shapes``: ``({argument: shape}, the call's argument names)``, the first
    argument's alone where not given; see ``layers/build_shapes.py``), then the trace of its call (for
    training=False) on arguments as ``spec`` describes them (its first argument alone where not given), which
    builds its sublayers.

    ``batch`` is the batch size of the call it is built for (None: unknown). As in Keras, where it is unknown the
    build takes the batch size a Sequential model built from data gives, or the stand-in one of the traced call
    of another composite layer it is first called in (``build_shapes.stand_in_batch``): its build config records
    it. The sublayers first called in the trace are built for that batch size, or Keras's stand-in one
    (``build_shapes.KERAS_TRACE_BATCH``). ``trace=False`` leaves the call untraced and the sublayers as they are
    (a script's ``model.build(shape)``, as in Keras); its first call traces it."""
    several, first = _shapes_of(layer, input_shape)
    given = input_shape[0] if several else input_shape
    if batch is None and given:
        batch = given[0]
    if batch is None:
        batch = layer.__dict__.get("_build_batch") or build_shapes.active_stand_in()
    if batch is not None:
        layer.__dict__["_build_batch"] = batch
    layer.__dict__["_trace_batch"] = batch
    function = own_build
    if function is None and not getattr(type(layer).build, "_library_build", False):
        function = getattr(type(layer).build, "__wrapped__", type(layer).build)
    if function is not None:
        by_argument, names = _first_argument_shape(layer, input_shape) if shapes is None else shapes
        kwargs = build_shapes.arguments(layer, function, by_argument, names)
        kwargs = build_shapes.with_stand_ins(build_shapes.with_batch(kwargs, batch))
        with name_scope(layer):
            if own_build is not None:
                own_build(layer, **kwargs)
            else:
                layer.build(**kwargs)
    layer.built = True
    if holds_input_specs(layer.input_spec):       # a Keras InputSpec the layer set itself stays
        layer._built_input_shape = first if several else first[0]
    else:
        layer.input_spec = first if several else first[0]
    if trace:
        _graph(layer, _first_only_spec(layer, input_shape) if spec is None else spec, False)
    else:
        layer.__dict__["_untraced_build"] = True


def first_batch(layer, batch):
    """A layer built without its trace (``build(..., trace=False)``) gets its first data, of ``batch`` samples a
    batch: its sublayers, built by the trace that follows, are built for that batch size, as Keras builds them by
    the first call."""
    if layer.__dict__.pop("_untraced_build", False) and batch is not None:
        layer.__dict__["_trace_batch"] = int(batch)


def _argument_names(layer):
    """``(positional, named)``: the names of the call's positional arguments, and of all its named ones."""
    signature = _signature(type(layer))
    parameters = [] if signature is None else list(signature.parameters.values())
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    named = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return positional, named


def _first_argument_shape(layer, input_shape):
    """The shapes a build for ``input_shape`` alone takes: ``({first argument: input_shape}, argument names)``."""
    positional, named = _argument_names(layer)
    return {positional[0] if positional else "inputs": input_shape}, named


def _call_shapes(layer, call):
    """``({argument: shape}, argument names)`` of ``call``: the shape (a structure of shapes for a list, tuple or
    dict) of each argument of the call's signature that holds tensors, in the signature's order; ``mask`` and what
    the catch-alls ``*args`` and ``**kwargs`` take are left out, as Keras leaves them. As in Keras, the shapes are
    the tensors' own: with their batch size on arrays, None on symbolic tensors (the graph traced after the build
    takes any batch size either way)."""
    positional, named = _argument_names(layer)
    leaves = iter([tuple(t.shape) for t in call.leaves])
    arguments = [(positional[i] if i < len(positional) else None, s) for i, s in enumerate(call.skeleton[0])]
    shapes = {}
    for name, skeleton in arguments + list(call.skeleton[1]):
        value = _rebuild(skeleton, leaves)        # every argument in turn: the leaves are in their order
        if name in named and name != "mask" and _count(skeleton):
            shapes[name] = value
    order = {name: i for i, name in enumerate(named)}
    return dict(sorted(shapes.items(), key=lambda item: order[item[0]])), named


def _ensure_built(layer, call, leaf_masks):
    """Build ``layer`` for the first call it gets, ``call`` reached by ``leaf_masks``: its own build (given the shapes
    of the call's tensors as Keras gives them), then the trace of its call on those arguments."""
    if layer.built:
        if call.leaves and not is_symbolic(call.leaves[0]) and len(call.leaves[0].shape):
            first_batch(layer, call.leaves[0].shape[0])
        return
    first = [_batchless(t.shape) for t in call.leaves[:call.first]]
    if call.leaves and not is_symbolic(call.leaves[0]) and len(call.leaves[0].shape):
        # a first call on arrays: Keras's build config keeps its batch size
        layer.__dict__.setdefault("_build_batch", int(call.leaves[0].shape[0]))
    own = type(layer).build
    build(layer, first if call.takes_list else first[0], spec=_spec(layer, call, leaf_masks),
          own_build=own.__wrapped__ if getattr(own, "_traced_build", False) else None,
          shapes=_call_shapes(layer, call), batch=call.leaves[0].shape[0] if call.leaves else None)


def _eager_on_zeros(layer, spec):
    """The outputs of the call run as written on zeros of the shapes of ``spec`` (batch 2), reached by all-True
    masks where ``spec`` has masks."""
    skeleton, shapes, dtypes, mask_shapes = spec
    zeros = [backend.to_device(numpy.zeros((2,) + tuple(s[1:]), dtype=d)) for s, d in zip(shapes, dtypes)]
    ones = [None if m is None else backend.to_device(numpy.ones((2,) + tuple(1 if d is None else d for d in m),
                                                                dtype=bool)) for m in mask_shapes]
    # A call on zeros, for its shapes: what it adds is no loss, and the metrics it updates stay as they are.
    with layer_losses.dropped_losses(), metric_updates.updates_suppressed():
        return _eager(layer, _Call(skeleton, zeros), False, ones)


def _shapes_from(layer, spec, graph, batch):
    """The output shapes (a list of one per output) of a call of ``spec`` whose first tensor has batch ``batch``,
    and whether there are several."""
    if graph is not None:
        outs = [(batch,) + tuple(t.shape[1:]) if t.shape and t.shape[0] is None else tuple(t.shape)
                for t in graph.outputs]
        return outs, graph._multi
    if any(d is None for s in spec[1] for d in s[1:]):
        raise ValueError(f"{_where(layer)}: its output shape for inputs of shape "
                         f"{[tuple(s) for s in spec[1]]} is unknown: {layer.__dict__.get('_trace_error')}. Give "
                         "the class a compute_output_shape method.")
    y = _eager_on_zeros(layer, spec)
    ys = flatten_structure(y)
    return [(batch,) + tuple(a.shape[1:]) for a in ys], isinstance(y, (list, tuple, dict))


def output_shape(layer, input_shape):
    """The output shape(s) for ``input_shape`` (its first argument's), from the traced graph (or, for a call that
    cannot be traced, from running it on zeros)."""
    several, shapes = _shapes_of(layer, input_shape)
    layer.ensure_built(input_shape)
    spec = _first_only_spec(layer, input_shape)
    outs, multi = _shapes_from(layer, spec, _graph(layer, spec, False), (input_shape[0] if several else input_shape)[0])
    return outs if multi else outs[0]


def node_output_shapes(layer, node, shapes):
    """The output shapes of ``node`` (a call of several arguments in a functional model) for ``shapes`` of its
    tensors (``node.call_leaves``)."""
    call = _Call(node.call_skeleton, [KerasTensor(s, dtype=t.dtype, name=t.name)
                                      for s, t in zip(shapes, node.call_leaves)])
    spec = _spec(layer, call, [None] * len(shapes))
    outs, _ = _shapes_from(layer, spec, _graph(layer, spec, False), shapes[0][0] if shapes else None)
    return outs


# ------------------------------------------------------------------ calls
def _eager(layer, call, training, leaf_masks):
    positional, keywords = call.arguments()
    if _takes_training(layer):
        keywords["training"] = training
    keywords.update(_mask_arguments(layer, call.skeleton, leaf_masks.__getitem__, keywords))
    with tracing(None), name_scope(layer):       # on arrays, even inside the trace of another layer's call
        return layer.call(*positional, **keywords)


def _leaf_masks(call, mask):
    """One mask (or None) per tensor of ``call``: ``mask`` is the first argument's, in its structure."""
    masks = [None] * len(call.leaves)
    if mask is not None:
        first = list(mask) if isinstance(mask, (list, tuple)) else [mask]
        masks[:len(first[:call.first])] = first[:call.first]
    return masks


def _run(layer, call, training, leaf_masks):
    """The call on arrays: the output as the graph gives it (an array, or a list of one per output), or the
    eager call's output; ``_output_mask`` is then the mask that reached the output (a list for several)."""
    call.leaves = _converted(layer, call.leaves)
    leaf_masks = [None if m is None else layer._as_input(m).astype(bool, copy=False) for m in leaf_masks]
    _ensure_built(layer, call, leaf_masks)
    spec = _spec(layer, call, leaf_masks)
    graph = _graph(layer, spec, training)
    if graph is None:
        # A call that needs its batch size (``ops.zeros((inputs.shape[0], units))``, as Keras traces it with the
        # static batch size of a model's Input) is traced again for the batch size it is called with.
        reason = layer.__dict__.get("_trace_error")
        batched = (spec[0], tuple((t.shape[0],) + s[1:] for t, s in zip(call.leaves, spec[1])), spec[2], spec[3])
        graph = _graph(layer, batched, training)
        if graph is None:
            layer.__dict__["_trace_error"] = reason
    layer.__dict__["_active_graph"] = graph
    if graph is None:
        y = _eager(layer, call, training, leaf_masks)
        layer.__dict__["_output_mask"] = [None] * len(y) if isinstance(y, (list, tuple)) else None
        return y
    several = len(graph._inputs) > 1
    y = graph.forward(call.leaves if several else call.leaves[0], training=training,
                      mask=leaf_masks if several else leaf_masks[0])
    layer.__dict__["_output_mask"] = graph.output_mask
    return y


def forward(layer, x, training, mask):
    """The call on arrays ``x`` (its first argument alone; a subclassed model's fit): see ``_run``."""
    call = _Call.of((_first_value(layer, x),), {}, _where(layer))
    return _run(layer, call, training, _leaf_masks(call, mask))


def _structured_output(layer, y):
    graph = layer.__dict__.get("_active_graph")
    if graph is not None:
        # a dict in the key order the call gives it, as Keras's call of a subclassed model returns it
        y = graph._structured(y if graph._multi else [y], symbolic=isinstance(graph._outputs_struct, dict))
    layer._activity_output = y if layer.activity_regularizer is not None else None
    if layer.activity_regularizer is not None:
        layer_losses.record_activity(layer, y)
    return y


def dispatch(layer, x, args, kwargs, training, mask):
    """``layer(x, *args, **kwargs)``: on arrays, its output in the structure its call gives it; on symbolic
    tensors, one node of the graph being made."""
    call, training, mask = _bind(layer, x, args, kwargs, training, mask)
    call.leaves = [t.current() if isinstance(t, Variable) else t for t in call.leaves]
    symbolic = [is_symbolic(t) for t in call.leaves]
    if any(symbolic) or is_symbolic(mask) or (isinstance(mask, (list, tuple)) and any(map(is_symbolic, mask))):
        if not all(symbolic):
            if active_trace() is None:
                raise TypeError(f"{_where(layer)} was called on a mix of symbolic tensors (from keras.Input) and "
                                "arrays; give symbolic tensors only.")
            # Arrays in the call of a layer being traced: constants of its graph.
            call.leaves = [t if s else traced_constant(t) for t, s in zip(call.leaves, symbolic)]
        return symbolic_call(layer, call, training=training, mask=mask)
    y = _run(layer, call, bool(training), _leaf_masks(call, mask))
    return _structured_output(layer, y)


def node_call(layer, node, values, masks, training):
    """The call of a node of several arguments in a functional model, on the arrays ``values`` and masks
    ``masks`` of its tensors (dicts by tensor)."""
    call = _Call(node.call_skeleton, [values[t] for t in node.call_leaves])
    explicit = node.kwargs.get("mask")
    leaf_masks = [edge_mask(node, t, masks.get) for t in node.call_leaves]
    if explicit is not None:
        first = explicit if isinstance(explicit, (list, tuple)) else [explicit]
        leaf_masks[:call.first] = [None if m is None else values[m] for m in first][:call.first]
    y = _run(layer, call, bool(training), leaf_masks)
    return _structured_output(layer, y)


def symbolic_call(layer, call, training=None, mask=None):
    """``layer(...)`` on symbolic tensors (in a functional model, or in the call of another composite layer): one
    node for the whole layer, with outputs of the shapes its traced graph gives, and their masks."""
    check_symbolic_mask(mask, _where(layer))
    leaf_masks = [t._mask for t in call.leaves]
    if mask is not None:
        leaf_masks[:call.first] = _leaf_masks(call, mask)[:call.first]
    _ensure_built(layer, call, leaf_masks)
    spec = _spec(layer, call, leaf_masks)
    graph = _graph(layer, spec, bool(training))
    for i in getattr(graph, "data_inputs", ()):
        require_data(call.leaves[i], f"argument tensor #{i} (which a loss in its call takes as y_true or "
                     "sample_weight)", _where(layer))
    own_shape = type(layer).compute_output_shape
    if graph is None and call.only_first and not own_shape.__module__.startswith("gpu_dl."):
        first = [tuple(t.shape) for t in call.leaves]       # the class says its output shape itself
        shape = layer.compute_output_shape(first if call.takes_list else first[0])
        multi = isinstance(shape, list)
        outs = [tuple(s) for s in shape] if multi else [tuple(shape)]
    else:
        outs, multi = _shapes_from(layer, spec, graph, call.leaves[0].shape[0] if call.leaves else None)
    dtypes = [t.dtype for t in graph.outputs] if graph is not None else [layer.compute_dtype] * len(outs)
    outputs = [KerasTensor(s, dtype=d) for s, d in zip(outs, dtypes)]
    positional, keywords = call.arguments()
    if training is not None:
        keywords["training"] = bool(training)
    if mask is not None:
        keywords["mask"] = mask
    node = Node(layer, args=tuple(positional), kwargs=keywords, outputs=outputs)
    if not call.only_first:         # the node runs through node_call, which takes all its tensors
        node.call_skeleton, node.call_leaves = call.skeleton, list(call.leaves)
    carried = [masks.spec_of(t._mask) for t in graph.outputs] if graph is not None else [None] * len(outputs)
    masks.set_node_masks(node, carried)
    return list(outputs) if multi else outputs[0]


def carried_masks(layer, node, mask_of):
    """The masks reaching the outputs of ``layer``'s graph for the call of ``node`` whose tensors have the masks
    ``mask_of(tensor)`` (a model holding the layer asks, for the masks of its own outputs)."""
    skeleton = getattr(node, "call_skeleton", None)
    if skeleton is None:
        call = _Call.of(node.args[:1], {}, _where(layer))
    else:
        call = _Call(skeleton, node.call_leaves)
    leaf_masks = [mask_of(t) for t in call.leaves]
    explicit = node.kwargs.get("mask")
    if explicit is not None:
        leaf_masks[:call.first] = _leaf_masks(call, explicit)[:call.first]
    graph = _graph(layer, _spec(layer, call, leaf_masks), bool(node.kwargs.get("training")))
    if graph is None:
        return [None] * len(node.outputs)
    return [masks.spec_of(t._mask) for t in graph.outputs]


def untrainable_message(layer):
    reason = layer.__dict__.get("_trace_error") or "its call has not run on arrays yet"
    return (f"{_where(layer)} cannot be trained through: {reason}. gpu_dl has no automatic differentiation; it "
            "trains a Layer subclass without a backward method by tracing its call into a graph of layer calls. "
            "Build the call from gpu_dl layers, gpu_dl.ops functions and the operators + - * / ** @ and indexing "
            "on symbolic tensors and on the layer's weights (sublayers such as Dense, or variables made with "
            "add_weight), or give the class a backward(dy) method that returns the input gradient and sets each "
            "weight's .grad.")


def backward(layer, dy, input_gradient=None):
    """The backward pass of the last call through its graph (the gradient of each of its tensors, a list for
    several); a NotImplementedError when it ran eagerly."""
    graph = layer.__dict__.get("_active_graph")
    if graph is None:
        raise NotImplementedError(untrainable_message(layer))
    wanted = layer.input_gradient_wanted if input_gradient is None else input_gradient
    if gradients.in_pass():         # inside a model's backward: its pass
        return graph.backward(dy, input_gradient=wanted)
    # Called by hand, the backward of a composite layer is one gradient pass of its weights (layers/gradients.py).
    with gradients.gradient_pass(layer.trainable_weights):
        return graph.backward(dy, input_gradient=wanted)


def active_graph(layer):
    return layer.__dict__.get("_active_graph") if isinstance(layer, Layer) and layer._composite else None
