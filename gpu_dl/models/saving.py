"""Saving and loading models in Keras 3's file formats: the files themselves and the public entry points.

``model.save("m.keras")`` writes a zip archive holding

- ``metadata.json``: ``{"keras_version", "gpu_dl_version", "date_saved"}``;
- ``config.json``: the model as Keras 3 serialises it (see ``keras_config``);
- ``model.weights.h5``: the variables in Keras 3's HDF5 layout (see
  ``weights_h5``).

``save_weights("w.weights.h5")`` writes the same HDF5 layout as a file of its
own. ``load_model`` and ``load_weights`` read files written by gpu_dl or by
Keras 3.

Writes are atomic: the file is written under a temporary name in the target's
directory, flushed to disk, then renamed over the target, so a crash mid-save
leaves the previous file as it was.

Loading executes nothing from the file: JSON and HDF5 only, no pickle. The
config and the weights are both checked before any variable changes, so a
failed load leaves the model as it was.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import secrets
import zipfile

from ..backend.user_warnings import warn
from ..catalogue import checked_custom_objects, custom_object_scope
from ..layers.base import weight_budget
from ..layers.layer_losses import flatten_layers
from .legacy_h5 import is_legacy_file, stage_legacy_weights
from .keras_config import compile_from_config, model_config, model_from_config
from .weights_h5 import (asset_layers, guard_h5, hook_asset_layers, keras_snake_case, stage_model_weights,
                         stage_optimizers, write_weights)

# The public names, several of them defined in the two modules above and re-exported here.
__all__ = ["save_model", "save_weights", "load_model", "load_weights", "model_config", "model_from_config",
           "write_weights", "keras_snake_case"]

CONFIG_FILENAME = "config.json"
METADATA_FILENAME = "metadata.json"
WEIGHTS_FILENAME = "model.weights.h5"
ASSETS_DIRNAME = "assets"
# An asset (a lookup layer's vocabulary, one token a line) read from a file is refused beyond this size.
MAX_ASSET_BYTES = 1 << 30
# The Keras release that introduced this archive format; written as ``keras_version``.
FORMAT_KERAS_VERSION = "3.0.0"
# A config.json larger than this is refused before it is read into memory.
_MAX_JSON_BYTES = 64 * 2**20
# An archive member that would expand to more than this many bytes and more than _MAX_EXPANSION times its
# stored size is a decompression bomb, not a model: refused before it is read into memory. Keras 3 refuses the
# same members (its ``_reject_zip_bomb``), so every file Keras loads still loads here. Keras and gpu_dl store
# members uncompressed, and DEFLATE cannot expand more than about 1032 times.
_BOMB_FLOOR_BYTES = 1 << 32
_MAX_EXPANSION = 100
# A config.json nested deeper than this is refused: Keras's configs nest a few tens of levels at most, and the
# readers of the config recurse through it.
_MAX_JSON_DEPTH = 100


# ---------------------------------------------------------------- utilities
def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ImportError("Saving and loading models needs h5py: pip install 'h5py>=3'.") from None
    return h5py


def _path_string(filepath, what="filepath"):
    try:
        path = os.fspath(filepath)
    except TypeError:
        path = None
    if not isinstance(path, str):      # bytes paths too: the suffix checks and messages work on text
        raise TypeError(f"`{what}` must be a path (str or os.PathLike), got {filepath!r}.")
    return path


def atomic_write(path, write):
    """Call ``write(temporary_path)``, flush the file to disk and rename it over ``path``.

    The temporary file lives in ``path``'s directory (a rename within one file
    system is atomic) and is removed if ``write`` raises. A symbolic link is written through: the file it
    names is replaced and the link stays, as a plain write to the link would leave it.
    """
    if os.path.islink(path):
        path = os.path.realpath(path)
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


# ------------------------------------------------------------------ save
def _metadata():
    from .. import __version__
    return {"keras_version": FORMAT_KERAS_VERSION, "gpu_dl_version": __version__,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Write ``model`` to a ``.keras`` archive (see the module docstring)."""
    path = _path_string(filepath)
    # Keras 3 takes these two Keras 2 arguments and, for a `.keras` file, ignores them.
    include_optimizer = kwargs.pop("include_optimizer", True)
    save_format = kwargs.pop("save_format", None)
    if kwargs:
        raise TypeError(f"save() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}.")
    if save_format and path.endswith(".keras"):
        warn(f"save(save_format={save_format!r}) is deprecated in Keras 3 and ignored: the format follows "
             "from the `.keras` extension.")
    elif save_format:
        raise ValueError(f"save(save_format={save_format!r}) is deprecated in Keras 3 and not supported: pass a "
                         f"file path ending in `.keras` instead (received filepath={path}).")
    if not include_optimizer:
        warn("save(include_optimizer=False) is ignored, as in Keras 3: a `.keras` file always holds the "
             "optimizer and its state.")
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
    assets = {f"{ASSETS_DIRNAME}/{path}/{name}": text for path, layer in asset_layers(model)
              for name, text in layer.asset_files().items()}
    assets.update(_hook_assets(model))

    def write(tmp):
        with zipfile.ZipFile(tmp, "w") as archive:
            archive.writestr(METADATA_FILENAME, metadata_json)
            archive.writestr(CONFIG_FILENAME, config_json)
            archive.writestr(WEIGHTS_FILENAME, buffer.getbuffer())
            for name, text in assets.items():
                archive.writestr(name, text)

    atomic_write(path, write)


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

    atomic_write(path, write)


