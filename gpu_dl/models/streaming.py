"""fit/evaluate/predict over streaming inputs: a ``PyDataset``, a PyTorch ``DataLoader``, a ``tf.data.Dataset``,
a grain data set or a Python generator/iterator as ``x``.

Such inputs hand over one batch at a time, so nothing is known of the data before
its first batch: that batch is read and checked against the model (as the array
path checks whole arrays) before the model changes, then every batch is checked
the same way when it arrives, and an error names its batch. Each batch then moves
to the device once (``Model._device_batch``) and runs the same step as array batches.

What is taken and refused follows Keras 3 (``keras.src.trainers.epoch_iterator``
and ``data_adapters``):

- ``y`` and ``sample_weight`` beside such an ``x`` are refused (the batches hold
  them), so is ``validation_split``; a ``batch_size`` (``validation_batch_size``) is
  ignored, as Keras ignores it (the batches have their own size), with a warning
  that says so;
- ``shuffle=True`` (fit's default) shuffles the order of a PyDataset's batches each
  epoch; for a generator, an endless PyDataset or a DataLoader (which shuffles by
  itself) it warns and is ignored;
- ``class_weight`` works with a PyDataset (refused where a batch holds sample
  weights) and is refused with a generator or a DataLoader;
- a DataLoader's batches of torch tensors become NumPy arrays
  (``data/torch_loader.py``); each pass iterates it afresh, as a PyDataset's.
  A ``tf.data.Dataset`` or a grain data set runs as a DataLoader does
  (``data/foreign_datasets.py``: a pass of ``cardinality()`` batches, or of
  unknown length); ``class_weight`` works with a ``tf.data.Dataset`` (as a
  PyDataset's) and is refused with a grain data set; an infinite
  ``tf.data.Dataset`` (``repeat()``) needs ``steps_per_epoch``;
- ``steps_per_epoch`` (``steps``, ``validation_steps``) caps the batches of an
  epoch; a generator then continues where the last epoch stopped. Without it an
  epoch is one pass: ``len(PyDataset)`` batches, a DataLoader's pass, or a
  generator until it is exhausted (an endless one never ends: give
  ``steps_per_epoch``). With it a PyDataset or DataLoader continues its pass in
  the next epoch and starts a new one where the pass ends (warning when that cuts
  an epoch short);
- a generator (or a DataLoader of unknown length) that runs out gives Keras's
  warning, whenever it runs out: at the end of every epoch without
  ``steps_per_epoch`` (the first one included: Keras knows a generator's length
  only by running out of it), in evaluate and predict without ``steps`` as well;
  never when it lasts the ``steps`` asked for. Training goes on, as in Keras: the
  pass ends there, and the next epoch starts a new one, which hands out the
  generator's first two batches again (those Keras's adapter looks at before the
  first epoch) and then what the generator still gives (nothing, once it has run
  out). Without ``steps_per_epoch`` every epoch is a new pass. An epoch that gets
  no batch has no training logs (Keras's are empty);
- a Python generator's first batch must be a tuple (``(x,)``, ``(x, y)`` or
  ``(x, y, sample_weight)``; a bare ``x``, a list or a dict is refused), in fit,
  evaluate and predict alike, as Keras's generator adapter checks it;
- every validation starts a new pass over ``validation_data``, as Keras's evaluate
  resets its cached iterator each time: ``validation_steps`` batches from the
  start of a PyDataset or DataLoader (of the arrays too, ``Model.fit``); a
  generator's new pass is its first two batches again, then what it still gives,
  so a generator used up by the first validation validates later epochs on its
  first two batches (with Keras's warning, as it runs out each time).
"""
from __future__ import annotations

import collections.abc
import types
from contextlib import closing

import numpy

from .. import backend
from ..callbacks import CallbackList, History, ProgbarLogger
from ..utils.io_utils import print_msg
from ..data import foreign_datasets
from ..data.py_dataset import PyDataset, prefetched
from ..backend.user_warnings import warn
from . import data_checks as checks, host_ids, trainer
from .array_epochs import RAN_OUT, ArrayEpochs

