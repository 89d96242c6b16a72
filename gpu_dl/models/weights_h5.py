"""The model's and its optimizer's variables in Keras 3's HDF5 weights layout: writing and checked reading.

Each layer of the model has a group ``layers/<name>/vars`` whose datasets
``0``, ``1``, ... are its weights in ``get_weights()`` order; ``<name>`` is the
snake-cased class name, numbered per class (``dense``, ``dense_1``, ...), as
Keras names them, not the layer's own name. Recurrent layers keep their weights
under ``layers/<name>/cell/vars``; ``Bidirectional`` under
``forward_layer/cell/vars`` and ``backward_layer/cell/vars``;
``TimeDistributed`` its wrapped layer's groups under ``layer`` (``layer/vars``,
or ``layer/cell/vars`` for a recurrent one); ``SpectralNormalization`` too,
with the wrapped kernel and ``vector_u`` in its own ``vars`` (the kernel in
both places, as Keras writes it). The optimizer has
``optimizer/vars``: ``0`` iterations, ``1`` the learning rate (when it is a
number), then the slots in Keras's order. Keras stores these scalars in
float32; the group's attribute ``gpu_dl_scalars`` (JSON) keeps them at full
precision so that training resumes bit for bit. Keras ignores it.

A composite layer (a ``Layer`` subclass whose ``call`` composes sublayers) has
its own weights (``add_weight``) in its group's ``vars``, trainable ones first,
and its sublayers' groups under their attribute names; a subclassed model has
its own weights in the file's top-level ``vars``, as Keras writes them.

A model among the layers has its group named as any layer's (``sequential``,
``functional``, numbered per class) with an empty ``vars``, and its layers'
groups under ``<group>/layers/``, named afresh within it; a model of a model
goes one level deeper (``layers/sequential/layers/functional/layers/dense``),
as Keras 3 saves them; a layer in two places of the tree is saved once, in the
first, and its other places have no group; a model in a ``TimeDistributed``
has its group under the wrapper's ``layer``
(``layers/time_distributed/layer/layers/conv2d``). An inner model that was
compiled has its optimizer under ``<group>/optimizer``. The outer optimizer's slots follow the outer
model's ``trainable_weights``, the inner models' weights in their place.

Reading refuses HDF5 links and external or virtual datasets, and checks every
shape before anything is assigned: the ``stage_*`` functions return what to
assign, so a failed load leaves the model as it was.
"""
from __future__ import annotations

import copy
import json
import math

import numpy

from ..backend.user_warnings import warn
from ..catalogue import keras_class_key, keras_snake_case
from ..layers.base import Layer

# The optimizer group's attribute with its scalars at full precision (see above).
_SCALARS_ATTR = "gpu_dl_scalars"


class _Hooked(list):
    """A group's variables whose layer has its own ``save_own_variables`` / ``load_own_variables``: the file's
    arrays are what those write and read."""

    def __init__(self, variables, layer):
        super().__init__(variables)
        self.layer = layer


class _OwnLoad:
    """A staged load through the layer's ``load_own_variables(store)``, run when the staged weights are
    assigned."""

    def __init__(self, layer, store):
        self.layer, self.store = layer, store

    def assign(self, _):
        self.layer.load_own_variables(self.store)


def _hooked(variables, layer):
    return _Hooked(variables, layer) if layer._overrides_state_hooks() else variables


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


