"""Models: the training loop (``Model``) and the layer stack (``Sequential``)."""
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential"]
