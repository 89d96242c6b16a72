"""Keras's array functions of ``keras.ops`` beyond the basic shapes (the operations are on ``array_base.py``:
``axes_rearrange.py``, ``matrices.py``, ``blocks_windows.py``, ``stacking_splitting.py``, ``sequences_dtypes.py``):
each takes what Keras's does, computes at once on arrays (NumPy or CuPy; numbers and lists go to the current device)
and records an operation on symbolic tensors. The constants (``tri``, ``identity``, ``empty``, the windows
``bartlett``, ``blackman``, ``hamming``, ``hanning``, ``kaiser``) are arrays of the current device, floatx unless
``dtype`` says otherwise; ``empty`` gives zeros."""
from __future__ import annotations

import numbers

import numpy

from ... import backend, backprop as _backprop
from ..symbolic import is_symbolic
from . import _array, _local, _symbolic, _taking_variables
from . import axes_rearrange as _axes
from . import matrices as _matrices
from . import blocks_windows as _blocks
from . import stacking_splitting as _stacking
from . import sequences_dtypes as _sequences
from .base import standardize_dtype

__all__ = [
    "append", "array_split", "dsplit", "hsplit", "vsplit", "dstack", "hstack", "vstack", "moveaxis", "swapaxes",
    "ravel", "rot90", "fliplr", "flipud", "diag", "diagflat", "diagonal", "tri", "vander", "kron", "outer", "inner",
    "vdot", "cross", "meshgrid", "unstack", "unravel_index", "depth_to_space", "space_to_depth", "extract_sequences",
    "fold", "unfold", "empty", "empty_like", "geomspace", "logspace", "array", "identity", "bartlett", "blackman",
    "hamming", "hanning", "kaiser", "rearrange", "view", "multi_hot", "cdist",
]


def _one(cls, x, *settings):
    """``cls(*settings)`` on one tensor: recorded on a symbolic one, computed at once on an array."""
    if is_symbolic(x):
        return cls(*settings).apply(x)
    return _local(cls, *settings).forward_array(_array(x))


def _two(cls, x1, x2, *settings):
    """``cls(*settings)`` on two tensors (numbers and constant arrays allowed beside a symbolic one): the arrays cast
    to Keras's dtype of the two first."""
    if is_symbolic(x1) or is_symbolic(x2):
        return cls(*settings).apply(x1, x2)
    op = _local(cls, *settings)
    a, b = _array(x1), _array(x2)
    xp = backend.array_module(a, b)
    a, b = xp.asarray(a), xp.asarray(b)
    op.dtype = op.result_dtype([a, b], [None, None])
    return op.forward_function(a.astype(op.dtype, copy=False), b.astype(op.dtype, copy=False))


def _joined(cls, xs):
    if not isinstance(xs, (list, tuple)) or not xs:
        raise TypeError(f"{cls.__name__.lower()} takes a list of tensors, got {type(xs).__name__}.")
    if _symbolic(*xs):
        return cls().apply(list(xs))
    arrays = [_array(x) for x in xs]
    xp = backend.array_module(*arrays)
    arrays = [xp.asarray(a) for a in arrays]
    op = _local(cls)
    dtype = op.result_dtype(arrays, [None] * len(arrays))
    return op.forward_function(*[a.astype(dtype, copy=False) for a in arrays])


# ------------------------------------------------------------------ joining and splitting
def append(x1, x2, axis=None):
    """x2 after x1 along ``axis``, or both flattened (axis None)."""
    return _two(_stacking.Append, x1, x2, axis)


def hstack(xs):
    return _joined(_stacking.Hstack, xs)


def vstack(xs):
    return _joined(_stacking.Vstack, xs)


def dstack(xs):
    return _joined(_stacking.Dstack, xs)


def array_split(x, indices_or_sections, axis=0):
    """``indices_or_sections`` parts along ``axis``, as equal as can be (the first ones one longer); a list."""
    if isinstance(indices_or_sections, bool) or not isinstance(indices_or_sections, numbers.Integral):
        raise TypeError(f"array_split: `indices_or_sections` must be an integer, got {indices_or_sections!r:.80}.")
    if indices_or_sections <= 0:
        raise ValueError(f"array_split: `indices_or_sections` must be positive, got {indices_or_sections}.")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"array_split: `axis` must be an integer, got {axis!r:.80}.")
    return _split(_stacking.ArraySplit, x, indices_or_sections, axis)


def _split(cls, x, *settings):
    if is_symbolic(x):
        return cls(*settings).apply(x)
    return list(_local(cls, *settings).forward_array(_array(x)))


def hsplit(x, indices_or_sections):
    return _split(_stacking.Hsplit, x, indices_or_sections)


def vsplit(x, indices_or_sections):
    return _split(_stacking.Vsplit, x, indices_or_sections)


