"""2-D convolution on NHWC data: forward, gradient of the input, gradient of the kernel.

Shapes (Keras 3, channels_last): x (N, H, W, Cin), kernel (KH, KW, Cin, Cout),
y (N, OH, OW, Cout). ``strides`` and ``dilation`` are (int, int) pairs,
``padding`` explicit zero padding ((top, bottom), (left, right)); see
``conv_padding`` for how Keras's "valid" and "same" become those numbers.

The NumPy path is im2col + BLAS: the padded input seen through a strided
view as (N, OH, OW, KH, KW, Cin) windows, copied block by block into one
reused (rows, KH*KW*Cin) buffer of about ``_IM2COL_BYTES`` (whole samples,
or bands of output rows of one sample when a sample is larger), each block
multiplied by the kernel read as (KH*KW*Cin, Cout). A block that small stays
in the cores' caches between the copy and the product that reads it, and one
product with K = KH*KW*Cin keeps the BLAS efficient where one product per
kernel tap (K = Cin) would not.

Where the output has far fewer channels than the input (Cin >= 4 Cout,
stride 1) the copy would cost more than the product, and the forward takes
the same product without it, split along K by kernel tap: in the padded
input flattened to (N*Hp*Wp, Cin) rows, the im2col columns of tap (r, q)
for output row p are input row p + r*dh*Wp + q*dw, so each tap's part is a
contiguous slice times that tap's (Cin, Cout) matrix. Outputs are computed
for every padded position, in blocks of rows that stay in cache across the
taps, and cropped.

The input's gradient is, with stride 1, the forward convolution of dy with
the kernel turned 180 degrees; with larger strides it scatters the columns'
gradient back with one strided add per kernel tap. No loop over pixels.
CuPy arrays go to the implicit-GEMM kernels of ``kernels/conv2d.cu``.

Grouped convolutions (``groups`` > 1, kernel (KH, KW, Cin/groups, Cout)):
the NumPy path is the same im2col with the channel axis split by group and
one stacked product per block (one BLAS call per group); CuPy arrays run
the conv2d.cu launchers once per group (``conv_kernels.py``).

float16 arrays (a layer under "mixed_float16") are convolved in float32 and
the results rounded to float16, on both backends: the GPU kernels have no
float16 version, and NumPy has no float16 BLAS (its float16 products run
element by element, tens of times slower).
"""
from __future__ import annotations

import numpy
from numpy.lib.stride_tricks import as_strided

from ..backend.launch import float16_through_float32
from .device_reduction import column_sum, is_cupy, row_split

_IM2COL_BYTES = 4 << 20   # per block of im2col rows; 1 to 16 MiB timed within about 10% of each other on 2 cores
_TAP_SPLIT_CHANNEL_RATIO = 4   # tap split where Cin >= this * Cout (and Cin >= 8): im2col would copy far more than
_TAP_SPLIT_MIN_CHANNELS = 8    # the product writes (the input gradient of a first layer, 32 -> 3 channels)
_TAP_SPLIT_BLOCK_BYTES = 2 << 20   # rows per block of the tap-split product: input + output rows in cache


def conv_output_length(size: int, window: int, stride: int, dilation: int, pad_before: int, pad_after: int) -> int:
    """Output positions along one axis: floor((size + pads - dilated window) / stride) + 1 (may be <= 0)."""
    span = dilation * (window - 1) + 1
    return (size + pad_before + pad_after - span) // stride + 1


