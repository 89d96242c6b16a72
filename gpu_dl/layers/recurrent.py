"""Recurrent layers: LSTM, GRU, SimpleRNN with Keras 3's arguments and weight layouts, and Bidirectional.

Inputs are (batch, timesteps, features). A layer returns the last hidden
state (batch, units), or every step's (batch, timesteps, units) with
``return_sequences``; with ``return_state`` a list [output, h] (LSTM:
[output, h, c]). ``go_backwards`` reads the sequence from its end, and its
sequence output is in the order read, as in Keras. ``backward`` takes the
gradient of the output, or a list with one per returned array (None for
those without one).

Dropout: one input mask (batch, features) and one recurrent mask
(batch, units) per call, the same at every step; the recurrent mask
multiplies h_{t-1} where it enters the recurrent product only.

``layer(x, initial_state=[h0])`` (LSTM: ``[h0, c0]``, each (batch, units))
starts from the given states instead of zeros, as in Keras; after
``backward`` the gradients of the initial states are in
``layer.initial_state_gradients``. ``Bidirectional`` takes and returns the
forward layer's states, then the backward layer's.

Masks (Keras's masking of padded sequences, from ``Masking`` or
``Embedding(mask_zero=True)``): a step whose mask is False leaves the states
as they were, so its output repeats the one before (zeros before the first);
the layer passes the mask on when it returns sequences.

``stateful=True``: each call starts from the states the previous call ended
with (zeros at first and after ``reset_state()``), so consecutive batches
continue one long sequence, sample i of a batch after sample i of the one
before. Every batch must then have the same size; the gradient stops at the
start of each batch (truncated backpropagation through time). Keras fixes
that size when it builds the layer; here the first batch after a reset does.
"""
from __future__ import annotations

import numbers

import numpy

from .. import activations
from ..backend import array_module
from ..backend.noise import UniformNoise
from ..ops import rnn
from .base import Layer
from .core import positive_int


