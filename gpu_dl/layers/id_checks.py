"""Checks on the integer ids that ``Embedding``, ``CategoryEncoding`` and ``IntegerLookup`` take, on the device or
on the host.

Such a layer refuses ids it cannot map with a ValueError that names it, rather than gathering out of range (which a
GPU would not report) or dropping them. On the device that check reads a value back to the host, which waits for
every kernel queued before it: inside a training step it stalls the launch queue once per call.

A model fed host arrays (``models/host_ids.py``) therefore checks them itself, on the host, with each such layer's
``check_host_ids(array)``, before any batch moves to the device; then, for the span of one step, it marks the
device array made from a checked batch (``marked``). A layer handed exactly a marked array skips its own check
(``prechecked``). Any other array (a direct ``layer(x)``, ids computed by earlier layers, a device array a user
passed to a model call) is checked on the device as before.
"""
from __future__ import annotations

import contextlib

import numpy

from ..backend import array_module, to_numpy

_MARKS = "_host_checked_inputs"


def host_bounds(array):
    """The smallest and largest id of a non-empty, finite host ``array`` as the layers' int64 cast makes them: the
    cast truncates, which keeps order, so truncating the two bounds gives the bounds of the cast array. A float
    beyond int64 has no defined cast (a CPU and a GPU give different values): its own whole part is given instead,
    which no range holds, so such ids are refused wherever they are checked."""
    bounds = numpy.array([array.min(), array.max()])
    if bounds.dtype.kind == "f":
        return tuple(int(v) for v in numpy.trunc(bounds.astype(numpy.float64)))
    return tuple(int(v) for v in bounds)


def device_bounds(ids):
    """The smallest and largest of the (non-empty) integer ``ids``, in one read-back of both."""
    xp = array_module(ids)
    return tuple(int(v) for v in to_numpy(xp.stack([ids.min(), ids.max()])))


def any_on_device(flags):
    """Whether any of the booleans ``flags`` is set: one read-back."""
    return bool(to_numpy(flags.any()))


def prechecked(layer, x):
    """Whether ``x`` is an array whose ids the model running the current step checked on the host for ``layer``."""
    return any(x is checked for checked in getattr(layer, _MARKS, ()))


@contextlib.contextmanager
def marked(pairs):
    """Inside the block, ``prechecked(layer, array)`` holds for each ``(layer, array)`` of ``pairs``; the layers'
    earlier marks come back after it, whatever happens in it."""
    saved = {}
    try:
        for layer, array in pairs:
            if id(layer) not in saved:
                saved[id(layer)] = (layer, layer.__dict__.get(_MARKS))
            setattr(layer, _MARKS, getattr(layer, _MARKS, ()) + (array,))
        yield
    finally:
        for layer, before in saved.values():
            if before is None:
                layer.__dict__.pop(_MARKS, None)
            else:
                setattr(layer, _MARKS, before)


class RangedIds:
    """For a layer whose ids must lie in [0, size): the size is its attribute named ``id_range_argument``
    (``input_dim``, ``num_tokens``). Gives the layer ``check_host_ids`` and ``checked_ids``, with one message."""

    id_range_argument = None

    def _refuse_out_of_range(self, low, high):
        size = getattr(self, self.id_range_argument)
        if low < 0 or high >= size:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' has {self.id_range_argument}={size}: ids "
                             f"must lie in [0, {size - 1}], got ids from {low} to {high}.")

    def reads_ids(self, call_kwargs):
        """Whether a call with these keyword arguments takes ids (every call does, unless a subclass says)."""
        return True

    def check_host_ids(self, x):
        """Raise the ValueError a call on the host array ``x`` would raise: a model checks its host inputs so,
        before they reach the device."""
        if x.size:
            self._refuse_out_of_range(*host_bounds(x))

    def checked_ids(self, x):
        """``x`` as int64 ids (floats truncate, as Keras's cast does), after checking their range: one read-back
        of both bounds (a clear error beats an out-of-range gather, which a GPU would not report), which a model
        skips for inputs it checked on the host."""
        ids = x.astype(array_module(x).int64, copy=False)
        if ids.size and not prechecked(self, x):
            self._refuse_out_of_range(*device_bounds(ids))
        return ids
