"""LoRA (low-rank adaptation) as Keras 3 gives it to Dense, EinsumDense, Embedding and Conv1D/2D/3D.

``enable_lora(rank)`` freezes the layer's weight W (``kernel``; Embedding's ``embeddings``) and adds two float32
weights, ``lora_<weight>_a`` of W's shape with its last axis replaced by ``rank`` and ``lora_<weight>_b``
(rank, W's last axis). The layer then computes with the merged weight ``W + (a @ b) * (lora_alpha / rank)``
(the matmul broadcast over a's leading axes), which its ``kernel`` (``embeddings``) attribute returns, as
Keras's property does. The layer's own backward computes the gradient of the merged weight; ``MergedWeight``
turns it into the gradients of a and b by the chain rule, so W never moves.

Saving writes the merged weight in W's place and leaves a and b out, as Keras does; loading into a layer with
LoRA enabled assigns W and the other weights from the file and sets a and b to zeros.

A class listing quantization modes in ``lora_quantization_modes`` (Dense, EinsumDense, Embedding: int8 and
int4) takes LoRA on its quantized weight as Keras does, enabled before or after ``quantize`` (which quantizes
the frozen weight and keeps a and b): its output adds the low-rank path ``(h @ b) * scale`` to the quantized
product, ``h`` being the layer's product of its inputs with a (``x @ a``; EinsumDense's einsum; Embedding's rows
of a), a and b take their gradients through that path (``add_low_rank_backward``), and saving dequantizes the
weight, adds the low-rank product and quantizes the sum again (``save_own_variables``). Its ``kernel``
(``embeddings``) then returns what Keras's property does: the quantized integer values (unpacked, in the
weight's shape) plus the low-rank product, in the compute dtype.

Not supported (a ValueError): LoRA with the float8 mode and on ReversibleEmbedding's quantized tables.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from . import quantized
from .base import Layer


def _rank_argument(value, where, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{where}: `{what}` must be a positive integer or None, got {value!r}.")
    return int(value)


def _alpha_argument(value, where):
    """``lora_alpha``: None or a positive number (Keras documents an integer and takes any number)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf"):
        raise ValueError(f"{where}: `lora_alpha` must be a positive number or None, got {value!r}.")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


