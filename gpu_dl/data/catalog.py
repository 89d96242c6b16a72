"""The data sets ``gpu-dl`` trains on, by name, ready for a model: float32 images in [0, 1] with a
channel axis (N, H, W, C) and integer class ids (N,); or a folder of class subfolders of image files, as
batches read from disk."""
from __future__ import annotations

import os

import numpy

from .cifar10 import load_cifar10
from .cifar100 import load_cifar100
from .digits import load_digits
from .image_folders import image_dataset_from_directory
from .mnist import load_fashion_mnist, load_mnist
from .py_dataset import PyDataset

DATASETS = {
    # name: (loader taking a path, pixel maximum, description)
    "digits": (None, 1.0, "scikit-learn's 8x8 handwritten digits"),
    "mnist": (load_mnist, 255.0, "MNIST handwritten digits, 28x28"),
    "fashion_mnist": (load_fashion_mnist, 255.0, "Fashion-MNIST clothing images, 28x28"),
    "cifar10": (load_cifar10, 255.0, "CIFAR-10 colour images, 32x32x3"),
    "cifar100": (load_cifar100, 255.0, "CIFAR-100 colour images in 100 classes, 32x32x3"),
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


def is_image_folder(name):
    """Whether ``--data`` names a folder (of class subfolders of images) rather than a data set of DATASETS."""
    return name not in DATASETS and os.path.isdir(name)


class _Rescaled(PyDataset):
    """A labelled image data set's batches with the pixels scaled to [0, 1], as the named data sets are given."""

    def __init__(self, dataset, scale):
        super().__init__(workers=dataset.workers, max_queue_size=dataset.max_queue_size)
        self.dataset, self.scale = dataset, numpy.float32(scale)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        images, labels = self.dataset[index]
        return images * self.scale, labels

    def on_epoch_end(self):
        self.dataset.on_epoch_end()     # the folder's data set reshuffles its files for the next pass


def load_image_folder(path, image_size, batch_size, seed, validation_split=0.2):
    """``train, test, description, class_names`` for a folder of class subfolders: batches of float32 images
    (batch, height, width, 3) in [0, 1] with int32 class ids (batch,), from ``image_dataset_from_directory``;
    the test part is its validation subset (the last ``validation_split`` of the files in the seed's order)."""
    train, test = image_dataset_from_directory(path, image_size=image_size, batch_size=batch_size, seed=seed,
                                               validation_split=validation_split, subset="both")
    description = f"image folder {path}, resized to {image_size[0]}x{image_size[1]}"
    return _Rescaled(train, 1 / 255), _Rescaled(test, 1 / 255), description, train.class_names
