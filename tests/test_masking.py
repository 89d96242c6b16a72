"""Masks of padded sequence steps, as in Keras: Masking and Embedding(mask_zero=True) make them, the
recurrent layers skip the masked steps (states held, the output repeated), Dense/Dropout/activations
pass them on, and the loss and metrics leave masked output steps out. Against running each sample's
unpadded sequence alone, float64 finite differences, and (tests/test_keras_oracle_rnn.py) Keras."""
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient

KINDS = ["LSTM", "GRU", "SimpleRNN", "GRU-reset-before"]


def make(kind, units, **kwargs):
    if kind == "GRU-reset-before":
        kwargs["reset_after"] = False
        kind = "GRU"
    return getattr(layers, kind)(units, bias_initializer="random_normal", dtype="float64", **kwargs)


def padded(rng, lengths, steps, features, where):
    """Sequences of the given lengths, zero-padded to ``steps`` before ('pre') or after ('post'), and their mask."""
    x = numpy.zeros((len(lengths), steps, features))
    mask = numpy.zeros((len(lengths), steps), bool)
    for i, n in enumerate(lengths):
        span = slice(steps - n, steps) if where == "pre" else slice(0, n)
        x[i, span] = rng.standard_normal((n, features))
        mask[i, span] = True
    return x, mask


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["pre", "post"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_a_masked_sequence_gives_what_the_unpadded_one_gives(xp, rng, kind, where, go_backwards):
    layer = make(kind, 5, return_sequences=True, return_state=True, go_backwards=go_backwards)
    lengths = [1, 4, 7]
    x, mask = padded(rng, lengths, 7, 3, where)
    outputs = [to_numpy(o) for o in layer(xp.asarray(x), mask=xp.asarray(mask))]
    sequence, states = outputs[0], outputs[1:]
    for i, n in enumerate(lengths):
        alone = [to_numpy(o) for o in layer(xp.asarray(x[i:i + 1][mask[i:i + 1]].reshape(1, n, 3)))]
        for got, want in zip(states, alone[1:]):
            numpy.testing.assert_allclose(got[i], want[0], rtol=1e-12, atol=1e-14)
        # the steps the sample has give its own outputs (in the order read); a masked step repeats the
        # output before it, zeros before the first
        read = mask[i, ::-1] if go_backwards else mask[i]
        numpy.testing.assert_allclose(sequence[i][read], alone[0][0], rtol=1e-12, atol=1e-14)
        held = numpy.zeros(5)
        for t in range(7):
            if read[t]:
                held = sequence[i, t]
            numpy.testing.assert_array_equal(sequence[i, t], held)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_gradients_through_masked_steps_match_finite_differences(xp, rng, kind, return_sequences):
    layer = make(kind, 4, return_sequences=return_sequences, go_backwards=return_sequences)
    x, mask = padded(rng, [2, 5, 3], 5, 3, "post")
    x = xp.asarray(x + 0.1 * rng.standard_normal(x.shape))   # masked steps' values must not matter
    mask = xp.asarray(mask)
    dy = xp.asarray(rng.standard_normal((3, 5, 4) if return_sequences else (3, 4)))

    def loss(v):
        return (layer(v, training=True, mask=mask) * dy).sum()
    layer(x, training=True, mask=mask)
    dx = layer.backward(dy)
    assert_gradient(loss, x, dx, rng, what=f"{kind} input")
    assert not to_numpy(dx)[~to_numpy(mask)].any()          # a masked step's input has no effect
    for var in layer.trainable_weights:
        layer(x, training=True, mask=mask)
        layer.backward(dy)
        grad, original = var.grad.copy(), var.value.copy()

        def objective(value, var=var):
            var.value[...] = value
            return loss(x)
        assert_gradient(objective, original.copy(), grad, rng, what=f"{kind} {var.name}")
        var.value[...] = original


def test_masking_layer_zeroes_and_marks_the_padded_steps(xp, rng):
    layer = layers.Masking(mask_value=-1.0, dtype="float64")
    x = rng.standard_normal((2, 4, 3))
    x[0, 1] = -1.0
    x[1, 3] = -1.0
    x[1, 0, 0] = -1.0                        # one feature alone does not make a padded step
    y = layer(xp.asarray(x), training=True)
    mask = to_numpy(layer.compute_mask(xp.asarray(x), None))
    numpy.testing.assert_array_equal(mask, [[True, False, True, True], [True, True, True, False]])
    numpy.testing.assert_array_equal(to_numpy(y), x * mask[..., None])
    dy = rng.standard_normal(x.shape)
    numpy.testing.assert_array_equal(to_numpy(layer.backward(xp.asarray(dy))), dy * mask[..., None])
    assert layers.Masking.from_config(layer.get_config()).mask_value == -1.0
    with pytest.raises(ValueError, match="mask_value"):
        layers.Masking("zero")


def test_embedding_mask_zero_marks_id_zero(xp):
    ids = xp.asarray(numpy.array([[0, 3, 0], [1, 2, 4]]))
    numpy.testing.assert_array_equal(to_numpy(layers.Embedding(5, 2, mask_zero=True).compute_mask(ids, None)),
                                     [[False, True, False], [True, True, True]])
    assert layers.Embedding(5, 2).compute_mask(ids, None) is None


def test_loss_and_metrics_leave_masked_output_steps_out(xp, rng):
    gpu_dl.utils.set_random_seed(0)
    model = gpu_dl.Sequential([layers.Input((4,)), layers.Embedding(10, 3, mask_zero=True),
                               layers.LSTM(3, return_sequences=True), layers.Dropout(0.0),
                               layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = numpy.array([[1, 2, 0, 0], [3, 4, 5, 6], [0, 0, 0, 7]])
    y = numpy.array([[0, 1, 1, 1], [1, 0, 1, 0], [1, 1, 1, 0]])
    keep = x != 0
    p = model.predict(x, verbose=0).astype(numpy.float64)
    cross_entropy = -numpy.log(numpy.take_along_axis(p, y[..., None], -1)[..., 0])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(cross_entropy[keep].mean(), rel=1e-5)
    assert accuracy == pytest.approx((p.argmax(-1) == y)[keep].mean())
    assert model.train_on_batch(x, y)[0] == pytest.approx(loss, rel=1e-5)


def test_a_layer_that_cannot_take_a_mask_drops_it_with_a_warning(xp):
    model = gpu_dl.Sequential([layers.Input((3,)), layers.Embedding(5, 2, mask_zero=True), layers.Flatten(name="flat"),
                               layers.Dense(1)])
    with pytest.warns(UserWarning, match="'flat' \\(Flatten\\) does not support masking"):
        model.predict(numpy.array([[1, 0, 0]]), verbose=0)
    assert model.output_mask is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # once per layer
        model.predict(numpy.array([[1, 0, 0]]), verbose=0)


def test_padded_sequences_of_different_lengths_train_with_a_mask(xp):
    # the label is the sign of the sum of the sequence's values: padding must not count
    rng = numpy.random.default_rng(2)
    sequences = [rng.standard_normal(rng.integers(1, 10)) for _ in range(600)]
    labels = numpy.array([float(s.sum() > 0) for s in sequences])
    x = gpu_dl.utils.pad_sequences([s.tolist() for s in sequences], maxlen=9, dtype="float32", value=-9.0)[..., None]
    gpu_dl.utils.set_random_seed(3)
    model = gpu_dl.Sequential([layers.Input((9, 1)), layers.Masking(-9.0), layers.GRU(8),
                               layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x[:500], labels[:500], epochs=12, batch_size=50, verbose=0)
    assert model.evaluate(x[500:], labels[500:], verbose=0)[1] >= 0.9


def test_bidirectional_merges_zeros_at_masked_steps(xp, rng):
    # As Keras forces on the layers it wraps: zeros, not repeated outputs, at masked steps of sequences.
    wrapped = layers.Bidirectional(layers.GRU(3, return_sequences=True, dtype="float64"), merge_mode="sum")
    assert wrapped.forward_layer.zero_output_for_mask and wrapped.backward_layer.zero_output_for_mask
    assert not layers.Bidirectional(layers.GRU(3)).forward_layer.zero_output_for_mask
    x, mask = padded(rng, [2, 4], 4, 2, "post")
    y = to_numpy(wrapped(xp.asarray(x), mask=xp.asarray(mask)))
    assert not y[~mask].any() and numpy.abs(y[mask]).min() > 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_leading_masked_steps_output_zeros_from_a_given_initial_state(xp, rng, kind, return_sequences):
    # Before a sample's first step the output held at masked steps is zeros, whatever state it starts
    # from; the states themselves are held from the initial ones (Keras's TensorFlow and torch backends).
    layer = make(kind, 4, return_sequences=return_sequences, return_state=True)
    x, mask = padded(rng, [2, 5, 0], 5, 3, "pre")
    x, mask = xp.asarray(x), xp.asarray(mask)
    initial = [xp.asarray(rng.standard_normal((3, 4))) for _ in range(2 if kind == "LSTM" else 1)]
    output, *states = (to_numpy(o) for o in layer(x, mask=mask, initial_state=initial))
    alone = [to_numpy(o) for o in layer(x[:1, 3:], initial_state=[s[:1] for s in initial])]
    if return_sequences:
        assert not output[0, :3].any() and not output[2].any()
        numpy.testing.assert_allclose(output[0, 3:], alone[0][0], rtol=1e-12)
    else:
        numpy.testing.assert_allclose(output[0], alone[0][0], rtol=1e-12)
        assert not output[2].any()          # no step at all: zeros, not the initial h
    for got, given in zip(states, initial):
        numpy.testing.assert_array_equal(got[2], to_numpy(given)[2])

    dy = xp.asarray(rng.standard_normal(output.shape))

    def loss(state, i=0):
        given = list(initial)
        given[i] = state
        return (layer(x, mask=mask, initial_state=given, training=True)[0] * dy).sum()
    layer(x, mask=mask, initial_state=initial, training=True)
    layer.backward([dy] + [None] * len(states))
    for i, state in enumerate(initial):
        assert_gradient(lambda s, i=i: loss(s, i), state.copy(), layer.initial_state_gradients[i], rng,
                        what=f"{kind} initial state {i}")


def test_a_stateful_layer_outputs_zeros_before_a_sample_s_first_step(xp, rng):
    layer = make("LSTM", 3, return_sequences=True, stateful=True)
    x, mask = padded(rng, [2, 4], 4, 2, "pre")
    layer(xp.asarray(rng.standard_normal((2, 4, 2))))          # carries nonzero states into the next call
    carried = [s.numpy() for s in layer.states]     # Variables, as Keras's: their values now
    output = to_numpy(layer(xp.asarray(x), mask=xp.asarray(mask)))
    assert not output[0, :2].any() and output[0, 2:].all() and output[1].all()
    fresh = make("LSTM", 3, return_sequences=True)
    fresh.build(x.shape)
    fresh.set_weights(layer.get_weights())
    numpy.testing.assert_allclose(output[0, 2:], to_numpy(fresh(xp.asarray(x[:1, 2:]), initial_state=[
        s[:1] for s in carried]))[0], rtol=1e-12)
