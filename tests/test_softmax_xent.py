"""Fused softmax + cross-entropy against a naive softmax-then-log in float64, and finite differences; with
Keras's clip of the probabilities (epsilon=1e-7), against Keras's loss and gradient written out in NumPy."""
import numpy
import pytest

from gpu_dl.backend import to_numpy
from gpu_dl.ops.softmax_xent import softmax_xent
from gradcheck import assert_gradient

SHAPES = [(1, 1), (1, 3), (3, 17), (17, 3), (33, 5)]


def naive(logits, targets):
    """softmax, then -sum t log p, then d/dlogits by the softmax Jacobian: all written out in float64."""
    e = numpy.exp(logits - logits.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    loss = -(targets * numpy.log(p)).sum(axis=-1)
    # d loss/dp_j = -t_j / p_j; dp_j/dz_k = p_j (delta_jk - p_k)
    g = -targets / p
    dlogits = p * (g - (g * p).sum(axis=-1, keepdims=True))
    return loss, p, dlogits


def onehot(labels, classes):
    return numpy.eye(classes)[labels]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_sparse_matches_naive(xp, rng, shape, smoothing):
    n, c = shape
    logits = rng.standard_normal(shape) * 3
    labels = rng.integers(0, c, n)
    targets = onehot(labels, c) * (1 - smoothing) + smoothing / c
    loss, probs, dlogits = softmax_xent(xp.asarray(logits), xp.asarray(labels), sparse=True, label_smoothing=smoothing)
    want_loss, want_probs, want_d = naive(logits, targets)
    numpy.testing.assert_allclose(to_numpy(loss), want_loss, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(to_numpy(probs), want_probs, rtol=1e-12, atol=1e-15)
    numpy.testing.assert_allclose(to_numpy(dlogits), want_d, rtol=1e-10, atol=1e-12)
    assert loss.shape == (n,) and probs.shape == shape and dlogits.shape == shape


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_dense_matches_naive_for_onehot_and_soft_targets(xp, rng, shape, smoothing):
    n, c = shape
    logits = rng.standard_normal(shape) * 3
    for rows in (onehot(rng.integers(0, c, n), c), rng.dirichlet(numpy.ones(c), n), rng.random(shape) * 2):
        loss, probs, dlogits = softmax_xent(xp.asarray(logits), xp.asarray(rows), sparse=False,
                                            label_smoothing=smoothing)
        want_loss, want_probs, want_d = naive(logits, rows * (1 - smoothing) + smoothing / c)
        numpy.testing.assert_allclose(to_numpy(loss), want_loss, rtol=1e-12, atol=1e-12)
        numpy.testing.assert_allclose(to_numpy(probs), want_probs, rtol=1e-12, atol=1e-15)
        # Rows that do not sum to 1 (the last set) need probs * sum(t) - t, not probs - t.
        numpy.testing.assert_allclose(to_numpy(dlogits), want_d, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("shape", [(1, 3), (17, 5), (3, 33)])
def test_dlogits_is_the_gradient(xp, rng, sparse, shape):
    n, c = shape
    labels = rng.integers(0, c, n)
    targets = xp.asarray(labels if sparse else rng.dirichlet(numpy.ones(c), n))
    logits = xp.asarray(rng.standard_normal(shape))
    _, _, dlogits = softmax_xent(logits, targets, sparse=sparse, label_smoothing=0.1)
    assert_gradient(lambda z: softmax_xent(z, targets, sparse=sparse, label_smoothing=0.1)[0].sum(),
                    logits, dlogits, rng, what="logits")


def test_dlogits_is_per_sample_not_averaged(xp):
    logits = xp.zeros((4, 2))
    _, _, dlogits = softmax_xent(logits, xp.asarray([0, 1, 0, 1]), sparse=True)
    numpy.testing.assert_allclose(to_numpy(dlogits), [[-0.5, 0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, -0.5]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_logits_stay_finite_and_exact(xp, dtype):
    logits = xp.asarray([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, -1000.0]], dtype=dtype)
    loss, probs, dlogits = softmax_xent(logits, xp.asarray([1, 2, 0]), sparse=True)
    assert loss.dtype == dtype and probs.dtype == dtype and dlogits.dtype == dtype
    for a in (loss, probs, dlogits):
        assert numpy.isfinite(to_numpy(a)).all()
    numpy.testing.assert_allclose(to_numpy(loss), [2000.0, numpy.log(3.0), numpy.log(2.0)], rtol=1e-6)
    numpy.testing.assert_allclose(to_numpy(dlogits), [[1, -1, 0], [1 / 3, 1 / 3, -2 / 3], [-0.5, 0.5, 0]], atol=1e-6)


def test_float32_in_float32_out(xp, rng):
    logits = xp.asarray(rng.standard_normal((3, 4)), dtype="float32")
    for sparse, labels in ((True, xp.asarray([0, 3, 1])), (False, xp.asarray(onehot([0, 3, 1], 4)))):
        outs = softmax_xent(logits, labels, sparse=sparse)
        assert [o.dtype for o in outs] == [numpy.float32] * 3
        assert all(type(o) is type(logits) for o in outs)


def test_bad_input_is_named(xp):
    logits = xp.zeros((3, 4))
    with pytest.raises(ValueError, match=r"`labels`.*shape \(3,\).*got \(3, 4\)"):
        softmax_xent(logits, xp.zeros((3, 4), dtype="int64"), sparse=True)
    with pytest.raises(ValueError, match=r"`labels`.*shape \(3, 4\)"):
        softmax_xent(logits, xp.zeros((3,)), sparse=False)
    with pytest.raises(TypeError, match="integer class ids"):
        softmax_xent(logits, xp.zeros((3,)), sparse=True)
    with pytest.raises(ValueError, match="label_smoothing"):
        softmax_xent(logits, xp.zeros((3,), dtype="int64"), sparse=True, label_smoothing=1.5)


@pytest.mark.parametrize("sparse", [True, False])
def test_grad_scale_and_row_weights_scale_the_gradient_rows(xp, rng, sparse):
    logits = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5) if sparse else rng.dirichlet(numpy.ones(4), 5)
    weights = rng.random(5)
    loss, probs, dlogits = softmax_xent(xp.asarray(logits), xp.asarray(labels), sparse=sparse)
    loss_w, _, dlogits_w = softmax_xent(xp.asarray(logits), xp.asarray(labels), sparse=sparse, grad_scale=0.25,
                                        row_weights=xp.asarray(weights))
    numpy.testing.assert_allclose(to_numpy(loss_w), to_numpy(loss), rtol=1e-12)
    numpy.testing.assert_allclose(to_numpy(dlogits_w), to_numpy(dlogits) * 0.25 * weights[:, None], rtol=1e-12)
    weighted_sum = lambda z: (softmax_xent(z, xp.asarray(labels), sparse=sparse)[0] * xp.asarray(weights)).sum()
    assert_gradient(weighted_sum, xp.asarray(logits), dlogits_w / 0.25, rng, what="weighted logits")


def test_outputs_left_out_when_not_wanted(xp, rng):
    logits = xp.asarray(rng.standard_normal((3, 4)))
    loss, probs, dlogits = softmax_xent(logits, xp.asarray([0, 1, 2]), sparse=True, want_probs=False, want_grad=False)
    assert probs is None and dlogits is None and loss.shape == (3,)


# ------------------------------------------------------------- Keras's clip of the probabilities
EPS = 1e-7


def clipped_expectation(logits, targets, dtype):
    """Keras's probability-path loss and its gradient through softmax, written out in float64.

    The clip's bounds are those of ``dtype`` (1 - 1e-7 rounds to 1 - 2**-23 in float32); a class the clip
    stops costs the log of its bound and passes no gradient; the renormalisation adds a constant to
    d loss / dp, which the softmax Jacobian removes.
    """
    low, high = float(numpy.dtype(dtype).type(EPS)), float(numpy.dtype(dtype).type(1.0 - EPS))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    p = numpy.exp(shifted) / numpy.exp(shifted).sum(axis=-1, keepdims=True)
    log_p = shifted - numpy.log(numpy.exp(shifted).sum(axis=-1, keepdims=True))
    inside = (p >= low) & (p <= high)
    loss = -(targets * numpy.where(inside, log_p, numpy.log(numpy.clip(p, low, high)))).sum(axis=-1)
    g = numpy.where(inside, -targets / numpy.where(inside, p, 1.0), 0.0)   # d loss / dp
    return loss, p, p * (g - (g * p).sum(axis=-1, keepdims=True)), inside


SATURATED = numpy.array([[30.0, 0.0, -30.0], [10.0, 0.0, -30.0], [30.0, 0.0, -30.0],
                         [0.0, 17.0, 1.0], [-2.0, 3.0, 1.0], [0.0, 0.0, 0.0]])
SATURATED_LABELS = numpy.array([0, 1, 2, 0, 2, 1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sparse", [True, False])
def test_clip_caps_saturated_rows_as_keras_does(xp, dtype, sparse):
    targets = onehot(SATURATED_LABELS, 3)
    labels = SATURATED_LABELS if sparse else targets
    loss, probs, dlogits = softmax_xent(xp.asarray(SATURATED, dtype=dtype), xp.asarray(labels), sparse=sparse,
                                        epsilon=EPS)
    want_loss, want_p, want_d, inside = clipped_expectation(SATURATED, targets, dtype)
    # The rows this test is about: a target above 1 - eps (row 0), below eps (rows 2, 3), and between.
    assert not inside[0, 0] and not inside[2, 2] and not inside[3, 0] and inside[1, 1] and inside[4].all()
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == "float32" else dict(rtol=1e-12, atol=1e-15)
    numpy.testing.assert_allclose(to_numpy(loss), want_loss, **tol)
    numpy.testing.assert_allclose(to_numpy(probs), want_p, **tol)
    numpy.testing.assert_allclose(to_numpy(dlogits), want_d, **tol)
    # -log(1e-7) caps a target below the clip; its row, and the row of a target above it, pass no gradient.
    numpy.testing.assert_allclose(to_numpy(loss)[[2, 3]], -numpy.log(numpy.float64(numpy.dtype(dtype).type(EPS))),
                                  rtol=1e-6)
    assert float(to_numpy(loss)[2]) < 16.2 and (to_numpy(dlogits)[[0, 2, 3]] == 0).all()
    # Row 1: the target class passes the clip, the third class (p ~ 4e-18) does not; p - t, as unclipped.
    numpy.testing.assert_allclose(to_numpy(dlogits)[1], want_p[1] - targets[1], **tol)
    # epsilon=0 is the exact log-softmax: 60 for row 2, and the gradient p - t.
    exact, _, exact_d = softmax_xent(xp.asarray(SATURATED, dtype=dtype), xp.asarray(labels), sparse=sparse)
    numpy.testing.assert_allclose(to_numpy(exact)[2], 60.0, rtol=1e-6)
    numpy.testing.assert_allclose(to_numpy(exact_d), want_p - targets, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sparse", [True, False])
def test_clip_with_smoothing_soft_targets_and_row_weights(xp, rng, dtype, sparse):
    logits = rng.standard_normal((17, 5)) * 12   # about a third of the probabilities are below 1e-7
    labels = rng.integers(0, 5, 17)
    raw = onehot(labels, 5) if sparse else rng.dirichlet(numpy.ones(5), 17) * rng.random((17, 1)) * 2
    targets = raw * 0.8 + 0.2 / 5
    weights = rng.random(17)
    loss, probs, dlogits = softmax_xent(xp.asarray(logits, dtype=dtype), xp.asarray(labels if sparse else raw),
                                        sparse=sparse, label_smoothing=0.2, epsilon=EPS, grad_scale=0.5,
                                        row_weights=xp.asarray(weights, dtype=dtype))
    want_loss, _, want_d, inside = clipped_expectation(logits, targets, dtype)
    assert 0.1 < (~inside).mean() < 0.9
    tol = dict(rtol=2e-6, atol=2e-6) if dtype == "float32" else dict(rtol=1e-11, atol=1e-13)
    numpy.testing.assert_allclose(to_numpy(loss), want_loss, **tol)
    numpy.testing.assert_allclose(to_numpy(dlogits), want_d * 0.5 * weights[:, None], **tol)


@pytest.mark.parametrize("sparse", [True, False])
def test_clipped_dlogits_is_the_gradient_away_from_the_bounds(xp, rng, sparse):
    logits = rng.standard_normal((17, 6)) * 12
    labels = rng.integers(0, 6, 17)
    targets = xp.asarray(labels if sparse else rng.dirichlet(numpy.ones(6), 17))
    _, p, _, inside = clipped_expectation(logits, onehot(labels, 6) if sparse else to_numpy(targets), "float64")
    # Finite differences move the logits by ~1e-6: no probability may be that close to a bound.
    assert 0.1 < (~inside).mean() < 0.9
    assert (numpy.abs(numpy.log(p / EPS)) > 1e-3).all() and (numpy.abs(numpy.log((1 - p) / EPS)) > 1e-3).all()
    logits = xp.asarray(logits)
    _, _, dlogits = softmax_xent(logits, targets, sparse=sparse, label_smoothing=0.1, epsilon=EPS)
    assert_gradient(lambda z: softmax_xent(z, targets, sparse=sparse, label_smoothing=0.1, epsilon=EPS)[0].sum(),
                    logits, dlogits, rng, what="logits")


def test_epsilon_out_of_range_is_refused(xp):
    with pytest.raises(ValueError, match="epsilon"):
        softmax_xent(xp.zeros((3, 4)), xp.zeros((3,), dtype="int64"), sparse=True, epsilon=0.5)
    with pytest.raises(ValueError, match="epsilon"):
        softmax_xent(xp.zeros((3, 4)), xp.zeros((3,), dtype="int64"), sparse=True, epsilon=-1e-7)
