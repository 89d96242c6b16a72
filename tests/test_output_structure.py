"""The structure of a model's outputs, as Keras 3 gives it: a model made with a dict of outputs gives the dict
(even of one output) from a call and from predict, and takes its targets keyed the same way (or as an array, or a
list of one); a model made with a list (or tuple) of one output gives the array itself from a call on arrays and
from predict, but the list (tuple) from a call on tensors; several outputs made as a tuple come back as a tuple;
compute_output_shape gives the shapes in the outputs' structure.
A model of one output takes its loss as a list of one and its metrics as a list of one list, as Keras flattens
them. Inner models of any of these structures run inside other models as before (outputs, training steps,
float64 finite differences)."""
import json
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, optimizers
from gpu_dl.models import Sequential, load_model
from test_nested_models import _check_model_gradients


def _dense_model(structure, dtype="float32", seed=0, name="out"):
    """Input (3,) -> Dense(2, name=name), its output given as ``structure`` ("dict", "list", "tuple", "plain")."""
    backend.set_random_seed(seed)
    inp = gpu_dl.Input((3,), dtype=dtype)
    out = layers.Dense(2, name=name, dtype=dtype)(inp)
    outputs = {"dict": {name: out}, "list": [out], "tuple": (out,), "plain": out}[structure]
    return gpu_dl.Model(inp, outputs)


def _expected(model, x):
    kernel, bias = model.get_weights()
    return x @ kernel + bias


def _data(rng, *shape):
    return rng.standard_normal(shape).astype("float32")


