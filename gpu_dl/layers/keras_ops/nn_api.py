"""Keras's ``keras.ops.nn`` pooling, convolution, normalization, attention, loss and CTC functions, as
``gpu_dl.ops.<name>``.

They compute at once on arrays (NumPy or CuPy; numbers and lists as the current device's arrays) and record
Keras's operation on symbolic tensors (``nn_pooling.py``, ``nn_depthwise_conv.py``, ``nn_normalization.py``,
``nn_attention.py``, ``nn_losses.py``, ``nn_ctc.py``).
"""
from __future__ import annotations

import numpy

from ... import backend, backprop as _backprop
from ..symbolic import is_symbolic
from . import _taking_variables
from . import nn_pooling as _pooling
from . import nn_depthwise_conv as _depthwise
from . import nn_normalization as _normalization
from . import nn_attention as _attention
from . import nn_losses as _losses
from . import nn_ctc as _ctc

__all__ = [
    "max_pool", "average_pool", "adaptive_max_pool", "adaptive_average_pool", "depthwise_conv", "separable_conv",
    "batch_normalization", "layer_normalization", "rms_normalization", "dot_product_attention",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "ctc_loss", "ctc_decode",
    "psnr",
]


def _symbolic(*values):
    for value in values:
        if is_symbolic(value) or (isinstance(value, (list, tuple)) and _symbolic(*value)) or \
                (isinstance(value, dict) and _symbolic(*value.values())):
            return True
    return False


def _call(cls, settings, args, kwargs=None):
    """``cls(**settings)`` on ``args`` and ``kwargs``: recorded on symbolic tensors, computed at once on arrays."""
    kwargs = kwargs or {}
    if _symbolic(*args, *kwargs.values()):
        return cls(**settings).apply(*args, **kwargs)
    return cls(name=cls.__name__.lower(), **settings).run(*args, **kwargs)


def _format(data_format):
    """Keras's standardised data format (None: the configured one), as its functions pass it to the operation."""
    if data_format is None:
        return backend.image_data_format()
    word = str(data_format).lower()
    if word not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}.")
    return word


def _padding_word(padding, where):
    if not isinstance(padding, str):
        raise TypeError(f"{where}: `padding` must be 'valid' or 'same', got {padding!r:.80}.")
    return padding.lower()


# ------------------------------------------------------------------ pooling and convolutions
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling of a 1-, 2- or 3-D input (rank 3, 4 or 5)."""
    return _call(_pooling.MaxPool, dict(pool_size=pool_size, strides=strides,
                                   padding=_padding_word(padding, "max_pool"), data_format=_format(data_format)),
                 (inputs,))


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling of a 1-, 2- or 3-D input (rank 3, 4 or 5)."""
    return _call(_pooling.AveragePool, dict(pool_size=pool_size, strides=strides,
                                       padding=_padding_word(padding, "average_pool"),
                                       data_format=_format(data_format)), (inputs,))


def adaptive_max_pool(inputs, output_size, data_format=None):
    return _call(_pooling.AdaptiveMaxPool, dict(output_size=output_size, data_format=_format(data_format)), (inputs,))


def adaptive_average_pool(inputs, output_size, data_format=None):
    return _call(_pooling.AdaptiveAveragePool, dict(output_size=output_size, data_format=_format(data_format)),
                 (inputs,))


def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """1-D or 2-D depthwise convolution: kernel (*window, channels, multiplier)."""
    return _call(_depthwise.DepthwiseConv, dict(strides=strides, padding=_padding_word(padding, "depthwise_conv"),
                                         data_format=_format(data_format), dilation_rate=dilation_rate),
                 (inputs, kernel))


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """A depthwise convolution, then a 1 x 1 one: pointwise kernel (1[, 1], channels * multiplier, filters)."""
    return _call(_depthwise.SeparableConv, dict(strides=strides, padding=_padding_word(padding, "separable_conv"),
                                         data_format=_format(data_format), dilation_rate=dilation_rate),
                 (inputs, depthwise_kernel, pointwise_kernel))


# ------------------------------------------------------------------ normalizations and attention
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    return _call(_normalization.BatchNorm, dict(axis=axis, epsilon=epsilon), (x, mean, variance, offset, scale))


def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, **kwargs):
    rms_scaling = kwargs.pop("rms_scaling", False)
    if kwargs:
        raise TypeError(f"layer_normalization: unknown keyword argument(s) {sorted(kwargs)}.")
    return _call(_normalization.LayerNorm, dict(axis=axis, epsilon=epsilon, rms_scaling=rms_scaling), (x, gamma, beta))


def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    return _call(_normalization.RMSNorm, dict(axis=axis, epsilon=epsilon), (x,), dict(scale=scale))


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None):
    """Scaled dot-product attention of 4-D (batch, steps, heads, features) tensors; ``flash_attention`` is
    accepted and recorded (gpu_dl computes the same values either way)."""
    if bias is not None and mask is not None:
        raise ValueError("dot_product_attention: only one of `bias` and `mask` can be given, as in Keras.")
    if scale is not None and (is_symbolic(scale) or hasattr(scale, "shape") and numpy.size(scale) != 1):
        raise TypeError("dot_product_attention: `scale` must be a number.")
    if scale is not None and hasattr(scale, "shape"):
        scale = float(backend.to_numpy(scale))
    return _call(_attention.DotProductAttention, dict(is_causal=is_causal, flash_attention=flash_attention,
                                               attn_logits_soft_cap=attn_logits_soft_cap),
                 (query, key, value), dict(bias=bias, mask=mask, scale=scale))


# ------------------------------------------------------------------ losses
def binary_crossentropy(target, output, from_logits=False):
    return _call(_losses.BinaryCrossentropy, dict(from_logits=from_logits), (target, output))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    return _call(_losses.CategoricalCrossentropy, dict(from_logits=from_logits, axis=axis), (target, output))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    return _call(_losses.SparseCategoricalCrossentropy, dict(from_logits=from_logits, axis=axis), (target, output))


def ctc_loss(target, output, target_length, output_length, mask_index=0):
    return _call(_ctc.CTCLoss, dict(mask_index=mask_index), (target, output, target_length, output_length))


def ctc_decode(inputs, sequence_lengths, strategy="greedy", beam_width=100, top_paths=1, merge_repeated=True,
               mask_index=0):
    """CTC decoding, greedy (classes (1, batch, steps) int32, -1 after each row's end; scores (batch, 1)) or by
    Keras's beam search (the ``top_paths`` best: (top_paths, batch, steps) and (batch, top_paths))."""
    settings = dict(strategy=strategy, beam_width=beam_width, top_paths=top_paths, merge_repeated=merge_repeated,
                    mask_index=mask_index)
    if _symbolic(inputs, sequence_lengths):
        return tuple(_ctc.CTCDecode(**settings).apply(inputs, sequence_lengths))
    return tuple(_ctc.CTCDecode(name="ctc_decode", **settings).run(inputs, sequence_lengths))


def psnr(x1, x2, max_val):
    """The peak signal-to-noise ratio of x1 and x2 (a scalar)."""
    return _call(_losses.PSNR, dict(max_val=max_val), (x1, x2))



# On arrays, loss.backward() refuses the outputs of these functions where they come from a recorded call
# (gpu_dl/backprop.py).
for _name in __all__:
    globals()[_name] = _backprop.followed(_taking_variables(globals()[_name]), _name)
del _name
