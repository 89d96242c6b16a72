"""Keras 3's rematerialisation (gradient checkpointing): ``gpu_dl.RematScope`` and ``gpu_dl.remat``.

A layer's training call keeps what its backward needs (its ``_saved`` state: inputs, pre-activations, masks, ...).
A rematerialised layer keeps only the arguments of its call: after the call its state is dropped, and its
``backward`` first runs the call again on those arguments (which rebuilds the state) and then back-propagates as
usual. The gradients are those of the plain layer exactly: the second call reads the same weights, draws the same
random numbers (the layer's seed generators and non-trainable weights are read as they were before the first call,
through a ``StatelessScope`` that also keeps the second call from moving them again: a BatchNormalization's moving
statistics move once) and adds no second loss.

``RematScope(mode="full", output_size_threshold=1024, layer_names=None)`` chooses, as Keras's, the layers it applies
to among those made inside it: ``"full"`` all of them; ``"larger_than"`` those whose output has more than
``output_size_threshold`` elements per call (the batch axis counted, as Keras counts a known batch);
``"list_of_layers"`` those named in ``layer_names``; ``"activations"`` those with an ``activation`` (Keras
recomputes the activation alone; gpu_dl's layers fuse it with the rest of their call, so the whole call is
recomputed); ``None``: none.
``remat(layer)`` gives a function that calls ``layer`` rematerialised; ``remat(function)`` of anything else gives
the function as it is: gpu_dl has no tape of array operations to rematerialise (``gpu_dl.ops`` on arrays keep
nothing for a backward).

It applies to layers with their own backward: the call of a composite layer (traced into a graph) and a model used
as a layer run as without it.
"""
from __future__ import annotations

import contextvars
import functools
import math
from collections import namedtuple

from . import layer_losses
from .scopes import StatelessScope

RematMode = namedtuple("RematMode", ["mode", "output_size_threshold", "layer_names"])
MODES = ("full", "activations", "larger_than", "list_of_layers", None)

_SCOPES = contextvars.ContextVar("gpu_dl_remat_scopes", default=())
# The layer a ``remat(layer)`` call is under way for, or None.
_FORCED = contextvars.ContextVar("gpu_dl_remat_forced", default=None)


class RematScope:
    """``RematScope(mode="full", output_size_threshold=1024, layer_names=None)``: see the module docstring."""

    def __init__(self, mode="full", output_size_threshold=1024, layer_names=None):
        if mode not in MODES:
            raise ValueError(f"Invalid mode '{mode}'. Supported modes are: 'full', 'activations', 'larger_than', "
                             "'list_of_layers', or  None.")
        if not isinstance(output_size_threshold, int) or isinstance(output_size_threshold, bool):
            raise TypeError(f"RematScope: `output_size_threshold` must be an int, got {output_size_threshold!r:.100}.")
        if isinstance(layer_names, str):
            raise TypeError("RematScope: `layer_names` must be a list of layer names, got a string; write "
                            f"layer_names=[{layer_names!r}].")
        self.mode = mode
        self.output_size_threshold = output_size_threshold
        self.layer_names = list(layer_names or [])
        self._token = None

    def __enter__(self):
        self._token = _SCOPES.set(_SCOPES.get() + (self,))
        return self

    def __exit__(self, *exc_info):
        _SCOPES.reset(self._token)


def get_current_remat_mode():
    """The ``RematMode`` of the innermost ``RematScope`` open, or None (Keras's ``get_current_remat_mode``)."""
    scopes = _SCOPES.get()
    if not scopes:
        return None
    scope = scopes[-1]
    return RematMode(scope.mode, scope.output_size_threshold, scope.layer_names)