def same_padding(size: int, window: int, stride: int, dilation: int = 1) -> tuple:
    """Keras/TensorFlow "same": ceil(size / stride) outputs; the odd pad goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (window - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_padding(padding: str, spatial: tuple, window: tuple, strides: tuple, dilation: tuple) -> tuple:
    """((top, bottom), (left, right)) for a padding word over spatial sizes (H, W); one pair per axis for
    any number of axes ((D, H, W) gives three).

    An unknown size (None) has unknown "same" pads: None in place of its pair.
    """
    if padding == "valid":
        return ((0, 0),) * len(spatial)
    return tuple(None if n is None else same_padding(n, k, s, d)
                 for n, k, s, d in zip(spatial, window, strides, dilation))


def output_spatial(spatial, window, strides, dilation, padding) -> tuple:
    """(OH, OW) for input sizes (H, W) (entries may be None: unknown stays unknown)."""
    return tuple(None if n is None else conv_output_length(n, k, s, d, *p)
                 for n, k, s, d, p in zip(spatial, window, strides, dilation, padding))


def _padded(x, padding, value=0):
    (pt, pb), (pl, pr) = padding
    if not (pt or pb or pl or pr):
        return x
    return numpy.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def _windows(x_padded, window, strides, dilation, out_hw):
    """Read-only view (N, OH, OW, KH, KW, C) of the padded input's windows."""
    n, _, _, c = x_padded.shape
    s_n, s_h, s_w, s_c = x_padded.strides
    return as_strided(x_padded, shape=(n, out_hw[0], out_hw[1], window[0], window[1], c),
                      strides=(s_n, s_h * strides[0], s_w * strides[1], s_h * dilation[0], s_w * dilation[1], s_c),
                      writeable=False)


