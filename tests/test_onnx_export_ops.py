"""``model.export(path, format="onnx")`` of functional graphs and composite calls made of ``gpu_dl.ops``: shapes,
indexing, selection, comparisons, dtypes and products, run in ONNX Runtime at batch sizes other than the one the
model ran with, against the model's own predict (the helpers are test_onnx_export.py's)."""
import os

import numpy
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
import test_onnx_export  # noqa: E402
from test_onnx_export import _feeds, _session, assert_runs_as_predict, assert_runs_over_lengths, exported  # noqa: E402
from test_onnx_export import normal, sequential  # noqa: E402

exact_convolutions = test_onnx_export.exact_convolutions    # the autouse fixture: float32 GPU convolutions here too

ops = gpu_dl.ops


def functional(shape, make):
    x = gpu_dl.Input(shape)
    return gpu_dl.Model(x, make(x))


def test_shape_operations(xp, tmp_path):
    def make(x):
        first, middle, last = ops.split(x, [1, 4], axis=1)
        return [ops.reshape(x, (-1, 4, 6)) * 2.0, ops.concatenate([x, ops.exp(x)], axis=-1),
                ops.stack([x, -x], axis=1), ops.stack([first, last[:, :1]], axis=-1), middle,
                ops.split(x, 2, axis=-1)[1], ops.reshape(x, (-1,))]
    assert_runs_as_predict(functional((6, 4), make), normal((6, 4)), tmp_path)


@pytest.mark.parametrize("key", [
    (slice(None), slice(None, 3)), (Ellipsis, 1), (slice(None), -1), (slice(None), None, slice(1, 5, 2), -2),
    (slice(None), slice(None, None, -2), Ellipsis, None), (Ellipsis, slice(-3, None)),
    (slice(None), slice(4, 0, -1), slice(None, None, -1)), (slice(None), 0, 2),
], ids=repr)
def test_indexing(xp, key, tmp_path):
    assert_runs_as_predict(functional((6, 5), lambda x: x[key] + 0.0), normal((6, 5)), tmp_path)


def test_selection_and_comparisons(xp, tmp_path):
    def make(x):
        picked = ops.take(x, numpy.array([2, 0, -1, 2]), axis=1)
        flat = ops.take(x, numpy.array([[0, 7], [11, 3]]))
        positive = ops.where(x > 0.1, x, 0.5 * x)
        inside = ops.where(ops.logical_and(x >= -1.0, ops.less_equal(x, 1.0)), 1.0, x)
        odd = ops.where(ops.logical_or(ops.logical_not(ops.not_equal(x, 0.5)), x < -2.0), x, 0.0)
        return [picked, flat, positive, inside, odd]
    assert_runs_as_predict(functional((4, 3), make), lambda n: [2 * normal((4, 3))(n)[0]], tmp_path)


def test_integer_results_and_one_hot(xp, tmp_path):
    def make(x):
        best = ops.argmax(x, axis=-1)
        hot = ops.one_hot(best, 5) + ops.one_hot(ops.cast(x[:, :, 0] * 3, "int32") - 1, 4, axis=1)[..., :1]
        everywhere = ops.cast(ops.argmax(x, keepdims=True), "float32") + x[:, :1, :1]     # over the whole batch
        return [best, ops.argmin(x, axis=1, keepdims=True), ops.cast(x * 4, "int32"), hot,
                ops.take(x, ops.argmax(x[:, 0], axis=-1), axis=2), everywhere]
    model = functional((4, 5), make)
    session = assert_runs_as_predict(model, lambda n: [3 * normal((4, 5))(n)[0]], tmp_path)
    dtypes = [o.type for o in session.get_outputs()]
    assert dtypes == ["tensor(int32)"] * 3 + ["tensor(float)"] * 3


