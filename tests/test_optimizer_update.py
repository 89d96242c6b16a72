"""The fused optimizer update rules (gpu_dl/ops/optimizer_update.py, kernels/optimizers.cu).

Each rule, with each combination of its flags, runs several consecutive
steps (so the slots carry state, and gradients of very different sizes make
AMSGrad's and Adamax's maxima switch sides) on random vectors of odd sizes
in float32 and float64 (Lion and Lamb included), and is compared after every step with the Keras 3
formula written out below in float64. The same body runs on NumPy and, where
a GPU exists, on CuPy, where the fused kernel is also compared with the NumPy
path on the same inputs. Vectors of 1, 3, 17 and 33 elements exercise the
kernels' scalar tail, 100003 the 16-byte vector loop and its tail, and views
that start one element into a buffer the fallback for misaligned pointers.

The launchers' argument checks run on a GPU only; the NVRTC compile check of
the kernel file runs everywhere.
"""
import dataclasses
from typing import Callable

import numpy
import pytest

from gpu_dl.backend import kernels
from gpu_dl.ops import optimizer_update as ou

SIZES = [1, 3, 17, 33, 1025, 100003]
DTYPES = ["float32", "float64"]
GRAD_SCALES = [1.0, 0.01, 3.0, 0.3]   # one step each: large and small gradients in turn
EPSILON = 1e-7

# Against the float64 formula: rounding of each dtype, accumulated over the steps.
REFERENCE_TOLERANCE = {"float32": (2e-6, 2e-7), "float64": (1e-13, 1e-14)}   # (rtol, atol relative to max |x|)
# The kernel against the NumPy path: the same operations in the same order, so a few ulps at most.
KERNEL_ULPS = 8


# ------------------------------------------------------------------ the rules, written out in float64
def nadam_coefficients(t, beta_1):
    """Nadam's per-step scalars at step t (1-based), as the optimizer computes them."""
    def u(step):
        return beta_1 * (1.0 - 0.5 * 0.96 ** step)
    product = numpy.prod([u(k) for k in range(1, t + 1)])
    return u(t + 1) / (1.0 - product * u(t + 1)), (1.0 - u(t)) / (1.0 - product)


@dataclasses.dataclass
class Rule:
    name: str
    slots: dict            # slot name -> the optimizer's initial value
    update: Callable       # (value, grad, slots, t): one step through gpu_dl.ops.optimizer_update
    reference: Callable    # (w, g, slots, t) -> new w, in float64; updates the slots dict


def sgd_rule(momentum, nesterov):
    lr = 0.1

    def update(value, grad, s, t):
        ou.sgd_update(value, grad, s.get("m"), lr, momentum, nesterov)

    def reference(w, g, s, t):
        if momentum == 0:
            return w - lr * g
        s["m"] = momentum * s["m"] - lr * g
        return w + momentum * s["m"] - lr * g if nesterov else w + s["m"]

    name = "sgd" if momentum == 0 else ("sgd_nesterov" if nesterov else "sgd_momentum")
    return Rule(name, {"m": 0.0} if momentum else {}, update, reference)


def rmsprop_rule(momentum, centered):
    lr, rho = 0.01, 0.9
    slots = {"v": 0.0}
    if momentum:
        slots["m"] = 0.0
    if centered:
        slots["a"] = 0.0

    def update(value, grad, s, t):
        ou.rmsprop_update(value, grad, s["v"], s.get("m"), s.get("a"), lr, rho, momentum, EPSILON)

    def reference(w, g, s, t):
        s["v"] = rho * s["v"] + (1 - rho) * g ** 2
        if centered:
            s["a"] = rho * s["a"] + (1 - rho) * g
            increment = lr * g / numpy.sqrt(s["v"] - s["a"] ** 2 + EPSILON)
        else:
            increment = lr * g / numpy.sqrt(s["v"] + EPSILON)
        if momentum:
            s["m"] = momentum * s["m"] + increment
            return w - s["m"]
        return w - increment

    return Rule(f"rmsprop_momentum{momentum}_centered{int(centered)}", slots, update, reference)


def adagrad_rule():
    lr = 0.05

    def update(value, grad, s, t):
        ou.adagrad_update(value, grad, s["acc"], lr, EPSILON)

    def reference(w, g, s, t):
        s["acc"] = s["acc"] + g ** 2
        return w - lr * g / numpy.sqrt(s["acc"] + EPSILON)

    return Rule("adagrad", {"acc": 0.1}, update, reference)


