"""The text and hashing preprocessing layers (Hashing, HashedCrossing, StringLookup, TextVectorization) against
plain-Python expectations, on both backends (the text work is host work; outputs land on the current device):
the hashes against TensorFlow's published values and SipHash's reference vector, lookups and vectorization
against hand-worked indices, adapt, configs and files, bad input, and a text classifier that trains on raw
strings."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.layers.string_hashing import fingerprint64, hash_buckets, siphash64

BASE = "The quick brown fox jumps over the lazy dog. " * 8
# Strings of every FarmHash length class (0-16, 17-32, 33-64, over 64, chunk edges) and non-ASCII UTF-8.
STRINGS = ["", "a", "abc", "abcd", "hello w", "hello world!!", "sixteen bytes!!!"] + [
    BASE[:n] for n in (17, 32, 33, 64, 65, 128, 129, 300)] + ["héllo wörld ✓"]
# tf.strings.to_hash_bucket_fast(STRINGS, 2**63 - 1) and to_hash_bucket_strong(STRINGS, 2**63 - 1, [1, 2]), as
# TensorFlow 2.20 computes them.
TF_FAST = [1936946117179621456, 3694432073954588132, 2640714258260161385, 1897425971756105985, 1806291608031355033,
           6681298521578234837, 3209104202776360359, 5162019803258432958, 3916272259504149091, 8241563171161551831,
           919341830274840737, 8330986144681106620, 6548702730867532314, 8870296586356828883, 3368820042289680849,
           276027234456023084]
TF_STRONG = [443797209252341628, 5158252350249958646, 5862226954915230110, 8889024970603298004,
             8420703728447001115, 6061617260409922248, 2585362439474209735, 4458056200643605541,
             109331205514008138, 3923631052423311770, 2276415497378129415, 7135951814370608796,
             1579845774995966125, 8781556964759153121, 1427646883781238379, 3263251349956656278]


def host(a):
    return numpy.asarray(backend.to_numpy(a))


def on_device(xp, y):
    """The layer's output is an array of the current device's module."""
    assert isinstance(y, xp.ndarray)
    return host(y)


# ------------------------------------------------------------------ the hashes
def test_fingerprint64_buckets_match_tensorflow_values():
    assert hash_buckets(numpy.array(STRINGS, dtype=object), 2 ** 63 - 1).tolist() == TF_FAST
    assert hash_buckets(numpy.array(STRINGS, dtype=object), 2 ** 63 - 1, [1, 2]).tolist() == TF_STRONG


def test_hashes_of_a_batch_equal_hashes_one_by_one_and_keep_the_shape():
    batch = numpy.array(STRINGS * 2, dtype=object).reshape(4, 8)
    one_by_one = [fingerprint64([s])[0] for s in batch.reshape(-1)]
    assert fingerprint64(batch).tolist() == one_by_one
    assert hash_buckets(batch, 7).shape == (4, 8)
    assert fingerprint64([b"abc"]).tolist() == fingerprint64(["abc"]).tolist()     # str hashes as its UTF-8


def test_siphash_reference_vector():
    # SipHash-2-4's paper: key 00..0f, message 00..0e (15 bytes) gives a129ca6149be45e5.
    key = [int.from_bytes(bytes(range(8)), "little"), int.from_bytes(bytes(range(8, 16)), "little")]
    assert int(siphash64([bytes(range(15))], key)[0]) == 0xa129ca6149be45e5
    assert int(siphash64([b""], key)[0]) == 0x726fdb47dd0e0e31


# ------------------------------------------------------------------ Hashing
@pytest.mark.parametrize("kwargs, expected", [
    # Keras's documented examples
    (dict(num_bins=3), [1, 0, 1, 1, 2]),
    (dict(num_bins=3, salt=[133, 137]), [1, 2, 1, 0, 2]),
    (dict(num_bins=3, salt=133), [0, 0, 2, 1, 0]),
])
def test_hashing_gives_keras_documented_bins(xp, kwargs, expected):
    y = layers.Hashing(**kwargs)([["A"], ["B"], ["C"], ["D"], ["E"]])
    assert on_device(xp, y).tolist() == [[e] for e in expected] and y.dtype == numpy.int64


def test_hashing_mask_value_takes_bin_zero(xp):
    y = layers.Hashing(num_bins=3, mask_value="")(numpy.array([["A"], ["B"], [""], ["C"], ["D"]]))
    assert on_device(xp, y).ravel().tolist() == [1, 1, 0, 2, 2]      # Keras's documented example
    ints = numpy.array([[0, 5], [7, 0]])
    y = host(layers.Hashing(num_bins=4, mask_value=0)(ints))
    assert y[0, 0] == 0 and y[1, 1] == 0
    expected = hash_buckets(numpy.array(["5", "7"], dtype=object), 3) + 1
    assert [y[0, 1], y[1, 0]] == expected.tolist()


def test_hashing_integers_and_floats_hash_as_decimal_strings(xp):
    values = numpy.array([[3, -12], [1234567890123, 0]])
    expected = hash_buckets(numpy.array([["3", "-12"], ["1234567890123", "0"]], dtype=object), 11)
    numpy.testing.assert_array_equal(on_device(xp, layers.Hashing(11)(xp.asarray(values))), expected)
    # floats truncate towards zero first, as Keras casts them
    numpy.testing.assert_array_equal(host(layers.Hashing(11)(values + numpy.sign(values) * 0.7)), expected)
    assert layers.Hashing(11, dtype="int32")(values).dtype == numpy.int32


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_hashing_encoded_outputs(xp, mode):
    words = numpy.array([["a", "b", "a"], ["c", "c", "c"]])
    bins = hash_buckets(words.astype(object), 6)
    y = layers.Hashing(6, output_mode=mode)(words)
    got = on_device(xp, y)
    assert y.dtype == numpy.float32
    if mode == "one_hot":
        numpy.testing.assert_array_equal(got, numpy.eye(6)[bins])
    else:
        counts = numpy.stack([numpy.bincount(row, minlength=6) for row in bins])
        numpy.testing.assert_array_equal(got, counts if mode == "count" else counts > 0)
    assert tuple(got.shape) == layers.Hashing(6, output_mode=mode).compute_output_shape((2, 3))


def test_hashing_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="Hashing layer .*num_bins"):
        layers.Hashing(0)
    with pytest.raises(ValueError, match="Hashing layer .*num_bins"):
        layers.Hashing(None)
    with pytest.raises(ValueError, match="salt"):
        layers.Hashing(3, salt="pepper")
    with pytest.raises(ValueError, match="output_mode"):
        layers.Hashing(3, output_mode="tf_idf")
    with pytest.raises(ValueError, match="integer type"):
        layers.Hashing(3, dtype="float32")
    with pytest.raises(ValueError, match="sparse"):
        layers.Hashing(3, output_mode="count", sparse=True)
    with pytest.raises(TypeError, match="Hashing layer .*strings or numbers"):
        layers.Hashing(3)(numpy.array([[{"a": 1}]], dtype=object))


# ------------------------------------------------------------------ HashedCrossing
def cross_expected(features, num_bins):
    """Plain Python: TensorFlow's cross_hashed, one sample at a time with Python integers."""
    mask, mul = (1 << 64) - 1, 0xc6a4a7935bd1e995

    def shift_mix(v):
        return v ^ (v >> 47)

    out = []
    for values in zip(*[numpy.asarray(f).reshape(-1) for f in features]):
        h = 0xDECAFCAFFE
        for v in values:
            f = int(fingerprint64([v])[0]) if isinstance(v, str) else int(v) & mask
            r = h ^ mul
            r ^= (shift_mix((f * mul) & mask) * mul) & mask
            r = (r * mul) & mask
            r = (shift_mix(r) * mul) & mask
            h = shift_mix(r)
        out.append(h % num_bins)
    return numpy.array(out)


