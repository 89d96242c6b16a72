"""Keras 3's ``audio_dataset_from_directory``: a folder of class subfolders of ``.wav`` files as a data set.

The files are found, ordered, shuffled and split as Keras 3.15 does it (``image_folders.index_directory``,
Keras's ``index_directory`` with the format ``.wav``; the validation subset is the last
``int(validation_split * N)`` files of the shuffled list), so ``.file_paths``, ``.class_names`` and the split
are Keras's for the same folder and seed.

Each file is read with the standard library's ``wave`` module and decoded as TensorFlow's ``decode_wav``
decodes 16-bit PCM: float32 samples ``value / 32768`` of shape ``(samples, channels)``; 8-bit (unsigned), 24-bit
and 32-bit PCM files are read too, scaled to [-1, 1) the same way (``decode_wav`` takes 16-bit files only).
With ``output_sequence_length`` every file is cut or padded with zeros to that many samples (``decode_wav``'s
``desired_samples``); without it (and ``ragged=False``) a batch is padded with zeros to its longest file, as
Keras's ``padded_batch``. With ``ragged=True`` a batch's audio is a NumPy object array of the files' own
``(samples, channels)`` arrays, where Keras gives a ``tf.RaggedTensor``.

Where Keras returns a ``tf.data.Dataset``, this returns an ``AudioFolderDataset``: a ``PyDataset`` that
``fit``, ``evaluate`` and ``predict`` take, whose batches are read from disk when asked for. As
``image_dataset_from_directory``, each pass visits the files in a fresh permutation from
``numpy.random.default_rng(seed)`` (Keras shuffles within a buffer), so the batches differ from Keras's while
the files and the split are the same. ``sampling_rate`` (which Keras resamples to with ``tensorflow_io``) is
checked against each file's own rate: a file of another rate is an error that names it, not resampled.
"""
from __future__ import annotations

import numbers
import os
import wave

import numpy

from .folder_datasets import (FolderDataset, check_label_list, check_label_mode, check_positive, check_split_and_folder,
                              indexed_files, split_into_datasets)

__all__ = ["AudioFolderDataset", "audio_dataset_from_directory", "read_wav"]

ALLOWED_FORMATS = (".wav",)


def read_wav(path, desired_samples=None):
    """``(audio, sampling_rate)`` of a PCM ``.wav`` file: float32 ``(samples, channels)`` in [-1, 1) (16-bit:
    ``value / 32768``, as TensorFlow's ``decode_wav``), cut or padded with zeros to ``desired_samples`` when
    given. A file ``wave`` cannot read (not RIFF/WAVE, a compressed or float format) is a ValueError naming it."""
    try:
        with wave.open(os.fspath(path), "rb") as f:
            channels, width, rate, frames = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            wanted = frames if desired_samples is None else min(frames, desired_samples)
            data = f.readframes(wanted)
    except (wave.Error, EOFError) as e:
        raise ValueError(f"audio_dataset_from_directory: cannot read {os.fspath(path)!r} as a PCM WAV file ({e}); "
                         "only uncompressed PCM .wav files (8, 16, 24 or 32 bits) are read.") from None
    if width not in (1, 2, 3, 4):
        raise ValueError(f"audio_dataset_from_directory: {os.fspath(path)!r} has {8 * width}-bit samples; PCM of "
                         "8, 16, 24 or 32 bits is read.")
    usable = len(data) // (width * channels) * width * channels     # a truncated last frame is dropped
    raw = numpy.frombuffer(data[:usable], dtype=numpy.uint8)
    if width == 1:
        values = (raw.astype(numpy.float32) - 128.0) / 128.0
    elif width == 3:
        triples = raw.reshape(-1, 3).astype(numpy.int32)
        joined = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = ((joined ^ 0x800000) - 0x800000).astype(numpy.float32) / numpy.float32(2 ** 23)
    else:
        kind = numpy.dtype("<i2" if width == 2 else "<i4")
        values = (raw.view(kind).astype(numpy.float64) / float(2 ** (8 * width - 1))).astype(numpy.float32)
    audio = values.reshape(-1, channels)
    if desired_samples is not None and audio.shape[0] < desired_samples:
        audio = numpy.concatenate([audio, numpy.zeros((desired_samples - audio.shape[0], channels), numpy.float32)])
    return audio, rate


