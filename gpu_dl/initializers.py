"""Weight initializers: the Keras 3 catalogue.

An initializer is called as ``init(shape, dtype=None)`` and returns a NumPy
array of that shape and float dtype (``backend.floatx()`` by default). Values
are made on the host and the layer copies them to its device, so the same
seed gives the same initial weights on CPU and GPU.

Random initializers take ``seed``: an integer gives the same values on every
call; ``None`` draws from gpu_dl's global generator, which
``gpu_dl.backend.set_random_seed`` makes reproducible (and successive calls
then give different values, so layers sharing one instance differ).
"""
from __future__ import annotations

import inspect
import math
import numbers

import numpy

from . import backend
from .catalogue import from_keras_config, keras_config, lookup

# Keras divides the truncated-normal stddev by the stddev of a unit normal
# truncated at +-2, so the truncated draw keeps the wanted variance.
_TRUNCATION_STDDEV = 0.87962566103423978


# ------------------------------------------------------------------ helpers
def _number(value, name, owner, *, positive=False, finite=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: argument `{name}` must be a number, got {value!r}.")
    value = float(value)
    if finite and not math.isfinite(value):
        raise ValueError(f"{owner}: argument `{name}` must be finite, got {value!r}.")
    if positive and not value > 0:
        raise ValueError(f"{owner}: argument `{name}` must be > 0, got {value!r}.")
    return value


def _seed(seed, owner):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{owner}: argument `seed` must be a non-negative integer or None, got {seed!r}.")
    return int(seed)


def _shape(shape, owner):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{owner}: `shape` must be a tuple of non-negative integers, got {shape!r}.") from None
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise ValueError(f"{owner}: `shape` must be a tuple of non-negative integers, got {shape!r}.")
    return tuple(int(d) for d in dims)


def compute_fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) as Keras computes them.

    Dense kernels ``(in, out)``; convolution kernels ``(*spatial, cin, cout)``
    multiply the channels by the receptive field size; a 1-D shape has both
    fans equal to its length. ``input_axes``/``output_axes``, when both given,
    name the axes whose sizes multiply into each fan.
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (int(math.prod(shape[a] for a in input_axes)),
                int(math.prod(shape[a] for a in output_axes)))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _truncated_normal(rng, shape, mean, stddev):
    """Normal draws with those beyond 2 stddev from the mean thrown away and redrawn (as Keras)."""
    count = math.prod(shape)
    lower, upper = mean - 2.0 * stddev, mean + 2.0 * stddev
    kept = numpy.empty(0)
    while kept.size < count:
        batch = rng.normal(mean, stddev, size=count)
        kept = numpy.concatenate([kept, batch[(batch >= lower) & (batch <= upper)]])
    return kept[:count].reshape(shape)


# ------------------------------------------------------------- base classes
class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype=None)`` and ``get_config``."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(shape, dtype=None).")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class RandomInitializer(Initializer):
    """An initializer that draws from ``backend.make_rng(seed)``."""

    def __init__(self, seed=None):
        self.seed = _seed(seed, type(self).__name__)

    def _rng(self):
        return backend.make_rng(self.seed)

    def get_config(self):
        return {"seed": self.seed}


# ---------------------------------------------------------------- constants
class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return numpy.zeros(_shape(shape, "Zeros"), dtype=backend.standardize_dtype(dtype, "Zeros: dtype"))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return numpy.ones(_shape(shape, "Ones"), dtype=backend.standardize_dtype(dtype, "Ones: dtype"))


