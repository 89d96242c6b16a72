"""Indexing and matrix products on symbolic tensors: ``x[:, -1]``, ``x[..., 0]``, ``x[:, None]``, ``x @ y``,
``x @ array``, ``array @ x``.

Keras 3 records these as the operations ``GetItem`` and ``Matmul`` of
``keras.src.ops.numpy``, like the arithmetic operators (``operations.py``,
whose base class these share): weightless, one per use, not among a model's
layers. Their constant arguments are written in the call's node as Keras's
serialisation library writes them: GetItem's key as an int or a list of ints,
``{"class_name": "__slice__", ...}``, ``{"class_name": "__ellipsis__"}`` and
null (None); Matmul's array as ``{"class_name": "__numpy__", "config": {"value":
..., "dtype": ...}}``.

GetItem takes NumPy's basic indexing only, as keras.ops.get_item does: ints,
slices with int bounds, Ellipsis and None (a new axis of size 1). Keras takes a
key of one slice, Ellipsis or None only inside a tuple; gpu_dl takes it bare
too and records it as a tuple of one, which Keras reads. Boolean masks and
integer arrays (fancy indexing) are refused. The result keeps the input's
dtype (integer ids stay integers). Its shape is the one Keras computes (an
axis of unknown size stays unknown through a slice).

Matmul multiplies two tensors, or a tensor and a constant array, as
``numpy.matmul`` does (leading axes broadcast; a 1-D operand is a row on the
left and a column on the right). The array takes no gradient. The maths of
both is ``ops/indexing.py``.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from ..ops import indexing
from .operations import Operation, broadcast_shapes
from .symbolic import is_symbolic

_SUPPORTED_KEYS = ("ints, slices with int (or None) bounds and a step other than 0, Ellipsis (...) and None "
                   "(numpy.newaxis), alone or in a tuple, as keras.ops.get_item takes them")


def _key_item(item, where):
    """One element of a key: an int, a slice of ints, Ellipsis or None; a TypeError otherwise."""
    if item is None or item is Ellipsis:
        return item
    if isinstance(item, numbers.Integral) and not isinstance(item, (bool, numpy.bool_)):
        return int(item)
    if isinstance(item, slice):
        bounds = (item.start, item.stop, item.step)
        if all(b is None or (isinstance(b, numbers.Integral) and not isinstance(b, (bool, numpy.bool_)))
               for b in bounds):
            if item.step == 0:
                raise ValueError(f"{where}: a slice's step cannot be 0 (got {item}).")
            return slice(*(None if b is None else int(b) for b in bounds))
    what = "a symbolic tensor" if is_symbolic(item) else f"{item!r:.80} of type {type(item).__name__}"
    raise TypeError(f"{where}: the key holds {what}. Symbolic tensors take {_SUPPORTED_KEYS}; boolean masks and "
                    "indexing with arrays or lists of indices (fancy indexing) are not supported (use a layer, or "
                    "keras.ops on the arrays outside the model).")


def normalize_key(key, where):
    """``key`` as GetItem keeps it: an int, or a tuple of ints, slices, Ellipsis and None."""
    if isinstance(key, list):
        raise TypeError(f"{where}: a list key is fancy indexing in NumPy (Keras would read it as a tuple); write the "
                        f"indices as a tuple, x[i, j]. Symbolic tensors take {_SUPPORTED_KEYS}.")
    if isinstance(key, tuple):
        key = tuple(_key_item(item, where) for item in key)
        if key.count(Ellipsis) > 1:
            raise ValueError(f"{where}: a key holds one Ellipsis (...) at most, got {key}.")
        return key
    item = _key_item(key, where)
    return item if isinstance(item, int) else (item,)


def get_item_shape(shape, key, where):
    """The shape of ``x[key]`` for ``x`` of ``shape`` (None: unknown size), as Keras's GetItem computes it."""
    remaining, out = list(shape), []
    items = [key] if isinstance(key, int) else list(key)
    if Ellipsis not in items:
        items.append(Ellipsis)
    while items:
        item = items.pop(0)
        if item is Ellipsis:
            consumed = len(remaining) - (len(items) - items.count(None))
            if consumed < 0:
                raise ValueError(f"{where}: the key {key} has more indices than the input's {len(shape)} axes "
                                 f"(shape {tuple(shape)}).")
            out += remaining[:consumed]
            remaining = remaining[consumed:]
        elif item is None:
            out.append(1)
        else:
            if not remaining:
                raise ValueError(f"{where}: the key {key} has more indices than the input's {len(shape)} axes "
                                 f"(shape {tuple(shape)}).")
            length = remaining.pop(0)
            if isinstance(item, int):
                if length is not None and not -length <= item < length:
                    raise ValueError(f"{where}: index {item} is out of bounds for an axis of size {length} (input "
                                     f"shape {tuple(shape)}, key {key}).")
            else:
                out.append(None if length is None else len(range(*item.indices(length))))
    return tuple(out)


