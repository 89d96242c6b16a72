"""Convolutional LSTM (Keras 3's ConvLSTM cell) over a sequence: forward and backpropagation through time.

Shapes, time-major so that each step's slice is contiguous, channels_last:
x (T, N, H, W, Cin); kernel (KH, KW, Cin, 4F), recurrent_kernel (KH, KW, F, 4F),
bias (4F,), gates ordered i, f, c, o along the last axis as in Keras. Hidden
and cell sequences are (T+1, N, OH, OW, F) with index 0 holding the initial
state. Volumes work the same way with one more spatial axis: x (T, N, D, H, W,
Cin), kernels (KD, KH, KW, ., 4F), states (T+1, N, OD, OH, OW, F); the kernel's
rank picks the 2-D convolution ops or ``ops/conv3d.py`` (which runs the 2-D ones
once per depth tap). Below, (H, W) stands for all spatial axes.

Numerics (Keras's ``ConvLSTMCell.call``): the input convolution uses the
layer's strides, padding and dilation; the recurrent one is always stride 1,
"same" padding, no dilation, so the states keep the output's (OH, OW). Then
i = ra(zi), f = ra(zf), g = a(zc), o = ra(zo); c = f c_prev + i g;
h = o a(c), with ``a`` the activation and ``ra`` the recurrent activation.

Forward: the input convolution of every step is one 2-D convolution with
time folded into the batch, (T*N, H, W, Cin) -> (T*N, OH, OW, 4F); then per
step one recurrent convolution of h_{t-1} and the gate update. The gate
update is the LSTM's, row by row over the (N*OH*OW, 4F) pre-activations: on
the GPU, with the activations ``kernels/lstm_cell.cu`` knows, it runs that
file's fused cell kernels (forward and backward), as the LSTM layer does;
otherwise array operations. Backward: per step the gates' gradient dz_t and one backward-input
convolution of dz_t through the recurrent kernel; then the weight gradients
as one convolution each over all steps (backward-kernel of the inputs and of
h_0..h_{T-1} against dz, time folded into the batch), the bias gradient as
dz's sum, and the input gradient as one backward-input convolution. The conv
ops send CuPy arrays to ``kernels/conv2d.cu``.

Dropout as Keras's ConvLSTM cell applies it: ``input_masks`` (N, H, W, 4, Cin)
holds one input mask per gate and ``recurrent_masks`` (N, OH, OW, 4, F) one
mask of h_{t-1} per gate, the same at every step. The four masked copies sit
side by side along the channels, (.., 4*Cin), and the kernel (KH, KW, Cin,
4F) is then exactly a grouped convolution's kernel with groups=4 (output
block g reads input block g), so each convolution stays one call.

``step_mask`` (T, N) booleans, when given, marks the steps each sample has:
where it is False the step leaves the states as they were and nothing flows
back through the cell there (as ``ops/rnn.py``).
"""
from __future__ import annotations

from ..backend import array_module
from math import prod

from .convolution import bias_gradient, conv2d_backward_input, conv2d_backward_kernel, conv2d_forward, same_padding
from .conv3d import conv3d_backward_input, conv3d_backward_kernel, conv3d_forward
from .rnn import _fused

GATES = 4

# (forward, backward_input, backward_kernel) by the number of spatial axes; the same signatures
CONVOLUTIONS = {2: (conv2d_forward, conv2d_backward_input, conv2d_backward_kernel),
                3: (conv3d_forward, conv3d_backward_input, conv3d_backward_kernel)}


def recurrent_padding(state_hw, window):
    """The recurrent convolution's padding: Keras's "same" at stride 1, ((top, bottom), (left, right)) (one
    pair per spatial axis)."""
    return tuple(same_padding(n, k, 1, 1) for n, k in zip(state_hw, window))


def _stacked(a, masks, rank):
    """(..., H, W, C) -> (-1, H, W, C) batch-folded (``rank`` spatial axes); with ``masks`` (N, H, W, 4, C),
    the four masked copies side by side along the channels, (-1, H, W, 4C) (``a``'s axes before H, W, C end
    in N)."""
    if masks is None:
        return a.reshape((-1,) + a.shape[-rank - 1:])
    stacked = a[..., None, :] * masks
    return stacked.reshape((-1,) + a.shape[-rank - 1:-1] + (GATES * a.shape[-1],))


