"""Keras's ``keras.mixed_precision``: the global dtype policy by its legacy names, and ``LossScaleOptimizer``.

``set_global_policy("mixed_float16")`` makes layers made afterwards without ``dtype=`` compute in float16 and keep
float32 weights; ``compile`` then wraps the optimizer in a ``LossScaleOptimizer`` (see ``gpu_dl.dtype_policies``
and ``gpu_dl.optimizers.LossScaleOptimizer``).
"""
from __future__ import annotations

from .dtype_policies import DTypePolicy, dtype_policy, set_dtype_policy

Policy = DTypePolicy
global_policy = dtype_policy
set_global_policy = set_dtype_policy


def __getattr__(name):
    if name == "LossScaleOptimizer":      # optimizers sit above layers; loaded on first use
        from .optimizers import LossScaleOptimizer
        return LossScaleOptimizer
    raise AttributeError(f"module 'gpu_dl.mixed_precision' has no attribute {name!r}")


__all__ = ["DTypePolicy", "Policy", "dtype_policy", "global_policy", "set_dtype_policy",
           "set_global_policy"]
