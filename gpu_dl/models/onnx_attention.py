"""The attention layers' ONNX conversions (``onnx_export.py`` walks the model and calls them).

MultiHeadAttention and GroupedQueryAttention become their projections (MatMul and Add), the scaled dot products
per head (GroupedQueryAttention's key and value heads repeated for the query heads each serves, as Keras pairs
them), the softmax and the output projection; Attention and AdditiveAttention their scores ("dot": ``query @
key^T``; "concat" and additive: the tanh of the sums of every query and key step), the softmax and the weighted
values.

Masks as gpu_dl applies them (``layers/head_attention.py``, ``layers/attention.py``): the masks of padded steps
reaching the query, the value and (for the head attentions) an explicit key, and ``use_causal_mask``'s lower
triangle (query step i sees key steps j <= i, its sizes read at run time), are ANDed into one (batch, T, S)
boolean. The head attentions replace a masked score by -1e9 and zero its weight after the softmax (a query step
seeing nothing gets zeros); Attention and AdditiveAttention lower a masked score by 1e9 and zero the output rows of
the query's padded steps. The head attentions AND an ``attention_mask`` tensor of the call in too. The output
carries the query's mask.
"""
from __future__ import annotations

import numpy

from .onnx_export import _projection, _weights

_LARGE = 1e9        # what gpu_dl's masked softmax puts at (or takes from) a masked score (ops/attention.py)


def _causal(b, scores):
    """(T, S) booleans of ``scores`` (..., T, S): True where the key step is at most the query step."""
    shape = b.op("Shape", [scores])
    zero, one = b.const(numpy.int64(0), "zero"), b.const(numpy.int64(1), "one")
    rows, cols = (b.op("Range", [zero, b.op("Gather", [shape, b.const(numpy.int64(axis), "axis")], axis=0), one])
                  for axis in (-2, -1))
    return b.op("GreaterOrEqual", [b.op("Unsqueeze", [rows, b.ints([1])]), cols], hint="causal_mask")


def _given_mask(b, value):
    """An ``attention_mask`` tensor as gpu_dl reads it: booleans as they are, floats above 0.5, other numbers
    not 0; (T, S) for every sample."""
    if value.dtype == "bool":
        mask = value.name
    elif numpy.dtype(value.dtype).kind == "f":
        mask = b.op("Greater", [value.name, b.scalar(0.5)])
    else:
        mask = b.op("Not", [b.op("Equal", [value.name, b.const(numpy.zeros((), value.dtype), "zero")])])
    return b.op("Unsqueeze", [mask, b.ints([0])]) if value.rank == 2 else mask


def _score_mask(b, scores, query_mask, step_masks, causal, given=None):
    """The (batch or 1, T, S) booleans of which key steps each query step sees (None for all): the query's mask
    (None where not applied), the masks of the value's (and key's) steps, the causal triangle and a ``given``
    (batch or 1, T, S) one."""
    parts = [] if query_mask is None else [b.op("Unsqueeze", [query_mask, b.ints([2])])]
    parts += [b.op("Unsqueeze", [m, b.ints([1])]) for m in step_masks if m is not None]
    if causal:
        parts.append(b.op("Unsqueeze", [_causal(b, scores), b.ints([0])]))
    if given is not None:
        parts.append(given)
    return b.fold("And", parts) if parts else None


def _masked_softmax(b, scores, mask, replace):
    """The softmax over the last axis where ``mask`` allows: a masked score becomes -1e9 and its weight 0
    (``replace``), or is lowered by 1e9."""
    if mask is None:
        return b.op("Softmax", [scores], axis=-1)
    low = b.scalar(-_LARGE) if replace else b.op("Sub", [scores, b.scalar(_LARGE)])
    p = b.op("Softmax", [b.op("Where", [mask, scores, low])], axis=-1)
    return b.op("Where", [mask, p, b.scalar(0.0)]) if replace else p


def _head_mask(b, layer, xs, scores):
    """The mask of a head attention's scores (B, N, T, S), with a heads axis (None for all)."""
    causal = bool(b.call_options.get("use_causal_mask"))
    steps = [xs[1].mask] + ([xs[2].mask] if len(xs) > 2 else [])
    given = b.call_tensors.get("attention_mask")
    mask = _score_mask(b, scores, xs[0].mask, steps, causal, None if given is None else _given_mask(b, given))
    return None if mask is None else b.op("Unsqueeze", [mask, b.ints([1])])


def _heads(b, x, heads, width, repeats=1):
    """(B, T, heads * width) as (B, heads * repeats, T, width): each head repeated ``repeats`` times in a row."""
    y = b.transpose(b.op("Reshape", [x, b.ints([0, 0, heads, width])]), [0, 2, 1, 3])
    if repeats == 1:
        return y
    y = b.op("Expand", [b.op("Unsqueeze", [y, b.ints([2])]), b.ints([1, 1, repeats, 1, 1])])
    return b.op("Reshape", [y, b.ints([0, heads * repeats, -1, width])])


