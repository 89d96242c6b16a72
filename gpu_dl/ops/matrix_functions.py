"""Forward and backward of the linear algebra of ``keras.ops`` (``layers/keras_ops/linalg_fft.py``).

Every function works on the last two axes of arrays of one module (NumPy or
CuPy), batched over the leading ones, with that module's ``linalg`` routines
(LAPACK on the host, cuSOLVER on the device). The backwards are the matrix
calculus Keras's torch backend differentiates with: ``d inv(A) = -A⁻¹ dA A⁻¹``,
``d log|det A| = tr(A⁻¹ dA)``, Cholesky's ``L⁻ᵀ Φ(Lᵀ L̄) L⁻¹`` symmetrised, the
Householder QR's, the symmetric eigendecomposition's and the SVD's through
``1 / (λⱼ - λᵢ)``, the pseudo-inverse's three terms. Each backward takes the
output gradient(s) ``dy``, the forward's operands and outputs, and the
settings, and returns one gradient per operand (None where there is none).
"""
from __future__ import annotations

import numpy

from ..backend import array_module, to_numpy


def mT(a):
    """The matrices of ``a`` transposed (its last two axes swapped)."""
    return a.swapaxes(-1, -2)


def _eye(xp, n, dtype):
    return xp.eye(n, dtype=dtype)


def _eps(dtype):
    return float(numpy.finfo(numpy.dtype(dtype)).eps)


def _cast(results, dtype):
    return [r.astype(dtype, copy=False) for r in results]


# ---------------------------------------------------------------- inverses, determinants, solves
def inv_forward(x):
    return array_module(x).linalg.inv(x)


def inv_backward(dy, operands, y):
    yt = mT(y)
    return [-(yt @ dy @ yt)]


def det_forward(x):
    return array_module(x).linalg.det(x)


def det_backward(dy, operands, y):
    x, = operands
    return [(dy * y)[..., None, None] * mT(array_module(x).linalg.inv(x))]


def slogdet_forward(x):
    """``(sign, log|det x|)``, both of x's dtype."""
    sign, logabsdet = array_module(x).linalg.slogdet(x)
    return _cast([sign, logabsdet], x.dtype)


def slogdet_backward(dys, operands, ys):
    x, = operands
    return [dys[1][..., None, None] * mT(array_module(x).linalg.inv(x))]


def logdet_forward(x):
    """``log det x``: NaN where the determinant is negative, -inf where it is 0 (torch's ``logdet``)."""
    xp = array_module(x)
    sign, logabsdet = slogdet_forward(x)
    return xp.where(sign < 0, xp.asarray(numpy.nan, dtype=x.dtype), logabsdet)


def logdet_backward(dy, operands, y):
    x, = operands
    return [dy[..., None, None] * mT(array_module(x).linalg.inv(x))]


def solve_is_vector(a_shape, b_shape):
    """Whether ``solve`` takes ``b`` as (a batch of) vectors, as torch decides: ``b`` of one axis, or of the shape
    of ``a`` without its last axis."""
    return len(b_shape) == 1 or (len(b_shape) == len(a_shape) - 1 and tuple(b_shape) == tuple(a_shape[:-1]))


def _as_matrices(b, vector):
    return b[..., None] if vector else b


def solve_forward(a, b):
    vector = solve_is_vector(a.shape, b.shape)
    xp = array_module(a, b)
    x = xp.linalg.solve(*_broadcast_batches(a, _as_matrices(b, vector)))
    return x[..., 0] if vector else x


def _broadcast_batches(a, b):
    """``a`` and ``b`` with their batch axes (all but the last two) broadcast to one shape."""
    xp = array_module(a, b)
    batch = numpy.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:])


def solve_backward(dy, operands, y):
    a, b = operands
    vector = solve_is_vector(a.shape, b.shape)
    xp = array_module(a)
    x, g = _as_matrices(y, vector), _as_matrices(dy, vector)
    db = xp.linalg.solve(*_broadcast_batches(mT(a), g))
    da = -(db @ mT(x))
    return [da, db[..., 0] if vector else db]


def _triangle(a, lower):
    xp = array_module(a)
    return xp.tril(a) if lower else xp.triu(a)


