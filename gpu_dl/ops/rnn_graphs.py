"""The LSTM and GRU step loops on the GPU as captured CUDA graphs, replayed on later calls of the same shapes.

Why: at large batches and hidden sizes a step of ``gpu_dl.ops.rnn``'s unmasked fused loops is one product
h_t @ recurrent_kernel and one cell launch, microseconds of GPU work each, while the host spends more than
that issuing them: the loop is host-bound. A graph issues all 2T launches with one ``cudaGraphLaunch``.

What runs as a graph: the loops ``rnn._lstm_forward_fused_steps``, ``rnn._lstm_backward_fused_steps``,
``rnn._gru_forward_fused_steps`` and ``rnn._gru_backward_fused_steps`` serve (CuPy arrays, tanh/sigmoid
cells, no recurrent or step masks, above the persistent kernels' 64 units for the LSTM), with the same
kernels, the same products and the same order, so the results are the eager loop's bit for bit. Everything
else (NumPy, masks, other activations, the persistent kernels) is untouched.

A graph bakes in every pointer, so each signature (cell and direction, T, N, U, dtype, device, which optional
inputs there are) owns a workspace of static buffers, allocated before its capture:

- inputs are copied in on the current stream before each replay (the forward's input projection is written
  there directly), the recurrent kernel too (weights may be replaced by new arrays);
- the graph is launched on the current stream, so it is ordered with the work around it as any launch is;
- outputs are copied out into fresh arrays after it, so nothing a caller keeps is overwritten by a later
  replay (a layer called twice before its backward, two layers of one shape, an output the user keeps).

Capture happens at a signature's first call, on a private non-blocking stream (CUDA cannot capture the legacy
default stream), and is followed by a launch (a capture runs nothing). Nothing may be allocated while
capturing: a block the pool hands out then would be baked into the graph and handed to someone else once its
array died. The capture runs under ``cupy.cuda.using_allocator`` with a counting wrapper around whatever
allocator is current (gpu_dl's caching pool, CuPy's, or cudaMalloc per array: ``GPU_DL_ALLOCATOR``), so any
allocation is seen. If one happened, or the capture or instantiation raised (a CUDA or cuBLAS error), the
capture is ended, the graph dropped, the signature remembered as not capturable and its call (and every later
one) runs the eager loop: a refused graph costs speed, a wrong one would cost results.

Workspaces live in a small LRU cache (``ENTRIES`` signatures); an evicted one's buffers are freed after the
stream they were allocated on waits for its last replay. A replay on a stream other than the last one's waits
for that one's replay first. The cache is per process and not thread-safe: one thread at a time runs the
recurrent layers, as gpu_dl's training loop does. ``gpu_dl.backend.set_rnn_graphs(False)`` (or
``GPU_DL_RNN_GRAPHS=0``) turns graphs off and frees the cache at the next recurrent call; so does ``clear()``.
Nothing is captured while the current stream is itself capturing (someone else's graph): the eager loop is then
what that capture records.
"""
from __future__ import annotations

import collections
import gc
import types

from ..backend import config, launch
from . import rnn
from .convolution import is_cupy

ENTRIES = 8             # workspaces kept: forward and backward of a few layer shapes (and a last, smaller batch)
_REFUSED_KEPT = 64      # signatures remembered as not capturable

_cache: "collections.OrderedDict" = collections.OrderedDict()      # signature -> _Workspace, least recent first
_refused: "collections.OrderedDict" = collections.OrderedDict()    # signature -> why its capture was refused
_counts = collections.Counter()    # "captures", "replays", "refusals"


class _Workspace:
    """A signature's static buffers (``buffers``), its graph once captured, and where it was last used."""

    def __init__(self, cupy, buffers):
        self.buffers, self.graph = buffers, None
        self.home = cupy.cuda.get_current_stream()     # the stream its buffers were allocated for
        self.event = cupy.cuda.Event(disable_timing=True)
        self.last = None                                # the stream of its last replay

    def begin(self, stream):
        # the buffers are shared by every replay: one on another stream waits for the last one to finish
        if self.last is not None and self.last.ptr != stream.ptr:
            stream.wait_event(self.event)

    def end(self, stream):
        self.event.record(stream)
        self.last = stream

    def release(self):
        if self.last is not None and self.last.ptr != self.home.ptr:
            self.home.wait_event(self.event)     # the pool reuses freed blocks on the allocating stream
        self.buffers = self.graph = None


# --------------------------------------------------------------------------------------------- the cache
def clear() -> None:
    """Free every workspace and graph and forget the refused signatures and the counts."""
    while _cache:
        _cache.popitem(last=False)[1].release()
    _refused.clear()
    _counts.clear()


