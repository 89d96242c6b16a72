"""Conv2DTranspose and Conv1DTranspose against Keras 3 itself (where Keras is installed): output shapes over
many sizes, strides, paddings, output paddings and dilations; outputs, weight shapes and configs from the same
weights; training steps; .keras files both ways; and Keras's alias names of the convolution layers."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_keras_file_loads_both_ways, assert_training_steps_match  # noqa: E402


def keras_length(layer, size):
    return layer.compute_output_shape((None, size, 1))[1]


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_output_shapes_match_keras(padding):
    """Every combination of a few sizes, kernels, strides, dilations and output paddings: the same output
    length as Keras, or a clear error where Keras's would be empty."""
    compared = refused = 0
    for kernel in (1, 2, 3, 4):
        for stride in (1, 2, 3):
            for dilation in ((1, 2) if stride == 1 else (1,)):   # Keras refuses strides > 1 with dilation > 1
                for extra in [None] + list(range(stride)):
                    args = dict(filters=1, kernel_size=kernel, strides=stride, padding=padding, output_padding=extra,
                                dilation_rate=dilation)
                    ours, theirs = layers.Conv1DTranspose(**args), keras.layers.Conv1DTranspose(**args)
                    assert ours.compute_output_shape((None, None, 1)) == (None, None, 1)
                    for size in (1, 2, 3, 7, 17):
                        want = keras_length(theirs, size)
                        if want < 1:
                            with pytest.raises(ValueError, match="an input of 1 gives an output of 0"):
                                ours.compute_output_shape((None, size, 1))
                            refused += 1
                        else:
                            assert ours.compute_output_shape((None, size, 1)) == (None, want, 1), (args, size)
                            compared += 1
    assert compared > 150 and (refused > 0) == (padding == "same")


CASES = [
    ("Conv2DTranspose", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": (2, 5), "strides": (3, 1), "padding": "same"}),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": (3, 4), "strides": (3, 2), "padding": "same",
                         "output_padding": (2, 1)}),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1, "use_bias": False}),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 2, "strides": 3}),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "activation": "tanh"}),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": (3, 2), "dilation_rate": (1, 2), "output_padding": 0}),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same",
                         "data_format": "channels_first"}),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 3, "activation": "relu"}),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 4, "strides": 3, "padding": "same", "output_padding": 2}),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 3, "dilation_rate": 2}),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 2, "strides": 2, "data_format": "channels_first"}),
]


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("size", [1, 3, 17])
def test_layer_output_matches_keras(rng, name, kwargs, size):
    sample = (size, 5, 3) if name == "Conv2DTranspose" else (size, 3)
    if kwargs.get("data_format") == "channels_first":
        sample = sample[-1:] + sample[:-1]
    x = rng.standard_normal((2,) + sample).astype("float32")
    ours, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    y_ours = ours(x)
    theirs.build(x.shape)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    y_theirs = keras.ops.convert_to_numpy(theirs(x))
    assert y_ours.shape == y_theirs.shape
    numpy.testing.assert_allclose(y_ours, y_theirs, rtol=1e-5, atol=1e-5)
    symbolic = (None,) + sample
    assert tuple(ours.compute_output_shape(symbolic)) == tuple(theirs.compute_output_shape(symbolic))
    ours_config = {k: v for k, v in ours.get_config().items() if k not in ("name", "dtype")}
    theirs_config = {k: v for k, v in theirs.get_config().items() if k in ours_config}
    assert ours_config == theirs_config


def test_kernel_initialiser_fans_match_keras():
    """glorot_uniform over (kh, kw, filters, in) uses fans kh*kw*filters and kh*kw*in, as Keras does."""
    ours = layers.Conv2DTranspose(64, (5, 3))
    ours.build((None, 8, 8, 16))
    limit = numpy.sqrt(6 / (5 * 3 * 64 + 5 * 3 * 16))
    kernel = ours.get_weights()[0]
    assert kernel.shape == (5, 3, 64, 16)
    assert numpy.abs(kernel).max() <= limit and numpy.abs(kernel).max() > 0.95 * limit


def test_conv2d_transpose_training_steps_match_keras(rng):
    def stack(lib):
        return [lib.layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
                lib.layers.Conv2D(3, 3, strides=2),
                lib.layers.Conv2DTranspose(3, 2, strides=3, output_padding=1, activation="tanh"),
                lib.layers.Conv2DTranspose(2, 3, dilation_rate=2, padding="same", data_format="channels_first"),
                lib.layers.Flatten(),
                lib.layers.Dense(5, activation="softmax")]
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((5, 4, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((5, 4, 2))] + stack(keras))
    assert ours.output_shape == tuple(theirs.output_shape)
    assert_training_steps_match(keras, ours, theirs, rng, (5, 4, 2), classes=5, batch=6)


