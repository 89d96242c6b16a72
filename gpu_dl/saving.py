"""Keras 3's ``keras.saving``: saving and loading whole models and weights, and the registry of the
caller's own classes and functions.

``@register_keras_serializable(package="Custom", name=None)`` registers a class
or function under ``"package>name"``: a model saved with it names it so, and
``load_model`` finds it again without ``custom_objects``; so it does the
objects given to ``custom_object_scope`` (``CustomObjectScope``) inside its
``with`` block. Loading looks names up in gpu_dl's catalogues, this registry,
the active scope and ``custom_objects``; it never imports a module or runs
code a file names. ``serialize_keras_object`` / ``deserialize_keras_object`` write and read one object in
Keras 3's dict form under the same rules. ``KerasFileEditor`` inspects and edits the weights of a saved file.
"""
from __future__ import annotations

from .catalogue import (CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name,
                        get_registered_object, register_keras_serializable)
from .models.file_editor import KerasFileEditor
from .models.saving import load_model, load_weights, save_model, save_weights
from .models.serialization import deserialize_keras_object, serialize_keras_object

__all__ = ["CustomObjectScope", "KerasFileEditor", "custom_object_scope", "get_custom_objects",
           "get_registered_name", "get_registered_object", "deserialize_keras_object", "load_model", "load_weights",
           "register_keras_serializable", "save_model", "save_weights", "serialize_keras_object"]
