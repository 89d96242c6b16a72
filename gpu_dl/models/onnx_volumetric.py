"""The ONNX conversions of the volumetric layers, Dot, the adaptive poolings, the image-size layers, AutoContrast,
Pipeline, SpectralNormalization, Discretization and CategoryEncoding (``onnx_export.py`` walks the model and calls
them).

The 3-D convolutions, poolings, paddings, croppings and UpSampling3D are their 1-D and 2-D siblings' conversions
on one more spatial axis (ONNX's Conv, ConvTranspose, MaxPool, AveragePool, Pad, Slice and Resize take any
number). ReflectionPadding2D is a Pad of mode "reflect", which mirrors as ``numpy.pad(mode="reflect")`` does.

Dot is an Einsum of its two inputs (the summed axis of each, the batch axis shared), each scaled first to unit
L2 norm along its axis where ``normalize=True``, the squared norm floored at 1e-14 as gpu_dl floors it.

The adaptive poolings pool PyTorch's windows (``ops/adaptive_pool.py``) one spatial axis at a time: a Gather
of each window's positions, then ReduceMax, or the sum of the window's own positions over its width; the input's
spatial sizes must be known.

Resizing, CenterCrop and RandomCrop export what gpu_dl's predict computes (``layers/image_resizing.py``): the
images channels-first, padded by Pad (``pad_to_aspect_ratio``'s ``fill_value``), cut by Slice to the window the
layer plans, and brought to ``height`` x ``width`` by gathering the entries ``ops/resize.py``'s sampling plan
reads (weighted, for bilinear), the plan made in the file from the sizes it is run on, in the same float steps:
``"bilinear"`` with half-pixel centres (PyTorch's ``align_corners=False``, clamped at the edges, which Keras
3.15's torch backend and gpu_dl compute), ``"nearest"`` as PyTorch's ``nearest-exact``, ``floor((o + 0.5) * in
/ out)``. (ONNX's Resize computes its positions otherwise, and rounds some of them the other way.) Where the
input's height and width are known, the window is the layer's own plan for them, and a window already of the
target size is not resized; where they are not, the plan's integer arithmetic runs in int64 nodes on the sizes
the file is run on, and such a window is resized with a scale of 1, which gives it back unchanged (an infinity
beside an entry, which bilinear weighs by 0, makes a NaN there). RandomCrop returns its input at inference (as
Keras 3.15), so it is the identity, and its output keeps the input's shape.

AutoContrast, which applies at inference too, stretches each channel of each image between its minimum and
maximum (ReduceMin, ReduceMax) with the layer's arithmetic. A Pipeline is its layers' conversions in order (its
call at inference, which predict makes); SpectralNormalization is its layer's, with the kernel training left
normalized. Discretization counts the boundaries at most each value (int32 ids); it and CategoryEncoding encode
ids as one-hot, multi-hot or count vectors by comparing them with each id.
"""
from __future__ import annotations

import numpy

from .onnx_export import (_Value, _conv, _conv_transpose, _cropping, _global_pool, _identity, _padding, _pool,
                          _to_first, _to_last, _unsupported, _upsampling)
from ..ops.merge import L2_EPSILON


# ---------------------------------------------------------------------------------------------- Dot
def _unit_norm_along(b, x, axis):
    """``x * 1 / sqrt(max(sum(x^2), eps^2))`` along ``axis``, as ``ops.merge.l2_normalize`` computes it."""
    squares = b.reduce("ReduceSum", b.op("Mul", [x, x]), [axis])
    floored = b.op("Max", [squares, b.scalar(L2_EPSILON * L2_EPSILON)])
    return b.op("Mul", [x, b.op("Div", [b.scalar(1.0), b.op("Sqrt", [floored])])])


def _dot(b, layer, xs):
    x, y = xs
    ax, ay = layer._resolved_axes([x.shape, y.shape])
    names = [x.name, y.name]
    if layer.normalize:
        names = [_unit_norm_along(b, names[0], ax), _unit_norm_along(b, names[1], ay)]
    # "a" the batch axis, "z" the summed one, the others a letter each: x's other axes, then y's, as Keras orders
    letters = iter("bcdefghijklmnopqrstuvwxy")
    terms = [["a"] + [("z" if i == axis else next(letters)) for i in range(1, v.rank)] for v, axis in
             zip((x, y), (ax, ay))]
    kept = [t for t in terms[0] if t != "z"] + [t for t in terms[1][1:] if t != "z"]
    equation = f"{''.join(terms[0])},{''.join(terms[1])}->{''.join(kept)}"
    out = b.op("Einsum", names, hint=layer.name, equation=equation)
    return b.op("Unsqueeze", [out, b.ints([1])]) if len(kept) == 1 else out