def triangular_solve(t, b):
    """``t⁻¹ b`` for triangular ``t`` (zeros off its triangle) and matrices ``b``, batch axes broadcast."""
    return array_module(t).linalg.solve(*_broadcast_batches(t, b))


def solve_triangular_forward(a, b, lower):
    vector = b.ndim == a.ndim - 1
    x = triangular_solve(_triangle(a, lower), _as_matrices(b, vector))
    return x[..., 0] if vector else x


def solve_triangular_backward(dy, operands, y, lower):
    a, b = operands
    vector = b.ndim == a.ndim - 1
    x, g = _as_matrices(y, vector), _as_matrices(dy, vector)
    db = triangular_solve(mT(_triangle(a, lower)), g)
    da = _triangle(-(db @ mT(x)), lower)
    return [da, db[..., 0] if vector else db]


# ---------------------------------------------------------------- Cholesky
def cholesky_forward(x, upper):
    """The Cholesky factor of ``x`` (read from its lower triangle): lower, or its transpose with ``upper``;
    a ValueError where ``x`` is not positive definite."""
    xp = array_module(x)
    try:
        factor = xp.linalg.cholesky(x)
    except Exception as e:           # NumPy's LinAlgError; CuPy's
        raise ValueError(f"Cholesky decomposition failed: {e}") from None
    if not bool(xp.isfinite(factor).all()):
        # cuSOLVER reports a matrix that is not positive definite by NaNs in the factor, not an exception.
        raise ValueError("Cholesky decomposition failed: the matrix is not positive definite.")
    return mT(factor).copy() if upper else factor


def cholesky_backward(dy, operands, y, upper):
    """torch's: ``L⁻ᵀ Φ(Lᵀ L̄) L⁻¹`` with Φ the lower triangle, diagonal halved, then symmetrised."""
    xp = array_module(y)
    lower, g = (mT(y), mT(dy)) if upper else (y, dy)
    n = lower.shape[-1]
    inverse = triangular_solve(lower, xp.broadcast_to(_eye(xp, n, lower.dtype), lower.shape))
    phi = xp.tril(mT(lower) @ g)
    index = xp.arange(n)
    phi[..., index, index] *= lower.dtype.type(0.5)
    grad = mT(inverse) @ phi @ inverse
    return [(grad + mT(grad)) * lower.dtype.type(0.5)]


def cholesky_inverse_forward(x, upper):
    """``(L Lᵀ)⁻¹`` for the lower triangle L of ``x`` (``(Uᵀ U)⁻¹`` for the upper one with ``upper``)."""
    xp = array_module(x)
    factor = mT(xp.triu(x)) if upper else xp.tril(x)
    n = x.shape[-1]
    inverse = triangular_solve(factor, xp.broadcast_to(_eye(xp, n, x.dtype), x.shape))
    return mT(inverse) @ inverse


def cholesky_inverse_backward(dy, operands, y, upper):
    xp = array_module(y)
    x, = operands
    m = -(y @ dy @ y)
    sym = m + mT(m)
    return [xp.triu(xp.triu(x) @ sym) if upper else xp.tril(sym @ xp.tril(x))]


# ---------------------------------------------------------------- QR
def qr_forward(x, mode):
    xp = array_module(x)
    try:
        q, r = xp.linalg.qr(x, mode=mode)
    except Exception:
        if x.ndim == 2:
            raise
        # a CuPy older than its batched QR takes one matrix at a time
        flat = x.reshape((-1,) + x.shape[-2:])
        pairs = [xp.linalg.qr(matrix, mode=mode) for matrix in flat]
        q, r = (xp.stack([pair[i] for pair in pairs]) for i in (0, 1))
        q, r = q.reshape(x.shape[:-2] + q.shape[-2:]), r.reshape(x.shape[:-2] + r.shape[-2:])
    return _cast([q, r], x.dtype)


def _copyltu(m):
    xp = array_module(m)
    lower = xp.tril(m, -1)
    return lower + mT(lower) + xp.tril(xp.triu(m))


def _qr_backward_tall(gq, gr, q, r):
    """The gradient of A = QR (Q m×k, R k×k upper, k ≤ m) from those of Q and R."""
    m = r @ mT(gr) - mT(gq) @ q
    b = gq + q @ _copyltu(m)
    # b R⁻ᵀ: solve R X ᵀ = bᵀ
    return mT(triangular_solve(r, mT(b)))


