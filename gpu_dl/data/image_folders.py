"""Keras 3's ``image_dataset_from_directory``: a folder of class subfolders of image files as a data set.

The files are found, ordered, shuffled and split as Keras 3.15 finds, orders, shuffles and splits them
(``keras.src.utils.dataset_utils.index_directory`` and ``get_training_or_validation_split``): class
folders in sorted order (hidden ones skipped), each walked recursively with its folders and files in
sorted order, files kept when their name ends in .bmp, .gif, .jpeg, .jpg or .png (any case); with
``shuffle=True`` the list of paths is shuffled once by ``numpy.random.RandomState(seed)``, and the
validation subset is its last ``int(validation_split * N)`` files. So ``.file_paths``, ``.class_names``
and which file lands in which subset are Keras's for the same folder and seed.

Where Keras returns a ``tf.data.Dataset``, this returns an ``ImageFolderDataset``: a ``PyDataset`` that
``fit``, ``evaluate`` and ``predict`` take, whose batches are read from disk when asked for (in
``workers`` threads ahead of the model during ``fit``), decoded and resized by
``image_files.decode_image``/``resize_image``; tf.data's ``map``, ``take`` and ``prefetch`` are there too
(``folder_datasets.DatasetMethods``).

Where gpu_dl differs from Keras:

- each pass visits the files in a fresh full permutation from ``numpy.random.default_rng(seed)`` (Keras's
  tf.data shuffles within a buffer of ``8 * batch_size`` files), so the batches differ from Keras's
  while the file list and the split are the same; the first pass of a new data set is the same for the
  same seed;
- grayscale conversion of colour files is Pillow's ``convert("L")`` (as Keras's ``load_img`` and its
  Pillow-based loader), not TensorFlow's ``rgb_to_grayscale``; 16-bit files keep their values;
- interpolation is "bilinear" or "nearest" (Keras's other TensorFlow methods are refused by name);
- ``verbose=False`` silences the "Using N files for training." line too (Keras prints it regardless);
- a ``validation_split`` that leaves one subset empty is an error for either subset (Keras errors for
  training only and hands all files to validation, overlapping the training files).
"""
from __future__ import annotations

import numbers
import os

import numpy

from .. import backend
from .folder_datasets import (FolderDataset, check_label_mode, check_positive, check_split_and_folder,
                              split_into_datasets)
from .image_files import COLOR_MODES, decode_image, resize_image

__all__ = ["ALLOWLIST_FORMATS", "ImageFolderDataset", "image_dataset_from_directory", "index_directory"]

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
INTERPOLATIONS = ("bilinear", "nearest")
# Keras accepts these through TensorFlow's resize; gpu_dl's resize op has bilinear and nearest only.
_KERAS_ONLY_INTERPOLATIONS = ("bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
_DEFAULT_WORKERS = 4     # decoding releases the GIL in Pillow, so a few threads keep ahead of a small model


# ------------------------------------------------------------------ finding the files, as Keras does
def _valid_files(directory, follow_links, formats):
    """(folder, file name) of the image files under ``directory``, walked as Keras walks: folders in sorted
    order of their paths, files sorted by name within each."""
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links), key=lambda entry: entry[0]):
        for name in sorted(files):
            if name.lower().endswith(formats):
                yield root, name


def _index_subdirectory(directory, follow_links, formats):
    """Paths of the image files under ``directory``, relative to its parent (Keras's relative paths)."""
    folder = os.path.basename(directory)
    return [os.path.join(folder, os.path.relpath(os.path.join(root, name), directory))
            for root, name in _valid_files(directory, follow_links, formats)]


