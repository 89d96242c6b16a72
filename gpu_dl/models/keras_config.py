"""The model as Keras 3's ``config.json`` describes it: writing it, and reading it back into gpu_dl objects.

The file is ``{"module": "keras", "class_name": "Sequential", "config":
{"name", "trainable", "dtype", "layers": [...], "build_input_shape"},
"registered_name": null, "build_config": {"input_shape"}, "compile_config":
{"optimizer", "loss", "metrics", ...}}``, each layer as ``{"module":
"keras.layers", "class_name", "config", "registered_name", "build_config"}``.
Keras writes tuples as ``{"class_name": "__tuple__", "config": {"value": [...]}}``
and dtypes as ``DTypePolicy`` objects; both are unwrapped on reading. A
functional model's form (class ``Functional``, layers with their calls) is
written and read by ``functional_config``, with the layer entries of this module.

A model used as a layer of another is written in full where its layer entry
would be, as Keras writes it: its own ``config.json`` object (``{"module":
"keras", "class_name": "Sequential", ...}`` or the ``Functional`` form) with its
``build_config`` and a ``compile_config`` (its own settings if it was
compiled, else ``{}``). Reading rebuilds it the same way, compiling it when
that ``compile_config`` is not empty.

Reading executes nothing from the file. Class names are looked up among the
registered objects (``register_keras_serializable``), the objects of the
active ``custom_object_scope`` and the caller's ``custom_objects``, in that
order, by registered name (``package>name``), then class name, as Keras looks
them up, and then in gpu_dl's own layer, optimizer, loss and metric
catalogues; functions (``{"class_name": "function", "config": name}``) by
their name only. A class of a ``module`` outside Keras and gpu_dl
that is not among the custom objects, an unknown class, or a config key the
class does not take is a ValueError. A Lambda layer's functions are found by
name in the same places; one Keras saved as Python bytecode (a ``__lambda__``
entry) is refused with a ValueError naming the layer.

What a custom object may be follows from what gpu_dl trains with: a layer is a
``Layer`` subclass; a loss a ``Loss`` subclass (with a ``grad``, or a ``call``
written with ``gpu_dl.ops``, which is traced), a ``Loss`` instance, a function
``fn(y_true, y_pred)`` written with ``gpu_dl.ops`` (compile's loss given as a
function, which Keras writes as that function), or, inside a
``LossFunctionWrapper``, the functions ``fn`` and ``grad_fn``; a metric a
``Metric`` subclass or instance, or a per-sample function; an optimizer an
``Optimizer`` subclass. An activation, initializer, regularizer or constraint
of a built-in layer is one of gpu_dl's own (an activation needs the gradient
gpu_dl.activations has for its own only): a custom one is refused with what to
do instead.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import numbers
import types

import numpy

from ..backend.user_warnings import warn
from ..catalogue import get_custom_objects, get_registered_name, keras_class_name, scoped_custom_objects, written_module
from ..layers import build_shapes

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
# A saved model with more layers than this is refused before any is built; real ones have hundreds at most.
# Rebuilding a Sequential is linear in its layers (add keeps their names and the stack's output shape rather
# than going over all of them again), so the cap no longer stands between a file and hours of quadratic work;
# it stays because a config.json of the allowed size still lists over a million minimal layers, each an object
# to make and build (about 0.2 ms apiece: minutes and gigabytes for a crafted file). Functional models share it.
MAX_LAYERS = 10_000


# ------------------------------------------------------------ config: write
def _dtype_policy(name):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def _jsonable(value, where, functions=False):
    """``value`` with tuples as lists and NumPy scalars as Python numbers, and with ``functions`` named
    functions as Keras's function entries; a ValueError for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where, functions) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where, functions) for v in value]
    if isinstance(value, numpy.ndarray) and value.ndim == 0:
        return _jsonable(value.item(), where)
    if functions and isinstance(value, types.FunctionType):
        return function_entry(value, where)
    raise ValueError(f"{where}: {value!r} (type {type(value).__name__}) cannot be written to a config file; "
                     "only numbers, strings, lists and dicts can.")


def function_entry(fn, where="config"):
    """Keras 3's entry for a function: its registered name (``package>name``, else its ``__name__``), under
    the module and registered name Keras writes for every function. Loading finds it by that name only."""
    if not isinstance(fn, types.FunctionType) or fn.__name__ == "<lambda>":
        raise ValueError(f"{where}: {fn!r} cannot be written to a config file: functions are written by name, "
                         "so only named functions (def) can be; a lambda would have to be saved as code, which "
                         "loading never runs.")
    return {"module": "builtins", "class_name": "function", "config": get_registered_name(fn),
            "registered_name": "function"}


def _layer_entry(layer):
    from ..layers.bidirectional import Bidirectional
    from ..layers.core import InputLayer
    from ..layers.pipeline import Pipeline
    from ..layers.rnn_cells import StackedRNNCells
    from ..layers.rnn_layer import RNN
    from ..layers.wrappers import Wrapper
    from .nested import is_model
    if is_model(layer):
        return model_config(layer)
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
    elif isinstance(layer, Wrapper):
        config["layer"] = _layer_entry(layer.layer)     # in full, as Keras writes it
    elif isinstance(layer, Pipeline):
        config["layers"] = [_layer_entry(inner) for inner in layer.layers]
    elif isinstance(layer, RNN):
        config["cell"] = _layer_entry(layer.cell)       # a nested serialized object, as Keras writes it
    elif isinstance(layer, StackedRNNCells):
        config["cells"] = [_layer_entry(cell) for cell in layer.cells]
    class_name = keras_class_name(type(layer))
    builtin = _layer_classes().get(class_name) is type(layer)
    entry = {"module": "keras.layers" if builtin else written_module(type(layer)), "class_name": class_name,
             "config": _jsonable(config, where),
             "registered_name": None if builtin else get_registered_name(type(layer))}
    # Keras writes what get_build_config() gives (a layer of the caller's may override it).
    build_config = layer.get_build_config() if layer.built else None
    if build_config is not None:
        entry["build_config"] = _jsonable(build_config, where)
    return entry


def _loss_entry(loss):
    from .. import losses as losses_module
    if loss is None:
        return None
    if getattr(loss, "given_as_function", False):
        # compile(loss=fn): Keras writes the function itself.
        return function_entry(loss.fn, f"loss '{loss.name}'")
    return _jsonable(losses_module.serialize(loss), f"loss '{loss.name}'", functions=True)


def _like(given, values):
    """``values`` as a tuple where compile was given a tuple (Keras's compile config keeps it), else a list."""
    return tuple(values) if isinstance(given, tuple) else list(values)


def _written_loss(given, loss):
    """A loss as Keras's compile config writes it: as compile was given it where that was a name, else
    serialised."""
    return given if isinstance(given, str) else _loss_entry(loss)


