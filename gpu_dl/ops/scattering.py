"""Scatter-adds that run alike on NumPy and CuPy and make the host wait for nothing.

CuPy's ``add.at`` is an atomic-add scatter, but only on targets of int32,
uint32, uint64, float16, float32 and float64 (its atomics' types); ``add_at``
takes every integer and bool dtype too, by adding in a type CuPy scatters
and writing the sums back with NumPy's wrap-around (int64 as uint64: two's
complement sums are the same bits; narrower integers and bool in 32 bits).
``bincount`` is no substitute on the GPU: CuPy's reads its indices' minimum
back to the host to check them, a synchronisation on every call.
"""
from __future__ import annotations

import numpy

from ..backend import array_module

# dtypes CuPy's scatter-add takes as they are
_SCATTERED = frozenset(numpy.dtype(t) for t in ("int32", "uint32", "uint64", "float16", "float32", "float64"))


def add_at(target, index, values):
    """``target[index] += values`` in place, repeated indices adding up (NumPy's ``add.at``; on a bool target, a
    logical or), for every real and bool dtype on NumPy and CuPy."""
    xp = array_module(target)
    dtype = numpy.dtype(target.dtype)
    if xp is numpy or dtype in _SCATTERED:
        xp.add.at(target, index, values)
        return
    if dtype == numpy.int64:
        # as uint64: a view of the same bits, whose wrap-around sums are int64's
        xp.add.at(target.view(xp.uint64), index, xp.asarray(values, dtype=xp.int64).view(xp.uint64))
        return
    wide = xp.uint32 if dtype.kind == "u" else xp.int32
    sums = target.astype(wide)
    xp.add.at(sums, index, xp.asarray(values).astype(wide))
    target[...] = sums != 0 if dtype.kind == "b" else sums.astype(dtype)


def bin_counts(index, size, weights=None):
    """``bincount(index, weights, minlength=size)`` for indices in [0, size): int64 counts, or float64 sums of
    ``weights``, by a scatter-add that reads nothing back (CuPy's bincount checks its indices on the host)."""
    xp = array_module(index)
    if weights is not None:
        return scatter_taps([(index, weights)], size, xp)
    counts = xp.zeros(size, dtype=xp.int64)
    add_at(counts, index, 1)
    return counts


def scatter_pixel_taps(dy, taps):
    """The adjoint of sampling channels_last images at pixel taps: dx (N, H, W, C), of ``dy``'s shape and dtype,
    with each gradient of ``dy`` times its tap's weight and validity added back onto the input pixel it was read
    from. ``taps`` yields (flat pixel index (N, H, W) into the images, valid mask or None, weight or None)."""
    xp = array_module(dy)
    c = dy.shape[-1]
    channel = xp.arange(c, dtype=xp.int64)

    def scaled(g, factor):
        return g if factor is None else g * factor[..., None]
    dx = scatter_taps((((flat[..., None] * c + channel).ravel(), scaled(scaled(dy, weight), valid).ravel())
                       for flat, valid, weight in taps), dy.size, xp)
    return dx.reshape(dy.shape).astype(dy.dtype, copy=False)


def scatter_taps(taps, size, xp):
    """The float64 vector of ``size`` entries that the ``(flat index, values)`` pairs of ``taps`` add up to, repeated
    indices summing: the adjoint of sampling, one scatter-add per tap."""
    out = xp.zeros(size, dtype=xp.float64)
    for index, values in taps:
        xp.add.at(out, index, values)
    return out
