"""Activation functions, forward and backward, for NumPy and CuPy arrays alike.

Each ``*_forward(x, ...)`` returns y; each ``*_backward(x, y, dy, ...)``
returns dx from whichever of the input x and output y is cheaper. Constants
are cast to x's dtype so float32 stays float32. Exponentials only see
arguments that cannot overflow, so extreme inputs give no warnings.
"""
from __future__ import annotations

from ..backend import array_module

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _c(x, value):
    return x.dtype.type(value)


# ------------------------------------------------------------------ ReLU family
def relu_forward(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's relu: x above ``threshold`` (clipped to [0, max_value]), slope below it."""
    xp = array_module(x)
    if threshold == 0:
        y = xp.fmax(x, _c(x, 0))   # what the select below gives (NaN -> 0, -0.0 -> 0.0), without its branches
    else:
        y = xp.where(x > _c(x, threshold), x, _c(x, 0))
    if max_value is not None:
        y = xp.clip(y, _c(x, 0), _c(x, max_value))
    if negative_slope:
        y = y - _c(x, negative_slope) * xp.maximum(_c(x, threshold) - x, _c(x, 0))
    return y


def relu_backward(x, y, dy, negative_slope=0.0, max_value=None, threshold=0.0):
    passes = x > _c(x, threshold)
    if max_value is not None:
        passes &= (x > _c(x, 0)) & (x < _c(x, max_value))
    if not negative_slope and getattr(dy, "dtype", None) == x.dtype:
        return dy * passes   # the bool mask promotes to dy's dtype: the product below without the cast
    slope = passes.astype(x.dtype)
    if negative_slope:
        slope = slope + _c(x, negative_slope) * (x < _c(x, threshold)).astype(x.dtype)
    return dy * slope


def leaky_relu_forward(x, negative_slope=0.2):
    return array_module(x).maximum(x, _c(x, negative_slope) * x)


def leaky_relu_backward(x, y, dy, negative_slope=0.2):
    above = x > _c(x, 0) if negative_slope <= 1 else x < _c(x, 0)
    # 1 where above, the slope elsewhere: 1 + 0 * slope or 0 + 1 * slope, exact, without a select
    return dy * (above + ~above * _c(x, negative_slope))


def relu6_forward(x):
    return relu_forward(x, max_value=6.0)


def relu6_backward(x, y, dy):
    return relu_backward(x, y, dy, max_value=6.0)


# ------------------------------------------------------------ exponential family
# ELU as a sum, not a select (which mispredicts on mixed signs): for x >= 0 the second term is alpha *
# expm1(0) = 0 and the first x, below 0 the first is 0; the same values, infinities and NaN included.
def elu_forward(x, alpha=1.0):
    xp = array_module(x)
    zero = _c(x, 0)
    return xp.maximum(x, zero) + _c(x, alpha) * xp.expm1(xp.minimum(x, zero))


def elu_backward(x, y, dy, alpha=1.0):
    xp = array_module(x)
    zero = _c(x, 0)
    below = (x < zero) * (_c(x, alpha) * xp.exp(xp.minimum(x, zero)))   # exp(min(x, 0)) <= 1: 0 * it is 0
    return dy * ((x >= zero) + below)


def selu_forward(x):
    return _c(x, SELU_SCALE) * elu_forward(x, SELU_ALPHA)


def selu_backward(x, y, dy):
    return _c(x, SELU_SCALE) * elu_backward(x, y, dy, SELU_ALPHA)


def exponential_forward(x):
    return array_module(x).exp(x)


def exponential_backward(x, y, dy):
    return dy * y


def sigmoid_forward(x):
    xp = array_module(x)
    # 1 / (1 + e) for x >= 0 and e / (1 + e) below, e = exp(-|x|) in (0, 1] (never overflows); the
    # numerator exp(min(x, 0)) is 1 or e exactly, which spares a select that mispredicts on mixed signs
    e = xp.exp(-xp.abs(x))
    return xp.exp(xp.minimum(x, _c(x, 0))) / (_c(x, 1) + e)


def sigmoid_backward(x, y, dy):
    return dy * y * (_c(x, 1) - y)


def softplus_forward(x):
    xp = array_module(x)
    return xp.logaddexp(x, _c(x, 0))


def softplus_backward(x, y, dy):
    return dy * sigmoid_forward(x)


def silu_forward(x):
    return x * sigmoid_forward(x)


def silu_backward(x, y, dy):
    s = sigmoid_forward(x)
    return dy * (s + x * s * (_c(x, 1) - s))


# --------------------------------------------------------------- bounded family
def tanh_forward(x):
    return array_module(x).tanh(x)


def tanh_backward(x, y, dy):
    return dy * (_c(x, 1) - y * y)


def softsign_forward(x):
    return x / (_c(x, 1) + array_module(x).abs(x))


def softsign_backward(x, y, dy):
    d = _c(x, 1) + array_module(x).abs(x)
    return dy / (d * d)


def hard_sigmoid_forward(x):
    """Keras 3: relu6(x + 3) / 6, i.e. clip(x / 6 + 1/2, 0, 1)."""
    return array_module(x).clip(x / _c(x, 6) + _c(x, 0.5), _c(x, 0), _c(x, 1))


def hard_sigmoid_backward(x, y, dy):
    inside = (x > _c(x, -3)) & (x < _c(x, 3))
    return dy * inside.astype(x.dtype) / _c(x, 6)


def hard_silu_forward(x):
    return x * hard_sigmoid_forward(x)


def hard_silu_backward(x, y, dy):
    inside = ((x > _c(x, -3)) & (x < _c(x, 3))).astype(x.dtype)
    return dy * (hard_sigmoid_forward(x) + x * inside / _c(x, 6))


def linear_forward(x):
    return x


def linear_backward(x, y, dy):
    return dy


def step_forward(x):
    """Binary step: 1 where x > 0, else 0. Its gradient is zero everywhere."""
    return (x > _c(x, 0)).astype(x.dtype)


def step_backward(x, y, dy):
    return array_module(dy).zeros_like(dy)


# ------------------------------------------------------------------ normalising
def softmax_forward(x, axis=-1):
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(x, y, dy, axis=-1):
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax_forward(x, axis=-1):
    xp = array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(x, y, dy, axis=-1):
    return dy - array_module(y).exp(y) * dy.sum(axis=axis, keepdims=True)


# ------------------------------------------------------------------------ PReLU
def prelu_forward(x, alpha):
    """x where x >= 0, alpha * x below; alpha broadcasts against x's sample axes."""
    xp = array_module(x)
    return xp.maximum(x, _c(x, 0)) + alpha * xp.minimum(x, _c(x, 0))


def prelu_backward(x, alpha, dy):
    """(dx, dalpha summed to alpha's shape)."""
    xp = array_module(x)
    negative = xp.minimum(x, _c(x, 0))
    dx = dy * xp.where(x > _c(x, 0), _c(x, 1), alpha)
    contribution = dy * negative
    # Sum over the batch axis and every axis alpha shares (size 1 in alpha).
    axes = (0,) + tuple(i + 1 for i, n in enumerate(alpha.shape) if n == 1)
    dalpha = contribution.sum(axis=axes, keepdims=True)[0]
    return dx, dalpha.reshape(alpha.shape)
