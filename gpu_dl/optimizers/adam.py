"""The Adam family: Adam (with AMSGrad), AdamW, Adamax and Nadam.

``t`` below is the step being taken, ``iterations + 1``. Bias corrections
are host scalars computed once per step; ``epsilon`` is added after the
square root ("epsilon hat"), as in Keras 3.
"""
from __future__ import annotations

from ..ops.optimizer_update import adam_update, adamax_update, nadam_update
from .base import Optimizer, check_number, default_rate


class _AdamBase(Optimizer):
    """Shared arguments of the Adam family."""

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1 = check_number(beta_1, "beta_1", owner, low=0.0, high=1.0, high_open=True)
        self.beta_2 = check_number(beta_2, "beta_2", owner, low=0.0, high=1.0, high_open=True)
        self.epsilon = check_number(epsilon, "epsilon", owner, low=0.0)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


class Adam(_AdamBase):
    """Keras 3's Adam.

    ``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)``;
    with ``amsgrad`` ``v_hat = max(v_hat, v)`` replaces ``v`` below;
    ``var -= m * alpha / (sqrt(v) + eps)`` with
    ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``.
    """

    def __init__(self, learning_rate=default_rate(0.001), beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self.amsgrad = bool(amsgrad)

    def _slot_groups(self):
        groups = (("momentum", "velocity"),)
        return groups + ((("velocity_hat",),) if self.amsgrad else ())

    def _step_coefficients(self, lr):
        t = self._update_count + 1
        return lr * (1.0 - self.beta_2 ** t) ** 0.5 / (1.0 - self.beta_1 ** t)

    def _update_step(self, value, grad, slots, lr, alpha):
        adam_update(value, grad, slots["momentum"], slots["velocity"], slots.get("velocity_hat"), alpha,
                    self.beta_1, self.beta_2, self.epsilon)

    def get_config(self):
        config = super().get_config()
        config["amsgrad"] = self.amsgrad
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras 3's AdamW): before each update
    ``var -= var * weight_decay * lr``; ``weight_decay`` defaults to 0.004."""

    def __init__(self, learning_rate=default_rate(0.001), weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: argument `weight_decay` must be a number, got None.")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)


class Adamax(_AdamBase):
    """Keras 3's Adamax (Adam with the infinity norm).

    ``m += (g - m) * (1 - beta_1)``; ``u = max(beta_2 * u, |g|)``;
    ``var -= lr * m / ((1 - beta_1**t) * (u + eps))``.
    """

    def __init__(self, learning_rate=default_rate(0.001), beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)

    def _slot_groups(self):
        return (("momentum", "norm"),)

    def _step_coefficients(self, lr):
        return 1.0 - self.beta_1 ** (self._update_count + 1)

    def _update_step(self, value, grad, slots, lr, bias_correction):
        adamax_update(value, grad, slots["momentum"], slots["norm"], lr, self.beta_1, self.beta_2, self.epsilon,
                      bias_correction)


class Nadam(_AdamBase):
    """Keras 3's Nadam (Adam with Nesterov momentum and a momentum schedule).

    ``u_t = beta_1 * (1 - 0.5 * 0.96**t)``; the product ``P_t = u_1 * ... * u_t``
    is kept across steps and advanced once per step (not per variable).
    ``m`` and ``v`` update as in Adam; then
    ``m_hat = u_{t+1} * m / (1 - P_t * u_{t+1}) + (1 - u_t) * g / (1 - P_t)``,
    ``v_hat = v / (1 - beta_2**t)``, ``var -= lr * m_hat / (sqrt(v_hat) + eps)``.
    """

    def __init__(self, learning_rate=default_rate(0.001), beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)
        self._u_product = 1.0

    def _slot_groups(self):
        return (("momentum", "velocity"),)

    def _momentum_at(self, step):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** step)

    def _step_coefficients(self, lr):
        t = self._update_count + 1
        u_t, u_next = self._momentum_at(t), self._momentum_at(t + 1)
        self._u_product *= u_t
        return {
            "m": u_next / (1.0 - self._u_product * u_next),
            "g": (1.0 - u_t) / (1.0 - self._u_product),
            "v": 1.0 - self.beta_2 ** t,
        }

    def _update_step(self, value, grad, slots, lr, c):
        nadam_update(value, grad, slots["momentum"], slots["velocity"], lr, self.beta_1, self.beta_2, self.epsilon,
                     c["m"], c["g"], c["v"])

    def _extra_state(self):
        return {"u_product": self._u_product}

    def _load_extra_state(self, extra):
        if "u_product" in extra:
            self._u_product = float(extra["u_product"])
