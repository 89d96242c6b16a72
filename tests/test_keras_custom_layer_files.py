"""Keras's base layer arguments (``autocast``, ``dtype`` as a serialized ``DTypePolicy``, ``trainable``, ``name``,
``input_shape``) taken by ``Layer.__init__`` as Keras takes them, unknown ones refused with Keras's message; and
.keras files Keras 3 writes with custom layer subclasses (registered, or given in ``custom_objects``) loaded by
gpu_dl with the same classes written for gpu_dl, predicting what Keras predicts."""
import json
import os
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import layers

POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"}, "registered_name": None}


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def custom_classes(lib, register=True):
    """A layer whose __init__ passes **kwargs on and that keeps Keras's generated config (``Project``), and one
    whose get_config adds its own key (``Scale``), written once for gpu_dl or keras; registered under the package
    "CustomFiles" where ``register``."""
    L = lib.layers

    class Project(L.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform",
                                          name="kernel")

        def call(self, x):
            return lib.ops.tanh(lib.ops.matmul(x, self.kernel))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class Scale(L.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            config = super().get_config()
            config.update({"factor": self.factor})
            return config

    if register:
        Project = lib.saving.register_keras_serializable(package="CustomFiles")(Project)
        Scale = lib.saving.register_keras_serializable(package="CustomFiles")(Scale)
    return Project, Scale


def generated_config_class(lib):
    """A layer without get_config of its own: Keras writes the arguments its __init__ was given (``autocast`` and
    ``input_shape`` among them when given)."""
    class Shift(lib.layers.Layer):
        def __init__(self, offset, **kwargs):
            super().__init__(**kwargs)
            self.offset = offset

        def call(self, x):
            return x + self.offset

    return Shift


# ------------------------------------------------------------ Layer.__init__'s base arguments
def test_layer_takes_a_serialized_dtype_policy_and_autocast():
    layer = layers.Dense(3, dtype=POLICY, autocast=False, name="head")
    assert layer.dtype == "float64" and layer.autocast is False and layer.name == "head"
    assert layers.Dense(3).autocast is True
    assert layers.Dense(3, dtype={"class_name": "FloatDTypePolicy", "config": {"name": "float32"}}).dtype == "float32"
    with pytest.raises(ValueError, match="serialized DTypePolicy"):
        layers.Dense(3, dtype={"class_name": "Policy", "config": {"name": "float32"}})
    mixed = layers.Dense(3, dtype={"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}})
    assert (mixed.compute_dtype, mixed.dtype) == ("float16", "float32")
    with pytest.raises(ValueError, match="'mixed_bfloat16' is not supported.*'mixed_float16'"):
        layers.Dense(3, dtype={"class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}})


def test_layer_refuses_unknown_arguments_with_keras_message():
    with pytest.raises(ValueError, match=r"^Unrecognized keyword arguments passed to Dense: \{'unit': 3\}$"):
        layers.Dense(3, unit=3)
    _, scale = custom_classes(gpu_dl, register=False)
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments passed to Scale: \{'bogus': 1\}"):
        scale(bogus=1)


def test_autocast_false_leaves_float_inputs_uncast():
    _, scale = custom_classes(gpu_dl, register=False)
    x = numpy.arange(6, dtype="float64").reshape(2, 3) / 7
    kept = scale(3.0, autocast=False)(x)
    assert kept.dtype == numpy.float64
    numpy.testing.assert_array_equal(gpu_dl.backend.to_numpy(kept), x * 3.0)
    cast = scale(3.0)(x)
    assert cast.dtype == numpy.float32
    numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(cast), (x * 3.0).astype("float32"), rtol=1e-7)
    # Integers are cast either way (Keras's autocast concerns floats only).
    ids = numpy.arange(4).reshape(2, 2)
    assert layers.Activation("relu", autocast=False)(ids).dtype == numpy.float32
    x32 = numpy.ones((2, 3), dtype="float32")
    assert layers.Activation("relu", autocast=False, dtype="float64")(x32).dtype == numpy.float32


def test_autocast_output_dtypes_equal_keras(keras):
    x = numpy.arange(6, dtype="float64").reshape(2, 3) / 7
    for autocast in (True, False):
        ours = custom_classes(gpu_dl, register=False)[1](3.0, autocast=autocast)(x)
        theirs = custom_classes(keras, register=False)[1](3.0, autocast=autocast)(x)
        assert numpy.dtype(ours.dtype).name == keras.backend.standardize_dtype(theirs.dtype)
        numpy.testing.assert_allclose(gpu_dl.backend.to_numpy(ours), keras.ops.convert_to_numpy(theirs), rtol=1e-6)


# ------------------------------------------------------------ files Keras writes
def keras_model(keras, register):
    project, scale = custom_classes(keras, register)
    shift = generated_config_class(keras)
    with pytest.warns(UserWarning, match="input_shape"):
        first = shift(0.25, autocast=False, trainable=False, input_shape=(4,))
    return keras.Sequential([first, project(5, name="project"), scale(3.0, name="scale")])


def layer_configs(path):
    with zipfile.ZipFile(path) as archive:
        return {entry["class_name"]: entry for entry in json.loads(archive.read("config.json"))["config"]["layers"]}


@pytest.mark.parametrize("register", [True, False], ids=["registered", "custom_objects"])
def test_keras_file_with_custom_layers_loads_and_predicts_the_same(keras, tmp_path, register):
    model = keras_model(keras, register)
    x = numpy.random.default_rng(0).standard_normal((6, 4)).astype("float32")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    entries = layer_configs(tmp_path / "m.keras")
    # What Keras writes for them: its base keys, the dtype as a policy, and the generated config's arguments.
    assert entries["Project"]["config"]["dtype"]["class_name"] == "DTypePolicy"
    assert entries["Project"]["config"]["trainable"] is True and entries["Scale"]["config"]["factor"] == 3.0
    assert {k: entries["Shift"]["config"][k] for k in ("offset", "autocast", "input_shape", "trainable")} == \
        {"offset": 0.25, "autocast": False, "input_shape": [4], "trainable": False}
    assert entries["Scale"]["registered_name"] == ("CustomFiles>Scale" if register else "Scale")

    project, scale = custom_classes(gpu_dl, register)
    shift = generated_config_class(gpu_dl)
    given = {"Shift": shift} if register else {"Project": project, "Scale": scale, "Shift": shift}
    ours = gpu_dl.models.load_model(tmp_path / "m.keras", custom_objects=given)
    assert [type(layer).__name__ for layer in ours.layers] == ["Shift", "Project", "Scale"]
    assert ours.layers[0].autocast is False and ours.layers[0].trainable is False and ours.layers[0].offset == 0.25
    assert ours.layers[1].name == "project" and ours.layers[1].autocast is True
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    kernel = model.layers[1].get_weights()[0]
    numpy.testing.assert_array_equal(ours.layers[1].get_weights()[0], kernel)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), numpy.tanh((x + 0.25) @ kernel) * 3.0, rtol=1e-5,
                                  atol=1e-6)
