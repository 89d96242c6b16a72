"""What the spatial layers share: argument checks, data formats, the size formula's error.

Every spatial op works on channels_last (N, H, W, C) arrays; a layer built
with ``data_format="channels_first"`` transposes its input to that layout
and its output back, and the same for the gradients.

The 1-D layers (``rank = 1``, sequences (N, T, C)) run the same 2-D ops on
their input seen as an image of height 1, (N, 1, T, C): a reshape of the
contiguous channels_last array, no copy. Their windows, strides and pads
along that height are 1, 1 and 0, so the 2-D NumPy path and CUDA kernels
compute the 1-D operation.
"""
from __future__ import annotations

import numbers

from .. import backend
from ..backend import array_module
from .base import Layer



AXIS_NAMES = {1: ("steps",), 2: ("height", "width"), 3: ("depth", "height", "width")}
LAYOUTS = {(1, False): "(batch, steps, channels)", (1, True): "(batch, channels, steps)",
           (2, False): "(batch, height, width, channels)", (2, True): "(batch, channels, height, width)",
           (3, False): "(batch, depth, height, width, channels)",
           (3, True): "(batch, channels, depth, height, width)"}


def int_tuple(value, what, rank, minimum=1):
    """An int or a sequence of ``rank`` ints, each >= ``minimum``, as a ``rank``-tuple (Keras's standardize_tuple)."""
    kind = "an integer or a 1-tuple of integers" if rank == 1 else f"an integer or a {rank}-tuple of integers"
    items = (value,) * rank if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{what} must be {kind}, got {value!r}.") from None
    if len(items) != rank or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in items):
        raise TypeError(f"{what} must be {kind}, got {value!r}.")
    if any(v < minimum for v in items):
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}.")
    return tuple(int(v) for v in items)


def padding_word(value, what, causal=False):
    """Keras's "valid" or "same" (any case), and "causal" where ``causal`` (Conv1D)."""
    words = ("valid", "same", "causal") if causal else ("valid", "same")
    word = value.lower() if isinstance(value, str) else value
    if word not in words:
        raise ValueError(f"{what} must be {', '.join(map(repr, words[:-1]))} or {words[-1]!r}, got {value!r}.")
    return word


def data_format_word(value, what):
    """Keras's "channels_last" or "channels_first" (any case); None: ``image_data_format()`` (channels_last
    unless set otherwise)."""
    return backend.standardize_data_format(value, what)


def contiguous(a):
    """``a`` itself when C-contiguous, else a C-contiguous copy (what the kernels read)."""
    return a if a.flags.c_contiguous else array_module(a).ascontiguousarray(a)


class SpatialLayer(Layer):
    """A layer on (N, H, W, C) data (``rank = 2``), (N, T, C) sequences (``rank = 1``) or (N, D, H, W, C)
    volumes (``rank = 3``) that also accepts channels_first by transposing."""

    fixed_input_axes = ()   # sizes and channels may change (the convolutions check their channels themselves)
    rank = 2                # spatial axes
    takes_data_format = True   # False: channels_last only, and no data_format in the config (as Keras's Cropping1D)

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format_word(data_format, f"{type(self).__name__} layer '{self.name}': data_format")

    @property
    def channels_first(self):
        return self.data_format == "channels_first"

    @property
    def axis_names(self):
        return AXIS_NAMES[self.rank]

    @property
    def spatial_axes(self):
        """The input's spatial axes in its own data format."""
        first = 2 if self.channels_first else 1
        return tuple(range(first, first + self.rank))

    def check_rank(self, input_shape):
        """The input shape as channels_last ((N, H, W, C) or (N, T, C)); a clear error unless its rank fits."""
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' expects inputs of rank {self.rank + 2} "
                             f"{LAYOUTS[self.rank, self.channels_first]}, got shape {input_shape} "
                             f"(rank {len(input_shape)}).")
        return self.to_last_shape(input_shape)

    def to_last_shape(self, shape):
        shape = tuple(shape)
        return (shape[0],) + shape[2:] + (shape[1],) if self.channels_first else shape

    def from_last_shape(self, shape):
        shape = tuple(shape)
        if self.channels_first and len(shape) == self.rank + 2:
            return (shape[0], shape[-1]) + shape[1:-1]
        return shape

    def to_last(self, x):
        return x.transpose(0, *range(2, x.ndim), 1) if self.channels_first else x

    def from_last(self, y):
        if self.channels_first and y.ndim == self.rank + 2:
            return y.transpose(0, y.ndim - 1, *range(1, y.ndim - 1))
        return y

    # A sequence as an image of height 1 (module docstring); both are views of contiguous arrays.
    def image_shape(self, last_shape):
        """A channels_last shape as the (N, H, W, C) the 2-D ops take."""
        last_shape = tuple(last_shape)
        return last_shape[:1] + (1,) + last_shape[1:] if self.rank == 1 else last_shape

    def to_image(self, x):
        return x.reshape(self.image_shape(x.shape)) if self.rank == 1 else x

    def from_image(self, y):
        return y.reshape(y.shape[:1] + y.shape[2:]) if self.rank == 1 else y

    def image_pair(self, values, fill):
        """A per-axis tuple (window, stride, ...) as the 2-D ops' pair: ``fill`` along the height of a sequence."""
        return (fill,) + tuple(values) if self.rank == 1 else tuple(values)

    def layer_axes(self, image_values):
        """The entries of an ops-level per-axis tuple ((height, width) for 1-D and 2-D layers, (depth, height,
        width) for 3-D ones) that belong to this layer's own axes."""
        values = tuple(image_values)
        return values[len(values) - self.rank:]

    def check_input_shape(self, shape):
        self.check_rank(shape)
        super().check_input_shape(shape)

    def get_config(self):
        config = super().get_config()
        return {**config, "data_format": self.data_format} if self.takes_data_format else config


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
