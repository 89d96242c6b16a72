"""Recurrent sequence loops: LSTM, GRU (reset_after) and simple RNN, forward and backpropagation through time.

Shapes, time-major so that each step's slice is contiguous: x (T, N, D);
kernel (D, G*U), recurrent_kernel (U, G*U) with G = 4 (LSTM: gates i, f, c,
o), 3 (GRU: z, r, h) or 1; bias (G*U,), GRU's (2, 3U) (input and recurrent
biases). Hidden and cell sequences are (T+1, N, U) with index 0 holding the
initial state. An initial state given as None is zeros.

Forward: the input projection of every step is one matrix product,
xw = x @ kernel + bias, (T*N, D) x (D, G*U); then per step one product
h_{t-1} @ recurrent_kernel and the cell's elementwise update (one fused
kernel on the GPU for the tanh/sigmoid cells, ``ops/rnn_kernels.py``;
array arithmetic through the activation functions otherwise). On the GPU an
LSTM of at most 64 units without recurrent dropout runs its whole time loop
in one persistent kernel that keeps the recurrent kernel on chip.
Backward: per step the cell's gradient and one product dz_t @
recurrent_kernel^T (for those small LSTMs, again one persistent kernel for
the whole loop); then the weight gradients as single products over all
steps: dkernel = x^T dz, drecurrent = h_prev^T dz, dbias = sum dz, and the
input gradient dx = dz @ kernel^T.

On the GPU, the LSTM and GRU step loops without masks check their arrays
and bind their kernels once (``rnn_kernels.lstm_cell_forward_steps`` and
the other step launchers); a step is then exactly one product written into
a buffer allocated before the loop and one cell launch, the cells adding
what the array path adds around them (GRU's recurrent bias forward; the
output sequence's dh_seq[t], and GRU's direct part of the gradient,
backward): at large batches and hidden sizes a step's GPU work is
microseconds, and the host's work between launches is what the loop costs.
So by default those loops (the LSTM's above the persistent kernels' 64 units)
run as CUDA graphs, captured at the first call of a shape and replayed after,
with the same kernels and products in the same order: ``rnn_graphs.py``
(``gpu_dl.backend.set_rnn_graphs(False)`` turns that off).

``recurrent_mask`` (N, U), when given, multiplies h_{t-1} where it enters
the recurrent product (Keras's recurrent dropout), every step the same; a
(G, N, U) mask holds one per gate (Keras's gated cells with implementation
1): gate g's columns of the product take h_{t-1} times mask g. That product
is then one per gate on both backends (the persistent GPU loops run without
masks).

``step_mask`` (T, N) booleans, when given, marks the steps each sample has
(Keras's masking of padded sequences): where it is False the step leaves
the states as they were, so the output repeats the one before (zeros
before the first step), and nothing flows back through the cell there.
"""
from __future__ import annotations

from ..backend import array_module
from .convolution import is_cupy
from .device_reduction import sum_axes


def _fused(activation, recurrent_activation, x):
    if not is_cupy(x):
        return False
    from . import rnn_kernels
    return rnn_kernels.supports(activation.name if activation.params == {} else None,
                                recurrent_activation.name if recurrent_activation.params == {} else None, x)


def input_projection(x, kernel, bias, input_mask=None, out=None):
    """(T, N, D) -> (T, N, G*U): every step's x_t @ kernel + bias as one product, or with ``input_mask``
    (G, N, D), one per gate, gate g's columns from x times mask g (Keras's gated cells' input dropout with
    implementation 1). ``out`` (T, N, G*U), C-contiguous, of the product's dtype, without ``input_mask``:
    the product written there (the same product, so the same bits)."""
    t, n, d = x.shape
    if input_mask is not None:
        xw = _recurrent_product(x, input_mask, kernel)
        if bias is not None:
            xw += bias
        return xw
    rows, width = x.reshape(t * n, d), kernel.shape[1]
    xw = rows @ kernel if out is None else array_module(x).matmul(rows, kernel, out=out.reshape(t * n, width))
    if bias is not None:
        xw += bias
    return xw.reshape(t, n, width)


def _input_gradients(x, input_mask, dz, kernel, want_input):
    """(dkernel, dx or None) of ``input_projection`` from dz (T, N, G*U)."""
    t, n, d = x.shape
    if input_mask is not None:
        dx = _recurrent_input_gradient(dz, input_mask, kernel.T) if want_input else None
        return _recurrent_weight_gradient(x, input_mask, dz), dx
    rows = dz.reshape(t * n, dz.shape[2])
    dx = (rows @ kernel.T).reshape(x.shape) if want_input else None
    return x.reshape(t * n, d).T @ rows, dx


