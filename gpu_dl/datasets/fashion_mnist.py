"""Fashion-MNIST: 60,000 training and 10,000 test images of clothing, 28x28 uint8, labels 0-9."""
import os

from ..data.mnist import IDX_FILES, _load_idx_folder
from .downloads import fetch

# Keras keeps the four files in ~/.keras/datasets/fashion-mnist and checks no hash for them.
CACHE_SUBDIR = os.path.join("datasets", "fashion-mnist")


def load_data():
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (N, 28, 28), uint8 labels (N,), read from the four
    gzipped IDX files (headers checked against their sizes)."""
    paths = [fetch(stem + ".gz", cache_subdir=CACHE_SUBDIR) for stem in IDX_FILES]
    return _load_idx_folder(os.path.dirname(paths[0]), paths)
