"""Optimizer update rules written as array operations: Ftrl and Adafactor (Keras 3's formulas).

Unlike the rules of ``optimizer_update``, these have no fused kernel yet:
the same array code runs on NumPy and on CuPy (where every operation is a
CuPy kernel of its own, so a step reads and writes each array several
times). Ftrl's ``power`` and Adafactor's means over rows and columns keep
them out of the fused kernels for now. Every scalar that depends on the
data (Adafactor's RMS values) stays a device array, so a CuPy step never
waits for the device.

Each function updates ``value`` and its slots in place and returns None;
arithmetic stays in the variable's dtype (scalars are Python floats).
"""
from __future__ import annotations

from ..backend import array_module


def ftrl_update(value, grad, accumulator, linear, lr, lr_power, l1, l2, l2_shrinkage, beta):
    """Ftrl (Keras 3): with ``p = -lr_power`` and ``l2' = l2 + beta / (2 * lr)``:
    ``g_s = g + 2 * l2_shrinkage * value``; ``n = acc + g**2``;
    ``linear += g_s - (n**p - acc**p) / lr * value``;
    ``quadratic = n**p / lr + 2 * l2'``;
    ``value = (clip(linear, -l1, l1) - linear) / quadratic``; ``acc = n``."""
    lr, p = float(lr), -float(lr_power)
    l1, l2_total = float(l1), float(l2) + float(beta) / (2.0 * float(lr))
    xp = array_module(value)
    grad_to_use = grad + (2 * float(l2_shrinkage)) * value
    new_accumulator = accumulator + grad * grad
    new_power = xp.power(new_accumulator, p)
    linear += grad_to_use - ((new_power - xp.power(accumulator, p)) / lr) * value
    quadratic = new_power / lr + 2 * l2_total
    value[...] = (xp.clip(linear, -l1, l1) - linear) / quadratic
    accumulator[...] = new_accumulator


def _rms(xp, x):
    return xp.sqrt(xp.mean(x * x))


def adafactor_update(value, grad, r, c, v, rho, epsilon_1, epsilon_2, clip_threshold, beta_2_t):
    """Adafactor (Keras 3), given ``rho = min(lr, 1 / sqrt(t))`` and ``beta_2_t = 1 - t**beta_2_decay``:
    ``alpha = max(epsilon_2, rms(value)) * rho``; ``s = g**2 + epsilon_1``;
    for rank >= 2 (factored over the last two axes):
    ``r = beta_2_t * r + (1 - beta_2_t) * mean(s, -1)``,
    ``c = beta_2_t * c + (1 - beta_2_t) * mean(s, -2)``,
    ``v = (r / mean(r, -1))[..., None] * c[..., None, :]``;
    otherwise ``v = beta_2_t * v + (1 - beta_2_t) * s`` (``r``, ``c`` unused);
    ``u = g / sqrt(v)``; ``value -= alpha * u / max(1, rms(u) / clip_threshold)``."""
    rho, epsilon_1, epsilon_2 = float(rho), float(epsilon_1), float(epsilon_2)
    clip_threshold, beta_2_t = float(clip_threshold), float(beta_2_t)
    xp = array_module(value)
    alpha = xp.maximum(epsilon_2, _rms(xp, value)) * rho
    square = grad * grad + epsilon_1
    if value.ndim >= 2:
        r[...] = beta_2_t * r + (1 - beta_2_t) * xp.mean(square, axis=-1)
        c[...] = beta_2_t * c + (1 - beta_2_t) * xp.mean(square, axis=-2)
        v[...] = xp.expand_dims(r / xp.mean(r, axis=-1, keepdims=True), -1) * xp.expand_dims(c, -2)
    else:
        v[...] = beta_2_t * v + (1 - beta_2_t) * square
    u = grad / xp.sqrt(v)
    u_hat = u / xp.maximum(1.0, _rms(xp, u) / clip_threshold)
    value -= alpha * u_hat
