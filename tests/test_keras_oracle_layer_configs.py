"""What layer configs and build configs record, against Keras 3 itself (torch backend) where Keras is installed,
and the same programs' own checks without it: the attention layers' nodes keep their inputs as the call gave them
(``mha(q, v, k)`` positionally, ``mha(q, v, key=k)`` with the key among the kwargs); models nested in a model built
for a batch size (from data, or by an Input of one) record it in their build configs and summaries; layers first
called in a composite layer's call are built for the batch size Keras's builds get there (the call's on arrays,
the model's, or the stand-in 83 of Keras's trace of a symbolic call)."""
import json
import os
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl.backend import to_numpy
from gpu_dl.models import clone_model, load_model

from keras_steps import assert_keras_file_loads_both_ways

os.environ.setdefault("KERAS_BACKEND", "torch")


def _as_json(config):
    return json.loads(json.dumps(config))


def _file_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _unshared(config):
    """``config`` without the ``shared_object_id`` entries Keras's saving adds to objects that several layers
    share (their dtype policy), which gpu_dl does not write (its loading skips them)."""
    if isinstance(config, dict):
        return {k: _unshared(v) for k, v in config.items() if k != "shared_object_id"}
    return [_unshared(v) for v in config] if isinstance(config, list) else config


def _node_form(config, name):
    """``(args, kwargs)`` of the first node of layer ``name``: the tensors by the layer they come from."""
    entry = next(layer for layer in config["config"]["layers"] if layer["name"] == name)
    node = entry["inbound_nodes"][0]

    def source(value):
        return value["config"]["keras_history"][0] if isinstance(value, dict) and "keras_history" in value.get(
            "config", {}) else value
    return [source(a) for a in node["args"]], {k: source(v) for k, v in node["kwargs"].items()}


# ------------------------------------------------------------------ attention inputs as the call gave them
def _attention_program(lib, grouped=True):
    L = lib.layers
    q, v, k = lib.Input((4, 6), name="q"), lib.Input((5, 6), name="v"), lib.Input((5, 3), name="k")
    a = L.MultiHeadAttention(2, 3, name="positional")(q, v, k)
    b = L.MultiHeadAttention(2, 3, name="key_by_name")(a, v, key=k, use_causal_mask=False)
    # (gpu_dl's GroupQueryAttention is Keras's GroupedQueryAttention under its registered name)
    c = (L.GroupQueryAttention(2, 2, 1, name="gqa") if grouped else L.MultiHeadAttention(2, 3, name="gqa"))(b, v, k)
    d = L.MultiHeadAttention(2, 3, name="named")(query=c, value=v, key=k)
    return lib.Model([q, v, k], L.MultiHeadAttention(2, 3, name="two")(d, v), name="attention")


_ATTENTION_FORMS = {
    "positional": (["q", "v", "k"], {}),
    "key_by_name": (["positional", "v"], {"key": "k", "use_causal_mask": False}),
    "gqa": (["key_by_name", "v", "k"], {}),
    "named": ([], {"query": "gqa", "value": "v", "key": "k"}),
    "two": (["named", "v"], {}),
}


def _attention_inputs(rng, n=4):
    return [rng.standard_normal((n,) + s).astype("float32") for s in ((4, 6), (5, 6), (5, 3))]


def test_attention_nodes_keep_the_inputs_as_the_call_gave_them(tmp_path):
    model = _attention_program(gpu_dl)
    config = model.get_config()
    for name, form in _ATTENTION_FORMS.items():
        assert _node_form({"config": config}, name) == form, name
    # the order of the layers follows the tensors of each call: positional, then by keyword in sorted order
    assert [layer.name for layer in model.layers][:3] == ["k", "q", "v"]
    rng = numpy.random.default_rng(3)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    x = _attention_inputs(rng)
    want = model.predict(x, verbose=0)
    # read back, cloned and saved, the nodes are the same calls
    rebuilt = gpu_dl.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    clone = clone_model(model)
    clone.set_weights(model.get_weights())
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    for other in (rebuilt, clone, loaded):
        assert _as_json(other.get_config()) == _as_json(config)
        numpy.testing.assert_allclose(other.predict(x, verbose=0), want, rtol=1e-6, atol=1e-6)
    assert _as_json(_file_config(tmp_path / "m.keras")["config"]) == _as_json(config)


