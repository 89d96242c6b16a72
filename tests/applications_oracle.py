"""Checks the applications' Keras-oracle tests share: the same model built by gpu_dl and by Keras 3 (configs,
weight names and shapes), the same predictions with Keras's weights copied across or read from the files Keras
writes (Keras 3 ``.weights.h5`` and ``.keras``, and Keras 2 HDF5, the format of its ImageNet files), and the
ImageNet file looked for under Keras's name."""
import json
import re

import numpy
import pytest


def build(apps, fn, kwargs):
    return getattr(apps, fn)(weights=None, **kwargs)


def _auto_named(name, class_name):
    """Whether ``name`` is one Keras and gpu_dl number per session (conv2d_12 for a Conv2D given no name)."""
    base = re.sub(r"_\d+$", "", name)
    return base.replace("_", "") == class_name.lower()


def _nested_entries(entries):
    """Each layer entry, then those of the models among them (a Sequential used as a layer), depth first."""
    for entry in entries:
        yield entry
        inner = entry.get("config", {}).get("layers")
        if entry.get("class_name") in ("Sequential", "Functional") and isinstance(inner, list):
            yield from _nested_entries(inner)


def layer_entries(model):
    """The model's get_config layer entries, its numbered names (counted across the session, so different in
    each library) renamed by their order in the model (conv2d#0, conv2d#1, ...), the numbered models' inputs and
    outputs the same way; the entries each library leaves out when None dropped."""
    config = json.loads(json.dumps({k: model.get_config()[k] for k in ("layers", "input_layers", "output_layers")}))
    for entry in config["layers"]:
        inner = entry["config"].get("layers") if entry["class_name"] == "Sequential" else None
        if inner and inner[0]["class_name"] == "InputLayer":
            # A Sequential built by its call: Keras numbers the InputLayer it made then (input_layer_3); gpu_dl
            # writes the one it makes for the config as "input_layer". Both read either.
            inner[0]["config"]["name"] = "<the Sequential's input>"
    renames, counts = {}, {}
    for entry in _nested_entries(config["layers"]):
        name = entry["config"].get("name")
        if isinstance(name, str) and name not in renames and _auto_named(name, entry["class_name"]):
            base = re.sub(r"_\d+$", "", name)
            renames[name] = f"{base}#{counts.setdefault(base, 0)}"
            counts[base] += 1

    def renamed(value):
        # String values only: a layer named "activation" is not the config key "activation".
        if isinstance(value, dict):
            return {k: renamed(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [renamed(v) for v in value]
        return renames.get(value, value) if isinstance(value, str) else value

    config = renamed(config)
    for entry in _nested_entries(config["layers"]):
        # gpu_dl leaves out an activity_regularizer and a quantization_config (Dense) of None; the mask=None
        # Keras records in the calls of layers whose call takes a mask (BatchNormalization); and the
        # training=False Keras records in the symbolic calls of layers whose call defaults to it (Dropout), which
        # a call with training given overrides in both. Both read either.
        for key in ("activity_regularizer", "quantization_config"):
            if entry["config"].get(key, 0) is None:
                del entry["config"][key]
        for node in entry.get("inbound_nodes", []):
            if node["kwargs"].get("mask", 0) is None:
                del node["kwargs"]["mask"]
            if node["kwargs"].get("training", 0) is False:
                del node["kwargs"]["training"]
    return config


def _strip(name):
    # Variables made without a name are numbered per session ("variable_3"), as layers are.
    return re.sub(r"^variable_\d+$", "variable", name.split("/")[-1].split(":")[0])


def assert_same_model(ours, theirs):
    """The same model name, layer entries (class, name, config, inbound nodes, build config), inputs and
    outputs, weight shapes in order, and trainable weight names."""
    assert ours.name == theirs.name
    mine, keras_config = layer_entries(ours), layer_entries(theirs)
    assert [e["name"] for e in mine["layers"]] == [e["name"] for e in keras_config["layers"]]
    for entry, keras_entry in zip(mine["layers"], keras_config["layers"]):
        # Keras records no build_config for layers without a build of their own (Activation, ReLU, pooling);
        # gpu_dl records one for every built layer. Where Keras has one, it must be the same.
        if "build_config" not in keras_entry:
            entry.pop("build_config", None)
        assert entry == keras_entry, entry["name"]
    assert mine["input_layers"] == keras_config["input_layers"]
    assert mine["output_layers"] == keras_config["output_layers"]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert [_strip(w.name) for w in ours.weights] == [_strip(w.name) for w in theirs.weights]
    assert [_strip(w.name) for w in ours.trainable_weights] == [_strip(w.name) for w in theirs.trainable_weights]


def randomize(keras, theirs, rng):
    """Keras's model with its initial kernels and random biases, scales and batch-norm statistics (all zeros
    and ones at first, which would hide a swapped mean and variance)."""
    values = []
    for w in theirs.weights:
        a = keras.ops.convert_to_numpy(w)
        noise = rng.uniform(-0.1, 0.1, a.shape).astype(a.dtype)
        if any(k in w.path for k in ("moving_variance", "gamma", "variance")):
            a = a + noise
        elif any(k in w.path for k in ("moving_mean", "beta", "bias", "mean")):
            a = noise
        values.append(a)
    theirs.set_weights(values)
    return theirs


def images(kwargs, rng, count=2, default=(32, 32, 3)):
    shape = kwargs.get("input_shape") or default
    return rng.uniform(-1, 1, (count,) + tuple(shape)).astype("float32")


def assert_same_predictions(ours, theirs, x, rtol=1e-4, atol_scale=1e-5):
    """The same predictions on ``x`` to float32 rounding: ``rtol``, and ``atol_scale`` of the outputs' largest."""
    expected = theirs.predict(x, verbose=0)
    scale = float(numpy.abs(expected).max())
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=rtol,
                                  atol=atol_scale * max(scale, 1.0))


def write_legacy(model, path):
    """Keras 2's HDF5 weights file of Keras's ``model``, written by Keras 3.15's own legacy writer."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def _keras_builder(keras, fn, keras_fn):
    return keras_fn if keras_fn is not None else getattr(keras.applications, fn)


def check_family(keras, apps, fn, kwargs, rng, tmp_path, load_model, files=True, keras_fn=None, atol_scale=1e-5):
    """All of a family's oracle checks on one small model: the same configs and weights; Keras's weights copied
    by set_weights, and (with ``files``) read from its .weights.h5 and its Keras 2 .h5 file (by load_weights and
    by ``weights=path``), and its whole model read from its .keras file, all predict what Keras predicts.
    ``keras_fn`` builds Keras's model where ``keras.applications.<fn>`` cannot (it takes ``weights`` and
    ``kwargs``); ``atol_scale`` is the predictions' tolerance (see ``assert_same_predictions``)."""
    ours, theirs = build(apps, fn, kwargs), _keras_builder(keras, fn, keras_fn)(weights=None, **kwargs)
    assert_same_model(ours, theirs)
    randomize(keras, theirs, rng)
    x = images(kwargs, rng)
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    assert_same_predictions(ours, theirs, x, atol_scale=atol_scale)
    if not files:
        return ours, theirs

    theirs.save_weights(tmp_path / "k.weights.h5")
    fresh = build(apps, fn, kwargs)
    fresh.load_weights(tmp_path / "k.weights.h5")
    assert_same_predictions(fresh, theirs, x, atol_scale=atol_scale)
    write_legacy(theirs, tmp_path / "k.h5")
    assert_same_predictions(getattr(apps, fn)(weights=str(tmp_path / "k.h5"), **kwargs), theirs, x,
                            atol_scale=atol_scale)

    theirs.save(tmp_path / "k.keras")
    loaded = load_model(tmp_path / "k.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in theirs.layers]
    assert_same_predictions(loaded, theirs, x, atol_scale=atol_scale)
    return ours, theirs


def check_imagenet_file(keras, apps, fn, kwargs, filename, rng, tmp_path, monkeypatch, keras_fn=None):
    """weights="imagenet" reads Keras's file ``filename`` (written here by Keras's legacy writer) from
    $GPU_DL_DATA/models, and predicts what Keras's model predicts with weights="imagenet" given the same file:
    Keras's download is replaced by a look in that folder, which must be for the same file name."""
    from keras.src.utils import file_utils
    keras_fn = _keras_builder(keras, fn, keras_fn)
    source = randomize(keras, keras_fn(weights=None, **kwargs), rng)
    folder = tmp_path / "data" / "models"
    folder.mkdir(parents=True)
    write_legacy(source, folder / filename)
    requested = []

    def local_copy(fname, origin=None, **options):
        requested.append(fname)
        return str(folder / fname)

    monkeypatch.setattr(file_utils, "get_file", local_copy)
    theirs = keras_fn(weights="imagenet", **kwargs)
    assert requested == [filename]
    monkeypatch.setenv("GPU_DL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ours = getattr(apps, fn)(weights="imagenet", **kwargs)
    assert_same_model(ours, theirs)
    assert_same_predictions(ours, theirs, images(kwargs, rng))


def check_preprocessing(ours, theirs, rng, rtol=1e-6):
    """The module's preprocess_input gives Keras's on a batch and on one image, and decode_predictions is there."""
    batch = rng.uniform(0, 255, (2, 5, 4, 3)).astype("float32")
    for x in (batch, batch[0]):
        numpy.testing.assert_allclose(ours.preprocess_input(x.copy()), theirs.preprocess_input(x.copy()),
                                      rtol=rtol, atol=1e-6)
    with pytest.raises(ValueError, match="decode_predictions expects a batch of predictions"):
        ours.decode_predictions(numpy.zeros((2, 10)))
