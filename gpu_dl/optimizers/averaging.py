"""Moving averages of the weights an optimizer updates (``use_ema=True``), as Keras 3.15 keeps them.

The rule, for every variable the optimizer is built on, after each call of
``apply``/``apply_gradients`` (before the constraints, before
``iterations`` grows):

- ``average = m * average + (1 - m) * variable`` with ``m = ema_momentum``,
  except while ``iterations`` is 0, where ``m = 0`` so the average starts at
  the variable's value (``iterations`` is the optimizer's own count: with
  ``gradient_accumulation_steps=n`` it is calls // n, so the first n calls
  copy the variable);
- with ``ema_overwrite_frequency = f``, when ``(iterations + 1) % f == 0``
  every variable is then overwritten with its average;
- ``m`` and ``1 - m`` are computed in the variable's dtype, as Keras does,
  so float32 results match Keras to the bit.

The averages are the optimizer slot ``average`` (zeros until the first
step), stored first among the optimizer's variables, as Keras stores
them. On the GPU they are CuPy array operations, not a fused kernel.
"""
from __future__ import annotations

import numbers

import numpy

SLOT = "average"


def check_arguments(owner: str, ema_momentum, ema_overwrite_frequency):
    """``(ema_momentum, ema_overwrite_frequency)`` checked, or a ValueError naming ``owner`` and the argument."""
    if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, numbers.Real) \
            or not 0.0 <= float(ema_momentum) <= 1.0:
        raise ValueError(f"{owner}: argument `ema_momentum` must be a number in [0, 1], got {ema_momentum!r}.")
    if ema_overwrite_frequency is not None and (
            isinstance(ema_overwrite_frequency, bool) or not isinstance(ema_overwrite_frequency, numbers.Integral)
            or ema_overwrite_frequency < 1):
        raise ValueError(f"{owner}: argument `ema_overwrite_frequency` must be a positive integer or None, "
                         f"got {ema_overwrite_frequency!r}.")
    return float(ema_momentum), None if ema_overwrite_frequency is None else int(ema_overwrite_frequency)


def after_step(optimizer):
    """Update every built variable's average, then overwrite the variables when the frequency says so."""
    first = optimizer._update_count == 0
    for var in _averaged(optimizer):
        average = optimizer._slots[var][SLOT]
        scalar = numpy.dtype(var.value.dtype).type
        momentum = scalar(0.0) if first else scalar(optimizer.ema_momentum)
        # Python floats of values exact in the variable's dtype: the arithmetic stays in that dtype.
        average *= float(momentum)
        average += float(scalar(1.0) - momentum) * var.value
    frequency = optimizer.ema_overwrite_frequency
    if frequency and (optimizer._update_count + 1) % frequency == 0:
        overwrite_variables(optimizer, optimizer._built)


def overwrite_variables(optimizer, variables):
    """Copy the average into each of ``variables`` the optimizer keeps one for (others are left alone)."""
    for var in variables:
        slots = optimizer._slots.get(var)
        if slots is not None and SLOT in slots:
            var.value[...] = slots[SLOT]


def swap(optimizer):
    """Exchange each built variable's value with its average (SwapEMAWeights)."""
    for var in _averaged(optimizer):
        average = optimizer._slots[var][SLOT]
        held = var.value.copy()
        var.value[...] = average
        average[...] = held


def copy_variables_to_averages(optimizer):
    """Set each average to its variable's current value (SwapEMAWeights' last epoch)."""
    for var in _averaged(optimizer):
        optimizer._slots[var][SLOT][...] = var.value


def _averaged(optimizer):
    """The built variables that keep an average (not those an optimizer overwrites with their gradients)."""
    return [var for var in optimizer._built if SLOT in optimizer._slots[var]]


def require(optimizer, what: str):
    """A ValueError unless ``optimizer`` keeps weight averages."""
    if optimizer is None or not getattr(optimizer, "use_ema", False):
        name = "no optimizer" if optimizer is None else f"{type(optimizer).__name__} '{optimizer.name}'"
        raise ValueError(f"{what} needs an optimizer created with `use_ema=True`; the model has {name} "
                         f"(use_ema={getattr(optimizer, 'use_ema', None)}).")
