"""``clone_model``: a model of the same architecture with new layers, and so new, freshly initialised weights.

As Keras 3.15's ``keras.models.clone_model``:

- a ``Sequential`` is rebuilt from clones of its layers (and its input, or the
  one ``input_tensors`` gives);
- a functional model is rebuilt by making its recorded calls again, in order,
  with clones of its layers on new ``Input`` tensors (or ``input_tensors``);
  a layer called several times is cloned once and called as many times;
- ``clone_function(layer)`` makes each clone (default: the layer rebuilt from
  its config, as Keras's ``layer.__class__.from_config(layer.get_config())``;
  gpu_dl goes through the same entries its ``.keras`` files hold, which also
  rebuild the layers wrappers and recurrent layers hold);
- ``call_function(layer, x, **kwargs)`` makes each call of a functional model
  (it may add layers around the call);
- with ``recursive=True`` the models among the layers are cloned with
  ``clone_model`` too (``call_function`` reaches only the functional ones);
  without it they are passed to ``clone_function`` like any layer;
- a compiled model's clone is compiled with the same settings (a new
  optimizer, without its state).

The weights are not copied (Keras does not copy them either): call
``clone.set_weights(model.get_weights())`` for that. The arithmetic operations
between layers (``x + y`` on symbolic tensors) hold no weights and are made
again without going through ``clone_function``.

A model that is neither Sequential nor functional can be cloned only through
its own ``get_config``/``from_config``, and then without ``clone_function``,
``input_tensors`` or ``call_function``, as in Keras.
"""
from __future__ import annotations

from ..layers.base import Layer
from ..layers.core import Input, InputLayer
from ..layers.operations import Operation
from ..layers.symbolic import KerasTensor, flatten_structure
from .functional import Functional
from .model import Model
from .sequential import Sequential


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    """A copy of ``model`` with new layers and freshly initialised weights; see the module docstring."""
    cache = kwargs.pop("cache", None)
    if kwargs:
        raise ValueError(f"clone_model: unexpected keyword argument(s): {tuple(kwargs)}.")
    if not isinstance(model, Model):
        raise TypeError(f"clone_model: `model` must be a gpu_dl Model (Sequential or functional), got {model!r:.200} "
                        f"of type {type(model).__name__}.")
    for name, fn in (("clone_function", clone_function), ("call_function", call_function)):
        if fn is not None and not callable(fn):
            raise ValueError(f"Expected `{name}` argument to be a callable. Received: {name}={fn!r:.200}")
    if isinstance(model, (Sequential, Functional)):
        clone = _wrap_clone_function(clone_function, call_function, recursive, {} if cache is None else cache)
        if isinstance(model, Sequential):
            if call_function is not None:
                raise ValueError("`call_function` argument is not supported with Sequential models. In a Sequential "
                                 "model, layers aren't called at model-construction time (they're merely listed). "
                                 f"Use `call_function` with Functional models only. Received model '{model.name}' "
                                 f"of type '{type(model).__name__}'.")
            return _clone_sequential(model, clone, input_tensors)
        return _clone_functional(model, clone, input_tensors, call_function)
    if clone_function is not None or input_tensors is not None:
        raise ValueError("Arguments `clone_function` and `input_tensors` are only supported for Sequential models or "
                         f"Functional models. Received model of type '{type(model).__name__}'.")
    if call_function is not None:
        raise ValueError("Argument `call_function` is only supported for Functional models. Received model of type "
                         f"'{type(model).__name__}'.")
    if type(model).get_config is Layer.get_config:
        raise ValueError(f"clone_model: model '{model.name}' is a subclassed model ({type(model).__name__}), whose "
                         "layers are Python code: it can be cloned only when its class implements get_config() (and "
                         "from_config() where its constructor does not take that config). Implement them, or build "
                         "the model as a Sequential or functional model.")
    return type(model).from_config(model.get_config())


