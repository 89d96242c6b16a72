"""The sorting and searching operations of ``gpu_dl.ops`` on symbolic tensors (``sort``,
``argsort``, ``argpartition``, ``top_k``, ``in_top_k``, ``searchsorted``, ``digitize``, ``isin``): Keras's
classes of ``keras.src.ops.numpy`` and ``keras.src.ops.math`` with Keras's constructor arguments as their
configs. The maths is ``ops/reductions_sorting.py``.

``sort`` keeps an integer input's dtype; the indices (``argsort``, ``argpartition``, ``top_k``'s,
``searchsorted``, ``digitize``) are int32, ``in_top_k`` and ``isin`` bool, none with a gradient.
"""
from __future__ import annotations

import numpy

from ...ops import reductions_sorting as rs
from ..operations import broadcast_shapes
from .base import MATH, KerasOperation, WithoutGradient, _axes, _float, _several_outputs, _xp
from .mixed_operands import _Mixed


class Sort(KerasOperation):
    """``sort(x, axis=-1)``: the gradient goes back to where each value came from."""

    config_keys = ("axis",)

    def __init__(self, axis=-1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = None if axis is None else int(axis)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if self.axis is None:
            return (None if None in shape else int(numpy.prod(shape)),)
        _axes(self.axis, len(shape), self._where())
        return shape

    def _order(self, x):
        if self.axis is None:
            x = x.reshape(-1)
        moved = _xp(x).moveaxis(x, -1 if self.axis is None else self.axis, -1)
        return moved, rs.stable_argsort(moved)

    def forward_array(self, x):
        _axes(-1 if self.axis is None else self.axis, max(x.ndim, 1), self._where())
        moved, order = self._order(x)
        return _xp(x).moveaxis(_xp(x).take_along_axis(moved, order, axis=-1), -1, 0 if self.axis is None
                               else self.axis)

    def backward_function(self, dy, operands, y):
        x, = operands
        xp = _xp(x)
        moved, order = self._order(x)
        axis = 0 if self.axis is None else self.axis
        g = rs.sorted_scatter(xp.moveaxis(dy, axis, -1), order, moved.shape[-1])
        return [xp.moveaxis(g, -1, axis).reshape(x.shape)]


class Argsort(WithoutGradient, Sort):
    """``argsort(x, axis=-1)``: int32 indices, ties in order; no gradient."""

    fixed_dtype = "int32"
    casts_inputs = False

    def forward_array(self, x):
        _axes(-1 if self.axis is None else self.axis, max(x.ndim, 1), self._where())
        _, order = self._order(x)
        return _xp(x).moveaxis(order, -1, 0 if self.axis is None else self.axis).astype("int32")


class Argpartition(Argsort):
    """``argpartition(x, kth, axis=-1)``: the indices of the kth + 1 smallest (ascending), then the rest by
    position, as Keras's torch backend orders them; int32, no gradient."""

    config_keys = ("kth", "axis")

    def __init__(self, kth, axis=-1, name=None, **kwargs):
        super().__init__(axis=axis, name=name, **kwargs)
        self.kth = int(kth)

    def _check(self, shape):
        size = int(numpy.prod(shape)) if self.axis is None else shape[_axes(self.axis, len(shape), self._where())[0]]
        if size is not None and not 0 <= self.kth < size:
            raise ValueError(f"{self._where()}: kth must lie in [0, {size}), got {self.kth}.")

    def output_shape_of(self, arguments, shapes):
        if None not in tuple(shapes[0]):
            self._check(tuple(shapes[0]))
        return super().output_shape_of(arguments, shapes)

    def forward_array(self, x):
        self._check(x.shape)
        return rs.argpartition_forward(x, self.kth, self.axis)


class TopK(KerasOperation):
    """``top_k(x, k, sorted=True)`` of ``keras.src.ops.math``: two outputs, the k largest along the last axis
    (in descending order) and their int32 indices (the first of ties first); the values' gradient goes back to
    where they came from."""

    keras_module = MATH
    config_keys = ("k", "sorted")

    def __init__(self, k, sorted=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k, self.sorted = int(k), bool(sorted)

    def apply(self, x):
        values, indices = _several_outputs(self, x, 2)
        indices.dtype = "int32"
        return [values, indices]

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        if not shape or (shape[-1] is not None and not 0 <= self.k <= shape[-1]):
            raise ValueError(f"{self._where()}: k={self.k} must lie within the last axis of shape {tuple(shape)}.")
        shape[-1] = self.k
        return [tuple(shape), tuple(shape)]

    def _order(self, x):
        xp = _xp(x)
        key = -x if x.dtype.kind in "fi" else ~x if x.dtype == bool else xp.iinfo(x.dtype).max - x
        return rs.stable_argsort(key)[..., :self.k]

    def forward_array(self, x):
        self.output_shape_of([None], [x.shape])
        order = self._order(x)
        return [_xp(x).take_along_axis(x, order, axis=-1), order.astype("int32")]

    def backward(self, dy):
        operands, y = self.saved()
        x, = operands
        if not _float(x.dtype):
            return None
        dvalues = dy[0] if isinstance(dy, (list, tuple)) else dy
        order = rs.stable_argsort(-x)
        return rs.sorted_scatter(dvalues.astype(x.dtype, copy=False), order, x.shape[-1])


class InTopK(WithoutGradient, _Mixed):
    """``in_top_k(targets, predictions, k)`` of ``keras.src.ops.math``: whether each target's prediction is at least
    the k-th largest of its row (ties count in); bool, no gradient."""

    fixed_dtype = "bool"
    keras_module = MATH
    arity = 2
    config_keys = ("k",)

    def __init__(self, k, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = int(k)

    def output_shape_of(self, arguments, shapes):
        targets, predictions = self._shapes(arguments, shapes)
        if len(targets) != 1 or len(predictions) != 2:
            raise ValueError(f"{self._where()}: targets must be 1-D and predictions 2-D, got shapes {targets} and "
                             f"{predictions}.")
        broadcast_shapes(targets, predictions[:1], self._where())
        return targets

    def forward_function(self, targets, predictions):
        xp = _xp(predictions)
        targets = xp.asarray(targets).astype("int64")
        self.output_shape_of([None, None], [targets.shape, predictions.shape])
        k = min(self.k, predictions.shape[-1])
        if k <= 0:
            return xp.zeros(targets.shape, dtype=bool)
        kth = -xp.sort(-predictions, axis=-1)[:, k - 1]
        return xp.take_along_axis(predictions, targets[:, None], axis=-1)[:, 0] >= kth


class SearchSorted(WithoutGradient, _Mixed):
    """``searchsorted(sorted_sequence, values, side="left")``: int32 places in a 1-D sorted sequence."""

    fixed_dtype = "int32"
    arity = 2
    config_keys = ("side",)

    def __init__(self, side="left", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if side not in ("left", "right"):
            raise ValueError(f"{self._where()}: side must be 'left' or 'right', got {side!r}.")
        self.side = side

    def output_shape_of(self, arguments, shapes):
        sequence, values = self._shapes(arguments, shapes)
        if len(sequence) != 1:
            raise ValueError(f"{self._where()}: sorted_sequence must be 1-D, got shape {sequence}.")
        return values

    def forward_function(self, sequence, values):
        xp = _xp(sequence if hasattr(sequence, "shape") else values)
        sequence, values = xp.asarray(sequence), xp.asarray(values)
        self.output_shape_of([None, None], [sequence.shape, values.shape])
        return xp.searchsorted(sequence, values, side=self.side).astype("int32")


class Digitize(WithoutGradient, _Mixed):
    """``digitize(x, bins)``: the int32 bin of each element, i with bins[i - 1] <= x < bins[i] (increasing
    bins)."""

    fixed_dtype = "int32"
    arity = 2

    def output_shape_of(self, arguments, shapes):
        x, bins = self._shapes(arguments, shapes)
        if len(bins) != 1:
            raise ValueError(f"{self._where()}: bins must be 1-D, got shape {bins}.")
        return x

    def forward_function(self, x, bins):
        xp = _xp(x if hasattr(x, "shape") else bins)
        x, bins = xp.asarray(x), xp.asarray(bins)
        self.output_shape_of([None, None], [x.shape, bins.shape])
        if x.dtype == bool:
            x = x.astype("uint8")
        return xp.searchsorted(bins, x, side="right").astype("int32")


class IsIn(WithoutGradient, _Mixed):
    """``isin(x1, x2, assume_unique=False, invert=False)``: whether each element of x1 is among x2's; bool."""

    fixed_dtype = "bool"
    arity = 2
    config_keys = ("assume_unique", "invert")

    def __init__(self, assume_unique=False, invert=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.assume_unique, self.invert = bool(assume_unique), bool(invert)

    def output_shape_of(self, arguments, shapes):
        return self._shapes(arguments, shapes)[0]

    def forward_function(self, x1, x2):
        xp = _xp(x1 if hasattr(x1, "shape") else x2)
        x1, x2 = xp.asarray(x1), xp.asarray(x2).reshape(-1)
        ordered = xp.sort(x2)
        if ordered.size == 0:
            found = xp.zeros(x1.shape, dtype=bool)
        else:
            place = xp.clip(xp.searchsorted(ordered, x1), 0, ordered.size - 1)
            found = ordered[place] == x1
        return ~found if self.invert else found


OPERATIONS = {cls.__name__: cls for cls in (Sort, Argsort, Argpartition, TopK, InTopK, SearchSorted, Digitize, IsIn)}
