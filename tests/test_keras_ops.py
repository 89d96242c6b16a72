"""Keras's ops functions as ``gpu_dl.ops.<name>``: on arrays against NumPy, on symbolic tensors in functional
models (outputs against NumPy, gradients against float64 finite differences, saving), Keras's dtypes and
shapes, and composite layers whose call uses them, trained."""
import os
import subprocess
import sys

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, ops
from gpu_dl.backend import to_numpy
from gpu_dl.models.saving import model_config
from keras_ops_harness import assert_trains, assert_weight_gradients, batch_or_fixed_shape, op_case_tests

N = 5
MATRIX = numpy.linspace(-1.0, 1.0, 8).reshape(4, 2)
MASK = numpy.array([[True, False, True, False]] * 3)
TAKEN = numpy.array([0, 3, 3])
ALONG = numpy.array([[[2, 0, 1, 1]], [[0, 0, 2, 1]]]).reshape(1, 2, 4)
ALONG3 = numpy.concatenate([ALONG, ALONG[:, :1]], axis=1)          # (1, 3, 4)
BLOCK = numpy.linspace(-1.0, 1.0, 24).reshape(3, 4, 2)


def _erf(x):
    from scipy.special import erf
    return erf(x)


def _gelu(x):
    return 0.5 * x * (1 + numpy.tanh(numpy.sqrt(2 / numpy.pi) * (x + 0.044715 * x ** 3)))


def _logsumexp(x, axis, keepdims=False):
    return numpy.log(numpy.exp(x).sum(axis=axis, keepdims=keepdims))


def _softmax(x, axis):
    e = numpy.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# (id, the expression on a (N, 3, 4) positive and b (N, 3, 4) signed, written once with gpu_dl.ops for arrays and
