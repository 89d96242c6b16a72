"""``model_from_json``: the model a JSON string from ``to_json`` (gpu_dl's or Keras 3's) describes.

The string is read as a config, never as code, with the limits a ``.keras``
file's ``config.json`` is read under (its size and depth); names resolve as in
``load_model``: gpu_dl's catalogues, the registry, the active
``custom_object_scope`` and ``custom_objects``. As in Keras, the model comes
back with new weights, built where the config says how, and compiled when it
holds compile settings.
"""
from __future__ import annotations

import json

from ..catalogue import checked_custom_objects
from .keras_config import compile_from_config, model_from_config
from .saving import _MAX_JSON_BYTES, _MAX_JSON_DEPTH, _json_depth


def model_from_json(json_string, custom_objects=None):
    """A Sequential or functional model from a JSON config string (``model.to_json()``)."""
    if isinstance(json_string, (bytes, bytearray)):
        try:
            json_string = json_string.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"model_from_json: `json_string` is not UTF-8 text ({e}).") from None
    if not isinstance(json_string, str):
        raise TypeError(f"model_from_json: `json_string` must be a JSON string (from model.to_json()), got "
                        f"{type(json_string).__name__}.")
    if len(json_string) > _MAX_JSON_BYTES:
        raise ValueError(f"model_from_json: `json_string` is {len(json_string)} characters, more than the "
                         f"{_MAX_JSON_BYTES} gpu_dl reads for a model config.")
    custom_objects = checked_custom_objects(custom_objects, "model_from_json: custom_objects")
    too_deep = ValueError(f"model_from_json: `json_string` nests lists and objects more than {_MAX_JSON_DEPTH} "
                          "levels deep; it is not a model config.")
    try:
        config = json.loads(json_string)
    except ValueError as e:
        raise ValueError(f"model_from_json: `json_string` is not valid JSON ({e}).") from None
    except RecursionError:
        raise too_deep from None
    if _json_depth(config, _MAX_JSON_DEPTH) > _MAX_JSON_DEPTH:
        raise too_deep
    where = "model_from_json(json_string)"
    model = model_from_config(config, where, custom_objects)
    if isinstance(config, dict) and config.get("compile_config"):
        compile_from_config(model, config["compile_config"], where, custom_objects)
    return model
