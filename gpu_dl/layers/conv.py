"""``Conv2D`` and ``Conv1D`` (``groups`` included), ``DepthwiseConv2D`` / ``1D`` and ``SeparableConv2D`` /
``1D`` (and Keras's ``Convolution*`` names for them): convolutions over images (N, H, W, C) and sequences
(N, T, C) with Keras 3's arguments.

All run the 2-D ops; a 1-D layer's kernel (k, a, b) is the 2-D kernel (1, k, a, b) and its input an image
of height 1 (``spatial.py``).
"""
from __future__ import annotations

import numbers

from .. import activations, regularizers
from ..ops.depthwise import (depthwise_conv2d_backward_input, depthwise_conv2d_backward_kernel,
                             depthwise_conv2d_forward)
from ..ops.convolution import (bias_gradient, conv2d_backward_input, conv2d_backward_kernel, conv2d_bias_activation,
                        conv_padding, output_spatial)
from . import lora
from .core import positive_int
from .spatial import SpatialLayer, contiguous, int_tuple, padding_word, too_small_error


class WindowedConv(SpatialLayer):
    """What the convolutions share: kernel_size, strides, padding and dilation_rate, and the output sizes."""

    # The weight whose axis ``channel_weight_axis`` counts the input channels the layer was built for (per
    # group where it has ``groups``): -2 in a convolution's kernel, -1 in a transposed one's.
    channel_weight = "kernel"
    channel_weight_axis = -2

    def check_input_shape(self, shape):
        last = self.check_rank(shape)
        kernel = getattr(self, self.channel_weight)
        channels = None if kernel is None else kernel.shape[self.channel_weight_axis] * getattr(self, "groups", 1)
        if channels is not None and last[-1] != channels:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' was built for {channels} input channels "
                             f"({self.channel_weight} {kernel.shape}); got an input of shape {tuple(shape)} with "
                             f"{last[-1]}.")
        super().check_input_shape(shape)

    def set_window(self, kernel_size, strides, padding, dilation_rate, causal):
        where = f"{type(self).__name__} layer '{self.name}'"
        self.kernel_size = int_tuple(kernel_size, f"{where}: kernel_size", self.rank)
        self.strides = int_tuple(strides, f"{where}: strides", self.rank)
        self.dilation_rate = int_tuple(dilation_rate, f"{where}: dilation_rate", self.rank)
        self.padding = padding_word(padding, f"{where}: padding", causal=causal)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{where}: strides > 1 together with dilation_rate > 1 is not supported (as in Keras), "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}.")

    # ------------------------------------------------------------------ shapes
    def _geometry(self, last_shape):
        """(the 2-D ops' keyword arguments (per-axis triples for a 3-D layer's ops), output sizes) for a
        channels_last input shape; a clear error if the kernel does not fit.

        An unknown size (None, as in ``Input((None, None, 3))``) gives an unknown output size.
        """
        spatial = self.image_shape(last_shape)[1:-1]   # (H, W), or (D, H, W) for a 3-D layer
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

    def channels_of(self, input_shape):
        """The input's channels (channels_last shape); a clear error naming the layer when unknown."""
        shape = self.check_rank(input_shape)
        if shape[-1] is None:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' needs a known number of input channels, "
                             f"got {tuple(input_shape)}.")
        return shape[-1]

    def image_kernel(self, var):
        """A weight laid out kernel_size + (a, b) as the 2-D ops' (KH, KW, a, b) (a view)."""
        return var.value.reshape(self.image_pair(var.shape[:-2], 1) + var.shape[-2:])

    def output_channels(self, channels):
        """The output's channels for an input of ``channels`` (None where unknown): the layer's filters."""
        return self.filters

    def compute_output_shape(self, input_shape):
        shape = self.check_rank(input_shape)
        _, out = self._geometry(shape)
        return self.from_last_shape((shape[0],) + out + (self.output_channels(shape[-1]),))

    def add_bias(self, size):
        """The (size,) bias, where the layer uses one."""
        if self.use_bias:
            self.bias = self.add_weight((size,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def window_config(self):
        return {"kernel_size": self.kernel_size, "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate}

    # ---------------------------------------- a kernel without a bias/activation epilogue
    def biased_activation(self, image, z, args, training):
        """The layer's output from the kernel's result ``z`` (image layout): bias and activation in one fused
        pass, and what backward needs kept, for the layers whose kernels cannot add them themselves."""
        z, y = self.activation.with_bias(z, self.bias.value if self.use_bias else None,
                                         want_z=self._wants_preactivation(training))
        self._saved = (image, z, y, args) if training else None
        self._preactivation = self.from_last(self.from_image(z)) if self.keep_preactivation else None
        return self.from_last(self.from_image(y))

    def preactivation_gradient(self, dy, through_activation):
        """``(image, dz, args)``: the saved input and the gradient of ``z`` (image layout) from ``dy``."""
        image, z, y, args = self.saved()
        dy = self.to_image(contiguous(self.to_last(dy)))
        dz = contiguous(self._activation_gradient(z, y, dy)) if through_activation else dy
        return image, dz, args

    def set_kernel_and_bias_gradients(self, kernel_gradient, dz):
        """The kernel's gradient (computed only when trainable: pass a function) and the bias's from ``dz``."""
        if self.trainable:
            self.kernel.grad = kernel_gradient().reshape(self.kernel.shape)
            if self.use_bias:
                self.bias.grad = bias_gradient(dz)


class BaseConv(lora.LoraLayer, WindowedConv):
    """``activation(conv(x, kernel) + bias)``; kernel kernel_size + (in_channels / groups, filters), bias (filters,).

    With ``groups`` > 1 the input channels and the filters are split into ``groups`` equal blocks and output
    block g is the convolution of input block g alone (Keras's grouped convolution). ``lora_rank`` and
    ``enable_lora`` as Keras's (``layers/lora.py``).
    """

    kernel = lora.merged_weight("kernel")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        # Keras's Conv1D/2D/3D take lora_rank and lora_alpha through **kwargs
        lora_arguments = kwargs.pop("lora_rank", None), kwargs.pop("lora_alpha", None)
        super().__init__(data_format=data_format, activity_regularizer=activity_regularizer, **kwargs)
        where = f"{type(self).__name__} layer '{self.name}'"
        self.init_lora(*lora_arguments, where)
        self.filters = positive_int(filters, f"{where}: filters")
        self.set_window(kernel_size, strides, padding, dilation_rate, causal=self.rank == 1)   # as Keras allows it
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
        self.add_bias(self.filters)
        self.build_lora()

    # ------------------------------------------------------------------- passes
    def _image_kernel_shape(self):
        return self.image_pair(self.kernel.shape[:-2], 1) + self.kernel.shape[-2:]

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))   # the kernels read C-contiguous NHWC
        args, _ = self._geometry(x.shape)
        image = self.to_image(x)
        z, y = conv2d_bias_activation(image, self.kernel.value.reshape(self._image_kernel_shape()),
                                      self.bias.value if self.use_bias else None, self.activation,
                                      groups=self.groups, want_z=self._wants_preactivation(training), **args)
        self._saved = (image, z, y, args) if training else None
        self._preactivation = self.from_last(self.from_image(z)) if self.keep_preactivation else None
        return self.from_last(self.from_image(y))

    def backward(self, dy, through_activation=True):
        x, z, y, args = self.saved()
        dy = self.to_image(contiguous(self.to_last(dy)))
        dz = contiguous(self._activation_gradient(z, y, dy)) if through_activation else dy
        kernel_shape = self._image_kernel_shape()
        if self.trainable:
            self.kernel.grad = conv2d_backward_kernel(x, dz, kernel_shape, groups=self.groups,
                                                      **args).reshape(self.kernel.shape)
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
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            **self.lora_config(),
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


# ------------------------------------------------------------------------------ depthwise and separable
class BaseDepthwiseConv(WindowedConv):
    """``activation(depthwise_conv(x, kernel) + bias)``: each input channel c convolved with its own
    ``depth_multiplier`` filters, giving output channels c * depth_multiplier + m. Kernel kernel_size +
    (in_channels, depth_multiplier), bias (in_channels * depth_multiplier,) (Keras's layout and names)."""

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(data_format=data_format, activity_regularizer=activity_regularizer, **kwargs)
        where = f"{type(self).__name__} layer '{self.name}'"
        self.depth_multiplier = positive_int(depth_multiplier, f"{where}: depth_multiplier")
        self.set_window(kernel_size, strides, padding, dilation_rate, causal=False)   # Keras: valid or same
        self.activation = activations.get_keeping_shape(activation, where)
        self.use_bias = bool(use_bias)
        self.set_weight_arguments(depthwise_initializer=depthwise_initializer, bias_initializer=bias_initializer,
                                  depthwise_regularizer=depthwise_regularizer, bias_regularizer=bias_regularizer,
                                  depthwise_constraint=depthwise_constraint, bias_constraint=bias_constraint)
        self.kernel = self.bias = None

    def build(self, input_shape):
        channels = self.channels_of(input_shape)
        self._geometry(self.check_rank(input_shape))
        self.kernel = self.add_weight(self.kernel_size + (channels, self.depth_multiplier),
                                      self.depthwise_initializer, name="kernel",
                                      regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint)
        self.add_bias(channels * self.depth_multiplier)

    def output_channels(self, channels):
        return None if channels is None else channels * self.depth_multiplier

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))
        args, _ = self._geometry(x.shape)
        image = self.to_image(x)
        z = depthwise_conv2d_forward(image, self.image_kernel(self.kernel), **args)
        return self.biased_activation(image, z, args, training)

    def backward(self, dy, through_activation=True):
        x, dz, args = self.preactivation_gradient(dy, through_activation)
        kernel = self.image_kernel(self.kernel)
        self.set_kernel_and_bias_gradients(lambda: depthwise_conv2d_backward_kernel(x, dz, kernel.shape, **args), dz)
        if not self.input_gradient_wanted:
            return None
        return self.from_last(self.from_image(depthwise_conv2d_backward_input(dz, kernel, x.shape, **args)))

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier, **self.window_config(),
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                **self.weight_arguments_config(),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer)}


