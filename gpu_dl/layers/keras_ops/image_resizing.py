"""``resize`` (bilinear and nearest as PyTorch computes them, ``ops/resize.py``; bicubic and antialiased,
``ops/resample_matrices.py``), ``crop_images`` and ``pad_images`` of ``keras.ops.image``.
"""
from __future__ import annotations

import numpy

from ...ops import resample_matrices, resize as resize_maths
from .base import _xp
from .image_base import ImageOperation, RESIZE_INTERPOLATIONS, _count, _from_last, _number, _to_last, _word


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


OPERATIONS = {cls.__name__: cls for cls in (Resize, CropImages, PadImages)}
