"""A functional model as Keras 3's ``config.json`` describes it: writing it, and rebuilding it from one.

Keras writes ``{"module": "keras.src.models.functional", "class_name":
"Functional", "config": {"name", "trainable", "layers", "input_layers",
"output_layers"}, "registered_name": "Functional", "build_config":
{"input_shape": null}, "compile_config": {...}}``. Each entry of ``layers`` is
the layer's usual entry (``keras_config``) plus its ``name`` and its
``inbound_nodes``: one ``{"args": [...], "kwargs": {...}}`` per call of the
layer that belongs to the model, each symbolic tensor in them written as
``{"class_name": "__keras_tensor__", "config": {"shape", "dtype",
"keras_history": [layer name, node index, tensor index]}}``, the node index
counting only the calls that belong to the model. ``input_layers`` and
``output_layers`` are such ``[layer name, node index, tensor index]`` triples:
one, a list, or a dict keyed by input name. Keras 2's form of a node, a list of
``[layer name, node index, tensor index, kwargs]``, is read too.

A model among the layers is written in full (``keras_config``), and its calls
with ``{"mask": null}`` among their kwargs, as Keras records them. Keras counts
the calls of a *functional* model from 1 in ``input_layers`` and
``output_layers`` (as if it had a call of its own before them; the calls
recorded in ``keras_history`` count from 0): written and read the same way.
A composite layer's call keeps all its arguments (tensors and constants,
positional and keyword); a ``mask`` a call was given is passed again where no
mask reaches the call along the edge (Keras records the mask it passed there
too: gpu_dl computes that one by itself).

A layer's call records what Keras's ``Layer.__call__`` fills in and keeps: the
default of ``training`` in its call() and, for a call() that takes a ``mask``,
the mask (None; one reaching the call along the edge is left out, as gpu_dl
writes none of the operations that make it). Keras keeps them where it made no
new dict of arguments while converting the inputs: in a call of one tensor of
the layer's dtype without keyword arguments, or any call of a layer that
leaves its inputs as they are.

An operation of keras.ops is one entry per use, whose call is read as the operation declares it
(``layers/operations.py``): its positional arguments tensors, lists of tensors where it takes them
(``list_arguments``: concatenate's, select's) or constants it decodes; its keywords those it takes
(``takes_keyword``), tensors where it takes them (``tensor_keywords``: rms_normalization's ``scale``,
dot_product_attention's ``bias`` and ``mask``, which are its own, not a layer's mask) and constants otherwise.

Rebuilding creates every layer from its entry (names looked up, nothing
imported or run, as ``keras_config`` does), then makes the recorded calls on
symbolic tensors in an order where each call's inputs exist (Kahn's
algorithm over the calls), and builds the model from the tensors
``input_layers`` and ``output_layers`` name. A reference to an unknown layer
or call, a cycle, an argument gpu_dl's layers do not take, a layer the output
does not depend on and an output the inputs do not reach are ValueErrors that
name the layer.
"""
from __future__ import annotations

import heapq
import inspect

import numpy

from .. import quantizers
from ..layers import indexing_operations, operations
from ..layers.keras_ops import operations as keras_ops
from ..layers.keras_ops.activations import ACTIVATIONS as ACTIVATION_OPERATIONS
from ..layers.operations import Operation
from ..layers.symbolic import flatten_structure, flatten_tensors
from .keras_config import (MAX_LAYERS, CustomObjects, _decode, _jsonable, _layer_entry, _layer_from_entry,
                           holds_model_entry, is_model_entry, nested_layer_from_entry, rooted)

_TENSOR = "__keras_tensor__"
# The keyword arguments of a recorded call that gpu_dl's layers take.
_CALL_KEYWORDS = ("training", "mask", "initial_state")
# The operations of keras.src.ops (numpy, nn, core) that gpu_dl rebuilds, by Keras's class name; and the two of
# keras.src.activations.activations (ReLU, which keras.activations.relu records, and Mish); and the fake
# quantization of keras.src.quantizers.quantizers.
OPERATIONS = {**operations.OPERATIONS, **indexing_operations.OPERATIONS, **keras_ops.OPERATIONS,
              "FakeQuantWithMinMaxVars": quantizers.FakeQuantWithMinMaxVars}


def _rebuilt_operation(entry):
    """The class gpu_dl rebuilds an entry of Keras's operations with (module and class name), or None."""
    cls = OPERATIONS.get(entry.get("class_name"))
    return cls if cls is not None and entry.get("module") == cls.keras_module else None


# ------------------------------------------------------------ config: write
def _tensor_entry(model, tensor):
    layer, _, index = tensor._keras_history
    node = layer._inbound_nodes[tensor._keras_history.node_index]
    return {"class_name": _TENSOR, "config": {"shape": _jsonable(tensor.shape, f"tensor '{tensor.name}'"),
                                              "dtype": tensor.dtype,
                                              "keras_history": [layer.name, model._node_position(node), index]}}


