"""CIFAR-10 from the "python version" files already on disk (nothing is downloaded).

Read from a folder ``cifar-10-batches-py`` holding ``data_batch_1`` ...
``data_batch_5`` and ``test_batch``, or straight out of the archive
``cifar-10-python.tar.gz`` (read in memory, never extracted to disk).

Each batch is a pickled dict ``{b"data": uint8 array (N, 3072), b"labels":
list of ints, ...}``. Pickle can run any code a file names, so the batches
are read with ``RestrictedUnpickler``: it resolves only the few globals a
numpy array needs and refuses every other one before anything runs.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy

from .mnist import as_uint8, default_dirs, missing_files_error

BATCH_FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"

# What a pickled numpy array needs (both spellings of numpy's core package; protocol 5 rebuilds an
# array from its buffer with _frombuffer), and the bytes constructor Python 3 writes for bytes objects
# in pickle protocols < 3.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds plain containers, bytes, str, numbers and numpy arrays, and nothing else."""

    source = "pickle"

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {self.source}: the file asks for {module}.{name}, which a CIFAR-10 batch "
                f"never contains (a batch holds only numpy arrays, lists, bytes and a dict)."
            )
        if module.startswith(("numpy._core.", "numpy.core.")):
            # numpy 2 moved numpy.core to numpy._core; take the one this numpy has without its shim's warning.
            from numpy.lib import NumpyVersion
            package = "numpy._core" if NumpyVersion(numpy.__version__) >= "2.0.0" else "numpy.core"
            module = package + "." + module.rsplit(".", 1)[1]
        return super().find_class(module, name)


def restricted_loads(data, source="pickle"):
    """Unpickle ``data`` (bytes) with ``RestrictedUnpickler``, byte-string keys kept as bytes."""
    unpickler = RestrictedUnpickler(io.BytesIO(data), encoding="bytes")
    unpickler.source = source
    return unpickler.load()


def _batch_arrays(data, source):
    """(x uint8 (N, 32, 32, 3), y uint8 (N, 1)) from the bytes of one pickled batch."""
    try:
        d = restricted_loads(data, source)
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refusing"):
            raise
        raise ValueError(f"{source}: not a readable CIFAR-10 batch ({exc}).") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"{source}: not a readable CIFAR-10 batch ({type(exc).__name__}: {exc}).") from None
    if not isinstance(d, dict):
        raise ValueError(f"{source}: a CIFAR-10 batch is a dict, got {type(d).__name__}.")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{source}: a CIFAR-10 batch holds 'data' and 'labels', found keys {sorted(map(str, d))}.")
    try:
        x = numpy.asarray(d["data"])
        y = numpy.asarray(d["labels"])
    except ValueError as exc:     # ragged lists
        raise ValueError(f"{source}: 'data' and 'labels' must be arrays or flat lists of numbers ({exc}).") from None
    if x.ndim != 2 or x.shape[1] != 3072:
        raise ValueError(f"{source}: 'data' must have shape (N, 3072), got {x.shape}.")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{source}: 'labels' must hold {x.shape[0]} labels, got shape {y.shape}.")
    x, y = as_uint8(x, source, "'data'"), as_uint8(y, source, "'labels'")
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    x = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return numpy.ascontiguousarray(x), y.reshape(-1, 1)


def _assemble(read, source_of):
    parts = [_batch_arrays(read(name), source_of(name)) for name in TRAIN_BATCHES]
    x_train = numpy.concatenate([p[0] for p in parts])
    y_train = numpy.concatenate([p[1] for p in parts])
    x_test, y_test = _batch_arrays(read(TEST_BATCH), source_of(TEST_BATCH))
    return (x_train, y_train), (x_test, y_test)


def _from_folder(folder):
    def read(name):
        with open(os.path.join(folder, name), "rb") as f:
            return f.read()
    return _assemble(read, lambda name: os.path.join(folder, name))


def _from_archive(path):
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable tar archive ({exc}).") from None
    with archive:
        members = {}
        for m in archive.getmembers():
            if m.isfile():
                members.setdefault(os.path.basename(m.name), m)
        missing = [n for n in TRAIN_BATCHES + (TEST_BATCH,) if n not in members]
        if missing:
            raise ValueError(f"{path}: the archive lacks {', '.join(missing)} "
                             f"(expected {BATCH_FOLDER}/data_batch_1..5 and {BATCH_FOLDER}/test_batch).")

        def read(name):
            return archive.extractfile(members[name]).read()
        return _assemble(read, lambda name: f"{path}:{members[name].name}")


def _has_batches(folder):
    return all(os.path.isfile(os.path.join(folder, n)) for n in TRAIN_BATCHES + (TEST_BATCH,))


def load_cifar10(path=None):
    """CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 32, 32, 3) channels_last and
    uint8 labels (N, 1), as ``keras.datasets.cifar10.load_data`` returns them.

    ``path``: the ``cifar-10-python.tar.gz`` archive, the ``cifar-10-batches-py`` folder, or a folder holding
    either. Without it, looks in ``$GPU_DL_DATA/cifar10``, ``~/.gpu_dl/datasets/cifar10`` and the folders
    Keras extracts to under ``~/.keras/datasets``.
    """
    if path is not None:
        path = os.fspath(os.path.expanduser(path))
        if os.path.isfile(path):
            return _from_archive(path)
        searched = [path]
    else:
        searched = default_dirs("cifar10")
        keras_root = searched.pop()
        searched += [os.path.join(keras_root, "cifar-10-batches-py-target"), keras_root]
    for folder in searched:
        if not os.path.isdir(folder):
            continue
        for candidate in (folder, os.path.join(folder, BATCH_FOLDER)):
            if _has_batches(candidate):
                return _from_folder(candidate)
        archive = os.path.join(folder, ARCHIVE)
        if os.path.isfile(archive):
            return _from_archive(archive)
    expected = [f"{BATCH_FOLDER}/ holding " + ", ".join(TRAIN_BATCHES + (TEST_BATCH,)) +
                " (the 'CIFAR-10 python version'), or those files directly in the folder",
                f"{ARCHIVE} (the same, as the archive the CIFAR-10 site distributes)"]
    raise missing_files_error("load_cifar10", expected, searched, path)
