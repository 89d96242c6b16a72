"""Conv2DTranspose and Conv1DTranspose: forward against a scatter-add written in NumPy, backward against
finite differences, output sizes, configs and files, bad arguments, and an autoencoder that learns the
digits; plus Keras's alias names of the convolution layers."""
import numpy
import pytest

import gpu_dl
from gpu_dl import data, layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from test_conv_layers import check_layer_gradients
from test_conv_ops import expected_conv


# ------------------------------------------------------------------ expectations
def keras_axis(size, window, stride, dilation, padding, output_padding):
    """(output length, offset of the output in the full scatter) along one axis, as Keras 3 writes them
    (keras/src/backend/common/backend_utils.py: the output shape and JAX's left padding)."""
    span = dilation * (window - 1) + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return (size - 1) * stride + span + extra, 0
    if output_padding is None:
        length, total = size * stride, stride + span - 2
    else:
        length, total = (size - 1) * stride + span % 2 + output_padding, span + span % 2 - 2 + output_padding
    left = min(total // 2 + total % 2, span - 1)
    return length, span - 1 - left


def expected_conv_transpose(x, kernel, strides, dilation, padding, output_padding=None):
    """Every input pixel times the kernel, scatter-added at stride ``strides`` into the full output
    ((H - 1) * sh + span_h, ...), which is then cut (or extended with zeros at the bottom/right) to
    Keras's output. x (N, H, W, C), kernel (KH, KW, F, C)."""
    n, h, w, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    extras = (None, None) if output_padding is None else output_padding
    full = numpy.zeros((n, (h - 1) * sh + dh * (kh - 1) + 1, (w - 1) * sw + dw * (kw - 1) + 1, filters))
    for r in range(kh):
        for q in range(kw):
            full[:, r * dh:r * dh + (h - 1) * sh + 1:sh, q * dw:q * dw + (w - 1) * sw + 1:sw] += \
                numpy.einsum("nhwc,fc->nhwf", x, kernel[r, q])
    (oh, top), (ow, left) = (keras_axis(*args, padding, e) for args, e in
                             zip(zip((h, w), (kh, kw), strides, dilation), extras))
    full = numpy.pad(full, ((0, 0), (0, max(0, top + oh - full.shape[1])), (0, max(0, left + ow - full.shape[2])),
                            (0, 0)))
    return full[:, top:top + oh, left:left + ow]


def seeded(**kwargs):
    """Seeded float64 weights: unseeded, a relu input within a finite-difference step of 0 fails now and then."""
    return dict(kernel_initializer=gpu_dl.initializers.GlorotUniform(seed=1),
                bias_initializer=gpu_dl.initializers.RandomNormal(seed=2), dtype="float64", **kwargs)


def test_expectation_is_the_adjoint_of_a_convolution(rng):
    """The scatter-add above is the transpose of the convolution: <conv(y), x> = <y, conv_transpose(x)>."""
    x, y = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((2, 9, 9, 5))
    kernel = rng.standard_normal((3, 2, 5, 3))
    forward = expected_conv(y, kernel, (2, 3), ((0, 0), (0, 0)), (1, 1))    # (2, 4, 3, 3)
    transposed = expected_conv_transpose(x, kernel, (2, 3), (1, 1), "valid")
    assert forward.shape == x.shape and transposed.shape == y.shape
    numpy.testing.assert_allclose((forward * x).sum(), (transposed * y).sum(), rtol=1e-12)


# ------------------------------------------------------------------ Conv2DTranspose
# (arguments, input shape): sizes 1, 3, 17; strides 1-3; dilation 1-2; both paddings; output_padding None and
# given; stride larger than the kernel; 1 and several channels. Small enough for the emulated GPU.
CASES_2D = [
    ({"filters": 3, "kernel_size": 3}, (2, 3, 5, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 3, 4, 3)),
    ({"filters": 4, "kernel_size": (2, 3), "strides": (3, 2), "padding": "same"}, (1, 3, 2, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1}, (2, 3, 3, 1)),
    ({"filters": 2, "kernel_size": (3, 4), "strides": (3, 2), "padding": "same", "output_padding": (2, 0)},
     (1, 3, 3, 2)),
    ({"filters": 3, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, (2, 3, 3, 2)),
    ({"filters": 2, "kernel_size": (2, 3), "dilation_rate": (2, 1), "output_padding": 0}, (1, 3, 1, 2)),
    ({"filters": 2, "kernel_size": 1, "strides": 3}, (2, 1, 3, 3)),
    ({"filters": 1, "kernel_size": 2, "strides": 3, "padding": "same", "output_padding": 1}, (1, 1, 3, 2)),
    ({"filters": 2, "kernel_size": 4, "padding": "same"}, (1, 1, 17, 1)),
]


@pytest.mark.parametrize("kwargs,shape", CASES_2D)
@pytest.mark.parametrize("activation", ["tanh", None])
def test_conv2d_transpose_forward_and_gradients(xp, rng, kwargs, shape, activation):
    layer = layers.Conv2DTranspose(**kwargs, **seeded(activation=activation))
    x_host = rng.standard_normal(shape)
    x = xp.asarray(x_host)
    y = layer(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == layer.kernel_size + (kwargs["filters"], shape[3]) and bias.shape == (kwargs["filters"],)
    z = expected_conv_transpose(x_host, kernel, layer.strides, layer.dilation_rate, layer.padding,
                                layer.output_padding) + bias
    want = numpy.tanh(z) if activation == "tanh" else z
    assert tuple(y.shape) == want.shape == layer.compute_output_shape(shape)
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10, atol=1e-12)
    check_layer_gradients(layer, x, rng)


def test_conv2d_transpose_larger_shapes_on_numpy(rng):
    """Sizes 17 on both axes, many channels and a kernel longer than the stride, on the NumPy path only
    (the CuPy bodies keep to small shapes for the emulated GPU)."""
    layer = layers.Conv2DTranspose(9, (5, 4), strides=(2, 3), padding="same", output_padding=(1, 2),
                                   **seeded(activation="relu"))
    x = rng.standard_normal((3, 17, 17, 12))
    y = layer(x)
    kernel, bias = layer.get_weights()
    want = numpy.maximum(expected_conv_transpose(x, kernel, (2, 3), (1, 1), "same", (1, 2)) + bias, 0)
    assert y.shape == want.shape == (3, 16 * 2 + 1 + 1, 16 * 3 + 0 + 2, 9)
    numpy.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)


def test_conv2d_transpose_channels_first_is_channels_last_transposed(xp, rng):
    first = layers.Conv2DTranspose(4, 3, strides=2, padding="same", data_format="channels_first", **seeded())
    last = layers.Conv2DTranspose(4, 3, strides=2, padding="same", **seeded())
    x = rng.standard_normal((2, 3, 3, 4))
    y_first = first(xp.asarray(x), training=True)
    y_last = last(xp.asarray(x.transpose(0, 2, 3, 1)))
    assert first.compute_output_shape((None, 3, 3, 4)) == (None, 4, 6, 8) and tuple(y_first.shape) == (2, 4, 6, 8)
    numpy.testing.assert_allclose(to_numpy(y_first), to_numpy(y_last).transpose(0, 3, 1, 2), rtol=1e-12)
    check_layer_gradients(first, xp.asarray(x), rng)


# ------------------------------------------------------------------ Conv1DTranspose
CASES_1D = [
    ({"filters": 3, "kernel_size": 3}, (2, 17, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 3, 3)),
    ({"filters": 2, "kernel_size": 4, "strides": 3, "padding": "same", "output_padding": 2}, (1, 3, 2)),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, (2, 1, 2)),
    ({"filters": 3, "kernel_size": 1, "strides": 2, "output_padding": 1}, (2, 3, 1)),
]


