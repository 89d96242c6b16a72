"""Initializers: Keras 3 formulas, fans, orthogonality, seeds, dtypes, catalogue."""
import math
import os

import numpy
import pytest

from gpu_dl import backend, initializers
from gpu_dl.initializers import compute_fans

TRUNC = 0.87962566103423978   # stddev of a unit normal truncated at +-2


def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


# ---------------------------------------------------------------------- fans
@pytest.mark.parametrize("shape, fans", [
    ((), (1, 1)),
    ((7,), (7, 7)),
    ((17, 33), (17, 33)),
    ((3, 4, 5), (3 * 4, 3 * 5)),               # Conv1D kernel (k, cin, cout)
    ((3, 3, 16, 32), (9 * 16, 9 * 32)),        # Conv2D kernel (kh, kw, cin, cout)
    ((2, 3, 3, 1, 5), (18 * 1, 18 * 5)),       # Conv3D kernel
])
def test_compute_fans(shape, fans):
    assert compute_fans(shape) == fans


def test_compute_fans_with_axes():
    assert compute_fans((2, 3, 5), input_axes=[0, 1], output_axes=[2]) == (6, 5)


def test_compute_fans_matches_keras():
    keras_or_skip()
    from keras.src.initializers.random_initializers import compute_fans as keras_fans
    for shape in [(7,), (17, 33), (3, 4, 5), (3, 3, 16, 32)]:
        assert compute_fans(shape) == keras_fans(shape)