def _weight_gradients(h_prev, dz, mask):
    """One product each over all steps: drecurrent (h_prev under the recurrent ``mask``) and dbias (the sum of
    dz's rows)."""
    t, n, g = dz.shape
    return _recurrent_weight_gradient(h_prev, mask, dz), sum_axes(dz.reshape(t * n, g), 0)


def _masked(h, mask):
    return h if mask is None else h * mask


def _per_gate(mask):
    """Whether ``mask`` holds a recurrent mask per gate (G, N, U) rather than one for all (N, U) or none."""
    return mask is not None and mask.ndim == 3


def _gate(mask, gate):
    """The recurrent mask of one gate: its own where there is one per gate, else the one for all (or None)."""
    return mask[gate] if _per_gate(mask) else mask


def _first_gates(mask, count):
    """The recurrent masks of the first ``count`` gates (those of a product over their columns only)."""
    return mask[:count] if _per_gate(mask) else mask


def _recurrent_product(h, mask, recurrent_kernel, out=None):
    """h_{t-1} @ recurrent_kernel with the recurrent dropout ``mask``: (N, G*U), each gate's columns from h times
    its own mask where there is one per gate."""
    xp = array_module(h)
    if not _per_gate(mask):
        return xp.matmul(_masked(h, mask), recurrent_kernel, out=out)
    if out is None:
        out = xp.empty(h.shape[:-1] + (recurrent_kernel.shape[1],), dtype=h.dtype)
    width = recurrent_kernel.shape[1] // mask.shape[0]
    for gate in range(mask.shape[0]):
        columns = slice(gate * width, (gate + 1) * width)
        out[..., columns] = (h * mask[gate]) @ recurrent_kernel[:, columns]
    return out


def _recurrent_input_gradient(dz, mask, recurrent_t):
    """The gradient of h_{t-1} from that of ``_recurrent_product``'s output ``dz`` (N, G*U); ``recurrent_t`` is
    the recurrent kernel transposed (G*U, U)."""
    if not _per_gate(mask):
        return _masked(dz @ recurrent_t, mask)
    width = recurrent_t.shape[0] // mask.shape[0]
    total = None
    for gate in range(mask.shape[0]):
        rows = slice(gate * width, (gate + 1) * width)
        part = (dz[..., rows] @ recurrent_t[rows]) * mask[gate]
        total = part if total is None else total + part
    return total


def _recurrent_weight_gradient(h_prev, mask, dz):
    """The recurrent kernel's gradient over all steps: h_prev (T, N, U) masked as its product took it, times
    dz (T, N, G*U)."""
    t, n, u = h_prev.shape
    rows = dz.reshape(t * n, dz.shape[2])
    if not _per_gate(mask):
        return _masked(h_prev, mask).reshape(t * n, u).T @ rows
    xp = array_module(h_prev)
    width = rows.shape[1] // mask.shape[0]
    out = xp.empty((u, rows.shape[1]), dtype=dz.dtype)
    for gate in range(mask.shape[0]):
        columns = slice(gate * width, (gate + 1) * width)
        out[:, columns] = (h_prev * mask[gate]).reshape(t * n, u).T @ rows[:, columns]
    return out


def _hold(states, step, step_mask):
    """A masked step keeps the states of the step before: ``states[step + 1]`` where the mask is False."""
    if step_mask is not None:
        keep = step_mask[step][:, None]
        xp = array_module(states)
        states[step + 1] = xp.where(keep, states[step + 1], states[step])


def _masked_step_gradients(step_mask, step, through_cell, passing, *cell_gradients):
    """Backward of ``_hold``: where the mask is False the step's cell gradients are zero and the
    incoming gradient passes to the step before. Returns that gradient (from ``through_cell`` where the
    step ran, ``passing`` where it did not) and zeroes the masked rows of ``cell_gradients`` in place."""
    if step_mask is None:
        return through_cell
    keep = step_mask[step][:, None]
    xp = array_module(through_cell)
    for g in cell_gradients:
        g *= keep
    return xp.where(keep, through_cell, passing)


def _sequences(xp, t, n, u, h0, dtype, c0=None, *, cell=False, initial=True):
    """The state sequence h (T+1, N, U), and c as well with ``cell`` (one allocation holding both), index 0
    set to the initial state (zeros where it is None) unless ``initial`` is False (a kernel writes it)."""
    states = xp.empty((2 if cell else 1, t + 1, n, u), dtype=dtype)
    for sequence, start in zip(states, (h0, c0)) if initial else ():
        if start is None:
            sequence[0].fill(0)
        else:
            sequence[0] = start
    return (states[0], states[1]) if cell else states[0]


