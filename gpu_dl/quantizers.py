"""Keras 3's ``keras.quantizers``: the quantizers, the quantization configs and the quantization functions.

The functions take NumPy or CuPy arrays and give arrays of the same module, computing what Keras computes:

- ``abs_max_quantize(x, axis)``: ``scale = 127 / (max|x| + epsilon)`` over ``axis`` (kept), in the input's
  float dtype, and ``clip(round(x * scale), -127, 127)`` as int8 (rounding half to even, as Keras's backends);
- ``abs_max_quantize_grouped_with_zero_point``: asymmetric quantization of a 2-D kernel in groups of rows;
- ``fake_quant_with_min_max_vars``: TensorFlow's fake quantization with nudged ranges, per tensor or per
  channel; on symbolic tensors it records an operation whose backward is Keras's gradient (the upstream
  gradient passes where the input lies within the range, and flows to ``min_vals``/``max_vals`` where it is
  clipped);
- ``compute_float8_scale``, ``compute_float8_amax_history``, ``quantize_and_dequantize``: the float8 scaling
  of delayed-scaling training. NumPy and CuPy have no float8 dtypes, so the cast to ``float8_e4m3fn`` or
  ``float8_e5m2`` rounds the value to the nearest of that format's values (ties to even), kept in the compute
  dtype: the result is the float8 cast's, value for value;
- ``pack_int4`` / ``unpack_int4``: two signed 4-bit values per byte along an axis (the first in the low nibble).

``AWQConfig`` is the AWQ mode's config (activation-aware 4-bit weights calibrated on data, ``gpu_dl/awq.py``);
``GPTQConfig`` configures Keras's GPTQ post-training quantization (the algorithm: ``gpu_dl/gptq.py``).
"""
from __future__ import annotations

import numpy

from . import backend
from .layers.keras_ops.base import KerasOperation
from .layers.symbolic import is_symbolic

__all__ = [
    "AWQConfig", "AbsMaxQuantizer", "Float8QuantizationConfig", "GPTQConfig", "Int4QuantizationConfig",
    "Int8QuantizationConfig", "QuantizationConfig", "Quantizer", "abs_max_quantize",
    "abs_max_quantize_grouped_with_zero_point",
    "compute_float8_amax_history", "compute_float8_scale", "deserialize", "fake_quant_with_min_max_vars", "get",
    "pack_int4", "quantize_and_dequantize", "serialize", "unpack_int4",
]

QUANTIZATION_MODES = ("int8", "float8", "int4", "gptq", "awq")

# (largest finite value, mantissa bits, smallest normal exponent) of Keras's float8 formats
FLOAT8_FORMATS = {"float8_e4m3fn": (448.0, 3, -6), "float8_e5m2": (57344.0, 2, -14)}


def _float_input(x, where):
    """``x`` as an array of its float dtype (integers and bools: floatx), with its module."""
    xp = backend.array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected an array of numbers, got dtype {x.dtype}.")
    if x.dtype.kind != "f":
        x = x.astype(backend.floatx())
    return xp, x


def _axes(axis, ndim, where):
    """``axis`` (an int or a sequence of ints, negative ones counting from the end) as a tuple of axes."""
    axes = (axis,) if isinstance(axis, (int, numpy.integer)) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, numpy.integer)) or not -ndim <= a < ndim:
            raise ValueError(f"{where}: axis {axis!r} is out of range for an input of rank {ndim}.")
        out.append(int(a) % ndim)
    return tuple(out)


class Quantizer:
    """Keras's ``Quantizer``: the base of quantizers; ``output_dtype`` is the quantized values' dtype."""

    def __init__(self, output_dtype="int8"):
        self.output_dtype = output_dtype

    def __call__(self, x):
        return x

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        raise NotImplementedError(f"{self} does not implement get_config()")


