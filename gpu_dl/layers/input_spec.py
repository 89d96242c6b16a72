"""Keras 3's ``InputSpec``: what a layer expects of its inputs (dtype, rank, shape, given axes), checked on each
call as Keras's ``assert_input_compatibility`` checks it.

A layer written for Keras sets ``self.input_spec`` to an ``InputSpec`` (or a list of them, one per input) in its
``__init__`` or ``build``; ``Layer.__call__`` then checks the inputs against it before building the layer and again
after (a spec set by ``build`` applies to the very call that built it), on arrays and on symbolic tensors alike.
gpu_dl's own layers keep a plain shape tuple in ``input_spec`` once built (the shape they were built for, checked
by ``check_input_shape``); that is left as it is, and a layer that holds a Keras spec keeps that shape in
``_built_input_shape`` instead (``built_input_shape`` reads either). A composite layer (one that composes sublayers
in its call and has no backward of its own) is checked before each call: a spec its ``build`` sets applies from the
call after the one that built it.
"""
from __future__ import annotations

import numbers

import numpy

# Keras's dtype names beyond NumPy's, and what it makes of Python's types.
_KERAS_ONLY_DTYPES = ("bfloat16", "string", "float8_e4m3fn", "float8_e5m2")
_PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", str: "string", "int": "int32", complex: "complex64"}
_ALLOWED_DTYPES = ("float16", "float32", "float64", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
                   "int64", "bool", "complex64", "complex128") + _KERAS_ONLY_DTYPES


def _standardize_dtype(dtype):
    """A dtype's name as Keras writes it ('float32', 'int64', ...); a ValueError for what Keras does not know."""
    try:
        dtype = _PYTHON_DTYPES.get(dtype, dtype)
    except TypeError:                       # an unhashable value
        pass
    if isinstance(dtype, str) and dtype in _KERAS_ONLY_DTYPES:
        return dtype
    try:
        name = numpy.dtype(dtype).name
    except (TypeError, ValueError):
        name = None
    if name not in _ALLOWED_DTYPES:
        raise ValueError(f"InputSpec: invalid dtype {dtype!r}: expected one of {', '.join(_ALLOWED_DTYPES)}.")
    return name


def _standardize_shape(shape):
    """A shape as a tuple of ints and None, as Keras's ``standardize_shape`` makes it (its messages)."""
    if shape is None:
        raise ValueError("Undefined shapes are not supported.")
    if not hasattr(shape, "__iter__") or isinstance(shape, (str, bytes, dict)):
        raise ValueError(f"Cannot convert '{shape}' to a shape.")
    shape = tuple(shape)
    dims = []
    for d in shape:
        if d is None:
            dims.append(None)
            continue
        if isinstance(d, (str, float, bool)) or not isinstance(d, numbers.Integral):
            raise ValueError(f"Cannot convert '{shape}' to a shape. Found invalid dimension '{d}' of type "
                             f"'{type(d)}'. ")
        if d < 0:
            raise ValueError(f"Cannot convert '{shape}' to a shape. Negative dimensions are not allowed.")
        dims.append(int(d))
    return tuple(dims)


def _optional_int(value, argument):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"InputSpec: `{argument}` must be a non-negative integer or None. Received: "
                         f"{argument}={value!r}")
    return int(value)


