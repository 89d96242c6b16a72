"""Keras's ``LossScaleOptimizer``: dynamic loss scaling around another optimizer, for float16 training.

Under the ``"mixed_float16"`` policy small gradients underflow in float16. The training step multiplies the loss
by the loss scale (every gradient it seeds: the loss's, the weight and activity penalties', the added losses'),
so the float16 gradients are that much larger; this optimizer divides the float32 gradients by the scale before
the inner optimizer's step, and moves the scale as Keras does:

- a step whose gradients hold an inf or NaN is skipped (the inner optimizer, its ``iterations`` included, is
  left as it was) and the scale is halved;
- after ``dynamic_growth_steps`` finite steps in a row the scale doubles.

``compile`` wraps the optimizer in one where the model's policy is ``"mixed_float16"`` (``auto_scale_loss``).
Its variables, in Keras's order and as its files hold them: its own ``iteration`` (0: the inner optimizer counts
the steps) and ``learning_rate`` (0.0), ``step_counter`` (finite steps since the scale last moved),
``dynamic_scale``, then the inner optimizer's.
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from ..layers.base import Variable
from ..layers.view_variables import ViewVariable
from .base import ITERATION_DTYPE, Optimizer

# Keras's dtype of ``step_counter`` (``dynamic_scale`` is float32), in the variable and in saved files.
STEP_COUNTER_DTYPE = numpy.int32

# Keras's optimizer arguments a LossScaleOptimizer refuses, with their defaults (set them on the inner one).
_INNER_ONLY = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
               "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
               "gradient_accumulation_steps": None}


class LossScaleOptimizer(Optimizer):
    """``LossScaleOptimizer(inner_optimizer, initial_scale=2**15, dynamic_growth_steps=2000)``: see the module
    docstring. ``scale_loss(loss)`` gives the loss times the current scale, ``dynamic_scale`` the scale."""

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000, name=None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply set "
                             "`loss_scale_factor` directly on the `inner_optimizer`.")
        for key, default in _INNER_ONLY.items():
            if key in kwargs and kwargs.pop(key) != default:
                raise ValueError(f"LossScaleOptimizer does not support `{key}`. Instead, set `{key}` on the "
                                 "`inner_optimizer`.")
        if kwargs:
            raise ValueError(f"LossScaleOptimizer does not support arguments: `{'`, `'.join(kwargs)}`.")
        if not isinstance(inner_optimizer, Optimizer) or isinstance(inner_optimizer, LossScaleOptimizer):
            raise TypeError("LossScaleOptimizer: `inner_optimizer` must be an optimizer instance (such as "
                            f"keras.optimizers.Adam()) other than a LossScaleOptimizer, got {inner_optimizer!r}.")
        if isinstance(initial_scale, bool) or not isinstance(initial_scale, numbers.Real) or \
                not math.isfinite(initial_scale) or initial_scale <= 0:
            raise ValueError(f"LossScaleOptimizer: `initial_scale` must be a finite number > 0, got {initial_scale!r}.")
        if isinstance(dynamic_growth_steps, bool) or not isinstance(dynamic_growth_steps, numbers.Integral) or \
                dynamic_growth_steps < 1:
            raise ValueError("LossScaleOptimizer: `dynamic_growth_steps` must be an integer >= 1, got "
                             f"{dynamic_growth_steps!r}.")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.initial_scale = float(initial_scale)
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        self.inner_optimizer.loss_scale_factor = None
        # Keras's float32 and integer variables, as 0-d host arrays: the step reads them on the host anyway to
        # decide whether it runs.
        self._dynamic_scale = numpy.asarray(self.initial_scale, dtype=numpy.float32)
        self._step_counter = numpy.asarray(0, dtype=STEP_COUNTER_DTYPE)
        self._own_built = False

    # ------------------------------------------------------------------ the scale
    @property
    def dynamic_scale(self) -> float:
        """The current loss scale (``initial_scale`` until the first step)."""
        return float(self._dynamic_scale)

    @property
    def step_counter(self) -> int:
        """Finite steps since the scale last changed."""
        return int(self._step_counter)

    def scale_loss(self, loss):
        """``loss`` times the current scale, as Keras's."""
        return loss * self.dynamic_scale

    # ------------------------------------------------------------ the inner optimizer's
    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    lr = learning_rate

    @property
    def effective_learning_rate(self):
        return self.inner_optimizer.effective_learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @iterations.setter
    def iterations(self, value):
        self.inner_optimizer.iterations = value

    def get_slot(self, variable, name):
        return self.inner_optimizer.get_slot(variable, name)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list, var_names)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # ------------------------------------------------------------------ the step
    def build(self, variables):
        self._own_built = True
        self.inner_optimizer.build(variables)

    @property
    def built(self) -> bool:
        return self._own_built

    def _built_variables(self):
        return self.inner_optimizer._built_variables()

    def _step(self, pairs) -> int:
        for grad, var in pairs:
            self.inner_optimizer._check_pair(grad, var)
        if not self._own_built:
            self.build([v for _, v in pairs])
        grads = [g for g, _ in pairs if g is not None]
        if grads and not self._finite(grads):
            self._step_counter[...] = 0
            self._dynamic_scale[...] = self._dynamic_scale * numpy.float32(0.5)
            return self.inner_optimizer._iterations
        # a variable overwritten with its gradient takes it as it is, as in Keras
        unscaled = [(g if g is None or getattr(v, "overwrite_with_gradient", False) else
                     g / g.dtype.type(self._dynamic_scale), v) for g, v in pairs]
        self.inner_optimizer._step(unscaled)
        if int(self._step_counter) == self.dynamic_growth_steps - 1:
            self._step_counter[...] = 0
            self._dynamic_scale[...] = self._dynamic_scale * numpy.float32(2.0)
        else:
            self._step_counter[...] = self._step_counter + 1
        return self.inner_optimizer._iterations

    @staticmethod
    def _finite(grads) -> bool:
        """Whether every gradient is finite: one read of the device per step."""
        module = backend.array_module(grads[0])
        flags = module.stack([module.isfinite(g).all() for g in grads])
        return bool(backend.to_numpy(flags.all()))

    # ------------------------------------------------------------------ state
    @property
    def variables(self) -> list:
        """Keras's: its own ``iteration`` (int32, 0) and ``learning_rate`` (floatx, 0.0), once built its
        ``step_counter`` (int32) and ``dynamic_scale`` (float32), each path ``<name>/<variable>``, then the inner
        optimizer's ``variables``. The last two read and set the scale the step keeps; the same objects each
        time."""
        views = self._own_views()
        return (views if self._own_built else views[:2]) + list(self.inner_optimizer.variables)

    def _own_views(self) -> list:
        views = self.__dict__.get("_own_view_list")
        if views is None:
            views = self.__dict__["_own_view_list"] = [
                Variable(numpy.asarray(0, ITERATION_DTYPE), "iteration", trainable=False,
                         path=f"{self.name}/iteration", host=True),
                Variable(numpy.asarray(0.0, backend.floatx()), "learning_rate", trainable=False,
                         path=f"{self.name}/learning_rate", host=True),
                _ScaleVariable(self, "_step_counter", STEP_COUNTER_DTYPE),
                _ScaleVariable(self, "_dynamic_scale", numpy.float32)]
        return views

    def _iteration_variable(self):
        """Its own ``iteration`` (0 for its life: the inner optimizer counts the steps), which ``apply_gradients``
        returns, as Keras's does."""
        return self._own_views()[0]

    def _keras_arrays(self) -> list:
        own = [numpy.asarray(0, dtype=ITERATION_DTYPE), numpy.asarray(0.0, dtype=backend.floatx()),
               self._step_counter.copy(), self._dynamic_scale.copy()]
        return own + self.inner_optimizer._keras_arrays()

    def save_own_variables(self, store):
        for i, a in enumerate(self._keras_arrays()):
            store[str(i)] = a

    def load_own_variables(self, store):
        """Read what ``save_own_variables`` (or Keras) wrote: its four own variables, then the inner
        optimizer's."""
        keys = len(store.keys())
        if keys < 4:
            raise ValueError(f"{self._owner}: the store holds {keys} variables; a LossScaleOptimizer's start with "
                             "its iteration, learning_rate, step_counter and dynamic_scale.")
        counter = numpy.asarray(backend.to_numpy(store["2"]))
        scale = numpy.asarray(backend.to_numpy(store["3"]))
        if counter.shape != () or scale.shape != () or not numpy.isfinite(scale) or float(scale) <= 0:
            raise ValueError(f"{self._owner}: stored step_counter and dynamic_scale must be a count and a finite "
                             f"scale > 0, got {counter!r} and {scale!r}.")
        self.inner_optimizer.load_own_variables(_Shifted(store, 4))
        self._step_counter[...] = int(counter)
        self._dynamic_scale[...] = float(scale)
        self._own_built = True

    def state_dict(self, variables) -> dict:
        """Its own scalars as the base class gives them (its ``iteration``, 0, first of its Keras variables; no
        settable learning rate, no extra scalar), with the inner optimizer's state under ``"inner"`` and the
        scale under ``"step_counter"`` and ``"dynamic_scale"``."""
        return {"iterations": 0, "learning_rate": None, "slots": {}, "extra": {},
                "inner": self.inner_optimizer.state_dict(variables), "step_counter": self.step_counter,
                "dynamic_scale": self.dynamic_scale}

    def load_state_dict(self, state: dict, variables):
        """Restore what ``state_dict`` gave; a state without ``"inner"`` (its own scalars alone, which its
        variables hold too) changes nothing."""
        if not isinstance(state, dict):
            raise ValueError(f"{self._owner}: expected a state dict, got {type(state).__name__}.")
        if "inner" not in state:
            return
        try:
            counter, scale = int(state["step_counter"]), float(state["dynamic_scale"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{self._owner}: the state must hold step_counter and dynamic_scale.") from None
        if counter < 0 or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"{self._owner}: step_counter {counter} and dynamic_scale {scale} must be a count and "
                             "a finite scale > 0.")
        self.inner_optimizer.load_state_dict(state["inner"], variables)
        self._step_counter[...] = counter
        self._dynamic_scale[...] = scale
        self._own_built = True

    # -------------------------------------------------------------- serialising
    def get_config(self) -> dict:
        from . import serialize      # the catalogue imports this module
        return {"name": self.name, "inner_optimizer": serialize(self.inner_optimizer),
                "initial_scale": self.initial_scale, "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from . import deserialize
        config = dict(config)
        inner = config.pop("inner_optimizer")
        if isinstance(inner, dict):
            inner = deserialize(inner, custom_objects=custom_objects)
        return cls(inner, **config)

    def __repr__(self):
        return f"<LossScaleOptimizer name={self.name!r} inner_optimizer={self.inner_optimizer!r}>"


class _ScaleVariable(ViewVariable):
    """``step_counter`` or ``dynamic_scale`` (``attribute`` of ``optimizer``, a 0-d host array) as Keras's variable
    of ``dtype``; assigning it sets the array (the scale must stay finite and > 0, the count >= 0)."""

    def __init__(self, optimizer, attribute, dtype):
        self._optimizer, self._attribute, self._kind = optimizer, attribute, numpy.dtype(dtype)
        name = attribute.lstrip("_")
        super().__init__(numpy.asarray(0, dtype=self._kind), name, f"{optimizer.name}/{name}")

    def _read(self):
        return numpy.asarray(getattr(self._optimizer, self._attribute), dtype=self._kind)

    def _write(self, kind, value, what):
        amount = self._number(value, what, "fiu" if self._kind.kind == "f" else "iu",
                              f"a scalar {self._kind.name}; ...: give a number")
        current = self._read()
        new = numpy.asarray(amount if kind == "assign" else current + amount if kind == "add" else current - amount,
                            dtype=self._kind)
        if not numpy.isfinite(new) or (new <= 0 if self._kind.kind == "f" else new < 0):
            raise ValueError(f"Variable '{self.path}' cannot be set to {new!r}.")
        getattr(self._optimizer, self._attribute)[...] = new
        return self._value


class _Shifted:
    """A store read from key ``offset`` on, as key "0"."""

    def __init__(self, store, offset):
        self._store, self._offset = store, offset

    def keys(self):
        return [str(i) for i in range(len(self._store.keys()) - self._offset)]

    def __getitem__(self, key):
        return self._store[str(int(key) + self._offset)]
