"""``Conv3D`` (and Keras's ``Convolution3D`` name for it): convolution over volumes (N, D, H, W, C) with
Keras 3's arguments, kernel (kd, kh, kw, in_channels / groups, filters), bias (filters,).

It shares ``BaseConv``'s arguments, checks, weights and config; its passes run ``ops/conv3d.py``, which
calls the 2-D convolution ops once per kernel depth tap (conv2d.cu's kernels on the GPU).
"""
from __future__ import annotations

from ..ops.conv3d import conv3d_backward_input, conv3d_backward_kernel, conv3d_forward
from .conv import BaseConv
from .spatial import contiguous


class Conv3D(BaseConv):
    """``activation(conv(x, kernel) + bias)`` over (batch, depth, height, width, channels) volumes; "same"
    padding puts the odd pad after (back/bottom/right), as Keras does."""

    rank = 3

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1, 1), groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))
        args, _ = self._geometry(x.shape)
        z = conv3d_forward(x, self.kernel.value, groups=self.groups, **args)
        return self.biased_activation(x, z, args, training)

    def backward(self, dy, through_activation=True):
        x, dz, args = self.preactivation_gradient(dy, through_activation)
        kernel = self.kernel.value
        self.set_kernel_and_bias_gradients(
            lambda: conv3d_backward_kernel(x, dz, kernel.shape, groups=self.groups, **args), dz)
        if not self.input_gradient_wanted:
            return None
        return self.from_last(conv3d_backward_input(dz, kernel, x.shape, groups=self.groups, **args))


# Keras 3's other name for the same class (files name the class itself)
Convolution3D = Conv3D
