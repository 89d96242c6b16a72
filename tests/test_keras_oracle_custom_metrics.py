"""Custom metrics against Keras 3 itself (where Keras is installed): the classes of tests/metric_classes.py, written
once as Keras's guides write them, give the same variables, results, configs and fit/evaluate logs in both
libraries."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from metric_classes import (categorical_true_positives, error_stats, holder, mean_max_error,  # noqa: E402
                            mean_of_positives)


def as_float(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy"):
        value = value.numpy()
    return float(numpy.asarray(gpu_dl.backend.to_numpy(value)).reshape(()))


def both(make, *args, **kwargs):
    return make(gpu_dl)(*args, **kwargs), make(keras)(*args, **kwargs)


def classifier(lib, weights=None):
    inputs = lib.Input((6,))
    hidden = lib.layers.Dense(5, activation="relu")(inputs)
    model = lib.Model(inputs, lib.layers.Dense(3, activation="softmax")(hidden))
    if weights is not None:
        model.set_weights(weights)
    return model


def assert_logs_match(ours, theirs, rtol=1e-4, keys=None):
    assert sorted(ours) == sorted(theirs)
    for key in theirs if keys is None else keys:
        assert ours[key] == pytest.approx(theirs[key], rel=rtol, abs=1e-6), key


def fit_both(build, x, y, validation_data, **fit_kwargs):
    """``(ours, theirs)``: the History logs of two fits in each library from the same start, one without
    validation data and one with it, merged: the training logs of the first, the validation logs of the second.

    Keras 3.15 logs a result that is a variable (the guide's ``return self.true_positives``) by reading the variable
    after the epoch's validation has reset and updated it: its training log is then the validation value. gpu_dl
    logs the training value; each log is compared where Keras's is the value it names."""
    merged = []
    for lib in (gpu_dl, keras):
        train = build(lib).fit(x, y, verbose=0, **fit_kwargs).history
        val = build(lib).fit(x, y, verbose=0, validation_data=validation_data, **fit_kwargs).history
        merged.append({**train, **{k: v for k, v in val.items() if k.startswith("val_")}})
        assert sorted(val) == sorted(list(train) + ["val_" + k for k in train])
    return merged


def test_guide_metric_update_state_as_keras():
    rng = numpy.random.default_rng(0)
    labels = rng.integers(0, 3, (25, 1))
    scores = rng.random((25, 3)).astype("float32")
    weights = rng.random(25).astype("float32")
    ours, theirs = both(categorical_true_positives)
    assert [v.path for v in ours.variables] == [v.path for v in theirs.variables] == ["categorical_true_positives/ctp"]
    for metric in (ours, theirs):
        metric.update_state(labels[:10], scores[:10])
        metric.update_state(labels[10:], scores[10:], sample_weight=weights[10:])
    assert as_float(ours.result()) == pytest.approx(as_float(theirs.result()), rel=1e-6)
    ours.reset_state()
    theirs.reset_state()
    assert as_float(ours.result()) == as_float(theirs.result()) == 0.0


def test_guide_metric_in_fit_and_evaluate_as_keras():
    # The guide's model and metric; sample weights weigh the loss (compile's metrics are not weighted).
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((64, 6)).astype("float32")
    y = rng.integers(0, 3, (64, 1))
    sample_weight = rng.random(64).astype("float32")
    weights = [w.astype("float32") for w in classifier(keras).get_weights()]

    def build(lib):
        model = classifier(lib, weights)
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.5), loss="sparse_categorical_crossentropy",
                      metrics=[categorical_true_positives(lib)()])
        return model

    ours, theirs = fit_both(build, x, y, (x[:20], y[:20]), batch_size=16, epochs=3, shuffle=False,
                            sample_weight=sample_weight)
    assert sorted(theirs) == ["categorical_true_positives", "loss", "val_categorical_true_positives", "val_loss"]
    assert_logs_match(ours, theirs)
    # Reset at each epoch's start: a count of at most the epoch's samples.
    assert max(ours["categorical_true_positives"]) <= 64 and max(ours["val_categorical_true_positives"]) <= 20
    evaluations = [build(lib).evaluate(x, y, batch_size=16, verbose=0) for lib in (gpu_dl, keras)]
    assert evaluations[0] == pytest.approx(evaluations[1], rel=1e-5)