class MergedWeight:
    """A LoRA-enabled layer's weight as it computes with it: ``value`` is the frozen weight plus the scaled
    low-rank product, in the layer's compute dtype; setting ``grad`` (the merged weight's gradient) sends the
    gradients of ``a`` and ``b`` instead."""

    __array_ufunc__ = None

    def __init__(self, layer, base, a, b):
        self.layer, self.base, self.a, self.b = layer, base, a, b
        self.quantized = layer.dtype_policy.quantization_mode is not None

    @property
    def scale(self):
        return self.layer.lora_alpha / self.layer.lora_rank

    @property
    def value(self):
        base = self.layer._lora_integer_weight() if self.quantized else self.base.value
        merged = base + (self.a.value @ self.b.value) * self.scale
        return merged.astype(self.layer.compute_dtype, copy=False)

    @property
    def grad(self):
        return None

    @grad.setter
    def grad(self, dmerged):
        if self.quantized and dmerged is not None:
            raise ValueError(f"{self.layer._lora_where()}: a quantized weight takes no gradient; its LoRA adapters "
                             "take theirs through the layer's low-rank path.")
        if dmerged is None:         # a pass that did not read the weight (a reverse call's separate kernel)
            if not self.quantized:      # a quantized layer's adapters take theirs from its low-rank path
                self.a.grad = self.b.grad = None
            return
        # merged = W + s * a @ b over a's leading axes: da = s * dmerged @ b.T, db = s * sum over rows a.T @ dmerged
        rank, columns = self.b.shape
        flat = dmerged.reshape(-1, columns)
        self.a.grad = ((flat @ self.b.value.T.astype(flat.dtype)) * self.scale).reshape(self.a.shape).astype(
            self.a.dtype, copy=False)
        self.b.grad = ((self.a.value.reshape(-1, rank).T.astype(flat.dtype) @ flat) * self.scale).astype(
            self.b.dtype, copy=False)

    @property
    def shape(self):
        return tuple(self.a.shape[:-1]) + (self.b.shape[-1],)     # a quantized base may be packed

    @property
    def dtype(self):
        return numpy.dtype(self.layer.compute_dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def trainable(self):
        return False

    def numpy(self):
        return backend.to_numpy(self.value).copy()

    def __array__(self, dtype=None, copy=None):
        value = self.numpy()
        return value if dtype is None else value.astype(dtype)

    def __repr__(self):
        return f"<MergedWeight of {self.base.path!r}, lora rank {self.layer.lora_rank}>"


def merged_weight(attribute):
    """The class attribute of a LoRA layer's adapted weight (``kernel``, ``embeddings``): the variable, or with
    LoRA enabled its ``MergedWeight``; assigning it sets the variable (kept as ``_<attribute>``)."""
    private = "_" + attribute

    def get(layer):
        var = layer.__dict__.get(private)
        if var is not None and layer.__dict__.get("lora_enabled"):
            return MergedWeight(layer, var, getattr(layer, f"lora_{attribute}_a"),
                                getattr(layer, f"lora_{attribute}_b"))
        return var

    def set_(layer, var):
        layer.__dict__[private] = var

    return property(get, set_, doc=f"The layer's ``{attribute}``; with LoRA enabled, the merged one "
                                   "(``layers/lora.py``).")


def quantize_columns(view, mode, block_size):
    """A 2-D float ``view`` quantized per column over its rows as Keras quantizes a kernel: int8 by abs-max in
    [-127, 127]; int4 by abs-max in [-8, 7], or with a ``block_size`` asymmetrically in groups of rows. Returns
    the int8 values (unpacked) and the list of the scale and, for groups, the zero point."""
    from .. import quantizers
    if mode == "int4" and block_size is not None:
        values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(view, block_size, to_numpy=True)
        return values, [scale, zero]
    values, scale = quantizers.abs_max_quantize(view, axis=0, value_range=(-127, 127) if mode == "int8" else (-8, 7),
                                                dtype="int8", to_numpy=True)
    return values, [scale]


class LoraLayer:
    """What a layer with Keras's ``lora_rank`` and ``lora_alpha`` arguments shares (mixed in before Layer). The
    class names its adapted weight (``lora_weight``), the argument whose constraint LoRA refuses, and whether its
    build passes ``lora_alpha`` to ``enable_lora`` (Keras's Dense and Embedding pass the rank alone, so that
    built they take ``lora_alpha = lora_rank``)."""

    lora_weight = "kernel"
    lora_constraint = "kernel_constraint"
    lora_build_keeps_alpha = True
    lora_quantization_modes = ()

    def init_lora(self, lora_rank, lora_alpha, where):
        """Keep the constructor's ``lora_rank`` and ``lora_alpha`` (the rank where None), as Keras does."""
        self.lora_rank = _rank_argument(lora_rank, where, "lora_rank")
        lora_alpha = _alpha_argument(lora_alpha, where)
        self.lora_alpha = lora_alpha if lora_alpha is not None else self.lora_rank
        self.lora_enabled = False

    def build_lora(self):
        """The end of the layer's build: enable LoRA where the constructor asked for it."""
        if self.lora_rank:
            self.built = True       # as Keras's build, which marks the layer built before enabling LoRA
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha if self.lora_build_keeps_alpha else None)

    def _lora_where(self):
        return f"{type(self).__name__} layer '{self.name}'"

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform", b_initializer="zeros"):
        """Keras's ``enable_lora``: freeze the layer's weight and add ``lora_<weight>_a`` (drawn by
        ``a_initializer``) and ``lora_<weight>_b`` (``b_initializer``), float32, regularized as the weight is;
        the scale is ``lora_alpha / rank`` (``lora_alpha`` defaults to ``rank``)."""
        weight = self.lora_weight
        where = self._lora_where()
        if getattr(self, self.lora_constraint):
            raise ValueError(f"Lora is incompatible with {weight.rstrip('s')} constraints. In order to enable lora "
                             f"on this layer, remove the `{self.lora_constraint}` argument. ({where})")
        if not self.built:
            raise ValueError(f"Cannot enable lora on a layer that isn't yet built. ({where})")
        if self.lora_enabled:
            raise ValueError(f"lora is already enabled. This can only be done once per layer. ({where})")
        mode = self.dtype_policy.quantization_mode
        if mode is not None and mode not in self.lora_quantization_modes:
            raise ValueError(f"{where}: LoRA on a quantized layer (dtype policy "
                             f"'{self.dtype_policy.name}') is not supported by gpu_dl for this layer.")
        rank = _rank_argument(rank, where, "rank")
        lora_alpha = _alpha_argument(lora_alpha, where)
        var = self.__dict__["_" + weight]
        shape = self._lora_weight_shape()
        regularizer = getattr(self, f"{weight}_regularizer")
        a = self.add_weight(tuple(shape[:-1]) + (rank,), a_initializer, dtype="float32",
                            regularizer=regularizer, name=f"lora_{weight}_a")
        b = self.add_weight((rank, shape[-1]), b_initializer, dtype="float32", regularizer=regularizer,
                            name=f"lora_{weight}_b")
        for adapter in (a, b):
            # the name scope the layer was built in (a model's), wherever enable_lora is called, as in Keras
            adapter.path = f"{var.path.rsplit('/', 1)[0]}/{adapter.name}"
        setattr(self, f"lora_{weight}_a", a)
        setattr(self, f"lora_{weight}_b", b)
        var.trainable = False
        self.lora_enabled = True
        self.lora_rank = rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else rank

    def _lora_weight_shape(self):
        """The shape of the weight LoRA adapts (a quantized one's unpacked shape, where a class packs it)."""
        return self.__dict__["_" + self.lora_weight].shape

    def _lora_integer_weight(self):
        """Keras's base of the merged weight of a quantized layer: the integer values (unpacked where packed)
        in the weight's shape."""
        from ..quantizers import unpack_int4
        value, shape = self.__dict__["_" + self.lora_weight].value, tuple(self._lora_weight_shape())
        if self.dtype_policy.quantization_mode == "int4":
            value = unpack_int4(value, int(numpy.prod(shape)) // value.shape[0], axis=-1)
        return value.reshape(shape)

    def _lora_on_quantized(self):
        return self.lora_enabled and self.dtype_policy.quantization_mode is not None

    def add_low_rank_product(self, x, product):
        """A quantized layer's ``product`` plus, with LoRA enabled, ``(h @ b) * scale`` in the compute dtype,
        ``h`` the layer's product of ``x`` with a (``_low_rank_input``), as Keras's int8 and int4 calls add it."""
        if not self._lora_on_quantized():
            return product
        a, b = (getattr(self, f"lora_{self.lora_weight}_{s}").value for s in "ab")
        dtype = numpy.dtype(self.compute_dtype)
        low_rank = self._low_rank_input(x, a.astype(dtype, copy=False)) @ b.astype(dtype, copy=False)
        return (product + low_rank * (self.lora_alpha / self.lora_rank)).astype(dtype, copy=False)

    def _low_rank_input(self, x, a):
        """``h``, the low-rank path's product of the inputs with a (Dense's ``x @ a``)."""
        return x @ a

    def _low_rank_input_backward(self, x, dh, a, want_a, want_x):
        """The gradients of a and of the inputs (None where not wanted) from that of ``h``."""
        da = x.reshape(-1, x.shape[-1]).T.astype(dh.dtype, copy=False) @ dh.reshape(-1, dh.shape[-1]) \
            if want_a else None
        return da, (dh @ a.T if want_x else None)

    def add_low_rank_backward(self, x, dz, dx):
        """The backward of ``add_low_rank_product``: the gradients of a and b (where the layer trains) and
        ``dx`` (the input gradient through the quantized weight; None where none is wanted) plus the low-rank
        path's."""
        if not self._lora_on_quantized():
            return dx
        a, b = (getattr(self, f"lora_{self.lora_weight}_{s}") for s in "ab")
        scale = self.lora_alpha / self.lora_rank
        a_value, b_value = a.value.astype(dz.dtype, copy=False), b.value.astype(dz.dtype, copy=False)
        dh = (dz @ b_value.T) * scale           # the gradient of h
        da, dx_low = self._low_rank_input_backward(x, dh, a_value, self.trainable, dx is not None)
        if self.trainable:
            rank, columns = b.shape
            h = self._low_rank_input(x, a_value).reshape(-1, rank)
            a.grad = da.reshape(a.shape).astype(a.dtype, copy=False)
            b.grad = ((h.T @ dz.reshape(-1, columns)) * scale).astype(b.dtype, copy=False)
        return None if dx is None else dx + dx_low.reshape(dx.shape)

    def _merged_quantized(self):
        """Keras's merge of LoRA into a quantized weight for saving: the dequantized weight
        (``_lora_dequantized``) plus the low-rank product, quantized again as the layer's mode does
        (``_lora_requantized``), as {variable id: array} for the weight, its scale and zero point."""
        from .. import quantizers
        a, b = (getattr(self, f"lora_{self.lora_weight}_{s}").numpy() for s in "ab")
        weight, mode = self.lora_weight, self.dtype_policy.quantization_mode
        merged = backend.to_numpy(self._lora_dequantized()) + (a @ b) * (self.lora_alpha / self.lora_rank)
        values, arrays = self._lora_requantized(merged, mode, quantized.int4_block_size(self))
        if mode == "int4":
            values = quantizers.pack_int4(values, axis=-1)[0]
        variables = [self.__dict__["_" + weight], getattr(self, f"{weight}_scale"), getattr(self, f"{weight}_zero",
                                                                                          None)]
        return {id(var): backend.to_numpy(value).reshape(var.shape)
                for var, value in zip(variables, [values] + arrays) if var is not None}

    def _lora_dequantized(self):
        """The float weight a quantized one stands for, in the weight's shape."""
        raise NotImplementedError

    def _lora_requantized(self, merged, mode, block_size):
        """``merged`` quantized as the layer's ``quantize`` does: the int8 values to store (unpacked; for int4 in
        the layout packed along the last axis) and the list of the scale and zero point (Dense's: per column)."""
        return quantize_columns(merged, mode, block_size)

    def lora_config(self):
        """Keras's config entries: ``lora_rank`` and ``lora_alpha`` where a rank is set, none otherwise."""
        return {"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha} if self.lora_rank else {}

    def check_quantize_lora(self, mode):
        """A ValueError where ``quantize(mode)`` is asked of a layer with LoRA enabled whose class does not take
        LoRA on that mode."""
        if self.lora_enabled and mode not in self.lora_quantization_modes:
            raise ValueError(f"{self._lora_where()}: quantizing a layer with LoRA enabled to {mode!r} is not "
                             "supported by gpu_dl; save the model (which merges LoRA into the weight) and quantize "
                             "the model loaded without LoRA.")

    # ------------------------------------------------------------------ files
    def _overrides_state_hooks(self):
        # With LoRA enabled the files hold the merged weight and no a, b: they go through the hooks below.
        # Otherwise the layer's files are written as its class's without LoRA, unless a subclass has hooks.
        if self.lora_enabled:
            return True
        cls = type(self)
        return any(getattr(cls, hook) not in (getattr(LoraLayer, hook), getattr(Layer, hook))
                   for hook in ("save_own_variables", "load_own_variables"))

    def _lora_file_variables(self):
        """The variables a file holds, in order: the adapted weight, then the others except a and b."""
        adapters = {id(getattr(self, f"lora_{self.lora_weight}_{s}")) for s in "ab"}
        var = self.__dict__["_" + self.lora_weight]
        variables = [var] + [v for v in self._weights if v is not var and id(v) not in adapters]
        if all(getattr(v, "h5_key", None) for v in variables):
            variables.sort(key=lambda v: int(v.h5_key))      # a quantized layer's order in Keras's files
        return variables

    def save_own_variables(self, store):
        """Keras's: with LoRA enabled, the merged weight in the weight's place and no a, b."""
        if not self.lora_enabled:
            return super().save_own_variables(store)
        if self.dtype_policy.quantization_mode is not None:
            merged = self._merged_quantized()
        else:
            merged = {id(self.__dict__["_" + self.lora_weight]): getattr(self, self.lora_weight).numpy()}
        for i, var in enumerate(self._lora_file_variables()):
            store[str(i)] = merged[id(var)].astype(var.dtype) if id(var) in merged else var.numpy()

    def load_own_variables(self, store):
        """Keras's: with LoRA enabled, the weight and the others from ``store`` and a, b set to zeros."""
        if not self.lora_enabled:
            return super().load_own_variables(store)
        variables = self._lora_file_variables()
        if len(store) != len(variables):
            raise ValueError(f"Layer '{self.name}' expected {len(variables)} variables, but received "
                             f"{len(store)} variables during loading. Expected: {[v.name for v in variables]}")
        for i, var in enumerate(variables):
            var.assign(store[str(i)])
        for s in "ab":
            var = getattr(self, f"lora_{self.lora_weight}_{s}")
            var.assign(numpy.zeros(var.shape, var.dtype))