def stats() -> dict:
    """Counts since the last ``clear()``: captures, replays (graph launches) and refusals; the signatures cached and
    those refused (with why)."""
    return {"captures": _counts["captures"], "replays": _counts["replays"], "refusals": _counts["refusals"],
            "cached": list(_cache), "refused": dict(_refused)}


def _active(x) -> bool:
    """Whether this call may replay a graph: graphs on, a CuPy ``x``, and the current stream not capturing."""
    if not config.rnn_graphs():
        if _cache or _refused:
            clear()
        return False
    if not is_cupy(x):
        return False
    import cupy
    try:
        return not cupy.cuda.get_current_stream().is_capturing()
    except Exception:   # e.g. the legacy stream queried while another stream captures in global mode: stay eager
        return False


def _loop(x, recurrent_kernel):
    """``(cupy, T, N, U, dtype)`` of a loop over time-major ``x`` that may replay a graph; None where it runs
    eagerly (``_active`` says no, or the loop is empty: no steps to capture)."""
    t, n, _ = x.shape
    u = recurrent_kernel.shape[0]
    if not t * n * u or not _active(x):
        return None
    import cupy
    return cupy, t, n, u, x.dtype


def _signature(kind, x, steps, n, u, *flags):
    import cupy
    return (kind, steps, n, u, x.dtype.str, cupy.cuda.runtime.getDevice()) + flags


def _workspace(signature, allocate):
    """The workspace of ``signature``, its buffers made by ``allocate()`` at first use; None if it was refused."""
    if signature in _refused:
        return None
    workspace = _cache.get(signature)
    if workspace is not None:
        _cache.move_to_end(signature)
        return workspace
    import cupy
    workspace = _cache[signature] = _Workspace(cupy, allocate())
    while len(_cache) > ENTRIES:
        _cache.popitem(last=False)[1].release()
    return workspace


def _refuse(signature, reason):
    _cache.pop(signature).release()
    _refused[signature] = reason
    while len(_refused) > _REFUSED_KEPT:
        _refused.popitem(last=False)
    _counts["refusals"] += 1


def _capture(cupy, loop):
    """(graph, None) of ``loop()`` captured on a private stream, or (None, why) where it cannot be trusted."""
    allocations, allocator = [0], cupy.cuda.get_allocator()

    def counting(nbytes):
        allocations[0] += 1
        return allocator(nbytes)
    stream = cupy.cuda.Stream(non_blocking=True)
    graph, error = None, None
    # no garbage collection in the capture window: a finaliser freeing memory there (cudaFree per array with
    # GPU_DL_ALLOCATOR=raw) would be a device call inside the capture
    collecting = gc.isenabled()
    gc.disable()
    try:
        with stream, cupy.cuda.using_allocator(counting):
            graph, error = _captured(stream, loop)
    finally:
        if collecting:
            gc.enable()
    if error is not None:
        return None, f"the capture raised {type(error).__name__}: {error}"
    if allocations[0]:
        return None, f"{allocations[0]} device allocation(s) while capturing"
    return graph, None


def _captured(stream, loop):
    """(graph or None, the error that made it unusable or None) of ``loop()`` captured on ``stream``."""
    try:
        stream.begin_capture()
    except Exception as exc:
        return None, exc
    error = None
    try:
        loop()
    except Exception as exc:    # anything the loop raised while capturing: the capture is unusable
        error = exc
    try:
        graph = stream.end_capture()    # also instantiates the graph; raises for an invalidated capture
    except Exception as exc:
        return None, error or exc
    return (None, error) if error is not None else (graph, None)


def _replay(signature, workspace, bind, stream):
    """Launch ``workspace``'s graph on ``stream``, capturing it first at the signature's first call; False where
    the capture was refused (the caller runs the eager loop). ``bind()`` checks the buffers and binds the kernels
    (host work, before any capture) and returns the loop to capture."""
    if workspace.graph is None:
        import cupy
        graph, reason = _capture(cupy, bind())
        if graph is None:
            _refuse(signature, reason)
            return False
        workspace.graph = graph
        _counts["captures"] += 1
    workspace.graph.launch(stream=stream)
    _counts["replays"] += 1
    return True


def _run(signature, allocate, fill, bind, outputs):
    """The graph path of one call: the workspace, its inputs filled (``fill(buffers)``), the replay and the
    outputs (``outputs(buffers)``, fresh arrays); None where this call runs eagerly."""
    workspace = _workspace(signature, allocate)
    if workspace is None:
        return None
    import cupy
    stream = cupy.cuda.get_current_stream()
    workspace.begin(stream)
    buffers = workspace.buffers
    fill(buffers)
    if not _replay(signature, workspace, lambda: bind(buffers), stream):
        return None
    result = outputs(buffers)
    workspace.end(stream)
    return result


