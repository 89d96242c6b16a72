"""SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout, AlphaDropout and ActivityRegularization: what they
do in training (exact values where there are some, statistics of the noise where not), that they do nothing in
inference, seeded reproducibility, gradients against finite differences under a fixed seed, configs and bad
input.

The statistical checks use a seeded layer, so each draws the same numbers every run, and tolerances of at
least five standard errors of the statistic, so another seed (or the GPU's generator) passes too.
"""
import math
import re

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.initializers import GlorotUniform
from gradcheck import assert_gradient

SPATIAL = [(layers.SpatialDropout1D, (6, 5, 4)), (layers.SpatialDropout2D, (3, 5, 3, 4)),
           (layers.SpatialDropout3D, (2, 3, 1, 3, 4))]


def check_gradient_under_a_seed(make, x, rng):
    """A fresh layer with the same seed draws the same noise, so x -> sum(layer(x) * w) is a fixed function
    of x whose finite differences the backward must match."""
    def f(v):
        return (make()(v, training=True) * w).sum()
    layer = make()
    y = layer(x, training=True)
    w = gpu_dl.backend.array_module(y).asarray(rng.standard_normal(y.shape))
    assert_gradient(f, x, layer.backward(w), rng, what=type(layer).__name__)


# ------------------------------------------------------------------ SpatialDropout
@pytest.mark.parametrize("cls,shape", SPATIAL)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_spatial_dropout_drops_whole_channels_and_scales_the_rest(xp, rng, cls, shape, data_format):
    if cls is layers.SpatialDropout1D and data_format == "channels_first":
        pytest.skip("SpatialDropout1D takes channels_last only, as in Keras")
    kwargs = {} if cls is layers.SpatialDropout1D else {"data_format": data_format}
    layer = cls(0.5, seed=3, dtype="float64", **kwargs)
    x_host = rng.uniform(0.5, 1.5, shape)           # never 0: a zero output means dropped
    x = xp.asarray(x_host)
    numpy.testing.assert_array_equal(to_numpy(layer(x)), x_host)                    # inference: unchanged
    numpy.testing.assert_array_equal(to_numpy(layer(x, training=False)), x_host)
    y = to_numpy(layer(x, training=True))
    ratio = numpy.moveaxis(y / x_host, 1 if data_format == "channels_first" else -1, 1)   # (N, C, positions...)
    per_channel = ratio.reshape(ratio.shape[0], ratio.shape[1], -1)
    assert ((per_channel == 0) | numpy.isclose(per_channel, 2.0, rtol=1e-15)).all()
    assert (per_channel == per_channel[:, :, :1]).all()                             # one draw per channel
    dropped = per_channel[:, :, 0] == 0
    assert dropped.any() and not dropped.all()
    dy = rng.standard_normal(shape)
    numpy.testing.assert_allclose(to_numpy(layer.backward(xp.asarray(dy))), dy * y / x_host, rtol=1e-14)
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + shape[1:]
    check_gradient_under_a_seed(lambda: cls(0.3, seed=7, dtype="float64", **kwargs), x, rng)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.7])
def test_spatial_dropout_drops_a_fraction_rate_of_the_channels(xp, rate):
    """20 000 (sample, channel) draws: the fraction dropped has a standard error of at most 0.0036."""
    layer = layers.SpatialDropout2D(rate, seed=11)
    y = to_numpy(layer(xp.ones((400, 2, 3, 50), dtype="float32"), training=True))
    dropped = (y[:, 0, 0, :] == 0).mean()
    assert abs(dropped - rate) < 0.02, dropped
    assert abs(y.mean() - 1.0) < 0.05                          # 1 / (1 - rate) makes up for the dropped ones


@pytest.mark.parametrize("make,training", [
    (lambda: layers.SpatialDropout2D(0.0), True), (lambda: layers.GaussianNoise(0.0), True),
    (lambda: layers.GaussianDropout(0.0), True), (lambda: layers.AlphaDropout(0.0), True),
    (lambda: layers.ActivityRegularization(1.0, 1.0), True),
    (lambda: layers.SpatialDropout2D(0.5), False), (lambda: layers.GaussianNoise(0.5), False),
    (lambda: layers.GaussianDropout(0.5), False), (lambda: layers.AlphaDropout(0.5), False),
])
def test_rate_zero_and_inference_pass_the_input_through(xp, rng, make, training):
    x = xp.asarray(rng.standard_normal((2, 3, 4, 5)).astype("float32"))
    layer = make()
    numpy.testing.assert_array_equal(to_numpy(layer(x, training=training)), to_numpy(x))
    if training:
        numpy.testing.assert_array_equal(to_numpy(layer.backward(x)), to_numpy(x))


