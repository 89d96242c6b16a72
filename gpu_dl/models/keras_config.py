"""The model as Keras 3's ``config.json`` describes it: writing it, and reading it back into gpu_dl objects.

The file is ``{"module": "keras", "class_name": "Sequential", "config":
{"name", "trainable", "dtype", "layers": [...], "build_input_shape"},
"registered_name": null, "build_config": {"input_shape"}, "compile_config":
{"optimizer", "loss", "metrics", ...}}``, each layer as ``{"module":
"keras.layers", "class_name", "config", "registered_name", "build_config"}``.
Keras writes tuples as ``{"class_name": "__tuple__", "config": {"value": [...]}}``
and dtypes as ``DTypePolicy`` objects; both are unwrapped on reading.

Reading executes nothing from the file. Class names are looked up in gpu_dl's
own layer, optimizer, loss and metric catalogues; a ``module`` outside Keras or
gpu_dl, an unknown class, or a config key the class does not take is a
ValueError.
"""
from __future__ import annotations

import inspect
import numbers
import warnings

import numpy

# Keras config keys gpu_dl has no use for, with the values that change nothing
# (None: any value is harmless).
_HARMLESS_KEYS = {
    "sparse": (False, None),
    "ragged": (False, None),
    "optional": (False, None),
    "input_tensor": (None,),
    "quantization_config": (None,),
    "lora_rank": (None,),
    "lora_alpha": (None,),
}
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy")


# ------------------------------------------------------------ config: write
def _dtype_policy(name):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def _jsonable(value, where):
    """``value`` with tuples as lists and NumPy scalars as Python numbers; a ValueError for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, numpy.ndarray) and value.ndim == 0:
        return _jsonable(value.item(), where)
    raise ValueError(f"{where}: {value!r} (type {type(value).__name__}) cannot be written to a config file; "
                     "only numbers, strings, lists and dicts can.")


def _layer_entry(layer):
    from ..layers.core import InputLayer
    from ..layers.recurrent import Bidirectional
    where = f"layer '{layer.name}' ({type(layer).__name__})"
    if isinstance(layer, InputLayer):
        config = {"batch_shape": [layer.batch_size] + list(layer.shape), "dtype": layer.dtype, "sparse": False,
                  "ragged": False, "name": layer.name, "optional": False}
        return {"module": "keras.layers", "class_name": "InputLayer", "config": config, "registered_name": None}
    config = dict(layer.get_config())
    if isinstance(config.get("dtype"), str):
        config["dtype"] = _dtype_policy(config["dtype"])
    if isinstance(layer, Bidirectional):
        # Keras writes both wrapped layers in full.
        forward = _layer_entry(layer.forward_layer)
        forward["config"]["name"] = "forward_" + layer.forward_layer.name[len("forward_"):]
        config["layer"] = forward
        config["backward_layer"] = _layer_entry(layer.backward_layer)
    builtin = _layer_classes().get(type(layer).__name__) is type(layer)
    entry = {"module": "keras.layers" if builtin else type(layer).__module__, "class_name": type(layer).__name__,
             "config": _jsonable(config, where), "registered_name": None if builtin else type(layer).__name__}
    if layer.built and layer.input_spec is not None:
        entry["build_config"] = {"input_shape": _jsonable(layer.input_spec, where)}
    return entry


def _compile_config(model):
    from .. import losses as losses_module, metrics as metrics_module, optimizers
    if not model.compiled:
        return None
    optimizer = _jsonable(optimizers.serialize(model.optimizer), f"optimizer '{model.optimizer.name}'")
    try:
        loss = _jsonable(losses_module.serialize(model.loss), f"loss '{model.loss.name}'")
    except (TypeError, ValueError) as e:
        warnings.warn(f"Model '{model.name}': the loss {model.loss!r} cannot be written down ({e}); the file is "
                      "saved without its compile settings, so load_model() gives an uncompiled model.", stacklevel=4)
        return None
    metrics = []
    for identifier in model._metric_identifiers:
        try:
            if isinstance(identifier, str):
                metrics.append(identifier)
            elif isinstance(identifier, metrics_module.Metric):
                metrics.append(_jsonable(metrics_module.serialize(identifier), f"metric '{identifier.name}'"))
            elif callable(identifier) and getattr(identifier, "__module__", None) == metrics_module.__name__:
                metrics.append(identifier.__name__)
            else:
                raise ValueError("only metric names, gpu_dl Metric objects and gpu_dl.metrics functions are written")
        except (TypeError, ValueError) as e:
            warnings.warn(f"Model '{model.name}': the metric {identifier!r} cannot be written down ({e}); it is "
                          "left out of the saved compile settings.", stacklevel=4)
    return {"optimizer": optimizer, "loss": loss, "loss_weights": None, "metrics": metrics or None,
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def model_config(model):
    """The model in Keras 3's serialised form (the content of ``config.json``)."""
    from .sequential import Sequential
    if not isinstance(model, Sequential):
        raise TypeError(f"Only Sequential models can be saved, got {type(model).__name__}.")
    layers = []
    if model.input_spec is not None:
        from ..layers.core import InputLayer
        layers.append(_layer_entry(model._input_layer or InputLayer(shape=model.input_spec[1:], dtype=model.dtype,
                                                                    name="input_layer")))
    layers += [_layer_entry(layer) for layer in model.layers]
    inner = {"name": model.name, "trainable": model.trainable, "dtype": _dtype_policy(model.dtype), "layers": layers}
    config = {"module": "keras", "class_name": "Sequential", "config": inner, "registered_name": None}
    if model.built and model.input_spec is not None:
        shape = _jsonable(model.input_spec, "model input shape")
        inner["build_input_shape"] = shape
        config["build_config"] = {"input_shape": shape}
    compile_config = _compile_config(model)
    if compile_config is not None:
        config["compile_config"] = compile_config
    return config


