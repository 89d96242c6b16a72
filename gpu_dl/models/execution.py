"""Keras 3's execution settings of a compiled model, and its state as one nested dict.

``compile(run_eagerly=False, steps_per_execution=1, jit_compile="auto")`` sets
``model.run_eagerly``, ``model.steps_per_execution`` and ``model.jit_compile``
as Keras does. gpu_dl's steps always run eagerly, kernel by kernel (its CUDA
kernels are compiled ahead, nothing is traced into an XLA or torch.compile
graph), so the flags change no numbers: ``jit_compile="auto"`` resolves to
False, as on Keras's torch backend; ``jit_compile=True`` is kept as given, and
turns False with Keras's warning where a layer of the model has
``supports_jit=False`` or where ``run_eagerly`` is set. ``steps_per_execution=N``
runs every batch's step as before and calls the batch callbacks once per N
batches, as Keras's trainers do (``on_*_batch_begin`` with the first batch's
index, ``on_*_batch_end`` with the last's: ``begin + N - 1``).

``get_state_tree()`` is Keras's nested dict of the model's variables by path:
``{"trainable_variables": {...}, "non_trainable_variables": {...},
"optimizer_variables": {...}, "metrics_variables": {...}}``;
``set_state_tree(tree)`` assigns such a dict back.

``make_train_function()`` (and test, predict) makes Keras's ``train_function(data)``, which runs the step on each
batch of a list of batches; gpu_dl's own loops run their steps without it.
"""
from __future__ import annotations

import warnings

import numpy

from .. import backend, tree
from ..layers import layer_losses
from . import data_checks as checks

JIT_CHOICES = (True, False, "auto")


def supports_jit(model):
    """Whether ``model`` and every layer within it support XLA compilation (Keras's ``model_supports_jit``)."""
    return all(getattr(layer, "supports_jit", True) for layer in [model] + layer_losses.flatten_layers(model))


def jit_setting(model, value):
    """What ``model.jit_compile = value`` keeps: False, with Keras's warning, for a model some layer of which
    cannot be compiled."""
    if value and not supports_jit(model):
        warnings.warn("Model doesn't support `jit_compile=True`. Proceeding with `jit_compile=False`.",
                      stacklevel=3)
        return False
    return value


def set_compile_flags(model, run_eagerly=False, steps_per_execution=1, jit_compile="auto", **other):
    """Check compile's execution arguments and set them on ``model`` as Keras's compile does (``other``: compile's
    other keyword arguments, which are not these)."""
    del other
    where = f"Model '{model.name}': compile()"
    if not isinstance(run_eagerly, bool):
        raise TypeError(f"{where}: `run_eagerly` must be True or False, got {run_eagerly!r}.")
    if not any(jit_compile is choice or (isinstance(choice, str) and jit_compile == choice)
               for choice in JIT_CHOICES):
        raise ValueError(f"{where}: `jit_compile` must be True, False or 'auto', got {jit_compile!r}.")
    try:
        steps = checks.positive_int(steps_per_execution, "steps_per_execution")
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if jit_compile == "auto":
        jit_compile = False         # gpu_dl compiles no graph: Keras's torch backend resolves "auto" so too
    if jit_compile and run_eagerly:
        jit_compile = False
        warnings.warn("If `run_eagerly` is True, then `jit_compile` cannot also be True. Disabling `jit_compile`.",
                      stacklevel=3)
    model.jit_compile = jit_compile
    model.run_eagerly = run_eagerly
    model.steps_per_execution = steps
    model.train_function = model.test_function = model.predict_function = None


def make_function(model, kind, force):
    """Keras's ``make_<kind>_function``: set ``model.<kind>_function`` (unless it is set and not ``force``) to a
    function of ``data``, a list of batches (Keras's trainers hand it up to ``steps_per_execution`` of them), that
    runs ``<kind>_step`` on each in turn: the logs of the last for train and test, the outputs of all of them
    concatenated along the batch axis for predict."""
    attribute = f"{kind}_function"
    if getattr(model, attribute, None) is not None and not force:
        return getattr(model, attribute)
    step = getattr(model, f"{kind}_step")

    def one_execution(data):
        if not isinstance(data, (list, tuple)) or not data:
            raise TypeError(f"Model '{model.name}': {attribute}(data) takes a non-empty list of batches (each what "
                            f"{kind}_step takes), got {type(data).__name__}.")
        results = [step(batch) for batch in data]
        if kind != "predict" or len(results) == 1:
            return results[-1]
        return tree.map_structure(lambda *parts: backend.array_module(parts[0]).concatenate(parts), *results)

    setattr(model, attribute, one_execution)
    return one_execution


# ------------------------------------------------------------------ the state tree
VALUE_FORMATS = ("backend_tensor", "numpy_array")


def _nested(entries, where):
    """Keras's nested dict of ``(path, value)`` pairs: one level per part of the path."""
    flat = {}
    for path, value in entries:
        if path in flat:
            raise ValueError(f"The following variable path is found twice in the model: '{path}'. "
                             "`get_state_tree()` can only be called when all variable paths are unique. Make sure "
                             "to give unique names to your layers (and other objects).")
        flat[path] = value
    nested = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{where}: the variable path '{path}' goes through another variable's path.")
        node[leaf] = value
    return nested


