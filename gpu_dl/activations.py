"""Keras 3's activation functions, each paired with its gradient.

The public functions (``relu(x, ...)``, ``gelu(x, approximate=False)``,
``softmax(x, axis=-1)``, ...) compute the forward value on NumPy or CuPy
arrays, as ``keras.activations.*`` do, with Keras's names, arguments and
defaults: relu, leaky_relu, relu6, elu, selu, celu, softplus, softsign,
squareplus, silu (swish), gelu, mish, tanh, tanh_shrink, hard_tanh, sigmoid,
log_sigmoid, hard_sigmoid, sparse_sigmoid, sparse_plus, hard_silu
(hard_swish), hard_shrink, soft_shrink, threshold, exponential, linear, and
along an axis softmax, log_softmax, sparsemax and glu.

On CuPy float arrays an ``ActivationFunction`` runs the first set of
elementwise ones (``activation_kernels.KIND``) as one kernel each way
(``ops/activation_kernels.py``), with a layer's bias add fused into the
forward (``with_bias``); the others run as CuPy array arithmetic.
Layers hold an ``ActivationFunction`` from ``get(identifier)``: the forward
function, its backward, and its parameters (``make("celu", alpha=0.5)``).

Where gpu_dl differs: ``threshold`` has no defaults for its two arguments, as
in Keras, so ``get("threshold")`` is an error that says to use ``make``;
glu halves the axis it splits, which Dense, Conv2D and the recurrent layers
refuse (``get_keeping_shape``) and an Activation layer reports in its output
shape; sparsemax projects onto the simplex as its paper defines, with the
threshold (c_k - 1) / k (c_j the cumulative sums of the values sorted in
descending order, k the size of the support) where Keras 3.15 takes
(c_1 + ... + c_k - 1) / k: the same outputs when one value is in the support,
smaller ones (summing to less than 1) when more are (``ops/elementwise.py``).
Beyond Keras: ``step``, the binary step (gradient zero everywhere).

A function of the caller's own (``Dense(1, activation=custom_fn)``, ``Activation(custom_fn)``), as Keras takes
any callable, is a ``TracedActivation``: written with ``gpu_dl.ops`` and the operators on its argument, it is
traced on a symbolic tensor into a graph whose backward is its gradient (as a loss of the caller's own is,
``models/loss_graph.py``). Configs write it as Keras does, by its registered name.
"""
from __future__ import annotations

import functools
import inspect

from .catalogue import from_keras_config, lookup
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

    @property
    def keeps_shape(self):
        """False for glu, whose output is half its input along ``axis``; every other activation keeps it."""
        return self.name != "glu"

    @property
    def gradient_reads_input(self):
        """False where ``grad(x, y, dy)`` reads only y and dy (x for its dtype alone), so a layer may pass y
        as x and need not keep its pre-activation for the backward: for some activations only with some
        parameters (relu without a negative slope and with a threshold >= 0, relu6, leaky_relu with a positive
        slope)."""
        if self.name in _GRADIENT_FROM_OUTPUT_WHEN:
            return not _GRADIENT_FROM_OUTPUT_WHEN[self.name](**self.params)
        return self.name not in _GRADIENT_FROM_OUTPUT

    def output_shape(self, input_shape):
        """The shape of ``f(x)`` for an ``x`` of ``input_shape`` (None for a size not known yet)."""
        shape = list(input_shape)
        if self.keeps_shape:
            return tuple(shape)
        axis = self.params.get("axis", -1)
        if not -len(shape) <= axis < len(shape):
            raise ValueError(f"activation {self.name!r}: axis {axis} does not exist in inputs of shape {tuple(shape)}.")
        if shape[axis] is not None:
            if shape[axis] % 2:
                raise ValueError(f"activation {self.name!r} splits axis {axis} into two halves, so its size must be "
                                 f"even; got inputs of shape {tuple(shape)}.")
            shape[axis] //= 2
        return tuple(shape)

    def __call__(self, x):
        if _is_symbolic(x):
            # In a traced call (a custom layer's ``self.activation(x)``) the public function records the op.
            return _PUBLIC_BY_NAME[self.name](x, **self.params)
        if activation_kernels.has_kernel(self.name, x):
            return activation_kernels.bias_activation_cuda(_contiguous(x), None, self.name, self.params)[1]
        return self._forward(x, **self.params)

    def with_bias(self, z, bias, want_z=True):
        """``(z + bias, f(z + bias))`` with the bias added to ``z`` in place (``z`` is the caller's own
        fresh array, e.g. a matrix product's output); one fused kernel on the GPU. ``bias`` may be None.
        With ``want_z=False`` (a layer whose backward needs no z: ``gradient_reads_input`` False) the
        kernel writes y alone and the z returned is None (y for the identity); the array path returns z."""
        if activation_kernels.has_kernel(self.name, z) and z.flags.c_contiguous:
            if bias is not None:   # the cast NumPy's in-place add would make; a no-op in a layer
                bias = _contiguous(bias.astype(z.dtype, copy=False))
            return activation_kernels.bias_activation_cuda(z, bias, self.name, self.params, want_z=want_z)
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


