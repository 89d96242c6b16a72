"""Metrics: batches of different sizes accumulate to the one-shot value; compile's name resolution."""
import os

import numpy
import pytest

from gpu_dl import losses, metrics
from gpu_dl.backend import array_module

SIZES = (1, 3, 17, 33)
CLASSES = 6


def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def make_batches(rng, kind, sizes=SIZES):
    """(y_true, y_pred) host batches for a metric of ``kind``."""
    out = []
    for n in sizes:
        labels = rng.integers(0, CLASSES, n)
        scores = rng.random((n, CLASSES))
        if kind == "sparse":
            out.append((labels, scores))
        elif kind == "sparse_column":
            out.append((labels[:, None], scores))
        elif kind == "onehot":
            out.append((numpy.eye(CLASSES)[labels], scores))
        elif kind == "binary":
            out.append((rng.integers(0, 2, (n, 1)).astype(float), rng.random((n, 1))))
        elif kind == "exact":
            out.append((rng.integers(0, 2, (n, 3)).astype(float), rng.integers(0, 2, (n, 3)).astype(float)))
        else:
            out.append((rng.random((n, 4)) + 0.1, rng.random((n, 4)) + 0.1))
    return out


# Written-out per-sample expectations.
def top_k_hits(labels, scores, k):
    kth = numpy.sort(scores, axis=-1)[:, max(scores.shape[-1] - k, 0)]
    return (scores[numpy.arange(len(labels)), labels] >= kth).astype(float)


