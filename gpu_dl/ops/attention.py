"""The arithmetic of the attention layers, forward and backward, on NumPy or CuPy arrays (batched matmul and
element-wise array operations: no kernel of its own).

Shapes: ``B`` batch, ``T`` query steps, ``S`` key/value steps, ``D`` features, ``N`` heads.

- ``dot_scores`` / ``tanh_scores``: query (B, T, D) and key (B, S, D) to scores
  (B, T, S), as Keras's ``Attention`` (score_mode "dot" and "concat") and ``AdditiveAttention`` compute them;
- ``masked_softmax``: the attention weights over the last axis, in float32 at least (as Keras's softmax runs
  on float32 scores); masked-out scores are lowered by 1e9 (``Attention``'s way) or replaced by -1e9 with the
  weights zeroed afterwards (``MultiHeadAttention``'s ``Softmax(mask)``);
- ``softmax_backward``: the gradient of the scores from that of the weights.
"""
from __future__ import annotations

import numpy

from ..backend import array_module
from .device_reduction import sum_axes

_LARGE = 1.0e9       # Keras's large number for masked scores (float32 and wider)


def _softmax_dtype(dtype):
    return numpy.promote_types(dtype, numpy.float32)


def causal_mask(xp, t, s):
    """(1, T, S) booleans: query step i sees key steps j <= i (Keras's lower triangle of ones)."""
    return xp.tril(xp.ones((t, s), dtype=bool))[None]


def masked_softmax(scores, mask=None, mode="subtract"):
    """The softmax of ``scores`` over the last axis where ``mask`` (broadcasting, True = keep) allows.

    ``mode="subtract"``: masked scores become ``score - 1e9`` (Keras's Attention); ``mode="replace"``: they become
    -1e9 and their weights 0 afterwards, so a row masked throughout gives zeros (Keras's Softmax layer, which
    MultiHeadAttention uses). The result has the scores' dtype; the arithmetic runs in float32 or wider."""
    xp = array_module(scores)
    work = scores.astype(_softmax_dtype(scores.dtype), copy=False)
    if mask is not None:
        if mode == "subtract":
            work = xp.where(mask, work, work - work.dtype.type(_LARGE))
        else:
            work = xp.where(mask, work, work.dtype.type(-_LARGE))
    work = work - work.max(axis=-1, keepdims=True)
    e = xp.exp(work)
    p = e / e.sum(axis=-1, keepdims=True)
    if mask is not None and mode != "subtract":
        p = xp.where(mask, p, p.dtype.type(0))
    return p.astype(scores.dtype, copy=False)


def softmax_backward(p, dp):
    """The gradient of the scores from ``dp``, that of the weights ``p`` (zero where ``p`` was zeroed by a mask:
    those scores do not reach the output)."""
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------------ Attention's and AdditiveAttention's scores
def dot_scores(query, key, scale=None):
    """``query @ key^T`` (B, T, S), times the scalar ``scale`` when given."""
    scores = query @ key.swapaxes(-1, -2)
    return scores if scale is None else scores * scale


def dot_scores_backward(dscores, query, key, scale=None):
    """``(dquery, dkey, dscale)``; ``dscale`` is None without a scale."""
    dscale = None
    if scale is not None:
        dscale = (dscores * (query @ key.swapaxes(-1, -2))).sum()
        dscores = dscores * scale
    return dscores @ key, dscores.swapaxes(-1, -2) @ query, dscale


def tanh_scores(query, key, inner=None, outer=None, weight=None):
    """``weight * sum_d outer_d tanh(inner * (query[:, :, None] + key[:, None]))`` (B, T, S), and the tanh
    (B, T, S, D) the backward needs. Attention's "concat" mode has a scalar ``inner`` (its scale) and ``weight``;
    AdditiveAttention a (D,) ``outer`` (its scale). Each may be None (1)."""
    u = query[:, :, None, :] + key[:, None, :, :]
    if inner is not None:
        u = u * inner
    t = array_module(u).tanh(u)
    scores = t.sum(axis=-1) if outer is None else t @ outer
    return (scores if weight is None else scores * weight), t


def tanh_scores_backward(dscores, query, key, t, inner=None, outer=None, weight=None):
    """``(dquery, dkey, dinner, douter, dweight)`` of ``tanh_scores``; None for each one absent."""
    dweight = douter = dinner = None
    if weight is not None:
        dweight = (dscores * (t.sum(axis=-1) if outer is None else t @ outer)).sum()
        dscores = dscores * weight
    if outer is not None:
        douter = sum_axes(dscores[..., None] * t, (0, 1, 2))
        du = dscores[..., None] * outer * (1 - t * t)
    else:
        du = dscores[..., None] * (1 - t * t)
    if inner is not None:
        dinner = (du * (query[:, :, None, :] + key[:, None, :, :])).sum()
        du = du * inner
    return du.sum(axis=2), du.sum(axis=1), dinner, douter, dweight


# ------------------------------------------------------------------ the weighted sum and its dropout
def weighted_values(p, value, keep=None):
    """``(p * keep) @ value`` and the dropped weights ``p * keep`` (``keep`` the scaled keep-mask or None)."""
    dropped = p if keep is None else p * keep
    return dropped @ value, dropped


def weighted_values_backward(dout, dropped, value, keep=None, ddropped=None):
    """``(dp, dvalue)``: the gradient of the softmax's weights and of the values. ``ddropped`` is the gradient
    reaching the dropped weights directly (when they were returned as the attention scores)."""
    dd = dout @ value.swapaxes(-1, -2)
    if ddropped is not None:
        dd = dd + ddropped
    dvalue = dropped.swapaxes(-1, -2) @ dout
    return (dd if keep is None else dd * keep), dvalue
