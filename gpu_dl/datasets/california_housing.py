"""California housing prices: 20,640 districts of 8 features, median house values in dollars."""
import numpy

from .downloads import check_test_split, fetch, shuffled, split
from .tables import read_xy

FILE_HASH = "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f"
VERSIONS = {"small": 600, "large": None}     # how many rows of the file each version keeps


def load_data(version="large", path="california_housing.npz", test_split=0.2, seed=113):
    """``(x_train, y_train), (x_test, y_test)``: float features (N, 8) and targets (N,), all 20,640 rows
    (``"large"``) or the first 600 (``"small"``), shuffled by ``seed`` as Keras shuffles them, the last
    ``test_split`` of them for testing."""
    check_test_split(test_split)
    if version not in VERSIONS:
        raise ValueError(f"Argument `version` must be one of 'small', 'large'. Received: version={version}")
    x, y = read_xy(fetch("california_housing.npz", path, FILE_HASH))
    x, y = x[:VERSIONS[version]], y[:VERSIONS[version]]
    x, y = shuffled(numpy.random.RandomState(seed), x, y)
    return split(x, y, test_split)
