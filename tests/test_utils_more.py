"""serialize_keras_object / deserialize_keras_object, clear_session, get_source_inputs, is_keras_tensor, pack and
unpack_x_y_sample_weight, standardize_dtype, the interactive-logging switch and split_dataset."""
import io
import logging

import numpy
import pytest

import gpu_dl
from gpu_dl import activations, constraints, initializers, layers, losses, metrics, optimizers, regularizers, utils
from gpu_dl.saving import deserialize_keras_object, register_keras_serializable, serialize_keras_object


# ------------------------------------------------------------ serialization
@pytest.mark.parametrize("obj", [
    losses.Huber(delta=0.5), metrics.Mean(name="m"), optimizers.Adam(learning_rate=0.01),
    optimizers.schedules.ExponentialDecay(0.1, 10, 0.9), initializers.GlorotUniform(seed=1),
    regularizers.L1L2(0.1, 0.2), constraints.MaxNorm(2.0)], ids=lambda o: type(o).__name__)
def test_catalogue_objects_round_trip(obj):
    config = serialize_keras_object(obj)
    assert set(config) == {"module", "class_name", "config", "registered_name"}
    assert config["class_name"] == type(obj).__name__ and config["module"].startswith("keras.")
    again = deserialize_keras_object(config)
    assert type(again) is type(obj) and again.get_config() == obj.get_config()
    assert utils.deserialize_keras_object(utils.serialize_keras_object(obj)).get_config() == obj.get_config()


def test_layers_models_functions_and_plain_values():
    dense = layers.Dense(3, activation="relu", kernel_regularizer="l2", name="d")
    config = serialize_keras_object(dense)
    assert config["module"] == "keras.layers" and config["config"]["units"] == 3
    again = deserialize_keras_object(config)
    assert isinstance(again, layers.Dense) and again.get_config() == dense.get_config()
    model = gpu_dl.models.Sequential([gpu_dl.Input((4,)), layers.Dense(2)])
    model.compile("sgd", "mse")
    config = serialize_keras_object(model)
    assert config["class_name"] == "Sequential" and "compile_config" in config
    rebuilt = deserialize_keras_object(config)
    assert rebuilt.compiled and [w.shape for w in rebuilt.get_weights()] == [(4, 2), (2,)]
    for fn, name in ((activations.relu, "relu"), (losses.mean_squared_error, "mean_squared_error")):
        entry = serialize_keras_object(fn)
        assert entry == {"module": "builtins", "class_name": "function", "config": name,
                         "registered_name": "function"}
        assert deserialize_keras_object(entry) is fn
    assert serialize_keras_object([1, (2.5, "a"), {"k": None}]) == [1, (2.5, "a"), {"k": None}]
    array = serialize_keras_object(numpy.arange(3, dtype="int32"))
    assert array == {"class_name": "__numpy__", "config": {"value": [0, 1, 2], "dtype": "int32"}}
    numpy.testing.assert_array_equal(deserialize_keras_object(array), numpy.arange(3))
    assert serialize_keras_object(numpy.float32(1.5)) == 1.5
    assert deserialize_keras_object("relu") == "relu"      # a plain string stays one, as in Keras
    assert deserialize_keras_object({"a": [1, {"class_name": "L2", "module": "keras.regularizers",
                                               "config": {"l2": 0.5}}]})["a"][1].l2 == 0.5


def test_custom_objects_registry_and_scope():
    class Twice(losses.Loss):
        def call(self, y_true, y_pred):
            return 2 * losses.mean_squared_error(y_true, y_pred)

    config = serialize_keras_object(Twice())
    assert config["registered_name"] == "Twice" and config["class_name"] == "Twice"
    with pytest.raises(ValueError, match="nothing is imported|custom_objects"):
        deserialize_keras_object(config)
    assert type(deserialize_keras_object(config, custom_objects={"Twice": Twice})) is Twice
    with gpu_dl.saving.custom_object_scope({"Twice": Twice}):
        assert type(deserialize_keras_object(config)) is Twice

    @register_keras_serializable(package="UtilsTest")
    def cube(x):
        return x ** 3

    entry = serialize_keras_object(cube)
    assert entry["config"] == "UtilsTest>cube" and deserialize_keras_object(entry) is cube
    assert deserialize_keras_object("UtilsTest>cube") is cube


def test_serialization_refusals():
    with pytest.raises(TypeError, match="cannot serialize"):
        serialize_keras_object(object())
    with pytest.raises(ValueError, match="named functions|lambda"):
        serialize_keras_object(lambda x: x)
    with pytest.raises(ValueError, match="os"):
        deserialize_keras_object({"module": "os", "class_name": "system", "config": {}, "registered_name": None})
    with pytest.raises(ValueError, match="neither one of gpu_dl"):
        deserialize_keras_object({"module": "builtins", "class_name": "function", "config": "no_such_fn",
                                  "registered_name": "function"})
    with pytest.raises(TypeError, match="custom_objects"):
        deserialize_keras_object({}, custom_objects=["x"])
    with pytest.raises(TypeError, match="could not parse"):
        deserialize_keras_object(object())


# ------------------------------------------------------------ graph and session utilities
def test_get_source_inputs_and_is_keras_tensor():
    a, b = gpu_dl.Input((3,), name="sa"), gpu_dl.Input((3,), name="sb")
    shared = layers.Dense(3)
    out = layers.Add()([shared(b), shared(a), b])
    assert utils.get_source_inputs(out) == [b, a]
    assert utils.get_source_inputs(a) == [a]
    assert utils.get_source_inputs(5) == 5
    assert utils.is_keras_tensor(out) and not utils.is_keras_tensor(numpy.ones(3))


