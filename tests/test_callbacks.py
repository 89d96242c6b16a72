"""EarlyStopping, TerminateOnNaN, LearningRateScheduler, ReduceLROnPlateau and CSVLogger.

Each is driven twice: inside a real ``fit``, and over a fixed sequence of
logs side by side with Keras 3's own callback (where Keras is installed),
which must take the same decisions, print the same messages and write the
same files.
"""
import contextlib
import io
import os
import warnings

import numpy
import pytest

from gpu_dl import backend, callbacks, layers, optimizers
from gpu_dl.models import Sequential
from toy_data import blobs, quiet


# ------------------------------------------------------------------ helpers

def classifier(learning_rate=0.01, seed=0, metrics=("accuracy",)):
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((2,)), layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=list(metrics))
    return model



@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


class Float32Rate:
    """An optimizer stand-in keeping its rate as float32, as a Keras optimizer's variable does."""

    def __init__(self, learning_rate):
        self._lr = numpy.float32(learning_rate)

    @property
    def learning_rate(self):
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value):
        self._lr = numpy.float32(value)


class FakeModel:
    """Just what the callbacks touch: stop_training, weights, optimizer, metrics."""

    def __init__(self, optimizer=None):
        self.stop_training = False
        self.weights = [numpy.zeros(2)]
        self.optimizer = optimizer
        self.metrics = []
        self._metrics = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [numpy.array(w) for w in weights]


def drive(callback, logs_per_epoch, model=None, on_epoch_begin=False):
    """Run the epoch hooks over fixed logs as fit would; the weights are the epoch number.

    Returns the per-epoch trace and the model (its weights after on_train_end).
    """
    model = model or FakeModel()
    callback.set_model(model)
    trace = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback.on_train_begin({})
        for epoch, logs in enumerate(logs_per_epoch):
            if on_epoch_begin:
                callback.on_epoch_begin(epoch, {})
            model.weights = [numpy.full(2, float(epoch))]
            logs = dict(logs)
            callback.on_epoch_end(epoch, logs)
            rate = getattr(model.optimizer, "learning_rate", None)
            trace.append((epoch, model.stop_training, getattr(callback, "wait", None),
                          None if rate is None else float(rate)))
            if model.stop_training:
                break
        callback.on_train_end({})
    return trace, model, out.getvalue(), [str(w.message) for w in caught]


def as_logs(values, key="val_loss"):
    return [{key: v} for v in values]


# ---------------------------------------------------------- EarlyStopping
EARLY_CASES = [
    dict(values=[1.0, 0.9, 0.95, 0.97, 0.85, 0.99, 1.0, 1.1], patience=0),
    dict(values=[1.0, 0.9, 0.95, 0.97, 0.85, 0.99, 1.0, 1.1], patience=2),
    dict(values=[1.0, 0.9, 0.95, 0.97, 0.85, 0.99, 1.0, 1.1], patience=2, restore_best_weights=True),
    dict(values=[1.0, 0.98, 0.97, 0.965, 0.96, 0.9], patience=1, min_delta=0.015),
    dict(values=[1.0, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5], patience=2, baseline=0.3),
    dict(values=[1.0, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5], patience=2, baseline=0.3, restore_best_weights=True),
    dict(values=[1.0, 0.8, 0.7, 0.75, 0.76, 0.77], patience=1, baseline=0.75),
    dict(values=[1.0, 1.1, 1.2, 1.3, 0.9, 1.0, 1.0, 1.0], patience=1, start_from_epoch=3),
    dict(values=[0.5, 0.6, 0.55, 0.7, 0.69, 0.68, 0.7], patience=2, mode="max", key="val_accuracy"),
    dict(values=[0.5, 0.6, 0.55, 0.7, 0.69, 0.68, 0.7], patience=1, mode="max", key="val_accuracy",
         restore_best_weights=True, verbose=1),
    dict(values=[1.0, 0.9, 0.95, 0.97, 0.85, 0.99, 1.0, 1.1], patience=3, verbose=1, restore_best_weights=True),
]


