"""Keras 3's ``MultiHeadAttention`` on rank-3 inputs, attending over the sequence axis.

``mha(query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
return_attention_scores=False, training=None, use_causal_mask=False)`` (Keras's order): query (B, T, Dq),
value (B, S, Dv), key (B, S, Dk), the key being the value when
left out. Each is projected per head as Keras's EinsumDense does (kernels (D, N, key_dim) or
(D, N, value_dim), biases (N, key_dim)), the scaled dot products (B, N, T, S) go through a float32 softmax
over S where the mask allows (masked weights 0, as Keras's ``Softmax(mask)`` gives them), dropout (training
only) drops weights, and the heads' weighted values (B, T, N, value_dim) are projected by the output kernel
(N, value_dim, *output_shape) and bias (output_shape) to (B, T, *output_shape); ``output_shape`` defaults to
(Dq,). The mask is the AND of ``attention_mask`` (B, T, S), the query's and value's (and key's) masks of
padded steps, and the causal mask. Weights and their paths are Keras's: ``query/kernel``, ``query/bias``,
``key/...``, ``value/...``, ``attention_output/...``, in that order. ``backward`` takes the output's gradient
(or ``[d_output, d_scores]``) and returns ``[dquery, dvalue]`` or ``[dquery, dvalue, dkey]``.

The projections, attention and backward are ``head_attention.HeadAttention``'s, which GroupQueryAttention
shares. Not supported (a ValueError): attention_axes other than the sequence axis, inputs of another rank,
``use_gate``, ``sliding_window`` and ``flash_attention=True``.
"""
from __future__ import annotations

import numpy

from .head_attention import HeadAttention, inverse_sqrt, positive


class MultiHeadAttention(HeadAttention):
    """Multi-head attention (see the module docstring)."""

    drops_input_masks = True

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, use_gate=False, seed=None, **kwargs):
        super().__init__(dropout=dropout, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, seed=seed, **kwargs)
        where = self._where()
        self.num_heads = positive(num_heads, "num_heads", where)
        self.key_dim = positive(key_dim, "key_dim", where)
        self.value_dim = positive(value_dim, "value_dim", where, optional=True) or self.key_dim
        if output_shape is not None:
            output_shape = (output_shape,) if isinstance(output_shape, (int, numpy.integer)) else output_shape
            try:
                output_shape = tuple(positive(d, "output_shape", where) for d in output_shape)
            except TypeError:
                raise ValueError(f"{where}: invalid `output_shape`: {output_shape!r}; give an int or a tuple of "
                                 "them.") from None
        self.output_shape = output_shape or None
        if isinstance(attention_axes, (int, numpy.integer)):
            attention_axes = (int(attention_axes),)
        if attention_axes is not None and tuple(attention_axes) not in ((1,), (-2,)):
            raise ValueError(f"{where}: attention_axes={attention_axes!r} is not supported by gpu_dl, which attends "
                             "over the sequence axis of rank-3 inputs only (attention_axes=None or (1,)).")
        self.attention_axes = None if attention_axes is None else (1,)
        for what, value, allowed in (("sliding_window", sliding_window, None), ("use_gate", use_gate, False),
                                     ("flash_attention", flash_attention, False)):
            if value is not None and value is not allowed and value != allowed:
                raise ValueError(f"{where}: `{what}={value!r}` is not supported by gpu_dl.")
        self._query_heads = self.num_heads
        self._score_scale = inverse_sqrt(self.key_dim)

    def build(self, input_shape):
        query, value, key = self._shapes(input_shape)
        if self.built:
            return
        self._known_features(query, value, key)
        n = self.num_heads
        out = self.output_shape or (query[2],)
        for name, dim, width in (("query", query[2], self.key_dim), ("key", key[2], self.key_dim),
                                 ("value", value[2], self.value_dim)):
            self._dense(name, (dim, n, width), [0], [1, 2], (n, width))
        self._build_attention()
        self._dense("attention_output", (n, self.value_dim) + out, [0, 1], list(range(2, 2 + len(out))), out)
        self.attention_axes = (1,)       # Keras resolves None to the sequence axis when it builds
        self._finish_build(input_shape)
    build._marks_built = True

    def compute_output_shape(self, input_shape):
        query, _, _ = self._shapes(input_shape)
        return query[:2] + (self.output_shape or (query[2],))

    def get_config(self):
        config = {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                  "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias, "use_gate": False,
                  "output_shape": self.output_shape, "attention_axes": self.attention_axes, "sliding_window": None,
                  **self.weight_arguments_config(), "seed": self.seed}
        config.setdefault("activity_regularizer", None)     # Keras writes it, None or not
        return config
