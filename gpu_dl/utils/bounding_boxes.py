"""Keras 3.15's ``keras.utils.bounding_boxes``: box format conversion, clipping, cropping, padding, affine maps,
IoU and CIoU, and the anchor delta encoding.

A box is 4 numbers on the last axis; ``(N, 4)`` is one image's boxes, ``(B, N, 4)`` a batch's. The formats, as
Keras names them (case-insensitive):

- ``xyxy`` [left, top, right, bottom]; ``yxyx`` [top, left, bottom, right];
- ``xywh`` [left, top, width, height];
- ``center_xywh`` [center_x, center_y, width, height]; ``center_yxhw`` [center_y, center_x, height, width];
- ``rel_xyxy``, ``rel_yxyx``, ``rel_xywh``, ``rel_center_xywh``: the same with x divided by the image width and y
  by its height (a conversion to or from one needs ``height`` and ``width``).

Every function is array code on the module of its boxes (NumPy, or CuPy for boxes on the GPU), computed in the
dtype Keras computes it in (``convert_format`` casts to float32 by default, so IoU, CIoU and the deltas are
float32), with Keras's argument names, defaults and errors. Where Keras's function fails on an input it
documents (``affine_transform`` on unbatched ``(N, 4)`` boxes), this one takes it.
"""
from __future__ import annotations

import math

import numpy

from ..backend import array_module
from ..backend.config import epsilon

SUPPORTED_FORMATS = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
                     "rel_center_xywh")

# Each format as (kind, order): kind says what the 4 numbers hold, order the positions of x-ish and y-ish values.
#   corners: (x1, y1, x2, y2); corner_size: (x1, y1, w, h); center_size: (cx, cy, w, h).
_LAYOUTS = {"xyxy": ("corners", (0, 1, 2, 3)), "yxyx": ("corners", (1, 0, 3, 2)),
            "xywh": ("corner_size", (0, 1, 2, 3)), "center_xywh": ("center_size", (0, 1, 2, 3)),
            "center_yxhw": ("center_size", (1, 0, 3, 2))}


def _module_and_array(boxes):
    xp = array_module(boxes)
    return xp, (boxes if xp is not numpy else numpy.asarray(boxes))


def _split(boxes):
    return tuple(boxes[..., i:i + 1] for i in range(4))


def _join(xp, parts):
    return xp.concatenate(parts, axis=-1)


def _to_xyxy(xp, boxes, source, height, width):
    relative = source.startswith("rel_")
    kind, order = _LAYOUTS[source[4:] if relative else source]
    parts = _split(boxes)
    x1, y1, p, q = (parts[i] for i in order)
    if kind == "corners":
        x2, y2 = p, q
    elif kind == "corner_size":
        x2, y2 = x1 + p, y1 + q
    else:
        # Keras subtracts and adds half the size to the centre.
        x1, y1, x2, y2 = x1 - p / 2.0, y1 - q / 2.0, x1 + p / 2.0, y1 + q / 2.0
    if relative:
        x1, y1, x2, y2 = x1 * width, y1 * height, x2 * width, y2 * height
    return x1, y1, x2, y2


def _from_xyxy(xp, corners, target, height, width):
    relative = target.startswith("rel_")
    kind, order = _LAYOUTS[target[4:] if relative else target]
    x1, y1, x2, y2 = corners
    if kind == "corners":
        values = (x1 / width, y1 / height, x2 / width, y2 / height) if relative else (x1, y1, x2, y2)
    elif kind == "corner_size":
        values = ((x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height) if relative
                  else (x1, y1, x2 - x1, y2 - y1))
    else:
        cx, cy, w, h = x1 + (x2 - x1) / 2.0, y1 + (y2 - y1) / 2.0, x2 - x1, y2 - y1
        values = (cx / width, cy / height, w / width, h / height) if relative else (cx, cy, w, h)
    out = [None] * 4
    for position, value in zip(order, values):
        out[position] = value
    return _join(xp, out)


