"""CIFAR-10: 50,000 training and 10,000 test colour images, 32x32, in 10 classes."""
import os

import numpy

from ..backend.config import image_data_format
from ..data.cifar10 import BATCH_FOLDER, _from_folder
from ..utils.file_utils import get_file

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILE_HASH = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def in_image_data_format(splits):
    """``((x_train, y_train), (x_test, y_test))`` with the (N, 32, 32, 3) images moved to (N, 3, 32, 32) when
    ``image_data_format()`` is "channels_first", as Keras's CIFAR loaders return them."""
    if image_data_format() != "channels_first":
        return splits
    return tuple((numpy.ascontiguousarray(x.transpose(0, 3, 1, 2)), y) for x, y in splits)


def load_data():
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 32, 32, 3), or (N, 3, 32, 32) when
    ``gpu_dl.config.image_data_format()`` is "channels_first"; uint8 labels (N, 1). The batches are unpickled
    with a restricted unpickler."""
    folder = get_file(fname="cifar-10-batches-py-target", origin=ORIGIN, extract=True, file_hash=FILE_HASH)
    return in_image_data_format(_from_folder(os.path.join(folder, BATCH_FOLDER)))
