"""The text and hashing layers against Keras 3 itself (torch backend). Keras computes these layers with
TensorFlow's string ops on every backend, so these tests run where TensorFlow is installed and skip elsewhere:
the same bins, vocabularies and outputs for the same inputs and configuration, the same configs, and `.keras`
files holding the layers (adapted) load both ways and give the same outputs."""
import json
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

import gpu_dl  # noqa: E402
from gpu_dl import backend, layers  # noqa: E402

WORDS = numpy.array([["a", "b", "é"], ["hello world", "", "a"], ["zz", "The quick brown fox " * 5, "b"]])
SENTENCES = numpy.array(["The cat sat on the mat.", "The dog, the CAT! ", "A bird\tflew\nover  the   dog",
                         "Épée ÉTÉ it's 3.5-4 [x]", "", "the end; the END"])
QUERIES = numpy.array([["the cat flew!"], ["unknown words here"], [""], ["Épée a a the the"]])


def plain(config):
    """A config without its dtype (a DTypePolicy in Keras) and its name (numbered per library), tuples as lists."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k not in ("dtype", "name")}))


def theirs_out(layer, *args):
    return keras.ops.convert_to_numpy(layer(*args))


def same(ours, theirs):
    ours = numpy.asarray(backend.to_numpy(ours))
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours.shape, theirs.shape, ours.dtype,
                                                                       theirs.dtype)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)


# ------------------------------------------------------------------ Hashing and HashedCrossing
@pytest.mark.parametrize("kwargs", [dict(num_bins=7), dict(num_bins=1000003), dict(num_bins=5, salt=[3, 99]),
                                    dict(num_bins=4, salt=12345), dict(num_bins=6, mask_value=""),
                                    dict(num_bins=5, output_mode="multi_hot"), dict(num_bins=5, output_mode="count"),
                                    dict(num_bins=5, output_mode="one_hot"), dict(num_bins=9, dtype="int32")])
def test_hashing_matches_keras(kwargs):
    ours, theirs = layers.Hashing(**kwargs), keras.layers.Hashing(**kwargs)
    data = WORDS if kwargs.get("output_mode") != "one_hot" else WORDS[:, :1]
    same(ours(data), theirs_out(theirs, data))
    if "mask_value" in kwargs:
        return
    ints = numpy.array([[0, -5, 123456789012], [7, 7, 2 ** 40]])
    same(ours(ints[:, :1] if kwargs.get("output_mode") == "one_hot" else ints),
         theirs_out(theirs, ints[:, :1] if kwargs.get("output_mode") == "one_hot" else ints))
    assert plain(ours.get_config()) == plain(theirs.get_config())


def test_hashing_integer_mask_matches_keras():
    ints = numpy.array([[0, 3], [9, 0]])
    same(layers.Hashing(5, mask_value=0)(ints), theirs_out(keras.layers.Hashing(5, mask_value=0), ints))
    # a mask of another kind than the inputs: both refuse it
    with pytest.raises(TypeError):
        keras.layers.Hashing(5, mask_value="")(ints)
    with pytest.raises(TypeError, match="Hashing layer .*mask_value=''"):
        layers.Hashing(5, mask_value="")(ints)


@pytest.mark.parametrize("mode", ["int", "one_hot"])
@pytest.mark.parametrize("shape", [(6,), (6, 1)])
def test_hashed_crossing_matches_keras(mode, shape):
    a = numpy.array(["x", "y", "z", "x", "é", "long string " * 9]).reshape(shape)
    b = numpy.array([1, -2, 3, 2 ** 40, 0, 5]).reshape(shape)
    ours, theirs = layers.HashedCrossing(23, output_mode=mode), keras.layers.HashedCrossing(23, output_mode=mode)
    same(ours([a, b, a]), theirs_out(theirs, [a, b, a]))
    same(ours([b, b]), theirs_out(theirs, [b, b]))
    assert plain(ours.get_config()) == plain(theirs.get_config())


# ------------------------------------------------------------------ StringLookup
@pytest.mark.parametrize("kwargs", [dict(), dict(num_oov_indices=3), dict(mask_token="", num_oov_indices=2, salt=7),
                                    dict(max_tokens=4), dict(output_mode="multi_hot"), dict(output_mode="one_hot"),
                                    dict(output_mode="count", max_tokens=5, pad_to_max_tokens=True),
                                    dict(output_mode="tf_idf"), dict(oov_token="<?>", mask_token="[M]")])
def test_string_lookup_adapt_and_call_match_keras(kwargs):
    ours, theirs = layers.StringLookup(**kwargs), keras.layers.StringLookup(**kwargs)
    data = numpy.array([["a", "c", "d"], ["d", "z", "b"], ["é", "a", "a"], ["[UNK]", "d", "b"]])
    ours.adapt(data)
    theirs.adapt(data)
    assert ours.get_vocabulary() == theirs.get_vocabulary()
    assert ours.vocabulary_size() == theirs.vocabulary_size()
    x = numpy.array(["a", "q", "é"]) if kwargs.get("output_mode") == "one_hot" else numpy.array(
        [["a", "q", "z"], ["", "é", "zz"]])
    same(ours(x), theirs_out(theirs, x))
    assert plain(ours.get_config()) == plain(theirs.get_config())


def test_string_lookup_vocabulary_and_invert_match_keras():
    vocab = ["x", "yy", "zzz"]
    ours, theirs = layers.StringLookup(vocabulary=vocab, invert=True), keras.layers.StringLookup(vocabulary=vocab,
                                                                                                invert=True)
    assert ours(numpy.array([0, 1, 3, 7])).tolist() == theirs(numpy.array([0, 1, 3, 7]))
    tfidf = dict(vocabulary=vocab, idf_weights=[0.5, 1.5, 2.5], output_mode="tf_idf")
    x = numpy.array([["x", "x", "q"], ["zzz", "yy", "yy"]])
    same(layers.StringLookup(**tfidf)(x), theirs_out(keras.layers.StringLookup(**tfidf), x))
    assert plain(layers.StringLookup(**tfidf).get_config()) == plain(keras.layers.StringLookup(**tfidf).get_config())


@pytest.mark.parametrize("salt", [None, 11, [3, 4]])
def test_integer_lookup_farmhash_oov_matches_keras(salt):
    kwargs = dict(vocabulary=[4, 8], num_oov_indices=5, oov_method="farmhash", salt=salt)
    ours, theirs = layers.IntegerLookup(**kwargs), keras.layers.IntegerLookup(**kwargs)
    tokens = numpy.array([[4, 9, -17], [2 ** 40, 8, 123]])
    same(ours(tokens), theirs_out(theirs, tokens))
    assert plain(ours.get_config()) == plain(theirs.get_config())


# ------------------------------------------------------------------ TextVectorization
def shout(texts):
    return numpy.char.upper(texts)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(output_sequence_length=3), dict(output_sequence_length=9), dict(ngrams=2), dict(ngrams=(1, 3)),
    dict(split="character", standardize="lower"), dict(standardize=None), dict(standardize="strip_punctuation"),
    dict(standardize=shout), dict(output_mode="multi_hot"), dict(output_mode="count", max_tokens=6),
    dict(output_mode="tf_idf"), dict(output_mode="tf_idf", max_tokens=8, pad_to_max_tokens=True, ngrams=2),
    dict(max_tokens=5), dict(split=None), dict(split=None, output_mode="multi_hot")])
def test_text_vectorization_adapt_and_call_match_keras(kwargs):
    ours, theirs = layers.TextVectorization(**kwargs), keras.layers.TextVectorization(**kwargs)
    ours.adapt(SENTENCES)
    theirs.adapt(SENTENCES)
    assert ours.get_vocabulary() == theirs.get_vocabulary()
    same(ours(QUERIES), theirs_out(theirs, QUERIES))
    same(ours(QUERIES[:, 0]), theirs_out(theirs, QUERIES[:, 0]))
    if not callable(kwargs.get("standardize")):
        assert plain(ours.get_config()) == plain(theirs.get_config())


def test_text_vectorization_given_vocabulary_matches_keras():
    kwargs = dict(vocabulary=["the", "cat", "dog"], idf_weights=[0.25, 0.5, 0.75], output_mode="tf_idf")
    ours, theirs = layers.TextVectorization(**kwargs), keras.layers.TextVectorization(**kwargs)
    same(ours(QUERIES), theirs_out(theirs, QUERIES))
    assert ours.get_vocabulary() == theirs.get_vocabulary()
    ours.set_vocabulary(["a", "b", "c"], idf_weights=[1.0, 2.0, 3.0])
    theirs.set_vocabulary(["a", "b", "c"], idf_weights=[1.0, 2.0, 3.0])
    same(ours(["a b b d"]), theirs_out(theirs, ["a b b d"]))
    # once called, the vector size is fixed: both refuse a vocabulary of another size
    with pytest.raises(RuntimeError, match="vocabulary size cannot be changed"):
        theirs.set_vocabulary(["a", "b"], idf_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="vocabulary size cannot change"):
        ours.set_vocabulary(["a", "b"], idf_weights=[1.0, 2.0])


# ------------------------------------------------------------------ files
def text_layers():
    adapted = keras.layers.TextVectorization(output_mode="tf_idf", max_tokens=10)
    adapted.adapt(SENTENCES)
    sequences = keras.layers.TextVectorization(output_sequence_length=5, ngrams=2)
    sequences.adapt(SENTENCES)
    lookup = keras.layers.StringLookup(num_oov_indices=2)
    # no "" among the tokens: adapted last (the smallest token), it would be the vocabulary asset's last line,
    # which Keras's own loader drops as a trailing empty line (and so does gpu_dl's)
    lookup.adapt(numpy.where(WORDS == "", "c", WORDS))
    return {"tf_idf": (adapted, QUERIES), "sequences": (sequences, QUERIES),
            "given": (keras.layers.TextVectorization(vocabulary=["the", "cat"]), QUERIES),
            "lookup": (lookup, WORDS), "hashing": (keras.layers.Hashing(11, salt=5), WORDS),
            "multi_hot_lookup": (keras.layers.StringLookup(vocabulary=["a", "b"], output_mode="multi_hot"), WORDS)}


@pytest.mark.parametrize("kind", ["tf_idf", "sequences", "given", "lookup", "hashing", "multi_hot_lookup"])
def test_text_layer_files_move_both_ways(tmp_path, kind):
    layer, x = text_layers()[kind]
    inputs = keras.Input(shape=x.shape[1:], dtype="string")
    keras.Model(inputs, layer(inputs)).save(tmp_path / "k.keras")
    expected = theirs_out(layer, x)
    ours = gpu_dl.models.load_model(tmp_path / "k.keras")
    same(ours.predict(x, verbose=0), expected)
    if hasattr(layer, "get_vocabulary"):
        assert ours.layers[1].get_vocabulary() == layer.get_vocabulary()
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    same(ours.layers[1](x), theirs_out(theirs.layers[1], x))
    assert plain(ours.layers[1].get_config()) == plain(theirs.layers[1].get_config())


def test_a_standardize_function_moves_both_ways(tmp_path):
    def loud(texts):
        return numpy.char.upper(texts)

    theirs_fn = keras.saving.register_keras_serializable(package="oracle")(loud)
    layer = keras.layers.TextVectorization(standardize=theirs_fn, vocabulary=["A", "B C"], split=None)
    inputs = keras.Input(shape=(1,), dtype="string")
    keras.Model(inputs, layer(inputs)).save(tmp_path / "k.keras")
    x = numpy.array([["a"], ["b c"], ["d"]])
    ours = gpu_dl.models.load_model(tmp_path / "k.keras", custom_objects={"oracle>loud": loud})
    same(ours.predict(x, verbose=0), theirs_out(layer, x))
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    same(ours.layers[1](x), theirs_out(theirs.layers[1], x))


def test_a_sequential_built_from_strings_loads_in_keras(tmp_path):
    texts = numpy.array(["good movie", "great fun", "bad movie"])
    vectorizer = layers.TextVectorization(output_mode="count")
    vectorizer.adapt(texts)
    ours = gpu_dl.Sequential([vectorizer, layers.Dense(2)])
    expected = numpy.asarray(backend.to_numpy(ours.predict(texts, verbose=0)))
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert theirs.layers[0].get_vocabulary() == vectorizer.get_vocabulary()
    counts = theirs_out(theirs.layers[0], texts)
    numpy.testing.assert_allclose(theirs_out(theirs.layers[1], counts.astype("float32")), expected, rtol=1e-5)
