"""``Masking``: marks the padded steps of sequences, as Keras's layer does."""
from __future__ import annotations

import numbers

from ..backend import array_module
from .base import Layer
from .symbolic import is_symbolic


class Masking(Layer):
    """Steps whose features all equal ``mask_value`` are padding: their mask is False and the layer
    sets them to zero. Recurrent layers after it skip those steps (their states stay as they were).

    Input (batch, timesteps, features); output the same shape; mask (batch, timesteps).
    """

    fixed_input_axes = ()
    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
            raise ValueError(f"Masking layer '{self.name}': mask_value must be a number, got {mask_value!r}.")
        self.mask_value = float(mask_value)

    def _steps(self, x):
        if x.ndim < 3:
            raise ValueError(f"Masking layer '{self.name}' expects (batch, timesteps, features) inputs, got shape "
                             f"{tuple(x.shape)}.")
        return array_module(x).any(x != x.dtype.type(self.mask_value), axis=-1)

    def compute_mask(self, x, mask=None):
        """The steps whose features are not all ``mask_value`` (on symbolic inputs, the ops Keras records)."""
        if is_symbolic(x):
            from . import keras_ops     # the Keras ops sit on the layers' base; import late
            return keras_ops.any(keras_ops.not_equal(x, self.mask_value), axis=-1)
        return self._steps(self._as_input(x))

    def call(self, x, training=False):
        keep = self._steps(x)[..., None]
        self._saved = keep if training else None
        return x * keep

    def backward(self, dy):
        return dy * self.saved()

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
