"""Saving and loading models in Keras 3's file formats.

``model.save("m.keras")`` writes a zip archive holding

- ``metadata.json``: ``{"keras_version", "gpu_dl_version", "date_saved"}``;
- ``config.json``: the model as Keras 3 serialises it:
  ``{"module": "keras", "class_name": "Sequential", "config": {"name",
  "trainable", "dtype", "layers": [...], "build_input_shape"},
  "registered_name": null, "build_config": {"input_shape"},
  "compile_config": {"optimizer", "loss", "metrics", ...}}``, each layer as
  ``{"module": "keras.layers", "class_name", "config", "registered_name",
  "build_config"}``;
- ``model.weights.h5``: the variables in Keras 3's HDF5 layout. Each layer of
  the model has a group ``layers/<name>/vars`` whose datasets ``0``, ``1``, ...
  are its weights in ``get_weights()`` order; ``<name>`` is the snake-cased
  class name, numbered per class (``dense``, ``dense_1``, ...), as Keras names
  them, not the layer's own name. Recurrent layers keep their weights under
  ``layers/<name>/cell/vars``; ``Bidirectional`` under
  ``forward_layer/cell/vars`` and ``backward_layer/cell/vars``. The optimizer
  has ``optimizer/vars``: ``0`` iterations, ``1`` the learning rate (when it
  is a number), then the slots in Keras's order. Keras stores these scalars in
  float32; the group's attribute ``gpu_dl_scalars`` (JSON) keeps them at full
  precision so that training resumes bit for bit. Keras ignores it.

``save_weights("w.weights.h5")`` writes the same HDF5 layout as a file of its
own. ``load_model`` and ``load_weights`` read files written by gpu_dl or by
Keras 3.

Writes are atomic: the file is written under a temporary name in the target's
directory, flushed to disk, then renamed over the target, so a crash mid-save
leaves the previous file as it was.

Loading executes nothing from the file: JSON and HDF5 only, no pickle. Class
names are looked up in gpu_dl's own layer, optimizer, loss and metric
catalogues; a ``module`` outside Keras or gpu_dl, or an unknown class, is a
ValueError. HDF5 links and external or virtual datasets are refused. Every
shape is checked before any variable changes, so a failed load leaves the
model as it was.
"""
from __future__ import annotations

import datetime
import inspect
import io
import json
import numbers
import os
import re
import secrets
import warnings
import zipfile

import numpy

CONFIG_FILENAME = "config.json"
METADATA_FILENAME = "metadata.json"
WEIGHTS_FILENAME = "model.weights.h5"
# The Keras release that introduced this archive format; written as ``keras_version``.
FORMAT_KERAS_VERSION = "3.0.0"
_SCALARS_ATTR = "gpu_dl_scalars"
_MAX_JSON_BYTES = 64 * 2**20

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
    "zero_output_for_mask": None,   # only acts on masked inputs, which gpu_dl does not have
}
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy")


# ---------------------------------------------------------------- utilities
def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ImportError("Saving and loading models needs h5py: pip install 'h5py>=3'.") from None
    return h5py


