"""Forward and backward of the Fourier transforms of ``keras.ops`` (``layers/keras_ops/linalg_fft.py``).

Keras gives and takes complex tensors as pairs of float tensors (real part,
imaginary part); so do these functions, computing with the array module's
``fft`` (pocketfft on the host, cuFFT on the device). The transforms are
linear, so each backward is the adjoint: the DFT's adjoint is ``n`` times the
inverse DFT, the inverse's is the DFT over ``n``; ``rfft``'s and ``irfft``'s
account for the half spectrum they keep or read.
"""
from __future__ import annotations

from ..backend import array_module


def _complex(re, im):
    return re + 1j * im


def _pair(z, dtype):
    return [z.real.astype(dtype, copy=False), z.imag.astype(dtype, copy=False)]


def fft_forward(re, im):
    return _pair(array_module(re).fft.fft(_complex(re, im), axis=-1), re.dtype)


def fft_backward(dys, operands, ys):
    re = operands[0]
    n = re.shape[-1]
    return _pair(array_module(re).fft.ifft(_complex(*dys), axis=-1) * n, re.dtype)


def fft2_forward(re, im):
    return _pair(array_module(re).fft.fft2(_complex(re, im), axes=(-2, -1)), re.dtype)


def fft2_backward(dys, operands, ys):
    re = operands[0]
    n = re.shape[-2] * re.shape[-1]
    return _pair(array_module(re).fft.ifft2(_complex(*dys), axes=(-2, -1)) * n, re.dtype)


def ifft2_forward(re, im):
    return _pair(array_module(re).fft.ifft2(_complex(re, im), axes=(-2, -1)), re.dtype)


def ifft2_backward(dys, operands, ys):
    re = operands[0]
    n = re.shape[-2] * re.shape[-1]
    return _pair(array_module(re).fft.fft2(_complex(*dys), axes=(-2, -1)) / n, re.dtype)


def _fit_last(a, size):
    """``a`` cut or padded with zeros to ``size`` along its last axis."""
    xp = array_module(a)
    if a.shape[-1] >= size:
        return a[..., :size]
    return xp.concatenate([a, xp.zeros(a.shape[:-1] + (size - a.shape[-1],), dtype=a.dtype)], axis=-1)


def rfft_forward(x, fft_length):
    return _pair(array_module(x).fft.rfft(x, n=fft_length, axis=-1), x.dtype)


def rfft_backward(dys, operands, ys, fft_length):
    x, = operands
    n = x.shape[-1] if fft_length is None else int(fft_length)
    full = _fit_last(_complex(*dys), n)          # the half spectrum, the rest of the n frequencies zero
    return [_fit_last((array_module(x).fft.ifft(full, axis=-1) * n).real.astype(x.dtype, copy=False),
                      x.shape[-1])]


def irfft_length(size, fft_length):
    """The length of ``irfft``'s result for a half spectrum of ``size`` entries."""
    return 2 * (size - 1) if fft_length is None else int(fft_length)


def irfft_forward(re, im, fft_length):
    n = irfft_length(re.shape[-1], fft_length)
    return array_module(re).fft.irfft(_complex(re, im), n=n, axis=-1).astype(re.dtype, copy=False)


def irfft_backward(dy, operands, y, fft_length):
    re = operands[0]
    xp = array_module(re)
    n = irfft_length(re.shape[-1], fft_length)
    half = xp.fft.rfft(dy, axis=-1)
    # each frequency between 0 and n/2 stands for itself and its mirror image
    weight = xp.full(half.shape[-1], 2.0 / n, dtype=re.dtype)
    weight[0] = 1.0 / n
    if n % 2 == 0:
        weight[-1] = 1.0 / n
    return [_fit_last(part, re.shape[-1]) for part in _pair(half * weight, re.dtype)]


# ---------------------------------------------------------------- short-time transforms
def stft_window(window, sequence_length, dtype, xp):
    """The window as an array of ``sequence_length``: torch's periodic "hann" or "hamming", the given values, or
    ones for None."""
    import numpy
    n = numpy.arange(sequence_length)
    if window is None:
        values = numpy.ones(sequence_length)
    elif isinstance(window, str):
        cosine = numpy.cos(2 * numpy.pi * n / sequence_length)
        values = 0.5 - 0.5 * cosine if window == "hann" else 0.54 - 0.46 * cosine
    else:
        values = numpy.asarray(window, dtype="float64")
    return xp.asarray(values.astype(dtype))


def _framed_window(window, sequence_length, fft_length, dtype, xp):
    """The window padded with zeros to ``fft_length``, centred (torch's)."""
    left = (fft_length - sequence_length) // 2
    values = stft_window(window, sequence_length, dtype, xp)
    return xp.concatenate([xp.zeros(left, dtype=dtype), values,
                           xp.zeros(fft_length - sequence_length - left, dtype=dtype)])


