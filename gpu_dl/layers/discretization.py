"""``Discretization``, Keras 3's preprocessing layer that buckets continuous values into integer bins.

``bin_boundaries=[b0, b1, ...]`` (increasing) maps ``x`` to the ``i`` with ``b[i-1] <= x < b[i]`` (``0`` below
``b0``, ``len(b)`` from the last on): NumPy's ``digitize``, Keras's ``bucketize(right=True)``, a
``searchsorted(side="right")`` on either backend. Boundaries are compared as float32, as Keras converts them.

``num_bins=n`` with ``layer.adapt(data)`` learns ``n - 1`` boundaries with Keras 3.15's own approximate
quantile summary (``summarize``, ``merge_summaries``, ``compress_summary`` below, the same float32 NumPy
steps, so the same boundaries to the last bit): ``epsilon`` sets the summary's resolution. An array is one
batch; any other iterable (a list included, as in Keras) is a sequence of batches merged one by one.

Output modes (``encode_categorical``): ``"int"`` gives int32 bin ids shaped as the input; ``"one_hot"``,
``"multi_hot"`` and ``"count"`` give vectors of ``len(bin_boundaries) + 1`` in the layer's dtype. The
boundaries (adapted or given) are saved in the config, as Keras saves them; the layer has no weights.
"""
from __future__ import annotations

import numbers

import numpy

from .. import backend
from ..backend import array_module
from .base import Layer
from .category_encoding import checked_mode, encode_categorical, encoded_shape, refuse_sparse

MODES = ("int", "one_hot", "multi_hot", "count")


# ------------------------------------------------------------ Keras 3.15's quantile summary (host NumPy)
def summarize(values, epsilon):
    """``[values, weights]`` (2, k): every ``step``-th sorted value, weighted ``step``."""
    values = numpy.sort(numpy.reshape(values, [-1]))
    elements = numpy.size(values)
    num_buckets = 1.0 / epsilon
    increment = elements / num_buckets
    step = max(increment, 1)
    start = step - 1
    boundaries = values[int(start)::int(step)]
    weights = numpy.ones_like(boundaries) * step
    return numpy.stack([boundaries, weights])


def merge_summaries(prev_summary, next_summary, epsilon):
    merged = numpy.concatenate((prev_summary, next_summary), axis=1)
    merged = numpy.take(merged, numpy.argsort(merged[0]), axis=1)
    return compress_summary(merged, epsilon)


def compress_summary(summary, epsilon):
    """The summary interpolated at cumulative-weight fractions ``epsilon, 2 epsilon, ..., 1``."""
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + numpy.arange(0.0, 1.0, epsilon)
    cum_weights = summary[1].cumsum()
    cum_weight_percents = cum_weights / cum_weights[-1]
    new_bins = numpy.interp(percents, cum_weight_percents, summary[0])
    cum_weights = numpy.interp(percents, cum_weight_percents, cum_weights)
    new_weights = cum_weights - numpy.concatenate((numpy.array([0]), cum_weights[:-1]))
    return numpy.stack((new_bins, new_weights)).astype("float32")


def get_bin_boundaries(summary, num_bins):
    return compress_summary(summary, 1.0 / num_bins)[0, :-1]