@pytest.mark.parametrize("shape", [(), (5,), (5, 1)])
def test_hashed_crossing_matches_plain_python(xp, shape):
    a = numpy.array(["x", "y", "z", "x", "é"], dtype=object)[:int(numpy.prod(shape))].reshape(shape)
    b = numpy.arange(-2, -2 + a.size).reshape(shape)
    y = layers.HashedCrossing(17)([a, xp.asarray(b)])
    got = on_device(xp, y)
    assert got.shape == shape and y.dtype == numpy.int64
    numpy.testing.assert_array_equal(got.reshape(-1), cross_expected([a, b], 17))
    one_hot = host(layers.HashedCrossing(17, output_mode="one_hot")([a, b, a]))
    expected = numpy.eye(17)[cross_expected([a, b, a], 17)]
    # a scalar is one sample, as Keras's encoding upranks it
    numpy.testing.assert_array_equal(one_hot, expected.reshape(shape[:1] + (17,) if shape else (1, 17)))


def test_hashed_crossing_bad_inputs():
    cross = layers.HashedCrossing(5)
    with pytest.raises(ValueError, match="HashedCrossing layer .*list or tuple"):
        cross(numpy.array([1, 2]))
    with pytest.raises(ValueError, match="at least two"):
        cross([numpy.array([1, 2])])
    with pytest.raises(ValueError, match="equal shape"):
        cross([numpy.array([1, 2]), numpy.array([1, 2, 3])])
    with pytest.raises(ValueError, match="shape \\(\\), \\(batch_size\\) or \\(batch_size, 1\\)"):
        cross([numpy.ones((2, 2), int), numpy.ones((2, 2), int)])
    with pytest.raises(ValueError, match="integer or string"):
        cross([numpy.array([1.5, 2.0]), numpy.array([1, 2])])
    with pytest.raises(ValueError, match="output_mode"):
        layers.HashedCrossing(5, output_mode="multi_hot")


