"""One optimizer step for one variable, in place: the update rules of Keras 3's optimizers.

One function per rule; each updates ``value`` and its slot arrays in place
from ``grad`` and returns None:

- ``sgd_update(value, grad, momentum_slot, lr, momentum, nesterov)``
- ``rmsprop_update(value, grad, velocity, momentum_slot, average_gradient, lr, rho, momentum, epsilon)``
- ``adagrad_update(value, grad, accumulator, lr, epsilon)``
- ``adadelta_update(value, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon)``
- ``adam_update(value, grad, m, v, v_hat, alpha, beta_1, beta_2, epsilon)``
- ``adamax_update(value, grad, m, u, lr, beta_1, beta_2, epsilon, bias_correction)``
- ``nadam_update(value, grad, m, v, lr, beta_1, beta_2, epsilon, c_m, c_g, c_v)``
- ``lion_update(value, grad, m, lr, beta_1, beta_2)``
- ``lamb_update(value, grad, m, v, lr, beta_1, beta_2, epsilon, bias_correction_1, bias_correction_2)``

An optional slot is None where the rule does not keep it: SGD's and
RMSprop's ``momentum_slot`` exactly when ``momentum == 0``, RMSprop's
``average_gradient`` unless centered, Adam's ``v_hat`` unless AMSGrad.
Per-step scalars (Adam's ``alpha``, Adamax's ``bias_correction``, Nadam's
``c_m``, ``c_g``, ``c_v``, Lamb's ``bias_correction_*``) are computed once
per step by the optimizer.

Scalars are Python floats and every array has the variable's shape and
dtype. Arithmetic stays in that dtype: NumPy 2 rounds a Python float to the
array's dtype (``float32 * 0.9`` is ``float32 * float32(0.9)``), and the
kernels receive their scalars rounded the same way. Each function turns its
scalars into Python floats first: a NumPy float64 scalar is not weakly typed
and would promote float32 arithmetic to float64.

On CuPy float32/float64 arrays each rule is one launch of its fused kernel in
``kernels/optimizers.cu`` (each array read once and written once; the
launchers ``*_update_cuda`` below check their arguments). Elsewhere it is the
NumPy array arithmetic below, which is also the reference the kernels are
tested against: the kernels evaluate the same expressions in the same order,
so float32 results agree to rounding. Lamb is the exception to "one launch":
its trust ratio needs two norms over the whole variable, so its GPU path is
two kernels with a CuPy reduction between them (see ``lamb_update``).
"""
from __future__ import annotations

import numpy

from ..backend import array_module
from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "optimizers.cu"
_THREADS = 256          # per block; the kernels' grid-stride loops work with any block size
_VECTOR_BYTES = 16      # each thread's access: float4 / double2 where pointers are aligned


def _on_gpu(value) -> bool:
    """Whether ``value`` takes the kernel path: a CuPy array of float32 or float64."""
    return array_module(value) is not numpy and value.dtype in (numpy.float32, numpy.float64)


def _check_shapes(rule: str, value, **arrays):
    """Every array given has the variable's shape (in-place NumPy arithmetic would otherwise broadcast)."""
    for name, a in arrays.items():
        if a is not None and tuple(a.shape) != tuple(value.shape):
            raise ValueError(f"{rule}: `{name}` must have the shape of `value` {tuple(value.shape)}, "
                             f"got {tuple(a.shape)}.")


def _check_optional_slot(rule: str, slot, slot_name: str, used: bool, reason: str):
    if used and slot is None:
        raise ValueError(f"{rule}: `{slot_name}` is required when {reason}, got None.")
    if not used and slot is not None:
        raise ValueError(f"{rule}: `{slot_name}` must be None unless {reason}.")


# ------------------------------------------------------------------- the rules
def sgd_update(value, grad, momentum_slot, lr, momentum, nesterov):
    """SGD: ``value -= lr * g``; with momentum ``m = momentum * m - lr * g`` and
    ``value += m`` (``value += momentum * m - lr * g`` with ``nesterov``)."""
    lr, momentum = float(lr), float(momentum)
    _check_optional_slot("sgd_update", momentum_slot, "momentum_slot", momentum != 0, "momentum != 0")
    if _on_gpu(value):
        if momentum_slot is None:
            sgd_update_cuda(value, grad, lr)
        else:
            sgd_momentum_update_cuda(value, grad, momentum_slot, lr, momentum, nesterov)
        return
    _check_shapes("sgd_update", value, grad=grad, momentum_slot=momentum_slot)
    if momentum_slot is None:
        value -= grad * lr
        return
    m = momentum_slot
    m *= momentum
    m -= grad * lr
    if nesterov:
        value += m * momentum - grad * lr
    else:
        value += m


