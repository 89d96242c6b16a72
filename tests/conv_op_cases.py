"""The cases of ``keras.ops.conv`` and ``keras.ops.conv_transpose`` that ``test_keras_ops_conv.py`` and
``test_keras_oracle_keras_ops_conv.py`` share: each a call written once for any library's ``ops``, the shapes of
its input and kernel, and what plain NumPy makes of it (a direct sum over windows; the transposed convolution as
JAX and Keras define it: the input spread by the strides, padded, and convolved with the kernel turned round)."""
import numpy

from numpy_windows import as_tuple, channels_first, channels_last, windows


def np_conv(x, kernel, strides=1, padding="valid", data_format="channels_last", dilation_rate=1):
    """Every window of the (zero-padded) input times the kernel; an input of more channels than the kernel's
    ``in`` is split into groups of that many, each with its share of the output channels."""
    x = channels_last(numpy.asarray(x, dtype="float64"), data_format)
    rank = x.ndim - 2
    window = kernel.shape[:rank]
    strides, dilation = as_tuple(strides, rank), as_tuple(dilation_rate, rank)
    views = windows(x, window, strides, padding, dilation)
    per_group, filters = kernel.shape[-2:]
    groups = x.shape[-1] // per_group
    views = views.reshape(views.shape[:rank + 1] + (groups, per_group) + views.shape[rank + 2:])
    grouped = kernel.reshape(window + (per_group, groups, filters // groups))
    taps, spatial = "ijk"[:rank], "pqr"[:rank]
    y = numpy.einsum(f"n{spatial}gc{taps},{taps}cgf->n{spatial}gf", views, grouped)
    return channels_first(y.reshape(y.shape[:-2] + (filters,)), data_format)


def _transpose_pads(k, s, d, padding, output_padding):
    """Keras's (before, after) padding of the stride-spread input (its rule for JAX, written out)."""
    span = d * (k - 1) + 1
    if padding == "valid":
        extra = max(span, s) - span if output_padding is None else output_padding
        return span - 1, span - 1 + extra
    total = s + span - 2 if output_padding is None else span + span % 2 - 2 + output_padding
    before = min(total // 2 + total % 2, span - 1)
    return before, total - before


def np_conv_transpose(x, kernel, strides=1, padding="valid", output_padding=None, data_format="channels_last",
                      dilation_rate=1):
    x = channels_last(numpy.asarray(x, dtype="float64"), data_format)
    rank = x.ndim - 2
    window = kernel.shape[:rank]
    strides, dilation = as_tuple(strides, rank), as_tuple(dilation_rate, rank)
    extras = (None,) * rank if output_padding is None else as_tuple(output_padding, rank)
    spread = numpy.zeros((x.shape[0],) + tuple((n - 1) * s + 1 for n, s in zip(x.shape[1:-1], strides)) +
                         (x.shape[-1],))
    spread[(slice(None),) + tuple(slice(None, None, s) for s in strides)] = x
    pads = [_transpose_pads(k, s, d, padding, e) for k, s, d, e in zip(window, strides, dilation, extras)]
    padded = numpy.pad(spread, [(0, 0)] + pads + [(0, 0)])
    turned = numpy.flip(kernel, axis=tuple(range(rank))).swapaxes(-1, -2)
    return channels_first(np_conv(padded, turned, 1, "valid", "channels_last", dilation), data_format)


def _case(name, x_shape, kernel_shape, transposed=False, **settings):
    return (name, x_shape, kernel_shape, transposed, settings)


# (name, input shape, kernel shape, transposed, settings): odd sizes, strides 1 to 3, dilation 1 and 2, both
# paddings, both data formats, 1-, 2- and 3-D.
CASES = [
    _case("conv1d_valid", (2, 9, 3), (3, 3, 4)),
    _case("conv1d_same_strided", (2, 9, 3), (4, 3, 5), strides=2, padding="same"),
    _case("conv1d_same_dilated_channels_first", (2, 3, 11), (3, 3, 2), padding="same", dilation_rate=2,
          data_format="channels_first"),
    _case("conv1d_valid_stride3", (1, 13, 2), (3, 2, 3), strides=3),
    _case("conv2d_valid", (2, 7, 6, 3), (3, 2, 3, 4)),
    _case("conv2d_same_strided", (2, 7, 6, 3), (3, 3, 3, 2), strides=2, padding="same"),
    _case("conv2d_same_strides13_channels_first", (2, 3, 7, 9), (3, 2, 3, 5), strides=(1, 3), padding="same",
          data_format="channels_first"),
    _case("conv2d_valid_dilated", (1, 9, 8, 2), (3, 3, 2, 3), dilation_rate=2),
    _case("conv2d_same_dilated12_channels_first", (2, 2, 8, 7), (2, 3, 2, 3), padding="same", dilation_rate=(1, 2),
          data_format="channels_first"),
    _case("conv2d_same_strided_dilated", (1, 9, 7, 2), (3, 2, 2, 2), strides=2, padding="same", dilation_rate=2),
    _case("conv3d_valid", (1, 5, 6, 4, 2), (2, 3, 2, 2, 3)),
    _case("conv3d_same_strided_channels_first", (2, 2, 5, 4, 5), (3, 2, 3, 2, 3), strides=2, padding="same",
          data_format="channels_first"),
    _case("conv3d_same_dilated", (1, 6, 5, 5, 2), (2, 2, 3, 2, 2), padding="same", dilation_rate=2),
    _case("conv_transpose1d_valid", (2, 7, 3), (3, 4, 3), True),
    _case("conv_transpose1d_same_strided", (2, 7, 3), (3, 5, 3), True, strides=2, padding="same"),
    _case("conv_transpose1d_same_stride3_output_padding_channels_first", (2, 3, 5), (4, 2, 3), True, strides=3,
          padding="same", output_padding=2, data_format="channels_first"),
    _case("conv_transpose1d_valid_dilated", (1, 6, 2), (3, 3, 2), True, dilation_rate=2),
    _case("conv_transpose2d_valid", (2, 5, 4, 3), (3, 2, 4, 3), True),
    _case("conv_transpose2d_same_strided", (2, 5, 4, 3), (3, 3, 2, 3), True, strides=2, padding="same"),
    _case("conv_transpose2d_valid_strides32_output_padding_channels_first", (2, 3, 4, 5), (2, 3, 5, 3), True,
          strides=(3, 2), output_padding=1, data_format="channels_first"),
    _case("conv_transpose2d_same_dilated", (1, 5, 6, 2), (3, 2, 3, 2), True, padding="same", dilation_rate=2),
    _case("conv_transpose2d_valid_strided_output_padding0", (2, 4, 5, 2), (3, 3, 2, 2), True, strides=2,
          output_padding=0),
    _case("conv_transpose3d_valid_strided", (1, 3, 4, 3, 2), (2, 3, 2, 3, 2), True, strides=2),
    _case("conv_transpose3d_same_channels_first", (2, 2, 3, 4, 3), (3, 2, 2, 2, 2), True, padding="same",
          data_format="channels_first"),
]
IDS = [case[0] for case in CASES]


def call(ops, transposed, x, kernel, settings):
    """The case's call with ``ops`` (a library's ops namespace)."""
    return (ops.conv_transpose if transposed else ops.conv)(x, kernel, **settings)


def expected(transposed, x, kernel, settings):
    return (np_conv_transpose if transposed else np_conv)(x, kernel, **settings)