_END = object()     # what next() gives at the end of a DataLoader's pass
# The batches Keras's generator adapter looks at before the first epoch (data_adapter_utils'
# NUM_BATCHES_FOR_TENSOR_SPEC); it hands them out again at the start of each later pass (peek_and_restore).
_KERAS_PEEKED = 2


def is_stream(x):
    """Whether ``x`` is a PyDataset, a data set of another library (a torch DataLoader, a tf.data.Dataset, a grain
    data set) or a Python generator/iterator (arrays and lists are not)."""
    return isinstance(x, (PyDataset, types.GeneratorType)) or foreign_datasets.kind(x) is not None or (
        isinstance(x, collections.abc.Iterator) and not hasattr(x, "shape"))


def _kind(x):
    if isinstance(x, PyDataset):
        return "PyDataset"
    return foreign_datasets.kind(x) or "generator"


def _refuse(x, name, **given):
    """Keras's rule: what the batches hold is not given beside them. A batch size is ignored, as Keras ignores
    it (scripts written for Keras pass one), with a warning."""
    for arg, value in given.items():
        if value is None:
            continue
        if arg.endswith("batch_size"):
            warn(f"`{arg}={value!r}` is ignored: `{name}` is a {_kind(x)}, whose batches have their own "
                 "size.", UserWarning)
            continue
        raise ValueError(f"When providing `{name}` as a {_kind(x)}, `{arg}` should not be passed. Instead, "
                         f"{'the targets' if arg == 'y' else 'the sample weights'} should be included as part of "
                         f"its batches.")


def checked_steps(value, name):
    """``steps_per_epoch`` (or ``steps``, ``validation_steps``) checked and capped by ``max_steps_per_epoch()``."""
    return backend.config.capped_steps(None if value is None else checks.positive_int(value, name))


