"""GPTQ post-training quantization with Keras 3.15's API (``model.quantize("gptq", config=GPTQConfig(...))``).

For a layer computing ``x @ W`` (W of shape (rows, columns)), calibration inputs give the Hessian of the
layer's squared output error, ``H = 2/N * sum x x^T`` over the N input rows seen (a running mean, as Keras
streams it). Inputs never seen (a zero diagonal) get a diagonal of 1; ``hessian_damping * mean(diag H)`` is added
to the diagonal. The columns of ``W^T`` (one per input) are then quantized one after the other, in blocks of 128:
each column is rounded to its group's levels and its error, divided by the error-feedback matrix's diagonal
entry, is subtracted from the block's later columns along that matrix's row; after a block, the block's errors
reach all later columns in one matrix product.

The error-feedback matrix is where Keras 3.15 and the paper's reference differ: the reference uses the upper
Cholesky factor of ``H^-1`` (``gptq_quantize_matrix(..., cholesky=True)``), the exact sequential update (each later
column's correction through the inverse Hessian of the columns still free); Keras uses ``H^-1`` itself, which
leaves a larger output error. ``model.quantize("gptq")`` runs the reference's; ``GPTQ.quantize_and_correct_layer(
cholesky=False)`` runs Keras's, value for value.

Keras 3.15's own model-level pass gathers no Hessian: it hooks the layers' ``call`` while the layers it just
made GPTQ layers are called through ``quantized_call``, so its Hessians stay zero (the identity after damping)
and its weights are round-to-nearest in GPTQ's groups. gpu_dl's pass gives the layers their calibration inputs.

Levels are unsigned, ``0 .. 2**bits - 1``: per output and group of ``group_size`` inputs (in the order
quantized) a scale and zero point from the group's min and max (``compute_quantization_parameters``), taken from
the weights as they stand at the start of the block (the reference's choice, and Keras's). With
``activation_order`` the inputs are quantized in decreasing order of the damped Hessian's diagonal, and the
group indices (``g_idx``) map each input to its group.

The computations run on the host in float32, as Keras's do (the Cholesky factor in float64).
"""
from __future__ import annotations

import math

import numpy

from .backend.device import array_module, to_numpy


