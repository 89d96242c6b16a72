"""Keras layers."""
from .activation import ELU, PReLU, ReLU, Activation, LeakyReLU, Softmax
from .base import Layer, Variable
from .conv import Conv1D, Conv2D
from .core import Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .embedding import Embedding
from .masking import Masking
from .padding import ReflectionPadding2D, ZeroPadding2D
from .preprocessing import RandomFlip, RandomRotation, RandomTranslation, RandomZoom, Rescaling
from .recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D, GlobalMaxPool2D,
                      GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)

__all__ = [
    "Activation", "AveragePooling2D", "AvgPool2D", "Bidirectional", "Conv1D", "Conv2D", "Dense", "Dropout", "ELU", "Embedding",
    "Flatten", "GRU", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D",
    "Input", "InputLayer", "LSTM", "Layer", "LeakyReLU", "Masking", "MaxPool2D", "MaxPooling2D", "PReLU", "RandomFlip",
    "RandomRotation", "RandomTranslation", "RandomZoom", "ReLU", "ReflectionPadding2D", "Rescaling", "Reshape",
    "SimpleRNN", "Softmax", "Variable", "ZeroPadding2D",
]
