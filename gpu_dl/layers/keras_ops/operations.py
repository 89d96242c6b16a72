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
Integer tensors take no gradient. ``argmax`` and ``argmin`` give int32, the
comparisons, logical operations, ``any`` and ``all`` bool; none of them, nor
``one_hot`` and ``full_like``, sends a gradient back. ``split`` and
``moments`` are operations of several outputs, as in Keras.
"""
from __future__ import annotations

import numpy

from ... import backend
from ...ops import numpy_functions as fn
from ..operations import Operation, broadcast_shapes
from ..symbolic import is_symbolic

NUMPY, NN, CORE = "keras.src.ops.numpy", "keras.src.ops.nn", "keras.src.ops.core"
MATH, LINALG = "keras.src.ops.math", "keras.src.ops.linalg"


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


# ------------------------------------------------------------------ element-wise: trigonometry and activations
Sin = _unary("Sin", lambda x: _xp(x).sin(x), fn.sin_backward)
Cos = _unary("Cos", lambda x: _xp(x).cos(x), fn.cos_backward)
Erf = _unary("Erf", fn.erf_forward, fn.erf_backward, module=MATH)
Silu = _unary("Silu", lambda x: fn.elementwise.silu_forward(x), fn.silu_backward, module=NN)
Softplus = _unary("Softplus", lambda x: fn.elementwise.softplus_forward(x), fn.softplus_backward, module=NN)


class Gelu(KerasOperation):
    """``gelu(x, approximate=True)``: Keras's tanh form by default, the erf form with ``approximate=False``."""

    keras_module = NN
    keeps_integers = False
    config_keys = ("approximate",)

    def __init__(self, approximate=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.approximate = bool(approximate)

    def forward_array(self, x):
        return fn.elementwise.gelu_forward(x, approximate=self.approximate)

    def backward_function(self, dy, operands, y):
        return fn.gelu_backward(dy, operands, y, self.approximate)


class LogSoftmax(Softmax):
    def forward_array(self, x):
        return fn.log_softmax_forward(x, self.axis)

    def backward_function(self, dy, operands, y):
        return fn.log_softmax_backward(dy, operands, y, self.axis)


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


class Cumsum(KerasOperation):
    """``cumsum(x, axis=None, dtype=None)``: axis None runs over the flattened tensor."""

    config_keys = ("axis", "dtype")
    casts_inputs = False

    def __init__(self, axis=None, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = None if axis is None else int(axis)
        self.target = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "axis": self.axis, "dtype": self.target}

    def result_dtype(self, tensors, arguments):
        return self.target or super().result_dtype(tensors, arguments)

    def output_shape_of(self, arguments, shapes):
        shape = tuple(shapes[0])
        if self.axis is None:
            return (None if None in shape else int(numpy.prod(shape)),)
        _axes(self.axis, len(shape), self._where())
        return shape

    def forward_array(self, x):
        return fn.cumsum_forward(x.astype(self.target or x.dtype, copy=False), self.axis)

    def backward_function(self, dy, operands, y):
        return fn.cumsum_backward(dy, operands, y, self.axis)


class Arg(Reduction):
    """``argmax(x, axis=None, keepdims=False)`` (``Argmin``): int32 indices, the first of ties; no gradient (Keras's
    integer outputs have none)."""

    casts_inputs = False
    largest = True

    def __init__(self, axis=None, keepdims=False, name=None, **kwargs):
        super().__init__(axis=axis, keepdims=keepdims, name=name, **kwargs)
        if self.axis is not None and not isinstance(self.axis, int):
            raise ValueError(f"{self._where()} takes one axis or None, got {axis!r}.")

    def result_dtype(self, tensors, arguments):
        return "int32"

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

    def backward_function(self, dy, operands, y):
        return [None]


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


def _several_outputs(op, x, count):
    """The symbolic call of an operation of ``count`` outputs (split, moments): its tensors, as a list."""
    from ..symbolic import KerasTensor, Node
    if not is_symbolic(x):
        raise TypeError(f"{op._where()} takes a symbolic tensor, got {x!r:.80}.")
    if op.arguments is not None:
        raise ValueError(f"{op._where()} was called already; a later call needs an operation of its own.")
    shapes = op.output_shape_of([None], [x.shape])
    op.arguments = [None]
    op.dtype = op.result_dtype([x], [None])
    op.built = True
    outputs = [KerasTensor(shape, dtype=op.dtype) for shape in shapes]
    Node(op, args=(x,), outputs=outputs)
    return outputs


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


def _nested_tuple(value):
    return tuple(_nested_tuple(v) for v in value) if isinstance(value, (list, tuple)) else int(value)


def _nested_list(value):
    return [_nested_list(v) for v in value] if isinstance(value, tuple) else value


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


class OneHot(KerasOperation):
    """``one_hot(x, num_classes, axis=-1, dtype=None, sparse=False)`` of ``keras.src.ops.nn``: integer classes in,
    a new axis of ``num_classes`` (1 at the class, 0 elsewhere, all 0 for a class out of range) out, floatx by
    default. No gradient."""

    keras_module = NN
    config_keys = ("num_classes", "axis", "dtype", "sparse")
    casts_inputs = False

    def __init__(self, num_classes, axis=-1, dtype=None, sparse=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if sparse:
            raise ValueError(f"{self._where()}: gpu_dl has no sparse tensors.")
        self.num_classes, self.axis, self.sparse = int(num_classes), int(axis), False
        self.target = standardize_dtype(dtype or backend.floatx())

    def get_config(self):
        return {"name": self.name, "num_classes": self.num_classes, "axis": self.axis, "dtype": self.target,
                "sparse": self.sparse}

    def result_dtype(self, tensors, arguments):
        return self.target

    def output_shape_of(self, arguments, shapes):
        shape = list(shapes[0])
        shape.insert(_axes(self.axis, len(shape) + 1, self._where())[0], self.num_classes)
        return tuple(shape)

    def forward_array(self, x):
        xp = _xp(x)
        hot = (x[..., None] == xp.arange(self.num_classes)).astype(self.target)
        return xp.moveaxis(hot, -1, self.axis)

    def backward_function(self, dy, operands, y):
        return [None]


class FullLike(KerasOperation):
    """``full_like(x, fill_value, dtype=None)``: ``x``'s shape filled with a number; no gradient."""

    arity = 2
    config_keys = ("dtype",)
    casts_inputs = False

    def __init__(self, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.target}

    def accept_argument(self, position, value):
        if position != 1 or isinstance(value, numpy.ndarray):
            raise TypeError(f"{self._where()}: the tensor comes first, then a number, got {value!r:.80} in position "
                            f"{position}.")
        return super().accept_argument(position, value)

    def result_dtype(self, tensors, arguments):
        return self.target or tensors[0].dtype

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0])

    def operands(self, arrays):
        return [arrays[0]]

    def forward_function(self, x):
        return _xp(x).full(x.shape, self.arguments[1], dtype=self.dtype)

    def backward(self, dy):
        return None


