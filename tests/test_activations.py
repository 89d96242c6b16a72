"""Each activation: forward against its formula written out in NumPy, backward against finite differences."""
import os

import numpy
import pytest

from gpu_dl import activations
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def np_sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


def np_softmax(x, axis=-1):
    e = numpy.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


EXPECTED = {
    "relu": lambda x: numpy.maximum(x, 0),
    "leaky_relu": lambda x: numpy.where(x > 0, x, 0.2 * x),
    "relu6": lambda x: numpy.clip(x, 0, 6),
    "elu": lambda x: numpy.where(x > 0, x, numpy.exp(x) - 1),
    "selu": lambda x: SELU_SCALE * numpy.where(x > 0, x, SELU_ALPHA * (numpy.exp(x) - 1)),
    "softplus": lambda x: numpy.log(1 + numpy.exp(x)),
    "softsign": lambda x: x / (1 + numpy.abs(x)),
    "silu": lambda x: x * np_sigmoid(x),
    "tanh": numpy.tanh,
    "sigmoid": np_sigmoid,
    "hard_sigmoid": lambda x: numpy.clip(x / 6 + 0.5, 0, 1),     # Keras 3: relu6(x + 3) / 6
    "hard_silu": lambda x: x * numpy.clip(x / 6 + 0.5, 0, 1),
    "exponential": numpy.exp,
    "linear": lambda x: x,
    "softmax": np_softmax,
    "log_softmax": lambda x: numpy.log(np_softmax(x)),
    "step": lambda x: (x > 0).astype(x.dtype),
}
KINKS = {"relu": [0], "leaky_relu": [0], "relu6": [0, 6], "elu": [0], "selu": [0], "hard_sigmoid": [-3, 3],
         "hard_silu": [-3, 3], "step": [0]}


def inputs(rng, shape, name):
    """Values in (-8, 8) kept 1e-2 away from the function's kinks."""
    x = rng.uniform(-8, 8, shape)
    for kink in KINKS.get(name, []):
        near = numpy.abs(x - kink) < 1e-2
        x[near] += 0.05
    return x


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (33, 5)])
def test_forward_matches_formula(xp, rng, name, shape):
    x = inputs(rng, shape, name)
    fn = activations.get(name)
    numpy.testing.assert_allclose(to_numpy(fn(xp.asarray(x))), EXPECTED[name](x), rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(to_numpy(getattr(activations, name)(xp.asarray(x))), EXPECTED[name](x),
                                  rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_backward_matches_finite_differences(xp, rng, name):
    fn = activations.get(name)
    x = xp.asarray(inputs(rng, (3, 17), name))
    w = xp.asarray(rng.standard_normal((3, 17)))
    dx = fn.grad(x, fn(x), w)
    assert_gradient(lambda v: (fn(v) * w).sum(), x, dx, rng, what=name)


@pytest.mark.parametrize("params", [dict(negative_slope=0.1), dict(max_value=2.5), dict(threshold=1.0),
                                    dict(negative_slope=0.3, max_value=4.0, threshold=-0.5)])
def test_parameterised_relu_matches_keras_rule(xp, rng, params):
    x = inputs(rng, (5, 9), "relu")
    slope, top, threshold = params.get("negative_slope", 0), params.get("max_value"), params.get("threshold", 0)
    expected = numpy.where(x > threshold, x, 0)
    if top is not None:
        expected = numpy.clip(expected, 0, top)
    expected = expected - slope * numpy.maximum(threshold - x, 0)
    fn = activations.make("relu", **params)
    numpy.testing.assert_allclose(to_numpy(fn(xp.asarray(x))), expected, rtol=1e-12)
    x = x[numpy.abs(x - threshold) > 1e-2][None]
    xv = xp.asarray(x)
    w = xp.asarray(rng.standard_normal(x.shape))
    assert_gradient(lambda v: (fn(v) * w).sum(), xv, fn.grad(xv, fn(xv), w), rng, what="relu")


def test_softmax_over_another_axis(xp, rng):
    x = rng.standard_normal((3, 4, 5))
    fn = activations.make("softmax", axis=1)
    y = fn(xp.asarray(x))
    numpy.testing.assert_allclose(to_numpy(y), np_softmax(x, axis=1), rtol=1e-12)
    assert not fn.is_softmax and activations.get("softmax").is_softmax
    w = xp.asarray(rng.standard_normal(x.shape))
    xv = xp.asarray(x)
    assert_gradient(lambda v: (fn(v) * w).sum(), xv, fn.grad(xv, y, w), rng, what="softmax axis=1")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_extreme_inputs_stay_finite_without_warnings(xp, name):
    if name in ("exponential", "linear", "relu", "leaky_relu", "selu", "elu", "softsign", "silu", "hard_silu", "step"):
        x = xp.asarray(numpy.array([[-1000.0, -50.0, 0.5, 50.0]], dtype="float32"))
    else:
        x = xp.asarray(numpy.array([[-1000.0, -50.0, 0.5, 50.0, 1000.0]], dtype="float32"))
    fn = activations.get(name)
    with numpy.errstate(over="raise", invalid="raise", divide="raise"):   # underflow to 0 is benign
        y = fn(x)
        dx = fn.grad(x, y, xp.ones_like(x))
    assert numpy.isfinite(to_numpy(y)).all() and numpy.isfinite(to_numpy(dx)).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_float32_stays_float32(xp, name):
    x = xp.asarray(numpy.linspace(-2, 2, 12, dtype="float32").reshape(3, 4))
    fn = activations.get(name)
    y = fn(x)
    assert y.dtype == numpy.float32 and fn.grad(x, y, xp.ones_like(x)).dtype == numpy.float32


def test_get_accepts_names_aliases_functions_and_none():
    assert activations.get(None).name == "linear"
    assert activations.get("ReLU").name == "relu"
    assert activations.get("swish").name == "silu"
    assert activations.get(activations.tanh).name == "tanh"
    fn = activations.make("elu", alpha=0.5)
    assert activations.get(fn) is fn
    assert activations.serialize(activations.get("sigmoid")) == "sigmoid"


def test_get_rejects_unknown_names_and_arbitrary_functions():
    with pytest.raises(ValueError, match="Did you mean 'relu'"):
        activations.get("rellu")
    with pytest.raises(TypeError, match="no gradient"):
        activations.get(lambda x: x)
    with pytest.raises(TypeError):
        activations.get(3)


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"step"}))
def test_matches_keras(rng, name):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    x = inputs(rng, (4, 9), name).astype("float32")
    theirs = keras.ops.convert_to_numpy(getattr(keras.activations, name)(x))
    numpy.testing.assert_allclose(to_numpy(activations.get(name)(x)), theirs, rtol=2e-6, atol=2e-6)