# ---------------------------------------------------------------------------------------------- image sizes
def _as_float32(b, x):
    """``x`` as float32, which gpu_dl casts these layers' inputs to (uint8 images, integer values)."""
    if x.dtype == "float32":
        return x
    return _Value(b.op("Cast", [x.name], to=b.onnx.TensorProto.FLOAT), x.shape)


def _resized_along(b, t, axis, n_out, interpolation):
    """``t`` resized along ``axis`` to ``n_out`` entries by ``ops.resize.axis_plan``'s sampling plan, made in the
    file from the size the input has there, its float steps in the plan's types: the position
    ``float32(float64(scale) * (o + 0.5))`` (nearest: its floor) or ``float32(float64(scale) * (o + 0.5) - 0.5)``
    (bilinear: floored at 0; the entries below and above, weighted), ``scale = float32(n_in) / float32(n_out)``,
    the indices at most ``n_in - 1``; the entries gathered. ONNX's Resize takes its positions as
    ``(o + 0.5) / (n_out / n_in)``, which rounds otherwise: some exact halves the other way for nearest
    (2 -> 41 entries), and bilinear weights that differ in their last bits."""
    to = b.onnx.TensorProto
    n_in = b.op("Gather", [b.op("Shape", [t]), b.ints([axis])], axis=0)
    last = b.op("Sub", [n_in, b.ints([1])])
    scale = b.op("Cast", [b.op("Div", [b.op("Cast", [n_in], to=to.FLOAT), b.scalar(n_out)])], to=to.DOUBLE)
    # (o + 0.5) * scale as ((2o + 1) * scale) / 2, and minus 0.5 as ((2o + 1) * scale - 1) / 2: doubling and
    # halving are exact in binary floating point, so each rounds as the plan's float64 steps do.
    odd = b.op("Mul", [b.op("Cast", [b.ints(2 * numpy.arange(n_out) + 1)], to=to.DOUBLE), scale])
    two = b.op("Cast", [b.ints([2])], to=to.DOUBLE)
    if interpolation == "nearest":
        position = b.op("Cast", [b.op("Div", [odd, two])], to=to.FLOAT)
        index = b.op("Min", [b.op("Cast", [b.op("Floor", [position])], to=to.INT64), last])
        return b.op("Gather", [t, index], axis=axis)
    shifted = b.op("Div", [b.op("Sub", [odd, b.op("Cast", [b.ints([1])], to=to.DOUBLE)]), two])
    source = b.op("Max", [b.op("Cast", [shifted], to=to.FLOAT), b.scalar(0.0)])
    lower = b.op("Min", [b.op("Cast", [b.op("Floor", [source])], to=to.INT64), last])
    upper = b.op("Min", [b.op("Add", [lower, b.ints([1])]), last])
    trailing = b.ints([n_out] + [1] * (3 - axis))        # the weights broadcast over the axes after ``axis``
    upper_weight = b.clip(b.op("Sub", [source, b.op("Cast", [lower], to=to.FLOAT)]), 0.0, 1.0)
    lower_weight = b.op("Sub", [b.scalar(1.0), upper_weight])
    below, above = (b.op("Mul", [b.op("Gather", [t, index], axis=axis), b.op("Reshape", [weight, trailing])])
                    for index, weight in ((lower, lower_weight), (upper, upper_weight)))
    return b.op("Add", [below, above])


def _resized(b, t, height, width, interpolation, hint, known=(None, None)):
    """Channels-first images ``t`` resized to ``height`` x ``width`` as ``ops.resize.resize`` resizes them: the
    width first, then the height; an axis whose ``known`` size is the target's is left as it is."""
    for axis, n_out, n_in in ((3, width, known[1]), (2, height, known[0])):
        if n_in != n_out:
            t = _resized_along(b, t, axis, n_out, interpolation)
    return b.op("Identity", [t], hint=hint)