# ------------------------------------------------------------ weights: write
def _weight_layout(model):
    """``(groups, containers, models)`` of ``model`` in Keras 3's layout: ``[(h5 path, name, [Variable])]`` for
    every layer (groups without variables too), ``[(path of a 'layers' group, [its entries' keys], model)]`` for
    the model and every model inside it, and ``[(path, model)]`` of the models inside it."""
    from .nested import held_model, is_model
    groups, containers, models = [], [], []
    visited = {id(model)}

    def place(layer, path):
        """The groups of ``layer`` at ``path`` (not yet visited)."""
        inner = held_model(layer)
        if layer._composite:
            if path:
                groups.append((path, layer.name, _hooked(list(layer._weights), layer)))
            if is_model(layer):
                models.append((path, layer))
            walk_composite(layer, path)
        elif inner is not None:
            if not is_model(layer):
                # TimeDistributed(model): the wrapper's empty group, the model's under its 'layer'
                groups.append((path, layer.name, []))
                path += "/layer"
            groups.append((path, inner.name, []))
            models.append((path, inner))
            walk(inner, path)
        else:
            groups.extend(_layer_groups(layer, path))

    def walk_composite(layer, path):
        # Keras 3 saves a composite layer's (or a subclassed model's) sublayers under the names of the attributes
        # holding them, in sorted order with private ones last; a list's or dict's layers under their snake-cased
        # class names, numbered; a sublayer held twice once, where it comes first. Keras's walk also meets the
        # lists of all sublayers a model's `layers` and a layer's `_layers` give, in their sorted places.
        listed = [("_layers", layer._sublayers())] + ([("layers", layer.layers)] if is_model(layer) else [])
        for attribute, value in sorted(layer._tracked_items() + listed, key=lambda item: _attribute_key(item[0])):
            child = f"{path}/{attribute}" if path else attribute
            if isinstance(value, Layer):
                items = [(child, value)]
            else:
                used = {}
                values = value.values() if isinstance(value, dict) else value
                items = [(f"{child}/{_unique(keras_class_key(type(v)), used)}", v)
                         for v in values if isinstance(v, Layer)]
            for sub_path, sub in items:
                if id(sub) not in visited:
                    visited.add(id(sub))
                    place(sub, sub_path)

    def walk(container, path):
        if container._composite:
            walk_composite(container, path)
            return
        used, keys = {}, []
        base = f"{path}/layers" if path else "layers"
        for layer in container.layers:
            # Keras keys a layer's group by its Python class's name, which a few layers export under another.
            key = _unique(keras_class_key(type(layer)), used)
            keys.append(key)
            if id(layer) in visited:
                # A layer in two places of the tree: Keras saves it once, where it comes first, and writes no
                # group at all for its other places (their keys are used up all the same).
                continue
            visited.add(id(layer))
            place(layer, f"{base}/{key}")
        containers.append((base, keys, container))

    walk(model, "")
    if model._composite and model._weights:
        # A subclassed model's own weights (add_weight) are in the file's top-level vars, as Keras writes them.
        groups.insert(0, ("", model.name, list(model._weights)))
    return groups, containers, models


def _attribute_key(name):
    return f"~{name}" if name.startswith("_") else name


def _weight_groups(model):
    """``[(h5 path, name, [Variable])]`` for every layer in Keras 3's layout (groups without variables too)."""
    return _weight_layout(model)[0]


def asset_layers(model):
    """``[(path, layer)]`` for the layers with Keras assets (IntegerLookup's vocabulary), at the path Keras files
    them under ``assets/`` (the path of their weights group)."""
    _, containers, _ = _weight_layout(model)
    return [(f"{base}/{key}", layer) for base, keys, container in containers
            for key, layer in zip(keys, container.layers) if hasattr(layer, "asset_files")]


def hook_asset_layers(model):
    """``[(path, layer)]`` for the layers with Keras's ``save_assets(dir)`` / ``load_assets(dir)`` methods (a class
    of the caller's own), at the path Keras files their assets under ``assets/``."""
    _, containers, _ = _weight_layout(model)
    return [(f"{base}/{key}", layer) for base, keys, container in containers
            for key, layer in zip(keys, container.layers)
            if callable(getattr(layer, "save_assets", None)) or callable(getattr(layer, "load_assets", None))]


def _layer_groups(layer, path):
    from ..layers.bidirectional import Bidirectional
    from ..layers.recurrent import _Recurrent
    from ..layers.spectral_normalization import SpectralNormalization
    from ..layers.wrappers import TimeDistributed
    if isinstance(layer, TimeDistributed):
        return [(path, layer.name, [])] + _layer_groups(layer.layer, path + "/layer")
    if isinstance(layer, SpectralNormalization):
        # Keras tracks the wrapped kernel as the wrapper's own variable too: it is saved twice
        own = [layer.kernel, layer.vector_u] if layer.kernel is not None else []
        return [(path, layer.name, own)] + _layer_groups(layer.layer, path + "/layer")
    if isinstance(layer, Bidirectional):
        return ([(path, layer.name, [])] + _layer_groups(layer.forward_layer, path + "/forward_layer")
                + _layer_groups(layer.backward_layer, path + "/backward_layer"))
    if hasattr(layer, "weight_groups"):         # a layer with sublayers in Keras (MultiHeadAttention)
        return layer.weight_groups(path)
    if isinstance(layer, _Recurrent):
        return [(path, layer.name, []),
                (path + "/cell", keras_snake_case(type(layer).__name__) + "_cell", layer.weights)]
    # State a file keeps beside the weights (IntegerLookup's tf-idf weights), under Keras's own keys.
    return [(path, layer.name, _hooked(layer.weights + list(getattr(layer, "state_variables", ())), layer))]


