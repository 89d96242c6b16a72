"""Keras's ``keras.ops.nn`` depthwise and separable convolutions (``DepthwiseConv``,
``SeparableConv``), with Keras's classes, modules and configs, each with a forward and an exact backward.

They run the internal depthwise kernels (``ops/depthwise.py``) on channels_last data: channels_first inputs
are transposed in and out, 1-D inputs are images of height 1; "same" padding is Keras's (the odd pad after).
"""
from __future__ import annotations

from ...ops import depthwise
from ...ops.convolution import conv_padding
from .base import _xp
from .nn_base import NNOperation, _data_format, _first_shape, _from_last, _last_shape, _padding, _spatial_rank, \
    _to_last, _tuple

__all__ = ["DepthwiseConv", "SeparableConv", "OPERATIONS"]


class _Conv(NNOperation):
    config_keys = ("strides", "padding", "data_format", "dilation_rate")

    def __init__(self, strides=1, padding="valid", data_format=None, dilation_rate=1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.strides = list(strides) if isinstance(strides, (list, tuple)) else strides
        self.padding = _padding(padding, self._where())
        self.data_format = _data_format(data_format, self._where())
        self.dilation_rate = list(dilation_rate) if isinstance(dilation_rate, (list, tuple)) else dilation_rate

    def _geometry(self, last_shape, kernel_shape):
        where = self._where()
        rank = _spatial_rank(last_shape, where, (3, 4))
        if len(kernel_shape) != rank + 2:
            raise ValueError(f"{where}: a depthwise kernel of an input of {rank} spatial axes has rank {rank + 2} "
                             f"(*window, in channels, multiplier), got shape {tuple(kernel_shape)}.")
        if last_shape[-1] is not None and kernel_shape[-2] != last_shape[-1]:
            raise ValueError(f"{where}: the kernel {tuple(kernel_shape)} takes {kernel_shape[-2]} input channels, "
                             f"the input {tuple(last_shape)} has {last_shape[-1]} ({self.data_format}).")
        strides = _tuple(self.strides, rank, "strides", where)
        dilation = _tuple(self.dilation_rate, rank, "dilation_rate", where)
        if max(strides) > 1 and max(dilation) > 1:
            raise ValueError(f"{where}: `strides` > 1 and `dilation_rate` > 1 cannot be combined, as in Keras.")
        window = tuple(kernel_shape[:rank])
        pads = conv_padding(self.padding, last_shape[1:-1], window, strides, dilation)
        out = []
        for n, k, s, d, p in zip(last_shape[1:-1], window, strides, dilation, pads):
            size = None if n is None else (n + p[0] + p[1] - d * (k - 1) - 1) // s + 1
            if size is not None and size < 1:
                raise ValueError(f"{where}: a window of {k} (dilation {d}) does not fit an axis of {n}.")
            out.append(size)
        if rank == 1:
            return (1,) + strides, ((0, 0),) + pads, (1,) + dilation, tuple(out)
        return strides, pads, dilation, tuple(out)

    def _inputs(self, x, kernel):
        """The 2-D image, the 2-D kernel and the geometry of the depthwise convolution of channels_last ``x``."""
        strides, pads, dilation, _ = self._geometry(x.shape, kernel.shape)
        return (x[:, None] if x.ndim == 3 else x, kernel[None] if kernel.ndim == 3 else kernel,
                dict(strides=strides, padding=pads, dilation=dilation))

    def _depthwise_backward(self, dy_image, image, kernel2, geometry, x_ndim):
        dx = depthwise.depthwise_conv2d_backward_input(dy_image, kernel2, image.shape, **geometry)
        dk = depthwise.depthwise_conv2d_backward_kernel(image, dy_image, kernel2.shape, **geometry)
        return (dx[:, 0] if x_ndim == 3 else dx), (dk[0] if x_ndim == 3 else dk)


class DepthwiseConv(_Conv):
    """``depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1)``: 1-D or
    2-D, kernel (*window, channels, multiplier); output channel c * multiplier + m."""

    positional = ("inputs", "kernel")
    required = 2

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        shape, kernel = _last_shape(given["inputs"], self.data_format), given["kernel"]
        out = self._geometry(shape, kernel)[3]
        return _first_shape((shape[0],) + out + (kernel[-2] * kernel[-1],), self.data_format)

    def forward_function(self, x, kernel):
        x = _to_last(x, self.data_format)
        image, kernel2, geometry = self._inputs(x, kernel)
        y = depthwise.depthwise_conv2d_forward(image, kernel2, **geometry)
        return _from_last(y[:, 0] if x.ndim == 3 else y, self.data_format)

    def backward_function(self, dy, operands, y):
        x, kernel = _to_last(operands[0], self.data_format), operands[1]
        image, kernel2, geometry = self._inputs(x, kernel)
        dy = _to_last(dy, self.data_format)
        dy = _xp(dy).ascontiguousarray(dy[:, None] if x.ndim == 3 else dy)
        dx, dk = self._depthwise_backward(dy, image, kernel2, geometry, x.ndim)
        return [_from_last(dx, self.data_format), dk]


class SeparableConv(DepthwiseConv):
    """``separable_conv(inputs, depthwise_kernel, pointwise_kernel, ...)``: the depthwise convolution, then the
    1 x 1 convolution of ``pointwise_kernel`` (1[, 1], channels * multiplier, filters)."""

    positional = ("inputs", "depthwise_kernel", "pointwise_kernel")
    required = 3

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        shape, kernel, pointwise = _last_shape(given["inputs"], self.data_format), given["depthwise_kernel"], \
            given["pointwise_kernel"]
        if len(pointwise) != len(kernel) or any(n != 1 for n in pointwise[:-2]) or \
                pointwise[-2] != kernel[-2] * kernel[-1]:
            raise ValueError(f"{self._where()}: the pointwise kernel must have shape (1, ..., "
                             f"{kernel[-2] * kernel[-1]}, filters) for the depthwise kernel {tuple(kernel)}, "
                             f"got {tuple(pointwise)}.")
        out = self._geometry(shape, kernel)[3]
        return _first_shape((shape[0],) + out + (pointwise[-1],), self.data_format)

    def forward_function(self, x, kernel, pointwise):
        x = _to_last(x, self.data_format)
        image, kernel2, geometry = self._inputs(x, kernel)
        mid = depthwise.depthwise_conv2d_forward(image, kernel2, **geometry)
        y = _xp(mid).matmul(mid, pointwise.reshape(pointwise.shape[-2:]))
        return _from_last(y[:, 0] if x.ndim == 3 else y, self.data_format)

    def backward_function(self, dy, operands, y):
        xp = _xp(dy)
        x, kernel, pointwise = _to_last(operands[0], self.data_format), operands[1], operands[2]
        image, kernel2, geometry = self._inputs(x, kernel)
        mid = depthwise.depthwise_conv2d_forward(image, kernel2, **geometry)
        dy = _to_last(dy, self.data_format)
        dy = dy[:, None] if x.ndim == 3 else dy
        matrix = pointwise.reshape(pointwise.shape[-2:])
        dpoint = xp.tensordot(mid, dy, axes=([0, 1, 2], [0, 1, 2])).reshape(pointwise.shape)
        dmid = xp.ascontiguousarray(xp.matmul(dy, matrix.T))
        dx, dk = self._depthwise_backward(dmid, image, kernel2, geometry, x.ndim)
        return [_from_last(dx, self.data_format), dk, dpoint]


OPERATIONS = {cls.__name__: cls for cls in (DepthwiseConv, SeparableConv)}