def index_directory(directory, labels, formats=ALLOWLIST_FORMATS, class_names=None, shuffle=True, seed=None,
                    follow_links=False, verbose=True):
    """``(file_paths, labels, class_names)`` as Keras's ``index_directory`` gives them: paths are strings
    under ``directory``; labels an int32 array (N,) (None with ``labels=None``); class names a list of
    strings (None with ``labels=None``). ``labels``: "inferred" (one class per subfolder), None, or a
    list of N integer labels in the order of the files unshuffled."""
    if labels == "inferred":
        subdirs = [name for name in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, name)) and not name.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(subdirs):
                raise ValueError("The `class_names` passed did not match the names of the subdirectories of the "
                                 f"target directory. Expected: {subdirs} (or a subset of it), but received: "
                                 f"class_names={list(class_names)}")
            subdirs = list(class_names)    # the order given
    else:
        subdirs = [""]     # explicit labels or none: every file under the folder, walked from the top
        if class_names is not None:
            raise ValueError("When `labels=None` (no labels), argument `class_names` cannot be specified."
                             if labels is None else
                             "When argument `labels` is specified, argument `class_names` cannot be specified "
                             "(the `class_names` will be the sorted list of labels).")
    filenames, inferred = [], []
    for index, subdir in enumerate(subdirs):
        found = _index_subdirectory(os.path.join(directory, subdir), follow_links, formats)
        filenames += found
        inferred += [index] * len(found)

    if labels == "inferred":
        class_names = subdirs
        labels = numpy.asarray(inferred, dtype=numpy.int32)
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError("Expected the lengths of `labels` to match the number of files in the target "
                             f"directory. len(labels) is {len(labels)} while we found {len(filenames)} files in "
                             f"directory {directory}.")
        class_names = [str(label) for label in sorted(set(labels))]
        labels = numpy.asarray(labels, dtype=numpy.int32)
    if verbose:
        print(f"Found {len(filenames)} files." if labels is None else
              f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, name) for name in filenames]
    if shuffle:
        # Keras's shuffle, to erase the folders' order: the same RandomState stream for paths and labels.
        if seed is None:
            seed = numpy.random.randint(int(1e6))
        numpy.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            numpy.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


# ------------------------------------------------------------------ the data set
class ImageFolderDataset(FolderDataset):
    """Image files with their labels, read in batches when asked for.

    ``ds[i]`` is batch ``i``: ``images`` float32 (batch, height, width, channels) (channels_first:
    (batch, channels, height, width)), with ``labels`` as ``(images, labels)`` unless ``label_mode`` is
    None: int32 (batch,) for "int", float32 one-hot (batch, num_classes) for "categorical", float32
    (batch, 1) for "binary". With ``batch_size=None`` each item is one image (and its label) without the
    batch axis. ``len(ds)`` is the number of batches (images when unbatched).

    ``file_paths`` are the files in the order of the folder index (Keras's); with ``shuffle`` each pass
    reads them in a new permutation, drawn after each pass (``on_epoch_end``, or the end of iterating
    over the data set). Built by ``image_dataset_from_directory``, whose checks it trusts.
    """

    item_name = "images"

    def __init__(self, file_paths, labels, class_names, label_mode, image_size, num_channels, batch_size,
                 shuffle, seed, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio, data_format,
                 workers=_DEFAULT_WORKERS, max_queue_size=10):
        super().__init__(file_paths, labels, class_names, label_mode, batch_size, shuffle, seed, workers,
                         max_queue_size)
        self.image_size = tuple(image_size)
        self.num_channels = num_channels
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.pad_to_aspect_ratio = pad_to_aspect_ratio
        self.data_format = data_format

    @property
    def element_spec(self):
        """Shapes of one batch: images (None, height, width, channels) and labels, as a tf.data spec reads."""
        images = ((None,) if self.batch_size is not None else ()) + self._image_shape()
        return images if self.label_mode is None else (images, self._label_shape())

    def _image_shape(self):
        h, w = self.image_size
        return (self.num_channels, h, w) if self.data_format == "channels_first" else (h, w, self.num_channels)

    def _label_shape(self):
        batch = (None,) if self.batch_size is not None else ()
        return batch + {"int": (), "binary": (1,), "categorical": (len(self.class_names),)}[self.label_mode]

    def load(self, index):
        """The image of ``file_paths[index]``, decoded and resized: float32 (height, width, channels)."""
        image = resize_image(decode_image(self.file_paths[index], self.num_channels), self.image_size,
                             self.interpolation, self.crop_to_aspect_ratio, self.pad_to_aspect_ratio)
        return image.transpose(2, 0, 1) if self.data_format == "channels_first" else image

    def __repr__(self):
        return (f"<{type(self).__name__}: {len(self.file_paths)} files, {len(self.class_names or ())} classes, "
                f"batches {self.element_spec}>")


