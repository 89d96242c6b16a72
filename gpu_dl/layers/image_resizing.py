"""Keras 3's image size layers: Resizing, CenterCrop, RandomCrop.

All three take a batch (N, H, W, C) — or (N, C, H, W) with
``data_format="channels_first"`` — or one image without the batch axis, and
return images of ``height`` x ``width``. Each is a crop (a slice), possibly a
constant padding, and a resize (``gpu_dl.ops.resize``: bilinear or nearest
with half-pixel centres, PyTorch's numbers, which Keras 3.15's torch backend
computes), so their backward is the transpose of those steps: the resize's
scatter-add, then the gradient placed back into the window the crop took.

What Keras 3.15 does, and these layers do too:

- ``Resizing`` always applies; ``crop_to_aspect_ratio`` first takes the
  largest centred window with the target's aspect ratio (``smart_resize``'s
  box), ``pad_to_aspect_ratio`` first pads the short side evenly with
  ``fill_value`` (``int((padded - size) / 2)`` rows or columns on each side).
- ``CenterCrop`` always applies: a centred slice when the input is at least
  ``height`` x ``width``, else ``smart_resize`` (the aspect-ratio window,
  resized bilinearly to the target).
- ``RandomCrop`` in training cuts one random window, the same for the whole
  batch, when the input is larger than the target along both axes; else it
  slices a ``height`` x ``width`` window at the aspect-ratio window's corner
  and resizes what it got to the target. At inference it returns its input
  unchanged: Keras 3.15 does so (its docstring promises a centred crop, its
  code passes the images through), although its output shape, and this
  layer's, says ``height`` x ``width``.

Called on Keras's dict inputs (``gpu_dl.layers.image_dicts``), the boxes and masks follow the window each
layer cut: Resizing resizes the masks with nearest interpolation, CenterCrop and RandomCrop treat them as images.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import array_module
from ..ops.resize import resize, resize_backward
from .image_dicts import clip_boxes, convert
from .preprocessing import _RandomImageLayer, _is_number, _where
from .spatial import contiguous

RESIZE_INTERPOLATIONS = ("bilinear", "nearest")
KERAS_ONLY_INTERPOLATIONS = ("bicubic", "lanczos3", "lanczos5", "area")


def _size(layer, value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{_where(layer)}: {what} must be a positive integer, got {value!r}.")
    return int(value)


def aspect_crop_box(height, width, target_height, target_width):
    """Keras's ``smart_resize`` window of an image (height, width): (top, left, rows, columns), the largest
    centred window with the target's aspect ratio (integer arithmetic as Keras rounds it)."""
    rows = max(min(height, int(float(width * target_height) / target_width)), 1)
    columns = max(min(width, int(float(height * target_width) / target_height)), 1)
    return int(float(height - rows) / 2), int(float(width - columns) / 2), rows, columns


def clipped_box(height, width, top, left, rows, columns):
    """The window a slice [top:top + rows, left:left + columns] of an image (height, width) really takes."""
    return top, left, min(rows, height - top), min(columns, width - left)


def crop_pad_resize(x, box, pads, size, interpolation, fill_value=0.0):
    """(N, H, W, C) images: padded by ``pads`` = (rows, columns) of ``fill_value`` on each side, cut to
    ``box`` = (top, left, rows, columns) of the padded image, resized to ``size`` = (height, width)."""
    xp = array_module(x)
    if any(pads):
        n, h, w, c = x.shape
        padded = xp.full((n, h + 2 * pads[0], w + 2 * pads[1], c), fill_value, dtype=x.dtype)
        padded[:, pads[0]:pads[0] + h, pads[1]:pads[1] + w] = x
        x = padded
    top, left, rows, columns = box
    x = x[:, top:top + rows, left:left + columns]
    if (rows, columns) != tuple(size):
        x = resize(contiguous(x), size[0], size[1], interpolation)
    return contiguous(x)


def crop_pad_resize_backward(dy, input_shape, box, pads, interpolation):
    """The gradient of ``crop_pad_resize`` with respect to its input of ``input_shape``."""
    xp = array_module(dy)
    n, h, w, c = input_shape
    top, left, rows, columns = box
    if (rows, columns) != tuple(dy.shape[1:3]):
        dy = resize_backward(dy, rows, columns, interpolation)
    padded = xp.zeros((n, h + 2 * pads[0], w + 2 * pads[1], c), dtype=dy.dtype)
    padded[:, top:top + rows, left:left + columns] = dy
    return contiguous(padded[:, pads[0]:pads[0] + h, pads[1]:pads[1] + w])