class Stream:
    """The batches of a PyDataset or an iterator, one epoch at a time, as Keras's EpochIterator hands them out.

    ``steps`` caps each epoch (None: one pass). ``epoch()`` yields ``(step, index, raw batch)``; ``index`` is
    the PyDataset's batch index (the position in the stream for an iterator). ``ran_out`` is set when an
    iterator is exhausted, ``stopped`` when the last epoch ended so (its pass ended before ``steps``).

    An iterator's pass goes on from epoch to epoch (with ``steps``) until it runs out; the epoch after that, and
    without ``steps`` every epoch after the first, starts a new pass as Keras's generator adapter does: its first
    two batches again, then what the iterator still gives. With ``restarts`` (validation data, whose iterator
    Keras resets before each validation) every epoch starts a new pass, whatever the kind of data.
    """

    def __init__(self, data, steps, shuffle, name, steps_name):
        self.data, self.name, self.steps, self.steps_name = data, name, steps, steps_name
        self.ran_out = self.stopped = False
        self._pass_ended = False
        self.restarts = False
        self._epochs = 0
        self._kept = []             # the first batches of an iterator
        self._replayed = []         # those of them a new pass has still to hand out
        self._passes = 0
        self._position = 0          # batches taken so far: in this pass (PyDataset, DataLoader) or in all (iterator)
        self._order = None
        self._pass = None           # a DataLoader's pass under way
        if foreign_datasets.kind(data) is not None:
            self.length, self.shuffle = foreign_datasets.num_batches(data), False
            if self.length == 0:
                raise ValueError(f"`{name}` is a {_kind(data)} of 0 batches: there is nothing to run on.")
            if steps is None and foreign_datasets.is_endless(data):
                # Keras would run its first epoch forever
                raise ValueError(f"`{name}` is an infinite {_kind(data)} (made with repeat()): give `{steps_name}`, "
                                 "the batches of an epoch.")
            self._iterator, self._peeked = None, []
        elif isinstance(data, PyDataset):
            self.length = data.num_batches
            if self.length is not None:
                self.length = checks.non_negative_int(self.length, f"len({name})")
                if self.length == 0:
                    raise ValueError(f"`{name}` is a PyDataset of 0 batches: there is nothing to run on.")
            elif steps is None:
                raise ValueError(f"`{name}` is an endless PyDataset (num_batches is None): give `{steps_name}`.")
            self.shuffle = bool(shuffle) and self.length is not None
            if data.use_multiprocessing:
                warn(f"`{name}`: use_multiprocessing=True runs the PyDataset's workers as threads in gpu_dl "
                     "(it forks no processes).")
            self._iterator, self._peeked = None, []
        else:
            self.length, self.shuffle = None, False
            self._iterator, self._peeked = iter(data), []

    @property
    def known_steps(self):
        """Batches in an epoch when known before it runs (what the progress bar counts to), else None."""
        return self.steps or self.length

    def where(self, index):
        return _Place(f"batch {index} of `{self.name}`", foreign_datasets.kind(self.data))

    def first(self):
        """The first batch, left in place for the first epoch."""
        if self._iterator is None and foreign_datasets.kind(self.data) is None:
            return self.data[0]
        if self._iterator is None:        # a DataLoader (or another library's data set): its first pass starts here
            if not self._peeked:
                self._pass = foreign_datasets.numpy_batches(self.data, self.name)
                self._peeked.append(next(self._pass, _END))
                if self._peeked[0] is _END:
                    raise ValueError(f"`{self.name}` is a {_kind(self.data)} that yields no batches.")
            return self._peeked[0]
        if not self._peeked:
            try:
                self._peeked.append(self._next_of_iterator())
            except StopIteration:
                raise ValueError(f"`{self.name}` is a {_kind(self.data)} that yields no batches.") from None
            if isinstance(self.data, types.GeneratorType) and not isinstance(self._peeked[0], tuple):
                # Keras's generator adapter takes a first batch of a tuple only (later ones in any of the forms).
                raise ValueError(f"`{self.name}`: When passing a Python generator to a Keras model, the generator "
                                 "must return a tuple, either (input,) or (inputs, targets) or (inputs, targets, "
                                 f"sample_weights). Received: {self._peeked[0]}")
        return self._peeked[0]

    def _next_of_iterator(self):
        """The iterator's next batch; its first ones are kept, as Keras's adapter keeps them, to start new passes
        with."""
        batch = next(self._iterator)
        if len(self._kept) < _KERAS_PEEKED:
            self._kept.append(batch)
        return batch

    def epoch(self):
        if self.restarts and self._epochs > 0:
            self._pass, self._position = None, 0
        self._epochs += 1
        if self._iterator is not None:
            yield from self._iterator_epoch()
            return
        if foreign_datasets.kind(self.data) is not None:
            yield from self._loader_epoch()
            return
        self.data.on_epoch_begin()
        try:
            yield from self._py_dataset_epoch()
        finally:
            self.data.on_epoch_end()

    def _iterator_epoch(self):
        step = 0
        self.stopped = False
        if self._passes > 0 and (self.steps is None or self._pass_ended or self.restarts):
            self._replayed = list(self._kept)
        self._pass_ended = False
        self._passes += 1
        while self.steps is None or step < self.steps:
            if self._peeked:
                batch = self._peeked.pop(0)
            elif self._replayed:
                batch = self._replayed.pop(0)
            else:
                try:
                    batch = self._next_of_iterator()
                except StopIteration:
                    self.ran_out = self.stopped = self._pass_ended = True
                    return
            yield step, self._position, batch
            self._position += 1
            step += 1

    def _loader_epoch(self):
        """One epoch of a DataLoader, as Keras's EpochIterator runs one: a whole pass, or with ``steps`` that many
        batches of the pass under way, a new pass starting in the next epoch where this one ends."""
        step = 0
        while self.steps is None or step < self.steps:
            if self._pass is None:
                self._pass, self._position = foreign_datasets.numpy_batches(self.data, self.name), 0
            batch = self._peeked.pop(0) if self._peeked else next(self._pass, _END)
            if batch is _END:           # the pass ended (a loader of unknown length): Keras's StopIteration
                self._pass = None
                warn(RAN_OUT)
                return
            yield step, self._position, batch
            self._position += 1
            step += 1
            if self.length is not None and self._position >= self.length:
                self._pass = None
                if self.steps is not None and step < self.steps:
                    warn(RAN_OUT)
                return
        if self.steps is None:
            self._pass = None

    def _py_dataset_epoch(self):
        if self.length is None:     # endless: the indices go on from epoch to epoch
            indices = range(self._position, self._position + self.steps)
        else:
            if self._position == 0:
                self._order = backend.rng().permutation(self.length) if self.shuffle else numpy.arange(self.length)
            left = self.length - self._position
            indices = [int(i) for i in self._order[self._position:self._position + min(left, self.steps or left)]]
        workers = self.data.workers or 0
        batches = prefetched(self.data, indices, workers, self.data.max_queue_size) if workers > 1 else \
            ((i, self.data[i]) for i in indices)
        step = -1
        with closing(batches):
            for step, (index, batch) in enumerate(batches):
                self._position += 1
                yield step, index, batch
        if self.length is not None and self._position >= self.length:
            # Keras starts a new pass with the next epoch, warning when this one was cut short of steps_per_epoch.
            if self.steps is not None and step + 1 < self.steps:
                warn(RAN_OUT)
            self._position = 0


