"""Keras 3's dtype promotion (``keras.backend.result_type``) and ``keras.backend.get_uid``.

``result_type(*dtypes)`` is the least upper bound of the dtypes on Keras's promotion lattice (JAX's):

    bool -> int (weak) -> uint8 | int8 | complex64; uint8 -> int16 | uint16; uint16 -> int32 | uint32;
    uint32 -> int64 | uint64; uint64 -> float (weak); int8 -> int16 -> int32 -> int64 -> float (weak);
    float (weak) -> bfloat16 | float16 -> float32 -> float64 | complex64; float64 -> complex128;
    complex64 -> complex128

The Python types ``int`` and ``float`` are *weak*: ``result_type("int8", int)`` is int8 and
``result_type("float16", float)`` float16, while a weak result takes floatx's precision (``result_type(int,
float)`` is float32 under floatx float32). As on Keras's backends other than TensorFlow, 64-bit results are
narrowed to 32 bits (int64 -> int32, uint64 -> uint32, float64 -> float32, complex128 -> complex64), and the
Python ``int`` stands for int32. ``None`` stands for floatx; no argument gives floatx.
"""
from __future__ import annotations

import functools

import numpy

from .config import floatx

_INTS = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64")
_FLOATS = ("bfloat16", "float16", "float32", "float64")
_COMPLEX = ("complex64", "complex128")
_FLOAT8 = ("float8_e4m3fn", "float8_e5m2")
ALLOWED_DTYPES = ("bool", "string") + _INTS + _FLOATS + _COMPLEX + _FLOAT8

# Each node's immediate successors on the lattice; "int" and "float" are the weak Python types.
_LATTICE = {
    "bool": ("int",),
    "int": ("uint8", "int8", "complex64"),
    "uint8": ("int16", "uint16"), "uint16": ("int32", "uint32"), "uint32": ("int64", "uint64"), "uint64": ("float",),
    "int8": ("int16",), "int16": ("int32",), "int32": ("int64",), "int64": ("float",),
    "float": ("bfloat16", "float16"),
    "bfloat16": ("float32",), "float16": ("float32",), "float32": ("float64", "complex64"),
    "float64": ("complex128",), "complex64": ("complex128",), "complex128": (),
}


def _upper_bounds():
    """Every node's set of nodes at or above it."""
    bounds = {}

    def above(node):
        if node not in bounds:
            found = {node}
            for successor in _LATTICE[node]:
                found |= above(successor)
            bounds[node] = frozenset(found)
        return bounds[node]

    for node in _LATTICE:
        above(node)
    return bounds


_UPPER = _upper_bounds()
_NARROWED = {"int64": "int32", "uint64": "uint32", "float64": "float32", "complex128": "complex64"}


@functools.lru_cache(maxsize=512)
def _least_upper_bound(nodes):
    for node in nodes:
        if node not in _UPPER:
            raise ValueError(f"dtype={node!r} is not a valid dtype for Keras type promotion.")
    common = frozenset.intersection(*(_UPPER[n] for n in nodes))
    least = [c for c in common if common <= _UPPER[c]]
    if not least:
        raise ValueError(f"Input dtypes {tuple(sorted(nodes))} have no available implicit dtype promotion path. "
                         "Try explicitly casting inputs to the desired output type.")
    return least[0]


_PYTHON_TYPES = {bool: "bool", int: "int32", float: "float32", complex: "complex64", str: "string"}


def _standardize(value):
    """``(dtype name, weak)`` of an argument of ``result_type``: a name, a NumPy dtype or scalar type, a torch
    dtype, or a Python type (``int`` and ``float`` weak)."""
    if isinstance(value, type) and value in _PYTHON_TYPES:
        return _PYTHON_TYPES[value], value is int or value is float
    if isinstance(value, str):
        name = "int32" if value == "int" else value
    elif str(value).startswith("torch."):
        name = str(value)[len("torch."):]
    else:
        try:
            name = numpy.dtype(value).name
        except TypeError:
            name = None
    if name not in ALLOWED_DTYPES:
        raise ValueError(f"result_type: invalid dtype {value!r}; expected one of {ALLOWED_DTYPES}, or the Python "
                         "types bool, int, float and complex.")
    return name, False


def _weak(dtype):
    if dtype == "bool":
        return dtype
    for kind in ("complex", "float", "int"):
        if kind in dtype:
            return kind
    raise ValueError(f"result_type: dtype {dtype!r} cannot be promoted.")


def _resolve_weak(dtype, precision):
    kind = "f" if dtype == "bfloat16" else dtype[:1]
    if kind == "b":
        return "bool"
    if kind == "i":
        return f"int{precision}"
    if kind == "u":
        return f"uint{precision}"
    return f"float{precision}"


def result_type(*dtypes):
    """The dtype Keras's promotion rules give ``dtypes`` (see the module docstring), as a name."""
    if not dtypes:
        return floatx()
    args = [floatx() if d is None else d for d in dtypes]
    for arg in args:
        if isinstance(arg, str) and arg in _FLOAT8:
            raise ValueError(f"There is no implicit conversions from float8 dtypes to others. You must cast it "
                             f"internally. Received: {dtypes}")
    parsed = [_standardize(arg) for arg in args]
    names, weak = zip(*parsed)
    if len(names) == 1:
        out, out_weak = names[0], weak[0]
    elif len(set(names)) == 1 and not all(weak):
        out, out_weak = names[0], False
    elif all(weak):
        out, out_weak = _least_upper_bound(frozenset(names)), True
    else:
        out = _least_upper_bound(frozenset(_weak(n) if w else n for n, w in zip(names, weak)))
        out_weak = out in ("int", "float")
    if out_weak and out != "bool":
        out = _resolve_weak(out, floatx()[-2:])
    return _NARROWED.get(out, out)


def get_uid(prefix=""):
    """Keras's ``get_uid``: 1, 2, 3, ... on successive calls with the same ``prefix``. The counters are those
    that name layers (``Dense()`` is 'dense', then 'dense_1', ...): after ``get_uid("dense")`` has given 1 the
    next Dense is 'dense_1', and ``clear_session()`` starts them again."""
    if not isinstance(prefix, str):
        raise TypeError(f"get_uid: `prefix` must be a string, got {prefix!r}.")
    from ..layers import base       # the layers' name counters, a level above; import late
    return next(base._name_counters[prefix]) + 1
