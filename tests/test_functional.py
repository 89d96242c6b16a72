"""The functional API: symbolic tensors, Model(inputs, outputs), training, gradients through branches,
several inputs, shared layers, masks, summary, plot_model, saving, and the errors of bad graphs and data."""
import json
import re
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import Functional, Sequential, load_model
from gradcheck import assert_gradient


def branch_model(seed=0, dtype="float32", classes=10):
    """The functional example of the docs: a convolution, two Dense branches added, a softmax head."""
    backend.set_random_seed(seed)
    inputs = gpu_dl.Input(shape=(8, 8, 1), dtype=dtype)
    x = layers.Conv2D(6, 3, activation="relu", dtype=dtype)(inputs)
    a = layers.Flatten(dtype=dtype)(x)
    b = layers.Dense(12, activation="relu", dtype=dtype)(a)
    c = layers.Dense(12, dtype=dtype)(a)
    x = layers.Add(dtype=dtype)([b, c])
    outputs = layers.Dense(classes, activation="softmax", dtype=dtype)(x)
    return gpu_dl.Model(inputs, outputs)


def two_input_model(seed=0, dtype="float32"):
    """Two inputs through one shared Dense, concatenated with a third branch, into a softmax head."""
    backend.set_random_seed(seed)
    left = gpu_dl.Input(shape=(5,), name="left", dtype=dtype)
    right = gpu_dl.Input(shape=(5,), name="right", dtype=dtype)
    shared = layers.Dense(4, activation="tanh", name="shared", dtype=dtype)
    merged = layers.concatenate([shared(left), shared(right), layers.Subtract(name="diff", dtype=dtype)([left, right])],
                                name="joined", dtype=dtype)
    out = layers.Dense(3, activation="softmax", name="head", dtype=dtype)(merged)
    return gpu_dl.Model(inputs=[left, right], outputs=out, name="pair")


def _device_inputs(xp, arrays):
    return [xp.asarray(a) for a in arrays]


def _check_model_gradients(model, xs, rng, weights=True):
    """Inputs' and weights' gradients from backward against finite differences of sum(model(x) * w) plus the
    activity penalties, in float64."""
    xp = array_module(xs[0])
    several = len(xs) > 1
    y = model.forward(xs if several else xs[0], training=True)
    w = xp.asarray(rng.standard_normal(y.shape))

    def objective(inputs):
        out = model.forward(inputs if several else inputs[0], training=True)
        penalty = sum(layer.activity_regularizer(a) / a.shape[0] for layer, a in model._activity_outputs())
        return (out * w).sum() + penalty

    objective(xs)
    grads = model.backward(w)
    grads = grads if several else [grads]
    for i in range(len(xs)):
        assert_gradient(lambda v, i=i: objective(xs[:i] + [v] + xs[i + 1:]), xs[i], grads[i], rng,
                        what=f"model input {i}")
    if not weights:
        return
    for var in model.trainable_weights:
        objective(xs)
        model.backward(w, input_gradient=False)
        grad = var.grad.copy()
        original = var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return objective(xs)
        assert_gradient(of_weight, original.copy(), grad, rng, what=var.path)
        var.value[...] = original


# ------------------------------------------------------------------ symbolic tensors
def test_layers_called_on_symbolic_tensors_give_symbolic_outputs():
    inputs = gpu_dl.Input(shape=(8, 8, 1), name="image")
    assert inputs.shape == (None, 8, 8, 1) and inputs.name == "image"
    conv = layers.Conv2D(4, 3, padding="same")
    x = conv(inputs)
    assert x.shape == (None, 8, 8, 4) and x.dtype == "float32" and conv.built
    assert conv.kernel.shape == (3, 3, 1, 4)
    layer, node_index, tensor_index = x._keras_history
    assert layer is conv and (node_index, tensor_index) == (0, 0)
    assert conv._inbound_nodes[0].input_tensors == [inputs]
    states = layers.LSTM(3, return_state=True)(gpu_dl.Input((4, 2)))
    assert [s.shape for s in states] == [(None, 3)] * 3
    assert [s._keras_history.tensor_index for s in states] == [0, 1, 2]
    assert (x + x)._keras_history.operation._inbound_nodes[0].input_tensors == [x, x]
    assert (x @ x[:, :, :4])._keras_history.operation._inbound_nodes[0].input_tensors[0] is x
    with pytest.raises(TypeError, match="not supported on symbolic tensors"):
        x // 2
    with pytest.raises(TypeError, match="symbolic"):
        numpy.asarray(x)


