"""``Conv2D``: 2-D convolution over (batch, height, width, channels) with Keras 3's arguments."""
from __future__ import annotations

import numbers

from .. import activations
from ..ops.conv import (bias_gradient, conv2d_backward_input, conv2d_backward_kernel, conv2d_bias_activation,
                        conv_padding, output_spatial)
from .core import positive_int
from .spatial import SpatialLayer, contiguous, int_pair, padding_word, too_small_error


class Conv2D(SpatialLayer):
    """``activation(conv(x, kernel) + bias)``; kernel (kh, kw, in_channels, filters), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(data_format=data_format, activity_regularizer=activity_regularizer, **kwargs)
        where = f"Conv2D layer '{self.name}'"
        self.filters = positive_int(filters, f"{where}: filters")
        self.kernel_size = int_pair(kernel_size, f"{where}: kernel_size")
        self.strides = int_pair(strides, f"{where}: strides")
        self.dilation_rate = int_pair(dilation_rate, f"{where}: dilation_rate")
        self.padding = padding_word(padding, f"{where}: padding")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{where}: strides > 1 together with dilation_rate > 1 is not supported (as in Keras), "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}.")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups != 1:
            raise ValueError(f"{where}: only groups=1 is supported, got {groups!r}.")
        self.groups = 1
        self.activation = activations.get_keeping_shape(activation, where)
        self.use_bias = bool(use_bias)
        self.set_weight_arguments(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                                  kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.kernel = self.bias = None

    # ------------------------------------------------------------------ shapes
    def _geometry(self, last_shape):
        """(padding pairs, (OH, OW)) for a channels_last input shape; a clear error if the kernel does not fit.

        An unknown height or width (None, as in ``Input((None, None, 3))``) gives an unknown output size.
        """
        spatial = last_shape[1:3]
        pads = conv_padding(self.padding, spatial, self.kernel_size, self.strides, self.dilation_rate)
        out = output_spatial(spatial, self.kernel_size, self.strides, self.dilation_rate, pads)
        for axis, n, k, s, d, p, o in zip(("height", "width"), spatial, self.kernel_size, self.strides,
                                          self.dilation_rate, pads, out):
            if o is not None and o < 1:
                raise too_small_error(self, axis, n, k, s, d, p)
        return pads, out

    def build(self, input_shape):
        shape = self.check_rank(input_shape)
        if shape[3] is None:
            raise ValueError(f"Conv2D layer '{self.name}' needs a known number of input channels, got {tuple(input_shape)}.")
        self._geometry(shape)
        self.kernel = self.add_weight(self.kernel_size + (shape[3], self.filters), self.kernel_initializer,
                                      name="kernel", regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def compute_output_shape(self, input_shape):
        shape = self.check_rank(input_shape)
        _, out = self._geometry(shape)
        return self.from_last_shape((shape[0],) + out + (self.filters,))

    def check_input_shape(self, shape):
        last = self.check_rank(shape)
        if self.kernel is not None and last[3] != self.kernel.shape[2]:
            raise ValueError(f"Conv2D layer '{self.name}' was built for {self.kernel.shape[2]} input channels "
                             f"(kernel {self.kernel.shape}); got an input of shape {tuple(shape)} with {last[3]}.")
        super().check_input_shape(shape)

    # ------------------------------------------------------------------- passes
    def _op_args(self, last_shape):
        pads, _ = self._geometry(last_shape)
        return {"strides": self.strides, "padding": pads, "dilation": self.dilation_rate}

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))   # the kernels read C-contiguous NHWC
        z, y = conv2d_bias_activation(x, self.kernel.value, self.bias.value if self.use_bias else None,
                                      self.activation, **self._op_args(x.shape))
        self._saved = (x, z, y) if training else None
        self._preactivation = self.from_last(z) if self.keep_preactivation else None
        return self.from_last(y)

    def backward(self, dy, through_activation=True):
        x, z, y = self.saved()
        dy = contiguous(self.to_last(dy))
        dz = contiguous(self.activation.grad(z, y, dy)) if through_activation else dy
        args = self._op_args(x.shape)
        if self.trainable:
            self.kernel.grad = conv2d_backward_kernel(x, dz, self.kernel.shape, **args)
            if self.use_bias:
                self.bias.grad = bias_gradient(dz)
        if not self.input_gradient_wanted:
            return None
        return self.from_last(conv2d_backward_input(dz, self.kernel.value, x.shape, **args))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "dilation_rate": self.dilation_rate, "groups": self.groups,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            **self.weight_arguments_config(),
        }