def _head_attention(b, layer, xs):
    """MultiHeadAttention and GroupedQueryAttention: the output (and the weights with
    ``return_attention_scores``)."""
    options = b.call_options
    w = {"/".join(v.path.split("/")[-2:]): a for v, a in zip(layer.weights, layer.get_weights())}
    query, value = xs[0].name, xs[1].name
    key = xs[2].name if len(xs) > 2 else value
    n = layer._query_heads
    groups = getattr(layer, "num_key_value_heads", n)
    kd = getattr(layer, "head_dim", None) or layer.key_dim
    vd = getattr(layer, "head_dim", None) or layer.value_dim or layer.key_dim
    q, k, v = (_projection(b, t, w[f"{part}/kernel"], w.get(f"{part}/bias"), heads * d, f"{layer.name}/{part}")
               for t, part, heads, d in ((query, "query", n, kd), (key, "key", groups, kd),
                                         (value, "value", groups, vd)))
    q = b.op("Mul", [_heads(b, q, n, kd), b.scalar(layer._score_scale)])
    k = b.transpose(_heads(b, k, groups, kd, n // groups), [0, 1, 3, 2])
    scores = b.op("MatMul", [q, k])
    scores = _masked_softmax(b, scores, _head_mask(b, layer, xs, scores), replace=True)
    mixed = b.transpose(b.op("MatMul", [scores, _heads(b, v, groups, vd, n // groups)]), [0, 2, 1, 3])
    kernel = w["attention_output/kernel"]       # (N, value_dim, *output_shape)
    out_shape = kernel.shape[2:]
    width = int(numpy.prod(out_shape))
    y = _projection(b, b.op("Reshape", [mixed, b.ints([0, 0, n * vd])]), kernel.reshape((n * vd,) + out_shape),
                    w.get("attention_output/bias"), width, f"{layer.name}/attention_output")
    if len(out_shape) > 1:
        y = b.op("Reshape", [y, b.ints([0, 0] + list(out_shape))])
    b.out_mask = xs[0].mask
    return [y, scores] if options.get("return_attention_scores") else y


def _tanh_scores(b, query, key, inner=None, outer=None, weight=None):
    """``weight * sum_d outer_d tanh(inner * (query_t + key_s))`` (B, T, S), each factor left out where None."""
    u = b.op("Add", [b.op("Unsqueeze", [query, b.ints([2])]), b.op("Unsqueeze", [key, b.ints([1])])])
    if inner is not None:
        u = b.op("Mul", [u, inner])
    t = b.op("Tanh", [u])
    if outer is None:
        scores = b.op("ReduceSum", [t, b.ints([-1])], keepdims=0)
    else:
        scores = b.op("Squeeze", [b.op("MatMul", [t, b.op("Unsqueeze", [outer, b.ints([1])])]), b.ints([-1])])
    return scores if weight is None else b.op("Mul", [scores, weight])


def _attention(b, layer, xs):
    """Attention and AdditiveAttention: the output (and the weights with ``return_attention_scores``)."""
    from ..layers.attention import AdditiveAttention
    w = {k: b.const(a, f"{layer.name}/{k}") for k, a in _weights(layer).items()}
    query, value = xs[0].name, xs[1].name
    key = xs[2].name if len(xs) > 2 else value
    if isinstance(layer, AdditiveAttention):
        scores = _tanh_scores(b, query, key, outer=w.get("scale"))
    elif layer.score_mode == "dot":
        scores = b.op("MatMul", [query, b.op("Transpose", [key], perm=[0, 2, 1])])
        scores = scores if "scale" not in w else b.op("Mul", [scores, w["scale"]])
    else:
        scores = _tanh_scores(b, query, key, inner=w.get("scale"), weight=w["concat_score_weight"])
    # Attention applies the value's mask (not the key's) to the scores, and the query's to the output.
    mask = _score_mask(b, scores, None, [xs[1].mask], bool(b.call_options.get("use_causal_mask")))
    p = _masked_softmax(b, scores, mask, replace=False)
    y = b.op("MatMul", [p, value], hint=layer.name)
    if xs[0].mask is not None:
        y = b.op("Where", [b.op("Unsqueeze", [xs[0].mask, b.ints([2])]), y, b.scalar(0.0)], hint=layer.name)
    b.out_mask = xs[0].mask
    return [y, p] if b.call_options.get("return_attention_scores") else y


def converters():
    """class -> conversion, for ``onnx_export``'s table."""
    from ..layers import attention, group_query_attention, multi_head_attention
    return {multi_head_attention.MultiHeadAttention: _head_attention,
            group_query_attention.GroupedQueryAttention: _head_attention,
            attention.Attention: _attention, attention.AdditiveAttention: _attention}

