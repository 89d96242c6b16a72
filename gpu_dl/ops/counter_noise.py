"""A counter-based random stream that NumPy and the GPU compute bit for bit alike: SplitMix64 words and the
approximately standard normal values made of them (``kernels/counter_noise.cu`` says how, and is the CUDA
side; the NumPy functions here are its reference).

A draw is a function of a seed pair ``(seed, counter)`` (``layers/seed_generator.py`` makes the pairs): its key
is the pair as one 64-bit number, mixed by SplitMix64's finalizer (a bijection, so distinct pairs give distinct
keys). Value i of a draw depends on the key and i only, so the GPU computes every value where it is needed,
with no host-to-device copy, and the host computes the same values in blocks of array operations.

The normal values are sums of 12 uniform 10-bit integers, centred and scaled by 2**-10 (the Irwin-Hall
approximation of the standard normal: variance 1 - 2**-20, bounded by 6 in magnitude, on a grid of 2**-10):
integer steps throughout and one exact conversion, so the two backends agree exactly. They are not NumPy's or
Keras's normal draws.
"""
from __future__ import annotations

import math

import numpy

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "counter_noise.cu"
_THREADS = 256
_MASK = (1 << 64) - 1
_GAMMA = numpy.uint64(0x9E3779B97F4A7C15)
_MIX1 = numpy.uint64(0xBF58476D1CE4E5B9)
_MIX2 = numpy.uint64(0x94D049BB133111EB)
_FIELDS = numpy.uint64(0x003FF003FF003FF)      # three 10-bit fields, at bits 0, 20 and 40
_LANE = numpy.uint64(0xFFFFF)
_CENTRE = 6138                                  # 12 * 1023 / 2
_BLOCK = 1 << 16                                # values per block of the host's array operations


def kernel_names() -> set:
    """The ``extern "C"`` names of counter_noise.cu that this module launches."""
    return {"counter_words_u64", "counter_normal_f32", "counter_normal_f64"}


def key_of(pair) -> int:
    """The 64-bit key of a seed pair ``(seed, counter)`` (two 32-bit numbers): SplitMix64's finalizer of
    ``seed * 2**32 + counter``."""
    z = ((int(pair[0]) & 0xFFFFFFFF) << 32) | (int(pair[1]) & 0xFFFFFFFF)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _words(key, indices):
    """Words ``indices`` (uint64 array) of the stream of ``key``: SplitMix64, wrapping uint64 arithmetic."""
    z = numpy.uint64(key) + (indices + numpy.uint64(1)) * _GAMMA
    z = (z ^ (z >> numpy.uint64(30))) * _MIX1
    z = (z ^ (z >> numpy.uint64(27))) * _MIX2
    return z ^ (z >> numpy.uint64(31))


def _pair_sum(w):
    ten = numpy.uint64(10)
    return (w & _FIELDS) + ((w >> ten) & _FIELDS)


def _normal_block(key, start, stop):
    j = numpy.arange(2 * start, 2 * stop, 2, dtype=numpy.uint64)
    t = _pair_sum(_words(key, j)) + _pair_sum(_words(key, j + numpy.uint64(1)))
    s = (t & _LANE) + ((t >> numpy.uint64(20)) & _LANE) + (t >> numpy.uint64(40))
    return s.astype(numpy.int64) - _CENTRE


def _check_count(count, where):
    if isinstance(count, bool) or not isinstance(count, (int, numpy.integer)) or count < 0:
        raise ValueError(f"{where}: `count` must be an integer >= 0, got {count!r}.")
    return int(count)


def words(xp, key, count):
    """The first ``count`` words of the stream of ``key`` (an int below 2**64), uint64, on ``xp``'s device."""
    where = "counter_noise.words"
    count = _check_count(count, where)
    if xp is numpy:
        return _words(key, numpy.arange(count, dtype=numpy.uint64))
    out = launch.empty_output((count,), numpy.uint64)
    _launch("counter_words_u64", out, key)
    return out


def normal(xp, pair, shape, dtype=numpy.float32):
    """Approximately standard normal values of ``shape`` drawn from the seed pair ``pair`` (module docstring),
    float32 or float64 (other float dtypes: float32 values cast), on ``xp``'s device; equal on NumPy and CuPy."""
    shape = tuple(int(d) for d in shape)
    count = math.prod(shape)
    dtype = numpy.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"counter_noise.normal: `dtype` must be a float dtype, got {dtype.name}.")
    draw = dtype if dtype in (numpy.float32, numpy.float64) else numpy.dtype(numpy.float32)
    key = key_of(pair)
    if xp is numpy:
        out = numpy.empty(count, dtype=draw)
        for start in range(0, count, _BLOCK):
            stop = min(count, start + _BLOCK)
            # |s| <= 6138: exact in either float; times 2**-10, exact too
            out[start:stop] = _normal_block(key, start, stop).astype(draw) * draw.type(1 / 1024)
    else:
        out = launch.empty_output((count,), draw)
        _launch(f"counter_normal_{launch.float_suffix(draw, 'counter_normal', 'dtype')}", out, key)
    return out.reshape(shape).astype(dtype, copy=False)


def _launch(kernel, out, key):
    """The only place that knows the kernels' geometry: one element per thread of a grid-stride loop."""
    launch.check_device_array(out, kernel, "out")
    if out.size == 0:
        return
    key = int(key)
    if not 0 <= key <= _MASK:
        raise ValueError(f"{kernel}: `key` must be an integer in [0, 2**64), got {key}.")
    grid, block = launch.grid_1d(out.size, _THREADS)
    get_kernel(_KERNEL_FILE, kernel)(grid, block, (out, numpy.int64(out.size), numpy.uint64(key)))

