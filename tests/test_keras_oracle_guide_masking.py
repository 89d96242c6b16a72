"""Keras's guide "Understanding masking & padding" against Keras itself (tests/guide_masking_programs.py): the same
padded ids, masks from Embedding, Masking and the guide's own layers, mask propagation through functional models
(MyActivation, TimeDistributed, Bidirectional), the same outputs on copied weights, and the same training of an
Embedding(mask_zero=True) and LSTM/GRU classifier whose padded steps are skipped."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import guide_masking_programs as guide  # noqa: E402
from keras_steps import assert_training_steps_match, summary_rows  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def as_array(x):
    return numpy.asarray(keras.ops.convert_to_numpy(x))


def _pair(program, build_shape=None, **kwargs):
    """``program`` in both libraries, Keras's initial weights copied into gpu_dl's model."""
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()
    ours, theirs = program(gpu_dl, **kwargs), program(keras, **kwargs)
    for model in (ours, theirs):
        if build_shape is not None and not model.built:
            model.build(build_shape)
    ours.set_weights([as_array(w) for w in theirs.get_weights()])
    return ours, theirs


def test_padding_and_the_masks_embedding_and_masking_make():
    ours, theirs = guide.padded_inputs(gpu_dl), guide.padded_inputs(keras)
    assert ours.dtype == theirs.dtype == numpy.int32
    numpy.testing.assert_array_equal(ours, theirs)
    numpy.testing.assert_array_equal(ours, [[711, 632, 71, 0, 0, 0], [73, 8, 3215, 55, 927, 0],
                                            [83, 91, 1, 645, 1253, 927]])
    expected = ours != 0
    for lib in (gpu_dl, keras):
        embedding = lib.layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True)
        out = embedding(ours)
        assert tuple(out.shape) == (3, 6, 16)
        mask = as_array(guide.eager_mask(lib, embedding, ours, out))
        assert mask.dtype == bool
        numpy.testing.assert_array_equal(mask, expected)
        # the mask is also what compute_mask gives
        numpy.testing.assert_array_equal(as_array(embedding.compute_mask(ours)), expected)

        masking = lib.layers.Masking()
        unmasked = guide.unmasked_embedding(lib, ours)
        masked = masking(unmasked)
        assert tuple(masked.shape) == (3, 6, 10)
        numpy.testing.assert_array_equal(as_array(masked), numpy.repeat(ours[..., None], 10, -1))
        numpy.testing.assert_array_equal(as_array(guide.eager_mask(lib, masking, unmasked, masked)), expected)


def test_the_temporal_split_splits_the_mask():
    padded = guide.padded_inputs(gpu_dl)
    halves = []
    for lib in (gpu_dl, keras):
        unmasked = guide.unmasked_embedding(lib, padded)
        mask = lib.layers.Masking().compute_mask(unmasked)
        split = guide.temporal_split_class(lib)()
        first, second = split(unmasked)
        assert tuple(first.shape) == tuple(second.shape) == (3, 3, 10)
        if lib is keras:
            masked = lib.layers.Masking()(unmasked)
            first, second = split(masked)
            masks = [first._keras_mask, second._keras_mask]
        else:
            masks = split.compute_mask(unmasked, mask)
        halves.append([as_array(m) for m in masks])
        assert split.compute_mask(unmasked, None) is None
    expected = padded != 0
    for ours, theirs, part in zip(*halves, (expected[:, :3], expected[:, 3:])):
        numpy.testing.assert_array_equal(ours, part)
        numpy.testing.assert_array_equal(theirs, part)

    # in a functional model the halves carry their masks into an LSTM each
    for lib in (gpu_dl, keras):
        inputs = lib.Input((6, 10))
        first, second = guide.temporal_split_class(lib)()(lib.layers.Masking()(inputs))
        assert first._keras_mask is not None and second._keras_mask is not None
        assert tuple(first._keras_mask.shape) == (None, 3)


def test_the_custom_embedding_makes_its_mask():
    x = (numpy.random.default_rng(0).random((3, 10)) * 9).astype("int32")
    for lib in (gpu_dl, keras):
        layer = guide.custom_embedding_class(lib)(10, 32, mask_zero=True)
        y = layer(x)
        assert tuple(y.shape) == (3, 10, 32)
        numpy.testing.assert_array_equal(as_array(layer.compute_mask(x)), x != 0)
        numpy.testing.assert_array_equal(as_array(guide.eager_mask(lib, layer, x, y)), x != 0)
        assert guide.custom_embedding_class(lib)(10, 32).compute_mask(x) is None
        numpy.testing.assert_array_equal(as_array(y), as_array(layer.embeddings)[x])
    # a mask made by the user's compute_mask reaches an LSTM in a functional model, as in Keras
    results, weights = [], None
    for lib in (keras, gpu_dl):
        lib.backend.clear_session()
        inputs = lib.Input((None,), dtype="int32")
        h = guide.custom_embedding_class(lib)(10, 4, mask_zero=True)(inputs)
        assert h._keras_mask is not None
        model = lib.Model(inputs, lib.layers.LSTM(3)(h))
        if weights is not None:
            model.set_weights(weights)
        weights = [as_array(w) for w in model.get_weights()]
        results.append(as_array(model.predict(x, verbose=0)))
    numpy.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("program", [guide.embedding_lstm_sequential, guide.embedding_lstm_functional])
def test_the_lstm_skips_the_padded_steps_in_both_apis(program, monkeypatch):
    ours, theirs = _pair(program, build_shape=(None, 7))
    (ours_rows, *ours_totals), (theirs_rows, *theirs_totals) = \
        summary_rows(ours, monkeypatch), summary_rows(theirs, monkeypatch)
    if program is guide.embedding_lstm_functional:
        # the functional summary lists the NotEqual operation Embedding's compute_mask recorded on the symbolic
        # input, and so a "Connected to" column (the LSTM takes it), in both libraries
        assert [row[0] for row in theirs_rows].count("not_equal (NotEqual)") == 1
        assert theirs_rows[-1][3] == "embedding[0][0], not_equal[0][0]"
    assert (ours_rows, ours_totals) == (theirs_rows, theirs_totals)
    ids = guide.padded_ids(numpy.random.default_rng(1), 6)
    expected = as_array(theirs.predict(ids, verbose=0))
    got = ours.predict(ids, verbose=0)
    assert got.shape == expected.shape == (6, 32)
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the padded steps count for nothing: padding more steps changes no output
    longer = numpy.pad(ids, [(0, 0), (0, 4)])
    numpy.testing.assert_allclose(ours.predict(longer, verbose=0), got, rtol=1e-5, atol=1e-6)


def test_my_layer_passes_the_embeddings_mask_to_its_lstm():
    x = (numpy.random.default_rng(2).random((32, 10)) * 100).astype("int32")
    x[:, 7:] = 0
    theirs = guide.my_layer_class(keras)()
    expected = as_array(theirs(x))
    ours = guide.my_layer_class(gpu_dl)()
    ours(x[:1])
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights([as_array(w) for w in theirs.get_weights()])
    got = ours(x)
    assert got.shape == (32, 32)
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the last three steps are padding: without them the outputs are the same
    numpy.testing.assert_allclose(ours(x[:, :7]), got, rtol=1e-5, atol=1e-6)


def test_my_activation_passes_the_mask_to_the_lstm():
    ours, theirs = _pair(lambda lib: guide.activation_model(lib)[1])
    for lib in (gpu_dl, keras):
        found, _ = guide.activation_model(lib)
        assert found is not None and tuple(found.shape) == (None, None) and found.dtype == "bool"
    ids = guide.padded_ids(numpy.random.default_rng(3), 5)
    numpy.testing.assert_allclose(ours.predict(ids, verbose=0), as_array(theirs.predict(ids, verbose=0)),
                                  rtol=1e-5, atol=1e-6)


def test_the_temporal_softmax_consumes_the_mask():
    ours, theirs = _pair(guide.temporal_softmax_model)
    ids = guide.padded_ids(numpy.random.default_rng(4), 8, vocabulary=10)
    expected = as_array(theirs.predict(ids, verbose=0))
    got = ours.predict(ids, verbose=0)
    assert got.shape == expected.shape == (8, 7, 1)
    numpy.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # what the guide's layer computes: exp(x) over the masked sum of x (the guide sums x, not exp(x))
    scores = ours.layers[2](ours.layers[1](ids))
    mask = (ids != 0)[..., None]
    numpy.testing.assert_allclose(got, numpy.exp(scores) * mask / (scores * mask).sum(1, keepdims=True), rtol=1e-5)
    # the guide's last line passes an array as the model's second argument: `training` in both libraries
    x = numpy.random.default_rng(5).random((8, 7, 1))
    with pytest.raises(TypeError, match="training"):
        theirs(ids, x)
    with pytest.raises(TypeError, match="`training` must be True, False or None"):
        ours(ids, x)


@pytest.mark.parametrize("rnn,bidirectional", [("LSTM", False), ("GRU", False), ("LSTM", True), ("GRU", True)])
def test_the_masked_classifier_trains_as_keras(rnn, bidirectional):
    ours, theirs = _pair(guide.masked_classifier, rnn=rnn, bidirectional=bidirectional)
    rng = numpy.random.default_rng(6)
    ids = guide.padded_ids(rng, 5)
    numpy.testing.assert_allclose(ours.predict(ids, verbose=0), as_array(theirs.predict(ids, verbose=0)),
                                  rtol=1e-5, atol=1e-6)
    assert_training_steps_match(keras, ours, theirs, rng, (7,), classes=3, batch=5,
                                inputs=lambda r, batch: guide.padded_ids(r, batch))
    # after training, the padded steps still count for nothing
    longer = numpy.pad(ids, [(0, 0), (0, 3)])
    numpy.testing.assert_allclose(ours.predict(longer, verbose=0), ours.predict(ids, verbose=0), rtol=1e-5,
                                  atol=1e-6)


def test_the_mask_passes_through_time_distributed():
    for lib in (gpu_dl, keras):
        _, masks = guide.time_distributed_sequences(lib)
        assert all(m is not None and tuple(m.shape) == (None, None) for m in masks)
    ours, theirs = _pair(lambda lib: guide.time_distributed_sequences(lib)[0])
    x = numpy.random.default_rng(7).standard_normal((3, 5, 4)).astype("float32")
    x[0, 3:] = 0
    x[1, 1] = 0
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), as_array(theirs.predict(x, verbose=0)), rtol=1e-5,
                                  atol=1e-6)


@pytest.mark.parametrize("make", [lambda lib: lib.layers.PReLU(lib.initializers.Constant(0.25), shared_axes=[1]),
                                  lambda lib: lib.layers.Rescaling(2.0, offset=-1.0)], ids=["PReLU", "Rescaling"])
def test_elementwise_layers_pass_the_mask_on(make):
    """PReLU and Rescaling support masking in Keras: between an Embedding(mask_zero=True) and an LSTM they pass the
    mask on, and the LSTM skips the padded steps."""
    results, weights = [], None
    for lib in (keras, gpu_dl):
        lib.backend.clear_session()
        inputs = lib.Input((None,), dtype="int32")
        x = make(lib)(lib.layers.Embedding(input_dim=50, output_dim=4, mask_zero=True)(inputs))
        assert x._keras_mask is not None
        model = lib.Model(inputs, lib.layers.LSTM(3)(x))
        if weights is not None:         # Keras's initial weights in gpu_dl's model
            model.set_weights(weights)
        weights = [as_array(w) for w in model.get_weights()]
        results.append(as_array(model.predict(guide.padded_ids(numpy.random.default_rng(8), 4), verbose=0)))
    numpy.testing.assert_allclose(results[1], results[0], rtol=1e-5, atol=1e-6)


def test_the_sequence_tagger_masks_its_outputs_and_loss_as_keras():
    """The mask passes through Bidirectional (returning sequences) and TimeDistributed to the model's output, where
    Keras leaves the padded steps out of the loss; training follows Keras's."""
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()
        assert guide.sequence_tagger(lib).outputs[0]._keras_mask is not None
    ours, theirs = _pair(guide.sequence_tagger)
    rng = numpy.random.default_rng(9)
    x = guide.padded_steps(rng, 4)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), as_array(theirs.predict(x, verbose=0)), rtol=1e-5,
                                  atol=1e-6)
    assert_training_steps_match(keras, ours, theirs, rng, None, classes=3, batch=4,
                                inputs=lambda r, batch: guide.padded_steps(r, batch),
                                targets=lambda r, batch: r.integers(0, 3, (batch, 6)))