class _SizedImageLayer(_RandomImageLayer):
    """An image layer whose output is ``height`` x ``width`` (the random-layer base gives it the seed, the
    training switch, one image without a batch axis and the data formats)."""

    interpolation = "bilinear"

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height = _size(self, height, "height")
        self.width = _size(self, width, "width")

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) == 3:       # one image, as Keras's compute_output_shape takes it
            return self.compute_output_shape((None,) + input_shape)[1:]
        shape = list(self.check_rank(input_shape))
        shape[1], shape[2] = self.height, self.width
        return self.from_last_shape(tuple(shape))

    def _plan(self, h, w):
        """(box, pads) of an input of h x w (see ``crop_pad_resize``)."""
        raise NotImplementedError

    def _transform(self, x):
        box, pads = self._plan(x.shape[1], x.shape[2])
        y = crop_pad_resize(x, box, pads, (self.height, self.width), self.interpolation,
                            getattr(self, "fill_value", 0.0))
        return y, (x.shape, box, pads)

    def _backward(self, dy):
        shape, box, pads = self.saved()
        if not self.input_gradient_wanted:
            return None
        return self.from_last(crop_pad_resize_backward(self.to_last(dy), shape, box, pads, self.interpolation))

    dict_entries = "transformed"
    mask_interpolation = "bilinear"      # Keras's CenterCrop and RandomCrop move the masks as images

    def dict_masks(self, masks, saved):
        _, box, pads = saved
        kind = numpy.dtype(masks.dtype).kind
        # The resize takes float images; whole-number masks resized with nearest keep their dtype, bilinear ones
        # come back float32 as Keras's do.
        work = masks if kind == "f" else masks.astype(numpy.float32)
        out = crop_pad_resize(work, box, pads, (self.height, self.width), self.mask_interpolation,
                              getattr(self, "fill_value", 0.0))
        return out.astype(masks.dtype) if kind != "f" and self.mask_interpolation == "nearest" else out

    def dict_boxes(self, boxes, labels, height, width, saved):
        # Keras's CenterCrop steps: the boxes clipped to the window the crop took and moved to its corner; scaled
        # to the output where the window was resized; clipped to the output (labels -1 for empty boxes).
        # RandomCrop takes the same steps with its window: Keras 3.15's RandomCrop moves x by the window's top and
        # y by its left, and neither clips nor scales, so its boxes do not follow its images.
        _, (top, left, rows, columns), _ = saved
        xp = array_module(boxes)
        b = convert(boxes, self.bounding_box_format, "xyxy", height, width)
        x1, x2 = (xp.minimum(xp.maximum(b[..., i:i + 1], left), left + columns) - left for i in (0, 2))
        y1, y2 = (xp.minimum(xp.maximum(b[..., i:i + 1], top), top + rows) - top for i in (1, 3))
        b = xp.concatenate([x1, y1, x2, y2], axis=-1)
        if (rows, columns) != (self.height, self.width):
            b = convert(convert(b, "xyxy", "rel_xyxy", rows, columns), "rel_xyxy", "xyxy", self.height, self.width)
        b, labels = clip_boxes(b, labels, self.height, self.width)
        return convert(b, "xyxy", self.bounding_box_format, self.height, self.width), labels

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


class _AlwaysOn(_SizedImageLayer):
    """Resizing and CenterCrop: deterministic, the same in training and at inference, no seed."""

    draws = False

    def call(self, x, training=False):
        y, self._saved = self._transform(self.to_last(x))
        return self.from_last(y)

    def get_config(self):
        config = super().get_config()
        config.pop("seed")
        return config


