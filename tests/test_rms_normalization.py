"""RMSNormalization: forward against plain NumPy, backward against float64 finite differences for the input and
the scale, axes (one, several, negative), a model that trains and reloads, and the errors. One body per
backend."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from gradcheck import assert_gradient
from toy_data import assert_trains_and_reloads

CASES = [(-1, (3, 5)), (-1, (1, 4, 17)), (1, (3, 1, 4)), ([1, 2], (3, 5, 2)), ([-1, -2], (2, 3, 4, 5)),
         (-2, (2, 33, 3))]


def _expected(x, axes, scale, epsilon):
    axes = tuple(a % x.ndim for a in axes)
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    return x / numpy.sqrt((x * x).mean(axis=axes, keepdims=True) + epsilon) * scale.reshape(shape)


@pytest.mark.parametrize("axis,shape", CASES, ids=[f"{a}-{s}" for a, s in CASES])
@pytest.mark.parametrize("epsilon", [1e-6, 0.5])
def test_forward_and_gradients(xp, rng, axis, shape, epsilon):
    layer = layers.RMSNormalization(axis=axis, epsilon=epsilon, dtype="float64")
    host = rng.standard_normal(shape)
    x = xp.asarray(host)
    layer(x)
    axes = axis if isinstance(axis, list) else [axis]
    assert layer.scale.shape == tuple(shape[a] for a in sorted(axes))
    assert layer.axis == sorted(axes)
    layer.set_weights([rng.standard_normal(layer.scale.shape)])
    y = layer(x, training=True)
    numpy.testing.assert_allclose(to_numpy(y), _expected(host, axes, layer.scale.numpy(), epsilon),
                                  rtol=1e-12, atol=1e-12)
    direction = xp.asarray(rng.standard_normal(shape))
    dx = layer.backward(direction)
    assert_gradient(lambda v: (layer(v) * direction).sum(), x, dx, rng, what="input")
    grad, original = layer.scale.grad, layer.scale.value.copy()

    def f(value):
        layer.scale.value[...] = value
        out = (layer(x) * direction).sum()
        layer.scale.value[...] = original
        return out
    assert_gradient(f, original.copy(), grad, rng, what="scale")


def test_float32_and_a_zero_sample(xp):
    layer = layers.RMSNormalization()
    y = layer(xp.zeros((2, 3), dtype="float32"))
    assert y.dtype == numpy.float32
    numpy.testing.assert_array_equal(to_numpy(y), numpy.zeros((2, 3)))


def test_in_a_model_it_trains_and_reloads(tmp_path, rng):
    gpu_dl.backend.set_random_seed(0)
    x = layers.Input((4, 6))
    h = layers.RMSNormalization(name="rms")(layers.Dense(6)(x))
    model = gpu_dl.Model(x, layers.Dense(3, activation="softmax")(layers.Flatten()(h)))
    assert model.get_layer("rms").count_params() == 6
    data, target = rng.standard_normal((32, 4, 6)).astype("float32"), rng.integers(0, 3, 32)
    assert_trains_and_reloads(model, data, target, tmp_path, load_model)
    assert not numpy.array_equal(model.get_layer("rms").scale.numpy(), numpy.ones(6))
    config = layers.RMSNormalization(axis=[1, 2], epsilon=1e-3).get_config()
    assert (config["axis"], config["epsilon"]) == ([1, 2], 1e-3)


def test_bad_arguments_and_inputs_name_the_layer(xp):
    for axis in (1.5, [], "x"):
        with pytest.raises(ValueError, match=r"RMSNormalization layer 'r'.*axis"):
            layers.RMSNormalization(axis=axis, name="r")
    with pytest.raises(ValueError, match=r"RMSNormalization layer 'r'.*epsilon"):
        layers.RMSNormalization(epsilon=-1.0, name="r")
    with pytest.raises(ValueError, match=r"RMSNormalization layer 'r'.*out of bounds"):
        layers.RMSNormalization(axis=3, name="r")(xp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"RMSNormalization layer 'r'.*batch axis"):
        layers.RMSNormalization(axis=0, name="r")(xp.ones((2, 3)))
    layer = layers.RMSNormalization(name="r")
    layer(xp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"layer 'r' \(RMSNormalization\) is incompatible"):
        layer(xp.ones((2, 4)))
