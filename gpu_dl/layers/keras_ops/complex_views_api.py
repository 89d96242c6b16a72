"""Keras's ``polar``, ``view_as_complex`` and ``view_as_real`` as ``gpu_dl.ops.<name>`` (``polar`` also in
``gpu_dl.ops.nn``), and ``jvp``, which gpu_dl does not compute.

On arrays (NumPy or CuPy; numbers and lists as the current device's arrays) they compute at once; on symbolic
tensors they record Keras's operation (``complex_views.py``), whose backward is exact.
"""
from __future__ import annotations

from ... import backprop as _backprop
from ..symbolic import is_symbolic
from . import _array, _local, _taking_variables
from . import complex_views as _cv

__all__ = ["polar", "view_as_complex", "view_as_real", "jvp"]


def _computed(op, arrays, arguments=None):
    """``op`` run at once on ``arrays`` with its shape and dtype checks (those of a symbolic call)."""
    op.arguments = [None] * len(arrays) if arguments is None else arguments
    op.dtype = op.result_dtype(arrays, op.arguments)
    op.output_shape_of(op.arguments, [a.shape for a in arrays])
    return op.forward_function(*op.operands(arrays))


def polar(abs_, angle):
    """The complex tensor ``abs_ * (cos(angle) + i sin(angle))`` (complex64, complex128 from float64)."""
    if is_symbolic(abs_) or is_symbolic(angle):
        return _cv.Polar().apply(abs_, angle)
    return _computed(_local(_cv.Polar), [_array(abs_), _array(angle)])


def view_as_complex(x):
    """A real tensor of shape ``(..., 2)`` as the complex64 tensor ``x[..., 0] + i x[..., 1]``."""
    if is_symbolic(x):
        return _cv.ViewAsComplex().apply(x)
    return _computed(_local(_cv.ViewAsComplex), [_array(x)])


def view_as_real(x):
    """A complex tensor as the real tensor of shape ``(..., 2)`` of its real and imaginary parts."""
    if is_symbolic(x):
        return _cv.ViewAsReal().apply(x)
    return _computed(_local(_cv.ViewAsReal), [_array(x)])


def jvp(fun, primals, tangents, has_aux=False):
    """Keras's forward-mode Jacobian-vector product, which gpu_dl does not compute: a NotImplementedError."""
    raise NotImplementedError(
        "jvp: gpu_dl differentiates in reverse mode only (each operation has a hand-written backward), so it has "
        "no forward-mode Jacobian-vector product. For gradients use reverse mode: model.backward(dy) or "
        "loss.backward() give vector-Jacobian products (a layer's backward(dy) gives its own); a directional "
        "derivative of fun along the tangents can be estimated by central differences, "
        "(fun(primals + h * tangents) - fun(primals - h * tangents)) / (2 * h).")


# On arrays, loss.backward() refuses the outputs of these functions where they come from a recorded call
# (gpu_dl/backprop.py); jvp takes a function and is left as it is.
for _name in ("polar", "view_as_complex", "view_as_real"):
    globals()[_name] = _backprop.followed(_taking_variables(globals()[_name]), _name)
del _name
