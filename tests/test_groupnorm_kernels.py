"""The fused group normalization kernels (kernels/groupnorm.cu) against the NumPy path.

Kernel tests (``cupy_only``) run the launchers of gpu_dl/ops/groupnorm_kernels.py
and the NumPy functions of gpu_dl/ops/normalization.py on the same random
inputs: samples 1 and 3; positions 1 (1x1), 35 (5x7) and 17; channels and
groups (1, 1), (6, 3), (33, 11), (64, 32), (64, C: instance normalization),
(130, 2) (16-byte vectors in float64 only); and 3 x 56 x 56 x 64 with 32 groups,
where each (sample, group) is split over 4 parts of positions and the
parameters' sums over 157 parts. Outputs are NaN-poisoned before each launch
(the suite's autouse fixture). Also: data far from zero (1e4 + noise), where
E[x^2] - mean^2 would cancel; the same bits on every run; bad arguments.

Layer tests (``xp``, one body per backend) compare a GroupNormalization
training step (forward, dx, dgamma, dbeta) with the NumPy backend's and check
which path runs: the kernels for the last axis, the array path for another
axis and for strided inputs. Finite differences of the layer's backward are
tests/test_group_normalization.py's.
"""
import numpy
import pytest

from gpu_dl import backend, layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import groupnorm_kernels
from gpu_dl.ops import normalization as ops
from kernel_checks import assert_written_close, to_device

SAMPLES = [1, 3]
POSITIONS = [(1, 1), (5, 7), (17,)]
CHANNEL_GROUPS = [(1, 1), (6, 3), (33, 11), (64, 32), (64, -1), (130, 2)]
# Sums in another order than NumPy's pairwise ones: a few ulps of the values' scale.
TOLERANCE = {"float32": dict(rtol=5e-5, atol=5e-5), "float64": dict(rtol=1e-11, atol=1e-11)}
EPSILON = 1e-3
OUTPUTS = ("y", "mean", "inv", "dx", "dgamma", "dbeta")


def _close(got, want, dtype, what, tolerance=None):
    assert_written_close(got, want, dtype, what, tolerance or TOLERANCE[dtype])


def _inputs(rng, shape, dtype, affine, offset=1.0):
    x = (rng.standard_normal(shape) * 3 + offset).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    channels = shape[-1]
    gamma, beta = ((rng.standard_normal(channels).astype(dtype), rng.standard_normal(channels).astype(dtype))
                   if affine else (None, None))
    return x, dy, gamma, beta


