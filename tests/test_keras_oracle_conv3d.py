"""The 3-D layers against Keras 3 itself (where Keras is installed): outputs, output shapes and configs from
the same weights and inputs, training steps of a small 3-D CNN, and .keras files both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_keras_file_loads_both_ways, assert_training_steps_match  # noqa: E402

CASES = [
    ("Conv3D", {"filters": 4, "kernel_size": 3, "activation": "relu"}),
    ("Conv3D", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}),
    ("Conv3D", {"filters": 2, "kernel_size": (2, 3, 1), "strides": (3, 1, 2), "padding": "same", "use_bias": False}),
    ("Conv3D", {"filters": 2, "kernel_size": 3, "dilation_rate": (2, 1, 2), "padding": "same"}),
    ("Conv3D", {"filters": 4, "kernel_size": 2, "groups": 2, "padding": "same", "activation": "tanh"}),
    ("Conv3D", {"filters": 2, "kernel_size": 3, "padding": "same", "data_format": "channels_first"}),
    ("Convolution3D", {"filters": 2, "kernel_size": 1}),
    ("MaxPooling3D", {}),
    ("MaxPooling3D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("MaxPool3D", {"pool_size": (2, 1, 3), "strides": 1, "padding": "same", "data_format": "channels_first"}),
    ("AveragePooling3D", {"pool_size": 3, "strides": 3}),
    ("AveragePooling3D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AvgPool3D", {"pool_size": 2, "strides": 1, "padding": "same"}),
    ("GlobalMaxPooling3D", {}),
    ("GlobalMaxPool3D", {"keepdims": True, "data_format": "channels_first"}),
    ("GlobalAveragePooling3D", {}),
    ("GlobalAvgPool3D", {"keepdims": True}),
]


def fits(kwargs, size):
    """Whether Keras takes an input of ``size`` along every axis ("valid" windows must fit)."""
    if kwargs.get("padding", "valid") != "valid":
        return True
    window = kwargs.get("kernel_size", kwargs.get("pool_size", 2))
    return size >= (window if isinstance(window, int) else max(window))


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("sizes", [(1, 3, 5), (5, 7, 3), (3, 3, 3)])
def test_layer_output_matches_keras(rng, name, kwargs, sizes):
    if not fits(kwargs, min(sizes)):
        pytest.skip("Keras refuses this size too (tests/test_conv3d_layers.py checks gpu_dl's error)")
    if name.startswith("Av") and kwargs.get("padding") == "same" and min(sizes) < kwargs.get("pool_size", 2):
        pytest.skip("Keras's torch backend fails on a 'same' average pool larger than its input "
                    "(tests/test_pool3d.py checks gpu_dl's result against NumPy)")
    channels = 4
    shape = (2, channels) + sizes if kwargs.get("data_format") == "channels_first" else (2,) + sizes + (channels,)
    x = rng.standard_normal(shape).astype("float32")
    ours, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    y_ours = ours(x)
    theirs.build(x.shape)
    if ours.weights:
        assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
        theirs.set_weights(ours.get_weights())
    y_theirs = keras.ops.convert_to_numpy(theirs(x))
    assert y_ours.shape == y_theirs.shape
    numpy.testing.assert_allclose(y_ours, y_theirs, rtol=1e-5, atol=1e-5)
    symbolic = (None,) + shape[1:]
    assert tuple(ours.compute_output_shape(symbolic)) == tuple(theirs.compute_output_shape(symbolic))
    ours_config = {k: v for k, v in ours.get_config().items() if k not in ("name", "dtype")}
    theirs_config = {k: v for k, v in theirs.get_config().items() if k in ours_config}
    assert ours_config == theirs_config


def test_conv3d_training_steps_match_keras(rng):
    def stack(lib):
        return [lib.layers.Conv3D(4, 3, padding="same", activation="relu"),
                lib.layers.MaxPooling3D(2, padding="same"),
                lib.layers.Conv3D(6, (2, 3, 3), strides=(1, 2, 1), groups=2, activation="tanh"),
                lib.layers.AveragePooling3D(2, strides=1, padding="same"),
                lib.layers.GlobalAveragePooling3D(),
                lib.layers.Dense(3, activation="softmax")]
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((5, 7, 6, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((5, 7, 6, 2))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (5, 7, 6, 2), classes=3, batch=4)


def test_a_keras_3d_model_file_loads_and_predicts_the_same(tmp_path):
    L = keras.layers
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((5, 6, 7, 2)), L.ZeroPadding3D((1, 0, 1)),
                               L.Conv3D(4, 3, strides=(1, 2, 1), padding="same", activation="relu"),
                               L.MaxPool3D(2), L.Convolution3D(4, 2, padding="same", groups=2),
                               L.AvgPool3D((1, 2, 2), padding="same"),
                               L.Conv3D(3, 1, data_format="channels_last", use_bias=False),
                               L.GlobalMaxPooling3D(keepdims=True), L.Flatten(), L.Dense(2)])
    assert_keras_file_loads_both_ways(keras, theirs, lambda rng: rng.standard_normal((6, 5, 6, 7, 2)).astype("float32"), tmp_path, load_model)


def test_keras_loads_a_3d_cnn_gpu_dl_trained(tmp_path, rng):
    gpu_dl.backend.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((6, 5, 7, 1)), layers.Conv3D(4, 3, activation="relu"),
                               layers.MaxPooling3D((2, 1, 2), padding="same"),
                               layers.Conv3D(3, 2, padding="same", data_format="channels_last"),
                               layers.GlobalAveragePooling3D(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((8, 6, 5, 7, 1)).astype("float32"), rng.integers(0, 3, 8)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert int(theirs.optimizer.iterations) == model.optimizer.iterations == 2
    assert [type(l).__name__ for l in theirs.layers] == [type(l).__name__ for l in model.layers]
