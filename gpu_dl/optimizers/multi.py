"""Keras 3's ``MultiOptimizer`` and ``OptimizerMap``: different optimizers for different variables.

``MultiOptimizer(optimizer_map)`` sends each trainable variable to one inner optimizer, chosen by
``optimizer_map(variable)``: an ``OptimizerMap`` (the variable's ``path`` matched against its keys, exactly, then as
regular expressions with ``re.fullmatch``; unmatched variables go to its ``default_optimizer``) or any callable
returning an optimizer. Each step hands every inner optimizer its own (gradient, variable) pairs, so each variable
is updated exactly as its optimizer alone would update it, on the GPU by that optimizer's own kernels.

As in Keras: ``optimizers`` lists the inner optimizers (the map's values in order, then its default, then any
a callable returns first at build time); ``iterations`` counts the MultiOptimizer's steps while each inner
optimizer counts its own; the MultiOptimizer has no learning rate (reading or setting one is an AttributeError:
set it on the inner optimizers); ``loss_scale_factor`` is passed down to every inner optimizer. Its variables, in
Keras's order and as its files hold them: its own ``iteration`` and ``learning_rate`` (0.0), then each inner
optimizer's (their iterations, learning rates and slots).
"""
from __future__ import annotations

import re
from collections.abc import MutableMapping

import numpy

from .. import backend
from ..backend.user_warnings import warn
from .base import ITERATION_DTYPE, Optimizer, RateVariable


def _serialize(optimizer):
    from . import serialize      # the catalogue imports this module
    return serialize(optimizer)


def _deserialize(config, custom_objects=None):
    from . import deserialize
    return deserialize(config, custom_objects=custom_objects)


def _refuse_nested(optimizer, where):
    from .loss_scale import LossScaleOptimizer
    if isinstance(optimizer, LossScaleOptimizer):
        raise ValueError(f"{where}: a LossScaleOptimizer cannot be used inside a MultiOptimizer.")
    if isinstance(optimizer, MultiOptimizer):
        raise ValueError(f"{where}: a MultiOptimizer cannot be used inside a MultiOptimizer.")


class OptimizerMap(MutableMapping):
    """Variable paths (or regular expressions over them) to optimizers, with a ``default_optimizer`` for the
    variables no key matches (Keras 3's ``keras.optimizers.OptimizerMap``).

    ``optimizer_map["encoder/.*"] = Adam()`` sends every variable whose path fully matches ``encoder/.*`` to that
    Adam; ``optimizer_map[path]`` gives a path's optimizer (an exact key first, then the one key matching it as a
    pattern; two matching keys are a ValueError); ``optimizer_map(variable)`` does so for ``variable.path``.
    """

    def __init__(self, default_optimizer, optimizer_map=None):
        if not isinstance(default_optimizer, Optimizer):
            raise TypeError(f"OptimizerMap: `default_optimizer` must be an Optimizer instance, got "
                            f"{default_optimizer!r:.200}.")
        if optimizer_map is not None and not isinstance(optimizer_map, dict):
            raise TypeError(f"OptimizerMap: `optimizer_map` must be a dict of variable paths (or patterns) to "
                            f"optimizers, got {optimizer_map!r:.200}.")
        self._default_optimizer = default_optimizer
        self._optimizer_map = {}
        for key, optimizer in (optimizer_map or {}).items():
            self[key] = optimizer

    @property
    def default_optimizer(self):
        return self._default_optimizer

    def __getitem__(self, key):
        if key in self._optimizer_map:
            return self._optimizer_map[key]
        matching = [pattern for pattern in self._optimizer_map if re.fullmatch(pattern, key)]
        if len(matching) > 1:
            raise ValueError(f"Multiple optimizers assigned to variable {key}: the keys {matching} all match it.")
        return self._optimizer_map[matching[0]] if matching else self._default_optimizer

    def __setitem__(self, key, optimizer):
        if key in self._optimizer_map:
            raise ValueError(f"'{key}' already exists in the OptimizerMap with value {self._optimizer_map[key]}. "
                             "Please make sure to not use duplicated keys.")
        if not isinstance(key, str):
            raise ValueError(f"OptimizerMap: a key must be a string (a variable path or a pattern), got {key!r}.")
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"OptimizerMap: the value for '{key}' must be an Optimizer instance, got "
                             f"{optimizer!r:.200}.")
        _refuse_nested(optimizer, f"OptimizerMap['{key}']")
        re.compile(key)         # a bad pattern is an error here, not at the first step
        self._optimizer_map[key] = optimizer

    def __delitem__(self, key):
        del self._optimizer_map[key]

    def __len__(self):
        return len(self._optimizer_map)

    def __iter__(self):
        return iter(self._optimizer_map)

    def __call__(self, variable):
        return self[variable.path]

    def get_config(self):
        return {"default_optimizer": _serialize(self._default_optimizer),
                "optimizer_map": {key: _serialize(opt) for key, opt in self._optimizer_map.items()}}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        default = _deserialize(config["default_optimizer"], custom_objects)
        mapping = {key: _deserialize(opt, custom_objects) for key, opt in (config.get("optimizer_map") or {}).items()}
        return cls(default, mapping)

    def __repr__(self):
        return f"<OptimizerMap default_optimizer={self._default_optimizer!r} optimizer_map={self._optimizer_map!r}>"


