"""``Lambda``: a Python function as a layer, as Keras 3 has it, for inference.

``Lambda(function, output_shape=None, mask=None, arguments=None)`` calls
``function(x, **arguments)`` on the layer's input, a NumPy or CuPy array (the
device's: a function that builds arrays of its own takes their module from
``gpu_dl.backend.array_module(x)``), and must return one array of that module.
As in Keras, ``function`` also gets ``mask=`` and ``training=`` when its
signature names them; float inputs are cast to the layer's dtype, integer and
bool ones kept. The output shape is ``(batch,) + output_shape`` for a tuple,
``output_shape(input_shape)`` for a function, and otherwise found as Keras's
torch backend finds it: by calling ``function`` on zeros, twice, with the
unknown sizes set to 83 and then 89 (an output size that differs between the
two calls is unknown), except an unknown batch size, set to 2 and then 3, so
that the arrays stay small (Keras's are shapes without data).

A Lambda has no gradient: Keras differentiates the function with its
backend's autograd, and gpu_dl has none (finite differences would be slow and
inexact). It runs in ``predict``, ``evaluate`` and any call, and trains where
its input needs no gradient (reading the model's input directly); anywhere
else ``backward`` is a NotImplementedError naming the layer.

Saving: a named function (``def``) is written as Keras writes one, by name,
and loading finds it through ``custom_objects`` or the registry, in gpu_dl as
in Keras. Keras writes a Python ``lambda`` as bytecode (a ``__lambda__``
entry) and loads it only with ``safe_mode=False``; gpu_dl never runs code from
a file, so it refuses to load such an entry and refuses to write one
(``get_config`` says what to do instead).
"""
from __future__ import annotations

import inspect
import numbers
import types

import numpy

from .. import backend
from ..backend import array_module
from ..catalogue import get_registered_name, get_registered_object
from .base import Layer
from .masks import from_arrays

# The sizes an unknown axis takes in the two calls that find the output shape: Keras's 83 and 89, so that a slice
# such as x[:, :5] of an axis of unknown length comes out as Keras finds it, and for the batch axis 2 and 3, as the
# zeros are allocated on the device (Keras's torch backend traces on its "meta" device, without data).
_PROBE_SIZES = ((2, 83), (3, 89))


def _positional_parameters(function):
    """The names Keras checks for ``mask`` and ``training``: the function's positional-or-keyword parameters
    (``inspect.getfullargspec(function).args``); none for a callable without a signature."""
    try:
        return inspect.getfullargspec(function).args
    except TypeError:
        return []


def lambda_bytecode_refusal(where, layer_name, key):
    """The ValueError for a Lambda whose ``key`` a file holds as Python bytecode (Keras's ``__lambda__``)."""
    return ValueError(
        f"{where}: Lambda layer '{layer_name}' holds its `{key}` as Python bytecode (a '__lambda__' entry, which "
        "Keras writes for a Python lambda and loads only with safe_mode=False). gpu_dl never runs code from a "
        "file, whatever safe_mode says. Rebuild the model in code, Lambda included, and call model.load_weights() "
        "on this file, which reads the weights only; or give the Lambda a named function (def), which is saved by "
        "name and found again through load_model(..., custom_objects={'name': function}).")


