"""Weight gradients summed over an input's leading axes (normalization gamma/beta/scale, Dense and EinsumDense
bias), in float32, against float64 NumPy sums: with fewer leading rows than the two-stage split on CuPy arrays
(4096) and with more, leaving rows over after the parts (4 x 1100 = 4400 rows: 66 parts of 66, 44 left)."""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy

SHAPES = [(3, 5, 8), (4, 1100, 8)]


def _check(got, want, rows):
    # float32 sums of `rows` terms of size about 1
    numpy.testing.assert_allclose(to_numpy(got).astype(numpy.float64), want, rtol=1e-4, atol=1e-5 * rows)


def _run(layer, xp, host_x, host_dy):
    layer(xp.asarray(host_x.astype(numpy.float32)), training=True)
    layer.backward(xp.asarray(host_dy.astype(numpy.float32)))


def _data(rng, shape):
    return rng.standard_normal(shape) * 2 + 0.5, rng.standard_normal(shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_normalization_gamma_beta(xp, rng, shape):
    x, dy = _data(rng, shape)
    layer = layers.LayerNormalization()
    _run(layer, xp, x, dy)
    xhat = (x - x.mean(-1, keepdims=True)) / numpy.sqrt(x.var(-1, keepdims=True) + 1e-3)
    rows = shape[0] * shape[1]
    _check(layer.gamma.grad, (dy * xhat).sum(axis=(0, 1)), rows)
    _check(layer.beta.grad, dy.sum(axis=(0, 1)), rows)


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_normalization_rms_scaling_gamma(xp, rng, shape):
    x, dy = _data(rng, shape)
    with pytest.warns(UserWarning):
        layer = layers.LayerNormalization(rms_scaling=True)
    _run(layer, xp, x, dy)
    scaled = x / numpy.sqrt(x.var(-1, keepdims=True) + 1e-3)
    _check(layer.gamma.grad, (dy * scaled).sum(axis=(0, 1)), shape[0] * shape[1])


@pytest.mark.parametrize("shape", SHAPES)
def test_rms_normalization_scale(xp, rng, shape):
    x, dy = _data(rng, shape)
    layer = layers.RMSNormalization()
    _run(layer, xp, x, dy)
    scaled = x / numpy.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
    _check(layer.scale.grad, (dy * scaled).sum(axis=(0, 1)), shape[0] * shape[1])


@pytest.mark.parametrize("shape", [(2, 3, 4, 8), (4, 40, 30, 8)])
def test_group_normalization_gamma_beta(xp, rng, shape):
    x, dy = _data(rng, shape)
    layer = layers.GroupNormalization(groups=2)
    _run(layer, xp, x, dy)
    grouped = x.reshape(shape[:3] + (2, 4))
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    var = grouped.var(axis=(1, 2, 4), keepdims=True)
    xhat = ((grouped - mean) / numpy.sqrt(var + 1e-3)).reshape(shape)
    rows = shape[0] * shape[1] * shape[2]
    _check(layer.gamma.grad, (dy * xhat).sum(axis=(0, 1, 2)), rows)
    _check(layer.beta.grad, dy.sum(axis=(0, 1, 2)), rows)


@pytest.mark.parametrize("shape", SHAPES)
def test_dense_bias(xp, rng, shape):
    x, dy = _data(rng, shape[:2] + (3,))[0], rng.standard_normal(shape)
    layer = layers.Dense(shape[-1])
    _run(layer, xp, x, dy)
    _check(layer.bias.grad, dy.sum(axis=(0, 1)), shape[0] * shape[1])


@pytest.mark.parametrize("shape", SHAPES)
def test_einsum_dense_bias(xp, rng, shape):
    x, dy = rng.standard_normal(shape[:2] + (3,)), rng.standard_normal(shape[:2] + (2, 4))
    layer = layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 4), bias_axes="de")
    _run(layer, xp, x, dy)
    assert layer.bias.grad.shape == (2, 4)
    _check(layer.bias.grad, dy.sum(axis=(0, 1)), shape[0] * shape[1])