def adadelta_rule():
    lr, rho = 1.0, 0.95

    def update(value, grad, s, t):
        ou.adadelta_update(value, grad, s["ag"], s["ad"], lr, rho, EPSILON)

    def reference(w, g, s, t):
        s["ag"] = rho * s["ag"] + (1 - rho) * g ** 2
        delta = -numpy.sqrt(s["ad"] + EPSILON) / numpy.sqrt(s["ag"] + EPSILON) * g
        s["ad"] = rho * s["ad"] + (1 - rho) * delta ** 2
        return w + lr * delta

    return Rule("adadelta", {"ag": 0.0, "ad": 0.0}, update, reference)


def adam_rule(amsgrad):
    # beta_2 = 0.9 so that v shrinks after a small gradient and AMSGrad's maximum matters.
    lr, beta_1, beta_2 = 0.01, 0.9, 0.9
    slots = {"m": 0.0, "v": 0.0}
    if amsgrad:
        slots["v_hat"] = 0.0

    def alpha(t):
        return lr * numpy.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)

    def update(value, grad, s, t):
        ou.adam_update(value, grad, s["m"], s["v"], s.get("v_hat"), alpha(t), beta_1, beta_2, EPSILON)

    def reference(w, g, s, t):
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["v"] = beta_2 * s["v"] + (1 - beta_2) * g ** 2
        v = s["v"]
        if amsgrad:
            s["v_hat"] = numpy.maximum(s["v_hat"], s["v"])
            v = s["v_hat"]
        return w - alpha(t) * s["m"] / (numpy.sqrt(v) + EPSILON)

    return Rule("adam_amsgrad" if amsgrad else "adam", slots, update, reference)


def adamax_rule():
    lr, beta_1, beta_2 = 0.02, 0.9, 0.99

    def update(value, grad, s, t):
        ou.adamax_update(value, grad, s["m"], s["u"], lr, beta_1, beta_2, EPSILON, 1 - beta_1 ** t)

    def reference(w, g, s, t):
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["u"] = numpy.maximum(beta_2 * s["u"], numpy.abs(g))
        return w - lr / (1 - beta_1 ** t) * s["m"] / (s["u"] + EPSILON)

    return Rule("adamax", {"m": 0.0, "u": 0.0}, update, reference)


def nadam_rule():
    lr, beta_1, beta_2 = 0.01, 0.9, 0.999

    def update(value, grad, s, t):
        c_m, c_g = nadam_coefficients(t, beta_1)
        ou.nadam_update(value, grad, s["m"], s["v"], lr, beta_1, beta_2, EPSILON, c_m, c_g, 1 - beta_2 ** t)

    def reference(w, g, s, t):
        c_m, c_g = nadam_coefficients(t, beta_1)
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["v"] = beta_2 * s["v"] + (1 - beta_2) * g ** 2
        m_hat = c_m * s["m"] + c_g * g
        v_hat = s["v"] / (1 - beta_2 ** t)
        return w - lr * m_hat / (numpy.sqrt(v_hat) + EPSILON)

    return Rule("nadam", {"m": 0.0, "v": 0.0}, update, reference)


def lion_rule():
    # beta_1 = 0.5 puts the interpolation's sign at the mercy of the gradient as often as of the momentum.
    lr, beta_1, beta_2 = 0.01, 0.5, 0.99

    def update(value, grad, s, t):
        ou.lion_update(value, grad, s["m"], lr, beta_1, beta_2)

    def reference(w, g, s, t):
        w = w - lr * numpy.sign(beta_1 * s["m"] + (1 - beta_1) * g)
        s["m"] = beta_2 * s["m"] + (1 - beta_2) * g
        return w

    return Rule("lion", {"m": 0.0}, update, reference)


def lamb_rule():
    lr, beta_1, beta_2, epsilon = 0.01, 0.9, 0.999, 1e-6

    def update(value, grad, s, t):
        ou.lamb_update(value, grad, s["m"], s["v"], lr, beta_1, beta_2, epsilon, 1 - beta_1 ** t, 1 - beta_2 ** t)

    def reference(w, g, s, t):
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["v"] = beta_2 * s["v"] + (1 - beta_2) * g ** 2
        r = (s["m"] / (1 - beta_1 ** t)) / (numpy.sqrt(s["v"] / (1 - beta_2 ** t)) + epsilon)
        w_norm, r_norm = numpy.linalg.norm(w), numpy.linalg.norm(r)
        ratio = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
        return w - ratio * lr * r

    return Rule("lamb", {"m": 0.0, "v": 0.0}, update, reference)


