"""Up-sampling by integer factors along chosen axes: nearest (repeat) and linear (Keras's "bilinear").

Both work on any axes of an array of any layout, so channels_first data
needs no transpose. Sizes are integers >= 1.

Nearest repeats each entry ``size`` times along its axis (``numpy.repeat``):
one broadcast and one copy for all axes at once; its backward sums each
block of ``size`` copies.

Linear is what Keras 3 computes for ``UpSampling2D(interpolation=
"bilinear")``: an image resize with half-pixel centres (``align_corners=
False``, no antialiasing), where output ``o`` along an axis of ``n`` entries
reads the input at ``src = (o + 0.5) / size - 0.5``, clamped to the first and
last entry. With an integer factor, ``o = size * i + r`` gives
``src = i + t_r`` with ``t_r = (r + 0.5) / size - 0.5`` in (-0.5, 0.5), the
same for every ``i``: the first ``size // 2`` phases (``t_r < 0``) mix entry
``i - 1`` (weight ``-t_r``) with ``i`` (``1 + t_r``), the others ``i``
(``1 - t_r``) with ``i + 1`` (``t_r``), neighbours past either end being the
end itself. So an axis is up-sampled by two shifted copies of the input and,
per phase, one product of each with a scalar weight (no gather, no weight
array), each output being the two-term sum ``w_lo * x_lo + w_hi * x_hi``
that PyTorch (Keras's torch backend) rounds; 2-D runs the width first, then
the height, in PyTorch's order of the same products. The backward is the transpose: the phases' weighted sums of dy,
shifted back onto the entries they read.
"""
from __future__ import annotations

from ..backend import array_module


def _expanded(shape, axes, inserted):
    """``shape`` with one entry after each of ``axes`` (ascending): the ``inserted`` value for that axis."""
    out = []
    for a, n in enumerate(shape):
        out.append(n)
        if a in axes:
            out.append(inserted[axes.index(a)])
    return tuple(out)


def _merged(shape, axes, sizes):
    return tuple(n * sizes[axes.index(a)] if a in axes else n for a, n in enumerate(shape))


def upsample_nearest(x, axes, sizes):
    """``x`` with entry ``i`` of axis ``axes[k]`` repeated ``sizes[k]`` times (axes ascending)."""
    xp = array_module(x)
    axes, sizes = tuple(axes), tuple(sizes)
    view = x.reshape(_expanded(x.shape, axes, (1,) * len(axes)))
    return xp.ascontiguousarray(xp.broadcast_to(view, _expanded(x.shape, axes, sizes))).reshape(
        _merged(x.shape, axes, sizes))


def upsample_nearest_backward(dy, axes, sizes):
    """The gradient of ``upsample_nearest``: each input entry gets the sum of its copies' gradients."""
    axes, sizes = tuple(axes), tuple(sizes)
    shape = tuple(n // sizes[axes.index(a)] if a in axes else n for a, n in enumerate(dy.shape))
    blocks = dy.reshape(_expanded(shape, axes, sizes))
    return blocks.sum(axis=tuple(a + k + 1 for k, a in enumerate(axes)))


def _phases(size):
    """(w_previous, w_self, w_following) of each phase r < size, from t_r = (r + 0.5) / size - 0.5: the
    negative t_r (the first size // 2 phases) mix in the previous entry, the others the following one."""
    weights = []
    for r in range(size):
        t = (r + 0.5) / size - 0.5
        weights.append((-t, 1 + t, 0.0) if t < 0 else (0.0, 1 - t, t))
    return weights


def _along(ndim, axis, index):
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


def _shifted(x, axis):
    """(x[i - 1], x[i + 1]) along ``axis``, each end standing for its missing neighbour."""
    xp = array_module(x)
    n, nd = x.shape[axis], x.ndim
    previous = xp.concatenate([x[_along(nd, axis, slice(0, 1))], x[_along(nd, axis, slice(0, n - 1))]], axis=axis)
    following = xp.concatenate([x[_along(nd, axis, slice(1, n))], x[_along(nd, axis, slice(n - 1, n))]], axis=axis)
    return previous, following


# The weights are scalars of the array's dtype, one loop step per phase (not per element): on the GPU they
# travel as kernel arguments, so no weight array is copied to the device.
def upsample_linear_axis(x, axis, size):
    """Linear up-sampling of ``x`` by ``size`` along ``axis`` (module docstring)."""
    if size == 1:
        return x
    xp = array_module(x)
    n, scalar = x.shape[axis], x.dtype.type
    previous, following = _shifted(x, axis)
    out = xp.empty(x.shape[:axis] + (n, size) + x.shape[axis + 1:], dtype=x.dtype)
    for r, (w_previous, w_self, w_following) in enumerate(_phases(size)):
        # PyTorch's two terms, lower neighbour first: (1 - lambda) * x0 + lambda * x1
        if w_previous:
            out[_along(out.ndim, axis + 1, r)] = previous * scalar(w_previous) + x * scalar(w_self)
        else:
            out[_along(out.ndim, axis + 1, r)] = x * scalar(w_self) + following * scalar(w_following)
    return out.reshape(x.shape[:axis] + (n * size,) + x.shape[axis + 1:])


def upsample_linear_axis_backward(dy, axis, size):
    """The gradient of ``upsample_linear_axis`` with respect to its input."""
    if size == 1:
        return dy
    xp = array_module(dy)
    n, scalar = dy.shape[axis] // size, dy.dtype.type
    phased = dy.reshape(dy.shape[:axis] + (n, size) + dy.shape[axis + 1:])
    shape = dy.shape[:axis] + (n,) + dy.shape[axis + 1:]
    to_self, to_previous, to_following = (xp.zeros(shape, dtype=dy.dtype) for _ in range(3))
    for r, (w_previous, w_self, w_following) in enumerate(_phases(size)):
        g = phased[_along(phased.ndim, axis + 1, r)]
        to_self += g * scalar(w_self)
        if w_previous:
            to_previous += g * scalar(w_previous)
        if w_following:
            to_following += g * scalar(w_following)
    nd, dx = to_self.ndim, to_self
    # Entry i's "previous" is i - 1 (0 for i = 0); its "following" is i + 1 (n - 1 for the last).
    dx[_along(nd, axis, slice(0, n - 1))] += to_previous[_along(nd, axis, slice(1, n))]
    dx[_along(nd, axis, slice(0, 1))] += to_previous[_along(nd, axis, slice(0, 1))]
    dx[_along(nd, axis, slice(1, n))] += to_following[_along(nd, axis, slice(0, n - 1))]
    dx[_along(nd, axis, slice(n - 1, n))] += to_following[_along(nd, axis, slice(n - 1, n))]
    return dx


def upsample_linear(x, axes, sizes):
    """Linear up-sampling along each of ``axes``, the last axis first (PyTorch's order for 2-D)."""
    for axis, size in sorted(zip(axes, sizes), reverse=True):
        x = upsample_linear_axis(x, axis, size)
    # NumPy's products keep a strided input's memory order: the output is made C-ordered, as layers expect.
    return array_module(x).ascontiguousarray(x)


def upsample_linear_backward(dy, axes, sizes):
    for axis, size in sorted(zip(axes, sizes)):
        dy = upsample_linear_axis_backward(dy, axis, size)
    return array_module(dy).ascontiguousarray(dy)
