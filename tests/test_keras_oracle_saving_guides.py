"""Keras 3's guides "Save, serialize, and export models" and "Customizing Saving and Serialization" against Keras
itself: their programs (tests/saving_guide_programs.py) train the same, write .keras and .weights.h5 files of the
same layout and entries, and each library loads the other's files to the same predictions; what gpu_dl cannot
do (exporting for another runtime, the legacy .h5 model format) is refused with what to do instead."""
import json
import os
import warnings
import zipfile

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

import gpu_dl  # noqa: E402

import saving_guide_programs as guide  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def predict(model, x):
    return numpy.asarray(model.predict(x, verbose=0))


def archive(path):
    with zipfile.ZipFile(path) as z:
        return sorted(z.namelist()), json.loads(z.read("config.json"))


def h5_layout(path, tmp_path):
    """``{h5 path: shape}`` of the weights member of a .keras file (None for a group)."""
    with zipfile.ZipFile(path) as z:
        (tmp_path / "w.h5").write_bytes(z.read("model.weights.h5"))
    found = {}
    with h5py.File(tmp_path / "w.h5") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, getattr(obj, "shape", None)))
    return found


def test_whole_model_saving_and_loading(tmp_path):
    x, y = guide.guide_data()
    results = {}
    for lib in (gpu_dl, keras):
        model = guide.get_model(lib)
        model.fit(x, y, verbose=0, shuffle=False)
        path = tmp_path / f"my_model_{lib.__name__}.keras"
        model.save(path)
        reconstructed = lib.models.load_model(path)
        numpy.testing.assert_allclose(predict(model, x), predict(reconstructed, x))
        results[lib.__name__] = (model, path)
    (ours, our_path), (theirs, their_path) = results["gpu_dl"], results["keras"]
    numpy.testing.assert_allclose(predict(ours, x), predict(theirs, x), rtol=1e-5, atol=1e-6)
    ours_names, ours_config = archive(our_path)
    theirs_names, theirs_config = archive(their_path)
    assert ours_names == theirs_names == ["config.json", "metadata.json", "model.weights.h5"]
    assert sorted(ours_config) == sorted(theirs_config)
    # the loss as compile was given it
    assert ours_config["compile_config"]["loss"] == theirs_config["compile_config"]["loss"] == "mean_squared_error"
    assert h5_layout(our_path, tmp_path) == h5_layout(their_path, tmp_path)
    # each library reads the other's file, the optimizer's state included: training resumes the same
    from_keras, from_ours = gpu_dl.models.load_model(their_path), keras.models.load_model(our_path)
    numpy.testing.assert_allclose(predict(from_keras, x), predict(theirs, x), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(predict(from_ours, x), predict(ours, x), rtol=1e-5, atol=1e-6)
    resumed = gpu_dl.models.load_model(our_path)
    resumed.fit(x, y, verbose=0, shuffle=False)
    ours.fit(x, y, verbose=0, shuffle=False)
    numpy.testing.assert_allclose(predict(resumed, x), predict(ours, x), rtol=1e-6, atol=1e-7)
    # keras.saving.save_model / load_model are the same functions
    gpu_dl.saving.save_model(ours, tmp_path / "again.keras")
    numpy.testing.assert_allclose(predict(gpu_dl.saving.load_model(tmp_path / "again.keras"), x), predict(ours, x))


def test_registered_custom_objects_and_activation(tmp_path):
    rng = numpy.random.default_rng(1)
    x, y, test_input = rng.random((4, 4)), rng.random((4, 1)), rng.random((4, 4))
    models, paths = {}, {}
    for lib in (gpu_dl, keras):
        model = guide.custom_model(lib)
        models[lib.__name__] = model, model.fit(x, y, verbose=0, shuffle=False).history["loss"]
        paths[lib.__name__] = tmp_path / f"custom_model_{lib.__name__}.keras"
        model.save(paths[lib.__name__])
    (ours, our_loss), (theirs, their_loss) = models["gpu_dl"], models["keras"]
    # the activation x**2, traced for its gradient, trains as Keras's autograd does
    numpy.testing.assert_allclose(our_loss, their_loss, rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    entries = {name: [(e["class_name"], e.get("registered_name"), e["module"], e["config"].get("activation"))
                      for e in archive(path)[1]["config"]["layers"]] for name, path in paths.items()}
    assert entries["gpu_dl"] == entries["keras"]
    assert entries["gpu_dl"][1][:2] == ("CustomLayer", "MyLayers>CustomLayer")
    assert entries["gpu_dl"][2][3] == {"module": "builtins", "class_name": "function", "config": "my_package>custom_fn",
                                       "registered_name": "function"}
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        CustomLayer, custom_fn = guide.registered_objects(lib)
        assert lib.saving.get_registered_name(CustomLayer) == "MyLayers>CustomLayer"
        assert lib.saving.get_registered_object("my_package>custom_fn") is custom_fn
        assert {"MyLayers>CustomLayer", "my_package>custom_fn"} <= set(lib.saving.get_custom_objects())
        expected = predict(model, test_input)
        for path in paths.values():     # its own file and the other library's, without custom_objects
            numpy.testing.assert_allclose(predict(lib.models.load_model(path), test_input), expected, rtol=1e-5)
        given = {"CustomLayer": CustomLayer, "custom_fn": custom_fn}
        loaded = lib.models.load_model(paths[lib.__name__], custom_objects=given)
        numpy.testing.assert_allclose(predict(loaded, test_input), expected, rtol=1e-6)
        with lib.saving.custom_object_scope(given):
            loaded = lib.models.load_model(paths[lib.__name__])
        numpy.testing.assert_allclose(predict(loaded, test_input), expected, rtol=1e-6)
    # the loaded activation trains on
    again = gpu_dl.models.load_model(paths["gpu_dl"])
    again.fit(x, y, verbose=0, shuffle=False)
    ours.fit(x, y, verbose=0, shuffle=False)
    numpy.testing.assert_allclose(predict(again, test_input), predict(ours, test_input), rtol=1e-6)


def test_a_layer_serializing_its_sublayer():
    configs = {}
    for lib in (gpu_dl, keras):
        CustomLayer = guide.sublayer_class(lib)
        layer = CustomLayer(lib.layers.Dense(3, name="inner"), name="wrapper")
        config = layer.get_config()
        rebuilt = CustomLayer.from_config(dict(config))
        assert type(rebuilt.sublayer).__name__ == "Dense" and rebuilt.sublayer.units == 3
        assert rebuilt.name == "wrapper"
        configs[lib.__name__] = config
    ours, theirs = configs["gpu_dl"]["sublayer"], configs["keras"]["sublayer"]
    assert {k: v for k, v in ours.items() if k != "config"} == {k: v for k, v in theirs.items() if k != "config"}
    assert ours["config"] == theirs["config"]


def test_config_and_json_round_trips():
    for lib in (gpu_dl, keras):
        layer = lib.layers.Dense(3, activation="relu")
        new_layer = lib.layers.Dense.from_config(layer.get_config())
        assert new_layer.units == 3 and new_layer.get_config() == layer.get_config()
        model = lib.Sequential([lib.Input((32,)), lib.layers.Dense(1)])
        assert type(lib.Sequential.from_config(model.get_config())).__name__ == "Sequential"
        inputs = lib.Input((32,))
        functional = lib.Model(inputs, lib.layers.Dense(1)(inputs))
        assert type(lib.Model.from_config(functional.get_config())).__name__ == "Functional"
        clone = lib.models.clone_model(model)
        assert [w.shape for w in clone.get_weights()] == [(32, 1), (1,)]
    ours = json.loads(gpu_dl.Sequential([gpu_dl.Input((32,)), gpu_dl.layers.Dense(1)]).to_json())
    theirs = json.loads(keras.Sequential([keras.Input((32,)), keras.layers.Dense(1)]).to_json())
    # Keras writes compile_config, empty for a model never compiled
    assert sorted(ours) == sorted(theirs) and ours["compile_config"] == theirs["compile_config"] == {}
    assert ours["build_config"] == theirs["build_config"] == {"input_shape": [None, 32]}
    rebuilt = keras.models.model_from_json(json.dumps(ours))
    assert [w.shape for w in rebuilt.get_weights()] == [(32, 1), (1,)]
    assert type(gpu_dl.models.model_from_json(json.dumps(theirs))).__name__ == "Sequential"


def test_transfer_learning_with_weights(tmp_path):
    x = numpy.random.default_rng(2).random((3, 784)).astype("float32")
    outputs = {}
    for lib in (gpu_dl, keras):
        def create_layer():
            layer = lib.layers.Dense(64, activation="relu", name="dense_2")
            layer.build((None, 784))
            return layer
        layer_1, layer_2 = create_layer(), create_layer()
        layer_2.set_weights(layer_1.get_weights())
        for a, b in zip(layer_1.get_weights(), layer_2.get_weights()):
            numpy.testing.assert_array_equal(a, b)
        functional_model = guide.same_start(guide.simple_mlp(lib), 0.05)
        subclassed = guide.subclassed_mlp(lib)(10)
        subclassed(numpy.ones((1, 784), "float32"))
        subclassed.set_weights(functional_model.get_weights())
        assert len(functional_model.weights) == len(subclassed.weights) == 6
        numpy.testing.assert_allclose(predict(subclassed, x), predict(functional_model, x), rtol=1e-6)
        # a Dropout has no weights: the same weights fit a model with one
        model_with_dropout = guide.simple_mlp(lib, dropout=True)
        model_with_dropout.set_weights(functional_model.get_weights())
        functional_model.save_weights(tmp_path / f"pretrained_{lib.__name__}.weights.h5")
        fresh = guide.simple_mlp(lib, dropout=True)
        fresh.load_weights(tmp_path / f"pretrained_{lib.__name__}.weights.h5")
        numpy.testing.assert_allclose(predict(fresh, x), predict(functional_model, x), rtol=1e-6)
        # the guide's extraction of all layers but the head into a new model
        pretrained = lib.Model(functional_model.inputs, functional_model.layers[-1].input, name="pretrained_model")
        extracted = pretrained.layers[:-1]
        extracted.append(lib.layers.Dense(5, name="dense_3"))
        head = lib.Sequential(extracted)
        assert [layer.name for layer in pretrained.layers] == ["digits", "dense_1", "dense_2"]
        assert [layer.name for layer in head.layers] == ["dense_1", "dense_3"]
        outputs[lib.__name__] = predict(functional_model, x)
    numpy.testing.assert_allclose(outputs["gpu_dl"], outputs["keras"], rtol=1e-5, atol=1e-6)
    # each library reads the other's weights file
    for lib, other in ((gpu_dl, "keras"), (keras, "gpu_dl")):
        model = guide.simple_mlp(lib)
        model.load_weights(tmp_path / f"pretrained_{other}.weights.h5")
        numpy.testing.assert_allclose(predict(model, x), outputs[other], rtol=1e-5, atol=1e-6)


def test_what_gpu_dl_does_not_write_is_refused_with_what_to_do(tmp_path):
    model = guide.get_model(gpu_dl)
    with pytest.raises(NotImplementedError, match=r"export\(format='tf_saved_model'\).*model.save\('name.keras'\)"):
        model.export(tmp_path / "exported")
    with pytest.raises(NotImplementedError, match="format='litert'.*gpu_dl exports ONNX"):
        model.export(tmp_path / "exported", format="litert")
    with pytest.raises(ValueError, match="legacy Keras 2 HDF5 format is not supported.*`.keras`"):
        model.save(tmp_path / "my_h5_model.h5")
    # as Keras: a path without an extension, and a weights file not named .weights.h5
    with pytest.raises(ValueError, match="Invalid filepath extension for saving. Please add .*`.keras`"):
        model.save(tmp_path / "my_model")
    with pytest.raises(ValueError, match=r"The filename must end in `.weights.h5`"):
        model.save_weights(tmp_path / "w.h5")
    with pytest.raises(ValueError, match=r"The filename must end in `.weights.h5`"):
        guide.get_model(keras).save_weights(tmp_path / "w.h5")
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------ "Customizing Saving and Serialization"
def test_save_own_variables_and_load_own_variables(tmp_path):
    rng = numpy.random.default_rng(3)
    ref_input, ref_output = rng.random((8, 10)).astype("float32"), rng.random((8, 3)).astype("float32")
    models = {}
    for lib in (gpu_dl, keras):
        model = lib.Sequential([lib.Input((10,)), guide.custom_variable_layer(lib)(3)])
        guide.same_start(model)
        # a Variable assigned to an attribute is one of the layer's weights, before those build() makes
        assert [w.name for w in model.layers[0].weights] == ["my_variable", "kernel"]
        model.compile(optimizer="adam", loss="mean_squared_error")
        history = model.fit(ref_input, ref_output, epochs=2, verbose=0, shuffle=False).history["loss"]
        model.save(tmp_path / f"custom_vars_model_{lib.__name__}.keras")
        models[lib.__name__] = model, history
    (ours, our_loss), (theirs, their_loss) = models["gpu_dl"], models["keras"]
    numpy.testing.assert_allclose(our_loss, their_loss, rtol=2e-5)
    paths = {name: tmp_path / f"custom_vars_model_{name}.keras" for name in models}
    layout = h5_layout(paths["gpu_dl"], tmp_path)
    assert layout == h5_layout(paths["keras"], tmp_path)
    assert layout["layers/layer_with_custom_variable/vars/variables"] == (3,)
    assert layout["layers/layer_with_custom_variable/vars/1"] == (10, 3)
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        for path in paths.values():
            restored = lib.models.load_model(path)
            numpy.testing.assert_allclose(numpy.array(restored.layers[0].my_variable),
                                          numpy.array(model.layers[0].my_variable), rtol=1e-5)
            numpy.testing.assert_allclose(predict(restored, ref_input), predict(model, ref_input), rtol=1e-5)


def test_save_assets_and_load_assets(tmp_path):
    x = numpy.random.default_rng(4).random((10, 10)).astype("float32")
    paths = {}
    for lib in (gpu_dl, keras):
        model = lib.Sequential([guide.custom_assets_layer(lib)(vocab="Mary had a <unk> lamb.", units=5)])
        model(x)
        paths[lib.__name__] = tmp_path / f"custom_assets_model_{lib.__name__}.keras"
        model.save(paths[lib.__name__])
        with zipfile.ZipFile(paths[lib.__name__]) as z:
            assert "assets/layers/layer_with_custom_assets/vocabulary.txt" in z.namelist()
            assert z.read("assets/layers/layer_with_custom_assets/vocabulary.txt") == b"Mary had a <unk> lamb."
    for lib in (gpu_dl, keras):
        guide.custom_assets_layer(lib)
        for path in paths.values():
            restored = lib.models.load_model(path)
            numpy.testing.assert_string_equal(restored.layers[0].vocab, "Mary had a little lamb.")


def test_get_build_config_and_build_from_config(tmp_path):
    x = numpy.random.default_rng(5).random((16, 8)).astype("float32")
    paths, outputs = {}, {}
    for lib in (gpu_dl, keras):
        custom_layer = guide.custom_build_layer(lib)(units=16)
        custom_layer.build(input_shape=(None, 8), layer_init="random_normal")
        model = lib.Sequential([custom_layer, lib.layers.Dense(1, activation="sigmoid")])
        model(x[:1])        # Keras builds the Dense at the first call
        guide.same_start(model)
        outputs[lib.__name__] = predict(model, x)
        paths[lib.__name__] = tmp_path / f"custom_build_model_{lib.__name__}.keras"
        model.save(paths[lib.__name__])
        entry = archive(paths[lib.__name__])[1]["config"]["layers"][1]
        assert entry["build_config"] == {"shapes_dict": {"input_shape": [None, 8], "layer_init": "random_normal"},
                                         "layer_init": "random_normal"}
    numpy.testing.assert_allclose(outputs["gpu_dl"], outputs["keras"], rtol=1e-5)
    for lib in (gpu_dl, keras):
        guide.custom_build_layer(lib)
        for name, path in paths.items():
            restored = lib.models.load_model(path)
            assert restored.layers[0].layer_init == "random_normal" and restored.built
            numpy.testing.assert_allclose(predict(restored, x), outputs[name], rtol=1e-5)


def test_a_failing_build_from_config_is_named(tmp_path):
    """The guide's own build_from_config reads ``config["input_shape"]``, which a build of two arguments does not
    write (Keras 3.15 fails on it too, with a bare KeyError): the error names the layer and its build config."""
    class Unregistered(guide.custom_build_layer(gpu_dl)):
        pass

    layer = Unregistered(units=2)
    layer.build(input_shape=(None, 3), layer_init="zeros")
    gpu_dl.Sequential([layer]).save(tmp_path / "m.keras")

    class AsInTheGuide(Unregistered):
        def build_from_config(self, config):
            self.build(config["input_shape"], config["layer_init"])
    with pytest.raises(ValueError, match=r"layers\[1\] \(AsInTheGuide 'unregistered'\): its "
                                         r"build_from_config\(.*KeyError: 'input_shape'"):
        gpu_dl.models.load_model(tmp_path / "m.keras", custom_objects={"Unregistered": AsInTheGuide})


def test_a_subclassed_model_is_serialized_and_saved_as_keras_does(tmp_path):
    x = numpy.random.default_rng(6).random((4, 8)).astype("float32")
    y = numpy.random.default_rng(7).random((4, 3)).astype("float32")
    serialized, saved, models = {}, {}, {}
    for lib in (gpu_dl, keras):
        ThreeLayerMLP = guide.three_layer_mlp(lib)
        unbuilt = ThreeLayerMLP([64, 64, 10])
        serialized[lib.__name__] = lib.saving.serialize_keras_object(unbuilt)
        again = lib.saving.deserialize_keras_object(serialized[lib.__name__])
        assert type(again) is ThreeLayerMLP and again.hidden_units == [64, 64, 10]
        model = ThreeLayerMLP([5, 3])
        model(x[:1])
        guide.same_start(model)
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, verbose=0, shuffle=False)
        saved[lib.__name__] = tmp_path / f"three_layer_mlp_{lib.__name__}.keras"
        model.save(saved[lib.__name__])
        models[lib.__name__] = model
    ours, theirs = serialized["gpu_dl"], serialized["keras"]
    assert ours == {**theirs, "module": ours["module"]} and ours["module"] == guide.__name__
    assert ours["registered_name"] == "my_package>ThreeLayerMLP" and ours["compile_config"] == {}
    numpy.testing.assert_allclose(predict(models["gpu_dl"], x), predict(models["keras"], x), rtol=1e-5, atol=1e-6)
    assert h5_layout(saved["gpu_dl"], tmp_path) == h5_layout(saved["keras"], tmp_path)
    ours_config, theirs_config = archive(saved["gpu_dl"])[1], archive(saved["keras"])[1]
    assert ours_config["config"] == theirs_config["config"] == {"hidden_units": [5, 3]}
    # built by its first call, on one sample: Keras keeps that batch size
    assert ours_config["build_config"] == theirs_config["build_config"] == {"input_shape": [1, 8]}
    for lib in (gpu_dl, keras):
        guide.three_layer_mlp(lib)
        for name, path in saved.items():
            restored = lib.models.load_model(path)
            assert type(restored).__name__ == "ThreeLayerMLP" and restored.built
            numpy.testing.assert_allclose(predict(restored, x), predict(models[name], x), rtol=1e-5, atol=1e-6)
    # training resumes where it stopped: the optimizer's state came along
    resumed = gpu_dl.models.load_model(saved["gpu_dl"])
    resumed.fit(x, y, verbose=0, shuffle=False)
    models["gpu_dl"].fit(x, y, verbose=0, shuffle=False)
    numpy.testing.assert_allclose(predict(resumed, x), predict(models["gpu_dl"], x), rtol=1e-6)


def test_get_compile_config_and_compile_from_config(tmp_path):
    rng = numpy.random.default_rng(8)
    x, y = rng.random((4, 8)).astype("float32"), rng.random((4, 4)).astype("float32")
    paths, models = {}, {}
    for lib in (gpu_dl, keras):
        small_square_sum_loss, mean_pred = guide.compile_objects(lib)
        model = guide.model_with_custom_compile(lib)()
        model.compile(optimizer="SGD", loss_fn=small_square_sum_loss, metrics=["accuracy", mean_pred])
        model(x[:1])
        guide.same_start(model)
        history = model.fit(x, y, verbose=0, shuffle=False).history
        models[lib.__name__] = model, history
        paths[lib.__name__] = tmp_path / f"custom_compile_model_{lib.__name__}.keras"
        model.save(paths[lib.__name__])
    (ours, our_history), (theirs, their_history) = models["gpu_dl"], models["keras"]
    assert list(our_history) == list(their_history) == ["accuracy", "loss", "mean_pred"]
    for key in our_history:
        numpy.testing.assert_allclose(our_history[key], their_history[key], rtol=2e-5)
    written = {name: archive(path)[1]["compile_config"] for name, path in paths.items()}
    assert written["gpu_dl"] == written["keras"] == {
        "model_optimizer": "SGD",
        "loss_fn": {"module": "builtins", "class_name": "function",
                    "config": "my_custom_package>small_square_sum_loss", "registered_name": "function"},
        "metric": ["accuracy", {"module": "builtins", "class_name": "function", "config": "my_custom_package>mean_pred",
                                "registered_name": "function"}]}
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        guide.compile_objects(lib)
        guide.model_with_custom_compile(lib)
        for name, path in paths.items():
            restored = lib.models.load_model(path)
            # the class's own compile_from_config ran, with the registered functions found again
            assert restored.model_optimizer == "SGD" and restored.loss_fn.__name__ == "small_square_sum_loss"
            assert restored.loss_metrics[0] == "accuracy" and restored.loss_metrics[1].__name__ == "mean_pred"
            numpy.testing.assert_allclose(predict(restored, x), predict(models[name][0], x), rtol=1e-5)


def test_a_compile_config_of_objects_is_serialized(tmp_path):
    """A get_compile_config of the class's own may hold objects (an optimizer made by hand): written in their
    serialized form, and given back to compile_from_config as Keras gives them."""
    paths = {}
    for lib in (gpu_dl, keras):
        small_square_sum_loss, mean_pred = guide.compile_objects(lib)
        model = guide.model_with_custom_compile(lib)()
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.5), loss_fn=small_square_sum_loss,
                      metrics=[mean_pred])
        model(numpy.ones((1, 8), "float32"))
        paths[lib.__name__] = tmp_path / f"objects_{lib.__name__}.keras"
        model.save(paths[lib.__name__])
        written = archive(paths[lib.__name__])[1]["compile_config"]["model_optimizer"]
        assert written["class_name"] == "SGD" and written["config"]["learning_rate"] == 0.5
    for lib in (gpu_dl, keras):
        guide.compile_objects(lib)
        guide.model_with_custom_compile(lib)
        for path in paths.values():
            restored = lib.models.load_model(path)
            assert type(restored.model_optimizer).__name__ == "SGD"
            assert float(numpy.array(restored.model_optimizer.learning_rate)) == 0.5
