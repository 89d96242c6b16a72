"""Losses: values against written-out NumPy formulas, gradients against finite differences,
Keras 3's edge behaviours, reductions, the fused softmax path, target checks and the registry."""
import os

import numpy
import pytest

from gpu_dl import losses
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient

EPS = 1e-7
SIZES = [(1, 1), (3, 1), (1, 3), (17, 3), (3, 33)]


def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


# ------------------------------------------------- written-out expectations
def softmax(z):
    e = numpy.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def expected_mse(t, p):
    return ((t - p) ** 2).mean(-1)


def expected_mae(t, p):
    return numpy.abs(t - p).mean(-1)


def expected_mape(t, p):
    return 100 * (numpy.abs(t - p) / numpy.maximum(numpy.abs(t), EPS)).mean(-1)


def expected_msle(t, p):
    return ((numpy.log(numpy.maximum(p, EPS) + 1) - numpy.log(numpy.maximum(t, EPS) + 1)) ** 2).mean(-1)


def expected_hinge(t, p):
    t = 2 * t - 1 if numpy.isin(t, [0, 1]).all() else t
    return numpy.maximum(1 - t * p, 0).mean(-1)


def expected_squared_hinge(t, p):
    t = 2 * t - 1 if numpy.isin(t, [0, 1]).all() else t
    return (numpy.maximum(1 - t * p, 0) ** 2).mean(-1)


def expected_categorical_hinge(t, p):
    return numpy.maximum(((1 - t) * p).max(-1) - (t * p).sum(-1) + 1, 0)


def expected_log_cosh(t, p):
    return numpy.log(numpy.cosh(p - t)).mean(-1)


def expected_huber(t, p, delta=1.0):
    e = numpy.abs(p - t)
    return numpy.where(e <= delta, 0.5 * e ** 2, delta * e - 0.5 * delta ** 2).mean(-1)


def expected_cce(t, p, label_smoothing=0.0):
    t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    q = numpy.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -(t * numpy.log(q)).sum(-1)


def expected_bce(t, p, label_smoothing=0.0):
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    p = numpy.clip(p, EPS, 1 - EPS)
    return -(t * numpy.log(p) + (1 - t) * numpy.log(1 - p)).mean(-1)


def expected_kld(t, p):
    t, p = numpy.clip(t, EPS, 1), numpy.clip(p, EPS, 1)
    return (t * numpy.log(t / p)).sum(-1)


def expected_poisson(t, p):
    return (p - t * numpy.log(p + EPS)).mean(-1)


def expected_cosine(t, p):
    def unit(x):
        return x / numpy.maximum(numpy.linalg.norm(x, axis=-1, keepdims=True), EPS)
    return -(unit(t) * unit(p)).sum(-1)


# Targets and predictions kept away from kinks and clip bounds, so finite differences see smooth functions.
def real_pair(rng, shape):
    t = rng.standard_normal(shape)
    gap = rng.choice([-1, 1], shape) * rng.uniform(0.2, 1.5, shape)
    return t, t + gap


def positive_pair(rng, shape):
    return rng.uniform(0.1, 2.0, shape), rng.uniform(0.1, 2.0, shape)


def binary_pair(rng, shape):
    return rng.integers(0, 2, shape).astype(float), rng.uniform(0.05, 0.95, shape)


def hinge_pair(rng, shape):
    t = rng.choice([-1.0, 1.0], shape)
    margin = rng.choice([-1, 1], shape) * rng.uniform(0.1, 1.0, shape)   # 1 - t p away from 0
    return t, (1 - margin) / t


def categorical_pair(rng, shape):
    t = numpy.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
    return t, rng.uniform(0.05, 1.0, shape)   # rows need not sum to 1: Keras renormalises


def distribution_pair(rng, shape):
    return rng.dirichlet(numpy.ones(shape[-1]), shape[:-1]), rng.uniform(0.05, 0.95, shape)


def categorical_hinge_pair(rng, shape):
    t, p = categorical_pair(rng, shape)
    # Keep the wrong-class maximum unique and the margin away from 0.
    p = p + numpy.arange(shape[-1]) * 0.3
    margin = ((1 - t) * p).max(-1) - (t * p).sum(-1) + 1
    p = p + t * numpy.where(numpy.abs(margin) < 0.1, 0.3, 0.0)[..., None]
    return t, p


