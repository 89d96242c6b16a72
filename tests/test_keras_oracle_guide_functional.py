"""Keras's guide "The Functional API" against Keras itself (tests/guide_functional_programs.py): the same summaries,
training logs and weights from the same initial weights, configs that rebuild, and a custom layer written with a
Python loop over a static batch size trained inside a functional model."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import guide_functional_programs as guide  # noqa: E402
from keras_steps import assert_same_summary, summary_rows  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def _pair(program):
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()
    ours, theirs = program(gpu_dl), program(keras)
    if not isinstance(ours, tuple):
        ours.set_weights(theirs.get_weights())
    return ours, theirs


def _assert_same_history(ours, theirs, rtol=2e-5):
    assert list(ours.history) == list(theirs.history)
    for key in theirs.history:
        numpy.testing.assert_allclose(ours.history[key], theirs.history[key], rtol=rtol, atol=1e-6, err_msg=key)


def _assert_same_weights(ours, theirs, rtol=1e-4):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=rtol, atol=1e-6)


def test_the_mnist_model_trains_and_evaluates_as_keras(monkeypatch, tmp_path):
    ours, theirs = _pair(guide.mnist_model)
    assert summary_rows(ours, monkeypatch) == summary_rows(theirs, monkeypatch)
    inputs = gpu_dl.Input(shape=(784,))
    assert inputs.shape == (None, 784) and inputs.dtype == "float32"
    rng = numpy.random.default_rng(0)
    x_train, y_train = rng.random((100, 784)).astype("float32"), rng.integers(0, 10, 100)
    x_test, y_test = rng.random((20, 784)).astype("float32"), rng.integers(0, 10, 20)
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        model.compile(loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer=lib.optimizers.RMSprop(), metrics=["accuracy"])
    fit = dict(batch_size=64, epochs=2, validation_split=0.2, verbose=0, shuffle=False)
    ours_history, theirs_history = ours.fit(x_train, y_train, **fit), theirs.fit(x_train, y_train, **fit)
    assert list(ours_history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    _assert_same_history(ours_history, theirs_history)
    _assert_same_weights(ours, theirs)
    numpy.testing.assert_allclose(ours.evaluate(x_test, y_test, verbose=0), theirs.evaluate(x_test, y_test, verbose=0),
                                  rtol=2e-5)
    # a path without an extension is refused, as in Keras (gpu_dl writes no .h5 model, so its words differ)
    for model in (ours, theirs):
        with pytest.raises(ValueError, match="Invalid filepath extension for saving"):
            model.save(str(tmp_path / "path_to_my_model"))


@pytest.mark.parametrize("program", [guide.autoencoders, guide.ensemble, guide.toy_resnet],
                         ids=["autoencoders", "ensemble", "toy_resnet"])
def test_the_guides_summaries(program, monkeypatch):
    ours, theirs = _pair(program)
    ours, theirs = (ours, theirs) if isinstance(ours, tuple) else ((ours,), (theirs,))
    for a, b in zip(ours, theirs):
        assert_same_summary(a, b, monkeypatch)


def test_the_ticket_model_trains_on_dicts_as_keras(monkeypatch):
    ours, theirs = _pair(guide.ticket_model)
    assert summary_rows(ours, monkeypatch) == summary_rows(theirs, monkeypatch)
    rng = numpy.random.default_rng(1)
    x = {"title": rng.integers(10000, size=(64, 10)), "body": rng.integers(10000, size=(64, 20)),
         "tags": rng.integers(2, size=(64, 12)).astype("float32")}
    y = {"priority": rng.random(size=(64, 1)), "department": rng.integers(2, size=(64, 4))}
    fit = dict(epochs=2, batch_size=32, verbose=0, shuffle=False)
    ours_history, theirs_history = ours.fit(x, y, **fit), theirs.fit(x, y, **fit)
    assert list(ours_history.history) == ["department_loss", "loss", "priority_loss"]
    _assert_same_history(ours_history, theirs_history, rtol=1e-4)
    _assert_same_weights(ours, theirs, rtol=1e-3)


def test_the_toy_resnet_logs_and_the_feature_extraction_model():
    ours, theirs = _pair(guide.toy_resnet)
    rng = numpy.random.default_rng(2)
    x = rng.random((20, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, (20, 1))
    y = gpu_dl.utils.to_categorical(labels, 10)
    numpy.testing.assert_array_equal(y, keras.utils.to_categorical(labels, 10))
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        model.compile(optimizer=lib.optimizers.RMSprop(1e-3),
                      loss=lib.losses.CategoricalCrossentropy(from_logits=True), metrics=["acc"])
        history = model.fit(x, y, batch_size=64, epochs=1, validation_split=0.2, verbose=0)
        assert list(history.history) == ["acc", "loss", "val_acc", "val_loss"]

    features = []
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        extractor = lib.Model(inputs=model.input, outputs=[layer.output for layer in model.layers])
        features.append([numpy.asarray(keras.ops.convert_to_numpy(f)) for f in extractor(x[:1])])
    ours.set_weights(theirs.get_weights())
    assert [f.shape for f in features[0]] == [f.shape for f in features[1]]
    assert len(features[0]) == len(ours.layers) == 15


def test_a_custom_layer_without_its_name_in_its_config_rebuilds_as_keras_does(monkeypatch):
    models = []
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()
        custom_dense = guide.custom_dense_class(lib)
        inputs = lib.Input((4,))
        model = lib.Model(inputs, custom_dense(10)(inputs))
        config = model.get_config()
        new_model = lib.Model.from_config(config, custom_objects={"CustomDense": custom_dense})
        models.append(new_model)
        # its config has no name: the rebuilt layer takes a new one, as a new layer does
        assert [layer.name for layer in new_model.layers][1] == "custom_dense_1"
    assert summary_rows(models[0], monkeypatch) == summary_rows(models[1], monkeypatch)


def test_the_custom_rnn_with_a_static_batch_size_trains_as_keras():
    ours, theirs = _pair(guide.rnn_in_a_functional_model)
    assert len(ours.weights) == len(theirs.weights) == 8
    rng = numpy.random.default_rng(3)
    x, y = rng.random((32, 10, 5)).astype("float32"), rng.random((32, 8, 1)).astype("float32")
    for model in (ours, theirs):
        model.compile("adam", "mse")
    fit = dict(batch_size=16, epochs=2, verbose=0, shuffle=False)
    _assert_same_history(ours.fit(x, y, **fit), theirs.fit(x, y, **fit))
    _assert_same_weights(ours, theirs)

    # the guide's standalone call on a batch of one, with the earlier functional model as its classifier
    inputs = gpu_dl.Input((None, 32))
    classifier = gpu_dl.Model(inputs, gpu_dl.layers.Dense(1)(gpu_dl.layers.GlobalAveragePooling1D()(inputs)))
    rnn = guide.custom_rnn_class(gpu_dl)(classifier)
    assert rnn(numpy.zeros((1, 10, 5), "float32")).shape == (1, 1)