class Discretization(Layer):
    """Keras 3's ``Discretization(bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int",
    sparse=False)`` (see the module docstring). Input: real numbers of any shape (rank <= 2 for multi-hot and
    count); output: int32 ids of the input's shape, or encoded vectors. No weights, no input gradient."""

    fixed_input_axes = ()

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int", sparse=False, **kwargs):
        super().__init__(**kwargs)
        where = self._where
        refuse_sparse(sparse, where)
        self.output_mode = checked_mode(output_mode, MODES, where)
        if num_bins is not None and (isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral)
                                     or num_bins < 0):
            raise ValueError(f"{where}: `num_bins` must be an integer >= 0. Received: num_bins={num_bins!r}.")
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(f"{where}: both `num_bins` and `bin_boundaries` should not be set. Received: "
                             f"num_bins={num_bins!r} and bin_boundaries={bin_boundaries!r:.200}.")
        if num_bins is None and bin_boundaries is None:
            raise ValueError(f"{where}: you need to set either `num_bins` or `bin_boundaries`.")
        if not isinstance(epsilon, numbers.Real) or not 0 < epsilon <= 1:
            raise ValueError(f"{where}: `epsilon` must be a number in (0, 1], got {epsilon!r}.")
        self.num_bins = None if num_bins is None else int(num_bins)
        self.epsilon = float(epsilon)
        self.sparse = False
        self.bin_boundaries = None if bin_boundaries is None else self._checked_boundaries(bin_boundaries)
        self.summary = None if self.bin_boundaries is not None else numpy.array([[], []], dtype="float32")

    @property
    def _where(self):
        return f"Discretization layer '{self.name}'"

    def _checked_boundaries(self, boundaries):
        try:
            array = numpy.asarray(backend.to_numpy(boundaries), dtype=numpy.float64)
        except (TypeError, ValueError):
            array = None
        if array is None or array.ndim != 1 or not numpy.isfinite(array).all() or (numpy.diff(array) < 0).any():
            raise ValueError(f"{self._where}: `bin_boundaries` must be a flat list of finite, increasing numbers, "
                             f"got {boundaries!r:.200}.")
        return [float(b) for b in array]

    # ------------------------------------------------------------------ adapt
    def adapt(self, data, steps=None):
        """Learn ``num_bins - 1`` boundaries from ``data`` (an array, or an iterable of batches; ``steps`` caps
        the batches taken from an iterable, as in Keras)."""
        if self.num_bins is None:
            raise ValueError(f"{self._where}: cannot adapt a Discretization layer that has been initialized with "
                             "`bin_boundaries`, use `num_bins` instead.")
        if self.num_bins < 1:
            raise ValueError(f"{self._where}: num_bins=0 gives no bins to adapt; set num_bins >= 1.")
        summary = numpy.array([[], []], dtype="float32")
        if hasattr(data, "shape") and hasattr(data, "dtype"):
            batches = [data]
        elif isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
            raise TypeError(f"{self._where}: adapt() takes an array or an iterable of batches, got "
                            f"{type(data).__name__}.")
        else:
            batches = data
        seen = False
        for index, batch in enumerate(batches):
            if steps is not None and index >= steps:
                break
            if isinstance(batch, tuple):
                batch = batch[0]            # (x, y) pairs: the x
            values = numpy.array(backend.to_numpy(batch))
            if values.dtype.kind not in "biuf" or not numpy.isfinite(values.astype("float64")).all():
                raise ValueError(f"{self._where}: adapt() takes finite real numbers; batch {index} is not that.")
            if values.size:
                summary = merge_summaries(summarize(values.astype("float32"), self.epsilon), summary, self.epsilon)
                seen = True
        if not seen:
            raise ValueError(f"{self._where}: adapt() received no values to compute bin boundaries from.")
        self.summary = summary
        self.bin_boundaries = get_bin_boundaries(summary, self.num_bins).tolist()

    # ------------------------------------------------------------------ call
    @property
    def depth(self):
        return len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins

    def _symbolic_dtype(self):
        # Keras's output spec: int32 bin ids, encoded vectors in the layer's float dtype.
        return "int32" if self.output_mode == "int" else self.compute_dtype

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        return encoded_shape(input_shape, self.output_mode, self.depth)

    def call(self, x, training=False):
        if self.bin_boundaries is None:
            raise ValueError(f"{self._where}: pass `bin_boundaries` at construction or call `adapt(data)` before "
                             "using the layer.")
        xp = array_module(x)
        boundaries = xp.asarray(numpy.asarray(self.bin_boundaries, dtype=numpy.float32))
        ids = xp.searchsorted(boundaries, x, side="right").astype(xp.int32)
        if self.output_mode == "int":
            return ids
        return encode_categorical(ids, self.output_mode, self.depth, self.dtype, where=self._where)

    def backward(self, dy):
        return None

    def get_config(self):
        # Keras's keys, without "trainable": Keras's Discretization.__init__ takes no such argument.
        config = super().get_config()
        config.pop("trainable", None)
        return {**config, "bin_boundaries": self.bin_boundaries, "num_bins": self.num_bins,
                "epsilon": self.epsilon, "output_mode": self.output_mode, "sparse": self.sparse}

    @classmethod
    def from_config(cls, config):
        # An adapted layer's config holds both: rebuild from num_bins, then set the learned boundaries.
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            config = dict(config)
            boundaries = config.pop("bin_boundaries")
            layer = cls(**config)
            layer.bin_boundaries = layer._checked_boundaries(boundaries)
            return layer
        return cls(**config)
