"""``clear_session``: start afresh, as Keras 3's ``keras.utils.clear_session`` does.

Keras resets its global state: the counters behind automatic layer names
(the next ``Dense`` is ``dense`` again), the custom-object scope of the
thread, the global SeedGenerator of unseeded random draws, and then runs the
garbage collector and frees its backend's caches. gpu_dl does the same with
its own: the layer-name and SeedGenerator-name counters, the global
SeedGenerator (``gpu_dl.random``), the active ``custom_object_scope``
objects of this thread, a garbage collection, and,
with ``free_memory``, the wholly free cached segments of the current
device's memory pool given back to CUDA. Only free segments go: a block still
held by a live array is never touched, so clearing is safe with models alive
(their weights stay valid).
"""
from __future__ import annotations

import gc


def clear_session(free_memory=True):
    """Reset the name counters, the global SeedGenerator, the global dtype policy (floatx's again) and the
    custom-object scope; with ``free_memory``, collect
    garbage and give the device memory pool's free cached segments back to CUDA."""
    if not isinstance(free_memory, bool):
        raise TypeError(f"clear_session: `free_memory` must be True or False, got {free_memory!r}.")
    from .. import catalogue, config as settings, dtype_policies
    from ..backend import config
    from ..layers import base, seed_generator
    base._name_counters.clear()
    seed_generator.reset_names()
    config.set_global_seed_generator(None)     # as Keras drops its global SeedGenerator with its global state
    catalogue._SCOPE.objects = {}
    dtype_policies._clear()
    settings._reset_settings()
    if free_memory:
        gc.collect()
        from ..backend import memory
        memory.empty_cache()