def frame_count(samples, fft_length, sequence_stride, center):
    padded = samples + (2 * (fft_length // 2) if center else 0)
    return 1 + (padded - fft_length) // sequence_stride


def _frame_index(frames, fft_length, stride, xp):
    return (xp.arange(frames)[:, None] * stride + xp.arange(fft_length)[None, :])


def overlap_add(frames, stride):
    """The sum of ``frames`` (…, T, n), frame t starting at sample t · stride: (…, (T - 1) · stride + n). One
    vectorised addition per piece of ``stride`` samples of a frame."""
    xp = array_module(frames)
    count, n = frames.shape[-2:]
    pieces = -(-n // stride)
    padded = xp.concatenate([frames, xp.zeros(frames.shape[:-1] + (pieces * stride - n,), dtype=frames.dtype)], -1)
    padded = padded.reshape(frames.shape[:-2] + (count, pieces, stride))
    out = xp.zeros(frames.shape[:-2] + (count + pieces - 1, stride), dtype=frames.dtype)
    for piece in range(pieces):
        out[..., piece:piece + count, :] += padded[..., :, piece, :]
    return out.reshape(frames.shape[:-2] + (-1,))[..., :(count - 1) * stride + n]


def _reflect_pad(x, pad):
    xp = array_module(x)
    samples = x.shape[-1]
    return xp.concatenate([x[..., 1:pad + 1][..., ::-1], x, x[..., samples - pad - 1:samples - 1][..., ::-1]], -1)


def _reflect_pad_backward(g, pad, samples):
    xp = array_module(g)
    dx = g[..., pad:pad + samples].copy()
    dx[..., xp.arange(pad, 0, -1)] += g[..., :pad]
    dx[..., xp.arange(samples - 2, samples - 2 - pad, -1)] += g[..., pad + samples:]
    return dx


def stft_forward(x, sequence_length, sequence_stride, fft_length, window, center):
    """torch's ``stft`` (reflect padding of fft_length // 2 samples with ``center``) laid out as Keras's: (real,
    imag) of shape (…, frames, fft_length // 2 + 1)."""
    xp = array_module(x)
    padded = _reflect_pad(x, fft_length // 2) if center else x
    count = frame_count(x.shape[-1], fft_length, sequence_stride, center)
    frames = padded[..., _frame_index(count, fft_length, sequence_stride, xp)]
    frames = frames * _framed_window(window, sequence_length, fft_length, x.dtype, xp)
    return _pair(xp.fft.rfft(frames, axis=-1), x.dtype)


def stft_backward(dys, operands, ys, sequence_length, sequence_stride, fft_length, window, center):
    x, = operands
    xp = array_module(x)
    dframes = xp.fft.ifft(_fit_last(_complex(*dys), fft_length), axis=-1).real * fft_length
    dframes = dframes.astype(x.dtype, copy=False) * _framed_window(window, sequence_length, fft_length, x.dtype, xp)
    dpadded = overlap_add(dframes, sequence_stride)
    pad = fft_length // 2 if center else 0
    total = x.shape[-1] + 2 * pad
    dpadded = _fit_last(dpadded, total)
    return [_reflect_pad_backward(dpadded, pad, x.shape[-1]) if center else dpadded]


class _IstftPlan:
    """What ``istft`` does, as torch's backend for Keras does it: with ``center``, a window and sequence_length ==
    fft_length, torch's ``istft`` (frames times the window, overlapped, divided by the overlapped squared window);
    otherwise frames times the window divided by its squares summed over one stride, overlapped. Then the
    samples from ``start`` to ``end``, zeros after the last where ``length`` asks for more (torch's path)."""

    def __init__(self, re, sequence_length, sequence_stride, fft_length, length, window, center):
        xp = array_module(re)
        dtype = re.dtype
        self.count = re.shape[-2]
        self.stride, self.fft_length = sequence_stride, fft_length
        self.torch_istft = sequence_length == fft_length and center and window is not None
        total = fft_length + sequence_stride * (self.count - 1)
        self.total = total
        self.start = fft_length // 2 if center else 0
        if length is not None:
            end = self.start + int(length)
        else:
            end = total - fft_length // 2 if center else total
        self.end = min(end, total)
        self.zeros_after = end - self.end if self.torch_istft else 0
        self.envelope = None
        if self.torch_istft:
            self.weight = stft_window(window, sequence_length, dtype, xp)
            squares = xp.broadcast_to(self.weight * self.weight, (self.count, fft_length))
            envelope = overlap_add(squares, sequence_stride)[self.start:self.end]
            if envelope.size and float(xp.abs(envelope).min()) < 1e-11:
                raise ValueError("istft: the overlapped squared window is zero at some sample (torch's NOLA "
                                 "condition fails): choose a window and stride whose windows overlap.")
            self.envelope = envelope
        elif window is not None:
            weight = _framed_window(window, sequence_length, fft_length, dtype, xp)
            pieces = -(-fft_length // sequence_stride)
            squares = xp.concatenate([weight * weight, xp.zeros(pieces * sequence_stride - fft_length, dtype=dtype)])
            periodic = xp.tile(squares.reshape(pieces, sequence_stride).sum(axis=0), pieces)[:fft_length]
            self.weight = weight / periodic
        else:
            self.weight = None


def istft_forward(re, im, sequence_length, sequence_stride, fft_length, length, window, center):
    plan = _IstftPlan(re, sequence_length, sequence_stride, fft_length, length, window, center)
    xp = array_module(re)
    frames = irfft_forward(re, im, fft_length)
    if plan.weight is not None:
        frames = frames * plan.weight
    y = overlap_add(frames, sequence_stride)[..., plan.start:plan.end]
    if plan.envelope is not None:
        y = y / plan.envelope
    if plan.zeros_after:
        y = xp.concatenate([y, xp.zeros(y.shape[:-1] + (plan.zeros_after,), dtype=y.dtype)], axis=-1)
    return y


def istft_backward(dy, operands, y, sequence_length, sequence_stride, fft_length, length, window, center):
    re, im = operands
    plan = _IstftPlan(re, sequence_length, sequence_stride, fft_length, length, window, center)
    xp = array_module(re)
    g = dy[..., :plan.end - plan.start]
    if plan.envelope is not None:
        g = g / plan.envelope
    full = xp.zeros(g.shape[:-1] + (plan.total,), dtype=g.dtype)
    full[..., plan.start:plan.end] = g
    dframes = full[..., _frame_index(plan.count, fft_length, sequence_stride, xp)]
    if plan.weight is not None:
        dframes = dframes * plan.weight
    return irfft_backward(dframes, operands, None, fft_length)