def qr_backward(dys, operands, ys, mode):
    gq, gr = dys
    q, r = ys
    x, = operands
    rows, cols = x.shape[-2:]
    if mode == "complete" and rows > cols:
        raise ValueError("qr: the QR decomposition is not differentiable when mode='complete' and the matrices have "
                         f"more rows than columns (got {rows}×{cols}); use mode='reduced'.")
    if rows >= cols:
        return [_qr_backward_tall(gq, gr, q, r)]
    # A wide matrix: A = Q [X | Y] with X square; [U | V] = [QX | QY].
    xp = array_module(x)
    gx, gy = gr[..., :, :rows], gr[..., :, rows:]
    v = x[..., :, rows:]
    gu = _qr_backward_tall(gq + v @ mT(gy), gx, q, r[..., :, :rows])
    return [xp.concatenate([gu, q @ gy], axis=-1)]


# ---------------------------------------------------------------- eigendecompositions
def eigh_forward(x):
    """Eigenvalues (ascending) and eigenvectors of the symmetric matrices of ``x``, read from their lower
    triangles."""
    w, v = array_module(x).linalg.eigh(x, UPLO="L")
    return _cast([w, v], x.dtype)


def _unit_diagonal(e):
    """``e`` with the diagonal of its last two axes set to 1 (the divisor of the off-diagonal terms)."""
    xp = array_module(e)
    n = e.shape[-1]
    index = xp.arange(n)
    e = e.copy()
    e[..., index, index] = 1
    return e


def eigh_backward(dys, operands, ys):
    """torch's: ``V (diag(w̄) + skew(Vᵀ V̄) / (wⱼ - wᵢ)) Vᵀ`` (symmetric)."""
    gw, gv = dys
    w, v = ys
    xp = array_module(v)
    vgv = mT(v) @ gv
    vgv = (vgv - mT(vgv)) * v.dtype.type(0.5)
    e = _unit_diagonal(w[..., None, :] - w[..., :, None])
    inner = vgv / e
    n = w.shape[-1]
    index = xp.arange(n)
    inner[..., index, index] += gw
    return [v @ inner @ mT(v)]


def eig_forward(x):
    """Eigenvalues and eigenvectors of general square matrices: complex (complex64 for float32, complex128 for
    float64), as torch's ``linalg.eig`` gives them. CuPy without ``linalg.eig`` computes them on the host."""
    xp = array_module(x)
    complex_dtype = numpy.result_type(x.dtype, numpy.complex64)
    if hasattr(xp.linalg, "eig"):
        w, v = xp.linalg.eig(x)
    else:
        w, v = numpy.linalg.eig(to_numpy(x))
        w, v = xp.asarray(w), xp.asarray(v)
    return [w.astype(complex_dtype, copy=False), v.astype(complex_dtype, copy=False)]


# ---------------------------------------------------------------- singular values
def svd_forward(x, full_matrices, compute_uv):
    xp = array_module(x)
    if not compute_uv:
        return xp.linalg.svd(x, compute_uv=False).astype(x.dtype, copy=False)
    u, s, vh = xp.linalg.svd(x, full_matrices=full_matrices)
    return _cast([u, s, vh], x.dtype)


def svd_backward(dys, operands, ys, full_matrices, compute_uv):
    """torch's ``svd_backward`` for real matrices; with ``full_matrices`` the columns of U and rows of Vᵀ beyond
    min(m, n) take no gradient (torch narrows them away)."""
    x, = operands
    rows, cols = x.shape[-2:]
    k = min(rows, cols)
    xp = array_module(x)
    if not compute_uv:
        s = dys
        u, _, vh = xp.linalg.svd(x, full_matrices=False)
        u, vh = u.astype(x.dtype, copy=False), vh.astype(x.dtype, copy=False)
        return [(u * s[..., None, :]) @ vh]
    gu, gs, gvh = dys
    u, s, vh = ys
    if full_matrices:
        u, vh, gu, gvh = u[..., :, :k], vh[..., :k, :], gu[..., :, :k], gvh[..., :k, :]
    uhgu = mT(u) @ gu
    uhgu = uhgu - mT(uhgu)
    vhgv = vh @ mT(gvh)
    vhgv = vhgv - mT(vhgv)
    s2 = s * s
    e = _unit_diagonal(s2[..., None, :] - s2[..., :, None])
    ga = (uhgu * s[..., None, :] + s[..., :, None] * vhgv) / e
    index = xp.arange(k)
    ga[..., index, index] += gs
    if rows > cols:
        ga = u @ ga
        gu_sinv = gu / s[..., None, :]
        ga = (ga + gu_sinv - u @ (mT(u) @ gu_sinv)) @ vh
    elif rows < cols:
        ga = ga @ vh
        sinv_gvh = gvh / s[..., :, None]
        ga = u @ (ga + sinv_gvh - (sinv_gvh @ mT(vh)) @ vh)
    else:
        ga = u @ ga @ vh
    return [ga]


