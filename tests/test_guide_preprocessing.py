"""Keras's guide "Working with preprocessing layers" run by gpu_dl alone (tests/guide_preprocessing_programs.py),
against NumPy expectations: Normalization.adapt, the lookups, hashing and CategoryEncoding, TextVectorization's
vocabularies and encodings, the augmentation stage, and the recipes' models trained with preprocessing in the
data pipeline or inside the model."""
import re

import numpy
import pytest

import gpu_dl
from gpu_dl.backend import to_numpy

import guide_preprocessing_programs as guide


def test_normalization_adapts_to_the_feature_statistics(xp):
    layer = guide.adapted_normalization(gpu_dl)
    mean, variance = guide.NUMBERS.mean(0), guide.NUMBERS.var(0)
    numpy.testing.assert_allclose(to_numpy(layer.mean).ravel(), mean, rtol=1e-6)
    numpy.testing.assert_allclose(to_numpy(layer.variance).ravel(), variance, rtol=1e-6)
    normalized = to_numpy(layer(xp.asarray(guide.NUMBERS, dtype="float32")))
    numpy.testing.assert_allclose(normalized, (guide.NUMBERS - mean) / numpy.sqrt(variance), rtol=1e-5, atol=1e-6)
    assert "%.2f %.2f" % (normalized.mean(), normalized.std()) == "0.00 1.00"


def test_the_lookups_hashing_and_encoding(xp):
    numpy.testing.assert_array_equal(to_numpy(guide.string_lookup_with_vocabulary(gpu_dl)[1]), [[1, 3, 4], [4, 0, 2]])
    lookup, encoded = guide.one_hot_string_lookup(gpu_dl)
    assert lookup.get_vocabulary() == ["[UNK]", "c", "b", "a"]
    numpy.testing.assert_array_equal(to_numpy(encoded), numpy.eye(4, dtype=int)[[3, 2, 1, 0, 0, 0]])
    lookup, encoded = guide.one_hot_integer_lookup(gpu_dl)
    assert lookup.get_vocabulary() == [-1, 20, 10, 30, 0]
    numpy.testing.assert_array_equal(to_numpy(encoded), numpy.eye(5, dtype=int)[[2, 2, 1, 0, 0, 4]])

    data = numpy.random.default_rng(0).integers(0, 100000, size=(1000, 1))
    encoded = to_numpy(guide.hashed_multi_hot(gpu_dl, xp.asarray(data)))
    bins = to_numpy(gpu_dl.layers.Hashing(num_bins=64, salt=1337)(data)).ravel()
    assert encoded.shape == (1000, 64) and bins.min() >= 0 and bins.max() < 64
    numpy.testing.assert_array_equal(encoded, numpy.eye(64, dtype="float32")[bins])
    # the same value hashes to the same bin; the values spread over the bins
    numpy.testing.assert_array_equal(to_numpy(gpu_dl.layers.Hashing(num_bins=64, salt=1337)(data[:5])).ravel(),
                                     bins[:5])
    assert len(numpy.unique(bins)) == 64


