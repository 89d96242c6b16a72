"""What MultiHeadAttention and GroupedQueryAttention share: projections to heads, attention, an output projection.

Inputs query (B, T, Dq), value (B, S, Dv), key (B, S, Dk) (the key is the value when left out). Each is
projected as Keras's EinsumDense sublayers do: kernel (D, heads, width), bias (heads, width), giving query
heads (B, T, N, width) and key/value heads (B, S, G, width) with G dividing N (G = N for MultiHeadAttention,
the key/value heads of GroupQueryAttention otherwise: query head n reads key/value head n // (N / G), as Keras's
``ops.repeat`` along the head axis pairs them). The scaled dot products (B, N, T, S) go through a float32 softmax
where the mask allows (masked weights 0, as Keras's ``Softmax(mask)``), dropout (training only) drops weights,
and the heads' weighted values (B, T, N, width) are projected by the output kernel (N, width, *out) and bias
(out) to (B, T, *out).

A query head group shares one key/value head, so the products run as batched matmuls over (B, G) with the group's
query heads stacked along the rows: the repeated key and value heads are never materialized, and their gradients
come out summed over the group. The mask is the AND of ``attention_mask`` (B, T, S), the query's and value's (and
key's) masks of padded steps, and the causal mask. Weights and their paths are Keras's: ``query/kernel``,
``query/bias``, ``key/...``, ``value/...``, ``attention_output/...``, in that order. As Keras's build, the
build makes a ``Dropout(dropout, seed=seed)`` sublayer, ``_dropout_layer``: with ``dropout`` above 0 it holds
the SeedGenerator each training call draws the weights' mask from (on NumPy Keras's NumPy-backend values), and
its state is among the layer's ``variables``, after the value projection's weights as in Keras. ``backward`` takes the
output's gradient (or ``[d_output, d_scores]``) and returns ``[dquery, dvalue]`` or ``[dquery, dvalue, dkey]``.

``quantize(mode)`` (and ``Model.quantize``) quantizes the four projections as Keras quantizes its EinsumDense
sublayers ("int8", "int4", "float8"): each becomes an EinsumDense holding the projection's kernel and bias, whose
quantization, quantized product and gradients the calls then use; the layer's variables are theirs, in Keras's
order and paths (``query/kernel``, ``query/kernel_scale``, ...), and its own dtype policy stays a float one.
Quantized, its config records the projections' dtype policies as ``projection_dtypes`` ({projection: serialized
policy, or None for a float one}), and a layer made with it builds those projections quantized, so that a saved
model loads with its quantized variables. Only gpu_dl reads the entry: Keras 3.15's config of the layer records
no quantization (its file of such a model does not load in Keras either), and it refuses the entry.
"""
from __future__ import annotations

import math

import numpy

from ..backend import array_module
from ..ops import attention as ops
from ..ops.device_reduction import sum_axes
from . import build_shapes
from . import quantized
from .base import Layer, layer_path, scoped_path, unique_name
from .core import Dropout
from .einsum_dense import EinsumDense, axes_initializer
from .masks import drop_masks, set_node_masks
from .regularization import dropout_rate, seeded_keep_mask
from .symbolic import KerasTensor, Node, any_symbolic, flatten_tensors, is_symbolic


def positive(value, what, where, optional=False):
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value <= 0:
        raise ValueError(f"{where}: received an invalid value for argument `{what}`, expected a positive integer. "
                         f"Received: {what}={value!r}")
    return int(value)


def _keras_call_arguments(query, value=None, key=None, query_mask=None, value_mask=None, key_mask=None,
                          attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False,
                          mask=None):
    """The arguments of a call in Keras 3's order (MultiHeadAttention's and GroupQueryAttention's call), so that
    positional calls mean the same in both."""
    return dict(query=query, value=value, key=key, query_mask=query_mask, value_mask=value_mask, key_mask=key_mask,
                attention_mask=attention_mask, return_attention_scores=return_attention_scores, training=training,
                use_causal_mask=use_causal_mask, mask=mask)


def _grouped(a, groups):
    """(B, N, T, X) as (B, G, N/G * T, X): each group's query heads stacked along the rows."""
    return a.reshape(a.shape[0], groups, -1, a.shape[-1])


