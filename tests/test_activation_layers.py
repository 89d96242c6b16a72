"""Activation layers: forward, backward (input and PReLU alpha), shapes and configs."""
import math

import numpy
import pytest

from gpu_dl import activations, backend, layers, optimizers
from gpu_dl.backend import to_numpy
from gpu_dl.models import Sequential
from gradcheck import assert_gradient
from toy_data import blobs


def np_sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


def np_gelu(x):
    return 0.5 * x * (1 + numpy.vectorize(math.erf)(x / math.sqrt(2)))


def away_from_zero(rng, shape):
    x = rng.standard_normal(shape)
    return numpy.where(numpy.abs(x) < 1e-2, 0.1, x)


@pytest.mark.parametrize("make,expected", [
    (lambda: layers.Activation("tanh", dtype="float64"), numpy.tanh),
    (lambda: layers.ReLU(max_value=1.5, dtype="float64"), lambda x: numpy.clip(x, 0, 1.5)),
    (lambda: layers.LeakyReLU(dtype="float64"), lambda x: numpy.where(x > 0, x, 0.3 * x)),
    (lambda: layers.LeakyReLU(alpha=0.1, dtype="float64"), lambda x: numpy.where(x > 0, x, 0.1 * x)),
    (lambda: layers.ELU(alpha=0.7, dtype="float64"), lambda x: numpy.where(x > 0, x, 0.7 * numpy.expm1(x))),
    (lambda: layers.Softmax(dtype="float64"), lambda x: numpy.exp(x) / numpy.exp(x).sum(-1, keepdims=True)),
    (lambda: layers.Activation("gelu", dtype="float64"), np_gelu),
    (lambda: layers.Activation("mish", dtype="float64"), lambda x: x * numpy.tanh(numpy.log1p(numpy.exp(x)))),
    (lambda: layers.Activation("soft_shrink", dtype="float64"),
     lambda x: numpy.sign(x) * numpy.maximum(numpy.abs(x) - 0.5, 0)),
    (lambda: layers.Activation("log_sigmoid", dtype="float64"), lambda x: numpy.log(np_sigmoid(x))),
    (lambda: layers.Activation("sparsemax", dtype="float64"), None),
])
def test_layer_forward_and_backward(xp, rng, make, expected):
    layer = make()
    x_host = away_from_zero(rng, (3, 17))
    x = xp.asarray(x_host)
    y = layer(x, training=True)
    if expected is not None:
        numpy.testing.assert_allclose(to_numpy(y), expected(x_host), rtol=1e-12, atol=1e-12)
    else:   # sparsemax: its own tests check it against a reference; here the layer sums each row to 1
        numpy.testing.assert_allclose(to_numpy(y).sum(-1), 1, rtol=1e-12)
    w = xp.asarray(rng.standard_normal((3, 17)))
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), x, layer.backward(w), rng,
                    what=type(layer).__name__)
    clone = type(layer).from_config(layer.get_config())
    numpy.testing.assert_allclose(to_numpy(clone(x)), to_numpy(y), rtol=1e-12)


@pytest.mark.parametrize("shared_axes,alpha_shape", [(None, (4, 5, 3)), ([1, 2], (1, 1, 3)), (3, (4, 5, 1))])
def test_prelu_alpha_shape_forward_and_gradients(xp, rng, shared_axes, alpha_shape):
    layer = layers.PReLU(alpha_initializer="random_uniform", shared_axes=shared_axes, dtype="float64")
    x_host = away_from_zero(rng, (2, 4, 5, 3))
    x = xp.asarray(x_host)
    y = layer(x, training=True)
    (alpha,) = layer.get_weights()
    assert alpha.shape == alpha_shape
    numpy.testing.assert_allclose(to_numpy(y), numpy.where(x_host >= 0, x_host, alpha * x_host), rtol=1e-12)
    w = xp.asarray(rng.standard_normal(x.shape))
    dx = layer.backward(w)
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), x, dx, rng, what="PReLU input")
    layer(x, training=True)
    layer.backward(w)
    dalpha = layer.alpha.grad.copy()

    def objective(a):
        layer.alpha.value[...] = a
        return (layer(x) * w).sum()

    assert_gradient(objective, layer.alpha.value.copy(), dalpha, rng, what="PReLU alpha")


