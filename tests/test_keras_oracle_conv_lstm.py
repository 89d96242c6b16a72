"""ConvLSTM1D, ConvLSTM2D and ConvLSTM3D against Keras 3 itself (where Keras is installed): same weights, same outputs
and states, the same training steps, .keras files both ways and the same summary."""
import os
import re

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def _numpy(a):
    return keras.ops.convert_to_numpy(a)


@pytest.mark.parametrize("name,shape,kwargs", [
    ("ConvLSTM2D", (2, 4, 5, 6, 3), {"kernel_size": 2, "padding": "same"}),
    ("ConvLSTM2D", (3, 5, 3, 5, 2), {"kernel_size": 3, "strides": 2, "return_sequences": True}),
    ("ConvLSTM2D", (2, 3, 5, 6, 2), {"kernel_size": (3, 2), "dilation_rate": 2, "padding": "same",
                                     "go_backwards": True, "return_sequences": True, "return_state": True}),
    ("ConvLSTM2D", (1, 2, 4, 4, 1), {"kernel_size": 3, "use_bias": False, "unit_forget_bias": False,
                                     "activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("ConvLSTM1D", (2, 4, 7, 3), {"kernel_size": 3, "padding": "same", "return_state": True}),
    ("ConvLSTM1D", (3, 2, 8, 2), {"kernel_size": 2, "strides": 2, "return_sequences": True}),
    ("ConvLSTM3D", (2, 3, 3, 4, 5, 2), {"kernel_size": 2, "padding": "same", "return_state": True}),
    ("ConvLSTM3D", (2, 2, 3, 5, 4, 1), {"kernel_size": (3, 2, 1), "strides": (1, 2, 2), "return_sequences": True,
                                        "go_backwards": True}),
    ("ConvLSTM3D", (1, 2, 5, 3, 4, 2), {"kernel_size": (2, 3, 2), "dilation_rate": (2, 1, 1), "padding": "same",
                                        "use_bias": False, "return_sequences": True, "return_state": True}),
    ("ConvLSTM3D", (2, 3, 2, 3, 4, 5), {"kernel_size": (1, 2, 3), "padding": "same", "strides": (1, 1, 2),
                                        "data_format": "channels_first", "return_sequences": True,
                                        "return_state": True}),
    ("ConvLSTM2D", (2, 3, 2, 5, 4), {"kernel_size": 2, "data_format": "channels_first", "return_state": True}),
    ("ConvLSTM1D", (2, 3, 2, 5), {"kernel_size": 2, "padding": "same", "data_format": "channels_first",
                                  "return_sequences": True}),
])
def test_outputs_and_states_match_keras(rng, name, shape, kwargs):
    x = rng.standard_normal(shape).astype("float32")
    ours, theirs = getattr(layers, name)(3, **kwargs), getattr(keras.layers, name)(3, **kwargs)
    ours.build(x.shape)
    theirs.build(x.shape)
    assert [tuple(w.shape) for w in theirs.get_weights()] == [w.shape for w in ours.get_weights()]
    if kwargs.get("use_bias", True):   # the initial bias (unit_forget_bias)
        numpy.testing.assert_array_equal(theirs.get_weights()[-1], ours.get_weights()[-1])
    ours.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    theirs.set_weights(ours.get_weights())
    got, want = ours(x), theirs(x)
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, _numpy(w), rtol=1e-5, atol=1e-6)
    out_shape = ours.compute_output_shape((None,) + shape[1:])
    keras_shape = theirs.compute_output_shape((None,) + shape[1:])
    assert (out_shape if isinstance(out_shape, list) else [out_shape]) == [
        tuple(s) for s in (keras_shape if isinstance(keras_shape, tuple) and isinstance(keras_shape[0], tuple)
                           else [keras_shape])]


@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_steps_from_a_given_initial_state_match_keras(rng, return_sequences):
    x = rng.standard_normal((3, 5, 3, 4, 2)).astype("float32")
    mask = numpy.array([[0, 1, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], bool)
    initial = [rng.standard_normal((3, 3, 4, 2)).astype("float32") for _ in range(2)]
    kwargs = {"padding": "same", "return_sequences": return_sequences, "return_state": True}
    ours, theirs = layers.ConvLSTM2D(2, 3, **kwargs), keras.layers.ConvLSTM2D(2, 3, **kwargs)
    got = ours(x, mask=mask, initial_state=initial)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    want = theirs(x, mask=mask, initial_state=initial)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, _numpy(w), rtol=1e-5, atol=1e-6)


def _stack(lib, return_sequences=False):
    return [lib.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=return_sequences),
            lib.layers.Flatten(), lib.layers.Dense(4, activation="softmax")]


def test_training_steps_match_keras(rng):
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((3, 4, 5, 2))] + _stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((3, 4, 5, 2))] + _stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (3, 4, 5, 2), classes=4, batch=6)


