"""Keras's ``keras.config``: the global settings, by Keras's names.

``floatx``/``set_floatx``, ``image_data_format``/``set_image_data_format`` (the data format layers take for
``data_format=None``), ``epsilon`` (fixed at Keras's 1e-7; ``set_epsilon`` refuses another value),
``max_epochs``/``set_max_epochs`` and ``max_steps_per_epoch``/``set_max_steps_per_epoch`` (debugging caps on
fit's epochs and on each epoch's batches in fit, evaluate and predict, also read from ``KERAS_MAX_EPOCHS`` and
``KERAS_MAX_STEPS_PER_EPOCH``), ``dtype_policy``/``set_dtype_policy`` (the global dtype policy, such as
``"mixed_float16"``: ``gpu_dl.dtype_policies``), the interactive-logging switch, ``backend()``, and the
flash-attention, traceback-filtering and NNX settings (which gpu_dl keeps and reports but which change nothing in
it: see each function).

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


# Keras's global settings that change nothing in gpu_dl's computations, kept so that code reading them runs and
# reads back what it set; clear_session restores their defaults, as Keras's does.
_FLASH_ATTENTION_DEFAULT = None
_TRACEBACK_FILTERING_DEFAULT = True
_flash_attention = _FLASH_ATTENTION_DEFAULT
_traceback_filtering = _TRACEBACK_FILTERING_DEFAULT


def enable_flash_attention():
    """Keras's switch letting attention layers try flash attention (its default). gpu_dl has no flash-attention
    kernel: ``MultiHeadAttention`` and ``GroupedQueryAttention`` compute the attention the same way whatever is
    set here, and refuse ``flash_attention=True``. ``is_flash_attention_enabled()`` then reads None, as in
    Keras."""
    global _flash_attention
    _flash_attention = None


def disable_flash_attention():
    """Keras's switch that keeps attention layers off flash attention. It changes nothing in gpu_dl, which has
    none (see ``enable_flash_attention``); ``is_flash_attention_enabled()`` then reads False."""
    global _flash_attention
    _flash_attention = False


def is_flash_attention_enabled():
    """False after ``disable_flash_attention()``, None otherwise (Keras's "enabled": layers may try it). In gpu_dl
    it is a setting only: no layer computes attention differently for it."""
    return _flash_attention


def enable_traceback_filtering():
    """Keras's switch for leaving its own frames out of the tracebacks of its errors. gpu_dl does not filter
    tracebacks (its errors say what went wrong and what to do, with every frame kept); the setting is kept for
    ``is_traceback_filtering_enabled()`` only."""
    global _traceback_filtering
    _traceback_filtering = True


def disable_traceback_filtering():
    """Keras's switch for full tracebacks. gpu_dl's tracebacks are always full; the setting is kept for
    ``is_traceback_filtering_enabled()`` only."""
    global _traceback_filtering
    _traceback_filtering = False


def is_traceback_filtering_enabled():
    """The setting of ``enable_traceback_filtering``/``disable_traceback_filtering`` (True by default, as in
    Keras); gpu_dl's tracebacks are full either way."""
    return _traceback_filtering


def is_nnx_enabled():
    """Whether Flax NNX features are on: a setting of Keras's JAX backend, always False in gpu_dl."""
    return False


def _reset_settings():
    """Back to the defaults (``clear_session``)."""
    global _flash_attention, _traceback_filtering
    _flash_attention = _FLASH_ATTENTION_DEFAULT
    _traceback_filtering = _TRACEBACK_FILTERING_DEFAULT


__all__ = [
    "backend", "disable_flash_attention", "disable_interactive_logging", "disable_traceback_filtering",
    "dtype_policy", "enable_flash_attention", "enable_interactive_logging", "enable_traceback_filtering",
    "enable_unsafe_deserialization", "epsilon", "floatx", "image_data_format", "is_flash_attention_enabled",
    "is_interactive_logging_enabled", "is_nnx_enabled", "is_traceback_filtering_enabled", "max_epochs",
    "max_steps_per_epoch", "set_backend", "set_dtype_policy", "set_epsilon", "set_floatx", "set_image_data_format",
    "set_max_epochs", "set_max_steps_per_epoch",
]
