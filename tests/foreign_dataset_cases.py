"""Checks shared by the tests of a tf.data.Dataset given to fit/evaluate/predict: the same bodies run on real
TensorFlow data sets (test_tf_dataset_inputs.py, where TensorFlow is installed) and on stand-ins with the classes'
module paths and protocol gpu_dl relies on (test_foreign_dataset_stand_ins.py, everywhere). The model and data
they train are those of the other data sets' tests too (a torch DataLoader, grain).

Each check takes ``make(parts, batch_size, cardinality="known")``: a data set of the batches of ``parts`` (a
tuple of arrays or of dicts of arrays, or one array) cut every ``batch_size`` samples along axis 0, whose
cardinality is its number of batches ("known"), unknown ("unknown", as after ``filter``), or infinite, the batches
repeated without end ("infinite", as ``repeat()``)."""
import os
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import layers


def arrays(n=23, seed=0):
    rng = numpy.random.default_rng(seed)
    return (rng.standard_normal((n, 4)).astype("float32"), rng.integers(0, 3, n),
            rng.uniform(0.5, 2.0, n).astype("float32"))


def classifier(seed=1):
    gpu_dl.utils.set_random_seed(seed)
    model = gpu_dl.Sequential([gpu_dl.Input((4,)), layers.Dense(6, activation="tanh"),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer=gpu_dl.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def quiet_fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`shuffle=True`")     # beside a data set it warns, as in Keras
        return model.fit(*args, verbose=0, **kwargs).history


def assert_same_weights(ours, expected):
    for a, b in zip(ours.get_weights(), expected.get_weights()):
        numpy.testing.assert_array_equal(a, b)


def trained_on_batches(batches):
    """A classifier trained by train_on_batch on ``batches`` of (x, y), in order."""
    model = classifier()
    for x, y in batches:
        model.train_on_batch(x, y)
    return model


def fit_evaluate_predict_equal_the_same_arrays(make, with_weights):
    x, y, sw = arrays()
    data = make((x, y, sw) if with_weights else (x, y), 5)
    ours, expected = classifier(), classifier()
    history = quiet_fit(ours, data, epochs=2)
    assert history == expected.fit(x, y, sample_weight=sw if with_weights else None, batch_size=5, epochs=2,
                                   shuffle=False, verbose=0).history
    assert_same_weights(ours, expected)
    assert ours.evaluate(data, verbose=0) == expected.evaluate(x, y, sample_weight=sw if with_weights else None,
                                                              batch_size=5, verbose=0)
    # predict reads x from batches (x, y, ...), of x alone and of (x,)
    for inputs in (data, make(x, 5), make((x,), 5)):
        numpy.testing.assert_array_equal(ours.predict(inputs, verbose=0),
                                         expected.predict(x, batch_size=5, verbose=0))


def endless_with_steps(make):
    """An infinite data set with steps_per_epoch: each epoch goes on where the last stopped."""
    x, y, _ = arrays()
    ours = classifier()
    quiet_fit(ours, make((x, y), 5, "infinite"), steps_per_epoch=3, epochs=2)
    cuts = [slice(0, 5), slice(5, 10), slice(10, 15), slice(15, 20), slice(20, 23), slice(0, 5)]
    assert_same_weights(ours, trained_on_batches([(x[c], y[c]) for c in cuts]))
    assert ours.evaluate(make((x, y), 5, "infinite"), steps=5, verbose=0) == \
        ours.evaluate(x, y, batch_size=5, verbose=0)
    numpy.testing.assert_array_equal(ours.predict(make(x, 5, "infinite"), steps=2, verbose=0),
                                     ours.predict(x[:10], batch_size=5, verbose=0))
    with pytest.raises(ValueError, match=r"infinite .*give `steps_per_epoch`"):
        quiet_fit(classifier(), make((x, y), 5, "infinite"))
    with pytest.raises(ValueError, match=r"infinite .*give `steps`"):
        classifier().evaluate(make((x, y), 5, "infinite"), verbose=0)


def ends_early(make):
    """A data set of 5 batches with steps_per_epoch=3: the second epoch ends with the pass (Keras's warning), the
    third starts a new one."""
    x, y, _ = arrays()
    ours = classifier()
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        history = quiet_fit(ours, make((x, y), 5), steps_per_epoch=3, epochs=3)
    assert len(history["loss"]) == 3
    cuts = [slice(0, 5), slice(5, 10), slice(10, 15), slice(15, 20), slice(20, 23), slice(0, 5), slice(5, 10),
            slice(10, 15)]
    assert_same_weights(ours, trained_on_batches([(x[c], y[c]) for c in cuts]))


class StepsSeen(gpu_dl.callbacks.Callback):
    """The progress bar's number of steps (``params["steps"]``) when training begins and at each epoch's end."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_begin(self, logs=None):
        self.seen.append(self.params["steps"])

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(self.params["steps"])


def cardinality_for_the_progress_bar(make):
    """A known cardinality is the epoch's steps from the start; an unknown one is learnt at the first epoch's
    end, and the pass ends with the data set (Keras's warning each time, as Keras gives it)."""
    x, y, _ = arrays()
    known, unknown = StepsSeen(), StepsSeen()
    quiet_fit(classifier(), make((x, y), 5), epochs=2, callbacks=[known])
    assert known.seen == [5, 5, 5]
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        history = quiet_fit(classifier(), make((x, y), 5, "unknown"), epochs=2, callbacks=[unknown])
    assert unknown.seen == [None, 5, 5]
    expected = classifier()
    assert history == expected.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0).history


def dicts_of_inputs(make):
    """Batches ({"a": ..., "b": ...}, y) for a model of two named inputs: as the same dict of arrays."""
    rng = numpy.random.default_rng(3)
    a, b, y = rng.standard_normal((13, 2)).astype("float32"), rng.standard_normal((13, 3)).astype("float32"), \
        rng.standard_normal((13, 1)).astype("float32")

    def model():
        gpu_dl.utils.set_random_seed(2)
        ia, ib = gpu_dl.Input((2,), name="a"), gpu_dl.Input((3,), name="b")
        out = layers.Dense(1)(layers.Concatenate()([ia, ib]))
        m = gpu_dl.Model({"a": ia, "b": ib}, out)
        m.compile(optimizer="sgd", loss="mse")
        return m
    ours, expected = model(), model()
    data = make(({"a": a, "b": b}, y), 4)
    assert quiet_fit(ours, data, epochs=2) == expected.fit({"a": a, "b": b}, y, batch_size=4, epochs=2,
                                                           shuffle=False, verbose=0).history
    assert_same_weights(ours, expected)
    numpy.testing.assert_array_equal(ours.predict(make({"a": a, "b": b}, 4), verbose=0),
                                     expected.predict({"a": a, "b": b}, batch_size=4, verbose=0))


def tuples_and_dicts_of_targets(make):
    """Batches (x, {"p": ..., "q": ...}) and (x, (yp, yq)) for a model of two named outputs: as the same arrays."""
    rng = numpy.random.default_rng(4)
    x, yp, yq = rng.standard_normal((13, 3)).astype("float32"), rng.standard_normal((13, 2)).astype("float32"), \
        rng.integers(0, 2, 13)

    def model():
        gpu_dl.utils.set_random_seed(3)
        inputs = gpu_dl.Input((3,))
        hidden = layers.Dense(4, activation="relu")(inputs)
        m = gpu_dl.Model(inputs, {"p": layers.Dense(2, name="p")(hidden),
                                  "q": layers.Dense(2, activation="softmax", name="q")(hidden)})
        m.compile(optimizer="sgd", loss={"p": "mse", "q": "sparse_categorical_crossentropy"})
        return m
    for targets in ({"p": yp, "q": yq}, (yp, yq)):
        ours, expected = model(), model()
        assert quiet_fit(ours, make((x, targets), 4), epochs=2) == expected.fit(
            x, {"p": yp, "q": yq}, batch_size=4, epochs=2, shuffle=False, verbose=0).history
        assert_same_weights(ours, expected)


def validation_data_and_steps(make):
    """validation_data as a data set: validation_steps batches from its start at each validation, as the same
    arrays give."""
    x, y, _ = arrays()
    xv, yv, _ = arrays(11, seed=5)
    ours, expected = classifier(), classifier()
    history = quiet_fit(ours, make((x, y), 5), epochs=2, validation_data=make((xv, yv), 3), validation_steps=2)
    assert history == expected.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv),
                                   validation_batch_size=3, validation_steps=2).history
    # an infinite one too: each validation starts from its first batch
    ours, expected = classifier(), classifier()
    history = quiet_fit(ours, make((x, y), 5), epochs=2, validation_data=make((xv, yv), 3, "infinite"),
                        validation_steps=2)
    assert history == expected.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv),
                                   validation_batch_size=3, validation_steps=2).history
    with pytest.raises(ValueError, match=r"infinite .*give `validation_steps`"):
        quiet_fit(classifier(), make((x, y), 5), validation_data=make((xv, yv), 3, "infinite"))