def convert_format(boxes, source, target, height=None, width=None, dtype="float32"):
    """Boxes converted from format ``source`` to ``target`` (module docstring), cast to ``dtype``.

    ``boxes``: an array ``(..., 4)``, or a dict whose ``"boxes"`` entry is converted (a copy of the dict is
    returned). ``height`` and ``width`` (numbers or arrays that broadcast against ``(..., 1)``) are required when
    either format is relative; between two relative formats they are not used.
    """
    if isinstance(boxes, dict):
        result = dict(boxes)
        result["boxes"] = convert_format(boxes["boxes"], source, target, height=height, width=width, dtype=dtype)
        return result
    xp, boxes = _module_and_array(boxes)
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"`boxes` must be a tensor with the last dimension of 4. Received: "
                         f"boxes.shape={tuple(boxes.shape)}")
    if not isinstance(source, str) or not isinstance(target, str):
        raise ValueError(f"Invalid source or target format. Supported formats: {SUPPORTED_FORMATS}")
    source, target = source.lower(), target.lower()
    if source not in SUPPORTED_FORMATS or target not in SUPPORTED_FORMATS:
        raise ValueError(f"Invalid source or target format. Supported formats: {SUPPORTED_FORMATS}")
    if (source.startswith("rel_") or target.startswith("rel_")) and (width is None or height is None):
        raise ValueError(f"convert_format() must receive `height` and `width` transforming between relative and "
                         f"absolute formats. convert_format() received source=`{source}`, target=`{target}`, but "
                         f"height={height} and width={width}.")
    dtype = numpy.dtype(dtype)
    boxes = boxes.astype(dtype, copy=False)
    if source == target:
        return boxes
    if width is not None:
        width = xp.asarray(width, dtype=dtype)
    if height is not None:
        height = xp.asarray(height, dtype=dtype)
    if source.startswith("rel_") and target.startswith("rel_"):
        source, target = source[4:], target[4:]
    return _from_xyxy(xp, _to_xyxy(xp, boxes, source, height, width), target, height, width)


def _area(x1, y1, x2, y2):
    return ((x2 - x1) * (y2 - y1))[..., 0]


def clip_to_image_size(bounding_boxes, height=None, width=None, bounding_box_format="xyxy"):
    """``bounding_boxes`` (a dict with ``"boxes"`` ``(N, 4)`` or ``(B, N, 4)`` and optionally ``"labels"``)
    with the boxes clipped to the image: [0, width] x [0, height] for ``xyxy``, [0, 1] x [0, 1] for
    ``rel_xyxy`` (Keras clips only these two formats). A box whose clipped area is not positive gets label -1.
    Returns a copy of the dict."""
    if bounding_box_format not in ("xyxy", "rel_xyxy"):
        raise NotImplementedError(f"clip_to_image_size: bounding_box_format must be 'xyxy' or 'rel_xyxy' (the "
                                  f"formats Keras clips), got {bounding_box_format!r}.")
    if bounding_box_format == "xyxy" and (height is None or width is None):
        raise ValueError("`height` and `width` must be set if `format='xyxy'`.")
    if not isinstance(bounding_boxes, dict) or "boxes" not in bounding_boxes:
        raise ValueError(f"clip_to_image_size: `bounding_boxes` must be a dict with a 'boxes' entry (and optionally "
                         f"'labels'), got {type(bounding_boxes).__name__}.")
    xp, boxes = _module_and_array(bounding_boxes["boxes"])
    labels = bounding_boxes.get("labels", None)
    if bounding_box_format == "xyxy":
        high_x, high_y = xp.asarray(width, dtype=boxes.dtype), xp.asarray(height, dtype=boxes.dtype)
    else:
        high_x = high_y = xp.asarray(1.0, dtype=boxes.dtype)
    x1, y1, x2, y2 = _split(boxes)
    x1, x2 = (xp.minimum(xp.maximum(v, 0), high_x) for v in (x1, x2))
    y1, y2 = (xp.minimum(xp.maximum(v, 0), high_y) for v in (y1, y2))
    result = dict(bounding_boxes)
    result["boxes"] = _join(xp, [x1, y1, x2, y2]).astype(boxes.dtype, copy=False)
    if labels is not None:
        labels = xp.asarray(labels)
        result["labels"] = xp.where(_area(x1, y1, x2, y2) > 0, labels, xp.asarray(-1, dtype=labels.dtype))
    return result


def _only_xyxy(name, bounding_box_format):
    if bounding_box_format != "xyxy":
        raise NotImplementedError(f"{name}: only bounding_box_format='xyxy' is supported (as in Keras), got "
                                  f"{bounding_box_format!r}; convert the boxes with convert_format first.")


