"""Keras 3's top-level scopes: ``gpu_dl.name_scope``, ``gpu_dl.StatelessScope``, ``gpu_dl.SymbolicScope``.

``name_scope(name)`` opens a sub-namespace for variable paths, as Keras's does: a variable made inside it (by a
layer built inside it, or ``gpu_dl.Variable`` itself) has a path under it (``"block/dense/kernel"``,
``"block/w"``). Layers open their own scope while they are built (``base.name_scope``); both kinds share one stack.

``StatelessScope(state_mapping=None, collect_losses=False, initialize_variables=True)`` is Keras's scope in which
no variable changes: ``state_mapping`` (``(variable, value)`` pairs) gives the values variables read as inside
(``variable.value``, and so every layer's call), and an update of a variable inside (``assign``, ``assign_add``,
``assign_sub``, the updates a traced call records, the moving statistics of a normalization layer, a seed
generator's state) is recorded in the scope instead of written: ``scope.get_current_value(variable)`` gives it
(None for a variable neither mapped nor updated). With ``collect_losses`` the losses the layers' calls add inside
are also listed in ``scope.losses`` (they are still the layers' ``losses``, as gpu_dl trains from those).
``initialize_variables`` is taken for Keras's signature: gpu_dl's variables hold their values from the start.
An optimizer's step writes the variables in place whatever the scope (its ``stateless_apply`` gives new values
without changing them).
``Layer.stateless_call`` runs a layer's call in such a scope (``stateless_call`` here).

``SymbolicScope()`` marks the symbolic stage, as Keras's: ``in_symbolic_scope()`` says whether one is open.
"""
from __future__ import annotations

import contextvars

import numpy

from .. import backend

# The innermost StatelessScope / SymbolicScope open, or None.
_STATELESS = contextvars.ContextVar("gpu_dl_stateless_scope", default=None)
_SYMBOLIC = contextvars.ContextVar("gpu_dl_symbolic_scope", default=None)


class name_scope:
    """``name_scope(name, caller=None, deduplicate=True, override_parent=None)``: Keras's context manager.

    ``caller`` is the object opening the scope; with ``deduplicate`` a scope of the same name and caller as the
    innermost one opens nothing more. ``override_parent`` is a path the scope starts from, in place of the scopes
    open around it."""

    def __init__(self, name, caller=None, deduplicate=True, override_parent=None):
        if not isinstance(name, str) or "/" in name:
            raise ValueError(f"Argument `name` must be a string and cannot contain character `/`. Received: "
                             f"name={name}")
        if override_parent is not None and not isinstance(override_parent, str):
            raise TypeError(f"name_scope: `override_parent` must be a path (a string) or None, got "
                            f"{override_parent!r:.100}.")
        self.name = name
        self.caller = caller
        self.deduplicate = deduplicate
        self.override_parent = override_parent
        self._token = None

    def __enter__(self):
        from . import base      # it imports this module at its top
        scopes = base._NAME_SCOPES.get()
        if self.deduplicate and scopes and self.caller is not None and scopes[-1][1] is self.caller and \
                scopes[-1][0] == self.name:
            return self
        self._token = base._NAME_SCOPES.set(scopes + ((self.name, self.caller, self.override_parent),))
        return self

    def __exit__(self, *exc_info):
        if self._token is not None:
            from . import base
            base._NAME_SCOPES.reset(self._token)
            self._token = None


def current_path():
    """The path of the open name scopes (``"outer/inner"``), or ``""``, as Keras's ``current_path``."""
    from . import base
    return "/".join(base.scope_names())


class _Scope:
    """A scope held in ``_variable`` while it is open; scopes nest, the one open before comes back on exit."""

    _variable = None

    def __enter__(self):
        self._token = self._variable.set(self)
        return self

    def __exit__(self, *exc_info):
        self._variable.reset(self._token)


