"""Symbolic-tensor helpers of ``keras.utils``: ``is_keras_tensor`` and ``get_source_inputs``."""
from __future__ import annotations

from ..layers.symbolic import KerasTensor


def is_keras_tensor(x):
    """Whether ``x`` is a symbolic tensor (from ``keras.Input`` or a layer called on one)."""
    return isinstance(x, KerasTensor)


def get_source_inputs(tensor):
    """The ``Input`` tensors ``tensor`` is computed from, in the order Keras lists them (depth first, left to
    right, each once). A value that is not a symbolic tensor comes back as it is, as in Keras."""
    if not hasattr(tensor, "_keras_history"):
        return tensor
    if tensor._keras_history is None:
        return [tensor]
    sources, seen_nodes = [], set()
    stack = [tensor]        # walked without recursion: a deep graph must not reach Python's recursion limit
    while stack:
        current = stack.pop()
        history = current._keras_history
        if history is None:
            if all(current is not t for t in sources):
                sources.append(current)
            continue
        node = history.operation._inbound_nodes[history.node_index]
        if node.is_input:
            for t in node.outputs:
                if all(t is not s for s in sources):
                    sources.append(t)
            continue
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        stack.extend(reversed(node.input_tensors))
    return sources
