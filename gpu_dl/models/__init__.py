"""Models: the training loop (``Model``), the layer stack (``Sequential``), the graph of layer calls
(``Functional``, made by ``Model(inputs, outputs)``), models used as layers of other models (``nested``) and
saving/loading."""
from .functional import Functional
from .model import Model
from .saving import load_model
from .sequential import Sequential

__all__ = ["Functional", "Model", "Sequential", "load_model"]
