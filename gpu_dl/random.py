"""Keras's ``keras.random``: ``normal``, ``uniform``, ``truncated_normal``, ``randint``, ``dropout``, ``shuffle``,
``categorical``, ``gamma``, ``beta``, ``binomial`` and ``SeedGenerator``, with Keras 3's signatures and defaults
(floatx for the float draws, int32 for ``randint`` and ``categorical``).

Seeds are Keras's: an int draws the same values on every call; a ``SeedGenerator`` (``SeedGenerator(1337)``, kept
as a layer attribute) moves on at each call, the sequence repeating from the same seed; None draws from a global
generator that ``gpu_dl.utils.set_random_seed`` starts afresh. On arrays a function draws at once, with the array
module of the current device (of ``inputs``/``x``/``logits`` where it takes one): NumPy, where the values are
those of Keras's NumPy backend for the same seed, or CuPy, drawing on the GPU (``ops/random_draws.py``).

On symbolic tensors, and in the traced ``call`` of a composite layer (which gpu_dl trains through a graph: see
``models/composite.py``), a function records an operation of the graph instead, which draws afresh at every run
(``layers/keras_ops/random_ops.py``): so a layer whose call does ``keras.random.normal(shape=(batch, dim),
seed=self.seed_generator)``, with ``batch = ops.shape(z)[0]`` (None: the batch size at each run), or
``keras.random.dropout(inputs, rate)`` trains with fresh noise at each step. No gradient goes into the noise.

Where gpu_dl differs: ``categorical`` draws by inverting each row's distribution, not with NumPy's ``choice``
row by row, so its values are not the NumPy backend's; ``shuffle`` permutes each 1-D slice along ``axis`` on its
own (NumPy's and JAX's backends do; TensorFlow's moves whole slices).
"""
from __future__ import annotations

import numbers

import numpy

from . import backend
from .layers.keras_ops import random_ops
from .layers.keras_ops.base import standardize_dtype
from .layers.seed_generator import SeedGenerator, check_seed, draw_seed
from .layers.symbolic import is_symbolic, trace_anchor, traced_constant
from .ops import random_draws

__all__ = ["SeedGenerator", "normal", "uniform", "truncated_normal", "randint", "dropout", "shuffle",
           "categorical", "gamma", "beta", "binomial"]


# ------------------------------------------------------------------ checks
def _shape(shape, where):
    """``shape`` as a tuple of sizes (ints >= 0, or None for the batch size of a traced call)."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        sizes = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: `shape` must be a tuple of sizes, got {shape!r:.100} of type "
                        f"{type(shape).__name__}.") from None
    checked = []
    for n in sizes:
        if n is None:
            checked.append(None)
        elif isinstance(n, numbers.Integral) and not isinstance(n, bool):
            if n < 0:
                raise ValueError(f"{where}: `shape` must hold sizes >= 0, got {sizes}.")
            checked.append(int(n))
        else:
            raise TypeError(f"{where}: `shape` must hold integer sizes (or None for the batch size), got "
                            f"{n!r:.80} of type {type(n).__name__} in {sizes!r:.100}.")
    return tuple(checked)


def _dtype(dtype, where, kinds, default):
    what = {"f": "a float dtype", "iu": "an integer dtype", "iuf": "an integer or float dtype"}[kinds]
    if dtype is None:
        dtype = default
    try:
        name = standardize_dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: `dtype` must be {what}, got {dtype!r}.") from None
    if numpy.dtype(name).kind not in kinds:
        raise ValueError(f"{where} requires {what}; received dtype={name}.")
    return name


def _number(value, name, where, minimum=None, maximum=None, integer=False, above=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{where}: `{name}` must be {'an integer' if integer else 'a number'}, got {value!r:.80} of "
                        f"type {type(value).__name__}.")
    value = int(value) if integer else float(value)
    low = minimum is not None and (value <= minimum if above else value < minimum)
    if low or (maximum is not None and value > maximum) or not numpy.isfinite(value):
        bounds = f"{'>' if above else '>='} {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{where}: `{name}` must be a finite number {bounds}, got {value!r}.")
    return value


def _parameter(value, name, where, minimum=None, maximum=None, integer=False, above=False):
    """A distribution's parameter: a number, or an array of them (kept on the host, broadcast against the shape)."""
    if is_symbolic(value):
        raise TypeError(f"{where}: `{name}` must be a number or an array of numbers; a symbolic tensor is not "
                        "taken (its values are not known when the draw is recorded).")
    if not (hasattr(value, "shape") or isinstance(value, (list, tuple))):
        return _number(value, name, where, minimum, maximum, integer, above)
    array = numpy.asarray(backend.to_numpy(value) if hasattr(value, "shape") else value)
    if array.dtype.kind not in ("iu" if integer else "iuf"):
        raise TypeError(f"{where}: `{name}` must hold {'integers' if integer else 'numbers'}, got an array of "
                        f"{array.dtype.name}.")
    low = minimum is not None and bool((array <= minimum).any() if above else (array < minimum).any())
    if low or (maximum is not None and bool((array > maximum).any())) or not numpy.isfinite(array).all():
        bounds = f"{'>' if above else '>='} {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        raise ValueError(f"{where}: every value of `{name}` must be finite and {bounds}.")
    return array


