"""``CategoryEncoding``, Keras 3's preprocessing layer that turns integer ids into one-hot, multi-hot or count vectors.

``encode_categorical`` is the encoder it shares with ``Discretization`` and ``IntegerLookup`` (Keras's
``numerical_utils.encode_categorical_inputs``), with Keras's rank rules:

- ``"one_hot"``: ``(..., 1)`` inputs (rank >= 2) lose their last axis, then each id becomes a vector of
  ``depth``: ``(d0, ..., dn) -> (d0, ..., dn, depth)``; a scalar becomes ``(1, depth)``;
- ``"multi_hot"`` / ``"count"``: a scalar or ``(n,)`` input is one sample, ``-> (depth,)``; ``(batch, n)``
  gives ``(batch, depth)``. Keras documents outputs up to rank 2 only (its torch path reduces axis 1 of a
  rank-3 input while its symbolic shape says the last axis), so rank-3 and higher inputs are refused here.

Ids outside ``[0, depth)`` add nothing (a zero row for one-hot), as Keras's one-hot and bincount treat them;
``IntegerLookup`` relies on that for its mask token. ``CategoryEncoding`` itself refuses them, as its Keras
docstring promises (Keras on torch raises for ids >= num_tokens and silently drops negative ones).
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from . import id_checks
from .base import Layer

MODES = ("one_hot", "multi_hot", "count")


def encode_categorical(ids, output_mode, depth, dtype, count_weights=None, where="layer"):
    """``ids`` (integer array, any device) encoded as described in the module docstring, as ``dtype``."""
    xp = array_module(ids)
    ids = ids.astype(xp.int64, copy=False)     # float ids truncate, as Keras's cast does
    if ids.ndim == 0:
        ids = ids.reshape(1)
        if count_weights is not None:
            count_weights = count_weights.reshape(1)
    if output_mode == "one_hot":
        if ids.ndim > 1 and ids.shape[-1] == 1:
            ids = ids.reshape(ids.shape[:-1])
        return (ids[..., None] == xp.arange(depth, dtype=xp.int64)).astype(dtype)
    if ids.ndim > 2:
        raise ValueError(f"{where}: output_mode={output_mode!r} takes inputs of rank 1 or 2 (Keras supports outputs "
                         f"up to rank 2), got shape {tuple(ids.shape)}. Reshape to (samples, ids) first.")
    rows = 1 if ids.ndim == 1 else ids.shape[0]
    valid = (ids >= 0) & (ids < depth)
    # One scatter-add over (row, id) pairs flattened to row * depth + id: no per-row loop. Ids out of range go to
    # a spare last bin that is then dropped: no boolean-mask selection and no bincount, both of which read a
    # size back from the device.
    row_index = xp.arange(rows, dtype=xp.int64).reshape((rows,) + (1,) * (ids.ndim - 1)) if ids.ndim == 2 else 0
    flat = xp.where(valid, ids + row_index * depth, rows * depth)
    if count_weights is not None and output_mode == "count":
        weights = xp.broadcast_to(xp.asarray(count_weights, dtype=xp.float64), ids.shape)
    else:
        weights = xp.ones(ids.shape, dtype=xp.float64)
    counts = xp.zeros(rows * depth + 1, dtype=xp.float64)
    xp.add.at(counts, flat.reshape(-1), weights.reshape(-1))
    counts = counts[:rows * depth]
    counts = counts.reshape((rows, depth) if ids.ndim == 2 else (depth,))
    if output_mode == "multi_hot":
        counts = counts > 0
    return counts.astype(dtype)


def encoded_shape(input_shape, output_mode, depth):
    """The output shape ``encode_categorical`` gives for ``input_shape`` (batch axis first, may be None)."""
    input_shape = tuple(input_shape)
    if len(input_shape) == 0:
        return (1, depth) if output_mode == "one_hot" else (depth,)
    if output_mode == "one_hot":
        if len(input_shape) > 1 and input_shape[-1] == 1:
            return input_shape[:-1] + (depth,)
        return input_shape + (depth,)
    return input_shape[:-1] + (depth,)


def checked_mode(output_mode, modes, where):
    if not isinstance(output_mode, str) or output_mode not in modes:
        raise ValueError(f"{where}: unknown output_mode {output_mode!r}; expected one of "
                         f"{', '.join(repr(m) for m in modes)}.")
    return output_mode


def refuse_sparse(sparse, where):
    if sparse:
        raise ValueError(f"{where}: sparse=True is not supported (gpu_dl has no sparse tensors); use sparse=False "
                         "for dense outputs.")


class CategoryEncoding(id_checks.RangedIds, Layer):
    """Keras 3's ``CategoryEncoding(num_tokens, output_mode="multi_hot", sparse=False)``.

    Input: integer ids in ``[0, num_tokens)`` (float inputs truncate), a scalar, ``(n,)`` or ``(batch, n)``
    (one-hot: any rank). Output (the layer's dtype, float32 by default), see ``encode_categorical``:
    one-hot ``(..., num_tokens)``, multi-hot/count ``(batch, num_tokens)`` or ``(num_tokens,)``. In
    ``"count"`` mode ``layer(ids, count_weights=w)`` (``w`` shaped as ``ids``) sums ``w`` instead of ones.
    The layer has no weights and gives no input gradient.
    """

    id_range_argument = "num_tokens"

    fixed_input_axes = ()
    keeps_input_dtype = True

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        where = f"CategoryEncoding layer '{self.name}'"
        if output_mode == "binary":          # Keras's old name
            output_mode = "multi_hot"
        self.output_mode = checked_mode(output_mode, MODES, where)
        if num_tokens is None:
            raise ValueError(f"{where}: num_tokens must be set. If the number of tokens is not known beforehand, "
                             "use the IntegerLookup layer instead.")
        if (isinstance(num_tokens, bool) or not isinstance(num_tokens, numbers.Integral)) or num_tokens < 1:
            raise ValueError(f"{where}: `num_tokens` must be an integer >= 1. Received: num_tokens={num_tokens!r}.")
        self.num_tokens = int(num_tokens)
        refuse_sparse(sparse, where)
        self.sparse = False
        self._count_weights = None

    def __call__(self, x, count_weights=None, training=None, mask=None, **kwargs):
        if count_weights is None:
            return super().__call__(x, training=training, mask=mask, **kwargs)
        where = f"CategoryEncoding layer '{self.name}'"
        if self.output_mode != "count":
            raise ValueError(f"{where}: `count_weights` is not used when `output_mode` is not 'count' (it is "
                             f"{self.output_mode!r}).")
        self._count_weights = count_weights
        try:
            return super().__call__(x, training=training, mask=mask, **kwargs)
        finally:
            self._count_weights = None

    def compute_output_shape(self, input_shape):
        return encoded_shape(input_shape, self.output_mode, self.num_tokens)

    def call(self, x, training=False):
        where = f"CategoryEncoding layer '{self.name}'"
        xp = array_module(x)
        ids = self.checked_ids(x)       # a clear error beats ids silently dropped
        weights = None
        if self._count_weights is not None:
            weights = xp.asarray(self._as_input(self._count_weights)).astype(self.dtype)
            if weights.shape != ids.shape:
                raise ValueError(f"{where}: `count_weights` must have the inputs' shape {tuple(ids.shape)}, got "
                                 f"{tuple(weights.shape)}.")
        return encode_categorical(ids, self.output_mode, self.num_tokens, self.dtype, weights, where)

    def backward(self, dy):
        return None

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens, "output_mode": self.output_mode}

