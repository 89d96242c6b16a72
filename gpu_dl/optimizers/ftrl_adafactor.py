"""Ftrl (follow the regularized leader) and Adafactor (factored second moments).

Both run as array operations on NumPy and CuPy alike
(``gpu_dl.ops.optimizer_array_rules``); they have no fused kernel yet.
``t`` below is the step being taken, ``iterations + 1``.
"""
from __future__ import annotations

import math

from ..ops.optimizer_array_rules import adafactor_update, ftrl_update
from .base import Optimizer, check_number, default_rate


class Ftrl(Optimizer):
    """Keras 3's Ftrl.

    Slots ``accumulator`` (starting at ``initial_accumulator_value``) and
    ``linear``. With ``p = -learning_rate_power`` and
    ``l2' = l2_regularization_strength + beta / (2 * lr)``:
    ``g_s = g + 2 * l2_shrinkage_regularization_strength * var``;
    ``n = acc + g**2``; ``linear += g_s - (n**p - acc**p) / lr * var``;
    ``var = (clip(linear, -l1, l1) - linear) / (n**p / lr + 2 * l2')``; ``acc = n``.
    The rule divides by the learning rate: a rate of 0 gives non-finite
    weights, as in Keras.
    """

    def __init__(self, learning_rate=default_rate(0.001), learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.learning_rate_power = check_number(learning_rate_power, "learning_rate_power", owner, high=0.0)
        self.initial_accumulator_value = check_number(initial_accumulator_value, "initial_accumulator_value", owner,
                                                      low=0.0)
        self.l1_regularization_strength = check_number(l1_regularization_strength, "l1_regularization_strength",
                                                       owner, low=0.0)
        self.l2_regularization_strength = check_number(l2_regularization_strength, "l2_regularization_strength",
                                                       owner, low=0.0)
        self.l2_shrinkage_regularization_strength = check_number(
            l2_shrinkage_regularization_strength, "l2_shrinkage_regularization_strength", owner, low=0.0)
        self.beta = check_number(beta, "beta", owner)

    def _slot_groups(self):
        return (("accumulator", "linear"),)

    def _slot_initial_value(self, name):
        return self.initial_accumulator_value if name == "accumulator" else 0.0

    def _update_step(self, value, grad, slots, lr, coefficients):
        ftrl_update(value, grad, slots["accumulator"], slots["linear"], lr, self.learning_rate_power,
                    self.l1_regularization_strength, self.l2_regularization_strength,
                    self.l2_shrinkage_regularization_strength, self.beta)

    def get_config(self):
        config = super().get_config()
        config.update({
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1_regularization_strength,
            "l2_regularization_strength": self.l2_regularization_strength,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
            "beta": self.beta,
        })
        return config


class Adafactor(Optimizer):
    """Keras 3's Adafactor.

    Slots per variable, in Keras's order: ``r`` (shape ``var.shape[:-1]``),
    ``c`` (``var.shape[:-2] + var.shape[-1:]``) and ``velocity``; for a
    variable of rank < 2, ``r`` and ``c`` are unused int32 scalars, as Keras
    keeps them. With a number learning rate and ``relative_step``,
    ``lr = min(lr, 1 / sqrt(t))``; then ``rho = min(lr, 1 / sqrt(t))`` and
    ``beta_2_t = 1 - t**beta_2_decay``; the update is
    ``gpu_dl.ops.optimizer_array_rules.adafactor_update``.
    """

    def __init__(self, learning_rate=default_rate(0.001), beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3,
                 clip_threshold=1.0, relative_step=True, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        # beta_2_decay > 0 would make beta_2_t negative after the first step.
        self.beta_2_decay = check_number(beta_2_decay, "beta_2_decay", owner, high=0.0)
        self.epsilon_1 = check_number(epsilon_1, "epsilon_1", owner, low=0.0)
        self.epsilon_2 = check_number(epsilon_2, "epsilon_2", owner, low=0.0)
        self.clip_threshold = check_number(clip_threshold, "clip_threshold", owner, low=0.0, low_open=True)
        self.relative_step = bool(relative_step)

    def _slot_groups(self):
        return (("r", "c", "velocity"),)

    def _slot_template(self, name, var):
        shape = tuple(var.value.shape)
        if name == "velocity":
            return shape, var.value.dtype
        if len(shape) < 2:
            return (), "int32"
        return (shape[:-1], var.value.dtype) if name == "r" else (shape[:-2] + shape[-1:], var.value.dtype)

    def _step_coefficients(self, lr):
        t = self._update_count + 1
        inverse_root = 1.0 / math.sqrt(t)
        if self._lr_function is None and self.relative_step:
            lr = min(lr, inverse_root)
        return min(lr, inverse_root), 1.0 - t ** self.beta_2_decay

    def _update_step(self, value, grad, slots, lr, coefficients):
        rho, beta_2_t = coefficients
        adafactor_update(value, grad, slots["r"], slots["c"], slots["velocity"], rho, self.epsilon_1,
                         self.epsilon_2, self.clip_threshold, beta_2_t)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1, "epsilon_2": self.epsilon_2,
                       "clip_threshold": self.clip_threshold, "relative_step": self.relative_step})
        return config
