"""``model.export(path, format="onnx")``: an ONNX file of a model's inference pass, for ONNX Runtime and the like.

Keras 3 hands its backend's graph to that framework's ONNX exporter (torch.onnx, tf2onnx, jax2onnx); gpu_dl has
none, so this module walks the model's own graph and writes one ONNX node (or a few) per layer with the ``onnx``
package (``pip install gpu_dl[onnx]``): a Sequential's layers in order, a functional model's calls, a model inside
another, and a composite layer or subclassed model through the graph its call traced to (``composite.py``).

As in Keras's files: the inputs are named after the model's input tensors (``input_{i}`` for a subclassed model),
their batch axis is the dynamic dimension ``batch`` and other unknown sizes ``dim_{input}_{axis}``; the opset is
20 unless ``opset_version`` says otherwise (13 or later). The outputs are named after the model's
``output_names``. Weights are stored in the file as float32 initializers; dropout and noise layers and the random
image augmentations are the identity (inference). Convolutions and poolings run channels-first in ONNX: a
channels_last layer is wrapped in two transposes. "same" padding pads as Keras pads (the extra row or column at
the end). The recurrent layers become ONNX's LSTM, GRU and RNN nodes (``initial_state`` tensors start them),
their kernels' gate blocks reordered from Keras's (i, f, c, o for the LSTM) to ONNX's (i, o, f, c); ``RNN`` (of
built-in cells, or a Scan over a cell of the user's own), ``go_backwards``, the ConvLSTMs (a Scan) and stateful
layers (their states as graph inputs and outputs after the model's) are ``onnx_recurrent.py``'s; EinsumDense an
Einsum node; the attention layers their projections, scores and softmax (``onnx_attention.py``, which also
takes an ``attention_mask`` tensor). The ``gpu_dl.ops`` operations a functional graph or a composite call
records (reshape, indexing, take, where, comparisons, cast, one_hot, argmax, einsum, ...) become their ONNX
nodes; integer and boolean results keep their dtype. TimeDistributed runs its layer on (batch * steps, ...) and
reshapes back, both sizes read at run time.

Masks of padded steps (Embedding(mask_zero=True), Masking) travel beside the tensors through the layers that
pass them on unchanged, as gpu_dl passes them (``layers/masks.py``). A recurrent layer reading one skips the
masked steps exactly, whatever the mask's pattern: each sample's unmasked steps are gathered to the front in
order, the ONNX node reads that many (``sequence_lens``), and each step's output is gathered back from the
node's output at the count of unmasked steps up to it; a Bidirectional layer runs its backward layer so on the
steps and the mask reversed. GlobalAveragePooling1D averages the unmasked steps; the merges combine masks as
gpu_dl does (and Multiply, Maximum and Minimum read them); TimeDistributed passes the mask on; the attention
layers mask their scores. A mask reaching a nested model or a composite layer reaches the layers inside (and a
call that names ``mask`` reads it); operators between tensors end it. A layer reading a mask in another way is
refused.

A layer this module has no conversion for is refused with a ValueError naming it and listing those it has;
nothing is written then (the file is written whole, through a temporary file, or not at all).
"""
from __future__ import annotations

import functools
import math

import numpy

from ..layers.base import Layer
from ..ops.elementwise import GELU_TANH_COEFFICIENT, SELU_ALPHA, SELU_SCALE

DEFAULT_OPSET = 20
MIN_OPSET = 13
_PASS = object()    # a conversion that sets no output mask: the layer's rule (pass-through or none) gives it


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("model.export(format='onnx') needs the `onnx` package: pip install onnx "
                          "(or gpu_dl[onnx]).") from None
    return onnx


class _Value:
    """A tensor of the ONNX graph: its name, its shape as far as it is known (None for a dynamic size) and its
    dtype (float32 unless a traced tensor says otherwise: argmax's indices, a cast's result); ``mask``: the name of
    the (batch, steps) bool tensor of its mask of padded steps, where one reached it."""

    def __init__(self, name, shape, dtype="float32", mask=None):
        self.name = name
        self.shape = tuple(shape)
        self.dtype = dtype
        self.mask = mask

    @property
    def rank(self):
        return len(self.shape)


class _Builder:
    """The nodes and initializers of the graph being made, with unique names."""

    def __init__(self, onnx, opset):
        self.onnx = onnx
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self._used = set()
        self.call_options = {}      # the non-tensor keyword arguments of the call being converted
        self.call_tensors = {}      # its tensor keyword arguments its conversion reads (initial_state, ...)
        self.mask = None            # the mask of padded steps reaching the call being converted (a tensor name)
        self.out_mask = _PASS       # the mask its conversion gives its output, where it says
        self.mask_given = False     # whether the call was given its mask (mask=...) rather than its input's
        self.out_shapes = None      # the shapes its conversion gives its outputs where they are not the call's
        self.out_dtypes = None      # their dtypes where not float32 (a Sequential's layers; a graph's say theirs)
        self.graph_inputs = []      # (name, shape) of inputs beyond the model's: stateful layers' states
        self.graph_outputs = []     # (name, shape) of outputs beyond the model's: their states after the call

    def name(self, hint):
        base = "".join(c if c.isalnum() or c in "_./" else "_" for c in hint) or "t"
        name, i = base, 1
        while name in self._used:
            name, i = f"{base}_{i}", i + 1
        self._used.add(name)
        return name

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        """Adds an ``op_type`` node; its output name (a list of them where ``outputs`` > 1)."""
        hint = hint or op_type.lower()
        names = [self.name(hint) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, name=self.name(f"{hint}_node"),
                                                     **attrs))
        return names[0] if outputs == 1 else names

    def const(self, array, hint="const"):
        array = numpy.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(numpy.float32)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(numpy.ascontiguousarray(array), name))
        return name

    def scalar(self, value):
        return self.const(numpy.float32(value), "scalar")

    def ints(self, values):
        return self.const(numpy.asarray(values, dtype=numpy.int64), "shape")

    def reduce(self, op_type, x, axes, keepdims=True):
        """``ReduceMean``/``ReduceMax``/... over ``axes``: an attribute before opset 18, an input from it."""
        keep = int(bool(keepdims))
        if self.opset >= 18 or op_type == "ReduceSum":     # ReduceSum took its axes as an input from opset 13
            return self.op(op_type, [x, self.ints(axes)], keepdims=keep)
        return self.op(op_type, [x], axes=list(axes), keepdims=keep)

    def clip(self, x, low=None, high=None):
        return self.op("Clip", [x, "" if low is None else self.scalar(low), "" if high is None else self.scalar(high)])

    def halves(self, x, axis):
        """``x`` split in two equal halves along ``axis`` (Split takes the count as an attribute from opset 18)."""
        count = {"num_outputs": 2} if self.opset >= 18 else {}
        return self.op("Split", [x], outputs=2, axis=axis, **count)

    def fold(self, op_type, names, hint=None):
        """``names`` combined pairwise, left to right, by the two-input ``op_type`` (And, Or, Mul, ...)."""
        out = names[0]
        for other in names[1:]:
            out = self.op(op_type, [out, other], hint=hint)
        return out

    def transpose(self, x, perm):
        return x if list(perm) == list(range(len(perm))) else self.op("Transpose", [x], perm=list(perm))


# ---------------------------------------------------------------------------------------------- activations
def _relu(b, x, negative_slope=0.0, max_value=None, threshold=0.0):
    if threshold == 0:
        y = b.op("Relu", [x])
    else:
        y = b.op("Where", [b.op("Greater", [x, b.scalar(threshold)]), x, b.scalar(0.0)])
    if max_value is not None:
        y = b.clip(y, 0.0, max_value)
    if negative_slope:
        below = b.op("Relu", [b.op("Sub", [b.scalar(threshold), x])])
        y = b.op("Sub", [y, b.op("Mul", [b.scalar(negative_slope), below])])
    return y


def _gelu(b, x, approximate=False):
    if approximate:
        cube = b.op("Mul", [b.scalar(GELU_TANH_COEFFICIENT), b.op("Pow", [x, b.scalar(3.0)])])
        inner = b.op("Mul", [b.scalar(math.sqrt(2 / math.pi)), b.op("Add", [x, cube])])
        half = b.op("Mul", [b.scalar(0.5), b.op("Add", [b.scalar(1.0), b.op("Tanh", [inner])])])
        return b.op("Mul", [x, half])
    phi = b.op("Add", [b.op("Erf", [b.op("Div", [x, b.scalar(math.sqrt(2))])]), b.scalar(1.0)])
    return b.op("Div", [b.op("Mul", [x, phi]), b.scalar(2.0)])


def _shrink(b, x, threshold=0.5, soft=False):
    return b.op("Shrink", [x], lambd=float(threshold), bias=float(threshold) if soft else 0.0)


def _glu(b, x, axis=-1):
    first, second = b.halves(x, axis)
    return b.op("Mul", [first, b.op("Sigmoid", [second])])


