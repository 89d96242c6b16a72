"""Each activation: forward against its formula written out in NumPy, backward against finite differences."""
import math
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import activations, backend
from gpu_dl.backend import to_numpy
from gpu_dl.ops import activation_kernels
from gradcheck import assert_gradient

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def np_sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


def np_erf(x):
    return numpy.vectorize(math.erf)(x)   # the standard library's erf: independent of SciPy's and CuPy's


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
    "celu": lambda x: numpy.where(x > 0, x, numpy.exp(x) - 1),
    "gelu": lambda x: 0.5 * x * (1 + np_erf(x / numpy.sqrt(2))),
    "mish": lambda x: x * numpy.tanh(numpy.log1p(numpy.exp(x))),
    "squareplus": lambda x: (x + numpy.sqrt(x * x + 4)) / 2,
    "tanh_shrink": lambda x: x - numpy.tanh(x),
    "hard_tanh": lambda x: numpy.clip(x, -1, 1),
    "log_sigmoid": lambda x: numpy.log(np_sigmoid(x)),
    "sparse_sigmoid": lambda x: numpy.where(x <= -1, 0, numpy.where(x >= 1, 1, (x + 1) / 2)),
    "sparse_plus": lambda x: numpy.where(x <= -1, 0, numpy.where(x >= 1, x, (x + 1) ** 2 / 4)),
    "hard_shrink": lambda x: numpy.where(numpy.abs(x) > 0.5, x, 0),
    "soft_shrink": lambda x: numpy.sign(x) * numpy.maximum(numpy.abs(x) - 0.5, 0),
}
KINKS = {"relu": [0], "leaky_relu": [0], "relu6": [0, 6], "elu": [0], "selu": [0], "hard_sigmoid": [-3, 3],
         "hard_silu": [-3, 3], "step": [0], "hard_tanh": [-1, 1], "sparse_sigmoid": [-1, 1], "sparse_plus": [-1, 1],
         "hard_shrink": [-0.5, 0.5], "soft_shrink": [-0.5, 0.5]}


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


def test_get_rejects_unknown_names_and_what_is_not_a_function():
    with pytest.raises(ValueError, match="Did you mean 'relu'"):
        activations.get("rellu")
    with pytest.raises(TypeError, match="a function written with gpu_dl.ops"):
        activations.get(3)
    with pytest.raises(TypeError):
        activations.get(activations.ActivationFunction)


def _square_plus_tanh(x):
    return x ** 2 + gpu_dl.ops.tanh(x) * 0.5


def test_a_function_of_the_callers_own_is_traced_for_its_gradient(xp, rng):
    """Keras takes any callable as an activation: gpu_dl traces one written with gpu_dl.ops into a graph, whose
    forward is the function and whose backward its gradient (float64 finite differences)."""
    act = activations.get(_square_plus_tanh)
    assert isinstance(act, activations.TracedActivation) and not act.is_softmax
    host = rng.standard_normal((5, 3))
    x = xp.asarray(host)
    y = act(x)
    numpy.testing.assert_allclose(backend.to_numpy(y), host ** 2 + numpy.tanh(host) * 0.5, rtol=1e-12)
    dy = xp.asarray(rng.standard_normal((5, 3)))
    grad = act.grad(x, y, dy)
    assert_gradient(lambda v: (act(v) * dy).sum(), x, grad, rng)
    # with_bias adds the bias in place, as the built-in activations do
    z, out = act.with_bias(xp.zeros((5, 3)), xp.ones(3))
    numpy.testing.assert_allclose(backend.to_numpy(out), numpy.full((5, 3), 1 + numpy.tanh(1.0) * 0.5), rtol=1e-12)
    assert activations.serialize(act) == {"module": "builtins", "class_name": "function",
                                          "config": "_square_plus_tanh", "registered_name": "function"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_reads_input_is_false_only_where_the_output_gives_the_gradient(xp, rng, dtype):
    """A layer may pass y in place of x where gradient_reads_input is False: the gradient is then the same bits
    (kernels on CuPy float arrays, array arithmetic on NumPy); every other elementwise activation with a kernel
    reads x, and so does a function of the caller's own, whatever its name."""
    host = rng.standard_normal((7, 5)).astype(dtype) * 3
    x, dy = xp.asarray(host), xp.asarray(rng.standard_normal((7, 5)).astype(dtype))
    from_output = set()
    for name in sorted(activation_kernels.KIND):
        act = activations.get(name)
        y = act(x)
        if not act.gradient_reads_input:
            from_output.add(name)
            numpy.testing.assert_array_equal(to_numpy(act.grad(y, y, dy)), to_numpy(act.grad(x, y, dy)))
    assert from_output == {"linear", "tanh", "sigmoid", "exponential", "step", "relu", "relu6", "leaky_relu"}

    def tanh(v):
        return gpu_dl.ops.tanh(v) * 2.0
    assert activations.get(tanh).gradient_reads_input


# The relu and leaky_relu parameters whose gradient comes from the output, then those whose gradient reads x.
FROM_OUTPUT = [("relu", {}), ("relu", {"max_value": 2.5}), ("relu", {"max_value": 6.0, "threshold": 0.5}),
               ("relu", {"threshold": 0.5}), ("relu", {"max_value": 0.25, "threshold": 0.5}),
               ("relu", {"max_value": 0.0}), ("relu", {"max_value": -1.0}), ("relu", {"max_value": numpy.inf}),
               ("relu6", {}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 1e-6}),
               ("leaky_relu", {"negative_slope": 1.0}), ("leaky_relu", {"negative_slope": 3.0})]
