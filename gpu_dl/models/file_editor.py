"""Keras 3's ``keras.saving.KerasFileEditor``: inspect, edit and re-save the weights of a ``.keras`` or
``.weights.h5`` file, to adapt a saved file to a changed model.

The file's weights are read into ``weights_dict``, a nested dict as Keras reads it: each HDF5 group a dict by its
key, a group's ``vars`` subgroup standing for the group itself (a group whose ``vars`` is empty is left out,
with what else it holds, as in Keras), each dataset a NumPy array under its key ("0", "1", ...). So a Dense
layer's kernel is ``weights_dict["layers"]["dense"]["0"]``. ``object_metadata`` maps ``"/layers/dense"`` and the
like to the attributes the file gives the object (its ``name``); ``config`` and ``metadata`` hold a ``.keras``
file's ``config.json`` and ``metadata.json``.

Edits address an object by its path (``"layers/dense_2"``) or by a name that occurs once anywhere in the tree
(``"dense_2"``): ``rename_object``, ``delete_object``, ``add_object``, ``delete_weight``, ``add_weights``;
``compare(model)`` lists where the file and a model's weights differ; ``save(path)`` (or ``resave_weights``)
writes the edited weights as a ``.weights.h5`` file that ``load_weights`` (gpu_dl's or Keras's) reads.

Reading refuses what Keras refuses: links to other files or within the file, external and virtual datasets,
negative or absurd shapes, and datasets over 4 GiB.
"""
from __future__ import annotations

import collections
import io
import json
import math
import zipfile

import numpy

from ..utils.io_utils import print_msg

_MAX_BYTES = 1 << 32
_CONFIG = "config.json"
_METADATA = "metadata.json"
_WEIGHTS = "model.weights.h5"


def _h5py():
    import h5py
    return h5py


