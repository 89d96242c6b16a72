"""Layers that move or repeat values without arithmetic: Permute, RepeatVector, Identity, as Keras 3 has them.

``Permute(dims)`` reorders the axes after the batch axis (``dims`` counts them
from 1); ``RepeatVector(n)`` turns (batch, features) into (batch, n, features);
``Identity()`` passes its input through. As in Keras, Permute and RepeatVector
fix only their input's rank, and a mask of padded steps ends at them (with the
warning Keras gives), while Identity passes it on. Outputs are C-contiguous
copies: the GPU kernels of the layers after them read contiguous arrays.
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from .base import Layer


def _check_rank(layer, shape, rank):
    if len(shape) != rank:
        raise ValueError(f"{type(layer).__name__} layer '{layer.name}' expects inputs of rank {rank} (batch axis "
                         f"included), got shape {tuple(shape)}.")


class Permute(Layer):
    """Reorders the non-batch axes: ``Permute((2, 1))`` turns (batch, steps, features) into (batch, features,
    steps). ``dims`` is a permutation of 1..rank-1."""

    fixed_input_axes = ()       # Keras's input spec fixes the rank only (checked in check_input_shape)

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        where = f"Permute layer '{self.name}': dims"
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__iter__"):
            raise TypeError(f"{where} must be a tuple of integers, got {dims!r}.")
        dims = tuple(dims)
        if any(isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in dims):
            raise TypeError(f"{where} must be a tuple of integers, got {dims!r}.")
        if not dims or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"{where} must hold each of 1..{len(dims) or 'n'} once (the axes after the batch "
                             f"axis, counted from 1), got {dims!r}.")
        self.dims = tuple(int(d) for d in dims)

    def check_input_shape(self, shape):
        _check_rank(self, shape, len(self.dims) + 1)

    def build(self, input_shape):
        _check_rank(self, input_shape, len(self.dims) + 1)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, len(self.dims) + 1)
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def call(self, x, training=False):
        self._saved = () if training else None
        return array_module(x).ascontiguousarray(x.transpose((0,) + self.dims))

    def backward(self, dy):
        self.saved()
        # Output axis i is input axis dims[i - 1]: the inverse permutation sends each back.
        inverse = [0] * (len(self.dims) + 1)
        for position, axis in enumerate((0,) + self.dims):
            inverse[axis] = position
        return array_module(dy).ascontiguousarray(dy.transpose(inverse))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


class RepeatVector(Layer):
    """Repeats each sample ``n`` times along a new axis: (batch, features) -> (batch, n, features), the start of
    a decoder that reads one encoding at every step."""

    fixed_input_axes = ()       # the rank only, as in Keras (checked in check_input_shape)

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"RepeatVector layer '{self.name}': n must be an integer, got {n!r}.")
        if n <= 0:
            raise ValueError(f"RepeatVector layer '{self.name}': n must be a positive integer, got {n!r}.")
        self.n = int(n)

    def check_input_shape(self, shape):
        _check_rank(self, shape, 2)

    def build(self, input_shape):
        _check_rank(self, input_shape, 2)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 2)
        return (input_shape[0], self.n, input_shape[1])

    def call(self, x, training=False):
        self._saved = () if training else None
        return array_module(x).repeat(x[:, None, :], self.n, axis=1)

    def backward(self, dy):
        """Each input value's gradient is the sum over its ``n`` copies."""
        self.saved()
        return dy.sum(axis=1)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Identity(Layer):
    """Returns its input: a placeholder where a layer is expected. Passes masks on."""

    fixed_input_axes = ()
    supports_masking = True

    def call(self, x, training=False):
        self._saved = () if training else None
        return x

    def backward(self, dy):
        self.saved()
        return dy
