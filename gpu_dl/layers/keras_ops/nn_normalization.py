"""Keras's ``keras.ops.nn`` normalizations ``BatchNorm``, ``LayerNorm`` and ``RMSNorm``,
with Keras's classes, modules and configs, each with a forward and an exact backward.
"""
from __future__ import annotations

import numpy

from ...ops.arithmetic import reduce_to_shape
from .base import _xp
from .nn_base import NNOperation, _promoted

__all__ = ["BatchNorm", "LayerNorm", "RMSNorm", "OPERATIONS"]


def _param_shape(shape, axes, ndim):
    """The shape a per-feature parameter of ``shape`` takes to broadcast against a tensor of ``ndim`` axes
    normalised over (or indexed by) ``axes``: its own shape if it has ``ndim`` axes, else its sizes along ``axes``
    and 1 elsewhere; None where it has neither form."""
    if len(shape) == ndim:
        return tuple(shape)
    return None if len(shape) != len(axes) else tuple(
        shape[list(axes).index(i)] if i in axes else 1 for i in range(ndim))


def _axes_list(axis, ndim, where):
    axes = [axis] if isinstance(axis, (int, numpy.integer)) else list(axis)
    if any(isinstance(a, bool) or not isinstance(a, (int, numpy.integer)) or not -ndim <= a < ndim for a in axes):
        raise ValueError(f"{where}: `axis` {axis!r} is out of range for a tensor of {ndim} axes.")
    normalized = sorted(int(a) % ndim for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{where}: `axis` {axis!r} repeats an axis.")
    return normalized


class BatchNorm(NNOperation):
    """``batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3)``: the vectors
    ``mean``, ``variance``, ``offset``, ``scale`` along ``axis``; ``(x - mean) * rsqrt(variance + epsilon) *
    scale + offset``, every tensor among them differentiable."""

    positional = ("x", "mean", "variance", "offset", "scale")
    required = 3
    config_keys = ("axis", "epsilon")

    def __init__(self, axis, epsilon=1e-3, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, numpy.integer)):
            raise TypeError(f"{self._where()}: `axis` must be an int, got {axis!r:.80}.")
        self.axis, self.epsilon = int(axis), float(epsilon)

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        x = given["x"]
        if not -len(x) <= self.axis < len(x):
            raise ValueError(f"{self._where()}: `axis` {self.axis} is out of range for a tensor of {len(x)} axes.")
        size = x[self.axis]
        for name in self.positional[1:]:
            shape = given[name]
            if shape is not None and (len(shape) != 1 or (size is not None and shape[0] != size)):
                raise ValueError(f"{self._where()}: `{name}` must be a vector of the {size} features of axis "
                                 f"{self.axis}, got shape {shape}.")
        return x

    def _shaped(self, x, v):
        shape = [1] * x.ndim
        shape[self.axis] = x.shape[self.axis]
        return None if v is None else v.reshape(shape)

    def forward_function(self, x, mean, variance, offset=None, scale=None):
        mean, variance, offset, scale = (self._shaped(x, v) for v in (mean, variance, offset, scale))
        factor = 1 / _xp(x).sqrt(variance + self.epsilon)
        if scale is not None:
            factor = factor * scale
        y = (x - mean) * factor
        return y if offset is None else y + offset

    def backward_function(self, dy, operands, y):
        x, mean, variance, offset, scale = operands
        m, v, s = (self._shaped(x, t) for t in (mean, variance, scale))
        inv = 1 / _xp(x).sqrt(v + self.epsilon)
        factor = inv if s is None else inv * s
        dx = dy * factor
        dfactor = dy * (x - m)
        axes = tuple(i for i in range(x.ndim) if i != self.axis % x.ndim)

        def vector(g):
            return g.sum(axis=axes)
        return [dx, -vector(dx), vector(-0.5 * dfactor * factor * inv * inv), None if offset is None else vector(dy),
                None if s is None else vector(dfactor * inv)]


