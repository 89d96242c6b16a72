"""Callbacks that stop training: EarlyStopping and TerminateOnNaN."""
from __future__ import annotations

import math

from ..backend.user_warnings import warn
from .base import Callback
from .monitor import MonitorCallback, _print_msg


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
            warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                 f"Available metrics are: {','.join(list(logs.keys()))}")
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
