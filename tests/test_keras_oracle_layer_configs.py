"""What layer configs and build configs record, against Keras 3 itself (torch backend) where Keras is installed,
and the same programs' own checks without it: the attention layers' nodes keep their inputs as the call gave them
(``mha(q, v, k)`` positionally, ``mha(q, v, key=k)`` with the key among the kwargs)."""
import json
import os
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl.models import clone_model, load_model

from keras_steps import assert_keras_file_loads_both_ways

os.environ.setdefault("KERAS_BACKEND", "torch")


def _as_json(config):
    return json.loads(json.dumps(config))


def _file_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _unshared(config):
    """``config`` without the ``shared_object_id`` entries Keras's saving adds to objects that several layers
    share (their dtype policy), which gpu_dl does not write (its loading skips them)."""
    if isinstance(config, dict):
        return {k: _unshared(v) for k, v in config.items() if k != "shared_object_id"}
    return [_unshared(v) for v in config] if isinstance(config, list) else config


def _node_form(config, name):
    """``(args, kwargs)`` of the first node of layer ``name``: the tensors by the layer they come from."""
    entry = next(layer for layer in config["config"]["layers"] if layer["name"] == name)
    node = entry["inbound_nodes"][0]

    def source(value):
        return value["config"]["keras_history"][0] if isinstance(value, dict) and "keras_history" in value.get(
            "config", {}) else value
    return [source(a) for a in node["args"]], {k: source(v) for k, v in node["kwargs"].items()}


# ------------------------------------------------------------------ attention inputs as the call gave them
def _attention_program(lib, grouped=True):
    L = lib.layers
    q, v, k = lib.Input((4, 6), name="q"), lib.Input((5, 6), name="v"), lib.Input((5, 3), name="k")
    a = L.MultiHeadAttention(2, 3, name="positional")(q, v, k)
    b = L.MultiHeadAttention(2, 3, name="key_by_name")(a, v, key=k, use_causal_mask=False)
    # (gpu_dl's GroupQueryAttention is Keras's GroupedQueryAttention under its registered name)
    c = (L.GroupQueryAttention(2, 2, 1, name="gqa") if grouped else L.MultiHeadAttention(2, 3, name="gqa"))(b, v, k)
    d = L.MultiHeadAttention(2, 3, name="named")(query=c, value=v, key=k)
    return lib.Model([q, v, k], L.MultiHeadAttention(2, 3, name="two")(d, v), name="attention")


_ATTENTION_FORMS = {
    "positional": (["q", "v", "k"], {}),
    "key_by_name": (["positional", "v"], {"key": "k", "use_causal_mask": False}),
    "gqa": (["key_by_name", "v", "k"], {}),
    "named": ([], {"query": "gqa", "value": "v", "key": "k"}),
    "two": (["named", "v"], {}),
}


def _attention_inputs(rng, n=4):
    return [rng.standard_normal((n,) + s).astype("float32") for s in ((4, 6), (5, 6), (5, 3))]


def test_attention_nodes_keep_the_inputs_as_the_call_gave_them(tmp_path):
    model = _attention_program(gpu_dl)
    config = model.get_config()
    for name, form in _ATTENTION_FORMS.items():
        assert _node_form({"config": config}, name) == form, name
    # the order of the layers follows the tensors of each call: positional, then by keyword in sorted order
    assert [layer.name for layer in model.layers][:3] == ["k", "q", "v"]
    rng = numpy.random.default_rng(3)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    x = _attention_inputs(rng)
    want = model.predict(x, verbose=0)
    # read back, cloned and saved, the nodes are the same calls
    rebuilt = gpu_dl.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    clone = clone_model(model)
    clone.set_weights(model.get_weights())
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    for other in (rebuilt, clone, loaded):
        assert _as_json(other.get_config()) == _as_json(config)
        numpy.testing.assert_allclose(other.predict(x, verbose=0), want, rtol=1e-6, atol=1e-6)
    assert _as_json(_file_config(tmp_path / "m.keras")["config"]) == _as_json(config)


def test_attention_call_forms_match_keras(tmp_path):
    keras = pytest.importorskip("keras")
    ours, theirs = _attention_program(gpu_dl), _attention_program(keras)
    assert _as_json(ours.get_config()) == _as_json(theirs.get_config())
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    written, want = _file_config(tmp_path / "ours.keras"), _file_config(tmp_path / "theirs.keras")
    assert written["config"] == _unshared(want["config"])
    for name, form in _ATTENTION_FORMS.items():
        assert _node_form(want, name) == form, name
    theirs = _attention_program(keras, grouped=False)
    loaded, x = assert_keras_file_loads_both_ways(keras, theirs, _attention_inputs, tmp_path, load_model)
    assert _as_json(loaded.get_config()) == _unshared(_as_json(theirs.get_config()))
    again = _file_config(tmp_path / "again.keras")
    assert again["config"] == _unshared(_file_config(tmp_path / "k.keras")["config"])
