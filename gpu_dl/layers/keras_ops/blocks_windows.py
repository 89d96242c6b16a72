"""Keras's blocks and windows: ``depth_to_space``, ``space_to_depth``, ``extract_sequences``,
``unfold`` and ``fold``, with exact backwards.
"""
from __future__ import annotations

from ... import backend
from .base import MATH, NN, _xp
from .array_base import ArrayOperation, _int, _ints, _pair


def _times(size, factor):
    """A known size scaled (by an integer or the inverse of one), None kept."""
    return None if size is None else int(round(size * factor))


class DepthToSpace(ArrayOperation):
    """``depth_to_space(x, block_size, data_format="channels_last")`` of ``keras.src.ops.nn``: each pixel's
    channels spread over a block of ``block_size`` x ``block_size`` pixels, in Keras's channel order
    (``SpaceToDepth``: the inverse)."""

    keras_module = NN
    config_keys = ("block_size", "data_format")
    to_space = True

    def __init__(self, block_size, data_format="channels_last", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.block_size = _int(block_size, "block_size", self._where(), low=2)
        self.data_format = backend.standardize_data_format(data_format, f"{self._where()}: data_format")

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) != 4:
            raise ValueError(f"{self._where()} takes a 4-D tensor, got shape {shape}.")
        last = self.data_format == "channels_last"
        b, h, w, c = shape if last else (shape[0], shape[2], shape[3], shape[1])
        s = self.block_size
        if self.to_space:
            if c is not None and c % (s * s):
                raise ValueError(f"{self._where()}: the channels ({c}) must be a multiple of block_size**2 ({s * s}).")
            h, w, c = _times(h, s), _times(w, s), _times(c, 1 / (s * s))
        else:
            for what, n in (("height", h), ("width", w)):
                if n is not None and n % s:
                    raise ValueError(f"{self._where()}: the {what} ({n}) must be a multiple of block_size ({s}).")
            h, w, c = _times(h, 1 / s), _times(w, 1 / s), _times(c, s * s)
        return (b, h, w, c) if last else (b, c, h, w)

    def _rearranged(self, x, to_space):
        s = self.block_size
        if self.data_format == "channels_last":
            n, h, w, c = x.shape
            if to_space:
                return x.reshape(n, h, w, s, s, c // s // s).transpose(0, 1, 3, 2, 4, 5).reshape(
                    n, h * s, w * s, c // s // s)
            return x.reshape(n, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(
                n, h // s, w // s, c * s * s)
        n, c, h, w = x.shape
        if to_space:
            return x.reshape(n, c // s // s, s, s, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(
                n, c // s // s, h * s, w * s)
        return x.reshape(n, c, h // s, s, w // s, s).transpose(0, 1, 3, 5, 2, 4).reshape(n, c * s * s, h // s, w // s)

    def forward_array(self, x):
        self.output_shape_of(None, [x.shape])
        return self._rearranged(x, self.to_space)

    def backward_function(self, dy, operands, y):
        return [self._rearranged(dy, not self.to_space)]


class SpaceToDepth(DepthToSpace):
    to_space = False


class ExtractSequences(ArrayOperation):
    """``extract_sequences(x, sequence_length, sequence_stride)`` of ``keras.src.ops.math``: the windows of the last
    axis, as two new last axes (windows, length)."""

    keras_module = MATH
    config_keys = ("sequence_length", "sequence_stride")

    def __init__(self, sequence_length, sequence_stride, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.sequence_length = _int(sequence_length, "sequence_length", self._where(), low=1)
        self.sequence_stride = _int(sequence_stride, "sequence_stride", self._where(), low=1)

    def _count(self, size):
        if size is None:
            return None
        if size < self.sequence_length:
            raise ValueError(f"{self._where()}: the last axis ({size}) is shorter than sequence_length "
                             f"({self.sequence_length}).")
        return 1 + (size - self.sequence_length) // self.sequence_stride

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if not shape:
            raise ValueError(f"{self._where()} takes a tensor of one axis or more, got a scalar.")
        return shape[:-1] + (self._count(shape[-1]), self.sequence_length)

    def _window(self, j, count):
        return slice(j, j + self.sequence_stride * (count - 1) + 1, self.sequence_stride)

    def forward_array(self, x):
        count = self._count(x.shape[-1])
        # one slice per position within a window: sequence_length strided copies, no per-element work
        return _xp(x).stack([x[..., self._window(j, count)] for j in range(self.sequence_length)], axis=-1)

    def backward_function(self, dy, operands, y):
        x, = operands
        g = _xp(dy).zeros(x.shape, dtype=dy.dtype)
        count = dy.shape[-2]
        for j in range(self.sequence_length):
            g[..., self._window(j, count)] += dy[..., j]
        return [g]


class Unfold(ArrayOperation):
    """``unfold(x, kernel_size, dilation=1, padding=0, stride=1)`` of ``keras.src.ops.nn`` (im2col): of a
    channels-first batch of images (N, C, H, W), the blocks as (N, C * kh * kw, blocks), zero padding included.
    ``Fold`` adds blocks back into images (its adjoint)."""

    keras_module = NN
    config_keys = ("kernel_size", "dilation", "padding", "stride")

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        where = self._where()
        self.kernel_size = _ints(kernel_size, "kernel_size", where, count=2)
        self.dilation = _ints(dilation, "dilation", where, count=2)
        self.padding = _ints(padding, "padding", where, count=2)
        self.stride = _ints(stride, "stride", where, count=2)
        for key, low in (("kernel_size", 1), ("dilation", 1), ("padding", 0), ("stride", 1)):
            if min(_pair(getattr(self, key))) < low:
                raise ValueError(f"{where}: `{key}` must be at least {low}, got {getattr(self, key)!r}.")

    def _blocks(self, height, width):
        """Per spatial axis: (kernel, dilation, padding, stride, blocks) for an image of (height, width)."""
        out = []
        for size, k, d, p, s in zip((height, width), *(map(_pair, (self.kernel_size, self.dilation, self.padding,
                                                                      self.stride)))):
            count = None if size is None else (size + 2 * p - d * (k - 1) - 1) // s + 1
            if count is not None and count < 1:
                raise ValueError(f"{self._where()}: a kernel of size {k} (dilation {d}) does not fit an image side of "
                                 f"{size} padded by {p}.")
            out.append((k, d, p, s, count))
        return out

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) != 4:
            raise ValueError(f"{self._where()} takes a 4-D tensor (N, C, H, W), got shape {shape}.")
        (kh, _, _, _, oh), (kw, _, _, _, ow) = self._blocks(shape[2], shape[3])
        return (shape[0], None if shape[1] is None else shape[1] * kh * kw, None if None in (oh, ow) else oh * ow)

    @staticmethod
    def _taps(blocks):
        """Each kernel position's (row slice, column slice) in the padded image."""
        (kh, dh, _, sh, oh), (kw, dw, _, sw, ow) = blocks
        return [(slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))
                for i in range(kh) for j in range(kw)]

    def unfold(self, x):
        n, c, h, w = x.shape
        blocks = self._blocks(h, w)
        (ph, pw) = blocks[0][2], blocks[1][2]
        padded = _xp(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        # one strided slice per kernel position (kh * kw of them), no per-element work
        taps = _xp(x).stack([padded[:, :, rows, cols] for rows, cols in self._taps(blocks)], axis=2)
        return taps.reshape(n, -1, blocks[0][4] * blocks[1][4])

    def fold(self, cols, height, width):
        n = cols.shape[0]
        blocks = self._blocks(height, width)
        (ph, pw) = blocks[0][2], blocks[1][2]
        taps = self._taps(blocks)
        cols = cols.reshape(n, -1, len(taps), blocks[0][4], blocks[1][4])
        image = _xp(cols).zeros((n, cols.shape[1], height + 2 * ph, width + 2 * pw), dtype=cols.dtype)
        for t, (rows, columns) in enumerate(taps):
            image[:, :, rows, columns] += cols[:, :, t]
        return image[:, :, ph:ph + height, pw:pw + width]

    def forward_array(self, x):
        self.output_shape_of(None, [x.shape])
        return self.unfold(x)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [self.fold(dy, x.shape[2], x.shape[3])]


class Fold(Unfold):
    """``fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1)`` of ``keras.src.ops.nn`` (col2im):
    blocks (N, C * kh * kw, blocks) added into images (N, C, H, W) of ``output_size``, overlaps summed."""

    config_keys = ("output_size", "kernel_size", "dilation", "padding", "stride")

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1, name=None, **kwargs):
        super().__init__(kernel_size, dilation, padding, stride, name=name, **kwargs)
        self.output_size = _ints(output_size, "output_size", self._where(), count=2)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) != 3:
            raise ValueError(f"{self._where()} takes a 3-D tensor (N, C * kh * kw, blocks), got shape {shape}.")
        (h, w) = _pair(self.output_size)
        (kh, _, _, _, oh), (kw, _, _, _, ow) = self._blocks(h, w)
        if shape[1] is not None and shape[1] % (kh * kw):
            raise ValueError(f"{self._where()}: the second axis ({shape[1]}) must be a multiple of the kernel's size "
                             f"({kh * kw}).")
        if shape[2] is not None and shape[2] != oh * ow:
            raise ValueError(f"{self._where()}: images of {self.output_size} hold {oh * ow} blocks, the tensor "
                             f"{shape[2]}.")
        return (shape[0], None if shape[1] is None else shape[1] // (kh * kw), h, w)

    def forward_array(self, x):
        self.output_shape_of(None, [x.shape])
        return self.fold(x, *_pair(self.output_size))

    def backward_function(self, dy, operands, y):
        return [self.unfold(dy)]


OPERATIONS = {cls.__name__: cls for cls in (DepthToSpace, SpaceToDepth, ExtractSequences, Unfold, Fold)}