RULES = [sgd_rule(0.0, False), sgd_rule(0.9, False), sgd_rule(0.9, True),
         *(rmsprop_rule(momentum, centered) for momentum in (0.0, 0.5) for centered in (False, True)),
         adagrad_rule(), adadelta_rule(), adam_rule(False), adam_rule(True), adamax_rule(), nadam_rule(),
         lion_rule(), lamb_rule()]


# ------------------------------------------------------------------------------------- helpers
def to_numpy(a):
    return a.get() if hasattr(a, "get") else numpy.asarray(a)


def place(xp, host, offset):
    """``host`` as an ``xp`` array; with ``offset`` a contiguous view starting that many elements into
    a larger buffer, so its address is not 16-byte aligned."""
    buffer = xp.empty(host.size + offset, dtype=host.dtype)
    view = buffer[offset:]
    view[...] = xp.asarray(host)
    return view


def assert_close(got, want, rtol, atol_scale, what):
    got = to_numpy(got)
    assert numpy.isfinite(got).all(), f"{what}: non-finite elements"
    atol = atol_scale * max(float(numpy.abs(want).max()), 1e-30)
    numpy.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


# --------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "offset"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_matches_float64_formula_over_steps(xp, rng, rule, size, dtype, offset):
    value_host = rng.standard_normal(size).astype(dtype)
    grads_host = [(rng.standard_normal(size) * scale).astype(dtype) for scale in GRAD_SCALES]

    value = place(xp, value_host, offset)
    slots = {name: place(xp, numpy.full(size, initial, dtype=dtype), offset) for name, initial in rule.slots.items()}
    # The float64 formula starts from the very same (rounded) numbers.
    expected_value = value_host.astype(numpy.float64)
    expected_slots = {name: numpy.full(size, initial, dtype=numpy.float64) for name, initial in rule.slots.items()}
    # On the GPU, the NumPy path in the same dtype runs alongside: the kernel must agree with it to a few ulps.
    on_gpu = xp is not numpy
    numpy_value = value_host.copy()
    numpy_slots = {name: numpy.full(size, initial, dtype=dtype) for name, initial in rule.slots.items()}

    rtol, atol_scale = REFERENCE_TOLERANCE[dtype]
    ulps = KERNEL_ULPS * numpy.finfo(dtype).eps
    for t, grad_host in enumerate(grads_host, start=1):
        rule.update(value, place(xp, grad_host, offset), slots, t)
        expected_value = rule.reference(expected_value, grad_host.astype(numpy.float64), expected_slots, t)
        assert value.dtype == numpy.dtype(dtype) and value.shape == (size,)
        assert_close(value, expected_value, rtol, atol_scale, f"{rule.name} value after step {t}")
        for name in rule.slots:
            assert_close(slots[name], expected_slots[name], rtol, atol_scale, f"{rule.name} slot {name} after step {t}")
        if on_gpu:
            rule.update(numpy_value, grad_host, numpy_slots, t)
            assert_close(value, numpy_value, ulps, ulps, f"{rule.name}: kernel against the NumPy path, step {t}")
            for name in rule.slots:
                assert_close(slots[name], numpy_slots[name], ulps, ulps,
                             f"{rule.name}: kernel slot {name} against the NumPy path, step {t}")


def test_amsgrad_and_adamax_maxima_take_both_sides(rng):
    """The steps above are only a test of the maxima if both arguments win somewhere."""
    size = 1000
    grads = [rng.standard_normal(size) * scale for scale in GRAD_SCALES]
    value, m, v, v_hat = numpy.zeros(size), numpy.zeros(size), numpy.zeros(size), numpy.zeros(size)
    held = False
    for t, g in enumerate(grads, start=1):
        ou.adam_update(value, g, m, v, v_hat, 0.01, 0.9, 0.9, EPSILON)
        held |= bool((v_hat > v).any())
    assert held, "v_hat never exceeded v: AMSGrad's maximum is untested"
    m, u = numpy.zeros(size), numpy.zeros(size)
    decayed_wins = grad_wins = False
    for t, g in enumerate(grads, start=1):
        decayed = 0.99 * u
        ou.adamax_update(value, g, m, u, 0.02, 0.9, 0.99, EPSILON, 1 - 0.9 ** t)
        decayed_wins |= bool((u > numpy.abs(g)).any())
        grad_wins |= bool((u > decayed).any())
    assert decayed_wins and grad_wins


