"""GroupNormalization: forward against a plain NumPy formula, backward against float64 finite differences for
the input, gamma and beta; groups=1 and groups=-1 (layer and instance normalization), axes, masks,
configs and bad arguments. Against Keras itself: tests/test_keras_oracle_group_normalization.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


def expected(x, groups, axis, gamma, beta, epsilon=1e-3):
    """Each sample's features along ``axis`` split into ``groups`` runs of consecutive features, each run
    normalized over itself and every other non-batch axis."""
    moved = numpy.moveaxis(x, axis, -1)
    n, channels = moved.shape[0], moved.shape[-1]
    y = numpy.empty_like(moved)
    size = channels // groups
    for g in range(groups):
        block = moved[..., g * size:(g + 1) * size].reshape(n, -1)
        mean = block.mean(axis=1)
        variance = ((block - mean[:, None]) ** 2).mean(axis=1)
        scaled = (moved[..., g * size:(g + 1) * size] - mean.reshape((n,) + (1,) * (moved.ndim - 1)))
        y[..., g * size:(g + 1) * size] = scaled / numpy.sqrt(variance.reshape((n,) + (1,) * (moved.ndim - 1))
                                                               + epsilon)
    return numpy.moveaxis(y * gamma + beta, -1, axis)


CASES = [((3, 8), 4, -1), ((1, 5, 6), 3, -1), ((2, 5, 6), -1, -1), ((2, 3, 4, 6), 2, -1), ((2, 6, 3, 5), 3, 1),
         ((3, 17, 4), 1, -1), ((2, 4, 33), 33, -1), ((3, 4, 6, 2), 2, -2)]


@pytest.mark.parametrize("shape,groups,axis", CASES)
def test_forward_and_gradients(xp, rng, shape, groups, axis):
    layer = layers.GroupNormalization(groups, axis=axis, gamma_initializer="random_normal",
                                      beta_initializer="random_normal", dtype="float64")
    x_host = rng.standard_normal(shape) * 3 + 1
    y = layer(xp.asarray(x_host), training=True)
    gamma, beta = layer.get_weights()
    numpy.testing.assert_allclose(to_numpy(y), expected(x_host, layer.groups, axis, gamma, beta),
                                  rtol=1e-12, atol=1e-12)
    w = xp.asarray(rng.standard_normal(shape))
    dx = layer.backward(w)
    x = xp.asarray(x_host)
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), x, dx, rng, what="GroupNormalization input")
    for variable in layer.weights:
        grad, value = variable.grad, variable.value.copy()

        def objective(v, variable=variable):
            variable.value[...] = v
            return (layer(x, training=True) * w).sum()
        assert_gradient(objective, value, grad, rng, what=f"GroupNormalization {variable.name}")
        variable.value[...] = value
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + shape[1:]


def test_one_group_is_layer_normalization_and_minus_one_is_instance_normalization(xp, rng):
    x = xp.asarray(rng.standard_normal((3, 4, 5, 6)))
    one, layer_norm = layers.GroupNormalization(1, dtype="float64"), layers.LayerNormalization([1, 2, 3],
                                                                                                 dtype="float64")
    numpy.testing.assert_allclose(to_numpy(one(x)), to_numpy(layer_norm(x)), rtol=1e-12, atol=1e-12)
    instance = layers.GroupNormalization(-1, dtype="float64")
    y = to_numpy(instance(x))
    assert instance.groups == 6 and instance.get_config()["groups"] == 6      # as Keras, once built
    numpy.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-12)
    numpy.testing.assert_allclose(y.var(axis=(1, 2)), 1, rtol=1e-2)         # variance / (variance + 1e-3)


def test_training_and_inference_agree_and_no_weight_moves(xp, rng):
    layer = layers.GroupNormalization(2)
    x = xp.asarray(rng.standard_normal((4, 6)).astype("float32"))
    numpy.testing.assert_array_equal(to_numpy(layer(x, training=True)), to_numpy(layer(x, training=False)))
    assert [w.trainable for w in layer.weights] == [True, True]


def test_trains_in_a_cnn_and_passes_a_mask_on(xp, rng):
    gpu_dl.utils.set_random_seed(2)
    model = gpu_dl.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(8, 3), layers.GroupNormalization(4),
                               layers.Activation("relu"), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((16, 6, 6, 2)).astype("float32")
    y = rng.integers(0, 3, 16)
    first = model.train_on_batch(x, y)
    for _ in range(30):
        last = model.train_on_batch(x, y)
    assert last < first
    masked = gpu_dl.Sequential([layers.Input((4, 6)), layers.Masking(), layers.GroupNormalization(3)])
    z = rng.standard_normal((2, 4, 6))
    z[0, 3:] = 0
    masked(xp.asarray(z))
    numpy.testing.assert_array_equal(to_numpy(masked.output_mask), [[True, True, True, False], [True] * 4])


def test_config_round_trips_and_summary_counts(capsys):
    layer = layers.GroupNormalization(3, axis=1, epsilon=0.01, center=False, gamma_regularizer="l2", name="gn")
    clone = layers.GroupNormalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = gpu_dl.Sequential([layers.Input((6, 5)), clone])
    assert [tuple(w.shape) for w in model.weights] == [(6,)] and model.count_params() == 6


@pytest.mark.parametrize("kwargs,match", [
    ({"groups": 0}, "groups must be a positive integer"),
    ({"groups": -2}, "groups must be a positive integer"),
    ({"groups": 2.0}, "groups must be a positive integer"),
    ({"groups": True}, "groups must be a positive integer"),
    ({"groups": 2, "axis": [1, 2]}, "axis must be one integer"),
    ({"groups": 2, "epsilon": -1.0}, "epsilon"),
])
def test_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.GroupNormalization(**kwargs)


def test_refuses_inputs_it_cannot_split_or_was_not_built_for(xp):
    with pytest.raises(ValueError, match=r"'gn': 6 features along axis -1 do not split into 4 groups"):
        layers.GroupNormalization(4, name="gn")(xp.ones((2, 6)))
    with pytest.raises(ValueError, match=r"'gn': 2 features along axis -1 do not split into 4 groups"):
        layers.GroupNormalization(4, name="gn")(xp.ones((2, 2)))
    with pytest.raises(ValueError, match="axis 0 names the batch axis"):
        layers.GroupNormalization(1, axis=0, name="gn")(xp.ones((2, 2)))
    with pytest.raises(ValueError, match="out of bounds"):
        layers.GroupNormalization(1, axis=3, name="gn")(xp.ones((2, 2)))
    layer = layers.GroupNormalization(2, name="gn")
    layer(xp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="Input of layer 'gn'.*incompatible"):
        layer(xp.ones((2, 3, 6)))
    with pytest.raises(ValueError, match="Input of layer 'gn'.*incompatible"):
        layer(xp.ones((2, 4)))