def _inverse_affine_matrices(xp, center_x, center_y, angle, translate_x, translate_y, scale, shear_x, shear_y,
                             height, width):
    """(B, 2, 3) matrices of Keras's ``_compute_inverse_affine_matrix`` (the inverse map of torchvision's affine
    about a centre given as fractions of (width - 1, height - 1); angles in degrees), in the dtype of ``angle``."""
    radians = 1.0 / 180.0 * math.pi
    angle, shear_x, shear_y = -angle, -shear_x, -shear_y
    cx, cy = center_x * (width - 1), center_y * (height - 1)
    rot = angle * radians
    tx, ty = -translate_x * (width - 1), -translate_y * (height - 1)
    sx, sy = shear_x * radians, shear_y * radians
    cos_sy, tan_sx = xp.cos(sy), xp.tan(sx)
    a = xp.cos(rot - sy) / cos_sy
    b = a * tan_sx + xp.sin(rot)
    c = -xp.sin(rot - sy) / cos_sy
    d = xp.cos(rot) - c * tan_sx
    a0, a1, b0, b1 = d * scale, -b * scale, -c * scale, a * scale
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    rows = [xp.broadcast_to(v, angle.shape) for v in (a0, a1, a2, b0, b1, b2)]
    return xp.stack(rows, axis=-1).reshape(angle.shape[0], 2, 3).astype(angle.dtype, copy=False)


def affine_transform(boxes, angle, translate_x, translate_y, scale, shear_x, shear_y, height, width, center_x=None,
                     center_y=None, bounding_box_format="xyxy"):
    """The axis-aligned hull of each ``xyxy`` box's 4 corners mapped through Keras's inverse affine matrix of
    (angle, translation, scale, shear; one value per image, angles in degrees, translations and centres as
    fractions; centres default to 0.5). ``boxes`` ``(B, N, 4)`` with per-image values of shape ``(B,)``, or one
    image's ``(N, 4)`` with scalars. Computed in the dtype of ``angle`` (float32 for Python numbers)."""
    _only_xyxy("affine_transform", bounding_box_format)
    xp, boxes = _module_and_array(boxes)
    unbatched = boxes.ndim == 2
    if unbatched:
        boxes = boxes[None]
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"affine_transform: `boxes` must have shape (N, 4) or (batch_size, N, 4), got "
                         f"{tuple(boxes.shape)}.")
    # Keras computes in the dtype of its angle tensor; Python numbers become float32 as Keras's tensors do.
    dtype = getattr(angle, "dtype", None)
    dtype = numpy.dtype(dtype) if dtype is not None and numpy.dtype(dtype).kind == "f" else numpy.dtype("float32")
    center_x = 0.5 if center_x is None else center_x
    center_y = 0.5 if center_y is None else center_y
    values = [xp.asarray(v, dtype=dtype).reshape(-1) for v in (center_x, center_y, angle, translate_x,
                                                                translate_y, scale, shear_x, shear_y, height, width)]
    values[2] = xp.broadcast_to(values[2], (boxes.shape[0],))
    matrices = _inverse_affine_matrices(xp, *values)
    boxes = boxes.astype(dtype, copy=False)
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    xs = xp.stack([x1, x2, x2, x1], axis=-1)            # the corners (x1, y1), (x2, y1), (x2, y2), (x1, y2)
    ys = xp.stack([y1, y1, y2, y2], axis=-1)
    m = matrices[:, None, None]
    new_x = xs * m[..., 0, 0] + ys * m[..., 0, 1] + m[..., 0, 2]
    new_y = xs * m[..., 1, 0] + ys * m[..., 1, 1] + m[..., 1, 2]
    out = xp.stack([new_x.min(axis=-1), new_y.min(axis=-1), new_x.max(axis=-1), new_y.max(axis=-1)], axis=-1)
    return out[0] if unbatched else out


def crop(boxes, top, left, height, width, bounding_box_format="xyxy"):
    """``xyxy`` boxes moved into the frame of the region starting at (``left``, ``top``) and clipped to its
    ``width`` x ``height`` (None: no upper bound on that axis)."""
    _only_xyxy("crop", bounding_box_format)
    xp, boxes = _module_and_array(boxes)
    x1, y1, x2, y2 = _split(boxes)

    def clip(v, high):
        v = xp.maximum(v, 0)
        return v if high is None else xp.minimum(v, high)

    return _join(xp, [clip(x1 - left, width), clip(y1 - top, height), clip(x2 - left, width),
                      clip(y2 - top, height)])


def pad(boxes, top, left, height=None, width=None, bounding_box_format="xyxy"):
    """``xyxy`` boxes moved by the padding ``left`` and ``top`` added before the image (``height`` and ``width``
    are taken as Keras takes them, unused)."""
    _only_xyxy("pad", bounding_box_format)
    xp, boxes = _module_and_array(boxes)
    x1, y1, x2, y2 = _split(boxes)
    return _join(xp, [x1 + left, y1 + top, x2 + left, y2 + top])


