"""Arithmetic on symbolic tensors: ``x + y``, ``x - 1.0``, ``2 * x``, ``x / y``, ``x ** 2``, ``-x``, ``abs(x)``.

In Keras 3 these operators on KerasTensors call keras.ops, and a functional
model records each use as an operation of ``keras.src.ops.numpy`` (``Add``,
``Subtract``, ``Multiply``, ``TrueDivide``, ``Power``, ``Negative``,
``Absolute``): a fresh object per use, named like a layer (``add``,
``true_divide_1``), with no weights, whose call's positional arguments, the
tensors and the Python numbers among them, are written in the model's config.
The classes here are those operations as weightless layers of a functional
graph: a model runs, differentiates, summarises and saves them like its
layers, and reads them back from a Keras file. They are not among the model's
``layers`` (Keras lists them in the summary and the config only) and they are
not in ``gpu_dl.layers``: operators make them.

An operation keeps where its arguments go (``arguments``: None in place of a
tensor, the number or array otherwise), so its node in the graph lists the tensors only
and its call takes their arrays, one or a list. A constant array (``x + ops.arange(4)``, ``x * numpy_array``)
is kept on the host, written in the config as Keras's serialisation writes a NumPy array (``"__numpy__"``),
and read back from that or from Keras's ``"__tensor__"``; as in Keras it does not change the result's dtype
and takes no gradient. The operations of ``gpu_dl.ops`` (``layers/keras_ops``) share this base: their
settings (``axis``, ``keepdims``, ...) are their config, as Keras writes it. The operation's dtype is its float
tensors' (of integer tensors alone, floatx); numbers become scalars of it; shapes broadcast as NumPy's do
(``broadcast_shapes`` is Keras's, with None for an unknown size). Masks of padded steps stop here, as
they stop at Keras's operations. The maths is ``ops/arithmetic.py``.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from ..ops import arithmetic
from .base import Layer, as_operand
from .symbolic import KerasTensor, Node, is_symbolic

KERAS_MODULE = "keras.src.ops.numpy"


def broadcast_shapes(first, second, where):
    """Keras's ``broadcast_shapes`` of two shapes (None: unknown size), or a ValueError naming ``where``."""
    first, second = list(first), list(second)
    rank = max(len(first), len(second))
    first = [1] * (rank - len(first)) + first
    second = [1] * (rank - len(second)) + second
    out = []
    for i, j in zip(first, second):
        if i == 1:
            out.append(j)
        elif i is None:
            out.append(None if j == 1 else j)
        elif j in (1, None, i):
            out.append(i)
        else:
            raise ValueError(f"{where}: cannot broadcast shapes {tuple(first)} and {tuple(second)} "
                             f"(sizes {i} and {j}).")
    return tuple(out)


