"""``Conv3DTranspose`` (and Keras's ``Convolution3DTranspose`` name for it): the transposed convolution over
volumes (N, D, H, W, C) with Keras 3's arguments, output sizes and kernel (kd, kh, kw, filters, in_channels).

It shares ``BaseConvTranspose``'s arguments, checks, output sizes, weights and config. Its passes are
``ops/conv3d.py``'s read the other way round, as Conv2DTranspose's are the 2-D ops': the forward is the
3-D convolution's input gradient (kernel read as (kd, kh, kw, filters, in_channels), the convolution's
(.., in, out) seen from its output), the input gradient is that convolution's forward, and the kernel
gradient is its kernel gradient with the roles of input and output gradient swapped.
"""
from __future__ import annotations

from ..ops.conv3d import conv3d_backward_input, conv3d_backward_kernel, conv3d_forward
from .conv_transpose import BaseConvTranspose
from .spatial import contiguous


class Conv3DTranspose(BaseConvTranspose):
    """Transposed 3-D convolution: (batch, depth, rows, cols, channels) to (batch, out_depth, out_rows,
    out_cols, filters); kernel (kd, kh, kw, filters, in_channels), bias (filters,)."""

    rank = 3

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 output_padding=None, dilation_rate=(1, 1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        # Keras 3's order of arguments for this class: data_format before output_padding
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint, **kwargs)

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))
        args, out = self._geometry(x.shape)
        z = conv3d_backward_input(x, self.kernel.value, (x.shape[0],) + out + (self.filters,), **args)
        # the input gradient crops its depth padding (a view); the bias/activation pass reads contiguous data
        return self.biased_activation(x, contiguous(z), args, training)

    def backward(self, dy, through_activation=True):
        x, dz, args = self.preactivation_gradient(dy, through_activation)
        kernel = self.kernel.value
        self.set_kernel_and_bias_gradients(lambda: conv3d_backward_kernel(dz, x, kernel.shape, **args), dz)
        if not self.input_gradient_wanted:
            return None
        return self.from_last(conv3d_forward(dz, kernel, **args))


# Keras 3's other name for the same class (files name the class itself)
Convolution3DTranspose = Conv3DTranspose
