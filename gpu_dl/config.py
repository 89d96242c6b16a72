"""Keras's ``keras.config``: the global settings, by Keras's names.

``floatx``/``set_floatx``, ``image_data_format``/``set_image_data_format`` (the data format layers take for
``data_format=None``), ``epsilon`` (fixed at Keras's 1e-7; ``set_epsilon`` refuses another value),
``max_epochs``/``set_max_epochs`` and ``max_steps_per_epoch``/``set_max_steps_per_epoch`` (debugging caps on
fit's epochs and on each epoch's batches in fit, evaluate and predict, also read from ``KERAS_MAX_EPOCHS`` and
``KERAS_MAX_STEPS_PER_EPOCH``), ``dtype_policy``/``set_dtype_policy`` (the global dtype policy, such as
``"mixed_float16"``: ``gpu_dl.dtype_policies``), the interactive-logging switch, and ``backend()``.

Where gpu_dl differs: ``backend()`` is ``"gpu_dl"`` and ``set_backend`` is refused (gpu_dl is its own backend;
``gpu_dl.set_device`` chooses the GPU or the CPU); ``enable_unsafe_deserialization`` only warns, since gpu_dl
never runs code from a file (a Python lambda in a saved model is refused whatever it is told).
"""
from __future__ import annotations

from .backend.config import (
    epsilon, floatx, image_data_format, max_epochs, max_steps_per_epoch, set_epsilon, set_floatx,
    set_image_data_format, set_max_epochs, set_max_steps_per_epoch,
)
from .backend.user_warnings import warn
from .dtype_policies import dtype_policy, set_dtype_policy
from .utils.io_utils import disable_interactive_logging, enable_interactive_logging, is_interactive_logging_enabled

BACKEND = "gpu_dl"


def backend() -> str:
    """The name of the backend: ``"gpu_dl"`` (NumPy on the CPU, CuPy and gpu_dl's kernels on a GPU)."""
    return BACKEND


def set_backend(backend):
    raise ValueError(f"gpu_dl is its own backend and cannot switch to {backend!r}; choose the device with "
                     "gpu_dl.set_device('gpu' | 'cpu' | 'auto') or GPU_DL_DEVICE.")


def enable_unsafe_deserialization():
    """Keras's switch for loading Python lambdas from saved models. gpu_dl never runs code from a file, so it
    changes nothing: a lambda in a saved model stays refused; rebuild that model in code and load its weights."""
    warn("enable_unsafe_deserialization() changes nothing in gpu_dl: it never runs code from a file, so a "
         "Python lambda in a saved model stays refused. Rebuild the model in code and call load_weights().",
         UserWarning)


__all__ = [
    "backend", "disable_interactive_logging", "dtype_policy", "enable_interactive_logging",
    "enable_unsafe_deserialization", "epsilon", "floatx", "image_data_format", "is_interactive_logging_enabled",
    "max_epochs", "max_steps_per_epoch", "set_backend", "set_dtype_policy", "set_epsilon", "set_floatx",
    "set_image_data_format", "set_max_epochs", "set_max_steps_per_epoch",
]
