"""Regularizers: penalties against written-out formulas, gradients against finite differences."""
import os

import numpy
import pytest

from gpu_dl import regularizers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient

SHAPES = [(1,), (3, 1), (17, 3), (3, 3, 33)]


def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def away_from_zero(rng, shape):
    """Values with |x| >= 0.1, so |x| is differentiable within the finite-difference step."""
    x = rng.standard_normal(shape)
    return numpy.sign(x) * (0.1 + numpy.abs(x))


def orthogonal_expected(x, factor, mode):
    """Keras's formula written over unordered pairs: factor * sum_{i<j} |cos(v_i, v_j)| / #pairs."""
    v = x if mode == "rows" else x.T
    n = v.shape[0]
    norms = numpy.maximum(numpy.sqrt((v.astype(numpy.float64) ** 2).sum(axis=1)), 1e-7)
    total = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            total += abs(v[i] @ v[j]) / (norms[i] * norms[j])
    return factor * total / (n * (n - 1) / 2) if n > 1 else 0.0


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_l1_l2_values(xp, rng, shape, dtype):
    host = rng.standard_normal(shape).astype(dtype)
    x = xp.asarray(host)
    cases = [
        (regularizers.L1(0.3), 0.3 * numpy.abs(host.astype(float)).sum()),
        (regularizers.L2(0.2), 0.2 * (host.astype(float) ** 2).sum()),
        (regularizers.L1L2(l1=0.1, l2=0.05),
         0.1 * numpy.abs(host.astype(float)).sum() + 0.05 * (host.astype(float) ** 2).sum()),
        (regularizers.L1L2(), 0.0),
    ]
    for reg, expected in cases:
        penalty = reg(x)
        assert type(penalty) is type(x) and penalty.shape == () and penalty.dtype == x.dtype
        tol = 1e-5 if dtype == "float32" else 1e-12
        assert float(to_numpy(penalty)) == pytest.approx(expected, rel=tol, abs=tol)


@pytest.mark.parametrize("shape", [(3, 5), (17, 3), (1, 4), (33, 17)])
@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer_value(xp, rng, shape, mode):
    host = rng.standard_normal(shape)
    penalty = regularizers.OrthogonalRegularizer(factor=0.2, mode=mode)(xp.asarray(host))
    assert penalty.shape == () and penalty.dtype == numpy.float64
    assert float(to_numpy(penalty)) == pytest.approx(orthogonal_expected(host, 0.2, mode), rel=1e-12, abs=1e-15)


def test_orthogonal_regularizer_zero_row_is_finite(xp):
    host = numpy.array([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]], dtype=numpy.float32)
    reg = regularizers.OrthogonalRegularizer(factor=1.0)
    assert float(to_numpy(reg(xp.asarray(host)))) == pytest.approx(orthogonal_expected(host, 1.0, "rows"), rel=1e-6)
    assert numpy.all(numpy.isfinite(to_numpy(reg.gradient(xp.asarray(host)))))


def test_orthogonal_regularizer_needs_rank_2(xp):
    with pytest.raises(ValueError, match="rank 2"):
        regularizers.OrthogonalRegularizer()(xp.ones((2, 2, 2), dtype=xp.float32))


def test_orthogonal_of_orthonormal_rows_is_zero(xp):
    penalty = regularizers.OrthogonalRegularizer(factor=1.0)(xp.eye(3, 5))
    assert float(to_numpy(penalty)) == 0.0


# --------------------------------------------------------------- gradients
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.2), regularizers.L1L2(0.1, 0.05)],
                         ids=["L1", "L2", "L1L2"])
def test_l1_l2_gradients(xp, rng, shape, reg):
    x = xp.asarray(away_from_zero(rng, shape))
    grad = reg.gradient(x)
    assert type(grad) is type(x) and grad.dtype == x.dtype
    assert_gradient(reg, x, grad, rng, what=type(reg).__name__)


def test_l1_gradient_at_zero_is_zero(xp):
    x = xp.asarray([0.0, -2.0, 3.0])
    numpy.testing.assert_array_equal(to_numpy(regularizers.L1(0.5).gradient(x)), [0.0, -0.5, 0.5])


def test_gradient_keeps_float32(xp, rng):
    x = xp.asarray(rng.standard_normal((17, 3)).astype(numpy.float32))
    for reg in [regularizers.L1L2(0.1, 0.2), regularizers.OrthogonalRegularizer(0.1, "columns")]:
        grad = reg.gradient(x)
        assert grad.dtype == numpy.float32 and grad.shape == x.shape


@pytest.mark.parametrize("shape", [(3, 5), (17, 3), (5, 1), (1, 5), (33, 17)])
@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer_gradient(xp, rng, shape, mode):
    reg = regularizers.OrthogonalRegularizer(factor=0.7, mode=mode)
    x = xp.asarray(rng.standard_normal(shape))
    assert_gradient(reg, x, reg.gradient(x), rng, what=f"OrthogonalRegularizer({mode})")


