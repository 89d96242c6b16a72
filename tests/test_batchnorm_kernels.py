"""The fused batch normalization kernels (kernels/batchnorm.cu) against the NumPy path.

Kernel tests (``cupy_only``) run the launchers of gpu_dl/ops/batchnorm_kernels.py
and the NumPy functions of gpu_dl/ops/normalization.py on the same random
inputs: rows 1 (variance 0), 3, 17 (part of a thread row's chunk empty) and
1031 (17 parts of 64 rows, the last one 7 rows: some thread rows hold none);
channels 1, 3, 33 (a channel tile part empty), 64 (16-byte vectors) and 130
(16-byte vectors in float64 only); and 5000 rows (40 parts of 128: lanes of
the finishing warp merge two parts each before the shuffle tree). Outputs are
NaN-poisoned before each launch (the suite's autouse fixture). Also: data far
from zero (1e4 + noise), where E[x^2] - mean^2 would cancel; the same bits on
every run; inference and the moving statistics to the NumPy path's bits.

Layer tests (``xp``, one body per backend) compare a BatchNormalization
training step (forward, backward, every gradient, moving statistics), an
inference call and a frozen layer's step with the NumPy backend, and check
which path runs: the kernels for the last axis, the array path for other
axes, masks and strided inputs.
"""
import numpy
import pytest

from gpu_dl import backend, layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import batchnorm_kernels
from gpu_dl.ops import normalization as ops
from kernel_checks import assert_written_close, to_device

ROWS = [1, 3, 17, 1031]
CHANNELS = [1, 3, 33, 64, 130]
# Sums in another order than NumPy's pairwise ones: a few ulps of the values' scale (sums over 1000+ rows:
# the absolute error of dgamma and dbeta grows with the count).
TOLERANCE = {"float32": dict(rtol=5e-5, atol=5e-5), "float64": dict(rtol=1e-11, atol=1e-11)}
EPSILON = 1e-3
MOMENTUM = 0.9


def _close(got, want, dtype, what, tolerance=None):
    assert_written_close(got, want, dtype, what, tolerance or TOLERANCE[dtype])


def _inputs(rng, rows, channels, dtype, affine, offset=1.0):
    x = (rng.standard_normal((rows, channels)) * 3 + offset).astype(dtype)
    dy = rng.standard_normal((rows, channels)).astype(dtype)
    gamma, beta = ((rng.standard_normal(channels).astype(dtype), rng.standard_normal(channels).astype(dtype))
                   if affine else (None, None))
    moving = rng.standard_normal(channels).astype(dtype), (rng.random(channels) + 0.5).astype(dtype)
    return x, dy, gamma, beta, moving


def _reference(x, dy, gamma, beta, moving):
    """The NumPy path over the rows: y, mean, variance, inv, moving mean and variance, dx, dgamma, dbeta."""
    y, mean, variance, saved = ops.batch_norm_train(x, (0,), EPSILON, gamma, beta)
    dx, dgamma, dbeta = ops.normalize_backward(dy, saved, (0,), (0,), gamma, through_statistics=True)
    dtype = x.dtype.type
    moved = [m * dtype(MOMENTUM) + b.reshape(-1) * dtype(1.0 - MOMENTUM) for m, b in zip(moving, (mean, variance))]
    return y, mean, variance, saved.inv, *moved, dx, dgamma, dbeta


def _kernels(cupy, x, dy, gamma, beta, moving):
    x, dy, gamma, beta, moving_mean, moving_variance = to_device(cupy, x, dy, gamma, beta, *moving)
    y, mean, variance, inv = batchnorm_kernels.batchnorm_forward_train(
        x, gamma, beta, EPSILON, moving_mean=moving_mean, moving_variance=moving_variance, momentum=MOMENTUM)
    dx, dgamma, dbeta = batchnorm_kernels.batchnorm_backward(dy, x, mean, inv, gamma)
    return y, mean, variance, inv, moving_mean, moving_variance, dx, dgamma, dbeta


OUTPUTS = ("y", "mean", "variance", "inv", "moving_mean", "moving_variance", "dx", "dgamma", "dbeta")


# ------------------------------------------------------------------------------ kernels, one by one
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("affine", [True, False], ids=["gamma-beta", "no-params"])
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("rows", ROWS)
def test_training_kernels_match_numpy_path(cupy_only, rng, rows, channels, affine, dtype):
    x, dy, gamma, beta, moving = _inputs(rng, rows, channels, dtype, affine)
    want = _reference(x, dy, gamma, beta, moving)
    got = _kernels(cupy_only, x, dy, gamma, beta, moving)
    for g, w, name in zip(got, want, OUTPUTS):
        _close(g, w, dtype, f"{name}, ({rows}, {channels})")


