"""Keras 3's mixing and erasing layers: MixUp, CutMix, RandomErasing.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape. They
act only in training, draw on the host from their own generator (one seed,
one sequence on either backend) and keep the images on their device. Each
makes Keras's draws in Keras's order and dtypes, one seed pair each, so the
values are the ones Keras's NumPy backend draws (MixUp takes its two pairs
outside training too, as Keras's draws there). With Keras 3.15's numbers,
per image n of the batch and a random permutation p:

- ``MixUp(alpha=0.2)``: ``w_n ~ Beta(alpha, alpha)``,
  ``y_n = w_n x_n + (1 - w_n) x_p(n)``.
- ``CutMix(factor=1.0)``: ``a ~ U(factor) + 1e-6`` for the batch,
  ``w_n ~ Beta(a, a)``; a box of ``sqrt(1 - w_n)`` times the height and the
  width, at a uniform position, is copied from image p(n). One image
  without a batch axis is returned unchanged, as Keras does.
- ``RandomErasing(factor=1.0, scale=(0.02, 0.33), fill_value=None,
  value_range=(0, 255))``: with probability ``q ~ U(factor)`` a box of
  ``sqrt(s1)`` times the width and ``sqrt(s2)`` times the height
  (s ~ U(scale)) at a uniform position is filled with ``fill_value`` (a
  number, or one per channel), or where it is None with Gaussian noise times
  ``value_range[1]``; the fill is clipped to ``value_range``.

Called on Keras's dict ``{"images": ..., "labels": ...}`` (gpu_dl.layers.image_dicts), MixUp and CutMix
mix the labels with the images' draw as Keras does: ``w_n l_n + (1 - w_n) l_p(n)``, CutMix's ``w_n`` being
1 - the box's area over the image's. CutMix pastes the segmentation masks' box as the images'; MixUp mixes
them with the weights (Keras 3.15 indexes the flattened masks there) and appends each image's partner's
bounding boxes and their labels to its own (Keras 3.15 appends the labels along the batch axis); CutMix
refuses boxes, as Keras's raises NotImplementedError; RandomErasing passes boxes and masks through. The
draws of the last call are also kept (``last_mix``: the permutation and the weights).

Backward: each is linear in its images: MixUp sends ``w g`` back to image n
and ``(1 - w) g`` to image p(n); CutMix sends the box's gradient to image
p(n) and the rest to image n; RandomErasing passes the gradient outside the
erased boxes.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import array_module
from .augment_common import ImageAugmentLayer, value_range_checked
from .color_augmentation import keras_factor
from .preprocessing import _compute_dtype, _where


def _crop_bounds(rng, length, ratio, dtype):
    """Keras's ``_compute_crop_bounds`` of one axis, in ``dtype``: a box side ``ratio * length`` at a uniform
    start below ``length - side``; returns (start, end) per image."""
    side = (ratio * length).astype(dtype)
    start = rng.uniform(size=ratio.shape, low=0, high=1).astype(dtype) * (length - side)
    return start, start + side


def _box_mask(h, w, x_bounds, y_bounds, dtype):
    """(N, H, W, 1) booleans: pixel (row, column) inside [x0, x1) x [y0, y1), compared in ``dtype`` as Keras
    compares its grid."""
    columns = numpy.arange(w, dtype=dtype).reshape(1, 1, w)
    rows = numpy.arange(h, dtype=dtype).reshape(1, h, 1)
    (x0, x1), (y0, y1) = ((a[:, None, None] for a in bounds) for bounds in (x_bounds, y_bounds))
    return ((columns >= x0) & (columns < x1) & (rows >= y0) & (rows < y1))[..., None]


def _inverse(permutation):
    inverse = numpy.empty_like(permutation)
    inverse[permutation] = numpy.arange(len(permutation))
    return inverse


def mixed_labels(labels, mix):
    """Keras's label mixing: ``w_n l_n + (1 - w_n) l_p(n)`` with ``mix`` as ``last_mix`` holds it."""
    xp = array_module(labels)
    weight = xp.asarray(numpy.asarray(mix["mix_weight"], dtype=numpy.float32)).reshape((-1,) + (1,) * (labels.ndim - 1))
    return weight * labels + (1.0 - weight) * labels[xp.asarray(mix["permutation_order"])]


