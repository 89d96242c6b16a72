"""Name lookup shared by the Keras catalogues (losses, optimizers, activations, ...).

Each catalogue keeps a dict from lower-case name to object; ``lookup`` turns a
user's string into the entry, or raises a ``ValueError`` that names what was
asked for, suggests the nearest names and lists the rest.
"""
from __future__ import annotations

import difflib
import re


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


def keras_config(obj, keras_module: str, builtin: bool) -> dict:
    """Keras 3's serialised form of a catalogue object: ``{"module", "class_name", "config", "registered_name"}``.

    Built-in classes are written under Keras's own module so the config loads
    in Keras too; other classes under their Python module, registered by name.
    """
    cls = type(obj)
    return {"module": keras_module if builtin else cls.__module__, "class_name": cls.__name__,
            "config": obj.get_config(), "registered_name": None if builtin else cls.__name__}


def from_keras_config(kind: str, config, table: dict, custom_objects=None):
    """The object a ``keras_config`` dict describes; ``kind`` is the catalogue's plural noun."""
    if not isinstance(config, dict):
        raise TypeError(f"A config of one of the {kind} must be a dict with 'class_name' and 'config', got {config!r}.")
    if not isinstance(config.get("class_name"), str):
        raise ValueError(f"A config of one of the {kind} needs a 'class_name' string, got {config!r}.")
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"The 'config' entry of one of the {kind} must be a dict, got {inner!r}.")
    name = config["class_name"]
    custom = dict(custom_objects or {})
    cls = custom[name] if name in custom else lookup(kind, name, table)
    return cls.from_config(dict(inner))
