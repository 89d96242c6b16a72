"""Keras 3's ContrastLimitedAdaptiveHistogramEqualization (CLAHE).

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape.
Integer images keep their dtype; float images come out in the layer's
compute dtype (float32 by default), as Keras's. The layer is deterministic
and applies in training and at inference, as Keras's does.

Keras 3.15's computation (its torch backend's, to the rounding), every step
an array operation on the whole batch, on NumPy and CuPy alike:

1. the images are mapped from ``value_range`` onto [0, 255] (float32; left
   as they are when ``value_range`` is (0, 255));
2. each image is padded at the bottom and right to ``grid * tile`` with
   ``tile = ceil(size / grid)`` per axis, by repeating its last row and column
   (Keras asks for symmetric padding, which its torch backend turns into
   edge replication; this layer pads as that backend does);
3. each channel of each tile gets a 256-bin histogram of its values
   truncated to integers and clipped to [0, 255]; with ``clip_limit > 0`` the
   counts are clipped at ``clip_limit * tile_h * tile_w / 256`` truncated to
   an integer (Keras's torch backend counts in int64 and casts the limit to
   that; its other backends count in float32 and keep the fraction) and the
   excess is spread evenly over the 256 bins;
4. the cumulative histogram ``cdf`` becomes the tile's map
   ``clip((cdf - cdf[0]) 255 / (tile_h tile_w - cdf[0]), 0, 255)`` (a zero
   denominator read as 1);
5. each pixel reads the maps of the four tiles around it (the tile grid
   extended by one tile of copies at every edge) at its integer value, and
   mixes them bilinearly by its position relative to the tile centres,
   ``(y - tile_h / 2) / tile_h + 1`` along the rows (the same along the
   columns);
6. the result is cropped to the input's size, mapped back onto
   ``value_range`` and cast to the output dtype (truncating, for integers).

It is piecewise constant in the pixel values (the histograms and the
lookups read their integer parts), so it has no useful gradient: it is an
input-side layer, and its backward raises.
"""
from __future__ import annotations

import math

import numpy

from ..backend import array_module
from ..ops.color import rescale
from ..ops.scattering import bin_counts
from .preprocessing import _compute_dtype, _is_number, _where
from .tone_augmentation import BYTE, _AlwaysOrTraining

BINS = 256


def _grid(layer, tile_grid_size):
    message = f"{_where(layer)}: tile_grid_size must be a pair (rows, columns) of positive integers, got " \
              f"{tile_grid_size!r}."
    if not isinstance(tile_grid_size, (tuple, list)) or len(tile_grid_size) != 2:
        raise ValueError(message)
    if not all(_is_number(v) and v == int(v) and v >= 1 for v in tile_grid_size):
        raise ValueError(message)
    return tuple(int(v) for v in tile_grid_size)


def _tile_positions(size, tile, grid, xp):
    """For each padded row (or column): the indices of the two tile maps around it in the grid extended by one
    tile at each end, and the weight of the second, float32 as Keras computes them."""
    f32 = numpy.float32
    position = (xp.arange(size, dtype=f32) - f32(tile / 2.0)) / f32(tile) + f32(1.0)
    lower = xp.floor(position)
    weight = position - lower
    first = xp.clip(lower, 0, grid + 1).astype(xp.int64)
    second = xp.clip(lower + 1, 0, grid + 1).astype(xp.int64)
    return first, second, weight


