"""gpu_dl: a GPU-first deep-learning framework with the Keras API.

``import gpu_dl as keras`` and write ``keras.Sequential([...])``,
``model.compile(...)``, ``model.fit(...)`` as in Keras 3. The maths runs on
an NVIDIA GPU through CuPy when one is present, and on NumPy otherwise
(``GPU_DL_DEVICE=auto|cpu|gpu`` or ``gpu_dl.set_device``).
"""
import importlib

from .backend import get_device, set_device

__version__ = "0.1.0"

_SUBMODULES = (
    "activations", "applications", "backend", "callbacks", "config", "constraints", "data", "datasets", "distillation",
    "dtype_policies", "initializers", "layers", "losses", "metrics", "mixed_precision", "models", "ops", "optimizers",
    "preprocessing", "quantizers", "random", "regularizers", "saving", "tree", "utils", "visualization", "wrappers",
)
_FROM_MODELS = ("Sequential", "Model", "load_model")
_FROM_LAYERS = ("Input",)
# Keras's top-level classes: name -> (module, attribute).
_CLASSES = {
    "Layer": ("layers", "Layer"), "InputSpec": ("layers", "InputSpec"),
    "KerasTensor": ("layers.symbolic", "KerasTensor"), "Operation": ("layers.operations", "Operation"),
    "Variable": ("layers.base", "Variable"), "Function": ("models.function", "Function"),
    "name_scope": ("layers.scopes", "name_scope"), "device": ("backend", "device_scope"),
    "StatelessScope": ("layers.scopes", "StatelessScope"), "SymbolicScope": ("layers.scopes", "SymbolicScope"),
    "RematScope": ("layers.remat", "RematScope"), "remat": ("layers.remat", "remat"),
    "DTypePolicy": ("dtype_policies", "DTypePolicy"), "FloatDTypePolicy": ("dtype_policies", "FloatDTypePolicy"),
    "Loss": ("losses", "Loss"), "Metric": ("metrics", "Metric"), "Optimizer": ("optimizers", "Optimizer"),
    "Initializer": ("initializers", "Initializer"), "Regularizer": ("regularizers", "Regularizer"),
    "Quantizer": ("quantizers", "Quantizer"),
}


def version():
    """gpu_dl's version (Keras's ``keras.version()`` gives Keras's)."""
    return __version__


def __getattr__(name):
    # Submodules load on first use, so `import gpu_dl` stays cheap.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FROM_MODELS:
        return getattr(importlib.import_module(f"{__name__}.models"), name)
    if name in _FROM_LAYERS:
        return getattr(importlib.import_module(f"{__name__}.layers"), name)
    if name in _CLASSES:
        module, attribute = _CLASSES[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(f"module 'gpu_dl' has no attribute {name!r}")


__all__ = ["get_device", "set_device", "version", "__version__", *_SUBMODULES, *_FROM_MODELS, *_FROM_LAYERS,
           *_CLASSES]
