"""gpu_dl.ops against keras.ops (where Keras is installed): the same functional models written with either
library's ops hold the same operations (module, class, settings) in their configs, give the same outputs and
training steps for the same weights, and their .keras files load in the other library and predict the same;
a composite layer using ops in its call trains as Keras trains it."""
import json
import os
import zipfile

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

MASK = numpy.array([[True, False, True, False, True, True]] * 6)
PICKED = numpy.array([0, 2, 5])


def attention_like(lib):
    """A model whose mixing is written with ops: reshape, transpose, matmul, softmax, einsum, reductions,
    element-wise maths, joins, constants and selection."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(6, 4), name="x")
    h = L.Dense(6, name="h")(x)
    scores = ops.matmul(h, ops.transpose(h, (0, 2, 1))) * 0.5
    weights = ops.softmax(ops.where(MASK, scores, -1e4), axis=-1)
    mixed = ops.einsum("bij,bjk->bik", weights, h) + ops.arange(6, dtype="float32")
    norm = mixed / ops.sqrt(ops.mean(ops.square(mixed), axis=-1, keepdims=True) + 1e-6)
    parts = [ops.max(norm, axis=1), ops.min(norm, axis=1), ops.sum(ops.tanh(norm), axis=1),
             ops.mean(ops.exp(ops.clip(norm, -2.0, 2.0)), axis=1),
             ops.squeeze(ops.expand_dims(ops.mean(ops.log(ops.sigmoid(norm) + 1.0), axis=1), 1), 1),
             ops.reshape(ops.take(ops.relu(norm), PICKED, axis=2), (-1, 18))]
    joined = ops.concatenate(parts, axis=-1)
    stacked = ops.stack([ops.maximum(joined, 0.0), ops.minimum(joined, ops.zeros_like(joined) + 1.0)], axis=1)
    flat = ops.reshape(ops.cast(stacked, "float32"), (-1, 2 * 48))
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(flat), name="attention_like")


def _data(rng, n):
    return rng.standard_normal((n, 6, 4)).astype("float32"), rng.integers(0, 3, n)


def _operations(config):
    """(module, class, settings) of each entry, names and constants' wrapping left out."""
    return sorted(((e["module"], e["class_name"], json.dumps({k: v for k, v in e["config"].items() if k != "name"},
                                                           sort_keys=True))
                   for e in config["layers"] if e["module"].startswith("keras.src.ops")), key=str)


def test_same_operations_and_outputs_as_keras(rng):
    backend.set_random_seed(0)
    ours, theirs = attention_like(gpu_dl), attention_like(keras)
    assert _operations(ours.get_config()) == _operations(theirs.get_config())
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    assert ours.output_shape == theirs.output_shape
    theirs.set_weights(ours.get_weights())
    x, _ = _data(rng, 5)
    expected = keras.ops.convert_to_numpy(theirs(x))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=2e-5, atol=2e-6)


def test_training_steps_match_keras(rng):
    backend.set_random_seed(1)
    assert_training_steps_match(keras, attention_like(gpu_dl), attention_like(keras), rng, (6, 4), classes=3,
                                batch=6)


def test_files_written_by_keras_load_and_predict_the_same(tmp_path, rng):
    keras.utils.set_random_seed(0)
    theirs = attention_like(keras)
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(rng, 9)
    theirs.fit(x, y, epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=2e-5)


def test_keras_loads_files_written_by_gpu_dl(tmp_path, rng):
    backend.set_random_seed(2)
    ours = attention_like(gpu_dl)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(rng, 8)
    ours.fit(x, y, epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    with zipfile.ZipFile(tmp_path / "g.keras") as archive:
        written = json.loads(archive.read("config.json"))
    assert _operations(written["config"]) == _operations(theirs.get_config())


def token_and_position(lib):
    """Keras's transformer example's embedding (ops.shape, ops.arange) and an RMS normalisation (ops.mean,
    ops.sqrt) as composite layers of a functional model."""
    ops, L = lib.ops, lib.layers

    class TokenAndPositionEmbedding(L.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.token_emb = L.Embedding(vocab_size, embed_dim)
            self.pos_emb = L.Embedding(maxlen, embed_dim)

        def call(self, x):
            positions = ops.arange(start=0, stop=ops.shape(x)[-1], step=1)
            return self.token_emb(x) + self.pos_emb(positions)

    class Normalise(L.Layer):
        def call(self, x):
            return x / ops.sqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-6)

    ids = lib.Input(shape=(7,), dtype="int32", name="ids")
    h = Normalise(name="norm")(TokenAndPositionEmbedding(7, 12, 8, name="embed")(ids))
    return lib.Model(ids, L.Dense(3, activation="softmax", name="probs")(ops.mean(h, axis=1)))


def test_a_composite_layer_using_ops_trains_as_keras_s(rng):
    backend.set_random_seed(3)
    ours, theirs = token_and_position(gpu_dl), token_and_position(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert_training_steps_match(keras, ours, theirs, rng, None, classes=3, batch=5,
                                inputs=lambda rng, n: rng.integers(0, 12, (n, 7)).astype("int32"))