# The activations whose gradient is a function of the output: tanh 1 - y**2, sigmoid y (1 - y), exponential y;
# linear and step read neither (both paths: ops/elementwise.py and activation_bwd of kernels/activations.cu).
_GRADIENT_FROM_OUTPUT = frozenset({"linear", "tanh", "sigmoid", "exponential", "step"})
# ... and those whose gradient's mask is one of the output for some parameters (ops/elementwise.py says which
# and why; the kernel's case is activation_bwd's y_as_x). elu's, selu's and celu's exp(x) is not y / alpha + 1
# to the bit (y is alpha * expm1(x), rounded), nor softplus's sigmoid(x) 1 - exp(-y), nor hard_sigmoid's
# inside (-3, 3) a function of its rounded x / 6 + 1/2: those read x.
_GRADIENT_FROM_OUTPUT_WHEN = {"relu": ew.relu_gradient_from_output, "relu6": lambda: True,
                              "leaky_relu": ew.leaky_relu_gradient_from_output}


class TracedActivation(ActivationFunction):
    """A function of the caller's own as an activation: ``fn`` is traced on a symbolic tensor of the input's
    sample shape (batch axis None) and dtype into a graph (one per shape and dtype) of ``gpu_dl.ops``; its forward
    is the activation, its backward the gradient. The gradient runs the forward again on the same input, so a
    layer called several times before its backward passes keeps nothing between them."""

    def __init__(self, fn):
        super().__init__(getattr(fn, "__name__", type(fn).__name__), None, None)
        self.fn = fn
        self._graphs = {}

    @property
    def is_softmax(self):
        return False

    @property
    def keeps_shape(self):
        return True

    @property
    def gradient_reads_input(self):
        return True    # its gradient runs the traced function again on the input

    def _graph(self, shape, dtype):
        key = (tuple(shape[1:]), str(dtype))
        if key not in self._graphs:
            self._graphs[key] = self._trace(tuple(shape[1:]), dtype)
        graph, error = self._graphs[key]
        if error is not None:
            raise error
        return graph

    def _trace(self, sample_shape, dtype):
        """``(graph, None)``, or ``(None, the error to raise)``."""
        from .layers.core import InputLayer          # layers and models sit above the catalogues
        from .layers.symbolic import is_symbolic, tracing
        from .models.functional import Functional
        from .models.loss_graph import _own_names
        where = f"activation {self.name!r}"
        with _own_names():
            x = InputLayer(shape=sample_shape, dtype=dtype, name="x").output
            try:
                with tracing([x]):
                    y = self.fn(x)
            except Exception as e:      # whatever the caller's function does on tensors it was not written for
                return None, TypeError(
                    f"{where} cannot be trained: gpu_dl has no automatic differentiation, so it traces the function "
                    f"on a symbolic tensor of shape {(None,) + sample_shape} into a graph, and the call failed "
                    f"({type(e).__name__}: {e}). Write it with gpu_dl.ops functions and the operators + - * / ** on "
                    "its argument (no NumPy functions, no Python `if` on its values).")
            if not is_symbolic(y):
                return None, TypeError(f"{where} returned {type(y).__name__} for a symbolic tensor: it must compute "
                                       "its output from its argument with gpu_dl.ops functions and operators.")
            if tuple(y.shape[1:]) != sample_shape:
                return None, ValueError(f"{where} gives outputs of shape {tuple(y.shape)} for inputs of shape "
                                        f"{(None,) + sample_shape}: a layer's activation must keep the shape.")
            return Functional(x, y, name=f"{self.name}_graph"), None

    def __call__(self, x):
        if hasattr(x, "_keras_history") or not hasattr(x, "dtype"):
            return self.fn(x)       # symbolic tensors: the function's own operations are recorded
        return self._graph(x.shape, x.dtype).forward(x, training=False)

    def with_bias(self, z, bias, want_z=True):
        if bias is not None:
            z += bias
        return z, self(z)

    def grad(self, x, y, dy):
        graph = self._graph(x.shape, x.dtype)
        graph.forward(x, training=True)
        return graph.backward(dy)

    def __repr__(self):
        return f"TracedActivation({self.fn!r})"