# ------------------------------------------------------------------ comparisons and logic (no gradient)
class Comparison(KerasOperation):
    """Two tensors, numbers or arrays compared element-wise, broadcast as NumPy does: a bool tensor, no gradient.
    The operands are compared in their common dtype (Keras's)."""

    arity = 2
    casts_inputs = False
    compare = "greater"

    def result_dtype(self, tensors, arguments):
        self.operand_dtype = KerasOperation.result_dtype(self, tensors, arguments)
        return "bool"

    def output_shape_of(self, arguments, shapes):
        return Operation.output_shape_of(self, arguments, shapes)

    def operands(self, arrays):
        given = iter(arrays)
        xp = backend.array_module(*arrays)
        out = []
        for position, a in enumerate(self.arguments):
            if a is None:
                out.append(next(given))
            elif isinstance(a, numpy.ndarray):
                key = (xp.__name__, position)
                if key not in self._on_device:
                    self._on_device[key] = xp.asarray(a.astype(self.operand_dtype))
                out.append(self._on_device[key])
            else:
                out.append(numpy.dtype(self.operand_dtype).type(a))
        return out

    def forward_function(self, *operands):
        xp = backend.array_module(*[o for o in operands if hasattr(o, "shape") and not numpy.isscalar(o)])
        return getattr(xp, self.compare)(*operands)

    def backward(self, dy):
        count = sum(a is None for a in self.arguments)
        return None if count == 1 else [None] * count


def _comparison(name, compare):
    return type(name, (Comparison,), {"compare": compare, "__module__": __name__,
                                      "__doc__": f"Keras's {NUMPY} {name}: ``{compare}`` element-wise, bool."})


