"""Masks through custom layers and custom layers of several tensor arguments against Keras 3 itself (where Keras is
installed), with the classes of Keras's guides "Understanding masking & padding" and "Training & evaluation with
the built-in methods" written once for both libraries (tests/custom_mask_classes.py): the same outputs for the same
weights (a padded sequence giving what the unpadded one gives in both), the same masks on symbolic tensors and from
compute_mask, and the same losses and weights after training steps."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402

import custom_mask_classes as classes  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

PADDED = numpy.array([[5, 6, 0, 0], [7, 3, 9, 0], [4, 0, 0, 0]])


def _numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return to_numpy(value) if not isinstance(value, numpy.ndarray) else value


def _sequential(lib, middle):
    return lib.Sequential([lib.Input((None,), dtype="int32"), lib.layers.Embedding(20, 4, mask_zero=True),
                           middle(lib), lib.layers.LSTM(3), lib.layers.Dense(2, activation="softmax")])


def _functional(lib, middle):
    ids = lib.Input((None,), dtype="int32")
    x = middle(lib)(lib.layers.Embedding(20, 4, mask_zero=True)(ids))
    return lib.Model(ids, lib.layers.Dense(2, activation="softmax")(lib.layers.LSTM(3)(x)))


def _subclassed(lib, middle=None):
    model = classes.padded_classifier(lib)()
    model(PADDED)           # built by a first call, as in Keras
    return model


MIDDLES = {"doubler": lambda lib: classes.doubler(lib)(), "projected": lambda lib: classes.projected(lib)(4),
           "masked_scale": lambda lib: classes.masked_scale(lib)()}
CASES = [(wrap, name) for wrap in (_sequential, _functional) for name in MIDDLES] + [(_subclassed, None)]


def _same_weights(ours, theirs, rng):
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)


def _padded_ids(rng, batch):
    ids = rng.integers(1, 20, (batch, 6))
    ids[rng.random((batch, 6)) < 0.35] = 0
    return ids


@pytest.mark.parametrize("wrap, name", CASES, ids=[f"{w.__name__}-{n}" for w, n in CASES])
def test_outputs_and_training_through_a_custom_layer_as_keras(wrap, name):
    rng = numpy.random.default_rng(4)
    ours, theirs = wrap(gpu_dl, MIDDLES.get(name)), wrap(keras, MIDDLES.get(name))
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    _same_weights(ours, theirs, rng)
    mine, keras_out = ours.predict(PADDED, verbose=0), theirs.predict(PADDED, verbose=0)
    numpy.testing.assert_allclose(mine, keras_out, rtol=1e-4, atol=1e-5)
    if name != "masked_scale":          # the mask reaches the LSTM: the padding changes nothing, in both
        for row, ids in enumerate(PADDED):
            kept = ids[ids != 0][None]
            numpy.testing.assert_allclose(ours.predict(kept, verbose=0)[0], mine[row], rtol=1e-5, atol=1e-6)
            numpy.testing.assert_allclose(theirs.predict(kept, verbose=0)[0], keras_out[row], rtol=1e-5, atol=1e-6)
    assert_training_steps_match(keras, ours, theirs, rng, None, classes=2, batch=8, inputs=_padded_ids)


def test_the_guides_temporal_softmax_as_keras():
    def model(lib):
        ids = lib.Input(shape=(None,), dtype="int32")
        x = lib.layers.Embedding(input_dim=10, output_dim=32, mask_zero=True)(ids)
        x = lib.layers.Dense(1)(x)
        return lib.Model(ids, classes.temporal_softmax(lib)()(x))
    ours, theirs = model(gpu_dl), model(keras)
    ours.set_weights(theirs.get_weights())
    data = numpy.random.default_rng(0).integers(0, 10, size=(32, 100))
    with numpy.errstate(invalid="ignore"):
        numpy.testing.assert_allclose(_numpy(ours(data)), _numpy(theirs(data)), rtol=1e-6)


def test_a_softmax_over_the_steps_that_count_trains_as_keras():
    def model(lib):
        ids = lib.Input(shape=(None,), dtype="int32")
        x = lib.layers.Embedding(20, 4, mask_zero=True)(ids)
        weights = classes.softmax_over_time(lib)()(lib.layers.Dense(1)(x))
        pooled = lib.ops.sum(weights * x, axis=1)
        return lib.Model(ids, lib.layers.Dense(3, activation="softmax")(pooled))
    rng = numpy.random.default_rng(6)
    ours, theirs = model(gpu_dl), model(keras)
    _same_weights(ours, theirs, rng)
    numpy.testing.assert_allclose(ours.predict(PADDED, verbose=0), theirs.predict(PADDED, verbose=0), rtol=1e-5,
                                  atol=1e-6)
    assert_training_steps_match(keras, ours, theirs, rng, None, classes=3, batch=8, inputs=_padded_ids)


def _symbolic_masks(lib):
    """``_keras_mask`` (None, or its shape and dtype) of the outputs of the guide's layers on an embedding."""
    ids = lib.Input((6,), dtype="int32")
    x = lib.layers.Embedding(20, 4, mask_zero=True)(ids)
    first, second = classes.temporal_split(lib)()(x)
    outputs = {"embedding": x, "dense": lib.layers.Dense(3)(x), "doubler": classes.doubler(lib)()(x),
               "projected": classes.projected(lib)(3)(x), "split_first": first, "split_second": second,
               "drop_first_step": classes.drop_first_step(lib)()(x),
               "temporal_softmax": classes.temporal_softmax(lib)()(lib.layers.Dense(1)(x)),
               "lstm_sequences": lib.layers.LSTM(2, return_sequences=True)(x), "lstm": lib.layers.LSTM(2)(x),
               "operation": x * 2.0, "custom_embedding": classes.custom_embedding(lib)(20, 3, mask_zero=True)(ids)}
    found = {}
    for key, tensor in outputs.items():
        mask = getattr(tensor, "_keras_mask", None)
        found[key] = None if mask is None else (tuple(mask.shape), str(mask.dtype))
    return found


