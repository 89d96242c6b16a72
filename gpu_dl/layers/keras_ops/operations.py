"""The operations ``gpu_dl.ops`` records on symbolic tensors, as Keras 3 records its ``keras.ops``.

Each class is Keras's operation of the same name and module
(``keras.src.ops.numpy`` ``Mean``, ``keras.src.ops.nn`` ``Softmax``,
``keras.src.ops.core`` ``Cast``, ...), with Keras's constructor arguments as
its config (``{"name": "mean", "axis": 1, "keepdims": false}``), so a model
using them is saved as Keras saves it and Keras's files load here. They share
the arithmetic operations' base (``layers/operations.py``): one per use, no
weights, not among a model's layers, numbers and constant arrays allowed
among the arguments where Keras takes them. The maths is
``ops/numpy_functions.py``.

Dtypes follow Keras: the shape operations, ``sum``, ``max``, ``min``,
``square``, ``relu``, ``maximum``, ``minimum`` and ``clip`` keep an integer
input's dtype; ``mean``, ``sqrt``, ``exp``, ``log``, ``tanh``, ``sigmoid`` and
``softmax`` give floatx for integers (Keras's ``softmax`` keeps an integer
dtype there, which rounds every probability to 0 or 1; gpu_dl gives floats).
The activations of ``keras.ops.nn`` beyond those (``relu6``, ``elu``, ``hard_silu``, ``glu``, ...) and
Keras's ``ReLU`` and ``Mish`` of ``keras.activations`` give floats (``activations``).
Integer tensors take no gradient. ``argmax`` and ``argmin`` give int32, the
comparisons, logical operations, ``any`` and ``all`` bool; none of them, nor
``one_hot`` and ``full_like``, sends a gradient back. ``split`` and
``moments`` are operations of several outputs, as in Keras.

The classes live by family in ``reductions``, ``elementwise``, ``constants``, ``shapes``, ``selection`` and
``logic``, on ``base``, and in the further families ``math_elementwise``, the ones on ``mixed_operands`` and
``reductions`` (``reductions_extra``, ``statistics``, ``sorting_searching``, ``segments_scatter``,
``select_operation``), the ones on ``array_base`` (``axes_rearrange``, ``matrices``, ``blocks_windows``,
``stacking_splitting``, ``sequences_dtypes``), ``linalg_fft``, the ``keras.ops.nn`` ones on ``nn_base``
(``nn_pooling``, ``nn_depthwise_conv``, ``nn_normalization``, ``nn_attention``, ``nn_losses``, ``nn_ctc``,
``nn_conv``), ``complex_views`` and the ``keras.ops.image`` ones on ``image_base`` (``image_colour``,
``image_resizing``, ``image_coordinates``, ``image_transforms``, ``image_patches``, ``image_filters``); this
module gathers them and names them for configs read back (``OPERATIONS``).
"""
from __future__ import annotations

from .base import CORE, LINALG, MATH, NN, NUMPY, KerasOperation, _axis_setting, _eager, standardize_dtype
from .reductions import (
    Reduction, Mean, Sum, Max, Min, Logsumexp, Var, Std, Prod, Norm, Cumsum, Arg, Argmax, Argmin, Moments, Normalize)
from .elementwise import (
    Sqrt, Square, Exp, Log, Tanh, Sigmoid, Relu, Softmax, Maximum, Minimum, Clip, Sin, Cos, Erf, Silu, Softplus, Gelu,
    LogSoftmax)
from .constants import (
    Cast, ZerosLike, OnesLike, TracedConstant, FullLike)
from .shapes import (
    Reshape, Transpose, ExpandDims, Squeeze, Concatenate, Stack, Split, Tile, Repeat, Pad, BroadcastTo, Flip, Roll,
    Slice, Tril, Triu)
from .selection import (
    Einsum, Where, Take, TakeAlongAxis, OneHot, Tensordot, Dot)
from .activations import (
    ActivationOperation, Relu6, Selu, Softsign, TanhShrink, HardTanh, LogSigmoid, HardSigmoid, SparseSigmoid,
    SparsePlus, HardSilu, Mish, ReLU, LeakyRelu, Elu, Celu, Squareplus, HardShrink, SoftShrink, Threshold,
    Sparsemax, Glu, OPERATIONS as _ACTIVATIONS)
