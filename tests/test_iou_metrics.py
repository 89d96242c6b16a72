"""IoU, BinaryIoU, MeanIoU, OneHotIoU, OneHotMeanIoU: against confusion matrices counted one element at a
time, Keras's documented values and Keras 3 itself; one body for both backends."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import metrics
from gpu_dl.backend import array_module
from gpu_dl.models import load_model

K = 4


def written_out(batches, k=K, ignore_class=None, truncate=False):
    """The confusion matrix, one (target, prediction, weight) at a time; ids outside [0, k) left out."""
    cm = numpy.zeros((k, k))
    for y_true, y_pred, sw in batches:
        t, p = numpy.asarray(y_true).reshape(-1), numpy.asarray(y_pred).reshape(-1)
        w = numpy.ones(t.size) if sw is None else numpy.broadcast_to(
            numpy.asarray(sw).reshape(numpy.shape(sw) + (1,) * (numpy.ndim(y_true) - numpy.ndim(sw))),
            numpy.shape(y_true)).reshape(-1)
        for ti, pi, wi in zip(t.astype(int), p.astype(int), w):
            if 0 <= ti < k and 0 <= pi < k and ti != ignore_class:
                cm[ti, pi] += numpy.trunc(wi) if truncate else wi
    return cm


def iou_of(cm, class_ids):
    """tp / (tp + fp + fn) per class, averaged over the given classes that occurred."""
    values = []
    for c in class_ids:
        union = cm[c, :].sum() + cm[:, c].sum() - cm[c, c]
        if union > 0:
            values.append(cm[c, c] / union)
    return numpy.mean(values) if values else 0.0


def sparse_batches(rng, sizes=(17, 1, 3, 33), weighted=(False, True, False, True)):
    """Class ids, some outside [0, K) (left out), as floats like a model's targets."""
    return [(rng.integers(-1, K + 1, n).astype("float32"), rng.integers(-1, K + 1, n).astype("float32"),
             rng.random(n).astype("float32") if w else None) for n, w in zip(sizes, weighted)]


def feed(metric, batches, xp):
    for y_true, y_pred, sw in batches:
        metric.update_state(xp.asarray(y_true), xp.asarray(y_pred), None if sw is None else xp.asarray(sw))
    return metric.result()