def test_calling_a_layer_on_arrays_is_unchanged(xp, rng):
    layer = layers.Dense(3, dtype="float64")
    x = xp.asarray(rng.standard_normal((2, 4)))
    y = layer(x)
    assert y.shape == (2, 3) and not layer._inbound_nodes
    kernel, bias = layer.get_weights()
    numpy.testing.assert_allclose(to_numpy(y), to_numpy(x) @ kernel + bias, rtol=1e-12)


def test_a_built_layer_called_on_a_tensor_of_the_wrong_shape_names_it():
    dense = layers.Dense(2, name="head")
    dense(gpu_dl.Input((4,)))
    with pytest.raises(ValueError, match=r"layer 'head'.*expected shape \(None, 4\), got \(None, 5\)"):
        dense(gpu_dl.Input((5,)))
    with pytest.raises(ValueError, match="takes one tensor, got a list of 2"):
        layers.Dense(2)([gpu_dl.Input((4,)), gpu_dl.Input((4,))])
    with pytest.raises(ValueError, match="initial_state needs 2 tensor"):
        layers.LSTM(3)(gpu_dl.Input((4, 2)), initial_state=[gpu_dl.Input((3,))])
    # As in Keras, a call on symbolic tensors takes a symbolic mask (tests/test_custom_layer_masks.py); not an array.
    with pytest.raises(TypeError, match="`mask` must be a symbolic tensor"):
        layers.Dense(2)(gpu_dl.Input((4,)), mask=numpy.ones((1, 4), dtype=bool))


def test_sequential_still_takes_input_first():
    model = Sequential([gpu_dl.Input(shape=(4,), name="features"), layers.Dense(3)])
    assert model.built and model.input_spec == (None, 4) and model._input_layer.name == "features"
    with pytest.raises(TypeError, match="keras.Input"):
        Sequential([layers.Dense(3)(gpu_dl.Input((4,)))])
    # A model called on a symbolic tensor is one layer of the graph being made (tests/test_nested_models.py).
    out = model(gpu_dl.Input((4,)))
    assert out.shape == (None, 3) and out._keras_history.operation is model


# ------------------------------------------------------------------ the model
def test_model_of_inputs_and_outputs_is_functional_and_ordered_as_keras():
    model = branch_model()
    assert isinstance(model, Functional) and isinstance(model, gpu_dl.models.Model)
    assert type(gpu_dl.models.Model(inputs=model.inputs, outputs=model.outputs, name="again")) is Functional
    assert [type(l).__name__ for l in model.layers] == ["InputLayer", "Conv2D", "Flatten", "Dense", "Dense", "Add",
                                                        "Dense"]
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 10)
    assert model.compute_output_shape((None, 8, 8, 1)) == (None, 10)
    assert len(model.weights) == 8 and model.count_params() == 60 + 36 * 6 * 12 * 2 + 24 + 130
    weights = model.get_weights()
    model.set_weights([w + 1 for w in weights])
    numpy.testing.assert_array_equal(model.get_weights()[0], weights[0] + 1)
    with pytest.raises(ValueError, match="8 weight arrays"):
        model.set_weights(weights[:3])
    assert model.get_layer(index=1) is model.layers[1]
    assert model.get_layer(model.layers[-1].name) is model.layers[-1]


