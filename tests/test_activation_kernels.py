"""The activation kernels against the NumPy path (ops/elementwise.py) on the same random inputs.

One body per backend: with ``xp`` = cupy an ``ActivationFunction`` runs the
kernels of kernels/activations.cu and is compared with the NumPy path on the
same host inputs; with ``xp`` = numpy the same body checks the array path
itself (the fused bias forward, Dense). Kernel outputs are NaN-poisoned
before each launch (the suite's autouse ``launch.poisoned_outputs()``), so
an element a kernel leaves unwritten fails. Inputs mix standard normals with
the points where formulas switch branch (0, relu's thresholds and
max_values, +-3 for the hard functions) and extremes (+-1e4) that would
overflow a naive exp. The compile check at the end runs without a GPU.
"""
import numpy
import pytest

from gpu_dl import activations, layers
from gpu_dl.backend import kernels, to_numpy
from gpu_dl.ops import activation_kernels
from gpu_dl.ops import elementwise as ew

CASES = [
    ("linear", {}), ("relu", {}), ("relu", {"negative_slope": 0.1, "max_value": 2.5, "threshold": 0.5}),
    ("relu", {"negative_slope": 0.3, "threshold": -1.0}), ("relu", {"max_value": 6.0}),
    ("relu", {"threshold": -1.0}), ("relu6", {}),
    ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.3}), ("leaky_relu", {"negative_slope": 1.5}),
    ("elu", {}), ("elu", {"alpha": 0.5}), ("selu", {}), ("exponential", {}), ("sigmoid", {}), ("softplus", {}),
    ("silu", {}), ("tanh", {}), ("softsign", {}), ("hard_sigmoid", {}), ("hard_silu", {}), ("step", {}),
]
CASE_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]
SIZES = [1, 3, 17, 33, 100003]
# CUDA's expf/tanhf/log1pf and NumPy's differ by an ulp or two (products are rounded as NumPy rounds
# them, so no multiply-add differs); 1 - y (sigmoid, tanh near saturation) turns an ulp of y into a
# larger relative error of a small result, so an absolute term of a few ulps of 1 is allowed too.
TOLERANCE = {"float32": dict(rtol=4e-6, atol=1e-6), "float64": dict(rtol=1e-11, atol=1e-15)}
# Branch points first (relu thresholds 0.5 and -1, max_values 2.5 and 6, hard_sigmoid's +-3), then
# values whose exp overflows (+-1e4; exp(80) still fits float32), then NaN and infinities, which
# must come out where NumPy's formulas put them (NaN, +-inf, or a finite limit).
SPECIAL = [0.0, 0.5, -0.5, 2.5, -1.0, 6.0, 3.0, -3.0, 1e4, -1e4, 80.0, -80.0, -0.0,
           numpy.nan, numpy.inf, -numpy.inf]


def _inputs(rng, n, dtype):
    x = rng.standard_normal(n) * 3
    k = min(n, len(SPECIAL))
    x[:k] = SPECIAL[:k]
    return x.astype(dtype), rng.standard_normal(n).astype(dtype)


def _close(got, want, dtype, what):
    got = to_numpy(got)
    assert got.dtype == numpy.dtype(dtype), f"{what}: dtype {got.dtype}, expected {dtype}"
    # NaN where NumPy has none is an element the kernel never wrote (outputs start NaN); assert_allclose
    # also requires NaN at exactly NumPy's NaN positions.
    unwritten = numpy.isnan(got) & ~numpy.isnan(want)
    assert not unwritten.any(), (f"{what}: {unwritten.sum()} unwritten (NaN) elements, "
                                 f"first at {numpy.argmax(unwritten)}")
    numpy.testing.assert_allclose(got, want, **TOLERANCE[dtype], err_msg=what)


