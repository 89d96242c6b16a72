"""Models used as layers of other models, as in Keras 3: Sequential and functional models inside Sequential and
functional models. Each nested model is checked against the same layers in one flat model with the same weights
(outputs, gradients, losses with the regularization penalties, weights after a few steps), and in float64 against
finite differences; then shared inner models (siamese), frozen inner models, the training flag and masks, saving
and resumed training, summary, plot_model, and the refused trees and shapes."""
import io
import json
import re
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, optimizers
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import Functional, Sequential, load_model
from gradcheck import assert_gradient


# ------------------------------------------------------------------ the models, nested and flat
def base_layers(dtype="float32"):
    """The layers of the inner Sequential 'base': a regularised Dense, BatchNormalization, an activity-regularised
    Dense."""
    return [layers.Dense(5, activation="relu", kernel_regularizer="l2", dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            layers.Dense(4, activation="tanh", activity_regularizer="l1", dtype=dtype)]


def base_model(dtype="float32", name="base"):
    return Sequential([gpu_dl.Input((6,), dtype=dtype)] + base_layers(dtype), name=name)


def encoder_layers(dtype="float32"):
    return [layers.Dense(4, activation="tanh", dtype=dtype), layers.Dense(3, dtype=dtype)]


def encoder_model(dtype="float32", name="encoder"):
    """The inner functional model: two Dense layers from an input of 4 features."""
    inp = gpu_dl.Input((4,), dtype=dtype)
    first, second = encoder_layers(dtype)
    return gpu_dl.Model(inp, second(first(inp)), name=name)


def graph_models(dtype="float32", seed=0):
    """The same graph twice: with the inner models (Dense -> base -> encoder), and with their layers called in
    one flat functional model."""
    backend.set_random_seed(seed)
    inp = gpu_dl.Input((7,), dtype=dtype, name="x")
    pre = layers.Dense(6, name="pre", dtype=dtype)
    nested = gpu_dl.Model(inp, encoder_model(dtype)(base_model(dtype)(pre(inp))), name="outer")
    flat_in = gpu_dl.Input((7,), dtype=dtype)
    x = layers.Dense(6, dtype=dtype)(flat_in)
    for layer in base_layers(dtype) + encoder_layers(dtype):
        x = layer(x)
    return nested, gpu_dl.Model(flat_in, x)


def _data(rng, *shape, n=8):
    return rng.standard_normal((n,) + shape).astype("float32")


def _assert_trains_as(nested, flat, x, y, steps=3):
    """``flat`` given ``nested``'s weights: the same outputs, then the same losses (penalties included) and weights
    step after step of SGD."""
    flat.set_weights(nested.get_weights())
    numpy.testing.assert_allclose(nested.predict(x, verbose=0), flat.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    nested.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    flat.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    for step in range(steps):
        assert nested.train_on_batch(x, y) == pytest.approx(flat.train_on_batch(x, y), rel=1e-6), f"step {step}"
    for a, b in zip(nested.get_weights(), flat.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert nested.evaluate(x, y, verbose=0) == pytest.approx(flat.evaluate(x, y, verbose=0), rel=1e-6)


def _check_model_gradients(model, xs, rng):
    """Inputs' and weights' gradients from backward against finite differences of sum(model(x) * w) plus the
    activity penalties, in float64."""
    xp = array_module(xs[0])
    several = len(xs) > 1

    def run(inputs):
        return model.forward(inputs if several else inputs[0], training=True)

    out = run(xs)
    outs = out if isinstance(out, list) else [out]
    ws = [xp.asarray(rng.standard_normal(o.shape)) for o in outs]

    def objective(inputs):
        out = run(inputs)
        value = sum((o * w).sum() for o, w in zip(out if isinstance(out, list) else [out], ws))
        return value + sum(layer.activity_regularizer(a) / a.shape[0] for layer, a in model._activity_outputs())

    objective(xs)
    grads = model.backward(ws if isinstance(out, list) else ws[0])
    grads = grads if several else [grads]
    for i in range(len(xs)):
        assert_gradient(lambda v, i=i: objective(xs[:i] + [v] + xs[i + 1:]), xs[i], grads[i], rng,
                        what=f"model input {i}")
    for var in model.trainable_weights:
        objective(xs)
        model.backward(ws if isinstance(out, list) else ws[0], input_gradient=False)
        grad, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return objective(xs)
        assert_gradient(of_weight, original.copy(), grad, rng, what=var.path)
        var.value[...] = original


# ------------------------------------------------------------------ forward and training against the flat model
def test_a_sequential_in_a_sequential_trains_as_the_flat_stack(xp, rng):
    backend.set_random_seed(0)
    base = base_model()
    nested = Sequential([base, layers.Dense(3, name="head")], name="outer")
    flat = Sequential([gpu_dl.Input((6,))] + base_layers() + [layers.Dense(3)])
    assert nested.built and nested.input_shape == (None, 6) and nested.output_shape == (None, 3)
    assert nested.layers == [base, nested.get_layer("head")] and nested.get_layer("base") is base
    # Keras's order: the inner model's weights in its place, the non-trainable moving statistics among them.
    # (the head, built in the outer model's name scope, has its name in its path, as in Keras)
    assert [v.path for v in nested.weights] == [v.path for v in base.weights] + ["outer/head/kernel",
                                                                                 "outer/head/bias"]
    assert [v.shape for v in nested.weights] == [v.shape for v in flat.weights]
    assert nested.count_params() == flat.count_params() == base.count_params() + 15
    assert [v.path for v in nested.trainable_weights] == \
        [v.path for v in base.trainable_weights] + ["outer/head/kernel", "outer/head/bias"]
    _assert_trains_as(nested, flat, _data(rng, 6), _data(rng, 3))


def test_sequential_add_takes_a_model(xp, rng):
    backend.set_random_seed(1)
    nested = Sequential(name="added")
    nested.add(encoder_model())
    nested.add(layers.Dense(2))
    assert nested.built and nested.input_spec == (None, 4) and nested.output_shape == (None, 2)
    flat = Sequential([gpu_dl.Input((4,))] + encoder_layers() + [layers.Dense(2)])
    _assert_trains_as(nested, flat, _data(rng, 4), _data(rng, 2))


def test_models_called_in_a_functional_graph_train_as_the_flat_graph(xp, rng):
    nested, flat = graph_models()
    assert [type(l).__name__ for l in nested.layers] == ["InputLayer", "Dense", "Sequential", "Functional"]
    call = nested.get_layer("base")._inbound_nodes[-1]
    assert call.layer.name == "base" and len(call.outputs) == 1          # one node for the whole inner model
    _assert_trains_as(nested, flat, _data(rng, 7), _data(rng, 3))


def test_an_unbuilt_sequential_called_on_a_tensor_is_built_for_it(xp, rng):
    backend.set_random_seed(2)
    inner = Sequential(encoder_layers(), name="unbuilt")
    assert not inner.built
    inp = gpu_dl.Input((4,))
    model = gpu_dl.Model(inp, layers.Dense(2)(inner(inp)))
    assert inner.built and inner.input_spec == (None, 4)
    flat = Sequential([gpu_dl.Input((4,))] + encoder_layers() + [layers.Dense(2)])
    _assert_trains_as(model, flat, _data(rng, 4), _data(rng, 2))


def test_a_model_in_a_model_in_a_model(xp, rng):
    backend.set_random_seed(3)
    innermost = encoder_model(name="innermost")
    middle = Sequential([innermost, layers.Dense(3, activation="relu", name="mid")], name="middle")
    inp = gpu_dl.Input((4,))
    top = gpu_dl.Model(inp, layers.Dense(2, name="top")(middle(inp)), name="top_model")
    flat = Sequential([gpu_dl.Input((4,))] + encoder_layers() + [layers.Dense(3, activation="relu"),
                                                                 layers.Dense(2)])
    # paths as Keras gives them: "mid" is built in the scope of the Sequential model holding it
    assert [v.path.split("/")[0] for v in top.weights] == \
        [l.name for l in innermost.layers[1:] for _ in range(2)] + ["middle", "middle", "top", "top"]
    assert [v.path for v in middle.layers[1].weights] == ["middle/mid/kernel", "middle/mid/bias"]
    _assert_trains_as(top, flat, _data(rng, 4), _data(rng, 2))


def test_an_inner_model_of_several_inputs_and_outputs(xp, rng):
    backend.set_random_seed(4)

    def two_by_two(concat, first, second, a, b):
        joined = concat([a, b])
        return [first(joined), second(joined)]

    def parts():
        return layers.Concatenate(), layers.Dense(2, activation="tanh"), layers.Dense(1)
    i, j = gpu_dl.Input((3,), name="i"), gpu_dl.Input((2,), name="j")
    inner = gpu_dl.Model([i, j], two_by_two(*parts(), i, j), name="pair")
    a, b = gpu_dl.Input((3,)), gpu_dl.Input((2,))
    u, v = inner([a, b])
    assert u.shape == (None, 2) and v.shape == (None, 1)
    nested = gpu_dl.Model([a, b], layers.Dense(2)(layers.Concatenate()([u, v])))
    fa, fb = gpu_dl.Input((3,)), gpu_dl.Input((2,))
    fu, fv = two_by_two(*parts(), fa, fb)
    flat = gpu_dl.Model([fa, fb], layers.Dense(2)(layers.Concatenate()([fu, fv])))
    _assert_trains_as(nested, flat, [_data(rng, 3), _data(rng, 2)], _data(rng, 2))
    # Called on arrays, the inner model gives its outputs in its own structure.
    outs = inner([xp.asarray(_data(rng, 3)), xp.asarray(_data(rng, 2))])
    assert isinstance(outs, list) and [o.shape for o in outs] == [(8, 2), (8, 1)]


# ------------------------------------------------------------------ gradients
def test_gradients_through_nested_models_match_finite_differences(xp, rng):
    nested, _ = graph_models(dtype="float64", seed=5)
    x = xp.asarray(rng.standard_normal((5, 7)))
    _check_model_gradients(nested, [x], rng)


def test_gradients_through_three_levels_and_several_inputs_match_finite_differences(xp, rng):
    backend.set_random_seed(6)
    d = "float64"
    i, j = gpu_dl.Input((3,), dtype=d), gpu_dl.Input((3,), dtype=d)
    h = layers.Dense(3, activation="tanh", activity_regularizer="l2", dtype=d)(layers.Add(dtype=d)([i, j]))
    inner = gpu_dl.Model([i, j], [h, layers.Multiply(dtype=d)([h, j])], name="inner")
    k = gpu_dl.Input((3,), dtype=d)
    u, v = inner([k, layers.Dense(3, dtype=d)(k)])
    middle = gpu_dl.Model(k, layers.Subtract(dtype=d)([u, v]), name="middle")
    top = Sequential([gpu_dl.Input((3,), dtype=d), middle, layers.Dense(2, dtype=d)], name="top")
    _check_model_gradients(top, [xp.asarray(rng.standard_normal((4, 3)))], rng)


# ------------------------------------------------------------------ one inner model called twice
def siamese(dtype="float32", seed=7):
    """The inner 'encoder' (with BatchNormalization and an activity regularizer) called on two inputs, against the
    same layers shared by the two branches of a flat model."""
    backend.set_random_seed(seed)

    def encoder_parts():
        return [layers.Dense(4, activation="tanh", activity_regularizer="l2", dtype=dtype),
                layers.BatchNormalization(dtype=dtype), layers.Dense(3, dtype=dtype)]

    def branch(parts, x):
        for layer in parts:
            x = layer(x)
        return x
    inp = gpu_dl.Input((5,), dtype=dtype)
    encoder = gpu_dl.Model(inp, branch(encoder_parts(), inp), name="encoder")
    a, b = gpu_dl.Input((5,), dtype=dtype, name="a"), gpu_dl.Input((5,), dtype=dtype, name="b")
    head = layers.Dense(2, name="head", dtype=dtype)
    nested = gpu_dl.Model([a, b], head(layers.Subtract(name="diff", dtype=dtype)([encoder(a), encoder(b)])),
                          name="siamese")
    fa, fb = gpu_dl.Input((5,), dtype=dtype), gpu_dl.Input((5,), dtype=dtype)
    parts = encoder_parts()
    flat = gpu_dl.Model([fa, fb], layers.Dense(2, dtype=dtype)(layers.Subtract(dtype=dtype)(
        [branch(parts, fa), branch(parts, fb)])))
    return nested, flat, encoder


def test_one_inner_model_called_twice_shares_its_weights(xp, rng):
    nested, flat, encoder = siamese()
    assert [l.name for l in nested.layers].count("encoder") == 1 and len(nested.weights) == len(flat.weights)
    flat.set_weights(nested.get_weights())
    xs = [xp.asarray(_data(rng, 5, n=6)), xp.asarray(_data(rng, 5, n=6))]
    w = xp.asarray(_data(rng, 2, n=6))
    for model in (nested, flat):
        model.forward(xs, training=True)
    dx_nested, dx_flat = nested.backward(w), flat.backward(w)
    for a, b in zip(dx_nested, dx_flat):
        numpy.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-7)
    # Each call's backward used its own saved state, and the weights got the sum over both calls.
    for a, b in zip(nested.trainable_weights, flat.trainable_weights):
        numpy.testing.assert_allclose(to_numpy(a.grad), to_numpy(b.grad), rtol=1e-5, atol=1e-6)
    # Both calls' activity penalties count.
    assert len(nested._activity_outputs()) == len(flat._activity_outputs()) == 2
    _assert_trains_as(nested, flat, [_data(rng, 5), _data(rng, 5)], _data(rng, 2))


def test_siamese_gradients_match_finite_differences(xp, rng):
    nested, _, _ = siamese(dtype="float64", seed=8)
    _check_model_gradients(nested, [xp.asarray(rng.standard_normal((4, 5))),
                                    xp.asarray(rng.standard_normal((4, 5)))], rng)


def test_an_inner_model_with_arithmetic_called_twice_keeps_each_calls_state(xp, rng, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")        # a wide terminal, a wide table: no line is cut, no label wraps
    # Operators on symbolic tensors are operations of the inner graph, with per-call state of their own.
    backend.set_random_seed(19)
    d = "float64"
    inp = gpu_dl.Input((4,), dtype=d)
    h = layers.Dense(3, activation="tanh", dtype=d)(inp)
    inner = gpu_dl.Model(inp, 0.5 * (h * h) - abs(h) / 3.0, name="with_ops")
    a, b = gpu_dl.Input((4,), dtype=d), gpu_dl.Input((4,), dtype=d)
    model = gpu_dl.Model([a, b], layers.Dense(2, dtype=d)(inner(a) * inner(b)))
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()), expand_nested=True, line_length=200)
    # Expanded, the inner model lists its layers, not the operations between them (as Keras does).
    assert [r[0] for r in _rows("\n".join(lines)) if "└" in r[0]] == \
        [f"└ {l.name} ({type(l).__name__})" for l in inner.layers]
    _check_model_gradients(model, [xp.asarray(rng.standard_normal((3, 4))), xp.asarray(rng.standard_normal((3, 4)))],
                           rng)


# ------------------------------------------------------------------ frozen inner models, training flag, masks
def test_a_frozen_inner_model_keeps_its_weights_and_the_head_trains(xp, rng):
    backend.set_random_seed(9)
    base = base_model()
    head = layers.Dense(3, name="head")
    model = Sequential([base, head])
    x, y = _data(rng, 6, n=16), _data(rng, 3, n=16)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)          # trains the base's statistics too
    base.trainable = False
    assert not any(layer.trainable for layer in base.layers)
    assert model.trainable_weights == head.trainable_weights
    assert model.non_trainable_weights == base.weights
    frozen = base.get_weights()
    before = head.get_weights()
    # As in Keras 3, BatchNormalization in a frozen model runs in inference mode: training=True changes nothing.
    numpy.testing.assert_allclose(to_numpy(model(x, training=True)), to_numpy(model(x, training=False)), rtol=1e-6)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(base.get_weights(), frozen):
        numpy.testing.assert_array_equal(a, b)
    assert all(numpy.abs(a - b).max() > 0 for a, b in zip(head.get_weights(), before))
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    assert f" Trainable params: {head.count_params()} (60.00 B)" in lines
    base.trainable = True
    assert all(layer.trainable for layer in base.layers) and len(model.trainable_weights) == 8


