"""AWQ (activation-aware weight quantization) as Keras 3 computes it, on NumPy or CuPy arrays.

A layer's weight matrix ``W`` is taken as ``[out_features, in_features]`` (a Dense kernel transposed). The
calibration keeps, per input channel, the largest magnitude its activations reached (``x_max``, 1 where it stayed
below 1e-8). For each exponent ``r = i / num_grid_points`` (``i = 0 .. num_grid_points``) the channel scales are
``s = max(x_max ** r, 1e-4)`` divided by ``sqrt(max(s) * min(s))``; ``W * s`` is quantized to 4 bits (asymmetric,
unsigned, one scale and zero point per output row and group of ``group_size`` input channels, or per row with
-1), dequantized, divided by ``s`` again, and the exponent kept is the first whose error ``mean((W - W_hat) ** 2 *
x_max ** 2)`` is the smallest. The stored weight is then the 4-bit values of ``W * s`` (packed two per byte along
the output rows), their scales and zero points, ``s`` (``awq_scales``) and each input channel's group (``g_idx``);
a layer computes with ``((values - zero) * scale).T / s[:, None]``.

All arithmetic is float32 as in Keras, with its rounding (half to even) and its guards: a group whose values are
all equal gets the range ``[v - 1, v + 1]``; the zero point ``round(-min / scale)`` is cast to uint8 as Keras's
torch backend casts it (modulo 256 for the rare group whose values are all positive).
"""
from __future__ import annotations

import numpy

from . import backend
from .gptq import dequantize_groups, group_count, quantize_with_zero_point

MAXQ = 15.0        # the largest 4-bit value