def test_clear_session_resets_names_and_scope():
    layers.Dense(2)
    utils.clear_session()
    assert layers.Dense(2).name == "dense" and layers.Dense(2).name == "dense_1"
    with gpu_dl.saving.custom_object_scope({"F": len}):
        utils.clear_session(free_memory=False)
        assert gpu_dl.saving.get_registered_object("F") is None
    with pytest.raises(TypeError, match="free_memory"):
        utils.clear_session(free_memory="yes")


def test_pack_unpack_and_standardize_dtype():
    x, y, w = numpy.ones(2), numpy.zeros(2), numpy.ones(2)
    assert utils.pack_x_y_sample_weight(x) is x
    assert utils.pack_x_y_sample_weight([x]) == ([x],)
    assert utils.pack_x_y_sample_weight(x, y) == (x, y)
    assert utils.pack_x_y_sample_weight(x, y, w) == (x, y, w)
    assert utils.unpack_x_y_sample_weight(x) == (x, None, None)
    assert utils.unpack_x_y_sample_weight([x, y]) == (x, y, None)
    assert utils.unpack_x_y_sample_weight((x, y, w)) == (x, y, w)
    with pytest.raises(ValueError, match="sample_weight"):
        utils.unpack_x_y_sample_weight((x, y, w, w))
    assert utils.standardize_dtype(None) == "float32"
    assert utils.standardize_dtype(numpy.float64) == "float64"
    assert utils.standardize_dtype(numpy.dtype("int8")) == "int8"
    assert utils.standardize_dtype(int) == "int32" and utils.standardize_dtype(bool) == "bool"
    assert utils.standardize_dtype("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="Invalid dtype: float33"):
        utils.standardize_dtype("float33")


def test_interactive_logging_switch(caplog, capsys):
    assert utils.is_interactive_logging_enabled()
    model = gpu_dl.models.Sequential([gpu_dl.Input((2,)), layers.Dense(1)])
    model.compile("sgd", "mse")
    data = numpy.ones((4, 2), "float32"), numpy.ones((4, 1), "float32")
    try:
        utils.disable_interactive_logging()
        assert not utils.is_interactive_logging_enabled()
        with caplog.at_level(logging.INFO, logger="gpu_dl"):
            model.fit(*data, epochs=1, verbose=1)
        assert capsys.readouterr().out == ""
        lines = [r.getMessage() for r in caplog.records if r.name == "gpu_dl"]
        assert any("1/1" in line and "loss" in line for line in lines)
        stream = io.StringIO()
        bar = utils.Progbar(2, stream=stream)      # a stream of its own: written there either way
        bar.update(2, {"a": 1.0})
        assert "2/2" in stream.getvalue()
    finally:
        utils.enable_interactive_logging()
    model.fit(*data, epochs=1, verbose=2)
    assert "1/1" in capsys.readouterr().out


# ------------------------------------------------------------ split_dataset
def test_split_dataset_sizes_and_order():
    data = numpy.arange(10)
    left, right = utils.split_dataset(data, left_size=0.8)
    numpy.testing.assert_array_equal(left, numpy.arange(8))
    numpy.testing.assert_array_equal(right, [8, 9])
    left, right = utils.split_dataset(data, left_size=3, right_size=2)
    assert left.tolist() == [0, 1, 2] and right.tolist() == [8, 9]     # the right part from the end, as Keras
    left, right = utils.split_dataset(data, right_size=0.25)
    assert len(left) == 8 and len(right) == 2     # round(2.5) == 2 for the right, the rest left, as Keras
    x, y = numpy.arange(20).reshape(10, 2), numpy.arange(10)
    (lx, ly), (rx, ry) = utils.split_dataset((x, y), left_size=0.5, shuffle=True, seed=7)
    assert sorted(ly.tolist() + ry.tolist()) == list(range(10))
    numpy.testing.assert_array_equal(lx[:, 0] // 2, ly)
    again = utils.split_dataset((x, y), left_size=0.5, shuffle=True, seed=7)
    numpy.testing.assert_array_equal(again[0][1], ly)


def test_split_dataset_py_dataset():
    class Batches(utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, index):
            return numpy.full((2, 1), index, "float32"), numpy.zeros((2, 1), "float32")

    left, right = utils.split_dataset(Batches(), left_size=3)
    assert isinstance(left, utils.PyDataset) and len(left) == 3 and len(right) == 2
    assert [int(b[0][0, 0]) for b in right] == [3, 4]
    model = gpu_dl.models.Sequential([gpu_dl.Input((1,)), layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(left, validation_data=right, epochs=1, verbose=0)


def test_split_dataset_refusals():
    data = numpy.arange(10)
    with pytest.raises(ValueError, match="At least one of the `left_size` or `right_size`"):
        utils.split_dataset(data)
    with pytest.raises(TypeError, match="`left_size`"):
        utils.split_dataset(data, left_size="half")
    with pytest.raises(ValueError, match="`right_size` should be"):
        utils.split_dataset(data, right_size=10)
    with pytest.raises(ValueError, match="greater than 1"):
        utils.split_dataset(data, left_size=0.6, right_size=0.6)
    with pytest.raises(ValueError, match="should be smaller than"):
        utils.split_dataset(data, left_size=6, right_size=6)
    with pytest.raises(ValueError, match="will be empty"):
        utils.split_dataset(data, left_size=0.01)
    with pytest.raises(ValueError, match="same number of samples"):
        utils.split_dataset((numpy.ones(3), numpy.ones(4)), left_size=1)
    with pytest.raises(TypeError, match="`dataset`"):
        utils.split_dataset({"x": data}, left_size=1)
    with pytest.raises(TypeError, match="`seed`"):
        utils.split_dataset(data, left_size=1, shuffle=True, seed="s")