from .logic import (
    Comparison, Greater, GreaterEqual, Less, LessEqual, Equal, NotEqual, LogicalAnd, LogicalOr, LogicalXor,
    LogicalNot, Any, All)

__all__ = ['CORE', 'LINALG', 'MATH', 'NN', 'NUMPY', 'KerasOperation', '_axis_setting', '_eager',
           'standardize_dtype', 'Reduction', 'Mean', 'Sum', 'Max', 'Min', 'Logsumexp', 'Var', 'Std', 'Prod', 'Norm',
           'Cumsum', 'Arg', 'Argmax', 'Argmin', 'Moments', 'Normalize', 'Sqrt', 'Square', 'Exp', 'Log', 'Tanh',
           'Sigmoid', 'Relu', 'Softmax', 'Maximum', 'Minimum', 'Clip', 'Sin', 'Cos', 'Erf', 'Silu', 'Softplus',
           'Gelu', 'LogSoftmax', 'Cast', 'ZerosLike', 'OnesLike', 'TracedConstant', 'FullLike', 'Reshape',
           'Transpose', 'ExpandDims', 'Squeeze', 'Concatenate', 'Stack', 'Split', 'Tile', 'Repeat', 'Pad',
           'BroadcastTo', 'Flip', 'Roll', 'Slice', 'Tril', 'Triu', 'Einsum', 'Where', 'Take', 'TakeAlongAxis',
           'OneHot', 'Tensordot', 'Dot', 'Comparison', 'Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal',
           'NotEqual', 'LogicalAnd', 'LogicalOr', 'LogicalXor', 'LogicalNot', 'Any', 'All', 'ActivationOperation',
           'Relu6', 'Selu', 'Softsign', 'TanhShrink', 'HardTanh', 'LogSigmoid', 'HardSigmoid', 'SparseSigmoid',
           'SparsePlus', 'HardSilu', 'Mish', 'ReLU', 'LeakyRelu', 'Elu', 'Celu', 'Squareplus', 'HardShrink',
           'SoftShrink', 'Threshold', 'Sparsemax', 'Glu']

# Keras's class names of these operations, for models read back from a config.
OPERATIONS = {cls.__name__: cls for cls in (
    Mean, Sum, Max, Min, Sqrt, Square, Exp, Log, Tanh, Sigmoid, Relu, Softmax, Maximum, Minimum, Clip, Cast,
    ZerosLike, OnesLike, Reshape, Transpose, ExpandDims, Squeeze, Concatenate, Stack, Einsum, Where, Take,
    TakeAlongAxis, Sin, Cos, Erf, Silu, Softplus, Gelu, LogSoftmax, Logsumexp, Var, Std, Prod, Norm, Cumsum, Argmax,
    Argmin, Moments, Normalize, Split, Tile, Repeat, Pad, BroadcastTo, Flip, Roll, Slice, Tril, Triu, OneHot,
    FullLike, Greater, GreaterEqual, Less, LessEqual, Equal, NotEqual, LogicalAnd, LogicalOr, LogicalXor,
    LogicalNot, Any, All, Tensordot, Dot)} | _ACTIVATIONS

# The further families' operations, each in its module.
from . import (math_elementwise, reductions_extra, statistics, sorting_searching, segments_scatter,  # noqa: E402
               select_operation, axes_rearrange, matrices, blocks_windows, stacking_splitting, sequences_dtypes,
               linalg_fft, nn_pooling, nn_depthwise_conv, nn_normalization, nn_attention, nn_losses, nn_ctc, nn_conv,
               complex_views, image_colour, image_resizing, image_coordinates, image_transforms, image_patches,
               image_filters)
for _family in (math_elementwise, reductions_extra, statistics, sorting_searching, segments_scatter, select_operation,
                axes_rearrange, matrices, blocks_windows, stacking_splitting, sequences_dtypes, linalg_fft, nn_pooling,
                nn_depthwise_conv, nn_normalization, nn_attention, nn_losses, nn_ctc, nn_conv, complex_views,
                image_colour, image_resizing, image_coordinates, image_transforms, image_patches, image_filters):
    OPERATIONS.update(_family.OPERATIONS)
del _family
