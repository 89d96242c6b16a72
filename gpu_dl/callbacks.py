"""Keras callbacks: hooks the training loop calls at the start and end of
training, of each epoch and of each batch.

Batch hooks receive ``logs`` only when some callback overrides them: building
the running averages reads scalars back from the GPU, so the loop skips it
when nobody listens.
"""
from __future__ import annotations

import csv
import math
import os
import warnings

import numpy

from .utils.progbar import Progbar

_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")


class Callback:
    """Base class: override the hooks you need. ``self.model`` and ``self.params`` are set by the loop."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    def wants_batch_logs(self, batch):
        """Whether this callback needs this batch's logs; by default, when it overrides a batch hook."""
        return any(getattr(type(self), hook) is not getattr(Callback, hook) for hook in _BATCH_HOOKS)


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` and friends. ``fit`` returns it."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class LambdaCallback(Callback):
    """A callback made of plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        functions = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                         on_train_begin=on_train_begin, on_train_end=on_train_end,
                         on_train_batch_begin=on_train_batch_begin, on_train_batch_end=on_train_batch_end, **kwargs)
        for hook, function in functions.items():
            if not hook.startswith("on_") or not hasattr(Callback, hook):
                raise TypeError(f"LambdaCallback got an unknown hook {hook!r}.")
            if function is not None:
                if not callable(function):
                    raise TypeError(f"LambdaCallback: {hook} must be callable, got {function!r}.")
                setattr(self, hook, function)
        self._batch_hooks = any(functions.get(h) for h in _BATCH_HOOKS)

    def wants_batch_logs(self, batch):
        return self._batch_hooks


class ProgbarLogger(Callback):
    """Draws the Keras-style progress bar for fit/evaluate/predict."""

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose
        self.bar = None

    def _new_bar(self, target):
        self.bar = Progbar(target, verbose=self.verbose)

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.params['epochs']}", flush=True)
        self._new_bar(self.params.get("steps"))

    def wants_batch_logs(self, batch):
        return self.bar is not None and self.bar.wants_values(batch + 1) and batch + 1 != self.bar.target

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 != self.bar.target:
            self.bar.update(batch + 1, _shown(logs))

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(self.params.get("steps") or 1, _shown(logs), finalize=True)

    def on_test_begin(self, logs=None):
        if not self.params.get("in_fit"):
            self._new_bar(self.params.get("steps"))

    def on_test_batch_end(self, batch, logs=None):
        if not self.params.get("in_fit") and batch + 1 != self.bar.target:
            self.bar.update(batch + 1, _shown(logs))

    def on_test_end(self, logs=None):
        if not self.params.get("in_fit"):
            self.bar.update(self.params.get("steps") or 1, _shown(logs), finalize=True)

    def on_predict_begin(self, logs=None):
        self._new_bar(self.params.get("steps"))

    def on_predict_end(self, logs=None):
        self.bar.update(self.params.get("steps") or 1, {}, finalize=True)


def _shown(logs):
    """Logs in the order Keras 3 prints them: sorted by name."""
    return {key: logs[key] for key in sorted(logs or {})}


class CallbackList:
    """Calls every callback's hook in order; builds batch logs only for those that want them."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def batch(self, hook, batch, logs_fn):
        """Call a batch hook; ``logs_fn()`` is evaluated once, and only if a callback wants the logs."""
        logs = None
        for cb in self.callbacks:
            if cb.wants_batch_logs(batch):
                if logs is None:
                    logs = logs_fn()
                getattr(cb, hook)(batch, logs)


# ------------------------------------------------------------------ monitoring
# Metrics that Keras 3 marks as better when higher (``_direction = "up"``); the
# other built-in metrics average a loss and are better when lower.
_METRICS_UP = frozenset({
    "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "CosineSimilarity", "R2Score",
    "AUC", "Precision", "Recall", "PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity",
    "SpecificityAtSensitivity", "F1Score", "FBetaScore", "IoU", "MeanIoU", "BinaryIoU", "OneHotIoU",
    "OneHotMeanIoU", "PearsonCorrelation", "ConcordanceCorrelation",
})
_METRICS_DOWN = frozenset({
    "MeanSquaredError", "RootMeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "LogCoshError", "KLDivergence", "Poisson", "Hinge", "SquaredHinge",
    "CategoricalHinge", "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
})


def _metric_direction(metric):
    """"up", "down" or None (unknown) for a compiled metric, as Keras 3's ``Metric._direction``."""
    direction = getattr(metric, "_direction", None)
    if direction in ("up", "down"):
        return direction
    name = type(metric).__name__
    if name in _METRICS_UP:
        return "up"
    if name in _METRICS_DOWN:
        return "down"
    # A metric that averages a loss function (Keras: a fn in losses.ALL_OBJECTS) is minimised.
    fn = getattr(metric, "_fn", None)
    if fn is not None:
        from . import losses
        owner = getattr(fn, "__self__", None)
        if getattr(fn, "__module__", None) == losses.__name__ or isinstance(owner, losses.Loss):
            return "down"
    return None


def _print_msg(message):
    print(message, flush=True)


class MonitorCallback(Callback):
    """Base of callbacks that watch one logged quantity (Keras 3's ``MonitorCallback``).

    ``mode="auto"`` minimises ``loss``/``val_loss`` and otherwise asks the
    compiled metric of that name which way is better; an unknown direction is
    an error asking for ``mode="min"`` or ``mode="max"``. An improvement is a
    change beyond ``min_delta`` in the better direction.
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = numpy.less
        elif self.mode == "max":
            self.monitor_op = numpy.greater
        else:
            metric_name = self.monitor.removeprefix("val_")
            if metric_name == "loss":
                self.monitor_op = numpy.less
            for metric in getattr(self.model, "_metrics", None) or []:
                if metric.name == metric_name:
                    direction = _metric_direction(metric)
                    if direction is not None:
                        self.monitor_op = numpy.greater if direction == "up" else numpy.less
            if self.monitor_op is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but gpu_dl isn't able to "
                    "automatically determine whether that metric should be maximized or minimized. Pass "
                    "`mode='max'` in order to monitor based on the highest metric value, or pass `mode='min'` "
                    "in order to use the lowest value.")
        if self.monitor_op is numpy.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))


class EarlyStopping(MonitorCallback):
    """Stop training when the monitored quantity has stopped improving (Keras 3's ``EarlyStopping``).

    After each epoch from ``start_from_epoch`` on, an epoch that does not
    improve on the best value by more than ``min_delta`` counts towards
    ``patience``; when ``patience`` such epochs have passed, the loop stops
    after this epoch. With ``baseline``, the count restarts only on epochs that
    also beat the baseline. ``restore_best_weights`` puts back, at the end of
    training, the weights of the best epoch seen.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = 0
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        # The same instance may serve several fit() calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Nothing recorded yet: the current weights are the best so far.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # The count restarts only on an epoch that beats both the baseline and the best so far.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print_msg(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(list(logs.keys()))}", stacklevel=2)
        return value


class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite (Keras 3's ``TerminateOnNaN``).

    By default the loop stops after that batch (``on_train_end`` still runs);
    ``raise_error=True`` raises a RuntimeError at once instead.
    """

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            _print_msg(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


def _current_rate(optimizer):
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError('Optimizer must have a "learning_rate" attribute.')
    return float(optimizer.learning_rate)


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch (Keras 3's ``LearningRateScheduler``).

    ``schedule(epoch, lr)`` (epoch counted from 0, ``lr`` the current rate)
    returns the new rate as a float; a one-argument ``schedule(epoch)`` also
    works. The optimizer must have a plain-number learning rate: one given by
    a ``LearningRateSchedule`` cannot be set. Each epoch's logs gain
    ``learning_rate``.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: `schedule` must be callable, got {schedule!r}.")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        try:
            learning_rate = self.schedule(epoch, _current_rate(optimizer))
        except TypeError:
            # Keras 2's one-argument schedules.
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, numpy.float32, numpy.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            _print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _current_rate(self.model.optimizer)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` when the monitored quantity stops improving
    (Keras 3's ``ReduceLROnPlateau``).

    After ``patience`` epochs without an improvement beyond ``min_delta`` the
    rate becomes ``max(lr * factor, min_lr)``; the next ``cooldown`` epochs do
    not count towards patience. Rates are compared in float32, as Keras keeps
    them, so a rate already at ``min_lr`` is left alone. Each epoch's logs gain
    ``learning_rate``. The legacy ``epsilon=`` names ``min_delta``.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        if "epsilon" in kwargs:
            min_delta = kwargs.pop("epsilon")
            warnings.warn("ReduceLROnPlateau: `epsilon` is the legacy name of `min_delta`; use `min_delta`.",
                          DeprecationWarning, stacklevel=2)
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected keyword argument(s): {', '.join(sorted(kwargs))}.")
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def _reduce_lr(self, epoch):
        optimizer = self.model.optimizer
        old_lr = _current_rate(optimizer)
        if numpy.float32(old_lr) > numpy.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            return True
        return False

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = {} if logs is None else logs
        logs["learning_rate"] = _current_rate(self.model.optimizer)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce_lr(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file (Keras 3's ``CSVLogger``).

    Columns: ``epoch``, then the first epoch's log names sorted; without
    validation, ``val_*`` columns are added too (filled with ``NA``).
    ``append=True`` adds to an existing file and writes the header only when
    the file is empty. Each row is flushed as it is written.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        # newline="": the csv module writes its own line ends ("\r\n", as Keras's files have).
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(value):
            if isinstance(value, str):
                return value
            if hasattr(value, "__iter__") and not (isinstance(value, numpy.ndarray) and value.ndim == 0):
                return f'"[{", ".join(map(str, value))}]"'
            return value

        if self.keys is None:
            self.keys = sorted(logs.keys())
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{key}" for key in self.keys])
        if not self.writer:
            class Dialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + (self.keys or []), dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class TrainingCurves(Callback):
    """Redraw a figure of the loss and each metric per epoch, training and validation, after every epoch.

    Not in Keras: a loss plot without TensorBoard. ``metrics`` names the
    panels (``["loss", "accuracy"]``; each shows the name and its ``val_``
    twin); ``None`` draws every quantity logged. The image format follows the
    file's extension (``.png``, ``.svg``, ``.pdf``); each drawing replaces the
    file atomically, so a viewer never reads half an image. Needs matplotlib
    (a dependency of gpu_dl), drawn off-screen: no window opens.
    """

    def __init__(self, path="training_curves.png", metrics=None):
        super().__init__()
        from .utils import plotting
        plotting.require_matplotlib()
        self.path = os.fspath(path)
        if isinstance(metrics, str):
            metrics = [metrics]
        self.metrics = None if metrics is None else list(metrics)
        self.history = {}       # name -> list of (epoch number from 1, value)

    def on_train_begin(self, logs=None):
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        from .utils import plotting
        for key, value in (logs or {}).items():
            number = plotting.as_number(value)
            if number is not None:
                self.history.setdefault(key, []).append((epoch + 1, number))
        plotting.plot_history(self.history, self.path, metrics=self.metrics)


class ModelCheckpoint(MonitorCallback):
    """Save the model (or its weights) during training (Keras 3's ``ModelCheckpoint``).

    ``filepath`` may hold ``{epoch:02d}`` (counted from 1), ``{batch}`` and any
    logged name (``{val_loss:.2f}``). It must end in ``.keras`` (the whole
    model, ``model.save``), or in ``.weights.h5`` with ``save_weights_only``.
    ``save_freq="epoch"`` saves after each epoch; an integer saves every that
    many batches. With ``save_best_only`` a file is written only when
    ``monitor`` improves on the best value so far (``initial_value_threshold``,
    if given, is the value to beat first); ``mode`` says which way is better
    (``"auto"`` as in ``MonitorCallback``). Each save replaces the file
    atomically.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        if self.save_freq != "epoch" and (isinstance(self.save_freq, bool) or not isinstance(self.save_freq, int)
                                          or self.save_freq <= 0):
            raise ValueError(f"Unrecognized save_freq: {self.save_freq}. Expected save_freq are 'epoch' or "
                             "positive integer values")
        if save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided "
                                 f"must end in `.weights.h5` (Keras weights format). Received: filepath={self.filepath}")
        elif not self.filepath.endswith(".keras"):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). "
                             f"Received: filepath={self.filepath}")

    def wants_batch_logs(self, batch):
        return self.save_freq != "epoch"

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            add_batches = batch + 1     # a new epoch: batches count from 0
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch, logs, filepath):
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        if numpy.ndim(current) > 0:
            warnings.warn(f"Can save best model only when `monitor` is a scalar value. Received: {current}. "
                          "Falling back to `save_best_only=False`.", stacklevel=3)
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                           f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, logs, filepath):
            return
        dirname = os.path.dirname(filepath)
        if dirname and not os.path.exists(dirname):
            os.makedirs(dirname, exist_ok=True)
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an "
                          f"existing directory: {filepath}")
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)
        if self.verbose > 0:
            _print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from None
