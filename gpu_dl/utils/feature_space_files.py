"""A ``FeatureSpace`` in a ``.keras`` archive, laid out as Keras 3 writes one.

- ``config.json``: ``{"module": "keras.utils", "class_name": "FeatureSpace", "config": ..., "build_config":
  {feature: its preprocessor's build config}}``, each feature a serialized ``Feature`` holding its serialized
  preprocessor (an adapted ``Discretization`` with its learned boundaries), each cross a serialized ``Cross``;
- ``model.weights.h5``: one group per layer the FeatureSpace holds, named as Keras's saving names the members of
  a dict, by class (``preprocessors/normalization``, ``preprocessors/normalization_1``, ...), under the
  attributes ``concat``, ``crossers``, ``one_hot_encoders`` and ``preprocessors``; the variables of a layer
  (``Normalization``'s mean, variance and count) as ``vars/0``, ``vars/1``, ...;
- ``assets/preprocessors/<group>/vocabulary.txt``: an adapted lookup layer's vocabulary.

Loading reads the config (nothing is imported or run from the file), sets the variables and vocabularies, and
marks the FeatureSpace adapted.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy

from ..catalogue import keras_snake_case


def _member_names(container):
    """Keras's names of the members of a dict of layers: the class in snake case, ``_1``, ``_2``... for repeats."""
    used, names = {}, []
    for layer in container.values():
        name = keras_snake_case(type(layer).__name__)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        names.append(name)
    return names


def _groups(fs):
    """``[(h5 path, layer)]`` for every layer of ``fs`` (its encoding layers built), in Keras's layout."""
    fs._check_if_built()
    groups = []
    if fs.concat is not None:
        groups.append(("concat", fs.concat))
    for attribute in ("crossers", "one_hot_encoders", "preprocessors"):
        container = getattr(fs, attribute)
        groups += [(f"{attribute}/{name}", layer) for name, layer in zip(_member_names(container),
                                                                         container.values())]
    return groups


def _var_groups(groups):
    """``[(h5 path, [Variable] or the layer's own store hook, dataset keys)]``: each layer's groups as a model's
    file holds them (a TextVectorization's idf weights for it and for its ``_lookup_layer``)."""
    from ..models.weights_h5 import _Hooked, _layer_groups, _store_keys
    found = []
    for group_path, layer in groups:
        for path, _, variables in _layer_groups(layer, group_path):
            found.append((path, variables, None if isinstance(variables, _Hooked) else _store_keys(variables)))
    return found


def save_feature_space(fs, filepath):
    """Write ``fs`` to the ``.keras`` file ``filepath`` (see the module docstring)."""
    from ..models.saving import (ASSETS_DIRNAME, CONFIG_FILENAME, METADATA_FILENAME, WEIGHTS_FILENAME, _h5py,
                                 _metadata, _path_string, atomic_write)
    path = _path_string(filepath)
    if not path.endswith(".keras"):
        raise ValueError(f"FeatureSpace.save: the file name must end in `.keras`. Received: filepath={path}")
    groups = _groups(fs)
    config = {"module": "keras.utils", "class_name": "FeatureSpace", "config": fs.get_config(),
              "registered_name": None, "build_config": fs.get_build_config()}
    config_json = json.dumps(config)
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5file:
        for group_path, variables, keys in _var_groups(groups):
            group = h5file.require_group(group_path).create_group("vars")
            if keys is None:        # the layer's own save_own_variables
                store = {}
                variables.layer.save_own_variables(store)
                keys, variables = [str(k) for k in store], [numpy.asarray(a) for a in store.values()]
            for key, variable in zip(keys, variables):
                group.create_dataset(key, data=variable if isinstance(variable, numpy.ndarray) else variable.numpy())
        h5file.create_group("vars")
    assets = {}
    for group_path, layer in groups:
        if hasattr(layer, "asset_files"):
            for name, text in layer.asset_files().items():
                assets[f"{ASSETS_DIRNAME}/{group_path}/{name}"] = text

    def write(tmp):
        with zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(METADATA_FILENAME, json.dumps(_metadata()))
            archive.writestr(CONFIG_FILENAME, config_json)
            archive.writestr(WEIGHTS_FILENAME, buffer.getbuffer())
            for name, text in assets.items():
                archive.writestr(name, text)

    atomic_write(path, write)