# ------------------------------------------------------------------------------------------------ LSTM
def lstm_forward(x, kernel, recurrent_kernel, bias, h0, c0, activation, recurrent_activation, *,
                 recurrent_mask=None, step_mask=None, training=False, input_mask=None):
    """(h (T+1, N, U), c (T+1, N, U), saved for ``lstm_backward`` or None). ``input_mask`` (4, N, D): one input
    dropout mask per gate (see ``input_projection``)."""
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    fused = _fused(activation, recurrent_activation, x)
    unmasked = fused and recurrent_mask is None and step_mask is None
    persistent = unmasked and _persistent_applies(n, u, x.dtype)
    if unmasked and not persistent:
        from . import rnn_graphs
        graphed = rnn_graphs.lstm_forward(x, kernel, recurrent_kernel, bias, h0, c0, input_mask, training)
        if graphed is not None:
            h, c, gates = graphed
            saved = (x, kernel, recurrent_kernel, h, c, gates, None, activation, recurrent_activation, None, None,
                     input_mask)
            return h, c, (saved if training else None)
    xw = input_projection(x, kernel, bias, input_mask)
    # the persistent kernel copies the initial states into index 0 itself
    h, c = _sequences(xp, t, n, u, h0, x.dtype, c0, cell=True, initial=not persistent)
    gates = xp.empty((t, n, 4 * u), dtype=x.dtype)
    pre = None if fused else xp.empty((t, n, 4 * u), dtype=x.dtype)
    saved = (x, kernel, recurrent_kernel, h, c, gates, pre, activation, recurrent_activation, recurrent_mask,
             step_mask, input_mask)
    if persistent:
        from .rnn_kernels import lstm_sequence_forward_persistent_cuda
        # small hidden sizes: the whole time loop in one launch, the recurrent kernel on chip. A zero initial
        # state is index 0 of its own sequence filled with zeros, and serves as the other state where that is
        # zero too: the kernel takes h0 = h[0] (c0 = c[0]), and each element's thread reads h0 and c0 before
        # it writes index 0 of h and c.
        zeros = None
        if h0 is None or c0 is None:
            zeros = (h if h0 is None else c)[0]
            zeros.fill(0)
        lstm_sequence_forward_persistent_cuda(xw, xp.ascontiguousarray(recurrent_kernel), _operand(xp, h0, zeros, x),
                                              _operand(xp, c0, zeros, x), h, c, gates)
        return h, c, (saved if training else None)
    if fused:
        from .rnn_kernels import lstm_cell_forward_cuda
        hr = xp.empty((n, 4 * u), dtype=x.dtype)
        if recurrent_mask is None and step_mask is None:
            _lstm_forward_fused_steps(xw, recurrent_kernel, h, c, gates, hr)
            return h, c, (saved if training else None)
    for step in range(t):
        if fused:
            _recurrent_product(h[step], recurrent_mask, recurrent_kernel, out=hr)
            lstm_cell_forward_cuda(xw[step], hr, c[step], h[step + 1], c[step + 1], gates[step])
        else:
            z = pre[step]
            xp.add(xw[step], _recurrent_product(h[step], recurrent_mask, recurrent_kernel), out=z)
            i, f, g, o = (gates[step, :, k * u:(k + 1) * u] for k in range(4))
            i[...] = recurrent_activation(z[:, :u])
            f[...] = recurrent_activation(z[:, u:2 * u])
            g[...] = activation(z[:, 2 * u:3 * u])
            o[...] = recurrent_activation(z[:, 3 * u:])
            c[step + 1] = f * c[step] + i * g
            h[step + 1] = o * activation(c[step + 1])
        _hold(h, step, step_mask)
        _hold(c, step, step_mask)
    return h, c, (saved if training else None)


def _operand(xp, state, zeros, x):
    """An initial state as a kernel argument: C-contiguous of x's dtype, or ``zeros`` where it is None."""
    return zeros if state is None else xp.ascontiguousarray(state, dtype=x.dtype)


def _lstm_forward_fused_steps(xw, recurrent_kernel, h, c, gates, hr):
    """The GPU's forward time loop without masks: per step one product h_t @ recurrent_kernel written into
    ``hr`` and one cell launch (its arrays checked once, before the loop). Fills h, c (from index 1), gates."""
    from .rnn_kernels import lstm_cell_forward_steps
    xp = array_module(xw)
    _forward_steps(xp, lstm_cell_forward_steps(xw, hr, h, c, gates), h, recurrent_kernel, hr)


