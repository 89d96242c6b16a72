"""The list evaluate, test_on_batch and train_on_batch return (without ``return_dict``) against Keras 3 itself
(where Keras is installed): the same program in both libraries, with the same weights, gives the same values in
the same order, for list, dict and named outputs with per-output metrics and for one output whose metric names
repeat. Keras's order: the loss, each compiled metric whose own name is a log key, each output's loss, then the
other log entries by sorted key."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def two_outputs(lib, as_dict):
    inputs = lib.Input((4,), name="x")
    hidden = lib.layers.Dense(5, activation="tanh", name="hidden")(inputs)
    # Named so that sorting by name and the outputs' order disagree.
    zeta = lib.layers.Dense(3, activation="softmax", name="zeta")(hidden)
    alpha = lib.layers.Dense(2, name="alpha")(hidden)
    return lib.Model(inputs, {"zeta": zeta, "alpha": alpha} if as_dict else [zeta, alpha])


CASES = {
    "list": (False, ["sparse_categorical_crossentropy", "mse"], [["accuracy"], ["mae", "mse"]]),
    "list_named_metrics": (False, {"zeta": "sparse_categorical_crossentropy", "alpha": "mse"},
                           {"alpha": ["mae", "mse"], "zeta": ["accuracy"]}),
    "dict": (True, {"alpha": "mse", "zeta": "sparse_categorical_crossentropy"},
             {"zeta": ["accuracy"], "alpha": ["mae"]}),
    "one_output_loss": (True, {"zeta": "sparse_categorical_crossentropy"}, {"zeta": ["accuracy"], "alpha": ["mae"]}),
}


def data(as_dict):
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((10, 4)).astype("float32")
    labels, values = rng.integers(0, 3, (10, 1)), rng.standard_normal((10, 2)).astype("float32")
    return x, ({"zeta": labels, "alpha": values} if as_dict else [labels, values])


def pair(make, compile_args):
    theirs = make(keras)
    ours = make(gpu_dl)
    ours.set_weights([w.astype("float32") for w in theirs.get_weights()])
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        loss, metrics = compile_args
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.0), loss=loss, metrics=metrics)
    return ours, theirs


@pytest.mark.parametrize("case", sorted(CASES))
def test_evaluate_lists_as_keras_for_several_outputs(case):
    as_dict, loss, metrics = CASES[case]
    ours, theirs = pair(lambda lib: two_outputs(lib, as_dict), (loss, metrics))
    x, y = data(as_dict)
    lists = [m.evaluate(x, y, batch_size=4, verbose=0) for m in (ours, theirs)]
    logs = ours.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == set(theirs.evaluate(x, y, batch_size=4, verbose=0, return_dict=True))
    assert len(lists[0]) == len(lists[1]) == len(logs)
    numpy.testing.assert_allclose(lists[0], lists[1], rtol=1e-5, atol=1e-6)
    # The order itself, from our own logs: the loss, the outputs' losses where several have one (in the order of
    # the outputs: a dict of outputs by sorted key, as Keras flattens it), the rest sorted.
    assert ours.output_names == (["alpha", "zeta"] if as_dict else ["zeta", "alpha"])
    losses = [f"{name}_loss" for name in ours.output_names] if "alpha_loss" in logs else []
    expected = ["loss"] + losses + sorted(set(logs) - {"loss", *losses})
    assert lists[0] == [logs[key] for key in expected]
    for method in ("test_on_batch", "train_on_batch"):
        values = [getattr(m, method)(x, y) for m in (ours, theirs)]
        numpy.testing.assert_allclose(values[0], values[1], rtol=1e-5, atol=1e-6)


def test_a_generator_is_evaluated_into_the_same_list():
    ours, theirs = pair(lambda lib: two_outputs(lib, False), CASES["list"][1:])
    x, y = data(False)

    def batches():
        for start in range(0, 10, 4):
            yield x[start:start + 4], [part[start:start + 4] for part in y]
    lists = [m.evaluate(batches(), verbose=0) for m in (ours, theirs)]
    numpy.testing.assert_allclose(lists[0], lists[1], rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(lists[0], ours.evaluate(x, y, batch_size=4, verbose=0), rtol=1e-6)


def test_one_output_lists_its_metrics_in_compile_order_and_repeats_a_name_as_keras():
    def make(lib):
        return lib.Sequential([lib.Input((4,)), lib.layers.Dense(2)])
    mse = {lib: lib.metrics.MeanSquaredError(name="mae") for lib in (gpu_dl, keras)}
    theirs = make(keras)
    ours = make(gpu_dl)
    ours.set_weights(theirs.get_weights())
    ours.compile("sgd", "mse", metrics=["mse", "mae", "mae", mse[gpu_dl]])
    theirs.compile("sgd", "mse", metrics=["mse", "mae", "mae", mse[keras]])
    x, (_, y) = data(False)
    lists = [m.evaluate(x, y, verbose=0) for m in (ours, theirs)]
    logs = ours.evaluate(x, y, verbose=0, return_dict=True)
    # Keras walks the metrics' own names, so "mae" counts three times, then the numbered names follow sorted.
    assert lists[0] == [logs[k] for k in ("loss", "mse", "mae", "mae", "mae", "mae_1", "mae_2")]
    numpy.testing.assert_allclose(lists[0], lists[1], rtol=1e-5, atol=1e-6)


NAMED = dict(CASES, dict_loss_out_of_order=(True, {"zeta": "sparse_categorical_crossentropy", "alpha": "mse"},
                                            {"alpha": ["mae"], "zeta": ["accuracy"]}),
             no_metrics=(False, ["sparse_categorical_crossentropy", "mse"], None),
             one_loss=(False, "mse", [[], ["mae"]]))


def _same_dicts(ours, theirs):
    assert list(ours) == list(theirs)
    numpy.testing.assert_allclose(list(ours.values()), list(theirs.values()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(NAMED))
def test_returned_dicts_and_metrics_names_are_keras_s(case):
    """return_dict gives Keras's dict (sorted by key), and metrics_names Keras's names of ``Model.metrics``: the
    loss, 'compile_metrics' for the compiled metrics, then, once a step has run, the outputs' loss trackers (for a
    dict of outputs and a dict of losses, in the losses' order)."""
    as_dict, loss, metrics = NAMED[case]
    if case == "one_loss":
        labels = numpy.random.default_rng(3).standard_normal((10, 3)).astype("float32")
    ours, theirs = pair(lambda lib: two_outputs(lib, as_dict), (loss, metrics))
    x, y = data(as_dict)
    if case == "one_loss":
        y = [labels, y[1]]
    assert ours.metrics_names == theirs.metrics_names
    _same_dicts(ours.evaluate(x, y, batch_size=4, verbose=0, return_dict=True),
                theirs.evaluate(x, y, batch_size=4, verbose=0, return_dict=True))
    assert ours.metrics_names == theirs.metrics_names
    for method in ("test_on_batch", "train_on_batch"):
        _same_dicts(getattr(ours, method)(x, y, return_dict=True), getattr(theirs, method)(x, y, return_dict=True))
    assert ours.metrics_names == theirs.metrics_names
    if case == "dict_loss_out_of_order":
        assert ours.metrics_names == ["loss", "compile_metrics", "zeta_loss", "alpha_loss"]
        listed = ours.evaluate(x, y, verbose=0)
        logs = ours.evaluate(x, y, verbose=0, return_dict=True)
        assert listed == [logs[k] for k in ("loss", "zeta_loss", "alpha_loss", "alpha_mae", "zeta_accuracy")]
        numpy.testing.assert_allclose(listed, theirs.evaluate(x, y, verbose=0), rtol=1e-5, atol=1e-6)
    for model in (ours, theirs):       # a compile without loss and metrics keeps both, and the loss trackers
        model.compile("sgd")
    assert ours.metrics_names == theirs.metrics_names
    _same_dicts(ours.test_on_batch(x, y, return_dict=True), theirs.test_on_batch(x, y, return_dict=True))
    for model in (ours, theirs):       # a new loss starts the trackers afresh
        model.compile("sgd", loss=loss, metrics=metrics)
    assert ours.metrics_names == theirs.metrics_names


