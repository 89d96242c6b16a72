"""Id checks made on the host for the layers a model hands its inputs to as they are.

Layers that take integer ids (``Embedding``, ``CategoryEncoding``, ``IntegerLookup`` without OOV indices) check
them on the device in each call, which costs a device-to-host read-back (``layers/id_checks.py``). When such a
layer takes a model input unchanged, the loop checks the host arrays instead: whole arrays once, before any batch
runs (a refused fit changes no weight and calls no callback), a streamed batch when it arrives, before its device
copy. The steps then mark the device batch as checked, and those layers skip their read-back.

The layers found: a Sequential's first layer; in a functional model each layer called on an Input; and, through a
model among those, the layers it hands that input to. Any other call (ids computed by earlier layers, or a
wrapper such as TimeDistributed) keeps the check on the device.
"""
from __future__ import annotations

from ..layers import id_checks


def id_layers(model):
    """``(input position, layer)`` for each id-checking layer that ``model`` hands one of its inputs unchanged."""
    found = []
    for position, layer, inner_position, kwargs in model._input_calls():
        if callable(getattr(layer, "check_host_ids", None)):
            reads_ids = getattr(layer, "reads_ids", None)
            if reads_ids is not None and not reads_ids(kwargs):   # a call of other values (a reverse projection)
                continue
            found.append((position, layer))
        elif callable(getattr(layer, "_input_calls", None)):       # a model among the layers
            found += [(position, inner) for p, inner in id_layers(layer) if p == inner_position]
    return found


def _input(x, position):
    return x[position] if isinstance(x, tuple) else x


def check(model, x):
    """Raise the layers' own ValueError when the host inputs ``x`` (an array, or a tuple of one per input) hold
    ids one of those layers refuses."""
    for position, layer in id_layers(model):
        layer.check_host_ids(_input(x, position))


def prechecked(model, x, checked=True):
    """A context in which the layers found skip the device check of the device batch ``x``, made from host arrays
    that ``check`` passed; with ``checked=False``, a context that changes nothing."""
    return id_checks.marked([(layer, _input(x, position)) for position, layer in id_layers(model)] if checked else [])
