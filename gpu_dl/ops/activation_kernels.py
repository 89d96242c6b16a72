"""Launchers of ``kernels/activations.cu``: elementwise activations on CuPy arrays.

The only place that knows the kernels' geometry and the codes of their
``kind`` switch. ``gpu_dl.activations.ActivationFunction`` sends CuPy
float32/float64 arrays here for the activations listed in ``KIND`` and keeps
the array-arithmetic path of ``ops/elementwise.py`` (the reference these
kernels are tested against) for everything else.
"""
from __future__ import annotations

import math

import numpy

from ..backend import launch
from ..backend.kernels import get_kernel

_KERNEL_FILE = "activations.cu"
_THREADS = 256

# Activation name -> the code of its case in activations.cu.
KIND = {
    "linear": 0, "relu": 1, "relu6": 1, "leaky_relu": 2, "elu": 3, "selu": 4, "exponential": 5, "sigmoid": 6,
    "softplus": 7, "silu": 8, "tanh": 9, "softsign": 10, "hard_sigmoid": 11, "hard_silu": 12, "step": 13,
}


def has_kernel(name: str, x) -> bool:
    """True when ``x`` is a CuPy float32/float64 array and activation ``name`` has a kernel."""
    return (name in KIND and type(x).__module__.startswith("cupy")
            and x.dtype in (numpy.float32, numpy.float64))


# The parameters each activation's kernel case reads; any other is refused, as the NumPy functions refuse it.
_PARAMETER_NAMES = {"relu": {"negative_slope", "max_value", "threshold"}, "leaky_relu": {"negative_slope"},
                    "elu": {"alpha"}}


def _parameters(name: str, params: dict) -> tuple:
    """(p0, p1, p2) of the kernel's switch for one activation's parameters (see activations.cu)."""
    unknown = set(params) - _PARAMETER_NAMES.get(name, set())
    if unknown:
        raise TypeError(f"activation {name!r} has no parameter {', '.join(map(repr, sorted(unknown)))}; "
                        f"it takes {sorted(_PARAMETER_NAMES.get(name, ())) or 'none'}.")
    if name in ("relu", "relu6"):
        max_value = 6.0 if name == "relu6" else params.get("max_value")
        return (float(params.get("negative_slope", 0.0)),
                math.nan if max_value is None else float(max_value),   # NaN: no clipping at all
                float(params.get("threshold", 0.0)))
    if name == "leaky_relu":
        return float(params.get("negative_slope", 0.2)), 0.0, 0.0
    if name == "elu":
        return float(params.get("alpha", 1.0)), 0.0, 0.0
    return 0.0, 0.0, 0.0


def _scalars(dtype, name, params):
    """The kernel's trailing arguments: ``kind`` as int32, p0..p2 in the arrays' dtype."""
    kind = KIND.get(name)
    if kind is None:
        raise ValueError(f"activation {name!r} has no elementwise kernel; those with one: {sorted(KIND)}.")
    return (numpy.int32(kind),) + tuple(launch.scalar(p, dtype) for p in _parameters(name, params))


def bias_activation_cuda(z, bias, name: str, params: dict, want_z=True):
    """Launcher of ``bias_activation_fwd_{f32,f64}``: ``z += bias`` in place (bias may be None), ``y = f(z)``.

    ``z`` and ``bias`` must be C-contiguous CuPy arrays of one float dtype, bias of shape
    ``(z.shape[-1],)``. Returns ``(z, y)`` with ``y`` a new array, except for the identity activation,
    whose ``y`` is ``z`` itself as on the NumPy path (and which launches nothing without a bias).
    With ``want_z=False`` (a caller whose backward reads y alone) the kernel skips the store of
    ``z + bias`` and the returned ``z`` is None, except for the identity, whose ``z`` is ``y``.
    """
    kernel = f"bias_activation_fwd_{launch.float_suffix(z.dtype, 'bias_activation_fwd', 'z')}"
    launch.check_device_array(z, kernel, "z")
    columns = z.shape[-1] if z.ndim else 1
    if bias is not None:
        launch.check_device_array(bias, kernel, "bias", dtype=z.dtype, shape=(columns,))
    scalars = _scalars(z.dtype, name, params)
    identity = name == "linear"
    y = z if identity else launch.empty_output(z.shape, z.dtype)
    if z.size and not (identity and bias is None):
        grid, block = launch.grid_1d(z.size, _THREADS)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, (
            z, launch.optional(bias), y, numpy.int32(z.size), numpy.int32(max(columns, 1)),
            numpy.int32(bool(want_z))) + scalars)
    return (z if want_z or identity else None), y


def activation_backward_cuda(z, y, dy, name: str, params: dict):
    """Launcher of ``activation_bwd_{f32,f64}``: ``dz = dy * f'(z)`` (from z or y, as the formula needs).

    ``z``, ``y`` (the forward's output) and ``dy`` must be C-contiguous CuPy arrays of one float dtype
    and one shape. Returns ``dz``, a new array.
    """
    kernel = f"activation_bwd_{launch.float_suffix(z.dtype, 'activation_bwd', 'z')}"
    launch.check_device_array(z, kernel, "z")
    launch.check_device_array(y, kernel, "y", dtype=z.dtype, shape=z.shape)
    launch.check_device_array(dy, kernel, "dy", dtype=z.dtype, shape=z.shape)
    scalars = _scalars(z.dtype, name, params)
    dz = launch.empty_output(z.shape, z.dtype)
    if z.size:
        grid, block = launch.grid_1d(z.size, _THREADS)
        get_kernel(_KERNEL_FILE, kernel)(grid, block, (z, y, dy, dz, numpy.int32(z.size)) + scalars)
    return dz
