"""Stochastic gradient descent with optional (Nesterov) momentum."""
from __future__ import annotations

from ..ops.optimizer_update import sgd_update
from .base import Optimizer, check_number, default_rate


class SGD(Optimizer):
    """Keras 3's SGD.

    Without momentum: ``var -= lr * g``. With momentum ``mu``:
    ``m = mu * m - lr * g``, then ``var += m``, or with ``nesterov``
    ``var += mu * m - lr * g``. Other keyword arguments (``weight_decay``,
    ``clipnorm``, ``name``, ...) are those of ``Optimizer``.
    """

    def __init__(self, learning_rate=default_rate(0.01), momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_number(momentum, "momentum", type(self).__name__, low=0.0, high=1.0)
        self.nesterov = bool(nesterov)

    def _slot_groups(self):
        return (("momentum",),) if self.momentum != 0 else ()

    def _update_step(self, value, grad, slots, lr, coefficients):
        sgd_update(value, grad, slots.get("momentum"), lr, self.momentum, self.nesterov)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
