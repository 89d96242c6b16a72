"""Keras's ``keras.ops.nn`` convolutions ``conv`` and ``conv_transpose``, as ``gpu_dl.ops.conv`` and
``gpu_dl.ops.conv_transpose`` (and in ``gpu_dl.ops.nn``).

On arrays (NumPy or CuPy; numbers and lists as the current device's arrays) they compute at once; on symbolic
tensors they record Keras's ``Conv`` / ``ConvTranspose`` (``nn_conv.py``), whose backward is exact in the input
and in the kernel, so a kernel held by a composite layer's weight trains.
"""
from __future__ import annotations

from ... import backprop as _backprop
from . import _taking_variables
from . import nn_conv as _conv
from .nn_api import _call, _format, _padding_word

__all__ = ["conv", "conv_transpose"]


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """1-, 2- or 3-D convolution (rank 3, 4 or 5 input); kernel ``window + (in_channels, out_channels)``."""
    return _call(_conv.Conv, dict(strides=strides, padding=_padding_word(padding, "conv"),
                                  data_format=_format(data_format), dilation_rate=dilation_rate), (inputs, kernel))


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """1-, 2- or 3-D transposed convolution; kernel ``window + (out_channels, in_channels)``."""
    return _call(_conv.ConvTranspose, dict(strides=strides, padding=_padding_word(padding, "conv_transpose"),
                                           output_padding=output_padding, data_format=_format(data_format),
                                           dilation_rate=dilation_rate), (inputs, kernel))


# On arrays, loss.backward() refuses the outputs of these functions where they come from a recorded call
# (gpu_dl/backprop.py), as it refuses the other nn functions'.
for _name in __all__:
    globals()[_name] = _backprop.followed(_taking_variables(globals()[_name]), _name)
del _name