def keras_snake_case(name: str) -> str:
    """Keras 3's ``to_snake_case``: 'Conv2D' -> 'conv2d', 'MaxPooling2D' -> 'max_pooling2d'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _path_string(filepath, what="filepath"):
    try:
        return os.fspath(filepath)
    except TypeError:
        raise TypeError(f"`{what}` must be a path (str or os.PathLike), got {filepath!r}.") from None


def _atomic_write(path, write):
    """Call ``write(temporary_path)``, flush the file to disk and rename it over ``path``.

    The temporary file lives in ``path``'s directory (a rename within one file
    system is atomic) and is removed if ``write`` raises.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot save to {path!r}: the directory {directory!r} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot save to {path!r}: it is a directory; give a file path.")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # Created with the usual permissions (umask applied), unlike tempfile's 0600.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_overwrite(path, overwrite):
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} already exists and overwrite=False: pass overwrite=True to replace it.")


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
        if name.startswith("__"):
            raise ValueError(f"{where}: an entry of type {name!r} is not read (saved code, tensors and raw bytes "
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


def _compile_from_config(model, compile_config, where):
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


# ------------------------------------------------------------ weights: write
def _weight_groups(model):
    """``[(h5 path, name, [Variable])]`` for every layer in Keras 3's layout (groups without variables too)."""
    used = {}
    out = []
    for layer in model.layers:
        out.extend(_layer_groups(layer, "layers/" + _unique(keras_snake_case(type(layer).__name__), used)))
    return out


def _layer_groups(layer, path):
    from ..layers.recurrent import Bidirectional, _Recurrent
    if isinstance(layer, Bidirectional):
        return ([(path, layer.name, [])] + _layer_groups(layer.forward_layer, path + "/forward_layer")
                + _layer_groups(layer.backward_layer, path + "/backward_layer"))
    if isinstance(layer, _Recurrent):
        return [(path, layer.name, []),
                (path + "/cell", keras_snake_case(type(layer).__name__) + "_cell", layer.weights)]
    return [(path, layer.name, layer.weights)]


def _write_vars(h5file, path, name, arrays):
    group = h5file.create_group("vars") if not path else h5file.require_group(path).create_group("vars")
    group.attrs["name"] = name
    for i, a in enumerate(arrays):
        group.create_dataset(str(i), data=a)
    return group


def write_weights(h5file, model):
    """Write the model's (and its optimizer's) variables into an open, empty h5py File."""
    _write_vars(h5file, "", model.name, [])
    for path, name, variables in _weight_groups(model):
        _write_vars(h5file, path, name, [v.numpy() for v in variables])
    if model.compiled and model.optimizer is not None:
        optimizer = model.optimizer
        store = {}
        optimizer.save_own_variables(store)
        group = _write_vars(h5file, "optimizer", optimizer.name,
                            [numpy.asarray(store[str(i)]) for i in range(len(store))])
        state = optimizer.state_dict([])
        group.attrs[_SCALARS_ATTR] = json.dumps({"iterations": int(state["iterations"]),
                                                 "learning_rate": state["learning_rate"],
                                                 "extra": {k: float(v) for k, v in state["extra"].items()}})


def _metadata():
    from .. import __version__
    return {"keras_version": FORMAT_KERAS_VERSION, "gpu_dl_version": __version__,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Write ``model`` to a ``.keras`` archive (see the module docstring)."""
    path = _path_string(filepath)
    if kwargs:
        raise TypeError(f"save() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}.")
    if zipped is False:
        raise ValueError("save(zipped=False) (an unzipped directory) is not supported: save to a `.keras` file.")
    if path.endswith((".h5", ".hdf5")):
        raise ValueError(f"Saving to the legacy Keras 2 HDF5 format is not supported (filepath={path}). Save to a "
                         "`.keras` file for the whole model, or use save_weights('name.weights.h5') for the weights.")
    if not path.endswith(".keras"):
        raise ValueError("Invalid filepath extension for saving. Please add a `.keras` extension for the native "
                         f"Keras format. Received: filepath={path}")
    _check_overwrite(path, overwrite)
    h5py = _h5py()
    config_json = json.dumps(model_config(model))
    metadata_json = json.dumps(_metadata())
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5file:
        write_weights(h5file, model)

    def write(tmp):
        with zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(METADATA_FILENAME, metadata_json)
            archive.writestr(CONFIG_FILENAME, config_json)
            archive.writestr(WEIGHTS_FILENAME, buffer.getbuffer())

    _atomic_write(path, write)


def save_weights(model, filepath, overwrite=True, max_shard_size=None):
    """Write the model's variables to a ``.weights.h5`` file."""
    path = _path_string(filepath)
    if max_shard_size is not None:
        raise ValueError("save_weights(max_shard_size=...) (sharded weights) is not supported.")
    if not path.endswith(".weights.h5"):
        raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={path}")
    if not model.built:
        raise ValueError("You are saving a model that has not yet been built. Try building the model first by "
                         "calling it on some data or by using `build()`.")
    _check_overwrite(path, overwrite)
    h5py = _h5py()

    def write(tmp):
        with h5py.File(tmp, "w") as h5file:
            write_weights(h5file, model)

    _atomic_write(path, write)


# ------------------------------------------------------------- weights: read
def _child(h5py, group, key, kind, where):
    """``group[key]`` if it is a plain group/dataset (``kind``), None if absent; links and external data refused."""
    link = group.get(key, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise ValueError(f"{where}: '{key}' is a {type(link).__name__}; only plain groups and datasets are read.")
    obj = group[key]
    if kind == "group" and not isinstance(obj, h5py.Group):
        raise ValueError(f"{where}: '{key}' should be a group, found a {type(obj).__name__}.")
    if kind == "dataset":
        if not isinstance(obj, h5py.Dataset):
            raise ValueError(f"{where}: '{key}' should be a dataset (an array), found a {type(obj).__name__}.")
        if obj.is_virtual or obj.external:
            raise ValueError(f"{where}: '{key}' keeps its data outside the file; only data stored in the file is read.")
    return obj


def _vars_group(h5py, h5file, path, source):
    """The ``<path>/vars`` group, or None if the file has none."""
    node = h5file
    for part in [p for p in path.split("/") if p] + ["vars"]:
        node = _child(h5py, node, part, "group", f"{source}: entry '{path}'")
        if node is None:
            return None
    return node


def _read_arrays(h5py, group, entry, source):
    """The datasets '0', '1', ... of a vars group as host arrays; a ValueError if the keys are not that."""
    keys = list(group.keys())
    expected = [str(i) for i in range(len(keys))]
    if sorted(keys, key=lambda k: (len(k), k)) != expected:
        raise ValueError(f"{source}: entry '{entry}' should hold datasets named 0..{len(keys) - 1}, "
                         f"found {sorted(keys)}.")
    arrays = []
    for key in expected:
        ds = _child(h5py, group, key, "dataset", f"{source}: entry '{entry}'")
        if ds.dtype.kind not in "fiub":
            raise ValueError(f"{source}: entry '{entry}/{key}' has dtype {ds.dtype}, not a number type gpu_dl reads.")
        arrays.append(numpy.asarray(ds[()]))
    return arrays


def _check_weights_file(h5py, h5file, source):
    if "layers" in h5file or "vars" in h5file:
        return
    if "model_weights" in h5file or "layer_names" in h5file.attrs:
        raise ValueError(f"{source} is a legacy Keras 2 HDF5 file; gpu_dl reads Keras 3's `.keras` and "
                         "`.weights.h5` files only. Load it in Keras and save it again as `.keras`.")
    raise ValueError(f"{source} is an HDF5 file, but not Keras 3 weights: it has no 'layers' or 'vars' group "
                     f"(its top-level entries: {sorted(h5file.keys())[:10]}).")


def _stage_model_weights(h5py, h5file, model, source, skip_mismatch=False):
    """``[(Variable, array)]`` for every weight of ``model``, checked against the file; nothing is assigned."""
    _check_weights_file(h5py, h5file, source)
    staged = []
    groups = _weight_groups(model)
    for path, name, variables in groups:
        entry = f"{path}/vars"
        group = _vars_group(h5py, h5file, path, source)
        if not variables:
            if group is not None and len(group.keys()):
                problem = (f"{source}: entry '{entry}' holds {len(group.keys())} array(s), but layer '{name}' "
                           "has no weights.")
                if not skip_mismatch:
                    raise ValueError(problem)
                warnings.warn(problem + " Skipped.", stacklevel=4)
            continue
        shapes = [v.shape for v in variables]
        if group is None:
            problem = (f"{source}: no entry '{entry}' for layer '{name}', which has {len(variables)} weight(s) "
                       f"of shapes {shapes}. The file was saved from a different model.")
            if not skip_mismatch:
                raise ValueError(problem)
            warnings.warn(problem + " Skipped.", stacklevel=4)
            continue
        arrays = _read_arrays(h5py, group, entry, source)
        found = [tuple(a.shape) for a in arrays]
        if found != shapes:
            problem = (f"{source}: entry '{entry}' holds arrays of shapes {found}, but layer '{name}' has weights "
                       f"of shapes {shapes} ({', '.join(v.name for v in variables)}).")
            if not skip_mismatch:
                raise ValueError(problem)
            warnings.warn(problem + " Skipped.", stacklevel=4)
            continue
        staged.extend(zip(variables, arrays))
    known = {path.split("/")[1] for path, _, _ in groups}
    layers_group = _child(h5py, h5file, "layers", "group", source)
    if layers_group is not None:
        extra = [k for k in layers_group.keys() if k not in known and _has_arrays(layers_group[k])]
        if extra:
            problem = (f"{source}: the file has weights for layer entries {sorted(extra)} that this model "
                       f"(layers {[g[0].split('/')[1] for g in groups if g[0].count('/') == 1]}) does not have.")
            if not skip_mismatch:
                raise ValueError(problem)
            warnings.warn(problem + " Skipped.", stacklevel=4)
    return staged


def _has_arrays(group):
    found = []
    group.visititems(lambda name, obj: found.append(name) if hasattr(obj, "shape") else None)
    return bool(found)


def _stage_optimizer(h5py, h5file, model, source, strict):
    """A function that restores the optimizer's state from the file, or None when there is none to restore.

    Everything is checked here; the returned function only assigns.
    """
    optimizer = model.optimizer
    if not model.compiled or optimizer is None:
        return None
    group = _vars_group(h5py, h5file, "optimizer", source)
    if group is None:
        return None
    arrays = _read_arrays(h5py, group, "optimizer/vars", source)
    found = [tuple(a.shape) for a in arrays]
    current = {}
    optimizer.save_own_variables(current)
    current_shapes = [tuple(numpy.shape(current[str(i)])) for i in range(len(current))]
    build = False
    if found != current_shapes:
        built_shapes = None
        if not optimizer.built:
            probe = type(optimizer).from_config(optimizer.get_config())
            probe.build(model.trainable_weights)
            built = {}
            probe.save_own_variables(built)
            built_shapes = [tuple(numpy.shape(built[str(i)])) for i in range(len(built))]
        if found == built_shapes:
            build = True
        else:
            problem = (f"{source}: entry 'optimizer/vars' holds {len(found)} array(s) of shapes {found}; optimizer "
                       f"'{optimizer.name}' ({type(optimizer).__name__}) of this model needs "
                       f"{built_shapes or current_shapes}. The file was saved with a different optimizer or model.")
            if strict:
                raise ValueError(problem)
            warnings.warn(problem + " The optimizer's state is not loaded.", stacklevel=4)
            return None
    scalars = None
    if _SCALARS_ATTR in group.attrs:
        try:
            scalars = json.loads(group.attrs[_SCALARS_ATTR])
            expected_extra = set(optimizer.state_dict([])["extra"])
            ok = (isinstance(scalars, dict) and scalars.get("iterations") == int(arrays[0])
                  and (scalars.get("learning_rate") is None or isinstance(scalars["learning_rate"], (int, float)))
                  and isinstance(scalars.get("extra"), dict) and set(scalars["extra"]) == expected_extra)
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise ValueError(f"{source}: entry 'optimizer/vars' has an unreadable '{_SCALARS_ATTR}' attribute.")
    store = {str(i): a for i, a in enumerate(arrays)}

    def restore():
        if build:
            optimizer.build(model.trainable_weights)
        optimizer.load_own_variables(store)
        if scalars is not None:
            optimizer.load_state_dict({"iterations": scalars["iterations"], "learning_rate": scalars["learning_rate"],
                                       "slots": {}, "extra": scalars["extra"]}, [])

    return restore


def _open_h5_file(h5py, path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}.")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file (a `.weights.h5` file is HDF5); it may be truncated or "
                         "of another format.")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: cannot read the HDF5 file ({e}); it may be truncated or damaged.") from e


def _open_archive(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such file: {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; a `.keras` file is a zip archive.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a `.keras` zip archive; it may be truncated or of another format.")
    try:
        archive = zipfile.ZipFile(path, "r")
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: cannot read the zip archive ({e}); it may be truncated or damaged.") from e
    return archive


def _read_member(archive, name, path, limit=None):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"{path}: the archive has no '{name}' (it holds {archive.namelist()[:10]}); it is not a "
                         "Keras 3 `.keras` file or it is damaged.") from None
    if limit is not None and info.file_size > limit:
        raise ValueError(f"{path}: '{name}' is {info.file_size} bytes, more than the {limit} a config may have.")
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise ValueError(f"{path}: cannot read '{name}' from the archive ({e}); it may be truncated or damaged.") from e


def _read_json(archive, name, path):
    data = _read_member(archive, name, path, limit=_MAX_JSON_BYTES)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: '{name}' is not valid JSON ({e}).") from e


def _weights_from_archive(h5py, archive, path):
    data = _read_member(archive, WEIGHTS_FILENAME, path)
    source = f"{path} ({WEIGHTS_FILENAME})"
    try:
        return h5py.File(io.BytesIO(data), "r"), source
    except OSError as e:
        raise ValueError(f"{source}: cannot read the HDF5 data ({e}); it may be truncated or damaged.") from e


def _guard_h5(source, fn):
    """Run ``fn()``, turning HDF5 read errors into ValueErrors that name ``source``."""
    try:
        return fn()
    except (OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"{source}: cannot read the HDF5 data ({e}); it may be damaged.") from e


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model a ``.keras`` file holds: architecture, weights and (with ``compile``) optimizer and its state.

    ``custom_objects`` maps layer class names to gpu_dl ``Layer`` subclasses of
    the caller's own; ``safe_mode`` is accepted for Keras compatibility (loading
    never runs code from the file).
    """
    path = _path_string(filepath)
    if path.endswith(".weights.h5"):
        raise ValueError(f"{path} holds weights only: build the model and call model.load_weights({path!r}).")
    if path.endswith((".h5", ".hdf5")):
        raise ValueError(f"{path}: the legacy Keras 2 HDF5 model format is not supported; gpu_dl reads Keras 3 "
                         "`.keras` files. Load it in Keras and save it again as `.keras`.")
    if not path.endswith(".keras"):
        raise ValueError(f"File format not supported: filepath={path}. gpu_dl (as Keras 3) loads `.keras` files "
                         "with load_model and `.weights.h5` files with model.load_weights.")
    if custom_objects is not None:
        from ..layers.base import Layer
        if not isinstance(custom_objects, dict) or not all(isinstance(c, type) and issubclass(c, Layer)
                                                           for c in custom_objects.values()):
            raise TypeError("custom_objects must map class names to gpu_dl Layer subclasses.")
    h5py = _h5py()
    with _open_archive(path) as archive:
        config = _read_json(archive, CONFIG_FILENAME, path)
        model = model_from_config(config, f"{path} ({CONFIG_FILENAME})", custom_objects)
        if compile and config.get("compile_config"):
            _compile_from_config(model, config["compile_config"], f"{path} ({CONFIG_FILENAME})")
        h5file, source = _weights_from_archive(h5py, archive, path)
        with h5file:
            staged = _guard_h5(source, lambda: _stage_model_weights(h5py, h5file, model, source))
            restore_optimizer = _guard_h5(source, lambda: _stage_optimizer(h5py, h5file, model, source, strict=True))
    for var, a in staged:
        var.assign(a)
    if restore_optimizer is not None:
        restore_optimizer()
    return model


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """Load weights (and the optimizer's state, when the file has a matching one) from ``.weights.h5`` or ``.keras``.

    All shapes are checked before anything is assigned: on an error the model
    is left as it was. With ``skip_mismatch`` layers whose weights do not fit
    are skipped with a warning.
    """
    path = _path_string(filepath)
    if kwargs:
        raise TypeError(f"load_weights() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}.")
    if path.endswith(".weights.h5"):
        kind = "h5"
    elif path.endswith(".keras"):
        kind = "keras"
    elif path.endswith((".h5", ".hdf5")):
        raise ValueError(f"{path}: legacy Keras 2 HDF5 weight files are not supported; gpu_dl reads Keras 3's "
                         "`.weights.h5` and `.keras` files.")
    else:
        raise ValueError(f"File format not supported: filepath={path}. gpu_dl (as Keras 3) loads weights from "
                         "`.weights.h5` and `.keras` files.")
    if not model.built:
        raise ValueError("You are loading weights into a model that has not yet been built. Try building the model "
                         "first by calling it on some data or by using `build()`.")
    h5py = _h5py()
    archive = None
    try:
        if kind == "keras":
            archive = _open_archive(path)
            h5file, source = _weights_from_archive(h5py, archive, path)
        else:
            h5file, source = _open_h5_file(h5py, path), path
        with h5file:
            staged = _guard_h5(source, lambda: _stage_model_weights(h5py, h5file, model, source, skip_mismatch))
            restore_optimizer = _guard_h5(source, lambda: _stage_optimizer(h5py, h5file, model, source, strict=False))
    finally:
        if archive is not None:
            archive.close()
    for var, a in staged:
        var.assign(a)
    if restore_optimizer is not None:
        restore_optimizer()
