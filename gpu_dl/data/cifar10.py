"""CIFAR-10 from the "python version" files already on disk (nothing is downloaded).

Read from a folder ``cifar-10-batches-py`` holding ``data_batch_1`` ...
``data_batch_5`` and ``test_batch``, or straight out of the archive
``cifar-10-python.tar.gz`` (read in memory, never extracted to disk).

Each batch is a pickled dict ``{b"data": uint8 array (N, 3072), b"labels":
list of ints, ...}``. Pickle can run any code a file names, so the batches
are read with ``RestrictedUnpickler``: it resolves only the few globals a
numpy array needs and refuses every other one before anything runs.

A small crafted file cannot make the reader fill memory: a batch larger than
``MAX_BATCH_BYTES`` is refused unread, and out of the archive only the six
batches are read, each a regular file at its expected path, while the
archive's headers (at most ``MAX_HEADERS``, each declaring at most
``MAX_BATCH_BYTES``, ``MAX_ARCHIVE_BYTES`` in all) are checked as they come.
pax and sparse headers are refused: the standard library expands them before
it hands a member over, and the CIFAR-10 archive has none.
"""
from __future__ import annotations

import io
import numbers
import os
import pickle
import stat
import tarfile

import numpy

from .mnist import as_uint8, default_dirs, missing_files_error

BATCH_FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"

# A batch of the real data set is a 31.0 MB pickle (10,000 rows of 3,072 bytes, plus labels and file names);
# pickled again by Python 3 with protocol 2 it grows to about 46 MB (each byte above 127 then takes two).
# 64 MiB holds either with room to spare, and still refuses a crafted member before it is read into memory.
MAX_BATCH_BYTES = 64 * 2**20
# The archive holds 9 entries (a folder, six batches, batches.meta, readme.html) in about 186 MB (280 MB with
# re-pickled batches); these bound how many headers, and how many bytes in all, are looked at before the
# reader gives up on an archive.
MAX_HEADERS = 64
MAX_ARCHIVE_BYTES = 8 * MAX_BATCH_BYTES
# A GNU long-name or long-link header holds one path.
_MAX_NAME_HEADER_BYTES = 64 * 2**10

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


def _batch_arrays(raw, source, label_key="labels", title="CIFAR-10 batch"):
    """(x uint8 (N, 32, 32, 3), y uint8 (N, 1)) from the bytes of one pickled batch: ``data`` and ``label_key``
    (CIFAR-100's files hold ``fine_labels`` and ``coarse_labels``); ``title`` names the file in errors."""
    try:
        d = restricted_loads(raw, source)
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refusing"):
            raise
        raise ValueError(f"{source}: not a readable {title} ({exc}).") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"{source}: not a readable {title} ({type(exc).__name__}: {exc}).") from None
    if not isinstance(d, dict):
        raise ValueError(f"{source}: a {title} is a dict, got {type(d).__name__}.")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise ValueError(f"{source}: a {title} holds 'data' and '{label_key}', found keys {sorted(map(str, d))}.")
    x = _bounded_array(d["data"], "'data'", True, len(raw), source)
    y = _bounded_array(d[label_key], f"'{label_key}'", False, len(raw), source)
    if x.ndim != 2 or x.shape[1] != 3072:
        raise ValueError(f"{source}: 'data' must have shape (N, 3072), got {x.shape}.")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{source}: '{label_key}' must hold {x.shape[0]} labels, got shape {y.shape}.")
    x, y = as_uint8(x, source, "'data'"), as_uint8(y, source, f"'{label_key}'")
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    x = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return numpy.ascontiguousarray(x), y.reshape(-1, 1)


def _bounded_array(value, what, rows, file_bytes, source):
    """``value`` (an array, a list of numbers, or with ``rows`` a list of rows) as a numpy array.

    A pickle can repeat one object by reference, so a few bytes can describe lists far larger than the file:
    a list is expanded only when it holds no more numbers than the file has bytes and nothing but numbers
    (a real batch holds arrays, whose bytes are all in the file).
    """
    if isinstance(value, (list, tuple)):
        lines = [r for r in value if isinstance(r, (list, tuple))] if rows else [value]
        count = (sum(len(r) if isinstance(r, (list, tuple)) else numpy.size(r) for r in value) if rows
                 else len(value))
        if count > file_bytes:
            raise ValueError(f"{source}: {what} lists {count} values, more than the file's {file_bytes} bytes; "
                             "a data set file does not repeat one object many times.")
        for line in lines:
            for v in line:
                if isinstance(v, numbers.Number):
                    continue
                if isinstance(v, (list, tuple, dict, numpy.ndarray)):
                    raise ValueError(f"{source}: 'data' and 'labels' must be arrays or flat lists of numbers.")
                raise ValueError(f"{source}: {what} must hold whole numbers 0..255 (uint8), got "
                                 f"{type(v).__name__} values.")
    try:
        return numpy.asarray(value)
    except ValueError as exc:     # ragged lists
        raise ValueError(f"{source}: 'data' and 'labels' must be arrays or flat lists of numbers ({exc}).") from None


