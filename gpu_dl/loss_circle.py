"""Keras 3's ``Circle`` loss for metric learning (Sun et al., 2020).

``y_true`` holds integer labels, shape (batch,) or (batch, 1); ``y_pred`` the
L2-normalised embeddings, (batch, dim). Each sample's loss is

    softplus(logsumexp_j in P(i) (-gamma a_p (m - d_ij))
             + logsumexp_j in N(i) (gamma a_n (1 - m - d_ij)))

with ``d = max(1 - y_pred y_pred^T, 0)``, ``a_p = max(m + d, 0)``,
``a_n = max(1 + m - d, 0)``, P(i) the other samples of i's class (i itself too
unless ``remove_diagonal``) and N(i) the samples of other classes. An empty
set gives a logsumexp of -inf, so a sample with no positive (or no negative)
partner has loss 0. As Keras does, the loss marks those zeros as masked, so
"sum_over_batch_size" averages over the samples with a positive loss.

Each sample's loss depends on every embedding of the batch, so the gradient of
a weighted sum of the losses cannot be the gradient of their plain sum scaled
row by row: ``weighted_grad`` takes the weights into the pairwise terms.
"""
from __future__ import annotations

import numbers

import numpy

from .backend import array_module, floatx
from .loss_base import LossFunctionWrapper, _batch_shape, _is_whole, symbolic_form


def _labels(xp, labels):
    # Keras casts to int32 (float labels truncate) and flattens (build_pos_neg_masks reshapes to (-1, 1)).
    return xp.asarray(labels).reshape(-1).astype(xp.int64)


def _logsumexp_rows(xp, x, mask):
    """Row-wise logsumexp over the masked entries (-inf for a row with none) and the softmax weights."""
    neg_inf = x.dtype.type(-numpy.inf)
    masked = xp.where(mask, x, neg_inf)
    top = masked.max(axis=1, keepdims=True)
    shift = xp.where(xp.isfinite(top), top, x.dtype.type(0))
    with numpy.errstate(divide="ignore", invalid="ignore"):
        e = xp.where(mask, xp.exp(masked - shift), x.dtype.type(0))
        total = e.sum(axis=1, keepdims=True)
        lse = xp.log(total) + shift
        weights = xp.where(total > 0, e / xp.where(total > 0, total, x.dtype.type(1)), x.dtype.type(0))
    return lse[:, 0], weights


def _circle_parts(y_true, y_pred, ref_labels, ref_embeddings, remove_diagonal, gamma, margin):
    xp = array_module(y_true, y_pred, ref_embeddings)
    p = xp.asarray(y_pred)
    if p.dtype.kind != "f":
        p = p.astype(floatx())
    if p.ndim != 2:
        raise ValueError(f"circle: `y_pred` must be embeddings of shape (batch, dim), got shape {p.shape}.")
    ref = p if ref_embeddings is None else xp.asarray(ref_embeddings, dtype=p.dtype)
    labels = _labels(xp, y_true)
    ref_ids = labels if ref_labels is None else _labels(xp, ref_labels)
    if labels.shape[0] != p.shape[0] or ref_ids.shape[0] != ref.shape[0]:
        raise ValueError(f"circle: one label per embedding is needed; got {labels.shape[0]} labels for "
                         f"{p.shape[0]} embeddings (references: {ref_ids.shape[0]} for {ref.shape[0]}).")
    similarity = p @ ref.T
    one = p.dtype.type(1)
    dist = xp.maximum(one - similarity, p.dtype.type(0))
    positive = labels[:, None] == ref_ids[None, :]
    negative = ~positive
    if remove_diagonal:
        positive = positive & ~xp.eye(labels.shape[0], ref_ids.shape[0], dtype=bool)
    pos_f, neg_f = positive.astype(p.dtype), negative.astype(p.dtype)
    pos_w = xp.maximum((margin + dist) * pos_f, 0.0)
    neg_w = xp.maximum((1.0 + margin - dist) * neg_f, 0.0)
    pos_wd = -gamma * pos_w * (margin - dist)
    neg_wd = gamma * neg_w * ((1.0 - margin) - dist)
    p_loss, a = _logsumexp_rows(xp, pos_wd, positive)
    n_loss, b = _logsumexp_rows(xp, neg_wd, negative)
    s = p_loss + n_loss
    return dict(xp=xp, p=p, ref=ref, ref_is_pred=ref_embeddings is None, similarity=similarity, dist=dist,
                pos_f=pos_f, neg_f=neg_f, pos_w=pos_w, neg_w=neg_w, a=a, b=b, s=s)


