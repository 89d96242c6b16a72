"""More trees of models, as Keras 3 makes them, each checked against the same layers in a plain composition
(outputs, training steps, float64 finite differences) and saved and loaded: a model inside ``TimeDistributed``
(a per-frame encoder), one layer in two places of a tree (weights shared and saved once, gradients summed), an
inner model made with dicts of inputs and outputs; and what stays refused (a wrapped model of several inputs or
outputs or with activity regularizers, a cycle through the wrapper, a dict call without every key, a model of
several inputs after another layer of a Sequential, or of several outputs before one)."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.models import Sequential, load_model
from test_nested_models import _assert_trains_as, _check_model_gradients, _data, _h5_entries


# ------------------------------------------------------------------ TimeDistributed(model)
def frame_layers(dtype="float32"):
    return [layers.Conv2D(3, 3, activation="relu", dtype=dtype), layers.BatchNormalization(dtype=dtype),
            layers.Flatten(dtype=dtype), layers.Dense(4, activation="tanh", dtype=dtype)]


def frame_encoder(dtype="float32", functional=False, name="frame"):
    if not functional:
        return Sequential([gpu_dl.Input((5, 5, 2), dtype=dtype)] + frame_layers(dtype), name=name)
    inp = x = gpu_dl.Input((5, 5, 2), dtype=dtype)
    for layer in frame_layers(dtype):
        x = layer(x)
    return gpu_dl.Model(inp, x, name=name)


def video_models(dtype="float32", functional=False, seed=0):
    """TimeDistributed(encoder) then a Dense head, against each of the encoder's layers in a TimeDistributed of
    its own (BatchNormalization takes its statistics per step either way, as Keras's loop over steps does)."""
    backend.set_random_seed(seed)
    encoder = frame_encoder(dtype, functional)
    nested = Sequential([gpu_dl.Input((3, 5, 5, 2), dtype=dtype), layers.TimeDistributed(encoder, name="per_frame"),
                         layers.Flatten(dtype=dtype), layers.Dense(2, dtype=dtype)], name="video")
    flat = Sequential([gpu_dl.Input((3, 5, 5, 2), dtype=dtype)]
                      + [layers.TimeDistributed(layer) for layer in frame_layers(dtype)]
                      + [layers.Flatten(dtype=dtype), layers.Dense(2, dtype=dtype)])
    return nested, flat, encoder


@pytest.mark.parametrize("functional", [False, True])
def test_a_model_in_time_distributed_trains_as_its_layers_each_wrapped(xp, rng, functional):
    nested, flat, encoder = video_models(functional=functional)
    td = nested.get_layer("per_frame")
    assert td.layer is encoder and nested.output_shape == (None, 2)
    assert nested.weights == encoder.weights + nested.layers[-1].weights
    assert td.count_params() == encoder.count_params() and len(nested.non_trainable_weights) == 2
    _assert_trains_as(nested, flat, _data(rng, 3, 5, 5, 2), _data(rng, 2))
    # The moving statistics moved once per step, as the flat model's did.
    numpy.testing.assert_allclose(encoder.layers[-3].moving_mean.numpy(), flat.layers[1].layer.moving_mean.numpy(),
                                  rtol=1e-6, atol=1e-7)


def test_gradients_through_a_model_in_time_distributed_match_finite_differences(xp, rng):
    nested, _, _ = video_models(dtype="float64", functional=True, seed=1)
    _check_model_gradients(nested, [xp.asarray(rng.standard_normal((2, 3, 5, 5, 2)))], rng)


def test_time_distributed_model_file_layout_and_round_trip(tmp_path, rng):
    nested, _, encoder = video_models(seed=2)
    x, y = _data(rng, 3, 5, 5, 2), _data(rng, 2)
    nested.compile(optimizer="adam", loss="mse")
    nested.fit(x, y, verbose=0)
    nested.save(tmp_path / "m.keras")
    entries, config = _h5_entries(tmp_path / "m.keras")
    # As Keras 3 writes it: the model's groups under the wrapper's 'layer'.
    assert entries["layers/time_distributed/layer/layers/conv2d/vars/0"] == (3, 3, 2, 3)
    assert entries["layers/time_distributed/layer/layers/batch_normalization/vars/3"] == (3,)
    assert entries["layers/time_distributed/layer/layers/dense/vars/0"] == (27, 4)
    wrapped = config["config"]["layers"][1]["config"]["layer"]
    assert (wrapped["class_name"], wrapped["build_config"]) == ("Sequential", {"input_shape": [None, 5, 5, 2]})
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0].layer).__name__ == "Sequential"
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), nested.predict(x, verbose=0))
    assert loaded.train_on_batch(x, y) == pytest.approx(nested.train_on_batch(x, y), rel=1e-6)
    again = Sequential.from_config(nested.get_config())
    assert type(again.layers[0].layer).__name__ == "Sequential"