def _unstacked(d, masks, channels):
    """Backward of ``_stacked``: (rows, H, W, 4C) -> (rows, H, W, C), the masked copies' gradients summed."""
    if masks is None:
        return d
    rows, spatial = d.shape[0], d.shape[1:-1]
    n = masks.shape[0]
    d = d.reshape((rows // n, n) + spatial + (GATES, channels)) * masks
    return d.sum(axis=-2).reshape((rows,) + spatial + (channels,))


def _groups(masks):
    return 1 if masks is None else GATES


def _per_sample(step_mask, step, state_ndim):
    """Step ``step``'s mask (N,) shaped to broadcast over states of ``state_ndim`` axes (N, H, W, F)."""
    return step_mask[step].reshape((-1,) + (1,) * (state_ndim - 1))


def _hold(states, step, step_mask):
    """A masked step keeps the states of the step before: ``states[step + 1]`` where the mask is False."""
    if step_mask is not None:
        keep = _per_sample(step_mask, step, states.ndim - 1)
        xp = array_module(states)
        states[step + 1] = xp.where(keep, states[step + 1], states[step])


def conv_lstm_forward(x, kernel, recurrent_kernel, bias, h0, c0, activation, recurrent_activation, *,
                      strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), input_masks=None,
                      recurrent_masks=None, step_mask=None, training=False):
    """(h (T+1, N, OH, OW, F), c (T+1, N, OH, OW, F), saved for ``conv_lstm_backward`` or None).

    ``padding`` is the input convolution's explicit ((top, bottom), (left, right)); h0 and c0 are
    (N, OH, OW, F). See the module docstring for the masks.
    """
    xp = array_module(x)
    t, n = x.shape[:2]
    rank = kernel.ndim - 2
    conv_forward = CONVOLUTIONS[rank][0]
    width = kernel.shape[-1]
    f = width // GATES
    xw = conv_forward(_stacked(x, input_masks, rank), kernel, strides=strides, padding=padding, dilation=dilation,
                      groups=_groups(input_masks))
    if bias is not None:
        xw += bias
    out_hw = xw.shape[1:-1]
    xw = xw.reshape((t, n) + out_hw + (width,))
    rec_padding = recurrent_padding(out_hw, kernel.shape[:-2])
    h = xp.empty((t + 1, n) + out_hw + (f,), dtype=x.dtype)
    c = xp.empty_like(h)
    h[0], c[0] = h0, c0
    fused = _fused(activation, recurrent_activation, x)
    if fused:
        from .rnn_kernels import lstm_cell_forward_cuda
        rows = n * prod(out_hw)
    # the gates' pre-activations, which the activations' gradients read (the fused backward needs none)
    pre = None if fused else xp.empty_like(xw)
    gates = xp.empty_like(xw)   # i, f, g, o after their activations
    for step in range(t):
        hr = conv_forward(_stacked(h[step], recurrent_masks, rank), recurrent_kernel, padding=rec_padding,
                          groups=_groups(recurrent_masks))
        if fused:
            # every output position is one row of an LSTM cell: the same kernel, N*OH*OW rows
            lstm_cell_forward_cuda(xw[step].reshape(rows, width), xp.ascontiguousarray(hr).reshape(rows, width),
                                   c[step].reshape(rows, f), h[step + 1].reshape(rows, f),
                                   c[step + 1].reshape(rows, f), gates[step].reshape(rows, width))
        else:
            z = pre[step]
            xp.add(xw[step], hr, out=z)
            i, fg, g, o = (gates[step, ..., k * f:(k + 1) * f] for k in range(GATES))
            i[...] = recurrent_activation(z[..., :f])
            fg[...] = recurrent_activation(z[..., f:2 * f])
            g[...] = activation(z[..., 2 * f:3 * f])
            o[...] = recurrent_activation(z[..., 3 * f:])
            c[step + 1] = fg * c[step] + i * g
            h[step + 1] = o * activation(c[step + 1])
        _hold(h, step, step_mask)
        _hold(c, step, step_mask)
    saved = (x, kernel, recurrent_kernel, bias is not None, h, c, gates, pre, activation, recurrent_activation,
             (strides, padding, dilation, rec_padding), input_masks, recurrent_masks, step_mask)
    return h, c, (saved if training else None)


def conv_lstm_backward(saved, dh_seq, dh_last=None, dc_last=None, *, want_input=True):
    """Gradients (dx (T, N, H, W, Cin) or None, dkernel, drecurrent, dbias or None, dh0, dc0).

    ``dh_seq`` (T, N, OH, OW, F) is the gradient of h_1..h_T (or None when only the last state is used),
    ``dh_last`` / ``dc_last`` (N, OH, OW, F) extra gradients of h_T and c_T (or None).
    """
    (x, kernel, recurrent_kernel, has_bias, h, c, gates, pre, activation, recurrent_activation, geometry,
     input_masks, recurrent_masks, step_mask) = saved
    strides, padding, dilation, rec_padding = geometry
    xp = array_module(x)
    t, n = x.shape[:2]
    rank = kernel.ndim - 2
    _, conv_backward_input, conv_backward_kernel = CONVOLUTIONS[rank]
    f = recurrent_kernel.shape[-2]
    state_shape = h.shape[1:]
    dz = xp.empty(gates.shape, dtype=x.dtype)
    dh_next = xp.zeros(state_shape, dtype=x.dtype) if dh_last is None else dh_last.astype(x.dtype, copy=True)
    dc_next = None if dc_last is None else xp.array(dc_last, dtype=x.dtype)
    stacked_state = (n,) + state_shape[1:-1] + (f * _groups(recurrent_masks),)
    fused = pre is None
    if fused:
        from .rnn_kernels import lstm_cell_backward_cuda
        rows = n * prod(state_shape[1:-1])
        # the kernel reads dc of step t+1 from one buffer and writes that of step t into the other
        dc_buffers = (xp.empty(state_shape, dtype=x.dtype), xp.empty(state_shape, dtype=x.dtype))
    # Without a step mask the fused kernel adds the output sequence's gradient itself (dh_output): no
    # elementwise launch per step for dh_next + dh_seq[step].
    kernel_adds_output = fused and step_mask is None and dh_seq is not None
    for step in range(t - 1, -1, -1):
        dh_output = xp.ascontiguousarray(dh_seq[step]).reshape(rows, f) if kernel_adds_output else None
        dh = dh_next if dh_seq is None or kernel_adds_output else dh_next + dh_seq[step]
        dc_in = dc_next
        if fused:
            dc_prev = dc_buffers[step % 2]
            lstm_cell_backward_cuda(xp.ascontiguousarray(dh).reshape(rows, f),
                                    None if dc_next is None else xp.ascontiguousarray(dc_next).reshape(rows, f),
                                    gates[step].reshape(rows, GATES * f), c[step + 1].reshape(rows, f),
                                    c[step].reshape(rows, f), dz[step].reshape(rows, GATES * f),
                                    dc_prev.reshape(rows, f), dh_output=dh_output)
            dc_next = dc_prev
        else:
            i, fg, g, o = (gates[step, ..., k * f:(k + 1) * f] for k in range(GATES))
            z = pre[step]
            tc = activation(c[step + 1])
            dc = activation.grad(c[step + 1], tc, dh * o)
            if dc_next is not None:
                dc = dc + dc_next
            dz[step, ..., :f] = recurrent_activation.grad(z[..., :f], i, dc * g)
            dz[step, ..., f:2 * f] = recurrent_activation.grad(z[..., f:2 * f], fg, dc * c[step])
            dz[step, ..., 2 * f:3 * f] = activation.grad(z[..., 2 * f:3 * f], g, dc * i)
            dz[step, ..., 3 * f:] = recurrent_activation.grad(z[..., 3 * f:], o, dh * tc)
            dc_next = dc * fg
        if step_mask is not None:
            # a masked step ran no cell: its gates get no gradient, and the states' gradients pass through
            keep = _per_sample(step_mask, step, len(state_shape))
            dz[step] *= keep
            dc_next = xp.where(keep, dc_next, xp.zeros_like(dc_next) if dc_in is None else dc_in)
        d_stacked = conv_backward_input(dz[step], recurrent_kernel, stacked_state, padding=rec_padding,
                                        groups=_groups(recurrent_masks))
        dh_next = _unstacked(d_stacked, recurrent_masks, f)
        if step_mask is not None:
            dh_next = xp.where(keep, dh_next, dh)
    if dc_next is None:
        dc_next = xp.zeros(state_shape, dtype=x.dtype)
    rows = dz.reshape((t * n,) + dz.shape[2:])
    stacked_x = _stacked(x, input_masks, rank)
    dkernel = conv_backward_kernel(stacked_x, rows, kernel.shape, strides=strides, padding=padding,
                                   dilation=dilation, groups=_groups(input_masks))
    drecurrent = conv_backward_kernel(_stacked(h[:-1], recurrent_masks, rank), rows, recurrent_kernel.shape,
                                      padding=rec_padding, groups=_groups(recurrent_masks))
    dbias = bias_gradient(rows) if has_bias else None
    dx = None
    if want_input:
        d_stacked = conv_backward_input(rows, kernel, stacked_x.shape, strides=strides, padding=padding,
                                        dilation=dilation, groups=_groups(input_masks))
        dx = _unstacked(d_stacked, input_masks, x.shape[-1]).reshape(x.shape)
    return dx, dkernel, drecurrent, dbias, dh_next, dc_next
