"""Keras's ``keras.ops.image`` functions, offered as ``gpu_dl.ops.image`` (``from gpu_dl import ops``, then
``ops.image.resize(...)``).

Each takes Keras's arguments, with Keras's defaults. On arrays (NumPy or CuPy) it computes at once and returns an
array of the same module (Python numbers and lists go to the current device); on symbolic tensors it records the
operation (Keras's class, module and config), whose backward is exact in the images: the operations are on
``image_base.py`` (``image_colour.py``, ``image_resizing.py``, ``image_coordinates.py``, ``image_transforms.py``,
``image_patches.py``, ``image_filters.py``).

Offered: ``rgb_to_grayscale``, ``rgb_to_hsv``, ``hsv_to_rgb``, ``resize`` (bilinear and nearest, without
antialiasing), ``affine_transform``, ``perspective_transform``, ``map_coordinates``, ``crop_images``,
``pad_images``, ``extract_patches``, ``extract_patches_3d``, ``gaussian_blur``, ``sobel_edges``, ``ssim``,
``scale_and_translate`` and ``elastic_transform`` (whose random fields are gpu_dl's draws: Keras's torch backend
draws from torch's global generator, whatever the seed).
"""
from __future__ import annotations

import numpy

from ... import backprop as _backprop
from ..symbolic import is_symbolic
from . import _array, _symbolic, _taking_variables
from . import image_colour as _colour
from . import image_resizing as _resizing
from . import image_coordinates as _coordinates
from . import image_transforms as _transforms
from . import image_patches as _patches
from . import image_filters as _filters

__all__ = [
    "rgb_to_grayscale", "rgb_to_hsv", "hsv_to_rgb", "resize", "affine_transform", "perspective_transform",
    "map_coordinates", "crop_images", "pad_images", "extract_patches", "extract_patches_3d", "gaussian_blur",
    "sobel_edges", "ssim", "scale_and_translate", "elastic_transform",
]


def _constant(value):
    """A constant argument beside a symbolic tensor: arrays stay; numbers and lists become NumPy arrays (floats
    as float32)."""
    if is_symbolic(value) or (hasattr(value, "shape") and hasattr(value, "dtype")):
        return value
    array = numpy.asarray(value)
    return array.astype(numpy.float32) if array.dtype == numpy.float64 else array


def _run(cls, tensors, *args, **kwargs):
    """``cls(*args, **kwargs)`` on ``tensors``: recorded on symbolic tensors, computed at once on arrays."""
    if _symbolic(*tensors):
        if not is_symbolic(tensors[0]):
            raise TypeError(f"{cls.__name__}: the images must be a symbolic tensor where another argument is one, "
                            f"got {type(tensors[0]).__name__}.")
        return cls(*args, **kwargs).apply(*[_constant(t) for t in tensors])
    op = cls(*args, name=cls.__name__.lower(), **kwargs)
    return op.forward_array(*[_array(t) for t in tensors])


def rgb_to_grayscale(images, data_format=None):
    """(…, H, W, 3) RGB images as (…, H, W, 1) luminance ``0.2989 r + 0.587 g + 0.114 b``; one channel is kept."""
    return _run(_colour.RGBToGrayscale, [images], data_format)


def rgb_to_hsv(images, data_format=None):
    """Float RGB images as hue, saturation and value in [0, 1] (hue 0 is red, 1/3 green, 2/3 blue)."""
    return _run(_colour.RGBToHSV, [images], data_format)


def hsv_to_rgb(images, data_format=None):
    """Float HSV images as RGB."""
    return _run(_colour.HSVToRGB, [images], data_format)


def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """Images resized to ``size`` (height, width), as Keras's torch backend resizes them."""
    return _run(_resizing.Resize, [images], size, interpolation, antialias, crop_to_aspect_ratio, pad_to_aspect_ratio,
                fill_mode, fill_value, data_format)


def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant", fill_value=0,
                     data_format=None):
    """Images resampled through ``transform`` (8,) or (N, 8), ``[a0, a1, a2, b0, b1, b2, c0, c1]``: output pixel
    (x, y) reads the input at ``(a0 x + a1 y + a2, b0 x + b1 y + b2)`` (c0 and c1 taken as 0)."""
    return _run(_transforms.AffineTransform, [images, transform], interpolation, fill_mode, fill_value, data_format)


def perspective_transform(images, start_points, end_points, interpolation="bilinear", fill_value=0,
                          data_format=None):
    """Images warped so that ``start_points`` (4, 2) or (N, 4, 2), (x, y) corners, move to ``end_points``."""
    return _run(_transforms.PerspectiveTransform, [images, start_points, end_points], interpolation, fill_value,
                data_format)