# ------------------------------------------------------------------------------------------ buffers
def _empty(cupy, shape, dtype):
    return cupy.empty(shape, dtype=dtype)


def _set_state(target, state):
    """Index 0 of a state sequence (or a state-gradient buffer): a copy of ``state``, or zeros where it is None."""
    if state is None:
        target.fill(0)
    else:
        target[...] = state


def _copy_in(target, source):
    target[...] = source


def _projection_into(buffer, x, kernel, bias, input_mask):
    """The input projection written into the static ``buffer``, directly where it is a product of x's dtype."""
    if input_mask is None and kernel.dtype == x.dtype:
        rnn.input_projection(x, kernel, bias, None, out=buffer)
    else:
        buffer[...] = rnn.input_projection(x, kernel, bias, input_mask)


def _state_buffers(cupy, t, n, u, dtype, sequences):
    """``sequences`` state sequences (T+1, N, U) in one allocation, as ``rnn._sequences`` makes them."""
    return _empty(cupy, (sequences, t + 1, n, u), dtype)


# ----------------------------------------------------------------------------------------------- LSTM
def lstm_forward(x, kernel, recurrent_kernel, bias, h0, c0, input_mask, training=True):
    """(h, c, gates) of ``rnn.lstm_forward``'s unmasked fused step loop, replayed from a graph (fresh arrays; gates
    None unless ``training``: only the backward reads them); None where this call runs eagerly (graphs off, not
    CuPy, an empty loop, inside another capture, or a refused signature)."""
    loop = _loop(x, recurrent_kernel)
    if loop is None:
        return None
    cupy, t, n, u, dtype = loop

    def allocate():
        states = _state_buffers(cupy, t, n, u, dtype, 2)
        return types.SimpleNamespace(xw=_empty(cupy, (t, n, 4 * u), dtype), hr=_empty(cupy, (n, 4 * u), dtype),
                                     recurrent_kernel=_empty(cupy, (u, 4 * u), dtype), states=states,
                                     h=states[0], c=states[1], gates=_empty(cupy, (t, n, 4 * u), dtype))

    def fill(b):
        _projection_into(b.xw, x, kernel, bias, input_mask)
        _copy_in(b.recurrent_kernel, recurrent_kernel)
        launch.poison(b.states)         # the tests' NaN where the loop writes (a no-op otherwise)
        launch.poison(b.gates)
        _set_state(b.h[0], h0)
        _set_state(b.c[0], c0)

    def bind(b):
        from .rnn_kernels import lstm_cell_forward_steps
        cell = lstm_cell_forward_steps(b.xw, b.hr, b.h, b.c, b.gates)
        return lambda: rnn._forward_loop(cupy.dot, cell, b.h, b.recurrent_kernel, b.hr)

    def outputs(b):
        states = b.states.copy()
        return states[0], states[1], (b.gates.copy() if training else None)
    return _run(_signature("lstm_forward", x, t, n, u), allocate, fill, bind, outputs)


def lstm_backward(saved, dh_seq, dh_last, dc_last):
    """(dz, dh0, dc0) of ``rnn.lstm_backward``'s unmasked fused step loop, replayed from a graph (fresh arrays);
    None where this call runs eagerly."""
    x, _, recurrent_kernel, _, c, gates = saved[:6]
    loop = _loop(x, recurrent_kernel)
    if loop is None:
        return None
    cupy, t, n, u, dtype = loop

    def allocate():
        grads = _empty(cupy, (2, n, u), dtype)
        return types.SimpleNamespace(
            gates=_empty(cupy, (t, n, 4 * u), dtype), c=_empty(cupy, (t + 1, n, u), dtype),
            recurrent_kernel=_empty(cupy, (u, 4 * u), dtype),
            dh_seq=None if dh_seq is None else _empty(cupy, (t, n, u), dtype),
            dz=_empty(cupy, (t, n, 4 * u), dtype), grads=grads, dh=grads[0], dc=grads[1])

    def fill(b):
        for target, source in ((b.gates, gates), (b.c, c), (b.recurrent_kernel, recurrent_kernel),
                               (b.dh_seq, dh_seq)):
            if source is not None:
                _copy_in(target, source)
        _set_state(b.dh, dh_last)
        _set_state(b.dc, dc_last)
        launch.poison(b.dz)

    def bind(b):
        from .rnn_kernels import lstm_cell_backward_steps
        cell = lstm_cell_backward_steps(b.dh, b.dh_seq, b.dc, b.gates, b.c, b.dz)
        recurrent_t = b.recurrent_kernel.T
        return lambda: rnn._backward_loop(cupy.dot, cell, b.dz, recurrent_t, b.dh)

    def outputs(b):
        grads = b.grads.copy()
        return b.dz.copy(), grads[0], grads[1]
    return _run(_signature("lstm_backward", x, t, n, u, dh_seq is not None), allocate, fill, bind, outputs)


