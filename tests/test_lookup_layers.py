"""The numeric preprocessing layers (CategoryEncoding, Discretization, IntegerLookup) against plain NumPy
expectations, on both backends: shapes and dtypes per output mode, adapt, configs, bad arguments, models."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend
from gpu_dl.layers import CategoryEncoding, Discretization


def host(a):
    return numpy.asarray(backend.to_numpy(a))


def expected_counts(ids, depth, weights=None):
    """Plain NumPy: per row of ``ids`` (n,) or (batch, n), the summed weight (1 by default) of each id."""
    rows = numpy.atleast_2d(ids)
    w = numpy.ones(rows.shape) if weights is None else numpy.atleast_2d(weights)
    out = numpy.zeros((rows.shape[0], depth))
    for r in range(rows.shape[0]):
        for i, v in zip(rows[r], w[r]):
            if 0 <= i < depth:
                out[r, i] += v
    return out if numpy.ndim(ids) == 2 else out[0]


# ------------------------------------------------------------------ CategoryEncoding
@pytest.mark.parametrize("shape", [(7,), (5, 3), (1, 1), (4, 1), (3, 17)])
def test_category_encoding_modes_match_numpy(xp, rng, shape):
    ids = rng.integers(0, 6, shape)
    for mode in ("multi_hot", "count", "one_hot"):
        layer = CategoryEncoding(6, output_mode=mode)
        y = layer(xp.asarray(ids))
        assert isinstance(y, xp.ndarray) and y.dtype == numpy.float32
        if mode == "one_hot":
            squeezed = ids.reshape(ids.shape[:-1]) if len(shape) > 1 and shape[-1] == 1 else ids
            expected = numpy.eye(6)[squeezed]
        else:
            expected = expected_counts(ids, 6)
            if mode == "multi_hot":
                expected = (expected > 0).astype(float)
        numpy.testing.assert_array_equal(host(y), expected)
        assert tuple(y.shape) == layer.compute_output_shape(shape)


def test_category_encoding_scalar_and_rank3_one_hot(xp):
    assert host(CategoryEncoding(4, output_mode="one_hot")(xp.asarray(2))).tolist() == [[0, 0, 1, 0]]
    assert host(CategoryEncoding(4)(xp.asarray(2))).tolist() == [0, 0, 1, 0]
    ids = numpy.arange(12).reshape(2, 3, 2) % 4
    numpy.testing.assert_array_equal(host(CategoryEncoding(4, output_mode="one_hot")(xp.asarray(ids))),
                                     numpy.eye(4)[ids])


def test_category_encoding_count_weights(xp, rng):
    ids, weights = rng.integers(0, 5, (4, 6)), rng.random((4, 6))
    layer = CategoryEncoding(5, output_mode="count")
    y = layer(xp.asarray(ids), count_weights=xp.asarray(weights))
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(host(y), expected_counts(ids, 5, weights), rtol=1e-6)
    with pytest.raises(ValueError, match="count_weights"):
        CategoryEncoding(5)(xp.asarray(ids), count_weights=xp.asarray(weights))
    with pytest.raises(ValueError, match="count_weights"):
        layer(xp.asarray(ids), count_weights=xp.asarray(weights[:, :2]))


def test_category_encoding_float_ids_truncate_and_int_ids_stay_ints(xp):
    layer = CategoryEncoding(3, output_mode="one_hot")
    numpy.testing.assert_array_equal(host(layer(xp.asarray([0.0, 1.7, 2.2]))), numpy.eye(3))
    big = CategoryEncoding(2 ** 25)
    y = big(xp.asarray([[2 ** 25 - 1]], dtype=xp.int64))    # not representable in float32: kept as an int
    assert host(y)[0, -1] == 1 and host(y).sum() == 1


@pytest.mark.parametrize("kwargs,match", [({"num_tokens": 0}, "num_tokens"), ({"num_tokens": -2}, "num_tokens"),
                                          ({"num_tokens": None}, "num_tokens"), ({"num_tokens": 2.5}, "num_tokens"),
                                          ({"num_tokens": 3, "output_mode": "int"}, "output_mode"),
                                          ({"num_tokens": 3, "sparse": True}, "sparse")])
def test_category_encoding_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"CategoryEncoding layer .*{match}"):
        CategoryEncoding(**kwargs)


@pytest.mark.parametrize("ids", [[[0, 4]], [[-1, 0]]])
def test_category_encoding_refuses_ids_out_of_range(xp, ids):
    with pytest.raises(ValueError, match=r"CategoryEncoding layer .* ids must lie in \[0, 3\]"):
        CategoryEncoding(4)(xp.asarray(ids))


def test_category_encoding_refuses_rank3_multi_hot(xp):
    with pytest.raises(ValueError, match="CategoryEncoding layer .*rank 1 or 2"):
        CategoryEncoding(4, output_mode="count")(xp.zeros((2, 3, 2), dtype=xp.int64))


def test_category_encoding_config_round_trip():
    layer = CategoryEncoding(7, output_mode="binary", name="ce")
    config = layer.get_config()
    assert config["num_tokens"] == 7 and config["output_mode"] == "multi_hot"
    again = CategoryEncoding.from_config(config)
    assert again.get_config() == config


# ------------------------------------------------------------------ Discretization
@pytest.mark.parametrize("shape", [(9,), (4, 3), (2, 3, 5)])
def test_discretization_int_matches_digitize(xp, rng, shape):
    boundaries = [-1.0, 0.0, 0.5, 2.0]
    x = rng.standard_normal(shape).astype("float32")
    x.flat[:4] = boundaries        # values on a boundary go to the bin above
    y = Discretization(bin_boundaries=boundaries)(xp.asarray(x))
    assert y.dtype == numpy.int32 and tuple(y.shape) == shape
    numpy.testing.assert_array_equal(host(y), numpy.digitize(x, boundaries))


def test_discretization_encoded_modes(xp, rng):
    boundaries = [0.0, 1.0]
    x = rng.standard_normal((6, 4)).astype("float32")
    ids = numpy.digitize(x, boundaries)
    for mode in ("one_hot", "multi_hot", "count"):
        layer = Discretization(bin_boundaries=boundaries, output_mode=mode)
        y = layer(xp.asarray(x))
        assert y.dtype == numpy.float32 and tuple(y.shape) == layer.compute_output_shape(x.shape)
        if mode == "one_hot":
            expected = numpy.eye(3)[ids]
        else:
            expected = expected_counts(ids, 3)
            expected = (expected > 0).astype(float) if mode == "multi_hot" else expected
        numpy.testing.assert_array_equal(host(y), expected)


def test_discretization_adapt_gives_quantiles(xp, rng):
    # With fewer values than 1/epsilon the summary keeps every value: the boundaries are the exact quantiles
    # of the empirical CDF i/n, interpolated linearly, as Keras's compress_summary takes them.
    data = rng.permutation(numpy.arange(1, 51)).astype("float32")
    layer = Discretization(num_bins=4)
    layer.adapt(xp.asarray(data))
    assert layer.bin_boundaries == list(numpy.interp([0.25, 0.5, 0.75], numpy.arange(1, 51) / 50, numpy.sort(data)))
    assert layer.bin_boundaries == [12.5, 25.0, 37.5]
    big = rng.standard_normal(20000).astype("float32")
    layer = Discretization(num_bins=5, epsilon=0.001)
    layer.adapt([big[:7000], big[7000:]])
    numpy.testing.assert_allclose(layer.bin_boundaries, numpy.quantile(big, [0.2, 0.4, 0.6, 0.8]), atol=0.02)
    y = host(layer(xp.asarray(big)))
    numpy.testing.assert_allclose(numpy.bincount(y) / y.size, [0.2] * 5, atol=0.01)


def test_discretization_config_round_trip_after_adapt():
    layer = Discretization(num_bins=3, output_mode="count")
    layer.adapt(numpy.arange(30.0))
    config = layer.get_config()
    assert "trainable" not in config and config["num_bins"] == 3 and len(config["bin_boundaries"]) == 2
    again = Discretization.from_config(config)
    assert again.bin_boundaries == layer.bin_boundaries and again.get_config() == config


@pytest.mark.parametrize("kwargs,match", [({}, "either"), ({"bin_boundaries": [0.0], "num_bins": 2}, "both"),
                                          ({"num_bins": -1}, "num_bins"), ({"num_bins": 3, "output_mode": "x"},
                                                                           "output_mode"),
                                          ({"bin_boundaries": [1.0, 0.0]}, "increasing"),
                                          ({"num_bins": 2, "sparse": True}, "sparse")])
def test_discretization_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"Discretization layer .*{match}"):
        Discretization(**kwargs)


def test_discretization_needs_boundaries_before_a_call():
    with pytest.raises(ValueError, match="Discretization layer .*adapt"):
        Discretization(num_bins=3)(numpy.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match="Discretization layer .*num_bins"):
        Discretization(bin_boundaries=[0.0]).adapt(numpy.zeros(3))


# ------------------------------------------------------------------ in a model
@pytest.mark.parametrize("make", [lambda: CategoryEncoding(6, output_mode="count"),
                                  lambda: Discretization(bin_boundaries=[1.0, 2.0, 4.0], output_mode="multi_hot")])
def test_a_model_starting_with_a_preprocessing_layer_trains(xp, rng, make):
    x = rng.integers(0, 6, (24, 3)).astype("float32")
    y = rng.integers(0, 2, 24)
    model = gpu_dl.Sequential([gpu_dl.layers.Input((3,)), make(), gpu_dl.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert numpy.isfinite(history.history["loss"]).all()
    assert model.predict(x, verbose=0).shape == (24, 2)


# ------------------------------------------------------------------ IntegerLookup
from gpu_dl.layers import IntegerLookup  # noqa: E402

VOCAB = [12, 36, 1138, 42]
DATA = numpy.array([[12, 1138, 42, 42], [42, 7, 36, 7]])


def test_integer_lookup_int_mode_and_oov(xp):
    # Keras's docstring examples
    y = IntegerLookup(vocabulary=VOCAB)(xp.asarray([[12, 1138, 42], [42, 1000, 36]]))
    assert y.dtype == numpy.int64 and host(y).tolist() == [[1, 3, 4], [4, 0, 2]]
    y = IntegerLookup(vocabulary=VOCAB, num_oov_indices=2)(xp.asarray([[12, 1138, 42], [37, 1000, 36]]))
    assert host(y).tolist() == [[2, 4, 5], [1, 0, 3]]
    layer = IntegerLookup(vocabulary=VOCAB, mask_token=0)
    assert host(layer(xp.asarray([[12, 0], [5, 42]]))).tolist() == [[2, 0], [1, 5]]
    assert layer.get_vocabulary() == [0, -1] + VOCAB and layer.vocabulary_size() == 6
    assert layer.get_vocabulary(include_special_tokens=False) == VOCAB
    with pytest.raises(ValueError, match="IntegerLookup layer .*OOV"):
        IntegerLookup(vocabulary=VOCAB, num_oov_indices=0)(xp.asarray([12, 5]))
    assert host(IntegerLookup(vocabulary=VOCAB, num_oov_indices=0)(xp.asarray([36, 12]))).tolist() == [1, 0]


def test_integer_lookup_invert(xp):
    layer = IntegerLookup(vocabulary=VOCAB, invert=True)
    assert host(layer(xp.asarray([[1, 3, 4], [4, 0, 2]]))).tolist() == [[12, 1138, 42], [42, -1, 36]]
    forward, back = IntegerLookup(vocabulary=VOCAB, mask_token=0), IntegerLookup(vocabulary=VOCAB, mask_token=0,
                                                                                  invert=True)
    ids = xp.asarray([[12, 0, 1138], [5, 42, 36]])
    assert host(back(forward(ids))).tolist() == [[12, 0, 1138], [-1, 42, 36]]
    assert host(back(xp.asarray([99, -3]))).tolist() == [-1, -1]


def test_integer_lookup_encoded_modes(xp):
    def run(**kwargs):
        return host(IntegerLookup(vocabulary=VOCAB, **kwargs)(xp.asarray(DATA)))
    assert run(output_mode="multi_hot").tolist() == [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]
    assert run(output_mode="count").tolist() == [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]
    numpy.testing.assert_allclose(run(output_mode="tf_idf", idf_weights=[0.25, 0.75, 0.6, 0.4]),
                                  [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6)
    numpy.testing.assert_allclose(
        host(IntegerLookup(vocabulary=[-1] + VOCAB, idf_weights=[0.9, 0.25, 0.75, 0.6, 0.4],
                           output_mode="tf_idf")(xp.asarray(DATA))),
        [[0, 0.25, 0, 0.6, 0.8], [1.8, 0, 0.75, 0, 0.4]], rtol=1e-6)
    one_hot = host(IntegerLookup(vocabulary=VOCAB, output_mode="one_hot")(xp.asarray([12, 36, 1138, 42, 7])))
    numpy.testing.assert_array_equal(one_hot, numpy.eye(5)[[1, 2, 3, 4, 0]])
    padded = host(IntegerLookup(vocabulary=VOCAB, output_mode="multi_hot", max_tokens=8, pad_to_max_tokens=True,
                                mask_token=0)(xp.asarray([[0, 12], [36, 36]])))
    assert padded.tolist() == [[0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0]]   # the mask adds nothing


def test_integer_lookup_adapt_orders_by_count_then_token(xp):
    layer = IntegerLookup()
    layer.adapt(xp.asarray([[12, 1138, 42], [42, 1000, 36]]))
    assert layer.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]       # Keras's docstring example
    assert host(layer(xp.asarray([[12, 1138, 42], [42, 1000, 36]]))).tolist() == [[5, 2, 1], [1, 3, 4]]
    layer = IntegerLookup(max_tokens=4, mask_token=0)
    layer.adapt(iter([numpy.array([5, 0, 0, 0, 7, 7, -1, -1, -1, -1]), numpy.array([9, 3, 3])]))
    assert layer.get_vocabulary() == [0, -1, 7, 3]       # mask and OOV tokens are not counted; ties: larger first


def test_integer_lookup_tf_idf_adapt(xp):
    layer = IntegerLookup(output_mode="tf_idf")
    docs = numpy.array([[12, 36, 12], [42, 42, 36], [5, 7, 7]])
    layer.adapt(docs)
    assert layer.get_vocabulary() == [-1, 42, 36, 12, 7, 5]
    holding = numpy.array([1, 2, 1, 1, 1])
    idf = numpy.log(1 + 3 / (1 + holding)).astype("float32")
    numpy.testing.assert_allclose(layer.idf_weights.numpy(), numpy.concatenate([[idf.mean()], idf]), rtol=1e-6)
    y = host(layer(xp.asarray(docs)))
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(y[0], [0, 0, idf[1], 2 * idf[2], 0, 0], rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [({"max_tokens": 1}, "max_tokens"), ({"num_oov_indices": -1}, "num_oov"),
                                          ({"output_mode": "bad"}, "output_mode"), ({"vocabulary_dtype": "int32"},
                                                                                    "vocabulary_dtype"),
                                          ({"invert": True, "output_mode": "count"}, "invert"),
                                          ({"sparse": True, "output_mode": "count"}, "sparse"),
                                          ({"pad_to_max_tokens": True}, "max_tokens"),
                                          ({"oov_method": "murmur"}, "oov_method"),
                                          ({"salt": 3}, "salt"), ({"oov_method": "farmhash", "salt": "x"}, "salt"),
                                          ({"vocabulary": [1, 2, 1]}, "repeated"),
                                          ({"vocabulary": [1, 0], "mask_token": 0}, "mask token"),
                                          ({"vocabulary": [1, 2, 3], "max_tokens": 3}, "larger"),
                                          ({"vocabulary": [1], "output_mode": "tf_idf"}, "idf_weights"),
                                          ({"idf_weights": [1.0]}, "idf_weights")])
def test_integer_lookup_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"IntegerLookup layer .*{match}"):
        IntegerLookup(**kwargs)


def test_integer_lookup_keeps_large_int64_tokens(xp):
    big = [2 ** 40 + 1, 2 ** 40 + 2]          # not representable in float32: ids must not be cast
    assert host(IntegerLookup(vocabulary=big)(xp.asarray(numpy.array(big[::-1], numpy.int64)))).tolist() == [2, 1]


@pytest.mark.parametrize("mode", ["int", "tf_idf", "given"])
def test_integer_lookup_saves_its_vocabulary_as_keras_does(tmp_path, rng, mode):
    import zipfile
    import h5py
    if mode == "given":
        lookup = IntegerLookup(vocabulary=[1, 2, 3, 4, 5], output_mode="count")
    else:
        lookup = IntegerLookup(output_mode="int" if mode == "int" else "tf_idf")
        lookup.adapt(rng.integers(0, 8, (40, 3)))
    L = gpu_dl.layers
    tail = [L.Embedding(16, 2), L.Flatten()] if mode == "int" else []
    model = gpu_dl.Sequential([L.Input((3,)), lookup, *tail, L.Dense(2, activation="softmax")])
    x = rng.integers(0, 9, (16, 3)).astype("float32")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, rng.integers(0, 2, 16), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        names = archive.namelist()
        with h5py.File(archive.open("model.weights.h5"), "r") as h5:
            keys = sorted(h5["layers/integer_lookup/vars"].keys())
    assert ("assets/layers/integer_lookup/vocabulary.txt" in names) == (mode != "given")
    assert keys == (["idf_weights"] if mode == "tf_idf" else [])
    loaded = gpu_dl.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].get_vocabulary() == lookup.get_vocabulary()
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_integer_lookup_farmhash_oov_indices_bin_the_decimal_text(xp):
    from gpu_dl.layers.string_hashing import hash_buckets
    tokens = numpy.array([[7, -3, 12345678901], [7, 1, 2]])
    for salt in (None, [5, 9]):
        layer = IntegerLookup(vocabulary=[1, 2], num_oov_indices=3, oov_method="farmhash", salt=salt)
        y = host(layer(xp.asarray(tokens)))
        text = numpy.array([["7", "-3", "12345678901"], ["7", "1", "2"]], dtype=object)
        expected = numpy.where(numpy.isin(tokens, [1, 2]), tokens + 2, hash_buckets(text, 3, salt))
        numpy.testing.assert_array_equal(y, expected)
        assert layer.get_config()["oov_method"] == "farmhash" and layer.get_config()["salt"] == salt
