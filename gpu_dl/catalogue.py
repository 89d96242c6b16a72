"""Name lookup shared by the Keras catalogues (losses, optimizers, activations, ...).

Each catalogue keeps a dict from lower-case name to object; ``lookup`` turns a
user's string into the entry, or raises a ``ValueError`` that names what was
asked for, suggests the nearest names and lists the rest.

The registry of the caller's own classes and functions lives here too
(``register_keras_serializable``, as Keras's): saving writes them under their
registered name, and loading finds them by it, as it finds the entries of a
``custom_objects`` dict or of the ``custom_object_scope`` a load runs in.
Nothing is ever imported by a name read from a file.
"""
from __future__ import annotations

import difflib
import inspect
import re
import threading


def snake_case(name: str) -> str:
    """'MeanSquaredError' -> 'mean_squared_error', as Keras serialises class names."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def keras_snake_case(name: str) -> str:
    """Keras 3's ``to_snake_case``, which names layers and weight groups: 'Conv2D' -> 'conv2d',
    'MaxPooling2D' -> 'max_pooling2d' (``snake_case`` would give 'conv2_d')."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_class_name(cls) -> str:
    """The ``class_name`` Keras's configs give a class: the name Keras registers it under where that differs
    from the class's own (``GroupedQueryAttention`` is registered as ``GroupQueryAttention``), set as the
    class's ``keras_export_name`` (not inherited: a user's subclass is written under its own name)."""
    return cls.__dict__.get("keras_export_name") or cls.__name__


def keras_class_key(cls) -> str:
    """The snake-cased name of the Keras class ``cls`` stands for, from which Keras derives a layer's default
    name and its weights file group: the class's own name, or its ``keras_class_name`` where Keras exports
    the class under another name and gpu_dl's class keeps the exported one. Only the
    class that sets it uses it: a user's subclass is named after itself, as in Keras."""
    return keras_snake_case(cls.__dict__.get("keras_class_name") or cls.__name__)


def lookup(kind: str, identifier: str, table: dict):
    """The entry of ``table`` for ``identifier``, matched without regard to case.

    ``kind`` is a plural noun for the message ("losses", "optimizers").
    """
    if not isinstance(identifier, str):
        raise TypeError(f"expected the name of one of the {kind} as a string, got {identifier!r}.")
    key = identifier.strip()
    for candidate in (key, key.lower(), snake_case(key)):
        if candidate in table:
            return table[candidate]
    known = sorted(table)
    close = difflib.get_close_matches(key.lower(), known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown name {identifier!r} among the {kind}.{hint} Known {kind}: {', '.join(known)}.")


# ------------------------------------------------------------------ registry
# Keras 3's registry: objects by their registered name ``package>name``, and the names by object.
_REGISTERED: dict = {}
_REGISTERED_NAMES: dict = {}


def register_keras_serializable(package="Custom", name=None):
    """A decorator that registers a class or function under ``"package>name"`` (``name`` defaults to its
    ``__name__``), as ``keras.saving.register_keras_serializable`` does: a saved model names it so, and
    ``load_model`` finds it without ``custom_objects``. A class must have ``get_config``."""
    if not isinstance(package, str):
        raise TypeError(f"register_keras_serializable: `package` must be a string, got {package!r}.")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"register_keras_serializable: `name` must be a string or None, got {name!r}.")

    def decorator(obj):
        if inspect.isclass(obj):
            if not hasattr(obj, "get_config"):
                raise ValueError("Cannot register a class that does not have a get_config() method.")
        elif not callable(obj) or not hasattr(obj, "__name__"):
            raise TypeError(f"register_keras_serializable registers classes and functions, got {obj!r}.")
        registered = f"{package}>{name if name is not None else obj.__name__}"
        _REGISTERED[registered] = obj
        _REGISTERED_NAMES[obj] = registered
        return obj

    return decorator