def _arguments(model, value):
    """A call's argument as Keras serialises it: tensors as references; GetItem's slices and Ellipsis, and
    Matmul's arrays, as Keras's serialisation library writes them."""
    if isinstance(value, (list, tuple)):
        return [_arguments(model, v) for v in value]
    if hasattr(value, "_keras_history"):
        return _tensor_entry(model, value)
    if isinstance(value, slice):
        return {"class_name": "__slice__", "config": {"start": value.start, "stop": value.stop, "step": value.step}}
    if value is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(value, numpy.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    return value


def _counts_calls_from_one(layer):
    """Whether Keras numbers ``layer``'s calls from 1 in ``input_layers``/``output_layers``: a functional model's."""
    from .functional import Functional
    return isinstance(layer, Functional)


def _reference(model, tensor):
    layer, _, index = tensor._keras_history
    position = model._node_position(layer._inbound_nodes[tensor._keras_history.node_index])
    return [layer.name, position + int(_counts_calls_from_one(layer)), index]


def _references(model, structure):
    """``input_layers``/``output_layers``: the model's inputs or outputs as references, in their structure (nested
    lists too: an RNN's states per cell)."""
    if isinstance(structure, dict):
        return {k: _references(model, v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_references(model, v) for v in structure]
    return _reference(model, structure)


def _recorded_mask(node):
    """Keras records the mask argument of a model's call: None in a graph (masks pass along the edges), one None
    per input for a model of several."""
    from .nested import is_model
    if not is_model(node.layer):
        return {}
    arg = node.args[0]
    keys = getattr(node, "keras_keys", None)
    if keys is not None:
        return {"mask": dict.fromkeys(keys)}
    return {"mask": [None] * len(arg) if isinstance(arg, list) else None}


# The layers whose Keras call() defaults `training` to a value (False for dropout, noise and the recurrent layers,
# True for the image augmentation and resizing layers): Keras records that default in each call of them in a
# graph. A gpu_dl class of one of these names stands for Keras's, as does a subclass that keeps its call.
_KERAS_TRAINING_DEFAULTS = {
    **dict.fromkeys(("AdditiveAttention", "AlphaDropout", "Attention", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
                     "Dropout", "GRU", "GRUCell", "GaussianDropout", "GaussianNoise", "LSTM", "LSTMCell", "RNN",
                     "SimpleRNN", "SimpleRNNCell", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "SpectralNormalization", "StackedRNNCells"), False),
    **dict.fromkeys(("AugMix", "AutoContrast", "CenterCrop", "ContrastLimitedAdaptiveHistogramEqualization",
                     "CutMix", "Equalization", "MaxNumBoundingBoxes", "MixUp", "Pipeline",
                     "RandAugment", "RandomBrightness", "RandomColorDegeneration", "RandomColorJitter",
                     "RandomContrast", "RandomCrop", "RandomElasticTransform",
                     "RandomErasing", "RandomFlip", "RandomGaussianBlur",
                     "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective", "RandomPosterization",
                     "RandomRotation", "RandomSaturation", "RandomSharpness", "RandomShear", "RandomTranslation",
                     "RandomZoom", "Resizing", "Solarization"), True),
}


# The layers whose Keras call() takes a `mask` argument: Keras's Layer.__call__ fills it in with the mask of the
# call's only tensor argument, and records it in the call where it records the training default (below).
_KERAS_MASK_CALLS = frozenset((
    "AdditiveAttention", "Attention", "BatchNormalization", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D",
    "ConvLSTM3D", "GRU", "GlobalAveragePooling1D", "GlobalAvgPool1D", "LSTM", "Lambda", "Pipeline", "RNN",
    "SimpleRNN", "Softmax", "TimeDistributed"))
# The layers Keras leaves the inputs of unconverted (`_convert_input_args = False`).
_KERAS_UNCONVERTED = frozenset((
    "CategoryEncoding", "HashedCrossing", "Hashing", "IntegerLookup", "Pipeline", "RandomCrop", "RandomFlip",
    "StringLookup", "TextVectorization"))


def _keras_call_lookup(layer, table, from_signature):
    """What Keras reads off the call() it runs for ``layer``: ``table[name]`` for the first of gpu_dl's classes in
    its MRO whose name is in ``table`` (a class of one of those names stands for Keras's, as does a subclass that
    keeps its call), ``from_signature(signature)`` for a call() of the caller's own before it; None for neither."""
    from .. import layers as layers_module
    for cls in type(layer).__mro__:
        if not cls.__module__.startswith("gpu_dl."):
            if "call" in cls.__dict__:
                try:
                    return from_signature(inspect.signature(cls.__dict__["call"]))
                except (TypeError, ValueError):
                    return None
            continue
        if cls.__name__ in table and getattr(layers_module, cls.__name__, None) is cls:
            return table[cls.__name__]
    return None


def _bool_default(signature):
    parameter = signature.parameters.get("training")
    return parameter.default if parameter is not None and isinstance(parameter.default, bool) else None


def keras_training_default(layer):
    """The default of ``training`` in the call() Keras runs for ``layer`` (True, False, or None where it has none or
    defaults it to None): from the table above for gpu_dl's classes, from the signature of a call() of the
    caller's own, as Keras reads it."""
    return _keras_call_lookup(layer, _KERAS_TRAINING_DEFAULTS, _bool_default)


def keras_call_takes_mask(layer):
    """Whether the call() Keras runs for ``layer`` takes a ``mask`` argument: from the table above for gpu_dl's
    classes, from the signature of a call() of the caller's own."""
    return bool(_keras_call_lookup(layer, dict.fromkeys(_KERAS_MASK_CALLS, True),
                                   lambda signature: "mask" in signature.parameters))


def _dtype_name(dtype):
    return getattr(dtype, "name", str(dtype))


def _keras_records_filled_arguments(layer, node):
    """Whether Keras records the arguments its Layer.__call__ fills in (training's default, the mask) among a
    call's kwargs. It fills them into the dict of keyword arguments the call was given, which becomes the node's
    unless Keras converted the inputs first, making new ones: it does for any call of a layer that converts
    its inputs, except a call of one tensor of the layer's dtype with no keyword arguments."""
    if _keras_call_lookup(layer, dict.fromkeys(_KERAS_UNCONVERTED, True), lambda signature: False):
        return True
    if node.kwargs or len(node.args) != 1 or not hasattr(node.args[0], "_keras_history"):
        return False
    return _dtype_name(node.args[0].dtype) == _dtype_name(getattr(layer, "dtype", node.args[0].dtype))


def _with_filled_arguments(layer, node, kwargs):
    """A node's recorded keyword arguments with those Keras fills in and records: its call's ``training`` default
    and, for a call that takes a mask, the mask (None; gpu_dl does not write the operations of a mask that
    reaches the call along the edge, so it leaves that one out, computing it again on loading)."""
    if not _keras_records_filled_arguments(layer, node):
        return kwargs
    filled = {}
    default = keras_training_default(layer)
    if "training" not in kwargs and default is not None:
        filled["training"] = default
    if "mask" not in kwargs and keras_call_takes_mask(layer):
        tensors = flatten_tensors(node.args[0])
        if all(getattr(t, "_mask", None) is None for t in tensors):
            filled["mask"] = None
    return {**filled, **kwargs}


def _operation_entry(operation):
    """An arithmetic operation's entry, as Keras writes one of keras.ops (no build config, no dtype)."""
    name = type(operation).__name__
    return {"module": operation.keras_module, "class_name": name, "config": operation.get_config(),
            "registered_name": name}


def _node_entry(model, layer, node):
    if isinstance(layer, Operation):
        args, kwargs = layer.keras_call(node.input_tensors)
        return {"args": [_arguments(model, arg) for arg in args],
                "kwargs": {k: _arguments(model, v) for k, v in kwargs.items()}}
    if hasattr(layer, "keras_call_arguments"):
        args, kwargs = layer.keras_call_arguments(node)
        return {"args": [_arguments(model, arg) for arg in args],
                "kwargs": _with_filled_arguments(layer, node, {k: _arguments(model, v) for k, v in kwargs.items()})}
    args = [_arguments(model, arg) for arg in node.args]
    keys = getattr(node, "keras_keys", None)
    if keys is not None:
        # A model made with a dict of inputs, called on one: Keras records the dict (its tensors by sorted key).
        tensors = args[0] if isinstance(node.args[0], list) else [args[0]]
        args = [dict(zip(keys, tensors))]
    return {"args": args, "kwargs": _with_filled_arguments(
        layer, node, {**{k: _arguments(model, v) for k, v in node.kwargs.items()}, **_recorded_mask(node)})}


def functional_config(model):
    """The inner ``config`` of a functional model in Keras 3's form."""
    layers = []
    for layer in model._operations:
        entry = _operation_entry(layer) if isinstance(layer, Operation) else _layer_entry(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [_node_entry(model, layer, node) for node in layer._inbound_nodes
                                  if node in model._node_set and not node.is_input]
        layers.append(entry)
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": _references(model, model._inputs_struct),
            "output_layers": _references(model, model._outputs_struct)}


def functional_model_config(model):
    """The whole ``config.json`` object of a functional model (without the compile settings)."""
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": functional_config(model),
            "registered_name": "Functional", "build_config": {"input_shape": None}}


# ------------------------------------------------------------- config: read
def _is_reference(value):
    return (isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value[1:]))