def _tokens(text):
    """Keras's default standardization and split: lower case, ASCII punctuation removed, split on whitespace."""
    return re.sub(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']", "", text.lower()).split()


def test_text_vectorization_encodes_the_verses():
    layer = guide.adapted_text_vectorization(gpu_dl)
    vocabulary = layer.get_vocabulary()
    assert vocabulary[:2] == ["", "[UNK]"]
    tokens = [_tokens(line) for line in guide.GREEK]
    assert sorted(vocabulary[2:]) == sorted({t for line in tokens for t in line})
    encoded = to_numpy(layer(guide.GREEK))
    assert encoded.shape == (8, max(len(t) for t in tokens))
    for row, line in zip(encoded, tokens):
        assert [vocabulary[i] for i in row if i] == line
    # the most frequent word first
    counts = {t: sum(line.count(t) for line in tokens) for t in vocabulary[2:]}
    assert counts[vocabulary[2]] == max(counts.values())


def test_the_text_recipes_train_and_take_strings():
    text = guide.adapted_text_vectorization(gpu_dl, guide.POEM, output_mode="int")
    ids = to_numpy(text(guide.TRAIN_TEXT))
    # unknown words are 1: the second sentence's words but "for"
    assert ids.shape == (2, 8) and (ids[1] == 1).sum() == 7 and ids[1, 0] == text.get_vocabulary().index("for")
    model = guide.sequence_model(gpu_dl, text.vocabulary_size())
    history = model.fit(ids, guide.TRAIN_LABELS, epochs=20, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    end_to_end = guide.end_to_end(gpu_dl, text, model)
    numpy.testing.assert_allclose(to_numpy(end_to_end.predict(guide.TEST_TEXT, verbose=0)),
                                  to_numpy(model.predict(to_numpy(text(guide.TEST_TEXT)), verbose=0)), rtol=1e-6)

    for mode in ("multi_hot", "tf_idf"):
        text = guide.adapted_text_vectorization(gpu_dl, guide.POEM, output_mode=mode, ngrams=2)
        vocabulary = text.get_vocabulary()
        assert "the brain" in vocabulary and text.vocabulary_size() == len(vocabulary) == 41
        encoded = to_numpy(text(guide.TRAIN_TEXT))
        assert encoded.shape == (2, 41) and encoded[0, vocabulary.index("the brain")] > 0
        model = guide.dense_model(gpu_dl, text.vocabulary_size())
        history = model.fit(encoded, guide.TRAIN_LABELS, epochs=20, verbose=0).history
        assert history["loss"][-1] < history["loss"][0]
        numpy.testing.assert_allclose(to_numpy(guide.end_to_end(gpu_dl, text, model).predict(guide.TEST_TEXT,
                                                                                            verbose=0)),
                                      to_numpy(model.predict(to_numpy(text(guide.TEST_TEXT)), verbose=0)), rtol=1e-6)


def test_the_augmentation_stage_and_the_image_recipe(xp):
    rng = numpy.random.default_rng(1)
    images = rng.integers(0, 256, (16, 12, 12, 3)).astype("float32")
    stage = guide.data_augmentation(gpu_dl)
    numpy.testing.assert_array_equal(to_numpy(stage(xp.asarray(images), training=False)), images)
    augmented = to_numpy(stage(xp.asarray(images), training=True))
    assert augmented.shape == images.shape and not numpy.allclose(augmented, images)
    # a horizontal flip alone gives each image or its mirror
    flipped = to_numpy(gpu_dl.layers.RandomFlip("horizontal")(xp.asarray(images), training=True))
    assert all(numpy.array_equal(f, i) or numpy.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images))

    labels = rng.integers(0, 10, (16, 1))
    model = guide.image_model(gpu_dl, images.shape[1:], 10)
    numpy.testing.assert_allclose(to_numpy(model.layers[1](xp.asarray(images))), images / 255, rtol=1e-6)
    # augmented in the data pipeline, batch by batch, anew at each fetch
    batches = guide.preprocessed_batches(gpu_dl, stage, images, labels, 8, training=True)
    assert len(batches) == 2 and not numpy.array_equal(batches[0][0], batches[0][0])
    numpy.testing.assert_array_equal(batches[1][1], labels[8:])
    history = model.fit(batches, epochs=2, verbose=0).history
    assert len(history["loss"]) == 2 and numpy.isfinite(history["loss"]).all()

    # or inside the model: inactive in predict, so the model predicts as one without the stage
    inside = guide.image_model(gpu_dl, images.shape[1:], 10, augmentation=True)
    without = guide.image_model(gpu_dl, images.shape[1:], 10)
    without.set_weights(inside.get_weights())
    numpy.testing.assert_allclose(to_numpy(inside.predict(images, verbose=0)),
                                  to_numpy(without.predict(images, verbose=0)), rtol=1e-6)
    assert numpy.isfinite(inside.fit(images, labels, batch_size=8, verbose=0).history["loss"]).all()


@pytest.mark.slow
def test_the_normalization_recipe_learns(xp):
    rng = numpy.random.default_rng(2)
    x_train = rng.integers(0, 256, (64, 4, 4, 3)).astype("uint8").reshape((64, -1))
    y_train = rng.integers(0, 10, (64, 1))
    model = guide.normalized_classifier(gpu_dl, x_train)
    numpy.testing.assert_allclose(to_numpy(model.layers[1].mean).ravel(), x_train.mean(0), rtol=1e-5)
    history = model.fit(x_train, y_train, batch_size=16, epochs=20, verbose=0).history
    assert history["loss"][-1] < 0.85 * history["loss"][0]