def _pending_compile_config(model):
    """``(loss, loss_weights, metrics, weighted_metrics)`` of a subclassed model compiled per output before its
    first call (its losses not bound to its outputs yet), in the structure compile() was given them."""
    from .. import losses as losses_module
    given = model._compile_args

    def structure(value, entry):
        if isinstance(value, dict):
            return {key: entry(v) for key, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(entry(v) for v in value)     # a tuple stays one, as Keras's config keeps it
        return entry(value)

    def loss(value):
        return None if value is None else _written_loss(value, losses_module.get(value))

    def metrics(value):
        if value is None:
            return None
        def entries(ids):       # a list of metrics, or one metric, as given
            if isinstance(ids, (list, tuple)):
                return _metric_entries(model, ids)
            return None if ids is None else (_metric_entries(model, [ids]) or [None])[0]
        return structure(value, entries)
    weights = given["loss_weights"]
    return structure(given["loss"], loss), None if weights is None else structure(weights, float), \
        metrics(given["metrics"]), metrics(given["weighted_metrics"])


def _kept_name(value, rebuilt, custom):
    """What compile gets for a loss a compile config gives as ``value``: a catalogue name stays a name, so the
    loaded model's compile config writes it so again (as Keras's does); anything else is ``rebuilt``."""
    return value if isinstance(value, str) and custom.function(value) is None else rebuilt


def _metric_entries(model, identifiers):
    from .. import metrics as metrics_module
    metrics = []
    for identifier in identifiers:
        try:
            if isinstance(identifier, str):
                metrics.append(identifier)
            elif isinstance(identifier, metrics_module.Metric):
                metrics.append(_jsonable(metrics_module.serialize(identifier), f"metric '{identifier.name}'",
                                         functions=True))
            elif callable(identifier) and getattr(identifier, "__module__", None) == metrics_module.__name__:
                metrics.append(identifier.__name__)
            elif inspect.isclass(identifier) and issubclass(identifier, metrics_module.Metric):
                metrics.append(_jsonable(metrics_module.serialize(identifier()), f"metric {identifier.__name__}",
                                         functions=True))
            elif isinstance(identifier, types.FunctionType):
                # As Keras writes a metric function: by name, found again through custom_objects or the registry.
                metrics.append(function_entry(identifier, f"metric {identifier.__name__!r}"))
            else:
                raise ValueError("only metric names, gpu_dl Metric classes and objects, and named functions are "
                                 "written")
        except (TypeError, ValueError) as e:
            warn(f"Model '{model.name}': the metric {identifier!r} cannot be written down ({e}); it is "
                 "left out of the saved compile settings.")
    return metrics


def _per_output_compile_config(model):
    """``(loss, loss_weights, metrics, weighted_metrics)`` of a model of several outputs, in the structure compile()
    was given them (one loss, a list or a dict), as Keras writes them."""
    names = model._output_keys
    given = model._compile_args
    if isinstance(given["loss"], dict):
        # The outputs the dict names, as Keras writes it (one without a loss may be left out).
        loss = {name: _written_loss(given["loss"][name], entry) for name, entry in zip(names, model._output_losses)
                if name in given["loss"]}
    elif isinstance(given["loss"], (list, tuple)):
        loss = type(given["loss"])(_written_loss(g, entry) for g, entry in zip(given["loss"], model._output_losses))
    elif given["loss"] is None:
        loss = None
    else:
        loss = _written_loss(given["loss"], next(entry for entry in model._output_losses if entry is not None))
    weights = given["loss_weights"]
    if weights is not None:
        weights = ({name: w for name, w in zip(names, model._loss_weights) if name in weights}
                   if isinstance(weights, dict) else _like(weights, model._loss_weights))
    def metrics(per_output, key):
        if not any(per_output):
            return None
        entries = [_metric_entries(model, ids) or None for ids in per_output]
        if isinstance(given.get(key), dict):
            return {name: entry for name, entry in zip(names, entries) if name in given[key]}
        return _like(given.get(key), entries)
    return loss, weights, metrics(model._output_metric_ids, "metrics"), \
        metrics(model._output_weighted_ids, "weighted_metrics")


def _written_loss_weights(model):
    """The ``loss_weights`` of a model of one output as compile() was given them (a float, or a list or dict of
    one), in JSON's types; None without."""
    given = model.__dict__.get("_loss_weights_given")
    if given is None or model.loss is None:
        return None
    if isinstance(given, dict):
        return {str(k): float(v) for k, v in given.items()}
    if isinstance(given, (list, tuple)):
        return [float(v) for v in given]
    return float(given)


def _compile_config(model):
    from .. import optimizers
    if not model.compiled:
        return None
    # As Keras writes it: the optimizer compile was given (not the LossScaleOptimizer compile wrapped it in for a
    # mixed_float16 model, which compiling the loaded model makes again).
    given = model.__dict__.get("_given_optimizer")
    if given is None or not isinstance(model.optimizer, optimizers.LossScaleOptimizer) or \
            model.optimizer.inner_optimizer is not given:
        given = model.optimizer
    optimizer = _jsonable(optimizers.serialize(given), f"optimizer '{given.name}'")
    try:
        if model.__dict__.get("_pending_compile") is not None:
            loss, loss_weights, metrics, weighted = _pending_compile_config(model)
        elif getattr(model, "_multi", False):
            loss, loss_weights, metrics, weighted = _per_output_compile_config(model)
        else:
            loss = model.__dict__.get("_loss_given") or _loss_entry(model.loss)
            loss_weights = _written_loss_weights(model)
            metrics = _metric_entries(model, model._metric_identifiers) or None
            weighted = _metric_entries(model, model._weighted_identifiers) or None
    except (TypeError, ValueError) as e:
        warn(f"Model '{model.name}': the loss {model.loss!r} cannot be written down ({e}); the file is "
             "saved without its compile settings, so load_model() gives an uncompiled model.")
        return None
    return {"optimizer": optimizer, "loss": loss, "loss_weights": loss_weights, "metrics": metrics,
            "weighted_metrics": weighted, "run_eagerly": model.run_eagerly,
            "steps_per_execution": model.steps_per_execution, "jit_compile": model.jit_compile}


def _subclassed_model_config(model):
    """A subclassed model (layers made in ``__init__``, composed in ``call``) as Keras 3 writes it: its class by
    (registered) name, what its ``get_config`` gives (the constructor's arguments), its build config once built,
    and its compile config (``get_compile_config``, which the class may override). Loading needs the class,
    registered or in ``custom_objects``, as in Keras."""
    cls = type(model)
    where = f"Model '{model.name}' ({cls.__name__})"
    try:
        config = model.get_config()
    except NotImplementedError as e:
        raise TypeError(f"{where} is a subclassed model: saving writes what its get_config() gives, the arguments "
                        f"its class is made with, and it has none ({e}). Define get_config() (and from_config() "
                        "where its arguments are not plain values), or save its weights with "
                        "model.save_weights('m.weights.h5').") from None
    entry = {"module": written_module(cls), "class_name": cls.__name__,
             "config": _jsonable(config, f"{where}: get_config()", functions=True),
             "registered_name": get_registered_name(cls)}
    if model.built:
        build_config = model.get_build_config()
        if build_config is not None:
            entry["build_config"] = _jsonable(build_config, f"{where}: get_build_config()")
    from .serialization import serialize_keras_object     # it imports this module at its top
    # what the class's get_compile_config gives (it may hold optimizer, loss and metric objects), serialised
    entry["compile_config"] = serialize_keras_object(model.get_compile_config() or {})
    return entry


def model_config(model):
    """The model in Keras 3's serialised form (the content of ``config.json``)."""
    from .functional import Functional
    from .sequential import Sequential
    if isinstance(model, Functional):
        from .functional_config import functional_model_config
        from .trainer import user_class
        config = functional_model_config(model)
        own = user_class(model)
        if own is not None:
            # a subclass made functionally is written under its own (registered) name, as Keras writes it
            config.update(module=written_module(own), class_name=own.__name__, registered_name=get_registered_name(own))
        # Keras writes an empty one for a model never compiled (Trainer.get_compile_config gives {}).
        config["compile_config"] = _compile_config(model) or {}
        return config
    if model._composite:
        return _subclassed_model_config(model)
    if not isinstance(model, Sequential):
        raise TypeError(f"Only Sequential and functional models can be saved, got {type(model).__name__}.")
    model.check_config_writable()
    layers = []
    spec = model.input_spec
    several = isinstance(spec, list)      # a first layer of several inputs: no InputLayer of the Sequential's own
    # The batch size the model was built for, where its build was given one (from data or its Input, as Keras
    # records it).
    batch = model.__dict__.get("_build_batch")
    if spec is not None and not several:
        from ..layers.core import InputLayer
        dtype = "string" if model.__dict__.get("_takes_text") else model.dtype      # built from text data
        layers.append(_layer_entry(model._input_layer or InputLayer(shape=spec[1:], batch_size=batch,
                                                                    dtype=dtype, name=model.input_layer_name())))
    layers += [_layer_entry(layer) for layer in model.layers]
    inner = {"name": model.name, "trainable": model.trainable, "dtype": _dtype_policy(model.dtype_policy.name),
             "layers": layers}
    config = {"module": "keras", "class_name": "Sequential", "config": inner, "registered_name": None}
    if model.built and spec is not None:
        shape = _jsonable(build_shapes.with_batch(spec, batch), "model input shape")
        if not several:     # as Keras writes them: the build shape of several inputs in build_config only
            inner["build_input_shape"] = shape
        config["build_config"] = {"input_shape": shape}
    config["compile_config"] = _compile_config(model) or {}
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


class CustomObjects:
    """The objects a file's names may stand for, looked up as Keras 3.15's ``load_model`` looks them up: the
    registered objects first, then those of the ``custom_object_scope`` active when the load started, then the
    caller's ``custom_objects``."""

    def __init__(self, custom_objects=None):
        self.given = dict(custom_objects or {})
        self.scoped = scoped_custom_objects()

    def _find(self, name):
        for source in (get_custom_objects(), self.scoped, self.given):
            if name in source:
                return source[name]
        return None

    def function(self, name):
        """The function (or object standing for one) named ``name``, or None."""
        if not isinstance(name, str):
            return None
        found = self._find(name)
        if found is None and ">" not in name:
            # Keras up to 3.6 wrote a registered function by its bare name: match it to "package>name".
            for key, obj in {**self.given, **self.scoped, **get_custom_objects()}.items():
                if key.endswith(">" + name):
                    return obj
        return found

    def entry(self, entry):
        """The custom class or function a config entry names (by registered name, then class name), or None."""
        if not isinstance(entry, dict):
            return None
        if entry.get("class_name") == "function":
            return self.function(entry.get("config"))
        for key in (entry.get("registered_name"), entry.get("class_name")):
            if isinstance(key, str):
                found = self._find(key)
                if found is not None:
                    return found
        return None


def _check_module(entry, where, custom):
    module = entry.get("module")
    if module is None or entry.get("class_name") == "function" or custom.entry(entry) is not None:
        # A function entry is a name, looked up where it is used; a custom object is the caller's own.
        return
    if not isinstance(module, str) or not (module in ("keras", "gpu_dl") or module.startswith(("keras.", "gpu_dl."))):
        name = entry.get("registered_name") if isinstance(entry.get("registered_name"), str) \
            else entry.get("class_name")
        raise ValueError(f"{where}: {entry.get('class_name')!r} names the module {module!r}: it is not one of Keras's "
                         f"or gpu_dl's own classes, and neither custom_objects nor the registered objects have "
                         f"{name!r}. Pass load_model(..., custom_objects={{{name!r}: <the class>}}) or register it "
                         "with gpu_dl.saving.register_keras_serializable(); nothing is imported from a saved file.")


def _decode_array(name, inner, where):
    """A Keras ``__numpy__``/``__tensor__`` entry ({"value": nested lists, "dtype": name}) as a NumPy array."""
    message = (f"{where}: a {name!r} entry needs config {{'value': [...], 'dtype': '<numeric dtype>'}} with numbers "
               f"only, got {inner!r:.200}.")
    if not isinstance(inner, dict) or not isinstance(inner.get("dtype"), str):
        raise ValueError(message)
    try:
        dtype = numpy.dtype(inner["dtype"])
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if dtype.kind not in "biuf":
        raise ValueError(message)
    try:
        array = numpy.asarray(inner.get("value"), dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    return array


def _decode(value, where, custom=None):
    """A config from JSON: tuples and dtype policies unwrapped, modules checked, Keras's object ids dropped."""
    custom = custom or CustomObjects()
    if isinstance(value, list):
        return [_decode(v, where, custom) for v in value]
    if not isinstance(value, dict):
        return value
    name = value.get("class_name")
    if isinstance(name, str) and "config" in value:
        _check_module(value, where, custom)
        if name == "Lambda":
            _refuse_lambda_bytecode(value, where)
        if name == "__tuple__":
            inner = value["config"]
            if not isinstance(inner, dict) or not isinstance(inner.get("value"), list):
                raise ValueError(f"{where}: a '__tuple__' entry needs config {{'value': [...]}}, got {inner!r}.")
            return tuple(_decode(v, where, custom) for v in inner["value"])
        if name in ("__numpy__", "__tensor__"):
            # Keras writes an array argument (Rescaling's per-channel scale, say) as its values and dtype: data,
            # read back as a NumPy array when the dtype is numeric.
            return _decode_array(name, value["config"], where)
        if name == "__lambda__":
            raise ValueError(f"{where}: an entry of type '__lambda__' is not read: it is a Python lambda saved as "
                             "bytecode, and gpu_dl never runs code from a file.")
        if name.startswith("__"):
            raise ValueError(f"{where}: an entry of type {name!r} is not read (saved code and raw bytes "
                             "are refused).")
        if name in _DTYPE_POLICIES:
            inner = value["config"]
            policy = inner.get("name") if isinstance(inner, dict) else None
            if not isinstance(policy, str):
                raise ValueError(f"{where}: a {name} needs config {{'name': '<dtype>'}}, got {inner!r}.")
            return policy
    return {k: _decode(v, where, custom) for k, v in value.items() if k != "shared_object_id"}


def _refuse_lambda_bytecode(entry, where):
    """A ValueError naming the layer when a Lambda layer's entry holds a function as Python bytecode."""
    from ..layers.lambda_layer import lambda_bytecode_refusal
    config = entry["config"]
    if not isinstance(config, dict):
        return
    for key in ("function", "output_shape", "mask"):
        value = config.get(key)
        if isinstance(value, dict) and value.get("class_name") == "__lambda__":
            raise lambda_bytecode_refusal(where, config.get("name"), key)


def _lambda_functions(config, where, custom):
    """A Lambda layer's config with its function entries (``function``, a function ``output_shape`` or ``mask``,
    functions among its ``arguments``) resolved by name through ``custom``, as Keras resolves them."""
    config = dict(config)

    def resolved(value, key):
        name = _function_name(value) if isinstance(value, dict) else None
        if name is None:
            return value
        found = custom.function(name)
        if found is None:
            raise _missing(f"{where} ({key})", "function", name, "the function")
        return found

    for key in ("function", "output_shape", "mask"):
        if key in config:
            config[key] = resolved(config[key], key)
    if isinstance(config.get("arguments"), dict):
        config["arguments"] = {k: resolved(v, f"arguments[{k!r}]") for k, v in config["arguments"].items()}
    return config


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
    if hasattr(cls, "enable_lora"):
        keys |= {"lora_rank", "lora_alpha"}     # the convolutions take them through **kwargs, as Keras's
    return keys


def _as_shape(value, where, what):
    if not isinstance(value, (list, tuple)) or not all(d is None or (isinstance(d, int) and not isinstance(d, bool))
                                                        for d in value):
        raise ValueError(f"{where}: `{what}` must be a list of integers or nulls, got {value!r}.")
    return tuple(value)


# The layer classes Keras defines in its applications' modules rather than in keras.layers (its files name them
# by those modules), and gpu_dl's modules that define them under the same class names, keeping the Keras
# module as their ``keras_module``. The gpu_dl module is fixed here: nothing named by a file is imported.
_APPLICATION_LAYER_MODULES = {
    "keras.src.applications.inception_resnet_v2": "gpu_dl.applications.inception_resnet_v2",
    "keras.src.applications.convnext": "gpu_dl.applications.convnext",
    "keras.src.layers.preprocessing.feature_space": "gpu_dl.utils.feature_space",
}


def _application_layer(entry):
    """gpu_dl's class for a layer Keras defines outside its catalogues (in one of its applications' modules, or
    FeatureSpace's identity preprocessor), or None."""
    module = _APPLICATION_LAYER_MODULES.get(entry.get("module"))
    if module is None:
        return None
    # Imported when a file needs it: these modules sit above the models, which never import them otherwise.
    cls = getattr(importlib.import_module(module), entry["class_name"], None)
    return cls if inspect.isclass(cls) and cls.__dict__.get("keras_module") == entry["module"] else None


def _layer_from_entry(entry, where, custom=None):
    """A gpu_dl layer from one Keras layer entry (already decoded). A class with a ``build_from_config`` of its own
    is built from the entry's ``build_config`` here, as Keras's deserialization builds every layer (gpu_dl's own
    layers are built when the model is, for the same shapes)."""
    layer = _new_layer_from_entry(entry, where, custom)
    build_config = entry.get("build_config")
    from ..layers.base import Layer
    if isinstance(layer, Layer) and build_config and not layer.built and \
            type(layer).build_from_config is not Layer.build_from_config:
        try:
            layer.build_from_config(build_config)
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"{where} ({type(layer).__name__} '{layer.name}'): its build_from_config("
                             f"{build_config!r:.200}) failed: "
                             f"{type(e).__name__}: {e}") from e
    return layer


def _new_layer_from_entry(entry, where, custom=None):
    from ..layers.base import Layer
    from ..layers.bidirectional import Bidirectional
    from ..layers.core import InputLayer
    from ..layers.pipeline import Pipeline
    from ..layers.rnn_cells import StackedRNNCells
    from ..layers.rnn_layer import RNN
    from ..layers.wrappers import Wrapper
    custom = custom or CustomObjects()
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError(f"{where}: a layer entry must be a dict with a 'class_name' string, got {entry!r}.")
    class_name = entry["class_name"]
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the 'config' of layer class {class_name!r} must be a dict, got {config!r}.")
    name = config.get("name")
    where = f"{where}, layer {name!r} ({class_name})" if name else f"{where}, layer {class_name}"
    cls = custom.entry(entry)
    if cls is not None and not (inspect.isclass(cls) and issubclass(cls, Layer)):
        raise ValueError(f"{where}: custom_objects gives {cls!r} for the layer class {class_name!r}; a layer "
                         "must be a gpu_dl Layer subclass.")
    builtin = cls is None
    cls = cls or _application_layer(entry) or _layer_classes().get(class_name)
    if cls is None:
        raise ValueError(f"{where}: unknown layer class {class_name!r}. gpu_dl rebuilds its own layers "
                         f"({', '.join(sorted(n for n, c in _layer_classes().items() if n == c.__name__))}) and the "
                         "Layer subclasses given in custom_objects or registered with "
                         "gpu_dl.saving.register_keras_serializable().")
    config = dict(config)
    from ..layers.lambda_layer import Lambda
    if builtin and issubclass(cls, Lambda):
        # Its functions are the caller's own by design: found by name, never read from the file as code.
        config = _lambda_functions(config, where, custom)
    if builtin:
        _refuse_custom_arguments(config, where, custom)
    for key, harmless in _HARMLESS_KEYS.items():
        if key == "quantization_config" and (key in inspect.signature(cls.__init__).parameters
                                             or hasattr(cls, "quantization_modes")):
            continue            # the layers that quantize (Dense; ReversibleEmbedding through its kwargs) read it
        if key in ("lora_rank", "lora_alpha") and hasattr(cls, "enable_lora"):
            continue            # so do the layers that take LoRA (Conv2D through its base class's arguments)
        if key in config:
            value = config.pop(key)
            if harmless is not None and value not in harmless:
                raise ValueError(f"{where}: `{key}={value!r}` is not supported by gpu_dl "
                                 f"(it supports only {' or '.join(map(repr, harmless))}).")
    if cls is InputLayer:
        if "batch_shape" in config or "batch_input_shape" in config:
            given = config.pop("batch_shape", None)
            legacy = config.pop("batch_input_shape", None)
            shape = _as_shape(given if given is not None else legacy, where, "batch_shape")
            if not shape:
                raise ValueError(f"{where}: `batch_shape` needs a batch axis and at least one more, got {list(shape)}.")
            config["batch_size"], config["shape"] = shape[0], shape[1:]
        elif "shape" in config:
            config["shape"] = _as_shape(config["shape"], where, "shape")
    elif cls is Bidirectional or issubclass(cls, Bidirectional):
        inner = config.get("layer")
        if not isinstance(inner, dict):
            raise ValueError(f"{where}: Bidirectional needs the wrapped layer as a config dict under 'layer'.")
        if not isinstance(inner.get("config") or {}, dict):
            raise ValueError(f"{where}: the wrapped layer's 'config' must be an object, got {inner['config']!r:.200}.")
        inner = dict(inner, config=dict(inner.get("config") or {}))
        inner_name = inner["config"].get("name")
        if isinstance(inner_name, str) and inner_name.startswith("forward_"):
            inner["config"]["name"] = inner_name[len("forward_"):]
        # Keras makes both directions from entries (the backward one's, else the built layer's own), so that each
        # is built on its own where that entry has a build config
        copied_from = (inner, config.get("backward_layer") or inner)
        config["layer"] = _wrapped_recurrent_from_entry(inner, where)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = _wrapped_recurrent_from_entry(config["backward_layer"], where)
        else:
            config.pop("backward_layer", None)
    elif issubclass(cls, Wrapper):
        inner = config.get("layer")
        if isinstance(inner, Layer) and getattr(cls, "takes_models", False):
            pass        # a model, rebuilt by nested_layer_from_entry
        elif not isinstance(inner, dict):
            raise ValueError(f"{where}: {class_name} needs the wrapped layer as a config dict under 'layer'.")
        else:
            config["layer"] = rooted(_layer_from_entry(inner, where, custom), inner)
    elif issubclass(cls, Pipeline):
        inner = config.get("layers")
        if not isinstance(inner, list):
            raise ValueError(f"{where}: Pipeline needs the list of its layers' entries under 'layers'.")
        config["layers"] = [_pipeline_member_from_entry(entry, f"{where}, layers[{i}]")
                            for i, entry in enumerate(inner)]
    elif issubclass(cls, RNN):
        config["cell"] = _cell_from_entry(config.get("cell"), where, custom, stacked=True)
    elif issubclass(cls, StackedRNNCells):
        cells = config.get("cells")
        if not isinstance(cells, list) or not cells:
            raise ValueError(f"{where}: StackedRNNCells needs a non-empty list of cell entries under 'cells'.")
        config["cells"] = [_cell_from_entry(cell, where, custom, stacked=False) for cell in cells]
    unknown = sorted(set(config) - _accepted_keys(cls))
    if unknown:
        raise ValueError(f"{where}: the config key(s) {', '.join(repr(k) for k in unknown)} "
                         f"({', '.join(f'{k}={config[k]!r}' for k in unknown)}) are not supported by gpu_dl's "
                         f"{cls.__name__}.")
    try:
        if issubclass(cls, Bidirectional):
            layer = cls(config.pop("layer"), **config)
            rooted(layer.forward_layer, copied_from[0])
            rooted(layer.backward_layer, copied_from[1])
            return layer
        if issubclass(cls, Wrapper):
            return cls(config.pop("layer"), **config)
        if issubclass(cls, Pipeline):
            return cls(config.pop("layers"), **config)
        return cls.from_config(config)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"{where}: cannot be rebuilt from its config: {e}") from e


