"""Stateless differentiable operations, one module per family; and Keras's ``keras.ops`` functions.

Each internal module's operations take arrays of one module (NumPy or CuPy) and are written once
against that module's NumPy-compatible API; where a hand-written kernel pays,
the CUDA path sits behind the same function. A forward returns what its
backward needs.

``gpu_dl.ops.mean``, ``gpu_dl.ops.reshape``, ... are Keras's ops functions (``from gpu_dl import ops`` as
``from keras import ops``): they work on arrays and on symbolic tensors, and live at the layers level
(``gpu_dl/layers/keras_ops``); ``gpu_dl.ops.nn``, ``.linalg``, ``.image`` and ``.numpy`` are Keras's namespaces of
them.
"""
import importlib

# The public Keras namespace shares this internal package's name, but its functions record operations of the
# layers level, which this bottom level must not import at its top (that would import every layer with the
# maths, and the layers import this package). So the names are looked up on first use (PEP 562). An internal
# module once imported is an attribute of this package and wins over a Keras name, so no internal module is
# named as one of Keras's ops (the convolutions are `convolution.py` and `transposed_convolution.py`).
_KERAS_OPS = "gpu_dl.layers.keras_ops"


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    keras_ops = importlib.import_module(_KERAS_OPS)
    if name in keras_ops.NAMESPACES:       # nn, linalg, image, numpy (keras_ops's own `numpy` is NumPy)
        return keras_ops.NAMESPACES[name]
    if name in keras_ops.__all__:
        return getattr(keras_ops, name)
    try:
        return importlib.import_module(f"{__name__}.{name}")     # an internal module not imported yet
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r} (gpu_dl.ops offers these of Keras's ops: "
                         f"{', '.join(keras_ops.__all__)})")


def __dir__():
    return sorted(set(globals()) | set(importlib.import_module(_KERAS_OPS).__all__))