def test_time_distributed_refuses_what_keras_cannot_run_or_gpu_dl_would_get_wrong():
    a, b = gpu_dl.Input((3,)), gpu_dl.Input((3,))
    pair = gpu_dl.Model([a, b], layers.Add()([a, b]), name="pair")
    with pytest.raises(ValueError, match=r"model 'pair' \(Functional\) has 2 input\(s\) and 1 output\(s\)"):
        layers.TimeDistributed(pair)
    i = gpu_dl.Input((3,))
    two = gpu_dl.Model(i, [layers.Dense(2)(i), layers.Dense(1)(i)], name="two")
    with pytest.raises(ValueError, match=r"model 'two' \(Functional\) has 1 input\(s\) and 2 output\(s\)"):
        layers.TimeDistributed(two)
    # A per-step activity penalty: Keras divides each step's by the batch; refused rather than trained otherwise.
    regularized = Sequential([gpu_dl.Input((3,)), layers.Dense(2, activity_regularizer="l2", name="act")])
    model = Sequential([gpu_dl.Input((4, 3)), layers.TimeDistributed(regularized)])
    with pytest.raises(ValueError, match=r"has layers with an activity regularizer \(act\)"):
        model.predict(numpy.ones((2, 4, 3), "float32"), verbose=0)
    # The wrapper's model belongs to the tree: a cycle is found through it.
    inner = Sequential([gpu_dl.Input((3,)), layers.Dense(3, name="d")], name="inner")
    outer = Sequential([gpu_dl.Input((4, 3)), layers.TimeDistributed(inner)], name="outer")
    with pytest.raises(ValueError, match=r"Model 'inner' \(Sequential\) cannot hold itself: it is inside model "
                                         r"'outer'"):
        inner.add(layers.TimeDistributed(outer))
    with pytest.raises(TypeError, match="SpectralNormalization wraps one layer; 'inner' is a model"):
        layers.SpectralNormalization(inner)


# ------------------------------------------------------------------ one layer in two places of a tree
def shared_trees(kind, dtype="float32", seed=3):
    """A tree of models with one Dense in two places, and the same calls in one flat functional model (where
    that Dense is simply called twice). ``kind``: 'outer' (in an inner functional model and in the outer one),
    'sequential' (in an inner Sequential and in the outer Sequential), 'two_inner' (in two inner models)."""
    backend.set_random_seed(seed)
    d = "float64" if dtype == "float64" else "float32"
    shared = layers.Dense(3, activation="tanh", name="shared", dtype=d)
    other = layers.Dense(3, name="other", dtype=d)
    x = gpu_dl.Input((3,), dtype=d, name="x")
    if kind == "outer":
        i = gpu_dl.Input((3,), dtype=d)
        inner = gpu_dl.Model(i, other(shared(i)), name="inner")
        nested = gpu_dl.Model(x, shared(inner(x)), name="outer")
    elif kind == "sequential":
        inner = Sequential([gpu_dl.Input((3,), dtype=d), shared, other], name="inner")
        nested = Sequential([gpu_dl.Input((3,), dtype=d), inner, shared], name="outer")
    else:
        i, j = gpu_dl.Input((3,), dtype=d), gpu_dl.Input((3,), dtype=d)
        first = gpu_dl.Model(i, shared(i), name="first")
        second = gpu_dl.Model(j, other(shared(j)), name="second")
        nested = gpu_dl.Model(x, second(first(x)), name="outer")
    fs, fo = layers.Dense(3, activation="tanh", dtype=d), layers.Dense(3, dtype=d)
    fx = gpu_dl.Input((3,), dtype=d)
    flat = gpu_dl.Model(fx, fs(fo(fs(fx))) if kind != "two_inner" else fo(fs(fs(fx))))
    return nested, flat, shared


