"""TensorBoard: write the run's scalars, weight histograms and model config as TensorBoard event files."""
from __future__ import annotations

import itertools
import numbers
import os
import time

import numpy

from .. import backend
from ..backend import profiler
from ..backend.user_warnings import warn
from . import tensorboard_events as events
from .base import Callback

# tensorboardX names a file after the second and the host only, and opens it for writing from the start: two
# writers of one folder within a second (fit, then evaluate) would leave one file. TensorFlow adds the process
# and a counter, and so does this.
_file_numbers = itertools.count()


class TensorBoard(Callback):
    """Write event files for TensorBoard (Keras 3's ``TensorBoard``), with tensorboardX instead of TensorFlow.

    Needs the ``tensorboardX`` package: ``pip install "gpu_dl[tensorboard]"``.
    Then ``tensorboard --logdir LOG_DIR`` shows the run. Training summaries go
    to ``LOG_DIR/train``, validation and evaluation ones to
    ``LOG_DIR/validation``, with Keras's tags and steps:

    - each epoch (step = the epoch, from 0): ``epoch_<name>`` for each logged
      quantity (``epoch_loss``, ``epoch_accuracy``, ...) and
      ``epoch_learning_rate`` under ``train``; the ``val_`` quantities under
      ``validation`` without their prefix (``epoch_loss``); with
      ``write_steps_per_second``, ``epoch_steps_per_second``;
    - at the end of each evaluation, fit's validation included:
      ``evaluation_<name>_vs_iterations`` under ``validation``, at the step
      ``model.optimizer.iterations``;
    - ``update_freq="batch"`` or an integer N: ``batch_<name>`` every N
      training batches (and ``batch_steps_per_second``), at the step counting
      the training batches of this ``fit`` from 1. With ``"epoch"`` no batch's
      logs are read, so nothing waits for the GPU between batches;
    - ``histogram_freq`` N > 0: a histogram of each layer's weights at epochs
      0, N, 2N, ..., tagged ``<weight path>/histogram`` as Keras's weight paths
      are (``sequential/dense/kernel`` in a Sequential model, ``dense/kernel``
      in a functional one), with 30 buckets as tf.summary.histogram makes
      (over the finite values); with ``write_images``, at the same epochs the
      weights as images (``<weight path>/image``), laid out and scaled as
      Keras lays them out: a value v becomes the grey level 255.5 v clipped
      to 0..255, so negative weights are black;
    - ``write_graph``: Keras's graph of a TensorFlow function does not exist
      here; what Keras also writes, the model's JSON config under the tag
      ``keras`` (TensorBoard's Graphs tab draws the layers from it), is
      written, once for each fit, evaluate or predict, at step 0.

    ``profile_batch``: N, ``(start, stop)`` or ``"start,stop"``, counting
    training batches from 1 across the epochs of a ``fit`` (0 turns it off).
    Where Keras runs TensorFlow's profiler over those batches, gpu_dl calls
    the CUDA profiler API: ``cudaProfilerStart`` before batch ``start``,
    ``cudaProfilerStop`` after batch ``stop`` (once the GPU has finished
    its work), so ``nsys profile --capture-range=cudaProfilerApi`` records
    exactly those batches. On the CPU it does nothing.

    ``embeddings_freq`` > 0 is refused: Keras writes TensorBoard's projector
    a config pointing at weight files that the projector cannot read.
    ``embeddings_metadata`` is accepted and, as in Keras with
    ``embeddings_freq=0``, unused.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"TensorBoard: `log_dir` must be a path (str or os.PathLike), got {log_dir!r}.")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = _non_negative_int(histogram_freq, "histogram_freq")
        self.write_graph = _flag(write_graph, "write_graph")
        self.write_images = _flag(write_images, "write_images")
        self.write_steps_per_second = _flag(write_steps_per_second, "write_steps_per_second")
        self.update_freq = _update_freq(update_freq)
        self._start_batch, self._stop_batch = _profile_range(profile_batch)
        self.embeddings_freq = _non_negative_int(embeddings_freq, "embeddings_freq")
        if self.embeddings_freq:
            raise NotImplementedError(
                f"TensorBoard: `embeddings_freq={embeddings_freq}` is not supported: gpu_dl writes no embeddings "
                "for TensorBoard's projector (it reads TensorFlow checkpoints). Leave `embeddings_freq=0`.")
        if embeddings_metadata is not None and not isinstance(embeddings_metadata, (str, dict)):
            raise TypeError("TensorBoard: `embeddings_metadata` must be a file name, a dict of layer name to file "
                            f"name, or None, got {embeddings_metadata!r}.")
        self.embeddings_metadata = embeddings_metadata
        events.require_tensorboardx()
        # Keras warms TensorFlow's profiler up here with a start/stop pair; a CUDA one would close nsys's
        # capture range (cudaProfilerApi) before the chosen batches, so there is none.
        self._should_trace = self._stop_batch > 0
        self._writers = {}
        self._epoch_base = 0            # training batches of this fit before the current epoch
        self._begun = 0                 # the batch (counted from 1) whose on_train_batch_begin ran last
        self._batch_start_time = 0.0
        self._epoch_start_time = 0.0
        self._epoch_start_iterations = 0
        self._profiling = False
        self._in_fit = False

    # ------------------------------------------------------------------ writers
    def _writer(self, name):
        """The FileWriter of ``train`` or ``validation``, made when first written to (as Keras makes its own):
        a run without validation leaves no empty ``validation`` folder."""
        if name not in self._writers:
            import tensorboardX
            suffix = f".{os.getpid()}.{next(_file_numbers)}"
            self._writers[name] = tensorboardX.FileWriter(os.path.join(self.log_dir, name), filename_suffix=suffix)
        return self._writers[name]

    def _write(self, name, summary, step):
        if summary is not None:
            self._writer(name).add_summary(summary, global_step=step)

    def _flush(self):
        for writer in self._writers.values():
            writer.flush()

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # -------------------------------------------------------------- the hooks
    def set_model(self, model):
        super().set_model(model)
        self._close_writers()
        if self.write_graph and type(model).__name__ in ("Sequential", "Functional"):
            try:
                config = model.to_json()
            except Exception as exc:   # as Keras: a model that cannot be serialised still trains
                warn(f"Model failed to serialize as JSON. Ignoring... {exc}")
            else:
                self._write("train", events.model_config(config), 0)
                self._flush()

    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._epoch_base = 0
        self._begun = 0

    def on_train_end(self, logs=None):
        self._in_fit = False
        if self._profiling:
            self._stop_profiler()
        self._close_writers()

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._epoch_start_iterations = self._iterations()
            self._epoch_start_time = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        # The loop has set params["steps"] to this epoch's batch count by now, even for a generator of unknown length.
        self._epoch_base += self.params.get("steps") or 0
        self._log_epoch_metrics(epoch, logs)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        self._flush()

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "iterations"):
            step = int(optimizer.iterations)
            for name, value in (logs or {}).items():
                self._write_scalar("validation", f"evaluation_{name}_vs_iterations", value, step)
        self._end_outside_fit()

    def on_predict_end(self, logs=None):
        self._end_outside_fit()

    def _end_outside_fit(self):
        """An evaluate or predict of its own ends here: close its files (and their writer threads) as fit's
        on_train_end does; within fit, validation leaves them open for the epoch's scalars."""
        if self._in_fit:
            self._flush()
        else:
            self._close_writers()

    # The batch hooks run only where wants_batch_logs says so; the loop asks it before each hook.
    def wants_batch_logs(self, batch):
        step = self._epoch_base + batch + 1
        if self._begun == step:     # asked before on_train_batch_end of the batch just begun
            return self._needs_batch_end(step)
        return self._needs_batch_begin(step) or self._needs_batch_end(step)

    def _writes_batch(self, step):
        return self.update_freq != "epoch" and step % self.update_freq == 0

    def _needs_batch_begin(self, step):
        return (self.write_steps_per_second and self._writes_batch(step)) or \
            (self._should_trace and step == self._start_batch)

    def _needs_batch_end(self, step):
        return self._writes_batch(step) or (self._profiling and step >= self._stop_batch)

    def on_train_batch_begin(self, batch, logs=None):
        step = self._begun = self._epoch_base + batch + 1
        if self.write_steps_per_second:
            self._batch_start_time = time.perf_counter()
        if self._should_trace and step == self._start_batch:
            self._start_profiler()

    def on_train_batch_end(self, batch, logs=None):
        step = self._epoch_base + batch + 1
        if self._writes_batch(step):
            if self.write_steps_per_second:
                elapsed = time.perf_counter() - self._batch_start_time
                self._write_scalar("train", "batch_steps_per_second", 1.0 / elapsed if elapsed > 0 else 0.0, step)
            for name, value in (logs or {}).items():
                self._write_scalar("train", f"batch_{name}", value, step)
        if self._profiling and step >= self._stop_batch:
            self._stop_profiler()

    # ------------------------------------------------------------------ writing
    def _write_scalar(self, name, tag, value, step):
        number = _number(value)
        if number is not None:      # a per-class metric (an array) has no scalar plot
            self._write(name, events.scalar(tag, number), step)

    def _iterations(self):
        return int(getattr(self.model.optimizer, "iterations", 0))

    def _log_epoch_metrics(self, epoch, logs):
        if not logs:
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
        rate = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        if _number(rate) is not None:
            train_logs["learning_rate"] = _number(rate)
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._epoch_start_time
            steps = self._iterations() - self._epoch_start_iterations
            train_logs["steps_per_second"] = steps / elapsed if elapsed > 0 else 0.0
        for name, value in train_logs.items():
            self._write_scalar("train", f"epoch_{name}", value, epoch)
        for name, value in val_logs.items():
            self._write_scalar("validation", f"epoch_{name}", value, epoch)

    def _log_weights(self, epoch):
        for path, weight in weight_paths(self.model):
            tag = path.replace(":", "_")
            values = backend.to_numpy(weight.value)
            self._write("train", events.histogram(f"{tag}/histogram", values), epoch)
            if self.write_images:
                images = events.weight_images(values)
                if images is not None:
                    self._write("train", events.images(f"{tag}/image", images), epoch)

    # ---------------------------------------------------------------- profiling
    def _start_profiler(self):
        try:
            self._profiling = profiler.start()
        except Exception as exc:    # as Keras: a profiler that fails must not end the run
            warn(f"TensorBoard: could not start the CUDA profiler: {exc}")

    def _stop_profiler(self):
        self._profiling = False
        try:
            profiler.stop()
        except Exception as exc:
            warn(f"TensorBoard: could not stop the CUDA profiler: {exc}")