class Constant(Initializer):
    """Every element ``value`` (a number, or an array that broadcasts to the shape)."""

    def __init__(self, value=0.0):
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) or hasattr(value, "__len__")
                                           or hasattr(value, "shape")):
            raise ValueError(f"Constant: argument `value` must be a number or an array, got {value!r}.")
        if not isinstance(value, numbers.Real):
            value = backend.to_numpy(value).tolist() if hasattr(value, "shape") else list(value)
        self.value = value

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, "Constant")
        dtype = backend.standardize_dtype(dtype, "Constant: dtype")
        try:
            return numpy.broadcast_to(numpy.asarray(self.value, dtype=dtype), shape).copy()
        except ValueError:
            raise ValueError(f"Constant: `value` of shape {numpy.shape(self.value)} does not broadcast "
                             f"to the requested shape {shape}.") from None

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; rectangular allowed)."""

    def __init__(self, gain=1.0):
        self.gain = _number(gain, "gain", "Identity")

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, "Identity")
        if len(shape) != 2:
            raise ValueError(f"Identity: can only initialize 2-D matrices, got shape={shape} of rank {len(shape)}.")
        dtype = backend.standardize_dtype(dtype, "Identity: dtype")
        return (self.gain * numpy.eye(*shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


class STFT(Initializer):
    """Kernels of the short-time Fourier transform, as a convolution computes it (Keras's ``STFT``).

    ``STFT(side="real", window="hann", scaling="density", periodic=False)`` fills a shape
    ``(frame_length, 1, fft_length // 2 + 1)`` with ``cos`` (``side="real"``) or ``sin`` (``"imag"``) of
    ``-2 pi t f / n``, ``n = 2 * (shape[-1] - 1)``, times the window: a name of ``scipy.signal.get_window``
    (periodic or symmetric as ``periodic`` says), the values themselves, or None for none. ``scaling``
    divides by the window's L2 norm ("density") or its sum of absolute values ("spectrum"), or not (None).
    The values are computed in the dtype asked for, step by step as Keras computes them.
    """

    def __init__(self, side="real", window="hann", scaling="density", periodic=False):
        if side not in ("real", "imag"):
            raise ValueError(f"STFT: `side` should be 'real' or 'imag', not {side!r}.")
        if isinstance(window, str):
            stft_window_values(window, 1, False, "STFT")      # an unknown name fails now, as in Keras
        elif window is not None:
            window = backend.to_numpy(window).tolist() if hasattr(window, "shape") else window
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError(f"STFT: `scaling` is invalid, it must be None, 'density' or 'spectrum'. Received "
                             f"scaling={scaling!r}.")
        self.side = side
        self.window = window
        self.scaling = scaling
        self.periodic = bool(periodic)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, "STFT")
        if len(shape) != 3:
            raise ValueError(f"STFT: the shape must be (frame_length, input_channels, fft_length // 2 + 1), got "
                             f"{shape}.")
        dtype = numpy.dtype(backend.standardize_dtype(dtype, "STFT: dtype"))
        frame_length, _, bins = shape
        half = dtype.type((bins - 1) * 2)
        freq = (numpy.arange(bins, dtype=dtype) / half).reshape(1, 1, bins)
        time = numpy.arange(frame_length, dtype=dtype).reshape(frame_length, 1, 1)
        args = (dtype.type(-2) * time) * freq * numpy.arccos(dtype.type(-1))
        kernel = (numpy.cos(args) if self.side == "real" else numpy.sin(args)).astype(dtype, copy=False)
        if self.window is None:
            return numpy.broadcast_to(kernel, shape).copy()
        win = stft_window_values(self.window, frame_length, self.periodic, "STFT").astype(dtype)
        win = win.reshape(frame_length, 1, 1)
        if self.scaling == "density":
            scale = numpy.sqrt(numpy.sum(numpy.square(win)))
        elif self.scaling == "spectrum":
            scale = numpy.sum(numpy.abs(win))
        else:
            scale = dtype.type(1)
        return numpy.broadcast_to((kernel * win / scale).astype(dtype, copy=False), shape).copy()

    def get_config(self):
        return {"side": self.side, "window": self.window, "periodic": self.periodic, "scaling": self.scaling}


def stft_window_values(window, length, periodic, owner):
    """A window of ``length`` float64 values: by name through ``scipy.signal.get_window`` (``periodic`` gives
    its ``fftbins``), as Keras reads it, or the given values, which must number ``length``."""
    if isinstance(window, (str, tuple)):
        from scipy import signal
        try:
            return numpy.asarray(signal.get_window(window, length, fftbins=bool(periodic)), dtype="float64")
        except ValueError as e:
            raise ValueError(f"{owner}: unknown `window` {window!r} ({e}); use a name of scipy.signal.get_window "
                             "such as 'hann' or 'hamming', the values themselves, or None.") from None
    values = numpy.asarray(backend.to_numpy(window) if hasattr(window, "shape") else window, dtype="float64")
    if values.shape != (length,):
        raise ValueError(f"{owner}: the shape of `window` must be equal to [frame_length] = [{length}], got "
                         f"{values.shape}.")
    return values


# ------------------------------------------------------------------- random
class RandomNormal(RandomInitializer):
    """Normal draws with ``mean`` and ``stddev``."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _number(mean, "mean", "RandomNormal")
        self.stddev = _number(stddev, "stddev", "RandomNormal", positive=True)
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, "RandomNormal")
        dtype = backend.standardize_dtype(dtype, "RandomNormal: dtype")
        return self._rng().normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomInitializer):
    """Normal draws with ``mean`` and ``stddev``, redrawn when beyond 2 stddev of the mean."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _number(mean, "mean", "TruncatedNormal")
        self.stddev = _number(stddev, "stddev", "TruncatedNormal", positive=True)
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, "TruncatedNormal")
        dtype = backend.standardize_dtype(dtype, "TruncatedNormal: dtype")
        return _truncated_normal(self._rng(), shape, self.mean, self.stddev).astype(dtype)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(RandomInitializer):
    """Uniform draws in ``[minval, maxval)``."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = _number(minval, "minval", "RandomUniform")
        self.maxval = _number(maxval, "maxval", "RandomUniform")
        if not self.minval < self.maxval:
            raise ValueError(f"RandomUniform: argument `minval` ({minval!r}) must be less than "
                             f"`maxval` ({maxval!r}).")
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, "RandomUniform")
        dtype = backend.standardize_dtype(dtype, "RandomUniform: dtype")
        return self._rng().uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    """Draws whose variance is ``scale / n``, n the fan chosen by ``mode``.

    ``distribution``: ``"truncated_normal"`` (``"normal"`` means the same, as in
    Keras), ``"untruncated_normal"`` or ``"uniform"`` (limit ``sqrt(3 * scale / n)``).
    """

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        owner = type(self).__name__
        self.scale = _number(scale, "scale", owner, positive=True)
        if mode not in self.MODES:
            raise ValueError(f"{owner}: argument `mode` must be one of {self.MODES}, got {mode!r}.")
        if not isinstance(distribution, str):
            raise ValueError(f"{owner}: argument `distribution` must be one of {self.DISTRIBUTIONS}, "
                             f"got {distribution!r}.")
        word = distribution.lower()
        word = "truncated_normal" if word == "normal" else word
        if word not in self.DISTRIBUTIONS:
            raise ValueError(f"{owner}: argument `distribution` must be one of {self.DISTRIBUTIONS}, "
                             f"got {distribution!r}.")
        self.mode = mode
        self.distribution = word
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        owner = type(self).__name__
        shape = _shape(shape, owner)
        dtype = backend.standardize_dtype(dtype, f"{owner}: dtype")
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            values = _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / _TRUNCATION_STDDEV)
        elif self.distribution == "untruncated_normal":
            values = rng.normal(0.0, math.sqrt(scale), size=shape)
        else:
            limit = math.sqrt(3.0 * scale)
            values = rng.uniform(-limit, limit, size=shape)
        return values.astype(dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class _PresetVarianceScaling(VarianceScaling):
    """VarianceScaling with a fixed (scale, mode, distribution): only the seed and axes vary."""

    PRESET = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        scale, mode, distribution = self.PRESET
        super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}


