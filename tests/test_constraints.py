"""Weight constraints: Keras 3 formulas written out in NumPy, catalogue round trips."""
import os

import numpy
import pytest

from gpu_dl import constraints
from gpu_dl.backend import to_numpy

EPS = 1e-7


def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def norms(w, axis):
    axes = tuple(axis) if isinstance(axis, list) else (axis,)
    return numpy.sqrt((w ** 2).sum(axis=axes, keepdims=True))


CASES = [((17, 3), 0), ((3, 17), 1), ((1, 5), 0), ((3, 3, 4, 5), [0, 1, 2]), ((33,), 0), ((3, 5), -1)]


@pytest.mark.parametrize("shape, axis", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_norm(xp, rng, shape, axis, dtype):
    host = (2.0 * rng.standard_normal(shape)).astype(dtype)
    out = constraints.MaxNorm(max_value=1.5, axis=axis)(xp.asarray(host))
    assert type(out) is type(xp.asarray(host)) and out.dtype == host.dtype and out.shape == shape
    n = norms(host.astype(float), axis)
    expected = host * (numpy.minimum(n, 1.5) / (n + EPS))
    numpy.testing.assert_allclose(to_numpy(out), expected, rtol=1e-6 if dtype == "float32" else 1e-14)
    assert numpy.all(norms(to_numpy(out).astype(float), axis) <= 1.5 + 1e-5)


@pytest.mark.parametrize("shape, axis", CASES)
def test_min_max_norm(xp, rng, shape, axis):
    host = rng.standard_normal(shape) * rng.uniform(0.1, 3.0, size=shape)
    for rate in (1.0, 0.25):
        out = constraints.MinMaxNorm(min_value=0.5, max_value=1.2, rate=rate, axis=axis)(xp.asarray(host))
        n = norms(host, axis)
        desired = rate * numpy.clip(n, 0.5, 1.2) + (1 - rate) * n
        numpy.testing.assert_allclose(to_numpy(out), host * desired / (n + EPS), rtol=1e-13)
    strict = to_numpy(constraints.MinMaxNorm(0.5, 1.2, axis=axis)(xp.asarray(host)))
    assert numpy.all((norms(strict, axis) >= 0.5 - 1e-6) & (norms(strict, axis) <= 1.2 + 1e-6))


@pytest.mark.parametrize("shape, axis", CASES)
def test_unit_norm(xp, rng, shape, axis):
    host = rng.standard_normal(shape)
    out = to_numpy(constraints.UnitNorm(axis=axis)(xp.asarray(host)))
    numpy.testing.assert_allclose(out, host / (norms(host, axis) + EPS), rtol=1e-13)
    n = norms(host, axis)
    numpy.testing.assert_allclose(norms(out, axis), n / (n + EPS), rtol=1e-13)   # 1 up to the epsilon


def test_unit_norm_of_zero_column_stays_zero(xp):
    out = constraints.UnitNorm()(xp.zeros((3, 2)))
    assert numpy.array_equal(to_numpy(out), numpy.zeros((3, 2)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_neg(xp, rng, dtype):
    host = rng.standard_normal((17, 3)).astype(dtype)
    out = constraints.NonNeg()(xp.asarray(host))
    assert out.dtype == host.dtype
    numpy.testing.assert_array_equal(to_numpy(out), numpy.where(host > 0, host, 0))


def test_base_constraint_is_identity(xp):
    w = xp.ones((2, 3))
    assert constraints.Constraint()(w) is w


def test_axis_out_of_range(xp):
    with pytest.raises(ValueError, match="axis"):
        constraints.MaxNorm(axis=2)(xp.ones((3, 3)))


def test_defaults():
    assert constraints.MaxNorm().get_config() == {"max_value": 2, "axis": 0}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0}
    assert constraints.UnitNorm().get_config() == {"axis": 0}
    assert constraints.NonNeg().get_config() == {}


@pytest.mark.parametrize("make, argument", [
    (lambda: constraints.MaxNorm(max_value=-1), "max_value"),
    (lambda: constraints.MaxNorm(max_value=float("nan")), "max_value"),
    (lambda: constraints.MaxNorm(axis=1.5), "axis"),
    (lambda: constraints.UnitNorm(axis=[]), "axis"),
    (lambda: constraints.MinMaxNorm(min_value=2.0, max_value=1.0), "min_value"),
    (lambda: constraints.MinMaxNorm(rate=1.5), "rate"),
])
def test_bad_arguments(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


@pytest.mark.parametrize("name, cls", [
    ("max_norm", constraints.MaxNorm), ("MaxNorm", constraints.MaxNorm),
    ("min_max_norm", constraints.MinMaxNorm), ("MinMaxNorm", constraints.MinMaxNorm),
    ("non_neg", constraints.NonNeg), ("NonNeg", constraints.NonNeg),
    ("unit_norm", constraints.UnitNorm), ("UnitNorm", constraints.UnitNorm),
])
def test_get_by_name(name, cls):
    assert type(constraints.get(name)) is cls


def test_get_others():
    assert constraints.get(None) is None
    c = constraints.MaxNorm(3)
    assert constraints.get(c) is c
    assert type(constraints.get(constraints.NonNeg)) is constraints.NonNeg
    fn = lambda w: w * 0.5   # noqa: E731
    assert constraints.get(fn) is fn
    with pytest.raises(ValueError, match="Did you mean 'max_norm'"):
        constraints.get("maxnorm_")
    with pytest.raises(TypeError):
        constraints.get(3)


@pytest.mark.parametrize("c", [constraints.MaxNorm(3.0, axis=[0, 1, 2]), constraints.NonNeg(),
                               constraints.UnitNorm(axis=1), constraints.MinMaxNorm(0.1, 2.0, 0.5, 1)])
def test_serialize_round_trip(c):
    config = constraints.serialize(c)
    assert config == {"module": "keras.constraints", "class_name": type(c).__name__,
                      "config": c.get_config(), "registered_name": None}
    back = constraints.get(config)
    assert type(back) is type(c) and back.get_config() == c.get_config()
    assert constraints.serialize(None) is None


def test_values_and_configs_match_keras(rng):
    keras = keras_or_skip()
    w = rng.standard_normal((3, 3, 4, 5)).astype(numpy.float32) * 2
    pairs = [
        (constraints.MaxNorm(1.5, axis=[0, 1, 2]), keras.constraints.MaxNorm(1.5, axis=[0, 1, 2])),
        (constraints.MinMaxNorm(0.5, 1.2, 0.3, axis=3), keras.constraints.MinMaxNorm(0.5, 1.2, 0.3, axis=3)),
        (constraints.UnitNorm(axis=0), keras.constraints.UnitNorm(axis=0)),
        (constraints.NonNeg(), keras.constraints.NonNeg()),
    ]
    tensor = keras.ops.convert_to_tensor(w)
    for ours, theirs in pairs:
        expected = theirs(tensor).detach().cpu().numpy()
        numpy.testing.assert_allclose(ours(w), expected, rtol=1e-6, atol=1e-7, err_msg=type(ours).__name__)
        assert constraints.serialize(ours) == keras.constraints.serialize(theirs)
