"""Callbacks that set the optimizer's learning rate: LearningRateScheduler and ReduceLROnPlateau."""
from __future__ import annotations

import numpy

from ..backend.user_warnings import warn
from .base import Callback
from .monitor import MonitorCallback, _print_msg


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
            warn("ReduceLROnPlateau: `epsilon` is the legacy name of `min_delta`; use `min_delta`.",
                 DeprecationWarning)
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
            warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                 f"available. Available metrics are: {','.join(list(logs.keys()))}.")
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