# --------------------------------------------------------------------------- batches
def unpack(raw, where):
    """A batch as ``(x, y, sample_weight)``; y and sample_weight may be None. Keras's forms: ``x`` (an array or
    a dict), ``(x,)``, ``(x, y)``, ``(x, y, sample_weight)``; a list is taken as a tuple."""
    if isinstance(raw, dict) or hasattr(raw, "shape"):
        return raw, None, None
    if isinstance(raw, list):
        raw = tuple(raw)
    if not isinstance(raw, tuple) or len(raw) not in (1, 2, 3):
        what = f"a tuple of {len(raw)}" if isinstance(raw, tuple) else f"a {type(raw).__name__}"
        raise ValueError(f"{where.capitalize()} must be x, (x,), (x, y) or (x, y, sample_weight); got {what}.")
    return tuple(raw) + (None,) * (3 - len(raw))


class _Place(str):
    """Where a batch comes from (``batch 3 of `x```), and the kind of data set it is of (None: not another
    library's)."""

    def __new__(cls, text, kind=None):
        place = super().__new__(cls, text)
        place.kind = kind
        return place


def _looks_unbatched(model, x):
    """Whether the inputs ``x`` of a batch have the shapes of one sample each: an axis fewer than the model's
    inputs, and their sizes where the model knows them."""
    try:
        shapes = model.input_shape
    except (AttributeError, ValueError):        # a model not built yet: no shapes to compare with
        return False
    if shapes is None:
        return False
    shapes = shapes if isinstance(shapes, list) else [shapes]
    arrays = [x[k] for k in sorted(x)] if isinstance(x, dict) else list(x) if isinstance(x, (list, tuple)) else [x]
    if len(arrays) != len(shapes) or not all(hasattr(a, "shape") for a in arrays):
        return False
    return all(len(a.shape) == len(s) - 1 and all(d is None or d == n for d, n in zip(s[1:], a.shape))
               for a, s in zip(arrays, shapes))


def _named(exc, where, model=None, x=None):
    """The same error, its message led by the batch it is about; where a data set's inputs have the shapes of
    one sample each, a hint to batch it."""
    message = f"{where.capitalize()}: {exc}"
    kind = getattr(where, "kind", None)
    if kind in (foreign_datasets.TF_DATASET, foreign_datasets.GRAIN_DATASET) and model is not None and \
            _looks_unbatched(model, x):
        message += (f" The {kind} looks unbatched: its elements have the shape of one sample, without the batch "
                    "axis. Batch it before passing it, e.g. `dataset.batch(32)`.")
    return (TypeError if isinstance(exc, TypeError) else ValueError)(message)