def _window_at_run_time(b, layer, t):
    """Channels-first images ``t`` of a height and width known at run time only, padded or cut to the window the
    layer's ``_plan`` takes: its integer arithmetic on the sizes (``aspect_crop_box``, ``Resizing._plan``), in
    int64 nodes (Div truncates, the floor of the non-negative operands here)."""
    from ..layers.image_resizing import CenterCrop
    shape = b.op("Shape", [t])
    h, w = (b.op("Gather", [shape, b.ints([axis])], axis=0) for axis in (2, 3))
    height, width, one, two = b.ints([layer.height]), b.ints([layer.width]), b.ints([1]), b.ints([2])

    def scaled(size, numerator, denominator):       # int(float(size * numerator) / denominator)
        return b.op("Div", [b.op("Mul", [size, numerator]), denominator])

    def half(a, c):
        return b.op("Div", [b.op("Sub", [a, c]), two])
    if getattr(layer, "pad_to_aspect_ratio", False):
        pad_h = half(b.op("Max", [h, scaled(w, height, width)]), h)
        pad_w = half(b.op("Max", [w, scaled(h, width, height)]), w)
        zeros = b.ints([0, 0])
        pads = b.op("Concat", [zeros, pad_h, pad_w, zeros, pad_h, pad_w], axis=0)
        return b.op("Pad", [t, pads, b.scalar(layer.fill_value)], mode="constant")
    if not (isinstance(layer, CenterCrop) or layer.crop_to_aspect_ratio):
        return t
    rows = b.op("Max", [b.op("Min", [h, scaled(w, height, width)]), one])
    columns = b.op("Max", [b.op("Min", [w, scaled(h, width, height)]), one])
    top, left = half(h, rows), half(w, columns)
    if isinstance(layer, CenterCrop):       # the centred target-sized window where the image holds one
        fits = b.op("And", [b.op("GreaterOrEqual", [h, height]), b.op("GreaterOrEqual", [w, width])])
        top, left = b.op("Where", [fits, half(h, height), top]), b.op("Where", [fits, half(w, width), left])
        rows, columns = b.op("Where", [fits, height, rows]), b.op("Where", [fits, width, columns])
    starts = b.op("Concat", [top, left], axis=0)
    ends = b.op("Concat", [b.op("Add", [top, rows]), b.op("Add", [left, columns])], axis=0)
    return b.op("Slice", [t, starts, ends, b.ints([2, 3])])


def _image_size(b, layer, xs):
    """Resizing and CenterCrop: pad, crop to the layer's window (its ``_plan`` for the input's sizes), resize."""
    x = _as_float32(b, xs[0])
    first = layer.data_format == "channels_first"
    h, w = x.shape[2:4] if first else x.shape[1:3]
    t = x.name if first else _to_first(b, x.name, 4)
    if h is None or w is None:
        # A window already of the target's size is resized with a scale of 1, which gives it back unchanged.
        y = _resized(b, _window_at_run_time(b, layer, t), layer.height, layer.width, layer.interpolation,
                     layer.name)
    else:
        (top, left, rows, columns), (pad_h, pad_w) = layer._plan(h, w)
        if pad_h or pad_w:
            pads = b.ints([0, 0, pad_h, pad_w, 0, 0, pad_h, pad_w])
            t = b.op("Pad", [t, pads, b.scalar(layer.fill_value)], mode="constant")
        if (top, left, rows, columns) != (0, 0, h + 2 * pad_h, w + 2 * pad_w):
            t = b.op("Slice", [t, b.ints([top, left]), b.ints([top + rows, left + columns]), b.ints([2, 3])])
        y = _resized(b, t, layer.height, layer.width, layer.interpolation, layer.name, (rows, columns))
    return y if first else _to_last(b, y, 4)


def _random_crop(b, layer, xs):
    """The identity at inference, keeping the input's shape (the layer's symbolic shape is the crop's)."""
    b.out_shapes = [xs[0].shape]
    return _identity(b, layer, xs)


def _rescaled(b, x, source, target):
    """``ops.color.rescale``: ``x`` mapped from the range ``source`` onto ``target``, in its order of steps."""
    if float(source[0]) == float(target[0]) and float(source[1]) == float(target[1]):
        return x
    unit = b.op("Div", [b.op("Sub", [x, b.scalar(source[0])]), b.scalar(float(source[1]) - float(source[0]))])
    return b.op("Add", [b.op("Mul", [unit, b.scalar(float(target[1]) - float(target[0]))]), b.scalar(target[0])])