# ------------------------------------------------------------ one layer
def _default_clone(layer):
    """``layer`` rebuilt from its config, with new weights: the entry a ``.keras`` file would hold for it, read
    back the way loading reads it (nothing imported: its own class is given by name)."""
    from .keras_config import CustomObjects, _decode, _layer_entry, _layer_from_entry, model_config, model_from_config
    if isinstance(layer, Model):
        return model_from_config(model_config(layer), f"clone of model '{layer.name}'", _own_classes(layer))
    entry = _layer_entry(layer)
    custom = CustomObjects(_own_classes(layer))
    where = f"clone of layer '{layer.name}'"
    return _layer_from_entry(_decode(entry, where, custom), where, custom)


def _own_classes(layer):
    """The classes of ``layer`` and of the layers it holds that are not gpu_dl's own, by their names."""
    from .keras_config import _layer_classes
    found, stack, seen = {}, [layer], set()
    builtin = _layer_classes()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        cls = type(item)
        if builtin.get(cls.__name__) is not cls and cls not in (Sequential, Functional):
            from ..catalogue import get_registered_name
            found[cls.__name__] = cls
            found[get_registered_name(cls)] = cls
        if isinstance(item, Model):
            stack.extend(item.layers)
        stack.extend(v for v in vars(item).values() if isinstance(v, Layer))
    return found


def _wrap_clone_function(clone_function, call_function, recursive, cache):
    """Each layer cloned once (a shared layer stays shared), and with ``recursive`` models cloned whole."""
    make = clone_function if clone_function is not None else _default_clone

    def clone(layer):
        if id(layer) in cache:
            return cache[id(layer)]
        if recursive and isinstance(layer, Sequential):
            made = clone_model(layer, clone_function=clone_function, recursive=True, cache=cache)
        elif recursive and isinstance(layer, Functional):
            made = clone_model(layer, clone_function=clone_function, call_function=call_function, recursive=True,
                               cache=cache)
        else:
            made = make(layer)
            if not isinstance(made, Layer):
                raise TypeError(f"clone_model: `clone_function` returned {made!r:.200} for layer '{layer.name}'; it "
                                "must return a gpu_dl layer.")
        cache[id(layer)] = made
        return made

    return clone


def _compile_like(clone, model):
    """Compile ``clone`` with ``model``'s settings (Keras's compile config), when it has any."""
    from .keras_config import _compile_config, compile_from_config
    if not model.compiled:
        return
    config = _compile_config(model)
    if config is not None:
        compile_from_config(clone, config, f"clone of model '{model.name}'", _own_classes(model))


# ------------------------------------------------------------ Sequential
def _clone_sequential(model, clone, input_tensors):
    layers = [clone(layer) for layer in model.layers]
    spec = model.input_spec
    name = model._input_layer.name if model._input_layer is not None else None
    if input_tensors is not None:
        if isinstance(input_tensors, (list, tuple)):
            if len(input_tensors) != 1:
                raise ValueError("Argument `input_tensors` must contain a single tensor.")
            input_tensors = input_tensors[0]
        if not isinstance(input_tensors, KerasTensor):
            raise ValueError(f"Argument `input_tensors` must be a KerasTensor. Received invalid value: "
                             f"input_tensors={input_tensors!r:.200}")
        history = input_tensors._keras_history
        if history is not None and isinstance(history.operation, InputLayer):
            layers.insert(0, input_tensors)
        else:
            # Keras wraps a layer's output in an InputLayer of its own: the model starts at a tensor of its shape.
            layers.insert(0, Input(batch_shape=input_tensors.shape, dtype=input_tensors.dtype, name=name))
    elif spec is not None and not isinstance(spec, list) and (
            model._input_layer is not None or model.built or model.layers and
            model.layers[0].declared_input_shape is not None):
        # (several inputs: the clone of the first layer, a model, takes them)
        batch = model._input_layer.batch_size if model._input_layer is not None else None
        layers.insert(0, Input(batch_shape=(batch,) + tuple(spec[1:]), dtype=model.dtype, name=name))
    made = Sequential(layers, name=model.name, trainable=model.trainable)
    _compile_like(made, model)
    return made


