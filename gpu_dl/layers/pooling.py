"""Pooling layers: MaxPooling2D, AveragePooling2D, GlobalMaxPooling2D, GlobalAveragePooling2D."""
from __future__ import annotations

from ..ops import pool
from ..ops.conv import conv_padding
from .spatial import SpatialLayer, contiguous, int_pair, padding_word, too_small_error


class _Pooling2D(SpatialLayer):
    """Windows of ``pool_size`` every ``strides`` (default: pool_size), "valid" or "same" padding."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        where = f"{type(self).__name__} layer '{self.name}'"
        self.pool_size = int_pair(pool_size, f"{where}: pool_size")
        self.strides = self.pool_size if strides is None else int_pair(strides, f"{where}: strides")
        self.padding = padding_word(padding, f"{where}: padding")

    def _geometry(self, last_shape):
        """(padding pairs, output shape) as in ``Conv2D._geometry``: unknown sizes stay unknown."""
        spatial = last_shape[1:3]
        pads = conv_padding(self.padding, spatial, self.pool_size, self.strides, (1, 1))
        out = pool.pool_output_shape(last_shape, self.pool_size, self.strides, pads)
        for axis, n, k, s, p, o in zip(("height", "width"), spatial, self.pool_size, self.strides, pads, out[1:3]):
            if o is not None and o < 1:
                raise too_small_error(self, axis, n, k, s, 1, p)
        return pads, out

    def build(self, input_shape):
        self._geometry(self.check_rank(input_shape))

    def compute_output_shape(self, input_shape):
        return self.from_last_shape(self._geometry(self.check_rank(input_shape))[1])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    """The largest value of each window; its gradient goes to that value's position (the first, on ties)."""

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))
        pads, _ = self._geometry(x.shape)
        y, argmax = pool.max_pool2d_forward(x, self.pool_size, self.strides, pads)
        self._saved = (x.shape, pads, argmax) if training else None
        return self.from_last(y)

    def backward(self, dy):
        shape, pads, argmax = self.saved()
        dy = contiguous(self.to_last(dy))
        return self.from_last(pool.max_pool2d_backward(dy, argmax, shape, self.pool_size, self.strides, pads))


class AveragePooling2D(_Pooling2D):
    """The mean of each window's in-bounds values (padding is not counted, as in Keras)."""

    def call(self, x, training=False):
        x = contiguous(self.to_last(x))
        pads, _ = self._geometry(x.shape)
        self._saved = (x.shape, pads) if training else None
        return self.from_last(pool.avg_pool2d_forward(x, self.pool_size, self.strides, pads))

    def backward(self, dy):
        shape, pads = self.saved()
        dy = contiguous(self.to_last(dy))
        return self.from_last(pool.avg_pool2d_backward(dy, shape, self.pool_size, self.strides, pads))


class _GlobalPooling2D(SpatialLayer):
    """A reduction over height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with ``keepdims``."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        self.check_rank(input_shape)

    def compute_output_shape(self, input_shape):
        n, _, _, c = self.check_rank(input_shape)
        return self.from_last_shape((n, 1, 1, c)) if self.keepdims else (n, c)

    def _out(self, y):
        return self.from_last(y[:, None, None, :]) if self.keepdims else y

    def _dy(self, dy):
        return contiguous(self.to_last(dy).reshape(dy.shape[0], -1) if self.keepdims else dy)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class GlobalMaxPooling2D(_GlobalPooling2D):
    def call(self, x, training=False):
        x = contiguous(self.to_last(x))
        y, argmax = pool.global_max_pool2d_forward(x)
        self._saved = (x.shape, argmax) if training else None
        return self._out(y)

    def backward(self, dy):
        shape, argmax = self.saved()
        return self.from_last(pool.global_max_pool2d_backward(self._dy(dy), argmax, shape))


class GlobalAveragePooling2D(_GlobalPooling2D):
    def call(self, x, training=False):
        x = contiguous(self.to_last(x))
        self._saved = (x.shape,) if training else None
        return self._out(pool.global_avg_pool2d_forward(x))

    def backward(self, dy):
        (shape,) = self.saved()
        return self.from_last(pool.global_avg_pool2d_backward(self._dy(dy), shape))


# Keras's short aliases.
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