# --------------------------------------------------------------- arguments
@pytest.mark.parametrize("make, argument", [
    (lambda: regularizers.L1(-0.1), "l1"),
    (lambda: regularizers.L2(float("inf")), "l2"),
    (lambda: regularizers.L1L2(l1=float("nan")), "l1"),
    (lambda: regularizers.L1L2(l2="0.1"), "l2"),
    (lambda: regularizers.OrthogonalRegularizer(factor=-1.0), "factor"),
    (lambda: regularizers.OrthogonalRegularizer(mode="diagonal"), "mode"),
])
def test_bad_arguments(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


def test_defaults():
    assert regularizers.L1().l1 == 0.01 and regularizers.L2().l2 == 0.01
    assert (regularizers.L1L2().l1, regularizers.L1L2().l2) == (0.0, 0.0)
    assert regularizers.L1(None).l1 == 0.01
    reg = regularizers.OrthogonalRegularizer()
    assert (reg.factor, reg.mode) == (0.01, "rows")


# --------------------------------------------------------------- catalogue
@pytest.mark.parametrize("name, cls, config", [
    ("l1", regularizers.L1, {"l1": 0.01}), ("L1", regularizers.L1, {"l1": 0.01}),
    ("l2", regularizers.L2, {"l2": 0.01}), ("L2", regularizers.L2, {"l2": 0.01}),
    ("L1L2", regularizers.L1L2, {"l1": 0.0, "l2": 0.0}), ("l1l2", regularizers.L1L2, {"l1": 0.0, "l2": 0.0}),
    ("l1_l2", regularizers.L1L2, {"l1": 0.01, "l2": 0.01}),
    ("orthogonal_regularizer", regularizers.OrthogonalRegularizer, {"factor": 0.01, "mode": "rows"}),
    ("OrthogonalRegularizer", regularizers.OrthogonalRegularizer, {"factor": 0.01, "mode": "rows"}),
])
def test_get_by_name(name, cls, config):
    reg = regularizers.get(name)
    assert type(reg) is cls and reg.get_config() == config


def test_get_unknown_name_suggests():
    with pytest.raises(ValueError, match="Did you mean 'orthogonal_regularizer'"):
        regularizers.get("orthogonal_regulariser")


def test_get_none_instance_class_callable():
    assert regularizers.get(None) is None
    reg = regularizers.L2(0.5)
    assert regularizers.get(reg) is reg
    assert type(regularizers.get(regularizers.L1)) is regularizers.L1
    with pytest.raises(TypeError, match="gradient"):
        regularizers.get(lambda x: 0.01 * (x ** 2).sum())
    with pytest.raises(TypeError):
        regularizers.get(0.01)


@pytest.mark.parametrize("reg", [regularizers.L1(0.2), regularizers.L2(0.01), regularizers.L1L2(0.1, 0.3),
                                 regularizers.OrthogonalRegularizer(0.5, "columns")])
def test_serialize_round_trip(reg):
    config = regularizers.serialize(reg)
    assert config == {"module": "keras.regularizers", "class_name": type(reg).__name__,
                      "config": reg.get_config(), "registered_name": None}
    back = regularizers.get(config)
    assert type(back) is type(reg) and back.get_config() == reg.get_config()
    assert regularizers.serialize(None) is None


def test_serialized_form_is_keras():
    assert regularizers.serialize(regularizers.L2(0.01))["config"] == {"l2": 0.01}
    assert regularizers.serialize(regularizers.L2(0.01))["class_name"] == "L2"


# ---------------------------------------------------------- Keras as oracle
def test_values_match_keras(rng):
    keras = keras_or_skip()
    x = rng.standard_normal((17, 5)).astype(numpy.float32)
    x[3] = 0.0                                   # a zero row exercises the norm floor
    pairs = [
        (regularizers.L1(0.3), keras.regularizers.L1(0.3)),
        (regularizers.L2(0.2), keras.regularizers.L2(0.2)),
        (regularizers.L1L2(0.1, 0.05), keras.regularizers.L1L2(0.1, 0.05)),
        (regularizers.OrthogonalRegularizer(0.2, "rows"), keras.regularizers.OrthogonalRegularizer(0.2, "rows")),
        (regularizers.OrthogonalRegularizer(0.2, "columns"),
         keras.regularizers.OrthogonalRegularizer(0.2, "columns")),
    ]
    tensor = keras.ops.convert_to_tensor(x)
    for ours, theirs in pairs:
        expected = float(theirs(tensor))
        assert float(ours(x)) == pytest.approx(expected, rel=1e-5), type(ours).__name__
    for name in ["l1", "l2", "l1l2", "orthogonal_regularizer", "L1L2"]:
        assert regularizers.get(name).get_config() == pytest.approx(keras.regularizers.get(name).get_config())
    keras_config = keras.regularizers.serialize(keras.regularizers.L1L2(0.1, 0.2))
    assert regularizers.serialize(regularizers.get(keras_config)) == keras_config