@pytest.mark.parametrize("kwargs,shape", CASES_1D)
def test_conv1d_transpose_forward_and_gradients(xp, rng, kwargs, shape):
    layer = layers.Conv1DTranspose(**kwargs, **seeded(activation="tanh"))
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (kwargs["kernel_size"], kwargs["filters"], shape[2])
    output_padding = None if layer.output_padding is None else (0,) + layer.output_padding
    want = numpy.tanh(expected_conv_transpose(x_host[:, None], kernel[None], (1,) + layer.strides,
                                              (1,) + layer.dilation_rate, layer.padding, output_padding)[:, 0] + bias)
    assert tuple(y.shape) == want.shape == layer.compute_output_shape(shape)
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10, atol=1e-12)
    check_layer_gradients(layer, xp.asarray(x_host), rng)


def test_conv1d_transpose_channels_first(xp, rng):
    first = layers.Conv1DTranspose(3, 2, strides=2, data_format="channels_first", **seeded())
    last = layers.Conv1DTranspose(3, 2, strides=2, **seeded())
    x = rng.standard_normal((2, 4, 5))
    y_first, y_last = first(xp.asarray(x)), last(xp.asarray(x.transpose(0, 2, 1)))
    assert tuple(y_first.shape) == first.compute_output_shape((2, 4, 5)) == (2, 3, 10)
    numpy.testing.assert_allclose(to_numpy(y_first), to_numpy(y_last).transpose(0, 2, 1), rtol=1e-12)
    check_layer_gradients(first, xp.asarray(x), rng)


