"""The build of a layer whose call takes several tensors, against Keras 3 itself (torch backend, where Keras is
installed), with the classes of tests/build_shape_classes.py in both libraries: the same shapes given to build
(with the batch size of a call on arrays; inside a traced call the stand-in batch size Keras's torch backend
traces with), the same weights and outputs, the same
build_config in files, files of either library loading in the other, training through a traced call as Keras
trains, and the same kind of error for builds that name no call argument."""
import json
import os
import zipfile

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402

import build_shape_classes as classes  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def _numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return to_numpy(value) if not isinstance(value, numpy.ndarray) else value


def _both(make):
    return make(gpu_dl)(), make(keras)()


CALLS = {
    "query_value": (classes.query_value, lambda rng: ([(2, 4, 5), (2, 6, 7)], {})),
    "optional_key": (classes.optional_key, lambda rng: ([(2, 4, 5), (2, 6, 7)], {})),
    "optional_key_given": (classes.optional_key, lambda rng: ([(2, 4, 5), (2, 6, 7)], {"key": (2, 3, 2)})),
    "first_shape_only": (classes.first_shape_only, lambda rng: ([(3, 4), (3, 4)], {})),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_a_call_on_arrays_builds_as_keras(name):
    rng = numpy.random.default_rng(7)
    make, shapes = CALLS[name]
    positional, keywords = shapes(rng)
    args = [rng.standard_normal(s).astype("float32") for s in positional]
    kwargs = {k: rng.standard_normal(s).astype("float32") for k, s in keywords.items()}
    ours, theirs = _both(make)
    ours(*args, **kwargs)
    theirs(*args, **kwargs)
    assert ours.seen == theirs.seen and next(iter(ours.seen.values()))[0] == args[0].shape[0]
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    numpy.testing.assert_allclose(_numpy(ours(*args, **kwargs)), _numpy(theirs(*args, **kwargs)), rtol=1e-5,
                                  atol=1e-6)


def _build_config_in_file(model, path):
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))["config"]["layers"][-1]["build_config"]


def test_functional_models_build_save_and_load_as_keras(tmp_path):
    rng = numpy.random.default_rng(8)
    ours, theirs = classes.two_input_model(gpu_dl), classes.two_input_model(keras)
    assert ours.get_layer("query_value").seen == theirs.get_layer("query_value").seen
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    ours.set_weights(theirs.get_weights())
    data = [rng.standard_normal((2, 4, 5)).astype("float32"), rng.standard_normal((2, 6, 7)).astype("float32")]
    assert _build_config_in_file(ours, tmp_path / "ours.keras") == \
        _build_config_in_file(theirs, tmp_path / "theirs.keras") == \
        json.loads(json.dumps(theirs.get_layer("query_value").get_build_config()))
    for path, loader, model in ((tmp_path / "ours.keras", keras, ours), (tmp_path / "theirs.keras", gpu_dl, theirs)):
        back = loader.saving.load_model(path, custom_objects={"QueryValue": classes.query_value(loader)})
        assert back.get_layer("query_value").seen == theirs.get_layer("query_value").seen
        numpy.testing.assert_allclose(_numpy(back.predict(data, verbose=0)), _numpy(model.predict(data, verbose=0)),
                                      rtol=1e-5, atol=1e-6)


def test_a_traced_call_builds_and_trains_as_keras():
    rng = numpy.random.default_rng(9)

    def model(lib):
        return lib.Sequential([lib.Input((4, 5)), classes.holding_query_value(lib)(name="holding"),
                               lib.layers.Flatten(), lib.layers.Dense(3, activation="softmax")])
    ours, theirs = model(gpu_dl), model(keras)
    # Keras traces the outer call on torch with the batch axis set to 83, and so builds the inner layer; gpu_dl's
    # trace gives its builds that batch size too.
    assert ours.get_layer("holding").inner.seen == theirs.get_layer("holding").inner.seen
    assert next(iter(ours.get_layer("holding").inner.seen.values()))[0] == 83
    ours.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()])
    assert_training_steps_match(keras, ours, theirs, rng, (4, 5), classes=3, batch=6)


def test_builds_that_name_no_call_argument_fail_as_in_keras():
    x = numpy.ones((2, 3), dtype="float32")
    for name, error in (("not_shapes", ValueError), ("unknown", ValueError), ("missing", TypeError)):
        args = (x,) if name == "missing" else (x, x)
        for lib in (gpu_dl, keras):
            with pytest.raises(error):
                classes.bad_builds(lib)[name]()(*args)


