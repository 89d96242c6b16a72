"""fit/evaluate/predict over a PyDataset or a Python generator: the same training as the same batches given as
arrays, Keras's epoch hooks, threaded prefetching, several inputs and outputs, weights in the batches,
validation, steps, generators that run out, and the arguments Keras refuses with such inputs."""
import os
import threading
import time
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers

# Keras's warning, word for word, for an input that runs out (keras/src/trainers/epoch_iterator.py).
RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator can generate "
           "at least `steps_per_epoch * epochs` batches. You may need to use the `.repeat()` function when building "
           "your dataset.")

N, BATCH, FEATURES = 20, 4, 3


def make_data(seed=0):
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((N, FEATURES)).astype("float32")
    y = rng.standard_normal((N, 2)).astype("float32")
    return x, y


def dense_model(seed=0, loss="mse", units=2, activation=None):
    backend.set_random_seed(seed)
    model = gpu_dl.Sequential([gpu_dl.Input((FEATURES,)), layers.Dense(5, activation="tanh"),
                               layers.Dense(units, activation=activation)])
    model.compile(optimizer="adam", loss=loss)
    return model


def py_dataset_class(base):
    """The same PyDataset subclass body on gpu_dl's or Keras's base class."""

    class Batches(base):
        def __init__(self, *arrays, batch_size=BATCH, delays=None, **kwargs):
            super().__init__(**kwargs)
            self.arrays, self.batch_size, self.delays = arrays, batch_size, delays
            self.calls, self.log = [], []

        def __len__(self):
            return -(-len(self.arrays[0]) // self.batch_size)

        def __getitem__(self, index):
            if self.delays is not None:      # out-of-order finishing threads must not reorder the batches
                time.sleep(self.delays[index % len(self.delays)])
            self.calls.append(index)
            part = slice(index * self.batch_size, (index + 1) * self.batch_size)
            batch = tuple(a[part] for a in self.arrays)
            return batch[0] if len(batch) == 1 else batch

        def on_epoch_begin(self):
            self.log.append("begin")

        def on_epoch_end(self):
            self.log.append("end")

    return Batches


Batches = py_dataset_class(gpu_dl.utils.PyDataset)


def generator(*arrays, batch_size=BATCH, endless=False):
    while True:
        for start in range(0, len(arrays[0]), batch_size):
            yield tuple(a[start:start + batch_size] for a in arrays)
        if not endless:
            return


def trained(fit_input, epochs=2, **kwargs):
    model = dense_model()
    history = model.fit(fit_input, epochs=epochs, verbose=0, **kwargs)
    return model, history


def assert_same_weights(a, b, rtol=1e-6):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        numpy.testing.assert_allclose(wa, wb, rtol=rtol, atol=1e-7)


# ------------------------------------------------------------------------- same training as arrays
def test_py_dataset_and_generators_train_as_the_same_batches_of_arrays(xp):
    x, y = make_data()
    model = dense_model()
    reference = model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    ours, history = trained(Batches(x, y), shuffle=False)
    assert_same_weights(ours, model)
    numpy.testing.assert_allclose(history.history["loss"], reference.history["loss"], rtol=1e-6)
    with pytest.warns(UserWarning, match="shuffle=True.*ignored.*generator"):
        endless, _ = trained(generator(x, y, endless=True), steps_per_epoch=N // BATCH)
    assert_same_weights(endless, model)
    # a finite generator, one epoch per fit: the second fit continues from the first one's weights
    finite = dense_model()
    for _ in range(2):
        with pytest.warns(UserWarning, match="ran out of data"):      # as Keras's, on running out of it
            finite.fit(generator(x, y), shuffle=False, verbose=0)
    assert_same_weights(finite, model)


def test_epoch_hooks_run_once_per_epoch_around_the_batches_in_index_order():
    x, y = make_data()
    data = Batches(x, y)
    trained(data, epochs=3, shuffle=False)
    # batch 0 is read once before the hooks, to check it against the model before the model changes
    assert data.log == ["begin", "end"] * 3
    assert data.calls == [0] + list(range(5)) * 3


def test_shuffle_reorders_a_py_datasets_batches_each_epoch_as_keras_does():
    x, y = make_data()
    data = Batches(x, y)
    backend.set_random_seed(3)
    trained(data, epochs=2)
    epochs = [data.calls[1:6], data.calls[6:11]]
    assert all(sorted(e) == list(range(5)) for e in epochs) and epochs != [list(range(5))] * 2


def test_workers_prefetch_in_threads_and_keep_the_index_order():
    x, y = make_data()
    one, _ = trained(Batches(x, y, workers=1), shuffle=False)
    data = Batches(x, y, workers=3, max_queue_size=2, delays=[0.02, 0.0, 0.01, 0.0, 0.005])
    seen_threads = set()
    original = data.__getitem__

    def spy(index):
        seen_threads.add(threading.current_thread().name)
        return original(index)
    data.__getitem__ = spy          # instance attribute: the threads call the bound method given to them
    three, _ = trained(data, shuffle=False)
    assert_same_weights(three, one)
    assert data.log == ["begin", "end"] * 2


def test_use_multiprocessing_runs_threads_with_a_warning():
    x, y = make_data()
    with pytest.warns(UserWarning, match="use_multiprocessing=True runs .* threads"):
        model, _ = trained(Batches(x, y, workers=2, use_multiprocessing=True), shuffle=False)
    assert_same_weights(model, trained(Batches(x, y), shuffle=False)[0])


# ------------------------------------------------------------------ several inputs/outputs, weights
def two_in_two_out(seed=0):
    backend.set_random_seed(seed)
    a, b = gpu_dl.Input((3,), name="a"), gpu_dl.Input((2,), name="b")
    h = layers.Concatenate()([layers.Dense(4, activation="tanh")(a), b])
    model = gpu_dl.Model([a, b], [layers.Dense(3, activation="softmax", name="cls")(h),
                                  layers.Dense(1, name="reg")(h)])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], []])
    return model


