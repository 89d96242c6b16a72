"""Gradient accumulation (``gradient_accumulation_steps=n``), as Keras 3.15 does it.

Each call of ``apply``/``apply_gradients`` is a micro-step; the optimizer's
raw call count (saved as ``iterations`` in files) grows on every one:

- on a call where ``(calls + 1) % n != 0`` each gradient (already divided by
  ``loss_scale_factor``) is added to its variable's accumulator and no
  variable changes: no clipping, no weight decay, no update;
- on the n-th call the update rule receives ``(gradient + accumulator) / n``
  (the mean over the n calls), clipped as configured, with weight decay
  applied first as usual; then every accumulator returns to zero;
- ``optimizer.iterations`` reads calls // n (the number of updates): the
  update rules' bias corrections and the EMA see it, while a learning-rate
  schedule (and the legacy ``decay``) is evaluated at the raw call count,
  as in Keras.

The accumulators are the optimizer slot ``gradient_accumulator``, stored
after the EMA averages and before the update rule's own slots, as Keras
stores them. On the GPU they are CuPy array operations, not a fused kernel.
"""
from __future__ import annotations

import numbers

from .. import backend

SLOT = "gradient_accumulator"


def check_steps(owner: str, steps):
    """``steps`` (an int >= 2) or None, or a ValueError naming ``owner`` and the argument."""
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
        raise ValueError(f"{owner}: argument `gradient_accumulation_steps` must be an integer >= 2 or None, "
                         f"got {steps!r}.")
    return int(steps)


def is_update_call(optimizer) -> bool:
    """Whether the coming call is the n-th of its group and so updates the variables."""
    return (optimizer._iterations + 1) % optimizer.gradient_accumulation_steps == 0


def overwrite_with_gradient(optimizer, grad, variable) -> bool:
    """Assign ``variable`` its gradient where it is marked ``overwrite_with_gradient`` (float8 training's scales
    and amax histories), and say whether it was one. Accumulating, as Keras does for them, its accumulator keeps
    the elementwise maximum of the gradients of the group's calls, which the n-th call assigns."""
    if not getattr(variable, "overwrite_with_gradient", False):
        return False
    if not optimizer.gradient_accumulation_steps:
        variable.value[...] = grad
        return True
    accumulator = optimizer._slots[variable][SLOT]
    xp = backend.array_module(grad)
    if is_update_call(optimizer):
        variable.value[...] = xp.maximum(grad, accumulator)
        accumulator[...] = 0
    else:
        accumulator[...] = xp.maximum(grad, accumulator)
    return True


def accumulate(optimizer, grads: list, variables: list):
    """The gradients to apply now (means over the last n calls), or None on a call that only accumulates."""
    n = optimizer.gradient_accumulation_steps
    if not grads:
        return None
    accumulators = [optimizer._slots[var][SLOT] for var in variables]
    if not is_update_call(optimizer):
        for acc, g in zip(accumulators, grads):
            acc += g
        return None
    means = [(g + acc) / n for g, acc in zip(grads, accumulators)]
    # Every accumulator restarts, also those of variables without a gradient on this call (Keras resets all).
    for var in optimizer._built:
        optimizer._slots[var][SLOT][...] = 0
    return means
