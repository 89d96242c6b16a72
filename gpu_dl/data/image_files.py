"""Single image files: Keras 3's ``load_img``, ``img_to_array``, ``array_to_img`` and ``save_img``, and the
decode-and-resize step of ``image_dataset_from_directory``.

Images are PIL images (Pillow) on the file side and NumPy arrays on the array side, channels_last
``(height, width, channels)`` unless ``data_format="channels_first"`` asks for ``(channels, height, width)``.

``decode_image`` and ``resize_image`` are what ``image_dataset_from_directory`` does to each file, as
Keras 3.15's Pillow-based loader (its ``format="grain"`` path) does it: Pillow decodes, converts to the
colour mode (``convert("L")``, ``"RGB"`` or ``"RGBA"``; 8-, 16- and 32-bit grayscale are kept as they
are), the pixels become float32 in their file's range ([0, 255] for 8-bit images), and
``gpu_dl.ops.resize`` resizes them as Keras's torch backend does (bilinear or nearest, no antialiasing),
after the same centre crop (``crop_to_aspect_ratio``) or zero padding (``pad_to_aspect_ratio``).
"""
from __future__ import annotations

import io
import os
import pathlib

import numpy

from .. import backend
from ..backend.config import floatx
from ..backend.user_warnings import warn
from ..ops import resize as resize_op

__all__ = ["array_to_img", "decode_image", "img_to_array", "load_img", "resize_image", "save_img"]

COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
# Pillow modes that are already grayscale: Keras keeps their 16/32-bit values rather than squeeze them into "L".
_GRAY_MODES = ("L", "I;16", "I")


def _pil_image():
    # Imported on use: `import gpu_dl` should not pay for Pillow when no image file is read.
    try:
        from PIL import Image
    except ImportError as exc:   # pragma: no cover - Pillow is a dependency
        raise ImportError("Reading and writing image files needs Pillow: pip install pillow") from exc
    return Image


def _resampling():
    image = _pil_image()
    methods = getattr(image, "Resampling", image)
    return {"nearest": methods.NEAREST, "bilinear": methods.BILINEAR, "bicubic": methods.BICUBIC,
            "hamming": methods.HAMMING, "box": methods.BOX, "lanczos": methods.LANCZOS}


def _data_format(data_format):
    return backend.standardize_data_format(data_format, "`data_format`")


