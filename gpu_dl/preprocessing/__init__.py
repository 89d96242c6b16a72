"""``keras.preprocessing``: the image and sequence helpers and the data-set builders, under Keras's names.

``image`` (``load_img``, ``img_to_array``, ``array_to_img``, ``save_img``, ``smart_resize``), ``sequence``
(``pad_sequences``), ``image_dataset_from_directory``, ``text_dataset_from_directory`` and
``timeseries_dataset_from_array`` are gpu_dl's own (``gpu_dl.utils`` has them too).
"""
from ..data.image_folders import image_dataset_from_directory
from ..data.sequences import timeseries_dataset_from_array
from ..data.text_folders import text_dataset_from_directory
from . import image, sequence

__all__ = ["image", "image_dataset_from_directory", "sequence", "text_dataset_from_directory",
           "timeseries_dataset_from_array"]
