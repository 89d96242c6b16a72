"""Adaptive pooling layers: AdaptiveMaxPooling1D/2D/3D and AdaptiveAveragePooling1D/2D/3D, as Keras 3.

The output has ``output_size`` positions along each spatial axis whatever the input's size: (N, T, C) ->
(N, O, C), (N, H, W, C) -> (N, OH, OW, C), (N, D, H, W, C) -> (N, OD, OH, OW, C) (channels_first: the
channels second). The windows are PyTorch's, as Keras 3 computes them on its torch backend (see
``ops/adaptive_pool.py``).
"""
from __future__ import annotations

from ..ops import adaptive_pool
from .spatial import SpatialLayer, int_tuple


class _AdaptivePooling(SpatialLayer):
    """``output_size``: an int (the same along every spatial axis) or one int per spatial axis, each >= 1."""

    def __init__(self, output_size, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.output_size = int_tuple(output_size, f"{type(self).__name__} layer '{self.name}': output_size",
                                     self.rank)

    def _checked_shape(self, input_shape):
        last = self.check_rank(input_shape)
        for axis, size in zip(self.axis_names, last[1:-1]):
            if size is not None and size < 1:
                raise ValueError(f"{type(self).__name__} layer '{self.name}': the input of shape "
                                 f"{tuple(input_shape)} has no {axis} positions to pool.")
        return last

    def build(self, input_shape):
        self._checked_shape(input_shape)

    def compute_output_shape(self, input_shape):
        last = self._checked_shape(input_shape)
        return self.from_last_shape(last[:1] + self.output_size + last[-1:])

    def check_input_shape(self, shape):
        self._checked_shape(shape)
        super().check_input_shape(shape)

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}


class _AdaptiveMaxPooling(_AdaptivePooling):
    """The largest value of each window; its gradient goes to that value's position (the first, on ties)."""

    def call(self, x, training=False):
        x = self.to_last(x)
        y, argmax = adaptive_pool.adaptive_max_pool_forward(x, self.output_size)
        self._saved = (x.shape, argmax) if training else None
        return self.from_last(y)

    def backward(self, dy):
        shape, argmax = self.saved()
        return self.from_last(adaptive_pool.adaptive_max_pool_backward(self.to_last(dy), argmax, shape))


class _AdaptiveAveragePooling(_AdaptivePooling):
    """The mean of each window; its gradient is shared equally by the window's positions."""

    def call(self, x, training=False):
        x = self.to_last(x)
        self._saved = (x.shape,) if training else None
        return self.from_last(adaptive_pool.adaptive_avg_pool_forward(x, self.output_size))

    def backward(self, dy):
        (shape,) = self.saved()
        return self.from_last(adaptive_pool.adaptive_avg_pool_backward(self.to_last(dy), shape))


class AdaptiveMaxPooling1D(_AdaptiveMaxPooling):
    rank = 1


class AdaptiveMaxPooling2D(_AdaptiveMaxPooling):
    rank = 2


class AdaptiveMaxPooling3D(_AdaptiveMaxPooling):
    rank = 3


class AdaptiveAveragePooling1D(_AdaptiveAveragePooling):
    rank = 1


class AdaptiveAveragePooling2D(_AdaptiveAveragePooling):
    rank = 2


class AdaptiveAveragePooling3D(_AdaptiveAveragePooling):
    rank = 3