def test_attention_call_forms_match_keras(tmp_path):
    keras = pytest.importorskip("keras")
    ours, theirs = _attention_program(gpu_dl), _attention_program(keras)
    assert _as_json(ours.get_config()) == _as_json(theirs.get_config())
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    written, want = _file_config(tmp_path / "ours.keras"), _file_config(tmp_path / "theirs.keras")
    assert written["config"] == _unshared(want["config"])
    for name, form in _ATTENTION_FORMS.items():
        assert _node_form(want, name) == form, name
    for grouped in (False, True):
        theirs = _attention_program(keras, grouped=grouped)
        # the same classes (gpu_dl's GroupedQueryAttention, Keras's, both exported as GroupQueryAttention)
        loaded, x = assert_keras_file_loads_both_ways(keras, theirs, _attention_inputs, tmp_path, load_model)
        assert type(loaded.get_layer("gqa")).__name__ == type(theirs.get_layer("gqa")).__name__
        assert _as_json(loaded.get_config()) == _unshared(_as_json(theirs.get_config()))
        again = _file_config(tmp_path / "again.keras")
        assert again["config"] == _unshared(_file_config(tmp_path / "k.keras")["config"])
    assert type(theirs.get_layer("gqa")) is keras.layers.GroupQueryAttention
    assert type(loaded.get_layer("gqa")) is gpu_dl.layers.GroupedQueryAttention is gpu_dl.layers.GroupQueryAttention
    assert type(loaded.get_layer("gqa")).__name__ == "GroupedQueryAttention"
    assert again["config"]["layers"][5]["class_name"] == "GroupQueryAttention"


# ------------------------------------------------------------------ build configs of nested layers and models
def _summary_shapes(model):
    """{layer label: output shape} of the rows of ``model.summary()``'s table."""
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    rows = [line.split("│")[1:-1] for line in "\n".join(lines).splitlines() if line.startswith("│")]
    return {cells[0].strip(): cells[1].strip() for cells in rows if len(cells) >= 2}


def _build_configs(config):
    """{layer name: build config} of every layer entry in a saved config, nested models' layers included."""
    found = {}

    def visit(value):
        if isinstance(value, dict):
            if "build_config" in value and isinstance(value.get("config"), dict):
                found[value["config"]["name"]] = value["build_config"]
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)
    visit(config)
    return found


def _nested_from_data(lib):
    """Sequential models nested in a Sequential model built from a batch of 2 (no Input)."""
    L = lib.layers
    inner = lib.Sequential([L.Dense(4, name="inner_dense"), L.Dense(3, name="inner_out")], name="inner")
    deeper = lib.Sequential([lib.Sequential([L.Dense(2, name="deepest_dense")], name="deepest")], name="deeper")
    return lib.Sequential([L.Dense(5, name="first"), inner, deeper], name="outer")


_NESTED_BUILDS = {"outer": {"input_shape": [2, 3]}, "first": {"input_shape": [2, 3]},
                  "inner": {"input_shape": [2, 5]}, "inner_dense": {"input_shape": [2, 5]},
                  "inner_out": {"input_shape": [2, 4]}, "deeper": {"input_shape": [2, 3]},
                  "deepest": {"input_shape": [2, 3]}, "deepest_dense": {"input_shape": [2, 3]}}


def test_nested_models_built_from_data_record_its_batch_size(tmp_path):
    model = _nested_from_data(gpu_dl)
    x = numpy.random.default_rng(4).standard_normal((2, 3)).astype("float32")
    want = model(x)
    model.save(tmp_path / "m.keras")
    written = _file_config(tmp_path / "m.keras")
    assert _build_configs(written) == _NESTED_BUILDS
    assert _summary_shapes(model) == {"first (Dense)": "(2, 5)", "inner (Sequential)": "(2, 3)",
                                      "deeper (Sequential)": "(2, 2)"}
    assert _summary_shapes(model.get_layer("inner")) == {"inner_dense (Dense)": "(2, 4)",
                                                         "inner_out (Dense)": "(2, 3)"}
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), numpy.asarray(want), rtol=1e-6)
    loaded.save(tmp_path / "again.keras")
    assert _file_config(tmp_path / "again.keras")["config"] == written["config"]


