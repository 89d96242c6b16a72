"""Models: the training loop (``Model``), the layer stack (``Sequential``), the graph of layer calls
(``Functional``, made by ``Model(inputs, outputs)``), models used as layers of other models (``nested``),
cloning (``clone_model``) and saving/loading."""
from .cloning import clone_model
from .functional import Functional
from .json_config import model_from_json
from .model import Model
from .saving import load_model, save_model
from .sequential import Sequential

__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model", "model_from_json", "save_model"]
