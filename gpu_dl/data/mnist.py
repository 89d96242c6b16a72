"""MNIST and Fashion-MNIST from files already on disk (nothing is downloaded).

Two forms are read:

- Keras's ``mnist.npz`` (arrays ``x_train``, ``y_train``, ``x_test``,
  ``y_test``), read member by member; arrays of Python objects (pickles)
  are refused;
- the four IDX files of the original distribution, gzipped or not:
  ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the
number of dimensions), one big-endian uint32 per dimension, then the values
in row-major order, big-endian. The header is checked against the data size.

Nothing is decompressed beyond what the format says a file holds: an IDX
file is read as its header plus exactly the bytes its dimensions call for,
and a ``.npz`` member only after its zip entry and ``.npy`` header agree on
its size; either way at most ``MAX_ARRAY_BYTES``. A gzip bomb or an archive
member that claims or inflates to more is refused before it fills memory.

Where to look, in order: ``path`` (a file or a folder) if given, else
``$GPU_DL_DATA/<name>``, ``~/.gpu_dl/datasets/<name>`` and the folder Keras
downloads to (``~/.keras/datasets``).
"""
from __future__ import annotations

import gzip
import math
import os
import zipfile
import zlib

import numpy

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# The most bytes one array of a data file may hold: 2 GiB, over 40 times MNIST's training images (47 MB). Files
# declaring more are refused before anything is read, so a small crafted file cannot make the reader allocate
# or decompress without bound.
MAX_ARRAY_BYTES = 2**31

# IDX type code -> big-endian dtype.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def default_dirs(name, keras_subdir=None):
    """The folders searched when no path is given: ``$GPU_DL_DATA/<name>``, ``~/.gpu_dl/datasets/<name>``,
    then Keras's download folder (``~/.keras/datasets``, or a sub-folder of it)."""
    dirs = []
    root = os.environ.get("GPU_DL_DATA")
    if root:
        dirs.append(os.path.join(os.path.expanduser(root), name))
    dirs.append(os.path.join(os.path.expanduser("~"), ".gpu_dl", "datasets", name))
    keras_root = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
    dirs.append(os.path.join(keras_root, keras_subdir) if keras_subdir else keras_root)
    return dirs


def missing_files_error(title, expected, searched, path=None):
    """A FileNotFoundError that says which files to put where."""
    lines = [f"{title}: no data files found (gpu_dl never downloads)."]
    if path is not None and not os.path.exists(path):
        lines.append(f"The given path does not exist: {path}")
    lines.append("Expected one of:")
    lines.extend(f"  - {form}" for form in expected)
    lines.append("Searched:")
    lines.extend(f"  - {d}" for d in searched)
    lines.append("Put the files in one of these folders, set GPU_DL_DATA to a folder holding "
                 "a sub-folder of that name, or pass path=... .")
    return FileNotFoundError("\n".join(lines))


def as_uint8(array, where, what):
    """``array`` as uint8 when it holds whole numbers 0..255 (as the data sets' files do); a ValueError naming
    ``where`` otherwise, since a cast would silently wrap negative or large values and truncate fractions."""
    if array.dtype == numpy.uint8:
        return array
    if array.dtype.kind not in "iub":
        raise ValueError(f"{where}: {what} must hold whole numbers 0..255 (uint8), got {array.dtype}.")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{where}: {what} must hold values 0..255 (uint8), found values from {array.min()} "
                         f"to {array.max()}.")
    return array.astype(numpy.uint8)


