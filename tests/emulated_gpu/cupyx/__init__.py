"""A stand-in for the part of ``cupyx`` gpu_dl calls, beside the emulated ``cupy`` (see ``cupy/__init__.py``).

``cupyx.scipy.special`` (the exact GELU's erf on the GPU), ``scatter_add``,
and CuPy's deprecated synchronisation detector: inside
``allow_synchronize(False)`` the emulated ``cupy`` raises
``DeviceSynchronized`` wherever real CuPy would wait for the device (a copy
to the host, an explicit synchronize, a function that reads a size back).
"""
import contextlib
import warnings

import cupy
from cupy import DeviceSynchronized, _sync

__all__ = ["DeviceSynchronized", "allow_synchronize", "scatter_add"]


@contextlib.contextmanager
def allow_synchronize(allow):
    """Allows or refuses device synchronisation in this thread while the block runs (as CuPy's, deprecated)."""
    warnings.warn("cupyx.allow_synchronize will be removed in future releases as it is not possible to "
                  "reliably detect synchronizations.", DeprecationWarning, stacklevel=3)
    before = getattr(_sync, "allowed", True)
    _sync.allowed = bool(allow)
    try:
        yield
    finally:
        _sync.allowed = before


def scatter_add(a, slices, value):
    """``a[slices] += value`` with repeated indices adding up, in place, as CuPy's ``cupyx.scatter_add``."""
    cupy.add.at(a, slices, value)
