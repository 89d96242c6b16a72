"""Data sets that work offline, helpers to split them, and sequence windows and padding."""
from .cifar10 import load_cifar10
from .digits import load_digits
from .mnist import load_fashion_mnist, load_mnist
from .py_dataset import PyDataset
from .sequences import SequenceDataset, pad_sequences, timeseries_dataset_from_array

__all__ = [
    "PyDataset", "SequenceDataset", "load_cifar10", "load_digits", "load_fashion_mnist", "load_mnist", "pad_sequences",
    "timeseries_dataset_from_array",
]
