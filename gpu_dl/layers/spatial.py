"""What the 2-D spatial layers share: argument checks, data formats, the size formula's error.

Every spatial op works on channels_last (N, H, W, C) arrays; a layer built
with ``data_format="channels_first"`` transposes its input to that layout
and its output back, and the same for the gradients.
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from .base import Layer

DATA_FORMATS = ("channels_last", "channels_first")


def int_pair(value, what, minimum=1):
    """An int or a pair of ints, each >= ``minimum``, as a 2-tuple."""
    items = (value, value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{what} must be an integer or a pair of integers, got {value!r}.") from None
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in items):
        raise TypeError(f"{what} must be an integer or a pair of integers, got {value!r}.")
    if any(v < minimum for v in items):
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}.")
    return tuple(int(v) for v in items)


def padding_word(value, what):
    """Keras's "valid" or "same" (any case)."""
    word = value.lower() if isinstance(value, str) else value
    if word not in ("valid", "same"):
        raise ValueError(f"{what} must be 'valid' or 'same', got {value!r}.")
    return word


def data_format_word(value, what):
    """Keras's "channels_last" (the default, None) or "channels_first" (any case)."""
    if value is None:
        return "channels_last"
    word = value.lower() if isinstance(value, str) else value
    if word not in DATA_FORMATS:
        raise ValueError(f"{what} must be 'channels_last' or 'channels_first', got {value!r}.")
    return word


def contiguous(a):
    """``a`` itself when C-contiguous, else a C-contiguous copy (what the kernels read)."""
    return a if a.flags.c_contiguous else array_module(a).ascontiguousarray(a)


class SpatialLayer(Layer):
    """A layer on (N, H, W, C) data that also accepts channels_first by transposing."""

    fixed_input_axes = ()   # height, width and channels may change (Conv2D checks its channels itself)

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format_word(data_format, f"{type(self).__name__} layer '{self.name}': data_format")

    @property
    def channels_first(self):
        return self.data_format == "channels_first"

    def check_rank(self, input_shape):
        """The input shape as channels_last (N, H, W, C); a clear error unless it has rank 4."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            layout = "(batch, channels, height, width)" if self.channels_first else "(batch, height, width, channels)"
            raise ValueError(f"{type(self).__name__} layer '{self.name}' expects inputs of rank 4 {layout}, "
                             f"got shape {input_shape} (rank {len(input_shape)}).")
        return self.to_last_shape(input_shape)

    def to_last_shape(self, shape):
        return (shape[0], shape[2], shape[3], shape[1]) if self.channels_first else tuple(shape)

    def from_last_shape(self, shape):
        return (shape[0], shape[3], shape[1], shape[2]) if self.channels_first and len(shape) == 4 else tuple(shape)

    def to_last(self, x):
        return x.transpose(0, 2, 3, 1) if self.channels_first else x

    def from_last(self, y):
        if self.channels_first and y.ndim == 4:
            return y.transpose(0, 3, 1, 2)
        return y

    def check_input_shape(self, shape):
        self.check_rank(shape)
        super().check_input_shape(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


def too_small_error(layer, axis, size, window, stride, dilation, pads):
    """The error for a window that does not fit its padded input, quoting the size formula's numbers."""
    span = dilation * (window - 1) + 1
    out = (size + pads[0] + pads[1] - span) // stride + 1
    window_text = f"{window}" if dilation == 1 else f"{window} dilated by {dilation} (spans {span})"
    return ValueError(
        f"{type(layer).__name__} layer '{layer.name}': the {axis} window {window_text} is larger than the padded "
        f"input ({size} + {pads[0]} + {pads[1]} = {size + pads[0] + pads[1]}): output size "
        f"({size} - {span} + {pads[0] + pads[1]}) // {stride} + 1 = {out}. Use a smaller kernel/pool, "
        f"padding='same', or a larger input."
    )