def dsplit(x, indices_or_sections):
    return _split(_stacking.Dsplit, x, indices_or_sections)


def unstack(x, num=None, axis=0):
    """The slices of ``x`` along ``axis`` (that axis removed): a list on symbolic tensors, a tuple on arrays, as
    Keras gives them."""
    if is_symbolic(x):
        return _stacking.Unstack(num, axis).apply(x)
    return tuple(_local(_stacking.Unstack, num, axis).forward_array(_array(x)))


# ------------------------------------------------------------------ axes, flips, diagonals
def moveaxis(x, source, destination):
    return _one(_axes.Moveaxis, x, source, destination)


def swapaxes(x, axis1, axis2):
    return _one(_axes.Swapaxes, x, axis1, axis2)


def ravel(x):
    return _one(_axes.Ravel, x)


def rot90(array, k=1, axes=(0, 1)):
    return _one(_axes.Rot90, array, k, axes)


def fliplr(x):
    return _one(_axes.Fliplr, x)


def flipud(x):
    return _one(_axes.Flipud, x)


def diag(x, k=0):
    return _one(_matrices.Diag, x, k)


def diagflat(x, k=0):
    return _one(_matrices.Diagflat, x, k)


def diagonal(x, offset=0, axis1=0, axis2=1):
    return _one(_matrices.Diagonal, x, offset, axis1, axis2)


# ------------------------------------------------------------------ blocks and windows
def depth_to_space(x, block_size, data_format="channels_last"):
    return _one(_blocks.DepthToSpace, x, block_size, data_format)


def space_to_depth(x, block_size, data_format="channels_last"):
    return _one(_blocks.SpaceToDepth, x, block_size, data_format)


def extract_sequences(x, sequence_length, sequence_stride):
    return _one(_blocks.ExtractSequences, x, sequence_length, sequence_stride)


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """The sliding blocks of a channels-first batch of images (N, C, H, W) as (N, C * kh * kw, blocks)."""
    return _one(_blocks.Unfold, x, kernel_size, dilation, padding, stride)


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Blocks (N, C * kh * kw, blocks) added back into images (N, C, H, W) of ``output_size``."""
    return _one(_blocks.Fold, x, output_size, kernel_size, dilation, padding, stride)


def rearrange(tensor, pattern, **axes_lengths):
    """einops's ``rearrange``: ``"b h w c -> b (h w) c"``, ``"b (h1 h) w c -> (b h1) h w c"`` with ``h1=2``."""
    if is_symbolic(tensor):
        return _axes.Rearrange().apply(tensor, pattern, **axes_lengths)
    for key, value in axes_lengths.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise TypeError(f"rearrange: the length of axis {key!r} must be a positive integer, got {value!r:.80}.")
    return _axes.rearranged(_array(tensor), pattern, {k: int(v) for k, v in axes_lengths.items()}, "rearrange")


# ------------------------------------------------------------------ products
def kron(x1, x2):
    return _two(_matrices.Kron, x1, x2)


def outer(x1, x2):
    return _two(_matrices.Outer, x1, x2)


def inner(x1, x2):
    return _two(_matrices.Inner, x1, x2)


def vdot(x1, x2):
    return _two(_matrices.Vdot, x1, x2)


def cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None):
    return _two(_matrices.Cross, x1, x2, axisa, axisb, axisc, axis)


def cdist(x, y):
    """The Euclidean distances between the rows of x (..., m, d) and y (..., n, d): (..., m, n), floats."""
    return _two(_matrices.CDist, x, y)


def vander(x, N=None, increasing=False):
    return _one(_matrices.Vander, x, N, increasing)


# ------------------------------------------------------------------ grids and sequences
def meshgrid(*x, indexing="xy"):
    """Coordinate grids of the (flattened) tensors: a list on symbolic tensors, a tuple on arrays."""
    if not x:
        raise TypeError("meshgrid takes one tensor or more.")
    if _symbolic(*x):
        return _stacking.Meshgrid(indexing).apply(*x)
    arrays = [_array(v) for v in x]
    xp = backend.array_module(*arrays)
    op = _local(_stacking.Meshgrid, indexing)
    return tuple(op.forward_function(*[xp.asarray(a) for a in arrays]))


def unravel_index(indices, shape):
    """The coordinates in ``shape`` of flat integer indices, one tensor per axis (a tuple on arrays)."""
    if is_symbolic(indices):
        return _stacking.UnravelIndex(shape).apply(indices)
    return tuple(_local(_stacking.UnravelIndex, shape).forward_array(_array(indices)))


