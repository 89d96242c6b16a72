"""gpu_dl.random (Keras's keras.random): shapes, dtypes and devices; seeds as Keras treats them; the distributions'
statistics; what it refuses; its draws as operations of a graph (functional models and the traced calls of
composite layers): fresh noise at every run, dropout's and shuffle's gradients, no gradient into the noise; and
SeedGenerators held by layers.

Statistical checks draw N values and allow 6 standard errors of the statistic (a mean's is sd / sqrt(N), a
variance's about var * sqrt(2 / N) for a normal, a frequency's sqrt(p (1 - p) / N)): with fixed seeds they do not
flake, and a wrong distribution (a wrong scale, a shifted mean, a biased mask) is off by many more."""
import math

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, ops
from gpu_dl import random as R
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models.saving import model_config
from gradcheck import assert_gradient
from guide_random_layers import guide_layers

N = 200_000


def _within(value, expected, standard_error, what):
    assert abs(value - expected) <= 6 * standard_error, f"{what}: {value} vs {expected} (se {standard_error})"


# ------------------------------------------------------------------ shapes, dtypes, devices
def test_shapes_dtypes_and_the_device_module(xp):
    cases = {
        "normal": R.normal((2, 3)), "uniform": R.uniform((2, 3)), "truncated_normal": R.truncated_normal((2, 3)),
        "randint": R.randint((2, 3), 0, 5), "gamma": R.gamma((2, 3), 2.0), "beta": R.beta((2, 3), 2.0, 3.0),
        "binomial": R.binomial((2, 3), 5, 0.5),
    }
    for name, value in cases.items():
        assert array_module(value) is xp, name
        assert value.shape == (2, 3), name
        assert value.dtype == (numpy.int32 if name == "randint" else numpy.float32), name
    assert R.normal((4,), dtype="float64").dtype == numpy.float64
    assert R.uniform((), seed=1).shape == () and R.normal(5).shape == (5,)
    assert R.randint((3,), 0, 4, dtype="int64").dtype == numpy.int64
    assert R.randint((3,), 0, 4, dtype="uint8").dtype == numpy.uint8
    assert R.normal((0, 3)).shape == (0, 3) and R.truncated_normal((2, 0)).shape == (2, 0)
    x = xp.asarray(numpy.ones((3, 4), "float32"))
    assert array_module(R.dropout(x, 0.5)) is xp and R.dropout(x, 0.5).dtype == numpy.float32
    assert array_module(R.shuffle(x)) is xp and R.shuffle(x, axis=1).shape == (3, 4)
    ids = R.categorical(xp.zeros((3, 5), dtype="float32"), 7)
    assert array_module(ids) is xp and ids.shape == (3, 7) and ids.dtype == numpy.int32
    assert R.categorical(xp.zeros((3, 5)), 2, dtype="int64").dtype == numpy.int64
    assert R.dropout([[1.0, 2.0]], 0.5, seed=1).dtype == numpy.float32          # lists: floatx, as Keras


def test_numpy_dtype_objects_are_taken_as_they_are(xp):
    # numpy.dtype("float64") == "float" and numpy.dtype("int64") == "int" hold: neither may read as Keras's
    # "float" (floatx) or "int" (int32).
    assert R.uniform((3,), dtype=numpy.dtype("float64")).dtype == numpy.float64
    assert R.normal((3,), dtype=numpy.dtype("float16")).dtype == numpy.float16
    assert R.randint((3,), 0, 5, dtype=numpy.dtype("int64")).dtype == numpy.int64
    assert R.uniform((3,), dtype="float").dtype == backend.floatx()


def test_floatx_is_the_default_float_dtype(xp):
    backend.set_floatx("float64")
    try:
        assert R.normal((2,)).dtype == numpy.float64 and R.gamma((2,), 1.0).dtype == numpy.float64
        assert R.binomial((2,), 3, 0.5).dtype == numpy.float64 and R.randint((2,), 0, 3).dtype == numpy.int32
    finally:
        backend.set_floatx("float32")


def test_the_namespace():
    import gpu_dl as keras
    assert keras.random.normal is R.normal and keras.random.SeedGenerator is R.SeedGenerator
    assert sorted(R.__all__) == sorted(["SeedGenerator", "normal", "uniform", "truncated_normal", "randint",
                                        "dropout", "shuffle", "categorical", "gamma", "beta", "binomial"])


