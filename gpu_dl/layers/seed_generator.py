"""Keras's ``keras.random.SeedGenerator`` and how ``gpu_dl.random`` turns a ``seed`` argument into the seed of one
draw.

As in Keras, the random functions are stateless: a draw is a function of a seed *pair* ``(seed, counter)``.
An int ``seed`` gives the pair ``(seed, 0)``, so the same values on every call; a ``SeedGenerator`` gives its
state and then advances its counter, so each call draws afresh and the sequence repeats from the same seed;
``None`` takes the pair from a global generator (made on first use, from Python's ``random`` as Keras makes
it; ``gpu_dl.utils.set_random_seed`` seeds that and starts a new one).

The state is a ``Variable`` of two uint32 numbers, ``[seed, counter]``, kept on the host: a draw reads it and
moves the counter without touching the device. As in Keras, it is among a layer's ``variables`` (a layer
holding a SeedGenerator in an attribute lists its state there) but not among its ``weights``, and weight
files do not hold it.
"""
from __future__ import annotations

import itertools
import numbers
import random as python_random

import numpy

from ..backend import config
from .base import Variable, scoped_path, writable_value

_SEED_MASK = 0xFFFFFFFF
_names = itertools.count()


def _auto_name():
    n = next(_names)
    return "seed_generator" if n == 0 else f"seed_generator_{n}"


def reset_names():
    """Start the automatic names afresh (``clear_session``)."""
    global _names
    _names = itertools.count()


def make_default_seed() -> int:
    """The seed of a SeedGenerator made without one: from Python's ``random``, as Keras draws it."""
    return python_random.randint(1, int(1e9))


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class SeedGenerator:
    """``SeedGenerator(seed=None, name=None)``: the state of a sequence of draws (see the module docstring).

    ``seed`` is an int (taken as 32 bits, as Keras does) or None for one from Python's ``random``; ``state``
    the Variable ``[seed, counter]``; ``next()`` the pair of the next draw.
    """

    def __init__(self, seed=None, name=None, **kwargs):
        if kwargs:
            raise ValueError(f"SeedGenerator: unrecognized keyword arguments: {sorted(kwargs)}.")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"SeedGenerator: name must be a non-empty string, got {name!r}.")
        self.name = name or _auto_name()
        self._initial_seed = seed
        if seed is None:
            seed = make_default_seed()
        if not _is_int(seed):
            raise ValueError(f"SeedGenerator: argument `seed` must be an integer, got seed={seed!r} of type "
                             f"{type(seed).__name__}.")
        # On the host on purpose: each draw reads and moves it, which must not cost a device round trip.
        value = numpy.array([int(seed) & _SEED_MASK, 0], dtype=numpy.uint32)
        self.state = Variable(value, "seed_generator_state", trainable=False,
                              path=scoped_path(self, "seed_generator_state"), host=True)

    def next(self, ordered=True):
        """The pair ``(seed, counter)`` of the next draw, as Python ints; the state then moves on (the counter by
        one; with ``ordered=False``, both numbers scrambled as Keras scrambles its global generator's)."""
        value = writable_value(self.state)     # the state's array, or its value in a StatelessScope
        pair = (int(value[0]), int(value[1]))
        if ordered:
            value[1:] += numpy.uint32(1)      # wraps at 2**32, as a uint32 does
        else:
            # uint32 arithmetic that wraps, as Keras's NumPy backend computes it
            value[...] = (value + numpy.uint32(1)) * numpy.uint32(5387) % numpy.uint32(933199)
        return pair

    def get_config(self):
        return {"seed": self._initial_seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<SeedGenerator name={self.name!r} state={self.state.value.tolist()}>"


def global_seed_generator() -> SeedGenerator:
    """The generator of unseeded draws, made on first use (and again after ``set_random_seed``)."""
    generator = config.global_seed_generator()
    if generator is None:
        generator = SeedGenerator()
        config.set_global_seed_generator(generator)
    return generator


def check_seed(seed, where):
    """``seed`` as it is kept: an int (32 bits), a SeedGenerator, or None; a ValueError naming ``where``
    otherwise."""
    if seed is None or isinstance(seed, SeedGenerator):
        return seed
    if _is_int(seed):
        return int(seed) & _SEED_MASK
    raise ValueError(f"{where}: argument `seed` must be an integer, a keras.random.SeedGenerator or None, got "
                     f"seed={seed!r} of type {type(seed).__name__}.")


def draw_seed(seed):
    """The seed pair of one draw for a checked ``seed`` (see ``check_seed``); a SeedGenerator moves on."""
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if seed is None:
        return global_seed_generator().next(ordered=False)
    return (seed, 0)


def seed_generators_of(value):
    """The SeedGenerators an attribute holds: itself, or those in a list, tuple or dict (Keras tracks those)."""
    if isinstance(value, SeedGenerator):
        return [value]
    if isinstance(value, (list, tuple)):
        return [g for item in value for g in seed_generators_of(item)]
    if isinstance(value, dict):
        return [g for item in value.values() for g in seed_generators_of(item)]
    return []
