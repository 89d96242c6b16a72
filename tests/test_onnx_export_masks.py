"""``model.export(path, format="onnx")`` of masks of padded steps (Embedding(mask_zero=True), Masking) through
Bidirectional recurrent layers, TimeDistributed and the attention layers (with ``use_causal_mask``): the file, run
in ONNX Runtime on batches whose samples have different lengths (padding at either end, holes, a sample of
padding alone), gives what the model's own predict gives at every step, padded ones included; Keras 3.15 as the
oracle for the same weights (the helpers are test_onnx_export.py's)."""
import os

import numpy
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
import test_onnx_export  # noqa: E402
from test_onnx_export import _feeds, _session, assert_runs_as_predict, exported, normal, sequential  # noqa: E402
from test_onnx_export_ops import padded_ids  # noqa: E402

exact_convolutions = test_onnx_export.exact_convolutions    # the autouse fixture: float32 GPU convolutions here too


@pytest.fixture(autouse=True)
def fresh_names():
    """Both libraries' name counters from zero, so that the layers' names (and the refusals naming them) do not
    depend on the tests run before."""
    gpu_dl.backend.clear_session()
    keras = __import__("sys").modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        keras.backend.clear_session()
    yield


def _randomize(model, seed=1, scale=0.5):
    rng = numpy.random.default_rng(seed)
    model.set_weights([w + rng.normal(scale=scale, size=w.shape).astype(w.dtype) for w in model.get_weights()])


def masked_values(steps, features, mask_value=-1.0):
    """Float steps, some all ``mask_value`` (padded: at the end, the start, a hole, a whole sample), and one
    feature at the mask value in a kept step."""
    def make(n):
        x = normal((steps, features))(n)[0]
        patterns = [slice(steps - 2, None), slice(0, 2), slice(1, 2), slice(None), slice(0, 0)]
        for i in range(n):
            x[i, patterns[i % len(patterns)]] = mask_value
        x[0, -3, 0] = mask_value
        return [x]
    return make


# ---------------------------------------------------------------------------------------------- Bidirectional
@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU, layers.SimpleRNN])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_masked_bidirectional(xp, rnn, merge_mode, return_sequences, tmp_path):
    ids = gpu_dl.Input((6,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=True)(ids)
    out = layers.Bidirectional(rnn(3, return_sequences=return_sequences), merge_mode=merge_mode)(h)
    model = gpu_dl.Model(ids, out)
    _randomize(model)
    assert_runs_as_predict(model, padded_ids(6), tmp_path, atol=2e-5)


@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU])
@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_states_and_separate_outputs(xp, rnn, masked, tmp_path):
    """return_state (each direction's states after the output, forward first) and merge_mode=None, with and
    without a mask; the mask of the sequences reaches the recurrent layer after them."""
    x = gpu_dl.Input((5, 2))
    h = layers.Masking(-1.0)(x) if masked else x
    out, *states = layers.Bidirectional(rnn(3, return_sequences=True, return_state=True), merge_mode="sum")(h)
    forward, backward = layers.Bidirectional(rnn(2, return_sequences=True), merge_mode=None)(out)
    last = layers.GRU(2)(layers.Concatenate()([forward, backward]) if not masked else forward)
    model = gpu_dl.Model(x, [out, last, backward] + states)
    _randomize(model, seed=3)
    session = assert_runs_as_predict(model, masked_values(5, 2), tmp_path, atol=2e-5)
    assert len(session.get_outputs()) == 3 + (4 if rnn is layers.LSTM else 2)


def test_masking_into_bidirectional_in_a_sequential(xp, tmp_path):
    model = sequential((6, 3), layers.Masking(-1.0),
                       layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode="concat"),
                       layers.Bidirectional(layers.GRU(2)), layers.Dense(2))
    _randomize(model, seed=4)
    assert_runs_as_predict(model, masked_values(6, 3), tmp_path, atol=2e-5)


# ---------------------------------------------------------------------------------------------- TimeDistributed
def test_mask_through_time_distributed(xp, tmp_path):
    """TimeDistributed passes the mask on to the LSTM after it; its Dense sees none."""
    model = gpu_dl.Sequential([layers.Input((6,), dtype="int32"), layers.Embedding(7, 4, mask_zero=True),
                               layers.TimeDistributed(layers.Dense(3)), layers.LSTM(2, return_sequences=True),
                               layers.GlobalAveragePooling1D()])
    _randomize(model)
    assert_runs_as_predict(model, padded_ids(6), tmp_path)


# ---------------------------------------------------------------------------------------------- attention
def two_lengths(n):
    """Query ids of 5 steps and value ids of 6, padded differently."""
    return padded_ids(5)(n) + [numpy.roll(padded_ids(6, 9)(n)[0], 1, axis=0)]