def clahe(images, value_range=(0, 255), clip_limit=4.0, tile_grid_size=(8, 8)):
    """Keras's CLAHE of channels_last images (N, H, W, C) (module docstring); returns float32 images on
    ``value_range`` (the caller casts them)."""
    xp = array_module(images)
    f32 = numpy.float32
    n, h, w, c = images.shape
    grid_h, grid_w = tile_grid_size
    tile_h, tile_w = -(-h // grid_h), -(-w // grid_w)
    values = images if tuple(map(float, value_range)) == BYTE else rescale(images.astype(f32), value_range, BYTE)
    padded = xp.pad(values, ((0, 0), (0, tile_h * grid_h - h), (0, tile_w * grid_w - w), (0, 0)), mode="edge")
    levels = xp.clip(padded.astype(xp.int32), 0, BINS - 1).astype(xp.int64)

    # one histogram per (image, tile row, tile column, channel): a single count over tile-numbered bins
    tiles = levels.reshape(n, grid_h, tile_h, grid_w, tile_w, c)
    tile_number = (xp.arange(n * grid_h * grid_w * c, dtype=xp.int64)
                   .reshape(n, grid_h, 1, grid_w, 1, c))
    hist = bin_counts((tile_number * BINS + tiles).ravel(), n * grid_h * grid_w * c * BINS)
    hist = hist.reshape(n, grid_h, grid_w, c, BINS)
    area = tile_h * tile_w
    if clip_limit > 0:
        # Keras's torch backend counts in int64, so its limit is cast to an integer (truncated) before clipping
        clipped = xp.clip(hist, 0, int(clip_limit * area / 256.0))
        excess = (hist - clipped).sum(axis=-1, keepdims=True)
        hist = clipped.astype(f32) + excess.astype(f32) / f32(256.0)
    cdf = xp.cumsum(hist.astype(f32, copy=False), axis=-1)
    low = cdf.min(axis=-1, keepdims=True)
    denominator = f32(area) - low
    maps = xp.clip((cdf - low) * f32(255.0) / xp.where(denominator == 0, f32(1), denominator), 0, 255)
    maps = xp.pad(maps, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0)), mode="edge")

    top, bottom, wy = _tile_positions(tile_h * grid_h, tile_h, grid_h, xp)
    left, right, wx = _tile_positions(tile_w * grid_w, tile_w, grid_w, xp)
    image = xp.arange(n).reshape(n, 1, 1, 1)
    channel = xp.arange(c).reshape(1, 1, 1, c)
    rows = [r.reshape(1, -1, 1, 1) for r in (top, bottom)]
    cols = [r.reshape(1, 1, -1, 1) for r in (left, right)]
    wy, wx = wy.reshape(1, -1, 1, 1), wx.reshape(1, 1, -1, 1)
    (nw, ne), (sw, se) = ([maps[image, row, col, channel, levels] for col in cols] for row in rows)
    upper = nw * (1.0 - wx) + ne * wx
    lower = sw * (1.0 - wx) + se * wx
    result = (upper * (1.0 - wy) + lower * wy)[:, :h, :w]
    return rescale(result, BYTE, value_range)


class ContrastLimitedAdaptiveHistogramEqualization(_AlwaysOrTraining):
    """Equalises the histogram of each tile of each channel, the tiles' maps mixed bilinearly (module
    docstring); in training and at inference; input-side only."""

    differentiable = False
    why_not = "CLAHE is piecewise constant"
    keeps_input_dtype = True        # integer images come out in their dtype; floats are cast in call()

    def __init__(self, value_range=(0, 255), clip_limit=4.0, tile_grid_size=(8, 8), data_format=None, **kwargs):
        super().__init__(value_range, data_format=data_format, **kwargs)
        if not _is_number(clip_limit) or not math.isfinite(clip_limit):
            raise ValueError(f"{_where(self)}: clip_limit must be a number (0 or less: no clipping), "
                             f"got {clip_limit!r}.")
        self.clip_limit = clip_limit
        self.tile_grid_size = _grid(self, tile_grid_size)

    def call(self, x, training=False):
        if x.dtype.kind == "f":
            x = x.astype(_compute_dtype(self.compute_dtype), copy=False)
        elif x.dtype.kind not in "iu":
            raise TypeError(f"{_where(self)}: images must be of an integer or float dtype, got {x.dtype}.")
        self._saved = None
        y = clahe(self.to_last(x), self.value_range, self.clip_limit, self.tile_grid_size)
        return self.from_last(y.astype(x.dtype, copy=False))

    def get_config(self):
        return {**super().get_config(), "clip_limit": self.clip_limit, "tile_grid_size": self.tile_grid_size}
