"""The CTC kernels (kernels/ctc.cu, launchers in gpu_dl/ops/ctc.py) against the NumPy path on the same inputs.

Each case compares alpha (T, B, S), beta (T, B, S), the log-likelihood, the loss and d loss / d logits of
the kernels, in float64 with the NumPy recursion's own arrays, in float32 with the float64 recursion on the
same logits (as the NumPy path's float32 arrays are, without a GPU; FLOAT32_ROUNDING says why and how
closely): B 1 and 3, T 1, 2 and 17, L 0, 1 and 5, L = 300 (S = 601 symbols, more than a block's 256
threads, so threads loop over symbols) at T 17 and 320.
Label rows have random lengths (padding 0 at their end, empty rows included), adjacent repeats (a blank
between them is required), a 0 before a label (Keras reads it as a blank label), and rows too long for T
(loss +inf, gradient 0).

Kernel outputs start NaN (``launch.empty_output`` under the suite's autouse ``launch.poisoned_outputs()``),
so an element a kernel leaves unwritten fails. Everything but the compile check and the host-array check
needs a CUDA device (the ``cupy_only`` fixture); the emulated GPU runs them too.
"""
import numpy
import pytest

from gpu_dl.backend import kernels
from gpu_dl.ops import ctc

DTYPES = ["float32", "float64"]
CASES = [(b, t, n) for b in (1, 3) for t in (1, 2, 17) for n in (0, 1, 5)] + [(2, 17, 300), (3, 320, 300)]
CASE_IDS = [f"B{b}-T{t}-L{n}" for b, t, n in CASES]
# float64: the kernels and the NumPy path agree to a few ulp of every value.
TOLERANCE = dict(rtol=1e-12, atol=1e-12)
GRAD_TOLERANCE = dict(rtol=1e-10, atol=1e-13)
# float32: each of the T steps rounds alpha (beta) once more, and in log space the values reach the
# log-likelihood's magnitude (about 1600 at T = 320: one float32 ulp there is 1.2e-4), so two float32
# implementations (NumPy's logaddexp, the GPU's expf/log1pf) each drift from the exact recursion by a
# random walk of about sqrt(T) * eps * |value|, and occupancies exp(alpha + beta - ll) inherit that as a
# relative error: the gradient's absolute error scales with sqrt(T) * eps * (1 + |ll|). So both float32
# results are compared with the float64 recursion on the same (float32) logits, under FLOAT32_ROUNDING
# times that scale. Measured over CASES (and B16 T800 L100): NumPy's float32 path reaches at most 0.4
# (gradient) and 1.1 (alpha, beta, loss) of the scale; a float32 recursion whose every logaddexp is off
# by up to 2 ulp at random (far worse than a correctly rounded log1p) reaches 2.3 and 3.2. Compared with
# each other the two float32 results would differ by the sum of two such drifts.
FLOAT32_ROUNDING = 6


def make_labels(rng, batch, length, classes, steps):
    """Row 0 as long as fits in ``steps`` steps whatever its repeats, the others of random length (0 .. length),
    with repeats; the last row of three gets a 0 before a label."""
    labels = numpy.zeros((batch, length), dtype=numpy.int64)
    for b in range(batch):
        n = min(length, (steps + 1) // 2) if b == 0 else int(rng.integers(0, length + 1))
        row = rng.integers(1, classes, n)
        if n >= 2 and rng.random() < 0.7:
            row[1] = row[0]
        labels[b, :n] = row
    if batch >= 3 and length >= 3:
        labels[-1, :3] = [0, 1, 1]
    return labels


def numpy_reference(labels, logits):
    """alpha, beta, log-likelihood, loss and gradient from the NumPy path's own functions."""
    logp, emit, skip, ends, steps, neg_inf = ctc._setup(numpy, labels, logits)
    alpha = ctc._forward(numpy, emit, skip, neg_inf)
    beta = ctc._backward(numpy, emit, skip, ends, neg_inf)
    loss, saved = ctc.ctc_forward(labels, logits)
    return dict(alpha=alpha, beta=beta, log_likelihood=saved[-1], loss=loss, grad=ctc.ctc_backward(saved))


def float32_tolerances(steps, log_likelihood):
    """(tolerance of alpha, beta, log-likelihood and loss, tolerance of the gradient) for a float32 result
    compared with the float64 recursion: FLOAT32_ROUNDING times sqrt(T) * eps, relative for the log-space
    values and scaled by 1 + the largest finite |log-likelihood| for the gradient."""
    finite = numpy.abs(log_likelihood[numpy.isfinite(log_likelihood)])
    step = FLOAT32_ROUNDING * numpy.sqrt(steps) * float(numpy.finfo(numpy.float32).eps)
    return dict(rtol=step, atol=step), dict(rtol=0, atol=step * (1 + (finite.max() if finite.size else 0)))


def _compare(got, want, tolerance, what):
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, got.shape, want.shape)
    unwritten = numpy.isnan(got) & ~numpy.isnan(want)
    assert not unwritten.any(), (f"{what}: {unwritten.sum()} elements left unwritten (NaN), first at "
                                 f"{numpy.unravel_index(numpy.argmax(unwritten), got.shape)}")
    numpy.testing.assert_array_equal(numpy.isneginf(got), numpy.isneginf(want), err_msg=f"{what}: -inf pattern")
    numpy.testing.assert_array_equal(numpy.isposinf(got), numpy.isposinf(want), err_msg=f"{what}: +inf pattern")
    numpy.testing.assert_allclose(got, want, err_msg=what, **tolerance)


