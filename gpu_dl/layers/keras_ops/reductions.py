"""Reductions and statistics along axes: ``mean``, ``sum``, ``max``, ``min``, ``logsumexp``, ``var``, ``std``,
``prod``, ``norm``, ``cumsum``, ``argmax``/``argmin`` (no gradient), ``moments`` and ``normalize``."""
from __future__ import annotations

import numpy

from ...ops import numpy_functions as fn
from .base import (LINALG, MATH, NN, KerasOperation, WithoutGradient, _axes, _axis_setting, _float, _reduced_shape,
                   _several_outputs, _xp, standardize_dtype)


# ------------------------------------------------------------------ reductions
class Reduction(KerasOperation):
    config_keys = ("axis", "keepdims")

    def __init__(self, axis=None, keepdims=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis, self.keepdims = _axis_setting(axis), bool(keepdims)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        return _reduced_shape(shape, _axes(self.axis, len(shape), self._where()), self.keepdims)


class Mean(Reduction):
    keeps_integers = False

    def forward_array(self, x):
        return fn.mean_forward(x, self.axis, self.keepdims)

    def backward_function(self, dy, operands, y):
        return fn.mean_backward(dy, operands, y, self.axis, self.keepdims)


class Sum(Reduction):
    def forward_array(self, x):
        return fn.sum_forward(x, self.axis, self.keepdims)

    def backward_function(self, dy, operands, y):
        return fn.sum_backward(dy, operands, y, self.axis, self.keepdims)


class Max(Reduction):
    config_keys = ("axis", "keepdims", "initial")
    largest = True

    def __init__(self, axis=None, keepdims=False, initial=None, name=None, **kwargs):
        super().__init__(axis=axis, keepdims=keepdims, name=name, **kwargs)
        self.initial = initial

    def forward_array(self, x):
        return fn.extreme_forward(x, self.axis, self.keepdims, self.initial, self.largest)

    def backward_function(self, dy, operands, y):
        return fn.extreme_backward(dy, operands, y, self.axis, self.keepdims, self.initial, self.largest)


class Min(Max):
    largest = False


# ------------------------------------------------------------------ reductions and statistics
class Logsumexp(Reduction):
    keras_module = MATH
    keeps_integers = False

    def forward_array(self, x):
        return fn.logsumexp_forward(x, self.axis, self.keepdims)

    def backward_function(self, dy, operands, y):
        return fn.logsumexp_backward(dy, operands, y, self.axis, self.keepdims)


class Var(Reduction):
    keeps_integers = False

    def forward_array(self, x):
        return fn.var_forward(x, self.axis, self.keepdims)

    def backward_function(self, dy, operands, y):
        return fn.var_backward(dy, operands, y, self.axis, self.keepdims)


class Std(Var):
    def forward_array(self, x):
        return fn.std_forward(x, self.axis, self.keepdims)

    def backward_function(self, dy, operands, y):
        return fn.std_backward(dy, operands, y, self.axis, self.keepdims)


class Prod(Reduction):
    """``prod(x, axis=None, keepdims=False, dtype=None)``: integers stay integers, as in Keras."""

    config_keys = ("axis", "keepdims", "dtype")
    casts_inputs = False

    def __init__(self, axis=None, keepdims=False, dtype=None, name=None, **kwargs):
        super().__init__(axis=axis, keepdims=keepdims, name=name, **kwargs)
        self.target = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis,
                "keepdims": self.keepdims, "dtype": self.target}

    def result_dtype(self, tensors, arguments):
        return self.target or super().result_dtype(tensors, arguments)

    def forward_array(self, x):
        return fn.prod_forward(x.astype(self.target or x.dtype, copy=False), self.axis, self.keepdims)

    def backward_function(self, dy, operands, y):
        return fn.prod_backward(dy, operands, y, self.axis, self.keepdims)


class Norm(Reduction):
    """``norm(x, ord=None, axis=None, keepdims=False)`` of ``keras.src.ops.linalg``: the 2-norm of a vector (ord
    None or 2, one axis), the Frobenius norm (ord None or "fro", two axes, or axis None: all elements). Other
    orders are refused."""

    keras_module = LINALG
    keeps_integers = False
    config_keys = ("ord", "axis", "keepdims")

    def __init__(self, ord=None, axis=None, keepdims=False, name=None, **kwargs):
        super().__init__(axis=axis, keepdims=keepdims, name=name, **kwargs)
        axes = 1 if isinstance(self.axis, int) else (None if self.axis is None else len(self.axis))
        if axes not in (None, 1, 2) or not (ord is None or (ord == 2 and axes == 1) or (ord == "fro" and axes != 1)):
            raise ValueError(f"{self._where()}: gpu_dl takes the 2-norm of vectors (ord None or 2, one axis) and the "
                             f"Frobenius norm (ord None or 'fro', two axes or all), got ord={ord!r}, axis={axis!r}.")
        self.ord = ord

    def forward_array(self, x):
        return fn.norm_forward(x, self.ord, self.axis, self.keepdims)

    def backward_function(self, dy, operands, y):
        return fn.norm_backward(dy, operands, y, self.ord, self.axis, self.keepdims)


