"""Keras 3's ``Pipeline``: a plain layer that applies a list of layers in order (an augmentation pipeline).

Shapes: whatever its first layer takes; each layer gets the output of the one
before it, and the pipeline returns the last one's output.

As in Keras 3.15, ``training`` defaults to True: a pipeline called directly
(or by a model called without ``training``) runs its layers in training mode;
a model's ``fit`` passes True, ``predict``/``evaluate`` pass False, and the
pipeline hands that value to every layer. Backward runs the layers'
backwards in reverse, each layer but the first asked for its input gradient
(as a Sequential asks its layers). Its weights are its layers' weights.

Its config is Keras's: ``{"layers": [serialized layers], "name": ...}``;
``from_config`` rebuilds the layers from gpu_dl's own layer classes only.
"""
from __future__ import annotations

from . import gradients, masks
from .base import Layer
from .symbolic import any_symbolic


def _entry(layer):
    return {"module": "keras.layers", "class_name": type(layer).__name__, "config": layer.get_config(),
            "registered_name": None}


class Pipeline(Layer):
    """``Pipeline(layers, name=None)``: ``layers[-1](...layers[1](layers[0](x)))`` (module docstring)."""

    fixed_input_axes = ()        # each layer checks its own input
    keeps_input_dtype = True     # each layer casts its own input, as Keras's pipeline converts nothing

    def __init__(self, layers, name=None):
        where = f"Pipeline layer '{name}'" if name else "Pipeline"
        if not isinstance(layers, (list, tuple)) or not all(isinstance(layer, Layer) for layer in layers):
            raise ValueError(f"{where}: layers must be a list of gpu_dl layers, got {layers!r:.200}.")
        self._pipeline_layers = list(layers)
        super().__init__(name=name)

    @property
    def layers(self):
        return self._pipeline_layers

    # ------------------------------------------------------------ forward path
    def build(self, input_shape):
        # Each layer builds on its first call (and one image without a batch axis is a valid first call of the
        # image layers); a symbolic call builds them through compute_output_shape.
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._pipeline_layers:
            layer.ensure_built(shape)
            shape = layer.compute_output_shape(shape)
        return shape

    def __call__(self, x, training=None, mask=None):
        if any_symbolic(x, mask):
            return self.symbolic_call(x, training=training, mask=mask)
        training = True if training is None else bool(training)
        self.built = True
        for layer in self._pipeline_layers:
            y = layer(x, training=training, mask=mask if layer.takes_mask else None)
            mask = masks.output_mask(layer, x, mask) if mask is not None else None
            x = y
        return x

    def call(self, x, training=True):
        return self(x, training=training)

    def backward(self, dy):
        wanted = self.input_gradient_wanted
        for i in range(len(self._pipeline_layers) - 1, -1, -1):
            layer = self._pipeline_layers[i]
            if layer.activity_regularizer is not None and layer._activity_output is not None:
                out = layer._activity_output
                dy = dy + gradients.scaled(layer.activity_regularizer.gradient(out) / out.dtype.type(out.shape[0]))
            layer.input_gradient_wanted = wanted or i > 0
            try:
                dy = layer.backward(dy)
            finally:
                layer.input_gradient_wanted = True
        return dy

    def weight_groups(self, path):
        """The h5 groups of its layers' weights, as Keras 3 files them: ``<path>/layers/<class key>``."""
        from ..catalogue import keras_class_key
        groups, used = [(path, self.name, [])], {}
        for layer in self._pipeline_layers:
            key = keras_class_key(type(layer))
            used[key] = used.get(key, -1) + 1
            key = key if used[key] == 0 else f"{key}_{used[key]}"
            groups.append((f"{path}/layers/{key}", layer.name, layer.weights))
        return groups

    # -------------------------------------------------------------- serialising
    def get_config(self):
        return {"layers": [_entry(layer) for layer in self._pipeline_layers], "name": self.name}

    @classmethod
    def from_config(cls, config):
        from .. import layers as catalogue      # the layer classes, this module among them: import late
        config = dict(config)
        entries = config.pop("layers", None)
        if not isinstance(entries, (list, tuple)):
            raise ValueError(f"Pipeline: the config must hold the list of serialized layers under 'layers', got "
                             f"layers={entries!r:.200}.")
        rebuilt = []
        for entry in entries:
            name = entry.get("class_name", "") if isinstance(entry, dict) else ""
            layer_class = getattr(catalogue, name, None) if name in catalogue.__all__ else None
            if not isinstance(layer_class, type) or not issubclass(layer_class, Layer):
                raise ValueError(f"Pipeline: each entry of 'layers' must name one of gpu_dl's layer classes, got "
                                 f"{entry!r:.200}.")
            inner = dict(entry.get("config") or {})
            dtype = inner.get("dtype")
            if isinstance(dtype, dict):     # Keras's DTypePolicy entry: its name is the dtype
                inner["dtype"] = (dtype.get("config") or {}).get("name")
            rebuilt.append(layer_class.from_config(inner))
        return cls(rebuilt, **config)
