"""The fused layer and RMS normalization kernels (kernels/normalization.cu) against the NumPy path.

Kernel tests (``cupy_only``) run each launcher of gpu_dl/ops/norm_kernels.py
and the NumPy functions of gpu_dl/ops/normalization.py on the same random
inputs: widths 1, 3, 17, 33 (one value per lane or fewer: a warp per row),
1000 (16-byte vectors), 4099 (odd, 1024 threads, three values past the
register cache) and a row of 16392 floats longer than the cache in vectors;
rows 1, 5, 37 (a last block of warp rows part empty) and 1000 (the
parameters' gradients in 16 parts and a second pass). Outputs are
NaN-poisoned before each launch (the suite's autouse fixture). Extremes: a
constant row (variance 0) and rows far from zero (1e4 + noise), where
E[x^2] - mean^2 would cancel.

Layer tests (``xp``, one body per backend) compare LayerNormalization and
RMSNormalization forward and backward (every gradient) with the NumPy
backend, check float64 gradients by finite differences, and check which
path runs: the kernels for trailing axes, the array path for axis=1 of a
3-D input, a strided input and ``rms_scaling=True``.
"""
import numpy
import pytest

from gpu_dl import backend, layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import norm_kernels
from gpu_dl.ops import normalization as ops
from kernel_checks import assert_written_close, to_device
from gradcheck import assert_gradient

WIDTHS = [1, 3, 17, 33, 1000, 4099]
ROWS = [1, 5, 37]
# Sums in another order than NumPy's pairwise ones: a few ulps of the row's scale.
TOLERANCE = {"float32": dict(rtol=2e-5, atol=2e-5), "float64": dict(rtol=1e-12, atol=1e-12)}


def _close(got, want, dtype, what, tolerance=None):
    assert_written_close(got, want, dtype, what, tolerance or TOLERANCE[dtype])


def _params(rng, width, dtype, affine):
    if not affine:
        return None, None
    return rng.standard_normal(width).astype(dtype), rng.standard_normal(width).astype(dtype)


# ------------------------------------------------------------------------------ kernels, one by one
def _layernorm_reference(x, dy, gamma, beta, epsilon):
    """The NumPy path's forward and backward over the last axis: y, mean, inv, dx, dgamma, dbeta."""
    y, mean, _, saved = ops.batch_norm_train(x, (1,), epsilon, gamma, beta)
    dx, dgamma, dbeta = ops.normalize_backward(dy, saved, (1,), (0,), gamma, through_statistics=True)
    return y, mean, saved.inv, dx, dgamma, dbeta


def _layernorm_kernels(cupy, x, dy, gamma, beta, epsilon):
    x, dy, gamma, beta = to_device(cupy, x, dy, gamma, beta)
    y, mean, inv = norm_kernels.layernorm_forward(x, gamma, beta, epsilon)
    dx = norm_kernels.layernorm_backward_data(dy, x, mean, inv, gamma)
    dgamma, dbeta = norm_kernels.norm_backward_params(dy, x, mean, inv)
    return y, mean, inv, dx, dgamma, dbeta


