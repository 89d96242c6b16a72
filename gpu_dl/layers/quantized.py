"""What the layers that ``quantize`` (Dense, EinsumDense, Embedding) share: checking the request as Keras does,
replacing a float weight by its quantized values and scales, the exact integer matrix product, and the int8
forward and input gradient of a kernel kept as int8 values with per-output-channel scales.

Keras's int8 forward quantizes the inputs per row (``abs_max_quantize`` over the last axis: int8 values and a
float scale per row), multiplies the int8 inputs by the int8 kernel with int32 accumulation, and divides the
int32 result, cast to the compute dtype, by ``kernel_scale * inputs_scale``. Its backward gives the inputs the
gradient through the dequantized kernel (``kernel / kernel_scale``); the int8 kernel and its scale take none.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..dtype_policies import QUANTIZATION_MODES, QuantizedDTypePolicy, check_quantization_mode


def default_config(mode):
    from .. import quantizers
    if mode == "awq":
        raise ValueError("For AWQ, you must pass an `AWQConfig` object in the `config` argument.")
    if mode == "float8":
        return quantizers.Float8QuantizationConfig()
    if mode == "gptq":
        raise ValueError("For GPTQ, you must pass a `GPTQConfig` object in the `config` argument.")
    return quantizers.Int4QuantizationConfig() if mode == "int4" else quantizers.Int8QuantizationConfig()


def resolve_config(mode, config, where):
    """The quantization config of a ``quantize(mode, config=...)`` call, as Keras resolves them: the mode's default
    config when none is given, the config's mode when no mode is; a ValueError for contradictions, unknown modes
    and the modes gpu_dl does not run."""
    from .. import quantizers
    if isinstance(config, str):
        mode, config = config, None
    if mode is not None:
        check_quantization_mode(mode, where)
    if config is None:
        if mode is None:
            raise ValueError("You must provide either `mode` or `config` to `quantize`.")
        return default_config(mode)
    if not isinstance(config, quantizers.QuantizationConfig):
        raise ValueError("Argument `config` must be an instance of `QuantizationConfig`. "
                         f"Received: config={config} (of type {type(config)})")
    if mode is not None and config.mode != mode:
        raise ValueError(f"Contradictory arguments: mode='{mode}' but config.mode='{config.mode}'")
    check_quantization_mode(config.mode, where)
    if config.mode == "awq" and not isinstance(config, quantizers.AWQConfig):
        raise ValueError(f"Mode 'awq' requires a valid `config` argument of type `AWQConfig`. Received: {type(config)}")
    if config.mode == "gptq" and not isinstance(config, quantizers.GPTQConfig):
        raise ValueError(f"Mode 'gptq' requires a valid `config` argument of type `GPTQConfig`. Received: "
                         f"{type(config)}")
    return config


def checked_request(layer, cls, mode, config, type_check):
    """The config of a layer's ``quantize`` call after Keras's checks (``resolve_config``,
    ``check_quantize_args``) and its refusal of subclasses (a NotImplementedError, which ``Model.quantize`` turns
    into a warning)."""
    config = resolve_config(mode, config, f"{cls.__name__} layer '{layer.name}'")
    check_quantize_args(layer, config.mode)
    if type_check and type(layer) is not cls:
        raise NotImplementedError(f"Layer {type(layer).__name__} does not have a `quantize()` method implemented.")
    return config


def int4_block_size(layer):
    """The rows of a layer's int4 groups: its config's block size, else its policy's (Keras's
    ``get_block_size_for_layer``); None where each output (or id) has one scale."""
    from ..quantizers import Int4QuantizationConfig
    if isinstance(layer.quantization_config, Int4QuantizationConfig):
        block_size = layer.quantization_config.block_size
    else:
        block_size = getattr(layer.dtype_policy, "block_size", None)
    return None if block_size in (None, -1) else block_size


def check_quantize_args(layer, mode):
    """Keras's refusals of ``quantize``: an unbuilt layer, one already quantized, float16 computations."""
    if not layer.built:
        raise ValueError(f"Cannot quantize a layer that isn't yet built. Layer '{layer.name}' (of type "
                         f"'{type(layer).__name__}') is not built yet.")
    if layer.dtype_policy.quantization_mode is not None:
        raise ValueError(f"Layer '{layer.name}' is already quantized with dtype_policy='{layer.dtype_policy.name}'. "
                         f"Received: mode={mode}")
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {QUANTIZATION_MODES}. Received: mode={mode}")
    if mode == "int8" and layer.compute_dtype == "float16":
        raise ValueError(f"Quantization mode='{mode}' doesn't work well with compute_dtype='float16'. Consider "
                         "loading model/layer with another dtype policy such as 'mixed_bfloat16' or "
                         "'mixed_float16' before calling `quantize()`.")


