"""Keras's guide "Working with preprocessing layers" against Keras itself (tests/guide_preprocessing_programs.py):
adapted Normalization, the lookup, hashing and text layers give the same outputs, the image augmentation stage and
the recipes' models (preprocessing inside the model or before it) train to the same losses from the same weights.
Keras computes its lookup, hashing and text layers with TensorFlow's string ops: those tests skip where TensorFlow
is not installed."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402

import guide_preprocessing_programs as guide  # noqa: E402
from keras_steps import summary_rows  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


@pytest.fixture
def tensorflow():
    """Keras's lookup, hashing and text layers run on TensorFlow."""
    return pytest.importorskip("tensorflow")


def as_array(x):
    return numpy.asarray(keras.ops.convert_to_numpy(x))


def same(ours, theirs, rtol=1e-6):
    ours, theirs = numpy.asarray(to_numpy(ours)), as_array(theirs)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours.shape, theirs.shape, ours.dtype,
                                                                       theirs.dtype)
    numpy.testing.assert_allclose(ours, theirs, rtol=rtol, atol=1e-6)


def _assert_same_history(ours, theirs, rtol=2e-5):
    assert list(ours.history) == list(theirs.history)
    for key in theirs.history:
        numpy.testing.assert_allclose(ours.history[key], theirs.history[key], rtol=rtol, atol=1e-6, err_msg=key)


def _copied(ours, theirs):
    ours.set_weights([as_array(w) for w in theirs.get_weights()])
    return ours, theirs


def test_normalization_adapts_as_keras():
    ours, theirs = guide.adapted_normalization(gpu_dl), guide.adapted_normalization(keras)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, as_array(b), rtol=1e-6)
    normalized = to_numpy(ours(guide.NUMBERS))
    same(normalized, theirs(guide.NUMBERS))
    # what the guide prints: "Features mean: 0.00", "Features std: 1.00"
    assert "%.2f %.2f" % (normalized.mean(), normalized.std()) == "0.00 1.00"


@pytest.mark.parametrize("kwargs", [{}, {"axis": (1, 2)}, {"axis": None},
                                    {"mean": [1.0, 2, 3], "variance": [4.0, 5, 6]}])
def test_normalization_mean_and_variance_attributes(kwargs):
    """Keras's ``mean`` and ``variance``: the statistics in use at the input's rank once built; ``mean`` is None
    before (Keras has no ``variance`` then, gpu_dl's is None too)."""
    x = numpy.random.default_rng(4).standard_normal((5, 4, 3))
    layers = [lib.layers.Normalization(**kwargs) for lib in (gpu_dl, keras)]
    assert layers[0].variance is None
    for layer in layers:
        assert layer.mean is None
        layer.build(x.shape) if "mean" in kwargs else layer.adapt(x)
    ours, theirs = layers
    same(ours.mean, theirs.mean)
    same(ours.variance, theirs.variance)


def test_lookups_as_keras(tensorflow):
    for program in (guide.string_lookup_with_vocabulary, guide.one_hot_string_lookup, guide.one_hot_integer_lookup):
        (ours_layer, ours), (theirs_layer, theirs) = program(gpu_dl), program(keras)
        same(ours, theirs)
        assert ours_layer.get_vocabulary() == [v if isinstance(v, str) else int(v)
                                               for v in theirs_layer.get_vocabulary()]
    numpy.testing.assert_array_equal(to_numpy(guide.string_lookup_with_vocabulary(gpu_dl)[1]), [[1, 3, 4], [4, 0, 2]])
    # index 0 for the unknown "d", "e" and "", then the adapted "c", "b", "a" (as frequent: the later value first)
    numpy.testing.assert_array_equal(to_numpy(guide.one_hot_string_lookup(gpu_dl)[1]).argmax(-1), [3, 2, 1, 0, 0, 0])
    # the guide's text describes tf.keras 2 (0 the mask token, 1 the unknown); in Keras 3 mask_token is None: index
    # 0 is the unknown 50 and 60, and 0 is a value like others (adapted last: seen once, the smaller value)
    numpy.testing.assert_array_equal(to_numpy(guide.one_hot_integer_lookup(gpu_dl)[1]).argmax(-1), [2, 2, 1, 0, 0, 4])


def test_hashing_and_multi_hot_encoding_as_keras(tensorflow):
    data = numpy.random.default_rng(0).integers(0, 100000, size=(10000, 1))
    ours, theirs = guide.hashed_multi_hot(gpu_dl, data), guide.hashed_multi_hot(keras, data)
    assert ours.shape == (10000, 64)
    same(ours, theirs)