def test_products_and_reductions(xp, tmp_path):
    weights = numpy.random.default_rng(3).normal(size=(3, 2)).astype("float32")

    def make(x):
        square = ops.matmul(x, ops.transpose(x, (0, 2, 1)))
        return [ops.matmul(x, weights), square, ops.einsum("bij,bkj->bik", x, x), ops.einsum("bij,jk->bki", x, weights),
                ops.power(ops.abs(x), 1.5), ops.sqrt(ops.sum(x * x, axis=(1, 2), keepdims=True)),
                ops.softmax(x, axis=1), ops.log_softmax(x, axis=1), ops.mean(x, axis=1), ops.max(x, axis=(1, 2)),
                ops.clip(ops.minimum(x, 0.5), -0.5, 1.0)]
    assert_runs_as_predict(functional((4, 3), make), normal((4, 3)), tmp_path)


class Picked(layers.Layer):
    """A composite call of indexing, selection and shape operations."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(4)

    def call(self, x):
        h = self.dense(x)
        top = ops.one_hot(ops.argmax(h, axis=-1), 4)
        return ops.concatenate([ops.where(top > 0, h, -h), ops.reshape(h[:, ::-1], (-1, 2, 2))[:, 0]], axis=-1)


def test_operations_in_a_composite_call(xp, tmp_path):
    assert_runs_as_predict(sequential((5,), Picked(), layers.Dense(3)), normal((5,)), tmp_path)


@pytest.mark.parametrize("equation, output_shape, bias_axes, shape", [
    ("ab,bc->ac", 4, "c", (3,)), ("abc,cd->abd", (None, 5), "d", (6, 3)), ("abc,cde->abde", (None, 2, 3), "de", (5, 4)),
    ("...b,bc->...c", 3, None, (2, 4, 5)), ("abc,bcd->ad", 2, "d", (3, 4)),
], ids=lambda v: str(v))
def test_einsum_dense(xp, equation, output_shape, bias_axes, shape, tmp_path):
    model = sequential(shape, layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="relu"))
    _randomize(model)
    assert_runs_as_predict(model, normal(shape), tmp_path)


def test_random_augmentations_are_the_identity(xp, tmp_path):
    """The data-augmentation block of an image model exports as the identity it is at inference (RandomCrop too:
    test_onnx_export_volumetric.py)."""
    augment = gpu_dl.Sequential([layers.Input((8, 8, 3)), layers.RandomFlip(), layers.RandomRotation(0.2),
                                 layers.RandomZoom(0.2), layers.RandomContrast(0.3), layers.RandomTranslation(0.1, 0.1),
                                 layers.RandomBrightness(0.2)])
    model = sequential((8, 8, 3), augment, layers.Conv2D(2, 3), layers.GlobalAveragePooling2D())
    assert_runs_as_predict(model, lambda n: [normal((8, 8, 3))(n)[0] + 2], tmp_path)


def test_repeat_vector(xp, tmp_path):
    assert_runs_as_predict(sequential((3,), layers.RepeatVector(4), layers.LSTM(2, return_sequences=True)),
                           normal((3,)), tmp_path)


def test_reshape_of_dynamic_inner_sizes(xp, tmp_path):
    """A None keeps the input's size of that axis (past the input's rank: the rest), and -1 the rest, whatever
    the number of steps the file is run on; a size of 0 is refused, writing nothing."""
    x = gpu_dl.Input((None, 4))
    outs = [ops.reshape(x, (-1, None, 2, 2)), ops.reshape(x, (None, -1)), ops.reshape(x, (None, None, 2, None)),
            layers.Reshape((-1, 2))(x)]
    model = gpu_dl.Model(x, outs)
    model.predict(normal((3, 4))(2)[0], verbose=0)
    session = _session(exported(model, tmp_path))
    for length in (1, 6):
        x = normal((length, 4))(3)[0]
        got, want = session.run(None, _feeds(session, [x])), model.predict(x, verbose=0)
        assert [g.shape for g in got] == [(3, length, 2, 2), (3, length * 4), (3, length, 2, 2), (3, 2 * length, 2)]
        for g, w in zip(got, want):
            numpy.testing.assert_array_equal(g, w)
    zero = gpu_dl.Input((4,))
    model = gpu_dl.Model(zero, ops.reshape(zero, (0, 4)))
    refused = tmp_path / "refused"
    refused.mkdir()
    with pytest.raises(ValueError, match=r"Layer 'reshape\w*' cannot be exported to ONNX: the new shape"):
        model.export(refused / "no.onnx", format="onnx")
    assert not os.listdir(refused)


def test_indexing_on_sequences_of_any_length(xp, tmp_path):
    model = functional((None, 3), lambda x: ops.concatenate([x[:, 1:], x[:, :-1]], axis=-1))
    assert_runs_over_lengths(model, 3, (6, 4, 9), tmp_path)


def _randomize(model, seed=1):
    rng = numpy.random.default_rng(seed)
    model.set_weights([w + rng.normal(scale=0.3, size=w.shape).astype(w.dtype) for w in model.get_weights()])


@pytest.mark.parametrize("layer, shape", [
    (lambda: layers.GroupNormalization(groups=2), (3, 4)),
    (lambda: layers.GroupNormalization(groups=3, axis=1, epsilon=0.1), (6, 2, 5)),
    (lambda: layers.GroupNormalization(groups=-1, center=False), (5, 3)),
    (lambda: layers.GroupNormalization(groups=1, scale=False, axis=-2), (2, 4, 3)),
    (lambda: layers.RMSNormalization(), (3, 4)), (lambda: layers.RMSNormalization(axis=[1, 2], epsilon=0.01), (3, 4)),
    (lambda: layers.UnitNormalization(), (3, 4)), (lambda: layers.UnitNormalization(axis=[1, 2]), (3, 4)),
], ids=lambda v: repr(v) if isinstance(v, tuple) else "")
def test_normalizations(xp, layer, shape, tmp_path):
    model = sequential(shape, layer())
    _randomize(model)
    assert_runs_as_predict(model, lambda n: [1 + normal(shape)(n)[0]], tmp_path, atol=2e-5)


def test_unit_normalization_of_a_zero_slice(xp, tmp_path):
    model = sequential((3,), layers.UnitNormalization())
    assert_runs_as_predict(model, lambda n: [normal((3,))(n)[0] * (numpy.arange(n, dtype="float32") % 2)[:, None]],
                           tmp_path)


@pytest.mark.parametrize("inner, shape", [
    (lambda: layers.Dense(3, activation="relu"), (4, 5)),
    (lambda: layers.Conv2D(2, 3, padding="same"), (3, 6, 5, 2)),
    (lambda: layers.Conv1D(2, 2), (2, 7, 3)),
    (lambda: gpu_dl.Sequential([layers.Input((6,)), layers.Dense(4), layers.LayerNormalization()]), (3, 6)),
], ids=["dense", "conv2d", "conv1d", "model"])
def test_time_distributed(xp, inner, shape, tmp_path):
    model = sequential(shape, layers.TimeDistributed(inner()))
    _randomize(model)
    assert_runs_as_predict(model, normal(shape), tmp_path, atol=2e-5)


def test_time_distributed_over_any_number_of_steps(xp, tmp_path):
    assert_runs_over_lengths(sequential((None, 4), layers.TimeDistributed(layers.Dense(2))), 4, (3, 1, 6), tmp_path)


def padded_ids(steps, vocabulary=7):
    """Integer ids with zeros (padding) at the end, at the start, in holes, and a row of padding alone."""
    def make(n):
        ids = numpy.random.default_rng(n).integers(1, vocabulary, size=(n, steps))
        patterns = [slice(steps - 2, None), slice(0, 3), slice(1, 2), slice(None), slice(0, 0)]
        for i in range(n):
            ids[i, patterns[i % len(patterns)]] = 0
        return [ids.astype("int32")]
    return make


@pytest.mark.parametrize("rnn", [
    lambda: layers.LSTM(3, return_sequences=True), lambda: layers.GRU(4),
    lambda: layers.SimpleRNN(2, return_sequences=True, zero_output_for_mask=True),
    lambda: layers.GRU(3, reset_after=False, zero_output_for_mask=True),
    lambda: layers.LSTM(2, return_state=True),
], ids=["lstm_sequences", "gru", "rnn_zero_output", "gru_zero_output", "lstm_states"])
def test_embedding_mask_into_recurrent_layers(xp, rnn, tmp_path):
    model = gpu_dl.Sequential([layers.Input((6,), dtype="int32"), layers.Embedding(7, 4, mask_zero=True),
                               layers.Dense(4, activation="tanh"), rnn()])
    _randomize(model)
    assert_runs_as_predict(model, padded_ids(6), tmp_path)


def test_masked_sequences_in_a_functional_model(xp, tmp_path):
    ids = gpu_dl.Input((7,), dtype="int32")
    h = layers.Embedding(9, 3, mask_zero=True)(ids)
    h = layers.LSTM(4, return_sequences=True)(h)
    pooled = layers.GlobalAveragePooling1D()(h)
    last = layers.GRU(2)(h)
    model = gpu_dl.Model(ids, [pooled, last, layers.GlobalAveragePooling1D()(layers.Dense(2)(h))])
    _randomize(model)
    for make in (padded_ids(7, 9), lambda n: [numpy.arange(1, 7 * n + 1, dtype="int32").reshape(n, 7) % 9]):
        assert_runs_as_predict(model, make, tmp_path)


class Encoder(layers.Layer):
    """A composite call whose Embedding's mask reaches the GRU inside it and, with its output, the layer after."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding = layers.Embedding(7, 3, mask_zero=True)
        self.rnn = layers.GRU(2, return_sequences=True)

    def call(self, x):
        return self.rnn(self.embedding(x))


