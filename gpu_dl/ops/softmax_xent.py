"""Fused softmax + cross-entropy over the last axis.

``softmax_xent(logits, labels, sparse=..., label_smoothing=...)`` returns
``(loss, probs, dlogits)``:

- ``loss`` (shape ``logits.shape[:-1]``): ``-sum_c t_c * log_softmax(logits)_c``
  per sample, computed through log-sum-exp so no logit overflows;
- ``probs`` (shape of ``logits``): ``softmax(logits)``;
- ``dlogits`` (shape of ``logits``): d loss_i / d logits_i for each sample i,
  ``probs * sum_c t_c - t`` (``probs - t`` when each target row sums to 1), not
  divided by the batch size.

Targets ``t`` are the rows of ``labels`` (``sparse=False``: one-hot or
probability rows of the logits' shape) or one-hot rows of the integer class
ids ``labels`` (``sparse=True``: shape ``logits.shape[:-1]``), smoothed as
Keras smooths them: ``t * (1 - label_smoothing) + label_smoothing / C``.

Class ids are not range-checked here (the losses check targets on the host
before training); every output has the logits' dtype.
"""
from __future__ import annotations

from ..backend import array_module


def _check(logits, labels, sparse, label_smoothing):
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
        raise TypeError(f"softmax_xent: with sparse=True `labels` must hold integer class ids, got dtype {labels.dtype}.")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"softmax_xent: `label_smoothing` must be in [0, 1], got {label_smoothing!r}.")


def softmax_xent(logits, labels, *, sparse, label_smoothing=0.0):
    """Per-sample cross-entropy of softmax(logits), the probabilities, and d loss / d logits."""
    xp = array_module(logits, labels)
    _check(logits, labels, sparse, label_smoothing)
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
        onehot = (labels[..., None] == xp.arange(classes)).astype(dtype)
        if label_smoothing:
            targets = onehot * dtype.type(1.0 - label_smoothing) + dtype.type(label_smoothing / classes)
        else:
            targets = onehot
        target_sums = None   # each smoothed one-hot row sums to 1
    else:
        targets = labels.astype(dtype, copy=False)
        if label_smoothing:
            targets = targets * dtype.type(1.0 - label_smoothing) + dtype.type(label_smoothing / classes)
        target_sums = targets.sum(axis=-1, keepdims=True)

    loss = -(targets * log_probs).sum(axis=-1)
    dlogits = probs - targets if target_sums is None else probs * target_sums - targets
    return loss.astype(dtype, copy=False), probs, dlogits.astype(dtype, copy=False)
