"""The operations of ``keras.ops.image`` (``gpu_dl.ops.image``) as operations of a graph: Keras's classes of
``keras.src.ops.image``, with Keras's constructor arguments as their configs, and gpu_dl's image maths forward and
backward.

The maths is the image layers' where they have it: ``ops/color.py`` (grayscale, HSV, the blur's correlation),
``ops/resize.py`` (bilinear and nearest resizing as PyTorch computes it), ``preprocessing.affine_resample`` (the
affine resampler, a CUDA kernel for CuPy float images) and ``geometric_augmentation.perspective_resample``;
``ops/resample_matrices.py`` holds the bicubic and antialiased resizes and ``scale_and_translate``, and
``map_coordinates``'s sampling plan (``coordinate_taps``) also serves the ``mirror`` fill mode of
``affine_transform`` and ``elastic_transform``. Each
takes channels_last batches; an operation moves ``channels_first`` images and single images (rank 3) to that
layout and back, and its backward moves the gradient the same way.

``elastic_transform`` draws its displacement fields with ``gpu_dl.random``'s generator.

Integer images keep their dtype where Keras's torch backend keeps it (interpolating operations round) and take no
gradient; the transforms, coordinates and corner points take none either (Keras's documented behaviour).
"""
from __future__ import annotations

import functools
import itertools
import numbers
import operator

import numpy

from ... import backend
from ...backend.config import standardize_data_format
from ...ops import color, random_draws, resample_matrices, resize as resize_maths
from ..geometric_augmentation import homographies, perspective_resample, perspective_resample_backward
from ..preprocessing import affine_resample, affine_resample_backward
from ..seed_generator import SeedGenerator, check_seed, draw_seed
from .base import KerasOperation, _float, _xp

IMAGE = "keras.src.ops.image"
AFFINE_INTERPOLATIONS = ("nearest", "bilinear")
AFFINE_FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
RESIZE_INTERPOLATIONS = ("bilinear", "nearest", "bicubic")
SOBEL_X = numpy.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.T.copy()


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


# ------------------------------------------------------------------ colour
class RGBToGrayscale(ImageOperation):
    def image_shape(self, shape):
        axis = self._channel_axis(len(shape))
        if shape[axis] not in (None, 1, 3):
            raise ValueError(f"{self._where()}: images must have 3 channels (RGB) or 1 (grayscale), got shape "
                             f"{tuple(shape)}.")
        shape[axis] = 1
        return tuple(shape)

    def forward_array(self, x):
        self.image_shape(list(x.shape))
        last, batched = _to_last(x, self._format)
        if last.dtype.kind != "f" and last.shape[-1] == 3:
            # Keras's torch backend weighs integers in float32 and truncates back
            y = color.rgb_to_grayscale(last.astype(numpy.float32)).astype(x.dtype)
        else:
            y = color.rgb_to_grayscale(last)
        return _from_last(y, self._format, batched)

    def images_gradient(self, dy, operands, y):
        if operands[0].shape[self._channel_axis(operands[0].ndim)] == 1:
            return dy
        g, batched = _to_last(dy, self._format)
        return _from_last(g * _xp(g).asarray(color.GRAY_WEIGHTS, dtype=g.dtype), self._format, batched)


class _HSVOperation(ImageOperation):
    def image_shape(self, shape):
        axis = self._channel_axis(len(shape))
        if shape[axis] not in (None, 3):
            raise ValueError(f"{self._where()}: images must have 3 channels, got shape {tuple(shape)}.")
        return tuple(shape)

    def result_dtype(self, tensors, arguments):
        dtype = super().result_dtype(tensors, arguments)
        if not _float(dtype):
            raise ValueError(f"{self._where()}: images must be of a float dtype, got {dtype}.")
        return dtype

    def forward_array(self, x):
        self.image_shape(list(x.shape))
        if not _float(x.dtype):
            raise ValueError(f"{self._where()}: images must be of a float dtype, got {x.dtype}.")
        last, batched = _to_last(x, self._format)
        return _from_last(self.convert(last), self._format, batched)

    def images_gradient(self, dy, operands, y):
        g, batched = _to_last(dy, self._format)
        x, _ = _to_last(operands[0], self._format)
        return _from_last(self.convert_backward(g, x), self._format, batched)


class RGBToHSV(_HSVOperation):
    @staticmethod
    def convert(x):
        return _xp(x).stack(color.rgb_to_hsv(x), axis=-1)

    @staticmethod
    def convert_backward(g, x):
        """The gradient of (hue, saturation, value) in (r, g, b): value is the largest channel, saturation the
        range over it, hue the difference of the two other channels over six times the range (plus an offset)."""
        xp = _xp(x)
        eps = numpy.finfo(x.dtype).eps
        kept = xp.abs(x) >= eps                 # Keras zeroes values below eps first
        x = xp.where(kept, x, xp.zeros((), x.dtype))
        r, gr, b = x[..., 0], x[..., 1], x[..., 2]
        value = xp.maximum(xp.maximum(r, gr), b)
        low = xp.minimum(xp.minimum(r, gr), b)
        range_ = value - low
        # the channel read as the value, in the order the hue's formula picks it (red, then green, then blue)
        top = xp.where(value == r, 0, xp.where(value == gr, 1, 2))
        bottom = xp.argmin(x, axis=-1)
        channels = xp.arange(3).reshape((1,) * top.ndim + (3,))
        d_top = (top[..., None] == channels).astype(x.dtype)
        d_bottom = (bottom[..., None] == channels).astype(x.dtype)
        d_range = d_top - d_bottom
        gh, gs, gv = g[..., 0], g[..., 1], g[..., 2]
        one = xp.ones((), x.dtype)
        positive = value > 0
        safe_value = xp.where(positive, value, one)
        grad = gv[..., None] * d_top
        grad += xp.where(positive, gs, 0 * one)[..., None] * (
            d_range / safe_value[..., None] - (range_ / safe_value ** 2)[..., None] * d_top)
        # hue = (p - q) / (6 range) + offset, (p, q) = (g, b), (b, r) or (r, g) by the top channel
        first = xp.where(top == 0, 1, xp.where(top == 1, 2, 0))
        second = xp.where(top == 0, 2, xp.where(top == 1, 0, 1))
        p = xp.take_along_axis(x, first[..., None], axis=-1)[..., 0]
        q = xp.take_along_axis(x, second[..., None], axis=-1)[..., 0]
        has_range = range_ > 0
        safe_range = xp.where(has_range, range_, one)
        gh = xp.where(has_range, gh, 0 * one) / (6 * safe_range)
        d_pq = (first[..., None] == channels).astype(x.dtype) - (second[..., None] == channels).astype(x.dtype)
        grad += gh[..., None] * (d_pq - ((p - q) / safe_range)[..., None] * d_range)
        return grad * kept


