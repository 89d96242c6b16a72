"""Reading weights from Keras 2's legacy HDF5 files (``model.save_weights("w.h5")`` in Keras 2, Keras 3's
``legacy_h5_format``, and the ImageNet weight files Keras publishes for its applications).

The layout, as ``keras.src.legacy.saving.legacy_h5_format`` writes it:

- the root (or, in a whole-model file, its ``model_weights`` group) has the attribute ``layer_names``: the
  model's layer names in the model's order (long lists are split over ``layer_names0``, ``layer_names1``, ...
  because an HDF5 attribute holds at most 64 kB), and ``keras_version`` and ``backend``;
- one group per layer, named after it, whose attribute ``weight_names`` lists its weights' dataset paths
  within the group (``conv1_conv/kernel:0``), in the order ``trainable_weights + non_trainable_weights``;
  layers without weights have an empty list;
- a ``top_level_model_weights`` group for the model's own variables (none in gpu_dl's models).

Loading matches Keras 3's loader: by order (the file's layers that have weights, in the file's order, onto the
model's layers that have weights, in the model's order), or with ``by_name=True`` by layer name (layers of no
matching name are left as they are). ``skip_mismatch`` skips a weight of another shape (and, by name, a layer
with another number of weights) with a warning instead of raising.

The file is opened read-only and only read: no pickle, no code. Links and data stored outside the file are
refused, every shape is checked before any data is read, and nothing is assigned until the whole file has
been checked, so a failed load leaves the model as it was.
"""
from __future__ import annotations

import numpy

from ..backend.user_warnings import warn

TOP_LEVEL = "top_level_model_weights"


def is_legacy_file(h5file):
    """True when ``h5file`` (an open h5py File) is in the legacy layout: ``layer_names`` at its root, or a
    ``model_weights`` group holding it (a whole-model file)."""
    if _has_names(h5file.attrs, "layer_names"):
        return True
    import h5py
    # get(getlink=True) looks at the link itself: `in` would resolve it, opening the file an external link names.
    link = h5file.get("model_weights", getlink=True)
    return isinstance(link, h5py.HardLink) and isinstance(h5file["model_weights"], h5py.Group) and \
        _has_names(h5file["model_weights"].attrs, "layer_names")


def _has_names(attrs, name):
    return name in attrs or f"{name}0" in attrs


def _names(attrs, name, where):
    """The list of strings of attribute ``name`` (or its chunks ``name0``, ``name1``, ...)."""
    if name in attrs:
        chunks = [attrs[name]]
    else:
        chunks, i = [], 0
        while f"{name}{i}" in attrs:
            chunks.append(attrs[f"{name}{i}"])
            i += 1
    names = []
    for chunk in chunks:
        values = numpy.asarray(chunk).reshape(-1)
        for value in values:
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf8")
                except UnicodeDecodeError:
                    raise ValueError(f"{where}: attribute '{name}' holds bytes that are not UTF-8 text.") from None
            if not isinstance(value, str):
                raise ValueError(f"{where}: attribute '{name}' should list names (strings), found "
                                 f"{type(value).__name__} {value!r:.100}.")
            names.append(value)
    return names


def _child(h5py, group, key, kind, where):
    """``group[key]`` as a plain group or dataset (``kind``), following ``a/b/c`` one part at a time; a ValueError
    if absent, a link, or data kept outside the file."""
    node = group
    parts = [p for p in key.split("/") if p]
    if not parts:
        raise ValueError(f"{where}: the empty name {key!r} names no {kind}.")
    for i, part in enumerate(parts):
        if not isinstance(node, h5py.Group):
            raise ValueError(f"{where}: '{key}' passes through a dataset.")
        link = node.get(part, getlink=True)
        if link is None:
            raise ValueError(f"{where}: the file has no {kind} '{key}'.")
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{where}: '{key}' is a {type(link).__name__}; only plain groups and datasets are read.")
        node = node[part]
    if kind == "group" and not isinstance(node, h5py.Group):
        raise ValueError(f"{where}: '{key}' should be a group, found a {type(node).__name__}.")
    if kind == "dataset":
        if not isinstance(node, h5py.Dataset):
            raise ValueError(f"{where}: '{key}' should be a dataset (an array), found a {type(node).__name__}.")
        if node.is_virtual or node.external:
            raise ValueError(f"{where}: '{key}' keeps its data outside the file; only data stored in the file is read.")
        if node.shape is None:
            raise ValueError(f"{where}: '{key}' has an empty dataspace (no shape, no data); a weight is an array.")
        if node.dtype.kind not in "fiub":
            raise ValueError(f"{where}: '{key}' has dtype {node.dtype}, not a number type gpu_dl reads.")
    return node


