"""CIFAR-10: 50,000 training and 10,000 test colour images, 32x32, in 10 classes."""
import os

from ..data.cifar10 import BATCH_FOLDER, _from_folder
from ..utils.file_utils import get_file

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILE_HASH = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def load_data():
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 32, 32, 3) (channels_last, Keras's default
    image data format, the only one gpu_dl has); uint8 labels (N, 1). The batches are unpickled with a
    restricted unpickler."""
    folder = get_file(fname="cifar-10-batches-py-target", origin=ORIGIN, extract=True, file_hash=FILE_HASH)
    return _from_folder(os.path.join(folder, BATCH_FOLDER))
