"""Keras 3's audio layers: ``STFTSpectrogram`` (a convolution with trainable STFT kernels) and ``MelSpectrogram``.

``STFTSpectrogram`` computes each frame's Fourier coefficients as Keras does, as a strided 1-D convolution of
every input channel with the kernels ``real_kernel`` and ``imag_kernel`` (``(frame_length, 1, fft_length // 2
+ 1)``, drawn by ``initializers.STFT``): both run as one convolution of ``2 * bins`` filters through
``ops/convolution.py`` (the implicit-GEMM kernels of ``kernels/conv2d.cu`` on CuPy arrays), over the signals
laid out as images of height 1 and one channel. Its backward is exact in the input and in both kernels, for
every mode.

``MelSpectrogram`` is Keras's preprocessing layer: torch's centred ``stft`` (``ops/fourier.py``), the magnitude
to the power ``mag_exp``, Keras's HTK mel filterbank and, optionally, decibels clipped ``top_db`` below the
largest value of the whole batch; it has an exact backward too, so it may sit anywhere in a model.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy

from .. import backend
from ..backend import array_module
from ..ops.convolution import conv2d_backward_input, conv2d_backward_kernel, conv2d_forward, conv_padding
from ..ops.fourier import frame_count, stft_backward, stft_forward
from .base import Layer
from .spatial import contiguous, data_format_word

__all__ = ["MelSpectrogram", "STFTSpectrogram"]

_MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")


def _positive_int(value, what, where, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: `{what}` must be a positive integer{' or None' if allow_none else ''}, got "
                         f"{value!r}.")
    return int(value)


def _gate(a, floor):
    """The derivative of ``maximum(a, floor)`` in ``a``: 1 above, 0 below, one half at a tie (torch's rule)."""
    return (a > floor).astype(a.dtype) + 0.5 * (a == floor).astype(a.dtype)


class STFTSpectrogram(Layer):
    """Keras's ``STFTSpectrogram(mode="log", frame_length=256, frame_step=None, fft_length=None, window="hann",
    periodic=False, scaling="density", padding="valid", expand_dims=False, data_format=None)``.

    Input ``(batch, time, channels)`` (channels_last) or ``(batch, channels, time)``; each channel is framed
    (``frame_length`` samples every ``frame_step``, by default half the frame length; ``padding`` "valid" or
    "same" as a convolution pads) and transformed with ``fft_length`` frequencies (by default the power of two
    at least ``frame_length``), keeping ``bins = fft_length // 2 + 1``. ``mode`` says what comes out:
    "real", "imag", "stft" (the real bins then the imaginary ones), "angle", "psd" (the power, the bins between
    the first and last counted twice), "magnitude" (``sqrt(max(power, epsilon))``) or "log" (its logarithm).
    The output is ``(batch, frames, channels * bins)`` (channels_last; ``(batch, channels * bins, frames)``
    channels_first) or, with ``expand_dims``, ``(batch, frames, bins, channels)`` (``(batch, channels, frames,
    bins)``); "stft" doubles ``bins``.

    Under a float64 policy every mode computes in float64; Keras 3.15 gives "log", "magnitude" and "angle" in
    float32 there (its result type of float64 and a Python float, the epsilon, is float32).
    """

    fixed_input_axes = ()       # the same kernels apply to any number of channels, any length

    def __init__(self, mode="log", frame_length=256, frame_step=None, fft_length=None, window="hann",
                 periodic=False, scaling="density", padding="valid", expand_dims=False, data_format=None, **kwargs):
        where = "STFTSpectrogram"
        frame_length = _positive_int(frame_length, "frame_length", where)
        frame_step = _positive_int(frame_step, "frame_step", where, allow_none=True)
        fft_length = _positive_int(fft_length, "fft_length", where, allow_none=True)
        if frame_step is not None and frame_step > frame_length:
            raise ValueError(f"{where}: `frame_step` should be a positive integer not greater than `frame_length`. "
                             f"Received frame_step={frame_step}, frame_length={frame_length}")
        if fft_length is not None and fft_length < frame_length:
            raise ValueError(f"{where}: `fft_length` should be not less than `frame_length`. Received "
                             f"fft_length={fft_length}, frame_length={frame_length}")
        if fft_length is not None and (fft_length & -fft_length) != fft_length:
            warnings.warn(f"`fft_length` is recommended to be a power of two. Received fft_length={fft_length}",
                          stacklevel=2)
        if mode not in _MODES:
            raise ValueError(f"{where}: output mode is invalid, it must be one of {', '.join(_MODES)}. Received: "
                             f"mode={mode!r}")
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError(f"{where}: scaling is invalid, it must be None, 'density' or 'spectrum'. Received "
                             f"scaling={scaling!r}")
        if padding not in ("valid", "same"):
            raise ValueError(f"{where}: padding is invalid, it should be 'valid' or 'same'. Received: "
                             f"padding={padding!r}")
        from ..initializers import stft_window_values     # catalogues sit above layers; import late
        if isinstance(window, str):
            stft_window_values(window, 1, False, where)     # an unknown name fails now, as in Keras
        super().__init__(**kwargs)
        self.mode = mode
        self.frame_length = frame_length
        self.frame_step = frame_step
        self._frame_step = frame_step or frame_length // 2
        if self._frame_step < 1:
            raise ValueError(f"{where} layer '{self.name}': frame_length={frame_length} gives a default frame_step "
                             "of 0 (half the frame length); give `frame_step`.")
        self.fft_length = fft_length
        self._fft_length = fft_length or 2 ** int(math.ceil(math.log2(frame_length)))
        # an array of values is kept as a list, which a config file holds (and Keras reads back as its values)
        self.window = backend.to_numpy(window).tolist() if hasattr(window, "shape") else window
        self.periodic = periodic
        self.scaling = scaling
        self.padding = padding
        self.expand_dims = bool(expand_dims)
        self.data_format = data_format_word(data_format, f"{where} layer '{self.name}': data_format")
        self.real_kernel = self.imag_kernel = None

    @property
    def _bins(self):
        return self._fft_length // 2 + 1

    def _kernels(self):
        """The variables the mode reads, in Keras's order (real, imag)."""
        return [k for k in (self.real_kernel, self.imag_kernel) if k is not None]

    def build(self, input_shape):
        self._check_shape(input_shape)
        from ..initializers import STFT      # catalogues sit above layers; import late
        shape = (self.frame_length, 1, self._bins)
        if self.mode != "imag":
            self.real_kernel = self.add_weight(shape=shape, name="real_kernel", initializer=STFT(
                "real", self.window, self.scaling, self.periodic))
        if self.mode != "real":
            self.imag_kernel = self.add_weight(shape=shape, name="imag_kernel", initializer=STFT(
                "imag", self.window, self.scaling, self.periodic))

    # ------------------------------------------------------------------ shapes
    def _check_shape(self, input_shape):
        """(batch, time, channels) of an input shape, or a ValueError naming the layer."""
        shape = tuple(input_shape)
        if len(shape) != 3:
            layout = "(batch, time, channels)" if self.data_format == "channels_last" else "(batch, channels, time)"
            raise ValueError(f"STFTSpectrogram layer '{self.name}' expects inputs of rank 3 {layout} "
                             f"({self.data_format}), got shape {shape} (rank {len(shape)}).")
        batch, time, channels = shape if self.data_format == "channels_last" else (shape[0], shape[2], shape[1])
        if time is not None and self.padding == "valid" and time < self.frame_length:
            raise ValueError(f"STFTSpectrogram layer '{self.name}': an input of {time} samples (shape {shape}) is "
                             f"shorter than one frame of {self.frame_length} with padding='valid'; give longer "
                             "signals or padding='same'.")
        return batch, time, channels

    def _frames(self, time):
        if time is None:
            return None
        if self.padding == "same":
            return -(-time // self._frame_step)
        return (time - self.frame_length) // self._frame_step + 1

    def compute_output_shape(self, input_shape):
        batch, time, channels = self._check_shape(input_shape)
        bins = self._bins * (2 if self.mode == "stft" else 1)
        frames = self._frames(time)
        if self.expand_dims:
            return (batch, frames, bins, channels) if self.data_format == "channels_last" else \
                (batch, channels, frames, bins)
        features = None if channels is None else channels * bins
        return (batch, frames, features) if self.data_format == "channels_last" else (batch, features, frames)

    # ------------------------------------------------------------------ passes
    def _geometry(self, time):
        pads = conv_padding(self.padding, (time,), (self.frame_length,), (self._frame_step,), (1,))
        return {"strides": (1, self._frame_step), "padding": ((0, 0),) + tuple(pads), "dilation": (1, 1)}

    def _planar_kernel(self, dtype):
        """Both kernels the mode reads side by side, as a (1, frame_length, 1, filters) image kernel."""
        xp = array_module(self._kernels()[0].value)
        kernel = xp.concatenate([k.value.astype(dtype, copy=False) for k in self._kernels()], axis=-1)
        return xp.ascontiguousarray(kernel.reshape((1,) + kernel.shape))

    def _signals(self, x):
        """(batch * channels, 1, time, 1): every channel a one-channel image of height 1."""
        if self.data_format == "channels_last":
            x = x.transpose(0, 2, 1)
        return contiguous(x).reshape(x.shape[0] * x.shape[1], 1, x.shape[2], 1)

    def _adjust(self, z):
        """(batch, channels, frames, bins) to Keras's output layout."""
        b, c, t, f = z.shape
        if self.data_format == "channels_last":
            z = z.transpose(0, 2, 3, 1) if self.expand_dims else z.transpose(0, 2, 1, 3).reshape(b, t, c * f)
        elif not self.expand_dims:
            z = z.transpose(0, 1, 3, 2).reshape(b, c * f, t)
        return contiguous(z)

    def _unadjust(self, dy, shape):
        """The output gradient back in (batch, channels, frames, bins), ``shape`` being that layout's."""
        b, c, t, f = shape
        if self.data_format == "channels_last":
            dz = dy.transpose(0, 3, 1, 2) if self.expand_dims else dy.reshape(b, t, c, f).transpose(0, 2, 1, 3)
        else:
            dz = dy if self.expand_dims else dy.reshape(b, c, f, t).transpose(0, 1, 3, 2)
        return contiguous(dz)

    def _as_input(self, x):
        # as Keras, integer signals are refused rather than cast (the base layer casts them to the layer's dtype)
        x = super()._as_input(x)
        if numpy.dtype(x.dtype).kind != "f":
            raise TypeError(f"STFTSpectrogram layer '{self.name}': invalid input type. Expected float16, float32 "
                            f"or float64. Received: input type={numpy.dtype(x.dtype).name}")
        return x

    def call(self, x, training=False):
        batch, time, channels = self._check_shape(x.shape)
        xp = array_module(x)
        image = self._signals(x)
        geometry = self._geometry(time)
        y = conv2d_forward(image, self._planar_kernel(x.dtype), **geometry)
        frames, bins = y.shape[2], self._bins
        y = y.reshape(batch, channels, frames, y.shape[3])
        re = None if self.mode == "imag" else y[..., :bins]
        im = None if self.mode == "real" else (y if self.mode == "imag" else y[..., bins:])
        if self.mode == "real":
            z = re
        elif self.mode == "imag":
            z = im
        elif self.mode == "stft":
            z = y
        elif self.mode == "angle":
            z = xp.arctan2(im, re)
        else:
            power = re * re + im * im
            if self.mode == "psd":
                z = power.copy()
                z[..., 1:-1] += power[..., 1:-1]
            else:
                eps = x.dtype.type(backend.epsilon())
                z = xp.sqrt(xp.maximum(power, eps))
                if self.mode == "log":
                    z = xp.log(xp.maximum(z, eps))
        self._saved = (image, geometry, re, im, z, y.shape) if training else None
        return self._adjust(z)

    def backward(self, dy):
        image, geometry, re, im, z, y_shape = self.saved()
        dz = self._unadjust(dy, z.shape)
        xp = array_module(dz)
        bins = self._bins
        if self.mode in ("real", "imag", "stft"):
            parts = [dz]
        elif self.mode == "angle":
            r2 = re * re + im * im
            parts = [-dz * im / r2, dz * re / r2]
        else:
            if self.mode == "psd":
                dpower = dz.copy()
                dpower[..., 1:-1] += dz[..., 1:-1]
            else:
                eps = dz.dtype.type(backend.epsilon())
                power = re * re + im * im
                magnitude = xp.sqrt(xp.maximum(power, eps))
                dmag = dz
                if self.mode == "log":
                    dmag = dz * _gate(magnitude, eps) / xp.maximum(magnitude, eps)
                dpower = dmag * _gate(power, eps) * 0.5 / magnitude
            parts = [2 * re * dpower, 2 * im * dpower]
        dyy = parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=-1)
        dyy = contiguous(dyy.reshape(image.shape[0], 1, y_shape[2], y_shape[3]))
        kernel = self._planar_kernel(dz.dtype)
        if self.trainable:
            dk = conv2d_backward_kernel(image, dyy, kernel.shape, **geometry).reshape(kernel.shape[1:])
            for i, variable in enumerate(self._kernels()):
                variable.grad = contiguous(dk[..., i * bins:(i + 1) * bins])
        if not self.input_gradient_wanted:
            return None
        dx = conv2d_backward_input(dyy, kernel, image.shape, **geometry)
        b, c = z.shape[:2]
        dx = dx.reshape(b, c, image.shape[2])
        return contiguous(dx.transpose(0, 2, 1) if self.data_format == "channels_last" else dx)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "frame_length": self.frame_length,
                "frame_step": self.frame_step, "fft_length": self.fft_length, "window": self.window,
                "periodic": self.periodic, "scaling": self.scaling, "padding": self.padding,
                "data_format": self.data_format, "expand_dims": self.expand_dims}