# name -> f(builder, x, **params): the output's name, computed as gpu_dl's ops/elementwise.py computes it.
_ACTIVATIONS = {
    "linear": lambda b, x: b.op("Identity", [x]),
    "relu": _relu,
    "leaky_relu": lambda b, x, negative_slope=0.2: b.op("LeakyRelu", [x], alpha=float(negative_slope)),
    "relu6": lambda b, x: b.clip(x, 0.0, 6.0),
    "elu": lambda b, x, alpha=1.0: b.op("Elu", [x], alpha=float(alpha)),
    "selu": lambda b, x: b.op("Selu", [x], alpha=float(SELU_ALPHA), gamma=float(SELU_SCALE)),
    "celu": lambda b, x, alpha=1.0: b.op("Celu", [x], alpha=float(alpha)),
    "softplus": lambda b, x: b.op("Softplus", [x]),
    "softsign": lambda b, x: b.op("Softsign", [x]),
    "silu": lambda b, x: b.op("Mul", [x, b.op("Sigmoid", [x])]),
    "gelu": _gelu,
    "mish": lambda b, x: b.op("Mul", [x, b.op("Tanh", [b.op("Softplus", [x])])]),
    "tanh": lambda b, x: b.op("Tanh", [x]),
    "tanh_shrink": lambda b, x: b.op("Sub", [x, b.op("Tanh", [x])]),
    "hard_tanh": lambda b, x: b.clip(x, -1.0, 1.0),
    "sigmoid": lambda b, x: b.op("Sigmoid", [x]),
    "log_sigmoid": lambda b, x: b.op("Neg", [b.op("Softplus", [b.op("Neg", [x])])]),
    "hard_sigmoid": lambda b, x: b.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5),
    "hard_silu": lambda b, x: b.op("Mul", [x, b.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5)]),
    "hard_shrink": lambda b, x, threshold=0.5: _shrink(b, x, threshold),
    "soft_shrink": lambda b, x, threshold=0.5: _shrink(b, x, threshold, soft=True),
    "threshold": lambda b, x, threshold, default_value: b.op(
        "Where", [b.op("Greater", [x, b.scalar(threshold)]), x, b.scalar(default_value)]),
    "exponential": lambda b, x: b.op("Exp", [x]),
    "softmax": lambda b, x, axis=-1: b.op("Softmax", [x], axis=int(axis)),
    "log_softmax": lambda b, x, axis=-1: b.op("LogSoftmax", [x], axis=int(axis)),
    "glu": _glu,
}


def _squareplus(builder, x, b=4):
    root = builder.op("Sqrt", [builder.op("Add", [builder.op("Mul", [x, x]), builder.scalar(b)])])
    return builder.op("Div", [builder.op("Add", [x, root]), builder.scalar(2.0)])


_ACTIVATIONS["squareplus"] = _squareplus


def _activation(b, x, activation, where):
    from ..activations import TracedActivation
    if activation is None or activation.name == "linear" and not isinstance(activation, TracedActivation):
        return x
    emit = None if isinstance(activation, TracedActivation) else _ACTIVATIONS.get(activation.name)
    if emit is None:
        raise _unsupported(where, f"activation {activation.name!r}",
                           "activations " + ", ".join(sorted(_ACTIVATIONS)))
    return emit(b, x, **activation.params)


# ---------------------------------------------------------------------------------------------- layers
def _weights(layer):
    return dict(zip((w.name.rsplit("/", 1)[-1] for w in layer.weights), layer.get_weights()))


def _to_first(b, x, rank):
    """A channels_last tensor of ``rank`` as channels_first (ONNX's convolution layout)."""
    return b.transpose(x, [0, rank - 1] + list(range(1, rank - 1)))


def _to_last(b, x, rank):
    return b.transpose(x, [0] + list(range(2, rank)) + [1])


def _spatial(b, layer, x, emit):
    """``emit(channels_first_input)`` wrapped in the transposes a channels_last layer needs."""
    rank = x.rank
    if layer.data_format == "channels_first":
        return emit(x.name)
    return _to_last(b, emit(_to_first(b, x.name, rank)), rank)


def _spatial_sizes(layer, x):
    return x.shape[2:] if layer.data_format == "channels_first" else x.shape[1:-1]


