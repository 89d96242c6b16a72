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
  Keras's list of the 11 is applied to the whole batch. As Keras does, a call
  draws the ops' indices, then every op's parameters once, in the list's
  order (an op drawn twice repeats them).
- ``AugMix(num_chains=3, chain_depth=3, alpha=1.0, all_ops=True)``: chain
  weights ``w ~ Dirichlet(alpha)`` (gammas over their sum) and
  ``m ~ Beta(alpha, alpha)`` for the batch; each chain applies
  ``chain_depth`` picks from the op list (the 11, or with ``all_ops=False``
  Keras's 7 without the colour ops) and "none", each op's parameters drawn
  when it is picked; ``y = clip(m x + (1 - m) sum_c w_c chain_c(x),
  *value_range)``. The picks are Keras's: Python's ``random.choice``, which
  ``gpu_dl.utils.set_random_seed`` seeds (not the layer's generator).

An op draws from seed pairs the policy takes from its own generator, as many
as Keras's op takes (``draws_per_call``), so the policy's generator moves as
Keras's does; its draws, and the ops' that follow Keras's draws, are the
values Keras's NumPy backend draws.

Both are input-side layers: several of their ops have no gradient, so their
backward raises.
"""
from __future__ import annotations

import numbers
import random as python_random

import numpy

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
# The orders Keras's layers make their ops in.
RAND_AUGMENT_MADE = RAND_AUGMENT_OPS[:7] + ("solarization", "random_posterization") + RAND_AUGMENT_OPS[9:]
AUGMIX_MADE = AUGMIX_OPS[:3] + ("solarization", "random_posterization") + AUGMIX_OPS[5:]


def _positive_int(layer, value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{_where(layer)}: {what} must be a positive integer, got {value!r}.")
    return int(value)


class _Policy(ImageAugmentLayer):
    """The ops both policies draw from, built as Keras builds them, drawing from this layer's generator."""

    differentiable = False
    why_not = "several of its ops are piecewise constant"

    def __init__(self, value_range, factor, interpolation, seed, data_format, made, **kwargs):
        """``made``: the names of the ops the layer holds, in the order Keras's layer makes them."""
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
        makers = {
            "random_shear": lambda: RandomShear(f, f, interpolation=interpolation, **common),
            "random_translation": lambda: RandomTranslation(f, f, interpolation=interpolation, **common),
            "random_rotation": lambda: RandomRotation(f, interpolation=interpolation, **common),
            "random_brightness": lambda: RandomBrightness(f, **ranged),
            "random_color_degeneration": lambda: RandomColorDegeneration(f, **ranged),
            "random_contrast": lambda: RandomContrast(f, **ranged),
            "random_sharpness": lambda: RandomSharpness(f, **ranged),
            "random_posterization": lambda: RandomPosterization(max(1, int(8 * f[1])), **ranged),
            "solarization": lambda: Solarization(f, f, **ranged),
            "auto_contrast": lambda: AutoContrast(value_range=value_range, dtype=self.dtype),
            "equalization": lambda: Equalization(value_range=value_range, dtype=self.dtype),
        }
        self.ops = {name: makers[name]() for name in made}

    def reserve(self, name):
        """The seed pairs of one draw of op ``name``'s parameters, taken from this layer's generator now."""
        return [self.generator.next() for _ in range(self.ops[name].draws_per_call)]

    def apply(self, name, x, pairs):
        """One op on channels_last images x, drawing its parameters from ``pairs`` (``reserve``)."""
        op = self.ops[name]
        pairs = iter(pairs)
        op.host_rng = lambda: numpy.random.default_rng(numpy.array(next(pairs), dtype=numpy.uint32))
        try:
            return op._augment(x)[0]
        finally:
            del op.host_rng

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "factor": self.factor,
                "interpolation": self.interpolation}


class RandAugment(_Policy):
    """``num_ops`` ops drawn from Keras's 11, applied in turn (module docstring); input-side only."""

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear", seed=None,
                 data_format=None, **kwargs):
        super().__init__(value_range, factor, interpolation, seed, data_format, RAND_AUGMENT_MADE, **kwargs)
        self.num_ops = _positive_int(self, num_ops, "num_ops")

    def _augment(self, x):
        indices = self.host_rng().integers(low=0, high=len(RAND_AUGMENT_OPS), size=(self.num_ops,), dtype=numpy.int32)
        pairs = {name: self.reserve(name) for name in RAND_AUGMENT_OPS}
        for index in indices:
            name = RAND_AUGMENT_OPS[index]
            x = self.apply(name, x, pairs[name])
        return x, None

    def get_config(self):
        return {**super().get_config(), "num_ops": self.num_ops}


class AugMix(_Policy):
    """A mix of the image and ``num_chains`` chains of random ops (module docstring); input-side only."""

    def __init__(self, value_range=(0, 255), num_chains=3, chain_depth=3, factor=0.3, alpha=1.0, all_ops=True,
                 interpolation="bilinear", seed=None, data_format=None, **kwargs):
        made = AUGMIX_MADE + (AUGMIX_OPS_ALL[7:] if all_ops else ())   # Keras makes the colour ops for all_ops only
        super().__init__(value_range, factor, interpolation, seed, data_format, made, **kwargs)
        self.num_chains = _positive_int(self, num_chains, "num_chains")
        self.chain_depth = _positive_int(self, chain_depth, "chain_depth")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
            raise ValueError(f"{_where(self)}: alpha must be a positive number, got {alpha!r}.")
        self.alpha = alpha
        self.all_ops = bool(all_ops)

    def _augment(self, x):
        names = list(AUGMIX_OPS_ALL if self.all_ops else AUGMIX_OPS)
        # Keras's draws: gammas of the chain weights, then the mixing weight (float32).
        gammas = self.host_rng().gamma(self.alpha, scale=1.0, size=(self.num_chains,)).astype(numpy.float32)
        chain_weights = gammas / gammas.sum(axis=-1, keepdims=True)
        mix = float(self.host_rng().beta(a=self.alpha, b=self.alpha, size=()).astype(numpy.float32))
        # Each chain's ops, picked (None: no op) and their parameters' pairs taken in Keras's order.
        chains = [[(name, self.reserve(name)) for name in
                   (python_random.choice(names + [None]) for _ in range(self.chain_depth)) if name is not None]
                  for _ in range(self.num_chains)]
        mixed = None
        for weight, ops in zip(chain_weights, chains):
            chain = x
            for name, pairs in ops:
                chain = self.apply(name, chain, pairs)
            part = chain * x.dtype.type(weight)
            mixed = part if mixed is None else mixed + part
        y = x.dtype.type(mix) * x + x.dtype.type(1 - mix) * mixed
        low, high = (float(v) for v in self.value_range)
        return array_module(x).clip(y, low, high).astype(x.dtype, copy=False), None

    def get_config(self):
        return {**super().get_config(), "num_chains": self.num_chains, "chain_depth": self.chain_depth,
                "alpha": self.alpha, "all_ops": self.all_ops}

