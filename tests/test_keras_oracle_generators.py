"""Python generators given to fit and predict, against Keras 3 itself (where Keras is installed).

A training generator that runs out before ``epochs * steps_per_epoch`` batches:
Keras warns and goes on, each later pass handing out the generator's first two
batches again; the per-epoch logs, the trained weights and the warnings must be
Keras's.
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