# ------------------------------------------------------------------ seeds
@pytest.mark.parametrize("make,shape", [
    (lambda **k: layers.SpatialDropout1D(0.5, **k), (6, 5, 8)),
    (lambda **k: layers.SpatialDropout2D(0.5, **k), (6, 5, 2, 8)),
    (lambda **k: layers.GaussianNoise(0.3, **k), (6, 5, 8)), (lambda **k: layers.GaussianDropout(0.4, **k), (6, 5)),
    (lambda **k: layers.AlphaDropout(0.4, **k), (6, 5, 8)),
])
def test_noise_repeats_under_a_seed(xp, make, shape):
    x = xp.ones(shape, dtype=xp.float32)

    def draw(layer=None, **kwargs):
        return to_numpy((layer or make(**kwargs))(x, training=True))
    numpy.testing.assert_array_equal(draw(seed=3), draw(seed=3))
    assert not numpy.array_equal(draw(seed=3), draw(seed=4))
    layer = make(seed=3)
    assert not numpy.array_equal(draw(layer), draw(layer))        # each call draws afresh
    gpu_dl.utils.set_random_seed(11)
    first = draw()
    gpu_dl.utils.set_random_seed(11)
    numpy.testing.assert_array_equal(draw(), first)


# ------------------------------------------------------------------ GaussianNoise / GaussianDropout
@pytest.mark.parametrize("stddev", [0.1, 1.0, 2.5])
def test_gaussian_noise_adds_zero_mean_noise_of_stddev(xp, rng, stddev):
    """100 000 draws: the mean's standard error is 0.0032 stddev, the standard deviation's 0.0023 stddev."""
    x_host = rng.standard_normal((200, 500)).astype("float32")
    layer = layers.GaussianNoise(stddev, seed=5)
    y = layer(xp.asarray(x_host), training=True)
    assert y.dtype == numpy.float32
    noise = to_numpy(y).astype("float64") - x_host
    assert abs(noise.mean()) < 0.02 * stddev
    assert abs(noise.std() / stddev - 1) < 0.015
    assert abs(numpy.corrcoef(noise.ravel(), x_host.ravel())[0, 1]) < 0.02        # independent of x
    numpy.testing.assert_array_equal(to_numpy(layer.backward(xp.ones((200, 500), dtype="float32"))), 1.0)


def test_gaussian_noise_gradient(xp, rng):
    x = xp.asarray(rng.standard_normal((3, 7, 2)))
    check_gradient_under_a_seed(lambda: layers.GaussianNoise(0.5, seed=2, dtype="float64"), x, rng)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_gaussian_dropout_multiplies_by_noise_of_mean_one(xp, rate):
    layer = layers.GaussianDropout(rate, seed=5)
    noise = to_numpy(layer(xp.ones((200, 500), dtype="float32"), training=True)).astype("float64")
    stddev = math.sqrt(rate / (1 - rate))
    assert abs(noise.mean() - 1) < 0.02 * stddev
    assert abs(noise.std() / stddev - 1) < 0.015
    numpy.testing.assert_array_equal(to_numpy(layer.backward(xp.full((200, 500), 2.0, dtype="float32"))),
                                     (2 * noise).astype("float32"))


def test_gaussian_dropout_gradient(xp, rng):
    x = xp.asarray(rng.standard_normal((3, 7, 2)))
    check_gradient_under_a_seed(lambda: layers.GaussianDropout(0.3, seed=2, dtype="float64"), x, rng)


# ------------------------------------------------------------------ AlphaDropout
ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


def alpha_affine(rate):
    a = ((1 - rate) * (1 + rate * ALPHA_P ** 2)) ** -0.5
    return a, -a * ALPHA_P * rate


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_alpha_dropout_values_and_statistics(xp, rng, rate):
    x_host = rng.standard_normal((400, 500))
    layer = layers.AlphaDropout(rate, seed=9, dtype="float64")
    y = to_numpy(layer(xp.asarray(x_host), training=True))
    a, b = alpha_affine(rate)
    dropped = numpy.isclose(y, a * ALPHA_P + b, rtol=0, atol=1e-12)
    numpy.testing.assert_allclose(y[~dropped], a * x_host[~dropped] + b, rtol=1e-12, atol=1e-12)
    # 200 000 draws: standard errors 0.0011 of the fraction, 0.0023 of the mean and about 0.004 of the variance
    assert abs(dropped.mean() - rate) < 0.01
    assert abs(y.mean()) < 0.015 and abs(y.var() - 1) < 0.03        # a and b keep N(0, 1) at N(0, 1)
    dy = rng.standard_normal(y.shape)
    numpy.testing.assert_allclose(to_numpy(layer.backward(xp.asarray(dy))), numpy.where(dropped, 0, a * dy),
                                  rtol=1e-12)


