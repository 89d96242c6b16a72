"""Launchers of ``kernels/lstm_cell.cu``: the LSTM and GRU (reset_after) cells and a persistent LSTM
forward and backward.

The only place that knows these kernels' geometry. ``gpu_dl.ops.rnn`` sends
CuPy float32/float64 arrays here when the cell uses Keras's default
activations (tanh, with sigmoid as the recurrent activation; ``supports``
says when) and keeps its array arithmetic for everything else.

Every array argument is a C-contiguous CuPy array of one float dtype (that of
the first argument). The cell launchers write PREALLOCATED outputs in place
(typically slices ``[t]`` of time-major ``(T, N, ...)`` buffers, which are
contiguous) and return them; they raise a TypeError or ValueError naming the
kernel and the argument instead of launching on bad input. The step-loop
launchers (``lstm_cell_forward_steps``, ``lstm_cell_backward_steps`` and
the ``gru_`` ones) make
those checks once for a whole time-major sequence and return a function
that launches one step without checking again, so that a step of
``gpu_dl.ops.rnn``'s loops costs the host one launch. Gate blocks lie
along the last axis, U wide each: LSTM ``(N, 4U)`` in the order i, f, g
(Keras's "c"), o; GRU ``(N, 3U)`` in the order z, r, h. The formulas are
listed at the top of ``kernels/lstm_cell.cu``.
"""
from __future__ import annotations


import numpy

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "lstm_cell.cu"
_THREADS = 256                    # LSTM_CELL_THREADS in lstm_cell.cu
_PERSISTENT_MAX_THREADS = 256     # LSTM_PERSISTENT_MAX_THREADS in lstm_cell.cu
_PERSISTENT_SPLIT = 4             # LSTM_PERSISTENT_SPLIT: threads per (sample, unit)
PERSISTENT_MAX_UNITS = 64         # LSTM_PERSISTENT_MAX_UNITS: each thread's slice of R is a fixed register array
_OPS = ("lstm_cell_fwd", "lstm_cell_bwd", "gru_cell_fwd", "gru_cell_bwd", "lstm_persistent_fwd",
        "lstm_persistent_bwd")


def kernel_names() -> set:
    """The ``extern "C"`` names of lstm_cell.cu that these launchers use."""
    return {f"{op}_{suffix}" for op in _OPS for suffix in ("f32", "f64")}


def _is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


def supports(activation_name, recurrent_activation_name, x) -> bool:
    """True when the fused cells compute this cell: ("tanh", "sigmoid") on a CuPy float32/float64 ``x``."""
    return (activation_name == "tanh" and recurrent_activation_name == "sigmoid" and _is_cupy(x)
            and x.dtype in (numpy.float32, numpy.float64))


# ------------------------------------------------------------------------------------------ checks
def _kernel(op, a, argument):
    """The kernel name for first argument ``a`` (its dtype picks _f32 or _f64), after checking it is on the GPU."""
    if not _is_cupy(a):
        raise TypeError(f"{op}: `{argument}` must be a CuPy array on the GPU, got {type(a).__name__}.")
    return f"{op}_{launch.float_suffix(a.dtype, op, argument)}"


def _matrix(a, kernel, argument, columns_per_unit=None):
    """Checked ``(N, width)`` of a 2-D argument (C-contiguous CuPy array)."""
    launch.check_device_array(a, kernel, argument)
    if a.ndim != 2:
        shape = "(N, U)" if columns_per_unit is None else f"(N, {columns_per_unit}U)"
        raise ValueError(f"{kernel}: `{argument}` must have shape {shape}, got {tuple(a.shape)}.")
    return a.shape


def _units(width, gates, kernel, argument):
    if width % gates:
        raise ValueError(f"{kernel}: `{argument}` has {width} columns, not a multiple of {gates} "
                         f"(its shape must be (N, {gates}U)).")
    return width // gates


def _same(kernel, dtype, **arrays):
    """Check each named array has ``dtype`` and the shape given with it: ``name=(array, shape)``; an optional
    argument left out (None) is skipped."""
    for argument, (a, shape) in arrays.items():
        if a is not None:
            launch.check_device_array(a, kernel, argument, dtype=dtype, shape=shape)


def _launch_cells(kernel, arrays, n, u):
    _bound_cells(kernel, n, u)(tuple(arrays))