# ------------------------------------------------------------------ the function
def _check_arguments(directory, labels, label_mode, class_names, color_mode, batch_size, image_size,
                     validation_split, subset, shuffle, seed, interpolation, crop_to_aspect_ratio,
                     pad_to_aspect_ratio, data_format):
    """Keras's checks, in Keras's order, plus the ones it leaves to TensorFlow; normalised arguments back."""
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple, numpy.ndarray)):
            raise ValueError("`labels` argument should be a list/tuple of integer labels, of the same size as the "
                             "number of image files in the target directory. If you wish to infer the labels "
                             'from the subdirectory names in the target directory, pass `labels="inferred"`. If '
                             "you wish to get a dataset that only contains images (no labels), pass "
                             f"`labels=None`. Received: labels={labels!r}")
        labels = list(labels)
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in labels):
            raise ValueError("`labels` must hold integer labels, one per image file.")
        if any(v < 0 for v in labels):
            raise ValueError(f"`labels` must be >= 0, got {min(labels)}.")
        if class_names:
            raise ValueError(f'You can only pass `class_names` if `labels="inferred"`. Received: labels={labels}, '
                             f"and class_names={class_names}")
    check_label_mode(label_mode)
    if color_mode not in COLOR_MODES:
        raise ValueError(f'`color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. Received: '
                         f"color_mode={color_mode!r}")
    check_positive(batch_size, "batch_size")
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (not isinstance(image_size, (list, tuple)) or len(image_size) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in image_size)):
        raise ValueError("Invalid `image_size` value. Expected a tuple of 2 positive integers (height, width). "
                         f"Received: image_size={image_size!r}")
    if not isinstance(interpolation, str):
        raise ValueError(f"Argument `interpolation` should be one of {INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    interpolation = interpolation.lower()
    if interpolation in _KERAS_ONLY_INTERPOLATIONS:
        raise ValueError(f"Argument `interpolation`: {interpolation!r} is not supported by gpu_dl (Keras resizes "
                         f"with it through TensorFlow); use one of {INTERPOLATIONS}.")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"Argument `interpolation` should be one of {INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to `True`.")
    data_format = backend.standardize_data_format(data_format, "`data_format`")
    path = check_split_and_folder(validation_split, subset, shuffle, seed, directory, "images")
    return path, labels, image_size, interpolation, data_format


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, data_format=None,
                                 verbose=True):
    """A data set of the image files under ``directory`` with Keras 3.15's arguments (module docstring).

    Labels "inferred" take one class per subfolder (``class_names`` picks and orders them); a list gives one
    integer label per file in the order of the files unshuffled; None (or ``label_mode=None``) gives images
    only. ``color_mode`` "grayscale", "rgb", "rgba" gives 1, 3, 4 channels; images are resized to
    ``image_size=(height, width)`` and hold float32 values in the files' range ([0, 255]).

    Returns an ``ImageFolderDataset`` (``.class_names``, ``.file_paths``), or with ``subset="both"`` the
    training and validation data sets (the validation one unshuffled, as Keras's).
    """
    directory, labels, image_size, interpolation, data_format = _check_arguments(
        directory, labels, label_mode, class_names, color_mode, batch_size, image_size, validation_split, subset,
        shuffle, seed, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio, data_format)
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    if seed is None:
        seed = numpy.random.randint(int(1e6))     # as Keras: drawn from NumPy's global generator
    paths, labels, class_names = index_directory(directory, labels, ALLOWLIST_FORMATS, class_names=class_names,
                                                 shuffle=shuffle, seed=seed, follow_links=follow_links,
                                                 verbose=verbose)
    if not paths:
        raise ValueError(f"No images found in directory {directory}. Allowed formats: {ALLOWLIST_FORMATS}")
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 class_names. '
                         f"Received: class_names={class_names}")
    if label_mode in ("binary", "categorical") and labels.size and labels.max() >= len(class_names):
        # Explicit labels such as [0, 2] make 2 classes; Keras's one-hot would silently give a zero row for 2.
        raise ValueError(f"`labels` holds the label {labels.max()}, but label_mode={label_mode!r} encodes the "
                         f"{len(class_names)} classes {class_names} as 0..{len(class_names) - 1}: give labels "
                         "0..K-1.")
    num_channels = COLOR_MODES[color_mode]

    def dataset(part_paths, part_labels, part_shuffle):
        return ImageFolderDataset(part_paths, part_labels, class_names, label_mode, image_size, num_channels,
                                  batch_size, part_shuffle, seed, interpolation, crop_to_aspect_ratio,
                                  pad_to_aspect_ratio, data_format)

    return split_into_datasets(paths, labels, validation_split, subset, shuffle, verbose, dataset)
