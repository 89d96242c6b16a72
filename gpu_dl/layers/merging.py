"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot, as Keras 3 has them,
and their functional forms (``layers.add([a, b])``, ``layers.concatenate([a, b], axis=1)``, ...).

A merge layer is called on a list of tensors and returns one. The element-wise
ones broadcast as Keras's do: shapes are compared without the batch axis,
aligned at their last axes (an input of lower rank gets axes of size 1 after
the batch axis), and a size of 1 stretches to the other's; any other
difference is a ValueError naming the layer and the shapes. Concatenate needs
the same shapes but along ``axis``. Masks of padded steps merge as in Keras:
the output keeps a step any input keeps (Concatenate: an input without a mask
keeps all its steps), and Maximum, Minimum and Multiply leave masked-out values
out of the result. Dot takes exactly two inputs, sums their product along one
axis of each, and passes no mask on. ``backward`` returns one gradient per
input, in order.
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from ..ops import merge as ops
from . import build_shapes
from .base import Layer
from . import masks as mask_rules
from .masks import from_arrays
from .symbolic import KerasTensor, any_symbolic


def _batchless(shape):
    return (None,) + tuple(shape[1:])


def _recorded(mask) -> bool:
    """Whether a symbolic mask is made by an operation of the graph, not a stand-in for a mask known on arrays."""
    history = getattr(mask, "_keras_history", None) if isinstance(mask, KerasTensor) else None
    return history is not None and not isinstance(history.operation, mask_rules.TensorMask)


