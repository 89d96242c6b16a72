"""Operations that rearrange values without arithmetic: reshaping, transposing, joining, splitting, tiling,
padding, slicing, and the triangles ``tril``/``triu``."""
from __future__ import annotations

import numpy

from ...ops import numpy_functions as fn
from ..operations import broadcast_shapes
from ..symbolic import is_symbolic
from .base import (CORE, KerasOperation, _axes, _axis_setting, _float, _nested_list, _nested_tuple, _several_outputs,
                   _xp)


# ------------------------------------------------------------------ shapes
class Reshape(KerasOperation):
    config_keys = ("newshape",)

    def __init__(self, newshape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        newshape = (newshape,) if isinstance(newshape, (int, numpy.integer)) or newshape is None else newshape
        self.newshape = tuple(None if n is None else int(n) for n in newshape)
        if sum(n is not None and n < 0 for n in self.newshape) > 1 or \
                any(n is not None and n < -1 for n in self.newshape):
            raise ValueError(f"Reshape: the new shape {self.newshape} may hold one -1 and no other negative size.")

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        known = [n for n in self.newshape if n is not None and n >= 0]
        unknown = None in shape or None in self.newshape
        same_unknowns = shape.count(None) == self.newshape.count(None)     # (None, ...) into (None, ...)
        if -1 not in self.newshape:
            if (not unknown or same_unknowns) and \
                    int(numpy.prod([n for n in shape if n is not None])) != int(numpy.prod(known)):
                raise ValueError(f"{self._where()}: cannot reshape a tensor of shape {shape} into {self.newshape}.")
            return self.newshape
        if unknown:
            return tuple(None if n == -1 else n for n in self.newshape)
        total, rest = int(numpy.prod(shape)), int(numpy.prod(known))
        if rest == 0 or total % rest:
            raise ValueError(f"{self._where()}: cannot reshape a tensor of shape {shape} into {self.newshape}.")
        return tuple(total // rest if n == -1 else n for n in self.newshape)

    def forward_array(self, x):
        return fn.reshape_forward(x, self.newshape)

    def backward_function(self, dy, operands, y):
        return fn.reshape_backward(dy, operands, y)


class Transpose(KerasOperation):
    config_keys = ("axes",)

    def __init__(self, axes=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axes = None if axes is None else tuple(int(a) for a in axes)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if self.axes is None:
            return shape[::-1]
        if sorted(a % len(shape) for a in self.axes) != list(range(len(shape))) or len(self.axes) != len(shape):
            raise ValueError(f"{self._where()}: axes {self.axes} are not a permutation of the {len(shape)} axes of a "
                             f"tensor of shape {shape}.")
        return tuple(shape[a] for a in self.axes)

    def forward_array(self, x):
        return fn.transpose_forward(x, self.axes)

    def backward_function(self, dy, operands, y):
        return fn.transpose_backward(dy, operands, y, self.axes)


class ExpandDims(KerasOperation):
    config_keys = ("axis",)

    def __init__(self, axis, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _axis_setting(axis)

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        axes = (self.axis,) if isinstance(self.axis, int) else self.axis
        rank = len(shape) + len(axes)
        for a in sorted(_axes(axes, rank, self._where())):
            shape.insert(a, 1)
        return tuple(shape)

    def forward_array(self, x):
        return fn.expand_dims_forward(x, self.axis)

    def backward_function(self, dy, operands, y):
        return fn.reshape_backward(dy, operands, y)


class Squeeze(KerasOperation):
    """``squeeze(x, axis=None)``: axis None removes the axes known to be of size 1 in the symbolic shape (so a
    batch of one keeps its axis, as the shape says)."""

    config_keys = ("axis",)

    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _axis_setting(axis)
        self._removed = None

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if self.axis is None:
            removed = tuple(i for i, n in enumerate(shape) if n == 1)
        else:
            removed = _axes(self.axis, len(shape), self._where())
            bad = [shape[a] for a in removed if shape[a] not in (1, None)]
            if bad:
                raise ValueError(f"{self._where()}: cannot squeeze axis {self.axis} of a tensor of shape {shape}: its "
                                 "size is not 1.")
        self._removed = removed
        return tuple(n for i, n in enumerate(shape) if i not in removed)

    def forward_array(self, x):
        removed = self._removed if self._removed is not None else \
            (tuple(i for i, n in enumerate(x.shape) if n == 1) if self.axis is None else
             fn.normalize_axes(self.axis, x.ndim))
        if any(x.shape[a] != 1 for a in removed):
            raise ValueError(f"{self._where()}: cannot squeeze axes {removed} of an array of shape {x.shape}.")
        return fn.squeeze_forward(x, removed)

    def backward_function(self, dy, operands, y):
        return fn.reshape_backward(dy, operands, y)


class Concatenate(KerasOperation):
    """``concatenate(xs, axis=0)``: one argument, a list of tensors (Keras records it so)."""

    config_keys = ("axis",)
    arity = None
    list_arguments = (0,)

    def __init__(self, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = int(axis)

    def apply(self, xs):
        if not isinstance(xs, (list, tuple)) or not xs or not all(is_symbolic(t) for t in xs):
            raise TypeError(f"{self._where()} takes a list of symbolic tensors (constant arrays are not taken among "
                            "them), got {xs!r:.100}.")
        return super().apply(*xs)

    def keras_arguments(self, tensors):
        return [list(tensors)]

    def __call__(self, x, training=None, mask=None, initial_state=None):
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (list, tuple)):
            x = x[0]
        return super().__call__(x, training=training, mask=mask, initial_state=initial_state)

    def operands(self, arrays):
        return list(arrays)

    def output_shape_of(self, arguments, shapes):
        shapes = [tuple(s) for s in shapes]
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"{self._where()}: the tensors must have the same number of axes, got shapes {shapes}.")
        axis = _axes(self.axis, rank, self._where())[0]
        out = []
        for i in range(rank):
            sizes = [s[i] for s in shapes]
            if i == axis:
                out.append(None if None in sizes else sum(sizes))
                continue
            known = {n for n in sizes if n is not None}
            if len(known) > 1:
                raise ValueError(f"{self._where()}: the tensors' sizes must agree except along axis {self.axis}, got "
                                 f"shapes {shapes}.")
            # Keras's: the first tensor's size, unknown where it is though another tensor knows it
            out.append(sizes[0])
        return tuple(out)

    def forward_function(self, *xs):
        return fn.concatenate_forward(list(xs), self.axis)

    def backward_function(self, dy, operands, y):
        return fn.concatenate_backward(dy, operands, y, self.axis)


class Stack(Concatenate):
    """``stack(x, axis=0)``: one argument, a list of tensors of one shape, joined along a new axis."""

    def output_shape_of(self, arguments, shapes):
        shapes = [tuple(s) for s in shapes]
        out = []
        for sizes in zip(*shapes):
            known = {n for n in sizes if n is not None}
            if len(known) > 1 or len({len(s) for s in shapes}) > 1:
                raise ValueError(f"{self._where()}: the tensors must have one shape, got {shapes}.")
            out.append(known.pop() if known else None)
        rank = len(out) + 1
        out.insert(_axes(self.axis, rank, self._where())[0], len(shapes))
        return tuple(out)

    def forward_function(self, *xs):
        return fn.stack_forward(list(xs), self.axis)

    def backward_function(self, dy, operands, y):
        return fn.stack_backward(dy, operands, y, self.axis)


# ------------------------------------------------------------------ rearranging
class Split(KerasOperation):
    """``split(x, indices_or_sections, axis=0)``: a number of equal parts, or the indices to cut at; a list of
    tensors (one output per part)."""

    config_keys = ("indices_or_sections", "axis")

    def __init__(self, indices_or_sections, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.indices_or_sections = int(indices_or_sections) if isinstance(indices_or_sections, (int, numpy.integer)) \
            else [int(i) for i in indices_or_sections]
        self.axis = int(axis)

    def apply(self, x):
        parts = self.output_shape_of([None], [x.shape]) if is_symbolic(x) else None
        return _several_outputs(self, x, len(parts))

    def _bounds(self, size):
        return fn.split_sections(size, self.indices_or_sections, self._where())

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        axis = _axes(self.axis, len(shape), self._where())[0]
        if shape[axis] is None:
            raise ValueError(f"{self._where()}: the size of axis {self.axis} must be known to split it.")
        return [shape[:axis] + (b - a,) + shape[axis + 1:] for a, b in self._bounds(shape[axis])]

    def forward_array(self, x):
        axis = self.axis % x.ndim
        parts = [x[(slice(None),) * axis + (slice(a, b),)] for a, b in self._bounds(x.shape[axis])]
        return parts if len(parts) > 1 else parts[0]

    def backward(self, dy):
        operands, y = self.saved()
        if not _float(operands[0].dtype):
            return None
        return fn.split_backward(dy if isinstance(dy, (list, tuple)) else [dy], operands, y, self.axis)[0]


class Tile(KerasOperation):
    config_keys = ("repeats",)

    def __init__(self, repeats, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.repeats = (int(repeats),) if isinstance(repeats, (int, numpy.integer)) else tuple(int(r) for r in repeats)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        repeats = fn.tile_repeats(self.repeats, len(shape))
        shape = (1,) * (len(repeats) - len(shape)) + shape
        return tuple(None if n is None else n * r for n, r in zip(shape, repeats))

    def forward_array(self, x):
        return _xp(x).tile(x, self.repeats)

    def backward_function(self, dy, operands, y):
        return fn.tile_backward(dy, operands, y, self.repeats)


class Repeat(KerasOperation):
    """``repeat(x, repeats, axis=None)``: each element ``repeats`` times (a number, or one per element) along
    ``axis``, or over the flattened tensor; computed as a ``take`` of repeated indices."""

    config_keys = ("repeats", "axis")

    def __init__(self, repeats, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.repeats = int(repeats) if isinstance(repeats, (int, numpy.integer)) else [int(r) for r in repeats]
        self.axis = None if axis is None else int(axis)

    def _count(self, size):
        return size * self.repeats if isinstance(self.repeats, int) else int(numpy.sum(self.repeats))

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if self.axis is None:
            return (None if None in shape else self._count(int(numpy.prod(shape))),)
        axis = _axes(self.axis, len(shape), self._where())[0]
        return shape[:axis] + (None if shape[axis] is None else self._count(shape[axis]),) + shape[axis + 1:]

    def _indices(self, x):
        size = x.size if self.axis is None else x.shape[self.axis]
        return _xp(x).asarray(fn.repeat_indices(size, self.repeats))

    def forward_array(self, x):
        return fn.take_forward(x, self._indices(x), self.axis)

    def backward_function(self, dy, operands, y):
        x, = operands
        return fn.take_backward(dy, [x, self._indices(x)], y, self.axis)[:1]


class Pad(KerasOperation):
    """``pad(x, pad_width, mode="constant", constant_values=None)``: constant mode (None: zeros). Keras records
    ``constant_values`` as a keyword of the call, not in the config; so does gpu_dl."""

    config_keys = ("pad_width", "mode")
    keyword_arguments = ("constant_values",)

    def __init__(self, pad_width, mode="constant", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if mode != "constant":
            raise ValueError(f"{self._where()}: gpu_dl pads in 'constant' mode only, got mode={mode!r}.")
        self.pad_width = _nested_tuple(pad_width)
        self.mode = mode
        self.constant_values = None

    def get_config(self):
        return {"name": self.name, "pad_width": _nested_list(self.pad_width), "mode": self.mode}

    def apply(self, x, constant_values=None):
        if constant_values is not None and (isinstance(constant_values, bool) or
                                            not isinstance(constant_values, (int, float, numpy.number))):
            raise TypeError(f"{self._where()}: constant_values must be a number or None, got {constant_values!r:.80}.")
        self.constant_values = constant_values.item() if isinstance(constant_values, numpy.generic) else \
            constant_values
        return super().apply(x)

    def keras_keywords(self):
        return {"constant_values": self.constant_values}

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        try:
            widths = fn.pad_widths(self.pad_width, len(shape))
        except ValueError:
            raise ValueError(f"{self._where()}: pad_width {self.pad_width} does not fit a tensor of {len(shape)} "
                             "axes.") from None
        return tuple(None if n is None else n + a + b for n, (a, b) in zip(shape, widths))

    def forward_array(self, x):
        return fn.pad_forward(x, self.pad_width, self.constant_values)

    def backward_function(self, dy, operands, y):
        return fn.pad_backward(dy, operands, y, self.pad_width)


class BroadcastTo(KerasOperation):
    """``broadcast_to(x, shape)``: ``shape`` of known sizes, as Keras takes it."""

    config_keys = ("shape",)

    def __init__(self, shape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.shape = tuple(int(n) for n in shape)

    def output_shape_of(self, arguments, shapes):
        out = broadcast_shapes(tuple(shapes[0]), self.shape, self._where())
        if out != self.shape:
            raise ValueError(f"{self._where()}: a tensor of shape {tuple(shapes[0])} cannot be broadcast to "
                             f"{self.shape}.")
        return self.shape

    def forward_array(self, x):
        return _xp(x).broadcast_to(x, self.shape)

    def backward_function(self, dy, operands, y):
        return [dy]             # summed to the input's shape by the base


class Flip(KerasOperation):
    config_keys = ("axis",)

    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _axis_setting(axis)

    def output_shape_of(self, arguments, shapes):
        _axes(self.axis, len(shapes[0]), self._where())
        return tuple(shapes[0])

    def forward_array(self, x):
        return _xp(x).flip(x, axis=self.axis)

    def backward_function(self, dy, operands, y):
        return fn.flip_backward(dy, operands, y, self.axis)


class Roll(KerasOperation):
    """``roll(x, shift, axis=None)``: axis None rolls the flattened tensor."""

    config_keys = ("shift", "axis")

    def __init__(self, shift, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.shift = int(shift) if isinstance(shift, (int, numpy.integer)) else tuple(int(s) for s in shift)
        self.axis = _axis_setting(axis)

    def forward_array(self, x):
        return _xp(x).roll(x, self.shift, axis=self.axis)

    def backward_function(self, dy, operands, y):
        return fn.roll_backward(dy, operands, y, self.shift, self.axis)


class Slice(KerasOperation):
    """``slice(x, start_indices, shape)`` of ``keras.src.ops.core``: the start indices are the call's second
    argument (numbers), the shape is the config's; the result's shape is ``shape``, the batch axis included."""

    keras_module = CORE
    arity = 2
    config_keys = ("shape",)
    casts_inputs = False

    def __init__(self, shape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.shape = tuple(int(n) for n in shape)

    def accept_argument(self, position, value):
        if position == 1 and isinstance(value, (list, tuple)) and \
                all(isinstance(v, (int, numpy.integer)) and not isinstance(v, bool) for v in value):
            return tuple(int(v) for v in value)
        raise TypeError(f"{self._where()}: the tensor comes first, then the start indices (a tuple of numbers), got "
                        f"{value!r:.80} in position {position}.")

    @classmethod
    def decode_argument(cls, position, value, where):
        if position == 1 and isinstance(value, list) and all(isinstance(v, int) for v in value):
            return tuple(value)
        raise ValueError(f"{where}: Slice's start indices must be a list of numbers, got {value!r:.100}.")

    def same_arguments(self, arguments):
        return self.arguments == arguments

    def keras_arguments(self, tensors):
        return [tensors[0], self.arguments[1]]

    def result_dtype(self, tensors, arguments):
        return tensors[0].dtype

    def output_shape_of(self, arguments, shapes):
        shape, start = tuple(shapes[0]), arguments[1]
        if len(start) != len(shape) or len(self.shape) != len(shape):
            raise ValueError(f"{self._where()}: start indices {start} and shape {self.shape} must name each of the "
                             f"{len(shape)} axes of a tensor of shape {shape}.")
        for s, n, size in zip(start, self.shape, shape):
            if s < 0 or n < 0 or (size is not None and s + n > size):
                raise ValueError(f"{self._where()}: a slice of shape {self.shape} from {start} does not fit in a "
                                 f"tensor of shape {shape}.")
        return self.shape

    def operands(self, arrays):
        return [arrays[0]]

    def forward_function(self, x):
        if any(s + n > size for s, n, size in zip(self.arguments[1], self.shape, x.shape)):
            raise ValueError(f"{self._where()}: a slice of shape {self.shape} from {self.arguments[1]} does not fit in "
                             f"an array of shape {x.shape}.")
        return fn.slice_forward(x, self.arguments[1], self.shape)

    def backward(self, dy):
        operands, y = self.saved()
        if not _float(operands[0].dtype):
            return None
        return fn.slice_backward(dy, operands, y, self.arguments[1], self.shape)[0]


class Tril(KerasOperation):
    """``tril(x, k=0)``: the elements on and below the k-th diagonal of the last two axes, zeros above (``Triu``:
    on and above)."""

    config_keys = ("k",)
    lower = True

    def __init__(self, k=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = int(k)

    def output_shape_of(self, arguments, shapes):
        if len(shapes[0]) < 2:
            raise ValueError(f"{self._where()} takes a tensor of two axes or more, got shape {tuple(shapes[0])}.")
        return tuple(shapes[0])

    def forward_array(self, x):
        return (_xp(x).tril if self.lower else _xp(x).triu)(x, self.k)

    def backward_function(self, dy, operands, y):
        return fn.triangle_backward(dy, operands, y, self.k, self.lower)


class Triu(Tril):
    lower = False