# -------------------------------------------------------------- statistics
def _limit_or_std(scale, mode, shape):
    fan_in, fan_out = compute_fans(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return scale / max(1.0, fan)


PRESETS = [
    (initializers.GlorotUniform, 1.0, "fan_avg", "uniform"),
    (initializers.GlorotNormal, 1.0, "fan_avg", "truncated_normal"),
    (initializers.HeUniform, 2.0, "fan_in", "uniform"),
    (initializers.HeNormal, 2.0, "fan_in", "truncated_normal"),
    (initializers.LecunUniform, 1.0, "fan_in", "uniform"),
    (initializers.LecunNormal, 1.0, "fan_in", "truncated_normal"),
]


@pytest.mark.parametrize("cls, scale, mode, distribution", PRESETS)
@pytest.mark.parametrize("shape", [(301, 517), (3, 3, 33, 65)])
def test_variance_scaling_presets(cls, scale, mode, distribution, shape):
    init = cls(seed=3)
    assert (init.scale, init.mode, init.distribution) == (scale, mode, distribution)
    values = init(shape)
    assert values.shape == shape and values.dtype == numpy.float32
    variance = _limit_or_std(scale, mode, shape)
    if distribution == "uniform":
        limit = math.sqrt(3 * variance)          # GlorotUniform: sqrt(6 / (fan_in + fan_out))
        assert numpy.abs(values).max() <= limit
        assert numpy.var(values) == pytest.approx(limit ** 2 / 3, rel=0.03)
    else:
        stddev = math.sqrt(variance) / TRUNC     # before truncation; after it the variance is `variance`
        assert numpy.abs(values).max() <= 2 * stddev * (1 + 1e-6)
        assert numpy.std(values) == pytest.approx(math.sqrt(variance), rel=0.03)
    assert abs(float(values.mean())) < 0.05 * math.sqrt(variance) * 3


def test_glorot_uniform_limit_written_out():
    values = initializers.GlorotUniform(seed=1)((400, 600), dtype="float64")
    limit = math.sqrt(6 / (400 + 600))
    assert numpy.abs(values).max() <= limit
    assert numpy.abs(values).max() > 0.99 * limit          # the whole interval is used
    assert numpy.var(values) == pytest.approx(limit ** 2 / 3, rel=0.02)


@pytest.mark.parametrize("mode, fan", [("fan_in", 300), ("fan_out", 500), ("fan_avg", 400)])
def test_variance_scaling_untruncated_normal(mode, fan):
    values = initializers.VarianceScaling(scale=3.0, mode=mode, distribution="untruncated_normal",
                                          seed=5)((300, 500))
    assert numpy.std(values) == pytest.approx(math.sqrt(3.0 / fan), rel=0.02)
    assert numpy.abs(values).max() > 3 * math.sqrt(3.0 / fan)   # not truncated


def test_variance_scaling_normal_means_truncated():
    init = initializers.VarianceScaling(distribution="Normal")
    assert init.distribution == "truncated_normal"


def test_variance_scaling_small_fan_uses_one():
    # Keras divides by max(1, fan): a fan of 0 (empty dimension) leaves scale as it is.
    values = initializers.VarianceScaling(scale=0.5, distribution="uniform", seed=0)((0, 4))
    assert values.shape == (0, 4)


def test_random_normal_statistics():
    values = initializers.RandomNormal(mean=1.5, stddev=0.2, seed=2)((333, 301), dtype="float64")
    assert numpy.mean(values) == pytest.approx(1.5, abs=0.005)
    assert numpy.std(values) == pytest.approx(0.2, rel=0.02)
    assert numpy.abs(values - 1.5).max() > 2 * 0.2


def test_truncated_normal_never_beyond_two_stddev():
    values = initializers.TruncatedNormal(mean=1.0, stddev=0.5, seed=2)((333, 301), dtype="float64")
    assert values.min() >= 0.0 and values.max() <= 2.0
    assert numpy.std(values) == pytest.approx(0.5 * TRUNC, rel=0.02)
    assert numpy.mean(values) == pytest.approx(1.0, abs=0.01)


def test_random_uniform_statistics():
    values = initializers.RandomUniform(minval=-0.3, maxval=0.7, seed=4)((333, 301), dtype="float64")
    assert values.min() >= -0.3 and values.max() < 0.7
    assert numpy.mean(values) == pytest.approx(0.2, abs=0.005)
    assert numpy.var(values) == pytest.approx(1.0 / 12, rel=0.02)


def test_defaults_match_keras():
    assert initializers.RandomNormal().get_config() == {"seed": None, "mean": 0.0, "stddev": 0.05}
    assert initializers.TruncatedNormal().get_config() == {"seed": None, "mean": 0.0, "stddev": 0.05}
    assert initializers.RandomUniform().get_config() == {"seed": None, "minval": -0.05, "maxval": 0.05}
    vs = initializers.VarianceScaling()
    assert (vs.scale, vs.mode, vs.distribution, vs.seed) == (1.0, "fan_in", "truncated_normal", None)
    assert initializers.Orthogonal().gain == 1.0 and initializers.Identity().gain == 1.0
    assert initializers.Constant().value == 0.0


# ------------------------------------------------------------- constants
def test_zeros_ones_constant():
    assert numpy.array_equal(initializers.Zeros()((3, 1)), numpy.zeros((3, 1), numpy.float32))
    assert numpy.array_equal(initializers.Ones()((17,)), numpy.ones(17, numpy.float32))
    c = initializers.Constant(2.5)((2, 3), dtype="float64")
    assert c.dtype == numpy.float64 and numpy.all(c == 2.5)
    row = initializers.Constant([1.0, 2.0, 3.0])((2, 3))
    assert numpy.array_equal(row, numpy.array([[1, 2, 3], [1, 2, 3]], numpy.float32))
    with pytest.raises(ValueError, match="broadcast"):
        initializers.Constant([1.0, 2.0])((2, 3))


def test_identity():
    assert numpy.array_equal(initializers.Identity(gain=2.0)((3, 5)), 2.0 * numpy.eye(3, 5, dtype=numpy.float32))
    with pytest.raises(ValueError, match="2-D"):
        initializers.Identity()((3, 3, 3))


# ------------------------------------------------------------- orthogonal
@pytest.mark.parametrize("shape", [(33, 17), (3, 17), (17, 17), (1, 3), (3, 3, 4, 8), (2, 3, 33)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    values = initializers.Orthogonal(gain=gain, seed=7)(shape, dtype="float64")
    assert values.shape == shape
    flat = values.reshape(-1, shape[-1])
    rows, cols = flat.shape
    if rows >= cols:   # orthonormal columns
        numpy.testing.assert_allclose(flat.T @ flat, gain ** 2 * numpy.eye(cols), atol=1e-12)
    else:              # orthonormal rows
        numpy.testing.assert_allclose(flat @ flat.T, gain ** 2 * numpy.eye(rows), atol=1e-12)


def test_orthogonal_needs_two_dimensions():
    with pytest.raises(ValueError, match="at least 2-D"):
        initializers.Orthogonal()((5,))


def test_orthogonal_sign_correction_makes_r_diagonal_positive():
    # Q from QR of the same normal draw, with columns signed so that R's diagonal is positive.
    q = initializers.Orthogonal(seed=11)((17, 3), dtype="float64")
    a = numpy.random.default_rng(11).normal(0.0, 1.0, size=(17, 3))
    r = q.T @ a
    assert numpy.all(numpy.diag(r) > 0)
    numpy.testing.assert_allclose(numpy.tril(r, -1), 0, atol=1e-12)


# ------------------------------------------------------------------ seeds
ALL_RANDOM = [initializers.RandomNormal, initializers.TruncatedNormal, initializers.RandomUniform,
              initializers.VarianceScaling, initializers.Orthogonal] + [p[0] for p in PRESETS]


@pytest.mark.parametrize("cls", ALL_RANDOM)
def test_seeded_is_reproducible(cls):
    a = cls(seed=42)((17, 3))
    assert numpy.array_equal(a, cls(seed=42)((17, 3)))
    init = cls(seed=42)
    assert numpy.array_equal(init((17, 3)), init((17, 3)))      # an int seed repeats (as in Keras)
    assert not numpy.array_equal(a, cls(seed=43)((17, 3)))


@pytest.mark.parametrize("cls", ALL_RANDOM)
def test_unseeded_follows_set_random_seed(cls):
    backend.set_random_seed(123)
    first = cls()((17, 3))
    second = cls()((17, 3))
    backend.set_random_seed(123)
    assert numpy.array_equal(cls()((17, 3)), first)
    assert numpy.array_equal(cls()((17, 3)), second)
    assert not numpy.array_equal(first, second)


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("name", ["zeros", "ones", "constant", "identity", "random_normal", "truncated_normal",
                                  "random_uniform", "variance_scaling", "glorot_uniform", "he_normal",
                                  "orthogonal"])
@pytest.mark.parametrize("dtype", ["float32", "float64", numpy.float64, None])
def test_dtypes(name, dtype):
    values = initializers.get(name)((3, 5), dtype=dtype)
    expected = numpy.dtype(dtype) if dtype is not None else numpy.dtype(backend.floatx())
    assert isinstance(values, numpy.ndarray) and values.dtype == expected and values.shape == (3, 5)


def test_floatx_default():
    backend.set_floatx("float64")
    try:
        assert initializers.GlorotUniform()((3, 3)).dtype == numpy.float64
    finally:
        backend.set_floatx("float32")


def test_bad_dtype_and_shape():
    with pytest.raises(ValueError, match="dtype"):
        initializers.Zeros()((3,), dtype="int32")
    with pytest.raises(ValueError, match="shape"):
        initializers.Ones()((3, -1))
    with pytest.raises(ValueError, match="shape"):
        initializers.Ones()((3, 2.5))


# --------------------------------------------------------------- arguments
@pytest.mark.parametrize("make, argument", [
    (lambda: initializers.RandomNormal(stddev=0.0), "stddev"),
    (lambda: initializers.TruncatedNormal(stddev=-1.0), "stddev"),
    (lambda: initializers.RandomNormal(mean=float("nan")), "mean"),
    (lambda: initializers.RandomUniform(minval=0.1, maxval=0.1), "minval"),
    (lambda: initializers.RandomUniform(minval="a"), "minval"),
    (lambda: initializers.VarianceScaling(scale=0.0), "scale"),
    (lambda: initializers.VarianceScaling(mode="fan_sum"), "mode"),
    (lambda: initializers.VarianceScaling(distribution="gaussian"), "distribution"),
    (lambda: initializers.GlorotUniform(seed=-1), "seed"),
    (lambda: initializers.HeNormal(seed="7"), "seed"),
    (lambda: initializers.Orthogonal(gain=float("inf")), "gain"),
    (lambda: initializers.Identity(gain=None), "gain"),
])
def test_bad_arguments(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


# --------------------------------------------------------------- catalogue
@pytest.mark.parametrize("name, cls", [
    ("glorot_uniform", initializers.GlorotUniform), ("GlorotUniform", initializers.GlorotUniform),
    ("glorot_normal", initializers.GlorotNormal), ("he_uniform", initializers.HeUniform),
    ("he_normal", initializers.HeNormal), ("HeNormal", initializers.HeNormal),
    ("lecun_uniform", initializers.LecunUniform), ("lecun_normal", initializers.LecunNormal),
    ("zeros", initializers.Zeros), ("Zeros", initializers.Zeros), ("zero", initializers.Zeros),
    ("ones", initializers.Ones), ("one", initializers.Ones), ("constant", initializers.Constant),
    ("random_normal", initializers.RandomNormal), ("normal", initializers.RandomNormal),
    ("random_uniform", initializers.RandomUniform), ("uniform", initializers.RandomUniform),
    ("truncated_normal", initializers.TruncatedNormal), ("orthogonal", initializers.Orthogonal),
    ("OrthogonalInitializer", initializers.Orthogonal), ("identity", initializers.Identity),
    ("IdentityInitializer", initializers.Identity), ("variance_scaling", initializers.VarianceScaling),
    ("VarianceScaling", initializers.VarianceScaling),
])
def test_get_by_name(name, cls):
    assert type(initializers.get(name)) is cls


def test_function_style_aliases_are_the_classes():
    assert initializers.glorot_uniform is initializers.GlorotUniform
    assert initializers.he_normal is initializers.HeNormal
    assert initializers.zeros is initializers.Zeros


def test_get_unknown_name_suggests():
    with pytest.raises(ValueError, match="glorot_uniform"):
        initializers.get("glorot_unifrom")


def test_get_none_instance_class():
    assert initializers.get(None) is None
    init = initializers.HeUniform(seed=1)
    assert initializers.get(init) is init
    assert type(initializers.get(initializers.Ones)) is initializers.Ones
    with pytest.raises(TypeError):
        initializers.get(3)


@pytest.mark.parametrize("init", [
    initializers.Zeros(), initializers.Constant(3.0), initializers.Identity(gain=0.5),
    initializers.RandomNormal(mean=0.1, stddev=0.3, seed=2), initializers.TruncatedNormal(seed=1),
    initializers.RandomUniform(-1.0, 2.0, seed=9),
    initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=4),
    initializers.GlorotUniform(seed=5), initializers.LecunNormal(), initializers.Orthogonal(gain=2.0, seed=3),
])
def test_serialize_round_trip(init):
    config = initializers.serialize(init)
    assert config["class_name"] == type(init).__name__ and config["module"] == "keras.initializers"
    back = initializers.get(config)
    assert type(back) is type(init) and back.get_config() == init.get_config()
    if getattr(init, "seed", None) is not None:
        assert numpy.array_equal(back((3, 5)), init((3, 5)))


def test_get_accepts_keras_config():
    # What Keras 3 writes for a Dense kernel initializer.
    config = {"module": "keras.initializers", "class_name": "GlorotUniform",
              "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}
    assert type(initializers.get(config)) is initializers.GlorotUniform
    assert type(initializers.get({"class_name": "HeNormal", "config": {"seed": 3}})) is initializers.HeNormal


def test_keras_serialized_configs_load():
    keras = keras_or_skip()
    for k_init in [keras.initializers.GlorotUniform(seed=3), keras.initializers.VarianceScaling(2.0, "fan_avg"),
                   keras.initializers.RandomNormal(0.5, 0.1), keras.initializers.Orthogonal(gain=2.0)]:
        config = keras.initializers.serialize(k_init)
        ours = initializers.get(config)
        assert type(ours).__name__ == type(k_init).__name__
        assert initializers.serialize(ours)["config"].keys() == config["config"].keys()


def test_callable_is_wrapped_and_checked():
    def halves(shape, dtype=None):
        return numpy.full(shape, 0.5)

    init = initializers.get(halves)
    values = init((3, 1), dtype="float32")
    assert values.dtype == numpy.float32 and numpy.all(values == 0.5)

    def wrong(shape, dtype=None):
        return numpy.zeros((2, 2))

    with pytest.raises(ValueError, match="wrong"):
        initializers.get(wrong)((3, 3))


def test_array_as_initializer():
    fixed = numpy.arange(6.0).reshape(2, 3)
    init = initializers.get(fixed)
    assert numpy.array_equal(init((2, 3)), fixed.astype(numpy.float32))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        init((3, 2))