def _parse_tensor(value, where):
    """``(layer name, node index, tensor index)`` of a ``__keras_tensor__`` entry."""
    inner = value.get("config") if isinstance(value, dict) else None
    history = inner.get("keras_history") if isinstance(inner, dict) else None
    if not _is_reference(history):
        raise ValueError(f"{where}: a '{_TENSOR}' entry needs config.keras_history = [layer name, node index, tensor "
                         f"index], got {value!r:.200}.")
    return tuple(history)


def _parse_argument(value, where):
    """A recorded argument: a tensor reference, or a list of them."""
    if isinstance(value, dict) and value.get("class_name") == _TENSOR:
        return _parse_tensor(value, where)
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        inner = value.get("config")
        value = inner.get("value") if isinstance(inner, dict) else None
    if isinstance(value, list) and value:
        return [_parse_argument(v, where) for v in value]
    if isinstance(value, dict) and value and "class_name" not in value and all(isinstance(k, str) for k in value):
        # A model made with a dict of inputs, called on one.
        return {k: _parse_argument(v, where) for k, v in value.items()}
    raise ValueError(f"{where}: a call's argument must be a symbolic tensor ('{_TENSOR}'), or a list or dict of "
                     f"them, got {value!r:.200}.")


def _parse_value(value, where):
    """A recorded argument of a composite layer's call: tensor references (in their structure), or a constant."""
    return _parse_argument(value, where) if _raw_sources(value) else _Constant(value)


