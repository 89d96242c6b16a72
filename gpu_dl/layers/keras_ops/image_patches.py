"""``extract_patches`` of ``keras.ops.image``.
"""
from __future__ import annotations

import itertools
import numbers

import numpy

from ...backend.config import standardize_data_format
from .base import _xp
from .image_base import ImageOperation, _count, _from_last, _to_last, _tuple, _word


class ExtractPatches(ImageOperation):
    """``extract_patches`` (2-D, ``size`` of two) and ``extract_patches_3d`` (``size`` of three): each output
    position holds its patch flattened in (row, column, channel) order (depth first for volumes), what Keras's
    convolution with an identity kernel gives; ``same`` padding puts the odd pixel at the end."""

    config_keys = ("size", "strides", "dilation_rate", "padding", "data_format")

    def __init__(self, size, strides=None, dilation_rate=1, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(data_format=standardize_data_format(data_format), name=name, **kwargs)
        where = "extract_patches"
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            size = (size, size)
        if not isinstance(size, (tuple, list)) or len(size) not in (2, 3):
            raise ValueError(f"{where}: `size` must be an integer or a tuple of 2 or 3 integers, got {size!r}.")
        self.size = tuple(_count(n, "size", where, positive=True) for n in size)
        # the config keeps strides and dilation_rate as given (an int stays one), as Keras's does
        self._strides = self.size if strides is None else _tuple(strides, len(self.size), "strides", where)
        self.strides = self.size if strides is None else (tuple(strides) if isinstance(strides, list) else strides)
        self.dilation_rate = tuple(dilation_rate) if isinstance(dilation_rate, list) else dilation_rate
        self._dilation = _tuple(dilation_rate, len(self.size), "dilation_rate", where)
        self.padding = _word(str(padding).lower(), ("valid", "same"), "padding", where)
        self.ranks = (len(self.size) + 1, len(self.size) + 2)

    def get_config(self):
        config = super().get_config()
        del config["name"]          # Keras's ExtractPatches writes its settings only
        return config

    def _geometry(self, spatial):
        """Per spatial axis: (output size, padding before, padding after)."""
        plan = []
        for n, k, s, d in zip(spatial, self.size, self._strides, self._dilation):
            span = (k - 1) * d + 1
            if self.padding == "valid":
                plan.append((None if n is None else max((n - span) // s + 1, 0), 0, 0))
                continue
            out = None if n is None else -(-n // s)
            total = span - 1 if s == 1 else (0 if n is None else max(0, (out - 1) * s + span - n))
            plan.append((out, total // 2, total - total // 2))
        return plan

    def image_shape(self, shape):
        rank = len(shape)
        batched = rank == self.ranks[1]
        full = shape if batched else [1] + shape
        k = len(self.size)
        if self._format == "channels_last":
            spatial, channels = full[1:1 + k], full[-1]
        else:
            spatial, channels = full[2:], full[1]
        outs = [o for o, _, _ in self._geometry(spatial)]
        if any(o == 0 for o in outs):
            raise ValueError(f"{self._where()}: patches of size {self.size} (dilation {self._dilation}) do not fit "
                             f"in images of shape {tuple(shape)} without padding.")
        depth = None if channels is None else int(numpy.prod(self.size)) * channels
        out = [full[0]] + (outs + [depth] if self._format == "channels_last" else [depth] + outs)
        return tuple(out if batched else out[1:])

    def _slices(self, plan):
        for tap in itertools.product(*[range(k) for k in self.size]):
            yield tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                        for t, d, s, (o, _, _) in zip(tap, self._dilation, self._strides, plan))

    def forward_array(self, images):
        self._check_rank(images.shape)
        self.image_shape(list(images.shape))
        last, batched = _to_last(images, self._format, self.ranks[1])
        xp = _xp(last)
        plan = self._geometry(last.shape[1:-1])
        padded = xp.pad(last, [(0, 0)] + [(a, b) for _, a, b in plan] + [(0, 0)])
        pieces = [padded[(slice(None),) + window] for window in self._slices(plan)]
        out = xp.stack(pieces, axis=-2)
        out = out.reshape(out.shape[:-2] + (-1,))
        return _from_last(out, self._format, batched)

    def images_gradient(self, dy, operands, y):
        images = operands[0]
        g, batched = _to_last(dy, self._format, self.ranks[1])
        last_shape = _to_last(images, self._format, self.ranks[1])[0].shape
        xp = _xp(g)
        plan = self._geometry(last_shape[1:-1])
        channels = last_shape[-1]
        g = g.reshape(g.shape[:-1] + (-1, channels))
        padded = xp.zeros((last_shape[0],) + tuple(n + a + b for n, (_, a, b) in zip(last_shape[1:-1], plan)) +
                          (channels,), dtype=g.dtype)
        for index, window in enumerate(self._slices(plan)):
            padded[(slice(None),) + window] += g[..., index, :]
        inner = (slice(None),) + tuple(slice(a, a + n) for n, (_, a, _) in zip(last_shape[1:-1], plan))
        return _from_last(padded[inner], self._format, batched)


OPERATIONS = {cls.__name__: cls for cls in (ExtractPatches,)}
