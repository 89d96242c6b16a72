"""Keras 3's guide "Introduction to Keras for engineers" against Keras itself: the guide's programs
(tests/guide_engineer_programs.py) give the same summaries, evaluations, logs and files in both libraries, and a
model saved by one predicts the same in the other. Training that draws dropout masks differs in its draws (the
libraries' generators differ), so it is compared where the guide's program is deterministic."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import guide_engineer_programs as guide  # noqa: E402
from keras_steps import assert_training_steps_match, summary_rows  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU; both libraries' layer names counted from zero."""
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()


def _fit_with_the_guides_callbacks(lib, model, x, y, folder):
    callbacks = [lib.callbacks.ModelCheckpoint(filepath=str(folder / "model_at_epoch_{epoch}.keras")),
                 lib.callbacks.EarlyStopping(monitor="val_loss", patience=2)]
    return model.fit(x, y, batch_size=16, epochs=2, validation_split=0.15, callbacks=callbacks, verbose=0)


@pytest.mark.slow
def test_the_convnet(tmp_path, monkeypatch):
    (x_train, y_train), (x_test, y_test) = guide.digits()
    theirs = guide.compile_model(keras, guide.convnet(keras))
    ours = guide.compile_model(gpu_dl, guide.convnet(gpu_dl))
    assert summary_rows(ours, monkeypatch) == summary_rows(theirs, monkeypatch)
    ours.set_weights(theirs.get_weights())
    numpy.testing.assert_allclose(ours.evaluate(x_test, y_test, verbose=0),
                                  theirs.evaluate(x_test, y_test, verbose=0), rtol=1e-5)

    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        (tmp_path / lib.__name__).mkdir()
        history = _fit_with_the_guides_callbacks(lib, model, x_train, y_train, tmp_path / lib.__name__)
        assert list(history.history) == ["acc", "loss", "val_acc", "val_loss"]
        assert history.epoch == [0, 1]
    assert sorted(os.listdir(tmp_path / "gpu_dl")) == sorted(os.listdir(tmp_path / "keras")) == \
        ["model_at_epoch_1.keras", "model_at_epoch_2.keras"]
    # the optimizer is built now: its variables count in the summary, as in Keras's
    ours_rows, ours_total, ours_optimizer = summary_rows(ours, monkeypatch)
    assert (ours_total, ours_optimizer) == summary_rows(theirs, monkeypatch)[1:]
    assert ours_optimizer == "Optimizer params: 520,598 (1.99 MB)"   # iterations, learning rate, 2 slots

    ours.save(tmp_path / "final_model.keras")
    reloaded = keras.saving.load_model(tmp_path / "final_model.keras")
    ours_reloaded = gpu_dl.saving.load_model(tmp_path / "final_model.keras")
    predictions = ours_reloaded.predict(x_test, verbose=0)
    assert predictions.shape == (16, 10)
    numpy.testing.assert_allclose(predictions, ours.predict(x_test, verbose=0), rtol=1e-6, atol=1e-7)
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded.predict(x_test, verbose=0)), predictions,
                                  rtol=1e-5, atol=1e-6)


def test_my_dense_trains_as_keras():
    """The guide's MyDense: ``self.activation(x)`` (an activation from ``activations.get``) on its traced call."""
    rng = numpy.random.default_rng(5)
    models = []
    for lib in (gpu_dl, keras):
        my_dense = guide.custom_classes(lib)[0]
        models.append(lib.Sequential([lib.Input((12,)), my_dense(10, activation="softmax")]))
    ours, theirs = models
    assert [w.shape for w in ours.get_weights()] == [(12, 10), (10,)]
    assert_training_steps_match(keras, ours, theirs, rng, (12,), 10, batch=8)
    for activation in ("relu", "tanh", None):
        layers = [guide.custom_classes(lib)[0](3, activation=activation) for lib in (gpu_dl, keras)]
        x = rng.standard_normal((4, 5)).astype("float32")
        ours_model = gpu_dl.Sequential([gpu_dl.Input((5,)), layers[0]])
        theirs_model = keras.Sequential([keras.Input((5,)), layers[1]])
        ours_model.set_weights(theirs_model.get_weights())
        numpy.testing.assert_allclose(ours_model.predict(x, verbose=0), theirs_model.predict(x, verbose=0),
                                      rtol=1e-5, atol=1e-6)


def _my_model(lib):
    model = guide.custom_classes(lib)[2](num_classes=10)
    return guide.compile_model(lib, model)


@pytest.mark.slow
def test_my_model_trains_on_arrays_and_on_a_torch_data_loader(monkeypatch):
    torch = pytest.importorskip("torch")
    (x_train, y_train), (x_test, y_test) = guide.digits(1, train=40, test=8)
    ours, theirs = _my_model(gpu_dl), _my_model(keras)
    fit = dict(batch_size=16, epochs=1, validation_split=0.15, verbose=0)
    ours_history, theirs_history = ours.fit(x_train, y_train, **fit), theirs.fit(x_train, y_train, **fit)
    assert list(ours_history.history) == list(theirs_history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert numpy.isfinite(ours_history.history["loss"][0])
    ours_rows, ours_total, ours_optimizer = summary_rows(ours, monkeypatch)
    theirs_rows, theirs_total, theirs_optimizer = summary_rows(theirs, monkeypatch)
    # Keras's rows of a subclassed model show the shapes of its sublayers' last calls ("?" for a custom layer
    # called on a tensor); the labels and parameter counts agree
    assert [(r[0], r[2]) for r in ours_rows] == [(r[0], r[2]) for r in theirs_rows]
    assert (ours_total, ours_optimizer) == (theirs_total, theirs_optimizer)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    # the seed generator's state is a variable, not a weight
    assert len(ours.variables) == len(theirs.variables) == len(theirs.weights) + 1

    def loaders(lib_batch):
        train = torch.utils.data.TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
        val = torch.utils.data.TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test))
        return (torch.utils.data.DataLoader(train, batch_size=lib_batch, shuffle=True),
                torch.utils.data.DataLoader(val, batch_size=lib_batch, shuffle=False))

    messages = []
    for lib in (gpu_dl, keras):
        model = _my_model(lib)
        train, val = loaders(16)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(train, epochs=1, validation_data=val, verbose=0)
        messages.append([str(w.message) for w in caught if "shuffle" in str(w.message)])
        assert list(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert messages[0] == messages[1] and len(messages[0]) == 1
    assert messages[0][0].endswith("as a torch DataLoader. The DataLoader is expected to already be shuffled.")
