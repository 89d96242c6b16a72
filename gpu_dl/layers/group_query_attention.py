"""Keras 3's ``GroupedQueryAttention`` (grouped-query attention, exported as ``GroupQueryAttention``) on rank-3
inputs.

``gqa(query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
return_attention_scores=False, training=None, use_causal_mask=False)``: query (B, T, D), value (B, S, Dv), key
(B, S, Dk), the key being the value when left out. The query is projected to ``num_query_heads`` heads (kernel
(D, N, head_dim), bias (N, head_dim)), the key and value to ``num_key_value_heads`` heads (kernels (Dk or Dv,
G, head_dim), biases (G, head_dim)); query head n attends with key/value head n // (N / G), as Keras's repeat of
the key/value heads pairs them. Scores scaled by 1/sqrt(head_dim), the float32 softmax where the mask allows,
dropout on the weights in training, and the output projection (kernel (N, head_dim, D), bias (D,)) back to
(B, T, D). The arithmetic and backward are ``head_attention.HeadAttention``'s, shared with MultiHeadAttention;
the weights and their h5 groups are Keras's (``query/kernel`` ... ``attention_output/bias``).

Not supported (a ValueError): ``flash_attention=True``, ``use_gate``, ``sliding_window``, and an
``activity_regularizer`` (Keras hands it to each projection as well as to the output).
"""
from __future__ import annotations

from .head_attention import HeadAttention, inverse_sqrt, positive


class GroupedQueryAttention(HeadAttention):
    """Grouped-query attention (see the module docstring)."""

    # Keras registers its class GroupedQueryAttention under this name, which its configs write as the
    # class_name; the default layer name and the weights file group come from the class's own name.
    keras_export_name = "GroupQueryAttention"
    # Keras's GroupedQueryAttention keeps its sublayers under these (underscored) attribute names.
    sublayer_groups = (("query", "_query_dense"), ("key", "_key_dense"), ("value", "_value_dense"),
                       ("attention_output", "_output_dense"))

    def __init__(self, head_dim, num_query_heads, num_key_value_heads, dropout=0.0, use_bias=True,
                 sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None, **kwargs):
        super().__init__(dropout=dropout, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, seed=seed, **kwargs)
        where = self._where()
        self.head_dim = positive(head_dim, "head_dim", where)
        self.num_query_heads = positive(num_query_heads, "num_query_heads", where)
        self.num_key_value_heads = positive(num_key_value_heads, "num_key_value_heads", where)
        if self.num_query_heads % self.num_key_value_heads:
            raise ValueError(f"{where}: `num_query_heads` must be divisible by `num_key_value_heads`. Received: "
                             f"num_query_heads={num_query_heads}, num_key_value_heads={num_key_value_heads}.")
        for what, value, allowed in (("sliding_window", sliding_window, None), ("use_gate", use_gate, False),
                                     ("flash_attention", flash_attention, False)):
            if value is not None and value is not allowed and value != allowed:
                raise ValueError(f"{where}: `{what}={value!r}` is not supported by gpu_dl.")
        if activity_regularizer is not None:
            raise ValueError(f"{where}: an activity_regularizer is not supported by gpu_dl (Keras applies it to "
                             "each projection's output as well as to the layer's).")
        self.num_repeats = self.num_query_heads // self.num_key_value_heads
        self._query_heads = self.num_query_heads
        self._score_scale = inverse_sqrt(self.head_dim)

    def build(self, input_shape):
        query, value, key = self._shapes(input_shape)
        if self.built:
            return
        self._known_features(query, value, key)
        n, g, h = self.num_query_heads, self.num_key_value_heads, self.head_dim
        # Keras's equations: "bqm,muh->bquh", "bkm,mvh->bkvh" (key and value), "bquh,uhm->bqm".
        self._dense("query", (query[2], n, h), [0], [1, 2], (n, h))
        self._dense("key", (key[2], g, h), [0], [1, 2], (g, h))
        self._dense("value", (value[2], g, h), [0], [1, 2], (g, h))
        self._build_attention()
        self._dense("attention_output", (n, h, query[2]), [0, 1], [2], (query[2],))
        self._finish_build(input_shape)
    build._marks_built = True

    def compute_output_shape(self, input_shape):
        query, value, _ = self._shapes(input_shape)
        # As Keras's compute_output_shape: the output has the query's shape, and the value its feature size; an
        # unknown feature size is unequal to a known one (Keras compares the two as they are).
        if query[2] != value[2]:
            raise ValueError(f"{self._where()}: the last dimension of `query_shape` and `value_shape` must be equal, "
                             f"but are {query[2]}, {value[2]}. Received: query_shape={query}, value_shape={value}")
        return query

    def get_config(self):
        weights = self.weight_arguments_config()
        config = {**super().get_config(), "head_dim": self.head_dim, "num_query_heads": self.num_query_heads,
                  "num_key_value_heads": self.num_key_value_heads, "use_bias": self.use_bias, "use_gate": False,
                  "sliding_window": None, "dropout": self.dropout,
                  "kernel_initializer": weights["kernel_initializer"], "bias_initializer": weights["bias_initializer"],
                  "kernel_regularizer": weights["kernel_regularizer"], "bias_regularizer": weights["bias_regularizer"],
                  "activity_regularizer": None, "kernel_constraint": weights["kernel_constraint"],
                  "bias_constraint": weights["bias_constraint"], "seed": self.seed}
        return config


# Keras's exported name for the class.
GroupQueryAttention = GroupedQueryAttention