@symbolic_form
def circle(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True, gamma=80, margin=0.4):
    """The Circle loss of each sample against the references (by default the batch itself); shape (batch,)."""
    parts = _circle_parts(y_true, y_pred, ref_labels, ref_embeddings, remove_diagonal, gamma, margin)
    return parts["xp"].logaddexp(0.0, parts["s"]).astype(parts["p"].dtype, copy=False)


def _circle_grad(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True, gamma=80,
                 margin=0.4, row_weights=None):
    """d(sum_i w_i loss_i)/d(y_pred) (w = 1 without ``row_weights``); references other than y_pred are fixed."""
    parts = _circle_parts(y_true, y_pred, ref_labels, ref_embeddings, remove_diagonal, gamma, margin)
    xp, dist, s = parts["xp"], parts["dist"], parts["s"]
    m = margin
    # d softplus(s)/ds; s = -inf (an empty set) gives 0.
    dsoft = xp.exp(-xp.logaddexp(0.0, -s))
    if row_weights is not None:
        dsoft = dsoft * xp.asarray(row_weights, dtype=dsoft.dtype).reshape(-1)
    # d(weighted distance)/d(dist) of each pair; a clipped weight (max(., 0) at 0) passes nothing.
    pos_open = ((m + dist) * parts["pos_f"] > 0).astype(dist.dtype)
    neg_open = ((1.0 + m - dist) * parts["neg_f"] > 0).astype(dist.dtype)
    d_pos = gamma * (parts["pos_w"] - pos_open * (m - dist))
    d_neg = -gamma * (neg_open * ((1.0 - m) - dist) + parts["neg_w"])
    d_dist = dsoft[:, None] * (parts["a"] * d_pos + parts["b"] * d_neg)
    d_sim = -d_dist * ((1.0 - parts["similarity"]) > 0)        # through max(1 - S, 0)
    grad = d_sim @ parts["ref"]
    if parts["ref_is_pred"]:
        grad = grad + d_sim.T @ parts["p"]                        # S = P P^T: both factors are y_pred
    return grad.astype(parts["p"].dtype, copy=False)


class Circle(LossFunctionWrapper):
    """Circle loss of integer labels and L2-normalised embeddings; samples with loss 0 are left out."""

    def __init__(self, gamma=80.0, margin=0.4, remove_diagonal=True, reduction="sum_over_batch_size",
                 name="circle", dtype=None):
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma > 0:
            raise ValueError(f"Circle: `gamma` (the scale of the similarities) must be a number > 0, got {gamma!r}.")
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not numpy.isfinite(margin):
            raise ValueError(f"Circle: `margin` must be a finite number, got {margin!r}.")
        self.gamma, self.margin, self.remove_diagonal = float(gamma), float(margin), bool(remove_diagonal)
        super().__init__(circle, reduction=reduction, name=name, dtype=dtype, grad_fn=_circle_grad,
                         gamma=self.gamma, margin=self.margin, remove_diagonal=self.remove_diagonal)

    def call(self, y_true, y_pred):
        # Labels are not aligned with the embeddings (Keras's alignment changes nothing here but a (batch, 1)
        # y_pred, which Circle does not take).
        return circle(y_true, y_pred, **self._fn_kwargs)

    def grad(self, y_true, y_pred):
        return _circle_grad(y_true, y_pred, **self._fn_kwargs)

    def weighted_grad(self, y_true, y_pred, weights):
        return _circle_grad(y_true, y_pred, row_weights=weights, **self._fn_kwargs)

    def _mask(self, y_true, y_pred):
        # Keras marks the zero losses (samples without a positive or a negative partner) as masked.
        return self.call(y_true, y_pred) > 0

    def validate_targets(self, y_true, output_shape):
        y_true = numpy.asarray(y_true)
        out = _batch_shape(y_true, output_shape)
        if len(out) != 2:
            raise ValueError(f"Loss '{self.name}' needs a model output of embeddings, shape (batch, dim); got "
                             f"{tuple(output_shape)}.")
        if y_true.shape not in (out[:1], out[:1] + (1,)):
            raise ValueError(f"Loss '{self.name}' expects one integer label per sample, `y` of shape {out[:1]}; "
                             f"got {y_true.shape}.")
        if not _is_whole(y_true):
            raise ValueError(f"Loss '{self.name}' needs integer labels in `y`.")
