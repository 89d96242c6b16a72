"""Random draws of ``gpu_dl.random``, on NumPy or on the GPU, each a function of a seed pair ``(seed, counter)``.

Every draw starts a generator from its pair, so the same pair gives the same values on one device (a draw is
stateless, as Keras's are; ``layers/seed_generator.py`` makes the pairs). On NumPy the generator is
``numpy.random.default_rng([seed, counter])`` and each draw asks it what Keras's NumPy backend asks (``normal``,
``uniform``, ``integers``, ``gamma``, ``beta``, ``binomial``, and a float64 uniform for dropout's mask), so the
values are the ones Keras's NumPy backend draws for the same seed. On the GPU a CuPy ``RandomState`` of cuRAND's
Philox generator (counter-based: reseeding it costs no kernel) is reseeded per draw with 64 bits mixed from the
pair, and draws there: no host-to-device copy, and the values differ from NumPy's.

Beyond that: ``truncated_normal`` redraws what falls beyond two standard deviations (one host read of the count
left per round, about log(size) rounds); ``categorical`` inverts each row's cumulative distribution at uniform
draws with one ``searchsorted`` over all rows; ``shuffle_indices`` are independent permutations of each 1-D
slice along an axis (NumPy's ``permuted``, and JAX's ``permutation(independent=True)``).
"""
from __future__ import annotations

import math

import numpy

from ..backend import array_module

_PHILOX = 161       # CURAND_RNG_PSEUDO_PHILOX4_32_10
_cupy_states = {}   # the one RandomState per device, reseeded by each draw


class _Draws:
    """A generator for one draw: NumPy's ``Generator`` or CuPy's ``RandomState`` behind one set of methods."""

    def __init__(self, xp, pair):
        self.xp = xp
        self.on_host = xp is numpy
        if self.on_host:
            self.rng = numpy.random.default_rng(numpy.array(pair, dtype=numpy.uint32))
        else:
            # 64 bits of the pair, well mixed, as the seed of a counter-based stream
            key = numpy.random.SeedSequence([int(pair[0]), int(pair[1])]).generate_state(1, numpy.uint64)[0]
            device = xp.cuda.runtime.getDevice()
            state = _cupy_states.get(device)
            if state is None:
                state = _cupy_states[device] = xp.random.RandomState(key, method=_PHILOX)
            else:
                state.seed(key)
            self.rng = state

    def _float(self, dtype):
        # CuPy's samplers give float32 or float64 only; float16 is drawn as float32 and cast.
        return dtype if numpy.dtype(dtype).itemsize >= 4 else numpy.float32

    def uniform(self, shape, low, high, dtype):
        if self.on_host:
            return self.rng.uniform(size=shape, low=low, high=high).astype(dtype)
        return self.rng.uniform(low, high, size=shape, dtype=self._float(dtype)).astype(dtype, copy=False)

    def normal(self, shape, mean, stddev, dtype):
        if self.on_host:
            return self.rng.normal(size=shape, loc=mean, scale=stddev).astype(dtype)
        return self.rng.normal(mean, stddev, size=shape, dtype=self._float(dtype)).astype(dtype, copy=False)

    def integers(self, shape, low, high, dtype):
        if self.on_host:
            return self.rng.integers(low=low, high=high, size=shape, dtype=dtype)
        return self.rng.randint(low, high, size=shape, dtype=dtype)

    def _parameter(self, value):
        return value if self.on_host or not isinstance(value, numpy.ndarray) else self.xp.asarray(value)

    def gamma(self, shape, alpha, dtype):
        if self.on_host:
            return self.rng.gamma(alpha, scale=1.0, size=shape).astype(dtype)
        return self.rng.gamma(self._parameter(alpha), 1.0, size=shape, dtype=self._float(dtype)).astype(
            dtype, copy=False)

    def beta(self, shape, alpha, beta, dtype):
        if self.on_host:
            return self.rng.beta(a=alpha, b=beta, size=shape).astype(dtype)
        return self.rng.beta(self._parameter(alpha), self._parameter(beta), size=shape,
                             dtype=self._float(dtype)).astype(dtype, copy=False)

    def binomial(self, shape, counts, probabilities, dtype):
        if self.on_host:
            return self.rng.binomial(n=counts, p=probabilities, size=shape).astype(dtype)
        return self.rng.binomial(self._parameter(counts), self._parameter(probabilities), size=shape).astype(dtype)

    def random(self, shape, dtype=numpy.float64):
        """Uniform [0, 1) values."""
        if self.on_host:
            return self.rng.uniform(size=shape).astype(dtype, copy=False)
        return self.rng.random_sample(shape, dtype=self._float(dtype)).astype(dtype, copy=False)