def _window_pads(layer, x, window, dilation=None):
    """ONNX's ``pads`` (all begins, then all ends) or ``auto_pad`` for the layer's padding on input ``x``."""
    n = len(window)
    dilation = dilation or (1,) * n
    reach = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    if layer.padding == "valid":
        return {"pads": [0] * 2 * n}
    if layer.padding == "causal":
        return {"pads": [r - 1 for r in reach] + [0] * n}
    sizes = _spatial_sizes(layer, x)
    if any(s is None for s in sizes):
        return {"auto_pad": "SAME_UPPER"}       # Keras's "same": the odd pixel at the end, as SAME_UPPER
    totals = [max((-(-s // st) - 1) * st + r - s, 0) for s, st, r in zip(sizes, layer.strides, reach)]
    return {"pads": [t // 2 for t in totals] + [t - t // 2 for t in totals]}


def _conv(b, layer, xs):
    x = xs[0]
    w = _weights(layer)
    rank = len(layer.kernel_size)
    kernel = w["kernel"]       # kernel_size + (in / groups, filters) -> (filters, in / groups) + kernel_size
    onnx_kernel = kernel.transpose((rank + 1, rank) + tuple(range(rank)))
    inputs = [b.const(onnx_kernel, f"{layer.name}/kernel")]
    if layer.use_bias:
        inputs.append(b.const(w["bias"], f"{layer.name}/bias"))
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), group=int(layer.groups),
                 **_window_pads(layer, x, layer.kernel_size, layer.dilation_rate))
    y = _spatial(b, layer, x, lambda t: b.op("Conv", [t] + inputs, hint=layer.name, **attrs))
    return _activation(b, y, layer.activation, layer)


def _depthwise_kernel(kernel):
    """A depthwise kernel_size + (channels, multiplier) as ONNX's grouped (channels * multiplier, 1) + kernel_size:
    output channel c * multiplier + j is input channel c's j-th filter, as in Keras."""
    rank = kernel.ndim - 2
    channels, multiplier = kernel.shape[-2:]
    return kernel.transpose((rank, rank + 1) + tuple(range(rank))).reshape(
        (channels * multiplier, 1) + kernel.shape[:rank])


def _depthwise_conv(b, layer, xs):
    x = xs[0]
    w = _weights(layer)
    kernel = w["kernel"] if "kernel" in w else w["depthwise_kernel"]
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), group=int(kernel.shape[-2]),
                 **_window_pads(layer, x, layer.kernel_size, layer.dilation_rate))
    depthwise = [b.const(_depthwise_kernel(kernel), f"{layer.name}/depthwise_kernel")]
    separable = "pointwise_kernel" in w
    if layer.use_bias and not separable:
        depthwise.append(b.const(w["bias"], f"{layer.name}/bias"))

    def emit(t):
        y = b.op("Conv", [t] + depthwise, hint=layer.name, **attrs)
        if not separable:
            return y
        rank = len(layer.kernel_size)
        pointwise = w["pointwise_kernel"]       # (1,) * rank + (channels * multiplier, filters)
        inputs = [b.const(pointwise.transpose((rank + 1, rank) + tuple(range(rank))), f"{layer.name}/pointwise")]
        if layer.use_bias:
            inputs.append(b.const(w["bias"], f"{layer.name}/bias"))
        return b.op("Conv", [y] + inputs, kernel_shape=[1] * rank)
    return _activation(b, _spatial(b, layer, x, emit), layer.activation, layer)


def _conv_transpose(b, layer, xs):
    from ..ops.transposed_convolution import transpose_output_length, transpose_padding
    x = xs[0]
    w = _weights(layer)
    rank = len(layer.kernel_size)
    kernel = w["kernel"]        # kernel_size + (filters, in) -> (in, filters) + kernel_size
    inputs = [b.const(kernel.transpose((rank + 1, rank) + tuple(range(rank))), f"{layer.name}/kernel")]
    if layer.use_bias:
        inputs.append(b.const(w["bias"], f"{layer.name}/bias"))
    extras = layer.output_padding or (None,) * rank
    begins, ends, output_padding = [], [], []
    for k, st, d, e in zip(layer.kernel_size, layer.strides, layer.dilation_rate, extras):
        # The crop at each end is the same for every input length (both lengths grow by the stride per step).
        before = transpose_padding(2, k, st, d, layer.padding, e)[0]
        after = (2 - 1) * st + d * (k - 1) + 1 - before - transpose_output_length(2, k, st, d, layer.padding, e)
        begins.append(before)
        ends.append(max(after, 0))
        output_padding.append(max(-after, 0))        # the zero rows Keras adds at the end
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                 dilations=list(layer.dilation_rate), pads=begins + ends, output_padding=output_padding)
    y = _spatial(b, layer, x, lambda t: b.op("ConvTranspose", [t] + inputs, hint=layer.name, **attrs))
    return _activation(b, y, layer.activation, layer)


def _upsampling(b, layer, xs):
    x = xs[0]
    sizes = [layer.size] if isinstance(layer.size, int) else list(layer.size)
    mode = getattr(layer, "interpolation", "nearest")
    # Nearest: each row repeated (asymmetric coordinates, floor); bilinear: Keras's half-pixel centres.
    attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor") \
        if mode == "nearest" else dict(mode="linear", coordinate_transformation_mode="half_pixel")
    scales = b.const(numpy.asarray([1.0, 1.0] + [float(s) for s in sizes], numpy.float32), "scales")
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return b.op("Resize", [x.name, "", scales], hint=layer.name, **attrs)
    return _to_last(b, b.op("Resize", [_to_first(b, x.name, x.rank), "", scales], hint=layer.name, **attrs),
                    x.rank)


# The activations ONNX's LSTM, GRU and RNN nodes name: name -> f(params) = (ONNX's name, alpha, beta), alpha and
# beta None for those that take none.
_RNN_ACTIVATIONS = {
    "sigmoid": lambda: ("Sigmoid", None, None), "tanh": lambda: ("Tanh", None, None),
    "relu": lambda: ("Relu", None, None), "softsign": lambda: ("Softsign", None, None),
    "softplus": lambda: ("Softplus", None, None), "linear": lambda: ("Affine", 1.0, 0.0),
    "hard_sigmoid": lambda: ("HardSigmoid", 1 / 6, 0.5),          # Keras 3's relu6(x + 3) / 6
    "elu": lambda alpha=1.0: ("Elu", float(alpha), None),
    "leaky_relu": lambda negative_slope=0.2: ("LeakyRelu", float(negative_slope), None),
}


def _gates(matrix, order, units):
    """The gate blocks of a Keras (…, k * units) matrix, reordered as ONNX orders them."""
    blocks = [matrix[..., i * units:(i + 1) * units] for i in range(len(order))]
    return numpy.concatenate([blocks[i] for i in order], axis=-1)


def _rnn_direction(layer, op_type, order, where):
    """(activations as (ONNX's name, alpha, beta), kernel, recurrent kernel, biases) of one recurrent layer as
    ONNX's node takes one direction: the matrices transposed to (gates * units, ...) and the input and recurrent
    biases in one row."""
    from ..activations import TracedActivation
    names = []
    for act in ([layer.recurrent_activation] if op_type != "RNN" else []) + [layer.activation] * (
            2 if op_type == "LSTM" else 1):
        try:
            if isinstance(act, TracedActivation):       # a function of the caller's own, whatever its name
                raise KeyError(act.name)
            names.append(_RNN_ACTIVATIONS[act.name](**act.params))
        except (KeyError, TypeError):
            raise _unsupported(where, f"activation {act.name!r}" + (f" with {act.params}" if act.params else ""),
                               "recurrent activations " + ", ".join(sorted(_RNN_ACTIVATIONS))) from None
    w = _weights(layer)
    units = layer.units
    bias = w.get("bias")
    if bias is None:
        biases = numpy.zeros((2 * len(order) * units,), numpy.float32)
    elif bias.ndim == 2:                  # GRU's reset_after: the input and recurrent biases
        biases = numpy.concatenate([_gates(bias[0], order, units), _gates(bias[1], order, units)])
    else:
        biases = numpy.concatenate([_gates(bias, order, units), numpy.zeros_like(bias)])
    return names, _gates(w["kernel"], order, units).T, _gates(w["recurrent_kernel"], order, units).T, biases


def _rnn_node(b, layer, x, op_type, order, directions, direction="forward", lengths=None, initial=()):
    """The ONNX recurrent node over ``x`` (batch, steps, features) for the layers of ``directions`` (one, or the
    forward and backward layers of a Bidirectional): its outputs, the sequence (steps, directions, batch, units)
    and the last states (directions, batch, units). ``lengths``: the int32 (batch,) steps each sample reads;
    ``initial``: the (batch, units) states of one direction to start from (h, and c for an LSTM)."""
    parts = [_rnn_direction(d, op_type, order, layer) for d in directions]
    activations = [a for p in parts for a in p[0]]
    attrs = dict(hidden_size=int(directions[0].units), activations=[a[0] for a in activations], direction=direction)
    # ONNX Runtime reads an alpha (and a beta) for each activation that takes one, in order.
    for i, key in ((1, "activation_alpha"), (2, "activation_beta")):
        if any(a[i] is not None for a in activations):
            attrs[key] = [a[i] for a in activations if a[i] is not None]
    if op_type == "GRU":
        if len({bool(d.reset_after) for d in directions}) > 1:
            raise _unsupported(layer, "directions of different reset_after", "GRUs of one reset_after")
        attrs["linear_before_reset"] = int(bool(directions[0].reset_after))
    weights = [b.const(numpy.stack([p[i] for p in parts]), f"{layer.name}/{what}")
               for i, what in ((1, "kernel"), (2, "recurrent_kernel"), (3, "bias"))]
    lengths = [] if lengths is None and not initial else ["" if lengths is None else lengths]
    initial = [b.op("Unsqueeze", [state, b.ints([0])]) for state in initial]
    return b.op(op_type, [b.transpose(x.name, [1, 0, 2])] + weights + lengths + initial, hint=layer.name,
                outputs=3 if op_type == "LSTM" else 2, **attrs)


def _masked_recurrent(b, layer, x, mask, op_type, order, initial=()):
    """``(output, states)`` of a recurrent layer reading forward over steps with ``mask`` from the ``initial``
    states (zeros where none), exactly as gpu_dl runs it (a masked step leaves the states as they were and outputs
    the output before it, zeros before the first; ``zero_output_for_mask``: zeros), whatever the mask's pattern:
    each sample's unmasked steps are moved to the front in order, the node reads that many (its
    ``sequence_lens``), and each step's output is read back from the node's output at the number of unmasked
    steps up to it. A sample of no unmasked step outputs zeros and keeps its initial states."""
    keep = b.op("Cast", [mask], to=b.onnx.TensorProto.INT64)                  # (batch, steps)
    shape = b.op("Shape", [x.name])
    steps = b.op("Slice", [shape, b.ints([1]), b.ints([2])])
    ones = b.op("ConstantOfShape", [b.op("Shape", [keep])],
                value=b.onnx.numpy_helper.from_array(numpy.ones((1,), numpy.int64)))
    position = b.op("Sub", [b.op("CumSum", [ones, b.ints([1])]), b.ints([1])])       # 0, 1, ... per sample
    # Sort keys: an unmasked step keeps its position, a masked one goes after every unmasked one.
    keys = b.op("Add", [position, b.op("Mul", [b.op("Sub", [b.ints([1]), keep]), steps])])
    order_in = b.op("TopK", [keys, steps], outputs=2, axis=1, largest=0, sorted=1)[1]
    packed = b.op("GatherElements", [x.name, b.op("Expand", [b.op("Unsqueeze", [order_in, b.ints([2])]), shape])],
                  axis=1)
    count = b.op("ReduceSum", [keep, b.ints([1])], keepdims=0)                     # (batch,)
    # A sample of no unmasked step reads one (the node takes no empty sequence); its outputs are zeroed below.
    lengths = b.op("Cast", [b.op("Max", [count, b.ints([1])])], to=b.onnx.TensorProto.INT32)
    sequence, *states = _rnn_node(b, layer, _Value(packed, x.shape), op_type, order, [layer], lengths=lengths,
                                  initial=initial)
    started = b.op("Unsqueeze", [b.op("Greater", [count, b.ints([0])]), b.ints([1])])     # (batch, 1)
    states = [b.op("Squeeze", [s, b.ints([0])]) for s in states]
    outputs = [b.op("Where", [started, s, b.scalar(0.0)]) for s in states]
    states = [b.op("Where", [started, s, i]) for s, i in zip(states, initial)] if initial else outputs
    if layer.return_sequences:
        packed_out = b.transpose(b.op("Squeeze", [sequence, b.ints([1])]), [1, 0, 2])    # (batch, steps, units)
        seen = b.op("CumSum", [keep, b.ints([1])])
        at = b.op("Max", [b.op("Sub", [seen, b.ints([1])]), b.ints([0])])
        at = b.op("Expand", [b.op("Unsqueeze", [at, b.ints([2])]), b.op("Shape", [packed_out])])
        shown = keep if layer.zero_output_for_mask else b.op("Cast", [b.op("Greater", [
            seen, b.ints([0])])], to=b.onnx.TensorProto.INT64)
        shown = b.op("Unsqueeze", [b.op("Cast", [shown], to=b.onnx.TensorProto.FLOAT), b.ints([2])])
        y = b.op("Mul", [b.op("GatherElements", [packed_out, at], axis=1), shown], hint=layer.name)
    else:
        y = outputs[0]
        if layer.zero_output_for_mask:      # the last step masked: zeros
            last = b.op("Slice", [b.op("Cast", [mask], to=b.onnx.TensorProto.FLOAT), b.ints([-1]),
                                  b.ints([_INT64_MAX]), b.ints([1])])
            y = b.op("Mul", [y, last], hint=layer.name)
    return y, states


# Keras's gate orders (i, f, c, o; z, r, h) as ONNX's (i, o, f, c; z, r, h)
_RNN_NODES = {"LSTM": ("LSTM", (0, 3, 1, 2)), "GRU": ("GRU", (0, 1, 2)), "SimpleRNN": ("RNN", (0,))}


def _reversed_steps(b, x):
    """``x`` (batch, steps, ...) with its steps in reverse order, however many there are."""
    return b.op("Slice", [x, b.ints([-1]), b.ints([_INT64_MIN]), b.ints([1]), b.ints([-1])])


def _bidirectional(b, layer, xs):
    """A Bidirectional of a forward and a backward LSTM, GRU or SimpleRNN of the same class and units, without
    initial or carried states (``onnx_recurrent.bidirectional`` converts the others)."""
    forward, backward = layer.forward_layer, layer.backward_layer
    op_type, order = _RNN_NODES[type(forward).__name__]
    x = xs[0]
    if b.mask is None:
        # One bidirectional node. ONNX gives each direction's output at the step it read, as Keras's Bidirectional
        # turns the backward layer's sequence back; without sequences, each direction's last state.
        sequence, *states = _rnn_node(b, layer, x, op_type, order, [forward, backward], "bidirectional")
        if layer.return_sequences:
            both, axis = b.transpose(sequence, [2, 0, 1, 3]), 2       # (batch, steps, 2, units)
        else:
            both, axis = b.transpose(states[0], [1, 0, 2]), 1         # (batch, 2, units)
        y_f, y_b = (b.op("Squeeze", [h, b.ints([axis])]) for h in b.halves(both, axis))
        halves = [[b.op("Squeeze", [h, b.ints([0])]) for h in b.halves(s, 0)] for s in states]
        states_f, states_b = [h[0] for h in halves], [h[1] for h in halves]
    else:
        # Each direction as the masked forward layer it is: the backward one reads the steps and the mask
        # reversed, and its sequence is turned back.
        y_f, states_f = _masked_recurrent(b, forward, x, b.mask, op_type, order)
        y_b, states_b = _masked_recurrent(b, backward, _Value(_reversed_steps(b, x.name), x.shape),
                                          _reversed_steps(b, b.mask), op_type, order)
        if layer.return_sequences:
            y_b = _reversed_steps(b, y_b)
    return _bidirectional_merge(b, layer, y_f, y_b, states_f, states_b)


def _bidirectional_merge(b, layer, y_f, y_b, states_f, states_b):
    """A Bidirectional's outputs from its directions' (the backward one's sequence in the input's order)."""
    mask = b.mask if layer.return_sequences else None
    states = states_f + states_b if layer.return_state else []
    if layer.merge_mode is None:
        b.out_mask = [mask, mask]
        return [b.op("Identity", [y_f], hint=layer.name), b.op("Identity", [y_b], hint=layer.name)] + states
    b.out_mask = mask
    if layer.merge_mode == "concat":
        y = b.op("Concat", [y_f, y_b], hint=layer.name, axis=-1)
    elif layer.merge_mode == "sum":
        y = b.op("Add", [y_f, y_b], hint=layer.name)
    elif layer.merge_mode == "mul":
        y = b.op("Mul", [y_f, y_b], hint=layer.name)
    else:
        y = b.op("Div", [b.op("Add", [y_f, y_b]), b.scalar(2.0)], hint=layer.name)
    return [y] + states


def _cropping(b, layer, xs):
    x = xs[0]
    pairs = list(layer.cropping) if isinstance(layer.cropping[0], (tuple, list)) else [layer.cropping]
    first = 2 if getattr(layer, "data_format", "channels_last") == "channels_first" else 1
    axes = list(range(first, first + len(pairs)))
    ends = [-after if after else numpy.iinfo(numpy.int64).max for _, after in pairs]
    return b.op("Slice", [x.name, b.ints([before for before, _ in pairs]), b.ints(ends), b.ints(axes)],
                hint=layer.name)


def _pool(op_type):
    def emit(b, layer, xs):
        x = xs[0]
        attrs = dict(kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                     **_window_pads(layer, x, layer.pool_size))
        if op_type == "AveragePool":
            attrs["count_include_pad"] = 0      # Keras averages over the window's pixels inside the input
        return _spatial(b, layer, x, lambda t: b.op(op_type, [t], hint=layer.name, **attrs))
    return emit


def _global_pool(op_type):
    def emit(b, layer, xs):
        x = xs[0]
        axes = list(range(2, x.rank)) if layer.data_format == "channels_first" else list(range(1, x.rank - 1))
        if b.mask is not None and op_type == "ReduceMean":
            # The mean of the unmasked steps (0 / 0 = NaN for a sample of none, as gpu_dl gives); a masked step's
            # NaN or inf is left out.
            keep = b.op("Unsqueeze", [b.mask, b.ints([1 if layer.data_format == "channels_first" else 2])])
            total = b.reduce("ReduceSum", b.op("Where", [keep, x.name, b.scalar(0.0)]), axes, layer.keepdims)
            count = b.reduce("ReduceSum", b.op("Cast", [keep], to=b.onnx.TensorProto.FLOAT), axes, layer.keepdims)
            b.out_mask = None
            return b.op("Div", [total, count], hint=layer.name)
        return b.reduce(op_type, x.name, axes, keepdims=layer.keepdims)
    return emit


def _dense(b, layer, xs):
    w = _weights(layer)
    y = b.op("MatMul", [xs[0].name, b.const(w["kernel"], f"{layer.name}/kernel")], hint=layer.name)
    if layer.use_bias:
        y = b.op("Add", [y, b.const(w["bias"], f"{layer.name}/bias")])
    return _activation(b, y, layer.activation, layer)


def _broadcast(values, rank, positions):
    """``values`` (the sizes of axes ``positions``) shaped to broadcast against an input of ``rank``."""
    shape = [1] * rank
    sizes = numpy.shape(values)
    for p, s in zip(positions, sizes if len(sizes) == len(positions) else [numpy.size(values)]):
        shape[p] = s
    return numpy.reshape(values, shape)


def _einsum_dense(b, layer, xs):
    """The layer's einsum with its kernel, its bias (which broadcasts over the output's trailing axes) and its
    activation."""
    x = xs[0]
    if layer.dtype_policy.quantization_mode is not None:
        raise _unsupported(layer, f"a {layer.dtype_policy.quantization_mode} quantized kernel",
                           "EinsumDense of float kernels")
    plan = layer._plan(x.shape, sizes_known=False)
    w = _weights(layer)
    y = b.op("Einsum", [x.name, b.const(w["kernel"], f"{layer.name}/kernel")],
             equation=f"{plan.input_spec},{plan.weight_spec}->{plan.output_spec}")
    if "bias" in w:
        y = b.op("Add", [y, b.const(w["bias"], f"{layer.name}/bias")])
    return b.op("Identity", [_activation(b, y, layer.activation, layer)], hint=layer.name)


def _batch_norm(b, layer, xs):
    x = xs[0]
    w = _weights(layer)
    axis = layer.axis % x.rank
    mean = w["moving_mean"].astype(numpy.float64)
    inv = 1 / numpy.sqrt(w["moving_variance"].astype(numpy.float64) + layer.epsilon)
    scale = inv * w["gamma"] if "gamma" in w else inv
    shift = (w["beta"] if "beta" in w else 0) - mean * scale
    y = b.op("Mul", [x.name, b.const(_broadcast(scale, x.rank, [axis]), f"{layer.name}/scale")], hint=layer.name)
    return b.op("Add", [y, b.const(_broadcast(shift, x.rank, [axis]), f"{layer.name}/shift")])


def _inverse_root(b, mean_square, epsilon):
    """``1 / sqrt(mean_square + epsilon)``."""
    return b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [mean_square, b.scalar(epsilon)])])])