def rmsprop_update(value, grad, velocity, momentum_slot, average_gradient, lr, rho, momentum, epsilon):
    """RMSprop: ``v = rho * v + (1 - rho) * g**2``; centered (``average_gradient``
    given): ``a = rho * a + (1 - rho) * g`` and denominator ``v - a**2 + eps``, else
    ``v + eps``; ``inc = lr * g / sqrt(denominator)``; with momentum
    ``m = momentum * m + inc``, ``value -= m``, else ``value -= inc``."""
    lr, rho, momentum, epsilon = float(lr), float(rho), float(momentum), float(epsilon)
    _check_optional_slot("rmsprop_update", momentum_slot, "momentum_slot", momentum != 0, "momentum != 0")
    if _on_gpu(value):
        rmsprop_update_cuda(value, grad, velocity, momentum_slot, average_gradient, lr, rho, momentum, epsilon)
        return
    _check_shapes("rmsprop_update", value, grad=grad, velocity=velocity, momentum_slot=momentum_slot,
                  average_gradient=average_gradient)
    xp = array_module(value)
    v = velocity
    v *= rho
    v += (1 - rho) * (grad * grad)
    if average_gradient is not None:
        a = average_gradient
        a *= rho
        a += (1 - rho) * grad
        denominator = v - a * a + epsilon
    else:
        denominator = v + epsilon
    increment = lr * grad / xp.sqrt(denominator)
    if momentum_slot is not None:
        m = momentum_slot
        m *= momentum
        m += increment
        value -= m
    else:
        value -= increment


def adagrad_update(value, grad, accumulator, lr, epsilon):
    """Adagrad: ``acc += g**2``; ``value -= lr * g / sqrt(acc + eps)``."""
    lr, epsilon = float(lr), float(epsilon)
    if _on_gpu(value):
        adagrad_update_cuda(value, grad, accumulator, lr, epsilon)
        return
    _check_shapes("adagrad_update", value, grad=grad, accumulator=accumulator)
    xp = array_module(value)
    accumulator += grad * grad
    value -= lr * grad / xp.sqrt(accumulator + epsilon)


def adadelta_update(value, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon):
    """Adadelta: ``ag = rho * ag + (1 - rho) * g**2``;
    ``delta = -sqrt(ad + eps) * g / sqrt(ag + eps)``;
    ``ad = rho * ad + (1 - rho) * delta**2``; ``value += lr * delta``."""
    lr, rho, epsilon = float(lr), float(rho), float(epsilon)
    if _on_gpu(value):
        adadelta_update_cuda(value, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon)
        return
    _check_shapes("adadelta_update", value, grad=grad, accumulated_grad=accumulated_grad,
                  accumulated_delta_var=accumulated_delta_var)
    xp = array_module(value)
    ag, ad = accumulated_grad, accumulated_delta_var
    ag *= rho
    ag += (1 - rho) * (grad * grad)
    delta = -(xp.sqrt(ad + epsilon) * grad / xp.sqrt(ag + epsilon))
    ad *= rho
    ad += (1 - rho) * (delta * delta)
    value += lr * delta


def adam_update(value, grad, m, v, v_hat, alpha, beta_1, beta_2, epsilon):
    """Adam: ``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)``;
    with AMSGrad (``v_hat`` given) ``v_hat = max(v_hat, v)`` replaces ``v`` below;
    ``value -= m * alpha / (sqrt(v) + eps)``, where the optimizer passes
    ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``."""
    alpha, beta_1, beta_2, epsilon = float(alpha), float(beta_1), float(beta_2), float(epsilon)
    if _on_gpu(value):
        adam_update_cuda(value, grad, m, v, v_hat, alpha, beta_1, beta_2, epsilon)
        return
    _check_shapes("adam_update", value, grad=grad, m=m, v=v, v_hat=v_hat)
    xp = array_module(value)
    m += (grad - m) * (1 - beta_1)
    v += (grad * grad - v) * (1 - beta_2)
    if v_hat is not None:
        xp.maximum(v_hat, v, out=v_hat)
        v = v_hat
    value -= m * alpha / (xp.sqrt(v) + epsilon)


