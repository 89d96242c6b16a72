"""Variable paths against Keras 3 itself (where Keras is installed): for Sequential, functional, subclassed and
nested models, built in code, reloaded from a `.keras` file and given weights by `load_weights`, both libraries
give the same (path, shape) of every weight, of every optimizer variable (whose names carry the weights' paths)
and of every `get_state_tree()` entry, and write the same `.weights.h5` layout after a reload. Keras's
deserialization builds each layer of a model on its own, so a reloaded Sequential's weights are `dense/kernel`
where the model built in code has `sequential/dense/kernel` (checked in gpu_dl alone too, where Keras is absent)."""
import os

import numpy
import pytest

h5py = pytest.importorskip("h5py")

import gpu_dl  # noqa: E402


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def fresh(keras=None):
    # the paths compared carry names both libraries number by a process-wide count
    if keras is not None:
        keras.utils.clear_session()
    gpu_dl.utils.clear_session(free_memory=False)


@pytest.fixture(autouse=True)
def fresh_sessions(request):
    keras = request.getfixturevalue("keras") if "keras" in request.fixturenames else None
    fresh(keras)
    yield
    fresh(keras)


def sequential(lib):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, name="a"), lib.layers.BatchNormalization(),
                           lib.layers.Dense(2, name="b")], name="s")


def functional(lib):
    inputs = lib.Input((4,))
    h = lib.layers.Dense(3, name="a")(inputs)
    return lib.Model(inputs, lib.layers.Dense(2, name="b")(lib.layers.BatchNormalization()(h)), name="f")


def functional_holding_sequential(lib):
    inner = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, name="a"), lib.layers.BatchNormalization()],
                           name="inner")
    inputs = lib.Input((4,))
    return lib.Model(inputs, lib.layers.Dense(2, name="b")(inner(inputs)), name="outer")


def sequential_holding_sequential(lib):
    inner = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, name="a"), lib.layers.Dense(3)], name="inner")
    return lib.Sequential([lib.Input((4,)), inner, lib.layers.Dense(2, name="b")], name="outer")


def sequential_holding_functional(lib):
    inputs = lib.Input((4,))
    inner = lib.Model(inputs, lib.layers.Dense(3, name="a")(inputs), name="inner")
    return lib.Sequential([lib.Input((4,)), inner, lib.layers.Dense(2, name="b")], name="outer")


_CLASSES = {}


def subclass(lib, own_build):
    """A subclassed model of two Dense layers, with a build of its own (which builds both) or without."""
    key = (lib.__name__, own_build)
    if key not in _CLASSES:
        class PathsModel(lib.Model):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.first = lib.layers.Dense(3, name="a")
                self.second = lib.layers.Dense(2, name="b")

            def call(self, x):
                return self.second(self.first(x))

        if own_build:
            class PathsModel(PathsModel):      # noqa: F811 (the same model, with a build of its own)
                def build(self, input_shape):
                    self.first.build(input_shape)
                    self.second.build(tuple(input_shape)[:-1] + (3,))

        _CLASSES[key] = PathsModel
    return _CLASSES[key]


def subclassed(lib, own_build=False):
    model = subclass(lib, own_build)(name="sub")
    model(numpy.zeros((1, 4), dtype="float32"))
    return model


def subclassed_own_build(lib):
    return subclassed(lib, own_build=True)


CASES = [sequential, functional, functional_holding_sequential, sequential_holding_sequential,
         sequential_holding_functional, subclassed, subclassed_own_build]
SUBCLASSED = (subclassed, subclassed_own_build)


def _flat(tree, prefix=""):
    out = []
    for key, value in tree.items():
        out += _flat(value, f"{prefix}{key}/") if isinstance(value, dict) else [(prefix + key, numpy.shape(value))]
    return out


def _paths(model):
    """(path, shape) of the weights, of the optimizer's variables, and of the state tree's entries (the metrics'
    too: the loss tracker's total and count)."""
    tree = model.get_state_tree("numpy_array")
    return {"weights": [(w.path, tuple(w.shape)) for w in model.weights], "state tree": _flat(tree),
            "layers": [layer.path for layer in model.layers], "model": model.path}


def _optimizer_paths(model):
    return [(v.path, tuple(v.shape)) for v in model.optimizer.variables]


def _trained(lib, model):
    model.compile(optimizer=lib.optimizers.Adam(), loss="mse")
    model.fit(numpy.ones((2, 4), dtype="float32"), numpy.ones((2, 2), dtype="float32"), verbose=0)
    return model


def _load(lib, path, make):
    custom = {"PathsModel": subclass(lib, make is subclassed_own_build)} if make in SUBCLASSED else None
    return lib.models.load_model(path, custom_objects=custom)


def _h5_layout(path):
    with h5py.File(path, "r") as f:
        layout = []
        f.visititems(lambda key, item: layout.append((key, getattr(item, "shape", None))))
    return layout


def _each_way(keras, tmp_path, make):
    """For each library: the paths of the model built in code, reloaded from its `.keras` file, and built in code
    again given the reloaded model's weights by `load_weights`; and the layout of that `.weights.h5` file."""
    found = {}
    for lib in (keras, gpu_dl):
        name = lib.__name__
        fresh(keras)
        built = _trained(lib, make(lib))
        seen = {"built": _paths(built)}
        built.save(tmp_path / f"{name}.keras")
        fresh(keras)
        loaded = _trained(lib, _load(lib, tmp_path / f"{name}.keras", make))
        seen["loaded"] = _paths(loaded)
        loaded.save_weights(tmp_path / f"{name}.weights.h5")
        seen["h5"] = _h5_layout(tmp_path / f"{name}.weights.h5")
        fresh(keras)
        again = make(lib)
        again.load_weights(tmp_path / f"{name}.weights.h5")
        seen["load_weights"] = _paths(_trained(lib, again))
        seen["optimizer"] = {"built": _optimizer_paths(built), "loaded": _optimizer_paths(loaded)}
        found[name] = seen
    return found["keras"], found["gpu_dl"]


