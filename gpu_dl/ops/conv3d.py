"""3-D convolution on NDHWC volumes, built from the 2-D convolution ops, one call per kernel depth tap.

Shapes (Keras 3, channels_last): x (N, D, H, W, Cin), kernel (KD, KH, KW, Cin/groups, Cout),
y (N, OD, OH, OW, Cout). ``strides`` and ``dilation`` are (int, int, int), ``padding`` explicit zero padding
((front, back), (top, bottom), (left, right)) as ``ops.convolution.conv_padding`` gives it for three axes.

Depth tap a of the kernel reads, for output depth o, input depth o * stride_d + a * dilation_d of the
depth-padded input. Those depths for all o are one strided slice (N, OD, H, W, Cin), copied contiguous
and read as a batch of N * OD images, and the tap's share of y is the 2-D convolution of that batch with
the (KH, KW, Cin/groups, Cout) kernel[a]. So:

- forward: y = sum over a of conv2d(slice_a, kernel[a]);
- input gradient: each tap's 2-D input gradient, added back into the depths its slice came from (the
  depths of one tap are distinct, so one strided add per tap), the depth padding then cropped;
- kernel gradient: dkernel[a] = the 2-D kernel gradient of slice_a against dy seen as N * OD images.

The 2-D ops take NumPy arrays to their im2col path and CuPy arrays to ``kernels/conv2d.cu``, so this runs
on both with no kernel of its own; its Python loop is over the KD depth taps only.
"""
from __future__ import annotations

from ..backend import array_module
from .convolution import conv2d_backward_input, conv2d_backward_kernel, conv2d_forward, conv_output_length


def _output_depth(x_shape, kernel_shape, strides, padding, dilation):
    od = conv_output_length(x_shape[1], kernel_shape[0], strides[0], dilation[0], *padding[0])
    if od < 1:
        raise ValueError(f"conv3d: input {tuple(x_shape)} with kernel {tuple(kernel_shape[:3])}, strides {strides}, "
                         f"dilation {dilation} and padding {padding} leaves no output position.")
    return od


def _depth_padded(x, pads):
    """x (N, D, H, W, C) with zeros before and after its depth axis (x itself when there are none)."""
    front, back = pads
    if not (front or back):
        return x
    xp = array_module(x)
    return xp.pad(x, ((0, 0), (front, back), (0, 0), (0, 0), (0, 0)))


def _depths(tap, od, stride, dilation):
    """The padded input depths that depth tap ``tap`` reads for output depths 0 .. od - 1."""
    return slice(tap * dilation, tap * dilation + stride * (od - 1) + 1, stride)


def _tap_images(x_padded, tap, od, stride, dilation):
    """(N * OD, H, W, C): the depths tap ``tap`` reads, as a contiguous batch of images (one copy)."""
    xp = array_module(x_padded)
    n, _, h, w, c = x_padded.shape
    return xp.ascontiguousarray(x_padded[:, _depths(tap, od, stride, dilation)]).reshape(n * od, h, w, c)


def _plane_args(strides, padding, dilation):
    """The 2-D ops' keyword arguments: the (H, W) part of the 3-D geometry."""
    return {"strides": tuple(strides[1:]), "padding": tuple(padding[1:]), "dilation": tuple(dilation[1:])}


def conv3d_forward(x, kernel, *, strides=(1, 1, 1), padding=((0, 0),) * 3, dilation=(1, 1, 1), groups=1):
    """y (N, OD, OH, OW, Cout) = conv(x, kernel), no bias; see the module docstring."""
    od = _output_depth(x.shape, kernel.shape, strides, padding, dilation)
    x_padded = _depth_padded(x, padding[0])
    plane = _plane_args(strides, padding, dilation)
    y = None
    for a in range(kernel.shape[0]):
        part = conv2d_forward(_tap_images(x_padded, a, od, strides[0], dilation[0]), kernel[a], groups=groups,
                              **plane)
        if y is None:
            y = part
        else:
            y += part
    return y.reshape((x.shape[0], od) + y.shape[1:])


def conv3d_backward_input(dy, kernel, input_shape, *, strides=(1, 1, 1), padding=((0, 0),) * 3,
                          dilation=(1, 1, 1), groups=1):
    """dL/dx (N, D, H, W, Cin) from dy (N, OD, OH, OW, Cout)."""
    xp = array_module(dy)
    n, d, h, w, cin = input_shape
    od = dy.shape[1]
    front, back = padding[0]
    plane = _plane_args(strides, padding, dilation)
    dy_images = xp.ascontiguousarray(dy).reshape((n * od,) + dy.shape[2:])
    dx_padded = None
    for a in range(kernel.shape[0]):
        part = conv2d_backward_input(dy_images, kernel[a], (n * od, h, w, cin), groups=groups, **plane)
        if dx_padded is None:
            dx_padded = xp.zeros((n, d + front + back, h, w, cin), dtype=part.dtype)
        dx_padded[:, _depths(a, od, strides[0], dilation[0])] += part.reshape(n, od, h, w, cin)
    return dx_padded[:, front:front + d]


def conv3d_backward_kernel(x, dy, kernel_shape, *, strides=(1, 1, 1), padding=((0, 0),) * 3, dilation=(1, 1, 1),
                           groups=1):
    """dL/dkernel (KD, KH, KW, Cin/groups, Cout) from x (N, D, H, W, Cin) and dy (N, OD, OH, OW, Cout)."""
    xp = array_module(x)
    od = dy.shape[1]
    x_padded = _depth_padded(x, padding[0])
    plane = _plane_args(strides, padding, dilation)
    dy_images = xp.ascontiguousarray(dy).reshape((x.shape[0] * od,) + dy.shape[2:])
    return xp.stack([conv2d_backward_kernel(_tap_images(x_padded, a, od, strides[0], dilation[0]), dy_images,
                                            tuple(kernel_shape[1:]), groups=groups, **plane)
                     for a in range(kernel_shape[0])])
