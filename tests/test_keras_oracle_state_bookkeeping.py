"""The model's bookkeeping against Keras 3 itself (where Keras is installed): what ``fit``'s History and
``evaluate`` give (Python floats of the float32 mean of the loss tracker's and the compiled metrics' sums), and
the state variables of those trackers (``metrics_variables``, the state tree's "metrics_variables": their names,
nesting, values, and ``set_state_tree`` writing them back)."""
import os

import numpy
import pytest

import gpu_dl
import keras_steps

fresh_sessions = keras_steps.fresh_sessions     # autouse: both sessions cleared around each test


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")




def _data(n=10):
    rng = numpy.random.default_rng(3)
    labels = rng.integers(0, 2, n)
    return rng.standard_normal((n, 3)).astype("float32"), numpy.eye(2, dtype="float32")[labels]


def _model(lib):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(4, activation="tanh", name="h"),
                            lib.layers.Dense(2, activation="softmax", name="out")], name="m")
    model.compile(optimizer=lib.optimizers.Adam(name="adam"), loss="categorical_crossentropy",
                  metrics=["accuracy", "mae"], weighted_metrics=["mse"])
    return model


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}/") if isinstance(value, dict) else {prefix + key: numpy.asarray(value)})
    return out


def _is_float32_value(value):
    return type(value) is float and float(numpy.float32(value)) == value


def test_history_and_evaluate_give_python_floats_of_float32_means():
    model = _model(gpu_dl)
    x, y = _data()
    weights = numpy.linspace(0.5, 1.5, len(x)).astype("float32")
    history = model.fit(x, y, sample_weight=weights, batch_size=4, epochs=2, verbose=0, shuffle=False)
    assert all(_is_float32_value(v) for values in history.history.values() for v in values), history.history
    listed = model.evaluate(x, y, sample_weight=weights, batch_size=4, verbose=0)
    logs = model.evaluate(x, y, sample_weight=weights, batch_size=4, verbose=0, return_dict=True)
    assert all(_is_float32_value(v) for v in listed) and all(_is_float32_value(v) for v in logs.values())
    # each value is its tracker's total / count, both float32, divided in float32
    tree = model.get_state_tree("numpy_array")["metrics_variables"]
    state = {path: numpy.float32(v) for path, v in _flat(tree).items()}
    assert logs["loss"] == float(state["loss/total"] / state["loss/count"])
    assert logs["accuracy"] == float(state["accuracy/total"] / state["accuracy/count"])
    assert state["loss/count"] == len(x) and state["accuracy/count"] == len(x)
    assert state["mean_squared_error/count"] == numpy.float32(weights.sum())
    # against plain NumPy: the batches' losses (the mean cross-entropy of each, times its size) summed in float32
    probabilities = model.predict(x, batch_size=4, verbose=0).astype("float64")
    labels = y.argmax(-1)
    per_sample = -numpy.log(numpy.clip(probabilities[numpy.arange(len(y)), labels], 1e-7, 1.0)) * weights
    sums = [numpy.float32(per_sample[i:i + 4].sum()) for i in range(0, len(x), 4)]
    assert logs["loss"] == pytest.approx(float(numpy.float32(sum(sums)) / numpy.float32(len(x))), rel=1e-6)
    assert logs["accuracy"] == float(numpy.float32((probabilities.argmax(-1) == labels).sum()) / numpy.float32(len(x)))


def test_set_state_tree_writes_the_trackers_back():
    model = _model(gpu_dl)
    x, y = _data()
    model.evaluate(x, y, verbose=0)
    tree = model.get_state_tree("numpy_array")
    tree["metrics_variables"]["loss"] = {"total": numpy.float32(7.0), "count": numpy.float32(2.0)}
    tree["metrics_variables"]["accuracy"]["total"] = numpy.float32(1.0)
    model.set_state_tree({"metrics_variables": tree["metrics_variables"]})
    assert model.get_metrics_result()["loss"] == 3.5
    assert model.get_metrics_result()["accuracy"] == float(numpy.float32(1.0) / numpy.float32(len(x)))
    assert [float(v.numpy()) for v in model.metrics_variables[:2]] == [7.0, 2.0]
    model.metrics_variables[0].assign_add(1.0)
    assert model.metrics[0].result() == 4.0
    model.reset_metrics()
    assert [float(v.numpy()) for v in model.metrics_variables] == [0.0] * len(model.metrics_variables)
    with pytest.raises(ValueError, match="loss/total.*scalar"):
        model.metrics_variables[0].assign(numpy.zeros(2, "float32"))


