"""Uniform noise for dropout masks, and normal noise, drawn on the device that uses it.

A layer with a ``seed`` owns its streams: a NumPy ``Generator`` on the host
and a CuPy ``RandomState`` on the GPU, both seeded with it, so the same seed
gives the same masks run after run on one device (the two devices' streams
differ from each other). Without a seed the layer draws from gpu_dl's global
streams, which ``set_random_seed`` seeds. Drawing on the GPU keeps the
training step free of host-to-device copies.
"""
from __future__ import annotations

import numpy

from . import config


class UniformNoise:
    """Arrays of uniform [0, 1) (or standard normal) values for one layer (see the module docstring)."""

    def __init__(self, seed=None):
        self.seed = None if seed is None else config.checked_seed(seed)
        self._streams = {}

    def _stream(self, xp):
        stream = self._streams.get(xp.__name__)
        if stream is None:
            # CuPy takes a uint64 seed: before 13.3 it refuses a Python int under NumPy 2
            stream = numpy.random.default_rng(self.seed) if xp is numpy else \
                xp.random.RandomState(numpy.uint64(self.seed))
            self._streams[xp.__name__] = stream
        return stream

    def random(self, xp, shape, dtype):
        """Uniform [0, 1) values of ``shape`` and ``dtype`` in ``xp`` (numpy or cupy)."""
        if xp is numpy:
            stream = config.rng() if self.seed is None else self._stream(xp)
            return stream.random(shape, dtype=dtype)
        stream = xp.random if self.seed is None else self._stream(xp)
        return stream.random_sample(shape, dtype=dtype)

    def standard_normal(self, xp, shape, dtype):
        """Standard normal values of ``shape`` and ``dtype`` in ``xp``, from the same streams as ``random``."""
        if xp is numpy:
            stream = config.rng() if self.seed is None else self._stream(xp)
            return stream.standard_normal(shape, dtype=dtype)
        stream = xp.random if self.seed is None else self._stream(xp)
        return stream.standard_normal(shape, dtype=dtype)
