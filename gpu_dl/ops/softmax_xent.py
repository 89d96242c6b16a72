"""Fused softmax + cross-entropy over the last axis.

``softmax_xent(logits, labels, sparse=..., label_smoothing=..., epsilon=0.0, grad_scale=1.0,
row_weights=None, want_probs=True, want_grad=True)`` returns ``(loss, probs, dlogits)``
with ``p = softmax(logits)``:

- ``loss`` (shape ``logits.shape[:-1]``): ``-sum_c t_c * log(clip(p_c, epsilon, 1 - epsilon))``
  per sample. The log is taken in the log domain, ``log p_c = (x_c - max x) - log sum exp(x - max x)``,
  so no logit overflows, and a clipped probability gives the log of its bound. ``epsilon=0``
  clips nothing: the loss is the exact ``-sum t log_softmax(logits)`` (Keras's ``from_logits=True``);
  ``epsilon=1e-7`` is what Keras 3 computes from the probabilities of a softmax output
  (``from_logits=False``: renormalised, clipped to [1e-7, 1 - 1e-7], logged), so a saturated
  softmax costs at most ``-log(1e-7) ~= 16.1`` per unit of target;
- ``probs`` (shape of ``logits``): ``p``;
- ``dlogits`` (shape of ``logits``): d loss_i / d logits_i for each sample i,
  ``p * K - t * inside`` where ``inside`` marks the classes the clip passes
  (``epsilon <= p_c <= 1 - epsilon``; the bounds included, as torch's clamp passes the
  gradient there) and ``K = sum_c t_c * inside_c``: the chain rule through the clip (zero
  gradient where it clips), the renormalisation (which adds a constant to d loss / d p, and the
  softmax's backward removes it) and the softmax. Unclipped, that is ``p * sum_c t_c - t``.
  It is times ``grad_scale`` and, where given, the per-sample ``row_weights`` (shape
  ``logits.shape[:-1]``): a model passes its loss reduction's weights here so the gradient
  needs no further pass.
  ``probs`` is None unless ``want_probs``; ``dlogits`` None unless ``want_grad``.

Targets ``t`` are the rows of ``labels`` (``sparse=False``: one-hot or
probability rows of the logits' shape) or one-hot rows of the integer class
ids ``labels`` (``sparse=True``: shape ``logits.shape[:-1]``), smoothed as
Keras smooths them: ``t * (1 - label_smoothing) + label_smoothing / C``.

Class ids are not range-checked here (the losses check targets on the host
before training); an id outside [0, C) stands for an all-zero one-hot row.
Every output has the logits' dtype, and so do the clip's bounds (``1 - 1e-7``
rounds to ``1 - 2**-23`` in float32, as in Keras).

On CuPy float32/float64 arrays the whole computation is one launch of
``kernels/softmax_xent.cu`` (one warp per row; rows of at most 128 classes
take its low-register ``_narrow_`` kernels); elsewhere it is the NumPy
array arithmetic below, which is also the reference the kernel is tested
against.
"""
from __future__ import annotations

import numpy

from ..backend import array_module
from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "softmax_xent.cu"
_ROWS_PER_BLOCK = 4          # SXE_ROWS_PER_BLOCK in the kernel file: one warp per row
_NARROW_CLASSES = 128        # 32 lanes * SXE_NARROW_CACHE: rows this short use the _narrow_ kernels


def _check(logits, labels, sparse, label_smoothing, epsilon):
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"softmax_xent: `logits` must have a class axis last, got shape {logits.shape}.")
    if logits.dtype.kind != "f":
        raise TypeError(f"softmax_xent: `logits` must be a float array, got dtype {logits.dtype}.")
    expected = logits.shape[:-1] if sparse else logits.shape
    if labels.shape != expected:
        kind = "integer class ids" if sparse else "target rows"
        raise ValueError(f"softmax_xent: `labels` ({kind}) must have shape {expected} for logits of shape "
                         f"{logits.shape}, got {labels.shape}.")
    if sparse and labels.dtype.kind not in "iu":
        raise TypeError(f"softmax_xent: with sparse=True `labels` must hold integer class ids, "
                        f"got dtype {labels.dtype}.")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"softmax_xent: `label_smoothing` must be in [0, 1], got {label_smoothing!r}.")
    if not 0.0 <= float(epsilon) < 0.5:
        raise ValueError(f"softmax_xent: `epsilon` (the clip of the probabilities) must be in [0, 0.5), "
                         f"got {epsilon!r}.")


