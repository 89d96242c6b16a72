"""Keras's sampling positions for affine image transforms, as the oracle tests use them.

Keras's torch ``affine_transform`` maps each output pixel's (row, column, channel) indices to its sampling
position with ``torch.einsum("Bhwij, Bjk -> Bhwik", indices, transform)``, a batched matrix product that PyTorch
hands to its BLAS. How that product rounds is the BLAS's choice and depends on the machine: MKL picks its kernel
by the CPU's instruction set at run time, and on AVX-512 CPUs its kernel rounds ``a0 x + a1 y`` otherwise than
with each product and sum rounded to float32 (``MKL_ENABLE_INSTRUCTIONS=AVX2`` or ``MKL_CBWR=COMPATIBLE`` bring
that rounding back). gpu_dl computes ``(a0 x + a1 y) + a2`` with each operation rounded, on NumPy and in
kernels/augment.cu, so a bilinear output can differ from Keras's in the last few places of its values on one
machine and not on another (nearest sampling rarely moves; translations and zooms multiply by exact 0 and 1).

``rounded_positions()`` makes Keras's einsum compute the positions as the correctly rounded float32 (or float64)
arithmetic, which is what Keras computes where the BLAS rounds each product and sum: with it the oracle tests
hold gpu_dl to Keras to the bit. ``affine_tolerance`` bounds the difference from Keras's stock positions on any
machine, for the tests that also compare with Keras as it runs."""
import contextlib
import functools
import operator

import numpy

SUBSCRIPTS = "Bhwij,Bjk->Bhwik"


def rounded_einsum(indices, transform):
    """Keras's position einsum (indices (B, h, w, i, j), transform (B, j, k)) with each product and sum
    correctly rounded in the operands' dtype, the three products summed in order (row, column, channel)."""
    products = indices[..., :, :, None] * transform[:, None, None, None, :, :]          # (B, h, w, i, j, k)
    return functools.reduce(operator.add, products.unbind(-2))


@contextlib.contextmanager
def rounded_positions(seen=None):
    """Inside: Keras's affine_transform computes its positions with ``rounded_einsum``; other einsums are
    PyTorch's own. ``seen``, a list, gets the operands (indices, transform) of each call."""
    import torch
    einsum = torch.einsum

    def rounded(subscripts, *operands):
        if subscripts.replace(" ", "") != SUBSCRIPTS:
            return einsum(subscripts, *operands)
        if seen is not None:
            seen.append(tuple(operand.clone() for operand in operands))
        return rounded_einsum(*operands)
    torch.einsum = rounded
    try:
        yield
    finally:
        torch.einsum = einsum


def position_rounding(matrices, h, w):
    """(N, 2): for each image, how far apart two float32 evaluations of its sampling positions (column, row) may be,
    one Keras's einsum in whatever order and rounding its BLAS sums, the other ``(a0 x + a1 y) + a2`` rounded
    step by step, for x < w, y < h and ``matrices`` (N, 2, 3) as ``affine_resample`` takes them.

    A dot product of n terms in any order, fused multiply-adds or not, is within gamma_n = n u / (1 - n u) of
    sum |a_i x_i| of the exact one (u = 2**-24, float32's unit roundoff); the einsum has n = 3 terms (the
    channel's weight is 0). Two such sums are within 2 gamma_3 P, P = |a0| (w - 1) + |a1| (h - 1); each then
    adds the offset a2 with one rounding, of at most u of the result, |result| <= P + |a2| + gamma_3 P."""
    u = 2.0 ** -24
    gamma3 = 3 * u / (1 - 3 * u)
    m = numpy.abs(numpy.asarray(matrices, "float64"))
    products = m[:, :, 0] * (w - 1) + m[:, :, 1] * (h - 1)
    return 2 * gamma3 * products + 2 * u * (products * (1 + gamma3) + m[:, :, 2])


def affine_tolerance(matrices, h, w, values, interpolation):
    """How far gpu_dl's float32 images resampled through ``matrices`` may be from Keras's stock ones (rtol 0).
    Bilinear: the positions' difference along each axis times the steepest slope a bilinear surface over
    ``values`` (the image values and the fill value) has along it, their range; plus each side's own rounding
    of its weighted taps (1 - f, the weight's product, the product with the value, three sums: seven
    roundings, gamma_7 of the largest |value|, as the weights sum to 1). Nearest: the same pixel is read unless
    a position lies within that difference of a half integer, which these tests' draws do not: 0."""
    if interpolation == "nearest":
        return 0.0
    values = numpy.asarray(values, "float64")
    spread, largest = float(values.max() - values.min()), float(abs(values).max())
    u = 2.0 ** -24
    moved = float(position_rounding(matrices, h, w).sum(axis=1).max())
    return spread * moved + 2 * 7 * u / (1 - 7 * u) * largest