def _wrapped_recurrent_from_entry(entry, where):
    """A layer that Bidirectional wraps: only gpu_dl's recurrent layer classes, found by class name in that
    fixed table, whatever module or registered name the entry gives (and no custom objects)."""
    from ..layers.bidirectional import SEQUENCE_LAYER_CLASSES
    class_name = entry.get("class_name") if isinstance(entry, dict) else None
    if class_name not in SEQUENCE_LAYER_CLASSES:
        raise ValueError(f"{where}: the wrapped layer {class_name or repr(entry)[:200]} is not supported: "
                         f"gpu_dl's Bidirectional wraps only its recurrent layers "
                         f"({', '.join(SEQUENCE_LAYER_CLASSES)}).")
    layer = _layer_from_entry(entry, where, CustomObjects())
    if type(layer) is not SEQUENCE_LAYER_CLASSES[class_name]:
        raise ValueError(f"{where}: the wrapped layer {class_name!r} did not rebuild as gpu_dl's own {class_name}.")
    return layer


def _pipeline_member_from_entry(entry, where):
    """A layer of a Pipeline entry: only gpu_dl's own layer classes, found by class name in that fixed table,
    whatever module or registered name the entry gives (and no custom objects)."""
    known = _layer_classes()
    class_name = entry.get("class_name") if isinstance(entry, dict) else None
    if class_name not in known:
        raise ValueError(f"{where}: the layer {class_name if class_name else entry!r:.200} is not one of gpu_dl's "
                         "layer classes, which are the only ones a Pipeline is rebuilt from.")
    layer = _layer_from_entry(entry, where, CustomObjects())
    if type(layer) is not known[class_name]:
        raise ValueError(f"{where}: the layer {class_name!r} did not rebuild as gpu_dl's own {class_name}.")
    return layer