def _rate(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{what} must be a number in [0, 1), got {value!r}.")
    return float(value)


class _Recurrent(Layer):
    """What LSTM, GRU and SimpleRNN share: arguments, weights, masks, output shapes."""

    GATES = 1
    STATES = 1   # states returned with return_state
    takes_mask = True
    takes_initial_state = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where = f"{type(self).__name__} layer '{self.name}'"
        self.units = positive_int(units, f"{where}: units")
        self.activation = activations.get_keeping_shape(activation, where)
        self.recurrent_activation = activations.get_keeping_shape(recurrent_activation, where)
        self.use_bias = bool(use_bias)
        self.set_weight_arguments(
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint)
        self.dropout = _rate(dropout, f"{where}: dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, f"{where}: recurrent_dropout")
        self.seed = seed
        self._noise = UniformNoise(seed)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self._carried_states = None   # stateful: the states the last call ended with
        self.initial_state_gradients = None   # after backward: those of the initial states, [h] or [h, c]
        self.unroll = bool(unroll)   # accepted for Keras compatibility: the loop is the same either way
        # Keras's choice for masked steps: zeros as their output instead of the output before (the states
        # are held either way); Bidirectional sets it for the sequences it merges, as Keras does.
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.kernel = self.recurrent_kernel = self.bias = None

    # ----------------------------------------------------------------- shapes
    def _checked(self, input_shape):
        input_shape = tuple(input_shape)
        where = f"{type(self).__name__} layer '{self.name}'"
        if len(input_shape) != 3:
            raise ValueError(f"{where} expects inputs of rank 3 (batch, timesteps, features), got shape {input_shape} "
                             f"(rank {len(input_shape)}). A 2-D array of samples needs a time axis: "
                             "reshape to (batch, timesteps, features).")
        if input_shape[1] == 0:
            raise ValueError(f"{where}: the sequence length (timesteps) is 0, got input shape {input_shape}.")
        if input_shape[2] is None:
            raise ValueError(f"{where} needs a known number of features (last axis), got input shape {input_shape}.")
        return input_shape

    def bias_shape(self):
        return (self.GATES * self.units,)

    def initial_bias(self):
        return self.bias_initializer(self.bias_shape(), dtype=self.dtype)

    def build(self, input_shape):
        features = self._checked(input_shape)[2]
        width = self.GATES * self.units
        self.kernel = self.add_weight((features, width), self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight((self.units, width), self.recurrent_initializer,
                                                name="recurrent_kernel", regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        if self.use_bias:
            self.bias = self.add_weight(self.bias_shape(), self.initial_bias(), name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def check_input_shape(self, shape):
        # rank and features only: the weights do not depend on the sequence length, so a layer built for
        # one length takes any other, as in Keras
        shape = self._checked(shape)
        if self.kernel is not None and shape[2] != self.kernel.shape[0]:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' was built for {self.kernel.shape[0]} features "
                             f"per step; got an input of shape {shape} with {shape[2]}.")

    def check_initial_state_shapes(self, shapes):
        if len(shapes) != self.STATES or any(len(s) != 2 or s[1] not in (None, self.units) for s in shapes):
            raise ValueError(f"{type(self).__name__} layer '{self.name}': initial_state needs {self.STATES} "
                             f"tensor(s) of shape (batch, {self.units}), got shapes {[tuple(s) for s in shapes]}.")

    def compute_output_shape(self, input_shape):
        n, t, _ = self._checked(input_shape)
        out = (n, t, self.units) if self.return_sequences else (n, self.units)
        if self.return_state:
            return [out] + [(n, self.units)] * self.STATES
        return out

    # ------------------------------------------------------------------ passes
    def _mask(self, xp, shape, rate, dtype):
        keep = 1.0 - rate
        uniform = self._noise.random(xp, shape, dtype)
        return (uniform < keep).astype(dtype) / dtype.type(keep)

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def call(self, x, training=False, mask=None, initial_state=None):
        xp = array_module(x)
        n = x.shape[0]
        starts_from_zeros = initial_state is None and self.carried_batch_size is None
        initial = self._initial_states(xp, n, x.dtype) if initial_state is None else \
            self._given_states(xp, initial_state, n, x.dtype)
        steps = x[:, ::-1] if self.go_backwards else x
        x_tm = xp.ascontiguousarray(steps.transpose(1, 0, 2))
        step_mask = None
        if mask is not None:
            step_mask = xp.ascontiguousarray((mask[:, ::-1] if self.go_backwards else mask).T)
        input_mask = recurrent_mask = None
        if training and self.dropout:
            input_mask = self._mask(xp, (n, x.shape[2]), self.dropout, x.dtype)
            x_tm = x_tm * input_mask
        if training and self.recurrent_dropout:
            recurrent_mask = self._mask(xp, (n, self.units), self.recurrent_dropout, x.dtype)
        states, saved = self.run(x_tm, initial, recurrent_mask, step_mask, training)
        if self.stateful:
            self._carried_states = [xp.array(s[-1]) for s in states]
        zeroed = step_mask if self.zero_output_for_mask else None
        if zeroed is None and step_mask is not None and not starts_from_zeros:
            # A masked step outputs the output of the step before, and before the first step that
            # output is zeros (Keras's TensorFlow and torch backends), not the initial or carried h.
            zeroed = xp.cumsum(step_mask, axis=0) > 0
        self._saved = (saved, input_mask, zeroed) if training else None
        h = states[0]
        if self.return_sequences:
            output = xp.ascontiguousarray((h[1:] if zeroed is None else h[1:] * zeroed[..., None]).transpose(1, 0, 2))
        else:
            output = h[-1] if zeroed is None else h[-1] * zeroed[-1][:, None]
        if self.return_state:
            return [output] + [s[-1] for s in states]
        return output

    def _initial_states(self, xp, n, dtype):
        """Zeros, or for a stateful layer the states its last call ended with (checked against batch ``n``)."""
        carried = self._carried_states if self.stateful else None
        if carried is None:
            return [xp.zeros((n, self.units), dtype=dtype) for _ in range(self.STATES)]
        if carried[0].shape[0] != n:
            raise ValueError(f"{type(self).__name__} layer '{self.name}' is stateful and carries states for batches "
                             f"of {carried[0].shape[0]} samples; got a batch of {n}. Give every batch the same "
                             "size (batch_size that divides the data, or drop the last partial batch), or call "
                             "reset_state() to start again from zeros.")
        return [xp.asarray(s, dtype=dtype) for s in carried]

    def _given_states(self, xp, initial_state, n, dtype):
        """``initial_state`` (Keras's call argument: [h], LSTM [h, c], each (batch, units)) checked, on x's device."""
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self.STATES:
            raise ValueError(f"{type(self).__name__} layer '{self.name}': initial_state needs {self.STATES} "
                             f"array(s) of shape ({n}, {self.units}), got {len(states)}.")
        checked = []
        for i, s in enumerate(states):
            s = xp.asarray(s, dtype=dtype)
            if s.shape != (n, self.units):
                raise ValueError(f"{type(self).__name__} layer '{self.name}': initial_state[{i}] must have shape "
                                 f"({n}, {self.units}), got {tuple(s.shape)}.")
            checked.append(xp.ascontiguousarray(s))
        return checked

    def reset_state(self):
        """Forget the carried states: the next call of a stateful layer starts from zeros."""
        self._carried_states = None

    @property
    def carried_batch_size(self):
        """The batch size a stateful layer carries states for; None when it carries none."""
        return None if self._carried_states is None else int(self._carried_states[0].shape[0])

    def reset_states(self):
        self.reset_state()

    @property
    def states(self):
        """A stateful layer's carried states (copies; None before its first call or after a reset)."""
        return None if self._carried_states is None else [s.copy() for s in self._carried_states]

    def backward(self, dy):
        saved, input_mask, zeroed = self.saved()
        grads = list(dy) if isinstance(dy, (list, tuple)) else [dy]
        grads += [None] * (1 + self.STATES - len(grads))
        d_output, d_states = grads[0], grads[1:]
        xp = array_module(saved[0])
        dh_seq = dh_last = None
        if d_output is not None:
            if self.return_sequences:
                dh_seq = xp.ascontiguousarray(d_output.transpose(1, 0, 2))
                if zeroed is not None:
                    dh_seq = dh_seq * zeroed[..., None]
            else:
                dh_last = d_output if zeroed is None else d_output * zeroed[-1][:, None]
        if d_states[0] is not None:
            dh_last = d_states[0] if dh_last is None else dh_last + d_states[0]
        want_input = self.input_gradient_wanted
        dx_tm, dkernel, drecurrent, dbias, self.initial_state_gradients = self.run_backward(
            saved, dh_seq, dh_last, d_states[1:], want_input)
        if self.trainable:
            self.kernel.grad, self.recurrent_kernel.grad = dkernel, drecurrent
            if self.use_bias:
                self.bias.grad = dbias
        if dx_tm is None:
            return None
        if input_mask is not None:
            dx_tm = dx_tm * input_mask
        dx = dx_tm.transpose(1, 0, 2)
        return xp.ascontiguousarray(dx[:, ::-1] if self.go_backwards else dx)

    def _bias_value(self):
        return self.bias.value if self.use_bias else None

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **self.weight_arguments_config(),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        })
        return config


class LSTM(_Recurrent):
    """Long short-term memory: kernel (features, 4u), recurrent_kernel (u, 4u), bias (4u,), gates i, f, c, o.

    With ``unit_forget_bias`` (default) the forget gate's bias starts at 1.
    """

    GATES = 4
    STATES = 2

    def __init__(self, units, unit_forget_bias=True, use_cudnn="auto", **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.use_cudnn = use_cudnn   # accepted for Keras compatibility: the GPU path is gpu_dl's own kernels

    def initial_bias(self):
        if not self.unit_forget_bias:
            return super().initial_bias()
        u = self.units
        return numpy.concatenate([self.bias_initializer((u,), dtype=self.dtype), numpy.ones(u, dtype=self.dtype),
                                  self.bias_initializer((2 * u,), dtype=self.dtype)])

    def run(self, x_tm, initial, recurrent_mask, step_mask, training):
        h0, c0 = initial
        h, c, saved = rnn.lstm_forward(x_tm, self.kernel.value, self.recurrent_kernel.value, self._bias_value(),
                                       h0, c0, self.activation, self.recurrent_activation,
                                       recurrent_mask=recurrent_mask, step_mask=step_mask, training=training)
        return (h, c), saved

    def run_backward(self, saved, dh_seq, dh_last, d_other_states, want_input):
        dx, dk, dr, db, dh0, dc0 = rnn.lstm_backward(saved, dh_seq, dh_last, d_other_states[0], want_input=want_input)
        return dx, dk, dr, db, [dh0, dc0]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias, "use_cudnn": self.use_cudnn}


class GRU(_Recurrent):
    """Gated recurrent unit: kernel (features, 3u), recurrent_kernel (u, 3u), gates z, r, h.

    ``reset_after=True`` (Keras's default): the reset gate scales the recurrent product, bias (2, 3u)
    (input and recurrent biases), fused cell kernels on the GPU. ``reset_after=False``: it scales
    h_{t-1} before the product, bias (3u,), array arithmetic on both backends.
    """

    GATES = 3

    def __init__(self, units, reset_after=True, use_cudnn="auto", **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)
        self.use_cudnn = use_cudnn

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def run(self, x_tm, initial, recurrent_mask, step_mask, training):
        forward = rnn.gru_forward if self.reset_after else rnn.gru_reset_before_forward
        h, saved = forward(x_tm, self.kernel.value, self.recurrent_kernel.value, self._bias_value(), initial[0],
                           self.activation, self.recurrent_activation, recurrent_mask=recurrent_mask,
                           step_mask=step_mask, training=training)
        return (h,), saved

    def run_backward(self, saved, dh_seq, dh_last, d_other_states, want_input):
        backward = rnn.gru_backward if self.reset_after else rnn.gru_reset_before_backward
        dx, dk, dr, db, dh0 = backward(saved, dh_seq, dh_last, want_input=want_input)
        return dx, dk, dr, db, [dh0]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": activations.serialize(self.recurrent_activation),
                "reset_after": self.reset_after, "use_cudnn": self.use_cudnn}


class SimpleRNN(_Recurrent):
    """``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

    def __init__(self, units, activation="tanh", **kwargs):
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNN got an unexpected keyword argument 'recurrent_activation' (it has no gates).")
        super().__init__(units, activation=activation, **kwargs)

    def run(self, x_tm, initial, recurrent_mask, step_mask, training):
        h, saved = rnn.simple_rnn_forward(x_tm, self.kernel.value, self.recurrent_kernel.value, self._bias_value(),
                                          initial[0], self.activation, recurrent_mask=recurrent_mask,
                                          step_mask=step_mask, training=training)
        return (h,), saved

    def run_backward(self, saved, dh_seq, dh_last, d_other_states, want_input):
        dx, dk, dr, db, dh0 = rnn.simple_rnn_backward(saved, dh_seq, dh_last, want_input=want_input)
        return dx, dk, dr, db, [dh0]


class Bidirectional(Layer):
    """Runs ``layer`` forwards and a copy of it backwards over the sequence and merges the two outputs.

    ``merge_mode``: "concat" (default), "sum", "mul", "ave", or None (a list of both). The backward
    copy's sequence output is turned back to the input's time order before merging. Weights: the
    forward layer's, then the backward layer's.

    As in Keras, a wrapped layer with ``return_state=True`` makes the call return
    ``[output, *forward_states, *backward_states]`` (LSTM: h, c per direction; GRU and SimpleRNN: h;
    merge_mode None: ``[forward_output, backward_output, *states]``), and ``initial_state`` takes the
    forward layer's states, then the backward layer's. ``backward`` takes one gradient per returned
    array (None for those without one); after it, ``initial_state_gradients`` holds those of the
    initial states in the same order.
    """

    MERGE_MODES = ("concat", "sum", "mul", "ave", None)
    takes_mask = True
    takes_initial_state = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional wraps an LSTM, GRU or SimpleRNN layer, got {layer!r}.")
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {self.MERGE_MODES}, got {merge_mode!r}.")
        super().__init__(**kwargs)
        config = layer.get_config()
        self.forward_layer = type(layer).from_config({**config, "name": f"forward_{layer.name}"})
        if backward_layer is None:
            backward_layer = type(layer).from_config({**config, "name": f"backward_{layer.name}",
                                                      "go_backwards": not layer.go_backwards})
        elif not isinstance(backward_layer, _Recurrent):
            raise ValueError("Bidirectional: backward_layer must be an LSTM, GRU or SimpleRNN layer, "
                             f"got {backward_layer!r}.")
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

    def check_input_shape(self, shape):
        for sub in (self.forward_layer, self.backward_layer):   # both before either runs
            sub.check_input_shape(shape)

    def compute_output_shape(self, input_shape):
        forward = self.forward_layer.compute_output_shape(input_shape)
        backward = self.backward_layer.compute_output_shape(input_shape)
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

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def _split_initial_state(self, initial_state, x):
        """``initial_state`` as (the forward layer's states, the backward layer's), all checked before either
        layer runs (a stateful forward layer would otherwise carry states from a call that then fails)."""
        forward_count, backward_count = self.forward_layer.STATES, self.backward_layer.STATES
        names = {1: "h", 2: "h, c"}
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != forward_count + backward_count:
            got = (f"{len(initial_state)} array(s)" if isinstance(initial_state, (list, tuple))
                   else f"a single {type(initial_state).__name__}")
            raise ValueError(f"Bidirectional layer '{self.name}': initial_state needs a list of "
                             f"{forward_count + backward_count} arrays: the forward layer's "
                             f"{names[forward_count]}, then the backward layer's {names[backward_count]}, "
                             f"got {got}.")
        xp, n = array_module(x), x.shape[0]
        return (self.forward_layer._given_states(xp, initial_state[:forward_count], n, x.dtype),
                self.backward_layer._given_states(xp, initial_state[forward_count:], n, x.dtype))

    def call(self, x, training=False, mask=None, initial_state=None):
        forward_state = backward_state = None
        if initial_state is not None:
            forward_state, backward_state = self._split_initial_state(initial_state, x)
        y_f = self.forward_layer(x, training=training, mask=mask, initial_state=forward_state)
        y_b = self.backward_layer(x, training=training, mask=mask, initial_state=backward_state)
        states = []
        if self.return_state:
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
        grads = list(dy) if isinstance(dy, (list, tuple)) else [dy]
        count = outputs + (self.forward_layer.STATES + self.backward_layer.STATES if self.return_state else 0)
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
        forward_count = self.forward_layer.STATES if self.return_state else 0
        dx_f = self.forward_layer.backward([contiguous(d_f)] + d_states[:forward_count])
        dx_b = self.backward_layer.backward([None if d_b is None else contiguous(self._turned(d_b))]
                                            + d_states[forward_count:])
        self.initial_state_gradients = (self.forward_layer.initial_state_gradients
                                        + self.backward_layer.initial_state_gradients)
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
        its first call or after a reset)."""
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
        layer_config["name"] = layer_config["name"][len("forward_"):]
        config.update({"layer": {"class_name": type(self.forward_layer).__name__, "config": layer_config},
                       "backward_layer": {"class_name": type(self.backward_layer).__name__,
                                          "config": self.backward_layer.get_config()},
                       "merge_mode": self.merge_mode})
        return config

    @staticmethod
    def _layer_from_entry(entry):
        layer_class = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}.get(entry.get("class_name"))
        if layer_class is None:
            raise ValueError(f"Bidirectional: unknown wrapped layer class {entry.get('class_name')!r}.")
        return layer_class.from_config(entry["config"])

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layer = cls._layer_from_entry(config.pop("layer"))
        if config.get("backward_layer") is not None:
            config["backward_layer"] = cls._layer_from_entry(config["backward_layer"])
        return cls(layer, **config)
