"""The 1-D layers on (batch, steps, channels) sequences: Conv1D, the 1-D pooling layers, ZeroPadding1D,
Cropping1D and UpSampling1D. Forward against NumPy written per output step, backward against finite
differences, shapes, configs and bad input."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient
from test_conv_layers import check_layer_gradients


# ------------------------------------------------------------------ expectations
def pads_of(padding, steps, window, stride, dilation=1):
    """(before, after) of Keras's "valid", "same" (ceil(steps / stride) outputs, the odd pad after) and "causal"."""
    span = dilation * (window - 1) + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    total = max((-(-steps // stride) - 1) * stride + span - steps, 0)
    return total // 2, total - total // 2


def window_positions(steps, pads, window, stride, dilation=1):
    """(out, window) positions in the padded input that each output step reads."""
    out = (steps + sum(pads) - dilation * (window - 1) - 1) // stride + 1
    return numpy.arange(out)[:, None] * stride + numpy.arange(window)[None, :] * dilation


def expected_conv1d(x, kernel, stride, pads, dilation):
    """y[n, o, f] = sum_{k, c} x_padded[n, o * stride + k * dilation, c] * kernel[k, c, f]."""
    padded = numpy.pad(x, ((0, 0), pads, (0, 0)))
    where = window_positions(x.shape[1], pads, kernel.shape[0], stride, dilation)
    return numpy.einsum("nokc,kcf->nof", padded[:, where, :], kernel)


def expected_pool1d(x, window, stride, pads, kind):
    """Max or mean of each window's in-bounds values (padding never counts)."""
    inside = numpy.pad(numpy.ones(x.shape[1], bool), pads)
    where = window_positions(x.shape[1], pads, window, stride)
    values, valid = numpy.pad(x, ((0, 0), pads, (0, 0)))[:, where, :], inside[where][None, :, :, None]
    if kind == "max":
        return numpy.where(valid, values, -numpy.inf).max(axis=2)
    return (values * valid).sum(axis=2) / valid.sum(axis=2)


def seeded(**kwargs):
    """Seeded float64 weights: unseeded, a relu input within a finite-difference step of 0 fails now and then."""
    return dict(kernel_initializer=gpu_dl.initializers.GlorotUniform(seed=1),
                bias_initializer=gpu_dl.initializers.RandomNormal(seed=2), dtype="float64", **kwargs)


# -------------------------------------------------------------------------- Conv1D
# (Conv1D arguments, input shape): steps 1, 3, 17, 33; strides 1-3; dilation 1-2; every padding; kernels
# longer than the input where padding allows it; 9 -> 2 channels takes the NumPy path's tap split.
CONV_CASES = [
    ({"filters": 5, "kernel_size": 3}, (2, 17, 3)),
    ({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (3, 17, 2)),
    ({"filters": 3, "kernel_size": 5, "strides": 3, "padding": "same"}, (1, 3, 2)),
    ({"filters": 3, "kernel_size": 3, "dilation_rate": 2, "padding": "causal"}, (2, 33, 1)),
    ({"filters": 2, "kernel_size": 2, "strides": 3, "padding": "causal"}, (2, 17, 3)),
    ({"filters": 2, "kernel_size": 4, "padding": "causal"}, (2, 1, 2)),
    ({"filters": 3, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, (2, 1, 2)),
    ({"filters": 2, "kernel_size": 1}, (2, 1, 3)),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": 2}, (2, 33, 9)),
    ({"filters": 4, "kernel_size": 2, "strides": 2}, (1, 3, 1)),
]


@pytest.mark.parametrize("kwargs,shape", CONV_CASES)
@pytest.mark.parametrize("activation", ["tanh", None])
def test_conv1d_forward_and_gradients(xp, rng, kwargs, shape, activation):
    layer = layers.Conv1D(**kwargs, **seeded(activation=activation))
    x_host = rng.standard_normal(shape)
    x = xp.asarray(x_host)
    y = layer(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == (kwargs["kernel_size"], shape[2], kwargs["filters"]) and bias.shape == (kwargs["filters"],)
    stride, dilation = kwargs.get("strides", 1), kwargs.get("dilation_rate", 1)
    pads = pads_of(kwargs.get("padding", "valid"), shape[1], kwargs["kernel_size"], stride, dilation)
    z = expected_conv1d(x_host, kernel, stride, pads, dilation) + bias
    numpy.testing.assert_allclose(to_numpy(y), numpy.tanh(z) if activation else z, rtol=1e-10, atol=1e-10)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(layer, x, rng)


def test_conv1d_relu_and_channels_first(xp, rng):
    first = layers.Conv1D(4, 3, strides=2, padding="same", data_format="channels_first", **seeded(activation="relu"))
    last = layers.Conv1D(4, 3, strides=2, padding="same", **seeded(activation="relu"))
    x = rng.standard_normal((2, 3, 17))
    y_first = first(xp.asarray(x))
    last(xp.asarray(x.transpose(0, 2, 1)))
    last.set_weights(first.get_weights())
    assert first.compute_output_shape((None, 3, 17)) == (None, 4, 9)
    y_last = to_numpy(last(xp.asarray(x.transpose(0, 2, 1))))
    numpy.testing.assert_allclose(to_numpy(y_first), y_last.transpose(0, 2, 1), rtol=1e-12)
    kernel, bias = first.get_weights()
    want = numpy.maximum(expected_conv1d(x.transpose(0, 2, 1), kernel, 2, (1, 1), 1) + bias, 0)
    numpy.testing.assert_allclose(to_numpy(y_first), want.transpose(0, 2, 1), rtol=1e-10, atol=1e-10)
    check_layer_gradients(first, xp.asarray(x), rng)


@pytest.mark.parametrize("dilation", [1, 2])
def test_causal_output_does_not_see_later_steps(xp, rng, dilation):
    layer = layers.Conv1D(3, 3, padding="causal", dilation_rate=dilation, dtype="float64")
    x = rng.standard_normal((2, 17, 2))
    y = to_numpy(layer(xp.asarray(x)))
    for t in (0, 5, 16):
        changed = x.copy()
        changed[:, t + 1:] = rng.standard_normal(changed[:, t + 1:].shape)
        changed[:, t] += 1.0
        y_changed = to_numpy(layer(xp.asarray(changed)))
        numpy.testing.assert_array_equal(y_changed[:, :t], y[:, :t])
        assert numpy.abs(y_changed[:, t] - y[:, t]).min() > 0     # step t itself does see input t


def test_a_sequence_reaches_the_2d_ops_as_a_view(xp, rng):
    """(N, T, C) -> (N, 1, T, C) is a reshape of the contiguous input, and the output's reshape back too."""
    layer = layers.Conv1D(3, 2, padding="causal", dtype="float64")
    x = xp.asarray(rng.standard_normal((2, 5, 4)))
    layer(x, training=True)
    image, z = layer._saved[0], layer._saved[1]
    assert image.shape == (2, 1, 5, 4) and xp.shares_memory(image, x)
    assert xp.shares_memory(layer.from_image(z), z)


def test_conv1d_on_unknown_length_and_its_output_shapes():
    assert layers.Conv1D(4, 3).compute_output_shape((None, None, 2)) == (None, None, 4)
    assert layers.Conv1D(4, 3, padding="causal").compute_output_shape((None, None, 2)) == (None, None, 4)
    assert layers.Conv1D(4, 3, padding="causal", strides=2).compute_output_shape((5, 17, 2)) == (5, 9, 4)
    assert layers.Conv1D(4, 5, strides=3).compute_output_shape((None, 33, 2)) == (None, 10, 4)   # (33 - 5) // 3 + 1
    assert layers.Conv1D(4, 3, data_format="channels_first").compute_output_shape((None, 2, 9)) == (None, 4, 7)


# ------------------------------------------------------------------------- pooling
POOL_CASES = [
    ({}, (2, 17, 3)),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (3, 17, 2)),
    ({"pool_size": 2, "strides": 1, "padding": "same"}, (1, 33, 4)),
    ({"pool_size": 3, "strides": 3}, (2, 33, 1)),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (2, 1, 2)),
    ({"pool_size": 1}, (1, 1, 3)),
    ({"pool_size": 2, "strides": 3, "padding": "same"}, (2, 3, 2)),
]


@pytest.mark.parametrize("cls,kind", [(layers.MaxPooling1D, "max"), (layers.AveragePooling1D, "avg")])
@pytest.mark.parametrize("kwargs,shape", POOL_CASES)
def test_pooling1d_forward_and_gradients(xp, rng, cls, kind, kwargs, shape):
    if kind == "avg" and "pool_size" not in kwargs:
        kwargs = {"pool_size": 2, **kwargs}     # as Keras 3.15's, the average poolings have no default pool_size
    layer = cls(**kwargs, dtype="float64")
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    window = kwargs.get("pool_size", 2)
    stride = kwargs.get("strides", window)
    assert layer.pool_size == (window,) and layer.strides == (stride,)
    want = expected_pool1d(x_host, window, stride, pads_of(kwargs.get("padding", "valid"), shape[1], window, stride),
                           kind)
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-12)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(layer, xp.asarray(x_host), rng)


@pytest.mark.parametrize("cls,kind", [(layers.MaxPool1D, "max"), (layers.AvgPool1D, "avg")])
def test_pooling1d_channels_first(xp, rng, cls, kind):
    layer = cls(3, strides=2, padding="same", data_format="channels_first", dtype="float64")
    x = rng.standard_normal((2, 3, 17))
    y = to_numpy(layer(xp.asarray(x)))
    want = expected_pool1d(x.transpose(0, 2, 1), 3, 2, (1, 1), kind).transpose(0, 2, 1)
    numpy.testing.assert_allclose(y, want, rtol=1e-12)
    assert layer.compute_output_shape((None, 3, 17)) == (None, 3, 9) == (None,) + y.shape[1:]
    check_layer_gradients(layer, xp.asarray(x), rng)


@pytest.mark.parametrize("cls", [layers.GlobalMaxPooling1D, layers.GlobalAveragePooling1D])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format,shape", [("channels_last", (3, 17, 4)), ("channels_first", (3, 4, 17)),
                                               ("channels_last", (2, 1, 3))])
def test_global_pooling1d(xp, rng, cls, keepdims, data_format, shape):
    layer = cls(keepdims=keepdims, data_format=data_format, dtype="float64")
    x_host = rng.standard_normal(shape)
    y = to_numpy(layer(xp.asarray(x_host)))
    steps = 2 if data_format == "channels_first" else 1
    reduce = numpy.max if cls is layers.GlobalMaxPooling1D else numpy.mean
    numpy.testing.assert_allclose(y, reduce(x_host, axis=steps, keepdims=keepdims), rtol=1e-12)
    assert y.shape[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(layer, xp.asarray(x_host), rng)


def test_global_pooling1d_aliases():
    assert layers.GlobalMaxPool1D is layers.GlobalMaxPooling1D
    assert layers.GlobalAvgPool1D is layers.GlobalAveragePooling1D
    assert layers.MaxPool1D is layers.MaxPooling1D and layers.AvgPool1D is layers.AveragePooling1D


# ------------------------------------------------------- masked global average pooling
MASK = numpy.array([[1, 1, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1, 1]], bool)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_masked_global_average_is_the_mean_of_the_unmasked_steps(xp, rng, keepdims, data_format):
    layer = layers.GlobalAveragePooling1D(keepdims=keepdims, data_format=data_format, dtype="float64")
    x_last = rng.standard_normal((3, 7, 4))
    x_last[~MASK] = numpy.nan        # masked steps are left out, not multiplied by zero
    x_last[0, 2, 1] = numpy.inf
    x_host = x_last.transpose(0, 2, 1) if data_format == "channels_first" else x_last
    y = to_numpy(layer(xp.asarray(x_host), mask=xp.asarray(MASK)))
    for n in range(3):
        want = x_last[n][MASK[n]].mean(axis=0)
        numpy.testing.assert_allclose(y[n].reshape(-1), want, rtol=1e-12)
    assert y.shape == ((3, 1, 4) if data_format == "channels_last" else (3, 4, 1)) if keepdims else (3, 4)

    finite = xp.asarray(numpy.where(numpy.isfinite(x_host), x_host, 0.0))
    mask = xp.asarray(MASK)
    w = xp.asarray(rng.standard_normal(y.shape))
    layer(finite, training=True, mask=mask)
    dx = layer.backward(w)
    assert_gradient(lambda v: (layer(v, training=True, mask=mask) * w).sum(), finite, dx, rng, what="masked mean")
    dx_last = to_numpy(dx).transpose(0, 2, 1) if data_format == "channels_first" else to_numpy(dx)
    assert (dx_last[~MASK] == 0).all()
    numpy.testing.assert_allclose(dx_last[1, 6], to_numpy(w).reshape(3, 4)[1], rtol=1e-12)   # one step: all of it


def test_every_step_masked_gives_nan_as_keras_and_a_zero_gradient(xp, rng):
    layer = layers.GlobalAveragePooling1D(dtype="float64")
    x = xp.asarray(rng.standard_normal((2, 5, 3)))
    mask = xp.asarray(numpy.array([[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], bool))
    y = to_numpy(layer(x, training=True, mask=mask))
    assert numpy.isnan(y[0]).all()
    numpy.testing.assert_allclose(y[1], to_numpy(x)[1, 0], rtol=1e-12)
    dx = to_numpy(layer.backward(xp.ones((2, 3))))
    assert (dx[0] == 0).all() and (dx[1, 0] == 1).all() and (dx[1, 1:] == 0).all()


def test_a_mask_of_the_wrong_shape_names_the_layer(xp):
    layer = layers.GlobalAveragePooling1D(data_format="channels_first", name="gap")
    with pytest.raises(ValueError, match=r"gap.*\(batch, steps\) = \(2, 5\), got \(2, 3\)"):
        layer(xp.ones((2, 3, 5), dtype="float32"), mask=xp.ones((2, 3), dtype=bool))


def test_a_mask_reaches_global_average_pooling_in_a_model(xp, rng):
    """Masking marks the all-zero steps; the pooled mean leaves them out and no mask goes past it."""
    model = gpu_dl.Sequential([layers.Input((6, 2)), layers.Masking(0.0), layers.GlobalAveragePooling1D(),
                               layers.Dense(1, use_bias=False, kernel_initializer="ones")])
    x = rng.standard_normal((3, 6, 2)).astype("float32")
    x[0, 3:] = 0
    x[1, :5] = 0
    y = to_numpy(model(xp.asarray(x)))
    steps = numpy.any(x != 0, axis=-1)
    want = numpy.stack([x[n][steps[n]].mean(axis=0).sum() for n in range(3)])
    numpy.testing.assert_allclose(y[:, 0], want, rtol=1e-5)
    assert model.output_mask is None


# ------------------------------------------------------------ padding, cropping, up-sampling
@pytest.mark.parametrize("padding,pair", [(1, (1, 1)), ((2, 0), (2, 0)), ((0, 3), (0, 3))])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_padding1d(xp, rng, padding, pair, data_format):
    layer = layers.ZeroPadding1D(padding, data_format=data_format, dtype="float64")
    x_last = rng.standard_normal((2, 3, 4))
    x = x_last.transpose(0, 2, 1) if data_format == "channels_first" else x_last
    y = to_numpy(layer(xp.asarray(x)))
    y_last = y.transpose(0, 2, 1) if data_format == "channels_first" else y
    assert layer.padding == pair and y_last.shape == (2, 3 + sum(pair), 4)
    numpy.testing.assert_array_equal(y_last[:, pair[0]:pair[0] + 3], x_last)
    assert (y_last[:, :pair[0]] == 0).all() and (y_last[:, pair[0] + 3:] == 0).all()
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]
    check_layer_gradients(layer, xp.asarray(x), rng)


@pytest.mark.parametrize("cropping,pair", [(1, (1, 1)), ((2, 0), (2, 0)), ((0, 16), (0, 16)), ((3, 5), (3, 5))])
def test_cropping1d(xp, rng, cropping, pair):
    layer = layers.Cropping1D(cropping, dtype="float64")
    x = rng.standard_normal((2, 17, 3))
    y = to_numpy(layer(xp.asarray(x)))
    assert layer.cropping == pair
    numpy.testing.assert_array_equal(y, x[:, numpy.arange(pair[0], 17 - pair[1])])
    assert layer.compute_output_shape((None, 17, 3)) == (None,) + y.shape[1:]
    check_layer_gradients(layer, xp.asarray(x), rng)


@pytest.mark.parametrize("size,steps", [(2, 3), (3, 1), (1, 17)])
def test_up_sampling1d(xp, rng, size, steps):
    layer = layers.UpSampling1D(size, dtype="float64")
    x = rng.standard_normal((2, steps, 3))
    y = to_numpy(layer(xp.asarray(x)))
    numpy.testing.assert_array_equal(y, x[:, numpy.arange(size * steps) // size])
    assert layer.compute_output_shape((None, steps, 3)) == (None, size * steps, 3)
    check_layer_gradients(layer, xp.asarray(x), rng)


# ------------------------------------------------------------- models, errors, configs
def test_summary_shows_the_sequence_shapes(capsys):
    model = gpu_dl.Sequential([
        layers.Input((33, 3)),
        layers.ZeroPadding1D((2, 1)),                                  # 36
        layers.Conv1D(8, 5, activation="relu"),                         # 36 - 5 + 1 = 32
        layers.MaxPooling1D(),                                          # 16
        layers.Conv1D(6, 3, strides=2, padding="same"),                 # ceil(16 / 2) = 8
        layers.Conv1D(5, 3, padding="causal", dilation_rate=2),         # 8
        layers.UpSampling1D(3),                                         # 24
        layers.Cropping1D((1, 2)),                                      # 21
        layers.AveragePooling1D(3, strides=2),                          # (21 - 3) // 2 + 1 = 10
        layers.GlobalMaxPooling1D(),
        layers.Dense(2),
    ])
    model.summary()
    text = capsys.readouterr().out
    for shape in ["(None, 36, 3)", "(None, 32, 8)", "(None, 16, 8)", "(None, 8, 6)", "(None, 8, 5)",
                  "(None, 24, 5)", "(None, 21, 5)", "(None, 10, 5)", "(None, 5)", "(None, 2)"]:
        assert shape in text, shape
    assert f"{5 * 3 * 8 + 8:,}" in text and f"{3 * 8 * 6 + 6:,}" in text and f"{3 * 6 * 5 + 5:,}" in text


def test_kernel_longer_than_padded_input_quotes_the_formula():
    model = gpu_dl.Sequential([layers.Input((9, 2)), layers.MaxPooling1D(2)])
    with pytest.raises(ValueError) as caught:
        model.add(layers.Conv1D(8, 5, strides=2, name="too_long"))
    message = str(caught.value)
    assert "too_long" in message and "steps window 5" in message and "(4 - 5 + 0) // 2 + 1 = 0" in message
    assert len(model.layers) == 1
    with pytest.raises(ValueError, match=r"window 3 dilated by 2 \(spans 5\).*\(4 \+ 0 \+ 0 = 4\)"):
        layers.Conv1D(1, 3, dilation_rate=2).compute_output_shape((None, 4, 1))
    with pytest.raises(ValueError, match=r"pool.*steps window 3"):
        layers.MaxPooling1D(3, name="pool").compute_output_shape((None, 2, 1))
    # "same" and "causal" pad a kernel longer than the input
    assert layers.Conv1D(1, 5, padding="same").compute_output_shape((None, 2, 1)) == (None, 2, 1)
    assert layers.Conv1D(1, 5, padding="causal").compute_output_shape((None, 2, 1)) == (None, 2, 1)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv1D(0, 3), "filters"),
    (lambda: layers.Conv1D(4, 0), "kernel_size"),
    (lambda: layers.Conv1D(4, (3, 3)), "kernel_size"),
    (lambda: layers.Conv1D(4, 3, strides=0), "strides"),
    (lambda: layers.Conv1D(4, 3, dilation_rate=0), "dilation_rate"),
    (lambda: layers.Conv1D(4, 3, padding="full"), "padding"),
    (lambda: layers.Conv1D(4, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.Conv1D(4, 3, groups=3), "groups"),
    (lambda: layers.Conv1D(4, 3, data_format="ntc"), "data_format"),
    (lambda: layers.Conv2D(4, 3, padding="causal"), "padding"),
    (lambda: layers.MaxPooling1D(padding="causal"), "padding"),
    (lambda: layers.AveragePooling1D(2, padding="causal"), "padding"),
    (lambda: layers.MaxPooling1D(0), "pool_size"),
    (lambda: layers.AveragePooling1D(2, strides=0), "strides"),
    (lambda: layers.MaxPooling1D((2, 2)), "pool_size"),
    (lambda: layers.ZeroPadding1D(-1), "padding"),
    (lambda: layers.ZeroPadding1D((1, 2, 3)), "padding"),
    (lambda: layers.Cropping1D((1, -1)), "cropping"),
    (lambda: layers.UpSampling1D(0), "size"),
    (lambda: layers.UpSampling1D(2.0), "size"),
    (lambda: layers.UpSampling1D(True), "size"),
    (lambda: layers.Cropping1D(data_format="channels_first"), "data_format"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("cls,args", [(layers.Conv1D, (4, 3)), (layers.MaxPooling1D, ()),
                                      (layers.AveragePooling1D, (2,)),
                                      (layers.GlobalMaxPooling1D, ()), (layers.GlobalAveragePooling1D, ()),
                                      (layers.ZeroPadding1D, ()), (layers.Cropping1D, ()), (layers.UpSampling1D, ())])
def test_inputs_of_another_rank_name_the_layer(xp, cls, args):
    layer = cls(*args, name="layer_a")
    with pytest.raises(ValueError, match=r"layer_a.*rank 3 \(batch, steps, channels\).*rank 4"):
        layer(xp.ones((2, 8, 8, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"layer_a.*rank 3.*rank 2"):
        layer.compute_output_shape((None, 8))
    # as Keras: the pooling layers are built when made, and a refused call leaves every layer as it found it
    assert layer.built == (cls in (layers.MaxPooling1D, layers.AveragePooling1D, layers.GlobalMaxPooling1D,
                                   layers.GlobalAveragePooling1D))


def test_channels_that_do_not_match_the_kernel_name_the_layer(xp):
    conv = layers.Conv1D(4, 3, name="conv_a")
    conv(xp.ones((2, 8, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"conv_a.*built for 3 input channels.*kernel \(3, 3, 4\).*with 5"):
        conv(xp.ones((2, 8, 5), dtype="float32"))
    conv(xp.ones((1, 5, 3), dtype="float32"))         # another length is fine
    with pytest.raises(ValueError, match="conv_b.*known number of input channels"):
        layers.Conv1D(2, 3, name="conv_b").build((None, 8, None))


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv1D(2, 3, name="zero"), r"zero.*steps window 3 is larger.*\(0 \+ 0 \+ 0 = 0\)"),
    (lambda: layers.Conv1D(2, 3, padding="causal", name="zero"), r"zero.*\(0 \+ 2 \+ 0 = 2\)"),
    (lambda: layers.MaxPooling1D(name="zero"), r"zero.*steps window 2"),
    (lambda: layers.GlobalMaxPooling1D(name="zero"), r"zero.*nothing to pool over"),
    (lambda: layers.GlobalAveragePooling1D(name="zero"), r"zero.*nothing to pool over"),
    (lambda: layers.Cropping1D((2, 3), name="zero"), r"zero.*removes 5 steps of an input of 5"),
])
def test_empty_outputs_and_zero_steps_are_clear_errors(xp, make, match):
    """An input of zero steps (or cropped to none) is refused by name, not left to an empty reduction."""
    layer = make()
    steps = 5 if isinstance(layer, layers.Cropping1D) else 0
    with pytest.raises(ValueError, match=match):
        layer(xp.ones((2, steps, 3), dtype="float32"))


def test_a_model_built_for_any_length_checks_each_batch(xp):
    model = gpu_dl.Sequential([layers.Input((None, 2)), layers.Cropping1D((2, 2)), layers.Conv1D(3, 3)])
    assert model.output_shape == (None, None, 3)
    assert tuple(model(xp.ones((1, 9, 2), dtype="float32")).shape) == (1, 3, 3)
    with pytest.raises(ValueError, match="Cropping1D layer .* leaving 0"):
        model(xp.ones((1, 4, 2), dtype="float32"))
    with pytest.raises(ValueError, match="Conv1D layer .* steps window 3"):
        model(xp.ones((1, 6, 2), dtype="float32"))


def test_configs_round_trip_through_sequential(rng):
    model = gpu_dl.Sequential([
        layers.Input((17, 2)),
        layers.Conv1D(3, 3, strides=2, padding="same", activation="relu", use_bias=False),
        layers.ZeroPadding1D((1, 0)),
        layers.Conv1D(4, 2, padding="causal", dilation_rate=2, data_format="channels_last"),
        layers.MaxPooling1D(2, strides=1, padding="same"),
        layers.UpSampling1D(2),
        layers.Cropping1D((0, 1)),
        layers.AveragePooling1D(3),
        layers.GlobalMaxPooling1D(keepdims=True),
        layers.Flatten(),
    ])
    config = model.get_config()
    copy = gpu_dl.Sequential.from_config(config)
    copy.set_weights(model.get_weights())
    x = rng.standard_normal((2, 17, 2)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))
    conv, causal = copy.layers[0], copy.layers[2]
    assert (conv.kernel_size, conv.strides, conv.padding, conv.use_bias) == ((3,), (2,), "same", False)
    assert (causal.padding, causal.dilation_rate, causal.kernel.shape) == ("causal", (2,), (2, 3, 4))
    names = [layer.name.rstrip("_0123456789") for layer in model.layers]
    assert names[:8] == ["conv1d", "zero_padding1d", "conv1d", "max_pooling1d", "up_sampling1d", "cropping1d",
                         "average_pooling1d", "global_max_pooling1d"]
    assert "data_format" not in copy.layers[5].get_config() and "data_format" not in copy.layers[4].get_config()


def test_a_conv1d_model_forecasts_a_windowed_sine_series(xp):
    """Causal, dilated convolutions over windows of 16 frames forecast the next sine value far better than
    repeating the last one."""
    gpu_dl.backend.set_random_seed(0)
    t = numpy.arange(700, dtype="float32")
    series = numpy.stack([numpy.sin(0.21 * t), numpy.cos(0.21 * t)], axis=1).astype("float32")
    length, split = 16, 560
    train = gpu_dl.data.timeseries_dataset_from_array(series[:split - length], series[length:split, 0],
                                                      sequence_length=length, batch_size=32, shuffle=True, seed=0)
    x_test, y_test = gpu_dl.data.timeseries_dataset_from_array(series[split:-length], series[split + length:, 0],
                                                               sequence_length=length, batch_size=64).as_arrays()
    model = gpu_dl.Sequential([layers.Input((length, 2)), layers.Conv1D(8, 3, padding="causal", activation="tanh"),
                               layers.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="tanh"),
                               layers.MaxPooling1D(2), layers.Conv1D(4, 3, strides=2),
                               layers.GlobalAveragePooling1D(), layers.Dense(1)])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.01), loss="mse")
    model.fit(train, epochs=8, verbose=0)
    forecast = to_numpy(model.predict(x_test, verbose=0))[:, 0]
    model_mse = float(numpy.mean((forecast - y_test) ** 2))
    naive_mse = float(numpy.mean((x_test[:, -1, 0] - y_test) ** 2))
    assert model_mse < naive_mse / 100, f"model MSE {model_mse:.2e}, naive {naive_mse:.2e}"