@pytest.mark.parametrize("structure", ["dict", "list", "tuple", "plain"])
def test_calls_and_predict_give_keras_structures(xp, rng, structure):
    model = _dense_model(structure)
    x = _data(rng, 5, 3)
    expected = _expected(model, x)
    out = model(xp.asarray(x))
    predicted = model.predict(x, verbose=0)
    on_batch = model.predict_on_batch(x)
    streamed = model.predict(((part,) for part in (x[:3], x[3:])), verbose=0)      # from a generator
    symbolic = model(gpu_dl.Input((3,)))
    if structure == "dict":
        assert list(out) == list(predicted) == list(on_batch) == list(streamed) == list(symbolic) == ["out"]
        out, predicted, on_batch, symbolic = out["out"], predicted["out"], on_batch["out"], symbolic["out"]
        streamed = streamed["out"]
    elif structure in ("list", "tuple"):
        kind = list if structure == "list" else tuple
        assert type(symbolic) is kind and len(symbolic) == 1
        symbolic = symbolic[0]
    assert isinstance(predicted, numpy.ndarray) and isinstance(on_batch, numpy.ndarray)
    numpy.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(on_batch, expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(streamed, expected, rtol=1e-5, atol=1e-6)
    assert symbolic.shape == (None, 2)


def test_several_outputs_made_as_a_tuple_come_back_as_a_tuple(xp, rng):
    backend.set_random_seed(1)
    inp = gpu_dl.Input((3,))
    first, second = layers.Dense(2, name="first"), layers.Dense(1, name="second")
    model = gpu_dl.Model(inp, (first(inp), second(inp)))
    x = _data(rng, 4, 3)
    out, predicted, symbolic = model(xp.asarray(x)), model.predict(x, verbose=0), model(gpu_dl.Input((3,)))
    assert type(out) is type(predicted) is type(symbolic) is tuple
    for got, layer in zip(predicted, (first, second)):
        kernel, bias = layer.get_weights()
        numpy.testing.assert_allclose(got, x @ kernel + bias, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(backend.to_numpy(out[1]), predicted[1], rtol=1e-6)
    assert [t.shape for t in symbolic] == [(None, 2), (None, 1)]


@pytest.mark.parametrize("structure", ["dict", "list", "plain"])
def test_targets_as_an_array_a_list_of_one_or_keyed_like_the_output(rng, structure):
    x, y = _data(rng, 6, 3), _data(rng, 6, 2)
    forms = {"array": y, "list": [y]}
    if structure == "dict":
        forms["dict"] = {"out": y}
    losses = {}
    for form, targets in forms.items():
        model = _dense_model(structure, seed=3)
        expected = float(numpy.mean((_expected(model, x) - y) ** 2))
        model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
        assert model.evaluate(x, targets, verbose=0) == pytest.approx(expected, rel=1e-5)
        losses[form] = model.fit(x, targets, batch_size=6, epochs=2, verbose=0).history["loss"]
        before_step = model.test_on_batch(x, targets)
        assert model.train_on_batch(x, y) == pytest.approx(before_step, rel=1e-5)
        assert model.fit(x, y, validation_data=(x, targets), verbose=0).history["val_loss"]
    assert all(numpy.allclose(v, losses["array"], rtol=1e-6) for v in losses.values())


@pytest.mark.parametrize("structure", ["dict", "list", "plain"])
def test_targets_keyed_otherwise_are_refused_before_anything_changes(rng, structure):
    model = _dense_model(structure, seed=4)
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    x, y = _data(rng, 4, 3), _data(rng, 4, 2)
    match = r"one output \['out'\]: `y` as a dict must hold its targets under that key, got the keys \['other'\]" \
        if structure == "dict" else r"has one output: pass `y` as an array \(or a list of one array\), not a dict"
    with pytest.raises(ValueError, match=match):
        model.fit(x, {"other": y}, verbose=0)
    with pytest.raises(ValueError, match=match.replace("`y`", "`validation_data\\[1\\]`")):
        model.fit(x, y, validation_data=(x, {"other": y}), verbose=0)
    for a, b in zip(model.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("functional", [False, True])
def test_one_output_takes_a_loss_list_of_one_and_metrics_per_output(rng, functional):
    x, y = _data(rng, 6, 3), _data(rng, 6, 2)
    results = []
    for loss, metrics in (("mse", ["mae"]), (["mse"], [["mae"]])):
        backend.set_random_seed(5)
        model = _dense_model("plain") if functional else Sequential([gpu_dl.Input((3,)), layers.Dense(2)])
        model.compile(optimizer="sgd", loss=loss, metrics=metrics)
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
        prediction = model.predict(x, verbose=0)
        assert logs["mae"] == pytest.approx(float(numpy.mean(numpy.abs(prediction - y))), rel=1e-5)
        results.append(logs)
    assert results[0] == pytest.approx(results[1])


@pytest.mark.parametrize("functional", [False, True])
def test_one_output_files_compiled_with_a_list_of_one_loss_and_metrics_lists_load_compiled(tmp_path, rng,
                                                                                           functional):
    # As Keras writes a model compiled with loss=["mse"], metrics=[[MeanAbsoluteError(), "mse"]].
    backend.set_random_seed(3)
    model = _dense_model("plain") if functional else Sequential([gpu_dl.Input((3,)), layers.Dense(2, name="out")])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    model.save(tmp_path / "m.keras")
    mae = {"module": "keras.metrics", "class_name": "MeanAbsoluteError", "config": {"name": "m_a_e"},
           "registered_name": None}
    with zipfile.ZipFile(tmp_path / "m.keras") as a, zipfile.ZipFile(tmp_path / "lists.keras", "w") as b:
        for name in a.namelist():
            data = a.read(name)
            if name == "config.json":
                config = json.loads(data)
                config["compile_config"].update(loss=["mse"], metrics=[[mae, "mse"]])
                data = json.dumps(config).encode()
            b.writestr(name, data)
    loaded = load_model(tmp_path / "lists.keras")
    assert loaded.loss.name == "mse" and loaded._metric_identifiers[1:] == ["mse"]
    x, y = _data(rng, 6, 3), _data(rng, 6, 2)
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs == pytest.approx({"loss": expected["loss"], "m_a_e": expected["mae"], "mse": expected["mse"]})


def test_compute_output_shape_gives_the_outputs_structure(rng):
    for structure, expected in (("dict", {"out": (None, 2)}), ("list", [(None, 2)]), ("tuple", ((None, 2),)),
                                ("plain", (None, 2))):
        model = _dense_model(structure)
        got = model.compute_output_shape((None, 3))
        assert got == expected and type(got) is type(expected)
        assert model.output_shape == (None, 2)
    inp = gpu_dl.Input((3,))
    first, second = layers.Dense(2, name="first")(inp), layers.Dense(1, name="second")(inp)
    model = gpu_dl.Model(inp, {"second": second, "first": first})
    # Keras's order of the keys: as given for the model's own input shape, sorted for another
    assert list(model.compute_output_shape((None, 3)).items()) == [("second", (None, 1)), ("first", (None, 2))]
    assert list(model.compute_output_shape((7, 3)).items()) == [("first", (7, 2)), ("second", (7, 1))]
    assert model.output_shape == [(None, 2), (None, 1)]
    assert gpu_dl.Model(inp, (first, second)).compute_output_shape([(5, 3)]) == ((5, 2), (5, 1))
    # A Sequential gives its last layer's structure; the models holding a model read its flat shapes.
    stack = Sequential([gpu_dl.Input((3,)), model])
    assert stack.compute_output_shape((None, 3)) == {"second": (None, 1), "first": (None, 2)}
    assert stack.output_shape == [(None, 2), (None, 1)]
    inner = _dense_model("dict", name="inner_out")
    for holder in (Sequential([gpu_dl.Input((3,)), inner, layers.Dense(4)]),
                   gpu_dl.Model(inp, layers.Dense(4)(inner(inp)["inner_out"]))):
        assert holder.compute_output_shape((None, 3)) == (None, 4)
        assert holder.predict(_data(rng, 2, 3), verbose=0).shape == (2, 4)
    assert layers.TimeDistributed(inner).compute_output_shape((None, 5, 3)) == (None, 5, 2)


# ------------------------------------------------------------------ inside other models
def _nested(structure, dtype="float32", seed=6):
    """An inner model of one output given as ``structure`` inside a functional model, a Sequential and a
    TimeDistributed, and the same Dense layers in plain models."""
    inner = _dense_model(structure, dtype, seed, name="inner_out")
    inp = gpu_dl.Input((3,), dtype=dtype)
    out = inner(inp)
    out = out["inner_out"] if structure == "dict" else out[0] if structure in ("list", "tuple") else out
    graph = gpu_dl.Model(inp, layers.Dense(1, dtype=dtype)(out))
    stack = Sequential([gpu_dl.Input((3,), dtype=dtype), inner, layers.Dense(1, dtype=dtype)])
    steps = Sequential([gpu_dl.Input((4, 3), dtype=dtype), layers.TimeDistributed(inner), layers.Flatten(dtype=dtype),
                        layers.Dense(1, dtype=dtype)])
    return inner, graph, stack, steps


@pytest.mark.parametrize("structure", ["dict", "list", "tuple"])
def test_inner_models_of_each_structure_run_as_their_layers(xp, rng, structure):
    inner, graph, stack, steps = _nested(structure)
    x = _data(rng, 5, 3)
    hidden = _expected(inner, x)
    for model in (graph, stack):
        kernel, bias = model.layers[-1].get_weights()
        got = model(xp.asarray(x))
        numpy.testing.assert_allclose(backend.to_numpy(got), hidden @ kernel + bias, rtol=1e-5, atol=1e-6)
    seq = _data(rng, 5, 4, 3)
    kernel, bias = steps.layers[-1].get_weights()
    expected = (seq @ inner.get_weights()[0] + inner.get_weights()[1]).reshape(5, 8) @ kernel + bias
    numpy.testing.assert_allclose(steps.predict(seq, verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("structure", ["dict", "list"])
def test_gradients_through_inner_models_of_each_structure_match_finite_differences(xp, rng, structure):
    _, graph, stack, steps = _nested(structure, dtype="float64", seed=7)
    for model, shape in ((graph, (4, 3)), (stack, (4, 3)), (steps, (2, 4, 3))):
        _check_model_gradients(model, [xp.asarray(rng.standard_normal(shape))], rng)


def test_a_dict_output_model_round_trips_with_its_structure(tmp_path, rng):
    model = _dense_model("dict", seed=8)
    x, y = _data(rng, 4, 3), _data(rng, 4, 2)
    model.compile(optimizer="adam", loss={"out": "mse"}, metrics={"out": ["mae"]})
    model.fit(x, {"out": y}, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    got = loaded.predict(x, verbose=0)
    assert list(got) == ["out"]
    numpy.testing.assert_array_equal(got["out"], model.predict(x, verbose=0)["out"])
    assert loaded.train_on_batch(x, {"out": y}) == pytest.approx(model.train_on_batch(x, [y]), rel=1e-6)


def test_a_sequential_ending_in_a_dict_output_model_takes_its_targets_keyed(rng):
    x, y = _data(rng, 6, 3), _data(rng, 6, 2)
    losses = []
    for targets in (y, [y], {"out": y}):
        model = Sequential([gpu_dl.Input((3,)), _dense_model("dict", seed=12)])
        model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
        predicted = model.predict(x, verbose=0)
        assert list(predicted) == ["out"]
        numpy.testing.assert_allclose(predicted["out"], _expected(model.layers[0], x), rtol=1e-5, atol=1e-6)
        expected = float(numpy.mean((predicted["out"] - y) ** 2))
        assert model.evaluate(x, targets, verbose=0) == pytest.approx(expected, rel=1e-5)
        losses.append(model.fit(x, targets, batch_size=3, epochs=2, shuffle=False, verbose=0).history["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-6) and losses[2] == pytest.approx(losses[0], rel=1e-6)
    with pytest.raises(ValueError, match=r"the one output \['out'\]: `y` as a dict must hold its targets under that"):
        model.fit(x, {"other": y}, verbose=0)
