"""The shared base of the operations of ``keras.ops.image`` (``gpu_dl.ops.image``) as operations of a graph
(``ImageOperation``): Keras's classes of ``keras.src.ops.image``, with Keras's constructor arguments as their
configs, and gpu_dl's image maths forward and backward.

Each takes channels_last batches; an operation moves ``channels_first`` images and single images (rank 3) to that
layout and back, and its backward moves the gradient the same way.

Integer images keep their dtype where Keras's torch backend keeps it (interpolating operations round) and take no
gradient; the transforms, coordinates and corner points take none either (Keras's documented behaviour).

The families: colour (``image_colour``), resizing, cropping and padding (``image_resizing``), sampling at
coordinates (``image_coordinates``), the affine, perspective, scale-and-translate and elastic transforms
(``image_transforms``), patches (``image_patches``) and filters (``image_filters``).
"""
from __future__ import annotations

import numbers

import numpy

from ...backend.config import standardize_data_format
from .base import KerasOperation, _float, _xp


IMAGE = "keras.src.ops.image"
AFFINE_INTERPOLATIONS = ("nearest", "bilinear")
AFFINE_FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
RESIZE_INTERPOLATIONS = ("bilinear", "nearest", "bicubic")


def _word(value, allowed, name, where):
    if value not in allowed:
        raise ValueError(f"{where}: `{name}` must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    return value


def _count(value, name, where, optional=False, positive=False):
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (1 if positive else 0):
        raise ValueError(f"{where}: `{name}` must be an integer >= {1 if positive else 0}"
                         f"{' or None' if optional else ''}, got {value!r}.")
    return int(value)


def _number(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: `{name}` must be a number, got {value!r:.80} of type {type(value).__name__}.")
    return value.item() if hasattr(value, "item") else value


def _to_last(x, data_format, batched_rank=4):
    """``x`` as a channels_last batch, and whether it was one (a single image gets a batch axis of 1)."""
    batched = x.ndim == batched_rank
    if not batched:
        x = x[None]
    if data_format == "channels_first":
        x = _xp(x).moveaxis(x, 1, -1)
    return x, batched


def _from_last(y, data_format, batched):
    if data_format == "channels_first":
        y = _xp(y).moveaxis(y, -1, 1)
    y = y if batched else y[0]
    return _xp(y).ascontiguousarray(y)


class ImageOperation(KerasOperation):
    """An operation of ``keras.ops.image`` on images (the first argument) of rank 3 or 4."""

    keras_module = IMAGE
    casts_inputs = False
    ranks = (3, 4)
    config_keys = ("data_format",)

    def __init__(self, data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.data_format = data_format
        self._format = standardize_data_format(data_format, f"{type(self).__name__}: data_format")

    def _spatial_axes(self, rank):
        """The height and width axes of an image tensor of ``rank``."""
        return (rank - 3, rank - 2) if self._format == "channels_last" else (rank - 2, rank - 1)

    def _channel_axis(self, rank):
        return rank - 1 if self._format == "channels_last" else rank - 3

    def _check_rank(self, shape, what="images"):
        if len(shape) not in self.ranks:
            raise ValueError(f"{self._where()}: {what} must have rank {' or '.join(map(str, self.ranks))} "
                             f"(a single image or a batch), got shape {tuple(shape)}.")

    def output_shape_of(self, arguments, shapes):
        shape = self._shape_of(arguments, 0, shapes)
        self._check_rank(shape)
        return self.image_shape(list(shape))

    @staticmethod
    def _shape_of(arguments, position, shapes):
        """The shape of argument ``position``: a tensor's from ``shapes``, a constant's own."""
        given = iter(shapes)
        for index, a in enumerate(arguments):
            shape = next(given) if a is None else tuple(numpy.shape(a))
            if index == position:
                return tuple(shape)
        raise IndexError(position)

    def image_shape(self, shape):
        return tuple(shape)

    def result_dtype(self, tensors, arguments):
        first = tensors[0] if arguments[0] is None else arguments[0]
        return numpy.dtype(first.dtype).name

    def constant_dtype(self, array):
        return array.dtype      # transforms and coordinates keep theirs

    def backward(self, dy):
        operands, y = self.saved()
        if not _float(operands[0].dtype):
            return None if sum(a is None for a in self.arguments) == 1 else [None] * sum(
                a is None for a in self.arguments)
        gradients = [self.images_gradient(dy, operands, y)] + [None] * (len(operands) - 1)
        tensor_gradients = [g for g, a in zip(gradients, self.arguments) if a is None]
        return tensor_gradients if len(tensor_gradients) > 1 else tensor_gradients[0]

    def forward_function(self, *operands):
        return self.forward_array(*operands)


def _tuple(value, count, name, where):
    values = (value,) * count if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    if not isinstance(values, (tuple, list)) or len(values) != count:
        raise ValueError(f"{where}: `{name}` must be an integer or {count} integers, got {value!r}.")
    return tuple(_count(v, name, where, positive=True) for v in values)
