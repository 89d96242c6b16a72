"""Plain NumPy windows of a batch of channels-last signals, images or volumes, padded as Keras pads: what the
expectations of the convolution and pooling cases sum or reduce over."""
import numpy
from numpy.lib.stride_tricks import sliding_window_view


def channels_last(x, data_format):
    return x if data_format == "channels_last" else numpy.moveaxis(x, 1, -1)


def channels_first(y, data_format):
    """``y`` (channels last) back in ``data_format``."""
    return y if data_format == "channels_last" else numpy.moveaxis(y, -1, 1)


def as_tuple(value, rank):
    return (value,) * rank if isinstance(value, int) else tuple(value)


def same_pads(n, k, s, d=1):
    """(before, after) of "same" padding for size n, kernel k, stride s, dilation d: the extra one goes after."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def windows(x, window, strides, padding, dilation, fill=0.0):
    """Every window of channels-last ``x`` (n, *sizes, c), padded with ``fill`` for "same": (n, *out, c, *window),
    the taps ``dilation`` apart."""
    rank = x.ndim - 2
    pads = [same_pads(n, k, s, d) if padding == "same" else (0, 0)
            for n, k, s, d in zip(x.shape[1:-1], window, strides, dilation)]
    padded = numpy.pad(x, [(0, 0)] + pads + [(0, 0)], constant_values=fill)
    spans = tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))
    views = sliding_window_view(padded, spans, axis=tuple(range(1, rank + 1)))
    return views[(slice(None),) + tuple(slice(None, None, s) for s in strides) + (slice(None),) +
                 tuple(slice(None, None, d) for d in dilation)]
