"""Activation functions, forward and backward, for NumPy and CuPy arrays alike.

Each ``*_forward(x, ...)`` returns y; each ``*_backward(x, y, dy, ...)``
returns dx from whichever of the input x and output y is cheaper. Constants
are cast to x's dtype so float32 stays float32. Exponentials only see
arguments that cannot overflow, so extreme inputs give no warnings.
"""
from __future__ import annotations

import math

from ..backend import array_module

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_TANH_COEFFICIENT = 0.044715   # Keras's, with sqrt(2 / pi), in the tanh form of GELU


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


def relu_gradient_from_output(negative_slope=0.0, max_value=None, threshold=0.0):
    """True where relu's gradient is exactly a function of its output: without a negative slope and with a
    threshold t >= 0, y is x where x > t (then inside [0, max_value] or max_value itself) and 0 or
    min(0, max_value) elsewhere (NaN included), so y > t and y < max_value hold exactly where x's do, ties
    with t and max_value, infinities and NaN included. A slope puts slope * x below t, which may round to
    0 (or -0.0) where x is not, and a negative t passes x in (t, 0] through as y, so those read x."""
    return not negative_slope and threshold >= 0


def relu_backward(x, y, dy, negative_slope=0.0, max_value=None, threshold=0.0):
    if relu_gradient_from_output(negative_slope, max_value, threshold):
        x = y        # the same mask, bit for bit (see relu_gradient_from_output), without reading x
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


def leaky_relu_gradient_from_output(negative_slope=0.2):
    """True where leaky_relu's gradient is exactly a function of its output: for a slope s in (0, 1], y =
    max(x, s x) is x > 0 where x > 0 and s x <= 0 elsewhere (0 or -0.0 where it underflows, NaN for NaN),
    so y > 0 exactly where x > 0; for s > 1, y is x < 0 where x < 0 and s x >= 0 elsewhere, so y < 0
    exactly where x < 0. A negative slope makes s x positive for negative x, and a zero one makes y NaN at
    x = +-inf (0 * inf), so those read x; so does a slope below 2**-24, which float16 rounds to 0."""
    return negative_slope >= 2.0 ** -24


def leaky_relu_backward(x, y, dy, negative_slope=0.2):
    if leaky_relu_gradient_from_output(negative_slope):
        x = y        # the same comparison, bit for bit (see leaky_relu_gradient_from_output)
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


def celu_forward(x, alpha=1.0):
    """Keras's celu: x above 0, alpha * expm1(x / alpha) below, as a sum like ELU."""
    xp = array_module(x)
    zero = _c(x, 0)
    return xp.maximum(x, zero) + _c(x, alpha) * xp.expm1(xp.minimum(x, zero) / _c(x, alpha))


def celu_backward(x, y, dy, alpha=1.0):
    # 1 above 0 and exp(x / alpha) below: exp(min(x, 0) / alpha) is both, and never overflows for alpha > 0
    xp = array_module(x)
    return dy * xp.exp(xp.minimum(x, _c(x, 0)) / _c(x, alpha))


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


def log_sigmoid_forward(x):
    """Keras's log_sigmoid: -softplus(-x)."""
    return -softplus_forward(-x)


def log_sigmoid_backward(x, y, dy):
    return dy * sigmoid_forward(-x)


def squareplus_forward(x, b=4):
    """Keras's squareplus: (x + sqrt(x^2 + b)) / 2."""
    return (x + array_module(x).sqrt(x * x + _c(x, b))) / _c(x, 2)


def squareplus_backward(x, y, dy, b=4):
    return dy * (_c(x, 1) + x / array_module(x).sqrt(x * x + _c(x, b))) / _c(x, 2)


def silu_forward(x):
    return x * sigmoid_forward(x)


def silu_backward(x, y, dy):
    s = sigmoid_forward(x)
    return dy * (s + x * s * (_c(x, 1) - s))


def mish_forward(x):
    """Keras's mish: x * tanh(softplus(x))."""
    return x * array_module(x).tanh(softplus_forward(x))


