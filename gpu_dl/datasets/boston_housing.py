"""Boston housing prices: 506 samples of 13 features, targets in thousands of dollars."""
import numpy

from .downloads import check_test_split, fetch, shuffled, split
from .tables import read_xy

FILE_HASH = "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"


def load_data(path="boston_housing.npz", test_split=0.2, seed=113):
    """``(x_train, y_train), (x_test, y_test)``: float64 features (N, 13) and targets (N,), shuffled by ``seed``
    as Keras shuffles them, the last ``test_split`` of them for testing."""
    check_test_split(test_split)
    x, y = read_xy(fetch("boston_housing.npz", path, FILE_HASH))
    x, y = shuffled(numpy.random.RandomState(seed), x, y)
    return split(x, y, test_split)