def test_conv_lstm1d_training_steps_match_keras(rng):
    def stack(lib):
        return [lib.layers.ConvLSTM1D(3, 2, strides=2, return_sequences=True, go_backwards=True),
                lib.layers.Flatten(), lib.layers.Dense(3, activation="softmax")]
    gpu_dl.backend.set_random_seed(5)
    ours = gpu_dl.Sequential([layers.Input((3, 7, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((3, 7, 2))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (3, 7, 2), classes=3, batch=5)


@pytest.mark.parametrize("data_format,shape", [("channels_last", (2, 3, 5, 4, 2)), ("channels_first", (2, 2, 3, 5, 4))])
def test_conv_lstm3d_training_steps_match_keras(rng, data_format, shape):
    def stack(lib):
        return [lib.layers.ConvLSTM3D(2, (2, 3, 2), padding="same", strides=(1, 2, 1), data_format=data_format,
                                      return_sequences=True),
                lib.layers.Flatten(), lib.layers.Dense(3, activation="softmax")]
    gpu_dl.backend.set_random_seed(7)
    ours = gpu_dl.Sequential([layers.Input(shape)] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input(shape)] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, shape, classes=3, batch=4)


def test_conv_lstm3d_keras_files_both_ways(rng, tmp_path):
    x = rng.standard_normal((2, 2, 3, 4, 5, 2)).astype("float32")
    theirs = keras.Sequential([keras.Input((2, 3, 4, 5, 2)),
                               keras.layers.ConvLSTM3D(2, 2, padding="same", return_sequences=True, go_backwards=True),
                               keras.layers.Flatten(), keras.layers.Dense(2)])
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "theirs.keras")
    ours = gpu_dl.models.load_model(tmp_path / "theirs.keras")
    assert isinstance(ours.layers[0], layers.ConvLSTM3D) and ours.layers[0].go_backwards
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # channels_first: (time, channels, depth, rows, cols)
    theirs = keras.Sequential([keras.Input((2, 2, 3, 4, 5)),
                               keras.layers.ConvLSTM3D(2, 2, data_format="channels_first"),
                               keras.layers.Flatten(), keras.layers.Dense(2)])
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "first.keras")
    ours = gpu_dl.models.load_model(tmp_path / "first.keras")
    assert ours.layers[0].data_format == "channels_first"
    x_first = numpy.ascontiguousarray(numpy.moveaxis(x, -1, 2))
    numpy.testing.assert_allclose(ours.predict(x_first, verbose=0), theirs.predict(x_first, verbose=0), rtol=1e-5,
                                  atol=1e-6)

    gpu_dl.backend.set_random_seed(4)
    ours = gpu_dl.Sequential([layers.Input((2, 3, 4, 5, 2)),
                              layers.ConvLSTM3D(3, (3, 1, 2), strides=(1, 1, 2), recurrent_dropout=0.5),
                              layers.Flatten(), layers.Dense(2)])
    ours.save(tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")
    assert back.layers[0].recurrent_dropout == 0.5 and tuple(back.layers[0].kernel_size) == (3, 1, 2)
    numpy.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.save_weights(tmp_path / "ours.weights.h5")
    back.load_weights(tmp_path / "ours.weights.h5")
    numpy.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_keras_files_both_ways(rng, tmp_path):
    x = rng.standard_normal((2, 3, 4, 5, 2)).astype("float32")
    theirs = keras.Sequential([keras.Input((3, 4, 5, 2))] + _stack(keras, return_sequences=True))
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "theirs.keras")
    ours = gpu_dl.models.load_model(tmp_path / "theirs.keras")
    assert isinstance(ours.layers[0], layers.ConvLSTM2D) and ours.layers[0].return_sequences
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    gpu_dl.backend.set_random_seed(2)
    ours = gpu_dl.Sequential([layers.Input((3, 7, 2)), layers.ConvLSTM1D(2, 3, padding="same", dropout=0.25),
                              layers.Flatten(), layers.Dense(2)])
    ours.save(tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")
    assert back.layers[0].dropout == 0.25 and back.layers[0].padding == "same"
    x = rng.standard_normal((2, 3, 7, 2)).astype("float32")
    numpy.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.save_weights(tmp_path / "ours.weights.h5")
    back.load_weights(tmp_path / "ours.weights.h5")   # the cell's group: layers/conv_lstm1d/cell/vars
    numpy.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_summary_matches_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")

    def model(lib):
        return lib.Sequential([lib.layers.Input((3, 5, 6, 2)), lib.layers.ConvLSTM2D(3, 2, padding="same"),
                               lib.layers.Flatten(), lib.layers.Dense(2)])

    def one_d(lib):
        return lib.Sequential([lib.layers.Input((4, 7, 2)), lib.layers.ConvLSTM1D(3, 2, strides=2,
                                                                                  return_sequences=True)])

    def rows(text):
        """(type, output shape, parameters) per row of the table, and the totals."""
        found = re.findall(r"│ \S+ \((\w+)\)\s*│ ([^│]*?)\s*│\s*([\d,]+) │", text)
        return found, re.findall(r"params: ([\d,]+)", text)

    def three_d(lib):
        return lib.Sequential([lib.layers.Input((3, 4, 5, 6, 2)), lib.layers.ConvLSTM3D(3, 2, padding="same",
                                                                                      return_sequences=True)])

    for make in (model, one_d, three_d):
        lines, captured = [], []
        make(gpu_dl).summary(print_fn=lines.append)
        make(keras).summary(print_fn=lambda line, **kwargs: captured.append(line))
        ours, theirs = rows("\n".join(lines)), rows("\n".join(captured))
        assert ours == theirs and ours[0]


def test_stateful_model_saved_by_keras_carries_its_states_as_keras_does(rng, tmp_path):
    theirs = keras.Sequential([keras.Input(batch_shape=(2, 2, 4, 5, 1)),
                               keras.layers.ConvLSTM2D(2, 3, padding="same", stateful=True),
                               keras.layers.Flatten(), keras.layers.Dense(2)])
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "stateful.keras")
    ours = gpu_dl.models.load_model(tmp_path / "stateful.keras")
    assert ours.layers[0].stateful
    batches = [rng.standard_normal((2, 2, 4, 5, 1)).astype("float32") for _ in range(3)]
    for x in batches:
        numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.layers[0].reset_state()
    theirs.layers[0].reset_state()
    numpy.testing.assert_allclose(ours.predict(batches[1], verbose=0), theirs.predict(batches[1], verbose=0),
                                  rtol=1e-5, atol=1e-6)