class InputSpec:
    """Specifies the rank, dtype and shape of every input to a layer (Keras 3's ``keras.layers.InputSpec``).

    ``dtype``: the inputs' dtype; ``shape``: their shape, batch axis included (None for any size; gives
    ``ndim``); ``ndim`` / ``max_ndim`` / ``min_ndim``: their rank; ``axes``: a dict from axis (negative ones
    count from the end) to the size it must have; ``allow_last_axis_squeeze``: accept a rank one higher whose
    last axis is 1, or one lower where the spec's last axis is 1; ``name``: the key of this input in a dict of
    inputs; ``optional``: the input may be None.
    """

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None, axes=None,
                 allow_last_axis_squeeze=False, name=None, optional=False):
        self.dtype = _standardize_dtype(dtype) if dtype is not None else None
        if shape is not None:
            self.shape = _standardize_shape(shape)
            self.ndim = len(self.shape)
        else:
            self.ndim = _optional_int(ndim, "ndim")
            self.shape = None
        self.max_ndim = _optional_int(max_ndim, "max_ndim")
        self.min_ndim = _optional_int(min_ndim, "min_ndim")
        self.name = name
        self.optional = optional
        self.allow_last_axis_squeeze = allow_last_axis_squeeze
        try:
            axes = axes or {}
            self.axes = {int(k): axes[k] for k in axes}
        except (ValueError, TypeError):
            raise TypeError(f"Argument `axes` must be a dict with integer keys. Received: axes={axes}") from None
        if self.axes and (self.ndim is not None or self.max_ndim is not None):
            max_dim = (self.ndim if self.ndim else self.max_ndim) - 1
            max_axis = max(self.axes)
            if max_axis > max_dim:
                raise ValueError(f"Axis {max_axis} is greater than the maximum allowed value: {max_dim}")

    def __repr__(self):
        spec = [f"dtype={self.dtype}" if self.dtype else "",
                f"shape={self.shape}" if self.shape else "",
                f"ndim={self.ndim}" if self.ndim else "",
                f"max_ndim={self.max_ndim}" if self.max_ndim else "",
                f"min_ndim={self.min_ndim}" if self.min_ndim else "",
                f"axes={self.axes}" if self.axes else ""]
        return f"InputSpec({', '.join(x for x in spec if x)})"

    def get_config(self):
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim, "max_ndim": self.max_ndim,
                "min_ndim": self.min_ndim, "axes": self.axes, "optional": self.optional}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# ------------------------------------------------------------ the layer's side
def _flatten(structure):
    """Keras's ``tree.flatten`` for lists, tuples and dicts (dict values by sorted key)."""
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in _flatten(structure[key])]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _flatten(item)]
    return [structure]


def holds_input_specs(value) -> bool:
    """Whether ``value`` (a layer's ``input_spec``) is an ``InputSpec`` or a list/tuple/dict holding one, as a
    layer written for Keras sets it; not the shape tuple gpu_dl keeps there."""
    if isinstance(value, InputSpec):
        return True
    if isinstance(value, (list, tuple, dict)):
        return any(isinstance(leaf, InputSpec) for leaf in _flatten(value))
    return False


def spec_after_build(layer, input_shape):
    """What a layer keeps as ``input_spec`` once built for ``input_shape``: the spec it set itself (its built
    shape then goes to ``_built_input_shape``), else ``(None, d1, ...)``."""
    shape = (None,) + tuple(input_shape[1:])
    if holds_input_specs(layer.input_spec):
        layer._built_input_shape = shape
        return layer.input_spec
    return shape


def check_input_spec(layer, x, unbuilt=None):
    """``assert_input_compatibility`` for a layer that holds a Keras spec; when it refuses ``x`` and ``unbuilt``
    (the layer's weights, ``input_spec`` and ``built`` before the call built it) is given, the layer is unbuilt
    again first."""
    if not holds_input_specs(layer.input_spec):
        return
    try:
        assert_input_compatibility(layer.input_spec, x, layer.name)
    except ValueError:
        if unbuilt is not None and layer.built:
            layer._weights[:], layer.input_spec, layer.built = unbuilt
            if layer.built:         # built when made, as Keras: its next call checks its input shape again
                layer._shape_pending = True
            layer.__dict__.pop("_built_input_shape", None)
        raise


def built_input_shape(layer):
    """The shape ``layer`` was built for, batch axis None (None before it is built), whether its ``input_spec``
    holds that shape or a Keras spec."""
    if holds_input_specs(layer.input_spec):
        return layer.__dict__.get("_built_input_shape")
    return layer.input_spec


def _shape_of(x):
    shape = []
    for d in tuple(x.shape):
        shape.append(None if d is None else int(d))
    return tuple(shape)