@pytest.mark.parametrize("case", EARLY_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items() if k != "values"))
def test_early_stopping_takes_keras_decisions(case, keras):
    case = dict(case)
    values, key = case.pop("values"), case.pop("key", "val_loss")
    ours = drive(callbacks.EarlyStopping(monitor=key, **case), as_logs(values, key))
    theirs = drive(keras.callbacks.EarlyStopping(monitor=key, **case), as_logs(values, key))
    assert ours[0] == theirs[0]                                   # stop epoch and wait, epoch by epoch
    numpy.testing.assert_array_equal(ours[1].weights[0], theirs[1].weights[0])   # restored weights
    assert ours[2] == theirs[2]                                   # printed messages


def test_early_stopping_counts_patience():
    values = [1.0, 0.9, 0.95, 0.97, 0.85, 0.99, 1.0, 1.1]
    trace, _, _, _ = drive(callbacks.EarlyStopping(patience=2), as_logs(values))
    assert [t[2] for t in trace] == [0, 0, 1, 2] and trace[-1][1]   # epochs 2 and 3 do not beat 0.9
    cb = callbacks.EarlyStopping(patience=3)
    trace, _, _, _ = drive(cb, as_logs(values))
    # Epoch 4 beats 0.9 before the third failure; epochs 5, 6, 7 then fail to beat 0.85.
    assert [t[2] for t in trace] == [0, 0, 1, 2, 0, 1, 2, 3] and cb.stopped_epoch == 7 and cb.best == 0.85
    trace, _, _, _ = drive(callbacks.EarlyStopping(patience=0), as_logs(values))
    assert len(trace) == 3                                        # the first epoch that does not improve


def test_early_stopping_min_delta_and_baseline():
    cb = callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=0.1)
    trace, _, _, _ = drive(cb, as_logs([1.0, 0.95, 0.5, 0.45, 0.44], "loss"))
    assert len(trace) == 2 and cb.best == 1.0                     # 0.05 better is not better enough
    # Above the baseline, improving epochs do not restart the count: the first epoch that does not
    # improve stops training once patience epochs have passed.
    cb = callbacks.EarlyStopping(monitor="loss", patience=2, baseline=0.5)
    trace, _, _, _ = drive(cb, as_logs([1.0, 0.9, 0.8, 0.85, 0.7], "loss"))
    assert [t[2] for t in trace] == [1, 2, 3, 4] and cb.stopped_epoch == 3 and cb.best == 0.8
    cb = callbacks.EarlyStopping(monitor="loss", patience=2, baseline=0.5)
    trace, _, _, _ = drive(cb, as_logs([1.0, 0.4, 0.45, 0.42, 0.3, 0.5], "loss"))
    assert [t[2] for t in trace] == [1, 0, 1, 2] and cb.stopped_epoch == 3   # 0.4 beat the baseline


def test_early_stopping_restores_the_best_epochs_weights_in_fit():
    x, y = blobs()
    model = classifier(learning_rate=0.05)
    scores = [0.9, 0.7, 0.4, 0.6, 0.5, 0.45, 0.8, 0.3]
    seen = {}

    def score(epoch, logs):
        logs["score"] = scores[epoch]                                # a quantity with a known best epoch

    def snapshot(epoch, logs):
        seen[epoch] = model.get_weights()

    stopper = callbacks.EarlyStopping(monitor="score", mode="min", patience=3, restore_best_weights=True, verbose=1)
    history, out = quiet(model.fit, x, y, epochs=len(scores), batch_size=32, verbose=0, callbacks=[
        callbacks.LambdaCallback(on_epoch_end=score), stopper, callbacks.LambdaCallback(on_epoch_end=snapshot)])
    assert history.epoch == [0, 1, 2, 3, 4, 5]                   # epochs 3, 4, 5 do not beat epoch 2
    assert stopper.best_epoch == 2 and stopper.stopped_epoch == 5
    for ours, best in zip(model.get_weights(), seen[2]):
        numpy.testing.assert_array_equal(ours, best)
    assert not all(numpy.array_equal(a, b) for a, b in zip(seen[5], seen[2]))
    assert out == "Epoch 6: early stopping\nRestoring model weights from the end of the best epoch: 3.\n"


