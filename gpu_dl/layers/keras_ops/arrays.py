"""Keras's array operations beyond the basic shapes: moving and swapping axes, rotating and flipping, diagonals,
joining (``append``, ``hstack``, ``vstack``, ``dstack``) and splitting (``array_split``, ``hsplit``, ``vsplit``,
``dsplit``, ``unstack``), blocks and windows (``depth_to_space``, ``space_to_depth``, ``extract_sequences``,
``unfold``, ``fold``, ``rearrange``), products (``kron``, ``outer``, ``inner``, ``vdot``, ``cross``, ``cdist``,
``vander``), grids and sequences (``meshgrid``, ``geomspace``, ``logspace``), and the dtype operations ``array``,
``view``, ``empty_like``, ``unravel_index`` and ``multi_hot`` (all but ``array`` send no gradient back).

The operations that only move elements (``Selection``) take their exact backward from the forward itself: the
forward run on the elements' positions tells where each output element came from, and the gradient is added back
there (``scatter_back``). The others have their own.
"""
from __future__ import annotations

import math
import re

import numpy

from ... import backend
from ...ops import numpy_functions as fn
from ...ops.arithmetic import reduce_to_shape
from ..operations import broadcast_shapes
from ..symbolic import KerasTensor, Node, is_symbolic
from .base import CORE, MATH, NN, KerasOperation, WithDtype, WithoutGradient, _axes, _float, _xp, standardize_dtype
from .shapes import Concatenate


def scatter_back(select, shape, dy):
    """The gradient, for an input of ``shape``, of ``y = select(x)`` where ``select`` only picks (and repeats) the
    input's elements and fills zeros: ``select`` of the input's positions (counted from 1, so 0 marks a filled zero)
    says where each element of ``dy`` goes."""
    xp = _xp(dy)
    size = int(numpy.prod(shape))
    where = select(xp.arange(1, size + 1, dtype=numpy.int64).reshape(shape))
    g = xp.zeros(size + 1, dtype=dy.dtype)
    xp.add.at(g, where.ravel(), dy.ravel())
    return g[1:].reshape(shape)


def _int(value, what, where, low=None):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise TypeError(f"{where}: `{what}` must be an integer, got {value!r:.80} of type {type(value).__name__}.")
    if low is not None and value < low:
        raise ValueError(f"{where}: `{what}` must be at least {low}, got {value}.")
    return int(value)


def _ints(value, what, where, count=None):
    """An int or a sequence of ints, kept as Keras keeps it (an int stays an int, a sequence becomes a tuple)."""
    if isinstance(value, (int, numpy.integer)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, (list, tuple)) or (count is not None and len(value) != count):
        raise TypeError(f"{where}: `{what}` must be an integer or {count or 'a sequence of'} integers, got "
                        f"{value!r:.80}.")
    return tuple(_int(v, what, where) for v in value)


def _each_axis(axes, ndim, where):
    """Each of ``axes`` as a non-negative axis, in the order given (``_axes`` sorts them)."""
    return [_axes(a, ndim, where)[0] for a in axes]


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


class ArrayOperation(KerasOperation):
    """Keras's config: the name and the settings ``config_keys`` names, tuples written as lists."""

    def get_config(self):
        config = {"name": self.name}
        for key in self.config_keys:
            config[key] = _jsonable(getattr(self, key))
        return config


class Selection(ArrayOperation):
    """One tensor in; each output element is one of the input's, or a zero: ``select`` says which, for arrays of
    either module and of any dtype (the positions' included)."""

    def select(self, x):
        raise NotImplementedError

    def forward_array(self, x):
        return self.select(x)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [scatter_back(self.select, x.shape, dy)]


def _several(op, tensors, shapes, dtypes):
    """The symbolic call of an operation of several outputs on ``tensors`` (all symbolic): its output tensors."""
    if not tensors or not all(is_symbolic(t) for t in tensors):
        raise TypeError(f"{op._where()} takes symbolic tensors, got {tensors!r:.120}.")
    if op.arguments is not None:
        raise ValueError(f"{op._where()} was called already; a later call needs an operation of its own.")
    op.arguments = [None] * len(tensors)
    op.dtype = dtypes[0] if dtypes else op.result_dtype(tensors, op.arguments)
    op.built = True
    outputs = [KerasTensor(shape, dtype=dtype) for shape, dtype in zip(shapes, dtypes)]
    Node(op, args=(list(tensors) if len(tensors) > 1 else tensors[0],), outputs=outputs)
    return outputs