def test_text_vectorization_of_the_greek_verses(tensorflow):
    ours, theirs = guide.adapted_text_vectorization(gpu_dl), guide.adapted_text_vectorization(keras)
    assert ours.get_vocabulary() == [str(v) for v in theirs.get_vocabulary()]
    same(ours(guide.GREEK), theirs(guide.GREEK))
    assert ours(guide.GREEK).shape == (8, 9)


def test_the_augmentation_stage_is_active_in_training_only():
    """Inactive in predict and with training=False; called on arrays without `training`, Keras 3's random image
    layers augment (their call defaults to training=True), and so do gpu_dl's."""
    images = numpy.random.default_rng(1).integers(0, 256, (4, 16, 16, 3)).astype("float32")
    for lib in (gpu_dl, keras):
        stage = guide.data_augmentation(lib)
        numpy.testing.assert_array_equal(as_array(stage(images, training=False)), images)
        numpy.testing.assert_array_equal(as_array(stage.predict(images, verbose=0)), images)
        for augmented in (as_array(stage(images, training=True)), as_array(stage(images))):
            assert augmented.shape == images.shape and not numpy.allclose(augmented, images)


def test_the_image_recipe_trains_as_keras():
    """Images augmented by gpu_dl's stage (the data pipeline), the same batches given to both models."""
    rng = numpy.random.default_rng(2)
    x_train, y_train = rng.integers(0, 256, (32, 12, 12, 3)).astype("uint8"), rng.integers(0, 10, (32, 1))
    stage = guide.data_augmentation(gpu_dl)
    augmented = numpy.concatenate([to_numpy(stage(x_train[i:i + 16].astype("float32"), training=True))
                                   for i in range(0, 32, 16)])
    ours, theirs = _copied(guide.image_model(gpu_dl, x_train.shape[1:], 10),
                           guide.image_model(keras, x_train.shape[1:], 10))
    fit = dict(batch_size=16, epochs=2, shuffle=False, verbose=0)
    _assert_same_history(ours.fit(augmented, y_train, **fit), theirs.fit(augmented, y_train, **fit))
    same(ours.predict(x_train, verbose=0), theirs.predict(x_train, verbose=0), rtol=1e-4)


def test_augmentation_inside_the_model(monkeypatch):
    """The guide's option 1: the augmentation stage inside the model, inactive in predict and evaluate, active in
    fit (random in both libraries: their training is compared on arrays augmented beforehand, above)."""
    rng = numpy.random.default_rng(6)
    x, y = rng.integers(0, 256, (8, 12, 12, 3)).astype("float32"), rng.integers(0, 10, (8, 1))
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()     # the layers' names count from the start in both
    ours, theirs = _copied(guide.image_model(gpu_dl, x.shape[1:], 10, augmentation=True),
                           guide.image_model(keras, x.shape[1:], 10, augmentation=True))
    assert summary_rows(ours, monkeypatch) == summary_rows(theirs, monkeypatch)
    same(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-5)
    before = ours.get_weights()
    ours.fit(x, y, epochs=1, verbose=0)
    assert any(not numpy.allclose(a, b) for a, b in zip(before, ours.get_weights()))


@pytest.mark.slow
def test_the_resnet_image_recipe_as_keras():
    """The guide's model: Rescaling then ResNet50 (no weights), on images augmented in the data pipeline. The same
    parameters, predictions, and loss of the first training step (batch statistics in BatchNormalization); later
    steps part: RMSprop's first update is about lr * sqrt(10) * sign(gradient), and the sign of ResNet50's
    gradients near zero rests on float32 rounding."""
    rng = numpy.random.default_rng(5)
    x_train, y_train = rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8"), rng.integers(0, 10, (8, 1))
    ours, theirs = _copied(guide.resnet_image_model(gpu_dl, x_train.shape[1:], 10),
                           guide.resnet_image_model(keras, x_train.shape[1:], 10))
    assert ours.count_params() == theirs.count_params() == 23_608_202
    same(ours.predict(x_train, verbose=0), theirs.predict(x_train, verbose=0), rtol=1e-4)
    batches = guide.preprocessed_batches(gpu_dl, guide.data_augmentation(gpu_dl), x_train.astype("float32"),
                                         y_train, 8, training=True)
    augmented, labels = batches[0]      # drawn once: each fetch augments anew
    assert augmented.shape == x_train.shape and not numpy.allclose(augmented, x_train)
    _assert_same_history(ours.fit(augmented, labels, verbose=0), theirs.fit(augmented, labels, verbose=0), rtol=1e-4)


