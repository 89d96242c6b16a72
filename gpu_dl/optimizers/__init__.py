"""The optimizer catalogue (Keras 3's ``keras.optimizers``).

``get("adam")`` (any case), ``get(instance)`` or ``get({"class_name", "config"})``
gives an optimizer; ``serialize`` writes one the way Keras 3 does.
Learning-rate schedules live in ``gpu_dl.optimizers.schedules``.
"""
from __future__ import annotations

from ..catalogue import from_keras_config, keras_config, lookup
from . import schedules
from .adam import Adam, Adamax, AdamW, Nadam
from .adaptive import Adadelta, Adagrad, RMSprop
from .base import Optimizer
from .ftrl_adafactor import Adafactor, Ftrl
from .lion_lamb import Lamb, Lion
from .loss_scale import LossScaleOptimizer
from .muon_schedule_free import Muon, ScheduleFreeAdamW
from .multi import MultiOptimizer, OptimizerMap
from .sgd import SGD

# Keras 3 keys its registry by the lower-cased class name ("rmsprop", "adamw", "schedulefreeadamw").
_OPTIMIZERS = {cls.__name__.lower(): cls for cls in (SGD, RMSprop, Adagrad, Adadelta, Adam, AdamW, Adamax, Nadam,
                                                   Lion, Lamb, Ftrl, Adafactor, Muon, ScheduleFreeAdamW,
                                                   LossScaleOptimizer, MultiOptimizer)}


def serialize(optimizer) -> dict:
    """``{"module", "class_name", "config", "registered_name"}`` as Keras 3 writes an optimizer."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizers.serialize expects an Optimizer instance, got {optimizer!r}.")
    return keras_config(optimizer, "keras.optimizers", builtin=type(optimizer) in _OPTIMIZERS.values())


def deserialize(config, custom_objects=None):
    """An optimizer from ``serialize``'s dict; the class name is matched without regard to case."""
    return from_keras_config("optimizers", config, _OPTIMIZERS, custom_objects)


def get(identifier):
    """An optimizer from a name ("adam", "SGD", ...), a config dict or an instance; None gives None."""
    if identifier is None:
        return None
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return lookup("optimizers", identifier, _OPTIMIZERS)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(f"Could not interpret optimizer identifier {identifier!r}: pass a name such as 'adam', "
                    "an Optimizer instance, or a config dict {'class_name': ..., 'config': {...}}.")


__all__ = [
    "Optimizer", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax", "Nadam", "Lion", "Lamb",
    "Ftrl", "Adafactor", "Muon", "ScheduleFreeAdamW", "LossScaleOptimizer", "MultiOptimizer", "OptimizerMap",
    "schedules", "get", "serialize", "deserialize",
]