# ------------------------------------------------------------------------------------------- LSTM
def lstm_cell_forward_cuda(xw, hr, c_prev, h, c, gates):
    """Launcher of ``lstm_cell_fwd_{f32,f64}``: one LSTM step's elementwise part, written into h, c, gates.

    ``xw`` (N, 4U) = x_t @ kernel + bias, ``hr`` (N, 4U) = h_{t-1} @ recurrent_kernel, ``c_prev`` (N, U).
    Writes ``h`` and ``c`` (N, U) and ``gates`` (N, 4U), the activated i, f, g, o. ``c`` may be
    ``c_prev`` itself. Returns ``(h, c, gates)``.
    """
    kernel = _kernel("lstm_cell_fwd", xw, "xw")
    n, width = _matrix(xw, kernel, "xw", 4)
    u = _units(width, 4, kernel, "xw")
    _same(kernel, xw.dtype, hr=(hr, (n, 4 * u)), c_prev=(c_prev, (n, u)), h=(h, (n, u)), c=(c, (n, u)),
          gates=(gates, (n, 4 * u)))
    _launch_cells(kernel, (xw, hr, c_prev, h, c, gates), n, u)
    return h, c, gates


def lstm_cell_backward_cuda(dh, dc_next, gates, c, c_prev, dz, dc_prev, dh_output=None):
    """Launcher of ``lstm_cell_bwd_{f32,f64}``: one LSTM step's gradient through the cell.

    ``dh`` (N, U): the gradient of h_t; ``dh_output`` (N, U) or None: a second part of it (typically
    that from the layer's output sequence, while ``dh`` is that from step t+1) which the kernel adds
    to ``dh``; ``dc_next`` (N, U) the gradient of c_t from step t+1, or None (zeros, the last step);
    ``gates`` (N, 4U), ``c`` = c_t and ``c_prev`` = c_{t-1} (N, U) from the forward. Writes ``dz``
    (N, 4U), the gradient of the pre-activations (i, f, g, o), and ``dc_prev`` (N, U); ``dc_prev``
    may be ``dc_next`` itself. Returns ``(dz, dc_prev)``.
    """
    kernel = _kernel("lstm_cell_bwd", dh, "dh")
    n, u = _matrix(dh, kernel, "dh")
    _same(kernel, dh.dtype, gates=(gates, (n, 4 * u)), c=(c, (n, u)), c_prev=(c_prev, (n, u)), dz=(dz, (n, 4 * u)),
          dc_prev=(dc_prev, (n, u)), dh_output=(dh_output, (n, u)), dc_next=(dc_next, (n, u)))
    _launch_cells(kernel, (dh, launch.optional(dh_output), launch.optional(dc_next), gates, c, c_prev, dz,
                           dc_prev), n, u)
    return dz, dc_prev


# ------------------------------------------------------------------------------ LSTM step loops
# The time loops of ops/rnn.py launch a cell kernel per step (GRU's step launchers follow its cells).
# These check a whole sequence's arrays once, bind the kernel function, geometry and scalar arguments,
# and return ``step(t)``, which launches step t with nothing left to do but slice its views: the
# per-step host work is one launch.


def _bound_cells(kernel, n, u):
    """``launch(arrays)``: the cell kernel ``kernel`` over N*U threads, its function and scalars bound."""
    if n * u == 0:
        return lambda arrays: None
    function = get_kernel(_KERNEL_FILE, kernel)
    grid, block = launch.grid_1d(n * u, _THREADS)
    scalars = (numpy.int32(n), numpy.int32(u))
    return lambda arrays: function(grid, block, arrays + scalars)


def _step_sequences(kernel, dtype, **arrays):
    """Check the time-major arguments ``name=(array, shape)`` of a step loop: C-contiguous CuPy arrays of
    ``dtype`` and these shapes. A launch reads one step of each, so the kernels' limit of 2**31 elements
    applies to a step (checked on ``array[0]``), not to the whole sequence. None (left out) is skipped."""
    for argument, (a, shape) in arrays.items():
        if a is None:
            continue
        if _is_cupy(a) and tuple(a.shape) == tuple(shape) and a.flags.c_contiguous and len(shape) > 1 and shape[0]:
            a, shape = a[0], shape[1:]
        launch.check_device_array(a, kernel, argument, dtype=dtype, shape=shape)


def _output_steps(dh_seq):
    """``output(t)``: the kernel argument of step t's gradient from the outputs, dh_seq[t], or null."""
    if dh_seq is None:
        return lambda t: launch.NULL
    return dh_seq.__getitem__