# ------------------------------------------------------------------ StringLookup
def test_string_lookup_indices_match_hand_worked_ones(xp):
    lookup = layers.StringLookup(vocabulary=["a", "b", "c"])
    y = lookup(numpy.array([["a", "c", "zz"], ["b", "", "a"]]))
    assert on_device(xp, y).tolist() == [[1, 3, 0], [2, 0, 1]] and y.dtype == numpy.int64
    masked = layers.StringLookup(vocabulary=["a", "b"], mask_token="", num_oov_indices=2)
    got = host(masked([["a", "", "b", "q"]]))
    assert got[0, :3].tolist() == [3, 0, 4]
    assert got[0, 3] == 1 + hash_buckets(numpy.array(["q"], dtype=object), 2)[0]
    assert masked.get_vocabulary() == ["", "[UNK]", "[UNK]", "a", "b"]
    assert lookup([b"b", "b"]).tolist() == [2, 2]          # bytes decode as UTF-8


def test_string_lookup_adapt_orders_by_count_then_token(xp):
    lookup = layers.StringLookup()
    lookup.adapt(numpy.array([["b", "a", "c"], ["a", "b", "é"], ["d", "a", "[UNK]"]]))
    # counts: a 3, b 2, then c, d, é once each, ties by descending token
    assert lookup.get_vocabulary() == ["[UNK]", "a", "b", "é", "d", "c"]
    assert lookup.vocabulary_size() == 6
    capped = layers.StringLookup(max_tokens=3)
    capped.adapt(iter([numpy.array(["a", "b", "a"]), numpy.array(["b", "a", "c"])]))
    assert capped.get_vocabulary() == ["[UNK]", "a", "b"]


def test_string_lookup_modes_and_tf_idf(xp):
    docs = numpy.array([["a", "b", "a"], ["b", "c", "c"], ["a", "d", "d"]])
    lookup = layers.StringLookup(output_mode="tf_idf")
    lookup.adapt(docs)
    vocab = lookup.get_vocabulary()
    holding = numpy.array([sum(t in row for row in docs.tolist()) for t in vocab[1:]])
    idf = numpy.log(1 + 3 / (1 + holding))
    idf = numpy.concatenate([[idf.mean()], idf])
    x = numpy.array([["a", "a", "zz"], ["c", "d", "b"]])
    counts = numpy.array([[numpy.sum(numpy.array(vocab[1:])[:, None] == row[None], axis=1)] for row in x])[:, 0]
    counts = numpy.concatenate([[[1], [0]], counts], axis=1)
    y = lookup(x)
    numpy.testing.assert_allclose(on_device(xp, y), counts * idf, rtol=1e-6)
    multi = layers.StringLookup(vocabulary=vocab[1:], output_mode="multi_hot", max_tokens=8, pad_to_max_tokens=True)
    numpy.testing.assert_array_equal(host(multi(x)), numpy.pad(counts > 0, ((0, 0), (0, 3))))


