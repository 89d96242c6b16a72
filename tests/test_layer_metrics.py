"""Metrics held by layers and updated in their calls, on both backends, against NumPy: ``layer.metrics`` and
``model.metrics`` in Keras's order, a metric updated in a traced call (an endpoint layer, nested layers, a training
branch, a metric called for its result, reset_state and result in the call, a metric of the caller's own, a
subclassed model) updated by fit, evaluate and predict and never by making the model, reset each epoch and logged
beside the compiled metrics, an untraceable call's metric updated as it runs, and the forms refused with clear
errors. Against Keras itself: tests/test_keras_oracle_layer_metrics.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import callbacks, layers, losses, metrics, ops
from gpu_dl.backend import to_numpy

from layer_metric_classes import (accuracy_endpoint, counted, endpoint_model, nested, running_mean_output,
                                  tracking_model, training_only)


def _sigmoid(z):
    return 1.0 / (1.0 + numpy.exp(-z))


def _endpoint_data(rng, n=6, classes=4):
    return {"inputs": rng.standard_normal((n, 3)).astype("float32"),
            "targets": (rng.random((n, classes)) > 0.5).astype("float32")}


def test_layers_list_the_metrics_they_hold_as_keras_does():
    class Holder(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first = metrics.Mean(name="first")
            self.pair = [metrics.Sum(name="a"), metrics.Sum(name="b")]
            self.inner = nested(gpu_dl)()
            self.by_key = {"k": metrics.Mean(name="keyed")}

        def call(self, x):
            return self.inner(x)
    holder = Holder()
    assert [m.name for m in holder.metrics] == ["first", "a", "b", "keyed", "outer_mean", "inner_mean"]
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, holder(inputs))
    # The model: each layer's metrics, the layers walked as Keras walks them (a metric two levels down twice).
    assert [m.name for m in model.metrics] == ["first", "a", "b", "keyed", "outer_mean", "inner_mean",
                                               "outer_mean", "inner_mean", "inner_mean"]
    model.compile("sgd", "mse", metrics=["mae"], weighted_metrics=["mse"])
    model.evaluate(numpy.ones((2, 3)), numpy.ones((2, 2)), verbose=0)
    # Compiled, Keras's two entries come first: the loss tracker and the holder of the compiled metrics.
    assert [m.name for m in model.metrics][:3] == ["loss", "compile_metrics", "first"]
    assert [m.name for m in model.metrics[1].metrics] == ["mae", "mse"]


def test_endpoint_metric_is_updated_reset_and_logged(xp, rng):
    model = endpoint_model(gpu_dl)
    endpoint = model.get_layer("predictions")
    assert endpoint.accuracy_fn.result() == 0.0            # making the model updates nothing
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.0), metrics=["mae"])
    data = _endpoint_data(rng)
    kernel, bias = model.get_weights()
    logits = data["inputs"] @ kernel + bias
    accuracy = float(((_sigmoid(logits) > 0.5) == data["targets"]).mean())
    history = model.fit(data, data["targets"], batch_size=4, epochs=2, verbose=0,
                        validation_data=(data, data["targets"])).history
    assert history["binary_accuracy"] == pytest.approx([accuracy] * 2)      # reset each epoch
    assert history["val_binary_accuracy"] == pytest.approx([accuracy] * 2)
    logs = model.evaluate(data, data["targets"], verbose=0, return_dict=True)
    assert logs["binary_accuracy"] == pytest.approx(accuracy)
    # As Keras lists them: the loss, the compiled metrics, the layers' metrics.
    assert model.evaluate(data, data["targets"], verbose=0) == pytest.approx(
        [logs["loss"], logs["mae"], logs["binary_accuracy"]])
    assert model.metrics_names == ["loss", "compile_metrics", "binary_accuracy"]
    model.predict(data, batch_size=3, verbose=0)             # predict runs the call too, without a reset
    assert endpoint.accuracy_fn.result() == pytest.approx(accuracy)
    model.reset_metrics()
    assert endpoint.accuracy_fn.result() == 0.0


def test_endpoint_metric_takes_the_sample_weights_it_is_given(xp, rng):
    inputs, targets, weights = gpu_dl.Input((3,)), gpu_dl.Input((4,)), gpu_dl.Input(())
    model = gpu_dl.Model([inputs, targets, weights],
                         accuracy_endpoint(gpu_dl)(name="predictions")(targets, layers.Dense(4)(inputs), weights))
    model.compile("sgd")
    data = _endpoint_data(rng)
    w = rng.random(6).astype("float32")
    kernel, bias = model.get_weights()
    hits = ((_sigmoid(data["inputs"] @ kernel + bias) > 0.5) == data["targets"]).mean(-1)
    logs = model.evaluate([data["inputs"], data["targets"], w], verbose=0, return_dict=True)
    assert logs["binary_accuracy"] == pytest.approx(float((hits * w).sum() / w.sum()), rel=1e-6)


def test_nested_layers_metrics_and_training_branch(xp, rng):
    inputs = gpu_dl.Input((3,))
    h = nested(gpu_dl)()(inputs)
    model = gpu_dl.Model(inputs, training_only(gpu_dl)()(h))
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.0), "mse")
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 2)).astype("float32")
    out = model.predict(x, verbose=0)
    model.reset_metrics()
    history = model.fit(x, y, batch_size=3, epochs=1, verbose=0).history
    assert history["outer_mean"] == pytest.approx([float(x.sum(-1).mean())], rel=1e-5)
    assert history["inner_mean"] == pytest.approx([float(out.mean())], rel=1e-5)
    assert history["positive_share"] == pytest.approx([float((out > 0).mean())], rel=1e-6)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["positive_share"] == 0.0                    # evaluation calls take the other branch
    listed = model.evaluate(x, y, verbose=0)
    assert listed == pytest.approx([logs["loss"], logs["outer_mean"], logs["inner_mean"], logs["inner_mean"],
                                    logs["positive_share"]], rel=1e-6)


def test_calling_the_metric_gives_its_running_result(xp, rng):
    layer = running_mean_output(gpu_dl)()
    inputs = gpu_dl.Input((2,))
    model = gpu_dl.Model(inputs, layer(inputs))
    first, second = rng.standard_normal((3, 2)), rng.standard_normal((5, 2))
    numpy.testing.assert_allclose(to_numpy(model(xp.asarray(first))), first + first.sum(-1).mean(), rtol=1e-6)
    both = numpy.concatenate([first.sum(-1), second.sum(-1)]).mean()
    numpy.testing.assert_allclose(to_numpy(model(xp.asarray(second))), second + both, rtol=1e-6)
    assert layer.mean.result() == pytest.approx(both)


def test_reset_state_result_and_updates_of_no_tensor_in_a_call(xp, rng):
    class PerCall(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.calls = metrics.Sum(name="calls")
            self.last = metrics.Mean(name="last_batch_mean")

        def call(self, x):
            self.calls.update_state(1.0)
            self.last.reset_state()
            self.last.update_state(x)
            return x * 0.0 + self.last.result()
    layer = PerCall()
    inputs = gpu_dl.Input((2,))
    model = gpu_dl.Model(inputs, layer(inputs))
    for batch in (rng.standard_normal((3, 2)), rng.standard_normal((4, 2))):
        out = to_numpy(model(xp.asarray(batch)))
        numpy.testing.assert_allclose(out, numpy.full_like(batch, batch.mean()), rtol=1e-6)
    assert layer.calls.result() == 2.0 and layer.last.result() == pytest.approx(float(out[0, 0]))


def test_a_metric_of_your_own_updated_in_a_call(xp, rng):
    inputs = gpu_dl.Input((3,))
    layer = counted(gpu_dl)()
    model = gpu_dl.Model(inputs, layers.Dense(2)(layer(inputs)))
    model.compile("sgd", "mse")
    x, y = rng.standard_normal((7, 3)).astype("float32"), rng.standard_normal((7, 2)).astype("float32")
    logs = model.fit(x, y, batch_size=3, epochs=2, verbose=0).history
    assert logs["rows"] == [7.0, 7.0] and logs["largest"] == pytest.approx([float(x.max())] * 2)


def test_a_subclassed_model_logs_the_metric_it_updates(xp, rng):
    model = tracking_model(gpu_dl)()
    x, y = rng.standard_normal((5, 3)).astype("float32"), rng.standard_normal((5, 2)).astype("float32")
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.0), "mse")
    logs = model.fit(x, y, epochs=1, verbose=0).history
    assert logs["magnitude"] == pytest.approx([float(numpy.abs(model.predict(x, verbose=0)).mean())], rel=1e-6)
    assert [m.name for m in model.metrics] == ["loss", "magnitude"]


def test_an_untraceable_call_updates_its_metric_as_it_runs(xp, rng):
    class Untraceable(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seen = metrics.Sum(name="seen")

        def call(self, x):
            self.seen.update_state(numpy.ones(len(x)))       # NumPy on the input: the call runs as written
            return x * 2.0

        def compute_output_shape(self, input_shape):
            return input_shape
    layer = Untraceable()
    inputs = gpu_dl.Input((2,))
    model = gpu_dl.Model(inputs, layer(inputs))
    assert layer.seen.result() == 0.0                       # learning its shape updated nothing
    model.compile("sgd", "mse")
    assert model.evaluate(numpy.ones((5, 2)), numpy.ones((5, 2)), batch_size=2, verbose=0,
                          return_dict=True)["seen"] == 5.0


def test_early_stopping_finds_the_direction_of_a_layer_metric(rng):
    model = endpoint_model(gpu_dl)
    model.compile("sgd")
    stop = callbacks.EarlyStopping(monitor="binary_accuracy", patience=0)
    data = _endpoint_data(rng)
    model.fit(data, data["targets"], epochs=1, verbose=0, callbacks=[stop])
    assert stop.monitor_op is numpy.greater


def test_forms_that_cannot_work_are_refused_clearly(xp, rng):
    accuracy = metrics.BinaryAccuracy(name="acc")
    t, p = gpu_dl.Input((2,)), gpu_dl.Input((2,))
    with pytest.raises(TypeError, match=r"Metric 'acc' \(BinaryAccuracy\): update_state got symbolic tensors "
                                        r"outside the call of a layer"):
        accuracy.update_state(t, p)

    class DictResult(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.extremes = counted(gpu_dl)().extremes

        def call(self, x):
            return x + self.extremes(x)["rows"]
    layer = DictResult()
    layer(xp.ones((2, 2)))
    assert "gives a dict result" in layer._trace_error

    class Tallying(losses.Loss):
        def __init__(self):
            super().__init__(name="tallying")
            self.seen = metrics.Mean()

        def call(self, y_true, y_pred):
            self.seen.update_state(y_pred)
            return ops.mean(ops.square(y_true - y_pred), axis=-1)
    with pytest.raises(TypeError, match=r"Loss 'tallying' \(Tallying\) updates a metric in its call"):
        Tallying().validate_targets(numpy.ones((2, 2)), (None, 2))
    with pytest.raises(NotImplementedError, match=r"add_metric\(\)` method is deprecated.*update_state\(\) in call"):
        layers.Dense(2).add_metric(accuracy)