def test_optional_slots_must_match_the_flags(xp):
    value, grad, slot = xp.zeros(3), xp.ones(3), xp.zeros(3)
    with pytest.raises(ValueError, match="momentum_slot.*required"):
        ou.sgd_update(value, grad, None, 0.1, 0.9, False)
    with pytest.raises(ValueError, match="momentum_slot.*must be None"):
        ou.sgd_update(value, grad, slot, 0.1, 0.0, False)
    with pytest.raises(ValueError, match="momentum_slot.*required"):
        ou.rmsprop_update(value, grad, slot, None, None, 0.1, 0.9, 0.5, EPSILON)


def test_mismatched_shapes_are_refused(xp):
    value, slot = xp.zeros(4), xp.zeros(4)
    with pytest.raises(ValueError, match="`grad` must have .*shape"):
        ou.adagrad_update(value, xp.ones(1), slot, 0.1, EPSILON)
    with pytest.raises(ValueError, match="`v` must have .*shape"):
        ou.adam_update(value, xp.ones(4), slot, xp.zeros(5), None, 0.1, 0.9, 0.999, EPSILON)


def test_empty_variable_is_a_no_op(xp):
    value, grad, m, v = (xp.zeros(0, dtype=numpy.float32) for _ in range(4))
    ou.adam_update(value, grad, m, v, None, 0.1, 0.9, 0.999, EPSILON)
    assert value.shape == (0,)


def test_strided_gradient_is_copied_not_misread(cupy_only, rng):
    cupy = cupy_only
    size = 1001
    grad_host = rng.standard_normal(2 * size).astype(numpy.float32)
    strided = cupy.asarray(grad_host)[::2]
    assert not strided.flags.c_contiguous
    results = []
    for grad in (strided, cupy.ascontiguousarray(strided)):
        value, m, v = (cupy.ones(size, dtype=cupy.float32), cupy.zeros(size, cupy.float32),
                       cupy.zeros(size, cupy.float32))
        ou.adam_update(value, grad, m, v, None, 0.01, 0.9, 0.999, EPSILON)
        results.append(value.get())
    numpy.testing.assert_array_equal(results[0], results[1])


def test_multidimensional_variables_use_the_kernel(cupy_only, rng):
    cupy = cupy_only
    host = rng.standard_normal((3, 5, 7)).astype(numpy.float32)
    grad = rng.standard_normal((3, 5, 7)).astype(numpy.float32)
    value, slot = cupy.asarray(host), cupy.zeros((3, 5, 7), cupy.float32)
    ou.sgd_update(value, cupy.asarray(grad), slot, 0.1, 0.9, True)
    numpy_value, numpy_slot = host.copy(), numpy.zeros_like(host)
    ou.sgd_update(numpy_value, grad, numpy_slot, 0.1, 0.9, True)
    numpy.testing.assert_allclose(value.get(), numpy_value, rtol=1e-6, atol=1e-7)


def test_launchers_refuse_bad_arguments(cupy_only):
    cupy = cupy_only
    f32 = dict(dtype=cupy.float32)
    value, grad, m, v = cupy.zeros(8, **f32), cupy.ones(8, **f32), cupy.zeros(8, **f32), cupy.zeros(8, **f32)
    with pytest.raises(TypeError, match="adam_update: `value` must be float32 or float64, got float16"):
        ou.adam_update_cuda(value.astype(cupy.float16), grad, m, v, None, 0.1, 0.9, 0.999, EPSILON)
    with pytest.raises(TypeError, match="adam_update_f32: `grad` must have dtype float32, got float64"):
        ou.adam_update(value, grad.astype(cupy.float64), m, v, None, 0.1, 0.9, 0.999, EPSILON)
    with pytest.raises(ValueError, match=r"adam_update_f32: `v` must have shape \(8,\), got \(9,\)"):
        ou.adam_update(value, grad, m, cupy.zeros(9, **f32), None, 0.1, 0.9, 0.999, EPSILON)
    with pytest.raises(ValueError, match="adam_update_f32: `v_hat` must have shape"):
        ou.adam_update(value, grad, m, v, cupy.zeros((2, 4), **f32), 0.1, 0.9, 0.999, EPSILON)
    with pytest.raises(ValueError, match="adam_update_f32: `m` must be C-contiguous"):
        ou.adam_update(value, grad, cupy.zeros(16, **f32)[::2], v, None, 0.1, 0.9, 0.999, EPSILON)
    with pytest.raises(ValueError, match="sgd_update: `value` must be C-contiguous"):
        ou.sgd_update(cupy.zeros(16, **f32)[::2], grad, None, 0.1, 0.0, False)
    with pytest.raises(TypeError, match="adam_update: `value` must be a CuPy array"):
        ou.adam_update_cuda(numpy.zeros(8, numpy.float32), numpy.ones(8, numpy.float32), numpy.zeros(8, numpy.float32),
                            numpy.zeros(8, numpy.float32), None, 0.1, 0.9, 0.999, EPSILON)
    with pytest.raises(TypeError, match="rmsprop_update_f32: `grad` must be a CuPy array"):
        ou.rmsprop_update(value, numpy.ones(8, numpy.float32), v, None, None, 0.1, 0.9, 0.0, EPSILON)
    with pytest.raises(ValueError, match="sgd_momentum_update_f32: `momentum_slot` is required"):
        ou.sgd_momentum_update_cuda(value, grad, None, 0.1, 0.9, False)
    with pytest.raises(ValueError, match="adadelta_update_f64: `accumulated_delta_var` is required"):
        ou.adadelta_update_cuda(cupy.zeros(3), cupy.ones(3), cupy.zeros(3), None, 1.0, 0.95, EPSILON)