CASES = {
    "mean_squared_error": (losses.MeanSquaredError, expected_mse, real_pair),
    "mean_absolute_error": (losses.MeanAbsoluteError, expected_mae, real_pair),
    "mean_absolute_percentage_error": (losses.MeanAbsolutePercentageError, expected_mape, real_pair),
    "mean_squared_logarithmic_error": (losses.MeanSquaredLogarithmicError, expected_msle, positive_pair),
    "hinge": (losses.Hinge, expected_hinge, hinge_pair),
    "squared_hinge": (losses.SquaredHinge, expected_squared_hinge, hinge_pair),
    "categorical_hinge": (losses.CategoricalHinge, expected_categorical_hinge, categorical_hinge_pair),
    "log_cosh": (losses.LogCosh, expected_log_cosh, real_pair),
    "huber": (losses.Huber, expected_huber, real_pair),
    "categorical_crossentropy": (losses.CategoricalCrossentropy, expected_cce, categorical_pair),
    "binary_crossentropy": (losses.BinaryCrossentropy, expected_bce, binary_pair),
    "kl_divergence": (losses.KLDivergence, expected_kld, distribution_pair),
    "poisson": (losses.Poisson, expected_poisson, positive_pair),
    "cosine_similarity": (losses.CosineSimilarity, expected_cosine, real_pair),
}


# ------------------------------------------------------------ forward/backward
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("shape", SIZES)
def test_values_match_formula(xp, rng, name, shape):
    cls, expected, make = CASES[name]
    t, p = make(rng, shape)
    loss = cls()
    got = loss.call(xp.asarray(t), xp.asarray(p))
    assert type(got) is type(xp.asarray(p)) and got.shape == shape[:-1]
    numpy.testing.assert_allclose(to_numpy(got), expected(t, p), rtol=1e-10, atol=1e-12)
    # The function form (Keras's name) gives the same per-sample values.
    function = getattr(losses, name)
    numpy.testing.assert_allclose(to_numpy(function(xp.asarray(t), xp.asarray(p))), expected(t, p),
                                  rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 3)])
def test_gradient_matches_finite_differences(xp, rng, name, shape):
    cls, _, make = CASES[name]
    t, p = make(rng, shape)
    loss = cls()
    t, p = xp.asarray(t), xp.asarray(p)
    grad = loss.grad(t, p)
    assert grad.shape == p.shape and grad.dtype == p.dtype
    assert_gradient(lambda q: loss.call(t, q).sum(), p, grad, rng, what=f"{name} y_pred")


@pytest.mark.parametrize("loss", [
    losses.CategoricalCrossentropy(from_logits=True),
    losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
    losses.CategoricalCrossentropy(label_smoothing=0.1), losses.BinaryCrossentropy(label_smoothing=0.3),
    losses.BinaryCrossentropy(from_logits=True), losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
    losses.SparseCategoricalCrossentropy(), losses.SparseCategoricalCrossentropy(from_logits=True),
    losses.SparseCategoricalCrossentropy(ignore_class=1), losses.Huber(delta=0.3),
    losses.CosineSimilarity(axis=0), losses.CategoricalCrossentropy(axis=0),
], ids=repr)
@pytest.mark.parametrize("shape", [(3, 5), (17, 3)])
def test_variants_forward_and_gradient(xp, rng, loss, shape):
    n, c = shape
    from_logits = getattr(loss, "from_logits", False)
    labels = rng.integers(0, c, n)
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        t = labels
        p = rng.standard_normal(shape) if from_logits else rng.uniform(0.05, 1.0, shape)
        onehot = numpy.eye(c)[labels]
        if from_logits:
            want = -(onehot * numpy.log(softmax(p))).sum(-1)
        else:
            want = expected_cce(onehot, p)
        if loss.ignore_class is not None:
            want = numpy.where(labels == loss.ignore_class, 0.0, want)
    elif isinstance(loss, losses.CategoricalCrossentropy):
        axis = loss.axis
        t = numpy.moveaxis(numpy.eye(shape[axis])[rng.integers(0, shape[axis], shape[axis - 1])], -1, axis)
        p = rng.standard_normal(shape) if from_logits else rng.uniform(0.05, 1.0, shape)
        tl, pl = numpy.moveaxis(t, axis, -1), numpy.moveaxis(p, axis, -1)
        if from_logits:
            ts = tl * (1 - loss.label_smoothing) + loss.label_smoothing / tl.shape[-1]
            want = -(ts * numpy.log(softmax(pl))).sum(-1)
        else:
            want = expected_cce(tl, pl, loss.label_smoothing)
    elif isinstance(loss, losses.BinaryCrossentropy):
        t = rng.integers(0, 2, shape).astype(float)
        p = rng.standard_normal(shape) * 3 if from_logits else rng.uniform(0.05, 0.95, shape)
        if from_logits:
            ts = t * (1 - loss.label_smoothing) + 0.5 * loss.label_smoothing
            s = 1 / (1 + numpy.exp(-p))
            want = -(ts * numpy.log(s) + (1 - ts) * numpy.log(1 - s)).mean(-1)
        else:
            want = expected_bce(t, p, loss.label_smoothing)
    elif isinstance(loss, losses.Huber):
        t, p = real_pair(rng, shape)
        p = numpy.where(numpy.abs(numpy.abs(p - t) - 0.3) < 0.05, p + 0.2, p)
        want = expected_huber(t, p, 0.3)
    else:  # cosine along axis 0
        t, p = real_pair(rng, shape)
        want = expected_cosine(t.T, p.T)
    t_dev, p_dev = xp.asarray(t), xp.asarray(p)
    numpy.testing.assert_allclose(to_numpy(loss.call(t_dev, p_dev)), want, rtol=1e-10, atol=1e-12)
    grad = loss.grad(t_dev, p_dev)
    assert grad.shape == p_dev.shape
    assert_gradient(lambda q: loss.call(t_dev, q).sum(), p_dev, grad, rng, what=repr(loss))