def prepare(model, raw, where, class_weight=None):
    """A batch with targets as checked host arrays ``(x, y, sw, output_shape)``; errors name the batch."""
    x, y, sw = unpack(raw, where)
    if y is None and not model._free_data:      # a step of the model's own decides what a batch holds
        raise ValueError(f"{where.capitalize()} holds no targets: fit() and evaluate() need batches "
                         "(x, y) or (x, y, sample_weight).")
    if class_weight is not None and sw is not None:
        raise ValueError(f"{where.capitalize()} holds sample weights: you cannot specify `class_weight` and "
                         "`sample_weight` at the same time.")
    try:
        x, y, sw, output_shape = model._prepare(x, y, sw, class_weight)
    except (ValueError, TypeError) as exc:
        raise _named(exc, where, model, x) from None
    return x, trainer.as_streamed(y), trainer.as_streamed(sw), output_shape


def device_batch(model, raw, where, class_weight=None):
    """A checked batch on the device, ``(x, y, sw)``; stateful layers' batch size checked first. The ids of its
    inputs were checked on the host (``prepare``): the steps may skip the id layers' device checks."""
    x, y, sw, _ = prepare(model, raw, where, class_weight)
    check_stateful(model, x, where)
    return model._device_batch(x, y, sw, slice(None))


def check_stateful(model, x, where):
    """Stateful recurrent layers carry each sample's state to the next batch: every batch must have the size
    they carry states for (any size before they know one, as with arrays)."""
    stateful = [layer for layer in model._flat_layers() if getattr(layer, "stateful", False)]
    carried = next((l.carried_batch_size for l in stateful if l.carried_batch_size is not None), None)
    n = len(x[0] if isinstance(x, tuple) else x)
    if carried is not None and n != carried:
        raise ValueError(f"{where.capitalize()} has {n} samples, but the stateful layer(s) "
                         f"{', '.join(repr(l.name) for l in stateful)} of model '{model.name}' carry states for "
                         f"batches of {carried}: every batch must have {carried} samples (their states keep that "
                         "batch size after reset_state(): another batch size needs a new model).")


def _host_inputs(model, raw, where):
    x, _, _ = unpack(raw, where)
    try:
        return model._checked_features(x, "x")
    except (ValueError, TypeError) as exc:
        raise _named(exc, where, model, x) from None


def _on_device(x):
    return tuple(backend.to_device(a) for a in x) if isinstance(x, tuple) else backend.to_device(x)


def _shapes(x):
    if x is None:           # batches without targets, for a train_step of the model's own
        return None
    return [None if a is None else a.shape for a in x] if isinstance(x, tuple) else x.shape


# --------------------------------------------------------------------------- the loops
def _run_epoch(stream, cbs, params, step_fn, begin, end, stop=lambda: False):
    """Run ``step_fn(raw, where)`` over one epoch of ``stream`` with the batch hooks ``begin``/``end``; the
    progress bar learns the epoch's length at its end when it was unknown (as Keras's does)."""
    seen = 0
    with closing(stream.epoch()) as batches:
        for step, index, raw in batches:
            cbs.batch(begin, step, dict)
            end_logs = step_fn(raw, stream.where(index))
            cbs.batch(end, step, end_logs)
            seen = step + 1
            if stop():
                break
    if params.get("steps") is None:
        params["steps"] = seen
    return seen


def evaluate_pass(model, stream, cbs, params, prefix=""):
    """Loss and metrics over one epoch of ``stream``, from fresh sums; the test hooks run as in evaluate()."""
    model.reset_metrics()
    cbs.call("on_test_begin", {})

    def step(raw, where):
        model._test_step(*device_batch(model, raw, where), ids_checked=True)
        return model._batch_logs
    _run_epoch(stream, cbs, params, step, "on_test_batch_begin", "on_test_batch_end")
    if stream.stopped:
        warn(RAN_OUT)
    logs = model._end_logs()
    cbs.call("on_test_end", logs)
    return {prefix + name: value for name, value in logs.items()}


