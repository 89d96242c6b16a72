"""Keras's ``keras.ops.nn`` cross-entropies (``BinaryCrossentropy``, ``CategoricalCrossentropy``,
``SparseCategoricalCrossentropy``) and ``PSNR``, with Keras's classes, modules and configs, each with a forward
and an exact backward.
"""
from __future__ import annotations

import math
import numbers

from .base import _xp
from .nn_base import NNOperation

__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "PSNR", "OPERATIONS"]


_EPSILON = 1e-7       # Keras's backend.epsilon(), which its losses clip probabilities with


class BinaryCrossentropy(NNOperation):
    """``binary_crossentropy(target, output, from_logits=False)``: element-wise; probabilities clipped to
    [1e-7, 1 - 1e-7] as Keras clips them (no gradient outside). Gradients to both tensors."""

    positional = ("target", "output")
    required = 2
    config_keys = ("from_logits",)

    def __init__(self, from_logits=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = bool(from_logits)

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        t, o = given["target"], given["output"]
        if len(t) != len(o) or any(a is not None and b is not None and a != b for a, b in zip(t, o)):
            raise ValueError(f"{self._where()}: `target` and `output` must have the same shape, got {t} and {o}.")
        return tuple(b if a is None else a for a, b in zip(t, o))

    def forward_function(self, target, output):
        xp = _xp(output)
        if self.from_logits:
            return xp.maximum(output, 0) - output * target + xp.log1p(xp.exp(-xp.abs(output)))
        p = xp.clip(output, _EPSILON, 1 - _EPSILON)
        return -(target * xp.log(p) + (1 - target) * xp.log1p(-p))

    def backward_function(self, dy, operands, y):
        target, output = operands
        xp = _xp(output)
        if self.from_logits:
            sig = 1 / (1 + xp.exp(-output))
            return [-dy * output, dy * (sig - target)]
        p = xp.clip(output, _EPSILON, 1 - _EPSILON)
        inside = (output >= _EPSILON) & (output <= 1 - _EPSILON)
        return [-dy * (xp.log(p) - xp.log1p(-p)), dy * inside * ((1 - target) / (1 - p) - target / p)]


def _softmax(xp, x, axis):
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_probabilities(xp, output, axis, from_logits):
    """log q along ``axis``: the log_softmax of logits, or the log of the probabilities normalised to sum 1 and
    clipped to [1e-7, 1 - 1e-7]."""
    if from_logits:
        shifted = output - output.max(axis=axis, keepdims=True)
        logq = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return logq
    total = output.sum(axis=axis, keepdims=True)
    return xp.log(xp.clip(output / total, _EPSILON, 1 - _EPSILON))


def _output_gradient(xp, output, axis, from_logits, dlogq):
    """d/d output from d/d log q."""
    if from_logits:
        return dlogq - _softmax(xp, output, axis) * dlogq.sum(axis=axis, keepdims=True)
    total = output.sum(axis=axis, keepdims=True)
    p = output / total
    inside = (p >= _EPSILON) & (p <= 1 - _EPSILON)
    dp = dlogq * inside / xp.clip(p, _EPSILON, 1 - _EPSILON)
    return (dp - (dp * p).sum(axis=axis, keepdims=True)) / total


class CategoricalCrossentropy(BinaryCrossentropy):
    """``categorical_crossentropy(target, output, from_logits=False, axis=-1)``: ``-sum(target * log q)`` over
    ``axis``, q the softmax of logits or the probabilities normalised to sum 1 and clipped to [1e-7, 1 - 1e-7].
    Gradients to both tensors."""

    config_keys = ("from_logits", "axis")

    def __init__(self, from_logits=False, axis=-1, name=None, **kwargs):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        self.axis = int(axis)

    def output_shape_of(self, arguments, shapes):
        shape = super().output_shape_of(arguments, shapes)
        if not shape or not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"{self._where()}: `axis` {self.axis} is out of range for tensors of shape {shape}.")
        return shape[:self.axis % len(shape)] + shape[self.axis % len(shape) + 1:]

    def forward_function(self, target, output):
        xp = _xp(output)
        return -(target * _log_probabilities(xp, output, self.axis, self.from_logits)).sum(axis=self.axis)

    def backward_function(self, dy, operands, y):
        target, output = operands
        xp = _xp(output)
        dy = xp.expand_dims(dy, self.axis)
        logq = _log_probabilities(xp, output, self.axis, self.from_logits)
        return [-dy * logq, _output_gradient(xp, output, self.axis, self.from_logits, -dy * target)]


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """``sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1)``: integer class ids (of
    the output's shape without ``axis``, or with a size-1 ``axis``); ``-log q`` of each id's class. Ids outside
    [0, classes) are refused on arrays. The gradient goes to the output only."""

    dtype_from = "output"

    def integer_operand(self, position):
        return position == 0

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        t, o = given["target"], given["output"]
        if not o or not -len(o) <= self.axis < len(o):
            raise ValueError(f"{self._where()}: `axis` {self.axis} is out of range for an output of shape {o}.")
        axis = self.axis % len(o)
        reduced = o[:axis] + o[axis + 1:]
        if len(t) == len(o) and t[axis] == 1:
            t = t[:axis] + t[axis + 1:]
        if len(t) != len(reduced) or any(a is not None and b is not None and a != b for a, b in zip(t, reduced)):
            raise ValueError(f"{self._where()}: `target` {given['target']} must have the shape of `output` {o} "
                             f"without axis {self.axis}.")
        return tuple(b if b is not None else a for a, b in zip(t, reduced))

    def _ids(self, target, output):
        xp = _xp(output)
        axis = self.axis % output.ndim
        if target.ndim == output.ndim:
            target = target.squeeze(axis)
        target = target.astype("int64")
        if bool(((target < 0) | (target >= output.shape[axis])).any()):
            raise ValueError(f"{self._where()}: class ids must lie in [0, {output.shape[axis]}).")
        return xp.expand_dims(target, axis), axis

    def forward_function(self, target, output):
        xp = _xp(output)
        ids, axis = self._ids(target, output)
        logq = _log_probabilities(xp, output, axis, self.from_logits)
        return -xp.take_along_axis(logq, ids, axis=axis).squeeze(axis)

    def backward_function(self, dy, operands, y):
        target, output = operands
        xp = _xp(output)
        ids, axis = self._ids(target, output)
        onehot = (ids == xp.arange(output.shape[axis]).reshape((-1,) + (1,) * (output.ndim - axis - 1)))
        dlogq = -xp.expand_dims(dy, axis) * onehot
        return [None, _output_gradient(xp, output, axis, self.from_logits, dlogq)]