# ------------------------------------------------------------------ load
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


def _member_info(archive, name, path):
    try:
        return archive.getinfo(name)
    except KeyError:
        raise ValueError(f"{path}: the archive has no '{name}' (it holds {archive.namelist()[:10]}); it is not a "
                         "Keras 3 `.keras` file or it is damaged.") from None


def _read_member(archive, name, path, limit=None):
    info = _member_info(archive, name, path)
    if limit is not None and info.file_size > limit:
        raise ValueError(f"{path}: '{name}' is {info.file_size} bytes, more than the {limit} gpu_dl reads for it.")
    if info.file_size > _BOMB_FLOOR_BYTES and info.file_size > _MAX_EXPANSION * info.compress_size:
        raise ValueError(f"{path}: '{name}' declares {info.file_size} bytes but stores only {info.compress_size}; "
                         "refusing to expand a likely decompression bomb.")
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
        # RuntimeError: an encrypted member, which zipfile reads only with a password.
        raise ValueError(f"{path}: cannot read '{name}' from the archive ({e}); it may be truncated or damaged.") from e


def _json_depth(value, limit):
    """How many levels of lists and dicts nest in ``value`` (0 for a scalar), counted without recursion
    and up to ``limit + 1``."""
    depth, level = 0, [value]
    while depth <= limit:
        level = [item for item in level if isinstance(item, (list, dict))]
        if not level:
            break
        depth += 1
        level = [child for item in level for child in (item.values() if isinstance(item, dict) else item)]
    return depth


def _read_json(archive, name, path):
    data = _read_member(archive, name, path, limit=_MAX_JSON_BYTES)
    too_deep = ValueError(f"{path}: '{name}' nests lists and objects more than {_MAX_JSON_DEPTH} levels deep; "
                          "it is not a model config.")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: '{name}' is not valid JSON ({e}).") from e
    except RecursionError:
        raise too_deep from None
    if _json_depth(value, _MAX_JSON_DEPTH) > _MAX_JSON_DEPTH:
        raise too_deep
    return value


def _weights_from_archive(h5py, archive, path):
    data = _read_member(archive, WEIGHTS_FILENAME, path)
    source = f"{path} ({WEIGHTS_FILENAME})"
    try:
        return h5py.File(io.BytesIO(data), "r"), source
    except OSError as e:
        raise ValueError(f"{source}: cannot read the HDF5 data ({e}); it may be truncated or damaged.") from e


