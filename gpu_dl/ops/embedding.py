"""Embedding lookup: rows of a table picked by integer ids, and the table's gradient.

``ids`` (any shape, integers in [0, V)) and ``table`` (V, D) give ``table[ids]``
of shape ids.shape + (D,): one gather. The gradient of the table adds each
row of ``dy`` into the row its id picked; ids that repeat add up (NumPy's
``add.at``, CuPy's atomic-add scatter on the GPU), so its sums may come in
another order than a sequential loop's.
"""
from __future__ import annotations

from ..backend import array_module


def embedding_lookup(ids, table):
    """``table[ids]``: ids.shape + (D,)."""
    return array_module(table).take(table, ids, axis=0)


def embedding_table_gradient(ids, dy, rows):
    """(rows, D): the sum of ``dy``'s rows (ids.shape + (D,)) into the rows ``ids`` picked."""
    xp = array_module(dy)
    width = dy.shape[-1]
    grad = xp.zeros((rows, width), dtype=dy.dtype)
    xp.add.at(grad, ids.reshape(-1), dy.reshape(-1, width))
    return grad
