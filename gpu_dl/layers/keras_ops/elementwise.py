"""Element-wise operations of one tensor (``sqrt``, ``exp``, ``sin``, ``gelu``, ...), ``softmax`` and
``log_softmax`` along an axis, and ``maximum``/``minimum``/``clip``."""
from __future__ import annotations

import numpy

from ...ops import numpy_functions as fn
from ..operations import Operation
from .base import MATH, NN, NUMPY, KerasOperation, _axes, _axis_setting, _xp


# ------------------------------------------------------------------ element-wise
def _unary(name, forward, backward, keeps_integers=False, module=NUMPY):
    def forward_array(self, x):
        return forward(x)

    def backward_function(self, dy, operands, y):
        return backward(dy, operands, y)
    return type(name, (KerasOperation,), {"forward_array": forward_array, "backward_function": backward_function,
                                          "keeps_integers": keeps_integers, "keras_module": module,
                                          "__module__": __name__,
                                          "__doc__": f"Keras's {module} {name}: element-wise, one tensor."})




Sqrt = _unary("Sqrt", lambda x: _xp(x).sqrt(x), fn.sqrt_backward)


Square = _unary("Square", lambda x: x * x, fn.square_backward, keeps_integers=True)


Exp = _unary("Exp", lambda x: _xp(x).exp(x), fn.exp_backward)


Log = _unary("Log", lambda x: _xp(x).log(x), fn.log_backward)


Tanh = _unary("Tanh", lambda x: _xp(x).tanh(x), fn.tanh_backward)


Sigmoid = _unary("Sigmoid", fn.sigmoid_forward, fn.sigmoid_backward, module=NN)


Relu = _unary("Relu", fn.relu_forward, fn.relu_backward, keeps_integers=True, module=NN)


class Softmax(KerasOperation):
    keras_module = NN
    keeps_integers = False
    config_keys = ("axis",)

    def __init__(self, axis=-1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _axis_setting(axis)

    def output_shape_of(self, arguments, shapes):
        _axes(self.axis, len(shapes[0]), self._where())
        return tuple(shapes[0])

    def forward_array(self, x):
        return fn.softmax_forward(x, self.axis)

    def backward_function(self, dy, operands, y):
        return fn.softmax_backward(dy, operands, y, self.axis)


class Maximum(KerasOperation):
    """``maximum(x1, x2)``: tensors, numbers or arrays on either side, broadcast as NumPy does."""

    arity = 2
    largest = True

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments, shapes)

    def forward_function(self, a, b):
        return (_xp(a).maximum if self.largest else _xp(a).minimum)(a, b)

    def backward_function(self, dy, operands, y):
        return fn.pick_backward(dy, operands, y, self.largest)


class Minimum(Maximum):
    largest = False


class Clip(KerasOperation):
    config_keys = ("x_min", "x_max")

    def __init__(self, x_min, x_max, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        for bound in (x_min, x_max):
            if not isinstance(bound, (int, float, numpy.integer, numpy.floating)) or isinstance(bound, bool):
                raise TypeError(f"Clip takes numbers as bounds, got {bound!r:.80} of type {type(bound).__name__}.")
        self.x_min = x_min.item() if isinstance(x_min, numpy.generic) else x_min
        self.x_max = x_max.item() if isinstance(x_max, numpy.generic) else x_max

    def forward_array(self, x):
        return fn.clip_forward(x, self.x_min, self.x_max)

    def backward_function(self, dy, operands, y):
        return fn.clip_backward(dy, operands, y, self.x_min, self.x_max)


# ------------------------------------------------------------------ element-wise: trigonometry and activations
Sin = _unary("Sin", lambda x: _xp(x).sin(x), fn.sin_backward)


Cos = _unary("Cos", lambda x: _xp(x).cos(x), fn.cos_backward)


Erf = _unary("Erf", fn.erf_forward, fn.erf_backward, module=MATH)


Silu = _unary("Silu", lambda x: fn.elementwise.silu_forward(x), fn.silu_backward, module=NN)


Softplus = _unary("Softplus", lambda x: fn.elementwise.softplus_forward(x), fn.softplus_backward, module=NN)


class Gelu(KerasOperation):
    """``gelu(x, approximate=True)``: Keras's tanh form by default, the erf form with ``approximate=False``."""

    keras_module = NN
    keeps_integers = False
    config_keys = ("approximate",)

    def __init__(self, approximate=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.approximate = bool(approximate)

    def forward_array(self, x):
        return fn.elementwise.gelu_forward(x, approximate=self.approximate)

    def backward_function(self, dy, operands, y):
        return fn.gelu_backward(dy, operands, y, self.approximate)


class LogSoftmax(Softmax):
    def forward_array(self, x):
        return fn.log_softmax_forward(x, self.axis)

    def backward_function(self, dy, operands, y):
        return fn.log_softmax_backward(dy, operands, y, self.axis)
