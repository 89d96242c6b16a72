"""The batches of in-memory arrays, epoch by epoch, as Keras 3's ``EpochIterator`` hands them out.

Without ``steps`` (fit's ``steps_per_epoch``, evaluate's and predict's ``steps``,
fit's ``validation_steps``) an epoch is one pass over the samples, in a new random
order each epoch where ``shuffle`` is set, capped by ``max_steps_per_epoch()``.

With ``steps`` an epoch takes that many batches, and the next epoch goes on where
it stopped: a pass (one shuffle) spans epochs, and a new one starts only when it
ends. An epoch that reaches the end of a pass before its ``steps`` stops there with
Keras's "ran out of data" warning, and the next epoch starts a new pass. So with
1000 samples in batches of 64 (16 per pass) and ``steps_per_epoch=5``, epochs take
5, 5, 5 and 1 batches, then again 5, 5, 5, 1.
"""
from __future__ import annotations

from .. import backend
from ..backend.user_warnings import warn
from . import data_checks as checks

# Keras's EpochIterator._interrupted_warning, word for word.
RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
           "generate at least `steps_per_epoch * epochs` batches. You may need to use the `.repeat()` function when "
           "building your dataset.")


class ArrayEpochs:
    """Batch indices over ``n`` samples in batches of ``batch_size``: ``epoch()`` yields ``(step, index)``, where
    ``index`` is a slice, or an array of sample indices when shuffled. ``steps`` (checked here, named
    ``steps_name`` in errors) is as described in the module docstring; ``known_steps`` is what the progress bar
    and the callbacks' ``params["steps"]`` count to."""

    def __init__(self, n, batch_size, steps=None, shuffle=False, steps_name="steps_per_epoch"):
        self.n, self.batch_size, self.shuffle = n, batch_size, bool(shuffle)
        self.length = -(-n // batch_size)
        self.steps = backend.config.capped_steps(None if steps is None else checks.positive_int(steps, steps_name))
        if self.steps is None:
            cap = backend.config.max_steps_per_epoch()
            self.known_steps = self.length if cap is None else min(self.length, cap)
        else:
            self.known_steps = self.steps
        self._taken = 0         # batches of the pass under way handed out so far
        self._order = None

    def restart(self):
        """The next epoch starts a new pass (Keras resets its evaluation iterator before each evaluation)."""
        self._taken = 0

    def _index(self, batch):
        start = batch * self.batch_size
        if self._order is None:
            return slice(start, start + self.batch_size)
        return self._order[start:start + self.batch_size]

    def epoch(self):
        if self.steps is None or self._taken >= self.length:
            self._taken = 0
        if self._taken == 0:
            self._order = backend.rng().permutation(self.n) if self.shuffle else None
        if self.steps is None:
            for step in range(self.known_steps):
                yield step, self._index(step)
            return
        for step in range(self.steps):
            if self._taken >= self.length:
                warn(RAN_OUT)
                break
            self._taken += 1
            yield step, self._index(self._taken - 1)