def _cell_from_entry(entry, where, custom, stacked):
    """The cell of an RNN entry (or of a StackedRNNCells entry, ``stacked`` False): gpu_dl's built-in cells (and, for
    an RNN, StackedRNNCells), found by class name in that fixed table, whatever module or registered name the entry
    gives; or a cell class of the caller's own that is registered or in ``custom_objects`` (as Keras rebuilds it)."""
    from ..layers.base import Layer
    from ..layers.rnn_cells import CELL_CLASSES, StackedRNNCells
    known = dict(CELL_CLASSES, **({"StackedRNNCells": StackedRNNCells} if stacked else {}))
    class_name = entry.get("class_name") if isinstance(entry, dict) else None
    if class_name not in known:
        own = custom.entry(entry)
        if isinstance(own, type) and issubclass(own, Layer) and not issubclass(own, tuple(known.values())):
            return _layer_from_entry(entry, where, custom)
        raise ValueError(f"{where}: the RNN cell {class_name if class_name else entry!r:.200} is not supported: "
                         f"gpu_dl's RNN takes its built-in cells ({', '.join(known)}), or a cell class of your own "
                         "given in custom_objects or registered with gpu_dl.saving.register_keras_serializable().")
    # StackedRNNCells's entries may name the caller's cells; the built-in cells are found by name alone
    cell = _layer_from_entry(entry, where, custom if class_name == "StackedRNNCells" else CustomObjects())
    if type(cell) is not known[class_name]:
        raise ValueError(f"{where}: the RNN cell {class_name!r} did not rebuild as gpu_dl's own {class_name}.")
    return cell