def _takes_arguments(layer):
    """Whether ``layer``'s call takes any arguments (a composite layer's: tensors and constants, bound to its
    call's signature)."""
    from .nested import is_model
    return layer is not None and layer._composite and not is_model(layer)


def _keyword_inputs_placed(layer, args, kwargs):
    """``(args, kwargs)`` of a node with the inputs Keras recorded by keyword moved to ``args``. Keras records a
    call's arguments as they were given, so a call that named its first argument (``layer(inputs=x)``,
    ``mha(query=q, value=v)``) has ``{"args": [], "kwargs": {"inputs": ...}}``; gpu_dl's nodes keep it first
    among ``args``, and MultiHeadAttention's value after its query."""
    name = layer.first_argument_name()
    if not args and name is not None and name in kwargs:
        kwargs = dict(kwargs)
        args = [kwargs.pop(name)]
    if getattr(layer, "positional_inputs", 0) and len(args) == 1 and "value" in kwargs:
        kwargs = dict(kwargs)
        args = args + [kwargs.pop("value")]
    return args, kwargs


def _parse_node(data, where, operations=(), layer=None):
    """``(argument, kwargs)`` of one entry of ``inbound_nodes``; tensors as reference triples. A ``mask`` made by
    one of the ``operations`` (Keras's record of a mask's computation) is left out: gpu_dl computes the same
    mask along the edges by itself; another is the call's own, given where no mask reaches it along the edge. A
    composite layer's further arguments are kept as ``call_args`` and ``call_kwargs``."""
    if isinstance(data, list):
        # Keras 2's form: one [layer name, node index, tensor index(, kwargs)] per input tensor.
        refs, kwargs = [], {}
        for item in data:
            if not isinstance(item, list) or len(item) not in (3, 4) or not _is_reference(item[:3]):
                raise ValueError(f"{where}: a node in Keras 2's form lists [layer name, node index, tensor index"
                                 f"(, kwargs)] per input, got {item!r:.200}.")
            refs.append(tuple(item[:3]))
            if len(item) == 4:
                if not isinstance(item[3], dict):
                    raise ValueError(f"{where}: the kwargs of a node must be an object, got {item[3]!r:.200}.")
                kwargs = item[3]
        if not refs:
            raise ValueError(f"{where}: a node without inputs.")
        argument = refs[0] if len(refs) == 1 else refs
    elif isinstance(data, dict):
        args, kwargs = data.get("args"), data.get("kwargs") or {}
        positional = getattr(layer, "positional_inputs", 0)
        given = min(len(args), positional) if positional and isinstance(args, list) else None
        if layer is not None and isinstance(args, list) and isinstance(kwargs, dict):
            args, kwargs = _keyword_inputs_placed(layer, args, kwargs)
        if positional and isinstance(args, list) and 2 <= len(args) <= positional and isinstance(kwargs, dict):
            # MultiHeadAttention's call(query, value, key=None, ...): gpu_dl keeps its inputs as one list, and
            # how many of them the call gave positionally, to make the call again as it was recorded
            args = [args + ([kwargs["key"]] if len(args) == 2 and kwargs.get("key") is not None else [])]
            kwargs = {k: v for k, v in kwargs.items() if k != "key"}
            argument, parsed = _parse_node({"args": args, "kwargs": kwargs}, where, operations, layer)
            return argument, {**parsed, "positional": given}
        if not isinstance(kwargs, dict):
            raise ValueError(f"{where}: a node's 'kwargs' must be an object, got {kwargs!r:.200}.")
        if _takes_arguments(layer) and isinstance(args, list) and args:
            further = {"call_args": [_parse_value(a, where) for a in args[1:]],
                       "call_kwargs": {k: _parse_value(v, where) for k, v in kwargs.items() if k not in _CALL_KEYWORDS}}
            own = {k: v for k, v in kwargs.items() if k in _CALL_KEYWORDS}
            argument, parsed = _parse_node({"args": args[:1], "kwargs": own}, where, operations)
            return argument, {**parsed, **further}
        if not isinstance(args, list) or len(args) != 1:
            raise ValueError(f"{where}: a node's 'args' must be a list holding one argument (a tensor or a list of "
                             f"tensors): gpu_dl's layers take one; got {args!r:.200}.")
        argument = _parse_argument(args[0], where)
    else:
        raise ValueError(f"{where}: a node must be an object with 'args' and 'kwargs', got {data!r:.200}.")
    extra = tuple(k for k in getattr(layer, "call_keywords", ()) if k != "key")
    unknown = sorted(set(kwargs) - set(_CALL_KEYWORDS) - set(extra))
    if unknown:
        raise ValueError(f"{where}: the call argument(s) {', '.join(repr(k) for k in unknown)} are not taken by "
                         f"gpu_dl's {type(layer).__name__ if layer is not None else 'layers'} (it takes "
                         f"{', '.join(_CALL_KEYWORDS + extra)}).")
    parsed = {}
    for key in extra:
        value = kwargs.get(key)
        if key == "attention_mask":
            if value is not None:
                parsed[key] = _parse_argument(value, where)
                if not isinstance(parsed[key], tuple):
                    raise ValueError(f"{where}: `attention_mask` must be one tensor, got {value!r:.200}.")
        elif value is not None:
            if not isinstance(value, bool):
                raise ValueError(f"{where}: `{key}` must be true or false, got {value!r:.100}.")
            parsed[key] = value
    if kwargs.get("training") is not None:
        if not isinstance(kwargs["training"], bool):
            raise ValueError(f"{where}: `training` must be true, false or null, got {kwargs['training']!r:.100}.")
        parsed["training"] = kwargs["training"]
    recorded_mask = kwargs.get("mask")
    if isinstance(recorded_mask, dict) and recorded_mask and all(v is None for v in recorded_mask.values()):
        recorded_mask = None        # a dict-input model's call: one None per key
    if recorded_mask is not None and recorded_mask != [None] * _list_length(recorded_mask):
        mask = _parse_argument(recorded_mask, where)
        if not (isinstance(mask, tuple) and mask[0] in operations):
            parsed["mask"] = mask
    if kwargs.get("initial_state") is not None:
        states = _parse_argument(kwargs["initial_state"], where)     # nested per cell for an RNN of several
        if isinstance(states, dict):
            raise ValueError(f"{where}: `initial_state` must be a tensor or a list of them, got {states!r:.200}.")
        parsed["initial_state"] = states if isinstance(states, list) else [states]
    return argument, parsed


