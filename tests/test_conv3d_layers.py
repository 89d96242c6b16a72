"""Conv3D on (batch, depth, height, width, channels) volumes: forward against NumPy written as a sum over
kernel taps, backward against finite differences, shapes, configs, summary and bad input."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from test_conv_layers import check_layer_gradients


# ------------------------------------------------------------------ expectations
def pads_of(padding, size, window, stride, dilation=1):
    """(before, after) of Keras's "valid" and "same" (ceil(size / stride) outputs, the odd pad after)."""
    if padding == "valid":
        return 0, 0
    total = max((-(-size // stride) - 1) * stride + dilation * (window - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def expected_conv3d(x, kernel, strides, pads, dilation, groups=1):
    """y[n, o, f] = sum over taps (a, b, q) and the channels c of f's group of
    x_padded[n, o * stride + (a, b, q) * dilation, c] * kernel[a, b, q, c, f]."""
    padded = numpy.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
    kd, kh, kw, cig, cout = kernel.shape
    cog = cout // groups
    out = [(padded.shape[i + 1] - dilation[i] * (k - 1) - 1) // strides[i] + 1 for i, k in enumerate((kd, kh, kw))]
    y = numpy.zeros((x.shape[0],) + tuple(out) + (cout,))
    for a in range(kd):
        for b in range(kh):
            for q in range(kw):
                patch = padded[(slice(None),) + tuple(slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in
                                                      zip((a, b, q), dilation, strides, out))]
                for g in range(groups):
                    y[..., g * cog:(g + 1) * cog] += (patch[..., g * cig:(g + 1) * cig]
                                                      @ kernel[a, b, q, :, g * cog:(g + 1) * cog])
    return y


def seeded(**kwargs):
    """Seeded float64 weights (a relu input within a finite-difference step of 0 would fail now and then)."""
    return dict(kernel_initializer=gpu_dl.initializers.GlorotUniform(seed=1),
                bias_initializer=gpu_dl.initializers.RandomNormal(seed=2), dtype="float64", **kwargs)


def triple(v):
    return (v,) * 3 if isinstance(v, int) else tuple(v)


# (Conv3D arguments, input shape): sizes 1, 3, 5, 7; strides 1-3; dilation 1-2; both paddings; groups; kernels
# larger than the input where "same" pads them
CONV_CASES = [
    ({"filters": 3, "kernel_size": 3}, (2, 5, 5, 5, 2)),
    ({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (1, 7, 5, 3, 3)),
    ({"filters": 2, "kernel_size": (3, 1, 2), "strides": (3, 1, 2), "padding": "same"}, (2, 5, 3, 7, 1)),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, (1, 5, 3, 5, 2)),
    ({"filters": 4, "kernel_size": (2, 3, 3), "dilation_rate": (2, 1, 2)}, (1, 7, 5, 7, 2)),
    ({"filters": 4, "kernel_size": 3, "strides": (1, 2, 3), "padding": "same", "groups": 2}, (2, 3, 5, 7, 4)),
    ({"filters": 6, "kernel_size": (1, 3, 3), "groups": 3}, (1, 1, 3, 3, 3)),
    ({"filters": 2, "kernel_size": 5, "padding": "same"}, (1, 1, 3, 1, 2)),
    ({"filters": 2, "kernel_size": 1, "strides": 3}, (1, 1, 1, 1, 3)),
    ({"filters": 3, "kernel_size": (3, 2, 1), "strides": (2, 3, 1)}, (2, 7, 5, 1, 2)),
]


@pytest.mark.parametrize("kwargs,shape", CONV_CASES)
@pytest.mark.parametrize("activation", ["tanh", None])
def test_conv3d_forward_and_gradients(xp, rng, kwargs, shape, activation):
    layer = layers.Conv3D(**kwargs, **seeded(activation=activation))
    x_host = rng.standard_normal(shape)
    x = xp.asarray(x_host)
    y = layer(x)
    kernel, bias = layer.get_weights()
    groups = kwargs.get("groups", 1)
    assert kernel.shape == triple(kwargs["kernel_size"]) + (shape[-1] // groups, kwargs["filters"])
    strides, dilation = triple(kwargs.get("strides", 1)), triple(kwargs.get("dilation_rate", 1))
    pads = [pads_of(kwargs.get("padding", "valid"), n, k, s, d)
            for n, k, s, d in zip(shape[1:4], kernel.shape[:3], strides, dilation)]
    z = expected_conv3d(x_host, kernel, strides, pads, dilation, groups) + bias
    numpy.testing.assert_allclose(to_numpy(y), numpy.tanh(z) if activation else z, rtol=1e-10, atol=1e-10)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    assert type(y) is type(x)
    check_layer_gradients(layer, x, rng)


def test_conv3d_relu_channels_first_and_no_bias(xp, rng):
    first = layers.Conv3D(4, 3, strides=2, padding="same", data_format="channels_first", use_bias=False,
                          **seeded(activation="relu"))
    x = rng.standard_normal((2, 3, 5, 3, 7))
    y = to_numpy(first(xp.asarray(x)))
    (kernel,) = first.get_weights()
    x_last = x.transpose(0, 2, 3, 4, 1)
    want = numpy.maximum(expected_conv3d(x_last, kernel, (2, 2, 2), [(1, 1), (1, 1), (1, 1)], (1, 1, 1)), 0)
    numpy.testing.assert_allclose(y, want.transpose(0, 4, 1, 2, 3), rtol=1e-10, atol=1e-10)
    assert first.compute_output_shape((None, 3, 5, 3, 7)) == (None, 4, 3, 2, 4) == (None,) + y.shape[1:]
    check_layer_gradients(first, xp.asarray(x), rng)


def test_float32_matches_float64(xp, rng):
    layer32 = layers.Conv3D(5, 3, strides=(2, 1, 1), padding="same")
    x = rng.standard_normal((2, 5, 7, 3, 4)).astype("float32")
    y = to_numpy(layer32(xp.asarray(x)))
    kernel, bias = layer32.get_weights()
    pads = [(1, 1), (1, 1), (1, 1)]
    want = expected_conv3d(x.astype("float64"), kernel.astype("float64"), (2, 1, 1), pads, (1, 1, 1)) + bias
    assert y.dtype == numpy.float32
    # the GPU's float32 convolution may round its inputs to TF32 (10-bit mantissas): an error bound relative to
    # the sum of the products' magnitudes, as tests/test_conv2d_kernel.py takes it
    unit = 2.0 ** -23 if xp is numpy else 2.0 ** -10
    magnitude = expected_conv3d(numpy.abs(x).astype("float64"), numpy.abs(kernel).astype("float64"), (2, 1, 1),
                                pads, (1, 1, 1)) + numpy.abs(bias)
    assert (numpy.abs(y - want) <= 4 * unit * magnitude + 1e-7).all()


def test_output_shapes_with_unknown_sizes():
    assert layers.Conv3D(4, 3).compute_output_shape((None, None, None, None, 2)) == (None, None, None, None, 4)
    assert layers.Conv3D(4, 3, strides=2, padding="same").compute_output_shape((5, 7, None, 3, 2)) == (5, 4, None, 2, 4)
    assert layers.Conv3D(4, 5, strides=3).compute_output_shape((None, 33, 7, 5, 2)) == (None, 10, 1, 1, 4)
    assert layers.Conv3D(4, 3, data_format="channels_first").compute_output_shape((None, 2, 9, 5, 3)) == \
        (None, 4, 7, 3, 1)


# ------------------------------------------------------------- models, errors, configs
def test_summary_shows_the_volume_shapes(capsys):
    model = gpu_dl.Sequential([
        layers.Input((9, 11, 7, 2)),
        layers.Conv3D(8, 3, activation="relu"),                       # (7, 9, 5)
        layers.MaxPooling3D(),                                         # (3, 4, 2)
        layers.Conv3D(6, 3, strides=2, padding="same", groups=2),      # (2, 2, 1)
        layers.AveragePooling3D(2, strides=1, padding="same"),         # (2, 2, 1)
        layers.GlobalMaxPooling3D(),
        layers.Dense(2),
    ])
    model.summary()
    text = capsys.readouterr().out
    for shape in ["(None, 7, 9, 5, 8)", "(None, 3, 4, 2, 8)", "(None, 2, 2, 1, 6)", "(None, 6)", "(None, 2)"]:
        assert shape in text, shape
    assert f"{27 * 2 * 8 + 8:,}" in text and f"{27 * 4 * 6 + 6:,}" in text


def test_kernel_larger_than_padded_input_quotes_the_formula():
    model = gpu_dl.Sequential([layers.Input((9, 9, 9, 2)), layers.MaxPooling3D(2)])
    with pytest.raises(ValueError) as caught:
        model.add(layers.Conv3D(8, (3, 5, 3), strides=2, name="too_big"))
    message = str(caught.value)
    assert "too_big" in message and "height window 5" in message and "(4 - 5 + 0) // 2 + 1 = 0" in message
    assert len(model.layers) == 1
    with pytest.raises(ValueError, match=r"depth window 3 dilated by 2 \(spans 5\).*\(4 \+ 0 \+ 0 = 4\)"):
        layers.Conv3D(1, 3, dilation_rate=2).compute_output_shape((None, 4, 9, 9, 1))
    assert layers.Conv3D(1, 5, padding="same").compute_output_shape((None, 2, 1, 3, 1)) == (None, 2, 1, 3, 1)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv3D(0, 3), "filters"),
    (lambda: layers.Conv3D(-2, 3), "filters"),
    (lambda: layers.Conv3D(4, 0), "kernel_size"),
    (lambda: layers.Conv3D(4, (3, 3)), "kernel_size"),
    (lambda: layers.Conv3D(4, (3, -1, 3)), "kernel_size"),
    (lambda: layers.Conv3D(4, 3, strides=0), "strides"),
    (lambda: layers.Conv3D(4, 3, strides=(1, 1, -2)), "strides"),
    (lambda: layers.Conv3D(4, 3, dilation_rate=0), "dilation_rate"),
    (lambda: layers.Conv3D(4, 3, padding="full"), "padding"),
    (lambda: layers.Conv3D(4, 3, padding="causal"), "padding"),
    (lambda: layers.Conv3D(4, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.Conv3D(4, 3, groups=3), "groups"),
    (lambda: layers.Conv3D(4, 3, groups=0), "groups"),
    (lambda: layers.Conv3D(4, 3, data_format="ndhwc"), "data_format"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=f"Conv3D layer .*{match}"):
        make()


def test_inputs_of_another_rank_name_the_layer(xp):
    layer = layers.Conv3D(4, 3, name="conv_a")
    with pytest.raises(ValueError, match=r"conv_a.*rank 5 \(batch, depth, height, width, channels\).*rank 4"):
        layer(xp.ones((2, 8, 8, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"conv_a.*rank 5.*rank 6"):
        layer.compute_output_shape((None, 4, 4, 4, 4, 1))
    assert not layer.built


def test_channels_that_do_not_match_the_kernel_name_the_layer(xp):
    conv = layers.Conv3D(4, 3, name="conv_a")
    conv(xp.ones((1, 3, 4, 5, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"conv_a.*built for 3 input channels.*kernel \(3, 3, 3, 3, 4\).*with 5"):
        conv(xp.ones((1, 3, 4, 5, 5), dtype="float32"))
    conv(xp.ones((2, 5, 3, 3, 3), dtype="float32"))     # other sizes are fine
    with pytest.raises(ValueError, match="conv_b.*known number of input channels"):
        layers.Conv3D(2, 3, name="conv_b").build((None, 8, 8, 8, None))
    with pytest.raises(ValueError, match=r"conv_c.*5 channels must be divisible by groups \(2\)"):
        layers.Conv3D(4, 3, groups=2, name="conv_c").build((None, 8, 8, 8, 5))


def test_zero_sized_input_is_a_clear_error(xp):
    with pytest.raises(ValueError, match=r"zero.*depth window 3 is larger.*\(0 \+ 0 \+ 0 = 0\)"):
        layers.Conv3D(2, 3, name="zero")(xp.ones((1, 0, 4, 4, 2), dtype="float32"))


def test_configs_round_trip_through_sequential(rng):
    model = gpu_dl.Sequential([
        layers.Input((7, 5, 6, 2)),
        layers.Conv3D(4, (3, 2, 3), strides=(2, 1, 1), padding="same", activation="relu", use_bias=False),
        layers.Convolution3D(4, 2, dilation_rate=(1, 2, 1), groups=2, kernel_regularizer="l2"),
        layers.GlobalAveragePooling3D(),
    ])
    copy = gpu_dl.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    x = rng.standard_normal((2, 7, 5, 6, 2)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))
    first, second = copy.layers[0], copy.layers[1]
    assert type(second) is layers.Conv3D and layers.Convolution3D is layers.Conv3D
    assert (first.kernel_size, first.strides, first.padding, first.use_bias) == ((3, 2, 3), (2, 1, 1), "same", False)
    assert (second.dilation_rate, second.groups, second.kernel.shape) == ((1, 2, 1), 2, (2, 2, 2, 2, 4))


def test_a_small_3d_cnn_learns_where_a_blob_is(xp):
    """Conv3D -> MaxPooling3D -> GlobalAveragePooling3D -> Dense tells a bright blob in the front half of a
    volume from one in the back half."""
    gpu_dl.backend.set_random_seed(0)
    rng = numpy.random.default_rng(0)
    x = 0.1 * rng.standard_normal((64, 6, 5, 5, 1)).astype("float32")
    y = rng.integers(0, 2, 64)
    depth = numpy.where(y == 0, rng.integers(0, 2, 64), rng.integers(4, 6, 64))
    x[numpy.arange(64), depth, 2, 2, 0] += 2.0
    model = gpu_dl.Sequential([layers.Input((6, 5, 5, 1)), layers.Conv3D(4, 3, padding="same", activation="relu"),
                               layers.MaxPooling3D((3, 1, 1)), layers.Conv3D(2, (2, 1, 1), activation="relu"),
                               layers.GlobalAveragePooling3D(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # 10 epochs: every one of eight seeds classifies all 64 volumes from the 5th on (the 4th still misses).
    model.fit(xp.asarray(x), xp.asarray(y), epochs=10, batch_size=16, verbose=0)
    predicted = to_numpy(model.predict(xp.asarray(x), verbose=0)).argmax(axis=1)
    assert (predicted == y).mean() > 0.9