def test_alpha_dropout_noise_shape_and_gradient(xp, rng):
    layer = layers.AlphaDropout(0.5, noise_shape=(None, 1, 6), seed=1, dtype="float64")
    y = to_numpy(layer(xp.zeros((4, 5, 6)), training=True))
    assert (y == y[:, :1, :]).all() and len(numpy.unique(y)) == 2
    with pytest.raises(ValueError, match=r"'ad'.*noise_shape \(None, 1, 6\) does not fit an input of shape "
                                         r"\(4, 5, 7\)"):
        layers.AlphaDropout(0.5, noise_shape=(None, 1, 6), name="ad")(xp.zeros((4, 5, 7)), training=True)
    x = xp.asarray(rng.standard_normal((3, 4, 6)))
    check_gradient_under_a_seed(lambda: layers.AlphaDropout(0.3, noise_shape=(None, 1, 6), seed=4,
                                                            dtype="float64"), x, rng)


# ------------------------------------------------------------------ ActivityRegularization
def test_activity_regularization_joins_the_loss_and_its_gradient(xp, rng):
    """One SGD step: the loss is the MSE plus (l1 |h| + l2 h^2) summed over the batch and divided by its size,
    and the first kernel moves by lr times that total's finite-difference gradient."""
    l1, l2, lr = 0.03, 0.05, 0.1
    gpu_dl.backend.set_floatx("float64")
    try:
        # seeded kernels: with the global generator's draws (which depend on the tests run before in the
        # same worker) the penalty's share of the loss, checked below, varies
        model = gpu_dl.Sequential([layers.Input((5,)), layers.Dense(4, kernel_initializer=GlorotUniform(seed=2)),
                                   layers.ActivityRegularization(l1, l2),
                                   layers.Dense(1, kernel_initializer=GlorotUniform(seed=3))])
    finally:
        gpu_dl.backend.set_floatx("float32")
    model.compile(optimizer=gpu_dl.optimizers.SGD(lr), loss="mse")
    x, t = rng.standard_normal((6, 5)), rng.standard_normal((6, 1))
    w1, b1, w2, b2 = model.get_weights()

    def total(kernel):
        h = x @ kernel + b1
        return (((h @ w2 + b2) - t) ** 2).mean() + (l1 * numpy.abs(h).sum() + l2 * (h ** 2).sum()) / len(x)
    loss = model.train_on_batch(xp.asarray(x), xp.asarray(t))
    assert loss == pytest.approx(total(w1), rel=1e-12)
    assert (l1 * numpy.abs(x @ w1 + b1).sum()) / len(x) > 0.01 * loss        # the penalty is not negligible
    gradient = (w1 - model.get_weights()[0]) / lr
    assert_gradient(total, w1, gradient, rng, what="kernel under the activity penalty")
    assert model.layers[1].activity_regularizer.get_config() == {"l1": l1, "l2": l2}


# ------------------------------------------------------------------ configs and errors
def test_configs_are_keras_s_and_round_trip(rng):
    model = gpu_dl.Sequential([
        layers.Input((6, 4, 3)),
        layers.SpatialDropout2D(0.2, data_format="channels_first", seed=3),
        layers.GaussianNoise(0.1, seed=1),
        layers.GaussianDropout(0.25),
        layers.AlphaDropout(0.1, noise_shape=(None, 1, 1, 3), seed=2),
        layers.ActivityRegularization(l1=0.01),
        layers.Reshape((24, 3)),
        layers.SpatialDropout1D(0.3),
        layers.Reshape((2, 3, 4, 3)),
        layers.SpatialDropout3D(0.4, seed=5),
    ])
    configs = [layer.get_config() for layer in model.layers]
    assert set(configs[0]) == {"name", "dtype", "rate", "seed", "data_format"}       # no "trainable", as Keras
    assert set(configs[6]) == {"name", "dtype", "rate", "seed"}
    assert configs[1]["stddev"] == 0.1 and configs[1]["seed"] == 1 and "trainable" in configs[1]
    assert configs[3]["noise_shape"] == (None, 1, 1, 3)
    assert configs[4]["l1"] == 0.01 and configs[4]["l2"] == 0.0 and "activity_regularizer" not in configs[4]
    copy = gpu_dl.Sequential.from_config(model.get_config())
    assert [layer.get_config() for layer in copy.layers] == configs
    assert copy.layers[4].activity_regularizer.get_config() == {"l1": 0.01, "l2": 0.0}
    x = rng.standard_normal((2, 6, 4, 3)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), x.reshape(2, 2, 3, 4, 3))


