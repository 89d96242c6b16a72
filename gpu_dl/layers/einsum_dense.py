"""Keras 3's ``EinsumDense``: ``activation(einsum(equation, x, kernel) + bias)``.

The equation has one of Keras's three forms: ``"ab,bc->ac"`` (every input axis named), ``"...b,bc->...c"``
(leading axes, the batch among them, elided) or ``"ab...,bc->ac..."`` (trailing axes elided). Its shapes are
Keras's ``_analyze_einsum_string``'s: ``output_shape`` gives the output's axes after the batch (the ones the
ellipsis stands for left out), ``None`` where the input decides; the kernel (shape from the weight spec) takes
each axis's size from the output where the output names it, otherwise from the input; the bias spans the
output from the first of ``bias_axes`` on, size 1 along the output axes not in ``bias_axes`` (and along the
axes a trailing ellipsis stands for). The kernel's fans for its initializer are its output-named axes
(fan_out) and the rest (fan_in).

Backward, with ``z`` the pre-activation and the equation ``I,W->O``: ``dx = einsum("O,W->I", dz, kernel)``
(broadcast along input axes the product sums away), ``dkernel = einsum("I,O->W", x, dz)``, ``dbias`` the sum
of ``dz`` over the axes the bias broadcasts along. On the GPU these are CuPy's einsum (cuBLAS underneath) and
the same fused bias-and-activation kernel Dense runs when the bias spans whole trailing output axes.

``quantize("int8")`` (or a ``dtype`` of ``"int8_from_float32"``) keeps the kernel as int8 values with a
``kernel_scale`` per slice along the axes the product keeps, laid out along the output's axes, as Keras's int8
path does (``layers/quantized.py``): the inputs are quantized over the axes the product reduces, the integer
product is exact, and the inputs' gradient goes through the dequantized kernel. ``quantize("float8")`` trains
with float8 fake-quantized einsums and delayed scaling, as Keras does (``layers/float8_training.py``).

``lora_rank`` and ``enable_lora`` as Keras's (``layers/lora.py``): ``lora_kernel_a`` (the kernel's shape with
the last axis of size rank) and ``lora_kernel_b`` (rank, the kernel's last axis); on an int8 or int4 kernel the
output adds ``einsum(equation, x, lora_kernel_a) @ lora_kernel_b * scale``, which takes an equation whose
kernel's last label is the output's last one.

``quantize("awq", config=AWQConfig(...))`` (the model's, which calibrates it) keeps 4-bit activation-aware weights of
Keras's 2-D view of a 2-D or 3-D kernel (``layers/awq_weights.py``).

Not supported (a ValueError): the GPTQ quantization mode; an equation that repeats a label within one
operand (a diagonal).
"""
from __future__ import annotations

import numbers
import re

import numpy

from .. import activations, initializers
from ..backend import array_module
from . import awq_weights, float8_training, lora, quantized
from .. import gptq
from ..ops.device_reduction import sum_axes
from .base import Layer

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def axes_initializer(initializer, input_axes, output_axes):
    """A copy of ``initializer`` (one per kernel, as Keras clones it) given EinsumDense's fan axes when it is
    a VarianceScaling one without them."""
    config = initializer.get_config()
    if isinstance(initializer, initializers.VarianceScaling) and (config.get("input_axes") is None
                                                                  or config.get("output_axes") is None):
        config = {**config, "input_axes": input_axes, "output_axes": output_axes}
    return type(initializer).from_config(config)