class Merge(Layer):
    """The base of the merge layers: list checks, shapes, masks and the call on a list of arrays."""

    takes_input_list = True
    supports_masking = True
    exact_inputs = None      # Subtract: 2

    def _where(self):
        return f"{type(self).__name__} layer '{self.name}'"

    def _shape_list(self, input_shape):
        """``input_shape`` as a list of shape tuples, or a ValueError saying a merge layer takes a list."""
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"{self._where()}: a merge layer should be called on a list of at least one input "
                             f"tensor. Received: input_shape={input_shape} (not a list of shapes).")
        shapes = [tuple(s) for s in input_shape]
        if self.exact_inputs is not None and len(shapes) != self.exact_inputs:
            raise ValueError(f"{self._where()}: a `{type(self).__name__}` layer should be called on exactly "
                             f"{self.exact_inputs} inputs. Received: input_shape={shapes}")
        if any(len(s) < 1 for s in shapes):
            raise ValueError(f"{self._where()}: every input needs a batch axis. Received: input_shape={shapes}")
        batch_sizes = {s[0] for s in shapes} - {None}
        if len(batch_sizes) > 1:
            raise ValueError(f"{self._where()}: cannot merge tensors with different batch sizes. Received tensors "
                             f"with shapes {shapes}")
        return shapes

    def build(self, input_shape):
        shapes = self._shape_list(input_shape)
        self._merged_shape(shapes)
        if not self.built:
            self.built = True
            self.input_spec = [_batchless(s) for s in shapes]
            self.__dict__["_build_shapes"] = {"input_shape": shapes}     # for the build config, as Keras keeps it
    build._marks_built = True      # Layer's wrapper would record one input shape; a merge layer has several

    def ensure_built(self, input_shape):
        if self.built:
            self.build(input_shape)
            return
        # inside a traced call, the shapes Keras's build gets (its build config), the sizes taken as unknown
        self.build(input_shape)
        self.__dict__["_build_shapes"] = {"input_shape": build_shapes.with_stand_ins(self._shape_list(input_shape))}

    def check_input_shape(self, shape):
        self._merged_shape(self._shape_list(shape))

    def compute_output_shape(self, input_shape):
        return self._merged_shape(self._shape_list(input_shape))

    def _merged_shape(self, shapes):
        """The output shape of the element-wise merge: sizes aligned at the last axis, 1 stretching."""
        batch = next((s[0] for s in shapes if s[0] is not None), None)
        out = shapes[0][1:]
        for shape in shapes[1:]:
            rest = shape[1:]
            longer, shorter = (out, rest) if len(out) >= len(rest) else (rest, out)
            merged = list(longer[:len(longer) - len(shorter)])
            for i, j in zip(longer[len(longer) - len(shorter):], shorter):
                if i is None or j is None:
                    merged.append(None)
                elif i == 1 or j == 1:
                    merged.append(j if i == 1 else i)
                elif i != j:
                    raise ValueError(f"{self._where()}: inputs have incompatible shapes {shapes}: "
                                     f"{(None,) + tuple(out)} and {shape} do not broadcast (sizes {i} and {j}).")
                else:
                    merged.append(i)
            out = tuple(merged)
        return (batch,) + tuple(out)

    # ------------------------------------------------------------------ call
    def __call__(self, x, training=None, mask=None, initial_state=None):
        if any_symbolic(x, mask, initial_state):
            return self.symbolic_call(x, training=training, mask=mask, initial_state=initial_state)
        if initial_state is not None:
            raise TypeError(f"{self._where()} takes no initial_state.")
        if not isinstance(x, (list, tuple)):
            raise ValueError(f"{self._where()}: a merge layer should be called on a list of inputs. Received an "
                             f"input of type {type(x).__name__}"
                             f"{' and shape ' + str(tuple(x.shape)) if hasattr(x, 'shape') else ''}"
                             " (not a list of arrays).")
        xs = [self._as_input(v) for v in x]
        shapes = [tuple(v.shape) for v in xs]
        self.ensure_built(shapes)
        self.check_input_shape(shapes)
        given, dtype = xs[0].dtype, self._call_dtype()
        xs = [v if v.dtype == dtype else v.astype(dtype) for v in xs]
        masks = self._checked_masks(xs, mask)
        y = self._policy_call(given, self.call, xs, training=bool(training), masks=masks)
        self._activity_output = y if self.activity_regularizer is not None else None
        return y

    def _checked_masks(self, xs, mask):
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or len(mask) != len(xs):
            raise ValueError(f"{self._where()}: `mask` must be a list with one mask (or None) per input, "
                             f"{len(xs)} in all; got {mask!r:.200}.")
        if all(m is None for m in mask):
            return None
        checked = []
        for v, m in zip(xs, mask):
            if m is not None:
                m = array_module(v).asarray(m).astype(bool, copy=False)
                if m.ndim > v.ndim or tuple(m.shape) != tuple(v.shape[:m.ndim]):
                    raise ValueError(f"{self._where()}: a mask of shape {tuple(m.shape)} does not fit an input of "
                                     f"shape {tuple(v.shape)}.")
            checked.append(m)
        return checked

    @from_arrays
    def compute_mask(self, x, mask=None):
        """Keras's: the OR of the inputs' masks, or None unless every input has one."""
        if mask is None or any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = out | m
        return out

    def symbolic_compute_mask(self, x, mask, outputs):
        """The output's mask on symbolic tensors. Where every input's mask is made by operations of the graph
        (a Masking's ``any``, an Embedding's ``not_equal``), the element-wise merges OR them with
        ``ops.logical_or``, recording the operations Keras's graph has (``logical_or (LogicalOr)`` rows of a
        summary); otherwise, as for the other merges, arrays standing in for them tell its rank."""
        if type(self).compute_mask is Merge.compute_mask and isinstance(mask, (list, tuple)) and mask and \
                all(map(_recorded, mask)):
            from . import keras_ops     # the Keras ops sit on the layers' base; import late
            out = mask[0]
            for m in mask[1:]:
                out = keras_ops.logical_or(out, m)
            return out
        return mask_rules._from_stand_ins(self, x, mask, outputs)

    def call(self, xs, training=False, masks=None):
        raise NotImplementedError

    def get_config(self):
        return super().get_config()


class Add(Merge):
    """The element-wise sum of the inputs."""

    def call(self, xs, training=False, masks=None):
        self._saved = (xs,) if training else None
        return ops.sum_forward(xs)

    def backward(self, dy):
        (xs,) = self.saved()
        return ops.sum_backward(dy, xs)


class Average(Merge):
    """The element-wise mean of the inputs."""

    def call(self, xs, training=False, masks=None):
        self._saved = (xs,) if training else None
        y = ops.sum_forward(xs)
        return y / y.dtype.type(len(xs))

    def backward(self, dy):
        (xs,) = self.saved()
        return ops.sum_backward(dy, xs, scale=1.0 / len(xs))


class Subtract(Merge):
    """``inputs[0] - inputs[1]``: exactly two inputs."""

    exact_inputs = 2

    def call(self, xs, training=False, masks=None):
        self._saved = (xs,) if training else None
        return ops.difference_forward(xs)

    def backward(self, dy):
        (xs,) = self.saved()
        return ops.difference_backward(dy, xs)


