"""Convolution, pooling and padding layers against Keras 3 itself (where Keras is installed).

Same weights and inputs give the same outputs ("same" padding's odd pad
bottom/right, average pooling's count of in-bounds positions included),
and a small CNN takes the same training steps.
"""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


@pytest.mark.parametrize("name,kwargs", [
    ("Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}),
    ("Conv2D", {"filters": 3, "kernel_size": (2, 5), "strides": (3, 1), "padding": "same"}),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "use_bias": False}),
    ("Conv2D", {"filters": 5, "kernel_size": 1, "strides": 2}),
    ("Conv2D", {"filters": 2, "kernel_size": 3, "padding": "same", "data_format": "channels_first"}),
    ("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("MaxPooling2D", {"pool_size": (2, 3)}),
    # Asymmetric "same" average pooling is left out: Keras's torch backend pads it by replicating edge
    # values, which its TensorFlow and JAX backends (and gpu_dl) do not count (tests/test_conv_layers.py).
    ("AveragePooling2D", {"pool_size": 3, "strides": 1, "padding": "same"}),
    ("AveragePooling2D", {"pool_size": 2, "strides": 1, "padding": "same"}),
    ("GlobalMaxPooling2D", {}),
    ("GlobalAveragePooling2D", {"keepdims": True}),
    ("ZeroPadding2D", {"padding": ((1, 2), (0, 3))}),
])
def test_layer_output_matches_keras(rng, name, kwargs):
    x = rng.standard_normal((2, 7, 10, 3)).astype("float32")
    ours, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    y_ours = ours(x)
    theirs.build(x.shape)
    if ours.weights:
        theirs.set_weights(ours.get_weights())
    y_theirs = keras.ops.convert_to_numpy(theirs(x))
    assert y_ours.shape == y_theirs.shape
    numpy.testing.assert_allclose(y_ours, y_theirs, rtol=1e-5, atol=1e-5)
    assert (tuple(ours.compute_output_shape((None,) + x.shape[1:]))
            == tuple(theirs.compute_output_shape((None,) + x.shape[1:])))


def test_kernel_initialiser_fans_match_keras():
    """glorot_uniform over (kh, kw, cin, cout) uses fans kh*kw*cin and kh*kw*cout, as Keras does."""
    ours = layers.Conv2D(64, (5, 3), kernel_initializer="glorot_uniform")
    ours.build((None, 8, 8, 16))
    limit = numpy.sqrt(6 / (5 * 3 * 16 + 5 * 3 * 64))
    kernel = ours.get_weights()[0]
    assert numpy.abs(kernel).max() <= limit and numpy.abs(kernel).max() > 0.95 * limit


def test_cnn_training_steps_match_keras(rng):
    def stack(lib):
        return [lib.layers.Conv2D(4, 3, padding="same", activation="relu"),
                lib.layers.MaxPooling2D(2, padding="same"),
                lib.layers.Conv2D(6, 3, strides=2, padding="same", activation="tanh"),
                lib.layers.AveragePooling2D(2, strides=1),
                lib.layers.Flatten(),
                lib.layers.Dense(5, activation="softmax")]
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((9, 7, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((9, 7, 2))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (9, 7, 2), classes=5, batch=6)