def _centred_and_scale(b, x, axes, epsilon):
    """``x - mean`` and ``1 / sqrt(variance + epsilon)`` over ``axes`` (the biased variance)."""
    centred = b.op("Sub", [x, b.reduce("ReduceMean", x, axes)])
    return centred, _inverse_root(b, b.reduce("ReduceMean", b.op("Mul", [centred, centred]), axes), epsilon)


def _scaled_and_shifted(b, layer, y, rank, axes, gamma="gamma", beta="beta"):
    """``y`` times the layer's ``gamma`` and plus its ``beta`` (where it has them), spanning ``axes``."""
    w = _weights(layer)
    if gamma in w:
        y = b.op("Mul", [y, b.const(_broadcast(w[gamma], rank, axes), f"{layer.name}/{gamma}")])
    if beta in w:
        y = b.op("Add", [y, b.const(_broadcast(w[beta], rank, axes), f"{layer.name}/{beta}")])
    return y


def _layer_norm(b, layer, xs):
    x = xs[0]
    axes = sorted(a % x.rank for a in layer._axes())
    centred, inv = _centred_and_scale(b, x.name, axes, layer.epsilon)
    # The deprecated rms_scaling scales x itself, not x - mean (ops/normalization.rms_scale).
    y = b.op("Mul", [x.name if layer.rms_scaling else centred, inv], hint=layer.name)
    return _scaled_and_shifted(b, layer, y, x.rank, axes)


def _group_norm(b, layer, xs):
    """The features moved last and split into (groups, features / groups), each sample normalized over each
    group's features and every other non-batch axis, then put back; gamma and beta per feature."""
    x = xs[0]
    axis = layer.axis % x.rank
    last = [i for i in range(x.rank) if i != axis] + [axis]
    channels = x.shape[axis]
    grouped = b.op("Reshape", [b.transpose(x.name, last),
                               b.ints([0] * (x.rank - 1) + [layer.groups, channels // layer.groups])])
    centred, inv = _centred_and_scale(b, grouped, list(range(1, x.rank - 1)) + [x.rank], layer.epsilon)
    y = b.op("Reshape", [b.op("Mul", [centred, inv]), b.ints([0] * (x.rank - 1) + [channels])])
    y = b.transpose(y, list(numpy.argsort(last)))
    return b.op("Identity", [_scaled_and_shifted(b, layer, y, x.rank, [axis])], hint=layer.name)


def _rms_norm(b, layer, xs):
    x = xs[0]
    axes = sorted(a % x.rank for a in layer._axes())
    inv = _inverse_root(b, b.reduce("ReduceMean", b.op("Mul", [x.name, x.name]), axes), layer.epsilon)
    return _scaled_and_shifted(b, layer, b.op("Mul", [x.name, inv], hint=layer.name), x.rank, axes, gamma="scale")


def _unit_norm(b, layer, xs):
    """``x * min(1 / sqrt(sum(x ** 2)), 1 / epsilon)``: a zero slice stays zero (the cap holds there)."""
    x = xs[0]
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.reduce("ReduceSum", b.op("Mul", [x.name, x.name]),
                                                      layer._positions(x.rank))])])
    return b.op("Mul", [x.name, b.op("Min", [inv, b.scalar(1 / layer.epsilon)])], hint=layer.name)


def _time_distributed(b, layer, xs):
    """The wrapped layer (or model) on (batch * steps, ...), its result shaped back to (batch, steps, ...); the
    sizes are read from the tensors, so batch and steps stay dynamic."""
    x = xs[0]
    rest = [b.ints([2]), b.ints([_INT64_MAX])]
    flat = b.op("Reshape", [x.name, b.op("Concat", [b.ints([-1]), b.op("Slice", [b.op("Shape", [x.name])] + rest)],
                                         axis=0)])
    (y,) = _emit_layer(b, layer.layer, [_Value(flat, (None,) + x.shape[2:])])
    front = b.op("Slice", [b.op("Shape", [x.name]), b.ints([0]), b.ints([2])])
    back = b.op("Slice", [b.op("Shape", [y.name]), b.ints([1]), b.ints([_INT64_MAX])])
    return b.op("Reshape", [y.name, b.op("Concat", [front, back], axis=0)], hint=layer.name)


def _feature_normalization(b, layer, xs):
    """Normalization: ``(x - mean) / maximum(sqrt(variance), epsilon)`` (``mean + x * that`` inverted) with the
    statistics the layer holds (given or adapted), as constants."""
    from .. import backend
    held = layer._constants or (layer.adapt_mean.value,)      # on the device the layer keeps them
    mean, scale = (backend.to_numpy(a) for a in layer._statistics(backend.array_module(*held)))
    mean, scale = b.const(mean, f"{layer.name}/mean"), b.const(scale, f"{layer.name}/scale")
    x = b.op("Cast", [xs[0].name], to=b.onnx.TensorProto.FLOAT)
    if layer.invert:
        return b.op("Add", [mean, b.op("Mul", [x, scale])], hint=layer.name)
    return b.op("Div", [b.op("Sub", [x, mean]), scale], hint=layer.name)


def _prelu(b, layer, xs):
    return b.op("PRelu", [xs[0].name, b.const(_weights(layer)["alpha"], f"{layer.name}/alpha")], hint=layer.name)


def _identity(b, layer, xs):
    return b.op("Identity", [xs[0].name], hint=layer.name)


def _flatten(b, layer, xs):
    x = xs[0]
    t = x.name
    if layer.data_format == "channels_first" and x.rank > 2:
        t = _to_last(b, t, x.rank)
    return b.op("Flatten", [t], hint=layer.name, axis=1)