LAYERNORM_OUTPUTS = ("y", "mean", "inv", "dx", "dgamma", "dbeta")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("affine", [True, False], ids=["gamma-beta", "no-params"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("rows", ROWS)
def test_layernorm_kernels_match_numpy_path(cupy_only, rng, rows, width, affine, dtype):
    x = (rng.standard_normal((rows, width)) * 3 + 1).astype(dtype)
    dy = rng.standard_normal((rows, width)).astype(dtype)
    gamma, beta = _params(rng, width, dtype, affine)
    want = _layernorm_reference(x, dy, gamma, beta, 1e-3)
    got = _layernorm_kernels(cupy_only, x, dy, gamma, beta, 1e-3)
    for g, w, name in zip(got, want, LAYERNORM_OUTPUTS):
        _close(g, w, dtype, f"layernorm {name}, ({rows}, {width})")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("affine", [True, False], ids=["scale", "no-scale"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("rows", ROWS)
def test_rmsnorm_kernels_match_numpy_path(cupy_only, rng, rows, width, affine, dtype):
    cupy = cupy_only
    x = (rng.standard_normal((rows, width)) * 3 + 1).astype(dtype)
    dy = rng.standard_normal((rows, width)).astype(dtype)
    scale = rng.standard_normal(width).astype(dtype) if affine else None
    y, inv = ops.rms_normalize(x, (1,), 1e-6, scale)
    dx, dscale = ops.rms_normalize_backward(dy, x, inv, (1,), (0,), scale)
    x_d, dy_d, scale_d = to_device(cupy, x, dy, scale)
    got_y, got_inv = norm_kernels.rmsnorm_forward(x_d, scale_d, 1e-6)
    got_dx = norm_kernels.rmsnorm_backward_data(dy_d, x_d, got_inv, scale_d)
    got_dscale, none = norm_kernels.norm_backward_params(dy_d, x_d, None, got_inv, want_beta=False)
    assert none is None
    for g, w, name in ((got_y, y, "y"), (got_inv, inv, "inv"), (got_dx, dx, "dx"), (got_dscale, dscale, "dscale")):
        _close(g, w, dtype, f"rmsnorm {name}, ({rows}, {width})")


@pytest.mark.parametrize("shape", [(2, 16392), (1000, 17), (70, 260), (5000, 9)])
def test_long_rows_and_many_rows(cupy_only, rng, shape):
    """A row past the register cache in 16-byte vectors (16392 floats: 1024 threads hold 16384, two vectors
    are read again on each pass); 1000, 70 and 5000 rows: the parameters' sums in 16, 2 and 70 parts (64, 64
    and 72 rows each, the last part short), added by norm_bwd_params_finish (at 70 parts, its lanes add three,
    three and two parts before the warp's butterfly)."""
    x = (rng.standard_normal(shape) * 2).astype("float32")
    dy = rng.standard_normal(shape).astype("float32")
    gamma, beta = _params(rng, shape[1], "float32", True)
    assert norm_kernels.rows_per_part(1000) == 64 and norm_kernels.rows_per_part(70) == 64
    assert norm_kernels.rows_per_part(5000) == 72
    want = _layernorm_reference(x, dy, gamma, beta, 1e-3)
    got = _layernorm_kernels(cupy_only, x, dy, gamma, beta, 1e-3)
    # dgamma and dbeta sum up to 1000 values of size ~1: the absolute error grows with the count.
    for g, w, name in zip(got, want, LAYERNORM_OUTPUTS):
        _close(g, w, "float32", f"{name}, {shape}", dict(rtol=2e-5, atol=2e-4))


def test_parameter_gradients_are_the_same_bits_every_run(cupy_only, rng):
    cupy = cupy_only
    x, dy = (cupy.asarray(rng.standard_normal((1000, 33)).astype("float32")) for _ in range(2))
    _, mean, inv = norm_kernels.layernorm_forward(x, None, None, 1e-3)
    first = [cupy.asnumpy(a) for a in norm_kernels.norm_backward_params(dy, x, mean, inv)]
    for _ in range(2):
        again = [cupy.asnumpy(a) for a in norm_kernels.norm_backward_params(dy, x, mean, inv)]
        for a, b in zip(first, again):
            numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_constant_rows_have_zero_variance(cupy_only, rng, dtype):
    """Variance 0: inv = 1 / sqrt(epsilon), y = beta, xhat = 0 so dx = inv * (g - mean(g)) and dgamma = 0."""
    cupy = cupy_only
    x = numpy.full((5, 33), 7.25, dtype=dtype)
    dy = rng.standard_normal((5, 33)).astype(dtype)
    gamma, beta = _params(rng, 33, dtype, True)
    y, mean, inv, dx, dgamma, dbeta = _layernorm_kernels(cupy, x, dy, gamma, beta, 1e-3)
    inv_eps = 1 / numpy.sqrt(numpy.dtype(dtype).type(1e-3))
    g = dy * gamma
    _close(y, numpy.broadcast_to(beta, x.shape), dtype, "y of a constant row")
    _close(mean, numpy.full(5, 7.25), dtype, "mean")
    _close(inv, numpy.full(5, inv_eps), dtype, "inv")
    _close(dx, inv_eps * (g - g.mean(axis=1, keepdims=True)), dtype, "dx of a constant row",
           dict(rtol=1e-5, atol=1e-4) if dtype == "float32" else None)
    _close(dgamma, numpy.zeros(33), dtype, "dgamma")
    _close(dbeta, dy.sum(axis=0), dtype, "dbeta")


@pytest.mark.parametrize("width", [17, 1000, 4099])
def test_rows_far_from_zero_do_not_cancel(cupy_only, rng, width):
    """1e4 + standard normal noise in float32: the two-pass variance keeps about 3 digits (the mean's
    rounding, ~1e-3 of a unit, is the error), where E[x^2] - mean^2 (1e8 - 1e8, ulps of 8) loses them all.
    Compared with the exact statistics of the same float32 values, computed in float64."""
    x = (1e4 + rng.standard_normal((5, width))).astype("float32")
    exact = x.astype("float64")
    mean = exact.mean(axis=1, keepdims=True)
    inv = 1 / numpy.sqrt(((exact - mean) ** 2).mean(axis=1, keepdims=True) + 1e-3)
    naive_variance = (x * x).mean(axis=1) - x.mean(axis=1) ** 2
    assert numpy.abs(naive_variance - 1 / inv[:, 0] ** 2).max() > 0.1   # what the test would catch
    y, got_mean, got_inv = norm_kernels.layernorm_forward(cupy_only.asarray(x), None, None, 1e-3)
    loose = dict(rtol=1e-2, atol=1e-2)
    _close(got_inv, inv, "float32", "inv", loose)
    _close(y, (exact - mean) * inv, "float32", "y", loose)
    _close(got_mean, mean, "float32", "mean", dict(rtol=1e-6, atol=0))


def test_inference_forward_writes_no_statistics(cupy_only, rng):
    cupy = cupy_only
    x = cupy.asarray(rng.standard_normal((5, 17)))
    y, mean, inv = norm_kernels.layernorm_forward(x, None, None, 1e-3, want_stats=False)
    y_rms, inv_rms = norm_kernels.rmsnorm_forward(x, None, 1e-6, want_stats=False)
    assert mean is None and inv is None and inv_rms is None
    want_y, _, _ = norm_kernels.layernorm_forward(x, None, None, 1e-3)
    numpy.testing.assert_array_equal(cupy.asnumpy(y), cupy.asnumpy(want_y))
    _close(y_rms, ops.rms_normalize(cupy.asnumpy(x), (1,), 1e-6)[0], "float64", "rms y")


def test_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    x = cupy.zeros((4, 8), dtype=cupy.float32)
    with pytest.raises(TypeError, match="layernorm_fwd: `x` must be float32 or float64, got float16"):
        norm_kernels.layernorm_forward(x.astype(cupy.float16), None, None, 1e-3)
    with pytest.raises(TypeError, match="layernorm_fwd_f32: `x` must be a CuPy array"):
        norm_kernels.layernorm_forward(numpy.zeros((4, 8), dtype=numpy.float32), None, None, 1e-3)
    with pytest.raises(ValueError, match=r"layernorm_fwd_f32: `x` must be 2-D \(rows, width\)"):
        norm_kernels.layernorm_forward(cupy.zeros((2, 2, 8), dtype=cupy.float32), None, None, 1e-3)
    with pytest.raises(ValueError, match="rmsnorm_fwd_f32: `x` must be C-contiguous"):
        norm_kernels.rmsnorm_forward(cupy.zeros((8, 4), dtype=cupy.float32).T, None, 1e-6)
    with pytest.raises(ValueError, match="layernorm_fwd_f32: `x` must have at least one column"):
        norm_kernels.layernorm_forward(cupy.zeros((4, 0), dtype=cupy.float32), None, None, 1e-3)
    with pytest.raises(ValueError, match=r"layernorm_fwd_f32: `gamma` must have shape \(8,\)"):
        norm_kernels.layernorm_forward(x, cupy.ones(7, dtype=cupy.float32), None, 1e-3)
    with pytest.raises(TypeError, match="rmsnorm_fwd_f32: `scale` must have dtype float32"):
        norm_kernels.rmsnorm_forward(x, cupy.ones(8, dtype=cupy.float64), 1e-6)
    stats = cupy.ones(4, dtype=cupy.float32)
    with pytest.raises(ValueError, match=r"layernorm_bwd_data_f32: `dy` must have shape \(4, 8\)"):
        norm_kernels.layernorm_backward_data(cupy.zeros((4, 7), dtype=cupy.float32), x, stats, stats, None)
    with pytest.raises(ValueError, match="layernorm_bwd_data_f32: `mean` .* is required"):
        norm_kernels.layernorm_backward_data(x, x, None, stats, None)
    with pytest.raises(ValueError, match=r"norm_bwd_params_f32: `inv` must have shape \(4,\)"):
        norm_kernels.norm_backward_params(x, x, stats, cupy.ones(5, dtype=cupy.float32))
    with pytest.raises(TypeError, match="rmsnorm_bwd_data_f32: `dy` must have dtype float32"):
        norm_kernels.rmsnorm_backward_data(x.astype(cupy.float64), x, stats, None)


# ------------------------------------------------------------------------------------------ layers
LAYER_CASES = [(-1, (3, 5, 17), True), ([-2, -1], (3, 5, 17), True), (1, (3, 5, 17), False),
               (-1, (37, 33), True), ([1, 2], (2, 4, 1000), True)]
LAYER_IDS = [f"{a}-{s}" for a, s, _ in LAYER_CASES]


def _layer(kind, axis, dtype, rng, shape):
    layer = (layers.LayerNormalization(axis=axis, dtype=dtype) if kind == "layer"
             else layers.RMSNormalization(axis=axis, dtype=dtype))
    layer.ensure_built((None,) + shape[1:])
    layer.set_weights([rng.standard_normal(w.shape).astype(dtype) for w in layer.weights])
    return layer


def _run(layer, x, dy):
    """y, dx and the weights' gradients of one training call, as NumPy arrays, and what the call saved."""
    y = layer(x, training=True)
    saved = layer.saved()
    dx = layer.backward(dy)
    return [to_numpy(a) for a in (y, dx, *(w.grad for w in layer.trainable_weights))], saved


def _on_numpy(make_layer, x, dy):
    """``_run`` of a layer made and run on the NumPy backend, whichever backend the test runs on."""
    previous = backend.get_device()
    backend.set_device("cpu")
    try:
        return _run(make_layer(), x, dy)
    finally:
        backend.set_device(previous)


def _took_kernel(saved):
    record = saved[1] if isinstance(saved, tuple) else saved   # RMSNormalization keeps (x, statistics)
    return isinstance(record, ops.RowStatistics)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("axis,shape,fused", LAYER_CASES, ids=LAYER_IDS)
def test_layers_match_the_numpy_backend(xp, rng, axis, shape, fused, kind, dtype):
    """Forward and every gradient equal to the NumPy backend's within float32 rounding; on CuPy the kernels run
    exactly where the normalized axes are the trailing ones."""
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    want, saved = _on_numpy(lambda: _layer(kind, axis, dtype, numpy.random.default_rng(7), shape), x, dy)
    assert not _took_kernel(saved)
    got, saved = _run(_layer(kind, axis, dtype, numpy.random.default_rng(7), shape), xp.asarray(x), xp.asarray(dy))
    assert _took_kernel(saved) == (fused and xp is not numpy)
    names = ["y", "dx"] + (["gamma", "beta"] if kind == "layer" else ["scale"])
    assert len(got) == len(names)
    for g, w, name in zip(got, want, names):
        _close(g, w, dtype, f"{kind} {name}, axis {axis}")


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("axis,shape", [(-1, (3, 5, 17)), ([-2, -1], (3, 4, 6)), (1, (3, 5, 7))])
def test_float64_gradients_by_finite_differences(xp, rng, axis, shape, kind):
    layer = _layer(kind, axis, "float64", rng, shape)
    x = xp.asarray(rng.standard_normal(shape))
    w = xp.asarray(rng.standard_normal(shape))

    def objective(v):
        return (layer(v, training=True) * w).sum()
    layer(x, training=True)
    dx = layer.backward(w)
    assert_gradient(objective, x, dx, rng, what=f"{kind} input")
    for var in layer.trainable_weights:
        layer(x, training=True)
        layer.backward(w)
        grad, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return objective(x)
        assert_gradient(of_weight, original.copy(), grad, rng, what=f"{kind} {var.name}")
        var.value[...] = original


@pytest.mark.parametrize("center,scale", [(True, False), (False, True), (False, False)])
def test_layer_normalization_without_gamma_or_beta(xp, rng, center, scale):
    x = rng.standard_normal((5, 33)).astype("float32")
    dy = rng.standard_normal((5, 33)).astype("float32")

    def make():
        layer = layers.LayerNormalization(center=center, scale=scale)
        layer.ensure_built((None, 33))
        layer.set_weights([numpy.random.default_rng(3).standard_normal(33).astype("float32")
                           for _ in layer.weights])
        return layer
    want, _ = _on_numpy(make, x, dy)
    got, saved = _run(make(), xp.asarray(x), xp.asarray(dy))
    assert _took_kernel(saved) == (xp is not numpy)
    assert len(got) == 2 + center + scale
    for g, w in zip(got, want):
        _close(g, w, "float32", f"center={center}, scale={scale}")


def test_array_path_for_strided_inputs_and_rms_scaling(xp, rng):
    """A transposed (strided) input and Keras's deprecated rms_scaling keep the array path, with its results."""
    host = rng.standard_normal((17, 5)).astype("float32")
    layer = _layer("layer", -1, "float32", rng, (5, 17))
    want = layer(host.T.copy(), training=True)
    got = layer(xp.asarray(host).T, training=True)
    assert not _took_kernel(layer.saved())
    _close(got, want, "float32", "strided input")
    with pytest.warns(UserWarning, match="rms_scaling"):
        rms = layers.LayerNormalization(rms_scaling=True)
    x = xp.asarray(host)
    rms(x, training=True)
    assert isinstance(rms.saved(), ops.Statistics)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_inference_calls_keep_nothing_and_agree_with_training(xp, rng, kind):
    layer = _layer(kind, -1, "float32", rng, (5, 33))
    x = xp.asarray(rng.standard_normal((5, 33)).astype("float32"))
    y = layer(x)
    assert layer._saved is None
    numpy.testing.assert_array_equal(to_numpy(y), to_numpy(layer(x, training=True)))


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_mixed_float16_normalizes_in_float32(xp, rng, kind):
    """Under mixed_float16 both layers normalize their float16 input in float32 (Keras's do): through the kernel
    on CuPy, with the NumPy backend's results."""
    host = rng.standard_normal((5, 33)).astype("float16")
    dy = rng.standard_normal((5, 33)).astype("float16")

    def make():
        return (layers.LayerNormalization(dtype="mixed_float16") if kind == "layer"
                else layers.RMSNormalization(dtype="mixed_float16"))
    want, _ = _on_numpy(make, host, dy)
    got, saved = _run(make(), xp.asarray(host), xp.asarray(dy))
    assert _took_kernel(saved) == (xp is not numpy)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        numpy.testing.assert_allclose(g.astype("float32"), w.astype("float32"), rtol=2e-3, atol=2e-3)


def test_which_inputs_the_kernels_take(xp):
    """CuPy float32/float64, C-contiguous, trailing non-empty axes, parameters of the input's dtype: anything else
    (NumPy above all) keeps the array path."""
    x = xp.zeros((2, 3, 4), dtype="float32")
    on_gpu = xp is not numpy
    assert ops.fused_rows_apply(x, (2,)) == on_gpu
    assert ops.fused_rows_apply(x, (-1, -2), xp.ones((3, 4), dtype="float32"), None) == on_gpu
    assert not ops.fused_rows_apply(x, (1,))
    assert not ops.fused_rows_apply(x, (0, 2))
    assert not ops.fused_rows_apply(x.transpose(0, 2, 1), (2,))
    assert not ops.fused_rows_apply(x.astype("float16"), (2,))
    assert not ops.fused_rows_apply(xp.zeros((2, 0), dtype="float32"), (1,))
    assert not ops.fused_rows_apply(x, (2,), xp.ones(4, dtype="float64"))
