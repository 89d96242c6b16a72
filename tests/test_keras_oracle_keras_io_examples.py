"""Three keras.io code examples (tests/keras_io_example_programs.py) against Keras 3 itself: the same summaries, the
same outputs on copied weights, the same first training steps, and files one library writes read by the other.
Keras's own ``image_dataset_from_directory`` needs TensorFlow or Grain, so both libraries train on gpu_dl's
data set's batches."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("PIL")

import gpu_dl  # noqa: E402

import keras_io_example_programs as examples  # noqa: E402
from keras_steps import assert_same_summary  # noqa: E402

SMALL_XCEPTION = dict(entry=8, sizes=(8, 16), last=16)


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def _pair(build):
    """``build(lib)`` for gpu_dl and for Keras, gpu_dl's model holding Keras's initial weights."""
    models = []
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()
        lib.utils.set_random_seed(0)
        models.append(build(lib))
    models[0].set_weights(models[1].get_weights())
    return models


def _batches(dataset):
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return numpy.concatenate(images), numpy.concatenate(labels)


# ------------------------------------------------------------------ Image classification from scratch
@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    return examples.write_image_folder(tmp_path_factory.mktemp("images") / "PetImages")


def test_the_xception_like_network_at_the_example_s_size_is_keras_s(monkeypatch):
    ours, theirs = _pair(lambda lib: examples.make_image_model(lib, (180, 180, 3), 2))
    assert_same_summary(ours, theirs, monkeypatch)
    assert ours.count_params() == theirs.count_params()
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]


def test_the_image_model_predicts_and_scores_a_file_as_keras(pets):
    train_ds, val_ds = examples.image_datasets(gpu_dl, pets, image_size=(24, 24), batch_size=8)
    ours, theirs = _pair(lambda lib: examples.make_image_model(lib, (24, 24, 3), 2, **SMALL_XCEPTION))
    images, _ = _batches(val_ds)
    # augmentation and dropout are inactive at inference
    numpy.testing.assert_allclose(ours.predict(images, verbose=0), theirs.predict(images, verbose=0),
                                  rtol=1e-5, atol=1e-6)
    for path in (pets / "Cat" / "1.png", pets / "Dog" / "2.jpg"):
        assert examples.dog_score(gpu_dl, ours, path, (24, 24)) == pytest.approx(
            examples.dog_score(keras, theirs, path, (24, 24)), rel=1e-5)


def test_the_image_model_s_first_training_steps_are_keras_s(pets):
    # without augmentation and dropout, whose draws differ between the libraries
    train_ds, _ = examples.image_datasets(gpu_dl, pets, image_size=(24, 24), batch_size=8)
    ours, theirs = _pair(lambda lib: examples.compile_image_model(lib, examples.make_image_model(
        lib, (24, 24, 3), 2, dropout=0.0, augmentation=False, **SMALL_XCEPTION)))
    images, labels = _batches(train_ds)
    for step in range(3):
        # int labels (batch,) against logits (batch, 1), as the example's data set gives them
        x, y = images[8 * (step % 2): 8 * (step % 2) + 8], labels[8 * (step % 2): 8 * (step % 2) + 8]
        ours_logs = ours.train_on_batch(x, y, return_dict=True)
        theirs_logs = theirs.train_on_batch(x, y, return_dict=True)
        assert list(ours_logs) == list(theirs_logs) == ["acc", "loss"]
        for key in theirs_logs:
            assert ours_logs[key] == pytest.approx(float(theirs_logs[key]), rel=1e-4, abs=1e-6), (step, key)
    # to about one step of the learning rate: the biases of the convolutions ahead of BatchNormalization have
    # gradients of rounding noise only, which Adam scales up to steps of its learning rate
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_keras_loads_gpu_dl_s_epoch_checkpoint(pets, tmp_path):
    train_ds, val_ds = examples.image_datasets(gpu_dl, pets, image_size=(24, 24), batch_size=8)
    gpu_dl.backend.clear_session()
    model = examples.compile_image_model(gpu_dl, examples.make_image_model(gpu_dl, (24, 24, 3), 2,
                                                                           **SMALL_XCEPTION))
    model.fit(train_ds, epochs=2, callbacks=examples.image_callbacks(gpu_dl, tmp_path), validation_data=val_ds,
              verbose=0)
    theirs = keras.models.load_model(tmp_path / "save_at_2.keras")
    images, _ = _batches(val_ds)
    numpy.testing.assert_allclose(theirs.predict(images, verbose=0), model.predict(images, verbose=0),
                                  rtol=1e-5, atol=1e-6)
    assert [type(layer).__name__ for layer in theirs.layers[1:3]] == ["RandomFlip", "RandomRotation"]


# ------------------------------------------------------------------ Timeseries classification from scratch
@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return examples.prepare_series(*examples.write_ucr_files(tmp_path_factory.mktemp("ucr")))


def test_the_fully_convolutional_network_at_forda_s_size_is_keras_s(monkeypatch):
    ours, theirs = _pair(lambda lib: examples.make_series_model(lib, (500, 1), 2))
    assert_same_summary(ours, theirs, monkeypatch)
    assert ours.count_params() == theirs.count_params() == 25858


def test_the_series_model_trains_with_the_example_s_callbacks_as_keras(series, tmp_path):
    x_train, y_train, x_test, y_test, num_classes = series
    ours, theirs = _pair(lambda lib: examples.make_series_model(lib, x_train.shape[1:], num_classes, filters=16))
    numpy.testing.assert_allclose(ours.predict(x_test, verbose=0), theirs.predict(x_test, verbose=0),
                                  rtol=1e-5, atol=1e-6)
    # patience short enough for the learning rate to drop and training to stop within the epochs
    fit = dict(epochs=8, batch_size=16, shuffle=False, lr_patience=1, stop_patience=2, min_lr=2.5e-4)
    histories = [examples.train_series_model(lib, model, x_train, y_train, tmp_path / f"{lib.__name__}.keras", **fit)
                 for lib, model in ((gpu_dl, ours), (keras, theirs))]
    ours_history, theirs_history = (h.history for h in histories)
    assert list(ours_history) == list(theirs_history)
    # both stopped early at the same epoch, having halved the learning rate on the way
    assert len(ours_history["loss"]) == len(theirs_history["loss"]) < 8
    assert ours_history["learning_rate"][0] == pytest.approx(1e-3) and min(ours_history["learning_rate"]) < 9e-4
    for key in theirs_history:
        # Adam's steps on float32 batch statistics drift apart slowly, epoch by epoch
        numpy.testing.assert_allclose(ours_history[key], theirs_history[key], rtol=2e-3, atol=1e-4, err_msg=key)

    best, ours_scores = examples.evaluate_best_series_model(gpu_dl, tmp_path / "gpu_dl.keras", x_test, y_test)
    keras_model, keras_scores = examples.evaluate_best_series_model(keras, tmp_path / "gpu_dl.keras", x_test, y_test)
    numpy.testing.assert_allclose(ours_scores, keras_scores, rtol=1e-5)
    numpy.testing.assert_allclose(best.predict(x_test, verbose=0), keras_model.predict(x_test, verbose=0),
                                  rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ Character-level text generation with LSTM
def test_the_text_model_trains_and_samples_as_keras(monkeypatch):
    text = examples.generated_text(800)
    x, y, chars, char_indices = examples.vectorize_text(text, maxlen=20)
    ours, theirs = _pair(lambda lib: examples.make_text_model(lib, 20, len(chars), units=32))
    assert_same_summary(ours, theirs, monkeypatch)
    histories = [model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False).history
                 for model in (ours, theirs)]
    numpy.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-5)
    for diversity in (0.2, 0.5, 1.0, 1.2):
        generated = [examples.generate(model, text[:20], chars, char_indices, length=12, diversity=diversity,
                                       rng=numpy.random.RandomState(7)) for model in (ours, theirs)]
        assert generated[0] == generated[1], diversity