def class_weight(make):
    x, y, _ = arrays()
    weights = {0: 0.5, 1: 2.0, 2: 1.0}
    ours, expected = classifier(), classifier()
    assert quiet_fit(ours, make((x, y), 5), class_weight=weights) == \
        expected.fit(x, y, batch_size=5, class_weight=weights, shuffle=False, verbose=0).history
    assert_same_weights(ours, expected)


def refusals(make):
    """What Keras refuses beside a data set, and data sets with nothing to run on."""
    x, y, sw = arrays()
    data = make((x, y), 5)
    with pytest.raises(ValueError, match="`y` should not be passed"):
        classifier().fit(data, y, verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` should not be passed"):
        classifier().evaluate(data, sample_weight=sw, verbose=0)
    with pytest.raises(ValueError, match="`validation_split` is only supported for arrays"):
        quiet_fit(classifier(), data, validation_split=0.2)
    with pytest.raises(ValueError, match="of 0 batches"):
        quiet_fit(classifier(), make((x[:0], y[:0]), 5))
    with pytest.raises(ValueError, match="yields no batches"):
        quiet_fit(classifier(), make((x[:0], y[:0]), 5, "unknown"))
    with pytest.raises(ValueError, match=r"(?i)batch 0 of `x`.*holds no targets"):
        quiet_fit(classifier(), make(x, 5))
    with pytest.warns(UserWarning, match="`batch_size=5` is ignored"):
        classifier().evaluate(data, batch_size=5, verbose=0)


def unbatched_data_sets_get_a_hint(make, make_unbatched, kind):
    """A data set of single samples (no ``.batch()``): fit, evaluate and predict refuse it with the model's shape
    error and a hint to batch it; a batched data set of the wrong shape gets the error alone, and batching the
    same samples trains as the arrays."""
    x, y, _ = arrays()
    hint = (rf"(?s)Batch 0 of `x`: .*expects `x` of shape \(None, 4\).*got \(4,\).* The {kind} looks unbatched: "
            r"its elements have the shape of one sample, without the batch axis\. Batch it before passing it, "
            r"e\.g\. `dataset\.batch\(32\)`\.")
    for run in (lambda m: quiet_fit(m, make_unbatched((x, y))),
                lambda m: m.evaluate(make_unbatched((x, y)), verbose=0),
                lambda m: m.predict(make_unbatched(x), verbose=0)):
        with pytest.raises(ValueError, match=hint):
            run(classifier())
    rng = numpy.random.default_rng(5)
    a, b = rng.standard_normal((6, 2)).astype("float32"), rng.standard_normal((6, 3)).astype("float32")
    ia, ib = gpu_dl.Input((2,), name="a"), gpu_dl.Input((3,), name="b")
    two = gpu_dl.Model({"a": ia, "b": ib}, layers.Dense(1)(layers.Concatenate()([ia, ib])))
    with pytest.raises(ValueError, match=f"The {kind} looks unbatched"):
        two.predict(make_unbatched({"a": a, "b": b}), verbose=0)
    with pytest.raises(ValueError, match=r"got \(5, 3\)") as refused:
        classifier().predict(make(x[:, :3], 5), verbose=0)      # batched, of another feature size: no hint
    assert "unbatched" not in str(refused.value)
    numpy.testing.assert_array_equal(classifier().predict(make(x, 32), verbose=0),
                                     classifier().predict(x, batch_size=32, verbose=0))

def keras_pair():
    """gpu_dl's classifier and Keras 3's same model (torch backend) with the same weights, both compiled alike;
    skips where Keras is missing or runs on another backend."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("the oracle runs on Keras's torch backend")
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh"),
                               keras.layers.Dense(3, activation="softmax")])
    ours = classifier()
    ours.set_weights(theirs.get_weights())
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    return ours, theirs


def assert_both_fit_alike(ours, theirs, data, **kwargs):
    """Fit gpu_dl's ``ours`` and Keras's ``theirs`` on ``data`` (a new data set from ``data()`` for each): the same
    history and weights, float32 rounding apart."""
    histories = []
    for model in (ours, theirs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`shuffle=True`")
            warnings.filterwarnings("ignore", "Your input ran out of data")
            histories.append(model.fit(data(), verbose=0, **kwargs).history)
    assert set(histories[0]) == set(histories[1])
    for key in histories[0]:
        numpy.testing.assert_allclose(histories[0][key], histories[1][key], rtol=2e-5, atol=1e-6, err_msg=key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