def compute_quantization_parameters(x, *, bits, symmetric=False, per_channel=False, group_size=-1,
                                    compute_dtype="float32"):
    """Keras's ``compute_quantization_parameters`` (unsigned levels): ``(scale, zero, maxq)`` of a
    (out_features, in_features) weight, scale and zero of shape (out_features, groups): per output row
    (``per_channel``) or one for the whole tensor, in groups of ``group_size`` columns where that is positive
    and ``per_channel``. A constant range is widened by one on each side; the zero point is uint8 (a range whose
    zero point would fall outside 0..255 takes in zero, where Keras's wraps around)."""
    x = numpy.asarray(x, dtype=compute_dtype)
    if x.ndim < 2 or x.size == 0:
        raise ValueError(f"compute_quantization_parameters: the weight must be a non-empty matrix, got shape "
                         f"{x.shape}.")
    out_features, in_features = x.shape[:2]
    n_groups = -(-in_features // group_size) if per_channel and group_size > 0 else 1
    if n_groups > 1:
        pad = n_groups * group_size - in_features
        grouped = numpy.pad(x, [(0, 0), (0, pad)]).reshape(out_features, n_groups, group_size)
        low, high = grouped.min(axis=2), grouped.max(axis=2)
    else:
        flat = x.reshape(out_features, -1) if per_channel else x.reshape(1, -1)
        low, high = flat.min(axis=1), flat.max(axis=1)
    if symmetric:
        high = numpy.maximum(numpy.abs(low), high)
        low = numpy.where(low < 0, -high, low)
    same = low == high
    low, high = numpy.where(same, low - 1, low), numpy.where(same, high + 1, high)
    maxq = numpy.asarray(2 ** bits - 1, compute_dtype)
    scale = ((high - low) / maxq).astype(compute_dtype)
    scale = numpy.where(scale <= 0, numpy.asarray(1e-8, compute_dtype), scale)
    if symmetric:
        zero = numpy.full_like(scale, (maxq + 1) / 2)
    else:
        zero = numpy.round(-low / scale)
        # Keras stores the zero point as uint8 and wraps one outside 0..255 (a range above zero, or far below):
        # there the range is widened to take in zero, as the reference quantizer always does
        wrapped = (zero < 0) | (zero > 255)
        if wrapped.any():
            low, high = numpy.where(wrapped, numpy.minimum(low, 0), low), numpy.where(wrapped, numpy.maximum(high, 0),
                                                                                     high)
            scale = numpy.where(wrapped, ((high - low) / maxq).astype(compute_dtype), scale)
            zero = numpy.round(-low / scale)
    if n_groups == 1:
        scale = numpy.broadcast_to(scale.reshape(-1, 1), (out_features, 1)).copy()
        zero = numpy.broadcast_to(zero.reshape(-1, 1), (out_features, 1)).copy()
    # Keras casts the float zero point straight to uint8
    return scale, zero.astype(numpy.uint8), maxq


def quantize_with_zero_point(x, scale, zero, maxq):
    """The levels ``clip(round(x / scale + zero), 0, maxq)`` (floats) of NumPy or CuPy arrays, as Keras's
    quantizers compute them for GPTQ and AWQ; a zero scale counts as 1e-8."""
    xp = array_module(x)
    safe = xp.where(scale == 0, scale.dtype.type(1e-8), scale)
    return xp.clip(xp.round(x / safe + zero.astype(scale.dtype)), 0, maxq)


def dequantize_with_zero_point(q, scale, zero):
    """``scale * (q - zero)`` (float levels ``q``)."""
    return scale * (q - zero.astype(scale.dtype))


def dequantize_groups(levels, scale, zero, g_idx):
    """The float weights (out, in) that ``levels`` (out, in) stand for, each input column with its group's
    (``g_idx``, float) scale and zero point of ``scale`` and ``zero`` (out, groups): ``(levels - zero) * scale``;
    NumPy or CuPy arrays."""
    xp = array_module(scale)
    groups = g_idx.astype(numpy.int32)
    return dequantize_with_zero_point(levels.astype(scale.dtype), xp.take(scale, groups, axis=1),
                                      xp.take(zero, groups, axis=1))


def _stable_permutation(metric):
    """The order of ``metric`` descending, ties kept in index order (Keras adds ``index / n * 1e-12`` first)."""
    n = metric.shape[0]
    jittered = metric + (numpy.arange(n, dtype=numpy.float32) / numpy.float32(n)) * numpy.float32(1e-12)
    return numpy.argsort(-jittered, kind="stable")


def gptq_quantize_matrix(weights_transpose, inv_hessian, *, blocksize=128, group_size=-1, activation_order=False,
                         order_metric=None, compute_scale_zero=None, cholesky=False):
    """GPTQ's quantization of ``weights_transpose`` (out_features, in_features) with error feedback through
    ``inv_hessian`` (in_features, in_features), ``H^-1``: itself (Keras), or with ``cholesky`` its upper Cholesky
    factor, taken after the activation order's permutation (the reference).
    ``compute_scale_zero(w)`` gives ``(scale, zero, maxq)`` of a slice of columns (each (out_features, 1)).
    Returns ``(levels, scale, zero, g_idx)``: the int32 levels in the original column order, the scale and zero
    point per output and group (groups in the order quantized), and each input column's group as float32."""
    if compute_scale_zero is None:
        raise ValueError("gptq_quantize_matrix: `compute_scale_zero` is required.")
    w = numpy.array(weights_transpose, dtype=numpy.float32)
    hinv = numpy.asarray(inv_hessian, dtype=numpy.float32)
    in_features = w.shape[1]
    if hinv.shape != (in_features, in_features):
        raise ValueError(f"gptq_quantize_matrix: `inv_hessian` must be ({in_features}, {in_features}) for weights "
                         f"of shape {w.shape}, got {hinv.shape}.")
    perm = None
    if activation_order:
        if order_metric is None:
            metric = 1.0 / (numpy.diagonal(hinv) + numpy.float32(1e-12))
        else:
            metric = numpy.asarray(order_metric, dtype=numpy.float32)
            metric = numpy.where(numpy.isfinite(metric), metric, numpy.float32(0))
        perm = _stable_permutation(metric.astype(numpy.float32))
        w, hinv = w[:, perm], hinv[perm][:, perm]
    if cholesky:
        hinv = upper_cholesky(inv_hessian if perm is None else numpy.asarray(inv_hessian)[perm][:, perm])
    group = in_features if group_size == -1 else group_size
    levels = numpy.zeros(w.shape, dtype=numpy.int32)
    scales, zeros = [], []
    params = None
    for start in range(0, in_features, blocksize):
        end = min(start + blocksize, in_features)
        block = w[:, start:end].copy()
        errors = numpy.zeros_like(block)
        for j in range(end - start):
            column = start + j
            if column % group == 0 or j == 0:
                # a new group's levels (and, as Keras, again at each block's start for the group in progress),
                # from the group's weights as they stand at the start of this block
                first = column - column % group
                params = compute_scale_zero(w[:, first:min(first + group, in_features)])
                scales.append(params[0])
                zeros.append(params[1])
            scale, zero, maxq = params
            q = quantize_with_zero_point(block[:, j:j + 1], scale, zero, maxq)
            levels[:, column] = q[:, 0].astype(numpy.int32)
            error = (block[:, j] - dequantize_with_zero_point(q, scale, zero)[:, 0]) / hinv[column, column]
            errors[:, j] = error
            block[:, j + 1:] -= numpy.outer(error, hinv[column, column + 1:end])
        w[:, end:] -= errors @ hinv[start:end, end:]
    g_idx = (numpy.arange(in_features, dtype=numpy.int32) / group).astype(numpy.float32)
    if perm is not None:
        inverse = numpy.argsort(perm)
        g_idx, levels = g_idx[inverse], levels[:, inverse]
    return levels, numpy.concatenate(scales, axis=1), numpy.concatenate(zeros, axis=1), g_idx


def damped_hessian(hessian, damping):
    """Keras's damping of a GPTQ Hessian: a zero diagonal entry (an input never seen) becomes 1, and
    ``damping * mean(diagonal)`` is added to the diagonal."""
    h = numpy.array(hessian, dtype=numpy.float32)
    diagonal = numpy.diagonal(h).copy()
    diagonal[diagonal == 0] = 1
    diagonal = diagonal + numpy.float32(damping) * diagonal.mean(dtype=numpy.float32)
    numpy.fill_diagonal(h, diagonal)
    return h


def inverse_hessian(hessian, dtype="float32"):
    """``H^-1`` of a damped Hessian, computed in ``dtype`` (Keras's: float32)."""
    return numpy.linalg.inv(numpy.asarray(hessian, dtype=dtype))


def upper_cholesky(inverse):
    """The upper factor ``U`` of ``H^-1 = U^T U`` (computed in float64), as float32: the reference's
    error-feedback matrix."""
    try:
        return numpy.linalg.cholesky(numpy.asarray(inverse, dtype=numpy.float64)).T.astype(numpy.float32)
    except numpy.linalg.LinAlgError:
        raise ValueError("GPTQ: the damped Hessian of the calibration inputs is not positive definite; raise "
                         "GPTQConfig's `hessian_damping`.") from None


def layer_blocksize(group_size, rows):
    """The columns quantized per block for a layer: Keras's 128 where each group's parameters are computed once
    (groups that tile 128, or one group of at most 128 rows). Keras recomputes a group's parameters at each
    block's start, which for other sizes gives more parameters than its variables hold (and fails): there the
    block is the smallest multiple of the group (all rows for one group) of at least 128 columns."""
    group = rows if group_size == -1 else group_size
    return max(1, math.ceil(128 / group)) * group if 128 % group else 128


class GPTQ:
    """The GPTQ state of one layer (Dense, or EinsumDense as a 2-D kernel): its Hessian from the inputs
    ``update_hessian_with_batch`` is given, and ``quantize_and_correct_layer`` quantizes it (as Keras's class of
    the same name)."""

    def __init__(self, layer, config):
        self.original_layer = layer
        self.config = config
        self.rows, self.columns = gptq_kernel_shape(layer)
        self.num_samples = 0
        self.hessian = numpy.zeros((self.rows, self.rows), dtype=numpy.float32)

    def update_hessian_with_batch(self, input_batch):
        """Adds the rows of ``input_batch`` (any rank >= 2, the last axis the layer's inputs) to the running
        mean ``2/N * sum x x^T``."""
        if input_batch is None:
            raise ValueError("GPTQ: the input tensor cannot be None.")
        x = to_numpy(input_batch)
        if x.ndim < 2:
            raise ValueError(f"GPTQ: the input tensor must have rank >= 2 (got rank {x.ndim}).")
        if x.size == 0:
            raise ValueError("GPTQ: the input tensor cannot be empty.")
        x = x.reshape(-1, x.shape[-1]).astype(numpy.float32)
        if x.shape[1] != self.rows:
            raise ValueError(f"GPTQ: Hessian dimensions ({self.rows}) do not match input features ({x.shape[1]}).")
        gram = x.T @ x
        gram = (gram + gram.T) / numpy.float32(2)
        total = self.num_samples + x.shape[0]
        if self.num_samples > 0:
            self.hessian = self.hessian * numpy.float32(self.num_samples / total)
        self.hessian = self.hessian + numpy.float32(2.0 / total) * gram
        self.num_samples = total

    def quantize_and_correct_layer(self, blocksize=None, cholesky=True):
        """Quantizes the layer's kernel from the Hessian gathered so far and installs the levels, scales, zero
        points and group indices in the layer (``install_gptq``). ``blocksize`` None: ``layer_blocksize``;
        ``cholesky``: the reference's error feedback, else Keras's (see the module docstring)."""
        from . import quantizers
        config = self.config
        kernel = to_numpy(self.original_layer.kernel.value).astype(numpy.float32).reshape(self.rows, self.columns)
        hessian = damped_hessian(self.hessian, config.hessian_damping)

        def scale_zero(w):
            return compute_quantization_parameters(w, bits=config.weight_bits, symmetric=config.symmetric,
                                                   per_channel=config.per_channel, group_size=config.group_size)
        if blocksize is None:
            blocksize = layer_blocksize(config.group_size, self.rows)
        levels, scale, zero, g_idx = gptq_quantize_matrix(
            kernel.T, inverse_hessian(hessian, "float64" if cholesky else "float32"), blocksize=blocksize,
            group_size=config.group_size,
            activation_order=config.activation_order, order_metric=numpy.diagonal(hessian),
            compute_scale_zero=scale_zero, cholesky=cholesky)
        levels = levels.astype(numpy.uint8)
        if config.weight_bits == 4:
            levels = quantizers.pack_int4(levels, axis=0, dtype="uint8")[0]
        install_gptq(self.original_layer, levels, scale, zero, g_idx)

    def free(self):
        self.hessian = None


# ---------------------------------------------------------------- the layers' GPTQ weights
def gptq_kernel_shape(layer, shape=None):
    """``(rows, columns)``: the 2-D view GPTQ quantizes (``matrix_view``) of a layer's float kernel (or of a kernel
    of ``shape``): Dense's, EinsumDense's of 2 or 3 axes; a TypeError for other layers and kernels."""
    if shape is None:
        kernel = layer.__dict__.get("_kernel")
        shape = kernel.shape if kernel is not None and getattr(layer, "gptq_quantizes", False) else ()
    view = matrix_view(shape)
    if view is None:
        raise TypeError(f"Unsupported layer type for GPTQ: {type(layer).__name__} with a kernel of shape "
                        f"{tuple(shape)}.")
    return view


def matrix_view(shape):
    """Keras's (rows, columns) view of a kernel for GPTQ and AWQ: a 2-D kernel as it is; a 3-D one split at its
    largest axis, (in, heads * head_dim) where that comes first (a query/key/value projection), else (heads *
    head_dim, out) (an attention output); None for other ranks."""
    shape = tuple(shape)
    if len(shape) == 2:
        return shape
    if len(shape) == 3:
        if shape.index(max(shape)) == 0:
            return shape[0], shape[1] * shape[2]
        return shape[0] * shape[1], shape[2]
    return None


def group_count(rows, group_size):
    """The groups of ``group_size`` rows (-1: one) over ``rows`` that share a scale and zero point (GPTQ's and
    AWQ's)."""
    return 1 if group_size == -1 else math.ceil(rows / group_size)


def build_level_weights(layer, rows, columns, bits, group_size, zero_name, scale_dtype=None):
    """The variables that hold a (rows, columns) kernel's levels, as Keras makes them for GPTQ and for AWQ (whose
    layout is GPTQ's): ``kernel`` (the attribute ``quantized_kernel``) uint8 levels (columns, rows), two per byte
    along the columns for 4 bits; ``kernel_scale`` (``scale_dtype``, else the layer's variable dtype) and
    ``kernel_zero`` uint8 (columns, groups of ``group_size`` rows), the latter named ``zero_name``. Returns them in
    that order."""
    packed = (columns + 1) // 2 if bits == 4 else columns
    groups = group_count(rows, group_size)
    layer.quantized_kernel = layer.add_weight((packed, rows), "zeros", dtype="uint8", trainable=False, name="kernel")
    layer.kernel_scale = layer.add_weight((columns, groups), "ones", dtype=scale_dtype, trainable=False,
                                          name="kernel_scale")
    layer.kernel_zero = layer.add_weight((columns, groups), "zeros", dtype="uint8", trainable=False, name=zero_name)
    return layer.quantized_kernel, layer.kernel_scale, layer.kernel_zero


def build_gptq_weights(layer, rows, columns, policy):
    """A layer's GPTQ variables, as Keras makes them for a (rows, columns) kernel under a ``GPTQDTypePolicy``: the
    levels, ``kernel_scale`` and ``kernel_zero`` (``build_level_weights``; the zero points named as the class's
    ``gptq_zero_name``, Keras's EinsumDense calling them ``zero_point``), then ``g_idx`` (rows,) float32. Returns
    them in that order."""
    levels = build_level_weights(layer, rows, columns, policy.weight_bits, policy.group_size,
                                 getattr(layer, "gptq_zero_name", "kernel_zero"))
    layer.g_idx = layer.add_weight((rows,), "zeros", dtype="float32", trainable=False, name="g_idx")
    return levels + (layer.g_idx,)


def install_gptq(layer, levels, scale, zero, g_idx):
    """The end of a layer's calibration: its GPTQ variables take the quantized values and its float kernel is
    dropped (as Keras deletes it); the layer then computes with the dequantized kernel."""
    for var, value in zip((layer.quantized_kernel, layer.kernel_scale, layer.kernel_zero, layer.g_idx),
                          (levels, scale, zero, g_idx)):
        var.assign(numpy.asarray(value).reshape(var.shape).astype(var.dtype))
    float_kernel = layer.__dict__.get("_kernel")
    if float_kernel is not None and float_kernel in layer._weights:
        layer._weights.remove(float_kernel)
    layer.kernel = None
    layer.is_gptq_calibrated = True


def dequantized_kernel(layer, dtype):
    """The float (rows, columns) kernel a calibrated layer's GPTQ variables stand for, as Keras dequantizes it
    (``(levels - zero[g]) * scale[g]`` per input row's group ``g``, transposed back); before calibration the
    float kernel."""
    from . import quantizers
    if not getattr(layer, "is_gptq_calibrated", False):
        return layer.kernel.value.astype(dtype, copy=False)
    levels = layer.quantized_kernel.value
    columns = layer.kernel_scale.shape[0]
    if layer.dtype_policy.weight_bits == 4:
        levels = quantizers.unpack_int4(levels, columns, axis=0, dtype="uint8")
    return dequantize_groups(levels, layer.kernel_scale.value, layer.kernel_zero.value,
                             layer.g_idx.value).T.astype(dtype, copy=False)


def prepare_layer(layer, config, rows, columns):
    """A layer's ``quantize("gptq", config)``, as Keras's: the layer takes the policy
    ``"gptq/<bits>/<group size>_from_<its policy>"`` and its GPTQ variables (in the float kernel's name scope),
    keeping its float kernel, which computes until calibration (``install_gptq``) replaces it."""
    from .dtype_policies import GPTQDTypePolicy
    # the layer keeps the settings alone: the dataset, tokenizer and structure (layers) serve the calibration,
    # and a config holding layers could not be written to a model file
    layer.quantization_config = type(config).from_config({**config.get_config(), "quantization_layer_structure": None})
    scope = layer.kernel.path.rsplit("/", 1)[0]
    layer.dtype_policy = GPTQDTypePolicy(config.dtype_policy_string(), layer.dtype_policy.name)
    layer.is_gptq_calibrated = False
    for var in build_gptq_weights(layer, rows, columns, layer.dtype_policy):
        var.path = f"{scope}/{var.name}"


# ---------------------------------------------------------------- the model's GPTQ pass
def gptq_quantize(config, structure, chosen=None):
    """Keras's ``gptq_quantize``: calibration samples from the config's dataset, then the layer-wise pass over
    ``structure``, quantizing the Dense and EinsumDense layers of each block that ``chosen`` keeps (all where
    None) and that ``quantize("gptq")`` prepared."""
    from . import quantization_calibration
    samples = quantization_calibration.get_dataloader(config.tokenizer, config.sequence_length, config.dataset,
                                                      num_samples=config.num_samples)

    def quantizable(layer):
        return (chosen is None or chosen(layer)) and layer.dtype_policy.quantization_mode == "gptq" and \
            not getattr(layer, "is_gptq_calibrated", True)

    def finish(layer, state):
        state.quantize_and_correct_layer()
        state.free()

    def update(state, x):
        state.update_hessian_with_batch(to_numpy(x).reshape(-1, state.rows))
    quantization_calibration.apply_layerwise(samples, config.num_samples, structure, quantizable,
                                             lambda layer: GPTQ(layer, config), update, finish)