KINDS = ["outer", "sequential", "two_inner"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_layer_in_two_places_shares_its_weights_and_sums_its_gradients(xp, rng, kind):
    nested, flat, shared = shared_trees(kind)
    # Listed once, where it comes first, as Keras lists it.
    assert nested.weights[:2] == shared.weights and len(nested.weights) == 4 and nested.count_params() == 24
    assert len(nested.trainable_weights) == 4
    flat.set_weights(nested.get_weights())
    x = xp.asarray(_data(rng, 3, n=5))
    w = xp.asarray(_data(rng, 3, n=5))
    for model in (nested, flat):
        model.forward(x, training=True)
    numpy.testing.assert_allclose(backend.to_numpy(nested.backward(w)), backend.to_numpy(flat.backward(w)),
                                  rtol=1e-6, atol=1e-7)
    for a, b in zip(nested.trainable_weights, flat.trainable_weights):
        numpy.testing.assert_allclose(backend.to_numpy(a.grad), backend.to_numpy(b.grad), rtol=1e-5, atol=1e-6)
    _assert_trains_as(nested, flat, _data(rng, 3), _data(rng, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_of_a_layer_in_two_places_match_finite_differences(xp, rng, kind):
    nested, _, _ = shared_trees(kind, dtype="float64", seed=4)
    _check_model_gradients(nested, [xp.asarray(rng.standard_normal((4, 3)))], rng)


@pytest.mark.parametrize("kind", KINDS)
def test_a_layer_in_two_places_is_saved_once(tmp_path, rng, kind):
    nested, _, shared = shared_trees(kind, seed=5)
    x, y = _data(rng, 3), _data(rng, 3)
    nested.compile(optimizer="adam", loss="mse")
    nested.fit(x, y, verbose=0)
    nested.save(tmp_path / "m.keras")
    entries, _ = _h5_entries(tmp_path / "m.keras")
    arrays = sorted(k for k, shape in entries.items() if shape is not None and not k.startswith("optimizer"))
    inner = "sequential" if kind == "sequential" else "functional"
    expected = {"outer": [f"layers/{inner}/layers/dense/vars/{i}" for i in (0, 1)]
                + [f"layers/{inner}/layers/dense_1/vars/{i}" for i in (0, 1)],
                "two_inner": ["layers/functional/layers/dense/vars/0", "layers/functional/layers/dense/vars/1",
                              "layers/functional_1/layers/dense_1/vars/0", "layers/functional_1/layers/dense_1/vars/1"]}
    assert arrays == expected.get(kind, expected["outer"])
    # No group for its second place, as Keras writes it.
    assert not any(k.startswith("layers/dense") for k in entries)
    assert not any(k.startswith("layers/functional_1/layers/dense/") for k in entries)
    # The weights file loads back into the model built in code ...
    nested.save_weights(tmp_path / "w.weights.h5")
    again, _, _ = shared_trees(kind, seed=6)
    again.load_weights(tmp_path / "w.weights.h5")
    numpy.testing.assert_array_equal(again.predict(x, verbose=0), nested.predict(x, verbose=0))
    # ... but the .keras config rebuilds two layers for it: refused with the reason, as Keras 3 fails too.
    with pytest.raises(ValueError, match=r"one layer 'shared' in two places of its tree of models.*load_weights"):
        load_model(tmp_path / "m.keras")


def test_a_layer_in_two_places_in_the_summary():
    nested, _, _ = shared_trees("outer")
    lines = []
    # wide enough that the inner input's numbered name (longer after other tests) is not wrapped
    nested.summary(print_fn=lambda text: lines.extend(text.splitlines()), expand_nested=True, line_length=150)
    text = "\n".join(lines)
    assert [r.split("│")[1].strip() for r in lines if r.startswith("│") and "(" in r.split("│")[1]] == \
        ["x (InputLayer)", "inner (Functional)", f"└ {nested.layers[1].layers[0].name} (InputLayer)",
         "└ shared (Dense)", "└ other (Dense)", "shared (Dense)"]
    assert " Total params: 24 (96.00 B)" in text


# ------------------------------------------------------------------ inner models made with dicts
def dict_models(dtype="float32", seed=7):
    """An inner model made with dicts of inputs and outputs (given out of key order) called on a dict inside an
    outer model, against the same layers in one flat model."""
    backend.set_random_seed(seed)
    L = layers

    def parts():
        return (L.Concatenate(dtype=dtype), L.Dense(2, activation="tanh", name="y", dtype=dtype),
                L.Dense(1, name="z", dtype=dtype), L.Concatenate(dtype=dtype), L.Dense(2, dtype=dtype))
    cat, y, z, both, head = parts()
    b, a = gpu_dl.Input((2,), dtype=dtype, name="b"), gpu_dl.Input((3,), dtype=dtype, name="a")
    joined = cat([a, b])
    inner = gpu_dl.Model({"b": b, "a": a}, {"z": z(joined), "y": y(joined)}, name="keyed")
    p, q = gpu_dl.Input((3,), dtype=dtype), gpu_dl.Input((2,), dtype=dtype)
    out = inner({"a": p, "b": q})
    assert list(out) == ["z", "y"]          # the dict as the model was made with it
    nested = gpu_dl.Model([p, q], head(both([out["y"], out["z"]])), name="outer")
    cat, y, z, both, head = parts()
    fp, fq = gpu_dl.Input((3,), dtype=dtype), gpu_dl.Input((2,), dtype=dtype)
    joined = cat([fp, fq])
    y_out, z_out = y(joined), z(joined)
    flat = gpu_dl.Model([fp, fq], head(both([y_out, z_out])))
    return nested, flat, inner


def test_an_inner_model_made_with_dicts_trains_as_the_flat_graph(xp, rng):
    nested, flat, inner = dict_models()
    # Keras's order: inputs and outputs by sorted key, whatever order the dicts were given in.
    assert [t.name for t in inner.inputs] == ["a", "b"] and inner.output_names == ["y", "z"]
    node = inner._inbound_nodes[-1]
    assert [t.shape for t in node.outputs] == [(None, 2), (None, 1)]
    _assert_trains_as(nested, flat, [_data(rng, 3), _data(rng, 2)], _data(rng, 2))
    # Called on arrays, it gives the dict it was made with, its keys sorted as Keras sorts them there; a list of
    # tensors in sorted-key order works too.
    outs = inner({"a": xp.asarray(_data(rng, 3)), "b": xp.asarray(_data(rng, 2))})
    assert list(outs) == ["y", "z"] and outs["y"].shape == (8, 2)
    listed = inner([gpu_dl.Input((3,)), gpu_dl.Input((2,))])
    assert listed["z"].shape == (None, 1)


def test_gradients_through_an_inner_model_made_with_dicts_match_finite_differences(xp, rng):
    nested, _, _ = dict_models(dtype="float64", seed=8)
    _check_model_gradients(nested, [xp.asarray(rng.standard_normal((4, 3))),
                                    xp.asarray(rng.standard_normal((4, 2)))], rng)


def test_an_inner_model_made_with_dicts_round_trips(tmp_path, rng):
    nested, _, _ = dict_models(seed=9)
    x, y = [_data(rng, 3), _data(rng, 2)], _data(rng, 2)
    nested.compile(optimizer="adam", loss="mse")
    nested.fit(x, y, verbose=0)
    nested.save(tmp_path / "m.keras")
    _, config = _h5_entries(tmp_path / "m.keras")
    entry = next(e for e in config["config"]["layers"] if e["name"] == "keyed")
    # As Keras records it: the call's dict of tensors, one mask per key, and the dicts as made.
    assert list(entry["inbound_nodes"][0]["args"][0]) == ["a", "b"]
    assert entry["inbound_nodes"][0]["kwargs"] == {"mask": {"a": None, "b": None}}
    assert list(entry["config"]["input_layers"]) == ["b", "a"] and list(entry["config"]["output_layers"]) == ["z", "y"]
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), nested.predict(x, verbose=0))
    assert loaded.train_on_batch(x, y) == pytest.approx(nested.train_on_batch(x, y), rel=1e-6)


def test_dict_calls_need_every_key():
    a, b = gpu_dl.Input((3,), name="a"), gpu_dl.Input((2,), name="b")
    keyed = gpu_dl.Model({"a": a, "b": b}, layers.Concatenate()([a, b]), name="keyed")
    with pytest.raises(ValueError, match=r"'keyed' was called on a dict of symbolic tensors without 'b': it takes "
                                         r"the keys \['a', 'b'\]"):
        keyed({"a": gpu_dl.Input((3,)), "c": gpu_dl.Input((2,))})
    # A model made with a list takes a dict by its inputs' names, as Keras does.
    pair = gpu_dl.Model([a, b], layers.Concatenate()([a, b]), name="pair")
    assert pair({"b": gpu_dl.Input((2,)), "a": gpu_dl.Input((3,))}).shape == (None, 5)


# ------------------------------------------------------------------ models of several inputs or outputs in a Sequential
def test_a_model_of_several_inputs_or_outputs_in_a_sequential_is_refused_where_keras_refuses_it():
    # Keras 3 takes them only as the very first or last layer, where the Sequential takes several inputs or gives
    # several outputs (tests/test_sequential_multi_io.py); elsewhere each layer would get or give one tensor.
    a, b = gpu_dl.Input((3,), name="a"), gpu_dl.Input((3,), name="b")
    pair = gpu_dl.Model([a, b], layers.Add()([a, b]), name="pair")
    i = gpu_dl.Input((3,))
    two = gpu_dl.Model(i, [layers.Dense(2)(i), layers.Dense(1)(i)], name="two")
    several_inputs = r"Model 'pair' \(Functional\) takes 2 inputs: a model of several inputs can only be a " \
        r"Sequential's very first layer \(the Sequential then takes its inputs\), as in Keras; in Sequential " \
        r"'\w+' it would follow {}, which gives one tensor\. Call it in a functional model instead"
    for made, before in ((lambda: Sequential([gpu_dl.Input((3,), name="start"), pair]), "the Input 'start'"),
                         (lambda: Sequential([layers.Dense(3, name="first"), pair]), "layer 'first'")):
        with pytest.raises(ValueError, match=several_inputs.format(before)):
            made()
    for made in (lambda: Sequential([gpu_dl.Input((3,)), two, layers.Dense(2, name="after")]),
                 lambda: Sequential([two, layers.Dense(2, name="after")])):
        with pytest.raises(ValueError, match=r"ends with model 'two' \(Functional\), which gives 2 outputs: a model "
                                             r"of several outputs can only be a Sequential's last layer, as in "
                                             r"Keras, so 'after' cannot follow it"):
            made()