def _on_gpu(xp):
    return xp is not numpy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_forward_and_backward_match_numpy(xp, rng, dtype, n, name, params):
    f = activations.make(name, **params)
    assert activation_kernels.has_kernel(f.name, xp.zeros(1, dtype=dtype)) == _on_gpu(xp)
    x, dy = _inputs(rng, n, dtype)
    with numpy.errstate(all="ignore"):   # exp(1e4) overflows, inf * 0 is NaN: on both paths alike
        want_y = f(x)
        want_dx = f.grad(x, want_y, dy)
        got_y = f(xp.asarray(x))
        got_dx = f.grad(xp.asarray(x), got_y, xp.asarray(dy))
    _close(got_y, want_y, dtype, f"{name}{params} forward, n={n}")
    _close(got_dx, want_dx, dtype, f"{name}{params} backward, n={n}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (33, 5), (2, 3, 7)])
@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_fused_bias_forward_is_bias_then_activation(xp, rng, dtype, shape, name, params):
    f = activations.make(name, **params)
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    bias = rng.standard_normal(shape[-1]).astype(dtype)
    want_z = z + bias
    with numpy.errstate(all="ignore"):
        want_y = f(want_z)
        got_z, got_y = f.with_bias(xp.asarray(z), xp.asarray(bias))
    _close(got_z, want_z, dtype, f"z + bias, {shape}")
    _close(got_y, want_y, dtype, f"{name}{params}(z + bias), {shape}")


@pytest.mark.parametrize("name", ["relu", "linear", "sigmoid"])
def test_fused_forward_without_bias_is_the_activation(xp, rng, name):
    f = activations.make(name)
    z = rng.standard_normal((33, 5)).astype("float32")
    got_z, got_y = f.with_bias(xp.asarray(z), None)
    _close(got_z, z, "float32", "z untouched")
    _close(got_y, f(z), "float32", f"{name}(z)")
    if name == "linear":   # the identity returns its input, as NumPy's linear does
        assert got_y is got_z


@pytest.mark.parametrize("name,params", [("relu", {}), ("leaky_relu", {}), ("tanh", {}), ("linear", {}),
                                         ("relu", {"negative_slope": 0.1})])
def test_fused_forward_without_z_writes_y_alone(xp, rng, name, params):
    """want_z=False: the same y; on the GPU the kernel leaves the caller's buffer as it was (no z + bias
    stored) and returns no z, but for the identity, whose z is y; the array path returns z + bias."""
    f = activations.make(name, **params)
    z = rng.standard_normal((17, 5)).astype("float32")
    bias = rng.standard_normal(5).astype("float32")
    buffer = xp.array(z)                   # a copy: NumPy adds the bias into it in place
    got_z, got_y = f.with_bias(buffer, xp.asarray(bias), want_z=False)
    _close(got_y, f(z + bias), "float32", f"{name}{params}(z + bias)")
    if _on_gpu(xp) and name != "linear":
        assert got_z is None
        numpy.testing.assert_array_equal(to_numpy(buffer), z)
    else:
        _close(got_z, z + bias, "float32", "z + bias")
        if name == "linear":
            assert got_y is got_z


@pytest.mark.parametrize("make", [
    lambda activation, dtype: layers.Dense(5, activation=activation, dtype=dtype),
    lambda activation, dtype: layers.EinsumDense("ab,bc->ac", 5, bias_axes="c", activation=activation, dtype=dtype),
], ids=["dense", "einsum_dense"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "elu", None])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_training_keeps_the_preactivation_only_where_the_gradient_reads_it(xp, rng, dtype, activation, make):
    """Dense's (and EinsumDense's) fused bias + activation writes z in training only where the gradient reads
    it (elu, and any activation where a model keeps it): outputs and gradients are the same bits as with z
    kept, on both backends; on the GPU the saved z is None (the identity's is y)."""
    x_host = rng.standard_normal((19, 7)).astype(dtype)
    dy_host = rng.standard_normal((19, 5)).astype(dtype)

    def run(keep):
        layer = make(activation, dtype)
        layer.ensure_built((None, 7))
        layer.set_weights(weights)
        layer.keep_preactivation = keep
        y = layer(xp.asarray(x_host), training=True)
        saved_z = layer.saved()[1]
        dx = layer.backward(xp.asarray(dy_host))
        return saved_z, [to_numpy(a) for a in (y, dx, layer.kernel.grad, layer.bias.grad)]

    weights = [rng.standard_normal((7, 5)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    z, results = run(False)
    kept_z, kept = run(True)
    assert kept_z is not None
    if _on_gpu(xp) and activation not in ("elu", None):
        assert z is None                   # the kernel wrote y alone
    else:
        assert z is not None
    for got, want in zip(results, kept):
        numpy.testing.assert_array_equal(got, want)


def test_strided_inputs_and_gradients_take_a_contiguous_copy(xp, rng):
    f = activations.make("elu", alpha=0.5)
    x = rng.standard_normal((17, 33))
    dy = rng.standard_normal((33, 17))
    want_y = f(x.T)
    want_dx = f.grad(x.T, want_y, dy)
    got_y = f(xp.asarray(x).T)
    got_dx = f.grad(xp.asarray(x).T, got_y, xp.asarray(dy.T.copy()).T)
    _close(got_y, want_y, "float64", "elu of a transposed view")
    _close(got_dx, want_dx, "float64", "elu gradient with transposed views")


def test_dense_forward_and_backward_unchanged(xp, rng):
    x = rng.standard_normal((17, 5))
    layer = layers.Dense(3, activation="elu", bias_initializer="random_normal", dtype="float64")
    layer.ensure_built((None, 5))
    kernel, bias = layer.get_weights()
    z = x @ kernel + bias
    y = ew.elu_forward(z)
    dz = ew.elu_backward(z, y, numpy.ones_like(y))
    got = layer(xp.asarray(x), training=True)
    saved_x, saved_z, saved_y = layer.saved()
    _close(saved_z, z, "float64", "Dense saved pre-activation")
    assert saved_y is got
    dx = layer.backward(xp.ones(y.shape))
    _close(got, y, "float64", "Dense forward")
    _close(dx, dz @ kernel.T, "float64", "Dense input gradient")
    _close(layer.kernel.grad, x.T @ dz, "float64", "Dense kernel gradient")
    _close(layer.bias.grad, dz.sum(axis=0), "float64", "Dense bias gradient")


def test_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    z32 = cupy.zeros((2, 4), dtype=cupy.float32)
    with pytest.raises(TypeError, match="bias_activation_fwd: `z` must be float32 or float64"):
        activation_kernels.bias_activation_cuda(cupy.zeros(4, dtype=cupy.float16), None, "relu", {})
    with pytest.raises(ValueError, match=r"bias_activation_fwd_f32: `bias` must have shape \(4,\)"):
        activation_kernels.bias_activation_cuda(z32, cupy.zeros(3, dtype=cupy.float32), "relu", {})
    with pytest.raises(TypeError, match="bias_activation_fwd_f32: `bias` must have dtype float32"):
        activation_kernels.bias_activation_cuda(z32, cupy.zeros(4, dtype=cupy.float64), "relu", {})
    with pytest.raises(ValueError, match="bias_activation_fwd_f32: `z` must be C-contiguous"):
        activation_kernels.bias_activation_cuda(cupy.zeros((4, 2), dtype=cupy.float32).T, None, "relu", {})
    with pytest.raises(TypeError, match="`z` must be a CuPy array"):
        activation_kernels.bias_activation_cuda(numpy.zeros(4, dtype=numpy.float32), None, "relu", {})
    z = cupy.zeros(4, dtype=cupy.float32)
    with pytest.raises(ValueError, match="activation_bwd_f32: `dy` must have shape"):
        activation_kernels.activation_backward_cuda(z, z, cupy.zeros(5, dtype=cupy.float32), "relu", {})
    with pytest.raises(TypeError, match="activation_bwd_f32: `y` must have dtype float32"):
        activation_kernels.activation_backward_cuda(z, z.astype(cupy.float64), z, "relu", {})
    with pytest.raises(ValueError, match="activation_bwd_f32: `dy` must be C-contiguous"):
        z42 = cupy.zeros((4, 2), dtype=cupy.float32)
        activation_kernels.activation_backward_cuda(z42, z42, z32.T, "relu", {})
    with pytest.raises(TypeError, match="'tanh' has no parameter 'alpha'"):
        activation_kernels.bias_activation_cuda(z, None, "tanh", {"alpha": 1.0})
    with pytest.raises(TypeError, match="'elu' has no parameter 'slope'"):
        activation_kernels.activation_backward_cuda(z, z, z, "elu", {"slope": 1.0})


def test_every_elementwise_activation_has_a_kernel_but_those_added_later():
    from gpu_dl.activations import _PAIRS
    row_operations = {"softmax", "log_softmax", "sparsemax", "glu"}
    # activations.cu, verified on a GPU, is left as it was: these run as CuPy array arithmetic there
    array_arithmetic = {"celu", "gelu", "mish", "squareplus", "tanh_shrink", "hard_tanh", "log_sigmoid",
                        "sparse_sigmoid", "sparse_plus", "hard_shrink", "soft_shrink", "threshold"}
    assert set(_PAIRS) - row_operations - array_arithmetic == set(activation_kernels.KIND)
    assert not activation_kernels.has_kernel("relu", numpy.zeros(3, dtype=numpy.float32))


@pytest.mark.skipif(not kernels.nvrtc_available(), reason="NVRTC is not importable (pip install cuda-bindings)")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_activation_kernels_compile_for_each_arch_without_spills(arch):
    reports = {r.name: r for r in kernels.compile_report("activations.cu", arch)}
    assert set(reports) == {f"{kernel}_{suffix}" for kernel in ("bias_activation_fwd", "activation_bwd")
                            for suffix in ("f32", "f64")}
    for report in reports.values():
        assert report.arch == arch
        assert report.spill_stores == 0 and report.spill_loads == 0 and report.stack == 0, report
