"""Data helpers of ``keras.utils``: ``pack_x_y_sample_weight``, ``unpack_x_y_sample_weight``,
``standardize_dtype`` and ``split_dataset``.

``split_dataset`` differs from Keras in what it returns: Keras gives two
``tf.data.Dataset`` objects of single samples; gpu_dl has no tf.data, so it
gives the two parts in the form the data came in (an array gives two arrays;
a tuple or list of arrays, two tuples of arrays; a ``PyDataset``, two
``PyDataset`` views of its batches), ready for ``fit(x, y)`` or
``fit(dataset)``. The sizes, the order and the shuffle follow Keras: for the
same ``seed`` the same samples land on each side (Keras shuffles with Python's
``random`` seeded with ``seed``; gpu_dl uses a ``random.Random(seed)`` of its
own, which draws the same order without touching the global generator).
"""
from __future__ import annotations

import random

import numpy

from ..backend import floatx
from ..data.py_dataset import PyDataset

ALLOWED_DTYPES = ("float16", "float32", "float64", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
                  "int64", "bfloat16", "bool", "string", "float8_e4m3fn", "float8_e5m2", "complex64", "complex128")
# Keras 3's map for Python types on its non-TensorFlow backends.
_PYTHON_DTYPES = {bool: "bool", int: "int32", float: "float32", str: "string", "int": "int32", complex: "complex64"}


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``: the tuple forms ``fit`` takes, as Keras packs them
    (``x`` alone stays unwrapped unless it is a tuple or list, whose meaning would be ambiguous)."""
    if y is None:
        return (x,) if isinstance(x, (tuple, list)) else x
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """``(x, y, sample_weight)`` from ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` (None where absent)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return (data, None, None)
    if len(data) in (1, 2, 3):
        return tuple(data) + (None,) * (3 - len(data))
    raise ValueError(f"Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, found: "
                     f"{data!r:.200}")


def standardize_dtype(dtype):
    """The canonical name of ``dtype`` (a name, a NumPy or CuPy dtype or type, a Python type; None: floatx), or a
    ValueError for one Keras does not know."""
    if dtype is None:
        return floatx()
    try:
        dtype = _PYTHON_DTYPES.get(dtype, dtype)
    except TypeError:       # unhashable
        pass
    if hasattr(dtype, "name"):
        dtype = dtype.name
    elif hasattr(dtype, "__name__"):
        dtype = dtype.__name__
    elif "torch" in str(dtype) or "jax.numpy" in str(dtype):
        dtype = str(dtype).split(".")[-1]
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"Invalid dtype: {dtype}")
    return dtype


# ------------------------------------------------------------ split_dataset
def _split_sizes(left_size, right_size, total):
    """Keras's ``_rescale_dataset_split_sizes``: the two sizes as sample counts, checked."""
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is not None and type(size) not in (int, float):
            raise TypeError(f"Invalid `{name}` Type. Expected: int or float or None, Received: "
                            f"type({name})={type(size)}.")
    if left_size == 0 and right_size == 0:
        raise ValueError("Both `left_size` and `right_size` are zero. At least one of the split sizes must be "
                         "non-zero.")
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if (type(size) is int and (size <= 0 or size >= total)) or (type(size) is float and (size <= 0 or size >= 1)):
            raise ValueError(f"`{name}` should be either a positive integer smaller than {total}, or a float within "
                             f"the range `[0, 1]`. Received: {name}={size}")
    if type(left_size) is float and type(right_size) is float and left_size + right_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must be less than or equal "
                         "to 1.")
    left = round(left_size * total) if type(left_size) is float else left_size
    right = round(right_size * total) if type(right_size) is float else right_size
    if left is None:
        left = total - right
    elif right is None:
        right = total - left
    if left + right > total:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than the {total}. Received: "
                         f"left_size + right_size = {left + right} and total_length = {total}")
    for size, side in ((left, "left"), (right, "right")):
        if size == 0:
            raise ValueError(f"With `dataset` of length={total}, `left_size`={left} and `right_size`={right}. "
                             f"Resulting {side} side dataset split will be empty. Adjust any of the aforementioned "
                             "parameters")
    return int(left), int(right)


class _BatchSubset(PyDataset):
    """Some of another ``PyDataset``'s batches, by index, with its worker settings."""

    def __init__(self, dataset, indices):
        super().__init__(workers=getattr(dataset, "_workers", 1),
                         use_multiprocessing=getattr(dataset, "_use_multiprocessing", False),
                         max_queue_size=getattr(dataset, "_max_queue_size", 10))
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        if not -len(self.indices) <= index < len(self.indices):
            raise IndexError(f"batch index {index} out of range for a split of {len(self.indices)} batches.")
        return self.dataset[self.indices[index]]


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split ``dataset`` (an array, a tuple or list of arrays of one length, or a ``PyDataset`` of known length,
    split by batches) into a left and a right part; see the module docstring for what comes back.

    ``left_size``/``right_size``: a fraction in (0, 1) or a number of samples (of batches for a PyDataset); one
    may be None for the rest. The left part is taken from the start, the right from the end, after the
    shuffle when ``shuffle`` is True."""
    if left_size is None and right_size is None:
        raise ValueError("At least one of the `left_size` or `right_size` must be specified. Received: "
                         "left_size=None and right_size=None")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"split_dataset: `seed` must be an integer or None, got {seed!r}.")
    if isinstance(dataset, PyDataset):
        total = dataset.num_batches
        if total is None:
            raise ValueError("split_dataset: `dataset` is an endless PyDataset (num_batches is None); only a data set "
                             "of known length can be split.")
        parts = None
    elif isinstance(dataset, (tuple, list)):
        if not dataset:
            raise ValueError("split_dataset: `dataset` is an empty list; give a tuple or list of arrays.")
        parts = [numpy.asarray(a) if not hasattr(a, "shape") else a for a in dataset]
        if any(getattr(a, "ndim", 0) == 0 for a in parts):
            raise TypeError("split_dataset: every entry of the `dataset` tuple or list must be an array with a "
                            "sample axis.")
        lengths = {len(a) for a in parts}
        if len(lengths) != 1:
            raise ValueError(f"split_dataset: the arrays of `dataset` must have the same number of samples, got "
                             f"lengths {[len(a) for a in parts]}.")
        total = lengths.pop()
    elif hasattr(dataset, "shape") and hasattr(dataset, "__getitem__"):
        if len(dataset.shape) == 0:
            raise TypeError("split_dataset: `dataset` must have a sample axis, got a 0-d array.")
        parts, total = None, len(dataset)
    else:
        raise TypeError("The `dataset` argument must be an array, a tuple or list of arrays, or a gpu_dl PyDataset. "
                        f"Received: dataset={dataset!r:.200} of type {type(dataset)}")
    order = list(range(total))
    if shuffle:
        if seed is None:
            seed = random.randint(0, int(1e6))
        random.Random(seed).shuffle(order)
    left, right = _split_sizes(left_size, right_size, total)
    left_index, right_index = order[:left], order[total - right:]
    if isinstance(dataset, PyDataset):
        return _BatchSubset(dataset, left_index), _BatchSubset(dataset, right_index)
    if parts is None:
        return dataset[numpy.asarray(left_index, dtype=numpy.int64)], dataset[numpy.asarray(right_index,
                                                                                             dtype=numpy.int64)]
    take = [numpy.asarray(left_index, dtype=numpy.int64), numpy.asarray(right_index, dtype=numpy.int64)]
    return tuple(tuple(a[index] for a in parts) for index in take)