def test_early_stopping_without_restore_keeps_the_last_weights_and_stops_fit():
    x, y = blobs()
    model = classifier()
    history, out = quiet(model.fit, x, y, epochs=20, verbose=0, validation_split=0.25,
                         callbacks=[callbacks.EarlyStopping(monitor="val_loss", min_delta=10.0, patience=2)])
    assert len(history.epoch) == 3 and out == ""                  # nothing improves by 10: stop after 2 more


def test_early_stopping_auto_mode_reads_the_metric_direction():
    x, y = blobs()
    model = classifier(metrics=["accuracy", "sparse_categorical_crossentropy"])
    names = ("val_accuracy", "loss", "val_sparse_categorical_crossentropy")
    stoppers = {name: callbacks.EarlyStopping(monitor=name) for name in names}
    quiet(model.fit, x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=list(stoppers.values()))
    assert stoppers["val_accuracy"].monitor_op is numpy.greater
    assert stoppers["loss"].monitor_op is numpy.less
    assert stoppers["val_sparse_categorical_crossentropy"].monitor_op is numpy.less
    assert stoppers["loss"].min_delta == 0
    with pytest.raises(ValueError, match="mode='max'"):
        quiet(model.fit, x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping(monitor="f1")])
    with pytest.warns(UserWarning, match="unknown, fallback to auto"):
        assert callbacks.EarlyStopping(mode="biggest").mode == "auto"


def test_early_stopping_warns_when_the_monitor_is_missing(keras):
    logs = [{"loss": 1.0, "accuracy": 0.5}] * 3
    ours = drive(callbacks.EarlyStopping(patience=1), logs)
    theirs = drive(keras.callbacks.EarlyStopping(patience=1), logs)
    assert ours[3] == theirs[3] and len(ours[3]) == 3
    assert ours[3][0] == ("Early stopping conditioned on metric `val_loss` which is not available. "
                          "Available metrics are: loss,accuracy")
    assert not ours[1].stop_training


def test_early_stopping_instance_is_reusable_across_fits():
    x, y = blobs()
    model = classifier()
    stopper = callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
    for _ in range(2):
        history, _ = quiet(model.fit, x, y, epochs=5, verbose=0, callbacks=[stopper])
        assert len(history.epoch) == 2


# ------------------------------------------------------------ TerminateOnNaN
def test_terminate_on_nan_stops_a_diverging_fit():
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((256, 4)).astype("float32") * 100
    y = rng.standard_normal((256, 1)).astype("float32") * 100
    backend.set_random_seed(0)
    model = Sequential([layers.Input((4,)), layers.Dense(16), layers.Dense(1)])
    model.compile(optimizer=optimizers.SGD(learning_rate=1e6), loss="mse")
    batches = []
    with numpy.errstate(all="ignore"):
        history, out = quiet(model.fit, x, y, epochs=5, batch_size=16, verbose=0, callbacks=[
            callbacks.TerminateOnNaN(), callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))])
    assert history.epoch == [0]                                   # on_epoch_end ran once, then the loop stopped
    assert len(batches) < 256 // 16                               # stopped inside the first epoch
    assert not numpy.isfinite(history.history["loss"][0])
    assert out == f"Batch {batches[-1]}: Invalid loss, terminating training\n"


def test_terminate_on_nan_can_raise():
    model = FakeModel()
    cb = callbacks.TerminateOnNaN(raise_error=True)
    cb.set_model(model)
    cb.on_train_batch_end(0, {"loss": 1.0})
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 3"):
        cb.on_train_batch_end(3, {"loss": float("inf")})


