"""Global settings: the default float type, the convolutions' float32 precision, the random seed."""
from __future__ import annotations

import os
import random
import sys

import numpy

_FLOATX = "float32"
_FLOAT_TYPES = ("float16", "bfloat16", "float32", "float64")
_rng = numpy.random.default_rng()
# The SeedGenerator that ``gpu_dl.random``'s functions draw from when given no seed (made on first use, by
# ``layers/seed_generator.py``); ``set_random_seed`` drops it, so the next one starts from the new seed.
_global_seed_generator = None


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


# How float32 convolutions multiply on the GPU: "tf32" (tensor cores with 10-bit mantissa inputs and
# float32 accumulation, what cuDNN does by default under PyTorch), "bfloat16" (tensor cores on inputs
# rounded to bfloat16, float32 accumulation) or "float32" (strict float32 FMAs). float64 is always exact;
# the NumPy path always computes in the arrays' own dtype.
CONV_PRECISIONS = ("tf32", "bfloat16", "float32")


def _checked_precision(value, where):
    if value not in CONV_PRECISIONS:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, CONV_PRECISIONS))}, got {value!r}.")
    return value


_CONV_PRECISION = _checked_precision(os.environ.get("GPU_DL_CONV_PRECISION", "tf32"),
                                     "the environment variable GPU_DL_CONV_PRECISION")


def conv_precision() -> str:
    """The precision of float32 convolutions on the GPU (set_conv_precision; GPU_DL_CONV_PRECISION)."""
    return _CONV_PRECISION


def set_conv_precision(value: str) -> None:
    """Choose "tf32" (default), "bfloat16" or "float32" for float32 convolutions on the GPU."""
    global _CONV_PRECISION
    _CONV_PRECISION = _checked_precision(value, "conv precision")


def set_random_seed(seed: int) -> None:
    """Seed gpu_dl's generator (weight initialisation, dropout, shuffling), Python's, NumPy's global one and
    CuPy's, and start ``gpu_dl.random``'s global SeedGenerator afresh from them, as Keras's does."""
    global _rng, _global_seed_generator
    if not isinstance(seed, (int, numpy.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    _rng = numpy.random.default_rng(int(seed))
    random.seed(int(seed))      # Keras seeds Python's too: its unseeded SeedGenerators take their seeds from it
    _global_seed_generator = None
    numpy.random.seed(int(seed) % 2**32)
    cupy = sys.modules.get("cupy")   # CuPy's global stream (unseeded dropout on the GPU), if it is in use
    if cupy is not None:
        cupy.random.seed(numpy.uint64(int(seed) % 2**32))   # a uint64: CuPy < 13.3 refuses a Python int


def global_seed_generator():
    """The SeedGenerator of unseeded ``gpu_dl.random`` draws, or None before the first (or after
    ``set_random_seed``)."""
    return _global_seed_generator


def set_global_seed_generator(generator) -> None:
    global _global_seed_generator
    _global_seed_generator = generator


def rng() -> numpy.random.Generator:
    """The host random generator all of gpu_dl draws from unless given a seed."""
    return _rng


def checked_seed(seed) -> int:
    """``seed`` as an int; a ValueError unless it is a non-negative integer."""
    if not isinstance(seed, (int, numpy.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}.")
    return int(seed)


def make_rng(seed=None) -> numpy.random.Generator:
    """A generator of its own for ``seed``, or the global one when ``seed`` is None."""
    if seed is None:
        return _rng
    return numpy.random.default_rng(checked_seed(seed))
