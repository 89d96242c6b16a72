"""Keras 3.15's dict inputs of the image preprocessing layers, called on data (eagerly, as in a data pipeline):

    layer({"images": ..., "labels": ..., "bounding_boxes": {"boxes": ..., "labels": ...},
           "segmentation_masks": ...})

returns a new dict with the same keys (others are kept as given). The images go through the layer's ordinary
call, which makes the layer's one random draw (its seed generator moves once, as for an array); the boxes and
masks then follow that same draw through the layer's hooks, all channels_last and batched:

- ``dict_masks(masks, saved)`` transforms the masks as Keras does for that layer (the affine layers,
  RandomPerspective and Resizing with nearest interpolation; RandomFlip, CenterCrop and RandomCrop as images;
  MixUp and CutMix mixed as the images);
- ``dict_labels(labels, saved)`` mixes the batch's labels as the images were mixed (MixUp, CutMix); the
  other layers pass them through;
- ``dict_boxes(boxes, labels, height, width, saved)`` takes ``(B, N, 4)`` float32 boxes in the layer's
  ``bounding_box_format`` with their ``(B, N)`` labels, for images of ``height`` x ``width``, and returns the
  transformed boxes in that format and their labels; a box left with no area is kept with label -1 (Keras's
  ``clip_to_image_size``).

``saved`` is what the images' call kept (``layer._saved``); it is None where the layer left the images
unchanged (a random layer at inference), and then the boxes and masks stay unchanged too. The layers whose
boxes and masks Keras passes through unchanged (the colour, tone and filter layers) set ``dict_entries =
"unchanged"``; the layers with hooks set ``"transformed"``; the others refuse dicts with a clear error, as do
the layers that set ``takes_boxes = False`` for dicts with boxes (CutMix: Keras's raises NotImplementedError).
One image (rank 3) takes ``(N, 4)`` boxes, ``(N,)`` labels and an ``(H, W, C)`` mask.
"""
from __future__ import annotations

import numpy

from ..backend import array_module, to_numpy
from .symbolic import any_symbolic

DICT_KEYS = ("images", "labels", "bounding_boxes", "segmentation_masks")


def _where(layer):
    return f"{type(layer).__name__} layer '{layer.name}'"


def _as_array(value, what, layer):
    if isinstance(value, (list, tuple)):
        try:
            return numpy.asarray(value)
        except ValueError:
            raise ValueError(f"{_where(layer)}: {what} must be a rectangular array (ragged lists of boxes are not "
                             f"supported; pad them, e.g. with MaxNumBoundingBoxes)") from None
    if not hasattr(value, "shape"):
        raise TypeError(f"{_where(layer)}: {what} must be an array, got {type(value).__name__}.")
    return value


def _boxes_and_labels(layer, bounding_boxes, batched):
    """Keras's ``densify_bounding_boxes`` for arrays: float32 boxes (B, N, 4) and labels (B, N, ...)."""
    if not isinstance(bounding_boxes, dict) or "boxes" not in bounding_boxes or "labels" not in bounding_boxes:
        raise ValueError(f"{_where(layer)}: 'bounding_boxes' must be a dict with keys 'boxes' and 'labels', got "
                         f"{bounding_boxes!r:.200}.")
    boxes = _as_array(bounding_boxes["boxes"], "bounding_boxes['boxes']", layer)
    labels = _as_array(bounding_boxes["labels"], "bounding_boxes['labels']", layer)
    rank = 3 if batched else 2
    if boxes.ndim != rank or boxes.shape[-1] != 4:
        raise ValueError(f"{_where(layer)}: bounding_boxes['boxes'] must have shape "
                         f"{'(batch_size, num_boxes, 4)' if batched else '(num_boxes, 4)'} for "
                         f"{'a batch of images' if batched else 'one image'}, got {tuple(boxes.shape)}.")
    if labels.ndim not in (rank - 1, rank) or tuple(labels.shape[:rank - 1]) != tuple(boxes.shape[:rank - 1]):
        raise ValueError(f"{_where(layer)}: bounding_boxes['labels'] must have shape {tuple(boxes.shape[:-1])} "
                         f"(one label per box), got {tuple(labels.shape)}.")
    xp = array_module(boxes)
    boxes = xp.asarray(boxes).astype(numpy.float32, copy=False)
    labels = array_module(labels).asarray(labels)
    if not batched:
        boxes, labels = boxes[None], labels[None]
    return boxes, labels