def adamax_update(value, grad, m, u, lr, beta_1, beta_2, epsilon, bias_correction):
    """Adamax: ``m += (g - m) * (1 - beta_1)``; ``u = max(beta_2 * u, |g|)``;
    ``value -= lr * m / (bias_correction * (u + eps))``, where the optimizer
    passes ``bias_correction = 1 - beta_1**t``."""
    lr, beta_1, beta_2 = float(lr), float(beta_1), float(beta_2)
    epsilon, bias_correction = float(epsilon), float(bias_correction)
    if _on_gpu(value):
        adamax_update_cuda(value, grad, m, u, lr, beta_1, beta_2, epsilon, bias_correction)
        return
    _check_shapes("adamax_update", value, grad=grad, m=m, u=u)
    xp = array_module(value)
    m += (grad - m) * (1 - beta_1)
    u *= beta_2
    xp.maximum(u, xp.abs(grad), out=u)
    value -= lr * m / (bias_correction * (u + epsilon))


def nadam_update(value, grad, m, v, lr, beta_1, beta_2, epsilon, c_m, c_g, c_v):
    """Nadam: ``m`` and ``v`` as in Adam; ``m_hat = c_m * m + c_g * g``;
    ``value -= m_hat * lr / (sqrt(v / c_v) + eps)``, where the optimizer passes
    ``c_m = u_{t+1} / (1 - P_t u_{t+1})``, ``c_g = (1 - u_t) / (1 - P_t)`` and
    ``c_v = 1 - beta_2**t`` (``u_t`` the momentum schedule, ``P_t`` its product)."""
    lr, beta_1, beta_2, epsilon = float(lr), float(beta_1), float(beta_2), float(epsilon)
    c_m, c_g, c_v = float(c_m), float(c_g), float(c_v)
    if _on_gpu(value):
        nadam_update_cuda(value, grad, m, v, lr, beta_1, beta_2, epsilon, c_m, c_g, c_v)
        return
    _check_shapes("nadam_update", value, grad=grad, m=m, v=v)
    xp = array_module(value)
    m += (grad - m) * (1 - beta_1)
    v += (grad * grad - v) * (1 - beta_2)
    m_hat = c_m * m + c_g * grad
    value -= m_hat * lr / (xp.sqrt(v / c_v) + epsilon)


def lion_update(value, grad, m, lr, beta_1, beta_2):
    """Lion: ``value -= lr * sign(m * beta_1 + g * (1 - beta_1))``, then
    ``m = m * beta_2 + g * (1 - beta_2)``.

    ``1 - beta`` is computed in double and rounded once to the dtype, as
    Keras's torch backend (``alpha=1 - beta``) and the other rules here do;
    Keras's generic ``lion.py`` subtracts in the dtype
    (``float32(1) - float32(beta)``), one float32 rounding away."""
    lr, beta_1, beta_2 = float(lr), float(beta_1), float(beta_2)
    if _on_gpu(value):
        lion_update_cuda(value, grad, m, lr, beta_1, beta_2)
        return
    _check_shapes("lion_update", value, grad=grad, m=m)
    xp = array_module(value)
    value -= lr * xp.sign(m * beta_1 + grad * (1 - beta_1))
    m *= beta_2
    m += grad * (1 - beta_2)


def lamb_update(value, grad, m, v, lr, beta_1, beta_2, epsilon, bias_correction_1, bias_correction_2):
    """Lamb: ``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)``;
    ``r = (m / bias_correction_1) / (sqrt(v / bias_correction_2) + eps)``;
    ``ratio = ||value|| / ||r||`` where both norms are > 0, else 1;
    ``value -= (ratio * lr) * r``. The optimizer passes
    ``bias_correction_i = 1 - beta_i**t``.

    On the GPU: ``lamb_moments`` (m, v and ``r`` into a scratch array), the two
    norms as one CuPy reduction into a 2-element device array, ``lamb_apply``
    (reads the norms on the device, so the host does not wait)."""
    lr, beta_1, beta_2, epsilon = float(lr), float(beta_1), float(beta_2), float(epsilon)
    bias_correction_1, bias_correction_2 = float(bias_correction_1), float(bias_correction_2)
    if _on_gpu(value):
        direction = lamb_moments_cuda(value, grad, m, v, beta_1, beta_2, epsilon, bias_correction_1,
                                      bias_correction_2)
        xp = array_module(value)
        norms = xp.sqrt(xp.stack([xp.sum(value * value), xp.sum(direction * direction)]))
        lamb_apply_cuda(value, direction, norms, lr)
        return
    _check_shapes("lamb_update", value, grad=grad, m=m, v=v)
    xp = array_module(value)
    m += (grad - m) * (1 - beta_1)
    v += (grad * grad - v) * (1 - beta_2)
    direction = (m / bias_correction_1) / (xp.sqrt(v / bias_correction_2) + epsilon)
    w_norm = xp.sqrt(xp.sum(value * value))
    g_norm = xp.sqrt(xp.sum(direction * direction))
    ratio = w_norm / g_norm if (w_norm > 0 and g_norm > 0) else 1.0
    value -= (ratio * lr) * direction