def test_string_lookup_invert_and_set_vocabulary(xp):
    lookup = layers.StringLookup(vocabulary=["x", "y"], invert=True)
    assert lookup(xp.asarray(numpy.array([[0, 1, 2, 9]]))).tolist() == [["[UNK]", "x", "y", "[UNK]"]]
    forward = layers.StringLookup()
    forward.set_vocabulary(["[UNK]", "p", "q"])         # the special token at the front is recognised
    assert forward.get_vocabulary() == ["[UNK]", "p", "q"]
    assert host(forward(["q", "p", "r"])).tolist() == [2, 1, 0]


def test_string_lookup_bad_input():
    with pytest.raises(ValueError, match="StringLookup layer .*repeated"):
        layers.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="StringLookup layer .*num_oov_indices=0 .*OOV values"):
        layers.StringLookup(vocabulary=["a"], num_oov_indices=0)(["a", "b"])
    with pytest.raises(TypeError, match="StringLookup layer .*strings"):
        layers.StringLookup(vocabulary=["a"])(numpy.array([1, 2]))
    with pytest.raises(ValueError, match="`mask_token` must be a string"):
        layers.StringLookup(mask_token=0)
    with pytest.raises(ValueError, match="file path"):
        layers.StringLookup(vocabulary="vocab.txt")
    with pytest.raises(ValueError, match="invert"):
        layers.StringLookup(invert=True, output_mode="count")
    with pytest.raises(TypeError, match="adapt\\(\\) takes strings"):
        layers.StringLookup().adapt(numpy.array([1, 2]))


# ------------------------------------------------------------------ TextVectorization
SENTENCES = numpy.array(["The cat sat on the mat.", "The dog, the CAT!", "A bird\tflew\nover  the dog",
                         "it's 3.5-4 [x] Épée", ""])


def test_text_vectorization_int_mode_matches_hand_worked_indices(xp):
    tv = layers.TextVectorization(vocabulary=["the", "cat", "sat"])
    assert tv.get_vocabulary() == ["", "[UNK]", "the", "cat", "sat"]
    y = tv(numpy.array(["The cat, sat! dog", "CAT", ""]))
    assert on_device(xp, y).tolist() == [[2, 3, 4, 1], [3, 0, 0, 0], [0, 0, 0, 0]] and y.dtype == numpy.int64
    short = layers.TextVectorization(vocabulary=["the", "cat"], output_sequence_length=2)
    assert host(short([["the cat the"], ["cat"]])).tolist() == [[2, 3], [3, 0]]
    long = layers.TextVectorization(vocabulary=["the", "cat"], output_sequence_length=5)
    assert host(long(["the cat the"])).tolist() == [[2, 3, 2, 0, 0]]


@pytest.mark.parametrize("standardize, expected", [
    ("lower_and_strip_punctuation", [["its", "354", "x", "Épée"]]),     # ASCII lowering, as TensorFlow's
    ("lower", [["it's", "3.5-4", "[x]", "Épée"]]),
    ("strip_punctuation", [["its", "354", "x", "Épée"]]),
    (None, [["it's", "3.5-4", "[x]", "Épée"]]),
])
def test_text_vectorization_standardize(standardize, expected):
    tv = layers.TextVectorization(standardize=standardize)
    assert tv._tokens(numpy.array(["it's 3.5-4 [x] Épée"], dtype=object)).tolist() == expected
    upper = layers.TextVectorization(standardize="lower")
    assert upper._tokens(numpy.array(["ABC Éé"], dtype=object)).tolist() == [["abc", "Éé"]]


def test_text_vectorization_split_and_ngrams():
    tokens = layers.TextVectorization(split="character", standardize=None)._tokens(numpy.array(["ab é", "c"],
                                                                                              dtype=object))
    assert tokens.tolist() == [["a", "b", " ", "é"], ["c", "", "", ""]]
    grams = layers.TextVectorization(ngrams=(1, 3))._tokens(numpy.array(["a b c d", "e f"], dtype=object))
    assert grams.tolist() == [["a", "b", "c", "d", "a b c", "b c d"], ["e", "f", "", "", "", ""]]
    two = layers.TextVectorization(ngrams=2)._tokens(numpy.array(["a b\u00a0c\x0bd"], dtype=object))
    assert two.tolist() == [["a", "b\u00a0c", "d", "a b\u00a0c", "b\u00a0c d"]]    # ASCII whitespace only
    whole = layers.TextVectorization(split=None, vocabulary=["a b", "c"])
    assert host(whole([["a b"], ["c"], ["a"]])).tolist() == [[2], [3], [1]]