def test_float32_stays_float32(xp, rng):
    t, p = categorical_pair(rng, (5, 4))
    for loss in (losses.MeanSquaredError(), losses.CategoricalCrossentropy(), losses.Hinge(),
                 losses.CosineSimilarity()):
        tt, pp = xp.asarray(t, dtype="float32"), xp.asarray(p, dtype="float32")
        assert loss.call(tt, pp).dtype == numpy.float32
        assert loss.grad(tt, pp).dtype == numpy.float32
        assert loss(tt, pp).dtype == numpy.float32 and loss(tt, pp).shape == ()


# ------------------------------------------------------- Keras edge behaviours
def test_categorical_crossentropy_clips_and_renormalises(xp):
    t = numpy.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p = numpy.array([[0.5, 0.0, 0.5], [2.0, 1.0, 1.0]])   # a zero at the true class; a row summing to 4
    loss = losses.CategoricalCrossentropy()
    got = to_numpy(loss.call(xp.asarray(t), xp.asarray(p)))
    numpy.testing.assert_allclose(got, [-numpy.log(EPS), -numpy.log(0.5)], rtol=1e-12)
    grad = to_numpy(loss.grad(xp.asarray(t), xp.asarray(p)))
    # The clipped entry passes no gradient, and the other entries' q = p/sum(p) carry no loss weight.
    numpy.testing.assert_allclose(grad[0], [0.0, 0.0, 0.0], atol=1e-12)
    numpy.testing.assert_allclose(grad[1], [-0.25, 0.25, 0.25], rtol=1e-12)


def test_binary_crossentropy_clips(xp):
    t = numpy.array([[1.0, 0.0, 1.0, 0.0]])
    p = numpy.array([[0.0, 1.0, 1.0, 0.0]])
    loss = losses.BinaryCrossentropy()
    got = float(to_numpy(loss.call(xp.asarray(t), xp.asarray(p)))[0])
    want = (-2 * numpy.log(EPS) - 2 * numpy.log(1 - EPS)) / 4
    assert got == pytest.approx(want, rel=1e-7)
    numpy.testing.assert_array_equal(to_numpy(loss.grad(xp.asarray(t), xp.asarray(p))), numpy.zeros((1, 4)))


def test_binary_crossentropy_from_logits_large_logits_finite(xp):
    loss = losses.BinaryCrossentropy(from_logits=True)
    t, z = xp.asarray([[1.0, 0.0, 1.0, 0.0]]), xp.asarray([[1000.0, 1000.0, -1000.0, -1000.0]])
    numpy.testing.assert_allclose(to_numpy(loss.call(t, z)), [(0 + 1000 + 1000 + 0) / 4])
    numpy.testing.assert_allclose(to_numpy(loss.grad(t, z)), [[0.0, 0.25, -0.25, 0.0]])


