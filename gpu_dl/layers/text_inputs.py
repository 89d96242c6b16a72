"""What the preprocessing layers that read strings (``Hashing``, ``HashedCrossing``, ``StringLookup``,
``TextVectorization``) share: their inputs stay host data (NumPy arrays of str, bytes or objects; numbers may
come from any device and are read back), and their ``dtype`` may name an integer output dtype, as Keras's
integer dtype policies do for these layers (gpu_dl's own policies are float ones)."""
from __future__ import annotations

import numpy

from ..backend import to_numpy
from .base import policy_dtype

INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def host_array(x, where):
    """``x`` (a string, bytes, a number, nested lists of them or an array on any device) as a NumPy array; text
    as an object array of str/bytes."""
    if hasattr(x, "shape") and hasattr(x, "dtype") and type(x).__module__.startswith(("cupy", "numpy")):
        array = to_numpy(x)
    elif hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "detach"):      # a torch tensor
        array = numpy.asarray(x.detach().cpu().numpy())
    else:
        try:
            array = numpy.asarray(x)
        except ValueError:
            raise ValueError(f"{where}: the input is ragged (rows of different lengths); pass a rectangular "
                             "array.") from None
    if array.dtype.kind in "US":
        array = array.astype(object)
    if array.dtype.kind == "O":
        flat = array.reshape(-1)
        if not all(isinstance(v, (str, bytes)) for v in flat):
            kinds = sorted({type(v).__name__ for v in flat if not isinstance(v, (str, bytes))})
            raise TypeError(f"{where}: takes strings or numbers, got an object array holding {', '.join(kinds)}.")
    elif array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: takes strings or numbers, got an array of {array.dtype}.")
    return array


def split_integer_dtype(kwargs, default):
    """Pop the ``dtype`` of ``kwargs``: an integer dtype (a name or Keras's serialized policy) is returned as the
    output dtype and left out of the layer's policy; another one stays for the layer's (float) policy, and the
    output dtype is then ``default`` (None: the layer's float dtype)."""
    dtype = kwargs.get("dtype")
    if dtype is None:
        return default
    name = policy_dtype(dtype)
    try:
        name = numpy.dtype(name).name if not isinstance(name, str) else name
    except TypeError:
        return default
    if name in INTEGER_DTYPES:
        kwargs.pop("dtype")
        return name
    return None