def test_text_vectorization_callables():
    def shout(texts):
        return numpy.char.upper(texts)

    def on_commas(texts):
        return [t.split(",") for t in texts]

    tv = layers.TextVectorization(standardize=shout, split=on_commas)
    tv.adapt(["a,b,a", "c,a"])
    assert tv.get_vocabulary() == ["", "[UNK]", "A", "C", "B"]
    assert host(tv(["b,a,zz"])).tolist() == [[4, 2, 1]]


def test_text_vectorization_adapt_and_vector_modes(xp):
    tv = layers.TextVectorization(max_tokens=6)
    tv.adapt(SENTENCES)
    # "the" 5 times, "dog" and "cat" twice (tie: descending), then the rest once, descending: keep 4 tokens
    assert tv.get_vocabulary() == ["", "[UNK]", "the", "dog", "cat", "Épée"]
    vocab = tv.get_vocabulary(include_special_tokens=False)
    x = numpy.array(["the the dog", "unknown words"])
    counts = numpy.array([[0, 2, 1, 0, 0], [2, 0, 0, 0, 0]])      # OOV first, then the 4 tokens
    count = layers.TextVectorization(vocabulary=vocab, output_mode="count")
    numpy.testing.assert_array_equal(on_device(xp, count(x)), counts)
    multi = layers.TextVectorization(vocabulary=vocab, output_mode="multi_hot")
    numpy.testing.assert_array_equal(host(multi(x)), counts > 0)
    tfidf = layers.TextVectorization(output_mode="tf_idf")
    tfidf.adapt(SENTENCES)
    idf = host(tfidf._lookup_layer.idf_weights.value)
    got = host(tfidf(["the the"]))
    assert got.shape == (1, tfidf.vocabulary_size())
    assert got[0, 1] == pytest.approx(2 * numpy.log(1 + 5 / (1 + 3)), rel=1e-6) and got[0, 1] == pytest.approx(
        2 * idf[1])
    batches = iter([SENTENCES[:2], SENTENCES[2:]])
    streamed = layers.TextVectorization(max_tokens=6)
    streamed.adapt(batches)
    assert streamed.get_vocabulary() == tv.get_vocabulary()


def test_text_vectorization_bad_input():
    with pytest.raises(ValueError, match="TextVectorization layer .*standardize"):
        layers.TextVectorization(standardize="upper")
    with pytest.raises(ValueError, match="split"):
        layers.TextVectorization(split="comma")
    with pytest.raises(ValueError, match="ngrams"):
        layers.TextVectorization(ngrams=0)
    with pytest.raises(ValueError, match="output_sequence_length"):
        layers.TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="output_mode"):
        layers.TextVectorization(output_mode="words")
    with pytest.raises(ValueError, match="ragged"):
        layers.TextVectorization(ragged=True)
    tv = layers.TextVectorization(vocabulary=["a"])
    with pytest.raises(ValueError, match="last dimension must be 1"):
        tv(numpy.array([["a", "b"]]))
    with pytest.raises(TypeError, match="TextVectorization layer .*strings"):
        tv(numpy.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="TextVectorization layer .*set the vocabulary"):
        layers.TextVectorization(output_mode="count")(["a"])
    with pytest.raises(ValueError, match="TextVectorization layer .*repeated terms"):
        layers.TextVectorization(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="TextVectorization layer .*idf_weights"):
        layers.TextVectorization(output_mode="tf_idf").set_vocabulary(["a"])
    with pytest.raises(ValueError, match="TextVectorization layer .*cannot adapt .*static vocabulary"):
        tv.adapt(["a b"])
    with pytest.raises(TypeError, match=r"TextVectorization layer .*adapt\(\) takes"):
        layers.TextVectorization().adapt("just one string")


def test_text_layer_configs_round_trip():
    for layer in (layers.TextVectorization(max_tokens=9, ngrams=(1, 2), output_sequence_length=4),
                  layers.StringLookup(vocabulary=["a", "b"], mask_token="", num_oov_indices=2, salt=5),
                  layers.Hashing(7, mask_value="", salt=[1, 2]), layers.HashedCrossing(9, output_mode="one_hot")):
        config = layer.get_config()
        again = type(layer).from_config(config)
        assert again.get_config() == config