def test_hinge_converts_only_all_binary_targets(xp):
    p = numpy.array([[0.3, -0.6], [1.5, 0.2]])
    binary = numpy.array([[0.0, 1.0], [1.0, 0.0]])
    signed = 2 * binary - 1
    for loss in (losses.Hinge(), losses.SquaredHinge()):
        a = to_numpy(loss.call(xp.asarray(binary), xp.asarray(p)))
        b = to_numpy(loss.call(xp.asarray(signed), xp.asarray(p)))
        numpy.testing.assert_allclose(a, b)
    # One target that is neither 0 nor 1: the whole batch is taken as given.
    mixed = numpy.array([[0.0, 1.0], [1.0, 0.5]])
    got = to_numpy(losses.Hinge().call(xp.asarray(mixed), xp.asarray(p)))
    numpy.testing.assert_allclose(got, numpy.maximum(1 - mixed * p, 0).mean(-1))


def test_msle_mape_kld_poisson_edges(xp):
    t = numpy.array([[0.0, 2.0, 0.5]])
    p = numpy.array([[-3.0, 1.0, 0.0]])
    msle = losses.MeanSquaredLogarithmicError()
    numpy.testing.assert_allclose(to_numpy(msle.call(xp.asarray(t), xp.asarray(p))), expected_msle(t, p))
    # max(y_pred, eps): negative predictions do not move the loss.
    assert to_numpy(msle.grad(xp.asarray(t), xp.asarray(p)))[0, 0] == 0.0
    mape = losses.MeanAbsolutePercentageError()
    numpy.testing.assert_allclose(to_numpy(mape.call(xp.asarray(t), xp.asarray(p))),
                                  [100 * (3.0 / EPS + 0.5 + 1.0) / 3])
    kld = losses.KLDivergence()
    numpy.testing.assert_allclose(to_numpy(kld.call(xp.asarray(t), xp.asarray(p))), expected_kld(t, p))
    assert to_numpy(kld.grad(xp.asarray(t), xp.asarray(p)))[0, 0] == 0.0   # y_pred clipped to eps there
    tp, pp = numpy.array([[0.0, 3.0]]), numpy.array([[0.0, 2.0]])
    numpy.testing.assert_allclose(to_numpy(losses.Poisson().call(xp.asarray(tp), xp.asarray(pp))),
                                  [(0.0 + 2.0 - 3.0 * numpy.log(2.0 + EPS)) / 2])


def test_cosine_similarity_is_negative_and_handles_zero_vectors(xp):
    t = numpy.array([[1.0, 2.0], [1.0, 0.0], [0.0, 0.0]])
    p = numpy.array([[2.0, 4.0], [-3.0, 0.0], [1.0, 1.0]])
    got = to_numpy(losses.CosineSimilarity().call(xp.asarray(t), xp.asarray(p)))
    numpy.testing.assert_allclose(got, [-1.0, 1.0, 0.0], atol=1e-12)


def test_log_cosh_is_stable_for_large_errors(xp):
    got = to_numpy(losses.LogCosh().call(xp.asarray([[0.0, 0.0]]), xp.asarray([[1e4, -1e4]])))
    numpy.testing.assert_allclose(got, [1e4 - numpy.log(2.0)], rtol=1e-12)


# ---------------------------------------------------- rank alignment (Keras)
@pytest.mark.parametrize("t_shape,p_shape", [((5,), (5, 1)), ((5, 1), (5,)), ((5, 3), (5, 3, 1)), ((5, 3, 1), (5, 3))])
def test_rank_mismatch_by_one_is_aligned(xp, rng, t_shape, p_shape):
    t, p = rng.standard_normal(t_shape), rng.standard_normal(p_shape)
    loss = losses.MeanSquaredError()
    # Keras drops (or, against a vector, adds) the trailing 1: one value per sample either way.
    got = to_numpy(loss.call(xp.asarray(t), xp.asarray(p)))
    numpy.testing.assert_allclose(got, expected_mse(t.reshape(5, -1), p.reshape(5, -1)), rtol=1e-12)
    grad = loss.grad(xp.asarray(t), xp.asarray(p))
    assert grad.shape == p_shape
    assert_gradient(lambda q: loss.call(xp.asarray(t), q).sum(), xp.asarray(p), grad, rng)


