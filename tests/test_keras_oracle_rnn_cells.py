"""RNN cells and the RNN layer against Keras 3 itself (where Keras is installed): one step, outputs and states
for the same weights, training steps, .keras and .weights.h5 files both ways, summary."""
import json
import os
import re

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.layers.symbolic import flatten_structure  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def to_numpy(value):
    return keras.ops.convert_to_numpy(value)


CELLS = [("LSTMCell", {}), ("LSTMCell", {"unit_forget_bias": False, "use_bias": False}), ("GRUCell", {}),
         ("GRUCell", {"reset_after": False}), ("SimpleRNNCell", {"activation": "relu"})]


@pytest.mark.parametrize("name,kwargs", CELLS)
def test_one_step_matches_keras(rng, name, kwargs):
    ours, theirs = getattr(layers, name)(4, **kwargs), getattr(keras.layers, name)(4, **kwargs)
    x = rng.standard_normal((3, 5)).astype("float32")
    states = [rng.standard_normal((3, 4)).astype("float32") for _ in ours.get_initial_state(3)]
    h, new_states = ours(x, states)
    theirs.build((None, 5))
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    assert theirs.state_size == ours.state_size and theirs.output_size == ours.output_size
    theirs.set_weights(ours.get_weights())
    their_h, their_states = theirs(x, states)
    numpy.testing.assert_allclose(h, to_numpy(their_h), rtol=1e-5, atol=1e-6)
    assert len(new_states) == len(their_states)
    for a, b in zip(new_states, their_states):
        numpy.testing.assert_allclose(a, to_numpy(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", CELLS)
def test_cell_initial_weights_and_config_are_keras_s(name, kwargs):
    ours, theirs = getattr(layers, name)(3, **kwargs), getattr(keras.layers, name)(3, **kwargs)
    ours.build((None, 2))
    theirs.build((None, 2))
    for a, b in zip(ours.get_weights()[2:], theirs.get_weights()[2:]):   # biases: deterministic
        numpy.testing.assert_array_equal(a, b)
    mine, keras_config = ours.get_config(), theirs.get_config()
    assert set(mine) == set(keras_config)
    for key in ("units", "activation", "use_bias", "dropout", "recurrent_dropout", "seed", "reset_after",
                "unit_forget_bias", "recurrent_activation"):
        assert mine.get(key) == keras_config.get(key), key


@pytest.mark.parametrize("cells,kwargs", [
    (("LSTMCell",), {"return_state": True}),
    (("GRUCell",), {"return_sequences": True, "return_state": True, "go_backwards": True}),
    (("SimpleRNNCell",), {"return_sequences": True}),
    (("LSTMCell", "SimpleRNNCell", "GRUCell"), {"return_state": True}),
    (("GRUCell", "LSTMCell"), {"return_sequences": True, "return_state": True, "go_backwards": True}),
])
def test_rnn_outputs_and_states_match_keras(rng, cells, kwargs):
    x = rng.standard_normal((3, 7, 5)).astype("float32")
    ours = layers.RNN([getattr(layers, c)(u) for c, u in zip(cells, (4, 3, 2))], **kwargs)
    theirs = keras.layers.RNN([getattr(keras.layers, c)(u) for c, u in zip(cells, (4, 3, 2))], **kwargs)
    if len(cells) == 1:
        ours = layers.RNN(ours.cell.cells[0], **kwargs)
        theirs = keras.layers.RNN(theirs.cell.cells[0], **kwargs)
    got = ours(x)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    want = theirs(x)
    if not kwargs.get("return_state"):
        numpy.testing.assert_allclose(got, to_numpy(want), rtol=1e-5, atol=1e-6)
        return
    # Keras nests the states of stacked cells per cell (each built-in cell's as a list), gpu_dl as well
    assert structure(got) == structure(want)
    for a, b in zip(flatten_structure(got), flatten_structure(want)):
        numpy.testing.assert_allclose(a, to_numpy(b), rtol=1e-5, atol=1e-6)


def structure(value):
    """A nested result's shape as lists (Keras's tuples as lists), each array as its shape."""
    if isinstance(value, (list, tuple)):
        return [structure(v) for v in value]
    return tuple(value.shape)


def test_masked_rnn_of_cells_matches_keras(rng):
    x = rng.standard_normal((3, 6, 2)).astype("float32")
    x[0, 4:] = 0
    x[2, :2] = 0

    def stack(lib, cells):
        return [lib.layers.Masking(), lib.layers.RNN(cells, return_sequences=True), lib.layers.Dense(2)]
    ours = gpu_dl.Sequential([layers.Input((6, 2))] + stack(gpu_dl, [layers.GRUCell(3), layers.LSTMCell(4)]))
    theirs = keras.Sequential([keras.Input((6, 2))] + stack(keras, [keras.layers.GRUCell(3),
                                                                      keras.layers.LSTMCell(4)]))
    theirs.set_weights(ours.get_weights())
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_training_steps_match_keras(rng):
    def stack(lib):
        return [lib.layers.RNN(lib.layers.LSTMCell(6), return_sequences=True),
                lib.layers.RNN([lib.layers.SimpleRNNCell(4), lib.layers.GRUCell(3)]),
                lib.layers.Dense(4, activation="softmax")]
    gpu_dl.backend.set_random_seed(5)
    ours = gpu_dl.Sequential([layers.Input((5, 3))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((5, 3))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (5, 3), classes=4, batch=8)


def _models(lib, input_lib):
    return lib.Sequential([input_lib((6, 3)),
                           lib.layers.RNN(lib.layers.GRUCell(4, reset_after=False), return_sequences=True),
                           lib.layers.RNN([lib.layers.LSTMCell(3), lib.layers.LSTMCell(2),
                                           lib.layers.SimpleRNNCell(2)], go_backwards=True),
                           lib.layers.Dense(2)])


def test_keras_file_from_keras_loads_in_gpu_dl(rng, tmp_path):
    theirs = _models(keras, keras.Input)
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "theirs.keras")
    ours = gpu_dl.models.load_model(tmp_path / "theirs.keras")
    assert type(ours.layers[1].cell) is layers.StackedRNNCells
    assert [type(c).__name__ for c in ours.layers[1].cell.cells] == ["LSTMCell", "LSTMCell", "SimpleRNNCell"]
    assert ours.layers[0].cell.reset_after is False and ours.layers[1].go_backwards
    x = rng.standard_normal((4, 6, 3)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_keras_file_from_gpu_dl_loads_in_keras(rng, tmp_path):
    ours = _models(gpu_dl, layers.Input)
    ours.save(tmp_path / "ours.keras")
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs = keras.models.load_model(tmp_path / "ours.keras")
    x = rng.standard_normal((4, 6, 3)).astype("float32")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    fresh = _models(keras, keras.Input)
    fresh.load_weights(tmp_path / "ours.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    cell_entry = theirs.layers[1].get_config()["cell"]
    assert cell_entry["class_name"] == "StackedRNNCells"


def test_weights_file_from_keras_loads_in_gpu_dl(rng, tmp_path):
    theirs = _models(keras, keras.Input)
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    ours = _models(gpu_dl, layers.Input)
    ours.load_weights(tmp_path / "theirs.weights.h5")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_summary_matches_keras():
    def rows(text):
        return [line for line in text.splitlines() if "RNN" in line or "params" in line]
    ours, theirs = _models(gpu_dl, layers.Input), _models(keras, keras.Input)
    lines_ours, lines_theirs = [], []
    ours.summary(print_fn=lines_ours.append)
    theirs.summary(print_fn=lines_theirs.append)

    def cleaned(lines):   # the cells' text, whatever the column widths and the layers' numbering
        return [[re.sub(r"rnn(_\d+)? \(RNN\)", "rnn (RNN)", cell.strip()) for cell in line.split("│") if cell.strip()]
                for line in rows("\n".join(lines))]
    assert cleaned(lines_ours) == cleaned(lines_theirs)


def test_custom_cell_in_a_keras_file_loads_with_a_gpu_dl_class(tmp_path):
    """A Keras file holding RNN(a cell of the user's own) loads with gpu_dl's version of that class given in
    custom_objects (and gives Keras's predictions); without it, or with Keras's class, it is refused."""
    def minimal_cell(lib):
        class MinimalCell(lib.layers.Layer):
            def __init__(self, units, **kwargs):
                super().__init__(**kwargs)
                self.units = units
                self.state_size = units

            def build(self, input_shape):
                self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

            def call(self, inputs, states):
                h = lib.ops.matmul(inputs, self.kernel) + states[0]
                return h, [h]

            def get_config(self):
                return {**super().get_config(), "units": self.units}
        return MinimalCell
    theirs_class = keras.saving.register_keras_serializable(package="oracle_cells")(minimal_cell(keras))
    theirs = keras.Sequential([keras.Input((4, 2)), keras.layers.RNN(theirs_class(3))])
    theirs.save(tmp_path / "custom.keras")
    with pytest.raises(ValueError, match=r"'MinimalCell' names the module"):
        gpu_dl.models.load_model(tmp_path / "custom.keras")
    with pytest.raises(ValueError, match=r"RNN cell 'MinimalCell' is not supported: gpu_dl's RNN takes its built-in "
                                         r"cells .*, or a cell class of your own"):
        gpu_dl.models.load_model(tmp_path / "custom.keras", custom_objects={"oracle_cells>MinimalCell": theirs_class})
    ours_class = minimal_cell(gpu_dl)
    ours = gpu_dl.models.load_model(tmp_path / "custom.keras", custom_objects={"oracle_cells>MinimalCell": ours_class})
    assert type(ours.layers[0].cell) is ours_class
    x = numpy.random.default_rng(2).standard_normal((3, 4, 2)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def _min_rnn_cell(lib):
    """A cell of the user's own with one state, as in Keras's RNN guide."""
    class MinimalRNNCell(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

        def call(self, inputs, states):
            output = lib.ops.tanh(lib.ops.matmul(inputs, self.kernel) + states[0])
            return output, [output]

    return MinimalRNNCell


@pytest.mark.parametrize("make", [
    lambda lib: [lib.layers.LSTMCell(3), lib.layers.GRUCell(4)],
    lambda lib: lib.layers.StackedRNNCells([lib.layers.SimpleRNNCell(2), lib.layers.LSTMCell(3)]),
    lambda lib: [lib.layers.GRUCell(3)],
    lambda lib: [_min_rnn_cell(lib)(3), _min_rnn_cell(lib)(2)],
    lambda lib: lib.layers.LSTMCell(3)])
def test_stateful_rnn_states_are_nested_per_cell_as_in_keras(rng, make):
    """A stateful RNN of stacked cells keeps one list of states per cell in ``states``, as Keras's does (a
    single cell's RNN a flat list); the values are the same after the same calls with the same weights."""
    ours, theirs = layers.RNN(make(gpu_dl), stateful=True), keras.layers.RNN(make(keras), stateful=True)
    x = rng.standard_normal((2, 5, 4)).astype("float32")
    # (Keras's reset_state fails on a stacked RNN's nested states: the weights are set before the first call.)
    ours.build(x.shape)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    ours(x)
    theirs(x)

    def structure(states):
        return [structure(s) if isinstance(s, (list, tuple)) else tuple(s.shape) for s in states]

    assert structure(ours.states) == structure(theirs.states)
    flat = [s for group in ours.states for s in (group if isinstance(group, list) else [group])]
    their_flat = [s for group in theirs.states for s in (group if isinstance(group, list) else [group])]
    for a, b in zip(flat, their_flat):
        numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cells", [("LSTMCell", "LSTMCell"), ("LSTMCell", "GRUCell"), ("GRUCell",), ("LSTMCell",),
                                   ("SimpleRNNCell", "SimpleRNNCell")])
def test_stacked_states_are_nested_as_keras_nests_them(rng, cells):
    x = rng.standard_normal((3, 5, 2)).astype("float32")
    ours = layers.RNN([getattr(layers, c)(u) for c, u in zip(cells, (4, 3))], return_state=True)
    theirs = keras.layers.RNN([getattr(keras.layers, c)(u) for c, u in zip(cells, (4, 3))], return_state=True)
    assert structure(ours(gpu_dl.Input((5, 2)))) == structure(theirs(keras.Input((5, 2))))
    theirs.set_weights(ours.get_weights())
    got, want = ours(x), theirs(x)
    assert structure(got) == structure(want)
    for a, b in zip(flatten_structure(got), flatten_structure(want)):
        numpy.testing.assert_allclose(a, to_numpy(b), rtol=1e-5, atol=1e-6)
    # initial states given per cell (a cell of one state given its state alone): Keras keeps that form
    given = [[rng.standard_normal((3, u)).astype("float32") for _ in range(2)] if c == "LSTMCell" else
             rng.standard_normal((3, u)).astype("float32") for c, u in zip(cells, (4, 3))]
    got, want = ours(x, initial_state=given), theirs(x, initial_state=given)
    assert structure(got) == structure(want)
    for a, b in zip(flatten_structure(got), flatten_structure(want)):
        numpy.testing.assert_allclose(a, to_numpy(b), rtol=1e-5, atol=1e-6)


def nested_state_model(lib):
    """A stack started from states given per cell, its states feeding a head and among the outputs."""
    inputs = [lib.Input((5, 2), name="seq"), lib.Input((4,), name="h0"), lib.Input((4,), name="c0"),
              lib.Input((3,), name="g0")]
    rnn = lib.layers.RNN([lib.layers.LSTMCell(4, name="first"), lib.layers.GRUCell(3, name="second")],
                         return_sequences=True, return_state=True, name="stack")
    seq, (h1, c1), h2 = rnn(inputs[0], initial_state=[[inputs[1], inputs[2]], inputs[3]])
    head = lib.layers.Dense(2, name="head")(lib.layers.Concatenate(name="joined")([h2, c1]))
    return lib.Model(inputs, [head, [seq, [h1, c1], h2]], name="nested")


def test_nested_states_config_and_files_are_keras_s(rng, tmp_path):
    ours, theirs = nested_state_model(gpu_dl), nested_state_model(keras)
    theirs.set_weights(ours.get_weights())
    mine, keras_config = ours.get_config(), theirs.get_config()
    assert mine["output_layers"] == keras_config["output_layers"]
    # the calls as Keras records them (its tuples are lists in the file)
    entries = [json.loads(json.dumps({e["name"]: e["inbound_nodes"] for e in c["layers"]}))
               for c in (mine, keras_config)]
    assert entries[0] == entries[1]
    xs = [rng.standard_normal(s).astype("float32") for s in ((3, 5, 2), (3, 4), (3, 4), (3, 3))]
    want = theirs.predict(xs, verbose=0)
    got = ours.predict(xs, verbose=0)
    assert structure(got) == structure(want)
    for a, b in zip(flatten_structure(got), flatten_structure(want)):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Keras's file loads here, and ours in Keras, with the outputs in their structure
    theirs.save(tmp_path / "theirs.keras")
    ours.save(tmp_path / "ours.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "theirs.keras")
    in_keras = keras.models.load_model(tmp_path / "ours.keras")
    for model in (loaded, in_keras):
        result = model.predict(xs, verbose=0)
        assert structure(result) == structure(want)
        for a, b in zip(flatten_structure(result), flatten_structure(want)):
            numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
