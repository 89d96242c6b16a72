"""Masks in functional models where a call has more than its input, against Keras 3 itself (torch backend, on the
CPU): a recurrent layer given ``initial_state`` tensors, merges of a masked tensor and one of unknown steps
(``EinsumDense(..., output_shape=(None, 3))``), and the attention layers' masks. Keras fills a call's ``mask``
from its input's only when the input is the call's one tensor argument; the output still gets the input's mask.
Each model runs on both backends (the Keras oracle on the CPU); gradients against float64 finite differences."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402

from gradcheck import assert_gradient  # noqa: E402

IDS = numpy.array([[3, 1, 0, 0, 2], [0, 2, 5, 0, 0], [4, 4, 4, 4, 4], [0, 0, 0, 0, 0]])


@pytest.fixture(autouse=True)
def fresh_sessions():
    """Layer names (and so the weights' paths) count from the start in both libraries."""
    gpu_dl.backend.clear_session()
    keras.backend.clear_session()


def _numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return to_numpy(value) if not isinstance(value, numpy.ndarray) else value


def _predictions(model, x):
    out = model.predict(x, verbose=0)
    return [_numpy(o) for o in out] if isinstance(out, (list, tuple)) else [_numpy(out)]


def _same_weights(ours, theirs, rng):
    """Random weights for both, matched by their paths (the order of the layers is not what is tested here)."""
    weights = [(0.5 * rng.standard_normal(w.shape)).astype(w.dtype) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    by_path = {w.path: value for w, value in zip(theirs.weights, weights)}
    assert sorted(by_path) == sorted(w.path for w in ours.weights)
    ours.set_weights([by_path[w.path] for w in ours.weights])


# ------------------------------------------------------------------ recurrent layers given initial_state
def _states(kind):
    return 2 if kind == "LSTM" else 1


def _decoder(lib, kind, source, return_sequences, go_backwards, explicit_mask=False, dtype="float32"):
    """Ids (or float steps through Masking) into a recurrent layer started from given states, as a decoder is
    started from its encoder's: the sequences (and their mask-aware average, which reads the mask the output got)
    and the final states."""
    steps = lib.Input((5,), dtype="int32")
    states = [lib.Input((4,), dtype=dtype) for _ in range(_states(kind))]
    if source == "embedding":
        x = lib.layers.Embedding(7, 3, mask_zero=True, dtype=dtype)(steps)
    else:       # Masking of embedded steps whose id is 0 (their vectors set to 0 first)
        x = lib.layers.Embedding(7, 3, dtype=dtype)(steps)
        x = lib.layers.Masking(dtype=dtype)(lib.ops.multiply(x, lib.ops.expand_dims(
            lib.ops.cast(lib.ops.not_equal(steps, 0), dtype), -1)))
    rnn = getattr(lib.layers, kind)(4, return_sequences=return_sequences, return_state=True,
                                    go_backwards=go_backwards, dtype=dtype)
    extra = {"mask": lib.ops.not_equal(steps, 0)} if explicit_mask else {}
    out, *final = rnn(x, initial_state=states, **extra)
    outputs = [out] + final
    if return_sequences:
        outputs.append(lib.layers.GlobalAveragePooling1D(dtype=dtype)(out))
    return lib.Model([steps] + states, outputs)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("source", ["embedding", "masking"])
def test_a_masked_recurrent_layer_given_initial_state_runs_every_step_as_keras(xp, rng, kind, return_sequences,
                                                                               go_backwards, source):
    theirs = _decoder(keras, kind, source, return_sequences, go_backwards)
    ours = _decoder(gpu_dl, kind, source, return_sequences, go_backwards)
    _same_weights(ours, theirs, rng)
    x = [IDS] + [rng.standard_normal((4, 4)).astype("float32") for _ in range(_states(kind))]
    want = _predictions(theirs, x)
    got = _predictions(ours, [xp.asarray(a) for a in x])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # What Keras gives is the unmasked run: the padded samples' outputs are not what the masked call gives.
    masked = getattr(keras.layers, kind)(4, return_sequences=return_sequences, go_backwards=go_backwards)
    embedded = theirs.layers[[type(l).__name__ for l in theirs.layers].index("Embedding")](IDS)
    rnn = next(l for l in theirs.layers if type(l).__name__ == kind)
    masked.build(embedded.shape)
    masked.set_weights(rnn.get_weights())
    skipped = _numpy(masked(embedded * keras.ops.expand_dims(keras.ops.cast(IDS != 0, "float32"), -1),
                            initial_state=x[1:], mask=IDS != 0))
    assert numpy.abs(skipped[0] - want[0][0]).max() > 1e-3
    numpy.testing.assert_allclose(skipped[2], want[0][2], rtol=1e-5, atol=1e-6)    # no padding: the same


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_an_explicit_mask_with_initial_state_holds_the_given_states_as_keras(xp, rng, kind, return_sequences,
                                                                             go_backwards):
    theirs = _decoder(keras, kind, "embedding", return_sequences, go_backwards, explicit_mask=True)
    ours = _decoder(gpu_dl, kind, "embedding", return_sequences, go_backwards, explicit_mask=True)
    _same_weights(ours, theirs, rng)
    x = [IDS] + [rng.standard_normal((4, 4)).astype("float32") for _ in range(_states(kind))]
    want = _predictions(theirs, x)
    got = _predictions(ours, [xp.asarray(a) for a in x])
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    for final, given in zip(want[1:1 + len(x) - 1], x[1:]):
        numpy.testing.assert_allclose(final[3], given[3], rtol=1e-6)     # every step masked: the states as given


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("explicit_mask", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_gradients_reach_the_initial_states_of_a_masked_decoder(xp, rng, kind, explicit_mask, go_backwards):
    backend.set_random_seed(5)
    model = _decoder(gpu_dl, kind, "embedding", True, go_backwards, explicit_mask=explicit_mask, dtype="float64")
    ids = xp.asarray(IDS)
    states = [xp.asarray(rng.standard_normal((4, 4))) for _ in range(_states(kind))]
    outs = model.forward([ids] + states, training=True)
    # No gradient from the masked average: the sample masked at every step averages over no steps (0 / 0).
    weights = [xp.asarray(rng.standard_normal(o.shape)) for o in outs[:-1]] + [None]

    def objective(given):
        return sum((o * w).sum() for o, w in zip(model.forward([ids] + given, training=True), weights[:-1]))

    objective(states)
    grads = model.backward(weights)
    for i, state in enumerate(states):
        assert_gradient(lambda s, i=i: objective(states[:i] + [s] + states[i + 1:]), state.copy(), grads[1 + i],
                        rng, what=f"{kind} initial state {i}")
    if explicit_mask:
        # The sample masked at every step: its final states are the given ones, so their gradients pass straight
        # back to the initial states (plus nothing from its output sequence, zeros at every step).
        for i, state in enumerate(states):
            numpy.testing.assert_allclose(to_numpy(grads[1 + i])[3], to_numpy(weights[1 + i])[3], rtol=1e-12)


# ------------------------------------------------------------------ merges of a masked input and one of unknown steps
MERGES = [("Concatenate", {}), ("Concatenate", {"axis": 1}), ("Add", {}), ("Subtract", {}), ("Multiply", {}),
          ("Average", {}), ("Maximum", {}), ("Minimum", {}), ("Dot", {"axes": 2})]


def _merged(lib, merge, kwargs, einsum_first):
    """Embedded ids (masked) through an EinsumDense whose output leaves the steps unknown and a Dense (which passes
    the mask on), merged, then averaged over the steps the merge's mask keeps."""
    ids = lib.Input((5,), dtype="int32")
    x = lib.layers.Embedding(7, 4, mask_zero=True)(ids)
    branches = [lib.layers.EinsumDense("abc,cd->abd", output_shape=(None, 3))(x), lib.layers.Dense(3)(x)]
    merged = getattr(lib.layers, merge)(**kwargs)(branches if einsum_first else branches[::-1])
    return lib.Model(ids, [merged, lib.layers.GlobalAveragePooling1D()(merged)]), merged


@pytest.mark.filterwarnings("ignore:.*does not support masking")
@pytest.mark.parametrize("merge,kwargs", MERGES, ids=[m + "".join(f"-{k}{v}" for k, v in kw.items())
                                                      for m, kw in MERGES])
@pytest.mark.parametrize("einsum_first", [True, False])
def test_a_merge_of_a_masked_input_and_one_of_unknown_steps_builds_as_keras(xp, rng, merge, kwargs, einsum_first):
    theirs, their_merged = _merged(keras, merge, kwargs, einsum_first)
    ours, our_merged = _merged(gpu_dl, merge, kwargs, einsum_first)
    assert tuple(our_merged.shape) == tuple(their_merged.shape)
    their_mask, our_mask = getattr(their_merged, "_keras_mask", None), getattr(our_merged, "_keras_mask", None)
    assert (our_mask is None) == (their_mask is None)
    if their_mask is not None:
        assert tuple(our_mask.shape) == tuple(their_mask.shape)
    _same_weights(ours, theirs, rng)
    want = _predictions(theirs, IDS[:3])
    got = _predictions(ours, xp.asarray(IDS[:3]))
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ attention layers and the masks of their inputs
ATTENTIONS = {"MultiHeadAttention": lambda lib: lib.layers.MultiHeadAttention(2, 3),
              "GroupQueryAttention": lambda lib: lib.layers.GroupQueryAttention(4, 2, 2),
              "Attention": lambda lib: lib.layers.Attention(),
              "AdditiveAttention": lambda lib: lib.layers.AdditiveAttention()}


def _attend(attention, x):
    return attention([x, x]) if isinstance(attention, (keras.layers.Attention, keras.layers.AdditiveAttention,
                                                       gpu_dl.layers.Attention, gpu_dl.layers.AdditiveAttention)) \
        else attention(x, x)


def _self_attention_then_lstm(lib, name, lstm_first):
    """A subclassed model: embedded ids (masked) attend to themselves, and an LSTM reads the same embedded tensor,
    before or after the attention."""
    class SelfAttentionAndLSTM(lib.Model):
        def __init__(self):
            super().__init__()
            self.embedding = lib.layers.Embedding(7, 4, mask_zero=True)
            self.attention = ATTENTIONS[name](lib)
            self.lstm = lib.layers.LSTM(3)

        def call(self, ids):
            x = self.embedding(ids)
            read = self.lstm(x) if lstm_first else None
            attended = _attend(self.attention, x)
            return [attended, read if lstm_first else self.lstm(x)]
    model = SelfAttentionAndLSTM()
    model(IDS[:3])
    return model


@pytest.mark.parametrize("name", list(ATTENTIONS))
@pytest.mark.parametrize("lstm_first", [False, True])
def test_in_a_call_multi_head_attention_takes_the_masks_off_its_inputs_as_keras(xp, rng, name, lstm_first):
    # In Keras MultiHeadAttention removes the masks from its query, value and key tensors: a layer of the same
    # call reading one of them afterwards gets no mask (the LSTM runs over the padded steps too). The other
    # attention layers leave the masks.
    theirs, ours = _self_attention_then_lstm(keras, name, lstm_first), _self_attention_then_lstm(gpu_dl, name,
                                                                                                  lstm_first)
    _same_weights(ours, theirs, rng)
    want = _predictions(theirs, IDS[:3])
    got = _predictions(ours, xp.asarray(IDS[:3]))
    numpy.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)
    kept = IDS[:3] != 0     # query steps masked: every key masked in their rows (see the test below)
    numpy.testing.assert_allclose(got[0][kept], want[0][kept], rtol=1e-5, atol=1e-6)
    # the LSTM's masks: the padded samples give other outputs when it reads the mask than when it does not
    lstm = ours.lstm
    embedded = ours.embedding(xp.asarray(IDS[:3]))
    masked, unmasked = (to_numpy(lstm(embedded, mask=xp.asarray(IDS[:3] != 0))), to_numpy(lstm(embedded)))
    reads_mask = lstm_first or name != "MultiHeadAttention"
    numpy.testing.assert_allclose(got[1], masked if reads_mask else unmasked, rtol=1e-5, atol=1e-6)
    assert numpy.abs(masked[:2] - unmasked[:2]).max() > 1e-3


@pytest.mark.parametrize("name", list(ATTENTIONS))
@pytest.mark.parametrize("lstm_first", [False, True])
def test_in_a_functional_model_the_layers_after_attention_keep_their_masks_as_keras(xp, rng, name, lstm_first):
    # Keras records the mask each call reads in the graph, so MultiHeadAttention taking the masks off its inputs
    # in its call changes nothing in a functional model.
    def model(lib):
        ids = lib.Input((5,), dtype="int32")
        x = lib.layers.Embedding(7, 4, mask_zero=True)(ids)
        lstm = lib.layers.LSTM(3)
        read = lstm(x) if lstm_first else None
        attended = _attend(ATTENTIONS[name](lib), x)
        assert x._keras_mask is not None
        return lib.Model(ids, [attended, read if lstm_first else lstm(x)])
    theirs, ours = model(keras), model(gpu_dl)
    _same_weights(ours, theirs, rng)
    want = _predictions(theirs, IDS[:3])
    got = _predictions(ours, xp.asarray(IDS[:3]))
    numpy.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)
    kept = IDS[:3] != 0
    numpy.testing.assert_allclose(got[0][kept], want[0][kept], rtol=1e-5, atol=1e-6)
    lstm = next(l for l in ours.layers if type(l).__name__ == "LSTM")
    embedded = ours.layers[1](xp.asarray(IDS[:3]))
    numpy.testing.assert_allclose(got[1], to_numpy(lstm(embedded, mask=xp.asarray(IDS[:3] != 0))), rtol=1e-5,
                                  atol=1e-6)


def test_multi_head_attention_rows_masked_throughout(xp, rng):
    # A masked query step masks every key of its row. gpu_dl computes those rows as Keras's masked Softmax does
    # (the weights of masked keys set to 0: a row of them all gives zeros, so the output there is the output
    # projection's bias), with or without return_attention_scores; Keras 3.15 on torch gives that only with
    # return_attention_scores=True (without it the attention goes through another path there), so that is what
    # the rows are compared with.
    def model(lib, scores):
        ids = lib.Input((5,), dtype="int32")
        x = lib.layers.Embedding(7, 4, mask_zero=True)(ids)
        out = lib.layers.MultiHeadAttention(2, 3)(x, x, return_attention_scores=scores)
        return lib.Model(ids, out if scores else [out])
    theirs, ours, ours_without = model(keras, True), model(gpu_dl, True), model(gpu_dl, False)
    _same_weights(ours, theirs, rng)
    ours_without.set_weights(ours.get_weights())
    want = _predictions(theirs, IDS[:3])
    got = _predictions(ours, xp.asarray(IDS[:3]))
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    masked_rows = IDS[:3] == 0
    assert masked_rows.any()
    weights = got[1].transpose(0, 2, 1, 3)[masked_rows]         # (rows, heads, keys)
    assert not weights.any()
    bias = to_numpy(ours.layers[-1].weights[-1].value)
    assert ours.layers[-1].weights[-1].path.endswith("attention_output/bias")
    numpy.testing.assert_allclose(got[0][masked_rows], numpy.broadcast_to(bias, got[0][masked_rows].shape),
                                  rtol=1e-6)
    numpy.testing.assert_allclose(_predictions(ours_without, xp.asarray(IDS[:3]))[0], got[0], rtol=1e-6, atol=1e-7)