@pytest.mark.parametrize("make,match", [
    (lambda: layers.SpatialDropout2D(1.0), r"SpatialDropout2D layer .*: rate must be a number in \[0, 1\), got 1.0"),
    (lambda: layers.SpatialDropout1D(-0.1), r"rate must be a number in \[0, 1\), got -0.1"),
    (lambda: layers.SpatialDropout3D("0.5"), "rate"),
    (lambda: layers.SpatialDropout1D(0.5, data_format="channels_first"), "data_format"),
    (lambda: layers.SpatialDropout2D(0.5, data_format="nchw"), "data_format"),
    (lambda: layers.SpatialDropout2D(0.5, seed=1.5), r"SpatialDropout2D layer .*: SeedGenerator: .*`seed`"),
    (lambda: layers.GaussianNoise(0.5, seed="1"), r"GaussianNoise layer .*: SeedGenerator: .*`seed`"),
    (lambda: layers.GaussianNoise(-0.5), r"GaussianNoise layer .*: stddev must be a finite number >= 0, got -0.5"),
    (lambda: layers.GaussianNoise(float("inf")), "stddev"),
    (lambda: layers.GaussianNoise(None), "stddev"),
    (lambda: layers.GaussianDropout(1), r"GaussianDropout layer .*: rate must be a number in \[0, 1\), got 1"),
    (lambda: layers.GaussianDropout(True), "rate"),
    (lambda: layers.AlphaDropout(1.5), r"AlphaDropout layer .*: rate must be a number in \[0, 1\)"),
    (lambda: layers.AlphaDropout(0.5, noise_shape=(None, 0)), "noise_shape must be a tuple of positive integers"),
    (lambda: layers.AlphaDropout(0.5, noise_shape="ab"), "noise_shape"),
    (lambda: layers.AlphaDropout(0.5, noise_shape=3), "noise_shape"),
    (lambda: layers.ActivityRegularization(l1=-1.0), r"ActivityRegularization layer .*l1.*>= 0, got -1.0"),
    (lambda: layers.ActivityRegularization(l2=float("nan")), "l2"),
    (lambda: layers.ActivityRegularization(activity_regularizer="l2"), "l1 and l2"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("cls,rank,layout", [
    (layers.SpatialDropout1D, 3, r"\(batch, steps, channels\)"),
    (layers.SpatialDropout2D, 4, r"\(batch, height, width, channels\)"),
    (layers.SpatialDropout3D, 5, r"\(batch, depth, height, width, channels\)"),
])
def test_spatial_dropout_of_another_rank_names_the_layer(xp, cls, rank, layout):
    layer = cls(0.5, name="drop_a")
    wrong = (2, 3) if rank != 3 else (2, 3, 4, 5)
    with pytest.raises(ValueError, match=rf"{cls.__name__} layer 'drop_a' expects inputs of rank {rank} {layout}, "
                                         rf"got shape {re.escape(str(wrong))}"):
        layer(xp.ones(wrong, dtype="float32"), training=True)
    with pytest.raises(ValueError, match=f"drop_a.*rank {rank}"):
        gpu_dl.Sequential([layers.Input(wrong[1:]), layer])


# ------------------------------------------------------------------ SeedGenerators
def keras_numpy_draws(seed, counter):
    """The NumPy generator Keras's NumPy backend starts for a draw of the seed pair (seed, counter)."""
    return numpy.random.default_rng(numpy.array([seed, counter], dtype=numpy.uint32))


RANDOM_LAYERS = [lambda seed=None: layers.Dropout(0.4, seed=seed),
                 lambda seed=None: layers.SpatialDropout2D(0.4, seed=seed),
                 lambda seed=None: layers.GaussianNoise(0.3, seed=seed),
                 lambda seed=None: layers.GaussianDropout(0.3, seed=seed),
                 lambda seed=None: layers.AlphaDropout(0.3, seed=seed)]


@pytest.mark.parametrize("make", RANDOM_LAYERS)
def test_a_seed_generator_moves_at_each_training_call_only(xp, rng, make):
    layer = make(seed=9)
    state = layer.seed_generator.state
    assert layer.variables == [state] and layer.weights == [] and layer.trainable_weights == []
    assert state.name == "seed_generator_state" and state.trainable is False
    assert state.numpy().tolist() == [9, 0] and state.dtype == numpy.uint32 and state.shape == (2,)
    x = xp.asarray(rng.uniform(0.5, 1.5, (3, 4, 4, 5)).astype("float32"))
    layer(x)
    layer(x, training=False)
    assert state.numpy().tolist() == [9, 0]
    first, second = to_numpy(layer(x, training=True)), to_numpy(layer(x, training=True))
    assert state.numpy().tolist() == [9, 2] and not numpy.array_equal(first, second)
    again = make(seed=9)
    numpy.testing.assert_array_equal(to_numpy(again(x, training=True)), first)        # one seed, one sequence
    numpy.testing.assert_array_equal(to_numpy(again(x, training=True)), second)
    assert not numpy.array_equal(to_numpy(make(seed=10)(x, training=True)), first)
    gpu_dl.utils.set_random_seed(4)
    unseeded = to_numpy(make()(x, training=True))
    gpu_dl.utils.set_random_seed(4)
    numpy.testing.assert_array_equal(to_numpy(make()(x, training=True)), unseeded)


@pytest.mark.parametrize("make", [lambda: layers.Dropout(0.0), lambda: layers.SpatialDropout1D(0),
                                  lambda: layers.GaussianNoise(0.0), lambda: layers.GaussianDropout(0.0),
                                  lambda: layers.AlphaDropout(0.0)])
def test_a_rate_of_zero_holds_no_seed_generator(make):
    layer = make()
    assert not hasattr(layer, "seed_generator") and layer.variables == []
    x = numpy.ones((2, 3, 4), "float32")
    numpy.testing.assert_array_equal(to_numpy(layer(x, training=True)), x)


def test_numpy_draws_are_keras_numpy_backend_s(rng):
    """On NumPy the layers draw what Keras's NumPy backend draws for the same seed pairs."""
    x = rng.uniform(0.5, 1.5, (3, 4, 2, 5)).astype("float32")
    keep = keras_numpy_draws(7, 0).uniform(size=x.shape) < 0.6
    layer = layers.Dropout(0.4, seed=7)
    numpy.testing.assert_allclose(layer(x, training=True), numpy.where(keep, x / 0.6, 0), rtol=1e-6)
    keep = keras_numpy_draws(7, 1).uniform(size=x.shape) < 0.6              # the next call: the next pair
    numpy.testing.assert_allclose(layer(x, training=True), numpy.where(keep, x / 0.6, 0), rtol=1e-6)
    channels = keras_numpy_draws(2, 0).uniform(size=(3, 1, 1, 5)) < 0.5
    numpy.testing.assert_allclose(layers.SpatialDropout2D(0.5, seed=2)(x, training=True),
                                  numpy.where(channels, x / 0.5, 0), rtol=1e-6)
    noise = keras_numpy_draws(4, 0).normal(size=x.shape, loc=0.0, scale=0.3).astype("float32")
    numpy.testing.assert_array_equal(layers.GaussianNoise(0.3, seed=4)(x, training=True), x + noise)
    noise = keras_numpy_draws(4, 0).normal(size=x.shape, loc=1.0, scale=math.sqrt(0.3 / 0.7)).astype("float32")
    numpy.testing.assert_array_equal(layers.GaussianDropout(0.3, seed=4)(x, training=True), x * noise)
    kept = (keras_numpy_draws(5, 0).uniform(size=x.shape).astype("float32") >= numpy.float32(0.3))
    a, b = alpha_affine(0.3)
    numpy.testing.assert_allclose(layers.AlphaDropout(0.3, seed=5)(x, training=True),
                                  a * numpy.where(kept, x, ALPHA_P) + b, rtol=1e-6, atol=1e-6)


def test_draws_stay_on_the_device(xp, rng):
    x = xp.asarray(rng.uniform(0.5, 1.5, (64, 33)).astype("float32"))
    for layer in (layers.Dropout(0.5, seed=1), layers.GaussianNoise(0.5, seed=1), layers.AlphaDropout(0.5, seed=1)):
        y = layer(x, training=True)
        assert type(y) is type(x) and y.dtype == numpy.float32
    dropped = to_numpy(layers.Dropout(0.25, seed=3)(x, training=True)) == 0
    assert abs(dropped.mean() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / dropped.size)
