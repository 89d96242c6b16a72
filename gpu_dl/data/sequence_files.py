"""Keras's sequence data files (``imdb.npz``, ``reuters.npz``) read without running code from them.

Their arrays of word-id lists are NumPy object arrays, which ``numpy.save`` writes as a pickle. Such a
member is unpickled with CIFAR-10's ``RestrictedUnpickler`` (only the globals a numpy array needs; any
other one is refused before it runs) and must come out as a 1-D array of lists of whole numbers, each of
which becomes an int64 array. A pickle can repeat one list by reference, so the lists may hold no more
numbers in all than the member has bytes. Plain arrays (the labels) are read as ``mnist.npz``'s are.
"""
from __future__ import annotations

import pickle
import zipfile

import numpy

from .cifar10 import restricted_loads
from .mnist import MAX_ARRAY_BYTES, _read_into, _read_npy_member


def _open_header(archive, info, where):
    """The open member, positioned after its .npy header, and the header's (shape, fortran_order, dtype)."""
    from numpy.lib import format as npy
    f = archive.open(info)
    try:
        version = npy.read_magic(f)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        return f, read_header(f)
    except ValueError as exc:
        f.close()
        raise ValueError(f"{where}: not a readable .npy array ({exc}).") from None


def _read_sequences(archive, info, where):
    """A pickled object array of word-id lists as a list of int64 arrays."""
    if info.file_size > MAX_ARRAY_BYTES:
        raise ValueError(f"{where} declares {info.file_size} bytes, more than the {MAX_ARRAY_BYTES} bytes gpu_dl "
                         "reads for one array; it is not a data set file (corrupt or crafted).")
    f, (shape, _, dtype) = _open_header(archive, info, where)
    with f:
        if len(shape) != 1:
            raise ValueError(f"{where}: an array of sequences must be 1-D, its header says shape {shape}.")
        raw = bytearray(info.file_size - f.tell())
        if _read_into(f, raw) != len(raw) or f.read(1):
            raise ValueError(f"{where}: the data does not match its declared size (truncated or corrupt).")
    try:
        value = restricted_loads(bytes(raw), where)
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refusing"):
            raise ValueError(f"{where}: {exc}") from None
        raise ValueError(f"{where}: not a readable pickled array ({exc}).") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"{where}: not a readable pickled array ({type(exc).__name__}: {exc}).") from None
    if not isinstance(value, numpy.ndarray) or value.dtype != object or value.shape != tuple(shape):
        raise ValueError(f"{where}: expected a 1-D array of sequences of shape {shape}, got "
                         f"{type(value).__name__} {getattr(value, 'shape', '')}.")
    lengths = [len(s) if isinstance(s, (list, tuple, numpy.ndarray)) else -1 for s in value]
    if -1 in lengths:
        raise ValueError(f"{where}: every sequence must be a list of word ids.")
    if sum(lengths) > len(raw):
        raise ValueError(f"{where}: its sequences hold {sum(lengths)} ids, more than the member's {len(raw)} bytes; "
                         "a data set file does not repeat one list many times.")
    sequences = [numpy.asarray(s) for s in value]
    if any(s.ndim != 1 or (s.size and s.dtype.kind not in "iu") for s in sequences):
        raise ValueError(f"{where}: every sequence must be a flat list of whole numbers (word ids).")
    return [s.astype(numpy.int64) for s in sequences]


def load_npz(path, sequence_keys, label_keys, title):
    """``{key: array}`` of ``path``'s members: each of ``sequence_keys`` a list of int64 arrays (one per
    sequence), each of ``label_keys`` a 1-D array as long as the sequences beside it. ``title`` names the data
    set in errors."""
    keys = tuple(sequence_keys) + tuple(label_keys)
    try:
        with zipfile.ZipFile(path) as archive:
            found = [n[:-len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
            missing = [k for k in keys if k not in found]
            if missing:
                raise ValueError(f"{path}: missing array(s) {', '.join(missing)}; {title} holds {', '.join(keys)} "
                                 f"(found {', '.join(found) or 'none'}).")
            arrays = {k: _read_sequences(archive, archive.getinfo(k + ".npy"), f"{path}: array {k}")
                      for k in sequence_keys}
            arrays.update({k: _read_npy_member(archive, k, path) for k in label_keys})
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc}).") from None
    for xs, ys in zip(sequence_keys, label_keys):
        if arrays[ys].ndim != 1 or len(arrays[ys]) != len(arrays[xs]):
            raise ValueError(f"{path}: {ys} must have shape ({len(arrays[xs])},) to match {xs}, got "
                             f"{arrays[ys].shape}.")
    return arrays