def _batch_chunks(n, rows_per_sample, columns, itemsize):
    per_sample = max(1, rows_per_sample * columns * itemsize)
    step = max(1, _IM2COL_BYTES // per_sample)
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def _out_hw(x_shape, kernel_shape, strides, dilation, padding):
    oh, ow = output_spatial(x_shape[1:3], kernel_shape[:2], strides, dilation, padding)
    if oh < 1 or ow < 1:
        raise ValueError(f"conv2d: input {tuple(x_shape)} with kernel {tuple(kernel_shape[:2])}, strides {strides}, "
                         f"dilation {dilation} and padding {padding} leaves no output position.")
    return oh, ow


def _tap_split_applies(strides, cin, cout):
    return strides == (1, 1) and cin >= max(_TAP_SPLIT_MIN_CHANNELS, _TAP_SPLIT_CHANNEL_RATIO * cout)


def _tap_rows(x_padded, window, dilation):
    """The padded input as (N*Hp*Wp, C) rows, each tap's row offset, and how many output rows to compute.

    Output row p (a padded position) reads input rows p + offset; every output inside (OH, OW) has
    p + the largest offset < N*Hp*Wp, so rows [0, count) cover them all.
    """
    n, hp, wp, c = x_padded.shape
    offsets = [(r, q, r * dilation[0] * wp + q * dilation[1]) for r in range(window[0]) for q in range(window[1])]
    return x_padded.reshape(-1, c), offsets, n * hp * wp - offsets[-1][2]


def _row_blocks(count, width, itemsize):
    step = max(256, _TAP_SPLIT_BLOCK_BYTES // (itemsize * width))
    return [(i, min(i + step, count)) for i in range(0, count, step)]


def _tap_split_forward(x_padded, kernel, dilation, out_hw):
    """The im2col product of a stride-1 convolution, one contiguous-slice product per tap (module docstring)."""
    kh, kw, cin, cout = kernel.shape
    rows, offsets, count = _tap_rows(x_padded, (kh, kw), dilation)
    dtype = numpy.result_type(x_padded, kernel)
    full = numpy.empty((rows.shape[0], cout), dtype=dtype)   # rows past `count` are never read
    blocks = _row_blocks(count, cin + cout, rows.itemsize)
    partial = numpy.empty((blocks[0][1] - blocks[0][0], cout), dtype=dtype)
    for start, stop in blocks:
        acc, part = full[start:stop], partial[:stop - start]
        for i, (r, q, offset) in enumerate(offsets):
            if i == 0:
                numpy.matmul(rows[start + offset:stop + offset], kernel[r, q], out=acc)
            else:
                numpy.matmul(rows[start + offset:stop + offset], kernel[r, q], out=part)
                acc += part
    n, hp, wp, _ = x_padded.shape
    return numpy.ascontiguousarray(full.reshape(n, hp, wp, cout)[:, :out_hw[0], :out_hw[1]])


def _block_plan(n, oh, ow, row_bytes):
    """``(blocks, rows)``: the indices of blocks of output positions whose im2col rows (``row_bytes`` each)
    fit in ``_IM2COL_BYTES`` (whole samples, or bands of one sample's output rows where a sample does not
    fit), and the most rows a block holds."""
    if oh * ow * row_bytes <= _IM2COL_BYTES:
        step = _IM2COL_BYTES // (oh * ow * row_bytes)
        return [(slice(a, min(a + step, n)),) for a in range(0, n, step)], min(step, n) * oh * ow
    band = max(1, _IM2COL_BYTES // (ow * row_bytes))
    return [(i, slice(r, min(r + band, oh))) for i in range(n) for r in range(0, oh, band)], min(band, oh) * ow


def _column_blocks(windows):
    """Yield ``(index, columns)``: the im2col rows of each block of output positions, in one reused buffer.

    ``index`` selects the block in any (N, OH, OW, ...) array: ``(slice of samples,)`` or, when one
    sample's columns exceed ``_IM2COL_BYTES``, ``(sample, slice of output rows)``. ``columns`` is
    (positions in the block, KH*KW*C), valid until the next block (a transposed view for C = 1).
    """
    n, oh, ow, kh, kw, c = windows.shape
    row_bytes = kh * kw * c * windows.itemsize
    blocks, rows = _block_plan(n, oh, ow, row_bytes)
    if c == 1:
        # One channel: a window's values lie in runs of KW, too short for a fast copy. Tap by tap the
        # same values are slices of the input in runs of OW, copied to a (K, rows) buffer that the
        # product reads transposed.
        buffer = numpy.empty((kh * kw, rows), dtype=windows.dtype)
        for index in blocks:
            block = windows[index]
            count = block.size // (kh * kw)
            for r in range(kh):
                for q in range(kw):
                    numpy.copyto(buffer[r * kw + q, :count].reshape(block.shape[:-3]), block[..., r, q, 0])
            yield index, buffer[:, :count].T
        return
    buffer = numpy.empty((rows, kh * kw * c), dtype=windows.dtype)
    for index in blocks:
        block = windows[index]
        columns = buffer[:block.size // buffer.shape[1]]
        numpy.copyto(columns.reshape(block.shape), block)   # the im2col copy
        yield index, columns


@float16_through_float32
def conv2d_forward(x, kernel, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """y = conv(x, kernel), no bias. See the module docstring for shapes; with ``groups`` > 1 the kernel is
    (KH, KW, Cin/groups, Cout) and output channel block g reads input channel block g only."""
    if is_cupy(x):
        from .conv_kernels import conv2d_forward_cuda, grouped_conv2d_forward_cuda
        if groups > 1:
            return grouped_conv2d_forward_cuda(x, kernel, None, groups, strides=strides, padding=padding,
                                               dilation=dilation)[0]
        return conv2d_forward_cuda(x, kernel, None, strides=strides, padding=padding, dilation=dilation)[0]
    if groups > 1:
        return _grouped_forward(x, kernel, groups, strides, padding, dilation)
    kh, kw, cin, cout = kernel.shape
    oh, ow = _out_hw(x.shape, kernel.shape, strides, dilation, padding)
    if _tap_split_applies(strides, cin, cout):
        return _tap_split_forward(_padded(x, padding), kernel, dilation, (oh, ow))
    windows = _windows(_padded(x, padding), (kh, kw), strides, dilation, (oh, ow))
    matrix = kernel.reshape(kh * kw * cin, cout)
    y = numpy.empty((x.shape[0], oh, ow, cout), dtype=numpy.result_type(x, kernel))
    for index, columns in _column_blocks(windows):
        numpy.matmul(columns, matrix, out=y[index].reshape(-1, cout))
    return y


def conv2d_bias_activation(x, kernel, bias, activation, *, strides=(1, 1), padding=((0, 0), (0, 0)),
                           dilation=(1, 1), groups=1, want_z=True):
    """``(z, y)`` with z = conv(x, kernel) + bias and y = activation(z); one kernel on the GPU.

    ``activation`` is a ``gpu_dl.activations.ActivationFunction``; ``bias`` may be None. With
    ``want_z=False`` the GPU kernel writes y alone and ``z`` may be None (never for the linear
    activation, whose z is y); the NumPy path computes z anyway and returns it.
    """
    from . import activation_kernels
    if is_cupy(x) and activation_kernels.has_kernel(activation.name, x):
        from .conv_kernels import conv2d_forward_cuda, grouped_conv2d_forward_cuda
        kernel = kernel.astype(x.dtype, copy=False)   # the kernels take one dtype; layers cast inputs already
        if bias is not None:
            bias = bias.astype(x.dtype, copy=False)
        if groups > 1:
            return grouped_conv2d_forward_cuda(x, kernel, bias, groups, strides=strides, padding=padding,
                                               dilation=dilation, activation=activation.name,
                                               activation_params=activation.params, want_z=want_z)
        return conv2d_forward_cuda(x, kernel, bias, strides=strides, padding=padding, dilation=dilation,
                                   activation=activation.name, activation_params=activation.params, want_z=want_z)
    z = conv2d_forward(x, kernel, strides=strides, padding=padding, dilation=dilation, groups=groups)
    return activation.with_bias(z, bias)


@float16_through_float32
def conv2d_backward_input(dy, kernel, input_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                          groups=1):
    """dL/dx (N, H, W, Cin) from dy (N, OH, OW, Cout)."""
    if is_cupy(dy):
        from .conv_kernels import conv2d_backward_input_cuda, grouped_conv2d_backward_input_cuda
        if groups > 1:
            return grouped_conv2d_backward_input_cuda(dy, kernel, tuple(input_shape), groups, strides=strides,
                                                      padding=padding, dilation=dilation)
        return conv2d_backward_input_cuda(dy, kernel, tuple(input_shape), strides=strides, padding=padding,
                                          dilation=dilation)
    if groups > 1:
        return _grouped_backward_input(dy, kernel, input_shape, groups, strides, padding, dilation)
    kh, kw, cin, cout = kernel.shape
    n, h, w, _ = input_shape
    (pt, pb), (pl, pr) = padding
    _, oh, ow, _ = dy.shape
    span_h, span_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    if strides == (1, 1) and max(pt, pb) <= span_h and max(pl, pr) <= span_w:
        # Stride 1: dx is dy convolved with the kernel turned 180 degrees, its channel axes swapped,
        # over dy padded by what the forward's window reached past each side: one im2col product.
        flipped = numpy.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
        return conv2d_forward(dy, flipped, padding=((span_h - pt, span_h - pb), (span_w - pl, span_w - pr)),
                              dilation=dilation)
    dtype = numpy.result_type(dy, kernel)
    dx_padded = numpy.zeros((n, h + pt + pb, w + pl + pr, cin), dtype=dtype)
    matrix_t = kernel.reshape(kh * kw * cin, cout).T
    for a, b in _batch_chunks(n, oh * ow, kh * kw * cin, dy.itemsize):
        d_columns = (dy[a:b].reshape(-1, cout) @ matrix_t).reshape(b - a, oh, ow, kh, kw, cin)
        for r in range(kh):             # one strided add per tap: the windows of one tap never overlap
            rows = slice(r * dilation[0], r * dilation[0] + strides[0] * (oh - 1) + 1, strides[0])
            for q in range(kw):
                cols = slice(q * dilation[1], q * dilation[1] + strides[1] * (ow - 1) + 1, strides[1])
                dx_padded[a:b, rows, cols, :] += d_columns[:, :, :, r, q, :]
    return dx_padded[:, pt:pt + h, pl:pl + w, :]


@float16_through_float32
def conv2d_backward_kernel(x, dy, kernel_shape, *, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                           groups=1):
    """dL/dkernel (KH, KW, Cin/groups, Cout): the im2col matrix's transpose times dy."""
    if is_cupy(x):
        from .conv_kernels import conv2d_backward_kernel_cuda, grouped_conv2d_backward_kernel_cuda
        if groups > 1:
            return grouped_conv2d_backward_kernel_cuda(x, dy, tuple(kernel_shape), groups, strides=strides,
                                                       padding=padding, dilation=dilation)
        return conv2d_backward_kernel_cuda(x, dy, tuple(kernel_shape), strides=strides, padding=padding,
                                           dilation=dilation)
    if groups > 1:
        return _grouped_backward_kernel(x, dy, kernel_shape, groups, strides, padding, dilation)
    kh, kw, cin, cout = kernel_shape
    _, oh, ow, _ = dy.shape
    windows = _windows(_padded(x, padding), (kh, kw), strides, dilation, (oh, ow))
    dkernel = numpy.zeros((kh * kw * cin, cout), dtype=numpy.result_type(x, dy))
    for index, columns in _column_blocks(windows):
        dkernel += columns.T @ dy[index].reshape(-1, cout)
    return dkernel.reshape(kernel_shape)


# ------------------------------------------------------------------------------- grouped (groups > 1)
# The grouped im2col: the windows view with its channel axis split into (groups, Cin/groups) and the group
# moved before the taps, copied block by block into a (rows, groups, KH*KW*Cin/groups) buffer; each block
# is one stacked product (groups, rows, K) @ (groups, K, Cout/groups), which NumPy's matmul runs as one
# BLAS call per group, reading and writing the strided group slices in place.
def _grouped_windows(x, kernel_hw, groups, strides, padding, dilation, out_hw):
    """(N, OH, OW, groups, KH, KW, Cin/groups) view of the padded input's windows."""
    windows = _windows(_padded(x, padding), kernel_hw, strides, dilation, out_hw)
    n, oh, ow, kh, kw, c = windows.shape
    return windows.reshape(n, oh, ow, kh, kw, groups, c // groups).transpose(0, 1, 2, 5, 3, 4, 6)


def _grouped_column_blocks(windows):
    """Yield ``(index, columns)`` as ``_column_blocks`` does, columns (rows, groups, KH*KW*Cin/groups)."""
    n, oh, ow, g, kh, kw, c = windows.shape
    row_bytes = g * kh * kw * c * windows.itemsize
    blocks, rows = _block_plan(n, oh, ow, row_bytes)
    buffer = numpy.empty((rows, g, kh * kw * c), dtype=windows.dtype)
    for index in blocks:
        block = windows[index]
        columns = buffer[:block.size // (g * kh * kw * c)]
        numpy.copyto(columns.reshape(block.shape), block)
        yield index, columns


def _grouped_matrix(kernel, groups):
    """The kernel (KH, KW, Cin/g, Cout) as the stacked (g, KH*KW*Cin/g, Cout/g) matrices (a view)."""
    kh, kw, cig, cout = kernel.shape
    return kernel.reshape(kh * kw * cig, groups, cout // groups).transpose(1, 0, 2)


def _grouped_forward(x, kernel, groups, strides, padding, dilation):
    kh, kw, _, cout = kernel.shape
    oh, ow = _out_hw(x.shape, kernel.shape, strides, dilation, padding)
    windows = _grouped_windows(x, (kh, kw), groups, strides, padding, dilation, (oh, ow))
    matrices = _grouped_matrix(kernel, groups)
    y = numpy.empty((x.shape[0], oh, ow, cout), dtype=numpy.result_type(x, kernel))
    for index, columns in _grouped_column_blocks(windows):
        out = y[index].reshape(-1, groups, cout // groups).transpose(1, 0, 2)
        numpy.matmul(columns.transpose(1, 0, 2), matrices, out=out)
    return y


def _grouped_backward_kernel(x, dy, kernel_shape, groups, strides, padding, dilation):
    kh, kw, cig, cout = kernel_shape
    _, oh, ow, _ = dy.shape
    windows = _grouped_windows(x, (kh, kw), groups, strides, padding, dilation, (oh, ow))
    dkernel = numpy.zeros((groups, kh * kw * cig, cout // groups), dtype=numpy.result_type(x, dy))
    for index, columns in _grouped_column_blocks(windows):
        dkernel += columns.transpose(1, 2, 0) @ dy[index].reshape(-1, groups, cout // groups).transpose(1, 0, 2)
    return numpy.ascontiguousarray(dkernel.transpose(1, 0, 2)).reshape(kernel_shape)


def _grouped_backward_input(dy, kernel, input_shape, groups, strides, padding, dilation):
    kh, kw, cig, cout = kernel.shape
    n, h, w, cin = input_shape
    (pt, pb), (pl, pr) = padding
    _, oh, ow, _ = dy.shape
    span_h, span_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    cog = cout // groups
    if strides == (1, 1) and max(pt, pb) <= span_h and max(pl, pr) <= span_w:
        # As ungrouped: the grouped forward of dy with each group's kernel turned 180 degrees and its
        # channel axes swapped, (KH, KW, Cout/g, Cin) with input block g of dy giving output block g.
        flipped = numpy.ascontiguousarray(kernel[::-1, ::-1].reshape(kh, kw, cig, groups, cog)
                                          .transpose(0, 1, 4, 3, 2)).reshape(kh, kw, cog, cin)
        return _grouped_forward(dy, flipped, groups, (1, 1), ((span_h - pt, span_h - pb), (span_w - pl, span_w - pr)),
                                dilation)
    dtype = numpy.result_type(dy, kernel)
    dx_padded = numpy.zeros((n, h + pt + pb, w + pl + pr, groups, cig), dtype=dtype)
    matrices_t = _grouped_matrix(kernel, groups).transpose(0, 2, 1)        # (g, Cout/g, K)
    for a, b in _batch_chunks(n, oh * ow, kh * kw * cin, dy.itemsize):
        d_columns = (dy[a:b].reshape(-1, groups, cog).transpose(1, 0, 2) @ matrices_t)   # (g, rows, K)
        d_columns = d_columns.transpose(1, 0, 2).reshape(b - a, oh, ow, groups, kh, kw, cig)
        for r in range(kh):             # one strided add per tap, as ungrouped
            rows = slice(r * dilation[0], r * dilation[0] + strides[0] * (oh - 1) + 1, strides[0])
            for q in range(kw):
                cols = slice(q * dilation[1], q * dilation[1] + strides[1] * (ow - 1) + 1, strides[1])
                dx_padded[a:b, rows, cols] += d_columns[:, :, :, :, r, q, :]
    return dx_padded[:, pt:pt + h, pl:pl + w].reshape(n, h, w, cin)


bias_row_split = row_split   # how many parts bias_gradient sums a CuPy dy's rows in


def bias_gradient(dy):
    """dL/dbias: dy summed over every axis but the channels."""
    rows = dy.reshape(-1, dy.shape[-1])
    if is_cupy(dy):
        return column_sum(rows)    # in two stages of about sqrt(M) rows each (device_reduction)
    # a BLAS matrix-vector product: on all cores, blocked (closer to the float64 sum than NumPy's
    # row-by-row accumulation), and several times faster than sum(axis=0)
    return numpy.ones(rows.shape[0], dtype=rows.dtype) @ rows