class Multiply(Merge):
    """The element-wise product of the inputs."""

    def call(self, xs, training=False, masks=None):
        y, saved = ops.product_forward(xs, masks)
        self._saved = (xs, saved) if training else None
        return y

    def backward(self, dy):
        xs, saved = self.saved()
        return ops.product_backward(dy, xs, saved)


class Maximum(Merge):
    """The element-wise maximum of the inputs."""

    largest = True

    def call(self, xs, training=False, masks=None):
        y, source = ops.extreme_forward(xs, masks, largest=self.largest)
        self._saved = (xs, source) if training else None
        return y

    def backward(self, dy):
        xs, source = self.saved()
        return ops.extreme_backward(dy, xs, source)


class Minimum(Maximum):
    """The element-wise minimum of the inputs."""

    largest = False


class Concatenate(Merge):
    """The inputs joined along ``axis`` (default -1, the last); every other size must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"{self._where()}: axis must be an integer, got {axis!r}.")
        self.axis = int(axis)

    def _merged_shape(self, shapes):
        ranks = {len(s) for s in shapes}
        message = (f"{self._where()}: a `Concatenate` layer requires inputs with matching shapes except for the "
                   f"concatenation axis. Received: input_shape={shapes}")
        if len(ranks) != 1:
            raise ValueError(message)
        rank = ranks.pop()
        if not -rank <= self.axis < rank:
            raise ValueError(f"{self._where()}: axis {self.axis} is out of range for inputs of rank {rank} "
                             f"(shapes {shapes}).")
        axis = self.axis % rank
        out = []
        for a in range(rank):
            sizes = [s[a] for s in shapes]
            if a == axis:
                out.append(None if any(d is None for d in sizes) else sum(sizes))
                continue
            if len({d for d in sizes if d is not None}) > 1:
                raise ValueError(message)
            # Keras's: the first input's size, unknown where it is though another input knows it
            out.append(sizes[0])
        return tuple(out)

    def call(self, xs, training=False, masks=None):
        self._saved = (xs,) if training else None
        return ops.concatenate_forward(xs, self.axis)

    def backward(self, dy):
        (xs,) = self.saved()
        return ops.concatenate_backward(dy, xs, self.axis)

    @from_arrays
    def compute_mask(self, x, mask=None):
        if mask is None:
            return None
        return ops.concatenated_mask(x, mask, self.axis)

    def symbolic_compute_mask(self, x, mask, outputs):
        """The output's mask on symbolic tensors. Where the inputs' masks are made by operations of the graph (or
        absent), Keras's operations make it, recorded as Keras's graph has them (rows of a summary): per input
        ``ones_like`` (no mask), or ``expand_dims`` of its mask, ``zeros_like`` of the input and their
        ``logical_or`` (a mask one rank short of the input), then ``concatenate`` along ``axis`` and ``any`` over
        the last axis; their values are ``compute_mask``'s. Otherwise arrays standing in for them tell its rank."""
        if isinstance(mask, (list, tuple)) and isinstance(x, (list, tuple)) and len(mask) == len(x) and \
                any(m is not None for m in mask) and \
                all(m is None or (_recorded(m) and len(t.shape) - len(m.shape) in (0, 1)) for t, m in zip(x, mask)):
            from . import keras_ops     # the Keras ops sit on the layers' base; import late
            spread = []
            for t, m in zip(x, mask):
                if m is None:
                    spread.append(keras_ops.ones_like(t, dtype="bool"))
                elif len(m.shape) < len(t.shape):
                    spread.append(keras_ops.logical_or(keras_ops.expand_dims(m, axis=-1),
                                                       keras_ops.zeros_like(t, dtype="bool")))
                else:
                    spread.append(m)
            return keras_ops.any(keras_ops.concatenate(spread, axis=self.axis), axis=-1, keepdims=False)
        return mask_rules._from_stand_ins(self, x, mask, outputs)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _checked_axes(axes, where):
    """``Dot``'s ``axes`` as Keras takes them: one integer for both inputs, or a pair (a list or tuple of two)."""
    def integer(a):
        return isinstance(a, numbers.Integral) and not isinstance(a, bool)
    if integer(axes):
        return int(axes)
    if not isinstance(axes, (list, tuple)):
        raise TypeError(f"{where}: `axes` must be an integer or a list of two integers (one axis of each input), "
                        f"got {axes!r}.")
    if len(axes) != 2:
        raise ValueError(f"{where}: `axes` must hold two integers, one axis of each input, got {axes!r}.")
    if not all(integer(a) for a in axes):
        raise ValueError(f"{where}: the entries of `axes` must be integers, got {axes!r}.")
    return tuple(int(a) for a in axes)


