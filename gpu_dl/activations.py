"""Keras 3's activation functions, each paired with its gradient.

The public functions (``relu(x, ...)``, ``softmax(x, axis=-1)``, ...) compute
the forward value on NumPy or CuPy arrays, as ``keras.activations.*`` do.
On CuPy float arrays an ``ActivationFunction`` runs the elementwise ones as
one kernel each way (``ops/activation_kernels.py``), with a layer's bias add
fused into the forward (``with_bias``).
Layers hold an ``ActivationFunction`` from ``get(identifier)``: the forward
function, its backward, and its parameters. Beyond Keras: ``step``, the
binary step (gradient zero everywhere).
"""
from __future__ import annotations

from .catalogue import lookup
from .ops import activation_kernels
from .ops import elementwise as ew


class ActivationFunction:
    """An activation with its gradient: ``y = f(x)``, ``dx = f.grad(x, y, dy)``."""

    def __init__(self, name, forward, backward, **params):
        self.name = name
        self._forward = forward
        self._backward = backward
        self.params = params

    @property
    def is_softmax(self):
        """True for a softmax over the last axis, which a model may fuse with cross-entropy."""
        return self.name == "softmax" and self.params.get("axis", -1) == -1

    def __call__(self, x):
        if activation_kernels.has_kernel(self.name, x):
            return activation_kernels.bias_activation_cuda(_contiguous(x), None, self.name, self.params)[1]
        return self._forward(x, **self.params)

    def with_bias(self, z, bias):
        """``(z + bias, f(z + bias))`` with the bias added to ``z`` in place (``z`` is the caller's own
        fresh array, e.g. a matrix product's output); one fused kernel on the GPU. ``bias`` may be None."""
        if activation_kernels.has_kernel(self.name, z) and z.flags.c_contiguous:
            if bias is not None:   # the cast NumPy's in-place add would make; a no-op in a layer
                bias = _contiguous(bias.astype(z.dtype, copy=False))
            return activation_kernels.bias_activation_cuda(z, bias, self.name, self.params)
        if bias is not None:
            z += bias
        return z, self(z)

    def grad(self, x, y, dy):
        # The identity's gradient is dy itself; a dy of another dtype or a broadcast shape takes the
        # array path, whose result dtype and broadcasting NumPy's rules decide.
        if (self.name != "linear" and activation_kernels.has_kernel(self.name, x)
                and getattr(dy, "dtype", None) == x.dtype and getattr(dy, "shape", None) == x.shape):
            return activation_kernels.activation_backward_cuda(_contiguous(x), _contiguous(y), _contiguous(dy),
                                                               self.name, self.params)
        return self._backward(x, y, dy, **self.params)

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"ActivationFunction({self.name!r}{args})"


def _contiguous(a):
    return a if a.flags.c_contiguous else a.copy()


# name -> (forward, backward); the public functions below are thin wrappers.
_PAIRS = {
    "relu": (ew.relu_forward, ew.relu_backward),
    "leaky_relu": (ew.leaky_relu_forward, ew.leaky_relu_backward),
    "relu6": (ew.relu6_forward, ew.relu6_backward),
    "elu": (ew.elu_forward, ew.elu_backward),
    "selu": (ew.selu_forward, ew.selu_backward),
    "softplus": (ew.softplus_forward, ew.softplus_backward),
    "softsign": (ew.softsign_forward, ew.softsign_backward),
    "silu": (ew.silu_forward, ew.silu_backward),
    "tanh": (ew.tanh_forward, ew.tanh_backward),
    "sigmoid": (ew.sigmoid_forward, ew.sigmoid_backward),
    "hard_sigmoid": (ew.hard_sigmoid_forward, ew.hard_sigmoid_backward),
    "hard_silu": (ew.hard_silu_forward, ew.hard_silu_backward),
    "exponential": (ew.exponential_forward, ew.exponential_backward),
    "linear": (ew.linear_forward, ew.linear_backward),
    "softmax": (ew.softmax_forward, ew.softmax_backward),
    "log_softmax": (ew.log_softmax_forward, ew.log_softmax_backward),
    "step": (ew.step_forward, ew.step_backward),
}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def make(name, **params):
    """The ActivationFunction ``name`` with parameters, e.g. ``make("elu", alpha=0.5)``."""
    name = _ALIASES.get(name, name)
    forward, backward = _PAIRS[name]
    return ActivationFunction(name, forward, backward, **params)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    return ew.relu_forward(x, negative_slope, max_value, threshold)


def leaky_relu(x, negative_slope=0.2):
    return ew.leaky_relu_forward(x, negative_slope)


def relu6(x):
    return ew.relu6_forward(x)


def elu(x, alpha=1.0):
    return ew.elu_forward(x, alpha)


def selu(x):
    return ew.selu_forward(x)


def softplus(x):
    return ew.softplus_forward(x)


def softsign(x):
    return ew.softsign_forward(x)


def silu(x):
    return ew.silu_forward(x)


swish = silu


def tanh(x):
    return ew.tanh_forward(x)


def sigmoid(x):
    return ew.sigmoid_forward(x)


def hard_sigmoid(x):
    return ew.hard_sigmoid_forward(x)


def hard_silu(x):
    return ew.hard_silu_forward(x)


hard_swish = hard_silu


def exponential(x):
    return ew.exponential_forward(x)


def linear(x):
    return x


def softmax(x, axis=-1):
    return ew.softmax_forward(x, axis)


def log_softmax(x, axis=-1):
    return ew.log_softmax_forward(x, axis)


def step(x):
    return ew.step_forward(x)


_PUBLIC = {fn: name for name, fn in {
    "relu": relu, "leaky_relu": leaky_relu, "relu6": relu6, "elu": elu, "selu": selu, "softplus": softplus,
    "softsign": softsign, "silu": silu, "tanh": tanh, "sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid,
    "hard_silu": hard_silu, "exponential": exponential, "linear": linear, "softmax": softmax,
    "log_softmax": log_softmax, "step": step,
}.items()}
_TABLE = {name: name for name in _PAIRS} | _ALIASES


def get(identifier):
    """An ActivationFunction from None (linear), a name, one of this module's functions, or an ActivationFunction."""
    if identifier is None:
        return make("linear")
    if isinstance(identifier, ActivationFunction):
        return identifier
    if isinstance(identifier, str):
        return make(lookup("activations", identifier, _TABLE))
    if isinstance(identifier, dict) and "config" in identifier and isinstance(identifier["config"], str):
        return get(identifier["config"])
    if callable(identifier) and identifier in _PUBLIC:
        return make(_PUBLIC[identifier])
    raise TypeError(
        f"activation must be a name such as 'relu', one of gpu_dl.activations' functions, or None; got {identifier!r}. "
        "Arbitrary functions have no gradient in gpu_dl: use an Activation layer with a built-in name."
    )


def serialize(activation):
    """The name Keras writes in a layer config (e.g. ``"relu"``)."""
    return get(activation).name


def deserialize(name):
    return get(name)