def _forward_steps(xp, cell, h, recurrent_kernel, hr):
    """The fused forward loops' steps: h_t @ recurrent_kernel into ``hr``, then the bound cell launch ``cell(t)``."""
    # cupy.dot writes a C-contiguous ``out`` of the product's dtype in place (cuBLAS, no temporary), with
    # less host work per call than cupy.matmul's generalized-ufunc wrapper
    _forward_loop(xp.dot, cell, h, xp.ascontiguousarray(recurrent_kernel, dtype=hr.dtype), hr)


def _forward_loop(dot, cell, h, recurrent_kernel, hr):
    """``_forward_steps``' loop itself, its operands ready: only products and launches (what a CUDA graph captures,
    ``rnn_graphs``)."""
    for step in range(h.shape[0] - 1):
        dot(h[step], recurrent_kernel, out=hr)
        cell(step)


def _backward_steps(xp, cell, d_product, recurrent_kernel, out):
    """The fused backward loops' steps, last first: the bound cell launch ``cell(t)``, then the gradient
    ``d_product[t]`` of step t's recurrent product times recurrent_kernel^T into ``out``."""
    _backward_loop(xp.dot, cell, d_product, xp.ascontiguousarray(recurrent_kernel, dtype=out.dtype).T, out)


def _backward_loop(dot, cell, d_product, recurrent_t, out):
    """``_backward_steps``' loop itself, its operands ready (``recurrent_t`` the recurrent kernel transposed)."""
    for step in range(d_product.shape[0] - 1, -1, -1):
        cell(step)
        dot(d_product[step], recurrent_t, out=out)


def lstm_backward(saved, dh_seq, dh_last=None, dc_last=None, *, want_input=True):
    """Gradients (dx or None, dkernel, drecurrent, dbias, dh0, dc0) from those of the outputs.

    ``dh_seq`` (T, N, U) is the gradient of h_1..h_T (or None when only the last state is used),
    ``dh_last`` / ``dc_last`` (N, U) extra gradients of h_T and c_T (or None).
    """
    x, kernel, recurrent_kernel, h, c, gates, pre, activation, recurrent_activation, mask, step_mask = saved[:11]
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    unmasked = pre is None and mask is None and step_mask is None
    persistent = unmasked and _persistent_applies(n, u, x.dtype)
    graphed = None
    if unmasked and not persistent:
        from . import rnn_graphs
        graphed = rnn_graphs.lstm_backward(saved, dh_seq, dh_last, dc_last)
    if graphed is not None:
        dz, dh0, dc0 = graphed
    else:
        dz = xp.empty((t, n, 4 * u), dtype=x.dtype)
        if persistent:
            dh0, dc0 = _lstm_backward_persistent(saved, dh_seq, dh_last, dc_last, dz)
        elif unmasked:
            dh0, dc0 = _lstm_backward_fused_steps(saved, dh_seq, dh_last, dc_last, dz)
        else:
            dh0, dc0 = _lstm_backward_steps(saved, dh_seq, dh_last, dc_last, dz)
    drecurrent, dbias = _weight_gradients(h[:-1], dz, mask)
    dkernel, dx = _input_gradients(x, saved[11], dz, kernel, want_input)
    return dx, dkernel, drecurrent, dbias, dh0, dc0


def _persistent_applies(n, u, dtype):
    from .rnn_kernels import persistent_applies
    return persistent_applies(n, u, dtype)


def _lstm_backward_persistent(saved, dh_seq, dh_last, dc_last, dz):
    """Small hidden sizes on the GPU: the whole time loop in one launch, as the forward ran; (dh0, dc0)."""
    from .rnn_kernels import lstm_sequence_backward_persistent_cuda
    x, _, recurrent_kernel, _, c, gates = saved[:6]
    xp = array_module(x)
    n, u = x.shape[1], recurrent_kernel.shape[0]

    def operand(a):
        return None if a is None else xp.ascontiguousarray(a, dtype=x.dtype)
    dh0, dc0 = xp.empty((2, n, u), dtype=x.dtype)      # one allocation for both
    lstm_sequence_backward_persistent_cuda(operand(dh_seq), operand(dh_last), operand(dc_last), gates, c,
                                           xp.ascontiguousarray(recurrent_kernel), dz, dh0, dc0)
    return dh0, dc0


def _state_gradients(xp, given, shape, dtype):
    """One C-contiguous buffer (len(given), *shape) whose index i holds a copy of the state gradient
    ``given[i]``, or zeros where it is None: one allocation, and one fill where every one is None."""
    if all(g is None for g in given):
        return xp.zeros((len(given),) + shape, dtype=dtype)
    buffers = xp.empty((len(given),) + shape, dtype=dtype)
    for buffer, g in zip(buffers, given):
        if g is None:
            buffer.fill(0)
        else:
            buffer[...] = g
    return buffers


