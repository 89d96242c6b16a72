"""Keras layers."""
from .activation import ELU, PReLU, ReLU, Activation, LeakyReLU, Softmax
from .base import Layer, Variable
from .core import Dense, Dropout, Flatten, Input, InputLayer

__all__ = [
    "Activation", "Dense", "Dropout", "ELU", "Flatten", "Input", "InputLayer", "Layer", "LeakyReLU",
    "PReLU", "ReLU", "Softmax", "Variable",
]
