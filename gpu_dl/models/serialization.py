"""Keras 3's ``serialize_keras_object`` / ``deserialize_keras_object`` for what gpu_dl can write down.

An object becomes the dict Keras 3.15 writes for it: ``{"module",
"class_name", "config", "registered_name"}`` (layers with ``build_config``
once built, models in their ``config.json`` form with the compile settings),
functions and activations as ``{"module": "builtins", "class_name":
"function", "config": name, "registered_name": "function"}``, NumPy arrays as
``__numpy__`` entries and NumPy scalars as Python numbers; lists, tuples and
dicts are walked. The objects are gpu_dl's layers, models, losses, metrics,
optimizers, learning-rate schedules, initializers, regularizers, constraints
and activations, and the caller's subclasses of them (by registered name).

Reading resolves a class or function only by name: among the objects of
``custom_objects``, the active ``custom_object_scope`` and the registry
(``register_keras_serializable``), then in gpu_dl's own catalogues, chosen by
the ``module`` the dict gives (``keras.layers``, ``keras.losses``, ...). A
module outside Keras and gpu_dl is never imported: a class it names that is
not among the custom objects is a ValueError. As in Keras, a plain string
comes back as it is (or as the custom object of that name), a list as a list
of what its items describe, and a dict without ``class_name`` and ``config``
key by key. A ``DTypePolicy`` comes back as its dtype name (gpu_dl keeps dtypes
as names).
"""
from __future__ import annotations

import inspect
import types

import numpy

from ..catalogue import checked_custom_objects, custom_object_scope, scoped_custom_objects



# ------------------------------------------------------------ write
def serialize_keras_object(obj):
    """``obj`` in Keras 3's serialised form (see the module docstring); a TypeError for what gpu_dl cannot write."""
    from .. import activations, constraints, initializers, losses, metrics, optimizers, regularizers
    from ..layers.base import Layer
    from ..optimizers import schedules
    from .keras_config import _jsonable, _layer_entry, function_entry
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, numpy.generic):
        return obj.item()
    if isinstance(obj, numpy.ndarray) or type(obj).__module__.startswith("cupy"):
        from ..backend import to_numpy
        array = numpy.asarray(to_numpy(obj))
        return {"class_name": "__numpy__", "config": {"value": array.tolist(), "dtype": array.dtype.name}}
    if isinstance(obj, list):
        return [serialize_keras_object(item) for item in obj]
    if isinstance(obj, tuple):
        return tuple(serialize_keras_object(item) for item in obj)
    if isinstance(obj, dict):
        return {key: serialize_keras_object(value) for key, value in obj.items()}
    if isinstance(obj, Layer):
        return _layer_entry(obj)
    where = f"serialize_keras_object({type(obj).__name__})"
    for kind, module in ((losses.Loss, losses), (metrics.Metric, metrics), (optimizers.Optimizer, optimizers),
                         (schedules.LearningRateSchedule, schedules), (initializers.Initializer, initializers),
                         (regularizers.Regularizer, regularizers), (constraints.Constraint, constraints)):
        if isinstance(obj, kind):
            return _jsonable(module.serialize(obj), where, functions=True)
    if isinstance(obj, activations.TracedActivation):
        return activations.serialize(obj)       # a function of the caller's: its entry by registered name
    if isinstance(obj, activations.ActivationFunction) or (callable(obj) and obj in activations._PUBLIC):
        return {"module": "builtins", "class_name": "function", "config": activations.serialize(obj),
                "registered_name": "function"}
    if isinstance(obj, types.FunctionType):
        return function_entry(obj, where)
    raise TypeError(f"serialize_keras_object: cannot serialize {obj!r:.200} of type {type(obj).__name__}; gpu_dl "
                    "writes its layers, models, losses, metrics, optimizers, schedules, initializers, regularizers, "
                    "constraints, activations, named functions, NumPy arrays and plain values.")


# ------------------------------------------------------------ read
def _custom(custom_objects):
    """Keras's merge: the given objects, then the scope's, then the registered ones (later ones win)."""
    from ..catalogue import get_custom_objects
    return {**custom_objects, **scoped_custom_objects(), **get_custom_objects()}


def _builtin_function(name):
    from .. import activations
    from .keras_config import _builtin_functions
    for fn, public in activations._PUBLIC.items():
        if public == name:
            return fn
    return _builtin_functions().get(name)


