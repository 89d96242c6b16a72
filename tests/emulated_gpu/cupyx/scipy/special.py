"""``cupyx.scipy.special``: ``erf``, ``erfc``, ``erfinv`` and ``i1``, computed by SciPy's on the emulated device
arrays."""
import numpy
import scipy.special

import cupy


def erf(x):
    """As CuPy's ufunc (types e->d, f->f, d->d): device arrays or Python scalars in, a device array out,
    float32 for float32 and float64 for the rest; a host NumPy array is a TypeError."""
    if isinstance(x, numpy.ndarray) and not isinstance(x, cupy.ndarray):
        raise TypeError(f"Unsupported type {type(x)}")
    return cupy.asarray(scipy.special.erf(x))


def _device_ufunc(name):
    """SciPy's ``name`` as CuPy's ufunc of that name takes and gives arrays (as ``erf`` above)."""
    def function(x):
        if isinstance(x, numpy.ndarray) and not isinstance(x, cupy.ndarray):
            raise TypeError(f"Unsupported type {type(x)}")
        return cupy.asarray(getattr(scipy.special, name)(x))
    function.__name__ = name
    return function


erfc, erfinv, i1 = _device_ufunc("erfc"), _device_ufunc("erfinv"), _device_ufunc("i1")
