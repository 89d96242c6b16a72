"""gpu_dl's linear algebra and Fourier ops against keras.ops (where Keras is installed, on torch): the same calls
give the same values, dtypes and shapes; functional models written with either library's ops hold the same
operations in their configs, give the same outputs and training steps (so the same gradients) for the same
weights, and their .keras files load in the other library and predict the same."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from keras_ops_oracle_harness import builder_tests  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def _signs(q, r):
    """QR factors with R's diagonal made positive (LAPACK builds may pick other signs)."""
    q, r = keras.ops.convert_to_numpy(q), keras.ops.convert_to_numpy(r)
    s = numpy.sign(numpy.diagonal(r, axis1=-2, axis2=-1))
    return q * s[..., None, :], r * s[..., :, None]


def _matrices(rng):
    a = (rng.standard_normal((3, 4, 4)) * 0.5 + 2.0 * numpy.eye(4)).astype("float32")
    b = rng.standard_normal((3, 4, 3)).astype("float32")
    spd = (a @ a.swapaxes(-1, -2) + numpy.eye(4)).astype("float32")
    return a, b, spd


# (id, the call on a keras.ops-like namespace and the arrays a (3, 4, 4), b (3, 4, 3), spd (3, 4, 4): a list of
# arrays to compare, made independent of sign choices)
CALLS = [
    ("cholesky", lambda o, a, b, s: [o.cholesky(s), o.cholesky(s, upper=True)]),
    ("cholesky_inverse", lambda o, a, b, s: [o.cholesky_inverse(a), o.cholesky_inverse(a, upper=True)]),
    ("det", lambda o, a, b, s: [o.det(a)]),
    ("slogdet", lambda o, a, b, s: list(o.slogdet(a - 2.0 * numpy.eye(4, dtype="float32")))),
    ("logdet", lambda o, a, b, s: [o.logdet(s)]),
    ("inv", lambda o, a, b, s: [o.inv(a)]),
    ("solve", lambda o, a, b, s: [o.solve(a, b), o.solve(a, b[:, :, 0]), o.solve(a, b[0, :, 0])]),
    ("solve_triangular", lambda o, a, b, s: [o.solve_triangular(a, b), o.solve_triangular(a, b[:, :, 0],
                                                                                          lower=True)]),
    ("eigh", lambda o, a, b, s: [o.eigh(s)[0], o.eigh(s)[1] ** 2]),
    ("qr", lambda o, a, b, s: list(_signs(*o.qr(b))) + list(_signs(*o.qr(b.swapaxes(-1, -2)))) +
     list(_signs(*o.qr(a, mode="complete")))),
    ("svd", lambda o, a, b, s: [o.svd(b)[0][..., :3] ** 2, o.svd(b)[1], o.svd(b)[2] ** 2,
                                o.svd(b, full_matrices=False)[0] ** 2, o.svd(b, compute_uv=False)]),
    ("pinv", lambda o, a, b, s: [o.pinv(b), o.pinv(b.swapaxes(-1, -2), rcond=0.3)]),
    ("lstsq", lambda o, a, b, s: [o.lstsq(b[0], a[0]), o.lstsq(b[0], a[0, :, 0], rcond=0.2)]),
    ("matrix_rank", lambda o, a, b, s: [o.matrix_rank(b), o.matrix_rank(a, tol=2.5),
                                        o.matrix_rank(b @ numpy.ones((3, 3), "float32"))]),
    ("lu_factor", lambda o, a, b, s: list(o.lu_factor(a)) + list(o.lu_factor(b)) +
     list(o.lu_factor(b.swapaxes(-1, -2)))),
    ("fft", lambda o, a, b, s: list(o.fft((b, b * 2.0))) + list(o.fft2((a, a + 1.0))) + list(o.ifft2((b, -b)))),
    ("rfft", lambda o, a, b, s: list(o.rfft(b)) + list(o.rfft(b, fft_length=5)) + list(o.rfft(a, 2))),
    ("irfft", lambda o, a, b, s: [o.irfft((b, a[..., :3])), o.irfft((b, b), fft_length=5),
                                  o.irfft((a, a), fft_length=3)]),
    ("stft", lambda o, a, b, s: list(o.stft(b.reshape(3, 12), 6, 2, 8)) + list(o.stft(
        b.reshape(3, 12), 5, 3, 5, window="hamming", center=False)) + list(o.stft(b.reshape(1, 3, 12), 4, 2, 4,
                                                                                 window=None))),
    ("istft", lambda o, a, b, s: [o.istft((b, b * 0.5), 4, 2, 4), o.istft((b, -b), 3, 2, 4, window="hamming"),
                                  o.istft((b, b), 4, 2, 4, length=9, window=None, center=False),
                                  o.istft((b, b), 4, 1, 4, length=7)]),
]


# istft's length beyond the frames: torch pads with zeros and says so; gpu_dl's zeros are compared with them
@pytest.mark.filterwarnings("ignore:The length of signal is shorter than the length parameter")
@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_the_same_calls_give_the_same_values_dtypes_and_shapes(name, call, rng):
    arrays = _matrices(rng)
    ours = call(gpu_dl.ops, *arrays)
    theirs = [keras.ops.convert_to_numpy(t) for t in call(keras.ops, *arrays)]
    assert len(ours) == len(theirs)
    for mine, want in zip(ours, theirs):
        assert isinstance(mine, numpy.ndarray)
        assert mine.dtype == want.dtype and mine.shape == want.shape
        numpy.testing.assert_allclose(mine, want, rtol=2e-4, atol=2e-5)


