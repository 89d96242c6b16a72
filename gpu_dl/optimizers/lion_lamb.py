"""Lion (sign of an interpolated momentum) and Lamb (Adam scaled by a per-variable trust ratio).

``t`` below is the step being taken, ``iterations + 1``.
"""
from __future__ import annotations

from ..ops.optimizer_update import lamb_update, lion_update
from .base import Optimizer, check_number, default_rate


class Lion(Optimizer):
    """Keras 3's Lion.

    ``var -= lr * sign(m * beta_1 + g * (1 - beta_1))``, then
    ``m = m * beta_2 + g * (1 - beta_2)`` (one slot, ``momentum``).
    ``beta_1`` must lie in (0, 1]: at 0 Lion is SignSGD, as Keras says.
    """

    def __init__(self, learning_rate=default_rate(0.001), beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_number(beta_1, "beta_1", owner, low=0.0, high=1.0, low_open=True)
        self.beta_2 = check_number(beta_2, "beta_2", owner, low=0.0, high=1.0)

    def _slot_groups(self):
        return (("momentum",),)

    def _update_step(self, value, grad, slots, lr, coefficients):
        lion_update(value, grad, slots["momentum"], lr, self.beta_1, self.beta_2)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config


class Lamb(Optimizer):
    """Keras 3's Lamb.

    ``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)``;
    ``r = (m / (1 - beta_1**t)) / (sqrt(v / (1 - beta_2**t)) + eps)``;
    ``ratio = ||var|| / ||r||`` over the whole variable when both norms are
    positive, else 1; ``var -= ratio * lr * r``. Slots ``momentum`` and
    ``velocity``, in Adam's order. ``epsilon`` defaults to 1e-7 as in Keras
    3.15 (its docstring's paper value 1e-6 is not its default).
    """

    def __init__(self, learning_rate=default_rate(0.001), beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_number(beta_1, "beta_1", owner, low=0.0, high=1.0, high_open=True)
        self.beta_2 = check_number(beta_2, "beta_2", owner, low=0.0, high=1.0, high_open=True)
        self.epsilon = check_number(epsilon, "epsilon", owner, low=0.0)

    def _slot_groups(self):
        return (("momentum", "velocity"),)

    def _step_coefficients(self, lr):
        t = self._update_count + 1
        return 1.0 - self.beta_1 ** t, 1.0 - self.beta_2 ** t

    def _update_step(self, value, grad, slots, lr, bias_corrections):
        lamb_update(value, grad, slots["momentum"], slots["velocity"], lr, self.beta_1, self.beta_2, self.epsilon,
                    *bias_corrections)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
