"""STFTSpectrogram, MelSpectrogram and the STFT initializer: outputs against plain NumPy (a DFT written out frame
by frame, the mel filterbank written out band by band), gradients against float64 finite differences, on both
backends, and what they refuse."""
import numpy
import pytest

import gpu_dl
from gpu_dl import initializers, layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient

MODES = ["log", "magnitude", "psd", "real", "imag", "angle", "stft"]


def _np_window(window, length, periodic):
    if window is None:
        return numpy.ones(length)
    if not isinstance(window, str):
        return numpy.asarray(window, dtype="float64")
    n = numpy.arange(length)
    span = length if periodic else length - 1
    a = {"hann": 0.5, "hamming": 0.54}[window]
    return a - (1 - a) * numpy.cos(2 * numpy.pi * n / span) if span else numpy.ones(length)


def _np_spectra(signals, frame_length, step, fft_length, window, periodic, scaling, padding):
    """(real, imag) of shape (signals, frames, bins): each frame times the scaled window, against Keras's DFT of
    2 * (bins - 1) points."""
    time = signals.shape[-1]
    if padding == "same":
        frames = -(-time // step)
        total = max((frames - 1) * step + frame_length - time, 0)
        signals = numpy.pad(signals, ((0, 0), (total // 2, total - total // 2)))
    else:
        frames = (time - frame_length) // step + 1
    win = _np_window(window, frame_length, periodic)
    scale = {"density": numpy.sqrt((win ** 2).sum()), "spectrum": numpy.abs(win).sum(), None: 1.0}[scaling]
    bins = fft_length // 2 + 1
    n = 2 * (bins - 1)
    dft = numpy.exp(-2j * numpy.pi * numpy.outer(numpy.arange(frame_length), numpy.arange(bins)) / n)
    windows = numpy.stack([signals[:, t * step:t * step + frame_length] for t in range(frames)], axis=1)
    z = (windows * win / scale) @ dft
    return z.real, z.imag


def _np_stft_layer(x, mode, frame_length, step, fft_length, window="hann", periodic=False, scaling="density",
                   padding="valid", expand_dims=False, data_format="channels_last"):
    xc = x.transpose(0, 2, 1) if data_format == "channels_last" else x
    b, c, t = xc.shape
    re, im = _np_spectra(xc.reshape(b * c, t).astype("float64"), frame_length, step, fft_length, window, periodic,
                         scaling, padding)
    power = re ** 2 + im ** 2
    eps = 1e-7
    z = {"real": re, "imag": im, "stft": numpy.concatenate([re, im], -1), "angle": numpy.arctan2(im, re),
         "magnitude": numpy.sqrt(numpy.maximum(power, eps)),
         "log": numpy.log(numpy.sqrt(numpy.maximum(power, eps))),
         "psd": power * numpy.r_[1.0, numpy.full(power.shape[-1] - 2, 2.0), 1.0]}[mode]
    z = z.reshape(b, c, z.shape[1], z.shape[2])         # (batch, channels, frames, bins)
    if data_format == "channels_last":
        return z.transpose(0, 2, 3, 1) if expand_dims else z.transpose(0, 2, 1, 3).reshape(b, z.shape[2], -1)
    return z if expand_dims else z.transpose(0, 1, 3, 2).reshape(b, -1, z.shape[2])


# ------------------------------------------------------------------ the initializer
@pytest.mark.parametrize("window,periodic,scaling", [("hann", False, "density"), ("hamming", True, "spectrum"),
                                                     (None, False, None), ([0.2, 1.0, 0.5, 0.1, 0.7], False,
                                                                           "density")])
@pytest.mark.parametrize("fft_length", [8, 9])
def test_stft_initializer_is_the_windowed_dft(window, periodic, scaling, fft_length):
    bins = fft_length // 2 + 1
    shape = (5, 1, bins)
    win = _np_window(window, 5, periodic)
    scale = {"density": numpy.sqrt((win ** 2).sum()), "spectrum": numpy.abs(win).sum(), None: 1.0}[scaling]
    angle = -2 * numpy.pi * numpy.outer(numpy.arange(5), numpy.arange(bins)) / (2 * (bins - 1))
    for side, part in (("real", numpy.cos), ("imag", numpy.sin)):
        values = initializers.STFT(side, window, scaling, periodic)(shape, dtype="float64")
        assert values.shape == shape and values.dtype == numpy.float64
        numpy.testing.assert_allclose(values[:, 0], part(angle) * win[:, None] / scale, atol=1e-12)
        assert initializers.STFT(side, window, scaling, periodic)(shape).dtype == numpy.float32


def test_stft_initializer_names_and_config():
    for name in ("stft", "STFT", "STFTInitializer", "stft_initializer"):
        assert isinstance(initializers.get(name), initializers.STFT)
    assert initializers.STFTInitializer is initializers.STFT is initializers.stft
    init = initializers.STFT("imag", "hamming", "spectrum", True)
    config = initializers.serialize(init)
    assert config == {"module": "keras.initializers", "class_name": "STFT", "registered_name": None,
                      "config": {"side": "imag", "window": "hamming", "periodic": True, "scaling": "spectrum"}}
    again = initializers.deserialize(config)
    numpy.testing.assert_array_equal(again((4, 1, 3)), init((4, 1, 3)))


def test_stft_initializer_refuses_bad_arguments():
    with pytest.raises(ValueError, match="side"):
        initializers.STFT("complex")
    with pytest.raises(ValueError, match="scaling"):
        initializers.STFT(scaling="l2")
    with pytest.raises(ValueError, match="window"):
        initializers.STFT(window="no_such_window")
    with pytest.raises(ValueError, match=r"frame_length\] = \[4\]"):
        initializers.STFT(window=[1.0, 2.0, 3.0])((4, 1, 3))
    with pytest.raises(ValueError, match="shape"):
        initializers.STFT()((4, 3))


# ------------------------------------------------------------------ STFTSpectrogram
CASES = [  # frame_length, frame_step, fft_length, padding, time
    (9, 4, 16, "valid", 37), (9, 4, 16, "same", 37), (7, 7, 8, "same", 20), (5, None, 9, "valid", 17),
    (1, 1, 2, "same", 3), (8, 3, None, "same", 33),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("expand_dims", [False, True])
@pytest.mark.filterwarnings("ignore:`fft_length` is recommended")
def test_stft_spectrogram_matches_numpy(xp, rng, mode, data_format, expand_dims):
    for frame_length, step, fft_length, padding, time in CASES:
        if mode == "psd" and (fft_length or frame_length) < 2:
            continue
        window = "hamming" if frame_length % 2 else "hann"
        shape = (2, time, 3) if data_format == "channels_last" else (2, 3, time)
        x = rng.standard_normal(shape)
        layer = layers.STFTSpectrogram(mode=mode, frame_length=frame_length, frame_step=step, fft_length=fft_length,
                                       window=window, padding=padding, expand_dims=expand_dims,
                                       data_format=data_format, dtype="float64")
        y = layer(xp.asarray(x))
        assert isinstance(y, xp.ndarray)
        expected = _np_stft_layer(x, mode, frame_length, step or frame_length // 2,
                                  fft_length or 2 ** int(numpy.ceil(numpy.log2(frame_length))), window,
                                  padding=padding, expand_dims=expand_dims, data_format=data_format)
        assert y.shape == expected.shape == layer.compute_output_shape(shape)
        numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("window,periodic,scaling", [(None, False, None), ("hann", True, "spectrum"),
                                                     ([0.5, 1.0, 2.0, 1.0, 0.25, 0.1], False, "density")])
def test_stft_spectrogram_windows_and_scalings(xp, rng, window, periodic, scaling):
    x = rng.standard_normal((3, 31, 1))
    layer = layers.STFTSpectrogram(mode="stft", frame_length=6, frame_step=5, fft_length=8, window=window,
                                   periodic=periodic, scaling=scaling, dtype="float64")
    expected = _np_stft_layer(x, "stft", 6, 5, 8, window, periodic, scaling)
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), expected, rtol=1e-10, atol=1e-10)


def test_stft_spectrogram_float32_and_weights(xp, rng):
    layer = layers.STFTSpectrogram(frame_length=12, frame_step=5)
    x = rng.standard_normal((2, 50, 2)).astype("float32")
    y = layer(xp.asarray(x))
    assert y.dtype == numpy.float32 and y.shape == (2, 8, 2 * 9)
    assert [w.name for w in layer.weights] == ["real_kernel", "imag_kernel"]
    assert [w.shape for w in layer.weights] == [(12, 1, 9)] * 2 and len(layer.trainable_weights) == 2
    coefficients = layers.STFTSpectrogram(mode="stft", frame_length=12, frame_step=5)
    got = to_numpy(coefficients(xp.asarray(x)))
    assert got.dtype == numpy.float32
    # the GPU's float32 convolution may round its inputs to TF32 (10-bit mantissas): a bound relative to the sum
    # of the products' magnitudes (the window is scaled to unit L2 norm, so each tap is at most 1)
    unit = 2.0 ** -23 if xp is numpy else 2.0 ** -10
    bound = 4 * unit * 12 * numpy.abs(x).max() + 1e-6
    assert numpy.abs(got - _np_stft_layer(x, "stft", 12, 5, 16)).max() <= bound
    assert [w.name for w in layers.STFTSpectrogram(mode="real", frame_length=4).weights] == []
    real = layers.STFTSpectrogram(mode="real", frame_length=4)
    real.build((None, 10, 1))
    imag = layers.STFTSpectrogram(mode="imag", frame_length=4)
    imag.build((None, 10, 1))
    assert [w.name for w in real.weights] == ["real_kernel"] and [w.name for w in imag.weights] == ["imag_kernel"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("data_format,expand_dims,padding", [("channels_last", False, "valid"),
                                                             ("channels_first", True, "same"),
                                                             ("channels_last", True, "same"),
                                                             ("channels_first", False, "valid")])
def test_stft_spectrogram_gradients(xp, rng, mode, data_format, expand_dims, padding):
    shape = (2, 19, 2) if data_format == "channels_last" else (2, 2, 19)
    layer = layers.STFTSpectrogram(mode=mode, frame_length=7, frame_step=3, fft_length=8, padding=padding,
                                   expand_dims=expand_dims, data_format=data_format, dtype="float64")
    x = xp.asarray(rng.standard_normal(shape))
    y = layer(x, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    if mode == "angle":
        # the first and last bins have no imaginary part: their angle jumps between 0 and pi
        w = w * (xp.abs(xp.sin(y)) > 1e-6)
    dx = layer.backward(w)
    grads = [v.grad for v in layer.weights]
    assert_gradient(lambda v: (layer(v) * w).sum(), x, dx, rng, rtol=1e-5, atol=1e-7)
    for variable, grad in zip(layer.weights, grads):
        kept = variable.value.copy()

        def loss(k, variable=variable):
            variable.assign(k)
            return (layer(x) * w).sum()
        assert_gradient(loss, kept.copy(), grad, rng, rtol=1e-5, atol=1e-7, what=variable.name)
        variable.assign(kept)


def test_stft_spectrogram_not_trainable_leaves_kernels(rng):
    layer = layers.STFTSpectrogram(mode="magnitude", frame_length=4, trainable=False, dtype="float64")
    x = rng.standard_normal((1, 12, 1))
    y = layer(x, training=True)
    dx = layer.backward(numpy.ones_like(y))
    assert dx.shape == x.shape and all(v.grad is None for v in layer.weights)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2


def test_stft_spectrogram_trains_in_a_model(rng):
    gpu_dl.backend.set_random_seed(3)
    model = gpu_dl.Sequential([layers.Input((64, 1)), layers.STFTSpectrogram(frame_length=16, frame_step=8),
                               layers.Flatten(), layers.Dense(2, activation="softmax")])
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(rng.standard_normal((8, 64, 1)).astype("float32"), rng.integers(0, 2, 8), epochs=1, verbose=0)
    assert all(not numpy.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_stft_spectrogram_config_round_trip():
    layer = layers.STFTSpectrogram(mode="psd", frame_length=10, frame_step=3, fft_length=16, window="hamming",
                                   periodic=True, scaling="spectrum", padding="same", expand_dims=True,
                                   data_format="channels_first", name="spec")
    config = layer.get_config()
    assert {k: config[k] for k in ("mode", "frame_length", "frame_step", "fft_length", "window", "periodic",
                                   "scaling", "padding", "expand_dims", "data_format")} == {
        "mode": "psd", "frame_length": 10, "frame_step": 3, "fft_length": 16, "window": "hamming",
        "periodic": True, "scaling": "spectrum", "padding": "same", "expand_dims": True,
        "data_format": "channels_first"}
    again = layers.STFTSpectrogram.from_config(config)
    assert again.get_config() == config
    defaults = layers.STFTSpectrogram().get_config()
    assert defaults["frame_step"] is None and defaults["fft_length"] is None and defaults["mode"] == "log"


def test_stft_spectrogram_refuses_bad_input():
    with pytest.raises(ValueError, match="frame_step"):
        layers.STFTSpectrogram(frame_length=8, frame_step=9)
    with pytest.raises(ValueError, match="frame_step"):
        layers.STFTSpectrogram(frame_length=8, frame_step=0)
    with pytest.raises(ValueError, match="fft_length"):
        layers.STFTSpectrogram(frame_length=8, fft_length=4)
    with pytest.warns(UserWarning, match="power of two"):
        layers.STFTSpectrogram(frame_length=8, fft_length=12)
    with pytest.raises(ValueError, match="mode"):
        layers.STFTSpectrogram(mode="power")
    with pytest.raises(ValueError, match="scaling"):
        layers.STFTSpectrogram(scaling="l1")
    with pytest.raises(ValueError, match="padding"):
        layers.STFTSpectrogram(padding="causal")
    with pytest.raises(ValueError, match="window"):
        layers.STFTSpectrogram(window="triangle-ish")
    with pytest.raises(ValueError, match="frame_length"):
        layers.STFTSpectrogram(frame_length=0)
    with pytest.raises(ValueError, match="rank 3"):
        layers.STFTSpectrogram(frame_length=4)(numpy.zeros((2, 16), "float32"))
    with pytest.raises(TypeError, match="STFTSpectrogram layer .*Expected float16, float32 or float64.*int32"):
        layers.STFTSpectrogram(frame_length=4)(numpy.zeros((2, 16, 1), "int32"))
    with pytest.raises(ValueError, match="shorter than one frame"):
        layers.STFTSpectrogram(frame_length=8)(numpy.zeros((2, 5, 1), "float32"))
    with pytest.raises(ValueError, match="frame_length"):
        layers.STFTSpectrogram(frame_length=4, window=[1.0, 2.0])(numpy.zeros((1, 8, 1), "float32"))


# ------------------------------------------------------------------ MelSpectrogram
def _np_mel_matrix(mels, bins, rate, low, high):
    """The HTK triangles written out band by band (float64)."""
    def mel(f):
        return 1127.0 * numpy.log(1.0 + f / 700.0)
    freqs = mel(numpy.linspace(0, rate / 2, bins))
    edges = numpy.linspace(mel(low), mel(high), mels + 2)
    matrix = numpy.zeros((bins, mels))
    for m in range(mels):
        lo, mid, hi = edges[m:m + 3]
        rising, falling = (freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)
        matrix[:, m] = numpy.maximum(0, numpy.minimum(rising, falling))
    matrix[0] = 0
    return matrix


def _np_mel(x, fft_length, stride, length, window, rate, mels, low, high, to_db, top_db, mag_exp, min_power,
            ref_power):
    pad = fft_length // 2
    padded = numpy.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    n = numpy.arange(length)
    win = {"hann": 0.5 - 0.5 * numpy.cos(2 * numpy.pi * n / length),
           "hamming": 0.54 - 0.46 * numpy.cos(2 * numpy.pi * n / length)}[window]
    left = (fft_length - length) // 2
    framed_window = numpy.zeros(fft_length)
    framed_window[left:left + length] = win
    frames = 1 + (padded.shape[-1] - fft_length) // stride
    spec = numpy.stack([numpy.abs(numpy.fft.rfft(padded[..., t * stride:t * stride + fft_length] * framed_window))
                        for t in range(frames)], axis=-2) ** mag_exp
    out = spec @ _np_mel_matrix(mels, fft_length // 2 + 1, rate, low, high)
    if to_db:
        out = 10 * numpy.log10(numpy.maximum(out, min_power)) - 10 * numpy.log10(max(abs(ref_power), min_power))
        out = numpy.maximum(out, out.max() - top_db)
    return numpy.swapaxes(out, -1, -2)


MEL_CASES = [
    dict(fft_length=64, sequence_stride=16, sampling_rate=8000, num_mel_bins=12),
    dict(fft_length=63, sequence_stride=17, sequence_length=40, window="hamming", sampling_rate=4000,
         num_mel_bins=7, min_freq=100.0, max_freq=1500, power_to_db=False, mag_exp=1.0),
    dict(fft_length=32, sequence_stride=8, sampling_rate=16000, num_mel_bins=5, top_db=20.0, ref_power=-3.0,
         mag_exp=1.5),
]


@pytest.mark.parametrize("kwargs", MEL_CASES)
@pytest.mark.parametrize("shape", [(301,), (2, 257)])
def test_mel_spectrogram_matches_numpy(xp, rng, kwargs, shape):
    x = rng.standard_normal(shape)
    layer = layers.MelSpectrogram(dtype="float64", **kwargs)
    y = layer(xp.asarray(x))
    full = {**dict(sequence_length=None, window="hann", min_freq=20.0, max_freq=None, power_to_db=True,
                   top_db=80.0, mag_exp=2.0, min_power=1e-10, ref_power=1.0), **kwargs}
    expected = _np_mel(x, full["fft_length"], full["sequence_stride"], full["sequence_length"] or full["fft_length"],
                       full["window"], full["sampling_rate"], full["num_mel_bins"], full["min_freq"],
                       full["max_freq"] or full["sampling_rate"] / 2, full["power_to_db"], full["top_db"],
                       full["mag_exp"], full["min_power"], full["ref_power"])
    assert y.shape == expected.shape == layer.compute_output_shape(shape)
    # the filterbank is float32, as Keras computes it
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=2e-5, atol=2e-4 if full["power_to_db"] else 1e-6)


def test_mel_spectrogram_float32_default(rng):
    layer = layers.MelSpectrogram(num_mel_bins=16, sampling_rate=8000, sequence_stride=256, fft_length=2048)
    y = layer(rng.standard_normal(16000).astype("float32"))
    assert y.shape == (16, 63) and y.dtype == numpy.float32
    assert y.max() - y.min() <= 80.0 + 1e-3      # clipped top_db below the peak


@pytest.mark.parametrize("kwargs", MEL_CASES)
def test_mel_spectrogram_gradients(xp, rng, kwargs):
    layer = layers.MelSpectrogram(dtype="float64", **kwargs)
    x = xp.asarray(rng.standard_normal((2, 97)))
    y = layer(x, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)
    assert_gradient(lambda v: (layer(v) * w).sum(), x, dx, rng, h=1e-6, rtol=1e-5, atol=1e-6)


def test_mel_spectrogram_clipped_values_send_their_gradient_to_the_peak(rng):
    layer = layers.MelSpectrogram(fft_length=16, sequence_stride=4, sampling_rate=8000, num_mel_bins=4,
                                  top_db=1.0, dtype="float64")
    x = rng.standard_normal(64)
    y = layer(x, training=True)
    clipped = y == y.min()
    assert clipped.sum() > 1        # most values sit at the threshold
    w = rng.standard_normal(y.shape)
    assert_gradient(lambda v: (layer(v) * w).sum(), x, layer.backward(w), rng, rtol=1e-5, atol=1e-6)


def test_mel_spectrogram_config_round_trip():
    layer = layers.MelSpectrogram(fft_length=512, sequence_stride=128, sequence_length=400, window="hamming",
                                  sampling_rate=22050, num_mel_bins=40, min_freq=50.0, max_freq=8000,
                                  power_to_db=False, top_db=60.0, mag_exp=1.0, min_power=1e-8, ref_power=2.0)
    config = layer.get_config()
    assert config["sequence_length"] == 400 and config["max_freq"] == 8000 and config["window"] == "hamming"
    assert layers.MelSpectrogram.from_config(config).get_config() == config
    defaults = layers.MelSpectrogram().get_config()
    assert defaults["sequence_length"] == 2048 and defaults["max_freq"] == 8000


def test_mel_spectrogram_refuses_bad_input():
    with pytest.raises(ValueError, match="sequence_length"):
        layers.MelSpectrogram(fft_length=256, sequence_length=300)
    with pytest.raises(ValueError, match="hann"):
        layers.MelSpectrogram(window="blackman")
    with pytest.raises(ValueError, match="window"):
        layers.MelSpectrogram(fft_length=8, window=[1.0, 2.0])
    with pytest.raises(ValueError, match="num_mel_bins"):
        layers.MelSpectrogram(num_mel_bins=0)
    with pytest.raises(ValueError, match="sampling_rate"):
        layers.MelSpectrogram(sampling_rate=-1)
    with pytest.raises(ValueError, match="samples"):
        layers.MelSpectrogram()(numpy.zeros((2, 3, 100), "float32"))
    with pytest.raises(ValueError, match="too short"):
        layers.MelSpectrogram(fft_length=64)(numpy.zeros((2, 20), "float32"))