def test_keras_documented_values(xp):
    t, p = xp.asarray([0, 0, 1, 1]), xp.asarray([0, 1, 0, 1])
    assert metrics.IoU(num_classes=2, target_class_ids=[0])(t, p) == pytest.approx(1 / 3, rel=1e-6)
    # a class neither targeted nor predicted is left out of the mean, not counted as 0
    assert metrics.MeanIoU(num_classes=3)(t, p) == pytest.approx(1 / 3, rel=1e-6)
    weighted = metrics.MeanIoU(num_classes=2, dtype="float32")
    weighted.update_state(t, p, sample_weight=xp.asarray([0.3, 0.3, 0.3, 0.1]))
    assert weighted.result() == pytest.approx((0.3 / 0.9 + 0.1 / 0.7) / 2, rel=1e-6)      # 0.2381
    binary = metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.3, dtype="float32")
    binary.update_state(xp.asarray([0, 1, 0, 1]), xp.asarray([0.1, 0.2, 0.4, 0.7]),
                        sample_weight=xp.asarray([0.2, 0.3, 0.4, 0.1]))
    assert binary.result() == pytest.approx((0.2 / 0.9 + 0.1 / 0.8) / 2, rel=1e-6)        # 0.1736
    one_hot_true = xp.asarray([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    scores = xp.asarray([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]])
    sw = xp.asarray([0.1, 0.2, 0.3, 0.4])
    one_hot = metrics.OneHotIoU(num_classes=3, target_class_ids=[0, 2], dtype="float32")
    one_hot.update_state(one_hot_true, scores, sample_weight=sw)
    assert one_hot.result() == pytest.approx((0 + 0.1 / 0.7) / 2, rel=1e-6)                # 0.071
    mean = metrics.OneHotMeanIoU(num_classes=3, dtype="float32")
    mean.update_state(one_hot_true, scores, sample_weight=sw)
    assert mean.result() == pytest.approx((0 + 0 + 0.1 / 0.7) / 3, rel=1e-6)                # 0.048
    numpy.testing.assert_allclose(mean.total_cm, [[0, 0, 0.6], [0.3, 0, 0], [0, 0, 0.1]], rtol=1e-6)


@pytest.mark.parametrize("ignore_class", [None, 2])
def test_batches_accumulate_one_confusion_matrix_on_the_inputs_device(xp, rng, ignore_class):
    batches = sparse_batches(rng)
    metric = metrics.IoU(num_classes=K, target_class_ids=[0, 2, 3], ignore_class=ignore_class, dtype="float32")
    got = feed(metric, batches, xp)
    assert array_module(metric._matrix) is xp
    cm = written_out(batches, ignore_class=ignore_class)
    numpy.testing.assert_allclose(metric.total_cm, cm, rtol=1e-6)
    assert got == pytest.approx(iou_of(cm, [0, 2, 3]), rel=1e-6)
    metric.reset_state()
    assert metric.result() == 0.0 and not metric.total_cm.any()
    y_true, y_pred, _ = batches[0]
    metric.update_state(xp.asarray(y_true), xp.asarray(y_pred))
    assert metric.result() == pytest.approx(iou_of(written_out(batches[:1], ignore_class=ignore_class), [0, 2, 3]),
                                            rel=1e-6)


def test_the_int_dtype_truncates_fractional_weights_and_says_so(xp, rng):
    batches = sparse_batches(rng, weighted=(True,) * 4)
    batches = [(t, p, 3 * w) for t, p, w in batches]
    metric = metrics.MeanIoU(num_classes=K)                   # dtype "int32", Keras's default
    with pytest.warns(UserWarning, match="MeanIoU: sample weights are cast to .*'int32'.*dtype='float32'"):
        got = feed(metric, batches, xp)
    assert metric.total_cm.dtype == numpy.int32
    assert got == pytest.approx(iou_of(written_out(batches, truncate=True), range(K)), rel=1e-6)
    assert got != pytest.approx(iou_of(written_out(batches), range(K)), rel=1e-3)


def test_ids_and_weights_are_cast_to_the_dtype_first(xp):
    # As in Keras: int32 truncates -0.5 to class 0 and the weight 1.9 to 1; float32 leaves -0.5 out
    t, p, w = xp.asarray([-0.5, 1.0, 1.0]), xp.asarray([0.0, 1.0, 0.0]), xp.asarray([[1.9], [1.0], [2.0]])
    as_int, as_float = metrics.MeanIoU(num_classes=2), metrics.MeanIoU(num_classes=2, dtype="float32")
    with pytest.warns(UserWarning, match="truncates"):
        as_int.update_state(t, p, w)
    as_float.update_state(t, p, w)
    numpy.testing.assert_array_equal(as_int.total_cm, [[1, 0], [2, 1]])
    numpy.testing.assert_allclose(as_float.total_cm, [[0, 0], [2, 1]])


def test_scores_of_segmentation_maps_with_one_weight_per_sample(xp, rng):
    data = []
    for n, weighted in ((5, True), (2, False), (1, True)):
        labels = rng.integers(0, K, (n, 3, 5))
        scores = rng.random((n, 3, 5, K))
        data.append((labels, scores, rng.random(n) if weighted else None))
    mean = metrics.MeanIoU(num_classes=K, sparse_y_pred=False, dtype="float64")
    one_hot = metrics.OneHotMeanIoU(num_classes=K, dtype="float64")
    for labels, scores, sw in data:
        w = None if sw is None else xp.asarray(sw)
        mean.update_state(xp.asarray(labels), xp.asarray(scores), w)
        one_hot.update_state(xp.asarray(numpy.eye(K)[labels]), xp.asarray(scores), w)
    cm = written_out([(t, s.argmax(-1), w) for t, s, w in data])
    assert mean.result() == pytest.approx(iou_of(cm, range(K)), rel=1e-6)     # Keras's 1e-7 in each quotient
    assert one_hot.result() == pytest.approx(mean.result(), rel=1e-12)
    channels_first = metrics.OneHotIoU(num_classes=K, target_class_ids=[1], axis=1, dtype="float64")
    for labels, scores, sw in data:
        channels_first.update_state(xp.asarray(numpy.moveaxis(numpy.eye(K)[labels], -1, 1)),
                                    xp.asarray(numpy.moveaxis(scores, -1, 1)), None if sw is None else xp.asarray(sw))
    assert channels_first.result() == pytest.approx(iou_of(cm, [1]), rel=1e-6)


def test_binary_iou_thresholds_predictions(xp):
    metric = metrics.BinaryIoU(target_class_ids=[1], threshold=0.5)
    # 0.5 itself is class 1 (>=); 1.7 and -3 are predictions too, not ids
    metric.update_state(xp.asarray([1, 1, 0, 0, 1]), xp.asarray([[0.5], [1.7], [0.49], [-3.0], [0.2]]))
    assert metric.result() == pytest.approx(2 / 3, rel=1e-6)
    assert metrics.BinaryIoU(target_class_ids=[0]).name == "binary_io_u"


def test_configs_round_trip_and_are_keras_s():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    cases = [("IoU", {"num_classes": 3, "target_class_ids": [0, 2], "ignore_class": 255, "axis": 1}),
             ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}),
             ("MeanIoU", {"num_classes": 5, "sparse_y_pred": False, "dtype": "float32"}),
             ("OneHotIoU", {"num_classes": 3, "target_class_ids": [1]}), ("OneHotMeanIoU", {"num_classes": 4})]
    for name, kwargs in cases:
        ours = getattr(metrics, name)(name="m", **kwargs)
        assert ours.get_config() == getattr(keras.metrics, name)(name="m", **kwargs).get_config(), name
        again = metrics.deserialize(metrics.serialize(ours))
        assert type(again) is type(ours) and again.get_config() == ours.get_config()
        assert getattr(metrics, name)(**{k: v for k, v in kwargs.items() if k != "dtype"}).dtype == "int32"


