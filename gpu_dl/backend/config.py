"""Global settings: the default float type, the image data format, the fuzz factor, the convolutions' float32
precision, CUDA-graph replay of the recurrent step loops, the random seed, and the debugging caps on epochs and
steps (Keras's ``keras.config``)."""
from __future__ import annotations

import os
import random
import sys

import numpy

from .user_warnings import warn

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


# Keras's fuzz factor. gpu_dl's losses, metrics, constraints and layers use 1e-7 as Keras does by default; they
# take it as a constant, so it cannot be changed.
_EPSILON = 1e-7


def epsilon() -> float:
    """The fuzz factor of the numerics (1e-7, Keras's default)."""
    return _EPSILON


def set_epsilon(value) -> None:
    """Keras's ``set_epsilon``: gpu_dl keeps 1e-7 (its numerics take it as a constant), so any other value is
    refused rather than silently ignored."""
    if value != _EPSILON:
        raise ValueError(f"gpu_dl's fuzz factor is fixed at {_EPSILON} (its losses, metrics and constraints use it "
                         f"as a constant); set_epsilon({value!r}) cannot change it.")


DATA_FORMATS = ("channels_last", "channels_first")
_IMAGE_DATA_FORMAT = "channels_last"


def image_data_format() -> str:
    """The data format layers take when given ``data_format=None``: "channels_last" (default) or
    "channels_first"."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format: str) -> None:
    global _IMAGE_DATA_FORMAT
    word = data_format.lower() if isinstance(data_format, str) else data_format
    if word not in DATA_FORMATS:
        raise ValueError(f"The `data_format` argument must be one of {{'channels_first', 'channels_last'}}. "
                         f"Received: data_format={data_format!r}")
    _IMAGE_DATA_FORMAT = word


def standardize_data_format(data_format, where="data_format") -> str:
    """``data_format`` (any case) checked, or, for None, ``image_data_format()``."""
    if data_format is None:
        return _IMAGE_DATA_FORMAT
    word = data_format.lower() if isinstance(data_format, str) else data_format
    if word not in DATA_FORMATS:
        raise ValueError(f"{where} must be 'channels_last' or 'channels_first', got {data_format!r}.")
    return word


def _cap_from_environment(name):
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return checked_cap(int(value), name)
    except ValueError:
        raise ValueError(f"The environment variable {name} must be a positive integer, got {value!r}.") from None


def checked_cap(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")
    return int(value)


# Debugging caps on every fit (epochs) and on each epoch of fit/evaluate/predict (batches), as Keras's, also set
# by the environment variables KERAS_MAX_EPOCHS and KERAS_MAX_STEPS_PER_EPOCH.
_MAX_EPOCHS = _cap_from_environment("KERAS_MAX_EPOCHS")
_MAX_STEPS_PER_EPOCH = _cap_from_environment("KERAS_MAX_STEPS_PER_EPOCH")


def max_epochs():
    """The most epochs any fit runs (None: no cap)."""
    return _MAX_EPOCHS


def set_max_epochs(value) -> None:
    global _MAX_EPOCHS
    _MAX_EPOCHS = checked_cap(value, "max_epochs")


def max_steps_per_epoch():
    """The most batches an epoch of fit, evaluate or predict takes (None: no cap)."""
    return _MAX_STEPS_PER_EPOCH


def set_max_steps_per_epoch(value) -> None:
    global _MAX_STEPS_PER_EPOCH
    _MAX_STEPS_PER_EPOCH = checked_cap(value, "max_steps_per_epoch")


def capped_epochs(epochs):
    """``epochs`` limited to ``max_epochs()``, with Keras's warning when the cap applies."""
    if _MAX_EPOCHS is not None and _MAX_EPOCHS < epochs:
        warn(f"Limiting epochs to {_MAX_EPOCHS}")
        return _MAX_EPOCHS
    return epochs


def capped_steps(steps):
    """An epoch's batches (None: all) limited to ``max_steps_per_epoch()``, with Keras's warning."""
    if _MAX_STEPS_PER_EPOCH is not None and (steps is None or _MAX_STEPS_PER_EPOCH < steps):
        warn(f"Limiting steps_per_epoch to {_MAX_STEPS_PER_EPOCH}")
        return _MAX_STEPS_PER_EPOCH
    return steps


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


# Whether the LSTM and GRU step loops on the GPU run as captured CUDA graphs (``gpu_dl.ops.rnn_graphs``): True
# unless the environment variable GPU_DL_RNN_GRAPHS says 0/false/off. Off, they launch each step from the host.
_SWITCH_WORDS = {"1": True, "true": True, "on": True, "yes": True, "0": False, "false": False, "off": False,
                 "no": False}


def _switch_from_environment(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return _SWITCH_WORDS[value.strip().lower()]
    except KeyError:
        raise ValueError(f"The environment variable {name} must be one of 1/true/on/yes or 0/false/off/no, "
                         f"got {value!r}.") from None


_RNN_GRAPHS = _switch_from_environment("GPU_DL_RNN_GRAPHS", True)


def rnn_graphs() -> bool:
    """Whether the GPU's LSTM/GRU step loops replay captured CUDA graphs (set_rnn_graphs; GPU_DL_RNN_GRAPHS)."""
    return _RNN_GRAPHS


def set_rnn_graphs(enabled: bool) -> None:
    """Turn CUDA-graph replay of the LSTM/GRU step loops on (default) or off (every step launched from the host)."""
    global _RNN_GRAPHS
    if not isinstance(enabled, (bool, numpy.bool_)):
        raise TypeError(f"set_rnn_graphs takes True or False, got {enabled!r}.")
    _RNN_GRAPHS = bool(enabled)


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