# ----------------------------------------------------------------- the launchers
def _checked_arrays(rule: str, value, grad, slots: dict, required=()):
    """Checks a launch's arrays; returns ``(kernel name, grad as a contiguous array)``.

    ``value`` and the slots are updated in place, so they must already be
    contiguous; ``grad`` is only read, so a strided one is copied. Slots named
    in ``required`` must be given; the others may be None (absent).
    """
    launch.check_device_array(value, rule, "value")
    dtype = value.dtype
    kernel = f"{rule}_{launch.float_suffix(dtype, rule, 'value')}"
    launch.check_device_array(grad, kernel, "grad", dtype=dtype, shape=value.shape, contiguous=False)
    if not grad.flags.c_contiguous:
        import cupy
        grad = cupy.ascontiguousarray(grad)
    for name, slot in slots.items():
        if slot is None:
            if name in required:
                raise ValueError(f"{kernel}: `{name}` is required, got None.")
            continue
        launch.check_device_array(slot, kernel, name, dtype=dtype, shape=value.shape)
    return kernel, grad


def _scalars(dtype, *values) -> tuple:
    """Kernel scalar arguments rounded to ``dtype``, as NumPy 2 rounds a Python float against an array."""
    return tuple(launch.scalar(float(x), dtype) for x in values)


def _one_minus(x) -> float:
    """``1 - x`` in double before the rounding to the kernel's dtype: NumPy's ``(1 - beta) * array``
    rounds ``1 - beta`` once, which is not ``float32(1) - float32(beta)``."""
    return 1.0 - float(x)