def _refuse_custom_arguments(config, where, custom):
    """A ValueError when a built-in layer's argument names a custom object: gpu_dl's layers take its own
    initializers, regularizers and constraints only, and its own activations or Python functions (traced for
    their gradient, ``activations.TracedActivation``), which replace their entries in ``config``."""
    for key, value in list(config.items()):
        if key in ("layer", "backward_layer", "cell") or not isinstance(value, dict):
            continue
        found = custom.entry(value)
        if key.endswith("activation") and isinstance(found, types.FunctionType):
            config[key] = found
            continue
        if key in ("standardize", "split") and callable(found):
            config[key] = found        # TextVectorization's text steps: host functions, no gradient to trace
            continue
        if found is not None:
            named = value.get("config") if value.get("class_name") == "function" else value.get("class_name")
            raise ValueError(
                f"{where}: `{key}` names {named!r}, which custom_objects (or the registry) gives as {found!r}; "
                "gpu_dl's built-in layers take only gpu_dl's own activations, initializers, regularizers and "
                "constraints, and as an activation a Python function written with gpu_dl.ops, traced for its "
                f"gradient ({key}='relu', say). Rebuild the layer as a Layer subclass of your own, passed in "
                "custom_objects.")


_MODEL_CLASSES = ("Sequential", "Functional")


