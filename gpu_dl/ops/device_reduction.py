"""Sums over the leading axes of CuPy arrays, split so that the whole GPU takes part.

CuPy reduces a C-contiguous ``(M, C)`` array over axis 0 with ceil(C / 32) blocks of 512 threads (32 columns
by 16 rows of threads), each thread adding M / 16 elements one after the other. A bias or normalization-weight
gradient (M = 65536 rows of C = 1024 columns) runs on 32 blocks, 4096 dependent loads per thread: milliseconds
where the data takes tens of microseconds to read. The rule is about outputs that lie side by side in
memory with their summed elements a whole row apart, so leading-axis sums are the ones split here.

``column_sum`` sums as ``(parts, M / parts, C)`` over axis 1, then over the parts, with about sqrt(M) rows in
each: both stages have about sqrt(M) / 16 loads per thread, the first sqrt(M) * C / 32 blocks (8192 for
the example above), the second C / 32 blocks over sqrt(M) rows.
NumPy arrays are summed as they always were (their callers choose how).
"""
from __future__ import annotations

import math

import numpy

# CuPy arrays of at least this many rows sum their columns in two stages (row_split).
SPLIT_MIN_ROWS = 4096


def is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


def row_split(rows: int) -> int:
    """How many parts of about sqrt(rows) rows ``column_sum`` sums separately on CuPy arrays (1: no split)."""
    return 1 if rows < SPLIT_MIN_ROWS else rows // math.isqrt(rows)


def column_sum(rows):
    """The columns' sums of a 2-D CuPy array ``(M, C)``, in its dtype; in two stages from SPLIT_MIN_ROWS rows."""
    parts = row_split(rows.shape[0])
    if parts == 1:
        return rows.sum(axis=0)
    # float16 partial sums would round twice: the stages add in float32 and the result is cast back
    acc = numpy.float32 if rows.dtype == numpy.float16 else rows.dtype
    per_part = rows.shape[0] // parts
    whole = parts * per_part
    total = rows[:whole].reshape(parts, per_part, rows.shape[1]).sum(axis=1, dtype=acc).sum(axis=0)
    if whole < rows.shape[0]:   # fewer than `parts` rows left over
        total += rows[whole:].sum(axis=0, dtype=acc)
    return total.astype(rows.dtype, copy=False)


def sum_axes(a, axes, keepdims=False):
    """``a.sum(axis=axes, keepdims=keepdims)``; on a C-contiguous CuPy array whose ``axes`` are its leading
    ones (0, 1, ..., k-1, any order), by ``column_sum`` of its ``(M, rest)`` view."""
    axes = tuple(sorted(ax % a.ndim for ax in ((axes,) if isinstance(axes, int) else axes)))
    lead = len(axes)
    if not is_cupy(a) or not 0 < lead < a.ndim or axes != tuple(range(lead)) or not a.flags.c_contiguous:
        return a.sum(axis=axes, keepdims=keepdims)
    rest = a.shape[lead:]
    total = column_sum(a.reshape(math.prod(a.shape[:lead]), math.prod(rest)))
    return total.reshape(((1,) * lead if keepdims else ()) + rest)