def _store_keys(variables):
    """The dataset names of ``variables`` in their ``vars`` group: '0', '1', ... or a variable's own key."""
    return [getattr(v, "h5_key", None) or str(i) for i, v in enumerate(variables)]


def _write_vars(h5file, path, name, arrays, keys=None):
    group = h5file.create_group("vars") if not path else h5file.require_group(path).create_group("vars")
    group.attrs["name"] = name
    for key, a in zip(keys or [str(i) for i in range(len(arrays))], arrays):
        group.create_dataset(key, data=a)
    return group


def write_weights(h5file, model):
    """Write the model's (and its optimizer's) variables into an open, empty h5py File."""
    groups, _, models = _weight_layout(model)
    if not any(path == "" for path, _, _ in groups):
        _write_vars(h5file, "", model.name, [])
    for path, name, variables in groups:
        if isinstance(variables, _Hooked):
            store = {}
            variables.layer.save_own_variables(store)
            _write_vars(h5file, path, name, [numpy.asarray(a) for a in store.values()], [str(k) for k in store])
            continue
        _write_vars(h5file, path, name, [v.numpy() for v in variables], _store_keys(variables))
    for path, owner in [("", model)] + models:
        if owner.compiled and owner.optimizer is not None:
            _write_optimizer(h5file, f"{path}/optimizer" if path else "optimizer", owner.optimizer)


def _write_optimizer(h5file, path, optimizer):
    store = {}
    optimizer.save_own_variables(store)
    group = _write_vars(h5file, path, optimizer.name, [numpy.asarray(store[str(i)]) for i in range(len(store))])
    state = optimizer.state_dict([])
    group.attrs[_SCALARS_ATTR] = json.dumps({"iterations": int(state["iterations"]),
                                             "learning_rate": state["learning_rate"],
                                             "extra": {k: float(v) for k, v in state["extra"].items()}})
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        # As Keras writes a LossScaleOptimizer: its variables (its own, then the inner optimizer's) and the
        # inner optimizer's again under inner_optimizer/, which Keras reads into the inner optimizer.
        _write_optimizer(h5file, f"{path}/inner_optimizer", inner)
    for sub in getattr(optimizer, "optimizers", ()):
        # As Keras writes a MultiOptimizer: all its variables (its own, then each inner optimizer's), and each
        # inner optimizer's again under optimizers/<its name>/. Reading takes the first alone.
        _write_optimizer(h5file, f"{path}/optimizers/{sub.name}", sub)


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


def _datasets(h5py, group, entry, source, expected=None):
    """The datasets '0', '1', ... (or the ``expected`` keys) of a vars group, checked but not read; a ValueError if
    the keys are not those.

    Their data is read (``_read``) only once their shapes are known to fit: a small file can declare a
    dataset of any size, and reading it first would fill memory with its fill value.
    """
    keys = list(group.keys())
    if expected is not None and sorted(keys) != sorted(expected):
        raise ValueError(f"{source}: entry '{entry}' should hold datasets named {sorted(expected)}, found "
                         f"{sorted(keys)}.")
    expected = expected or [str(i) for i in range(len(keys))]
    # numbered keys may come in another order than the variables' (an int8 Dense's kernel, bias, kernel_scale)
    if sorted(keys, key=lambda k: (len(k), k)) != sorted(expected, key=lambda k: (len(k), k)):
        raise ValueError(f"{source}: entry '{entry}' should hold datasets named 0..{len(keys) - 1}, "
                         f"found {sorted(keys)}.")
    datasets = []
    for key in expected:
        ds = _child(h5py, group, key, "dataset", f"{source}: entry '{entry}'")
        if ds.shape is None:
            raise ValueError(f"{source}: entry '{entry}/{key}' has an empty dataspace (no shape, no data); a weight "
                             "is an array.")
        if ds.dtype.kind not in "fiub":
            raise ValueError(f"{source}: entry '{entry}/{key}' has dtype {ds.dtype}, not a number type gpu_dl reads.")
        datasets.append(ds)
    return datasets


def _read(datasets):
    return [numpy.asarray(ds[()]) for ds in datasets]


def _check_weights_file(h5py, h5file, source):
    # get(getlink=True) looks at the link itself: `in` would resolve it, opening the file an external link names.
    if h5file.get("layers", getlink=True) is not None or h5file.get("vars", getlink=True) is not None:
        return
    if "model_weights" in h5file or "layer_names" in h5file.attrs:
        raise ValueError(f"{source} is a legacy Keras 2 HDF5 file; gpu_dl reads Keras 3's `.keras` and "
                         "`.weights.h5` files only. Load it in Keras and save it again as `.keras`.")
    raise ValueError(f"{source} is an HDF5 file, but not Keras 3 weights: it has no 'layers' or 'vars' group "
                     f"(its top-level entries: {sorted(h5file.keys())[:10]}).")