def test_nested_build_configs_match_keras(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")
    monkeypatch.setenv("COLUMNS", "250")        # Keras's table is as wide as the terminal
    x = numpy.random.default_rng(4).standard_normal((2, 3)).astype("float32")
    ours, theirs = _nested_from_data(gpu_dl), _nested_from_data(keras)
    ours(x)
    theirs(x)
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    written, want = _file_config(tmp_path / "ours.keras"), _file_config(tmp_path / "theirs.keras")
    assert _build_configs(written) == _build_configs(want) == _NESTED_BUILDS
    for path in (("build_input_shape",), ("layers", 0, "config", "batch_shape"),
                 ("layers", 2, "config", "build_input_shape"), ("layers", 3, "config", "layers", 1, "config",
                                                                "build_input_shape")):
        mine, theirs_value = written["config"], want["config"]
        for key in path:
            mine, theirs_value = mine[key], theirs_value[key]
        assert mine == theirs_value, path
    for find in (lambda m: m, lambda m: m.get_layer("inner"), lambda m: m.get_layer("deeper"),
                 lambda m: m.get_layer("deeper").get_layer("deepest")):
        assert _summary_shapes(find(ours)) == _summary_shapes(find(theirs)) != {}
    loaded, _ = assert_keras_file_loads_both_ways(keras, theirs, lambda rng: rng.standard_normal((6, 3)).astype(
        "float32"), tmp_path, load_model)
    assert _build_configs(_file_config(tmp_path / "again.keras")) == _build_configs(
        _file_config(tmp_path / "k.keras")) == _NESTED_BUILDS


# ------------------------------------------------------------------ builds inside a traced call
def _traced_classes(lib):
    """``(Probe, Block)``: a layer whose own build records the shape it is given, and a composite layer whose call
    runs a Dense, a Probe and a Sequential model (all built on their first call, inside its call)."""
    L = lib.layers

    class Probe(L.Layer):
        def build(self, input_shape):
            self.seen = tuple(input_shape)
            self.kernel = self.add_weight(shape=(input_shape[-1], 2), initializer="ones", name="kernel")

        def call(self, x):
            return lib.ops.matmul(x, self.kernel)

    class Block(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = L.Dense(4, name="block_dense")
            self.probe = Probe(name="probe")
            self.stack = lib.Sequential([L.Dense(3, name="stack_dense")], name="stack")

        def call(self, x):
            return self.stack(self.probe(self.dense(x)))
    return Probe, Block


def _traced_builds(block):
    return {"block": block.get_build_config(), "dense": block.dense.get_build_config(),
            "probe": block.probe.get_build_config(), "probe_seen": block.probe.seen,
            "stack": block.stack.get_build_config(), "stack_dense": block.stack.layers[0].get_build_config()}


def _block_in(lib, how):
    """A Block built as ``how`` says: in a functional model ("functional"), in a Sequential model built from a
    batch of 2 ("sequential"), or called on a batch of 2 ("arrays")."""
    _, Block = _traced_classes(lib)
    block = Block(name="block")
    x = numpy.ones((2, 3), "float32")
    if how == "functional":
        inputs = lib.Input((3,))
        lib.Model(inputs, block(inputs))
    elif how == "sequential":
        lib.Sequential([block])(x)
    else:
        block(x)
    return block


_TRACED = {
    # Keras's torch backend runs a symbolic call of a layer without compute_output_shape on stand-in tensors of
    # batch 83: what it builds there gets that batch size (the block itself, built for the symbolic call, None).
    "functional": {"block": {"input_shape": (None, 3)}, "dense": {"input_shape": (83, 3)},
                   "probe": {"input_shape": (83, 4)}, "probe_seen": (83, 4), "stack": {"input_shape": (83, 2)},
                   "stack_dense": {"input_shape": (83, 2)}},
    "sequential": {"block": {"input_shape": (2, 3)}, "dense": {"input_shape": (2, 3)},
                   "probe": {"input_shape": (2, 4)}, "probe_seen": (2, 4), "stack": {"input_shape": (2, 2)},
                   "stack_dense": {"input_shape": (2, 2)}},
}
_TRACED["arrays"] = _TRACED["sequential"]


@pytest.mark.parametrize("how", sorted(_TRACED))
def test_layers_first_called_in_a_traced_call_are_built_for_keras_s_batch_size(xp, how):
    block = _block_in(gpu_dl, how)
    assert _traced_builds(block) == _TRACED[how]
    batch = _TRACED[how]["stack"]["input_shape"][0]
    assert _summary_shapes(block.stack) == {"stack_dense (Dense)": f"({batch}, 3)"}
    # the graph traced for the build takes any batch size
    x = numpy.random.default_rng(6).standard_normal((5, 3)).astype("float32")
    kernel, bias = block.dense.get_weights()
    inner, inner_bias = block.stack.get_weights()
    want = ((x @ kernel + bias) @ numpy.ones((4, 2), "float32")) @ inner + inner_bias
    numpy.testing.assert_allclose(to_numpy(block(xp.asarray(x))), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("how", sorted(_TRACED))
def test_builds_inside_a_traced_call_match_keras(how, monkeypatch):
    keras = pytest.importorskip("keras")
    monkeypatch.setenv("COLUMNS", "250")
    ours, theirs = _block_in(gpu_dl, how), _block_in(keras, how)
    assert _traced_builds(ours) == _traced_builds(theirs) == _TRACED[how]
    assert _summary_shapes(ours.stack) == _summary_shapes(theirs.stack)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    ours.set_weights([numpy.asarray(keras.ops.convert_to_numpy(w)) for w in theirs.get_weights()])
    x = numpy.random.default_rng(6).standard_normal((5, 3)).astype("float32")
    numpy.testing.assert_allclose(numpy.asarray(ours(x)), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5,
                                  atol=1e-6)


def _with_batch_input(lib):
    L = lib.layers
    return lib.Sequential([L.Input(batch_shape=(2, 3)), L.Dense(4, name="dense"),
                           lib.Sequential([L.Dense(2, name="nested_dense")], name="nested")], name="batched")


_BATCH_INPUT_BUILDS = {"batched": {"input_shape": [2, 3]}, "dense": {"input_shape": [2, 3]},
                       "nested": {"input_shape": [2, 4]}, "nested_dense": {"input_shape": [2, 4]}}


def test_a_sequential_model_with_an_input_of_a_batch_size_builds_its_layers_for_it(tmp_path):
    model = _with_batch_input(gpu_dl)
    model.save(tmp_path / "m.keras")
    assert _build_configs(_file_config(tmp_path / "m.keras")) == _BATCH_INPUT_BUILDS
    assert _summary_shapes(model) == {"dense (Dense)": "(2, 4)", "nested (Sequential)": "(2, 2)"}
    load_model(tmp_path / "m.keras").save(tmp_path / "again.keras")
    assert _build_configs(_file_config(tmp_path / "again.keras")) == _BATCH_INPUT_BUILDS


def test_a_sequential_model_with_an_input_of_a_batch_size_matches_keras(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")
    monkeypatch.setenv("COLUMNS", "250")
    ours, theirs = _with_batch_input(gpu_dl), _with_batch_input(keras)
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    assert _build_configs(_file_config(tmp_path / "ours.keras")) == \
        _build_configs(_file_config(tmp_path / "theirs.keras")) == _BATCH_INPUT_BUILDS
    assert _summary_shapes(ours) == _summary_shapes(theirs)
    back = keras.models.load_model(tmp_path / "ours.keras")
    assert _build_configs(_as_json(back.get_config())) == _build_configs(_as_json(theirs.get_config())) != {}


def _wrappers_from_data(lib):
    L = lib.layers
    return lib.Sequential([L.Bidirectional(L.LSTM(2, return_sequences=True, name="lstm"), name="bi"),
                           L.TimeDistributed(L.Dense(2, name="step_dense"), name="steps"),
                           L.RNN(L.GRUCell(2, name="cell"), name="rnn")], name="wrapped")


def _nested_build_configs(path):
    """{(path of names): build config} of a saved model's layer entries and the layers they wrap."""
    found = {}

    def visit(value, where):
        if isinstance(value, dict):
            config = value.get("config")
            if "build_config" in value and isinstance(config, dict):
                where = where + (config.get("name"),)
                found[where] = value["build_config"]
            for item in value.values():
                visit(item, where)
        elif isinstance(value, list):
            for item in value:
                visit(item, where)
    visit(_file_config(path), ())
    return found


_WRAPPER_BUILDS = {
    ("wrapped",): {"input_shape": [2, 4, 3]}, ("wrapped", "bi"): {"input_shape": [2, 4, 3]},
    ("wrapped", "bi", "forward_lstm"): {"input_shape": [2, 4, 3]},
    ("wrapped", "bi", "backward_lstm"): {"input_shape": [2, 4, 3]},
    # TimeDistributed builds the layer it wraps for (batch, features of one step)
    ("wrapped", "steps"): {"input_shape": [2, 4, 4]}, ("wrapped", "steps", "step_dense"): {"input_shape": [2, 4]},
    ("wrapped", "rnn"): {"input_shape": [2, 4, 2]}, ("wrapped", "rnn", "cell"): {"input_shape": [2, 2]},
}


def test_wrapped_layers_of_a_model_built_from_data_record_its_batch_size(tmp_path):
    model = _wrappers_from_data(gpu_dl)
    model(numpy.ones((2, 4, 3), "float32"))
    model.save(tmp_path / "m.keras")
    assert _nested_build_configs(tmp_path / "m.keras") == _WRAPPER_BUILDS


def test_wrapped_layers_build_configs_match_keras(tmp_path):
    keras = pytest.importorskip("keras")
    ours, theirs = _wrappers_from_data(gpu_dl), _wrappers_from_data(keras)
    x = numpy.random.default_rng(7).standard_normal((2, 4, 3)).astype("float32")
    ours(x)
    theirs(x)
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    assert _nested_build_configs(tmp_path / "ours.keras") == _nested_build_configs(tmp_path / "theirs.keras") == \
        _WRAPPER_BUILDS
    loaded, _ = assert_keras_file_loads_both_ways(keras, theirs, lambda rng: rng.standard_normal((6, 4, 3)).astype(
        "float32"), tmp_path, load_model)
    assert _nested_build_configs(tmp_path / "again.keras") == _WRAPPER_BUILDS


def _sequence_block(lib):
    """A composite layer over sequences: attention, a merge, a wrapped recurrent layer and a per-step layer."""
    L = lib.layers

    class SequenceBlock(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.attend = L.Attention(name="attend")
            self.merge = L.Concatenate(name="merge")
            self.both = L.Bidirectional(L.LSTM(2, return_sequences=True, name="lstm"), name="both")
            self.steps = L.TimeDistributed(L.Dense(2, name="step"), name="steps")
            self.last = L.GRU(2, name="last")

        def call(self, x):
            return self.last(self.steps(self.both(self.merge([self.attend([x, x]), x]))))
    return SequenceBlock(name="sequence_block")


def _sequence_builds(block):
    return {layer.name: _as_json(layer.get_build_config())
            for layer in (block.attend, block.merge, block.both, block.both.forward_layer, block.steps,
                          block.steps.layer, block.last)}


# Keras's trace stands in 83 for the unknown steps too: the layers' own builds get (83, 83, ...)
_SEQUENCE_BUILDS = {"attend": {"input_shape": [[83, 83, 4], [83, 83, 4]]},
                    "merge": {"input_shape": [[83, 83, 4], [83, 83, 4]]}, "both": {"input_shape": [83, 83, 8]},
                    "forward_lstm": {"input_shape": [83, 83, 8]}, "steps": {"input_shape": [83, 83, 4]},
                    "step": {"input_shape": [83, 4]}, "last": {"input_shape": [83, 83, 2]}}


def test_layers_traced_on_sequences_of_unknown_length_are_built_for_keras_s_stand_in_length():
    inputs = gpu_dl.Input((None, 4))
    block = _sequence_block(gpu_dl)
    model = gpu_dl.Model(inputs, block(inputs))
    assert _sequence_builds(block) == _SEQUENCE_BUILDS
    # the layers still take any number of steps
    for steps in (3, 7):
        assert model.predict(numpy.ones((2, steps, 4), "float32"), verbose=0).shape == (2, 2)


def test_layers_traced_on_sequences_match_keras():
    keras = pytest.importorskip("keras")
    built = []
    for lib in (gpu_dl, keras):
        inputs = lib.Input((None, 4))
        block = _sequence_block(lib)
        model = lib.Model(inputs, block(inputs))
        built.append((_sequence_builds(block), model))
    assert built[0][0] == built[1][0] == _SEQUENCE_BUILDS
    (_, ours), (_, theirs) = built
    ours.set_weights(theirs.get_weights())
    x = numpy.random.default_rng(8).standard_normal((3, 6, 4)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the InputLayers of nested Sequential models
def _nested_input_names(lib, tmp_path):
    """The names of the InputLayers that Sequential models without an Input make, nested in a Sequential and in a
    functional model, as get_config and the .keras file give them, after the session's name counters are reset."""
    lib.backend.clear_session() if lib is gpu_dl else lib.utils.clear_session()
    L = lib.layers
    inner = [lib.Sequential([L.Dense(3)], name="a"), lib.Sequential([L.Dense(2)], name="b")]
    model = lib.Sequential([lib.Input((4,)), *inner], name="outer")
    model.predict(numpy.zeros((2, 4), "float32"), verbose=0)
    x = lib.Input((4,))
    functional = lib.Model(x, lib.Sequential([L.Dense(2)], name="c")(x))
    model.save(tmp_path / f"{lib.__name__}.keras")
    file_layers = _file_config(tmp_path / f"{lib.__name__}.keras")["config"]["layers"]

    def first(config):
        return config["config"]["layers"][0]["config"]["name"]
    return ([first(c) for c in model.get_config()["layers"][1:]], [first(c) for c in file_layers[1:]],
            [first(c) for c in functional.get_config()["layers"][1:]])


def test_nested_sequentials_number_their_input_layers(tmp_path):
    config, written, functional = _nested_input_names(gpu_dl, tmp_path)
    # drawn from the name counters when each is built, after the outer Input's 'input_layer'
    assert config == written == ["input_layer_1", "input_layer_2"]
    assert functional == ["input_layer_4"]
    loaded = load_model(tmp_path / "gpu_dl.keras")
    assert [c["config"]["layers"][0]["config"]["name"] for c in loaded.get_config()["layers"][1:]] == config


def test_nested_sequentials_name_their_input_layers_as_keras_does(tmp_path):
    keras = pytest.importorskip("keras")
    assert _nested_input_names(gpu_dl, tmp_path) == _nested_input_names(keras, tmp_path)


# ------------------------------------------------------------------ layers Keras builds when they are made
def _built_at_init_program(lib):
    L = lib.layers
    return lib.Sequential([lib.Input((4, 4, 2)), L.Conv2D(2, 3, padding="same"), L.Dropout(0.1), L.MaxPooling2D(),
                           L.Activation("relu"), L.Reshape((8,)), L.Flatten(), L.Dense(2), L.ReLU(), L.Identity(),
                           L.GaussianNoise(0.1), L.Softmax(), L.RepeatVector(2), L.GlobalAveragePooling1D()])


def _file_build_configs(path):
    return {layer["class_name"]: layer.get("build_config") for layer in _file_config(path)["config"]["layers"]}


def test_layers_built_when_made_write_no_build_config(tmp_path):
    model = _built_at_init_program(gpu_dl)
    model.save(tmp_path / "m.keras")
    written = _file_build_configs(tmp_path / "m.keras")
    assert {name for name, config in written.items() if config is not None} == {
        "Conv2D", "Flatten", "Dense", "RepeatVector"}
    assert written["Flatten"] == {"input_shape": [None, 8]}
    x = numpy.random.default_rng(0).standard_normal((3, 4, 4, 2)).astype("float32")
    want = model.predict(x, verbose=0)
    # files of both forms load: this one, and one that gives those layers build configs as well
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    shapes = [None, [None, 4, 4, 2], [None, 4, 4, 2], [None, 4, 4, 2], [None, 2, 2, 2], [None, 2, 2, 2]]
    for layer, shape in zip(config["config"]["layers"], shapes):
        if shape is not None and "build_config" not in layer:
            layer["build_config"] = {"input_shape": shape}
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "with.keras", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    for path in (tmp_path / "m.keras", tmp_path / "with.keras"):
        loaded = load_model(path)
        assert all(layer.built for layer in loaded.layers)
        numpy.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-6, atol=1e-6)
        loaded.save(tmp_path / "again.keras")
        assert _file_build_configs(tmp_path / "again.keras") == written


def test_build_configs_of_layers_built_when_made_match_keras(tmp_path):
    keras = pytest.importorskip("keras")
    _built_at_init_program(gpu_dl).save(tmp_path / "ours.keras")
    theirs = _built_at_init_program(keras)
    theirs.save(tmp_path / "theirs.keras")
    assert _file_build_configs(tmp_path / "ours.keras") == _file_build_configs(tmp_path / "theirs.keras")
    x = numpy.random.default_rng(1).standard_normal((3, 4, 4, 2)).astype("float32")
    # Keras reads gpu_dl's file, and gpu_dl Keras's
    numpy.testing.assert_allclose(keras.models.load_model(tmp_path / "ours.keras").predict(x, verbose=0),
                                  load_model(tmp_path / "ours.keras").predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(load_model(tmp_path / "theirs.keras").predict(x, verbose=0),
                                  theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