@pytest.mark.parametrize("channels", [3, 64])
def test_many_parts(cupy_only, rng, channels):
    """5000 rows: 40 parts of 128 rows (the last one 8), merged by a warp whose lanes take two parts each."""
    assert batchnorm_kernels.rows_per_part(5000) == 128
    x, dy, gamma, beta, moving = _inputs(rng, 5000, channels, "float32", True)
    want = _reference(x, dy, gamma, beta, moving)
    got = _kernels(cupy_only, x, dy, gamma, beta, moving)
    for g, w, name in zip(got, want, OUTPUTS):
        _close(g, w, "float32", f"{name}, (5000, {channels})", dict(rtol=1e-4, atol=2e-4))


def test_parts_are_fixed_by_the_shape():
    assert [batchnorm_kernels.rows_per_part(r) for r in (1, 64, 4224, 4225, 100352, 401408)] == \
        [64, 64, 64, 128, 320, 640]


@pytest.mark.parametrize("channels", [33, 64])
def test_data_far_from_zero_does_not_cancel(cupy_only, rng, channels):
    """1e4 + standard normal noise in float32: the merged per-chunk deviations keep about 3 digits of the
    variance, where E[x^2] - mean^2 (1e8 - 1e8, ulps of 8) loses them all. Compared with the exact
    statistics of the same float32 values, computed in float64."""
    x = (1e4 + rng.standard_normal((1031, channels))).astype("float32")
    exact = x.astype("float64")
    mean, variance = exact.mean(axis=0), exact.var(axis=0)
    naive = (x * x).mean(axis=0, dtype="float32") - x.mean(axis=0, dtype="float32") ** 2
    assert numpy.abs(naive - variance).max() > 0.1     # what the test would catch
    y, got_mean, got_variance, inv = batchnorm_kernels.batchnorm_forward_train(cupy_only.asarray(x), None, None,
                                                                               EPSILON)
    _close(got_variance, variance, "float32", "variance", dict(rtol=1e-3, atol=0))
    _close(got_mean, mean, "float32", "mean", dict(rtol=1e-6, atol=0))
    _close(y, (exact - mean) / numpy.sqrt(variance + EPSILON), "float32", "y", dict(rtol=1e-2, atol=1e-2))


def test_the_same_bits_every_run(cupy_only, rng):
    cupy = cupy_only
    x, dy, gamma, beta, moving = _inputs(rng, 5000, 33, "float32", True)
    first = [cupy.asnumpy(a) for a in _kernels(cupy, x, dy, gamma, beta, moving)]
    for _ in range(2):
        again = [cupy.asnumpy(a) for a in _kernels(cupy, x, dy, gamma, beta, moving)]
        for a, b, name in zip(first, again, OUTPUTS):
            numpy.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("affine", [True, False], ids=["gamma-beta", "no-params"])
@pytest.mark.parametrize("rows,channels", [(1, 1), (17, 33), (1031, 64), (3, 130)])
def test_inference_gives_the_numpy_path_s_bits(cupy_only, rng, rows, channels, affine, dtype):
    """y = (x - mean) * (inv * gamma) + beta, each operation rounded on its own as NumPy rounds it."""
    x, _, gamma, beta, (mean, variance) = _inputs(rng, rows, channels, dtype, affine)
    want_y, want = ops.batch_norm_inference(x, mean, variance, EPSILON, gamma, beta)
    y, inv = batchnorm_kernels.batchnorm_forward_inference(*to_device(cupy_only, x, mean, variance, gamma, beta),
                                                           EPSILON)
    numpy.testing.assert_array_equal(to_numpy(inv), want.inv)
    numpy.testing.assert_array_equal(to_numpy(y), want_y)


def test_moving_statistics_move_as_numpy_rounds_them(cupy_only, rng):
    """moving * momentum + batch * (1 - momentum), from the kernel's own batch statistics: the same bits."""
    cupy = cupy_only
    x, _, _, _, moving = _inputs(rng, 1031, 130, "float32", False)
    moving_mean, moving_variance = to_device(cupy, *moving)
    _, mean, variance, _ = batchnorm_kernels.batchnorm_forward_train(
        cupy.asarray(x), None, None, EPSILON, moving_mean=moving_mean, moving_variance=moving_variance,
        momentum=MOMENTUM)
    f = numpy.float32
    for got, before, batch in ((moving_mean, moving[0], mean), (moving_variance, moving[1], variance)):
        numpy.testing.assert_array_equal(to_numpy(got), before * f(MOMENTUM) + to_numpy(batch) * f(1.0 - MOMENTUM))


