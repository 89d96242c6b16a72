"""Finite-difference checks of analytic gradients, in float64.

The check projects the function onto a random direction: for a scalar
``f(x)`` and a random ``d``, the central difference
``(f(x + h d) - f(x - h d)) / 2h`` must equal ``<grad, d>``.
"""
import numpy

from gpu_dl.backend import array_module, to_numpy


def directional_derivative(f, x, d, h=1e-6):
    """Central difference of scalar ``f`` at ``x`` along ``d`` (arrays of one module)."""
    return (float(f(x + h * d)) - float(f(x - h * d))) / (2 * h)


def assert_gradient(f, x, grad, rng, *, h=1e-6, rtol=1e-6, atol=1e-8, directions=3, what="input"):
    """Assert ``grad`` is the gradient of scalar ``f`` at ``x`` along a few random directions.

    ``x`` and ``grad`` are float64 arrays of the same module (NumPy or CuPy).
    """
    assert x.dtype == numpy.float64, f"gradient checks run in float64, got {x.dtype}"
    assert grad.shape == x.shape, f"gradient of {what} has shape {grad.shape}, expected {x.shape}"
    for _ in range(directions):
        d_host = rng.standard_normal(x.shape)
        d = array_module(x).asarray(d_host)
        numeric = directional_derivative(f, x, d, h)
        analytic = float(to_numpy((grad * d).sum()))
        assert abs(numeric - analytic) <= atol + rtol * max(abs(numeric), abs(analytic)), (
            f"gradient of {what}: finite difference {numeric!r} vs analytic {analytic!r}"
        )
