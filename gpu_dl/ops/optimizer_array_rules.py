"""Optimizer update rules written as array operations: Ftrl, Adafactor, Muon's orthogonalised momentum
and Schedule-Free AdamW (Keras 3's formulas).

Unlike the rules of ``optimizer_update``, these have no fused kernel yet:
the same array code runs on NumPy and on CuPy (where every operation is a
CuPy kernel of its own, so a step reads and writes each array several
times; Muon's matrix products go to cuBLAS). Ftrl's ``power``, Adafactor's
means over rows and columns and Muon's Newton-Schulz iteration keep them
out of the fused kernels for now. Every scalar that depends on the data
(Adafactor's RMS values, Muon's Frobenius norm) stays a device array, so a
CuPy step never waits for the device.

Each function updates ``value`` and its slots in place and returns None;
arithmetic stays in the variable's dtype (scalars are Python floats).
"""
from __future__ import annotations

import numpy

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


def _swap_last_axes(xp, x):
    return xp.swapaxes(x, -1, -2)


def newton_schulz5(x, steps, a, b, c):
    """Keras 3's ``Muon.zeropower_via_newtonschulz5``: an approximate orthogonalisation of each matrix
    in the last two axes of ``x`` (a new array; ``x`` is not changed).

    A matrix with more rows than columns is transposed first (and back at the end); it is divided by
    its Frobenius norm + 1e-7, then ``steps`` times ``A = X X^T``, ``X = a X + (b A + (c A) A) X``.
    The norm is that of the matrix rounded to float32, taken and added to 1e-7 in float32, whatever
    the matrix's dtype: Keras 3.15's ``ops.norm`` casts its input to ``result_type(dtype, float)``,
    which is float32 even for float64.
    """
    steps, a, b, c = int(steps), float(a), float(b), float(c)
    if x.ndim < 2:
        raise ValueError(f"newton_schulz5: expected an array of rank >= 2, got shape {tuple(x.shape)}.")
    xp = array_module(x)
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = _swap_last_axes(xp, x)
    x32 = x.astype(numpy.float32, copy=False)
    norm = xp.sqrt(xp.sum(x32 * x32, axis=(-2, -1), keepdims=True))
    x = x / (norm + 1e-7).astype(x.dtype, copy=False)
    for _ in range(steps):
        gram = xp.matmul(x, _swap_last_axes(xp, x))
        x = a * x + xp.matmul(b * gram + xp.matmul(c * gram, gram), x)
    if tall:
        x = _swap_last_axes(xp, x)
    return x


def muon_update(value, grad, m, lr, momentum, nesterov, a, b, c, steps, rms_rate):
    """Muon's step for a matrix (Keras 3): ``m += g + m * (momentum - 1)``;
    ``d = g + momentum * m`` with ``nesterov``, else ``d = m``;
    ``u = newton_schulz5(d, steps, a, b, c)``;
    ``value -= lr * u * sqrt(max(rows, columns)) * rms_rate`` (without the last two factors when
    ``rms_rate`` is None), multiplied in that order as Keras does. The square root is a float32
    number whatever the variable's dtype, as Keras's torch backend takes it (``ops.sqrt`` of an int)."""
    if value.ndim != 2:
        raise ValueError(f"muon_update: the Muon step is for matrices, got a variable of shape {tuple(value.shape)}.")
    lr, momentum = float(lr), float(momentum)
    m += grad + m * (momentum - 1)
    direction = grad + momentum * m if nesterov else m
    step = lr * newton_schulz5(direction, steps, a, b, c)
    if rms_rate is not None:
        step *= float(numpy.sqrt(numpy.float32(max(value.shape[0], value.shape[1]))))
        step *= float(rms_rate)
    value -= step


def schedule_free_adamw_update(value, grad, z, v, lr, beta_1, beta_2, epsilon, warmup_steps, t):
    """Schedule-Free AdamW (Keras 3), ``value`` being the interpolated point ``y`` and ``z`` the slot
    ``momentum``, at step ``t``: with ``warmup_steps > 0``, ``lr *= min(t / warmup_steps, 1)``;
    ``v += (g**2 - v) * (1 - beta_2)``; ``z -= lr * g / (sqrt(v / (1 - beta_2**t)) + eps)``;
    ``x = (y - (1 - beta_1) * z) / beta_1`` (the average, recovered from ``y`` and ``z`` before the step's
    update of ``z``); ``x = (1 - 1/t) * x + (1/t) * z``; ``y = (1 - beta_1) * z + beta_1 * x``.
    The scalars are computed in the variable's dtype, as Keras casts them to it, except the warmup
    factor ``min(t / warmup_steps, 1)``, which Keras's torch backend rounds to float32 (its ``minimum``
    with the Python float 1.0 is float32) whatever the variable's dtype.

    Recovering ``x`` with the ``z`` from before the step is the schedule-free paper's rule and what Keras
    3.15 computes on JAX and TensorFlow. On its torch backend Keras's ``momentum_old = momentum.value`` is the
    slot's own tensor, which the in-place update of ``z`` then changes, so there ``x`` comes from the new
    ``z``: an aliasing fault of that backend, not the algorithm, and not reproduced here."""
    xp = array_module(value)
    scalar = numpy.dtype(value.dtype).type
    one = scalar(1)
    step, beta_1, beta_2 = scalar(t), scalar(beta_1), scalar(beta_2)
    lr, epsilon = scalar(lr), float(scalar(epsilon))
    if warmup_steps > 0:
        lr = lr * scalar(numpy.float32(min(step / scalar(warmup_steps), one)))
    lr = float(lr)
    bias_correction_2 = float(one - beta_2 ** step)
    weight = one / step
    one_minus_beta_1 = float(one - beta_1)
    average = (value - one_minus_beta_1 * z) / float(beta_1)
    v += (grad * grad - v) * float(one - beta_2)
    z -= (lr * grad) / (xp.sqrt(v / bias_correction_2) + epsilon)
    average = float(one - weight) * average + float(weight) * z
    value[...] = one_minus_beta_1 * z + float(beta_1) * average