class Resizing(_AlwaysOn):
    """Resizes images to ``height`` x ``width``: (N, H, W, C) -> (N, height, width, C), or one image
    (H, W, C) -> (height, width, C); ``interpolation`` "bilinear" or "nearest" (module docstring)."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, antialias=False,
                 data_format=None, **kwargs):
        super().__init__(height, width, data_format=data_format, **kwargs)
        where = _where(self)
        if interpolation in KERAS_ONLY_INTERPOLATIONS:
            raise ValueError(f"{where}: interpolation {interpolation!r} is not supported by gpu_dl; use 'bilinear' "
                             "or 'nearest'.")
        if interpolation not in RESIZE_INTERPOLATIONS:
            raise ValueError(f"{where}: interpolation must be 'bilinear' or 'nearest', got {interpolation!r}.")
        if antialias:
            raise ValueError(f"{where}: antialias=True is not supported by gpu_dl (Keras's default, False, is).")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"{where}: only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be True.")
        if fill_mode != "constant":
            raise ValueError(f"{where}: fill_mode must be 'constant' (the only padding Keras's Resizing has), "
                             f"got {fill_mode!r}.")
        if not _is_number(fill_value):
            raise ValueError(f"{where}: fill_value must be a number, got {fill_value!r}.")
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = float(fill_value)
        self.antialias = False

    mask_interpolation = "nearest"       # Keras resizes the masks with nearest interpolation

    def dict_boxes(self, boxes, labels, height, width, saved):
        # Keras's steps: boxes all 0 or all -1 (padding) stay zeros; the others scaled (and shifted by the padding
        # or the crop of the aspect-ratio modes) in float32, clipped to the output, back to the layer's format.
        xp = array_module(boxes)
        padding = xp.all(boxes == -1, axis=-1) | xp.all(boxes == 0, axis=-1)
        b = convert(boxes, self.bounding_box_format, "xyxy", height, width)
        f32 = numpy.float32
        h_in, w_in, h_out, w_out = f32(height), f32(width), f32(self.height), f32(self.width)
        if self.pad_to_aspect_ratio:
            ratio = min(h_out / h_in, w_out / w_in)
            scale_x = scale_y = ratio
            shift_x, shift_y = -((w_out - w_in * ratio) // 2), -((h_out - h_in * ratio) // 2)
        elif self.crop_to_aspect_ratio:
            source = w_in / h_in
            wider = source > w_out / h_out
            new_w, new_h = (h_out * source, h_out) if wider else (w_out, w_out / source)
            scale_x, scale_y = f32(new_w) / w_in, f32(new_h) / h_in
            shift_x, shift_y = (f32(new_w) - w_out) // 2, (f32(new_h) - h_out) // 2
        else:
            scale_x, scale_y, shift_x, shift_y = w_out / w_in, h_out / h_in, f32(0), f32(0)
        scale = xp.asarray(numpy.array([scale_x, scale_y, scale_x, scale_y], dtype=f32))
        shift = xp.asarray(numpy.array([shift_x, shift_y, shift_x, shift_y], dtype=f32))
        b = b * scale - shift
        b, labels = clip_boxes(b, labels, self.height, self.width)
        b = xp.where(padding[..., None], xp.zeros((), dtype=b.dtype), b)
        return convert(b, "xyxy", self.bounding_box_format, self.height, self.width), labels

    def _plan(self, h, w):
        if self.crop_to_aspect_ratio:
            return aspect_crop_box(h, w, self.height, self.width), (0, 0)
        if self.pad_to_aspect_ratio:
            # Keras pads int((padded - size) / 2) on each side of the short axis, so an odd remainder is lost.
            pad_h = int(float(max(h, int(float(w * self.height) / self.width)) - h) / 2)
            pad_w = int(float(max(w, int(float(h * self.width) / self.height)) - w) / 2)
            return (0, 0, h + 2 * pad_h, w + 2 * pad_w), (pad_h, pad_w)
        return (0, 0, h, w), (0, 0)

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio, "pad_to_aspect_ratio": self.pad_to_aspect_ratio,
                "fill_mode": self.fill_mode, "fill_value": self.fill_value, "antialias": self.antialias}


class CenterCrop(_AlwaysOn):
    """The centred ``height`` x ``width`` window of each image; an input smaller than that along either axis
    is cropped to the target's aspect ratio and resized bilinearly (Keras's ``smart_resize``)."""

    def __init__(self, height, width, data_format=None, **kwargs):     # Keras's order: no seed
        super().__init__(height, width, data_format=data_format, **kwargs)

    def _plan(self, h, w):
        if h >= self.height and w >= self.width:
            return ((h - self.height) // 2, (w - self.width) // 2, self.height, self.width), (0, 0)
        return aspect_crop_box(h, w, self.height, self.width), (0, 0)


class RandomCrop(_SizedImageLayer):
    """In training, a random ``height`` x ``width`` window, one per batch (module docstring for smaller
    inputs); at inference the input unchanged, as Keras 3.15."""

    supports_jit = False        # as Keras's layer (Layer.supports_jit)

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(height, width, seed=seed, data_format=data_format, **kwargs)

    draws_per_call = 2

    def _plan(self, h, w):
        if h > self.height and w > self.width:
            # Keras's two draws: float32 uniforms below the number of places, truncated.
            top = int(self.host_rng().uniform(size=(), low=0, high=float(h - self.height + 1)).astype(numpy.float32))
            left = int(self.host_rng().uniform(size=(), low=0, high=float(w - self.width + 1)).astype(numpy.float32))
        else:
            top, left = aspect_crop_box(h, w, self.height, self.width)[:2]
        return clipped_box(h, w, top, left, self.height, self.width), (0, 0)

    def _augment(self, x):
        return self._transform(x)