def _list_length(value):
    return len(value) if isinstance(value, list) else -1


class _Constant:
    """A number among an operation's recorded arguments."""

    def __init__(self, value):
        self.value = value


def _is_list_entry(value):
    return isinstance(value, list) or (isinstance(value, dict) and value.get("class_name") == "__tuple__")


def _parse_operation_node(data, where, operation):
    """``(args, kwargs)`` of an operation's recorded call: each argument a tensor reference, a list of them (at
    the positions the operation takes lists of tensors in), or a ``_Constant`` of what the operation decodes
    (numbers, GetItem's key, Matmul's array, rearrange's pattern); each keyword a tensor reference (those the
    operation takes tensors for) or a ``_Constant``. What the operation's call does not take is a ValueError."""
    args = data.get("args") if isinstance(data, dict) else None
    if not isinstance(args, list) or (len(args) != operation.arity if operation.arity is not None else not args):
        raise ValueError(f"{where}: the operation takes {operation.arity} positional argument(s); its node lists "
                         f"{args!r:.200}.")
    kwargs = data.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}: a node's 'kwargs' must be an object, got {kwargs!r:.200}.")
    unknown = [k for k in kwargs if not operation.takes_keyword(k)]
    if unknown:
        raise ValueError(f"{where}: the operation {type(operation).__name__} takes {operation.keywords_taken()}; "
                         f"its call gives {', '.join(repr(k) for k in unknown)}.")
    parsed = []
    for position, value in enumerate(args):
        if isinstance(value, dict) and value.get("class_name") == _TENSOR:
            parsed.append(_parse_tensor(value, where))
        elif position in operation.list_arguments and _is_list_entry(value):
            parsed.append(_parse_argument(value, where))
        else:
            parsed.append(_Constant(operation.decode_argument(position, value, where)))
    keywords = {}
    for key, value in kwargs.items():
        if not _raw_sources(value):
            keywords[key] = _Constant(operation.decode_keyword(key, value, where))
        elif key not in operation.tensor_keywords:
            raise ValueError(f"{where}: the keyword argument {key!r} of {type(operation).__name__} takes a constant, "
                             f"not a tensor; got {value!r:.200}.")
        elif isinstance(value, dict) and value.get("class_name") == _TENSOR:
            keywords[key] = _parse_tensor(value, where)
        else:
            raise ValueError(f"{where}: the keyword argument {key!r} of {type(operation).__name__} takes one tensor, "
                             f"got {value!r:.200}.")
    if all(isinstance(p, _Constant) for p in parsed + list(keywords.values())):
        raise ValueError(f"{where}: the operation's arguments hold no tensor.")
    return parsed, keywords