# ------------------------------------------------------------------ sizes
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_output_sizes_follow_keras_formulas(padding):
    for size in (1, 2, 3, 7):
        for kernel in (1, 2, 3, 5):
            for stride in (1, 2, 3):
                for dilation in ((1, 2) if stride == 1 else (1,)):
                    for extra in [None] + list(range(stride)):
                        want, _ = keras_axis(size, kernel, stride, dilation, padding, extra)
                        layer = layers.Conv1DTranspose(1, kernel, stride, padding, extra, dilation_rate=dilation)
                        if want < 1:
                            with pytest.raises(ValueError, match="along the steps, an input of 1 gives an output of 0"):
                                layer.compute_output_shape((None, size, 1))
                        else:
                            assert layer.compute_output_shape((None, size, 1)) == (None, want, 1)


def test_unknown_sizes_stay_unknown_and_any_size_runs(xp, rng):
    model = gpu_dl.Sequential([layers.Input((None, None, 2)), layers.Conv2DTranspose(3, 3, strides=2, padding="same"),
                               layers.Conv2DTranspose(2, 2, strides=(1, 2))])
    assert model.output_shape == (None, None, None, 2)
    assert layers.Conv2DTranspose(3, 3, strides=2).compute_output_shape((None, None, 4, 1)) == (None, None, 9, 3)
    for size in [(2, 3), (5, 1)]:
        y = model.predict(rng.standard_normal((2,) + size + (2,)).astype("float32"), verbose=0)
        assert y.shape == (2, size[0] * 2 + 1, size[1] * 4, 2)


def test_summary_shows_the_upsampled_shapes(capsys):
    model = gpu_dl.Sequential([
        layers.Input((7, 5, 3)),
        layers.Conv2DTranspose(8, 3, strides=2, padding="same"),                 # 14 x 10
        layers.Conv2DTranspose(4, 3, strides=2),                                 # 29 x 21
        layers.Conv2DTranspose(2, (2, 3), strides=3, output_padding=(2, 1)),     # 88 x 64
        layers.Reshape((88 * 64 * 2,)),
        layers.Dense(1),
    ])
    model.summary()
    text = capsys.readouterr().out
    for shape in ["(None, 14, 10, 8)", "(None, 29, 21, 4)", "(None, 88, 64, 2)"]:
        assert shape in text, shape
    assert f"{3 * 3 * 8 * 3 + 8:,}" in text and f"{3 * 3 * 4 * 8 + 4:,}" in text and f"{2 * 3 * 2 * 4 + 2:,}" in text


# ------------------------------------------------------------------ bad arguments and inputs
@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv2DTranspose(0, 3, name="up"), "up.*filters"),
    (lambda: layers.Conv2DTranspose(4, 0, name="up"), "up.*kernel_size"),
    (lambda: layers.Conv2DTranspose(4, (3, 3, 3), name="up"), "up.*kernel_size"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=0, name="up"), "up.*strides"),
    (lambda: layers.Conv2DTranspose(4, 3, padding="full", name="up"), "up.*padding"),
    (lambda: layers.Conv1DTranspose(4, 3, padding="causal", name="up"), "up.*padding"),
    (lambda: layers.Conv2DTranspose(4, 3, dilation_rate=0, name="up"), "up.*dilation_rate"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, dilation_rate=2, name="up"), "up.*dilation_rate"),
    (lambda: layers.Conv2DTranspose(4, 3, output_padding=1, name="up"), r"up.*output_padding .*less than strides"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=(3, 2), output_padding=(1, 2), name="up"),
     r"up.*along the width it is 2 with a stride of 2"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=-1, name="up"), "up.*output_padding.*>= 0"),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=(1,), name="up"), "up.*output_padding"),
    (lambda: layers.Conv1DTranspose(4, 3, strides=2, output_padding=1.0, name="up"), "up.*output_padding"),
    (lambda: layers.Conv2DTranspose(4, 3, data_format="nhwc", name="up"), "up.*data_format"),
    (lambda: layers.Conv2DTranspose(4, 3, activation="nope", name="up"), "nope"),
])
def test_bad_arguments_are_clear_errors_naming_the_layer(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_inputs_name_the_layer(xp):
    up = layers.Conv2DTranspose(4, 3, name="up_a")
    with pytest.raises(ValueError, match=r"up_a.*rank 4"):
        up(xp.ones((2, 8, 8), dtype="float32"))
    assert not up.built
    up(xp.ones((2, 3, 3, 5), dtype="float32"))
    assert up.get_weights()[0].shape == (3, 3, 4, 5)
    with pytest.raises(ValueError, match=r"up_a.*5 input channels"):
        up(xp.ones((2, 3, 3, 4), dtype="float32"))


def test_an_empty_output_is_refused_when_the_model_is_built():
    """An even kernel with "same" and output_padding 0 turns one step into none (Keras gives a 0-sized output)."""
    model = gpu_dl.Sequential([layers.Input((1, 4, 2))])
    with pytest.raises(ValueError, match=r"'empty'.*along the height, an input of 1 gives an output of 0"):
        model.add(layers.Conv2DTranspose(3, 2, padding="same", output_padding=0, name="empty"))
    assert len(model.layers) == 0


# ------------------------------------------------------------------ configs, files, aliases
def test_configs_round_trip_and_files_load(tmp_path, rng):
    model = gpu_dl.Sequential([
        layers.Input((5, 4, 2)),
        layers.Conv2DTranspose(3, (3, 2), strides=(2, 3), padding="same", output_padding=(1, 0), activation="relu",
                               kernel_regularizer="l2", use_bias=False),
        layers.Conv2DTranspose(2, 2, dilation_rate=2, data_format="channels_first", name="cf"),   # (2, 11, 5)
        layers.Reshape((55, 2)),
        layers.Conv1DTranspose(2, 3, strides=2, output_padding=1, activation="tanh"),
    ])
    x = rng.standard_normal((2, 5, 4, 2)).astype("float32")
    expected = model.predict(x, verbose=0)
    config = model.layers[0].get_config()
    assert (config["output_padding"], config["strides"], config["padding"], config["use_bias"]) == ((1, 0), (2, 3),
                                                                                                    "same", False)
    assert model.layers[1].get_config()["output_padding"] is None
    copy = gpu_dl.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    numpy.testing.assert_array_equal(copy.predict(x, verbose=0), expected)
    model.save(tmp_path / "up.keras")
    loaded = load_model(tmp_path / "up.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == ["Conv2DTranspose", "Conv2DTranspose", "Reshape",
                                                                "Conv1DTranspose"]
    assert loaded.layers[0].output_padding == (1, 0) and loaded.layers[1].data_format == "channels_first"
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)


