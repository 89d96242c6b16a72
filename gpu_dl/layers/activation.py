"""Activation layers: Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax."""
from __future__ import annotations

import numbers

from .. import activations
from ..ops.elementwise import prelu_backward, prelu_forward
from .base import Layer


def _number(value, what, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{what} must be a number{bound}, got {value!r}.")
    return float(value)


class _ElementwiseActivation(Layer):
    """Applies ``self.activation``; keeps its input as the pre-activation a fused loss may ask for."""

    fixed_input_axes = ()
    supports_masking = True
    leaves_activation_to_loss = True

    def call(self, x, training=False):
        # activation_left_to_loss: the model's loss computes the softmax, whose probabilities are its output
        y = x if self.activation_left_to_loss else self.activation(x)
        self._saved = (x, y) if training else None
        self._preactivation = x if self.keep_preactivation else None
        return y

    def backward(self, dy, through_activation=True):
        x, y = self.saved()
        return self.activation.grad(x, y, dy) if through_activation else dy


class Activation(_ElementwiseActivation):
    """``Activation("relu")``: applies a named activation. With ``"glu"`` the output is half the input along
    the split axis, and the shape this layer reports says so (Keras 3 reports the input's shape)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def build(self, input_shape):
        if not self.activation.keeps_shape and self.activation.params.get("axis", -1) % len(input_shape) == 0:
            raise ValueError(f"Activation '{self.name}': {self.activation.name!r} would split the batch axis "
                             f"of inputs {tuple(input_shape)}; give it a feature axis.")
        self.compute_output_shape(input_shape)   # an odd size to halve is an error now, not at the first call

    def compute_output_shape(self, input_shape):
        return self.activation.output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class ReLU(_ElementwiseActivation):
    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = None if max_value is None else _number(max_value, f"ReLU '{self.name}': max_value", 0)
        self.negative_slope = _number(negative_slope, f"ReLU '{self.name}': negative_slope", 0)
        self.threshold = _number(threshold, f"ReLU '{self.name}': threshold")
        self.activation = activations.make("relu", negative_slope=self.negative_slope,
                                           max_value=self.max_value, threshold=self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class LeakyReLU(_ElementwiseActivation):
    """``LeakyReLU(negative_slope=0.3)``; Keras 2's ``alpha=`` is accepted too."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = _number(negative_slope, f"LeakyReLU '{self.name}': negative_slope", 0)
        self.activation = activations.make("leaky_relu", negative_slope=self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ElementwiseActivation):
    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(alpha, f"ELU '{self.name}': alpha")
        self.activation = activations.make("elu", alpha=self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_ElementwiseActivation):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"Softmax '{self.name}': axis must be an integer, got {axis!r}.")
        self.axis = int(axis)
        self.activation = activations.make("softmax", axis=self.axis)

    def build(self, input_shape):
        if not -len(input_shape) <= self.axis < len(input_shape) or self.axis % len(input_shape) == 0:
            raise ValueError(f"Softmax '{self.name}': axis {self.axis} is not a feature axis of inputs "
                             f"{tuple(input_shape)}.")

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class PReLU(Layer):
    """``x`` where x >= 0, ``alpha * x`` below, with a learned ``alpha`` per feature (shared along ``shared_axes``)."""

    supports_masking = True       # elementwise: the mask of padded steps passes on, as in Keras

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.set_weight_arguments(alpha_initializer=alpha_initializer, alpha_regularizer=alpha_regularizer,
                                  alpha_constraint=alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = [shared_axes] if isinstance(shared_axes, numbers.Integral) else list(shared_axes)
            if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) or a < 1 for a in axes):
                raise ValueError(f"PReLU '{self.name}': shared_axes must be axes >= 1 (0 is the batch), "
                                 f"got {shared_axes!r}.")
            self.shared_axes = [int(a) for a in axes]
        self.alpha = None

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            if axis > len(shape):
                raise ValueError(f"PReLU '{self.name}': shared axis {axis} does not exist in inputs "
                                 f"{tuple(input_shape)}.")
            shape[axis - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(f"PReLU '{self.name}': unknown sizes {tuple(input_shape)} must be shared (shared_axes).")
        self.alpha = self.add_weight(tuple(shape), self.alpha_initializer, name="alpha",
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)

    def call(self, x, training=False):
        self._saved = (x,) if training else None
        return prelu_forward(x, self.alpha.value)

    def backward(self, dy):
        (x,) = self.saved()
        dx, dalpha = prelu_backward(x, self.alpha.value, dy)
        if self.trainable:
            self.alpha.grad = dalpha
        return dx

    def get_config(self):
        return {**super().get_config(),
                **self.weight_arguments_config(),
                "shared_axes": self.shared_axes}