def _hook_assets(model):
    """``{archive name: bytes}`` of the files each layer's own ``save_assets(dir)`` writes into a fresh directory
    (Keras's hook), under ``assets/<layer path>/``."""
    import tempfile
    found = {}
    for layer_path, layer in hook_asset_layers(model):
        if not callable(getattr(layer, "save_assets", None)):
            continue
        with tempfile.TemporaryDirectory() as folder:
            layer.save_assets(folder)
            for root, _, files in os.walk(folder):
                for name in files:
                    full = os.path.join(root, name)
                    relative = os.path.relpath(full, folder).replace(os.sep, "/")
                    with open(full, "rb") as f:
                        found[f"{ASSETS_DIRNAME}/{layer_path}/{relative}"] = f.read()
    return found


def _load_hook_assets(archive, model, path):
    """Call each layer's own ``load_assets(dir)`` (Keras's hook) with a directory holding the files the archive
    has under ``assets/<layer path>/``, after the weights are loaded, as Keras calls it."""
    import tempfile
    names = archive.namelist()
    for layer_path, layer in hook_asset_layers(model):
        if not callable(getattr(layer, "load_assets", None)):
            continue
        prefix = f"{ASSETS_DIRNAME}/{layer_path}/"
        with tempfile.TemporaryDirectory() as folder:
            for name in names:
                if not name.startswith(prefix) or name.endswith("/"):
                    continue
                parts = name[len(prefix):].split("/")
                if any(part in ("", ".", "..") for part in parts) or ":" in name or "\\" in name:
                    raise ValueError(f"{path}: the asset '{name}' names a path outside its layer's folder.")
                target = os.path.join(folder, *parts)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(_read_member(archive, name, path, limit=MAX_ASSET_BYTES))
            layer.load_assets(folder)


