"""The operations ``gpu_dl.ops`` records on symbolic tensors, as Keras 3 records its ``keras.ops``.

Each class is Keras's operation of the same name and module
(``keras.src.ops.numpy`` ``Mean``, ``keras.src.ops.nn`` ``Softmax``,
``keras.src.ops.core`` ``Cast``, ...), with Keras's constructor arguments as
its config (``{"name": "mean", "axis": 1, "keepdims": false}``), so a model
using them is saved as Keras saves it and Keras's files load here. They share
the arithmetic operations' base (``layers/operations.py``): one per use, no
weights, not among a model's layers, numbers and constant arrays allowed
among the arguments where Keras takes them. The maths is
``ops/numpy_functions.py``.

Dtypes follow Keras: the shape operations, ``sum``, ``max``, ``min``,
``square``, ``relu``, ``maximum``, ``minimum`` and ``clip`` keep an integer
input's dtype; ``mean``, ``sqrt``, ``exp``, ``log``, ``tanh``, ``sigmoid`` and
``softmax`` give floatx for integers (Keras's ``softmax`` keeps an integer
dtype there, which rounds every probability to 0 or 1; gpu_dl gives floats).
Integer tensors take no gradient.
"""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import numpy_functions as fn
from ..operations import Operation, broadcast_shapes
from ..symbolic import is_symbolic

NUMPY, NN, CORE = "keras.src.ops.numpy", "keras.src.ops.nn", "keras.src.ops.core"


def standardize_dtype(dtype):
    """A dtype as Keras names it: ``"float32"``, ``"int32"``, ``"bool"``, ... (Python's int and float: int32 and
    floatx, as Keras takes them)."""
    if dtype is int or dtype == "int":
        return "int32"
    if dtype is float or dtype == "float":
        return backend.floatx()
    if dtype is bool:
        return "bool"
    try:
        return numpy.dtype(getattr(dtype, "name", dtype)).name
    except TypeError:
        raise TypeError(f"{dtype!r} is not a dtype.") from None


def _float(dtype):
    return numpy.dtype(dtype).kind == "f"


def _axis_setting(axis):
    """An axis setting as Keras keeps it: None, an int, or a tuple of ints."""
    if axis is None or isinstance(axis, (int, numpy.integer)):
        return None if axis is None else int(axis)
    return tuple(int(a) for a in axis)


def _axes(axis, ndim, where):
    try:
        return fn.normalize_axes(axis, ndim)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _reduced_shape(shape, axes, keepdims):
    return tuple(1 if i in axes else n for i, n in enumerate(shape)) if keepdims else \
        tuple(n for i, n in enumerate(shape) if i not in axes)


class KerasOperation(Operation):
    """One tensor in, one tensor out, with settings; integer inputs take no gradient."""

    arity = 1
    keras_module = NUMPY
    keeps_integers = True       # an integer input keeps its dtype (else: floatx)

    def result_dtype(self, tensors, arguments):
        dtypes = [t.dtype for t in tensors]
        floats = [d for d in dtypes if _float(d)]
        if floats:
            return numpy.result_type(*floats).name
        return numpy.result_type(*dtypes).name if self.keeps_integers and dtypes else backend.floatx()

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0])

    def forward_function(self, x):
        return self.forward_array(x)

    def backward(self, dy):
        operands, _ = self.saved()
        if not any(_float(o.dtype) for o, a in zip(operands, self.arguments) if a is None):
            return None if sum(a is None for a in self.arguments) == 1 else [None] * sum(
                a is None for a in self.arguments)
        return super().backward(dy)


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


# ------------------------------------------------------------------ element-wise
def _unary(name, forward, backward, keeps_integers=False, module=NUMPY):
    def forward_array(self, x):
        return forward(x)

    def backward_function(self, dy, operands, y):
        return backward(dy, operands, y)
    return type(name, (KerasOperation,), {"forward_array": forward_array, "backward_function": backward_function,
                                          "keeps_integers": keeps_integers, "keras_module": module,
                                          "__module__": __name__,
                                          "__doc__": f"Keras's {module} {name}: element-wise, one tensor."})