def call_on_dict(layer, data, training):
    """The layer called on Keras's dict form of its data (module docstring)."""
    support = getattr(layer, "dict_entries", None)
    if support is None:
        raise ValueError(f"{_where(layer)}: does not take Keras's dict inputs {{'images': ..., 'bounding_boxes': "
                         f"..., 'segmentation_masks': ...}} in gpu_dl; pass the images array.")
    if "images" not in data:
        raise ValueError(f"{_where(layer)}: a dict input needs an 'images' entry; got keys {sorted(map(str, data))}.")
    if any_symbolic(*data.values()):
        raise ValueError(f"{_where(layer)}: dict inputs are taken when the layer is called on data (as in a data "
                         f"pipeline), not on symbolic tensors of a model.")
    images = _as_array(data["images"], "'images'", layer)
    if images.ndim not in (3, 4):
        raise ValueError(f"{_where(layer)}: expected 'images' of rank 3 (one image) or 4 (a batch of images), got "
                         f"shape {tuple(images.shape)}.")
    batched = images.ndim == 4
    last_shape = layer.to_last_shape(images.shape if batched else (1,) + tuple(images.shape))
    height, width = last_shape[1], last_shape[2]
    if "bounding_boxes" in data and not getattr(layer, "takes_boxes", True):
        raise ValueError(f"{_where(layer)}: does not transform bounding boxes (as Keras's {type(layer).__name__} does "
                         f"not); leave 'bounding_boxes' out of the dict.")
    if "bounding_boxes" in data and not layer.bounding_box_format:
        raise ValueError(f"{_where(layer)}: you passed an input with a 'bounding_boxes' key, but you didn't specify a "
                         f"bounding box format. Pass a `bounding_box_format` argument to your {type(layer).__name__} "
                         f"layer, e.g. `bounding_box_format='xyxy'`.")
    out = dict(data)
    out["images"] = layer(images, training=training)
    saved = layer._saved if support == "transformed" else None
    if "bounding_boxes" in data:
        boxes, labels = _boxes_and_labels(layer, data["bounding_boxes"], batched)
        if saved is not None:
            boxes, labels = layer.dict_boxes(boxes, labels, height, width, saved)
        result = dict(data["bounding_boxes"])
        result["boxes"], result["labels"] = (boxes, labels) if batched else (boxes[0], labels[0])
        out["bounding_boxes"] = result
    if "labels" in data:
        labels = _as_array(data["labels"], "'labels'", layer)
        if saved is not None:
            mixed = layer.dict_labels(labels if batched else labels[None], saved)
            labels = mixed if batched else mixed[0]
        out["labels"] = labels
    if "segmentation_masks" in data:
        masks = _as_array(data["segmentation_masks"], "'segmentation_masks'", layer)
        # the masks are moved where the images are: their draws (CutMix's box) live there
        xp = array_module(images)
        masks = to_numpy(masks) if xp is numpy else xp.asarray(masks)
        batch = masks if batched else masks[None]
        if masks.ndim != images.ndim or layer.to_last_shape(batch.shape)[:3] != last_shape[:3]:
            raise ValueError(f"{_where(layer)}: 'segmentation_masks' must have the images' batch and spatial sizes "
                             f"and a channel axis (images {tuple(images.shape)}), got shape {tuple(masks.shape)}.")
        if saved is not None:
            moved = layer.from_last(layer.dict_masks(layer.to_last(batch), saved))
            masks = moved if batched else moved[0]
        out["segmentation_masks"] = masks
    return out


def clip_boxes(boxes, labels, height, width, box_format="xyxy"):
    """Keras's ``clip_to_image_size`` on arrays: (boxes, labels)."""
    from ..utils.bounding_boxes import clip_to_image_size
    clipped = clip_to_image_size({"boxes": boxes, "labels": labels}, height=height, width=width,
                                 bounding_box_format=box_format)
    return clipped["boxes"], clipped["labels"]


def convert(boxes, source, target, height, width):
    """Keras's ``convert_format`` (float32)."""
    from ..utils.bounding_boxes import convert_format
    return convert_format(boxes, source, target, height=height, width=width)


def per_image(values, boxes):
    """Host values, one per image, as (B, 1, 1) float32 on the boxes' module (to broadcast against (B, N, 1))."""
    return array_module(boxes).asarray(numpy.asarray(values, dtype=numpy.float32)).reshape(-1, 1, 1)