def _lstm_backward_fused_steps(saved, dh_seq, dh_last, dc_last, dz):
    """The GPU's backward time loop without masks; fills ``dz``, returns (dh0, dc0).

    Per step one cell launch, which adds dh_seq[t] to the gradient of h_t coming from step t+1 and updates
    the dc buffer in place, and one product dz_t @ recurrent_kernel^T written into the dh buffer the next
    launch reads. Every array is checked and every buffer allocated once, before the loop.
    """
    from .rnn_kernels import lstm_cell_backward_steps
    x, _, recurrent_kernel, _, c, gates = saved[:6]
    xp = array_module(x)
    n, u = x.shape[1], recurrent_kernel.shape[0]
    dh, dc = _state_gradients(xp, (dh_last, dc_last), (n, u), x.dtype)
    dh_output = None if dh_seq is None else xp.ascontiguousarray(dh_seq, dtype=x.dtype)
    _backward_steps(xp, lstm_cell_backward_steps(dh, dh_output, dc, gates, c, dz), dz, recurrent_kernel, dh)
    return dh, dc


def _lstm_backward_steps(saved, dh_seq, dh_last, dc_last, dz):
    """The time loop, one step at a time (fused cell kernels on the GPU); fills ``dz``, returns (dh0, dc0)."""
    x, kernel, recurrent_kernel, h, c, gates, pre, activation, recurrent_activation, mask, step_mask = saved[:11]
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    dh_next = xp.zeros((n, u), dtype=x.dtype) if dh_last is None else dh_last.astype(x.dtype, copy=True)
    dc_next = None if dc_last is None else xp.array(dc_last, dtype=x.dtype, order="C")   # a copy, C-contiguous
    fused = pre is None
    if fused:
        from .rnn_kernels import lstm_cell_backward_cuda
        # the kernel reads dc of step t+1 from one buffer and writes that of step t into the other
        dc_buffers = (xp.empty((n, u), dtype=x.dtype), xp.empty((n, u), dtype=x.dtype))
    recurrent_t = recurrent_kernel.T
    for step in range(t - 1, -1, -1):
        dh = dh_next if dh_seq is None else dh_next + dh_seq[step]
        dc_in = dc_next
        if fused:
            dc_prev = dc_buffers[step % 2]
            lstm_cell_backward_cuda(xp.ascontiguousarray(dh), dc_next, gates[step], c[step + 1], c[step],
                                    dz[step], dc_prev)
            dc_next = dc_prev
        else:
            i, f, g, o = (gates[step, :, k * u:(k + 1) * u] for k in range(4))
            z = pre[step]
            tc = activation(c[step + 1])
            dc = activation.grad(c[step + 1], tc, dh * o)
            if dc_next is not None:
                dc = dc + dc_next
            dz[step, :, :u] = recurrent_activation.grad(z[:, :u], i, dc * g)
            dz[step, :, u:2 * u] = recurrent_activation.grad(z[:, u:2 * u], f, dc * c[step])
            dz[step, :, 2 * u:3 * u] = activation.grad(z[:, 2 * u:3 * u], g, dc * i)
            dz[step, :, 3 * u:] = recurrent_activation.grad(z[:, 3 * u:], o, dh * tc)
            dc_next = dc * f
        dh_next = _recurrent_input_gradient(dz[step], mask, recurrent_t)
        if step_mask is not None:
            passing_dc = xp.zeros_like(dh) if dc_in is None else dc_in
            dc_next = _masked_step_gradients(step_mask, step, dc_next, passing_dc)
            dh_next = _masked_step_gradients(step_mask, step, dh_next, dh, dz[step])
    return dh_next, dc_next


