"""Dense, Dropout, Flatten and Input: forward against NumPy, backward against finite differences."""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


def weighted_sum_of_output(layer, x, w):
    """Scalar objective sum(layer(x) * w), so d/dy is w."""
    return (layer(x, training=True) * w).sum()


@pytest.mark.parametrize("batch,n_in,units", [(1, 1, 1), (3, 17, 33), (17, 3, 5)])
def test_dense_forward_matches_numpy(xp, rng, batch, n_in, units):
    layer = layers.Dense(units, activation="tanh", dtype="float64")
    x_host = rng.standard_normal((batch, n_in))
    y = layer(xp.asarray(x_host))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (n_in, units) and bias.shape == (units,)
    numpy.testing.assert_allclose(to_numpy(y), numpy.tanh(x_host @ kernel + bias), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid", "softmax"])
def test_dense_backward_matches_finite_differences(xp, rng, activation):
    layer = layers.Dense(5, activation=activation, bias_initializer="random_normal", dtype="float64")
    x = xp.asarray(rng.standard_normal((3, 7)))
    w = xp.asarray(rng.standard_normal((3, 5)))
    layer(x, training=True)
    dx = layer.backward(w)
    assert_gradient(lambda v: weighted_sum_of_output(layer, v, w), x, dx, rng, what="Dense input")
    for var in (layer.kernel, layer.bias):
        layer(x, training=True)
        layer.backward(w)
        grad = var.grad.copy()
        original = var.value.copy()

        def objective(value, var=var):
            var.value[...] = value
            return weighted_sum_of_output(layer, x, w)

        assert_gradient(objective, original.copy(), grad, rng, what=f"Dense {var.name}")
        var.value[...] = original


def test_dense_on_3d_input_applies_to_last_axis(xp, rng):
    layer = layers.Dense(4, dtype="float64")
    x_host = rng.standard_normal((2, 5, 3))
    y = layer(xp.asarray(x_host), training=True)
    kernel, bias = layer.get_weights()
    numpy.testing.assert_allclose(to_numpy(y), x_host @ kernel + bias, rtol=1e-12)
    w = xp.asarray(rng.standard_normal((2, 5, 4)))
    layer.backward(w)
    expected = numpy.einsum("bti,bto->io", x_host, to_numpy(w))
    numpy.testing.assert_allclose(to_numpy(layer.kernel.grad), expected, rtol=1e-12)
    assert layer.compute_output_shape((None, 5, 3)) == (None, 5, 4)


def test_frozen_dense_passes_gradient_but_writes_no_weight_gradient(xp, rng):
    layer = layers.Dense(3, dtype="float64")
    layer.trainable = False
    x = xp.asarray(rng.standard_normal((4, 2)))
    layer(x, training=True)
    dx = layer.backward(xp.ones((4, 3)))
    assert dx.shape == (4, 2)
    assert layer.kernel.grad is None and layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 2


def test_dense_rejects_bad_arguments_and_inputs(xp):
    for bad in (0, -3, 2.5, "8", True):
        with pytest.raises(ValueError, match="units"):
            layers.Dense(bad)
    with pytest.raises(ValueError, match="Unknown"):
        layers.Dense(3, activation="relux")
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments passed to Dense: \{'kernal_initializer'"):
        layers.Dense(3, kernal_initializer="zeros")
    layer = layers.Dense(3, name="head")
    layer(xp.ones((2, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"layer 'head'.*expected shape \(None, 4\), got \(2, 5\)"):
        layer(xp.ones((2, 5), dtype="float32"))
    assert layer(xp.ones((2, 2, 4), dtype="float32")).shape == (2, 2, 3)   # any rank, as Keras's Dense


def test_set_weights_is_all_or_nothing(xp):
    layer = layers.Dense(2, dtype="float64")
    layer(xp.ones((1, 3)))
    before = layer.get_weights()
    with pytest.raises(ValueError, match="expects 2 weight"):
        layer.set_weights([numpy.zeros((3, 2))])
    with pytest.raises(ValueError, match=r"weight 1 \('bias'\) has shape \(2,\)"):
        layer.set_weights([numpy.zeros((3, 2)), numpy.zeros((3,))])
    for b, a in zip(before, layer.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    layer.set_weights([numpy.ones((3, 2)), numpy.full(2, 0.5)])
    numpy.testing.assert_array_equal(layer.get_weights()[1], [0.5, 0.5])


def test_dropout_masks_and_scales_in_training_only(xp):
    layer = layers.Dropout(0.25, seed=3, dtype="float64")
    x = xp.ones((200, 50))
    numpy.testing.assert_array_equal(to_numpy(layer(x, training=False)), to_numpy(x))
    y = to_numpy(layer(x, training=True))
    kept = y != 0
    numpy.testing.assert_allclose(y[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.02
    dy = xp.asarray(numpy.arange(200 * 50, dtype=numpy.float64).reshape(200, 50))
    numpy.testing.assert_allclose(to_numpy(layer.backward(dy)), to_numpy(dy) * y)


def test_dropout_masks_repeat_under_a_seed(xp):
    # A layer's seed, or utils.set_random_seed for unseeded layers, fixes the masks on either device.
    from gpu_dl import utils
    x = xp.ones((4, 50), dtype=xp.float32)

    def masks(**kwargs):
        return to_numpy(layers.Dropout(0.5, **kwargs)(x, training=True))
    numpy.testing.assert_array_equal(masks(seed=3), masks(seed=3))
    assert not numpy.array_equal(masks(seed=3), masks(seed=4))
    utils.set_random_seed(11)
    first = masks()
    utils.set_random_seed(11)
    numpy.testing.assert_array_equal(masks(), first)


def test_dropout_noise_shape_shares_mask_across_axes(xp):
    layer = layers.Dropout(0.5, noise_shape=(None, 1, 6), seed=1, dtype="float64")
    y = to_numpy(layer(xp.ones((4, 5, 6)), training=True))
    assert (y == y[:, :1, :]).all()


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", None])
def test_dropout_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        layers.Dropout(rate)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_flatten_round_trips_gradient(xp, rng, data_format):
    layer = layers.Flatten(data_format=data_format, dtype="float64")
    x_host = rng.standard_normal((3, 2, 4, 5))
    x = xp.asarray(x_host)
    y = layer(x, training=True)
    expected = x_host.transpose(0, 2, 3, 1).reshape(3, -1) if data_format == "channels_first" else x_host.reshape(3, -1)
    numpy.testing.assert_array_equal(to_numpy(y), expected)
    w = xp.asarray(rng.standard_normal(y.shape))
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), x, layer.backward(w), rng, what="Flatten input")
    assert layer.compute_output_shape((None, 2, 4, 5)) == (None, 40)


def test_input_declares_shape():
    # As in Keras 3, Input gives a symbolic tensor whose shape has the batch axis first (None: any size).
    inp = layers.Input(shape=(8, 8, 1), name="pixels")
    assert inp.shape == (None, 8, 8, 1) and inp.dtype == "float32" and inp.name == "pixels"
    assert isinstance(inp._keras_history.operation, layers.InputLayer)
    assert layers.Input(shape=(3,), batch_size=4).shape == (4, 3)
    assert layers.Input(batch_shape=(None, 5, 2)).shape == (None, 5, 2)
    assert layers.Input(shape=(7,), dtype="int32").dtype == "int32"
    with pytest.raises(ValueError, match="shape"):
        layers.Input(shape=(0, 3))
    with pytest.raises(ValueError, match="shape"):
        layers.Input()


def test_reshape_forward_backward_and_errors(xp, rng):
    layer = layers.Reshape((4, -1))
    x = xp.asarray(rng.standard_normal((3, 2, 6)), dtype="float32")
    y = layer(x, training=True)
    assert y.shape == (3, 4, 3) and layer.compute_output_shape((None, 2, 6)) == (None, 4, 3)
    numpy.testing.assert_array_equal(to_numpy(y), to_numpy(x).reshape(3, 4, 3))
    dx = layer.backward(y * 2)
    numpy.testing.assert_array_equal(to_numpy(dx), to_numpy(x) * 2)
    assert layers.Reshape.from_config(layer.get_config()).target_shape == (4, -1)
    with pytest.raises(ValueError, match="do not divide"):
        layers.Reshape((5, -1)).compute_output_shape((None, 2, 6))
    with pytest.raises(ValueError, match="has 12 values per sample, target_shape \\(5, 2\\) has 10"):
        layers.Reshape((5, 2)).compute_output_shape((None, 2, 6))
    for bad in [(0, 3), (-1, -1), (-2,)]:
        with pytest.raises(ValueError, match="target_shape"):
            layers.Reshape(bad)
    with pytest.raises(TypeError, match="target_shape"):
        layers.Reshape("ab")


@pytest.mark.parametrize("cls, keras_name", [
    ("Dense", "dense"), ("Conv2D", "conv2d"), ("MaxPooling2D", "max_pooling2d"),
    ("GlobalAveragePooling2D", "global_average_pooling2d"), ("ZeroPadding2D", "zero_padding2d"), ("LSTM", "lstm"),
    ("SimpleRNN", "simple_rnn"), ("RandomFlip", "random_flip"), ("Bidirectional", "bidirectional"),
])
def test_default_names_are_keras_names(cls, keras_name):
    args = {"Dense": (2,), "Conv2D": (2, 3), "LSTM": (2,), "SimpleRNN": (2,),
            "Bidirectional": (layers.GRU(2),)}.get(cls, ())
    name = getattr(layers, cls)(*args).name
    assert name == keras_name or name.startswith(keras_name + "_"), name


def test_calling_build_yourself_builds_once(xp):
    # The Keras idiom layer.build(shape) before the first call: one set of weights, not two.
    for layer, shape in ((layers.Dense(3), (None, 4)), (layers.Conv2D(2, 3), (None, 5, 5, 1)),
                         (layers.LSTM(2), (None, 3, 4))):
        layer.build(shape)
        assert layer.built
        count = len(layer.weights)
        layer(xp.ones((2,) + shape[1:], dtype=xp.float32))
        assert len(layer.weights) == count, layer
        layer.set_weights(layer.get_weights())


def test_layers_without_shape_bound_weights_take_any_rank_once_built(xp):
    # As in Keras: Dropout, activations and Flatten hold nothing fixed; Dense only its last axis.
    for layer in (layers.Dropout(0.5), layers.Activation("relu"), layers.Flatten(), layers.Dense(2)):
        layer(xp.ones((2, 3, 4), dtype="float32"))
        assert layer(xp.ones((5, 4), dtype="float32")).shape[0] == 5
    dense = layers.Dense(2, name="head")
    dense(xp.ones((2, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"'head' \(Dense\) is incompatible: expected shape \(None, 4\), got "
                                         r"\(2, 3, 5\) \(only axis -1 must match\)"):
        dense(xp.ones((2, 3, 5), dtype="float32"))
