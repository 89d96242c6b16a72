"""Custom metrics written as Keras 3's guides write them (tests/metric_classes.py): add_variable and its defaults,
the default reset_state, results that are variables or dicts, plain functions in compile, and the logs of fit and
evaluate, against plain NumPy expectations on both backends."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, metrics
from gpu_dl.layers.base import Variable

from metric_classes import categorical_true_positives, error_stats, holder, mean_max_error, mean_of_positives

CategoricalTruePositives = categorical_true_positives(gpu_dl)
ErrorStats = error_stats(gpu_dl)
MeanOfPositives = mean_of_positives(gpu_dl)
Holder = holder(gpu_dl)


def host(value):
    return numpy.asarray(backend.to_numpy(value.value if isinstance(value, Variable) else value))


def classification_data(rng, n=37, classes=4):
    scores = rng.random((n, classes)).astype("float32")
    labels = rng.integers(0, classes, (n, 1))
    weights = rng.random(n).astype("float32")
    return labels, scores, weights


# ------------------------------------------------------------------- the metric objects
def test_guide_metric_counts_true_positives(xp, rng):
    labels, scores, weights = classification_data(rng)
    metric = CategoricalTruePositives()
    variable = metric.true_positives
    assert isinstance(variable, Variable) and len(metric.variables) == 1 and metric.variables[0] is variable
    assert type(variable.value) is type(xp.zeros(1)), "the state lives on the current device"
    hits = (labels[:, 0] == scores.argmax(1)).astype("float64")
    metric.update_state(xp.asarray(labels[:20]), xp.asarray(scores[:20]))
    metric.update_state(xp.asarray(labels[20:]), xp.asarray(scores[20:]))
    result = metric.result()
    assert result is variable            # as Keras's guide returns it: the variable itself
    assert float(result) == pytest.approx(hits.sum())
    metric.reset_state()
    assert float(metric.result()) == 0.0
    # With sample weights as the guide writes them: y_true of shape (n, 1) against weights of shape (n,)
    # broadcast to (n, n), so every weight meets every hit.
    metric.update_state(xp.asarray(labels), xp.asarray(scores), sample_weight=xp.asarray(weights))
    assert float(metric.result()) == pytest.approx(hits.sum() * weights.astype("float64").sum(), rel=1e-5)


def test_add_variable_defaults_as_keras(xp):
    metric = ErrorStats(dtype="float64")
    assert metric.dtype == "float64"
    assert [v.path for v in metric.variables] == ["error_stats/total", "error_stats/count", "error_stats/largest",
                                                  "error_stats/above"]
    for v in metric.variables:
        # As Keras's: floatx whatever the metric's dtype, not trainable, summed across replicas.
        assert v.dtype == numpy.float32 and v.trainable is False and v.aggregation == "sum"
    assert metric.above.shape == (2,) and metric.total.shape == ()
    ones = Holder()
    assert float(ones.calls) == 1.0         # made by its initializer
    ones.reset_state()
    assert float(ones.calls) == 0.0         # Keras's default reset_state: zeros, whatever the initializer
    typed = Holder()
    typed_var = typed.add_variable((3,), "ones", dtype="int32", name="ids")
    assert typed_var.dtype == numpy.int32 and host(typed_var).tolist() == [1, 1, 1]


def test_add_variable_refusals():
    class Forgot(metrics.Metric):
        def __init__(self):
            self.v = self.add_variable(shape=(), initializer="zeros")

    with pytest.raises(RuntimeError, match=r"forgot to call `super\(\).__init__\(\)`"):
        Forgot()
    metric = metrics.Metric(name="m")
    with pytest.raises(ValueError, match="'m'.*`initializer` is required"):
        metric.add_weight(shape=(2,), name="w")
    with pytest.raises(ValueError, match=r"add_variable\(name='w'\).*shape"):
        metric.add_variable(shape=(None,), initializer="zeros", name="w")
    with pytest.raises(ValueError, match="aggregation"):
        metric.add_variable(shape=(), initializer="zeros", aggregation="max", name="w")
    with pytest.raises(ValueError, match="Unknown initializer|initializer"):
        metric.add_variable(shape=(), initializer="no_such_initializer", name="w")
    with pytest.raises(TypeError, match="`name` must be a string"):
        metrics.Metric(name=3)
    assert metric.variables == []


def test_several_variables_and_a_dict_result(xp, rng):
    y_true = rng.random((23, 3)).astype("float32")
    y_pred = rng.random((23, 3)).astype("float32")
    weights = rng.random(23).astype("float32")
    metric = ErrorStats(limit=0.3)
    for part in (slice(0, 5), slice(5, 23)):
        metric.update_state(xp.asarray(y_true[part]), xp.asarray(y_pred[part]), sample_weight=xp.asarray(weights[part]))
    errors = numpy.abs(y_true.astype("float64") - y_pred).mean(-1)
    w = weights.astype("float64")
    result = metric.result()
    assert sorted(result) == ["largest_error", "mean_error", "share_above"]
    assert float(host(result["mean_error"])) == pytest.approx((errors * w).sum() / w.sum(), rel=1e-5)
    assert float(host(result["largest_error"])) == pytest.approx(errors.max(), rel=1e-6)
    assert float(host(result["share_above"])) == pytest.approx(w[errors > 0.3].sum() / w.sum(), rel=1e-5)
    assert host(metric.above) == pytest.approx([w[errors > 0.3].sum(), w[errors <= 0.3].sum()], rel=1e-5)
    metric.reset_state()
    assert all(not host(v).any() for v in metric.variables)


def test_subclass_of_a_built_in_metric(xp, rng):
    # Mean keeps its own state; the subclass's reset_state (which reads its own variable) is not run before the
    # subclass has made that variable.
    y_pred = rng.random((19, 1)).astype("float32")
    metric = MeanOfPositives()
    # Mean's total and count (made by its constructor), then the subclass's own, as Keras lists them
    assert [v.path for v in metric.variables] == ["mean_of_positives/total", "mean_of_positives/count",
                                                  "mean_of_positives/seen"]
    metric.update_state(None, xp.asarray(y_pred[:9]))
    metric.update_state(None, xp.asarray(y_pred[9:]))
    assert metric.result() == pytest.approx((y_pred > 0.5).mean(), rel=1e-6)
    assert float(metric.seen) == 19.0
    metric.reset_state()
    assert metric.result() == 0.0 and float(metric.seen) == 0.0


def test_held_metrics_are_listed_and_reset(xp, rng):
    metric = Holder()
    y_true, y_pred = rng.random((6, 2)), rng.random((6, 2))
    metric.update_state(xp.asarray(y_true), xp.asarray(y_pred))
    # Its own variable, then the inner metric's (its total and count).
    assert metric.variables[0] is metric.calls
    assert [v.path for v in metric.variables[1:]] == ["inner/total", "inner/count"]
    numpy.testing.assert_allclose([float(v.numpy()) for v in metric.variables[1:]],
                                  [numpy.abs(y_true - y_pred).mean(axis=-1).sum(), 6], rtol=1e-6)
    assert float(host(metric.result())) == pytest.approx(numpy.abs(y_true - y_pred).mean(), rel=1e-6)
    metric.reset_state()
    assert float(metric.calls) == 0.0 and metric.inner.result() == 0.0


def test_config_round_trip():
    metric = ErrorStats(limit=0.25, name="stats", dtype="float64")
    config = metric.get_config()
    assert config == {"name": "stats", "dtype": "float64", "limit": 0.25}
    again = ErrorStats.from_config(config)
    assert (again.name, again.dtype, again.limit) == ("stats", "float64", 0.25)
    assert [v.path for v in again.variables] == [v.path for v in metric.variables]
    assert metrics.Metric.__init__.__code__.co_varnames[1:3] == ("dtype", "name")     # Keras's order


def test_function_metrics_are_named_in_snake_case():
    wrapped = metrics.get(mean_max_error(gpu_dl))
    assert isinstance(wrapped, metrics.MeanMetricWrapper) and wrapped.name == "mean_max_error"
    assert metrics.get(lambda y_true, y_pred: y_pred).name == "lambda"


# ------------------------------------------------------------------------- in a model
def _classifier(rng, features=5, classes=4):
    model = gpu_dl.Sequential([gpu_dl.Input((features,)), layers.Dense(classes, activation="softmax")])
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model


def test_fit_logs_reset_each_epoch(xp, rng):
    # A learning rate of 0 keeps the weights: every epoch sees the same predictions, so each epoch's log is the
    # one-pass value only if the metric starts each epoch from zero.
    x = rng.standard_normal((41, 5)).astype("float32")
    labels = rng.integers(0, 4, (41, 1))
    weights = rng.random(41).astype("float32")
    model = _classifier(rng)
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.0), "sparse_categorical_crossentropy",
                  metrics=[CategoricalTruePositives(), mean_max_error(gpu_dl)])
    history = model.fit(x, labels, batch_size=8, epochs=3, verbose=0, sample_weight=weights,
                        validation_data=(x, labels))
    probs = model.predict(x, verbose=0).astype("float64")
    hits = float((labels[:, 0] == probs.argmax(1)).sum())
    largest = numpy.abs(labels.astype("float64") - probs).max(-1).mean()
    assert sorted(history.history) == ["categorical_true_positives", "loss", "mean_max_error",
                                       "val_categorical_true_positives", "val_loss", "val_mean_max_error"]
    # compile's metrics are not weighted by sample_weight, as in Keras.
    assert history.history["categorical_true_positives"] == [hits] * 3
    assert history.history["val_categorical_true_positives"] == [hits] * 3
    assert history.history["mean_max_error"] == pytest.approx([largest] * 3, rel=1e-5)
    assert all(type(v) is float for values in history.history.values() for v in values)
    values = model.evaluate(x, labels, verbose=0)
    assert values[1:] == pytest.approx([hits, largest], rel=1e-5)
    assert model.evaluate(x, labels, verbose=0, return_dict=True)["categorical_true_positives"] == hits


def test_dict_results_log_each_entry(xp, rng):
    x = rng.standard_normal((30, 5)).astype("float32")
    y = rng.random((30, 4)).astype("float32")
    model = _classifier(rng)
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.0), "mse", metrics=["mae", ErrorStats(limit=0.4), "mse"])
    history = model.fit(x, y, batch_size=7, epochs=2, verbose=0, validation_data=(x, y))
    assert sorted(history.history) == sorted(["loss", "mae", "mse", "mean_error", "largest_error", "share_above"]
                                             + ["val_" + k for k in ("loss", "mae", "mse", "mean_error",
                                                                     "largest_error", "share_above")])
    errors = numpy.abs(y.astype("float64") - model.predict(x, verbose=0)).mean(-1)
    assert history.history["mean_error"] == pytest.approx([errors.mean()] * 2, rel=1e-5)
    assert history.history["val_largest_error"] == pytest.approx([errors.max()] * 2, rel=1e-5)
    values = model.evaluate(x, y, verbose=0)
    # As Keras lists them: the loss, the metrics under their names, then the dict's entries sorted.
    expected = [((y - model.predict(x, verbose=0)) ** 2).mean(), errors.mean(),
                ((y - model.predict(x, verbose=0)) ** 2).mean(), errors.max(), errors.mean(), (errors > 0.4).mean()]
    assert values == pytest.approx(expected, rel=1e-5)


def test_metric_names_met_twice_are_numbered(rng):
    x = rng.standard_normal((10, 5)).astype("float32")
    y = rng.random((10, 4)).astype("float32")
    model = _classifier(rng)
    model.compile("sgd", "mse", metrics=["mae", metrics.MeanAbsoluteError(name="mae"), "mse"])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "mae", "mae_1", "mse"] and logs["mae"] == logs["mae_1"]     # sorted, as Keras's


def test_several_outputs_with_custom_metrics(xp, rng):
    inputs = gpu_dl.Input((5,))
    hidden = layers.Dense(6, activation="relu")(inputs)
    model = gpu_dl.Model(inputs, [layers.Dense(4, activation="softmax", name="cls")(hidden),
                                  layers.Dense(3, name="reg")(hidden)])
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.0), ["sparse_categorical_crossentropy", "mse"],
                  metrics={"cls": [CategoricalTruePositives()], "reg": [ErrorStats(), mean_max_error(gpu_dl)]})
    x = rng.standard_normal((21, 5)).astype("float32")
    labels, y = rng.integers(0, 4, (21, 1)), rng.random((21, 3)).astype("float32")
    logs = model.fit(x, [labels, y], batch_size=6, epochs=2, verbose=0).history
    assert sorted(logs) == ["cls_categorical_true_positives", "cls_loss", "largest_error", "loss", "mean_error",
                            "reg_loss", "reg_mean_max_error", "share_above"]
    probs, out = model.predict(x, verbose=0)
    assert logs["cls_categorical_true_positives"] == [float((labels[:, 0] == probs.argmax(1)).sum())] * 2
    errors = numpy.abs(y.astype("float64") - out).mean(-1)
    assert logs["mean_error"] == pytest.approx([errors.mean()] * 2, rel=1e-5)
    values = model.evaluate(x, [labels, y], verbose=0)
    # As Keras lists them: the loss, the outputs' losses, then the other entries by sorted key.
    logs = model.evaluate(x, [labels, y], verbose=0, return_dict=True)
    assert values == [logs[key] for key in ["loss", "cls_loss", "reg_loss", "cls_categorical_true_positives",
                                            "largest_error", "mean_error", "reg_mean_max_error", "share_above"]]
    assert values[4:6] + values[7:] == pytest.approx([errors.max(), errors.mean(), (errors > 0.5).mean()],
                                                     rel=1e-5)