def test_prelu_and_softmax_reject_bad_axes():
    with pytest.raises(ValueError, match="shared_axes"):
        layers.PReLU(shared_axes=[0])
    layer = layers.PReLU(shared_axes=[4])
    with pytest.raises(ValueError, match="shared axis 4"):
        layer.ensure_built((None, 3, 2))
    with pytest.raises(ValueError, match="axis 0 is not a feature axis"):
        layers.Softmax(axis=0).ensure_built((None, 3))


def test_final_softmax_layer_is_visible_for_fusion():
    assert layers.Softmax().activation.is_softmax
    assert layers.Activation("softmax").activation.is_softmax
    assert not layers.Softmax(axis=1).activation.is_softmax
    assert not layers.Activation("relu").activation.is_softmax


def test_activation_glu_reports_the_halved_shape_and_feeds_the_next_layer(xp, rng):
    backend.set_random_seed(0)
    model = Sequential([layers.Input((5, 8)), layers.Activation("glu", dtype="float64"),
                        layers.Dense(3, dtype="float64")])
    assert model.output_shape == (None, 5, 3)
    assert model.layers[0].compute_output_shape((None, 5, 8)) == (None, 5, 4)   # Keras 3 says (None, 5, 8)
    x_host = rng.standard_normal((2, 5, 8))
    x = xp.asarray(x_host)
    glu = model.layers[0]
    y = glu(x, training=True)
    numpy.testing.assert_allclose(to_numpy(y), x_host[..., :4] * np_sigmoid(x_host[..., 4:]), rtol=1e-12)
    w = xp.asarray(rng.standard_normal(y.shape))
    assert_gradient(lambda v: (glu(v, training=True) * w).sum(), x, glu.backward(w), rng, what="Activation glu")
    assert model.predict(x_host, verbose=0).shape == (2, 5, 3)


def test_activation_glu_refuses_odd_and_batch_axes():
    with pytest.raises(ValueError, match=r"'glu' splits axis -1 into two halves.*\(None, 7\)"):
        Sequential([layers.Input((7,)), layers.Activation("glu")])
    with pytest.raises(ValueError, match="would split the batch axis"):
        layers.Activation(activations.make("glu", axis=0)).ensure_built((None, 4))


@pytest.mark.parametrize("make", [lambda: layers.Dense(4, activation="glu"),
                                  lambda: layers.Conv2D(4, 3, activation="glu"),
                                  lambda: layers.LSTM(4, recurrent_activation="glu")],
                         ids=["Dense", "Conv2D", "LSTM"])
def test_layers_that_give_their_own_shape_refuse_glu(make):
    with pytest.raises(ValueError, match=r"activation 'glu' halves the axis.*Activation\('glu'\)"):
        make()


def test_threshold_needs_its_arguments_in_a_layer_too():
    with pytest.raises(TypeError, match="'threshold' needs 'threshold' and 'default_value'"):
        layers.Activation("threshold")
    layer = layers.Activation(activations.make("threshold", threshold=0.1, default_value=-1.0), dtype="float64")
    numpy.testing.assert_array_equal(layer(numpy.array([[0.1, 0.2, -3.0]])), [[-1.0, 0.2, -1.0]])


@pytest.mark.parametrize("name", ["gelu", "mish", "celu", "squareplus", "sparsemax", "hard_tanh"])
def test_dense_with_an_added_activation_forward_backward_and_config(xp, rng, name):
    backend.set_random_seed(0)
    layer = layers.Dense(5, activation=name, bias_initializer="random_normal", dtype="float64")
    x_host = rng.standard_normal((4, 3))
    x = xp.asarray(x_host)
    y = layer(x, training=True)
    kernel, bias = layer.get_weights()
    numpy.testing.assert_allclose(to_numpy(y), to_numpy(activations.get(name)(x_host @ kernel + bias)), rtol=1e-12)
    w = xp.asarray(rng.standard_normal(y.shape))
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), x, layer.backward(w), rng, what=f"Dense {name}")
    assert layer.get_config()["activation"] == name
    assert layers.Dense.from_config(layer.get_config()).activation.name == name


@pytest.mark.parametrize("name", ["gelu", "mish", "celu", "log_sigmoid"])
def test_a_model_with_an_added_activation_trains(xp, name):
    x, y = blobs(120)
    backend.set_random_seed(0)
    model = Sequential([layers.Input((2,)), layers.Dense(16, activation=name), layers.Activation(name),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