class LayerNorm(NNOperation):
    """``layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None)``: normalised over ``axis``
    (epsilon None: 1e-7, Keras's), then times ``gamma`` plus ``beta``; ``rms_scaling`` (deprecated in Keras)
    divides by the root of the variance plus epsilon without centring."""

    positional = ("x", "gamma", "beta")
    config_keys = ("axis", "epsilon", "rms_scaling")

    def __init__(self, axis=-1, epsilon=None, rms_scaling=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon, self.rms_scaling = epsilon, bool(rms_scaling)

    def _eps(self):
        return 1e-7 if self.epsilon is None else float(self.epsilon)

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        x = given["x"]
        axes = _axes_list(self.axis, len(x), self._where())
        for name in self.positional[1:]:
            shape = given[name]
            if shape is not None and _param_shape(shape, axes, len(x)) is None:
                raise ValueError(f"{self._where()}: `{name}` of shape {shape} does not match the normalised axes "
                                 f"{axes} of a tensor of shape {x}.")
        return x

    def result_dtype(self, tensors, arguments):
        return _promoted(tensors[0].dtype)

    def eager_dtype(self, arrays):
        return _promoted(arrays[0].dtype.name)

    def _param(self, v, axes, ndim):
        return None if v is None else v.reshape(_param_shape(v.shape, axes, ndim))

    def _stats(self, x, axes):
        mean = None if self.rms_scaling else x.mean(axis=tuple(axes), keepdims=True)
        var = x.var(axis=tuple(axes), keepdims=True)
        return mean, 1 / _xp(x).sqrt(var + self._eps())

    def forward_function(self, x, gamma=None, beta=None):
        axes = _axes_list(self.axis, x.ndim, self._where())
        mean, inv = self._stats(x, axes)
        y = (x if mean is None else x - mean) * inv
        if gamma is not None:
            y = y * self._param(gamma, axes, x.ndim)
        return y if beta is None else y + self._param(beta, axes, x.ndim)

    def backward_function(self, dy, operands, y):
        x, gamma, beta = operands
        axes = tuple(_axes_list(self.axis, x.ndim, self._where()))
        mean, inv = self._stats(x, axes)
        g = self._param(gamma, axes, x.ndim)
        dxhat = dy if g is None else dy * g
        if self.rms_scaling:
            # y = x * (var + eps)^-1/2: the variance's own gradient, x centred inside it.
            centred = x - x.mean(axis=axes, keepdims=True)
            dx = dxhat * inv - centred * (inv ** 3) * (dxhat * x).mean(axis=axes, keepdims=True)
            xhat = x * inv
        else:
            xhat = (x - mean) * inv
            dx = inv * (dxhat - dxhat.mean(axis=axes, keepdims=True) -
                        xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
        dgamma = None if gamma is None else reduce_to_shape(dy * xhat, g.shape).reshape(gamma.shape)
        dbeta = None if beta is None else reduce_to_shape(dy, self._param(beta, axes, x.ndim).shape).reshape(
            beta.shape)
        return [dx, dgamma, dbeta]


class RMSNorm(NNOperation):
    """``rms_normalization(x, scale=None, axis=-1, epsilon=None)``: ``x * rsqrt(mean(x ** 2) + epsilon) * scale``
    over ``axis`` (epsilon None: 1e-7, Keras's). Keras records ``scale`` as a keyword of the call."""

    positional = ("x", "scale")
    keyword_arguments = tensor_keywords = ("scale",)
    config_keys = ("axis", "epsilon")

    def __init__(self, axis=-1, epsilon=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon = epsilon

    _eps = LayerNorm._eps
    result_dtype = LayerNorm.result_dtype
    eager_dtype = LayerNorm.eager_dtype
    _param = LayerNorm._param

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        x = given["x"]
        axes = _axes_list(self.axis, len(x), self._where())
        scale = given["scale"] if given["scale"] is not None else (
            numpy.shape(self.keywords.get("scale")) if self.keywords.get("scale") is not None else None)
        if scale is not None and scale != () and _param_shape(scale, axes, len(x)) is None:
            raise ValueError(f"{self._where()}: `scale` of shape {scale} does not match the normalised axes {axes} "
                             f"of a tensor of shape {x}.")
        return x

    def _scale(self, scale, x):
        if scale is None and self.keywords.get("scale") is not None:
            scale = _xp(x).asarray(numpy.asarray(self.keywords["scale"], dtype=x.dtype))
        return scale

    def forward_function(self, x, scale=None):
        axes = _axes_list(self.axis, x.ndim, self._where())
        inv = 1 / _xp(x).sqrt((x * x).mean(axis=tuple(axes), keepdims=True) + self._eps())
        scale = self._scale(scale, x)
        y = x * inv
        return y if scale is None else y * (scale if scale.ndim == 0 else self._param(scale, axes, x.ndim))

    def backward_function(self, dy, operands, y):
        x, scale = operands
        axes = tuple(_axes_list(self.axis, x.ndim, self._where()))
        inv = 1 / _xp(x).sqrt((x * x).mean(axis=axes, keepdims=True) + self._eps())
        s = self._scale(scale, x)
        shaped = None if s is None else (s if s.ndim == 0 else self._param(s, axes, x.ndim))
        g = dy if shaped is None else dy * shaped
        dx = g * inv - x * inv ** 3 * (g * x).mean(axis=axes, keepdims=True)
        dscale = None if scale is None else reduce_to_shape(dy * x * inv, shaped.shape).reshape(scale.shape)
        return [dx, dscale]


OPERATIONS = {cls.__name__: cls for cls in (BatchNorm, LayerNorm, RMSNorm)}