def _values(variables, value_format):
    return [(v.path, v.value if value_format == "backend_tensor" else v.numpy()) for v in variables]


def get_state_tree(model, value_format):
    where = f"Model '{model.name}': get_state_tree()"
    if value_format not in VALUE_FORMATS:
        raise ValueError("Invalid `value_format` argument. Expected one of {'numpy_array', 'backend_tensor'}. "
                         f"Received: value_format={value_format}")
    optimizer = [] if getattr(model, "optimizer", None) is None else [
        (path, backend.to_device(value) if value_format == "backend_tensor" else value)
        for path, value in optimizer_state(model.optimizer, where)]
    return {"trainable_variables": _nested(_values(model.trainable_variables, value_format), where),
            "non_trainable_variables": _nested(_values(model.non_trainable_variables, value_format), where),
            "optimizer_variables": _nested(optimizer, where),
            "metrics_variables": _nested(_values(model.metrics_variables, value_format), where)}


def _flat(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def set_state_tree(model, state_tree):
    """Assign the values of a ``get_state_tree``-like dict, as Keras's: a path the model does not have is passed
    over, an unknown top-level key raises."""
    where = f"Model '{model.name}': set_state_tree()"
    if not isinstance(state_tree, dict):
        raise TypeError(f"{where} takes a dict (what get_state_tree() returns), got {type(state_tree).__name__}.")
    for key, group in state_tree.items():
        if key not in ("trainable_variables", "non_trainable_variables", "optimizer_variables", "metrics_variables"):
            raise ValueError(f"Unknown variable name: {key}")
        if not isinstance(group, dict):
            raise TypeError(f"{where}: state_tree[{key!r}] must be a nested dict of values by path, got "
                            f"{type(group).__name__}.")
    for key, group in state_tree.items():
        given = _flat(group)
        if key == "optimizer_variables":
            if getattr(model, "optimizer", None) is not None:
                _set_optimizer_state(model.optimizer, given, where)
            continue
        for v in getattr(model, key):
            if v.path in given:
                v.assign(given[v.path])


# ------------------------------------------------------------------ the optimizer's variables
def _optimizer_paths(optimizer, where):
    """The Keras paths of what ``optimizer.save_own_variables`` writes, in its order: ``<name>/iteration``, the
    ``<name>/learning_rate`` of a rate that is not a schedule, then each slot as ``<name>/<the weight's path with
    '_' for '/'>_<slot>`` (Keras's ``add_variable_from_reference`` names), then the rule's extra scalars
    (``variable``)."""
    groups = getattr(optimizer, "_keras_slot_groups", None)
    if groups is None or not hasattr(optimizer, "_built") or type(optimizer).__name__ in ("LossScaleOptimizer",
                                                                                           "MultiOptimizer"):
        raise NotImplementedError(f"{where}: the variables of a {type(optimizer).__name__} have no Keras paths in "
                                  "gpu_dl; save them with model.save_weights() instead.")
    paths = ["iteration"] + (["learning_rate"] if optimizer._lr_function is None else [])
    for group in groups():
        for var in optimizer._built:
            paths.extend(f"{var.path.replace('/', '_')}_{name}" for name in group if name in optimizer._slots[var])
    # the extra scalars (Nadam's momentum product) are Keras's unnamed Variables: path "variable", outside the name
    return [f"{optimizer.name}/{path}" for path in paths] + ["variable" for _ in optimizer._extra_state()]


def _optimizer_store(optimizer, where):
    """``(paths, store)``: what ``optimizer.save_own_variables`` writes, and the Keras path of each entry."""
    paths = _optimizer_paths(optimizer, where)
    store = {}
    optimizer.save_own_variables(store)
    if len(paths) != len(store):
        raise NotImplementedError(f"{where}: the {len(store)} variables of {type(optimizer).__name__} have no "
                                  "Keras paths in gpu_dl; save them with model.save_weights() instead.")
    return paths, store


def optimizer_state(optimizer, where):
    """``[(path, NumPy array)]`` of the optimizer's state as Keras names its variables."""
    paths, store = _optimizer_store(optimizer, where)
    # The iteration count as Keras's variable holds it (int32, as optimizer.iterations reads), not as files do.
    store["0"] = numpy.asarray(store["0"], dtype=optimizer.iterations.dtype)
    return [(path, numpy.asarray(store[str(i)])) for i, path in enumerate(paths)]


def _set_optimizer_state(optimizer, given, where):
    """Write the given paths' values into the optimizer's state, through its ``load_own_variables``."""
    paths, store = _optimizer_store(optimizer, where)
    for i, path in enumerate(paths):
        if path in given:
            value = numpy.asarray(backend.to_numpy(given[path]))
            if value.shape != store[str(i)].shape:
                raise ValueError(f"{where}: optimizer variable '{path}' has shape {store[str(i)].shape}, got a "
                                 f"value of shape {value.shape}.")
            store[str(i)] = value
    optimizer.load_own_variables(store)
