"""The cases of ``keras.ops.nn``'s pooling, convolution, normalization, attention, loss and CTC functions that
``test_keras_ops_nn_control.py`` and ``test_keras_oracle_keras_ops_nn_control.py`` share: each an expression
written once for any library's ``ops``, its inputs, and what plain NumPy makes of it."""
import itertools

import numpy

from numpy_windows import as_tuple, channels_first, channels_last, windows

# ------------------------------------------------------------------ plain NumPy expectations


def np_pool(x, size, strides=None, padding="valid", data_format="channels_last", kind="max"):
    x = channels_last(numpy.asarray(x, dtype="float64"), data_format)
    rank = x.ndim - 2
    size = as_tuple(size, rank)
    strides = size if strides is None else as_tuple(strides, rank)
    # NaN padding: the positions outside are left out of the maximum and of the mean
    views = windows(x, size, strides, padding, (1,) * rank, fill=numpy.nan)
    reduce = numpy.nanmax if kind == "max" else numpy.nanmean
    return channels_first(reduce(views, axis=tuple(range(-rank, 0))), data_format)


def np_adaptive(x, output_size, data_format="channels_last", kind="max"):
    x = channels_last(numpy.asarray(x, dtype="float64"), data_format)
    rank = x.ndim - 2
    out = as_tuple(output_size, rank)
    bounds = [[(i * n // o, -(-(i + 1) * n // o)) for i in range(o)] for n, o in zip(x.shape[1:-1], out)]
    y = numpy.empty((x.shape[0],) + out + (x.shape[-1],))
    for index in numpy.ndindex(*out):
        block = x[(slice(None),) + tuple(slice(*bounds[a][i]) for a, i in enumerate(index))]
        axes = tuple(range(1, rank + 1))
        y[(slice(None),) + index] = block.max(axis=axes) if kind == "max" else block.mean(axis=axes)
    return channels_first(y, data_format)


def np_depthwise(x, kernel, strides=1, padding="valid", data_format="channels_last", dilation_rate=1):
    x = channels_last(numpy.asarray(x, dtype="float64"), data_format)
    rank = x.ndim - 2
    window = kernel.shape[:rank]
    strides, dilation = as_tuple(strides, rank), as_tuple(dilation_rate, rank)
    views = windows(x, window, strides, padding, dilation)
    letters = "ij"[:rank]
    spatial = "ab"[:rank]
    y = numpy.einsum(f"n{spatial}c{letters},{letters}cm->n{spatial}cm", views, kernel)
    return channels_first(y.reshape(y.shape[:-2] + (-1,)), data_format)


def np_separable(x, depthwise_kernel, pointwise_kernel, strides=1, padding="valid", data_format="channels_last",
                 dilation_rate=1):
    mid = channels_last(np_depthwise(x, depthwise_kernel, strides, padding, data_format, dilation_rate), data_format)
    return channels_first(mid @ pointwise_kernel.reshape(pointwise_kernel.shape[-2:]), data_format)


def np_layer_norm(x, gamma=None, beta=None, axis=-1, epsilon=1e-7):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    y = (x - x.mean(axis=axes, keepdims=True)) / numpy.sqrt(x.var(axis=axes, keepdims=True) + epsilon)
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    return y * (1 if gamma is None else gamma.reshape(shape)) + (0 if beta is None else beta.reshape(shape))


def np_rms_norm(x, scale=None, axis=-1, epsilon=1e-7):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    y = x / numpy.sqrt((x ** 2).mean(axis=axes, keepdims=True) + epsilon)
    return y if scale is None else y * scale


def np_batch_norm(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    y = (x - mean.reshape(shape)) / numpy.sqrt(variance.reshape(shape) + epsilon)
    return y * (1 if scale is None else scale.reshape(shape)) + (0 if offset is None else offset.reshape(shape))


def np_attention(q, k, v, bias=None, mask=None, scale=None, is_causal=False):
    groups = q.shape[2] // k.shape[2]
    k, v = numpy.repeat(k, groups, axis=2), numpy.repeat(v, groups, axis=2)
    scale = 1 / numpy.sqrt(q.shape[-1]) if scale is None else scale
    logits = numpy.einsum("btnh,bsnh->bnts", q, k) * scale + (0 if bias is None else bias)
    keep = numpy.ones(logits.shape, bool)
    if mask is not None:
        keep &= mask
    if is_causal:
        keep &= numpy.tril(numpy.ones(logits.shape[-2:], bool))
    logits = numpy.where(keep, logits, -numpy.inf)
    p = numpy.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return numpy.einsum("bnts,bsnh->btnh", p, v)


def _sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


def np_binary_crossentropy(t, p, from_logits=False):
    p = _sigmoid(p) if from_logits else numpy.clip(p, 1e-7, 1 - 1e-7)
    return -(t * numpy.log(p) + (1 - t) * numpy.log(1 - p))


def _log_q(p, axis, from_logits):
    if from_logits:
        return p - numpy.log(numpy.exp(p).sum(axis=axis, keepdims=True))
    return numpy.log(numpy.clip(p / p.sum(axis=axis, keepdims=True), 1e-7, 1 - 1e-7))


def np_categorical_crossentropy(t, p, from_logits=False, axis=-1):
    return -(t * _log_q(p, axis, from_logits)).sum(axis=axis)


def np_sparse_categorical_crossentropy(ids, p, from_logits=False, axis=-1):
    axis = axis % p.ndim
    ids = ids.reshape(p.shape[:axis] + p.shape[axis + 1:])
    return -numpy.take_along_axis(_log_q(p, axis, from_logits), numpy.expand_dims(ids, axis), axis).squeeze(axis)


def np_psnr(a, b, max_val):
    return 20 * numpy.log10(max_val) - 10 * numpy.log10(((a - b) ** 2).mean())


def np_ctc_loss(labels, logits, label_lengths, logit_lengths, mask_index=0):
    """-log of the summed probability of every path (all of them, enumerated) that collapses to the labels."""
    out = []
    for b in range(labels.shape[0]):
        steps = int(logit_lengths[b])
        z = logits[b, :steps]
        logp = z - numpy.log(numpy.exp(z).sum(-1, keepdims=True))
        target = tuple(int(c) for c in labels[b, :int(label_lengths[b])])
        total = -numpy.inf
        for path in itertools.product(range(logits.shape[2]), repeat=steps):
            collapsed = tuple(c for i, c in enumerate(path) if (i == 0 or c != path[i - 1]) and c != mask_index)
            if collapsed == target:
                total = numpy.logaddexp(total, logp[numpy.arange(steps), path].sum())
        out.append(-total)
    return numpy.array(out)


def np_ctc_decode(inputs, lengths, merge_repeated=True, mask_index=0):
    batch, steps, _ = inputs.shape
    decoded = numpy.full((batch, steps), -1, dtype="int32")
    scores = numpy.zeros((batch, 1))
    for b in range(batch):
        best = inputs[b, :lengths[b]].argmax(-1)
        scores[b, 0] = -inputs[b, :lengths[b]].max(-1).sum()
        kept = [c for i, c in enumerate(best) if c != mask_index and not (merge_repeated and i and c == best[i - 1])]
        decoded[b, :len(kept)] = kept
    return decoded[None], scores


def np_ctc_best_labellings(inputs, lengths, top_paths, mask_index=0):
    """The ``top_paths`` most probable labellings of each row (every path enumerated, the probabilities of the
    paths that collapse to one labelling summed), -1 after their ends, and their log-probabilities: what a beam
    search wide enough to keep every prefix finds."""
    batch, steps, classes = inputs.shape
    decoded = numpy.full((top_paths, batch, steps), -1, dtype="int32")
    scores = numpy.zeros((batch, top_paths))
    for b in range(batch):
        z = inputs[b, :lengths[b]]
        logp = z - numpy.log(numpy.exp(z).sum(-1, keepdims=True))
        totals = {}
        for path in itertools.product(range(classes), repeat=int(lengths[b])):
            label = tuple(c for i, c in enumerate(path) if (i == 0 or c != path[i - 1]) and c != mask_index)
            totals[label] = numpy.logaddexp(totals.get(label, -numpy.inf), logp[numpy.arange(len(path)), path].sum())
        best = sorted(totals, key=totals.get, reverse=True)[:top_paths]
        for k, label in enumerate(best):
            decoded[k, b, :len(label)] = label
            scores[b, k] = totals[label]
    return decoded, scores


# ------------------------------------------------------------------ the cases
CAUSAL_MASK = numpy.tril(numpy.ones((4, 6), bool)) | (numpy.arange(6)[None] == 5)
MASK = numpy.broadcast_to(numpy.array([[True, False, True, True, False, True]] * 4), (2, 2, 4, 6))


def _case(name, shapes, expression, expected, differentiable=True, tol=1e-10):
    """shapes: per input, (full shape, kind): "f" any real, "p" in (0.05, 0.95), "u" in (0.5, 2), "iK" ints in
    [0, K), "onehot" rows of one 1."""
    return (name, shapes, expression, expected, differentiable, tol)


IMAGE = ((2, 7, 5, 3), "f")
IMAGE_CF = ((2, 3, 7, 5), "f")
SEQUENCE = ((3, 9, 2), "f")
VOLUME = ((2, 4, 5, 3, 2), "f")

CASES = [
    _case("max_pool", [IMAGE], lambda ops, x: ops.max_pool(x, 2), lambda x: np_pool(x, 2)),
    _case("max_pool_same", [IMAGE], lambda ops, x: ops.max_pool(x, 3, 2, "same"),
          lambda x: np_pool(x, 3, 2, "same")),
    _case("max_pool_1d", [SEQUENCE], lambda ops, x: ops.max_pool(x, 3, 2, "same"),
          lambda x: np_pool(x, 3, 2, "same")),
    _case("max_pool_3d", [VOLUME], lambda ops, x: ops.max_pool(x, (2, 3, 2), (1, 2, 1)),
          lambda x: np_pool(x, (2, 3, 2), (1, 2, 1))),
    _case("max_pool_channels_first", [IMAGE_CF], lambda ops, x: ops.max_pool(x, (2, 3), 1, "valid", "channels_first"),
          lambda x: np_pool(x, (2, 3), 1, "valid", "channels_first")),
    _case("average_pool", [IMAGE], lambda ops, x: ops.average_pool(x, (3, 2), (2, 1)),
          lambda x: np_pool(x, (3, 2), (2, 1), kind="avg")),
    _case("average_pool_same", [IMAGE], lambda ops, x: ops.average_pool(x, 3, 1, "same"),
          lambda x: np_pool(x, 3, 1, "same", kind="avg")),
    _case("average_pool_1d_channels_first", [((2, 3, 8), "f")],
          lambda ops, x: ops.average_pool(x, 3, 1, "same", "channels_first"),
          lambda x: np_pool(x, 3, 1, "same", "channels_first", kind="avg")),
    _case("average_pool_3d", [VOLUME], lambda ops, x: ops.average_pool(x, 3, 1, "same"),
          lambda x: np_pool(x, 3, 1, "same", kind="avg")),
    _case("adaptive_max_pool", [IMAGE], lambda ops, x: ops.adaptive_max_pool(x, (3, 4)),
          lambda x: np_adaptive(x, (3, 4))),
    _case("adaptive_max_pool_1d", [SEQUENCE], lambda ops, x: ops.adaptive_max_pool(x, (4,)),
          lambda x: np_adaptive(x, (4,))),
    _case("adaptive_average_pool", [IMAGE_CF], lambda ops, x: ops.adaptive_average_pool(x, (2, 3), "channels_first"),
          lambda x: np_adaptive(x, (2, 3), "channels_first", kind="avg")),
    _case("adaptive_average_pool_3d", [VOLUME], lambda ops, x: ops.adaptive_average_pool(x, (3, 2, 2)),
          lambda x: np_adaptive(x, (3, 2, 2), kind="avg")),
    _case("depthwise_conv", [IMAGE, ((3, 2, 3, 2), "f")], lambda ops, x, k: ops.depthwise_conv(x, k),
          lambda x, k: np_depthwise(x, k)),
    _case("depthwise_conv_same_strided", [IMAGE, ((3, 3, 3, 1), "f")],
          lambda ops, x, k: ops.depthwise_conv(x, k, 2, "same"), lambda x, k: np_depthwise(x, k, 2, "same")),
    _case("depthwise_conv_dilated", [IMAGE, ((2, 2, 3, 2), "f")],
          lambda ops, x, k: ops.depthwise_conv(x, k, 1, "same", dilation_rate=2),
          lambda x, k: np_depthwise(x, k, 1, "same", dilation_rate=2)),
    _case("depthwise_conv_1d", [SEQUENCE, ((3, 2, 3), "f")], lambda ops, x, k: ops.depthwise_conv(x, k, 2, "same"),
          lambda x, k: np_depthwise(x, k, 2, "same")),
    _case("depthwise_conv_channels_first", [IMAGE_CF, ((2, 3, 3, 2), "f")],
          lambda ops, x, k: ops.depthwise_conv(x, k, data_format="channels_first"),
          lambda x, k: np_depthwise(x, k, data_format="channels_first")),
    _case("separable_conv", [IMAGE, ((3, 3, 3, 2), "f"), ((1, 1, 6, 4), "f")],
          lambda ops, x, k, p: ops.separable_conv(x, k, p, 1, "same"),
          lambda x, k, p: np_separable(x, k, p, 1, "same")),
    _case("separable_conv_1d_strided", [SEQUENCE, ((2, 2, 1), "f"), ((1, 2, 3), "f")],
          lambda ops, x, k, p: ops.separable_conv(x, k, p, 2), lambda x, k, p: np_separable(x, k, p, 2)),
    _case("separable_conv_channels_first", [IMAGE_CF, ((2, 2, 3, 1), "f"), ((1, 1, 3, 2), "f")],
          lambda ops, x, k, p: ops.separable_conv(x, k, p, data_format="channels_first"),
          lambda x, k, p: np_separable(x, k, p, data_format="channels_first")),
    _case("batch_normalization", [IMAGE, ((3,), "f"), ((3,), "u"), ((3,), "f"), ((3,), "f")],
          lambda ops, x, m, v, o, s: ops.batch_normalization(x, m, v, -1, o, s),
          lambda x, m, v, o, s: np_batch_norm(x, m, v, -1, o, s)),
    _case("batch_normalization_axis", [IMAGE, ((7,), "f"), ((7,), "u")],
          lambda ops, x, m, v: ops.batch_normalization(x, m, v, axis=1, epsilon=0.1),
          lambda x, m, v: np_batch_norm(x, m, v, 1, epsilon=0.1)),
    _case("layer_normalization", [IMAGE, ((3,), "f"), ((3,), "f")],
          lambda ops, x, g, b: ops.layer_normalization(x, g, b), lambda x, g, b: np_layer_norm(x, g, b)),
    _case("layer_normalization_axes", [IMAGE, ((5, 3), "f")],
          lambda ops, x, g: ops.layer_normalization(x, g, axis=(2, 3), epsilon=0.01),
          lambda x, g: np_layer_norm(x, g, axis=(2, 3), epsilon=0.01)),
    _case("layer_normalization_plain", [SEQUENCE], lambda ops, x: ops.layer_normalization(x, axis=(1, 2)),
          lambda x: np_layer_norm(x, axis=(1, 2))),
    _case("layer_normalization_rms_scaling", [IMAGE, ((3,), "f")],
          lambda ops, x, g: ops.layer_normalization(x, g, rms_scaling=True),
          lambda x, g: x / numpy.sqrt(x.var(axis=-1, keepdims=True) + 1e-7) * g),
    _case("rms_normalization", [IMAGE, ((3,), "f")], lambda ops, x, s: ops.rms_normalization(x, s),
          lambda x, s: np_rms_norm(x, s)),
    _case("rms_normalization_axes", [IMAGE], lambda ops, x: ops.rms_normalization(x, axis=(2, 3), epsilon=0.1),
          lambda x: np_rms_norm(x, axis=(2, 3), epsilon=0.1)),
    _case("dot_product_attention", [((2, 4, 2, 3), "f"), ((2, 6, 2, 3), "f"), ((2, 6, 2, 3), "f")],
          lambda ops, q, k, v: ops.dot_product_attention(q, k, v), lambda q, k, v: np_attention(q, k, v)),
    _case("dot_product_attention_grouped_causal", [((2, 4, 4, 3), "f"), ((2, 6, 2, 3), "f"), ((2, 6, 2, 3), "f")],
          lambda ops, q, k, v: ops.dot_product_attention(q, k, v, scale=0.5, is_causal=True),
          lambda q, k, v: np_attention(q, k, v, scale=0.5, is_causal=True)),
    _case("dot_product_attention_bias", [((2, 4, 2, 3), "f"), ((2, 6, 2, 3), "f"), ((2, 6, 2, 3), "f"),
                                         ((2, 2, 4, 6), "f")],
          lambda ops, q, k, v, b: ops.dot_product_attention(q, k, v, bias=b), lambda q, k, v, b: np_attention(
              q, k, v, bias=b)),
    _case("dot_product_attention_mask", [((2, 4, 2, 3), "f"), ((2, 6, 2, 3), "f"), ((2, 6, 2, 3), "f")],
          lambda ops, q, k, v: ops.dot_product_attention(q, k, v, mask=MASK),
          lambda q, k, v: np_attention(q, k, v, mask=MASK)),
    # the mask a tensor of the graph given by keyword (Keras records it among the call's keywords)
    _case("dot_product_attention_mask_tensor", [((2, 4, 2, 3), "f"), ((2, 6, 2, 3), "f"), ((2, 2, 4, 6), "i5")],
          lambda ops, q, k, m: ops.dot_product_attention(q, k, k, mask=ops.not_equal(m, 0)),
          lambda q, k, m: np_attention(q, k, k, mask=m != 0)),
    _case("binary_crossentropy", [((4, 5), "p"), ((4, 5), "p")], lambda ops, t, p: ops.binary_crossentropy(t, p),
          np_binary_crossentropy),
    _case("binary_crossentropy_logits", [((4, 5), "p"), ((4, 5), "f")],
          lambda ops, t, p: ops.binary_crossentropy(t, p, from_logits=True),
          lambda t, p: np_binary_crossentropy(t, p, True)),
    _case("categorical_crossentropy", [((4, 5), "p"), ((4, 5), "p")],
          lambda ops, t, p: ops.categorical_crossentropy(t, p), np_categorical_crossentropy),
    _case("categorical_crossentropy_logits_axis", [((3, 4, 5), "p"), ((3, 4, 5), "f")],
          lambda ops, t, p: ops.categorical_crossentropy(t, p, from_logits=True, axis=1),
          lambda t, p: np_categorical_crossentropy(t, p, True, 1)),
    _case("sparse_categorical_crossentropy", [((4,), "i5"), ((4, 5), "p")],
          lambda ops, t, p: ops.sparse_categorical_crossentropy(t, p), np_sparse_categorical_crossentropy),
    _case("sparse_categorical_crossentropy_logits_axis", [((3, 1, 5), "i4"), ((3, 4, 5), "f")],
          lambda ops, t, p: ops.sparse_categorical_crossentropy(t, p, from_logits=True, axis=1),
          lambda t, p: np_sparse_categorical_crossentropy(t, p, True, 1)),
    _case("psnr", [((3, 4, 5), "p"), ((3, 4, 5), "p")], lambda ops, a, b: ops.psnr(a, b, 1.0),
          lambda a, b: np_psnr(a, b, 1.0)),
    _case("ctc_loss", [((3, 3), "ctc_labels"), ((3, 5, 3), "f")],
          lambda ops, t, z: ops.ctc_loss(t, z, numpy.array([2, 1, 3]), numpy.array([5, 4, 5])),
          lambda t, z: np_ctc_loss(t, z, [2, 1, 3], [5, 4, 5]), tol=1e-9),
    _case("ctc_loss_mask_index", [((3, 3), "ctc_labels_blank_2"), ((3, 5, 3), "f")],
          lambda ops, t, z: ops.ctc_loss(t, z, numpy.array([2, 1, 3]), numpy.array([5, 4, 5]), mask_index=2),
          lambda t, z: np_ctc_loss(t, z, [2, 1, 3], [5, 4, 5], mask_index=2), tol=1e-9),
]
IDS = [c[0] for c in CASES]

# Greedy CTC decoding: two outputs, integers and scores, no gradient.
DECODE_CASES = [
    ("ctc_decode", lambda ops, z: ops.ctc_decode(z, numpy.array([6, 4, 1])),
     lambda z: np_ctc_decode(z, [6, 4, 1])),
    ("ctc_decode_unmerged", lambda ops, z: ops.ctc_decode(z, numpy.array([6, 6, 3]), merge_repeated=False,
                                                        mask_index=2),
     lambda z: np_ctc_decode(z, [6, 6, 3], False, 2)),
    ("ctc_decode_beam_search", lambda ops, z: ops.ctc_decode(z, numpy.array([5, 3, 4]), strategy="beam_search",
                                                           beam_width=300, top_paths=3),
     lambda z: np_ctc_best_labellings(z, [5, 3, 4], 3)),
    ("ctc_decode_beam_search_blank_last", lambda ops, z: ops.ctc_decode(
        z, numpy.array([4, 5, 2]), strategy="beam_search", beam_width=300, top_paths=2, mask_index=None),
     lambda z: np_ctc_best_labellings(z, [4, 5, 2], 2, mask_index=2)),
]


def draw(rng, shape, kind, dtype="float64"):
    """One input of a case."""
    if kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if kind == "p":
        return rng.uniform(0.05, 0.95, shape).astype(dtype)
    if kind == "u":
        return rng.uniform(0.5, 2.0, shape).astype(dtype)
    if kind == "ctc_labels":
        # labels 1..2 of lengths 2, 1, 3 (0: the blank), zeros after
        return numpy.array([[1, 2, 0], [2, 0, 0], [1, 1, 2]], dtype="int32")[:shape[0], :shape[1]]
    if kind == "ctc_labels_blank_2":
        # labels 0..1 of lengths 2, 1, 3 (2: the blank), anything after
        return numpy.array([[0, 1, 2], [1, 2, 0], [0, 0, 1]], dtype="int32")[:shape[0], :shape[1]]
    if kind.startswith("i"):
        return rng.integers(0, int(kind[1:]), shape).astype("int32")
    raise ValueError(kind)


def decode_input(rng, dtype="float64"):
    z = rng.standard_normal((3, 6, 3)).astype(dtype)
    z[0, 1:3] = z[0, 1:3] + 5 * numpy.eye(3, dtype=dtype)[1]       # a repeated class to merge
    return z