def _broadcasts(shape, parameters, where):
    """A ValueError unless the array parameters broadcast to ``shape`` (NumPy's rule, as the draws apply it); at a
    None size (the batch size of each run) an array must have size 1."""
    for name, value in parameters.items():
        if not isinstance(value, numpy.ndarray):
            continue
        aligned = shape[len(shape) - value.ndim:] if value.ndim <= len(shape) else None
        if aligned is None or any(m != 1 and (n is None or m != n) for n, m in zip(aligned, value.shape)):
            raise ValueError(f"{where}: `{name}` of shape {value.shape} does not broadcast to the shape {shape} "
                             "drawn" + (" (at a None size, the batch size of each run, an array has size 1)"
                                        if None in shape else "") + ".")


# ------------------------------------------------------------------ draws of a shape
def _draw(kind, shape, dtype, seed, **parameters):
    where = f"keras.random.{kind}"
    seed = check_seed(seed, where)
    shape = _shape(shape, where)
    _broadcasts(shape, parameters, where)
    anchor = trace_anchor()
    if anchor is not None:      # in the traced call of a composite layer: drawn afresh at every run of the graph
        return random_ops.RandomDraw(kind, shape, parameters, dtype, seed).apply(anchor)
    if any(n is None for n in shape):
        raise ValueError(f"{where}: `shape` {shape} holds None. A None size (the batch axis of ops.shape of a "
                         "symbolic tensor) is taken only in the call of a composite layer, which gpu_dl traces "
                         "into a graph where it stands for the batch size of each run; elsewhere give sizes.")
    return getattr(random_draws, kind)(backend.xp(), draw_seed(seed), shape, dtype=dtype, **parameters)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal draws of ``shape`` with ``mean`` and ``stddev`` (floatx unless ``dtype``)."""
    where = "keras.random.normal"
    return _draw("normal", shape, _dtype(dtype, where, "f", backend.floatx()), seed,
                 mean=_number(mean, "mean", where), stddev=_number(stddev, "stddev", where, minimum=0))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Uniform draws of ``shape`` in ``[minval, maxval)`` (floatx unless ``dtype``)."""
    where = "keras.random.uniform"
    return _draw("uniform", shape, _dtype(dtype, where, "f", backend.floatx()), seed,
                 minval=_number(minval, "minval", where), maxval=_number(maxval, "maxval", where))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal draws of ``shape``, each within two ``stddev`` of ``mean`` (those beyond are drawn again)."""
    where = "keras.random.truncated_normal"
    return _draw("truncated_normal", shape, _dtype(dtype, where, "f", backend.floatx()), seed,
                 mean=_number(mean, "mean", where), stddev=_number(stddev, "stddev", where, minimum=0))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers of ``shape`` drawn uniformly from ``[minval, maxval)``."""
    where = "keras.random.randint"
    dtype = _dtype(dtype, where, "iu", "int32")
    minval, maxval = _number(minval, "minval", where, integer=True), _number(maxval, "maxval", where, integer=True)
    info = numpy.iinfo(dtype)
    if not info.min <= minval < maxval <= info.max + 1:
        raise ValueError(f"{where}: needs minval < maxval within {dtype}'s range, got minval={minval}, "
                         f"maxval={maxval}.")
    return _draw("randint", shape, dtype, seed, minval=minval, maxval=maxval)


def gamma(shape, alpha, dtype=None, seed=None):
    """Gamma draws of ``shape`` with concentration ``alpha`` (> 0; a number or an array broadcast to the shape)
    and scale 1."""
    where = "keras.random.gamma"
    return _draw("gamma", shape, _dtype(dtype, where, "f", backend.floatx()), seed,
                 alpha=_parameter(alpha, "alpha", where, minimum=0, above=True))


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Beta draws of ``shape`` with concentrations ``alpha`` and ``beta`` (> 0; numbers or arrays)."""
    where = "keras.random.beta"
    return _draw("beta", shape, _dtype(dtype, where, "f", backend.floatx()), seed,
                 alpha=_parameter(alpha, "alpha", where, minimum=0, above=True),
                 beta_=_parameter(beta, "beta", where, minimum=0, above=True))


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Binomial draws of ``shape``: successes in ``counts`` trials (integers >= 0) of probability ``probabilities``
    (in [0, 1]); numbers or arrays; floats (floatx unless ``dtype``), as Keras gives them."""
    where = "keras.random.binomial"
    return _draw("binomial", shape, _dtype(dtype, where, "f", backend.floatx()), seed,
                 counts=_parameter(counts, "counts", where, minimum=0, integer=True),
                 probabilities=_parameter(probabilities, "probabilities", where, minimum=0, maximum=1))