# ------------------------------------------------------------------------------------------------- GRU
def gru_forward(x, kernel, recurrent_kernel, bias, h0, activation, recurrent_activation, *,
                recurrent_mask=None, step_mask=None, training=False, input_mask=None):
    """GRU with reset_after (Keras's default): (h (T+1, N, U), saved or None). ``bias`` is (2, 3U) or None;
    ``input_mask`` (3, N, D) one input dropout mask per gate."""
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    fused = _fused(activation, recurrent_activation, x)
    if fused and recurrent_mask is None and step_mask is None:
        from . import rnn_graphs
        graphed = rnn_graphs.gru_forward(x, kernel, recurrent_kernel, bias, h0, input_mask, training)
        if graphed is not None:
            h, gates = graphed
            saved = (x, kernel, recurrent_kernel, bias is not None, h, gates, None, activation, recurrent_activation,
                     None, None, input_mask)
            return h, (saved if training else None)
    xw = input_projection(x, kernel, None if bias is None else bias[0], input_mask)
    h = _sequences(xp, t, n, u, h0, x.dtype)
    # per step: z, r, hh (activated) and hr_h, the recurrent product's h block (with its bias)
    gates = xp.empty((t, n, 4 * u), dtype=x.dtype)
    pre = None if fused else xp.empty((t, n, 3 * u), dtype=x.dtype)
    hr = xp.empty((n, 3 * u), dtype=x.dtype)
    saved = (x, kernel, recurrent_kernel, bias is not None, h, gates, pre, activation, recurrent_activation,
             recurrent_mask, step_mask, input_mask)
    if fused and recurrent_mask is None and step_mask is None:
        _gru_forward_fused_steps(xw, recurrent_kernel, None if bias is None else bias[1], h, gates, hr)
        return h, (saved if training else None)
    if fused:
        from .rnn_kernels import gru_cell_forward_cuda
    for step in range(t):
        _recurrent_product(h[step], recurrent_mask, recurrent_kernel, out=hr)
        if bias is not None:
            hr += bias[1]
        if fused:
            gru_cell_forward_cuda(xw[step], hr, h[step], h[step + 1], gates[step])
        else:
            a = pre[step]      # pre-activations of z, r and hh
            xp.add(xw[step, :, :2 * u], hr[:, :2 * u], out=a[:, :2 * u])
            z, r, hh, hr_h = (gates[step, :, k * u:(k + 1) * u] for k in range(4))
            z[...] = recurrent_activation(a[:, :u])
            r[...] = recurrent_activation(a[:, u:2 * u])
            hr_h[...] = hr[:, 2 * u:]
            a[:, 2 * u:] = xw[step, :, 2 * u:] + r * hr_h
            hh[...] = activation(a[:, 2 * u:])
            h[step + 1] = z * h[step] + (1 - z) * hh
        _hold(h, step, step_mask)
    return h, (saved if training else None)


def _gru_forward_fused_steps(xw, recurrent_kernel, recurrent_bias, h, gates, hr):
    """The GPU's GRU forward time loop without masks: per step one product h_t @ recurrent_kernel written into
    ``hr`` and one cell launch, which adds the recurrent bias itself. Fills h (from index 1) and gates."""
    from .rnn_kernels import gru_cell_forward_steps
    xp = array_module(xw)
    hr_bias = None if recurrent_bias is None else xp.ascontiguousarray(recurrent_bias, dtype=xw.dtype)
    _forward_steps(xp, gru_cell_forward_steps(xw, hr, hr_bias, h, gates), h, recurrent_kernel, hr)


def gru_backward(saved, dh_seq, dh_last=None, *, want_input=True):
    """Gradients (dx or None, dkernel, drecurrent, dbias (2, 3U) or None, dh0)."""
    (x, kernel, recurrent_kernel, has_bias, h, gates, pre, activation, recurrent_activation, mask, step_mask,
     input_mask) = saved
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    fused = pre is None
    if fused and mask is None and step_mask is None:
        from . import rnn_graphs
        graphed = rnn_graphs.gru_backward(saved, dh_seq, dh_last)
        if graphed is not None:
            dxw, dhr, dh0 = graphed
            return _gru_weight_gradients(saved, dxw, dhr, want_input) + (dh0,)
    dxw = xp.empty((t, n, 3 * u), dtype=x.dtype)
    dhr = xp.empty((t, n, 3 * u), dtype=x.dtype)
    if fused and mask is None and step_mask is None:
        return _gru_backward_fused_steps(saved, dh_seq, dh_last, dxw, dhr, want_input)
    dh_next = xp.zeros((n, u), dtype=x.dtype) if dh_last is None else dh_last.astype(x.dtype, copy=True)
    if fused:
        from .rnn_kernels import gru_cell_backward_cuda
        dh_direct = xp.empty((n, u), dtype=x.dtype)
    recurrent_t = recurrent_kernel.T
    for step in range(t - 1, -1, -1):
        dh = dh_next if dh_seq is None else dh_next + dh_seq[step]
        if fused:
            gru_cell_backward_cuda(xp.ascontiguousarray(dh), gates[step], h[step], dxw[step], dhr[step], dh_direct)
            direct = dh_direct
        else:
            z, r, hh, hr_h = (gates[step, :, k * u:(k + 1) * u] for k in range(4))
            a = pre[step]
            da_h = activation.grad(a[:, 2 * u:], hh, dh * (1 - z))
            dxw[step, :, :u] = recurrent_activation.grad(a[:, :u], z, dh * (h[step] - hh))
            dxw[step, :, u:2 * u] = recurrent_activation.grad(a[:, u:2 * u], r, da_h * hr_h)
            dxw[step, :, 2 * u:] = da_h
            dhr[step, :, :2 * u] = dxw[step, :, :2 * u]
            dhr[step, :, 2 * u:] = da_h * r
            direct = dh * z
        dh_next = _masked_step_gradients(step_mask, step, direct + _recurrent_input_gradient(dhr[step], mask,
                                                                                             recurrent_t),
                                         dh, dxw[step], dhr[step])
    return _gru_weight_gradients(saved, dxw, dhr, want_input) + (dh_next,)