def test_backward_without_input_gradient(cupy_only, rng):
    x, dy, gamma, beta, moving = _inputs(rng, 17, 33, "float64", True)
    x_d, dy_d, gamma_d = to_device(cupy_only, x, dy, gamma)
    _, mean, _, inv = batchnorm_kernels.batchnorm_forward_train(x_d, gamma_d, None, EPSILON)
    dx, dgamma, dbeta = batchnorm_kernels.batchnorm_backward(dy_d, x_d, mean, inv, gamma_d, need_input_grad=False)
    assert dx is None
    want = _reference(x, dy, gamma, beta, moving)
    _close(dgamma, want[-2], "float64", "dgamma")
    _close(dbeta, want[-1], "float64", "dbeta")


def test_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    x = cupy.zeros((4, 8), dtype=cupy.float32)
    ones = cupy.ones(8, dtype=cupy.float32)
    train, backward = batchnorm_kernels.batchnorm_forward_train, batchnorm_kernels.batchnorm_backward
    with pytest.raises(TypeError, match="bn_fwd_stats: `x` must be float32 or float64, got float16"):
        train(x.astype(cupy.float16), None, None, EPSILON)
    with pytest.raises(TypeError, match="bn_fwd_stats_f32: `x` must be a CuPy array"):
        train(numpy.zeros((4, 8), dtype=numpy.float32), None, None, EPSILON)
    with pytest.raises(ValueError, match=r"bn_fwd_stats_f32: `x` must be 2-D \(rows, channels\)"):
        train(cupy.zeros((2, 2, 8), dtype=cupy.float32), None, None, EPSILON)
    with pytest.raises(ValueError, match="bn_fwd_stats_f32: `x` must be C-contiguous"):
        train(cupy.zeros((8, 4), dtype=cupy.float32).T, None, None, EPSILON)
    with pytest.raises(ValueError, match="bn_fwd_stats_f32: `x` must have at least one row and one channel"):
        train(cupy.zeros((0, 8), dtype=cupy.float32), None, None, EPSILON)
    with pytest.raises(ValueError, match=r"bn_fwd_stats_f32: `gamma` must have shape \(8,\)"):
        train(x, cupy.ones(7, dtype=cupy.float32), None, EPSILON)
    with pytest.raises(TypeError, match="bn_fwd_stats_f32: `moving_variance` must have dtype float32"):
        train(x, None, None, EPSILON, moving_variance=ones.astype(cupy.float64))
    with pytest.raises(ValueError, match=r"bn_fwd_stats_f32: `momentum` must be a number in \[0, 1\]"):
        train(x, None, None, EPSILON, momentum=1.5)
    with pytest.raises(ValueError, match="bn_scale_f32: `variance` is required"):
        batchnorm_kernels.batchnorm_forward_inference(x, ones, None, None, None, EPSILON)
    with pytest.raises(TypeError, match="bn_scale_f32: `beta` must have dtype float32"):
        batchnorm_kernels.batchnorm_forward_inference(x, ones, ones, None, ones.astype(cupy.float64), EPSILON)
    with pytest.raises(ValueError, match=r"bn_bwd_params_f32: `dy` must have shape \(4, 8\)"):
        backward(cupy.zeros((4, 7), dtype=cupy.float32), x, ones, ones, None)
    with pytest.raises(ValueError, match=r"bn_bwd_params_f32: `inv` \(saved by the forward\) is required"):
        backward(x, x, ones, None, None)
    with pytest.raises(ValueError, match=r"bn_bwd_params_f32: `mean` must have shape \(8,\)"):
        backward(x, x, cupy.ones(4, dtype=cupy.float32), ones, None)


# ------------------------------------------------------------------------------------------ layers
def _layer(shape, dtype, seed=7, **kwargs):
    rng = numpy.random.default_rng(seed)
    layer = layers.BatchNormalization(momentum=MOMENTUM, dtype=dtype, **kwargs)
    layer.ensure_built((None,) + shape[1:])
    values = [rng.standard_normal(w.shape) for w in layer.weights]
    values[-1] = numpy.abs(values[-1]) + 0.5            # a positive moving variance
    layer.set_weights([v.astype(dtype) for v in values])
    return layer


def _step(layer, x, dy, training=True, **kwargs):
    """y, dx, the trainable weights' gradients and every weight after one call (NumPy arrays), and what the
    call saved."""
    y = layer(x, training=training, **kwargs)
    saved = layer._saved
    dx = layer.backward(dy) if training else None
    grads = [w.grad for w in layer.trainable_weights]
    return [to_numpy(a) for a in (y, dx, *grads) if a is not None] + layer.get_weights(), saved