def attention_model(make, with_key=False, causal=False, scores=False):
    query_ids, value_ids = gpu_dl.Input((5,), dtype="int32"), gpu_dl.Input((6,), dtype="int32")
    query = layers.Embedding(7, 4, mask_zero=True)(query_ids)
    value = layers.Embedding(9, 4, mask_zero=True)(value_ids)
    layer = make()
    options = dict(use_causal_mask=True) if causal else {}
    if scores:
        options["return_attention_scores"] = True
    if isinstance(layer, (layers.Attention, layers.AdditiveAttention)):
        key = layers.Dense(4)(value)
        out = layer([query, value, key] if with_key else [query, value], **options)
    else:
        key = layers.Embedding(9, 3, mask_zero=True)(value_ids[:, ::-1]) if with_key else None
        out = layer(query, value, key, **options) if with_key else layer(query, value, **options)
    outputs = list(out) if scores else [out]
    # The output carries the query's mask to the recurrent layer.
    outputs.append(layers.GRU(2, return_sequences=True)(outputs[0]))
    model = gpu_dl.Model([query_ids, value_ids], outputs)
    _randomize(model, seed=7)
    return model


ATTENTIONS = {
    "mha": lambda: layers.MultiHeadAttention(2, 3),
    "mha_value_dim": lambda: layers.MultiHeadAttention(3, 2, value_dim=4, use_bias=False, output_shape=5),
    "gqa": lambda: layers.GroupQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=2),
    "dot": lambda: layers.Attention(),
    "dot_scaled": lambda: layers.Attention(use_scale=True),
    "concat": lambda: layers.Attention(use_scale=True, score_mode="concat"),
    "additive": lambda: layers.AdditiveAttention(),
    "additive_unscaled": lambda: layers.AdditiveAttention(use_scale=False),
}


@pytest.mark.parametrize("name", ATTENTIONS)
@pytest.mark.parametrize("with_key, causal, scores", [(False, False, False), (True, False, True),
                                                      (False, True, True), (True, True, False)])
def test_masked_attention(xp, name, with_key, causal, scores, tmp_path):
    model = attention_model(ATTENTIONS[name], with_key, causal, scores)
    assert_runs_as_predict(model, two_lengths, tmp_path, atol=2e-5)


@pytest.mark.parametrize("name", ["mha", "gqa", "dot", "additive"])
def test_attention_without_masks(xp, name, tmp_path):
    """Self-attention on float sequences of any length, causal, and the layers' plain conversions."""
    x = gpu_dl.Input((None, 4))
    layer = ATTENTIONS[name]()
    if isinstance(layer, (layers.Attention, layers.AdditiveAttention)):
        outs = [layer([x, x], use_causal_mask=True), ATTENTIONS[name]()([x, x])]
    else:
        outs = [layer(x, x, use_causal_mask=True), ATTENTIONS[name]()(x, x)]
    model = gpu_dl.Model(x, outs)
    _randomize(model, seed=2)
    session = None
    for steps in (3, 6):
        session = assert_runs_as_predict(model, normal((steps, 4)), tmp_path, atol=2e-5)
    assert session.get_inputs()[0].shape[1] == "dim_0_1"


# ---------------------------------------------------------------------------------------------- merges
def test_encoder_block_of_masked_self_attention(xp, tmp_path):
    """Embedding(mask_zero=True), self-attention, the residual Add and LayerNormalization, a feed-forward
    residual, and the mean over the unmasked steps: the mask reaches the pooling through the merges."""
    ids = gpu_dl.Input((6,), dtype="int32")
    h = layers.Embedding(7, 4, mask_zero=True)(ids)
    h = layers.LayerNormalization()(layers.Add()([h, layers.MultiHeadAttention(2, 2)(h, h)]))
    h = layers.LayerNormalization()(layers.Add()([h, layers.Dense(4)(layers.Dense(8, activation="relu")(h))]))
    model = gpu_dl.Model(ids, [h, layers.GlobalAveragePooling1D()(h)])
    _randomize(model, seed=5)
    assert_runs_as_predict(model, padded_ids(6), tmp_path, atol=2e-5)


@pytest.mark.parametrize("merge", [layers.Add, layers.Subtract, layers.Average, layers.Multiply, layers.Maximum,
                                   layers.Minimum, layers.Concatenate, lambda: layers.Concatenate(axis=1)],
                         ids=["add", "subtract", "average", "multiply", "maximum", "minimum", "concatenate",
                              "concatenate_steps"])
