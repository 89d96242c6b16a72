"""What the ``*_dataset_from_directory`` readers share: the data set that reads a folder index in batches, the
argument checks Keras makes on all of them, and the training/validation split.

The image, text and audio readers differ in how one file becomes an array (``load``) and how a batch of them
is put together (``_batch``); finding the files is ``image_folders.index_directory`` for all three.

Keras's readers return a ``tf.data.Dataset``, and Keras's examples go on with its ``map``, ``take`` and
``prefetch``: the data sets here have those three (``DatasetMethods``), enough for the examples' pipelines.
"""
from __future__ import annotations

import math
import numbers
import os

import numpy

from .py_dataset import PyDataset

__all__ = ["LABEL_MODES", "DatasetMethods", "DerivedDataset", "FolderDataset", "check_label_list", "check_label_mode",
           "check_positive", "check_split_and_folder", "split_into_datasets"]

LABEL_MODES = ("int", "categorical", "binary", None)


def _check_count(value, what, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < -1:
        raise ValueError(f"{owner}: `{what}` must be an integer >= -1 (-1: all, or AUTOTUNE), got {value!r}.")


class DatasetMethods:
    """The ``tf.data.Dataset`` methods Keras's examples call on what its ``*_dataset_from_directory`` return:
    ``map``, ``take`` and ``prefetch``. ``map`` and ``take`` give a ``DerivedDataset``; each pass over it is a
    pass over this data set (a shuffled one reshuffles after it)."""

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """The data set of ``map_func(*batch)`` for each batch (``map_func(batch)`` where a batch is one array),
        computed when the batch is read. ``num_parallel_calls``, ``deterministic`` and ``name`` are tf.data's
        and change nothing here: the function runs in the thread that reads the batch, in order."""
        if not callable(map_func):
            raise TypeError(f"{type(self).__name__}.map: `map_func` must be callable, got {map_func!r}.")
        return DerivedDataset(self, map_func, len(self))

    def take(self, count, name=None):
        """The data set of the first ``count`` batches (all of them for -1)."""
        _check_count(count, "count", f"{type(self).__name__}.take")
        return DerivedDataset(self, None, len(self) if count == -1 else min(int(count), len(self)))

    def prefetch(self, buffer_size, name=None):
        """This data set: ``fit``, ``evaluate`` and ``predict`` already read its batches ahead in its ``workers``
        threads (tf.data's ``AUTOTUNE`` is -1)."""
        _check_count(buffer_size, "buffer_size", f"{type(self).__name__}.prefetch")
        return self


class DerivedDataset(DatasetMethods, PyDataset):
    """The first ``count`` batches of ``source``, each passed through ``map_func`` where one is given (see
    ``DatasetMethods``). A mapped data set reads its batches in one worker: the function may call layers, whose
    seed generators are not for several threads at once."""

    def __init__(self, source, map_func, count):
        super().__init__(workers=source.workers if map_func is None else 1, max_queue_size=source.max_queue_size)
        self.source = source
        self.map_func = map_func
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < self.count:
            raise IndexError(f"{type(self).__name__} index {index!r} out of range: it has {self.count} batches.")
        batch = self.source[index]
        if self.map_func is None:
            return batch
        return self.map_func(*batch) if isinstance(batch, tuple) else self.map_func(batch)

    def __iter__(self):
        try:
            yield from super().__iter__()
        finally:
            self.on_epoch_end()

    def on_epoch_begin(self):
        self.source.on_epoch_begin()

    def on_epoch_end(self):
        self.source.on_epoch_end()

    def __repr__(self):
        return f"<{type(self).__name__}: {self.count} batches of {self.source!r}>"


class FolderDataset(DatasetMethods, PyDataset):
    """Files with their labels, read in batches when asked for; subclasses say how (``load``, ``_batch``).

    ``ds[i]`` is batch ``i``, with ``labels`` as ``(batch, labels)`` unless ``label_mode`` is None: int32
    (batch,) for "int", float32 one-hot (batch, num_classes) for "categorical", float32 (batch, 1) for "binary".
    With ``batch_size=None`` each item is one file's array (and its label). ``file_paths`` are in the order of
    the folder index (Keras's); with ``shuffle`` each pass reads them in a new permutation, drawn after each pass
    (``on_epoch_end``, or the end of iterating over the data set)."""

    item_name = "files"     # what one item is called when unbatched, in the out-of-range error

    def __init__(self, file_paths, labels, class_names, label_mode, batch_size, shuffle, seed, workers=1,
                 max_queue_size=10):
        super().__init__(workers=workers, max_queue_size=max_queue_size)
        self.file_paths = list(file_paths)
        self.labels = labels
        self.class_names = class_names
        self.label_mode = label_mode
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = seed
        self._rng = numpy.random.default_rng(seed) if self.shuffle else None
        self._order = self._new_order()

    def _new_order(self):
        count = len(self.file_paths)
        return self._rng.permutation(count) if self.shuffle else numpy.arange(count)

    def __len__(self):
        count = len(self.file_paths)
        return count if self.batch_size is None else math.ceil(count / self.batch_size)

    def load(self, index):
        """The array of ``file_paths[index]``."""
        raise NotImplementedError

    def _batch(self, picked):
        """The arrays of the files ``picked`` (indices into ``file_paths``), stacked on a new first axis."""
        return numpy.stack([self.load(int(i)) for i in picked])

    def _encode(self, labels):
        if self.label_mode == "binary":
            return labels.astype(numpy.float32)[..., None]
        if self.label_mode == "categorical":
            return numpy.eye(len(self.class_names), dtype=numpy.float32)[labels]
        return labels.astype(numpy.int32)

    def __getitem__(self, index):
        count = len(self)
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < count:
            raise IndexError(f"{type(self).__name__} index {index!r} out of range: it has {count} "
                             f"{self.item_name if self.batch_size is None else 'batches'}.")
        size = 1 if self.batch_size is None else self.batch_size
        # One read of the order: a reshuffle between epochs never mixes two orders in a batch.
        picked = self._order[index * size:(index + 1) * size]
        data = self.load(int(picked[0])) if self.batch_size is None else self._batch(picked)
        if self.label_mode is None:
            return data
        labels = self._encode(self.labels[picked])
        return data, (labels[0] if self.batch_size is None else labels)

    def __iter__(self):
        try:
            yield from super().__iter__()
        finally:
            self.on_epoch_end()     # a tf.data data set reshuffles on each iteration: so does this one

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._new_order()

    def __repr__(self):
        return f"<{type(self).__name__}: {len(self.file_paths)} files, {len(self.class_names or ())} classes>"


def check_label_list(labels, class_names, not_a_list, files):
    """Keras's checks of explicit ``labels``: a list or tuple (else ``not_a_list``, Keras's message for the
    reader), of integers >= 0 (one per file of the kind ``files`` names), without ``class_names``."""
    if not isinstance(labels, (list, tuple)):
        raise ValueError(not_a_list)
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in labels):
        raise ValueError(f"`labels` must hold integer labels >= 0, one per {files}.")
    if class_names:
        raise ValueError(f'You can only pass `class_names` if `labels="inferred"`. Received: labels={labels}, '
                         f"and class_names={class_names}")


