"""DepthwiseConv2D / 1D and SeparableConv2D / 1D, and the depthwise ops under them.

The expectation convolves each input channel with each of its filters through the plain tap-by-tap
convolution of test_conv_ops (one channel in, one out), placing the result at channel c * M + m.
"""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import convolution as conv, depthwise
from gradcheck import assert_gradient
from test_conv_layers import check_layer_gradients
from test_conv_ops import expected_conv


def expected_depthwise(x, kernel, strides, padding, dilation):
    """y[..., c * M + m] = conv(x[..., c], kernel[:, :, c, m])."""
    _, _, c, m = kernel.shape
    return numpy.concatenate([expected_conv(x[..., i:i + 1], kernel[:, :, i:i + 1, j:j + 1], strides, padding, dilation)
                              for i in range(c) for j in range(m)], axis=-1)


def same_pads(spatial, window, strides, dilation):
    return tuple(conv.same_padding(n, k, s, d) for n, k, s, d in zip(spatial, window, strides, dilation))


# (batch, H, W, C, M, kernel, strides, padding, dilation)
CASES = [
    (2, 9, 11, 3, 2, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    (3, 7, 5, 4, 1, (2, 3), (2, 1), ((0, 1), (1, 0)), (1, 1)),
    (1, 8, 9, 2, 3, (3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2)),
    (2, 17, 3, 1, 4, (3, 1), (2, 2), ((1, 1), (0, 0)), (1, 1)),
    (1, 1, 1, 5, 2, (1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),
]


@pytest.mark.parametrize("case", CASES)
def test_depthwise_ops_forward_and_gradients(xp, rng, case):
    n, h, w, c, m, window, strides, padding, dilation = case
    x_host, k_host = rng.standard_normal((n, h, w, c)), rng.standard_normal(window + (c, m))
    x, kernel = xp.asarray(x_host), xp.asarray(k_host)
    geometry = dict(strides=strides, padding=padding, dilation=dilation)
    y = depthwise.depthwise_conv2d_forward(x, kernel, **geometry)
    numpy.testing.assert_allclose(to_numpy(y), expected_depthwise(x_host, k_host, strides, padding, dilation),
                                  rtol=1e-10, atol=1e-10)
    weights = xp.asarray(rng.standard_normal(y.shape))
    dx = depthwise.depthwise_conv2d_backward_input(weights, kernel, x.shape, **geometry)
    dk = depthwise.depthwise_conv2d_backward_kernel(x, weights, kernel.shape, **geometry)
    assert_gradient(lambda v: (depthwise.depthwise_conv2d_forward(v, kernel, **geometry) * weights).sum(), x, dx, rng)
    assert_gradient(lambda v: (depthwise.depthwise_conv2d_forward(x, v, **geometry) * weights).sum(), kernel, dk,
                    rng, what="kernel")


def test_depthwise_is_the_grouped_convolution_with_one_channel_per_group(xp, rng):
    """Keras's layout: kernel (kh, kw, C, M) read as (kh, kw, 1, C * M) is the groups=C kernel."""
    x, kernel = xp.asarray(rng.standard_normal((2, 6, 7, 3))), xp.asarray(rng.standard_normal((3, 2, 3, 2)))
    numpy.testing.assert_allclose(to_numpy(depthwise.depthwise_conv2d_forward(x, kernel, strides=(2, 1))),
                                  to_numpy(conv.conv2d_forward(x, kernel.reshape(3, 2, 1, 6), strides=(2, 1),
                                                               groups=3)),
                                  rtol=1e-12, atol=1e-12)


def seeded(**kwargs):
    return dict(depthwise_initializer=gpu_dl.initializers.GlorotUniform(seed=1),
                bias_initializer=gpu_dl.initializers.RandomNormal(seed=2), dtype="float64", **kwargs)


@pytest.mark.parametrize("kwargs,shape", [
    ({"kernel_size": 3}, (2, 9, 11, 3)),
    ({"kernel_size": (2, 3), "strides": 2, "padding": "same", "depth_multiplier": 2}, (3, 7, 5, 3)),
    ({"kernel_size": 3, "dilation_rate": 2, "padding": "same", "depth_multiplier": 3, "use_bias": False},
     (1, 9, 8, 2)),
    ({"kernel_size": 1, "strides": 2, "depth_multiplier": 2}, (2, 5, 7, 1)),
])
@pytest.mark.parametrize("activation", ["relu", None])
def test_depthwise_conv2d_layer(xp, rng, kwargs, shape, activation):
    layer = layers.DepthwiseConv2D(**kwargs, **seeded(activation=activation))
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    m = kwargs.get("depth_multiplier", 1)
    kernel = layer.get_weights()[0]
    assert kernel.shape == layer.kernel_size + (shape[3], m) and layer.kernel.name == "kernel"
    padding = ((0, 0), (0, 0))
    if kwargs.get("padding") == "same":
        padding = same_pads(shape[1:3], layer.kernel_size, layer.strides, layer.dilation_rate)
    z = expected_depthwise(x_host, kernel, layer.strides, padding, layer.dilation_rate)
    if layer.use_bias:
        assert layer.get_weights()[1].shape == (shape[3] * m,)
        z = z + layer.get_weights()[1]
    numpy.testing.assert_allclose(to_numpy(y), numpy.maximum(z, 0) if activation else z, rtol=1e-10, atol=1e-10)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(layer, xp.asarray(x_host), rng)


@pytest.mark.parametrize("kwargs,shape", [
    ({"filters": 4, "kernel_size": 3}, (2, 9, 11, 3)),
    ({"filters": 5, "kernel_size": (2, 3), "strides": 2, "padding": "same", "depth_multiplier": 2}, (3, 7, 5, 3)),
    ({"filters": 1, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "depth_multiplier": 3,
      "use_bias": False}, (1, 9, 8, 2)),
])
@pytest.mark.parametrize("activation", ["tanh", None])
def test_separable_conv2d_layer(xp, rng, kwargs, shape, activation):
    layer = layers.SeparableConv2D(**kwargs, **seeded(activation=activation,
                                                      pointwise_initializer=gpu_dl.initializers.GlorotUniform(seed=3)))
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    m, f = kwargs.get("depth_multiplier", 1), kwargs["filters"]
    weights = layer.get_weights()
    assert [v.name for v in layer.weights] == ["depthwise_kernel", "pointwise_kernel"] + ["bias"] * layer.use_bias
    assert weights[0].shape == layer.kernel_size + (shape[3], m) and weights[1].shape == (1, 1, shape[3] * m, f)
    padding = ((0, 0), (0, 0))
    if kwargs.get("padding") == "same":
        padding = same_pads(shape[1:3], layer.kernel_size, layer.strides, layer.dilation_rate)
    z = expected_depthwise(x_host, weights[0], layer.strides, padding, layer.dilation_rate) @ weights[1][0, 0]
    if layer.use_bias:
        z = z + weights[2]
    numpy.testing.assert_allclose(to_numpy(y), numpy.tanh(z) if activation else z, rtol=1e-10, atol=1e-10)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(layer, xp.asarray(x_host), rng)


@pytest.mark.parametrize("cls", [layers.DepthwiseConv1D, layers.SeparableConv1D])
@pytest.mark.parametrize("kwargs,shape", [
    ({"kernel_size": 3, "depth_multiplier": 2}, (2, 17, 3)),
    ({"kernel_size": 2, "strides": 2, "padding": "same"}, (3, 9, 2)),
    ({"kernel_size": 3, "dilation_rate": 2, "padding": "same", "depth_multiplier": 3}, (1, 8, 1)),
])
def test_1d_layers_are_the_2d_layers_on_height_1(xp, rng, cls, kwargs, shape):
    extra = {"filters": 3} if cls is layers.SeparableConv1D else {}
    one = cls(**extra, **kwargs, activation="relu", **seeded())
    x_host = rng.standard_normal(shape)
    y = one(xp.asarray(x_host))
    two = getattr(layers, cls.__name__.replace("1D", "2D"))(
        **extra, **{k: (1, v) if k in ("kernel_size", "strides", "dilation_rate") else v for k, v in kwargs.items()},
        activation="relu", dtype="float64")
    two(xp.asarray(x_host[:, None]))
    two.set_weights([w[None] if w.ndim > 1 else w for w in one.get_weights()])   # kernels gain a height of 1
    assert one.get_weights()[0].shape == (kwargs["kernel_size"], shape[2], kwargs.get("depth_multiplier", 1))
    numpy.testing.assert_allclose(to_numpy(y), to_numpy(two(xp.asarray(x_host[:, None])))[:, 0], rtol=1e-12)
    assert tuple(y.shape)[1:] == one.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(one, xp.asarray(x_host), rng)


@pytest.mark.parametrize("cls", [layers.DepthwiseConv2D, layers.SeparableConv2D])
def test_channels_first(xp, rng, cls):
    extra = {"filters": 4} if cls is layers.SeparableConv2D else {}
    first = cls(**extra, kernel_size=3, padding="same", depth_multiplier=2, data_format="channels_first",
                dtype="float64")
    last = cls(**extra, kernel_size=3, padding="same", depth_multiplier=2, dtype="float64")
    x = rng.standard_normal((2, 3, 6, 5))
    first(xp.asarray(x))
    last(xp.asarray(x.transpose(0, 2, 3, 1)))
    last.set_weights(first.get_weights())
    numpy.testing.assert_allclose(to_numpy(first(xp.asarray(x))),
                                  to_numpy(last(xp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2),
                                  rtol=1e-12)
    check_layer_gradients(first, xp.asarray(x), rng)


def test_frozen_separable_layer_still_passes_the_input_gradient(xp, rng):
    layer = layers.SeparableConv2D(2, 3, dtype="float64")
    x = xp.asarray(rng.standard_normal((1, 5, 5, 2)))
    layer(x)
    layer.trainable = False
    layer(x, training=True)
    dx = layer.backward(xp.ones((1, 3, 3, 2)))
    assert dx.shape == x.shape and all(v.grad is None for v in layer.weights)


def test_configs_round_trip(rng):
    model = gpu_dl.Sequential([
        layers.Input((9, 9, 2)),
        layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu"),
        layers.SeparableConv2D(3, (3, 2), depth_multiplier=2, use_bias=False),
        layers.Reshape((3 * 4, 3)),
        layers.DepthwiseConv1D(2, depth_multiplier=3),
        layers.SeparableConv1D(2, 3, padding="same", activation="tanh"),
    ])
    copy = gpu_dl.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    x = rng.standard_normal((2, 9, 9, 2)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))
    assert [layer.get_config() for layer in copy.layers[:2]] == [
        dict(layer.get_config(), name=c.name) for layer, c in zip(model.layers[:2], copy.layers[:2])]
    assert copy.output_shape == (None, 11, 2)


def test_training_reduces_the_loss(rng):
    model = gpu_dl.Sequential([layers.Input((8, 8, 2)),
                               layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu"),
                               layers.SeparableConv2D(4, 3, activation="relu"), layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((32, 8, 8, 2)).astype("float32")
    y = x[:, 2:6, 2:6, 0].mean(axis=(1, 2))[:, None]
    history = model.fit(x, y, epochs=30, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


@pytest.mark.parametrize("make,match", [
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0, name="dw"), r"dw.*depth_multiplier must be a positive"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=-1), "depth_multiplier"),
    (lambda: layers.DepthwiseConv1D(3, depth_multiplier=1.5), "depth_multiplier"),
    (lambda: layers.SeparableConv2D(4, 3, depth_multiplier=0, name="sep"), r"sep.*depth_multiplier"),
    (lambda: layers.SeparableConv1D(0, 3), "filters"),
    (lambda: layers.DepthwiseConv2D(0), "kernel_size"),
    (lambda: layers.DepthwiseConv2D(3, strides=(1, 0)), "strides"),
    (lambda: layers.DepthwiseConv1D(3, padding="causal"), "padding"),
    (lambda: layers.SeparableConv2D(2, 3, padding="full"), "padding"),
    (lambda: layers.SeparableConv2D(2, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.DepthwiseConv2D(3, data_format="nhwc"), "data_format"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("cls", [layers.DepthwiseConv2D, layers.SeparableConv2D])
def test_bad_inputs_name_the_layer(xp, cls):
    layer = cls(*((4,) if cls is layers.SeparableConv2D else ()), 3, name="odd")
    with pytest.raises(ValueError, match=r"odd.*rank 4"):
        layer(xp.ones((2, 8, 8), dtype="float32"))
    assert not layer.built
    with pytest.raises(ValueError, match=r"odd.*known number of input channels"):
        layer.build((None, 8, 8, None))
    layer(xp.ones((2, 8, 8, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"odd.*built for 3 input channels"):
        layer(xp.ones((2, 8, 8, 5), dtype="float32"))
    with pytest.raises(ValueError, match=r"odd.*height window 3 is larger"):
        layer(xp.ones((2, 2, 8, 3), dtype="float32"))