# ------------------------------------------------------------------ models
def text_classifier(vectorizer):
    model = gpu_dl.Sequential([layers.Input(shape=(1,), dtype="string"), vectorizer,
                               layers.Embedding(vectorizer.vocabulary_size(), 8),
                               layers.GlobalAveragePooling1D(), layers.Dense(1, activation="sigmoid")])
    model.compile(gpu_dl.optimizers.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    return model


def test_a_text_classifier_trains_on_raw_strings(xp):
    texts = numpy.array([["good movie"], ["great fun"], ["bad movie"], ["awful plot"], ["really good"],
                         ["so bad"], ["great great"], ["awful awful"]])
    labels = numpy.array([1, 1, 0, 0, 1, 0, 1, 0], numpy.float32)
    gpu_dl.utils.set_random_seed(3)
    vectorizer = layers.TextVectorization(output_sequence_length=3)
    vectorizer.adapt(texts)
    model = text_classifier(vectorizer)
    history = model.fit(texts, labels, epochs=40, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] == 1.0
    assert (host(model.predict(texts, verbose=0)).ravel() > 0.5).tolist() == labels.astype(bool).tolist()


def test_a_model_with_text_layers_saves_and_loads(xp, tmp_path):
    texts = numpy.array([["the cat"], ["the dog sat"], ["a bird"]])
    tfidf = layers.TextVectorization(output_mode="tf_idf", max_tokens=6)
    tfidf.adapt(texts)
    inputs = layers.Input(shape=(1,), dtype="string")
    model = gpu_dl.Model(inputs, layers.Dense(2)(tfidf(inputs)))
    expected = host(model.predict(texts, verbose=0))
    model.save(tmp_path / "text.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "text.keras")
    numpy.testing.assert_allclose(host(loaded.predict(texts, verbose=0)), expected, rtol=1e-6)
    assert loaded.layers[1].get_vocabulary() == tfidf.get_vocabulary()


def test_string_inputs_are_refused_where_the_model_takes_numbers():
    model = gpu_dl.Sequential([layers.Input(shape=(1,)), layers.Dense(1)])
    with pytest.raises(TypeError, match="must hold numbers"):
        model.predict(numpy.array([["text"]]), verbose=0)
    text_model = gpu_dl.Sequential([layers.Input(shape=(1,), dtype="string"),
                                    layers.TextVectorization(vocabulary=["a"])])
    with pytest.raises(TypeError, match="string input .*must hold strings"):
        text_model.predict(numpy.array([[1.0]]), verbose=0)


def test_a_standardize_function_is_saved_by_its_registered_name(tmp_path):
    @gpu_dl.saving.register_keras_serializable(package="text_tests")
    def loud(texts):
        return numpy.char.upper(texts)

    inputs = layers.Input(shape=(1,), dtype="string")
    model = gpu_dl.Model(inputs, layers.TextVectorization(standardize=loud, vocabulary=["A", "B"])(inputs))
    assert model.layers[1].get_config()["standardize"]["config"] == "text_tests>loud"
    model.save(tmp_path / "loud.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "loud.keras")
    assert loaded.layers[1]._standardize is loud
    assert host(loaded.predict(numpy.array([["a b c"]]), verbose=0)).tolist() == [[2, 3, 1]]


def test_a_sequential_starting_with_a_text_layer_takes_a_batch_of_strings(xp, tmp_path):
    texts = numpy.array(["good movie", "great fun", "bad movie", "awful plot"])
    labels = numpy.array([1, 1, 0, 0], numpy.float32)
    gpu_dl.utils.set_random_seed(5)
    vectorizer = layers.TextVectorization(output_mode="multi_hot")
    vectorizer.adapt(texts)
    model = gpu_dl.Sequential([vectorizer, layers.Dense(1, activation="sigmoid")])     # built from the data
    model.compile(gpu_dl.optimizers.Adam(0.1), "binary_crossentropy")
    history = model.fit(texts, labels, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    expected = host(model.predict(texts, verbose=0))
    assert ((expected.ravel() > 0.5) == labels.astype(bool)).all()
    model.save(tmp_path / "seq.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "seq.keras")
    assert loaded.layers[0].get_vocabulary() == vectorizer.get_vocabulary()
    numpy.testing.assert_allclose(host(loaded.predict(texts, verbose=0)), expected, rtol=1e-6)
    with pytest.raises(TypeError, match="must hold numbers"):
        gpu_dl.Sequential([layers.Dense(1)]).predict(texts, verbose=0)