class EinsumPlan:
    """An equation resolved against one input rank: the operand specs with the ellipsis spelled out, and the
    kernel's, bias's and output's shapes (see the module docstring)."""

    def __init__(self, equation, bias_axes, input_shape, output_shape, where, sizes_known=True):
        forms = (("plain", r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)"),
                 ("left", r"\.\.\.([a-zA-Z]+),([a-zA-Z]+)->\.\.\.([a-zA-Z]+)"),
                 ("right", r"([a-zA-Z]{2,})\.\.\.,([a-zA-Z]+)->([a-zA-Z]+)\.\.\."))
        for form, pattern in forms:
            match = re.fullmatch(pattern, equation.replace(" ", "")) if isinstance(equation, str) else None
            if match:
                break
        else:
            raise ValueError(f"{where}: invalid einsum equation {equation!r}. Equations must be in the form "
                             "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]... (letters only).")
        ins, ws, outs = match.groups()
        for spec in (ins, ws, outs):
            if len(set(spec)) != len(spec):
                raise ValueError(f"{where}: equation {equation!r} repeats a label within one operand ({spec!r}), "
                                 "which gpu_dl does not support.")
        for dim in outs:
            if dim not in ins and dim not in ws:
                raise ValueError(f"{where}: dimension {dim!r} of the output {outs!r} has no corresponding dim in "
                                 f"the input spec {ins!r} or the weight spec {ws!r} (equation {equation!r}).")
        for dim in ws:
            if dim not in ins and dim not in outs:
                raise ValueError(f"{where}: weight dimension {dim!r} did not have a match in either the input "
                                 f"spec {ins!r} or the output spec {outs!r} (equation {equation!r}); the weight "
                                 "must be fully specified.")
        rank = len(input_shape)
        elided = rank - len(ins)
        if elided < (1 if form == "left" else 0) or (form == "plain" and elided):
            need = {"plain": f"exactly {len(ins)}", "left": f"at least {len(ins) + 1} (the batch in the '...')",
                    "right": f"at least {len(ins)}"}[form]
            raise ValueError(f"{where}: equation {equation!r} takes inputs of rank {need}; received input shape "
                             f"{tuple(input_shape)}.")
        wanted = len(outs) - (0 if form == "left" else 1)
        if len(output_shape) != wanted:
            raise ValueError(f"{where}: output_shape {tuple(output_shape)} must give {wanted} size(s), one per "
                             f"output axis of {equation!r} after the batch (the '...' axes left out).")
        # The ellipsis as letters the equation leaves unused, so that the backward's equations are plain ones.
        spare = [c for c in _LETTERS if c not in ins + ws + outs][:max(elided, 0)]
        if form == "left":
            self.input_spec, self.output_spec = "".join(spare) + ins, "".join(spare) + outs
            full = list(input_shape[:elided]) + list(output_shape)
        elif form == "right":
            self.input_spec, self.output_spec = ins + "".join(spare), outs + "".join(spare)
            full = [input_shape[0]] + list(output_shape) + list(input_shape[rank - elided:])
        else:
            self.input_spec, self.output_spec = ins, outs
            full = [input_shape[0]] + list(output_shape)
        self.weight_spec = ws
        in_size = dict(zip(self.input_spec, input_shape))
        out_size = dict(zip(self.output_spec, full))
        for dim in ins:
            if dim in out_size and out_size[dim] is not None and in_size[dim] is not None \
                    and out_size[dim] != in_size[dim]:
                raise ValueError(f"{where}: input shape and output shape do not match at shared dimension "
                                 f"{dim!r}: the input {tuple(input_shape)} has {in_size[dim]}, output_shape "
                                 f"{tuple(output_shape)} gives {out_size[dim]} (equation {equation!r}).")
        self.output_shape = tuple(full)
        kernel, self.input_axes, self.output_axes = [], [], []
        for i, dim in enumerate(ws):
            if dim in outs:
                kernel.append(out_size[dim])
                self.output_axes.append(i)
            else:
                kernel.append(in_size[dim])
                self.input_axes.append(i)
        if sizes_known and any(d is None for d in kernel):
            raise ValueError(f"{where}: the kernel's shape {tuple(kernel)} (weight spec {ws!r}) has an unknown "
                             f"size: give it in output_shape {tuple(output_shape)} or in the input's shape "
                             f"{tuple(input_shape)}.")
        self.kernel_shape = tuple(kernel)
        self.bias_shape = None
        if bias_axes is not None:
            for char in bias_axes:
                if char not in outs:
                    raise ValueError(f"{where}: bias dimension {char!r} was requested, but is not part of the "
                                     f"output spec {outs!r}.")
            first = min(outs.find(char) for char in bias_axes)
            bias = [out_size[c] if c in bias_axes else 1 for c in outs[first:]]
            if form == "right":
                bias += [1] * elided
            if sizes_known and any(d is None for d in bias):
                raise ValueError(f"{where}: the bias's shape {tuple(bias)} (bias_axes {bias_axes!r}) has an "
                                 "unknown size; give it in output_shape.")
            self.bias_shape = tuple(bias)
        self.summed = "".join(c for c in self.input_spec if c not in ws and c not in self.output_spec)