def test_history_evaluate_and_metrics_variables_as_keras(keras):
    ours, theirs = _model(gpu_dl), _model(keras)
    ours.set_weights(theirs.get_weights())
    x, y = _data()
    weights = numpy.linspace(0.5, 1.5, len(x)).astype("float32")
    histories = [m.fit(x, y, sample_weight=weights, batch_size=4, epochs=2, verbose=0, shuffle=False).history
                 for m in (ours, theirs)]
    assert sorted(histories[0]) == sorted(histories[1])
    for key, values in histories[1].items():
        assert [type(v) for v in histories[0][key]] == [type(v) for v in values] == [float, float], key
        assert all(_is_float32_value(v) for v in values + histories[0][key]), key
        assert histories[0][key] == pytest.approx(values, rel=2e-6), key
    results = [m.evaluate(x, y, sample_weight=weights, batch_size=4, verbose=0) for m in (ours, theirs)]
    assert [type(v) for v in results[0]] == [type(v) for v in results[1]]
    assert results[0] == pytest.approx(results[1], rel=2e-6)
    # both: each logged value is exactly the float32 quotient of its tracker's variables
    for model, listed in zip((ours, theirs), results):
        variables = [numpy.float32(keras.ops.convert_to_numpy(v)) for v in model.metrics_variables]
        assert listed == [float(t / c) for t, c in zip(variables[::2], variables[1::2])]
    paths = [[v.path for v in m.metrics_variables] for m in (ours, theirs)]
    assert paths[0] == paths[1] == ["loss/total", "loss/count", "accuracy/total", "accuracy/count",
                                    "mean_absolute_error/total", "mean_absolute_error/count",
                                    "mean_squared_error/total", "mean_squared_error/count"]
    trees = [_flat(m.get_state_tree("numpy_array")["metrics_variables"]) for m in (ours, theirs)]
    assert list(trees[0]) == list(trees[1])
    for path, value in trees[1].items():
        assert trees[0][path].dtype == value.dtype and trees[0][path].shape == value.shape, path
        numpy.testing.assert_allclose(trees[0][path], value, rtol=2e-6, err_msg=path)
    # a state tree of Keras's sets ours
    ours.set_state_tree({"metrics_variables": theirs.get_state_tree("numpy_array")["metrics_variables"]})
    assert ours.get_metrics_result() == theirs.get_metrics_result()


def _optimizer_variables(lib, optimizer):
    convert = (lambda v: v.numpy()) if lib is gpu_dl else (lambda v: lib.ops.convert_to_numpy(v))
    return [(v.name, v.path, numpy.dtype(v.dtype).name, convert(v)) for v in optimizer.variables]


def test_optimizer_variables_as_keras(keras):
    schedule = {"class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.01, "decay_steps": 2, "decay_rate": 0.5}}
    for rate in (0.01, schedule):
        found = []
        for lib in (gpu_dl, keras):
            gpu_dl.backend.clear_session()
            keras.backend.clear_session()
            model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2, name="d")], name="m")
            given = rate if not isinstance(rate, dict) else lib.optimizers.schedules.deserialize(rate)
            optimizer = lib.optimizers.Adam(learning_rate=given, amsgrad=True, name="adam")
            if lib is keras:
                model.set_weights(found[0][0])
            start = model.get_weights()
            model.compile(optimizer=optimizer, loss="mse")
            x, y = _data()
            model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
            found.append((start, _optimizer_variables(lib, optimizer)))
            assert int(optimizer.iterations) == 3 and optimizer.iterations.path == "adam/iteration"
        (_, ours), (_, theirs) = found
        # the step count and (where it is a number) the learning rate, then the slots, with Keras's names, paths,
        # dtypes and values
        assert [entry[:3] for entry in ours] == [entry[:3] for entry in theirs]
        assert ours[0][:3] == ("iteration", "adam/iteration", "int32")
        assert (ours[1][1] == "adam/learning_rate") == (not isinstance(rate, dict))
        assert [entry[1] for entry in ours[-2:]] == ["adam/m_d_kernel_velocity_hat", "adam/m_d_bias_velocity_hat"]
        for a, b in zip(ours, theirs):
            numpy.testing.assert_allclose(a[3], b[3], rtol=2e-5, atol=1e-7, err_msg=a[1])


