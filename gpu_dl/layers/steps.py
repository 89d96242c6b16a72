"""Layers that remove or repeat the steps of (batch, steps, features) sequences: Cropping1D and UpSampling1D.

As in Keras, both take channels_last input only (no ``data_format``).
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from .spatial import SpatialLayer, contiguous, int_tuple


class _StepsLayer(SpatialLayer):
    rank = 1
    takes_data_format = False

    def __init__(self, **kwargs):
        if "data_format" in kwargs:
            raise TypeError(f"{type(self).__name__} got an unexpected keyword argument: data_format (it takes "
                            "channels_last input only, as in Keras).")
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)


class Cropping1D(_StepsLayer):
    """Drops ``cropping`` = (start, end) steps (or an int, both) from each sequence; at least one must be left."""

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = int_tuple(cropping, f"Cropping1D layer '{self.name}': cropping", 2, minimum=0)

    def compute_output_shape(self, input_shape):
        n, steps, c = self.check_rank(input_shape)
        if steps is None:
            return n, None, c
        left = steps - sum(self.cropping)
        if left < 1:
            raise ValueError(f"Cropping1D layer '{self.name}': cropping {self.cropping} removes {sum(self.cropping)} "
                             f"steps of an input of {steps} (shape {tuple(input_shape)}), leaving {left}; the input "
                             f"needs more than {sum(self.cropping)} steps.")
        return n, left, c

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)   # a model built for any length checks each batch's
        start, end = self.cropping
        self._saved = (x.shape,) if training else None
        return contiguous(x[:, start:x.shape[1] - end])   # a copy, as every layer after it may take

    def backward(self, dy):
        self.saved()   # a clear error without a training call before
        return array_module(dy).pad(dy, ((0, 0), self.cropping, (0, 0)))

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


class UpSampling1D(_StepsLayer):
    """Repeats each step ``size`` times: (N, T, C) -> (N, size * T, C)."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"UpSampling1D layer '{self.name}': size must be an integer, got {size!r}.")
        if size < 1:
            raise ValueError(f"UpSampling1D layer '{self.name}': size must be a positive integer, got {size!r}.")
        self.size = int(size)

    def compute_output_shape(self, input_shape):
        n, steps, c = self.check_rank(input_shape)
        return n, None if steps is None else self.size * steps, c

    def call(self, x, training=False):
        self._saved = (x.shape,) if training else None
        return array_module(x).repeat(x, self.size, axis=1)

    def backward(self, dy):
        """Each input step's gradient is the sum over its ``size`` copies."""
        (shape,) = self.saved()
        return dy.reshape(shape[0], shape[1], self.size, shape[2]).sum(axis=2)

    def get_config(self):
        return {**super().get_config(), "size": self.size}