def group_index(in_features, group_size, xp=numpy):
    """Each input channel's group as float32 (Keras's ``g_idx``): ``arange // group_size``, zeros for -1."""
    if group_size == -1:
        return xp.zeros((in_features,), dtype=numpy.float32)
    return (xp.arange(in_features) // group_size).astype(numpy.float32)


def quantization_parameters(weights, group_size):
    """``(scale, zero)`` of 4-bit asymmetric quantization of ``weights`` [out, in], each ``[out, groups]``: float32
    scales ``(max - min) / 15`` and uint8 zero points ``round(-min / scale)`` of each row's groups (the last group
    padded with zeros, as Keras pads it)."""
    xp = backend.array_module(weights)
    out_features, in_features = weights.shape
    groups = group_count(in_features, group_size)
    if groups > 1:
        pad = (-in_features) % group_size
        if pad:
            weights = xp.concatenate([weights, xp.zeros((out_features, pad), dtype=weights.dtype)], axis=1)
        grouped = weights.reshape(out_features, groups, group_size)
        low, high = grouped.min(axis=2), grouped.max(axis=2)
    else:
        low, high = weights.min(axis=1, keepdims=True), weights.max(axis=1, keepdims=True)
    flat = low == high
    low = xp.where(flat, low - 1, low)
    high = xp.where(flat, high + 1, high)
    scale = (high - low) / numpy.float32(MAXQ)
    scale = xp.where(scale <= 0, numpy.float32(1e-8), scale).astype(numpy.float32)
    # Keras casts the rounded float to uint8: negative values wrap around modulo 256
    zero = (xp.round(-low / scale).astype(numpy.int64) & 0xFF).astype(numpy.uint8)
    return scale, zero


def _per_column(params, g_idx):
    xp = backend.array_module(params)
    return xp.take(params, g_idx.astype(numpy.int32), axis=1)


def quantize(weights, scale, zero, g_idx):
    """The 4-bit values (float32 in [0, 15]) of ``weights`` [out, in] with each input channel's group's scale and
    zero point: ``clip(round(weights / scale + zero), 0, 15)``."""
    return quantize_with_zero_point(weights, _per_column(scale, g_idx), _per_column(zero, g_idx), MAXQ)


# the float32 weights 4-bit values [out, in] stand for: ``(values - zero) * scale`` of each channel's group
dequantize = dequantize_groups


def search_scales(weights, activation_magnitudes, num_grid_points=20, group_size=-1):
    """The per-input-channel scales AWQ's grid search picks for ``weights`` [out, in] (float32) given each input
    channel's largest activation magnitude (see the module docstring)."""
    xp = backend.array_module(weights)
    weights = weights.astype(numpy.float32)
    x_max = xp.asarray(activation_magnitudes).astype(numpy.float32)
    x_max = xp.where(x_max < numpy.float32(1e-8), numpy.float32(1), x_max)
    weight_of_error = xp.square(x_max)
    g_idx = group_index(weights.shape[1], group_size, xp)
    best_loss = best = None
    for i in range(num_grid_points + 1):
        ratio = i / num_grid_points
        scales = xp.ones_like(x_max) if ratio == 0 else xp.power(x_max, numpy.float32(ratio))
        scales = xp.maximum(scales, numpy.float32(1e-4))
        scales = scales / xp.maximum(xp.sqrt(scales.max() * scales.min()), numpy.float32(1e-8))
        scaled = weights * scales
        scale, zero = quantization_parameters(scaled, group_size)
        restored = dequantize(quantize(scaled, scale, zero, g_idx), scale, zero, g_idx) / scales
        loss = float(xp.mean(xp.square(weights - restored) * weight_of_error))
        if best is None or loss < best_loss:
            best_loss, best = loss, scales
    return best


def quantize_matrix(weights, activation_magnitudes, num_grid_points=20, group_size=-1):
    """AWQ of ``weights`` [out, in]: ``(values, scale, zero, awq_scales, g_idx)``, the uint8 4-bit values [out,
    in] of ``weights * awq_scales``, their float32 scales and uint8 zero points [out, groups], the float32 channel
    scales [in] and each channel's group [in] (float32)."""
    xp = backend.array_module(weights)
    weights = weights.astype(numpy.float32)
    awq_scales = search_scales(weights, activation_magnitudes, num_grid_points, group_size)
    scaled = weights * awq_scales
    scale, zero = quantization_parameters(scaled, group_size)
    g_idx = group_index(weights.shape[1], group_size, xp)
    values = quantize(scaled, scale, zero, g_idx).astype(numpy.uint8)
    return values, scale, zero, awq_scales, g_idx


def dequantized_kernel(packed, scale, zero, awq_scales, g_idx, units, dtype):
    """The float [in, units] kernel AWQ's stored variables stand for: the values unpacked from ``packed``
    [ceil(units / 2), in], dequantized, transposed and divided by ``awq_scales`` per input channel."""
    from .quantizers import unpack_int4
    values = unpack_int4(packed, units, axis=0, dtype="uint8")
    kernel = dequantize(values, scale, zero, g_idx).T / awq_scales[:, None]
    return kernel.astype(dtype)


class ActivationStatistics:
    """The running per-channel maximum of a layer's inputs' magnitudes over the calibration batches (Keras's
    ``AWQ.update_activation_magnitudes``): inputs ``[..., channels]`` are flattened to rows."""

    def __init__(self, channels, where):
        self.channels = channels
        self.where = where
        self.magnitudes = numpy.zeros((channels,), dtype=numpy.float32)
        self.num_samples = 0

    def update(self, inputs):
        xp = backend.array_module(inputs)
        if inputs.size == 0:
            raise ValueError(f"{self.where}: the calibration inputs are empty.")
        if inputs.size % self.channels:
            raise ValueError(f"{self.where}: calibration inputs of shape {tuple(inputs.shape)} do not split into rows "
                             f"of {self.channels} input channels.")
        rows = xp.abs(inputs.reshape(-1, self.channels).astype(numpy.float32))
        self.magnitudes = numpy.maximum(self.magnitudes, backend.to_numpy(rows.max(axis=0)))
        self.num_samples += rows.shape[0]


def awq_quantize(config, structure):
    """Keras's ``awq_quantize``, after ``quantization_calibration.resolve_structure`` has checked the request: the
    config's calibration windows go through the structure's pre-block layers and blocks (``quantization_calibration
    .apply_layerwise``), each block's Dense and EinsumDense layers that ``quantize("awq")`` prepared recording their
    inputs' largest magnitudes per channel (``ActivationStatistics``) and then filling their AWQ variables
    (``layers/awq_weights.calibrate``)."""
    from . import quantization_calibration
    from .layers import awq_weights
    windows = quantization_calibration.get_dataloader(config.tokenizer, config.sequence_length, config.dataset,
                                                      num_samples=config.num_samples)

    def statistics(layer):
        return ActivationStatistics(layer.awq_scales.shape[0], f"{type(layer).__name__} layer '{layer.name}'")

    def finish(layer, stats):
        xp = backend.array_module(layer.kernel.value)
        awq_weights.calibrate(layer, layer.kernel.value.reshape(stats.channels, -1), xp.asarray(stats.magnitudes))
    quantization_calibration.apply_layerwise(
        windows, config.num_samples, structure, lambda layer: getattr(layer, "is_awq_calibrated", True) is False,
        statistics, ActivationStatistics.update, finish)
