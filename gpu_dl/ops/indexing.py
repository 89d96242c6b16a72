"""Basic indexing and the matrix product, forward and backward, for NumPy and CuPy arrays alike.

What ``x[key]`` and ``a @ b`` compute on a model's tensors
(``layers/indexing_operations.py``).

- ``get_item``: ``key`` is a tuple of ints, slices, Ellipsis and None (NumPy's
  basic indexing, never an array), so the result is a view selecting each
  input element at most once; the forward copies it (a later layer may write
  into its input), the backward scatters ``dy`` (the result's shape) into
  zeros of the input's shape.
- ``matmul``: ``a (..., n, k) @ b (..., k, m) -> (..., n, m)`` with the leading
  axes broadcast as ``numpy.matmul`` broadcasts them; a 1-D ``a`` (k,) is a row
  and a 1-D ``b`` (k,) a column whose axis the result drops. The backward
  returns ``dy @ b^T`` and ``a^T @ dy``, summed back over broadcast axes to
  the operands' own shapes.
"""
from __future__ import annotations

from ..backend import array_module
from .arithmetic import reduce_to_shape


def get_item_forward(x, key):
    return array_module(x).array(x[key], copy=True)


def get_item_backward(dy, operands, y):
    x, key = operands
    dx = array_module(dy).zeros(x.shape, dtype=dy.dtype)
    dx[key] = dy                 # basic indexing: no element is selected twice, so assignment is the sum
    return dx, None


def matmul_forward(a, b):
    return array_module(a if hasattr(a, "shape") else b).matmul(a, b)


def matmul_backward(dy, operands, y):
    a, b = operands
    xp = array_module(dy)
    # Put back the axes numpy.matmul dropped for 1-D operands: the column's first (it is the last axis of y).
    if b.ndim == 1:
        dy = dy[..., None]
    if a.ndim == 1:
        dy = dy[..., None, :]
    a2 = a[None, :] if a.ndim == 1 else a           # (1, k)
    b2 = b[:, None] if b.ndim == 1 else b           # (k, 1)
    da = reduce_to_shape(xp.matmul(dy, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    db = reduce_to_shape(xp.matmul(xp.swapaxes(a2, -1, -2), dy), b2.shape).reshape(b.shape)
    return da, db