def mish_backward(x, y, dy):
    t = array_module(x).tanh(softplus_forward(x))
    return dy * (t + x * (_c(x, 1) - t * t) * sigmoid_forward(x))


# ------------------------------------------------------------------------- GELU
def _erf(x):
    """erf of a NumPy or CuPy array, in its dtype. SciPy (which scikit-learn brings) and cupyx are
    imported at first use, so neither is loaded by programs that never ask for the exact GELU."""
    if array_module(x).__name__ == "cupy":
        from cupyx.scipy.special import erf
    else:
        from scipy.special import erf
    return erf(x).astype(x.dtype, copy=False)   # float16 comes back as float64 from both


def gelu_forward(x, approximate=False):
    """Keras's gelu: x * Phi(x) with Phi the normal CDF through erf, or, with ``approximate``, the tanh
    form 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))); the forms and constants are Keras's."""
    if approximate:
        xp = array_module(x)
        inner = _c(x, math.sqrt(2 / math.pi)) * (x + _c(x, GELU_TANH_COEFFICIENT) * x ** 3)
        return x * (_c(x, 0.5) * (_c(x, 1) + xp.tanh(inner)))
    return x * (_erf(x / _c(x, math.sqrt(2))) + _c(x, 1)) / _c(x, 2)


def gelu_backward(x, y, dy, approximate=False):
    xp = array_module(x)
    if approximate:
        c, a = _c(x, math.sqrt(2 / math.pi)), _c(x, GELU_TANH_COEFFICIENT)
        t = xp.tanh(c * (x + a * x ** 3))
        half = _c(x, 0.5)
        return dy * (half * (_c(x, 1) + t) + half * x * (_c(x, 1) - t * t) * c * (_c(x, 1) + _c(x, 3) * a * x * x))
    # Phi(x) + x * phi(x), phi the normal density
    cdf = (_erf(x / _c(x, math.sqrt(2))) + _c(x, 1)) / _c(x, 2)
    density = xp.exp(-x * x / _c(x, 2)) / _c(x, math.sqrt(2 * math.pi))
    return dy * (cdf + x * density)


# --------------------------------------------------------------- bounded family
def tanh_forward(x):
    return array_module(x).tanh(x)


def tanh_backward(x, y, dy):
    return dy * (_c(x, 1) - y * y)


def tanh_shrink_forward(x):
    """Keras's tanh_shrink: x - tanh(x)."""
    return x - array_module(x).tanh(x)


def tanh_shrink_backward(x, y, dy):
    t = array_module(x).tanh(x)
    return dy * t * t


def hard_tanh_forward(x):
    """Keras's hard_tanh: x clipped to [-1, 1]."""
    return array_module(x).clip(x, _c(x, -1), _c(x, 1))


def hard_tanh_backward(x, y, dy):
    return dy * ((x > _c(x, -1)) & (x < _c(x, 1)))


def sparse_sigmoid_forward(x):
    """Keras's sparse_sigmoid: 0 up to -1, (x + 1) / 2 between, 1 from 1 on; one clip does all three."""
    return array_module(x).clip(_c(x, 0.5) * (x + _c(x, 1)), _c(x, 0), _c(x, 1))


def sparse_sigmoid_backward(x, y, dy):
    return dy * ((x > _c(x, -1)) & (x < _c(x, 1))) * _c(x, 0.5)


def sparse_plus_forward(x):
    """Keras's sparse_plus: 0 up to -1, (x + 1)^2 / 4 between, x from 1 on."""
    xp = array_module(x)
    shifted = xp.clip(x, _c(x, -1), _c(x, 1)) + _c(x, 1)   # 0 up to -1, where the square is then 0 too
    return xp.where(x >= _c(x, 1), x, _c(x, 0.25) * shifted * shifted)


def sparse_plus_backward(x, y, dy):
    # 0, (x + 1) / 2 and 1: (clip(x, -1, 1) + 1) / 2 is all three
    return dy * (array_module(x).clip(x, _c(x, -1), _c(x, 1)) + _c(x, 1)) * _c(x, 0.5)


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