def test_the_training_flag_reaches_the_inner_layers(xp, rng):
    backend.set_random_seed(10)
    inner = Sequential([gpu_dl.Input((20,)), layers.Dropout(0.5)], name="inner")
    inp = gpu_dl.Input((20,))
    model = gpu_dl.Model(inp, inner(inp))
    x = numpy.ones((4, 20), "float32")
    numpy.testing.assert_array_equal(to_numpy(model(x, training=False)), x)
    dropped = to_numpy(model(x, training=True))
    assert (dropped == 0).any() and set(numpy.unique(dropped)) <= {0.0, 2.0}
    numpy.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_masks_reach_the_inner_model_and_leave_it(xp, rng):
    backend.set_random_seed(11)
    ids = numpy.array([[3, 4, 0, 0, 0], [5, 1, 2, 0, 0], [1, 2, 3, 4, 5]], "float32")
    inner = Sequential([layers.LSTM(3, return_sequences=True), layers.GRU(2, return_sequences=True)], name="rnn")
    nested = Sequential([gpu_dl.Input((5,)), layers.Embedding(6, 3, mask_zero=True), inner, layers.SimpleRNN(2)])
    flat = Sequential([gpu_dl.Input((5,)), layers.Embedding(6, 3, mask_zero=True),
                       layers.LSTM(3, return_sequences=True), layers.GRU(2, return_sequences=True),
                       layers.SimpleRNN(2)])
    flat.set_weights(nested.get_weights())
    numpy.testing.assert_allclose(nested.predict(ids, verbose=0), flat.predict(ids, verbose=0), rtol=1e-6)
    inner_out = inner.forward(backend.to_device(numpy.ones((3, 5, 3), "float32")),
                              mask=backend.to_device(ids != 0))
    assert inner_out.shape == (3, 5, 2)
    numpy.testing.assert_array_equal(to_numpy(inner.output_mask), ids != 0)
    # In a functional graph the mask passes into the inner model and out of it, as along any edge.
    inp = gpu_dl.Input((5,))
    graph = gpu_dl.Model(inp, inner(layers.Embedding(6, 3, mask_zero=True)(inp)))
    graph.forward(backend.to_device(ids))
    numpy.testing.assert_array_equal(to_numpy(graph.output_mask), ids != 0)


