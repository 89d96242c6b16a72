"""Sequence data: sliding windows over a time series, and padding of ragged sequences.

``timeseries_dataset_from_array`` and ``pad_sequences`` take Keras 3's arguments and
give Keras 3's windows and padded arrays. Where Keras returns a ``tf.data.Dataset``,
``timeseries_dataset_from_array`` returns a ``SequenceDataset``: an iterable of NumPy
batches that ``Model.fit``, ``evaluate`` and ``predict`` accept as ``x``.

Windows are described by their start rows only; each batch is gathered from the data
with one index array (``starts[:, None] + arange(sequence_length) * sampling_rate``)
when it is asked for, so the windows themselves are never all held in memory unless
``as_arrays()`` is called.

Where gpu_dl differs from Keras:

- a window that does not fit between ``start_index`` and ``end_index`` is an error
  (Keras returns an empty dataset);
- ``end_index=len(data)``, ``sequence_stride >= len(data)`` and
  ``sampling_rate >= len(data)`` are accepted when a window fits (Keras rejects them);
- ``shuffle=True`` draws a full permutation of the windows on each pass, from a
  ``numpy.random.Generator`` seeded once with ``seed`` (Keras shuffles the start
  positions once and then locally within a buffer on each pass, so the orders differ);
- ``pad_sequences`` checks ``padding``/``truncating`` before any work, accepts
  ``maxlen=0``, and says which sequence could not be converted to ``dtype``.
"""
from __future__ import annotations

import numbers

import numpy



def host_array(value, name, **kwargs):
    # Imported on use: gpu_dl.models imports the callbacks, whose utils import this module, so a
    # module-level import of gpu_dl.models here makes `import gpu_dl.data` (or `gpu_dl.callbacks`)
    # as a program's first import fail on the cycle.
    from ..models.data_checks import host_array as check
    return check(value, name, **kwargs)

__all__ = ["SequenceDataset", "timeseries_dataset_from_array", "pad_sequences"]