@pytest.mark.parametrize("make", CASES, ids=[c.__name__ for c in CASES])
def test_paths_match_keras_built_reloaded_and_given_weights(keras, tmp_path, make):
    theirs, ours = _each_way(keras, tmp_path, make)
    for way in ("built", "loaded", "load_weights"):
        assert ours[way] == theirs[way], way
    assert ours["h5"] == theirs["h5"]
    # the optimizer's variables (the step count, the learning rate, the slots) and its entries in the state tree
    # have Keras's paths
    assert ours["optimizer"] == theirs["optimizer"]
    for way in ("built", "loaded"):
        optimizer = [(f"optimizer_variables/{p}", s) for p, s in theirs["optimizer"][way]]
        assert [e for e in ours[way]["state tree"] if e[0].startswith("optimizer_variables/")] == optimizer


def test_reloaded_sequential_drops_the_model_name_from_its_paths(tmp_path):
    model = _trained(gpu_dl, sequential(gpu_dl))
    assert [w.path for w in model.weights][:2] == ["s/a/kernel", "s/a/bias"]
    model.save(tmp_path / "m.keras")
    fresh()
    loaded = _trained(gpu_dl, gpu_dl.models.load_model(tmp_path / "m.keras"))
    assert [w.path for w in loaded.weights][:2] == ["a/kernel", "a/bias"]
    assert "a_kernel_momentum" in loaded.get_state_tree()["optimizer_variables"]["adam"]
    # the reloaded model's weights go back into one built in code, whose paths carry the model's name
    loaded.save_weights(tmp_path / "m.weights.h5")
    again = sequential(gpu_dl)
    again.load_weights(tmp_path / "m.weights.h5")
    numpy.testing.assert_array_equal(again.layers[0].kernel.numpy(), loaded.layers[0].kernel.numpy())
    assert again.layers[0].kernel.path == "s/a/kernel"


@pytest.mark.parametrize("make", [c for c in CASES if c not in SUBCLASSED])
def test_keras_file_reloaded_in_gpu_dl_has_keras_paths(keras, tmp_path, make):
    theirs = _trained(keras, make(keras))
    theirs.save(tmp_path / "k.keras")
    fresh(keras)
    reloaded_theirs = _paths(_trained(keras, keras.models.load_model(tmp_path / "k.keras")))
    fresh(keras)
    assert _paths(_trained(gpu_dl, gpu_dl.models.load_model(tmp_path / "k.keras"))) == reloaded_theirs


def sequence_wrappers(lib):
    return lib.Sequential([lib.Input((5, 4)), lib.layers.TimeDistributed(lib.layers.Dense(3), name="td"),
                           lib.layers.Bidirectional(lib.layers.LSTM(2), name="bi"),
                           lib.layers.Dense(2, name="b")], name="s")


def sequence_wrappers_given_backward(lib):
    backward = lib.layers.GRU(2, go_backwards=True, name="back")
    return lib.Sequential([lib.Input((5, 4)), lib.layers.Bidirectional(lib.layers.GRU(2), backward_layer=backward,
                                                                       name="bi")], name="s")


@pytest.mark.parametrize("make", [sequence_wrappers, sequence_wrappers_given_backward])
def test_wrapped_layers_paths_match_keras_after_reload(keras, tmp_path, make):
    # Keras builds a wrapper's layer (and both directions of a Bidirectional) on its own as it reads the file
    found = {}
    for lib in (keras, gpu_dl):
        fresh(keras)
        built = make(lib)
        built_paths = [(w.path, tuple(w.shape)) for w in built.weights]
        built.save(tmp_path / f"{lib.__name__}.keras")
        fresh(keras)
        loaded = lib.models.load_model(tmp_path / f"{lib.__name__}.keras")
        loaded.save_weights(tmp_path / f"{lib.__name__}.weights.h5")
        found[lib.__name__] = (built_paths, [(w.path, tuple(w.shape)) for w in loaded.weights],
                               _h5_layout(tmp_path / f"{lib.__name__}.weights.h5"))
    assert found["gpu_dl"] == found["keras"]
    assert all(path.startswith("s/") for path, _ in found["gpu_dl"][0])
    assert not any(path.startswith("s/") for path, _ in found["gpu_dl"][1])


def unbuilt_sequential(lib):
    return lib.Sequential([lib.layers.Dense(3, name="a"), lib.layers.Dense(2, name="b")], name="s")


@pytest.mark.parametrize("make", [sequential, sequential_holding_sequential, sequence_wrappers, unbuilt_sequential])
def test_sequential_from_its_config_has_keras_paths(keras, make):
    # Keras builds each layer of a built model's config on its own as it reads it: no model name in the paths;
    # the layers of an unbuilt model's config are built in the model's scope later
    found = {}
    for lib in (keras, gpu_dl):
        fresh(keras)
        model = make(lib)
        again = lib.Sequential.from_config(model.get_config())
        if not again.built:
            again.build((None, 4))
        twice = lib.Sequential.from_config(again.get_config())
        found[lib.__name__] = [[(w.path, tuple(w.shape)) for w in m.weights] for m in (again, twice)]
    assert found["gpu_dl"] == found["keras"]
    assert found["gpu_dl"][1] and not any(path.startswith("s/") for path, _ in found["gpu_dl"][1])
    assert any(path.startswith("s/") for path, _ in found["gpu_dl"][0]) == (make is unbuilt_sequential)