# symbolic tensors alike; what NumPy makes of it)
CASES = [
    ("reshape", lambda a, b: ops.reshape(a, (-1, 12)), lambda a, b: a.reshape(-1, 12)),
    ("reshape_batch", lambda a, b: ops.reshape(b, (ops.shape(b)[0], 4, 3)), lambda a, b: b.reshape(-1, 4, 3)),
    ("transpose", lambda a, b: ops.transpose(b, (0, 2, 1)), lambda a, b: b.transpose(0, 2, 1)),
    ("expand_dims", lambda a, b: ops.expand_dims(b, 1), lambda a, b: b[:, None]),
    ("squeeze", lambda a, b: ops.squeeze(ops.expand_dims(b, -1), -1) * a, lambda a, b: b * a),
    ("concatenate", lambda a, b: ops.concatenate([a, b, a], axis=1), lambda a, b: numpy.concatenate([a, b, a], 1)),
    ("stack", lambda a, b: ops.stack([a, b], axis=-1), lambda a, b: numpy.stack([a, b], -1)),
    ("mean", lambda a, b: ops.mean(b, axis=1), lambda a, b: b.mean(1)),
    ("mean_keepdims", lambda a, b: ops.mean(b, axis=(1, 2), keepdims=True), lambda a, b: b.mean((1, 2), keepdims=True)),
    ("sum", lambda a, b: ops.sum(b, axis=-1), lambda a, b: b.sum(-1)),
    ("max", lambda a, b: ops.max(b, axis=1), lambda a, b: b.max(1)),
    ("min_keepdims", lambda a, b: ops.min(b, axis=(1, 2), keepdims=True), lambda a, b: b.min((1, 2), keepdims=True)),
    ("sqrt", lambda a, b: ops.sqrt(a), lambda a, b: numpy.sqrt(a)),
    ("square", lambda a, b: ops.square(b), lambda a, b: b * b),
    ("exp", lambda a, b: ops.exp(b), lambda a, b: numpy.exp(b)),
    ("log", lambda a, b: ops.log(a), lambda a, b: numpy.log(a)),
    ("tanh", lambda a, b: ops.tanh(b), lambda a, b: numpy.tanh(b)),
    ("sigmoid", lambda a, b: ops.sigmoid(b), lambda a, b: 1 / (1 + numpy.exp(-b))),
    ("relu", lambda a, b: ops.relu(b), lambda a, b: numpy.maximum(b, 0)),
    ("softmax", lambda a, b: ops.softmax(b), lambda a, b: _softmax(b, -1)),
    ("softmax_axis", lambda a, b: ops.softmax(b, axis=1), lambda a, b: _softmax(b, 1)),
    ("maximum", lambda a, b: ops.maximum(a, b), lambda a, b: numpy.maximum(a, b)),
    ("minimum_number", lambda a, b: ops.minimum(b, 0.25), lambda a, b: numpy.minimum(b, 0.25)),
    ("clip", lambda a, b: ops.clip(b, -0.5, 0.7), lambda a, b: numpy.clip(b, -0.5, 0.7)),
    ("cast", lambda a, b: ops.cast(b * 2.0, "float64"), lambda a, b: b * 2.0),
    ("arange", lambda a, b: b + ops.arange(4, dtype="float64"), lambda a, b: b + numpy.arange(4.0)),
    ("arange_int", lambda a, b: b * ops.arange(1, 5), lambda a, b: b * numpy.arange(1, 5)),
    ("ones", lambda a, b: b * ops.ones((3, 1), "float64") - ops.zeros((4,)), lambda a, b: b),
    ("zeros_like", lambda a, b: ops.zeros_like(a) + ops.ones_like(b) * b, lambda a, b: b),
    ("matmul", lambda a, b: ops.matmul(a, ops.transpose(b, (0, 2, 1))), lambda a, b: a @ b.transpose(0, 2, 1)),
    ("matmul_array", lambda a, b: ops.matmul(b, MATRIX), lambda a, b: b @ MATRIX),
    ("einsum", lambda a, b: ops.einsum("bij,bkj->bik", a, b), lambda a, b: numpy.einsum("bij,bkj->bik", a, b)),
    ("einsum_sum", lambda a, b: ops.einsum("bij,jk->bk", b, MATRIX),
     lambda a, b: numpy.einsum("bij,jk->bk", b, MATRIX)),
    ("where", lambda a, b: ops.where(MASK, a, b), lambda a, b: numpy.where(MASK, a, b)),
    ("where_number", lambda a, b: ops.where(MASK, b, 0.0), lambda a, b: numpy.where(MASK, b, 0.0)),
    ("take", lambda a, b: ops.take(b, TAKEN, axis=2), lambda a, b: numpy.take(b, TAKEN, axis=2)),
    ("take_along_axis", lambda a, b: ops.take_along_axis(b, ALONG3, axis=1),
     lambda a, b: numpy.take_along_axis(b, numpy.broadcast_to(ALONG3, b.shape), axis=1)),
    # trigonometry, powers, activations
    ("sin", lambda a, b: ops.sin(b), lambda a, b: numpy.sin(b)),
    ("cos", lambda a, b: ops.cos(b), lambda a, b: numpy.cos(b)),
    ("power", lambda a, b: ops.power(a, b), lambda a, b: a ** b),
    ("power_number", lambda a, b: ops.power(b, 3), lambda a, b: b ** 3),
    ("abs", lambda a, b: ops.abs(b) + ops.absolute(a), lambda a, b: numpy.abs(b) + a),
    ("negative", lambda a, b: ops.negative(b), lambda a, b: -b),
    ("log_softmax", lambda a, b: ops.log_softmax(b, axis=1), lambda a, b: numpy.log(_softmax(b, 1))),
    ("gelu", lambda a, b: ops.gelu(b), lambda a, b: _gelu(b)),
    ("gelu_exact", lambda a, b: ops.gelu(b, approximate=False), lambda a, b: b * (1 + _erf(b / numpy.sqrt(2))) / 2),
    ("silu", lambda a, b: ops.silu(b) + ops.swish(a), lambda a, b: b / (1 + numpy.exp(-b)) + a / (1 + numpy.exp(-a))),
    ("erf", lambda a, b: ops.erf(b), lambda a, b: _erf(b)),
    ("softplus", lambda a, b: ops.softplus(b), lambda a, b: numpy.log1p(numpy.exp(b))),
    ("logsumexp", lambda a, b: ops.logsumexp(b, axis=-1), lambda a, b: _logsumexp(b, -1)),
    ("logsumexp_keepdims", lambda a, b: ops.logsumexp(b, axis=(1, 2), keepdims=True),
     lambda a, b: _logsumexp(b, (1, 2), keepdims=True)),
    # rearranging
    ("split", lambda a, b: ops.concatenate(ops.split(b, [1, 3], axis=-1)[::-1], axis=-1),
     lambda a, b: numpy.concatenate([b[..., 3:], b[..., 1:3], b[..., :1]], axis=-1)),
    ("split_one_part", lambda a, b: ops.split(b, 2, axis=-1)[1], lambda a, b: b[..., 2:]),
    ("tile", lambda a, b: ops.tile(b, (1, 2, 1)), lambda a, b: numpy.tile(b, (1, 2, 1))),
    ("repeat", lambda a, b: ops.repeat(b, 2, axis=1), lambda a, b: numpy.repeat(b, 2, axis=1)),
    ("repeat_each", lambda a, b: ops.repeat(b, [1, 0, 2, 1], axis=2), lambda a, b: numpy.repeat(b, [1, 0, 2, 1], 2)),
    ("pad", lambda a, b: ops.pad(b, ((0, 0), (1, 2), (0, 1)), constant_values=0.5),
     lambda a, b: numpy.pad(b, ((0, 0), (1, 2), (0, 1)), constant_values=0.5)),
    ("broadcast_to", lambda a, b: ops.broadcast_to(ops.expand_dims(b, 2), (N, 3, 2, 4)),
     lambda a, b: numpy.broadcast_to(b[:, :, None], (N, 3, 2, 4))),
    ("flip", lambda a, b: ops.flip(b, axis=1), lambda a, b: b[:, ::-1]),
    ("roll", lambda a, b: ops.roll(b, 1, axis=2), lambda a, b: numpy.roll(b, 1, axis=2)),
    ("slice", lambda a, b: ops.slice(b, (0, 1, 1), (N, 2, 3)), lambda a, b: b[:, 1:3, 1:4]),
    ("tril", lambda a, b: ops.tril(b), lambda a, b: numpy.tril(b)),
    ("triu", lambda a, b: ops.triu(b, k=1), lambda a, b: numpy.triu(b, 1)),
    # selection by integer and bool results (which take no gradient)
    ("one_hot_argmax", lambda a, b: ops.one_hot(ops.argmax(b, axis=-1), 4, dtype="float64") * b,
     lambda a, b: (b == b.max(-1, keepdims=True)) * b),
    ("argmin", lambda a, b: ops.take_along_axis(b, ops.argmin(b, axis=-1, keepdims=True), axis=-1),
     lambda a, b: b.min(-1, keepdims=True)),
    ("greater", lambda a, b: ops.where(ops.greater(b, 0.0), a, b), lambda a, b: numpy.where(b > 0, a, b)),
    ("less", lambda a, b: ops.where(ops.less(a, b), a, b), lambda a, b: numpy.minimum(a, b)),
    ("equal", lambda a, b: ops.where(ops.equal(b, b), b, 0.0) + ops.where(ops.not_equal(a, a), a, 0.0),
     lambda a, b: b),
    ("logical", lambda a, b: ops.where(ops.logical_and(ops.greater_equal(b, -0.5), ops.logical_not(
        ops.less_equal(a, 1.0))), a, b), lambda a, b: numpy.where((b >= -0.5) & (a > 1.0), a, b)),
    ("logical_or", lambda a, b: ops.where(ops.logical_or(ops.greater(b, 0.5), ops.logical_xor(
        ops.less(a, 1.0), ops.less(b, 0.0))), a, b),
     lambda a, b: numpy.where((b > 0.5) | ((a < 1.0) ^ (b < 0.0)), a, b)),
    ("any_all", lambda a, b: ops.where(ops.any(ops.greater(b, 0.9), axis=-1, keepdims=True), a, b) +
     ops.where(ops.all(ops.greater(a, 0.6), axis=(1, 2), keepdims=True), a, b),
     lambda a, b: numpy.where((b > 0.9).any(-1, keepdims=True), a, b) +
     numpy.where((a > 0.6).all((1, 2), keepdims=True), a, b)),
    # statistics
    ("cumsum", lambda a, b: ops.cumsum(b, axis=1), lambda a, b: numpy.cumsum(b, axis=1)),
    ("var", lambda a, b: ops.var(b, axis=-1), lambda a, b: b.var(-1)),
    ("std", lambda a, b: ops.std(b, axis=(1, 2), keepdims=True), lambda a, b: b.std((1, 2), keepdims=True)),
    ("prod", lambda a, b: ops.prod(b, axis=1), lambda a, b: b.prod(1)),
    ("norm", lambda a, b: ops.norm(b, axis=-1), lambda a, b: numpy.linalg.norm(b, axis=-1)),
    ("norm_2", lambda a, b: ops.norm(b, ord=2, axis=1, keepdims=True),
     lambda a, b: numpy.linalg.norm(b, axis=1, keepdims=True)),
    ("norm_fro", lambda a, b: ops.norm(b, axis=(1, 2)), lambda a, b: numpy.linalg.norm(b, axis=(1, 2))),
    ("moments", lambda a, b: ops.moments(b, axes=[2])[0] +
     ops.squeeze(ops.moments(a, axes=[1, 2], keepdims=True)[1], 2),
     lambda a, b: b.mean(2) + a.var((1, 2))[:, None]),
    ("normalize", lambda a, b: ops.normalize(b), lambda a, b: b / numpy.linalg.norm(b, axis=-1, keepdims=True)),
    ("normalize_axis", lambda a, b: ops.normalize(b, axis=1),
     lambda a, b: b / numpy.linalg.norm(b, axis=1, keepdims=True)),
    # products and constants
    ("dot", lambda a, b: ops.dot(b, MATRIX), lambda a, b: numpy.dot(b, MATRIX)),
    ("dot_tensors", lambda a, b: ops.dot(b, ops.transpose(a, (0, 2, 1)))[:, :, 0],
     lambda a, b: numpy.dot(b, a.transpose(0, 2, 1))[:, :, 0]),
    ("tensordot", lambda a, b: ops.tensordot(b, BLOCK, axes=([1, 2], [0, 1])),
     lambda a, b: numpy.tensordot(b, BLOCK, axes=([1, 2], [0, 1]))),
    ("tensordot_int", lambda a, b: ops.tensordot(b, MATRIX, axes=1), lambda a, b: numpy.tensordot(b, MATRIX, 1)),
    ("eye_full", lambda a, b: b * ops.eye(3, 4, k=1, dtype="float64") + ops.full((4,), 0.5),
     lambda a, b: b * numpy.eye(3, 4, 1) + 0.5),
    ("full_like", lambda a, b: ops.full_like(b, 2.0) * a, lambda a, b: 2.0 * a),
    ("linspace", lambda a, b: b * ops.linspace(0, 1, 4, dtype="float64"), lambda a, b: b * numpy.linspace(0, 1, 4)),
]
IDS = [c[0] for c in CASES]


