"""``Embedding``: turns integer ids (e.g. padded token sequences) into dense vectors, as in Keras 3."""
from __future__ import annotations

import numpy

from .. import backend, regularizers
from ..ops.embedding import embedding_lookup, embedding_table_gradient
from . import id_checks, lora, quantized
from .base import Layer
from .symbolic import is_symbolic
from .core import positive_int


class Embedding(lora.LoraLayer, id_checks.RangedIds, Layer):
    """Maps each id in [0, input_dim) to a trainable row of ``embeddings`` (input_dim, output_dim).

    Inputs hold whole numbers, of an integer or a float dtype (a model's float inputs are truncated to
    integers, as Keras casts them); the output has one more axis, of size ``output_dim``. Ids are not
    differentiable: the layer gives no input gradient.

    ``quantize("int8")`` (or a ``dtype`` of ``"int8_from_float32"``) keeps the table as int8 values with a float
    ``embeddings_scale`` per row (per id), both non-trainable, as Keras does; the rows looked up are divided by
    their scales. ``quantize("int4")`` packs two 4-bit values per byte along ``output_dim``, as Keras does: by
    default in groups of 128 columns with a scale and an int8 zero point per id and group (``embeddings_zero``, and
    ``g_idx`` the group of each column), or with ``Int4QuantizationConfig(block_size=None)`` symmetric with one
    scale per id; only the rows looked up are unpacked.

    ``lora_rank`` and ``enable_lora`` as Keras's (``layers/lora.py``): ``lora_embeddings_a`` (input_dim, rank) and
    ``lora_embeddings_b`` (rank, output_dim); on an int8 or int4 table the rows looked up add
    ``lora_embeddings_a[ids] @ lora_embeddings_b * scale``.
    """

    id_range_argument = "input_dim"
    fixed_input_axes = ()
    keeps_input_dtype = True
    quantization_modes = ("int8", "int4")
    embeddings = lora.merged_weight("embeddings")
    lora_weight = "embeddings"
    lora_constraint = "embeddings_constraint"
    lora_build_keeps_alpha = False
    lora_quantization_modes = ("int8", "int4")

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, input_length=None,
                 lora_rank=None, lora_alpha=None, quantization_config=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Embedding layer '{self.name}'"
        self.init_lora(lora_rank, lora_alpha, where)
        self.quantization_config = quantized.quantization_config_of(quantization_config, where)
        self.input_dim = positive_int(input_dim, f"{where}: input_dim")
        self.output_dim = positive_int(output_dim, f"{where}: output_dim")
        # Keras's padding id: with mask_zero, id 0 marks a padded step (recurrent layers after it skip
        # those steps), so the vocabulary's own ids start at 1.
        self.mask_zero = bool(mask_zero)
        self.set_weight_arguments(embeddings_initializer=embeddings_initializer,
                                  embeddings_regularizer=embeddings_regularizer,
                                  embeddings_constraint=embeddings_constraint)
        self.embeddings = None
        self._initial_weights = weights   # Keras's `weights=[table]`: set once built
        del input_length                  # Keras 3 accepts it and ignores it: the data give the length

    def build(self, input_shape):
        quantized.check_layer_mode(self, self.dtype_policy.quantization_mode)
        if self.dtype_policy.quantization_mode == "int8":
            self._int8_build((self.input_dim, self.output_dim))
        elif self.dtype_policy.quantization_mode == "int4":
            self._int4_build((self.input_dim, self.output_dim))
        else:
            self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                              name="embeddings", regularizer=self.embeddings_regularizer,
                                              constraint=self.embeddings_constraint)
        if self._initial_weights is not None:
            weights, self._initial_weights = self._initial_weights, None
            self.set_weights(weights)
        self.build_lora()

    def _int8_build(self, shape):
        self.embeddings = self.add_weight(shape, "zeros", dtype="int8", trainable=False, name="embeddings")
        # one scale per id: the rows are quantized over output_dim, as Keras does
        self.embeddings_scale = self.add_weight((self.input_dim,), "ones", trainable=False, name="embeddings_scale")
        return self._embeddings, self.embeddings_scale

    def _int4_build(self, shape):
        rows, columns = shape
        block_size = quantized.int4_block_size(self)
        self.embeddings = self.add_weight((rows, (columns + 1) // 2), "zeros", dtype="int8", trainable=False,
                                          name="embeddings")
        scale_shape = (rows,) if block_size is None else (rows, -(-columns // block_size))
        self.embeddings_scale = self.add_weight(scale_shape, "ones", trainable=False, name="embeddings_scale")
        self.embeddings_zero = self.g_idx = None
        if block_size is not None:
            self.embeddings_zero = self.add_weight(scale_shape, "zeros", dtype="int8", trainable=False,
                                                   name="embeddings_zero")
            self.g_idx = self.add_weight((columns,), "zeros", dtype="float32", trainable=False, name="g_idx")
            self.g_idx.assign(numpy.arange(columns, dtype="float32") // block_size)
        return tuple(v for v in (self._embeddings, self.embeddings_scale, self.embeddings_zero, self.g_idx)
                     if v is not None)

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's ``quantize``: ``"int8"`` replaces the table by its int8 values, quantized per row
        (``AbsMaxQuantizer(axis=-1)`` unless ``config`` gives a weight quantizer), and ``embeddings_scale``;
        ``"int4"`` packs the table (see the class docstring), the policy becoming
        ``"int4/<block size or -1>_from_<its policy>"``."""
        config = quantized.checked_request(self, Embedding, mode, config, type_check)
        self.check_quantize_lora(config.mode)
        if config.mode != "int4":
            quantized.quantize_weight(self, Embedding, None, config, False, "embeddings", -1, self._int8_build)
            return
        self.quantization_config = config
        block_size = quantized.int4_block_size(self)
        table = self._embeddings
        values, arrays = quantized.int4_quantized(table.value, config, block_size, -1)
        quantized.install_int4(self, table, values, arrays, block_size)

    def _int4_rows(self, ids):
        """The float rows of ``ids`` in an int4 table: per id ``values / scale``; in groups
        ``(values - zero) * scale`` of each column's group, as Keras dequantizes them."""
        from ..quantizers import unpack_int4
        dtype = self.compute_dtype
        values = unpack_int4(embedding_lookup(ids, self._embeddings.value), self.output_dim, axis=-1).astype(dtype)
        scale = embedding_lookup(ids, self.embeddings_scale.value).astype(dtype)
        if self.embeddings_zero is None:
            return values / scale[..., None]
        xp = backend.array_module(values)
        groups = self.g_idx.value.astype(numpy.int32)
        zero = xp.take(embedding_lookup(ids, self.embeddings_zero.value), groups, axis=-1).astype(dtype)
        return (values - zero) * xp.take(scale, groups, axis=-1)

    def compute_mask(self, x, mask=None):
        """With ``mask_zero``, the ids other than 0 (on symbolic ids, ``ops.not_equal(x, 0)``, as Keras records
        it); else None."""
        if not self.mask_zero:
            return None
        if is_symbolic(x):
            from . import keras_ops     # the Keras ops sit on the layers' base; import late
            return keras_ops.not_equal(x, 0)
        return self._as_input(x) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def call(self, x, training=False):
        ids = self.checked_ids(x)
        self._saved = ids if training else None
        if self.dtype_policy.quantization_mode in ("int8", "int4"):
            return self.add_low_rank_product(ids, self._quantized_rows(ids))
        return embedding_lookup(ids, self.embeddings.value)

    def _quantized_rows(self, ids):
        """The float rows of ``ids`` in the quantized table, as Keras dequantizes them."""
        if self.dtype_policy.quantization_mode == "int4":
            return self._int4_rows(ids)
        rows = embedding_lookup(ids, self._embeddings.value).astype(self.compute_dtype)
        scales = embedding_lookup(ids, self.embeddings_scale.value).astype(self.compute_dtype)
        return rows / scales[..., None]

    def backward(self, dy):
        ids = self.saved()
        if self.trainable and self.dtype_policy.quantization_mode is None:
            self.embeddings.grad = embedding_table_gradient(ids, dy, self.input_dim)
        elif self.dtype_policy.quantization_mode in ("int8", "int4"):
            self.add_low_rank_backward(ids, dy, None)      # the adapters' gradients; ids take none
        return None

    # ------------------------------------------------------------------ LoRA on a quantized table
    def _lora_weight_shape(self):
        return (self.input_dim, self.output_dim)     # an int4 table is packed along output_dim

    def _lora_dequantized(self):
        xp = backend.array_module(self._embeddings.value)
        return self._quantized_rows(xp.arange(self.input_dim))

    def _lora_requantized(self, merged, mode, block_size):
        # Keras's: per id (the table's rows), or in groups of columns, as its quantize does: per column of the
        # transpose
        values, arrays = lora.quantize_columns(merged.T, mode, block_size)
        return values.T, [a.T for a in arrays]

    def _low_rank_input(self, ids, a):
        return embedding_lookup(ids, a)

    def _low_rank_input_backward(self, ids, dh, a, want_a, want_x):
        return (embedding_table_gradient(ids, dh, self.input_dim) if want_a else None), None

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                **self.weight_arguments_config(), "mask_zero": self.mask_zero,
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "quantization_config": quantized.serialized_config(self.quantization_config),
                **self.lora_config()}
