"""``keras.preprocessing.sequence``: ``pad_sequences``."""
from ..data.sequences import pad_sequences

__all__ = ["pad_sequences"]