(test_each_op_on_arrays_computes_what_numpy_does, test_each_op_in_a_functional_model_computes_what_numpy_does,
 test_each_op_has_the_gradient_of_finite_differences, test_each_op_is_saved_and_loaded_as_keras_writes_it) = \
    op_case_tests(CASES, rtol=1e-12, atol=1e-14, output_shape=batch_or_fixed_shape)


def test_configs_hold_keras_modules_classes_and_settings():
    a = gpu_dl.Input((3, 4), name="a")
    y = ops.softmax(ops.mean(ops.cast(a, "float32"), axis=(1, 2), keepdims=True) + ops.reshape(a, (-1, 12)), axis=1)
    y = ops.clip(ops.relu(y), 0.0, 1.0) + ops.arange(12)
    entries = {e["class_name"]: e for e in model_config(gpu_dl.Model(a, y))["config"]["layers"]}
    for entry in entries.values():
        assert entry["config"]["name"] == entry["name"]
        entry["config"].pop("name")
    assert entries["Cast"]["module"] == "keras.src.ops.core"
    assert entries["Cast"]["config"] == {"dtype": "float32"}
    assert entries["Mean"]["config"] == {"axis": [1, 2], "keepdims": True}
    assert entries["Reshape"]["config"] == {"newshape": [-1, 12]}
    assert entries["Softmax"]["module"] == "keras.src.ops.nn"
    assert entries["Softmax"]["config"] == {"axis": 1}
    assert entries["Clip"]["config"] == {"x_min": 0.0, "x_max": 1.0}
    add_nodes = [e for e in model_config(gpu_dl.Model(a, y))["config"]["layers"] if e["class_name"] == "Add"]
    constant = add_nodes[-1]["inbound_nodes"][0]["args"][1]
    assert constant == {"class_name": "__numpy__", "config": {"value": list(range(12)), "dtype": "int32"}}