class Cumulative(KerasOperation):
    """A running sum or product ``(x, axis=None, dtype=None)``: axis None runs over the flattened tensor."""

    config_keys = ("axis", "dtype")
    casts_inputs = False

    def __init__(self, axis=None, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = None if axis is None else int(axis)
        self.target = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "axis": self.axis, "dtype": self.target}

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if self.axis is None:
            return (None if None in shape else int(numpy.prod(shape)),)
        _axes(self.axis, len(shape), self._where())
        return shape


class Cumsum(Cumulative):
    """``cumsum(x, axis=None, dtype=None)``: axis None runs over the flattened tensor."""

    def result_dtype(self, tensors, arguments):
        return self.target or super().result_dtype(tensors, arguments)

    def forward_array(self, x):
        return fn.cumsum_forward(x.astype(self.target or x.dtype, copy=False), self.axis)

    def backward_function(self, dy, operands, y):
        return fn.cumsum_backward(dy, operands, y, self.axis)


class Arg(WithoutGradient, Reduction):
    """``argmax(x, axis=None, keepdims=False)`` (``Argmin``): int32 indices, the first of ties; no gradient (Keras's
    integer outputs have none)."""

    fixed_dtype = "int32"
    casts_inputs = False
    largest = True

    def __init__(self, axis=None, keepdims=False, name=None, **kwargs):
        super().__init__(axis=axis, keepdims=keepdims, name=name, **kwargs)
        if self.axis is not None and not isinstance(self.axis, int):
            raise ValueError(f"{self._where()} takes one axis or None, got {axis!r}.")

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if self.axis is None:
            return (1,) * len(shape) if self.keepdims else ()
        return super().output_shape_of(arguments, shapes)

    def forward_array(self, x):
        xp = _xp(x)
        y = (xp.argmax if self.largest else xp.argmin)(x, axis=self.axis)
        if self.keepdims:
            y = y.reshape((1,) * x.ndim) if self.axis is None else xp.expand_dims(y, self.axis)
        return y.astype("int32")


class Argmax(Arg):
    pass


class Argmin(Arg):
    largest = False


class Moments(KerasOperation):
    """``moments(x, axes, keepdims=False, synchronized=False)`` of ``keras.src.ops.nn``: two outputs, the mean and
    the (population) variance over ``axes``."""

    keras_module = NN
    keeps_integers = False
    config_keys = ("axes", "keepdims", "synchronized")

    def __init__(self, axes, keepdims=False, synchronized=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axes = [int(a) for a in ((axes,) if isinstance(axes, (int, numpy.integer)) else axes)]
        self.keepdims, self.synchronized = bool(keepdims), bool(synchronized)

    def apply(self, x):
        return _several_outputs(self, x, 2)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        reduced = _reduced_shape(shape, _axes(self.axes, len(shape), self._where()), self.keepdims)
        return [reduced, reduced]

    def forward_array(self, x):
        axes = fn.normalize_axes(self.axes, x.ndim)
        return [x.mean(axis=axes, keepdims=self.keepdims), x.var(axis=axes, keepdims=self.keepdims)]

    def backward(self, dy):
        operands, y = self.saved()
        if not _float(operands[0].dtype):
            return None
        return fn.moments_backward(dy, operands, y, self.axes, self.keepdims)[0]


class Normalize(KerasOperation):
    """``normalize(x, axis=-1, order=2, epsilon=None)`` of ``keras.src.ops.nn``: x * min(1 / ||x||, 1 / epsilon)
    over ``axis`` (epsilon None: 1e-7, Keras's). Order 2 only."""

    keras_module = NN
    keeps_integers = False
    config_keys = ("axis", "order", "epsilon")

    def __init__(self, axis=-1, order=2, epsilon=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if order != 2:
            raise ValueError(f"{self._where()}: gpu_dl normalizes with order 2 (the L2 norm), got order={order!r}.")
        self.axis, self.order, self.epsilon = int(axis), int(order), epsilon

    def output_shape_of(self, arguments, shapes):
        _axes(self.axis, len(shapes[0]), self._where())
        return tuple(shapes[0])

    def _epsilon(self):
        return 1e-7 if self.epsilon is None else float(self.epsilon)       # Keras's backend.epsilon()

    def forward_array(self, x):
        return fn.l2_normalize_forward(x, self.axis, self._epsilon())

    def backward_function(self, dy, operands, y):
        return fn.l2_normalize_backward(dy, operands, y, self.axis, self._epsilon())