def test_column_targets_against_vector_output(xp, rng):
    # (N,) targets with an (N, 1) output: one value per sample, as Keras gives.
    t, p = rng.random(7), rng.random((7, 1))
    for loss, expected in ((losses.MeanSquaredError(), expected_mse), (losses.BinaryCrossentropy(), expected_bce)):
        got = to_numpy(loss.call(xp.asarray(t), xp.asarray(p)))
        numpy.testing.assert_allclose(got, expected(t[:, None], p), rtol=1e-12)


# ------------------------------------------------------------------ reductions
def test_keras_documented_values(xp):
    """SparseCategoricalCrossentropy's docstring example in Keras 3."""
    y_true = xp.asarray([1, 2])
    y_pred = xp.asarray([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    assert float(to_numpy(losses.SparseCategoricalCrossentropy()(y_true, y_pred))) == pytest.approx(1.177, abs=1e-3)
    assert float(to_numpy(losses.SparseCategoricalCrossentropy()(y_true, y_pred,
                                                                 sample_weight=xp.asarray([0.3, 0.7])))) \
        == pytest.approx(0.814, abs=1e-3)
    assert float(to_numpy(losses.SparseCategoricalCrossentropy(reduction="sum")(y_true, y_pred))) \
        == pytest.approx(2.354, abs=1e-3)
    none = to_numpy(losses.SparseCategoricalCrossentropy(reduction=None)(y_true, y_pred))
    numpy.testing.assert_allclose(none, [0.0513, 2.303], atol=1e-3)


@pytest.mark.parametrize("n", [1, 3, 17])
def test_reductions_and_sample_weight(xp, rng, n):
    t, p = real_pair(rng, (n, 4))
    values = expected_mse(t, p)
    w = rng.uniform(0, 2, n)
    cases = [
        ("sum_over_batch_size", None, values.sum() / n),
        ("sum_over_batch_size", w, (values * w).sum() / n),
        ("sum_over_batch_size", w[:, None], (values * w).sum() / n),
        ("sum_over_batch_size", 0.5, values.sum() * 0.5 / n),
        ("mean", w, (values * w).sum() / n),
        ("sum", w, (values * w).sum()),
        ("mean_with_sample_weight", w, (values * w).sum() / w.sum()),
    ]
    for reduction, weight, want in cases:
        loss = losses.MeanSquaredError(reduction=reduction, dtype="float64")
        got = loss(xp.asarray(t), xp.asarray(p), sample_weight=None if weight is None else xp.asarray(weight))
        assert got.shape == () and type(got) is type(xp.asarray(p))
        assert float(to_numpy(got)) == pytest.approx(want, rel=1e-12)
    for reduction in ("none", None):
        got = losses.MeanSquaredError(reduction=reduction, dtype="float64")(xp.asarray(t), xp.asarray(p), xp.asarray(w))
        numpy.testing.assert_allclose(to_numpy(got), values * w)
    zero = losses.MeanSquaredError(reduction="mean_with_sample_weight", dtype="float64")(
        xp.asarray(t), xp.asarray(p), xp.zeros(n))
    assert float(to_numpy(zero)) == 0.0   # divide_no_nan


def test_call_computes_in_the_loss_dtype(xp, rng):
    t, p = real_pair(rng, (3, 2))
    assert losses.MeanSquaredError()(xp.asarray(t), xp.asarray(p)).dtype == numpy.float32
    assert losses.MeanSquaredError(dtype="float64")(xp.asarray(t), xp.asarray(p)).dtype == numpy.float64


def test_ignore_class_is_left_out_of_the_average(xp, rng):
    p = rng.uniform(0.05, 1, (6, 3))
    labels = numpy.array([0, 2, -1, 1, -1, 2])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1, dtype="float64")
    valid = labels != -1
    per_sample = expected_cce(numpy.eye(3)[numpy.where(valid, labels, 0)], p) * valid
    numpy.testing.assert_allclose(to_numpy(loss.call(xp.asarray(labels), xp.asarray(p))), per_sample)
    assert float(to_numpy(loss(xp.asarray(labels), xp.asarray(p)))) == pytest.approx(per_sample.sum() / valid.sum())
    assert numpy.all(to_numpy(loss.grad(xp.asarray(labels), xp.asarray(p)))[~valid] == 0)


def test_bad_reduction_and_arguments():
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="average")
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.CategoricalCrossentropy(label_smoothing=2)
    with pytest.raises(ValueError, match="axis"):
        losses.CategoricalCrossentropy(axis=True)
    with pytest.raises(ValueError, match="delta"):
        losses.Huber(delta=0)


