"""Connectionist temporal classification (CTC): the forward-backward recursion in log space.

``ctc_loss(labels, logits, want_grad=True)`` returns ``(loss, dlogits)``; ``ctc_forward`` and
``ctc_backward`` are its two halves, for a caller that wants the loss now and its gradient later:

- ``labels`` (B, L), integer class ids. Row b's label sequence is its first
  ``n_b`` entries, ``n_b`` the number of its nonzero entries: class 0 is the
  blank, which pads the rows at their end (Keras's convention);
- ``logits`` (B, T, C), a float array: ``log_softmax`` over the last axis
  gives each step's log-probabilities, all T steps count;
- ``loss`` (B,): ``-log`` of the total probability of the T-step paths that
  collapse (merge repeated classes, then drop blanks) to the label sequence.
  A sequence needs ``n + (adjacent repeats)`` steps (a blank must separate
  repeats); where T is shorter no path exists and the loss is +inf, as
  ``torch.nn.functional.ctc_loss`` (without ``zero_infinity``) gives it;
- ``dlogits`` (B, T, C): d loss_b / d logits_b, None unless ``want_grad``.
  Rows of loss +inf get 0: their loss does not change with the logits
  (torch's backward gives NaN there).

The recursion (Graves et al., 2006) runs over the extended sequence of
S = 2L + 1 symbols, blanks at the even positions and the labels at the odd
ones: ``alpha[t, s]`` is the log-probability of the first t + 1 steps ending
at symbol s, ``beta[t, s]`` that of steps t + 1 .. T - 1 given symbol s at
step t. On NumPy (and on CuPy arrays of other float dtypes) each step is a
few array operations over (B, S) and the loop over the T steps is Python: the
readable path, and the reference the kernels are tested against.

On CuPy float32/float64 arrays the recursion runs in ``kernels/ctc.cu``:
``log_softmax`` is a few array operations, then one launch of ``ctc_alpha``
(the whole alpha pass and the log-likelihood, one thread block per sample,
the T steps looping inside the kernel), and for the gradient one launch each
of ``ctc_beta`` and ``ctc_grad``: a fixed number of launches whatever T is,
and no read back to the host. The launchers below are the only code that
knows those kernels' geometry.

Every output has the logits' dtype. Class ids are not range-checked here (the
loss checks its targets on the host; the kernels read an id outside [0, C) as
an impossible emission rather than out of bounds).
"""
from __future__ import annotations

import numpy

from ..backend import array_module
from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "ctc.cu"
_RECURSION_THREADS = 256   # CTC_RECURSION_THREADS in ctc.cu: at most this many threads per sample
_GRAD_THREADS = 128        # CTC_GRAD_THREADS in ctc.cu: one block per (sample, step)
_OPS = ("ctc_alpha", "ctc_beta", "ctc_grad")


def kernel_names() -> set:
    """The ``extern "C"`` names of ctc.cu that these launchers use."""
    return {f"{op}_{suffix}" for op in _OPS for suffix in ("f32", "f64")}


def _check(labels, logits):
    if logits.ndim != 3 or labels.ndim != 2 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"ctc_loss: needs `labels` (batch, max_label_length) and `logits` (batch, time_steps, "
                         f"num_classes) of one batch size; got {labels.shape} and {logits.shape}.")
    if logits.dtype.kind != "f":
        raise TypeError(f"ctc_loss: `logits` must be a float array, got dtype {logits.dtype}.")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"ctc_loss: `labels` must hold integer class ids, got dtype {labels.dtype}.")
    if logits.shape[1] < 1 or logits.shape[2] < 1:
        raise ValueError(f"ctc_loss: `logits` needs at least one time step and one class, got {logits.shape}.")


