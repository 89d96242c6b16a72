"""``keras.preprocessing.image``: ``load_img``, ``img_to_array``, ``array_to_img``, ``save_img`` and
``smart_resize``."""
from __future__ import annotations

import numpy

from ..backend import to_numpy
from ..data.image_files import array_to_img, img_to_array, load_img, save_img

__all__ = ["array_to_img", "img_to_array", "load_img", "save_img", "smart_resize"]


def smart_resize(x, size, interpolation="bilinear", data_format="channels_last", **kwargs):
    """Keras's ``smart_resize``: the image (height, width, channels) or batch of them, cropped to the centred
    window of the target's aspect ratio and resized to ``size`` = (height, width) without distortion ("bilinear"
    or "nearest"). A NumPy input gives a NumPy array; a device array, one on the device."""
    kwargs.pop("backend_module", None)
    if kwargs:
        raise TypeError(f"smart_resize() got unexpected keyword arguments: {list(kwargs.keys())}")
    if not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"Expected `size` to be a tuple of 2 integers, but got: {size}.")
    rank = numpy.ndim(x) if not hasattr(x, "ndim") else x.ndim
    if rank < 3 or rank > 4:
        raise ValueError("Expected an image array with shape `(height, width, channels)`, or `(batch_size, height, "
                         f"width, channels)`, but got input with incorrect rank, of shape {numpy.shape(x)}.")
    from ..layers import Resizing
    on_host = not hasattr(x, "shape") or isinstance(x, numpy.ndarray)
    array = numpy.asarray(x, dtype=numpy.float32) if on_host else x
    resized = Resizing(int(size[0]), int(size[1]), interpolation=interpolation, crop_to_aspect_ratio=True,
                       data_format=data_format)(array)
    return numpy.asarray(to_numpy(resized)) if on_host else resized
