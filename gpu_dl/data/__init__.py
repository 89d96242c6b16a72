"""Data sets that work offline, helpers to split them, and sequence windows and padding."""
from .digits import load_digits
from .sequences import SequenceDataset, pad_sequences, timeseries_dataset_from_array

__all__ = ["SequenceDataset", "load_digits", "pad_sequences", "timeseries_dataset_from_array"]
