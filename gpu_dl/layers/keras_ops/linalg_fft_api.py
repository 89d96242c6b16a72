"""Keras's linear algebra and Fourier functions of ``keras.ops`` (``gpu_dl.ops.<name>``, and the linear algebra
also as ``gpu_dl.ops.linalg.<name>``, Keras's ``keras.ops.linalg``).

On arrays (NumPy or CuPy) each computes at once, in the arrays' module (numbers and lists go to the current
device); on symbolic tensors it records the operation of ``linalg_fft.py``. Several results come as a tuple,
as in Keras; complex values as (real part, imaginary part) pairs of float tensors.
"""
from __future__ import annotations

import types

from ... import backprop as _backprop
from ..symbolic import is_symbolic
from . import _taking_variables
from . import linalg_fft as _lf

__all__ = [
    "cholesky", "cholesky_inverse", "det", "eig", "eigh", "inv", "lu_factor", "qr", "solve", "solve_triangular",
    "svd", "lstsq", "matrix_rank", "pinv", "slogdet", "logdet",
    "fft", "fft2", "ifft2", "rfft", "irfft", "stft", "istft",
]

# keras.ops.linalg's functions (norm is gpu_dl.ops.norm; jvp, which gpu_dl refuses, is complex_views_api's).
LINALG_NAMES = ("cholesky", "cholesky_inverse", "det", "eig", "eigh", "inv", "jvp", "lstsq", "lu_factor",
                "matrix_rank", "norm", "pinv", "qr", "solve", "solve_triangular", "svd")


def _arrays(values):
    from . import _array
    return [_array(v) for v in values]


def _run(cls, values, *settings, name=None):
    """``cls(*settings)`` on ``values`` (its positional tensors): recorded on symbolic tensors, computed at once
    on arrays (cast to the float dtype the operation computes in)."""
    if any(is_symbolic(v) for v in values):
        result = cls(*settings).apply(*([tuple(values)] if cls.pair_input else values))
        return tuple(result) if isinstance(result, list) else result
    op = cls(*settings, name=name or cls.__name__.lower())
    arrays = _arrays(values)
    dtype = _lf.eager_dtype(arrays)
    arrays = [a.astype(dtype, copy=False) for a in arrays]
    op.output_shape_of([None] * len(arrays), [tuple(a.shape) for a in arrays])     # Keras's checks
    result = op.forward_array(*arrays)
    return tuple(result) if isinstance(result, list) else result


def _pair(function, x):
    if not isinstance(x, (list, tuple)) or len(x) != 2:
        raise ValueError(f"{function}: x must be a tuple of two tensors, the real and the imaginary part, got "
                         f"{x!r:.120}.")
    return list(x)


def cholesky(x, upper=False):
    """The Cholesky factor of positive definite matrices (read from their lower triangles): lower, or upper with
    ``upper``; a ValueError where a matrix is not positive definite."""
    return _run(_lf.Cholesky, [x], upper)


def cholesky_inverse(x, upper=False):
    """The inverse of A = L Lᵀ from its Cholesky factor L, the lower triangle of ``x`` (or A = Uᵀ U from the
    upper triangle with ``upper``)."""
    return _run(_lf.CholeskyInverse, [x], upper)


def det(x):
    return _run(_lf.Det, [x])


def eig(x):
    """(eigenvalues, eigenvectors) of square matrices, complex as torch's ``linalg.eig`` gives them; no
    gradient."""
    return _run(_lf.Eig, [x])


def eigh(x):
    """(eigenvalues ascending, eigenvectors as columns) of symmetric matrices, read from their lower triangles."""
    return _run(_lf.Eigh, [x])


def inv(x):
    return _run(_lf.Inv, [x])


def lu_factor(x):
    """(LU, pivots): L's strict lower triangle and U packed in one matrix, and the int32 0-based row swaps."""
    return _run(_lf.LuFactor, [x])


def qr(x, mode="reduced"):
    """(q, r), ``mode`` "reduced" (q m×k, r k×n, k = min(m, n)) or "complete" (q m×m, r m×n)."""
    return _run(_lf.Qr, [x], mode)


def solve(a, b):
    """x with a x = b, for square ``a`` and ``b`` of vectors (b of one axis, or of a's shape without its last
    axis) or matrices; batch axes broadcast."""
    return _run(_lf.Solve, [a, b])


