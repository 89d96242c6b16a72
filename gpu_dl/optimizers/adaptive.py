"""Optimizers that scale each weight's step by its gradient history: RMSprop, Adagrad, Adadelta.

Their rules put ``epsilon`` inside the square root (``sqrt(v + eps)``), as
Keras 3 does, unlike the Adam family, which adds it after the root.
"""
from __future__ import annotations

from ..ops.optimizer_update import adadelta_update, adagrad_update, rmsprop_update
from .base import Optimizer, check_number, default_rate


class RMSprop(Optimizer):
    """Keras 3's RMSprop.

    ``v = rho * v + (1 - rho) * g**2``; with ``centered`` also
    ``a = rho * a + (1 - rho) * g`` and the denominator ``v - a**2 + eps``,
    otherwise ``v + eps``; ``inc = lr * g / sqrt(denominator)``; with
    ``momentum``: ``m = momentum * m + inc``, ``var -= m``, else ``var -= inc``.
    """

    def __init__(self, learning_rate=default_rate(0.001), rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.rho = check_number(rho, "rho", owner, low=0.0, high=1.0)
        self.momentum = check_number(momentum, "momentum", owner, low=0.0)
        self.epsilon = check_number(epsilon, "epsilon", owner, low=0.0)
        self.centered = bool(centered)

    def _slot_groups(self):
        groups = [("velocity",)]
        if self.momentum > 0:
            groups.append(("momentum",))
        if self.centered:
            groups.append(("average_gradient",))
        return tuple(groups)

    def _update_step(self, value, grad, slots, lr, coefficients):
        rmsprop_update(value, grad, slots["velocity"], slots.get("momentum"), slots.get("average_gradient"), lr,
                       self.rho, self.momentum, self.epsilon)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                       "centered": self.centered})
        return config


class Adagrad(Optimizer):
    """Keras 3's Adagrad: ``acc += g**2``, ``var -= lr * g / sqrt(acc + eps)``;
    ``acc`` starts at ``initial_accumulator_value``."""

    def __init__(self, learning_rate=default_rate(0.001), initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.initial_accumulator_value = check_number(initial_accumulator_value, "initial_accumulator_value", owner,
                                                      low=0.0)
        self.epsilon = check_number(epsilon, "epsilon", owner, low=0.0)

    def _slot_groups(self):
        return (("accumulator",),)

    def _slot_initial_value(self, name):
        return self.initial_accumulator_value

    def _update_step(self, value, grad, slots, lr, coefficients):
        adagrad_update(value, grad, slots["accumulator"], lr, self.epsilon)

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon})
        return config


class Adadelta(Optimizer):
    """Keras 3's Adadelta.

    ``ag = rho * ag + (1 - rho) * g**2``;
    ``delta = -sqrt(ad + eps) * g / sqrt(ag + eps)``;
    ``ad = rho * ad + (1 - rho) * delta**2``; ``var += lr * delta``.
    """

    def __init__(self, learning_rate=default_rate(0.001), rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.rho = check_number(rho, "rho", owner, low=0.0, high=1.0)
        self.epsilon = check_number(epsilon, "epsilon", owner, low=0.0)

    def _slot_groups(self):
        return (("accumulated_grad", "accumulated_delta_var"),)

    def _update_step(self, value, grad, slots, lr, coefficients):
        adadelta_update(value, grad, slots["accumulated_grad"], slots["accumulated_delta_var"], lr, self.rho,
                        self.epsilon)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
