"""The bottom level: which array module runs, device facts, global settings."""
import numpy as _numpy

from .config import (
    conv_precision, epsilon, floatx, image_data_format, make_rng, rng, rnn_graphs, set_conv_precision, set_epsilon,
    set_floatx, set_image_data_format, set_random_seed, set_rnn_graphs, standardize_data_format, standardize_dtype,
)
from .nvtx import nvtx_enabled, nvtx_range
from .device import (
    DeviceUnavailableError,
    array_module,
    describe_device,
    device_scope,
    get_device,
    set_device,
    to_device,
    to_numpy,
    xp,
)

__all__ = [
    "DeviceUnavailableError", "array_module", "conv_precision", "describe_device", "device_scope", "epsilon", "floatx",
    "get_device", "image_data_format", "make_rng", "nvtx_enabled", "nvtx_range", "rng", "rnn_graphs",
    "set_conv_precision", "set_device", "set_epsilon", "set_floatx", "set_image_data_format", "set_random_seed",
    "set_rnn_graphs", "standardize_data_format",
    "standardize_dtype", "to_device", "to_numpy", "xp",
]

from .dtypes import get_uid, result_type
from .memory import empty_cache, install_allocator, memory_stats, memory_summary
from .memory_pool import OutOfMemoryError

__all__ += ["OutOfMemoryError", "empty_cache", "get_uid", "install_allocator", "memory_stats", "memory_summary",
            "result_type"]


# Keras's keras.backend functions that reach above this level import what they need when called.
def clear_session(free_memory=True):
    """Keras's ``clear_session``: ``gpu_dl.utils.clear_session``."""
    from ..utils.session import clear_session as clear
    clear(free_memory)


def is_keras_tensor(x):
    """Whether ``x`` is a symbolic tensor (from ``keras.Input`` or a layer called on one)."""
    from ..layers.symbolic import is_symbolic
    return is_symbolic(x)


def is_float_dtype(dtype):
    """Whether ``dtype`` (a name or a NumPy dtype) is a float type."""
    return _numpy.dtype(getattr(dtype, "name", dtype)).kind == "f"


def is_int_dtype(dtype):
    """Whether ``dtype`` is a signed or unsigned integer type."""
    return _numpy.dtype(getattr(dtype, "name", dtype)).kind in "iu"


def backend():
    """``"gpu_dl"``, as ``gpu_dl.config.backend()``."""
    return "gpu_dl"


__all__ += ["backend", "clear_session", "is_float_dtype", "is_int_dtype", "is_keras_tensor"]
