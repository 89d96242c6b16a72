"""``Hashing`` and ``HashedCrossing``, Keras 3's preprocessing layers that bin strings and integers by a stable
hash, with the bins TensorFlow gives (Keras computes them with TensorFlow on every backend).

``Hashing(num_bins, mask_value=None, salt=None, output_mode="int")``: each value (integers written in decimal,
floats truncated to integers first) is hashed with FarmHash ``Fingerprint64`` (with a ``salt``: SipHash-2-4
keyed ``[salt0, salt1]``), bin ``hash % num_bins``; with a ``mask_value``, values equal to it go to bin 0 and
the others to ``1 + hash % (num_bins - 1)``. ``HashedCrossing(num_bins, output_mode="int")`` crosses two or more
features of shape ``()``, ``(batch,)`` or ``(batch, 1)`` as ``tf.sparse.cross_hashed`` does: a running 64-bit
``FingerprintCat64`` of the key ``0xDECAFCAFFE`` with each feature's fingerprint (a string's ``Fingerprint64``,
an integer's own bits), bin ``% num_bins``.

The hashing is host work over all values at once (``string_hashing``); the bins, and the one-hot, multi-hot or
count vectors made of them, go to the current device. Neither layer has weights or an input gradient.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from .base import Layer
from .category_encoding import checked_mode, encode_categorical, encoded_shape, refuse_sparse
from .string_hashing import as_strings, fingerprint64, hash_buckets
from .symbolic import any_symbolic
from .text_inputs import host_array, split_integer_dtype

HASHING_MODES = ("int", "one_hot", "multi_hot", "count")
CROSSING_MODES = ("int", "one_hot")
CROSS_HASH_KEY = 0xDECAFCAFFE


def _positive_bins(num_bins, where):
    if isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral) or num_bins <= 0:
        raise ValueError(f"{where}: `num_bins` cannot be None or non-positive. Received: num_bins={num_bins!r}.")
    return int(num_bins)


class _HostInputLayer(Layer):
    """A layer whose inputs are host data (text or numbers), never cast to its dtype."""

    supports_jit = False        # as Keras's layer (Layer.supports_jit)

    fixed_input_axes = ()
    keeps_input_dtype = True
    reads_text = True       # a Sequential starting with it takes text data as it is

    def _as_input(self, x):
        return host_array(x, f"{type(self).__name__} layer '{self.name}'")

    def backward(self, dy):
        return None


class Hashing(_HostInputLayer):
    """Keras 3's ``Hashing`` (see the module docstring). Input: strings or integers of any shape (rank <= 2 for
    multi-hot and count); output: int64 bins shaped as the input (the layer's integer dtype), or encoded vectors
    of ``num_bins`` in its float dtype."""

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False, **kwargs):
        given = kwargs.get("dtype")
        self._int_dtype = split_integer_dtype(kwargs, "int64" if output_mode == "int" else None)
        super().__init__(**kwargs)
        where = self._where
        self.num_bins = _positive_bins(num_bins, where)
        self.output_mode = checked_mode(output_mode, HASHING_MODES, where)
        if self.output_mode == "int" and self._int_dtype not in ("int32", "int64"):
            raise ValueError(f"{where}: when output_mode='int', `dtype` should be an integer type, 'int32' or "
                             f"'int64'. Received: dtype={given!r}")
        refuse_sparse(sparse, where)
        self.sparse = False
        if mask_value is not None and not isinstance(mask_value, (str, bytes, numbers.Integral)):
            raise ValueError(f"{where}: `mask_value` must be a string, an integer or None, got {mask_value!r}.")
        self.mask_value = mask_value
        self.salt = None
        if salt is not None:
            if isinstance(salt, (tuple, list)) and len(salt) == 2 and all(
                    isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in salt):
                self.salt = [int(s) for s in salt]
            elif isinstance(salt, numbers.Integral) and not isinstance(salt, bool):
                self.salt = [int(salt), int(salt)]
            else:
                raise ValueError(f"{where}: the `salt` argument for `Hashing` can only be a tuple of size 2 integers, "
                                 f"or a single integer. Received: salt={salt!r}.")
        self.strong_hash = self.salt is not None

    @property
    def _where(self):
        return f"Hashing layer '{self.name}'"

    @property
    def output_dtype(self):
        return self._int_dtype or self.dtype

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        return encoded_shape(input_shape, self.output_mode, self.num_bins)

    def _symbolic_dtype(self):
        return self.output_dtype

    def hash_values(self, values):
        """The bins of the host array ``values`` (int64, shaped as it), before any encoding."""
        bins = self.num_bins
        mask = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            mask = _equal(values, self.mask_value, self._where)
        try:
            text = as_strings(values)
        except TypeError as e:
            raise TypeError(f"{self._where}: {e}") from None
        out = hash_buckets(text, bins, self.salt)
        if mask is not None:
            out = numpy.where(mask, 0, out + 1)
        return out

    def call(self, x, training=False):
        bins = backend.to_device(self.hash_values(x))
        if self.output_mode == "int":
            return bins.astype(self._int_dtype)
        return encode_categorical(bins, self.output_mode, self.num_bins, self.output_dtype, where=self._where)

    def get_config(self):
        config = super().get_config()
        config["dtype"] = self.output_dtype
        return {**config, "num_bins": self.num_bins, "salt": self.salt, "mask_value": self.mask_value,
                "output_mode": self.output_mode, "sparse": self.sparse}


def _equal(values, mask_value, where):
    """Where the host array ``values`` equals ``mask_value``; a TypeError where they cannot be compared (text
    against a number), as Keras refuses them."""
    text = values.dtype.kind == "O"
    if text != isinstance(mask_value, (str, bytes)):
        raise TypeError(f"{where}: mask_value={mask_value!r} cannot be compared with "
                        f"{'string' if text else 'numeric'} inputs; give a mask_value of the inputs' kind.")
    if text:
        other = mask_value.encode("utf-8") if isinstance(mask_value, str) else mask_value.decode("utf-8")
        return (values == mask_value) | (values == other)
    return values == mask_value


def fingerprint_cat64(first, second):
    """FarmHash's ``FingerprintCat64`` of two uint64 arrays (TensorFlow's feature-cross combiner)."""
    mul = numpy.uint64(0xc6a4a7935bd1e995)
    shift = numpy.uint64(47)
    with numpy.errstate(over="ignore"):
        result = first ^ mul
        mixed = second * mul
        result ^= (mixed ^ (mixed >> shift)) * mul
        result *= mul
        result = (result ^ (result >> shift)) * mul
        return result ^ (result >> shift)


class HashedCrossing(_HostInputLayer):
    """Keras 3's ``HashedCrossing(num_bins, output_mode="int", sparse=False)`` (see the module docstring).
    Called on a list of two or more features of equal shape ``()``, ``(batch,)`` or ``(batch, 1)``, integers or
    strings; output: int64 bins of that shape (the layer's integer dtype) or one-hot vectors of ``num_bins``."""

    takes_input_list = True

    def __init__(self, num_bins, output_mode="int", sparse=False, **kwargs):
        given = kwargs.get("dtype")
        self._int_dtype = split_integer_dtype(kwargs, "int64" if output_mode == "int" else None)
        super().__init__(**kwargs)
        where = self._where
        self.num_bins = _positive_bins(num_bins, where)
        self.output_mode = checked_mode(output_mode, CROSSING_MODES, where)
        if self.output_mode == "int" and self._int_dtype is None:
            raise ValueError(f"{where}: when output_mode='int', `dtype` should be an integer type. Received: "
                             f"dtype={given!r}")
        refuse_sparse(sparse, where)
        self.sparse = False

    @property
    def _where(self):
        return f"HashedCrossing layer '{self.name}'"

    @property
    def output_dtype(self):
        return self._int_dtype or self.dtype

    def _symbolic_dtype(self):
        return self.output_dtype

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"{self._where}: expected as input a list/tuple of 2 or more tensors. Received "
                             f"input_shape={input_shape}")
        first = tuple(input_shape[0])
        if self.output_mode == "int":
            return first
        if first and first[-1] == 1:
            return first[:-1] + (self.num_bins,)
        return first + (self.num_bins,)

    def __call__(self, x, training=None, mask=None, initial_state=None):
        if any_symbolic(x):
            return self.symbolic_call(x, training=training)
        if not isinstance(x, (list, tuple)):
            raise ValueError(f"{self._where}: `HashedCrossing` should be called on a list or tuple of inputs. "
                             f"Received an input of type {type(x).__name__}.")
        if len(x) < 2:
            raise ValueError(f"{self._where}: `HashedCrossing` should be called on at least two inputs. Received "
                             f"{len(x)}.")
        xs = [self._as_input(v) for v in x]
        first = xs[0].shape
        if len(first) > 2 or (len(first) == 2 and first[-1] != 1):
            raise ValueError(f"{self._where}: all inputs should have shape (), (batch_size) or (batch_size, 1). "
                             f"Received shapes {[v.shape for v in xs]}.")
        if any(v.shape != first for v in xs[1:]):
            raise ValueError(f"{self._where}: all inputs should have equal shape. Received shapes "
                             f"{[v.shape for v in xs]}.")
        if any(v.dtype.kind not in "iuO" for v in xs):
            raise ValueError(f"{self._where}: all inputs should have an integer or string dtype. Received dtypes "
                             f"{[str(v.dtype) for v in xs]}.")
        self.ensure_built([tuple(v.shape) for v in xs])
        return self.call(xs)

    def call(self, xs, training=False):
        shape = xs[0].shape
        crossed = numpy.full(int(numpy.prod(shape)), numpy.uint64(CROSS_HASH_KEY), numpy.uint64)
        for v in xs:
            flat = v.reshape(-1)
            feature = fingerprint64(flat) if flat.dtype.kind == "O" else flat.astype(numpy.int64).view(numpy.uint64)
            crossed = fingerprint_cat64(crossed, feature)
        bins = backend.to_device((crossed % numpy.uint64(self.num_bins)).astype(numpy.int64).reshape(shape))
        if self.output_mode == "int":
            return bins.astype(self._int_dtype)
        return encode_categorical(bins, "one_hot", self.num_bins, self.output_dtype, where=self._where)

    def get_config(self):
        return {"num_bins": self.num_bins, "output_mode": self.output_mode, "sparse": self.sparse, "name": self.name,
                "dtype": self.output_dtype}