FROM_INPUT = [("relu", {"negative_slope": 0.1}), ("relu", {"threshold": -1.0}),
              ("relu", {"negative_slope": 1e-30, "max_value": 6.0}), ("leaky_relu", {"negative_slope": -0.5}),
              ("leaky_relu", {"negative_slope": 0.0})]


def _gradient_from_input(name, params, x, dy):
    """relu's and leaky_relu's gradient written out from x alone, the way the library computed it before
    reading y: the reference for the bits."""
    if name == "leaky_relu":
        slope = x.dtype.type(params.get("negative_slope", 0.2))
        above = x > 0 if slope <= 1 else x < 0
        return dy * numpy.where(above, x.dtype.type(1), slope)
    slope, threshold = params.get("negative_slope", 0.0), x.dtype.type(params.get("threshold", 0.0))
    max_value = 6.0 if name == "relu6" else params.get("max_value")
    passes = x > threshold
    if max_value is not None:
        passes &= (x > 0) & (x < x.dtype.type(max_value))
    factor = passes + x.dtype.type(slope) * (x < threshold) if slope else passes.astype(x.dtype)
    return dy * factor


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,params", FROM_OUTPUT + FROM_INPUT,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(FROM_OUTPUT + FROM_INPUT)])
def test_relu_gradients_come_from_the_output_exactly_where_it_decides_them(xp, rng, dtype, name, params):
    """relu (no slope, threshold >= 0) and leaky_relu (slope > 0) need no x: their gradient from y alone (x all
    NaN) has the bits of the gradient written out from x, at the ties with threshold and max_value, at +-0,
    the smallest subnormals, the largest values, infinities and NaN. Where a slope can round to 0 (or is 0,
    which makes y NaN at +-inf), or a negative threshold passes x <= 0 through, x is read: y alone would give
    another gradient there."""
    info = numpy.finfo(dtype)
    special = [0.0, -0.0, 0.5, -0.5, 0.25, 2.5, 6.0, -1.0, 1.0, 3.0, -3.0, info.tiny, -info.tiny,
               info.smallest_subnormal, -info.smallest_subnormal, info.max, -info.max, numpy.inf, -numpy.inf,
               numpy.nan]
    host = numpy.concatenate([special, rng.standard_normal(45) * 3]).astype(dtype)
    dy_host = rng.standard_normal(host.size).astype(dtype)
    act = activations.make(name, **params)
    with numpy.errstate(over="ignore", invalid="ignore"):     # slope * x at +-inf and the largest values
        y = act(xp.asarray(host))
        want = _gradient_from_input(name, params, host, dy_host)
        from_output = _gradient_from_input(name, params, to_numpy(y), dy_host)
    bits = f"u{numpy.dtype(dtype).itemsize}"
    x, dy = xp.asarray(host), xp.asarray(dy_host)
    numpy.testing.assert_array_equal(to_numpy(act.grad(x, y, dy)).view(bits), want.view(bits))
    if (name, params) in FROM_OUTPUT:
        assert not act.gradient_reads_input
        numpy.testing.assert_array_equal(to_numpy(act.grad(xp.full_like(x, numpy.nan), y, dy)).view(bits),
                                         want.view(bits))
    else:
        assert act.gradient_reads_input
        assert not numpy.array_equal(from_output, want)


