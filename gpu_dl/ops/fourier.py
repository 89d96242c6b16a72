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