def _reshape(b, layer, xs):
    return b.op("Reshape", [xs[0].name, b.ints((0,) + tuple(layer.target_shape))], hint=layer.name)


def _permute(b, layer, xs):
    return b.op("Transpose", [xs[0].name], hint=layer.name, perm=[0] + [int(d) for d in layer.dims])


def _padding(b, layer, xs):
    x = xs[0]
    pairs = list(layer.pairs)
    none = [(0, 0)]
    per_axis = none + pairs + none if layer.data_format == "channels_last" else none + none + pairs
    pads = [p[0] for p in per_axis] + [p[1] for p in per_axis]
    return b.op("Pad", [x.name, b.ints(pads)], hint=layer.name, mode=layer.MODE)     # "constant" or "reflect"


def _rescaling(b, layer, xs):
    x = b.op("Cast", [xs[0].name], to=b.onnx.TensorProto.FLOAT)
    y = b.op("Mul", [x, b.const(numpy.asarray(layer.scale, numpy.float32), f"{layer.name}/scale")], hint=layer.name)
    return b.op("Add", [y, b.const(numpy.asarray(layer.offset, numpy.float32), f"{layer.name}/offset")])


def _embedding(b, layer, xs):
    w = _weights(layer)
    ids = b.op("Cast", [xs[0].name], to=b.onnx.TensorProto.INT64)
    if layer.mask_zero:
        b.out_mask = b.op("Not", [b.op("Equal", [ids, b.ints([0])])], hint=f"{layer.name}/mask")
    return b.op("Gather", [b.const(w["embeddings"], f"{layer.name}/embeddings"), ids], hint=layer.name, axis=0)


def _masking(b, layer, xs):
    """The steps whose features are not all ``mask_value`` are kept (the others set to zero) and are its mask."""
    x = xs[0].name
    differs = b.op("Cast", [b.op("Not", [b.op("Equal", [x, b.scalar(layer.mask_value)])])], to=b.onnx.TensorProto.FLOAT)
    kept = b.reduce("ReduceMax", differs, [xs[0].rank - 1])
    b.out_mask = b.op("Cast", [b.op("Squeeze", [kept, b.ints([-1])])], to=b.onnx.TensorProto.BOOL,
                      hint=f"{layer.name}/mask")
    return b.op("Mul", [x, kept], hint=layer.name)


def _elementwise_activation(b, layer, xs):
    return b.op("Identity", [_activation(b, xs[0].name, layer.activation, layer)], hint=layer.name)


def _widened(b, mask, rank):
    """A (batch, steps) mask with trailing axes of size 1 up to ``rank``."""
    return mask if rank <= 2 else b.op("Unsqueeze", [mask, b.ints(list(range(2, rank)))])


def _either(b, masks):
    """The OR of ``masks`` where every one is there (Keras's merges' output mask), else None."""
    return None if any(m is None for m in masks) else b.fold("Or", masks)


def _masked_merge(b, layer, xs, op_type):
    """A merge of inputs some of which carry masks, as gpu_dl merges them (``ops/merge.py``): sums and differences
    do not read the masks; a product counts a masked value as 1 and is 0 where every input has a mask and none
    keeps the step; a maximum or minimum folds the inputs left to right, a masked value replaced by the running
    result and a masked running result by the value. The output mask is the OR of the inputs' where each has one."""
    if len({x.rank for x in xs}) > 1:
        raise _unsupported(layer, "a merge of masked inputs of different ranks", "merges of inputs of one rank")
    masks = [x.mask for x in xs]
    wide = [None if m is None else _widened(b, m, x.rank) for m, x in zip(masks, xs)]
    b.out_mask = _either(b, masks)
    if op_type == "Mul":
        factors = [x.name if m is None else b.op("Where", [m, x.name, b.scalar(1.0)]) for x, m in zip(xs, wide)]
        y = b.fold("Mul", factors)
        keep = _either(b, wide)
        return y if keep is None else b.op("Where", [keep, y, b.scalar(0.0)], hint=layer.name)
    y, held = xs[0].name, wide[0]
    for x, m in zip(xs[1:], wide[1:]):
        x = x.name if m is None else b.op("Where", [m, x.name, y])
        if held is not None:
            y = b.op("Where", [held, y, x])
        held = None if m is None or held is None else b.op("Or", [held, m])
        y = b.op(op_type, [y, x], hint=layer.name)
    return y


def _merge(op_type, scale=False):
    def emit(b, layer, xs):
        if op_type in ("Mul", "Max", "Min") and any(x.mask is not None for x in xs):
            return _masked_merge(b, layer, xs, op_type)
        if any(x.mask is not None for x in xs):
            b.out_mask = _either(b, [x.mask for x in xs])       # a sum or difference does not read them
        names = [x.name for x in xs]
        if op_type in ("Sum", "Max", "Min"):
            y = b.op(op_type, names, hint=layer.name)
        else:       # Sub takes two; Mul is applied pairwise, left to right, as the layer multiplies
            y = names[0]
            for other in names[1:]:
                y = b.op(op_type, [y, other], hint=layer.name)
        return b.op("Mul", [y, b.scalar(1 / len(xs))]) if scale else y
    return emit


def _concatenate(b, layer, xs):
    axis = int(layer.axis) % xs[0].rank
    if any(x.mask is not None for x in xs):
        # gpu_dl's (Keras's) mask of a concatenation: each input's mask (all True where it has none) spread over
        # the input's shape, concatenated along the axis, then any() over the last axis.
        spread = [b.op("Expand", [b.op("Cast", [_widened(b, x.mask, x.rank)], to=b.onnx.TensorProto.FLOAT),
                                  b.op("Shape", [x.name])]) if x.mask is not None else
                  b.op("ConstantOfShape", [b.op("Shape", [x.name])],
                       value=b.onnx.numpy_helper.from_array(numpy.ones((1,), numpy.float32)))
                  for x in xs]
        b.out_mask = b.op("Cast", [b.reduce("ReduceMax", b.op("Concat", spread, axis=axis), [xs[0].rank - 1],
                                            keepdims=False)], to=b.onnx.TensorProto.BOOL, hint=f"{layer.name}/mask")
    return b.op("Concat", [x.name for x in xs], hint=layer.name, axis=axis)


def _operation(op_type):
    """An operator between symbolic tensors (``x + y``, ``2 * x``, ``-x``; ``layers/operations.py``): its
    arguments in order, the tensors from ``xs`` and the numbers or arrays it keeps as constants."""
    def emit(b, layer, xs):
        # The operands are cast to the result's dtype, as gpu_dl casts them (an integer tensor minus 1 is float).
        dtype = _file_dtype(getattr(layer, "dtype", None) or "float32")
        xs = [x if x.dtype == dtype else _Value(b.op("Cast", [x.name], to=_onnx_dtype(b, dtype)), x.shape, dtype)
              for x in xs]
        return b.op(op_type, _op_arguments(b, layer, xs, dtype), hint=layer.name)
    return emit


def _projection(b, x, kernel, bias, width, hint):
    """``x`` (B, T, D) through an EinsumDense kernel (D, *out) and bias (*out), flattened to (B, T, width)."""
    y = b.op("MatMul", [x, b.const(kernel.reshape(kernel.shape[0], width), f"{hint}/kernel")], hint=hint)
    return y if bias is None else b.op("Add", [y, b.const(bias.reshape(width), f"{hint}/bias")])


def _unary(op_type):
    return lambda b, layer, xs: b.op(op_type, [xs[0].name], hint=layer.name)


def _op_activation(make):
    """A ``gpu_dl.ops`` activation (``ops.gelu(x)``, ``ops.softmax(x, axis)``, ...) as the activation it computes."""
    return lambda b, layer, xs: b.op("Identity", [_activation(b, xs[0].name, make(layer), layer)], hint=layer.name)


def _op_reduction(op_type):
    def emit(b, layer, xs):
        if getattr(layer, "initial", None) is not None:
            raise _unsupported(layer, "initial=", f"{type(layer).__name__.lower()} without initial")
        rank = xs[0].rank
        axis = layer.axis
        axes = list(range(rank)) if axis is None else [a % rank for a in ((axis,) if isinstance(axis, int) else axis)]
        return b.reduce(op_type, xs[0].name, axes, keepdims=layer.keepdims)
    return emit


def _op_transpose(b, layer, xs):
    perm = list(range(xs[0].rank))[::-1] if layer.axes is None else [a % xs[0].rank for a in layer.axes]
    return b.op("Transpose", [xs[0].name], hint=layer.name, perm=perm)


def _op_axes(op_type):
    """ExpandDims and Squeeze: the axis (or axes) as Unsqueeze's and Squeeze's input."""
    def emit(b, layer, xs):
        axis = layer.axis
        if axis is None:
            axes = [i for i, d in enumerate(xs[0].shape) if d == 1]
        else:
            rank = xs[0].rank + (1 if op_type == "Unsqueeze" else 0)
            axes = [a % rank for a in ((axis,) if isinstance(axis, int) else axis)]
        return b.op(op_type, [xs[0].name, b.ints(axes)], hint=layer.name)
    return emit


def _variable_read(b, layer, xs):
    """A variable the traced call reads (``ops.matmul(x, self.w)``): its value, stored as a constant."""
    return b.const(layer.variable.numpy(), layer.variable.path)


# ---------------------------------------------------------------------------------------------- array operations
_INT64_MAX, _INT64_MIN = numpy.iinfo(numpy.int64).max, numpy.iinfo(numpy.int64).min


def _onnx_dtype(b, dtype):
    return b.onnx.helper.np_dtype_to_tensor_dtype(numpy.dtype(dtype))


def _op_arguments(b, layer, xs, dtype=None):
    """The operation's arguments in order: the tensors of ``xs`` and its constants (cast to ``dtype``, else to
    the operation's result dtype) as initializers."""
    tensors = iter(x.name for x in xs)
    dtype = dtype or layer.dtype
    return [next(tensors) if a is None else b.const(numpy.asarray(a).astype(dtype), f"{layer.name}/constant")
            for a in layer.arguments]


