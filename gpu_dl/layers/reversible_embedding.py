"""``ReversibleEmbedding``: an ``Embedding`` that also projects back onto the vocabulary, as in Keras 3.15.

``layer(ids)`` looks ids up as ``Embedding`` does (the same range checks, the same mask with ``mask_zero``);
``layer(hidden, reverse=True)`` maps hidden states (..., output_dim) to logits (..., input_dim) by a matrix
product with the embeddings transposed (``tie_weights=True``, the default: the input and output embeddings
are one table) or with a separate ``reverse_embeddings`` weight of shape (output_dim, input_dim). With
``logit_soft_cap`` the logits are ``tanh(logits / cap) * cap``. The product is one GEMM through the array
module (cuBLAS on the GPU).

Both directions train: the reverse call's backward gives the gradient of the hidden states and of the weight
it read. A model that calls one tied layer in both directions keeps each call's backward state apart and sums
the table's gradients over the calls (models/nested.py), so the table receives the gradients of both uses.
Each backward sets the gradient of every weight: the one its call did not read gets None.

``quantize("int8")`` and ``quantize("int4")`` (or an int8/int4 ``dtype`` policy) quantize the table as ``Embedding``
does and the separate ``reverse_embeddings`` per vocabulary column (Keras's variables: see the class docstring). The
quantized reverse call computes as Keras's: in the compute dtype (``reverse_dtype`` is not used), the hidden states
quantized per row where the layer has an inputs quantizer (int8's default; int4's config has none by default, and
``dtype="int4..."`` without a config takes Keras's fallback, one per row), the product exact in integers against
a table with one scale per id or column, or taken with the dequantized table where int4 keeps groups. The
quantized tables are frozen: the hidden states get their gradient through the dequantized table.

LoRA (``lora_rank``, ``lora_alpha``, ``enable_lora``) as Embedding's (``layers/lora.py``): it adapts the table,
which a tied reverse call reads merged too; a separate ``reverse_embeddings`` is not adapted, as in Keras.
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from ..backend import array_module
from ..ops.dense import dense_backward, dense_forward
from . import quantized
from .embedding import Embedding
from .symbolic import KerasTensor, MaskSpec, Node, any_symbolic, is_symbolic


class _ReverseState:
    """What a training call with ``reverse=True`` keeps for its backward."""

    __slots__ = ("x", "kernel", "capped")

    def __init__(self, x, kernel, capped):
        self.x, self.kernel, self.capped = x, kernel, capped


def _flag(value, argument, where):
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{where}: `{argument}` must be True or False, got {value!r:.100}.")
    return bool(value)


class ReversibleEmbedding(Embedding):
    """An embedding layer that can also project from ``output_dim`` back to ``input_dim`` (``reverse=True``).

    Weights, in Keras's order: ``embeddings`` (input_dim, output_dim), then with ``tie_weights=False``
    ``reverse_embeddings`` (output_dim, input_dim), made with ``embeddings_initializer`` (and no regularizer
    or constraint, as in Keras). ``reverse_dtype`` ('float32' or 'float64'; None: the layer's dtype) is the
    dtype the reverse product is computed and returned in.

    Quantized (``quantize``, or an int8/int4 ``dtype`` policy), its variables are Keras's, all non-trainable:
    int8 ``embeddings`` (input_dim, output_dim) and ``embeddings_scale`` (input_dim,), then untied
    ``reverse_embeddings`` int8 (output_dim, input_dim) and ``reverse_embeddings_scale`` (input_dim,); int4 packs
    ``embeddings`` along output_dim (input_dim, ceil(output_dim / 2)) with ``embeddings_scale`` per id or
    (input_dim, groups), ``embeddings_zero`` and ``g_idx`` in groups, then untied ``reverse_embeddings`` packed
    along output_dim (ceil(output_dim / 2), input_dim) with ``reverse_embeddings_scale`` per column or
    (groups, input_dim) and, in groups, a float ``reverse_embeddings_zero``.
    """

    # The keyword argument of its calls a saved functional model records (``{"reverse": true}``).
    call_keywords = ("reverse",)
    # A mask reaching a reverse call (the padded steps of the hidden states) ends there, as in Keras.
    drops_mask = True
    # LoRA on a quantized table is Embedding's lookup only: the quantized reverse call has no low-rank path here
    lora_quantization_modes = ()

    def __init__(self, input_dim, output_dim, tie_weights=True, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False, reverse_dtype=None,
                 logit_soft_cap=None, **kwargs):
        super().__init__(input_dim, output_dim, embeddings_initializer=embeddings_initializer,
                         embeddings_regularizer=embeddings_regularizer, embeddings_constraint=embeddings_constraint,
                         mask_zero=mask_zero, **kwargs)
        where = self._where()
        self.tie_weights = _flag(tie_weights, "tie_weights", where)
        self.reverse_dtype = None if reverse_dtype is None else \
            backend.standardize_dtype(reverse_dtype, f"{where}: reverse_dtype")
        if logit_soft_cap is not None:
            if isinstance(logit_soft_cap, bool) or not isinstance(logit_soft_cap, numbers.Real) \
                    or not math.isfinite(logit_soft_cap) or logit_soft_cap == 0:
                raise ValueError(f"{where}: `logit_soft_cap` must be None or a finite non-zero number (logits "
                                 f"become tanh(logits / cap) * cap). Received: logit_soft_cap={logit_soft_cap!r}")
            logit_soft_cap = logit_soft_cap.item() if hasattr(logit_soft_cap, "item") else logit_soft_cap
        self.logit_soft_cap = logit_soft_cap
        self.reverse_embeddings = self.reverse_embeddings_scale = self.reverse_embeddings_zero = None
        self.inputs_quantizer = None
        self._reverse_call = False      # whether the last call projected back (its output then has no mask)

    def _where(self):
        return f"ReversibleEmbedding layer '{self.name}'"

    def build(self, input_shape=None):
        # Keras's `weights=[...]` holds every weight, the reverse one included: set once all exist.
        initial, self._initial_weights = self._initial_weights, None
        super().build(input_shape)        # quantized, _int8_build or _int4_build makes the reverse variables
        if not self.tie_weights and self.dtype_policy.quantization_mode is None:
            self.reverse_embeddings = self.add_weight((self.output_dim, self.input_dim), self.embeddings_initializer,
                                                      name="reverse_embeddings")
        if initial is not None:
            self.set_weights(initial)

    # ------------------------------------------------------------------ quantization
    def _quantized_build(self, made):
        # Keras's reverse call quantizes the hidden states per row unless the config says otherwise
        from ..quantizers import AbsMaxQuantizer, QuantizationConfig
        self.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(self.quantization_config,
                                                                                   AbsMaxQuantizer(axis=-1))
        return made

    def _int8_build(self, shape):
        made = self._quantized_build(super()._int8_build(shape))
        if self.tie_weights:
            return made
        self.reverse_embeddings = self.add_weight((self.output_dim, self.input_dim), "zeros", dtype="int8",
                                                  trainable=False, name="reverse_embeddings")
        self.reverse_embeddings_scale = self.add_weight((self.input_dim,), "ones", trainable=False,
                                                        name="reverse_embeddings_scale")
        return made + (self.reverse_embeddings, self.reverse_embeddings_scale)

    def _int4_build(self, shape):
        made = self._quantized_build(super()._int4_build(shape))
        if self.tie_weights:
            return made
        block_size = quantized.int4_block_size(self)
        self.reverse_embeddings = self.add_weight(((self.output_dim + 1) // 2, self.input_dim), "zeros",
                                                  dtype="int8", trainable=False, name="reverse_embeddings")
        scale_shape = (self.input_dim,) if block_size is None else (-(-self.output_dim // block_size), self.input_dim)
        self.reverse_embeddings_scale = self.add_weight(scale_shape, "ones", trainable=False,
                                                        name="reverse_embeddings_scale")
        if block_size is None:
            return made + (self.reverse_embeddings, self.reverse_embeddings_scale)
        # a float variable in Keras, unlike the table's int8 zero points
        self.reverse_embeddings_zero = self.add_weight(scale_shape, "zeros", trainable=False,
                                                       name="reverse_embeddings_zero")
        return made + (self.reverse_embeddings, self.reverse_embeddings_scale, self.reverse_embeddings_zero)

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's ``quantize``: ``"int8"`` quantizes the table per id as ``Embedding`` does and an untied
        ``reverse_embeddings`` per vocabulary column (``AbsMaxQuantizer(axis=0)``; ``config``'s weight quantizer
        where it gives one, for both); ``"int4"`` packs both along output_dim, per id / column or in groups of
        output_dim (the config's block size, 128 by default). The policy becomes ``"int8_from_<its policy>"`` or
        ``"int4/<block size or -1>_from_<its policy>"``."""
        from ..dtype_policies import QuantizedDTypePolicy
        from ..quantizers import AbsMaxQuantizer, QuantizationConfig, pack_int4
        config = quantized.checked_request(self, ReversibleEmbedding, mode, config, type_check)
        quantized.check_layer_mode(self, config.mode)
        self.check_quantize_lora(config.mode)
        self.quantization_config = config
        floats = [self.embeddings] + ([] if self.tie_weights else [self.reverse_embeddings])
        shape = (self.input_dim, self.output_dim)
        arrays = []
        if config.mode == "int8":
            for weight, axis in zip(floats, (-1, 0)):
                arrays += QuantizationConfig.weight_quantizer_or_default(config, AbsMaxQuantizer(axis=axis))(
                    weight.value, to_numpy=True)
            policy, build = QuantizedDTypePolicy("int8", self.dtype_policy.name), lambda: self._int8_build(shape)
        else:
            block_size = quantized.int4_block_size(self)
            for weight, axis in zip(floats, (-1, 0)):
                values, scales = quantized.int4_quantized(weight.value, config, block_size, axis)
                arrays += [pack_int4(values, axis=axis)[0]] + scales
                if axis == -1 and block_size is not None:
                    arrays.append(None)      # g_idx keeps the groups its build gave it
            policy, build = quantized.int4_policy(self, block_size), lambda: self._int4_build(shape)
        quantized.replace_weights(self, floats, policy, build, arrays)

    def _quantized_logits(self, x, training):
        """Keras's quantized reverse call on hidden states ``x`` (in the compute dtype): the logits, and for a
        training call the dequantized (output_dim, input_dim) table their gradient goes through."""
        from ..quantizers import unpack_int4
        dtype = self.compute_dtype
        tie = self.tie_weights
        values = (self.embeddings if tie else self.reverse_embeddings).value
        scale = (self.embeddings_scale if tie else self.reverse_embeddings_scale).value
        zero = getattr(self, "embeddings_zero", None) if tie else self.reverse_embeddings_zero
        if self.dtype_policy.quantization_mode == "int4":
            # packed along output_dim: the table's last axis, the untied projection's first
            values = unpack_int4(values, self.output_dim, axis=-1 if tie else 0)
        if tie:
            values = values.T
        if zero is None:
            # one scale per vocabulary column: the product exact in integers, as Keras's
            logits = quantized.int8_forward(x, values, scale, self.inputs_quantizer, dtype)
            return logits, (quantized.dequantized(values, scale, dtype) if training else None)
        xp = array_module(values)
        groups = self.g_idx.value.astype(numpy.int32)
        zero = zero.value
        if tie:
            scale, zero = scale.T, zero.T       # (groups, input_dim), as the projection's rows are grouped
        kernel = (values.astype(dtype) - xp.take(zero, groups, axis=0).astype(scale.dtype)) * \
            xp.take(scale, groups, axis=0)
        kernel = kernel.astype(dtype, copy=False)
        if self.inputs_quantizer is None:
            return dense_forward(x, kernel), kernel
        rows, rows_scale = self.inputs_quantizer(x, axis=-1)
        return dense_forward(rows.astype(dtype), kernel) / rows_scale.astype(dtype), kernel

    # ------------------------------------------------------------------ shapes
    def reads_ids(self, call_kwargs):
        # A reverse call takes hidden states, not ids: a model hands them on unchecked.
        return not call_kwargs.get("reverse", False)

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return tuple(input_shape[:-1]) + (self.input_dim,)
        return tuple(input_shape) + (self.output_dim,)

    def node_output_shapes(self, input_shape, options):
        """The shape of one call's output: a reverse call's depends on its option."""
        return [self.compute_output_shape(input_shape, reverse=bool(options.get("reverse")))]

    def compute_mask(self, x, mask=None):
        if self._reverse_call:
            return None
        if self.mask_zero and is_symbolic(x):
            # Keras's layer attaches the mask in its call and records no operation for it in the graph (its
            # summary lists none): the mask of the ids is known, not recorded
            return MaskSpec(tuple(x.shape))
        return super().compute_mask(x, mask)

    def _check_hidden_shape(self, shape):
        if len(shape) < 1 or (shape[-1] is not None and shape[-1] != self.output_dim):
            raise ValueError(f"{self._where()}: a call with reverse=True takes hidden states whose last axis is "
                             f"output_dim={self.output_dim}, got shape {tuple(shape)}.")

    # ------------------------------------------------------------------ calls
    def __call__(self, x, training=None, mask=None, initial_state=None, reverse=False):
        reverse = _flag(reverse, "reverse", self._where())
        if not reverse:
            self._reverse_call = False      # what its compute_mask reads, in this call already
            y = super().__call__(x, training=training, mask=mask, initial_state=initial_state)
            self._reverse_call = False
            return y
        if initial_state is not None:
            raise TypeError(f"{self._where()} takes no initial_state.")
        if any_symbolic(x, mask):
            y = self._symbolic_reverse(x, training, mask)
        else:
            x = self._as_input(x)
            unbuilt = self.assert_input_spec(x)
            self.ensure_built(x.shape)
            self.assert_input_spec(x, unbuilt)
            self._check_hidden_shape(x.shape)
            y = self.reverse_call(x, training=bool(training))
            self._activity_output = y if self.activity_regularizer is not None else None
        self._reverse_call = True
        return y

    def _symbolic_reverse(self, x, training, mask):
        where = self._where()
        if mask is not None:
            raise ValueError(f"{where}: in a functional model masks pass along the edges by themselves; a `mask` "
                             "argument is not taken in a call on symbolic tensors.")
        if not is_symbolic(x):
            raise TypeError(f"{where}: a call with reverse=True takes one tensor (hidden states), got "
                            f"{type(x).__name__}.")
        unbuilt = self.assert_input_spec(x)
        self.ensure_built(x.shape)
        self.assert_input_spec(x, unbuilt)
        self._check_hidden_shape(x.shape)
        kwargs = {} if training is None else {"training": bool(training)}
        kwargs["reverse"] = True
        out = KerasTensor(self.compute_output_shape(x.shape, reverse=True), dtype=self.compute_dtype)
        Node(self, args=(x,), kwargs=kwargs, outputs=[out])
        return out

    def reverse_call(self, x, training=False):
        """Logits (..., input_dim) of hidden states ``x`` (..., output_dim): ``x @ embeddings.T`` (tied) or
        ``x @ reverse_embeddings``, soft-capped with ``logit_soft_cap``, in ``reverse_dtype``; quantized, as
        Keras's quantized call (see the module docstring)."""
        if self.dtype_policy.quantization_mode is not None:
            x = x.astype(self.compute_dtype, copy=False)
            logits, kernel = self._quantized_logits(x, training)
        else:
            dtype = self.reverse_dtype or self.dtype
            kernel = self.embeddings.value.T if self.tie_weights else self.reverse_embeddings.value
            x = x.astype(dtype, copy=False)
            kernel = kernel.astype(dtype, copy=False)
            logits = dense_forward(x, kernel)
        capped = None
        if self.logit_soft_cap is not None:
            xp = array_module(logits)
            cap = logits.dtype.type(self.logit_soft_cap)
            capped = xp.tanh(logits / cap)
            logits = capped * cap
        self._saved = _ReverseState(x, kernel, capped) if training else None
        return logits

    def backward(self, dy):
        state = self.saved()
        if not isinstance(state, _ReverseState):
            grad = super().backward(dy)
            if self.trainable and self.reverse_embeddings is not None:
                self.reverse_embeddings.grad = None         # the lookup does not read it
            return grad
        x, kernel = state.x, state.kernel
        dz = dy.astype(x.dtype, copy=False)
        if state.capped is not None:
            dz = dz * (1 - state.capped * state.capped)
        # a quantized table is frozen: the hidden states alone take a gradient, through the dequantized table
        trains = self.trainable and self.dtype_policy.quantization_mode is None
        dx, dkernel, _ = dense_backward(x, kernel, dz, need_input_grad=self.input_gradient_wanted,
                                        need_weight_grads=trains and not self.tie_weights, has_bias=False)
        if trains:
            weight_dtype = self.embeddings.dtype
            if self.tie_weights:
                # d(x @ E.T)/dE = dz.T @ x: (input_dim, output_dim), the table's own layout.
                rows_dz = dz.reshape(-1, dz.shape[-1])
                self.embeddings.grad = (rows_dz.T @ x.reshape(-1, x.shape[-1])).astype(weight_dtype, copy=False)
            else:
                self.reverse_embeddings.grad = dkernel.astype(weight_dtype, copy=False)
                self.embeddings.grad = None                   # the projection does not read it
        if dx is not None:
            dx = dx.astype(self.dtype, copy=False)
        return dx

    def get_config(self):
        return {**super().get_config(), "tie_weights": self.tie_weights, "reverse_dtype": self.reverse_dtype,
                "logit_soft_cap": self.logit_soft_cap}