def _launch_update(kernel: str, value, arguments: tuple):
    """The geometry every kernel of optimizers.cu shares: a 1-D grid-stride loop,
    one 16-byte vector per thread, ``_THREADS`` threads per block."""
    n = value.size
    if n == 0:
        return
    vectors = -(-n // (_VECTOR_BYTES // value.dtype.itemsize))
    grid, block = launch.grid_1d(vectors, _THREADS)
    get_kernel(_KERNEL_FILE, kernel)(grid, block, arguments + (numpy.int32(n),))


def sgd_update_cuda(value, grad, lr):
    """Launcher of ``sgd_update_{f32,f64}`` (no momentum)."""
    kernel, grad = _checked_arrays("sgd_update", value, grad, {})
    _launch_update(kernel, value, (value, grad) + _scalars(value.dtype, lr))


def sgd_momentum_update_cuda(value, grad, momentum_slot, lr, momentum, nesterov):
    """Launcher of ``sgd_momentum_update_{f32,f64}``."""
    kernel, grad = _checked_arrays("sgd_momentum_update", value, grad, {"momentum_slot": momentum_slot},
                                   required=("momentum_slot",))
    _launch_update(kernel, value, (value, grad, momentum_slot) + _scalars(value.dtype, lr, momentum)
                   + (numpy.int32(bool(nesterov)),))


def rmsprop_update_cuda(value, grad, velocity, momentum_slot, average_gradient, lr, rho, momentum, epsilon):
    """Launcher of ``rmsprop_update_{f32,f64}``; momentum and centering follow from which slots are given."""
    kernel, grad = _checked_arrays("rmsprop_update", value, grad, {
        "velocity": velocity, "momentum_slot": momentum_slot, "average_gradient": average_gradient},
        required=("velocity",))
    flags = (numpy.int32(momentum_slot is not None), numpy.int32(average_gradient is not None))
    _launch_update(kernel, value, (value, grad, velocity, launch.optional(momentum_slot),
                                   launch.optional(average_gradient))
                   + _scalars(value.dtype, lr, rho, _one_minus(rho), momentum, epsilon) + flags)


def adagrad_update_cuda(value, grad, accumulator, lr, epsilon):
    """Launcher of ``adagrad_update_{f32,f64}``."""
    kernel, grad = _checked_arrays("adagrad_update", value, grad, {"accumulator": accumulator},
                                   required=("accumulator",))
    _launch_update(kernel, value, (value, grad, accumulator) + _scalars(value.dtype, lr, epsilon))


def adadelta_update_cuda(value, grad, accumulated_grad, accumulated_delta_var, lr, rho, epsilon):
    """Launcher of ``adadelta_update_{f32,f64}``."""
    slots = {"accumulated_grad": accumulated_grad, "accumulated_delta_var": accumulated_delta_var}
    kernel, grad = _checked_arrays("adadelta_update", value, grad, slots, required=tuple(slots))
    _launch_update(kernel, value, (value, grad, accumulated_grad, accumulated_delta_var)
                   + _scalars(value.dtype, lr, rho, _one_minus(rho), epsilon))


def adam_update_cuda(value, grad, m, v, v_hat, alpha, beta_1, beta_2, epsilon):
    """Launcher of ``adam_update_{f32,f64}``; AMSGrad when ``v_hat`` is given."""
    kernel, grad = _checked_arrays("adam_update", value, grad, {"m": m, "v": v, "v_hat": v_hat},
                                   required=("m", "v"))
    _launch_update(kernel, value, (value, grad, m, v, launch.optional(v_hat))
                   + _scalars(value.dtype, alpha, _one_minus(beta_1), _one_minus(beta_2), epsilon)
                   + (numpy.int32(v_hat is not None),))


def adamax_update_cuda(value, grad, m, u, lr, beta_1, beta_2, epsilon, bias_correction):
    """Launcher of ``adamax_update_{f32,f64}``."""
    kernel, grad = _checked_arrays("adamax_update", value, grad, {"m": m, "u": u}, required=("m", "u"))
    _launch_update(kernel, value, (value, grad, m, u)
                   + _scalars(value.dtype, lr, _one_minus(beta_1), beta_2, epsilon, bias_correction))


def nadam_update_cuda(value, grad, m, v, lr, beta_1, beta_2, epsilon, c_m, c_g, c_v):
    """Launcher of ``nadam_update_{f32,f64}``."""
    kernel, grad = _checked_arrays("nadam_update", value, grad, {"m": m, "v": v}, required=("m", "v"))
    _launch_update(kernel, value, (value, grad, m, v)
                   + _scalars(value.dtype, lr, _one_minus(beta_1), _one_minus(beta_2), epsilon, c_m, c_g, c_v))


def lion_update_cuda(value, grad, m, lr, beta_1, beta_2):
    """Launcher of ``lion_update_{f32,f64}``."""
    kernel, grad = _checked_arrays("lion_update", value, grad, {"m": m}, required=("m",))
    _launch_update(kernel, value, (value, grad, m)
                   + _scalars(value.dtype, lr, beta_1, _one_minus(beta_1), beta_2, _one_minus(beta_2)))


def lamb_moments_cuda(value, grad, m, v, beta_1, beta_2, epsilon, bias_correction_1, bias_correction_2):
    """Launcher of ``lamb_moments_{f32,f64}``: updates ``m`` and ``v``; returns the direction ``r``
    (a new array of ``value``'s shape; ``value`` is only checked, not read)."""
    kernel, grad = _checked_arrays("lamb_moments", value, grad, {"m": m, "v": v}, required=("m", "v"))
    direction = launch.empty_output(value.shape, value.dtype)
    _launch_update(kernel, value, (direction, grad, m, v)
                   + _scalars(value.dtype, _one_minus(beta_1), _one_minus(beta_2), bias_correction_1,
                              bias_correction_2, epsilon))
    return direction


def lamb_apply_cuda(value, direction, norms, lr):
    """Launcher of ``lamb_apply_{f32,f64}``: ``value -= (ratio * lr) * direction`` with the trust
    ratio taken from ``norms = [||value||, ||direction||]`` (a device array) inside the kernel."""
    kernel, direction = _checked_arrays("lamb_apply", value, direction, {"norms": None})
    launch.check_device_array(norms, kernel, "norms", dtype=value.dtype, shape=(2,))
    _launch_update(kernel, value, (value, direction, norms) + _scalars(value.dtype, lr))
