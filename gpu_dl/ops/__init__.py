"""Stateless differentiable operations, one module per family; and Keras's ``keras.ops`` functions.

Each internal module's operations take arrays of one module (NumPy or CuPy) and are written once
against that module's NumPy-compatible API; where a hand-written kernel pays,
the CUDA path sits behind the same function. A forward returns what its
backward needs.

``gpu_dl.ops.mean``, ``gpu_dl.ops.reshape``, ... are Keras's ops functions (``from gpu_dl import ops`` as
``from keras import ops``): they work on arrays and on symbolic tensors, and live at the layers level
(``gpu_dl/layers/keras_ops``). Keras's namespaces of them (``gpu_dl.ops.nn``, ``gpu_dl.ops.linalg``,
``gpu_dl.ops.image``, ``gpu_dl.ops.numpy``) are built there too; each also has a module file here, so
``import gpu_dl.ops.nn`` works as ``import keras.ops.nn`` does, and gives the same object as
``from gpu_dl.ops import nn``.
"""
import importlib
import sys

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


def _keras_namespace(module_name):
    """Put the namespace the layers level builds for ``module_name`` (``gpu_dl.ops.nn``: ``keras_ops.NAMESPACES``'s
    ``nn``) in ``sys.modules`` under that name, for the module file of that name to stand for it. A namespace of
    Keras's ``keras.ops`` gets here a file of three lines calling this (``nn.py``, ``linalg.py``, ``image.py``,
    ``numpy.py``)."""
    namespace = importlib.import_module(_KERAS_OPS).NAMESPACES[module_name.rpartition(".")[2]]
    sys.modules[module_name] = namespace
    return namespace


def __dir__():
    return sorted(set(globals()) | set(importlib.import_module(_KERAS_OPS).__all__))
