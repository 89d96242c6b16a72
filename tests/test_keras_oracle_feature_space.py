"""``gpu_dl.utils.FeatureSpace`` against Keras 3's ``keras.utils.FeatureSpace`` (torch backend). Keras runs a
FeatureSpace through TensorFlow on every backend, so these tests run where TensorFlow is installed and skip
elsewhere: adapted on the same data, both give the same encoded outputs (concat and dict modes, batches and single
samples), the same configs, and `.keras` files of a FeatureSpace load both ways."""
import json
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.utils import FeatureSpace  # noqa: E402

N = 70      # more than two of Keras's adapt batches of 32 rows


def table(seed=0, n=N):
    rng = numpy.random.default_rng(seed)
    return {"price": rng.normal(10.0, 3.0, n).astype("float32"),
            "weight": rng.uniform(0.0, 5.0, n).astype("float32"),
            "height": rng.uniform(-1.0, 1.0, n).astype("float32"),
            "age": rng.uniform(18.0, 90.0, n).astype("float32"),
            "rooms": rng.integers(1, 7, n).astype("int64"),
            "zip": rng.integers(1000, 1040, n).astype("int64"),
            "color": rng.choice(["red", "green", "blue", "ochre", "teal"], n),
            "city": rng.choice([f"city{i}" for i in range(12)], n)}


def features(space, kind):
    """The same feature specs built with gpu_dl's or Keras's FeatureSpace class."""
    if kind == "names":
        return {"price": "float", "weight": "float_normalized", "height": "float_rescaled",
                "age": "float_discretized", "rooms": "integer_categorical", "zip": "integer_hashed",
                "color": "string_categorical", "city": "string_hashed"}
    return {"price": space.float(name="p"), "weight": space.float_normalized(name="w"),
            "height": space.float_rescaled(scale=2.0, offset=-0.5, name="h"),
            "age": space.float_discretized(num_bins=5, name="a", output_mode=kind),
            "rooms": space.integer_categorical(max_tokens=5, output_mode=kind, name="r"),
            "zip": space.integer_hashed(num_bins=7, output_mode=kind, name="z"),
            "color": space.string_categorical(num_oov_indices=2, output_mode=kind, name="c"),
            "city": space.string_hashed(num_bins=6, output_mode=kind, name="ci")}


def crosses(space, kind):
    if kind == "names":
        return [("color", "rooms")]
    return [space.cross(("color", "rooms"), crossing_dim=11, output_mode=kind),
            space.cross(("age", "city"), crossing_dim=5, output_mode=kind)]


def pair(kind, output_mode, **kwargs):
    ours = FeatureSpace(features(FeatureSpace, kind), output_mode=output_mode, crosses=crosses(FeatureSpace, kind),
                        **kwargs)
    theirs = keras.utils.FeatureSpace(features(keras.utils.FeatureSpace, kind), output_mode=output_mode,
                                      crosses=crosses(keras.utils.FeatureSpace, kind), **kwargs)
    return ours, theirs


def numpy_of(value):
    if isinstance(value, dict):
        return {k: numpy_of(v) for k, v in value.items()}
    return numpy.asarray(keras.ops.convert_to_numpy(value))


