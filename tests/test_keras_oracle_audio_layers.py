"""STFTSpectrogram, MelSpectrogram and the STFT initializer against Keras 3 itself (where Keras is installed):
outputs, initial weights, gradients, configs, training steps of a small model on spectrograms, and .keras and
.weights.h5 files both ways."""
import os
import re
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import initializers, layers  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

MODES = ["log", "magnitude", "psd", "real", "imag", "angle", "stft"]
SETTINGS = [  # frame_length, frame_step, fft_length, window, periodic, scaling, padding, time
    dict(frame_length=9, frame_step=4, fft_length=16, window="hamming", padding="valid", time=37),
    dict(frame_length=9, frame_step=4, fft_length=16, window="hann", periodic=True, padding="same", time=37),
    dict(frame_length=7, frame_step=None, fft_length=9, window=None, scaling=None, padding="same", time=30),
    dict(frame_length=8, frame_step=3, window="blackman", scaling="spectrum", padding="valid", time=33),
]


def _same_config(ours, theirs):
    """The configs agree, the dtype policy's name for Keras's serialized policy (the layers' names follow each
    library's own counter of the layers made before)."""
    mine, keras_config = ours.get_config(), theirs.get_config()
    assert mine.pop("dtype") == keras_config.pop("dtype")["config"]["name"]
    assert re.sub(r"_\d+$", "", mine.pop("name")) == re.sub(r"_\d+$", "", keras_config.pop("name"))
    assert mine == keras_config


def _pair(setting, **extra):
    setting = dict(setting)
    time = setting.pop("time")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # fft_length=9 is not a power of two
        return layers.STFTSpectrogram(**setting, **extra), keras.layers.STFTSpectrogram(**setting, **extra), time


@pytest.mark.parametrize("side", ["real", "imag"])
@pytest.mark.parametrize("window,scaling,periodic", [("hann", "density", False), ("hamming", "spectrum", True),
                                                     ("blackman", None, False), (None, "density", False)])
@pytest.mark.parametrize("shape", [(16, 1, 9), (7, 1, 5), (5, 1, 4)])
def test_stft_initializer_matches_keras(side, window, scaling, periodic, shape):
    ours = initializers.STFT(side, window, scaling, periodic)
    theirs = keras.initializers.STFT(side, window, scaling, periodic)
    numpy.testing.assert_allclose(ours(shape), keras.ops.convert_to_numpy(theirs(shape)), rtol=1e-6, atol=1e-6)
    numpy.testing.assert_allclose(ours(shape, dtype="float64"),
                                  keras.ops.convert_to_numpy(theirs(shape, dtype="float64")), rtol=1e-12, atol=1e-12)
    assert ours.get_config() == theirs.get_config()
    assert keras.initializers.deserialize(initializers.serialize(ours)).get_config() == theirs.get_config()
    assert initializers.deserialize(keras.initializers.serialize(theirs)).get_config() == ours.get_config()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("expand_dims", [False, True])
def test_stft_spectrogram_matches_keras(rng, mode, data_format, expand_dims):
    for setting in SETTINGS:
        ours, theirs, time = _pair(setting, mode=mode, data_format=data_format, expand_dims=expand_dims)
        shape = (2, time, 3) if data_format == "channels_last" else (2, 3, time)
        x = rng.standard_normal(shape).astype("float32")
        want = keras.ops.convert_to_numpy(theirs(x))
        got = ours(x)
        assert got.shape == want.shape
        for a, b in zip(ours.get_weights(), theirs.get_weights()):     # the initial kernels
            numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        theirs.set_weights(ours.get_weights())
        want = keras.ops.convert_to_numpy(theirs(x))
        tolerance = 1e-4 if mode in ("log", "angle") else 1e-5
        numpy.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
        for given in (shape, (None,) + shape[1:]):
            assert tuple(ours.compute_output_shape(given)) == tuple(theirs.compute_output_shape(given))
        assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
        _same_config(ours, theirs)


