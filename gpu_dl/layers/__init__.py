"""Keras layers."""
from .activation import ELU, PReLU, ReLU, Activation, LeakyReLU, Softmax
from .adaptive_pooling import (AdaptiveAveragePooling1D, AdaptiveAveragePooling2D, AdaptiveAveragePooling3D,
                               AdaptiveMaxPooling1D, AdaptiveMaxPooling2D, AdaptiveMaxPooling3D)
from .attention import AdditiveAttention, Attention
from .audio import MelSpectrogram, STFTSpectrogram
from .base import Layer, Variable
from .bidirectional import Bidirectional
from .category_encoding import CategoryEncoding
from .conv import Conv1D, Conv2D, DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D
from .conv import Convolution1D, Convolution2D, SeparableConvolution1D, SeparableConvolution2D
from .conv3d import Conv3D, Convolution3D
from .conv3d_transpose import Conv3DTranspose, Convolution3DTranspose
from .conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from .conv_transpose import Conv1DTranspose, Conv2DTranspose, Convolution1DTranspose, Convolution2DTranspose
from .core import Dense, Dropout, Flatten, Input, InputLayer, Reshape
from .discretization import Discretization
from .einsum_dense import EinsumDense
from .embedding import Embedding
from .feature_normalization import Normalization
from .group_normalization import GroupNormalization
from .group_query_attention import GroupedQueryAttention, GroupQueryAttention
from .hashing import HashedCrossing, Hashing
from .input_spec import InputSpec
from .integer_lookup import IntegerLookup
from .lambda_layer import Lambda
from .layer_serialization import deserialize, serialize
from .masking import Masking
from .merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
                      concatenate, dot, maximum, minimum, multiply, subtract)
from .multi_head_attention import MultiHeadAttention
from .normalization import BatchNormalization, LayerNormalization, RMSNormalization, UnitNormalization
from .pipeline import Pipeline
from .padding import ReflectionPadding2D, ZeroPadding1D, ZeroPadding2D, ZeroPadding3D
from .regularization import (ActivityRegularization, AlphaDropout, GaussianDropout, GaussianNoise, SpatialDropout1D,
                             SpatialDropout2D, SpatialDropout3D)
from .resampling import Cropping2D, Cropping3D, UpSampling2D, UpSampling3D
from .reversible_embedding import ReversibleEmbedding
from .color_augmentation import RandomBrightness, RandomContrast
from .color_jitter import RandomColorJitter
from .color_space import RandomColorDegeneration, RandomGrayscale, RandomHue, RandomInvert, RandomSaturation
from .mixing_augmentation import CutMix, MixUp, RandomErasing
from .geometric_augmentation import RandomPerspective, RandomShear
from .clahe import ContrastLimitedAdaptiveHistogramEqualization
from .elastic_augmentation import RandomElasticTransform
from .policy_augmentation import AugMix, RandAugment
from .filter_augmentation import RandomGaussianBlur, RandomSharpness
from .tone_augmentation import AutoContrast, Equalization, RandomPosterization, Solarization
from .image_resizing import CenterCrop, RandomCrop, Resizing
from .bounding_box_layers import MaxNumBoundingBoxes
from .preprocessing import RandomFlip, RandomRotation, RandomTranslation, RandomZoom, Rescaling
from .recurrent import GRU, LSTM, SimpleRNN
from .rnn_cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from .rnn_layer import RNN
from .reshaping import Identity, Permute, RepeatVector
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D, GlobalAveragePooling1D,
                      GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D,
                      GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from .pooling3d import (AveragePooling3D, AvgPool3D, GlobalAveragePooling3D, GlobalAvgPool3D, GlobalMaxPool3D,
                        GlobalMaxPooling3D, MaxPool3D, MaxPooling3D)
from .spectral_normalization import SpectralNormalization
from .steps import Cropping1D, UpSampling1D
from .string_lookup import StringLookup
from .text_vectorization import TextVectorization
from .wrappers import TimeDistributed, Wrapper

__all__ = [
    "Activation", "ActivityRegularization", "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D",
    "AdaptiveAveragePooling3D", "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D", "Add", "add",
    "AdditiveAttention", "AlphaDropout", "Attention", "AugMix", "AutoContrast", "Average", "average",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "BatchNormalization", "Bidirectional", "CategoryEncoding", "CenterCrop", "Concatenate", "concatenate", "Conv1D",
    "ContrastLimitedAdaptiveHistogramEqualization",
    "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "ConvLSTM1D", "ConvLSTM2D",
    "ConvLSTM3D", "Convolution1D", "Convolution1DTranspose", "Convolution2D", "Convolution2DTranspose", "Convolution3D",
    "Convolution3DTranspose", "Cropping1D", "Cropping2D", "Cropping3D", "CutMix", "Dense", "DepthwiseConv1D",
    "DepthwiseConv2D", "deserialize", "Discretization", "Dot", "dot", "Dropout", "EinsumDense", "ELU", "Embedding",
    "Equalization", "Flatten", "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D",
    "GlobalMaxPool2D", "GlobalMaxPool3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GroupedQueryAttention", "GroupNormalization", "GroupQueryAttention", "GRU", "GRUCell", "HashedCrossing", "Hashing",
    "Identity", "Input",
    "InputLayer", "InputSpec",
    "IntegerLookup", "Lambda", "Layer", "LayerNormalization", "LeakyReLU", "LSTM", "LSTMCell", "Masking", "Maximum",
    "maximum", "MaxNumBoundingBoxes", "MaxPool1D", "MaxPool2D", "MaxPool3D", "MaxPooling1D", "MaxPooling2D",
    "MaxPooling3D", "MelSpectrogram", "Minimum",
    "minimum", "MixUp", "MultiHeadAttention", "Multiply", "multiply", "Normalization", "Permute", "Pipeline", "PReLU",
    "RandAugment", "RandomBrightness", "RandomColorDegeneration", "RandomColorJitter", "RandomContrast", "RandomCrop",
    "RandomElasticTransform",
    "RandomErasing", "RandomFlip", "RandomGaussianBlur", "RandomGrayscale", "RandomHue", "RandomInvert",
    "RandomPerspective", "RandomPosterization", "RandomRotation", "RandomSaturation", "RandomSharpness", "RandomShear",
    "RandomTranslation", "RandomZoom", "ReflectionPadding2D", "ReLU", "RepeatVector", "Rescaling", "Reshape",
    "Resizing", "ReversibleEmbedding", "RMSNormalization", "RNN", "SeparableConv1D", "SeparableConv2D",
    "SeparableConvolution1D", "SeparableConvolution2D", "serialize", "SimpleRNN", "SimpleRNNCell", "Softmax",
    "Solarization", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "SpectralNormalization",
    "StackedRNNCells", "STFTSpectrogram", "StringLookup", "Subtract", "subtract", "TextVectorization",
    "TimeDistributed",
    "UnitNormalization", "UpSampling1D", "UpSampling2D",
    "UpSampling3D", "Variable", "Wrapper", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
]