def test_one_output_s_names_before_and_after_compile_and_fit_are_keras_s():
    found = []
    for lib in (gpu_dl, keras):
        model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])
        names = [list(model.metrics_names)]
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        names.append(list(model.metrics_names))
        x, (labels, _) = data(False)
        history = model.fit(x, labels, epochs=1, verbose=0).history
        names.append(list(model.metrics_names))
        model.compile("sgd", "sparse_categorical_crossentropy")       # without metrics: it keeps its metrics
        names.append(list(model.metrics_names))
        found.append((names, sorted(history), list(model.evaluate(x, labels, verbose=0, return_dict=True))))
    assert found[0] == found[1]
    assert found[0][0] == [[], ["loss", "compile_metrics"], ["loss", "compile_metrics"], ["loss", "compile_metrics"]]
    assert found[0][2] == ["accuracy", "loss"]


@pytest.mark.parametrize("how", ["evaluate", "evaluate_generator", "predict", "train_on_batch", "test_on_batch"])
def test_a_sequential_without_input_is_built_from_the_data_as_keras_builds_it(how):
    rng = numpy.random.default_rng(5)
    x, y = rng.standard_normal((6, 3)).astype("float32"), rng.integers(0, 2, 6)

    def run(lib):
        model = lib.Sequential([lib.layers.Dense(2, activation="softmax", kernel_initializer=lib.initializers.Constant(
            numpy.arange(6.0).reshape(3, 2) / 7))])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        assert not model.built
        if how == "evaluate":
            got = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
        elif how == "evaluate_generator":
            got = model.evaluate(((x[i:i + 4], y[i:i + 4]) for i in (0, 4)), verbose=0, return_dict=True)
        elif how == "predict":
            got = {"out": model.predict(x, verbose=0)}
        else:
            got = getattr(model, how)(x, y, return_dict=True)
        assert model.built
        return {k: numpy.asarray(v) for k, v in got.items()}, model.count_params()

    ours, theirs = run(gpu_dl), run(keras)
    assert ours[1] == theirs[1] == 8
    assert sorted(ours[0]) == sorted(theirs[0])
    for key in theirs[0]:
        numpy.testing.assert_allclose(ours[0][key], theirs[0][key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batches", [1, 3])
def test_a_used_up_validation_generator_validates_later_epochs_as_keras(batches):
    import warnings
    rng = numpy.random.default_rng(7)
    x, y = rng.standard_normal((12, 3)).astype("float32"), rng.integers(0, 2, 12)
    vx, vy = rng.standard_normal((4 * batches, 3)).astype("float32"), rng.integers(0, 2, 4 * batches)

    def run(lib):
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2, activation="softmax", kernel_initializer="ones")])
        model.compile(lib.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
        batches_of = ((vx[i:i + 4], vy[i:i + 4]) for i in range(0, len(vx), 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                             validation_data=batches_of).history
    ours, theirs = run(gpu_dl), run(keras)
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        numpy.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert numpy.isfinite(ours["val_loss"]).all()


def test_pythonify_logs_is_keras_s():
    from keras.src.utils.python_utils import pythonify_logs as theirs
    from gpu_dl.callbacks.base import pythonify_logs as ours
    logs = {"val_b": numpy.float32(2.0), "a": {"y": numpy.float64(3.0), "x": 1, "m": {"q": 4.0}}, "B": 5.0,
            "_c": numpy.array(6.0)}
    assert list(ours(logs).items()) == list(theirs(logs).items())
    assert [type(v) for v in ours(logs).values()] == [type(v) for v in theirs(logs).values()]