class MixUp(ImageAugmentLayer):
    """Mixes each image with another of the batch (module docstring), and in dicts their labels."""

    mixes_labels = True
    dict_entries = "transformed"

    def __init__(self, alpha=0.2, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0 or alpha == float("inf"):
            raise ValueError(f"{_where(self)}: alpha must be a positive number, got {alpha!r}.")
        self.alpha = alpha
        self.last_mix = None

    draws_per_call = pairs_outside_training = 2      # Keras draws the permutation and weights in any call

    def _augment(self, x):
        n = x.shape[0]
        # Keras's two draws: a shuffle of 0..n-1, then the weights (float32).
        permutation = self.host_rng().permuted(numpy.arange(n, dtype=numpy.int64))
        weight = self.host_rng().beta(a=self.alpha, b=self.alpha, size=(n,)).astype(numpy.float32)
        self.last_mix = {"permutation_order": permutation, "mix_weight": weight}
        w = self.per_image(weight, x)
        index = array_module(x).asarray(permutation)
        return w * x + (1.0 - w) * x[index], (w, index, array_module(x).asarray(_inverse(permutation)))

    def _input_gradient(self, dy):
        w, _, inverse = self.saved()
        return w * dy + ((1.0 - w) * dy)[inverse]

    def dict_labels(self, labels, saved):
        return mixed_labels(labels, self.last_mix)

    def dict_masks(self, masks, saved):
        return mixed_labels(masks, self.last_mix)

    def dict_boxes(self, boxes, labels, height, width, saved):
        xp, index = array_module(boxes), self.last_mix["permutation_order"]
        return (xp.concatenate([boxes, boxes[xp.asarray(index)]], axis=1),
                array_module(labels).concatenate([labels, labels[array_module(labels).asarray(index)]], axis=1))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class CutMix(ImageAugmentLayer):
    """Pastes a random box of another image of the batch into each image (module docstring), and in dicts mixes
    their labels by the box's area."""

    mixes_labels = True
    dict_entries = "transformed"
    takes_boxes = False

    def __init__(self, factor=1.0, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        self.last_mix = None

    def _augment(self, x):
        if self._unbatched_call:
            self.last_mix = None
            return x, None
        n, h, w, _ = x.shape
        dtype = _compute_dtype(self.dtype)
        # Keras's five draws, in its compute dtype: the Beta parameter, the weights, the box's x and y, the shuffle.
        alpha = self.host_rng().uniform(size=(), low=self.factor[0], high=self.factor[1]).astype(dtype) + \
            dtype.type(1e-6)
        weight = self.host_rng().beta(a=alpha, b=alpha, size=(n,)).astype(dtype)
        ratio = numpy.sqrt(dtype.type(1.0) - weight)
        x_bounds = _crop_bounds(self.host_rng(), w, ratio, dtype)
        y_bounds = _crop_bounds(self.host_rng(), h, ratio, dtype)
        box = _box_mask(h, w, x_bounds, y_bounds, dtype)
        permutation = self.host_rng().permuted(numpy.arange(n, dtype=numpy.int32))
        xp = array_module(x)
        # Keras's label weight: 1 - box area / image area, the box as drawn (not as the pixels cut it)
        area = (x_bounds[1] - x_bounds[0]) * (y_bounds[1] - y_bounds[0])
        self.last_mix = {"permutation_order": permutation, "mix_weight": 1.0 - area / (w * h)}
        box, index = xp.asarray(box), xp.asarray(permutation)
        return xp.where(box, x[index], x), (box, xp.asarray(_inverse(permutation)))

    def __call__(self, x, training=None, mask=None):
        self._unbatched_call = getattr(x, "ndim", None) == 3
        return super().__call__(x, training=training, mask=mask)

    def _input_gradient(self, dy):
        saved = self.saved()
        if saved is None:
            return dy
        box, inverse = saved
        xp = array_module(dy)
        return xp.where(box, 0, dy) + xp.where(box, dy, 0)[inverse]

    def saved(self):
        if self._saved is None and getattr(self, "_unbatched_call", False):
            return None
        return super().saved()

    def dict_labels(self, labels, saved):
        return mixed_labels(labels, self.last_mix)

    def dict_masks(self, masks, saved):
        box = array_module(masks).asarray(saved[0])
        return array_module(masks).where(box, masks[array_module(masks).asarray(self.last_mix["permutation_order"])],
                                         masks)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomErasing(ImageAugmentLayer):
    """Erases a random box of each image with a random probability (module docstring)."""

    def __init__(self, factor=1.0, scale=(0.02, 0.33), fill_value=None, value_range=(0, 255), seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        self.scale = keras_factor(self, scale, (0, 1), what="scale")
        if fill_value is not None:
            values = fill_value if isinstance(fill_value, (tuple, list)) else [fill_value]
            if (isinstance(fill_value, (tuple, list)) and len(values) != 3) or not all(
                    isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
                raise ValueError(f"{_where(self)}: fill_value must be None, a number or a list of three numbers, "
                                 f"got {fill_value!r}.")
        self.fill_value = fill_value
        self.value_range = value_range_checked(self, value_range, sort=False)

    @property
    def draws_per_call(self):
        return 5 if self.fill_value is not None else 6

    def _augment(self, x):
        n, h, w, c = x.shape
        dtype = _compute_dtype(self.dtype)
        # Keras's draws, in its compute dtype (the probabilities in float32): the box's sides, its x and y, the
        # probability of erasing, the threshold it is compared with, and the noise without a fill_value.
        sides = numpy.sqrt(self.host_rng().uniform(size=(n, 2), low=self.scale[0], high=self.scale[1]).astype(dtype))
        x_bounds = _crop_bounds(self.host_rng(), w, sides[:, 0], dtype)
        y_bounds = _crop_bounds(self.host_rng(), h, sides[:, 1], dtype)
        box = _box_mask(h, w, x_bounds, y_bounds, dtype)
        probability = self.host_rng().uniform(size=(n,), low=self.factor[0], high=self.factor[1]).astype(numpy.float32)
        apply = self.host_rng().uniform(size=(n,), low=0.0, high=1.0).astype(numpy.float32) < probability
        xp = array_module(x)
        low, high = (float(v) for v in self.value_range)
        if self.fill_value is None:
            # drawn in the layout of Keras's input (one image without its batch axis draws the same values)
            noise = self.host_rng().normal(size=self.from_last_shape(x.shape), loc=0.0, scale=1.0).astype(dtype)
            fill = xp.asarray(self.to_last(noise * dtype.type(high)), dtype=x.dtype)
        else:
            if isinstance(self.fill_value, (tuple, list)) and c != 3:
                raise ValueError(f"{_where(self)}: a fill_value of three numbers needs 3 channels, got {c}.")
            fill = xp.asarray(numpy.broadcast_to(numpy.asarray(self.fill_value, dtype=numpy.float64), (c,)),
                              dtype=x.dtype)
        fill = xp.clip(fill, low, high)
        erased = xp.asarray(box & apply[:, None, None, None])
        return xp.where(erased, fill, x), (erased,)

    def _input_gradient(self, dy):
        (erased,) = self.saved()
        return array_module(dy).where(erased, 0, dy)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "scale": self.scale, "fill_value": self.fill_value,
                "value_range": self.value_range}