def abs_max_quantize(inputs, axis, value_range=(-127, 127), dtype="int8", epsilon=None, to_numpy=False):
    """``(quantized, scale)``: ``inputs`` scaled by ``value_range[1] / (max|inputs| + epsilon)`` over ``axis``
    (the scale keeps the reduced axes as size 1 and the inputs' float dtype), rounded, clipped to
    ``value_range`` and cast to ``dtype``. ``to_numpy=True`` computes on the host and returns arrays on the
    inputs' device, as Keras's does to save device memory."""
    if epsilon is None:
        epsilon = backend.epsilon()
    xp, x = _float_input(inputs, "abs_max_quantize")
    axes = _axes(axis, x.ndim, "abs_max_quantize")
    device_xp = xp
    if to_numpy:
        xp, x = numpy, backend.to_numpy(x)
    float_type = x.dtype.type
    # Python numbers join the arrays in their dtype, as in Keras's backends: the scale is computed in float32
    # for float32 inputs.
    scale = float_type(value_range[1]) / (xp.max(xp.abs(x), axis=axes, keepdims=True) + float_type(epsilon))
    outputs = xp.clip(xp.round(x * scale), value_range[0], value_range[1]).astype(dtype)
    if to_numpy:
        return device_xp.asarray(outputs), device_xp.asarray(scale)
    return outputs, scale