def test_shapes_and_dtypes_are_keras_s():
    x = gpu_dl.Input((3, 4))
    assert ops.shape(x) == (None, 3, 4) and ops.shape(numpy.zeros((2, 5))) == (2, 5)
    assert ops.arange(5).dtype == numpy.int32 and ops.arange(0.0, 2.0, 0.5).dtype == numpy.float32
    assert ops.zeros((2, 3)).dtype == numpy.float32 and ops.ones(4, dtype="int32").dtype == numpy.int32
    assert ops.convert_to_tensor([1.0, 2.0]).dtype == numpy.float32
    assert ops.convert_to_tensor([1, 2]).dtype == numpy.int32
    assert isinstance(ops.convert_to_numpy(ops.ones(2)), numpy.ndarray)
    ints = ops.cast(x, "int32")
    assert ints.dtype == "int32"
    assert ops.mean(ints).dtype == "float32" and ops.sum(ints).dtype == "int32" and ops.sqrt(ints).dtype == "float32"
    assert (x + ops.arange(4)).dtype == "float32" and (x + numpy.zeros(4)).dtype == "float32"
    assert ops.reshape(x, (-1, 2, 6)).shape == (None, 2, 6) and ops.reshape(x, (ops.shape(x)[0], -1)).shape == \
        (None, None)
    assert ops.squeeze(gpu_dl.Input((1, 3, 1))).shape == (None, 3)
    assert ops.expand_dims(x, (1, 2)).shape == (None, 1, 1, 3, 4)
    assert ops.concatenate([x, x]).shape == (None, 3, 4)
    assert ops.mean(numpy.arange(4)).dtype == numpy.float32
    assert ops.zeros_like(x, dtype="int32").dtype == "int32"