def _einsum(equation, a, b):
    # optimize: a pairwise contraction through tensordot (BLAS on the CPU, cuBLAS on the GPU).
    return array_module(a).einsum(equation, a, b, optimize=True)


def _input_gradient(plan, input_shape, dz, kernel):
    """The gradient of the inputs of ``einsum(plan's equation, x, kernel)`` given that of its output, ``dz``."""
    kept = "".join(c for c in plan.input_spec if c not in plan.summed)
    dx = _einsum(f"{plan.output_spec},{plan.weight_spec}->{kept}", dz, kernel)
    if plan.summed:
        # Input axes the forward summed away: each of their entries gets the same gradient.
        xp = array_module(dx)
        dx = dx.reshape(tuple(1 if c in plan.summed else input_shape[i] for i, c in enumerate(plan.input_spec)))
        dx = xp.ascontiguousarray(xp.broadcast_to(dx, input_shape))
    return dx


class EinsumDense(lora.LoraLayer, Layer):
    """``EinsumDense(equation, output_shape, activation=None, bias_axes=None, ...)`` (see the module
    docstring); weights ``kernel`` and, with ``bias_axes``, ``bias``, in that order."""

    supports_masking = False
    quantization_modes = ("int8", "int4", "float8", "awq", "gptq")
    gptq_quantizes = True
    gptq_zero_name = "zero_point"
    kernel = lora.merged_weight("kernel")
    lora_quantization_modes = ("int8", "int4")

    def __init__(self, equation, output_shape, activation=None, bias_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None, gptq_unpacked_column_size=None,
                 quantization_config=None, **kwargs):
        super().__init__(**kwargs)
        where = self._where()
        self.init_lora(lora_rank, lora_alpha, where)
        # the columns of a GPTQ kernel's 2-D view, which Keras writes in the config of a GPTQ layer
        self.gptq_unpacked_column_size = gptq_unpacked_column_size
        self.quantization_config = quantized.quantization_config_of(quantization_config, where)
        if not isinstance(equation, str):
            raise ValueError(f"{where}: the equation must be a string such as 'ab,bc->ac', got {equation!r}.")
        if isinstance(output_shape, numbers.Integral) and not isinstance(output_shape, bool):
            output_shape = (output_shape,)
        try:
            output_shape = tuple(None if d is None else int(d) for d in output_shape)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: output_shape must be an int or a tuple of ints and None, got "
                             f"{output_shape!r}.") from None
        if any(d is not None and d <= 0 for d in output_shape):
            raise ValueError(f"{where}: output_shape must hold positive sizes (or None), got {output_shape!r}.")
        if bias_axes is not None and (not isinstance(bias_axes, str) or not bias_axes):
            raise ValueError(f"{where}: bias_axes must be a string of output labels, got {bias_axes!r}.")
        self.equation, self.partial_output_shape, self.bias_axes = equation, output_shape, bias_axes
        # The equation is checked now, for a rank that fits it, so that a malformed one fails at construction.
        self._plan(self._some_rank_shape(), sizes_known=False)
        self.activation = activations.get_keeping_shape(activation, where)
        self.set_weight_arguments(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                                  kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.kernel = self.bias = None

    def _where(self):
        return f"EinsumDense layer '{self.name}'"

    def _some_rank_shape(self):
        ins = self.equation.replace(" ", "").split(",")[0] if isinstance(self.equation, str) else ""
        return (None,) * (len(ins.replace("...", "")) + (1 if ins.startswith("...") else 0))

    def _plan(self, input_shape, sizes_known=True):
        return EinsumPlan(self.equation, self.bias_axes, tuple(input_shape), self.partial_output_shape, self._where(),
                          sizes_known)

    def build(self, input_shape):
        plan = self._plan(input_shape)
        self._scale_layout = quantized.EinsumScaleLayout(plan.input_spec, plan.weight_spec, plan.output_spec)
        quantized.check_layer_mode(self, self.dtype_policy.quantization_mode)
        if self.dtype_policy.quantization_mode == "float8":
            float8_training.build(self)
        if self.dtype_policy.quantization_mode == "int8":
            self._int8_build(plan.kernel_shape)
        elif self.dtype_policy.quantization_mode == "int4":
            self._int4_build(plan.kernel_shape)
        elif self.dtype_policy.quantization_mode == "awq":
            self._awq_kernel_shape = tuple(plan.kernel_shape)
            self.kernel = awq_weights.build(self, *awq_weights.matrix_shape(plan.kernel_shape, self._where()),
                                            zero_name="zero_point")[0]
        elif self.dtype_policy.quantization_mode == "gptq":
            self._gptq_kernel_shape = plan.kernel_shape
            gptq.build_gptq_weights(self, *gptq.gptq_kernel_shape(self, plan.kernel_shape), self.dtype_policy)
            self.is_gptq_calibrated = True      # a layer made quantized takes its values from a file
        else:
            kernel_init = axes_initializer(self.kernel_initializer, plan.input_axes, plan.output_axes)
            self.kernel = self.add_weight(plan.kernel_shape, kernel_init, name="kernel",
                                          regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if plan.bias_shape is not None:
            self.bias = self.add_weight(plan.bias_shape, self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._number_for_files()
        self.build_lora()

    def _int8_build(self, kernel_shape):
        from ..quantizers import AbsMaxQuantizer, QuantizationConfig
        self.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(self.quantization_config,
                                                                                   AbsMaxQuantizer())
        layout = self._scale_layout
        reduced = tuple(1 if i in layout.kernel_reduced else d for i, d in enumerate(kernel_shape))
        scale_shape = layout.forward(numpy.ones(reduced, "float32"), layout.kernel).shape
        self.kernel = self.add_weight(kernel_shape, "zeros", dtype="int8", trainable=False, name="kernel")
        self.kernel_scale = self.add_weight(scale_shape, "ones", trainable=False, name="kernel_scale")
        return self._kernel, self.kernel_scale

    def _int4_shape(self, kernel_shape):
        """Keras's 2-D view of an int4 kernel: (rows, columns), the sizes of the reduced axes and the others
        multiplied, the kernel reshaped in its own axis order."""
        reduced = self._scale_layout.kernel_reduced
        rows = int(numpy.prod([d for i, d in enumerate(kernel_shape) if i in reduced]))
        return rows, int(numpy.prod(kernel_shape)) // rows

    def _int4_build(self, kernel_shape):
        self._int4_kernel_shape = tuple(kernel_shape)
        return quantized.build_int4_kernel(self, *self._int4_shape(kernel_shape))

    def _number_for_files(self):
        if self.dtype_policy.quantization_mode == "float8":
            quantized.number_for_files(*float8_training.file_variables(self, self.bias))
        elif self.dtype_policy.quantization_mode == "awq":
            awq_weights.number_for_files(self)
        elif self.dtype_policy.quantization_mode == "gptq":
            quantized.number_for_files(self.bias, self.quantized_kernel, self.kernel_scale, self.kernel_zero,
                                       self.g_idx)
        elif self.dtype_policy.quantization_mode is not None:
            quantized.number_for_files(self._kernel, self.bias, self.kernel_scale, getattr(self, "kernel_zero", None),
                                       getattr(self, "g_idx", None))

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's ``quantize``: ``"int8"`` replaces the float kernel by its int8 values, quantized over the axes
        the product reduces (unless ``config`` gives a weight quantizer), and ``kernel_scale``. ``"int4"`` packs
        Keras's 2-D view of the kernel (``_int4_shape``) two values per byte along its columns, with a scale per
        column (``Int4QuantizationConfig(block_size=None)``) or, by default, a scale and a zero point per group of
        128 rows and column (``kernel_zero``, ``g_idx``); the policy becomes ``"int4/<block size or -1>_from_..."``.
        """
        layout = self._scale_layout if self.built else None
        config = quantized.checked_request(self, EinsumDense, mode, config, type_check)
        self.check_quantize_lora(config.mode)
        if config.mode == "int4":
            self._quantize_int4(config)
        elif config.mode == "float8":
            float8_training.quantize(self, self.kernel)
        elif config.mode == "awq":
            self._awq_kernel_shape = tuple(self.kernel.shape)
            awq_weights.prepare(self, *awq_weights.matrix_shape(self.kernel.shape, self._where()), config,
                                zero_name="zero_point")
        elif config.mode == "gptq":
            self._gptq_kernel_shape = tuple(self.kernel.shape)
            rows, self.gptq_unpacked_column_size = gptq.gptq_kernel_shape(self)
            gptq.prepare_layer(self, config, rows, self.gptq_unpacked_column_size)
        else:
            quantized.quantize_weight(self, EinsumDense, None, config, False, "kernel",
                                      tuple(layout.kernel_reduced), self._int8_build,
                                      adjust_scale=lambda scale: layout.forward(scale, layout.kernel))
        self._number_for_files()

    def _quantize_int4(self, config):
        from .. import quantizers
        self.quantization_config = config
        block_size = quantized.int4_block_size(self)
        kernel = self._kernel
        flat = kernel.value.reshape(self._int4_shape(kernel.shape))
        if block_size is None:
            # Keras quantizes the 2-D view per column itself, without the config's weight quantizer
            values, scale = quantizers.abs_max_quantize(flat, axis=0, value_range=(-8, 7), to_numpy=True)
            arrays = [scale.reshape(-1)]
        else:
            values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(flat, block_size,
                                                                                      to_numpy=True)
            arrays = [scale, zero]
        quantized.install_int4(self, kernel, values, arrays, block_size)

    def _int4_kernel(self, dtype):
        """The float kernel the int4 one stands for, in the kernel's shape."""
        _, columns = self._int4_shape(self._int4_kernel_shape)
        return quantized.int4_dequantized(self, columns, dtype).reshape(self._int4_kernel_shape)

    def _awq_kernel(self, dtype):
        """The float kernel the AWQ one stands for (its float kernel before calibration), in the kernel's
        shape."""
        columns = awq_weights.matrix_shape(self._awq_kernel_shape, self._where())[1]
        return awq_weights.kernel(self, columns, dtype).reshape(self._awq_kernel_shape)

    def _gptq_kernel(self, dtype):
        """The float kernel a GPTQ one stands for (``gpu_dl/gptq.py``), in the kernel's shape."""
        return gptq.dequantized_kernel(self, dtype).reshape(self._gptq_kernel_shape)

    def _int8_kernel(self, dtype):
        """The float kernel the int8 one stands for."""
        layout = self._scale_layout
        return quantized.dequantized(self._kernel.value, layout.backward(self.kernel_scale.value, layout.kernel),
                                     dtype)

    # ------------------------------------------------------------------ LoRA on a quantized kernel
    def _lora_weight_shape(self):
        return self._int4_kernel_shape if self.dtype_policy.quantization_mode == "int4" else self._kernel.shape

    def _lora_dequantized(self):
        mode = self.dtype_policy.quantization_mode
        return self._int8_kernel(self.compute_dtype) if mode == "int8" else self._int4_kernel(self.compute_dtype)

    def _lora_requantized(self, merged, mode, block_size):
        # Keras's: int4 per column of the 2-D view, int8 over the reduced axes with the scale laid out as built
        if mode == "int4":
            return lora.quantize_columns(merged.reshape(self._int4_shape(merged.shape)), mode, block_size)
        from ..quantizers import abs_max_quantize
        layout = self._scale_layout
        values, scale = abs_max_quantize(merged, axis=tuple(layout.kernel_reduced), to_numpy=True)
        return values, [layout.forward(scale, layout.kernel)]

    def _lora_plan(self, x):
        plan = self._plan(x.shape)
        if plan.weight_spec[-1] != plan.output_spec[-1]:
            raise ValueError(f"{self._where()}: LoRA on a quantized kernel multiplies lora_kernel_b along the "
                             f"output's last axis, so the kernel's last label must be the output's last one "
                             f"(equation {self.equation!r}).")
        return plan

    def _low_rank_input(self, x, a):
        plan = self._lora_plan(x)
        return _einsum(f"{plan.input_spec},{plan.weight_spec}->{plan.output_spec}", x, a)

    def _low_rank_input_backward(self, x, dh, a, want_a, want_x):
        plan = self._lora_plan(x)
        da = _einsum(f"{plan.input_spec},{plan.output_spec}->{plan.weight_spec}", x.astype(dh.dtype, copy=False),
                     dh) if want_a else None
        return da, (_input_gradient(plan, x.shape, dh, a) if want_x else None)

    def check_input_shape(self, shape):
        shape = tuple(shape)
        plan = self._plan(shape)
        # an int4 kernel is stored packed: the shape it stands for is the one to compare
        mode = self.dtype_policy.quantization_mode
        built = self._int4_kernel_shape if mode == "int4" else self._awq_kernel_shape if mode == "awq" else \
            self._gptq_kernel_shape if mode == "gptq" else \
            None if self.kernel is None else self.kernel.shape
        if built is not None and plan.kernel_shape != built:
            raise ValueError(f"{self._where()}: it was built for inputs like {self.input_spec} (kernel "
                             f"{built}); received shape {shape}, which needs a kernel "
                             f"{plan.kernel_shape}.")

    def compute_output_shape(self, input_shape):
        return self._plan(input_shape).output_shape

    def call(self, x, training=False):
        plan = self._plan(x.shape)
        equation = f"{plan.input_spec},{plan.weight_spec}->{plan.output_spec}"
        mode = self.dtype_policy.quantization_mode
        if mode is None:
            z = _einsum(equation, x, self.kernel.value)
        elif mode == "float8":
            z = float8_training.product(self, x, training, lambda a, b: _einsum(equation, a, b))
        elif mode == "int4":
            z = self._int4_product(equation, x)
        elif mode == "awq":
            z = _einsum(equation, x, self._awq_kernel(self.compute_dtype))
        elif mode == "gptq":
            z = _einsum(equation, x, self._gptq_kernel(self.compute_dtype))
        elif self.inputs_quantizer is None:
            # Keras's torch backend multiplies float inputs by the dequantized kernel
            z = _einsum(equation, x, self._int8_kernel(x.dtype))
        else:
            layout = self._scale_layout
            z = quantized.int8_forward(x, self._kernel.value, self.kernel_scale.value, self.inputs_quantizer,
                                       self.compute_dtype, lambda a, b: _einsum(equation, a, b),
                                       axis=tuple(layout.input_reduced),
                                       adjust_inputs_scale=lambda scale: layout.forward(scale, layout.input),
                                       pairs=layout.pairs, terms=layout.terms(x.shape, self._kernel.shape))
        if mode in ("int8", "int4"):
            z = self.add_low_rank_product(x, z)
        xp = array_module(z)
        z = xp.ascontiguousarray(z)      # with_bias adds in place and its kernel takes C-contiguous arrays
        bias = None if self.bias is None else self.bias.value
        if mode == "float8":
            bias = float8_training.bias_value(self, bias)
        want_z = self._wants_preactivation(training)     # on the GPU z is None where it is not wanted
        if bias is not None and all(b == o for b, o in zip(bias.shape[::-1], z.shape[::-1])):
            # The bias spans whole trailing axes: one fused bias-and-activation pass over (rows, bias.size).
            flat, y = self.activation.with_bias(z.reshape(-1, bias.size), bias.reshape(-1), want_z=want_z)
            z, y = (None if flat is None else flat.reshape(z.shape)), y.reshape(z.shape)
        else:
            if bias is not None:
                z += bias
            z, y = self.activation.with_bias(z, None, want_z=want_z)
        self._saved = (x, z, y, plan) if training else None
        self._preactivation = z if self.keep_preactivation else None     # the logits of a softmax fused into the loss
        return y

    def _int4_product(self, equation, x):
        """Keras's int4 product: the inputs times the dequantized kernel; with an inputs quantizer and one scale
        per column, the inputs quantized over the reduced axes (as floats) times it, divided by their scales."""
        kernel = self._int4_kernel(self.compute_dtype)
        if self.inputs_quantizer is None or self.kernel_zero is not None:
            return _einsum(equation, x, kernel)
        layout = self._scale_layout
        x, scale = self.inputs_quantizer(x, axis=tuple(layout.input_reduced))
        scale = layout.forward(scale, layout.input)
        return _einsum(equation, x.astype(self.compute_dtype), kernel) / scale.astype(self.compute_dtype)

    def backward(self, dy, through_activation=True):
        x, z, y, plan = self.saved()
        dz = self._activation_gradient(z, y, dy) if through_activation else dy
        mode = self.dtype_policy.quantization_mode
        operands = float8_training.backward(self, dz) if mode == "float8" else None
        # a quantized kernel takes no gradient; the inputs' goes through the dequantized kernel, as in Keras
        kernel = operands[1] if operands else self.kernel.value if mode is None else \
            self._int8_kernel(dz.dtype) if mode == "int8" else self._awq_kernel(dz.dtype) if mode == "awq" else \
            self._gptq_kernel(dz.dtype) if mode == "gptq" else \
            self._int4_kernel(dz.dtype)
        if self.trainable:
            if self.bias is not None:
                lead = dz.ndim - self.bias.value.ndim
                axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(self.bias.shape) if d == 1)
                dbias = sum_axes(dz, axes, keepdims=True).reshape(self.bias.shape)
                self.bias.grad = float8_training.bias_gradient(self, dbias) if operands else dbias
        if operands:
            # float8: the product's gradients with the fake-quantized operands and output gradient
            x, _, dz = operands
        if self.trainable and mode in (None, "float8"):
            self.kernel.grad = _einsum(f"{plan.input_spec},{plan.output_spec}->{plan.weight_spec}", x, dz)
        if mode in ("int8", "int4"):
            dx = _input_gradient(plan, x.shape, dz, kernel) if self.input_gradient_wanted else None
            return self.add_low_rank_backward(x, dz, dx)
        if not self.input_gradient_wanted:
            return None
        return _input_gradient(plan, x.shape, dz, kernel)

    def get_config(self):
        return {**super().get_config(), "output_shape": self.partial_output_shape, "equation": self.equation,
                "activation": activations.serialize(self.activation), "bias_axes": self.bias_axes,
                **self.weight_arguments_config(), "activity_regularizer": self._activity_config(),
                "quantization_config": quantized.serialized_config(self.quantization_config),
                **self.lora_config(), **({"gptq_unpacked_column_size": self.gptq_unpacked_column_size}
                                         if self.gptq_unpacked_column_size else {})}

    def _activity_config(self):
        from .. import regularizers
        return None if self.activity_regularizer is None else regularizers.serialize(self.activity_regularizer)

