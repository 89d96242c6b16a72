"""Weight constraints: the Keras 3 catalogue.

A constraint is called on a weight array after each optimizer step and
returns the projected array (same module and dtype). The norm-based ones
compute the norm over ``axis`` (Dense kernel ``(in, out)``: ``axis=0`` bounds
each unit's incoming weights; Conv2D kernel: ``axis=[0, 1, 2]``) and divide
by ``norm + 1e-7`` as Keras does, so they also rescale weights already
within bounds by ``norm / (norm + 1e-7)``.
"""
from __future__ import annotations

import inspect
import math
import numbers

from .backend import array_module
from .catalogue import from_keras_config, keras_config, lookup

_EPSILON = 1e-7  # Keras's backend.epsilon()


def _number(value, name, owner, *, low=0.0, high=math.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not low <= value <= high:
        bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(f"{owner}: argument `{name}` must be a finite number {bounds}, got {value!r}.")
    return value


def _axis(axis, owner):
    ok_int = lambda a: isinstance(a, numbers.Integral) and not isinstance(a, bool)
    if ok_int(axis):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(ok_int(a) for a in axis):
        return [int(a) for a in axis]
    raise ValueError(f"{owner}: argument `axis` must be an integer or a non-empty list of integers, got {axis!r}.")


class Constraint:
    """Base class: subclasses implement ``__call__(w)`` returning the projected weights."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _NormConstraint(Constraint):
    """Shared part of the constraints that rescale by the norm over ``axis``."""

    def _norms(self, w):
        axes = tuple(self.axis) if isinstance(self.axis, list) else (self.axis,)
        if any(not -w.ndim <= a < w.ndim for a in axes):
            raise ValueError(f"{type(self).__name__}: axis={self.axis!r} is out of range for a weight of "
                             f"shape {tuple(w.shape)}.")
        xp = array_module(w)
        return xp, xp.sqrt(xp.square(w).sum(axis=axes, keepdims=True))


class MaxNorm(_NormConstraint):
    """Scales the weights over ``axis`` down to a norm of at most ``max_value``."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "max_value", "MaxNorm")
        self.axis = _axis(axis, "MaxNorm")

    def __call__(self, w):
        xp, norms = self._norms(w)
        desired = xp.clip(norms, 0, self.max_value)
        return w * (desired / (norms + _EPSILON))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(_NormConstraint):
    """Scales the norm over ``axis`` to ``rate * clip(norm, min_value, max_value) + (1 - rate) * norm``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "min_value", "MinMaxNorm")
        self.max_value = _number(max_value, "max_value", "MinMaxNorm")
        if self.min_value > self.max_value:
            raise ValueError(f"MinMaxNorm: argument `min_value` ({min_value!r}) must not exceed "
                             f"`max_value` ({max_value!r}).")
        self.rate = _number(rate, "rate", "MinMaxNorm", high=1.0)
        self.axis = _axis(axis, "MinMaxNorm")

    def __call__(self, w):
        xp, norms = self._norms(w)
        desired = self.rate * xp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (norms + _EPSILON))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


class NonNeg(Constraint):
    """Sets negative weights to 0."""

    def __call__(self, w):
        return array_module(w).maximum(w, 0)


class UnitNorm(_NormConstraint):
    """Divides the weights by their norm over ``axis`` (plus 1e-7)."""

    def __init__(self, axis=0):
        self.axis = _axis(axis, "UnitNorm")

    def __call__(self, w):
        _, norms = self._norms(w)
        return w / (norms + _EPSILON)

    def get_config(self):
        return {"axis": self.axis}


# ----------------------------------------------------------------- catalogue
_TABLE = {"max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm}

# Function-style aliases, as Keras exports them (they are the classes).
max_norm, min_max_norm, non_neg, unit_norm = MaxNorm, MinMaxNorm, NonNeg, UnitNorm


def serialize(constraint):
    """Keras's config dict: ``{"module", "class_name", "config", "registered_name"}``."""
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        raise TypeError(f"serialize expects a Constraint, got {constraint!r}.")
    return keras_config(constraint, "keras.constraints", type(constraint) in _TABLE.values())


def deserialize(config, custom_objects=None):
    """The constraint a ``serialize`` dict (or a Keras one) describes; ``custom_objects`` maps names to classes."""
    return from_keras_config("constraints", config, _TABLE, custom_objects)


def get(identifier):
    """A constraint from ``None``, a name (``"max_norm"``, ``"MaxNorm"``, ...), an instance, a class,
    a config dict, or a plain callable ``f(w) -> w`` (used as it is)."""
    if identifier is None:
        return None
    if isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str):
        return lookup("constraints", identifier, _TABLE)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if inspect.isclass(identifier):
        if issubclass(identifier, Constraint):
            return identifier()
        raise TypeError(f"constraint class {identifier.__name__} is not a gpu_dl.constraints.Constraint.")
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret constraint identifier {identifier!r}: expected None, a name such "
                    "as 'max_norm', a Constraint, a config dict or a callable f(w).")