def test_terminate_on_nan_matches_keras(keras):
    for losses in ([1.0, 2.0, float("nan"), 1.0], [1.0, float("-inf")], [0.5, 0.4]):
        results = []
        for cb in (callbacks.TerminateOnNaN(), keras.callbacks.TerminateOnNaN()):
            model = FakeModel()
            cb.set_model(model)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                for batch, loss in enumerate(losses):
                    cb.on_train_batch_end(batch, {"loss": loss})
                    if model.stop_training:
                        break
            results.append((batch, model.stop_training, out.getvalue()))
        assert results[0] == results[1]


# ----------------------------------------------------- LearningRateScheduler
def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    x, y = blobs()
    model = classifier(learning_rate=0.1)
    used = []
    history, out = quiet(model.fit, x, y, epochs=4, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1), verbose=1),
        callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: used.append(float(model.optimizer.learning_rate)))])
    # the rate is a float32 variable, as in Keras: what it reads is the float32 value of the rate set
    assert used == [float(numpy.float32(r)) for r in (0.1, 0.05, 0.1 / 3, 0.025)]
    assert history.history["learning_rate"] == used
    assert isinstance(history.history["learning_rate"][0], float)
    assert out.splitlines()[:2] == ["", "Epoch 1: LearningRateScheduler setting learning rate to 0.1."]


def test_learning_rate_scheduler_rate_drives_the_step():
    """With one batch per epoch and SGD, each step moves the weights by exactly the scheduled rate."""
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((8, 3))
    y = rng.standard_normal((8, 1))
    model = Sequential([layers.Input((3,)), layers.Dense(1, dtype="float64")])
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="mse")
    rates = [0.1, 0.01, 0.001]
    before = []
    quiet(model.fit, x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch: rates[epoch]),          # Keras 2's one-argument form
        callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: before.append(model.get_weights()))])
    after = before[1:] + [model.get_weights()]
    for rate, (w0, b0), (w1, b1) in zip(rates, before, after):
        err = x @ w0 + b0 - y
        numpy.testing.assert_allclose(w1, w0 - rate * x.T @ (2 * err / err.size), rtol=1e-12)


def test_learning_rate_scheduler_errors():
    x, y = blobs(32)
    model = classifier()
    with pytest.raises(ValueError, match="should be a float"):
        quiet(model.fit, x, y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: "fast")])
    backend.set_random_seed(0)
    scheduled = Sequential([layers.Input((2,)), layers.Dense(3, activation="softmax")])
    scheduled.compile(optimizer=optimizers.SGD(optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)),
                      loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="cannot be set"):
        quiet(scheduled.fit, x, y, epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda e, lr: lr * 0.5)])
    with pytest.raises(TypeError, match="callable"):
        callbacks.LearningRateScheduler(0.1)


def test_learning_rate_scheduler_matches_keras(keras):
    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * 0.5

    results = []
    for cb, model in ((callbacks.LearningRateScheduler(schedule, verbose=1), FakeModel(optimizers.SGD(0.01))),
                      (keras.callbacks.LearningRateScheduler(schedule, verbose=1), FakeModel(Float32Rate(0.01)))):
        trace, _, out, _ = drive(cb, [{"loss": 1.0}] * 5, model=model, on_epoch_begin=True)
        results.append(([t[3] for t in trace], out.replace("0.0024999999441206455", "0.0025")
                        .replace("0.004999999888241291", "0.005").replace("0.009999999776482582", "0.01")
                        .replace("0.0012499999720603228", "0.00125")))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert results[0][1] == results[1][1]


# --------------------------------------------------------- ReduceLROnPlateau
PLATEAU_CASES = [
    dict(values=[1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], patience=2),
    dict(values=[1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], patience=2, cooldown=2),
    dict(values=[1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], patience=1, cooldown=1, min_lr=1e-4),
    dict(values=[1.0, 0.99995, 0.9999, 0.8, 0.79, 0.79, 0.79, 0.7], patience=1, factor=0.5),
    dict(values=[0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7], patience=1, mode="max", key="val_accuracy", verbose=1),
    dict(values=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], patience=0, factor=0.2, min_lr=2e-4, verbose=1),
]