def _op_reshape(b, layer, xs):
    # A None in the new shape takes the size of the same axis of the input, as ONNX's 0 does (read at run time),
    # and stands for the rest (-1) past the input's rank, as gpu_dl reshapes; a size of 0 has no such spelling.
    if 0 in layer.newshape:
        raise _unsupported(layer, f"the new shape {layer.newshape}", "new shapes of sizes above 0, -1 and None")
    shape = [(0 if i < xs[0].rank else -1) if n is None else n for i, n in enumerate(layer.newshape)]
    return b.op("Reshape", [xs[0].name, b.ints(shape)], hint=layer.name)


def _op_concatenate(b, layer, xs):
    return b.op("Concat", [x.name for x in xs], hint=layer.name, axis=layer.axis % xs[0].rank)


def _op_stack(b, layer, xs):
    axis = layer.axis % (xs[0].rank + 1)
    return b.op("Concat", [b.op("Unsqueeze", [x.name, b.ints([axis])]) for x in xs], hint=layer.name, axis=axis)


def _op_split(b, layer, xs):
    x = xs[0]
    axis = layer.axis % x.rank
    sizes = [end - start for start, end in layer._bounds(x.shape[axis])]
    if len(sizes) == 1:
        return b.op("Identity", [x.name], hint=layer.name)
    return b.op("Split", [x.name, b.ints(sizes)], hint=layer.name, outputs=len(sizes), axis=axis)


def _op_get_item(b, layer, xs):
    """``x[key]``: one Slice over the sliced and indexed axes, a Squeeze of the indexed ones and an Unsqueeze for
    each None."""
    x = xs[0]
    key = layer.arguments[1]
    items = [key] if isinstance(key, int) else list(key)
    if Ellipsis not in items:
        items.append(Ellipsis)
    where = items.index(Ellipsis)
    fill = x.rank - sum(item is not None for item in items if item is not Ellipsis)
    items[where:where + 1] = [slice(None)] * fill
    starts, ends, axes, steps, squeezed, new = [], [], [], [], [], []
    axis = out = 0
    for item in items:
        if item is None:
            new.append(out)
            out += 1
            continue
        if isinstance(item, int):
            starts.append(item)
            ends.append(item + 1 if item != -1 else _INT64_MAX)
            steps.append(1)
            axes.append(axis)
            squeezed.append(axis)
        elif item != slice(None):
            step = 1 if item.step is None else item.step
            starts.append(item.start if item.start is not None else (0 if step > 0 else _INT64_MAX))
            ends.append(item.stop if item.stop is not None else (_INT64_MAX if step > 0 else _INT64_MIN))
            steps.append(step)
            axes.append(axis)
            out += 1
        else:
            out += 1
        axis += 1
    y = x.name
    if axes:
        y = b.op("Slice", [y, b.ints(starts), b.ints(ends), b.ints(axes), b.ints(steps)], hint=layer.name)
    if squeezed:
        y = b.op("Squeeze", [y, b.ints(squeezed)], hint=layer.name)
    if new:
        y = b.op("Unsqueeze", [y, b.ints(new)], hint=layer.name)
    return y if y != x.name else b.op("Identity", [y], hint=layer.name)


def _op_take(b, layer, xs):
    tensors = iter(v.name for v in xs)
    x = next(tensors)
    indices = next(tensors) if layer.arguments[1] is None else b.const(layer.arguments[1].astype(numpy.int64),
                                                                        f"{layer.name}/indices")
    indices = b.op("Cast", [indices], to=b.onnx.TensorProto.INT64)
    if layer.axis is None:      # numpy's take of the flattened array
        return b.op("Gather", [b.op("Reshape", [x, b.ints([-1])]), indices], hint=layer.name, axis=0)
    return b.op("Gather", [x, indices], hint=layer.name, axis=layer.axis % xs[0].rank)


def _op_where(b, layer, xs):
    condition, first, second = _op_arguments(b, layer, xs)
    condition = b.op("Cast", [condition], to=b.onnx.TensorProto.BOOL)
    return b.op("Where", [condition, first, second], hint=layer.name)


def _file_dtype(dtype):
    """The dtype a tensor of ``dtype`` has in the file: float32 for every float (the weights' dtype)."""
    return "float32" if numpy.dtype(dtype).kind == "f" else str(dtype)


def _op_compare(op_type, negate=False, logical=False):
    """A comparison (or logical operation): its operands cast to their common dtype (to bool for the logical
    ones, which take non-zero as True), compared; a bool result."""
    def emit(b, layer, xs):
        dtype = "bool" if logical else _file_dtype(layer.operand_dtype)
        args = [b.op("Cast", [a], to=_onnx_dtype(b, dtype))
                for a in _op_arguments(b, layer, xs, _file_dtype(layer.operand_dtype))]
        y = b.op(op_type, args, hint=layer.name)
        return b.op("Not", [y], hint=layer.name) if negate else y
    return emit

def _op_cast(b, layer, xs):
    return b.op("Cast", [xs[0].name], hint=layer.name, to=_onnx_dtype(b, _file_dtype(layer.target)))


def _op_one_hot(b, layer, xs):
    """1 where the class equals the position along the new axis, 0 elsewhere (a class out of range, a negative
    one included, gives a row of zeros, as gpu_dl's one_hot does; ONNX's OneHot would wrap negative classes)."""
    x = xs[0]
    axis = layer.axis % (x.rank + 1)
    classes = b.const(numpy.arange(layer.num_classes, dtype=numpy.int64).reshape(
        (-1,) + (1,) * (x.rank - axis)), f"{layer.name}/classes")
    ids = b.op("Unsqueeze", [b.op("Cast", [x.name], to=b.onnx.TensorProto.INT64), b.ints([axis])])
    return b.op("Cast", [b.op("Equal", [ids, classes])], hint=layer.name,
                to=_onnx_dtype(b, _file_dtype(layer.target)))


def _op_arg(op_type):
    def emit(b, layer, xs):
        x = xs[0]
        if layer.axis is None:
            y = b.op(op_type, [b.op("Reshape", [x.name, b.ints([-1])])], axis=0, keepdims=0)
            if layer.keepdims:
                y = b.op("Reshape", [y, b.ints([1] * x.rank)])
        else:
            y = b.op(op_type, [x.name], axis=layer.axis % x.rank, keepdims=int(bool(layer.keepdims)))
        return b.op("Cast", [y], hint=layer.name, to=b.onnx.TensorProto.INT32)
    return emit


def _op_einsum(b, layer, xs):
    return b.op("Einsum", _op_arguments(b, layer, xs), hint=layer.name, equation=layer.subscripts.replace(" ", ""))


def _tensor_mask(b, layer, xs):
    """A tensor's mask read as a tensor in a traced call (``mask`` of a call that names it, ``_keras_mask``)."""
    if xs[0].mask is None:
        raise _unsupported(layer, "the mask of a tensor no mask reached in the file's graph",
                           "masks made by Embedding(mask_zero=True) and Masking")
    return b.op("Identity", [xs[0].mask], hint=layer.name)


def _repeat_vector(b, layer, xs):
    y = b.op("Unsqueeze", [xs[0].name, b.ints([1])])
    return b.op("Tile", [y, b.ints([1, layer.n, 1])], hint=layer.name)


