"""Depthwise 2-D convolution on NHWC data: forward, gradient of the input, gradient of the kernel.

Shapes (Keras 3, channels_last): x (N, H, W, C), kernel (KH, KW, C, M) with
M the depth multiplier, y (N, OH, OW, C*M) where output channel c*M + m is
input channel c convolved with kernel[:, :, c, m]. ``strides``, ``dilation``
and ``padding`` are as in ``convolution.py``.

Each channel meets only its own M filters, so there is no reduction over
channels for a matrix product to do: both paths take one vectorised
multiply-add per kernel tap over the whole batch (a strided slice of the
padded input times that tap's (C, M) weights), KH*KW array operations in
all and no loop over pixels or channels. The same array code runs on NumPy
and, through CuPy, on the GPU (element-wise CuPy kernels, no dedicated CUDA
kernel): memory-bound, about KH*KW passes over the output.
"""
from __future__ import annotations

from ..backend import array_module
from .convolution import _out_hw
from .device_reduction import sum_axes


def _tap_slices(r, q, strides, dilation, out_hw):
    """The (rows, columns) slices of the padded input that tap (r, q) reads for every output position."""
    h0, w0 = r * dilation[0], q * dilation[1]
    return (slice(h0, h0 + strides[0] * (out_hw[0] - 1) + 1, strides[0]),
            slice(w0, w0 + strides[1] * (out_hw[1] - 1) + 1, strides[1]))


def _pad(xp, x, padding):
    (pt, pb), (pl, pr) = padding
    if not (pt or pb or pl or pr):
        return x
    return xp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def depthwise_conv2d_forward(x, kernel, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """y (N, OH, OW, C*M) = the depthwise convolution of x (N, H, W, C) with kernel (KH, KW, C, M)."""
    xp = array_module(x)
    kh, kw, c, m = kernel.shape
    if x.shape[-1] != c:
        raise ValueError(f"depthwise_conv2d: `kernel` {tuple(kernel.shape)} has {c} channels but `x` "
                         f"{tuple(x.shape)} has {x.shape[-1]}.")
    oh, ow = _out_hw(x.shape, kernel.shape, strides, dilation, padding)
    padded = _pad(xp, x, padding)
    y = xp.zeros((x.shape[0], oh, ow, c, m), dtype=xp.result_type(x, kernel))
    for r in range(kh):
        for q in range(kw):
            rows, cols = _tap_slices(r, q, strides, dilation, (oh, ow))
            y += padded[:, rows, cols, :, None] * kernel[r, q]
    return y.reshape(x.shape[0], oh, ow, c * m)


def depthwise_conv2d_backward_input(dy, kernel, input_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                                    dilation=(1, 1)):
    """dL/dx (N, H, W, C) from dy (N, OH, OW, C*M): each tap's products summed over m, added back at the
    positions that tap read (one strided add per tap; the positions of one tap never overlap)."""
    xp = array_module(dy)
    kh, kw, c, m = kernel.shape
    n, h, w, _ = input_shape
    (pt, pb), (pl, pr) = padding
    _, oh, ow, _ = dy.shape
    dy5 = dy.reshape(n, oh, ow, c, m)
    dx_padded = xp.zeros((n, h + pt + pb, w + pl + pr, c), dtype=xp.result_type(dy, kernel))
    for r in range(kh):
        for q in range(kw):
            rows, cols = _tap_slices(r, q, strides, dilation, (oh, ow))
            dx_padded[:, rows, cols, :] += (dy5 * kernel[r, q]).sum(axis=-1)
    return dx_padded[:, pt:pt + h, pl:pl + w, :]


def depthwise_conv2d_backward_kernel(x, dy, kernel_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                                     dilation=(1, 1)):
    """dL/dkernel (KH, KW, C, M): per tap, the products of its input slice with dy summed over n, oh, ow."""
    xp = array_module(x)
    kh, kw, c, m = kernel_shape
    n, oh, ow, _ = dy.shape
    padded = _pad(xp, x, padding)
    dy_rows = dy.reshape(n * oh * ow, c, m)
    dk = xp.empty((kh, kw, c, m), dtype=xp.result_type(x, dy))
    for r in range(kh):
        for q in range(kw):
            rows, cols = _tap_slices(r, q, strides, dilation, (oh, ow))
            patch = padded[:, rows, cols, :].reshape(n * oh * ow, c)
            dk[r, q] = sum_axes(patch[:, :, None] * dy_rows, 0)
    return dk