def test_a_function_that_cannot_be_traced_or_written_says_so(xp):
    act = activations.get(lambda x: numpy.asarray(x) * 2)
    with pytest.raises(TypeError, match="cannot be trained.*gpu_dl.ops"):
        act(xp.ones((2, 3)))
    with pytest.raises(ValueError, match="only named functions"):
        activations.serialize(act)
    with pytest.raises(ValueError, match="must keep the shape"):
        activations.get(lambda x: gpu_dl.ops.sum(x, axis=-1))(xp.ones((2, 3)))


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"step"}))
def test_matches_keras(rng, name):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    x = inputs(rng, (4, 9), name).astype("float32")
    theirs = keras.ops.convert_to_numpy(getattr(keras.activations, name)(x))
    numpy.testing.assert_allclose(to_numpy(activations.get(name)(x)), theirs, rtol=2e-6, atol=2e-6)


# ------------------------------------------------- Keras 3's activations with arguments, axis-wise ones
# (name, parameters): every activation beyond the first set, with its defaults and with other arguments.
KERAS_CASES = [
    ("gelu", {}), ("gelu", {"approximate": True}), ("mish", {}), ("celu", {}), ("celu", {"alpha": 0.6}),
    ("squareplus", {}), ("squareplus", {"b": 0.5}), ("tanh_shrink", {}), ("hard_tanh", {}), ("log_sigmoid", {}),
    ("sparse_sigmoid", {}), ("sparse_plus", {}), ("hard_shrink", {}), ("hard_shrink", {"threshold": 1.5}),
    ("soft_shrink", {}), ("soft_shrink", {"threshold": 2.0}), ("threshold", {"threshold": 0.5, "default_value": -2.0}),
    ("glu", {}), ("glu", {"axis": 1}),
]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in KERAS_CASES]


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def edge_inputs(rng, dtype, params):
    """(2, 4, 6) values: random ones in (-8, 8) and the edges, 0, -0, +-threshold, +-1, +-3, +-20, +-1000."""
    t = params.get("threshold", 0.5)
    edges = [0.0, -0.0, t, -t, 1.0, -1.0, 3.0, -3.0, 20.0, -20.0, 1000.0, -1000.0]
    x = numpy.concatenate([rng.uniform(-8, 8, 48 - len(edges)), edges])
    return rng.permutation(x).reshape(2, 4, 6).astype(dtype)


def smooth_inputs(rng, shape):
    """float64 values in (-4, 4), 1e-2 away from every kink of the cases above (0, +-0.5, +-1, +-1.5, +-2)."""
    x = rng.uniform(-4, 4, shape)
    for kink in (0, 0.5, -0.5, 1, -1, 1.5, -1.5, 2, -2):
        x[numpy.abs(x - kink) < 1e-2] += 0.05
    return x