# ------------------------------------------------------------------------------------------------ GRU
def gru_forward(x, kernel, recurrent_kernel, bias, h0, input_mask, training=True):
    """(h, gates) of ``rnn.gru_forward``'s unmasked fused step loop (reset_after), replayed from a graph (fresh
    arrays; gates None unless ``training``); None where this call runs eagerly. ``bias`` (2, 3U) or None."""
    loop = _loop(x, recurrent_kernel)
    if loop is None:
        return None
    cupy, t, n, u, dtype = loop

    def allocate():
        states = _state_buffers(cupy, t, n, u, dtype, 1)
        return types.SimpleNamespace(xw=_empty(cupy, (t, n, 3 * u), dtype), hr=_empty(cupy, (n, 3 * u), dtype),
                                     recurrent_kernel=_empty(cupy, (u, 3 * u), dtype),
                                     hr_bias=None if bias is None else _empty(cupy, (3 * u,), dtype),
                                     h=states[0], gates=_empty(cupy, (t, n, 4 * u), dtype))

    def fill(b):
        _projection_into(b.xw, x, kernel, None if bias is None else bias[0], input_mask)
        _copy_in(b.recurrent_kernel, recurrent_kernel)
        if bias is not None:
            _copy_in(b.hr_bias, bias[1])
        launch.poison(b.h)
        launch.poison(b.gates)
        _set_state(b.h[0], h0)

    def bind(b):
        from .rnn_kernels import gru_cell_forward_steps
        cell = gru_cell_forward_steps(b.xw, b.hr, b.hr_bias, b.h, b.gates)
        return lambda: rnn._forward_loop(cupy.dot, cell, b.h, b.recurrent_kernel, b.hr)

    def outputs(b):
        return b.h.copy(), (b.gates.copy() if training else None)
    return _run(_signature("gru_forward", x, t, n, u, bias is not None), allocate, fill, bind, outputs)


def gru_backward(saved, dh_seq, dh_last):
    """(dxw, dhr, dh0) of ``rnn.gru_backward``'s unmasked fused step loop, replayed from a graph (fresh arrays);
    None where this call runs eagerly."""
    x, recurrent_kernel, h, gates = (saved[i] for i in (0, 2, 4, 5))
    loop = _loop(x, recurrent_kernel)
    if loop is None:
        return None
    cupy, t, n, u, dtype = loop

    def allocate():
        grads = _empty(cupy, (2, n, u), dtype)
        return types.SimpleNamespace(
            gates=_empty(cupy, (t, n, 4 * u), dtype), h=_empty(cupy, (t + 1, n, u), dtype),
            recurrent_kernel=_empty(cupy, (u, 3 * u), dtype),
            dh_seq=None if dh_seq is None else _empty(cupy, (t, n, u), dtype),
            dxw=_empty(cupy, (t, n, 3 * u), dtype), dhr=_empty(cupy, (t, n, 3 * u), dtype),
            through_product=grads[0], direct=grads[1])

    def fill(b):
        for target, source in ((b.gates, gates), (b.h, h), (b.recurrent_kernel, recurrent_kernel),
                               (b.dh_seq, dh_seq)):
            if source is not None:
                _copy_in(target, source)
        _set_state(b.through_product, dh_last)
        _set_state(b.direct, None)
        launch.poison(b.dxw)
        launch.poison(b.dhr)

    def bind(b):
        from .rnn_kernels import gru_cell_backward_steps
        cell = gru_cell_backward_steps(b.through_product, b.direct, b.dh_seq, b.gates, b.h, b.dxw, b.dhr)
        recurrent_t = b.recurrent_kernel.T
        return lambda: rnn._backward_loop(cupy.dot, cell, b.dhr, recurrent_t, b.through_product)

    def outputs(b):
        # the eager loop's h0 gradient, the same sum in the same order
        return b.dxw.copy(), b.dhr.copy(), b.direct + b.through_product
    return _run(_signature("gru_backward", x, t, n, u, dh_seq is not None), allocate, fill, bind, outputs)
