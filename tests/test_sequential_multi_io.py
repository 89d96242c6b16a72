"""A Sequential whose first layer is a model of several inputs, or whose last is a model of several outputs, as
Keras 3 takes them: it takes those inputs (a list, a tuple or a dict keyed by their names), gives those outputs
in the last model's structure, and trains each output with its own loss. Checked against the same layers in a
functional model (outputs, training steps) and NumPy, through float64 finite differences, the summary, saving and
loading, cloning, and what stays refused."""
import json
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, optimizers
from gpu_dl.models import Sequential, clone_model, load_model
from test_nested_models import _assert_trains_as, _check_model_gradients


def _data(rng, *shape):
    return rng.standard_normal(shape).astype("float32")


def _pair(dtype="float32", name="pair"):
    """A model of the inputs a (3,) and b (4,): Dense(5) of their concatenation."""
    a, b = gpu_dl.Input((3,), name="a", dtype=dtype), gpu_dl.Input((4,), name="b", dtype=dtype)
    joined = layers.Concatenate(name="joined", dtype=dtype)([a, b])
    return gpu_dl.Model([a, b], layers.Dense(5, activation="tanh", name="mix", dtype=dtype)(joined), name=name)


def _heads(dtype="float32", as_dict=False, name="heads"):
    """A model of one input (3,) and the outputs first (2,) and second (1,), as a list or a dict."""
    inp = gpu_dl.Input((3,), dtype=dtype)
    hidden = layers.Dense(4, activation="tanh", name="shared", dtype=dtype)(inp)
    first = layers.Dense(2, name="first", dtype=dtype)(hidden)
    second = layers.Dense(1, name="second", dtype=dtype)(hidden)
    return gpu_dl.Model(inp, {"second": second, "first": first} if as_dict else [first, second], name=name)


def several_inputs(dtype="float32", seed=0):
    """Sequential([pair, Dense(2)]) and the same layers in one functional model."""
    backend.set_random_seed(seed)
    seq = Sequential([_pair(dtype), layers.Dense(2, name="head", dtype=dtype)], name="seq")
    a, b = gpu_dl.Input((3,), dtype=dtype), gpu_dl.Input((4,), dtype=dtype)
    joined = layers.Concatenate(dtype=dtype)([a, b])
    flat = gpu_dl.Model([a, b], layers.Dense(2, dtype=dtype)(layers.Dense(5, activation="tanh", dtype=dtype)(joined)))
    return seq, flat


def several_outputs(dtype="float32", seed=0, as_dict=False):
    """Sequential([Input(5), Dense(3), heads]) and the same layers in one functional model."""
    backend.set_random_seed(seed)
    seq = Sequential([gpu_dl.Input((5,), dtype=dtype), layers.Dense(3, name="pre", dtype=dtype),
                      _heads(dtype, as_dict)], name="seq")
    inp = gpu_dl.Input((5,), dtype=dtype)
    hidden = layers.Dense(4, activation="tanh", dtype=dtype)(layers.Dense(3, dtype=dtype)(inp))
    flat = gpu_dl.Model(inp, [layers.Dense(2, name="f1", dtype=dtype)(hidden),
                              layers.Dense(1, name="f2", dtype=dtype)(hidden)])
    return seq, flat


def _dense(x, layer, activation=None):
    kernel, bias = layer.get_weights()
    y = x @ kernel + bias
    return numpy.tanh(y) if activation == "tanh" else y