def _layer_datasets(h5py, root, name, source):
    """The datasets of the file's layer ``name``, in its ``weight_names`` order (checked, not read)."""
    where = f"{source}: layer '{name}'"
    group = _child(h5py, root, name, "group", source)
    return [_child(h5py, group, w, "dataset", where) for w in _names(group.attrs, "weight_names", where)]


def _legacy_weights(layer):
    # The order Keras 2 saved a layer's weights in, which Keras 3's legacy reader keeps.
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _match(variables, datasets, what, source, skip_mismatch, staged):
    """Stage ``datasets`` onto ``variables`` weight by weight; one of another shape raises, or with
    ``skip_mismatch`` is skipped with a warning (as Keras's ``_set_weights`` does)."""
    for var, ds in zip(variables, datasets):
        expected, found = tuple(var.shape), tuple(ds.shape)
        if expected != found:
            problem = (f"{source}: shape mismatch in {what} for weight '{var.name}': the weight expects shape "
                       f"{expected}, the file holds shape {found}.")
            if not skip_mismatch:
                raise ValueError(problem)
            warn(problem + " Skipped.")
            continue
        staged.append((var, ds))


def stage_legacy_weights(h5py, h5file, model, source, by_name=False, skip_mismatch=False):
    """``[(Variable, array)]`` for the weights a legacy file gives ``model``, all checked; nothing is assigned."""
    root = h5file
    if not _has_names(root.attrs, "layer_names"):
        root = _child(h5py, h5file, "model_weights", "group", source)
    file_layers = _names(root.attrs, "layer_names", source)
    staged = []
    if by_name:
        index = {}
        for layer in model.layers:
            index.setdefault(layer.name, []).append(layer)
        for k, name in enumerate(file_layers):
            datasets = _layer_datasets(h5py, root, name, source)
            for layer in index.get(name, []):
                variables = _legacy_weights(layer)
                if len(datasets) != len(variables):
                    problem = (f"{source}: weight count mismatch for layer #{k} (named '{name}'): the layer has "
                               f"{len(variables)} weight(s), the file holds {len(datasets)}.")
                    if not skip_mismatch:
                        raise ValueError(problem)
                    warn(problem + " Skipped.")
                    continue
                _match(variables, datasets, f"layer #{k} (named '{name}')", source, skip_mismatch, staged)
    else:
        layers = [layer for layer in model.layers if _legacy_weights(layer)]
        with_weights = []
        for name in file_layers:
            datasets = _layer_datasets(h5py, root, name, source)
            if datasets:
                with_weights.append((name, datasets))
        if len(with_weights) != len(layers):
            raise ValueError(f"{source}: layer count mismatch when loading weights from file. Model expected "
                             f"{len(layers)} layers with weights, found {len(with_weights)} saved layers "
                             f"({[n for n, _ in with_weights][:8]}...). The file was saved from a different model; "
                             "load_weights(..., by_name=True) matches layers by name instead.")
        for k, ((name, datasets), layer) in enumerate(zip(with_weights, layers)):
            variables = _legacy_weights(layer)
            if len(datasets) != len(variables):
                raise ValueError(f"{source}: weight count mismatch for layer #{k} (named '{layer.name}' in the "
                                 f"model, '{name}' in the file): the layer has {len(variables)} weight(s), the "
                                 f"file holds {len(datasets)}.")
            _match(variables, datasets, f"layer #{k} (named '{layer.name}')", source, skip_mismatch, staged)
    if root.get(TOP_LEVEL, getlink=True) is not None:
        # Keras models may own variables outside their layers; gpu_dl's have none, so the group must be empty.
        top = _layer_datasets(h5py, root, TOP_LEVEL, source)
        if top:
            problem = (f"{source}: the file holds {len(top)} top-level model weight(s); this model has none of its "
                       "own (outside its layers).")
            if not (by_name and skip_mismatch):
                raise ValueError(problem)
            warn(problem + " Skipped.")
    return [(var, numpy.asarray(ds[()])) for var, ds in staged]
