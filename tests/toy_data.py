"""Small data and helpers the training, callback and plotting tests share."""
import contextlib
import io

import numpy


def blobs(n=96, seed=0):
    """``n`` points in three well-separated 2-D clusters: (x float32 (n, 2), labels (n,))."""
    rng = numpy.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = numpy.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    x = centers[y] + 0.3 * rng.standard_normal((n, 2))
    return x.astype("float32"), y


def quiet(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), what it printed)``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = fn(*args, **kwargs)
    return result, out.getvalue()
