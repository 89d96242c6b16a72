"""The colour operations of ``keras.ops.image``: ``rgb_to_grayscale``, ``rgb_to_hsv`` and ``hsv_to_rgb``
(maths in ``ops/color.py``).
"""
from __future__ import annotations

import numpy

from ...ops import color
from .base import _float, _xp
from .image_base import ImageOperation, _from_last, _to_last


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


OPERATIONS = {cls.__name__: cls for cls in (RGBToGrayscale, RGBToHSV, HSVToRGB)}