@pytest.mark.parametrize("both_masked", [True, False])
def test_merges_of_masked_sequences(xp, merge, both_masked, tmp_path):
    """Two sequences padded differently (or one without a mask) merged; the merged mask reaches the layers
    after the merge (a recurrent layer's output sequence and the mean over its unmasked steps)."""
    first, second = gpu_dl.Input((6,), dtype="int32"), gpu_dl.Input((6, 3))
    a = layers.Embedding(7, 3, mask_zero=True)(first)
    b = layers.Masking(-1.0)(second) if both_masked else layers.Dense(3)(second)
    merged = merge()([a, b])
    out = layers.SimpleRNN(2, return_sequences=True)(merged)
    model = gpu_dl.Model([first, second], [merged, out, layers.GlobalAveragePooling1D()(merged)])
    _randomize(model, seed=8)

    def make(n):
        values = masked_values(6, 3)(n)[0]
        return [numpy.roll(padded_ids(6)(n)[0], 2, axis=0), values]
    assert_runs_as_predict(model, make, tmp_path, atol=2e-5)


# ---------------------------------------------------------------------------------------------- nested calls
class EncoderBlock(layers.Layer):
    """A composite transformer block: the mask reaching its call reaches the attention inside, and ends at the
    operators (``x + y``), as in gpu_dl."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.attention = layers.MultiHeadAttention(2, 2)
        self.norm = layers.LayerNormalization()
        self.feed = layers.Dense(4)

    def call(self, x):
        h = self.norm(x + self.attention(x, x))
        return self.norm(h + self.feed(h))


class Zeroed(layers.Layer):
    """A composite call that names ``mask`` and computes with it."""

    def call(self, x, mask=None):
        return x if mask is None else x * gpu_dl.ops.cast(mask, "float32")[:, :, None]


@pytest.mark.parametrize("inner", [
    lambda: gpu_dl.Sequential([layers.Input((6, 4)), layers.LSTM(3, return_sequences=True), layers.Dense(2)]),
    EncoderBlock, Zeroed,
], ids=["sequential", "composite", "call_naming_mask"])
def test_mask_into_nested_calls(xp, inner, tmp_path):
    """A mask reaching a nested model or a composite layer reaches the layers inside; the layers after read the
    mask its output carries (a recurrent layer after a nested Sequential whose output keeps it)."""
    model = gpu_dl.Sequential([layers.Input((6,), dtype="int32"), layers.Embedding(7, 4, mask_zero=True), inner(),
                               layers.GRU(2, return_sequences=True)])
    _randomize(model, seed=9)
    assert_runs_as_predict(model, padded_ids(6), tmp_path, atol=2e-5)


# ---------------------------------------------------------------------------------------------- tensor arguments
@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU, layers.SimpleRNN])
@pytest.mark.parametrize("masked", [False, True])
def test_encoder_states_as_the_decoders_initial_state(xp, rnn, masked, tmp_path):
    """A sequence-to-sequence model: the encoder's last states start the decoder (``initial_state``), with and
    without masks; a decoder sample of padding alone keeps the encoder's states and outputs zeros."""
    encoder_ids, decoder_ids = gpu_dl.Input((6,), dtype="int32"), gpu_dl.Input((5,), dtype="int32")
    _, *states = rnn(4, return_state=True)(layers.Embedding(7, 3, mask_zero=masked)(encoder_ids))
    h = layers.Embedding(7, 3, mask_zero=masked)(decoder_ids)
    sequence, *last_states = rnn(4, return_sequences=True, return_state=True)(h, initial_state=states)
    model = gpu_dl.Model([encoder_ids, decoder_ids], [sequence, rnn(4)(h, initial_state=states)] + last_states)
    _randomize(model, seed=12)
    assert_runs_as_predict(model, lambda n: padded_ids(6)(n) + [numpy.roll(padded_ids(5)(n)[0], 1, axis=0)],
                           tmp_path, atol=2e-5)


@pytest.mark.parametrize("dtype", ["float32", "bool", "int32"])
@pytest.mark.parametrize("name", ["mha", "gqa"])
def test_attention_mask_tensor(xp, name, dtype, tmp_path):
    """An ``attention_mask`` input ANDed with the value's mask and the causal one; rows it masks throughout."""
    query, value_ids, given = gpu_dl.Input((5, 4)), gpu_dl.Input((6,), dtype="int32"), gpu_dl.Input((5, 6), dtype=dtype)
    value = layers.Embedding(7, 4, mask_zero=True)(value_ids)
    out = ATTENTIONS[name]()(query, value, attention_mask=given, use_causal_mask=True)
    model = gpu_dl.Model([query, value_ids, given], out)
    _randomize(model, seed=13)

    def make(n):
        allowed = numpy.random.default_rng(n).random((n, 5, 6)) > 0.3
        allowed[0, 2] = False
        return normal((5, 4))(n) + padded_ids(6)(n) + [allowed.astype(dtype)]
    assert_runs_as_predict(model, make, tmp_path, atol=2e-5)