def is_model_entry(entry):
    """Whether a layer entry is a whole model (a Sequential or functional model used as a layer)."""
    return isinstance(entry, dict) and entry.get("class_name") in _MODEL_CLASSES


def holds_model_entry(entry):
    """Whether a layer entry is a ``TimeDistributed`` wrapping a whole model (its entry under the config's
    'layer'), which is read apart as a model entry is (a functional one holds symbolic tensors)."""
    return (isinstance(entry, dict) and entry.get("class_name") == "TimeDistributed"
            and isinstance(entry.get("config"), dict) and is_model_entry(entry["config"].get("layer")))


def rooted(layer, entry):
    """``layer``, its name scope opened at the root from now on where its ``entry`` has a build config: Keras's
    deserialization builds such a layer on its own, before the model holding it, so that after a reload its
    variables' paths begin with its own name (``dense/kernel``, not ``sequential/dense/kernel``)."""
    if isinstance(entry, dict) and entry.get("build_config"):
        layer.__dict__.setdefault("_parent_path", "")
    return layer


def nested_layer_from_entry(entry, where, custom_objects=None):
    """A layer entry that is a model or holds one (``is_model_entry`` or ``holds_model_entry``) as a layer."""
    if is_model_entry(entry):
        return nested_model_from_entry(entry, where, custom_objects)
    custom = CustomObjects(custom_objects)
    model = nested_model_from_entry(entry["config"]["layer"], f"{where}, the wrapped model", custom_objects)
    bare = _decode(dict(entry, config={k: v for k, v in entry["config"].items() if k != "layer"}), where, custom)
    if not isinstance(bare, dict) or not isinstance(bare.get("config"), dict):
        raise ValueError(f"{where}: a layer entry must be an object with a 'config' object.")
    bare["config"]["layer"] = model
    return _layer_from_entry(bare, where, custom)


def nested_model_from_entry(entry, where, custom_objects=None):
    """The model a layer entry holds, compiled when its own ``compile_config`` is not empty."""
    model = model_from_config(entry, where, custom_objects)
    compile_config = entry.get("compile_config")
    if compile_config:
        compile_from_config(model, compile_config, where, custom_objects)
    return model


def _takes_custom_objects(cls):
    """Whether ``cls.from_config`` takes ``custom_objects`` (gpu_dl's does; one of the caller's may not)."""
    try:
        parameters = inspect.signature(cls.from_config).parameters
    except (TypeError, ValueError):
        return False
    return "custom_objects" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _own_model_class(entry, custom):
    """The caller's ``Model`` subclass a model entry names (registered, or in ``custom_objects``), or None."""
    from .model import Model
    if entry.get("class_name") in ("Sequential", "Functional", "Model"):
        return None
    found = custom.entry(entry)
    return found if isinstance(found, type) and issubclass(found, Model) else None


def model_from_config(config, where="model config", custom_objects=None):
    """A ``Sequential`` or functional model from Keras 3's serialised form (``config.json``), built if the form
    says how; uncompiled. Models among its layers are rebuilt the same way (``nested_model_from_entry``)."""
    from .sequential import Sequential
    if not isinstance(config, dict):
        raise ValueError(f"{where}: expected a JSON object with 'class_name' and 'config', "
                         f"got {type(config).__name__}.")
    own = _own_model_class(config, CustomObjects(custom_objects))
    if own is not None:
        inner = config.get("config")
        if not isinstance(inner, dict):
            raise ValueError(f"{where}: the model entry of class {own.__name__!r} needs a 'config' object.")
        try:
            model = own.from_config(inner, custom_objects=custom_objects) if _takes_custom_objects(own) \
                else own.from_config(inner)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: the model of class {own.__name__!r} cannot be rebuilt from its config: "
                             f"{e}") from e
        build_config = config.get("build_config")
        if build_config and not model.built:
            # as Keras's deserialization builds it (a subclassed model's weights exist once it is built); without a
            # build of its own, Keras runs its call outside its name scope, which its sublayers' paths then lack
            from ..layers.base import scope_of_root
            own_build = not getattr(type(model).build, "_library_build", False)
            try:
                with contextlib.nullcontext() if own_build else scope_of_root(model):
                    model.build_from_config(build_config)
            except (TypeError, ValueError, KeyError) as e:
                raise ValueError(f"{where}: the model of class {own.__name__!r} cannot be built from its build "
                                 f"config {build_config!r:.200}: {type(e).__name__}: {e}") from e
        return model
    if config.get("class_name") == "Functional":
        # Its layers' calls hold symbolic tensors, which the generic decoding refuses: read apart.
        from .functional_config import functional_from_config
        _check_module(config, where, CustomObjects(custom_objects))
        return functional_from_config(config, where, custom_objects)
    custom = CustomObjects(custom_objects)
    config = {k: v for k, v in config.items() if k != "compile_config"}
    # The entries of models among the layers are read apart (a functional one holds symbolic tensors).
    raw_layers = config["config"].get("layers") if isinstance(config.get("config"), dict) else None
    if isinstance(raw_layers, list):
        config["config"] = dict(config["config"], layers=[{} if is_model_entry(e) or holds_model_entry(e) else e
                                                          for e in raw_layers])
    config = _decode(config, where, custom)
    if not isinstance(config, dict):    # a tuple, array or dtype entry in its place
        raise ValueError(f"{where}: expected a model's 'class_name' and 'config', got a {type(config).__name__}.")
    class_name = config.get("class_name")
    if class_name == "Model":
        raise ValueError(f"{where}: the model is a subclassed keras.Model, whose architecture is Python code; gpu_dl "
                         "rebuilds Sequential and functional models only.")
    if class_name != "Sequential":
        raise ValueError(f"{where}: unknown model class {class_name!r}: gpu_dl rebuilds Sequential and functional "
                         "models, and a subclassed model whose class is registered "
                         "(gpu_dl.saving.register_keras_serializable) or given in custom_objects.")
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise ValueError(f"{where}: a Sequential config needs a 'config' object with a 'layers' list.")
    if len(inner["layers"]) > MAX_LAYERS:
        raise ValueError(f"{where}: the Sequential lists {len(inner['layers'])} layers, more than the {MAX_LAYERS} "
                         "gpu_dl rebuilds; it is not a model config (corrupt or crafted).")
    try:
        model = Sequential(name=inner.get("name"), trainable=inner.get("trainable", True))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from e
    for i, entry in enumerate(inner["layers"]):
        if is_model_entry(raw_layers[i]) or holds_model_entry(raw_layers[i]):
            layer = nested_layer_from_entry(raw_layers[i], f"{where}, layers[{i}]", custom_objects)
        else:
            layer = _layer_from_entry(entry, f"{where}, layers[{i}]", custom)
        rooted(layer, raw_layers[i])
        try:
            model.add(layer)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}, layers[{i}] ('{layer.name}'): {e}") from e
    build_config = config.get("build_config")
    if build_config is not None and not isinstance(build_config, dict):
        raise ValueError(f"{where}: 'build_config' must be an object, got {build_config!r:.200}.")
    shape = (build_config or {}).get("input_shape") or inner.get("build_input_shape")
    if not model.built and shape is not None and model.layers:
        try:
            model.build(_as_shape(shape, where, "build_config.input_shape"))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: cannot build the model for input shape {shape}: {e}") from e
    return model