def _xp(x):
    return backend.array_module(x)


Sqrt = _unary("Sqrt", lambda x: _xp(x).sqrt(x), fn.sqrt_backward)
Square = _unary("Square", lambda x: x * x, fn.square_backward, keeps_integers=True)
Exp = _unary("Exp", lambda x: _xp(x).exp(x), fn.exp_backward)
Log = _unary("Log", lambda x: _xp(x).log(x), fn.log_backward)
Tanh = _unary("Tanh", lambda x: _xp(x).tanh(x), fn.tanh_backward)
Sigmoid = _unary("Sigmoid", fn.sigmoid_forward, fn.sigmoid_backward, module=NN)
Relu = _unary("Relu", fn.relu_forward, fn.relu_backward, keeps_integers=True, module=NN)


class Softmax(KerasOperation):
    keras_module = NN
    keeps_integers = False
    config_keys = ("axis",)

    def __init__(self, axis=-1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _axis_setting(axis)

    def output_shape_of(self, arguments, shapes):
        _axes(self.axis, len(shapes[0]), self._where())
        return tuple(shapes[0])

    def forward_array(self, x):
        return fn.softmax_forward(x, self.axis)

    def backward_function(self, dy, operands, y):
        return fn.softmax_backward(dy, operands, y, self.axis)


class Maximum(KerasOperation):
    """``maximum(x1, x2)``: tensors, numbers or arrays on either side, broadcast as NumPy does."""

    arity = 2
    largest = True

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments, shapes)

    def forward_function(self, a, b):
        return (_xp(a).maximum if self.largest else _xp(a).minimum)(a, b)

    def backward_function(self, dy, operands, y):
        return fn.pick_backward(dy, operands, y, self.largest)


class Minimum(Maximum):
    largest = False