class MultiOptimizer(Optimizer):
    """``MultiOptimizer(optimizer_map, loss_scale_factor=None, name=None)``: see the module docstring.

    Example::

        model.compile(optimizer=MultiOptimizer(OptimizerMap(SGD(0.1), {"model/encoder/.*": Adam()})), loss="mse")
        # or with a callable:
        model.compile(optimizer=MultiOptimizer(lambda v: adam if "encoder" in v.path else sgd), loss="mse")
    """

    def __init__(self, optimizer_map, loss_scale_factor=None, name=None):
        if not callable(optimizer_map):
            raise TypeError(f"MultiOptimizer: `optimizer_map` must be an OptimizerMap or a callable taking a "
                            f"variable and returning an optimizer, got {optimizer_map!r:.200}.")
        self._inner_optimizers = []
        super().__init__(learning_rate=0.0, loss_scale_factor=loss_scale_factor, name=name)
        self._optimizer_map = optimizer_map
        self._own_built = False
        self._var_to_optimizer = {}     # Variable -> index into _inner_optimizers
        values = list(optimizer_map.values()) if hasattr(optimizer_map, "values") else []
        default = getattr(optimizer_map, "default_optimizer", None)
        for optimizer in values + ([default] if default is not None else []):
            if not any(optimizer is known for known in self._inner_optimizers):
                _refuse_nested(optimizer, f"MultiOptimizer '{self.name}'")
                optimizer.loss_scale_factor = self.loss_scale_factor
                self._inner_optimizers.append(optimizer)

    # --------------------------------------------------------------- the map
    @property
    def optimizers(self) -> list:
        """The inner optimizers, in Keras's order."""
        return self._inner_optimizers

    @property
    def optimizer_map(self):
        return self._optimizer_map

    def _index(self, optimizer) -> int:
        for i, known in enumerate(self._inner_optimizers):
            if known is optimizer:
                return i
        optimizer.loss_scale_factor = self.loss_scale_factor
        self._inner_optimizers.append(optimizer)
        return len(self._inner_optimizers) - 1

    def optimizer_of(self, variable):
        """The inner optimizer ``variable`` is sent to."""
        if variable in self._var_to_optimizer:
            return self._inner_optimizers[self._var_to_optimizer[variable]]
        return self._choose(variable)

    def _choose(self, variable):
        optimizer = self._optimizer_map(variable)
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"MultiOptimizer '{self.name}': the optimizer for variable '{variable.path}' is "
                             f"{optimizer!r:.200}, not an Optimizer instance.")
        _refuse_nested(optimizer, f"MultiOptimizer '{self.name}' (variable '{variable.path}')")
        return optimizer

    def build(self, variables):
        """Send each variable not seen before to its optimizer, and build each optimizer on its variables."""
        variables = [v for v in variables if v not in self._var_to_optimizer]
        chosen = [self._choose(v) for v in variables]      # all checked before any is assigned
        groups = {}
        for var, optimizer in zip(variables, chosen):
            index = self._index(optimizer)
            self._var_to_optimizer[var] = index
            groups.setdefault(index, []).append(var)
        for index, group in sorted(groups.items()):
            self._inner_optimizers[index].build(group)
        self._own_built = True

    @property
    def built(self) -> bool:
        return self._own_built

    # ----------------------------------------------------- the learning rate
    @property
    def learning_rate(self):
        raise AttributeError("Learning rate cannot be accessed on a MultiOptimizer. Access the learning rate on "
                             "the individual sub-optimizers instead.")

    @learning_rate.setter
    def learning_rate(self, value):
        raise AttributeError("Learning rate cannot be set on a MultiOptimizer. Set the learning rate on the "
                             "individual sub-optimizers instead.")

    lr = learning_rate
    effective_learning_rate = learning_rate

    @property
    def loss_scale_factor(self):
        return self.__dict__.get("_loss_scale_factor")

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        self._loss_scale_factor = value
        for optimizer in self.__dict__.get("_inner_optimizers", ()):
            optimizer.loss_scale_factor = value

    # ------------------------------------------------------------- the step
    def _step(self, pairs) -> int:
        if not pairs:
            return self._iterations
        for grad, var in pairs:
            self._check_pair(grad, var)
        if all(g is None for g, _ in pairs):
            raise ValueError(f"{self._owner}: no gradients provided for any variable "
                             f"({', '.join(v.path for _, v in pairs)}). Did the backward pass run?")
        for var in [v for _, v in pairs if v not in self._var_to_optimizer]:
            self._choose(var)       # a bad map is an error before anything changes
        self.build([v for _, v in pairs])
        groups = {}
        for grad, var in pairs:
            groups.setdefault(self._var_to_optimizer[var], []).append((grad, var))
        for index, group in groups.items():
            optimizer = self._inner_optimizers[index]
            if all(g is None for g, _ in group):
                continue
            rate = optimizer.effective_learning_rate
            if not numpy.isfinite(rate):
                raise ValueError(f"{self._owner}: the learning rate of its optimizer '{optimizer.name}' at step "
                                 f"{optimizer._iterations} is {rate!r}; it must be a finite number.")
        # Everything is checked: from here on the step changes state.
        skipped = []
        for index, group in sorted(groups.items()):
            if all(g is None for g, _ in group):
                skipped.extend(v.path for _, v in group)
                continue
            self._inner_optimizers[index]._step(group)
        if skipped:
            warn(f"Gradients do not exist for variables {skipped} when minimizing the loss. If using "
                 "`model.compile()`, did you forget to provide a `loss` argument?")
        self._iterations += 1
        return self._iterations

    def get_slot(self, variable, name):
        """The slot ``name`` of ``variable`` in the optimizer it is sent to."""
        return self.optimizer_of(variable).get_slot(variable, name)

    def finalize_variable_values(self, var_list):
        groups = {}
        for var in var_list:
            if var in self._var_to_optimizer:
                groups.setdefault(self._var_to_optimizer[var], []).append(var)
        for index, group in sorted(groups.items()):
            self._inner_optimizers[index].finalize_variable_values(group)

    # ------------------------------------------------------------------ state
    @property
    def variables(self) -> list:
        """Keras's: its own ``iteration`` (``iterations``, the count of its steps) and ``learning_rate`` (0.0,
        which cannot be set), then the inner optimizers' ``variables`` (their counts, rates and slots), in
        ``optimizers`` order; the same objects each time."""
        rate = self.__dict__.get("_rate_variable")
        if rate is None:
            rate = self.__dict__["_rate_variable"] = RateVariable(self)
        return [self.iterations, rate] + [slot for optimizer in self._inner_optimizers for slot in optimizer.variables]

    def _keras_arrays(self) -> list:
        own = [numpy.asarray(self._iterations, dtype=ITERATION_DTYPE), numpy.asarray(0.0, dtype=backend.floatx())]
        return own + [a for optimizer in self._inner_optimizers for a in optimizer._keras_arrays()]

    def load_own_variables(self, store):
        """Read what ``save_own_variables`` wrote: its iteration and learning rate, then each inner optimizer's
        variables in turn. The optimizer must be built on the same variables."""
        current = self._keras_arrays()
        if len(store.keys()) != len(current):
            raise ValueError(f"{self._owner} holds {len(current)} variables (its own 2 and its {len(self.optimizers)} "
                             f"optimizers'), the store has {len(store.keys())}. Build the optimizer on the model's "
                             "trainable weights first.")
        for i, ref in enumerate(current):
            shape = numpy.shape(store[str(i)])
            if shape != ref.shape:
                raise ValueError(f"{self._owner}: stored variable {i} has shape {shape}, expected {ref.shape}.")
        offset = 2
        for optimizer in self._inner_optimizers:
            count = len(optimizer._keras_arrays())
            optimizer.load_own_variables(_Slice(store, offset, count))
            offset += count
        self._iterations = int(numpy.asarray(backend.to_numpy(store["0"])))

    def state_dict(self, variables) -> dict:
        """Its own step count, with each inner optimizer's ``state_dict(variables)`` under ``"optimizers"``."""
        return {"iterations": self._iterations, "learning_rate": None, "slots": {}, "extra": {},
                "optimizers": [optimizer.state_dict(variables) for optimizer in self._inner_optimizers]}

    def load_state_dict(self, state: dict, variables):
        """Restore what ``state_dict`` gave (a state without ``"optimizers"`` sets the step count alone)."""
        if not isinstance(state, dict) or "iterations" not in state:
            raise ValueError(f"{self._owner}: expected a state dict with 'iterations', got {type(state).__name__}.")
        iterations = state["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, (int, numpy.integer)) or iterations < 0:
            raise ValueError(f"{self._owner}: state 'iterations' must be a non-negative integer, got {iterations!r}.")
        inner = state.get("optimizers")
        if inner is not None:
            if len(inner) != len(self._inner_optimizers):
                raise ValueError(f"{self._owner}: the state holds {len(inner)} optimizers' states, this "
                                 f"MultiOptimizer has {len(self._inner_optimizers)} optimizers.")
            self.build(variables)
            for optimizer, sub in zip(self._inner_optimizers, inner):
                optimizer.load_state_dict(sub, variables)
        self._iterations = int(iterations)

    # -------------------------------------------------------------- serialising
    def get_config(self) -> dict:
        if isinstance(self._optimizer_map, OptimizerMap):
            written = {"module": "keras.optimizers", "class_name": "OptimizerMap",
                       "config": self._optimizer_map.get_config(), "registered_name": None}
        else:
            from ..catalogue import get_registered_name
            function = self._optimizer_map
            if getattr(function, "__name__", "<lambda>") == "<lambda>":
                raise ValueError(f"{self._owner}: its optimizer map {function!r} cannot be written to a config: "
                                 "functions are written by name, so only a named (def) and registered function "
                                 "or an OptimizerMap can be.")
            written = {"module": "builtins", "class_name": "function", "config": get_registered_name(function),
                       "registered_name": "function"}
        return {"optimizer_map": written, "loss_scale_factor": self.loss_scale_factor, "name": self.name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..catalogue import from_keras_config
        config = dict(config)
        written = config.pop("optimizer_map")
        if isinstance(written, dict):
            if written.get("class_name") == "OptimizerMap":
                written = OptimizerMap.from_config(written.get("config") or {}, custom_objects)
            else:
                written = from_keras_config("optimizers", written, {}, custom_objects)
        return cls(written, **config)

    def __repr__(self):
        return f"<MultiOptimizer name={self.name!r} optimizers={[o.name for o in self._inner_optimizers]!r}>"


class _Slice:
    """``count`` entries of a store from key ``offset`` on, as keys "0", "1", ..."""

    def __init__(self, store, offset, count):
        self._store, self._offset, self._count = store, offset, count

    def keys(self):
        return [str(i) for i in range(self._count)]

    def __getitem__(self, key):
        return self._store[str(int(key) + self._offset)]
