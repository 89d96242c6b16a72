"""Recurrent layers against Keras 3 itself (where Keras is installed): same weights, same outputs and
the same training steps."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


@pytest.mark.parametrize("name,kwargs", [
    ("LSTM", {}),
    ("LSTM", {"return_sequences": True, "go_backwards": True, "unit_forget_bias": False}),
    ("GRU", {"return_sequences": True}),
    ("GRU", {"go_backwards": True, "use_bias": False}),
    ("SimpleRNN", {"return_sequences": True, "activation": "relu"}),
])
def test_layer_output_matches_keras(rng, name, kwargs):
    x = rng.standard_normal((3, 7, 5)).astype("float32")
    ours, theirs = getattr(layers, name)(4, **kwargs), getattr(keras.layers, name)(4, **kwargs)
    y = ours(x)
    theirs.build(x.shape)
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    theirs.set_weights(ours.get_weights())
    numpy.testing.assert_allclose(y, keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
def test_bidirectional_matches_keras(rng, merge_mode):
    x = rng.standard_normal((2, 6, 3)).astype("float32")
    ours = layers.Bidirectional(layers.GRU(4, return_sequences=True), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True), merge_mode=merge_mode)
    y = ours(x)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    numpy.testing.assert_allclose(y, keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)


def test_stacked_recurrent_training_steps_match_keras(rng):
    def stack(lib):
        return [lib.layers.LSTM(6, return_sequences=True),
                lib.layers.Bidirectional(lib.layers.GRU(3)),
                lib.layers.Dense(4, activation="softmax")]
    gpu_dl.backend.set_random_seed(4)
    ours = gpu_dl.Sequential([layers.Input((5, 3))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((5, 3))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (5, 3), classes=4, batch=8)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_stateful_model_saved_by_keras_carries_its_states_as_keras_does(rng, tmp_path, name):
    theirs = keras.Sequential([keras.Input(batch_shape=(2, 5, 3)), getattr(keras.layers, name)(4, stateful=True),
                               keras.layers.Dense(2)])
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "stateful.keras")
    ours = gpu_dl.models.load_model(tmp_path / "stateful.keras")
    assert ours.layers[0].stateful
    batches = [rng.standard_normal((2, 5, 3)).astype("float32") for _ in range(3)]
    for x in batches:
        numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.layers[0].reset_state()
    theirs.layers[0].reset_state()
    numpy.testing.assert_allclose(ours.predict(batches[1], verbose=0), theirs.predict(batches[1], verbose=0),
                                  rtol=1e-5, atol=1e-6)



def _state_arrays(layer):
    return None if layer.states is None else [keras.ops.convert_to_numpy(s) for s in layer.states]


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_stateful_states_after_build_call_and_reset_are_keras_s(rng, name):
    """Zeros of the built batch size from the build, the last call's states after it, zeros of that batch size
    after reset_state(); another batch size refused before and after the reset."""
    models = [lib.Sequential([lib.Input((5, 3), batch_size=4), lib.layers.__dict__[name](2, stateful=True)])
              for lib in (gpu_dl, keras)]
    ours, theirs = (m.layers[0] for m in models)
    after_build = [_state_arrays(ours), _state_arrays(theirs)]
    assert [[a.shape for a in s] for s in after_build][0] == [[a.shape for a in s] for s in after_build][1]
    assert all(not a.any() for s in after_build for a in s) and after_build[0][0].shape == (4, 2)
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((4, 5, 3)).astype("float32")
    for model in models:
        model.predict(x, batch_size=4, verbose=0)
    for a, b in zip(_state_arrays(ours), _state_arrays(theirs)):
        assert a.any()
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ours.reset_states()
    theirs.reset_states()
    for a, b in zip(_state_arrays(ours), _state_arrays(theirs)):
        assert a.shape == b.shape == (4, 2) and not a.any() and not b.any()
    for layer in (ours, theirs):
        with pytest.raises(ValueError, match="batch"):
            layer(numpy.ones((3, 5, 3), "float32"))


def test_embedding_and_lstm_train_as_keras_does(rng, tmp_path):
    def stack(lib):
        return [lib.layers.Embedding(11, 4), lib.layers.LSTM(5), lib.layers.Dense(3, activation="softmax")]
    gpu_dl.backend.set_random_seed(2)
    ours = gpu_dl.Sequential([layers.Input((6,))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((6,))] + stack(keras))
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    for step in range(4):
        x = rng.integers(0, 11, (8, 6))
        x[:, 0] = 3                               # a repeated id: its gradient rows add up
        y = rng.integers(0, 3, 8)
        # no reset_metrics between steps: each call reports its own batch in both
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=2e-5), step
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    theirs.save(tmp_path / "embedding.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "embedding.keras")
    x = rng.integers(0, 11, (5, 6))
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head", ["sequence labels", "one label"])
def test_masked_sequences_train_as_keras_does(rng, head):
    def stack(lib):
        if head == "sequence labels":   # the mask reaches the loss and the metric
            return [lib.layers.Embedding(9, 4, mask_zero=True), lib.layers.LSTM(5, return_sequences=True),
                    lib.layers.Dense(3, activation="softmax")]
        return [lib.layers.Masking(-1.0), lib.layers.Bidirectional(lib.layers.GRU(4, return_sequences=True)),
                lib.layers.SimpleRNN(3, go_backwards=True), lib.layers.Dense(3, activation="softmax")]
    gpu_dl.backend.set_random_seed(6)
    shape = (6,) if head == "sequence labels" else (6, 2)
    ours = gpu_dl.Sequential([layers.Input(shape)] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input(shape)] + stack(keras))
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for step in range(4):
        lengths = rng.integers(1, 7, 8)
        keep = numpy.arange(6)[None, :] >= 6 - lengths[:, None]        # padded in front, as pad_sequences does
        if head == "sequence labels":
            x = numpy.where(keep, rng.integers(1, 9, (8, 6)), 0)
            y = rng.integers(0, 3, (8, 6))
        else:
            x = numpy.where(keep[..., None], rng.standard_normal((8, 6, 2)), -1.0).astype("float32")
            y = rng.integers(0, 3, 8)
        ours_logs, theirs_logs = ours.train_on_batch(x, y), theirs.train_on_batch(x, y)
        numpy.testing.assert_allclose(ours_logs, theirs_logs, rtol=2e-5, atol=1e-6, err_msg=f"step {step}")
    numpy.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_outputs_at_masked_steps_are_keras_s(rng, tmp_path):
    # Bidirectional merges zeros at masked steps; a plain layer repeats its last output unless
    # zero_output_for_mask; the mask passes on through return_sequences layers and Dense.
    theirs = keras.Sequential([keras.Input((7,)), keras.layers.Embedding(9, 3, mask_zero=True),
                               keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True)),
                               keras.layers.GRU(3, return_sequences=True, go_backwards=True),
                               keras.layers.SimpleRNN(2, return_sequences=True, zero_output_for_mask=True),
                               keras.layers.Dense(2)])
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "masked.keras")
    ours = gpu_dl.models.load_model(tmp_path / "masked.keras")
    x = rng.integers(1, 9, (5, 7))
    x[0, :3] = 0
    x[1, 4:] = 0
    x[2, 2] = 0
    x[3, :] = 0
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_gru_with_reset_before_matches_keras(rng, tmp_path):
    def stack(lib):
        return [lib.layers.GRU(5, reset_after=False, return_sequences=True, recurrent_dropout=0.0),
                lib.layers.GRU(3, reset_after=False, go_backwards=True), lib.layers.Dense(4, activation="softmax")]
    gpu_dl.backend.set_random_seed(8)
    ours = gpu_dl.Sequential([layers.Input((6, 3))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((6, 3))] + stack(keras))
    assert [w.shape for w in ours.get_weights()][:3] == [(3, 15), (5, 15), (15,)]
    assert_training_steps_match(keras, ours, theirs, rng, (6, 3), classes=4, batch=8)
    theirs.save(tmp_path / "gru.keras")
    x = rng.standard_normal((4, 6, 3)).astype("float32")
    numpy.testing.assert_allclose(gpu_dl.models.load_model(tmp_path / "gru.keras").predict(x, verbose=0),
                                  theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_steps_from_a_given_initial_state_match_keras(rng, name, return_sequences):
    x = rng.standard_normal((3, 6, 2)).astype("float32")
    mask = numpy.array([[0, 0, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], bool)
    initial = [rng.standard_normal((3, 4)).astype("float32") for _ in range(2 if name == "LSTM" else 1)]
    ours = getattr(layers, name)(4, return_sequences=return_sequences, return_state=True)
    theirs = getattr(keras.layers, name)(4, return_sequences=return_sequences, return_state=True)
    got = ours(x, mask=mask, initial_state=initial)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    want = theirs(x, mask=mask, initial_state=initial)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, keras.ops.convert_to_numpy(w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs,gates", [("LSTM", {}, 4), ("GRU", {}, 3), ("GRU", {"reset_after": False}, 3)])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.usefixtures("on_cpu")
def test_recurrent_dropout_drops_each_gate_with_its_own_masks_as_keras(rng, name, kwargs, gates, return_sequences,
                                                                       dropout):
    """With recurrent_dropout Keras's gated cells draw one input and one recurrent mask per gate; on NumPy gpu_dl
    draws those of Keras's NumPy backend, which are handed to Keras's (torch) cell here."""
    options = dict(dropout=dropout, recurrent_dropout=0.4, seed=6, return_sequences=return_sequences, **kwargs)
    ours, theirs = getattr(layers, name)(4, **options), getattr(keras.layers, name)(4, **options)
    x = rng.standard_normal((3, 5, 2)).astype("float32")
    ours(x)
    theirs(x)
    theirs.set_weights(ours.get_weights())
    ours.seed_generator.state.assign([6, 0])
    got = ours(x, training=True)

    def keep(counter, shape, rate):     # Keras's NumPy backend's keep-mask of the seed pair (6, counter)
        uniform = numpy.random.default_rng(numpy.array([6, counter], numpy.uint32)).uniform(size=shape)
        return keras.ops.convert_to_tensor(((uniform < 1 - rate) / (1 - rate)).astype("float32"))
    first = gates if dropout else 0             # the input pairs come first
    recurrent = [keep(first + g, (3, 4), 0.4) for g in range(gates)]
    theirs.cell._dropout_mask = [keep(g, (3, 2), dropout) for g in range(gates)] if dropout else None
    theirs.cell._recurrent_dropout_mask = recurrent
    numpy.testing.assert_allclose(got, keras.ops.convert_to_numpy(theirs(x, training=True)), rtol=1e-5, atol=1e-6)
    # and not what one recurrent mask for every gate would give
    theirs.cell._dropout_mask = [keep(g, (3, 2), dropout) for g in range(gates)] if dropout else None
    theirs.cell._recurrent_dropout_mask = [recurrent[0]] * gates
    assert not numpy.allclose(got, keras.ops.convert_to_numpy(theirs(x, training=True)), atol=1e-4)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN", "RNN"])
def test_a_stateful_layer_built_without_a_batch_size_is_refused_as_keras_refuses_it(kind):
    def programs(lib):
        L = lib.layers
        if kind == "RNN":
            L = type("L", (), {"RNN": lambda units, **kw: lib.layers.RNN(lib.layers.LSTMCell(units), **kw)})
        yield "sequential", lambda: lib.Sequential([lib.Input((4, 2)), getattr(L, kind)(3, stateful=True)])
        yield "batch_shape", lambda: lib.Sequential([lib.Input(batch_shape=(5, 4, 2)),
                                                     getattr(L, kind)(3, stateful=True)])

        def functional():
            x = lib.Input((4, 2))
            return lib.Model(x, getattr(L, kind)(3, stateful=True)(x))
        yield "functional", functional
    for (name, ours), (_, theirs) in zip(programs(gpu_dl), programs(keras)):
        outcomes = []
        for program in (ours, theirs):
            try:
                model = program()
                outcomes.append(("built", model.layers[-1].built))
            except ValueError as e:
                text = str(e)
                outcomes.append(("refused", text[text.index("When using"):]))
        assert outcomes[0] == outcomes[1], name
        assert outcomes[0][0] == ("built" if name == "batch_shape" else "refused"), name


@pytest.mark.parametrize("name,shape", [("ConvLSTM1D", (4, 6, 2)), ("ConvLSTM2D", (4, 6, 5, 2)),
                                        ("ConvLSTM3D", (3, 4, 4, 3, 1))])
def test_stateful_conv_lstm_without_a_batch_size_is_refused_as_keras_refuses_it(name, shape):
    message = "When using `stateful=True` in a RNN, the batch size must be static"
    with pytest.raises(ValueError, match=message):
        getattr(keras.layers, name)(2, 3, padding="same", stateful=True)(keras.Input(shape))
    with pytest.raises(ValueError, match=rf"'carry'.*{message}.*sequence.shape=\(None, {shape[0]}"):
        gpu_dl.Sequential([layers.Input(shape), getattr(layers, name)(2, 3, padding="same", stateful=True,
                                                                       name="carry")])
    # with a fixed batch size both make zero states of it
    ours = gpu_dl.Sequential([layers.Input(shape, batch_size=2), getattr(layers, name)(2, 3, padding="same",
                                                                                        stateful=True)])
    theirs = keras.Sequential([keras.Input(batch_shape=(2,) + shape),
                               getattr(keras.layers, name)(2, 3, padding="same", stateful=True)])
    want = [keras.ops.convert_to_numpy(s) for s in theirs.layers[0].states]
    got = ours.layers[0].states
    assert [g.shape for g in got] == [w.shape for w in want] and not any(g.numpy().any() for g in got)


@pytest.mark.parametrize("name,shape", [("LSTM", (4, 3)), ("GRU", (4, 3)), ("ConvLSTM2D", (3, 4, 4, 2)),
                                        ("RNN", (4, 3))])
def test_stateful_states_are_variables_used_as_keras_users_use_them(rng, name, shape):
    def make(lib):
        if name == "RNN":
            layer = lib.layers.RNN([lib.layers.LSTMCell(3), lib.layers.GRUCell(2)], stateful=True, name="carry")
        elif name == "ConvLSTM2D":
            layer = lib.layers.ConvLSTM2D(2, 3, padding="same", stateful=True, name="carry")
        else:
            layer = getattr(lib.layers, name)(3, stateful=True, name="carry")
        return layer
    ours, theirs = make(gpu_dl), make(keras)
    x = rng.standard_normal((2,) + shape).astype("float32")
    ours(x)
    theirs(x)
    theirs.set_weights(ours.get_weights())
    flat_ours, flat_theirs = keras.tree.flatten(ours.states), keras.tree.flatten(theirs.states)
    # non-trainable Variables named as Keras names them, not among the layer's weights or variables
    assert [(v.name, v.path, v.trainable, v.shape) for v in flat_ours] == \
        [(v.name, v.path, v.trainable, tuple(v.shape)) for v in flat_theirs]
    assert len(ours.weights) == len(theirs.weights) and not ours.non_trainable_weights
    assert not any(v is s for v in ours.variables for s in flat_ours)
    # what a Keras user does with them: read, assign, and the next call starts from what was assigned
    values = [rng.standard_normal(v.shape).astype("float32") for v in flat_theirs]
    for lib_states in (flat_ours, flat_theirs):
        for v, value in zip(lib_states, values):
            v.assign(value)
    for a, b in zip(flat_ours, flat_theirs):
        numpy.testing.assert_array_equal(a.numpy(), keras.ops.convert_to_numpy(b.value))
    got, want = ours(x), keras.ops.convert_to_numpy(theirs(x))
    numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(keras.tree.flatten(ours.states), flat_theirs):
        numpy.testing.assert_allclose(a.numpy(), keras.ops.convert_to_numpy(b.value), rtol=1e-5, atol=1e-6)
    assert all(a is b for a, b in zip(keras.tree.flatten(ours.states), flat_ours))     # the same Variables
    ours.reset_states()
    if name != "RNN":       # Keras's reset_state fails on the nested states of stacked cells; gpu_dl zeroes them
        theirs.reset_states()
        numpy.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)
    else:
        assert not any(v.numpy().any() for v in flat_ours)
    with pytest.raises(TypeError):     # as in Keras 3, reset_states takes no states
        ours.reset_states(states=values)