def abs_max_quantize_grouped_with_zero_point(inputs, block_size, value_range=(-8, 7), dtype="int8", epsilon=None,
                                             to_numpy=False):
    """``(quantized, scale, zero_point)`` of a 2-D ``(input_dim, output_dim)`` kernel quantized asymmetrically in
    groups of ``block_size`` rows (the last group zero-padded): per group and column
    ``scale = (max - min + epsilon) / (qmax - qmin)``, ``zero_point = clip(round(-min / scale) + qmin)`` (int8),
    ``quantized = clip(round(x / scale) + zero_point)``; ``scale`` and ``zero_point`` are
    ``(ceil(input_dim / block_size), output_dim)``. ``to_numpy`` computes on the host."""
    where = "abs_max_quantize_grouped_with_zero_point"
    if epsilon is None:
        epsilon = backend.epsilon()
    xp, x = _float_input(inputs, where)
    if x.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D (input_dim, output_dim) kernel, got shape {tuple(x.shape)}.")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, numpy.integer)) or block_size <= 0:
        raise ValueError(f"{where}: block_size must be a positive integer, got {block_size!r}.")
    device_xp = xp
    if to_numpy:
        xp, x = numpy, backend.to_numpy(x)
    float_type = x.dtype.type
    input_dim, output_dim = x.shape
    groups = -(-input_dim // block_size)
    padded = xp.concatenate([x, xp.zeros((groups * block_size - input_dim, output_dim), x.dtype)], axis=0)
    padded = padded.reshape(groups, block_size, output_dim)
    qmin, qmax = value_range
    low = padded.min(axis=1, keepdims=True)
    scale = (padded.max(axis=1, keepdims=True) - low + float_type(epsilon)) / float_type(qmax - qmin)
    zero_point = xp.clip(xp.round(-low / scale) + float_type(qmin), qmin, qmax)
    outputs = xp.clip(xp.round(padded / scale) + zero_point, qmin, qmax).astype(dtype)
    outputs = outputs.reshape(groups * block_size, output_dim)[:input_dim]
    results = (outputs, scale[:, 0], zero_point[:, 0].astype("int8"))
    return tuple(device_xp.asarray(r) for r in results) if to_numpy else results


class AbsMaxQuantizer(Quantizer):
    """Keras's ``AbsMaxQuantizer``: ``abs_max_quantize`` over the axis given to the call (else the deprecated
    ``axis`` of the constructor, else -1) with ``value_range``, ``epsilon`` and ``output_dtype``."""

    def __init__(self, axis=None, value_range=(-127, 127), epsilon=None, output_dtype="int8"):
        super().__init__(output_dtype=output_dtype)
        self.axis = None if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
        self.value_range = tuple(value_range)
        self.epsilon = backend.epsilon() if epsilon is None else epsilon
        if output_dtype == "int8" and (self.value_range[0] < -128 or self.value_range[1] > 127):
            raise ValueError("Quantizer with output_dtype='int8' requires value_range to be within the interval "
                             f"[-128, 127]. Received: value_range={value_range}")

    def __call__(self, x, axis=None, to_numpy=False):
        if axis is None:
            axis = self.axis if self.axis is not None else -1
        return abs_max_quantize(x, axis, self.value_range, self.output_dtype, self.epsilon, to_numpy)

    def get_config(self):
        config = {"value_range": self.value_range, "epsilon": self.epsilon, "output_dtype": self.output_dtype}
        if self.axis is not None:
            config["axis"] = self.axis
        return config


# ---------------------------------------------------------------- fake quantization
def _nudged_range(min_vals, max_vals, num_bits, narrow_range, xp):
    """TensorFlow's nudged ``(min, max, scale, inverse scale)`` of a range, in at least float32."""
    dtype = numpy.result_type(min_vals.dtype, numpy.float32)
    low, high = min_vals.astype(dtype), max_vals.astype(dtype)
    quant_max = (1 << num_bits) - 1
    quant_min = 1 if narrow_range else 0
    steps = dtype.type(quant_max - quant_min)
    scale = (high - low) / steps
    inverse = steps / (high - low)
    zero_point = xp.round(xp.clip(dtype.type(quant_min) - low / scale, quant_min, quant_max))
    return (dtype.type(quant_min) - zero_point) * scale, (dtype.type(quant_max) - zero_point) * scale, scale, \
        inverse


def _fake_quant_arrays(x, min_vals, max_vals, num_bits, narrow_range):
    xp = backend.array_module(x, min_vals, max_vals)
    nudged_min, nudged_max, scale, inverse = _nudged_range(xp.asarray(min_vals), xp.asarray(max_vals), num_bits,
                                                           narrow_range, xp)
    half = nudged_min.dtype.type(0.5)
    quant_zero = xp.floor(-nudged_min * inverse + half)
    shifted = xp.clip(x.astype(nudged_min.dtype), nudged_min, nudged_max) - nudged_min
    return (xp.floor(shifted * inverse - quant_zero + half) * scale).astype(x.dtype), nudged_min, nudged_max


def _fake_quant_backward(dy, x, min_vals, max_vals, num_bits, narrow_range, axis):
    """Keras's gradients ``(dx, dmin, dmax)`` of fake quantization: ``dy`` where ``x`` lies in the nudged range,
    and the sums of ``dy`` where it is at or below the nudged minimum (above the maximum) over all axes but
    ``axis``, in the shapes of ``min_vals`` and ``max_vals``."""
    xp = backend.array_module(dy, x)
    min_vals, max_vals = xp.asarray(min_vals), xp.asarray(max_vals)
    nudged_min, nudged_max, _, _ = _nudged_range(min_vals, max_vals, num_bits, narrow_range, xp)
    zero = dy.dtype.type(0)
    dx = xp.where((x >= nudged_min) & (x <= nudged_max), dy, zero)
    axes = tuple(i for i in range(dy.ndim) if i != axis) if axis is not None else None
    dmin = xp.where(x <= nudged_min, dy, zero).sum(axis=axes).reshape(min_vals.shape)
    dmax = xp.where(x >= nudged_max, dy, zero).sum(axis=axes).reshape(max_vals.shape)
    return dx, dmin.astype(min_vals.dtype), dmax.astype(max_vals.dtype)


class FakeQuantWithMinMaxVars(KerasOperation):
    """``fake_quant_with_min_max_vars`` on symbolic tensors: ``(inputs, min_vals, max_vals)`` in, the fake-quantized
    inputs out; its backward gives the inputs', minima's and maxima's gradients."""

    arity = 3
    casts_inputs = False
    keras_module = "keras.src.quantizers.quantizers"
    config_keys = ("num_bits", "narrow_range", "axis")

    def __init__(self, num_bits=8, narrow_range=False, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_bits, self.narrow_range, self.axis = int(num_bits), bool(narrow_range), axis

    def get_config(self):
        # Keras's operation takes no name: its files hold the settings alone (the entry keeps the name)
        config = super().get_config()
        del config["name"]
        return config

    def result_dtype(self, tensors, arguments):
        return tensors[0].dtype if arguments[0] is None else backend.floatx()

    def scalar_operand(self, value):
        return numpy.float32(value)

    def constant_dtype(self, array):
        return None

    def forward_function(self, x, min_vals, max_vals):
        return _fake_quant_arrays(x, min_vals, max_vals, self.num_bits, self.narrow_range)[0]

    def backward_function(self, dy, operands, y):
        x, min_vals, max_vals = operands
        axis = None if self.axis is None else self.axis % x.ndim
        return _fake_quant_backward(dy, x, min_vals, max_vals, self.num_bits, self.narrow_range, axis)


def fake_quant_with_min_max_vars(inputs, min_vals, max_vals, num_bits=8, narrow_range=False, axis=None):
    """Keras's fake quantization: ``inputs`` clamped to the nudged ``[min_vals, max_vals]``, rounded to one of
    ``2**num_bits`` levels (``2**num_bits - 1`` with ``narrow_range``) and mapped back to floats, per tensor (scalar
    ranges) or per channel along ``axis``. On symbolic tensors it records an operation that trains (its gradient
    passes through within the range and reaches ``min_vals`` and ``max_vals`` where the inputs are clipped)."""
    if is_symbolic(inputs) or is_symbolic(min_vals) or is_symbolic(max_vals):
        return FakeQuantWithMinMaxVars(num_bits, narrow_range, axis).apply(inputs, min_vals, max_vals)
    xp, x = _float_input(inputs, "fake_quant_with_min_max_vars")
    if axis is not None:
        _axes(axis, x.ndim, "fake_quant_with_min_max_vars")
    floats = [xp.asarray(v, dtype=numpy.float32) if isinstance(v, (int, float)) else xp.asarray(v)
              for v in (min_vals, max_vals)]
    return _fake_quant_arrays(x, floats[0], floats[1], int(num_bits), bool(narrow_range))[0]


# ---------------------------------------------------------------- float8
def compute_float8_scale(amax, scale, dtype_max, margin=0):
    """The next float8 scale of delayed scaling: ``1 / ((dtype_max / amax) / 2**margin)``, the old ``scale``
    where ``amax`` is not positive and finite."""
    xp = backend.array_module(amax, scale)
    amax, scale = xp.asarray(amax), xp.asarray(scale)
    inverse = scale.dtype.type(1) / scale
    with numpy.errstate(divide="ignore", invalid="ignore"):     # a zero or infinite amax keeps the old scale
        factor = amax.dtype.type(dtype_max) / amax / amax.dtype.type(2 ** margin)
    factor = xp.where(amax > 0, factor, inverse)
    factor = xp.where(xp.isfinite(amax), factor, inverse)
    return factor.dtype.type(1) / factor


def compute_float8_amax_history(x, amax_history):
    """The amax history rolled one step to the left with ``max|x|`` (in the history's dtype) at its start."""
    xp = backend.array_module(x, amax_history)
    history = xp.roll(xp.asarray(amax_history), -1)
    history[0] = xp.abs(xp.asarray(x)).max().astype(history.dtype)
    return history


def round_to_float8(x, quantized_dtype):
    """``x`` (a float array) rounded to the nearest value of the float8 format ``quantized_dtype`` (ties to
    even, as a cast to it rounds), kept in ``x``'s dtype; values beyond its range stay as they are (callers
    clip first)."""
    if quantized_dtype not in FLOAT8_FORMATS:
        raise ValueError(f"Expected a float8 dtype, one of {sorted(FLOAT8_FORMATS)}; got {quantized_dtype!r}.")
    _, mantissa_bits, min_exponent = FLOAT8_FORMATS[quantized_dtype]
    xp = backend.array_module(x)
    magnitude = xp.abs(x)
    _, exponent = xp.frexp(magnitude)
    # frexp's exponent is one above the binade's; below the normal range the spacing is the subnormals'.
    exponent = xp.maximum(exponent.astype(numpy.int32) - 1, min_exponent) - mantissa_bits
    rounded = xp.ldexp(xp.round(xp.ldexp(magnitude, -exponent)), exponent)
    return xp.where(magnitude == magnitude, xp.copysign(rounded, x), x).astype(x.dtype)


def quantize_and_dequantize(inputs, scale, quantized_dtype, compute_dtype):
    """``inputs / scale`` clipped to the float8 format's range, rounded to it, and multiplied back by ``scale``,
    in ``compute_dtype``."""
    xp = backend.array_module(inputs, scale)
    if quantized_dtype not in FLOAT8_FORMATS:
        raise ValueError(f"quantize_and_dequantize: quantized_dtype must be one of {sorted(FLOAT8_FORMATS)}, got "
                         f"{quantized_dtype!r}.")
    compute = numpy.dtype(compute_dtype)
    largest = compute.type(FLOAT8_FORMATS[quantized_dtype][0])
    scale = xp.asarray(scale).astype(compute)
    x = xp.clip(xp.asarray(inputs) / scale, -largest, largest)
    return round_to_float8(x.astype(compute), quantized_dtype) * scale


# ---------------------------------------------------------------- int4 packing
def _check_int4_dtype(dtype):
    if dtype not in ("int8", "uint8"):
        raise ValueError(f"Expected dtype to be 'int8' or 'uint8', but got '{dtype}'.")


def pack_int4(arr, axis=0, dtype="int8"):
    """``(packed, packed_shape, orig_len)``: the 4-bit values of ``arr`` (an ``dtype`` array) two per byte along
    ``axis`` (an odd length padded with a zero): the first of each pair in the low nibble, the second in the high
    one; ``orig_len`` is the axis's length before packing."""
    _check_int4_dtype(dtype)
    xp = backend.array_module(arr)
    if numpy.dtype(arr.dtype).name != dtype:
        raise TypeError(f"Expected {dtype} tensor for packing, got {numpy.dtype(arr.dtype).name}.")
    axis = _axes(axis, arr.ndim, "pack_int4")[0]
    front = xp.moveaxis(arr, axis, 0)
    length = front.shape[0]
    if length % 2:
        front = xp.concatenate([front, xp.zeros((1,) + front.shape[1:], front.dtype)], axis=0)
    mask = numpy.dtype(dtype).type(0x0F)
    # The high nibble's shift wraps around in 8 bits, which gives the byte's two's-complement value.
    packed = (front[::2] & mask) | ((front[1::2] & mask) << numpy.dtype(dtype).type(4))
    packed = xp.moveaxis(packed.astype(dtype), 0, axis)
    return packed, tuple(packed.shape), length


def unpack_int4(packed, orig_len, axis=0, dtype="int8"):
    """The ``dtype`` array ``pack_int4`` packed: the nibbles of ``packed`` along ``axis`` (signed in ``[-8, 7]`` for
    int8), interleaved low then high and cut to ``orig_len``."""
    _check_int4_dtype(dtype)
    xp = backend.array_module(packed)
    if numpy.dtype(packed.dtype).name not in ("int8", "uint8"):
        raise TypeError(f"Expected int8 or uint8 tensor for unpacking, got {packed.dtype}")
    axis = _axes(axis, packed.ndim, "unpack_int4")[0]
    front = xp.moveaxis(packed, axis, 0)
    kind = front.dtype.type
    low = front & kind(0x0F)
    high = (front >> kind(4)) & kind(0x0F)
    if dtype == "int8":
        # nibbles 8..15 are the negative values -8..-1
        low, high = (low ^ kind(8)) - kind(8), (high ^ kind(8)) - kind(8)
    unpacked = xp.stack([low.astype(dtype), high.astype(dtype)], axis=1)
    unpacked = unpacked.reshape((-1,) + front.shape[1:])[:orig_len]
    return xp.moveaxis(unpacked, 0, axis)


# ---------------------------------------------------------------- quantization configs
class QuantizationConfig:
    """Keras's ``QuantizationConfig``: the base of the configs ``quantize`` takes, with the weights' and the
    activations' quantizers; subclasses give the ``mode``."""

    def __init__(self, weight_quantizer=None, activation_quantizer=None):
        self.weight_quantizer = weight_quantizer
        self.activation_quantizer = activation_quantizer

    @property
    def mode(self):
        raise NotImplementedError("Subclasses must implement this property. Do not instantiate QuantizationConfig "
                                  "directly.")

    def get_config(self):
        return {"weight_quantizer": serialize(self.weight_quantizer),
                "activation_quantizer": serialize(self.activation_quantizer)}

    @classmethod
    def from_config(cls, config):
        return cls(weight_quantizer=deserialize(config.get("weight_quantizer")),
                   activation_quantizer=deserialize(config.get("activation_quantizer")))

    @staticmethod
    def weight_quantizer_or_default(config, default):
        if config is not None and config.weight_quantizer is not None:
            return config.weight_quantizer
        return default

    @staticmethod
    def activation_quantizer_or_default(config, default):
        return config.activation_quantizer if config is not None else default


class Int8QuantizationConfig(QuantizationConfig):
    """The int8 mode's config; the activations' quantizer is ``AbsMaxQuantizer()`` by default."""

    def __init__(self, weight_quantizer=None, activation_quantizer="default"):
        if isinstance(activation_quantizer, str) and activation_quantizer == "default":
            activation_quantizer = AbsMaxQuantizer()
        super().__init__(weight_quantizer, activation_quantizer)
        if weight_quantizer is not None and weight_quantizer.output_dtype != "int8":
            raise ValueError("Int8QuantizationConfig requires a weight_quantizer with output_dtype='int8'. "
                             f"Received: output_dtype={weight_quantizer.output_dtype}")

    @property
    def mode(self):
        return "int8"


class Int4QuantizationConfig(QuantizationConfig):
    """The int4 mode's config: ``block_size`` rows per group of sub-channel scales (None or -1: one scale per
    output channel); no activation quantizer by default."""

    def __init__(self, weight_quantizer=None, activation_quantizer="default", block_size=128):
        if isinstance(activation_quantizer, str) and activation_quantizer == "default":
            activation_quantizer = None
        super().__init__(weight_quantizer, activation_quantizer)
        if block_size is not None and block_size != -1 and block_size <= 0:
            raise ValueError(f"block_size must be None, -1, or a positive integer. Received: block_size={block_size}")
        self.block_size = block_size
        if block_size is not None and block_size > 0 and (weight_quantizer is not None or
                                                          self.activation_quantizer is not None):
            raise ValueError("Int4 sub-channel quantization (block_size > 0) does not support custom quantizers. "
                             "Either set block_size to None or -1 for per-channel quantization, or remove the "
                             f"custom quantizer arguments. Received: block_size={block_size}")
        if weight_quantizer is not None:
            if tuple(weight_quantizer.value_range) != (-8, 7):
                raise ValueError("Int4QuantizationConfig requires a weight_quantizer with value_range=(-8, 7). "
                                 f"Received: value_range={weight_quantizer.value_range}")
            if weight_quantizer.output_dtype != "int8":
                raise ValueError("Int4QuantizationConfig requires a weight_quantizer with output_dtype='int8'. "
                                 f"Received: output_dtype={weight_quantizer.output_dtype}")

    @property
    def mode(self):
        return "int4"

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}

    @classmethod
    def from_config(cls, config):
        return cls(weight_quantizer=deserialize(config.get("weight_quantizer")),
                   activation_quantizer=deserialize(config.get("activation_quantizer")),
                   block_size=config.get("block_size"))


class Float8QuantizationConfig(QuantizationConfig):
    """The float8 mode's config (float8 training takes no custom quantizers)."""

    def __init__(self):
        super().__init__(None, None)

    @property
    def mode(self):
        return "float8"

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls()


class _CalibratedConfig(QuantizationConfig):
    """What Keras's GPTQ and AWQ configs share: the calibration ``dataset`` and ``tokenizer`` (not written in the
    config, as Keras writes them as None), the ``quantization_layer_structure``, and the mode and policy string
    made of the subclass's ``algorithm``, ``weight_bits`` and ``group_size``."""

    algorithm = None

    def _keep_calibration(self, dataset, tokenizer, quantization_layer_structure):
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.quantization_layer_structure = quantization_layer_structure

    @property
    def mode(self):
        return self.algorithm

    def dtype_policy_string(self):
        """The mode of the policy a quantized layer takes, ``"<algorithm>/<weight_bits>/<group_size>"``."""
        return f"{self.algorithm}/{self.weight_bits}/{self.group_size}"

    def _config(self, **settings):
        # the data and tokenizer serve the calibration alone: Keras writes them as None
        return {"dataset": None, "tokenizer": None, **settings,
                "quantization_layer_structure": self.quantization_layer_structure}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class AWQConfig(_CalibratedConfig):
    """Keras's ``AWQConfig``: AWQ (activation-aware weight quantization), 4-bit weights whose input channels are
    scaled by a power of their calibration activations' largest magnitudes before group-wise quantization
    (``gpu_dl/awq.py``).

    ``dataset`` (an iterable of strings, which ``tokenizer.tokenize`` turns into ids, or of numerical arrays) and
    ``tokenizer`` serve the calibration only and are not written in the config. ``num_samples`` windows of
    ``sequence_length`` ids are taken from it; ``group_size`` input channels share a scale and zero point (-1: one
    per output channel); ``num_grid_points`` exponents in (0, 1] are tried besides 0.
    ``quantization_layer_structure`` is ``{"pre_block_layers": [...], "sequential_blocks": [...]}``: the layers
    the calibration ids go through first, then the blocks whose Dense and EinsumDense layers are calibrated one
    block after the other (None: the model's ``get_quantization_layer_structure("awq")``)."""

    algorithm = "awq"

    def __init__(self, dataset, tokenizer, *, weight_bits=4, num_samples=128, sequence_length=512, group_size=128,
                 num_grid_points=20, quantization_layer_structure=None):
        super().__init__()
        if weight_bits != 4:
            raise ValueError(f"AWQ only supports 4-bit quantization. Received weight_bits={weight_bits}.")
        for name, value in (("num_samples", num_samples), ("sequence_length", sequence_length)):
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if not _is_int(group_size) or group_size < -1 or group_size == 0:
            raise ValueError("Invalid group_size. Supported values are -1 (per-channel) or a positive integer, "
                             f"but got {group_size!r}.")
        if not _is_int(num_grid_points) or num_grid_points <= 0:
            raise ValueError(f"num_grid_points must be a positive integer. Received: num_grid_points="
                             f"{num_grid_points!r}")
        if quantization_layer_structure is not None and not isinstance(quantization_layer_structure, dict):
            raise ValueError("quantization_layer_structure must be None or a dict with the keys 'pre_block_layers' "
                             "and 'sequential_blocks'. Received: quantization_layer_structure="
                             f"{quantization_layer_structure!r:.200}")
        self._keep_calibration(dataset, tokenizer, quantization_layer_structure)
        self.weight_bits = weight_bits
        self.num_samples = num_samples
        self.sequence_length = sequence_length
        self.group_size = group_size
        self.num_grid_points = num_grid_points

    def get_config(self):
        return self._config(weight_bits=self.weight_bits, num_samples=self.num_samples,
                            sequence_length=self.sequence_length, group_size=self.group_size,
                            num_grid_points=self.num_grid_points)


class GPTQConfig(_CalibratedConfig):
    """Keras's ``GPTQConfig``: the settings of GPTQ post-training quantization (``model.quantize("gptq",
    config=...)``, ``gpu_dl/gptq.py``). ``dataset`` (an iterable of strings, which ``tokenizer`` turns into token
    ids, or of token-id arrays) gives the calibration samples: ``num_samples`` windows of ``sequence_length``
    tokens. Weights are quantized to ``weight_bits`` (2, 3, 4 or 8) unsigned levels with a scale and zero point
    per output and group of ``group_size`` inputs (-1: one group), ``symmetric`` or not, ``per_channel`` (else
    one scale per group for the whole kernel); ``hessian_damping`` is the fraction of the Hessian's mean diagonal
    added to it, ``activation_order`` quantizes the inputs of largest Hessian diagonal first.
    ``quantization_layer_structure`` is ``{"pre_block_layers": [...], "sequential_blocks": [...]}``: the layers
    the token ids go through first, then the blocks whose Dense and EinsumDense layers are quantized one block
    after the other. The dataset and tokenizer are not part of the config Keras writes."""

    algorithm = "gptq"

    def __init__(self, dataset, tokenizer, *, weight_bits=4, num_samples=128, per_channel=True, sequence_length=512,
                 hessian_damping=0.01, group_size=128, symmetric=False, activation_order=False,
                 quantization_layer_structure=None):
        super().__init__()
        if weight_bits not in [2, 3, 4, 8]:
            raise ValueError(f"Unsupported weight_bits {weight_bits}. Supported values are 2, 3, 4, and 8.")
        if num_samples <= 0:
            raise ValueError("num_samples must be a positive integer.")
        if sequence_length <= 0:
            raise ValueError("sequence_length must be a positive integer.")
        if hessian_damping < 0 or hessian_damping > 1:
            raise ValueError("hessian_damping must be between 0 and 1.")
        if group_size < -1 or group_size == 0:
            raise ValueError("Invalid group_size. Supported values are -1 (whole-tensor) or a positive integer, "
                             f"but got {group_size}.")
        self._keep_calibration(dataset, tokenizer, quantization_layer_structure)
        self.num_samples = num_samples
        self.per_channel = per_channel
        self.sequence_length = sequence_length
        self.hessian_damping = hessian_damping
        self.weight_bits = weight_bits
        self.group_size = group_size
        self.symmetric = symmetric
        self.activation_order = activation_order

    def get_config(self):
        return self._config(weight_bits=self.weight_bits, num_samples=self.num_samples,
                            per_channel=self.per_channel, sequence_length=self.sequence_length,
                            hessian_damping=self.hessian_damping, group_size=self.group_size,
                            symmetric=self.symmetric, activation_order=self.activation_order)


def _is_int(value):
    return isinstance(value, (int, numpy.integer)) and not isinstance(value, bool)


# ---------------------------------------------------------------- the catalogue
_CLASSES = (Quantizer, AbsMaxQuantizer, QuantizationConfig, Int8QuantizationConfig, Int4QuantizationConfig,
            Float8QuantizationConfig, AWQConfig, GPTQConfig)
_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({"quantizer": Quantizer, "abs_max_quantizer": AbsMaxQuantizer,
                 "quantization_config": QuantizationConfig, "int8_quantization_config": Int8QuantizationConfig,
                 "int4_quantization_config": Int4QuantizationConfig,
                 "float8_quantization_config": Float8QuantizationConfig, "awq_config": AWQConfig,
                 "gptq_config": GPTQConfig})


def serialize(quantizer):
    """Keras's serialized form of a quantizer or quantization config (None stays None)."""
    if quantizer is None:
        return None
    return {"module": "keras.quantizers", "class_name": type(quantizer).__name__, "config": quantizer.get_config(),
            "registered_name": None}


def deserialize(config, custom_objects=None):
    """A quantizer or quantization config from Keras's serialized form (or a class name)."""
    if config is None:
        return None
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = (custom_objects or {}).get(name) or _BY_NAME.get(name)
    if cls is None:
        raise ValueError(f"Could not interpret quantizer identifier: {config!r}. Known: {sorted(_BY_NAME)}.")
    inner = dict(config.get("config") or {})
    for key in ("value_range", "axis"):
        if isinstance(inner.get(key), list):
            inner[key] = tuple(inner[key])
    return cls.from_config(inner)


def get(identifier, **kwargs):
    """A quantizer from a name (a class, made with ``kwargs``), a serialized dict, or a quantizer (as is)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    obj = _BY_NAME.get(identifier) if isinstance(identifier, str) else identifier
    if isinstance(obj, type):
        return obj(**kwargs)
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret quantizer identifier: {identifier}")