def _step_width(a, kernel, argument, gates):
    """(T, N, U) of the checked (T, N, ``gates``*U) first argument of a step loop (C-contiguous CuPy array)."""
    if a.ndim != 3:
        raise ValueError(f"{kernel}: `{argument}` must have shape (T, N, {gates}U) (time-major), "
                         f"got {tuple(a.shape)}.")
    steps, n, width = a.shape
    _step_sequences(kernel, a.dtype, **{argument: (a, a.shape)})
    return steps, n, _units(width, gates, kernel, argument)


def lstm_cell_forward_steps(xw, hr, h, c, gates):
    """Bound launches of ``lstm_cell_fwd_{f32,f64}`` for an LSTM forward step loop: ``step(t)``.

    ``xw`` (T, N, 4U): every step's x_t @ kernel + bias; ``hr`` (N, 4U): the buffer into which the
    loop writes h_t @ recurrent_kernel before each step; ``h``, ``c`` (T+1, N, U) the state sequences
    (index 0 the initial state); ``gates`` (T, N, 4U). ``step(t)`` (0 <= t < T, not checked) launches
    ``lstm_cell_forward_cuda(xw[t], hr, c[t], h[t+1], c[t+1], gates[t])``. The arrays are checked
    here, once, as that launcher checks them (C-contiguous CuPy arrays of one float dtype, these
    shapes). Returns ``step``.
    """
    kernel = _kernel("lstm_cell_fwd", xw, "xw")
    steps, n, u = _step_width(xw, kernel, "xw", 4)
    _same(kernel, xw.dtype, hr=(hr, (n, 4 * u)))
    _step_sequences(kernel, xw.dtype, h=(h, (steps + 1, n, u)), c=(c, (steps + 1, n, u)),
                    gates=(gates, (steps, n, 4 * u)))
    cells = _bound_cells(kernel, n, u)

    def step(t):
        cells((xw[t], hr, c[t], h[t + 1], c[t + 1], gates[t]))
    return step


def lstm_cell_backward_steps(dh, dh_seq, dc, gates, c, dz):
    """Bound launches of ``lstm_cell_bwd_{f32,f64}`` for an LSTM backward step loop: ``step(t)``.

    ``dh`` (N, U): the buffer holding the gradient of h_t from step t+1 (the loop writes dz_t @
    recurrent_kernel^T into it after each step); ``dh_seq`` (T, N, U): the gradients of h_1..h_T from
    the outputs, added by the kernel, or None; ``dc`` (N, U): the gradient of c_t from step t+1, read
    and overwritten in place with that of c_{t-1}; ``gates`` (T, N, 4U) and ``c`` (T+1, N, U) from the
    forward; ``dz`` (T, N, 4U). ``step(t)`` (0 <= t < T, not checked) launches
    ``lstm_cell_backward_cuda(dh, dc, gates[t], c[t+1], c[t], dz[t], dc, dh_output=dh_seq[t])``. The
    arrays are checked here, once, as that launcher checks them. Returns ``step``.
    """
    kernel = _kernel("lstm_cell_bwd", gates, "gates")
    steps, n, u = _step_width(gates, kernel, "gates", 4)
    _same(kernel, gates.dtype, dh=(dh, (n, u)), dc=(dc, (n, u)))
    _step_sequences(kernel, gates.dtype, c=(c, (steps + 1, n, u)), dz=(dz, (steps, n, 4 * u)),
                    dh_seq=(dh_seq, (steps, n, u)))
    cells, output = _bound_cells(kernel, n, u), _output_steps(dh_seq)

    def step(t):
        cells((dh, output(t), dc, gates[t], c[t + 1], c[t], dz[t], dc))
    return step


# -------------------------------------------------------------------------------------------- GRU
def gru_cell_forward_cuda(xw, hr, h_prev, h, gates, hr_bias=None):
    """Launcher of ``gru_cell_fwd_{f32,f64}``: one GRU (reset_after) step's elementwise part.

    ``xw`` (N, 3U) = x_t @ kernel + bias[0]; ``hr`` (N, 3U) = h_{t-1} @ recurrent_kernel, with
    bias[1] added, or ``hr_bias`` (3U,) = bias[1], which the kernel adds to each row of ``hr``
    (None: none, or ``hr`` holds it); ``h_prev`` (N, U). Writes ``h`` (N, U) and ``gates`` (N, 4U):
    z, r, hh (the candidate) and hr_h (hr's h block with its bias, which backward needs). Returns
    ``(h, gates)``.
    """
    kernel = _kernel("gru_cell_fwd", xw, "xw")
    n, width = _matrix(xw, kernel, "xw", 3)
    u = _units(width, 3, kernel, "xw")
    _same(kernel, xw.dtype, hr=(hr, (n, 3 * u)), h_prev=(h_prev, (n, u)), h=(h, (n, u)), gates=(gates, (n, 4 * u)),
          hr_bias=(hr_bias, (3 * u,)))
    _launch_cells(kernel, (xw, hr, launch.optional(hr_bias), h_prev, h, gates), n, u)
    return h, gates