def _policy_config(policy):
    """The quantization config that gives a projection ``policy`` (an int4 one's block size)."""
    from .. import quantizers
    return quantizers.Int4QuantizationConfig(block_size=policy.block_size) if policy.quantization_mode == "int4" \
        else None


class HeadAttention(Layer):
    """The shared machinery (see the module docstring). A subclass builds its projections in ``build`` with
    ``_dense`` and sets ``_query_heads`` (N) and ``_score_scale`` (1/sqrt of the query heads' width)."""

    # Keras's MultiHeadAttention takes the masks off its inputs in its call (masks.drop_masks); its
    # GroupedQueryAttention leaves them.
    drops_input_masks = False
    takes_input_list = True
    supports_masking = True
    call_first_argument = "query"
    # The keyword arguments of its calls a saved functional model records (Keras's names).
    call_keywords = ("key", "attention_mask", "return_attention_scores", "use_causal_mask")
    positional_inputs = 3         # Keras records [query, value] (or [query, value, key]) as separate arguments
    input_names = ("query", "value", "key")
    # (projection, attribute of Keras's sublayer): the h5 groups of the weights file.
    sublayer_groups = (("query", "query_dense"), ("key", "key_dense"), ("value", "value_dense"),
                       ("attention_output", "output_dense"))
    empty_groups = (("_dropout_layer", "dropout"), ("_softmax", "softmax"))
    quantization_modes = ("int8", "int4", "float8")
    # Model.quantize reaches it though it holds a Dropout sublayer: Keras quantizes its projection sublayers.
    quantizes_sublayers = True

    def __init__(self, dropout=0.0, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 seed=None, projection_dtypes=None, **kwargs):
        super().__init__(**kwargs)
        if projection_dtypes is not None and not isinstance(projection_dtypes, dict):
            raise ValueError(f"{self._where()}: `projection_dtypes` must be a dict of projection name to dtype "
                             f"policy (or None), got {projection_dtypes!r:.200}.")
        self._projection_dtypes = projection_dtypes
        self.dropout = dropout_rate(dropout, f"{self._where()}: dropout")
        self.use_bias = bool(use_bias)
        self.seed = seed
        self.set_weight_arguments(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                                  kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self._projections = {}

    def _where(self):
        return f"{type(self).__name__} layer '{self.name}'"

    # ------------------------------------------------------------------ shapes and weights
    def _shapes(self, shapes):
        """``(query, value, key)`` shapes, checked (rank 3, one batch size, value and key of one length, and the
        feature sizes the built kernels take)."""
        shapes = [tuple(s) for s in shapes]
        if any(len(s) != 3 for s in shapes):
            raise ValueError(f"{self._where()}: query, value and key must have rank 3 (batch, steps, features); "
                             f"received shapes {shapes}. Other ranks (attention_axes) are not supported by gpu_dl.")
        query, value = shapes[0], shapes[1]
        key = shapes[2] if len(shapes) == 3 else value
        if len({s[0] for s in shapes} - {None}) > 1:
            raise ValueError(f"{self._where()}: the inputs have different batch sizes: {shapes}.")
        if None not in (value[1], key[1]) and value[1] != key[1]:
            raise ValueError(f"{self._where()}: all dimensions of `value` and `key`, except the last one, must be "
                             f"equal. Received: value_shape={value} and key_shape={key}")
        for name, shape in (("query", query), ("key", key), ("value", value)):
            kernel = self._projections.get(name)
            if kernel is not None and shape[2] is not None and shape[2] != kernel[0].shape[0]:
                raise ValueError(f"{self._where()}: it was built for a {name} of {kernel[0].shape[0]} features "
                                 f"(kernel {kernel[0].shape}); received {name} of shape {shape}.")
        return query, value, key

    def _known_features(self, query, value, key):
        if None in (query[2], value[2], key[2]):
            raise ValueError(f"{self._where()}: the feature sizes of query, value and key must be known to build "
                             f"it; received {query}, {value}, {key}.")

    def _finish_build(self, input_shape):
        self.built = True
        self.input_spec = [(None,) + tuple(s[1:]) for s in input_shape]
        # the projections' quantization a saved config records
        from ..dtype_policies import get as get_policy
        wanted = self.__dict__.pop("_projection_dtypes", None) or {}
        for name in self._projections:
            own = wanted.get(name)
            if own is not None:
                own = get_policy(own, f"{self._where()}: projection_dtypes")
                self.quantize_projections(own.quantization_mode, config=_policy_config(own),
                                          chosen=lambda dense, name=name: dense.name == name)

    def _dense(self, name, kernel_shape, input_axes, output_axes, bias_shape):
        """One of Keras's EinsumDense sublayers: its kernel, and its bias (None without ``use_bias``)."""
        kernel = self.add_weight(kernel_shape, axes_initializer(self.kernel_initializer, input_axes, output_axes),
                                 name="kernel", regularizer=self.kernel_regularizer,
                                 constraint=self.kernel_constraint)
        kernel.path = scoped_path(self, f"{name}/kernel")      # under its sublayer's name, as in Keras
        bias = None
        if self.use_bias:
            bias = self.add_weight(bias_shape, axes_initializer(self.bias_initializer, None, None),
                                   name="bias", regularizer=self.bias_regularizer,
                                   constraint=self.bias_constraint)
            bias.path = scoped_path(self, f"{name}/bias")
        self._projections[name] = (kernel, bias)

    # ------------------------------------------------------------------ quantization
    def _projection_layer(self, name):
        """Keras's EinsumDense sublayer of projection ``name``, holding this layer's kernel and bias, so that its
        quantization, quantized products and their gradients are EinsumDense's. Made when the layer is quantized;
        it is no sublayer of this one (its weights are listed among this layer's)."""
        made = self.__dict__.setdefault("_quantized_projections", {})
        if name in made:
            return made[name]
        kernel, bias = self._projections[name]
        if name == "attention_output":
            outputs = "efgh"[:len(kernel.shape) - 2]
            equation, input_shape = f"abcd,cd{outputs}->ab{outputs}", (None, None) + tuple(kernel.shape[:2])
            output_shape = (None,) + tuple(kernel.shape[2:])
        else:
            outputs = "de"
            equation, input_shape = "abc,cde->abde", (None, None, kernel.shape[0])
            output_shape = (None,) + tuple(kernel.shape[1:])
        dense = EinsumDense(equation, output_shape, bias_axes=outputs if bias is not None else None, name=name,
                            dtype=self.dtype_policy)
        dense.__dict__["_parent_path"] = layer_path(self)
        plan = dense._plan(input_shape)
        dense._scale_layout = quantized.EinsumScaleLayout(plan.input_spec, plan.weight_spec, plan.output_spec)
        dense.kernel, dense.bias = kernel, bias
        dense._weights[:] = [v for v in (kernel, bias) if v is not None]
        dense.built = True
        made[name] = dense
        return dense

    def _quantized_projection(self, name):
        """The quantized EinsumDense of projection ``name``, or None while the layer is not quantized."""
        dense = self.__dict__.get("_quantized_projections", {}).get(name)
        return dense if dense is not None and dense.dtype_policy.quantization_mode is not None else None

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's ``quantize`` of the layer: its query, key, value and output projections (Keras's EinsumDense
        sublayers) are quantized as EinsumDense layers are (``"int8"``, ``"int4"``, ``"float8"``); the layer itself
        keeps its float dtype policy. ``type_check`` is taken for Keras's signature: the projections are
        EinsumDense layers whatever the layer's class."""
        self.quantize_projections(mode, config)

    def quantize_projections(self, mode=None, config=None, chosen=None):
        """``quantize`` of the projections ``chosen`` picks (a callable taking each projection's EinsumDense,
        named ``query``, ``key``, ``value``, ``attention_output`` as Keras's sublayers are; all of them where
        None): ``Model.quantize`` applies its ``filters`` to them so, as Keras applies them to its sublayers. The
        others keep their float kernels."""
        config = quantized.resolve_config(mode, config, self._where())
        quantized.check_layer_mode(self, config.mode)       # AWQ: a NotImplementedError, skipped with a warning
        if not self.built:
            raise ValueError(f"Cannot quantize a layer that isn't yet built. Layer '{self.name}' (of type "
                             f"'{type(self).__name__}') is not built yet.")
        denses = [self._projection_layer(name) for name in self._projections]
        picked = [chosen is None or bool(chosen(dense)) for dense in denses]
        for dense, pick in zip(denses, picked):
            if pick:
                quantized.check_quantize_args(dense, config.mode)
        for name, dense, pick in zip(self._projections, denses, picked):
            if pick:
                dense.quantize(config.mode, type_check=False, config=config)
                self._projections[name] = (dense._kernel, dense.bias)
        # Keras's order: each projection's variables as its EinsumDense lists them after quantization
        self._weights[:] = [v for dense in denses for v in dense._weights]

    def get_config(self):
        """The layer's config, with ``projection_dtypes`` where projections are quantized."""
        from ..dtype_policies import serialize
        config = super().get_config()
        policies = [getattr(self._quantized_projection(name), "dtype_policy", None) for name in self._projections]
        if all(p is None for p in policies):
            return config
        return {**config, "projection_dtypes": {name: None if p is None else serialize(p)
                                                for name, p in zip(self._projections, policies)}}

    def _projection_variables(self, name):
        dense = self._quantized_projection(name)
        if dense is not None:
            return list(dense._weights)
        return [v for v in self._projections[name] if v is not None]

    def _build_attention(self):
        """What Keras's build makes between the value and output projections: a Softmax sublayer (only its
        automatic name is taken here) and the Dropout sublayer whose seed generator the weights' dropout draws
        from."""
        unique_name("softmax")
        self._dropout_layer = Dropout(self.dropout, seed=self.seed, dtype=self.dtype_policy)
        for generator in self._dropout_layer._seed_generators:
            # made in this layer's scope
            generator.state.path = scoped_path(self, f"{generator.name}/seed_generator_state")

    @property
    def variables(self):
        """Keras's order: the query, key and value projections' weights, the dropout's seed state, then the output
        projection's weights."""
        dropout = self.__dict__.get("_dropout_layer")
        if dropout is None or "attention_output" not in self._projections:
            return super().variables
        states = dropout.variables
        output = self._projection_variables("attention_output")
        rest = [v for v in super().variables if all(v is not s for s in states + output)]
        return rest + states + output

    def ensure_built(self, input_shape):
        if not self.built:
            # The batch size of a build for arrays (or inside a traced call), which Keras keeps in the build config
            input_shape = build_shapes.with_stand_ins([tuple(s) for s in input_shape])
            self.__dict__["_build_batch"] = input_shape[0][0]
        self.build(input_shape)

    def check_input_shape(self, shape):
        self._shapes(shape)

    def node_output_shapes(self, input_shape, options):
        """The shapes of a call's outputs: the output's, and the weights' (B, N, T, S) with
        ``return_attention_scores``."""
        query, value, _ = self._shapes(input_shape)
        shapes = [self.compute_output_shape(input_shape)]
        if options.get("return_attention_scores"):
            shapes.append((query[0], self._query_heads, query[1], value[1]))
        return shapes

    def weight_groups(self, path):
        """The groups of Keras's weights file: the layer's own (empty), its projections' and two empty ones."""
        if not self.built:
            return [(path, self.name, [])]
        groups = [(path, self.name, [])] + [(f"{path}/{group}", name, []) for group, name in self.empty_groups]
        for name, group in self.sublayer_groups:
            groups.append((f"{path}/{group}", name, self._projection_variables(name)))
        return groups

    def keras_build_config(self):
        names = ("query_shape", "value_shape", "key_shape")
        return {"shapes_dict": {n: list(s) for n, s in zip(names, self.input_spec)}}

    def build_from_config(self, config):
        """As Keras's: a ``shapes_dict`` of ``query_shape``, ``value_shape`` (and ``key_shape``) builds the layer
        for those inputs; an ``input_shape`` (a list of them) too."""
        shapes = config.get("shapes_dict") if isinstance(config, dict) else None
        if isinstance(shapes, dict) and not self.built:
            names = [n for n in ("query_shape", "value_shape", "key_shape") if shapes.get(n) is not None]
            if names[:2] != ["query_shape", "value_shape"]:
                raise ValueError(f"{self._where()}: build_from_config() needs `query_shape` and `value_shape` in "
                                 f"its shapes_dict, got {sorted(shapes)}.")
            self.ensure_built([tuple(shapes[n]) for n in names])
            return
        super().build_from_config(config)

    # ------------------------------------------------------------------ calls
    def __call__(self, *args, **kwargs):
        """``layer(query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
        return_attention_scores=False, training=None, use_causal_mask=False)``, Keras 3's call. On symbolic
        tensors the node remembers which inputs came positionally and which options were given, since Keras records
        a call's arguments as they were given (``mha(q, v, k)`` as three ``args``, ``mha(q, v, key=k)`` with the key
        among the ``kwargs``, ``use_causal_mask=False`` when it was written out)."""
        try:
            arguments = _keras_call_arguments(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{self._where()}: {e}".replace("_keras_call_arguments()", "call()")) from None
        return self._call(**arguments, positional=len(args), given=frozenset(kwargs))
    __call__._first_by_keyword = True       # binds the query by keyword itself, and counts what came positionally

    def _call(self, query, value, key, attention_mask, return_attention_scores, training, use_causal_mask,
              query_mask, value_mask, key_mask, mask, positional=2, given=None):
        """The call: on arrays, or on symbolic tensors (a functional model). ``positional`` is how many of the
        inputs (query, value, key) the caller gave positionally, ``given`` the names of the keyword arguments it
        gave (None: unknown, the options that differ from their defaults count as given); a list of inputs counts
        as query and value."""
        where = self._where()
        if value is None and isinstance(query, (list, tuple)):
            # A functional model's call: the node keeps [query, value(, key)] and their masks as lists.
            if not 2 <= len(query) <= 3:
                raise ValueError(f"{where}: expected [query, value] or [query, value, key], got {len(query)} inputs.")
            query, value, key = (list(query) + [None])[:3]
            positional, given = 2, None
            if mask is not None:
                query_mask, value_mask, key_mask = (list(mask) + [None, None])[:3]
        elif mask is not None:
            raise TypeError(f"{where}: give the masks as query_mask, value_mask and key_mask.")
        if value is None:
            raise TypeError(f"{where}: missing the `value` argument: call it as layer(query, value).")
        for what, flag in (("return_attention_scores", return_attention_scores), ("use_causal_mask", use_causal_mask)):
            if not isinstance(flag, (bool, numpy.bool_)):
                raise TypeError(f"{where}: `{what}` must be True or False, got {flag!r}.")
        inputs = [query, value] + ([key] if key is not None else [])
        if any_symbolic(inputs, attention_mask):
            return self._symbolic_call(inputs, attention_mask, bool(return_attention_scores), training,
                                       bool(use_causal_mask), (query_mask, value_mask, key_mask),
                                       min(positional, len(inputs)), given)
        xs = [self._as_input(v) for v in inputs]
        shapes = [tuple(v.shape) for v in xs]
        self.ensure_built(shapes)
        self.check_input_shape(shapes)
        given, dtype = xs[0].dtype, self._call_dtype()
        xs = [v if v.dtype == dtype else v.astype(dtype) for v in xs]
        full_mask = self._attention_mask(xs, attention_mask, (query_mask, value_mask, key_mask), use_causal_mask)
        out, scores = self._policy_call(given, self.call, xs, full_mask, training=bool(training))
        self._activity_output = out if self.activity_regularizer is not None else None
        return [out, scores] if return_attention_scores else out

    def _symbolic_call(self, inputs, attention_mask, return_attention_scores, training, use_causal_mask, masks,
                       positional, given):
        where = self._where()
        if any(m is not None for m in masks):
            raise ValueError(f"{where}: in a functional model masks pass along the edges by themselves; "
                             "query_mask, value_mask and key_mask are not taken in a call on symbolic tensors.")
        if not all(is_symbolic(t) for t in inputs) or (attention_mask is not None and not is_symbolic(attention_mask)):
            raise TypeError(f"{where} was called on a mix of symbolic tensors and other values.")
        shapes = [t.shape for t in inputs]
        self.ensure_built(shapes)
        self.check_input_shape(shapes)
        options = {"attention_mask": (attention_mask, attention_mask is not None),
                   "return_attention_scores": (return_attention_scores, return_attention_scores),
                   "training": (None if training is None else bool(training), training is not None),
                   "use_causal_mask": (use_causal_mask, use_causal_mask)}
        # The options the call gave, as Keras records them (their defaults too, where written out)
        kwargs = {name: value for name, (value, differs) in options.items()
                  if (name in given if given is not None else differs)}
        outputs = [KerasTensor(s, dtype=self.compute_dtype) for s in self.node_output_shapes(shapes, kwargs)]
        node = Node(self, args=(inputs,), kwargs=kwargs, outputs=outputs)
        node.keras_positional = positional
        # Keras's order of the call's tensors (layer.input, the order of the model's layers): the positional
        # ones, then those given by keyword, by sorted name
        keras_args, keras_kwargs = self.keras_call_arguments(node)
        node.input_tensors = flatten_tensors(keras_args) + flatten_tensors([keras_kwargs[k]
                                                                            for k in sorted(keras_kwargs)])
        set_node_masks(node)
        if self.drops_input_masks:
            drop_masks(inputs)
        return outputs if return_attention_scores else outputs[0]

    def keras_call_arguments(self, node):
        """``(args, kwargs)`` of ``node`` as Keras records a call: the inputs given positionally as ``args``, the
        others (by their names) and the options as ``kwargs``."""
        inputs = list(node.args[0])
        positional = getattr(node, "keras_positional", 2)
        kwargs = dict(zip(self.input_names[positional:], inputs[positional:]))
        kwargs.update(node.kwargs)
        return inputs[:positional], kwargs

    def _attention_mask(self, xs, attention_mask, masks, use_causal_mask):
        """The (B or 1, T, S) booleans of which key steps each query step sees, or None for all."""
        xp = array_module(xs[0])
        t, s = xs[0].shape[1], xs[1].shape[1]
        full = None

        def both(a, b):
            return b if a is None else a & b
        for i, m in enumerate(masks):
            if m is None or (i == 2 and len(xs) < 3):
                continue
            m = xp.asarray(m).astype(bool, copy=False)
            if tuple(m.shape) != tuple(xs[i].shape[:2]):
                raise ValueError(f"{self._where()}: a mask of shape {tuple(m.shape)} does not fit an input of shape "
                                 f"{tuple(xs[i].shape)}; masks are (batch, steps).")
            full = both(full, m[:, :, None] if i == 0 else m[:, None, :])
        if use_causal_mask:
            full = both(full, ops.causal_mask(xp, t, s))
        if attention_mask is not None:
            given = xp.asarray(attention_mask)
            given = given if given.dtype == bool else given > 0.5 if given.dtype.kind == "f" else given != 0
            if given.ndim == 2:
                given = given[None]
            if given.ndim != 3 or given.shape[1:] != (t, s) or given.shape[0] not in (1, xs[0].shape[0]):
                raise ValueError(f"{self._where()}: attention_mask must have shape (batch, {t}, {s}), got "
                                 f"{tuple(given.shape)}.")
            full = both(full, given)
        return full

    def _project(self, name, x, training=False):
        dense = self._quantized_projection(name)
        if dense is not None:
            return dense.call(x, training=training)
        kernel, bias = self._projections[name]
        w = kernel.value
        y = x @ w.reshape(w.shape[0], -1)
        if bias is not None:
            y = y + bias.value.reshape(-1)
        return y.reshape(x.shape[:2] + w.shape[1:])

    def call(self, xs, attention_mask=None, training=False):
        """``(output, weights)``: the output (B, T, *out) and the softmax's weights (B, N, T, S)."""
        query, value = xs[0], xs[1]
        key = xs[2] if len(xs) == 3 else value
        # Heads first: (B, heads, steps, width), so that the products are batched matmuls.
        qh = self._project("query", query, training).transpose(0, 2, 1, 3)
        kh = self._project("key", key, training).transpose(0, 2, 1, 3)
        vh = self._project("value", value, training).transpose(0, 2, 1, 3)
        groups = kh.shape[1]
        b, n, t, s = qh.shape[0], qh.shape[1], qh.shape[2], kh.shape[2]
        inverse = qh.dtype.type(self._score_scale)
        scaled = _grouped(qh * inverse, groups)
        scores = ops.dot_scores(scaled, kh).reshape(b, n, t, s)
        mask = None if attention_mask is None else attention_mask[:, None]
        p = ops.masked_softmax(scores, mask, mode="replace")
        keep = None
        if training and self.dropout > 0:
            keep = _grouped(seeded_keep_mask(self._dropout_layer.seed_generator, p, p.shape, self.dropout), groups)
        heads, dropped = ops.weighted_values(_grouped(p, groups), vh, keep)
        heads = heads.reshape(b, n, t, -1).transpose(0, 2, 1, 3)      # (B, T, N, width)
        flat = heads.reshape(b, t, -1)
        dense = self._quantized_projection("attention_output")
        if dense is not None:
            out = dense.call(heads, training=training)
        else:
            kernel, bias = self._projections["attention_output"]
            w = kernel.value
            out = flat @ w.reshape(flat.shape[-1], -1)
            if bias is not None:
                out = out + bias.value.reshape(-1)
            out = out.reshape(out.shape[:2] + w.shape[2:])
        self._saved = (xs, scaled, kh, vh, inverse, p, dropped, keep, flat) if training else None
        return out, p

    def backward(self, dy):
        xs, scaled, kh, vh, inverse, p, dropped, keep, flat = self.saved()
        dout, dscores = (dy[0], dy[1]) if isinstance(dy, (list, tuple)) else (dy, None)
        xp = array_module(scaled)
        groups, (b, n, t, _) = kh.shape[1], p.shape
        dense = self._quantized_projection("attention_output")
        if dense is not None:
            if dout is None:
                dout = xp.zeros(flat.shape[:2] + tuple(dense.partial_output_shape[1:]), dtype=flat.dtype)
            dheads = dense.backward(dout).transpose(0, 2, 1, 3)
        else:
            kernel, bias = self._projections["attention_output"]
            w = kernel.value.reshape(flat.shape[-1], -1)
            if dout is None:
                dout = xp.zeros(flat.shape[:2] + kernel.shape[2:], dtype=flat.dtype)
            g = dout.reshape(dout.shape[0], dout.shape[1], -1)        # (B, T, O)
            kernel.grad = (flat.reshape(-1, flat.shape[-1]).T @ g.reshape(-1, g.shape[-1])).reshape(kernel.shape)
            if bias is not None:
                bias.grad = sum_axes(g, (0, 1)).reshape(bias.shape)
            dheads = (g @ w.T).reshape(b, t, n, -1).transpose(0, 2, 1, 3)
        # The returned scores are the weights before dropout (Keras's): their gradient joins the softmax's.
        dp, dvh = ops.weighted_values_backward(_grouped(dheads, groups), dropped, vh, keep)
        dp = dp.reshape(p.shape)
        if dscores is not None:
            dp = dp + dscores
        ds = ops.softmax_backward(p, dp)
        dqh, dkh, _ = ops.dot_scores_backward(_grouped(ds, groups), scaled, kh)
        dqh = dqh.reshape(b, n, t, -1) * inverse
        grads = [self._project_backward(name, x, d.transpose(0, 2, 1, 3))
                 for name, x, d in (("query", xs[0], dqh), ("value", xs[1], dvh))]
        key_grad = self._project_backward("key", xs[2] if len(xs) == 3 else xs[1], dkh.transpose(0, 2, 1, 3))
        return grads + [key_grad] if len(xs) == 3 else [grads[0], grads[1] + key_grad]

    def _project_backward(self, name, x, dy):
        """The input's gradient of a projection; its kernel's and bias's gradients into their ``grad``."""
        dense = self._quantized_projection(name)
        if dense is not None:
            return dense.backward(dy)
        kernel, bias = self._projections[name]
        g = dy.reshape(dy.shape[0] * dy.shape[1], -1)
        kernel.grad = (x.reshape(-1, x.shape[-1]).T @ g).reshape(kernel.shape)
        if bias is not None:
            bias.grad = sum_axes(g, 0).reshape(bias.shape)
        return (g @ kernel.value.reshape(kernel.shape[0], -1).T).reshape(x.shape)

    def compute_mask(self, x, mask=None):
        """The query's mask, as Keras passes it on."""
        return mask[0] if isinstance(mask, (list, tuple)) and mask else None



def inverse_sqrt(width):
    return 1.0 / math.sqrt(float(width))