@pytest.mark.parametrize("dtype,tolerance", [("float32", 2e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("name,params", KERAS_CASES, ids=CASE_IDS)
def test_added_activations_match_keras_at_edges(xp, rng, name, params, dtype, tolerance):
    keras = _keras()
    x = edge_inputs(rng, dtype, params)
    theirs = keras.ops.convert_to_numpy(getattr(keras.activations, name)(x, **params))
    ours = activations.make(name, **params)(xp.asarray(x))
    assert ours.dtype == x.dtype and ours.shape == theirs.shape
    numpy.testing.assert_allclose(to_numpy(ours), theirs, rtol=tolerance, atol=tolerance)
    numpy.testing.assert_allclose(to_numpy(getattr(activations, name)(xp.asarray(x), **params)), theirs,
                                  rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name,params", KERAS_CASES, ids=CASE_IDS)
def test_added_activations_backward_matches_finite_differences(xp, rng, name, params):
    fn = activations.make(name, **params)
    x = xp.asarray(smooth_inputs(rng, (3, 4, 6)))
    y = fn(x)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = fn.grad(x, y, w)
    assert dx.dtype == x.dtype
    assert_gradient(lambda v: (fn(v) * w).sum(), x, dx, rng, what=f"{name} {params}")
    x32 = x.astype(numpy.float32)
    assert fn.grad(x32, fn(x32), w.astype(numpy.float32)).dtype == numpy.float32


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_forms_written_out(xp, rng, approximate):
    x = rng.uniform(-6, 6, (5, 7))
    if approximate:   # Keras's tanh form and constants
        expected = 0.5 * x * (1 + numpy.tanh(numpy.sqrt(2 / numpy.pi) * (x + 0.044715 * x ** 3)))
    else:
        expected = x * 0.5 * (1 + np_erf(x / numpy.sqrt(2)))
    numpy.testing.assert_allclose(to_numpy(activations.gelu(xp.asarray(x), approximate=approximate)), expected,
                                  rtol=1e-12, atol=1e-14)
    assert activations.get("gelu").params == {}   # Keras's default: the exact form
    numpy.testing.assert_allclose(to_numpy(activations.get("gelu")(xp.asarray(x))),
                                  x * 0.5 * (1 + np_erf(x / numpy.sqrt(2))), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_glu_halves_the_axis_and_gates_with_the_second_half(xp, rng, axis):
    x = rng.standard_normal((4, 6, 8))
    a, b = numpy.split(x, 2, axis=axis)
    fn = activations.make("glu", axis=axis)
    y = fn(xp.asarray(x))
    numpy.testing.assert_allclose(to_numpy(y), a * np_sigmoid(b), rtol=1e-12)
    assert y.shape == {-1: (4, 6, 4), 1: (4, 3, 8), 0: (2, 6, 8)}[axis]
    assert (fn.output_shape((None, 6, 8) if axis else (4, 6, 8))
            == {-1: (None, 6, 4), 1: (None, 3, 8), 0: (2, 6, 8)}[axis])
    assert not fn.keeps_shape and activations.get("gelu").keeps_shape


def test_glu_refuses_an_odd_axis(xp):
    with pytest.raises(ValueError, match=r"glu splits axis -1 into two halves.*even.*\(2, 5\)"):
        activations.glu(xp.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"'glu' splits axis -1.*even.*\(None, 5\)"):
        activations.get("glu").output_shape((None, 5))
    with pytest.raises(ValueError, match="axis 3 does not exist"):
        activations.make("glu", axis=3).output_shape((None, 4))


def np_simplex_projection(x, axis=-1):
    """Sparsemax by bisection on tau, sum(max(x - tau, 0)) = 1: no sorting, as the reference."""
    x = numpy.moveaxis(x, axis, -1)
    low, high = x.max(-1, keepdims=True) - 1, x.max(-1, keepdims=True)
    for _ in range(200):
        tau = (low + high) / 2
        above = numpy.maximum(x - tau, 0).sum(-1, keepdims=True) > 1
        low, high = numpy.where(above, tau, low), numpy.where(above, high, tau)
    return numpy.moveaxis(numpy.maximum(x - (low + high) / 2, 0), -1, axis)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_sparsemax_is_the_projection_onto_the_simplex(xp, rng, axis):
    x = rng.standard_normal((5, 6, 7))
    y = to_numpy(activations.sparsemax(xp.asarray(x), axis=axis))
    numpy.testing.assert_allclose(y, np_simplex_projection(x, axis), rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(y.sum(axis=axis), 1, rtol=1e-12)
    assert (y >= 0).all() and ((y > 0).sum(axis=axis) > 1).any()   # supports of several values were tried
    y32 = activations.make("sparsemax", axis=axis)(xp.asarray(x, dtype=numpy.float32))
    assert y32.dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(y32), y, atol=1e-5)


def test_sparsemax_gradient_matches_finite_differences(xp, rng):
    fn = activations.get("sparsemax")
    x = xp.asarray(rng.standard_normal((6, 9)))
    y = fn(x)
    w = xp.asarray(rng.standard_normal((6, 9)))
    assert_gradient(lambda v: (fn(v) * w).sum(), x, fn.grad(x, y, w), rng, what="sparsemax")


def test_sparsemax_matches_keras_where_keras_sums_to_one(rng):
    """Keras 3.15's sparsemax takes a wrong threshold once two or more values are in the support (see the next
    test): it agrees with gpu_dl on the rows where its output sums to 1, the rows whose largest value stands 1
    above the rest."""
    keras = _keras()
    x = rng.standard_normal((40, 6)).astype("float32")
    x[::2, 0] = x[::2].max(-1) + 1.5   # a support of one value
    theirs = keras.ops.convert_to_numpy(keras.activations.sparsemax(x))
    ours = to_numpy(activations.sparsemax(x))
    agreeing = numpy.abs(theirs.sum(-1) - 1) < 1e-5
    assert agreeing[::2].all() and agreeing.sum() >= 20
    numpy.testing.assert_allclose(ours[agreeing], theirs[agreeing], rtol=2e-6, atol=2e-6)
    numpy.testing.assert_allclose(ours.sum(-1), 1, rtol=1e-5)


def keras_3_15_sparsemax(x):
    """Keras 3.15's rule, in NumPy: the support of the projection (the leading run of the descending-sorted values
    z_j with z_j > (c_j - 1) / j, c_j their cumulative sums), but tau = (c_1 + ... + c_k - 1) / k over its k
    values, where the projection's tau is (c_k - 1) / k: the same for k = 1, larger by (c_1 + ... + c_(k-1)) / k
    beyond."""
    ranked = -numpy.sort(-x, axis=-1)
    cumulative = numpy.cumsum(ranked, axis=-1)
    support = ranked - (cumulative - 1) / numpy.arange(1, x.shape[-1] + 1) > 0
    k = support.sum(-1, keepdims=True)
    return numpy.maximum(x - (numpy.where(support, cumulative, 0).sum(-1, keepdims=True) - 1) / k, 0)


def test_sparsemax_differs_from_keras_in_its_threshold_only_beyond_a_support_of_one(rng):
    keras = _keras()
    shown = {(0.0, 0.5, 1.0): ([0, 0.25, 0.75], [0, 0, 0.25]),
             (0.1, 0.2, 0.3, 0.4, 0.5): ([0, 0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0, 0]),
             (3.0, 0.0, -1.0): ([1, 0, 0], [1, 0, 0])}
    for row, (projection, theirs_expected) in shown.items():
        x = numpy.array([row])
        ours, theirs = to_numpy(activations.sparsemax(x)), keras.ops.convert_to_numpy(keras.ops.sparsemax(x))
        numpy.testing.assert_allclose(ours[0], projection, atol=1e-12)
        numpy.testing.assert_allclose(theirs[0], theirs_expected, atol=1e-12)
    x = rng.standard_normal((60, 7))
    x[::3, 0] = x[::3].max(-1) + 1.5      # a support of one value in every third row
    ours, theirs = to_numpy(activations.sparsemax(x)), keras.ops.convert_to_numpy(keras.activations.sparsemax(x))
    numpy.testing.assert_allclose(ours, np_simplex_projection(x), atol=1e-12)
    numpy.testing.assert_allclose(theirs, keras_3_15_sparsemax(x), atol=1e-12)
    one = (ours > 0).sum(-1) == 1
    assert one[::3].all() and not one.all()
    numpy.testing.assert_allclose(theirs[one], ours[one], atol=1e-12)
    assert (numpy.abs(theirs[~one] - ours[~one]).max(-1) > 1e-3).all()


@pytest.mark.parametrize("name", [n for n, _ in KERAS_CASES] + ["sparsemax"])
def test_added_activations_run_as_array_arithmetic_on_the_gpu(xp, name):
    # kernels/activations.cu has no case for them: the GPU runs ops/elementwise.py's CuPy arithmetic
    for dtype in (numpy.float32, numpy.float64):
        assert not activation_kernels.has_kernel(name, xp.zeros((2, 4), dtype=dtype))


def test_threshold_needs_both_arguments_and_parameters_are_checked():
    with pytest.raises(TypeError, match=r"'threshold' needs 'threshold' and 'default_value'.*make\('threshold', "
                                        r"threshold=\.\.\., default_value=\.\.\.\)"):
        activations.get("threshold")
    with pytest.raises(TypeError, match="'default_value'"):
        activations.make("threshold", threshold=0.0)
    with pytest.raises(TypeError, match=r"'gelu' has no parameter 'approx'; it takes \['approximate'\]"):
        activations.make("gelu", approx=True)
    with pytest.raises(TypeError, match="'mish' has no parameter 'alpha'; it takes none"):
        activations.make("mish", alpha=1.0)
    with pytest.raises(ValueError, match="Did you mean 'gelu'"):
        activations.get("gelus")
    assert activations.get("HardTanh").name == "hard_tanh"
    assert activations.get(activations.soft_shrink).name == "soft_shrink"
    assert activations.serialize(activations.get("log_sigmoid")) == "log_sigmoid"