def _cutoff(s, rtol, shape):
    """The threshold below which (inclusive) singular values ``s`` count as zero: ``rtol`` (default
    max(m, n) · eps, torch's) times the largest."""
    rtol = max(shape[-2:]) * _eps(s.dtype) if rtol is None else float(rtol)
    return s.max(axis=-1, keepdims=True) * s.dtype.type(rtol) if s.shape[-1] else s[..., :0]


def pinv_forward(x, rcond):
    xp = array_module(x)
    u, s, vh = (a.astype(x.dtype, copy=False) for a in xp.linalg.svd(x, full_matrices=False))
    keep = s > _cutoff(s, rcond, x.shape)
    inverse = xp.where(keep, 1 / xp.where(keep, s, s.dtype.type(1)), s.dtype.type(0))
    return (mT(vh) * inverse[..., None, :]) @ mT(u)


def pinv_backward(dy, operands, y, rcond=None):
    """``-Pᵀ Ḡ Pᵀ + (I - A P) Ḡᵀ P Pᵀ + Pᵀ P Ḡᵀ (I - P A)`` for P = A⁺ (exact where the rank does not
    change)."""
    a, = operands
    p = y
    pt, gt = mT(p), mT(dy)
    first = -(pt @ dy @ pt)
    left = gt @ (p @ pt)
    second = left - a @ (p @ left)
    right = (pt @ p) @ gt
    third = right - (right @ p) @ a
    return [first + second + third]


def lstsq_forward(a, b, rcond):
    """The least-squares solution of ``a x = b`` of least norm (``a`` m×n, ``b`` (m,) or (m, k)), as A⁺ b."""
    return pinv_forward(a, rcond) @ b


def lstsq_backward(dy, operands, y, rcond):
    a, b = operands
    p = pinv_forward(a, rcond)
    g = dy if dy.ndim == 2 else dy[:, None]
    bm = b if b.ndim == 2 else b[:, None]
    db = mT(p) @ g
    da, = pinv_backward(g @ mT(bm), [a], p)
    return [da, db if b.ndim == 2 else db[:, 0]]


def matrix_rank_forward(x, tol):
    """The number of singular values above ``tol`` (default: max(m, n) · eps times the largest), as int32."""
    s = array_module(x).linalg.svd(x, compute_uv=False).astype(x.dtype, copy=False)
    cutoff = _cutoff(s, None, x.shape) if tol is None else s.dtype.type(tol)
    return (s > cutoff).sum(axis=-1).astype("int32")


# ---------------------------------------------------------------- LU
def lu_factor_forward(x):
    """LAPACK's ``getrf`` by partial pivoting, batched: the packed factors (L's strict lower triangle, its unit
    diagonal left out, and U) and the int32 pivots, 0-based: at step i, row i was swapped with row pivots[i]."""
    xp = array_module(x)
    lu = x.copy()
    rows, cols = x.shape[-2:]
    k = min(rows, cols)
    batch = x.shape[:-2]
    pivots = xp.zeros(batch + (k,), dtype="int32")
    flat = lu.reshape((-1, rows, cols))
    flat_pivots = pivots.reshape((-1, k))
    every = xp.arange(flat.shape[0])
    for i in range(k):          # one step per column, each over the whole batch
        p = i + xp.argmax(xp.abs(flat[:, i:, i]), axis=1)
        flat_pivots[:, i] = p
        row_i, row_p = flat[every, i].copy(), flat[every, p].copy()
        flat[every, i], flat[every, p] = row_p, row_i
        pivot = flat[:, i, i]
        safe = xp.where(pivot == 0, pivot.dtype.type(1), pivot)
        flat[:, i + 1:, i] = xp.where((pivot == 0)[:, None], flat[:, i + 1:, i], flat[:, i + 1:, i] / safe[:, None])
        flat[:, i + 1:, i + 1:] -= flat[:, i + 1:, i, None] * flat[:, i, None, i + 1:]
    return [flat.reshape(x.shape), pivots]