class GlorotUniform(_PresetVarianceScaling):
    """Uniform in ``+-sqrt(6 / (fan_in + fan_out))``."""
    PRESET = (1.0, "fan_avg", "uniform")


class GlorotNormal(_PresetVarianceScaling):
    """Truncated normal with stddev ``sqrt(2 / (fan_in + fan_out))`` (before the truncation correction)."""
    PRESET = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_PresetVarianceScaling):
    """Uniform in ``+-sqrt(6 / fan_in)``."""
    PRESET = (2.0, "fan_in", "uniform")


class HeNormal(_PresetVarianceScaling):
    """Truncated normal with stddev ``sqrt(2 / fan_in)`` (before the truncation correction)."""
    PRESET = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_PresetVarianceScaling):
    """Uniform in ``+-sqrt(3 / fan_in)``."""
    PRESET = (1.0, "fan_in", "uniform")


class LecunNormal(_PresetVarianceScaling):
    """Truncated normal with stddev ``sqrt(1 / fan_in)`` (before the truncation correction)."""
    PRESET = (1.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    """``gain`` times an orthogonal matrix, reshaped to the requested shape.

    The shape is flattened to ``(prod(shape[:-1]), shape[-1])``; a normal
    matrix of the taller orientation is QR-factorised and the columns of Q are
    multiplied by the signs of R's diagonal, so Q is uniformly distributed.
    Wide shapes get the transpose: orthonormal rows instead of columns.
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = _number(gain, "gain", "Orthogonal")
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, "Orthogonal")
        dtype = backend.standardize_dtype(dtype, "Orthogonal: dtype")
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the tensor to initialize must be at least 2-D, "
                             f"got shape={shape} of rank {len(shape)}.")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        if rows == 0 or cols == 0:
            return numpy.zeros(shape, dtype=dtype)
        a = self._rng().normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
        q, r = numpy.linalg.qr(a)
        q = q * numpy.sign(numpy.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


class _FunctionInitializer(Initializer):
    """A user's ``f(shape, dtype)`` (or a fixed array) whose result is checked and converted."""

    def __init__(self, fn, name):
        self.fn = fn
        self.name = name

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, f"initializer {self.name}")
        dtype = backend.standardize_dtype(dtype, f"initializer {self.name}: dtype")
        value = backend.to_numpy(self.fn(shape, dtype=dtype)).astype(dtype, copy=False)
        if value.shape != shape:
            raise ValueError(f"initializer {self.name} returned an array of shape {value.shape}, "
                             f"expected {shape}.")
        return value

    def __repr__(self):
        return f"<initializer {self.name}>"