@pytest.mark.parametrize("case", PLATEAU_CASES,
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items() if k != "values"))
def test_reduce_lr_on_plateau_takes_keras_decisions(case, keras):
    case = dict(case)
    values, key = case.pop("values"), case.pop("key", "val_loss")
    ours = drive(callbacks.ReduceLROnPlateau(monitor=key, **case), as_logs(values, key),
                 model=FakeModel(optimizers.SGD(0.01)))
    theirs = drive(keras.callbacks.ReduceLROnPlateau(monitor=key, **case), as_logs(values, key),
                   model=FakeModel(Float32Rate(0.01)))
    assert [t[2] for t in ours[0]] == [t[2] for t in theirs[0]]          # wait counter
    assert [t[3] for t in ours[0]] == pytest.approx([t[3] for t in theirs[0]], rel=1e-6)   # rates
    # Keras prints the float32 rate it read times the factor; the decisions and wording are the same.
    assert [line.split(" to ")[0] for line in ours[2].splitlines()] == \
        [line.split(" to ")[0] for line in theirs[2].splitlines()]


def test_reduce_lr_on_plateau_in_fit_with_cooldown():
    x, y = blobs()
    model = classifier(learning_rate=0.1)
    reducer = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=2, min_delta=10.0,
                                          min_lr=0.02, verbose=1)
    history, out = quiet(model.fit, x, y, epochs=10, verbose=0, validation_split=0.25, callbacks=[reducer])
    # Epoch 1 sets the best; no later epoch improves by 10. A reduction after 2 waiting epochs; as in
    # Keras, the cooldown counts down at the start of each check, so cooldown=2 keeps one epoch out
    # of the count: reductions at epochs 3, 6, 9 (1-based), min_lr capping the last. Logs show the
    # rate the epoch trained with.
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025,
                                                              0.02])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)
    assert all(isinstance(rate, float) for rate in history.history["learning_rate"])
    assert [line for line in out.splitlines() if line] == [
        # half the float32 value the rate variable holds, as Keras prints it
        "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.05000000074505806.",
        "Epoch 6: ReduceLROnPlateau reducing learning rate to 0.02500000037252903.",
        "Epoch 9: ReduceLROnPlateau reducing learning rate to 0.02."]


def test_reduce_lr_on_plateau_arguments_and_missing_monitor(keras):
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.0)
    with pytest.warns(DeprecationWarning, match="min_delta"):
        assert callbacks.ReduceLROnPlateau(epsilon=0.5).min_delta == 0.5
    with pytest.raises(TypeError, match="unexpected"):
        callbacks.ReduceLROnPlateau(wait=3)
    logs = [{"loss": 1.0}] * 2
    ours = drive(callbacks.ReduceLROnPlateau(), logs, model=FakeModel(optimizers.SGD(0.01)))
    theirs = drive(keras.callbacks.ReduceLROnPlateau(), logs, model=FakeModel(Float32Rate(0.01)))
    assert ours[3] == theirs[3] == ["Learning rate reduction is conditioned on metric `val_loss` which is not "
                                    "available. Available metrics are: loss,learning_rate."] * 2


def test_reduce_lr_on_plateau_defaults_match_keras(keras):
    import inspect
    for name in ("EarlyStopping", "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN"):
        ours = inspect.signature(getattr(callbacks, name)).parameters
        theirs = inspect.signature(getattr(keras.callbacks, name)).parameters
        assert {k: p.default for k, p in ours.items()} == {k: p.default for k, p in theirs.items()}, name


