"""Keras 3's guide "Writing your own callbacks" against Keras itself: each of its programs
(tests/callback_guide_programs.py) prints the same lines with gpu_dl as with Keras (the same hooks called in the
same order with the same log keys, the same losses to two decimals), and ends with the same weights."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import callback_guide_programs as guide  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def run_both(program, capsys):
    """``program(lib)`` with each library: (its result, its printed lines) for gpu_dl, then for Keras. Keras warns
    of the guide's ``input_dim``, both of the epochs cut short by the end of the data (checked apart)."""
    results = []
    for lib in (gpu_dl, keras):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = program(lib)
        results.append((result, capsys.readouterr().out.splitlines()))
    return results


def assert_same_weights(ours, theirs):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_hooks_and_their_log_keys(capsys):
    (ours, ours_lines), (theirs, theirs_lines) = run_both(guide.basic_example, capsys)
    assert ours_lines == theirs_lines
    # fit over 500 training samples in batches of 128 (4), validation over the other 500 (4), then evaluate (8)
    # and predict (8): each training batch's end logs loss and the metric, the epoch's end the val_ ones too
    assert ours_lines[:3] == ["Starting training; got log keys: []", "Start epoch 0 of training; got log keys: []",
                              "...Training: start of batch 0; got log keys: []"]
    assert "...Training: end of batch 3; got log keys: ['loss', 'mean_absolute_error']" in ours_lines
    assert ("End epoch 0 of training; got log keys: ['loss', 'mean_absolute_error', 'val_loss', "
            "'val_mean_absolute_error']") in ours_lines
    assert ours_lines[-1] == "Stop predicting; got log keys: []"
    assert "...Predicting: end of batch 7; got log keys: ['outputs']" in ours_lines
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_the_logs_dict(capsys):
    (ours, ours_lines), (theirs, theirs_lines) = run_both(guide.logs_dict, capsys)
    assert ours_lines == theirs_lines
    assert len(ours_lines) == 8 + 1 + 8 + 1 + 8       # 8 batches and the epoch line, twice; 8 evaluation batches
    assert_same_weights(ours, theirs)


def test_early_stopping_at_min_loss(capsys):
    (ours, ours_lines), (theirs, theirs_lines) = run_both(guide.early_stopping, capsys)
    assert ours_lines == theirs_lines
    (model, history, stopper), (keras_model, keras_history, keras_stopper) = ours, theirs
    assert "Restoring model weights from the end of the best epoch." in ours_lines
    assert stopper.stopped_epoch == keras_stopper.stopped_epoch > 0
    assert ours_lines[-1] == f"Epoch {stopper.stopped_epoch + 1}: early stopping"
    assert list(history.history) == list(keras_history.history) == ["loss", "mean_absolute_error"]
    for key in history.history:
        numpy.testing.assert_allclose(history.history[key], keras_history.history[key], rtol=2e-5)
    # the best epoch's weights are back
    assert_same_weights(model, keras_model)
    for a, b in zip(model.get_weights(), stopper.best_weights):
        numpy.testing.assert_array_equal(a, b)


def test_learning_rate_scheduling(capsys):
    (ours, ours_lines), (theirs, theirs_lines) = run_both(guide.learning_rate_scheduling, capsys)
    assert ours_lines == theirs_lines
    (model, history), (keras_model, keras_history) = ours, theirs
    assert [line for line in ours_lines if "Learning rate" in line][3] == "Epoch 3: Learning rate is 0.0500."
    assert model.optimizer.learning_rate == pytest.approx(float(keras_model.optimizer.learning_rate), rel=1e-6)
    for key in history.history:
        numpy.testing.assert_allclose(history.history[key], keras_history.history[key], rtol=2e-5)
    assert_same_weights(model, keras_model)


