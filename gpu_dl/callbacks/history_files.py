"""Callbacks that write the run's history as it goes: CSVLogger and the TrainingCurves PNG."""
from __future__ import annotations

import csv
import os

import numpy

from .base import Callback


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
        from ..utils import plotting
        plotting.require_matplotlib()
        self.path = os.fspath(path)
        if isinstance(metrics, str):
            metrics = [metrics]
        self.metrics = None if metrics is None else list(metrics)
        self.history = {}       # name -> list of (epoch number from 1, value)

    def on_train_begin(self, logs=None):
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        from ..utils import plotting
        for key, value in (logs or {}).items():
            number = plotting.as_number(value)
            if number is not None:
                self.history.setdefault(key, []).append((epoch + 1, number))
        plotting.plot_history(self.history, self.path, metrics=self.metrics)