def stage_model_weights(h5py, h5file, model, source, skip_mismatch=False):
    """``[(Variable, array)]`` for every weight of ``model``, checked against the file; nothing is assigned."""
    _check_weights_file(h5py, h5file, source)
    staged = []
    groups, containers, _ = _weight_layout(model)
    for path, name, variables in groups:
        entry = f"{path}/vars"
        group = _vars_group(h5py, h5file, path, source)
        if isinstance(variables, _Hooked):
            # The layer's own load_own_variables reads its group, whatever it holds (checked by it).
            keys = sorted(group.keys(), key=lambda k: (len(k), k)) if group is not None else []
            arrays = _read(_datasets(h5py, group, entry, source, keys)) if keys else []
            staged.append((_OwnLoad(variables.layer, dict(zip(keys, arrays))), None))
            continue
        if not variables:
            if group is not None and len(group.keys()):
                problem = (f"{source}: entry '{entry}' holds {len(group.keys())} array(s), but layer '{name}' "
                           "has no weights.")
                if not skip_mismatch:
                    raise ValueError(problem)
                warn(problem + " Skipped.")
            continue
        shapes = [v.shape for v in variables]
        if group is None:
            problem = (f"{source}: no entry '{entry}' for layer '{name}', which has {len(variables)} weight(s) "
                       f"of shapes {shapes}. The file was saved from a different model.")
            if any(other == name and other_path != path for other_path, other, _ in groups):
                problem += (f" Or the saved model had one layer '{name}' in two places of its tree of models: "
                            "such a layer's weights are saved once, but its config is written in each place and "
                            "rebuilds two layers, so load_model cannot restore it (Keras 3 cannot either). Build "
                            "the model in code and use load_weights.")
            if not skip_mismatch:
                raise ValueError(problem)
            warn(problem + " Skipped.")
            continue
        keys = _store_keys(variables)
        datasets = _datasets(h5py, group, entry, source, None if keys == [str(i) for i in range(len(keys))] else keys)
        found = [tuple(ds.shape) for ds in datasets]
        if found != shapes:
            problem = (f"{source}: entry '{entry}' holds arrays of shapes {found}, but layer '{name}' has weights "
                       f"of shapes {shapes} ({', '.join(v.name for v in variables)}).")
            if not skip_mismatch:
                raise ValueError(problem)
            warn(problem + " Skipped.")
            continue
        staged.extend(zip(variables, _read(datasets)))
    for base, keys, container in containers:
        layers_group = _group_at(h5py, h5file, base, source)
        if layers_group is None:
            continue
        # Entries of no layer are checked like the others (_child refuses links) before they are looked into.
        extra = [k for k in layers_group.keys()
                 if k not in keys and _has_arrays(_child(h5py, layers_group, k, "group", f"{source}: entry '{base}'"))]
        if extra:
            whose = "this model" if container is model else f"model '{container.name}' (entry '{base}')"
            problem = (f"{source}: the file has weights for layer entries {sorted(extra)} that {whose} "
                       f"(layers {keys}) does not have.")
            if not skip_mismatch:
                raise ValueError(problem)
            warn(problem + " Skipped.")
    return staged


def _group_at(h5py, h5file, path, source):
    """The group at ``path`` ('a/b/c'), or None where any part of it is absent."""
    node = h5file
    for part in path.split("/"):
        node = _child(h5py, node, part, "group", f"{source}: entry '{path}'")
        if node is None:
            return None
    return node


def _has_arrays(group):
    found = []
    group.visititems(lambda name, obj: found.append(name) if hasattr(obj, "shape") else None)
    return bool(found)


def stage_optimizers(h5py, h5file, model, source, strict):
    """A function that restores the state of the model's optimizer and of those of the compiled models inside
    it from the file, or None when there is none to restore. Everything is checked here; the returned function
    only assigns."""
    _, _, models = _weight_layout(model)
    restores = [stage_optimizer(h5py, h5file, owner, source, strict, f"{path}/optimizer" if path else "optimizer")
                for path, owner in [("", model)] + models]
    restores = [r for r in restores if r is not None]
    if not restores:
        return None

    def restore():
        for r in restores:
            r()
    return restore