class Clip(KerasOperation):
    config_keys = ("x_min", "x_max")

    def __init__(self, x_min, x_max, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        for bound in (x_min, x_max):
            if not isinstance(bound, (int, float, numpy.integer, numpy.floating)) or isinstance(bound, bool):
                raise TypeError(f"Clip takes numbers as bounds, got {bound!r:.80} of type {type(bound).__name__}.")
        self.x_min = x_min.item() if isinstance(x_min, numpy.generic) else x_min
        self.x_max = x_max.item() if isinstance(x_max, numpy.generic) else x_max

    def forward_array(self, x):
        return fn.clip_forward(x, self.x_min, self.x_max)

    def backward_function(self, dy, operands, y):
        return fn.clip_backward(dy, operands, y, self.x_min, self.x_max)


# ------------------------------------------------------------------ dtypes and constants of a tensor's shape
class Cast(KerasOperation):
    keras_module = CORE
    config_keys = ("dtype",)
    casts_inputs = False

    def __init__(self, dtype, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target = standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.target}

    def result_dtype(self, tensors, arguments):
        return self.target

    def forward_array(self, x):
        return x.astype(self.target)

    def backward_function(self, dy, operands, y):
        x, = operands
        return [dy.astype(x.dtype) if _float(x.dtype) and _float(self.target) else None]


class ZerosLike(KerasOperation):
    """A tensor of ``x``'s shape filled with zeros (``OnesLike``: ones); of ``dtype``, or ``x``'s. No gradient."""

    config_keys = ("dtype",)
    casts_inputs = False
    fill = 0

    def __init__(self, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.target}

    def result_dtype(self, tensors, arguments):
        return self.target or tensors[0].dtype

    def forward_array(self, x):
        return _xp(x).full(x.shape, self.fill, dtype=self.target or x.dtype)

    def backward_function(self, dy, operands, y):
        return [None]


class OnesLike(ZerosLike):
    fill = 1


class TracedConstant(KerasOperation):
    """An array a layer was called on while a composite layer's call was traced (``ops.arange(maxlen)`` fed to
    an ``Embedding``): an operation of the traced graph whose output is the array, so the layers it feeds are
    calls of the graph and train. It reads the traced call's first input only to belong to the graph (no
    gradient goes back). Graphs of traced calls are not saved, so Keras has no such class."""

    casts_inputs = False
    keras_module = None

    def __init__(self, value=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = numpy.array(backend.to_numpy(value), copy=True)

    def result_dtype(self, tensors, arguments):
        return self.value.dtype.name

    def output_shape_of(self, arguments, shapes):
        return self.value.shape

    def forward_function(self, anchor):
        key = _xp(anchor).__name__
        if key not in self._on_device:
            self._on_device[key] = _xp(anchor).asarray(self.value)
        return self._on_device[key]

    def backward_function(self, dy, operands, y):
        return [None]


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
            out.append(known.pop() if known else None)
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


# ------------------------------------------------------------------ products and selection
class Einsum(KerasOperation):
    """``einsum(subscripts, *operands)``: tensors (or constant arrays) named by distinct letters (no ``...``, no
    repeated letter within an operand, on symbolic tensors)."""

    config_keys = ("subscripts",)
    arity = None
    keeps_integers = False

    def __init__(self, subscripts, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.subscripts = str(subscripts)

    def output_shape_of(self, arguments, shapes):
        try:
            inputs, output = fn.parse_subscripts(self.subscripts, len(arguments))
        except ValueError as e:
            raise ValueError(f"{self._where()}: {e}") from None
        given = iter(shapes)
        sizes = {}
        for term, a in zip(inputs, arguments):
            shape = tuple(next(given) if a is None else a.shape)
            if len(shape) != len(term):
                raise ValueError(f"{self._where()}: {term!r} names {len(term)} axes of an operand of shape {shape}.")
            for letter, n in zip(term, shape):
                sizes.setdefault(letter, []).append(n)
        out = []
        for letter in output:
            known = {n for n in sizes[letter] if n is not None}
            if len(known - {1}) > 1:
                raise ValueError(f"{self._where()}: the letter {letter!r} stands for the sizes {sorted(known)}.")
            out.append((known - {1}).pop() if known - {1} else (None if None in sizes[letter] else 1))
        return tuple(out)

    def forward_function(self, *operands):
        return _xp(operands[0]).einsum(self.subscripts, *operands)

    def backward_function(self, dy, operands, y):
        return fn.einsum_backward(dy, operands, y, self.subscripts)


class Where(KerasOperation):
    """``where(condition, x1, x2)``: the condition a tensor or array (non-zero: True), x1 and x2 tensors, numbers
    or arrays; the gradient goes to x1 where the condition holds, to x2 elsewhere."""

    arity = 3

    def result_dtype(self, tensors, arguments):
        positions = [i for i, a in enumerate(arguments) if a is None]
        values = [t.dtype for i, t in zip(positions, tensors) if i > 0]
        floats = [d for d in values if _float(d)]
        if floats:
            return numpy.result_type(*floats).name
        return numpy.result_type(*values).name if values else backend.floatx()

    def operands(self, arrays):
        given = iter(arrays)
        operands = []
        xp = backend.array_module(*arrays)
        for position, a in enumerate(self.arguments):
            if a is None:
                value = next(given)
            elif isinstance(a, numpy.ndarray):
                value = xp.asarray(a)
            else:
                value = a
            if position == 0:
                value = value.astype(bool) if hasattr(value, "astype") else bool(value)
            elif hasattr(value, "astype"):
                value = value.astype(self.dtype, copy=False)
            else:
                value = numpy.dtype(self.dtype).type(value)
            operands.append(value)
        return operands

    casts_inputs = False

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments, shapes)

    def forward_function(self, condition, a, b):
        return _xp(a if hasattr(a, "shape") else b).where(condition, a, b)

    def backward_function(self, dy, operands, y):
        return fn.where_backward(dy, operands, y)


class Take(KerasOperation):
    """``take(x, indices, axis=None)``: indices a constant integer array (or an integer tensor)."""

    arity = 2
    config_keys = ("axis",)
    casts_inputs = False

    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = None if axis is None else int(axis)

    def accept_argument(self, position, value):
        if position == 1 and isinstance(value, (int, numpy.integer)) and not isinstance(value, bool):
            value = numpy.asarray(value)
        value = super().accept_argument(position, value)
        if position == 0 or not isinstance(value, numpy.ndarray) or value.dtype.kind not in "iu":
            raise TypeError(f"{self._where()}: the tensor comes first, then integer indices (an array or an integer "
                            f"tensor), got {value!r:.80} in position {position}.")
        return value

    def result_dtype(self, tensors, arguments):
        return tensors[0].dtype

    def _index_shape(self, arguments, shapes):
        given = iter(shapes)
        x_shape = tuple(next(given)) if arguments[0] is None else arguments[0].shape
        i_shape = tuple(next(given)) if arguments[1] is None else arguments[1].shape
        return x_shape, i_shape

    def output_shape_of(self, arguments, shapes):
        x_shape, i_shape = self._index_shape(arguments, shapes)
        if self.axis is None:
            return i_shape
        axis = _axes(self.axis, len(x_shape), self._where())[0]
        return x_shape[:axis] + i_shape + x_shape[axis + 1:]

    def operands(self, arrays):
        x = arrays[0]
        xp = backend.array_module(x)
        indices = arrays[1] if self.arguments[1] is None else self._constant(xp)
        return [x, indices.astype("int64", copy=False)]

    def _constant(self, xp):
        key = xp.__name__
        if key not in self._on_device:
            self._on_device[key] = xp.asarray(self.arguments[1])
        return self._on_device[key]

    def forward_function(self, x, indices):
        return fn.take_forward(x, indices, self.axis)

    def backward_function(self, dy, operands, y):
        return fn.take_backward(dy, operands, y, self.axis)

    def backward(self, dy):
        operands, y = self.saved()
        if not _float(operands[0].dtype):
            return None if self.arguments[1] is not None else [None, None]
        g = self.backward_function(dy, operands, y)
        return g[0] if self.arguments[1] is not None else g


class TakeAlongAxis(Take):
    def output_shape_of(self, arguments, shapes):
        x_shape, i_shape = self._index_shape(arguments, shapes)
        if self.axis is None:
            return i_shape if len(i_shape) == 1 else (None if None in i_shape else int(numpy.prod(i_shape)),)
        if len(x_shape) != len(i_shape):
            raise ValueError(f"{self._where()}: x and indices must have the same number of axes, got shapes "
                             f"{x_shape} and {i_shape}.")
        axis = _axes(self.axis, len(x_shape), self._where())[0]
        rest = broadcast_shapes(x_shape[:axis] + x_shape[axis + 1:], i_shape[:axis] + i_shape[axis + 1:],
                                self._where())
        return rest[:axis] + (i_shape[axis],) + rest[axis:]

    def forward_function(self, x, indices):
        return fn.take_along_axis_forward(x, indices, self.axis)

    def backward_function(self, dy, operands, y):
        from ...ops.arithmetic import reduce_to_shape
        gx, gi = fn.take_along_axis_backward(dy, operands, y, self.axis)
        return [reduce_to_shape(gx, operands[0].shape), gi]


# Keras's class names of these operations, for models read back from a config.
OPERATIONS = {cls.__name__: cls for cls in (
    Mean, Sum, Max, Min, Sqrt, Square, Exp, Log, Tanh, Sigmoid, Relu, Softmax, Maximum, Minimum, Clip, Cast,
    ZerosLike, OnesLike, Reshape, Transpose, ExpandDims, Squeeze, Concatenate, Stack, Einsum, Where, Take,
    TakeAlongAxis)}
