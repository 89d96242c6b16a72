"""Keras 3's ``PyDataset``: batches made by Python code, one ``__getitem__(index)`` call per batch.

A subclass defines ``__len__`` (the number of batches; or the ``num_batches``
property, ``None`` for an endless data set) and ``__getitem__(index)``, which
returns one whole batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``,
where ``x`` and ``y`` are arrays of shape ``(batch, ...)``, or lists/tuples of
them (one per input/output), or dicts keyed by input names. ``on_epoch_begin``
and ``on_epoch_end`` are called around each pass ``fit``/``evaluate``/``predict``
make over it.

``workers > 1`` makes ``fit``/``evaluate``/``predict`` fetch batches ahead in
that many threads, at most ``max_queue_size`` waiting; the batches still reach
the model in index order (or in fit's shuffled order). ``use_multiprocessing=True``
runs the same threads, with a warning: gpu_dl does not fork processes (a forked
process cannot use the parent's CUDA context, and batches would be pickled across).
"""
from __future__ import annotations

import collections
import itertools
from concurrent.futures import ThreadPoolExecutor

from ..backend.user_warnings import warn

__all__ = ["PyDataset", "prefetched"]


class PyDataset:
    """Base class of data sets that build their batches in Python. See the module docstring."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self):
        # As Keras: a subclass that forgot super().__init__() still works, with the defaults.
        missing = [name for name in ("_workers", "_use_multiprocessing", "_max_queue_size") if not hasattr(self, name)]
        if missing:
            self._workers = getattr(self, "_workers", 1)
            self._use_multiprocessing = getattr(self, "_use_multiprocessing", False)
            self._max_queue_size = getattr(self, "_max_queue_size", 10)
            warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in its constructor. "
                 "`**kwargs` can include `workers`, `use_multiprocessing`, `max_queue_size`. Do not pass "
                 "these arguments to `fit()`, as they will be ignored.")

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position ``index`` (0 <= index < num_batches)."""
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index), returning one batch.")

    def __iter__(self):
        count = self.num_batches
        for index in itertools.count() if count is None else range(count):
            yield self[index]

    @property
    def num_batches(self):
        """The number of batches, or None for an endless data set (``len(self)`` where ``__len__`` is defined)."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must define __len__ or the `num_batches` property "
                                  "(None for an endless data set).")

    def on_epoch_begin(self):
        """Called before each pass over the batches."""

    def on_epoch_end(self):
        """Called after each pass over the batches."""


def prefetched(dataset, indices, workers, max_queue_size):
    """``(index, dataset[index])`` for each index of ``indices``, in that order, with up to
    ``max(max_queue_size, workers)`` batches fetched ahead by ``workers`` threads.

    Closing the generator early cancels the batches not yet started and waits for the running ones.
    """
    indices = iter(indices)
    ahead = max(int(max_queue_size or 0), workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="py_dataset") as pool:
        pending = collections.deque((i, pool.submit(dataset.__getitem__, i)) for i in itertools.islice(indices, ahead))
        try:
            while pending:
                index, future = pending.popleft()
                batch = future.result()
                for following in itertools.islice(indices, 1):
                    pending.append((following, pool.submit(dataset.__getitem__, following)))
                yield index, batch
        finally:
            for _, future in pending:
                future.cancel()
