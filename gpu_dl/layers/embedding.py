"""``Embedding``: turns integer ids (e.g. padded token sequences) into dense vectors, as in Keras 3."""
from __future__ import annotations

from ..backend import array_module
from ..ops.embedding import embedding_lookup, embedding_table_gradient
from . import id_checks
from .base import Layer
from .core import positive_int


class Embedding(Layer):
    """Maps each id in [0, input_dim) to a trainable row of ``embeddings`` (input_dim, output_dim).

    Inputs hold whole numbers, of an integer or a float dtype (a model's float inputs are truncated to
    integers, as Keras casts them); the output has one more axis, of size ``output_dim``. Ids are not
    differentiable: the layer gives no input gradient.
    """

    fixed_input_axes = ()
    keeps_input_dtype = True

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, input_length=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Embedding layer '{self.name}'"
        self.input_dim = positive_int(input_dim, f"{where}: input_dim")
        self.output_dim = positive_int(output_dim, f"{where}: output_dim")
        # Keras's padding id: with mask_zero, id 0 marks a padded step (recurrent layers after it skip
        # those steps), so the vocabulary's own ids start at 1.
        self.mask_zero = bool(mask_zero)
        self.set_weight_arguments(embeddings_initializer=embeddings_initializer,
                                  embeddings_regularizer=embeddings_regularizer,
                                  embeddings_constraint=embeddings_constraint)
        self.embeddings = None
        self._initial_weights = weights   # Keras's `weights=[table]`: set once built
        del input_length                  # Keras 3 accepts it and ignores it: the data give the length

    def build(self, input_shape):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                                          name="embeddings", regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        if self._initial_weights is not None:
            weights, self._initial_weights = self._initial_weights, None
            self.set_weights(weights)

    def compute_mask(self, x, mask):
        return (x != 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def _check_bounds(self, low, high):
        if low < 0 or high >= self.input_dim:
            raise ValueError(f"Embedding layer '{self.name}' has input_dim={self.input_dim}: ids must lie in "
                             f"[0, {self.input_dim - 1}], got ids from {low} to {high}.")

    def check_host_ids(self, x):
        """Raise the ValueError a call on the host array ``x`` would raise for ids outside [0, input_dim): a model
        checks its host inputs so, before they reach the device (see ``id_checks``)."""
        if x.size:
            self._check_bounds(*id_checks.host_bounds(x))

    def _ids(self, x):
        """``x`` as integer row indices, after checking every id names a row."""
        xp = array_module(x)
        ids = x.astype(xp.int64, copy=False)     # floats truncate, as Keras's cast does
        if ids.size and not id_checks.prechecked(self, x):
            # one read-back of both bounds, the only host sync the layer makes (a clear error beats an
            # out-of-range gather, which the GPU would not report); a model skips it for inputs it checked
            self._check_bounds(*id_checks.device_bounds(ids))
        return ids

    def call(self, x, training=False):
        ids = self._ids(x)
        self._saved = ids if training else None
        return embedding_lookup(ids, self.embeddings.value)

    def backward(self, dy):
        ids = self.saved()
        if self.trainable:
            self.embeddings.grad = embedding_table_gradient(ids, dy, self.input_dim)
        return None

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                **self.weight_arguments_config(), "mask_zero": self.mask_zero}