@pytest.mark.parametrize("mode", MODES)
def test_stft_spectrogram_gradients_match_keras(rng, mode):
    import torch
    for setting in SETTINGS[:3]:
        ours, theirs, time = _pair(setting, mode=mode, dtype="float64")
        x = rng.standard_normal((2, time, 2))
        y = ours(x, training=True)
        theirs(x)
        theirs.set_weights(ours.get_weights())
        w = rng.standard_normal(y.shape)
        if mode == "angle":
            w = w * (numpy.abs(numpy.sin(y)) > 1e-6)     # the angle of a bin with no imaginary part jumps
        dx = ours.backward(w)
        tx = torch.tensor(x, requires_grad=True)
        loss = (theirs(tx) * torch.tensor(w)).sum()
        loss.backward()
        # Keras 3.15 computes these modes in float32 even for float64 (its result type of float64 and a Python
        # float is float32); gpu_dl keeps float64
        tolerance = 1e-5 if mode in ("log", "magnitude", "angle") else 1e-7
        for got, want in [(dx, tx.grad.numpy())] + [(mine.grad, variable.value.grad.numpy())
                                                     for mine, variable in zip(ours.weights, theirs.weights)]:
            numpy.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * numpy.abs(want).max())


def _spectrogram_model(lib, mode="log", trainable=True):
    return [lib.layers.STFTSpectrogram(mode=mode, frame_length=15, frame_step=6, fft_length=16, padding="same",
                                       trainable=trainable),
            lib.layers.Conv1D(4, 3, activation="relu"), lib.layers.GlobalAveragePooling1D(),
            lib.layers.Dense(3, activation="softmax")]


@pytest.mark.parametrize("mode,optimizer", [("log", "Adam"), ("stft", "SGD"), ("magnitude", "RMSprop")])
def test_training_steps_on_spectrograms_match_keras(rng, mode, optimizer):
    gpu_dl.backend.set_random_seed(7)
    ours = gpu_dl.Sequential([layers.Input((48, 2))] + _spectrogram_model(gpu_dl, mode))
    theirs = keras.Sequential([keras.Input((48, 2))] + _spectrogram_model(keras, mode))
    assert_training_steps_match(keras, ours, theirs, rng, (48, 2), classes=3, batch=5, optimizer=optimizer)
    assert not numpy.allclose(ours.layers[0].get_weights()[0], initializers.STFT()((15, 1, 9)), atol=1e-6)


