"""compile(weighted_metrics=...) with steps of the caller's own (a train_step or test_step that calls the built-in
one, or compute_metrics called directly): the weighted metrics take the sample weights the steps get, the plain
metrics do not, under Keras's names (``weighted_<name>`` where the name is taken, ``<output>_<name>``), for one
output and for several, in fit, evaluate and the ``*_on_batch`` methods, against NumPy on both backends and
against Keras 3 (torch backend) where it is installed."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import backend

N = 8


def _custom_class(lib):
    class Steps(lib.Model):
        """Runs the built-in steps through steps of its own, as the guide's subclasses do."""

        def train_step(self, data):
            return super().train_step(data)

        def test_step(self, data):
            return super().test_step(data)
    return Steps


def _one_output(lib, seed=0):
    inputs = lib.Input((3,))
    model = _custom_class(lib)(inputs, lib.layers.Dense(2, name="out")(inputs))
    rng = numpy.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model


def _two_outputs(lib, seed=0):
    inputs = lib.Input((3,))
    model = _custom_class(lib)(inputs, [lib.layers.Dense(2, name="a")(inputs), lib.layers.Dense(1, name="b")(inputs)])
    rng = numpy.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model


def _data(seed=1):
    rng = numpy.random.default_rng(seed)
    return (rng.standard_normal((N, 3)).astype("float32"), rng.standard_normal((N, 2)).astype("float32"),
            rng.standard_normal((N, 1)).astype("float32"), rng.random(N).astype("float32"))


def _weighted_mean(values, weights):
    return float((values * weights).sum() / weights.sum())


def test_one_output_weighted_metrics_take_the_sample_weights(xp):
    model = _one_output(gpu_dl)
    x, y, _, sw = _data()
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.0), "mse", metrics=["mae"], weighted_metrics=["mae", "mse"])
    errors = backend.to_numpy(model.predict(x, verbose=0)) - y
    abs_rows, sq_rows = numpy.abs(errors).mean(-1), (errors ** 2).mean(-1)
    weighted = {"loss": (sq_rows * sw).mean(), "mae": abs_rows.mean(), "weighted_mae": _weighted_mean(abs_rows, sw),
                "mse": _weighted_mean(sq_rows, sw)}
    assert model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True) == pytest.approx(weighted, rel=1e-5)
    assert model.test_on_batch(x, y, sample_weight=sw, return_dict=True) == pytest.approx(weighted, rel=1e-5)
    assert model.train_on_batch(x, y, sample_weight=sw, return_dict=True) == pytest.approx(weighted, rel=1e-5)
    # the list follows model.metrics: the loss, each compiled metric's own name (mae twice), then the rest sorted
    assert model.evaluate(x, y, sample_weight=sw, verbose=0) == pytest.approx(
        [weighted["loss"], weighted["mae"], weighted["mae"], weighted["mse"], weighted["weighted_mae"]], rel=1e-5)
    history = model.fit(x, y, sample_weight=sw, batch_size=N, epochs=2, verbose=0).history
    assert history["weighted_mae"] == pytest.approx([weighted["weighted_mae"]] * 2, rel=1e-5)
    assert history["mse"] == pytest.approx([weighted["mse"]] * 2, rel=1e-5)
    # without weights every metric is the plain mean
    plain = model.evaluate(x, y, verbose=0, return_dict=True)
    assert plain == pytest.approx({"loss": sq_rows.mean(), "mae": abs_rows.mean(), "weighted_mae": abs_rows.mean(),
                                   "mse": sq_rows.mean()}, rel=1e-5)


def test_the_same_logs_as_the_built_in_steps(xp):
    """A class whose steps call the built-in ones logs what the fused steps of a plain model log."""
    x, y, _, sw = _data(2)
    inputs = gpu_dl.Input((3,))
    plain = gpu_dl.Model(inputs, gpu_dl.layers.Dense(2, name="out")(inputs))
    custom = _one_output(gpu_dl)
    plain.set_weights(custom.get_weights())
    logs = []
    for model in (custom, plain):
        model.compile("sgd", "mse", metrics=["mae"], weighted_metrics=["mae", "mse"])
        logs.append(model.fit(x, y, sample_weight=sw, batch_size=3, epochs=2, verbose=0, shuffle=False).history)
    assert sorted(logs[0]) == sorted(logs[1]) == ["loss", "mae", "mse", "weighted_mae"]
    for key in logs[1]:
        numpy.testing.assert_allclose(logs[0][key], logs[1][key], rtol=1e-5, err_msg=key)


def test_compute_metrics_called_directly_weighs_the_weighted_metrics(xp):
    model = _one_output(gpu_dl)
    x, y, _, sw = _data(3)
    model.compile("sgd", "mse", weighted_metrics=["mae"])
    y_pred = model(x)
    errors = numpy.abs(backend.to_numpy(y_pred) - y).mean(-1)
    assert model.compute_metrics(x, y, y_pred, sample_weight=sw)["mae"] == \
        pytest.approx(_weighted_mean(errors, sw), rel=1e-5)
    model.reset_metrics()
    # Keras's compiled metrics flatten the weights: a list of one array is that array
    assert model.compute_metrics(x, y, y_pred, sample_weight=[sw])["mae"] == \
        pytest.approx(_weighted_mean(errors, sw), rel=1e-5)
    model.reset_metrics()
    assert model.compute_metrics(x, y, y_pred)["mae"] == pytest.approx(errors.mean(), rel=1e-5)


