"""Embedding: lookup against a plain NumPy expectation, the table's gradient against float64 finite
differences (repeated ids included), bad ids and arguments, and a padded-sequence classifier."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


@pytest.mark.parametrize("ids_shape", [(1,), (3, 17), (2, 3, 5)], ids=["rank1", "rank2", "rank3"])
@pytest.mark.parametrize("input_dim,output_dim", [(1, 1), (17, 33), (50, 3)])
def test_lookup_picks_the_rows_of_the_ids(xp, rng, ids_shape, input_dim, output_dim):
    layer = layers.Embedding(input_dim, output_dim, embeddings_initializer="random_normal")
    ids = rng.integers(0, input_dim, ids_shape)
    y = layer(xp.asarray(ids))
    table = layer.get_weights()[0]
    assert y.shape == ids_shape + (output_dim,) == layer.compute_output_shape(ids_shape)
    assert y.dtype == numpy.float32
    numpy.testing.assert_array_equal(to_numpy(y), table[ids])
    # float inputs (what a model passes on) are truncated to ids, as Keras casts them
    numpy.testing.assert_array_equal(to_numpy(layer(xp.asarray(ids + 0.75, dtype=xp.float32))), table[ids])


def test_table_gradient_adds_repeated_ids_and_matches_finite_differences(xp, rng):
    layer = layers.Embedding(7, 5, embeddings_initializer="random_normal", dtype="float64")
    ids = xp.asarray(numpy.array([[0, 3, 3, 6], [3, 1, 0, 3], [6, 6, 6, 2]]))
    dy = xp.asarray(rng.standard_normal((3, 4, 5)))
    layer(ids, training=True)
    assert layer.backward(dy) is None           # ids have no gradient
    grad = to_numpy(layer.embeddings.grad)
    one_hot = numpy.eye(7)[to_numpy(ids).reshape(-1)]
    numpy.testing.assert_allclose(grad, one_hot.T @ to_numpy(dy).reshape(-1, 5), rtol=1e-12, atol=1e-14)
    assert not grad[4].any() and not grad[5].any()   # rows no id picked
    original = layer.embeddings.value.copy()

    def objective(table):
        layer.embeddings.value[...] = table
        return (layer(ids) * dy).sum()
    assert_gradient(objective, original.copy(), layer.embeddings.grad, rng, what="embeddings")


def test_bad_ids_and_arguments_name_the_layer(xp):
    layer = layers.Embedding(5, 2, name="tokens")
    for bad, shown in (([[0, 5]], "from 0 to 5"), ([[-1, 2]], "from -1 to 2")):
        with pytest.raises(ValueError, match=rf"'tokens' has input_dim=5: ids must lie in \[0, 4\], got ids {shown}"):
            layer(xp.asarray(numpy.array(bad)))
    for kwargs, match in ((dict(input_dim=0, output_dim=2), "input_dim"), (dict(input_dim=3, output_dim=-1),
                                                                          "output_dim")):
        with pytest.raises(ValueError, match=match):
            layers.Embedding(**kwargs)


def test_weights_argument_and_config_round_trip(rng):
    table = rng.standard_normal((4, 3)).astype("float32")
    layer = layers.Embedding(4, 3, weights=[table], embeddings_regularizer="l2", input_length=6)
    numpy.testing.assert_array_equal(layer(numpy.array([[3, 0]]))[0], table[[3, 0]])
    again = layers.Embedding.from_config(layer.get_config())
    assert (again.input_dim, again.output_dim, again.mask_zero) == (4, 3, False)
    assert type(again.embeddings_regularizer).__name__ == "L2"


def test_padded_sequences_through_embedding_and_lstm_learn_a_token_rule(xp):
    # Label: does token 1 occur in the (left-padded) sequence? Needs the order-free memory of an LSTM.
    rng = numpy.random.default_rng(0)
    sequences = [list(rng.integers(2, 9, rng.integers(1, 9))) for _ in range(400)]
    labels = numpy.array([i % 2 for i in range(400)])
    for seq, label in zip(sequences, labels):
        if label:
            seq[rng.integers(0, len(seq))] = 1
    x = gpu_dl.utils.pad_sequences(sequences, maxlen=8)
    gpu_dl.utils.set_random_seed(1)
    model = gpu_dl.Sequential([layers.Input((8,)), layers.Embedding(9, 8), layers.LSTM(8),
                               layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x[:300], labels[:300], epochs=15, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x[300:], labels[300:], verbose=0)
    assert accuracy >= 0.95
