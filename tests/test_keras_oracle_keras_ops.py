"""gpu_dl.ops against keras.ops (where Keras is installed): the same functional models written with either
library's ops hold the same operations (module, class, settings) in their configs, give the same outputs and
training steps for the same weights, and their .keras files load in the other library and predict the same;
a composite layer using ops in its call trains as Keras trains it."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from keras_ops_oracle_harness import builder_tests  # noqa: E402
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


def more_ops(lib):
    """A model of the activations, statistics, rearrangements, products, masks and comparisons of keras.ops."""
    ops, L = lib.ops, lib.layers
    x = lib.Input(shape=(6, 4), name="x")
    h = L.Dense(6, name="h")(x)
    waves = ops.concatenate([ops.sin(h), ops.cos(h)], axis=-1)                        # (None, 6, 12)
    acts = [ops.gelu(h), ops.gelu(h, approximate=False), ops.silu(h), ops.swish(h), ops.softplus(h), ops.erf(h),
            ops.log_softmax(h, axis=1), ops.power(ops.abs(h), 1.5), ops.negative(h), ops.tril(h), ops.triu(h, k=1)]
    masked = ops.where(ops.logical_and(ops.greater(h, -0.5), ops.logical_not(ops.less_equal(h, -2.0))), h, 0.0)
    first, rest = ops.split(h, [2], axis=-1)
    rows = ops.pad(ops.flip(ops.roll(first, 1, axis=1), axis=2), ((0, 0), (0, 0), (1, 1)), constant_values=0.5)
    mean, variance = ops.moments(h, axes=[1])
    stats = [ops.logsumexp(h, axis=1), ops.var(h, axis=1), ops.std(h, axis=1), ops.prod(ops.tanh(h), axis=1),
             ops.norm(h, axis=1), ops.norm(h, ord=2, axis=2), mean, variance, ops.max(ops.cumsum(h, axis=1), axis=1),
             ops.sum(ops.normalize(h), axis=1), ops.dot(ops.mean(h, axis=1), numpy.linspace(-1, 1, 36, dtype="float32")
                                                        .reshape(6, 6)),
             ops.tensordot(h, numpy.linspace(-1, 1, 36, dtype="float32").reshape(6, 6),
                           axes=([1, 2], [0, 1]))[:, None],
             ops.sum(ops.one_hot(ops.argmax(h, axis=-1), 6) * h, axis=1),
             ops.cast(ops.argmin(h, axis=1), "float32"), ops.mean(ops.tile(rest, (1, 1, 2)), axis=1),
             ops.mean(ops.repeat(rows, 2, axis=1), axis=1),
             ops.mean(ops.where(ops.any(ops.greater(h, 1.0), axis=-1, keepdims=True), h, ops.full_like(h, 0.25)),
                      axis=1)]
    pooled = [ops.mean(t, axis=1) for t in [waves, masked] + acts]
    joined = ops.concatenate(pooled + stats, axis=-1)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(joined), name="more_ops")


def _data(rng, n, build):
    return rng.standard_normal((n, 6, 4)).astype("float32"), rng.integers(0, 3, n)


(test_same_operations_and_outputs_as_keras, test_training_steps_match_keras,
 test_files_written_by_keras_load_and_predict_the_same, test_keras_loads_files_written_by_gpu_dl) = \
    builder_tests(keras, [attention_like, more_ops], _data, lambda build: (6, 4), same_layer_names=True)


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


def causal_encoder(lib):
    """A composite layer adding a sinusoidal positional encoding (ops.arange, sin, cos, concatenate) and attending
    under a causal mask made with ops.tril, in a functional model."""
    ops, L = lib.ops, lib.layers

    class CausalEncoder(L.Layer):
        def __init__(self, dim, **kwargs):
            super().__init__(**kwargs)
            self.dim = dim
            # No biases: the key bias cancels in the softmax, so its gradient is 0 up to rounding, which Adam's
            # steps would magnify into differences of sign between the libraries.
            self.attention = L.MultiHeadAttention(num_heads=2, key_dim=4, use_bias=False)

        def call(self, x):
            length = ops.shape(x)[1]
            positions = ops.expand_dims(ops.arange(0, length, dtype="float32"), 1)
            rates = ops.exp(ops.arange(0, self.dim // 2, dtype="float32") * (-numpy.log(100.0) / (self.dim // 2)))
            angles = positions * ops.expand_dims(rates, 0)
            h = x + ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
            pairs = ops.matmul(h, ops.transpose(h, (0, 2, 1)))                      # (batch, length, length)
            causal = ops.cast(ops.tril(ops.ones_like(pairs)), "bool")
            return self.attention(h, h, attention_mask=causal)

    x = lib.Input(shape=(5, 8), name="x")
    h = CausalEncoder(8, name="encoder")(x)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(ops.mean(h, axis=1)))


def test_a_causal_encoder_with_sinusoidal_positions_trains_as_keras_s(rng):
    backend.set_random_seed(4)
    ours, theirs = causal_encoder(gpu_dl), causal_encoder(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert_training_steps_match(keras, ours, theirs, rng, (5, 8), classes=3, batch=4)
