"""Models used as layers of other models: the checks that keep a tree of models sound, and a call's state.

A model is a ``Layer`` (``model.py``), so ``Sequential([base, Dense(10)])``
and ``base(x)`` on a symbolic tensor put one model inside another. The outer
model treats it as one layer: one row in its summary, one node in its graph,
one entry (with its own layers inside) in a saved file.

One layer may be in two places of one tree (inside an inner model and in the
outer one, or in two inner models), as in Keras: its weights are listed and
saved once, each call keeps its own backward state (``shared_calls``), and its
gradients are summed over its places (the backward is one gradient pass,
``layers/gradients.py``), as for a layer called twice in one functional graph.

What would make such a tree unsound is refused when it is made, before
anything changes:

- a model inside itself, however deep (a cycle: its forward would never end);
- in a ``Sequential``, as in Keras, a model of several inputs anywhere but as
  its very first layer (the Sequential then takes those inputs), any layer
  after a model of several outputs (which can only be the last: the
  Sequential then gives those outputs), and a built model whose input does
  not fit the output of the layers before it.

A model that calls one inner model several times (or a layer that is also
inside one of its models) keeps, for each such call, what that call's
backward needs (``call_state``): the inner model's own per-call records and,
recursively, its layers' saved arrays.
"""
from __future__ import annotations

import weakref

from ..layers.base import Layer
from ..layers.core import InputLayer
from ..layers.symbolic import flatten_structure

# What a layer's call keeps for its backward (and, for a model, what its forward records for its backward:
# the per-call state of its shared layers, the outputs of its layers with activity regularizers, the shapes
# of several outputs, the calls that added losses and the added losses' values). Kept per call of a layer or
# model that shares a layer with another call of the tree.
CALL_STATE = ("_saved", "_activity_output", "_preactivation", "_unbatched",
              "_node_states", "_activity", "_nested_activity", "_output_meta", "_active_graph", "_output_mask",
              "_loss_nodes", "_added_values", "_call_activity", "_remat_call")


def is_model(layer) -> bool:
    from .model import Model
    return isinstance(layer, Model)


def held_model(layer):
    """The model ``layer`` is, or the model it wraps (``TimeDistributed(model)``), or None: the models a tree of
    models walks into."""
    if is_model(layer):
        return layer
    wrapped = layer.__dict__.get("layer")
    return wrapped if getattr(type(layer), "takes_models", False) and is_model(wrapped) else None


def members(model) -> list:
    """What runs in ``model``: its layers, and in a functional model the arithmetic operations between them too
    (``_operations``; they keep per-call state like layers, and the summary lists them)."""
    operations = getattr(model, "_operations", None)
    return list(operations) if operations is not None else list(model.layers)


def describe(model) -> str:
    return f"model '{model.name}' ({type(model).__name__})"


def _sentence(text):
    return text[:1].upper() + text[1:]


def check_sequential_place(owner, layer):
    """A ValueError when ``layer`` cannot be the next layer of ``owner``, a Sequential: each layer there takes the
    one tensor the layer before it gives, so a model of several inputs can only be the very first layer (the
    Sequential takes its inputs) and a model of several outputs only the last (it gives them), as in Keras."""
    last = owner._layers[-1] if owner._layers else None
    if last is not None and getattr(last, "_output_count", 1) > 1:
        raise ValueError(f"Sequential '{owner.name}' ends with {describe(last)}, which gives {last._output_count} "
                         f"outputs: a model of several outputs can only be a Sequential's last layer, as in Keras, so "
                         f"'{layer.name}' cannot follow it. Call them in a functional model instead: outputs = "
                         "layer(model(inputs)[i]); keras.Model(inputs, outputs).")
    count = getattr(layer, "_input_count", 1)
    if count > 1 and (last is not None or owner._input_layer is not None):
        before = f"layer '{last.name}'" if last is not None else f"the Input '{owner._input_layer.name}'"
        raise ValueError(f"{_sentence(describe(layer))} takes {count} inputs: a model of several inputs can only be "
                         f"a Sequential's very first layer (the Sequential then takes its inputs), as in Keras; in "
                         f"Sequential '{owner.name}' it would follow {before}, which gives one tensor. Call it in "
                         "a functional model instead: outputs = model([a, b]); keras.Model([a, b], outputs).")