def _on_numpy(make_layer, *arrays, **kwargs):
    previous = backend.get_device()
    backend.set_device("cpu")
    try:
        return _step(make_layer(), *arrays, **kwargs)
    finally:
        backend.set_device(previous)


def _took_kernel(saved):
    return saved is not None and isinstance(saved[0], ops.ChannelStatistics)


LAYER_CASES = [((17, 33), -1, True), ((2, 5, 7, 64), -1, True), ((3, 5, 130), 2, True), ((1, 3), -1, True),
               ((4, 5, 3), 1, False), ((2, 3, 4, 6), -2, False)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("center,scale", [(True, True), (False, False)], ids=["gamma-beta", "no-params"])
@pytest.mark.parametrize("shape,axis,fused", LAYER_CASES, ids=[f"{s}-{a}" for s, a, _ in LAYER_CASES])
def test_training_step_matches_the_numpy_backend(xp, rng, shape, axis, fused, center, scale, dtype):
    """Forward, input gradient, gamma and beta gradients and the moved statistics equal to the NumPy backend's
    within rounding; on CuPy the kernels run exactly for the last axis."""
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)

    def make():
        return _layer(shape, dtype, axis=axis, center=center, scale=scale)
    want, saved = _on_numpy(make, x, dy)
    assert not _took_kernel(saved)
    got, saved = _step(make(), xp.asarray(x), xp.asarray(dy))
    assert _took_kernel(saved) == (fused and xp is not numpy)
    assert len(got) == len(want) == 2 + 2 * (center and scale) + 2 + 2 * (center and scale)
    for i, (g, w) in enumerate(zip(got, want)):
        _close(g, w, dtype, f"output {i}, shape {shape}, axis {axis}")


@pytest.mark.parametrize("trainable", [True, False], ids=["inference", "frozen"])
def test_inference_and_frozen_calls_match_the_numpy_backend(xp, rng, monkeypatch, trainable):
    """An inference call, and a frozen layer's training call (moving statistics, gradient through them as
    constants), on the kernels on CuPy, with the NumPy backend's results."""
    launched = []
    original = ops.batchnorm_forward_inference
    monkeypatch.setattr(ops, "batchnorm_forward_inference", lambda *a: launched.append(1) or original(*a))
    shape = (4, 3, 5, 64)
    x = rng.standard_normal(shape).astype("float32")
    dy = rng.standard_normal(shape).astype("float32")

    def make():
        layer = _layer(shape, "float32")
        layer.trainable = trainable
        return layer
    training = not trainable      # inference: a plain call; frozen: a training call that cannot train
    want, _ = _on_numpy(make, x, dy, training=training)
    got, saved = _step(make(), xp.asarray(x), xp.asarray(dy), training=training)
    assert not _took_kernel(saved)   # the moving statistics: the array backward through constants
    assert len(launched) == (xp is not numpy)
    for i, (g, w) in enumerate(zip(got, want)):
        _close(g, w, "float32", f"output {i}")


def test_masked_and_strided_inputs_keep_the_array_path(xp, rng):
    host = rng.standard_normal((3, 5, 4)).astype("float32")
    kept = numpy.ones((3, 5), dtype=bool)
    kept[0, 3:] = False
    for x, mask in ((xp.asarray(host), kept), (xp.asarray(host.transpose(1, 0, 2).copy()).transpose(1, 0, 2), None)):
        want, _ = _on_numpy(lambda: _layer((3, 5, 4), "float32"), host, host, mask=mask)
        got, saved = _step(_layer((3, 5, 4), "float32"), x, xp.asarray(host),
                           mask=None if mask is None else xp.asarray(mask))
        assert not _took_kernel(saved)
        for i, (g, w) in enumerate(zip(got, want)):
            _close(g, w, "float32", f"output {i}, mask {mask is not None}")


def test_which_inputs_the_kernels_take(xp):
    x = xp.zeros((2, 3, 4), dtype="float32")
    on_gpu = xp is not numpy
    assert ops.fused_channels_apply(x, -1) == on_gpu
    assert ops.fused_channels_apply(x, 2, xp.ones(4, dtype="float32"), None) == on_gpu
    assert not ops.fused_channels_apply(x, 1)
    assert not ops.fused_channels_apply(x.transpose(0, 2, 1), -1)
    assert not ops.fused_channels_apply(x.astype("float16"), -1)
    assert not ops.fused_channels_apply(xp.zeros((0, 4), dtype="float32"), -1)
    assert not ops.fused_channels_apply(x, -1, xp.ones(4, dtype="float64"))