# ------------------------------------------------------------------ axes
def _moved_order(ndim, source, destination, where):
    source = _each_axis(source, ndim, where)
    destination = _each_axis(destination, ndim, where)
    if len(source) != len(destination) or len(set(source)) != len(source) or \
            len(set(destination)) != len(destination):
        raise ValueError(f"{where}: `source` and `destination` must name as many distinct axes, got {source} and "
                         f"{destination}.")
    order = [a for a in range(ndim) if a not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return order


class _Permutation(ArrayOperation):
    """The input's axes in the order ``_order(ndim)`` gives; the gradient goes back through the inverse order."""

    def _order(self, ndim):
        raise NotImplementedError

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        return tuple(shape[a] for a in self._order(len(shape)))

    def forward_array(self, x):
        return x.transpose(self._order(x.ndim))

    def backward_function(self, dy, operands, y):
        return [dy.transpose(numpy.argsort(self._order(dy.ndim)).tolist())]


class Moveaxis(_Permutation):
    """``moveaxis(x, source, destination)``: axes moved to new places, the others kept in order."""

    config_keys = ("source", "destination")

    def __init__(self, source, destination, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.source = _ints(source, "source", self._where())
        self.destination = _ints(destination, "destination", self._where())
        if len(self._listed(self.source)) != len(self._listed(self.destination)):
            raise ValueError(f"{self._where()}: `source` and `destination` must have as many axes, got "
                             f"source={source!r} and destination={destination!r}.")

    @staticmethod
    def _listed(value):
        return [value] if isinstance(value, int) else list(value)

    def get_config(self):
        # Keras keeps an int as given and a sequence as a list
        return {"name": self.name, "source": _jsonable(self.source), "destination": _jsonable(self.destination)}

    def _order(self, ndim):
        return _moved_order(ndim, self._listed(self.source), self._listed(self.destination), self._where())


class Swapaxes(_Permutation):
    config_keys = ("axis1", "axis2")

    def __init__(self, axis1, axis2, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis1 = _int(axis1, "axis1", self._where())
        self.axis2 = _int(axis2, "axis2", self._where())

    def _order(self, ndim):
        a, b = _axes(self.axis1, ndim, self._where()) + _axes(self.axis2, ndim, self._where())
        order = list(range(ndim))
        order[a], order[b] = b, a
        return order


class Ravel(ArrayOperation):
    """``ravel(x)``: the flattened tensor (the batch axis included)."""

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        return (None if None in shape else int(numpy.prod(shape)),)

    def forward_array(self, x):
        return x.reshape(-1)

    def backward_function(self, dy, operands, y):
        return [dy.reshape(operands[0].shape)]


class Rot90(ArrayOperation):
    """``rot90(array, k=1, axes=(0, 1))``: k quarter turns in the plane of ``axes``, from the first towards the
    second. (Keras's symbolic shape swaps the two axes for every k; gpu_dl's, for odd k only, as the values do.)"""

    config_keys = ("k", "axes")

    def __init__(self, k=1, axes=(0, 1), name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = _int(k, "k", self._where())
        self.axes = _ints(axes, "axes", self._where(), count=2)
        if isinstance(self.axes, int) or self.axes[0] == self.axes[1]:
            raise ValueError(f"{self._where()}: `axes` must be two different axes, got {axes!r}.")

    def _plane(self, ndim):
        if ndim < 2:
            raise ValueError(f"{self._where()} takes a tensor of two axes or more, got {ndim}.")
        plane = _each_axis(self.axes, ndim, self._where())
        if plane[0] == plane[1]:
            raise ValueError(f"{self._where()}: `axes` {self.axes} name one axis twice for a tensor of {ndim} axes.")
        return plane

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        a, b = self._plane(len(shape))
        if self.k % 2:
            shape[a], shape[b] = shape[b], shape[a]
        return tuple(shape)

    def forward_array(self, x):
        return _xp(x).rot90(x, self.k, axes=self._plane(x.ndim))

    def backward_function(self, dy, operands, y):
        return [_xp(dy).rot90(dy, -self.k, axes=self._plane(dy.ndim))]


class Fliplr(ArrayOperation):
    """``fliplr(x)``: axis 1 reversed (``Flipud``: axis 0)."""

    axis = 1

    def output_shape_of(self, arguments, shapes):
        if len(shapes[0]) < self.axis + 1:
            raise ValueError(f"{self._where()} takes a tensor of {self.axis + 1} axes or more, got shape "
                             f"{tuple(shapes[0])}.")
        return tuple(shapes[0])

    def forward_array(self, x):
        self.output_shape_of(None, [x.shape])
        return _xp(x).flip(x, axis=self.axis)

    def backward_function(self, dy, operands, y):
        return [_xp(dy).flip(dy, axis=self.axis)]


class Flipud(Fliplr):
    axis = 0


# ------------------------------------------------------------------ diagonals
def _diagonal_length(rows, cols, offset):
    if rows is None or cols is None:
        return None
    return max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))


class Diag(Selection):
    """``diag(x, k=0)``: of a vector, the square matrix with it on the k-th diagonal; of a matrix, its k-th
    diagonal."""

    config_keys = ("k",)

    def __init__(self, k=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = _int(k, "k", self._where())

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) == 1:
            size = None if shape[0] is None else shape[0] + abs(self.k)
            return (size, size)
        if len(shape) == 2:
            return (_diagonal_length(shape[0], shape[1], self.k),)
        raise ValueError(f"{self._where()} takes a tensor of 1 or 2 axes, got shape {shape}.")

    def select(self, x):
        self.output_shape_of(None, [x.shape])
        return _xp(x).diag(x, self.k)


class Diagflat(Selection):
    """``diagflat(x, k=0)``: the square matrix with the flattened tensor on its k-th diagonal."""

    config_keys = ("k",)

    def __init__(self, k=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = _int(k, "k", self._where())

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        size = None if None in shape else int(numpy.prod(shape)) + abs(self.k)
        return (size, size)

    def select(self, x):
        return _xp(x).diag(x.reshape(-1), self.k)


class Diagonal(Selection):
    """``diagonal(x, offset=0, axis1=0, axis2=1)``: the diagonal of the plane of ``axis1`` and ``axis2``, as the
    last axis."""

    config_keys = ("offset", "axis1", "axis2")

    def __init__(self, offset=0, axis1=0, axis2=1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.offset = _int(offset, "offset", self._where())
        self.axis1 = _int(axis1, "axis1", self._where())
        self.axis2 = _int(axis2, "axis2", self._where())

    def _plane(self, ndim):
        if ndim < 2:
            raise ValueError(f"{self._where()} takes a tensor of two axes or more, got {ndim}.")
        plane = _each_axis([self.axis1, self.axis2], ndim, self._where())
        if plane[0] == plane[1]:
            raise ValueError(f"{self._where()}: axis1={self.axis1} and axis2={self.axis2} are one axis.")
        return plane

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        a, b = self._plane(len(shape))
        return tuple(n for i, n in enumerate(shape) if i not in (a, b)) + (
            _diagonal_length(shape[a], shape[b], self.offset),)

    def select(self, x):
        a, b = self._plane(x.ndim)
        return _xp(x).diagonal(x, self.offset, a, b)


# ------------------------------------------------------------------ blocks and windows
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


# ------------------------------------------------------------------ rearrange (einops)
_AXIS = re.compile(r"\w+|\([^()]*\)")


def _pattern_side(side, where):
    axes = _AXIS.findall(side)
    if "".join(axes).replace(" ", "") != re.sub(r"\s", "", side):
        raise ValueError(f"{where}: cannot read {side!r} as axis names and (grouped names).")
    groups = [a[1:-1].split() if a.startswith("(") else [a] for a in axes]
    names = [n for g in groups for n in g]
    if len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in names):
        raise ValueError(f"{where}: the axis names of {side!r} must be distinct identifiers.")
    return groups


def parse_rearrangement(pattern, where):
    """The input's and the output's axis groups of an einops pattern ``"b (h w) c -> b h w c"``."""
    if not isinstance(pattern, str) or pattern.count("->") != 1:
        raise ValueError(f"{where}: the pattern must be a string 'input axes -> output axes', got {pattern!r:.80}.")
    left, right = pattern.split("->")
    inputs, outputs = _pattern_side(left, where), _pattern_side(right, where)
    if sorted(n for g in inputs for n in g) != sorted(n for g in outputs for n in g):
        raise ValueError(f"{where}: the pattern {pattern!r} must name the same axes on both sides.")
    return inputs, outputs


def rearrangement(pattern, shape, lengths, where):
    """(the input split into single axes, the transposition, the output shape) for a tensor of ``shape``; None for
    the sizes unknown."""
    inputs, outputs = parse_rearrangement(pattern, where)
    if len(inputs) != len(shape):
        raise ValueError(f"{where}: the pattern's input names {len(inputs)} axes, the tensor has {len(shape)} "
                         f"(shape {tuple(shape)}).")
    sizes = {}
    for group, n in zip(inputs, shape):
        if len(group) == 1:
            known = lengths.get(group[0])
            if known is not None and n is not None and known != n:
                raise ValueError(f"{where}: axis {group[0]!r} is {n} long, not {known}.")
            sizes[group[0]] = n if n is not None else known
            continue
        unknown = [a for a in group if a not in lengths]
        if len(unknown) > 1:
            raise ValueError(f"{where}: the group ({' '.join(group)}) leaves {unknown} unknown; give their lengths.")
        product = int(numpy.prod([lengths[a] for a in group if a in lengths]))
        for a in group:
            if a in lengths:
                sizes[a] = int(lengths[a])
        if unknown:
            if n is not None and (product == 0 or n % product):
                raise ValueError(f"{where}: an axis of {n} cannot be split as ({' '.join(group)}) with "
                                 f"{lengths}.")
            sizes[unknown[0]] = None if n is None else n // product
        elif n is not None and n != product:
            raise ValueError(f"{where}: an axis of {n} is not ({' '.join(group)}) = {product}.")
    flat_in = [a for g in inputs for a in g]
    order = [flat_in.index(a) for g in outputs for a in g]
    out = tuple(None if any(sizes[a] is None for a in g) else int(numpy.prod([sizes[a] for a in g]))
                for g in outputs)
    return [sizes[a] for a in flat_in], order, out


class Rearrange(ArrayOperation):
    """``rearrange(tensor, pattern, **axes_lengths)`` of ``keras.src.ops.einops``: axes regrouped, reordered and
    merged as an einops pattern says (``"b h w c -> b (h w) c"``). As Keras records it, the pattern is the call's
    second argument and the axes' lengths its keyword arguments (any names, integer values); the config holds the
    name only."""

    keras_module = "keras.src.ops.einops"
    arity = 2
    casts_inputs = False

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.lengths = {}

    def apply(self, x, pattern, **axes_lengths):
        for key, value in axes_lengths.items():
            _int(value, key, self._where(), low=1)
        self.lengths = {k: int(v) for k, v in axes_lengths.items()}
        return super().apply(x, pattern)

    def accept_argument(self, position, value):
        if position == 1 and isinstance(value, str):
            parse_rearrangement(value, self._where())
            return value
        raise TypeError(f"{self._where()}: the tensor comes first, then the pattern (a string), got {value!r:.80} in "
                        f"position {position}.")

    @classmethod
    def decode_argument(cls, position, value, where):
        if position == 1 and isinstance(value, str):
            parse_rearrangement(value, where)
            return value
        raise ValueError(f"{where}: Rearrange's second argument must be its pattern (a string), got {value!r:.100}.")

    def keras_keywords(self):
        return dict(self.lengths)

    @classmethod
    def takes_keyword(cls, key):
        return isinstance(key, str) and key.isidentifier()

    @classmethod
    def keywords_taken(cls):
        return "the lengths of axes of the pattern (axis name=integer)"

    @classmethod
    def decode_keyword(cls, key, value, where):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: the length of axis {key!r} must be a positive integer, got {value!r:.80}.")
        return value

    def same_arguments(self, arguments):
        return self.arguments == arguments

    def result_dtype(self, tensors, arguments):
        return tensors[0].dtype

    def output_shape_of(self, arguments, shapes):
        return rearrangement(arguments[1], tuple(shapes[0]), self.lengths, self._where())[2]

    def operands(self, arrays):
        return [arrays[0]]

    def forward_function(self, x):
        return rearranged(x, self.arguments[1], self.lengths, self._where())

    def backward(self, dy):
        operands, y = self.saved()
        x, = operands
        if not _float(x.dtype):
            return None
        split, order, _ = rearrangement(self.arguments[1], x.shape, self.lengths, self._where())
        return dy.reshape([split[a] for a in order]).transpose(numpy.argsort(order).tolist()).reshape(x.shape)


def rearranged(x, pattern, lengths, where):
    """``x`` rearranged as ``pattern`` says: split, transposed, merged."""
    split, order, out = rearrangement(pattern, x.shape, lengths, where)
    return x.reshape(split).transpose(order).reshape(out)


# ------------------------------------------------------------------ joining
def _at_least(shape, ndim):
    """NumPy's atleast_2d / atleast_3d of a shape (2: (n,) -> (1, n); 3: (n,) -> (1, n, 1), (a, b) -> (a, b, 1))."""
    shape = tuple(shape)
    if len(shape) >= ndim:
        return shape
    if ndim == 2:
        return (1,) * (2 - len(shape)) + shape
    return {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}[len(shape)]


class Hstack(Concatenate):
    """``hstack(xs)``: joined along axis 1 (axis 0 for vectors); one argument, a list of tensors (``Vstack``: axis 0
    of tensors of two axes or more; ``Dstack``: axis 2 of tensors of three or more)."""

    config_keys = ()
    least = 1

    def __init__(self, name=None, **kwargs):
        super().__init__(axis=0, name=name, **kwargs)

    def get_config(self):
        return {"name": self.name}

    def _layout(self, shapes):
        """The shapes the tensors take before joining, and the axis joined."""
        shapes = [_at_least(s, self.least) for s in shapes]
        axis = 0 if self.least == 1 and len(shapes[0]) == 1 else {1: 1, 2: 0, 3: 2}[self.least]
        return shapes, axis

    def output_shape_of(self, arguments, shapes):
        shapes, self.axis = self._layout([tuple(s) for s in shapes])
        return Concatenate.output_shape_of(self, arguments, shapes)

    def forward_function(self, *xs):
        shapes, axis = self._layout([x.shape for x in xs])
        return fn.concatenate_forward([x.reshape(s) for x, s in zip(xs, shapes)], axis)

    def backward_function(self, dy, operands, y):
        shapes, axis = self._layout([x.shape for x in operands])
        parts = fn.concatenate_backward(dy, [x.reshape(s) for x, s in zip(operands, shapes)], y, axis)
        return [g.reshape(x.shape) for g, x in zip(parts, operands)]


class Vstack(Hstack):
    least = 2


class Dstack(Hstack):
    least = 3


class Append(ArrayOperation):
    """``append(x1, x2, axis=None)``: x2 after x1 along ``axis``, or both flattened (axis None)."""

    arity = 2
    config_keys = ("axis",)

    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = None if axis is None else _int(axis, "axis", self._where())

    def _shapes(self, arguments, shapes):
        given = iter(shapes)
        return [tuple(next(given)) if a is None else a.shape for a in arguments]

    def output_shape_of(self, arguments, shapes):
        a, b = self._shapes(arguments, shapes)
        if self.axis is None:
            return (None if None in a + b else int(numpy.prod(a)) + int(numpy.prod(b)),)
        if len(a) != len(b):
            raise ValueError(f"{self._where()}: x1 and x2 must have the same number of axes, got shapes {a} and {b}.")
        return Concatenate.output_shape_of(self, [None, None], [a, b])      # its rule, on this axis

    def _flat(self, x):
        return x.reshape(-1) if self.axis is None else x

    def forward_function(self, x1, x2):
        return _xp(x1).concatenate([self._flat(x1), self._flat(x2)], axis=0 if self.axis is None else self.axis)

    def backward_function(self, dy, operands, y):
        a, b = operands
        parts = fn.concatenate_backward(dy, [self._flat(a), self._flat(b)], y, 0 if self.axis is None else self.axis)
        return [parts[0].reshape(a.shape), parts[1].reshape(b.shape)]


# ------------------------------------------------------------------ splitting (several outputs)
class ArraySplit(ArrayOperation):
    """``array_split(x, indices_or_sections, axis=0)``: ``indices_or_sections`` parts as equal as can be (the first
    ones one longer); a list of tensors."""

    config_keys = ("indices_or_sections", "axis")

    def __init__(self, indices_or_sections, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.indices_or_sections = _int(indices_or_sections, "indices_or_sections", self._where(), low=1)
        self.axis = _int(axis, "axis", self._where())

    def _axis(self, ndim):
        return _axes(self.axis, ndim, self._where())[0]

    def _bounds(self, size):
        count = self.indices_or_sections
        sizes = [size // count + (1 if i < size % count else 0) for i in range(count)]
        ends = numpy.cumsum([0] + sizes).tolist()
        return list(zip(ends[:-1], ends[1:]))

    def apply(self, x):
        shapes = self.output_shape_of([None], [x.shape]) if is_symbolic(x) else None
        return _several(self, [x], shapes, [x.dtype] * len(shapes))

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        axis = self._axis(len(shape))
        if shape[axis] is None:
            return [shape] * self.indices_or_sections
        return [shape[:axis] + (b - a,) + shape[axis + 1:] for a, b in self._bounds(shape[axis])]

    def forward_array(self, x):
        axis = self._axis(x.ndim)
        return [x[(slice(None),) * axis + (slice(a, b),)] for a, b in self._bounds(x.shape[axis])]

    def forward_function(self, x):
        return self.forward_array(x)

    def backward(self, dy):
        operands, y = self.saved()
        x, = operands
        if not _float(x.dtype):
            return None
        dys = dy if isinstance(dy, (list, tuple)) else [dy]
        return _xp(dys[0]).concatenate(list(dys), axis=self._axis(x.ndim))


class Hsplit(ArraySplit):
    """``hsplit(x, indices_or_sections)``: ``split`` along axis 1 (axis 0 of a vector); ``Vsplit``: axis 0 of a
    tensor of two axes or more, ``Dsplit``: axis 2 of three or more."""

    config_keys = ("indices_or_sections",)
    least = 1

    def __init__(self, indices_or_sections, name=None, **kwargs):
        ArrayOperation.__init__(self, name=name, **kwargs)
        self.indices_or_sections = _ints(indices_or_sections, "indices_or_sections", self._where())
        if isinstance(self.indices_or_sections, int) and self.indices_or_sections < 1:
            raise ValueError(f"{self._where()}: `indices_or_sections` must be at least 1, got {indices_or_sections}.")

    def _axis(self, ndim):
        if ndim < self.least:
            raise ValueError(f"{self._where()} takes a tensor of {self.least} axes or more, got {ndim}.")
        return {1: 0 if ndim == 1 else 1, 2: 0, 3: 2}[self.least]

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        axis = self._axis(len(shape))
        if shape[axis] is None:
            if isinstance(self.indices_or_sections, int):
                return [shape] * self.indices_or_sections
            # the parts up to the last index are known, the last one is not (as Keras gives them)
            ends = [0] + list(self.indices_or_sections) + [None]
            return [shape[:axis] + (None if b is None else max(b - a, 0),) + shape[axis + 1:]
                    for a, b in zip(ends[:-1], ends[1:])]
        return [shape[:axis] + (b - a,) + shape[axis + 1:] for a, b in self._bounds(shape[axis])]

    def _bounds(self, size):
        return fn.split_sections(size, self.indices_or_sections, self._where())


class Vsplit(Hsplit):
    least = 2


class Dsplit(Hsplit):
    least = 3


class Unstack(ArrayOperation):
    """``unstack(x, num=None, axis=0)`` of ``keras.src.ops.core``: the slices along ``axis``, that axis removed; a
    list of tensors."""

    keras_module = CORE
    config_keys = ("num", "axis")

    def __init__(self, num=None, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num = None if num is None else _int(num, "num", self._where(), low=1)
        self.axis = _int(axis, "axis", self._where())

    def apply(self, x):
        shapes = self.output_shape_of([None], [x.shape]) if is_symbolic(x) else None
        return _several(self, [x], shapes, [x.dtype] * len(shapes))

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        axis = _axes(self.axis, len(shape), self._where())[0]
        num = self.num if shape[axis] is None else shape[axis]
        if num is None:
            raise ValueError(f"{self._where()}: the size of axis {self.axis} is not known; give `num`.")
        if self.num is not None and self.num != num:
            raise ValueError(f"{self._where()}: num={self.num}, but axis {self.axis} has {num} slices.")
        return [shape[:axis] + shape[axis + 1:]] * num

    def forward_array(self, x):
        self.output_shape_of(None, [x.shape])
        axis = _axes(self.axis, x.ndim, self._where())[0]
        return [x[(slice(None),) * axis + (i,)] for i in range(x.shape[axis])]

    def forward_function(self, x):
        return self.forward_array(x)

    def backward(self, dy):
        operands, y = self.saved()
        x, = operands
        if not _float(x.dtype):
            return None
        dys = dy if isinstance(dy, (list, tuple)) else [dy]
        return _xp(dys[0]).stack(list(dys), axis=_axes(self.axis, x.ndim, self._where())[0])


class Meshgrid(ArrayOperation):
    """``meshgrid(*x, indexing="xy")``: of n tensors (each flattened), n grids of their lengths ("xy": the first two
    swapped, as NumPy's)."""

    config_keys = ("indexing",)
    arity = None

    def __init__(self, indexing="xy", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if indexing not in ("xy", "ij"):
            raise ValueError(f"{self._where()}: `indexing` must be 'xy' or 'ij', got {indexing!r}.")
        self.indexing = indexing

    def apply(self, *xs):
        if not xs:
            raise TypeError(f"{self._where()} takes one tensor or more.")
        shapes = self.output_shape_of([None] * len(xs), [x.shape for x in xs])
        dtype = self.result_dtype(xs, [None] * len(xs))
        return _several(self, list(xs), shapes, [dtype] * len(shapes))

    def _sizes(self, shapes):
        sizes = [None if None in tuple(s) else int(numpy.prod(s)) for s in shapes]
        if self.indexing == "xy" and len(sizes) > 1:
            sizes[0], sizes[1] = sizes[1], sizes[0]
        return tuple(sizes)

    def output_shape_of(self, arguments, shapes):
        return [self._sizes(shapes)] * len(shapes)

    def forward_function(self, *xs):
        grids = _xp(xs[0]).meshgrid(*[x.reshape(-1) for x in xs], indexing=self.indexing)
        return [g.copy() for g in grids]

    def backward(self, dy):
        operands, y = self.saved()
        if not any(_float(x.dtype) for x in operands):
            return None if len(operands) == 1 else [None] * len(operands)
        dys = dy if isinstance(dy, (list, tuple)) else [dy]
        grads = []
        for i, (x, g) in enumerate(zip(operands, dys)):
            axis = i
            if self.indexing == "xy" and len(operands) > 1 and i < 2:
                axis = 1 - i
            grads.append(g.sum(axis=tuple(a for a in range(g.ndim) if a != axis)).reshape(x.shape))
        return grads if len(grads) > 1 else grads[0]


class UnravelIndex(ArrayOperation):
    """``unravel_index(indices, shape)``: the coordinates, one tensor per axis of ``shape``, of flat indices;
    integers of the indices' dtype, no gradient."""

    config_keys = ("shape",)
    casts_inputs = False

    def __init__(self, shape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        shape = (shape,) if isinstance(shape, (int, numpy.integer)) else shape
        self.shape = tuple(_int(n, "shape", self._where(), low=1) for n in shape)

    def apply(self, indices):
        if is_symbolic(indices) and numpy.dtype(indices.dtype).kind not in "iu":
            raise TypeError(f"{self._where()} takes integer indices, got {indices.dtype}.")
        return _several(self, [indices], self.output_shape_of([None], [indices.shape]),
                        [indices.dtype] * len(self.shape))

    def output_shape_of(self, arguments, shapes):
        return [tuple(shapes[0])] * len(self.shape)

    def forward_array(self, indices):
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{self._where()} takes integer indices, got {indices.dtype}.")
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= int(numpy.prod(self.shape))):
            raise ValueError(f"{self._where()}: an index is out of range for the shape {self.shape}.")
        strides = numpy.cumprod((1,) + self.shape[:0:-1])[::-1].tolist()
        return [((indices // s) % n).astype(indices.dtype) for s, n in zip(strides, self.shape)]

    def forward_function(self, indices):
        return self.forward_array(indices)

    def backward(self, dy):
        return None


# ------------------------------------------------------------------ products
def _two_shapes(arguments, shapes):
    given = iter(shapes)
    return [tuple(next(given)) if a is None else tuple(numpy.shape(a)) for a in arguments]


class Product(ArrayOperation):
    """Two tensors (or a tensor and a constant array) in; Keras's dtype of the two."""

    arity = 2


class Outer(Product):
    """``outer(x1, x2)``: every element of the flattened x1 times every element of the flattened x2."""

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        return tuple(None if None in s else int(numpy.prod(s)) for s in (a, b))

    def forward_function(self, a, b):
        return a.reshape(-1, 1) * b.reshape(1, -1)

    def backward_function(self, dy, operands, y):
        a, b = operands
        return [(dy @ b.reshape(-1)).reshape(a.shape), (a.reshape(-1) @ dy).reshape(b.shape)]


class Inner(Product):
    """``inner(x1, x2)``: the products summed over the last axes (x1's other axes, then x2's)."""

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        if not a or not b:
            return a or b
        if a[-1] is not None and b[-1] is not None and a[-1] != b[-1]:
            raise ValueError(f"{self._where()}: the last axes of x1 and x2 must agree, got shapes {a} and {b}.")
        return a[:-1] + b[:-1]

    @staticmethod
    def subscripts(a_ndim, b_ndim):
        letters = "abcdefghijklmnopqrstuvwxy"
        first, second = letters[:a_ndim - 1], letters[a_ndim - 1:a_ndim + b_ndim - 2]
        return f"{first}z,{second}z->{first}{second}"

    def forward_function(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            return a * b
        return _xp(a).einsum(self.subscripts(a.ndim, b.ndim), a, b)

    def backward_function(self, dy, operands, y):
        a, b = operands
        if a.ndim == 0 or b.ndim == 0:
            return [(dy * b).sum() if a.ndim == 0 else dy * b, (dy * a).sum() if b.ndim == 0 else dy * a]
        return fn.einsum_backward(dy, operands, y, self.subscripts(a.ndim, b.ndim))


class Vdot(Product):
    """``vdot(x1, x2)``: the sum of the products of the flattened tensors (a scalar)."""

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        if None not in a + b and int(numpy.prod(a)) != int(numpy.prod(b)):
            raise ValueError(f"{self._where()}: x1 and x2 must have as many elements, got shapes {a} and {b}.")
        return ()

    def forward_function(self, a, b):
        if a.size != b.size:
            raise ValueError(f"{self._where()}: x1 and x2 must have as many elements, got shapes {a.shape} and "
                             f"{b.shape}.")
        return (a.reshape(-1) * b.reshape(-1)).sum()

    def backward_function(self, dy, operands, y):
        a, b = operands
        return [dy * b.reshape(a.shape), dy * a.reshape(b.shape)]


class Kron(Product):
    """``kron(x1, x2)``: the Kronecker product (the smaller rank padded with leading axes of 1)."""

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        rank = max(len(a), len(b))
        a, b = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
        return tuple(None if m is None or n is None else m * n for m, n in zip(a, b))

    @staticmethod
    def _spread(a, b):
        """a and b of one rank, reshaped to (a0, 1, a1, 1, ...) and (1, b0, 1, b1, ...); and the interleaved shape
        (a0, b0, a1, b1, ...)."""
        rank = max(a.ndim, b.ndim)
        sa, sb = (1,) * (rank - a.ndim) + a.shape, (1,) * (rank - b.ndim) + b.shape
        return (a.reshape([n for m in sa for n in (m, 1)]), b.reshape([n for m in sb for n in (1, m)]),
                [n for pair in zip(sa, sb) for n in pair])

    def forward_function(self, a, b):
        wide_a, wide_b, pairs = self._spread(a, b)
        return (wide_a * wide_b).reshape([m * n for m, n in zip(pairs[::2], pairs[1::2])])

    def backward_function(self, dy, operands, y):
        a, b = operands
        wide_a, wide_b, pairs = self._spread(a, b)
        g = dy.reshape(pairs)
        ga = (g * wide_b).sum(axis=tuple(range(1, g.ndim, 2)))
        gb = (g * wide_a).sum(axis=tuple(range(0, g.ndim, 2)))
        return [ga.reshape(a.shape), gb.reshape(b.shape)]


def _cross3(a, b):
    """The cross product of 3-vectors along the last axis (broadcast)."""
    xp = _xp(a)
    return xp.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


class Cross(Product):
    """``cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None)``: the cross product of 2- or 3-vectors along
    ``axisa`` of x1 and ``axisb`` of x2 (``axis``, when given, names all three), the result's vectors along
    ``axisc``; of two 2-vectors, the scalar z component. (Keras's torch backend, given no axis, crosses along the
    first axis of size 3 instead of the last; gpu_dl takes the last, as Keras documents and its other backends
    do.)"""

    config_keys = ("axisa", "axisb", "axisc", "axis")

    def __init__(self, axisa=-1, axisb=-1, axisc=-1, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        where = self._where()
        self.axisa, self.axisb, self.axisc = (_int(a, key, where) for a, key in
                                              ((axisa, "axisa"), (axisb, "axisb"), (axisc, "axisc")))
        self.axis = None if axis is None else _int(axis, "axis", where)

    def _settings(self):
        return (self.axisa, self.axisb, self.axisc) if self.axis is None else (self.axis,) * 3

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        axisa, axisb, axisc = self._settings()
        ia, ib = _axes(axisa, len(a), self._where())[0], _axes(axisb, len(b), self._where())[0]
        for what, n in (("x1", a[ia]), ("x2", b[ib])):
            if n is not None and n not in (2, 3):
                raise ValueError(f"{self._where()}: the vectors of {what} must have 2 or 3 components, got {n}.")
        rest = broadcast_shapes(a[:ia] + a[ia + 1:], b[:ib] + b[ib + 1:], self._where())
        if a[ia] == 2 and b[ib] == 2:
            return rest
        ic = _axes(axisc, len(rest) + 1, self._where())[0]
        return rest[:ic] + (3,) + rest[ic:]

    def _vectors(self, a, b):
        """a and b with their vectors last, padded to 3 components; and whether both had 2."""
        xp = _xp(a)
        axisa, axisb, _ = self._settings()
        a, b = xp.moveaxis(a, axisa, -1), xp.moveaxis(b, axisb, -1)
        for v in (a, b):
            if v.shape[-1] not in (2, 3):
                raise ValueError(f"{self._where()}: the vectors must have 2 or 3 components, got {v.shape[-1]}.")
        flat = a.shape[-1] == 2 and b.shape[-1] == 2

        def padded(v):
            return xp.concatenate([v, xp.zeros(v.shape[:-1] + (1,), v.dtype)], axis=-1) if v.shape[-1] == 2 else v
        return padded(a), padded(b), flat

    def forward_function(self, a, b):
        a3, b3, flat = self._vectors(a, b)
        c = _cross3(a3, b3)
        return c[..., 2] if flat else _xp(c).moveaxis(c, -1, self._settings()[2])

    def backward_function(self, dy, operands, y):
        a, b = operands
        xp = _xp(dy)
        a3, b3, flat = self._vectors(a, b)
        if flat:
            g = xp.zeros(dy.shape + (3,), dy.dtype)
            g[..., 2] = dy
        else:
            g = xp.moveaxis(dy, self._settings()[2], -1)
        # d(a x b) . g: a gets b x g, b gets g x a
        ga, gb = _cross3(b3, g), _cross3(g, a3)
        axisa, axisb, _ = self._settings()
        ga = reduce_to_shape(ga[..., :a.shape[axisa]], xp.moveaxis(a, axisa, -1).shape)
        gb = reduce_to_shape(gb[..., :b.shape[axisb]], xp.moveaxis(b, axisb, -1).shape)
        return [xp.moveaxis(ga, -1, axisa), xp.moveaxis(gb, -1, axisb)]


class CDist(Product):
    """``cdist(x, y)`` of ``keras.src.ops.math``: the Euclidean distances between the rows of x (..., m, d) and of y
    (..., n, d), (..., m, n), the leading axes broadcast. A distance of 0 sends no gradient (the square root's
    slope is infinite there)."""

    keras_module = MATH
    keeps_integers = False

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        if len(a) < 2 or len(b) < 2:
            raise ValueError(f"{self._where()} takes tensors of two axes or more, got shapes {a} and {b}.")
        if a[-1] is not None and b[-1] is not None and a[-1] != b[-1]:
            raise ValueError(f"{self._where()}: the last axes of x and y must agree, got shapes {a} and {b}.")
        return broadcast_shapes(a[:-2], b[:-2], self._where()) + (a[-2], b[-2])

    def forward_function(self, a, b):
        self.output_shape_of([None, None], [a.shape, b.shape])
        diff = a[..., :, None, :] - b[..., None, :, :]
        return _xp(diff).sqrt((diff * diff).sum(axis=-1))

    def backward_function(self, dy, operands, y):
        a, b = operands
        xp = _xp(dy)
        diff = a[..., :, None, :] - b[..., None, :, :]
        scale = xp.where(y > 0, dy / xp.where(y > 0, y, 1), 0)[..., None] * diff
        return [scale.sum(axis=-2), -scale.sum(axis=-3)]


class Vander(ArrayOperation):
    """``vander(x, N=None, increasing=False)``: of a vector, its powers as columns (N of them, len(x) when None),
    the highest first unless ``increasing``."""

    config_keys = ("N", "increasing")

    def __init__(self, N=None, increasing=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.N = None if N is None else _int(N, "N", self._where(), low=0)
        if not isinstance(increasing, bool):
            raise TypeError(f"{self._where()}: `increasing` must be a bool, got {increasing!r:.80}.")
        self.increasing = increasing

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if len(shape) != 1:
            raise ValueError(f"{self._where()} takes a tensor of one axis, got shape {shape}.")
        return shape + (shape[0] if self.N is None else self.N,)

    def _powers(self, x, shift=0):
        """The powers of the columns (less ``shift``, none below 0), of x's dtype (so x's powers keep it)."""
        count = x.shape[0] if self.N is None else self.N
        powers = numpy.maximum(numpy.arange(count) - shift, 0)
        return _xp(x).asarray((powers if self.increasing else powers[::-1]).astype(x.dtype))

    def forward_array(self, x):
        self.output_shape_of(None, [x.shape])
        return x[:, None] ** self._powers(x)[None, :]

    def backward_function(self, dy, operands, y):
        x, = operands
        return [(dy * self._powers(x)[None, :] * x[:, None] ** self._powers(x, 1)[None, :]).sum(axis=1)]


# ------------------------------------------------------------------ sequences
class Logspace(ArrayOperation):
    """``logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0)``: ``base`` to the powers
    evenly spaced from start to stop, along a new ``axis``; start and stop tensors or numbers, floats."""

    arity = 2
    config_keys = ("num", "endpoint", "base", "dtype", "axis")
    keeps_integers = False
    casts_inputs = False

    def __init__(self, num=50, endpoint=True, base=10, dtype=None, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num = _int(num, "num", self._where(), low=0)
        self.endpoint = bool(endpoint)
        self.base = base
        self.target = None if dtype is None else standardize_dtype(dtype)
        self.axis = _int(axis, "axis", self._where())

    def get_config(self):
        return {"name": self.name, "num": self.num, "endpoint": self.endpoint, "base": self.base,
                "dtype": self.target, "axis": self.axis}

    def result_dtype(self, tensors, arguments):
        if self.target is not None:
            return self.target if _float(self.target) else backend.floatx()
        return super().result_dtype(tensors, arguments)

    def output_shape_of(self, arguments, shapes):
        a, b = _two_shapes(arguments, shapes)
        shape = broadcast_shapes(a, b, self._where())
        axis = _axes(self.axis, len(shape) + 1, self._where())[0]
        return shape[:axis] + (self.num,) + shape[axis:]

    def operands(self, arrays):
        xp = backend.array_module(*arrays)
        given = iter(arrays)
        return [next(given).astype(self.dtype) if a is None else xp.asarray(a, dtype=self.dtype)
                for a in self.arguments]

    def _steps(self, xp, ndim, dtype):
        """The fractions of the way from start to stop, shaped to broadcast along the new axis."""
        count = self.num - 1 if self.endpoint else self.num
        t = xp.arange(self.num, dtype=dtype) / (count if count > 0 else 1)
        axis = _axes(self.axis, ndim + 1, self._where())[0]
        return t.reshape((1,) * axis + (-1,) + (1,) * (ndim - axis)), axis

    def _exponents(self, a, b):
        xp = _xp(a)
        a, b = xp.broadcast_arrays(a, b)
        shape = a.shape
        t, axis = self._steps(xp, len(shape), a.dtype)
        return xp.expand_dims(a, axis) * (1 - t) + xp.expand_dims(b, axis) * t, t, axis, shape

    def forward_function(self, a, b):
        exponents, _, _, _ = self._exponents(a, b)
        return (self.base ** exponents).astype(a.dtype)

    def backward_function(self, dy, operands, y):
        a, b = operands
        _, t, axis, shape = self._exponents(a, b)
        g = dy * y * math.log(self.base)
        return [(g * (1 - t)).sum(axis=axis), (g * t).sum(axis=axis)]


class Geomspace(Logspace):
    """``geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0)``: numbers evenly spaced on a log scale
    from start to stop (the sign of start's, as Keras's torch backend gives it)."""

    config_keys = ("num", "endpoint", "dtype", "axis")

    def __init__(self, num=50, endpoint=True, dtype=None, axis=0, name=None, **kwargs):
        super().__init__(num=num, endpoint=endpoint, base=10, dtype=dtype, axis=axis, name=name, **kwargs)

    def get_config(self):
        return {"name": self.name, "num": self.num, "endpoint": self.endpoint, "dtype": self.target,
                "axis": self.axis}

    def forward_function(self, a, b):
        xp = _xp(a)
        exponents, _, axis, _ = self._exponents(xp.log10(xp.abs(a)), xp.log10(xp.abs(b)))
        return (10.0 ** exponents * xp.expand_dims(xp.sign(a), axis)).astype(a.dtype)

    def backward_function(self, dy, operands, y):
        a, b = operands
        xp = _xp(dy)
        shape = numpy.broadcast_shapes(a.shape, b.shape)
        t, axis = self._steps(xp, len(shape), dy.dtype)
        # y = sign(a) 10^((1 - t) log10|a| + t log10|b|): dy/da = y (1 - t) / a, dy/db = y t / b
        g = dy * y
        return [(g * (1 - t)).sum(axis=axis) / a, (g * t).sum(axis=axis) / b]


# ------------------------------------------------------------------ dtypes
class Array(WithDtype, ArrayOperation):
    """``array(x, dtype=None)``: the tensor, cast to ``dtype`` when given (``EmptyLike``: zeros of its shape)."""

    def forward_array(self, x):
        return x.astype(self.target or x.dtype, copy=True)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [dy.astype(x.dtype) if _float(x.dtype) and _float(self.dtype) else None]


class EmptyLike(WithoutGradient, Array):
    """``empty_like(x, dtype=None)``: a tensor of x's shape, of ``dtype`` or x's; gpu_dl fills it with zeros (Keras
    leaves its values undefined). No gradient."""

    def forward_array(self, x):
        return _xp(x).zeros(x.shape, dtype=self.target or x.dtype)


class View(WithoutGradient, Array):
    """``view(x, dtype=None)``: the same bytes read as ``dtype``; the last axis scales by the ratio of the item
    sizes. No gradient: it reads bits, not values (Keras's torch backend's view is not differentiable either)."""

    _source_dtype = None

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        return tuple(self._shape(shape, self._source_dtype))

    def apply(self, x):
        self._source_dtype = x.dtype if is_symbolic(x) else None
        return super().apply(x)

    def _shape(self, shape, dtype):
        old = numpy.dtype(dtype).itemsize
        new = numpy.dtype(self.target or dtype).itemsize
        if old == new:
            return shape
        if not shape:
            raise ValueError(f"{self._where()}: a scalar cannot be viewed as a dtype of another item size.")
        if shape[-1] is not None:
            if shape[-1] * old % new:
                raise ValueError(f"{self._where()}: the last axis ({shape[-1]} x {old} bytes) cannot be viewed as "
                                 f"{self.target} ({new} bytes each).")
            shape[-1] = shape[-1] * old // new
        return shape

    def forward_array(self, x):
        self._shape(list(x.shape), x.dtype)
        return _xp(x).ascontiguousarray(x).view(self.target or x.dtype)


class MultiHot(WithoutGradient, ArrayOperation):
    """``multi_hot(inputs, num_classes, axis=-1, dtype=None, sparse=False)`` of ``keras.src.ops.nn``: integer
    classes in, per sample (the first axis; a vector is one sample) a 1 for each class present, floatx by default
    (Keras's symbolic result claims the input's dtype, its computed one is ``dtype``; gpu_dl gives ``dtype``). A
    class out of range sets nothing. No gradient."""

    keras_module = NN
    config_keys = ("num_classes", "axis", "dtype", "sparse")
    casts_inputs = False

    def __init__(self, num_classes=None, axis=-1, dtype=None, sparse=False, name=None, **kwargs):
        if num_classes is None and "num_tokens" in kwargs:
            num_classes = kwargs.pop("num_tokens")
        super().__init__(name=name, **kwargs)
        if num_classes is None:
            raise ValueError(f"{self._where()}: `num_classes` must be given.")
        if sparse:
            raise ValueError(f"{self._where()}: gpu_dl has no sparse tensors.")
        self.num_classes = _int(num_classes, "num_classes", self._where(), low=1)
        self.axis = _int(axis, "axis", self._where())
        self.target = standardize_dtype(dtype or backend.floatx())
        self.sparse = False

    def get_config(self):
        return {"name": self.name, "num_classes": self.num_classes, "axis": self.axis, "dtype": self.target,
                "sparse": self.sparse}

    def result_dtype(self, tensors, arguments):
        return self.target

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        if self.axis == -1:
            shape.append(self.num_classes)
        elif 0 <= self.axis < len(shape):
            shape.insert(self.axis, self.num_classes)
        else:
            raise ValueError(f"{self._where()}: `axis` must be -1 or in [0, {len(shape)}), got {self.axis}.")
        return tuple(shape[-1:] if len(shape) == 2 else shape[:1] + shape[2:])

    def forward_array(self, x):
        if x.dtype.kind not in "iub":
            x = x.astype(numpy.int64)
        xp = _xp(x)
        self.output_shape_of(None, [x.shape])
        hot = x[..., None] == xp.arange(self.num_classes)
        if self.axis != -1:
            hot = xp.moveaxis(hot, -1, self.axis)
        return hot.any(axis=1 if x.ndim > 1 else 0).astype(self.target)


OPERATIONS = {cls.__name__: cls for cls in (
    Moveaxis, Swapaxes, Ravel, Rot90, Fliplr, Flipud, Diag, Diagflat, Diagonal, DepthToSpace, SpaceToDepth,
    ExtractSequences, Unfold, Fold, Rearrange, Hstack, Vstack, Dstack, Append, ArraySplit, Hsplit, Vsplit, Dsplit,
    Unstack, Meshgrid, UnravelIndex, Outer, Inner, Vdot, Kron, Cross, CDist, Vander, Logspace, Geomspace, Array,
    EmptyLike, View, MultiHot)}