class Dot(Merge):
    """The dot product of two inputs along one axis of each, per sample (Keras's ``batch_dot``).

    ``axes``: one integer for both inputs or a pair, negative counting from the last axis; never the batch axis.
    The output has the first input's other axes, then the second's (its batch axis left out), or is (batch, 1)
    when that leaves only the batch axis: ``Dot(axes=1)`` on two (batch, n) inputs gives each pair's inner
    product, on (batch, m, n) and (batch, m, p) the (batch, n, p) products ``x^T y``. ``normalize=True``
    scales each input to unit L2 norm along its axis first (Keras's ``ops.normalize``, the norm floored at
    1e-7), so the output is the cosine similarity. The inputs' masks are not passed on, as in Keras.
    A size a symbolic shape leaves unknown (None) is taken to match the other input's until arrays arrive.
    """

    exact_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        self.axes = _checked_axes(axes, self._where())
        if not isinstance(normalize, bool):
            raise TypeError(f"{self._where()}: `normalize` must be True or False, got {normalize!r}.")
        self.normalize = normalize

    def _resolved_axes(self, shapes):
        """The summed axis of each input, counted from 0: checked against the inputs' ranks."""
        given = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        resolved = []
        for axis, shape in zip(given, shapes):
            rank = len(shape)
            if rank < 2:
                raise ValueError(f"{self._where()}: each input needs a batch axis and at least one more; received "
                                 f"inputs of shapes {tuple(shapes[0])} and {tuple(shapes[1])}.")
            if not -rank <= axis < rank:
                raise ValueError(f"{self._where()}: axes={self.axes!r} is out of range for inputs of shapes "
                                 f"{tuple(shapes[0])} and {tuple(shapes[1])}.")
            if axis % rank == 0:
                raise ValueError(f"{self._where()}: axes={self.axes!r} names the batch axis (0) of inputs of shapes "
                                 f"{tuple(shapes[0])} and {tuple(shapes[1])}; the dot product is taken per sample. "
                                 "If your inputs are not batched, add a batch axis of size 1.")
            resolved.append(axis % rank)
        return tuple(resolved)

    def _merged_shape(self, shapes):
        first, second = shapes
        ax, ay = self._resolved_axes(shapes)
        if first[ax] is not None and second[ay] is not None and first[ax] != second[ay]:
            raise ValueError(f"{self._where()}: incompatible input shapes: axis values {first[ax]} (at axis {ax}) != "
                             f"{second[ay]} (at axis {ay}). Full input shapes: {first}, {second}")
        shape = first[:ax] + first[ax + 1:] + second[1:ay] + second[ay + 1:]
        return shape if len(shape) > 1 else shape + (1,)

    def call(self, xs, training=False, masks=None):
        x, y = xs
        axes = self._resolved_axes([x.shape, y.shape])
        scales = (None, None)
        if self.normalize:
            (x, x_scale), (y, y_scale) = ops.l2_normalize(x, axes[0]), ops.l2_normalize(y, axes[1])
            scales = (x_scale, y_scale)
        self._saved = (x, y, axes, scales) if training else None
        return ops.batch_dot(x, y, axes)

    def backward(self, dy):
        x, y, axes, scales = self.saved()
        grads = ops.batch_dot_backward(dy, x, y, axes)
        if self.normalize:
            # x and y are the normalised inputs here, which is what the normalisation's gradient takes.
            grads = tuple(ops.l2_normalize_backward(g, v, scale, axis)
                          for g, v, scale, axis in zip(grads, (x, y), scales, axes))
        return list(grads)

    @from_arrays
    def compute_mask(self, x, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


# ------------------------------------------------------------------ functional forms
def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """``Dot(axes=axes, normalize=normalize, **kwargs)(inputs)``; ``axes`` defaults to -1 as in Keras's ``dot``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