EXPECTED = {
    "accuracy": ("exact", lambda t, p: (t == p).mean(-1)),
    "binary_accuracy": ("binary", lambda t, p: ((p > 0.5) == t).astype(float)[:, 0]),
    "categorical_accuracy": ("onehot", lambda t, p: (t.argmax(-1) == p.argmax(-1)).astype(float)),
    "sparse_categorical_accuracy": ("sparse", lambda t, p: (t == p.argmax(-1)).astype(float)),
    "top_k_categorical_accuracy": ("onehot", lambda t, p: top_k_hits(t.argmax(-1), p, 5)),
    "sparse_top_k_categorical_accuracy": ("sparse", lambda t, p: top_k_hits(t, p, 5)),
    "mse": ("real", lambda t, p: ((t - p) ** 2).mean(-1)),
    "mae": ("real", lambda t, p: numpy.abs(t - p).mean(-1)),
    "categorical_crossentropy": ("onehot", lambda t, p: -(t * numpy.log(p / p.sum(-1, keepdims=True))).sum(-1)),
    "sparse_categorical_crossentropy": ("sparse",
                                        lambda t, p: -numpy.log(p / p.sum(-1, keepdims=True))[numpy.arange(len(t)), t]),
    "poisson": ("real", lambda t, p: (p - t * numpy.log(p + 1e-7)).mean(-1)),
    "cosine_similarity": ("real",
                          lambda t, p: (t * p).sum(-1) / numpy.linalg.norm(t, axis=-1) / numpy.linalg.norm(p, axis=-1)),
    "huber": ("real", lambda t, p: (0.5 * (t - p) ** 2).mean(-1)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_batches_accumulate_to_one_shot_mean(xp, rng, name):
    kind, expected = EXPECTED[name]
    batches = make_batches(rng, kind)
    # The word "accuracy" resolves by shapes (as in Keras); the exact-match metric is the class.
    metric = metrics.Accuracy() if name == "accuracy" else metrics.get(name)
    assert metric.name == name
    for t, p in batches:
        metric.update_state(xp.asarray(t), xp.asarray(p))
    # The sums stay on the inputs' device.
    assert array_module(metric._total) is xp
    want = numpy.concatenate([expected(t, p) for t, p in batches]).mean()
    result = metric.result()
    assert isinstance(result, float)
    assert result == pytest.approx(want, rel=1e-6, abs=1e-7)
    metric.reset_state()
    assert metric.result() == 0.0
    t, p = batches[-1]
    metric.update_state(xp.asarray(t), xp.asarray(p))
    assert metric.result() == pytest.approx(expected(t, p).mean(), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name", ["sparse_categorical_accuracy", "mse", "categorical_accuracy"])
def test_sample_weights_weight_samples(xp, rng, name):
    kind, expected = EXPECTED[name]
    batches = make_batches(rng, kind)
    weights = [rng.uniform(0, 2, len(t)) for t, _ in batches]
    metric = metrics.get(name)
    for (t, p), w in zip(batches, weights):
        metric.update_state(xp.asarray(t), xp.asarray(p), sample_weight=xp.asarray(w))
    values = numpy.concatenate([expected(t, p) for t, p in batches])
    w = numpy.concatenate(weights)
    assert metric.result() == pytest.approx((values * w).sum() / w.sum(), rel=1e-6)


def test_mixed_weighted_and_unweighted_batches(xp):
    m = metrics.Mean()
    m.update_state(xp.asarray([1.0, 3.0]))
    m.update_state(xp.asarray([10.0]), sample_weight=xp.asarray([0.5]))
    assert m.result() == pytest.approx((1 + 3 + 5) / 2.5)


def test_mean_and_sum_reduce_each_sample_first(xp):
    m = metrics.Mean()
    m.update_state(xp.asarray([[1.0, 3.0], [5.0, 7.0]]), sample_weight=xp.asarray([1.0, 0.0]))
    assert m.result() == pytest.approx(2.0)
    s = metrics.Sum()
    s.update_state(xp.asarray([1.0, 3.0, 5.0, 7.0]), sample_weight=xp.asarray([1.0, 1.0, 0.0, 0.0]))
    assert s.result() == pytest.approx(4.0)
    assert metrics.Mean()(xp.asarray([1.0, 3.0, 5.0, 7.0])) == pytest.approx(4.0)


def test_sparse_labels_as_a_column(xp, rng):
    batches = make_batches(rng, "sparse_column")
    metric = metrics.SparseCategoricalAccuracy()
    for t, p in batches:
        metric.update_state(xp.asarray(t), xp.asarray(p))
    want = numpy.concatenate([(t[:, 0] == p.argmax(-1)) for t, p in batches]).mean()
    assert metric.result() == pytest.approx(want)


def test_top_k_ties_count_as_hits_and_k_beyond_classes(xp):
    scores = xp.asarray([[0.5, 0.5, 0.1], [0.2, 0.3, 0.1]])
    m = metrics.SparseTopKCategoricalAccuracy(k=1)
    m.update_state(xp.asarray([1, 0]), scores)
    assert m.result() == pytest.approx(0.5)   # the tie at the top counts, 0.2 < 0.3 does not
    m = metrics.SparseTopKCategoricalAccuracy(k=10)
    m.update_state(xp.asarray([1, 2]), scores)
    assert m.result() == 1.0
    m = metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True)
    m.update_state(xp.asarray([4, 7]), xp.asarray([[4, 1, 2], [1, 2, 7]]))
    assert m.result() == pytest.approx(0.5)


def test_binary_accuracy_threshold(xp):
    m = metrics.BinaryAccuracy(threshold=0.7)
    m.update_state(xp.asarray([1.0, 1.0, 0.0]), xp.asarray([[0.8], [0.6], [0.75]]))
    assert m.result() == pytest.approx(1 / 3)


def test_root_mean_squared_error(xp):
    m = metrics.RootMeanSquaredError()
    m.update_state(xp.asarray([[0.0, 1.0]]), xp.asarray([[1.0, 1.0]]))
    m.update_state(xp.asarray([[2.0, 2.0]]), xp.asarray([[0.0, 2.0]]))
    assert m.result() == pytest.approx(numpy.sqrt((1 + 0 + 4 + 0) / 4))


# ----------------------------------------------------------- resolution
@pytest.mark.parametrize("y_shape,out_shape,loss,cls", [
    ((12,), (None, 1), "binary_crossentropy", metrics.BinaryAccuracy),
    ((12, 1), (None, 1), "mse", metrics.BinaryAccuracy),
    ((12,), (None, 10), "sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
    ((12, 1), (None, 10), "sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
    ((12, 10), (None, 10), "categorical_crossentropy", metrics.CategoricalAccuracy),
    # Keras 3 decides from shapes alone: multi-label sigmoid outputs get categorical accuracy.
    ((12, 3), (None, 3), "binary_crossentropy", metrics.CategoricalAccuracy),
])
def test_accuracy_resolves_from_shapes(y_shape, out_shape, loss, cls):
    for word in ("accuracy", "acc"):
        metric = metrics.get(word, loss=losses.get(loss), y_true_shape=y_shape, y_pred_shape=out_shape)
        assert type(metric) is cls and metric.name == word


@pytest.mark.parametrize("loss,cls", [
    ("binary_crossentropy", metrics.BinaryAccuracy),
    ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
    ("categorical_crossentropy", metrics.CategoricalAccuracy),
])
def test_accuracy_without_shapes_follows_the_loss(loss, cls):
    assert type(metrics.get("accuracy", loss=losses.get(loss))) is cls


@pytest.mark.parametrize("y_shape,out_shape,cls", [
    ((12,), (None, 1), metrics.BinaryCrossentropy),
    ((12,), (None, 4), metrics.SparseCategoricalCrossentropy),
    ((12, 4), (None, 4), metrics.CategoricalCrossentropy),
])
def test_crossentropy_word_resolves_from_shapes(y_shape, out_shape, cls):
    for word in ("crossentropy", "ce"):
        metric = metrics.get(word, y_true_shape=y_shape, y_pred_shape=out_shape)
        assert type(metric) is cls and metric.name == word


@pytest.mark.parametrize("identifier,cls", [
    ("mse", metrics.MeanSquaredError), ("mean_squared_error", metrics.MeanSquaredError),
    ("MeanSquaredError", metrics.MeanSquaredError), ("mae", metrics.MeanAbsoluteError),
    ("mape", metrics.MeanAbsolutePercentageError), ("msle", metrics.MeanSquaredLogarithmicError),
    ("categorical_crossentropy", metrics.CategoricalCrossentropy), ("bce", metrics.BinaryCrossentropy),
    ("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy),
    ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
    ("kld", metrics.KLDivergence), ("kullback_leibler_divergence", metrics.KLDivergence),
    ("logcosh", metrics.LogCoshError),
    ("cosine_similarity", metrics.CosineSimilarity), ("hinge", metrics.Hinge), ("poisson", metrics.Poisson),
    ("huber", metrics.MeanMetricWrapper), ("rmse", metrics.RootMeanSquaredError),
])
def test_get_by_name_keeps_the_written_name(identifier, cls):
    metric = metrics.get(identifier)
    assert isinstance(metric, cls) and metric.name == identifier


def test_get_other_forms():
    m = metrics.CategoricalAccuracy(name="cat")
    assert metrics.get(m) is m
    assert type(metrics.get(metrics.Accuracy)) is metrics.Accuracy
    restored = metrics.get({"class_name": "TopKCategoricalAccuracy", "config": {"k": 3, "name": "top3"}})
    assert restored.k == 3 and restored.name == "top3"
    from_loss = metrics.get(losses.Huber(delta=0.5))
    assert from_loss.name == "huber_loss"
    from_fn = metrics.get(lambda y_true, y_pred: abs(y_true - y_pred))
    assert isinstance(from_fn, metrics.MeanMetricWrapper)
    with pytest.raises(ValueError, match="Unknown name 'acuracy'.*accuracy"):
        metrics.get("acuracy")
    with pytest.raises(ValueError, match="None"):
        metrics.get(None)
    with pytest.raises(TypeError, match="metric"):
        metrics.get(3)
    with pytest.raises(ValueError, match="`k`"):
        metrics.TopKCategoricalAccuracy(k=0)


def test_loss_instance_as_metric_averages_its_per_sample_values(xp, rng):
    t, p = rng.random((5, 3)), rng.random((5, 3))
    m = metrics.get(losses.MeanSquaredError())
    m.update_state(xp.asarray(t), xp.asarray(p))
    assert m.result() == pytest.approx(((t - p) ** 2).mean())


def test_config_round_trip():
    for metric in (metrics.BinaryAccuracy(threshold=0.3), metrics.TopKCategoricalAccuracy(k=2, name="t2"),
                   metrics.CategoricalCrossentropy(label_smoothing=0.1), metrics.MeanSquaredError()):
        config = metrics.serialize(metric)
        again = metrics.deserialize(config)
        assert type(again) is type(metric) and again.get_config() == metric.get_config()
    assert metrics.BinaryAccuracy().get_config() == {"name": "binary_accuracy", "dtype": "float32", "threshold": 0.5}


# ---------------------------------------------------------- Keras oracle
KERAS_METRICS = [
    ("Accuracy", {}, "exact"), ("BinaryAccuracy", {"threshold": 0.4}, "binary"), ("CategoricalAccuracy", {}, "onehot"),
    ("SparseCategoricalAccuracy", {}, "sparse"), ("SparseCategoricalAccuracy", {}, "sparse_column"),
    ("TopKCategoricalAccuracy", {"k": 2}, "onehot"), ("SparseTopKCategoricalAccuracy", {"k": 3}, "sparse"),
    ("MeanSquaredError", {}, "real"), ("MeanAbsoluteError", {}, "real"), ("RootMeanSquaredError", {}, "real"),
    ("CosineSimilarity", {}, "real"), ("LogCoshError", {}, "real"), ("KLDivergence", {}, "real"),
    ("Poisson", {}, "real"),
    ("CategoricalCrossentropy", {}, "onehot"), ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("BinaryCrossentropy", {}, "binary"), ("Hinge", {}, "binary"), ("CategoricalHinge", {}, "onehot"),
]


@pytest.mark.parametrize("name,kwargs,kind", KERAS_METRICS, ids=[f"{m[0]}-{m[2]}" for m in KERAS_METRICS])
def test_matches_keras(rng, name, kwargs, kind):
    keras = keras_or_skip()
    ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    for i, (t, p) in enumerate(make_batches(rng, kind)):
        t = t.astype("float32") if t.dtype.kind == "f" else t
        p = p.astype("float32")
        w = rng.uniform(0, 2, len(t)).astype("float32") if i == 2 else None
        ours.update_state(t, p, sample_weight=w)
        theirs.update_state(t, p, sample_weight=w)
    assert ours.name == theirs.name
    assert ours.result() == pytest.approx(float(numpy.asarray(theirs.result())), rel=2e-6, abs=1e-6)


@pytest.mark.parametrize("aggregation,sklearn_name", [("uniform_average", "uniform_average"), (None, "raw_values"),
                                                      ("variance_weighted_average", "variance_weighted")])
def test_r2_score_matches_scikit_learn_over_batches(xp, rng, aggregation, sklearn_name):
    from sklearn.metrics import r2_score
    y_true = rng.standard_normal((40, 3))
    y_pred = y_true + 0.6 * rng.standard_normal((40, 3))
    sw = rng.random(40)
    metric = metrics.R2Score(class_aggregation=aggregation)
    for part in (slice(0, 13), slice(13, 40)):
        metric.update_state(xp.asarray(y_true[part]), xp.asarray(y_pred[part]), xp.asarray(sw[part]))
    # the result is the float64 score rounded to the metric's float32, as Keras reports it
    numpy.testing.assert_allclose(metric.result(), r2_score(y_true, y_pred, sample_weight=sw, multioutput=sklearn_name),
                                  rtol=1e-7)
    adjusted = metrics.R2Score(num_regressors=4)
    adjusted.update_state(xp.asarray(y_true[:, :1]), xp.asarray(y_pred[:, :1]))
    plain = r2_score(y_true[:, 0], y_pred[:, 0])
    assert adjusted.result() == pytest.approx(1 - (1 - plain) * 39 / 35, rel=1e-7)
    with pytest.raises(ValueError, match="class_aggregation"):
        metrics.R2Score(class_aggregation="mean")
    with pytest.raises(ValueError, match="2-D"):
        metrics.R2Score().update_state(xp.ones((2, 3, 1)), xp.ones((2, 3, 1)))
