"""Grouped convolutions (``groups`` > 1): the ops and the Conv2D / Conv1D layers.

The expectation runs the plain tap-by-tap convolution of test_conv_ops once per group, on that group's
channel slices, and concatenates: it shares nothing with the grouped im2col of the NumPy path or the
per-group launches of the GPU path.
"""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import convolution as conv
from gradcheck import assert_gradient
from test_conv1d_layers import expected_conv1d, pads_of
from test_conv_layers import check_layer_gradients
from test_conv_ops import expected_conv


def expected_grouped(x, kernel, groups, strides, padding, dilation):
    cig, cog = x.shape[-1] // groups, kernel.shape[-1] // groups
    return numpy.concatenate([expected_conv(x[..., g * cig:(g + 1) * cig], kernel[..., g * cog:(g + 1) * cog],
                                            strides, padding, dilation) for g in range(groups)], axis=-1)


# (batch, H, W, Cin, Cout, groups, kernel, strides, padding, dilation): odd sizes, strides 1-2, dilation 1-2,
# asymmetric padding (stride-1 input gradients through the turned kernel, others through the scatter), one
# channel per group (depthwise-like) and one filter per group.
CASES = [
    (2, 9, 11, 6, 4, 2, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    (3, 7, 5, 6, 9, 3, (2, 3), (2, 1), ((0, 1), (1, 0)), (1, 1)),
    (1, 8, 9, 4, 4, 4, (3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),
    (2, 5, 5, 3, 6, 3, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    (1, 17, 3, 8, 2, 2, (1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1)),
    (2, 6, 7, 9, 3, 3, (3, 2), (1, 1), ((0, 3), (2, 0)), (2, 1)),   # pads beyond the window's reach: scatter path
    (1, 1, 1, 2, 2, 2, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),
]


@pytest.mark.parametrize("case", CASES)
def test_grouped_conv2d_ops_forward_and_gradients(xp, rng, case):
    n, h, w, cin, cout, groups, window, strides, padding, dilation = case
    x_host, k_host = rng.standard_normal((n, h, w, cin)), rng.standard_normal(window + (cin // groups, cout))
    x, kernel = xp.asarray(x_host), xp.asarray(k_host)
    geometry = dict(strides=strides, padding=padding, dilation=dilation, groups=groups)
    y = conv.conv2d_forward(x, kernel, **geometry)
    numpy.testing.assert_allclose(to_numpy(y), expected_grouped(x_host, k_host, groups, strides, padding, dilation),
                                  rtol=1e-10, atol=1e-10)
    weights = xp.asarray(rng.standard_normal(y.shape))
    dx = conv.conv2d_backward_input(weights, kernel, x.shape, **geometry)
    dk = conv.conv2d_backward_kernel(x, weights, kernel.shape, **geometry)
    assert_gradient(lambda v: (conv.conv2d_forward(v, kernel, **geometry) * weights).sum(), x, dx, rng)
    assert_gradient(lambda v: (conv.conv2d_forward(x, v, **geometry) * weights).sum(), kernel, dk, rng,
                    what="kernel")


def test_a_group_never_reads_another_groups_channels(xp, rng):
    """Changing input block 1 changes output block 1 only."""
    x = rng.standard_normal((2, 6, 6, 6))
    kernel = xp.asarray(rng.standard_normal((3, 3, 2, 9)))
    y = to_numpy(conv.conv2d_forward(xp.asarray(x), kernel, groups=3))
    x[..., 2:4] += 1
    changed = to_numpy(conv.conv2d_forward(xp.asarray(x), kernel, groups=3)) != y
    assert not changed[..., :3].any() and not changed[..., 6:].any() and changed[..., 3:6].all()


@pytest.mark.parametrize("kwargs,shape", [
    ({"filters": 4, "kernel_size": 3, "groups": 2}, (2, 9, 11, 6)),
    ({"filters": 6, "kernel_size": (2, 3), "strides": 2, "padding": "same", "groups": 3}, (3, 7, 5, 3)),
    ({"filters": 4, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "groups": 4}, (1, 9, 8, 8)),
    ({"filters": 2, "kernel_size": 1, "strides": 2, "groups": 2, "use_bias": False}, (2, 5, 7, 4)),
])
@pytest.mark.parametrize("activation", ["relu", None])
def test_grouped_conv2d_layer(xp, rng, kwargs, shape, activation):
    layer = layers.Conv2D(**kwargs, activation=activation, kernel_initializer=gpu_dl.initializers.GlorotUniform(seed=1),
                          bias_initializer=gpu_dl.initializers.RandomNormal(seed=2), dtype="float64")
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    groups = kwargs["groups"]
    kernel = layer.get_weights()[0]
    assert kernel.shape == layer.kernel_size + (shape[3] // groups, kwargs["filters"])
    padding = ((0, 0), (0, 0))
    if kwargs.get("padding") == "same":
        padding = tuple(conv.same_padding(n, k, s, d) for n, k, s, d in
                        zip(shape[1:3], layer.kernel_size, layer.strides, layer.dilation_rate))
    z = expected_grouped(x_host, kernel, groups, layer.strides, padding, layer.dilation_rate)
    if layer.use_bias:
        z = z + layer.get_weights()[1]
    numpy.testing.assert_allclose(to_numpy(y), numpy.maximum(z, 0) if activation else z, rtol=1e-10, atol=1e-10)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    assert layer.count_params() == kernel.size + (kwargs["filters"] if layer.use_bias else 0)
    check_layer_gradients(layer, xp.asarray(x_host), rng)


def test_grouped_conv2d_channels_first(xp, rng):
    first = layers.Conv2D(4, 3, padding="same", groups=2, data_format="channels_first", dtype="float64")
    last = layers.Conv2D(4, 3, padding="same", groups=2, dtype="float64")
    x = rng.standard_normal((2, 6, 5, 7))
    first(xp.asarray(x))
    last(xp.asarray(x.transpose(0, 2, 3, 1)))
    last.set_weights(first.get_weights())
    numpy.testing.assert_allclose(to_numpy(first(xp.asarray(x))),
                                  to_numpy(last(xp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2),
                                  rtol=1e-12)
    check_layer_gradients(first, xp.asarray(x), rng)


@pytest.mark.parametrize("kwargs,shape", [
    ({"filters": 4, "kernel_size": 3, "groups": 2}, (2, 17, 6)),
    ({"filters": 6, "kernel_size": 2, "strides": 2, "padding": "same", "groups": 3}, (3, 9, 3)),
    ({"filters": 4, "kernel_size": 3, "dilation_rate": 2, "padding": "causal", "groups": 4}, (1, 8, 4)),
])
def test_grouped_conv1d_layer(xp, rng, kwargs, shape):
    layer = layers.Conv1D(**kwargs, activation="tanh", bias_initializer=gpu_dl.initializers.RandomNormal(seed=2),
                          dtype="float64")
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    kernel, bias = layer.get_weights()
    groups, (window,), (stride,), (dilation,) = kwargs["groups"], layer.kernel_size, layer.strides, layer.dilation_rate
    assert kernel.shape == (window, shape[2] // groups, kwargs["filters"])
    pads = pads_of(layer.padding, shape[1], window, stride, dilation)
    cig, cog = shape[2] // groups, kwargs["filters"] // groups
    z = numpy.concatenate([expected_conv1d(x_host[..., g * cig:(g + 1) * cig], kernel[..., g * cog:(g + 1) * cog],
                                           stride, pads, dilation) for g in range(groups)], axis=-1) + bias
    numpy.testing.assert_allclose(to_numpy(y), numpy.tanh(z), rtol=1e-10, atol=1e-10)
    check_layer_gradients(layer, xp.asarray(x_host), rng)


def test_grouped_conv_config_round_trip(rng):
    model = gpu_dl.Sequential([layers.Input((7, 7, 6)), layers.Conv2D(9, 3, groups=3, activation="relu"),
                               layers.Reshape((5 * 5, 9)), layers.Conv1D(3, 2, groups=3)])
    copy = gpu_dl.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    assert copy.layers[0].groups == 3 and copy.layers[0].get_config()["groups"] == 3
    x = rng.standard_normal((2, 7, 7, 6)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))


def test_grouped_conv_bad_input_names_the_layer_and_numbers(xp):
    with pytest.raises(ValueError, match=r"grp.*filters \(4\) must be divisible by groups \(3\)"):
        layers.Conv2D(4, 3, groups=3, name="grp")
    with pytest.raises(ValueError, match=r"grp.*groups must be a positive integer, got -2"):
        layers.Conv2D(4, 3, groups=-2, name="grp")
    with pytest.raises(ValueError, match=r"groups must be a positive integer, got 2.0"):
        layers.Conv1D(4, 3, groups=2.0)
    layer = layers.Conv2D(4, 3, groups=2, name="grp2")
    with pytest.raises(ValueError, match=r"grp2.*input's 5 channels must be divisible by groups \(2\)"):
        layer(xp.ones((1, 6, 6, 5), dtype="float32"))
    assert not layer.built
    layer(xp.ones((1, 6, 6, 6), dtype="float32"))
    with pytest.raises(ValueError, match=r"grp2.*built for 6 input channels"):
        layer(xp.ones((1, 6, 6, 8), dtype="float32"))
    with pytest.raises(ValueError, match=r"grp2.*rank 4"):
        layer(xp.ones((1, 6, 6), dtype="float32"))