def _recording_model(lib, seen):
    """A subclassed model whose own build records the shape it is given."""
    class Recording(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(3)

        def build(self, input_shape):
            seen.append(tuple(input_shape))
            self.dense.build(input_shape)

        def call(self, x):
            return self.dense(x)
    return Recording


@pytest.mark.parametrize("how", ["fit", "evaluate", "predict", "call", "train_on_batch"])
def test_a_subclassed_model_is_built_for_its_first_batch_as_keras(how):
    """As Keras, a subclassed model's own build gets the shape of the first batch it runs on (its traced graph
    then takes any batch size: the last batch of 5 here is smaller)."""
    x = numpy.random.default_rng(10).standard_normal((5, 4, 3)).astype("float32")
    found = []
    for lib in (gpu_dl, keras):
        seen = []
        model = _recording_model(lib, seen)()
        model.compile("sgd", "mse")
        run = {"fit": lambda: model.fit(x, x[..., :3], batch_size=2, epochs=1, verbose=0),
               "evaluate": lambda: model.evaluate(x, x, batch_size=2, verbose=0),
               "predict": lambda: model.predict(x, batch_size=2, verbose=0),
               "call": lambda: model(x),
               "train_on_batch": lambda: model.train_on_batch(x, x)}[how]
        run()
        found.append(seen)
        assert _numpy(model.predict(x[:3], verbose=0)).shape == (3, 4, 3)
    assert found[0] == found[1] == [(5 if how in ("call", "train_on_batch") else 2, 4, 3)]


def _listed(value):
    """A build config with its tuples as lists, as JSON holds it."""
    return json.loads(json.dumps(value))


def _layer_cases(lib):
    L = lib.layers
    x, q = numpy.zeros((3, 4), "float32"), numpy.zeros((2, 5, 4), "float32")
    on_arrays = L.Dense(2)
    on_arrays(x)
    symbolic = L.Dense(2)
    symbolic(lib.Input((4,)))
    merge = L.Concatenate()
    merge([x, x])
    attention = L.MultiHeadAttention(2, 3)
    attention(q, q)
    return [L.Dense(2), on_arrays, symbolic, merge, attention]


def test_get_build_config_is_keras_s_and_build_from_config_builds_from_either():
    ours, theirs = _layer_cases(gpu_dl), _layer_cases(keras)
    for mine, keras_layer in zip(ours, theirs):
        assert _listed(mine.get_build_config()) == _listed(keras_layer.get_build_config()), mine.name
    # A fresh layer of each library built from either library's config has the weights of the layer it came from
    fresh = {"dense": lambda L: L.Dense(2), "concatenate": lambda L: L.Concatenate(),
             "multi_head_attention": lambda L: L.MultiHeadAttention(2, 3)}
    for mine, keras_layer in zip(ours[1:], theirs[1:]):
        kind = next(k for k in fresh if mine.name.startswith(k))
        for config in (_listed(mine.get_build_config()), _listed(keras_layer.get_build_config())):
            for lib in (gpu_dl, keras):
                layer = fresh[kind](lib.layers)
                layer.build_from_config(config)
                assert layer.built and [tuple(w.shape) for w in layer.weights] == [w.shape for w in mine.weights]
    layer = gpu_dl.layers.Dense(2)
    layer.build_from_config({})         # an empty config builds nothing, as in Keras
    assert not layer.built
    with pytest.raises(TypeError, match="build_from_config"):
        layer.build_from_config([None, 4])


def _sequential(lib, how):
    L = lib.layers
    first = [lib.Input((4,))] if how == "input" else []
    model = lib.Sequential(first + [L.Dense(3), L.Dense(2)])
    x = numpy.linspace(-1, 1, 40, dtype="float32").reshape(10, 4)
    if how == "build":
        model.build((None, 4))
    elif how == "build_batch":
        model.build((2, 4))
    elif how == "call":
        model(x[:3])
    elif how == "fit":
        model.compile("sgd", "mse")
        model.fit(x, numpy.zeros((10, 2), "float32"), batch_size=4, epochs=1, verbose=0, shuffle=False)
    elif how == "predict":
        model.predict(x, batch_size=8, verbose=0)
    return model


def _build_entries(path):
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    inner = config["config"]
    return ([(layer["class_name"], layer["config"].get("batch_shape"), layer.get("build_config"))
             for layer in inner["layers"]], config.get("build_config"), inner.get("build_input_shape"))


@pytest.mark.parametrize("how", ["input", "build", "build_batch", "call", "fit", "predict"])
def test_sequential_build_configs_keep_the_batch_axis_where_keras_writes_it(tmp_path, how):
    ours, theirs = _sequential(gpu_dl, how), _sequential(keras, how)
    ours.save(tmp_path / "g.keras")
    theirs.save(tmp_path / "k.keras")
    assert _build_entries(tmp_path / "g.keras") == _build_entries(tmp_path / "k.keras")
    assert [_listed(layer.get_build_config()) for layer in ours.layers] == \
        [_listed(layer.get_build_config()) for layer in theirs.layers]
    # Both forms load in both libraries, and take any batch size after
    x = numpy.linspace(-1, 1, 20, dtype="float32").reshape(5, 4)
    for path in ("g.keras", "k.keras"):
        mine, keras_model = gpu_dl.models.load_model(tmp_path / path), keras.models.load_model(tmp_path / path)
        numpy.testing.assert_allclose(mine.predict(x, verbose=0), _numpy(keras_model.predict(x, verbose=0)),
                                      rtol=1e-5, atol=1e-6)