# ------------------------------------------------------------------ seeds
def _draws(seed):
    x = backend.to_device(numpy.arange(1.0, 13.0, dtype="float32").reshape(3, 4))
    return [to_numpy(v) for v in (
        R.normal((3, 4), seed=seed), R.uniform((5,), seed=seed), R.truncated_normal((6,), seed=seed),
        R.randint((5,), 0, 100, seed=seed), R.gamma((4,), 1.5, seed=seed), R.beta((4,), 2.0, 2.0, seed=seed),
        R.binomial((4,), 20, 0.3, seed=seed), R.dropout(x, 0.5, seed=seed), R.shuffle(x, axis=1, seed=seed),
        R.categorical(x, 6, seed=seed))]


def test_an_int_seed_draws_the_same_values_at_every_call(xp):
    first, again, other = _draws(7), _draws(7), _draws(8)
    for a, b, c in zip(first, again, other):
        numpy.testing.assert_array_equal(a, b)
    assert sum(not numpy.array_equal(a, c) for a, c in zip(first, other)) >= 9     # a coin of 4 may repeat


def test_a_seed_generator_moves_on_and_repeats_from_its_seed(xp):
    generator = R.SeedGenerator(1337)
    assert generator.state.numpy().tolist() == [1337, 0] and generator.state.dtype == numpy.uint32
    first, second = _draws(generator), _draws(generator)
    assert generator.state.numpy().tolist() == [1337, 20]       # one step per draw
    assert all(not numpy.array_equal(a, b) for a, b in zip(first[:4], second[:4]))
    again = R.SeedGenerator(1337)
    for a, b in zip(first + second, _draws(again) + _draws(again)):
        numpy.testing.assert_array_equal(a, b)
    assert generator.get_config() == {"seed": 1337, "name": generator.name}
    assert R.SeedGenerator.from_config(generator.get_config()).state.numpy().tolist() == [1337, 0]
    assert R.SeedGenerator(2**32 + 5).state.numpy().tolist() == [5, 0]        # 32 bits, as Keras takes them


def test_unseeded_draws_differ_and_set_random_seed_repeats_them(xp):
    gpu_dl.utils.set_random_seed(11)
    first = _draws(None)
    assert all(not numpy.array_equal(a, b) for a, b in zip(first[:4], _draws(None)[:4]))
    gpu_dl.utils.set_random_seed(11)
    for a, b in zip(first, _draws(None)):
        numpy.testing.assert_array_equal(a, b)
    gpu_dl.utils.set_random_seed(12)
    made = R.SeedGenerator()            # its seed from Python's random, which set_random_seed seeds too
    gpu_dl.utils.set_random_seed(12)
    assert R.SeedGenerator().state.numpy()[0] == made.state.numpy()[0]


def test_numpy_draws_are_those_of_keras_numpy_backend():
    # What Keras's NumPy backend does for seed s: numpy.random.default_rng([s, counter]) and one call per draw.
    backend.set_device("cpu")

    def rng(counter=0):
        return numpy.random.default_rng(numpy.array([5, counter], dtype=numpy.uint32))
    numpy.testing.assert_array_equal(R.normal((3, 4), 1.0, 2.0, seed=5),
                                     rng().normal(size=(3, 4), loc=1.0, scale=2.0).astype("float32"))
    numpy.testing.assert_array_equal(R.uniform((7,), -1.0, 3.0, seed=5),
                                     rng().uniform(size=(7,), low=-1.0, high=3.0).astype("float32"))
    numpy.testing.assert_array_equal(R.randint((9,), 2, 40, seed=5), rng().integers(2, 40, size=(9,), dtype="int32"))
    numpy.testing.assert_array_equal(R.gamma((6,), 0.5, seed=5), rng().gamma(0.5, 1.0, size=(6,)).astype("float32"))
    numpy.testing.assert_array_equal(R.beta((6,), 2.0, 3.0, seed=5), rng().beta(2.0, 3.0, size=(6,)).astype("float32"))
    numpy.testing.assert_array_equal(R.binomial((6,), 9, 0.4, seed=5),
                                     rng().binomial(9, 0.4, size=(6,)).astype("float32"))
    source, kept = rng(), numpy.empty(0)
    while kept.size < 400:             # Keras's rounds: 400 draws, those within 2 sd kept, until 400 are
        batch = source.normal(loc=0.0, scale=1.0, size=400)
        kept = numpy.append(kept, batch[(batch >= -2) & (batch <= 2)])
    numpy.testing.assert_array_equal(R.truncated_normal((20, 20), seed=5, dtype="float64"), kept[:400].reshape(20, 20))
    x = numpy.arange(1.0, 21.0, dtype="float32").reshape(4, 5)
    keep = rng().uniform(size=(4, 1)) < 0.7
    numpy.testing.assert_array_equal(R.dropout(x, 0.3, noise_shape=(None, 1), seed=5),
                                     numpy.where(keep, x / numpy.float32(0.7), 0))
    numpy.testing.assert_array_equal(R.shuffle(x, axis=1, seed=5), rng().permuted(x, axis=1))
    generator = R.SeedGenerator(5)
    R.normal((2,), seed=generator)
    numpy.testing.assert_array_equal(R.normal((2,), seed=generator), rng(1).normal(size=(2,)).astype("float32"))


