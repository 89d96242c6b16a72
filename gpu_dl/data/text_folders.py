"""Keras 3's ``text_dataset_from_directory``: a folder of class subfolders of ``.txt`` files as a data set.

The files are found, ordered, shuffled and split as Keras 3.15 does it (``image_folders.index_directory``,
Keras's ``index_directory`` with the format ``.txt``; the validation subset is the last
``int(validation_split * N)`` files of the shuffled list), so ``.file_paths``, ``.class_names`` and the split
are Keras's for the same folder and seed. Each text is the file's content, its first ``max_length`` bytes with
``max_length`` (Keras's ``tf.strings.substr``), decoded as UTF-8 (a character cut by ``max_length`` dropped).

Where Keras returns a ``tf.data.Dataset`` of string tensors, this returns a ``TextFolderDataset``: a
``PyDataset`` that ``fit``, ``evaluate`` and ``predict`` take, whose batches are NumPy object arrays of str
(batch,) read from disk when asked for, with their labels; the text layers and ``Input(dtype="string")`` models
take them as they are. As ``image_dataset_from_directory``, each pass visits the files in a fresh permutation
from ``numpy.random.default_rng(seed)`` (Keras shuffles within a buffer), so the batches differ from Keras's
while the files and the split are the same.
"""
from __future__ import annotations

import numbers

import numpy

from .folder_datasets import (FolderDataset, check_label_list, check_label_mode, check_positive, check_split_and_folder,
                              indexed_files, split_into_datasets)

__all__ = ["TextFolderDataset", "text_dataset_from_directory"]

FORMATS = (".txt",)


class TextFolderDataset(FolderDataset):
    """Text files with their labels, read in batches when asked for.

    ``ds[i]`` is batch ``i``: ``texts`` a NumPy object array of str (batch,), with ``labels`` as ``(texts,
    labels)`` unless ``label_mode`` is None: int32 (batch,) for "int", float32 one-hot (batch, num_classes) for
    "categorical", float32 (batch, 1) for "binary". With ``batch_size=None`` each item is one text (and its
    label). ``file_paths`` are in the order of the folder index (Keras's); with ``shuffle`` each pass reads them
    in a new permutation."""

    item_name = "texts"

    def __init__(self, file_paths, labels, class_names, label_mode, batch_size, max_length, shuffle, seed,
                 workers=1, max_queue_size=10):
        super().__init__(file_paths, labels, class_names, label_mode, batch_size, shuffle, seed, workers,
                         max_queue_size)
        self.max_length = max_length

    def load(self, index):
        """The text of ``file_paths[index]``: its bytes (the first ``max_length``) decoded as UTF-8."""
        with open(self.file_paths[index], "rb") as f:
            data = f.read() if self.max_length is None else f.read(self.max_length)
        return data.decode("utf-8", errors="ignore" if self.max_length is not None else "strict")

    def _batch(self, picked):
        texts = numpy.empty(len(picked), object)     # an object array: numpy.stack would make fixed-width str
        texts[:] = [self.load(int(i)) for i in picked]
        return texts


def _check_arguments(directory, labels, label_mode, class_names, batch_size, max_length, validation_split, subset,
                     shuffle, seed, format):
    """Keras's checks, in Keras's order, plus the ones it leaves to TensorFlow."""
    if labels not in ("inferred", None):
        check_label_list(labels, class_names,
                         "`labels` argument should be a list/tuple of integer labels, of the same size as the number "
                         "of text files in the target directory. If you wish to infer the labels from the "
                         'subdirectory names in the target directory, pass `labels="inferred"`. If you wish to get a '
                         "dataset that only contains text samples (no labels), pass `labels=None`. Received: "
                         f"labels={labels!r}", "text file")
    check_label_mode(label_mode)
    if format not in ("tf", "grain"):
        raise ValueError(f'`format` should be either "tf" or "grain". Received: format={format!r}')
    check_positive(batch_size, "batch_size")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, numbers.Integral)
                                   or max_length < 0):
        raise ValueError(f"`max_length` must be a non-negative integer or None, got {max_length!r}.")
    return check_split_and_folder(validation_split, subset, shuffle, seed, directory, "text files")


def text_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, batch_size=32,
                                max_length=None, shuffle=True, seed=None, validation_split=None, subset=None,
                                follow_links=False, format="tf", verbose=True):
    """A data set of the ``.txt`` files under ``directory`` with Keras 3.15's arguments (module docstring).

    Labels "inferred" take one class per subfolder (``class_names`` picks and orders them); a list gives one
    integer label per file in the order of the files unshuffled; None (or ``label_mode=None``) gives texts only.
    ``format`` ("tf" or "grain", Keras's choice of pipeline) makes no difference here. Returns a
    ``TextFolderDataset`` (``.class_names``, ``.file_paths``), or with ``subset="both"`` the training and
    validation data sets (the validation one unshuffled, as Keras's)."""
    directory = _check_arguments(directory, labels, label_mode, class_names, batch_size, max_length,
                                 validation_split, subset, shuffle, seed, format)
    paths, labels, label_mode, class_names, seed = indexed_files(
        directory, labels, label_mode, class_names, FORMATS, shuffle, seed, follow_links, verbose,
        f"No text files found in directory {directory}. Allowed format: .txt")

    def dataset(part_paths, part_labels, part_shuffle):
        return TextFolderDataset(part_paths, part_labels, class_names, label_mode, batch_size, max_length,
                                 part_shuffle, seed)

    return split_into_datasets(paths, labels, validation_split, subset, shuffle, verbose, dataset)