@pytest.mark.parametrize("kind", ["nadam", "loss_scale"])
def test_nadam_and_loss_scale_optimizer_variables_as_keras(keras, kind):
    found = []
    for lib in (gpu_dl, keras):
        gpu_dl.backend.clear_session()
        keras.backend.clear_session()
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2, name="d")], name="m")
        if lib is keras:
            model.set_weights(found[0][0])
        optimizer = lib.optimizers.Nadam(name="nadam") if kind == "nadam" else \
            lib.optimizers.LossScaleOptimizer(lib.optimizers.Adam(name="adam"), initial_scale=8.0,
                                              dynamic_growth_steps=2)
        before = [v.path for v in optimizer.variables]
        start = model.get_weights()
        model.compile(optimizer=optimizer, loss="mse")
        x, y = _data()
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        trees = [] if kind != "nadam" else [model.get_state_tree("numpy_array")["optimizer_variables"]]
        found.append((start, before, _optimizer_variables(lib, optimizer), optimizer, trees))
    (_, ours_before, ours, optimizer, our_tree), (_, theirs_before, theirs, _, their_tree) = found
    if kind == "nadam":     # the state tree holds the product at Keras's path too
        ours_flat, theirs_flat = _flat(our_tree[0]), _flat(their_tree[0])
        assert sorted(ours_flat) == sorted(theirs_flat) and "variable" in ours_flat
        numpy.testing.assert_allclose(ours_flat["variable"], theirs_flat["variable"], rtol=2e-6)
    assert ours_before == theirs_before
    assert [entry[:3] for entry in ours] == [entry[:3] for entry in theirs]
    if kind == "nadam":     # Keras's momentum product: an unnamed Variable, last
        assert ours[-1][:3] == ("variable", "variable", "float32")
    else:                   # its own four, then the inner optimizer's
        assert [entry[1] for entry in ours[:5]] == [
            "loss_scale_optimizer/iteration", "loss_scale_optimizer/learning_rate", "loss_scale_optimizer/step_counter",
            "loss_scale_optimizer/dynamic_scale", "adam/iteration"]
    for a, b in zip(ours, theirs):
        numpy.testing.assert_allclose(a[3], b[3], rtol=2e-5, atol=1e-7, err_msg=a[1])
    # the views write the state the step reads, and the files hold what they show
    optimizer.variables[-1 if kind == "nadam" else 3].assign(0.25)
    assert (optimizer._u_product if kind == "nadam" else optimizer.dynamic_scale) == 0.25
    store = {}
    optimizer.save_own_variables(store)
    assert [numpy.asarray(store[str(i)]).shape for i in range(len(store))] == [v.shape for v in optimizer.variables]
    numpy.testing.assert_allclose(store[str(len(store) - 1 if kind == "nadam" else 3)], 0.25)


def test_optimizer_variables_view_the_state():
    model = _model(gpu_dl)
    x, y = _data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    optimizer = model.optimizer
    variables = optimizer.variables
    assert variables is not optimizer.variables and variables[2] is optimizer.variables[2]     # the same objects
    assert variables[2].value is optimizer.get_slot(model.layers[0].kernel, "momentum")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert int(variables[0].numpy()) == 6 and variables[0].dtype == numpy.int32
    numpy.testing.assert_array_equal(variables[2].numpy(),
                                     gpu_dl.backend.to_numpy(optimizer.get_slot(model.layers[0].kernel, "momentum")))
    variables[0].assign(2)
    variables[1].assign(0.5)
    assert int(optimizer.iterations) == 2 and float(optimizer.learning_rate) == 0.5
    store = {}
    optimizer.save_own_variables(store)
    assert [numpy.asarray(store[str(i)]).shape for i in range(len(store))] == [v.shape for v in variables]
    numpy.testing.assert_array_equal(store["0"], 2)
    with pytest.raises(ValueError, match="adam/iteration.*integer"):
        variables[0].assign(1.5)


def _two_outputs(lib):
    inputs = lib.Input((3,))
    outputs = {"a": lib.layers.Dense(2, name="a")(inputs), "b": lib.layers.Dense(1, name="b")(inputs)}
    model = lib.Model(inputs, outputs, name="two")
    model.compile(optimizer=lib.optimizers.SGD(name="sgd"), loss={"a": "mse", "b": "mae"}, metrics={"a": ["mae"]})
    return model


def test_each_output_loss_tracker_as_keras(keras):
    ours, theirs = _two_outputs(gpu_dl), _two_outputs(keras)
    ours.set_weights(theirs.get_weights())
    x, _ = _data(8)
    y = {"a": numpy.ones((8, 2), "float32"), "b": numpy.zeros((8, 1), "float32")}
    histories = [m.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False).history for m in (ours, theirs)]
    assert sorted(histories[0]) == sorted(histories[1])
    for key in histories[1]:
        assert histories[0][key] == pytest.approx(histories[1][key], rel=2e-6), key
    found = [[(v.path, float(keras.ops.convert_to_numpy(v))) for v in m.metrics_variables] for m in (ours, theirs)]
    assert [p for p, _ in found[0]] == [p for p, _ in found[1]] == [
        "loss/total", "loss/count", "mean_absolute_error/total", "mean_absolute_error/count",
        "compile_loss/a_loss/total", "compile_loss/a_loss/count", "compile_loss/b_loss/total",
        "compile_loss/b_loss/count"]
    numpy.testing.assert_allclose([v for _, v in found[0]], [v for _, v in found[1]], rtol=2e-6)
    # each output's loss in the history is its tracker's float32 quotient
    totals = {p: numpy.float32(v) for p, v in found[0]}
    assert histories[0]["a_loss"] == [float(totals["compile_loss/a_loss/total"] / totals["compile_loss/a_loss/count"])]
    ours.reset_metrics()
    assert all(float(v.numpy()) == 0.0 for v in ours.metrics_variables)
