"""Affine map over the last axis: y = x @ kernel + bias.

Shapes: x (..., in), kernel (in, out), bias (out,) or None, y (..., out).
The product is one BLAS/cuBLAS GEMM over all leading axes flattened.

NumPy has no float16 BLAS (its float16 products run element by element, tens
of times slower): float16 NumPy arrays (a layer under "mixed_float16") are
multiplied in float32 and the results rounded to float16, as cuBLAS computes
float16 products on CuPy arrays (float32 accumulation).
"""
from __future__ import annotations

import functools

from ..backend.launch import float16_through_float32
from .device_reduction import sum_axes

_float16_on_numpy = functools.partial(float16_through_float32, numpy_only=True)


@_float16_on_numpy
def dense_forward(x, kernel, bias=None):
    y = x @ kernel
    if bias is not None:
        y += bias
    return y


@_float16_on_numpy
def dense_backward(x, kernel, dy, *, need_input_grad=True, need_weight_grads=True, has_bias=True):
    """Gradients of ``dense_forward``: (dx or None, dkernel or None, dbias or None)."""
    dx = dkernel = dbias = None
    if need_input_grad:
        dx = dy @ kernel.T
    if need_weight_grads:
        rows_in = x.reshape(-1, x.shape[-1])
        rows_dy = dy.reshape(-1, dy.shape[-1])
        dkernel = rows_in.T @ rows_dy
        if has_bias:
            dbias = sum_axes(rows_dy, 0)
    return dx, dkernel, dbias