# ------------------------------------------------------------------ distributions
def test_normal_and_uniform_statistics(xp):
    z = to_numpy(R.normal((N,), mean=2.0, stddev=3.0, seed=1, dtype="float64"))
    _within(z.mean(), 2.0, 3.0 / math.sqrt(N), "normal mean")
    _within(z.var(), 9.0, 9.0 * math.sqrt(2 / N), "normal variance")
    u = to_numpy(R.uniform((N,), minval=-1.0, maxval=3.0, seed=2, dtype="float64"))
    assert u.min() >= -1.0 and u.max() < 3.0
    _within(u.mean(), 1.0, 4.0 / math.sqrt(12 * N), "uniform mean")
    # The variance of a uniform's sample variance: (b - a)^4 / 180 / N.
    _within(u.var(), 16.0 / 12, math.sqrt(4.0 ** 4 / 180 / N), "uniform variance")


def test_truncated_normal_stays_within_two_standard_deviations(xp):
    t = to_numpy(R.truncated_normal((N,), mean=1.0, stddev=0.5, seed=3, dtype="float64"))
    assert t.min() >= 0.0 and t.max() <= 2.0
    # A unit normal truncated at +-2 has variance 1 - 4 phi(2) / (Phi(2) - Phi(-2)) = 0.77374.
    phi2, mass = math.exp(-2) / math.sqrt(2 * math.pi), math.erf(2 / math.sqrt(2))
    var = 0.25 * (1 - 4 * phi2 / mass)
    _within(t.mean(), 1.0, math.sqrt(var / N), "truncated mean")
    _within(t.var(), var, var * math.sqrt(2 / N), "truncated variance")      # lighter tails: a looser bound
    # A quarter of the mass within 0.32 sd of the mean, as the truncated density gives (not the plain normal's).
    inner = math.erf(0.32 / math.sqrt(2)) / mass
    _within(numpy.mean(numpy.abs(t - 1.0) < 0.16), inner, math.sqrt(inner * (1 - inner) / N), "central mass")


def test_randint_counts_are_uniform_over_the_range(xp):
    k = to_numpy(R.randint((N,), -3, 7, seed=4))
    assert k.min() == -3 and k.max() == 6
    counts = numpy.bincount(k + 3, minlength=10)
    assert len(counts) == 10
    for count in counts:
        _within(count / N, 0.1, math.sqrt(0.1 * 0.9 / N), "randint frequency")


def test_gamma_beta_and_binomial_moments(xp):
    g = to_numpy(R.gamma((N,), 2.5, seed=5, dtype="float64"))
    assert g.min() > 0
    _within(g.mean(), 2.5, math.sqrt(2.5 / N), "gamma mean")
    _within(g.var(), 2.5, math.sqrt((3 * 2.5 ** 2 + 6 * 2.5) / N), "gamma variance")   # 4th central moment
    a, b = 2.0, 5.0
    x = to_numpy(R.beta((N,), a, b, seed=6, dtype="float64"))
    assert x.min() > 0 and x.max() < 1
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    _within(x.mean(), mean, math.sqrt(var / N), "beta mean")
    _within(x.var(), var, var * math.sqrt(2 / N), "beta variance")
    n = to_numpy(R.binomial((N,), 12, 0.3, seed=7))
    assert numpy.array_equal(n, numpy.round(n)) and n.min() >= 0 and n.max() <= 12
    _within(n.mean(), 3.6, math.sqrt(12 * 0.3 * 0.7 / N), "binomial mean")
    _within(n.var(), 2.52, 2.52 * math.sqrt(3 / N), "binomial variance")


