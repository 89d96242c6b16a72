"""Launcher of ``kernels/augment.cu``: inverse-affine resampling of NHWC CuPy image batches.

The only place that knows the kernel's geometry. ``gpu_dl.layers.preprocessing.affine_resample``
sends CuPy float32/float64 images here; its array-operation path (NumPy, and
CuPy for other dtypes) is the reference the kernel reproduces: the same
positions, fill modes and interpolation weights, rounded the same way. The
launcher checks its arguments and raises a TypeError or ValueError that names
the kernel and the argument instead of launching.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "augment.cu"
_THREADS = 256
_MAX_GROUPS = 32   # threads per output pixel, at most
# The codes of augment.cu's AUG_FILL_* and AUG_INTERP_* constants.
FILL_CODES = {"reflect": 0, "wrap": 1, "constant": 2, "nearest": 3}
INTERPOLATION_CODES = {"bilinear": 0, "nearest": 1}


def kernel_names() -> set:
    """The ``extern "C"`` names of augment.cu that this launcher uses."""
    return {f"affine_resample_{suffix}" for suffix in ("f32", "f64")}


def channel_groups(channels: int) -> int:
    """Threads per output pixel: at most 32, each taking ``ceil(C / groups)`` channels (as even as possible)."""
    if channels <= 0:
        return 1
    per_thread = -(-channels // _MAX_GROUPS)
    return -(-channels // per_thread)


def _choice(value, codes, kernel, argument):
    if not isinstance(value, str) or value not in codes:
        raise ValueError(f"{kernel}: `{argument}` must be one of {', '.join(map(repr, codes))}, got {value!r}.")
    return codes[value]


def _matrices(matrices, n, dtype, kernel):
    """``matrices`` ((N, 2, 3), or one (2, 3) for every image; host or device) as a contiguous CuPy
    array (N, 2, 3) of the images' dtype, the conversion the array path makes too."""
    import cupy
    if type(matrices).__module__.startswith("cupy"):
        m = matrices
    else:
        try:
            m = numpy.asarray(matrices)
        except (TypeError, ValueError):
            raise TypeError(f"{kernel}: `matrices` must be an array of numbers, got {type(matrices).__name__}.") \
                from None
    if m.dtype.kind not in "fiu":
        raise TypeError(f"{kernel}: `matrices` must hold real numbers, got dtype {m.dtype.name}.")
    if tuple(m.shape) == (2, 3):
        m = m.reshape(1, 2, 3)
        if n != 1:
            m = cupy.broadcast_to(cupy.asarray(m), (n, 2, 3))
    if tuple(m.shape) != (n, 2, 3):
        raise ValueError(f"{kernel}: `matrices` must have shape ({n}, 2, 3) (one 2x3 matrix per image) or (2, 3), "
                         f"got {tuple(m.shape)}.")
    return cupy.ascontiguousarray(cupy.asarray(m, dtype=dtype))


def affine_resample_cuda(images, matrices, fill_mode="reflect", interpolation="bilinear", fill_value=0.0):
    """Launcher of ``affine_resample_{f32,f64}``: ``images`` (N, H, W, C) resampled through one inverse affine
    map per image; returns a new (N, H, W, C) array of the images' dtype.

    ``images``: a C-contiguous float32/float64 CuPy array. ``matrices``: (N, 2, 3) or (2, 3), NumPy or CuPy,
    any real dtype (converted to the images' dtype): output pixel (x = column, y = row) of image n reads
    the input at ``x_in = M[n,0,0] x + M[n,0,1] y + M[n,0,2]``, ``y_in = M[n,1,0] x + M[n,1,1] y + M[n,1,2]``.
    ``fill_mode``: "reflect", "wrap", "constant" or "nearest"; ``interpolation``: "bilinear" or "nearest";
    ``fill_value``: a real number, read by neighbours outside the image in "constant" mode.
    """
    op = "affine_resample"
    if not hasattr(images, "dtype"):
        raise TypeError(f"{op}: `images` must be a CuPy array on the GPU, got {type(images).__name__}.")
    kernel = f"{op}_{launch.float_suffix(images.dtype, op, 'images')}"
    launch.check_device_array(images, kernel, "images")
    if images.ndim != 4:
        raise ValueError(f"{kernel}: `images` must have shape (N, H, W, C) (channels last), "
                         f"got {tuple(images.shape)}.")
    fill_code = _choice(fill_mode, FILL_CODES, kernel, "fill_mode")
    interpolation_code = _choice(interpolation, INTERPOLATION_CODES, kernel, "interpolation")
    if not isinstance(fill_value, numbers.Real) or isinstance(fill_value, bool):
        raise TypeError(f"{kernel}: `fill_value` must be a real number, got {fill_value!r}.")
    n, h, w, c = (int(d) for d in images.shape)
    m = _matrices(matrices, n, images.dtype, kernel)
    y = launch.empty_output((n, h, w, c), images.dtype)
    if y.size == 0:
        return y
    groups = channel_groups(c)
    grid, block = launch.grid_1d(n * h * w * groups, _THREADS)
    args = (images, m, y) + tuple(numpy.int32(v) for v in (n, h, w, c, groups, fill_code, interpolation_code))
    get_kernel(_KERNEL_FILE, kernel)(grid, block, args + (launch.scalar(fill_value, images.dtype),))
    return y