def _load_assets(archive, model, path):
    """Hand each layer with Keras assets the text of its files under ``assets/<layer path>/`` (after its weights:
    IntegerLookup's tf-idf vocabulary takes the idf weights already loaded, as in Keras)."""
    names = set(archive.namelist())
    for layer_path, layer in asset_layers(model):
        def read(name, layer_path=layer_path):
            member = f"{ASSETS_DIRNAME}/{layer_path}/{name}"
            if member not in names:
                return None
            return _read_member(archive, member, path, limit=MAX_ASSET_BYTES).decode("utf-8")
        layer.load_asset_files(read)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model a ``.keras`` file holds: architecture, weights and (with ``compile``) optimizer and its state.

    ``custom_objects`` maps the names a file gives its objects of the caller's own (the registered name
    ``package>name`` or the class name; a function's name) to them, as in Keras: ``Layer`` subclasses for
    layers; for the compiled loss a ``Loss`` subclass or object, or the functions a ``LossFunctionWrapper``
    names; for metrics ``Metric`` subclasses or objects or per-sample functions; ``Optimizer`` subclasses.
    Objects registered with ``gpu_dl.saving.register_keras_serializable``, and inside
    ``with gpu_dl.saving.custom_object_scope({...}):`` those of the scope, are found without it (a name given
    in several places: the registered object, then the scope's, then ``custom_objects``'s, as in Keras).
    ``safe_mode`` is accepted for Keras compatibility (loading never runs code from the file: names are
    looked up, nothing is imported).
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
    checked_custom_objects(custom_objects)
    h5py = _h5py()
    with _open_archive(path) as archive:
        config = _read_json(archive, CONFIG_FILENAME, path)
        if isinstance(config, dict) and config.get("class_name") == "FeatureSpace":
            # not a model: Keras's load_model gives back the FeatureSpace a .keras file holds
            from ..utils.feature_space_files import load_feature_space
            return load_feature_space(archive, config, path, custom_objects)
        # Keras and gpu_dl store every weight uncompressed in the HDF5 member, so the model the config describes
        # needs no more bytes than that member has: a config declaring larger layers is refused before they
        # are allocated.
        weights_size = _member_info(archive, WEIGHTS_FILENAME, path).file_size
        with weight_budget(weights_size, f"{path} ({CONFIG_FILENAME})", f"the archive's {WEIGHTS_FILENAME} holds"):
            model = model_from_config(config, f"{path} ({CONFIG_FILENAME})", custom_objects)
        if compile and config.get("compile_config"):
            from .model import Model
            if type(model).compile_from_config is not Model.compile_from_config:
                # a class's own compile_from_config reads its own get_compile_config, as Keras calls it
                with custom_object_scope(custom_objects or {}):
                    model.compile_from_config(config["compile_config"])
            else:
                compile_from_config(model, config["compile_config"], f"{path} ({CONFIG_FILENAME})", custom_objects)
        h5file, source = _weights_from_archive(h5py, archive, path)
        with h5file:
            staged = guard_h5(source, lambda: stage_model_weights(h5py, h5file, model, source))
            # A model quantized after training keeps its optimizer's slots of the float kernels, which Keras writes
            # too: their state is left out with a warning, as Keras loads it.
            strict = not any(layer.dtype_policy.quantization_mode for layer in flatten_layers(model))
            restore_optimizer = guard_h5(source, lambda: stage_optimizers(h5py, h5file, model, source, strict=strict))
        for var, a in staged:
            var.assign(a)
        _load_assets(archive, model, path)
        _load_hook_assets(archive, model, path)
    if restore_optimizer is not None:
        restore_optimizer()
    return model


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """Load weights (and the optimizer's state, when the file has a matching one) from ``.weights.h5`` or
    ``.keras``, or weights from a legacy Keras 2 HDF5 file (``.h5``/``.hdf5``, such as Keras's ImageNet weights).

    All shapes are checked before anything is assigned: on an error the model
    is left as it was. With ``skip_mismatch`` weights that do not fit are
    skipped with a warning. ``by_name`` (legacy files only, as in Keras) matches
    the file's layers to the model's by name instead of by order.
    """
    path = _path_string(filepath)
    # Keras 3 still takes these two, and refuses `by_name` for every file it reads in its own format.
    by_name = kwargs.pop("by_name", None)
    objects_to_skip = kwargs.pop("objects_to_skip", None)
    if kwargs:
        raise TypeError(f"load_weights() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}.")
    by_name_refused = ValueError(f"load_weights(by_name={by_name!r}): `by_name` applies only to legacy Keras 2 "
                                 "HDF5 files. Keras 3 files match weights to layers by their order in the model; "
                                 "remove the argument.")
    if objects_to_skip is not None:
        raise ValueError("load_weights(objects_to_skip=...) is not supported; use skip_mismatch=True to skip the "
                         "layers whose weights do not fit.")
    if path.endswith((".weights.h5", ".h5", ".hdf5")):
        kind = "h5"
    elif path.endswith(".keras"):
        kind = "keras"
        if by_name is not None:
            raise by_name_refused
    else:
        raise ValueError(f"File format not supported: filepath={path}. gpu_dl (as Keras 3) loads weights from "
                         "`.weights.h5` and `.keras` files, and legacy Keras 2 `.h5`/`.hdf5` weight files.")
    if not model.built:
        raise ValueError("You are loading weights into a model that has not yet been built. Try building the model "
                         "first by calling it on some data or by using `build()`.")
    h5py = _h5py()
    archive = None
    restore_optimizer = None
    try:
        if kind == "keras":
            archive = _open_archive(path)
            h5file, source = _weights_from_archive(h5py, archive, path)
        else:
            h5file, source = _open_h5_file(h5py, path), path
        with h5file:
            # The layout tells the format, whatever the file's name: Keras 2 files carry `layer_names`.
            if kind == "h5" and guard_h5(source, lambda: is_legacy_file(h5file)):
                source = f"{source} (legacy Keras 2 HDF5 weights)"
                staged = guard_h5(source, lambda: stage_legacy_weights(h5py, h5file, model, source, bool(by_name),
                                                                       skip_mismatch))
            else:
                if by_name is not None:
                    raise by_name_refused
                staged = guard_h5(source, lambda: stage_model_weights(h5py, h5file, model, source, skip_mismatch))
                restore_optimizer = guard_h5(source,
                                             lambda: stage_optimizers(h5py, h5file, model, source, strict=False))
    finally:
        if archive is not None:
            archive.close()
    for var, a in staged:
        var.assign(a)
    if restore_optimizer is not None:
        restore_optimizer()