def test_conv1d_transpose_training_steps_match_keras(rng):
    def stack(lib):
        return [lib.layers.Conv1DTranspose(4, 3, strides=2, output_padding=1, activation="relu"),
                lib.layers.Conv1DTranspose(3, 3, dilation_rate=2, padding="same", use_bias=False),
                lib.layers.Conv1DTranspose(3, 4, strides=3, padding="same", activation="tanh"),
                lib.layers.GlobalMaxPooling1D(),
                lib.layers.Dense(5, activation="softmax")]
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((7, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((7, 2))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (7, 2), classes=5, batch=6)



def test_per_pixel_softmax_output_trains_as_in_keras(rng):
    """A segmentation-style head: the last Conv2DTranspose's softmax over each pixel's classes, fused into the
    loss (its backward skips the activation), with a label per pixel. Keras 3.15's torch backend fails to
    train a softmax on a transposed convolution's output ("grad_input must be contiguous"), so Keras's model
    ends in the logits and takes the loss from_logits: the same function of the weights."""
    def stack(lib, activation):
        return [lib.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                lib.layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1, activation=activation)]
    gpu_dl.backend.set_random_seed(5)
    ours = gpu_dl.Sequential([layers.Input((5, 6, 2))] + stack(gpu_dl, "softmax"))
    theirs = keras.Sequential([keras.Input((5, 6, 2))] + stack(keras, None))
    assert ours.output_shape == tuple(theirs.output_shape) == (None, 6, 6, 3)
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=keras.optimizers.Adam(),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for step in range(4):
        x, y = rng.standard_normal((4, 5, 6, 2)).astype("float32"), rng.integers(0, 3, (4, 6, 6))
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=2e-5), step
    assert ours.layers[-1].keep_preactivation
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)

# ------------------------------------------------------------------------ .keras files
def keras_models():
    L = keras.layers
    return {
        "2d": (keras.Sequential([keras.Input((5, 6, 2)),
                                 L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                                 L.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=(1, 0),
                                                   activation="relu"),
                                 L.Convolution2DTranspose(3, (2, 3), strides=(1, 2), use_bias=False),
                                 L.Conv2DTranspose(2, 3, dilation_rate=2, data_format="channels_first"),
                                 L.Flatten(), L.Dense(2)]), (5, 6, 2)),
        "1d": (keras.Sequential([keras.Input((9, 3)), L.Convolution1D(4, 3, strides=2),
                                 L.Conv1DTranspose(4, 3, strides=2, output_padding=1, activation="tanh"),
                                 L.Convolution1DTranspose(2, 2, strides=3, padding="same"),
                                 L.SeparableConvolution1D(3, 3), L.GlobalAveragePooling1D(), L.Dense(2)]), (9, 3)),
    }


@pytest.mark.parametrize("name", ["2d", "1d"])
def test_files_written_by_keras_load_and_predict_the_same(name, tmp_path):
    keras.utils.set_random_seed(0)
    theirs, shape = keras_models()[name]
    assert_keras_file_loads_both_ways(keras, theirs, lambda rng: rng.standard_normal((9,) + shape).astype("float32"), tmp_path, load_model)


def test_keras_loads_a_model_gpu_dl_trained(tmp_path, rng):
    gpu_dl.backend.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((6, 6, 1)),
                               layers.Convolution2D(4, 3, strides=2, padding="same", activation="relu"),
                               layers.Convolution2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
                               layers.Conv2DTranspose(3, 2, strides=2, output_padding=1),
                               layers.SeparableConvolution2D(3, 3, strides=2),
                               layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((12, 6, 6, 1)).astype("float32"), rng.integers(0, 3, 12)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert [type(l).__name__ for l in theirs.layers] == ["Conv2D", "Conv2DTranspose", "Conv2DTranspose",
                                                        "SeparableConv2D", "GlobalAveragePooling2D", "Dense"]


def test_alias_names_are_keras_aliases():
    """Every alias Keras exports for a convolution class gpu_dl has, under the same name, for the same class."""
    aliases = {n: getattr(keras.layers, n).__name__ for n in dir(keras.layers)
               if isinstance(getattr(keras.layers, n), type) and getattr(keras.layers, n).__name__ != n
               and "Conv" in getattr(keras.layers, n).__name__}
    ours = {n: c for n, c in aliases.items() if hasattr(layers, c)}
    assert set(ours) == {"Convolution1D", "Convolution2D", "Convolution3D", "Convolution1DTranspose",
                         "Convolution2DTranspose", "Convolution3DTranspose", "SeparableConvolution1D",
                         "SeparableConvolution2D"}
    for alias, name in ours.items():
        assert getattr(layers, alias) is getattr(layers, name)
