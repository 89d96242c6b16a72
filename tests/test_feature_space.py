"""``gpu_dl.utils.FeatureSpace``: each kind of feature against a plain NumPy expectation, crosses, concat and dict
outputs, batches and single samples, the data ``adapt`` takes, the functional model on top of it (the flow of
Keras's "Structured data classification with FeatureSpace" example, trained end to end on a small synthetic
table), `.keras` files, and clear errors for bad input."""
import json
import zipfile

import h5py
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.data import PyDataset
from gpu_dl.utils import FeatureSpace


def host(a):
    return numpy.asarray(backend.to_numpy(a))


def vocabulary_order(values):
    """Keras's adapted vocabulary: by descending count, ties by descending value."""
    tokens, counts = numpy.unique(values, return_counts=True)
    return [tokens[i] for i in numpy.lexsort((tokens, counts))[::-1]]


def one_hot(ids, depth):
    return numpy.eye(depth, dtype=numpy.float32)[numpy.asarray(ids).reshape(-1)]


def table(seed=0, n=40):
    rng = numpy.random.default_rng(seed)
    return {"x": rng.normal(3.0, 2.0, n).astype("float32"),
            "k": rng.integers(0, 5, n),
            "s": rng.choice(["ant", "bee", "cat", "dog"], n)}


# ------------------------------------------------------------------ each kind of feature
def test_float_features_match_numpy(xp):
    data = table()
    fs = FeatureSpace({"plain": "float", "scaled": FeatureSpace.float_rescaled(scale=0.5, offset=2.0),
                       "normal": "float_normalized"}, output_mode="dict")
    fs.adapt({"plain": data["x"], "scaled": data["x"], "normal": data["x"]})
    query = numpy.array([-1.0, 0.0, 2.5, 10.0], "float64")
    out = fs({"plain": query, "scaled": query, "normal": query})
    assert sorted(out) == ["normal", "plain", "scaled"]
    assert all(backend.array_module(v) is xp for v in out.values())
    numpy.testing.assert_array_equal(host(out["plain"]), query.astype("float32").reshape(-1, 1))
    assert host(out["plain"]).dtype == numpy.float32
    numpy.testing.assert_allclose(host(out["scaled"]), query.reshape(-1, 1) * 0.5 + 2.0, rtol=1e-6)
    mean, std = data["x"].astype("float64").mean(), data["x"].astype("float64").std()
    numpy.testing.assert_allclose(host(out["normal"]), (query.reshape(-1, 1) - mean) / std, rtol=1e-5, atol=1e-5)


def test_float_discretized_matches_numpy(xp):
    boundaries = [0.0, 1.0, 2.5]
    fs = FeatureSpace({"a": FeatureSpace.float_discretized(num_bins=None, bin_boundaries=boundaries),
                       "b": FeatureSpace.float_discretized(num_bins=None, bin_boundaries=boundaries,
                                                           output_mode="int")}, output_mode="dict")
    query = numpy.array([-3.0, 0.0, 0.5, 1.0, 2.4, 2.5, 7.0], "float32")
    out = fs({"a": query, "b": query})            # given boundaries: nothing to adapt
    ids = numpy.searchsorted(boundaries, query, side="right")
    numpy.testing.assert_array_equal(host(out["a"]), one_hot(ids, 4))
    numpy.testing.assert_array_equal(host(out["b"]), ids.reshape(-1, 1))
    assert host(out["b"]).dtype == numpy.int32
    assert all(backend.array_module(v) is xp for v in out.values())


def test_float_discretized_adapts_quantile_bins():
    values = numpy.arange(100, dtype="float32")
    fs = FeatureSpace({"v": "float_discretized"}, num_discretization_bins=4)
    fs.adapt({"v": values})
    out = host(fs({"v": numpy.array([0.0, 30.0, 60.0, 99.0], "float32")}))
    assert out.shape == (4, 4)
    numpy.testing.assert_array_equal(out.argmax(axis=1), [0, 1, 2, 3])


