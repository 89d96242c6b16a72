"""Pooling layers over images and sequences: MaxPooling2D/1D, AveragePooling2D/1D, GlobalMaxPooling2D/1D,
GlobalAveragePooling2D/1D (the 1-D ones with a mask, as Keras's). All run the 2-D pooling ops (``spatial.py``)."""
from __future__ import annotations

import numpy

from ..backend import array_module
from ..ops import pool
from ..ops.convolution import conv_padding
from .spatial import SpatialLayer, contiguous, int_tuple, padding_word, too_small_error


class _Pooling(SpatialLayer):
    """Windows of ``pool_size`` every ``strides`` (default: pool_size), "valid" or "same" padding. As in Keras
    3.15, the average poolings need a pool_size and the max poolings default to 2 along each axis."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = f"{type(self).__name__} layer '{self.name}'"
        self.pool_size = int_tuple(pool_size, f"{where}: pool_size", self.rank)
        self.strides = self.pool_size if strides is None else int_tuple(strides, f"{where}: strides", self.rank)
        self.padding = padding_word(padding, f"{where}: padding")

    def _geometry(self, last_shape):
        """(the ops' window, strides and padding per axis (pairs, or triples for a 3-D layer), channels_last
        output shape) as in ``BaseConv._geometry``: unknown sizes stay unknown."""
        image = self.image_shape(last_shape)
        window, strides = self.image_pair(self.pool_size, 1), self.image_pair(self.strides, 1)
        pads = conv_padding(self.padding, image[1:-1], window, strides, (1,) * len(window))
        out = pool.pool_output_shape(image, window, strides, pads)
        for axis, n, k, s, p, o in zip(self.axis_names, *(self.layer_axes(v) for v in
                                                          (image[1:-1], window, strides, pads, out[1:-1]))):
            if o is not None and o < 1:
                raise too_small_error(self, axis, n, k, s, 1, p)
        return (window, strides, pads), out[:1] + self.layer_axes(out[1:-1]) + out[-1:]

    def build(self, input_shape):
        self._geometry(self.check_rank(input_shape))

    def compute_output_shape(self, input_shape):
        return self.from_last_shape(self._geometry(self.check_rank(input_shape))[1])

    def _image_input(self, x):
        """``x`` as the contiguous channels_last image the ops take, and the ops' geometry for it."""
        x = contiguous(self.to_last(x))
        return self.to_image(x), self._geometry(x.shape)[0]

    def _layer_output(self, y):
        return self.from_last(self.from_image(y))

    def _image_gradient(self, dy):
        return self.to_image(contiguous(self.to_last(dy)))

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}


class _MaxPooling(_Pooling):
    """The largest value of each window; its gradient goes to that value's position (the first, on ties)."""

    # the ops a subclass runs (the 3-D layers name their own)
    forward_op = staticmethod(pool.max_pool2d_forward)
    backward_op = staticmethod(pool.max_pool2d_backward)

    def call(self, x, training=False):
        x, geometry = self._image_input(x)
        y, argmax = self.forward_op(x, *geometry)
        self._saved = (x.shape, geometry, argmax) if training else None
        return self._layer_output(y)

    def backward(self, dy):
        shape, geometry, argmax = self.saved()
        return self._layer_output(self.backward_op(self._image_gradient(dy), argmax, shape, *geometry))


class _AveragePooling(_Pooling):
    """The mean of each window's in-bounds values (padding is not counted, as in Keras)."""

    forward_op = staticmethod(pool.avg_pool2d_forward)
    backward_op = staticmethod(pool.avg_pool2d_backward)

    def call(self, x, training=False):
        x, geometry = self._image_input(x)
        self._saved = (x.shape, geometry) if training else None
        return self._layer_output(self.forward_op(x, *geometry))

    def backward(self, dy):
        shape, geometry = self.saved()
        return self._layer_output(self.backward_op(self._image_gradient(dy), shape, *geometry))


class MaxPooling2D(_MaxPooling):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling2D(_AveragePooling):
    pass


class MaxPooling1D(_MaxPooling):
    rank = 1

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling1D(_AveragePooling):
    rank = 1