def _kind(module, cls):
    """Which catalogue a dict belongs to: by the class found among the custom objects, else by its module."""
    from .. import constraints, initializers, losses, metrics, optimizers, regularizers
    from ..layers.base import Layer
    from ..optimizers import schedules
    if cls is not None:
        for kind, base in (("layer", Layer), ("loss", losses.Loss), ("metric", metrics.Metric),
                           ("schedule", schedules.LearningRateSchedule), ("optimizer", optimizers.Optimizer),
                           ("initializer", initializers.Initializer), ("regularizer", regularizers.Regularizer),
                           ("constraint", constraints.Constraint)):
            if inspect.isclass(cls) and issubclass(cls, base):
                return kind
        return None
    module = module or ""
    for part, kind in (("schedules", "schedule"), ("optimizers", "optimizer"), ("layers", "layer"),
                       ("losses", "loss"), ("metrics", "metric"), ("initializers", "initializer"),
                       ("regularizers", "regularizer"), ("constraints", "constraint"), ("models", "model")):
        if part in module.split("."):
            return kind
    return None


def _from_dict(config, custom_objects, where):
    from .. import constraints, initializers, losses, metrics, optimizers, regularizers
    from ..optimizers import schedules
    from .keras_config import (CustomObjects, _check_module, _decode, _decode_array, _layer_from_entry,
                               compile_from_config, is_model_entry, model_from_config)
    class_name, inner = config["class_name"], config["config"]
    if class_name == "__numpy__" or class_name == "__tensor__":
        return _decode_array(class_name, inner, where)
    if class_name == "__tuple__":
        value = inner.get("value") if isinstance(inner, dict) else None
        if not isinstance(value, list):
            raise ValueError(f"{where}: a '__tuple__' entry needs config {{'value': [...]}}, got {inner!r:.200}.")
        return tuple(_deserialize(v, custom_objects, where) for v in value)
    if class_name in ("DTypePolicy", "FloatDTypePolicy"):
        return inner.get("name") if isinstance(inner, dict) else inner
    custom = _custom(custom_objects)
    if class_name == "function":
        for key in (inner, config.get("registered_name")):
            if isinstance(key, str) and key in custom:
                return custom[key]
        found = _builtin_function(inner) if isinstance(inner, str) else None
        if found is None:
            raise ValueError(f"{where}: the function {inner!r} is neither one of gpu_dl's activations, losses or "
                             "metrics nor given in custom_objects, a custom_object_scope or the registry "
                             "(register_keras_serializable); nothing is imported from a config.")
        return found
    cls = None
    for key in (config.get("registered_name"), class_name):
        if isinstance(key, str) and key in custom:
            cls = custom[key]
            break
    if cls is None and is_model_entry(config):
        _check_module(config, where, CustomObjects(custom_objects))
        model = model_from_config(config, where, custom_objects)
        if config.get("compile_config"):
            compile_from_config(model, config["compile_config"], where, custom_objects)
        return model
    module = config.get("module")
    if cls is None:
        _check_module(config, where, CustomObjects(custom_objects))
    kind = _kind(module, cls)
    if kind == "layer":
        holder = CustomObjects(custom_objects)
        return _layer_from_entry(_decode(config, where, holder), where, holder)
    if kind is None:
        if cls is not None and hasattr(cls, "from_config"):
            return cls.from_config(dict(inner or {}))
        raise ValueError(f"{where}: cannot tell what {class_name!r} (module {module!r}) is; gpu_dl deserializes its "
                         "layers, models, losses, metrics, optimizers, schedules, initializers, regularizers and "
                         "constraints, and the classes given in custom_objects or registered.")
    table = {"loss": losses.deserialize, "metric": metrics.deserialize, "optimizer": optimizers.deserialize,
             "schedule": schedules.deserialize, "initializer": initializers.deserialize,
             "regularizer": regularizers.deserialize, "constraint": constraints.deserialize}
    # The catalogues look custom classes up through the scope: the given objects join it for this call.
    with custom_object_scope({**scoped_custom_objects(), **custom_objects}):
        return table[kind](dict(config, config=_decode(inner, where) if inner is not None else {}))


def _deserialize(config, custom_objects, where):
    if config is None:
        return None
    if isinstance(config, str):
        found = _custom(custom_objects).get(config)
        return found if found is not None else config
    if isinstance(config, (list, tuple)):
        return [_deserialize(item, custom_objects, where) for item in config]
    if isinstance(config, (bool, int, float)):
        return config
    if not isinstance(config, dict):
        raise TypeError(f"{where}: could not parse config {config!r:.200}.")
    if "class_name" not in config or "config" not in config:
        return {key: _deserialize(value, custom_objects, where) for key, value in config.items()}
    if not isinstance(config["class_name"], str):
        raise ValueError(f"{where}: 'class_name' must be a string, got {config['class_name']!r:.200}.")
    return _from_dict(config, custom_objects, where)


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object a ``serialize_keras_object`` dict (gpu_dl's or Keras 3's) describes; see the module docstring.
    ``safe_mode`` is accepted for Keras compatibility: nothing in a config is ever run or imported."""
    if kwargs:
        raise TypeError(f"deserialize_keras_object() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}.")
    custom_objects = checked_custom_objects(custom_objects, "deserialize_keras_object: custom_objects")
    return _deserialize(config, custom_objects, "deserialize_keras_object(config)")