class PSNR(NNOperation):
    """``psnr(x1, x2, max_val)``: ``20 log10(max_val) - 10 log10(mean((x1 - x2) ** 2))`` over every element,
    a scalar. Gradients to both tensors."""

    positional = ("x1", "x2")
    required = 2
    config_keys = ("max_val",)

    def __init__(self, max_val, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(max_val, bool) or not isinstance(max_val, numbers.Real):
            raise TypeError(f"{self._where()}: `max_val` must be a number, got {max_val!r:.80}.")
        self.max_val = max_val.item() if hasattr(max_val, "item") else max_val

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        if len(given["x1"]) != len(given["x2"]) or any(
                a is not None and b is not None and a != b for a, b in zip(given["x1"], given["x2"])):
            raise ValueError(f"{self._where()}: x1 {given['x1']} and x2 {given['x2']} must have the same shape.")
        return ()

    def forward_function(self, x1, x2):
        xp = _xp(x1)
        if x1.shape != x2.shape:
            raise ValueError(f"{self._where()}: x1 {x1.shape} and x2 {x2.shape} must have the same shape.")
        mse = ((x1 - x2) ** 2).mean()
        dtype = x1.dtype.type
        return xp.asarray(dtype(20) * xp.log10(dtype(self.max_val)) - dtype(10) * xp.log10(mse))

    def backward_function(self, dy, operands, y):
        x1, x2 = operands
        diff = x1 - x2
        mse = (diff ** 2).mean()
        g = dy * (-10 / math.log(10)) * 2 * diff / (mse * diff.size)
        return [g, -g]


OPERATIONS = {cls.__name__: cls for cls in (BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    PSNR)}