# Keras's (HTK's) mel scale: mel(f) = 1127 ln(1 + f / 700).
_MEL_BREAK_FREQUENCY_HERTZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


def _hertz_to_mel(hertz):
    return _MEL_HIGH_FREQUENCY_Q * numpy.log(1.0 + hertz / numpy.float32(_MEL_BREAK_FREQUENCY_HERTZ))


def linear_to_mel_weight_matrix(num_mel_bins=20, num_spectrogram_bins=129, sampling_rate=8000,
                                lower_edge_hertz=125.0, upper_edge_hertz=3800.0):
    """Keras's ``MelSpectrogram.linear_to_mel_weight_matrix``: the float32 ``(num_spectrogram_bins,
    num_mel_bins)`` matrix of triangular filters (peak 1, linear in mel) that maps a linear spectrogram's bins
    from 0 to ``sampling_rate / 2`` onto mel bands spanning ``lower_edge_hertz`` to ``upper_edge_hertz``; the DC
    bin's row is zero (HTK's convention). Computed in float32 as Keras computes it."""
    f32 = numpy.float32
    nyquist = f32(sampling_rate) / f32(2.0)
    linear = numpy.linspace(f32(0.0), nyquist, int(num_spectrogram_bins), dtype=f32)[1:]
    bins_mel = _hertz_to_mel(linear)[:, None]
    edges = numpy.linspace(_hertz_to_mel(f32(lower_edge_hertz)), _hertz_to_mel(f32(upper_edge_hertz)),
                           int(num_mel_bins) + 2, dtype=f32)
    lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = numpy.maximum(f32(0.0), numpy.minimum(lower_slopes, upper_slopes))
    return numpy.pad(weights, [[1, 0], [0, 0]]).astype(f32)