def _assemble(batches):
    parts = [batches[name] for name in TRAIN_BATCHES]
    x_train = numpy.concatenate([p[0] for p in parts])
    y_train = numpy.concatenate([p[1] for p in parts])
    return (x_train, y_train), batches[TEST_BATCH]


def _from_folder(folder):
    batches = {}
    for name in TRAIN_BATCHES + (TEST_BATCH,):
        path = os.path.join(folder, name)
        batches[name] = _batch_arrays(read_bounded_file(path, MAX_BATCH_BYTES, "a CIFAR-10 batch", "31 MB"), path)
    return _assemble(batches)


def read_bounded_file(path, max_bytes, what, real_size):
    """The bytes of the regular file ``path``, refused unread when it has more than ``max_bytes`` (``what`` and
    ``real_size`` say in errors what the file should be and how large the real one is)."""
    # Checked before it is opened: a device or pipe by a batch's name would never end.
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: not a regular file; {what} is a file of about {real_size}.")
    if info.st_size > max_bytes:
        raise ValueError(f"{path}: {info.st_size} bytes, more than the {max_bytes} {what} may have (a real one "
                         f"has about {real_size}).")
    with open(path, "rb") as f:
        # One byte more than it had: a file that grew since is seen to have grown.
        raw = f.read(info.st_size + 1)
    if len(raw) > info.st_size:
        raise ValueError(f"{path}: changed while it was read.")
    return raw


class _Refused(ValueError):
    """An archive header the reader will not go past."""


def _header_checker(path):
    """A TarInfo class whose headers are checked as tarfile reads them, before it reads what they announce."""
    seen = {"headers": 0, "bytes": 0}

    class CheckedHeader(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf, encoding, errors):
            info = super().frombuf(buf, encoding, errors)
            seen["headers"] += 1
            seen["bytes"] += tarfile.BLOCKSIZE + -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_SPARSE):
                raise _Refused(f"{path}: the archive has a pax or sparse header (at {info.name!r}), which gpu_dl "
                               "does not read; the CIFAR-10 archive has none. Extract it and pass the "
                               f"{BATCH_FOLDER} folder, or re-pack it with `tar --format=gnu`.")
            if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) and info.size > _MAX_NAME_HEADER_BYTES:
                raise _Refused(f"{path}: a long-name header of {info.size} bytes; a path is never that long.")
            if info.size > MAX_BATCH_BYTES:
                raise _Refused(f"{path}: member {info.name!r} declares {info.size} bytes, more than the "
                               f"{MAX_BATCH_BYTES} a CIFAR-10 batch may have (a real one has about 31 MB).")
            if seen["headers"] > MAX_HEADERS:
                raise _Refused(f"{path}: more than {MAX_HEADERS} entries; the CIFAR-10 archive has 9.")
            if seen["bytes"] > MAX_ARCHIVE_BYTES:
                raise _Refused(f"{path}: its entries declare more than {MAX_ARCHIVE_BYTES} bytes in all; the "
                               "CIFAR-10 archive holds about 186 MB.")
            return info

    return CheckedHeader


def _from_archive(path):
    wanted = TRAIN_BATCHES + (TEST_BATCH,)
    places = {p: n for n in wanted for p in (n, f"{BATCH_FOLDER}/{n}")}
    try:
        archive = tarfile.open(path, "r:*", tarinfo=_header_checker(path))
    except (tarfile.TarError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable tar archive ({exc}).") from None
    batches = {}
    try:
        with archive:
            # Members are taken as they come and only the batches are read: the rest of the archive
            # (batches.meta, readme.html) is skipped unread, and reading stops once the six are in.
            while len(batches) < len(wanted):
                member = archive.next()
                if member is None:
                    break
                name = member.name[2:] if member.name.startswith("./") else member.name
                if os.path.basename(name.rstrip("/")) not in wanted:
                    continue
                source = f"{path}:{member.name}"
                if name not in places:
                    raise ValueError(f"{source}: a batch's name outside its place in the archive (expected "
                                     f"{BATCH_FOLDER}/{os.path.basename(name)}).")
                if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    raise ValueError(f"{source}: not a regular file (a link, folder or device); a CIFAR-10 batch "
                                     "is a file.")
                if places[name] in batches:
                    raise ValueError(f"{source}: the archive holds {places[name]} twice.")
                raw = archive.extractfile(member).read(member.size)
                if len(raw) != member.size:
                    raise ValueError(f"{source}: holds {len(raw)} bytes, not the {member.size} its header declares.")
                batches[places[name]] = _batch_arrays(raw, source)
    except (tarfile.TarError, EOFError, RecursionError) as exc:
        raise ValueError(f"{path}: not a readable tar archive ({exc}).") from None
    except OSError as exc:     # a damaged compressed stream
        raise ValueError(f"{path}: not a readable tar archive ({exc}).") from None
    missing = [n for n in wanted if n not in batches]
    if missing:
        raise ValueError(f"{path}: the archive lacks {', '.join(missing)} "
                         f"(expected {BATCH_FOLDER}/data_batch_1..5 and {BATCH_FOLDER}/test_batch).")
    return _assemble(batches)


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
