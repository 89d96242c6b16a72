"""Keras 3's RandomShear and RandomPerspective.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape and
dtype. Both act only in training (or when called directly without
``training``), draw on the host from their own generator and keep the images
on their device. With Keras 3.15's numbers, per image n (x: column, y: row,
pixel centres at integers):

- ``RandomShear(x_factor, y_factor)``: ``s = ±1`` (-1 where U(0, 1) > 0.5),
  ``sy ~ U(y_factor)``, ``sx ~ U(x_factor)``, Keras's three draws in that
  order (a number f means (-f, f), a pair of numbers in [0, 1] is sorted);
  output pixel (x, y) reads the input at
  ``(x + s sx y, s sy x + y)`` — Keras's transform ``[1, s sx, 0, s sy, 1, 0,
  0, 0]``, a shear about the top-left corner. It is an affine map, so it runs
  through ``affine_resample`` (on the GPU: the kernel of kernels/augment.cu)
  with the fill modes of RandomRotation, and its backward is the affine
  layers' (``affine_resample_backward``).
- ``RandomPerspective(factor, scale)``: the image is warped with probability
  ``p ~ U(factor)`` (a number f means (0, f)); the corners
  ``(0, 0), (W-1, 0), (0, H-1), (W-1, H-1)`` move to ``c + c * d`` with
  ``d ~ U(-scale/2, scale/2)`` per coordinate (the corner (0, 0) stays), and
  output pixel (x, y) reads the input at the homography of the moved corners
  onto the corners, ``((a0 x + a1 y + a2) / k, (a3 x + a4 y + a5) / k)`` with
  ``k = a6 x + a7 y + 1``; neighbours outside the image read ``fill_value``
  (Keras's only fill mode here). The 8 coefficients are solved on the host in
  float64 (Keras solves in float32); the resampling is array operations (a
  gather of the four neighbours with bilinear weights) on NumPy and CuPy
  alike: no kernel. Backward scatters the gradient back with the same
  weights.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import array_module
from ..ops.scattering import scatter_pixel_taps
from .augment_common import ImageAugmentLayer
from .color_augmentation import keras_factor
from .image_dicts import clip_boxes, convert
from .preprocessing import INTERPOLATIONS, _AffineLayer, _axis_taps, _compute_dtype, _is_number, _where


def _shear_factor(layer, factor, what):
    """Keras's RandomShear reading: every given number in [0, 1]; a number f means (-f, f), a pair is sorted.

    Keras 3.15 writes the number f to its config as the pair (-f, f), which its own check then refuses (its
    files with such a layer do not load back); this layer also takes that pair, so those files load here."""
    message = f"{_where(layer)}: {what} must be a number in [0, 1] or a pair of numbers in [0, 1], got {factor!r}."
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(v) for v in factor):
            raise ValueError(message)
        low, high = (float(v) for v in factor)
        if low == -high and 0 <= abs(high) <= 1:
            return -abs(high), abs(high)        # Keras's config form of the number |high|
        if not (0 <= low <= 1 and 0 <= high <= 1):
            raise ValueError(message)
        return tuple(sorted((low, high)))
    if not _is_number(factor) or not 0 <= factor <= 1:
        raise ValueError(message)
    return -float(factor), float(factor)


class RandomShear(_AffineLayer):
    """Shears each image along x and y by random amounts (module docstring)."""

    def __init__(self, x_factor=0.0, y_factor=0.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 data_format=None, seed=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.x_factor = _shear_factor(self, x_factor, "x_factor")
        self.y_factor = _shear_factor(self, y_factor, "y_factor")

    draws_per_call = 3

    def _matrices(self, n, h, w):
        # Keras's three draws, in its compute dtype: the sign, then the y and x factors.
        dtype = _compute_dtype(self.dtype)
        sign = numpy.where(self.host_rng().uniform(size=(n, 1), low=0, high=1).astype(dtype)[:, 0] > 0.5, -1.0, 1.0)
        shear_y = self.host_rng().uniform(size=(n, 1), low=self.y_factor[0], high=self.y_factor[1]).astype(dtype)
        shear_x = self.host_rng().uniform(size=(n, 1), low=self.x_factor[0], high=self.x_factor[1]).astype(dtype)
        return shear_matrices(sign * shear_x[:, 0], sign * shear_y[:, 0])

    def dict_boxes(self, boxes, labels, height, width, saved):
        # Keras's steps, in relative coordinates (so the boxes follow the sheared images exactly where the images
        # are square): the x-shear moves each x edge by its worse corner, then the y-shear each y edge by the new
        # x edges; clipped to [0, 1] (labels -1 for boxes left empty), back to the layer's format.
        xp = array_module(boxes)
        m = saved[0]
        sx = xp.asarray(numpy.asarray(m[:, 0, 1], dtype=numpy.float32)).reshape(-1, 1)
        sy = xp.asarray(numpy.asarray(m[:, 1, 0], dtype=numpy.float32)).reshape(-1, 1)
        b = convert(boxes, self.bounding_box_format, "rel_xyxy", height, width)
        x1, y1, x2, y2 = (b[..., i] for i in range(4))
        x1, x2 = xp.where(sx < 0, x1 - sx * y1, x1 - sx * y2), xp.where(sx < 0, x2 - sx * y2, x2 - sx * y1)
        y1, y2 = xp.where(sy > 0, y1 - sy * x2, y1 - sy * x1), xp.where(sy > 0, y2 - sy * x1, y2 - sy * x2)
        b, labels = clip_boxes(xp.stack([x1, y1, x2, y2], axis=-1), labels, None, None, "rel_xyxy")
        return convert(b, "rel_xyxy", self.bounding_box_format, height, width), labels

    def get_config(self):
        return {**super().get_config(), "x_factor": self.x_factor, "y_factor": self.y_factor}


def shear_matrices(shear_x, shear_y):
    """(N, 2, 3) inverse maps of Keras's shear: input (x + sx y, sy x + y) for output (x, y)."""
    n = len(shear_x)
    m = numpy.zeros((n, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = 1.0
    m[:, 0, 1] = shear_x
    m[:, 1, 0] = shear_y
    return m


# ---------------------------------------------------------------- perspective
def homographies(start_points, end_points):
    """(N, 8) coefficients a0..a7 mapping each end point onto its start point (Keras's
    ``compute_homography_matrix``): start_points, end_points (N, 4, 2) of (x, y), on the host, float64."""
    start = numpy.asarray(start_points, dtype=numpy.float64)
    end = numpy.asarray(end_points, dtype=numpy.float64)
    n = start.shape[0]
    a = numpy.zeros((n, 8, 8))
    b = numpy.zeros((n, 8))
    for i in range(4):
        ex, ey = end[:, i, 0], end[:, i, 1]
        sx, sy = start[:, i, 0], start[:, i, 1]
        a[:, 2 * i, 0], a[:, 2 * i, 1], a[:, 2 * i, 2] = ex, ey, 1.0
        a[:, 2 * i, 6], a[:, 2 * i, 7] = -sx * ex, -sx * ey
        a[:, 2 * i + 1, 3], a[:, 2 * i + 1, 4], a[:, 2 * i + 1, 5] = ex, ey, 1.0
        a[:, 2 * i + 1, 6], a[:, 2 * i + 1, 7] = -sy * ex, -sy * ey
        b[:, 2 * i], b[:, 2 * i + 1] = sx, sy
    return numpy.linalg.solve(a, b[..., None])[..., 0]


def _perspective_taps(shape, transforms, interpolation, xp, dtype):
    """[(flat pixel index (N, H, W), valid mask, weight or None)] of the perspective sampling (constant fill)."""
    n, h, w = shape[:3]
    t = xp.asarray(transforms, dtype=dtype).reshape(n, 8, 1, 1)
    xs = xp.arange(w, dtype=dtype).reshape(1, 1, w)
    ys = xp.arange(h, dtype=dtype).reshape(1, h, 1)
    k = t[:, 6] * xs + t[:, 7] * ys + 1.0
    x_in = (t[:, 0] * xs + t[:, 1] * ys + t[:, 2]) / k
    y_in = (t[:, 3] * xs + t[:, 4] * ys + t[:, 5]) / k
    image_start = (xp.arange(n, dtype=xp.int64) * h).reshape(n, 1, 1)
    taps = []
    for iy, vy, wy in _axis_taps(y_in, h, "constant", interpolation, xp):
        for ix, vx, wx in _axis_taps(x_in, w, "constant", interpolation, xp):
            weight = None if wy is None else wy * wx
            taps.append(((image_start + iy) * w + ix, vy & vx, weight))
    return taps


def perspective_resample(images, transforms, interpolation="bilinear", fill_value=0.0):
    """Warp channels_last images (N, H, W, C) by one homography per image, ``transforms`` (N, 8) as
    ``homographies`` gives them; neighbours outside the image read ``fill_value``. Returns the input's
    module and dtype (integer images are rounded)."""
    xp = array_module(images)
    n, h, w, c = images.shape
    dtype = _compute_dtype(images.dtype)
    source = images.astype(dtype, copy=False).reshape(n * h * w, c)
    fill = xp.asarray(fill_value, dtype=dtype)
    out = None
    for flat, valid, weight in _perspective_taps(images.shape, transforms, interpolation, xp, dtype):
        value = xp.where(valid[..., None], xp.take(source, flat, axis=0), fill)
        if weight is not None:
            value = value * weight[..., None]
        out = value if out is None else out + value
    if numpy.dtype(images.dtype).kind != "f":
        out = xp.round(out)
    return out.astype(images.dtype, copy=False)


def perspective_resample_backward(dy, transforms, interpolation="bilinear"):
    """The adjoint of ``perspective_resample`` in its images: (N, H, W, C) -> (N, H, W, C)."""
    return scatter_pixel_taps(dy, _perspective_taps(dy.shape, transforms, interpolation, array_module(dy), dy.dtype))


class RandomPerspective(ImageAugmentLayer):
    """Warps each image by a random perspective with a random probability (module docstring)."""

    supports_jit = False        # as Keras's layer (Layer.supports_jit)

    dict_entries = "transformed"

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_value=0.0, seed=None, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        if not _is_number(scale) or not 0 <= scale <= 1:
            raise ValueError(f"{_where(self)}: scale must be a number in [0, 1], got {scale!r}.")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"{_where(self)}: interpolation must be one of {', '.join(map(repr, INTERPOLATIONS))}, "
                             f"got {interpolation!r}.")
        if not isinstance(fill_value, numbers.Real) or isinstance(fill_value, bool):
            raise ValueError(f"{_where(self)}: fill_value must be a number, got {fill_value!r}.")
        self.scale = scale
        self.interpolation = interpolation
        self.fill_value = fill_value

    def draw(self, n, h, w):
        """Keras's draws for n images: (apply (N,) booleans, start points (N, 4, 2), end points (N, 4, 2))."""
        probability = self.uniform(n, *self.factor)
        apply = self.host_rng().random(n) < probability
        offsets = self.uniform(n * 8, -0.5 * self.scale, 0.5 * self.scale).reshape(n, 4, 2)
        start = numpy.broadcast_to(numpy.array([[0.0, 0.0], [w - 1, 0.0], [0.0, h - 1], [w - 1, h - 1]]), (n, 4, 2))
        return apply, start, start + start * offsets

    def warp(self, x, apply, start, end):
        """x channels_last (N, H, W, C): the images with ``apply`` warped from ``start`` to ``end`` points."""
        transforms = homographies(start, end)
        y = perspective_resample(x, transforms, self.interpolation, self.fill_value)
        mask = self.per_image(apply, x)
        return array_module(x).where(mask, y, x), (transforms, mask)

    def _augment(self, x):
        n, h, w, _ = x.shape
        return self.warp(x, *self.draw(n, h, w))

    def _input_gradient(self, dy):
        transforms, mask = self.saved()
        back = perspective_resample_backward(dy, transforms, self.interpolation)
        return array_module(dy).where(mask, back, dy)

    def dict_masks(self, masks, saved):
        # Keras warps the masks as the images, with nearest interpolation.
        transforms, mask = saved
        warped = perspective_resample(masks, transforms, "nearest", self.fill_value)
        return array_module(masks).where(array_module(masks).asarray(mask), warped, masks)

    def dict_boxes(self, boxes, labels, height, width, saved):
        # Keras's steps: the 4 corners of each warped image's boxes mapped by the inverse of the homography (the
        # images' forward map), their hull, clipped to the image. Keras 3.15 returns them as xyxy whatever its
        # bounding_box_format; here they go back to that format, the same for "xyxy".
        transforms, mask = saved
        xp = array_module(boxes)
        matrices = numpy.concatenate([transforms, numpy.ones((len(transforms), 1))], axis=1).reshape(-1, 3, 3)
        forward = xp.asarray(numpy.linalg.inv(matrices).astype(numpy.float32))[:, None, None]   # (B, 1, 1, 3, 3)
        b = convert(boxes, self.bounding_box_format, "xyxy", height, width)
        x1, y1, x2, y2 = (b[..., i] for i in range(4))
        xs = xp.stack([x1, x2, x1, x2], axis=-1)
        ys = xp.stack([y1, y2, y2, y1], axis=-1)
        k = forward[..., 2, 0] * xs + forward[..., 2, 1] * ys + forward[..., 2, 2]
        new_x = (forward[..., 0, 0] * xs + forward[..., 0, 1] * ys + forward[..., 0, 2]) / k
        new_y = (forward[..., 1, 0] * xs + forward[..., 1, 1] * ys + forward[..., 1, 2]) / k
        hull = xp.stack([new_x.min(axis=-1), new_y.min(axis=-1), new_x.max(axis=-1), new_y.max(axis=-1)], axis=-1)
        b = xp.where(xp.asarray(mask).reshape(-1, 1, 1), hull, b)
        b, labels = clip_boxes(b, labels, height, width)
        return convert(b, "xyxy", self.bounding_box_format, height, width), labels

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "scale": self.scale,
                "interpolation": self.interpolation, "fill_value": self.fill_value}
