"""Keras 3's augmentation policies RandAugment and AugMix, composed of gpu_dl's augmentation layers.

Shapes: (N, H, W, C) — (N, C, H, W) with ``data_format="channels_first"`` —
or one image without the batch axis; the output has the input's shape. Both
act only in training and draw on the host from their own generator (one
seed, one sequence on either backend); every op is the gpu_dl layer of the
same name, built with the arguments Keras 3.15 builds it with (f the upper
end of ``factor``, a number f meaning (0, f)):

RandomShear(factor, factor), RandomTranslation(factor, factor),
RandomRotation(factor) (all with ``interpolation``), RandomBrightness,
RandomColorDegeneration, RandomContrast, RandomSharpness (factor,
value_range), Solarization(factor, factor), RandomPosterization(max(1,
int(8 f))), AutoContrast and Equalization (value_range).

- ``RandAugment(num_ops=2)``: ``num_ops`` times, one op drawn uniformly from
  Keras's list of the 11 is applied to the whole batch. Keras draws each op's
  parameters once per call, so an op drawn twice repeats them; here each
  application draws anew.
- ``AugMix(num_chains=3, chain_depth=3, alpha=1.0, all_ops=True)``: chain
  weights ``w ~ Dirichlet(alpha)`` and ``m ~ Beta(alpha, alpha)`` for the
  batch; each chain applies ``chain_depth`` picks from the op list (the 11,
  or with ``all_ops=False`` Keras's 7 without the colour ops) and "none";
  ``y = clip(m x + (1 - m) sum_c w_c chain_c(x), *value_range)``. Keras
  picks the ops with Python's unseeded ``random``; here they come from the
  layer's generator, so a seed fixes them too.

Both are input-side layers: several of their ops have no gradient, so their
backward raises.
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from .augment_common import ImageAugmentLayer
from .color_augmentation import RandomBrightness, RandomContrast, keras_factor
from .color_space import RandomColorDegeneration
from .filter_augmentation import RandomSharpness
from .geometric_augmentation import RandomShear
from .preprocessing import INTERPOLATIONS, RandomRotation, RandomTranslation, _where
from .tone_augmentation import AutoContrast, Equalization, RandomPosterization, Solarization

RAND_AUGMENT_OPS = ("random_shear", "random_translation", "random_rotation", "random_brightness",
                    "random_color_degeneration", "random_contrast", "random_sharpness", "random_posterization",
                    "solarization", "auto_contrast", "equalization")
AUGMIX_OPS_ALL = ("random_shear", "random_translation", "random_rotation", "random_posterization", "solarization",
                  "auto_contrast", "equalization", "random_brightness", "random_color_degeneration",
                  "random_contrast", "random_sharpness")
AUGMIX_OPS = AUGMIX_OPS_ALL[:7]


def _positive_int(layer, value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{_where(layer)}: {what} must be a positive integer, got {value!r}.")
    return int(value)


class _Policy(ImageAugmentLayer):
    """The ops both policies draw from, built as Keras builds them, drawing from this layer's generator."""

    differentiable = False
    why_not = "several of its ops are piecewise constant"

    def __init__(self, value_range, factor, interpolation, seed, data_format, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = keras_factor(self, factor, (0, 1))
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"{_where(self)}: interpolation must be one of {', '.join(map(repr, INTERPOLATIONS))}, "
                             f"got {interpolation!r}.")
        self.value_range = value_range
        self.interpolation = interpolation
        # Each op holds a SeedGenerator of the policy's seed, as Keras's do; the policy's own draws drive them.
        f, common = self.factor, dict(dtype=self.dtype, seed=seed)
        ranged = dict(value_range=value_range, **common)
        made = {
            "random_shear": RandomShear(f, f, interpolation=interpolation, **common),
            "random_translation": RandomTranslation(f, f, interpolation=interpolation, **common),
            "random_rotation": RandomRotation(f, interpolation=interpolation, **common),
            "random_brightness": RandomBrightness(f, **ranged),
            "random_color_degeneration": RandomColorDegeneration(f, **ranged),
            "random_contrast": RandomContrast(f, **ranged),
            "random_sharpness": RandomSharpness(f, **ranged),
            "random_posterization": RandomPosterization(max(1, int(8 * f[1])), **ranged),
            "solarization": Solarization(f, f, **ranged),
            "auto_contrast": AutoContrast(value_range=value_range, dtype=self.dtype),
            "equalization": Equalization(value_range=value_range, dtype=self.dtype),
        }
        for op in made.values():
            op.host_rng = self.host_rng       # one seed, one sequence for the whole policy
        self.ops = made

    def apply(self, name, x):
        """One op on channels_last images x."""
        return self.ops[name]._augment(x)[0]

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "factor": self.factor,
                "interpolation": self.interpolation}


class RandAugment(_Policy):
    """``num_ops`` ops drawn from Keras's 11, applied in turn (module docstring); input-side only."""

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear", seed=None,
                 data_format=None, **kwargs):
        super().__init__(value_range, factor, interpolation, seed, data_format, **kwargs)
        self.num_ops = _positive_int(self, num_ops, "num_ops")

    def _augment(self, x):
        for index in self.host_rng().integers(0, len(RAND_AUGMENT_OPS), size=self.num_ops):
            x = self.apply(RAND_AUGMENT_OPS[index], x)
        return x, None

    def get_config(self):
        return {**super().get_config(), "num_ops": self.num_ops}


class AugMix(_Policy):
    """A mix of the image and ``num_chains`` chains of random ops (module docstring); input-side only."""

    def __init__(self, value_range=(0, 255), num_chains=3, chain_depth=3, factor=0.3, alpha=1.0, all_ops=True,
                 interpolation="bilinear", seed=None, data_format=None, **kwargs):
        super().__init__(value_range, factor, interpolation, seed, data_format, **kwargs)
        self.num_chains = _positive_int(self, num_chains, "num_chains")
        self.chain_depth = _positive_int(self, chain_depth, "chain_depth")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
            raise ValueError(f"{_where(self)}: alpha must be a positive number, got {alpha!r}.")
        self.alpha = alpha
        self.all_ops = bool(all_ops)

    def _augment(self, x):
        rng = self.host_rng()
        names = AUGMIX_OPS_ALL if self.all_ops else AUGMIX_OPS
        chain_weights = rng.dirichlet([self.alpha] * self.num_chains)
        mix = float(rng.beta(self.alpha, self.alpha))
        mixed = None
        for weight in chain_weights:
            chain = x
            for pick in rng.integers(0, len(names) + 1, size=self.chain_depth):
                if pick < len(names):          # the last pick is Keras's None: no op
                    chain = self.apply(names[pick], chain)
            part = chain * x.dtype.type(weight)
            mixed = part if mixed is None else mixed + part
        y = x.dtype.type(mix) * x + x.dtype.type(1 - mix) * mixed
        low, high = (float(v) for v in self.value_range)
        return array_module(x).clip(y, low, high).astype(x.dtype, copy=False), None

    def get_config(self):
        return {**super().get_config(), "num_chains": self.num_chains, "chain_depth": self.chain_depth,
                "alpha": self.alpha, "all_ops": self.all_ops}

