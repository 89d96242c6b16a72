"""The linear algebra and Fourier operations of ``keras.ops`` recorded on symbolic tensors: ``cholesky``,
``cholesky_inverse``, ``det``, ``eig``, ``eigh``, ``inv``, ``lu_factor``, ``qr``, ``solve``,
``solve_triangular``, ``svd``, ``lstsq``, ``matrix_rank``, ``pinv`` (``keras.src.ops.linalg``), ``slogdet``
(``keras.src.ops.numpy``), ``logdet``, ``fft``, ``fft2``, ``ifft2``, ``rfft``, ``irfft``, ``stft`` and
``istft`` (``keras.src.ops.math``).

The matrix operations work on the last two axes, batched over the leading ones. Their results have the
input's float dtype (integers give floatx), except ``matrix_rank``'s and ``lu_factor``'s pivots (int32, as
Keras's torch backend gives them, without gradient) and ``eig``'s (complex, as torch's, without gradient).
The Fourier operations take and give complex tensors as (real part, imaginary part) pairs, as Keras does.
Several results (``eigh``, ``qr``, ``svd``, ``slogdet``, ``lu_factor``, the transforms' pairs) are one
operation of several outputs, as in Keras. The maths and the backwards are ``ops/matrix_functions.py`` and
``ops/fourier.py``.
"""
from __future__ import annotations

import numbers

import numpy

from ... import backend
from ...ops import fourier, matrix_functions as mf
from ..base import as_operand
from ..operations import broadcast_shapes
from ..symbolic import KerasTensor, Node
from .base import LINALG, MATH, NUMPY, KerasOperation, WithoutGradient, _float


class LinalgOperation(KerasOperation):
    """An operation of ``keras.src.ops.linalg`` on matrices: one or several outputs, tensors or constant arrays
    among its positional arguments; integer inputs computed as floatx."""

    keras_module = LINALG
    keeps_integers = False
    outputs = 1                 # the number of results
    pair_input = False          # Keras's argument is one (real part, imaginary part) tuple

    def apply(self, *args):
        if self.pair_input:
            args = self._pair(args)
        args = [as_operand(value) for value in args]
        expected = 2 if self.pair_input else self.arity
        if len(args) != expected:
            raise TypeError(f"{self._where()} takes {expected} tensor(s), got {len(args)}.")
        arguments, tensors = self._accepted(args)
        shapes = [tuple(getattr(a, "shape", ())) if a is not None else None for a in arguments]
        given = iter(t.shape for t in tensors)
        shapes = [next(given) if s is None else s for s in shapes]
        out_shapes = self.shapes_of(shapes)
        self.arguments = arguments
        self.dtype = self.result_dtype(tensors, arguments)
        self.built = True
        outputs = [KerasTensor(shape, dtype=dtype) for shape, dtype in zip(out_shapes, self.output_dtypes())]
        Node(self, args=(tensors if len(tensors) > 1 else tensors[0],), outputs=outputs)
        return outputs if self.outputs > 1 else outputs[0]

    def _pair(self, args):
        if len(args) != 1 or not isinstance(args[0], (list, tuple)) or len(args[0]) != 2:
            raise ValueError(f"{self._where()} takes a tuple of two tensors, the real and the imaginary part, got "
                             f"{args!r:.120}.")
        return tuple(args[0])

    def keras_arguments(self, tensors):
        arguments = super().keras_arguments(tensors)
        return [arguments] if self.pair_input else arguments

    def output_dtypes(self):
        return [self.dtype] * self.outputs

    def output_shape_of(self, arguments, shapes):
        given = iter(shapes)
        full = [next(given) if a is None else tuple(a.shape) for a in arguments]
        out = self.shapes_of(full)
        return out if self.outputs > 1 else out[0]

    def shapes_of(self, shapes):
        """The results' shapes (a list) for the arguments' ``shapes``, or a ValueError naming the operation."""
        return [tuple(shapes[0])]

    # ------------------------------------------------------------ checks of shapes, as Keras makes them
    def _matrices(self, shape, what="x", square=False):
        if len(shape) < 2:
            raise ValueError(f"{self._where()}: {what} must have rank >= 2 (matrices in its last two axes), got "
                             f"shape {tuple(shape)}.")
        if square and shape[-1] != shape[-2]:
            raise ValueError(f"{self._where()}: {what} must hold square matrices, got shape {tuple(shape)}.")
        return tuple(shape)

    def forward_function(self, *operands):
        return self.forward_array(*operands)

    def backward(self, dy):
        operands, _ = self.saved()
        if not any(_float(o.dtype) for o, a in zip(operands, self.arguments) if a is None):
            count = sum(a is None for a in self.arguments)
            return None if count == 1 else [None] * count
        return super(KerasOperation, self).backward(dy)


