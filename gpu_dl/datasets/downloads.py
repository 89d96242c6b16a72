"""Where Keras's data sets are downloaded from, and the seeded shuffle and split its loaders share."""
from __future__ import annotations

import numpy

from ..utils.file_utils import get_file

# The bucket Keras's loaders download from (CIFAR comes from its authors' site).
ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def fetch(origin_name, fname=None, file_hash=None, **kwargs):
    """The cached path of ``fname`` (``origin_name`` where not given), downloaded from ``ORIGIN_FOLDER +
    origin_name`` if the cache lacks it or holds it with another hash."""
    return get_file(fname=fname or origin_name, origin=ORIGIN_FOLDER + origin_name, file_hash=file_hash, **kwargs)


def check_test_split(test_split):
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 and 1 (exclusive of 1).")


def shuffled(rng, *arrays):
    """``arrays`` (of one length) in the order ``rng`` (a ``numpy.random.RandomState``) shuffles ``arange(n)``
    into, as Keras's loaders draw it, so a seed gives Keras's order."""
    indices = numpy.arange(len(arrays[0]))
    rng.shuffle(indices)
    return [a[indices] for a in arrays]


def split(x, y, test_split):
    """``(x_train, y_train), (x_test, y_test)``: the first ``int(len(x) * (1 - test_split))`` rows train."""
    cut = int(len(x) * (1 - test_split))
    return (numpy.array(x[:cut]), numpy.array(y[:cut])), (numpy.array(x[cut:]), numpy.array(y[cut:]))