def test_steps_per_epoch_over_arrays_walks_the_passes_as_keras():
    """1000 samples in batches of 64 are 16 batches: with steps_per_epoch=5 the epochs take 5, 5, 5 and 1 of
    them (the fourth cut short by the end of the pass, with Keras's warning), then a new pass starts."""
    counts = []
    for lib in (gpu_dl, keras):
        taken = []

        class Count(lib.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                taken.append(0)

            def on_train_batch_end(self, batch, logs=None):
                taken[-1] += 1

        x_train, y_train, _, _ = guide.data()
        model = guide.get_model(lib)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x_train, y_train, batch_size=64, steps_per_epoch=5, epochs=6, verbose=0, callbacks=[Count()])
        ran_out = [w for w in caught if "Your input ran out of data" in str(w.message)]
        assert len(ran_out) == 1
        counts.append(taken)
    assert counts[0] == counts[1] == [5, 5, 5, 1, 5, 5]


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_steps_over_arrays_takes_the_first_batches(method):
    """evaluate's and predict's ``steps`` over arrays: the first ``steps`` batches; more than there are stops at
    the end of the data with Keras's warning."""
    x, y, _, _ = guide.data()
    x, y = x[:100], y[:100]
    ours, theirs = guide.get_model(gpu_dl), guide.get_model(keras)
    for steps, batches in ((2, 2), (9, 4)):
        got = []
        for model in (ours, theirs):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if method == "evaluate":
                    got.append(model.evaluate(x, y, batch_size=32, steps=steps, verbose=0))
                else:
                    got.append(model.predict(x, batch_size=32, steps=steps, verbose=0))
            assert any("ran out of data" in str(w.message) for w in caught) == (steps > batches)
        numpy.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-5)
        if method == "predict":
            assert len(got[0]) == min(100, 32 * batches)
    with pytest.raises(ValueError, match="steps"):
        getattr(ours, method)(*((x, y) if method == "evaluate" else (x,)), steps=0, verbose=0)


def test_the_logs_are_sorted_by_key_as_keras_gives_them():
    """Keras's logs pass through pythonify_logs, which sorts them: with 'accuracy' the batch, epoch and History
    keys start with it, the validation ones after the training ones."""
    rng = numpy.random.default_rng(3)
    x, y = rng.random((20, 8)).astype("float32"), rng.integers(0, 4, 20)
    seen = {}
    for lib in (gpu_dl, keras):
        keys = []

        class Keys(lib.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                keys.append(("batch", list(logs)))

            def on_test_batch_end(self, batch, logs=None):
                keys.append(("test batch", list(logs)))

            def on_epoch_end(self, epoch, logs=None):
                keys.append(("epoch", list(logs)))

        model = lib.Sequential([lib.Input((8,)), lib.layers.Dense(4, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy", lib.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
        history = model.fit(x, y, epochs=1, batch_size=10, verbose=0, validation_data=(x, y), callbacks=[Keys()])
        seen[lib.__name__] = keys, list(history.history)
    assert seen["gpu_dl"] == seen["keras"]
    assert seen["gpu_dl"][1] == ["accuracy", "loss", "top2", "val_accuracy", "val_loss", "val_top2"]


def test_validation_steps_over_arrays_takes_the_first_batches_each_time():
    x, y, vx, vy = guide.data()
    results = []
    for lib in (gpu_dl, keras):
        model = guide.get_model(lib)
        history = model.fit(x[:64], y[:64], batch_size=32, epochs=2, verbose=0, shuffle=False,
                            validation_data=(vx[:100], vy[:100]), validation_steps=2)
        # each validation restarts at the first batch: the last epoch's val_loss is an evaluation of the first 64
        expected = model.evaluate(vx[:64], vy[:64], batch_size=32, verbose=0)[0]
        assert history.history["val_loss"][-1] == pytest.approx(expected, rel=1e-5)
        results.append(history.history)
    for key in results[1]:
        numpy.testing.assert_allclose(results[0][key], results[1][key], rtol=2e-5)


def test_validation_steps_over_arrays_beside_a_generator():
    x, y, vx, vy = guide.data()
    results = []
    for lib in (gpu_dl, keras):
        def batches():
            for start in range(0, 64, 32):
                yield x[start:start + 32], y[start:start + 32]
        model = guide.get_model(lib)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = model.fit(batches(), epochs=1, verbose=0, validation_data=(vx[:100], vy[:100]),
                                validation_steps=2, validation_batch_size=32)
        expected = model.evaluate(vx[:64], vy[:64], batch_size=32, verbose=0)[0]
        assert history.history["val_loss"][-1] == pytest.approx(expected, rel=1e-5)
        results.append(history.history)
    for key in results[1]:
        numpy.testing.assert_allclose(results[0][key], results[1][key], rtol=2e-5)
