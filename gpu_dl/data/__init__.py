"""Data sets that work offline, and helpers to split them."""
from .digits import load_digits

__all__ = ["load_digits"]
