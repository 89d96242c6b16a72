"""UnitNormalization: forward against NumPy's formula, backward against float64 finite differences, zero slices,
axes, masks, configs and bad arguments. Against Keras itself: tests/test_keras_oracle_shape_layers.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


def expected(x, axes):
    return x / numpy.sqrt((x * x).sum(axis=axes, keepdims=True))


@pytest.mark.parametrize("shape,axis,axes", [((3, 17), -1, (1,)), ((1, 1), -1, (1,)), ((2, 5, 3), 1, (1,)),
                                             ((2, 5, 3), [1, 2], (1, 2)), ((4, 3, 2, 5), (-3, -1), (1, 3)),
                                             ((5, 3), 0, (0,))])
def test_forward_and_backward(xp, rng, shape, axis, axes):
    layer = layers.UnitNormalization(axis=axis, dtype="float64")
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host), training=True)
    numpy.testing.assert_allclose(to_numpy(y), expected(x_host, axes), rtol=1e-13, atol=1e-15)
    numpy.testing.assert_allclose((to_numpy(y) ** 2).sum(axis=axes), 1.0, rtol=1e-13)
    w = xp.asarray(rng.standard_normal(shape))
    dx = layer.backward(w)
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), xp.asarray(x_host), dx, rng,
                    what=f"UnitNormalization(axis={axis})")
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + shape[1:]


def test_a_zero_slice_stays_zero_with_the_capped_gradient(xp, rng):
    """1 / sqrt(0) is capped at 1 / 1e-12 as Keras caps it: zeros out, and there the gradient is dy * 1e12."""
    layer = layers.UnitNormalization(dtype="float64")
    x = rng.standard_normal((3, 4))
    x[1] = 0
    y = to_numpy(layer(xp.asarray(x), training=True))
    numpy.testing.assert_array_equal(y[1], 0)
    numpy.testing.assert_allclose(y[[0, 2]], expected(x[[0, 2]], (1,)), rtol=1e-13)
    dy = rng.standard_normal((3, 4))
    dx = to_numpy(layer.backward(xp.asarray(dy)))
    numpy.testing.assert_allclose(dx[1], dy[1] * 1e12, rtol=1e-13)
    assert numpy.isfinite(dx).all()


def test_float32_matches_the_formula(xp, rng):
    layer = layers.UnitNormalization()
    x = rng.standard_normal((17, 33)).astype("float32")
    y = layer(xp.asarray(x))
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(y), expected(x.astype("float64"), (1,)), rtol=1e-6, atol=1e-7)


def test_passes_a_mask_on(xp, rng):
    x = rng.standard_normal((2, 4, 3))
    x[0, 2:] = 0
    model = gpu_dl.Sequential([layers.Input((4, 3)), layers.Masking(), layers.UnitNormalization()])
    model(xp.asarray(x))
    numpy.testing.assert_array_equal(to_numpy(model.output_mask), [[True, True, False, False], [True] * 4])


def test_takes_any_rank_its_axes_fit_and_refuses_others(xp):
    layer = layers.UnitNormalization(axis=2, name="unit")
    assert layer(xp.ones((2, 3, 4))).shape == (2, 3, 4)
    assert layer(xp.ones((2, 3, 4, 5))).shape == (2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"UnitNormalization layer 'unit': axis 2 is out of bounds for inputs of "
                                         "rank 2"):
        layer(xp.ones((2, 3)))
    with pytest.raises(ValueError, match="names one axis twice"):
        layers.UnitNormalization(axis=[1, -1], name="unit").compute_output_shape((None, 3))


@pytest.mark.parametrize("axis,error", [("1", TypeError), (1.0, TypeError), (None, TypeError), (True, TypeError),
                                        ([1, "2"], TypeError), ([], ValueError)])
def test_refuses_bad_axes(axis, error):
    with pytest.raises(error, match="UnitNormalization layer 'u': axis"):
        layers.UnitNormalization(axis=axis, name="u")


def test_config_round_trips():
    for axis, saved in ((-1, -1), ((1, 2), [1, 2]), ([2], [2])):
        layer = layers.UnitNormalization(axis=axis, name="u")
        config = layer.get_config()
        assert config == {"name": "u", "trainable": True, "dtype": "float32", "axis": saved}
        assert layers.UnitNormalization.from_config(config).get_config() == config
