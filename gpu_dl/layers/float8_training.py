"""Keras 3's float8 training of Dense and EinsumDense (``quantize("float8")``, the policy ``"float8_from_<dtype>"``).

The kernel stays a trainable float weight; six float32 variables, trainable and marked
``overwrite_with_gradient``, hold the delayed scaling: ``inputs_scale``, ``kernel_scale`` and
``outputs_grad_scale`` (shape ``()``, ones) and their ``*_amax_history`` (shape ``(amax_history_length,)``,
zeros), made in that order (inputs, kernel, outputs' gradient; each scale before its history).

Forward: the inputs and the kernel are each fake-quantized to float8 e4m3 with their scales
(``quantize_and_dequantize``: divided by the scale, clipped to +-448, rounded to e4m3, multiplied back), and
multiplied (the layer's matmul or einsum). Under a float32 policy the bias is added rounded to bfloat16, as Keras
adds it.

Backward, with ``dz`` the gradient of the product: ``dz`` is fake-quantized to float8 e5m2 with
``outputs_grad_scale`` (range +-57344), and the inputs' and the kernel's gradients are the product's gradients
taken with the fake-quantized operands (the fake quantization itself passes gradients straight through). The
bias's gradient is that of its bfloat16 rounding: the sum of ``dz`` rounded to bfloat16. Each scale variable's
"gradient" is its next value, ``compute_float8_scale(max(history), scale, format max)``, and each history's is the
history rolled one step with ``max|operand|`` (the inputs, the kernel, ``dz``) at its start; the optimizer assigns
them (``Variable.overwrite_with_gradient``). Inputs' and kernel's next values come from a forward in training,
the outputs' gradient's from the backward, as Keras computes them.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..dtype_policies import QuantizedFloat8DTypePolicy

E4M3, E5M2 = "float8_e4m3fn", "float8_e5m2"
# the formats' largest finite values (Keras's ml_dtypes.finfo(...).max)
FORMAT_MAX = {E4M3: 448.0, E5M2: 57344.0}
# (scale, history) names of the three fake-quantized operands, in Keras's order of creation
OPERANDS = ("inputs", "kernel", "outputs_grad")
VARIABLE_NAMES = tuple(name for operand in OPERANDS for name in (f"{operand}_scale", f"{operand}_amax_history"))


def build(layer):
    """Add the six float8 variables to ``layer`` (attributes of their names); returns them in order. The history
    length is the layer's policy's ``amax_history_length``, else Keras's default (1024)."""
    length = getattr(layer.dtype_policy, "amax_history_length",
                     QuantizedFloat8DTypePolicy.default_amax_history_length)
    made = []
    for name in VARIABLE_NAMES:
        history = name.endswith("history")
        var = layer.add_weight(shape=(length,) if history else (), initializer="zeros" if history else "ones",
                               dtype="float32", trainable=True, autocast=False, overwrite_with_gradient=True,
                               name=name)
        setattr(layer, name, var)
        made.append(var)
    return made


def quantize(layer, kernel):
    """The float8 end of a layer's ``quantize`` (after Keras's checks): the float8 variables join the layer under
    the float ``kernel``'s name scope, and the policy becomes ``"float8_from_<its policy>"``."""
    from ..quantizers import Float8QuantizationConfig
    scope = kernel.path.rsplit("/", 1)[0]
    for var in build(layer):
        var.path = f"{scope}/{var.name}"
    layer.quantization_config = Float8QuantizationConfig()
    layer.dtype_policy = QuantizedFloat8DTypePolicy("float8", layer.dtype_policy.name)


def file_variables(layer, bias):
    """The variables of a float8 layer in the order of Keras's weights files: kernel, bias (None where the layer
    has none), then the float8 ones."""
    return [layer.kernel, bias] + [getattr(layer, name) for name in VARIABLE_NAMES]


def _next_state(layer, operand, values, dtype_max):
    """The next scale and amax history of ``operand`` (a name of ``OPERANDS``) whose current values are
    ``values``, as arrays of the variables' shapes."""
    scale, history = getattr(layer, f"{operand}_scale").value, getattr(layer, f"{operand}_amax_history").value
    from .. import quantizers     # quantizers sit above layers (their operations are layers' kind): import late
    xp = backend.array_module(history)
    new_scale = xp.asarray(quantizers.compute_float8_scale(history.max(axis=0), scale, dtype_max),
                           dtype=numpy.float32).reshape(scale.shape)
    return new_scale, quantizers.compute_float8_amax_history(values, history)


def _qdq(layer, operand, values, fmt):
    from .. import quantizers
    return quantizers.quantize_and_dequantize(values, getattr(layer, f"{operand}_scale").value, fmt,
                                              layer.compute_dtype)


def product(layer, x, training, contract):
    """``contract(x, kernel)`` of the e4m3 fake-quantized inputs and kernel; in training it keeps the operands and
    the inputs' and kernel's next scales and histories for ``backward``."""
    kernel = layer.kernel.value
    xq, kq = _qdq(layer, "inputs", x, E4M3), _qdq(layer, "kernel", kernel, E4M3)
    layer._float8_saved = None
    if training:
        layer._float8_saved = (xq, kq, _next_state(layer, "inputs", x, FORMAT_MAX[E4M3]) +
                               _next_state(layer, "kernel", kernel, FORMAT_MAX[E4M3]))
    return contract(xq, kq)


def bias_value(layer, bias):
    """The bias as Keras adds it after a float8 product: rounded to bfloat16 under a float32 policy."""
    if bias is None or layer.compute_dtype != "float32":
        return bias
    return round_to_bfloat16(bias)


def bias_gradient(layer, grad):
    """The bias's gradient through its rounding (``bias_value``): the gradient rounded to bfloat16."""
    return round_to_bfloat16(grad) if layer.compute_dtype == "float32" else grad


def backward(layer, dz):
    """The operands of a float8 layer's product gradients: ``(inputs, kernel, dz)`` fake-quantized (the first two
    as the forward used them, ``dz`` to e5m2). Where the layer trains, the float8 variables take their next values
    as their gradients."""
    if getattr(layer, "_float8_saved", None) is None:
        raise RuntimeError(f"{type(layer).__name__} layer '{layer.name}': backward needs a call with "
                           "training=True first.")
    xq, kq, state = layer._float8_saved
    dzq = _qdq(layer, "outputs_grad", dz, E5M2)
    if layer.trainable:
        state = state + _next_state(layer, "outputs_grad", dz, FORMAT_MAX[E5M2])
        for name, value in zip(VARIABLE_NAMES, state):
            getattr(layer, name).grad = value
    return xq, kq, dzq


def round_to_bfloat16(x):
    """float32 ``x`` rounded to the nearest bfloat16 value (ties to even), as a cast to bfloat16 and back gives
    it; NaN stays NaN. NumPy and CuPy have no bfloat16: the rounding works on the float32 bits."""
    xp = backend.array_module(x)
    x = xp.ascontiguousarray(x, dtype=numpy.float32)
    bits = x.view(numpy.uint32)
    rounded = (bits + (numpy.uint32(0x7FFF) + ((bits >> numpy.uint32(16)) & numpy.uint32(1)))) \
        & numpy.uint32(0xFFFF0000)
    return xp.where(xp.isnan(x), x, rounded.view(numpy.float32))
