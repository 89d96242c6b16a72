"""``SpectralNormalization``: a layer's kernel divided by its largest singular value, as Keras 3 does it.

The wrapped layer's kernel (Dense (in, units), Conv* (..., in, filters); Embedding's embeddings) is read as
the matrix W (K / last, last). Keras 3.15's sequence, which this follows step for step:

- build: ``vector_u`` (1, last), non-trainable, TruncatedNormal(stddev=0.02), in the kernel's dtype;
- a training call: unless the kernel is all zeros, ``power_iterations`` times
  v = normalize(u W^T), u = normalize(v W) (normalize: x * min(1 / ||x||, 1e7), see ``_normalize``), then
  sigma = v W u^T; ``vector_u`` takes u and the kernel variable itself takes W / sigma. The wrapped
  layer then runs with that kernel;
- any other call runs the wrapped layer with the kernel as stored (the last W / sigma, moved by the
  optimizer since).

Gradient: Keras replaces the kernel variable's value before the wrapped layer reads it, so its gradient
(on the torch backend: the variable is a leaf, the assignment runs outside autograd) is the wrapped
layer's gradient with respect to the stored kernel W / sigma, and nothing flows through sigma, u or v
(the ``stop_gradient`` on u and v never matters). The backward here is the wrapped layer's backward, and
the optimizer moves the stored W / sigma, as Keras's does.

Weights as Keras orders them: kernel, vector_u, then the wrapped layer's others (bias); a ``.keras``
file holds kernel and vector_u under ``<wrapper>/vars`` and the wrapped layer's weights under
``<wrapper>/layer/vars``; the config holds the wrapped layer under ``"layer"``.
"""
from __future__ import annotations

import numbers

import numpy

from ..backend import array_module
from .base import writable_value
from .wrappers import Wrapper

_EPSILON = 1e-7     # Keras's backend.epsilon(), the floor of ops.normalize's norm


def _normalize(x):
    """Keras's ops.normalize(x, axis=None): x * min(rsqrt(sum(x**2)), 1 / epsilon), in x's dtype. (Keras 3.15's
    torch backend returns it in float32 whatever x's dtype, so a float64 kernel's u and v are rounded to
    float32 there: float64 layers agree with Keras to float32 rounding only, by design.)"""
    xp = array_module(x)
    inverse = xp.minimum(1 / xp.sqrt((x * x).sum()), x.dtype.type(1 / _EPSILON))
    return x * inverse.astype(x.dtype)


def spectral_normalized(kernel, vector_u, power_iterations):
    """(u (1, last), kernel / sigma) of a kernel (..., last) and u (1, last), by Keras's power iteration."""
    w = kernel.reshape(-1, kernel.shape[-1])
    u = vector_u
    for _ in range(power_iterations):
        v = _normalize(u @ w.T)
        u = _normalize(v @ w)
    sigma = (v @ w) @ u.T               # (1, 1)
    return u, (w / sigma).reshape(kernel.shape)


class SpectralNormalization(Wrapper):
    """``SpectralNormalization(layer, power_iterations=1)``: see the module docstring."""

    # ``kernel`` is the wrapped layer's own weight, listed there (and written in both groups by weight_groups).
    _untracked_variables = frozenset({"kernel"})

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, **kwargs)
        if isinstance(power_iterations, bool) or not isinstance(power_iterations, numbers.Integral) \
                or power_iterations < 1:
            raise ValueError(f"SpectralNormalization layer '{self.name}': power_iterations must be an integer "
                             f">= 1, got {power_iterations!r}.")
        self.power_iterations = int(power_iterations)
        if self._kernel_name() is None:
            raise ValueError(self._no_kernel_message())
        self.kernel = self.vector_u = None

    def _kernel_name(self):
        for name in ("kernel", "embeddings"):
            if hasattr(self.layer, name):
                return name
        return None

    def _no_kernel_message(self):
        return (f"SpectralNormalization layer '{self.name}': the wrapped layer '{self.layer.name}' "
                f"({type(self.layer).__name__}) has no 'kernel' nor 'embeddings' weight to normalize; wrap a "
                "Dense, Conv*, or Embedding layer.")

    # ----------------------------------------------------------------- shapes
    def build(self, input_shape):
        self.layer.ensure_built(tuple(input_shape))
        kernel = getattr(self.layer, self._kernel_name() or "kernel", None)
        if kernel is None or not hasattr(kernel, "value"):
            raise ValueError(self._no_kernel_message())
        object.__setattr__(self, "kernel", kernel)     # the wrapped layer's: `weights` places it, not the tracking
        from ..initializers import TruncatedNormal
        self.vector_u = self.add_weight((1, kernel.shape[-1]), TruncatedNormal(stddev=0.02), name="vector_u",
                                        trainable=False)

    def check_input_shape(self, shape):
        if self.layer.built:
            self.layer.check_input_shape(shape)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    # ------------------------------------------------------------------ passes
    def call(self, x, training=False):
        if training:
            kernel, xp = self.kernel.value, array_module(self.kernel.value)
            # Keras leaves an all-zero kernel (and u) as they are. The choice is made on the device (both
            # results computed, one kept), so the training step does not wait for the host to read a flag.
            nonzero = (kernel != 0).any()
            with numpy.errstate(invalid="ignore", divide="ignore"):    # the zero kernel's 0 / 0, discarded
                u, normalized = spectral_normalized(kernel, self.vector_u.value, self.power_iterations)
            writable_value(self.vector_u)[...] = xp.where(nonzero, u, self.vector_u.value)
            writable_value(self.kernel)[...] = xp.where(nonzero, normalized, kernel)
        y = self.layer(x, training=training)
        self._saved = True if training else None
        return y

    def backward(self, dy, through_activation=True):
        self.saved()
        return self._wrapped_backward(dy, through_activation)

    # ----------------------------------------------------------------- weights
    @property
    def weights(self):
        if self.kernel is None:
            return self.layer.weights
        return [self.kernel] + self._weights + [w for w in self.layer.weights if w is not self.kernel]

    @property
    def trainable_weights(self):
        return self.layer.trainable_weights if self._trainable else []

    @property
    def non_trainable_weights(self):
        return self._weights + self.layer.non_trainable_weights if self._trainable else self.weights

    def get_weights(self):
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights):
        """Replace kernel, vector_u and the wrapped layer's other weights at once; on a mismatch, change nothing."""
        mine, weights = self.weights, list(weights)
        if len(weights) != len(mine) or any(tuple(w.shape) != v.shape for v, w in zip(mine, weights)):
            raise ValueError(f"Layer '{self.name}' expects {len(mine)} weight array(s) of shapes "
                             f"{[v.shape for v in mine]}, got {[tuple(w.shape) for w in weights]}.")
        for var, w in zip(mine, weights):
            var.assign(w)

    def count_params(self):
        return int(sum(v.value.size for v in self.weights))

    # -------------------------------------------------------------- serialising
    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}