def check_layer_mode(layer, mode):
    """A ValueError where a layer is asked for a quantization mode gpu_dl runs for other layers only (its class's
    ``quantization_modes``); a NotImplementedError, Keras's, for float8 or GPTQ on a layer Keras does not train in
    float8 or quantize with GPTQ (``Model.quantize`` skips such a layer with a warning, as Keras does)."""
    supported = getattr(layer, "quantization_modes", ("int8",))
    if mode in ("float8", "awq", "gptq") and mode not in supported:
        raise NotImplementedError(f"Invalid quantization mode. Expected one of {tuple(supported)}. Received: "
                                  f"quantization_mode={mode}")
    if mode is not None and mode not in supported:
        raise ValueError(f"{type(layer).__name__} layer '{layer.name}': the quantization mode {mode!r} is not "
                         f"supported by gpu_dl for this layer (supported: {', '.join(supported)}).")


def quantize_weight(layer, cls, mode, config, type_check, attribute, axis, int8_build, adjust_scale=None):
    """Keras's ``quantize`` of a layer of class ``cls`` whose float weight ``attribute`` becomes int8 values with a
    scale per slice along the axes other than ``axis`` (the reduced one; ``config``'s weight quantizer where it
    gives one): after the checks, the float weight is dropped, the layer takes the policy
    ``"int8_from_<its policy>"``, and ``int8_build(shape)`` makes the int8 weight and its scale, which take the
    quantized values and the float weight's name scope; ``adjust_scale`` rearranges the scale (kept axes of size
    1 where reduced) into the variable's layout where that is more than a reshape."""
    from ..quantizers import AbsMaxQuantizer, QuantizationConfig
    config = checked_request(layer, cls, mode, config, type_check)
    check_layer_mode(layer, config.mode)
    # the variable itself: with LoRA enabled the attribute gives the merged weight, Keras quantizes the frozen one
    weight = layer.__dict__.get("_" + attribute) or getattr(layer, attribute)
    values, scale = QuantizationConfig.weight_quantizer_or_default(config, AbsMaxQuantizer(axis=axis))(
        weight.value, to_numpy=True)
    if adjust_scale is not None:
        scale = adjust_scale(scale)
    layer.quantization_config = config
    replace_weights(layer, [weight], QuantizedDTypePolicy(config.mode, layer.dtype_policy.name),
                    lambda: int8_build(tuple(values.shape)), [values, scale])


def replace_weights(layer, weights, policy, build, arrays):
    """The end of a layer's ``quantize``: its float ``weights`` are dropped, it takes ``policy``, and ``build()``
    makes the quantized variables, which take the float weights' name scope and, in order, the values ``arrays``
    holds (a None, or the end of the list, leaves a variable with the value its build gave it)."""
    scope = weights[0].path.rsplit("/", 1)[0]
    for weight in weights:
        layer._weights.remove(weight)
    layer.dtype_policy = policy
    for i, var in enumerate(build()):
        # the paths the float weights had: the model's name scope where the layer was built
        var.path = f"{scope}/{var.name}"
        if i < len(arrays) and arrays[i] is not None:
            var.assign(arrays[i].reshape(var.shape))


