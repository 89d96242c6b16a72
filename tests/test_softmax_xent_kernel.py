"""The fused softmax + cross-entropy kernel against the NumPy path on the same random inputs.

Runs on a GPU only (the GPU tier); outputs are NaN-poisoned before each
launch by the suite's autouse fixture. Sizes cover a single row and class,
odd sizes, both sides of the narrow kernels' limit (128 classes), and rows
longer than the register cache (1024 float32 / 256 float64 classes), whose
tail takes the streaming path. Each case runs unclipped (``epsilon=0``, the
exact log-softmax) and with Keras's clip of the probabilities to
[1e-7, 1 - 1e-7], on rows with probabilities beyond both bounds.
"""
import numpy
import pytest

from gpu_dl.ops.softmax_xent import softmax_xent, softmax_xent_cuda

# (1027, 10): many short rows, 257 blocks of 4 rows (more than an H100's 132 SMs), the last with 3.
SHAPES = [(1, 1), (3, 17), (33, 3), (17, 33), (1027, 10), (9, 128), (9, 129), (5, 300), (3, 1500)]
EPS = 1e-7
TOLERANCE = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def _inputs(rng, shape, dtype, sparse):
    rows, classes = shape
    logits = (rng.standard_normal(shape) * 4).astype(dtype)
    if sparse:
        labels = rng.integers(0, classes, rows)
    else:
        labels = rng.dirichlet(numpy.ones(classes), rows).astype(dtype)
    weights = rng.random(rows).astype(dtype)
    return logits, labels, weights


def _compare(cupy, got, want, dtype, what):
    for g, w, name in zip(got, want, ("loss", "probs", "dlogits")):
        if w is None:
            assert g is None, f"{what}: {name} should not be computed"
            continue
        g = cupy.asnumpy(g)
        assert numpy.isfinite(g).all(), f"{what}: {name} has unwritten (NaN) or non-finite elements"
        numpy.testing.assert_allclose(g, w, **TOLERANCE[dtype], err_msg=f"{what}: {name}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_matches_numpy_path(cupy_only, rng, dtype, sparse, shape):
    cupy = cupy_only
    logits, labels, weights = _inputs(rng, shape, dtype, sparse)
    for smoothing, scale, row_weights, want_probs, want_grad, epsilon in (
            (0.0, 1.0, None, True, True, 0.0), (0.1, 0.5, weights, True, True, 0.0),
            (0.0, 1.0, weights, False, True, 0.0), (0.2, 1.0, None, True, False, 0.0),
            (0.0, 1.0, None, True, True, EPS), (0.1, 0.5, weights, True, True, EPS),
            (0.0, 0.5, weights, False, True, EPS)):
        kwargs = dict(sparse=sparse, label_smoothing=smoothing, grad_scale=scale, want_probs=want_probs,
                      want_grad=want_grad, epsilon=epsilon)
        want = softmax_xent(logits, labels, row_weights=row_weights, **kwargs)
        got = softmax_xent(cupy.asarray(logits), cupy.asarray(labels),
                           row_weights=None if row_weights is None else cupy.asarray(row_weights), **kwargs)
        _compare(cupy, got, want, dtype, f"{kwargs}, weights={row_weights is not None}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_clips_saturated_rows_as_the_numpy_path(cupy_only, rng, dtype, sparse, shape):
    cupy = cupy_only
    rows, classes = shape
    logits, labels, weights = _inputs(rng, shape, dtype, sparse)
    logits = logits * 4   # most probabilities below 1e-7
    # A row whose label holds nearly all the mass (p above 1 - 1e-7), one whose label holds almost none.
    first = labels[0] if sparse else int(labels[0].argmax())
    logits[0, first] = logits[0].max() + 40
    if rows > 1 and classes > 1:
        logits[-1] = 0
        logits[-1, (labels[-1] + 1) % classes if sparse else int(labels[-1].argmin())] = 40
    p = numpy.exp(logits - logits.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    assert (p > 1 - EPS).any() and (classes == 1 or (p < EPS).any())
    for smoothing, row_weights in ((0.0, None), (0.1, weights)):
        kwargs = dict(sparse=sparse, label_smoothing=smoothing, grad_scale=0.5, epsilon=EPS)
        want = softmax_xent(logits, labels, row_weights=row_weights, **kwargs)
        got = softmax_xent(cupy.asarray(logits), cupy.asarray(labels),
                           row_weights=None if row_weights is None else cupy.asarray(row_weights), **kwargs)
        _compare(cupy, got, want, dtype, f"saturated, {kwargs}, weights={row_weights is not None}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_logits_and_out_of_range_labels(cupy_only, dtype):
    cupy = cupy_only
    logits = numpy.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3.0, 1.0, 2.0], [3.0, 1.0, 2.0]], dtype=dtype)
    labels = numpy.array([1, 2, -1, 3])   # the last two stand for all-zero one-hot rows
    for smoothing, epsilon in ((0.1, 0.0), (0.0, EPS), (0.1, EPS)):
        want = softmax_xent(logits, labels, sparse=True, label_smoothing=smoothing, epsilon=epsilon)
        got = softmax_xent(cupy.asarray(logits), cupy.asarray(labels), sparse=True, label_smoothing=smoothing,
                           epsilon=epsilon)
        _compare(cupy, got, want, dtype, f"extreme logits, smoothing {smoothing}, epsilon {epsilon}")


def test_labels_of_any_integer_type_and_batched_leading_axes(cupy_only, rng):
    cupy = cupy_only
    logits = rng.standard_normal((2, 3, 7)).astype("float32")
    labels = rng.integers(0, 7, (2, 3)).astype("int32")
    want = softmax_xent(logits, labels, sparse=True)
    got = softmax_xent(cupy.asarray(logits), cupy.asarray(labels), sparse=True)
    _compare(cupy, got, want, "float32", "int32 labels, (2, 3, 7) logits")
    transposed = cupy.asarray(rng.standard_normal((7, 5)).astype("float32")).T   # not contiguous
    got = softmax_xent(transposed, cupy.zeros(5, dtype=cupy.int64), sparse=True)
    want = softmax_xent(cupy.asnumpy(transposed), numpy.zeros(5, dtype=numpy.int64), sparse=True)
    _compare(cupy, got, want, "float32", "non-contiguous logits")


def test_launcher_rejects_bad_arguments(cupy_only):
    cupy = cupy_only
    with pytest.raises(TypeError, match="logits.*float32 or float64"):
        softmax_xent_cuda(cupy.zeros((2, 3), dtype=cupy.float16), cupy.zeros(2, dtype=cupy.int64), sparse=True)
    with pytest.raises(ValueError, match="`labels` must have shape \\(2,\\)"):
        softmax_xent_cuda(cupy.zeros((2, 3), dtype=cupy.float32), cupy.zeros(3, dtype=cupy.int64), sparse=True)
    with pytest.raises(ValueError, match="`row_weights` must have shape"):
        softmax_xent(cupy.zeros((2, 3), dtype=cupy.float32), cupy.zeros(2, dtype=cupy.int64), sparse=True,
                     row_weights=cupy.ones(3, dtype=cupy.float32))