@functools.lru_cache(maxsize=None)
def _converters():
    """class -> f(builder, layer, inputs): the output's name (or names); made once."""
    from ..layers import activation as act, core, conv, embedding, merging, normalization, padding, pooling
    from ..layers import conv_transpose, operations, preprocessing, regularization
    from ..layers import feature_normalization, indexing_operations, resampling, reshaping, steps
    from ..layers import einsum_dense, group_normalization, masking, masks, variable_operations, wrappers
    from ..layers.keras_ops import constants as kc, logic, selection as ksel
    from ..layers.keras_ops import activations as ka, elementwise as ke, reductions as kr, shapes as ks
    from .. import activations
    from . import onnx_attention, onnx_recurrent
    table = {
        core.InputLayer: _identity, core.Dense: _dense, core.Dropout: _identity, core.Flatten: _flatten,
        einsum_dense.EinsumDense: _einsum_dense,
        core.Reshape: _reshape, reshaping.Permute: _permute, reshaping.Identity: _identity,
        conv.Conv1D: _conv, conv.Conv2D: _conv,
        pooling.MaxPooling1D: _pool("MaxPool"), pooling.MaxPooling2D: _pool("MaxPool"),
        pooling.AveragePooling1D: _pool("AveragePool"), pooling.AveragePooling2D: _pool("AveragePool"),
        pooling.GlobalMaxPooling1D: _global_pool("ReduceMax"), pooling.GlobalMaxPooling2D: _global_pool("ReduceMax"),
        pooling.GlobalAveragePooling1D: _global_pool("ReduceMean"),
        pooling.GlobalAveragePooling2D: _global_pool("ReduceMean"),
        normalization.BatchNormalization: _batch_norm, normalization.LayerNormalization: _layer_norm,
        normalization.RMSNormalization: _rms_norm, normalization.UnitNormalization: _unit_norm,
        group_normalization.GroupNormalization: _group_norm, wrappers.TimeDistributed: _time_distributed,
        merging.Add: _merge("Sum"), merging.Subtract: _merge("Sub"), merging.Multiply: _merge("Mul"),
        merging.Average: _merge("Sum", scale=True), merging.Maximum: _merge("Max"), merging.Minimum: _merge("Min"),
        merging.Concatenate: _concatenate,
        embedding.Embedding: _embedding, masking.Masking: _masking, masks.TensorMask: _tensor_mask,
        conv.DepthwiseConv1D: _depthwise_conv, conv.DepthwiseConv2D: _depthwise_conv,
        conv.SeparableConv1D: _depthwise_conv, conv.SeparableConv2D: _depthwise_conv,
        conv_transpose.Conv1DTranspose: _conv_transpose, conv_transpose.Conv2DTranspose: _conv_transpose,
        resampling.UpSampling2D: _upsampling, steps.UpSampling1D: _upsampling,
        resampling.Cropping2D: _cropping, steps.Cropping1D: _cropping,
        operations.Add: _operation("Add"), operations.Subtract: _operation("Sub"),
        operations.Multiply: _operation("Mul"), operations.TrueDivide: _operation("Div"),
        operations.Power: _operation("Pow"), operations.Negative: _operation("Neg"),
        operations.Absolute: _operation("Abs"),
        indexing_operations.Matmul: _operation("MatMul"), variable_operations.VariableRead: _variable_read,
        ke.Maximum: _operation("Max"), ke.Minimum: _operation("Min"),
        ke.Sqrt: _unary("Sqrt"), ke.Exp: _unary("Exp"), ke.Log: _unary("Log"), ke.Tanh: _unary("Tanh"),
        ke.Sigmoid: _unary("Sigmoid"), ke.Relu: _unary("Relu"), ke.Sin: _unary("Sin"), ke.Cos: _unary("Cos"),
        ke.Erf: _unary("Erf"), ke.Softplus: _unary("Softplus"),
        ke.Square: lambda b, layer, xs: b.op("Mul", [xs[0].name, xs[0].name], hint=layer.name),
        ke.Silu: _op_activation(lambda op: activations.make("silu")),
        ke.Gelu: _op_activation(lambda op: activations.make("gelu", approximate=op.approximate)),
        ke.Softmax: _op_activation(lambda op: activations.make("softmax", axis=op.axis)),
        ke.LogSoftmax: _op_activation(lambda op: activations.make("log_softmax", axis=op.axis)),
        ke.Clip: lambda b, layer, xs: b.clip(xs[0].name, layer.x_min, layer.x_max),
        ka.ActivationOperation: _op_activation(lambda op: op.function()),
        kr.Mean: _op_reduction("ReduceMean"), kr.Sum: _op_reduction("ReduceSum"),
        kr.Max: _op_reduction("ReduceMax"), kr.Min: _op_reduction("ReduceMin"),
        ks.Reshape: _op_reshape, ks.Concatenate: _op_concatenate, ks.Stack: _op_stack, ks.Split: _op_split,
        indexing_operations.GetItem: _op_get_item, ksel.Take: _op_take, ksel.Where: _op_where,
        ksel.OneHot: _op_one_hot, ksel.Einsum: _op_einsum, kc.Cast: _op_cast,
        kr.Argmax: _op_arg("ArgMax"), kr.Argmin: _op_arg("ArgMin"), reshaping.RepeatVector: _repeat_vector,
        logic.Greater: _op_compare("Greater"), logic.GreaterEqual: _op_compare("GreaterOrEqual"),
        logic.Less: _op_compare("Less"), logic.LessEqual: _op_compare("LessOrEqual"),
        logic.Equal: _op_compare("Equal"), logic.NotEqual: _op_compare("Equal", negate=True),
        logic.LogicalAnd: _op_compare("And", logical=True), logic.LogicalOr: _op_compare("Or", logical=True),
        logic.LogicalXor: _op_compare("Xor", logical=True), logic.LogicalNot: _op_compare("Not", logical=True),
        ks.Transpose: _op_transpose, ks.ExpandDims: _op_axes("Unsqueeze"), ks.Squeeze: _op_axes("Squeeze"),
        padding.ZeroPadding1D: _padding, padding.ZeroPadding2D: _padding,
        preprocessing.Rescaling: _rescaling, feature_normalization.Normalization: _feature_normalization,
        act.PReLU: _prelu,
        act.Activation: _elementwise_activation, act.ReLU: _elementwise_activation,
        act.LeakyReLU: _elementwise_activation, act.ELU: _elementwise_activation, act.Softmax: _elementwise_activation,
    }
    for cls in (regularization.SpatialDropout1D, regularization.SpatialDropout2D, regularization.SpatialDropout3D,
                regularization.GaussianNoise, regularization.GaussianDropout, regularization.AlphaDropout,
                regularization.ActivityRegularization):
        table[cls] = _identity      # the identity at inference
    # The random image augmentations return their input outside training.
    from .. import layers
    for name in ("RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
                 "RandomBrightness", "RandomHue", "RandomSaturation", "RandomGrayscale", "RandomSharpness",
                 "RandomShear", "RandomErasing", "RandomGaussianBlur", "RandomPerspective", "RandomElasticTransform",
                 "RandomColorJitter", "RandomColorDegeneration", "RandomInvert", "RandomPosterization", "Solarization",
                 "AugMix", "CutMix", "MixUp", "RandAugment"):
        table[getattr(layers, name)] = _identity
    table.update(onnx_attention.converters())
    from . import onnx_volumetric
    table.update(onnx_volumetric.converters())
    table.update(onnx_recurrent.converters())
    return table


def _unsupported(where, what, supported):
    name = where.name if isinstance(where, Layer) else where
    return ValueError(f"Layer '{name}' cannot be exported to ONNX: {what} has no ONNX conversion in gpu_dl. "
                      f"Supported: {supported}.")


def _supported_list():
    return ", ".join(sorted({cls.__name__ for cls in _converters()} | {"Sequential", "Functional"}))


def _converter(layer):
    """The conversion of ``layer``'s class (or of the nearest class it derives from without changing its call)."""
    table = _converters()
    for cls in type(layer).__mro__:
        if cls in table and type(layer).call is cls.call:
            return table[cls]
    return None


# ---------------------------------------------------------------------------------------------- the walk
def _emit_layer(b, layer, xs, out_shapes=None):
    """The ``_Value`` outputs (a list) of ``layer`` called on ``xs`` (with ``b.call_tensors``, the tensor keyword
    arguments of its call)."""
    from . import composite
    from .functional import Functional
    from .model import Model
    from .sequential import Sequential
    tensors, b.call_tensors = b.call_tensors, {}
    if tensors:
        reads = set() if isinstance(layer, Model) or layer._composite else _tensor_readers().get(_converter(layer))
        unread = sorted(set(tensors) - (reads or set()))
        if unread:
            raise _unsupported(layer, f"its call with tensor arguments {unread}", "initial_state of the recurrent "
                               "layers, attention_mask of MultiHeadAttention and GroupQueryAttention")
    # A nested model's or composite layer's inputs carry their masks into its graph, as Keras hands them in.
    if isinstance(layer, (Sequential, Functional)):
        return _emit_model(b, layer, xs)
    if isinstance(layer, Model) or layer._composite:
        graph = composite.active_graph(layer)
        if graph is None:
            why = layer.__dict__.get("_trace_error") or "it never ran"
            raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) cannot be exported to ONNX: its call "
                             f"did not trace to a graph of layers ({why}).")
        return _emit_model(b, graph, xs)
    emit = _converter(layer)
    if emit is None:
        raise _unsupported(layer, f"its class {type(layer).__name__}", _supported_list())
    # A wrapper's conversion emits its inner layer in the middle of its own: the state is the wrapper's again after.
    outer = b.mask, b.out_mask
    b.mask, b.out_mask, b.call_tensors = _mask_reaching(layer, xs, emit), _PASS, tensors
    b.out_shapes = b.out_dtypes = None
    names = emit(b, layer, xs)
    b.call_tensors = {}
    out_mask = _mask_given(layer, b.mask) if b.out_mask is _PASS else b.out_mask
    out_shapes, out_dtypes = b.out_shapes or out_shapes, b.out_dtypes
    b.mask, b.out_mask = outer
    b.out_shapes = b.out_dtypes = None
    names = names if isinstance(names, list) else [names]
    out_dtypes = out_dtypes or ["float32"] * len(names)
    out_masks = out_mask if isinstance(out_mask, list) else [out_mask]     # a list: one per output
    out_masks = out_masks + [None] * (len(names) - len(out_masks))
    if out_shapes is None:
        shape = layer.compute_output_shape(xs[0].shape if len(xs) == 1 else [x.shape for x in xs])
        out_shapes = shape if isinstance(shape, list) else [shape]
    return [_Value(name, shape, dtype, mask=m)
            for name, shape, dtype, m in zip(names, out_shapes, out_dtypes, out_masks)]


def _mask_reaching(layer, xs, emit):
    """The mask of padded steps the call of ``layer`` on ``xs`` reads (a tensor name, or None; a conversion of
    several inputs reads each one's ``mask``): refused where the layer's call reads one its conversion does not
    (merges, ...)."""
    from ..layers.base import call_arguments
    masks = [x.mask for x in xs if x.mask is not None]
    if not masks or layer.drops_mask:       # an operation (x + y, ops.*): the mask ends there, as in gpu_dl
        return None
    if emit not in _mask_readers() and (len(xs) > 1 or layer.takes_mask or call_arguments(type(layer).call)[1]):
        raise _unsupported(layer, f"its call on a mask of padded steps ({type(layer).__name__})", _MASK_READERS)
    return masks[0]


def _mask_given(layer, mask):
    """The mask of a layer's output by Keras's rule (``layers/masks.py``) where its conversion sets none: the
    input's where the layer supports masking without a ``compute_mask`` of its own, none where it does not."""
    from ..layers import masks
    if mask is None or not masks.supports_masking(layer):
        return None
    if type(layer).compute_mask is not Layer.compute_mask:
        raise _unsupported(layer, f"the mask of padded steps its compute_mask gives ({type(layer).__name__})",
                           "layers that pass masks on unchanged")
    return mask


def _mask_readers():
    """The conversions that read the mask reaching their layer."""
    table = _converters()
    from . import onnx_attention, onnx_recurrent
    from ..layers import merging, normalization, pooling, wrappers
    readers = {table[cls] for cls in (
        merging.Add, merging.Subtract, merging.Multiply, merging.Average, merging.Maximum, merging.Minimum,
        merging.Concatenate, pooling.GlobalAveragePooling1D,
        wrappers.TimeDistributed,               # passes the mask on; its inner layer sees none, as in gpu_dl's call
        normalization.BatchNormalization)}      # its mask selects the steps of training statistics only
    return readers | set(onnx_attention.converters().values()) | set(onnx_recurrent.converters().values())