def test_several_inputs_and_outputs_in_the_batches(xp):
    rng = numpy.random.default_rng(1)
    xa, xb = rng.standard_normal((N, 3)).astype("float32"), rng.standard_normal((N, 2)).astype("float32")
    labels, target = rng.integers(0, 3, N), rng.standard_normal((N, 1)).astype("float32")
    reference = two_in_two_out()
    expected = reference.fit([xa, xb], [labels, target], batch_size=BATCH, epochs=2, shuffle=False, verbose=0)

    class TwoByTwo(gpu_dl.utils.PyDataset):
        def __len__(self):
            return N // BATCH

        def __getitem__(self, i):
            s = slice(i * BATCH, (i + 1) * BATCH)
            return (xa[s], xb[s]), [labels[s], target[s]]

    model = two_in_two_out()
    history = model.fit(TwoByTwo(), epochs=2, shuffle=False, verbose=0)
    assert_same_weights(model, reference)
    assert history.history.keys() == expected.history.keys()
    out = model.predict(TwoByTwo(), verbose=0)
    assert isinstance(out, list) and [o.shape for o in out] == [(N, 3), (N, 1)]
    numpy.testing.assert_allclose(out[1], reference.predict([xa, xb], verbose=0)[1], rtol=1e-5, atol=1e-6)
    assert model.evaluate(TwoByTwo(), verbose=0) == pytest.approx(reference.evaluate([xa, xb], [labels, target],
                                                                                   verbose=0), rel=1e-5)