class AudioFolderDataset(FolderDataset):
    """WAV files with their labels, read in batches when asked for.

    ``ds[i]`` is batch ``i``: ``audio`` float32 ``(batch, samples, channels)`` (padded with zeros to the longest
    file of the batch, or cut and padded to ``output_sequence_length``; with ``ragged`` an object array of each
    file's array), with ``labels`` as ``(audio, labels)`` unless ``label_mode`` is None: int32 (batch,) for
    "int", float32 one-hot (batch, num_classes) for "categorical", float32 (batch, 1) for "binary". With
    ``batch_size=None`` each item is one file's ``(samples, channels)`` (and its label). ``file_paths`` are in the
    order of the folder index (Keras's); with ``shuffle`` each pass reads them in a new permutation."""

    def __init__(self, file_paths, labels, class_names, label_mode, batch_size, sampling_rate,
                 output_sequence_length, ragged, shuffle, seed, workers=1, max_queue_size=10):
        super().__init__(file_paths, labels, class_names, label_mode, batch_size, shuffle, seed, workers,
                         max_queue_size)
        self.sampling_rate = sampling_rate
        self.output_sequence_length = output_sequence_length
        self.ragged = bool(ragged)

    def load(self, index):
        """The audio of ``file_paths[index]``: float32 (samples, channels)."""
        path = self.file_paths[index]
        audio, rate = read_wav(path, self.output_sequence_length)
        if self.sampling_rate is not None and rate != self.sampling_rate:
            raise ValueError(f"audio_dataset_from_directory: {path!r} is sampled at {rate} Hz, not the "
                             f"sampling_rate={self.sampling_rate} asked for; gpu_dl does not resample (Keras does "
                             "with tensorflow_io): convert the file, or leave sampling_rate=None.")
        return audio

    def _batch(self, picked):
        clips = [self.load(int(i)) for i in picked]
        if self.ragged:
            batch = numpy.empty(len(clips), object)
            batch[:] = clips
            return batch
        channels = {clip.shape[1] for clip in clips}
        if len(channels) > 1:
            counts = ", ".join(f"{self.file_paths[int(i)]!r}: {clip.shape[1]}" for i, clip in zip(picked, clips))
            raise ValueError(f"audio_dataset_from_directory: the files of one batch must have the same number of "
                             f"channels; got {counts}. Convert them, or use ragged=True.")
        longest = max(clip.shape[0] for clip in clips)
        batch = numpy.zeros((len(clips), longest, channels.pop()), numpy.float32)
        for row, clip in enumerate(clips):      # one copy per file, not per sample
            batch[row, :clip.shape[0]] = clip
        return batch


def _check_arguments(directory, labels, label_mode, class_names, batch_size, sampling_rate, output_sequence_length,
                     ragged, validation_split, subset, shuffle, seed):
    """Keras's checks, in Keras's order, plus the ones it leaves to TensorFlow."""
    if labels not in ("inferred", None):
        check_label_list(labels, class_names,
                         "The `labels` argument should be a list/tuple of integer labels, of the same size as the "
                         "number of audio files in the target directory. If you wish to infer the labels from the "
                         'subdirectory names in the target directory, pass `labels="inferred"`. If you wish to get a '
                         "dataset that only contains audio samples (no labels), pass `labels=None`. Received: "
                         f"labels={labels!r}", "audio file")
    check_label_mode(label_mode)
    if ragged and output_sequence_length is not None:
        raise ValueError("Cannot set both `ragged` and `output_sequence_length`")
    if sampling_rate is not None:
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Integral):
            raise ValueError(f"`sampling_rate` should have an integer value. Received: sampling_rate={sampling_rate}")
        if sampling_rate <= 0:
            raise ValueError(f"`sampling_rate` should be higher than 0. Received: sampling_rate={sampling_rate}")
    check_positive(batch_size, "batch_size")
    check_positive(output_sequence_length, "output_sequence_length")
    return check_split_and_folder(validation_split, subset, shuffle, seed, directory, "audio files")


def audio_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, batch_size=32,
                                 sampling_rate=None, output_sequence_length=None, ragged=False, shuffle=True,
                                 seed=None, validation_split=None, subset=None, follow_links=False, verbose=True):
    """A data set of the ``.wav`` files under ``directory`` with Keras 3.15's arguments (module docstring).

    Labels "inferred" take one class per subfolder (``class_names`` picks and orders them); a list gives one
    integer label per file in the order of the files unshuffled; None (or ``label_mode=None``) gives audio only.
    Returns an ``AudioFolderDataset`` (``.class_names``, ``.file_paths``), or with ``subset="both"`` the training
    and validation data sets (the validation one unshuffled, as Keras's)."""
    directory = _check_arguments(directory, labels, label_mode, class_names, batch_size, sampling_rate,
                                 output_sequence_length, ragged, validation_split, subset, shuffle, seed)
    paths, labels, label_mode, class_names, seed = indexed_files(
        directory, labels, label_mode, class_names, ALLOWED_FORMATS, shuffle, seed, follow_links, verbose,
        f"No audio files found in directory {directory}. Allowed format(s): {ALLOWED_FORMATS}")

    def dataset(part_paths, part_labels, part_shuffle):
        return AudioFolderDataset(part_paths, part_labels, class_names, label_mode, batch_size, sampling_rate,
                                  output_sequence_length, ragged, part_shuffle, seed)

    return split_into_datasets(paths, labels, validation_split, subset, shuffle, verbose, dataset)