def _permutation(pivots, n, dtype):
    """P with A = P L U, from the sequential row swaps ``pivots`` (batched): P's column j is eᵣ for the original
    row r that ended in row j."""
    xp = array_module(pivots)
    batch = pivots.shape[:-1]
    flat = pivots.reshape((-1, pivots.shape[-1]))
    order = xp.broadcast_to(xp.arange(n), (flat.shape[0], n)).copy()
    every = xp.arange(flat.shape[0])
    for i in range(flat.shape[1]):
        p = flat[:, i]
        at_i, at_p = order[every, i].copy(), order[every, p].copy()
        order[every, i], order[every, p] = at_p, at_i
    eye = _eye(xp, n, dtype)
    return mT(eye[order]).reshape(batch + (n, n))


def _square_lu_backward(lower, upper, g_lower, g_upper):
    """The gradient of B = L U (L unit lower, U upper, square): ``L⁻ᵀ (tril₋₁(Lᵀ L̄) + triu(Ū Uᵀ)) U⁻ᵀ``."""
    xp = array_module(lower)
    phi = xp.tril(mT(lower) @ g_lower, -1) + xp.triu(g_upper @ mT(upper))
    left = triangular_solve(mT(lower), phi)
    return mT(triangular_solve(upper, mT(left)))


def lu_factor_backward(dys, operands, ys):
    """torch's LU backward, A = P L U. Square: ``P L⁻ᵀ (tril₋₁(Lᵀ L̄) + triu(Ū Uᵀ)) U⁻ᵀ``. Wide (U = [U₁ | U₂]):
    U₂ = L⁻¹ Pᵀ A₂ sends ``P L⁻ᵀ Ū₂`` to A₂ and ``-L⁻ᵀ Ū₂ U₂ᵀ`` to L̄ before the square case. Tall (L = [L₁; L₂]):
    L₂ = (Pᵀ A)₂ U⁻¹ sends ``L̄₂ U⁻ᵀ`` to its rows and ``-L₂ᵀ L̄₂ U⁻ᵀ`` to Ū."""
    glu = dys[0] if isinstance(dys, (list, tuple)) else dys
    x, = operands
    lu, pivots = ys
    rows, cols = x.shape[-2:]
    k = min(rows, cols)
    xp = array_module(x)
    eye = _eye(xp, k, x.dtype)
    lower = xp.tril(lu[..., :, :k], -1) + (eye if rows == k else xp.eye(rows, k, dtype=x.dtype))
    upper = xp.triu(lu[..., :k, :])
    g_lower, g_upper = xp.tril(glu[..., :, :k], -1), xp.triu(glu[..., :k, :])
    if rows == cols:
        grad = _square_lu_backward(lower, upper, g_lower, g_upper)
    elif rows < cols:
        g_right = g_upper[..., :, k:]
        through = triangular_solve(mT(lower), g_right)               # L⁻ᵀ Ū₂
        left = _square_lu_backward(lower, upper[..., :, :k], g_lower - through @ mT(upper[..., :, k:]),
                                   g_upper[..., :, :k])
        grad = xp.concatenate([left, through], axis=-1)
    else:
        g_bottom = g_lower[..., k:, :]
        through = mT(triangular_solve(upper, mT(g_bottom)))          # L̄₂ U⁻ᵀ
        top = _square_lu_backward(lower[..., :k, :], upper, g_lower[..., :k, :],
                                  g_upper - mT(lower[..., k:, :]) @ through)
        grad = xp.concatenate([top, through], axis=-2)
    return [_permutation(pivots, rows, x.dtype) @ grad]