class DepthwiseConv2D(BaseDepthwiseConv):
    """Depthwise 2-D convolution; kernel (kh, kw, in_channels, depth_multiplier)."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, activation,
                         use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, **kwargs)


class DepthwiseConv1D(BaseDepthwiseConv):
    """Depthwise convolution along the steps of (batch, steps, channels) sequences; kernel
    (kernel_size, in_channels, depth_multiplier)."""

    rank = 1


class BaseSeparableConv(WindowedConv):
    """``activation(pointwise(depthwise(x)) + bias)``: the depthwise convolution of ``BaseDepthwiseConv``
    (no bias), then a 1x1 convolution to ``filters`` channels. Weights depthwise_kernel kernel_size +
    (in_channels, depth_multiplier), pointwise_kernel (1,)*rank + (in_channels * depth_multiplier, filters),
    bias (filters,), in Keras's order."""

    channel_weight = "depthwise_kernel"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(data_format=data_format, activity_regularizer=activity_regularizer, **kwargs)
        where = f"{type(self).__name__} layer '{self.name}'"
        self.filters = positive_int(filters, f"{where}: filters")
        self.depth_multiplier = positive_int(depth_multiplier, f"{where}: depth_multiplier")
        self.set_window(kernel_size, strides, padding, dilation_rate, causal=False)   # Keras: valid or same
        self.activation = activations.get_keeping_shape(activation, where)
        self.use_bias = bool(use_bias)
        self.set_weight_arguments(
            depthwise_initializer=depthwise_initializer, pointwise_initializer=pointwise_initializer,
            bias_initializer=bias_initializer, depthwise_regularizer=depthwise_regularizer,
            pointwise_regularizer=pointwise_regularizer, bias_regularizer=bias_regularizer,
            depthwise_constraint=depthwise_constraint, pointwise_constraint=pointwise_constraint,
            bias_constraint=bias_constraint)
        self.depthwise_kernel = self.pointwise_kernel = self.bias = None

    def build(self, input_shape):
        channels = self.channels_of(input_shape)
        self._geometry(self.check_rank(input_shape))
        self.depthwise_kernel = self.add_weight(
            self.kernel_size + (channels, self.depth_multiplier), self.depthwise_initializer, name="depthwise_kernel",
            regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight(
            (1,) * self.rank + (channels * self.depth_multiplier, self.filters), self.pointwise_initializer,
            name="pointwise_kernel", regularizer=self.pointwise_regularizer, constraint=self.pointwise_constraint)
        self.add_bias(self.filters)

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))
        args, _ = self._geometry(x.shape)
        image = self.to_image(x)
        # the pointwise step is an ordinary 1x1 convolution: the conv2d kernels (bias and activation fused) on
        # the GPU, one BLAS product on NumPy
        mid = depthwise_conv2d_forward(image, self.image_kernel(self.depthwise_kernel), **args)
        z, y = conv2d_bias_activation(mid, self.image_kernel(self.pointwise_kernel),
                                      self.bias.value if self.use_bias else None, self.activation,
                                      want_z=self._wants_preactivation(training))
        self._saved = (image, mid, z, y, args) if training else None
        self._preactivation = self.from_last(self.from_image(z)) if self.keep_preactivation else None
        return self.from_last(self.from_image(y))

    def backward(self, dy, through_activation=True):
        x, mid, z, y, args = self.saved()
        dy = self.to_image(contiguous(self.to_last(dy)))
        dz = contiguous(self._activation_gradient(z, y, dy)) if through_activation else dy
        pointwise, depthwise = self.image_kernel(self.pointwise_kernel), self.image_kernel(self.depthwise_kernel)
        if self.trainable:
            self.pointwise_kernel.grad = conv2d_backward_kernel(mid, dz, pointwise.shape).reshape(
                self.pointwise_kernel.shape)
            if self.use_bias:
                self.bias.grad = bias_gradient(dz)
        if not (self.trainable or self.input_gradient_wanted):
            return None
        d_mid = contiguous(conv2d_backward_input(dz, pointwise, mid.shape))
        if self.trainable:
            self.depthwise_kernel.grad = depthwise_conv2d_backward_kernel(x, d_mid, depthwise.shape, **args).reshape(
                self.depthwise_kernel.shape)
        if not self.input_gradient_wanted:
            return None
        return self.from_last(self.from_image(depthwise_conv2d_backward_input(d_mid, depthwise, x.shape, **args)))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "depth_multiplier": self.depth_multiplier,
                **self.window_config(), "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, **self.weight_arguments_config(),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer)}


class SeparableConv2D(BaseSeparableConv):
    """Depthwise 2-D convolution then a 1x1 convolution to ``filters`` channels."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
                         activation, use_bias, depthwise_initializer, pointwise_initializer, bias_initializer,
                         depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer,
                         depthwise_constraint, pointwise_constraint, bias_constraint, **kwargs)


class SeparableConv1D(BaseSeparableConv):
    """Depthwise convolution along the steps of sequences, then a pointwise (kernel size 1) convolution."""

    rank = 1


# Keras 3's other names for the same classes (files name the classes themselves)
Convolution1D = Conv1D
Convolution2D = Conv2D
SeparableConvolution1D = SeparableConv1D
SeparableConvolution2D = SeparableConv2D