class Operation(Layer):
    """The base of the arithmetic operations: arguments, shapes and the calls on tensors and on arrays."""

    arity = 2                  # positional arguments; None: any number (einsum's operands)
    config_keys = ()           # the settings Keras writes in the operation's config, after its name
    casts_inputs = True        # arrays are cast to the result's dtype before the forward
    takes_input_list = True
    drops_mask = True          # the mask of padded steps ends here without a warning, as in Keras
    keras_module = KERAS_MODULE
    # What the call takes, as Keras records it in the node, for writing and reading saved calls:
    keyword_arguments = ()     # the call's keyword arguments (pad's constant_values)
    tensor_keywords = ()       # those of them that may hold a symbolic tensor (rms_normalization's scale)
    list_arguments = ()        # the positions of arguments that are lists of tensors (concatenate's)

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.arguments = None   # per positional argument: None for a tensor, else the number or array
        self._on_device = {}    # the constant arrays per (array module, dtype), made once

    def _where(self):
        return f"Operation '{self.name}' ({type(self).__name__})"

    # ---------------------------------------------------------- the symbolic call
    def apply(self, *args):
        """The call on Keras's positional arguments, symbolic tensors and Python numbers: the result tensor. A
        variable is its tensor in the call being traced (else its value, a constant)."""
        args = [as_operand(value) for value in args]
        if self.arity is not None and len(args) != self.arity:
            raise TypeError(f"{self._where()} takes {self.arity} argument(s), got {len(args)}.")
        arguments, tensors = self._accepted(args)
        shape = self.output_shape_of(arguments, [t.shape for t in tensors])
        self.arguments = arguments
        self.dtype = self.result_dtype(tensors, arguments)
        self.built = True
        result = KerasTensor(shape, dtype=self.dtype)
        Node(self, args=(tensors if len(tensors) > 1 else tensors[0],), outputs=[result])
        return result

    def _accepted(self, args):
        """``(arguments, tensors)`` of a symbolic call's operands ``args``: the constants as the operation keeps them,
        None in place of each symbolic tensor, and the symbolic tensors; an error without one, or where the
        constants differ from an earlier call's."""
        arguments = [None if is_symbolic(value) else self.accept_argument(position, value)
                     for position, value in enumerate(args)]
        tensors = [value for value in args if is_symbolic(value)]
        if not tensors:
            raise TypeError(f"{self._where()} needs at least one symbolic tensor among its arguments.")
        if self.arguments is not None and not self.same_arguments(arguments):
            raise ValueError(f"{self._where()} was first called with the arguments {self._describe(self.arguments)}; "
                             f"a later call with {self._describe(arguments)} needs an operation of its own.")
        return arguments, tensors

    def accept_argument(self, position, value):
        """A constant argument as the operation keeps it (a Python number, or an array of real numbers kept on the
        host), or a TypeError."""
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return value.item() if isinstance(value, numpy.generic) else value
        if hasattr(value, "shape") and hasattr(value, "dtype") and numpy.dtype(value.dtype).kind in "biuf":
            return numpy.array(backend.to_numpy(value), copy=True)
        raise TypeError(f"{self._where()}: argument {position} must be a symbolic tensor, a Python number or an "
                        f"array of real numbers, got {value!r:.100} of type {type(value).__name__}. In a functional "
                        "model, data enter as keras.Input tensors, or as the weights of a layer.")

    def same_arguments(self, arguments):
        def same(a, b):
            if isinstance(a, numpy.ndarray) or isinstance(b, numpy.ndarray):
                return isinstance(a, numpy.ndarray) and isinstance(b, numpy.ndarray) and a.shape == b.shape and \
                    a.dtype == b.dtype and numpy.array_equal(a, b)
            return a == b
        return len(self.arguments) == len(arguments) and all(same(a, b) for a, b in zip(self.arguments, arguments))

    def result_dtype(self, tensors, arguments):
        """The result's dtype: its float tensors' (float64 stays float64); of integer tensors alone, floatx."""
        floats = [t.dtype for t in tensors if numpy.dtype(t.dtype).kind == "f"]
        return numpy.result_type(*floats).name if floats else backend.floatx()

    @staticmethod
    def _describe(arguments):
        def describe(a):
            if a is None:
                return "<tensor>"
            return f"<array {a.dtype.name} {a.shape}>" if isinstance(a, numpy.ndarray) else repr(a)
        return "(" + ", ".join(describe(a) for a in arguments) + ")"

    def keras_keywords(self):
        """The call's keyword arguments as Keras records them in the node (numbers or None)."""
        return {}

    def keras_call(self, tensors):
        """``(args, kwargs)`` of the call as Keras records it: ``tensors`` (the node's, in order) in their places
        among the positional arguments and, for an operation given some by keyword, among the keywords."""
        return self.keras_arguments(tensors), self.keras_keywords()

    @classmethod
    def takes_keyword(cls, key):
        """Whether a saved call may give the keyword argument ``key``."""
        return key in cls.keyword_arguments

    @classmethod
    def keywords_taken(cls):
        """The keyword arguments a saved call may give, in words (for errors)."""
        return ", ".join(cls.keyword_arguments) or "no keyword arguments"

    @classmethod
    def decode_keyword(cls, key, value, where):
        """A keyword argument read from a saved call: a number or None; or a ValueError."""
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        raise ValueError(f"{where}: the keyword argument {key!r} must be a number or null, got {value!r:.100}.")

    def keras_arguments(self, tensors):
        """The call's positional arguments as Keras records them: ``tensors`` in the places of the tensors."""
        given = iter(tensors)
        return [next(given) if a is None else a for a in self.arguments]

    def compute_output_shape(self, input_shape):
        shapes = [tuple(input_shape)] if not input_shape or not isinstance(input_shape[0], (list, tuple)) \
            else [tuple(s) for s in input_shape]
        return self.output_shape_of(self.arguments, shapes)

    def output_shape_of(self, arguments, shapes):
        """The result's shape for ``arguments`` (None in the tensors' places) and the tensors' ``shapes``."""
        out = ()
        given = iter(shapes)
        for a in arguments:
            shape = next(given) if a is None else getattr(a, "shape", ())
            out = broadcast_shapes(out, shape, self._where())
        return out

    # ---------------------------------------------------------- the call on arrays
    def build(self, input_shape):
        self.built = True
    build._marks_built = True      # shapes are checked per call: an operation holds none fixed

    def check_input_shape(self, shape):
        self.compute_output_shape(shape)

    def __call__(self, x, training=None, mask=None, initial_state=None):
        if is_symbolic(x) or (isinstance(x, (list, tuple)) and any(is_symbolic(t) for t in x)):
            tensors = list(x) if isinstance(x, (list, tuple)) else [x]
            if self.arguments is None:
                return self.apply(*tensors)
            args, kwargs = self.keras_call(tensors)
            return self.apply(*args, **kwargs)
        if initial_state is not None:
            raise TypeError(f"{self._where()} takes no initial_state.")
        if self.arguments is None:
            raise ValueError(f"{self._where()} has not been called on symbolic tensors: it does not know where its "
                             "arguments go. Operations are made by operators on keras.Input tensors.")
        arrays = list(x) if isinstance(x, (list, tuple)) else [x]
        expected = sum(a is None for a in self.arguments)
        if len(arrays) != expected:
            raise ValueError(f"{self._where()} takes {expected} array(s), got {len(arrays)}.")
        arrays = [self._as_input(a) for a in arrays]
        self.check_input_shape([tuple(a.shape) for a in arrays])
        if self.casts_inputs:
            arrays = [a if a.dtype == self.dtype else a.astype(self.dtype) for a in arrays]
        operands = self.operands(arrays)
        y = self.forward_function(*operands)
        self._saved = (operands, y) if training else None
        self._activity_output = None
        return y

    def operands(self, arrays):
        """The forward function's operands: ``arrays`` in the tensors' places, the constants as scalars and
        arrays of the result's dtype (on the tensors' device, copied there once); ``constant_dtype`` and
        ``scalar_operand`` say otherwise where an operation computes in other dtypes."""
        xp = backend.array_module(*arrays)
        given = iter(arrays)
        operands = []
        for position, a in enumerate(self.arguments):
            if a is None:
                operands.append(next(given))
            elif isinstance(a, numpy.ndarray):
                key = (xp.__name__, position, self.dtype)
                if key not in self._on_device:
                    dtype = self.constant_dtype(a)
                    self._on_device[key] = xp.asarray(a if dtype is None else a.astype(dtype))
                operands.append(self._on_device[key])
            else:
                operands.append(self.scalar_operand(a))
        return operands

    def constant_dtype(self, array):
        """The dtype a constant array takes in the forward: the result's (None: its own)."""
        return self.dtype

    def scalar_operand(self, value):
        """A constant number as the forward takes it: a NumPy scalar of the result's dtype."""
        return numpy.dtype(self.dtype).type(value)

    @classmethod
    def decode_argument(cls, position, value, where):
        """A constant argument read from a saved call: a number, or an array as Keras writes one
        (``{"class_name": "__numpy__" or "__tensor__", "config": {"value": ..., "dtype": ...}}``); or a
        ValueError."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        config = value.get("config") if isinstance(value, dict) and \
            value.get("class_name") in ("__numpy__", "__tensor__") else None
        if isinstance(config, dict) and set(config) == {"value", "dtype"}:
            try:
                array = numpy.array(config["value"], dtype=numpy.dtype(config["dtype"]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: an operation's array cannot be read: {e}") from None
            if array.dtype.kind in "biuf":
                return array
        raise ValueError(f"{where}: an operation's argument must be a symbolic tensor ('__keras_tensor__'), a "
                         f"number or an array of real numbers ('__numpy__'), got {value!r:.200}.")

    def compute_mask(self, x, mask=None):
        return None

    def backward(self, dy):
        operands, y = self.saved()
        gradients = self.backward_function(dy, operands, y)
        tensor_gradients = [None if g is None else arithmetic.reduce_to_shape(g, operand.shape)
                            for g, operand, a in zip(gradients, operands, self.arguments) if a is None]
        return tensor_gradients if len(tensor_gradients) > 1 else tensor_gradients[0]

    # ---------------------------------------------------------------- serialising
    def get_config(self):
        """Keras's config of the operation: its name, then its settings (tuples written as lists)."""
        config = {"name": self.name}
        for key in self.config_keys:
            value = getattr(self, key)
            config[key] = list(value) if isinstance(value, tuple) else value
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Add(Operation):
    forward_function = staticmethod(arithmetic.add_forward)
    backward_function = staticmethod(arithmetic.add_backward)


class Subtract(Operation):
    forward_function = staticmethod(arithmetic.subtract_forward)
    backward_function = staticmethod(arithmetic.subtract_backward)


class Multiply(Operation):
    forward_function = staticmethod(arithmetic.multiply_forward)
    backward_function = staticmethod(arithmetic.multiply_backward)


class TrueDivide(Operation):
    forward_function = staticmethod(arithmetic.true_divide_forward)
    backward_function = staticmethod(arithmetic.true_divide_backward)


class Power(Operation):
    forward_function = staticmethod(arithmetic.power_forward)
    backward_function = staticmethod(arithmetic.power_backward)


class Negative(Operation):
    arity = 1
    forward_function = staticmethod(arithmetic.negative_forward)
    backward_function = staticmethod(arithmetic.negative_backward)


class Absolute(Operation):
    arity = 1
    forward_function = staticmethod(arithmetic.absolute_forward)
    backward_function = staticmethod(arithmetic.absolute_backward)


# Keras's class names of the operations gpu_dl rebuilds from a saved model.
OPERATIONS = {cls.__name__: cls for cls in (Add, Subtract, Multiply, TrueDivide, Power, Negative, Absolute)}