def test_the_normalization_recipe_trains_as_keras():
    rng = numpy.random.default_rng(3)
    x_train = rng.integers(0, 256, (64, 4, 4, 3)).astype("uint8").reshape((64, -1))
    y_train = rng.integers(0, 10, (64, 1))
    ours, theirs = _copied(guide.normalized_classifier(gpu_dl, x_train), guide.normalized_classifier(keras, x_train))
    # the adapted statistics are the same (mean, variance, count)
    for a, b in zip(guide.normalized_classifier(gpu_dl, x_train).layers[1].get_weights(),
                    theirs.layers[1].get_weights()):
        numpy.testing.assert_allclose(a, as_array(b), rtol=1e-5)
    fit = dict(batch_size=32, epochs=3, shuffle=False, verbose=0)
    history = ours.fit(x_train, y_train, **fit)
    _assert_same_history(history, theirs.fit(x_train, y_train, **fit))
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("mode,ngrams", [("int", None), ("multi_hot", 2), ("tf_idf", 2)])
def test_the_text_recipes_as_keras(tensorflow, mode, ngrams):
    """Text vectorized in the data pipeline, a model trained on it, and the model taking strings for inference.
    Keras 3 cannot make that last model for multi-hot and TF-IDF (its TextVectorization gives the symbolic shape
    (None, 1, vocabulary) for an Input of shape (1,), and (1, vocabulary) on arrays), nor call it on NumPy strings
    with the torch backend: its expected outputs are its vectorizer's then its model's."""
    ours_text, theirs_text = (guide.adapted_text_vectorization(lib, guide.POEM, output_mode=mode, ngrams=ngrams)
                              for lib in (gpu_dl, keras))
    assert ours_text.vocabulary_size() == theirs_text.vocabulary_size() == (22 if mode == "int" else 41)
    same(ours_text(["The Brain is deeper than the sea"]), theirs_text(["The Brain is deeper than the sea"]))
    program = guide.sequence_model if mode == "int" else guide.dense_model
    ours, theirs = _copied(program(gpu_dl, ours_text.vocabulary_size()), program(keras, theirs_text.vocabulary_size()))
    same(ours_text(guide.TRAIN_TEXT), theirs_text(guide.TRAIN_TEXT))
    # the text vectorized in the data pipeline, batch by batch
    batches = [guide.preprocessed_batches(lib, text, guide.TRAIN_TEXT, guide.TRAIN_LABELS, 2)
               for lib, text in ((gpu_dl, ours_text), (keras, theirs_text))]
    _assert_same_history(ours.fit(batches[0], epochs=3, verbose=0), theirs.fit(batches[1], epochs=3, verbose=0))

    expected = theirs.predict(as_array(theirs_text(guide.TEST_TEXT)), verbose=0)
    got = guide.end_to_end(gpu_dl, ours_text, ours).predict(guide.TEST_TEXT, verbose=0)
    same(got, expected, rtol=1e-5)
    if mode != "int":
        with pytest.raises(ValueError, match=r"expected shape=\(None, 41\), found shape=\(None, 1, 41\)"):
            guide.end_to_end(keras, theirs_text, theirs)
    else:
        with pytest.raises(ValueError, match="Invalid dtype"):
            guide.end_to_end(keras, theirs_text, theirs)(guide.TEST_TEXT)


@pytest.mark.parametrize("name,args", [("Resizing", (8, 6)), ("Rescaling", (1 / 255,)), ("CenterCrop", (9, 7)),
                                       ("RandomCrop", (9, 7)), ("RandomFlip", ()), ("RandomTranslation", (0.1, 0.1)),
                                       ("RandomRotation", (0.1,)), ("RandomZoom", (0.1,)), ("RandomContrast", (0.2,))])
def test_the_guides_image_layers_at_inference(name, args):
    """The guide's list of image preprocessing and augmentation layers, called with training=False: the same
    outputs (Keras 3 has no RandomHeight and RandomWidth any more, nor has gpu_dl)."""
    x = numpy.random.default_rng(7).integers(0, 256, (2, 17, 13, 3)).astype("float32")
    same(getattr(gpu_dl.layers, name)(*args)(x, training=False), getattr(keras.layers, name)(*args)(x, training=False),
         rtol=1e-5)
    for lib in (gpu_dl, keras):
        assert not hasattr(lib.layers, "RandomHeight") and not hasattr(lib.layers, "RandomWidth")


def test_discretization_adapts_as_keras(tensorflow):
    data = numpy.random.default_rng(8).standard_normal((100, 3))
    layers = [lib.layers.Discretization(num_bins=4) for lib in (gpu_dl, keras)]
    for layer in layers:
        layer.adapt(data)
    numpy.testing.assert_allclose(layers[0].bin_boundaries, layers[1].bin_boundaries, rtol=1e-6)
    same(layers[0](data), layers[1](data))