def _number(value, what, where, positive=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or \
            (positive and value <= 0):
        raise ValueError(f"{where}: `{what}` must be a {'positive ' if positive else ''}finite number, got "
                         f"{value!r}.")
    return value


class MelSpectrogram(Layer):
    """Keras's ``MelSpectrogram(fft_length=2048, sequence_stride=512, sequence_length=None, window="hann",
    sampling_rate=16000, num_mel_bins=128, min_freq=20.0, max_freq=None, power_to_db=True, top_db=80.0,
    mag_exp=2.0, min_power=1e-10, ref_power=1.0)``: audio ``(samples,)`` or ``(batch, samples)`` to ``(num_mel_bins,
    frames)`` or ``(batch, num_mel_bins, frames)``.

    The signal is reflect-padded by ``fft_length // 2`` on both sides and cut into frames of ``fft_length``
    samples every ``sequence_stride`` (``1 + samples // sequence_stride`` frames for an even ``fft_length``),
    each windowed by ``window`` ("hann" or "hamming", periodic as torch's; the values themselves; or None) of
    ``sequence_length`` samples centred in the frame. Then ``|stft| ** mag_exp``, the mel filterbank
    (``linear_to_mel_weight_matrix``) and, with ``power_to_db``, ``10 log10(max(S, min_power)) - 10
    log10(max(|ref_power|, min_power))`` clipped from below at ``top_db`` under the largest value of the whole
    input. Computed in float32 (float64 under a float64 policy), as Keras computes it.

    Keras's ``compute_output_shape`` gives ``(samples + sequence_stride + 1) // sequence_stride`` frames, one more
    than its call returns when ``samples + 1`` is a multiple of ``sequence_stride``; here the symbolic shape is
    the one the call returns. Under a float64 policy it computes in float64 throughout, where Keras 3.15 drops
    to float32 from the power on (its result type of float64 and a Python float is float32).
    """

    fixed_input_axes = ()     # any number of samples

    def __init__(self, fft_length=2048, sequence_stride=512, sequence_length=None, window="hann",
                 sampling_rate=16000, num_mel_bins=128, min_freq=20.0, max_freq=None, power_to_db=True, top_db=80.0,
                 mag_exp=2.0, min_power=1e-10, ref_power=1.0, **kwargs):
        where = "MelSpectrogram"
        self.fft_length = _positive_int(fft_length, "fft_length", where)
        self.sequence_stride = _positive_int(sequence_stride, "sequence_stride", where)
        self.sequence_length = _positive_int(sequence_length, "sequence_length", where, allow_none=True) \
            or self.fft_length
        if self.fft_length < self.sequence_length:
            raise ValueError(f"{where}: `fft_length` must be greater than or equal to `sequence_length`. Received: "
                             f"`sequence_length`={self.sequence_length}, `fft_length`={self.fft_length}.")
        if isinstance(window, str):
            if window not in ("hann", "hamming"):
                raise ValueError(f"{where}: a window named by a string is 'hann' or 'hamming', got {window!r}; give "
                                 "the values themselves for another.")
        elif window is not None:
            values = numpy.asarray(backend.to_numpy(window) if hasattr(window, "shape") else window)
            if values.shape != (self.sequence_length,) or values.dtype.kind not in "iuf":
                raise ValueError(f"{where}: `window` given as values must be {self.sequence_length} numbers "
                                 f"(sequence_length), got shape {values.shape} of {values.dtype.name}.")
            window = values.tolist()     # a list, which a config file holds
        self.window = window
        self.sampling_rate = _number(sampling_rate, "sampling_rate", where, positive=True)
        self.num_mel_bins = _positive_int(num_mel_bins, "num_mel_bins", where)
        self.min_freq = _number(min_freq, "min_freq", where)
        self.max_freq = max_freq or int(sampling_rate / 2)
        _number(self.max_freq, "max_freq", where, positive=True)
        self.power_to_db = bool(power_to_db)
        self.top_db = _number(top_db, "top_db", where)
        self.mag_exp = _number(mag_exp, "mag_exp", where)
        self.min_power = _number(min_power, "min_power", where)
        self.ref_power = _number(ref_power, "ref_power", where)
        super().__init__(**kwargs)

    def _check_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) not in (1, 2):
            raise ValueError(f"MelSpectrogram layer '{self.name}' expects audio of shape (samples,) or (batch, "
                             f"samples), got shape {shape}.")
        samples = shape[-1]
        if samples is not None and samples <= self.fft_length // 2:
            raise ValueError(f"MelSpectrogram layer '{self.name}': a signal of {samples} samples (shape {shape}) "
                             f"is too short for fft_length={self.fft_length}: the reflect padding of "
                             f"{self.fft_length // 2} samples needs more than that many.")
        return shape

    def build(self, input_shape):
        self._check_shape(input_shape)

    def compute_output_shape(self, input_shape):
        shape = self._check_shape(input_shape)
        samples = shape[-1]
        frames = None if samples is None else frame_count(samples, self.fft_length, self.sequence_stride, True)
        return shape[:-1] + (self.num_mel_bins, frames)

    def _stft_arguments(self, dtype):
        window = self.window
        if window is not None and not isinstance(window, str):
            window = numpy.asarray(backend.to_numpy(window) if hasattr(window, "shape") else window, dtype=dtype)
        return (self.sequence_length, self.sequence_stride, self.fft_length, window, True)

    def _matrix(self, bins, dtype, xp):
        matrix = linear_to_mel_weight_matrix(self.num_mel_bins, bins, self.sampling_rate, self.min_freq,
                                             self.max_freq)
        return xp.asarray(matrix.astype(dtype))

    def call(self, x, training=False):
        self._check_shape(x.shape)
        xp = array_module(x)
        given = x.dtype
        dtype = numpy.dtype("float64" if given == numpy.float64 else "float32")
        x = x.astype(dtype, copy=False)
        re, im = stft_forward(x, *self._stft_arguments(dtype))
        magnitude = xp.sqrt(re * re + im * im)
        spec = magnitude ** dtype.type(self.mag_exp)
        matrix = self._matrix(re.shape[-1], dtype, xp)
        mel = spec @ matrix
        out, db = mel, None
        if self.power_to_db:
            floor = dtype.type(self.min_power)
            log_spec = dtype.type(10.0) * xp.log10(xp.maximum(mel, floor))
            log_spec = log_spec - dtype.type(10.0) * xp.log10(xp.maximum(dtype.type(abs(self.ref_power)), floor))
            threshold = log_spec.max() - dtype.type(self.top_db)
            out = xp.maximum(log_spec, threshold)
            db = (log_spec, threshold)
        self._saved = (x, re, im, magnitude, mel, matrix, db, given) if training else None
        return contiguous(xp.swapaxes(out, -1, -2).astype(given, copy=False))

    def backward(self, dy):
        x, re, im, magnitude, mel, matrix, db, given = self.saved()
        if not self.input_gradient_wanted:
            return None
        xp = array_module(x)
        dtype = x.dtype
        g = xp.swapaxes(dy, -1, -2).astype(dtype)
        if db is not None:
            log_spec, threshold = db
            # maximum(log_spec, threshold): the threshold's share goes to the largest value(s), evenly (torch's
            # rule for a full max), as it is that value less top_db
            dthreshold = (g * _gate(threshold, log_spec)).sum()
            peaks = (log_spec == log_spec.max()).astype(dtype)
            g = g * _gate(log_spec, threshold) + dthreshold * peaks / peaks.sum()
            floor = dtype.type(self.min_power)
            g = g * dtype.type(10.0 / math.log(10.0)) * _gate(mel, floor) / xp.maximum(mel, floor)
        dspec = g @ matrix.T
        e = dtype.type(self.mag_exp)
        dmagnitude = dspec * e * magnitude ** (e - 1)
        safe = xp.where(magnitude > 0, magnitude, dtype.type(1))
        scale = xp.where(magnitude > 0, dmagnitude / safe, dtype.type(0))
        dx, = stft_backward([scale * re, scale * im], (x,), None, *self._stft_arguments(dtype))
        return contiguous(dx.astype(given, copy=False))

    def get_config(self):
        return {**super().get_config(), "fft_length": self.fft_length, "sequence_stride": self.sequence_stride,
                "sequence_length": self.sequence_length, "window": self.window, "sampling_rate": self.sampling_rate,
                "num_mel_bins": self.num_mel_bins, "min_freq": self.min_freq, "max_freq": self.max_freq,
                "power_to_db": self.power_to_db, "top_db": self.top_db, "mag_exp": self.mag_exp,
                "min_power": self.min_power, "ref_power": self.ref_power}
