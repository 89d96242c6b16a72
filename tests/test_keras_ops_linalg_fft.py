"""The linear algebra and Fourier functions of ``gpu_dl.ops`` (``gpu_dl.ops.linalg``): on arrays against NumPy
(and SciPy's LU), in functional models (outputs against NumPy, gradients against float64 finite differences,
saving), Keras's shapes and dtypes, and what they refuse."""
import numpy
import pytest

import gpu_dl
from gpu_dl import ops
from gpu_dl.backend import array_module, to_numpy
from keras_ops_harness import assert_input_gradients, assert_trains, assert_weight_gradients, batch_shape, op_case_tests

N = 3


def _t(x):
    return ops.transpose(x, (0, 2, 1))


def _np_t(x):
    return x.swapaxes(-1, -2)


def _spd(x):
    """A symmetric positive definite matrix made of ``x`` with ops (so gradients reach all of x)."""
    return ops.matmul(x, _t(x)) + ops.eye(4, dtype="float64") * 2.0


def _np_spd(x):
    return x @ _np_t(x) + 2.0 * numpy.eye(4)


def _sym(x):
    return (x + _t(x)) * 0.5


def _np_qr(x, mode="reduced"):
    return numpy.linalg.qr(x, mode=mode)


def _np_stft(x, sequence_length, stride, fft_length, window, center=True):
    """The short-time transform as torch defines it, written out frame by frame: (real, imag) concatenated."""
    n = numpy.arange(sequence_length)
    values = {"hann": 0.5 - 0.5 * numpy.cos(2 * numpy.pi * n / sequence_length),
              "hamming": 0.54 - 0.46 * numpy.cos(2 * numpy.pi * n / sequence_length)}.get(window) \
        if isinstance(window, str) or window is None else numpy.asarray(window)
    values = numpy.ones(sequence_length) if values is None else values
    left = (fft_length - sequence_length) // 2
    padded_window = numpy.zeros(fft_length)
    padded_window[left:left + sequence_length] = values
    if center:
        x = numpy.pad(x, [(0, 0), (fft_length // 2, fft_length // 2)], mode="reflect")
    frames = [x[:, t:t + fft_length] * padded_window for t in range(0, x.shape[1] - fft_length + 1, stride)]
    spectrum = numpy.fft.rfft(numpy.stack(frames, axis=1), axis=-1)
    return numpy.concatenate([spectrum.real, spectrum.imag], axis=-1)


def _signal(x):
    return ops.reshape(x, (-1, 12))


def _lu(x):
    from scipy.linalg import lu_factor
    return numpy.stack([lu_factor(m)[0] for m in x])


# (id, the expression on a (N, 4, 4) well-conditioned and b (N, 4, 3), written once with gpu_dl.ops for arrays and
# symbolic tensors alike; what NumPy makes of it). Sign-ambiguous vectors (eigenvectors, singular vectors) enter
# squared, so the expressions are functions of the inputs and finite differences apply.
CASES = [
    ("inv", lambda a, b: ops.inv(a), lambda a, b: numpy.linalg.inv(a)),
    ("det", lambda a, b: ops.det(a), lambda a, b: numpy.linalg.det(a)),
    ("slogdet", lambda a, b: ops.slogdet(a)[1] * ops.slogdet(a)[0],
     lambda a, b: numpy.prod(numpy.linalg.slogdet(a), axis=0)),
    ("logdet", lambda a, b: ops.logdet(_spd(a)), lambda a, b: numpy.log(numpy.linalg.det(_np_spd(a)))),
    ("solve", lambda a, b: ops.solve(a, b), lambda a, b: numpy.linalg.solve(a, b)),
    ("solve_vector", lambda a, b: ops.solve(a, b[:, :, 0]), lambda a, b: numpy.linalg.solve(a, b[..., :1])[..., 0]),
    ("solve_triangular", lambda a, b: ops.solve_triangular(a, b),
     lambda a, b: numpy.linalg.solve(numpy.triu(a), b)),
    ("solve_triangular_lower_vector", lambda a, b: ops.solve_triangular(a, b[:, :, 1], lower=True),
     lambda a, b: numpy.linalg.solve(numpy.tril(a), b[..., 1:2])[..., 0]),
    ("cholesky", lambda a, b: ops.cholesky(_spd(a)), lambda a, b: numpy.linalg.cholesky(_np_spd(a))),
    ("cholesky_upper", lambda a, b: ops.linalg.cholesky(_spd(a), upper=True),
     lambda a, b: _np_t(numpy.linalg.cholesky(_np_spd(a)))),
    ("cholesky_inverse", lambda a, b: ops.cholesky_inverse(a),
     lambda a, b: numpy.linalg.inv(numpy.tril(a) @ _np_t(numpy.tril(a)))),
    ("cholesky_inverse_upper", lambda a, b: ops.cholesky_inverse(a, upper=True),
     lambda a, b: numpy.linalg.inv(_np_t(numpy.triu(a)) @ numpy.triu(a))),
    ("qr_tall", lambda a, b: ops.concatenate([ops.qr(b)[0], ops.qr(b)[1]], axis=1),
     lambda a, b: numpy.concatenate(_np_qr(b), axis=1)),
    ("qr_wide", lambda a, b: ops.concatenate(ops.qr(_t(b)), axis=-1), lambda a, b: numpy.concatenate(
        _np_qr(_np_t(b)), axis=-1)),
    ("qr_complete_square", lambda a, b: ops.concatenate(ops.qr(a, mode="complete"), axis=-1),
     lambda a, b: numpy.concatenate(_np_qr(a, "complete"), axis=-1)),
    ("eigh", lambda a, b: ops.concatenate([ops.expand_dims(ops.eigh(_sym(a))[0], 1), ops.square(
        ops.eigh(_sym(a))[1])], axis=1),
     lambda a, b: numpy.concatenate([numpy.linalg.eigh((a + _np_t(a)) / 2)[0][:, None],
                                     numpy.linalg.eigh((a + _np_t(a)) / 2)[1] ** 2], axis=1)),
    ("svd_tall", lambda a, b: ops.concatenate([ops.square(ops.svd(b, full_matrices=False)[0]), ops.expand_dims(
        ops.svd(b, full_matrices=False)[1], 1), ops.square(ops.svd(b, full_matrices=False)[2])], axis=1),
     lambda a, b: numpy.concatenate([numpy.linalg.svd(b, full_matrices=False)[0] ** 2,
                                     numpy.linalg.svd(b)[1][:, None], numpy.linalg.svd(b)[2] ** 2], axis=1)),
    ("svd_wide", lambda a, b: ops.concatenate([ops.square(ops.svd(_t(b), full_matrices=False)[2]), ops.expand_dims(
        ops.svd(_t(b), full_matrices=False)[1], -1)], axis=-1),
     lambda a, b: numpy.concatenate([numpy.linalg.svd(_np_t(b), full_matrices=False)[2] ** 2,
                                     numpy.linalg.svd(_np_t(b))[1][..., None]], axis=-1)),
    ("svd_full_square", lambda a, b: ops.square(ops.svd(a)[0]) + ops.square(ops.svd(a)[2]),
     lambda a, b: numpy.linalg.svd(a)[0] ** 2 + numpy.linalg.svd(a)[2] ** 2),
    ("svd_values", lambda a, b: ops.svd(b, compute_uv=False), lambda a, b: numpy.linalg.svd(b, compute_uv=False)),
    ("pinv", lambda a, b: ops.pinv(b), lambda a, b: numpy.linalg.pinv(b)),
    ("pinv_wide", lambda a, b: ops.linalg.pinv(_t(b)), lambda a, b: numpy.linalg.pinv(_np_t(b))),
    ("lu_factor", lambda a, b: ops.lu_factor(a)[0], lambda a, b: _lu(a)),
    ("lu_factor_tall", lambda a, b: ops.lu_factor(b)[0], lambda a, b: _lu(b)),
    ("lu_factor_wide", lambda a, b: ops.lu_factor(_t(b))[0], lambda a, b: _lu(_np_t(b))),
    # Fourier transforms, (real, imag) pairs
    ("fft", lambda a, b: ops.concatenate(ops.fft((b, ops.square(b))), axis=-1),
     lambda a, b: numpy.concatenate([numpy.fft.fft(b + 1j * b * b).real, numpy.fft.fft(b + 1j * b * b).imag], -1)),
    ("fft2", lambda a, b: ops.concatenate(ops.fft2((b, b * 0.5)), axis=-1),
     lambda a, b: numpy.concatenate([numpy.fft.fft2(b + 0.5j * b).real, numpy.fft.fft2(b + 0.5j * b).imag], -1)),
    ("ifft2", lambda a, b: ops.concatenate(ops.ifft2((a, _t(a))), axis=-1),
     lambda a, b: numpy.concatenate([numpy.fft.ifft2(a + 1j * _np_t(a)).real,
                                     numpy.fft.ifft2(a + 1j * _np_t(a)).imag], -1)),
    ("rfft", lambda a, b: ops.concatenate(ops.rfft(b), axis=-1),
     lambda a, b: numpy.concatenate([numpy.fft.rfft(b).real, numpy.fft.rfft(b).imag], -1)),
    ("rfft_length", lambda a, b: ops.concatenate(ops.rfft(b, fft_length=6), axis=-1) + ops.sum(
        ops.concatenate(ops.rfft(b, 2), axis=-1), axis=(1, 2), keepdims=True),
     lambda a, b: numpy.concatenate([numpy.fft.rfft(b, 6).real, numpy.fft.rfft(b, 6).imag], -1) + numpy.concatenate(
         [numpy.fft.rfft(b, 2).real, numpy.fft.rfft(b, 2).imag], -1).sum((1, 2), keepdims=True)),
    ("irfft", lambda a, b: ops.irfft((b, ops.flip(b, axis=2))), lambda a, b: numpy.fft.irfft(b + 1j * b[..., ::-1])),
    ("irfft_odd", lambda a, b: ops.irfft((b, b * b), fft_length=5), lambda a, b: numpy.fft.irfft(b + 1j * b * b, 5)),
    ("irfft_long", lambda a, b: ops.irfft((a, a * 2.0), fft_length=9),
     lambda a, b: numpy.fft.irfft(a + 2j * a, 9)),
    ("stft", lambda a, b: ops.concatenate(ops.stft(_signal(b), 6, 2, 8), axis=-1),
     lambda a, b: _np_stft(b.reshape(-1, 12), 6, 2, 8, "hann")),
    ("stft_hamming", lambda a, b: ops.concatenate(ops.stft(_signal(b), 5, 3, 5, window="hamming"), axis=-1),
     lambda a, b: _np_stft(b.reshape(-1, 12), 5, 3, 5, "hamming")),
    ("stft_window_array", lambda a, b: ops.concatenate(ops.stft(_signal(b), 3, 2, 4, window=numpy.array(
        [0.2, 1.0, 0.5]), center=False), axis=-1),
     lambda a, b: _np_stft(b.reshape(-1, 12), 3, 2, 4, [0.2, 1.0, 0.5], center=False)),
    ("istft_inverts_stft", lambda a, b: ops.istft(ops.stft(_signal(b), 4, 2, 4), 4, 2, 4, length=12),
     lambda a, b: b.reshape(-1, 12)),
    ("istft_plain_frames", lambda a, b: ops.istft(ops.stft(_signal(b) * 2.0, 4, 4, 4, window=None, center=False), 4,
                                                  4, 4, window=None, center=False),
     lambda a, b: 2.0 * b.reshape(-1, 12)),
]


def _arrays(rng, dtype="float64"):
    a = rng.standard_normal((N, 4, 4)) * 0.5 + 3.0 * numpy.eye(4)          # well conditioned, positive pivots
    b = rng.standard_normal((N, 4, 3))
    return a.astype(dtype), b.astype(dtype)


# every case differentiates (a gradient of None fails); factorisations and solves lose a few digits to finite
# differences
(test_each_op_on_arrays_computes_what_numpy_does, test_each_op_in_a_functional_model_computes_what_numpy_does,
 test_each_op_has_the_gradient_of_finite_differences, test_each_op_is_saved_and_loaded) = \
    op_case_tests(CASES, _arrays, ((4, 4), (4, 3)), rtol=1e-10, atol=1e-12, output_shape=batch_shape,
                  none_is_zero=False, gradient_tolerance=dict(rtol=1e-5))


def test_several_results_and_lu_pivots(xp, rng):
    a, b = _arrays(rng)
    a[0] = a[0][[2, 0, 3, 1]]                     # pivoting needed
    from scipy.linalg import lu_factor
    lu, pivots = ops.lu_factor(xp.asarray(a))
    assert pivots.dtype == numpy.int32 and pivots.shape == (N, 4) and array_module(pivots) is xp
    for k in range(N):
        want_lu, want_pivots = lu_factor(a[k])
        numpy.testing.assert_allclose(to_numpy(lu)[k], want_lu, rtol=1e-12, atol=1e-14)
        numpy.testing.assert_array_equal(to_numpy(pivots)[k], want_pivots)
    wide = rng.standard_normal((2, 3, 5))
    lu, pivots = ops.lu_factor(xp.asarray(wide))
    assert lu.shape == (2, 3, 5) and pivots.shape == (2, 3)
    for k in range(2):
        lower = numpy.tril(to_numpy(lu)[k], -1)[:, :3] + numpy.eye(3)
        rows = numpy.arange(3)
        for i, p in enumerate(to_numpy(pivots)[k]):
            rows[[i, p]] = rows[[p, i]]
        numpy.testing.assert_allclose(lower @ numpy.triu(to_numpy(lu)[k]), wide[k][rows], rtol=1e-12, atol=1e-14)
    q, r = ops.qr(xp.asarray(b), mode="complete")
    assert q.shape == (N, 4, 4) and r.shape == (N, 4, 3)
    numpy.testing.assert_allclose(to_numpy(q @ r), b, rtol=1e-12, atol=1e-13)
    u, s, vh = ops.svd(xp.asarray(b))
    assert (u.shape, s.shape, vh.shape) == ((N, 4, 4), (N, 3), (N, 3, 3))


def test_eig_gives_complex_eigenpairs(xp, rng):
    a, _ = _arrays(rng)
    w, v = ops.eig(xp.asarray(a.astype("float32")))
    assert w.dtype == numpy.complex64 and v.dtype == numpy.complex64 and w.shape == (N, 4) and v.shape == (N, 4, 4)
    w, v = (to_numpy(t).astype(complex) for t in ops.eig(xp.asarray(a)))
    numpy.testing.assert_allclose(a @ v, v * w[:, None, :], rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(numpy.sort_complex(w), numpy.sort_complex(numpy.linalg.eigvals(a)), rtol=1e-10)
    x = gpu_dl.Input((4, 4))
    w, v = ops.eig(x)
    assert (w.shape, w.dtype, v.shape, v.dtype) == ((None, 4), "complex64", (None, 4, 4), "complex64")


def test_lstsq_matrix_rank_and_pinv(xp, rng):
    a = rng.standard_normal((6, 3))
    b = rng.standard_normal((6, 2))
    want = numpy.linalg.lstsq(a, b, rcond=None)[0]
    x = ops.lstsq(xp.asarray(a), xp.asarray(b))
    assert array_module(x) is xp and x.shape == (3, 2)
    numpy.testing.assert_allclose(to_numpy(x), want, rtol=1e-10)
    numpy.testing.assert_allclose(to_numpy(ops.lstsq(xp.asarray(a), xp.asarray(b[:, 0]))), want[:, 0], rtol=1e-10)
    low_rank = (a @ rng.standard_normal((3, 5)))[None].repeat(2, 0)          # rank 3, 6×5
    low_rank[1, :, 4] = 0.0
    ranks = ops.matrix_rank(xp.asarray(low_rank))
    assert ranks.dtype == numpy.int32 and to_numpy(ranks).tolist() == [3, 3]
    assert int(ops.matrix_rank(xp.asarray(numpy.diag([3.0, 1.0, 1e-3])), tol=1e-2)) == 2
    assert int(ops.linalg.matrix_rank(xp.asarray(numpy.eye(3)))) == 3
    numpy.testing.assert_allclose(to_numpy(ops.pinv(xp.asarray(low_rank))), numpy.linalg.pinv(low_rank), atol=1e-10)
    cut = ops.pinv(xp.asarray(numpy.diag([2.0, 1e-3])), rcond=1e-2)
    numpy.testing.assert_allclose(to_numpy(cut), numpy.diag([0.5, 0.0]))
    # lstsq in a model of the whole system as one batch, with exact gradients
    a_in, b_in = gpu_dl.Input((3,), dtype="float64"), gpu_dl.Input((2,), dtype="float64")
    model = gpu_dl.Model([a_in, b_in], ops.lstsq(a_in, b_in, rcond=1e-12))
    assert model.output_shape == (3, 2)
    xs = [xp.asarray(a), xp.asarray(b)]
    numpy.testing.assert_allclose(to_numpy(model.forward(xs)), want, rtol=1e-10)
    assert_input_gradients(model, xs, xp.asarray(rng.standard_normal((3, 2))), rng, "lstsq input")


def test_dtypes_and_shapes_are_keras_s():
    a32 = numpy.eye(3, dtype="float32") * 2.0
    assert ops.inv(a32).dtype == numpy.float32 and ops.det(a32).dtype == numpy.float32
    assert ops.inv(numpy.eye(3, dtype="int32")).dtype == numpy.float32            # integers: floatx
    assert ops.inv([[2, 0], [0, 4]]).dtype == numpy.float32
    assert [t.dtype for t in ops.slogdet(a32)] == [numpy.float32, numpy.float32]
    assert [t.dtype for t in ops.fft((a32, a32))] == [numpy.float32, numpy.float32]
    assert ops.irfft((a32, a32)).shape == (3, 4) and ops.rfft(a32, 7)[0].shape == (3, 4)
    x = gpu_dl.Input((5, 3))
    s = gpu_dl.Input((3, 3))
    assert ops.svd(x)[0].shape == (None, 5, 5) and ops.svd(x, full_matrices=False)[2].shape == (None, 3, 3)
    assert ops.svd(x, compute_uv=False).shape == (None, 3)
    assert [t.shape for t in ops.qr(x)] == [(None, 5, 3), (None, 3, 3)]
    assert [t.shape for t in ops.qr(x, mode="complete")] == [(None, 5, 5), (None, 5, 3)]
    assert ops.pinv(x).shape == (None, 3, 5) and ops.matrix_rank(x).dtype == "int32"
    lu, pivots = ops.lu_factor(x)
    assert lu.shape == (None, 5, 3) and pivots.shape == (None, 3) and pivots.dtype == "int32"
    assert ops.solve(s, gpu_dl.Input((3,))).shape == (None, 3)
    assert ops.solve(s, numpy.ones(3, "float32")).shape == (None, 3)
    assert ops.solve(s, x[:, :3]).shape == (None, 3, 3)
    assert ops.solve_triangular(s, gpu_dl.Input((3,)), lower=True).shape == (None, 3)
    assert [t.shape for t in ops.eigh(s)] == [(None, 3), (None, 3, 3)]
    assert [t.shape for t in ops.slogdet(s)] == [(None,), (None,)] and ops.logdet(s).shape == (None,)
    assert [t.shape for t in ops.rfft(x, fft_length=8)] == [(None, 5, 5)] * 2
    assert ops.irfft(ops.rfft(x), fft_length=3).shape == (None, 5, 3)
    assert ops.cast(x, "int32").dtype == "int32" and ops.inv(ops.cast(s, "int32")).dtype == "float32"


def test_the_linalg_namespace_is_keras_s():
    import gpu_dl as keras
    from gpu_dl.ops import linalg
    assert keras.ops.linalg is linalg and linalg.svd is ops.svd and linalg.norm is ops.norm
    assert sorted(linalg.__all__) == ["cholesky", "cholesky_inverse", "det", "eig", "eigh", "inv", "jvp", "lstsq",
                                      "lu_factor", "matrix_rank", "norm", "pinv", "qr", "solve", "solve_triangular",
                                      "svd"]
    assert linalg.jvp is ops.jvp
    from gpu_dl.ops import matrix_functions, fourier     # the internal maths stays reachable
    assert callable(matrix_functions.inv_forward) and callable(fourier.fft_forward)


def test_what_the_ops_refuse():
    x, v, s = gpu_dl.Input((3, 4)), gpu_dl.Input((4,)), gpu_dl.Input((3, 3))
    with pytest.raises(ValueError, match="Inv.*square"):
        ops.inv(x)
    with pytest.raises(ValueError, match="Det.*rank >= 2"):
        ops.det(numpy.ones(3))
    with pytest.raises(ValueError, match="Qr.*mode must be 'reduced' or 'complete'"):
        ops.qr(x, mode="r")
    with pytest.raises(ValueError, match="Solve.*do not match"):
        ops.solve(s, v)
    with pytest.raises(ValueError, match="Lstsq.*rank 2"):
        ops.lstsq(x, v)
    with pytest.raises(ValueError, match="FFT.*one shape"):
        ops.fft((x, s))
    with pytest.raises(ValueError, match="fft: x must be a tuple of two tensors"):
        ops.fft(x)
    with pytest.raises(ValueError, match="fft_length must be a positive integer"):
        ops.rfft(x, fft_length=0)
    with pytest.raises(ValueError, match="STFT.*'hann' or 'hamming'"):
        ops.stft(v, 4, 2, 4, window="box")
    with pytest.raises(ValueError, match="fft_length must be at least sequence_length"):
        ops.stft(v, 4, 2, 3)
    with pytest.raises(ValueError, match="sequence_stride must be a positive integer"):
        ops.istft((x, x), 4, 0, 4)
    with pytest.raises(ValueError, match="padded by reflection"):
        ops.stft(v, 8, 2, 8)
    with pytest.raises(TypeError, match="stft takes a float32 or float64 signal"):
        ops.stft(numpy.arange(8), 4, 2, 4)
    with pytest.raises(ValueError, match="tol must be a non-negative number"):
        ops.matrix_rank(x, tol="big")
    with pytest.raises(ValueError, match="Cholesky decomposition failed"):
        ops.cholesky(-numpy.eye(3))
    with pytest.raises(ValueError, match="Inv.*square"):
        ops.inv(numpy.ones((2, 3)))
    with pytest.raises(ValueError, match="not differentiable when mode='complete'"):
        model = gpu_dl.Model(x, ops.qr(ops.transpose(x, (0, 2, 1)), mode="complete")[0])
        model.forward(numpy.ones((2, 3, 4)), training=True)
        model.backward(numpy.ones((2, 4, 4)))
    model = gpu_dl.Model(s, ops.eig(s)[0])
    model.forward(numpy.eye(3)[None], training=True)
    with pytest.raises(ValueError, match="does not differentiate eig"):
        model.backward(numpy.ones((1, 3), complex))


# ------------------------------------------------------------------ composite layers using the ops in call
def test_composite_layers_using_the_ops_train_with_exact_gradients(xp, rng):
    from linalg_fft_classes import model as composite_model
    gpu_dl.backend.set_random_seed(4)
    model = composite_model(gpu_dl, dtype="float64")
    x = xp.asarray(rng.standard_normal((5, 6)))
    w = xp.asarray(rng.standard_normal((5, 3)))
    whitening = model.get_layer("whitening")
    white = to_numpy(whitening(x))
    weight = to_numpy(whitening.w.value)
    factor = numpy.linalg.cholesky(weight @ weight.T + numpy.eye(6))
    want = numpy.linalg.solve(factor, to_numpy(x).T).T - 0.1 * numpy.log(numpy.linalg.det(weight @ weight.T +
                                                                                          numpy.eye(6)))
    numpy.testing.assert_allclose(white, want, rtol=1e-10, atol=1e-12)
    assert_weight_gradients(model, x, w, rng)
    model = composite_model(gpu_dl)
    data, labels = rng.standard_normal((48, 6)).astype("float32"), rng.integers(0, 3, 48)
    assert_trains(model, data, labels, learning_rate=0.02, loss="sparse_categorical_crossentropy", epochs=15)


def test_an_operation_called_again_records_another_node(rng):
    x = gpu_dl.Input((4, 4), dtype="float64")
    model = gpu_dl.Model(x, ops.eigh(x)[0])
    eigh = [layer for layer in model._operations if type(layer).__name__ == "Eigh"][0]
    y = gpu_dl.Input((4, 4), dtype="float64")
    w, v = eigh(y)
    assert len(eigh._inbound_nodes) == 2 and w.shape == (None, 4) and v.shape == (None, 4, 4)
    again = gpu_dl.Model(y, ops.square(v))
    a = rng.standard_normal((2, 4, 4))
    a = a + a.swapaxes(-1, -2)
    numpy.testing.assert_allclose(again.predict(a, verbose=0), numpy.linalg.eigh(a)[1] ** 2, rtol=1e-10, atol=1e-12)
    solved = gpu_dl.Model(x, ops.solve(x, numpy.ones(4)))
    solve = [layer for layer in solved._operations if type(layer).__name__ == "Solve"][0]
    numpy.testing.assert_allclose(gpu_dl.Model(y, solve(y)).predict(a, verbose=0),
                                  numpy.linalg.solve(a, numpy.ones((2, 4, 1)))[..., 0], rtol=1e-10)
    with pytest.raises(ValueError, match="needs an operation of its own"):
        solve.apply(y, numpy.zeros(4))


def test_qr_of_a_batch_one_matrix_at_a_time_where_the_module_takes_only_one(monkeypatch, rng):
    import types
    from gpu_dl.ops import matrix_functions

    def one_matrix_qr(a, mode="reduced"):
        if a.ndim > 2:
            raise ValueError("2-dimensional array expected")
        return numpy.linalg.qr(a, mode=mode)
    module = types.SimpleNamespace(linalg=types.SimpleNamespace(qr=one_matrix_qr), stack=numpy.stack)
    monkeypatch.setattr(matrix_functions, "array_module", lambda *arrays: module)
    x = rng.standard_normal((2, 3, 5, 4))
    for mode in ("reduced", "complete"):
        for mine, want in zip(matrix_functions.qr_forward(x, mode), numpy.linalg.qr(x, mode=mode)):
            numpy.testing.assert_array_equal(mine, want)