def gru_cell_backward_cuda(dh, gates, h_prev, dxw, dhr, dh_prev, dh_direct=None, dh_output=None):
    """Launcher of ``gru_cell_bwd_{f32,f64}``: one GRU step's gradient through the cell.

    The gradient of h_t is ``(dh_direct + dh) + dh_output`` (N, U) each, summed by the kernel in that
    order; ``dh_direct`` and ``dh_output`` may be None (left out). ``gates`` (N, 4U) from the forward;
    ``h_prev`` (N, U). Writes ``dxw`` (N, 3U), the gradient of x_t @ kernel + bias[0]; ``dhr`` (N, 3U),
    that of h_{t-1} @ recurrent_kernel + bias[1]; ``dh_prev`` (N, U) = (that gradient) * z, the direct
    part of h_{t-1}'s gradient (the caller adds dhr @ recurrent_kernel^T). ``dh_prev`` may be ``dh``
    or ``dh_direct`` itself. Returns ``(dxw, dhr, dh_prev)``.
    """
    kernel = _kernel("gru_cell_bwd", dh, "dh")
    n, u = _matrix(dh, kernel, "dh")
    _same(kernel, dh.dtype, gates=(gates, (n, 4 * u)), h_prev=(h_prev, (n, u)), dxw=(dxw, (n, 3 * u)),
          dhr=(dhr, (n, 3 * u)), dh_prev=(dh_prev, (n, u)), dh_direct=(dh_direct, (n, u)),
          dh_output=(dh_output, (n, u)))
    _launch_cells(kernel, (dh, launch.optional(dh_direct), launch.optional(dh_output), gates, h_prev, dxw, dhr,
                           dh_prev), n, u)
    return dxw, dhr, dh_prev


def gru_cell_forward_steps(xw, hr, hr_bias, h, gates):
    """Bound launches of ``gru_cell_fwd_{f32,f64}`` for a GRU forward step loop: ``step(t)``.

    ``xw`` (T, N, 3U): every step's x_t @ kernel + bias[0]; ``hr`` (N, 3U): the buffer into which the
    loop writes h_t @ recurrent_kernel before each step; ``hr_bias`` (3U,) bias[1] or None; ``h``
    (T+1, N, U) the state sequence (index 0 the initial state); ``gates`` (T, N, 4U). ``step(t)``
    (0 <= t < T, not checked) launches ``gru_cell_forward_cuda(xw[t], hr, h[t], h[t+1], gates[t],
    hr_bias)``. The arrays are checked here, once, as that launcher checks them. Returns ``step``.
    """
    kernel = _kernel("gru_cell_fwd", xw, "xw")
    steps, n, u = _step_width(xw, kernel, "xw", 3)
    _same(kernel, xw.dtype, hr=(hr, (n, 3 * u)), hr_bias=(hr_bias, (3 * u,)))
    _step_sequences(kernel, xw.dtype, h=(h, (steps + 1, n, u)), gates=(gates, (steps, n, 4 * u)))
    cells, bias = _bound_cells(kernel, n, u), launch.optional(hr_bias)

    def step(t):
        cells((xw[t], hr, bias, h[t], h[t + 1], gates[t]))
    return step