class KerasFileEditor:
    """``KerasFileEditor(filepath)``: see the module docstring.

    Example::

        editor = KerasFileEditor("my_model.weights.h5")
        editor.summary()
        editor.delete_object("layers/dense_2")
        editor.add_object("layers/einsum_dense", weights={"0": kernel, "1": bias})
        editor.resave_weights("edited_model.weights.h5")
    """

    def __init__(self, filepath):
        self.filepath = filepath
        self.metadata = None
        self.config = None
        self.model = None
        path = str(filepath)
        h5py = _h5py()
        if path.endswith(".keras"):
            try:
                with zipfile.ZipFile(path, "r") as archive:
                    self.config = json.loads(archive.read(_CONFIG))
                    self.metadata = json.loads(archive.read(_METADATA))
                    data = archive.read(_WEIGHTS)
            except KeyError as e:
                raise ValueError(f"KerasFileEditor: {path} lacks an entry of a .keras file ({e}).") from None
            except zipfile.BadZipFile as e:
                raise ValueError(f"KerasFileEditor: {path} is not a .keras zip archive ({e}).") from None
            h5file = h5py.File(io.BytesIO(data), "r")
        elif path.endswith(".weights.h5"):
            h5file = h5py.File(path, "r")
        else:
            raise ValueError("Invalid filename: expected a `.keras` `.weights.h5` extension. "
                             f"Received: filepath={filepath}")
        try:
            self.weights_dict, self.object_metadata = _extract(h5py, h5file)
        finally:
            h5file.close()
        print_msg(f"Keras model file '{self.filepath}'")
        if self.metadata is not None:
            print_msg(f"Saved with Keras {self.metadata.get('keras_version')} - date: "
                      f"{self.metadata.get('date_saved')}")

    # -------------------------------------------------------------- inspect
    def summary(self):
        """Print the tree of objects and weights (shape and dtype of each) the file holds."""
        print_msg("Weights structure")
        self._print_tree(self.weights_dict, "  ", "", True)

    def _print_tree(self, tree, prefix, path, first):
        for index, (key, value) in enumerate(tree.items()):
            inner = f"{path}/{key}"
            last = index == len(tree) - 1
            if first:
                connector, first = "> ", False
            else:
                connector = "└─ " if last else "├─ "
            if isinstance(value, dict):
                name = self.object_metadata.get(inner, {}).get("name")
                print_msg(f"{prefix}{connector}{key}" + (f" ('{name}')" if name is not None else ""))
                self._print_tree(value, prefix + ("    " if last else "│   "), inner, first)
            elif hasattr(value, "shape"):
                print_msg(f"{prefix}{connector}{key}: shape={value.shape}, dtype={value.dtype}")
            else:
                print_msg(f"{prefix}{connector}{key}: {value}")

    def compare(self, reference_model):
        """Where the file's weights and ``reference_model``'s (a gpu_dl model, its optimizer's included where it
        is compiled and built) differ: objects or weights in one only, and shapes that differ, each printed.
        Returns ``{"status": "success" | "error", "error_count", "match_count"}``."""
        print_msg("Running comparison")
        reference = _weights_of(reference_model)
        checked = set()
        errors, matches = _compare(self.weights_dict, reference, "", "saved file", "reference model", checked)
        more, _ = _compare(reference, self.weights_dict, "", "reference model", "saved file", checked)
        errors += more
        print_msg("─────────────────────")
        if errors == 0:
            print_msg("Comparison successful: saved file is compatible with the reference model")
            print_msg(f"    Found {matches} matching weight{'' if matches == 1 else 's'}")
        else:
            print_msg(f"Found {errors} error{'' if errors == 1 else 's'}: saved file is not compatible with the "
                      "reference model")
        return {"status": "success" if errors == 0 else "error", "error_count": errors, "match_count": matches}

    # -------------------------------------------------------------- edit
    def _edit_object(self, edit, source_name, target_name=None):
        if not isinstance(source_name, str):
            raise TypeError(f"KerasFileEditor: the object must be named by a string, got {source_name!r}.")
        if target_name is not None and "/" in target_name:
            raise ValueError("Argument `target_name` should be a leaf name, not a full path name. "
                             f"Received: target_name='{target_name}'")
        if "/" in source_name:
            elements = source_name.split("/")
            tree = _folder(self.weights_dict, elements[:-1], f"Path '{source_name}' not found in model.")
            if elements[-1] not in tree:
                raise ValueError(f"Path '{source_name}' not found in model.")
            edit(tree, elements[-1], target_name)
            return
        occurrences = _count(self.weights_dict, source_name)
        if occurrences > 1:
            raise ValueError(f"Name '{source_name}' occurs more than once in the model; try passing a complete path")
        if occurrences == 0:
            raise ValueError(f"Source name '{source_name}' does not appear in the model. Use `editor.summary()` "
                             "to list all objects.")
        tree = _holder(self.weights_dict, source_name)
        edit(tree, source_name, target_name)

    def rename_object(self, object_name, new_name):
        """Rename the object at a path (``"layers/dense_2"``) or of a unique name (``"dense_2"``) to
        ``new_name`` (a name, not a path)."""
        def rename(tree, source, target):
            tree[target] = tree.pop(source)

        self._edit_object(rename, object_name, new_name)

    def delete_object(self, object_name):
        """Remove the object at a path or of a unique name, with its weights."""
        def delete(tree, source, target):
            tree.pop(source)

        self._edit_object(delete, object_name)

    def add_object(self, object_path, weights):
        """Add an object at ``object_path`` (``"layers/dense_3"``) holding ``weights``, a dict of weight names
        ("0", "1", ...) to arrays; the path's parents must exist."""
        _check_weights(weights)
        if "/" in object_path:
            elements = object_path.split("/")
            parents = elements[:-1]
            tree = _folder(self.weights_dict, parents, f"Path '{'/'.join(parents)}' not found in model.")
            tree[elements[-1]] = weights
        else:
            self.weights_dict[object_path] = weights

    def delete_weight(self, object_name, weight_name):
        """Remove the weight ``weight_name`` ("0", ...) of the object at a path or of a unique name."""
        def delete(tree, source, target):
            if not isinstance(tree[source], dict) or weight_name not in tree[source]:
                found = list(tree[source]) if isinstance(tree[source], dict) else []
                raise ValueError(f"Weight {weight_name} not found in object {object_name}. Weights found: {found}")
            tree[source].pop(weight_name)

        self._edit_object(delete, object_name)

    def add_weights(self, object_name, weights):
        """Add ``weights`` (a dict of weight names to arrays) to the object at a path or of a unique name."""
        _check_weights(weights)

        def add(tree, source, target):
            if not isinstance(tree[source], dict):
                raise ValueError(f"KerasFileEditor: '{object_name}' is a weight, not an object holding weights.")
            tree[source].update(weights)

        self._edit_object(add, object_name)

    # -------------------------------------------------------------- save
    def save(self, filepath):
        """Write the (edited) weights to ``filepath``, a ``.weights.h5`` file."""
        filepath = str(filepath)
        if not filepath.endswith(".weights.h5"):
            raise ValueError("Invalid `filepath` argument: expected a `.weights.h5` extension. "
                             f"Received: filepath={filepath}")
        h5py = _h5py()
        with h5py.File(filepath, "w") as h5file:
            _write(h5file, self.weights_dict, "")

    def resave_weights(self, filepath):
        """``save(filepath)``."""
        self.save(filepath)