def _reference(x, dy, groups, gamma, beta):
    """The NumPy path on x viewed as (N, positions, G, C / G), as GroupNormalization calls it: y, mean, inv,
    dx, dgamma, dbeta."""
    n, channels = x.shape[0], x.shape[-1]
    view = (n, -1, groups, channels // groups)
    shape = (1, 1, groups, channels // groups)
    g = None if gamma is None else gamma.reshape(shape)
    b = None if beta is None else beta.reshape(shape)
    y, mean, _, saved = ops.batch_norm_train(x.reshape(view), (1, 3), EPSILON, g, b)
    dx, dgamma, dbeta = ops.normalize_backward(dy.reshape(view), saved, (1, 3), (0, 1), g, through_statistics=True)
    return y, mean, saved.inv, dx, dgamma, dbeta


def _kernels(cupy, x, dy, groups, gamma, beta):
    x, dy, gamma, beta = to_device(cupy, x, dy, gamma, beta)
    x3, dy3 = (a.reshape(a.shape[0], -1, a.shape[-1]) for a in (x, dy))
    y, mean, inv = groupnorm_kernels.groupnorm_forward(x3, groups, gamma, beta, EPSILON)
    dx, dgamma, dbeta = groupnorm_kernels.groupnorm_backward(dy3, x3, groups, mean, inv, gamma)
    return y, mean, inv, dx, dgamma, dbeta


# ------------------------------------------------------------------------------ kernels, one by one
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("affine", [True, False], ids=["gamma-beta", "no-params"])
@pytest.mark.parametrize("channels,groups", CHANNEL_GROUPS, ids=[f"C{c}-G{g}" for c, g in CHANNEL_GROUPS])
@pytest.mark.parametrize("positions", POSITIONS, ids=["x".join(map(str, p)) for p in POSITIONS])
@pytest.mark.parametrize("samples", SAMPLES)
def test_kernels_match_numpy_path(cupy_only, rng, samples, positions, channels, groups, affine, dtype):
    shape = (samples, *positions, channels)
    groups = channels if groups == -1 else groups
    x, dy, gamma, beta = _inputs(rng, shape, dtype, affine)
    want = _reference(x, dy, groups, gamma, beta)
    got = _kernels(cupy_only, x, dy, groups, gamma, beta)
    for g, w, name in zip(got, want, OUTPUTS):
        _close(g, w, dtype, f"{name}, {shape}, {groups} groups")


def test_parts_are_fixed_by_the_shape():
    """(56 x 56 positions, 2 channels a group): 1024 positions a part, 4 parts; a wide group takes one position
    a part until the parts would pass gridDim.y."""
    assert groupnorm_kernels.positions_per_part(3136, 2) == 1024
    assert [groupnorm_kernels.positions_per_part(p, w) for p, w in ((1, 1), (35, 11), (10, 4096), (70000, 4096))] \
        == [2048, 187, 1, 2]
    assert [groupnorm_kernels.rows_per_part(r) for r in (1, 64, 4225, 9408)] == [64, 64, 128, 128]


def test_many_parts(cupy_only, rng):
    """3 x 56 x 56 x 64, 32 groups: each (sample, group) merges 4 parts; the parameters sum 74 parts of 128 rows."""
    x, dy, gamma, beta = _inputs(rng, (3, 56, 56, 64), "float32", True)
    want = _reference(x, dy, 32, gamma, beta)
    got = _kernels(cupy_only, x, dy, 32, gamma, beta)
    for g, w, name in zip(got, want, OUTPUTS):
        _close(g, w, "float32", f"{name}, many parts", dict(rtol=1e-4, atol=5e-4))


@pytest.mark.parametrize("channels,groups", [(33, 11), (64, 32)])
def test_data_far_from_zero_does_not_cancel(cupy_only, rng, channels, groups):
    """1e4 + standard normal noise in float32: the merged per-chunk deviations keep about 3 digits of the
    variance, where E[x^2] - mean^2 loses them all. Compared with the exact statistics of the same float32
    values, computed in float64."""
    x = (1e4 + rng.standard_normal((2, 17, 13, channels))).astype("float32")
    exact = x.astype("float64").reshape(2, -1, groups, channels // groups)
    mean, variance = exact.mean(axis=(1, 3)), exact.var(axis=(1, 3))
    flat = x.reshape(2, -1, groups, channels // groups)
    naive = (flat * flat).mean(axis=(1, 3), dtype="float32") - flat.mean(axis=(1, 3), dtype="float32") ** 2
    assert numpy.abs(naive - variance).max() > 0.1     # what the test would catch
    _, got_mean, inv = groupnorm_kernels.groupnorm_forward(
        cupy_only.asarray(x.reshape(2, -1, channels)), groups, None, None, EPSILON)
    _close(1 / to_numpy(inv) ** 2 - EPSILON, variance, "float32", "variance", dict(rtol=1e-3, atol=0))
    _close(got_mean, mean, "float32", "mean", dict(rtol=1e-6, atol=0))


def test_the_same_bits_every_run(cupy_only, rng):
    cupy = cupy_only
    x, dy, gamma, beta = _inputs(rng, (3, 56, 56, 64), "float32", True)
    first = [cupy.asnumpy(a) for a in _kernels(cupy, x, dy, 32, gamma, beta)]
    for _ in range(2):
        again = [cupy.asnumpy(a) for a in _kernels(cupy, x, dy, 32, gamma, beta)]
        for a, b, name in zip(first, again, OUTPUTS):
            numpy.testing.assert_array_equal(a, b, err_msg=name)


def test_backward_without_input_gradient_or_parameters(cupy_only, rng):
    x, dy, gamma, beta = _inputs(rng, (3, 5, 7, 6), "float64", True)
    want = _reference(x, dy, 3, gamma, beta)
    x_d, dy_d, gamma_d = (a.reshape(3, -1, 6) if a.ndim > 1 else a for a in to_device(cupy_only, x, dy, gamma))
    _, mean, inv = groupnorm_kernels.groupnorm_forward(x_d, 3, gamma_d, None, EPSILON)
    dx, dgamma, dbeta = groupnorm_kernels.groupnorm_backward(dy_d, x_d, 3, mean, inv, gamma_d, need_input_grad=False)
    assert dx is None
    _close(dgamma, want[4], "float64", "dgamma")
    _close(dbeta, want[5], "float64", "dbeta")
    dx, dgamma, dbeta = groupnorm_kernels.groupnorm_backward(dy_d, x_d, 3, mean, inv, gamma_d, want_gamma=False,
                                                             want_beta=False)
    assert dgamma is None and dbeta is None
    _close(dx, want[3], "float64", "dx")


def test_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    x = cupy.zeros((2, 4, 8), dtype=cupy.float32)
    stats = cupy.ones((2, 4), dtype=cupy.float32)
    forward, backward = groupnorm_kernels.groupnorm_forward, groupnorm_kernels.groupnorm_backward
    with pytest.raises(TypeError, match="gn_fwd_stats: `x` must be float32 or float64, got float16"):
        forward(x.astype(cupy.float16), 4, None, None, EPSILON)
    with pytest.raises(TypeError, match="gn_fwd_stats_f32: `x` must be a CuPy array"):
        forward(numpy.zeros((2, 4, 8), dtype=numpy.float32), 4, None, None, EPSILON)
    with pytest.raises(ValueError, match=r"gn_fwd_stats_f32: `x` must be 3-D \(samples, positions, channels\)"):
        forward(cupy.zeros((4, 8), dtype=cupy.float32), 4, None, None, EPSILON)
    with pytest.raises(ValueError, match="gn_fwd_stats_f32: `x` must be C-contiguous"):
        forward(cupy.zeros((2, 8, 4), dtype=cupy.float32).transpose(0, 2, 1), 4, None, None, EPSILON)
    with pytest.raises(ValueError, match="gn_fwd_stats_f32: `x` must have at least one sample"):
        forward(cupy.zeros((2, 0, 8), dtype=cupy.float32), 4, None, None, EPSILON)
    for groups in (3, 0, 16, 2.0, True):
        with pytest.raises(ValueError, match="gn_fwd_stats_f32: `groups` must be a positive integer dividing"):
            forward(x, groups, None, None, EPSILON)
    with pytest.raises(ValueError, match=r"gn_fwd_stats_f32: `gamma` must have shape \(8,\)"):
        forward(x, 4, cupy.ones(7, dtype=cupy.float32), None, EPSILON)
    with pytest.raises(TypeError, match="gn_fwd_stats_f32: `beta` must have dtype float32"):
        forward(x, 4, None, cupy.ones(8, dtype=cupy.float64), EPSILON)
    with pytest.raises(ValueError, match=r"gn_bwd_stats_f32: `dy` must have shape \(2, 4, 8\)"):
        backward(cupy.zeros((2, 4, 7), dtype=cupy.float32), x, 4, stats, stats, None)
    with pytest.raises(ValueError, match=r"gn_bwd_stats_f32: `inv` \(saved by the forward\) is required"):
        backward(x, x, 4, stats, None, None)
    with pytest.raises(ValueError, match=r"gn_bwd_stats_f32: `mean` must have shape \(2, 4\)"):
        backward(x, x, 4, cupy.ones(8, dtype=cupy.float32), stats, None)


# ------------------------------------------------------------------------------------------ layers
def _layer(shape, dtype, seed=7, **kwargs):
    rng = numpy.random.default_rng(seed)
    layer = layers.GroupNormalization(dtype=dtype, **kwargs)
    layer.ensure_built((None,) + shape[1:])
    layer.set_weights([rng.standard_normal(w.shape).astype(w.dtype) for w in layer.weights])
    return layer


def _step(layer, x, dy):
    """y, dx and the trainable weights' gradients (NumPy arrays), and what the call saved."""
    y = layer(x, training=True)
    saved = layer._saved
    dx = layer.backward(dy)
    grads = [w.grad for w in layer.trainable_weights]
    return [to_numpy(a) for a in (y, dx, *grads)], saved


def _on_numpy(make_layer, *arrays):
    previous = backend.get_device()
    backend.set_device("cpu")
    try:
        return _step(make_layer(), *arrays)
    finally:
        backend.set_device(previous)


def _took_kernel(saved):
    return isinstance(saved, ops.GroupStatistics)


LAYER_CASES = [((3, 17, 33), 11, -1, True), ((2, 5, 7, 64), 32, -1, True), ((1, 5, 7, 64), -1, 3, True),
               ((3, 130), 2, -1, True), ((2, 6, 5), 3, 1, False)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("center,scale", [(True, True), (False, False)], ids=["gamma-beta", "no-params"])
@pytest.mark.parametrize("shape,groups,axis,fused", LAYER_CASES, ids=[f"{s}-{g}-{a}" for s, g, a, _ in LAYER_CASES])
def test_training_step_matches_the_numpy_backend(xp, rng, shape, groups, axis, fused, center, scale, dtype):
    """Forward, input gradient, gamma and beta gradients equal to the NumPy backend's within rounding; on CuPy
    the kernels run exactly for the last axis."""
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)

    def make():
        return _layer(shape, dtype, groups=groups, axis=axis, center=center, scale=scale)
    want, saved = _on_numpy(make, x, dy)
    assert not _took_kernel(saved)
    got, saved = _step(make(), xp.asarray(x), xp.asarray(dy))
    assert _took_kernel(saved) == (fused and xp is not numpy)
    assert len(got) == len(want) == 2 + 2 * (center and scale)
    for i, (g, w) in enumerate(zip(got, want)):
        _close(g, w, dtype, f"output {i}, shape {shape}, axis {axis}")


def test_float16_policy_normalizes_in_float32(xp, rng):
    """Under mixed_float16 the layer computes in float32 (as Keras's), so the kernels take the cast input."""
    shape = (2, 5, 7, 64)
    x = rng.standard_normal(shape).astype("float16")
    dy = rng.standard_normal(shape).astype("float16")

    def make():
        return _layer(shape, "mixed_float16", groups=8)
    want, _ = _on_numpy(make, x, dy)
    got, saved = _step(make(), xp.asarray(x), xp.asarray(dy))
    assert _took_kernel(saved) == (xp is not numpy)
    assert got[0].dtype == numpy.float16
    for i, (g, w) in enumerate(zip(got, want)):
        numpy.testing.assert_allclose(g.astype("float32"), w.astype("float32"), rtol=2e-3, atol=2e-3,
                                      err_msg=f"output {i}")


def test_strided_input_keeps_the_array_path(xp, rng):
    host = rng.standard_normal((3, 5, 4)).astype("float32")
    x = xp.asarray(host.transpose(1, 0, 2).copy()).transpose(1, 0, 2)
    want, _ = _on_numpy(lambda: _layer((3, 5, 4), "float32", groups=2), host, host)
    got, saved = _step(_layer((3, 5, 4), "float32", groups=2), x, xp.asarray(host))
    assert not _took_kernel(saved)
    for i, (g, w) in enumerate(zip(got, want)):
        _close(g, w, "float32", f"output {i}")