def remat(f):
    """``f`` rematerialised: for a layer, a function that calls it so that its activations are recomputed in its
    backward instead of kept; any other function as it is (see the module docstring)."""
    from .base import Layer     # it imports this module at its top
    if not callable(f):
        raise TypeError(f"remat: expected a layer or a function, got {f!r:.100} of type {type(f).__name__}.")
    if not isinstance(f, Layer):
        return f

    @functools.wraps(type(f).__call__)
    def rematerialized(*args, **kwargs):
        token = _FORCED.set(f)
        try:
            return f(*args, **kwargs)
        finally:
            _FORCED.reset(token)
    return rematerialized


def applies(layer, mode):
    """Whether ``layer``'s training call is rematerialised, before its output is known (``"larger_than"`` is
    decided after, by ``large_enough``)."""
    if _FORCED.get() is layer:
        return True
    if mode is None or mode.mode is None:
        return False
    if mode.mode == "list_of_layers":
        return layer.name in mode.layer_names
    if mode.mode == "activations":
        return getattr(layer, "activation", None) is not None
    return True


def large_enough(mode, y):
    if _FORCED.get() is not None or mode.mode != "larger_than":
        return True
    outputs = y if isinstance(y, (list, tuple)) else [y]
    return sum(math.prod(o.shape) for o in outputs if hasattr(o, "shape")) > mode.output_size_threshold


def _state_variables(layer):
    """The variables a training call reads and may move (seed generators' states, non-trainable weights), of
    ``layer`` and its sublayers, each once."""
    found = {id(v): v for v in layer.non_trainable_weights}
    stack = [layer]
    while stack:
        current = stack.pop()
        for generator in current._seed_generators:
            found.setdefault(id(generator.state), generator.state)
        stack.extend(current._sublayers())
    return list(found.values())


def _clear_state(state):
    """The state for the backward dropped from a layer's call state (``nested.call_state``'s structure): its
    ``_saved``, and its sublayers'. What the loop reads between the forward and the backward (the pre-activation
    of a softmax fused into the loss, the output an activity penalty is computed from) stays."""
    own, inner = state
    return {key: None for key in own if key == "_saved"}, {key: _clear_state(sub) for key, sub in inner.items()}


def call(layer, function, x, arguments):
    """``function(x, **arguments)`` (the layer's call under its policy), rematerialised: the state it keeps for the
    backward is dropped, and the layer's ``backward`` recomputes it first."""
    from ..models import nested     # the tree of call states is a level above; import late
    before = [(v, v._stored().copy()) for v in _state_variables(layer)]
    y = function(x, **arguments)
    if not large_enough(layer._remat_mode, y):
        layer.__dict__["_remat_call"] = None
        return y
    nested.restore_call_state(layer, _clear_state(nested.call_state(layer)))
    layer.__dict__["_remat_call"] = (function, x, arguments, before)
    if layer.__dict__.get("backward") is None:
        layer.__dict__["backward"] = functools.partial(_backward, layer)
    return y


def _backward(layer, dy, **kwargs):
    # (per call of a layer called several times: the functional model keeps and restores it with the call's state)
    pending = layer.__dict__.get("_remat_call")
    layer.__dict__["_remat_call"] = None
    if pending is not None:
        function, x, arguments, before = pending
        # The call again, as the first one ran: the same seeds and statistics, its updates and losses not kept.
        with StatelessScope(before), layer_losses.dropped_losses():
            function(x, **arguments)
    return type(layer).backward(layer, dy, **kwargs)


def kept_bytes(*layers):
    """The bytes of the arrays ``layers`` keep for their backward now (their call states and, rematerialised, the
    arguments of their calls), each array once (a layer's output is often the next one's input): what
    rematerialisation saves shows here."""
    from ..models import nested
    seen, total = set(), 0
    stack = [nested.call_state(layer) for layer in layers]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "nbytes") and hasattr(item, "shape"):
            if id(item) not in seen:
                seen.add(id(item))
                total += int(item.nbytes)
        elif hasattr(type(item), "__slots__"):      # a record of saved arrays (ops/normalization.Statistics)
            stack.extend(getattr(item, name, None) for name in type(item).__slots__)
    return total
