"""Permute, RepeatVector and Identity: forward against NumPy, backward against float64 finite differences,
shapes, masks, configs and bad arguments. Against Keras itself: tests/test_keras_oracle_shape_layers.py."""
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import array_module, to_numpy
from gradcheck import assert_gradient


def check_backward(layer, x, rng, what):
    """The layer's input gradient against finite differences of sum(layer(x) * w), in float64."""
    xp = array_module(x)
    y = layer(x, training=True)
    w = xp.asarray(rng.standard_normal(tuple(y.shape)))
    dx = layer.backward(w)
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), x, dx, rng, what=what)


# ------------------------------------------------------------------ Permute
@pytest.mark.parametrize("shape,dims", [((3, 17, 5), (2, 1)), ((1, 2, 3, 4), (3, 1, 2)), ((2, 3, 1, 4), (2, 3, 1)),
                                        ((17, 1), (1,)), ((2, 3, 4, 5, 2), (4, 2, 3, 1))])
def test_permute_forward_and_backward(xp, rng, shape, dims):
    layer = layers.Permute(dims, dtype="float64")
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    expected = numpy.transpose(x_host, (0,) + dims)
    numpy.testing.assert_array_equal(to_numpy(y), expected)
    assert y.flags.c_contiguous          # the GPU kernels after it read contiguous arrays
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + expected.shape[1:]
    check_backward(layer, xp.asarray(x_host), rng, f"Permute{dims}")


def test_permute_takes_any_sizes_of_its_rank_and_refuses_another_rank(xp, rng):
    layer = layers.Permute((2, 1), name="swap")
    assert layer(xp.ones((2, 3, 4))).shape == (2, 4, 3)
    assert layer(xp.ones((5, 7, 1))).shape == (5, 1, 7)          # Keras's input spec fixes the rank only
    with pytest.raises(ValueError, match=r"Permute layer 'swap' expects inputs of rank 3.*\(2, 3\)"):
        layer(xp.ones((2, 3)))
    with pytest.raises(ValueError, match="rank 3"):
        layers.Permute((2, 1)).compute_output_shape((None, 3, 4, 5))


@pytest.mark.parametrize("dims,error", [((1, 3), ValueError), ((2, 2), ValueError), ((0, 1), ValueError),
                                        ((), ValueError), ((1.0, 2), TypeError), ("12", TypeError), (3, TypeError),
                                        ((True, 2), TypeError)])
def test_permute_refuses_what_is_not_a_permutation(dims, error):
    with pytest.raises(error, match="Permute layer 'p': dims"):
        layers.Permute(dims, name="p")


# ------------------------------------------------------------------ RepeatVector
@pytest.mark.parametrize("batch,features,n", [(1, 1, 1), (3, 17, 5), (17, 3, 33)])
def test_repeat_vector_forward_and_backward(xp, rng, batch, features, n):
    layer = layers.RepeatVector(n, dtype="float64")
    x_host = rng.standard_normal((batch, features))
    y = layer(xp.asarray(x_host))
    numpy.testing.assert_array_equal(to_numpy(y), numpy.stack([x_host] * n, axis=1))
    assert y.flags.c_contiguous
    assert layer.compute_output_shape((None, features)) == (None, n, features)
    check_backward(layer, xp.asarray(x_host), rng, "RepeatVector")
    # each input value's gradient is the sum of its n copies'
    layer(xp.asarray(x_host), training=True)
    numpy.testing.assert_allclose(to_numpy(layer.backward(xp.ones((batch, n, features)))), numpy.full_like(x_host, n))


def test_repeat_vector_refuses_bad_n_and_other_ranks(xp):
    for bad, error in ((0, ValueError), (-2, ValueError), (2.0, TypeError), ("3", TypeError), (True, TypeError)):
        with pytest.raises(error, match="RepeatVector layer 'r': n"):
            layers.RepeatVector(bad, name="r")
    layer = layers.RepeatVector(3, name="r")
    with pytest.raises(ValueError, match=r"RepeatVector layer 'r' expects inputs of rank 2.*\(2, 3, 4\)"):
        layer(xp.ones((2, 3, 4)))
    assert layer(xp.ones((2, 3))).shape == (2, 3, 3)
    assert layer(xp.ones((4, 5))).shape == (4, 3, 5)      # built, but only the rank is fixed, as in Keras


# ------------------------------------------------------------------ Identity
def test_identity_passes_values_gradients_and_masks(xp, rng):
    layer = layers.Identity(dtype="float64")
    x = xp.asarray(rng.standard_normal((3, 4, 2)))
    y = layer(x, training=True)
    numpy.testing.assert_array_equal(to_numpy(y), to_numpy(x))
    dy = xp.asarray(rng.standard_normal((3, 4, 2)))
    numpy.testing.assert_array_equal(to_numpy(layer.backward(dy)), to_numpy(dy))
    assert layer.compute_output_shape((None, 7, 1)) == (None, 7, 1)
    assert layer(xp.ones((5,))).shape == (5,)        # any rank
    assert layer.get_config() == {"name": layer.name, "trainable": True, "dtype": "float64"}


# ------------------------------------------------------------------ masks, configs, models
def _masked_input(rng):
    x = rng.standard_normal((3, 5, 2))
    x[0, 3:] = 0
    x[2, 1:] = 0
    return x


def test_identity_passes_a_mask_on_and_permute_drops_it_as_keras_does(xp, rng):
    x = _masked_input(rng)
    model = gpu_dl.Sequential([layers.Input((5, 2)), layers.Masking(), layers.Identity()])
    model(xp.asarray(x))
    numpy.testing.assert_array_equal(to_numpy(model.output_mask), numpy.any(x != 0, axis=-1))
    model = gpu_dl.Sequential([layers.Input((5, 2)), layers.Masking(), layers.Permute((2, 1), name="perm")])
    with pytest.warns(UserWarning, match="'perm' \\(Permute\\) does not support masking"):
        model(xp.asarray(x))
    assert model.output_mask is None


def test_repeat_vector_drops_a_mask_as_keras_does(xp, rng):
    inputs = gpu_dl.Input((5, 2))
    masked = layers.Masking()(inputs)
    pooled = layers.GlobalAveragePooling1D()(layers.Identity()(masked))
    model = gpu_dl.Model(inputs, layers.RepeatVector(3)(pooled))
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # the pooling ends the mask: nothing to warn about
        y = model(xp.asarray(_masked_input(rng)))
    assert y.shape == (3, 3, 2) and model.output_mask is None


@pytest.mark.parametrize("make", [lambda: layers.Permute((3, 1, 2), name="a"), lambda: layers.RepeatVector(4, name="b"),
                                  lambda: layers.Identity(name="c", trainable=False)])
def test_config_round_trips(make):
    layer = make()
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


def test_a_seq2seq_model_trains_through_repeat_vector_and_permute(xp, rng):
    """Encoder state repeated for each output step, decoded step by step; Permute between two Dense stacks."""
    gpu_dl.utils.set_random_seed(3)
    model = gpu_dl.Sequential([layers.Input((6, 3)), layers.LSTM(8), layers.RepeatVector(4),
                               layers.LSTM(8, return_sequences=True), layers.Permute((2, 1)), layers.Dense(4),
                               layers.Permute((2, 1)), layers.Identity(), layers.Dense(2)])
    x = rng.standard_normal((32, 6, 3)).astype("float32")
    y = numpy.repeat(x[:, :, None, :2].mean(axis=1), 4, axis=1)    # each sequence's mean, at 4 steps
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.01), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=30, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.3 * before
    assert model.predict(x[:2], verbose=0).shape == (2, 4, 2)
