"""The data sets ``gpu-dl`` trains on, by name, ready for a model: float32 images in [0, 1] with a
channel axis (N, H, W, C) and integer class ids (N,)."""
from __future__ import annotations

import numpy

from .cifar10 import load_cifar10
from .digits import load_digits
from .mnist import load_fashion_mnist, load_mnist

DATASETS = {
    # name: (loader taking a path, pixel maximum, description)
    "digits": (None, 1.0, "scikit-learn's 8x8 handwritten digits"),
    "mnist": (load_mnist, 255.0, "MNIST handwritten digits, 28x28"),
    "fashion_mnist": (load_fashion_mnist, 255.0, "Fashion-MNIST clothing images, 28x28"),
    "cifar10": (load_cifar10, 255.0, "CIFAR-10 colour images, 32x32x3"),
}


def load_dataset(name, path=None):
    """``(x_train, y_train), (x_test, y_test), description`` for a data set of ``DATASETS``."""
    if name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}; known: {', '.join(DATASETS)}.")
    loader, scale, description = DATASETS[name]
    if loader is None:
        if path is not None:
            raise ValueError("The digits ship with scikit-learn: they take no data path.")
        (x_train, y_train), (x_test, y_test) = load_digits(image_shape=True)
    else:
        (x_train, y_train), (x_test, y_test) = loader(path)
    return _ready(x_train, y_train, scale), _ready(x_test, y_test, scale), description


def _ready(x, y, scale):
    x = numpy.asarray(x, dtype=numpy.float32) / numpy.float32(scale)
    if x.ndim == 3:
        x = x[..., None]
    return x, numpy.asarray(y).reshape(-1).astype(numpy.int64)