def test_parameters_given_as_arrays_broadcast_over_the_shape(xp):
    alpha = numpy.array([0.5, 4.0, 20.0])
    g = to_numpy(R.gamma((N // 10, 3), alpha, seed=8, dtype="float64"))
    for j, a in enumerate(alpha):
        _within(g[:, j].mean(), a, math.sqrt(a / (N // 10)), f"gamma mean of column {j}")
    p = numpy.array([[0.1], [0.9]])
    b = to_numpy(R.binomial((2, N // 10), 1, p, seed=9, dtype="float64"))
    for i in range(2):
        _within(b[i].mean(), p[i, 0], math.sqrt(p[i, 0] * (1 - p[i, 0]) / (N // 10)), f"binomial row {i}")


def test_categorical_follows_the_softmax_of_each_row(xp):
    probabilities = numpy.array([[0.1, 0.2, 0.7, 0.0], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0]])
    with numpy.errstate(divide="ignore"):
        logits = numpy.log(probabilities) + numpy.array([[3.0], [-2.0], [0.5]])       # softmax ignores shifts
    ids = to_numpy(R.categorical(xp.asarray(logits), N // 4, seed=10))
    assert ids.shape == (3, N // 4)
    for row, p in enumerate(probabilities):
        counts = numpy.bincount(ids[row], minlength=4) / (N // 4)
        for c in range(4):
            if p[c] == 0:
                assert counts[c] == 0, (row, c)
            else:
                _within(counts[c], p[c], math.sqrt(p[c] * (1 - p[c]) / (N // 4)), f"row {row}, class {c}")


def test_dropout_zeroes_a_rate_of_elements_and_scales_the_rest(xp):
    x = xp.asarray(numpy.linspace(1.0, 2.0, N, dtype="float32").reshape(-1, 100))
    y = to_numpy(R.dropout(x, 0.3, seed=11))
    kept = y != 0
    _within(kept.mean(), 0.7, math.sqrt(0.21 / N), "kept fraction")
    numpy.testing.assert_array_equal(y[kept], (to_numpy(x) / numpy.float32(0.7))[kept])
    shared = to_numpy(R.dropout(x, 0.5, noise_shape=(None, 1), seed=12))
    rows_kept = shared[:, 0] != 0
    assert numpy.array_equal(shared != 0, numpy.repeat(rows_kept[:, None], 100, axis=1))    # one draw per row
    _within(rows_kept.mean(), 0.5, math.sqrt(0.25 / len(rows_kept)), "rows kept")
    assert R.dropout(x, 0.0) is x
    assert not to_numpy(R.dropout(x, 1.0)).any()         # Keras gives zeros for rate 1


def test_shuffle_permutes_each_slice_uniformly(xp):
    x = numpy.arange(40).reshape(4, 10)
    generator = R.SeedGenerator(13)
    first_position = numpy.zeros((4, 10))
    trials = 4000
    for _ in range(trials):
        y = to_numpy(R.shuffle(xp.asarray(x), axis=1, seed=generator))
        numpy.testing.assert_array_equal(numpy.sort(y, axis=1), x)         # each row a permutation of itself
        first_position[numpy.arange(4), y[:, 0] % 10] += 1
    for frequency in (first_position / trials).ravel():
        _within(frequency, 0.1, math.sqrt(0.09 / trials), "first element")
    rows = to_numpy(R.shuffle(xp.asarray(x), axis=0, seed=14))
    numpy.testing.assert_array_equal(numpy.sort(rows, axis=0), x)


# ------------------------------------------------------------------ what it refuses
def test_bad_arguments_are_clear_errors():
    x = numpy.ones((2, 3), "float32")
    with pytest.raises(ValueError, match=r"random.dropout: `rate` must be a finite number in \[0, 1\]"):
        R.dropout(x, 1.5)
    with pytest.raises(ValueError, match="`rate`"):
        R.dropout(x, -0.1)
    with pytest.raises(TypeError, match="`rate` must be a number"):
        R.dropout(x, "0.5")
    with pytest.raises(TypeError, match="must be a float tensor"):
        R.dropout(numpy.ones((2, 3), "int32"), 0.5)
    with pytest.raises(ValueError, match="noise_shape"):
        R.dropout(x, 0.5, noise_shape=(2,))
    with pytest.raises(ValueError, match="noise_shape"):
        R.dropout(x, 0.5, noise_shape=(2, 2))
    with pytest.raises(ValueError, match="random.normal: `shape` must hold sizes >= 0"):
        R.normal((2, -1))
    with pytest.raises(ValueError, match="holds None"):
        R.uniform((None, 3))
    with pytest.raises(TypeError, match="integer sizes"):
        R.normal((2.5, 3))
    with pytest.raises(ValueError, match="uniform requires a float dtype"):
        R.uniform((2,), dtype="int32")
    with pytest.raises(ValueError, match="randint requires an integer dtype"):
        R.randint((2,), 0, 3, dtype="float32")
    with pytest.raises(ValueError, match="minval < maxval"):
        R.randint((2,), 3, 3)
    with pytest.raises(ValueError, match="within uint8's range"):
        R.randint((2,), 0, 300, dtype="uint8")
    with pytest.raises(TypeError, match="`dtype` must be a float dtype"):
        R.normal((2,), dtype="no_such_type")
    with pytest.raises(ValueError, match="`seed` must be an integer, a keras.random.SeedGenerator or None"):
        R.normal((2,), seed=1.5)
    with pytest.raises(ValueError, match="SeedGenerator: argument `seed` must be an integer"):
        R.SeedGenerator("a")
    with pytest.raises(ValueError, match="`stddev`"):
        R.normal((2,), stddev=-1.0)
    with pytest.raises(ValueError, match="`alpha` must be a finite number > 0"):
        R.gamma((2,), 0.0)
    with pytest.raises(ValueError, match="every value of `probabilities`"):
        R.binomial((2,), 3, numpy.array([0.5, 1.5]))
    with pytest.raises(TypeError, match="`counts` must be an integer"):
        R.binomial((2,), 2.5, 0.5)
    with pytest.raises(ValueError, match="does not broadcast to the shape"):
        R.gamma((2, 3), numpy.ones(2))
    with pytest.raises(ValueError, match="logits` should be a 2-D tensor"):
        R.categorical(numpy.zeros((2, 3, 1)), 2)
    with pytest.raises(ValueError, match="`num_samples`"):
        R.categorical(numpy.zeros((2, 3)), -1)
    with pytest.raises(ValueError, match="`axis` 2 is out of range"):
        R.shuffle(x, axis=2)
    with pytest.raises(ValueError, match="scalar"):
        R.shuffle(numpy.float32(1.0))


# ------------------------------------------------------------------ operations of a graph
def test_dropout_in_a_functional_model_draws_at_every_run_and_masks_the_gradient(xp, rng):
    inputs = gpu_dl.Input((6,), dtype="float64")
    model = gpu_dl.Model(inputs, R.dropout(inputs, 0.4, seed=R.SeedGenerator(3)) * 2.0)
    x = xp.asarray(rng.uniform(1.0, 2.0, (50, 6)))
    first, second = model.forward(x, training=True), model.forward(x, training=True)
    assert not numpy.array_equal(to_numpy(first), to_numpy(second))         # fresh noise at every run
    dy = xp.asarray(rng.standard_normal((50, 6)))
    dx = to_numpy(model.backward(dy))
    kept = to_numpy(second) != 0
    numpy.testing.assert_allclose(dx, numpy.where(kept, to_numpy(dy) * 2.0 / 0.6, 0.0), rtol=1e-15)
    numpy.testing.assert_allclose(to_numpy(second)[kept], to_numpy(x)[kept] * 2.0 / 0.6, rtol=1e-15)
    _within(kept.mean(), 0.6, math.sqrt(0.24 / kept.size), "kept fraction")
    again = gpu_dl.Model(inputs, R.dropout(inputs, 0.4, seed=R.SeedGenerator(3)) * 2.0)
    numpy.testing.assert_array_equal(to_numpy(again.forward(x)), to_numpy(first))    # the same seed, the same noise


@pytest.mark.parametrize("draw", ["dropout", "dropout_noise_shape", "shuffle", "shuffle_axis0"])
def test_dropout_and_shuffle_gradients_match_finite_differences(xp, rng, draw):
    inputs = gpu_dl.Input((4, 5), dtype="float64")
    made = {"dropout": lambda t: R.dropout(t, 0.3, seed=21),
            "dropout_noise_shape": lambda t: R.dropout(t, 0.5, noise_shape=(None, 1, 5), seed=22),
            "shuffle": lambda t: R.shuffle(t, axis=2, seed=23),
            "shuffle_axis0": lambda t: R.shuffle(t, axis=0, seed=24)}[draw]
    model = gpu_dl.Model(inputs, ops.tanh(made(inputs)) * ops.arange(5.0))      # an int seed: the same draw each run
    x = xp.asarray(rng.standard_normal((3, 4, 5)))
    w = xp.asarray(rng.standard_normal((3, 4, 5)))
    model.forward(x, training=True)
    grad = model.backward(w)
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), x, grad, rng, what=draw)


def test_categorical_in_a_graph_has_no_gradient(xp, rng):
    inputs = gpu_dl.Input((3,))
    ids = R.categorical(inputs, 4, seed=R.SeedGenerator(1))
    assert ids.shape == (None, 4) and ids.dtype == "int32"
    model = gpu_dl.Model(inputs, ops.cast(ids, "float32") + inputs[:, :1])
    x = xp.asarray(numpy.log(numpy.array([[1e-9, 1e-9, 1.0]] * 5, dtype="float32")))
    y = to_numpy(model.forward(x, training=True))
    numpy.testing.assert_allclose(y, numpy.tile(2.0 + to_numpy(x)[:, :1], (1, 4)), rtol=1e-6)   # the class of mass
    dx = to_numpy(model.backward(xp.ones((5, 4), dtype="float32")))
    numpy.testing.assert_array_equal(dx, numpy.tile([[4.0, 0.0, 0.0]], (5, 1)))   # the slice's gradient only


def test_a_functional_model_holding_a_draw_cannot_be_saved_as_a_keras_config():
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, R.dropout(inputs, 0.5))
    with pytest.raises(ValueError, match="keras.random.dropout.*cannot be written in a model config"):
        model_config(model)


Sampling, Encoder, CustomDropout = guide_layers(gpu_dl)


def test_sampling_draws_for_the_batch_of_each_run(xp, rng):
    sampling = Sampling(dtype="float64")
    mean = xp.asarray(rng.standard_normal((N // 100, 4)))
    log_var = xp.asarray(numpy.log(numpy.full((N // 100, 4), 0.25)))
    z = to_numpy(sampling([mean, log_var]))
    noise = (z - to_numpy(mean)) / 0.5                 # exp(0.5 * log 0.25) = 0.5
    _within(noise.mean(), 0.0, 1 / math.sqrt(noise.size), "noise mean")
    _within(noise.var(), 1.0, math.sqrt(2 / noise.size), "noise variance")
    small = sampling([mean[:3], log_var[:3]])          # another batch size: the same traced graph
    assert small.shape == (3, 4)
    assert sampling.seed_generator.state.numpy().tolist() == [1337, 2]


def test_sampling_gradients_reach_the_mean_and_log_variance_only(xp, rng):
    sampling = Sampling(seed=5, dtype="float64")
    mean = xp.asarray(rng.standard_normal((6, 3)))
    log_var = xp.asarray(rng.standard_normal((6, 3)))
    w = xp.asarray(rng.standard_normal((6, 3)))
    z = sampling([mean, log_var], training=True)
    eps = (to_numpy(z) - to_numpy(mean)) / numpy.exp(0.5 * to_numpy(log_var))
    d_mean, d_log_var = sampling.backward(w)
    numpy.testing.assert_allclose(to_numpy(d_mean), to_numpy(w), rtol=1e-15)
    numpy.testing.assert_allclose(to_numpy(d_log_var), to_numpy(w) * 0.5 * numpy.exp(0.5 * to_numpy(log_var)) * eps,
                                  rtol=1e-12)


def _vae_like(seed):
    gpu_dl.utils.set_random_seed(0)       # the same initial weights
    model = gpu_dl.Sequential([gpu_dl.Input((8,)), Encoder(latent_dim=3, seed=seed), layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_an_encoder_with_sampling_trains_with_fresh_noise_at_each_step(xp, rng):
    x = rng.standard_normal((96, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    model = _vae_like(1337)
    losses = model.fit(x, y, epochs=30, batch_size=32, verbose=0).history["loss"]
    assert numpy.mean(losses[-5:]) < 0.75 * numpy.mean(losses[:5]), losses
    encoder = model.layers[0]
    state = encoder.sampling.seed_generator.state.numpy()
    assert state.tolist() == [1337, 90]      # one draw per training step (3 batches x 30 epochs)
    first, second = model.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0)
    assert not numpy.allclose(first, second)           # the sampling draws in inference too, as in Keras
    twins = [_vae_like(99), _vae_like(99)]
    runs = [m.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False).history["loss"] for m in twins]
    assert runs[0] == runs[1]                          # the same seed: the same noise, step for step
    assert runs[0] != _vae_like(98).fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False).history["loss"]


def test_custom_dropout_drops_in_training_and_is_the_identity_in_inference(xp, rng):
    layer = CustomDropout(0.5)
    x = xp.asarray(rng.uniform(1.0, 2.0, (200, 50)).astype("float32"))
    assert layer(x, training=False) is x or numpy.array_equal(to_numpy(layer(x, training=False)), to_numpy(x))
    y = to_numpy(layer(x, training=True))
    kept = y != 0
    _within(kept.mean(), 0.5, math.sqrt(0.25 / kept.size), "kept fraction")
    numpy.testing.assert_allclose(y[kept], to_numpy(x)[kept] * 2.0, rtol=1e-6)
    dy = xp.asarray(rng.standard_normal((200, 50)).astype("float32"))
    numpy.testing.assert_allclose(to_numpy(layer.backward(dy)), numpy.where(kept, to_numpy(dy) * 2.0, 0.0),
                                  rtol=1e-6)
    assert not numpy.array_equal(to_numpy(layer(x, training=True)) != 0, kept)     # a fresh mask per call
    model = gpu_dl.Sequential([gpu_dl.Input((50,)), layers.Dense(8), CustomDropout(0.3), layers.Dense(2)])
    model.compile("adam", gpu_dl.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = (to_numpy(x)[:, 0] > 1.5).astype("int64")
    history = model.fit(to_numpy(x), labels, epochs=2, verbose=0).history["loss"]
    assert len(history) == 2 and all(numpy.isfinite(history))
    numpy.testing.assert_array_equal(model.predict(to_numpy(x)[:5], verbose=0),
                                     model.predict(to_numpy(x)[:5], verbose=0))    # inference: no dropout


def test_seed_generators_are_variables_not_weights(tmp_path):
    encoder = Encoder(seed=7)
    model = gpu_dl.Sequential([gpu_dl.Input((8,)), encoder, layers.Dense(2)])
    assert encoder._seed_generators == [] and encoder.sampling._seed_generators == [encoder.sampling.seed_generator]
    state = encoder.sampling.seed_generator.state
    # By identity: == on variables compares their values element by element, as Keras's do.
    assert any(v is state for v in model.variables) and not any(v is state for v in model.weights)
    assert not state.trainable
    assert [v.name for v in encoder.variables] == ["kernel", "bias"] * 3 + ["seed_generator_state"]
    assert len(model.variables) == len(model.weights) + 1
    model.save_weights(tmp_path / "m.weights.h5")
    other = gpu_dl.Sequential([gpu_dl.Input((8,)), Encoder(seed=7), layers.Dense(2)])
    other.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(other.get_weights(), model.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_draws_of_a_shape_outside_a_trace_need_known_sizes():
    inputs = gpu_dl.Input((3,))
    with pytest.raises(ValueError, match="holds None"):
        R.normal(ops.shape(inputs))
    constant = R.normal((3,), seed=1)           # known sizes: an array, a constant of the graph
    model = gpu_dl.Model(inputs, inputs + constant)
    numpy.testing.assert_allclose(model.predict(numpy.zeros((2, 3), "float32"), verbose=0),
                                  numpy.tile(to_numpy(constant), (2, 1)))
