"""Conv2D, the pooling layers and the padding layers: shapes, forward, backward, configs and bad input."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient
from test_conv_ops import expected_conv
from test_pool_ops import expected_pool


def weighted_sum(layer, x, w):
    return (layer(x, training=True) * w).sum()


def check_layer_gradients(layer, x, rng):
    """Finite differences of sum(layer(x) * w) for the input and every trainable weight."""
    y = layer(x, training=True)
    w = gpu_dl.backend.array_module(y).asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)
    assert_gradient(lambda v: weighted_sum(layer, v, w), x, dx, rng, what=f"{layer.name} input")
    for var in layer.trainable_weights:
        layer(x, training=True)
        layer.backward(w)
        grad, original = var.grad.copy(), var.value.copy()

        def objective(value, var=var):
            var.value[...] = value
            return weighted_sum(layer, x, w)

        assert_gradient(objective, original.copy(), grad, rng, what=f"{layer.name} {var.name}")
        var.value[...] = original


@pytest.mark.parametrize("kwargs,shape", [
    ({"filters": 5, "kernel_size": 3}, (2, 17, 17, 3)),
    ({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (3, 17, 33, 3)),
    ({"filters": 33, "kernel_size": (2, 5), "strides": (1, 3), "padding": "same"}, (1, 9, 11, 2)),
    ({"filters": 3, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}, (2, 17, 17, 1)),
    ({"filters": 2, "kernel_size": 1, "strides": 3}, (1, 33, 17, 17)),
])
@pytest.mark.parametrize("activation", ["relu", "tanh", None])
def test_conv2d_layer_forward_and_gradients(xp, rng, kwargs, shape, activation):
    # seeded weights: with unseeded ones, a relu input within a finite-difference step of 0 failed about 1 run in 50
    layer = layers.Conv2D(**kwargs, activation=activation, kernel_initializer=gpu_dl.initializers.GlorotUniform(seed=1),
                          bias_initializer=gpu_dl.initializers.RandomNormal(seed=2), dtype="float64")
    x_host = rng.standard_normal(shape)
    x = xp.asarray(x_host)
    y = layer(x)
    kernel, bias = layer.get_weights()
    assert kernel.shape == layer.kernel_size + (shape[3], kwargs["filters"]) and bias.shape == (kwargs["filters"],)
    padding = ((0, 0), (0, 0))
    if kwargs.get("padding") == "same":
        padding = tuple(gpu_dl.ops.convolution.same_padding(n, k, s, d) for n, k, s, d in
                        zip(shape[1:3], layer.kernel_size, layer.strides, layer.dilation_rate))
    z = expected_conv(x_host, kernel, layer.strides, padding, layer.dilation_rate) + bias
    want = {"relu": numpy.maximum(z, 0), "tanh": numpy.tanh(z), None: z}[activation]
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10, atol=1e-10)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(layer, x, rng)


def test_conv2d_same_padding_keeps_ceil_of_size_over_stride(xp):
    layer = layers.Conv2D(2, 3, strides=2, padding="same")
    assert layer.compute_output_shape((None, 28, 28, 3)) == (None, 14, 14, 2)
    assert layer.compute_output_shape((None, 27, 5, 3)) == (None, 14, 3, 2)
    valid = layers.Conv2D(2, 5, strides=3)
    assert valid.compute_output_shape((None, 32, 32, 3)) == (None, 10, 10, 2)   # (32 - 5 + 0) / 3 + 1


def test_conv2d_channels_first_is_channels_last_transposed(xp, rng):
    first = layers.Conv2D(4, 3, padding="same", data_format="channels_first", dtype="float64")
    last = layers.Conv2D(4, 3, padding="same", dtype="float64")
    x = rng.standard_normal((2, 3, 7, 9))
    first(xp.asarray(x))
    last(xp.asarray(x.transpose(0, 2, 3, 1)))
    last.set_weights(first.get_weights())
    y_first = first(xp.asarray(x), training=True)
    y_last = last(xp.asarray(x.transpose(0, 2, 3, 1)))
    assert first.compute_output_shape((None, 3, 7, 9)) == (None, 4, 7, 9)
    numpy.testing.assert_allclose(to_numpy(y_first), to_numpy(y_last).transpose(0, 3, 1, 2), rtol=1e-12)
    check_layer_gradients(first, xp.asarray(x), rng)


@pytest.mark.parametrize("cls", [layers.Conv2D, layers.MaxPooling2D, layers.GlobalAveragePooling2D,
                                 layers.ZeroPadding2D, layers.ReflectionPadding2D])
def test_data_format_is_case_insensitive_as_in_keras(xp, cls):
    args = (2, 3) if cls is layers.Conv2D else ()
    layer = cls(*args, data_format="Channels_First")
    assert layer.data_format == "channels_first" and layer.get_config()["data_format"] == "channels_first"
    y = layer(xp.ones((1, 3, 6, 7), dtype="float32"))
    assert tuple(y.shape) == layer.compute_output_shape((1, 3, 6, 7))


@pytest.mark.parametrize("cls,kind", [(layers.MaxPooling2D, "max"), (layers.AveragePooling2D, "avg")])
@pytest.mark.parametrize("kwargs,shape", [
    ({}, (2, 17, 17, 3)),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (3, 17, 33, 2)),
    ({"pool_size": (2, 3), "strides": 1, "padding": "same"}, (1, 9, 11, 4)),
    ({"pool_size": 2, "padding": "same"}, (2, 3, 5, 1)),
])
def test_pooling_layers_forward_and_gradients(xp, rng, cls, kind, kwargs, shape):
    if kind == "avg" and "pool_size" not in kwargs:
        kwargs = {"pool_size": 2, **kwargs}     # as Keras 3.15's, the average poolings have no default pool_size
    layer = cls(**kwargs, dtype="float64")
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    padding = ((0, 0), (0, 0))
    if kwargs.get("padding") == "same":
        padding = tuple(gpu_dl.ops.convolution.same_padding(n, k, s) for n, k, s in
                        zip(shape[1:3], layer.pool_size, layer.strides))
    want = expected_pool(x_host, layer.pool_size, layer.strides, padding, kind)[0]
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-12)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(layer, xp.asarray(x_host), rng)


@pytest.mark.parametrize("cls", [layers.GlobalMaxPooling2D, layers.GlobalAveragePooling2D])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_pooling_layers(xp, rng, cls, keepdims, data_format):
    layer = cls(keepdims=keepdims, data_format=data_format, dtype="float64")
    x_host = rng.standard_normal((3, 5, 7, 4))
    y = to_numpy(layer(xp.asarray(x_host)))
    axes = (2, 3) if data_format == "channels_first" else (1, 2)
    reduce = numpy.max if cls is layers.GlobalMaxPooling2D else numpy.mean
    numpy.testing.assert_allclose(y, reduce(x_host, axis=axes, keepdims=keepdims), rtol=1e-12)
    assert y.shape[1:] == layer.compute_output_shape((None,) + x_host.shape[1:])[1:]
    check_layer_gradients(layer, xp.asarray(x_host), rng)


@pytest.mark.parametrize("padding,pairs", [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))),
                                           (((1, 2), (3, 0)), ((1, 2), (3, 0)))])
def test_zero_padding(xp, rng, padding, pairs):
    layer = layers.ZeroPadding2D(padding, dtype="float64")
    x_host = rng.standard_normal((2, 4, 5, 3))
    y = layer(xp.asarray(x_host))
    numpy.testing.assert_array_equal(to_numpy(y), numpy.pad(x_host, ((0, 0),) + pairs + ((0, 0),)))
    assert layer.padding == pairs
    assert layer.compute_output_shape((None, 4, 5, 3)) == (None, 4 + sum(pairs[0]), 5 + sum(pairs[1]), 3)
    check_layer_gradients(layer, xp.asarray(x_host), rng)


@pytest.mark.parametrize("padding", [1, (2, 1), ((1, 3), (0, 2))])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_reflection_padding_mirrors_without_repeating_the_edge(xp, rng, padding, data_format):
    layer = layers.ReflectionPadding2D(padding, data_format=data_format, dtype="float64")
    x_host = rng.standard_normal((2, 3, 4, 5) if data_format == "channels_first" else (2, 4, 5, 3))
    pairs = layer.padding
    widths = ((0, 0), (0, 0)) + pairs if data_format == "channels_first" else ((0, 0),) + pairs + ((0, 0),)
    y = layer(xp.asarray(x_host))
    numpy.testing.assert_array_equal(to_numpy(y), numpy.pad(x_host, widths, mode="reflect"))
    if data_format == "channels_last" and pairs[0][0] == 1:
        numpy.testing.assert_array_equal(to_numpy(y)[:, 0, pairs[1][0]:pairs[1][0] + 5], x_host[:, 1])
    check_layer_gradients(layer, xp.asarray(x_host), rng)


def test_summary_shows_the_size_formula_shapes(capsys):
    model = gpu_dl.Sequential([
        layers.Input((32, 32, 3)),
        layers.ZeroPadding2D(2),
        layers.Conv2D(32, 5, strides=1, activation="relu"),                  # (36 - 5)/1 + 1 = 32
        layers.MaxPooling2D(2),                                             # 16
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),  # ceil(16/2) = 8
        layers.ReflectionPadding2D(1),                                      # 10
        layers.Conv2D(64, 3),                                               # (10 - 3)/1 + 1 = 8
        layers.AveragePooling2D(3, strides=2),                              # (8 - 3)/2 + 1 = 3
        layers.GlobalAveragePooling2D(),
        layers.Dense(10, activation="softmax"),
    ])
    model.summary()
    text = capsys.readouterr().out
    for shape in ["(None, 36, 36, 3)", "(None, 32, 32, 32)", "(None, 16, 16, 32)", "(None, 8, 8, 64)",
                  "(None, 10, 10, 64)", "(None, 3, 3, 64)", "(None, 64)", "(None, 10)"]:
        assert shape in text, shape
    assert f"{5 * 5 * 3 * 32 + 32:,}" in text and f"{3 * 3 * 32 * 64 + 64:,}" in text


def test_unknown_height_and_width_give_a_fully_convolutional_model(xp, rng):
    """Input((None, None, C)), as in Keras: output sizes are unknown until a batch comes, any size then runs."""
    def stack():
        return [layers.Conv2D(4, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(3, strides=2, padding="same"),
                layers.Conv2D(5, 2, strides=2), layers.AveragePooling2D(2, strides=1, padding="same"),
                layers.GlobalAveragePooling2D()]
    model = gpu_dl.Sequential([layers.Input((None, None, 2))] + stack())
    assert model.layers[1].compute_output_shape((None, None, None, 4)) == (None, None, None, 4)
    assert model.output_shape == (None, 5)
    assert layers.Conv2D(3, 3, strides=2).compute_output_shape((None, None, 9, 1)) == (None, None, 4, 3)
    for size in [(9, 9), (17, 12)]:
        x = rng.standard_normal((2,) + size + (2,)).astype("float32")
        fixed = gpu_dl.Sequential([layers.Input(size + (2,))] + stack())
        fixed.set_weights(model.get_weights())
        numpy.testing.assert_allclose(to_numpy(model.predict(x, verbose=0)), to_numpy(fixed.predict(x, verbose=0)),
                                      rtol=1e-6)
    with pytest.raises(ValueError, match=r"Conv2D layer .* width window 2 is larger"):
        model.predict(numpy.ones((1, 9, 2, 2), "float32"), verbose=0)


def test_kernel_larger_than_padded_input_quotes_the_formula():
    model = gpu_dl.Sequential([layers.Input((4, 6, 1)), layers.MaxPooling2D(2)])
    with pytest.raises(ValueError) as caught:
        model.add(layers.Conv2D(8, 3, strides=2, name="too_big"))
    message = str(caught.value)
    assert "too_big" in message and "height" in message and "(2 - 3 + 0) // 2 + 1 = 0" in message
    assert len(model.layers) == 1
    with pytest.raises(ValueError, match=r"dilated by 2 \(spans 5\)"):
        layers.Conv2D(1, 3, dilation_rate=2).compute_output_shape((None, 4, 9, 1))
    with pytest.raises(ValueError, match="pool"):
        layers.MaxPooling2D(3, name="pool").compute_output_shape((None, 2, 9, 1))


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv2D(0, 3), "filters"),
    (lambda: layers.Conv2D(-4, 3), "filters"),
    (lambda: layers.Conv2D(4, 0), "kernel_size"),
    (lambda: layers.Conv2D(4, (3, -1)), "kernel_size"),
    (lambda: layers.Conv2D(4, 3, strides=0), "strides"),
    (lambda: layers.Conv2D(4, 3, padding="full"), "padding"),
    (lambda: layers.Conv2D(4, 3, padding="causal"), "padding"),
    (lambda: layers.Conv2D(4, 3, dilation_rate=0), "dilation_rate"),
    (lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: layers.Conv2D(4, 3, groups=3), "groups"),
    (lambda: layers.Conv2D(4, 3, groups=0), "groups"),
    (lambda: layers.Conv2D(4, 3, data_format="nhwc"), "data_format"),
    (lambda: layers.MaxPooling2D(0), "pool_size"),
    (lambda: layers.MaxPooling2D(2, strides=(1, 0)), "strides"),
    (lambda: layers.AveragePooling2D(2, padding="reflect"), "padding"),
    (lambda: layers.ZeroPadding2D(-1), "padding"),
    (lambda: layers.ZeroPadding2D((1, 2, 3)), "padding"),
    (lambda: layers.ReflectionPadding2D(((1, 2), (1,))), "padding"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_inputs_name_the_layer(xp):
    conv = layers.Conv2D(4, 3, name="conv_a")
    with pytest.raises(ValueError, match=r"conv_a.*rank 4"):
        conv(xp.ones((2, 8, 8), dtype="float32"))
    assert not conv.built
    conv(xp.ones((2, 8, 8, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"conv_a.*3 input channels"):
        conv(xp.ones((2, 8, 8, 5), dtype="float32"))
    with pytest.raises(ValueError, match=r"pool_b.*rank 4"):
        layers.MaxPooling2D(name="pool_b")(xp.ones((2, 8), dtype="float32"))
    with pytest.raises(ValueError, match=r"mirror.*smaller than the input height 2"):
        layers.ReflectionPadding2D(2, name="mirror")(xp.ones((1, 2, 5, 1), dtype="float32"))


def test_configs_round_trip_through_sequential(rng):
    model = gpu_dl.Sequential([
        layers.Input((9, 9, 2)),
        layers.Conv2D(3, (3, 2), strides=(2, 1), padding="same", activation="relu", use_bias=False),
        layers.ZeroPadding2D(((1, 0), (0, 2))),
        layers.ReflectionPadding2D(1),
        layers.MaxPooling2D(2, strides=1, padding="same"),
        layers.AveragePooling2D((1, 2)),
        layers.GlobalMaxPooling2D(keepdims=True),
        layers.Flatten(),
    ])
    copy = gpu_dl.Sequential.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    x = rng.standard_normal((2, 9, 9, 2)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))
    conv = copy.layers[0]
    assert (conv.kernel_size, conv.strides, conv.padding, conv.use_bias) == ((3, 2), (2, 1), "same", False)


def test_training_step_skips_the_first_layers_input_gradient(monkeypatch, rng):
    """Nothing needs the gradient of the data: a train step does not compute it; Sequential.backward still can."""
    from gpu_dl.layers import conv as conv_layer
    calls = []
    original = conv_layer.conv2d_backward_input
    monkeypatch.setattr(conv_layer, "conv2d_backward_input", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = gpu_dl.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                               layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((4, 6, 6, 2)).astype("float32")
    model.train_on_batch(x, rng.integers(0, 3, 4))
    assert len(calls) == 1                               # the second Conv2D's, not the first's
    assert all(v.grad is not None for v in model.trainable_weights)
    assert all(layer.input_gradient_wanted for layer in model.layers)
    model(x, training=True)
    dx = model.backward(numpy.ones((4, 3), dtype="float32"))
    assert dx.shape == x.shape and len(calls) == 3


@pytest.mark.parametrize("make", [
    lambda act: layers.Conv2D(6, 3, padding="same", activation=act,
                              kernel_initializer=gpu_dl.initializers.GlorotUniform(seed=3),
                              bias_initializer=gpu_dl.initializers.RandomNormal(seed=4)),
    lambda act: layers.Conv2D(6, (3, 2), strides=2, groups=2, activation=act,
                              kernel_initializer=gpu_dl.initializers.GlorotUniform(seed=3),
                              bias_initializer=gpu_dl.initializers.RandomNormal(seed=4)),
    lambda act: layers.SeparableConv2D(5, 3, activation=act,
                                       depthwise_initializer=gpu_dl.initializers.GlorotUniform(seed=3),
                                       pointwise_initializer=gpu_dl.initializers.GlorotUniform(seed=5),
                                       bias_initializer=gpu_dl.initializers.RandomNormal(seed=4)),
], ids=["conv2d", "grouped", "separable"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", None])
def test_training_keeps_the_preactivation_only_where_the_gradient_reads_it(xp, rng, make, activation):
    """Whether the fused kernel writes z (tanh's, sigmoid's and relu's gradients come from y) changes no
    result: outputs and every gradient are the same bits as with z kept (keep_preactivation), and match NumPy."""
    x_host = rng.standard_normal((3, 9, 7, 4)).astype("float32")
    w = rng.standard_normal(make(activation).compute_output_shape(x_host.shape)).astype("float32")

    def run(layer, array_module):
        y = layer(array_module.asarray(x_host), training=True)
        saved_z = layer._saved[-3]
        dx = layer.backward(array_module.asarray(w))
        return saved_z, [to_numpy(a) for a in (y, dx, *(v.grad for v in layer.trainable_weights))]

    plain, keeping = make(activation), make(activation)
    keeping.keep_preactivation = True
    z, results = run(plain, xp)
    kept_z, kept_results = run(keeping, xp)
    assert kept_z is not None
    if xp is not numpy and activation in ("tanh", "sigmoid", "relu"):
        assert z is None                   # the kernel wrote y alone
    else:
        assert z is not None
    for got, want in zip(results, kept_results):
        numpy.testing.assert_array_equal(got, want)
    previous = gpu_dl.backend.get_device()
    gpu_dl.backend.set_device("cpu")
    try:
        _, on_numpy = run(make(activation), numpy)
    finally:
        gpu_dl.backend.set_device(previous)
    for got, want in zip(results, on_numpy):
        numpy.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * numpy.abs(want).max())
    plain(xp.asarray(x_host))              # inference keeps nothing
    assert plain._saved is None


@pytest.mark.parametrize("activation,training,keep,want_z", [
    ("relu", True, False, False), ("relu6", True, False, False), ("leaky_relu", True, False, False),
    (gpu_dl.activations.make("relu", max_value=2.0, threshold=0.5), True, False, False),
    (gpu_dl.activations.make("relu", negative_slope=0.1), True, False, True),
    (gpu_dl.activations.make("relu", threshold=-1.0), True, False, True),
    ("elu", True, False, True), ("relu", False, False, False), ("relu", True, True, True),
])
def test_the_fused_forward_is_asked_for_z_only_where_the_gradient_reads_it(xp, rng, monkeypatch, activation,
                                                                          training, keep, want_z):
    """Conv2D asks its fused forward for z in training only where the activation's gradient reads its input
    (relu with a negative slope or threshold, elu) or a model keeps it; relu, relu6, leaky_relu and relu
    with max_value and a threshold >= 0 take their gradient from y."""
    from gpu_dl.layers import conv
    asked = []

    def spy(*args, **kwargs):
        asked.append(kwargs["want_z"])
        return real(*args, **kwargs)
    real = conv.conv2d_bias_activation
    monkeypatch.setattr(conv, "conv2d_bias_activation", spy)
    layer = layers.Conv2D(4, 3, activation=activation)
    layer.keep_preactivation = keep
    x = xp.asarray(rng.standard_normal((2, 6, 5, 3)).astype("float32"))
    layer(x, training=training)
    assert asked == [want_z]
    if training:
        dx = layer.backward(xp.ones((2, 4, 3, 4), dtype="float32"))
        assert dx.shape == x.shape
