"""What Keras's IMDB and Reuters loaders do to their word-id sequences, on one flat array of ids.

Sequences are held as ``(flat, lengths)``: every id in one int64 array and each sequence's length, so the
offsetting, the filtering by length and the vocabulary limit are array operations, not Python loops over ids.
They come out, as from Keras, as a 1-D object array of Python lists of ints.
"""
from __future__ import annotations

import numpy


def flatten(sequences):
    lengths = numpy.array([len(s) for s in sequences], dtype=numpy.int64)
    flat = numpy.concatenate(sequences).astype(numpy.int64) if len(sequences) else numpy.zeros(0, numpy.int64)
    return flat, lengths


def offset(flat, lengths, start_char, index_from):
    """Every id plus ``index_from``, and ``start_char`` (unless None) put before each sequence."""
    if start_char is None:
        return (flat + index_from if index_from else flat), lengths
    starts = numpy.concatenate([[0], numpy.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    return numpy.insert(flat + index_from, starts, start_char), lengths + 1


def keep_rows(flat, lengths, keep):
    """The sequences where the boolean ``keep`` is True."""
    return flat[numpy.repeat(keep, lengths)], lengths[keep]


def limit_vocabulary(flat, lengths, skip_top, num_words, oov_char):
    """Ids outside ``[skip_top, num_words)`` replaced by ``oov_char``, or dropped where it is None."""
    inside = (flat >= skip_top) & (flat < num_words)
    if oov_char is not None:
        return numpy.where(inside, flat, oov_char), lengths
    rows = numpy.repeat(numpy.arange(len(lengths)), lengths)
    return flat[inside], numpy.bincount(rows[inside], minlength=len(lengths)).astype(numpy.int64)


def as_lists(flat, lengths):
    """A 1-D object array of one Python list of ints per sequence (1-D even where all have one length)."""
    parts = numpy.split(flat, numpy.cumsum(lengths)[:-1]) if len(lengths) else []
    out = numpy.empty(len(parts), dtype=object)
    out[:] = [p.tolist() for p in parts]
    return out


def prepare(sequences, start_char, index_from):
    """``(flat, lengths)`` of ``sequences`` with ids offset by ``index_from`` and ``start_char`` put first."""
    flat, lengths = flatten(sequences)
    return offset(flat, lengths, start_char, index_from)


def check_options(**options):
    for name, value in options.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, numpy.integer))):
            raise TypeError(f"`{name}` must be an int or None, got {value!r}.")
