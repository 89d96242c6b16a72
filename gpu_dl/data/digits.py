"""The 8x8 handwritten digits that ship inside scikit-learn (1,797 images, 10 classes).

No download: scikit-learn carries the file. Pixels are 0..16; ``load_digits``
scales them to [0, 1].
"""
from __future__ import annotations

import numpy


def load_digits(test_fraction=0.2, seed=0, image_shape=False):
    """``(x_train, y_train), (x_test, y_test)`` with a stratified split.

    x: float32 in [0, 1], shape (n, 64), or (n, 8, 8, 1) with ``image_shape=True``;
    y: int64 class ids 0-9.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("The digits data ship with scikit-learn: pip install scikit-learn") from None
    bunch = sklearn_digits()
    x = (bunch.data / 16.0).astype(numpy.float32)
    y = bunch.target.astype(numpy.int64)
    rng = numpy.random.default_rng(seed)
    test_index = []
    for cls in numpy.unique(y):
        members = numpy.flatnonzero(y == cls)
        rng.shuffle(members)
        test_index.append(members[: int(round(len(members) * test_fraction))])
    test_mask = numpy.zeros(len(y), dtype=bool)
    test_mask[numpy.concatenate(test_index)] = True
    train_order = rng.permutation(numpy.flatnonzero(~test_mask))
    test_order = numpy.flatnonzero(test_mask)
    if image_shape:
        x = x.reshape(-1, 8, 8, 1)
    return (x[train_order], y[train_order]), (x[test_order], y[test_order])
