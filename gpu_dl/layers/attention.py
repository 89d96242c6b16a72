"""Keras 3's dot-product ``Attention`` (Luong) and ``AdditiveAttention`` (Bahdanau) layers.

Called on ``[query, value]`` or ``[query, value, key]``: query (B, T, D), value (B, S, Dv), key (B, S, D);
the key is the value when left out. The output is (B, T, Dv); with ``return_attention_scores=True`` the
layer returns ``[output, weights]``, the weights (B, T, S) after dropout, as Keras returns them.

Scores: "dot" ``query @ key^T`` (times the scalar ``scale`` with ``use_scale``); "concat"
``concat_score_weight * sum_d tanh(scale * (query_t + key_s))``; AdditiveAttention
``sum_d scale_d * tanh(query_t + key_s)`` with a (D,) ``scale``. Masks as Keras applies them: the value's
(B, S) mask and the causal mask (``use_causal_mask``) lower masked scores by 1e9 before the float32 softmax;
the query's (B, T) mask zeroes the output rows of its padded steps and is the output's mask. Dropout (in
training only) drops attention weights: as in Keras, a layer with ``dropout`` above 0 holds a SeedGenerator of
its ``seed`` as ``seed_generator`` (among its ``variables``), and each training call draws its mask from the
next seed pair (on NumPy the values Keras's NumPy backend draws). ``backward`` takes the output's gradient
(or ``[d_output, d_weights]``) and returns one gradient per input, in order.
"""
from __future__ import annotations


import numpy

from ..backend import array_module
from ..ops import attention as ops
from . import build_shapes
from .base import Layer
from .masks import set_node_masks
from .regularization import dropout_rate, layer_seed_generator, seeded_keep_mask
from .symbolic import KerasTensor, Node, any_symbolic, is_symbolic


def _flag(value, what, where):
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{where}: `{what}` must be True or False, got {value!r}.")
    return bool(value)


def _scalar_grad(xp, value, dtype):
    return xp.asarray(value, dtype=dtype).reshape(())


