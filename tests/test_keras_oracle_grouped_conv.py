"""Grouped Conv2D / Conv1D, DepthwiseConv2D / 1D and SeparableConv2D / 1D against Keras 3 itself (where Keras is
installed): same weights give the same outputs and shapes, configs key for key both ways, a small network
takes the same training steps, and .keras files load both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

CASES = [
    ("Conv2D", {"filters": 6, "kernel_size": 3, "groups": 3, "padding": "same", "activation": "relu"}, (7, 9, 6)),
    ("Conv2D", {"filters": 4, "kernel_size": (2, 3), "groups": 2, "strides": 2}, (7, 9, 6)),
    ("Conv2D", {"filters": 6, "kernel_size": 3, "groups": 6, "dilation_rate": 2, "padding": "same"}, (8, 7, 6)),
    ("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2, "data_format": "channels_first"}, (4, 7, 9)),
    ("Conv1D", {"filters": 4, "kernel_size": 3, "groups": 2, "padding": "causal"}, (9, 6)),
    ("Conv1D", {"filters": 9, "kernel_size": 2, "groups": 3, "strides": 2, "padding": "same"}, (9, 6)),
    ("DepthwiseConv2D", {"kernel_size": 3}, (7, 9, 3)),
    ("DepthwiseConv2D", {"kernel_size": (3, 2), "depth_multiplier": 2, "strides": 2, "padding": "same",
                         "activation": "relu"}, (7, 9, 3)),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 3, "dilation_rate": 2, "padding": "same",
                         "use_bias": False}, (8, 7, 2)),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "data_format": "channels_first"}, (3, 7, 9)),
    ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (9, 3)),
    ("DepthwiseConv1D", {"kernel_size": 2, "strides": 2}, (9, 3)),
    ("SeparableConv2D", {"filters": 4, "kernel_size": 3}, (7, 9, 3)),
    ("SeparableConv2D", {"filters": 5, "kernel_size": (2, 3), "depth_multiplier": 2, "strides": 2, "padding": "same",
                         "activation": "tanh"}, (7, 9, 3)),
    ("SeparableConv2D", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same",
                         "data_format": "channels_first", "use_bias": False}, (3, 8, 7)),
    ("SeparableConv1D", {"filters": 4, "kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (9, 3)),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 2, "strides": 2}, (9, 3)),
]


def comparable(config):
    """A config without the name and dtype."""
    return {k: v for k, v in config.items() if k not in ("name", "dtype")}


@pytest.mark.parametrize("name,kwargs,sample", CASES)
def test_layer_output_and_config_match_keras(rng, name, kwargs, sample):
    x = rng.standard_normal((2,) + sample).astype("float32")
    ours, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    ours(x)
    theirs.build(x.shape)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert [v.name for v in ours.weights] == [v.name for v in theirs.weights]
    # random weights of both signs (the zero bias and glorot kernels would hide a mixed-up bias or channel)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    y_ours, y_theirs = ours(x), keras.ops.convert_to_numpy(theirs(x))
    assert y_ours.shape == y_theirs.shape
    numpy.testing.assert_allclose(y_ours, y_theirs, rtol=1e-4, atol=1e-4)
    assert tuple(ours.compute_output_shape((None,) + sample)) == tuple(theirs.compute_output_shape((None,) + sample))
    assert comparable(ours.get_config()) == comparable(theirs.get_config())
    again = getattr(keras.layers, name).from_config({k: v for k, v in ours.get_config().items() if k != "dtype"})
    assert comparable(again.get_config()) == comparable(theirs.get_config())
    ours_again = getattr(layers, name).from_config({k: v for k, v in theirs.get_config().items() if k != "dtype"})
    assert comparable(ours_again.get_config()) == comparable(ours.get_config())


def test_initialiser_fans_follow_the_grouped_kernel_shape():
    """glorot_uniform over (kh, kw, cin / groups, filters): fans kh*kw*cin/groups and kh*kw*filters, as Keras."""
    ours = layers.Conv2D(64, 3, groups=4)
    ours.build((None, 8, 8, 32))
    limit = numpy.sqrt(6 / (3 * 3 * 8 + 3 * 3 * 64))
    kernel = ours.get_weights()[0]
    assert kernel.shape == (3, 3, 8, 64)
    assert numpy.abs(kernel).max() <= limit and numpy.abs(kernel).max() > 0.95 * limit


def stack(lib):
    return [lib.layers.Conv2D(6, 3, groups=2, padding="same", activation="relu"),
            lib.layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same", activation="tanh"),
            lib.layers.SeparableConv2D(4, 3, depth_multiplier=2, activation="relu"),
            lib.layers.Reshape((4, 4)),
            lib.layers.Conv1D(4, 2, groups=2, padding="causal"),
            lib.layers.DepthwiseConv1D(2, depth_multiplier=2),
            lib.layers.SeparableConv1D(5, 2, padding="same"),
            lib.layers.Flatten(),
            lib.layers.Dense(3, activation="softmax")]


def test_training_steps_match_keras(rng):
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((8, 8, 4))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((8, 8, 4))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (8, 8, 4), classes=3, batch=5)


def test_keras_files_load_both_ways(tmp_path, rng):
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((8, 8, 4))] + stack(keras))
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "k.keras")
    x = rng.standard_normal((5, 8, 8, 4)).astype("float32")
    ours = load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    gpu_dl.backend.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((8, 8, 4))] + stack(gpu_dl))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, rng.integers(0, 3, 5), epochs=2, batch_size=5, verbose=0)
    model.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.layers[0].groups == 2 and loaded.layers[1].depth_multiplier == 2
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert int(loaded.optimizer.iterations) == model.optimizer.iterations == 2
