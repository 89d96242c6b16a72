"""PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity: against Keras's
documented values, rates from counts written out at every threshold, and Keras 3 itself; both backends."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import metrics
from gpu_dl.backend import array_module
from test_confusion_metrics import counts_written_out

ARGUMENT = {"PrecisionAtRecall": "recall", "RecallAtPrecision": "precision",
            "SensitivityAtSpecificity": "specificity", "SpecificityAtSensitivity": "sensitivity"}


def data(rng, shapes=((17, 3), (1, 3), (33, 3)), weighted=(False, True, True)):
    """Predictions reaching below 0 and above 1, which the metrics clip to [0, 1]."""
    return [((rng.random(s) > 0.5).astype("float32"), (1.4 * rng.random(s) - 0.2).astype("float32"),
             rng.random(s[0]).astype("float32") if w else None) for s, w in zip(shapes, weighted)]


def feed(metric, batches, xp):
    for y_true, y_pred, sw in batches:
        metric.update_state(xp.asarray(y_true), xp.asarray(y_pred), None if sw is None else xp.asarray(sw))
    return metric.result()


def expected(name, value, batches, num_thresholds):
    """The best rate where the other reaches ``value``, over thresholds 0, 1/(n-1), ..., 1 (0.5 alone if n = 1)."""
    thresholds = [0.5] if num_thresholds == 1 else numpy.linspace(0, 1, num_thresholds)
    tp, fp, tn, fn = counts_written_out([(t, numpy.clip(p, 0, 1), w) for t, p, w in batches], thresholds)
    with numpy.errstate(invalid="ignore"):
        recall, specificity, precision = (numpy.nan_to_num(a / b) for a, b in ((tp, tp + fn), (tn, tn + fp),
                                                                                (tp, tp + fp)))
    constrained, best = {"PrecisionAtRecall": (recall, precision), "RecallAtPrecision": (precision, recall),
                         "SensitivityAtSpecificity": (specificity, recall),
                         "SpecificityAtSensitivity": (recall, specificity)}[name]
    feasible = constrained >= value
    return best[feasible].max() if feasible.any() else 0.0


@pytest.mark.parametrize("name,value,weights,want", [
    ("SensitivityAtSpecificity", 0.5, None, 0.5), ("SensitivityAtSpecificity", 0.5, [1, 1, 2, 2, 1], 1 / 3),
    ("SpecificityAtSensitivity", 0.5, None, 2 / 3), ("SpecificityAtSensitivity", 0.5, [1, 1, 2, 2, 2], 0.5),
    ("PrecisionAtRecall", 0.5, None, 0.5), ("PrecisionAtRecall", 0.5, [2, 2, 2, 1, 1], 1 / 3)])
def test_keras_documented_values(xp, name, value, weights, want):
    metric = getattr(metrics, name)(value)
    metric.update_state(xp.asarray([0, 0, 0, 1, 1]), xp.asarray([0, 0.3, 0.8, 0.3, 0.8]),
                        None if weights is None else xp.asarray(weights))
    # the result is rounded to the metric's float32, as Keras reports it
    assert metric.result() == pytest.approx(want, rel=1e-7)


def test_recall_at_precision_documented_values(xp):
    metric = metrics.RecallAtPrecision(0.8)
    metric.update_state(xp.asarray([0, 0, 1, 1]), xp.asarray([0, 0.5, 0.3, 0.9]))
    assert metric.result() == pytest.approx(0.5)
    metric.reset_state()
    metric.update_state(xp.asarray([0, 0, 1, 1]), xp.asarray([0, 0.5, 0.3, 0.9]), xp.asarray([1, 0, 0, 1]))
    assert metric.result() == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(ARGUMENT))
@pytest.mark.parametrize("value,num_thresholds,class_id", [(0.0, 200, None), (0.4, 200, None), (0.75, 9, 1),
                                                            (1.0, 200, None), (0.5, 1, None), (0.3, 2, 0)])
def test_against_counts_written_out(xp, rng, name, value, num_thresholds, class_id):
    batches = data(rng)
    metric = getattr(metrics, name)(value, num_thresholds=num_thresholds, class_id=class_id)
    got = feed(metric, batches, xp)
    assert array_module(metric._counts[0]) is xp
    if class_id is not None:
        batches = [(t[:, class_id:class_id + 1], p[:, class_id:class_id + 1], w) for t, p, w in batches]
    assert got == pytest.approx(expected(name, value, batches, num_thresholds), rel=1e-7)
    metric.reset_state()
    assert metric.result() == 0.0


def test_predictions_above_one_are_not_above_the_last_threshold(xp):
    # clipped to 1.0, the negative 1.5 is predicted negative at threshold 1.0: specificity 1 there
    metric = metrics.SpecificityAtSensitivity(0.0, num_thresholds=3)
    metric.update_state(xp.asarray([0.0, 1.0]), xp.asarray([1.5, 1.5]))
    assert metric.result() == 1.0


def test_configs_round_trip_and_are_keras_s():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for name, argument in ARGUMENT.items():
        kwargs = {argument: 0.7, "num_thresholds": 50, "class_id": 2, "name": "m"}
        ours = getattr(metrics, name)(**kwargs)
        assert ours.get_config() == getattr(keras.metrics, name)(**kwargs).get_config()
        again = metrics.deserialize(metrics.serialize(ours))
        assert type(again) is type(ours) and again.get_config() == ours.get_config()
        assert getattr(again, argument) == 0.7


def test_they_match_keras(rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    batches = data(rng)
    for name, argument in ARGUMENT.items():
        for kwargs in ({argument: 0.3}, {argument: 0.8}, {argument: 0.5, "num_thresholds": 1},
                       {argument: 0.6, "num_thresholds": 7, "class_id": 1}):
            ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
            for y_true, y_pred, sw in batches:
                ours.update_state(y_true, y_pred, sample_weight=sw)
                theirs.update_state(y_true, y_pred, sample_weight=sw)
            assert ours.result() == pytest.approx(float(keras.ops.convert_to_numpy(theirs.result())), rel=2e-6,
                                                  abs=1e-7), f"{name} {kwargs}"


def test_bad_arguments_name_the_metric_and_the_argument():
    for make, match in [(lambda: metrics.PrecisionAtRecall(1.5), r"PrecisionAtRecall: recall must be .* \[0, 1\]"),
                        (lambda: metrics.RecallAtPrecision(-0.1), "RecallAtPrecision: precision must be"),
                        (lambda: metrics.SensitivityAtSpecificity("0.5"), "SensitivityAtSpecificity: specificity"),
                        (lambda: metrics.SpecificityAtSensitivity(float("nan")),
                         "SpecificityAtSensitivity: sensitivity"),
                        (lambda: metrics.PrecisionAtRecall(0.5, num_thresholds=0),
                         "PrecisionAtRecall: num_thresholds must be an integer > 0"),
                        (lambda: metrics.RecallAtPrecision(0.5, class_id=-1), "RecallAtPrecision: class_id")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match=r"'precision_at_recall' needs recall: .*PrecisionAtRecall\(recall=...\)"):
        metrics.get("precision_at_recall")


def test_a_compiled_model_reports_it(xp, rng, capsys):
    x = rng.standard_normal((64, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.standard_normal(64) > 0).astype("float32")
    gpu_dl.utils.set_random_seed(0)
    model = gpu_dl.Sequential([gpu_dl.layers.Input((4,)), gpu_dl.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[metrics.PrecisionAtRecall(0.5), metrics.SpecificityAtSensitivity(0.9, name="spec")])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    assert len(history.history["precision_at_recall"]) == 2 and len(history.history["spec"]) == 2
    assert f"precision_at_recall: {history.history['precision_at_recall'][-1]:.4f}" in capsys.readouterr().out
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    assert logs["precision_at_recall"] == pytest.approx(expected("PrecisionAtRecall", 0.5, [(y, p, None)], 200),
                                                        rel=1e-6)
    assert logs["spec"] == pytest.approx(expected("SpecificityAtSensitivity", 0.9, [(y, p, None)], 200), rel=1e-6)