def _auto_contrast(b, layer, xs):
    """Each channel of each image stretched over ``value_range`` with Keras's arithmetic on [0, 255], as
    ``layers/tone_augmentation.py`` computes it; a constant channel kept."""
    x = _as_float32(b, xs[0])
    byte = (0, 255)
    axes = [2, 3] if layer.data_format == "channels_first" else [1, 2]
    low, high = b.reduce("ReduceMin", x.name, axes), b.reduce("ReduceMax", x.name, axes)
    v = _rescaled(b, x.name, layer.value_range, byte)
    v_low, v_high = (low, high) if v == x.name else (b.reduce("ReduceMin", v, axes), b.reduce("ReduceMax", v, axes))
    width = b.op("Where", [b.op("Greater", [v_high, v_low]), b.op("Sub", [v_high, v_low]), b.scalar(1.0)])
    scale = b.op("Mul", [b.op("Div", [b.scalar(1.0), width]), b.scalar(255.0)])
    offset = b.op("Mul", [b.op("Neg", [v_low]), scale])
    z = b.clip(b.op("Add", [b.op("Mul", [v, scale]), offset]), 0.0, 255.0)
    spread = b.op("Greater", [high, low])
    return b.op("Where", [spread, _rescaled(b, z, byte, layer.value_range), x.name], hint=layer.name)


def _in_order(inner_layers):
    """The conversion of a layer that runs ``inner_layers(layer)`` in order at inference (a Pipeline's layers, the
    layer SpectralNormalization wraps); their outputs' shapes and dtypes are the layer's."""
    def emit(b, layer, xs):
        from .onnx_export import _emit_layer
        values = xs
        for inner in inner_layers(layer):
            values = _emit_layer(b, inner, values)
        b.out_shapes, b.out_dtypes = [v.shape for v in values], [v.dtype for v in values]
        return [v.name for v in values]
    return emit


# ---------------------------------------------------------------------------------------------- categories
def _encoded(b, layer, ids, shape, mode, depth):
    """int64 ``ids`` of ``shape`` encoded as ``layers/category_encoding.py``'s ``encode_categorical`` encodes them,
    float32 (the file's float type, whatever the dtype policy): one-hot over a new last axis (a last axis of 1
    replaced); multi-hot and count per sample (rank 2) or over all ids (rank 1). Ids outside [0, depth) count
    nowhere."""
    if mode == "one_hot" and len(shape) > 1 and shape[-1] == 1:
        ids, shape = b.op("Squeeze", [ids, b.ints([-1])]), shape[:-1]
    elif mode != "one_hot" and len(shape) > 2:
        raise _unsupported(layer, f"output_mode={mode!r} on inputs of rank {len(shape)}", "inputs of rank 1 or 2")
    hits = b.op("Cast", [b.op("Equal", [b.op("Unsqueeze", [ids, b.ints([-1])]), b.ints(numpy.arange(depth))])],
                to=b.onnx.TensorProto.FLOAT)
    if mode == "one_hot":
        return b.op("Identity", [hits], hint=layer.name)
    counts = b.reduce("ReduceSum", hits, [len(shape) - 1], keepdims=False)
    if mode == "multi_hot":
        counts = b.op("Cast", [b.op("Greater", [counts, b.scalar(0.0)])], to=b.onnx.TensorProto.FLOAT)
    return b.op("Identity", [counts], hint=layer.name)


def _category_encoding(b, layer, xs):
    """Ids truncated to integers (as gpu_dl casts float ids), then encoded; ids outside [0, num_tokens), which
    gpu_dl's predict refuses, count nowhere in the file."""
    if b.call_options.get("count_weights") is not None:
        raise _unsupported(layer, "count_weights", "CategoryEncoding without count_weights")
    ids = b.op("Cast", [xs[0].name], to=b.onnx.TensorProto.INT64)
    return _encoded(b, layer, ids, xs[0].shape, layer.output_mode, layer.num_tokens)


def _discretization(b, layer, xs):
    """The bin of each value: how many boundaries (float32) are at most it (``searchsorted(side="right")``), as
    int32, or encoded over ``len(bin_boundaries) + 1`` bins."""
    if layer.bin_boundaries is None:
        raise _unsupported(layer, "a Discretization with neither bin_boundaries nor adapt()",
                           "Discretization with its bin boundaries")
    x = _as_float32(b, xs[0]).name
    boundaries = b.const(numpy.asarray(layer.bin_boundaries, dtype=numpy.float32), f"{layer.name}/bin_boundaries")
    reached = b.op("Cast", [b.op("GreaterOrEqual", [b.op("Unsqueeze", [x, b.ints([-1])]), boundaries])],
                   to=b.onnx.TensorProto.INT64)
    ids = b.reduce("ReduceSum", reached, [xs[0].rank], keepdims=False)
    if layer.output_mode == "int":
        b.out_dtypes = ["int32"]
        return b.op("Cast", [ids], hint=layer.name, to=b.onnx.TensorProto.INT32)
    return _encoded(b, layer, ids, xs[0].shape, layer.output_mode, layer.depth)


