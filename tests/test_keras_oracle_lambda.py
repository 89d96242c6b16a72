"""Lambda against Keras 3 itself (where Keras is installed): the same outputs, shapes and configs; a named
function's file moves both ways (with custom_objects, as Keras needs them too); a Keras file holding a Python
lambda as bytecode is refused with what to do, and its weights load into the model rebuilt in code."""
import json
import os
import zipfile

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402


def scale(x, factor=2.0):
    """Works on NumPy arrays and on Keras's torch tensors alike."""
    return x * factor + 1.0


def leading(x):
    return x[:, :3]


def leading_shape(input_shape):
    return input_shape[:-1] + (3,)


FUNCTIONS = [
    (lambda x: x ** 2, (3, 5)),
    (lambda x: x[:, :2], (4, 6)),
    (lambda x: x.sum(axis=1) if isinstance(x, numpy.ndarray) else x.sum(dim=1), (2, 7, 3)),
    (scale, (1, 1)),
]


@pytest.mark.parametrize("function,shape", FUNCTIONS)
def test_same_outputs_and_found_output_shapes(rng, function, shape):
    ours, theirs = gpu_dl.layers.Lambda(function), keras.layers.Lambda(function)
    x = rng.standard_normal(shape).astype("float32")
    numpy.testing.assert_allclose(backend.to_numpy(ours(x)), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6)
    symbolic = (None,) + shape[1:]
    assert ours.compute_output_shape(symbolic) == tuple(theirs.compute_output_shape(symbolic))


@pytest.mark.parametrize("function,input_shape", [(lambda x: x[:, :5], (None, None)),
                                                  (lambda x: x[:, :, 1:], (None, 4, None)),
                                                  (lambda x: x.reshape(-1), (None, 3)),
                                                  (lambda x: x[:1], (4, None, 2))])
def test_output_shapes_of_unknown_sizes_are_found_as_keras_finds_them(function, input_shape):
    ours, theirs = gpu_dl.layers.Lambda(function), keras.layers.Lambda(function)
    assert ours.compute_output_shape(input_shape) == tuple(theirs.compute_output_shape(input_shape))


def test_given_output_shapes_and_configs_match():
    for output_shape in ((3,), None):
        ours = gpu_dl.layers.Lambda(scale, output_shape=output_shape, arguments={"factor": 3.0}, name="l")
        theirs = keras.layers.Lambda(scale, output_shape=output_shape, arguments={"factor": 3.0}, name="l")
        assert ours.compute_output_shape((None, 5)) == tuple(theirs.compute_output_shape((None, 5)))
        mine, keras_config = ours.get_config(), theirs.get_config()
        mine.pop("dtype"), keras_config.pop("dtype")
        assert json.loads(json.dumps(mine)) == json.loads(json.dumps(keras_config))
    ours = gpu_dl.layers.Lambda(leading, output_shape=leading_shape, name="l")
    theirs = keras.layers.Lambda(leading, output_shape=leading_shape, name="l")
    assert ours.compute_output_shape((None, 4, 6)) == tuple(theirs.compute_output_shape((None, 4, 6)))
    assert ours.get_config()["output_shape"] == theirs.get_config()["output_shape"]


def _model(lib, function):
    L = lib.layers
    return lib.Sequential([lib.Input((6,)), L.Dense(5), L.Lambda(function, arguments={"factor": 0.5}),
                           L.Lambda(leading, output_shape=leading_shape), L.Dense(2)])


CUSTOM = {"scale": scale, "leading": leading, "leading_shape": leading_shape}


def test_a_named_function_s_file_moves_both_ways_with_custom_objects(rng, tmp_path):
    x = rng.standard_normal((4, 6)).astype("float32")
    keras.utils.set_random_seed(3)
    theirs = _model(keras, scale)
    theirs.save(tmp_path / "k.keras")
    ours = gpu_dl.models.load_model(tmp_path / "k.keras", custom_objects=CUSTOM)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "g.keras")
    again = keras.models.load_model(tmp_path / "g.keras", custom_objects=CUSTOM)
    numpy.testing.assert_allclose(again.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_keras_file_with_a_python_lambda_is_refused_and_its_weights_load(rng, tmp_path):
    keras.utils.set_random_seed(4)
    theirs = _model(keras, lambda t, factor: t * factor)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    written = json.loads(zipfile.ZipFile(tmp_path / "k.keras").read("config.json"))
    assert written["config"]["layers"][2]["config"]["function"]["class_name"] == "__lambda__"
    with pytest.raises(ValueError, match=r"k.keras \(config.json\): Lambda layer 'lambda(_\d+)?' holds its "
                                         r"`function` as Python bytecode \(a '__lambda__' entry.*safe_mode=False"
                                         r".*never runs code from a file.*model.load_weights\(\)"):
        gpu_dl.models.load_model(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="__lambda__"):
        gpu_dl.models.load_model(tmp_path / "k.keras", safe_mode=False, compile=False)
    with pytest.raises(ValueError, match="safe_mode"):        # Keras refuses it too, unless told otherwise
        keras.models.load_model(tmp_path / "k.keras")
    x = rng.standard_normal((4, 6)).astype("float32")
    for weights in ("k.keras", "k.weights.h5"):
        rebuilt = _model(gpu_dl, lambda t, factor: t * factor)
        rebuilt.load_weights(tmp_path / weights)
        numpy.testing.assert_allclose(rebuilt.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5,
                                      atol=1e-6)


def test_a_keras_functional_file_with_a_python_lambda_is_refused_too(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(lambda t: -t, name="negate")(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "f.keras")
    with pytest.raises(ValueError, match=r"f.keras \(config.json\).*Lambda layer 'negate' holds its `function` as "
                                         "Python bytecode"):
        gpu_dl.models.load_model(tmp_path / "f.keras")