# ------------------------------------------------------------------ shrinkage
def hard_shrink_forward(x, threshold=0.5):
    """Keras's hard_shrink: x where |x| > threshold, else 0."""
    xp = array_module(x)
    return xp.where(xp.abs(x) > _c(x, threshold), x, _c(x, 0))


def hard_shrink_backward(x, y, dy, threshold=0.5):
    return dy * (array_module(x).abs(x) > _c(x, threshold))


def soft_shrink_forward(x, threshold=0.5):
    """Keras's soft_shrink: x - threshold above threshold, x + threshold below -threshold, else 0."""
    # x minus x clipped to [-threshold, threshold] is each of the three, without nested selects
    return x - array_module(x).clip(x, _c(x, -threshold), _c(x, threshold))


def soft_shrink_backward(x, y, dy, threshold=0.5):
    return dy * (array_module(x).abs(x) > _c(x, threshold))


def threshold_forward(x, threshold, default_value):
    """Keras's threshold: x where x > threshold, else default_value (Keras gives neither a default)."""
    return array_module(x).where(x > _c(x, threshold), x, _c(x, default_value))


def threshold_backward(x, y, dy, threshold, default_value):
    return dy * (x > _c(x, threshold))


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


def sparsemax_forward(x, axis=-1):
    """Sparsemax (Martins & Astudillo, 2016): x's Euclidean projection onto the probability simplex along
    ``axis``, max(x - tau, 0) with tau such that each slice sums to 1.

    With z the values sorted in descending order and c_j = z_1 + ... + z_j, the support is the leading run
    of j with z_j > (c_j - 1) / j, found as Keras finds it; with k its size, tau = (c_k - 1) / k, as the
    paper defines it. Keras 3.15 takes tau = (c_1 + ... + c_k - 1) / k instead: the same for k = 1 (a one-hot
    output), larger by (c_1 + ... + c_(k-1)) / k beyond, so its slices then sum to less than 1 (``[0, 0.5,
    1]`` gives ``[0, 0.25, 0.75]`` here and ``[0, 0, 0.25]`` in Keras 3.15).
    """
    xp = array_module(x)
    ranked = -xp.sort(-x, axis=axis)
    cumulative = xp.cumsum(ranked, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    rank = xp.arange(1, x.shape[axis] + 1, dtype=x.dtype).reshape(shape)
    support = ranked - (cumulative - _c(x, 1)) / rank > _c(x, 0)   # a leading run of the ranked values
    size = support.sum(axis=axis, keepdims=True).astype(x.dtype)
    tau = (xp.where(support, ranked, _c(x, 0)).sum(axis=axis, keepdims=True) - _c(x, 1)) / size
    return xp.maximum(x - tau, _c(x, 0))


def sparsemax_backward(x, y, dy, axis=-1):
    # On the support S the Jacobian is I - 1 1^T / |S|: dy less its mean over S; zero off S.
    support = (y > 0).astype(y.dtype)
    mean = (dy * support).sum(axis=axis, keepdims=True) / support.sum(axis=axis, keepdims=True)
    return support * (dy - mean)


# ------------------------------------------------------------------------- GLU
def _glu_halves(x, axis):
    if x.shape[axis] % 2:
        raise ValueError(f"glu splits axis {axis} into two halves, so its size must be even; "
                         f"got an input of shape {tuple(x.shape)}.")
    return array_module(x).split(x, 2, axis=axis)


def glu_forward(x, axis=-1):
    """Keras's glu: a * sigmoid(b), a and b the two halves of x along ``axis`` (which the output halves)."""
    a, b = _glu_halves(x, axis)
    return a * sigmoid_forward(b)


def glu_backward(x, y, dy, axis=-1):
    a, b = _glu_halves(x, axis)
    s = sigmoid_forward(b)
    return array_module(x).concatenate([dy * s, dy * a * s * (_c(x, 1) - s)], axis=axis)


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