class Attention(Layer):
    """Dot-product attention (see the module docstring); weights ``scale`` () with ``use_scale`` and
    ``concat_score_weight`` () with ``score_mode="concat"``, both starting at 1 as in Keras."""

    takes_input_list = True
    supports_masking = True
    # The keyword arguments of its calls a saved functional model records.
    call_keywords = ("return_attention_scores", "use_causal_mask")

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = _flag(use_scale, "use_scale", self._where())
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{self._where()}: invalid value for argument score_mode. Expected one of "
                             f"{{'dot', 'concat'}}. Received: score_mode={score_mode!r}")
        self.score_mode = score_mode
        self.dropout = dropout_rate(dropout, f"{self._where()}: dropout")
        self.seed = seed
        if self.dropout > 0:
            self.seed_generator = layer_seed_generator(self, seed)
        self.scale = self.concat_score_weight = None

    def _where(self):
        return f"{type(self).__name__} layer '{self.name}'"

    # ------------------------------------------------------------------ shapes
    def _shapes(self, input_shape):
        """``(query, value, key)`` shapes, checked: a list of 2 or 3 rank-3 shapes that fit together."""
        if not isinstance(input_shape, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"{self._where()} must be called on a list of inputs, namely [query, value] or "
                             f"[query, value, key]. Received: {input_shape!r:.200}.")
        if not 2 <= len(input_shape) <= 3:
            raise ValueError(f"{self._where()} accepts inputs list of length 2 or 3, namely [query, value] or "
                             f"[query, value, key]. Received length: {len(input_shape)}.")
        shapes = [tuple(s) for s in input_shape]
        if any(len(s) != 3 for s in shapes):
            raise ValueError(f"{self._where()}: query, value and key must have rank 3 (batch, steps, features); "
                             f"received shapes {shapes}.")
        query, value = shapes[0], shapes[1]
        key = shapes[2] if len(shapes) == 3 else value
        if len({s[0] for s in shapes} - {None}) > 1:
            raise ValueError(f"{self._where()}: the inputs have different batch sizes: {shapes}.")
        if None not in (value[1], key[1]) and value[1] != key[1]:
            raise ValueError(f"{self._where()}: value and key must have the same number of steps; received value "
                             f"{value} and key {key}.")
        if None not in (query[2], key[2]) and query[2] != key[2]:
            raise ValueError(f"{self._where()}: query and key must have the same feature size; received query "
                             f"{query} and key {key}.")
        return query, value, key

    def build(self, input_shape):
        query, _, _ = self._shapes(input_shape)
        if self.built:
            return
        self._build_weights(query[-1])
        self.built = True
        self.input_spec = [(None,) + tuple(s[1:]) for s in input_shape]
    build._marks_built = True      # Layer's wrapper records one input shape; this layer takes several

    def _build_weights(self, dim):
        if self.use_scale:
            self.scale = self.add_weight((), "ones", name="scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight((), "ones", name="concat_score_weight")

    def ensure_built(self, input_shape):
        built = self.built
        self.build(input_shape)
        if not built:
            # inside a traced call, the shapes Keras's build gets (its build config), the sizes taken as unknown
            self.__dict__["_build_shapes"] = {"input_shape": build_shapes.with_stand_ins([tuple(s)
                                                                                           for s in input_shape])}

    def check_input_shape(self, shape):
        self._shapes(shape)

    def compute_output_shape(self, input_shape):
        query, value, _ = self._shapes(input_shape)
        return query[:-1] + (value[-1],)

    def _scores_shape(self, input_shape):
        query, _, key = self._shapes(input_shape)
        return query[:-1] + (key[1],)

    def node_output_shapes(self, input_shape, options):
        """The shapes of a call's outputs: the output's, and the weights' with ``return_attention_scores``."""
        shapes = [self.compute_output_shape(input_shape)]
        return shapes + [self._scores_shape(input_shape)] if options.get("return_attention_scores") else shapes

    # ------------------------------------------------------------------ calls
    def __call__(self, inputs, training=None, mask=None, return_attention_scores=False, use_causal_mask=False,
                 initial_state=None):
        if initial_state is not None:
            raise TypeError(f"{self._where()} takes no initial_state.")
        return_attention_scores = _flag(return_attention_scores, "return_attention_scores", self._where())
        use_causal_mask = _flag(use_causal_mask, "use_causal_mask", self._where())
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{self._where()} must be called on a list of inputs, namely [query, value] or "
                             f"[query, value, key]. Received: an input of type {type(inputs).__name__}.")
        if any_symbolic(inputs, mask):
            return self._symbolic_call(list(inputs), training, mask, return_attention_scores, use_causal_mask)
        xs = [self._as_input(v) for v in inputs]
        shapes = [tuple(v.shape) for v in xs]
        self.ensure_built(shapes)
        self.check_input_shape(shapes)
        given, dtype = xs[0].dtype, self._call_dtype()
        xs = [v if v.dtype == dtype else v.astype(dtype) for v in xs]
        masks = self._checked_masks(xs, mask)
        out, weights = self._policy_call(given, self.call, xs, training=bool(training), masks=masks,
                                         use_causal_mask=use_causal_mask)
        self._activity_output = out if self.activity_regularizer is not None else None
        return [out, weights] if return_attention_scores else out

    def _symbolic_call(self, inputs, training, mask, return_attention_scores, use_causal_mask):
        if mask is not None:
            raise ValueError(f"{self._where()}: in a functional model masks pass along the edges by themselves; a "
                             "`mask` argument is not taken in a call on symbolic tensors.")
        if not all(is_symbolic(t) for t in inputs):
            raise TypeError(f"{self._where()} was called on a list that mixes symbolic tensors and other values.")
        shapes = [t.shape for t in inputs]
        self.ensure_built(shapes)
        self.check_input_shape(shapes)
        kwargs = {}
        if training is not None:
            kwargs["training"] = bool(training)
        if return_attention_scores:
            kwargs["return_attention_scores"] = True
        if use_causal_mask:
            kwargs["use_causal_mask"] = True
        outputs = [KerasTensor(s, dtype=self.compute_dtype) for s in self.node_output_shapes(shapes, kwargs)]
        set_node_masks(Node(self, args=(inputs,), kwargs=kwargs, outputs=outputs))
        return outputs if return_attention_scores else outputs[0]

    def _checked_masks(self, xs, mask):
        """``[query mask, value mask]`` as (B, steps) booleans (None where absent), or None."""
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
            raise ValueError(f"{self._where()}: mask must be a list, namely [query_mask, value_mask] (or with a "
                             f"key_mask). Received: mask={mask!r:.200}.")
        checked = []
        for v, m in zip(xs, mask):
            if m is not None:
                m = array_module(v).asarray(m).astype(bool, copy=False)
                if tuple(m.shape) != tuple(v.shape[:2]):
                    raise ValueError(f"{self._where()}: a mask of shape {tuple(m.shape)} does not fit an input of "
                                     f"shape {tuple(v.shape)}; masks are (batch, steps).")
            checked.append(m)
        return checked

    def compute_mask(self, x, mask=None):
        """The query's mask, as Keras passes it on."""
        if mask is None or not isinstance(mask, (list, tuple)):
            return None
        return mask[0]

    def call(self, xs, training=False, masks=None, use_causal_mask=False):
        """``(output, weights)`` for ``xs`` = [query, value(, key)] of this layer's dtype."""
        query, value = xs[0], xs[1]
        key = xs[2] if len(xs) == 3 else value
        query_mask = masks[0] if masks else None
        value_mask = masks[1] if masks and len(masks) > 1 else None
        xp = array_module(query)
        scores, cache = self._scores(query, key)
        score_mask = None if value_mask is None else value_mask[:, None, :]
        if use_causal_mask:
            causal = ops.causal_mask(xp, scores.shape[-2], scores.shape[-1])
            score_mask = causal if score_mask is None else score_mask & causal
        p = ops.masked_softmax(scores, score_mask, mode="subtract")
        keep = None
        if training and self.dropout > 0:
            keep = seeded_keep_mask(self.seed_generator, p, p.shape, self.dropout)
        out, dropped = ops.weighted_values(p, value, keep)
        if query_mask is not None:
            out = xp.where(query_mask[:, :, None], out, out.dtype.type(0))
        self._saved = (query, key, value, len(xs), cache, p, dropped, keep, query_mask) if training else None
        return out, dropped

    def backward(self, dy):
        query, key, value, count, cache, p, dropped, keep, query_mask = self.saved()
        dout, ddropped = (dy[0], dy[1]) if isinstance(dy, (list, tuple)) else (dy, None)
        xp = array_module(query)
        if dout is None:
            dout = xp.zeros((query.shape[0], query.shape[1], value.shape[2]), dtype=value.dtype)
        if query_mask is not None:
            dout = xp.where(query_mask[:, :, None], dout, dout.dtype.type(0))
        dp, dvalue = ops.weighted_values_backward(dout, dropped, value, keep, ddropped)
        dquery, dkey = self._scores_backward(ops.softmax_backward(p, dp), query, key, cache)
        return [dquery, dvalue, dkey] if count == 3 else [dquery, dvalue + dkey]

    # ------------------------------------------------------------------ scores
    def _scores(self, query, key):
        scale = None if self.scale is None else self.scale.value
        if self.score_mode == "dot":
            return ops.dot_scores(query, key, scale), None
        return ops.tanh_scores(query, key, inner=scale, weight=self.concat_score_weight.value)

    def _scores_backward(self, dscores, query, key, cache):
        xp = array_module(query)
        scale = None if self.scale is None else self.scale.value
        if self.score_mode == "dot":
            dquery, dkey, dscale = ops.dot_scores_backward(dscores, query, key, scale)
        else:
            weight = self.concat_score_weight
            dquery, dkey, dscale, _, dweight = ops.tanh_scores_backward(dscores, query, key, cache, inner=scale,
                                                                       weight=weight.value)
            weight.grad = _scalar_grad(xp, dweight, weight.dtype)
        if self.scale is not None:
            self.scale.grad = _scalar_grad(xp, dscale, self.scale.dtype)
        return dquery, dkey

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout, "seed": self.seed}


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: scores ``sum_d scale_d tanh(query_t + key_s)``; ``scale`` (D,) starts
    Glorot-uniform with ``use_scale`` (the default), as in Keras."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def _build_weights(self, dim):
        if dim is None:
            raise ValueError(f"{self._where()}: the query's feature size must be known to build the layer.")
        if self.use_scale:
            self.scale = self.add_weight((dim,), "glorot_uniform", name="scale")

    def _shapes(self, input_shape):
        shapes = super()._shapes(input_shape)
        query = shapes[0]
        if self.scale is not None and query[2] is not None and query[2] != self.scale.shape[0]:
            raise ValueError(f"{self._where()}: it was built for queries of {self.scale.shape[0]} features "
                             f"(scale {self.scale.shape}); received query {query}.")
        return shapes

    def _scores(self, query, key):
        return ops.tanh_scores(query, key, outer=None if self.scale is None else self.scale.value)

    def _scores_backward(self, dscores, query, key, cache):
        scale = None if self.scale is None else self.scale.value
        dquery, dkey, _, dscale, _ = ops.tanh_scores_backward(dscores, query, key, cache, outer=scale)
        if self.scale is not None:
            self.scale.grad = dscale.astype(self.scale.dtype, copy=False)
        return dquery, dkey

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config