def flat_outputs(y):
    """What a layer's call on arrays gave, as the model holding it passes it on: the array itself for one output, a
    list of one array per output for several. A model gives its outputs in the structure it was made with (a dict,
    even of one; a tuple; nested, as an RNN of several cells nests its states per cell): its arrays go flat, in
    Keras's order (a dict's values by sorted key), the order of the model's outputs."""
    if isinstance(y, dict):
        y = flatten_structure(y)
        return y[0] if len(y) == 1 else y
    return flatten_structure(y) if isinstance(y, (list, tuple)) else y


def check_tree(owner, layers, held=()):
    """A ValueError when ``owner`` holding ``layers`` makes a cycle (a model inside itself). ``held``: the ids of
    the layers ``owner`` holds directly (those among ``layers`` aside), whose trees are not walked: plain layers.
    Walks the tree without recursion, each model once."""
    layers = list(layers)
    walked = {id(layer) for layer in layers}
    holder = {i: owner for i in held if i not in walked}
    stack = [(owner, layers)]
    while stack:
        container, items = stack.pop()
        for layer in items:
            if layer is owner:
                inside = "" if container is owner else f": it is inside {describe(container)}, which it would hold"
                raise ValueError(f"{_sentence(describe(owner))} cannot hold itself{inside} (a cycle).")
            if isinstance(layer, InputLayer):
                continue
            if id(layer) in holder:
                continue        # in two places of the tree, as Keras allows: its tree was walked once
            holder[id(layer)] = container
            if is_model(layer):
                stack.append((layer, layer.layers))
            elif held_model(layer) is not None:
                # A wrapped model is held where its wrapper is (TimeDistributed(model) owns no other layer).
                stack.append((container, [layer.layer]))


def check_fed_shape(owner, model, shape):
    """A ValueError naming both when ``model``, built, cannot take the ``shape`` the layers of ``owner`` before
    it give."""
    try:
        model.check_input_shape(shape)
    except ValueError as e:
        raise ValueError(f"Sequential '{owner.name}': {describe(model)} cannot follow its layers, which give shape "
                         f"{tuple(shape)}: {e}") from None


# ------------------------------------------------------------ models that hold a model
def note_holder(model, holder):
    """Record that ``holder`` holds ``model`` (weakly), so that a change to ``model``'s layers reaches it."""
    holders = model.__dict__.get("_holders")
    if holders is None:
        holders = model.__dict__["_holders"] = weakref.WeakSet()
    holders.add(holder)


def structure_changed(model):
    """``model``'s layers changed (a Sequential's add or pop): the models holding it, and theirs, drop the
    output shapes they keep (a Sequential keeps its stack's, to add layers in constant time)."""
    stack, seen = [model], set()
    while stack:
        for holder in list(stack.pop().__dict__.get("_holders", ())):
            if id(holder) not in seen:
                seen.add(id(holder))
                getattr(holder, "_forget_shapes", lambda: None)()
                stack.append(holder)


# ------------------------------------------------------------ layers in several places
def tree_ids(layer) -> set:
    """The ids of ``layer`` and of every layer inside it (through the models it is or wraps), itself included."""
    found, stack = set(), [layer]
    while stack:
        item = stack.pop()
        if id(item) in found:
            continue
        found.add(id(item))
        model = held_model(item)
        if model is not None:
            if model is not item:
                found.add(id(model))
            stack.extend(members(model))
    return found


def shared_calls(layers):
    """Of ``layers`` (one entry per call, a layer called twice listed twice), those whose call shares a layer
    with another call: a layer called twice, or one inside a model and also elsewhere in the tree (as Keras
    allows). Their calls keep their own backward state (``call_state``)."""
    trees, counts = {}, {}
    for layer in layers:
        tree = trees.get(id(layer))
        if tree is None:
            tree = trees[id(layer)] = (layer, tree_ids(layer))
        for i in tree[1]:
            counts[i] = counts.get(i, 0) + 1
    return {layer for layer, ids in trees.values() if any(counts[i] > 1 for i in ids)}


# ------------------------------------------------------------ per-call state
def call_state(layer):
    """The references a layer's last call left for its backward: its own, those of the layers it wraps, and for
    a model those of its layers."""
    own = {key: layer.__dict__[key] for key in CALL_STATE if key in layer.__dict__}
    inner = {key: call_state(value) for key, value in layer.__dict__.items() if isinstance(value, Layer)}
    if is_model(layer):
        inner.update({index: call_state(sub) for index, sub in enumerate(members(layer))})
    return own, inner


def restore_call_state(layer, state):
    own, inner = state
    layer.__dict__.update(own)
    layers = members(layer) if is_model(layer) else None
    for key, sub in inner.items():
        restore_call_state(layers[key] if isinstance(key, int) else layer.__dict__[key], sub)
