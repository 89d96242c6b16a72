"""Metrics held by layers and updated in their calls against Keras 3 itself (where Keras is installed, torch backend,
which runs the calls eagerly): the same classes (tests/layer_metric_classes.py) give the same fit histories with
validation, evaluate dicts and lists, the same metric state after predict, the same layer and model metric lists
(Keras's model lists its loss and compiled metrics as two objects of its own first), and the same outputs where a
call reads a metric's result."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from layer_metric_classes import (counted, endpoint_model, nested, running_mean_output, tracking_model,  # noqa: E402
                                  training_only)


def _pair(make):
    ours, theirs = make(gpu_dl), make(keras)
    rng = numpy.random.default_rng(0)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _same_logs(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        numpy.testing.assert_allclose(ours[key], theirs[key], rtol=2e-5, atol=1e-6, err_msg=key)


def _names(model):
    return [m.name for m in model.metrics]


def test_guide_endpoint_with_a_metric_as_keras():
    models = _pair(endpoint_model)
    rng = numpy.random.default_rng(1)
    data = {"inputs": rng.standard_normal((8, 3)).astype("float32"),
            "targets": (rng.random((8, 4)) > 0.5).astype("float32")}
    assert [_names(m) for m in models] == [["binary_accuracy"]] * 2
    for m in models:
        m.compile(optimizer="adam", metrics=["mae"])
    _same_logs(*[m.fit(data, data["targets"], batch_size=3, epochs=2, shuffle=False, verbose=0,
                       validation_data=(data, data["targets"])).history for m in models])
    _same_logs(*[m.evaluate(data, data["targets"], verbose=0, return_dict=True) for m in models])
    numpy.testing.assert_allclose(*[m.evaluate(data, data["targets"], verbose=0) for m in models], rtol=2e-5)
    for m in models:
        m.predict(data, batch_size=3, verbose=0)
    results = [float(m.get_layer("predictions").accuracy_fn.result()) for m in models]
    assert results[0] == pytest.approx(results[1], rel=1e-6)
    assert _names(models[0]) == _names(models[1]) == ["loss", "compile_metrics", "binary_accuracy"]


def test_nested_layer_metrics_and_a_training_branch_as_keras():
    def build(lib):
        inputs = lib.Input((3,))
        return lib.Model(inputs, training_only(lib)()(nested(lib)()(inputs)))
    models = _pair(build)
    assert _names(models[0]) == _names(models[1]) == \
        ["outer_mean", "inner_mean", "inner_mean", "positive_share"]
    rng = numpy.random.default_rng(2)
    x, y = rng.standard_normal((9, 3)).astype("float32"), rng.standard_normal((9, 2)).astype("float32")
    for m in models:
        m.compile(optimizer="sgd", loss="mse")
    _same_logs(*[m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                       validation_data=(x[:5], y[:5])).history for m in models])
    _same_logs(*[m.evaluate(x, y, verbose=0, return_dict=True) for m in models])
    # The list repeats a metric listed twice, as Keras's does.
    numpy.testing.assert_allclose(*[m.evaluate(x, y, verbose=0) for m in models], rtol=2e-5)


def test_a_call_reading_a_metric_result_as_keras():
    def build(lib):
        inputs = lib.Input((2,))
        return lib.Model(inputs, running_mean_output(lib)(name="running")(inputs))
    models = _pair(build)
    rng = numpy.random.default_rng(3)
    for batch in (rng.standard_normal((3, 2)).astype("float32"), rng.standard_normal((4, 2)).astype("float32")):
        numpy.testing.assert_allclose(*[m.predict(batch, verbose=0) for m in models], rtol=1e-5)


def test_a_metric_of_your_own_and_a_subclassed_model_as_keras():
    def build(lib):
        inputs = lib.Input((3,))
        return lib.Model(inputs, lib.layers.Dense(2)(counted(lib)()(inputs)))
    rng = numpy.random.default_rng(4)
    x, y = rng.standard_normal((7, 3)).astype("float32"), rng.standard_normal((7, 2)).astype("float32")
    models = _pair(build)
    for m in models:
        m.compile(optimizer="sgd", loss="mse")
    _same_logs(*[m.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history for m in models])
    subclassed = [tracking_model(lib)() for lib in (gpu_dl, keras)]
    for m in subclassed:
        m(x[:1])
    subclassed[1].set_weights(subclassed[0].get_weights())
    for m in subclassed:
        m.compile(optimizer="sgd", loss="mse")
    _same_logs(*[m.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history for m in subclassed])


def test_layer_metrics_in_a_sequential_and_beside_two_outputs_as_keras():
    def sequential(lib):
        return lib.Sequential([lib.Input((3,)), nested(lib)(), training_only(lib)()])

    def two_outputs(lib):
        inputs = lib.Input((3,))
        h = nested(lib)()(inputs)
        return lib.Model(inputs, [lib.layers.Dense(2, name="a")(h), training_only(lib)(name="b")(h)])
    rng = numpy.random.default_rng(5)
    x, y = rng.standard_normal((9, 3)).astype("float32"), rng.standard_normal((9, 2)).astype("float32")
    models = _pair(sequential)
    for m in models:
        m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    _same_logs(*[m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history for m in models])
    numpy.testing.assert_allclose(*[m.evaluate(x, y, verbose=0) for m in models], rtol=2e-5)
    models = _pair(two_outputs)
    for m in models:
        m.compile(optimizer="sgd", loss=["mse", "mse"], metrics={"a": ["mae"]})
    _same_logs(*[m.fit(x, [y, y], batch_size=4, epochs=1, shuffle=False, verbose=0).history for m in models])
    # The loss, the outputs' losses, the layers' metrics, then the other logs sorted.
    numpy.testing.assert_allclose(*[m.evaluate(x, [y, y], verbose=0) for m in models], rtol=2e-5)
