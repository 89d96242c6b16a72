"""The ``x``/``y`` arrays of Keras's tabular data files (``boston_housing.npz``, ``california_housing.npz``)."""
import zipfile

from ..data.mnist import _read_npy_member


def read_xy(path):
    """``(x, y)`` of the .npz at ``path``: x 2-D, y 1-D of as many rows, read as plain arrays (no pickles)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            missing = [k for k in ("x", "y") if k + ".npy" not in names]
            if missing:
                raise ValueError(f"{path}: missing array(s) {', '.join(missing)}; the file holds x (features) and "
                                 "y (targets).")
            x, y = _read_npy_member(archive, "x", path), _read_npy_member(archive, "y", path)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc}).") from None
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{path}: expected x of shape (N, features) and y of shape (N,), got {x.shape} and "
                         f"{y.shape}.")
    return x, y