def _convert(img, color_mode, where="color_mode"):
    if color_mode not in COLOR_MODES:
        raise ValueError(f"`{where}` must be one of 'grayscale', 'rgb', 'rgba', got {color_mode!r}.")
    if color_mode == "grayscale":
        return img if img.mode in _GRAY_MODES else img.convert("L")
    wanted = _PIL_MODES[COLOR_MODES[color_mode]]
    return img if img.mode == wanted else img.convert(wanted)


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """An image file (a path or an ``io.BytesIO``) as a PIL image in ``color_mode``, resized by Pillow to
    ``target_size=(height, width)`` when given (``keep_aspect_ratio``: from the largest centred box of the
    target's aspect ratio). ``interpolation``: Pillow's nearest, bilinear, bicubic, hamming, box, lanczos."""
    image = _pil_image()
    if isinstance(path, io.BytesIO):
        img = image.open(path)
    elif isinstance(path, (pathlib.Path, bytes, str)):
        if isinstance(path, pathlib.Path):
            path = str(path.resolve())
        with open(path, "rb") as f:        # read whole, so no file handle stays open behind the image
            img = image.open(io.BytesIO(f.read()))
    else:
        raise TypeError(f"load_img: `path` should be path-like or io.BytesIO, not {type(path).__name__}.")
    img = _convert(img, color_mode)
    if target_size is None:
        return img
    if len(target_size) != 2:
        raise ValueError(f"load_img: `target_size` must be (height, width), got {target_size!r}.")
    width_height = (int(target_size[1]), int(target_size[0]))
    if img.size == width_height:
        return img
    methods = _resampling()
    if interpolation not in methods:
        raise ValueError(f"load_img: `interpolation` must be one of {', '.join(map(repr, methods))}, "
                         f"got {interpolation!r}.")
    if not keep_aspect_ratio:
        return img.resize(width_height, methods[interpolation])
    # Keras's box: the largest centred crop of the target's aspect ratio, in integer arithmetic.
    width, height = img.size
    target_width, target_height = width_height
    crop_height = min(height, (width * target_height) // target_width)
    crop_width = min(width, (height * target_width) // target_height)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return img.resize(width_height, methods[interpolation], box=[left, top, left + crop_width, top + crop_height])


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image as an array (height, width, channels) (channels_first: (channels, height, width)) of
    ``dtype`` (default: ``floatx()``); grayscale images get a channel axis of 1."""
    data_format = _data_format(data_format)
    x = numpy.asarray(img, dtype=dtype or floatx())
    if x.ndim == 2:
        x = x[None] if data_format == "channels_first" else x[:, :, None]
    elif x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    else:
        raise ValueError(f"img_to_array: unsupported image shape {x.shape}.")
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """An array (height, width, channels) with 1, 3 or 4 channels (channels_first: (channels, height, width))
    as a PIL image ("L", "RGB" or "RGBA"; "I" for grayscale above 255). ``scale``: values are first
    stretched to [0, 255] (minimum to 0, maximum to 255); without it they are cast to uint8 as they are."""
    data_format = _data_format(data_format)
    image = _pil_image()
    x = numpy.array(x, dtype=dtype or floatx())    # a copy: the scaling below works in place
    if x.ndim != 3:
        raise ValueError(f"array_to_img: expected a single image of rank 3, got an array of shape {x.shape}.")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - numpy.min(x)
        top = numpy.max(x)
        if top != 0:
            x /= top
        x *= 255
    channels = x.shape[2]
    if channels in (3, 4):
        return image.fromarray(x.astype("uint8"), _PIL_MODES[channels])
    if channels == 1:
        if numpy.max(x) > 255:       # Keras: a 32-bit integer grayscale image, Pillow's mode "I"
            return image.fromarray(x[:, :, 0].astype("int32"), "I")
        return image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"array_to_img: images have 1, 3 or 4 channels, got {channels} (shape {x.shape}).")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Write the image array ``x`` (see ``array_to_img``) to ``path`` (a path or a file object), in
    ``file_format`` or the format of the path's extension; ``kwargs`` go to ``PIL.Image.save``. An RGBA
    image saved as JPEG loses its alpha channel, with a warning."""
    if file_format is None and isinstance(path, (str, pathlib.Path)):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"     # Pillow's name for it
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warn("The JPEG format does not support RGBA images, converting to RGB.")
        img = img.convert("RGB")
    img.save(path, format=file_format or None, **kwargs)


# ------------------------------------------------------------------ image_dataset_from_directory's steps
def decode_image(path, num_channels):
    """The image file at ``path`` as float32 pixels (height, width, num_channels), ``num_channels`` 1, 3 or 4;
    an animated image gives its first frame. Errors name the file."""
    image = _pil_image()
    try:
        with image.open(os.fspath(path)) as img:
            img = _convert(img, {1: "grayscale", 3: "rgb", 4: "rgba"}[num_channels])
            x = numpy.asarray(img, dtype=numpy.float32)
    except (OSError, SyntaxError, ValueError) as exc:   # Pillow's UnidentifiedImageError is an OSError
        raise ValueError(f"Cannot read the image file {os.fspath(path)!r}: {exc}") from exc
    return x[:, :, None] if x.ndim == 2 else x


def _aspect_box(height, width, target_height, target_width, larger):
    """Keras's box of the target's aspect ratio: the largest inside the image (crop) or the smallest around
    it (pad): (box height, box width, top offset, left offset), the offsets of the smaller in the larger."""
    box_height = int(float(width * target_height) / target_width)
    box_width = int(float(height * target_width) / target_height)
    if larger:
        box_height, box_width = max(height, box_height), max(width, box_width)
        return box_height, box_width, int(float(box_height - height) / 2), int(float(box_width - width) / 2)
    box_height, box_width = max(min(height, box_height), 1), max(min(width, box_width), 1)
    return box_height, box_width, int(float(height - box_height) / 2), int(float(width - box_width) / 2)


def resize_image(x, size, interpolation="bilinear", crop_to_aspect_ratio=False, pad_to_aspect_ratio=False):
    """A float image (height, width, channels) resized to ``size=(h, w)``: (h, w, channels), as Keras 3.15's
    ``ops.image.resize`` on its torch backend computes it (``gpu_dl.ops.resize``).

    ``crop_to_aspect_ratio`` first takes the largest centred crop of the target's aspect ratio (Keras's
    ``smart_resize``); ``pad_to_aspect_ratio`` first pads with zeros to the smallest box of that ratio
    around the image, the same number of rows (or columns) on both sides, as Keras's torch backend pads."""
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to `True`.")
    height, width = x.shape[0], x.shape[1]
    target_height, target_width = size
    if crop_to_aspect_ratio:
        box_height, box_width, top, left = _aspect_box(height, width, target_height, target_width, larger=False)
        x = x[top:top + box_height, left:left + box_width]
    elif pad_to_aspect_ratio:
        _, _, top, left = _aspect_box(height, width, target_height, target_width, larger=True)
        x = numpy.pad(x, ((top, top), (left, left), (0, 0)))
    return resize_op.resize(x[None], int(target_height), int(target_width), interpolation)[0]