@pytest.mark.parametrize("feature", ["integer_categorical", "string_categorical"])
def test_categorical_features_match_numpy(xp, feature):
    data = table()
    column = data["k"] if feature == "integer_categorical" else data["s"]
    fs = FeatureSpace({"c": feature, "i": getattr(FeatureSpace, feature)(output_mode="int")}, output_mode="dict")
    fs.adapt({"c": column, "i": column})
    vocab = vocabulary_order(column)
    unseen = 99 if feature == "integer_categorical" else "emu"
    query = numpy.array(list(column[:6]) + [unseen], dtype=column.dtype if feature == "integer_categorical"
                        else object)
    expected = numpy.array([vocab.index(v) + 1 if v in vocab else 0 for v in query])     # OOV index 0
    out = fs({"c": query, "i": query})
    numpy.testing.assert_array_equal(host(out["c"]), one_hot(expected, len(vocab) + 1))
    numpy.testing.assert_array_equal(host(out["i"]), expected.reshape(-1, 1))
    assert host(out["i"]).dtype == numpy.int64
    assert all(backend.array_module(v) is xp for v in out.values())


def test_categorical_max_tokens_and_no_oov_index():
    column = numpy.array([5, 5, 5, 7, 7, 9, 11])
    fs = FeatureSpace({"top": FeatureSpace.integer_categorical(max_tokens=3),
                       "all": FeatureSpace.integer_categorical(num_oov_indices=0)}, output_mode="dict")
    fs.adapt({"top": column, "all": column})
    out = fs({"top": numpy.array([5, 7, 9]), "all": numpy.array([11, 5, 9])})
    # max_tokens=3: the OOV index and the two most frequent values
    numpy.testing.assert_array_equal(host(out["top"]), one_hot([1, 2, 0], 3))
    numpy.testing.assert_array_equal(host(out["all"]), one_hot([2, 0, 3], 4))     # 5, 7, 11, 9: by count, then value


@pytest.mark.parametrize("feature,values", [("string_hashed", numpy.array(["a", "b", "zebra", "a"], dtype=object)),
                                            ("integer_hashed", numpy.array([3, -8, 1 << 40, 3]))])
def test_hashed_features_one_hot_the_hashing_bins(xp, feature, values):
    fs = FeatureSpace({"h": feature, "i": getattr(FeatureSpace, feature)(num_bins=5, output_mode="int")},
                      hashing_dim=7, output_mode="dict")
    out = fs({"h": values, "i": values})
    bins7 = host(layers.Hashing(7)(values.reshape(-1, 1))).reshape(-1)
    bins5 = host(layers.Hashing(5)(values.reshape(-1, 1)))
    numpy.testing.assert_array_equal(host(out["h"]), one_hot(bins7, 7))
    numpy.testing.assert_array_equal(host(out["i"]), bins5)
    assert bins7[0] == bins7[3]         # equal values, equal bins
    assert all(backend.array_module(v) is xp for v in out.values())


def test_crosses_hash_the_preprocessed_ids(xp):
    data = table()
    fs = FeatureSpace({"k": "integer_categorical", "s": "string_categorical"},
                      crosses=[("k", "s"), FeatureSpace.cross(("s", "k"), crossing_dim=5, output_mode="int")],
                      crossing_dim=9, output_mode="dict")
    fs.adapt({"k": data["k"], "s": data["s"]})
    query = {"k": data["k"][:8], "s": data["s"][:8]}
    out = fs(query)
    assert sorted(out) == ["k", "k_X_s", "s", "s_X_k"]
    k_ids = numpy.array([vocabulary_order(data["k"]).index(v) + 1 for v in query["k"]]).reshape(-1, 1)
    s_ids = numpy.array([vocabulary_order(data["s"]).index(v) + 1 for v in query["s"]]).reshape(-1, 1)
    numpy.testing.assert_array_equal(host(out["k_X_s"]), one_hot(host(layers.HashedCrossing(9)([k_ids, s_ids])), 9))
    numpy.testing.assert_array_equal(host(out["s_X_k"]), host(layers.HashedCrossing(5)([s_ids, k_ids])))
    assert fs.crossers["k_X_s"].num_bins == 9
    assert all(backend.array_module(v) is xp for v in out.values())


def test_concat_output_is_on_the_current_device(xp):
    data = table()
    fs = FeatureSpace({"x": "float", "r": FeatureSpace.float_rescaled(scale=2.0), "k": "integer_categorical",
                       "s": "string_hashed", "d": FeatureSpace.float_discretized(num_bins=None, bin_boundaries=[3.0])},
                      crosses=[("k", "s")], crossing_dim=4)
    fs.adapt(data | {"r": data["x"], "d": data["x"]})
    out = fs({"x": data["x"], "r": data["x"], "k": data["k"], "s": data["s"], "d": data["x"]})
    assert backend.array_module(out) is xp
    assert host(out).shape == (40, 2 + 6 + 1 + 32 + 1 + 4)     # d, k, r, s, x, k_X_s
    numpy.testing.assert_array_equal(host(out)[:, 8], 2 * data["x"])     # d (2), k (6): then r


