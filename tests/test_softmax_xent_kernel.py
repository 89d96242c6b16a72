"""The fused softmax + cross-entropy kernel against the NumPy path on the same random inputs.

Runs on a GPU only (the GPU tier); outputs are NaN-poisoned before each
launch by the suite's autouse fixture. Sizes cover a single row and class,
odd sizes, both sides of the narrow kernels' limit (128 classes), and rows
longer than the register cache (1024 float32 / 256 float64 classes), whose
tail takes the streaming path.
"""
import numpy
import pytest

from gpu_dl.ops.softmax_xent import softmax_xent, softmax_xent_cuda

SHAPES = [(1, 1), (3, 17), (33, 3), (17, 33), (4099, 10), (9, 128), (9, 129), (5, 300), (3, 1500)]
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
    for smoothing, scale, row_weights, want_probs, want_grad in (
            (0.0, 1.0, None, True, True), (0.1, 0.5, weights, True, True),
            (0.0, 1.0, weights, False, True), (0.2, 1.0, None, True, False)):
        kwargs = dict(sparse=sparse, label_smoothing=smoothing, grad_scale=scale, want_probs=want_probs,
                      want_grad=want_grad)
        want = softmax_xent(logits, labels, row_weights=row_weights, **kwargs)
        got = softmax_xent(cupy.asarray(logits), cupy.asarray(labels),
                           row_weights=None if row_weights is None else cupy.asarray(row_weights), **kwargs)
        _compare(cupy, got, want, dtype, f"{kwargs}, weights={row_weights is not None}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_logits_and_out_of_range_labels(cupy_only, dtype):
    cupy = cupy_only
    logits = numpy.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3.0, 1.0, 2.0], [3.0, 1.0, 2.0]], dtype=dtype)
    labels = numpy.array([1, 2, -1, 3])   # the last two stand for all-zero one-hot rows
    want = softmax_xent(logits, labels, sparse=True, label_smoothing=0.1)
    got = softmax_xent(cupy.asarray(logits), cupy.asarray(labels), sparse=True, label_smoothing=0.1)
    _compare(cupy, got, want, dtype, "extreme logits")


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
