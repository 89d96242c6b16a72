"""Global settings: the default float type and the random seed."""
from __future__ import annotations

import numpy

_FLOATX = "float32"
_FLOAT_TYPES = ("float16", "bfloat16", "float32", "float64")
_rng = numpy.random.default_rng()


def floatx() -> str:
    """The default float type of new weights and inputs (Keras: ``keras.config.floatx``)."""
    return _FLOATX


def set_floatx(value: str) -> None:
    global _FLOATX
    if value not in ("float32", "float64"):
        raise ValueError(f"floatx must be 'float32' or 'float64', got {value!r}.")
    _FLOATX = value


def standardize_dtype(dtype, where="dtype") -> str:
    """A float dtype name from a string, a NumPy dtype or None (meaning floatx())."""
    if dtype is None:
        return _FLOATX
    try:
        name = numpy.dtype(dtype).name
    except TypeError:
        raise TypeError(f"{where} must be a float dtype such as 'float32', got {dtype!r}.") from None
    if name not in ("float32", "float64"):
        raise ValueError(f"{where} must be 'float32' or 'float64', got {name!r}.")
    return name


def set_random_seed(seed: int) -> None:
    """Seed gpu_dl's generator (weight initialisation, dropout, shuffling) and NumPy's global one."""
    global _rng
    if not isinstance(seed, (int, numpy.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    _rng = numpy.random.default_rng(int(seed))
    numpy.random.seed(int(seed) % 2**32)


def rng() -> numpy.random.Generator:
    """The host random generator all of gpu_dl draws from unless given a seed."""
    return _rng


def make_rng(seed=None) -> numpy.random.Generator:
    """A generator of its own for ``seed``, or the global one when ``seed`` is None."""
    if seed is None:
        return _rng
    if not isinstance(seed, (int, numpy.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}.")
    return numpy.random.default_rng(int(seed))
