"""The factors training multiplies into a loss's gradient reproduce the loss's own reduction."""
import numpy
import pytest

from gpu_dl import losses
from gpu_dl.backend import to_numpy


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_class", [None, 2])
def test_weighted_sum_equals_reduced_loss(xp, rng, reduction, weighted, ignore_class):
    loss = losses.SparseCategoricalCrossentropy(reduction=reduction, ignore_class=ignore_class, dtype="float64")
    logits = rng.standard_normal((17, 4))
    probs = numpy.exp(logits) / numpy.exp(logits).sum(1, keepdims=True)
    y = xp.asarray(rng.integers(0, 4, 17))
    p = xp.asarray(probs)
    sw = xp.asarray(rng.uniform(0.1, 2.0, 17)) if weighted else None
    values = loss.call(y, p)
    w = loss.reduction_weights(y, p, values, sw)
    expected = float(to_numpy(loss(y, p, sample_weight=sw)))
    assert float(to_numpy((w * values).sum())) == pytest.approx(expected, rel=1e-12)


def test_reduction_none_cannot_train(xp):
    loss = losses.MeanSquaredError(reduction="none")
    values = xp.ones(3)
    with pytest.raises(ValueError, match="no scalar"):
        loss.reduction_weights(values, values, values)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight"])
def test_uniform_reduction_weight_is_every_factor_of_reduction_weights(reduction):
    loss = losses.SparseCategoricalCrossentropy(reduction=reduction)
    values = numpy.ones(7, dtype="float32")
    y_true, y_pred = numpy.zeros(7, dtype="int64"), numpy.full((7, 3), 1 / 3, dtype="float32")
    uniform = loss.uniform_reduction_weight(y_true, y_pred, values.size)
    numpy.testing.assert_allclose(loss.reduction_weights(y_true, y_pred, values), uniform, rtol=1e-7)
    assert loss.uniform_reduction_weight(y_true, y_pred, values.size, sample_weight=numpy.ones(7)) is None
    masked = losses.SparseCategoricalCrossentropy(reduction=reduction, ignore_class=0)
    assert masked.uniform_reduction_weight(y_true, y_pred, values.size) is None


@pytest.mark.parametrize("loss_name", ["mse", "binary_crossentropy"])
def test_unweighted_training_builds_no_array_of_equal_weights(monkeypatch, rng, loss_name):
    """Without sample weights or a mask, a step scales the loss and its gradient by one number; with sample
    weights it still takes the per-value factors, and both give what Keras's reduction gives."""
    import gpu_dl
    from gpu_dl import layers

    def build():
        gpu_dl.backend.set_random_seed(0)
        model = gpu_dl.Sequential([layers.Input((3,)), layers.Dense(2, activation="sigmoid")])
        model.compile(optimizer="sgd", loss=loss_name)
        return model

    x = rng.standard_normal((5, 3)).astype("float32")
    y = rng.integers(0, 2, (5, 2)).astype("float32")
    uniform_model, weighted_model = build(), build()
    calls = []
    original = losses.Loss.reduction_weights
    monkeypatch.setattr(losses.Loss, "reduction_weights",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    loss_uniform = uniform_model.train_on_batch(x, y)
    assert calls == []
    loss_weighted = weighted_model.train_on_batch(x, y, sample_weight=numpy.ones(5, dtype="float32"))
    assert calls == [1]
    assert loss_uniform == pytest.approx(loss_weighted, rel=1e-6)
    for a, b in zip(uniform_model.get_weights(), weighted_model.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", [losses.CategoricalCrossentropy(axis=1), losses.BinaryCrossentropy(axis=1),
                                  losses.CategoricalCrossentropy(axis=1, from_logits=True),
                                  losses.CategoricalFocalCrossentropy(axis=1), losses.CategoricalCrossentropy()],
                         ids=["cce-axis1", "bce-axis1", "cce-logits-axis1", "focal-axis1", "cce-last"])
def test_weighted_gradient_of_a_loss_reduced_over_an_inner_axis(xp, rng, loss):
    """Values of a loss over axis 1 of (N, C, K) are (N, K): their weights scale the gradient with axis 1 put
    back, not the trailing one (checked against finite differences of the weighted sum)."""
    from gpu_dl.models.model import _reduced_loss
    from gradcheck import assert_gradient
    axis = loss.axis
    y_pred = rng.random((3, 4, 5)) + 0.1
    if isinstance(loss, losses.CategoricalCrossentropy) and not loss.from_logits or "Focal" in type(loss).__name__:
        y_pred /= y_pred.sum(axis, keepdims=True)
    y = rng.random((3, 4, 5))
    y = xp.asarray((y == y.max(axis, keepdims=True)).astype(float))
    sw = xp.asarray(rng.random((3, 5) if axis == 1 else (3, 4)) + 0.2)
    _, grad = _reduced_loss(loss, y, xp.asarray(y_pred), sw, None, True)
    assert_gradient(lambda p: _reduced_loss(loss, y, p, sw, None, False)[0], xp.asarray(y_pred), grad, rng,
                    rtol=1e-6, what=f"{type(loss).__name__}(axis={axis}) weighted")