def test_two_outputs_weighted_metrics_take_each_outputs_weights(xp):
    model = _two_outputs(gpu_dl)
    x, ya, yb, sw = _data(4)
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.0), ["mse", "mse"], metrics=[["mae"], []],
                  weighted_metrics=[["mae"], ["mae"]])
    pa, pb = (backend.to_numpy(p) for p in model.predict(x, verbose=0))
    abs_a, abs_b = numpy.abs(pa - ya).mean(-1), numpy.abs(pb - yb).mean(-1)
    sw_b = 2.0 * sw[::-1]
    logs = model.evaluate(x, [ya, yb], sample_weight=[sw, sw_b], verbose=0, return_dict=True)
    assert logs["a_mae"] == pytest.approx(abs_a.mean(), rel=1e-5)
    assert logs["a_weighted_mae"] == pytest.approx(_weighted_mean(abs_a, sw), rel=1e-5)
    assert logs["b_mae"] == pytest.approx(_weighted_mean(abs_b, sw_b), rel=1e-5)
    # one array of weights weighs every output's weighted metrics
    for logs in (model.train_on_batch(x, [ya, yb], sample_weight=sw, return_dict=True),
                 model.evaluate(x, [ya, yb], sample_weight=sw, verbose=0, return_dict=True)):
        assert logs["a_weighted_mae"] == pytest.approx(_weighted_mean(abs_a, sw), rel=1e-5)
        assert logs["b_mae"] == pytest.approx(_weighted_mean(abs_b, sw), rel=1e-5)
    history = model.fit(x, [ya, yb], sample_weight=sw, batch_size=N, verbose=0).history
    assert sorted(history) == ["a_loss", "a_mae", "a_weighted_mae", "b_loss", "b_mae", "loss"]
    assert history["b_mae"] == pytest.approx([_weighted_mean(abs_b, sw)], rel=1e-5)


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _runs(lib, make, compile_args, y, sample_weight):
    """What fit (two epochs, with validation), evaluate (dict and list) and train_on_batch give."""
    model = make(lib)
    model.compile(**compile_args)
    x, *_ = _data()
    val_sw = None if sample_weight is None else (x, y, sample_weight)
    fit = model.fit(x, y, sample_weight=sample_weight, batch_size=3, epochs=2, verbose=0, shuffle=False,
                    validation_data=val_sw or (x, y)).history
    return [fit, model.evaluate(x, y, sample_weight=sample_weight, batch_size=5, verbose=0, return_dict=True),
            model.evaluate(x, y, sample_weight=sample_weight, batch_size=5, verbose=0),
            model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True),
            model.train_on_batch(x, y, sample_weight=sample_weight)]


def _assert_same(ours, theirs):
    for a, b in zip(ours, theirs):
        if isinstance(b, dict):
            assert list(a) == list(b)
            for key in b:
                numpy.testing.assert_allclose(a[key], b[key], rtol=2e-5, atol=1e-6, err_msg=key)
        else:
            numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("weighted", [True, False])
def test_one_output_logs_as_keras(on_cpu, keras, weighted):
    _, y, _, sw = _data()
    compile_args = dict(optimizer="sgd", loss="mse", metrics=["mae"], weighted_metrics=["mae", "mse"])
    sample_weight = sw if weighted else None
    _assert_same(_runs(gpu_dl, _one_output, compile_args, y, sample_weight),
                 _runs(keras, _one_output, compile_args, y, sample_weight))


@pytest.mark.parametrize("weights", [None, "one", "list"])
def test_two_outputs_log_as_keras(on_cpu, keras, weights):
    _, ya, yb, sw = _data()
    sample_weight = {None: None, "one": sw, "list": [sw, 2.0 * sw[::-1]]}[weights]
    compile_args = dict(optimizer="sgd", loss=["mse", "mae"], metrics=[["mae"], []],
                        weighted_metrics=[["mae", "mse"], ["mae"]])
    _assert_same(_runs(gpu_dl, _two_outputs, compile_args, [ya, yb], sample_weight),
                 _runs(keras, _two_outputs, compile_args, [ya, yb], sample_weight))


def test_class_weights_and_validation_targets_in_a_list_of_one_as_keras(on_cpu, keras):
    """The weighted metrics take the class weights fit turns into sample weights, and validation targets and
    weights given as lists of one array reach the test step as such."""
    rng = numpy.random.default_rng(5)
    x, y, sw = rng.standard_normal((N, 3)).astype("float32"), rng.integers(0, 3, N), rng.random(N).astype("float32")
    histories, seen = [], []
    for lib in (gpu_dl, keras):
        steps = []

        class Steps(lib.Model):
            def test_step(self, data):
                _, targets, weights = lib.utils.unpack_x_y_sample_weight(data)
                steps.append((type(targets).__name__, type(weights).__name__))
                return super().test_step(data)
        inputs = lib.Input((3,))
        model = Steps(inputs, lib.layers.Dense(3, activation="softmax", kernel_initializer="ones")(inputs))
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
        histories.append(model.fit(x, y, class_weight={0: 1.0, 1: 3.0, 2: 0.5}, batch_size=4, epochs=2, verbose=0,
                                   shuffle=False, validation_data=(x, [y], [sw])).history)
        seen.append(steps)
    assert seen[0] == seen[1] == [("list", "list")] * 4
    # the weights count: the weighted accuracy is not the plain one
    assert histories[0]["val_weighted_accuracy"] != pytest.approx(histories[0]["val_accuracy"])
    assert sorted(histories[0]) == sorted(histories[1])
    for key in histories[1]:
        numpy.testing.assert_allclose(histories[0][key], histories[1][key], rtol=2e-5, atol=1e-6, err_msg=key)
