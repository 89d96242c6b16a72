"""Indexing and matrix products on symbolic tensors against Keras 3 itself (where Keras is installed).

The same model, an LSTM whose last step (``x[:, -1]``) and first feature (``x[..., 0]``) feed a Dense, beside
an attention-like block (``q @ k^T``, ``scores @ x``, ``x @ array``), built with gpu_dl and with Keras: the same
operations in the same order in the config and the summary, the same outputs and training steps for the same
weights, and files written by either library load in the other and predict the same.
"""
import json
import os
import re

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_training_steps_match, keras_loads_our_file, ours_loads_keras_file  # noqa: E402

MIX = numpy.linspace(-1.0, 1.0, 4 * 3, dtype="float32").reshape(4, 3)


def sequence_model(lib):
    L = lib.layers
    x = lib.Input(shape=(6, 4), name="x")
    seq = L.LSTM(5, return_sequences=True, name="lstm")(x)
    q = L.Dense(3, name="q")(x)
    k = L.Dense(3, use_bias=False, name="k")(x)     # a bias of k shifts every score of a row alike: no gradient
    scores = L.Softmax(name="scores")(q @ L.Permute((2, 1), name="kt")(k) * 0.5)
    attended = (scores @ x) @ MIX                                          # (None, 6, 3)
    features = L.Concatenate(name="cat")([seq[:, -1], seq[..., 0], attended[:, ::2, 1], attended[:, None, -1, :][:, 0]])
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(features), name="indexed")


def _data(rng, n):
    return rng.standard_normal((n, 6, 4)).astype("float32"), rng.integers(0, 3, n)


def _entries(config):
    return [(e["module"], e["class_name"]) for e in config["layers"]]


def _constants(config):
    """The constant arguments of each operation's call, as JSON holds them (Keras's config has tuples)."""
    return json.loads(json.dumps(_raw_constants(config)))


def _raw_constants(config):
    return [[a for a in e["inbound_nodes"][0]["args"] if not (isinstance(a, dict) and a.get("class_name") ==
                                                               "__keras_tensor__")]
            for e in config["layers"] if e["module"] == "keras.src.ops.numpy"]


def test_same_operations_keys_and_outputs(rng):
    backend.set_random_seed(0)
    ours, theirs = sequence_model(gpu_dl), sequence_model(keras)
    assert _entries(ours.get_config()) == _entries(theirs.get_config())
    assert _constants(ours.get_config()) == _constants(theirs.get_config())
    assert ours.output_shape == theirs.output_shape
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    theirs.set_weights(ours.get_weights())
    x, _ = _data(rng, 5)
    expected = keras.ops.convert_to_numpy(theirs(x))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=2e-5, atol=2e-6)


def test_training_steps_match_keras(rng):
    backend.set_random_seed(1)
    assert_training_steps_match(keras, sequence_model(gpu_dl), sequence_model(keras), rng, (6, 4), classes=3,
                                batch=6)


def test_files_written_by_keras_load_and_predict_the_same(tmp_path, rng):
    keras.utils.set_random_seed(0)
    ours, keras_names = ours_loads_keras_file(keras, sequence_model(keras), *_data(rng, 9), tmp_path, load_model)
    assert [op.name for op in ours._operations] == keras_names


def test_keras_loads_files_written_by_gpu_dl(tmp_path, rng):
    backend.set_random_seed(2)
    theirs, written = keras_loads_our_file(keras, sequence_model(gpu_dl), *_data(rng, 8), tmp_path)
    assert _entries(written) == _entries(theirs.get_config())
    assert _constants(written) == _constants(theirs.get_config())


def test_a_keras_model_indexing_an_unknown_length_loads(tmp_path, rng):
    """x[:, -1] over a sequence of unknown length, with a masked Embedding before it."""
    def model(lib):
        ids = lib.Input(shape=(None,), name="ids")
        seq = lib.layers.GRU(3, return_sequences=True, name="gru")(lib.layers.Embedding(7, 4, mask_zero=True,
                                                                                        name="emb")(ids))
        return lib.Model(ids, lib.layers.Dense(2, name="out")(seq[:, -1]))
    keras.utils.set_random_seed(3)
    theirs = model(keras)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    x = numpy.array([[1, 2, 0, 0], [3, 4, 5, 6]], dtype="int32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_summary_rows_match_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    ours, theirs = sequence_model(gpu_dl), sequence_model(keras)
    lines, captured = [], []
    ours.summary(print_fn=lines.append)
    theirs.summary(print_fn=lambda line, **kwargs: captured.append(line))

    def rows(text):
        """(type, output shape, parameters, number of inputs) per row of the table."""
        found = []
        for block in re.split(r"^[├└┡].*$", text, flags=re.M)[1:]:
            cells = [line.split("│")[1:-1] for line in block.strip("\n").splitlines() if line.startswith("│")]
            if cells:
                columns = [" ".join(cell[i].strip() for cell in cells).strip() for i in range(len(cells[0]))]
                found.append((re.search(r"\((\w+)\)$", columns[0]).group(1), columns[1], columns[2],
                              len(re.findall(r"\[\d+\]\[\d+\]", columns[3]))))
        return found
    assert rows("\n".join(lines)) == rows("\n".join(captured))
    assert len(rows("\n".join(lines))) == len(ours._operations)