def test_lamb_trust_ratio_is_one_when_a_norm_is_zero(xp):
    """Keras: ratio = ||w|| / ||r|| only where both are positive; a zero variable takes the plain step."""
    lr = 0.5
    for start, grad in ((numpy.zeros(5), numpy.arange(1.0, 6.0)), (numpy.arange(1.0, 6.0), numpy.zeros(5))):
        value, m, v = xp.asarray(start.copy()), xp.zeros(5), xp.zeros(5)
        ou.lamb_update(value, xp.asarray(grad), m, v, lr, 0.9, 0.999, 1e-6, 0.1, 0.001)
        r = (0.1 * grad / 0.1) / (numpy.sqrt(0.001 * grad ** 2 / 0.001) + 1e-6)
        numpy.testing.assert_allclose(to_numpy(value), start - lr * r, rtol=1e-12, atol=1e-15)


def test_lion_sign_keeps_zero_and_nan(xp):
    value, m = xp.zeros(3), xp.zeros(3)
    ou.lion_update(value, xp.asarray([0.0, numpy.nan, -2.0]), m, 0.1, 0.9, 0.99)
    got = to_numpy(value)
    assert got[0] == 0.0 and numpy.isnan(got[1]) and got[2] == pytest.approx(0.1)


def test_lamb_launchers_refuse_bad_norms(cupy_only):
    cupy = cupy_only
    value, direction = cupy.zeros(8, dtype=cupy.float32), cupy.ones(8, dtype=cupy.float32)
    with pytest.raises(ValueError, match=r"lamb_apply_f32: `norms` must have shape \(2,\)"):
        ou.lamb_apply_cuda(value, direction, cupy.ones(3, dtype=cupy.float32), 0.1)
    with pytest.raises(TypeError, match="lamb_apply_f32: `norms` must have dtype float32"):
        ou.lamb_apply_cuda(value, direction, cupy.ones(2), 0.1)
    with pytest.raises(ValueError, match="lamb_moments_f32: `v` is required"):
        ou.lamb_moments_cuda(value, direction, cupy.zeros(8, dtype=cupy.float32), None, 0.9, 0.999, 1e-6, 0.1, 0.001)


EXPECTED_KERNELS = ["sgd_update", "sgd_momentum_update", "rmsprop_update", "adagrad_update", "adadelta_update",
                    "adam_update", "adamax_update", "nadam_update", "lion_update", "lamb_moments", "lamb_apply"]


@pytest.mark.skipif(not kernels.nvrtc_available(), reason="NVRTC is not importable (pip install cuda-bindings "
                                                          "nvidia-cuda-nvrtc)")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernel_file_compiles_with_every_kernel_and_no_spills(arch):
    reports = {r.name: r for r in kernels.compile_report("optimizers.cu", arch)}
    expected = {f"{name}_{suffix}" for name in EXPECTED_KERNELS for suffix in ("f32", "f64")}
    assert set(reports) == expected, f"missing {expected - set(reports)}, unexpected {set(reports) - expected}"
    for report in reports.values():
        assert report.arch == arch
        assert report.spill_stores == 0 and report.spill_loads == 0, report