def _builtin_functions():
    """gpu_dl's per-sample loss and metric functions by name: what a wrapper's ``fn`` may name without
    custom_objects."""
    from .. import losses, metrics
    table = {fn.__name__: fn for fn in losses.FUNCTIONS.values()}
    for fn in (metrics.accuracy, metrics.binary_accuracy, metrics.categorical_accuracy,
               metrics.sparse_categorical_accuracy, metrics.top_k_categorical_accuracy,
               metrics.sparse_top_k_categorical_accuracy):
        table[fn.__name__] = fn
    return table


def _function_name(value):
    """The name a function entry (or a bare string standing for a function) gives, or None."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("class_name") == "function" and isinstance(value.get("config"), str):
        return value["config"]
    return None


def _missing(what, kind, name, accepts):
    return ValueError(f"{what} names the {kind} {name!r}, which is not one of gpu_dl's and which neither "
                      f"custom_objects nor the registered objects have. Pass load_model(..., custom_objects="
                      f"{{{name!r}: ...}}) with {accepts}, or register it with "
                      "gpu_dl.saving.register_keras_serializable(); nothing is imported from a saved file.")


def _with_functions(inner, custom, what, keys):
    """A wrapper's config with its function entries (``keys``) resolved to the functions they name."""
    if not isinstance(inner, dict):
        raise ValueError(f"{what}: the 'config' must be an object, got {inner!r:.200}.")
    config = dict(inner)
    for key in keys:
        if key not in config or config[key] is None:
            continue
        name = _function_name(config[key])
        if name is None:
            raise ValueError(f"{what}: `{key}` must name a function, got {config[key]!r:.200}.")
        found = custom.function(name)
        if found is None and key == "fn":
            found = _builtin_functions().get(name)
        if found is None:
            raise _missing(f"{what} ({key})", "function", name, "the function")
        config[key] = found
    return config


_LOSS_OBJECTS = ("a gpu_dl Loss subclass or object (its call written with gpu_dl.ops, or with a grad method), or a "
                 "function fn(y_true, y_pred) written with gpu_dl.ops")
_LOSS_ACCEPTS = _LOSS_OBJECTS + ", or for a LossFunctionWrapper's own fn and grad_fn the plain functions"


def _as_loss(found, name, what):
    """The Loss a custom object given for a loss stands for."""
    from .. import losses
    from ..losses import Loss
    if isinstance(found, Loss):
        return found
    if inspect.isclass(found) and issubclass(found, Loss):
        return found()
    if callable(found) and not inspect.isclass(found):
        return losses.get(found)    # a function: traced when training needs its gradient, as compile takes it
    raise ValueError(f"{what} names {name!r}, which custom_objects (or the registry) gives as {found!r}; a loss "
                     f"must be {_LOSS_OBJECTS}.")


def _loss_from_config(value, custom, what):
    from .. import losses
    from ..catalogue import lookup
    if value is None:
        return None
    name = _function_name(value)
    if name is not None:
        found = custom.function(name)
        if found is not None:
            return _as_loss(found, name, what)
        try:
            return losses.get(name)
        except (TypeError, ValueError):
            if isinstance(value, str):
                raise
            raise _missing(what, "function", name, _LOSS_ACCEPTS) from None
    if not isinstance(value, dict):
        return losses.get(value)
    class_name = value.get("class_name")
    found = custom.entry(value)
    if found is not None:
        if not (inspect.isclass(found) and issubclass(found, losses.Loss)):
            return _as_loss(found, class_name, what)
        return found.from_config(_with_functions(value.get("config") or {}, custom, what, ("fn", "grad_fn")))
    if class_name == "LossFunctionWrapper":
        # Keras's and gpu_dl's wrapper of a function: the functions it names are looked up, never imported.
        config = _with_functions(value.get("config") or {}, custom, what, ("fn", "grad_fn"))
        if not callable(config.get("fn")):
            raise ValueError(f"{what}: a LossFunctionWrapper needs `fn`, the function it wraps.")
        if isinstance(config["fn"], losses.Loss) or (inspect.isclass(config["fn"]) and
                                                    issubclass(config["fn"], losses.Loss)):
            return _as_loss(config["fn"], _function_name(value["config"]["fn"]), what)
        # Without grad_fn (Keras's wrapper has none) the function is traced when training needs its gradient.
        return losses.LossFunctionWrapper.from_config(config)
    if isinstance(class_name, str):
        try:
            lookup("losses", class_name, losses._NAMES)
        except ValueError:
            raise _missing(what, "class", class_name, _LOSS_ACCEPTS) from None
    return losses.get(value)


def _as_metric(found, name, what):
    from ..metrics import Metric
    if inspect.isclass(found) and not issubclass(found, Metric):
        raise ValueError(f"{what} names {name!r}, which custom_objects (or the registry) gives as the class "
                         f"{found.__name__}; a metric must be a gpu_dl Metric subclass or object, or a function "
                         "fn(y_true, y_pred) returning per-sample values.")
    return found


def _metric_from_config(value, custom, what, loss):
    from .. import metrics
    from ..catalogue import lookup, snake_case
    name = _function_name(value)
    if name is not None:
        found = custom.function(name)
        if found is not None:
            return _as_metric(found, name, what)
        if isinstance(value, str):
            return value                    # a name: compile() resolves it, or says what is wrong
        try:
            metrics.get(name, loss=loss)
        except (TypeError, ValueError):
            raise _missing(what, "function", name, "the function or a gpu_dl Metric subclass") from None
        return name
    if not isinstance(value, dict):
        return value
    class_name = value.get("class_name")
    found = custom.entry(value)
    if found is not None:
        if not (inspect.isclass(found) and issubclass(found, metrics.Metric)):
            return _as_metric(found, class_name, what)
        return found.from_config(_with_functions(value.get("config") or {}, custom, what, ("fn",)))
    if class_name == "MeanMetricWrapper":
        return metrics.MeanMetricWrapper.from_config(_with_functions(value.get("config") or {}, custom, what, ("fn",)))
    if isinstance(class_name, str):
        try:
            lookup("metrics", class_name, {snake_case(n): c for n, c in metrics._CLASSES.items()})
        except ValueError:
            raise _missing(what, "class", class_name, "a gpu_dl Metric subclass") from None
    return metrics.deserialize(value)