def test_mask_given_to_a_call(xp, tmp_path):
    """``layer(x, mask=m)`` with ``m`` a tensor of the graph: that mask, not the edge's."""
    x, given = gpu_dl.Input((6, 3)), gpu_dl.Input((6,), dtype="bool")
    h = layers.Masking(-1.0)(x)
    model = gpu_dl.Model([x, given], [layers.LSTM(3, return_sequences=True)(h, mask=given), layers.GRU(2)(h)])
    _randomize(model, seed=14)
    make = lambda n: masked_values(6, 3)(n) + [numpy.random.default_rng(n).random((n, 6)) > 0.4]  # noqa: E731
    assert_runs_as_predict(model, make, tmp_path, atol=2e-5)


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("make, what", [
    (lambda h: layers.Multiply()([h, layers.GlobalAveragePooling1D()(h)]), "a merge of masked inputs of different"),
], ids=["merge_of_ranks"])
def test_what_stays_refused_writes_nothing(xp, make, what, tmp_path):
    ids = gpu_dl.Input((5,), dtype="int32", batch_size=2)
    h = layers.Embedding(9, 3, mask_zero=True)(ids)
    model = gpu_dl.Model(ids, make(h))
    with pytest.raises(ValueError, match=f"Layer '\\w+' cannot be exported to ONNX: {what}"):
        model.export(tmp_path / "no.onnx", format="onnx")
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------------------------- Keras as the oracle
def file_against_keras(keras, make, xs, seed, tmp_path):
    """The outputs of the file of ``make(gpu_dl)`` on the input arrays ``xs``, after checking that they are what
    ``make(keras)`` predicts with the same random weights."""
    ours, theirs = make(gpu_dl), make(keras)
    rng = numpy.random.default_rng(seed)
    weights = [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in ours.get_weights()]
    assert [w.shape for w in weights] == [tuple(w.shape) for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    session = _session(exported(ours, tmp_path))
    got = session.run(None, _feeds(session, xs))
    want = [numpy.asarray(keras.ops.convert_to_numpy(w)) for w in theirs.predict(xs, verbose=0)]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        numpy.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-5, err_msg=f"output {i}")
    return got


def test_masked_file_against_keras(on_cpu, tmp_path):
    """Keras 3.15 (torch backend), given the same weights, predicts what the file gives at every step, padded ones
    and samples of padding alone included: a masked Bidirectional of two merges, TimeDistributed,
    MultiHeadAttention with query, value and causal masks, Attention, a residual Add, a Concatenate with an
    EinsumDense, and the mean and a GRU over the merged mask."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.backend.clear_session()

    def make(lib):
        query_ids, value_ids = lib.Input((5,), dtype="int32"), lib.Input((6,), dtype="int32")
        query = lib.layers.Embedding(7, 4, mask_zero=True)(query_ids)
        value = lib.layers.Embedding(9, 4, mask_zero=True)(value_ids)
        value = lib.layers.TimeDistributed(lib.layers.Dense(4))(value)
        both = lib.layers.Bidirectional(lib.layers.LSTM(2, return_sequences=True))(value)
        summed = lib.layers.Bidirectional(lib.layers.GRU(3), merge_mode="ave")(value)
        # With the weights asked for, Keras computes the masked softmax itself (without them it hands the scores
        # to torch's scaled_dot_product_attention, whose rows masked throughout are not Keras's Softmax's zeros).
        attended, weights = lib.layers.MultiHeadAttention(2, 3)(query, both, use_causal_mask=True,
                                                               return_attention_scores=True)
        # Keras's MultiHeadAttention takes the masks off the tensors it is called on as it runs, so the Attention
        # has a query of its own, whose mask Keras still has when it runs.
        dotted = lib.layers.Attention(use_scale=True)([lib.layers.Embedding(7, 4, mask_zero=True)(query_ids), value])
        block = lib.layers.LayerNormalization()(lib.layers.Add()([query, attended]))
        merged = lib.layers.Concatenate()([block, lib.layers.EinsumDense("abc,cd->abd", (5, 3), bias_axes="d")(query)])
        return lib.Model([query_ids, value_ids], [both, summed, attended, weights, dotted, block,
                                                  lib.layers.GlobalAveragePooling1D()(merged),
                                                  lib.layers.GRU(2)(merged)])

    xs = two_lengths(5)
    assert (xs[0] == 0).all(axis=1).any() and (xs[1] == 0).all(axis=1).any()       # samples of padding alone
    got = file_against_keras(keras, make, xs, 11, tmp_path)
    assert len(got) == 8
    numpy.testing.assert_allclose(got[0][xs[1] == 0], 0.0)      # padded steps of the merged sequences: zeros