def test_the_namespace_is_gpu_dl_ops():
    import gpu_dl as keras
    assert keras.ops.mean is ops.mean and callable(keras.ops.einsum)
    from gpu_dl.ops import arithmetic          # the internal modules stay where they were
    assert callable(arithmetic.add_forward)
    with pytest.raises(AttributeError, match="offers these of Keras's ops"):
        keras.ops.no_such_op
    assert "softmax" in dir(keras.ops)


def test_keras_s_namespaces_import_as_modules():
    # In a fresh interpreter, so that nothing has put them in place before: `import gpu_dl.ops.nn` as
    # `import keras.ops.nn`, each the one namespace `from gpu_dl.ops import nn` gives.
    program = """
import gpu_dl.ops.nn, gpu_dl.ops.linalg, gpu_dl.ops.image, gpu_dl.ops.numpy
import gpu_dl.ops.nn as imported
from gpu_dl.ops import image, linalg, nn, numpy
from gpu_dl.layers import keras_ops
spaces = keras_ops.NAMESPACES
assert imported is nn is gpu_dl.ops.nn is spaces["nn"] and numpy is gpu_dl.ops.numpy is spaces["numpy"]
assert linalg is gpu_dl.ops.linalg is spaces["linalg"] and image is gpu_dl.ops.image is spaces["image"]
assert nn.relu is gpu_dl.ops.relu and linalg.qr is gpu_dl.ops.qr and image.resize is spaces["image"].resize
assert numpy.sort is gpu_dl.ops.sort and keras_ops.numpy.__name__ == "numpy"
print("imported")
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr[-2000:]
    import gpu_dl.ops.linalg
    from gpu_dl.ops import linalg
    assert gpu_dl.ops.linalg is linalg and linalg.solve is ops.solve
    with pytest.raises(ImportError):
        import gpu_dl.ops.no_such_namespace  # noqa: F401


def test_integer_inputs_go_through_without_gradients(rng):
    ids = gpu_dl.Input((3,), dtype="int32")
    emb = layers.Embedding(7, 2, dtype="float64")(ops.reshape(ids, (-1, 3)))
    model = gpu_dl.Model(ids, ops.sum(emb, axis=1))
    x = rng.integers(0, 7, (4, 3))
    y = model.forward(x, training=True)
    numpy.testing.assert_allclose(y, model.layers[1].embeddings.value[x].sum(1), rtol=1e-12)
    model.backward(numpy.ones_like(y))       # no gradient for the ids, the embeddings get theirs
    assert model.layers[1].embeddings.grad is not None


def test_what_the_ops_refuse():
    x = gpu_dl.Input((3, 4))
    with pytest.raises(ValueError, match="cannot reshape"):
        ops.reshape(x, (None, 5, 7))
    with pytest.raises(ValueError, match="permutation"):
        ops.transpose(x, (0, 1))
    with pytest.raises(ValueError, match="not 1"):
        ops.squeeze(x, 1)
    with pytest.raises(ValueError, match="out of range"):
        ops.mean(x, axis=3)
    with pytest.raises(ValueError, match="'...' are not supported"):
        ops.einsum("...i,...i", x, x)
    with pytest.raises(ValueError, match="shape known before the values"):
        ops.where(x)
    with pytest.raises(ValueError, match="sizes must be known"):
        ops.zeros((ops.shape(x)[0], 4))


# ------------------------------------------------------------------ composite layers using ops in call
class TokenAndPositionEmbedding(layers.Layer):
    """Keras's transformer example: token embeddings plus learned position embeddings of ops.arange positions."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(vocab_size, embed_dim, dtype=kwargs.get("dtype"))
        self.pos_emb = layers.Embedding(maxlen, embed_dim, dtype=kwargs.get("dtype"))

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        return self.token_emb(x) + positions