class Lambda(Layer):
    """Wraps ``function`` as a layer (see the module docstring)."""

    fixed_input_axes = ()
    keeps_input_dtype = True     # floats are cast in call(); integer and bool inputs reach the function as they are

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Lambda layer '{self.name}'"
        if not callable(function):
            raise TypeError(f"{where}: function must be callable, got {function!r:.200}.")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict) or not all(isinstance(k, str) for k in arguments):
            raise TypeError(f"{where}: arguments must be a dict of keyword arguments for the function, "
                            f"got {arguments!r:.200}.")
        if output_shape is not None and not callable(output_shape):
            output_shape = self._shape(output_shape, "output_shape (the shape of one sample, without the batch axis)")
        if mask is not None and not callable(mask):
            try:
                array = numpy.asarray(backend.to_numpy(mask))
            except (TypeError, ValueError):
                array = None
            if array is None or array.dtype.kind not in "biu":
                raise TypeError(f"{where}: mask must be None, a function mask(inputs, mask) or an array of "
                                f"booleans, got {mask!r:.200}.")
            mask = array.astype(bool)
        self.function = function
        self.arguments = dict(arguments)
        self._output_shape = output_shape
        self.mask = mask
        # As in Keras: a layer given a mask passes one on; the function gets mask= and training= when it names them.
        self.supports_masking = mask is not None
        parameters = _positional_parameters(function)
        self.takes_mask = "mask" in parameters
        self._takes_training = "training" in parameters
        self._inferred = {}          # output shapes found by calling the function, by input shape

    # ------------------------------------------------------------------ shapes
    def _shape(self, value, what):
        """``value`` as a tuple of positive ints and Nones, or a ValueError naming the layer."""
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ValueError(f"Lambda layer '{self.name}': {what} must be a tuple of integers (or None), "
                             f"got {value!r:.200}.")
        dims = tuple(value)
        if any(d is not None and (isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0)
               for d in dims):
            raise ValueError(f"Lambda layer '{self.name}': {what} must be a tuple of integers >= 0 (or None), "
                             f"got {value!r:.200}.")
        return tuple(None if d is None else int(d) for d in dims)

    def build(self, input_shape):
        # Built inside a model (the batch size unknown), its output shape is what the model asks next: found now, a
        # function it cannot be found for makes Sequential.add refuse the layer and leave the model as it was. A
        # call on arrays builds with their batch size and calls the function itself, as Keras's eager call does.
        if input_shape[0] is None:
            self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if callable(self._output_shape):
            return self._shape(self._output_shape(input_shape), "output_shape(input_shape)")
        if self._output_shape is not None:
            return (input_shape[0],) + self._output_shape
        if input_shape not in self._inferred:
            self._inferred[input_shape] = self._probe(input_shape)
        return self._inferred[input_shape]

    def _probe(self, input_shape):
        """The output shape, from calling the function twice on zeros, with the unknown sizes of ``_PROBE_SIZES``."""
        found = []
        for batch, size in _PROBE_SIZES:
            shape = tuple(d if d is not None else batch if i == 0 else size for i, d in enumerate(input_shape))
            x = backend.xp().zeros(shape, dtype=self.compute_dtype)
            try:
                with numpy.errstate(all="ignore"):       # zeros may well divide by zero; only the shape matters
                    found.append(tuple(self._apply(x, training=False, mask=None).shape))
            except Exception as e:
                raise ValueError(f"Lambda layer '{self.name}': could not find its output shape by calling the "
                                 f"function on zeros of shape {tuple(x.shape)} ({type(e).__name__}: {e}). Give the "
                                 "shape of one sample: Lambda(function, output_shape=(...)).") from e
        first, second = found
        if len(first) != len(second):
            raise ValueError(f"Lambda layer '{self.name}': the function's output rank changes with the input's "
                             f"unknown sizes ({first} and {second} for {input_shape}); give "
                             "Lambda(function, output_shape=(...)).")
        return tuple(a if a == b else None for a, b in zip(first, second))

    # ------------------------------------------------------------------ call
    def _apply(self, x, training, mask):
        kwargs = dict(self.arguments)
        if self.takes_mask:
            kwargs["mask"] = mask
        if self._takes_training:
            kwargs["training"] = training
        y = self.function(x, **kwargs)
        module = array_module(x)
        if isinstance(y, numpy.generic) and module is numpy:
            y = numpy.asarray(y)
        if not isinstance(y, module.ndarray):
            raise TypeError(f"Lambda layer '{self.name}': the function returned {type(y).__module__}."
                            f"{type(y).__name__} for an input of {module.__name__}.ndarray; it must return one array "
                            f"of the input's module ({module.__name__}; gpu_dl.backend.array_module(x) gives it).")
        # The GPU kernels of the layers after it read C-contiguous arrays (a transpose or a strided slice is not).
        return y if y.flags.c_contiguous else module.ascontiguousarray(y)

    def call(self, x, training=False, mask=None):
        if x.dtype.kind == "f" and x.dtype != self.compute_dtype:
            x = x.astype(self.compute_dtype)
        y = self._apply(x, training, mask)
        self._saved = () if training else None
        return y

    @from_arrays
    def compute_mask(self, x, mask=None):
        if callable(self.mask):
            return self.mask(x, mask)
        if self.mask is None:
            return None
        return array_module(x).asarray(self.mask)

    def backward(self, dy):
        self.saved()
        if not self.input_gradient_wanted:
            return None         # it reads the model's input: nothing before it needs a gradient
        raise NotImplementedError(
            f"Lambda layer '{self.name}' cannot pass a gradient back: gpu_dl has no automatic differentiation, so it "
            "cannot differentiate the Python function the layer wraps. A model with a Lambda trains only where the "
            "Lambda reads the model's input (its first layer); it predicts and evaluates anywhere. To train through "
            "it, write a Layer subclass with call() and backward().")

    # ------------------------------------------------------------------ config
    def _function_entry(self, function, key):
        """Keras 3's entry for a named function: its registered name, else its ``__name__``."""
        if isinstance(function, types.FunctionType) and function.__name__ != "<lambda>":
            return {"module": "builtins", "class_name": "function", "config": get_registered_name(function),
                    "registered_name": "function"}
        kind = ("a Python lambda" if getattr(function, "__name__", None) == "<lambda>"
                else f"{function!r:.100}, not a Python function")
        raise ValueError(
            f"Lambda layer '{self.name}': its `{key}` is {kind}, which a config can hold only as Python bytecode "
            "(Keras writes a lambda so, and loads it only with safe_mode=False). gpu_dl never runs code from a file, "
            "so it writes none either. Define it with def: a named function is saved by its name and found again "
            "through load_model(..., custom_objects={'name': function}) or "
            "gpu_dl.saving.register_keras_serializable(), here and in Keras. Or save the weights alone "
            "(save_weights) and rebuild the model in code.")

    def get_config(self):
        config = super().get_config()
        config["function"] = self._function_entry(self.function, "function")
        if callable(self._output_shape):
            config["output_shape"] = self._function_entry(self._output_shape, "output_shape")
        elif self._output_shape is not None:
            config["output_shape"] = self._output_shape
        if callable(self.mask):
            config["mask"] = self._function_entry(self.mask, "mask")
        elif self.mask is not None:
            config["mask"] = _array_entry(self.mask)
        config["arguments"] = {k: _array_entry(v) if hasattr(v, "shape") and hasattr(v, "dtype") else v
                               for k, v in self.arguments.items()}
        return config

    @classmethod
    def from_config(cls, config):
        """The layer of ``config``, its named functions found among the registered objects and those of the active
        ``custom_object_scope`` (loading a file also looks in its ``custom_objects``); a function saved as
        bytecode is refused."""
        config = dict(config)
        for key in ("function", "output_shape", "mask"):
            if key in config:
                config[key] = _from_entry(config[key], key, config.get("name"))
        if isinstance(config.get("arguments"), dict):
            config["arguments"] = {k: _from_entry(v, f"arguments[{k!r}]", config.get("name"))
                                   for k, v in config["arguments"].items()}
        return cls(**config)