# ----------------------------------------------------------------- CSVLogger
def test_csv_logger_writes_what_keras_writes(tmp_path, keras):
    runs = [[{"loss": 1.5, "accuracy": 0.25, "val_loss": 1.6, "val_accuracy": 0.2},
             {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4, "extra": 3}],
            [{"loss": 0.5, "accuracy": 0.75}, {"loss": 0.25}]]
    for append in (False, True):
        files = []
        for lib, folder in ((callbacks, "ours"), (keras.callbacks, "keras")):
            path = tmp_path / f"{folder}-{append}" / "log.csv"
            path.parent.mkdir()
            for logs in runs:                                        # two fit() calls
                cb = lib.CSVLogger(str(path), separator=";" if append else ",", append=append)
                drive(cb, logs)
            files.append(path.read_bytes())
        assert files[0] == files[1]
    assert files[0].decode().splitlines() == [
        "epoch;accuracy;loss;val_accuracy;val_loss", "0;0.25;1.5;0.2;1.6", "1;0.5;1.0;0.4;1.1",
        "0;0.75;0.5;NA;NA", "1;NA;0.25;NA;NA"]


def test_csv_logger_in_fit(tmp_path):
    x, y = blobs()
    path = tmp_path / "training.csv"
    history, _ = quiet(classifier().fit, x, y, epochs=3, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    rows = path.read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss,val_accuracy,val_loss"   # no validation: val_ columns of NA
    assert len(rows) == 4
    for epoch, row in enumerate(rows[1:]):
        cells = row.split(",")
        assert cells[0] == str(epoch) and cells[3:] == ["NA", "NA"]
        assert float(cells[1]) == history.history["accuracy"][epoch]
        assert float(cells[2]) == history.history["loss"][epoch]
    quiet(classifier().fit, x, y, epochs=2, verbose=0, validation_split=0.2,
          callbacks=[callbacks.CSVLogger(path, append=True)])
    rows = path.read_text().splitlines()
    assert len(rows) == 6 and rows.count(rows[0]) == 1              # appended under the same header


# ------------------------------------------------------- the hooks fit calls

class HookTrace(callbacks.Callback):
    """Records each hook called, its step, and the names in its logs (None when given no logs)."""

    HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
             "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
             "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end")

    def __init__(self):
        super().__init__()
        self.trace = []
        for hook in self.HOOKS:
            setattr(self, hook, self._recorder(hook))

    def _recorder(self, hook):
        def record(*args):
            *step, logs = args if args else (None,)
            self.trace.append((hook, *step, None if logs is None else sorted(logs)))
        return record

    def wants_batch_logs(self, batch):
        return True


def test_fit_evaluate_and_predict_call_the_hooks_keras_calls():
    # The sequences Keras 3 (torch backend) produces for the same calls.
    x, y = blobs(10)
    model = classifier()
    trace = HookTrace()
    model.fit(x, y, batch_size=5, epochs=2, validation_data=(x[:4], y[:4]), verbose=0, callbacks=[trace])
    train, test = ["accuracy", "loss"], ["accuracy", "loss", "val_accuracy", "val_loss"]
    epoch = lambda e: [("on_epoch_begin", e, []),
                       ("on_train_batch_begin", 0, []), ("on_train_batch_end", 0, train),
                       ("on_train_batch_begin", 1, []), ("on_train_batch_end", 1, train),
                       ("on_test_begin", []), ("on_test_batch_begin", 0, []), ("on_test_batch_end", 0, train),
                       ("on_test_end", train), ("on_epoch_end", e, test)]
    assert trace.trace == [("on_train_begin", [])] + epoch(0) + epoch(1) + [("on_train_end", test)]

    trace = HookTrace()
    model.evaluate(x, y, batch_size=5, verbose=0, callbacks=[trace])
    assert trace.trace == [("on_test_begin", []),
                           ("on_test_batch_begin", 0, []), ("on_test_batch_end", 0, train),
                           ("on_test_batch_begin", 1, []), ("on_test_batch_end", 1, train),
                           ("on_test_end", train)]

    trace = HookTrace()
    outputs = []
    model.predict(x, batch_size=5, verbose=0,
                  callbacks=[trace, callbacks.LambdaCallback(
                      on_predict_batch_end=lambda batch, logs: outputs.append(logs["outputs"]))])
    assert trace.trace == [("on_predict_begin", []),
                           ("on_predict_batch_begin", 0, []), ("on_predict_batch_end", 0, ["outputs"]),
                           ("on_predict_batch_begin", 1, []), ("on_predict_batch_end", 1, ["outputs"]),
                           ("on_predict_end", [])]
    numpy.testing.assert_array_equal(numpy.concatenate(outputs), model.predict(x, verbose=0))


