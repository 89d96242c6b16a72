"""Muon (orthogonalised momentum for matrices, AdamW for the rest) and Schedule-Free AdamW.

Both run as array operations on NumPy and CuPy alike
(``gpu_dl.ops.optimizer_array_rules``; Muon's matrix products go to
cuBLAS on the GPU, and its AdamW variables take Adam's fused kernel).
``t`` below is the step being taken, ``iterations + 1``.
"""
from __future__ import annotations

import numbers
import re

import numpy

from ..ops.optimizer_array_rules import muon_update, schedule_free_adamw_update
from ..ops.optimizer_update import adam_update
from .base import FROM_VARIABLE, Optimizer, check_number, default_rate


class Muon(Optimizer):
    """Keras 3's Muon.

    A variable takes the AdamW step (and keeps a ``velocity`` slot) when it
    is not a matrix (rank != 2: biases, conv kernels, scalars), when
    ``exclude_embeddings`` is true and its path contains "embedding" (any
    case), or when one of the regular expressions ``exclude_layers`` is
    found in its path (``re.search``). Every other variable takes the Muon
    step. The path is gpu_dl's ``layer_name/weight_name`` (``"dense/kernel"``);
    Keras's path also carries the name of a Sequential model the layer was
    built in (``"sequential/dense/kernel"``), so a keyword that only matches
    a model's name selects differently in the two.

    Slots, per variable in Keras's order: ``momentum`` for every variable,
    then ``velocity`` for the AdamW variables only.

    - Muon step: ``m += g + m * (momentum - 1)``; ``d = g + momentum * m``
      with ``nesterov`` (else ``d = m``); ``u`` = ``ns_steps`` Newton-Schulz
      iterations with coefficients ``muon_a``, ``muon_b``, ``muon_c`` on ``d``
      (``gpu_dl.ops.optimizer_array_rules.newton_schulz5``);
      ``var -= lr * u * sqrt(max(rows, columns)) * rms_rate`` (no last two
      factors when ``rms_rate`` is None).
    - AdamW step: Adam's update with the rate ``lr * adam_lr_ratio`` (its bias
      corrections computed in the variable's dtype, as Keras's Muon does).
    - Weight decay before the step, ``var -= var * wd * lr``: ``wd`` is
      ``adam_weight_decay`` for the AdamW variables and ``weight_decay`` for
      the Muon ones (both 0.004 by default); ``exclude_from_weight_decay``
      exempts variables from both.
    """

    def __init__(self, learning_rate=default_rate(0.001), adam_beta_1=0.9, adam_beta_2=0.999, adam_weight_decay=0.004,
                 epsilon=1e-7, weight_decay=0.004, exclude_layers=None, exclude_embeddings=True, muon_a=3.4445,
                 muon_b=-4.7750, muon_c=2.0315, adam_lr_ratio=1, momentum=0.95, ns_steps=5, nesterov=True,
                 rms_rate=0.2, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
        owner = type(self).__name__
        self.adam_beta_1 = check_number(adam_beta_1, "adam_beta_1", owner, low=0.0, high=1.0, high_open=True)
        self.adam_beta_2 = check_number(adam_beta_2, "adam_beta_2", owner, low=0.0, high=1.0, high_open=True)
        self.adam_weight_decay = check_number(adam_weight_decay, "adam_weight_decay", owner, low=0.0,
                                              allow_none=True)
        self.epsilon = check_number(epsilon, "epsilon", owner, low=0.0)
        self.exclude_layers = _check_patterns(exclude_layers, owner)
        self._exclude_layer_patterns = [re.compile(k) for k in self.exclude_layers]
        self.exclude_embeddings = _check_bool(exclude_embeddings, "exclude_embeddings", owner)
        self.muon_a = check_number(muon_a, "muon_a", owner)
        self.muon_b = check_number(muon_b, "muon_b", owner)
        self.muon_c = check_number(muon_c, "muon_c", owner)
        self.adam_lr_ratio = check_number(adam_lr_ratio, "adam_lr_ratio", owner, low=0.0)
        self.momentum = check_number(momentum, "momentum", owner, low=0.0, high=1.0)
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, numbers.Integral) or ns_steps < 0:
            raise ValueError(f"{owner}: argument `ns_steps` must be a non-negative integer, got {ns_steps!r}.")
        self.ns_steps = int(ns_steps)
        self.nesterov = _check_bool(nesterov, "nesterov", owner)
        self.rms_rate = check_number(rms_rate, "rms_rate", owner, low=0.0, allow_none=True)

    def uses_adamw(self, var) -> bool:
        """Whether ``var`` takes the AdamW step rather than the Muon step (Keras's ``_should_use_adamw``)."""
        if len(var.value.shape) != 2:
            return True
        if self.exclude_embeddings and "embedding" in var.path.lower():
            return True
        return any(p.search(var.path) for p in self._exclude_layer_patterns)

    def _slot_groups(self):
        return (("momentum", "velocity"),)

    def _slot_applies(self, name, var):
        return name != "velocity" or self.uses_adamw(var)

    def _weight_decay_rate(self, var):
        if not self._use_weight_decay(var):
            return None
        return self.adam_weight_decay if self.uses_adamw(var) else self.weight_decay

    def _step_coefficients(self, lr):
        return self._update_count + 1

    def _adam_alpha(self, dtype, lr, t):
        """``lr * adam_lr_ratio * sqrt(1 - adam_beta_2**t) / (1 - adam_beta_1**t)`` computed in the
        variable's dtype, as Keras's Muon does (in float32, ``1 - 0.999**t`` keeps float32's rounding)."""
        scalar = numpy.dtype(dtype).type
        one, step = scalar(1), scalar(t)
        power_1, power_2 = scalar(self.adam_beta_1) ** step, scalar(self.adam_beta_2) ** step
        return float(scalar(lr * self.adam_lr_ratio) * numpy.sqrt(one - power_2) / (one - power_1))

    def _update_step(self, value, grad, slots, lr, t):
        if "velocity" in slots:
            adam_update(value, grad, slots["momentum"], slots["velocity"], None, self._adam_alpha(value.dtype, lr, t),
                        self.adam_beta_1, self.adam_beta_2, self.epsilon)
        else:
            muon_update(value, grad, slots["momentum"], lr, self.momentum, self.nesterov, self.muon_a, self.muon_b,
                        self.muon_c, self.ns_steps, self.rms_rate)

    def get_config(self):
        config = super().get_config()
        config.update({
            "adam_beta_1": self.adam_beta_1,
            "adam_beta_2": self.adam_beta_2,
            "epsilon": self.epsilon,
            "exclude_layers": list(self.exclude_layers),
            "muon_a": self.muon_a,
            "muon_b": self.muon_b,
            "muon_c": self.muon_c,
            "adam_lr_ratio": self.adam_lr_ratio,
            "momentum": self.momentum,
            "ns_steps": self.ns_steps,
            "nesterov": self.nesterov,
            "exclude_embeddings": self.exclude_embeddings,
            "adam_weight_decay": self.adam_weight_decay,
            "rms_rate": self.rms_rate,
        })
        return config