def test_a_cross_of_three_features():
    fs = FeatureSpace({"a": FeatureSpace.integer_hashed(num_bins=50, output_mode="int"),
                       "b": FeatureSpace.string_hashed(num_bins=50, output_mode="int"), "c": "float"},
                      crosses=[FeatureSpace.cross(("a", "b", "a"), crossing_dim=7, output_mode="int")],
                      output_mode="dict")
    query = {"a": numpy.array([1, 2, 3]), "b": numpy.array(["x", "y", "z"]), "c": numpy.zeros(3)}
    out = fs(query)
    a_bins, b_bins = host(out["a"]), host(out["b"])
    numpy.testing.assert_array_equal(host(out["a_X_b_X_a"]), host(layers.HashedCrossing(7)([a_bins, b_bins, a_bins])))


def test_concat_orders_features_by_name_then_crosses():
    data = table()
    fs = FeatureSpace({"x": "float", "s": "string_categorical", "k": "integer_categorical"},
                      crosses=[("s", "k")], crossing_dim=6, output_mode="concat")
    dict_fs = FeatureSpace({"x": "float", "s": "string_categorical", "k": "integer_categorical"},
                           crosses=[("s", "k")], crossing_dim=6, output_mode="dict")
    fs.adapt(data)
    dict_fs.adapt(data)
    query = table(seed=3, n=5)
    parts = dict_fs(query)
    expected = numpy.concatenate([host(parts[name]) for name in ("k", "s", "x", "s_X_k")], axis=1)
    out = host(fs(query))
    assert out.shape == (5, 6 + 5 + 1 + 6) and out.dtype == numpy.float32
    numpy.testing.assert_array_equal(out, expected)


def test_a_single_sample_gives_its_row_without_the_batch_axis():
    data = table()
    features = {"x": "float_normalized", "s": "string_categorical", "k": "integer_categorical"}
    concat, as_dict = FeatureSpace(features), FeatureSpace(features, output_mode="dict")
    concat.adapt(data)
    as_dict.adapt(data)
    batch = host(concat(data))
    row = concat({"x": float(data["x"][2]), "s": str(data["s"][2]), "k": int(data["k"][2])})
    assert host(row).shape == (batch.shape[1],)
    numpy.testing.assert_array_equal(host(row), batch[2])
    sample = as_dict({"x": data["x"][2], "s": data["s"][2], "k": data["k"][2]})
    assert host(sample["s"]).shape == (5,) and host(sample["x"]).shape == (1,)
    # a batch of shape (batch, 1) and a list are read as the same batch
    columns = {"x": data["x"].reshape(-1, 1), "s": list(data["s"]), "k": data["k"].tolist()}
    numpy.testing.assert_array_equal(host(concat(columns)), batch)


def test_custom_feature_with_its_own_preprocessor():
    data = {"text": ["1st string", "2nd string", "3rd string", "1st thing"]}
    fs = FeatureSpace({"text": FeatureSpace.feature(preprocessor=layers.TextVectorization(output_mode="multi_hot"),
                                                    dtype="string", output_mode="float")})
    fs.adapt(data)
    vocab = fs.preprocessors["text"].get_vocabulary()
    out = host(fs({"text": ["2nd thing"]}))
    expected = numpy.zeros((1, len(vocab)), "float32")
    expected[0, [vocab.index("2nd"), vocab.index("thing")]] = 1
    numpy.testing.assert_array_equal(out, expected)


# ------------------------------------------------------------------ what adapt takes
def test_adapting_again_resizes_the_encoders():
    fs = FeatureSpace({"s": "string_categorical", "x": "float"})
    fs.adapt({"s": ["a", "b"], "x": [0.0, 1.0]})
    assert host(fs({"s": ["a"], "x": [5.0]})).tolist() == [[0, 0, 1, 5]]      # [UNK], b, a (ties: larger first)
    fs.adapt({"s": ["c", "c", "d", "a"], "x": [0.0, 1.0, 2.0, 3.0]})
    assert fs.get_encoded_features().shape == (None, 5)
    assert host(fs({"s": ["d"], "x": [5.0]})).tolist() == [[0, 0, 1, 0, 5]]     # [UNK], c, d, a