Greater = _comparison("Greater", "greater")
GreaterEqual = _comparison("GreaterEqual", "greater_equal")
Less = _comparison("Less", "less")
LessEqual = _comparison("LessEqual", "less_equal")
Equal = _comparison("Equal", "equal")
NotEqual = _comparison("NotEqual", "not_equal")
LogicalAnd = _comparison("LogicalAnd", "logical_and")
LogicalOr = _comparison("LogicalOr", "logical_or")
LogicalXor = _comparison("LogicalXor", "logical_xor")


class LogicalNot(Comparison):
    arity = 1
    compare = "logical_not"


class Any(Reduction):
    """``any(x, axis=None, keepdims=False)`` (``All``): a bool tensor, no gradient."""

    casts_inputs = False
    reduce = "any"

    def result_dtype(self, tensors, arguments):
        return "bool"

    def forward_array(self, x):
        return getattr(x.astype(bool), self.reduce)(axis=fn.normalize_axes(self.axis, x.ndim), keepdims=self.keepdims)

    def backward(self, dy):
        return None


class All(Any):
    reduce = "all"


# ------------------------------------------------------------------ products
class Tensordot(KerasOperation):
    """``tensordot(x1, x2, axes=2)``: tensors (or a constant array), as an einsum of the paired axes."""

    arity = 2
    config_keys = ("axes",)
    keeps_integers = False

    def __init__(self, axes=2, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axes = int(axes) if isinstance(axes, (int, numpy.integer)) else tuple(
            int(a) if isinstance(a, (int, numpy.integer)) else tuple(int(i) for i in a) for a in axes)

    def get_config(self):
        return {"name": self.name, "axes": _nested_list(self.axes)}

    def subscripts(self, a_ndim, b_ndim):
        return fn.tensordot_subscripts(a_ndim, b_ndim, self.axes)

    def _shapes(self, arguments, shapes):
        given = iter(shapes)
        return [tuple(next(given)) if a is None else a.shape for a in arguments]

    def output_shape_of(self, arguments, shapes):
        a, b = self._shapes(arguments, shapes)
        try:
            spec = self.subscripts(len(a), len(b))
        except (ValueError, IndexError) as e:
            raise ValueError(f"{self._where()}: {e}") from None
        return Einsum.output_shape_of(_eager(Einsum, subscripts=spec, name=self.name), arguments, shapes)

    def forward_function(self, a, b):
        return _xp(a).einsum(self.subscripts(a.ndim, b.ndim), a, b)

    def backward_function(self, dy, operands, y):
        a, b = operands
        return fn.einsum_backward(dy, operands, y, self.subscripts(a.ndim, b.ndim))


class Dot(Tensordot):
    """``dot(x1, x2)``: NumPy's dot (the last axis of x1 against the second-to-last of x2)."""

    config_keys = ()

    def __init__(self, name=None, **kwargs):
        KerasOperation.__init__(self, name=name, **kwargs)

    def get_config(self):
        return {"name": self.name}

    def subscripts(self, a_ndim, b_ndim):
        return fn.dot_subscripts(a_ndim, b_ndim)


def _eager(cls, **config):
    op = cls.__new__(cls)
    op.__dict__.update(config)
    return op


# Keras's class names of these operations, for models read back from a config.
OPERATIONS = {cls.__name__: cls for cls in (
    Mean, Sum, Max, Min, Sqrt, Square, Exp, Log, Tanh, Sigmoid, Relu, Softmax, Maximum, Minimum, Clip, Cast,
    ZerosLike, OnesLike, Reshape, Transpose, ExpandDims, Squeeze, Concatenate, Stack, Einsum, Where, Take,
    TakeAlongAxis, Sin, Cos, Erf, Silu, Softplus, Gelu, LogSoftmax, Logsumexp, Var, Std, Prod, Norm, Cumsum, Argmax,
    Argmin, Moments, Normalize, Split, Tile, Repeat, Pad, BroadcastTo, Flip, Roll, Slice, Tril, Triu, OneHot,
    FullLike, Greater, GreaterEqual, Less, LessEqual, Equal, NotEqual, LogicalAnd, LogicalOr, LogicalXor,
    LogicalNot, Any, All, Tensordot, Dot)}