# ----------------------------------------------------------------- catalogue
_CLASSES = (Zeros, Ones, Constant, Identity, STFT, RandomNormal, TruncatedNormal, RandomUniform,
            VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform,
            LecunNormal, Orthogonal)

# Keras's snake-case names of the classes, plus its compatibility aliases.
_TABLE = {
    "zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
    "identity": Identity, "identity_initializer": Identity,
    "stft": STFT, "stft_initializer": STFT,
    "random_normal": RandomNormal, "normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "random_uniform": RandomUniform, "uniform": RandomUniform,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal, "orthogonal_initializer": Orthogonal,
}

# Function-style aliases, as Keras exports them (they are the classes).
zeros, ones, constant, identity = Zeros, Ones, Constant, Identity
random_normal, truncated_normal, random_uniform = RandomNormal, TruncatedNormal, RandomUniform
variance_scaling, orthogonal = VarianceScaling, Orthogonal
# Keras's class-name aliases, kept for configs written by older Keras versions.
IdentityInitializer, OrthogonalInitializer, STFTInitializer = Identity, Orthogonal, STFT
stft = STFT
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal


def serialize(initializer):
    """Keras's config dict for an initializer: ``{"module", "class_name", "config", "registered_name"}``."""
    if initializer is None:
        return None
    if isinstance(initializer, _FunctionInitializer):
        fn = initializer.fn
        return {"module": getattr(fn, "__module__", None), "class_name": "function",
                "config": initializer.name, "registered_name": initializer.name}
    if not isinstance(initializer, Initializer):
        raise TypeError(f"serialize expects an Initializer, got {initializer!r}.")
    return keras_config(initializer, "keras.initializers", type(initializer) in _CLASSES)


def deserialize(config, custom_objects=None):
    """The initializer a ``serialize`` dict (or a Keras one) describes; ``custom_objects`` maps names to
    classes."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"An initializer config must be a dict with 'class_name' and 'config', got {config!r}.")
    if config["class_name"] == "function":
        raise ValueError(f"The initializer config names the custom function {config.get('config')!r}, which "
                         "cannot be rebuilt from its name: pass the function itself.")
    return from_keras_config("initializers", config, _TABLE, custom_objects)


def get(identifier):
    """An initializer from a name, an instance, a config dict, a class, an array or ``f(shape, dtype)``.

    ``None`` gives ``None``. Names are Keras's (``"glorot_uniform"``,
    ``"GlorotUniform"``, ``"he_normal"``, ``"zeros"``, ...). An array is a
    fixed value: asking it for another shape is a ValueError.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        return lookup("initializers", identifier, _TABLE)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if inspect.isclass(identifier):
        if issubclass(identifier, Initializer):
            return identifier()
        raise TypeError(f"initializer class {identifier.__name__} is not a gpu_dl.initializers.Initializer.")
    if isinstance(identifier, (numpy.ndarray, numpy.generic)) or type(identifier).__module__.startswith("cupy"):
        fixed = backend.to_numpy(identifier)
        return _FunctionInitializer(lambda shape, dtype=None: fixed, f"array of shape {fixed.shape}")
    if callable(identifier):
        return _FunctionInitializer(identifier, getattr(identifier, "__name__", repr(identifier)))
    raise TypeError(f"Could not interpret initializer identifier {identifier!r}: expected a name such as "
                    "'glorot_uniform', an Initializer, a config dict or a callable f(shape, dtype).")
