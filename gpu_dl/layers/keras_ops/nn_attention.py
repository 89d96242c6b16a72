"""Keras's ``keras.ops.nn`` ``DotProductAttention``, with Keras's class, module and config, a
forward and an exact backward.
"""
from __future__ import annotations

import math

import numpy

from .base import _xp
from .nn_base import NNOperation, _promoted

__all__ = ["DotProductAttention", "OPERATIONS"]


_LARGE_NEGATIVE = -0.7 * 3.38953e38        # Keras torch's masked logit (float32 and wider)


class DotProductAttention(NNOperation):
    """``dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False, ...)``:
    query (B, T, N, H), key and value (B, S, K, H) with K dividing N (grouped heads); the softmax of
    ``query . key * scale`` (scale None: 1 / sqrt(H)) plus ``bias``, masked where ``mask`` is False (and above the
    diagonal for ``is_causal``), times value: (B, T, N, H). Gradients to query, key, value and bias."""

    positional = ("query", "key", "value", "bias", "mask", "scale")
    keyword_arguments = ("bias", "mask", "scale")
    tensor_keywords = ("bias", "mask")
    required = 3
    config_keys = ("is_causal", "flash_attention", "attn_logits_soft_cap")

    def __init__(self, is_causal=False, flash_attention=None, attn_logits_soft_cap=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if attn_logits_soft_cap is not None:
            raise ValueError(f"{self._where()}: attn_logits_soft_cap is only supported for JAX on TPU, as in Keras; "
                             "set attn_logits_soft_cap=None.")
        self.is_causal, self.flash_attention = bool(is_causal), flash_attention
        self.attn_logits_soft_cap = None

    def integer_operand(self, position):
        return position == 4

    def result_dtype(self, tensors, arguments):
        d = self._dtypes(tensors, arguments)
        return _promoted(d["query"], d["key"], d["value"])

    def eager_dtype(self, arrays):
        return _promoted(*[a.dtype.name for a in arrays[:3]])

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        q, k, v = given["query"], given["key"], given["value"]
        if len(q) != 4 or len(k) != 4 or len(v) != 4:
            raise ValueError(f"{self._where()}: query, key and value must be 4-D (batch, steps, heads, features), "
                             f"got {q}, {k} and {v}.")
        if k != v and None not in k + v:
            raise ValueError(f"{self._where()}: key {k} and value {v} must have the same shape.")
        if q[2] is not None and k[2] is not None and q[2] % k[2]:
            raise ValueError(f"{self._where()}: the query's {q[2]} heads are not a multiple of the key's {k[2]}.")
        if q[3] is not None and k[3] is not None and q[3] != k[3]:
            raise ValueError(f"{self._where()}: query {q} and key {k} must have the same features.")
        bias, mask = given["bias"], given["mask"]
        if self.keywords.get("bias") is not None:
            bias = numpy.shape(self.keywords["bias"])
        if self.keywords.get("mask") is not None:
            mask = numpy.shape(self.keywords["mask"])
        if bias is not None and mask is not None:
            raise ValueError(f"{self._where()}: only one of `bias` and `mask` can be given, as in Keras.")
        return q[:3] + (v[3],)

    def _extras(self, xp, bias, mask, scale, dtype):
        bias = bias if bias is not None else (None if self.keywords.get("bias") is None else
                                              xp.asarray(numpy.asarray(self.keywords["bias"], dtype=dtype)))
        mask = mask if mask is not None else (None if self.keywords.get("mask") is None else
                                              xp.asarray(numpy.asarray(self.keywords["mask"])))
        if scale is None:
            scale = self.keywords.get("scale")
        return bias, mask, (None if scale is None else float(scale))

    def _probabilities(self, query, key, bias, mask, scale):
        xp = _xp(query)
        heads = query.shape[2] // key.shape[2]
        key = xp.repeat(key, heads, axis=2) if heads > 1 else key
        scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
        logits = xp.einsum("btnh,bsnh->bnts", query, key) * query.dtype.type(scale)
        keep = None
        if mask is not None:
            keep = mask.astype(bool)
            if self.is_causal:
                keep = keep & xp.tril(xp.ones((query.shape[1], key.shape[1]), dtype=bool))
        elif self.is_causal:
            keep = xp.tril(xp.ones((query.shape[1], key.shape[1]), dtype=bool))
        if keep is not None:
            logits = logits + xp.where(keep, query.dtype.type(0), query.dtype.type(_LARGE_NEGATIVE))
        if bias is not None:
            logits = logits + bias
        logits = logits - logits.max(axis=-1, keepdims=True)
        e = xp.exp(logits)
        return e / e.sum(axis=-1, keepdims=True), key, scale, heads

    def forward_function(self, query, key, value, bias=None, mask=None, scale=None):
        bias, mask, scale = self._extras(_xp(query), bias, mask, scale, query.dtype)
        p, _, _, heads = self._probabilities(query, key, bias, mask, scale)
        value = _xp(value).repeat(value, heads, axis=2) if heads > 1 else value
        return _xp(p).einsum("bnts,bsnh->btnh", p, value)

    def backward_function(self, dy, operands, y):
        query, key, value, bias, mask, scale = operands
        xp = _xp(dy)
        extra_bias, mask, scale = self._extras(xp, bias, mask, scale, query.dtype)
        p, key_rep, scale, heads = self._probabilities(query, key, extra_bias, mask, scale)
        value_rep = xp.repeat(value, heads, axis=2) if heads > 1 else value
        dvalue = xp.einsum("bnts,btnh->bsnh", p, dy)
        dp = xp.einsum("btnh,bsnh->bnts", dy, value_rep)
        dlogits = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
        dquery = xp.einsum("bnts,bsnh->btnh", dlogits, key_rep) * scale
        dkey = xp.einsum("bnts,btnh->bsnh", dlogits, query) * scale

        def grouped(g):
            b, s, n, h = g.shape
            return g.reshape(b, s, n // heads, heads, h).sum(axis=3) if heads > 1 else g
        return [dquery, grouped(dkey), grouped(dvalue), None if bias is None else dlogits, None, None]


OPERATIONS = {cls.__name__: cls for cls in (DotProductAttention,)}