ALIASES = {"Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "Convolution1DTranspose": "Conv1DTranspose",
           "Convolution2DTranspose": "Conv2DTranspose", "SeparableConvolution1D": "SeparableConv1D",
           "SeparableConvolution2D": "SeparableConv2D"}


@pytest.mark.parametrize("alias,name", ALIASES.items())
def test_alias_names_are_the_classes_and_files_name_the_class(tmp_path, alias, name):
    cls = getattr(layers, alias)
    assert cls is getattr(layers, name) and alias in layers.__all__
    shape = (6, 3) if "1D" in name else (6, 5, 3)
    model = gpu_dl.Sequential([layers.Input(shape), cls(2, 3)])
    assert type(model.layers[0]).__name__ == name
    model.save(tmp_path / "a.keras")
    assert type(load_model(tmp_path / "a.keras").layers[0]) is cls
    config = model.get_config()
    assert config["layers"][1]["class_name"] == name
    config["layers"][1]["class_name"] = alias            # a config written with the alias loads too
    assert type(gpu_dl.Sequential.from_config(config).layers[0]) is cls


# ------------------------------------------------------------------ passes
def test_no_input_gradient_when_none_is_wanted(rng):
    layer = layers.Conv2DTranspose(2, 3, strides=2, **seeded())
    x = rng.standard_normal((2, 3, 3, 2))
    y = layer(x, training=True)
    layer.input_gradient_wanted = False
    assert layer.backward(numpy.ones_like(y)) is None and layer.kernel.grad is not None
    layer.input_gradient_wanted = True
    assert layer.backward(numpy.ones_like(y)).shape == x.shape


def test_autoencoder_learns_the_digits(xp):
    """Conv2D strides 2 down to 2 x 2, Conv2DTranspose strides 2 back up to 8 x 8: after four epochs on 512
    digits (kept short for the emulated GPU) the reconstruction error on the test digits is a fraction of the
    untrained network's and well under that of the mean image."""
    gpu_dl.backend.set_random_seed(0)
    (x_train, _), (x_test, _) = data.load_digits(image_shape=True)
    x_train = x_train[:512]
    model = gpu_dl.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),             # 4 x 4
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),             # 2 x 2
        layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),    # 4 x 4
        layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid"),  # 8 x 8
    ])
    assert model.output_shape == (None, 8, 8, 1)
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.01), loss="mse")
    before = model.evaluate(x_test, x_test, verbose=0)
    losses = model.fit(x_train, x_train, epochs=4, batch_size=32, verbose=0).history["loss"]
    after = model.evaluate(x_test, x_test, verbose=0)
    mean_image = float(((x_test - x_train.mean(axis=0)) ** 2).mean())
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert after < before / 4 and after < mean_image / 2, (before, after, mean_image)
