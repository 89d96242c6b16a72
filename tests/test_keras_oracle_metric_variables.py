"""Every built-in metric's state variables against Keras 3 itself (where Keras is installed): after the same
updates, ``metric.variables`` lists Keras's variables (path, shape, dtype, value, in Keras's order, the lazily
made ones included); a metric given Keras's values through its variables reports Keras's result, and
``reset_state`` zeroes what they read."""
import os

import numpy
import pytest

import gpu_dl
import keras_steps
from gpu_dl import metrics

fresh_sessions = keras_steps.fresh_sessions     # autouse: both sessions cleared around each test


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")




_ARGUMENTS = {"IoU": dict(num_classes=3, target_class_ids=[0, 2]), "MeanIoU": dict(num_classes=3),
              "OneHotIoU": dict(num_classes=3, target_class_ids=[0, 1]), "OneHotMeanIoU": dict(num_classes=3),
              "PrecisionAtRecall": dict(recall=0.5, num_thresholds=7),
              "RecallAtPrecision": dict(precision=0.5, num_thresholds=7),
              "SensitivityAtSpecificity": dict(specificity=0.5, num_thresholds=7),
              "SpecificityAtSensitivity": dict(sensitivity=0.5, num_thresholds=7),
              "TopKCategoricalAccuracy": dict(k=2), "SparseTopKCategoricalAccuracy": dict(k=2),
              "AUC": dict(num_thresholds=9)}
_EXTRA = [("AUC", dict(num_thresholds=5, multi_label=True)), ("AUC", dict(num_thresholds=5, multi_label=True,
                                                                            num_labels=3)),
          ("Precision", dict(thresholds=[0.3, 0.6])), ("F1Score", dict(average="micro")),
          ("FBetaScore", dict(beta=2.0, threshold=0.4))]
_CASES = [(name, _ARGUMENTS.get(name, {})) for name in sorted(metrics._CLASSES)] + _EXTRA


def _batches():
    rng = numpy.random.default_rng(11)
    batches = []
    for n in (6, 5):
        ids = rng.integers(0, 3, n)
        scores = rng.random((n, 3)).astype("float32")
        batches.append({"onehot": numpy.eye(3, dtype="float32")[ids], "ids": ids.astype("int32"),
                        "scores": scores, "probs": scores / scores.sum(-1, keepdims=True),
                        "guess": scores.argmax(-1).astype("int32"), "weight": rng.random(n).astype("float32")})
    return batches


def _inputs(name, batch):
    if name in ("Mean", "Sum"):
        return (batch["scores"],)
    if name in ("IoU", "MeanIoU"):
        return batch["ids"], batch["guess"]
    if name.startswith("Sparse"):
        return batch["ids"], batch["probs"]
    return batch["onehot"], batch["probs"]


def _state(lib, metric):
    convert = (lambda v: v.numpy()) if lib is gpu_dl else (lambda v: numpy.asarray(lib.ops.convert_to_numpy(v)))
    return [(v.path, tuple(v.shape), numpy.dtype(v.dtype).name, convert(v)) for v in metric.variables]


def _result(value):
    return numpy.asarray(value if not hasattr(value, "detach") else value.detach().numpy(), dtype="float64")


@pytest.mark.parametrize("name, arguments", _CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(_CASES)])
def test_metric_variables_as_keras(keras, name, arguments):
    ours, theirs = getattr(metrics, name)(**arguments), getattr(keras.metrics, name)(**arguments)
    # the variables Keras makes with the metric (none yet where it makes them at the first update)
    assert [entry[:3] for entry in _state(gpu_dl, ours)] == [entry[:3] for entry in _state(keras, theirs)]
    for i, batch in enumerate(_batches()):
        # the IoU family's int32 counts would truncate fractional weights: theirs and ours alike, weights of 1s
        weight = batch["weight"] if i and "IoU" not in name else None
        for metric in (ours, theirs):
            metric.update_state(*_inputs(name, batch), sample_weight=weight)
    found, expected = _state(gpu_dl, ours), _state(keras, theirs)
    assert expected, name       # every metric compared here has state
    assert [entry[:3] for entry in found] == [entry[:3] for entry in expected]
    for a, b in zip(found, expected):
        assert a[3].dtype == b[3].dtype and a[3].shape == b[3].shape, a[0]
        numpy.testing.assert_allclose(a[3], b[3], rtol=2e-6, atol=1e-6, err_msg=a[0])
    numpy.testing.assert_allclose(_result(ours.result()), _result(theirs.result()), rtol=2e-5, atol=1e-6)
    # Keras's results are float32 tensors: ours Python floats of float32 values (one per class or threshold in a list)
    value = ours.result()
    assert all(type(v) is float and float(numpy.float32(v)) == v for v in (value if isinstance(value, list) else
                                                                           [value]))

    # Keras's values assigned through the variables of a fresh metric of ours give Keras's result
    fresh = getattr(metrics, name)(**arguments)
    fresh.update_state(*_inputs(name, _batches()[0]))     # makes the lazily made variables; then overwritten
    for variable, (_, _, _, value) in zip(fresh.variables, expected):
        variable.assign(value)
    numpy.testing.assert_allclose(_result(fresh.result()), _result(theirs.result()), rtol=2e-5, atol=1e-6)
    for variable, (_, _, _, value) in zip(fresh.variables, expected):
        numpy.testing.assert_allclose(variable.numpy(), value, rtol=2e-6, atol=1e-6, err_msg=variable.path)
    # and reset_state zeroes what every variable reads, keeping the variables
    fresh.reset_state()
    assert [entry[:3] for entry in _state(gpu_dl, fresh)] == [entry[:3] for entry in expected]
    assert all(not numpy.any(v.numpy()) for v in fresh.variables)
