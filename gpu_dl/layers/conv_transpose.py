"""``Conv2DTranspose`` and ``Conv1DTranspose`` (and Keras's ``Convolution*Transpose`` names for them):
transposed convolutions over images (N, H, W, C) and sequences (N, T, C) with Keras 3's arguments, weight
layout and output sizes.

They run ``ops/transposed_convolution.py``, which is the convolution's passes read the other way round; a 1-D
layer's kernel (k, filters, in) is the 2-D kernel (1, k, filters, in) and its input an image of height 1
(``spatial.py``), as for ``Conv1D``.
"""
from __future__ import annotations

from .. import activations, regularizers
from ..ops.transposed_convolution import (conv2d_transpose_backward_input, conv2d_transpose_backward_kernel,
                                  conv2d_transpose_forward, transpose_output_length, transpose_padding)
from .conv import WindowedConv
from .core import positive_int
from .spatial import contiguous, int_tuple


class BaseConvTranspose(WindowedConv):
    """``activation(conv_transpose(x, kernel) + bias)``; kernel kernel_size + (filters, in_channels) (the
    filters first, as in Keras), bias (filters,).

    ``output_padding`` (None, or per axis 0 <= value < stride) sets the output length along each axis to
    (steps - 1) * stride + dilated kernel + output_padding ("valid") or (steps - 1) * stride + dilated
    kernel % 2 + output_padding ("same"), the extra rows/columns at the bottom/right; None gives Keras's
    defaults, steps * stride for "same".
    """

    channel_weight_axis = -1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(data_format=data_format, activity_regularizer=activity_regularizer, **kwargs)
        where = f"{type(self).__name__} layer '{self.name}'"
        self.filters = positive_int(filters, f"{where}: filters")
        self.set_window(kernel_size, strides, padding, dilation_rate, causal=False)   # Keras: valid or same
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = int_tuple(output_padding, f"{where}: output_padding", self.rank, minimum=0)
            for axis, extra, stride in zip(self.axis_names, self.output_padding, self.strides):
                if extra >= stride:
                    raise ValueError(f"{where}: output_padding must be less than strides along every axis (as in "
                                     f"Keras); along the {axis} it is {extra} with a stride of {stride} "
                                     f"(output_padding={self.output_padding}, strides={self.strides}).")
        self.activation = activations.get_keeping_shape(activation, where)
        self.use_bias = bool(use_bias)
        self.set_weight_arguments(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                                  kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.kernel = self.bias = None

    # ------------------------------------------------------------------ shapes
    def _geometry(self, last_shape):
        """(the ops' keyword arguments, output sizes) for a channels_last input shape; a clear error where the
        output would be empty. An unknown size (None) gives an unknown output size."""
        spatial = self.image_shape(last_shape)[1:-1]   # (rows, cols); 3-D layers: (depth, rows, cols)
        window, strides, dilation = (self.image_pair(v, 1) for v in (self.kernel_size, self.strides,
                                                                     self.dilation_rate))
        extras = (None,) * len(window) if self.output_padding is None else self.image_pair(self.output_padding, 0)
        axes = list(zip(spatial, window, strides, dilation, extras))
        out = tuple(transpose_output_length(n, k, s, d, self.padding, e) for n, k, s, d, e in axes)
        for axis, (n, k, s, d, e), o in zip(self.axis_names, self.layer_axes(axes), self.layer_axes(out)):
            if o is not None and o < 1:
                raise ValueError(
                    f"{type(self).__name__} layer '{self.name}': along the {axis}, an input of {n} gives an output of "
                    f"{o} (padding={self.padding!r}, strides {s}, output_padding {e}, kernel {k} spanning "
                    f"{d * (k - 1) + 1}). Use an odd kernel_size, a larger output_padding, padding='valid' or a "
                    f"longer input.")
        pads = tuple(transpose_padding(n, k, s, d, self.padding, e) for n, k, s, d, e in axes)
        return {"strides": strides, "padding": pads, "dilation": dilation}, self.layer_axes(out)

    def build(self, input_shape):
        channels = self.channels_of(input_shape)
        self._geometry(self.check_rank(input_shape))
        self.kernel = self.add_weight(self.kernel_size + (self.filters, channels), self.kernel_initializer,
                                      name="kernel", regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.add_bias(self.filters)

    # ------------------------------------------------------------------- passes
    def call(self, x, training=False):
        x = contiguous(self.to_last(x))   # the kernels read C-contiguous NHWC
        args, out = self._geometry(x.shape)
        image = self.to_image(x)
        out_shape = self.image_shape((x.shape[0],) + out + (self.filters,))
        z = conv2d_transpose_forward(image, self.image_kernel(self.kernel), out_shape, **args)
        # The backward-data kernels have no bias/activation epilogue: one fused bias + activation pass after
        # them on the GPU (Conv2D fuses both into its forward kernel).
        return self.biased_activation(image, z, args, training)

    def backward(self, dy, through_activation=True):
        x, dz, args = self.preactivation_gradient(dy, through_activation)
        kernel = self.image_kernel(self.kernel)
        self.set_kernel_and_bias_gradients(lambda: conv2d_transpose_backward_kernel(x, dz, kernel.shape, **args), dz)
        if not self.input_gradient_wanted:
            return None
        return self.from_last(self.from_image(conv2d_transpose_backward_input(dz, kernel, **args)))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **self.window_config(),
                "output_padding": self.output_padding, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, **self.weight_arguments_config(),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer)}


class Conv2DTranspose(BaseConvTranspose):
    """Transposed 2-D convolution; kernel (kh, kw, filters, in_channels), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint, **kwargs)


class Conv1DTranspose(BaseConvTranspose):
    """Transposed convolution along the steps of (batch, steps, channels) sequences; kernel
    (kernel_size, filters, in_channels), bias (filters,)."""

    rank = 1


# Keras 3's other names for the same classes (files name the classes themselves)
Convolution2DTranspose = Conv2DTranspose
Convolution1DTranspose = Conv1DTranspose
