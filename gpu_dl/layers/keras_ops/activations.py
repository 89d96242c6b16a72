"""The activations of ``keras.ops.nn`` (``relu6``, ``leaky_relu``, ``elu``, ``selu``, ``celu``, ``softsign``,
``squareplus``, ``tanh_shrink``, ``hard_tanh``, ``log_sigmoid``, ``hard_sigmoid``, ``sparse_sigmoid``,
``sparse_plus``, ``hard_silu``, ``hard_shrink``, ``soft_shrink``, ``threshold``, ``glu``, ``sparsemax``) and the two
operations of ``keras.src.activations.activations`` (``ReLU``, which ``keras.activations.relu`` records with its
three settings, and ``Mish``) as operations of a graph: Keras's classes, modules and configs, gpu_dl's activation
functions (``gpu_dl/activations.py``, the GPU kernels included) forward and backward.

Their results are floats: an integer input gives floatx.
"""
from __future__ import annotations

import numbers

from .base import NN, KerasOperation, _axes, _axis_setting

ACTIVATIONS = "keras.src.activations.activations"


def _setting(value, name, owner, optional=False):
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: `{name}` must be a number{' or None' if optional else ''}, got {value!r:.80} of "
                        f"type {type(value).__name__}.")
    return value.item() if hasattr(value, "item") else value


class ActivationOperation(KerasOperation):
    """One of gpu_dl's activation functions (``activation``, with the settings ``config_keys`` name) on a tensor."""

    keras_module = NN
    keeps_integers = False
    activation = None

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._function = None

    def function(self):
        """The ActivationFunction of this operation's settings (made once)."""
        if self._function is None:
            from ... import activations     # the catalogue sits above the layers
            self._function = activations.make(self.activation, **{k: getattr(self, k) for k in self.config_keys})
        return self._function

    def forward_array(self, x):
        return self.function()(x)

    def backward_function(self, dy, operands, y):
        return [self.function().grad(operands[0], y, dy)]


def _plain(class_name, activation, module=NN):
    """An operation without settings."""
    return type(class_name, (ActivationOperation,), {
        "activation": activation, "keras_module": module, "__module__": __name__,
        "__doc__": f"Keras's {module} {class_name}: gpu_dl's activation {activation!r}, element-wise."})


Relu6 = _plain("Relu6", "relu6")
Selu = _plain("Selu", "selu")
Softsign = _plain("Softsign", "softsign")
TanhShrink = _plain("TanhShrink", "tanh_shrink")
HardTanh = _plain("HardTanh", "hard_tanh")
LogSigmoid = _plain("LogSigmoid", "log_sigmoid")
HardSigmoid = _plain("HardSigmoid", "hard_sigmoid")
SparseSigmoid = _plain("SparseSigmoid", "sparse_sigmoid")
SparsePlus = _plain("SparsePlus", "sparse_plus")
HardSilu = _plain("HardSilu", "hard_silu")
Mish = _plain("Mish", "mish", module=ACTIVATIONS)


class ReLU(ActivationOperation):
    """``keras.activations.relu(x, negative_slope, max_value, threshold)``: Keras's ``ReLU`` operation."""

    keras_module = ACTIVATIONS
    activation = "relu"
    config_keys = ("negative_slope", "max_value", "threshold")

    def __init__(self, negative_slope=0.0, max_value=None, threshold=0.0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        where = "keras.activations.relu"
        self.negative_slope = _setting(negative_slope, "negative_slope", where)
        self.max_value = _setting(max_value, "max_value", where, optional=True)
        self.threshold = _setting(threshold, "threshold", where)


class LeakyRelu(ActivationOperation):
    activation = "leaky_relu"
    config_keys = ("negative_slope",)

    def __init__(self, negative_slope=0.2, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.negative_slope = _setting(negative_slope, "negative_slope", "leaky_relu")


class Elu(ActivationOperation):
    activation = "elu"
    config_keys = ("alpha",)

    def __init__(self, alpha=1.0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha = _setting(alpha, "alpha", type(self).__name__.lower())


class Celu(Elu):
    activation = "celu"


class Squareplus(ActivationOperation):
    activation = "squareplus"
    config_keys = ("b",)

    def __init__(self, b=4, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.b = _setting(b, "b", "squareplus")


class HardShrink(ActivationOperation):
    activation = "hard_shrink"
    config_keys = ("threshold",)

    def __init__(self, threshold=0.5, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = _setting(threshold, "threshold", self.activation)


class SoftShrink(HardShrink):
    activation = "soft_shrink"


class Threshold(ActivationOperation):
    activation = "threshold"
    config_keys = ("threshold", "default_value")

    def __init__(self, threshold, default_value, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = _setting(threshold, "threshold", "threshold")
        self.default_value = _setting(default_value, "default_value", "threshold")


class Sparsemax(ActivationOperation):
    """``sparsemax(x, axis=-1)``: the Euclidean projection onto the simplex along ``axis`` (gpu_dl's, which Keras
    3.15's differs from once two values are in the support: see ``gpu_dl/activations.py``)."""

    activation = "sparsemax"
    config_keys = ("axis",)

    def __init__(self, axis=-1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _axis_setting(axis)
        if not isinstance(self.axis, int):
            raise TypeError(f"{type(self).__name__.lower()}: `axis` must be one integer, got {axis!r}.")

    def output_shape_of(self, arguments, shapes):
        _axes(self.axis, len(shapes[0]), self._where())
        return tuple(shapes[0])


class Glu(Sparsemax):
    """``glu(x, axis=-1)``: the first half of ``axis`` times the sigmoid of the second; the axis halves."""

    activation = "glu"

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        axis = _axes(self.axis, len(shape), self._where())[0]
        if shape[axis] is not None:
            if shape[axis] % 2:
                raise ValueError(f"{self._where()}: the size of axis {self.axis} must be even (glu splits it in two), "
                                 f"got a tensor of shape {tuple(shape)}.")
            shape[axis] //= 2
        return tuple(shape)


OPERATIONS = {cls.__name__: cls for cls in (
    Relu6, Selu, Softsign, TanhShrink, HardTanh, LogSigmoid, HardSigmoid, SparseSigmoid, SparsePlus, HardSilu, Mish,
    ReLU, LeakyRelu, Elu, Celu, Squareplus, HardShrink, SoftShrink, Threshold, Sparsemax, Glu)}