# ------------------------------------------------------------- fused softmax
def test_softmax_fusable_flags():
    assert losses.CategoricalCrossentropy().softmax_fusable
    assert losses.SparseCategoricalCrossentropy().softmax_fusable
    assert not losses.CategoricalCrossentropy(from_logits=True).softmax_fusable
    assert not losses.SparseCategoricalCrossentropy(from_logits=True).softmax_fusable
    assert not losses.CategoricalCrossentropy(axis=1).softmax_fusable
    assert not losses.MeanSquaredError().softmax_fusable
    assert not losses.BinaryCrossentropy().softmax_fusable


@pytest.mark.parametrize("shape", [(1, 2), (17, 3), (33, 10)])
@pytest.mark.parametrize("sparse", [True, False])
def test_fused_equals_probability_path_in_float32(xp, rng, shape, sparse):
    n, c = shape
    logits = (rng.standard_normal(shape) * 2).astype("float32")   # no probability near 1e-7
    labels = rng.integers(0, c, n)
    t = labels if sparse else numpy.eye(c, dtype="float32")[labels]
    loss = losses.SparseCategoricalCrossentropy() if sparse else losses.CategoricalCrossentropy(label_smoothing=0.1)
    fused, probs, dlogits = loss.call_from_logits(xp.asarray(t), xp.asarray(logits))
    assert fused.dtype == numpy.float32 and probs.dtype == numpy.float32 and dlogits.dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(probs), softmax(logits.astype(float)), rtol=1e-5, atol=1e-7)
    via_probs = loss.call(xp.asarray(t), probs)
    numpy.testing.assert_allclose(to_numpy(fused), to_numpy(via_probs), rtol=2e-6, atol=2e-6)
    # The chain rule through softmax of the probability path's gradient is the fused dlogits.
    p = softmax(logits.astype(float))
    gp = to_numpy(loss.grad(numpy.asarray(t), p))
    chained = p * (gp - (gp * p).sum(-1, keepdims=True))
    numpy.testing.assert_allclose(to_numpy(dlogits), chained, rtol=1e-4, atol=1e-6)