def _array_entry(array):
    """Keras's entry for an array argument: its values and dtype."""
    host = numpy.asarray(backend.to_numpy(array))
    return {"class_name": "__numpy__", "config": {"value": host.tolist(), "dtype": host.dtype.name}}


def _from_entry(value, key, layer_name):
    """A config value with Keras's function and array entries turned into the objects they stand for."""
    if not isinstance(value, dict) or not isinstance(value.get("class_name"), str):
        return value
    kind = value["class_name"]
    if kind == "__lambda__":
        raise lambda_bytecode_refusal("Lambda.from_config", layer_name, key)
    if kind == "function":
        name = value.get("config")
        found = get_registered_object(name) if isinstance(name, str) else None
        if found is None:
            raise ValueError(f"Lambda layer '{layer_name}': its `{key}` names the function {name!r}, which neither "
                             "the registered objects nor the active custom_object_scope have. Register it with "
                             "gpu_dl.saving.register_keras_serializable(), or load the file with "
                             f"load_model(..., custom_objects={{{name!r}: function}}); nothing is imported by name.")
        return found
    if kind == "__numpy__" and isinstance(value.get("config"), dict):
        inner = value["config"]
        try:
            dtype = numpy.dtype(inner.get("dtype"))
            if dtype.kind not in "biuf":
                raise TypeError(f"dtype {dtype.name}")
            return numpy.asarray(inner.get("value"), dtype=dtype)
        except (TypeError, ValueError) as e:
            raise ValueError(f"Lambda layer '{layer_name}': its `{key}` is an array entry that is not numbers of a "
                             f"numeric dtype ({e}).") from None
    return value