# ------------------------------------------------------------------ saving
def _h5_entries(path):
    import h5py
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
        found = {}

        def note(name, obj):          # returns None: visititems stops at the first other value
            found[name] = getattr(obj, "shape", None)
        h5.visititems(note)
        config = json.loads(archive.read("config.json"))
    return found, config


def test_saved_file_holds_the_inner_models_in_keras_form(tmp_path):
    nested, _ = graph_models(seed=12)
    nested.save(tmp_path / "m.keras")
    entries, config = _h5_entries(tmp_path / "m.keras")
    assert entries["layers/sequential/layers/dense/vars/0"] == (6, 5)
    assert entries["layers/sequential/layers/batch_normalization/vars/3"] == (5,)
    assert entries["layers/sequential/layers/dense_1/vars/1"] == (4,)
    assert entries["layers/functional/layers/dense_1/vars/0"] == (4, 3)
    assert "layers/functional/layers/input_layer/vars" in entries and "layers/sequential/vars" in entries
    by_name = {entry["name"]: entry for entry in config["config"]["layers"]}
    base, encoder = by_name["base"], by_name["encoder"]
    assert (base["module"], base["class_name"], base["registered_name"]) == ("keras", "Sequential", None)
    assert base["build_config"] == {"input_shape": [None, 6]} and base["compile_config"] == {}
    assert [e["class_name"] for e in base["config"]["layers"]] == \
        ["InputLayer", "Dense", "BatchNormalization", "Dense"]
    assert (encoder["module"], encoder["class_name"]) == ("keras.src.models.functional", "Functional")
    assert encoder["build_config"] == {"input_shape": None} and encoder["inbound_nodes"][0]["kwargs"] == \
        {"mask": None}
    # Keras counts a functional model's calls from 1 in output_layers, from 0 in the calls it records.
    assert config["config"]["output_layers"] == ["encoder", 1, 0]
    again = Functional.from_config(nested.get_config())
    assert [type(l).__name__ for l in again.layers] == ["InputLayer", "Dense", "Sequential", "Functional"]