class ScheduleFreeAdamW(Optimizer):
    """Keras 3's ScheduleFreeAdamW.

    The model's variable holds the interpolated point ``y``; the slot
    ``momentum`` holds ``z`` (a copy of the variable when the slot is
    created) and ``velocity`` Adam's second moment. The average ``x`` is
    not stored: each step recovers it as ``(y - (1 - beta_1) * z) / beta_1``.
    With ``warmup_steps > 0`` the rate is ``lr * min(t / warmup_steps, 1)``;
    then ``v += (g**2 - v) * (1 - beta_2)``,
    ``z -= lr * g / (sqrt(v / (1 - beta_2**t)) + epsilon)``,
    ``x = (1 - 1/t) * x + z / t`` and ``y = (1 - beta_1) * z + beta_1 * x``
    (``gpu_dl.ops.optimizer_array_rules.schedule_free_adamw_update``).

    As in Keras 3.15, training and evaluation both use ``y``, and
    ``finalize_variable_values`` (called at the end of ``fit``) only applies
    ``use_ema``'s averages: the variables are not set to ``x``.
    """

    def __init__(self, learning_rate=default_rate(0.0025), beta_1=0.9, beta_2=0.999, epsilon=1e-8, warmup_steps=0,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        # beta_1 = 0 would divide by zero when x is recovered.
        self.beta_1 = check_number(beta_1, "beta_1", owner, low=0.0, high=1.0, low_open=True)
        self.beta_2 = check_number(beta_2, "beta_2", owner, low=0.0, high=1.0, high_open=True)
        self.epsilon = check_number(epsilon, "epsilon", owner, low=0.0)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Integral) or warmup_steps < 0:
            raise ValueError(f"{owner}: argument `warmup_steps` must be a non-negative integer, got {warmup_steps!r}.")
        self.warmup_steps = int(warmup_steps)

    def _slot_groups(self):
        return (("momentum", "velocity"),)

    def _slot_initial_value(self, name):
        return FROM_VARIABLE if name == "momentum" else 0.0

    def _step_coefficients(self, lr):
        return self._update_count + 1

    def _update_step(self, value, grad, slots, lr, t):
        schedule_free_adamw_update(value, grad, slots["momentum"], slots["velocity"], lr, self.beta_1, self.beta_2,
                                   self.epsilon, self.warmup_steps, t)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "warmup_steps": self.warmup_steps})
        return config


def _check_bool(value, name, owner):
    if not isinstance(value, bool) and not (isinstance(value, numbers.Integral) and value in (0, 1)):
        raise TypeError(f"{owner}: argument `{name}` must be True or False, got {value!r}.")
    return bool(value)


def _check_patterns(patterns, owner):
    """``exclude_layers`` as a list of strings that compile as regular expressions ([] for None)."""
    if patterns is None:
        return []
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise TypeError(f"{owner}: argument `exclude_layers` must be a list of strings (regular expressions "
                        f"searched in each variable's path), got {patterns!r}.")
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"{owner}: argument `exclude_layers` must hold strings, got {p!r}.")
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"{owner}: argument `exclude_layers` has {p!r}, not a valid regular expression "
                             f"({e}).") from None
    return list(patterns)