def test_fused_stays_finite_for_large_logits(xp):
    logits = xp.asarray([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], dtype="float32")
    for loss, t in ((losses.SparseCategoricalCrossentropy(), xp.asarray([1, 0])),
                    (losses.CategoricalCrossentropy(), xp.asarray([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))):
        value, probs, dlogits = loss.call_from_logits(t, logits)
        numpy.testing.assert_allclose(to_numpy(value), [2000.0, 2000.0 + numpy.log(2.0)], rtol=1e-6)
        assert numpy.isfinite(to_numpy(dlogits)).all() and numpy.isfinite(to_numpy(probs)).all()


def test_fused_respects_ignore_class(xp, rng):
    logits = xp.asarray(rng.standard_normal((4, 3)))
    loss = losses.SparseCategoricalCrossentropy(ignore_class=2)
    value, _, dlogits = loss.call_from_logits(xp.asarray([0, 2, 1, 2]), logits)
    assert to_numpy(value)[1] == 0 and to_numpy(value)[3] == 0 and to_numpy(value)[0] > 0
    assert numpy.all(to_numpy(dlogits)[[1, 3]] == 0)


# ------------------------------------------------------------- target checks
def test_validate_targets_integer_labels_to_categorical():
    loss = losses.get("categorical_crossentropy")
    for y in (numpy.arange(12) % 10, (numpy.arange(12) % 10).reshape(12, 1), (numpy.arange(12) % 10).astype(float)):
        with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy.*to_categorical"):
            loss.validate_targets(y, (None, 10))
    loss.validate_targets(numpy.eye(10)[numpy.arange(12) % 10], (None, 10))


@pytest.mark.parametrize("y,message", [
    (numpy.full(12, 10), r"labels in `y` must be in \[0, 10\); got max 10"),
    (numpy.full(12, -1), r"must be in \[0, 10\); got min -1"),
    (numpy.full(12, 2.5), "integer class ids.*2.5"),
    (numpy.zeros((12, 2), int), r"one integer class id per sample.*\(12,\).*got \(12, 2\)"),
    (numpy.eye(10)[numpy.arange(12) % 10], "one-hot.*categorical_crossentropy"),
])
def test_validate_targets_sparse(y, message):
    with pytest.raises(ValueError, match=message):
        losses.SparseCategoricalCrossentropy().validate_targets(y, (None, 10))


def test_validate_targets_sparse_accepts_good_labels():
    loss = losses.SparseCategoricalCrossentropy()
    loss.validate_targets(numpy.arange(12) % 10, (None, 10))
    loss.validate_targets((numpy.arange(12) % 10).reshape(12, 1), (None, 10))
    loss.validate_targets((numpy.arange(12) % 10).astype("float32"), (None, 10))
    losses.SparseCategoricalCrossentropy(ignore_class=-1).validate_targets(numpy.array([-1, 3, 9]), (None, 10))


def test_validate_targets_binary_range():
    loss = losses.BinaryCrossentropy()
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*from 0 to 2"):
        loss.validate_targets(numpy.array([0, 1, 2]), (None, 1))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*-1"):
        loss.validate_targets(numpy.array([[-1.0], [0.5]]), (None, 1))
    loss.validate_targets(numpy.array([0, 1, 1]), (None, 1))
    loss.validate_targets(numpy.array([[0.2, 1.0]]), (None, 2))


def test_validate_targets_elementwise_shapes():
    loss = losses.MeanSquaredError()
    loss.validate_targets(numpy.zeros(12), (None, 1))          # Keras expands (N,) to (N, 1)
    loss.validate_targets(numpy.zeros((12, 1)), (None, 1))
    loss.validate_targets(numpy.zeros((12, 3, 1)), (None, 3))  # and squeezes a trailing 1
    with pytest.raises(ValueError, match=r"targets `y` of shape \(12, 2\) do not fit.*\(None, 3\).*\(12, 3\)"):
        loss.validate_targets(numpy.zeros((12, 2)), (None, 3))
    with pytest.raises(ValueError, match="class ids.*sparse_categorical_crossentropy"):
        loss.validate_targets(numpy.arange(12) % 3, (None, 3))


# ------------------------------------------------------------------ registry
@pytest.mark.parametrize("identifier,cls", [
    ("mse", losses.MeanSquaredError), ("MSE", losses.MeanSquaredError), ("mean_squared_error", losses.MeanSquaredError),
    ("MeanSquaredError", losses.MeanSquaredError), ("mae", losses.MeanAbsoluteError),
    ("mape", losses.MeanAbsolutePercentageError),
    ("msle", losses.MeanSquaredLogarithmicError), ("kld", losses.KLDivergence), ("kl_divergence", losses.KLDivergence),
    ("kullback_leibler_divergence", losses.KLDivergence), ("logcosh", losses.LogCosh), ("log_cosh", losses.LogCosh),
    ("cosine_similarity", losses.CosineSimilarity), ("cosine_proximity", losses.CosineSimilarity),
    ("huber", losses.Huber), ("hinge", losses.Hinge), ("squared_hinge", losses.SquaredHinge),
    ("categorical_hinge", losses.CategoricalHinge), ("poisson", losses.Poisson), ("bce", losses.BinaryCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy), ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ("SparseCategoricalCrossentropy", losses.SparseCategoricalCrossentropy),
])
def test_get_by_name(identifier, cls):
    loss = losses.get(identifier)
    assert type(loss) is cls


def test_get_names_and_other_forms():
    assert losses.get("mse").name == "mse"                      # named as written, as Keras's compile does
    assert losses.get("MeanSquaredError").name == "mean_squared_error"
    assert losses.get("Huber").name == "huber_loss"
    instance = losses.Huber(delta=2.0)
    assert losses.get(instance) is instance
    assert type(losses.get(losses.Poisson)) is losses.Poisson
    assert losses.get(None) is None
    restored = losses.get({"class_name": "CategoricalCrossentropy",
                           "config": {"from_logits": True, "label_smoothing": 0.1}})
    assert restored.from_logits and restored.label_smoothing == 0.1


def test_get_wraps_functions_and_rejects_unknown_names():
    # A function becomes a traced LossFunctionWrapper named as Keras names it; gpu_dl's own, its class.
    def myLoss(y_true, y_pred):
        return (y_true - y_pred) ** 2
    wrapped = losses.get(myLoss)
    assert type(wrapped) is losses.LossFunctionWrapper and wrapped.fn is myLoss and wrapped.traced
    assert wrapped.name == "my_loss" and wrapped.given_as_function
    assert type(losses.get(losses.mse)) is losses.MeanSquaredError and losses.get(losses.mse).name == \
        "mean_squared_error"
    assert not losses.get(losses.huber).traced
    with pytest.raises(ValueError, match="Unknown name 'mean_squared_eror'.*mean_squared_error"):
        losses.get("mean_squared_eror")
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        losses.get("crossentropy")
    with pytest.raises(TypeError, match="Could not interpret"):
        losses.get(42)


@pytest.mark.parametrize("loss", [losses.MeanSquaredError(reduction="sum", name="m"), losses.Huber(delta=0.5),
                                  losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2, axis=-1),
                                  losses.SparseCategoricalCrossentropy(ignore_class=3),
                                  losses.BinaryCrossentropy(label_smoothing=0.1),
                                  losses.CosineSimilarity(axis=1)], ids=repr)
