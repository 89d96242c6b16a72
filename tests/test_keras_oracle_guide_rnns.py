"""Keras 3's guide "Working with RNNs" against Keras itself: the guide's programs (tests/guide_rnn_programs.py) give
the same summaries, outputs, states, training logs and weights in both libraries (Keras's initial weights copied
into gpu_dl's model)."""
import os
import re

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import guide_rnn_programs as guide  # noqa: E402
from keras_steps import assert_training_steps_match, summary_rows  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


@pytest.mark.parametrize("program", [guide.embedding_lstm, guide.gru_simple_rnn, guide.encoder_decoder,
                                     guide.bidirectional])
def test_the_guides_summaries(program, monkeypatch):
    gpu_dl.backend.clear_session()
    keras.backend.clear_session()
    ours, theirs = program(gpu_dl), program(keras)
    assert summary_rows(ours, monkeypatch) == summary_rows(theirs, monkeypatch)
    if theirs.built:
        assert ours.count_params() == theirs.count_params()
        assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]


def test_the_encoder_decoder_predicts_as_keras():
    ours, theirs = guide.encoder_decoder(gpu_dl), guide.encoder_decoder(keras)
    ours.set_weights(theirs.get_weights())
    rng = numpy.random.default_rng(3)
    x = [rng.integers(0, 1000, (4, 7)), rng.integers(0, 2000, (4, 5))]
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_the_bidirectional_model_predicts_as_keras():
    ours, theirs = guide.bidirectional(gpu_dl), guide.bidirectional(keras)
    ours.set_weights(theirs.get_weights())
    x = numpy.random.default_rng(4).standard_normal((3, 5, 10)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_cross_batch_statefulness_and_state_reuse():
    paragraph1, paragraph2, paragraph3 = guide.paragraphs()
    ours, theirs = gpu_dl.layers.LSTM(64, stateful=True), keras.layers.LSTM(64, stateful=True)
    as_array = keras.ops.convert_to_numpy
    first = as_array(theirs(paragraph1))
    ours(paragraph1[:, :1])
    ours.set_weights(theirs.get_weights())
    ours.reset_states()
    numpy.testing.assert_allclose(ours(paragraph1), first, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(ours(paragraph2), as_array(theirs(paragraph2)), rtol=1e-5, atol=1e-6)
    for a, b in zip(ours.states, theirs.states):
        numpy.testing.assert_allclose(a, as_array(b), rtol=1e-5, atol=1e-6)
    # the recorded states are not weights
    assert len(ours.weights) == len(theirs.weights) == 3

    new_ours, new_theirs = gpu_dl.layers.LSTM(64), keras.layers.LSTM(64)
    expected = as_array(new_theirs(paragraph3, initial_state=theirs.states))
    new_ours(paragraph3[:, :1])
    new_ours.set_weights(new_theirs.get_weights())
    numpy.testing.assert_allclose(new_ours(paragraph3, initial_state=ours.states), expected, rtol=1e-5, atol=1e-6)

    # reset_states: the next call starts from zeros again
    ours.reset_states()
    theirs.reset_states()
    numpy.testing.assert_allclose(ours(paragraph1), first, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(as_array(theirs(paragraph1)), first, rtol=1e-6, atol=1e-7)


def _digits_rows(seed=0):
    rng = numpy.random.default_rng(seed)
    return (rng.random((256, 28, 28)), rng.integers(0, 10, 256)), (rng.random((64, 28, 28)), rng.integers(0, 10, 64))


def _assert_same_history(ours, theirs):
    assert list(ours.history) == list(theirs.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key in theirs.history:
        numpy.testing.assert_allclose(ours.history[key], theirs.history[key], rtol=2e-5, atol=1e-6, err_msg=key)


def test_the_lstm_and_the_lstm_cell_models_train_as_keras(capsys):
    (x_train, y_train), (x_test, y_test) = _digits_rows()
    fit = dict(validation_data=(x_test, y_test), batch_size=64, epochs=1, shuffle=False)
    theirs = guide.compile_for_digits(keras, guide.build_model(keras, allow_cudnn_kernel=True))
    ours = guide.compile_for_digits(gpu_dl, guide.build_model(gpu_dl, allow_cudnn_kernel=True))
    ours.set_weights(theirs.get_weights())
    capsys.readouterr()
    ours_history = ours.fit(x_train, y_train, verbose=2, **fit)
    printed = capsys.readouterr().out
    # one epoch: no "Epoch 1/1" line, the logs sorted by key, as Keras prints them
    assert "Epoch" not in printed
    assert re.search(r"^4/4 - .* - accuracy: [\d.]+ - loss: [\d.]+ - val_accuracy: [\d.]+ - val_loss: [\d.]+$",
                     printed, flags=re.M)
    _assert_same_history(ours_history, theirs.fit(x_train, y_train, verbose=0, **fit))
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

    # RNN(LSTMCell) from the trained LSTM's weights
    cell_theirs = guide.compile_for_digits(keras, guide.build_model(keras, allow_cudnn_kernel=False))
    cell_ours = guide.compile_for_digits(gpu_dl, guide.build_model(gpu_dl, allow_cudnn_kernel=False))
    cell_theirs.set_weights(theirs.get_weights())
    cell_ours.set_weights(ours.get_weights())
    _assert_same_history(cell_ours.fit(x_train, y_train, verbose=0, **fit),
                         cell_theirs.fit(x_train, y_train, verbose=0, **fit))

    # inference on one sample with a model made from the trained weights
    cpu_theirs, cpu_ours = guide.build_model(keras), guide.build_model(gpu_dl)
    cpu_theirs.set_weights(theirs.get_weights())
    cpu_ours.set_weights(ours.get_weights())
    sample = numpy.expand_dims(x_train[0], 0)
    expected = keras.ops.convert_to_numpy(cpu_theirs.predict_on_batch(sample))
    got = cpu_ours.predict_on_batch(sample)
    assert got.shape == expected.shape == (1, 10)
    numpy.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert numpy.argmax(got, axis=1) == numpy.argmax(expected, axis=1)


def test_the_nested_cell_is_beyond_both():
    """Keras 3's RNN takes one sequence tensor: the guide's nested-input cell fails in its build (the cell is
    given the shape of the first input alone). gpu_dl refuses its nested state_size when the RNN is made."""
    for lib in (keras, gpu_dl):
        lib.backend.clear_session()
    cell = guide.nested_cell_class(keras)(10, 20, 30)
    with pytest.raises(IndexError):
        keras.layers.RNN(cell)((keras.Input((None, 32)), keras.Input((None, 64, 32))))
    with pytest.raises(ValueError, match=r"RNN layer 'rnn': the cell NestedCell must have a state_size that is a "
                                         r"positive integer or a non-empty list of positive integers"):
        gpu_dl.layers.RNN(guide.nested_cell_class(gpu_dl)(10, 20, 30))


def _minimal_cells(lib, units):
    """MinimalRNNCell(units), or a list of them for a tuple of units (stacked)."""
    cls = guide.minimal_rnn_cell_class(lib)
    return [cls(u) for u in units] if isinstance(units, tuple) else cls(units)


def _minimal_cell_models(flags, shape=(None, 5), units=32, head=None):
    """The guide's RNN(MinimalRNNCell(units)) on Input(shape) in both libraries (a Dense head where asked), with
    Keras's initial weights in gpu_dl's; a tuple of units stacks that many cells."""
    models = []
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()
        x = lib.Input(shape)
        y = lib.layers.RNN(_minimal_cells(lib, units), **flags)(x)
        if head is not None:
            y = lib.layers.Dense(head, activation="softmax")(y)
        models.append(lib.Model(x, y))
    ours, theirs = models
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.get_weights()])
    return ours, theirs


def _flat(out):
    """Outputs and states as one list of arrays (Keras nests stacked cells' states in a list per cell)."""
    if not isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(out)]
    return [a for o in out for a in _flat(o)]


@pytest.mark.parametrize("units", [32, (8, 32)])
@pytest.mark.parametrize("flags,masked", [
    ({}, False), ({"return_sequences": True, "return_state": True}, False), ({"go_backwards": True}, False),
    ({"return_sequences": True, "go_backwards": True, "unroll": True}, False),
    ({}, True), ({"return_sequences": True, "return_state": True}, True),
    ({"return_sequences": True, "go_backwards": True, "return_state": True}, True),
    ({"return_sequences": True, "zero_output_for_mask": True}, True)])
def test_the_minimal_cell_runs_as_keras(flags, masked, units):
    """The layer called on arrays (with a mask of padded steps where asked; Keras's unrolled loop fails on a
    mask read backwards, so unroll goes without), Keras's weights in gpu_dl's."""
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((3, 6, 5)).astype("float32")
    mask = numpy.ones((3, 6), bool)
    mask[0, 4:] = mask[2, :2] = False
    initial = [rng.standard_normal((3, u)).astype("float32") for u in (units if isinstance(units, tuple) else [units])]
    if isinstance(units, tuple):
        initial = [[s] for s in initial]        # Keras's form: a list of states per cell
    results, weights = [], None
    for lib in (keras, gpu_dl):     # Keras first: its initial weights go into gpu_dl's layer
        lib.backend.clear_session()
        rnn = lib.layers.RNN(_minimal_cells(lib, units), **flags)
        kwargs = {"mask": mask} if masked else {"initial_state": initial}
        if lib is gpu_dl:
            rnn.build((None, 6, 5))
            rnn.set_weights(weights)
        out = rnn(x, **kwargs)
        weights = [keras.ops.convert_to_numpy(w) for w in rnn.get_weights()]
        results.append(_flat(out))
    sizes = units if isinstance(units, tuple) else (units,)
    assert [w.shape for w in weights] == [s for u, d in zip(sizes, (5,) + sizes) for s in ((d, u), (u, u))]
    want, got = results
    assert len(got) == len(want) == 1 + len(sizes) * bool(flags.get("return_state"))
    for a, b in zip(got, want):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_the_minimal_cell_model_summary(monkeypatch):
    ours, theirs = _minimal_cell_models({"return_sequences": True}, head=3)
    assert summary_rows(ours, monkeypatch) == summary_rows(theirs, monkeypatch)
    assert ours.count_params() == theirs.count_params() == 5 * 32 + 32 * 32 + 33 * 3


@pytest.mark.parametrize("units", [8, (6, 4)])
def test_the_minimal_cell_trains_as_keras(units):
    ours, theirs = _minimal_cell_models({}, shape=(7, 5), units=units, head=3)
    assert_training_steps_match(keras, ours, theirs, numpy.random.default_rng(6), (7, 5), classes=3, batch=5)


@pytest.mark.parametrize("units", [6, (3, 6)])
def test_the_minimal_cell_saves_and_loads_both_ways(tmp_path, units):
    ours, theirs = _minimal_cell_models({"return_sequences": True}, shape=(4, 5), units=units)
    x = numpy.random.default_rng(7).standard_normal((3, 4, 5)).astype("float32")
    cells = [getattr(m.layers[1].cell, "cells", [m.layers[1].cell])[-1] for m in (ours, theirs)]
    ours_class, theirs_class = type(cells[0]), type(cells[1])
    ours.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras", custom_objects={"MinimalRNNCell": theirs_class})
    last = getattr(loaded.layers[1].cell, "cells", [loaded.layers[1].cell])[-1]
    assert type(last) is theirs_class and last.units == 6
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)), ours.predict(x, verbose=0),
                                  rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "k.keras")
    back = gpu_dl.saving.load_model(tmp_path / "k.keras", custom_objects={"MinimalRNNCell": ours_class})
    assert type(getattr(back.layers[1].cell, "cells", [back.layers[1].cell])[-1]) is ours_class
    for a, b in zip(back.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, keras.ops.convert_to_numpy(b))
    numpy.testing.assert_allclose(back.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                                  rtol=1e-5, atol=1e-6)


def test_input_shape_given_to_a_layer_warns_as_keras_does():
    messages = []
    for lib in (gpu_dl, keras):
        with pytest.warns(UserWarning) as caught:
            guide.bidirectional(lib)
            guide.build_model(lib, allow_cudnn_kernel=False)
        messages.append([str(w.message) for w in caught if "input_shape" in str(w.message)])
        # once per layer given it (Bidirectional's copies of its layer are made without it)
        assert len(messages[-1]) == 2
    assert messages[0] == messages[1]
    assert messages[0][0].startswith("Do not pass an `input_shape`/`input_dim` argument to a layer.")
