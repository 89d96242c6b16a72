"""Keras 3's ``Bidirectional`` wrapper over any of gpu_dl's recurrent layers.

It wraps a ``SequenceLayer`` (``sequence_layer.py`` says what that offers): LSTM, GRU, SimpleRNN,
``RNN(cell)`` / ``RNN([cells])``, ConvLSTM1D, ConvLSTM2D and ConvLSTM3D. Inputs are the wrapped layer's
((batch, time, features), or (batch, time, ..., channels) for the ConvLSTMs); the two outputs have the
wrapped layer's output shape and are merged along the last axis (concat) or elementwise.
"""
from __future__ import annotations

from ..backend import array_module
from .base import Layer
from .conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from .recurrent import GRU, LSTM, SimpleRNN
from .rnn_layer import RNN
from .sequence_layer import SequenceLayer
from .symbolic import flatten_structure

# The classes a Bidirectional entry of a file may name for its layers, found here by class name only (never
# a module named in the file).
SEQUENCE_LAYER_CLASSES = {cls.__name__: cls for cls in (LSTM, GRU, SimpleRNN, RNN, ConvLSTM1D, ConvLSTM2D,
                                                         ConvLSTM3D)}


def _without_prefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Runs ``layer`` forwards and a copy of it backwards over the sequence and merges the two outputs.

    ``merge_mode``: "concat" (default), "sum", "mul", "ave", or None (a list of both). The backward
    copy's sequence output is turned back to the input's time order before merging. Weights: the
    forward layer's, then the backward layer's. As in Keras, the forward layer is a copy made from
    ``layer``'s config named ``forward_<name>``, and unless ``backward_layer`` is given the backward one
    is another named ``backward_<name>`` that reads the other way; both start with fresh weights.

    A wrapped layer with ``return_state=True`` makes the call return
    ``[output, *forward_states, *backward_states]`` (each layer's states in its own order: LSTM and
    ConvLSTM h, c; GRU and SimpleRNN h; RNN every cell's, nested per cell; merge_mode None:
    ``[forward_output, backward_output, *states]``), and ``initial_state`` takes the forward layer's
    states, then the backward layer's. ``backward`` takes one gradient per returned array (None for
    those without one); after it, ``initial_state_gradients`` holds those of the initial states in the
    same order.
    """

    MERGE_MODES = ("concat", "sum", "mul", "ave", None)
    call_first_argument = "sequences"
    takes_mask = True
    takes_initial_state = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        known = ", ".join(SEQUENCE_LAYER_CLASSES)
        if not isinstance(layer, SequenceLayer):
            raise TypeError(f"Bidirectional wraps a recurrent layer ({known}), got {layer!r:.200}.")
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {self.MERGE_MODES}, got {merge_mode!r}.")
        super().__init__(**kwargs)
        config = layer.get_config()
        # Copies from the config, as Keras makes them, so that neither carries the given layer's state.
        self.forward_layer = type(layer).from_config(
            {**config, "name": f"forward_{_without_prefix(layer.name, 'forward_')}"})
        if backward_layer is None:
            backward_layer = type(layer).from_config(
                {**config, "name": f"backward_{_without_prefix(layer.name, 'backward_')}",
                 "go_backwards": not layer.go_backwards})
        elif not isinstance(backward_layer, SequenceLayer):
            raise ValueError(f"Bidirectional: backward_layer must be a recurrent layer ({known}), "
                             f"got {backward_layer!r:.200}.")
        elif backward_layer.go_backwards == layer.go_backwards:
            raise ValueError(f"Bidirectional: backward_layer '{backward_layer.name}' must read the sequence in the "
                             f"other direction from layer '{layer.name}' (go_backwards={not layer.go_backwards}), "
                             f"got go_backwards={backward_layer.go_backwards} for both.")
        for attribute in ("return_sequences", "return_state", "stateful"):   # the attributes Keras compares
            if getattr(backward_layer, attribute) != getattr(layer, attribute):
                raise ValueError(f"Bidirectional: backward_layer '{backward_layer.name}' must have the same "
                                 f"{attribute} as layer '{layer.name}' ({getattr(layer, attribute)}), got "
                                 f"{getattr(backward_layer, attribute)}.")
        self.backward_layer = backward_layer
        for sub in (self.forward_layer, self.backward_layer):   # Keras merges zeros at masked steps
            sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.initial_state_gradients = None   # after backward: the forward layer's, then the backward layer's

    def build(self, input_shape):
        for sub in (self.forward_layer, self.backward_layer):
            sub.ensure_built(input_shape)
        self._weights = self.forward_layer.weights + self.backward_layer.weights

    @property
    def variables(self):
        """The forward layer's variables (weights, then its seed state), then the backward layer's."""
        return self.forward_layer.variables + self.backward_layer.variables

    def check_input_shape(self, shape):
        for sub in (self.forward_layer, self.backward_layer):   # both before either runs
            sub.check_input_shape(shape)

    def compute_output_shape(self, input_shape):
        """The output's shape; with ``return_state`` a list [output, *forward states, *backward states], each
        layer's states in the structure of its own output (an RNN of several cells nests them per cell)."""
        shapes = self._flat_output_shape(input_shape)
        return self.symbolic_structure(shapes) if self.return_state else shapes

    def symbolic_structure(self, outputs):
        """The outputs given flat, each layer's states nested as that layer nests them, as Keras does."""
        outputs = list(outputs)
        if not self.return_state:
            return outputs
        merged = 2 if self.merge_mode is None else 1
        forward_count, _ = self._state_counts()
        forward, backward = outputs[merged:merged + forward_count], outputs[merged + forward_count:]
        return (outputs[:merged] + self.forward_layer.symbolic_structure([None] + forward)[1:]
                + self.backward_layer.symbolic_structure([None] + backward)[1:])

    def _flat_output_shape(self, input_shape):
        # the states flat, as the graph holds them
        forward = self.forward_layer._flat_output_shape(input_shape)
        backward = self.backward_layer._flat_output_shape(input_shape)
        states = []
        if self.return_state:
            (forward, *forward_states), (backward, *backward_states) = forward, backward
            states = forward_states + backward_states
        if self.merge_mode is None:
            return [forward, backward] + states
        if self.merge_mode == "concat":
            merged = tuple(forward[:-1]) + (forward[-1] + backward[-1],)
        else:
            merged = tuple(forward)
        return [merged] + states if self.return_state else merged

    def _turned(self, y):
        return y[:, ::-1] if self.return_sequences else y

    def compute_mask(self, x, mask=None):
        return mask if self.return_sequences else None

    def _state_counts(self):
        return self.forward_layer.state_count, self.backward_layer.state_count

    def _split(self, initial_state):
        forward_count, backward_count = self._state_counts()
        if isinstance(initial_state, (list, tuple)) and any(isinstance(s, (list, tuple)) for s in initial_state) \
                and len(flatten_structure(initial_state)) == forward_count + backward_count:
            # Keras's form for RNNs of several cells: the states nested per cell, half the entries each direction's
            half = len(initial_state) // 2
            return list(initial_state[:half]), list(initial_state[half:])
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != forward_count + backward_count:
            got = (f"{len(initial_state)} array(s)" if isinstance(initial_state, (list, tuple))
                   else f"a single {type(initial_state).__name__}")
            raise ValueError(f"Bidirectional layer '{self.name}': initial_state needs a list of "
                             f"{forward_count + backward_count} arrays: the forward layer's "
                             f"{', '.join(self.forward_layer.state_names)}, then the backward layer's "
                             f"{', '.join(self.backward_layer.state_names)}, got {got}.")
        return list(initial_state[:forward_count]), list(initial_state[forward_count:])

    def check_initial_state_shapes(self, shapes):
        forward, backward = self._split(shapes)
        self.forward_layer.check_initial_state_shapes(forward)
        self.backward_layer.check_initial_state_shapes(backward)

    def call(self, x, training=False, mask=None, initial_state=None):
        forward_state = backward_state = None
        if initial_state is not None:
            # both checked before either layer runs: a stateful forward layer would otherwise carry states
            # from a call that then fails
            forward_state, backward_state = self._split(initial_state)
            forward_state = self.forward_layer.checked_initial_state(forward_state, x)
            backward_state = self.backward_layer.checked_initial_state(backward_state, x)
        y_f = self.forward_layer(x, training=training, mask=mask, initial_state=forward_state)
        y_b = self.backward_layer(x, training=training, mask=mask, initial_state=backward_state)
        states = []
        if self.return_state:
            # each layer's states as it gives them (an RNN of several cells nests them per cell), as Keras's
            (y_f, *forward_states), (y_b, *backward_states) = y_f, y_b
            states = forward_states + backward_states
        y_b = self._turned(y_b)
        self._saved = (y_f, y_b) if training else None
        xp = array_module(x)
        if self.merge_mode == "concat":
            output = xp.concatenate([y_f, y_b], axis=-1)
        elif self.merge_mode == "sum":
            output = y_f + y_b
        elif self.merge_mode == "mul":
            output = y_f * y_b
        elif self.merge_mode == "ave":
            output = (y_f + y_b) / y_f.dtype.type(2)
        else:
            return [y_f, y_b] + states
        return [output] + states if self.return_state else output

    def _merged_gradients(self, dy, y_f, y_b):
        """The gradients of the forward and backward outputs from that of the merged output (None: none)."""
        if dy is None:
            return None, None
        if self.merge_mode == "concat":
            u = y_f.shape[-1]
            return dy[..., :u], dy[..., u:]
        if self.merge_mode == "sum":
            return dy, dy
        if self.merge_mode == "mul":
            return dy * y_b, dy * y_f
        half = dy / dy.dtype.type(2)
        return half, half

    def backward(self, dy):
        y_f, y_b = self.saved()
        outputs = 2 if self.merge_mode is None else 1
        forward_count, backward_count = self._state_counts() if self.return_state else (0, 0)
        # flat, or in the call's structure (an RNN of several cells nests its states per cell)
        grads = flatten_structure(dy) if isinstance(dy, (list, tuple)) else [dy]
        count = outputs + forward_count + backward_count
        if len(grads) > count:
            raise ValueError(f"Bidirectional layer '{self.name}': backward takes {count} gradient(s), one per array "
                             f"the call returned, got {len(grads)}.")
        grads += [None] * (count - len(grads))
        if self.merge_mode is None:
            d_f, d_b = grads[0], grads[1]
        else:
            d_f, d_b = self._merged_gradients(grads[0], y_f, y_b)
        d_states = grads[outputs:]
        xp = array_module(y_f)

        def contiguous(g):
            return None if g is None else xp.ascontiguousarray(g)
        dx_f = self.forward_layer.backward([contiguous(d_f)] + d_states[:forward_count])
        dx_b = self.backward_layer.backward([None if d_b is None else contiguous(self._turned(d_b))]
                                            + d_states[forward_count:])
        self.initial_state_gradients = (list(self.forward_layer.initial_state_gradients)
                                        + list(self.backward_layer.initial_state_gradients))
        return None if dx_f is None else dx_f + dx_b

    def reset_state(self):
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    @property
    def stateful(self):
        return self.forward_layer.stateful or self.backward_layer.stateful

    @property
    def carried_batch_size(self):
        return self.forward_layer.carried_batch_size or self.backward_layer.carried_batch_size

    def reset_states(self):
        self.reset_state()

    @property
    def states(self):
        """A stateful wrapper's carried states, the forward layer's then the backward layer's (None before
        they know their batch size)."""
        forward, backward = self.forward_layer.states, self.backward_layer.states
        return None if forward is None or backward is None else forward + backward

    @property
    def input_gradient_wanted(self):
        return self.forward_layer.input_gradient_wanted

    @input_gradient_wanted.setter
    def input_gradient_wanted(self, value):
        if hasattr(self, "backward_layer"):
            self.forward_layer.input_gradient_wanted = self.backward_layer.input_gradient_wanted = bool(value)

    def get_config(self):
        config = super().get_config()
        layer_config = self.forward_layer.get_config()
        layer_config["name"] = _without_prefix(layer_config["name"], "forward_")
        config.update({"layer": {"class_name": type(self.forward_layer).__name__, "config": layer_config},
                       "backward_layer": {"class_name": type(self.backward_layer).__name__,
                                          "config": self.backward_layer.get_config()},
                       "merge_mode": self.merge_mode})
        return config

    @staticmethod
    def layer_from_entry(entry, where="Bidirectional"):
        """A wrapped layer from ``{"class_name": ..., "config": {...}}``: only gpu_dl's recurrent classes."""
        layer_class = SEQUENCE_LAYER_CLASSES.get(entry.get("class_name")) if isinstance(entry, dict) else None
        if layer_class is None:
            name = entry.get("class_name") if isinstance(entry, dict) else entry
            raise ValueError(f"{where}: the wrapped layer class {name!r:.200} is not one of gpu_dl's recurrent "
                             f"layers ({', '.join(SEQUENCE_LAYER_CLASSES)}).")
        return layer_class.from_config(dict(entry.get("config") or {}))

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layer = cls.layer_from_entry(config.pop("layer"))
        if config.get("backward_layer") is not None:
            config["backward_layer"] = cls.layer_from_entry(config["backward_layer"])
        return cls(layer, **config)