def matmul_shape(first, second, where):
    """The shape of ``a @ b`` for ``a`` of shape ``first`` and ``b`` of ``second``, as numpy.matmul and Keras's
    Matmul compute it (leading axes broadcast; a 1-D operand's added axis dropped)."""
    if not first or not second:
        raise ValueError(f"{where}: matmul takes operands of one axis or more, got shapes {tuple(first)} and "
                         f"{tuple(second)}.")
    a = (1,) + tuple(first) if len(first) == 1 else tuple(first)
    b = tuple(second) + (1,) if len(second) == 1 else tuple(second)
    if a[-1] is not None and b[-2] is not None and a[-1] != b[-2]:
        raise ValueError(f"{where}: the inner sizes must agree (the last axis of the first operand and the "
                         f"second-to-last of the second), got shapes {tuple(first)} and {tuple(second)}.")
    out = list(broadcast_shapes(a[:-2], b[:-2], where)) + [a[-2], b[-1]]
    if len(first) == 1:
        del out[-2]
    if len(second) == 1:
        del out[-1]
    return tuple(out)


class GetItem(Operation):
    """``x[key]``: x of any shape; the result's shape is ``get_item_shape(x.shape, key)``, of x's dtype."""

    forward_function = staticmethod(indexing.get_item_forward)
    backward_function = staticmethod(indexing.get_item_backward)

    def apply(self, x, key):
        if not is_symbolic(x):
            raise TypeError(f"{self._where()}: the indexed value must be a symbolic tensor, got {type(x).__name__}.")
        return super().apply(x, normalize_key(key, self._where()))

    def accept_argument(self, position, value):
        if position != 1:
            raise TypeError(f"{self._where()}: the key must come second, after the indexed tensor.")
        return value

    def result_dtype(self, tensors, arguments):
        return tensors[0].dtype

    def output_shape_of(self, arguments, shapes):
        return get_item_shape(shapes[0], arguments[1], self._where())

    def operands(self, arrays):
        return [arrays[0], self.arguments[1]]

    @classmethod
    def decode_argument(cls, position, value, where):
        """The key as Keras writes it: an int, or a list of ints, null, "__slice__" and "__ellipsis__" entries."""
        if position != 1:
            return super().decode_argument(position, value, where)
        if isinstance(value, list):
            return normalize_key(tuple(cls._decode_item(v, where) for v in value), where)
        return normalize_key(cls._decode_item(value, where), where)

    @staticmethod
    def _decode_item(value, where):
        if isinstance(value, dict) and value.get("class_name") == "__ellipsis__":
            return Ellipsis
        if isinstance(value, dict) and value.get("class_name") == "__slice__" and \
                isinstance(value.get("config"), dict) and set(value["config"]) <= {"start", "stop", "step"}:
            bounds = [value["config"].get(k) for k in ("start", "stop", "step")]
            if all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in bounds):
                return slice(*bounds)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError(f"{where}: GetItem's key holds {value!r:.200}; gpu_dl reads {_SUPPORTED_KEYS}.")


class Matmul(Operation):
    """``a @ b``: ``(..., n, k) @ (..., k, m) -> (..., n, m)``, one operand possibly a constant array."""

    forward_function = staticmethod(indexing.matmul_forward)
    backward_function = staticmethod(indexing.matmul_backward)

    def accept_argument(self, position, value):
        if hasattr(value, "shape") and hasattr(value, "dtype") and numpy.dtype(value.dtype).kind in "biuf" and \
                getattr(value, "ndim", 0) >= 1:
            return numpy.array(backend.to_numpy(value), copy=True)     # kept on the host: it is saved as a list
        raise TypeError(f"{self._where()}: argument {position} must be a symbolic tensor or an array of real numbers "
                        f"with one axis or more, got {value!r:.100} of type {type(value).__name__}.")

    def same_arguments(self, arguments):
        return all((a is None) == (b is None) and (a is None or (a.shape == b.shape and numpy.array_equal(a, b)))
                   for a, b in zip(self.arguments, arguments))

    def result_dtype(self, tensors, arguments):
        floats = [t.dtype for t in tensors if numpy.dtype(t.dtype).kind == "f"]
        floats += [a.dtype for a in arguments if a is not None and a.dtype.kind == "f"]
        return numpy.result_type(*floats).name if floats else backend.floatx()

    def output_shape_of(self, arguments, shapes):
        given = iter(shapes)
        first, second = (next(given) if a is None else a.shape for a in arguments)
        return matmul_shape(first, second, self._where())

    def operands(self, arrays):
        given = iter(arrays)
        xp = backend.array_module(arrays[0])
        operands = []
        for a in self.arguments:
            if a is None:
                operands.append(next(given))
                continue
            key = (xp.__name__, self.dtype)
            if key not in self._on_device:
                self._on_device[key] = xp.asarray(a.astype(self.dtype))
            operands.append(self._on_device[key])
        return operands

    @classmethod
    def decode_argument(cls, position, value, where):
        """An array as Keras writes it: {"class_name": "__numpy__" (or "__tensor__"), "config": {"value": ...,
        "dtype": ...}}."""
        array = super().decode_argument(position, value, where) if isinstance(value, dict) else None
        if not isinstance(array, numpy.ndarray):
            raise ValueError(f"{where}: Matmul's arguments are symbolic tensors or arrays ('__numpy__'), got "
                             f"{value!r:.200}.")
        if array.ndim < 1:
            raise ValueError(f"{where}: Matmul's array must hold real numbers and have one axis or more, got "
                             f"{array.dtype.name} of shape {array.shape}.")
        return array


# Keras's class names of the operations here, for models read back from a config.
OPERATIONS = {cls.__name__: cls for cls in (GetItem, Matmul)}
