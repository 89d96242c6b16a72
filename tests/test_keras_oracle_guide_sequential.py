"""Keras's guide "The Sequential model" against Keras itself (tests/guide_sequential_programs.py): the same layers,
names, weights and summaries as models are built, grown and shrunk, the same outputs from the same weights, feature
extraction through ``model.inputs`` and ``layer.output``, and both transfer-learning blueprints trained alike, the
first from a weights file Keras wrote."""
import contextlib
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import guide_sequential_programs as guide  # noqa: E402
from keras_steps import assert_same_summary, summary_rows  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def _clear():
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()


def _numpy(x):
    return numpy.asarray(keras.ops.convert_to_numpy(x))


def _totals(model):
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    return [line.strip() for line in "\n".join(lines).splitlines() if "params:" in line or "Model:" in line]


def _assert_same_weights(ours, theirs, rtol=1e-4):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        numpy.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


def test_a_stack_of_layers_and_the_same_layers_called_in_a_row():
    _clear()
    ours, theirs = guide.named_stack(gpu_dl), guide.named_stack(keras)
    expected = _numpy(theirs(keras.ops.ones((3, 3))))
    ours(gpu_dl.ops.ones((3, 3)))
    ours.set_weights(theirs.get_weights())
    numpy.testing.assert_allclose(_numpy(ours(gpu_dl.ops.ones((3, 3)))), expected, rtol=1e-6)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers] == [
        "layer1", "layer2", "layer3"]

    # the same layers called one after the other, given the stack's weights, compute what it does
    _clear()
    for lib in (gpu_dl, keras):
        layers = guide.named_layers(lib)
        y = lib.ops.ones((3, 3))
        for layer, weights in zip(layers, theirs.layers):
            layer.build((None, weights.get_weights()[0].shape[0]))
            layer.set_weights(weights.get_weights())
            y = layer(y)
        numpy.testing.assert_allclose(_numpy(y), expected, rtol=1e-6)


def test_add_pop_names_and_weights_before_and_after_a_call(monkeypatch):
    _clear()
    for program in (guide.added_then_popped, guide.my_sequential):
        ours, theirs = program(gpu_dl), program(keras)
        assert ours.name == theirs.name
        assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert len(guide.added_then_popped(gpu_dl).layers) == 2
    assert guide.my_sequential(gpu_dl).name == "my_sequential"

    _clear()
    shapes = []
    for lib in (gpu_dl, keras):
        layer = lib.layers.Dense(3)
        assert layer.weights == []
        layer(lib.ops.ones((1, 4)))
        shapes.append([(w.path, tuple(w.shape)) for w in layer.weights])
    assert shapes[0] == shapes[1] == [("dense/kernel", (4, 3)), ("dense/bias", (3,))]

    _clear()
    models = [lib.Sequential([lib.layers.Dense(2, activation="relu"), lib.layers.Dense(3, activation="relu"),
                              lib.layers.Dense(4)]) for lib in (gpu_dl, keras)]
    assert models[0].weights == [] and models[1].weights == []
    # unbuilt, both print the layers with unknown shapes and no parameters
    assert_same_summary(*models, monkeypatch)
    assert _totals(models[0]) == _totals(models[1])
    for model, lib in zip(models, (gpu_dl, keras)):
        model(lib.ops.ones((1, 4)))
    assert len(models[0].weights) == len(models[1].weights) == 6
    assert_same_summary(*models, monkeypatch)
    assert summary_rows(models[0], monkeypatch)[0][0] == ("dense (Dense)", "(1, 2)", "10")


@pytest.mark.parametrize("program", [guide.with_input, guide.with_input_shape], ids=["Input", "input_shape"])
def test_an_input_shape_given_in_advance(program, monkeypatch):
    _clear()
    with pytest.warns(UserWarning) if program is guide.with_input_shape else contextlib.nullcontext():
        ours = program(gpu_dl)
    theirs = program(keras)
    assert ours.built and theirs.built
    assert len(ours.layers) == len(theirs.layers) == 1       # the Input is not a layer of the model
    assert_same_summary(ours, theirs, monkeypatch)
    assert _totals(ours) == _totals(theirs)


