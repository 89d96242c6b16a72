"""Learning-rate schedules (Keras 3's ``keras.optimizers.schedules``).

A schedule is called with the optimizer's step count and returns the
learning rate for that step. The formulas are Keras 3's; they are evaluated
on the host in float64 (the step is a host integer), and return a Python
float for a scalar step or a NumPy array for an array of steps.
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from ..catalogue import from_keras_config, keras_config


def _number(value, name, owner, *, positive=False, non_negative=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{owner}: argument `{name}` must be a finite number, got {value!r}.")
    if positive and value <= 0:
        raise ValueError(f"{owner}: argument `{name}` must be > 0, got {value!r}.")
    if non_negative and value < 0:
        raise ValueError(f"{owner}: argument `{name}` must be >= 0, got {value!r}.")
    return value


def _steps(step):
    """The step(s) as a float64 host array (a CuPy scalar is copied to the host)."""
    return numpy.asarray(backend.to_numpy(step), dtype=numpy.float64)


def _result(values):
    values = numpy.asarray(values, dtype=numpy.float64)
    return float(values) if values.ndim == 0 else values


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' "
                                  "must override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
                                  "to be serialisable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (the exponent floored with ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        owner = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = _number(decay_steps, "decay_steps", owner, positive=True)
        self.decay_rate = _number(decay_rate, "decay_rate", owner)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _steps(step) / self.decay_steps
        if self.staircase:
            p = numpy.floor(p)
        return _result(self.initial_learning_rate * numpy.power(float(self.decay_rate), p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (the ratio floored with ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        owner = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = _number(decay_steps, "decay_steps", owner, positive=True)
        self.decay_rate = _number(decay_rate, "decay_rate", owner)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _steps(step) / self.decay_steps
        if self.staircase:
            p = numpy.floor(p)
        return _result(self.initial_learning_rate / (1.0 + self.decay_rate * p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        owner = type(self).__name__
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"{owner}: `boundaries` must have one element fewer than `values`; got "
                             f"boundaries={boundaries} (length {len(boundaries)}) and values={values} "
                             f"(length {len(values)}).")
        for b in boundaries:
            _number(b, "boundaries", owner)
        for v in values:
            _number(v, "values", owner)
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"{owner}: `boundaries` must be strictly increasing, got {boundaries}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        # side="left" puts a step equal to a boundary into the interval that ends there.
        index = numpy.searchsorted(numpy.asarray(self.boundaries, dtype=numpy.float64), _steps(step), side="left")
        return _result(numpy.asarray(self.values, dtype=numpy.float64)[index])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``, ``step`` capped at
    ``decay_steps``; with ``cycle`` the horizon is the first multiple of ``decay_steps``
    at or above ``step``."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        owner = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = _number(decay_steps, "decay_steps", owner, positive=True)
        self.end_learning_rate = _number(end_learning_rate, "end_learning_rate", owner)
        self.power = _number(power, "power", owner)
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step):
        s = _steps(step)
        horizon = numpy.full_like(s, float(self.decay_steps))
        if self.cycle:
            # Step 0 uses one period, as in Keras.
            horizon = horizon * numpy.where(s == 0, 1.0, numpy.ceil(s / self.decay_steps))
        else:
            s = numpy.minimum(s, horizon)
        p = s / horizon
        return _result((self.initial_learning_rate - self.end_learning_rate) * numpy.power(1.0 - p, self.power)
                       + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Optional linear warm-up from ``initial_learning_rate`` to ``warmup_target`` over
    ``warmup_steps``, then cosine decay over ``decay_steps`` from the peak to ``alpha`` times it."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        owner = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", owner)
        self.decay_steps = _number(decay_steps, "decay_steps", owner, positive=True)
        self.alpha = _number(alpha, "alpha", owner)
        self.name = name
        self.warmup_target = None if warmup_target is None else _number(warmup_target, "warmup_target", owner)
        self.warmup_steps = _number(warmup_steps, "warmup_steps", owner, non_negative=True)

    def _decayed(self, s, peak):
        cosine = 0.5 * (1.0 + numpy.cos(math.pi * s / self.decay_steps))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        s = _steps(step)
        if self.warmup_target is None:
            return _result(self._decayed(numpy.minimum(s, self.decay_steps), self.initial_learning_rate))
        s = numpy.minimum(s, self.decay_steps + self.warmup_steps)
        with numpy.errstate(divide="ignore", invalid="ignore"):  # warmup_steps == 0: that branch is never taken
            warm = (self.warmup_target - self.initial_learning_rate) * (s / self.warmup_steps) \
                + self.initial_learning_rate
        decayed = self._decayed(s - self.warmup_steps, self.warmup_target)
        return _result(numpy.where(s < self.warmup_steps, warm, decayed))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): periods grow by ``t_mul``, peaks by ``m_mul``."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        owner = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", owner)
        self.first_decay_steps = _number(first_decay_steps, "first_decay_steps", owner, positive=True)
        self._t_mul = _number(t_mul, "t_mul", owner, positive=True)
        self._m_mul = _number(m_mul, "m_mul", owner)
        self.alpha = _number(alpha, "alpha", owner)
        self.name = name

    def __call__(self, step):
        fraction = _steps(step) / self.first_decay_steps
        t_mul = float(self._t_mul)
        if t_mul == 1.0:
            restart = numpy.floor(fraction)
            fraction = fraction - restart
        else:
            restart = numpy.floor(numpy.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
            done = (1.0 - numpy.power(t_mul, restart)) / (1.0 - t_mul)
            fraction = (fraction - done) / numpy.power(t_mul, restart)
        cosine = 0.5 * numpy.power(float(self._m_mul), restart) * (1.0 + numpy.cos(math.pi * fraction))
        return _result(self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self._t_mul, "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_SCHEDULES = {cls.__name__.lower(): cls for cls in (
    ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay, CosineDecay, CosineDecayRestarts,
)}


def serialize(schedule) -> dict:
    """``{"module", "class_name", "config", "registered_name"}`` as Keras 3 writes a schedule."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"expected a LearningRateSchedule, got {schedule!r}.")
    return keras_config(schedule, "keras.optimizers.schedules", builtin=True)


def deserialize(config, custom_objects=None):
    """A schedule from ``serialize``'s dict (the class name matched without regard to case)."""
    return from_keras_config("learning-rate schedules", config, _SCHEDULES, custom_objects)


__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay", "PolynomialDecay",
    "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize",
]
