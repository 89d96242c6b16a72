"""Arithmetic on symbolic tensors against Keras 3 itself (where Keras is installed).

The same expressions built with gpu_dl and with Keras: the same operations
in the same order in the config and the summary, the same outputs and
training steps for the same weights, and files written by either library
load in the other and predict the same.
"""
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


def gated(lib):
    """A residual block whose mixing is written as operators, with numbers on either side of them."""
    L = lib.layers
    a, b = lib.Input(shape=(4,), name="a"), lib.Input(shape=(1,), name="b")
    h = L.Dense(4, activation="tanh", name="h")(a)
    g = L.Dense(4, activation="sigmoid", name="g")(a)
    mixed = g * h + (1.0 - g) * a - h / (abs(a) + 2.0) + 0.5 * b ** 2 - (-h) ** 2
    return lib.Model([a, b], L.Dense(3, activation="softmax", name="probs")(mixed), name="gated")


def _data(rng, n):
    return [rng.standard_normal((n, 4)).astype("float32"), rng.uniform(0.5, 2, (n, 1)).astype("float32")], \
        rng.integers(0, 3, n)


def _operations(config):
    return [(e["module"], e["class_name"]) for e in config["layers"]]


def test_same_operations_in_the_same_order_and_the_same_outputs(rng):
    backend.set_random_seed(0)
    ours, theirs = gated(gpu_dl), gated(keras)
    assert _operations(ours.get_config()) == _operations(theirs.get_config())
    ours_args = [[a if not isinstance(a, dict) else "tensor" for a in e["inbound_nodes"][0]["args"]]
                 for e in ours.get_config()["layers"] if e["module"] == "keras.src.ops.numpy"]
    theirs_args = [[a if not isinstance(a, dict) else "tensor" for a in e["inbound_nodes"][0]["args"]]
                   for e in theirs.get_config()["layers"] if e["module"] == "keras.src.ops.numpy"]
    assert ours_args == theirs_args
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    theirs.set_weights(ours.get_weights())
    x, _ = _data(rng, 5)
    expected = keras.ops.convert_to_numpy(theirs(x))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=2e-5, atol=2e-6)


def test_training_steps_match_keras(rng):
    backend.set_random_seed(1)
    assert_training_steps_match(keras, gated(gpu_dl), gated(keras), rng, None, classes=3, batch=6,
                                inputs=lambda rng, n: _data(rng, n)[0])


def test_files_written_by_keras_load_and_predict_the_same(tmp_path, rng):
    keras.utils.set_random_seed(0)
    ours, keras_names = ours_loads_keras_file(keras, gated(keras), *_data(rng, 9), tmp_path, load_model)
    assert [op.name for op in ours._operations] == keras_names


def test_keras_loads_files_written_by_gpu_dl(tmp_path, rng):
    backend.set_random_seed(2)
    theirs, written = keras_loads_our_file(keras, gated(gpu_dl), *_data(rng, 8), tmp_path)
    assert _operations(written) == _operations(theirs.get_config())


def test_summary_rows_match_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    ours, theirs = gated(gpu_dl), gated(keras)
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
