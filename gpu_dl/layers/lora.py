"""LoRA (low-rank adaptation) as Keras 3 gives it to Dense, EinsumDense, Embedding and Conv1D/2D/3D.

``enable_lora(rank)`` freezes the layer's weight W (``kernel``; Embedding's ``embeddings``) and adds two float32
weights, ``lora_<weight>_a`` of W's shape with its last axis replaced by ``rank`` and ``lora_<weight>_b``
(rank, W's last axis). The layer then computes with the merged weight ``W + (a @ b) * (lora_alpha / rank)``
(the matmul broadcast over a's leading axes), which its ``kernel`` (``embeddings``) attribute returns, as
Keras's property does. The layer's own backward computes the gradient of the merged weight; ``MergedWeight``
turns it into the gradients of a and b by the chain rule, so W never moves.

Saving writes the merged weight in W's place and leaves a and b out, as Keras does; loading into a layer with
LoRA enabled assigns W and the other weights from the file and sets a and b to zeros.

A class listing quantization modes in ``lora_quantization_modes`` (Dense: int8 and int4) takes LoRA on its
quantized kernel as Keras does: its output adds ``(x @ a @ b) * scale`` to the quantized product, a and b take
their gradients through that path (``add_low_rank_backward``), and saving dequantizes the kernel, adds the
low-rank product and quantizes the sum again (``save_own_variables``). Its ``kernel`` then stays the quantized
variable (Keras's property returns the int8 values plus the low-rank product there).

Not supported (a ValueError): LoRA on the other layers' quantized weights, and quantizing a layer with LoRA
enabled (Keras quantizes its frozen weight and keeps a and b).
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
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

    @property
    def scale(self):
        return self.layer.lora_alpha / self.layer.lora_rank

    @property
    def value(self):
        merged = self.base.value + (self.a.value @ self.b.value) * self.scale
        return merged.astype(self.layer.compute_dtype, copy=False)

    @property
    def grad(self):
        return None

    @grad.setter
    def grad(self, dmerged):
        if dmerged is None:         # a pass that did not read the weight (a reverse call's separate kernel)
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
        return self.base.shape

    @property
    def dtype(self):
        return numpy.dtype(self.layer.compute_dtype)

    @property
    def ndim(self):
        return len(self.base.shape)

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
        if var is not None and layer.__dict__.get("lora_enabled") and layer.dtype_policy.quantization_mode is None:
            return MergedWeight(layer, var, getattr(layer, f"lora_{attribute}_a"),
                                getattr(layer, f"lora_{attribute}_b"))
        return var

    def set_(layer, var):
        layer.__dict__[private] = var

    return property(get, set_, doc=f"The layer's ``{attribute}``; with LoRA enabled, the merged one "
                                   "(``layers/lora.py``).")


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

    def _lora_on_quantized(self):
        return self.lora_enabled and self.dtype_policy.quantization_mode is not None

    def add_low_rank_product(self, x, product):
        """A quantized layer's ``product`` plus, with LoRA enabled, ``(x @ a @ b) * scale`` in the compute dtype,
        as Keras's int8 and int4 calls add it."""
        if not self._lora_on_quantized():
            return product
        a, b = (getattr(self, f"lora_{self.lora_weight}_{s}").value for s in "ab")
        low_rank = (x @ a.astype(x.dtype, copy=False)) @ b.astype(x.dtype, copy=False)
        return (product + low_rank * (self.lora_alpha / self.lora_rank)).astype(self.compute_dtype, copy=False)

    def add_low_rank_backward(self, x, dz, dx):
        """The backward of ``add_low_rank_product``: the gradients of a and b (where the layer trains) and
        ``dx`` (the input gradient through the quantized kernel; None where none is wanted) plus the low-rank
        path's."""
        if not self._lora_on_quantized():
            return dx
        a, b = (getattr(self, f"lora_{self.lora_weight}_{s}") for s in "ab")
        scale = self.lora_alpha / self.lora_rank
        rows = x.reshape(-1, x.shape[-1])
        dz = dz.reshape(-1, dz.shape[-1])
        a_value, b_value = a.value.astype(dz.dtype, copy=False), b.value.astype(dz.dtype, copy=False)
        dh = (dz @ b_value.T) * scale           # the gradient of rows @ a
        if self.trainable:
            a.grad = (rows.T.astype(dz.dtype, copy=False) @ dh).astype(a.dtype, copy=False)
            b.grad = (((rows.astype(dz.dtype, copy=False) @ a_value).T @ dz) * scale).astype(b.dtype, copy=False)
        return None if dx is None else dx + (dh @ a_value.T).reshape(dx.shape)

    def _merged_quantized(self):
        """Keras's ``_get_kernel_with_merged_lora`` of a Dense-like 2-D quantized kernel: the dequantized kernel
        plus the low-rank product, quantized again as the layer's mode does, as {variable id: array} for the
        kernel and its scales."""
        from .. import quantizers
        from . import quantized
        a, b = (getattr(self, f"lora_{self.lora_weight}_{s}").numpy() for s in "ab")
        kernel, mode = self.__dict__["_" + self.lora_weight], self.dtype_policy.quantization_mode
        if mode == "int8":
            merged = backend.to_numpy(quantized.dequantized(kernel.value, self.kernel_scale.value, self.compute_dtype))
        else:
            merged = backend.to_numpy(self._int4_kernel(self.compute_dtype))
        merged = merged + (a @ b) * (self.lora_alpha / self.lora_rank)
        zero = getattr(self, "kernel_zero", None)
        if mode == "int4" and zero is not None:
            values, scale, zeros = quantizers.abs_max_quantize_grouped_with_zero_point(
                merged, self._int4_block_size(), to_numpy=True)
            arrays = {id(self.kernel_scale): scale, id(zero): zeros}
        else:
            values, scale = quantizers.abs_max_quantize(merged, axis=0, value_range=(-127, 127) if mode == "int8"
                                                        else (-8, 7), dtype="int8", to_numpy=True)
            arrays = {id(self.kernel_scale): scale.reshape(self.kernel_scale.shape)}
        arrays[id(kernel)] = values if mode == "int8" else quantizers.pack_int4(values, axis=-1)[0]
        return {key: backend.to_numpy(value) for key, value in arrays.items()}

    def lora_config(self):
        """Keras's config entries: ``lora_rank`` and ``lora_alpha`` where a rank is set, none otherwise."""
        return {"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha} if self.lora_rank else {}

    def check_quantize_lora(self):
        """A ValueError where ``quantize`` is asked of a layer with LoRA enabled."""
        if self.lora_enabled:
            raise ValueError(f"{self._lora_where()}: quantizing a layer with LoRA enabled is not supported by "
                             "gpu_dl; save the model (which merges LoRA into the weight) and quantize the model "
                             "loaded without LoRA.")

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
        return [var] + [v for v in self._weights if v is not var and id(v) not in adapters]

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