def _log_softmax(xp, x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def _setup(xp, labels, logits):
    """Log-probabilities, the symbols' emissions (T, B, S), skip penalties and end-of-sequence masks."""
    batch, steps, _ = logits.shape
    width = 2 * labels.shape[1] + 1
    dtype = logits.dtype
    neg_inf = dtype.type(-numpy.inf)
    labels = labels.astype(xp.int64, copy=False)
    count = (labels != 0).sum(axis=1)
    logp = _log_softmax(xp, logits)
    symbols = xp.zeros((batch, width), dtype=xp.int64)
    symbols[:, 1::2] = labels
    # emit[t, b, s] = logp[b, t, symbols[b, s]]
    emit = logp.transpose(1, 0, 2)[:, xp.arange(batch)[:, None], symbols]
    # A label may be reached from two symbols back (skipping a blank) unless it repeats the label before it.
    skip = xp.full((batch, width), neg_inf, dtype=dtype)
    skip[:, 3::2] = xp.where(labels[:, 1:] != labels[:, :-1], dtype.type(0), neg_inf)
    position = xp.arange(width)[None, :]
    ends = (position == 2 * count[:, None]) | (position == 2 * count[:, None] - 1)
    return logp, emit, skip, ends, steps, neg_inf


def _forward(xp, emit, skip, neg_inf):
    """alpha (T, B, S); two columns of -inf on the left stand for the symbols before the first."""
    steps, batch, width = emit.shape
    a = xp.full((steps, batch, width + 2), neg_inf, dtype=emit.dtype)
    a[0, :, 2:4] = emit[0, :, :2]
    for t in range(1, steps):
        prev = a[t - 1]
        x = xp.logaddexp(prev[:, 2:], prev[:, 1:-1])
        a[t, :, 2:] = xp.logaddexp(x, prev[:, :-2] + skip) + emit[t]
    return a[:, :, 2:]


def _backward(xp, emit, skip, ends, neg_inf):
    """beta without step t's own emission, (T, B, S): log-probability of steps t + 1 .. T - 1 given symbol s at
    step t. Leaving the emission out lets alpha + beta be each symbol's log-occupancy with no subtraction."""
    steps, batch, width = emit.shape
    dtype = emit.dtype
    rest = xp.empty((steps, batch, width), dtype=dtype)
    rest[steps - 1] = xp.where(ends, dtype.type(0), neg_inf)
    nxt = xp.full((batch, width + 2), neg_inf, dtype=dtype)   # beta at t + 1, emission included; -inf pad right
    skip_from = xp.full((batch, width + 2), neg_inf, dtype=dtype)
    skip_from[:, :width] = skip
    skip_from = skip_from[:, 2:]                               # whether s may jump to s + 2
    for t in range(steps - 2, -1, -1):
        nxt[:, :width] = rest[t + 1] + emit[t + 1]
        x = xp.logaddexp(nxt[:, :width], nxt[:, 1:width + 1])
        rest[t] = xp.logaddexp(x, nxt[:, 2:] + skip_from)
    return rest


def _log_likelihood(xp, alpha_last, ends, neg_inf):
    """log p(labels) from the last step's alpha, summed over the sequence's last label and the blank after it."""
    picked = xp.where(ends, alpha_last, neg_inf)
    top = picked.max(axis=1)
    shift = xp.where(xp.isfinite(top), top, alpha_last.dtype.type(0))
    # At most two terms are finite; an all -inf row gives log(0) = -inf, the impossible sequence.
    with numpy.errstate(divide="ignore"):
        return xp.log(xp.exp(picked - shift[:, None]).sum(axis=1)) + shift


def _uses_kernels(xp, logits):
    return xp is not numpy and logits.dtype in (numpy.float32, numpy.float64)


def ctc_forward(labels, logits):
    """(loss (B,), saved): the per-sample CTC loss of ``labels`` (B, L) under ``logits`` (B, T, C), and what
    ``ctc_backward`` needs for its gradient (the alpha pass is not run twice)."""
    xp = array_module(labels, logits)
    _check(labels, logits)
    if _uses_kernels(xp, logits):
        logp = xp.ascontiguousarray(_log_softmax(xp, logits))
        labels = xp.ascontiguousarray(labels, dtype=xp.int64)
        alpha, log_likelihood, loss = ctc_alpha_cuda(logp, labels)
        return loss, _KernelState(labels, logp, alpha, log_likelihood)
    logp, emit, skip, ends, steps, neg_inf = _setup(xp, labels, logits)
    alpha = _forward(xp, emit, skip, neg_inf)
    log_likelihood = _log_likelihood(xp, alpha[steps - 1], ends, neg_inf)
    saved = (labels, logp, emit, skip, ends, neg_inf, alpha, log_likelihood)
    return (-log_likelihood).astype(logits.dtype, copy=False), saved


def ctc_backward(saved):
    """d loss / d logits (B, T, C) from ``ctc_forward``'s ``saved``."""
    if isinstance(saved, _KernelState):
        beta = ctc_beta_cuda(saved.logp, saved.labels)
        return ctc_grad_cuda(saved.logp, saved.labels, saved.alpha, beta, saved.log_likelihood)
    labels, logp, emit, skip, ends, neg_inf, alpha, log_likelihood = saved
    xp = array_module(logp)
    rest = _backward(xp, emit, skip, ends, neg_inf)
    dtype = logp.dtype
    possible = xp.isfinite(log_likelihood)
    scale = xp.where(possible, log_likelihood, dtype.type(0))
    # Occupancy of each symbol at each step, (B, T, S); zero on impossible rows (alpha + beta = -inf there).
    occupancy = xp.exp(alpha + rest - scale[None, :, None]).transpose(1, 0, 2)
    onehot = (labels.astype(xp.int64, copy=False)[:, :, None] == xp.arange(logp.shape[2])).astype(dtype)
    dlogp = -xp.matmul(occupancy[:, :, 1::2], onehot)          # the label symbols, onto their classes
    dlogp[:, :, 0] -= occupancy[:, :, 0::2].sum(axis=2)         # the blanks, onto class 0
    # Through log_softmax: d/dz = g - softmax * sum(g) (sum(g) = -1 on possible rows, 0 on the others).
    dlogits = dlogp - xp.exp(logp) * dlogp.sum(axis=2, keepdims=True)
    return dlogits.astype(dtype, copy=False)


def ctc_loss(labels, logits, want_grad=True):
    """Per-sample CTC loss (B,) of ``labels`` (B, L) under ``logits`` (B, T, C), and d loss / d logits (None
    unless ``want_grad``)."""
    loss, saved = ctc_forward(labels, logits)
    return loss, (ctc_backward(saved) if want_grad else None)


# ----------------------------------------------------------------------------------- CUDA launchers
class _KernelState:
    """What the kernel path's backward needs: int64 labels (B, L), logp (B, T, C), alpha (T, B, S) and the
    log-likelihood (B,), all C-contiguous CuPy arrays."""

    __slots__ = ("labels", "logp", "alpha", "log_likelihood")

    def __init__(self, labels, logp, alpha, log_likelihood):
        self.labels, self.logp, self.alpha, self.log_likelihood = labels, logp, alpha, log_likelihood


def _kernel_inputs(op, logp, labels):
    """(kernel name, B, T, C, L, S) after checking ``logp`` (B, T, C) float and ``labels`` (B, L) int64."""
    name = f"{op}_{launch.float_suffix(logp.dtype, op, 'logp')}"
    launch.check_device_array(logp, name, "logp")
    if logp.ndim != 3 or logp.shape[1] < 1 or logp.shape[2] < 1:
        raise ValueError(f"{name}: `logp` must have shape (batch, time_steps, num_classes), with at least one "
                         f"step and one class; got {tuple(logp.shape)}.")
    batch, steps, classes = logp.shape
    if labels.ndim != 2 or labels.shape[0] != batch:
        raise ValueError(f"{name}: `labels` must have shape ({batch}, max_label_length), got {tuple(labels.shape)}.")
    launch.check_device_array(labels, name, "labels", dtype=numpy.int64)
    length = labels.shape[1]
    width = 2 * length + 1
    if steps * batch * width >= 2**31:
        raise ValueError(f"{name}: alpha and beta of shape ({steps}, {batch}, {width}) would have 2**31 elements "
                         "or more; kernels index with 32-bit integers. Split the batch.")
    return name, batch, steps, classes, length, width


def _recursion_threads(width):
    """Threads per sample of ctc_alpha / ctc_beta: the S symbols rounded up to a warp, at most 256."""
    return min(_RECURSION_THREADS, 32 * ((width + 31) // 32))


def ctc_alpha_cuda(logp, labels):
    """Launcher of ``ctc_alpha_{f32,f64}``: (alpha (T, B, S), log_likelihood (B,), loss (B,)) from ``logp``
    (B, T, C), the log-softmax of the logits, and int64 ``labels`` (B, L). One block per sample."""
    name, batch, steps, classes, length, width = _kernel_inputs("ctc_alpha", logp, labels)
    dtype = logp.dtype
    alpha = launch.empty_output((steps, batch, width), dtype)
    log_likelihood = launch.empty_output((batch,), dtype)
    loss = launch.empty_output((batch,), dtype)
    if batch == 0:
        return alpha, log_likelihood, loss
    get_kernel(_KERNEL_FILE, name)((batch,), (_recursion_threads(width),), (
        logp, labels, alpha, log_likelihood, loss, numpy.int32(batch), numpy.int32(steps), numpy.int32(classes),
        numpy.int32(length)))
    return alpha, log_likelihood, loss


def ctc_beta_cuda(logp, labels):
    """Launcher of ``ctc_beta_{f32,f64}``: beta without each step's own emission, (T, B, S), from ``logp``
    (B, T, C) and int64 ``labels`` (B, L). One block per sample."""
    name, batch, steps, classes, length, width = _kernel_inputs("ctc_beta", logp, labels)
    beta = launch.empty_output((steps, batch, width), logp.dtype)
    if batch == 0:
        return beta
    get_kernel(_KERNEL_FILE, name)((batch,), (_recursion_threads(width),), (
        logp, labels, beta, numpy.int32(batch), numpy.int32(steps), numpy.int32(classes), numpy.int32(length)))
    return beta


def ctc_grad_cuda(logp, labels, alpha, beta, log_likelihood):
    """Launcher of ``ctc_grad_{f32,f64}``: d loss / d logits (B, T, C) from ``logp`` (B, T, C), int64
    ``labels`` (B, L), ``alpha`` and ``beta`` (T, B, S) and ``log_likelihood`` (B,). One block per (b, t)."""
    name, batch, steps, classes, length, width = _kernel_inputs("ctc_grad", logp, labels)
    for argument, a, shape in (("alpha", alpha, (steps, batch, width)), ("beta", beta, (steps, batch, width)),
                               ("log_likelihood", log_likelihood, (batch,))):
        launch.check_device_array(a, name, argument, dtype=logp.dtype, shape=shape)
    dlogits = launch.empty_output(logp.shape, logp.dtype)
    if batch == 0:
        return dlogits
    get_kernel(_KERNEL_FILE, name)((batch * steps,), (_GRAD_THREADS,), (
        logp, labels, alpha, beta, log_likelihood, dlogits, numpy.int32(batch), numpy.int32(steps),
        numpy.int32(classes), numpy.int32(length)))
    return dlogits
