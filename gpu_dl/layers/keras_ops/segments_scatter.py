"""The segment reductions (``segment_sum``, ``segment_max``, ``segment_min``,
``segment_prod``) and the scatters (``scatter``, ``scatter_update``, ``slice_update``) of ``gpu_dl.ops`` on
symbolic tensors: Keras's classes of ``keras.src.ops.math`` and ``keras.src.ops.core`` with Keras's constructor
arguments as their configs. The maths is ``ops/reductions_sorting.py``. They keep an integer input's dtype (bool
becomes int32 where Keras's does).
"""
from __future__ import annotations

import numpy

from ...ops import reductions_sorting as rs
from ...ops.scattering import add_at
from .base import CORE, MATH, _xp
from .mixed_operands import _Mixed, _only_floats


class SegmentReduction(_Mixed):
    """``segment_sum(data, segment_ids, num_segments=None, sorted=False)`` and its kin of ``keras.src.ops.math``:
    data's rows reduced per segment id (ids outside [0, num_segments) dropped); num_segments None: the largest id
    + 1, known only on arrays."""

    keras_module = MATH
    arity = 2
    config_keys = ("num_segments", "sorted")
    reduction = "sum"

    def __init__(self, num_segments=None, sorted=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_segments = None if num_segments is None else int(num_segments)
        self.sorted = bool(sorted)

    def result_dtype(self, tensors, arguments):
        return self._dtypes(tensors, arguments)[0]

    def output_shape_of(self, arguments, shapes):
        data, ids = self._shapes(arguments, shapes)
        if len(ids) != 1 or not data or (None not in (data[0], ids[0]) and data[0] != ids[0]):
            raise ValueError(f"{self._where()}: segment_ids must be 1-D, as long as data's first axis; got data of "
                             f"shape {data} and segment_ids of shape {ids}.")
        return (self.num_segments,) + tuple(data[1:])

    def _count(self, ids):
        if self.num_segments is not None:
            return self.num_segments
        return int(ids.max()) + 1 if ids.size else 0

    def forward_function(self, data, ids):
        xp = _xp(data)
        ids = xp.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{self._where()}: segment_ids must be integers, got {ids.dtype}.")
        self.output_shape_of([None, None], [data.shape, ids.shape])
        y, _ = rs.segment_forward(data, ids, self._count(ids), self.reduction)
        return y

    def backward_function(self, dy, operands, y):
        data, ids = operands
        ids = _xp(data).asarray(ids)
        saved = rs.groups(ids, y.shape[0])
        return [rs.segment_backward(dy, data, y, saved, self.reduction), None]


class SegmentSum(SegmentReduction):
    pass


class SegmentMax(SegmentReduction):
    reduction = "max"


class SegmentMin(SegmentReduction):
    reduction = "min"


class SegmentProd(SegmentReduction):
    reduction = "prod"


class Scatter(_Mixed):
    """``scatter(indices, values, shape)`` of ``keras.src.ops.core``: zeros of ``shape`` with ``values`` added at
    ``indices`` (integer, last axis indexing the first axes of shape); the values' gradient is dy read there."""

    keras_module = CORE
    arity = 2
    config_keys = ("shape",)

    def __init__(self, shape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.shape = tuple(int(n) for n in shape)

    def result_dtype(self, tensors, arguments):
        return self._dtypes(tensors, arguments)[1]

    def output_shape_of(self, arguments, shapes):
        indices, values = self._shapes(arguments, shapes)
        if not indices or indices[-1] is None or indices[-1] > len(self.shape):
            raise ValueError(f"{self._where()}: indices' last axis must index at most the {len(self.shape)} axes of "
                             f"shape {self.shape}, got indices of shape {indices}.")
        want = tuple(indices[:-1]) + self.shape[indices[-1]:]
        if len(values) != len(want) or any(a is not None and b is not None and a != b for a, b in zip(values, want)):
            raise ValueError(f"{self._where()}: values must have shape {want} for indices of shape {indices}, got "
                             f"{values}.")
        return self.shape

    def forward_function(self, indices, values):
        xp = _xp(values)
        indices = xp.asarray(indices)
        self.output_shape_of([None, None], [indices.shape, values.shape])
        d = indices.shape[-1]
        out = xp.zeros((int(numpy.prod(self.shape[:d], dtype=numpy.int64)),) + self.shape[d:], dtype=values.dtype)
        add_at(out, rs.flat_targets(indices, self.shape), values.reshape((-1,) + self.shape[d:]))
        return out.reshape(self.shape)

    def backward_function(self, dy, operands, y):
        indices, values = operands
        indices = _xp(dy).asarray(indices)
        d = indices.shape[-1]
        flat = dy.reshape((-1,) + self.shape[d:])
        return [None, flat[rs.flat_targets(indices, self.shape)].reshape(values.shape)]


class ScatterUpdate(_Mixed):
    """``scatter_update(inputs, indices, updates, reduction=None)`` of ``keras.src.ops.core``: inputs with the
    cells at ``indices`` replaced by (reduction None) or combined with ("add", "max", "min", "mul") ``updates``.
    Where indices repeat a cell without a reduction, the last of its updates is written (and takes the
    gradient), as NumPy's assignment does."""

    keras_module = CORE
    arity = 3
    config_keys = ("reduction",)

    def __init__(self, reduction=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if reduction not in (None, "add", "max", "min", "mul"):
            raise ValueError(f"{self._where()}: reduction must be None, 'add', 'max', 'min' or 'mul', got "
                             f"{reduction!r}.")
        self.reduction = reduction

    def result_dtype(self, tensors, arguments):
        return self._dtypes(tensors, arguments)[0]

    def output_shape_of(self, arguments, shapes):
        inputs, indices, updates = self._shapes(arguments, shapes)
        if not indices or indices[-1] is None or indices[-1] > len(inputs):
            raise ValueError(f"{self._where()}: indices' last axis must index at most the {len(inputs)} axes of "
                             f"inputs, got indices of shape {indices}.")
        want = tuple(indices[:-1]) + tuple(inputs[indices[-1]:])
        if len(updates) != len(want) or any(a is not None and b is not None and a != b for a, b in zip(updates, want)):
            raise ValueError(f"{self._where()}: updates must have shape {want}, got {updates}.")
        return inputs

    def _layout(self, inputs, indices, updates):
        xp = _xp(inputs)
        indices = xp.asarray(indices)
        d = indices.shape[-1]
        rest = inputs.shape[d:]
        targets = rs.flat_targets(indices, inputs.shape)
        return targets, rest, xp.asarray(updates).astype(inputs.dtype).reshape((-1,) + rest)

    def forward_function(self, inputs, indices, updates):
        xp = _xp(inputs)
        self.output_shape_of([None, None, None], [inputs.shape, xp.asarray(indices).shape, xp.asarray(updates).shape])
        targets, rest, values = self._layout(inputs, indices, updates)
        out = inputs.reshape((-1,) + rest).copy()
        if self.reduction is None:
            written = rs.last_of_each(targets)
            out[targets[written]] = values[written]
        elif self.reduction == "add":
            add_at(out, targets, values)
        else:
            cells, inverse = xp.unique(targets, return_inverse=True)
            kind = {"max": "max", "min": "min", "mul": "prod"}[self.reduction]
            combined, _ = rs.segment_forward(xp.concatenate([out[cells], values]),
                                             xp.concatenate([xp.arange(cells.size), inverse.reshape(-1)]),
                                             int(cells.size), kind)
            out[cells] = combined
        return out.reshape(inputs.shape)

    def backward_function(self, dy, operands, y):
        inputs, indices, updates = operands
        xp = _xp(dy)
        targets, rest, values = self._layout(inputs, indices, updates)
        flat = dy.reshape((-1,) + rest)
        updates_shape = xp.asarray(updates).shape
        if self.reduction == "add":
            g_inputs, g_updates = flat, flat[targets]
        elif self.reduction is None:
            g_inputs = flat.copy()
            g_inputs[targets] = 0
            written = rs.last_of_each(targets)
            g_updates = xp.zeros_like(values)
            g_updates[written] = flat[targets[written]]
        else:
            base = inputs.reshape((-1,) + rest)
            cells, inverse = xp.unique(targets, return_inverse=True)
            kind = {"max": "max", "min": "min", "mul": "prod"}[self.reduction]
            data = xp.concatenate([base[cells], values])
            ids = xp.concatenate([xp.arange(cells.size), inverse.reshape(-1)])
            reduced = y.reshape((-1,) + rest)[cells]
            g = rs.segment_backward(flat[cells], data, reduced, rs.groups(ids, int(cells.size)), kind)
            g_inputs = flat.copy()
            g_inputs[cells] = g[:cells.size]
            g_updates = g[cells.size:]
        return _only_floats([g_inputs.reshape(inputs.shape), None, g_updates.reshape(updates_shape)],
                            [inputs, xp.asarray(indices), xp.asarray(updates)])


class SliceUpdate(_Mixed):
    """``slice_update(inputs, start_indices, updates)`` of ``keras.src.ops.core``: inputs with the block at
    ``start_indices`` (numbers, the call's second argument) replaced by ``updates``."""

    keras_module = CORE
    arity = 3

    def accept_argument(self, position, value):
        if position == 1 and isinstance(value, (list, tuple)) and \
                all(isinstance(v, (int, numpy.integer)) and not isinstance(v, bool) for v in value):
            return tuple(int(v) for v in value)
        if position == 1:
            raise TypeError(f"{self._where()}: start_indices must be a tuple of numbers, got {value!r:.80}.")
        return super().accept_argument(position, value)

    @classmethod
    def decode_argument(cls, position, value, where):
        if position == 1 and isinstance(value, list) and all(isinstance(v, int) for v in value):
            return tuple(value)
        return super().decode_argument(position, value, where)

    def same_arguments(self, arguments):
        return len(arguments) == len(self.arguments) and all(
            (a is None) == (b is None) and (a is None or isinstance(a, tuple) and a == b or
                                           isinstance(a, numpy.ndarray) and numpy.array_equal(a, b))
            for a, b in zip(self.arguments, arguments))

    def keras_arguments(self, tensors):
        given = iter(tensors)
        return [next(given) if a is None else (list(a) if isinstance(a, tuple) else a) for a in self.arguments]

    def result_dtype(self, tensors, arguments):
        return self._dtypes(tensors, arguments)[0]

    def output_shape_of(self, arguments, shapes):
        given = iter(shapes)
        inputs = tuple(next(given)) if arguments[0] is None else tuple(numpy.shape(arguments[0]))
        start = arguments[1]
        updates = tuple(next(given)) if arguments[2] is None else tuple(numpy.shape(arguments[2]))
        self._check(inputs, start, updates)
        return inputs

    def _check(self, inputs, start, updates):
        if len(start) != len(inputs) or len(updates) != len(inputs):
            raise ValueError(f"{self._where()}: start_indices {tuple(start)} and updates of shape {updates} must name "
                             f"each of the {len(inputs)} axes of inputs of shape {inputs}.")
        for s, n, size in zip(start, updates, inputs):
            if s < 0 or (None not in (n, size) and s + n > size):
                raise ValueError(f"{self._where()}: updates of shape {updates} from {tuple(start)} do not fit in "
                                 f"inputs of shape {inputs}.")

    def _block(self, start, updates_shape):
        return tuple(slice(int(s), int(s) + int(n)) for s, n in zip(start, updates_shape))

    def forward_function(self, inputs, start, updates):
        xp = _xp(inputs)
        updates = xp.asarray(updates)
        self._check(inputs.shape, start, updates.shape)
        out = inputs.copy()
        out[self._block(start, updates.shape)] = updates.astype(inputs.dtype, copy=False)
        return out

    def backward_function(self, dy, operands, y):
        inputs, start, updates = operands
        xp = _xp(dy)
        updates = xp.asarray(updates)
        block = self._block(start, updates.shape)
        g_inputs = dy.copy()
        g_inputs[block] = 0
        return _only_floats([g_inputs, None, dy[block].astype(updates.dtype, copy=False)],
                            [inputs, numpy.zeros(0, "int32"), updates])

    def backward(self, dy):
        operands, y = self.saved()
        g = self.backward_function(dy, operands, y)
        tensors = [g[i] for i, a in enumerate(self.arguments) if a is None]
        return tensors if len(tensors) > 1 else tensors[0]


OPERATIONS = {cls.__name__: cls for cls in (SegmentSum, SegmentMax, SegmentMin, SegmentProd, Scatter, ScatterUpdate,
    SliceUpdate)}
