"""MNIST: 60,000 training and 10,000 test images of handwritten digits, 28x28 uint8, labels 0-9."""
from ..data.mnist import _load_npz
from .downloads import fetch

FILE_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def load_data(path="mnist.npz"):
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 28, 28), uint8 labels (N,). ``path``: the
    file's name in the cache (``~/.keras/datasets``)."""
    return _load_npz(fetch("mnist.npz", path, FILE_HASH))