# ------------------------------------------------------------------------------ without a GPU
def test_thread_counts_match_the_kernel_file():
    source = kernels.kernel_source("ctc.cu")
    assert f"#define CTC_RECURSION_THREADS {ctc._RECURSION_THREADS}\n" in source
    assert f"#define CTC_GRAD_THREADS {ctc._GRAD_THREADS}\n" in source
    assert [ctc._recursion_threads(s) for s in (1, 32, 33, 255, 256, 257, 601)] == [32, 32, 64, 256, 256, 256, 256]


def test_host_arrays_are_refused():
    with pytest.raises(TypeError, match="ctc_alpha_f32: `logp` must be a CuPy array"):
        ctc.ctc_alpha_cuda(numpy.zeros((1, 2, 3), numpy.float32), numpy.zeros((1, 1), numpy.int64))


def case_inputs(rng, dtype, batch, steps, length):
    """(labels, logits) of one case: classes 40 for the long label rows, 5 for the others."""
    classes = 40 if length > 5 else 5
    labels = make_labels(rng, batch, length, classes, steps)
    return labels, (rng.standard_normal((batch, steps, classes)) * 2).astype(dtype)


@pytest.mark.parametrize("batch,steps,length", CASES, ids=CASE_IDS)
def test_the_numpy_float32_path_stays_near_float64(rng, batch, steps, length):
    labels, logits = case_inputs(rng, "float32", batch, steps, length)
    got = numpy_reference(labels, logits)
    want = numpy_reference(labels, logits.astype(numpy.float64))
    tolerance, grad_tolerance = float32_tolerances(steps, want["log_likelihood"])
    for name in ("alpha", "beta", "log_likelihood", "loss", "grad"):
        assert got[name].dtype == numpy.float32, name
        _compare(got[name].astype(numpy.float64), want[name], grad_tolerance if name == "grad" else tolerance,
                 f"B{batch} T{steps} L{length}: {name}")


# --------------------------------------------------------------------------------- on a GPU
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,steps,length", CASES, ids=CASE_IDS)
def test_kernels_match_the_numpy_path(cupy_only, rng, dtype, batch, steps, length):
    cupy = cupy_only
    labels, logits = case_inputs(rng, dtype, batch, steps, length)
    want = numpy_reference(labels, logits.astype(numpy.float64))   # float32: see FLOAT32_ROUNDING
    tolerance, grad_tolerance = ((TOLERANCE, GRAD_TOLERANCE) if dtype == "float64"
                                 else float32_tolerances(steps, want["log_likelihood"]))
    what = f"B{batch} T{steps} L{length} {dtype}"

    logp = ctc._log_softmax(cupy, cupy.asarray(logits))
    device_labels = cupy.asarray(labels)
    alpha, log_likelihood, loss = ctc.ctc_alpha_cuda(logp, device_labels)
    beta = ctc.ctc_beta_cuda(logp, device_labels)
    grad = ctc.ctc_grad_cuda(logp, device_labels, alpha, beta, log_likelihood)
    got = dict(alpha=alpha, beta=beta, log_likelihood=log_likelihood, loss=loss, grad=grad)
    assert all(a.dtype == dtype for a in got.values())
    host = {name: cupy.asnumpy(a).astype(want[name].dtype) for name, a in got.items()}
    for name in ("alpha", "beta", "log_likelihood", "loss"):
        _compare(host[name], want[name], tolerance, f"{what}: {name}")
    _compare(host["grad"], want["grad"], grad_tolerance, f"{what}: grad")
    impossible = numpy.isinf(want["loss"])
    assert (host["grad"][impossible] == 0).all()

    # The public functions take the kernel path on CuPy and give the same loss and gradient.
    loss2, saved = ctc.ctc_forward(device_labels, cupy.asarray(logits))
    assert isinstance(saved, ctc._KernelState)
    grad2 = ctc.ctc_backward(saved)
    assert loss2.dtype == grad2.dtype == dtype
    _compare(cupy.asnumpy(loss2).astype(want["loss"].dtype), want["loss"], tolerance, f"{what}: ctc_forward")
    _compare(cupy.asnumpy(grad2).astype(want["grad"].dtype), want["grad"], grad_tolerance, f"{what}: ctc_backward")