def read_idx(path):
    """The array stored in the IDX file ``path`` (gzipped when its name ends in .gz); a ValueError naming
    the file when its header is malformed, declares more than ``MAX_ARRAY_BYTES``, or does not match the
    bytes that follow it.

    Exactly the header and the data its dimensions call for are read (decompressed): a stream holding more
    is refused after one byte past that, so a gzip bomb costs no more memory than the array it declares.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = _read_exactly(f, 4)
            ndim = head[3] if len(head) == 4 else 0
            head += _read_exactly(f, 4 * ndim)
            dtype, dims, header = _idx_header(head, path)
            expected = math.prod(dims) * dtype.itemsize
            if expected > MAX_ARRAY_BYTES:
                raise ValueError(f"{path}: IDX header declares shape {dims} of {dtype.name} ({expected} bytes), more "
                                 f"than the {MAX_ARRAY_BYTES} bytes gpu_dl reads from one IDX file; it is not a data "
                                 "set file (corrupt or crafted).")
            data = numpy.empty(expected, dtype=numpy.uint8)
            got = _read_into(f, data)
            if got < expected:
                raise ValueError(f"{path}: IDX header declares shape {dims} of {dtype.name} ({expected} bytes of "
                                 f"data), but the file holds {got} bytes after the header (truncated or corrupt).")
            if f.read(1):
                raise ValueError(f"{path}: IDX header declares shape {dims} of {dtype.name} ({expected} bytes of "
                                 "data), but the file holds more than that after the header (corrupt, or not "
                                 "the array its header describes).")
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"IDX file {path} is not a readable gzip file ({exc}).") from None
    return data.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _read_exactly(f, n):
    """Up to ``n`` bytes of ``f``: fewer only at its end."""
    parts, left = [], n
    while left > 0:
        part = f.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _read_into(f, array):
    """Fill the uint8 ``array`` from ``f``; the number of bytes read (fewer than its size only at ``f``'s end)."""
    view, filled = memoryview(array), 0
    while filled < len(view):
        n = f.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def _idx_header(raw, where):
    """(big-endian dtype, dims, header length) from the first bytes of an IDX file."""
    if len(raw) < 4:
        raise ValueError(f"{where}: too short for an IDX header ({len(raw)} bytes; the magic number alone is 4).")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_TYPES:
        raise ValueError(f"{where}: not an IDX file (magic number {raw[:4].hex()}; expected 0000 then a type "
                         f"code in {sorted(hex(c) for c in _IDX_TYPES)} and the number of dimensions).")
    if ndim == 0:
        raise ValueError(f"{where}: IDX header declares 0 dimensions.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{where}: truncated IDX header: {ndim} dimension sizes need {header} bytes, "
                         f"the file has {len(raw)}.")
    dims = tuple(int(d) for d in numpy.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return numpy.dtype(_IDX_TYPES[code]), dims, header


def parse_idx(raw, where="IDX data"):
    """The array held in the bytes of one IDX file."""
    dtype, dims, header = _idx_header(raw, where)
    expected = math.prod(dims) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        raise ValueError(f"{where}: IDX header declares shape {dims} of {dtype.name} ({expected} bytes of data), "
                         f"but the file holds {actual} bytes after the header (truncated or corrupt).")
    data = numpy.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _find_idx(folder, stem):
    for candidate in (stem + ".gz", stem):
        p = os.path.join(folder, candidate)
        if os.path.isfile(p):
            return p
    return None


def _load_idx_folder(folder, files):
    x_train, y_train, x_test, y_test = (read_idx(p) for p in files)
    for x, y, images, labels in ((x_train, y_train, files[0], files[1]), (x_test, y_test, files[2], files[3])):
        if x.ndim != 3:
            raise ValueError(f"{images}: image file must hold a 3-D array (count, rows, cols), got shape {x.shape}.")
        if y.ndim != 1:
            raise ValueError(f"{labels}: label file must hold a 1-D array, got shape {y.shape}.")
        if len(x) != len(y):
            raise ValueError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels.")
    return ((as_uint8(x_train, files[0], "the images"), as_uint8(y_train, files[1], "the labels")),
            (as_uint8(x_test, files[2], "the images"), as_uint8(y_test, files[3], "the labels")))


def _load_npz(path):
    # An .npz is a zip archive; anything else (a lone .npy, text) is named as such rather than tried as pickle.
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a .npz archive (a .npz is a zip of .npy arrays, as numpy.savez writes); "
                         f"expected arrays {', '.join(NPZ_KEYS)}.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            found = [n[:-len(".npy")] for n in names if n.endswith(".npy")]
            missing = [k for k in NPZ_KEYS if k not in found]
            if missing:
                raise ValueError(f"{path}: missing array(s) {', '.join(missing)}; a Keras mnist.npz holds "
                                 f"{', '.join(NPZ_KEYS)} (found {', '.join(found) or 'none'}).")
            arrays = {k: _read_npy_member(archive, k, path) for k in NPZ_KEYS}
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc}).") from None
    for split in ("train", "test"):
        x, y = arrays["x_" + split], arrays["y_" + split]
        if x.ndim != 3:
            raise ValueError(f"{path}: x_{split} must have shape (count, rows, cols), got {x.shape}.")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{path}: y_{split} must have shape ({len(x)},) to match x_{split}, got {y.shape}.")
    arrays = {k: as_uint8(a, path, k) for k, a in arrays.items()}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _read_npy_member(archive, key, path):
    """The array of member ``<key>.npy``, read only after its zip entry and its .npy header agree on its size.

    The zip entry's declared size bounds what zipfile decompresses, and the header's shape bounds what is
    allocated: both are checked against ``MAX_ARRAY_BYTES`` and against each other before any data is read.
    """
    from numpy.lib import format as npy

    name = key + ".npy"
    where = f"{path}: array {key} ({name})"
    info = archive.getinfo(name)
    if info.file_size > MAX_ARRAY_BYTES:
        raise ValueError(f"{where} declares {info.file_size} bytes, more than the {MAX_ARRAY_BYTES} bytes gpu_dl "
                         "reads for one array; it is not a data set file (corrupt or crafted).")
    with archive.open(info) as f:
        try:
            version = npy.read_magic(f)
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, fortran_order, dtype = read_header(f)
        except ValueError as exc:
            raise ValueError(f"{where}: not a readable .npy array ({exc}).") from None
        if dtype.hasobject:
            raise ValueError(f"{path}: holds pickled objects, which gpu_dl does not load; "
                             f"it expects plain arrays {', '.join(NPZ_KEYS)}.")
        expected = math.prod(shape) * dtype.itemsize
        header = f.tell()
        if header + expected != info.file_size:
            raise ValueError(f"{where}: its header declares shape {shape} of {dtype} ({expected} bytes of data) "
                             f"but the member holds {info.file_size - header} bytes after the header "
                             "(truncated or corrupt).")
        data = numpy.empty(expected, dtype=numpy.uint8)
        if _read_into(f, data) != expected or f.read(1):
            raise ValueError(f"{where}: the data does not match its declared size (truncated or corrupt).")
    array = data.view(dtype)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def _load(title, name, npz_names, path, keras_subdir):
    expected = [f"{' or '.join(npz_names)} (Keras format: arrays {', '.join(NPZ_KEYS)})",
                "the four IDX files " + ", ".join(s + ".gz" for s in IDX_FILES) + " (gzipped or not)"]
    if path is not None:
        path = os.fspath(os.path.expanduser(path))
        if os.path.isfile(path):
            if path.endswith(".npz"):
                return _load_npz(path)
            raise ValueError(f"{title}: {path} is a file but not a .npz; pass the .npz file, or the folder "
                             f"holding the four IDX files.")
        searched = [path]
    else:
        searched = default_dirs(name, keras_subdir)
    for folder in searched:
        if not os.path.isdir(folder):
            continue
        for npz in npz_names:
            candidate = os.path.join(folder, npz)
            if os.path.isfile(candidate):
                return _load_npz(candidate)
        files = [_find_idx(folder, stem) for stem in IDX_FILES]
        if all(files):
            return _load_idx_folder(folder, files)
    raise missing_files_error(title, expected, searched, path)


def load_mnist(path=None):
    """MNIST as ``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 28, 28), uint8 labels (N,).

    ``path``: an ``mnist.npz`` file, or a folder holding it or the four IDX files. Without it, looks in
    ``$GPU_DL_DATA/mnist``, ``~/.gpu_dl/datasets/mnist`` and ``~/.keras/datasets`` (where Keras keeps
    ``mnist.npz``).
    """
    return _load("load_mnist", "mnist", ("mnist.npz",), path, None)


def load_fashion_mnist(path=None):
    """Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 28, 28), uint8 labels (N,).

    ``path``: a ``.npz`` file with Keras's array names, or a folder holding ``fashion_mnist.npz`` or the
    four IDX files. Without it, looks in ``$GPU_DL_DATA/fashion_mnist``, ``~/.gpu_dl/datasets/fashion_mnist``
    and ``~/.keras/datasets/fashion-mnist`` (where Keras keeps the IDX files).
    """
    return _load("load_fashion_mnist", "fashion_mnist", ("fashion_mnist.npz", "fashion-mnist.npz"), path,
                 "fashion-mnist")
