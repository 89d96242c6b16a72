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
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
                      GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)

__all__ = [
    "AveragePooling1D", "AvgPool1D", "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalMaxPool1D",
    "GlobalMaxPooling1D", "MaxPool1D", "MaxPooling1D",
    "Activation", "AveragePooling2D", "AvgPool2D", "Bidirectional", "Conv1D", "Conv2D", "Dense", "Dropout", "ELU", "Embedding",
    "Flatten", "GRU", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D",
    "Input", "InputLayer", "LSTM", "Layer", "LeakyReLU", "Masking", "MaxPool2D", "MaxPooling2D", "PReLU", "RandomFlip",
    "RandomRotation", "RandomTranslation", "RandomZoom", "ReLU", "ReflectionPadding2D", "Rescaling", "Reshape",
    "SimpleRNN", "Softmax", "Variable", "ZeroPadding2D",
]
