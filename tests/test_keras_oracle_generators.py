"""Python generators given to fit, evaluate and predict, against Keras 3 itself (where Keras is installed).

A training generator that runs out before ``epochs * steps_per_epoch`` batches:
Keras warns and goes on, each later pass handing out the generator's first two
batches again; the per-epoch logs, the trained weights and the warnings must be
Keras's. A generator's first batch must be a tuple, as Keras's generator adapter
requires, in predict as in fit and evaluate.
"""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def _model(lib):
    inputs = lib.Input((3,), name="x")
    model = lib.Model(inputs, lib.layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros",
                                               name="dense")(inputs))
    model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"])
    return model


def _batches(n):
    rng = numpy.random.default_rng(7)
    return [(rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((4, 2)).astype("float32"))
            for _ in range(n)]


def _fit(lib, batches, **kwargs):
    model = _model(lib)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit((b for b in batches), verbose=0, shuffle=False, **kwargs)
    ran_out = [str(w.message) for w in caught if "ran out of data" in str(w.message)]
    return model, history, ran_out


@pytest.mark.parametrize("n, steps, epochs", [(5, 3, 3), (5, 2, 4), (4, 2, 5), (1, 2, 3), (3, 1, 6), (2, 3, 3),
                                              (3, None, 3), (6, 2, 4)])