def same(ours, theirs):
    if isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            same(ours[key], theirs[key])
        return
    ours = numpy.asarray(backend.to_numpy(ours))
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def plain(config):
    """A FeatureSpace config without the preprocessors' names (numbered per library), dtype policies and build
    configs (gpu_dl's lookup layers record the shape they were built for, Keras's an empty one)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "build_config" and (
                k not in ("name", "dtype", "shared_object_id") or not isinstance(v, (str, dict)))}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value
    return strip(json.loads(json.dumps(config)))


@pytest.mark.parametrize("kind,output_mode", [("names", "concat"), ("one_hot", "concat"), ("one_hot", "dict"),
                                              ("int", "dict")])
def test_adapted_outputs_match_keras(kind, output_mode):
    ours, theirs = pair(kind, output_mode, hashing_dim=9, num_discretization_bins=4, crossing_dim=13)
    data = table()
    ours.adapt(data)
    theirs.adapt(data)
    query = table(seed=1, n=9)
    query["color"][0] = "never seen"
    query["rooms"][1] = 99
    same(ours(query), numpy_of(theirs(query)))
    sample = {k: v[3] for k, v in query.items()}
    same(ours(sample), numpy_of(theirs(sample)))
    assert plain(ours.get_config()) == plain(theirs.get_config())
    assert ours.preprocessors["weight"].get_build_config() == theirs.preprocessors["weight"].get_build_config()


def test_adapt_on_batches_matches_keras_adapt_on_a_dataset():
    import tensorflow as tf
    ours, theirs = pair("one_hot", "concat")
    data = table(n=100)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(25)
    theirs.adapt(dataset)
    ours.adapt({k: v[i:i + 25] for k, v in data.items()} for i in range(0, 100, 25))
    query = table(seed=5, n=6)
    same(ours(query), numpy_of(theirs(query)))


@pytest.mark.parametrize("kind,output_mode", [("one_hot", "concat"), ("int", "dict")])
def test_symbolic_inputs_and_encoded_features_match_keras(kind, output_mode):
    ours, theirs = pair(kind, output_mode)
    data = table()
    ours.adapt(data)
    theirs.adapt(data)
    described = {k: (v.shape, v.dtype) for k, v in ours.get_inputs().items()}
    assert described == {k: (tuple(v.shape), v.dtype) for k, v in theirs.get_inputs().items()}
    encoded, expected = ours.get_encoded_features(), theirs.get_encoded_features()
    if output_mode == "concat":
        encoded, expected = {"all": encoded}, {"all": expected}
    assert {k: (v.shape, v.dtype) for k, v in encoded.items()} == \
        {k: (tuple(v.shape), v.dtype) for k, v in expected.items()}


@pytest.mark.parametrize("output_mode", ["concat", "dict"])
def test_files_load_both_ways(tmp_path, output_mode):
    ours, theirs = pair("one_hot", output_mode)
    data = table()
    ours.adapt(data)
    theirs.adapt(data)
    query = table(seed=2, n=8)
    expected = numpy_of(theirs(query))
    ours.save(tmp_path / "ours.keras")
    theirs.save(str(tmp_path / "theirs.keras"))
    same(gpu_dl.models.load_model(tmp_path / "theirs.keras")(query), expected)
    reloaded = keras.saving.load_model(str(tmp_path / "ours.keras"))
    assert isinstance(reloaded, keras.utils.FeatureSpace)
    same(ours(query), numpy_of(reloaded(query)))


def test_custom_text_feature_and_wide_integers_match_keras(tmp_path):
    # dict mode: Keras's symbolic TextVectorization gives (None, 1, tokens) for (None, 1) strings, which its concat
    # of other features refuses
    texts = ["1st string", "2nd string", "3rd string", "1st thing", "a b c", "b c"]
    ids = numpy.array([3, -8, 1 << 40, 3, 12, 1 << 40])

    def space(cls, vectorization):
        return cls({"text": cls.feature(preprocessor=vectorization(output_mode="tf_idf"), dtype="string",
                                        output_mode="float"),
                    "id": cls.integer_hashed(num_bins=5, name="id")}, output_mode="dict")

    ours = space(FeatureSpace, gpu_dl.layers.TextVectorization)
    theirs = space(keras.utils.FeatureSpace, keras.layers.TextVectorization)
    data = {"text": texts, "id": ids}
    ours.adapt(data)
    theirs.adapt(data)
    query = {"text": numpy.array(["2nd thing b", "zzz"]), "id": numpy.array([1 << 40, 7])}
    same(ours(query), numpy_of(theirs(query)))
    same(ours({"text": "a a c", "id": -8}), numpy_of(theirs({"text": "a a c", "id": -8})))
    ours.save(tmp_path / "ours.keras")
    theirs.save(str(tmp_path / "theirs.keras"))
    same(gpu_dl.models.load_model(tmp_path / "theirs.keras")(query), numpy_of(theirs(query)))
    same(ours(query), numpy_of(keras.saving.load_model(str(tmp_path / "ours.keras"))(query)))


@pytest.mark.filterwarnings("ignore:The structure of `inputs`")     # Keras's own, for any dict of inputs
def test_models_on_encoded_features_load_both_ways(tmp_path):
    # numbers only: a Keras model on the torch backend cannot take string arrays as inputs
    numeric = ("price", "weight", "height", "age", "rooms", "zip")

    def space(cls):
        return cls({k: v for k, v in features(cls, "names").items() if k in numeric}, crosses=[("rooms", "zip")])

    ours, theirs = space(FeatureSpace), space(keras.utils.FeatureSpace)
    data = {k: v for k, v in table().items() if k in numeric}
    ours.adapt(data)
    theirs.adapt(data)
    model = gpu_dl.Model(ours.get_inputs(), gpu_dl.layers.Dense(1, name="score")(ours.get_encoded_features()))
    k_model = keras.Model(theirs.get_inputs(), keras.layers.Dense(1, name="score")(theirs.get_encoded_features()))
    k_model.get_layer("score").set_weights(model.get_layer("score").get_weights())
    query = {k: v.reshape(-1, 1) for k, v in sorted(table(seed=4, n=7).items()) if k in numeric}
    expected = numpy_of(k_model.predict(query, verbose=0))
    numpy.testing.assert_allclose(backend.to_numpy(model.predict(query, verbose=0)), expected, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "ours.keras")
    k_model.save(str(tmp_path / "theirs.keras"))
    numpy.testing.assert_allclose(numpy_of(keras.saving.load_model(str(tmp_path / "ours.keras")).predict(
        query, verbose=0)), expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(backend.to_numpy(gpu_dl.models.load_model(tmp_path / "theirs.keras").predict(
        query, verbose=0)), expected, rtol=1e-5, atol=1e-6)
