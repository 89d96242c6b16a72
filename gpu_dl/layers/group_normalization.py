"""``GroupNormalization``, as Keras 3 has it.

The features along ``axis`` (C of them) are split into ``groups`` groups of
C / groups consecutive features; each sample is normalized within each
group, over that group's features and every other non-batch axis, with the
biased variance, then scaled and shifted per feature by gamma and beta (C
each). ``groups=1`` is layer normalization over all non-batch axes,
``groups=-1`` (C groups) instance normalization; Keras replaces -1 by C when
it builds, and so does gpu_dl (the saved config then says C).

There are no moving statistics: training and inference compute the same.
The arithmetic is ``gpu_dl.ops.normalization``'s, on the input
viewed as (..., groups, C / groups, ...). On the GPU, with the features the
last axis of a C-contiguous float32/float64 CuPy input (channels_last), it
runs as the fused kernels of ``kernels/groupnorm.cu`` (``group_norm_fused``);
other axes and strided inputs run the array operations.
"""
from __future__ import annotations

import numbers

from ..ops.normalization import (GroupStatistics, batch_norm_train, fused_channels_apply, group_norm_fused,
                                 group_norm_fused_backward, normalize_backward)
from .normalization import _integer, _Normalization, _number


class GroupNormalization(_Normalization):
    """Keras 3's ``GroupNormalization(groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, ...)``."""

    # As Keras's, under a float16 policy it normalizes in float32.
    computes_in_float32 = True

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        if (isinstance(groups, bool) or not isinstance(groups, numbers.Integral)
                or (groups <= 0 and groups != -1)):
            raise ValueError("GroupNormalization: groups must be a positive integer (or -1 for instance "
                             f"normalization), got {groups!r}.")
        super().__init__(**kwargs)
        where = f"GroupNormalization layer '{self.name}'"
        if isinstance(axis, (list, tuple)):
            raise ValueError(f"{where}: axis must be one integer (the features' axis, split into groups), got "
                             f"{axis!r}.")
        self.groups = int(groups)
        self.axis = _integer(axis, f"{where}: axis")
        self.epsilon = _number(epsilon, f"{where}: epsilon", 0.0)
        self.center, self.scale = bool(center), bool(scale)
        self.set_weight_arguments(beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                                  beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                                  beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.gamma = self.beta = None

    def _axes(self):
        return (self.axis,)

    def build(self, input_shape):
        _, (channels,) = self._built_sizes(input_shape)
        groups = channels if self.groups == -1 else self.groups
        if groups > channels or channels % groups:
            raise ValueError(f"GroupNormalization layer '{self.name}': {channels} features along axis {self.axis} "
                             f"do not split into {groups} groups of equal size; groups must divide the number of "
                             "features.")
        self.groups = groups
        if self.scale:
            self.gamma = self.add_weight((channels,), self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight((channels,), self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)

    def _grouped(self, x):
        """``x`` viewed as (..., groups, C / groups, ...); the statistics' axes, the parameters' axes (summed
        for their gradients) and the parameters' broadcast shape in that view."""
        (position,) = self._positions(x.ndim)
        shape = tuple(x.shape)
        view = shape[:position] + (self.groups, shape[position] // self.groups) + shape[position + 1:]
        stat_axes = tuple(i for i in range(1, len(view)) if i != position)
        param_axes = tuple(i for i in range(len(view)) if i not in (position, position + 1))
        param_shape = tuple(view[i] if i in (position, position + 1) else 1 for i in range(len(view)))
        return x.reshape(view), stat_axes, param_axes, param_shape

    def call(self, x, training=False):
        gamma, beta = (None if v is None else v.value for v in (self.gamma, self.beta))
        if fused_channels_apply(x, self.axis, gamma, beta):
            y, saved = group_norm_fused(x, self.groups, self.epsilon, gamma, beta)
            self._saved = saved if training else None
            return y
        grouped, stat_axes, _, shape = self._grouped(x)
        y, _, _, saved = batch_norm_train(grouped, stat_axes, self.epsilon, self._param(self.gamma, shape),
                                          self._param(self.beta, shape))
        self._saved = saved if training else None
        return y.reshape(x.shape)

    def backward(self, dy):
        saved = self.saved()
        if isinstance(saved, GroupStatistics):     # the forward ran kernels/groupnorm.cu
            return self._backward_fused(dy, saved)
        grouped_dy, stat_axes, param_axes, shape = self._grouped(dy)
        dx, dgamma, dbeta = normalize_backward(
            grouped_dy, saved, stat_axes, param_axes, self._param(self.gamma, shape), through_statistics=True,
            need_input_grad=self.input_gradient_wanted,
            need_param_grads=self.trainable and (self.scale or self.center))
        self._set_parameter_gradients(dgamma, dbeta)
        return None if dx is None else dx.reshape(dy.shape)

    def _backward_fused(self, dy, saved):
        gamma = None if self.gamma is None else self.gamma.value
        dx, dgamma, dbeta = group_norm_fused_backward(
            dy, saved, gamma, need_input_grad=self.input_gradient_wanted,
            need_param_grads=self.trainable and (self.scale or self.center))
        self._set_parameter_gradients(dgamma, dbeta)
        return dx

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, **self.weight_arguments_config()}
