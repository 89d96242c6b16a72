"""Layers that remove or repeat the rows and columns of images (and the slices of volumes): Cropping2D,
Cropping3D, UpSampling2D and UpSampling3D.

They take Keras 3's arguments on channels_last data (``data_format=
"channels_first"`` too) and work on the spatial axes in place, whatever the
layout, so channels_first data is never transposed.
"""
from __future__ import annotations

from ..backend import array_module
from ..ops.upsample import (upsample_linear, upsample_linear_backward, upsample_nearest,
                            upsample_nearest_backward)
from .padding import padding_pairs
from .spatial import SpatialLayer, contiguous, int_tuple

# Keras's other interpolations, refused: its backends disagree on "bicubic" (PyTorch's cubic kernel has
# a = -0.75, TensorFlow's and JAX's -0.5) and its torch backend has no Lanczos.
INTERPOLATIONS = ("nearest", "bilinear")


class _Cropping(SpatialLayer):
    """Drops (before, after) entries along each spatial axis; at least one must be left on each."""

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.cropping = padding_pairs(cropping, f"{type(self).__name__} layer '{self.name}': cropping", self.rank)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        last = self.check_rank(input_shape)
        sizes = []
        for axis, size, pair in zip(self.axis_names, last[1:-1], self.cropping):
            if size is not None and size - sum(pair) < 1:
                raise ValueError(f"{type(self).__name__} layer '{self.name}': {axis} cropping {pair} removes "
                                 f"{sum(pair)} of the input's {size} (shape {tuple(input_shape)}), leaving "
                                 f"{size - sum(pair)}; the input's {axis} must be more than {sum(pair)}.")
            sizes.append(None if size is None else size - sum(pair))
        return self.from_last_shape(last[:1] + tuple(sizes) + last[-1:])

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)   # a model built for any size checks each batch's
        self._saved = (x.shape,) if training else None
        index = [slice(None)] * x.ndim
        for axis, (before, after) in zip(self.spatial_axes, self.cropping):
            index[axis] = slice(before, x.shape[axis] - after)
        return contiguous(x[tuple(index)])   # a copy, as every layer after it may take

    def backward(self, dy):
        """The gradient of a crop: dy with zeros where the input was cut away."""
        self.saved()   # a clear error without a training call before
        pads = [(0, 0)] * dy.ndim
        for axis, pair in zip(self.spatial_axes, self.cropping):
            pads[axis] = pair
        return array_module(dy).pad(dy, pads)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


class Cropping2D(_Cropping):
    """Crops images: ``cropping`` an int (every side), (rows, cols) (both sides of each axis) or
    ((top, bottom), (left, right)); nothing by default, as in Keras."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format=data_format, **kwargs)


class Cropping3D(_Cropping):
    """Crops volumes: ``cropping`` an int, one per axis (depth, height, width) or
    ((front, back), (top, bottom), (left, right)); one on every side by default, as in Keras."""

    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format=data_format, **kwargs)


class _UpSampling(SpatialLayer):
    """Repeats (or interpolates) each spatial axis ``size`` times."""

    interpolation = "nearest"

    def __init__(self, size, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.size = int_tuple(size, f"{type(self).__name__} layer '{self.name}': size", self.rank)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        last = self.check_rank(input_shape)
        sizes = tuple(None if n is None else n * s for n, s in zip(last[1:-1], self.size))
        return self.from_last_shape(last[:1] + sizes + last[-1:])

    def call(self, x, training=False):
        self._saved = (x.shape,) if training else None
        if self.interpolation == "bilinear":
            return upsample_linear(x, self.spatial_axes, self.size)
        return upsample_nearest(x, self.spatial_axes, self.size)

    def backward(self, dy):
        self.saved()
        if self.interpolation == "bilinear":
            return upsample_linear_backward(dy, self.spatial_axes, self.size)
        return upsample_nearest_backward(dy, self.spatial_axes, self.size)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class UpSampling2D(_UpSampling):
    """Scales images up by ``size`` = (rows, cols) (or an int, both): ``interpolation="nearest"`` repeats
    each row and column, ``"bilinear"`` interpolates as Keras 3 does (half-pixel centres, edges clamped;
    ``gpu_dl.ops.upsample``)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format=data_format, **kwargs)
        word = interpolation.lower() if isinstance(interpolation, str) else interpolation
        if word not in INTERPOLATIONS:
            raise ValueError(f"UpSampling2D layer '{self.name}': interpolation must be 'nearest' or 'bilinear', "
                             f"got {interpolation!r} (Keras's 'bicubic' differs between its backends, and its "
                             "torch backend has no Lanczos).")
        self.interpolation = word

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


class UpSampling3D(_UpSampling):
    """Scales volumes up by ``size`` = (depth, rows, cols) (or an int, all three), repeating each entry."""

    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size, data_format=data_format, **kwargs)