def normal(xp, pair, shape, mean, stddev, dtype):
    return _Draws(xp, pair).normal(shape, mean, stddev, dtype)


def uniform(xp, pair, shape, minval, maxval, dtype):
    return _Draws(xp, pair).uniform(shape, minval, maxval, dtype)


def randint(xp, pair, shape, minval, maxval, dtype):
    return _Draws(xp, pair).integers(shape, minval, maxval, dtype)


def gamma(xp, pair, shape, alpha, dtype):
    return _Draws(xp, pair).gamma(shape, alpha, dtype)


def beta(xp, pair, shape, alpha, beta_, dtype):
    return _Draws(xp, pair).beta(shape, alpha, beta_, dtype)


def binomial(xp, pair, shape, counts, probabilities, dtype):
    return _Draws(xp, pair).binomial(shape, counts, probabilities, dtype)


def truncated_normal(xp, pair, shape, mean, stddev, dtype):
    """Normal draws within two standard deviations of the mean: rounds of ``size`` draws, the values inside kept in
    order, until there are enough (Keras's NumPy backend's rounds)."""
    draws = _Draws(xp, pair)
    size = math.prod(shape)
    if size == 0:
        return xp.zeros(shape, dtype=dtype)
    lower, upper = mean - 2 * stddev, mean + 2 * stddev
    kept, count = [], 0
    while count < size:
        batch = draws.normal((size,), mean, stddev, numpy.float64)
        inside = batch[(batch >= lower) & (batch <= upper)]
        kept.append(inside)
        count += int(inside.shape[0])
    return xp.concatenate(kept)[:size].astype(dtype).reshape(shape)


def dropout_mask(xp, pair, noise_shape, dtype=numpy.float64):
    """Uniform [0, 1) draws of ``noise_shape`` (compared with the keep probability by the caller): float64 as
    Keras's NumPy backend draws them, or ``dtype``."""
    return _Draws(xp, pair).random(tuple(noise_shape), dtype)


def dropout_forward(x, keep_mask, rate):
    """``x / (1 - rate)`` where ``keep_mask`` (broadcast against x) holds, 0 elsewhere, in x's dtype."""
    xp = array_module(x)
    keep = 1.0 - rate
    return xp.where(keep_mask, (x / x.dtype.type(keep)).astype(x.dtype, copy=False), x.dtype.type(0))


def dropout_backward(dy, keep_mask, rate):
    return dropout_forward(dy, keep_mask, rate)


def shuffle_indices(xp, pair, shape, axis):
    """For each 1-D slice of an array of ``shape`` along ``axis``, a permutation of its positions (int64, of
    ``shape``): ``take_along_axis(x, indices, axis)`` shuffles x."""
    draws = _Draws(xp, pair)
    shape = tuple(shape)
    line = xp.arange(shape[axis], dtype=numpy.int64).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    if draws.on_host:
        # The permutations NumPy's ``permuted`` makes of x itself: it shuffles each slice whatever it holds.
        return draws.rng.permuted(numpy.broadcast_to(line, shape), axis=axis)
    return xp.argsort(draws.random(shape), axis=axis)


def categorical(logits, pair, num_samples, dtype):
    """``num_samples`` class ids per row of 2-D ``logits``, drawn with the probabilities of the row's softmax."""
    xp = array_module(logits)
    draws = _Draws(xp, pair)
    logits = logits.astype(numpy.float64)
    rows, classes = logits.shape
    e = xp.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = xp.cumsum(e, axis=1)
    # Divided by its last entry, each row ends at 1.0 exactly; adding the row's index then sorts all rows into one
    # increasing sequence that one searchsorted inverts (a row's draws u + i land in its own segment [i, i + 1)).
    offsets = xp.arange(rows, dtype=numpy.float64)[:, None]
    cdf = cdf / cdf[:, -1:] + offsets
    u = draws.random((rows, num_samples)) + offsets
    found = xp.searchsorted(cdf.ravel(), u.ravel(), side="right").reshape(rows, num_samples)
    ids = found - xp.arange(rows, dtype=found.dtype)[:, None] * classes
    return xp.clip(ids, 0, classes - 1).astype(dtype)
