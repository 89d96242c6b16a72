"""The optimizer catalogue (Keras 3's ``keras.optimizers``).

``get("adam")`` (any case), ``get(instance)`` or ``get({"class_name", "config"})``
gives an optimizer; ``serialize`` writes one the way Keras 3 does.
Learning-rate schedules live in ``gpu_dl.optimizers.schedules``.
"""
from __future__ import annotations

from ..catalogue import lookup
from . import schedules
from .adam import Adam, Adamax, AdamW, Nadam
from .adaptive import Adadelta, Adagrad, RMSprop
from .base import Optimizer
from .sgd import SGD

# Keras 3 keys its registry by the lower-cased class name ("rmsprop", "adamw").
_OPTIMIZERS = {cls.__name__.lower(): cls for cls in (SGD, RMSprop, Adagrad, Adadelta, Adam, AdamW, Adamax, Nadam)}


def serialize(optimizer) -> dict:
    """``{"module", "class_name", "config", "registered_name"}`` as Keras 3 writes an optimizer."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizers.serialize expects an Optimizer instance, got {optimizer!r}.")
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """An optimizer from ``serialize``'s dict; the class name is matched without regard to case."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise TypeError(f"expected a dict with 'class_name' and 'config' describing an optimizer, got {config!r}.")
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise TypeError(f"the 'config' of an optimizer must be a dict, got {inner!r}.")
    name = config["class_name"]
    custom = dict(custom_objects or {})
    cls = custom[name] if name in custom else lookup("optimizers", name, _OPTIMIZERS)
    return cls.from_config(dict(inner))


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
    "Optimizer", "SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax", "Nadam",
    "schedules", "get", "serialize", "deserialize",
]
