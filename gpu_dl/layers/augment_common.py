"""What the colour, tone and mixing augmentation layers share: argument checks in Keras 3.15's forms, and the
error of a layer whose backward is not defined.

Keras's image layers also take a dict ``{"images": ..., "labels": ..., "bounding_boxes": ...,
"segmentation_masks": ...}`` when called on data (gpu_dl.layers.image_dicts). These layers change colours and
tones only, so, as in Keras, they pass the boxes, masks and labels through unchanged; the mixing layers and
RandomPerspective refuse a dict with a clear error.
"""
from __future__ import annotations

import math

import numpy

from ..backend import array_module
from .preprocessing import _RandomImageLayer, _is_number, _where


def value_range_checked(layer, value_range, sort):
    """``value_range`` as Keras keeps it: sorted into a list where Keras sorts it (``sort``), else as given.
    Unlike Keras, equal ends are refused (every layer divides by, or clips to, the width), and so are
    reversed ends where Keras would not sort them."""
    if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
            or not all(_is_number(v) and math.isfinite(v) for v in value_range)):
        raise ValueError(f"{_where(layer)}: value_range must be a pair (low, high) of numbers, got {value_range!r}.")
    if sort:
        value_range = sorted(value_range)
    if not value_range[0] < value_range[1]:
        raise ValueError(f"{_where(layer)}: value_range must be (low, high) with low < high, got {value_range!r}.")
    return value_range


def unit_pair(layer, factor, what):
    """Solarization's reading of a factor: a number f in [0, 1] means (0, f); a pair of numbers in [0, 1] is
    sorted."""
    message = (f"{_where(layer)}: {what} must be a number in [0, 1] or a pair of numbers in [0, 1], "
               f"got {factor!r}.")
    values = factor if isinstance(factor, (tuple, list)) else (factor,)
    if len(values) not in (1, 2) or (isinstance(factor, (tuple, list)) and len(values) != 2):
        raise ValueError(message)
    if not all(_is_number(v) and math.isfinite(v) and 0 <= v <= 1 for v in values):
        raise ValueError(message)
    if len(values) == 1:
        return 0.0, float(factor)
    return tuple(sorted(float(v) for v in values))


class ImageAugmentLayer(_RandomImageLayer):
    """A random image layer that may have no backward; Keras's dict inputs keep their boxes and masks."""

    dict_entries = "unchanged"
    differentiable = True
    why_not = ""
    mixes_labels = False

    def uniform(self, n, low, high):
        """n numbers from U(low, high) drawn on the host from the layer's generator (Keras's ``min + (max - min)
        * u``: equal ends give that number)."""
        return low + (high - low) * self.host_rng().random(n)

    @staticmethod
    def per_image(values, x):
        """Host values, one per image, on x's device as (N, 1, 1, 1) of its dtype."""
        values = numpy.asarray(values)
        dtype = bool if values.dtype == bool else x.dtype
        return array_module(x).asarray(values, dtype=dtype).reshape(-1, 1, 1, 1)

    def check_channels(self, x, allowed):
        if x.shape[-1] not in allowed:
            raise ValueError(f"{_where(self)}: expects images with {' or '.join(map(str, allowed))} channels, got "
                             f"{x.shape[-1]} (input shape {tuple(self.from_last(x).shape)}).")

    def _backward(self, dy):
        if not self.input_gradient_wanted:
            return None
        if not self.differentiable:
            raise NotImplementedError(
                f"{_where(self)}: has no gradient with respect to its images ({self.why_not}); it is an input-side "
                f"layer: put it before any layer with weights, or in the data pipeline.")
        return self.from_last(self._input_gradient(self.to_last(dy)))

    def _input_gradient(self, dy):
        """dy: channels_last (N, H, W, C); returns the gradient of the images, channels_last."""
        raise NotImplementedError