def test_save_and_load_predict_the_same_and_resume_training(tmp_path, rng):
    x, y = _data(rng, 7, n=32), _data(rng, 3, n=32)

    def build():
        model, _ = graph_models(seed=13)
        model.compile(optimizer="adam", loss="mse")
        return model

    def fit(model, epochs):
        model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0)

    straight = build()
    fit(straight, 4)
    first = build()
    fit(first, 2)
    first.save(tmp_path / "half.keras")
    loaded = load_model(tmp_path / "half.keras")
    assert loaded.optimizer.iterations == 8
    assert [type(l).__name__ for l in loaded.layers] == ["InputLayer", "Dense", "Sequential", "Functional"]
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), first.predict(x, verbose=0))
    fit(loaded, 2)
    for a, b in zip(straight.get_weights(), loaded.get_weights()):
        numpy.testing.assert_array_equal(a, b)

    first.save_weights(tmp_path / "half.weights.h5")
    fresh = build()
    fresh.load_weights(tmp_path / "half.weights.h5")
    fit(fresh, 2)
    for a, b in zip(straight.get_weights(), fresh.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_nested_sequentials_and_a_compiled_inner_model_round_trip(tmp_path, rng):
    backend.set_random_seed(14)
    inner = encoder_model(name="inner")
    inner.compile(optimizer="sgd", loss="mse")
    inner.fit(_data(rng, 4), _data(rng, 3), verbose=0)
    middle = Sequential([inner, layers.Dense(3, name="mid")], name="middle")
    top = Sequential([middle, layers.Dense(2, name="top")], name="top_model")
    top.compile(optimizer="adam", loss="mse")
    x = _data(rng, 4)
    top.fit(x, _data(rng, 2), verbose=0)
    top.save(tmp_path / "m.keras")
    entries, config = _h5_entries(tmp_path / "m.keras")
    assert entries["layers/sequential/layers/functional/layers/dense/vars/0"] == (4, 4)
    assert entries["layers/sequential/layers/functional/optimizer/vars/0"] == ()
    assert entries["optimizer/vars/0"] == ()
    nested_entry = config["config"]["layers"][1]["config"]["layers"][1]
    assert nested_entry["class_name"] == "Functional" and nested_entry["compile_config"]["loss"] is not None
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), top.predict(x, verbose=0))
    loaded_inner = loaded.get_layer("middle").get_layer("inner")
    assert loaded_inner.compiled and loaded_inner.optimizer.iterations == inner.optimizer.iterations == 1
    clone = Sequential.from_config(top.get_config())
    assert [type(l).__name__ for l in clone.layers] == ["Sequential", "Dense"]
    assert [type(l).__name__ for l in clone.layers[0].layers] == ["Functional", "Dense"]


