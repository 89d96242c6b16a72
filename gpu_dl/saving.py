"""Keras 3's ``keras.saving``: saving and loading whole models and weights, and the registry of the
caller's own classes and functions.

``@register_keras_serializable(package="Custom", name=None)`` registers a class
or function under ``"package>name"``: a model saved with it names it so, and
``load_model`` finds it again without ``custom_objects``. Loading looks names
up in gpu_dl's catalogues, ``custom_objects`` and this registry; it never
imports a module or runs code a file names.
"""
from __future__ import annotations

from .catalogue import get_custom_objects, get_registered_name, get_registered_object, register_keras_serializable
from .models.saving import load_model, load_weights, save_model, save_weights

__all__ = ["get_custom_objects", "get_registered_name", "get_registered_object", "load_model", "load_weights",
           "register_keras_serializable", "save_model", "save_weights"]