class HSVToRGB(_HSVOperation):
    @staticmethod
    def convert(x):
        return color.hsv_to_rgb(x[..., 0], x[..., 1], x[..., 2])

    @staticmethod
    def convert_backward(g, x):
        """Channel c is ``v (1 - s + s d_c(h))``: its gradient in v, s and h (through the piecewise-linear d_c)."""
        xp = _xp(x)
        h, s, v = x[..., 0:1], x[..., 1:2], x[..., 2:3]
        d = color.hue_weights(x[..., 0])
        dh = xp.remainder(h, 1.0) * 6.0
        centres = xp.asarray([3.0, 2.0, 4.0], dtype=x.dtype)
        signs = xp.asarray([1.0, -1.0, -1.0], dtype=x.dtype)      # d_r rises with |dh - 3|, the others fall
        distance = dh - centres
        inner = xp.where(signs > 0, xp.abs(distance) - 1.0, 2.0 - xp.abs(distance))
        slope = 6.0 * signs * xp.sign(distance) * ((inner > 0) & (inner < 1))
        grad_h = (g * v * s * slope).sum(axis=-1)
        grad_s = (g * v * (d - 1.0)).sum(axis=-1)
        grad_v = (g * (1.0 - s + s * d)).sum(axis=-1)
        return xp.stack([grad_h, grad_s, grad_v], axis=-1).astype(x.dtype, copy=False)


# ------------------------------------------------------------------ resizing, cropping, padding
class Resize(ImageOperation):
    """``resize``: bilinear or nearest (PyTorch's nearest-exact) by ``ops/resize.py``; bicubic, and the
    antialiased bilinear and bicubic (``antialias=True``, ignored for nearest as Keras ignores it), through
    ``ops/resample_matrices.py``; ``crop_to_aspect_ratio`` crops the centre and ``pad_to_aspect_ratio`` pads both
    sides with ``fill_value`` before resizing, as Keras's torch backend does."""

    config_keys = ("size", "interpolation", "antialias", "crop_to_aspect_ratio", "pad_to_aspect_ratio",
                   "fill_mode", "fill_value", "data_format")

    def __init__(self, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None, name=None,
                 **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = "resize"
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise ValueError(f"{where}: `size` must be (height, width), got {size!r}.")
        self.size = tuple(_count(n, "size", where, positive=True) for n in size)
        if str(interpolation).startswith("lanczos"):
            raise ValueError(f"{where}: Lanczos interpolation is not offered (Keras's torch backend has none); use "
                             "'bilinear', 'nearest' or 'bicubic'.")
        self.interpolation = _word(interpolation, RESIZE_INTERPOLATIONS, "interpolation", where)
        self.antialias = bool(antialias)
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"{where}: only one of `pad_to_aspect_ratio` and `crop_to_aspect_ratio` can be True.")
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = _word(fill_mode, ("constant",), "fill_mode", where)
        self.fill_value = _number(fill_value, "fill_value", where)

    def image_shape(self, shape):
        h, w = self._spatial_axes(len(shape))
        shape[h], shape[w] = self.size
        return tuple(shape)

    def _box(self, height, width):
        """(top, left, rows, columns) of the crop, or (top, left, padded rows, padded columns) of the pad."""
        th, tw = self.size
        if self.crop_to_aspect_ratio:
            rows = max(min(height, int(float(width * th) / tw)), 1)
            columns = max(min(width, int(float(height * tw) / th)), 1)
            return int(float(height - rows) / 2), int(float(width - columns) / 2), rows, columns
        rows = max(height, int(float(width * th) / tw))
        columns = max(width, int(float(height * tw) / th))
        return int(float(rows - height) / 2), int(float(columns - width) / 2), rows, columns

    def forward_array(self, x):
        self._check_rank(x.shape)
        last, batched = _to_last(x, self._format)
        xp = _xp(last)
        work = last if last.dtype in (numpy.float32, numpy.float64) else last.astype(numpy.float32)
        n, height, width, c = work.shape
        if self.crop_to_aspect_ratio:
            top, left, rows, columns = self._box(height, width)
            work = work[:, top:top + rows, left:left + columns]
        elif self.pad_to_aspect_ratio:
            top, left, _, _ = self._box(height, width)
            # Keras pads both sides by the same amount (so an odd difference leaves the result a pixel short)
            padded = xp.full((n, height + 2 * top, width + 2 * left, c), self.fill_value, dtype=work.dtype)
            padded[:, top:top + height, left:left + width] = work
            work = padded
        y = self._resized(work)
        if y.dtype != last.dtype:
            if self.interpolation == "bicubic" and last.dtype == numpy.uint8:
                y = xp.clip(y, 0, 255)
            y = xp.round(y).astype(last.dtype)
        return _from_last(y, self._format, batched)

    def _matrices(self, height, width, dtype):
        """The (rows, columns) resampling matrices, or None where ``ops/resize.py`` resizes."""
        if self.interpolation == "nearest" or (self.interpolation == "bilinear" and not self.antialias):
            return None
        if self.antialias:
            return (resample_matrices.antialias_matrix(height, self.size[0], self.interpolation, dtype),
                    resample_matrices.antialias_matrix(width, self.size[1], self.interpolation, dtype))
        return (resample_matrices.bicubic_matrix(height, self.size[0], dtype),
                resample_matrices.bicubic_matrix(width, self.size[1], dtype))

    def _resized(self, x):
        matrices = self._matrices(x.shape[1], x.shape[2], x.dtype)
        if matrices is None:
            return resize_maths.resize(x, *self.size, interpolation=self.interpolation)
        # the width first, then the height, as PyTorch's separable passes go (an axis of the same size is kept)
        if x.shape[2] != self.size[1] or not self.antialias:
            x = resample_matrices.apply_axis(x, 2, matrices[1])
        if x.shape[1] != self.size[0] or not self.antialias:
            x = resample_matrices.apply_axis(x, 1, matrices[0])
        return x

    def _resized_backward(self, g, height, width):
        matrices = self._matrices(height, width, g.dtype)
        if matrices is None:
            return resize_maths.resize_backward(g, height, width, self.interpolation)
        if height != self.size[0] or not self.antialias:
            g = resample_matrices.apply_axis_backward(g, 1, matrices[0])
        if width != self.size[1] or not self.antialias:
            g = resample_matrices.apply_axis_backward(g, 2, matrices[1])
        return g

    def images_gradient(self, dy, operands, y):
        x = operands[0]
        g, batched = _to_last(dy, self._format)
        _, height, width, _ = _to_last(x, self._format)[0].shape
        if self.crop_to_aspect_ratio:
            top, left, rows, columns = self._box(height, width)
            inner = self._resized_backward(g, rows, columns)
            dx = _xp(g).zeros(g.shape[:1] + (height, width) + g.shape[3:], dtype=g.dtype)
            dx[:, top:top + rows, left:left + columns] = inner
        elif self.pad_to_aspect_ratio:
            top, left, _, _ = self._box(height, width)
            padded = self._resized_backward(g, height + 2 * top, width + 2 * left)
            dx = padded[:, top:top + height, left:left + width]
        else:
            dx = self._resized_backward(g, height, width)
        return _from_last(dx, self._format, batched)


