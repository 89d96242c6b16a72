"""Three keras.io code examples run by gpu_dl alone (tests/keras_io_example_programs.py), at small scale: each trains
to what the example shows, and its data preparation, checkpoints and sampling are checked against NumPy."""
import numpy
import pytest

import gpu_dl
from gpu_dl.backend import to_numpy

import keras_io_example_programs as examples

SMALL_XCEPTION = dict(entry=8, sizes=(8, 16), last=16)


# ------------------------------------------------------------------ Image classification from scratch
def test_the_image_classifier_learns_the_folder_and_scores_new_files(xp, tmp_path):
    pytest.importorskip("PIL")
    pets = examples.write_image_folder(tmp_path / "PetImages", per_class=20, size=(16, 16))
    train_ds, val_ds = examples.image_datasets(gpu_dl, pets, image_size=(16, 16), batch_size=4)
    assert train_ds.class_names == ["Cat", "Dog"] and len(train_ds.file_paths) + len(val_ds.file_paths) == 40
    assert len(val_ds.file_paths) == 8 and not set(train_ds.file_paths) & set(val_ds.file_paths)
    gpu_dl.utils.set_random_seed(0)
    model = examples.compile_image_model(gpu_dl, examples.make_image_model(gpu_dl, (16, 16, 3), 2, **SMALL_XCEPTION),
                                         learning_rate=1e-3)
    assert [type(layer).__name__ for layer in model.layers[1:4]] == ["RandomFlip", "RandomRotation", "Rescaling"]
    history = model.fit(train_ds, epochs=8, callbacks=examples.image_callbacks(gpu_dl, tmp_path),
                        validation_data=val_ds, verbose=0).history
    assert list(history) == ["acc", "loss", "val_acc", "val_loss"]
    # batches of four through BatchNormalization make the epochs' losses noisy: the best of the last ones counts
    assert min(history["loss"][-3:]) < 0.6 * history["loss"][0] and max(history["acc"][-3:]) >= 0.9
    assert sorted(p.name for p in tmp_path.glob("save_at_*.keras")) == [f"save_at_{i}.keras" for i in range(1, 9)]

    images = numpy.concatenate([val_ds[i][0] for i in range(len(val_ds))])
    labels = numpy.concatenate([val_ds[i][1] for i in range(len(val_ds))])
    # The moving statistics BatchNormalization uses at inference have moved a fraction of the way after these few
    # steps (momentum 0.99), which shifts every logit alike: the held-out cats still score below every dog.
    logits = to_numpy(model.predict(images, verbose=0))[:, 0]
    assert logits[labels == 0].max() < logits[labels == 1].min()
    # the checkpoint of the last epoch is the model as trained; inference leaves augmentation and dropout out
    restored = gpu_dl.models.load_model(tmp_path / "save_at_8.keras")
    numpy.testing.assert_allclose(to_numpy(restored.predict(images, verbose=0))[:, 0], logits, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_array_equal(to_numpy(model.predict(images, verbose=0))[:, 0], logits)
    # batch statistics tell the held-out classes apart (last: a call in training moves the moving ones, as Keras's)
    numpy.testing.assert_array_equal(to_numpy(model(xp.asarray(images), training=True))[:, 0] > 0, labels == 1)
    cat, dog = (examples.dog_score(gpu_dl, model, pets / name, (16, 16)) for name in ("Cat/0.jpg", "Dog/1.png"))
    assert isinstance(cat, float) and 0 < cat < dog < 1


def test_the_folder_data_sets_map_take_and_prefetch_as_the_example_uses_them(xp, tmp_path):
    pytest.importorskip("PIL")
    pets = examples.write_image_folder(tmp_path / "PetImages", per_class=6, size=(8, 8))
    train_ds, val_ds = examples.image_datasets(gpu_dl, pets, image_size=(8, 8), batch_size=4)
    assert train_ds.prefetch(buffer_size=32) is train_ds and train_ds.prefetch(-1) is train_ds
    batches = [train_ds[i] for i in range(len(train_ds))]
    doubled = train_ds.map(lambda images, labels: (2 * images, labels + 1))
    assert len(doubled) == len(train_ds) == 3
    for i, (images, labels) in enumerate(batches):
        numpy.testing.assert_array_equal(doubled[i][0], 2 * images)
        numpy.testing.assert_array_equal(doubled[i][1], labels + 1)
    # one batch, with the first images a pass over the training data set reads
    images, labels = examples.first_images(train_ds, count=3)
    numpy.testing.assert_array_equal(images, batches[0][0][:3])
    numpy.testing.assert_array_equal(labels, batches[0][1][:3])
    # a pass over a derived data set is a pass over its source: the shuffled source draws its next order
    assert not numpy.array_equal(train_ds[0][0], batches[0][0])
    assert len(train_ds.take(2)) == 2 and len(train_ds.take(-1)) == 3 and len(train_ds.take(10)) == 3
    assert len(list(train_ds.take(2).map(lambda images, labels: images))) == 2
    unbatched = gpu_dl.utils.image_dataset_from_directory(pets, image_size=(8, 8), batch_size=None, shuffle=False,
                                                          label_mode=None, verbose=False)
    numpy.testing.assert_array_equal(unbatched.map(lambda image: image + 1)[0], unbatched[0] + 1)
    with pytest.raises(TypeError, match="ImageFolderDataset.map: `map_func` must be callable"):
        train_ds.map(3)
    with pytest.raises(ValueError, match="ImageFolderDataset.take: `count` must be an integer >= -1"):
        train_ds.take(-2)
    with pytest.raises(ValueError, match="`buffer_size` must be an integer >= -1"):
        train_ds.prefetch(1.5)
    with pytest.raises(IndexError, match="DerivedDataset index 3 out of range: it has 3 batches"):
        doubled[3]

    # the example's second option: the training batches augmented as they are read, a model without the layers
    layers = examples.data_augmentation_layers(gpu_dl)
    augmented_ds, val_ds = examples.augment_and_prefetch(train_ds, val_ds, layers)
    assert augmented_ds.workers == 1 and val_ds is val_ds.prefetch(-1)
    first = augmented_ds[0]
    assert first[0].shape == (4, 8, 8, 3) and first[1].shape == (4,)
    model = examples.compile_image_model(gpu_dl, examples.make_image_model(gpu_dl, (8, 8, 3), 2, augmentation=False,
                                                                           **SMALL_XCEPTION))
    history = model.fit(augmented_ds, epochs=2, validation_data=val_ds, verbose=0).history
    assert len(history["loss"]) == 2 and numpy.isfinite(history["val_loss"]).all()
    # the layers draw new flips and rotations on each read of the same files
    assert not numpy.array_equal(to_numpy(augmented_ds[0][0]), to_numpy(augmented_ds[0][0]))


# ------------------------------------------------------------------ Timeseries classification from scratch
def test_the_series_are_read_and_prepared_as_the_example_prepares_forda(tmp_path):
    train_path, test_path = examples.write_ucr_files(tmp_path, train=10, test=4, length=7)
    raw = numpy.loadtxt(train_path, delimiter="\t")
    assert raw.shape == (10, 8) and set(raw[:, 0]) == {-1.0, 1.0}
    numpy.testing.assert_allclose(raw[:, 1:].mean(axis=1), 0, atol=1e-12)
    x_train, y_train, x_test, y_test, num_classes = examples.prepare_series(train_path, test_path)
    assert x_train.shape == (10, 7, 1) and x_test.shape == (4, 7, 1) and num_classes == 2
    order = numpy.random.default_rng(0).permutation(10)
    numpy.testing.assert_array_equal(x_train[:, :, 0], raw[order, 1:])
    numpy.testing.assert_array_equal(y_train, (raw[order, 0] == 1).astype(int))


def test_the_series_classifier_keeps_its_best_epoch_and_generalizes(xp, tmp_path):
    x_train, y_train, x_test, y_test, num_classes = examples.prepare_series(*examples.write_ucr_files(tmp_path))
    gpu_dl.utils.set_random_seed(1)
    model = examples.make_series_model(gpu_dl, x_train.shape[1:], num_classes, filters=16)
    assert model.count_params() == 16 * 4 + 2 * (16 * 48 + 16) + 3 * 4 * 16 + 16 * 2 + 2
    best_path = tmp_path / "best_model.keras"
    history = examples.train_series_model(gpu_dl, model, x_train, y_train, best_path, epochs=40, batch_size=16,
                                          lr_patience=3, stop_patience=6).history
    assert list(history) == ["loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy",
                             "learning_rate"]
    best_epoch = int(numpy.argmin(history["val_loss"]))
    best, (test_loss, test_acc) = examples.evaluate_best_series_model(gpu_dl, best_path, x_test, y_test)
    # the file holds the epoch of the lowest validation loss: its validation loss is the logged one
    x_val, y_val = x_train[-12:], y_train[-12:]
    assert best.evaluate(x_val, y_val, verbose=0)[0] == pytest.approx(history["val_loss"][best_epoch], rel=1e-4)
    assert test_acc >= 0.9 and history["sparse_categorical_accuracy"][-1] >= 0.9
    predicted = to_numpy(best.predict(x_test, verbose=0)).argmax(axis=1)
    assert numpy.mean(predicted == y_test) == pytest.approx(test_acc)
    # ReduceLROnPlateau only ever halves the rate, down to min_lr
    rates = numpy.array(history["learning_rate"])
    assert rates[0] == pytest.approx(1e-3) and numpy.all(numpy.diff(rates) <= 0) and rates.min() >= 1e-4 * 0.999


# ------------------------------------------------------------------ Character-level text generation with LSTM
def test_the_windows_are_one_hot_as_the_example_s_loop_makes_them():
    text = "abcab cba"
    x, y, chars, char_indices = examples.vectorize_text(text, maxlen=4, step=3)
    assert chars == [" ", "a", "b", "c"] and x.dtype == y.dtype == numpy.bool_
    assert x.shape == (2, 4, 4) and y.shape == (2, 4)
    for i, start in enumerate((0, 3)):
        assert "".join(chars[j] for j in x[i].argmax(axis=1)) == text[start:start + 4]
        assert chars[y[i].argmax()] == text[start + 4]
    assert x.sum() == 8 and y.sum() == 2


def test_sampling_with_temperature():
    preds = numpy.array([0.1, 0.2, 0.7])
    draws = [examples.sample(preds, 1.0, numpy.random.RandomState(s)) for s in range(400)]
    assert numpy.bincount(draws, minlength=3)[2] / 400 == pytest.approx(0.7, abs=0.08)
    # a low temperature sharpens the distribution towards its largest entry
    cold = [examples.sample(preds, 0.05, numpy.random.RandomState(s)) for s in range(50)]
    assert set(cold) == {2}


def test_the_character_model_learns_the_text_s_words(xp):
    text = examples.generated_text(1500)
    x, y, chars, char_indices = examples.vectorize_text(text, maxlen=20)
    gpu_dl.utils.set_random_seed(2)
    model = examples.make_text_model(gpu_dl, 20, len(chars), units=64)
    assert model.count_params() == 4 * 64 * (len(chars) + 64 + 1) + 65 * len(chars)
    losses = [model.fit(x, y, batch_size=128, epochs=1, verbose=0).history["loss"][0] for _ in range(12)]
    assert losses[-1] < 0.6 * losses[0]
    generated = examples.generate(model, text[:20], chars, char_indices, length=60, diversity=0.2,
                                  rng=numpy.random.RandomState(0))
    assert len(generated) == 60 and set(generated) <= set(chars)
    # at a low temperature the model writes the text's words
    words = set(generated.replace(".", " ").split()[1:-1])
    assert words and words <= {"the", "cat", "sat", "on", "mat", "a", "dog", "ran"}, generated