def _variance(variance, xp):
    if variance is None:
        return None
    variance = xp.asarray(variance, dtype=numpy.float32)
    if variance.ndim == 0 or variance.shape[-1] != 4:
        raise ValueError(f"`variance` must be length 4, got {variance}")
    return variance


def _height_width(image_shape):
    if image_shape is None:
        return None, None
    height, width, _ = image_shape
    return height, width


def _delta_setup(first, second, variance, encoding, message, image_shape):
    """The module, float32 variance, and image height and width of the delta functions, with their checks."""
    xp = array_module(first, second)
    variance = _variance(variance, xp)
    if encoding not in ("center_xywh", "center_yxhw"):
        raise ValueError(message)
    return (xp, variance) + _height_width(image_shape)


def encode_box_to_deltas(anchors, boxes, anchor_format, box_format, encoding_format="center_yxhw", variance=None,
                         image_shape=None):
    """The deltas from ``anchors`` ``(N, 4)`` to ``boxes`` ``(N, 4)`` or ``(B, N, 4)``, both converted to
    ``encoding_format`` (``center_yxhw`` or ``center_xywh``): the centre offsets over the anchor's size, then the
    logs of the size ratios (sizes floored at 1e-7), divided by ``variance`` when given. ``image_shape``
    (height, width, channels) is needed for relative formats."""
    xp, variance, height, width = _delta_setup(
        anchors, boxes, variance, encoding_format,
        f"`encoding_format` should be one of 'center_xywh' or 'center_yxhw', got {encoding_format}", image_shape)
    anchors = convert_format(anchors, anchor_format, encoding_format, height=height, width=width)
    boxes = convert_format(boxes, box_format, encoding_format, height=height, width=width)
    anchor_size = xp.maximum(anchors[..., 2:], numpy.float32(epsilon()))
    box_size = xp.maximum(boxes[..., 2:], numpy.float32(epsilon()))
    deltas = xp.concatenate([(boxes[..., :2] - anchors[..., :2]) / anchor_size, xp.log(box_size / anchor_size)],
                            axis=-1)
    return deltas if variance is None else deltas / variance


def decode_deltas_to_boxes(anchors, boxes_delta, anchor_format, box_format, encoded_format="center_yxhw",
                           variance=None, image_shape=None):
    """The inverse of ``encode_box_to_deltas``: boxes in ``box_format`` from ``anchors`` and ``boxes_delta``
    (multiplied by ``variance`` when given). Both may be dicts of levels with the same keys; the result is then
    a dict of the decoded boxes per level."""
    if isinstance(anchors, dict) != isinstance(boxes_delta, dict):
        raise ValueError("decode_deltas_to_boxes: `anchors` and `boxes_delta` must both be arrays or both be dicts "
                         "of levels.")
    if isinstance(anchors, dict):
        return {level: decode_deltas_to_boxes(anchor, boxes_delta[level], anchor_format, box_format,
                                              encoded_format, variance, image_shape)
                for level, anchor in anchors.items()}
    xp, variance, height, width = _delta_setup(
        anchors, boxes_delta, variance, encoded_format,
        f"`encoded_format` should be 'center_xywh' or 'center_yxhw', but got '{encoded_format}'.", image_shape)
    anchors = convert_format(anchors, anchor_format, encoded_format, height=height, width=width)
    boxes_delta = xp.asarray(boxes_delta)
    if variance is not None:
        boxes_delta = boxes_delta * variance
    boxes = xp.concatenate([boxes_delta[..., :2] * anchors[..., 2:] + anchors[..., :2],
                            xp.exp(boxes_delta[..., 2:]) * anchors[..., 2:]], axis=-1)
    return convert_format(boxes, encoded_format, box_format, height=height, width=width)


def _check_iou_rank(boxes, which, ranks):
    if len(boxes.shape) not in (2, 3):
        raise ValueError(f"compute_iou() expects {which} to be batched, or to be unbatched. Received "
                         f"len(boxes1.shape)={ranks[0]}, len(boxes2.shape)={ranks[1]}. Expected either "
                         f"len({which}.shape)=2 AND or len({which}.shape)=3.")


