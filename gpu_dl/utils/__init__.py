"""Keras's ``keras.utils`` helpers."""
from __future__ import annotations

import numpy

from ..backend import set_random_seed
from ..catalogue import (CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name,
                         get_registered_object, register_keras_serializable)
from ..data.audio_folders import audio_dataset_from_directory
from ..data.image_files import array_to_img, img_to_array, load_img, save_img   # where Keras 3 has them too
from ..data.image_folders import image_dataset_from_directory
from ..data.py_dataset import PyDataset
from ..data.sequences import pad_sequences, timeseries_dataset_from_array
from ..data.text_folders import text_dataset_from_directory
from . import bounding_boxes
from .config import Config
from .feature_space import FeatureSpace
from .data_utils import pack_x_y_sample_weight, split_dataset, standardize_dtype, unpack_x_y_sample_weight
from .file_utils import get_file
from .graph_utils import get_source_inputs, is_keras_tensor
from .io_utils import disable_interactive_logging, enable_interactive_logging, is_interactive_logging_enabled
from .model_plot import model_to_dot, plot_model
from .plotting import plot_history
from .progbar import Progbar
from .session import clear_session


Sequence = PyDataset   # Keras 3's older name for it


def serialize_keras_object(obj):
    """``gpu_dl.saving.serialize_keras_object`` (Keras 3 has it in ``keras.utils`` too)."""
    from ..models.serialization import serialize_keras_object as serialize
    return serialize(obj)


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """``gpu_dl.saving.deserialize_keras_object`` (Keras 3 has it in ``keras.utils`` too)."""
    from ..models.serialization import deserialize_keras_object as deserialize
    return deserialize(config, custom_objects=custom_objects, safe_mode=safe_mode, **kwargs)


def to_categorical(x, num_classes=None):
    """Class ids (any shape) to one-hot rows: shape ``x.shape + (num_classes,)``, float32."""
    labels = numpy.asarray(x)
    if labels.dtype.kind == "f":
        if not numpy.all(numpy.isfinite(labels)) or not numpy.all(labels == numpy.round(labels)):
            raise ValueError("to_categorical: `x` must hold whole class ids.")
        labels = labels.astype(numpy.int64)
    if labels.dtype.kind not in "iub":
        raise TypeError(f"to_categorical: `x` must hold integer class ids, got dtype {labels.dtype}.")
    if labels.ndim >= 2 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.size and labels.min() < 0:
        raise ValueError(f"to_categorical: class ids must be >= 0, got {labels.min()}.")
    top = int(labels.max()) + 1 if labels.size else 0
    if num_classes is None:
        num_classes = top
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, numpy.integer)) or num_classes <= 0:
        raise ValueError(f"to_categorical: `num_classes` must be a positive integer, got {num_classes!r}.")
    elif top > num_classes:
        raise ValueError(f"to_categorical: class id {top - 1} is out of range for num_classes={num_classes}.")
    out = numpy.zeros(labels.shape + (int(num_classes),), dtype=numpy.float32)
    numpy.put_along_axis(out, labels[..., None].astype(numpy.int64), 1.0, axis=-1)
    return out


def normalize(x, axis=-1, order=2):
    """Rows scaled to unit ``order``-norm along ``axis`` (zero rows stay zero)."""
    x = numpy.asarray(x, dtype=numpy.float64 if numpy.asarray(x).dtype == numpy.float64 else numpy.float32)
    norm = numpy.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    return x / numpy.where(norm == 0, 1, norm)


__all__ = ["Config", "CustomObjectScope", "Progbar", "PyDataset", "Sequence", "array_to_img",
           "audio_dataset_from_directory", "bounding_boxes", "clear_session",
           "custom_object_scope", "deserialize_keras_object", "disable_interactive_logging",
           "enable_interactive_logging", "FeatureSpace", "get_custom_objects", "get_file", "get_source_inputs",
           "is_interactive_logging_enabled", "is_keras_tensor", "pack_x_y_sample_weight", "serialize_keras_object",
           "split_dataset", "standardize_dtype", "unpack_x_y_sample_weight", "get_registered_name",
           "get_registered_object", "image_dataset_from_directory",
           "img_to_array", "load_img", "model_to_dot", "normalize", "pad_sequences", "plot_history", "plot_model",
           "register_keras_serializable", "save_img", "set_random_seed", "text_dataset_from_directory",
           "timeseries_dataset_from_array",
           "to_categorical"]
