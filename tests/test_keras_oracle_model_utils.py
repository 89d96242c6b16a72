"""clone_model, to_json / model_from_json, serialize_keras_object and split_dataset against Keras 3 itself (where
Keras is installed): the clones describe the same models in both, JSON moves between them, the dicts are Keras's,
and split_dataset puts the same samples on each side."""
import json
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import utils  # noqa: E402
from gpu_dl.models import clone_model, model_from_json  # noqa: E402
from gpu_dl.saving import deserialize_keras_object, serialize_keras_object  # noqa: E402


def sequential(lib):
    L = lib.layers
    return lib.Sequential([lib.Input((4,), name="x_in"), L.Dense(3, activation="relu", name="d1"),
                           L.Dropout(0.25, name="drop"), L.Dense(2, name="d2")], name="seq")


def siamese(lib):
    L = lib.layers
    a, b = lib.Input((4,), name="a"), lib.Input((4,), name="b")
    shared = L.Dense(3, activation="tanh", name="shared")
    x = L.Concatenate(name="join")([shared(a), shared(b)])
    return lib.Model([a, b], L.Dense(1, name="head")(x), name="siamese")


def summary_of(model):
    """What a clone must keep: the model's name and class, and each layer's class, name and main settings."""
    rows = []
    for layer in model.layers:
        config = layer.get_config()
        rows.append((type(layer).__name__, layer.name, config.get("units"), config.get("rate"),
                     str(config.get("activation"))))
    return type(model).__name__.replace("Functional", "Model"), model.name, rows


def rows_without_inputs(summary):
    kind, name, rows = summary
    return kind, name, [r for r in rows if r[0] != "InputLayer"]


@pytest.mark.parametrize("make", [sequential, siamese])
def test_clone_model_like_keras(make):
    ours, theirs = clone_model(make(gpu_dl)), keras.models.clone_model(make(keras))
    assert rows_without_inputs(summary_of(ours)) == rows_without_inputs(summary_of(theirs))
    # each reads the other's clone as the same model
    assert rows_without_inputs(summary_of(model_from_json(theirs.to_json()))) == \
        rows_without_inputs(summary_of(ours))
    assert rows_without_inputs(summary_of(keras.models.model_from_json(ours.to_json()))) == \
        rows_without_inputs(summary_of(theirs))


def test_clone_function_and_compile_like_keras():
    def clone_function(layer):
        config = layer.get_config()
        if "rate" in config:
            config["rate"] = 0.5
        return type(layer).from_config(config)

    models = []
    for lib in (gpu_dl, keras):
        model = sequential(lib)
        model.compile(optimizer="adam", loss="mse")
        models.append(lib.models.clone_model(model, clone_function=clone_function))
    ours, theirs = models
    assert ours.get_layer("drop").rate == theirs.get_layer("drop").rate == 0.5
    assert ours.compiled and theirs.compiled
    assert type(ours.optimizer).__name__ == type(theirs.optimizer).__name__


def test_model_from_json_of_a_keras_model():
    theirs = siamese(keras)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    ours = model_from_json(theirs.to_json())
    assert ours.compiled and type(ours.optimizer).__name__ == "SGD"
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    ours.set_weights(theirs.get_weights())
    rng = numpy.random.default_rng(0)
    x = [rng.normal(size=(3, 4)).astype("float32") for _ in range(2)]
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def catalogue_objects(lib):
    # (Keras 3.15's Huber leaves `delta` out of its config; gpu_dl writes it, so it is not compared here.)
    return [lib.losses.MeanSquaredError(), lib.losses.BinaryCrossentropy(from_logits=True), lib.metrics.Mean(name="m"),
            lib.initializers.GlorotUniform(seed=1), lib.initializers.Constant(0.5), lib.regularizers.L1L2(0.1, 0.2),
            lib.constraints.MaxNorm(2.0), lib.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9),
            lib.activations.relu, lib.losses.mean_squared_error]


@pytest.mark.parametrize("index", range(len(catalogue_objects(gpu_dl))))
def test_serialize_keras_object_dicts_are_keras(index):
    ours, theirs = catalogue_objects(gpu_dl)[index], catalogue_objects(keras)[index]
    written = serialize_keras_object(ours)
    assert json.loads(json.dumps(written)) == json.loads(json.dumps(keras.saving.serialize_keras_object(theirs)))
    # and each reads the other's
    again = deserialize_keras_object(keras.saving.serialize_keras_object(theirs))
    assert type(again).__name__ == type(ours).__name__
    if hasattr(ours, "get_config"):
        assert again.get_config() == ours.get_config()
        assert keras.saving.deserialize_keras_object(written).get_config() == theirs.get_config()


def test_serialized_layer_and_optimizer_read_by_the_other():
    dense = serialize_keras_object(gpu_dl.layers.Dense(3, activation="relu", kernel_regularizer="l2", name="d"))
    theirs = keras.saving.deserialize_keras_object(dense)
    assert isinstance(theirs, keras.layers.Dense) and theirs.units == 3 and theirs.name == "d"
    keras_dense = keras.saving.serialize_keras_object(keras.layers.Dense(3, activation="relu", name="d"))
    assert deserialize_keras_object(keras_dense).get_config()["activation"] == "relu"
    adam = deserialize_keras_object(keras.saving.serialize_keras_object(keras.optimizers.Adam(0.01, beta_1=0.8)))
    assert type(adam).__name__ == "Adam" and adam.get_config()["beta_1"] == 0.8
    theirs = keras.saving.deserialize_keras_object(serialize_keras_object(gpu_dl.optimizers.Adam(0.01, beta_1=0.8)))
    assert theirs.get_config()["beta_1"] == 0.8


@pytest.mark.parametrize("n,left,right", [(10, 0.8, None), (10, None, 0.25), (10, 3, 7), (7, 0.5, None),
                                          (9, 0.3, None), (100, 17, None), (5, None, 1)])
def test_split_dataset_sizes_like_keras(n, left, right):
    # Under KERAS_BACKEND=torch Keras splits with torch's random_split, which draws a random order even with
    # shuffle=False (its generator is then torch's global one); gpu_dl keeps the order unshuffled and draws a
    # shuffled one as Keras's tf.data path does (which needs TensorFlow). So the sizes are compared, and that each
    # side holds distinct samples that together are all of them.
    data = numpy.arange(n)
    for shuffle in (False, True):
        theirs = keras.utils.split_dataset(data, left_size=left, right_size=right, shuffle=shuffle, seed=3)
        ours = utils.split_dataset(data, left_size=left, right_size=right, shuffle=shuffle, seed=3)
        assert [len(part) for part in ours] == [len(part) for part in theirs]
        keras_samples = sorted(int(numpy.asarray(p[i]).reshape(-1)[0]) for p in theirs for i in range(len(p)))
        assert sorted(ours[0].tolist() + ours[1].tolist()) == keras_samples == list(range(n))