def test_branch_model_trains_on_digits():
    (x, y), (x_test, y_test) = gpu_dl.data.load_digits(image_shape=True)
    model = branch_model(seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    assert model._fused_softmax            # the softmax head is fused into the loss, as in a Sequential
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy > 0.85
    assert model.predict(x_test[:5], verbose=0).shape == (5, 10)


def test_branch_gradients_match_finite_differences(xp, rng):
    # Inputs -> Dense -> two Dense branches (one tensor feeding two layers) -> Add -> Dense, all in float64.
    backend.set_random_seed(2)
    inp = gpu_dl.Input((5,), dtype="float64")
    h = layers.Dense(4, activation="tanh", dtype="float64", activity_regularizer="l2")(inp)
    a = layers.Dense(3, activation="sigmoid", dtype="float64")(h)
    b = layers.Dense(3, bias_initializer="random_normal", dtype="float64")(h)
    s = layers.Add(dtype="float64")([a, b, a])     # `a` twice: its gradient counts twice
    out = layers.Dense(2, activation="tanh", dtype="float64")(layers.Multiply(dtype="float64")([s, b]))
    model = gpu_dl.Model(inp, out)
    _check_model_gradients(model, [xp.asarray(rng.standard_normal((3, 5)))], rng)


def test_fused_softmax_head_equals_the_sequential_model(xp):
    backend.set_random_seed(4)
    seq = Sequential([gpu_dl.Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")])
    inp = gpu_dl.Input((6,))
    fun = gpu_dl.Model(inp, layers.Dense(3, activation="softmax")(layers.Dense(8, activation="relu")(inp)))
    fun.set_weights(seq.get_weights())
    rng = numpy.random.default_rng(0)
    x, y = rng.standard_normal((40, 6)).astype("float32"), rng.integers(0, 3, 40)
    for model in (seq, fun):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert fun._fused_softmax and seq._fused_softmax
    for a, b in zip(seq.get_weights(), fun.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_a_shared_softmax_head_is_not_fused_and_still_trains(xp, rng):
    inp = gpu_dl.Input((3,))
    head = layers.Dense(3, activation="softmax")
    model = gpu_dl.Model(inp, head(head(inp)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((32, 3)).astype("float32"), rng.integers(0, 3, 32)
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=20, verbose=0)
    assert not model._fused_softmax and model.evaluate(x, y, verbose=0) < first


# ------------------------------------------------------------------ several inputs, shared layers
def test_two_input_model_takes_lists_and_dicts(xp, rng):
    model = two_input_model(seed=3)
    assert model.input_names == ["left", "right"] and model.input_shape == [(None, 5), (None, 5)]
    assert [l.name for l in model.layers][:3] == ["left", "right", "shared"]
    left, right = (rng.standard_normal((20, 5)).astype("float32") for _ in range(2))
    y = rng.integers(0, 3, 20)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit([left, right], y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    by_list = model.predict([left, right], verbose=0)
    by_dict = model.predict({"right": right, "left": left, "unused": left}, verbose=0)
    numpy.testing.assert_array_equal(by_list, by_dict)
    numpy.testing.assert_array_equal(to_numpy(model([left, right])), by_list)
    swapped = model.predict([right, left], verbose=0)
    assert not numpy.allclose(swapped, by_list)        # the order of the inputs matters
    logs = model.evaluate({"left": left, "right": right}, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    model.train_on_batch((left[:4], right[:4]), y[:4])
    assert model.predict_on_batch([left[:3], right[:3]]).shape == (3, 3)


def test_two_input_gradients_with_a_shared_layer(xp, rng):
    model = two_input_model(seed=5, dtype="float64")
    xs = _device_inputs(xp, [rng.standard_normal((4, 5)), rng.standard_normal((4, 5))])
    _check_model_gradients(model, xs, rng)


def test_a_layer_called_twice_in_a_row_keeps_each_calls_state(xp, rng):
    # d(d(x)): the second call must not overwrite what the first call's backward needs, and the kernel's
    # gradient is the sum over both calls.
    backend.set_random_seed(6)
    inp = gpu_dl.Input((4,), dtype="float64")
    d = layers.Dense(4, activation="tanh", dtype="float64", activity_regularizer="l1")
    conv_in = gpu_dl.Input((6, 6, 2), dtype="float64")
    conv = layers.Conv2D(2, 3, padding="same", activation="tanh", dtype="float64")
    pooled = layers.GlobalAveragePooling2D(dtype="float64")(conv(conv(conv_in)))
    out = layers.Dense(2, dtype="float64")(layers.concatenate([d(d(inp)), pooled], dtype="float64"))
    model = gpu_dl.Model([inp, conv_in], out)
    assert [l.name for l in model.layers].count(d.name) == 1 and len(model.trainable_weights) == 6
    xs = _device_inputs(xp, [rng.standard_normal((3, 4)), rng.standard_normal((3, 6, 6, 2))])
    _check_model_gradients(model, xs, rng)
    model.forward(xs, training=True)
    assert len(model._activity_outputs()) == 2       # one penalty per call, as Keras adds them


def test_a_shared_bidirectional_layer_keeps_its_inner_layers_state(xp, rng):
    # The wrapped layers keep what their backward needs too: kept and restored per call with the wrapper's.
    backend.set_random_seed(11)
    a, b = gpu_dl.Input((4, 3), dtype="float64"), gpu_dl.Input((6, 3), dtype="float64")
    both = layers.Bidirectional(layers.LSTM(2, dtype="float64"), merge_mode="mul", dtype="float64")
    model = gpu_dl.Model([a, b], layers.Dense(1, dtype="float64")(layers.Add(dtype="float64")([both(a), both(b)])))
    xs = _device_inputs(xp, [rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 6, 3))])
    _check_model_gradients(model, xs, rng)


def test_encoder_states_start_the_decoder(xp, rng):
    # seq2seq: the encoder's final states are the decoder's initial states; gradients reach the encoder
    # through them only.
    backend.set_random_seed(7)
    enc_in = gpu_dl.Input((5, 3), dtype="float64")
    dec_in = gpu_dl.Input((4, 2), dtype="float64")
    _, h, c = layers.LSTM(6, return_state=True, dtype="float64")(enc_in)
    seq = layers.LSTM(6, return_sequences=True, dtype="float64")(dec_in, initial_state=[h, c])
    out = layers.Dense(3, dtype="float64")(seq)
    model = gpu_dl.Model([enc_in, dec_in], out)
    assert model.output_shape == (None, 4, 3)
    xs = _device_inputs(xp, [rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4, 2))])
    _check_model_gradients(model, xs, rng)


# ------------------------------------------------------------------ masks
def test_masks_pass_along_the_edges(rng):
    backend.set_random_seed(8)
    ids = numpy.array([[3, 4, 0, 0], [5, 0, 0, 0], [1, 2, 3, 4]])
    seq = Sequential([gpu_dl.Input((4,)), layers.Embedding(6, 3, mask_zero=True), layers.LSTM(2)])
    inp = gpu_dl.Input((4,))
    emb = layers.Embedding(6, 3, mask_zero=True)
    fun = gpu_dl.Model(inp, layers.LSTM(2)(emb(inp)))
    fun.set_weights(seq.get_weights())
    numpy.testing.assert_allclose(fun.predict(ids, verbose=0), seq.predict(ids, verbose=0), rtol=1e-6)

    # Two masked branches merged: the output keeps a step either keeps (both have the same mask here).
    first = layers.LSTM(2, return_sequences=True)(emb(inp))
    second = layers.SimpleRNN(2, return_sequences=True)(emb(inp))
    merged = gpu_dl.Model(inp, layers.Maximum()([first, second]))
    merged.forward(backend.to_device(ids.astype("float32")))
    numpy.testing.assert_array_equal(to_numpy(merged.output_mask), ids != 0)


# ------------------------------------------------------------------ summary and plots
def test_summary_shows_connections_and_totals(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")        # a wide terminal: Keras's default 108 columns
    model = two_input_model()
    model.summary()
    text = capsys.readouterr().out
    assert 'Model: "pair"' in text and "Connected to" in text
    assert re.search(r"shared \(Dense\)\s+│ \(None, 4\)\s+│\s+24 │ left\[0\]\[0\], right\[0\]\[0\]", text)
    # a cell's connections wrap between words where the column is too narrow for them
    assert re.search(r"joined \(Concatenate\).* shared\[0\]\[0\],\s+│\n"
                     r"│\s+│\s+│\s+│ shared\[1\]\[0\], diff", text)
    assert re.search(r"left \(InputLayer\)\s+│ \(None, 5\)\s+│\s+0 │ -", text)
    assert "Total params: 66 (264.00 B)" in text and "Non-trainable params: 0" in text

    inp = gpu_dl.Input((3,))
    chain = gpu_dl.Model(inp, layers.Dense(2)(layers.Dense(4)(inp)))
    chain.summary()
    text = capsys.readouterr().out
    assert "Connected to" not in text and "input_layer" in text and "Total params: 26" in text


def test_plot_model_draws_the_graphs_edges(tmp_path):
    pytest.importorskip("pydot")
    model = two_input_model()
    gpu_dl.utils.plot_model(model, to_file=tmp_path / "m.dot", show_shapes=True, show_layer_names=True)
    text = (tmp_path / "m.dot").read_text()
    names = dict((n, re.search(r"<b>(\w+)</b>", label).group(1))
                 for n, label in re.findall(r"^(\d+) \[label=<(.*?)>, ", text, flags=re.M))
    edges = {(names[a], names[b]) for a, b in re.findall(r"^(\d+) -> (\d+) ", text, flags=re.M)}
    assert edges == {("left", "shared"), ("right", "shared"), ("shared", "joined"), ("left", "diff"),
                     ("right", "diff"), ("diff", "joined"), ("joined", "head")}
    assert "Output shape: <b>(None, 3)</b>" in text and "Input shape: <b>[(None, 4), (None, 4), (None, 5)]" in text


# ------------------------------------------------------------------ saving
def test_save_and_load_predict_the_same_and_resume_training(tmp_path, rng):
    x, y = rng.standard_normal((48, 8, 8, 1)).astype("float32"), rng.integers(0, 4, 48)

    def build():
        model = branch_model(seed=9, classes=4)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(model, epochs):
        model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)

    straight = build()
    fit(straight, 4)
    first = build()
    fit(first, 2)
    first.save(tmp_path / "half.keras")
    loaded = load_model(tmp_path / "half.keras")
    assert isinstance(loaded, Functional) and loaded.optimizer.iterations == 6
    assert [l.name for l in loaded.layers] == [l.name for l in first.layers]
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


def test_saved_config_is_keras_functional_form(tmp_path):
    model = two_input_model()
    model.save(tmp_path / "pair.keras")
    with zipfile.ZipFile(tmp_path / "pair.keras") as archive:
        config = json.loads(archive.read("config.json"))
        import h5py, io
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
            groups = sorted(h5["layers"].keys())
    assert config["class_name"] == "Functional" and config["module"] == "keras.src.models.functional"
    inner = config["config"]
    assert inner["input_layers"] == [["left", 0, 0], ["right", 0, 0]] and inner["output_layers"] == ["head", 0, 0]
    by_name = {entry["name"]: entry for entry in inner["layers"]}
    assert by_name["left"]["inbound_nodes"] == [] and by_name["left"]["class_name"] == "InputLayer"
    shared_calls = by_name["shared"]["inbound_nodes"]
    assert [call["args"][0]["config"]["keras_history"] for call in shared_calls] == [["left", 0, 0], ["right", 0, 0]]
    concat_args = by_name["joined"]["inbound_nodes"][0]["args"][0]
    assert [t["class_name"] for t in concat_args] == ["__keras_tensor__"] * 3
    assert [t["config"]["keras_history"] for t in concat_args] == [["shared", 0, 0], ["shared", 1, 0],
                                                                  ["diff", 0, 0]]
    assert concat_args[0]["config"]["shape"] == [None, 4]
    assert groups == ["concatenate", "dense", "dense_1", "input_layer", "input_layer_1", "subtract"]   # by class

    again = Functional.from_config(model.get_config())
    again.set_weights(model.get_weights())
    x = [numpy.ones((2, 5), "float32"), numpy.zeros((2, 5), "float32")]
    numpy.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_from_config_makes_a_functional_model_and_refuses_a_sequential_config():
    inp = gpu_dl.Input((3,), name="x")
    model = gpu_dl.Model(inp, {"head": layers.Dense(2, name="head")(layers.Dense(4, name="hidden")(inp))},
                         name="net")
    again = gpu_dl.Model.from_config(model.get_config())
    assert type(again) is Functional and again.name == "net" and [l.name for l in again.layers] == \
        ["x", "hidden", "head"]
    again.set_weights(model.get_weights())
    x = numpy.arange(6, dtype="float32").reshape(2, 3)
    numpy.testing.assert_array_equal(again.predict(x, verbose=0)["head"], model.predict(x, verbose=0)["head"])
    assert again.compute_output_shape((None, 3)) == {"head": (None, 2)}
    stack = Sequential([gpu_dl.Input((3,)), layers.Dense(2)], name="stack")
    with pytest.raises(ValueError, match=r"Model.from_config: unrecognized keys \['layers'\].*Sequential.from_config"):
        gpu_dl.Model.from_config(stack.get_config())
    assert type(Sequential.from_config(stack.get_config())) is Sequential
    with pytest.raises(ValueError, match="Model.from_config takes a config dict, got list"):
        gpu_dl.Model.from_config([])


def test_node_indices_count_only_the_models_own_calls(tmp_path):
    # A layer also called outside the model: the saved node index counts the calls inside it only.
    dense = layers.Dense(2)
    dense(gpu_dl.Input((3,)))                         # call 0, not in the model
    inp = gpu_dl.Input((3,))
    out = layers.Dense(1)(dense(inp))                 # call 1
    model = gpu_dl.Model(inp, out)
    inner = model.get_config()
    by_name = {entry["name"]: entry for entry in inner["layers"]}
    assert len(by_name[dense.name]["inbound_nodes"]) == 1
    head = [e for e in inner["layers"] if e["class_name"] == "Dense" and e["name"] != dense.name][0]
    assert head["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == [dense.name, 0, 0]
    model.save(tmp_path / "m.keras")
    x = numpy.ones((2, 3), "float32")
    numpy.testing.assert_array_equal(load_model(tmp_path / "m.keras").predict(x, verbose=0),
                                     model.predict(x, verbose=0))


def test_model_from_intermediate_tensors_starts_at_new_inputs_and_shares_the_layers(rng):
    # Keras's clone_graph_nodes: the calls after the intermediate tensor are made again on a new Input
    a = gpu_dl.Input((3,), name="a")
    hidden = layers.Dense(4, name="hidden")(a)
    out = layers.Dense(2, name="head")(layers.Activation("relu", name="relu_after_hidden")(hidden) + 1.0)
    full = gpu_dl.Model(a, out)
    part = gpu_dl.Model(hidden, out)
    assert part.inputs[0].name == hidden.name + "CLONE" and part.inputs[0].shape == (None, 4)
    assert [layer.name for layer in part.layers] == [hidden.name + "CLONE", "relu_after_hidden", "head"]
    x = rng.normal(size=(5, 3)).astype("float32")
    h = x @ full.get_layer("hidden").get_weights()[0] + full.get_layer("hidden").get_weights()[1]
    kernel, bias = full.get_layer("head").get_weights()
    expected = (numpy.maximum(h, 0) + 1.0) @ kernel + bias
    numpy.testing.assert_allclose(numpy.asarray(part.predict(h, verbose=0)), expected, rtol=1e-5, atol=1e-6)
    part.compile(optimizer="sgd", loss="mse")
    part.fit(h, numpy.ones((5, 2)), epochs=2, verbose=0)
    assert not numpy.allclose(full.get_layer("head").get_weights()[0], kernel)     # one head, trained through part
    numpy.testing.assert_allclose(numpy.asarray(full.predict(x, verbose=0)),
                                  numpy.asarray(part.predict(h, verbose=0)), rtol=1e-5, atol=1e-6)


def test_inputs_of_one_column_take_data_without_that_axis_as_keras_does():
    # Keras's _adjust_input_rank: (batch,) for Input(shape=(1,)), and (batch, 3, 1) for Input(shape=(3,))
    a, b = gpu_dl.Input((1,), name="a"), gpu_dl.Input((3,), name="b")
    model = gpu_dl.Model({"a": a, "b": b}, layers.Concatenate()([a * 2.0, b]))
    x = {"a": numpy.array([1.0, 2.0], "float32"), "b": numpy.arange(6, dtype="float32").reshape(2, 3, 1)}
    expected = numpy.array([[2, 0, 1, 2], [4, 3, 4, 5]], "float32")
    numpy.testing.assert_array_equal(numpy.asarray(model.predict(x, verbose=0)), expected)
    numpy.testing.assert_array_equal(backend.to_numpy(model(x)), expected)
    with pytest.raises(ValueError, match="expects"):
        model.predict({"a": numpy.ones((2, 1, 1, 1), "float32"), "b": x["b"]}, verbose=0)


# ------------------------------------------------------------------ bad graphs and bad data
def test_bad_graphs_are_clear_errors():
    a, b = gpu_dl.Input((3,), name="a"), gpu_dl.Input((3,), name="b")
    out = layers.Dense(2)(a)
    with pytest.raises(ValueError, match="(?s)must be KerasTensors.*of type ndarray"):
        gpu_dl.Model(numpy.ones((2, 3)), out)
    with pytest.raises(ValueError, match="`outputs` values must be KerasTensors"):
        gpu_dl.Model(a, "dense")
    assert [type(layer).__name__ for layer in gpu_dl.Model([a, b], out).layers] == ["InputLayer", "InputLayer", "Dense"]
    with pytest.raises(ValueError, match="Graph disconnected.*'b'"):
        gpu_dl.Model(a, layers.Add()([out, layers.Dense(2)(b)]))
    assert len(gpu_dl.Model(a, [out, out]).outputs) == 2     # Keras takes one tensor listed twice, too
    with pytest.raises(ValueError, match="Graph disconnected.*'b'"):
        gpu_dl.Model(out, layers.Add()([out, layers.Dense(2)(b)]))      # from an intermediate tensor
    with pytest.raises(ValueError, match="more than once"):
        gpu_dl.Model([a, a], out)
    with pytest.raises(ValueError, match="cannot be empty"):
        gpu_dl.Model([], out)
    with pytest.raises(ValueError, match='name "twin" is used 2 times'):
        gpu_dl.Model(a, layers.Dense(1, name="twin")(layers.Dense(2, name="twin")(a)))
    model = gpu_dl.Model(a, out)
    with pytest.raises(ValueError, match=r"Model '\w+' expects input of shape \(None, 3\).*got \(None, 4\)"):
        model(gpu_dl.Input((4,)))


def test_bad_data_is_a_clear_error(rng):
    model = two_input_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    left, right = (rng.standard_normal((6, 5)).astype("float32") for _ in range(2))
    y = rng.integers(0, 3, 6)
    with pytest.raises(ValueError, match=r"has 2 inputs \(left, right\).*list of 2 arrays.*shape \(6, 5\)"):
        model.predict(left, verbose=0)
    with pytest.raises(ValueError, match="must hold 2 arrays, got a list of 3"):
        model.fit([left, right, left], y, verbose=0)
    with pytest.raises(ValueError, match=r"dict `x` has no 'right'"):
        model.predict({"left": left}, verbose=0)
    with pytest.raises(ValueError, match=r"x\[1\] \(input 'right'\) of shape \(None, 5\).*got \(6, 4\)"):
        model.predict([left, right[:, :4]], verbose=0)
    with pytest.raises(ValueError, match="cardinality"):
        model.fit([left, right[:4]], y, verbose=0)
    with pytest.raises(ValueError, match="cardinality"):
        model.fit([left, right], y[:4], verbose=0)
    one = branch_model()
    with pytest.raises(ValueError, match=r"expects x of shape \(None, 8, 8, 1\).*got \(2, 8\)"):
        one.predict(numpy.ones((2, 8)), verbose=0)
    # one axis of size 1 short is taken, as Keras takes it
    numpy.testing.assert_array_equal(one.predict(numpy.ones((2, 8, 8)), verbose=0),
                                     one.predict(numpy.ones((2, 8, 8, 1)), verbose=0))
    with pytest.raises(ValueError, match=r"layer 'conv2d.*\(None, 9, 9, 2\)|expects x of shape"):
        one.predict(numpy.ones((2, 9, 9, 2)), verbose=0)


def _edited_config(model, edit):
    config = json.loads(json.dumps(gpu_dl.models.saving.model_config(model)))
    edit({entry["name"]: entry for entry in config["config"]["layers"]}, config["config"])
    return config


@pytest.mark.parametrize("edit,message", [
    (lambda layers_, c: layers_["head"]["inbound_nodes"][0]["args"].__setitem__(
        0, {"class_name": "__keras_tensor__", "config": {"shape": [None, 4], "dtype": "float32",
                                                         "keras_history": ["ghost", 0, 0]}}),
     "unknown layer 'ghost'"),
    (lambda layers_, c: layers_["shared"]["inbound_nodes"][0]["args"][0]["config"].__setitem__(
        "keras_history", ["head", 0, 0]), "wait on each other.*cycle"),
    (lambda layers_, c: layers_["shared"]["inbound_nodes"][0]["args"][0]["config"].__setitem__(
        "keras_history", ["left", 3, 0]), "call 3 of layer 'left'"),
    (lambda layers_, c: layers_["head"]["inbound_nodes"][0]["args"][0]["config"].__setitem__(
        "keras_history", ["joined", 0, 2]), "asks for output 2"),
    (lambda layers_, c: c["layers"].append(dict(layers_["head"], name="extra", config=dict(
        layers_["head"]["config"], name="extra"))), "'extra' are listed but the model's output does not depend"),
    (lambda layers_, c: c.__setitem__("input_layers", [["left", 0, 0]]), "Graph disconnected.*'right'"),
    # A call's own mask is a tensor of the graph (tests/test_custom_layer_masks.py), not a number.
    (lambda layers_, c: layers_["head"]["inbound_nodes"][0]["kwargs"].__setitem__("mask", 2),
     "must be a symbolic tensor"),
    (lambda layers_, c: layers_["head"]["inbound_nodes"][0]["kwargs"].__setitem__("scale", 2), "'scale'"),
    (lambda layers_, c: layers_["left"]["inbound_nodes"].append(layers_["head"]["inbound_nodes"][0]),
     "InputLayer is called by nothing"),
    (lambda layers_, c: layers_["head"]["inbound_nodes"][0]["args"].append(1), "holding one argument"),
    # An operation gpu_dl does not rebuild is skipped only where no layer reads its result.
    (lambda layers_, c: (c["layers"].append({"module": "keras.src.ops.numpy", "class_name": "Histogramdd",
                                             "config": {"name": "count"}, "name": "count", "inbound_nodes": []}),
                         layers_["head"]["inbound_nodes"][0]["args"][0]["config"].__setitem__(
                             "keras_history", ["count", 0, 0])), "the operation 'count' \\(Histogramdd\\)"),
])
def test_malformed_graph_configs_are_clear_errors(edit, message, tmp_path):
    model = two_input_model()
    config = _edited_config(model, edit)
    with pytest.raises(ValueError, match=message):
        gpu_dl.models.saving.model_from_config(config)
    # The same through a file.
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / "bad.keras")


def test_integer_inputs_feed_an_embedding():
    ids = gpu_dl.Input((4,), dtype="int32", name="ids")
    model = gpu_dl.Model(ids, layers.Dense(1)(layers.Flatten()(layers.Embedding(10, 2)(ids))))
    data = numpy.array([[1, 2, 3, 9], [0, 0, 1, 1]])
    assert model._host_features(data, "x").dtype == numpy.int32
    model.compile(optimizer="sgd", loss="mse")
    model.fit(data, numpy.ones((2, 1), "float32"), verbose=0)
    assert model.predict(data, verbose=0).shape == (2, 1)


def test_compile_takes_the_loss_and_metrics_per_output(rng):
    inp = gpu_dl.Input((3,))
    model = gpu_dl.Model(inp, layers.Dense(2, activation="softmax", name="probs")(inp))
    model.compile(optimizer="sgd", loss={"probs": "sparse_categorical_crossentropy"}, metrics={"probs": ["accuracy"]})
    assert model.loss.name == "sparse_categorical_crossentropy" and model._metric_identifiers == ["accuracy"]
    model.compile(optimizer="sgd", loss=["mse"])
    assert model.loss.name == "mse"
    with pytest.raises(ValueError, match=r"per output for \['other'\].*one output 'probs'"):
        model.compile(optimizer="sgd", loss={"other": "mse"})
    with pytest.raises(ValueError, match="single loss"):
        model.compile(optimizer="sgd", loss=["mse", "mae"])
