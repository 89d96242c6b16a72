"""Keras's guide "Understanding masking & padding" run by gpu_dl alone (tests/guide_masking_programs.py), against
NumPy expectations: padding, the masks of Embedding, Masking and the guide's layers, masks through functional
models, recurrent layers that skip padded steps, and the masked classifier learning at small scale."""
import numpy
import pytest

import gpu_dl
from gpu_dl.backend import to_numpy

import guide_masking_programs as guide


def test_padding_and_the_layers_masks(xp):
    padded = guide.padded_inputs(gpu_dl)
    numpy.testing.assert_array_equal(padded, [[711, 632, 71, 0, 0, 0], [73, 8, 3215, 55, 927, 0],
                                              [83, 91, 1, 645, 1253, 927]])
    numpy.testing.assert_array_equal(gpu_dl.utils.pad_sequences(guide.RAW_INPUTS)[0], [0, 0, 0, 711, 632, 71])
    expected = padded != 0
    embedding = gpu_dl.layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True)
    out = embedding(xp.asarray(padded))
    assert out.shape == (3, 6, 16)
    numpy.testing.assert_array_equal(to_numpy(guide.eager_mask(gpu_dl, embedding, xp.asarray(padded), out)), expected)
    unmasked = guide.unmasked_embedding(gpu_dl, xp.asarray(padded))
    masking = gpu_dl.layers.Masking()
    numpy.testing.assert_array_equal(to_numpy(masking(unmasked)), numpy.repeat(padded[..., None], 10, -1))
    mask = masking.compute_mask(unmasked)
    numpy.testing.assert_array_equal(to_numpy(mask), expected)

    split = guide.temporal_split_class(gpu_dl)()
    first, second = split(unmasked)
    numpy.testing.assert_array_equal(to_numpy(second), to_numpy(unmasked)[:, 3:])
    halves = split.compute_mask(unmasked, mask)
    numpy.testing.assert_array_equal(to_numpy(halves[0]), expected[:, :3])
    numpy.testing.assert_array_equal(to_numpy(halves[1]), expected[:, 3:])

    custom = guide.custom_embedding_class(gpu_dl)(10, 32, mask_zero=True)
    ids = padded % 10
    numpy.testing.assert_array_equal(to_numpy(custom(xp.asarray(ids))), to_numpy(custom.embeddings)[ids])
    numpy.testing.assert_array_equal(to_numpy(custom.compute_mask(xp.asarray(ids))), ids != 0)


def test_masks_reach_the_recurrent_layers_in_models(xp):
    found, model = guide.activation_model(gpu_dl)
    assert found is not None and found.shape == (None, None)
    _, masks = guide.time_distributed_sequences(gpu_dl)
    assert all(m is not None for m in masks)
    ids = guide.padded_ids(numpy.random.default_rng(0), 6)
    longer = numpy.pad(ids, [(0, 0), (0, 5)])
    for model in (model, guide.embedding_lstm_sequential(gpu_dl), guide.embedding_lstm_functional(gpu_dl),
                  guide.masked_classifier(gpu_dl, "GRU", bidirectional=True)):
        # padding more steps changes nothing: the padded steps are skipped
        numpy.testing.assert_allclose(to_numpy(model.predict(longer, verbose=0)),
                                      to_numpy(model.predict(ids, verbose=0)), rtol=1e-5, atol=1e-6)

    layer = guide.my_layer_class(gpu_dl)()
    x = xp.asarray(ids)
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(longer))), to_numpy(layer(x)), rtol=1e-5, atol=1e-6)
    # the LSTM inside sees the mask: a step of id 0 in the middle is skipped too
    holes = ids.copy()
    holes[:, 0] = 0
    assert not numpy.allclose(to_numpy(layer(xp.asarray(holes))), to_numpy(layer(x)))


def test_the_temporal_softmax_model(xp):
    model = guide.temporal_softmax_model(gpu_dl)
    ids = guide.padded_ids(numpy.random.default_rng(1), 4, vocabulary=10)
    got = to_numpy(model.predict(ids, verbose=0))
    scores = to_numpy(model.layers[2](model.layers[1](xp.asarray(ids))))
    mask = (ids != 0)[..., None]
    numpy.testing.assert_allclose(got, numpy.exp(scores) * mask / (scores * mask).sum(1, keepdims=True), rtol=1e-5)
    with pytest.raises(TypeError, match="`training` must be True, False or None"):
        model(ids, numpy.zeros((4, 7, 1)))


@pytest.mark.parametrize("rnn", ["LSTM", "GRU"])
def test_the_masked_classifier_learns(xp, rnn):
    """Labels set by the first id of each padded sequence: a few epochs of Adam bring the loss down."""
    rng = numpy.random.default_rng(2)
    ids = guide.padded_ids(rng, 64)
    labels = ids[:, 0] % 3
    model = guide.masked_classifier(gpu_dl, rnn)
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(ids, labels, epochs=15, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.8


def test_the_sequence_tagger_leaves_padded_steps_out_of_the_loss(xp):
    model = guide.sequence_tagger(gpu_dl)
    assert model.outputs[0]._keras_mask is not None
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = numpy.random.default_rng(3)
    x = guide.padded_steps(rng, 5)
    y = rng.integers(0, 3, (5, 6))
    padded = (x == 0).all(-1)
    assert padded.any() and not padded.all()
    other = numpy.where(padded, (y + 1) % 3, y)
    loss = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, other, verbose=0) == pytest.approx(loss, rel=1e-6)
    # the loss is the mean cross-entropy over the steps that count
    p = to_numpy(model.predict(x, verbose=0))
    picked = numpy.take_along_axis(p, y[..., None], -1)[..., 0]
    assert loss == pytest.approx(-numpy.log(picked[~padded]).mean(), rel=1e-5)