def get_registered_name(obj):
    """The name ``obj`` is registered under, or its ``__name__`` when it is not registered."""
    return _REGISTERED_NAMES.get(obj, obj.__name__)


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object the active ``custom_object_scope`` gives for ``name``, else the class or function registered
    as ``name``, else ``custom_objects[name]``, else ``module_objects[name]``, else None (Keras's order)."""
    scoped = scoped_custom_objects()
    if name in scoped:
        return scoped[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if module_objects and name in module_objects:
        return module_objects[name]
    return None


def get_custom_objects():
    """The live dict of registered objects, by registered name (a scope's objects are not in it)."""
    return _REGISTERED


def checked_custom_objects(custom_objects, what="custom_objects"):
    """``custom_objects`` (None: none) as a new dict, or a TypeError saying what it must be: the names a saved
    file uses mapped to classes or functions (or objects called like them: a Loss or Metric)."""
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict) or not all(isinstance(k, str) for k in custom_objects):
        raise TypeError(f"{what} must be a dict from the names a saved file uses (class names, 'package>name', "
                        f"function names) to classes or functions, got {custom_objects!r:.200}.")
    for key, value in custom_objects.items():
        if not callable(value):
            raise TypeError(f"{what}[{key!r}] is {value!r:.200}: give the class or function itself.")
    return dict(custom_objects)


# ------------------------------------------------------------------ custom object scope
# The objects of the innermost active scope, per thread as Keras keeps them.
_SCOPE = threading.local()


def scoped_custom_objects():
    """The objects of the ``custom_object_scope`` active in this thread (an empty dict outside any)."""
    return getattr(_SCOPE, "objects", {})


class CustomObjectScope:
    """``with custom_object_scope({"MyLayer": MyLayer}): load_model(path)``: inside the block, loading and the
    catalogues' ``deserialize`` find the given classes and functions by name, as if passed as ``custom_objects``,
    as Keras 3's ``keras.saving.custom_object_scope`` makes them.

    As in Keras 3.15: a scope's objects replace those of a scope around it until it exits (they are not merged;
    name every object the block needs); leaving the block, even by an exception, brings back what was active
    before. Where the same name is given in several places, loading takes the registered object
    (``register_keras_serializable``) first, then the scope's, then ``load_model``'s ``custom_objects``;
    ``get_registered_object`` takes the scope's first. The objects are checked when the scope is made.
    """

    def __init__(self, custom_objects=None):
        self.custom_objects = checked_custom_objects(custom_objects, "custom_object_scope: custom_objects")
        self._outer = []     # what each entry replaced: a scope object may be entered again inside itself

    def __enter__(self):
        self._outer.append(scoped_custom_objects())
        _SCOPE.objects = dict(self.custom_objects)
        return self

    def __exit__(self, *exc_info):
        _SCOPE.objects = self._outer.pop()
        return False


custom_object_scope = CustomObjectScope


def written_module(cls):
    """The ``module`` a config gives a class or function of the caller's: its Python module, or None for
    ``__main__``, as Keras writes it (a name to read, never a module to import). A gpu_dl class standing for
    one Keras defines outside its catalogues (a layer of ``keras.src.applications.convnext``) names Keras's
    module, its own ``keras_module`` (not inherited: a subclass is the caller's own)."""
    keras_module = getattr(cls, "__dict__", {}).get("keras_module")
    if isinstance(keras_module, str):
        return keras_module
    module = getattr(cls, "__module__", None)
    return None if module == "__main__" else module


def keras_config(obj, keras_module: str, builtin: bool) -> dict:
    """Keras 3's serialised form of a catalogue object: ``{"module", "class_name", "config", "registered_name"}``.

    Built-in classes are written under Keras's own module so the config loads
    in Keras too; other classes under their Python module, by their registered name.
    """
    cls = type(obj)
    return {"module": keras_module if builtin else written_module(cls), "class_name": cls.__name__,
            "config": obj.get_config(), "registered_name": None if builtin else get_registered_name(cls)}


def from_keras_config(kind: str, config, table: dict, custom_objects=None):
    """The object a ``keras_config`` dict describes; ``kind`` is the catalogue's plural noun."""
    if not isinstance(config, dict):
        raise TypeError(f"A config of one of the {kind} must be a dict with 'class_name' and 'config', got {config!r}.")
    if not isinstance(config.get("class_name"), str):
        raise ValueError(f"A config of one of the {kind} needs a 'class_name' string, got {config!r}.")
    if config["class_name"] == "function":
        return _registered_function(kind, config, custom_objects)
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"The 'config' entry of one of the {kind} must be a dict, got {inner!r}.")
    name = config["class_name"]
    registered = config.get("registered_name")
    # Keras's order: the active scope's objects, then the registry (by the registered name the config gives,
    # then by its class name), then the custom_objects given, then the catalogue's own entries.
    cls = None
    for key in ([registered] if isinstance(registered, str) else []) + [name]:
        cls = get_registered_object(key, custom_objects)
        if cls is not None:
            break
    if cls is None:
        cls = lookup(kind, name, table)
    if not hasattr(cls, "from_config"):
        raise TypeError(f"A config of one of the {kind} names {name!r}, which resolves to {cls!r:.200}; "
                        "a class with from_config was expected.")
    return cls.from_config(dict(inner))


def _registered_function(kind, config, custom_objects):
    """The function a Keras function config (``{"class_name": "function", "config": name, "registered_name":
    ...}``) names, found as a class would be; never imported from the module the config gives."""
    name, registered = config.get("config"), config.get("registered_name")
    for key in (registered, name):
        found = get_registered_object(key, custom_objects) if isinstance(key, str) else None
        if found is not None:
            return found
    raise ValueError(f"A config of one of the {kind} names the function {name!r} (registered as {registered!r}), "
                     "which is neither registered (register_keras_serializable) nor given in custom_objects or a "
                     "custom_object_scope.")