def test_sample_weights_in_the_batches_and_class_weight_as_with_arrays(xp):
    x, y = make_data()
    w = numpy.linspace(0.1, 2.0, N).astype("float32")
    reference = dense_model()
    reference.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(trained(Batches(x, y, w), shuffle=False)[0], reference)
    assert_same_weights(trained(generator(x, y, w, endless=True), steps_per_epoch=5, shuffle=False)[0], reference)

    labels = numpy.arange(N) % 3
    classes = {0: 1.0, 1: 3.0, 2: 0.5}
    reference = dense_model(loss="sparse_categorical_crossentropy", units=3, activation="softmax")
    reference.fit(x, labels, class_weight=classes, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    model = dense_model(loss="sparse_categorical_crossentropy", units=3, activation="softmax")
    model.fit(Batches(x, labels), class_weight=classes, epochs=2, shuffle=False, verbose=0)
    assert_same_weights(model, reference)


# ------------------------------------------------------------------ validation, evaluate, predict
def test_validation_data_as_a_py_dataset_and_as_a_generator_with_validation_steps():
    x, y = make_data()
    vx, vy = make_data(seed=5)
    val_data = Batches(vx, vy)
    # Every validation starts a new pass, as Keras's: with validation_steps=2, the first two batches each time
    # (an endless generator's next batches are never reached; the arrays' first two batches alike).
    for validation, rows in ((lambda: dict(validation_data=val_data), slice(None)),
                             (lambda: dict(validation_data=Batches(vx, vy), validation_steps=2), slice(0, 2 * BATCH)),
                             (lambda: dict(validation_data=generator(vx, vy, endless=True), validation_steps=2),
                              slice(0, 2 * BATCH)),
                             (lambda: dict(validation_data=(vx, vy), validation_steps=2, validation_batch_size=BATCH),
                              slice(0, 2 * BATCH))):
        expected = dense_model().fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                                     validation_data=(vx[rows], vy[rows]), validation_batch_size=BATCH).history
        for train in (Batches(x, y), (x, y)):     # streaming validation beside streaming or array training
            model = dense_model()
            given = validation()
            with warnings.catch_warnings():
                warnings.simplefilter("error")    # none runs out
                if isinstance(train, tuple):
                    history = model.fit(*train, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, **given)
                else:
                    history = model.fit(train, epochs=3, shuffle=False, verbose=0, **given)
            numpy.testing.assert_allclose(history.history["val_loss"], expected["val_loss"], rtol=1e-5)
    assert val_data.log == ["begin", "end"] * 6


def test_a_finite_validation_generator_validates_later_epochs_on_its_first_batches_with_keras_warning():
    x, y = make_data()
    vx, vy = make_data(seed=5)
    model = dense_model()
    seen = []

    class Weights(gpu_dl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.get_weights())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, validation_data=generator(vx, vy),
                            callbacks=[Weights()])
    # Keras's warning each time the generator runs out: at every validation, the first one included.
    assert [str(w.message) for w in caught] == [RAN_OUT] * 3
    assert {w.filename for w in caught} == {__file__}
    # Each epoch's validation loss is that of its weights: over all the data first, then over the first 2 batches
    probe = dense_model()
    for epoch, weights in enumerate(seen):
        probe.set_weights(weights)
        rows = slice(None) if epoch == 0 else slice(0, 2 * BATCH)
        assert history.history["val_loss"][epoch] == pytest.approx(
            probe.evaluate(vx[rows], vy[rows], batch_size=BATCH, verbose=0), rel=1e-5)
    with pytest.warns(UserWarning, match="ran out of data"):       # one validation runs it out too
        dense_model().fit(x, y, batch_size=BATCH, epochs=1, verbose=0, validation_data=generator(vx, vy))


def test_a_validation_generator_with_steps_goes_on_after_its_first_two_batches():
    """Each validation starts a new pass, as Keras's: a generator's first two batches, then its next ones."""
    x = numpy.zeros((24, 3), "float32")
    y = numpy.repeat(numpy.arange(6, dtype="float32"), 4)[:, None]       # each batch's targets are its index
    batches = [(x[4 * i:4 * i + 4], y[4 * i:4 * i + 4]) for i in range(6)]
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, gpu_dl.layers.Dense(1, kernel_initializer="zeros")(inputs))
    model.compile(optimizer=gpu_dl.optimizers.SGD(learning_rate=0.0), loss="mse")
    history = model.fit(*batches[0], epochs=4, verbose=0, validation_data=(b for b in batches), validation_steps=3)
    # Batches 0, 1, 2; then 0, 1 again and the generator's next one each time: 3, 4, 5.
    expected = [numpy.mean(numpy.square([0, 1, i])) for i in (2, 3, 4, 5)]
    numpy.testing.assert_allclose(history.history["val_loss"], expected, rtol=1e-6)


