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
kernel and the argument instead of launching on bad input. Gate blocks lie
along the last axis, U wide each: LSTM ``(N, 4U)`` in the order i, f, g
(Keras's "c"), o; GRU ``(N, 3U)`` in the order z, r, h. The formulas are
listed at the top of ``kernels/lstm_cell.cu``.
"""
from __future__ import annotations

import functools

import numpy

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "lstm_cell.cu"
_THREADS = 256                    # LSTM_CELL_THREADS in lstm_cell.cu
_PERSISTENT_MAX_THREADS = 512     # LSTM_PERSISTENT_MAX_THREADS in lstm_cell.cu
PERSISTENT_MAX_UNITS = 64
_DEFAULT_DYNAMIC_SHARED = 48 * 1024   # above this a kernel must opt in (cudaFuncAttributeMaxDynamicSharedMemorySize)
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
    """Check each named array has ``dtype`` and the shape given with it: ``name=(array, shape)``."""
    for argument, (a, shape) in arrays.items():
        launch.check_device_array(a, kernel, argument, dtype=dtype, shape=shape)


def _launch_cells(kernel, arrays, n, u):
    if n * u:
        grid, block = launch.grid_1d(n * u, _THREADS)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, tuple(arrays) + (numpy.int32(n), numpy.int32(u)))


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


def lstm_cell_backward_cuda(dh, dc_next, gates, c, c_prev, dz, dc_prev):
    """Launcher of ``lstm_cell_bwd_{f32,f64}``: one LSTM step's gradient through the cell.

    ``dh`` (N, U): the whole gradient of h_t; ``dc_next`` (N, U) that of c_t from step t+1, or None
    (zeros, the last step); ``gates`` (N, 4U), ``c`` = c_t and ``c_prev`` = c_{t-1} (N, U) from the
    forward. Writes ``dz`` (N, 4U), the gradient of the pre-activations (i, f, g, o), and ``dc_prev``
    (N, U); ``dc_prev`` may be ``dc_next`` itself. Returns ``(dz, dc_prev)``.
    """
    kernel = _kernel("lstm_cell_bwd", dh, "dh")
    n, u = _matrix(dh, kernel, "dh")
    arrays = dict(gates=(gates, (n, 4 * u)), c=(c, (n, u)), c_prev=(c_prev, (n, u)), dz=(dz, (n, 4 * u)),
                  dc_prev=(dc_prev, (n, u)))
    if dc_next is not None:
        arrays["dc_next"] = (dc_next, (n, u))
    _same(kernel, dh.dtype, **arrays)
    _launch_cells(kernel, (dh, launch.optional(dc_next), gates, c, c_prev, dz, dc_prev), n, u)
    return dz, dc_prev


# -------------------------------------------------------------------------------------------- GRU
def gru_cell_forward_cuda(xw, hr, h_prev, h, gates):
    """Launcher of ``gru_cell_fwd_{f32,f64}``: one GRU (reset_after) step's elementwise part.

    ``xw`` (N, 3U) = x_t @ kernel + bias[0]; ``hr`` (N, 3U) = h_{t-1} @ recurrent_kernel + bias[1]
    (the caller adds the recurrent bias: the kernel takes none); ``h_prev`` (N, U). Writes ``h``
    (N, U) and ``gates`` (N, 4U): z, r, hh (the candidate) and hr_h (hr's h block, which backward
    needs). Returns ``(h, gates)``.
    """
    kernel = _kernel("gru_cell_fwd", xw, "xw")
    n, width = _matrix(xw, kernel, "xw", 3)
    u = _units(width, 3, kernel, "xw")
    _same(kernel, xw.dtype, hr=(hr, (n, 3 * u)), h_prev=(h_prev, (n, u)), h=(h, (n, u)),
          gates=(gates, (n, 4 * u)))
    _launch_cells(kernel, (xw, hr, h_prev, h, gates), n, u)
    return h, gates


def gru_cell_backward_cuda(dh, gates, h_prev, dxw, dhr, dh_prev):
    """Launcher of ``gru_cell_bwd_{f32,f64}``: one GRU step's gradient through the cell.

    ``dh`` (N, U): the whole gradient of h_t; ``gates`` (N, 4U) from the forward; ``h_prev`` (N, U).
    Writes ``dxw`` (N, 3U), the gradient of x_t @ kernel + bias[0]; ``dhr`` (N, 3U), that of
    h_{t-1} @ recurrent_kernel + bias[1]; ``dh_prev`` (N, U) = dh * z, the direct part of h_{t-1}'s
    gradient (the caller adds dhr @ recurrent_kernel^T). ``dh_prev`` may be ``dh`` itself.
    Returns ``(dxw, dhr, dh_prev)``.
    """
    kernel = _kernel("gru_cell_bwd", dh, "dh")
    n, u = _matrix(dh, kernel, "dh")
    _same(kernel, dh.dtype, gates=(gates, (n, 4 * u)), h_prev=(h_prev, (n, u)), dxw=(dxw, (n, 3 * u)),
          dhr=(dhr, (n, 3 * u)), dh_prev=(dh_prev, (n, u)))
    _launch_cells(kernel, (dh, gates, h_prev, dxw, dhr, dh_prev), n, u)
    return dxw, dhr, dh_prev


# ----------------------------------------------------------------------------- persistent LSTM forward
@functools.lru_cache(maxsize=None)
def _device_limits(device_id: int):
    """(multiprocessors, opt-in maximum of dynamic shared memory per block in bytes) of a device."""
    import cupy
    runtime = cupy.cuda.runtime
    sms = runtime.deviceGetAttribute(getattr(runtime, "cudaDevAttrMultiProcessorCount", 16), device_id)
    shared = runtime.deviceGetAttribute(getattr(runtime, "cudaDevAttrMaxSharedMemoryPerBlockOptin", 97), device_id)
    return int(sms), int(shared)


def _current_limits():
    import cupy
    return _device_limits(cupy.cuda.runtime.getDevice())


# Shared memory per sample of a tile, in values: two buffers of h (forward) or of dz (backward).
_PER_SAMPLE = {"fwd": 2, "bwd": 8}


def _shared_bytes(u, nb, itemsize, direction):
    """Dynamic shared memory of a persistent kernel: R (4U*U values) and the tile's two step buffers."""
    return (4 * u * u + _PER_SAMPLE[direction] * nb * u) * itemsize


def _tile(n, u, itemsize, sms, shared_max, direction):
    """Samples per block: about one block per multiprocessor, within the thread and shared-memory limits."""
    nb = max(1, -(-n // sms))
    nb = min(nb, _PERSISTENT_MAX_THREADS // u, (shared_max // itemsize - 4 * u * u) // (_PER_SAMPLE[direction] * u))
    return max(1, nb)


def persistent_applies(n, u, dtype) -> bool:
    """True when the persistent LSTM kernels (forward and backward) run batch ``n``, ``u`` units and ``dtype`` here.

    That is 1 <= U <= 64 (PERSISTENT_MAX_UNITS), N >= 1, float32 or float64, and the recurrent kernel
    (4U*U values) plus one sample's two dz buffers (8U values; the forward's h buffers take 2U) fit in
    the current device's shared memory (float64 at U = 64 needs 132 KiB: A100 and H100 have it, GPUs
    with 99 KiB per block do not).
    """
    try:
        dtype = numpy.dtype(dtype)
        n, u = int(n), int(u)
    except (TypeError, ValueError):
        return False
    if dtype not in (numpy.float32, numpy.float64) or not 1 <= u <= PERSISTENT_MAX_UNITS or n < 1:
        return False
    try:
        _, shared_max = _current_limits()
    except Exception:   # no CuPy or no device: nothing to run it on
        return False
    return _shared_bytes(u, 1, dtype.itemsize, "bwd") <= shared_max


def _allow_shared(function, nbytes):
    """Raise the kernel's dynamic shared memory limit to ``nbytes`` when it is above the 48 KiB default.

    The limit belongs to the loaded function (per module and device), so it is read back on every launch
    (one cheap driver query) rather than remembered here, where a reloaded module would not be seen.
    """
    if nbytes > _DEFAULT_DYNAMIC_SHARED and function.max_dynamic_shared_size_bytes < nbytes:
        function.max_dynamic_shared_size_bytes = nbytes


def lstm_sequence_forward_persistent_cuda(xw, recurrent_kernel, h0, c0, h_seq, c_seq, gates):
    """Launcher of ``lstm_persistent_fwd_{f32,f64}``: a whole LSTM forward sequence in one launch (U <= 64).

    ``xw`` (T, N, 4U): every step's x_t @ kernel + bias, time-major; ``recurrent_kernel`` (U, 4U);
    ``h0``, ``c0`` (N, U) the initial state. Writes ``h_seq`` and ``c_seq`` (T+1, N, U): index 0
    receives h0 and c0 (which may be ``h_seq[0]`` and ``c_seq[0]`` themselves), index t+1 the state
    after step t (so ``h_seq[1:]`` is the layer's output sequence); and ``gates`` (T, N, 4U), the
    activated i, f, g, o of every step as ``lstm_cell_forward_cuda`` writes them, for the backward.
    Equal to T steps of ``hr = h @ recurrent_kernel`` and ``lstm_cell_forward_cuda`` up to the rounding
    of the recurrent product (summed in ascending k with FMAs rather than in cuBLAS's order).
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
    product (summed in ascending order with FMAs rather than in cuBLAS's). Raises ValueError where
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
                         f"recurrent kernel in shared memory; units = {u} ({dtype.name}) does not fit on this "
                         "device: use the step loop (lstm_cell_forward_cuda, lstm_cell_backward_cuda).")


def _launch_persistent(kernel, direction, arrays, steps, n, u, dtype):
    """One block per tile of NB samples, one thread per (sample, unit), R and the step buffers in shared memory."""
    sms, shared_max = _current_limits()
    itemsize = dtype.itemsize
    nb = _tile(n, u, itemsize, sms, shared_max, direction)
    threads = -(-nb * u // 32) * 32
    nbytes = _shared_bytes(u, nb, itemsize, direction)
    function = get_kernel(_KERNEL_FILE, kernel)
    _allow_shared(function, nbytes)
    function((-(-n // nb),), (threads,), tuple(launch.optional(a) for a in arrays)
             + (numpy.int32(steps), numpy.int32(n), numpy.int32(u), numpy.int32(nb)), shared_mem=nbytes)