class _GlobalPooling(SpatialLayer):
    """A reduction over the spatial axes: (N, H, W, C) or (N, T, C) -> (N, C), or with ``keepdims``
    (N, 1, 1, C) or (N, 1, C)."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.keepdims = bool(keepdims)

    def check_rank(self, input_shape):
        last = super().check_rank(input_shape)
        if 0 in last[1:-1]:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' has nothing to pool over: the input of "
                             f"shape {tuple(input_shape)} has no {' x '.join(self.axis_names)} positions.")
        return last

    def build(self, input_shape):
        self.check_rank(input_shape)

    def compute_output_shape(self, input_shape):
        last = self.check_rank(input_shape)
        n, c = last[0], last[-1]
        return self.from_last_shape((n,) + (1,) * self.rank + (c,)) if self.keepdims else (n, c)

    def _image_input(self, x):
        return self.to_image(contiguous(self.to_last(x)))

    def _out(self, y):
        return self.from_last(y.reshape(y.shape[:1] + (1,) * self.rank + y.shape[1:])) if self.keepdims else y

    def _dy(self, dy):
        return contiguous(self.to_last(dy).reshape(dy.shape[0], -1) if self.keepdims else dy)

    def _layer_gradient(self, dx):
        return self.from_last(self.from_image(dx))

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class _GlobalMaxPooling(_GlobalPooling):
    forward_op = staticmethod(pool.global_max_pool2d_forward)
    backward_op = staticmethod(pool.global_max_pool2d_backward)

    def call(self, x, training=False):
        x = self._image_input(x)
        y, argmax = self.forward_op(x)
        self._saved = (x.shape, argmax) if training else None
        return self._out(y)

    def backward(self, dy):
        shape, argmax = self.saved()
        return self._layer_gradient(self.backward_op(self._dy(dy), argmax, shape))


class _GlobalAveragePooling(_GlobalPooling):
    forward_op = staticmethod(pool.global_avg_pool2d_forward)
    backward_op = staticmethod(pool.global_avg_pool2d_backward)

    def call(self, x, training=False):
        x = self._image_input(x)
        self._saved = (x.shape,) if training else None
        return self._out(self.forward_op(x))

    def backward(self, dy):
        (shape,) = self.saved()
        return self._layer_gradient(self.backward_op(self._dy(dy), shape))


class GlobalMaxPooling2D(_GlobalMaxPooling):
    pass


class GlobalAveragePooling2D(_GlobalAveragePooling):
    pass


class GlobalMaxPooling1D(_GlobalMaxPooling):
    rank = 1


class GlobalAveragePooling1D(_GlobalAveragePooling):
    """The mean over the steps; with a mask (batch, steps) (from ``Masking`` or ``Embedding(mask_zero=True)``,
    or given), the mean over the unmasked steps only, as Keras computes it: a sample with every step masked
    gives 0 / 0 = NaN, as in Keras, and a zero gradient."""

    rank = 1
    takes_mask = True

    def compute_mask(self, x, mask=None):
        """The mask ends here (the steps are averaged away), as Keras's compute_mask says."""
        return None

    def _checked_mask(self, x, mask):
        """(batch, steps) booleans whatever the data format (Keras's mask has no channel axis)."""
        if mask is None:
            return None
        mask = array_module(x).asarray(mask)
        n, steps, _ = self.to_last_shape(x.shape)
        if mask.shape != (n, steps):
            raise ValueError(f"GlobalAveragePooling1D layer '{self.name}': the mask must have shape (batch, steps) "
                             f"= {(n, steps)}, got {tuple(mask.shape)}.")
        return mask.astype(bool, copy=False)

    def call(self, x, training=False, mask=None):
        if mask is None:
            return super().call(x, training)
        x = self.to_last(x)
        keep = mask[:, :, None]
        count = keep.sum(axis=1).astype(x.dtype)            # (N, 1)
        total = array_module(x).where(keep, x, x.dtype.type(0)).sum(axis=1)   # masked NaN/inf left out, as Keras
        with numpy.errstate(invalid="ignore", divide="ignore"):
            y = total / count
        self._saved = ("masked", keep, count) if training else None
        return self._out(y)

    def backward(self, dy):
        if self.saved()[0] != "masked":
            return super().backward(dy)
        _, keep, count = self.saved()
        with numpy.errstate(invalid="ignore", divide="ignore"):
            share = self._dy(dy) / count
        return self.from_last(array_module(share).where(keep, share[:, None, :], share.dtype.type(0)))


# Keras's short aliases.
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
