"""Confusion-matrix metrics (TruePositives ... FalseNegatives, Precision, Recall, AUC) against counts
written out by broadcasting every prediction against every threshold, scikit-learn's ROC AUC, and
(where Keras is installed) Keras 3 itself; one body for both backends."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import metrics
from gpu_dl.backend import to_numpy

COUNTS = {"TruePositives": 0, "FalsePositives": 1, "TrueNegatives": 2, "FalseNegatives": 3}


def batches(rng, shapes=((17, 3), (5, 3)), weighted=(False, True)):
    return [((rng.random(s) > 0.5).astype("float32"), rng.random(s).astype("float32"),
             rng.random(s[0]).astype("float32") if w else None) for s, w in zip(shapes, weighted)]


def counts_written_out(data, thresholds):
    """(tp, fp, tn, fn) at each threshold: every prediction compared with every threshold."""
    totals = numpy.zeros((4, len(thresholds)))
    for y_true, y_pred, sw in data:
        w = numpy.ones(y_pred.shape)
        if sw is not None:
            w = w * sw[:, None].astype(numpy.float64)
        above = y_pred.reshape(1, -1) > numpy.asarray(thresholds)[:, None]
        positive = (y_true != 0).reshape(1, -1)
        w = w.reshape(1, -1)
        totals += [((above & positive) * w).sum(1), ((above & ~positive) * w).sum(1),
                   ((~above & ~positive) * w).sum(1), ((~above & positive) * w).sum(1)]
    return totals


def feed(metric, data, xp):
    for y_true, y_pred, sw in data:
        metric.update_state(xp.asarray(y_true), xp.asarray(y_pred), None if sw is None else xp.asarray(sw))
    return metric.result()


@pytest.mark.parametrize("name", list(COUNTS))
def test_counts_at_several_thresholds(xp, rng, name):
    data = batches(rng)
    thresholds = [0.9, 0.1, 0.5, 0.0]                 # any order; the results follow it
    got = feed(getattr(metrics, name)(thresholds=thresholds), data, xp)
    # counts summed in float64, reported rounded to the metric's float32 as Keras's are
    numpy.testing.assert_allclose(got, counts_written_out(data, thresholds)[COUNTS[name]], rtol=1e-7)


@pytest.mark.parametrize("kwargs", [{}, {"thresholds": [0.3, 0.7]}, {"class_id": 2}, {"top_k": 1},
                                    {"thresholds": 0.2, "class_id": 0}])
def test_precision_and_recall(xp, rng, kwargs):
    data = batches(rng)
    expected_data = data
    if "class_id" in kwargs:
        c = kwargs["class_id"]
        expected_data = [(t[:, c:c + 1], p[:, c:c + 1], w) for t, p, w in data]
    if "top_k" in kwargs:                              # only each row's largest prediction may count
        expected_data = [(t, numpy.where(p == p.max(axis=1, keepdims=True), p, -numpy.inf), w) for t, p, w in data]
    thresholds = kwargs.get("thresholds", 0.5 if "top_k" not in kwargs else -1e10)
    tp, fp, tn, fn = counts_written_out(expected_data, numpy.atleast_1d(thresholds))
    precision, recall = (feed(metrics.get(name) if not kwargs else getattr(metrics, cls)(**kwargs), data, xp)
                         for name, cls in (("precision", "Precision"), ("recall", "Recall")))
    single = numpy.ndim(thresholds) == 0
    numpy.testing.assert_allclose(precision, (tp / (tp + fp))[0] if single else tp / (tp + fp), rtol=1e-7)
    numpy.testing.assert_allclose(recall, (tp / (tp + fn))[0] if single else tp / (tp + fn), rtol=1e-7)


@pytest.mark.parametrize("curve,summation", [("ROC", "interpolation"), ("ROC", "minoring"), ("PR", "majoring")])
def test_auc_is_the_riemann_sum_over_its_thresholds(xp, rng, curve, summation):
    data = batches(rng)
    auc = metrics.AUC(num_thresholds=9, curve=curve, summation_method=summation)
    got = feed(auc, data, xp)
    thresholds = numpy.array([-1e-7] + [i / 8 for i in range(1, 8)] + [1 + 1e-7])
    tp, fp, tn, fn = counts_written_out(data, thresholds)
    recall = tp / (tp + fn)
    precision = numpy.where(tp + fp > 0, tp / numpy.maximum(tp + fp, 1e-300), 0)
    x, y = (fp / (fp + tn), recall) if curve == "ROC" else (recall, precision)
    pick = {"interpolation": lambda a, b: (a + b) / 2, "minoring": numpy.minimum, "majoring": numpy.maximum}[summation]
    assert got == pytest.approx(float(((x[:-1] - x[1:]) * pick(y[:-1], y[1:])).sum()), rel=1e-7)


def test_evenly_spaced_thresholds_count_predictions_clipped_to_0_1(xp):
    # 1.5 counts as 1.0: not above the threshold 1.0, nor above AUC's 1 + 1e-7; -0.5 counts as 0.0, above -1e-7
    y_true, y_pred = xp.asarray([1.0, 0.0]), xp.asarray([1.5, -0.5])
    numpy.testing.assert_array_equal(metrics.TruePositives(thresholds=[0.0, 0.5, 1.0])(y_true, y_pred), [1, 1, 0])
    numpy.testing.assert_array_equal(metrics.TruePositives(thresholds=[0.5, 1.0])(y_true, y_pred), [1, 1])
    numpy.testing.assert_array_equal(metrics.FalsePositives(thresholds=[-0.0, 0.5, 1.0])(y_true, y_pred), [0, 0, 0])
    auc = metrics.AUC(num_thresholds=3)
    auc.update_state(y_true, y_pred)
    tp, fp, tn, fn = (to_numpy(c).tolist() for c in auc._counts)      # at -1e-7, 0.5, 1 + 1e-7
    assert (tp, fp, tn, fn) == ([1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1])


def test_roc_auc_with_many_thresholds_approaches_the_exact_area(xp, rng):
    from sklearn.metrics import roc_auc_score
    y_true = (rng.random(2000) > 0.6).astype("float32")
    y_pred = numpy.clip(0.3 * y_true + 0.7 * rng.random(2000), 0, 1).astype("float32")
    got = feed(metrics.AUC(num_thresholds=4001), [(y_true, y_pred, None)], xp)
    assert got == pytest.approx(roc_auc_score(y_true, y_pred), abs=2e-3)
    multi = metrics.AUC(multi_label=True, label_weights=[1.0, 3.0], from_logits=True)
    logits = numpy.stack([y_pred * 8 - 4, rng.standard_normal(2000)], axis=1)
    labels = numpy.stack([y_true, y_true], axis=1)
    single = [feed(metrics.AUC(from_logits=True), [(labels[:, i], logits[:, i], None)], xp) for i in range(2)]
    assert feed(multi, [(labels, logits, None)], xp) == pytest.approx((single[0] + 3 * single[1]) / 4, rel=1e-7)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("threshold", [None, 0.4])
def test_f_beta_score_per_class_and_averaged(xp, rng, average, threshold):
    y_true = numpy.eye(4)[rng.integers(0, 4, 30)]
    y_pred = rng.random((30, 4))
    y_pred[3] = y_pred[3].max()                      # a tie: every tied class counts as predicted
    sw = rng.random(30)
    got = metrics.FBetaScore(average=average, beta=2.0, threshold=threshold)
    got.update_state(xp.asarray(y_true[:11]), xp.asarray(y_pred[:11]), xp.asarray(sw[:11]))
    got.update_state(xp.asarray(y_true[11:]), xp.asarray(y_pred[11:]), xp.asarray(sw[11:]))
    predicted = (y_pred >= y_pred.max(1, keepdims=True)) if threshold is None else (y_pred > threshold)
    w = sw[:, None]
    axis = None if average == "micro" else 0
    tp, fp, fn = ((w * (predicted & (y_true == 1))).sum(axis), (w * (predicted & (y_true == 0))).sum(axis),
                  (w * (~predicted & (y_true == 1))).sum(axis))
    p, r = tp / (tp + fp + 1e-7), tp / (tp + fn + 1e-7)
    score = 5 * p * r / (4 * p + r + 1e-7)
    if average == "weighted":
        support = (w * y_true).sum(0)
        score = (score * support / (support.sum() + 1e-7)).sum()
    elif average is not None:
        score = score.mean()
    numpy.testing.assert_allclose(got.result(), score, rtol=1e-7)
    assert metrics.get("f1_score").name == "f1_score" and metrics.F1Score().get_config()["average"] is None


def test_per_class_scores_show_their_mean_in_the_progress_bar(rng, capsys):
    x = rng.standard_normal((24, 4)).astype("float32")
    y = numpy.eye(3)[rng.integers(0, 3, 24)]
    model = gpu_dl.Sequential([gpu_dl.layers.Input((4,)), gpu_dl.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=[metrics.F1Score()])
    history = model.fit(x, y, epochs=1, verbose=2)
    per_class = history.history["f1_score"][0]
    assert len(per_class) == 3                          # the history keeps one score per class, as Keras's
    assert f"f1_score: {numpy.mean(per_class):.4f}" in capsys.readouterr().out


def test_bad_arguments_say_what_is_expected():
    for make, match in [(lambda: metrics.Precision(thresholds=1.5), "thresholds must be a number or a list"),
                        (lambda: metrics.Recall(thresholds=[]), "thresholds"),
                        (lambda: metrics.Precision(top_k=-1), "top_k"), (lambda: metrics.Recall(class_id=1.5),
                                                                          "class_id"),
                        (lambda: metrics.AUC(curve="DET"), "curve must be one of"),
                        (lambda: metrics.AUC(summation_method="trapezoid"), "summation_method"),
                        (lambda: metrics.AUC(num_thresholds=1), "num_thresholds"),
                        (lambda: metrics.F1Score(average="samples"), "average must be one of"),
                        (lambda: metrics.FBetaScore(beta=0.0), "beta"), (lambda: metrics.F1Score(threshold=0.0),
                                                                           "threshold")]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match="class_id needs y_pred of shape"):
        metrics.Precision(class_id=0).update_state(numpy.ones(3), numpy.ones(3))


def test_compiled_by_name_they_report_in_fit_logs(xp, rng):
    x = rng.standard_normal((64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    gpu_dl.utils.set_random_seed(0)
    model = gpu_dl.Sequential([gpu_dl.layers.Input((4,)), gpu_dl.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["AUC", "precision", "Recall"])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert {"AUC", "precision", "Recall"} <= set(history.history)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)[:, 0]
    tp, fp = ((p > 0.5) & (y == 1)).sum(), ((p > 0.5) & (y == 0)).sum()
    assert logs["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    again = metrics.deserialize(metrics.serialize(metrics.AUC(curve="PR", num_thresholds=50, name="prauc")))
    assert (again.curve, again.num_thresholds, again.name) == ("PR", 50, "prauc")


def test_they_match_keras(rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    data = batches(rng)
    cases = [("Precision", {}), ("Recall", {"thresholds": [0.2, 0.9]}), ("Precision", {"top_k": 2}),
             ("Recall", {"class_id": 1}), ("TruePositives", {"thresholds": [0.1, 0.7]}),
             ("FalseNegatives", {}), ("AUC", {}), ("AUC", {"curve": "PR"}),
             ("AUC", {"summation_method": "minoring", "num_thresholds": 7}),
             ("AUC", {"multi_label": True, "label_weights": [1, 2, 0.5]}), ("AUC", {"label_weights": [1, 2, 0.5]}),
             ("F1Score", {}), ("F1Score", {"average": "micro", "threshold": 0.3}),
             ("FBetaScore", {"average": "weighted", "beta": 0.5}), ("R2Score", {}),
             ("R2Score", {"class_aggregation": None})]
    outside = [(t, 1.6 * p - 0.3, w) for t, p, w in data]       # predictions beyond [0, 1], which Keras clips
    cases = [(n, k, data) for n, k in cases] + [(n, k, outside) for n, k in [
        ("AUC", {}), ("AUC", {"curve": "PR"}), ("AUC", {"thresholds": [0.25, 0.5, 0.75]}),
        ("AUC", {"thresholds": [0.3, 0.9]}), ("Precision", {"thresholds": [0.0, 0.5, 1.0]}),
        ("Recall", {"thresholds": [0.0, 1.0]}), ("TrueNegatives", {"thresholds": [1.0, 0.5, 0.0]})]]
    for name, kwargs, data in cases:
        ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
        for y_true, y_pred, sw in data:
            ours.update_state(y_true, y_pred, sample_weight=sw)
            theirs.update_state(y_true, y_pred, sample_weight=sw)
        numpy.testing.assert_allclose(ours.result(), keras.ops.convert_to_numpy(theirs.result()), rtol=2e-6,
                                      atol=1e-6, err_msg=f"{name} {kwargs}")


@pytest.mark.parametrize("name, kwargs", [("Precision", {"thresholds": [0.2, 0.7]}), ("AUC", {"num_thresholds": 4}),
                                          ("F1Score", {}), ("MeanIoU", {"num_classes": 3}), ("R2Score", {})])
def test_state_variables_read_and_write_the_sums_on_each_device(xp, rng, name, kwargs):
    y_true = numpy.eye(3, dtype="float32")[rng.integers(0, 3, 7)]
    y_pred = rng.random((7, 3)).astype("float32")
    if name == "MeanIoU":
        y_true, y_pred = y_true.argmax(-1), y_pred.argmax(-1)
    metric = getattr(metrics, name)(**kwargs)
    metric.update_state(xp.asarray(y_true), xp.asarray(y_pred))
    expected = metric.result()
    # read where the sums live (R2Score's count of values is known on the host, from shapes)
    arrays = [v.value for v in metric.variables if v.name != "num_samples"]
    assert arrays and all(type(a) is type(xp.asarray(0.0)) for a in arrays)
    held = [v.numpy() for v in metric.variables]
    metric.reset_state()
    assert all(not numpy.any(v.numpy()) for v in metric.variables)
    for variable, value in zip(metric.variables, held):
        variable.assign(xp.asarray(value))
    numpy.testing.assert_allclose(numpy.asarray(metric.result()), numpy.asarray(expected), rtol=1e-6)
    # the sums written back keep growing with updates
    metric.update_state(xp.asarray(y_true), xp.asarray(y_pred))
    for variable, value in zip(metric.variables, held):
        numpy.testing.assert_allclose(variable.numpy(), 2 * value, rtol=1e-6, err_msg=variable.path)