def gru_cell_backward_steps(dh, dh_direct, dh_seq, gates, h, dxw, dhr):
    """Bound launches of ``gru_cell_bwd_{f32,f64}`` for a GRU backward step loop: ``step(t)``.

    ``dh`` (N, U): the buffer into which the loop writes dhr_t @ recurrent_kernel^T after each step
    (h_{t-1}'s gradient through the recurrent product); ``dh_direct`` (N, U): the direct part of the
    gradient of h_t, read and overwritten in place with that of h_{t-1}; ``dh_seq`` (T, N, U) the
    gradients of h_1..h_T from the outputs, or None; ``gates`` (T, N, 4U) and ``h`` (T+1, N, U) from
    the forward; ``dxw``, ``dhr`` (T, N, 3U). ``step(t)`` (0 <= t < T, not checked) launches
    ``gru_cell_backward_cuda(dh, gates[t], h[t], dxw[t], dhr[t], dh_direct, dh_direct, dh_seq[t])``.
    The arrays are checked here, once, as that launcher checks them. Returns ``step``.
    """
    kernel = _kernel("gru_cell_bwd", gates, "gates")
    steps, n, u = _step_width(gates, kernel, "gates", 4)
    _same(kernel, gates.dtype, dh=(dh, (n, u)), dh_direct=(dh_direct, (n, u)))
    _step_sequences(kernel, gates.dtype, h=(h, (steps + 1, n, u)), dxw=(dxw, (steps, n, 3 * u)),
                    dhr=(dhr, (steps, n, 3 * u)), dh_seq=(dh_seq, (steps, n, u)))
    cells, output = _bound_cells(kernel, n, u), _output_steps(dh_seq)

    def step(t):
        cells((dh, dh_direct, output(t), gates[t], h[t], dxw[t], dhr[t], dh_direct))
    return step


# ----------------------------------------------------------------------------- persistent LSTM forward
def _current_multiprocessors() -> int:
    import cupy
    return launch.multiprocessors(cupy.cuda.runtime.getDevice())


# Shared memory per sample of a tile, in values: two buffers of h (forward) or of dz (backward). R lies in
# registers, so a block takes at most 8 * 64 values (4 KiB in float64), below every device's default limit.
_PER_SAMPLE = {"fwd": 2, "bwd": 8}


def _shared_bytes(u, nb, itemsize, direction):
    """Dynamic shared memory of a persistent kernel: the tile's two step buffers."""
    return _PER_SAMPLE[direction] * nb * u * itemsize