def _operation_from_entry(entry, name, where):
    """An operation from its entry: Keras writes its name, and its settings (``axis``, ...) where it has some."""
    config = entry.get("config")
    cls = OPERATIONS[entry["class_name"]]
    keys = ("dtype",) if cls in (keras_ops.Cast, keras_ops.ZerosLike, keras_ops.OnesLike) else cls.config_keys
    unknown = sorted(set(config) - {"name"} - set(keys))
    if unknown:
        takes = f"a name and {', '.join(keys)}" if keys else "only a name"
        raise ValueError(f"{where}: the operation {entry['class_name']} takes {takes} in its config, got "
                         f"{', '.join(repr(k) for k in unknown)}.")
    if config.get("name", name) != name:
        raise ValueError(f"{where}: its config names it {config['name']!r}; the entry's name and its config's must "
                         "agree.")
    try:
        return cls(name=name, **{k: config[k] for k in keys if k in config})
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: the operation {entry['class_name']} cannot be made from its config: {e}") from e


def _references_in(structure):
    if isinstance(structure, _Constant):
        return []
    if isinstance(structure, dict):
        return [r for key in sorted(structure) for r in _references_in(structure[key])]
    if isinstance(structure, list):
        return [r for item in structure for r in _references_in(item)]
    return [structure]


def _raw_sources(value):
    """The names of the layers or operations whose tensors a stored call (its JSON, unparsed) reads."""
    if isinstance(value, dict):
        if value.get("class_name") == _TENSOR:
            history = (value.get("config") or {}).get("keras_history")
            return [history[0]] if isinstance(history, list) and history else []
        return [source for item in value.values() for source in _raw_sources(item)]
    if isinstance(value, list):
        return [source for item in value for source in _raw_sources(item)]
    return []


def _map_references(value, tensor_of, where, what):
    """The tensors ``input_layers``/``output_layers`` name: one triple, a list of them, or a dict of them."""
    if _is_reference(value):
        return tensor_of(tuple(value), f"{where}: {what}", model_reference=True)
    if isinstance(value, dict) and value:
        return {k: _map_references(v, tensor_of, where, what) for k, v in value.items()}
    if isinstance(value, list) and value:
        return [_map_references(v, tensor_of, where, what) for v in value]
    raise ValueError(f"{where}: `{what}` must be [layer name, node index, tensor index], or a list or dict of them; "
                     f"got {value!r:.200}.")