def _optimizer_from_config(value, custom, what):
    from .. import optimizers
    value = value or "rmsprop"
    found = custom.function(value) if isinstance(value, str) else custom.entry(value)
    if found is None:
        return optimizers.get(value)
    if not (inspect.isclass(found) and issubclass(found, optimizers.Optimizer)):
        raise ValueError(f"{what} names {value if isinstance(value, str) else value.get('class_name')!r}, which "
                         f"custom_objects (or the registry) gives as {found!r}; an optimizer must be a gpu_dl "
                         "Optimizer subclass.")
    return found() if isinstance(value, str) else found.from_config(dict(value.get("config") or {}))


def _one_output_entry(value, output_names, what):
    """The entry for a model's one output from a dict keyed by its name; other values as they are. A dict of other
    names is an error naming them."""
    if isinstance(value, dict) and "class_name" not in value:
        if set(value) != set(output_names):
            raise ValueError(f"{what} is given per output for {sorted(value)}; the model has the one output "
                             f"{output_names}.")
        return value[output_names[0]]
    return value


def _rebuilt(value, where, rebuild):
    what = where
    try:
        return rebuild(value, what)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(e if str(e).startswith(what) else f"{what} ({value!r:.200}) cannot be rebuilt: {e}") from e


def _compile_per_output(model, cc, optimizer, where, custom):
    """Compile a model of several outputs from a compile_config whose loss and metrics may be given per output (a
    list, or a dict keyed by output names; a dict with a ``class_name`` is one loss for all outputs)."""
    def per_output(value, one, what):
        if isinstance(value, dict) and "class_name" not in value:
            return {k: one(v, f"{what}[{k!r}]") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [one(v, f"{what}[{i}]") for i, v in enumerate(value)]
        return one(value, what)

    def loss_of(value, what):
        return None if value is None else _kept_name(value, _rebuilt(
            value, what, lambda v, w: _loss_from_config(v, custom, w)), custom)

    loss = per_output(cc.get("loss"), loss_of, f"{where}: compile_config.loss")
    if isinstance(loss, (list, tuple)) and len(loss) == len(model._output_keys):
        output_losses = list(loss)
    elif isinstance(loss, dict):
        output_losses = [loss.get(name) for name in model._output_keys]
    else:
        output_losses = [loss] * len(model._output_keys)

    def metrics_of(value, what, loss_for):
        if value is None:
            return None
        items = value if isinstance(value, (list, tuple)) else [value]
        rebuilt = [_rebuilt(m, f"{what}[{i}]", lambda v, w: _metric_from_config(v, custom, w, loss_for))
                   for i, m in enumerate(items)]
        return rebuilt if isinstance(value, (list, tuple)) else rebuilt[0]

    def structured(key):
        metrics = cc.get(key)
        what = f"{where}: compile_config.{key}"
        if isinstance(metrics, dict):
            names = list(model._output_keys)
            return {k: metrics_of(v, f"{what}[{k!r}]", output_losses[names.index(k)] if k in names else None)
                    for k, v in metrics.items()}
        if isinstance(metrics, (list, tuple)):
            return [metrics_of(v, f"{what}[{i}]", output_losses[i] if i < len(output_losses) else None)
                    for i, v in enumerate(metrics)]
        return metrics
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=structured("metrics"),
                      weighted_metrics=structured("weighted_metrics"), loss_weights=cc.get("loss_weights"),
                      **_execution_flags(cc))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: the model cannot be compiled from compile_config: {e}") from e


def _one_output_metrics(metrics, where, custom, loss):
    """The metrics of a model of one output rebuilt from its compile_config (a list; Keras flattens one of lists,
    ``[["mae", "mse"]]``, to ``["mae", "mse"]``); other values as they are."""
    if not isinstance(metrics, (list, tuple)):
        return metrics
    listed = []
    for i, m in enumerate(metrics):
        if isinstance(m, (list, tuple)):
            listed += [(f"[{i}][{j}]", item) for j, item in enumerate(m)]
        else:
            listed.append((f"[{i}]", m))
    rebuilt = []
    for label, m in listed:
        what = f"{where}{label}"
        try:
            rebuilt.append(_metric_from_config(m, custom, what, loss))
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(e if str(e).startswith(what) else f"{what} ({m!r:.200}) cannot be rebuilt: {e}") from e
    return rebuilt


def _execution_flags(cc):
    """compile()'s execution arguments from a compile_config (Keras's defaults where it has none)."""
    return {"run_eagerly": cc.get("run_eagerly", False), "steps_per_execution": cc.get("steps_per_execution", 1),
            "jit_compile": cc.get("jit_compile", "auto")}


def compile_from_config(model, compile_config, where, custom_objects=None):
    """Compile ``model`` as Keras's ``compile_config`` says, custom losses, metrics and optimizers found through
    ``custom_objects`` and the registry."""
    if not isinstance(compile_config, dict):
        raise ValueError(f"{where}: 'compile_config' must be an object, got {compile_config!r}.")
    custom = CustomObjects(custom_objects)
    cc = _decode(compile_config, f"{where} (compile_config)", custom)
    if not isinstance(cc, dict):        # a tuple, array or dtype entry in its place
        raise ValueError(f"{where}: 'compile_config' must be an object, got {compile_config!r:.200}.")
    what = f"{where}: compile_config.optimizer"
    try:
        optimizer = _optimizer_from_config(cc.get("optimizer"), custom, what)
    except (TypeError, ValueError, KeyError, NotImplementedError) as e:
        raise ValueError(e if str(e).startswith(what) else f"{what} cannot be rebuilt: {e}") from e
    what = f"{where}: compile_config.loss"
    loss = cc.get("loss")
    output_names = getattr(model, "_output_keys", None)
    if output_names is not None and len(output_names) > 1:
        _compile_per_output(model, cc, optimizer, where, custom)
        return
    # The one loss (and metrics) of a model of one output may be written per output, as Keras writes them when
    # compiled so: a list of one loss, metrics as a list of lists; of a functional model also a dict keyed by
    # the output's name.
    if isinstance(loss, (list, tuple)) and len(loss) == 1:
        loss = loss[0]
    if output_names is not None:
        loss = _one_output_entry(loss, output_names, what)
        for key in ("metrics", "weighted_metrics"):
            if isinstance(cc.get(key), dict):
                cc = dict(cc, **{key: _one_output_entry(cc[key], output_names, f"{where}: compile_config.{key}")})
    given = loss
    try:
        loss = _loss_from_config(loss, custom, what)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(e if str(e).startswith(what) else f"{what} cannot be rebuilt: {e}") from e
    metrics, weighted = (_one_output_metrics(cc.get(key), f"{where}: compile_config.{key}", custom, loss)
                         for key in ("metrics", "weighted_metrics"))
    loss = _kept_name(given, loss, custom)
    try:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, weighted_metrics=weighted,
                      loss_weights=cc.get("loss_weights"), **_execution_flags(cc))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: the model cannot be compiled from compile_config: {e}") from e
