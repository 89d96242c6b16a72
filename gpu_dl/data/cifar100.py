"""CIFAR-100 from the "python version" files already on disk (nothing is downloaded).

Read from a folder ``cifar-100-python`` holding ``train`` (50,000 images) and
``test`` (10,000), each a pickled dict ``{b"data": uint8 array (N, 3072),
b"fine_labels": list of ints 0-99, b"coarse_labels": list of ints 0-19,
...}``, unpickled with CIFAR-10's ``RestrictedUnpickler`` (only what a numpy
array needs; anything else is refused before it runs). A file larger than
``MAX_FILE_BYTES`` is refused unread.
"""
from __future__ import annotations

import os

from .cifar10 import _batch_arrays, read_bounded_file
from .mnist import default_dirs, missing_files_error

FOLDER = "cifar-100-python"
FILES = ("train", "test")
LABEL_MODES = ("fine", "coarse")

# The real training file is a 155 MB pickle (50,000 rows of 3,072 bytes, labels and file names); 256 MiB holds
# it with room for a re-pickled copy and still refuses a crafted file before it is read into memory.
MAX_FILE_BYTES = 256 * 2**20


def _check_label_mode(label_mode):
    if label_mode not in LABEL_MODES:
        raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: label_mode={label_mode!r}.')


def read_folder(folder, label_mode="fine"):
    """``(x_train, y_train), (x_test, y_test)`` from the ``train`` and ``test`` files in ``folder``."""
    _check_label_mode(label_mode)
    splits = []
    for name in FILES:
        path = os.path.join(folder, name)
        raw = read_bounded_file(path, MAX_FILE_BYTES, "a CIFAR-100 file", "155 MB" if name == "train" else "31 MB")
        splits.append(_batch_arrays(raw, path, f"{label_mode}_labels", "CIFAR-100 file"))
    return splits[0], splits[1]


def load_cifar100(path=None, label_mode="fine"):
    """CIFAR-100 as ``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 32, 32, 3) channels_last and
    uint8 labels (N, 1), the 100 fine classes or (``label_mode="coarse"``) the 20 superclasses, as
    ``keras.datasets.cifar100.load_data`` returns them.

    ``path``: the ``cifar-100-python`` folder or a folder holding it. Without it, looks in
    ``$GPU_DL_DATA/cifar100``, ``~/.gpu_dl/datasets/cifar100`` and the folder Keras extracts to under
    ``~/.keras/datasets``.
    """
    _check_label_mode(label_mode)
    if path is not None:
        searched = [os.fspath(os.path.expanduser(path))]
    else:
        searched = default_dirs("cifar100")
        searched[-1] = os.path.join(searched[-1], "cifar-100-python-target")
    for folder in searched:
        for candidate in (folder, os.path.join(folder, FOLDER)):
            if all(os.path.isfile(os.path.join(candidate, n)) for n in FILES):
                return read_folder(candidate, label_mode)
    expected = [f"{FOLDER}/ holding train and test (the 'CIFAR-100 python version', extracted from "
                "cifar-100-python.tar.gz), or those two files directly in the folder"]
    raise missing_files_error("load_cifar100", expected, searched, path)