def _spaced(cls, start, stop, *settings):
    if is_symbolic(start) or is_symbolic(stop):
        return cls(*settings).apply(start, stop)
    op = _local(cls, *settings)
    a, b = _array(start), _array(stop)
    xp = backend.array_module(a, b)
    a, b = xp.asarray(a), xp.asarray(b)
    op.dtype = op.result_dtype([a, b], [None, None])
    return op.forward_function(a.astype(op.dtype), b.astype(op.dtype))


def logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0):
    """``base`` to the powers evenly spaced from ``start`` to ``stop`` (floats), along a new ``axis``."""
    return _spaced(_sequences.Logspace, start, stop, num, endpoint, base, dtype, axis)


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """Numbers evenly spaced on a log scale from ``start`` to ``stop`` (floats), along a new ``axis``."""
    return _spaced(_sequences.Geomspace, start, stop, num, endpoint, dtype, axis)


# ------------------------------------------------------------------ dtypes and constants
def array(x, dtype=None):
    """``x`` as a tensor (a copy), of ``dtype`` when given."""
    if is_symbolic(x):
        return _sequences.Array(dtype).apply(x)
    return _array(x, dtype).copy()


def empty_like(x, dtype=None):
    """A tensor of x's shape and ``dtype`` (x's by default), of zeros."""
    return _one(_sequences.EmptyLike, x, dtype)


def view(x, dtype=None):
    """The same bytes read as ``dtype``; the last axis scales by the ratio of the item sizes."""
    return _one(_sequences.View, x, dtype)


def multi_hot(inputs, num_classes=None, axis=-1, dtype=None, sparse=False, **kwargs):
    """Integer classes in; per sample, 1 for each class present (floatx unless ``dtype``); no gradient."""
    if num_classes is None and "num_tokens" in kwargs:
        num_classes = kwargs.pop("num_tokens")
    if kwargs:
        raise TypeError(f"multi_hot takes no argument {sorted(kwargs)}.")
    if num_classes is None:
        raise ValueError("multi_hot: `num_classes` must be given.")
    return _one(_sequences.MultiHot, inputs, num_classes, axis, dtype, sparse)


def _count(value, what, where):
    if is_symbolic(value):
        raise TypeError(f"{where} takes a number, not a symbolic tensor: its result's shape depends on the value.")
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if value.shape != () or numpy.dtype(value.dtype).kind not in "iu":
            raise TypeError(f"{where}: `{what}` must be an integer, got an array of shape {value.shape}.")
        value = int(backend.to_numpy(value))
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: `{what}` must be an integer, got {value!r:.80} of type {type(value).__name__}.")
    if value < 0:
        raise ValueError(f"{where}: `{what}` must not be negative, got {value}.")
    return int(value)


def _constant(values, dtype):
    return backend.to_device(values, dtype=standardize_dtype(dtype or backend.floatx()))


def tri(N, M=None, k=0, dtype=None):
    """Ones on and below the k-th diagonal of an (N, M) matrix (M None: N), zeros above."""
    N = _count(N, "N", "tri")
    M = N if M is None else _count(M, "M", "tri")
    return _constant(numpy.tri(N, M, int(k)), dtype)


def identity(n, dtype=None):
    return _constant(numpy.identity(_count(n, "n", "identity")), dtype)


def empty(shape, dtype=None):
    """A tensor of ``shape``: gpu_dl gives zeros (Keras leaves the values undefined)."""
    shape = (shape,) if isinstance(shape, numbers.Integral) or hasattr(shape, "dtype") else shape
    if not isinstance(shape, (list, tuple)):
        raise TypeError(f"empty: `shape` must be an integer or a sequence of them, got {shape!r:.80}.")
    shape = tuple(_count(n, "shape", "empty") for n in shape)
    return _constant(numpy.zeros(shape), dtype)


def bartlett(x):
    """The Bartlett (triangular) window of ``x`` points, floatx."""
    return _constant(numpy.bartlett(_count(x, "x", "bartlett")), None)


def blackman(x):
    return _constant(numpy.blackman(_count(x, "x", "blackman")), None)


def hamming(x):
    return _constant(numpy.hamming(_count(x, "x", "hamming")), None)


def hanning(x):
    return _constant(numpy.hanning(_count(x, "x", "hanning")), None)


def kaiser(x, beta):
    """The Kaiser window of ``x`` points and shape ``beta``, floatx."""
    if is_symbolic(beta) or isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"kaiser: `beta` must be a number, got {beta!r:.80}.")
    return _constant(numpy.kaiser(_count(x, "x", "kaiser"), float(beta)), None)


# On arrays, loss.backward() refuses these functions' outputs (gpu_dl/backprop.py); variables are taken as Keras's
# ops take them (see keras_ops/__init__.py).
for _name in __all__:
    globals()[_name] = _backprop.followed(_taking_variables(globals()[_name]), _name)
del _name
