"""``TimeDistributed``: one layer applied to every step of a sequence.

An input (batch, steps, ...) is reshaped to (batch * steps, ...), passed once
through the wrapped layer, and its output (batch * steps, ...) reshaped to
(batch, steps, ...): every step goes through the same weights, which the
wrapped layer owns (Keras 3 saves them under ``<wrapper>/layer/vars``, and
its config holds the wrapped layer under ``"layer"``). The backward pass is
the same reshape around the wrapped layer's backward.

One call over all steps gives what Keras 3's loop of one call per step
gives. The one layer whose training pass depends on the batch it sees,
``BatchNormalization``, is told the number of steps, and takes its training
statistics over each step's slice alone and moves its moving statistics once
per step, as Keras's loop does. Random layers (``Dropout``) draw independent
noise per element either way.

A model (Sequential or functional, one input and one output) may be wrapped,
as in Keras: a per-frame encoder. It runs once over all steps too, every
BatchNormalization in it taking its statistics per step; its weights are saved
under ``<wrapper>/layer/layers/...`` and its config in full under ``"layer"``.
Refused: a model whose layers have activity regularizers (Keras divides each
step's penalty by the batch, one call over all steps would not).

Masks: the mask of padded steps passes through unchanged, as in Keras. Of
the wrapped layers only BatchNormalization reads it (Keras hands each step's
call that step's mask): padded steps stay out of its statistics. Other
layers see no mask (an outer step's mask says nothing about their own axes).
"""
from __future__ import annotations

import contextlib

from .base import Layer


def _check_wrapped_model(kind, model, name):
    """A ValueError when ``model`` cannot be wrapped: a layer applied to each step gives one tensor per step."""
    inputs, outputs = getattr(model, "_input_count", 1), getattr(model, "_output_count", 1)
    if inputs != 1 or outputs != 1:
        raise ValueError(f"{kind}{f' {name!r}' if name else ''} applies one model to each step of one input; model "
                         f"'{model.name}' ({type(model).__name__}) has {inputs} input(s) and {outputs} "
                         "output(s). Wrap a model of one input and one output.")


class Wrapper(Layer):
    """Keras's ``Wrapper``: the base of layers that own one other layer (``self.layer``) and run it.

    What a wrapper shares: the wrapped layer is checked (one gpu_dl layer; a model only where the wrapper
    ``takes_models``, as TimeDistributed does, and then of one input and one output); the wrapper computes in
    its precision; the flags a model sets on its layers (``keep_preactivation``, ``input_gradient_wanted``)
    and ``trainable`` reach it; a model reads its ``activation`` (to fuse a last softmax into the loss) and
    ``keeps_input_dtype``; its config holds the wrapped layer under ``"layer"``, rebuilt only from gpu_dl's own
    layer classes.
    """

    # Whether the wrapped layer may be a model (Sequential or functional): TimeDistributed's may, as in Keras.
    takes_models = False

    def __init__(self, layer, **kwargs):
        from .core import InputLayer
        kind = type(self).__name__
        if not isinstance(layer, Layer) or isinstance(layer, InputLayer):
            raise TypeError(f"{kind} wraps a gpu_dl layer (Dense, Conv2D, ...), got {layer!r}.")
        if callable(getattr(layer, "compile", None)):    # a model (models are the layers that compile)
            if not self.takes_models:
                raise TypeError(f"{kind} wraps one layer; '{layer.name}' is a model ({type(layer).__name__}), "
                                "which it does not take. Wrap each of its layers instead.")
            _check_wrapped_model(kind, layer, kwargs.get("name"))
        # Set before Layer.__init__, whose assignments to keep_preactivation and input_gradient_wanted
        # reach the wrapped layer through the properties below.
        self.layer = layer
        if kwargs.get("dtype") is None:
            # The wrapped layer's precision, so that the wrapper does not cast its input to another first.
            kwargs["dtype"] = layer.dtype
        super().__init__(**kwargs)

    def _wrapped_backward(self, dy, through_activation):
        # through_activation=False: the model fused the wrapped layer's softmax into its loss
        if through_activation:
            return self.layer.backward(dy)
        return self.layer.backward(dy, through_activation=False)

    # ------------------------------------- what the model reads of its last layer
    @property
    def activation(self):
        """The wrapped layer's activation (None if it has none): a model fuses a last softmax into its loss."""
        return getattr(self.layer, "activation", None)

    @property
    def keep_preactivation(self):
        return self.layer.keep_preactivation

    @keep_preactivation.setter
    def keep_preactivation(self, value):
        self.layer.keep_preactivation = value

    def saved_preactivation(self):
        return self.layer.saved_preactivation()

    @property
    def input_gradient_wanted(self):
        return self.layer.input_gradient_wanted

    @input_gradient_wanted.setter
    def input_gradient_wanted(self, value):
        self.layer.input_gradient_wanted = bool(value)

    @property
    def keeps_input_dtype(self):
        # Embedding takes ids as they are; a model casts in its own layers
        return getattr(self.layer, "keeps_input_dtype", False)

    # -------------------------------------------------------------- serialising
    def get_config(self):
        config = super().get_config()
        config["layer"] = {"class_name": type(self.layer).__name__, "config": self.layer.get_config()}
        return config

    @classmethod
    def from_config(cls, config):
        from .. import layers as catalogue      # the layer classes, this module among them: import late
        config = dict(config)
        entry = config.pop("layer", None)
        layer_class = getattr(catalogue, entry.get("class_name", ""), None) if isinstance(entry, dict) else None
        if cls.takes_models and isinstance(entry, dict) and entry.get("class_name") in ("Sequential", "Functional"):
            from ..models import Functional, Sequential      # models sit above layers: import late
            layer_class = {"Sequential": Sequential, "Functional": Functional}[entry["class_name"]]
        if not isinstance(layer_class, type) or not issubclass(layer_class, Layer):
            raise ValueError(f"{cls.__name__}: the config's 'layer' must name one of gpu_dl's layer classes, "
                             f"got {entry!r:.200}.")
        return cls(layer_class.from_config(dict(entry.get("config") or {})), **config)


