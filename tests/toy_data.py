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


def assert_trains_and_reloads(model, xs, target, tmp_path, load_model, every_weight_moves=False):
    """Compiles ``model`` (Adam, sparse categorical cross-entropy), fits five epochs of batches of 8 and checks that
    the loss fell (and, if asked, that every weight moved), then that the saved .keras file and the saved weights
    give a model that predicts exactly what ``model`` predicts."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    losses = model.fit(xs, target, epochs=5, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0], losses
    if every_weight_moves:
        assert all(not numpy.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    expected = model.predict(xs, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict(xs, verbose=0), expected)
    loaded.set_weights([numpy.zeros_like(w) for w in loaded.get_weights()])
    model.save_weights(tmp_path / "m.weights.h5")
    loaded.load_weights(tmp_path / "m.weights.h5")
    numpy.testing.assert_array_equal(loaded.predict(xs, verbose=0), expected)