def test_a_generator_that_runs_out_goes_on_with_its_first_batches_as_keras_does(n, steps, epochs):
    batches = _batches(n)
    ours, our_history, our_warnings = _fit(gpu_dl, batches, steps_per_epoch=steps, epochs=epochs)
    theirs, their_history, their_warnings = _fit(keras, batches, steps_per_epoch=steps, epochs=epochs)
    assert our_warnings == their_warnings and their_warnings
    assert our_history.epoch == their_history.epoch == list(range(epochs))
    assert sorted(our_history.history) == sorted(their_history.history)
    for key, values in their_history.history.items():
        numpy.testing.assert_allclose(our_history.history[key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_replayed_batches_are_the_generators_first_two():
    batches = _batches(5)
    # 5 batches, 2 a step: epochs of batches 0-1, 2-3, 4 (running out), then a new pass: 0-1.
    ours, history, _ = _fit(gpu_dl, batches, steps_per_epoch=2, epochs=4)
    model = _model(gpu_dl)
    for epoch in ([0, 1], [2, 3], [4], [0, 1]):
        model.fit((batches[i] for i in epoch), epochs=1, verbose=0, shuffle=False)
    for a, b in zip(ours.get_weights(), model.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert len(history.history["loss"]) == 4


def _prediction(lib, batch, method="predict"):
    """What ``method`` gives for a generator of two batches ``batch()``, or the ValueError's message."""
    inputs = lib.Input((3,), name="x")
    model = lib.Model(inputs, lib.layers.Dense(2, kernel_initializer="ones", name="dense")(inputs))
    model.compile(optimizer="sgd", loss="mse")

    def generator():
        for _ in range(2):
            yield batch()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return numpy.asarray(getattr(model, method)(generator(), verbose=0))
    except ValueError as e:
        return str(e)


_X = numpy.arange(12, dtype="float32").reshape(4, 3)
_Y = numpy.ones((4, 2), "float32")


@pytest.mark.parametrize("form, batch", [
    ("x", lambda: _X), ("[x]", lambda: [_X]), ("[x, y]", lambda: [_X, _Y]), ("{name: x}", lambda: {"x": _X}),
    ("(x,)", lambda: (_X,)), ("(x, y)", lambda: (_X, _Y)), ("(x, y, sample_weight)", lambda: (_X, _Y, _Y[:, 0]))])
def test_predict_takes_the_generators_keras_takes_and_refuses_the_others_with_its_message(form, batch):
    ours, theirs = _prediction(gpu_dl, batch), _prediction(keras, batch)
    if isinstance(theirs, str):
        assert isinstance(ours, str), form
        assert theirs.startswith("When passing a Python generator to a Keras model, the generator must return a tuple")
        assert ours.startswith("`x`: " + theirs[:theirs.index("Received:")]), form
    else:
        numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)
        assert ours.shape == (8, 2)


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_fit_and_evaluate_refuse_a_generator_of_bare_arrays_as_keras_does(method):
    ours, theirs = _prediction(gpu_dl, lambda: _X, method), _prediction(keras, lambda: _X, method)
    assert isinstance(theirs, str) and isinstance(ours, str)
    assert ours.startswith("`x`: " + theirs[:theirs.index("Received:")])


def test_only_the_first_batch_must_be_a_tuple_as_in_keras():
    def first_a_tuple():
        batches = iter([(_X,), _X])
        return lambda: next(batches)
    ours, theirs = _prediction(gpu_dl, first_a_tuple()), _prediction(keras, first_a_tuple())
    assert not isinstance(theirs, str)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)


def _ran_out(caught):
    return [(w.category, str(w.message)) for w in caught if "ran out of data" in str(w.message)]


@pytest.mark.parametrize("method, kwargs, warned", [
    ("fit", dict(epochs=1), 1), ("fit", dict(epochs=2), 2), ("fit", dict(epochs=1, steps_per_epoch=3), 0),
    ("fit", dict(epochs=1, steps_per_epoch=2), 0), ("fit", dict(epochs=1, steps_per_epoch=4), 1),
    ("evaluate", dict(), 1), ("evaluate", dict(steps=3), 0), ("evaluate", dict(steps=4), 1),
    ("predict", dict(), 1), ("predict", dict(steps=2), 0)])
def test_a_generator_warns_when_it_runs_out_as_keras_does(method, kwargs, warned):
    """Keras's rule (EpochIterator): a generator's length is unknown, so a pass without steps ends by running out
    of it, with the warning, even the one epoch of fit(generator); steps the generator lasts give none."""
    batches = _batches(3)
    results = []
    for lib in (gpu_dl, keras):
        model = _model(lib)
        data = (b for b in batches) if method != "predict" else ((b[0],) for b in batches)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if method == "fit":
                out = model.fit(data, verbose=0, shuffle=False, **kwargs).history
            else:
                out = getattr(model, method)(data, verbose=0, **kwargs)
        results.append((out, _ran_out(caught)))
    (ours, our_warnings), (theirs, their_warnings) = results
    assert our_warnings == their_warnings and len(their_warnings) == warned
    assert all(category is UserWarning for category, _ in our_warnings)
    if method == "fit":
        assert sorted(ours) == sorted(theirs)
        for key in theirs:
            numpy.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
    else:
        numpy.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def _indexed_batches(n):
    """Batches whose targets are their index, for a model that predicts 0: each batch's loss tells which it is."""
    x = numpy.zeros((4 * n, 3), "float32")
    y = numpy.repeat(numpy.arange(n, dtype="float32"), 4)[:, None]
    return x, y, [(x[4 * i:4 * i + 4], y[4 * i:4 * i + 4]) for i in range(n)]


@pytest.mark.parametrize("data, steps, epochs", [
    ("generator", 2, 4), ("generator", 3, 4), ("generator", 4, 4), ("generator", None, 3), ("generator", 1, 3),
    ("short generator", 2, 4), ("endless generator", 3, 3), ("arrays", 2, 3), ("arrays", 9, 2),
    ("py_dataset", 2, 3), ("py_dataset", 9, 2)])
@pytest.mark.parametrize("validation_freq", [1, 2])
def test_each_validation_starts_a_new_pass_as_keras_does(data, steps, epochs, validation_freq):
    """Keras resets its validation iterator before each validation: arrays and PyDatasets start over, and a
    generator hands out its first two batches again, then what it still gives."""
    n = 3 if data == "short generator" else 6
    x, y, batches = _indexed_batches(n)

    def given(lib):
        if data == "arrays":
            return dict(validation_data=(x, y), validation_batch_size=4)
        if data == "py_dataset":
            class Batches(lib.utils.PyDataset):
                def __len__(self):
                    return n

                def __getitem__(self, index):
                    return batches[index]
            return dict(validation_data=Batches())

        def generator():
            while True:
                yield from batches
                if data != "endless generator":
                    return
        return dict(validation_data=generator())

    results = []
    for lib in (gpu_dl, keras):
        inputs = lib.Input((3,), name="x")
        model = lib.Model(inputs, lib.layers.Dense(1, kernel_initializer="zeros", name="dense")(inputs))
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.0), loss="mse")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(x[:4], y[:4], batch_size=4, epochs=epochs, verbose=0, shuffle=False,
                                validation_steps=steps, validation_freq=validation_freq, **given(lib))
        results.append((history.history["val_loss"], _ran_out(caught)))
    (ours, our_warnings), (theirs, their_warnings) = results
    assert len(theirs) == epochs // validation_freq
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert our_warnings == their_warnings
