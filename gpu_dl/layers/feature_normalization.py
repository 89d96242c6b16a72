"""``Normalization``, Keras 3's preprocessing layer for continuous features: ``(x - mean) / sqrt(variance)``.

The mean and variance come from ``Normalization(mean=..., variance=...)`` or
from ``layer.adapt(data)``, which computes them as Keras 3.15 does: for each
position along ``axis`` (an int, a tuple of them, or None for one mean and
variance over everything), over all other axes, the population variance.
Tabular data in one call::

    norm = layers.Normalization()
    norm.adapt(x_train)
    model = keras.Sequential([norm, layers.Dense(64, activation="relu"), layers.Dense(1)])

``adapt`` takes a NumPy or CuPy array (NumPy's ``mean`` and ``var`` in the
data's own precision, as Keras takes them for a NumPy array), or an iterable
of batches (a list, a generator, ``(x, y)`` pairs: the ``x`` is used), merged
batch by batch with Keras's formula in the layer's dtype. It checks all the
data before anything changes; the layer is built (if it was not) for the
data's shape.

Adapted statistics are the non-trainable weights ``mean``, ``variance`` and
``count`` (int32, always 0: Keras keeps it for old files and never updates
it), in that order, shaped by the sizes along ``axis``: ``.keras`` and
``.weights.h5`` files move both ways with Keras. Given ones are constants
saved in the config, as in Keras, and the layer then has no weights.

The output is ``(x - mean) / maximum(sqrt(variance), 1e-7)`` (Keras's
backend epsilon), and ``mean + x * maximum(sqrt(variance), 1e-7)`` with
``invert=True``; the gradient passes back through the same scaling.
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import backend
from ..backend import array_module
from .base import Layer, Variable, scoped_path

# Keras's backend.epsilon(): the smallest standard deviation the layer divides by.
EPSILON = 1e-7


def _is_array(data):
    return isinstance(data, numpy.ndarray) or type(data).__module__.startswith("cupy")


def _batch_of(element):
    """The input of one batch an iterable yields: ``x`` of an ``(x, y)`` or ``(x, y, sample_weight)`` tuple."""
    return element[0] if isinstance(element, tuple) else element


class Normalization(Layer):
    """Keras 3's ``Normalization(axis=-1, mean=None, variance=None, invert=False)`` (see the module docstring)."""

    supports_masking = True

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        where = f"Normalization layer '{self.name}'"
        if axis is None:
            axis = ()
        elif isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
            axis = (axis,)
        elif isinstance(axis, (list, tuple)) and all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                                                     for a in axis):
            axis = tuple(axis)
        else:
            raise TypeError(f"{where}: axis must be an integer, a tuple of integers or None, got {axis!r}.")
        self.axis = tuple(int(a) for a in axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"{where}: when setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean!r:.100} and variance={variance!r:.100}")
        if mean is not None:
            mean, variance = self._given(mean, "mean"), self._given(variance, "variance")
            if mean.shape != variance.shape:
                raise ValueError(f"{where}: `mean` and `variance` must have the same shape, got {mean.shape} and "
                                 f"{variance.shape}.")
            if mean.ndim > len(self.axis):
                raise ValueError(f"{where}: the rank of `mean` must be at most the number of axes "
                                 f"({len(self.axis)}); got mean shape {mean.shape} for axis {self.axis}.")
            if (variance < 0).any():
                raise ValueError(f"{where}: `variance` must be >= 0 everywhere (its square root divides the input).")
        self.input_mean, self.input_variance = mean, variance
        self.invert = bool(invert)
        self.adapt_mean = self.adapt_variance = self.count = None
        self._plan = None
        self._constants = None          # (mean, variance) broadcast to the input's rank, when given

    def _given(self, value, what):
        try:
            array = numpy.asarray(backend.to_numpy(value))
        except (TypeError, ValueError):
            array = None
        if array is None or array.dtype.kind not in "biuf" or not numpy.isfinite(array).all():
            raise ValueError(f"Normalization layer '{self.name}': `{what}` must be a finite number or an array of "
                             f"them, got {value!r:.200}.")
        return array

    # ------------------------------------------------------------------ axes
    def _axes_for(self, shape):
        """``(keep, reduce, broadcast_shape)`` for inputs of ``shape``, as Keras's build derives them; a ValueError
        naming the layer when an axis is out of range, repeated, or of unknown size."""
        where = f"Normalization layer '{self.name}'"
        ndim = len(shape)
        if any(not -ndim <= a < ndim for a in self.axis):
            raise ValueError(f"{where}: all `axis` values must be in the range [-ndim, ndim). Received inputs with "
                             f"ndim={ndim} (shape {tuple(shape)}), while axis={self.axis}.")
        keep = tuple(sorted(a % ndim for a in self.axis))
        if len(set(keep)) != len(keep):
            raise ValueError(f"{where}: axis={self.axis} names one axis twice for inputs of rank {ndim}.")
        unknown = [d for d in keep if shape[d] is None]
        if unknown:
            raise ValueError(f"{where}: all `axis` values to be kept must have a known size. Received axis="
                             f"{self.axis}, inputs.shape={tuple(shape)}, with unknown axis at index {unknown[0]}.")
        reduce = tuple(d for d in range(ndim) if d not in keep)
        broadcast = tuple(shape[d] if d in keep else 1 for d in range(ndim))
        return keep, reduce, broadcast

    def _check_fits(self, shape, what):
        """A ValueError when ``shape`` has another rank than the built one or other sizes along ``axis``."""
        built = self._plan["shape"]
        if len(shape) != len(built) or any(shape[d] is not None and shape[d] != built[d] for d in self._plan["keep"]):
            raise ValueError(f"Normalization layer '{self.name}' was built for inputs of shape {built} (rank "
                             f"{len(built)}, sizes {tuple(built[d] for d in self._plan['keep'])} along axis "
                             f"{self.axis}); {what} has shape {tuple(shape)}.")

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        keep, reduce, broadcast = self._axes_for(input_shape)
        sizes = tuple(input_shape[d] for d in keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(sizes, "zeros", name="mean", trainable=False)
            self.adapt_variance = self.add_weight(sizes, "ones", name="variance", trainable=False)
            # Keras's int32 scalar, kept for its files (it never counts anything); 4 bytes, outside the weight
            # budget a load sets.
            self.count = Variable(backend.to_device(numpy.zeros((), numpy.int32)), "count", trainable=False,
                                  path=scoped_path(self, "count"))     # tracked as a weight, after the others
        else:
            self._constants = tuple(backend.to_device(self._broadcast_given(a, keep, broadcast, what), self.dtype)
                                    for a, what in ((self.input_mean, "mean"), (self.input_variance, "variance")))
        self._plan = {"shape": input_shape, "keep": keep, "reduce": reduce, "broadcast": broadcast}

    def _broadcast_given(self, array, keep, broadcast, what):
        """A given mean or variance broadcast to ``broadcast`` as Keras broadcasts it: its axes matched to the kept
        axes from the last one back."""
        expanded = [1] * len(broadcast)
        for i in range(1, array.ndim + 1):
            expanded[keep[-i]] = array.shape[-i]
        try:
            return numpy.broadcast_to(array.reshape(expanded), broadcast)
        except ValueError:
            raise ValueError(f"Normalization layer '{self.name}': `{what}` of shape {array.shape} does not broadcast "
                             f"to the sizes {tuple(broadcast[d] for d in keep)} along axis {self.axis}.") from None

    def check_input_shape(self, shape):
        if self._plan is not None:
            self._check_fits(tuple(shape), "the input")

    def compute_output_shape(self, input_shape):
        self._axes_for(input_shape)
        return tuple(input_shape)

    # ------------------------------------------------------------------ adapt
    def adapt(self, data):
        """Compute the mean and variance of ``data`` (see the module docstring) and store them in the weights."""
        where = f"Normalization layer '{self.name}'"
        if self.input_mean is not None:
            raise ValueError(f"{where} was given its mean and variance; adapt() would replace them. Build a "
                             "Normalization() without them to adapt it to data.")
        if _is_array(data):
            shape, mean, variance = self._whole_array_statistics(data)
        elif isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
            raise TypeError(f"{where}: adapt() takes a NumPy or CuPy array, or an iterable of batches (arrays, or "
                            f"(x, y) tuples), got {type(data).__name__}.")
        else:
            shape, mean, variance = self._batched_statistics(iter(data))
        self.ensure_built(shape)
        self.adapt_mean.assign(backend.to_numpy(mean))
        self.adapt_variance.assign(backend.to_numpy(variance))

    def _checked_data(self, data, what):
        """``data``'s reduce axes and shape, checked against the layer (and against its build, once built)."""
        if not hasattr(data, "shape") or not hasattr(data, "dtype"):
            raise TypeError(f"Normalization layer '{self.name}': adapt() takes arrays; {what} is a "
                            f"{type(data).__name__}.")
        if numpy.dtype(data.dtype).kind not in "biuf":
            raise TypeError(f"Normalization layer '{self.name}': adapt() takes real numbers; {what} holds "
                            f"{numpy.dtype(data.dtype).name}.")
        shape = tuple(int(d) for d in data.shape)
        if self._plan is not None:
            self._check_fits(shape, what)
        _, reduce, _ = self._axes_for(shape)
        if math.prod(shape) == 0:
            raise ValueError(f"Normalization layer '{self.name}': {what} of shape {shape} holds no values to "
                             "compute a mean and variance of.")
        return reduce, shape

    def _whole_array_statistics(self, data):
        reduce, shape = self._checked_data(data, "the data")
        module = array_module(data)
        return shape, module.mean(data, axis=reduce), module.var(data, axis=reduce)

    def _batched_statistics(self, batches):
        """Keras's running merge of per-batch means and variances (the lack-of-fit sum of squares)."""
        first = next(batches, None)
        if first is None:
            raise ValueError(f"Normalization layer '{self.name}': adapt() received an empty iterable (no batches). "
                             "Pass an array, or a non-empty iterable of batches.")
        total_mean = total_variance = None
        total_count = 0
        shape = None
        for index, element in enumerate(_chain(first, batches)):
            batch = _batch_of(element)
            what = f"batch {index}"
            reduce, batch_shape = self._checked_data(batch, what)
            if shape is None:
                shape = batch_shape
            elif len(batch_shape) != len(shape) or any(batch_shape[d] != shape[d] for d in self._axes_for(shape)[0]):
                raise ValueError(f"Normalization layer '{self.name}': adapt() got batches of incompatible shapes: "
                                 f"batch 0 {shape}, {what} {batch_shape} (the sizes along axis {self.axis} and the "
                                 "rank must agree).")
            batch = backend.to_device(batch, self.dtype)
            module = array_module(batch)
            batch_mean, batch_variance = module.mean(batch, axis=reduce), module.var(batch, axis=reduce)
            batch_count = math.prod(batch_shape[d] for d in reduce)
            if total_mean is None:
                total_mean = module.zeros(batch_mean.shape, self.dtype)
                total_variance = module.zeros(batch_mean.shape, self.dtype)
            total_count += batch_count
            batch_weight = float(batch_count) / total_count
            existing_weight = 1.0 - batch_weight
            new_mean = total_mean * existing_weight + batch_mean * batch_weight
            total_variance = ((total_variance + (total_mean - new_mean) ** 2) * existing_weight
                              + (batch_variance + (batch_mean - new_mean) ** 2) * batch_weight)
            total_mean = new_mean
        return shape, total_mean, total_variance

    # ------------------------------------------------------------------ call
    def _mean_and_variance(self):
        """The mean and variance in use (adapted or given), broadcastable against the input."""
        if self._constants is not None:
            return self._constants
        broadcast = self._plan["broadcast"]
        return self.adapt_mean.value.reshape(broadcast), self.adapt_variance.value.reshape(broadcast)

    @property
    def mean(self):
        """Keras's ``mean``: the mean in use, of the input's rank (1 along the reduced axes); None until built."""
        return None if self._plan is None else self._mean_and_variance()[0]

    @property
    def variance(self):
        """Keras's ``variance``, as ``mean``."""
        return None if self._plan is None else self._mean_and_variance()[1]

    def _statistics(self, module):
        """The mean and the divisor ``maximum(sqrt(variance), epsilon)``, broadcastable against the input."""
        mean, variance = self._mean_and_variance()
        return mean, module.maximum(module.sqrt(variance), variance.dtype.type(EPSILON))

    def call(self, x, training=False):
        mean, scale = self._statistics(array_module(x))
        # Keras's order of operations (its torch backend's sqrt may differ from NumPy's by one float32 ulp).
        y = mean + x * scale if self.invert else (x - mean) / scale
        self._saved = (scale,) if training else None
        return y

    def backward(self, dy):
        (scale,) = self.saved()
        if not self.input_gradient_wanted:
            return None
        return dy * scale if self.invert else dy / scale

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": None if self.input_mean is None else self.input_mean.tolist(),
                "variance": None if self.input_variance is None else self.input_variance.tolist()}


def _chain(first, rest):
    yield first
    yield from rest