# ------------------------------------------------------------------ argument checks
def _int_argument(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {what}, got {value!r}.")
    return int(value)


# ------------------------------------------------------------------- the data set
class SequenceDataset:
    """Windows over a time series, yielded in batches of NumPy arrays.

    Iterating gives ``(x_batch, y_batch)`` tuples, or ``x_batch`` alone when there are no
    targets; with ``batch_size=None`` it gives single windows (and targets) instead of
    batches. ``len()`` is the number of batches (of windows when unbatched).

    Built by ``timeseries_dataset_from_array``; the constructor trusts its arguments.
    """

    def __init__(self, data, targets, starts, offsets, batch_size, shuffle, seed):
        self._data = data
        self._targets = targets
        self._starts = starts            # first row of each window, in chronological order
        self._offsets = offsets          # rows of a window relative to its first row
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = seed
        self._rng = numpy.random.default_rng(seed) if self.shuffle else None

    @property
    def num_windows(self):
        return len(self._starts)

    @property
    def sequence_length(self):
        return len(self._offsets)

    @property
    def has_targets(self):
        return self._targets is not None

    def __len__(self):
        if self.batch_size is None:
            return self.num_windows
        return -(-self.num_windows // self.batch_size)

    def __repr__(self):
        return (f"SequenceDataset(windows={self.num_windows}, sequence_length={self.sequence_length}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, targets={self.has_targets})")

    def _pass_order(self):
        """Window starts for one pass: a fresh permutation per pass when shuffling."""
        if self.shuffle:
            return self._starts[self._rng.permutation(self.num_windows)]
        return self._starts

    def _gather(self, starts):
        x = self._data[starts[..., None] + self._offsets]
        if self._targets is None:
            return x
        return x, self._targets[starts]

    def __iter__(self):
        starts = self._pass_order()
        if self.batch_size is None:
            for start in starts:
                yield self._gather(start)
            return
        for first in range(0, len(starts), self.batch_size):
            yield self._gather(starts[first:first + self.batch_size])

    def as_arrays(self, in_order=False):
        """``(x, y)``: every window, shape ``(windows, sequence_length, *data.shape[1:])``, and its target.

        The windows come in the order one pass of iteration gives them (which, when
        shuffling, uses up that pass's permutation); ``in_order=True`` gives them in
        chronological order instead. ``y`` is None when there are no targets.
        """
        starts = self._starts if in_order else self._pass_order()
        x = self._data[starts[:, None] + self._offsets]
        y = None if self._targets is None else self._targets[starts]
        return x, y


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                                  batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """Sliding windows over ``data`` (time along axis 0), as a ``SequenceDataset``.

    Window ``i`` holds rows ``s, s + sampling_rate, ..., s + (sequence_length - 1) * sampling_rate``
    with ``s = start_index + i * sequence_stride``; every row lies in ``[start_index, end_index)``.
    Its target is ``targets[s]``: the target of the row the window starts at, as in Keras.
    To predict the step after each window, pass ``targets=data[sequence_length:]`` (or any
    array shifted the same way). Windows whose start row has no target (``targets``
    shorter than ``data``) are left out, as Keras does. ``targets=None`` yields inputs only;
    ``batch_size=None`` yields single windows.
    """
    data = host_array(data, "data", first_axis="the time axis")
    if data.dtype.kind not in "biuf":
        raise TypeError(f"`data` must hold numbers, got dtype {data.dtype} (strings or dates must be encoded first).")
    n = len(data)
    if n == 0:
        raise ValueError("`data` is empty (0 rows): there is nothing to make windows from.")
    sequence_length = _int_argument(sequence_length, "sequence_length", 1)
    sequence_stride = _int_argument(sequence_stride, "sequence_stride", 1)
    sampling_rate = _int_argument(sampling_rate, "sampling_rate", 1)
    if batch_size is not None:
        batch_size = _int_argument(batch_size, "batch_size", 1)
    if seed is not None:
        seed = _int_argument(seed, "seed", 0)

    start = 0 if start_index is None else _int_argument(start_index, "start_index", 0)
    if start >= n:
        raise ValueError(f"`start_index` must be lower than the length of the data ({n}), got start_index={start}.")
    end = n if end_index is None else _int_argument(end_index, "end_index", 0)
    if end > n:
        raise ValueError(f"`end_index` must be at most the length of the data ({n}), got end_index={end}.")
    if end <= start:
        raise ValueError(f"`end_index` must be higher than `start_index`, got start_index={start}, end_index={end}.")

    span = (sequence_length - 1) * sampling_rate + 1
    if span > end - start:
        raise ValueError(
            f"A window of sequence_length={sequence_length} with sampling_rate={sampling_rate} spans {span} rows "
            f"((sequence_length - 1) * sampling_rate + 1), but data has only {end - start} rows between "
            f"start_index={start} and end_index={end}: shorten the window or give more data."
        )
    last_start = end - span            # the last row a window may start at

    if targets is not None:
        targets = host_array(targets, "targets", first_axis="the time axis")
        if len(targets) <= start:
            raise ValueError(
                f"`targets` has {len(targets)} entries, but the first window starts at row {start} "
                f"(start_index) and takes targets[{start}] as its target: targets must be aligned with data "
                f"(targets[i] is the target of the window starting at row i)."
            )
        last_start = min(last_start, len(targets) - 1)

    starts = numpy.arange(start, last_start + 1, sequence_stride, dtype=numpy.intp)
    offsets = numpy.arange(sequence_length, dtype=numpy.intp) * sampling_rate
    return SequenceDataset(data, targets, starts, offsets, batch_size, shuffle, seed)


# ----------------------------------------------------------------------- padding
def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Pads (and truncates) sequences to one length: an array ``(len(sequences), maxlen, *trailing)``.

    Keras's rules: ``maxlen`` defaults to the longest sequence; ``truncating="pre"`` keeps
    the last ``maxlen`` steps, ``"post"`` the first; ``padding="pre"`` puts ``value``
    before the steps, ``"post"`` after. Steps may be vectors: the trailing shape is taken
    from the first non-empty sequence and every other must match it. ``dtype=object``
    pads sequences of strings.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood: use "pre" or "post".')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood: use "pre" or "post".')
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"`sequences` must be iterable (a list of sequences), got {type(sequences).__name__}.")
    if maxlen is not None:
        maxlen = _int_argument(maxlen, "maxlen", 0)

    lengths = []
    sample_shape = None
    for idx, seq in enumerate(sequences):
        try:
            length = len(seq)
        except TypeError:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: {seq!r} "
                             f"at position {idx}.") from None
        if sample_shape is None and length:
            sample_shape = numpy.asarray(seq).shape[1:]
        lengths.append(length)
    sample_shape = () if sample_shape is None else sample_shape
    if maxlen is None:
        maxlen = max(lengths, default=0)

    is_dtype_str = numpy.issubdtype(dtype, numpy.str_) or numpy.issubdtype(dtype, numpy.bytes_)
    if isinstance(value, str) and dtype is not object and not is_dtype_str:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
                         "You should set `dtype=object` for variable length strings.")

    out = numpy.full((len(lengths), maxlen) + sample_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    kept = []
    for idx, seq in enumerate(sequences):
        if not lengths[idx]:
            continue
        trunc = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        try:
            trunc = numpy.asarray(trunc, dtype=dtype)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"Sequence at position {idx} cannot be converted to dtype {numpy.dtype(dtype)} ({exc}); "
                             "use dtype=object for strings, or encode them as numbers first.") from None
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"Shape of sample {trunc.shape[1:]} of sequence at position {idx} is different "
                             f"from expected shape {sample_shape}")
        kept.append(trunc)
    if not kept:
        return out
    # One scatter for all rows: the mask of the cells each row fills, read in row-major
    # order, lines up with the rows' steps concatenated.
    filled = numpy.zeros(len(lengths), dtype=numpy.intp)
    filled[numpy.flatnonzero(numpy.asarray(lengths) > 0)] = [len(t) for t in kept]
    steps = numpy.arange(maxlen)
    if padding == "post":
        mask = steps[None, :] < filled[:, None]
    else:
        mask = steps[None, :] >= maxlen - filled[:, None]
    out[mask] = numpy.concatenate(kept, axis=0)
    return out