def _dtype_name(x):
    dtype = x.dtype
    if isinstance(dtype, str):
        return dtype
    try:
        return numpy.dtype(dtype).name
    except TypeError:
        return str(dtype)


def assert_input_compatibility(input_spec, inputs, layer_name):
    """Raise the ValueError Keras 3 raises when ``inputs`` (a tensor, or a list/dict of them) do not meet
    ``input_spec`` (an InputSpec or a structure of them; None: nothing to check)."""
    if not input_spec:
        return
    input_spec = _flatten(input_spec)
    if isinstance(inputs, dict):
        # By the specs' names, when each has one.
        names = [spec.name for spec in input_spec]
        if all(names):
            listed = []
            for name in names:
                if name not in inputs:
                    raise ValueError(f'Missing data for input "{name}". You passed a data dictionary with keys '
                                     f"{list(inputs.keys())}. Expected the following keys: {names}")
                listed.append(inputs[name])
            inputs = listed
    inputs = _flatten(inputs)
    if len(inputs) != len(input_spec):
        spec_names = [spec.name for spec in input_spec if spec is not None]
        if len(spec_names) == len(input_spec) and all(spec_names):
            raise ValueError(f'Layer "{layer_name}" expects {len(input_spec)} named input(s) with keys '
                             f"{spec_names}, but it received {len(inputs)} input tensors. Pass inputs as a dict, "
                             "e.g. `layer({" + ", ".join(f"'{n}': ..." for n in spec_names) + "})`.")
        raise ValueError(f'Layer "{layer_name}" expects {len(input_spec)} input(s), but it received {len(inputs)} '
                         f"input tensors. Inputs received: {inputs}")
    for index, (x, spec) in enumerate(zip(inputs, input_spec)):
        if spec is None or (x is None and spec.optional):
            continue
        if not hasattr(x, "shape"):
            raise ValueError(f"Inputs to a layer should be tensors. Got '{x}' (of type {type(x)}) as input for "
                             f"layer '{layer_name}'.")
        where = f"Input {index} with name '{spec.name}' of layer '{layer_name}' is incompatible with the layer"
        shape = _shape_of(x)
        ndim = len(shape)
        if spec.ndim is not None and not spec.allow_last_axis_squeeze and ndim != spec.ndim:
            raise ValueError(f"{where}: expected ndim={spec.ndim}, found ndim={ndim}. Full shape received: {shape}")
        if spec.max_ndim is not None and ndim > spec.max_ndim:
            raise ValueError(f"{where}: expected max_ndim={spec.max_ndim}, found ndim={ndim}")
        if spec.min_ndim is not None and ndim < spec.min_ndim:
            raise ValueError(f"{where}: expected min_ndim={spec.min_ndim}, found ndim={ndim}. Full shape received: "
                             f"{shape}")
        if spec.dtype is not None:
            dtype = _dtype_name(x)
            if dtype != spec.dtype:
                raise ValueError(f"{where}: expected dtype={spec.dtype}, found dtype={dtype}")
        for axis, value in spec.axes.items():
            if not -ndim <= axis < ndim:
                raise ValueError(f"{where}: expected axis {axis} of input shape to have value {value}, but received "
                                 f"input with shape {shape}")
            if value is not None and shape[axis] not in {value, None}:
                raise ValueError(f"{where}: expected axis {axis} of input shape to have value {value}, but received "
                                 f"input with shape {shape}")
        if spec.shape is not None:
            spec_shape = spec.shape
            if spec.allow_last_axis_squeeze:
                if shape and shape[-1] == 1:
                    shape = shape[:-1]
                if spec_shape and spec_shape[-1] == 1:
                    spec_shape = spec_shape[:-1]
            for spec_dim, dim in zip(spec_shape, shape):
                if spec_dim is not None and dim is not None and spec_dim != dim:
                    raise ValueError(f"{where}: expected shape={spec.shape}, found shape={shape}")