def weight_paths(model):
    """``(path, variable)`` for each weight of each of the model's layers (a nested model's weights all under it),
    as Keras 3 lists them: the variables' paths carry the name scopes they were made in (a Sequential model builds
    its layers in its own, ``sequential/dense/kernel``; a functional model's layers are built before it exists,
    ``dense/kernel``)."""
    for layer in model.layers:
        for weight in layer.weights:
            yield weight.path, weight


def _number(value):
    """A logged value as a float, or None when it is not one number."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        array = backend.to_numpy(value)
    except (TypeError, ValueError):
        return None
    if array.size != 1 or array.dtype.kind not in "biuf":
        return None
    return float(array.reshape(()))


# ------------------------------------------------------------------ arguments
def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"TensorBoard: `{name}` must be a non-negative integer (a number of epochs; 0 turns it "
                         f"off), got {value!r}.")
    return int(value)


def _flag(value, name):
    if isinstance(value, (bool, numpy.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"TensorBoard: `{name}` must be True or False, got {value!r}.")


def _update_freq(value):
    if value in ("epoch", "batch"):
        return 1 if value == "batch" else "epoch"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"TensorBoard: `update_freq` must be 'epoch', 'batch' or a positive integer (a number of "
                         f"batches), got {value!r}.")
    return int(value)


def _profile_range(value):
    """``(start, stop)`` of the batches to profile, counted from 1; ``(0, 0)`` when profiling is off."""
    message = ("TensorBoard: `profile_batch` must be a non-negative integer, a pair (start, stop) of positive "
               f"integers with start <= stop, or the string 'start,stop'; got {value!r}.")
    pair = value
    if isinstance(value, str):
        try:
            pair = [int(part) for part in value.split(",")]
        except ValueError:
            raise ValueError(message) from None
        pair = pair[0] if len(pair) == 1 else pair
    if isinstance(pair, numbers.Integral) and not isinstance(pair, bool):
        pair = (pair, pair)
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or \
            any(isinstance(p, bool) or not isinstance(p, numbers.Integral) for p in pair):
        raise ValueError(message)
    start, stop = int(pair[0]), int(pair[1])
    # (0, n) would never start: batches count from 1. Keras accepts it and profiles nothing.
    if (start, stop) != (0, 0) and (start < 1 or stop < start):
        raise ValueError(message)
    return start, stop