def _tensor_readers():
    """conversion -> the tensor keyword arguments of its layer's call it reads."""
    table = _converters()
    from . import onnx_recurrent
    from ..layers import group_query_attention, multi_head_attention
    readers = {emit: {"initial_state"} for emit in onnx_recurrent.converters().values()}
    readers.update({table[cls]: {"attention_mask"} for cls in (multi_head_attention.MultiHeadAttention,
                                                               group_query_attention.GroupedQueryAttention)})
    return readers


_MASK_READERS = ("masks read by the recurrent layers, Bidirectional, GlobalAveragePooling1D, the merges and the "
                 "attention layers, passed on by TimeDistributed and by layers that pass masks on unchanged")


def _emit_model(b, model, inputs):
    """The ``_Value`` outputs of a Sequential or functional model on ``inputs`` (a list of ``_Value``)."""
    from ..layers.symbolic import KerasTensor, flatten_tensors
    from .sequential import Sequential
    if isinstance(model, Sequential):
        values = inputs
        for layer in model.layers:
            values = _emit_layer(b, layer, values)
        return values
    known = dict(zip(model._inputs, inputs))
    def values(tensors):
        # An RNN of several cells takes its initial states nested per cell.
        return [values(t) for t in tensors] if isinstance(tensors, (list, tuple)) else known[tensors]
    for node in model._run_nodes:
        if getattr(node, "call_leaves", None) is not None:
            raise _unsupported(node.layer, "its call with tensor arguments beyond the first",
                               "calls on one tensor or a list of them")
        tensors = {k: values(v) for k, v in node.kwargs.items() if k != "training" and flatten_tensors([v])}
        arg = node.args[0]
        # Without the mask of a tensor that a call traced before this one took off (MultiHeadAttention's in a
        # composite layer's call, layers/masks.py drop_masks), as gpu_dl runs the graph.
        xs = [_Value(known[t].name, known[t].shape, known[t].dtype, None) if id(t) in node.unmasked_inputs
              else known[t] for t in (arg if isinstance(arg, (list, tuple)) else [arg])]
        given = tensors.pop("mask", None)
        if given is not None:       # a mask the call was given (a tensor of the graph) instead of the edges'
            given = given if isinstance(given, list) else [given]
            xs = [_Value(x.name, x.shape, x.dtype, None if m is None else b.op(
                "Cast", [m.name], to=b.onnx.TensorProto.BOOL)) for x, m in zip(xs, given + [None] * len(xs))]
        b.call_options = {k: v for k, v in node.kwargs.items() if k not in tensors and k != "mask"}
        b.call_tensors, b.mask_given = tensors, given is not None
        outs = _emit_layer(b, node.layer, xs, [t.shape for t in node.outputs])
        b.call_options, b.mask_given = {}, False
        if len(outs) != len(node.outputs):
            raise _unsupported(node.layer, "a call of several outputs", "calls of one output")
        for t, v in zip(node.outputs, outs):
            if isinstance(t, KerasTensor):
                # Weights and float tensors are float32 in the file; integer and boolean results keep their dtype.
                known[t] = _Value(v.name, v.shape, _file_dtype(t.dtype or "float32"), v.mask)
    return [known[t] for t in model._outputs]


def _has_composite(model):
    from .functional import Functional
    from .sequential import Sequential
    if isinstance(model, Sequential):
        layers = model.layers
    elif isinstance(model, Functional):
        layers = [n.layer for n in model._run_nodes]
    else:
        return model._composite
    return any(_has_composite(layer) for layer in layers)


class _InputSpec:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), str(dtype)


def _model_inputs(model):
    """The ``_InputSpec`` of each of the model's inputs, as Keras's export names and shapes them."""
    from .functional import Functional
    from .sequential import Sequential
    if not model.built:
        raise ValueError(f"Model '{model.name}' has not been built yet: build it (or call it on data) before "
                         "export.")
    if isinstance(model, (Functional, Sequential)):
        return [_InputSpec(t.name, (None,) + tuple(t.shape[1:]), t.dtype) for t in model.inputs]
    config = model.get_build_config() or {}
    shape = config.get("input_shape")
    if shape is None:
        raise ValueError(f"Model '{model.name}' has never been called: call it on data once before export.")
    shapes = shape if shape and isinstance(shape[0], (list, tuple)) else [shape]
    dtype = getattr(model, "input_dtype", None) or "float32"
    return [_InputSpec(f"input_{i}", (None,) + tuple(s[1:]), dtype) for i, s in enumerate(shapes)]


def _signature(model, input_signature):
    """The inputs' specs, with the shapes (and names, where given) of ``input_signature``: one ``InputSpec``,
    ``KerasTensor``, array or shape tuple per input (a list of them, or Keras's ``[[...]]`` for several). As in
    Keras, a tensor's or array's batch size is left dynamic; a spec's or a tuple's sizes are kept."""
    specs = _model_inputs(model)
    if input_signature is None:
        return specs
    given = list(input_signature) if isinstance(input_signature, (list, tuple)) else [input_signature]
    if len(given) == 1 and isinstance(given[0], (list, tuple)) and given[0] and \
            not isinstance(given[0][0], (int, type(None))):
        given = list(given[0])      # Keras's [[spec, spec]] for a functional model of several inputs
    if len(given) != len(specs):
        raise ValueError(f"input_signature gives {len(given)} input(s); model '{model.name}' takes {len(specs)}.")
    out = []
    for spec, g in zip(specs, given):
        shape = g if isinstance(g, (list, tuple)) else getattr(g, "shape", None)
        if shape is None or len(shape) != len(spec.shape) or any(
                want is not None and got is not None and int(got) != want for want, got in zip(spec.shape, shape)):
            raise ValueError(f"input_signature: {g!r} does not fit input '{spec.name}' of shape {spec.shape}.")
        shape = tuple(None if d is None else int(d) for d in shape)
        if not isinstance(g, (list, tuple)) and type(g).__name__ != "InputSpec" and shape:
            shape = (None,) + shape[1:]     # as Keras's export takes a tensor's: its batch size left dynamic
        # The dtype stays the model's input dtype, which the graph's first nodes are made for.
        out.append(_InputSpec(getattr(g, "name", None) or spec.name, shape, spec.dtype))
    return out


def _value_info(onnx, name, shape, dtype, input_index=None):
    dims = []
    for axis, d in enumerate(shape):
        if d is not None:
            dims.append(int(d))
        elif axis == 0:
            dims.append("batch")
        else:
            dims.append(None if input_index is None else f"dim_{input_index}_{axis}")
    elem = onnx.helper.np_dtype_to_tensor_dtype(numpy.dtype(dtype))
    return onnx.helper.make_tensor_value_info(name, elem, dims)


def build_model_proto(model, input_signature=None, opset_version=None):
    """The ONNX ``ModelProto`` of ``model``'s inference pass (see the module docstring); raises before anything
    is made where a layer has no conversion."""
    onnx = _onnx()
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset_version must be an integer from {MIN_OPSET} to {newest} (the installed onnx "
                         f"package's newest), got {opset_version!r}.")
    specs = _signature(model, input_signature)
    if _has_composite(model):
        # A composite layer runs the graph its call traced for the last call's training value: one inference
        # call makes that the inference graph.
        zeros = [numpy.zeros(tuple(1 if d is None else d for d in s.shape), s.dtype) for s in specs]
        try:
            model(zeros if len(zeros) > 1 else zeros[0], training=False)
        except Exception as e:
            raise ValueError(f"Model '{model.name}' holds composite layers, which export runs once on zeros of the "
                             f"input shapes ({[z.shape for z in zeros]}, unknown sizes taken as 1) to trace their "
                             f"inference graphs; that call failed ({type(e).__name__}: {e}). Give input_signature "
                             "with sizes the model takes.") from e
    b = _Builder(onnx, opset)
    for s in specs:
        if s.name in b._used:
            raise ValueError(f"Model '{model.name}': two inputs are named '{s.name}'; ONNX needs distinct names.")
        b._used.add(s.name)
    # The outputs are named after the model's output names, kept from the layers' own tensors' names.
    output_names = [n for n in getattr(model, "output_names", None) or [] if n not in b._used]
    b._used.update(output_names)
    outputs = _emit_layer(b, model, [_Value(s.name, s.shape, _file_dtype(s.dtype)) for s in specs])
    if len(output_names) != len(outputs) or len(set(output_names)) != len(output_names):
        output_names = [b.name(f"output_{i}") for i in range(len(outputs))]
    graph_outputs = []
    for final, value in zip(output_names, outputs):
        b.nodes.append(onnx.helper.make_node("Identity", [value.name], [final], name=b.name(f"{final}_node")))
        graph_outputs.append(_value_info(onnx, final, value.shape, value.dtype))
    # Stateful layers' states (onnx_recurrent.py) after the model's inputs and outputs.
    graph_outputs += [_value_info(onnx, name, shape, "float32") for name, shape in b.graph_outputs]
    graph_inputs = [_value_info(onnx, s.name, s.shape, s.dtype, i) for i, s in enumerate(specs)]
    graph_inputs += [_value_info(onnx, name, shape, "float32") for name, shape in b.graph_inputs]
    graph = onnx.helper.make_graph(b.nodes, model.name, graph_inputs, graph_outputs, initializer=b.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="gpu_dl")
    # ONNX Runtime reads files whose IR version it knows; an onnx package newer than the runtime would write a
    # newer one than the opset needs.
    if opset <= 20:
        proto.ir_version = min(proto.ir_version, 9)
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, filepath, verbose=None, input_signature=None, opset_version=None, **kwargs):
    """Writes ``model`` as an ONNX file at ``filepath`` (see the module docstring)."""
    from ..utils.io_utils import print_msg
    from .saving import atomic_write
    if kwargs:
        raise TypeError(f"export(format='onnx') got unexpected keyword argument(s) {sorted(kwargs)}; it takes "
                        "verbose, input_signature and opset_version.")
    proto = build_model_proto(model, input_signature, opset_version)
    path = str(filepath)
    atomic_write(path, lambda tmp: _onnx().save_model(proto, tmp))
    if verbose is None or verbose:
        print_msg(f"Saved artifact at '{path}'.")