def test_frozen_spectrogram_trains_the_rest_as_keras(rng):
    gpu_dl.backend.set_random_seed(8)
    ours = gpu_dl.Sequential([layers.Input((40, 1))] + _spectrogram_model(gpu_dl, "psd", trainable=False))
    theirs = keras.Sequential([keras.Input((40, 1))] + _spectrogram_model(keras, "psd", trainable=False))
    kernels = [w.copy() for w in ours.layers[0].get_weights()]
    assert_training_steps_match(keras, ours, theirs, rng, (40, 1), classes=3, batch=4)
    for a, b in zip(kernels, ours.layers[0].get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_spectrogram_models_move_both_ways(tmp_path, rng):
    x, y = rng.standard_normal((8, 48, 2)).astype("float32"), rng.integers(0, 3, 8)
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((48, 2))] + _spectrogram_model(keras, "log"))
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.fit(x, y, epochs=1, batch_size=4, verbose=0)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours = load_model(tmp_path / "k.keras")
    assert type(ours.layers[0]) is layers.STFTSpectrogram
    _same_config(ours.layers[0], theirs.layers[0])
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    fresh = gpu_dl.Sequential([layers.Input((48, 2))] + _spectrogram_model(gpu_dl, "log"))
    fresh.load_weights(tmp_path / "k.weights.h5")
    for a, b in zip(fresh.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    # trained on here, read back by Keras
    ours.fit(x, y, epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    ours.save_weights(tmp_path / "g.weights.h5")
    again = keras.models.load_model(tmp_path / "g.keras")
    for a, b in zip(ours.get_weights(), again.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(again.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    other = keras.Sequential([keras.Input((48, 2))] + _spectrogram_model(keras, "log"))
    other.load_weights(tmp_path / "g.weights.h5")
    for a, b in zip(ours.get_weights(), other.get_weights()):
        numpy.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ MelSpectrogram
MEL = [
    dict(num_mel_bins=16, sampling_rate=8000, sequence_stride=100, fft_length=256),
    dict(num_mel_bins=10, sampling_rate=8000, sequence_stride=77, fft_length=255, sequence_length=200,
         window="hamming", power_to_db=False, mag_exp=1.0),
    dict(num_mel_bins=6, sampling_rate=16000, sequence_stride=32, fft_length=64, min_freq=300.0, max_freq=6000,
         top_db=30.0, ref_power=5.0, min_power=1e-6),
    dict(num_mel_bins=8, sampling_rate=4000, sequence_stride=50, fft_length=128, window=None),
]


@pytest.mark.parametrize("kwargs", MEL)
@pytest.mark.parametrize("shape", [(1999,), (2, 3001)])
def test_mel_spectrogram_matches_keras(rng, kwargs, shape):
    x = rng.standard_normal(shape).astype("float32")
    ours, theirs = layers.MelSpectrogram(**kwargs), keras.layers.MelSpectrogram(**kwargs)
    got, want = ours(x), keras.ops.convert_to_numpy(theirs(x))
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = numpy.abs(want).max()
    numpy.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)
    _same_config(ours, theirs)
    # Keras's compute_output_shape counts one frame more than its call gives where samples + 1 is a multiple of
    # the stride (1999 samples, stride 100); gpu_dl's is the call's
    assert tuple(ours.compute_output_shape(shape)) == want.shape
    keras_shape = tuple(theirs.compute_output_shape(shape))
    assert keras_shape == want.shape or ((shape[-1] + 1) % kwargs["sequence_stride"] == 0
                                         and keras_shape[-1] == want.shape[-1] + 1)


def test_mel_filterbank_matches_keras():
    from gpu_dl.layers.audio import linear_to_mel_weight_matrix
    theirs = keras.layers.MelSpectrogram()
    for args in [(20, 129, 8000, 125.0, 3800.0), (40, 257, 22050, 0.0, 11025), (7, 33, 16000, 300.0, 5000.0)]:
        numpy.testing.assert_allclose(linear_to_mel_weight_matrix(*args),
                                      keras.ops.convert_to_numpy(theirs.linear_to_mel_weight_matrix(*args)),
                                      rtol=1e-5, atol=1e-5)


def test_mel_spectrogram_gradients_match_keras(rng):
    import torch
    for kwargs in MEL[:3]:
        ours = layers.MelSpectrogram(dtype="float64", **kwargs)
        theirs = keras.layers.MelSpectrogram(dtype="float64", **kwargs)
        x = rng.standard_normal((2, 1001))
        y = ours(x, training=True)
        w = rng.standard_normal(y.shape)
        tx = torch.tensor(x, requires_grad=True)
        (theirs(tx) * torch.tensor(w)).sum().backward()
        want = tx.grad.numpy()
        # Keras 3.15 computes from the power (mag_exp) on in float32 even for float64 (its result type of float64
        # and a Python float is float32); gpu_dl keeps float64
        numpy.testing.assert_allclose(ours.backward(w), want, rtol=1e-5, atol=1e-5 * numpy.abs(want).max())


def test_mel_spectrogram_models_move_both_ways(tmp_path, rng):
    def stack(lib):
        return [lib.layers.MelSpectrogram(num_mel_bins=8, sampling_rate=8000, sequence_stride=64, fft_length=128),
                lib.layers.Flatten(), lib.layers.Dense(2, activation="softmax")]
    x, y = rng.standard_normal((6, 640)).astype("float32"), rng.integers(0, 2, 6)
    keras.utils.set_random_seed(1)
    theirs = keras.Sequential([keras.Input((640,))] + stack(keras))
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert type(ours.layers[0]) is layers.MelSpectrogram
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ours.fit(x, y, epochs=1, batch_size=3, verbose=0)
    ours.save(tmp_path / "g.keras")
    again = keras.models.load_model(tmp_path / "g.keras")
    _same_config(ours.layers[0], again.layers[0])
    numpy.testing.assert_allclose(again.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_functional_models_of_both_layers_move_both_ways(tmp_path, rng):
    def graph(lib):
        inputs = lib.Input((640,))
        mel = lib.layers.MelSpectrogram(num_mel_bins=6, sampling_rate=8000, sequence_stride=64, fft_length=128)(inputs)
        spectra = lib.layers.STFTSpectrogram(mode="psd", frame_length=5, frame_step=2, fft_length=8,
                                             expand_dims=True, data_format="channels_first")(mel)
        outputs = lib.layers.Dense(2)(lib.layers.Flatten()(spectra))
        return lib.Model(inputs, outputs)
    x = rng.standard_normal((3, 640)).astype("float32")
    gpu_dl.backend.set_random_seed(2)
    ours = graph(gpu_dl)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert [type(l).__name__ for l in theirs.layers] == [type(l).__name__ for l in ours.layers]
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    keras.utils.set_random_seed(3)
    graph(keras).save(tmp_path / "k.keras")
    again = keras.models.load_model(tmp_path / "k.keras")
    mine = load_model(tmp_path / "k.keras")
    for a, b in zip(mine.get_weights(), again.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(mine.predict(x, verbose=0), again.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_mixed_float16_matches_keras(rng):
    x = rng.standard_normal((2, 40, 2)).astype("float32")
    ours = layers.STFTSpectrogram(frame_length=8, mode="magnitude", dtype="mixed_float16")
    theirs = keras.layers.STFTSpectrogram(frame_length=8, mode="magnitude", dtype="mixed_float16")
    y = ours(x, training=True)
    theirs(x)
    theirs.set_weights(ours.get_weights())
    want = keras.ops.convert_to_numpy(theirs(x))
    assert y.dtype == want.dtype == numpy.float16 and [w.dtype for w in ours.weights] == [numpy.float32] * 2
    numpy.testing.assert_allclose(y.astype("float32"), want.astype("float32"), rtol=2e-3, atol=2e-3)
    ours.backward(numpy.ones_like(y))
    assert all(w.grad.dtype == numpy.float32 for w in ours.weights)
    mel = layers.MelSpectrogram(fft_length=64, sequence_stride=16, dtype="mixed_float16")(x[..., 0])
    keras_mel = keras.layers.MelSpectrogram(fft_length=64, sequence_stride=16, dtype="mixed_float16")(x[..., 0])
    assert mel.dtype == numpy.float16
    numpy.testing.assert_allclose(mel.astype("float32"), keras.ops.convert_to_numpy(keras_mel).astype("float32"),
                                  rtol=2e-3, atol=5e-2)


def test_windows_given_as_arrays_move_both_ways(tmp_path, rng):
    x = rng.standard_normal((2, 300)).astype("float32")

    def stack(lib):
        return [lib.layers.Reshape((300, 1)),
                lib.layers.STFTSpectrogram(frame_length=6, window=numpy.hanning(6), mode="real")]
    ours = gpu_dl.Sequential([layers.Input((300,))] + stack(gpu_dl))
    assert ours.layers[1].get_config()["window"] == numpy.hanning(6).tolist()
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    keras.Sequential([keras.Input((300,))] + stack(keras)).save(tmp_path / "k.keras")
    back = load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(back.layers[1].get_weights()[0], ours.layers[1].get_weights()[0], atol=1e-7)
    mel = gpu_dl.Sequential([layers.Input((300,)), layers.MelSpectrogram(
        fft_length=64, sequence_stride=16, sequence_length=40, window=numpy.hamming(40), power_to_db=False)])
    mel.save(tmp_path / "m.keras")
    keras_mel = keras.models.load_model(tmp_path / "m.keras")
    # 128 mel bands over 33 bins: narrow triangles whose float32 slopes round differently from torch's
    numpy.testing.assert_allclose(keras_mel.predict(x, verbose=0), mel.predict(x, verbose=0), rtol=1e-3, atol=1e-5)
