"""gpu_dl.ops.conv and gpu_dl.ops.conv_transpose against keras.ops (where Keras is installed): the same calls give
the same values, dtypes and shapes; functional models written with either library's ops hold the same operations
(module, class, settings) and predict the same; their .keras files load in the other library; a composite layer
using them trains as Keras trains it."""
import json
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from conv_op_cases import CASES, IDS, call  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


# Keras 3.15's ConvTranspose.call passes its output_padding to the backend where the backend takes padding (and
# padding where it takes output_padding), so Keras's models holding the op cannot run: their symbolic shapes and
# configs are compared, and their outputs are keras.ops.conv_transpose's on the same arrays.


def _keras_output(model, transposed, settings, arrays):
    return _numpy(call(keras.ops, transposed, *arrays, settings) if transposed else model(arrays))


def _arrays(rng, x_shape, kernel_shape, dtype="float32"):
    return [rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(kernel_shape).astype(dtype)]


def _model(lib, x_shape, kernel_shape, transposed, settings):
    x = lib.Input(batch_shape=x_shape, name="x")
    kernel = lib.Input(batch_shape=kernel_shape, name="kernel")
    return lib.Model([x, kernel], call(lib.ops, transposed, x, kernel, settings))


def _operations(config):
    return [(e["module"], e["class_name"], json.dumps({k: v for k, v in e["config"].items() if k != "name"},
                                                      sort_keys=True))
            for e in config["layers"] if e["module"].startswith("keras.src.ops")]


def _numpy(value):
    return keras.ops.convert_to_numpy(value)


@pytest.mark.parametrize("name,x_shape,kernel_shape,transposed,settings", CASES, ids=IDS)
def test_same_values_dtypes_and_shapes_as_keras_on_arrays(rng, name, x_shape, kernel_shape, transposed, settings):
    for dtype, tol in (("float32", 2e-5), ("float64", 1e-12)):
        x, kernel = _arrays(rng, x_shape, kernel_shape, dtype)
        ours, theirs = call(gpu_dl.ops, transposed, x, kernel, settings), _numpy(call(keras.ops, transposed, x,
                                                                                     kernel, settings))
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        numpy.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("name,x_shape,kernel_shape,transposed,settings", CASES, ids=IDS)
def test_same_operations_and_outputs_as_keras_in_functional_models(rng, name, x_shape, kernel_shape, transposed,
                                                                   settings):
    ours = _model(gpu_dl, x_shape, kernel_shape, transposed, settings)
    theirs = _model(keras, x_shape, kernel_shape, transposed, settings)
    assert _operations(ours.get_config()) == _operations(theirs.get_config())
    assert tuple(ours.output_shape) == tuple(theirs.output_shape)
    assert ours.outputs[0].dtype == theirs.outputs[0].dtype
    arrays = _arrays(rng, x_shape, kernel_shape)
    numpy.testing.assert_allclose(ours.forward(arrays), _keras_output(theirs, transposed, settings, arrays),
                                  rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name,x_shape,kernel_shape,transposed,settings", CASES, ids=IDS)
def test_files_load_in_either_library_and_predict_the_same(tmp_path, rng, name, x_shape, kernel_shape, transposed,
                                                           settings):
    arrays = _arrays(rng, x_shape, kernel_shape)
    theirs = _model(keras, x_shape, kernel_shape, transposed, settings)
    theirs.save(tmp_path / "k.keras")
    loaded = load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(loaded.forward(arrays), _keras_output(theirs, transposed, settings, arrays),
                                  rtol=2e-5, atol=2e-5)
    ours = _model(gpu_dl, x_shape, kernel_shape, transposed, settings)
    ours.save(tmp_path / "g.keras")
    read_back = keras.models.load_model(tmp_path / "g.keras")
    assert _operations(read_back.get_config()) == _operations(ours.get_config())
    assert tuple(read_back.output_shape) == tuple(ours.output_shape)
    numpy.testing.assert_allclose(_keras_output(read_back, transposed, settings, arrays), ours.forward(arrays),
                                  rtol=2e-5, atol=2e-5)


def test_a_grouped_convolution_on_arrays_as_keras_s(rng):
    x, kernel = _arrays(rng, (2, 7, 5, 6), (3, 2, 2, 9))
    for settings in ({"padding": "same"}, {"strides": 2}, {"dilation_rate": 2, "data_format": "channels_last"}):
        ours, theirs = gpu_dl.ops.conv(x, kernel, **settings), _numpy(keras.ops.conv(x, kernel, **settings))
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        numpy.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-5)


def up_down(lib):
    """A composite layer whose call convolves with its own kernels (down with strides, back up with the
    transposed convolution, a 1-D one along the rows), then a classifier."""
    ops, L = lib.ops, lib.layers

    class UpDown(L.Layer):
        def build(self, input_shape):
            self.down = self.add_weight(shape=(3, 3, input_shape[-1], 4), initializer="glorot_uniform",
                                        name="down")
            self.up = self.add_weight(shape=(3, 3, 3, 4), initializer="glorot_uniform", name="up")
            self.rows = self.add_weight(shape=(2, 3, 2), initializer="glorot_uniform", name="rows")

        def call(self, x):
            h = ops.relu(ops.conv(x, self.down, strides=2, padding="same"))
            h = ops.conv_transpose(h, self.up, strides=2, padding="same", output_padding=1)
            rows = ops.conv(ops.reshape(h, (-1, 8, 3)), self.rows, padding="valid", dilation_rate=2)
            return ops.reshape(rows, (-1, 8, 6, 2))

    x = lib.Input(shape=(7, 7, 2), name="x")
    h = UpDown(name="updown")(x)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(L.Flatten(name="flat")(h)))


def test_a_composite_layer_using_the_ops_trains_as_keras_s(rng):
    backend.set_random_seed(5)
    ours, theirs = up_down(gpu_dl), up_down(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert tuple(ours.output_shape) == tuple(theirs.output_shape)
    assert_training_steps_match(keras, ours, theirs, rng, (7, 7, 2), classes=3, batch=5)