def validation_stream(model, data, steps, batch_size):
    """``validation_data`` given as a PyDataset/generator: a Stream, its first batch checked."""
    _refuse(data, "validation_data", validation_batch_size=batch_size)
    stream = Stream(data, checked_steps(steps, "validation_steps"), False, "validation_data", "validation_steps")
    stream.restarts = True
    prepare(model, stream.first(), stream.where(0))
    return stream


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
        class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps, validation_batch_size,
        validation_freq):
    """Model.fit with a PyDataset or generator as ``x``; returns the History."""
    _refuse(x, "x", y=y, sample_weight=sample_weight, batch_size=batch_size)
    if validation_split:
        raise ValueError(f"Argument `validation_split` is only supported for arrays; `x` is a {_kind(x)}: pass "
                         "`validation_data` instead.")
    if class_weight is not None and _kind(x) in (foreign_datasets.TORCH_DATALOADER, foreign_datasets.GRAIN_DATASET):
        raise ValueError(f"Argument `class_weight` is not supported for {_kind(x)} inputs: have its data set "
                         f"return (input, label, sample_weight) instead. Received: class_weight={class_weight}")
    if class_weight is not None and not isinstance(x, PyDataset) and not foreign_datasets.is_tf_dataset(x):
        raise ValueError(f"Argument `class_weight` is not supported for Python generator inputs. Received: "
                         f"class_weight={class_weight}")
    epochs = backend.config.capped_epochs(checks.non_negative_int(epochs, "epochs"))
    initial_epoch = checks.non_negative_int(initial_epoch, "initial_epoch")
    verbose = checks.verbosity(verbose)
    validation_freq = checks.positive_int(validation_freq, "validation_freq")
    callbacks = model._check_callbacks(callbacks)
    train = Stream(x, checked_steps(steps_per_epoch, "steps_per_epoch"), shuffle, "x", "steps_per_epoch")
    if shuffle and not train.shuffle:
        # Keras 3's words for each kind of data
        given = {"PyDataset": "an infinite PyDataset. The PyDataset is expected to already be shuffled",
                 "torch DataLoader": "a torch DataLoader. The DataLoader is expected to already be shuffled",
                 "tf.data.Dataset": "a tf.data.Dataset. The Dataset is expected to already be shuffled (via "
                                    "`.shuffle(buffer_size)`)",
                 "grain dataset": "a grain dataset. The grain dataset is expected to already be shuffled"}.get(
                     _kind(x), "a generator. The generator is expected to yield already-shuffled data")
        warn(f"`shuffle=True` was passed, but will be ignored since the data `x` was provided as {given}.")
    xb, yb, _, output_shape = prepare(model, train.first(), train.where(0), class_weight)
    val = val_params = None
    if is_stream(validation_data):
        val = validation_stream(model, validation_data, validation_steps, validation_batch_size)
        val_params = {"verbose": verbose, "steps": val.known_steps}
    elif validation_data is not None:
        val = model._validation_arrays(validation_data)
        val_batch_size = checks.positive_int(32 if validation_batch_size is None else validation_batch_size,
                                             "validation_batch_size")
        val_count = len(val[0][0] if isinstance(val[0], tuple) else val[0])
        model._check_stateful_batches(val_count, val_batch_size, "validation data", "validation_batch_size")
        # as over arrays in Keras: each validation takes the first validation_steps batches
        val_epochs = ArrayEpochs(val_count, val_batch_size, validation_steps, steps_name="validation_steps")

    # All checks passed: from here on the model may change.
    model._resolve_metrics(_shapes(yb), output_shape)
    model._start(_shapes(xb))
    history = History()
    model.history = history
    listeners = list(callbacks) + [history]
    if verbose:
        print_msg(backend.describe_device())
        listeners.append(ProgbarLogger(verbose))
    params = {"verbose": verbose, "epochs": epochs, "steps": train.known_steps}
    cbs = CallbackList(listeners, model, params)
    model.stop_training = False
    logs = {}

    def step(raw, where):
        model._train_step(*device_batch(model, raw, where, class_weight), ids_checked=True)
        return model._batch_logs

    # A callback restoring an interrupted run (BackupAndRestore) sets the epoch to resume from, as in Keras.
    model._initial_epoch = None
    cbs.call("on_train_begin", {})
    initial_epoch = model._initial_epoch or initial_epoch
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        cbs.call("on_epoch_begin", epoch, {})
        seen = _run_epoch(train, cbs, params, step, "on_train_batch_begin", "on_train_batch_end",
                          lambda: model.stop_training)
        # An epoch without a batch has no training logs, as Keras's (its last step's logs, none).
        logs = model._train_logs() if seen else {}
        if train.stopped:
            warn(RAN_OUT)
        if val is not None and (epoch + 1) % validation_freq == 0:
            if isinstance(val, Stream):
                logs.update(evaluate_pass(model, val, cbs, val_params, prefix="val_"))
            else:
                logs.update(model._evaluate_arrays(*val, val_epochs, prefix="val_", cbs=cbs))
        cbs.call("on_epoch_end", epoch, logs)
        if model.stop_training:
            break
    if epochs > 0:
        # As Keras: after the last epoch (even one stopped early), before on_train_end.
        model.optimizer.finalize_variable_values(model.trainable_weights)
    cbs.call("on_train_end", logs)
    return history


