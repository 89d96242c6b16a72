"""Keras 3's RandomColorJitter: RandomBrightness, RandomContrast, RandomSaturation and RandomHue in that order
(Keras 3.15's), each present when its factor is given.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape. It
acts only in training. Its parts draw from the jitter's own generator, one
after the other, so one seed gives one sequence of augmentations on either
backend. Backward runs the parts' backwards in reverse; with a hue factor
the layer is input-side only (RandomHue has no backward) and its backward
raises.
"""
from __future__ import annotations

from .augment_common import ImageAugmentLayer
from .color_augmentation import RandomBrightness, RandomContrast
from .color_space import RandomHue, RandomSaturation

PARTS = (("brightness_factor", RandomBrightness), ("contrast_factor", RandomContrast),
         ("saturation_factor", RandomSaturation), ("hue_factor", RandomHue))


class RandomColorJitter(ImageAugmentLayer):
    """Random brightness, contrast, saturation and hue, in Keras's order (module docstring)."""

    def __init__(self, value_range=(0, 255), brightness_factor=None, contrast_factor=None, saturation_factor=None,
                 hue_factor=None, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range = value_range
        self.brightness_factor = brightness_factor
        self.contrast_factor = contrast_factor
        self.saturation_factor = saturation_factor
        self.hue_factor = hue_factor
        self.parts = []
        for what, cls in PARTS:
            factor = getattr(self, what)
            if factor is None:
                continue
            # The part's own checks, under the jitter's name; the part works on channels_last arrays.
            # Each part holds a SeedGenerator of the jitter's seed, as Keras's do; the jitter's own draws drive them.
            part = cls(factor, value_range=value_range, seed=seed, name=f"{self.name}_{cls.__name__}",
                       dtype=self.dtype)
            part.host_rng = self.host_rng
            self.parts.append(part)
        self.differentiable = not any(isinstance(p, RandomHue) for p in self.parts)
        self.why_not = "its RandomHue part has no gradient"

    def _augment(self, x):
        for part in self.parts:
            x, part._saved = part._augment(x)
        return x, (True,)

    def _input_gradient(self, dy):
        self.saved()
        for part in reversed(self.parts):
            dy = part._backward(dy)
        return dy

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "brightness_factor": self.brightness_factor,
                "contrast_factor": self.contrast_factor, "saturation_factor": self.saturation_factor,
                "hue_factor": self.hue_factor}
