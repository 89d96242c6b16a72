"""``Conv2D`` and ``Conv1D``: convolutions over images (N, H, W, C) and sequences (N, T, C) with Keras 3's arguments.

Both run the 2-D ops; a Conv1D's kernel (k, in, filters) is the 2-D kernel
(1, k, in, filters) and its input an image of height 1 (``spatial.py``).
"""
from __future__ import annotations

import numbers

from .. import activations
from ..ops.conv import (bias_gradient, conv2d_backward_input, conv2d_backward_kernel, conv2d_bias_activation,
                        conv_padding, output_spatial)
from .core import positive_int
from .spatial import SpatialLayer, contiguous, int_tuple, padding_word, too_small_error


class BaseConv(SpatialLayer):
    """``activation(conv(x, kernel) + bias)``; kernel kernel_size + (in_channels / groups, filters), bias (filters,).

    With ``groups`` > 1 the input channels and the filters are split into ``groups`` equal blocks and output
    block g is the convolution of input block g alone (Keras's grouped convolution).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(data_format=data_format, activity_regularizer=activity_regularizer, **kwargs)
        where = f"{type(self).__name__} layer '{self.name}'"
        self.filters = positive_int(filters, f"{where}: filters")
        self.kernel_size = int_tuple(kernel_size, f"{where}: kernel_size", self.rank)
        self.strides = int_tuple(strides, f"{where}: strides", self.rank)
        self.dilation_rate = int_tuple(dilation_rate, f"{where}: dilation_rate", self.rank)
        self.padding = padding_word(padding, f"{where}: padding", causal=self.rank == 1)   # as Keras allows it
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{where}: strides > 1 together with dilation_rate > 1 is not supported (as in Keras), "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}.")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"{where}: groups must be a positive integer, got {groups!r}.")
        if self.filters % groups:
            raise ValueError(f"{where}: filters ({self.filters}) must be divisible by groups ({groups}), as each "
                             f"group computes filters / groups output channels.")
        self.groups = int(groups)
        self.activation = activations.get_keeping_shape(activation, where)
        self.use_bias = bool(use_bias)
        self.set_weight_arguments(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                                  kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.kernel = self.bias = None

    # ------------------------------------------------------------------ shapes
    def _geometry(self, last_shape):
        """(the 2-D ops' keyword arguments, output sizes) for a channels_last input shape; a clear error if the
        kernel does not fit.

        An unknown size (None, as in ``Input((None, None, 3))``) gives an unknown output size.
        """
        spatial = self.image_shape(last_shape)[1:3]
        window, strides, dilation = (self.image_pair(v, 1) for v in (self.kernel_size, self.strides,
                                                                     self.dilation_rate))
        if self.padding == "causal":
            # Keras: left-pad by the dilated kernel's reach, then "valid": output t sees inputs up to t only.
            pads = ((0, 0), (dilation[1] * (window[1] - 1), 0))
        else:
            pads = conv_padding(self.padding, spatial, window, strides, dilation)
        out = output_spatial(spatial, window, strides, dilation, pads)
        for axis, n, k, s, d, p, o in zip(self.axis_names, *(self.layer_axes(v) for v in
                                                             (spatial, window, strides, dilation, pads, out))):
            if o is not None and o < 1:
                raise too_small_error(self, axis, n, k, s, d, p)
        return {"strides": strides, "padding": pads, "dilation": dilation}, self.layer_axes(out)

    def build(self, input_shape):
        shape = self.check_rank(input_shape)
        if shape[-1] is None:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' needs a known number of input channels, "
                             f"got {tuple(input_shape)}.")
        if shape[-1] % self.groups:
            raise ValueError(f"{type(self).__name__} layer '{self.name}': the input's {shape[-1]} channels must be "
                             f"divisible by groups ({self.groups}); got an input of shape {tuple(input_shape)}.")
        self._geometry(shape)
        # grouped: each group's filters see Cin / groups channels (Keras's layout)
        self.kernel = self.add_weight(self.kernel_size + (shape[-1] // self.groups, self.filters),
                                      self.kernel_initializer,
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
        if self.kernel is not None and last[-1] != self.kernel.shape[-2] * self.groups:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' was built for "
                             f"{self.kernel.shape[-2] * self.groups} input "
                             f"channels (kernel {self.kernel.shape}); got an input of shape {tuple(shape)} with "
                             f"{last[-1]}.")
        super().check_input_shape(shape)

    # ------------------------------------------------------------------- passes
    def _image_kernel_shape(self):
        return self.image_pair(self.kernel.shape[:-2], 1) + self.kernel.shape[-2:]

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))   # the kernels read C-contiguous NHWC
        args, _ = self._geometry(x.shape)
        image = self.to_image(x)
        z, y = conv2d_bias_activation(image, self.kernel.value.reshape(self._image_kernel_shape()),
                                      self.bias.value if self.use_bias else None, self.activation,
                                      groups=self.groups, **args)
        self._saved = (image, z, y, args) if training else None
        self._preactivation = self.from_last(self.from_image(z)) if self.keep_preactivation else None
        return self.from_last(self.from_image(y))

    def backward(self, dy, through_activation=True):
        x, z, y, args = self.saved()
        dy = self.to_image(contiguous(self.to_last(dy)))
        dz = contiguous(self.activation.grad(z, y, dy)) if through_activation else dy
        kernel_shape = self._image_kernel_shape()
        if self.trainable:
            self.kernel.grad = conv2d_backward_kernel(x, dz, kernel_shape, groups=self.groups, **args).reshape(self.kernel.shape)
            if self.use_bias:
                self.bias.grad = bias_gradient(dz)
        if not self.input_gradient_wanted:
            return None
        dx = conv2d_backward_input(dz, self.kernel.value.reshape(kernel_shape), x.shape, groups=self.groups,
                                   **args)
        return self.from_last(self.from_image(dx))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "dilation_rate": self.dilation_rate, "groups": self.groups,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            **self.weight_arguments_config(),
        }


class Conv2D(BaseConv):
    """``activation(conv(x, kernel) + bias)``; kernel (kh, kw, in_channels, filters), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)


class Conv1D(BaseConv):
    """``activation(conv(x, kernel) + bias)`` along the steps of (batch, steps, channels) sequences; kernel
    (kernel_size, in_channels, filters), bias (filters,). ``padding="causal"`` left-pads
    ``dilation_rate * (kernel_size - 1)`` steps, so output step t depends on input steps up to t only."""

    rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)