def test_several_variables_and_a_dict_result_as_keras():
    ours, theirs = both(error_stats, limit=0.4, dtype="float64")
    assert [v.path for v in ours.variables] == [v.path for v in theirs.variables]
    assert [v.shape for v in ours.variables] == [tuple(v.shape) for v in theirs.variables]
    assert [str(numpy.dtype(v.dtype)) for v in ours.variables] == [str(v.dtype) for v in theirs.variables]
    assert [v.trainable for v in ours.variables] == [v.trainable for v in theirs.variables]
    assert [v.aggregation for v in ours.variables] == [v.aggregation for v in theirs.variables]
    assert ours.get_config() == theirs.get_config()
    rng = numpy.random.default_rng(2)
    y_true, y_pred = rng.random((30, 4)).astype("float32"), rng.random((30, 4)).astype("float32")
    weights = rng.random(30).astype("float32")
    for metric in (ours, theirs):
        metric.update_state(y_true[:12], y_pred[:12], sample_weight=weights[:12])
        metric.update_state(y_true[12:], y_pred[12:])
    mine, keras_result = ours.result(), theirs.result()
    assert sorted(mine) == sorted(keras_result)
    for key in keras_result:
        assert as_float(mine[key]) == pytest.approx(as_float(keras_result[key]), rel=1e-5), key
    ours.reset_state()
    theirs.reset_state()
    assert [numpy.asarray(v).tolist() for v in ours.variables] == \
        [v.numpy().tolist() for v in theirs.variables]


def test_dict_results_and_functions_in_logs_as_keras():
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((40, 6)).astype("float32")
    y = rng.random((40, 3)).astype("float32")
    weights = [w.astype("float32") for w in classifier(keras).get_weights()]

    def build(lib):
        model = classifier(lib, weights)
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.2), loss="mse",
                      metrics=["mae", error_stats(lib)(limit=0.3), mean_max_error(lib), "mse"])
        return model

    ours, theirs = fit_both(build, x, y, (x[:16], y[:16]), batch_size=8, epochs=2, shuffle=False)
    assert "mean_max_error" in theirs and "val_share_above" in theirs
    assert_logs_match(ours, theirs)
    models = [build(lib) for lib in (gpu_dl, keras)]
    assert_logs_match(*[m.evaluate(x, y, verbose=0, return_dict=True) for m in models])
    # evaluate's list in Keras's order: the loss, the metrics by name, then the dict's entries sorted.
    lists = [m.evaluate(x, y, verbose=0) for m in models]
    assert len(lists[0]) == len(lists[1]) == 7
    assert lists[0] == pytest.approx(lists[1], rel=1e-5)


def test_subclasses_of_built_in_metrics_and_held_metrics_as_keras():
    rng = numpy.random.default_rng(4)
    y_true, y_pred = rng.random((15, 2)).astype("float32"), rng.random((15, 2)).astype("float32")
    for make in (mean_of_positives, holder):
        ours, theirs = both(make)
        for metric in (ours, theirs):
            metric.update_state(y_true[:5], y_pred[:5])
            metric.update_state(y_true[5:], y_pred[5:], sample_weight=numpy.linspace(0, 1, 10).astype("float32"))
        assert as_float(ours.result()) == pytest.approx(as_float(theirs.result()), rel=1e-5), make.__name__
        # The class's own variables and those of the built-in metrics it extends or holds, named and ordered as
        # Keras's, with Keras's values
        assert [v.path for v in ours.variables] == [v.path for v in theirs.variables]
        numpy.testing.assert_allclose([float(v.numpy()) for v in ours.variables],
                                      [float(keras.ops.convert_to_numpy(v)) for v in theirs.variables], rtol=1e-6)
        ours.reset_state()
        theirs.reset_state()
        assert as_float(ours.result()) == pytest.approx(as_float(theirs.result()), abs=1e-7), make.__name__
        assert [float(v.numpy()) for v in ours.variables] == [0.0] * len(ours.variables)


def test_several_outputs_with_custom_metrics_as_keras():
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((30, 6)).astype("float32")
    labels, y = rng.integers(0, 3, (30, 1)), rng.random((30, 2)).astype("float32")

    def model(lib):
        inputs = lib.Input((6,))
        hidden = lib.layers.Dense(5, activation="relu")(inputs)
        return lib.Model(inputs, [lib.layers.Dense(3, activation="softmax", name="cls")(hidden),
                                  lib.layers.Dense(2, name="reg")(hidden)])

    weights = [w.astype("float32") for w in model(keras).get_weights()]

    def build(lib):
        m = model(lib)
        m.set_weights(weights)
        m.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1), loss=["sparse_categorical_crossentropy", "mse"],
                  metrics={"cls": [categorical_true_positives(lib)()],
                           "reg": [error_stats(lib)(), mean_max_error(lib)]})
        return m

    ours, theirs = fit_both(build, x, [labels, y], (x[:10], [labels[:10], y[:10]]), batch_size=10, epochs=2,
                            shuffle=False)
    assert "cls_categorical_true_positives" in theirs and "val_mean_error" in theirs
    assert_logs_match(ours, theirs)
    assert_logs_match(*[build(lib).evaluate(x, [labels, y], verbose=0, return_dict=True) for lib in (gpu_dl, keras)])
    lists = [build(lib).evaluate(x, [labels, y], verbose=0) for lib in (gpu_dl, keras)]
    assert len(lists[0]) == len(lists[1]) == 8
    numpy.testing.assert_allclose(lists[0], lists[1], rtol=1e-5, atol=1e-6)