def check_label_mode(label_mode):
    if label_mode not in LABEL_MODES:
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", or None. '
                         f"Received: label_mode={label_mode!r}")


def check_positive(value, what, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{what}` must be a positive integer{' or None' if allow_none else ''}, got {value!r}.")


def check_split_and_folder(validation_split, subset, shuffle, seed, directory, contents):
    """Keras's checks of the split, in Keras's order, then that ``directory`` is a folder; its path back.
    ``contents`` names what the folder should hold, for the error when it is a file."""
    if validation_split is not None and (isinstance(validation_split, bool)
                                         or not isinstance(validation_split, numbers.Real)):
        raise ValueError(f"`validation_split` must be a float between 0 and 1, received: {validation_split!r}")
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'`subset` must be either "training", "validation" or "both", received: {subset!r}')
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a `seed` argument, "
                         "to make sure that there is no overlap between the training and validation subset.")
    path = os.fspath(directory)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`directory`: no such folder {path!r}.")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"`directory`: {path!r} is a file, not a folder of {contents}.")
    return path


def _split(paths, labels, validation_split, subset, verbose):
    """The training (the first N - int(split * N)) or validation (the rest) files, as Keras splits them."""
    if not validation_split:
        return paths, labels
    count = int(validation_split * len(paths))
    if count == 0 or count == len(paths):
        raise ValueError(f"`validation_split={validation_split}` of {len(paths)} files leaves "
                         f"{'no files for validation' if count == 0 else 'no files for training'}; "
                         "give more files or another split.")
    if subset == "training":
        if verbose:
            print(f"Using {len(paths) - count} files for training.")
        return paths[:-count], None if labels is None else labels[:-count]
    if verbose:
        print(f"Using {count} files for validation.")
    return paths[-count:], None if labels is None else labels[-count:]


def indexed_files(directory, labels, label_mode, class_names, formats, shuffle, seed, follow_links, verbose,
                  no_files):
    """The files of ``directory`` as the text and audio readers take them, with Keras's checks:
    ``(paths, labels, label_mode, class_names, seed)``; labels None (or ``label_mode`` None) give files only, a seed
    of None is drawn from NumPy's global generator as Keras draws it, and ``no_files`` is the error's text where
    no file of ``formats`` is found."""
    from .image_folders import index_directory      # image_folders builds on this module: import late
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    elif labels != "inferred":
        labels = list(labels)
    if seed is None:
        seed = numpy.random.randint(int(1e6))
    paths, labels, class_names = index_directory(directory, labels, formats, class_names=class_names,
                                                 shuffle=shuffle, seed=seed, follow_links=follow_links,
                                                 verbose=verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 class_names. '
                         f"Received: class_names={class_names}")
    if not paths:
        raise ValueError(no_files)
    return paths, labels, label_mode, class_names, seed


def split_into_datasets(paths, labels, validation_split, subset, shuffle, verbose, dataset):
    """``dataset(paths, labels, shuffle)`` of the ``subset`` asked for, or with ``subset="both"`` the training
    and validation data sets (the validation one unshuffled, as Keras's)."""
    if subset == "both":
        train = _split(paths, labels, validation_split, "training", verbose)
        validation = _split(paths, labels, validation_split, "validation", verbose)
        return dataset(*train, shuffle), dataset(*validation, False)
    return dataset(*_split(paths, labels, validation_split, subset, verbose), shuffle)