def _contiguous(a):
    return a if a.flags.c_contiguous else a.copy()


def _records(operation):
    """On a symbolic tensor, the public function records what Keras's does: ``operation`` names a function of
    ``gpu_dl.ops`` (``"leaky_relu"`` records Keras's ``LeakyRelu``) or, as ``"class:ReLU"``, an operation class of
    ``layers/keras_ops`` (Keras's ``keras.src.activations.activations`` ``ReLU`` and ``Mish``), given the
    function's arguments in order, its defaults filled in. The layers (which import this module) are imported at
    the first such call."""
    def decorate(function):
        @functools.wraps(function)
        def public(x, *args, **kwargs):
            if _is_symbolic(x):
                from .layers import keras_ops
                # This function's defaults, not the op's: activations.gelu is exact, ops.gelu approximate.
                arguments = inspect.signature(function).bind(x, *args, **kwargs)
                arguments.apply_defaults()
                if operation.startswith("class:"):
                    cls = getattr(keras_ops.operations, operation[len("class:"):])
                    return keras_ops.activation(cls, *arguments.args)
                return getattr(keras_ops, operation)(*arguments.args)
            return function(x, *args, **kwargs)
        return public
    return decorate


def _is_symbolic(x):
    from .layers.symbolic import KerasTensor
    return isinstance(x, KerasTensor)


# name -> (forward, backward); the public functions below are thin wrappers.
_PAIRS = {
    "relu": (ew.relu_forward, ew.relu_backward),
    "leaky_relu": (ew.leaky_relu_forward, ew.leaky_relu_backward),
    "relu6": (ew.relu6_forward, ew.relu6_backward),
    "elu": (ew.elu_forward, ew.elu_backward),
    "selu": (ew.selu_forward, ew.selu_backward),
    "celu": (ew.celu_forward, ew.celu_backward),
    "softplus": (ew.softplus_forward, ew.softplus_backward),
    "softsign": (ew.softsign_forward, ew.softsign_backward),
    "squareplus": (ew.squareplus_forward, ew.squareplus_backward),
    "silu": (ew.silu_forward, ew.silu_backward),
    "gelu": (ew.gelu_forward, ew.gelu_backward),
    "mish": (ew.mish_forward, ew.mish_backward),
    "tanh": (ew.tanh_forward, ew.tanh_backward),
    "tanh_shrink": (ew.tanh_shrink_forward, ew.tanh_shrink_backward),
    "hard_tanh": (ew.hard_tanh_forward, ew.hard_tanh_backward),
    "sigmoid": (ew.sigmoid_forward, ew.sigmoid_backward),
    "log_sigmoid": (ew.log_sigmoid_forward, ew.log_sigmoid_backward),
    "hard_sigmoid": (ew.hard_sigmoid_forward, ew.hard_sigmoid_backward),
    "sparse_sigmoid": (ew.sparse_sigmoid_forward, ew.sparse_sigmoid_backward),
    "sparse_plus": (ew.sparse_plus_forward, ew.sparse_plus_backward),
    "hard_silu": (ew.hard_silu_forward, ew.hard_silu_backward),
    "hard_shrink": (ew.hard_shrink_forward, ew.hard_shrink_backward),
    "soft_shrink": (ew.soft_shrink_forward, ew.soft_shrink_backward),
    "threshold": (ew.threshold_forward, ew.threshold_backward),
    "exponential": (ew.exponential_forward, ew.exponential_backward),
    "linear": (ew.linear_forward, ew.linear_backward),
    "softmax": (ew.softmax_forward, ew.softmax_backward),
    "log_softmax": (ew.log_softmax_forward, ew.log_softmax_backward),
    "sparsemax": (ew.sparsemax_forward, ew.sparsemax_backward),
    "glu": (ew.glu_forward, ew.glu_backward),
    "step": (ew.step_forward, ew.step_backward),
}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def make(name, **params):
    """The ActivationFunction ``name`` with parameters, e.g. ``make("elu", alpha=0.5)``."""
    name = _ALIASES.get(name, name)
    forward, backward = _PAIRS[name]
    _check_parameters(name, forward, params)
    return ActivationFunction(name, forward, backward, **params)


