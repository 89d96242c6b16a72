"""Padding layers: ZeroPadding1D, ZeroPadding2D and ZeroPadding3D (Keras), ReflectionPadding2D (mirror padding,
which Keras lacks)."""
from __future__ import annotations

import numbers

from ..backend import array_module
from .spatial import AXIS_NAMES, SpatialLayer, int_tuple


FORMS = {2: "an int, a pair (rows, cols) or ((top, bottom), (left, right))",
         3: "an int, a triple (depth, rows, cols) or ((front, back), (top, bottom), (left, right))"}


def padding_pairs(value, what, rank=2):
    """Keras's padding (and cropping) argument of a layer with ``rank`` spatial axes: an int for all sides,
    one int per axis for both its sides, or one (before, after) pair per axis; all >= 0."""
    def count(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"{what} must hold non-negative integers, got {value!r}.")
        return int(v)

    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        p = count(value)
        return ((p, p),) * rank
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{what} must be {FORMS[rank]}, got {value!r}.") from None
    if len(items) != rank:
        raise ValueError(f"{what} must have {rank} entries ({', '.join(AXIS_NAMES[rank])}), got {value!r}.")
    pairs = []
    for item in items:
        if isinstance(item, numbers.Integral) and not isinstance(item, bool):
            pairs.append((count(item), count(item)))
        else:
            try:
                pair = tuple(item)
            except TypeError:
                raise TypeError(f"{what}: each entry must be an int or a pair, got {value!r}.") from None
            if len(pair) != 2:
                raise ValueError(f"{what}: each entry must be an int or a pair (before, after), got {value!r}.")
            pairs.append((count(pair[0]), count(pair[1])))
    return tuple(pairs)


class _Padding(SpatialLayer):
    """Adds values before and after each spatial axis; ``pairs`` holds (before, after) per axis."""
    MODE = "constant"

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        what = f"{type(self).__name__} layer '{self.name}': padding"
        # Keras: ZeroPadding1D takes an int or (before, after); the 2-D and 3-D layers a pair per axis as well.
        self.padding = (int_tuple(padding, what, 2, minimum=0) if self.rank == 1
                        else padding_pairs(padding, what, self.rank))

    @property
    def pairs(self):
        return (self.padding,) if self.rank == 1 else self.padding

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        last = self.check_rank(input_shape)
        sizes = tuple(None if n is None else n + before + after for n, (before, after) in zip(last[1:-1], self.pairs))
        return self.from_last_shape(last[:1] + sizes + last[-1:])

    def call(self, x, training=False):
        x = self.to_last(x)
        self._saved = (x.shape,) if training else None
        return self.from_last(array_module(x).pad(x, ((0, 0),) + self.pairs + ((0, 0),), mode=self.MODE))

    def backward(self, dy):
        """Zero padding's gradient: dy without the padded band."""
        (shape,) = self.saved()
        inside = tuple(slice(before, before + n) for (before, _), n in zip(self.pairs, shape[1:-1]))
        return self.from_last(self.to_last(dy)[(slice(None),) + inside])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


class ZeroPadding2D(_Padding):
    """Adds rows and columns of zeros around each image."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format=data_format, **kwargs)


class ZeroPadding1D(_Padding):
    """Adds ``padding`` = (before, after) (or an int, both) steps of zeros around each sequence."""

    rank = 1


class ZeroPadding3D(_Padding):
    """Adds slices of zeros around each volume: ``padding`` an int, one per axis (depth, height, width) or
    ((front, back), (top, bottom), (left, right)); one on every side by default, as in Keras."""

    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format=data_format, **kwargs)


class ReflectionPadding2D(_Padding):
    """Mirror padding: row ``-k`` is row ``k`` (the edge itself is not repeated), as ``numpy.pad(mode="reflect")``.

    Each pad must be smaller than the axis it extends."""
    MODE = "reflect"

    def compute_output_shape(self, input_shape):
        n, h, w, c = self.check_rank(input_shape)
        for axis, size, pair in (("height", h, self.padding[0]), ("width", w, self.padding[1])):
            if size is not None and max(pair) >= size:
                raise ValueError(f"ReflectionPadding2D layer '{self.name}': {axis} padding {pair} needs each side "
                                 f"smaller than the input {axis} {size}.")
        return super().compute_output_shape(input_shape)

    def call(self, x, training=False):
        self.compute_output_shape(x.shape)
        return super().call(x, training)

    def backward(self, dy):
        (shape,) = self.saved()
        g = self.to_last(dy)
        for axis in (1, 2):
            g = _fold_reflection(g, axis, *self.padding[axis - 1], shape[axis])
        return self.from_last(g)


def _fold_reflection(g, axis, before, after, size):
    """The gradient of reflect-padding along ``axis``: each mirrored band added back onto the entries it copied.

    Band entry ``before - k`` copied entry ``k`` (k = 1..before); after the core, entry ``size - 1 + k``
    copied ``size - 1 - k``.
    """
    xp = array_module(g)

    def along(start, stop):
        index = [slice(None)] * g.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    out = g[along(before, before + size)].copy()
    if before:
        out[along(1, before + 1)] += xp.flip(g[along(0, before)], axis)
    if after:
        out[along(size - 1 - after, size - 1)] += xp.flip(g[along(before + size, before + size + after)], axis)
    return out
