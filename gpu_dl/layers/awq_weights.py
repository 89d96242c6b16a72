"""The variables of a layer quantized by AWQ (Dense, EinsumDense), as Keras 3 makes and names them, for a weight
seen as a ``(rows, columns)`` matrix (Dense's kernel; EinsumDense's reshaped to two axes):

- ``kernel`` (the attribute ``quantized_kernel``): uint8 ``(ceil(columns / 2), rows)``, the 4-bit values of the
  transposed weight packed two per byte along the columns;
- ``kernel_scale`` float32 and ``kernel_zero`` uint8 (named ``zero_point`` in an EinsumDense), ``(columns,
  groups)``;
- ``awq_scales`` float32 ``(rows,)`` and ``g_idx`` float32 ``(rows,)``, each row's group.

``quantize("awq", config)`` makes them beside the float weight, which the layer keeps computing with until the
model's calibration (``awq.awq_quantize``) fills them and drops it; a layer built with an AWQ policy
(``"awq/4/<group size>_from_float32"``, as a saved model's layers are) has them alone. Weights files hold them
in the order of Keras's loading: bias, kernel, kernel_scale, kernel_zero, awq_scales, g_idx (Keras 3.15 writes
its own files without kernel_zero, which its loading then refuses; gpu_dl writes all six).
"""
from __future__ import annotations


def group_size(layer):
    """The input channels per group of the layer's scales: its config's ``group_size``, else its policy's."""
    from ..dtype_policies import AWQDTypePolicy
    from ..quantizers import AWQConfig
    if isinstance(layer.quantization_config, AWQConfig):
        return layer.quantization_config.group_size
    if isinstance(layer.dtype_policy, AWQDTypePolicy):
        return layer.dtype_policy.group_size
    raise ValueError(f"{type(layer).__name__} layer '{layer.name}': for AWQ quantization, group_size must be "
                     "specified through AWQConfig or AWQDTypePolicy.")


def matrix_shape(kernel_shape, where):
    """Keras's (rows, columns) view of a kernel for AWQ (``gptq.matrix_view``, GPTQ's): a ValueError naming
    ``where`` for a kernel of neither 2 nor 3 axes."""
    from ..gptq import matrix_view
    view = matrix_view(kernel_shape)
    if view is None:
        raise ValueError(f"{where}: AWQ quantization only supports 2D or 3D kernels, got the kernel shape "
                         f"{tuple(kernel_shape)}.")
    return view


def build(layer, rows, columns, zero_name="kernel_zero"):
    """Make the layer's AWQ variables for a (rows, columns) weight, the zero points named ``zero_name``
    (EinsumDense's are ``zero_point`` in Keras); returns them in Keras's order."""
    from ..gptq import build_level_weights
    build_level_weights(layer, rows, columns, 4, group_size(layer), zero_name, scale_dtype="float32")
    layer.awq_scales = layer.add_weight((rows,), "ones", dtype="float32", trainable=False, name="awq_scales")
    layer.g_idx = layer.add_weight((rows,), "zeros", dtype="float32", trainable=False, name="g_idx")
    layer.is_awq_calibrated = True
    return layer.quantized_kernel, layer.kernel_scale, layer.kernel_zero, layer.awq_scales, layer.g_idx


def prepare(layer, rows, columns, config, zero_name="kernel_zero"):
    """``quantize("awq", config)``: the layer takes the policy ``"awq/4/<group size>_from_<its policy>"`` and its
    AWQ variables beside its float weight (``layer.kernel``), which it computes with until calibrated."""
    from ..dtype_policies import AWQDTypePolicy
    layer.quantization_config = config
    scope = layer.kernel.path.rsplit("/", 1)[0]
    layer.dtype_policy = AWQDTypePolicy(config.dtype_policy_string(), layer.dtype_policy.name)
    for var in build(layer, rows, columns, zero_name):
        var.path = f"{scope}/{var.name}"       # the float kernel's name scope, as replace_weights gives
    layer.is_awq_calibrated = False
    number_for_files(layer)


def calibrate(layer, weight, magnitudes):
    """Fill the layer's AWQ variables from its float ``weight`` as a (rows, columns) matrix and the largest
    magnitudes its inputs' rows reached, then drop the float kernel: the layer computes with the 4-bit one."""
    from .. import awq
    from ..quantizers import pack_int4
    config = layer.quantization_config
    values, scale, zero, awq_scales, g_idx = awq.quantize_matrix(
        weight.T, magnitudes, num_grid_points=config.num_grid_points, group_size=group_size(layer))
    for var, value in ((layer.quantized_kernel, pack_int4(values, axis=0, dtype="uint8")[0]),
                       (layer.kernel_scale, scale), (layer.kernel_zero, zero), (layer.awq_scales, awq_scales),
                       (layer.g_idx, g_idx)):
        var.assign(value)
    layer._weights.remove(layer.kernel)
    layer.kernel = layer.quantized_kernel
    layer.is_awq_calibrated = True
    number_for_files(layer)


def kernel(layer, columns, dtype):
    """The float (rows, columns) weight the layer computes with: its float kernel before calibration, else the
    dequantized 4-bit one (``awq.dequantized_kernel``)."""
    from .. import awq
    if not layer.is_awq_calibrated:
        return layer.kernel.value.reshape(-1, columns).astype(dtype, copy=False)
    return awq.dequantized_kernel(layer.quantized_kernel.value, layer.kernel_scale.value, layer.kernel_zero.value,
                                  layer.awq_scales.value, layer.g_idx.value, columns, dtype)


def number_for_files(layer):
    """The file keys of the layer's variables (see the module docstring); a float kernel not yet calibrated
    away is written under ``float_kernel``, which Keras's files do not have."""
    from .quantized import number_for_files as number
    bias = getattr(layer, "bias", None)
    number(bias if getattr(layer, "use_bias", bias is not None) else None, layer.quantized_kernel, layer.kernel_scale,
           layer.kernel_zero, layer.awq_scales, layer.g_idx)
    if not layer.is_awq_calibrated:
        layer.kernel.h5_key = "float_kernel"

