"""CIFAR-100: 50,000 training and 10,000 test colour images, 32x32, in 100 classes grouped into 20 superclasses."""
import os

from ..data.cifar100 import FOLDER, _check_label_mode, read_folder
from ..utils.file_utils import get_file
from .cifar10 import in_image_data_format

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
FILE_HASH = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def load_data(label_mode="fine"):
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 32, 32, 3), or (N, 3, 32, 32) when
    ``gpu_dl.config.image_data_format()`` is "channels_first"; uint8 labels (N, 1): the 100 classes
    (``"fine"``) or the 20 superclasses (``"coarse"``)."""
    _check_label_mode(label_mode)
    folder = get_file(fname="cifar-100-python-target", origin=ORIGIN, extract=True, file_hash=FILE_HASH)
    return in_image_data_format(read_folder(os.path.join(folder, FOLDER), label_mode))