def test_symbolic_masks_as_keras():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # Keras warns where a layer drops a mask
        theirs = _symbolic_masks(keras)
    assert theirs["embedding"] == ((None, 6), "bool") and theirs["lstm"] is None      # the check checks something
    assert _symbolic_masks(gpu_dl) == theirs


def test_compute_mask_as_keras():
    rng = numpy.random.default_rng(7)
    for make in (lambda lib: lib.layers.Embedding(20, 3, mask_zero=True),
                 lambda lib: classes.custom_embedding(lib)(20, 3, mask_zero=True)):
        ours, theirs = make(gpu_dl), make(keras)
        numpy.testing.assert_array_equal(_numpy(ours.compute_mask(PADDED)), _numpy(theirs.compute_mask(PADDED)))
    x = rng.standard_normal((3, 4, 2)).astype("float32")
    x[0, 2:] = 0.0
    numpy.testing.assert_array_equal(_numpy(gpu_dl.layers.Masking().compute_mask(x)),
                                     _numpy(keras.layers.Masking().compute_mask(x)))
    mask = PADDED != 0
    ours = gpu_dl.layers.Dense(2).compute_mask(x, mask)
    theirs = keras.layers.Dense(2).compute_mask(x, mask)
    numpy.testing.assert_array_equal(_numpy(ours), _numpy(theirs))
    ours = classes.temporal_split(gpu_dl)().compute_mask(x, mask)
    theirs = classes.temporal_split(keras)().compute_mask(x, mask)
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        numpy.testing.assert_array_equal(_numpy(a), _numpy(b))


def test_a_mask_given_to_a_sublayer_as_keras():
    ours, theirs = classes.masked_encoder(gpu_dl)(), classes.masked_encoder(keras)()
    ours(PADDED)
    theirs(PADDED)
    _same_weights(ours, theirs, numpy.random.default_rng(8))
    mine, keras_out = _numpy(ours(PADDED)), _numpy(theirs(PADDED))
    numpy.testing.assert_allclose(mine, keras_out, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(mine[0], _numpy(theirs(PADDED[:1, :2]))[0], rtol=1e-5, atol=1e-6)


def test_the_guides_endpoint_layer_trains_as_keras():
    rng = numpy.random.default_rng(9)
    ours, theirs = classes.endpoint_model(gpu_dl), classes.endpoint_model(keras)
    _same_weights(ours, theirs, rng)
    ours.compile(optimizer="adam")
    theirs.compile(optimizer="adam")
    for step in range(4):
        data = {"inputs": rng.random((6, 3)).astype("float32"), "targets": rng.random((6, 10)).astype("float32")}
        assert ours.train_on_batch(data) == pytest.approx(float(theirs.train_on_batch(data)), rel=2e-5), step
        numpy.testing.assert_allclose(ours.predict(data, verbose=0), theirs.predict(data, verbose=0), rtol=1e-5,
                                      atol=1e-6)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_the_endpoint_layer_on_arrays_as_keras():
    rng = numpy.random.default_rng(10)
    targets, logits = rng.random((4, 10)).astype("float32"), rng.standard_normal((4, 10)).astype("float32")
    weights = rng.random((4, 10)).astype("float32")
    ours, theirs = classes.logistic_endpoint(gpu_dl)(), classes.logistic_endpoint(keras)()
    for kwargs in ({}, {"sample_weights": weights}):
        numpy.testing.assert_allclose(_numpy(ours(targets, logits, **kwargs)),
                                      _numpy(theirs(targets, logits, **kwargs)), rtol=1e-6)
        assert float(_numpy(ours.losses[0])) == pytest.approx(float(_numpy(theirs.losses[0])), rel=1e-6)


def test_files_of_several_arguments_and_given_masks_load_in_the_other_library(tmp_path):
    rng = numpy.random.default_rng(11)
    data = {"inputs": rng.random((4, 3)).astype("float32"), "targets": rng.random((4, 10)).astype("float32")}
    ours = classes.endpoint_model(gpu_dl)
    ours.compile(optimizer="adam")
    ours.save(tmp_path / "endpoint.keras")
    theirs = keras.saving.load_model(tmp_path / "endpoint.keras",
                                     custom_objects={"LogisticEndpoint": classes.logistic_endpoint(keras)})
    numpy.testing.assert_allclose(_numpy(theirs.predict(data, verbose=0)), ours.predict(data, verbose=0), rtol=1e-5)

    def masked(lib):
        ids = lib.Input((None,), dtype="int32")
        x = lib.layers.Embedding(20, 4)(ids)        # no mask of its own: the LSTM is given one
        return lib.Model(ids, lib.layers.LSTM(3)(x, mask=lib.ops.not_equal(ids, 0)))
    for lib, loader in ((gpu_dl, keras), (keras, gpu_dl)):
        model = masked(lib)
        model.save(tmp_path / f"{lib.__name__}.keras")
        back = loader.saving.load_model(tmp_path / f"{lib.__name__}.keras")
        numpy.testing.assert_allclose(_numpy(back.predict(PADDED, verbose=0)), _numpy(model.predict(PADDED, verbose=0)),
                                      rtol=1e-5, atol=1e-6)
        numpy.testing.assert_allclose(_numpy(back.predict(PADDED[:1, :2], verbose=0))[0],
                                      _numpy(back.predict(PADDED, verbose=0))[0], rtol=1e-5, atol=1e-6)
