"""The activation kernels against the NumPy path (ops/elementwise.py) on the same random inputs.

GPU tier only (skipped without a CUDA device); outputs are NaN-poisoned
before each launch by the suite's autouse fixture. Inputs mix standard
normals with the points where formulas switch branch (0, relu's threshold
and max_value, +-3 for the hard functions) and extremes (+-1e4) that would
overflow a naive exp.
"""
import numpy
import pytest

from gpu_dl import activations, layers
from gpu_dl.ops import activation_kernels

CASES = [
    ("linear", {}), ("relu", {}), ("relu", {"negative_slope": 0.1, "max_value": 2.5, "threshold": 0.5}),
    ("relu", {"negative_slope": 0.3, "threshold": -1.0}), ("relu", {"max_value": 6.0}), ("relu6", {}),
    ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.3}), ("leaky_relu", {"negative_slope": 1.5}),
    ("elu", {}), ("elu", {"alpha": 0.5}), ("selu", {}), ("exponential", {}), ("sigmoid", {}), ("softplus", {}),
    ("silu", {}), ("tanh", {}), ("softsign", {}), ("hard_sigmoid", {}), ("hard_silu", {}), ("step", {}),
]
SIZES = [1, 3, 17, 33, 100003]
# CUDA's exp/tanh and NumPy's differ by an ulp or two, and contracted multiply-adds round once where
# NumPy rounds twice; 1 - y (sigmoid, tanh near saturation) turns that into a larger relative error
# of a small result, so an absolute term of a few ulps of 1 is allowed too.
TOLERANCE = {"float32": dict(rtol=4e-6, atol=1e-6), "float64": dict(rtol=1e-11, atol=1e-15)}
SPECIAL = [0.0, 0.5, -0.5, 2.5, -1.0, 6.0, 3.0, -3.0, 1e4, -1e4, 80.0, -80.0]


def _inputs(rng, n, dtype, name):
    x = rng.standard_normal(n) * 3
    x[: min(n, len(SPECIAL))] = SPECIAL[: min(n, len(SPECIAL))]
    if name == "exponential":
        x = numpy.clip(x, -80, 80)   # exp(1e4) is inf on both paths; keep the comparison finite
    return x.astype(dtype), rng.standard_normal(n).astype(dtype)


def _close(got, want, dtype, what):
    got = numpy.asarray(got)
    assert not numpy.isnan(got).any() or numpy.isnan(want).any(), f"{what}: unwritten (NaN) elements"
    numpy.testing.assert_allclose(got, want, **TOLERANCE[dtype], err_msg=what)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_forward_and_backward_match_numpy(cupy_only, rng, dtype, n, name, params):
    cupy = cupy_only
    f = activations.make(name, **params)
    assert activation_kernels.has_kernel(f.name, cupy.zeros(1, dtype=dtype))
    x, dy = _inputs(rng, n, dtype, name)
    want_y = f(x)
    want_dx = f.grad(x, want_y, dy)
    got_y = f(cupy.asarray(x))
    got_dx = f.grad(cupy.asarray(x), got_y, cupy.asarray(dy))
    assert got_y.dtype == dtype and got_dx.dtype == dtype
    _close(cupy.asnumpy(got_y), want_y, dtype, f"{name}{params} forward")
    _close(cupy.asnumpy(got_dx), want_dx, dtype, f"{name}{params} backward")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (33, 5), (2, 3, 7)])
@pytest.mark.parametrize("name", ["relu", "tanh", "linear", "softplus"])
def test_fused_bias_forward_is_bias_then_activation(cupy_only, rng, dtype, shape, name):
    cupy = cupy_only
    f = activations.make(name)
    z = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype)
    want_z = z + bias
    got_z, got_y = f.with_bias(cupy.asarray(z), cupy.asarray(bias))
    _close(cupy.asnumpy(got_z), want_z, dtype, "z + bias")
    _close(cupy.asnumpy(got_y), f(want_z), dtype, f"{name}(z + bias)")


def test_dense_on_the_gpu_matches_numpy(cupy_only, rng):
    from gpu_dl.ops import elementwise as ew
    cupy = cupy_only
    x = rng.standard_normal((17, 5))
    layer = layers.Dense(3, activation="elu", bias_initializer="random_normal", dtype="float64")
    layer.ensure_built((None, 5))
    kernel, bias = cupy.asnumpy(layer.kernel.value), cupy.asnumpy(layer.bias.value)
    z = x @ kernel + bias
    y = ew.elu_forward(z)
    dz = ew.elu_backward(z, y, numpy.ones_like(y))
    got = layer(cupy.asarray(x), training=True)
    dx = layer.backward(cupy.ones(y.shape))
    _close(cupy.asnumpy(got), y, "float64", "Dense forward")
    _close(cupy.asnumpy(dx), dz @ kernel.T, "float64", "Dense input gradient")
    _close(cupy.asnumpy(layer.kernel.grad), x.T @ dz, "float64", "Dense kernel gradient")
    _close(cupy.asnumpy(layer.bias.grad), dz.sum(axis=0), "float64", "Dense bias gradient")


def test_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    with pytest.raises(TypeError, match="float32 or float64"):
        activation_kernels.bias_activation_cuda(cupy.zeros(4, dtype=cupy.float16), None, "relu", {})
    with pytest.raises(ValueError, match="`bias` must have shape \\(4,\\)"):
        activation_kernels.bias_activation_cuda(cupy.zeros((2, 4), dtype=cupy.float32),
                                                cupy.zeros(3, dtype=cupy.float32), "relu", {})
    with pytest.raises(ValueError, match="C-contiguous"):
        activation_kernels.bias_activation_cuda(cupy.zeros((4, 2), dtype=cupy.float32).T, None, "relu", {})
    with pytest.raises(ValueError, match="`dy` must have shape"):
        z = cupy.zeros(4, dtype=cupy.float32)
        activation_kernels.activation_backward_cuda(z, z, cupy.zeros(5, dtype=cupy.float32), "relu", {})
    with pytest.raises(TypeError, match="CuPy array"):
        activation_kernels.bias_activation_cuda(numpy.zeros(4, dtype=numpy.float32), None, "relu", {})


def test_every_elementwise_activation_has_a_kernel():
    from gpu_dl.activations import _PAIRS
    row_operations = {"softmax", "log_softmax"}
    assert set(_PAIRS) - row_operations == set(activation_kernels.KIND)