class _Framing(ImageOperation):
    """crop_images and pad_images: two of (top, bottom, target_height) and two of (left, right, target_width)."""

    sides = ("top", "left", "bottom", "right")
    word = None
    function = None

    def __init__(self, first=None, second=None, third=None, fourth=None, target_height=None, target_width=None,
                 data_format=None, name=None, **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = self.function
        top, left, bottom, right = (_count(v, f"{side}_{self.word}", where, optional=True)
                                    for v, side in zip((first, second, third, fourth), self.sides))
        target_height = _count(target_height, "target_height", where, optional=True)
        target_width = _count(target_width, "target_width", where, optional=True)
        for a, b, t, axis in ((top, bottom, target_height, "height"), (left, right, target_width, "width")):
            if [a, b, t].count(None) != 1:
                first_side, second_side = ("top", "bottom") if axis == "height" else ("left", "right")
                raise ValueError(f"{where}: give exactly two of {first_side}_{self.word}, {second_side}_{self.word} "
                                 f"and target_{axis}; got {first_side}_{self.word}={a}, "
                                 f"{second_side}_{self.word}={b}, target_{axis}={t}.")
        for side, value in zip(self.sides, (top, left, bottom, right)):
            setattr(self, f"{side}_{self.word}", value)
        self.target_height, self.target_width = target_height, target_width

    def _axis_plan(self, size, axis):
        """(before, after) amounts along ``axis`` ("height" or "width") of images of ``size`` there."""
        first, second = ("top", "bottom") if axis == "height" else ("left", "right")
        before, after = getattr(self, f"{first}_{self.word}"), getattr(self, f"{second}_{self.word}")
        target = getattr(self, f"target_{axis}")
        change = None if target is None else (target - size) * (1 if self.word == "padding" else -1)
        before = change - after if before is None else before
        after = change - before if after is None else after
        for side, value in ((first, before), (second, after)):
            if value < 0:
                raise ValueError(f"{self.function}: images of {axis} {size} would need {side}_{self.word}={value}; "
                                 "amounts must be >= 0.")
        if self.word == "cropping" and before + after > size:
            raise ValueError(f"{self.function}: cannot crop {before} + {after} from images of {axis} {size}.")
        return before, after

    def image_shape(self, shape):
        sign = 1 if self.word == "padding" else -1
        for axis, index in zip(("height", "width"), self._spatial_axes(len(shape))):
            if shape[index] is None:
                shape[index] = getattr(self, f"target_{axis}")
                if shape[index] is None and self.word == "cropping":
                    raise ValueError(f"{self._where()}: images of unknown {axis} need target_{axis}.")
            else:
                before, after = self._axis_plan(shape[index], axis)
                shape[index] += sign * (before + after)
        return tuple(shape)

    def _windows(self, x):
        h, w = self._spatial_axes(x.ndim)
        return (h, w) + self._axis_plan(x.shape[h], "height") + self._axis_plan(x.shape[w], "width")


class CropImages(_Framing):
    word, function = "cropping", "crop_images"
    config_keys = ("top_cropping", "left_cropping", "bottom_cropping", "right_cropping", "target_height",
                   "target_width", "data_format")

    def __init__(self, top_cropping=None, left_cropping=None, bottom_cropping=None, right_cropping=None,
                 target_height=None, target_width=None, data_format=None, name=None, **kwargs):
        super().__init__(top_cropping, left_cropping, bottom_cropping, right_cropping, target_height, target_width,
                         data_format, name=name, **kwargs)

    def _index(self, x, h, w, top, bottom, left, right):
        index = [slice(None)] * x.ndim
        index[h] = slice(top, x.shape[h] - bottom)
        index[w] = slice(left, x.shape[w] - right)
        return tuple(index)

    def forward_array(self, x):
        self._check_rank(x.shape)
        h, w, top, bottom, left, right = self._windows(x)
        return _xp(x).ascontiguousarray(x[self._index(x, h, w, top, bottom, left, right)])

    def images_gradient(self, dy, operands, y):
        x = operands[0]
        h, w, top, bottom, left, right = self._windows(x)
        dx = _xp(dy).zeros(x.shape, dtype=dy.dtype)
        dx[self._index(x, h, w, top, bottom, left, right)] = dy
        return dx


class PadImages(_Framing):
    word, function = "padding", "pad_images"
    config_keys = ("top_padding", "left_padding", "bottom_padding", "right_padding", "target_height",
                   "target_width", "data_format")

    def __init__(self, top_padding=None, left_padding=None, bottom_padding=None, right_padding=None,
                 target_height=None, target_width=None, data_format=None, name=None, **kwargs):
        super().__init__(top_padding, left_padding, bottom_padding, right_padding, target_height, target_width,
                         data_format, name=name, **kwargs)

    def forward_array(self, x):
        self._check_rank(x.shape)
        h, w, top, bottom, left, right = self._windows(x)
        widths = [(0, 0)] * x.ndim
        widths[h], widths[w] = (top, bottom), (left, right)
        return _xp(x).pad(x, widths)

    def images_gradient(self, dy, operands, y):
        x = operands[0]
        h, w, top, bottom, left, right = self._windows(x)
        index = [slice(None)] * x.ndim
        index[h], index[w] = slice(top, top + x.shape[h]), slice(left, left + x.shape[w])
        return _xp(dy).ascontiguousarray(dy[tuple(index)])


# ------------------------------------------------------------------ sampling at coordinates
def _fixed_index(index, size, fill_mode, xp):
    """Integer positions along one axis brought into [0, size) as Keras's ``map_coordinates`` brings them."""
    if fill_mode in ("constant", "nearest"):
        return xp.clip(index, 0, size - 1)
    if fill_mode == "wrap":
        return xp.mod(index, size)

    def mirrored(i, n):
        s = n - 1                   # the half-period of a triangle wave
        return xp.abs(xp.mod(i + s, 2 * s) - s) if s > 0 else xp.zeros_like(i)
    if fill_mode == "mirror":
        return mirrored(index, size)
    return xp.floor_divide(mirrored(2 * index + 1, 2 * size + 1) - 1, 2)      # reflect


def coordinate_taps(shape, coordinates, order, fill_mode, xp):
    """The sampling plan of ``map_coordinates``: [(flat index, valid mask or None, weight or None)] over all
    combinations of the interpolation nodes of each axis, in Keras's order. ``coordinates`` holds one array per
    axis of an input of ``shape`` (broadcastable to each other); integer arrays are read exactly."""
    strides = numpy.cumprod((1,) + tuple(shape[::-1]))[:-1][::-1]
    per_axis = []
    for coordinate, size in zip(coordinates, shape):
        if coordinate.dtype.kind in "iu":
            nodes = [(coordinate.astype(xp.int64), None)]
        elif order == 0:
            nodes = [(xp.round(coordinate).astype(xp.int64), None)]
        else:
            lower = xp.floor(coordinate)
            upper_weight = coordinate - lower
            index = lower.astype(xp.int64)
            nodes = [(index, 1 - upper_weight), (index + 1, upper_weight)]
        per_axis.append([(_fixed_index(i, size, fill_mode, xp),
                          ((i >= 0) & (i < size)) if fill_mode == "constant" else None, w) for i, w in nodes])
    taps = []
    for combination in itertools.product(*per_axis):
        flat = functools.reduce(operator.add, [int(s) * i for s, (i, _, _) in zip(strides, combination)])
        masks = [v for _, v, _ in combination if v is not None]
        weights = [w for _, _, w in combination if w is not None]
        taps.append((flat, functools.reduce(operator.and_, masks) if masks else None,
                     functools.reduce(operator.mul, weights) if weights else None))
    return taps


def sample_coordinates(inputs, coordinates, order, fill_mode, fill_value):
    """``inputs`` read at ``coordinates`` (``coordinate_taps``), of the inputs' dtype (integers rounded)."""
    xp = _xp(inputs)
    out_shape = numpy.broadcast_shapes(*[c.shape for c in coordinates])
    flat_input = inputs.reshape(-1)
    floats = [c.dtype for c in coordinates if c.dtype.kind == "f"]
    # PyTorch's promotion: integer inputs take the weights' float type, float inputs the wider of the two
    dtype = (numpy.result_type(*floats, inputs.dtype) if inputs.dtype.kind == "f" else numpy.result_type(*floats)) \
        if floats else inputs.dtype
    out = None
    for flat, valid, weight in coordinate_taps(inputs.shape, coordinates, order, fill_mode, xp):
        value = xp.take(flat_input, xp.broadcast_to(flat, out_shape))
        if valid is not None:
            value = xp.where(valid, value, xp.asarray(fill_value).astype(inputs.dtype))
        if weight is not None:
            value = weight * value.astype(dtype, copy=False)
        out = value if out is None else out + value
    if inputs.dtype.kind != "f" and out.dtype.kind == "f":
        out = xp.round(out)
    return out.astype(inputs.dtype, copy=False)


def sample_coordinates_backward(dy, shape, coordinates, order, fill_mode):
    """The adjoint of ``sample_coordinates`` in its inputs: each output gradient added back to what it read."""
    xp = _xp(dy)
    size = int(numpy.prod(shape))
    dx = None
    for flat, valid, weight in coordinate_taps(shape, coordinates, order, fill_mode, xp):
        g = dy
        if weight is not None:
            g = g * weight
        if valid is not None:
            g = g * valid
        part = xp.bincount(xp.broadcast_to(flat, dy.shape).ravel(), weights=g.ravel(), minlength=size)
        dx = part if dx is None else dx + part
    return dx.reshape(shape).astype(dy.dtype, copy=False)


class MapCoordinates(KerasOperation):
    """``map_coordinates(inputs, coordinates, order, fill_mode, fill_value)``: order 0 (nearest) or 1 (linear)."""

    keras_module = IMAGE
    arity = 2
    casts_inputs = False
    config_keys = ("order", "fill_mode", "fill_value")

    def __init__(self, order, fill_mode="constant", fill_value=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if order not in (0, 1) or isinstance(order, bool):
            raise ValueError(f"map_coordinates: `order` must be 0 (nearest) or 1 (linear), got {order!r}.")
        self.order = int(order)
        self.fill_mode = _word(fill_mode, AFFINE_FILL_MODES, "fill_mode", "map_coordinates")
        self.fill_value = _number(fill_value, "fill_value", "map_coordinates")

    def output_shape_of(self, arguments, shapes):
        inputs = ImageOperation._shape_of(arguments, 0, shapes)
        coordinates = ImageOperation._shape_of(arguments, 1, shapes)
        if len(coordinates) < 2:
            raise ValueError(f"{self._where()}: coordinates must have rank >= 2 (one array per axis of the inputs), "
                             f"got shape {coordinates}.")
        if coordinates[0] != len(inputs):
            raise ValueError(f"{self._where()}: the first axis of coordinates must be the rank of the inputs, "
                             f"{len(inputs)}; got inputs of shape {inputs} and coordinates of shape {coordinates}.")
        return tuple(coordinates[1:])

    def result_dtype(self, tensors, arguments):
        return ImageOperation.result_dtype(self, tensors, arguments)

    constant_dtype = ImageOperation.constant_dtype

    def forward_function(self, inputs, coordinates):
        return self.forward_array(inputs, coordinates)

    def forward_array(self, inputs, coordinates):
        self.output_shape_of([None, None], [inputs.shape, coordinates.shape])
        return sample_coordinates(inputs, list(coordinates), self.order, self.fill_mode, self.fill_value)

    def backward(self, dy):
        return ImageOperation.backward(self, dy)

    def images_gradient(self, dy, operands, y):
        inputs, coordinates = operands
        return sample_coordinates_backward(dy, inputs.shape, list(coordinates), self.order, self.fill_mode)


def _affine_matrices(transform, n, xp):
    """Keras's transforms (N, 8) or (8,) as the resampler's (N, 2, 3) inverse maps (c0 and c1 are taken as 0, as
    Keras's backends other than TensorFlow take them)."""
    t = transform if transform.ndim == 2 else transform[None]
    if t.shape[0] == 1 and n != 1:
        t = xp.broadcast_to(t, (n, t.shape[1]))
    return t[:, :6].reshape(-1, 2, 3)


class AffineTransform(ImageOperation):
    """``affine_transform``: ``preprocessing.affine_resample`` (the CUDA kernel for CuPy float images); the
    ``mirror`` fill mode, which the resampler lacks, reads through ``map_coordinates``'s plan."""

    arity = 2
    config_keys = ("interpolation", "fill_mode", "fill_value", "data_format")

    def __init__(self, interpolation="bilinear", fill_mode="constant", fill_value=0, data_format=None, name=None,
                 **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        self.interpolation = _word(interpolation, AFFINE_INTERPOLATIONS, "interpolation", "affine_transform")
        self.fill_mode = _word(fill_mode, AFFINE_FILL_MODES, "fill_mode", "affine_transform")
        self.fill_value = _number(fill_value, "fill_value", "affine_transform")

    def output_shape_of(self, arguments, shapes):
        transform = self._shape_of(arguments, 1, shapes)
        if len(transform) not in (1, 2) or transform[-1] not in (None, 8):
            raise ValueError(f"{self._where()}: transform must have shape (8,) or (N, 8), got {transform}.")
        return super().output_shape_of(arguments, shapes)

    def _mirror_coordinates(self, shape, matrices, xp):
        n, h, w, c = shape
        dtype = matrices.dtype if matrices.dtype.kind == "f" else numpy.dtype(numpy.float32)
        m = matrices.astype(dtype, copy=False).reshape(n, 2, 3, 1, 1, 1)
        xs = xp.arange(w, dtype=dtype).reshape(1, 1, w, 1)
        ys = xp.arange(h, dtype=dtype).reshape(1, h, 1, 1)
        return [xp.arange(n).reshape(n, 1, 1, 1), m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2],
                m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2], xp.arange(c).reshape(1, 1, 1, c)]

    def forward_array(self, images, transform):
        self.output_shape_of([None, None], [images.shape, transform.shape])
        last, batched = _to_last(images, self._format)
        xp = _xp(last)
        matrices = _affine_matrices(transform, last.shape[0], xp)
        if matrices.shape[0] != last.shape[0]:
            raise ValueError(f"{self._where()}: {matrices.shape[0]} transforms for {last.shape[0]} images.")
        if self.fill_mode == "mirror":
            y = sample_coordinates(last, self._mirror_coordinates(last.shape, matrices, xp),
                                   AFFINE_INTERPOLATIONS.index(self.interpolation), "mirror", self.fill_value)
        else:
            y = affine_resample(last, matrices, self.fill_mode, self.interpolation, self.fill_value)
        return _from_last(y, self._format, batched)

    def images_gradient(self, dy, operands, y):
        images, transform = operands
        g, batched = _to_last(dy, self._format)
        xp = _xp(g)
        matrices = _affine_matrices(transform, g.shape[0], xp)
        if self.fill_mode == "mirror":
            dx = sample_coordinates_backward(g, g.shape, self._mirror_coordinates(g.shape, matrices, xp),
                                             AFFINE_INTERPOLATIONS.index(self.interpolation), "mirror")
        else:
            dx = affine_resample_backward(g, matrices, self.fill_mode, self.interpolation)
        return _from_last(dx, self._format, batched)


class PerspectiveTransform(ImageOperation):
    """``perspective_transform``: the homography mapping ``end_points`` onto ``start_points`` (solved on the host)
    through ``geometric_augmentation.perspective_resample``, constant fill."""

    arity = 3
    config_keys = ("interpolation", "fill_value", "data_format")

    def __init__(self, interpolation="bilinear", fill_value=0, data_format=None, name=None, **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        self.interpolation = _word(interpolation, AFFINE_INTERPOLATIONS, "interpolation", "perspective_transform")
        self.fill_value = _number(fill_value, "fill_value", "perspective_transform")

    def output_shape_of(self, arguments, shapes):
        start, end = self._shape_of(arguments, 1, shapes), self._shape_of(arguments, 2, shapes)
        for what, shape in (("start_points", start), ("end_points", end)):
            if len(shape) not in (2, 3) or tuple(shape[-2:]) != (4, 2):
                raise ValueError(f"{self._where()}: {what} must have shape (4, 2) or (N, 4, 2), got {shape}.")
        if start != end:
            raise ValueError(f"{self._where()}: start_points and end_points must have the same shape, got {start} "
                             f"and {end}.")
        return super().output_shape_of(arguments, shapes)

    def _transforms(self, start, end, n, images_dtype):
        start = backend.to_numpy(start).reshape(-1, 4, 2)
        end = backend.to_numpy(end).reshape(-1, 4, 2)
        if numpy.dtype(images_dtype).kind != "f":
            # Keras's torch backend takes the points in the images' dtype: integer images truncate them
            start, end = start.astype(images_dtype), end.astype(images_dtype)
        t = homographies(start, end)
        if t.shape[0] == 1 and n != 1:
            t = numpy.repeat(t, n, axis=0)
        if t.shape[0] != n:
            raise ValueError(f"{self._where()}: {t.shape[0]} sets of points for {n} images.")
        return t

    def forward_array(self, images, start_points, end_points):
        self.output_shape_of([None] * 3, [images.shape, start_points.shape, end_points.shape])
        last, batched = _to_last(images, self._format)
        t = self._transforms(start_points, end_points, last.shape[0], last.dtype)
        dtype = last.dtype if last.dtype.kind == "f" else numpy.dtype(numpy.float32)
        y = perspective_resample(last, t.astype(dtype), self.interpolation, self.fill_value)
        return _from_last(y, self._format, batched)

    def images_gradient(self, dy, operands, y):
        images, start_points, end_points = operands
        g, batched = _to_last(dy, self._format)
        t = self._transforms(start_points, end_points, g.shape[0], images.dtype)
        return _from_last(perspective_resample_backward(g, t.astype(g.dtype), self.interpolation), self._format,
                          batched)


SCALE_AND_TRANSLATE_METHODS = {"linear": "linear", "bilinear": "linear", "trilinear": "linear", "triangle": "linear",
                               "cubic": "cubic", "bicubic": "cubic", "tricubic": "cubic", "lanczos3": "lanczos3",
                               "lanczos5": "lanczos5"}


class ScaleAndTranslate(KerasOperation):
    """``scale_and_translate(images, output_shape, scale, translation, spatial_dims, method, antialias=True)``:
    JAX's resampling of each axis of ``spatial_dims`` through its weight matrix (``ops/resample_matrices.py``).
    ``output_shape`` is a tuple argument of the call, as in Keras (None, or -1, for an axis left as it is: the
    batch axis of a functional model's tensors); ``scale`` and ``translation`` are read on the host and take no
    gradient; integer images are rounded and kept within their values' range, as Keras's torch backend does."""

    keras_module = IMAGE
    arity = 4
    casts_inputs = False
    config_keys = ("spatial_dims", "method", "antialias")

    def __init__(self, spatial_dims, method, antialias=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        where = "scale_and_translate"
        if not isinstance(spatial_dims, (tuple, list)) or not all(
                isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in spatial_dims):
            raise ValueError(f"{where}: `spatial_dims` must be a tuple of axes, got {spatial_dims!r}.")
        self.spatial_dims = tuple(int(d) for d in spatial_dims)
        self.method = _word(method, tuple(SCALE_AND_TRANSLATE_METHODS), "method", where)
        self.antialias = bool(antialias)

    def accept_argument(self, position, value):
        if position == 1:
            return self._output_shape(value)
        return super().accept_argument(position, value)

    def _output_shape(self, value):
        if hasattr(value, "shape") and not isinstance(value, numpy.ndarray):
            value = backend.to_numpy(value)
        if not isinstance(value, (tuple, list, numpy.ndarray)) or not all(
                v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool)) for v in value):
            raise TypeError(f"scale_and_translate: `output_shape` must be a tuple of sizes, got {value!r:.80}.")
        return tuple(None if v is None or v < 0 else int(v) for v in value)

    @classmethod
    def decode_argument(cls, position, value, where):
        if position == 1:
            if isinstance(value, dict) and value.get("class_name") == "__tuple__":
                value = value.get("config", {}).get("value")
            if isinstance(value, list) and all(v is None or isinstance(v, int) for v in value):
                return tuple(value)
            raise ValueError(f"{where}: scale_and_translate's output_shape must be a list of sizes, got "
                             f"{value!r:.100}.")
        return super().decode_argument(position, value, where)

    def operands(self, arrays):
        shape = self.arguments[1]
        arguments = self.arguments
        try:
            self.arguments = arguments[:1] + [0] + arguments[2:]
            operands = super().operands(arrays)
        finally:
            self.arguments = arguments
        operands[1] = shape
        return operands

    def result_dtype(self, tensors, arguments):
        return ImageOperation.result_dtype(self, tensors, arguments)

    constant_dtype = ImageOperation.constant_dtype

    def _checked(self, shape, output_shape, scale_shape, translation_shape):
        where = self._where()
        if len(output_shape) != len(shape):
            raise ValueError(f"{where}: output_shape {output_shape} must have one size per axis of the images "
                             f"{tuple(shape)}.")
        axes = []
        for d in self.spatial_dims:
            if not -len(shape) <= d < len(shape):
                raise ValueError(f"{where}: spatial_dims {self.spatial_dims} are not axes of images of rank "
                                 f"{len(shape)}.")
            axes.append(d % len(shape))
        for what, given in (("scale", scale_shape), ("translation", translation_shape)):
            if len(given) != 1 or given[0] not in (None, len(axes)):
                raise ValueError(f"{where}: {what} must hold one number per spatial dim ({len(axes)}), got shape "
                                 f"{tuple(given)}.")
        for d, (n, m) in enumerate(zip(shape, output_shape)):
            if d in axes and m is None:
                raise ValueError(f"{where}: output_shape {output_shape} must give the size of spatial axis {d}.")
            if d not in axes and None not in (n, m) and n != m:
                raise ValueError(f"{where}: output_shape {output_shape} changes axis {d}, which is not among "
                                 f"spatial_dims {self.spatial_dims}.")
        return axes

    def output_shape_of(self, arguments, shapes):
        images = ImageOperation._shape_of(arguments, 0, shapes)
        output_shape = arguments[1]
        if output_shape is None:
            raise TypeError(f"{self._where()}: output_shape must be a tuple of sizes, not a tensor.")
        self._checked(images, output_shape, ImageOperation._shape_of(arguments, 2, shapes),
                      ImageOperation._shape_of(arguments, 3, shapes))
        return tuple(n if m is None else m for n, m in zip(images, output_shape))

    def _matrices(self, shape, output_shape, scale, translation):
        scale, translation = backend.to_numpy(scale), backend.to_numpy(translation)
        dtype = numpy.result_type(scale.dtype, translation.dtype)
        dtype = dtype if dtype.kind == "f" else numpy.dtype(numpy.float32)
        axes = self._checked(shape, output_shape, scale.shape, translation.shape)
        kernel = SCALE_AND_TRANSLATE_METHODS[self.method]
        return [(axis, resample_matrices.scale_and_translate_matrix(
            shape[axis], output_shape[axis], scale[i], translation[i], kernel, self.antialias, dtype))
            for i, axis in enumerate(axes)]

    def forward_function(self, *operands):
        return self.forward_array(*operands)

    def forward_array(self, images, output_shape, scale, translation):
        output_shape = self._output_shape(output_shape)
        xp = _xp(images)
        y = images if images.dtype.kind == "f" else images.astype(numpy.float32)
        for axis, matrix in self._matrices(images.shape, output_shape, scale, translation):
            y = resample_matrices.apply_axis(y, axis, matrix)
        if images.dtype.kind != "f":
            y = xp.clip(xp.round(y), images.min(), images.max()).astype(images.dtype)
        return y

    def backward(self, dy):
        operands, y = self.saved()
        images, output_shape, scale, translation = operands
        count = sum(a is None for a in self.arguments)
        if images.dtype.kind != "f":
            return None if count == 1 else [None] * count
        g = dy
        for axis, matrix in reversed(self._matrices(images.shape, self._output_shape(output_shape), scale,
                                                    translation)):
            g = resample_matrices.apply_axis_backward(g, axis, matrix)
        gradients = [g, None, None, None]
        tensor_gradients = [grad for grad, a in zip(gradients, self.arguments) if a is None]
        return tensor_gradients if len(tensor_gradients) > 1 else tensor_gradients[0]


class ElasticTransform(ImageOperation):
    """``elastic_transform``: each image read at its pixel positions moved by ``alpha`` times a displacement field,
    a standard normal draw times ``sigma`` blurred by a Gaussian of ``sigma`` (size ``int(6 sigma) | 1``), one
    field per axis and image, as Keras's torch backend computes it; then ``map_coordinates``'s sampling in
    ``fill_mode``. The draw is ``gpu_dl.random.normal``'s for ``seed`` (an int: the same field at every call; a
    SeedGenerator or None: a new one), so its values are gpu_dl's (Keras's torch backend draws from torch's global
    generator whatever the seed). Float images only, as in Keras; the gradient goes to the images."""

    config_keys = ("alpha", "sigma", "interpolation", "fill_mode", "fill_value", "seed", "data_format")

    def __init__(self, alpha=20.0, sigma=5.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 seed=None, data_format=None, name=None, **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = "elastic_transform"
        self.alpha = _number(alpha, "alpha", where)
        self.sigma = _number(sigma, "sigma", where)
        if self.sigma <= 0:
            raise ValueError(f"{where}: `sigma` must be positive, got {sigma!r}.")
        self.interpolation = _word(interpolation, AFFINE_INTERPOLATIONS, "interpolation", where)
        self.fill_mode = _word(fill_mode, AFFINE_FILL_MODES, "fill_mode", where)
        self.fill_value = _number(fill_value, "fill_value", where)
        self.seed = check_seed(seed, where)
        self._coordinates = None

    def get_config(self):
        if isinstance(self.seed, SeedGenerator):
            raise ValueError(f"{self._where()}: a SeedGenerator seed cannot be written in a model config; give an "
                             "int seed (the same field at every call) or None.")
        return super().get_config()

    def forward_array(self, images):
        self._check_rank(images.shape)
        if not _float(images.dtype):
            raise TypeError(f"{self._where()}: images must be of a float dtype, got {images.dtype}.")
        last, batched = _to_last(images, self._format)
        xp = _xp(last)
        n, h, w, c = last.shape
        noise = random_draws.normal(xp, draw_seed(self.seed), (2 * n, h, w, 1), 0.0, 1.0, last.dtype)
        # the Gaussian is the outer product of one normalised 1-D kernel with itself: blurred as two 1-D passes
        taps = color.gaussian_kernel(int(6 * self.sigma) | 1, self.sigma, self.sigma, last.dtype).sum(axis=1)
        field = color.correlate_same(color.correlate_same(noise * last.dtype.type(self.sigma), taps[:, None]),
                                     taps[None, :])[..., 0]
        alpha = last.dtype.type(self.alpha)
        self._coordinates = [xp.arange(n).reshape(n, 1, 1, 1),
                             (xp.arange(h, dtype=last.dtype).reshape(1, h, 1) + alpha * field[n:])[..., None],
                             (xp.arange(w, dtype=last.dtype).reshape(1, 1, w) + alpha * field[:n])[..., None],
                             xp.arange(c).reshape(1, 1, 1, c)]
        y = sample_coordinates(last, self._coordinates, AFFINE_INTERPOLATIONS.index(self.interpolation),
                               self.fill_mode, self.fill_value)
        return _from_last(y, self._format, batched)

    def images_gradient(self, dy, operands, y):
        g, batched = _to_last(dy, self._format)
        dx = sample_coordinates_backward(g, g.shape, self._coordinates, AFFINE_INTERPOLATIONS.index(
            self.interpolation), self.fill_mode)
        return _from_last(dx, self._format, batched)


# ------------------------------------------------------------------ patches
def _tuple(value, count, name, where):
    values = (value,) * count if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    if not isinstance(values, (tuple, list)) or len(values) != count:
        raise ValueError(f"{where}: `{name}` must be an integer or {count} integers, got {value!r}.")
    return tuple(_count(v, name, where, positive=True) for v in values)


class ExtractPatches(ImageOperation):
    """``extract_patches`` (2-D, ``size`` of two) and ``extract_patches_3d`` (``size`` of three): each output
    position holds its patch flattened in (row, column, channel) order (depth first for volumes), what Keras's
    convolution with an identity kernel gives; ``same`` padding puts the odd pixel at the end."""

    config_keys = ("size", "strides", "dilation_rate", "padding", "data_format")

    def __init__(self, size, strides=None, dilation_rate=1, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(data_format=standardize_data_format(data_format), name=name, **kwargs)
        where = "extract_patches"
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            size = (size, size)
        if not isinstance(size, (tuple, list)) or len(size) not in (2, 3):
            raise ValueError(f"{where}: `size` must be an integer or a tuple of 2 or 3 integers, got {size!r}.")
        self.size = tuple(_count(n, "size", where, positive=True) for n in size)
        # the config keeps strides and dilation_rate as given (an int stays one), as Keras's does
        self._strides = self.size if strides is None else _tuple(strides, len(self.size), "strides", where)
        self.strides = self.size if strides is None else (tuple(strides) if isinstance(strides, list) else strides)
        self.dilation_rate = tuple(dilation_rate) if isinstance(dilation_rate, list) else dilation_rate
        self._dilation = _tuple(dilation_rate, len(self.size), "dilation_rate", where)
        self.padding = _word(str(padding).lower(), ("valid", "same"), "padding", where)
        self.ranks = (len(self.size) + 1, len(self.size) + 2)

    def get_config(self):
        config = super().get_config()
        del config["name"]          # Keras's ExtractPatches writes its settings only
        return config

    def _geometry(self, spatial):
        """Per spatial axis: (output size, padding before, padding after)."""
        plan = []
        for n, k, s, d in zip(spatial, self.size, self._strides, self._dilation):
            span = (k - 1) * d + 1
            if self.padding == "valid":
                plan.append((None if n is None else max((n - span) // s + 1, 0), 0, 0))
                continue
            out = None if n is None else -(-n // s)
            total = span - 1 if s == 1 else (0 if n is None else max(0, (out - 1) * s + span - n))
            plan.append((out, total // 2, total - total // 2))
        return plan

    def image_shape(self, shape):
        rank = len(shape)
        batched = rank == self.ranks[1]
        full = shape if batched else [1] + shape
        k = len(self.size)
        if self._format == "channels_last":
            spatial, channels = full[1:1 + k], full[-1]
        else:
            spatial, channels = full[2:], full[1]
        outs = [o for o, _, _ in self._geometry(spatial)]
        if any(o == 0 for o in outs):
            raise ValueError(f"{self._where()}: patches of size {self.size} (dilation {self._dilation}) do not fit "
                             f"in images of shape {tuple(shape)} without padding.")
        depth = None if channels is None else int(numpy.prod(self.size)) * channels
        out = [full[0]] + (outs + [depth] if self._format == "channels_last" else [depth] + outs)
        return tuple(out if batched else out[1:])

    def _slices(self, plan):
        for tap in itertools.product(*[range(k) for k in self.size]):
            yield tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                        for t, d, s, (o, _, _) in zip(tap, self._dilation, self._strides, plan))

    def forward_array(self, images):
        self._check_rank(images.shape)
        self.image_shape(list(images.shape))
        last, batched = _to_last(images, self._format, self.ranks[1])
        xp = _xp(last)
        plan = self._geometry(last.shape[1:-1])
        padded = xp.pad(last, [(0, 0)] + [(a, b) for _, a, b in plan] + [(0, 0)])
        pieces = [padded[(slice(None),) + window] for window in self._slices(plan)]
        out = xp.stack(pieces, axis=-2)
        out = out.reshape(out.shape[:-2] + (-1,))
        return _from_last(out, self._format, batched)

    def images_gradient(self, dy, operands, y):
        images = operands[0]
        g, batched = _to_last(dy, self._format, self.ranks[1])
        last_shape = _to_last(images, self._format, self.ranks[1])[0].shape
        xp = _xp(g)
        plan = self._geometry(last_shape[1:-1])
        channels = last_shape[-1]
        g = g.reshape(g.shape[:-1] + (-1, channels))
        padded = xp.zeros((last_shape[0],) + tuple(n + a + b for n, (_, a, b) in zip(last_shape[1:-1], plan)) +
                          (channels,), dtype=g.dtype)
        for index, window in enumerate(self._slices(plan)):
            padded[(slice(None),) + window] += g[..., index, :]
        inner = (slice(None),) + tuple(slice(a, a + n) for n, (_, a, _) in zip(last_shape[1:-1], plan))
        return _from_last(padded[inner], self._format, batched)


# ------------------------------------------------------------------ filters
class GaussianBlur(ImageOperation):
    """``gaussian_blur``: each channel correlated with Keras's Gaussian (rows weighted by ``sigma[1]``, columns by
    ``sigma[0]``), zero padding keeping the size (``ops/color.py``); square odd kernels, the ones for which Keras's
    torch backend keeps the images' size."""

    config_keys = ("kernel_size", "sigma", "data_format")

    def __init__(self, kernel_size=(3, 3), sigma=(1.0, 1.0), data_format=None, name=None, **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = "gaussian_blur"
        sizes = _tuple(kernel_size, 2, "kernel_size", where)
        if sizes[0] != sizes[1] or sizes[0] % 2 == 0:
            raise ValueError(f"{where}: `kernel_size` must be two equal odd integers, got {kernel_size!r}.")
        if not isinstance(sigma, (tuple, list)) or len(sigma) != 2:
            raise ValueError(f"{where}: `sigma` must be two numbers (height, width), got {sigma!r}.")
        for s in sigma:
            if _number(s, "sigma", where) <= 0:
                raise ValueError(f"{where}: `sigma` must be positive, got {sigma!r}.")
        self.kernel_size = tuple(kernel_size) if isinstance(kernel_size, (tuple, list)) else kernel_size
        self.sigma = tuple(_number(s, "sigma", where) for s in sigma)

    def _kernel(self, dtype):
        size = _tuple(self.kernel_size, 2, "kernel_size", "gaussian_blur")[0]
        dtype = dtype if numpy.dtype(dtype).kind == "f" else numpy.float32
        # Keras's sigma is a float32 tensor, promoted with the images' dtype
        return color.gaussian_kernel(size, numpy.float32(self.sigma[0]), numpy.float32(self.sigma[1]), dtype)

    def forward_array(self, images):
        self._check_rank(images.shape)
        if not _float(images.dtype):
            raise TypeError(f"{self._where()}: images must be of a float dtype, got {images.dtype}.")
        last, batched = _to_last(images, self._format)
        return _from_last(color.correlate_same(last, self._kernel(last.dtype)), self._format, batched)

    def images_gradient(self, dy, operands, y):
        g, batched = _to_last(dy, self._format)
        return _from_last(color.correlate_same_backward(g, self._kernel(g.dtype)), self._format, batched)


class SobelEdges(ImageOperation):
    """``sobel_edges``: (N, H, W, C, 2), the vertical then the horizontal Sobel response of each channel (zero
    padding); channels_first gives (N, C, H, W, 2)."""

    ranks = (4,)

    def image_shape(self, shape):
        return tuple(shape) + (2,)

    def forward_array(self, images):
        self._check_rank(images.shape)
        if not _float(images.dtype):
            raise TypeError(f"{self._where()}: images must be of a float dtype, got {images.dtype}.")
        last, _ = _to_last(images, self._format)
        xp = _xp(last)
        edges = xp.stack([color.correlate_same(last, SOBEL_Y), color.correlate_same(last, SOBEL_X)], axis=-1)
        return xp.ascontiguousarray(edges if self._format == "channels_last" else xp.moveaxis(edges, 3, 1))

    def images_gradient(self, dy, operands, y):
        xp = _xp(dy)
        g = dy if self._format == "channels_last" else xp.moveaxis(dy, 1, 3)
        dx = color.correlate_same_backward(xp.ascontiguousarray(g[..., 0]), SOBEL_Y) + \
            color.correlate_same_backward(xp.ascontiguousarray(g[..., 1]), SOBEL_X)
        return xp.ascontiguousarray(dx if self._format == "channels_last" else xp.moveaxis(dx, -1, 1))


def _valid_blur(x, taps):
    """(M, H, W) planes correlated with the separable kernel ``outer(taps, taps)``, valid positions only."""
    k = len(taps)
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    rows = sum(x.dtype.type(t) * x[:, i:i + h, :] for i, t in enumerate(taps))
    return sum(x.dtype.type(t) * rows[:, :, j:j + w] for j, t in enumerate(taps))


def _valid_blur_backward(g, taps, height, width):
    """The adjoint of ``_valid_blur`` for planes of ``height`` x ``width``."""
    xp = _xp(g)
    h, w = g.shape[1], g.shape[2]
    rows = xp.zeros((g.shape[0], h, width), dtype=g.dtype)
    for j, t in enumerate(taps):
        rows[:, :, j:j + w] += g.dtype.type(t) * g
    out = xp.zeros((g.shape[0], height, width), dtype=g.dtype)
    for i, t in enumerate(taps):
        out[:, i:i + h, :] += g.dtype.type(t) * rows
    return out


class SSIM(ImageOperation):
    """``ssim(image1, image2)``: the mean structural similarity per image (over the valid positions of the
    Gaussian window and over the channels), as Keras's backend-agnostic ``_ssim`` computes it; the Gaussian
    window is applied as its two 1-D factors."""

    arity = 2
    config_keys = ("max_val", "filter_size", "filter_sigma", "k1", "k2", "data_format")

    def __init__(self, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03, data_format=None, name=None,
                 **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = "ssim"
        self.max_val = _number(max_val, "max_val", where)
        self.filter_size = _count(filter_size, "filter_size", where, positive=True)
        self.filter_sigma = _number(filter_sigma, "filter_sigma", where)
        self.k1 = _number(k1, "k1", where)
        self.k2 = _number(k2, "k2", where)

    def output_shape_of(self, arguments, shapes):
        first, second = self._shape_of(arguments, 0, shapes), self._shape_of(arguments, 1, shapes)
        self._check_rank(first, "image1")
        self._check_rank(second, "image2")
        if len(first) != len(second) or any(a is not None and b is not None and a != b
                                             for a, b in zip(first, second)):
            raise ValueError(f"{self._where()}: image1 and image2 must have the same shape, got {first} and "
                             f"{second}.")
        h, w = self._spatial_axes(len(first))
        if any(n is not None and n < self.filter_size for n in (first[h], first[w])):
            raise ValueError(f"{self._where()}: images of shape {first} are smaller than the filter "
                             f"({self.filter_size}).")
        return () if len(first) == 3 else (first[0],)

    def _taps(self, dtype):
        x = numpy.arange(self.filter_size, dtype=dtype) - dtype.type((self.filter_size - 1) / 2.0)
        g = numpy.exp(-(x ** 2) / dtype.type(2.0 * self.filter_sigma ** 2))
        return g / g.sum()

    def _planes(self, x, dtype):
        last, batched = _to_last(x.astype(dtype, copy=False), self._format)
        n, h, w, c = last.shape
        return _xp(last).ascontiguousarray(last.transpose(0, 3, 1, 2)).reshape(n * c, h, w), batched, c

    def _terms(self, a, b, taps):
        c1 = (self.k1 * self.max_val) ** 2
        c2 = (self.k2 * self.max_val) ** 2
        mu1, mu2 = _valid_blur(a, taps), _valid_blur(b, taps)
        e11, e22, e12 = _valid_blur(a * a, taps), _valid_blur(b * b, taps), _valid_blur(a * b, taps)
        a1 = 2.0 * mu1 * mu2 + c1
        a2 = 2.0 * (e12 - mu1 * mu2) + c2
        b1 = mu1 * mu1 + mu2 * mu2 + c1
        b2 = (e11 - mu1 * mu1) + (e22 - mu2 * mu2) + c2
        return mu1, mu2, a1, a2, b1, b2

    def _compute_dtype(self, dtype):
        return numpy.dtype(dtype) if numpy.dtype(dtype) == numpy.float64 else numpy.dtype(numpy.float32)

    def forward_array(self, image1, image2):
        self.output_shape_of([None, None], [image1.shape, image2.shape])
        dtype = self._compute_dtype(image1.dtype)
        a, batched, c = self._planes(image1, dtype)
        b, _, _ = self._planes(image2, dtype)
        _, _, a1, a2, b1, b2 = self._terms(a, b, self._taps(dtype))
        per_plane = ((a1 * a2) / (b1 * b2)).mean(axis=(1, 2))
        result = per_plane.reshape(-1, c).mean(axis=-1)
        result = result if batched else result.reshape(())
        return result.astype(image1.dtype)

    def backward(self, dy):
        operands, y = self.saved()
        image1, image2 = operands
        floats = [_float(o.dtype) for o in operands]
        if not any(floats):
            return None if sum(a is None for a in self.arguments) == 1 else [None, None]
        dtype = self._compute_dtype(image1.dtype)
        a, batched, c = self._planes(image1, dtype)
        b, _, _ = self._planes(image2, dtype)
        taps = self._taps(dtype)
        mu1, mu2, a1, a2, b1, b2 = self._terms(a, b, taps)
        xp = _xp(a)
        h, w = a1.shape[1], a1.shape[2]
        dy = xp.asarray(dy, dtype=dtype).reshape(-1)
        g = xp.repeat(dy, c) / (c * h * w)              # one gradient per plane, spread over its positions
        g = g.reshape(-1, 1, 1)
        den = b1 * b2
        s = a1 * a2 / den
        d_a1, d_a2 = g * a2 / den, g * a1 / den
        d_b1, d_b2 = -g * s / b1, -g * s / b2
        d_mu1 = 2.0 * mu2 * (d_a1 - d_a2) + 2.0 * mu1 * (d_b1 - d_b2)
        d_mu2 = 2.0 * mu1 * (d_a1 - d_a2) + 2.0 * mu2 * (d_b1 - d_b2)
        height, width = a.shape[1], a.shape[2]

        def back(t):
            return _valid_blur_backward(t, taps, height, width)
        shared_12, shared_sq = back(2.0 * d_a2), back(d_b2)
        da = back(d_mu1) + 2.0 * a * shared_sq + b * shared_12
        db = back(d_mu2) + 2.0 * b * shared_sq + a * shared_12

        def image(planes, like):
            n = planes.shape[0] // c
            last = planes.reshape(n, c, height, width).transpose(0, 2, 3, 1)
            return _from_last(last, self._format, batched).astype(like.dtype, copy=False)
        gradients = [image(da, image1) if floats[0] else None, image(db, image2) if floats[1] else None]
        tensor_gradients = [g for g, arg in zip(gradients, self.arguments) if arg is None]
        return tensor_gradients if len(tensor_gradients) > 1 else tensor_gradients[0]


OPERATIONS = {cls.__name__: cls for cls in (
    RGBToGrayscale, RGBToHSV, HSVToRGB, Resize, CropImages, PadImages, MapCoordinates, AffineTransform,
    PerspectiveTransform, ExtractPatches, GaussianBlur, SobelEdges, SSIM, ScaleAndTranslate, ElasticTransform)}