# ------------------------------------------------------------- config: read
def _layer_classes():
    from .. import layers
    table = {}
    for name in layers.__all__:
        obj = getattr(layers, name)
        if isinstance(obj, type) and issubclass(obj, layers.Layer) and obj is not layers.Layer:
            table.setdefault(obj.__name__, obj)
            table.setdefault(name, obj)
    return table


def _check_module(entry, where):
    module = entry.get("module")
    if module is None:
        return
    if not isinstance(module, str) or not (module in ("keras", "gpu_dl") or module.startswith(("keras.", "gpu_dl."))):
        raise ValueError(f"{where}: {entry.get('class_name')!r} names the module {module!r}. Only Keras's and "
                         "gpu_dl's own classes are read from a saved file; nothing is imported from it.")


def _decode_array(name, inner, where):
    """A Keras ``__numpy__``/``__tensor__`` entry ({"value": nested lists, "dtype": name}) as a NumPy array."""
    message = (f"{where}: a {name!r} entry needs config {{'value': [...], 'dtype': '<numeric dtype>'}} with numbers "
               f"only, got {inner!r:.200}.")
    if not isinstance(inner, dict) or not isinstance(inner.get("dtype"), str):
        raise ValueError(message)
    try:
        dtype = numpy.dtype(inner["dtype"])
    except TypeError:
        raise ValueError(message) from None
    if dtype.kind not in "biuf":
        raise ValueError(message)
    try:
        array = numpy.asarray(inner.get("value"), dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    return array


def _decode(value, where):
    """A config from JSON: tuples and dtype policies unwrapped, modules checked, Keras's object ids dropped."""
    if isinstance(value, list):
        return [_decode(v, where) for v in value]
    if not isinstance(value, dict):
        return value
    name = value.get("class_name")
    if isinstance(name, str) and "config" in value:
        _check_module(value, where)
        if name == "__tuple__":
            inner = value["config"]
            if not isinstance(inner, dict) or not isinstance(inner.get("value"), list):
                raise ValueError(f"{where}: a '__tuple__' entry needs config {{'value': [...]}}, got {inner!r}.")
            return tuple(_decode(v, where) for v in inner["value"])
        if name in ("__numpy__", "__tensor__"):
            # Keras writes an array argument (Rescaling's per-channel scale, say) as its values and dtype: data,
            # read back as a NumPy array when the dtype is numeric.
            return _decode_array(name, value["config"], where)
        if name.startswith("__"):
            raise ValueError(f"{where}: an entry of type {name!r} is not read (saved code and raw bytes "
                             "are refused).")
        if name in _DTYPE_POLICIES:
            inner = value["config"]
            policy = inner.get("name") if isinstance(inner, dict) else None
            if not isinstance(policy, str):
                raise ValueError(f"{where}: a {name} needs config {{'name': '<dtype>'}}, got {inner!r}.")
            return policy
    return {k: _decode(v, where) for k, v in value.items() if k != "shared_object_id"}


def _accepted_keys(cls):
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` up to ``Layer``."""
    from ..layers.base import Layer
    keys = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        keys |= {p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if klass is Layer or not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return keys


def _as_shape(value, where, what):
    if not isinstance(value, (list, tuple)) or not all(d is None or (isinstance(d, int) and not isinstance(d, bool))
                                                        for d in value):
        raise ValueError(f"{where}: `{what}` must be a list of integers or nulls, got {value!r}.")
    return tuple(value)


def _layer_from_entry(entry, where, custom_objects=None):
    """A gpu_dl layer from one Keras layer entry (already decoded)."""
    from ..layers.core import InputLayer
    from ..layers.recurrent import Bidirectional
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError(f"{where}: a layer entry must be a dict with a 'class_name' string, got {entry!r}.")
    class_name = entry["class_name"]
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the 'config' of layer class {class_name!r} must be a dict, got {config!r}.")
    name = config.get("name")
    where = f"{where}, layer {name!r} ({class_name})" if name else f"{where}, layer {class_name}"
    table = dict(_layer_classes())
    table.update(custom_objects or {})
    cls = table.get(class_name)
    if cls is None:
        raise ValueError(f"{where}: unknown layer class {class_name!r}. gpu_dl rebuilds only its own layers: "
                         f"{', '.join(sorted(n for n, c in _layer_classes().items() if n == c.__name__))}.")
    config = dict(config)
    for key, harmless in _HARMLESS_KEYS.items():
        if key in config:
            value = config.pop(key)
            if harmless is not None and value not in harmless:
                raise ValueError(f"{where}: `{key}={value!r}` is not supported by gpu_dl "
                                 f"(it supports only {' or '.join(map(repr, harmless))}).")
    if cls is InputLayer:
        if "batch_shape" in config or "batch_input_shape" in config:
            shape = _as_shape(config.pop("batch_shape", None) or config.pop("batch_input_shape"), where, "batch_shape")
            if not shape:
                raise ValueError(f"{where}: `batch_shape` needs a batch axis and at least one more, got {list(shape)}.")
            config["batch_size"], config["shape"] = shape[0], shape[1:]
        elif "shape" in config:
            config["shape"] = _as_shape(config["shape"], where, "shape")
    elif cls is Bidirectional or issubclass(cls, Bidirectional):
        inner = config.get("layer")
        if not isinstance(inner, dict):
            raise ValueError(f"{where}: Bidirectional needs the wrapped layer as a config dict under 'layer'.")
        inner = dict(inner, config=dict(inner.get("config") or {}))
        inner_name = inner["config"].get("name")
        if isinstance(inner_name, str) and inner_name.startswith("forward_"):
            inner["config"]["name"] = inner_name[len("forward_"):]
        config["layer"] = _layer_from_entry(inner, where, custom_objects)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _layer_from_entry(config["backward_layer"], where, custom_objects)
        else:
            config.pop("backward_layer", None)
    unknown = sorted(set(config) - _accepted_keys(cls))
    if unknown:
        raise ValueError(f"{where}: the config key(s) {', '.join(repr(k) for k in unknown)} "
                         f"({', '.join(f'{k}={config[k]!r}' for k in unknown)}) are not supported by gpu_dl's "
                         f"{cls.__name__}.")
    try:
        if cls is Bidirectional or issubclass(cls, Bidirectional):
            return cls(config.pop("layer"), **config)
        return cls.from_config(config)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"{where}: cannot be rebuilt from its config: {e}") from e


def model_from_config(config, where="model config", custom_objects=None):
    """A ``Sequential`` from Keras 3's serialised form (``config.json``), built if the form says how; uncompiled."""
    from .sequential import Sequential
    if not isinstance(config, dict):
        raise ValueError(f"{where}: expected a JSON object with 'class_name' and 'config', got {type(config).__name__}.")
    config = _decode({k: v for k, v in config.items() if k != "compile_config"}, where)
    class_name = config.get("class_name")
    if class_name in ("Functional", "Model"):
        raise ValueError(f"{where}: the model is a functional {class_name} model; gpu_dl rebuilds Sequential "
                         "models only.")
    if class_name != "Sequential":
        raise ValueError(f"{where}: unknown model class {class_name!r}; gpu_dl rebuilds Sequential models only.")
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise ValueError(f"{where}: a Sequential config needs a 'config' object with a 'layers' list.")
    try:
        model = Sequential(name=inner.get("name"), trainable=inner.get("trainable", True))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from e
    for i, entry in enumerate(inner["layers"]):
        layer = _layer_from_entry(entry, f"{where}, layers[{i}]", custom_objects)
        try:
            model.add(layer)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}, layers[{i}] ('{layer.name}'): {e}") from e
    shape = (config.get("build_config") or {}).get("input_shape") or inner.get("build_input_shape")
    if not model.built and shape is not None and model.layers:
        try:
            model.build(_as_shape(shape, where, "build_config.input_shape"))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: cannot build the model for input shape {shape}: {e}") from e
    return model


def compile_from_config(model, compile_config, where):
    from .. import losses as losses_module, metrics as metrics_module, optimizers
    if not isinstance(compile_config, dict):
        raise ValueError(f"{where}: 'compile_config' must be an object, got {compile_config!r}.")
    cc = _decode(compile_config, f"{where} (compile_config)")
    try:
        optimizer = optimizers.get(cc.get("optimizer") or "rmsprop")
    except (TypeError, ValueError, KeyError, NotImplementedError) as e:
        raise ValueError(f"{where}: compile_config.optimizer cannot be rebuilt: {e}") from e
    try:
        loss = losses_module.get(cc.get("loss"))
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{where}: compile_config.loss cannot be rebuilt: {e}") from e
    metrics = cc.get("metrics")
    if isinstance(metrics, (list, tuple)):
        rebuilt = []
        for m in metrics:
            try:
                rebuilt.append(metrics_module.deserialize(m) if isinstance(m, dict) else m)
            except (TypeError, ValueError, KeyError) as e:
                raise ValueError(f"{where}: compile_config.metrics entry {m!r} cannot be rebuilt: {e}") from e
        metrics = rebuilt
    for key in ("loss_weights", "weighted_metrics"):
        if cc.get(key) is not None:
            raise ValueError(f"{where}: compile_config.{key} = {cc[key]!r} applies to models with several outputs; "
                             "gpu_dl's Sequential has one.")
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: the model cannot be compiled from compile_config: {e}") from e
