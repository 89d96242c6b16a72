"""Activation layers: forward, backward (input and PReLU alpha), shapes and configs."""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


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
])
def test_layer_forward_and_backward(xp, rng, make, expected):
    layer = make()
    x_host = away_from_zero(rng, (3, 17))
    x = xp.asarray(x_host)
    y = layer(x, training=True)
    numpy.testing.assert_allclose(to_numpy(y), expected(x_host), rtol=1e-12, atol=1e-12)
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