# ------------------------------------------------------------------ several inputs
def test_several_inputs_as_a_list_a_tuple_or_a_dict(xp, rng):
    seq, _ = several_inputs()
    xa, xb = _data(rng, 6, 3), _data(rng, 6, 4)
    mix = seq.layers[0].get_layer("mix")
    expected = _dense(_dense(numpy.concatenate([xa, xb], axis=1), mix, "tanh"), seq.get_layer("head"))
    assert seq.input_shape == [(None, 3), (None, 4)] and seq.output_shape == (None, 2)
    for x in ([xa, xb], (xa, xb), {"b": xb, "a": xa}):
        numpy.testing.assert_allclose(seq.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    called = seq([xp.asarray(xa), xp.asarray(xb)])
    numpy.testing.assert_allclose(backend.to_numpy(called), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"Sequential 'seq' takes the inputs of its first layer: Model 'pair' has 2 "
                                         r"inputs \(a, b\); pass `x` as a list of 2 arrays"):
        seq.predict(xa, verbose=0)


def test_several_inputs_train_as_the_same_layers_in_one_graph(rng):
    seq, flat = several_inputs(seed=1)
    _assert_trains_as(seq, flat, [_data(rng, 6, 3), _data(rng, 6, 4)], _data(rng, 6, 2))
    history = seq.fit({"a": _data(rng, 6, 3), "b": _data(rng, 6, 4)}, _data(rng, 6, 2), verbose=0)
    assert numpy.isfinite(history.history["loss"][0])


def test_gradients_through_a_sequential_of_several_inputs_match_finite_differences(xp, rng):
    seq, _ = several_inputs(dtype="float64", seed=2)
    _check_model_gradients(seq, [xp.asarray(rng.standard_normal((4, 3))), xp.asarray(rng.standard_normal((4, 4)))],
                           rng)


def several_inputs_in_a_graph():
    seq, _ = several_inputs(dtype="float64", seed=4)
    p, q = gpu_dl.Input((3,), dtype="float64"), gpu_dl.Input((4,), dtype="float64")
    return gpu_dl.Model([p, q], layers.Dense(1, dtype="float64")(seq({"a": p, "b": q})))


def test_a_sequential_of_several_inputs_inside_a_functional_model(xp, rng):
    seq, _ = several_inputs(seed=3)
    p, q = gpu_dl.Input((3,)), gpu_dl.Input((4,))
    by_list = gpu_dl.Model([p, q], layers.Dense(1, name="top")(seq([p, q])))
    r, s = gpu_dl.Input((3,)), gpu_dl.Input((4,))
    by_dict = gpu_dl.Model([r, s], by_list.get_layer("top")(seq({"a": r, "b": s})))
    xa, xb = _data(rng, 5, 3), _data(rng, 5, 4)
    expected = _dense(seq.predict([xa, xb], verbose=0), by_list.get_layer("top"))
    for model in (by_list, by_dict):
        numpy.testing.assert_allclose(model.predict([xa, xb], verbose=0), expected, rtol=1e-5, atol=1e-6)
    _check_model_gradients(several_inputs_in_a_graph(), [xp.asarray(rng.standard_normal((3, 3))),
                                                         xp.asarray(rng.standard_normal((3, 4)))], rng)


# ------------------------------------------------------------------ several outputs
def test_several_outputs_come_in_the_last_models_structure(xp, rng):
    x = _data(rng, 6, 5)
    for as_dict in (False, True):
        seq, _ = several_outputs(seed=5, as_dict=as_dict)
        heads = seq.layers[-1]
        hidden = _dense(_dense(x, seq.get_layer("pre")), heads.get_layer("shared"), "tanh")
        expected = [_dense(hidden, heads.get_layer("first")), _dense(hidden, heads.get_layer("second"))]
        assert seq.output_shape == [(None, 2), (None, 1)]
        predicted, called = seq.predict(x, verbose=0), seq(xp.asarray(x))
        symbolic = seq(gpu_dl.Input((5,)))
        if as_dict:
            assert list(predicted) == list(called) == ["first", "second"] and list(symbolic) == ["second", "first"]
            predicted, called = [predicted["first"], predicted["second"]], [called["first"], called["second"]]
        else:
            assert isinstance(predicted, list) and isinstance(called, list) and isinstance(symbolic, list)
        for got, want in zip(predicted + [backend.to_numpy(c) for c in called], expected + expected):
            numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_several_outputs_train_as_the_same_layers_in_one_graph(rng):
    seq, flat = several_outputs(seed=6)
    flat.set_weights(seq.get_weights())
    x, y1, y2 = _data(rng, 6, 5), _data(rng, 6, 2), _data(rng, 6, 1)
    seq.compile(optimizer=optimizers.SGD(0.1), loss=["mse", "mae"], loss_weights=[1.0, 0.5])
    flat.compile(optimizer=optimizers.SGD(0.1), loss=["mse", "mae"], loss_weights=[1.0, 0.5])
    for step in range(3):
        ours, theirs = seq.train_on_batch(x, [y1, y2]), flat.train_on_batch(x, [y1, y2])
        assert ours == pytest.approx(theirs, rel=1e-6), f"step {step}"
    for a, b in zip(seq.get_weights(), flat.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    first, second = seq.predict(x, verbose=0)
    mse, mae = float(numpy.mean((first - y1) ** 2)), float(numpy.mean(numpy.abs(second - y2)))
    logs = seq.evaluate(x, [y1, y2], verbose=0, return_dict=True)
    # The outputs of a list have no names: as in Keras, each loss's log is named after the loss.
    assert logs == pytest.approx({"loss": mse + 0.5 * mae, "mse_loss": mse, "mae_loss": mae}, rel=1e-5)


def test_logs_are_named_as_keras_names_them(rng):
    x, y1, y2 = _data(rng, 6, 5), _data(rng, 6, 2), _data(rng, 6, 1)
    seq, _ = several_outputs(seed=7)
    seq.compile(optimizer="sgd", loss="mse", metrics=[["mae"], ["mse", "mae"]])
    first, second = seq.predict(x, verbose=0)
    logs = seq.evaluate(x, [y1, y2], verbose=0, return_dict=True)
    # One loss log for two losses of one name (the later one's, as Keras's dict keeps it); a metric name met
    # again numbered.
    assert list(logs) == ["loss", "mae", "mae_1", "mse", "mse_loss"]       # sorted, as Keras returns them
    # but Keras keeps a loss tracker per output, each named in metrics_names
    assert seq.metrics_names == ["loss", "compile_metrics", "mse_loss", "mse_loss"]
    mse = [float(numpy.mean((p - y) ** 2)) for p, y in ((first, y1), (second, y2))]
    assert logs["mse_loss"] == pytest.approx(mse[1], rel=1e-5) and logs["loss"] == pytest.approx(sum(mse), rel=1e-5)
    assert logs["mae"] == pytest.approx(float(numpy.mean(numpy.abs(first - y1))), rel=1e-5)
    assert logs["mae_1"] == pytest.approx(float(numpy.mean(numpy.abs(second - y2))), rel=1e-5)
    keyed, _ = several_outputs(seed=7, as_dict=True)
    keyed.compile(optimizer="sgd", loss={"first": "mse", "second": "mse"}, metrics={"second": ["mae"]})
    logs = keyed.fit(x, {"first": y1, "second": y2}, verbose=0).history
    assert list(logs) == ["first_loss", "loss", "second_loss", "second_mae"]      # sorted, as Keras's History


def test_gradients_through_a_sequential_of_several_outputs_match_finite_differences(xp, rng):
    for as_dict in (False, True):
        seq, _ = several_outputs(dtype="float64", seed=8, as_dict=as_dict)
        _check_model_gradients(seq, [xp.asarray(rng.standard_normal((4, 5)))], rng)


def test_targets_of_a_list_of_outputs_are_a_list_and_refused_as_a_dict(rng):
    seq, _ = several_outputs(seed=9)
    x, y1, y2 = _data(rng, 6, 5), _data(rng, 6, 2), _data(rng, 6, 1)
    with pytest.raises(ValueError, match=r"`loss` is a dict, but model 'seq' gives its 2 outputs as a list, without "
                                         r"names to key them by"):
        seq.compile(optimizer="sgd", loss={"first": "mse", "second": "mse"})
    assert not seq.compiled
    seq.compile(optimizer="sgd", loss="mse")
    before = seq.get_weights()
    with pytest.raises(ValueError, match=r"`y` is a dict, but model 'seq' gives its 2 outputs as a list"):
        seq.fit(x, {"first": y1, "second": y2}, verbose=0)
    with pytest.raises(ValueError, match=r"Model 'seq' has 2 outputs \(first, second\); pass `y` as a list of 2 "
                                         r"arrays"):
        seq.fit(x, y1, verbose=0)
    for a, b in zip(seq.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)
    seq.pop()
    with pytest.raises(ValueError, match=r"Model 'seq' was compiled for 2 output\(s\) and now gives 1: call "
                                         r"compile\(\) again before `fit\(\)`"):
        seq.fit(x, _data(rng, 6, 3), verbose=0)


# ------------------------------------------------------------------ what stays refused
def test_places_keras_refuses_are_refused_before_anything_changes():
    seq = Sequential([_pair(), layers.Dense(2, name="head")], name="seq")
    with pytest.raises(ValueError, match=r"takes 2 inputs: .* in Sequential 'seq' it would follow layer 'head'"):
        seq.add(_pair(name="other"))
    ends = Sequential([gpu_dl.Input((3,)), _heads()], name="ends")
    with pytest.raises(ValueError, match=r"Sequential 'ends' ends with model 'heads' \(Functional\), which gives 2 "
                                         r"outputs.* so 'late' cannot follow it"):
        ends.add(layers.Dense(2, name="late"))
    assert [l.name for l in seq.layers] == ["pair", "head"] and [l.name for l in ends.layers] == ["heads"]
    for model in (seq, Sequential([gpu_dl.Input((3,)), _heads(name="h2")])):
        with pytest.raises(ValueError, match=r"TimeDistributed applies one model to each step of one input; model "
                                             r"'\w+' \(Sequential\) has \d input\(s\) and \d output\(s\)"):
            layers.TimeDistributed(model)


# ------------------------------------------------------------------ summary, files, clones
def test_summary_rows():
    lines = []
    Sequential([_pair(), layers.Dense(2, name="head")], name="seq").summary(
        print_fn=lambda text: lines.extend(text.splitlines()))
    assert any("pair (Functional)" in line and "(None, 5)" in line for line in lines)
    lines.clear()
    Sequential([gpu_dl.Input((3,)), _heads()], name="ends").summary(
        print_fn=lambda text: lines.extend(text.splitlines()))
    assert any("heads (Functional)" in line and "[(None, 2), (None, 1)]" in line for line in lines)


def test_plot_shows_each_output_of_a_sequential_of_several():
    pytest.importorskip("pydot")
    x = gpu_dl.Input((3,))
    seq = Sequential([gpu_dl.Input((3,)), _heads()], name="ends")
    model = gpu_dl.Model(x, layers.Concatenate(name="both")(seq(x)))
    text = gpu_dl.utils.model_to_dot(model, show_shapes=True, show_dtype=True).to_string()
    label = next(line for line in text.splitlines() if "<b>ends</b>" in line)
    assert "Output shape: <b>[(None, 2), (None, 1)]</b>" in label
    assert "Output dtype: <b>['float32', 'float32']</b>" in label


def _config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


@pytest.mark.parametrize("kind", ["inputs", "outputs", "keyed"])
def test_save_load_and_clone_predict_and_resume_the_same(tmp_path, rng, kind):
    if kind == "inputs":
        seq, _ = several_inputs(seed=10)
        seq.compile(optimizer="adam", loss="mse")
        x, y = [_data(rng, 6, 3), _data(rng, 6, 4)], _data(rng, 6, 2)
    else:
        seq, _ = several_outputs(seed=10, as_dict=kind == "keyed")
        seq.compile(optimizer="adam", loss=["mse", "mae"], metrics=[["mae"], None])
        x, y = _data(rng, 6, 5), [_data(rng, 6, 2), _data(rng, 6, 1)]
    seq.fit(x, y, verbose=0)
    seq.save(tmp_path / "m.keras")
    config = _config(tmp_path / "m.keras")
    names = [entry["class_name"] for entry in config["config"]["layers"]]
    if kind == "inputs":
        # As Keras writes it: no InputLayer of the Sequential's own, the inputs' shapes in build_config only.
        assert names == ["Functional", "Dense"] and "build_input_shape" not in config["config"]
        assert config["build_config"] == {"input_shape": [[None, 3], [None, 4]]}
    else:
        assert names == ["InputLayer", "Dense", "Functional"] and config["config"]["build_input_shape"] == [None, 5]
    loaded = load_model(tmp_path / "m.keras")
    cloned = clone_model(seq)
    cloned.set_weights(seq.get_weights())
    expected = seq.predict(x, verbose=0)
    for other in (loaded, cloned):
        got = other.predict(x, verbose=0)
        for a, b in zip(*(([g[k] for k in sorted(g)] if isinstance(g, dict) else g if isinstance(g, list) else [g])
                          for g in (got, expected))):
            numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert loaded.metrics_names[:1] == ["loss"]
    assert loaded.train_on_batch(x, y) == pytest.approx(seq.train_on_batch(x, y), rel=1e-5)


def test_a_sequential_of_one_input_takes_it_in_a_list_of_one(xp, rng):
    backend.set_random_seed(11)
    seq = Sequential([gpu_dl.Input((3,)), layers.Dense(2)])
    x = _data(rng, 4, 3)
    expected = seq.predict(x, verbose=0)
    numpy.testing.assert_allclose(seq.predict([x], verbose=0), expected, rtol=1e-6)
    numpy.testing.assert_allclose(backend.to_numpy(seq([xp.asarray(x)])), expected, rtol=1e-5, atol=1e-6)
    assert seq([gpu_dl.Input((3,))]).shape == (None, 2)