def test_they_match_keras(rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    sparse = sparse_batches(rng)
    integral = [(t, p, None if w is None else numpy.floor(3 * w).astype("int32")) for t, p, w in sparse]
    one_hot = [(numpy.eye(K, dtype="float32")[rng.integers(0, K, (n, 3))], rng.random((n, 3, K)).astype("float32"),
                rng.random((n, 3)).astype("float32") if w else None) for n, w in ((17, True), (5, False), (1, True))]
    binary = [((rng.random((n, 1)) > 0.5).astype("float32"), rng.random((n, 1)).astype("float32"),
               rng.random(n).astype("float32") if w else None) for n, w in ((17, False), (33, True))]
    cases = [("IoU", {"num_classes": K, "target_class_ids": [0, 2]}, integral),
             ("IoU", {"num_classes": K, "target_class_ids": [1, 3], "ignore_class": 2, "dtype": "float32"}, sparse),
             ("MeanIoU", {"num_classes": K, "dtype": "float32"}, sparse), ("MeanIoU", {"num_classes": K}, integral),
             ("MeanIoU", {"num_classes": K, "sparse_y_true": False, "sparse_y_pred": False, "dtype": "float32"},
              one_hot),
             ("OneHotIoU", {"num_classes": K, "target_class_ids": [3, 1], "dtype": "float32"}, one_hot),
             ("OneHotMeanIoU", {"num_classes": K, "dtype": "float32"}, one_hot),
             ("BinaryIoU", {"dtype": "float32"}, binary), ("BinaryIoU", {"target_class_ids": [0], "threshold": 0.3},
                                                           [(t, p, None) for t, p, _ in binary])]
    for name, kwargs, batches in cases:
        ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
        for y_true, y_pred, sw in batches:
            ours.update_state(y_true, y_pred, sample_weight=sw)
            theirs.update_state(y_true, y_pred, sample_weight=sw)
        assert ours.result() == pytest.approx(float(keras.ops.convert_to_numpy(theirs.result())), rel=2e-6,
                                              abs=1e-7), f"{name} {kwargs}"
        numpy.testing.assert_allclose(ours.total_cm, keras.ops.convert_to_numpy(theirs.total_cm), rtol=1e-6)


def test_bad_arguments_name_the_metric_and_the_argument(xp):
    for make, match in [(lambda: metrics.MeanIoU(num_classes=1), "MeanIoU: num_classes must be an integer >= 2"),
                        (lambda: metrics.IoU(num_classes=2.0, target_class_ids=[0]), "IoU: num_classes"),
                        (lambda: metrics.IoU(num_classes=3, target_class_ids=[3]),
                         r"IoU: target_class_ids must be .* in \[0, 3\), got \[3\]"),
                        (lambda: metrics.OneHotIoU(num_classes=3, target_class_ids=[]), "OneHotIoU: target_class_ids"),
                        (lambda: metrics.IoU(num_classes=3, target_class_ids=1), "IoU: target_class_ids"),
                        (lambda: metrics.IoU(num_classes=3, target_class_ids=[-1]), "IoU: target_class_ids"),
                        (lambda: metrics.BinaryIoU(target_class_ids=[2]), r"BinaryIoU: target_class_ids .*\[0, 2\)"),
                        (lambda: metrics.BinaryIoU(threshold="half"), "BinaryIoU: threshold"),
                        (lambda: metrics.MeanIoU(3, ignore_class=0.5), "MeanIoU: ignore_class"),
                        (lambda: metrics.OneHotMeanIoU(3, axis=None), "OneHotMeanIoU: axis"),
                        (lambda: metrics.MeanIoU(3, dtype="int8"), "MeanIoU: dtype must be one of")]:
        with pytest.raises(ValueError, match=match):
            make()
    metric = metrics.MeanIoU(num_classes=3)
    with pytest.raises(ValueError, match="MeanIoU: y_true and y_pred must give one class id each"):
        metric.update_state(xp.asarray([0, 1, 2]), xp.asarray([0, 1]))
    with pytest.raises(ValueError, match=r"MeanIoU: sample_weight of shape \(2,\) does not fit .* \(3,\)"):
        metric.update_state(xp.asarray([0, 1, 2]), xp.asarray([0, 1, 1]), xp.asarray([1, 1]))
    with pytest.raises(ValueError, match=r"'mean_io_u' needs num_classes: .*MeanIoU\(num_classes=...\)"):
        metrics.get("mean_io_u")


def test_a_compiled_model_reports_it_and_saves_it(xp, rng, tmp_path, capsys):
    x = rng.standard_normal((48, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5)
    gpu_dl.utils.set_random_seed(0)
    model = gpu_dl.Sequential([gpu_dl.layers.Input((5,)), gpu_dl.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[metrics.MeanIoU(num_classes=3, sparse_y_pred=False)])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    assert len(history.history["mean_io_u"]) == 2 and all(0 <= v <= 1 for v in history.history["mean_io_u"])
    assert f"mean_io_u: {history.history['mean_io_u'][-1]:.4f}" in capsys.readouterr().out
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    predicted = model.predict(x, verbose=0).argmax(-1)
    assert logs["mean_io_u"] == pytest.approx(iou_of(written_out([(y, predicted, None)], k=3), range(3)), rel=1e-6)
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras").evaluate(x, y, verbose=0, return_dict=True)
    assert again["mean_io_u"] == pytest.approx(logs["mean_io_u"], rel=1e-12)