def test_an_inner_sequential_that_grows_after_it_was_added(rng):
    # The outer Sequential keeps its stack's output shapes; a layer added to the inner model changes them.
    inner = Sequential([gpu_dl.Input((4,)), layers.Dense(3)], name="inner")
    outer = Sequential([inner], name="outer")
    assert outer.output_shape == (None, 3)
    inner.add(layers.Dense(5))
    outer.add(layers.Dense(2, name="head"))
    assert outer.get_layer("head").input_spec == (None, 5)
    assert outer.predict(_data(rng, 4), verbose=0).shape == (8, 2)
    inner.pop()
    assert outer.output_shape == (None, 2) and outer.compute_output_shape((None, 4)) == (None, 2)


def test_weights_of_another_inner_model_are_refused_before_anything_changes(tmp_path, rng):
    backend.set_random_seed(15)
    model = Sequential([base_model(), layers.Dense(3)])
    model.save_weights(tmp_path / "w.weights.h5")
    other = Sequential([Sequential([gpu_dl.Input((6,)), layers.Dense(5), layers.BatchNormalization(),
                                    layers.Dense(5)]), layers.Dense(3)])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"layers/sequential/layers/dense_1/vars.*shapes \[\(5, 4\), \(4,\)\]"):
        other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(other.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ summary and plot
def _rows(text):
    """The table's rows as lists of cell texts."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def test_summary_shows_an_inner_model_as_one_row_and_expands_it(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")        # a wide terminal: no line is cut
    nested, _ = graph_models(seed=16)
    lines = []
    nested.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    rows = _rows("\n".join(lines))
    assert [r[0] for r in rows] == ["x (InputLayer)", "pre (Dense)", "base (Sequential)", "encoder (Functional)"]
    assert rows[2][1:] == ["(None, 4)", "79"] and rows[3][1:] == ["(None, 3)", "35"]
    assert " Total params: 162 (648.00 B)" in lines and " Non-trainable params: 10 (40.00 B)" in lines
    lines = []
    nested.summary(print_fn=lambda text: lines.extend(text.splitlines()), expand_nested=True, show_trainable=True,
                   line_length=150)         # wide enough for each label on one line
    rows = _rows("\n".join(lines))
    base, encoder = nested.get_layer("base"), nested.get_layer("encoder")
    assert [r[0] for r in rows] == ["x (InputLayer)", "pre (Dense)", "base (Sequential)"] + \
        [f"└ {l.name} ({type(l).__name__})" for l in base.layers] + ["encoder (Functional)"] + \
        [f"└ {l.name} ({type(l).__name__})" for l in encoder.layers]
    assert [r[1:] for r in rows[3:6]] == [["(None, 5)", "35", "Y"], ["(None, 5)", "20", "Y"], ["(None, 4)", "24", "Y"]]
    assert all(line.startswith("│    └ ") for line in lines if "└ " in line)     # three spaces, as Keras indents
    # A siamese model: one row for the inner model, its two calls in the Connected to column.
    siamese_model, _, _ = siamese()
    lines = []
    siamese_model.summary(print_fn=lambda text: lines.extend(text.splitlines()), expand_nested=True)
    text = "\n".join(lines)
    assert re.search(r"│ encoder \(Functional\)\s+│ \(None, 3\)\s+│\s+55 │ a\[0\]\[0\],", text)
    assert re.search(r"│ diff \(Subtract\) .*│ encoder\[0\]\[0\],", text) and "encoder[1][0]" in text
    assert re.search(r"│    └ dense_\d+ \(Dense\)\s+│ \(None, 4\)\s+│\s+24 │ -", text)


def test_plot_model_draws_an_inner_model_as_one_node_or_a_cluster(tmp_path):
    pytest.importorskip("pydot")
    nested, _ = graph_models(seed=17)

    def graph(expand):
        dot = gpu_dl.utils.model_to_dot(nested, show_layer_names=True, expand_nested=expand)
        text = dot.to_string()
        names = {n: re.search(r"<b>(\w+)</b>", label).group(1)
                 for n, label in re.findall(r"^\s*(\d+) \[label=<(.*?)>, ", text, flags=re.M)}
        edges = {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+) ", text, flags=re.M)}
        return names, edges, text

    names, edges, _ = graph(False)
    assert sorted(names.values()) == ["base", "encoder", "pre", "x"]
    assert edges == {("x", "pre"), ("pre", "base"), ("base", "encoder")}
    names, edges, text = graph(True)
    base, encoder = nested.get_layer("base"), nested.get_layer("encoder")
    inner = [l.name for l in base.layers] + [l.name for l in encoder.layers]
    assert sorted(names.values()) == sorted(["x", "pre"] + inner)
    assert "subgraph cluster_base" in text and "subgraph cluster_encoder" in text
    assert ("pre", base.layers[0].name) in edges and (base.layers[-1].name, encoder.layers[0].name) in edges
    assert (base.layers[0].name, base.layers[1].name) in edges


# ------------------------------------------------------------------ refused
def test_an_inner_model_fed_the_wrong_shape_names_both_models_and_shapes(rng):
    inner = encoder_model(name="enc")
    with pytest.raises(ValueError, match=r"Sequential 'outer': model 'enc' \(Functional\) cannot follow its layers, "
                                         r"which give shape \(None, 5\): .*expects input of shape \(None, 4\)"):
        Sequential([gpu_dl.Input((5,)), inner], name="outer")
    with pytest.raises(ValueError, match=r"Model 'enc' expects input of shape \(None, 4\).*got \(None, 7\)"):
        inner(gpu_dl.Input((7,)))
    seq = Sequential([layers.Dense(3, name="d")], name="seq")
    seq.build((None, 4))
    holder = Sequential([seq, layers.Dense(2)], name="holder")
    with pytest.raises(ValueError, match=r"Model 'holder' expects `x` of shape \(None, 4\).*got \(8, 6\)"):
        holder.predict(_data(rng, 6))
    lazy = Sequential([layers.Dense(2, name="first"), seq], name="lazy")     # seq takes 4 features, Dense gives 2
    with pytest.raises(ValueError, match=r"Model 'lazy'.*Model 'seq' expects `input` of shape \(None, 4\).*"
                                         r"got \(None, 2\)"):
        lazy.predict(_data(rng, 3))
    assert not lazy.get_layer("first").built       # nothing was built for the refused shape


def test_refused_trees_leave_the_models_as_they_were(rng):
    backend.set_random_seed(18)
    inner = base_model(name="inner")
    outer = Sequential([inner, layers.Dense(2, name="head")], name="outer")
    x = _data(rng, 6)
    expected = outer.predict(x, verbose=0)

    def refused(error, match, call):
        with pytest.raises(error, match=match):
            call()
        assert [l.name for l in outer.layers] == ["inner", "head"] and len(inner.layers) == 3
        numpy.testing.assert_array_equal(outer.predict(x, verbose=0), expected)

    # The same model again is taken where it fits what comes before it (as Keras takes it); here it does not.
    refused(ValueError, r"Sequential 'outer': model 'inner' \(Sequential\) cannot follow its layers",
            lambda: outer.add(inner))
    refused(ValueError, r"Model 'outer' \(Sequential\) cannot hold itself \(a cycle\)", lambda: outer.add(outer))
    # A cycle through two models: inner would hold outer, which holds inner.
    refused(ValueError, r"Model 'inner' \(Sequential\) cannot hold itself: it is inside model 'outer'",
            lambda: inner.add(outer))
    # A layer in two places of the tree (inside 'inner' and in 'outer') is taken, as Keras takes it:
    # tests/test_nested_models_more.py.
    a, b = gpu_dl.Input((3,), name="a"), gpu_dl.Input((3,), name="b")
    pair = gpu_dl.Model([a, b], layers.Add()([a, b]), name="pair")
    refused(ValueError, r"Model 'pair' \(Functional\) takes 2 inputs: a model of several inputs can only be a "
                        r"Sequential's very first layer .* it would follow layer 'head'", lambda: outer.add(pair))
    # A dict of tensors is taken by the inputs' names (tests/test_nested_models_more.py), all of them.
    with pytest.raises(ValueError, match=r"'pair' was called on a dict of symbolic tensors without 'b'"):
        pair({"a": gpu_dl.Input((3,)), "c": gpu_dl.Input((3,))})
    assert pair([gpu_dl.Input((3,)), gpu_dl.Input((3,))]).shape == (None, 3)
    assert encoder_model()([gpu_dl.Input((4,))]).shape == (None, 3)     # a list of one tensor for one input
    with pytest.raises(TypeError, match="SpectralNormalization wraps one layer; 'inner' is a model"):
        layers.SpectralNormalization(inner)
