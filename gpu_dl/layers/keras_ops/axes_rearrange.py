"""Keras's operations that move, swap, rotate and flip axes (``moveaxis``, ``swapaxes``, ``ravel``,
``rot90``, ``fliplr``, ``flipud``) and einops' ``rearrange``, with exact backwards.
"""
from __future__ import annotations

import re

import numpy

from .base import _axes, _float, _xp
from .array_base import ArrayOperation, _each_axis, _int, _ints, _jsonable


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


OPERATIONS = {cls.__name__: cls for cls in (Moveaxis, Swapaxes, Ravel, Rot90, Fliplr, Flipud, Rearrange)}
