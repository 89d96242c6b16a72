"""Data sets that work offline, helpers to split them, sequence windows and padding, and folders of image files."""
from .cifar10 import load_cifar10
from .cifar100 import load_cifar100
from .digits import load_digits
from .image_files import array_to_img, img_to_array, load_img, save_img
from .image_folders import ImageFolderDataset, image_dataset_from_directory
from .mnist import load_fashion_mnist, load_mnist
from .py_dataset import PyDataset
from .sequences import SequenceDataset, pad_sequences, timeseries_dataset_from_array

__all__ = [
    "ImageFolderDataset", "PyDataset", "SequenceDataset", "array_to_img", "image_dataset_from_directory",
    "img_to_array", "load_cifar10", "load_cifar100", "load_digits", "load_fashion_mnist", "load_img", "load_mnist",
    "pad_sequences", "save_img", "timeseries_dataset_from_array",
]