def map_coordinates(inputs, coordinates, order, fill_mode="constant", fill_value=0):
    """``inputs`` read at ``coordinates`` (one array per axis of ``inputs``), order 0 (nearest) or 1 (linear)."""
    return _run(_coordinates.MapCoordinates, [inputs, coordinates], order, fill_mode, fill_value)


def crop_images(images, top_cropping=None, left_cropping=None, bottom_cropping=None, right_cropping=None,
                target_height=None, target_width=None, data_format=None):
    """Images cropped: two of (top, bottom, target_height) and two of (left, right, target_width) given."""
    return _run(_resizing.CropImages, [images], top_cropping, left_cropping, bottom_cropping, right_cropping,
                target_height, target_width, data_format)


def pad_images(images, top_padding=None, left_padding=None, bottom_padding=None, right_padding=None,
               target_height=None, target_width=None, data_format=None):
    """Images padded with zeros: two of (top, bottom, target_height) and two of (left, right, target_width)."""
    return _run(_resizing.PadImages, [images], top_padding, left_padding, bottom_padding, right_padding, target_height,
                target_width, data_format)


def extract_patches(images, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """The patches of ``size`` (two sizes: of images; three: of volumes), each flattened along the channels."""
    if not isinstance(size, int) and not isinstance(size, (tuple, list)):
        raise TypeError(f"extract_patches: `size` must be an int or a tuple, got {size!r} of type "
                        f"{type(size).__name__}.")
    return _run(_patches.ExtractPatches, [images], size, strides, dilation_rate, padding, data_format)


def extract_patches_3d(volumes, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """The (depth, height, width) patches of volumes (rank 4 or 5), each flattened along the channels."""
    size = (size, size, size) if isinstance(size, int) else size
    if not isinstance(size, (tuple, list)) or len(size) != 3:
        raise ValueError(f"extract_patches_3d: `size` must be an int or 3 ints, got {size!r}.")
    return _run(_patches.ExtractPatches, [volumes], size, strides, dilation_rate, padding, data_format)


def gaussian_blur(images, kernel_size=(3, 3), sigma=(1.0, 1.0), data_format=None):
    """Images blurred by a Gaussian of ``kernel_size`` (two equal odd sizes) and ``sigma``, zero-padded."""
    return _run(_filters.GaussianBlur, [images], kernel_size, sigma, data_format)


def sobel_edges(images, data_format=None):
    """The Sobel responses of a batch of images: (N, H, W, C, 2), vertical then horizontal."""
    return _run(_filters.SobelEdges, [images], data_format)


def ssim(image1, image2, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03, data_format=None):
    """The structural similarity of two images or batches: one value per image (a scalar for single images)."""
    return _run(_filters.SSIM, [image1, image2], max_val, filter_size, filter_sigma, k1, k2, data_format)


def elastic_transform(images, alpha=20.0, sigma=5.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                      seed=None, data_format=None):
    """Images read at positions moved by random smooth displacement fields (``alpha`` times a normal draw times
    ``sigma``, blurred by a Gaussian of ``sigma``)."""
    return _run(_transforms.ElasticTransform, [images], alpha, sigma, interpolation, fill_mode, fill_value, seed,
                data_format)


def scale_and_translate(images, output_shape, scale, translation, spatial_dims, method, antialias=True):
    """``images`` resampled to ``output_shape``: along each axis of ``spatial_dims`` the input at ``x`` lands at
    ``x * scale[i] + translation[i]`` (half-pixel centres), by ``method`` ("linear", "cubic", "lanczos3",
    "lanczos5" and their aliases); ``antialias`` widens the kernel when downsampling."""
    if _symbolic(images, scale, translation):
        if not is_symbolic(images):
            raise TypeError("ScaleAndTranslate: the images must be a symbolic tensor where another argument is one.")
        op = _transforms.ScaleAndTranslate(spatial_dims, method, antialias)
        return op.apply(images, output_shape, _constant(scale), _constant(translation))
    op = _transforms.ScaleAndTranslate(spatial_dims, method, antialias, name="scaleandtranslate")
    return op.forward_array(_array(images), output_shape, _array(scale), _array(translation))


# As the other ops: variables are their tensors in a traced call, and loss.backward() refuses their outputs.
for _name in __all__:
    globals()[_name] = _backprop.followed(_taking_variables(globals()[_name]), f"image.{_name}")
del _name