def compute_iou(boxes1, boxes2, bounding_box_format, use_masking=False, mask_val=-1, image_shape=None):
    """The pairwise IoUs of ``boxes1`` ``(M, 4)`` or ``(B, M, 4)`` and ``boxes2`` ``(N, 4)`` or ``(B, N, 4)``:
    ``(M, N)``, or ``(B, M, N)`` where either is batched; intersection over (union + 1e-7), in float32. With
    ``use_masking``, pairs where either box has all 4 coordinates negative read ``mask_val``."""
    xp = array_module(boxes1, boxes2)
    boxes1, boxes2 = (xp.asarray(b) for b in (boxes1, boxes2))
    ranks = (boxes1.ndim, boxes2.ndim)
    _check_iou_rank(boxes1, "boxes1", ranks)
    _check_iou_rank(boxes2, "boxes2", ranks)
    if "rel" in bounding_box_format and image_shape is None:
        raise ValueError(f"When using relative bounding box formats (e.g. `rel_yxyx`) the `image_shape` argument "
                         f"must be provided. Received `image_shape`: {image_shape}")
    height, width = _height_width(image_shape)
    boxes1 = convert_format(boxes1, bounding_box_format, "yxyx", height=height, width=width)
    boxes2 = convert_format(boxes2, bounding_box_format, "yxyx", height=height, width=width)
    y1a, x1a, y2a, x2a = _split(boxes1)                                # (..., M, 1)
    y1b, x1b, y2b, x2b = (v.swapaxes(-1, -2) for v in _split(boxes2))  # (..., 1, N)
    zero = xp.asarray(0, dtype=boxes1.dtype)
    inter = (xp.maximum(zero, xp.minimum(y2a, y2b) - xp.maximum(y1a, y1b))
             * xp.maximum(zero, xp.minimum(x2a, x2b) - xp.maximum(x1a, x1b)))
    area1 = ((y2a - y1a) * (x2a - x1a))
    area2 = ((y2b - y1b) * (x2b - x1b))
    iou = inter / (area1 + area2 - inter + numpy.float32(epsilon()))
    if not use_masking:
        return iou
    background = (boxes1.max(axis=-1, keepdims=True) < 0) | (boxes2.max(axis=-1, keepdims=True) < 0).swapaxes(-1, -2)
    return xp.where(background, xp.asarray(mask_val, dtype=iou.dtype), iou)


def compute_ciou(boxes1, boxes2, bounding_box_format, image_shape=None):
    """The Complete IoU of ``boxes1`` and ``boxes2`` (arrays ``(..., 4)`` that broadcast), one value per pair:
    IoU minus the squared centre distance over the squared diagonal of the enclosing box, minus the aspect
    ratio term ``alpha v``, with Keras's 1e-7 terms. Keras refuses relative formats here."""
    if "rel" in bounding_box_format:
        raise ValueError(f"When using relative bounding box formats (e.g. `rel_yxyx`) the `image_shape` argument "
                         f"must be provided. Received `image_shape`: {image_shape}")
    xp = array_module(boxes1, boxes2)
    height, width = _height_width(image_shape)
    boxes1 = convert_format(boxes1, bounding_box_format, "xyxy", height=height, width=width)
    boxes2 = convert_format(boxes2, bounding_box_format, "xyxy", height=height, width=width)
    eps = epsilon()
    x1a, y1a, x2a, y2a = _split(boxes1)
    x1b, y1b, x2b, y2b = _split(boxes2)
    w1, h1 = x2a - x1a, y2a - y1a + eps
    w2, h2 = x2b - x1b, y2b - y1b + eps
    inter = (xp.maximum(xp.minimum(x2a, x2b) - xp.maximum(x1a, x1b), 0)
             * xp.maximum(xp.minimum(y2a, y2b) - xp.maximum(y1a, y1b), 0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = (inter / (union + eps))[..., 0]
    convex_w = xp.maximum(x2a, x2b) - xp.minimum(x1a, x1b)
    convex_h = xp.maximum(y2a, y2b) - xp.minimum(y1a, y1b)
    diagonal = (convex_w ** 2 + convex_h ** 2 + eps)[..., 0]
    centres = (((x1a + x2a) / 2 - (x1b + x2b) / 2) ** 2 + ((y1a + y2a) / 2 - (y1b + y2b) / 2) ** 2)[..., 0]
    v = ((4 / math.pi ** 2) * (xp.arctan(w2 / h2) - xp.arctan(w1 / h1)) ** 2)[..., 0]
    alpha = v / (v - iou + (1 + eps))
    return iou - (centres / diagonal + v * alpha)


__all__ = ["affine_transform", "clip_to_image_size", "compute_ciou", "compute_iou", "convert_format", "crop",
           "decode_deltas_to_boxes", "encode_box_to_deltas", "pad"]