# ------------------------------------------------------------------ reading
def _extract(h5py, group, metadata=None, path=""):
    """(weights tree, object metadata) of an HDF5 group, as Keras's editor reads them."""
    metadata = {} if metadata is None else metadata
    attributes = {key: value for key, value in group.attrs.items()}
    if attributes:
        metadata[path] = attributes
    tree = collections.OrderedDict()
    for key in group.keys():
        inner = f"{path}/{key}"
        link = group.get(key, getclass=True, getlink=True)
        if link in (h5py.ExternalLink, h5py.SoftLink):
            raise ValueError(f"Not allowed: H5 file with {link.__name__}")
        value = group[key]
        if isinstance(value, h5py.Group):
            if len(value) == 0:
                continue
            if "vars" in value.keys():
                if group[key].get("vars", getclass=True, getlink=True) in (h5py.ExternalLink, h5py.SoftLink):
                    raise ValueError("Not allowed: H5 file with a link as a `vars` group")
                variables = value["vars"]
                if not isinstance(variables, h5py.Group) or len(variables) == 0:
                    continue
                tree[key], metadata = _extract(h5py, variables, metadata, inner)
            else:
                tree[key], metadata = _extract(h5py, value, metadata, inner)
            continue
        if not isinstance(value, h5py.Dataset):
            continue
        if value.external:
            raise ValueError(f"Not allowed: H5 file Dataset with external links: {value.external}")
        if value.is_virtual:
            raise ValueError(f"Not allowed: H5 file with virtual Dataset at {inner}")
        shape = value.shape
        if shape is None or any(d < 0 for d in shape):
            raise ValueError("Malformed HDF5 dataset shape encountered in .keras file; negative dimension detected.")
        if len(shape) > 64:
            raise ValueError("Malformed HDF5 dataset shape encountered in .keras file; tensor rank exceeds safety "
                             "limit.")
        size = math.prod(shape) * value.dtype.itemsize
        if size > _MAX_BYTES:
            raise ValueError(f"HDF5 dataset too large to load safely ({size} bytes; limit is {_MAX_BYTES}).")
        tree[key] = value[()]
    return tree, metadata


def _weights_of(model):
    """The weights tree of ``model`` as a weights file of it holds it."""
    from .weights_h5 import write_weights
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5file:
        write_weights(h5file, model)
    with h5py.File(io.BytesIO(buffer.getvalue()), "r") as h5file:
        return _extract(h5py, h5file)[0]


def _compare(target, reference, path, target_name, reference_name, checked):
    """(errors, matches) of ``reference``'s entries against ``target``'s, each mismatch printed once."""
    errors = matches = 0
    for key, value in reference.items():
        inner = f"{path}/{key}"
        if inner in checked:
            continue
        if key not in target:
            errors += 1
            checked.add(inner)
            if isinstance(value, dict):
                print_msg(f"...Object {inner} present in {reference_name}, missing from {target_name}")
                print_msg(f"    In {reference_name}, {inner} contains the following keys: {list(value)}")
            else:
                print_msg(f"...Weight {inner} present in {reference_name}, missing from {target_name}")
        elif isinstance(value, dict):
            if not isinstance(target[key], dict):
                errors += 1
                checked.add(inner)
                print_msg(f"...Object {inner} of {reference_name} is a weight in {target_name}")
                continue
            more_errors, more_matches = _compare(target[key], value, inner, target_name, reference_name, checked)
            errors, matches = errors + more_errors, matches + more_matches
        elif isinstance(target[key], dict) or numpy.shape(target[key]) != numpy.shape(value):
            errors += 1
            checked.add(inner)
            print_msg(f"...Weight shape mismatch for {inner}\n    In {reference_name}: shape={numpy.shape(value)}\n"
                      f"    In {target_name}: shape={_shape_text(target[key])}")
        else:
            matches += 1
    return errors, matches


def _shape_text(value):
    return "(an object)" if isinstance(value, dict) else numpy.shape(value)


def _folder(tree, path, missing):
    """The dict at ``path`` (a list of names) under ``tree``; a ValueError saying ``missing`` where a name of it
    is absent or names weights."""
    for element in path:
        if not isinstance(tree.get(element), dict):
            raise ValueError(missing)
        tree = tree[element]
    return tree


def _count(tree, name):
    """How many times ``name`` is a key in the tree (at any depth)."""
    return sum(_count(v, name) for v in tree.values() if isinstance(v, dict)) + (name in tree)


def _holder(tree, name):
    """The dict in the tree holding key ``name`` (which occurs once)."""
    if name in tree:
        return tree
    for value in tree.values():
        if isinstance(value, dict) and _count(value, name):
            return _holder(value, name)
    raise KeyError(name)


def _check_weights(weights):
    if not isinstance(weights, dict):
        raise ValueError("Argument `weights` should be a dict where keys are weight names (usually '0', '1', etc.) "
                         f"and values are NumPy arrays. Received: type(weights)={type(weights)}")


# ------------------------------------------------------------------ writing
def _write(h5file, tree, path):
    arrays = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            if value:
                _write(h5file, value, f"{path}/{name}" if path else name)
        else:
            arrays[name] = value
    if arrays:
        group = h5file.require_group(path).create_group("vars") if path else h5file.create_group("vars")
        for name, value in arrays.items():
            group.create_dataset(name, data=numpy.asarray(value))
