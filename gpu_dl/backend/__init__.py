"""The bottom level: which array module runs, device facts, global settings."""
from .config import (
    conv_precision, floatx, make_rng, rng, set_conv_precision, set_floatx, set_random_seed, standardize_dtype,
)
from .nvtx import nvtx_enabled, nvtx_range
from .device import (
    DeviceUnavailableError,
    array_module,
    describe_device,
    get_device,
    set_device,
    to_device,
    to_numpy,
    xp,
)

__all__ = [
    "DeviceUnavailableError", "array_module", "conv_precision", "describe_device", "floatx", "get_device",
    "make_rng", "nvtx_enabled", "nvtx_range", "rng", "set_conv_precision", "set_device", "set_floatx",
    "set_random_seed", "standardize_dtype",
    "to_device", "to_numpy", "xp",
]

from .memory import empty_cache, install_allocator, memory_stats, memory_summary
from .memory_pool import OutOfMemoryError

__all__ += ["OutOfMemoryError", "empty_cache", "install_allocator", "memory_stats", "memory_summary"]