# ------------------------------------------------------------------ draws on a tensor
def _tensor(x, where, name):
    """``(x, symbolic)``: a symbolic tensor (an array inside a traced call becomes a constant of its graph), or
    an array (numbers, lists and other libraries' tensors: on the current device, floats as floatx, as Keras
    converts them)."""
    if is_symbolic(x):
        return x, True
    array = isinstance(x, numpy.ndarray) or type(x).__module__.startswith("cupy")
    constant = traced_constant(x) if array else None
    if constant is not None:
        return constant, True
    if not array:       # numbers, lists, other libraries' tensors
        try:
            host = numpy.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{where}: `{name}` must be a tensor or an array, got {type(x).__name__} ({e}).") from None
        if host.dtype.kind not in "biuf":
            raise TypeError(f"{where}: `{name}` must hold numbers, got {host.dtype.name}.")
        x = backend.to_device(host, dtype=backend.floatx() if host.dtype.kind == "f" else None)
        constant = traced_constant(x)
        if constant is not None:
            return constant, True
    elif numpy.dtype(x.dtype).kind not in "biuf":
        raise TypeError(f"{where}: `{name}` must hold numbers, got {numpy.dtype(x.dtype).name}.")
    return x, False


def dropout(inputs, rate, noise_shape=None, seed=None):
    """``inputs`` with each element set to 0 with probability ``rate`` (in [0, 1]) and the rest scaled by
    ``1 / (1 - rate)``; ``noise_shape`` (None: the inputs' shape; a None in it: the inputs' size there) is the
    shape of the kept mask, broadcast against the inputs. ``rate=1`` gives zeros, as Keras's does."""
    where = "keras.random.dropout"
    seed = check_seed(seed, where)
    x, symbolic = _tensor(inputs, where, "inputs")
    if numpy.dtype(x.dtype).kind != "f":
        raise TypeError(f"{where}: `inputs` must be a float tensor, got {numpy.dtype(x.dtype).name}.")
    rate = _number(rate, "rate", where, minimum=0, maximum=1)
    if noise_shape is not None:
        noise_shape = _shape(noise_shape, f"{where} (noise_shape)")
        if len(noise_shape) != len(x.shape) or any(
                n is not None and n != 1 and d is not None and n != d for n, d in zip(noise_shape, x.shape)):
            raise ValueError(f"{where}: `noise_shape` {noise_shape} must have the inputs' rank and, at each axis, "
                             f"their size, 1 or None; the inputs have shape {tuple(x.shape)}.")
    if symbolic:
        return random_ops.RandomDropout(rate, noise_shape, seed).apply(x)
    if rate == 0:
        return x
    xp = backend.array_module(x)
    if rate == 1:
        return xp.zeros_like(x)
    shape = x.shape if noise_shape is None else tuple(x.shape[i] if n is None else n
                                                      for i, n in enumerate(noise_shape))
    keep = random_draws.dropout_mask(xp, draw_seed(seed), shape) < 1.0 - rate
    return random_draws.dropout_forward(x, keep, rate)


def _axis(axis, ndim, where):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{where}: `axis` must be an integer, got {axis!r:.80}.")
    if ndim == 0:
        raise ValueError(f"{where}: `x` must have at least one axis to shuffle along; it is a scalar.")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where}: `axis` {axis} is out of range for a tensor of rank {ndim}.")
    return int(axis) % ndim


def shuffle(x, axis=0, seed=None):
    """``x`` with each 1-D slice along ``axis`` put in an order of its own, drawn uniformly."""
    where = "keras.random.shuffle"
    seed = check_seed(seed, where)
    x, symbolic = _tensor(x, where, "x")
    axis = _axis(axis, len(x.shape), where)
    if symbolic:
        return random_ops.RandomShuffle(axis, seed).apply(x)
    xp = backend.array_module(x)
    return xp.take_along_axis(x, random_draws.shuffle_indices(xp, draw_seed(seed), x.shape, axis), axis=axis)


def categorical(logits, num_samples, dtype="int32", seed=None):
    """``num_samples`` class ids per row of ``logits`` (batch, classes), drawn from the row's softmax: a
    (batch, num_samples) tensor of ``dtype``."""
    where = "keras.random.categorical"
    seed = check_seed(seed, where)
    dtype = _dtype(dtype, where, "iuf", "int32")
    num_samples = _number(num_samples, "num_samples", where, minimum=0, integer=True)
    x, symbolic = _tensor(logits, where, "logits")
    if len(x.shape) != 2:
        raise ValueError(f"{where}: `logits` should be a 2-D tensor with shape [batch_size, num_classes]; got shape "
                         f"{tuple(x.shape)}.")
    if x.shape[1] == 0:
        raise ValueError(f"{where}: `logits` has no classes (shape {tuple(x.shape)}).")
    if symbolic:
        return random_ops.RandomCategorical(num_samples, dtype, seed).apply(x)
    return random_draws.categorical(x, draw_seed(seed), num_samples, numpy.dtype(dtype))
