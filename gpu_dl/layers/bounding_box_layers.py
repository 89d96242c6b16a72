"""Keras 3.15's MaxNumBoundingBoxes: pads or cuts the boxes of Keras's dict inputs to a fixed number.

    MaxNumBoundingBoxes(max_number, fill_value=-1, bounding_box_format=...)

called on ``{"images": ..., "bounding_boxes": {"boxes": (B, N, 4), "labels": (B, N)}, ...}`` returns the same
dict with the boxes ``(B, max_number, 4)`` and their labels ``(B, max_number)``: the first ``max_number`` boxes,
then rows of ``fill_value`` (boxes float32, labels of their dtype). Images, masks and labels pass through
unchanged; so does an array of images. As in Keras, a dict with boxes needs ``bounding_box_format`` (any of
Keras's formats; the boxes are not converted), and the config holds ``max_number`` but not ``fill_value``.
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from .preprocessing import _RandomImageLayer, _where


class MaxNumBoundingBoxes(_RandomImageLayer):
    """Pads or cuts the boxes of dict inputs to ``max_number`` per image (module docstring)."""

    draws = False
    draws_per_call = 0
    dict_entries = "transformed"

    def __init__(self, max_number, fill_value=-1, **kwargs):
        super().__init__(**kwargs)
        for what, value, low in (("max_number", max_number, 1), ("fill_value", fill_value, None)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (low and value < low):
                raise ValueError(f"{_where(self)}: {what} must be {'a positive' if low else 'an'} integer, got "
                                 f"{value!r}.")
        self.max_number = int(max_number)
        self.fill_value = int(fill_value)

    def call(self, x, training=False):
        self._saved = ()                # nothing drawn: every call pads or cuts the boxes
        return x

    def _backward(self, dy):
        return dy if self.input_gradient_wanted else None

    def dict_masks(self, masks, saved):
        return masks

    def dict_boxes(self, boxes, labels, height, width, saved):
        xp = array_module(boxes)
        keep = min(boxes.shape[1], self.max_number)
        out_boxes = xp.full((boxes.shape[0], self.max_number, 4), self.fill_value, dtype=boxes.dtype)
        out_boxes[:, :keep] = boxes[:, :keep]
        lp = array_module(labels)
        out_labels = lp.full((labels.shape[0], self.max_number) + tuple(labels.shape[2:]), self.fill_value,
                             dtype=labels.dtype)
        out_labels[:, :keep] = labels[:, :keep]
        return out_boxes, out_labels

    def get_config(self):
        config = {**super().get_config(), "max_number": self.max_number}
        config.pop("seed")
        return config