def test_a_case_with_impossible_and_empty_rows(cupy_only, rng):
    cupy = cupy_only
    labels = numpy.array([[1, 1, 1], [1, 2, 0], [2, 2, 0], [0, 0, 0], [3, 1, 2]])   # need 5, 2, 3, 0, 3 steps
    logits = rng.standard_normal((5, 3, 4))
    loss, grad = ctc.ctc_loss(cupy.asarray(labels), cupy.asarray(logits))
    want_loss, want_grad = ctc.ctc_loss(labels, logits)
    loss, grad = cupy.asnumpy(loss), cupy.asnumpy(grad)
    assert numpy.isposinf(loss[0]) and numpy.isfinite(loss[1:]).all() and (grad[0] == 0).all()
    _compare(loss, want_loss, TOLERANCE, "loss")
    _compare(grad, want_grad, GRAD_TOLERANCE, "grad")


def test_an_empty_batch_and_int32_labels(cupy_only, rng):
    cupy = cupy_only
    loss, grad = ctc.ctc_loss(cupy.zeros((0, 2), cupy.int64), cupy.zeros((0, 4, 3), cupy.float32))
    assert loss.shape == (0,) and grad.shape == (0, 4, 3)
    labels = numpy.array([[1, 2], [2, 0]], dtype=numpy.int32)
    logits = rng.standard_normal((2, 4, 3))
    loss, grad = ctc.ctc_loss(cupy.asarray(labels), cupy.asarray(logits))
    want_loss, want_grad = ctc.ctc_loss(labels, logits)
    _compare(cupy.asnumpy(loss), want_loss, TOLERANCE, "int32 labels: loss")
    _compare(cupy.asnumpy(grad), want_grad, GRAD_TOLERANCE, "int32 labels: grad")


def test_launchers_refuse_bad_arguments(cupy_only):
    cupy = cupy_only
    logp = cupy.zeros((2, 3, 4), cupy.float32)
    labels = cupy.zeros((2, 1), cupy.int64)
    with pytest.raises(TypeError, match="ctc_alpha: `logp` must be float32 or float64"):
        ctc.ctc_alpha_cuda(logp.astype(cupy.float16), labels)
    with pytest.raises(TypeError, match="ctc_beta_f32: `labels` must have dtype int64"):
        ctc.ctc_beta_cuda(logp, labels.astype(cupy.int32))
    with pytest.raises(ValueError, match=r"ctc_alpha_f32: `labels` must have shape \(2, max_label_length\)"):
        ctc.ctc_alpha_cuda(logp, cupy.zeros((3, 1), cupy.int64))
    with pytest.raises(ValueError, match="ctc_alpha_f32: `logp` must be C-contiguous"):
        ctc.ctc_alpha_cuda(cupy.zeros((2, 4, 3), cupy.float32).transpose(0, 2, 1), labels)
    alpha, log_likelihood, _ = ctc.ctc_alpha_cuda(logp, labels)
    with pytest.raises(ValueError, match=r"ctc_grad_f32: `beta` must have shape \(3, 2, 3\)"):
        ctc.ctc_grad_cuda(logp, labels, alpha, alpha[:, :1], log_likelihood)
    with pytest.raises(TypeError, match="ctc_grad_f32: `log_likelihood` must have dtype float32"):
        ctc.ctc_grad_cuda(logp, labels, alpha, alpha, log_likelihood.astype(cupy.float64))