def test_mask_inside_and_out_of_a_composite_call(xp, tmp_path):
    model = gpu_dl.Sequential([layers.Input((6,), dtype="int32"), Encoder(), layers.LSTM(3)])
    _randomize(model)
    assert_runs_as_predict(model, padded_ids(6), tmp_path)

def test_masking_layer(xp, tmp_path):
    def make(n):
        x = normal((5, 3))(n)[0]
        x[::2, 3:] = -1.0
        x[1::3, :2] = -1.0
        x[0, 2, 1] = -1.0       # one feature at the mask value does not mask its step
        return [x]
    model = sequential((5, 3), layers.Masking(-1.0), layers.SimpleRNN(4, return_sequences=True),
                       layers.GlobalAveragePooling1D())
    _randomize(model)
    assert_runs_as_predict(model, make, tmp_path)
    model = sequential((5, 3), layers.Masking(-1.0), layers.LSTM(2, zero_output_for_mask=True))
    _randomize(model)
    assert_runs_as_predict(model, make, tmp_path)


def test_masked_recurrent_file_against_keras(on_cpu, tmp_path):
    """Keras 3.15 (torch backend) as the oracle: the same masked model with the same weights, predicted by Keras,
    gives what the file gives, for padding at either end, holes, and a sample of padding alone."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")

    def make(lib):
        ids = lib.Input((6,), dtype="int32")
        h = lib.layers.Embedding(7, 3, mask_zero=True)(ids)
        h = lib.layers.LSTM(4, return_sequences=True)(h)
        sequences = lib.layers.SimpleRNN(2, return_sequences=True, zero_output_for_mask=True)(h)
        return lib.Model(ids, [lib.layers.GRU(3)(h), sequences, lib.layers.GlobalAveragePooling1D()(h)])

    ours, theirs = make(gpu_dl), make(keras)
    rng = numpy.random.default_rng(5)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    session = _session(exported(ours, tmp_path))
    x = padded_ids(6)(5)[0]
    got = session.run(None, _feeds(session, [x]))
    want = [numpy.asarray(keras.ops.convert_to_numpy(w)) for w in theirs.predict(x, verbose=0)]
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
