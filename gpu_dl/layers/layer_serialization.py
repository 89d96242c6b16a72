"""Keras 3's ``keras.layers.serialize`` / ``keras.layers.deserialize``: a layer as the dict
``serialize_keras_object`` writes for it, and back.

Both go through gpu_dl's ``serialize_keras_object`` / ``deserialize_keras_object`` (``models/serialization.py``),
which sit above the layers: they are imported when called.
"""
from __future__ import annotations

from . import build_shapes
from .base import Layer, build_by_run


def serialize(layer):
    """The configuration of ``layer`` as a Python dict: ``{"module", "class_name", "config", "registered_name"}``
    (with ``build_config`` once built), as Keras 3 writes it."""
    from ..models.serialization import serialize_keras_object     # models sit above layers: import late
    return serialize_keras_object(layer)


def deserialize(config, custom_objects=None):
    """The layer a ``serialize`` dict (gpu_dl's or Keras 3's) describes; ``custom_objects`` maps names to the
    caller's classes and functions. A ValueError when the dict describes something other than a layer. As in
    Keras, a dict with a ``build_config`` gives the layer built for its ``input_shape`` (or, for a build of several
    shapes, its ``shapes_dict``)."""
    from ..models.serialization import deserialize_keras_object   # models sit above layers: import late
    obj = deserialize_keras_object(config, custom_objects=custom_objects)
    if not isinstance(obj, Layer):
        raise ValueError("`keras.layers.deserialize` was passed a `config` object that is not a "
                         f"`keras.layers.Layer`. Received: {config!r:.300}")
    build_config = config.get("build_config") if isinstance(config, dict) else None
    if build_config and not obj.built:
        obj.build_from_config(build_config)
    return obj


def build_from_config(layer, build_config):
    """``Layer.build_from_config``: build ``layer`` (unless built) for the ``input_shape`` of a build config, or
    with the shapes of its ``shapes_dict``; a ValueError naming the layer for a config with neither."""
    if layer.built:
        return
    shape = _build_shape(build_config)
    if shape is not None:
        layer.ensure_built(shape)
        return
    shapes = build_shapes.from_config(build_config)
    if shapes is not None:      # a build of several shapes, as Keras's build_from_config
        with build_by_run():
            layer.build(**shapes)
        return
    if build_config.get("input_shape") is not None or "shapes_dict" in build_config:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): build_from_config() got a build config "
                         f"without a usable shape: {build_config!r:.200} (expected {{'input_shape': [None, 4]}} or "
                         "{'shapes_dict': {'query_shape': [...], ...}}).")


def _is_shape(value):
    return isinstance(value, (list, tuple)) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in value)


def _build_shape(build_config):
    """The input shape a ``build_config`` gives (one shape, or a list of one per input), or None."""
    shape = build_config.get("input_shape") if isinstance(build_config, dict) else None
    if _is_shape(shape) and shape:
        return tuple(shape)
    if isinstance(shape, (list, tuple)) and shape and all(_is_shape(s) and s for s in shape):
        return [tuple(s) for s in shape]
    return None