def test_eig_gives_what_keras_gives(rng):
    a, _, _ = _matrices(rng)
    w, v = gpu_dl.ops.eig(a)
    kw, kv = (keras.ops.convert_to_numpy(t) for t in keras.ops.eig(a))
    assert (w.dtype, v.dtype, w.shape, v.shape) == (kw.dtype, kv.dtype, kw.shape, kv.shape)
    order, korder = numpy.argsort(w, axis=-1), numpy.argsort(kw, axis=-1)
    numpy.testing.assert_allclose(numpy.take_along_axis(w, order, -1), numpy.take_along_axis(kw, korder, -1),
                                  rtol=1e-4, atol=1e-5)


def test_the_namespaces_match():
    names = sorted(n for n in dir(keras.ops.linalg) if not n.startswith("_"))
    assert sorted(gpu_dl.ops.linalg.__all__) == names
    for name in ("fft", "fft2", "ifft2", "rfft", "irfft", "stft", "istft", "slogdet", "logdet") + tuple(names):
        assert callable(getattr(gpu_dl.ops, name))


def linalg_model(lib):
    """A classifier whose features are linear algebra of matrices the first Dense makes."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(6,), name="x")
    h = ops.reshape(L.Dense(16, name="h")(x), (-1, 4, 4))
    spd = ops.matmul(h, ops.transpose(h, (0, 2, 1))) + ops.eye(4) * 2.0
    chol = ops.cholesky(spd)
    w, v = ops.eigh(spd)
    sign, logabsdet = ops.slogdet(h + ops.eye(4) * 3.0)
    q, r = ops.qr(h[:, :, :3])
    u, s, vh = ops.svd(h[:, :3, :], full_matrices=False)
    rhs = h[:, :, 0]
    parts = [ops.sum(chol, axis=1), ops.sum(ops.inv(spd), axis=1), ops.expand_dims(ops.logdet(spd), 1),
             ops.expand_dims(ops.det(h + ops.eye(4) * 3.0), 1) * 0.01, ops.expand_dims(sign * logabsdet, 1),
             ops.solve(spd, rhs), ops.solve_triangular(chol, rhs, lower=True),
             ops.sum(ops.cholesky_inverse(chol), axis=1) * 0.1, w * 0.1, ops.sum(ops.square(v), axis=1),
             ops.sum(ops.square(q), axis=2), ops.sum(ops.abs(r), axis=1), s, ops.sum(ops.square(u), axis=1),
             ops.sum(ops.square(vh), axis=1), ops.sum(ops.pinv(h[:, :, :3]), axis=1),
             ops.sum(ops.lu_factor(h + ops.eye(4) * 3.0)[0], axis=1), ops.sum(ops.lu_factor(h[:, :3, :])[0], axis=1),
             ops.sum(ops.lu_factor(h[:, :, :2])[0], axis=1)]
    joined = ops.concatenate(parts, axis=-1)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(joined), name="linalg_model")


def fourier_model(lib):
    """A classifier of spectra: fft, fft2, ifft2, rfft, irfft, stft and istft of what a Dense makes."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(6,), name="x")
    h = L.Dense(16, name="h")(x)
    m = ops.reshape(h, (-1, 4, 4))
    re, im = ops.fft((h[:, :8], h[:, 8:]))
    re2, im2 = ops.fft2((m, ops.transpose(m, (0, 2, 1))))
    re3, im3 = ops.ifft2((m, m * 0.5))
    fre, fim = ops.rfft(h, fft_length=10)
    back = ops.irfft((fre, fim * 0.5), fft_length=7)
    sre, sim = ops.stft(h, 8, 4, 8)
    parts = [re, im, ops.reshape(re2, (-1, 16)) * 0.1, ops.mean(im2, axis=1), ops.mean(re3, axis=2),
             ops.mean(im3, axis=1), fre * 0.1, fim * 0.1, back, ops.irfft(ops.rfft(h)),
             ops.reshape(sre, (-1, 25)) * 0.1, ops.mean(sim, axis=1), ops.istft((sre, sim), 8, 4, 8, length=16),
             ops.istft((sre, sim * 0.5), 6, 4, 8, window="hamming")]
    joined = ops.concatenate(parts, axis=-1)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(joined), name="fourier_model")


def _data(rng, n, build):
    return rng.standard_normal((n, 6)).astype("float32"), rng.integers(0, 3, n)


(test_same_operations_and_outputs_as_keras, test_training_steps_match_keras,
 test_files_written_by_keras_load_and_predict_the_same, test_keras_loads_files_written_by_gpu_dl) = \
    builder_tests(keras, [linalg_model, fourier_model], _data, lambda build: (6,))


def test_composite_layers_using_the_ops_train_as_keras_s(rng):
    from linalg_fft_classes import model as composite_model
    backend.set_random_seed(3)
    ours, theirs = composite_model(gpu_dl), composite_model(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert_training_steps_match(keras, ours, theirs, rng, (6,), classes=3, batch=5)