def load_feature_space(archive, config, path, custom_objects=None):
    """The FeatureSpace of an open ``.keras`` archive whose ``config.json`` is ``config``."""
    from ..models.keras_config import CustomObjects
    from ..models.saving import (ASSETS_DIRNAME, MAX_ASSET_BYTES, WEIGHTS_FILENAME, _h5py, _read_member,
                                 _weights_from_archive)
    from ..models.weights_h5 import _OwnLoad
    from .feature_space import FeatureSpace, _cross_from_entry, _feature_from_entry
    where = f"{path} (config.json)"
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("features"), dict):
        raise ValueError(f"{where}: a FeatureSpace's config needs a dict of `features`, got {inner!r:.200}.")
    custom = CustomObjects(custom_objects)
    arguments = dict(inner)
    arguments["features"] = {key: _feature_from_entry(entry, f"{where}: feature {key!r}", custom)
                             for key, entry in inner["features"].items()}
    arguments["crosses"] = [_cross_from_entry(entry, f"{where}: cross") for entry in inner.get("crosses") or []]
    unknown = set(arguments) - {"features", "output_mode", "crosses", "crossing_dim", "hashing_dim",
                                "num_discretization_bins", "name", "trainable", "dtype"}
    if unknown:
        raise ValueError(f"{where}: unexpected FeatureSpace argument(s) {sorted(unknown)}.")
    fs = FeatureSpace(**arguments)
    fs.build_from_config(config.get("build_config") or {})
    # Lookups take their vocabulary from the assets before the encoders (sized by it) are built.
    names = set(archive.namelist())
    for group_path, layer in [(f"preprocessors/{n}", layer) for n, layer in
                              zip(_member_names(fs.preprocessors), fs.preprocessors.values())]:
        if hasattr(layer, "load_asset_files"):
            def read(name, group_path=group_path):
                member = f"{ASSETS_DIRNAME}/{group_path}/{name}"
                if member not in names:
                    return None
                return _read_member(archive, member, path, limit=MAX_ASSET_BYTES).decode("utf-8")
            layer.load_asset_files(read)
    h5py = _h5py()
    if WEIGHTS_FILENAME in names:
        h5file, source = _weights_from_archive(h5py, archive, path)
        with h5file:
            staged = []
            preprocessors = [(f"preprocessors/{n}", layer) for n, layer in zip(_member_names(fs.preprocessors),
                                                                                fs.preprocessors.values())]
            for group_path, variables, keys in _var_groups(preprocessors):
                if keys is not None and not variables:
                    continue
                group = h5file.get(f"{group_path}/vars")
                if keys is None:        # the layer's own load_own_variables
                    if group is not None:
                        staged.append((_OwnLoad(variables.layer, {k: numpy.asarray(group[k][()]) for k in group}),
                                       None))
                    continue
                if group is None or sorted(group.keys()) != sorted(keys):
                    raise ValueError(f"{source}: entry '{group_path}/vars' should hold the datasets {keys}; found "
                                     f"{None if group is None else sorted(group.keys())}.")
                for key, variable in zip(keys, variables):
                    value = numpy.asarray(group[key][()])
                    if value.shape != tuple(variable.shape):
                        raise ValueError(f"{source}: entry '{group_path}/vars/{key}' has shape {value.shape}; "
                                         f"{tuple(variable.shape)} was expected.")
                    staged.append((variable, value))
        for variable, value in staged:
            variable.assign(value)
    fs._is_adapted = True
    fs._check_if_built()
    return fs