# ---------------------------------------------------------------------------------------------- adaptive pooling
def _adaptive_pool(op_type):
    """Adaptive pooling one spatial axis at a time, the last first (as ``ops/adaptive_pool.py``): the windows of
    the axis gathered as a new axis after it, (..., out, width, ...), reduced over it. Windows shorter than the
    widest repeat their last position (no change to a max; the mean leaves the repeats out)."""
    from ..ops.adaptive_pool import adaptive_windows

    def emit(b, layer, xs):
        x = xs[0]
        rank = len(layer.output_size)
        first = 2 if layer.data_format == "channels_first" else 1
        sizes = x.shape[first:first + rank]
        if any(s is None for s in sizes):
            raise _unsupported(layer, f"adaptive pooling of inputs of unknown spatial sizes (input shape {x.shape})",
                               "inputs of known spatial sizes (give input_signature with them)")
        t = x.name
        for k in reversed(range(rank)):
            axis = first + k
            starts, ends = (numpy.asarray(e) for e in zip(*adaptive_windows(sizes[k], layer.output_size[k])))
            places = starts[:, None] + numpy.arange(int((ends - starts).max()))
            windows = b.op("Gather", [t, b.ints(numpy.minimum(places, ends[:, None] - 1))], axis=axis)
            if op_type == "ReduceMax":
                t = b.reduce("ReduceMax", windows, [axis + 1], keepdims=False)
                continue
            trailing = (1,) * (x.rank - axis - 1)        # the axes after the pooled one, broadcast
            inside = b.const((places < ends[:, None]).reshape(places.shape + trailing), "inside")
            total = b.reduce("ReduceSum", b.op("Where", [inside, windows, b.scalar(0.0)]), [axis + 1], keepdims=False)
            t = b.op("Div", [total, b.const((ends - starts).astype(numpy.float32).reshape((-1,) + trailing))])
        return b.op("Identity", [t], hint=layer.name)
    return emit


def converters():
    """class -> conversion, for ``onnx_export._converters``."""
    from ..layers import adaptive_pooling as ap
    from ..layers import conv3d, conv3d_transpose, image_resizing, merging, padding, pipeline, pooling3d, resampling
    from ..layers import category_encoding, discretization, spectral_normalization, tone_augmentation
    table = {cls: _adaptive_pool("ReduceMax") for cls in (ap.AdaptiveMaxPooling1D, ap.AdaptiveMaxPooling2D,
                                                          ap.AdaptiveMaxPooling3D)}
    table.update({cls: _adaptive_pool("ReduceMean") for cls in (ap.AdaptiveAveragePooling1D,
                                                                ap.AdaptiveAveragePooling2D,
                                                                ap.AdaptiveAveragePooling3D)})
    return {**table,
        conv3d.Conv3D: _conv, conv3d_transpose.Conv3DTranspose: _conv_transpose,
        pooling3d.MaxPooling3D: _pool("MaxPool"), pooling3d.AveragePooling3D: _pool("AveragePool"),
        pooling3d.GlobalMaxPooling3D: _global_pool("ReduceMax"),
        pooling3d.GlobalAveragePooling3D: _global_pool("ReduceMean"),
        padding.ZeroPadding3D: _padding, padding.ReflectionPadding2D: _padding,
        resampling.Cropping3D: _cropping, resampling.UpSampling3D: _upsampling,
        merging.Dot: _dot,
        image_resizing.Resizing: _image_size, image_resizing.CenterCrop: _image_size,
        image_resizing.RandomCrop: _random_crop, pipeline.Pipeline: _in_order(lambda layer: layer.layers),
        spectral_normalization.SpectralNormalization: _in_order(lambda layer: [layer.layer]),
        tone_augmentation.AutoContrast: _auto_contrast,
        category_encoding.CategoryEncoding: _category_encoding, discretization.Discretization: _discretization,
    }