class StatelessScope(_Scope):
    """``StatelessScope(state_mapping=None, collect_losses=False, initialize_variables=True)``: see the module
    docstring."""

    _variable = _STATELESS

    def __init__(self, state_mapping=None, collect_losses=False, initialize_variables=True):
        from .base import Variable
        self.collect_losses = bool(collect_losses)
        self.initialize_variables = bool(initialize_variables)
        self.losses = []
        self.state_mapping = {}
        for pair in state_mapping or ():
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"StatelessScope: `state_mapping` must be a list of (variable, value) pairs, got "
                                 f"{pair!r:.100}.")
            variable, value = pair
            if not isinstance(variable, Variable):
                raise ValueError(f"Invalid reference variable in StatelessScope: all keys in argument `mapping` must "
                                 f"be Variable instances. Received instead: {variable!r:.100}")
            own = variable._value
            if isinstance(value, Variable):
                value = value._value
            # a copy on the variable's device and of its dtype: updates inside write into it, never the caller's
            value = backend.array_module(own).array(backend.to_numpy(value) if isinstance(own, numpy.ndarray)
                                                    else value, dtype=own.dtype)
            if tuple(value.shape) != tuple(own.shape):
                raise ValueError(f"Invalid variable value in StatelessScope: all values in argument `mapping` must "
                                 f"be tensors with a shape that matches the corresponding variable shape. For "
                                 f"variable {variable!r}, received invalid value with shape {tuple(value.shape)}.")
            self.state_mapping[id(variable)] = value

    def add_loss(self, loss):
        self.losses.append(loss)

    def add_update(self, update):
        """Record ``(variable, value)``: the variable's value inside the scope from now on."""
        variable, value = update
        self.state_mapping[id(variable)] = value

    def get_current_value(self, variable):
        """The variable's value in the scope (mapped or updated inside), or None."""
        return self.state_mapping.get(id(variable))


def stateless_call(layer, trainable_variables, non_trainable_variables, args, kwargs, return_losses=False):
    """Keras's ``Layer.stateless_call``: ``layer(*args, **kwargs)`` with its variables read as
    ``trainable_variables`` and ``non_trainable_variables`` (values in the order of the layer's
    ``trainable_variables`` and ``non_trainable_variables``: the latter with its SeedGenerators' states), none of
    them changed. Returns ``(outputs, non_trainable_values)``, the values the call left its non-trainable variables
    at (moving statistics, seed states), and with ``return_losses`` the losses the call added (and the weights'
    penalties, computed on the values given) as a third item."""
    name = type(layer).__name__
    if not layer.built:
        raise ValueError(f"To call stateless_call, {name} must be built (i.e. its variables must have been already "
                         "created). You can build it by calling it on some data.")
    trainable, non_trainable = layer.trainable_variables, layer.non_trainable_variables
    for given, own, what in ((trainable_variables, trainable, "trainable"),
                             (non_trainable_variables, non_trainable, "non_trainable")):
        if not isinstance(given, (list, tuple)) or len(given) != len(own):
            length = len(given) if isinstance(given, (list, tuple)) else type(given).__name__
            raise ValueError(f"Argument `{what}_variables` must be a list of tensors corresponding 1:1 to "
                             f"{name}().{what}_variables. Received list with length {length}, but expected "
                             f"{len(own)} variables.")
    mapping = list(zip(trainable, trainable_variables)) + list(zip(non_trainable, non_trainable_variables))
    with StatelessScope(mapping, collect_losses=return_losses) as scope:
        outputs = layer(*args, **kwargs)
        losses = list(layer.losses) if return_losses else None
    values = [scope.get_current_value(v) for v in non_trainable]
    return (outputs, values, losses) if return_losses else (outputs, values)


class SymbolicScope(_Scope):
    """``SymbolicScope()``: marks the symbolic stage, as Keras's."""

    _variable = _SYMBOLIC


def get_stateless_scope():
    """The innermost ``StatelessScope`` open, or None."""
    return _STATELESS.get()


def in_stateless_scope():
    return _STATELESS.get() is not None


def get_symbolic_scope():
    return _SYMBOLIC.get()


def in_symbolic_scope():
    return _SYMBOLIC.get() is not None
