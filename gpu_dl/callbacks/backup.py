"""``BackupAndRestore``: resume a ``fit`` that was interrupted, as Keras 3.15's callback does.

During training it writes, in ``backup_dir``, ``latest.weights.h5`` (the
model's weights and its optimizer's state, gpu_dl's ``save_weights``) and
``training_metadata.json`` (``{"epoch": epochs finished, "batch": last batch
seen}``), after each epoch (``save_freq="epoch"``) or every ``save_freq``
batches. Both are written atomically (a temporary file renamed over the old
one), so a crash during a save leaves the previous backup whole; with
``double_checkpoint`` the previous pair is also kept as ``*.bkp`` and is loaded
when the latest cannot be read.

When ``fit`` starts with a backup present, the weights and optimizer state
are loaded and training resumes at the epoch the metadata records (the one
after the last finished epoch; a backup taken mid-epoch re-runs that epoch
from its start, with the weights of the save, as Keras does). With the same
data, order (``shuffle=False``, or the same seed for each run) and callbacks,
the resumed run ends with the weights an uninterrupted one would.

A ``fit`` that ends normally deletes the backup (``delete_checkpoint``).
Keras removes the whole ``backup_dir`` tree; gpu_dl removes the files it wrote
and then the directory only if it is empty, so a directory shared with other
files is never wiped.
"""
from __future__ import annotations

import json
import os
import shutil

from .base import Callback

WEIGHTS_FILENAME = "latest.weights.h5"
METADATA_FILENAME = "training_metadata.json"
# Larger metadata is not a backup's: refused before it is read.
_MAX_METADATA_BYTES = 1 << 16


class BackupAndRestore(Callback):
    """``BackupAndRestore(backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True)``; see the
    module docstring."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        try:
            backup_dir = os.fspath(backup_dir)
        except TypeError:
            raise TypeError(f"`backup_dir` must be a path (str or os.PathLike), got {backup_dir!r}.") from None
        if not isinstance(backup_dir, str):
            raise TypeError(f"`backup_dir` must be a path (str or os.PathLike), got {backup_dir!r}.")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq!r}. Expected "
                             "either 'epoch' or a positive integer value.")
        self.backup_dir = backup_dir
        self.save_freq = save_freq
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._weights_path = os.path.join(backup_dir, WEIGHTS_FILENAME)
        self._training_metadata_path = os.path.join(backup_dir, METADATA_FILENAME)
        self._prev_weights_path = f"{self._weights_path}.bkp"
        self._prev_training_metadata_path = f"{self._training_metadata_path}.bkp"
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0

    # ------------------------------------------------------------ restore
    def on_train_begin(self, logs=None):
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        try:
            self._load_model()
        except (OSError, ValueError):
            # The latest backup may have been cut short by a crash: the one kept before it, if any, is whole.
            if not os.path.exists(self._prev_weights_path):
                raise
            shutil.copyfile(self._prev_weights_path, self._weights_path)
            if os.path.exists(self._prev_training_metadata_path):
                shutil.copyfile(self._prev_training_metadata_path, self._training_metadata_path)
            elif os.path.exists(self._training_metadata_path):
                os.remove(self._training_metadata_path)
            self._load_model()

    def _load_model(self):
        if not self.model.built:
            raise ValueError(f"To use the BackupAndRestore callback, your model must be built before you call `fit()`. "
                             f"Model '{self.model.name}' is unbuilt. You can build it beforehand by calling it on a "
                             "batch of data.")
        if os.path.exists(self._weights_path):
            self.model.load_weights(self._weights_path)
        if os.path.exists(self._training_metadata_path):
            epoch = self._read_epoch(self._training_metadata_path)
            self.model._initial_epoch = epoch
            self._current_epoch = epoch

    @staticmethod
    def _read_epoch(path):
        if os.path.getsize(path) > _MAX_METADATA_BYTES:
            raise ValueError(f"{path}: {os.path.getsize(path)} bytes is not a BackupAndRestore metadata file.")
        with open(path, encoding="utf-8") as f:
            try:
                metadata = json.loads(f.read())
            except (UnicodeDecodeError, ValueError) as e:
                raise ValueError(f"{path}: not valid JSON ({e}); the backup is damaged.") from None
        epoch = metadata.get("epoch") if isinstance(metadata, dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"{path}: expected {{'epoch': a non-negative integer, ...}}, got {metadata!r:.200}.")
        return epoch

    # ------------------------------------------------------------ back up
    def wants_batch_logs(self, batch):
        return self.save_freq != "epoch"

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if self.save_freq == "epoch":
            self._save_model()

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model()

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        if batch <= self._last_batch_seen:      # a new epoch: batches count from 0
            add_batches = batch + 1
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _save_model(self):
        from ..models.saving import atomic_write
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for source, target in ((self._weights_path, self._prev_weights_path),
                                   (self._training_metadata_path, self._prev_training_metadata_path)):
                if os.path.exists(source):
                    atomic_write(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
        self.model.save_weights(self._weights_path, overwrite=True)
        text = json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})

        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)

        atomic_write(self._training_metadata_path, write)

    # ------------------------------------------------------------ clean up
    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        for path in (self._weights_path, self._training_metadata_path, self._prev_weights_path,
                     self._prev_training_metadata_path):
            if os.path.exists(path):
                os.remove(path)
        try:
            os.rmdir(self.backup_dir)       # only when nothing else is left in it
        except OSError:
            pass