def _gru_weight_gradients(saved, dxw, dhr, want_input):
    """(dx or None, dkernel, drecurrent, dbias or None) from every step's dxw and dhr (T, N, 3U)."""
    x, kernel, has_bias, h, mask, input_mask = (saved[i] for i in (0, 1, 3, 4, 9, 11))
    xp = array_module(x)
    rows, width = x.shape[0] * x.shape[1], dxw.shape[2]
    drecurrent = _recurrent_weight_gradient(h[:-1], mask, dhr)
    dkernel, dx = _input_gradients(x, input_mask, dxw, kernel, want_input)
    dxw, dhr = dxw.reshape(rows, width), dhr.reshape(rows, width)
    dbias = xp.stack([sum_axes(dxw, 0), sum_axes(dhr, 0)]) if has_bias else None
    return dx, dkernel, drecurrent, dbias


def _gru_backward_fused_steps(saved, dh_seq, dh_last, dxw, dhr, want_input):
    """The GPU's GRU backward time loop without masks: ``gru_backward``'s result.

    The gradient of h_t is kept in two buffers: its direct part (dh_t+1 * z) and its part through the
    recurrent product. Per step one cell launch, which adds the two and dh_seq[t] and overwrites the
    direct part with h_{t-1}'s, and one product dhr_t @ recurrent_kernel^T written into the other buffer.
    """
    from .rnn_kernels import gru_cell_backward_steps
    x, recurrent_kernel, h, gates = (saved[i] for i in (0, 2, 4, 5))
    xp = array_module(x)
    n, u = x.shape[1], recurrent_kernel.shape[0]
    through_product, direct = _state_gradients(xp, (dh_last, None), (n, u), x.dtype)
    dh_output = None if dh_seq is None else xp.ascontiguousarray(dh_seq, dtype=x.dtype)
    _backward_steps(xp, gru_cell_backward_steps(through_product, direct, dh_output, gates, h, dxw, dhr), dhr,
                    recurrent_kernel, through_product)
    return _gru_weight_gradients(saved, dxw, dhr, want_input) + (direct + through_product,)


# ------------------------------------------------------------------------------- GRU, reset before
def gru_reset_before_forward(x, kernel, recurrent_kernel, bias, h0, activation, recurrent_activation, *,
                             recurrent_mask=None, step_mask=None, training=False, input_mask=None):
    """GRU with reset_after=False (the original GRU): the reset gate scales h_{t-1} before its product.

    ``bias`` (3U,) or None, all in the input projection. Per step: z = ra(xw_z + h U_z),
    r = ra(xw_r + h U_r), hh = a(xw_h + (r * h) U_h), h' = z h + (1 - z) hh; array arithmetic on both
    backends. Returns (h (T+1, N, U), saved or None).
    """
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    xw = input_projection(x, kernel, bias, input_mask)
    h = _sequences(xp, t, n, u, h0, x.dtype)
    pre = xp.empty((t, n, 3 * u), dtype=x.dtype)        # pre-activations of z, r, hh
    gates = xp.empty((t, n, 3 * u), dtype=x.dtype)      # z, r, hh
    recurrent_zr, recurrent_h = recurrent_kernel[:, :2 * u], recurrent_kernel[:, 2 * u:]
    for step in range(t):
        a = pre[step]
        xp.add(xw[step, :, :2 * u], _recurrent_product(h[step], _first_gates(recurrent_mask, 2), recurrent_zr),
               out=a[:, :2 * u])
        z, r, hh = (gates[step, :, k * u:(k + 1) * u] for k in range(3))
        z[...] = recurrent_activation(a[:, :u])
        r[...] = recurrent_activation(a[:, u:2 * u])
        xp.add(xw[step, :, 2 * u:], (r * _masked(h[step], _gate(recurrent_mask, 2))) @ recurrent_h,
               out=a[:, 2 * u:])
        hh[...] = activation(a[:, 2 * u:])
        h[step + 1] = z * h[step] + (1 - z) * hh
        _hold(h, step, step_mask)
    saved = (x, kernel, recurrent_kernel, bias is not None, h, gates, pre, activation, recurrent_activation,
             recurrent_mask, step_mask, input_mask)
    return h, (saved if training else None)


