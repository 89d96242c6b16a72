"""Keras 3's RandomElasticTransform.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape, in
the layer's compute dtype (float32 by default), as Keras's. It acts only in
training (or when called directly without ``training``), draws its few
per-image numbers on the host from its own generator, its noise on the
images' device, and keeps the images there. With Keras
3.15's numbers, for one call on a batch of N images of H x W:

- the image is deformed with probability ``p ~ U(factor)`` (a number f means
  (0, f)): apply where ``U(0, 1) < p``, one draw each per image;
- one distortion factor for the batch, ``s ~ U(scale)`` (a number f means
  (0, f)), gives ``alpha = max(H, W) * 0.1 s`` and
  ``sigma = min(H, W) * 0.05 s`` (float32, Keras's rounding);
- the displacement fields: one (H, W) plane of noise per image and axis, (2N, H, W), the columns' then the
  rows', drawn from the fourth seed pair of the call (the pair Keras's layer gives its ``elastic_transform``)
  by ``ops.counter_noise.normal``: approximately standard normal values (sums of 12 uniform integers,
  centred and scaled) from a counter-based generator that NumPy and the GPU evaluate bit for bit alike, so
  the GPU draws them where they are used, with no host-to-device copy, and one seed gives one deformation on
  either device. They are not the values Keras draws (its NumPy backend takes NumPy's normal draws of that
  pair, its torch backend torch's global generator, whatever the seed); the generator moves by 4 seed pairs
  per call, as on Keras's NumPy backend (by 3 on its torch backend). Each plane is then
  times ``sigma``, blurred by Keras's Gaussian of ``sigma`` (size
  ``int(6 sigma) | 1``, zero padding) and times ``alpha``
  (``keras_ops.image_transforms.elastic_coordinates``, shared with
  ``ops.image.elastic_transform``);
- output pixel (x, y) reads the input at ``(x + dx, y + dy)`` through
  ``map_coordinates``'s sampling (``keras_ops.image_coordinates``: nearest or
  bilinear, fill modes ``reflect``, ``mirror``, ``wrap``, ``nearest`` and
  ``constant`` with ``fill_value``), array operations on NumPy and CuPy alike;
- the images (deformed or not) are clipped to ``value_range``.

With ``factor`` or ``scale`` whose upper end is 0, or at inference, the
layer draws nothing and returns its input (cast to the compute dtype), as
Keras's does.

The draws of one call are ``draw(n, h, w, xp)`` and their use ``deform(x, *drawn)``
(channels_last): Keras's ``get_random_transformation`` and
``transform_images`` with a given ``transformation``, the hook that lets a
test give both the same fields.

Backward: the sampling is linear in the images, so its adjoint scatters the
gradient back with the same weights; the clip passes it where its input lay
in ``value_range``.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import array_module
from ..ops import counter_noise
from .augment_common import ImageAugmentLayer, value_range_checked
from .color_augmentation import keras_factor
from .keras_ops.image_coordinates import sample_coordinates, sample_coordinates_backward
from .keras_ops.image_transforms import elastic_coordinates
from .preprocessing import _compute_dtype, _where

ELASTIC_FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
ELASTIC_INTERPOLATIONS = ("nearest", "bilinear")


def _one_of(layer, value, allowed, what):
    if value not in allowed:
        raise ValueError(f"{_where(layer)}: {what} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    return value


class RandomElasticTransform(ImageAugmentLayer):
    """Deforms each image by a random smooth displacement field with a random probability (module docstring)."""

    draws_per_call = 4      # Keras's probability, threshold and distortion draws, then the fields' seed
    dict_entries = "transformed"    # Keras's dict inputs: masks deformed with the images' fields
    takes_boxes = False             # Keras's layer has no transform of bounding boxes (NotImplementedError)

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        self.scale = keras_factor(self, scale, (0, 1), what="scale")
        self.interpolation = _one_of(self, interpolation, ELASTIC_INTERPOLATIONS, "interpolation")
        self.fill_mode = _one_of(self, fill_mode, ELASTIC_FILL_MODES, "fill_mode")
        if not isinstance(fill_value, numbers.Real) or isinstance(fill_value, bool):
            raise ValueError(f"{_where(self)}: fill_value must be a number, got {fill_value!r}.")
        self.fill_value = fill_value
        self.value_range = value_range_checked(self, value_range, sort=False)

    @property
    def moves(self):
        """Whether a training call deforms anything (Keras draws nothing when either upper end is 0)."""
        return self.scale[1] != 0 and self.factor[1] != 0

    def draw(self, n, h, w, xp=numpy):
        """The draws for n images of h x w: (apply (N,) booleans and the distortion factor, float32, drawn on the
        host as Keras's NumPy backend draws them; the noise (2N, H, W) of the column and then the row
        displacements, float32 on ``xp``'s device, the same values on either)."""
        f32 = numpy.float32
        probability = self.host_rng().uniform(self.factor[0], self.factor[1], size=n).astype(f32)
        apply = self.host_rng().uniform(0.0, 1.0, size=n).astype(f32) < probability
        distortion = f32(self.host_rng().uniform(self.scale[0], self.scale[1], size=()))
        noise = counter_noise.normal(xp, self.generator.next(), (2 * n, h, w), f32)
        return apply, distortion, noise

    def deform(self, x, apply, distortion, noise):
        """x channels_last (N, H, W, C): the images with ``apply`` deformed by the fields of ``distortion`` and
        ``noise`` (as ``draw`` gives them), all clipped to value_range; and what the backward needs."""
        xp = array_module(x)
        dtype = _compute_dtype(x.dtype)
        n, h, w, _ = x.shape
        f32 = numpy.float32
        distortion = f32(distortion)
        alpha = f32(max(h, w)) * (f32(0.1) * distortion)
        sigma = f32(min(h, w)) * (f32(0.05) * distortion)
        noise = xp.asarray(noise, dtype=dtype).reshape(2 * n, h, w, 1)
        coordinates = elastic_coordinates(noise, alpha, sigma, x.shape)
        order = ELASTIC_INTERPOLATIONS.index(self.interpolation)
        moved = sample_coordinates(x, coordinates, order, self.fill_mode, self.fill_value)
        mask = self.per_image(apply, x)
        z = xp.where(mask, moved, x)
        low, high = (float(v) for v in self.value_range)
        return xp.clip(z, low, high), (coordinates, mask, (z >= low) & (z <= high))

    def _augment(self, x):
        if not self.moves:
            return x, ()        # nothing drawn, nothing moved: the backward passes the gradient through
        n, h, w, _ = x.shape
        return self.deform(x, *self.draw(n, h, w, array_module(x)))

    def _input_gradient(self, dy):
        saved = self.saved()
        if not saved:
            return dy
        coordinates, mask, inside = saved
        g = dy * inside
        order = ELASTIC_INTERPOLATIONS.index(self.interpolation)
        back = sample_coordinates_backward(g, g.shape, coordinates, order, self.fill_mode)
        return array_module(dy).where(mask, back, g)

    def dict_masks(self, masks, saved):
        # Keras deforms the masks as the images, by the same fields with nearest interpolation, then clips them to
        # value_range and casts them to the compute dtype as it does the images.
        if not saved:
            return masks
        xp = array_module(masks)
        coordinates, mask, _ = saved
        masks = masks.astype(_compute_dtype(masks.dtype), copy=False)
        moved = sample_coordinates(masks, coordinates, 0, self.fill_mode, self.fill_value)
        low, high = (float(v) for v in self.value_range)
        return xp.clip(xp.where(mask, moved, masks), low, high)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "scale": self.scale,
                "interpolation": self.interpolation, "fill_mode": self.fill_mode, "fill_value": self.fill_value,
                "value_range": self.value_range}