def _tile(n, u, sms):
    """Samples per block: about one block per multiprocessor, within the block's thread limit."""
    return max(1, min(-(-n // sms), _PERSISTENT_MAX_THREADS // (_PERSISTENT_SPLIT * u)))


def persistent_applies(n, u, dtype) -> bool:
    """True when the persistent LSTM kernels (forward and backward) run batch ``n``, ``u`` units and ``dtype`` here.

    That is 1 <= U <= 64 (PERSISTENT_MAX_UNITS), N >= 1, float32 or float64, and a CUDA device to run
    them on (they keep R in registers and need at most 4 KiB of shared memory, which every device has).
    """
    try:
        dtype = numpy.dtype(dtype)
        n, u = int(n), int(u)
    except (TypeError, ValueError):
        return False
    if dtype not in (numpy.float32, numpy.float64) or not 1 <= u <= PERSISTENT_MAX_UNITS or n < 1:
        return False
    try:
        _current_multiprocessors()
    except Exception:   # no CuPy or no device: nothing to run it on
        return False
    return True


def lstm_sequence_forward_persistent_cuda(xw, recurrent_kernel, h0, c0, h_seq, c_seq, gates):
    """Launcher of ``lstm_persistent_fwd_{f32,f64}``: a whole LSTM forward sequence in one launch (U <= 64).

    ``xw`` (T, N, 4U): every step's x_t @ kernel + bias, time-major; ``recurrent_kernel`` (U, 4U);
    ``h0``, ``c0`` (N, U) the initial state. Writes ``h_seq`` and ``c_seq`` (T+1, N, U): index 0
    receives h0 and c0 (which may be ``h_seq[0]`` and ``c_seq[0]`` themselves), index t+1 the state
    after step t (so ``h_seq[1:]`` is the layer's output sequence); and ``gates`` (T, N, 4U), the
    activated i, f, g, o of every step as ``lstm_cell_forward_cuda`` writes them, for the backward.
    Equal to T steps of ``hr = h @ recurrent_kernel`` and ``lstm_cell_forward_cuda`` up to the rounding
    of the recurrent product (each column summed as four interleaved partial sums over k = m, m + 4, ...
    with FMAs, added as (P0 + P2) + (P1 + P3), rather than in cuBLAS's order).
    Raises ValueError where ``persistent_applies`` is False. Returns ``(h_seq, c_seq, gates)``.
    """
    kernel = _kernel("lstm_persistent_fwd", xw, "xw")
    steps, n, u = _time_major_gates(xw, kernel, "xw")
    _same(kernel, xw.dtype, recurrent_kernel=(recurrent_kernel, (u, 4 * u)), h0=(h0, (n, u)), c0=(c0, (n, u)),
          h_seq=(h_seq, (steps + 1, n, u)), c_seq=(c_seq, (steps + 1, n, u)), gates=(gates, (steps, n, 4 * u)))
    if n * u == 0:
        return h_seq, c_seq, gates
    _refuse_large(kernel, n, u, xw.dtype)
    _launch_persistent(kernel, "fwd", (xw, recurrent_kernel, h0, c0, h_seq, c_seq, gates), steps, n, u, xw.dtype)
    return h_seq, c_seq, gates


def lstm_sequence_backward_persistent_cuda(dh_seq, dh_last, dc_last, gates, c_seq, recurrent_kernel, dz, dh0, dc0):
    """Launcher of ``lstm_persistent_bwd_{f32,f64}``: a whole LSTM backward sequence in one launch (U <= 64).

    ``gates`` (T, N, 4U) and ``c_seq`` (T+1, N, U) as the forward wrote them (index 0 of ``c_seq`` the
    initial cell state); ``recurrent_kernel`` (U, 4U); ``dh_seq`` (T, N, U) the gradient of h_1..h_T
    from above, or None when only the last state is used; ``dh_last``, ``dc_last`` (N, U) extra
    gradients of h_T and c_T, or None (zeros). Writes ``dz`` (T, N, 4U), the gradient of every step's
    pre-activations (i, f, g, o) as ``lstm_cell_backward_cuda`` writes it, and ``dh0``, ``dc0`` (N, U),
    the gradients of the initial state. Equal to T steps of ``dh = dh_next + dh_seq[t]``,
    ``lstm_cell_backward_cuda`` and ``dh_next = dz_t @ recurrent_kernel.T`` up to the rounding of that
    product (interleaved partial sums with FMAs, as the kernel file's header says, rather than cuBLAS's
    order). Raises ValueError where
    ``persistent_applies`` is False. Returns ``(dz, dh0, dc0)``.
    """
    kernel = _kernel("lstm_persistent_bwd", gates, "gates")
    steps, n, u = _time_major_gates(gates, kernel, "gates")
    arrays = dict(c_seq=(c_seq, (steps + 1, n, u)), recurrent_kernel=(recurrent_kernel, (u, 4 * u)),
                  dz=(dz, (steps, n, 4 * u)), dh0=(dh0, (n, u)), dc0=(dc0, (n, u)))
    for argument, a, shape in (("dh_seq", dh_seq, (steps, n, u)), ("dh_last", dh_last, (n, u)),
                               ("dc_last", dc_last, (n, u))):
        if a is not None:
            arrays[argument] = (a, shape)
    _same(kernel, gates.dtype, **arrays)
    if n * u == 0:
        return dz, dh0, dc0
    _refuse_large(kernel, n, u, gates.dtype)
    _launch_persistent(kernel, "bwd", (dh_seq, dh_last, dc_last, gates, c_seq, recurrent_kernel, dz, dh0, dc0),
                       steps, n, u, gates.dtype)
    return dz, dh0, dc0


def _time_major_gates(a, kernel, argument):
    """(T, N, U) of a checked (T, N, 4U) argument (C-contiguous CuPy array)."""
    launch.check_device_array(a, kernel, argument)
    if a.ndim != 3:
        raise ValueError(f"{kernel}: `{argument}` must have shape (T, N, 4U) (time-major), got {tuple(a.shape)}.")
    steps, n, width = a.shape
    return steps, n, _units(width, 4, kernel, argument)


def _refuse_large(kernel, n, u, dtype):
    if not persistent_applies(n, u, dtype):
        raise ValueError(f"{kernel}: the persistent LSTM runs 1 <= units <= {PERSISTENT_MAX_UNITS} with the "
                         f"recurrent kernel in registers; units = {u} ({dtype.name}) is outside that range or there "
                         "is no device: use the step loop (lstm_cell_forward_cuda, lstm_cell_backward_cuda).")


def _launch_persistent(kernel, direction, arrays, steps, n, u, dtype):
    """One block per tile of NB samples, 4 threads per (sample, unit), R in registers, the step buffers in shared
    memory."""
    nb = _tile(n, u, _current_multiprocessors())
    threads = -(-nb * u * _PERSISTENT_SPLIT // 32) * 32
    nbytes = _shared_bytes(u, nb, dtype.itemsize, direction)
    function = get_kernel(_KERNEL_FILE, kernel)
    function((-(-n // nb),), (threads,), tuple(launch.optional(a) for a in arrays)
             + (numpy.int32(steps), numpy.int32(n), numpy.int32(u), numpy.int32(nb)), shared_mem=nbytes)
