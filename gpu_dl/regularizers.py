"""Weight and activity regularizers: the Keras 3 catalogue, with gradients.

A regularizer is called on an array and returns its penalty as a 0-d array
of the same module and dtype; ``gradient(x)`` returns d penalty / dx.

As in Keras 3, a layer's activity-regularizer penalty is divided by the
batch size (the size of the output's first axis) before it joins the loss.

Names: ``"l1"``, ``"l2"``, ``"orthogonal_regularizer"`` and the class names
give the class with its defaults. ``"L1L2"``/``"l1l2"`` give ``L1L2()``,
whose factors are both 0 (what Keras 3 does); ``"l1_l2"``, the function name
of Keras 2, gives ``L1L2(l1=0.01, l2=0.01)`` as it did there.
"""
from __future__ import annotations

import inspect
import math
import numbers

from .backend import array_module
from .catalogue import from_keras_config, keras_config, lookup

_EPSILON = 1e-7  # Keras's backend.epsilon(): the floor of a row norm in OrthogonalRegularizer


def _factor(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: argument `{name}` must be a finite number >= 0, got {value!r}.")
    return float(value)


class Regularizer:
    """Base class: subclasses implement ``__call__(x)`` (penalty), ``gradient(x)`` and ``get_config``."""

    def __call__(self, x):
        return array_module(x).zeros((), dtype=x.dtype)

    def gradient(self, x):
        return array_module(x).zeros_like(x)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1", type(self).__name__)
        self.l2 = _factor(0.0 if l2 is None else l2, "l2", type(self).__name__)

    def __call__(self, x):
        xp = array_module(x)
        penalty = xp.zeros((), dtype=x.dtype)
        if self.l1:
            penalty = penalty + xp.asarray(self.l1, dtype=x.dtype) * xp.abs(x).sum()
        if self.l2:
            penalty = penalty + xp.asarray(self.l2, dtype=x.dtype) * xp.square(x).sum()
        return xp.asarray(penalty, dtype=x.dtype)

    def gradient(self, x):
        xp = array_module(x)
        grad = xp.zeros_like(x)
        if self.l1:
            grad += xp.asarray(self.l1, dtype=x.dtype) * xp.sign(x)   # sign(0) = 0: no pull at 0
        if self.l2:
            grad += xp.asarray(2.0 * self.l2, dtype=x.dtype) * x
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)``."""

    def __init__(self, l1=0.01):
        super().__init__(l1=0.01 if l1 is None else l1, l2=0.0)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(x**2)``."""

    def __init__(self, l2=0.01):
        super().__init__(l1=0.0, l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns of a 2-D array towards orthogonality.

    Penalty: ``factor * 0.5 * sum_{i != j} |<u_i, u_j>| / (n (n - 1) / 2)``,
    ``u_i`` the rows (or columns) divided by their norm floored at 1e-7, ``n``
    their count. With a single row (column) there are no pairs and the
    penalty is 0 (Keras divides 0 by 0 there).
    """

    MODES = ("rows", "columns")

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _factor(factor, "factor", "OrthogonalRegularizer")
        if mode not in self.MODES:
            raise ValueError(f"OrthogonalRegularizer: argument `mode` must be one of {self.MODES}, got {mode!r}.")
        self.mode = mode

    def _rows(self, x):
        if x.ndim != 2:
            raise ValueError(f"OrthogonalRegularizer: inputs must have rank 2, got shape {tuple(x.shape)}.")
        return x if self.mode == "rows" else x.T

    @staticmethod
    def _normalised(v, xp):
        # min(1/||v_i||, 1/eps) written as 1/sqrt(max(||v_i||^2, eps^2)): no division by 0.
        square_sum = xp.square(v).sum(axis=1, keepdims=True)
        floor = xp.asarray(_EPSILON * _EPSILON, dtype=v.dtype)
        inv_norm = 1.0 / xp.sqrt(xp.maximum(square_sum, floor))
        return v * inv_norm, inv_norm, square_sum > floor

    def _scale(self, n, dtype, xp):
        # factor * 0.5 / (n (n-1) / 2) = factor / (n (n-1))
        return xp.asarray(self.factor / (n * (n - 1.0)) if n > 1 else 0.0, dtype=dtype)

    def __call__(self, x):
        xp = array_module(x)
        v = self._rows(x)
        n = v.shape[0]
        u, _, _ = self._normalised(v, xp)
        product = u @ u.T
        off_diagonal = product * (1.0 - xp.eye(n, dtype=x.dtype))
        return xp.asarray(self._scale(n, x.dtype, xp) * xp.abs(off_diagonal).sum(), dtype=x.dtype)

    def gradient(self, x):
        xp = array_module(x)
        v = self._rows(x)
        n = v.shape[0]
        u, inv_norm, unclamped = self._normalised(v, xp)
        product = u @ u.T
        # d penalty / d product: scale * sign off the diagonal; symmetric, so d/du = 2 G u.
        g = self._scale(n, x.dtype, xp) * xp.sign(product) * (1.0 - xp.eye(n, dtype=x.dtype))
        du = 2.0 * (g @ u)
        # Through u = v / ||v||: subtract the radial part, except where the norm floor holds
        # (there 1/||v|| is the constant 1/eps).
        radial = (du * u).sum(axis=1, keepdims=True) * u
        dv = inv_norm * (du - xp.where(unclamped, radial, 0.0))
        dv = dv.astype(x.dtype, copy=False)
        return dv if self.mode == "rows" else xp.ascontiguousarray(dv.T)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# ----------------------------------------------------------------- catalogue
_CLASSES = {"l1": L1, "l2": L2, "l1l2": L1L2, "orthogonal_regularizer": OrthogonalRegularizer}
_NAMES = {**_CLASSES, "l1_l2": lambda: L1L2(l1=0.01, l2=0.01)}

# Function-style aliases, as Keras 3 exports them (they are the classes).
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer


def serialize(regularizer):
    """Keras's config dict: ``{"module", "class_name": "L2", "config": {"l2": 0.01}, "registered_name"}``."""
    if regularizer is None:
        return None
    if not isinstance(regularizer, Regularizer):
        raise TypeError(f"serialize expects a Regularizer, got {regularizer!r}.")
    return keras_config(regularizer, "keras.regularizers", type(regularizer) in _CLASSES.values())


def deserialize(config, custom_objects=None):
    """The regularizer a ``serialize`` dict (or a Keras one) describes; ``custom_objects`` maps names to classes."""
    return from_keras_config("regularizers", config, _CLASSES, custom_objects)


def get(identifier):
    """A regularizer from ``None``, a name, an instance, a class or a config dict.

    A plain function is refused with a TypeError: training needs the
    penalty's gradient, so subclass ``Regularizer`` and define ``gradient``.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        return lookup("regularizers", identifier, _NAMES)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if inspect.isclass(identifier) and issubclass(identifier, Regularizer):
        return identifier()
    if callable(identifier):
        raise TypeError(f"regularizer {getattr(identifier, '__name__', identifier)!r} is a plain callable; "
                        "gpu_dl needs the penalty's gradient too: subclass gpu_dl.regularizers.Regularizer "
                        "and define __call__(x) and gradient(x).")
    raise TypeError(f"Could not interpret regularizer identifier {identifier!r}: expected None, a name "
                    "such as 'l2', a Regularizer or a config dict.")