class Cholesky(LinalgOperation):
    config_keys = ("upper",)

    def __init__(self, upper=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.upper = bool(upper)

    def shapes_of(self, shapes):
        return [self._matrices(shapes[0], square=True)]

    def forward_array(self, x):
        return mf.cholesky_forward(x, self.upper)

    def backward_function(self, dy, operands, y):
        return mf.cholesky_backward(dy, operands, y, self.upper)


class CholeskyInverse(Cholesky):
    def forward_array(self, x):
        return mf.cholesky_inverse_forward(x, self.upper)

    def backward_function(self, dy, operands, y):
        return mf.cholesky_inverse_backward(dy, operands, y, self.upper)


class Det(LinalgOperation):
    def shapes_of(self, shapes):
        return [self._matrices(shapes[0], square=True)[:-2]]

    def forward_array(self, x):
        return mf.det_forward(x)

    def backward_function(self, dy, operands, y):
        return mf.det_backward(dy, operands, y)


class Logdet(Det):
    """``logdet(x)`` of ``keras.src.ops.math``: NaN for a negative determinant, as torch's."""

    keras_module = MATH

    def forward_array(self, x):
        return mf.logdet_forward(x)

    def backward_function(self, dy, operands, y):
        return mf.logdet_backward(dy, operands, y)


class Slogdet(Det):
    """``slogdet(x)`` of ``keras.src.ops.numpy``: (sign, log|det|), each of the batch's shape."""

    keras_module = NUMPY
    outputs = 2

    def shapes_of(self, shapes):
        batch = self._matrices(shapes[0], square=True)[:-2]
        return [batch, batch]

    def forward_array(self, x):
        return mf.slogdet_forward(x)

    def backward_function(self, dy, operands, y):
        return mf.slogdet_backward(dy, operands, y)


class Inv(LinalgOperation):
    def shapes_of(self, shapes):
        return [self._matrices(shapes[0], square=True)]

    def forward_array(self, x):
        return mf.inv_forward(x)

    def backward_function(self, dy, operands, y):
        return mf.inv_backward(dy, operands, y)


class Eigh(LinalgOperation):
    """``eigh(x)``: the eigenvalues (ascending) and eigenvectors of symmetric matrices (their lower
    triangles read)."""

    outputs = 2

    def shapes_of(self, shapes):
        shape = self._matrices(shapes[0], square=True)
        return [shape[:-1], shape]

    def forward_array(self, x):
        return mf.eigh_forward(x)

    def backward_function(self, dy, operands, y):
        return mf.eigh_backward(dy, operands, y)


class Eig(Eigh):
    """``eig(x)``: complex eigenvalues and eigenvectors (complex64 for float32 matrices), as torch's; no
    gradient in gpu_dl."""

    def output_dtypes(self):
        dtype = numpy.result_type(self.dtype, numpy.complex64).name
        return [dtype, dtype]

    def forward_array(self, x):
        return mf.eig_forward(x)

    def backward_function(self, dy, operands, y):
        raise ValueError(f"{self._where()}: gpu_dl does not differentiate eig (its results are complex); use eigh "
                         "for symmetric matrices.")


class LuFactor(LinalgOperation):
    """``lu_factor(x)``: the packed LU factors and the int32 row pivots (0-based), as Keras's torch backend gives
    them (of square, wide and tall matrices, all differentiable)."""

    outputs = 2

    def shapes_of(self, shapes):
        shape = self._matrices(shapes[0])
        m, n = shape[-2:]
        return [shape, shape[:-2] + (None if m is None or n is None else min(m, n),)]

    def output_dtypes(self):
        return [self.dtype, "int32"]

    def forward_array(self, x):
        return mf.lu_factor_forward(x)

    def backward_function(self, dy, operands, y):
        return mf.lu_factor_backward(dy, operands, y)


class Qr(LinalgOperation):
    config_keys = ("mode",)
    outputs = 2

    def __init__(self, mode="reduced", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if mode not in ("reduced", "complete"):
            raise ValueError(f"{self._where()}: mode must be 'reduced' or 'complete', got {mode!r}.")
        self.mode = mode

    def shapes_of(self, shapes):
        shape = self._matrices(shapes[0])
        m, n = shape[-2:]
        if m is None or n is None:
            raise ValueError(f"{self._where()}: the matrices' sizes (the last two axes) must be known, got shape "
                             f"{shape}.")
        k, base = min(m, n), shape[:-2]
        if self.mode == "reduced":
            return [base + (m, k), base + (k, n)]
        return [base + (m, m), base + (m, n)]

    def forward_array(self, x):
        return mf.qr_forward(x, self.mode)

    def backward_function(self, dy, operands, y):
        return mf.qr_backward(dy, operands, y, self.mode)


class Solve(LinalgOperation):
    """``solve(a, b)``: x with a x = b; ``b`` is vectors where it has one axis, or a's shape without its last
    axis (torch's rule), else matrices; batch axes broadcast."""

    arity = 2
    vector_rule = "torch"       # how b is taken for vectors: torch's rule (solve), or by rank (solve_triangular)

    def _check(self, a, b):
        self._matrices(a, "a", square=True)
        if len(b) < 1:
            raise ValueError(f"{self._where()}: b must have rank >= 1, got a scalar.")
        vector = mf.solve_is_vector(a, b) if self.vector_rule == "torch" else len(b) == len(a) - 1
        # b of one axis fewer than a is taken for vectors of a's size (torch would read it as matrices only when
        # the sizes differ, which fails when the graph runs)
        rows = b[-1] if vector or len(b) == len(a) - 1 else b[-2] if len(b) >= 2 else None
        if rows is not None and a[-1] is not None and rows != a[-1]:
            raise ValueError(f"{self._where()}: a and b do not match: a's matrices are {a[-2]}×{a[-1]}, b has "
                             f"{rows} rows (shapes {tuple(a)} and {tuple(b)}).")
        return vector

    def shapes_of(self, shapes):
        a, b = (tuple(s) for s in shapes)
        if self._check(a, b):
            return [broadcast_shapes(a[:-2], b[:-1], self._where()) + (a[-1],)]
        return [broadcast_shapes(a[:-2], b[:-2], self._where()) + b[-2:]]

    def forward_array(self, a, b):
        return mf.solve_forward(a, b)

    def backward_function(self, dy, operands, y):
        return mf.solve_backward(dy, operands, y)


class SolveTriangular(Solve):
    """``solve_triangular(a, b, lower=False)``: x with T x = b for the upper (lower) triangle T of ``a``; ``b`` is
    vectors where it has one axis fewer than ``a``."""

    config_keys = ("lower",)
    vector_rule = "keras"

    def __init__(self, lower=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.lower = bool(lower)

    def forward_array(self, a, b):
        return mf.solve_triangular_forward(a, b, self.lower)

    def backward_function(self, dy, operands, y):
        return mf.solve_triangular_backward(dy, operands, y, self.lower)


class SVD(LinalgOperation):
    """``svd(x, full_matrices=True, compute_uv=True)``: (u, s, vh), or s alone."""

    config_keys = ("full_matrices", "compute_uv")

    def __init__(self, full_matrices=True, compute_uv=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.full_matrices, self.compute_uv = bool(full_matrices), bool(compute_uv)
        self.outputs = 3 if self.compute_uv else 1

    def shapes_of(self, shapes):
        shape = self._matrices(shapes[0])
        m, n = shape[-2:]
        base = shape[:-2]
        k = None if m is None or n is None else min(m, n)
        if not self.compute_uv:
            return [base + (k,)]
        if self.full_matrices:
            return [base + (m, m), base + (k,), base + (n, n)]
        return [base + (m, k), base + (k,), base + (k, n)]

    def forward_array(self, x):
        return mf.svd_forward(x, self.full_matrices, self.compute_uv)

    def backward_function(self, dy, operands, y):
        return mf.svd_backward(dy, operands, y, self.full_matrices, self.compute_uv)


class Pinv(LinalgOperation):
    """``pinv(x, rcond=None)``: singular values at or below ``rcond`` (default max(m, n) · eps) times the largest
    count as zero."""

    config_keys = ("rcond",)

    def __init__(self, rcond=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.rcond = _tolerance(rcond, "rcond", self)

    def shapes_of(self, shapes):
        shape = self._matrices(shapes[0])
        return [shape[:-2] + (shape[-1], shape[-2])]

    def forward_array(self, x):
        return mf.pinv_forward(x, self.rcond)

    def backward_function(self, dy, operands, y):
        return mf.pinv_backward(dy, operands, y, self.rcond)


def _tolerance(value, what, op):
    if value is None:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{op._where()}: {what} must be a non-negative number or None, got {value!r}.")
    return float(value)


class Lstsq(LinalgOperation):
    """``lstsq(a, b, rcond=None)``: the least-squares solution of least norm, ``a`` of rank 2, ``b`` of rank 1 or
    2."""

    arity = 2
    config_keys = ("rcond",)

    def __init__(self, rcond=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.rcond = _tolerance(rcond, "rcond", self)

    def shapes_of(self, shapes):
        a, b = (tuple(s) for s in shapes)
        if len(a) != 2:
            raise ValueError(f"{self._where()}: a must have rank 2, got shape {a}.")
        if len(b) not in (1, 2):
            raise ValueError(f"{self._where()}: b must have rank 1 or 2, got shape {b}.")
        if a[0] is not None and b[0] is not None and a[0] != b[0]:
            raise ValueError(f"{self._where()}: b must have as many rows as a, got shapes {a} and {b}.")
        return [(a[1],) + b[1:]]

    def forward_array(self, a, b):
        return mf.lstsq_forward(a, b, self.rcond)

    def backward_function(self, dy, operands, y):
        return mf.lstsq_backward(dy, operands, y, self.rcond)


class MatrixRank(WithoutGradient, LinalgOperation):
    """``matrix_rank(x, tol=None)``: int32 ranks, no gradient."""

    config_keys = ("tol",)

    def __init__(self, tol=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.tol = _tolerance(tol, "tol", self)

    def shapes_of(self, shapes):
        return [self._matrices(shapes[0])[:-2]]

    def output_dtypes(self):
        return ["int32"]

    def forward_array(self, x):
        return mf.matrix_rank_forward(x, self.tol)


# ------------------------------------------------------------------ Fourier transforms
class FourierOperation(LinalgOperation):
    """A transform of ``keras.src.ops.math`` taking a (real, imaginary) pair of float tensors of one shape."""

    keras_module = MATH
    arity = 1                # Keras's one positional argument, the pair
    pair_input = True
    list_arguments = (0,)
    outputs = 2
    axes = 1                 # the transform's axes, the last ones

    def shapes_of(self, shapes):
        real, imag = (tuple(s) for s in shapes)
        if real != imag:
            raise ValueError(f"{self._where()}: the real and imaginary parts must have one shape, got {real} and "
                             f"{imag}.")
        if len(real) < self.axes:
            raise ValueError(f"{self._where()}: the input must have rank >= {self.axes}, got shape {real}.")
        if None in real[len(real) - self.axes:]:
            raise ValueError(f"{self._where()}: the transformed axes (the last {self.axes}) must have known sizes, "
                             f"got shape {real}.")
        return [real, real]


class FFT(FourierOperation):
    def forward_array(self, re, im):
        return fourier.fft_forward(re, im)

    def backward_function(self, dy, operands, y):
        return fourier.fft_backward(dy, operands, y)


class FFT2(FourierOperation):
    axes = 2

    def forward_array(self, re, im):
        return fourier.fft2_forward(re, im)

    def backward_function(self, dy, operands, y):
        return fourier.fft2_backward(dy, operands, y)


class IFFT2(FFT2):
    def forward_array(self, re, im):
        return fourier.ifft2_forward(re, im)

    def backward_function(self, dy, operands, y):
        return fourier.ifft2_backward(dy, operands, y)


def _fft_length(value, op):
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op._where()}: fft_length must be a positive integer or None, got {value!r}.")
    return int(value)


class RFFT(LinalgOperation):
    """``rfft(x, fft_length=None)``: the half spectrum (fft_length // 2 + 1 frequencies) as a pair."""

    keras_module = MATH
    config_keys = ("fft_length",)
    outputs = 2

    def __init__(self, fft_length=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.fft_length = _fft_length(fft_length, self)

    def shapes_of(self, shapes):
        shape = tuple(shapes[0])
        if not shape:
            raise ValueError(f"{self._where()}: the input must have rank >= 1, got a scalar.")
        n = self.fft_length if self.fft_length is not None else shape[-1]
        out = shape[:-1] + (None if n is None else n // 2 + 1,)
        return [out, out]

    def forward_array(self, x):
        return fourier.rfft_forward(x, self.fft_length)

    def backward_function(self, dy, operands, y):
        return fourier.rfft_backward(dy, operands, y, self.fft_length)


class IRFFT(FourierOperation):
    """``irfft((real, imag), fft_length=None)``: a real signal of fft_length (default 2 (n - 1)) samples."""

    config_keys = ("fft_length",)
    outputs = 1

    def __init__(self, fft_length=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.fft_length = _fft_length(fft_length, self)

    def shapes_of(self, shapes):
        real = super().shapes_of(shapes)[0]
        return [real[:-1] + (fourier.irfft_length(real[-1], self.fft_length),)]

    def forward_array(self, re, im):
        return fourier.irfft_forward(re, im, self.fft_length)

    def backward_function(self, dy, operands, y):
        return fourier.irfft_backward(dy, operands, y, self.fft_length)


def _positive(value, what, op):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op._where()}: {what} must be a positive integer, got {value!r}.")
    return int(value)


class _ShortTime:
    """The settings ``stft`` and ``istft`` share, checked as Keras's torch backend checks them."""

    def _settings(self, sequence_length, sequence_stride, fft_length, window, center):
        self.sequence_length = _positive(sequence_length, "sequence_length", self)
        self.sequence_stride = _positive(sequence_stride, "sequence_stride", self)
        self.fft_length = _positive(fft_length, "fft_length", self)
        if self.fft_length < self.sequence_length:
            raise ValueError(f"{self._where()}: fft_length must be at least sequence_length, got "
                             f"sequence_length={sequence_length}, fft_length={fft_length}.")
        if isinstance(window, str):
            if window not in ("hann", "hamming"):
                raise ValueError(f"{self._where()}: a window named by a string is 'hann' or 'hamming', got "
                                 f"{window!r}.")
        elif window is not None:
            window = numpy.asarray(backend.to_numpy(window) if hasattr(window, "shape") else window, "float64")
            if window.shape != (self.sequence_length,):
                raise ValueError(f"{self._where()}: the window must have shape ({self.sequence_length},) "
                                 f"(sequence_length), got {window.shape}.")
        self.window = window
        self.center = bool(center)

    def _config_window(self):
        return self.window.tolist() if isinstance(self.window, numpy.ndarray) else self.window

    def _settings_of(self):
        return (self.sequence_length, self.sequence_stride, self.fft_length)


class STFT(_ShortTime, LinalgOperation):
    """``stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True)``: (real, imag) of shape
    (…, frames, fft_length // 2 + 1), torch's ``stft`` (reflect padding with ``center``)."""

    keras_module = MATH
    outputs = 2
    config_keys = ("sequence_length", "sequence_stride", "fft_length", "window", "center")

    def __init__(self, sequence_length, sequence_stride, fft_length, window="hann", center=True, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self._settings(sequence_length, sequence_stride, fft_length, window, center)

    def get_config(self):
        return {"name": self.name, "sequence_length": self.sequence_length, "sequence_stride": self.sequence_stride,
                "fft_length": self.fft_length, "window": self._config_window(), "center": self.center}

    def shapes_of(self, shapes):
        shape = tuple(shapes[0])
        if not shape:
            raise ValueError(f"{self._where()}: the input must have rank >= 1, got a scalar.")
        samples = shape[-1]
        if samples is not None and self.center and self.fft_length // 2 >= samples:
            raise ValueError(f"{self._where()}: with center=True the signal is padded by reflection with "
                             f"fft_length // 2 = {self.fft_length // 2} samples, which needs more than that many "
                             f"samples; got {samples}.")
        if samples is not None and not self.center and samples < self.fft_length:
            raise ValueError(f"{self._where()}: the signal has {samples} samples, fewer than fft_length "
                             f"{self.fft_length}.")
        frames = None if samples is None else fourier.frame_count(samples, self.fft_length, self.sequence_stride,
                                                                   self.center)
        out = shape[:-1] + (frames, self.fft_length // 2 + 1)
        return [out, out]

    def forward_array(self, x):
        return fourier.stft_forward(x, *self._settings_of(), self.window, self.center)

    def backward_function(self, dy, operands, y):
        return fourier.stft_backward(dy, operands, y, *self._settings_of(), self.window, self.center)


class ISTFT(_ShortTime, FourierOperation):
    """``istft((real, imag), sequence_length, sequence_stride, fft_length, length=None, window="hann",
    center=True)``: the signal, as Keras's torch backend computes it (torch's ``istft`` where it can)."""

    outputs = 1
    axes = 2
    config_keys = ("sequence_length", "sequence_stride", "fft_length", "length", "window", "center")

    def __init__(self, sequence_length, sequence_stride, fft_length, length=None, window="hann", center=True,
                 name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._settings(sequence_length, sequence_stride, fft_length, window, center)
        self.length = None if length is None else _positive(length, "length", self)

    def get_config(self):
        return {"name": self.name, "sequence_length": self.sequence_length, "sequence_stride": self.sequence_stride,
                "fft_length": self.fft_length, "length": self.length, "window": self._config_window(),
                "center": self.center}

    def shapes_of(self, shapes):
        real = tuple(shapes[0])
        if real != tuple(shapes[1]):
            raise ValueError(f"{self._where()}: the real and imaginary parts must have one shape, got {real} and "
                             f"{tuple(shapes[1])}.")
        if len(real) < 2:
            raise ValueError(f"{self._where()}: the input must have rank >= 2 (frames, frequencies), got shape "
                             f"{real}.")
        frames = real[-2]
        torch_istft = self.sequence_length == self.fft_length and self.center and self.window is not None
        if not torch_istft and (self.sequence_stride > self.fft_length or (
                frames is not None and self.sequence_stride * frames < self.fft_length)):
            raise ValueError(f"{self._where()}: sequence_stride must be at most fft_length and at least "
                             f"fft_length / frames, got sequence_stride={self.sequence_stride}, "
                             f"fft_length={self.fft_length}, {frames} frames.")
        if self.length is not None:
            size = self.length
        elif frames is None:
            size = None
        else:
            size = (frames - 1) * self.sequence_stride + self.fft_length - (
                2 * (self.fft_length // 2) if self.center else 0)
        return [real[:-2] + (size,)]

    def forward_array(self, re, im):
        return fourier.istft_forward(re, im, *self._settings_of(), self.length, self.window, self.center)

    def backward_function(self, dy, operands, y):
        return fourier.istft_backward(dy, operands, y, *self._settings_of(), self.length, self.window, self.center)


OPERATIONS = {cls.__name__: cls for cls in (
    Cholesky, CholeskyInverse, Det, Logdet, Slogdet, Inv, Eigh, Eig, LuFactor, Qr, Solve, SolveTriangular, SVD,
    Pinv, Lstsq, MatrixRank, FFT, FFT2, IFFT2, RFFT, IRFFT, STFT, ISTFT)}


def eager_dtype(arrays):
    """The dtype the operations compute in for ``arrays``: their floats' (promoted), or floatx for integers."""
    floats = [a.dtype for a in arrays if _float(a.dtype)]
    return numpy.result_type(*floats).name if floats else backend.floatx()