def gru_reset_before_backward(saved, dh_seq, dh_last=None, *, want_input=True):
    """Gradients (dx or None, dkernel, drecurrent, dbias (3U,) or None, dh0) of ``gru_reset_before_forward``."""
    (x, kernel, recurrent_kernel, has_bias, h, gates, pre, activation, recurrent_activation, mask, step_mask,
     input_mask) = saved
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    da = xp.empty((t, n, 3 * u), dtype=x.dtype)         # gradients of the pre-activations of z, r, hh
    dh_next = xp.zeros((n, u), dtype=x.dtype) if dh_last is None else dh_last.astype(x.dtype, copy=True)
    recurrent_zr_t, recurrent_h_t = recurrent_kernel[:, :2 * u].T, recurrent_kernel[:, 2 * u:].T
    for step in range(t - 1, -1, -1):
        dh = dh_next if dh_seq is None else dh_next + dh_seq[step]
        z, r, hh = (gates[step, :, k * u:(k + 1) * u] for k in range(3))
        a = pre[step]
        h_in = _masked(h[step], _gate(mask, 2))                   # h_{t-1} as the candidate's product takes it
        da[step, :, 2 * u:] = activation.grad(a[:, 2 * u:], hh, dh * (1 - z))
        da[step, :, :u] = recurrent_activation.grad(a[:, :u], z, dh * (h[step] - hh))
        d_rh = da[step, :, 2 * u:] @ recurrent_h_t                # gradient of r * h_in
        da[step, :, u:2 * u] = recurrent_activation.grad(a[:, u:2 * u], r, d_rh * h_in)
        through = dh * z + _recurrent_input_gradient(da[step, :, :2 * u], _first_gates(mask, 2), recurrent_zr_t) + \
            _masked(d_rh * r, _gate(mask, 2))
        dh_next = _masked_step_gradients(step_mask, step, through, dh, da[step])
    rows = t * n
    da_rows = da.reshape(rows, 3 * u)
    h_in = _masked(h[:-1], _gate(mask, 2))
    dkernel, dx = _input_gradients(x, input_mask, da, kernel, want_input)
    drecurrent = xp.concatenate([_recurrent_weight_gradient(h[:-1], _first_gates(mask, 2), da[:, :, :2 * u]),
                                 (gates[:, :, u:2 * u] * h_in).reshape(rows, u).T @ da_rows[:, 2 * u:]], axis=1)
    dbias = sum_axes(da_rows, 0) if has_bias else None
    return dx, dkernel, drecurrent, dbias, dh_next


# ------------------------------------------------------------------------------------------ simple RNN
def simple_rnn_forward(x, kernel, recurrent_kernel, bias, h0, activation, *, recurrent_mask=None, step_mask=None,
                       training=False):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias): (h (T+1, N, U), saved or None)."""
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    xw = input_projection(x, kernel, bias)
    h = _sequences(xp, t, n, u, h0, x.dtype)
    pre = xp.empty((t, n, u), dtype=x.dtype)
    for step in range(t):
        xp.add(xw[step], _masked(h[step], recurrent_mask) @ recurrent_kernel, out=pre[step])
        h[step + 1] = activation(pre[step])
        _hold(h, step, step_mask)
    saved = (x, kernel, recurrent_kernel, h, pre, activation, recurrent_mask, step_mask)
    return h, (saved if training else None)


def simple_rnn_backward(saved, dh_seq, dh_last=None, *, want_input=True):
    """Gradients (dx or None, dkernel, drecurrent, dbias, dh0)."""
    x, kernel, recurrent_kernel, h, pre, activation, mask, step_mask = saved
    xp = array_module(x)
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    dz = xp.empty((t, n, u), dtype=x.dtype)
    dh_next = xp.zeros((n, u), dtype=x.dtype) if dh_last is None else dh_last.astype(x.dtype, copy=True)
    recurrent_t = recurrent_kernel.T
    for step in range(t - 1, -1, -1):
        dh = dh_next if dh_seq is None else dh_next + dh_seq[step]
        dz[step] = activation.grad(pre[step], h[step + 1], dh)
        dh_next = _masked_step_gradients(step_mask, step, _masked(dz[step] @ recurrent_t, mask), dh, dz[step])
    drecurrent, dbias = _weight_gradients(h[:-1], dz, mask)
    dkernel, dx = _input_gradients(x, None, dz, kernel, want_input)
    return dx, dkernel, drecurrent, dbias, dh_next