def functional_from_config(config, where="model config", custom_objects=None):
    """A ``Functional`` model from Keras 3's serialised form (the whole ``config.json`` object, or its inner
    ``config``); uncompiled."""
    from ..layers.core import InputLayer
    from .functional import Functional
    custom = CustomObjects(custom_objects)
    inner = config.get("config") if "class_name" in config else config
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise ValueError(f"{where}: a Functional config needs a 'config' object with a 'layers' list.")
    entries = inner["layers"]
    if len(entries) > MAX_LAYERS:
        raise ValueError(f"{where}: the model lists {len(entries)} layers, more than the {MAX_LAYERS} gpu_dl rebuilds; "
                         "it is not a model config (corrupt or crafted).")
    for key in ("input_layers", "output_layers"):
        if key not in inner:
            raise ValueError(f"{where}: a Functional config needs '{key}'.")
    # Keras 3 records how it computes masks of padded steps (Embedding's `ids != 0`, a merge's OR of masks, ...)
    # as operations of keras.ops whose results reach the layers only as `mask` arguments. gpu_dl computes the
    # same masks along the edges by itself, so those operations are left out; one whose result reaches a
    # layer's input, or the model's, is refused below.
    # The arithmetic operations gpu_dl has (operators on tensors: Add, Multiply, ...) are rebuilt as layers are.
    operations, rebuilt = {}, set()
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("module"), str) and (
                entry["module"].startswith("keras.src.ops.")
                or entry["module"] in (ACTIVATION_OPERATIONS, quantizers.FakeQuantWithMinMaxVars.keras_module)):
            name = entry.get("name", (entry.get("config") or {}).get("name"))
            if not isinstance(name, str):
                continue
            if _rebuilt_operation(entry) is not None:
                rebuilt.add(name)
            else:
                operations[name] = entry.get("class_name")
    # An operation reading one gpu_dl does not rebuild is not rebuilt either: Keras also records the
    # operations that compute masks (a merge layer's ExpandDims of a LogicalOr), which no output reads.
    changed = True
    while changed:
        changed = False
        for entry in entries:
            name = isinstance(entry, dict) and entry.get("name", (entry.get("config") or {}).get("name"))
            if name in rebuilt and any(source in operations for source in _raw_sources(entry.get("inbound_nodes"))):
                rebuilt.discard(name)
                operations[name] = entry.get("class_name")
                changed = True

    # The layers, each from its entry; their calls parsed but not made yet.
    layers, positions, calls = {}, {}, {}
    for i, entry in enumerate(entries):
        at = f"{where}, layers[{i}]"
        if isinstance(entry, dict) and entry.get("name", (entry.get("config") or {}).get("name")) in operations:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ValueError(f"{at}: a layer entry must be an object with a 'config' object, got {entry!r:.200}.")
        name = entry.get("name", entry["config"].get("name"))
        if not isinstance(name, str) or not name:
            raise ValueError(f"{at}: a layer entry needs a 'name' string.")
        at = f"{where}, layer '{name}'"
        if name in layers:
            raise ValueError(f"{at}: the name is used by more than one layer; all layer names must be unique.")
        inbound = entry.get("inbound_nodes", [])
        if not isinstance(inbound, list):
            raise ValueError(f"{at}: 'inbound_nodes' must be a list, got {inbound!r:.200}.")
        if name in rebuilt:
            layers[name], positions[name] = _operation_from_entry(entry, name, at), i
            if len(inbound) != 1:
                raise ValueError(f"{at}: an operation is made for one call (Keras makes one per use), but the config "
                                 f"lists {len(inbound)} call(s) of it.")
            calls[name] = [_parse_operation_node(inbound[0], f"{at}, inbound_nodes[0]", layers[name])]
            continue
        bare = {k: v for k, v in entry.items() if k not in ("name", "inbound_nodes")}
        if is_model_entry(bare) or holds_model_entry(bare):
            layer = nested_layer_from_entry(bare, f"{where}, layers[{i}]", custom_objects)
        else:
            layer = _layer_from_entry(_decode(bare, at, custom), f"{where}, layers[{i}]", custom)
        rooted(layer, bare)
        # A config without a name (a get_config of the caller's own that leaves it out) gives the layer a new
        # one, as in Keras; the entry's name still links its calls.
        if layer.name != name and "name" in (bare.get("config") or {}):
            raise ValueError(f"{at}: its config names it '{layer.name}'; the entry's name and its config's must agree.")
        if isinstance(layer, InputLayer) and inbound:
            raise ValueError(f"{at}: an InputLayer is called by nothing, but the config lists {len(inbound)} call(s) "
                             "of it in 'inbound_nodes'.")
        layers[name], positions[name] = layer, i
        calls[name] = [_parse_node(data, f"{at}, inbound_nodes[{k}]", set(operations), layer)
                       for k, data in enumerate(inbound)]

    def node_count(name):
        return 1 if isinstance(layers[name], InputLayer) else len(calls[name])

    # Which calls each call waits for: those whose outputs it reads, and the same layer's call before it (a
    # layer's calls are numbered in the order they were made).
    waiting, followers = {}, {}
    for name, layer_calls in calls.items():
        for k, (argument, kwargs) in enumerate(layer_calls):
            at = f"{where}, layer '{name}', inbound_nodes[{k}]"
            needs = set()
            if isinstance(layers[name], Operation):
                # An operation's keywords are its call's own (dot_product_attention's `mask` among them).
                read = _references_in(argument) + _references_in(kwargs)
            else:
                read = (_references_in(argument) + _references_in(kwargs.get("initial_state", []))
                        + ([kwargs["attention_mask"]] if "attention_mask" in kwargs else [])
                        + _references_in(kwargs.get("mask", []))
                        + _references_in(kwargs.get("call_args", []))
                        + _references_in(kwargs.get("call_kwargs", {})))
            for ref in read:
                source, index, _ = ref
                if source in operations:
                    raise ValueError(f"{at}: it reads the result of the operation '{source}' "
                                     f"({operations[source]}), which gpu_dl does not rebuild: its functional models "
                                     "are made of layers (keras.ops applied to tensors are not supported).")
                if source not in layers:
                    raise ValueError(f"{at}: it reads a tensor of the unknown layer '{source}' (keras_history "
                                     f"{list(ref)}); the config has no layer of that name.")
                if index >= node_count(source):
                    raise ValueError(f"{at}: it reads the output of call {index} of layer '{source}', which the "
                                     f"config lists {node_count(source)} call(s) of.")
                if not isinstance(layers[source], InputLayer):
                    needs.add((source, index))
            if k > 0:
                needs.add((name, k - 1))
            waiting[(name, k)] = needs
            for need in needs:
                followers.setdefault(need, []).append((name, k))
    ready = [(positions[n], k, n) for (n, k), needs in waiting.items() if not needs]
    heapq.heapify(ready)
    outputs = {(name, 0): [layer.output] for name, layer in layers.items() if isinstance(layer, InputLayer)}

    def tensor_of(ref, at, model_reference=False):
        source, index, position = ref
        if source in operations:
            raise ValueError(f"{at}: the result of the operation '{source}' ({operations[source]}), which gpu_dl does "
                             "not rebuild (keras.ops applied to tensors are not supported).")
        if source not in layers:
            raise ValueError(f"{at}: the unknown layer '{source}' (reference {list(ref)}).")
        if model_reference and _counts_calls_from_one(layers[source]):
            index -= 1
        made = outputs.get((source, index))
        if made is None:
            raise ValueError(f"{at}: call {index} of layer '{source}' (reference {list(ref)}) is not in the config.")
        if position >= len(made):
            raise ValueError(f"{at}: layer '{source}' gives {len(made)} output(s) per call; the reference {list(ref)} "
                             f"asks for output {position}.")
        return made[position]

    def resolve(argument, at):
        if isinstance(argument, dict):
            return {k: resolve(a, at) for k, a in argument.items()}
        return [resolve(a, at) for a in argument] if isinstance(argument, list) else tensor_of(argument, at)

    done = 0
    while ready:
        _, k, name = heapq.heappop(ready)
        argument, kwargs = calls[name][k]
        at = f"{where}, layer '{name}', inbound_nodes[{k}]"
        layer = layers[name]
        call_kwargs = {}
        if isinstance(layer, Operation):
            keywords, kwargs = kwargs, {}     # the operation's own keywords, given to its apply below
        if "training" in kwargs:
            call_kwargs["training"] = kwargs["training"]
        if "initial_state" in kwargs:
            call_kwargs["initial_state"] = resolve(kwargs["initial_state"], at)
        for key in getattr(layer, "call_keywords", ()):     # the layer's own options (use_causal_mask, reverse, ...)
            if key not in ("key", "attention_mask") and key in kwargs:
                call_kwargs[key] = kwargs[key]
        if "attention_mask" in kwargs:
            call_kwargs["attention_mask"] = tensor_of(kwargs["attention_mask"], at)

        def value_of(a):
            return a.value if isinstance(a, _Constant) else resolve(a, at)
        further = [value_of(a) for a in kwargs.get("call_args", [])]
        call_kwargs.update({key: value_of(a) for key, a in kwargs.get("call_kwargs", {}).items()})
        try:
            if isinstance(layer, Operation):
                result = layer.apply(*[value_of(a) for a in argument], **{k: value_of(v) for k, v in keywords.items()})
            else:
                tensors = resolve(argument, at)
                if "mask" in kwargs and not any(t._mask is not None for t in flatten_tensors(tensors)):
                    call_kwargs["mask"] = resolve(kwargs["mask"], at)   # the call's own: none along the edge
                if "positional" in kwargs and "mask" not in call_kwargs:
                    # The inputs as the recorded call gave them: the first ones positionally, the others by name.
                    given = kwargs["positional"]
                    call_kwargs.update(zip(layer.input_names[given:], tensors[given:]))
                    result = layer(*tensors[:given], **call_kwargs)
                else:
                    result = layer(tensors, *further, **call_kwargs)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{at}: the call cannot be made: {e}") from e
        # flat, as references count a call's outputs: a dict-output model's by key, an RNN's states nested per cell
        outputs[(name, k)] = flatten_structure(result)
        done += 1
        for follower in followers.get((name, k), []):
            waiting[follower].discard((name, k))
            if not waiting[follower]:
                heapq.heappush(ready, (positions[follower[0]], follower[1], follower[0]))
    if done != len(waiting):
        stuck = sorted({n for (n, k), needs in waiting.items() if needs}, key=positions.get)
        raise ValueError(f"{where}: the calls of layer(s) {', '.join(repr(n) for n in stuck)} wait on each other: the "
                         "graph has a cycle, so it cannot be rebuilt.")

    inputs = _map_references(inner["input_layers"], tensor_of, where, "input_layers")
    outputs_struct = _map_references(inner["output_layers"], tensor_of, where, "output_layers")
    trainable = inner.get("trainable", True)
    try:
        model = Functional(inputs, outputs_struct, name=inner.get("name"),
                           trainable=True if trainable is None else bool(trainable))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from e
    # An operation whose result only fed a mask (Keras's record of how it computed one) is left out.
    loose = [name for name, layer in layers.items()
             if not isinstance(layer, Operation) and not any(layer is m for m in model.layers)]
    if loose:
        raise ValueError(f"{where}: the layer(s) {', '.join(repr(n) for n in loose)} are listed but the model's output "
                         "does not depend on them (dangling); the config does not describe one connected model.")
    return model