def test_the_progress_bar_of_fit_is_one_line_per_epoch_with_validation():
    x, y = blobs(40)
    _, printed = quiet(classifier().fit, x, y, batch_size=8, epochs=2, validation_split=0.25, verbose=2)
    lines = [line for line in printed.splitlines() if "/step" in line]
    assert len(lines) == 2 and all(line.startswith("4/4 ") and "val_loss" in line for line in lines)


def test_on_batch_begin_and_end_are_the_training_batch_hooks_older_names():
    # Keras 3's Callback.on_train_batch_begin/end call on_batch_begin/end, which Keras 2 code overrides.
    class Keras2Style(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_batch_begin(self, batch, logs=None):
            self.seen.append(("begin", batch, logs))

        def on_batch_end(self, batch, logs=None):
            self.seen.append(("end", batch, sorted(logs)))

    x, y = blobs(10)
    old_style = Keras2Style()
    ends = []
    classifier().fit(x, y, batch_size=5, epochs=1, verbose=0,
                     callbacks=[old_style,
                                callbacks.LambdaCallback(on_batch_end=lambda batch, logs: ends.append(batch))])
    assert old_style.seen == [("begin", 0, {}), ("end", 0, ["accuracy", "loss"]),
                              ("begin", 1, {}), ("end", 1, ["accuracy", "loss"])]
    assert ends == [0, 1]


def test_validation_batches_read_no_logs_for_callbacks_that_watch_training_batches(monkeypatch):
    # Building batch logs reads the running loss back from the device: fit's validation batches must not
    # pay for it when no callback has a test batch hook (TerminateOnNaN and ModelCheckpoint watch training).
    x, y = blobs(40)
    model = classifier()
    calls = []
    logs = model._logs
    monkeypatch.setattr(model, "_logs", lambda prefix="": calls.append(prefix) or logs(prefix))
    model.fit(x, y, batch_size=10, epochs=1, validation_data=(x, y), verbose=0,
              callbacks=[callbacks.TerminateOnNaN()])
    assert len(calls) == 4 + 1 + 1                 # 4 training batches, the epoch's logs, the validation logs


def test_the_hooks_get_their_logs_through_pythonify_logs_once():
    from gpu_dl.backprop import LossValue
    from gpu_dl.callbacks.base import CallbackList, pythonify_logs
    logs = {"b": numpy.float32(2.0), "a": {"y": numpy.array([3.0]), "x": LossValue(numpy.float64(1.0))},
            "c": numpy.arange(3.0)}
    handed = pythonify_logs(logs)
    # sorted by key, a dict's entries spread in its key's place, one number as a Python float
    assert list(handed) == ["x", "y", "b", "c"] and handed["x"] == 1.0 and handed["y"] == 3.0
    assert all(type(handed[k]) is float for k in "xyb") and handed["c"].tolist() == [0.0, 1.0, 2.0]
    seen = []
    hooks = CallbackList([callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs),
                                                   on_train_batch_end=lambda batch, logs: seen.append(logs))],
                         None, {})
    hooks.call("on_epoch_end", 0, {"val_loss": 1.0, "loss": numpy.float32(2.0)})
    hooks.batch("on_train_batch_end", 0, lambda: {"z": 1.0, "a": {"y": 2.0}})
    assert [list(s.items()) for s in seen] == [[("loss", 2.0), ("val_loss", 1.0)], [("y", 2.0), ("z", 1.0)]]