def _check_parameters(name, forward, params):
    """A TypeError now, rather than at the first call, for a parameter ``name`` does not take or one it
    needs (``threshold`` takes ``threshold`` and ``default_value`` and, as in Keras, defaults neither)."""
    taken = list(inspect.signature(forward).parameters.values())[1:]
    unknown = sorted(set(params) - {p.name for p in taken})
    if unknown:
        raise TypeError(f"activation {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                        f"it takes {[p.name for p in taken] or 'none'}.")
    missing = [p.name for p in taken if p.default is inspect.Parameter.empty and p.name not in params]
    if missing:
        example = ", ".join(f"{p}=..." for p in missing)
        raise TypeError(f"activation {name!r} needs {' and '.join(map(repr, missing))}, which have no default: "
                        f"use gpu_dl.activations.make({name!r}, {example}).")


@_records("class:ReLU")
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    return ew.relu_forward(x, negative_slope, max_value, threshold)


@_records("leaky_relu")
def leaky_relu(x, negative_slope=0.2):
    return ew.leaky_relu_forward(x, negative_slope)


@_records("relu6")
def relu6(x):
    return ew.relu6_forward(x)


@_records("elu")
def elu(x, alpha=1.0):
    return ew.elu_forward(x, alpha)


@_records("selu")
def selu(x):
    return ew.selu_forward(x)


@_records("celu")
def celu(x, alpha=1.0):
    return ew.celu_forward(x, alpha)


@_records("softplus")
def softplus(x):
    return ew.softplus_forward(x)


@_records("softsign")
def softsign(x):
    return ew.softsign_forward(x)


@_records("squareplus")
def squareplus(x, b=4):
    return ew.squareplus_forward(x, b)


@_records("silu")
def silu(x):
    return ew.silu_forward(x)


swish = silu


@_records("gelu")
def gelu(x, approximate=False):
    return ew.gelu_forward(x, approximate)


@_records("class:Mish")
def mish(x):
    return ew.mish_forward(x)


@_records("tanh")
def tanh(x):
    return ew.tanh_forward(x)


@_records("tanh_shrink")
def tanh_shrink(x):
    return ew.tanh_shrink_forward(x)


@_records("hard_tanh")
def hard_tanh(x):
    return ew.hard_tanh_forward(x)


@_records("sigmoid")
def sigmoid(x):
    return ew.sigmoid_forward(x)


@_records("log_sigmoid")
def log_sigmoid(x):
    return ew.log_sigmoid_forward(x)


@_records("hard_sigmoid")
def hard_sigmoid(x):
    return ew.hard_sigmoid_forward(x)


@_records("sparse_sigmoid")
def sparse_sigmoid(x):
    return ew.sparse_sigmoid_forward(x)


@_records("sparse_plus")
def sparse_plus(x):
    return ew.sparse_plus_forward(x)


@_records("hard_silu")
def hard_silu(x):
    return ew.hard_silu_forward(x)


hard_swish = hard_silu


@_records("hard_shrink")
def hard_shrink(x, threshold=0.5):
    return ew.hard_shrink_forward(x, threshold)


@_records("soft_shrink")
def soft_shrink(x, threshold=0.5):
    return ew.soft_shrink_forward(x, threshold)


@_records("threshold")
def threshold(x, threshold, default_value):
    return ew.threshold_forward(x, threshold, default_value)


@_records("exp")
def exponential(x):
    return ew.exponential_forward(x)


def linear(x):
    return x


@_records("softmax")
def softmax(x, axis=-1):
    return ew.softmax_forward(x, axis)


@_records("log_softmax")
def log_softmax(x, axis=-1):
    return ew.log_softmax_forward(x, axis)


@_records("sparsemax")
def sparsemax(x, axis=-1):
    return ew.sparsemax_forward(x, axis)


@_records("glu")
def glu(x, axis=-1):
    return ew.glu_forward(x, axis)


def step(x):
    if _is_symbolic(x):
        raise TypeError("gpu_dl.activations.step has no Keras operation to record on a symbolic tensor; use "
                        "layers.Activation('step') in a model.")
    return ew.step_forward(x)


_PUBLIC = {fn: name for name, fn in {
    "relu": relu, "leaky_relu": leaky_relu, "relu6": relu6, "elu": elu, "selu": selu, "celu": celu,
    "softplus": softplus, "softsign": softsign, "squareplus": squareplus, "silu": silu, "gelu": gelu,
    "mish": mish, "tanh": tanh, "tanh_shrink": tanh_shrink, "hard_tanh": hard_tanh, "sigmoid": sigmoid,
    "log_sigmoid": log_sigmoid, "hard_sigmoid": hard_sigmoid, "sparse_sigmoid": sparse_sigmoid,
    "sparse_plus": sparse_plus, "hard_silu": hard_silu, "hard_shrink": hard_shrink, "soft_shrink": soft_shrink,
    "threshold": threshold, "exponential": exponential, "linear": linear, "softmax": softmax,
    "log_softmax": log_softmax, "sparsemax": sparsemax, "glu": glu, "step": step,
}.items()}
_PUBLIC_BY_NAME = {name: fn for fn, name in _PUBLIC.items()}
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
    if callable(identifier) and not isinstance(identifier, type):
        return TracedActivation(identifier)
    raise TypeError(
        f"activation must be a name such as 'relu', one of gpu_dl.activations' functions, a function written with "
        f"gpu_dl.ops, or None; got {identifier!r}."
    )


def get_keeping_shape(identifier, where):
    """``get(identifier)`` for a layer that gives its output's shape itself (Dense, Conv2D, the recurrent
    layers): glu, which halves an axis, is refused there with a ValueError naming ``where``. Keras 3 takes
    it, yet reports the unhalved shape (``Dense(4, activation="glu")`` says (None, 4) and returns
    (batch, 2)), so the layers after it are built for the wrong size; an Activation layer halves the
    shape it reports."""
    activation = get(identifier)
    if not activation.keeps_shape:
        raise ValueError(f"{where}: activation {activation.name!r} halves the axis it splits, which this layer's "
                         f"output shape does not allow for (Keras 3 reports the unhalved shape). Give the layer "
                         f"twice the units or filters and follow it with Activation({activation.name!r}).")
    return activation


def serialize(activation):
    """What Keras writes in a layer config: the name (e.g. ``"relu"``), or for a function of the caller's own its
    entry by registered name (``{"module": "builtins", "class_name": "function", "config": "package>name",
    ...}``)."""
    activation = get(activation)
    if isinstance(activation, TracedActivation):
        from .catalogue import get_registered_name
        fn = activation.fn
        if not inspect.isfunction(fn) or fn.__name__ == "<lambda>":
            raise ValueError(f"activation {fn!r} cannot be written to a config: functions are written by name, so "
                             "only named functions (def) can be; a lambda would have to be saved as code, which "
                             "loading never runs.")
        return {"module": "builtins", "class_name": "function", "config": get_registered_name(fn),
                "registered_name": "function"}
    return activation.name


def deserialize(config, custom_objects=None):
    """The activation a name or a ``serialize`` dict (or a Keras one) describes; ``custom_objects`` maps names to
    functions."""
    if isinstance(config, dict) and config.get("class_name") == "function" and config.get("config") not in _TABLE:
        # a user's function, found by the name it was written under (registry, scope, custom_objects)
        config = from_keras_config("activations", config, {}, custom_objects)
    return get(config)