def test_config_round_trip(loss):
    config = losses.serialize(loss)
    assert config["module"] == "keras.losses" and config["class_name"] == type(loss).__name__
    again = losses.deserialize(config)
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert type(loss).from_config(loss.get_config()).get_config() == loss.get_config()


def test_keras_config_keys():
    assert losses.MeanSquaredError().get_config() == {"name": "mean_squared_error", "reduction": "sum_over_batch_size"}
    assert losses.CategoricalCrossentropy().get_config() == {
        "name": "categorical_crossentropy", "reduction": "sum_over_batch_size",
        "from_logits": False, "label_smoothing": 0.0, "axis": -1}


# ------------------------------------------------------------- Keras oracle
KERAS_CASES = [(name, {}, make) for name, (_, _, make) in CASES.items()] + [
    ("categorical_crossentropy", {"label_smoothing": 0.1}, categorical_pair),
    ("categorical_crossentropy", {"from_logits": True}, real_pair),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, binary_pair),
    ("huber", {"delta": 0.4}, real_pair),
]


@pytest.mark.parametrize("name,kwargs,make", KERAS_CASES, ids=[f"{c[0]}{c[1] or ''}" for c in KERAS_CASES])
def test_matches_keras(rng, name, kwargs, make):
    keras = keras_or_skip()
    cls = CASES[name][0]
    t, p = (a.astype("float32") for a in make(rng, (17, 5)))
    w = rng.uniform(0, 2, 17).astype("float32")
    ours = cls(**kwargs)
    theirs = getattr(keras.losses, cls.__name__)(**kwargs)
    for weight in (None, w):
        want = float(numpy.asarray(theirs(t, p, sample_weight=weight)))
        assert float(ours(t, p, sample_weight=weight)) == pytest.approx(want, rel=2e-6, abs=1e-6)
    none_ours = cls(reduction=None, **kwargs).call(t, p)
    none_theirs = numpy.asarray(getattr(keras.losses, cls.__name__)(reduction=None, **kwargs)(t, p))
    numpy.testing.assert_allclose(none_ours, none_theirs, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("kwargs", [{}, {"from_logits": True}, {"ignore_class": 1}])
def test_sparse_matches_keras(rng, kwargs):
    keras = keras_or_skip()
    labels = rng.integers(0, 5, 17)
    p = rng.standard_normal((17, 5)).astype("float32") if kwargs.get("from_logits") else \
        rng.uniform(0.05, 1, (17, 5)).astype("float32")
    want = float(numpy.asarray(keras.losses.SparseCategoricalCrossentropy(**kwargs)(labels, p)))
    assert float(losses.SparseCategoricalCrossentropy(**kwargs)(labels, p)) == pytest.approx(want, rel=2e-6)


def test_function_names_match_keras(rng):
    keras = keras_or_skip()
    t, p = (a.astype("float32") for a in positive_pair(rng, (3, 4)))
    for name in ("mse", "mae", "mape", "msle", "kld", "log_cosh", "poisson", "hinge", "squared_hinge",
                 "categorical_hinge", "kl_divergence", "mean_squared_error", "huber", "cosine_similarity"):
        theirs = numpy.asarray(getattr(keras.losses, name, None)(t, p)) if hasattr(keras.losses, name) else None
        if theirs is None:
            continue
        numpy.testing.assert_allclose(getattr(losses, name)(t, p), theirs, rtol=2e-6, atol=1e-6, err_msg=name)