def test_the_add_and_summary_workflow(monkeypatch):
    _clear()
    printed = {gpu_dl: [], keras: []}
    ours = guide.debugging_stack(gpu_dl, lambda m: printed[gpu_dl].append((summary_rows(m, monkeypatch),
                                                                            _totals(m))))
    theirs = guide.debugging_stack(keras, lambda m: printed[keras].append((summary_rows(m, monkeypatch),
                                                                           _totals(m))))
    assert printed[gpu_dl] == printed[keras]
    assert printed[gpu_dl][0][0][0][-1] == ("max_pooling2d (MaxPooling2D)", "(None, 40, 40, 32)", "0")
    assert_same_summary(ours, theirs, monkeypatch)


def test_feature_extraction_through_inputs_and_layer_outputs():
    _clear()
    ours, theirs = guide.feature_extractors(gpu_dl, size=64), guide.feature_extractors(keras, size=64)
    for model in (0, 2):
        ours[model].set_weights(theirs[model].get_weights())
    x = numpy.random.default_rng(0).random((2, 64, 64, 3)).astype("float32")
    ours_features, theirs_features = ours[1](x), theirs[1](keras.ops.convert_to_tensor(x))
    assert len(ours_features) == len(theirs_features) == 3
    for a, b in zip(ours_features, theirs_features):
        numpy.testing.assert_allclose(_numpy(a), _numpy(b), rtol=1e-4, atol=1e-5)
    numpy.testing.assert_allclose(_numpy(ours[3](x)), _numpy(theirs[3](keras.ops.convert_to_tensor(x))),
                                  rtol=1e-4, atol=1e-5)
    assert tuple(ours[3].output.shape) == tuple(theirs[3].output.shape) == (None, 28, 28, 32)
    # the guide's own input: ones of 250x250
    _clear()
    ours, theirs = guide.feature_extractors(gpu_dl), guide.feature_extractors(keras)
    assert [tuple(f.shape) for f in ours[1](numpy.ones((1, 250, 250, 3), "float32"))] == \
        [tuple(f.shape) for f in theirs[1](keras.ops.ones((1, 250, 250, 3)))]


def test_freezing_all_but_the_last_layer_after_loading_keras_weights(rng, tmp_path, monkeypatch):
    _clear()
    ours, theirs = guide.mlp(gpu_dl), guide.mlp(keras)
    theirs.save_weights(tmp_path / "pretrained.weights.h5")
    ours.load_weights(tmp_path / "pretrained.weights.h5")
    _assert_same_weights(ours.get_weights(), theirs.get_weights(), rtol=0)
    for model in (ours, theirs):
        guide.freeze_all_but_last(model)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert_same_summary(ours, theirs, monkeypatch)
    assert _totals(ours) == _totals(theirs)
    x, y = rng.random((40, 784)).astype("float32"), rng.integers(0, 10, 40)
    frozen = ours.get_weights()[:-2]
    fit = dict(epochs=2, batch_size=16, verbose=0, shuffle=False)
    ours_history, theirs_history = ours.fit(x, y, **fit), theirs.fit(x, y, **fit)
    for key in theirs_history.history:
        numpy.testing.assert_allclose(ours_history.history[key], theirs_history.history[key], rtol=2e-5,
                                      err_msg=key)
    _assert_same_weights(ours.get_weights(), theirs.get_weights())
    for before, after in zip(frozen, ours.get_weights()[:-2]):
        numpy.testing.assert_array_equal(after, before)


def test_a_frozen_base_under_a_new_head_in_a_sequential(rng, monkeypatch):
    _clear()
    ours = guide.classifier_on_base(gpu_dl, guide.pooled_base(gpu_dl), classes=10)
    theirs = guide.classifier_on_base(keras, guide.pooled_base(keras), classes=10)
    weights = [0.3 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()]
    weights = [numpy.abs(w) + 0.5 if "moving_variance" in v.path else w for w, v in zip(weights, theirs.weights)]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert_same_summary(ours, theirs, monkeypatch)
    assert _totals(ours) == _totals(theirs)
    for model in (ours, theirs):
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                      if model is theirs else gpu_dl.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = rng.random((24, 16, 16, 3)).astype("float32"), rng.integers(0, 10, 24)
    fit = dict(epochs=2, batch_size=8, verbose=0, shuffle=False)
    numpy.testing.assert_allclose(ours.fit(x, y, **fit).history["loss"], theirs.fit(x, y, **fit).history["loss"],
                                  rtol=2e-5)
    _assert_same_weights(ours.get_weights(), theirs.get_weights())
    # only the head trained: the base, batch-normalization statistics included, is as it was
    for before, after in zip(weights[:-2], ours.get_weights()[:-2]):
        numpy.testing.assert_array_equal(after, before)
