"""2-D transposed convolution on NHWC data, built on the convolution's own passes (``convolution.py``).

Shapes (Keras 3, channels_last): x (N, H, W, Cin), kernel (KH, KW, F, Cin) (the filters F before the input
channels), y (N, OH, OW, F). A transposed convolution is the input gradient of the convolution whose input
is y and whose output is x, with this very kernel as that convolution's (KH, KW, in, out) kernel, so:

- forward:  y  = conv2d_backward_input(x, kernel, y's shape)
- backward: dx = conv2d_forward(dy, kernel) and dkernel = conv2d_backward_kernel(dy, x),

all with the geometry ``transpose_geometry`` gives. On CuPy arrays these run the conv2d.cu kernels.

Keras's sizes, along one axis of length n with the dilated window span = dilation * (k - 1) + 1: every
input position scatters a span-long window at stride s, the full result being (n - 1) * s + span long;
Keras keeps ``out`` positions of it starting at ``crop``:

- "valid": crop 0; out = (n - 1) * s + span + output_padding, output_padding None meaning
  max(span, s) - span (the last window's stride gap kept);
- "same", output_padding None: out = n * s; given: out = (n - 1) * s + span % 2 + output_padding; crop
  is what Keras's total padding (s + span - 2, or span + span % 2 - 2 + output_padding) puts before the
  output, its larger half, at most span - 1.

In the convolution that maps y back to x, ``crop`` is the padding before. The padding after is the rest of
the full length past the output; where the output reaches beyond the full length (output_padding, or a
stride longer than the window under "valid") it is 0 and the extra rows/columns at the bottom/right are
ones no window reads, which the input gradient leaves 0, as Keras's output has them. That overhang is
always shorter than the stride, so the convolution of y still gives n positions: every combination of
padding, output_padding, strides and dilation maps onto the convolution's passes with no extra pad or crop.
"""
from __future__ import annotations

import numpy

from .convolution import conv2d_backward_input, conv2d_backward_kernel, conv2d_forward, is_cupy


def transpose_output_length(size, window, stride, dilation, padding, output_padding=None):
    """Keras 3's output length along one axis (None for an unknown ``size``; may be <= 0)."""
    if size is None:
        return None
    span = dilation * (window - 1) + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return (size - 1) * stride + span + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + span % 2 + output_padding


def transpose_padding(size, window, stride, dilation, padding, output_padding=None):
    """``(before, after)``: the padding of the convolution that maps the output (length
    ``transpose_output_length``) back to an input of length ``size`` (module docstring)."""
    span = dilation * (window - 1) + 1
    if padding == "valid":
        before = 0
    else:
        total = stride + span - 2 if output_padding is None else span + span % 2 - 2 + output_padding
        before = max(span - 1 - (total + 1) // 2, 0)
    if size is None:
        return before, None
    full = (size - 1) * stride + span
    out = transpose_output_length(size, window, stride, dilation, padding, output_padding)
    return before, max(full - before - out, 0)


def conv2d_transpose_forward(x, kernel, output_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                             dilation=(1, 1)):
    """y (``output_shape`` = (N, OH, OW, F)) from x (N, H, W, Cin) and kernel (KH, KW, F, Cin), no bias;
    ``padding`` is the convolution's, from ``transpose_padding``. C-contiguous."""
    y = conv2d_backward_input(x, kernel, tuple(output_shape), strides=strides, padding=padding, dilation=dilation)
    # NumPy's input gradient is a view into its padded buffer; the next layer reads contiguous NHWC
    return y if is_cupy(y) else numpy.ascontiguousarray(y)


def conv2d_transpose_backward_input(dy, kernel, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """dL/dx (N, H, W, Cin) from dy (N, OH, OW, F): the convolution of dy with the kernel."""
    return conv2d_forward(dy, kernel, strides=strides, padding=padding, dilation=dilation)


def conv2d_transpose_backward_kernel(x, dy, kernel_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                                     dilation=(1, 1)):
    """dL/dkernel (KH, KW, F, Cin): the convolution's kernel gradient with dy as its input and x as its
    output's gradient."""
    return conv2d_backward_kernel(dy, x, tuple(kernel_shape), strides=strides, padding=padding, dilation=dilation)