def evaluate(model, x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict):
    """Model.evaluate with a PyDataset or generator as ``x``."""
    _refuse(x, "x", y=y, sample_weight=sample_weight, batch_size=batch_size)
    verbose = checks.verbosity(verbose)
    callbacks = model._check_callbacks(callbacks)
    stream = Stream(x, checked_steps(steps, "steps"), False, "x", "steps")
    xb, yb, _, output_shape = prepare(model, stream.first(), stream.where(0))
    model._resolve_metrics(_shapes(yb), output_shape)
    model._start(_shapes(xb))
    params = {"verbose": verbose, "steps": stream.known_steps}
    cbs = CallbackList(list(callbacks) + ([ProgbarLogger(verbose)] if verbose else []), model, params)
    logs = evaluate_pass(model, stream, cbs, params)
    return model._evaluate_result(logs, return_dict)


def predict(model, x, batch_size, verbose, steps, callbacks):
    """Model.predict with a PyDataset or generator as ``x``: the outputs of its batches, concatenated, in the
    structure the model gives its outputs (``Model._structured``)."""
    _refuse(x, "x", batch_size=batch_size)
    verbose = checks.verbosity(verbose)
    callbacks = model._check_callbacks(callbacks)
    stream = Stream(x, checked_steps(steps, "steps"), False, "x", "steps")
    first = _host_inputs(model, stream.first(), stream.where(0))
    if not model.built:
        model._build_by_run(tuple([(None,) + tuple(s[1:]) for s in _shapes(first)]) if isinstance(first, tuple)
                            else (None,) + tuple(first.shape[1:]))
    params = {"verbose": verbose, "steps": stream.known_steps}
    cbs = CallbackList(list(callbacks) + ([ProgbarLogger(verbose)] if verbose else []), model, params)
    cbs.call("on_predict_begin", {})
    outputs = []

    def step(raw, where):
        xb = _host_inputs(model, raw, where)
        check_stateful(model, xb, where)
        xb = _on_device(xb)
        with host_ids.prechecked(model, xb):
            out = model.forward(xb, training=False)
        outputs.append([backend.to_numpy(o) for o in out] if isinstance(out, list) else backend.to_numpy(out))
        # in the model's structure, as Keras's logs hold them (a dict's entries spread among the logs)
        return lambda: {"outputs": model._structured(outputs[-1] if isinstance(outputs[-1], list) else [outputs[-1]])}
    _run_epoch(stream, cbs, params, step, "on_predict_batch_begin", "on_predict_batch_end")
    if stream.stopped:
        warn(RAN_OUT)
    cbs.call("on_predict_end", {})
    if outputs and isinstance(outputs[0], list):
        return model._structured([numpy.concatenate(parts, axis=0) for parts in zip(*outputs)])
    return model._structured([numpy.concatenate(outputs, axis=0)])