class RootMeanSquareNormalization(layers.Layer):
    """x / sqrt(mean(x^2) + eps) over the last axis, then a Dense: ops.mean and ops.sqrt in call."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(units, dtype=kwargs.get("dtype"))

    def call(self, x):
        scale = ops.sqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-6)
        return self.dense(x / scale)


def _sequence_model(dtype=None):
    ids = gpu_dl.Input((6,), dtype="int32")
    h = TokenAndPositionEmbedding(6, 11, 8, dtype=dtype)(ids)
    h = RootMeanSquareNormalization(8, dtype=dtype)(h)
    return gpu_dl.Model(ids, layers.Dense(1, dtype=dtype)(ops.mean(h, axis=1)))


def test_a_transformer_style_embedding_and_a_normalisation_train(xp, rng):
    backend.set_random_seed(2)
    model = _sequence_model()
    embedding = model.layers[1]
    x, y = rng.integers(0, 11, (32, 6)), rng.standard_normal((32, 1)).astype("float32")
    before_positions = embedding.pos_emb.get_weights()[0].copy()
    assert_trains(model, x, y)
    assert not numpy.allclose(embedding.pos_emb.get_weights()[0], before_positions)    # the positions trained
    tokens = embedding.token_emb.get_weights()[0]
    expected = tokens[x[:2]] + embedding.pos_emb.get_weights()[0][None]
    numpy.testing.assert_allclose(to_numpy(embedding(xp.asarray(x[:2]))), expected, rtol=1e-6)


def test_composite_layers_using_ops_have_exact_gradients(xp, rng):
    backend.set_random_seed(3)
    model = _sequence_model(dtype="float64")
    x = xp.asarray(rng.integers(0, 11, (4, 6)))
    w = xp.asarray(rng.standard_normal((4, 1)))
    assert_weight_gradients(model, x, w, rng)


class CausalSinusoidalEncoder(layers.Layer):
    """A sinusoidal positional encoding (ops.arange, exp, sin, cos, concatenate) added to the input, then
    self-attention under a causal mask made with ops.tril."""

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.attention = layers.MultiHeadAttention(num_heads=2, key_dim=4, dtype=kwargs.get("dtype"))

    def call(self, x):
        length = ops.shape(x)[1]
        positions = ops.expand_dims(ops.arange(0, length, dtype="float32"), 1)
        rates = ops.exp(ops.arange(0, self.dim // 2, dtype="float32") * (-numpy.log(100.0) / (self.dim // 2)))
        angles = positions * ops.expand_dims(rates, 0)
        h = x + ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
        causal = ops.cast(ops.tril(ops.ones_like(ops.matmul(h, ops.transpose(h, (0, 2, 1))))), "bool")
        return self.attention(h, h, attention_mask=causal)


def test_a_causal_encoder_with_sinusoidal_positions_trains_and_looks_back_only(xp, rng):
    backend.set_random_seed(5)
    x_in = gpu_dl.Input((5, 8))
    encoder = CausalSinusoidalEncoder(8)
    h = encoder(x_in)
    model = gpu_dl.Model(x_in, layers.Dense(1)(ops.mean(h, axis=1)))
    x, y = rng.standard_normal((32, 5, 8)).astype("float32"), rng.standard_normal((32, 1)).astype("float32")
    assert_trains(model, x, y, epochs=8)
    changed = x[:2].copy()
    changed[:, 3:] += 1.0                                       # later steps change ...
    first, second = (to_numpy(encoder(xp.asarray(v))) for v in (x[:2], changed))
    numpy.testing.assert_allclose(first[:, :3], second[:, :3], rtol=1e-5, atol=1e-6)   # ... earlier outputs do not
    assert not numpy.allclose(first[:, 3:], second[:, 3:])
    angles = numpy.arange(5.0)[:, None] * numpy.exp(numpy.arange(4.0) * -numpy.log(100.0) / 4)[None]
    pe = numpy.concatenate([numpy.sin(angles), numpy.cos(angles)], axis=-1)
    zero = to_numpy(encoder(xp.zeros((1, 5, 8), dtype="float32")))
    shifted = to_numpy(encoder.attention(xp.asarray(pe[None].astype("float32")), xp.asarray(
        pe[None].astype("float32")), attention_mask=xp.asarray(numpy.tril(numpy.ones((1, 5, 5), bool)))))
    numpy.testing.assert_allclose(zero, shifted, rtol=1e-5, atol=1e-6)     # the encoding is the sinusoids