class TimeDistributed(Wrapper):
    """``TimeDistributed(layer)``: applies ``layer`` to each slice ``x[:, t]`` of inputs (batch, steps, ...).
    ``layer`` may be a model of one input and one output (a per-frame encoder), as in Keras."""

    supports_masking = True
    takes_mask = True       # handed to a wrapped BatchNormalization
    takes_models = True

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        self._steps = None      # (batch, steps) of the last call

    # ----------------------------------------------------------------- shapes
    def _checked(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 3:
            raise ValueError(f"TimeDistributed layer '{self.name}' applies layer '{self.layer.name}' "
                             f"({type(self.layer).__name__}) to every step along axis 1, so it expects inputs of "
                             f"rank >= 3 (batch, timesteps, ...); got shape {input_shape} (rank {len(input_shape)}). "
                             "For a 2-D (batch, features) input use the layer itself.")
        return input_shape

    def _inner_shape(self, input_shape):
        n, t = input_shape[:2]
        return (None if n is None or t is None else n * t,) + tuple(input_shape[2:])

    def build(self, input_shape):
        # As Keras's: the wrapped layer is built for one step of the batch, (batch, ...) without the steps axis
        input_shape = self._checked(input_shape)
        self.layer.ensure_built((input_shape[0],) + tuple(input_shape[2:]))

    def check_input_shape(self, shape):
        # The number of steps is free, as in Keras: only what the wrapped layer needs of one step is checked.
        shape = self._checked(shape)
        if self.layer.built:
            self.layer.check_input_shape(self._inner_shape(shape))

    def compute_output_shape(self, input_shape):
        input_shape = self._checked(input_shape)
        inner = self.layer._flat_output_shape((input_shape[0],) + tuple(input_shape[2:]))
        if isinstance(inner, list):
            raise ValueError(f"TimeDistributed layer '{self.name}': layer '{self.layer.name}' returns several "
                             "arrays (return_state, or merge_mode=None); TimeDistributed takes a layer with one "
                             "output.")
        return (inner[0], input_shape[1]) + tuple(inner[1:])

    # ------------------------------------------------------------------ passes
    def call(self, x, training=False, mask=None):
        n, t = x.shape[:2]
        inner = x.reshape((n * t,) + tuple(x.shape[2:]))
        with contextlib.ExitStack() as stack:
            if self._wraps_model():
                # Keras calls the model once per step: each BatchNormalization in it (however deep) takes
                # its statistics per step. The outer mask is not handed in (Keras hands each step's slice to
                # the model's call, which gpu_dl's models do not take).
                self._refuse_activity_regularizers()
                for layer in self.layer._flat_layers():
                    if hasattr(layer, "statistics_per_step"):
                        stack.enter_context(layer.statistics_per_step(t))
            elif hasattr(self.layer, "statistics_per_step"):
                stack.enter_context(self.layer.statistics_per_step(t, mask))
            y = self.layer(inner, training=training)
        if isinstance(y, dict) and len(y) == 1:     # a model made with a dict of one output gives it keyed
            (y,) = y.values()
        if isinstance(y, list):
            raise ValueError(f"TimeDistributed layer '{self.name}': layer '{self.layer.name}' returned "
                             f"{len(y)} arrays; TimeDistributed takes a layer with one output.")
        self._steps = (n, t)
        self._saved = (n, t) if training else None
        return y.reshape((n, t) + tuple(y.shape[1:]))

    def _wraps_model(self):
        return callable(getattr(self.layer, "compile", None))

    def _refuse_activity_regularizers(self):
        # Keras divides each step's activity penalty by the batch, where the one call over batch * steps here
        # would divide by batch * steps: refused rather than trained with another penalty.
        found = [layer.name for layer in self.layer._flat_layers() if layer.activity_regularizer is not None]
        if found:
            raise ValueError(f"TimeDistributed layer '{self.name}': model '{self.layer.name}' has layers with an "
                             f"activity regularizer ({', '.join(found)}), which gpu_dl does not apply per step "
                             "inside TimeDistributed. Regularize the weights (kernel_regularizer) or apply the "
                             "activity regularizer after the TimeDistributed layer.")

    def backward(self, dy, through_activation=True):
        n, t = self.saved()
        dx = self._wrapped_backward(dy.reshape((n * t,) + tuple(dy.shape[2:])), through_activation)
        return None if dx is None else dx.reshape((n, t) + tuple(dx.shape[1:]))

    def saved_preactivation(self):
        z = self.layer.saved_preactivation()
        n, t = self._steps
        return z.reshape((n, t) + tuple(z.shape[1:]))

    # ----------------------------------------------------------------- weights
    @property
    def weights(self):
        return self.layer.weights

    @property
    def trainable_weights(self):
        return self.layer.trainable_weights if self._trainable else []

    @property
    def non_trainable_weights(self):
        return self.layer.non_trainable_weights if self._trainable else self.layer.weights

    def get_weights(self):
        return self.layer.get_weights()

    def set_weights(self, weights):
        self.layer.set_weights(weights)

    def count_params(self):
        return self.layer.count_params()