def stage_optimizer(h5py, h5file, model, source, strict, path="optimizer"):
    """A function that restores the state of the optimizer of ``model`` from the file's group ``path``, or None
    when there is none to restore.

    Everything is checked here; the returned function only assigns.
    """
    optimizer = model.optimizer
    if not model.compiled or optimizer is None:
        return None
    group = _vars_group(h5py, h5file, path, source)
    if group is None:
        return None
    entry = f"{path}/vars"
    datasets = _datasets(h5py, group, entry, source)
    found = [tuple(ds.shape) for ds in datasets]
    current = {}
    optimizer.save_own_variables(current)
    current_shapes = [tuple(numpy.shape(current[str(i)])) for i in range(len(current))]
    build = False
    if found != current_shapes:
        built_shapes = None
        if not optimizer.built:
            # A MultiOptimizer's map may be a function a config cannot name: its copy is built instead.
            probe = copy.deepcopy(optimizer) if hasattr(optimizer, "optimizers") else \
                type(optimizer).from_config(optimizer.get_config())
            probe.build(model.trainable_weights)
            built = {}
            probe.save_own_variables(built)
            built_shapes = [tuple(numpy.shape(built[str(i)])) for i in range(len(built))]
        if found == built_shapes:
            build = True
        else:
            problem = (f"{source}: entry '{entry}' holds {len(found)} array(s) of shapes {found}; optimizer "
                       f"'{optimizer.name}' ({type(optimizer).__name__}) of model '{model.name}' needs "
                       f"{built_shapes or current_shapes}. The file was saved with a different optimizer or model.")
            if strict:
                raise ValueError(problem)
            warn(problem + " The optimizer's state is not loaded.")
            return None
    arrays = _read(datasets)
    _check_optimizer_scalars(optimizer, arrays, source, entry)
    scalars = None
    if _SCALARS_ATTR in group.attrs:
        try:
            scalars = json.loads(group.attrs[_SCALARS_ATTR])
            expected_extra = set(optimizer.state_dict([])["extra"])
            ok = (isinstance(scalars, dict) and scalars.get("iterations") == int(arrays[0])
                  and (scalars.get("learning_rate") is None or _is_rate(scalars["learning_rate"]))
                  and isinstance(scalars.get("extra"), dict) and set(scalars["extra"]) == expected_extra
                  and all(_is_finite(v) for v in scalars["extra"].values()))
        except (ValueError, TypeError, RecursionError):
            ok = False
        if not ok:
            raise ValueError(f"{source}: entry '{entry}' has an unreadable '{_SCALARS_ATTR}' attribute.")
    store = {str(i): a for i, a in enumerate(arrays)}

    def restore():
        if build:
            optimizer.build(model.trainable_weights)
        optimizer.load_own_variables(store)
        if scalars is not None:
            optimizer.load_state_dict({"iterations": scalars["iterations"], "learning_rate": scalars["learning_rate"],
                                       "slots": {}, "extra": scalars["extra"]}, [])

    return restore


def _is_finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_rate(value):
    return _is_finite(value) and value >= 0


def _check_optimizer_scalars(optimizer, arrays, source, entry="optimizer/vars"):
    """A ValueError naming ``source`` when the stored iterations, learning rate or extra scalars (Nadam's
    momentum product) are values the optimizer refuses: checked here because the optimizer checks them only
    while it assigns, after the model's weights have been assigned."""
    iterations = float(arrays[0])
    if not (math.isfinite(iterations) and iterations >= 0 and iterations == int(iterations)):
        raise ValueError(f"{source}: entry '{entry}/0' (the step count) is {arrays[0].item()!r}; "
                         "it must be a whole number >= 0.")
    if optimizer.state_dict([])["learning_rate"] is not None and not _is_rate(float(arrays[1])):
        raise ValueError(f"{source}: entry '{entry}/1' (the learning rate) is {arrays[1].item()!r}; "
                         "it must be a finite number >= 0.")
    names = list(optimizer.state_dict([])["extra"])
    for k, name in enumerate(names):
        index = len(arrays) - len(names) + k
        if not _is_finite(float(arrays[index])):
            raise ValueError(f"{source}: entry '{entry}/{index}' ({name}) is {arrays[index].item()!r}; "
                             "it must be a finite number.")


def guard_h5(source, fn):
    """Run ``fn()``, turning HDF5 read errors into ValueErrors that name ``source``."""
    try:
        return fn()
    except (OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"{source}: cannot read the HDF5 data ({e}); it may be damaged.") from e