def softmax_xent(logits, labels, *, sparse, label_smoothing=0.0, epsilon=0.0, grad_scale=1.0, row_weights=None,
                 want_probs=True, want_grad=True):
    """Per-sample cross-entropy of softmax(logits) clipped to [epsilon, 1 - epsilon], the probabilities,
    and d loss / d logits."""
    xp = array_module(logits, labels)
    _check(logits, labels, sparse, label_smoothing, epsilon)
    if row_weights is not None and tuple(row_weights.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"softmax_xent: `row_weights` must have shape {logits.shape[:-1]} (one weight per "
                         f"sample), got {tuple(row_weights.shape)}.")
    if xp is not numpy and logits.dtype in (numpy.float32, numpy.float64):
        return softmax_xent_cuda(logits, labels, sparse=sparse, label_smoothing=label_smoothing, epsilon=epsilon,
                                 grad_scale=grad_scale, row_weights=row_weights, want_probs=want_probs,
                                 want_grad=want_grad)
    loss, probs, dlogits = _softmax_xent_arrays(xp, logits, labels, sparse, label_smoothing, epsilon)
    if want_grad:
        if grad_scale != 1.0:
            dlogits = dlogits * logits.dtype.type(grad_scale)
        if row_weights is not None:
            dlogits = dlogits * row_weights.astype(logits.dtype, copy=False)[..., None]
    return loss, probs if want_probs else None, dlogits if want_grad else None


def _softmax_xent_arrays(xp, logits, labels, sparse, label_smoothing, epsilon):
    """The readable path: log-sum-exp softmax, targets, clip, loss and gradient as whole-array expressions."""
    dtype = logits.dtype
    classes = logits.shape[-1]

    # Log-sum-exp with the row maximum taken out: exp never overflows, and the
    # largest term is exp(0) = 1, so the log never sees 0.
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = xp.exp(shifted)
    sums = exps.sum(axis=-1, keepdims=True)
    probs = exps / sums
    log_probs = shifted - xp.log(sums)

    if sparse:
        targets = (labels[..., None] == xp.arange(classes)).astype(dtype)
    else:
        targets = labels.astype(dtype, copy=False)
    if label_smoothing:
        targets = targets * dtype.type(1.0 - label_smoothing) + dtype.type(label_smoothing / classes)

    kept = targets   # t * inside: the targets whose probability the clip passes
    if epsilon:
        # The bounds in the logits' dtype, as Keras clips a float32 tensor with float32 bounds; a clipped
        # probability's log is that of its bound, an unclipped one's the exact log-softmax.
        low, high = dtype.type(epsilon), dtype.type(1.0 - epsilon)
        inside = (probs >= low) & (probs <= high)
        log_probs = xp.where(inside, log_probs, xp.where(probs < low, numpy.log(low), numpy.log(high)))
        kept = targets * inside

    loss = -(targets * log_probs).sum(axis=-1)
    dlogits = probs * kept.sum(axis=-1, keepdims=True) - kept
    return loss.astype(dtype, copy=False), probs, dlogits.astype(dtype, copy=False)


def softmax_xent_cuda(logits, labels, *, sparse, label_smoothing=0.0, epsilon=0.0, grad_scale=1.0,
                      row_weights=None, want_probs=True, want_grad=True, options=()):
    """Launcher of ``softmax_xent_{sparse,dense}_{f32,f64}``: one warp per row of classes.

    ``options`` are extra compiler options (benchmarks compare ``-D`` settings).
    """
    import cupy
    kind = "sparse" if sparse else "dense"
    dtype = logits.dtype
    classes = logits.shape[-1]
    width = "narrow_" if classes <= _NARROW_CLASSES else ""
    kernel_name = f"softmax_xent_{kind}_{width}{launch.float_suffix(dtype, 'softmax_xent', 'logits')}"
    rows = logits.size // classes if classes else 0
    logits = cupy.ascontiguousarray(logits)
    launch.check_device_array(logits, kernel_name, "logits", dtype=dtype)
    if sparse:
        labels = cupy.ascontiguousarray(labels, dtype=cupy.int64)
    else:
        labels = cupy.ascontiguousarray(labels, dtype=dtype)
    launch.check_device_array(labels, kernel_name, "labels", shape=logits.shape[:-1] if sparse else logits.shape)
    if row_weights is not None:
        row_weights = cupy.ascontiguousarray(row_weights, dtype=dtype)
        launch.check_device_array(row_weights, kernel_name, "row_weights", shape=logits.shape[:-1])
    loss = launch.empty_output(logits.shape[:-1], dtype)
    probs = launch.empty_output(logits.shape, dtype) if want_probs else None
    dlogits = launch.empty_output(logits.shape, dtype) if want_grad else None
    if rows == 0:
        return loss, probs, dlogits
    blocks = (rows + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK
    kernel = get_kernel(_KERNEL_FILE, kernel_name, options)
    kernel((blocks,), (32 * _ROWS_PER_BLOCK,), (
        logits, labels, loss, launch.optional(probs), launch.optional(dlogits), launch.optional(row_weights),
        launch.scalar(grad_scale, dtype), launch.scalar(label_smoothing, dtype), launch.scalar(epsilon, dtype),
        numpy.int32(rows), numpy.int32(classes)))
    return loss, probs, dlogits