# ------------------------------------------------------------ functional
def _structure(value, fn):
    if isinstance(value, dict):
        return {k: fn(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_structure(v, fn) for v in value)     # nested too: an RNN's states per cell
    return fn(value)


def _flat(value):
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _check_input_tensors(model, input_tensors):
    reference = model._inputs_struct
    if not all(isinstance(t, KerasTensor) for t in _flat(input_tensors)):
        raise ValueError(f"All entries in `input_tensors` must be KerasTensors. Received invalid values: "
                         f"input_tensors={input_tensors!r:.200}")
    same = (isinstance(reference, dict) and isinstance(input_tensors, dict) and set(reference) == set(input_tensors)) \
        or (isinstance(reference, (list, tuple)) and isinstance(input_tensors, (list, tuple))
            and len(reference) == len(input_tensors)) \
        or (isinstance(reference, KerasTensor) and isinstance(input_tensors, KerasTensor))
    if not same:
        raise ValueError(f"`input_tensors` must have the same structure as model.input\nReference structure: "
                         f"{reference!r:.300}\nReceived structure: {input_tensors!r:.300}")
    for t in _flat(input_tensors):
        history = t._keras_history
        if history is None or not isinstance(history.operation, InputLayer):
            raise ValueError(f"`input_tensors`: {t!r:.200} is the output of a layer; gpu_dl's functional models start "
                             "at the tensors of keras.Input, so give Input tensors.")


def _clone_functional(model, clone, input_tensors, call_function):
    if input_tensors is None:
        input_tensors = _structure(model._inputs_struct,
                                   lambda t: Input(batch_shape=t.shape, dtype=t.dtype, name=t.name))
    else:
        _check_input_tensors(model, input_tensors)
    old_inputs = _flat(model._inputs_struct)
    new_inputs = _flat(input_tensors) if not isinstance(input_tensors, dict) else \
        [input_tensors[k] for k in model._inputs_struct]
    new = dict(zip(old_inputs, new_inputs))

    def mapped(value):
        if isinstance(value, KerasTensor):
            return new[value]
        if isinstance(value, (list, tuple)):
            return [mapped(v) for v in value]
        return value

    for node in model._run_nodes:
        layer = node.layer
        if isinstance(layer, Operation):
            # Made again from its config, as a saved model's is; its constants stay where they were among the
            # tensors (x + 1.0, 2 * x), and its keyword arguments are given again.
            twin_operation = type(layer).from_config(layer.get_config())
            args, kwargs = layer.keras_call(mapped(node.input_tensors))
            result = twin_operation.apply(*args, **kwargs)
        else:
            if hasattr(layer, "keras_call_arguments"):
                # Called as the node's call was made (MultiHeadAttention's inputs positionally or by name).
                args, kwargs = layer.keras_call_arguments(node)
            else:
                args, kwargs = node.args, node.kwargs       # a composite layer's further arguments after the first
            kwargs = {key: mapped(value) for key, value in kwargs.items()}
            args = [mapped(value) for value in args]
            twin = clone(layer)
            result = call_function(twin, *args, **kwargs) if call_function is not None else twin(*args, **kwargs)
        results = flatten_structure(result)     # as the node holds them (an RNN's states nested per cell, flat)
        if len(results) != len(node.outputs):
            raise ValueError(f"clone_model: the call of layer '{layer.name}' gave {len(results)} output(s) in the "
                             f"clone and {len(node.outputs)} in the model; `call_function` must return what the "
                             "call it replaces returns.")
        new.update(zip(node.outputs, results))
    outputs = _structure(model._outputs_struct, lambda t: new[t])
    cls = type(model) if type(model).__init__ is Functional.__init__ else Functional
    made = cls(input_tensors, outputs, name=model.name)
    if not model.trainable:
        made.trainable = False
    _compile_like(made, model)
    return made