def solve_triangular(a, b, lower=False):
    """x with T x = b, T the upper triangle of ``a`` (the lower one with ``lower``); ``b`` is vectors where it has
    one axis fewer than ``a``."""
    return _run(_lf.SolveTriangular, [a, b], lower)


def svd(x, full_matrices=True, compute_uv=True):
    """(u, s, vh) with x = u diag(s) vh, or s alone without ``compute_uv``."""
    return _run(_lf.SVD, [x], full_matrices, compute_uv)


def lstsq(a, b, rcond=None):
    """The least-squares solution of least norm of a x = b (``a`` m×n, ``b`` (m,) or (m, k))."""
    return _run(_lf.Lstsq, [a, b], rcond)


def matrix_rank(x, tol=None):
    """The int32 number of singular values above ``tol`` (default: max(m, n) · eps times the largest)."""
    return _run(_lf.MatrixRank, [x], tol)


def pinv(x, rcond=None):
    """The Moore-Penrose pseudo-inverse; singular values at or below ``rcond`` (default max(m, n) · eps) times the
    largest count as zero."""
    return _run(_lf.Pinv, [x], rcond)


def slogdet(x):
    """(sign, log|det x|) of square matrices."""
    return _run(_lf.Slogdet, [x])


def logdet(x):
    """log det x of square matrices (NaN where the determinant is negative)."""
    return _run(_lf.Logdet, [x])


def fft(x):
    """The discrete Fourier transform along the last axis of ``x`` = (real, imag): a (real, imag) pair."""
    return _run(_lf.FFT, _pair("fft", x))


def fft2(x):
    """The 2-D discrete Fourier transform over the last two axes of ``x`` = (real, imag)."""
    return _run(_lf.FFT2, _pair("fft2", x))


def ifft2(x):
    """The inverse of ``fft2``."""
    return _run(_lf.IFFT2, _pair("ifft2", x))


def rfft(x, fft_length=None):
    """The half spectrum (fft_length // 2 + 1 frequencies) of the real signal along the last axis of ``x``, cut
    or padded with zeros to ``fft_length``: a (real, imag) pair."""
    return _run(_lf.RFFT, [x], fft_length)


def irfft(x, fft_length=None):
    """The real signal of ``fft_length`` samples (default 2 (n - 1)) whose half spectrum is ``x`` = (real,
    imag)."""
    return _run(_lf.IRFFT, _pair("irfft", x), fft_length)


def stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    """The short-time Fourier transform along the last axis: (real, imag) of shape (…, frames, fft_length // 2 +
    1), frames of ``fft_length`` samples ``sequence_stride`` apart, each times the window (``"hann"``,
    ``"hamming"``, an array of ``sequence_length``, or None) centred in it; with ``center`` the signal is padded
    by reflection with fft_length // 2 samples at each end. Float signals only, as in Keras."""
    if not hasattr(x, "dtype"):
        x = _arrays([x])[0]           # numbers and lists: floatx (or int32) arrays of the current device
    dtype = str(x.dtype)
    if dtype not in ("float32", "float64"):
        raise TypeError(f"stft takes a float32 or float64 signal, got {dtype}.")
    return _run(_lf.STFT, [x], sequence_length, sequence_stride, fft_length, window, center)


def istft(x, sequence_length, sequence_stride, fft_length, length=None, window="hann", center=True):
    """The signal whose ``stft`` (with the same settings) is ``x`` = (real, imag); ``length`` samples if given."""
    return _run(_lf.ISTFT, _pair("istft", x), sequence_length, sequence_stride, fft_length, length, window, center)


def linalg_namespace(functions):
    """Keras's ``keras.ops.linalg``: a module of ``functions`` (name to function) under those names."""
    module = types.ModuleType("gpu_dl.ops.linalg", "Keras's keras.ops.linalg: the linear algebra of gpu_dl.ops.")
    for name in LINALG_NAMES:
        setattr(module, name, functions[name])
    module.__all__ = list(LINALG_NAMES)
    return module


# On arrays, loss.backward() refuses the outputs of these functions where they come from a recorded call
# (gpu_dl/backprop.py).
for _name in __all__:
    globals()[_name] = _backprop.followed(_taking_variables(globals()[_name]), _name)
del _name