def build_int4_kernel(layer, rows, columns):
    """A layer's int4 kernel variables, as Keras makes them for a (rows, columns) kernel (Dense's; EinsumDense's
    2-D view): ``kernel`` packed (rows, ceil(columns / 2)) int8, ``kernel_scale`` per column or per group of rows
    and column, and for groups ``kernel_zero`` and ``g_idx`` (each row's group); the inputs quantizer is the
    config's, or none. Returns the variables made, in that order."""
    from ..quantizers import QuantizationConfig
    layer.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(layer.quantization_config, None)
    block_size = int4_block_size(layer)
    layer.kernel = layer.add_weight((rows, (columns + 1) // 2), "zeros", dtype="int8", trainable=False,
                                    name="kernel")
    scale_shape = (columns,) if block_size is None else (-(-rows // block_size), columns)
    layer.kernel_scale = layer.add_weight(scale_shape, "ones", trainable=False, name="kernel_scale")
    layer.kernel_zero = layer.g_idx = None
    if block_size is not None:
        layer.kernel_zero = layer.add_weight(scale_shape, "zeros", dtype="int8", trainable=False, name="kernel_zero")
        layer.g_idx = layer.add_weight((rows,), "zeros", dtype="float32", trainable=False, name="g_idx")
        layer.g_idx.assign(numpy.arange(rows, dtype="float32") // block_size)
    return tuple(v for v in (layer._kernel, layer.kernel_scale, layer.kernel_zero, layer.g_idx) if v is not None)


def install_int4(layer, weight, values, arrays, block_size):
    """The end of a layer's int4 ``quantize``: the float ``weight`` is dropped, the layer takes the policy
    ``"int4/<block size or -1>_from_<its policy>"``, and its ``_int4_build(shape)`` makes the int4 variables, the
    first taking ``values`` packed along the last axis and the next ones ``arrays`` (scale, zero point), all of them
    the float weight's name scope."""
    from ..quantizers import pack_int4
    replace_weights(layer, [weight], int4_policy(layer, block_size), lambda: layer._int4_build(tuple(weight.shape)),
                    [pack_int4(values, axis=-1)[0]] + list(arrays))


def int4_quantized(value, config, block_size, axis):
    """A float 2-D weight quantized to int4 as Keras does it over ``axis`` (0 or -1), before packing: ``(values,
    arrays)``, the int8 values in [-8, 7] and the weight's scale (one per slice along the other axis; ``config``'s
    weight quantizer where it gives one) or, with a ``block_size``, its scale and zero point per group of
    ``block_size`` along ``axis`` and slice, the groups laid out where ``axis`` was."""
    from .. import quantizers
    if block_size is None:
        quantizer = quantizers.QuantizationConfig.weight_quantizer_or_default(
            config, quantizers.AbsMaxQuantizer(axis=axis, value_range=(-8, 7), output_dtype="int8"))
        values, scale = quantizer(value, to_numpy=True)
        return values, [scale.reshape(-1)]
    # the grouped quantizer groups the rows: a weight reduced over its last axis goes through it transposed
    flip = axis in (-1, 1)
    values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(value.T if flip else value, block_size,
                                                                              to_numpy=True)
    return (values.T, [scale.T, zero.T]) if flip else (values, [scale, zero])


def int4_policy(layer, block_size):
    """The policy an int4 ``quantize`` gives a layer: ``"int4/<block size or -1>_from_<its policy>"``."""
    from ..dtype_policies import Int4DTypePolicy
    return Int4DTypePolicy(f"int4/{block_size or -1}", layer.dtype_policy.name)


def quantization_config_of(value, where):
    """A layer's ``quantization_config`` argument: None, a config, or Keras's serialized config."""
    from .. import quantizers
    if value is None or isinstance(value, quantizers.QuantizationConfig):
        return value
    if isinstance(value, dict):
        config = quantizers.deserialize(value)
        if isinstance(config, quantizers.QuantizationConfig):
            return config
    raise ValueError(f"{where}: `quantization_config` must be a keras.quantizers.QuantizationConfig (or its "
                     f"serialized form), got {value!r:.200}.")


def number_for_files(*variables):
    """Keras's weights files hold a quantized layer's kernel, bias (where it has one), kernel_scale (and an int4
    kernel's zero points and group ids) in that order, while its weights list the trainable bias first: the
    variables (None where the layer has none) take their places' keys."""
    for key, var in enumerate(v for v in variables if v is not None):
        var.h5_key = str(key)


def serialized_config(config):
    """A layer's ``quantization_config`` as Keras writes it in the layer's config (None stays None). AWQ's
    structure of layers serves the calibration alone and is written as None (Keras's recursion into the layers
    fails)."""
    from .. import quantizers
    serialized = quantizers.serialize(config)
    if isinstance(config, quantizers.AWQConfig):
        serialized["config"]["quantization_layer_structure"] = None
    return serialized


def _matmul(a, b):
    return a @ b


# A product of two int8 values is at most 128 * 128 = 2**14 in magnitude, so a sum of at most 1024 of them is an
# integer of magnitude <= 2**24: every partial sum a float32 product forms (in any order, fused or not) is exact.
# So is a GPU product that rounds its float32 inputs to TF32 (10 mantissa bits; an int8 value needs 7) before
# multiplying exactly and accumulating in float32.
EXACT_FLOAT32_TERMS = 1024


def _is_int8(a):
    return numpy.dtype(a.dtype) == numpy.int8


def integer_product(a, b, contract=_matmul, pairs=((-1, 0),), terms=None):
    """``contract(a, b)`` of integer arrays, exactly, as float64 integers.

    ``pairs`` are the (axis of a, axis of b) the contraction sums over together and ``terms`` the number of
    products in each output (the product of the summed sizes; by default that of the pairs' axes of ``a``). For
    int8 operands it runs as float32 products, exact while ``terms`` is at most
    ``EXACT_FLOAT32_TERMS``; above that, over blocks of the first pair's axis each within that bound, the
    blocks' exact results added in float64 (exact below 2**53). Other dtypes, and sums whose other axes alone
    exceed the bound, take one float64 product (exact while the partial sums stay below 2**53)."""
    if terms is None:
        terms = int(numpy.prod([a.shape[i] for i, _ in pairs]))
    axis_a, axis_b = pairs[0] if pairs else (0, 0)
    size = a.shape[axis_a] if pairs else 0
    step = EXACT_FLOAT32_TERMS // (terms // size) if size and terms else 0
    if not (_is_int8(a) and _is_int8(b)) or (terms > EXACT_FLOAT32_TERMS and step == 0):
        return contract(a.astype(numpy.float64), b.astype(numpy.float64))
    a32, b32 = a.astype(numpy.float32), b.astype(numpy.float32)
    if terms <= EXACT_FLOAT32_TERMS:
        return contract(a32, b32).astype(numpy.float64)
    axis_a, axis_b = axis_a % a.ndim, axis_b % b.ndim
    total = None
    for start in range(0, size, step):
        part = contract(a32[(slice(None),) * axis_a + (slice(start, start + step),)],
                        b32[(slice(None),) * axis_b + (slice(start, start + step),)])
        total = part.astype(numpy.float64) if total is None else total + part
    return total


def int8_forward(x, kernel, kernel_scale, inputs_quantizer, compute_dtype, contract=_matmul, axis=-1,
                 adjust_inputs_scale=None, pairs=((-1, 0),), terms=None):
    """Keras's int8 forward of ``x`` through an int8 ``kernel`` with per-output ``kernel_scale``: ``contract`` (the
    layer's product, a matmul by default) of the inputs quantized per row and the kernel, exact in int32, divided
    by the scales in ``compute_dtype``; without an inputs quantizer, the float inputs times the kernel. The inputs
    are quantized over ``axis`` (their reduced axes), and ``adjust_inputs_scale`` lays their scale out along the
    output's axes where that takes more than broadcasting.

    The integer product is ``integer_product``'s (``pairs`` and ``terms`` as there): NumPy's integer matmul is
    exact but does not use BLAS, and CuPy's cuBLAS has no int32 GEMM for these operands, while float32 products
    of int8 values over at most 1024 terms are exact and take half the bytes and a fraction of the time of
    float64 ones."""
    output_scale = kernel_scale
    if inputs_quantizer is None:
        y = contract(x, kernel.astype(x.dtype))
    else:
        x, inputs_scale = inputs_quantizer(x, axis=axis)
        if adjust_inputs_scale is not None:
            inputs_scale = adjust_inputs_scale(inputs_scale)
        output_scale = output_scale * inputs_scale
        y = integer_product(x, kernel, contract, pairs, terms).astype(numpy.int32)
    return y.astype(compute_dtype) / output_scale.astype(compute_dtype)


def dequantized(kernel, kernel_scale, compute_dtype):
    """The float kernel an int8 kernel stands for: ``kernel / kernel_scale`` (broadcast over the last axes)."""
    xp = backend.array_module(kernel)
    return kernel.astype(compute_dtype) / xp.asarray(kernel_scale).astype(compute_dtype)


def int4_dequantized(layer, columns, dtype):
    """The float 2-D kernel a layer's packed int4 one (``build_int4_kernel``) stands for, as Keras dequantizes
    it: per column ``values / scale``; in groups of rows ``(values - zero) * scale`` of each row's group."""
    from ..quantizers import unpack_int4
    values = unpack_int4(layer._kernel.value, columns, axis=-1)
    if layer.kernel_zero is None:
        return dequantized(values, layer.kernel_scale.value, dtype)
    xp = backend.array_module(values)
    groups = layer.g_idx.value.astype(numpy.int32)
    scale = xp.take(layer.kernel_scale.value, groups, axis=0)
    return ((values - xp.take(layer.kernel_zero.value, groups, axis=0).astype(scale.dtype)) * scale).astype(dtype)


class EinsumScaleLayout:
    """Where an einsum ``I,W->O``'s per-slice scales go, as Keras's ``_analyze_quantization_info`` works them out
    from the full specs (no ellipsis): the axes of the inputs and the kernel the product reduces, and the
    transpose, new axes and dropped axes that lay each operand's scale (kept axes of size 1 where reduced) out
    along the output's axes."""

    def __init__(self, input_spec, weight_spec, output_spec):
        self.input_reduced = [i for i, c in enumerate(input_spec) if c not in output_spec]
        self.kernel_reduced = [i for i, c in enumerate(weight_spec) if c not in output_spec]
        # the axes both operands sum over together, as integer_product takes them
        self.pairs = tuple((i, weight_spec.index(c)) for i, c in enumerate(input_spec)
                           if c in weight_spec and c not in output_spec)
        # Keras's place for a reduced axis with no free output axis left is the last place it used, starting from
        # where its search for the kernel's last label in the output ended
        index = output_spec.find(weight_spec[-1])
        self.input, index = self._layout(input_spec, output_spec, self.input_reduced, index)
        self.kernel, _ = self._layout(weight_spec, output_spec, self.kernel_reduced, index)

    def terms(self, input_shape, kernel_shape):
        """The number of products in each output element: the product of the sizes the einsum sums over."""
        sizes = [input_shape[i] for i in self.input_reduced]
        sizes += [kernel_shape[i] for i in self.kernel_reduced if i not in {j for _, j in self.pairs}]
        return int(numpy.prod(sizes))

    @staticmethod
    def _layout(spec, output_spec, reduced, index):
        expand = [i for i, c in enumerate(output_spec) if c not in spec]
        transpose = [spec.index(c) for c in output_spec if c in spec]
        squeeze = []
        for axis in reduced:
            # each reduced axis takes the place of an output axis the operand lacks, else it is dropped
            if expand:
                index = expand.pop(0)
            else:
                squeeze.append(axis)
            transpose.insert(index, axis)
        return (transpose, expand, squeeze), index

    @staticmethod
    def forward(scale, layout):
        """``scale`` laid out along the output's axes (Keras's ``_adjust_scale_for_quant``)."""
        transpose, expand, squeeze = layout
        xp = backend.array_module(scale)
        if transpose:
            scale = xp.transpose(scale, transpose)
        if expand:
            scale = xp.expand_dims(scale, tuple(expand)) if len(expand) > 1 else xp.expand_dims(scale, expand[0])
        if squeeze:
            scale = xp.squeeze(scale, axis=tuple(squeeze))
        return scale

    @staticmethod
    def backward(scale, layout):
        """The kernel's layout of a scale laid out along the output's axes (Keras's ``_adjust_scale_for_dequant``)."""
        transpose, expand, squeeze = layout
        xp = backend.array_module(scale)
        if squeeze:
            scale = xp.expand_dims(scale, tuple(squeeze)) if len(squeeze) > 1 else xp.expand_dims(scale, squeeze[0])
        if expand:
            scale = xp.squeeze(scale, axis=tuple(expand))
        if transpose:
            scale = xp.transpose(scale, sorted(range(len(transpose)), key=transpose.__getitem__))
        return scale