def test_evaluate_and_predict_with_steps(xp):
    x, y = make_data()
    model, _ = trained(Batches(x, y), shuffle=False)
    assert model.evaluate(Batches(x, y), verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
    head = 3 * BATCH
    assert model.evaluate(generator(x, y, endless=True), steps=3, verbose=0) == pytest.approx(
        model.evaluate(x[:head], y[:head], verbose=0), rel=1e-5)
    expected = model.predict(x, verbose=0)
    numpy.testing.assert_allclose(model.predict(Batches(x), verbose=0), expected, rtol=1e-6)
    numpy.testing.assert_allclose(model.predict(generator(x, endless=True), steps=3, verbose=0), expected[:head],
                                  rtol=1e-6)
    with pytest.warns(UserWarning, match="ran out of data"):
        numpy.testing.assert_allclose(model.predict(generator(x, y), verbose=0), expected, rtol=1e-6)   # y unused


def test_a_generator_that_runs_out_goes_on_with_its_first_batches_and_keras_warning():
    x, y = make_data()
    batches = []
    counter = gpu_dl.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: batches.append(0),
                                              on_train_batch_end=lambda batch, logs: batches.__setitem__(-1, batch + 1))
    model = dense_model()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(generator(x, y), epochs=3, shuffle=False, verbose=0, callbacks=[counter])
    assert batches == [5, 2, 2] and len(history.history["loss"]) == 3     # later passes: its first 2 batches
    batches.clear()
    seven = numpy.concatenate([x, x[:8]]), numpy.concatenate([y, y[:8]])
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(generator(*seven), epochs=4, steps_per_epoch=3, shuffle=False, verbose=0,
                            callbacks=[counter])
    assert batches == [3, 3, 1, 2] and len(history.history["loss"]) == 4     # as Keras 3.15 counts them
    batches.clear()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(generator(*seven), epochs=4, steps_per_epoch=7, shuffle=False, verbose=0,
                            callbacks=[counter])
    # An epoch that gets no batch has no training logs, as Keras's.
    assert batches == [7, 0, 2, 2] and len(history.history["loss"]) == 3
    # Keras learns a generator's length by running out of it, so even one epoch ends with its warning; steps that
    # the generator lasts do not warn.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(generator(x, y), shuffle=False, verbose=0)
        model.evaluate(generator(x, y), verbose=0)
        model.predict(generator(x), verbose=0)
    assert [str(w.message) for w in caught] == [RAN_OUT] * 3 and {w.filename for w in caught} == {__file__}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(generator(x, y), steps_per_epoch=N // BATCH, shuffle=False, verbose=0)
        model.evaluate(generator(x, y), steps=N // BATCH, verbose=0)
        model.predict(generator(x), steps=N // BATCH, verbose=0)
        model.fit(Batches(x, y), epochs=2, verbose=0)         # a PyDataset's length is known


def test_progress_bar_counts_the_epoch_and_learns_an_unknown_length(capsys):
    x, y = make_data()
    model = dense_model()
    model.fit(Batches(x, y), epochs=1, verbose=2)
    assert "5/5 - " in capsys.readouterr().out
    model.fit(generator(x, y), epochs=1, shuffle=False, verbose=2)
    assert "5/5 - " in capsys.readouterr().out
    model.fit(generator(x, y, endless=True), steps_per_epoch=2, shuffle=False, verbose=2)
    assert "2/2 - " in capsys.readouterr().out


# ------------------------------------------------------------------------------ refusals
def test_a_batch_size_beside_batches_is_ignored_with_a_warning_as_keras_ignores_it():
    """Scripts written for Keras pass batch_size beside a PyDataset; Keras ignores it, and so does gpu_dl."""
    x, y = make_data()
    backend.set_random_seed(0)
    quiet = dense_model()
    backend.set_random_seed(0)
    told = dense_model()
    quiet.fit(Batches(x, y), epochs=1, shuffle=False, verbose=0)
    with pytest.warns(UserWarning, match=r"`batch_size=5` is ignored: `x` is a PyDataset"):
        told.fit(Batches(x, y), epochs=1, shuffle=False, verbose=0, batch_size=5)
    for a, b in zip(quiet.get_weights(), told.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match=r"`validation_batch_size=4` is ignored: `validation_data` is a generator"):
        told.fit(Batches(x, y), validation_data=generator(x, y), validation_batch_size=4, shuffle=False, verbose=0)
    with pytest.warns(UserWarning, match=r"`batch_size=7` is ignored"):
        told.evaluate(Batches(x, y), batch_size=7, verbose=0)
    with pytest.warns(UserWarning, match=r"`batch_size=7` is ignored"):
        assert told.predict(generator(x), batch_size=7, verbose=0).shape[0] == len(x)

def _unchanged(model, before):
    for a, b in zip(model.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["py_dataset", "generator"])
@pytest.mark.parametrize("argument, value, message", [
    ("y", "Y", r"`x` as a (PyDataset|generator), `y` should not be passed"),
    ("sample_weight", "W", r"`sample_weight` should not be passed"),
    ("validation_split", 0.2, r"`validation_split` is only supported for arrays"),
])
def test_arguments_the_batches_hold_are_refused(kind, argument, value, message):
    x, y = make_data()
    value = {"Y": y, "W": numpy.ones(N)}.get(value, value) if isinstance(value, str) else value
    model = dense_model()
    model.build((None, FEATURES))
    before = model.get_weights()
    data = Batches(x, y) if kind == "py_dataset" else generator(x, y)
    with pytest.raises(ValueError, match=message):
        model.fit(data, verbose=0, **{argument: value})
    _unchanged(model, before)
    if argument in ("y", "sample_weight"):
        with pytest.raises(ValueError, match=message):
            model.evaluate(Batches(x, y), verbose=0, **{argument: value})


def test_other_refusals_name_the_argument_or_the_batch():
    x, y = make_data()
    model = dense_model()
    model.build((None, FEATURES))
    before = model.get_weights()
    with pytest.raises(ValueError, match="`class_weight` is not supported for Python generator"):
        model.fit(generator(x, y), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="endless PyDataset.*steps_per_epoch"):
        class Endless(gpu_dl.utils.PyDataset):
            num_batches = None

            def __getitem__(self, i):
                return x[:4], y[:4]
        model.fit(Endless(), verbose=0)
    with pytest.raises(ValueError, match="[Bb]atch 0 of `x`.*holds no targets"):
        model.fit(Batches(x), verbose=0)
    with pytest.raises(ValueError, match="[Bb]atch 0 of `x`.*tuple of 4"):
        model.fit(Batches(x, y, y, y), verbose=0)
    with pytest.raises(ValueError, match="[Bb]atch 0 of `validation_data`"):
        model.fit(Batches(x, y), validation_data=Batches(x[:, :2], y), verbose=0)
    with pytest.raises(ValueError, match="yields no batches"):
        model.fit(iter([]), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="`steps_per_epoch` must be a positive integer"):
        model.fit(Batches(x, y), steps_per_epoch=0, verbose=0)
    _unchanged(model, before)

    def bad_later():
        yield x[:4], y[:4]
        yield x[4:8, :2], y[4:8]
    with pytest.raises(ValueError, match="[Bb]atch 1 of `x`"):
        model.fit(bad_later(), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="[Bb]atch 1 of `x`"):
        model.predict(bad_later(), verbose=0)


def test_stateful_layers_get_the_batch_size_check_per_batch():
    rng = numpy.random.default_rng(2)
    seqs, targets = rng.standard_normal((10, 5, 3)).astype("float32"), rng.standard_normal((10, 2)).astype("float32")
    model = gpu_dl.Sequential([gpu_dl.Input(batch_shape=(4, 5, 3)), layers.SimpleRNN(2, stateful=True)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="[Bb]atch 2 of `x`.*stateful"):
        model.fit(Batches(seqs, targets), shuffle=False, verbose=0)


def test_py_dataset_is_where_keras_has_it():
    assert gpu_dl.utils.PyDataset is gpu_dl.data.PyDataset is gpu_dl.utils.Sequence

    class NoSuper(gpu_dl.utils.PyDataset):
        def __init__(self):
            pass
    with pytest.warns(UserWarning, match="super\\(\\).__init__"):
        assert NoSuper().workers == 1


# ------------------------------------------------------------------------------ Keras 3 oracle
def test_keras_trains_the_same_py_dataset_body_to_the_same_losses():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    x, y = make_data()
    ours = dense_model()
    ours.compile(optimizer="adam", loss="mse")
    theirs = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(5, activation="tanh"),
                               keras.layers.Dense(2)])
    ours.build((None, FEATURES))
    theirs.set_weights(ours.get_weights())
    theirs.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    ours_data, theirs_data = Batches(x, y), py_dataset_class(keras.utils.PyDataset)(x, y)
    ours_loss = ours.fit(ours_data, epochs=3, shuffle=False, verbose=0).history["loss"]
    theirs_loss = theirs.fit(theirs_data, epochs=3, shuffle=False, verbose=0).history["loss"]
    numpy.testing.assert_allclose(ours_loss, theirs_loss, rtol=2e-5, atol=1e-6)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    # (Keras also wraps its first look at batch 0 in a begin/end pair; gpu_dl's look calls no hook)
    assert ours_data.log == ["begin", "end"] * 3 and theirs_data.log[-6:] == ours_data.log