class Rows(PyDataset):
    def __init__(self, data, size):
        super().__init__()
        self.data, self.size = data, size

    def __len__(self):
        return -(-len(self.data["x"]) // self.size)

    def __getitem__(self, index):
        part = slice(index * self.size, (index + 1) * self.size)
        return {k: v[part] for k, v in self.data.items()}, numpy.zeros(len(self.data["x"][part]))


def sources(data):
    n = len(data["x"])
    return {"dict": data,
            "generator of batches": ({k: v[i:i + 7] for k, v in data.items()} for i in range(0, n, 7)),
            "list of (dict, labels)": [({k: v[i:i + 16] for k, v in data.items()}, numpy.zeros(16))
                                       for i in range(0, n, 16)],
            "samples": ({k: v[i] for k, v in data.items()} for i in range(n)),
            "PyDataset": Rows(data, 11)}


@pytest.mark.parametrize("source", ["dict", "generator of batches", "list of (dict, labels)", "samples", "PyDataset"])
def test_adapt_takes_dicts_iterables_and_data_sets(source):
    data = table(n=45)
    fs = FeatureSpace({"x": "float_normalized", "s": "string_categorical", "k": "integer_categorical"},
                      output_mode="dict")
    fs.adapt(sources(data)[source])
    assert fs.preprocessors["s"].get_vocabulary() == ["[UNK]"] + vocabulary_order(data["s"])
    assert fs.preprocessors["k"].get_vocabulary() == [-1] + [int(v) for v in vocabulary_order(data["k"])]
    normalization = fs.preprocessors["x"]
    numpy.testing.assert_allclose(host(normalization.adapt_mean.value), [data["x"].astype("float64").mean()],
                                  rtol=1e-5)
    numpy.testing.assert_allclose(host(normalization.adapt_variance.value), [data["x"].astype("float64").var()],
                                  rtol=1e-4)


def test_preset_preprocessors_are_not_adapted():
    fs = FeatureSpace({"n": FeatureSpace.feature("float32", layers.Normalization(mean=2.0, variance=4.0), "float"),
                       "c": FeatureSpace.feature("string", layers.StringLookup(vocabulary=["a", "b"]), "one_hot")},
                      output_mode="dict")
    out = fs({"n": numpy.array([4.0], "float32"), "c": numpy.array(["b"])})     # usable without adapt
    numpy.testing.assert_allclose(host(out["n"]), [[1.0]])
    numpy.testing.assert_array_equal(host(out["c"]), [[0, 0, 1]])
    fs.adapt({"n": [1.0, 2.0], "c": ["zz", "zz"]})         # nothing of theirs changes
    assert fs.preprocessors["c"].get_vocabulary() == ["[UNK]", "a", "b"]


# ------------------------------------------------------------------ functional models on top
def heart_table(seed, n):
    """A small synthetic table (numbers, integer and string categories) whose label follows a few rules."""
    rng = numpy.random.default_rng(seed)
    data = {"age": rng.uniform(25, 80, n).astype("float32"),
            "chol": rng.normal(220, 40, n).astype("float32"),
            "sex": rng.integers(0, 2, n),
            "cp": rng.integers(0, 4, n),
            "thal": rng.choice(["normal", "fixed", "reversible"], n)}
    risk = 1.5 * (data["age"] > 55) + 1.5 * (data["thal"] == "reversible") + (data["cp"] == 3) \
        + (data["chol"] - 220) / 40 - 1.4
    return data, (risk > 0).astype("float32")


def heart_feature_space():
    return FeatureSpace(
        {"sex": FeatureSpace.integer_categorical(num_oov_indices=0), "cp": "integer_categorical",
         "thal": FeatureSpace.string_categorical(num_oov_indices=0),
         "age": FeatureSpace.float_discretized(num_bins=8), "chol": "float_normalized"},
        crosses=[FeatureSpace.cross(("sex", "age"), crossing_dim=16), FeatureSpace.cross(("thal", "cp"),
                                                                                         crossing_dim=8)],
        output_mode="concat")


def columns(data):
    return {k: v.reshape(-1, 1) for k, v in data.items()}


def test_dense_model_on_encoded_features_trains_end_to_end_on_raw_dicts():
    gpu_dl.utils.set_random_seed(3)
    train, y = heart_table(0, 400)
    fs = heart_feature_space()
    fs.adapt(({k: v[i:i + 64] for k, v in train.items()}, y[i:i + 64]) for i in range(0, 400, 64))
    inputs, encoded = fs.get_inputs(), fs.get_encoded_features()
    assert sorted(inputs) == ["age", "chol", "cp", "sex", "thal"]
    assert inputs["thal"].dtype == "string" and inputs["sex"].dtype == "int32" and inputs["age"].shape == (None, 1)
    assert encoded.shape == (None, 8 + 1 + 5 + 2 + 3 + 16 + 8)     # age chol cp sex thal, crosses
    x = layers.Dense(32, activation="relu")(encoded)
    x = layers.Dropout(0.3)(x)
    model = gpu_dl.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(train, y, batch_size=32, epochs=25, verbose=0)      # (batch,) columns, as Keras takes them
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    test, y_test = heart_table(1, 200)
    _, accuracy = model.evaluate(columns(test), y_test, verbose=0)
    assert accuracy > max(y_test.mean(), 1 - y_test.mean()) + 0.1
    # the model's preprocessing is the FeatureSpace's own: its Dense layers on fs(sample) give the same prediction
    sample = {k: v[:1].reshape(1, 1) for k, v in test.items()}
    prediction = host(model.predict(sample, verbose=0))
    dense_1, dense_2 = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    by_hand = host(dense_2(dense_1(fs({k: v[0] for k, v in test.items()})[None, :])))
    numpy.testing.assert_allclose(prediction, by_hand, rtol=1e-5)


def test_keras_io_flow_training_model_then_inference_model_on_raw_dicts():
    gpu_dl.utils.set_random_seed(4)
    train, y = heart_table(2, 300)
    fs = heart_feature_space()
    fs.adapt(train)
    dict_inputs, encoded_features = fs.get_inputs(), fs.get_encoded_features()
    x = layers.Dense(16, activation="relu")(encoded_features)
    x = layers.Dropout(0.3)(x)
    predictions = layers.Dense(1, activation="sigmoid")(x)
    # As the example: a model on the encoded features trains on preprocessed batches ...
    training_model = gpu_dl.Model(inputs=encoded_features, outputs=predictions)
    training_model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    preprocessed = ((fs({k: v[i:i + 32] for k, v in train.items()}), y[i:i + 32]) for _ in range(15)
                    for i in range(0, 300, 32))
    history = training_model.fit(preprocessed, epochs=15, steps_per_epoch=10, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    # ... and a model from the raw inputs to the same predictions serves raw dicts with the trained layers.
    inference_model = gpu_dl.Model(inputs=dict_inputs, outputs=predictions)
    test, y_test = heart_table(3, 200)
    served = host(inference_model.predict(columns(test), verbose=0))
    numpy.testing.assert_allclose(served, host(training_model.predict(host(fs(test)), verbose=0)), rtol=1e-5)
    assert ((served[:, 0] > 0.5) == y_test).mean() > max(y_test.mean(), 1 - y_test.mean())
    sample = {k: v[:1].reshape(1, 1) for k, v in test.items()}
    numpy.testing.assert_allclose(host(inference_model.predict(sample, verbose=0)), served[:1], rtol=1e-5)


# ------------------------------------------------------------------ files
def test_save_and_load_round_trip_in_keras_layout(tmp_path):
    data = table()
    fs = FeatureSpace({"x": "float_normalized", "x2": "float_normalized", "s": "string_categorical",
                       "k": "integer_categorical", "d": FeatureSpace.float_discretized(num_bins=3),
                       "h": "string_hashed"}, crosses=[("s", "k")])
    fs.adapt({"x": data["x"], "x2": 2 * data["x"], "s": data["s"], "k": data["k"], "d": data["x"], "h": data["s"]})
    query = table(seed=7, n=6)
    query = {"x": query["x"], "x2": query["x"], "s": query["s"], "k": query["k"], "d": query["x"], "h": query["s"]}
    path = tmp_path / "fs.keras"
    fs.save(path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        config = json.loads(archive.read("config.json"))
        with h5py.File(archive.open("model.weights.h5"), "r") as h5file:
            mean_2 = h5file["preprocessors/normalization_1/vars/0"][()]
            groups = set()
            h5file.visit(groups.add)
    assert {"assets/preprocessors/string_lookup/vocabulary.txt",
            "assets/preprocessors/integer_lookup/vocabulary.txt"} <= names
    assert config["module"] == "keras.utils" and config["class_name"] == "FeatureSpace"
    assert config["build_config"]["x"] == {"input_shape": [None, 1]}
    assert {"concat/vars", "crossers/hashed_crossing/vars", "one_hot_encoders/category_encoding_3/vars",
            "preprocessors/hashing/vars", "vars"} <= groups
    numpy.testing.assert_allclose(mean_2, [2 * data["x"].astype("float64").mean()], rtol=1e-5)
    loaded = gpu_dl.models.load_model(path)
    assert isinstance(loaded, FeatureSpace) and loaded.output_mode == "concat"
    numpy.testing.assert_array_equal(host(loaded(query)), host(fs(query)))


def test_a_model_on_encoded_features_saves_and_loads(tmp_path):
    data = table()
    fs = FeatureSpace({"x": "float", "n": "float_normalized", "s": "string_categorical", "k": "integer_categorical"},
                      crosses=[("s", "k")], crossing_dim=5)
    fs.adapt({"x": data["x"], "n": data["x"], "s": data["s"], "k": data["k"]})
    model = gpu_dl.Model(fs.get_inputs(), layers.Dense(2)(fs.get_encoded_features()))
    query = {"x": data["x"][:6], "n": data["x"][:6], "s": data["s"][:6], "k": data["k"][:6]}
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        entries = json.loads(archive.read("config.json"))["config"]["layers"]
    kinds = {(entry["module"], entry["class_name"]) for entry in entries}
    assert {("keras.src.layers.preprocessing.feature_space", "TFDIdentity"),
            ("keras.src.layers.preprocessing.feature_space", "TFDConcat")} <= kinds
    loaded = gpu_dl.models.load_model(tmp_path / "model.keras")
    numpy.testing.assert_allclose(host(loaded.predict(query, verbose=0)), host(model.predict(query, verbose=0)),
                                  rtol=1e-6)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,match", [
    (dict(features={}), "cannot be None or empty"),
    (dict(features={"a": "floaty"}), "Invalid feature type for feature 'a'"),
    (dict(features={"a": 3}), "Invalid feature type for feature 'a'"),
    (dict(features={"a": "float"}, output_mode="stack"), "output_mode"),
    (dict(features={"a": "float", "b": "float"}, crosses=[("a", "c")]), r"unknown features \['c'\]"),
    (dict(features={"a": "float"}, crosses=[("a",)]), "two or more feature names"),
])
def test_bad_construction_is_a_clear_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeatureSpace(**kwargs)


def test_bad_feature_and_cross_arguments():
    with pytest.raises(ValueError, match="output_mode"):
        FeatureSpace.integer_categorical(output_mode="count")
    with pytest.raises(ValueError, match="output_mode"):
        FeatureSpace.cross(("a", "b"), crossing_dim=4, output_mode="float")
    with pytest.raises(ValueError, match="crossing_dim"):
        FeatureSpace.cross(("a", "b"), crossing_dim=0)
    with pytest.raises(TypeError, match="preprocessor"):
        FeatureSpace.feature("float32", "not a layer", "float")


def test_encodings_that_cannot_be_made_are_refused():
    with pytest.raises(ValueError, match="Cannot concatenate features because feature 'k'"):
        FeatureSpace({"k": FeatureSpace.integer_categorical(output_mode="int")}).adapt({"k": [1, 2]})
    custom = FeatureSpace.feature("float32", layers.Rescaling(2.0), "one_hot")
    with pytest.raises(ValueError, match="Feature 'r' has `output_mode='one_hot'`.*not known"):
        FeatureSpace({"r": custom}).get_encoded_features()
    encoded = FeatureSpace.feature("string", layers.StringLookup(vocabulary=["a"], output_mode="multi_hot"),
                                   "one_hot")
    with pytest.raises(ValueError, match="Feature 's' has `output_mode='one_hot'`.*integer dtype"):
        FeatureSpace({"s": encoded}).get_encoded_features()


def test_bad_calls_and_adapt_data_name_what_is_wrong():
    data = table()
    fs = FeatureSpace({"x": "float_normalized", "s": "string_categorical", "k": "integer_categorical"})
    with pytest.raises(ValueError, match=r"call `.adapt\(dataset\)`"):
        fs(data)
    with pytest.raises(ValueError, match="can only be called on a dict"):
        fs.adapt(numpy.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"no feature\(s\) \['k'\]"):
        fs.adapt({"x": data["x"], "s": data["s"]})
    with pytest.raises(ValueError, match="same length"):
        fs.adapt({"x": data["x"], "s": data["s"][:5], "k": data["k"]})
    with pytest.raises(ValueError, match="element 1 of the data is a list"):
        fs.adapt(iter([data, [1, 2]]))
    with pytest.raises(ValueError, match="yielded no elements"):
        fs.adapt(iter([]))
    fs.adapt(data)
    with pytest.raises(ValueError, match="can only be called with a dict"):
        fs(data["x"])
    with pytest.raises(ValueError, match=r"missing \['k'\]"):
        fs({"x": data["x"], "s": data["s"]})
    with pytest.raises(ValueError, match=r"unknown keys \['label'\]"):
        fs({**data, "label": data["k"]})
    with pytest.raises(ValueError, match="same number of rows"):
        fs({"x": data["x"], "s": data["s"][:3], "k": data["k"]})
    with pytest.raises(ValueError, match="feature 'k' takes integers"):
        fs({**data, "k": data["x"]})
    with pytest.raises(ValueError, match="feature 's' takes strings"):
        fs({**data, "s": data["k"]})
    with pytest.raises(ValueError, match="feature 'x' must be a scalar, a 1-D array or an array of shape"):
        fs({**data, "x": numpy.zeros((40, 2), "float32")})
    with pytest.raises(ValueError, match="one sample .* or on a batch"):
        fs({"x": 1.0, "s": data["s"], "k": data["k"]})
    with pytest.raises(TypeError, match="feature 's'"):
        fs({**data, "s": numpy.array([{"a": 1}] * 40)})


def test_config_round_trip_and_serialized_preprocessors():
    from gpu_dl.utils.feature_space import Feature
    rescaled = Feature("float32", {"module": "keras.layers", "class_name": "Rescaling",
                                   "config": {"scale": 2.0, "offset": 1.0, "name": "twice"}}, "float")
    fs = FeatureSpace({"r": rescaled, "s": "string_hashed",
                       "k": FeatureSpace.feature("int32", layers.IntegerLookup(vocabulary=[1, 2]), "int")},
                      crosses=[FeatureSpace.cross(("s", "k"), crossing_dim=3, output_mode="int")], output_mode="dict",
                      hashing_dim=4)
    assert isinstance(fs.preprocessors["r"], layers.Rescaling) and fs.preprocessors["r"].name == "twice"
    again = FeatureSpace.from_config(json.loads(json.dumps(fs.get_config())))
    assert again.get_config() == json.loads(json.dumps(fs.get_config()))
    assert again.crosses[0].feature_names == ("s", "k") and again.crosses[0].crossing_dim == 3
    out = again({"r": [1.5], "s": ["a"], "k": [1]})        # "k": nothing to adapt once a vocabulary is set
    numpy.testing.assert_allclose(host(out["r"]), [[4.0]])
    assert host(out["s_X_k"]).dtype == numpy.int64 and host(out["s"]).shape == (1, 4)


def test_bad_files_are_clear_errors(tmp_path):
    fs = FeatureSpace({"x": "float_normalized"})
    fs.adapt({"x": [1.0, 2.0, 4.0]})
    with pytest.raises(ValueError, match="must end in `.keras`"):
        fs.save(tmp_path / "fs.h5")
    path = tmp_path / "fs.keras"
    fs.save(path)
    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "model.weights.h5":
                with h5py.File(source.open(name), "r") as h5file, h5py.File(tmp_path / "w.h5", "w") as out:
                    for key in ("concat", "one_hot_encoders", "vars"):
                        if key in h5file:
                            h5file.copy(key, out)
                    out.create_group("preprocessors/normalization/vars")
                data = (tmp_path / "w.h5").read_bytes()
            target.writestr(name, data)
    with pytest.raises(ValueError, match="preprocessors/normalization/vars.*should hold the datasets"):
        gpu_dl.models.load_model(damaged)
    config = tmp_path / "config.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(config, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "config.json":
                entry = json.loads(data)
                entry["config"]["features"] = ["x"]
                data = json.dumps(entry)
            target.writestr(name, data)
    with pytest.raises(ValueError, match="needs a dict of `features`"):
        gpu_dl.saving.load_model(config)
