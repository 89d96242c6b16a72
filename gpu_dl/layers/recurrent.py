"""Recurrent layers: LSTM, GRU, SimpleRNN with Keras 3's arguments and weight layouts.

Inputs are (batch, timesteps, features). A layer returns the last hidden
state (batch, units), or every step's (batch, timesteps, units) with
``return_sequences``; with ``return_state`` a list [output, h] (LSTM:
[output, h, c]). ``go_backwards`` reads the sequence from its end, and its
sequence output is in the order read, as in Keras. ``backward`` takes the
gradient of the output, or a list with one per returned array (None for
those without one).

Dropout: one input mask (batch, features) and the recurrent masks
(batch, units) per call, the same at every step; a recurrent mask
multiplies h_{t-1} where it enters the recurrent product only. As Keras's
cells, every layer holds a ``SeedGenerator`` of its ``seed`` as
``seed_generator`` (among its ``variables``, not its weights) and moves it
as Keras's RNN moves its cell's: each call, in training or not, takes one
seed pair per rate above 0, or one per gate (LSTM 4, GRU 3) where
``recurrent_dropout`` is above 0 (or ``implementation=1``), input masks
first. A training call draws a mask from each pair (on NumPy Keras's
NumPy-backend values): with one pair per gate, as Keras's gated cells, each
gate's input projection takes x under its own input mask and its recurrent
product h_{t-1} under its own recurrent mask (the sequence operations apply
them, ``ops/rnn.py``); with one pair, its mask serves every gate.

``layer(x, initial_state=[h0])`` (LSTM: ``[h0, c0]``, each (batch, units))
starts from the given states instead of zeros, as in Keras; after
``backward`` the gradients of the initial states are in
``layer.initial_state_gradients``. ``Bidirectional`` (``bidirectional.py``)
wraps any of them, through the contract in ``sequence_layer.py``.

Masks (Keras's masking of padded sequences, from ``Masking`` or
``Embedding(mask_zero=True)``): a step whose mask is False leaves the states
as they were, so its output repeats the one before (zeros before the first);
the layer passes the mask on when it returns sequences.

``stateful=True``: each call starts from the states the previous call ended
with (zeros at first and after ``reset_state()``), so consecutive batches
continue one long sequence, sample i of a batch after sample i of the one
before. Every batch must then have the same size; the gradient stops at the
start of each batch (truncated backpropagation through time). As in Keras,
the layer's build fixes that size (it refuses a stateful layer without one),
and ``layer.states`` are non-trainable Variables named ``rnn_state``, not
among its weights: ``states[0].numpy()`` reads one, ``assign`` sets where the
next call starts, ``reset_state()`` zeroes them (``sequence_layer.py``).
"""
from __future__ import annotations

import numbers

import numpy

from .. import activations, regularizers
from ..backend import array_module
from ..ops import rnn
from .base import scoped_path
from .core import positive_int
from .regularization import keep_mask_of_pair, layer_seed_generator
from .seed_generator import SeedGenerator
from .sequence_layer import SequenceLayer


def _rate(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{what} must be a number in [0, 1), got {value!r}.")
    return float(value)


def set_gated_cell_arguments(layer, where, activation, recurrent_activation, use_bias, dropout, recurrent_dropout,
                             seed, **weight_arguments):
    """The arguments every gated recurrent layer takes (LSTM, GRU, SimpleRNN, ConvLSTM), checked and set on
    ``layer``: activations, use_bias, the kernel/recurrent_kernel/bias initializers, regularizers and
    constraints, the dropout rates, and the ``seed_generator`` the masks are drawn from: a new one of ``seed``
    (an int or None), or ``seed`` itself when it is a SeedGenerator (the layer ``RNN`` runs for a cell shares
    the cell's)."""
    layer.activation = activations.get_keeping_shape(activation, where)
    layer.recurrent_activation = activations.get_keeping_shape(recurrent_activation, where)
    layer.use_bias = bool(use_bias)
    layer.set_weight_arguments(**weight_arguments)
    layer.dropout = _rate(dropout, f"{where}: dropout")
    layer.recurrent_dropout = _rate(recurrent_dropout, f"{where}: recurrent_dropout")
    if isinstance(seed, SeedGenerator):
        layer.seed, layer.seed_generator = seed.get_config()["seed"], seed
    else:
        layer.seed = seed
        layer.seed_generator = layer_seed_generator(layer, seed)


def dropout_pairs(layer, count, training):
    """The seed pairs of one call of a gated recurrent layer: for ``dropout`` then ``recurrent_dropout``, None
    for a rate of 0, else ``count`` pairs taken from ``layer.seed_generator`` (Keras's cell draws that many
    masks, one per gate or one for all, before every call of its RNN, in training or not), or None outside
    training, where the pairs are taken but not drawn from."""
    found = []
    for rate in (layer.dropout, layer.recurrent_dropout):
        pairs = [layer.seed_generator.next() for _ in range(count)] if rate else None
        found.append(pairs if training else None)
    return found


def _in_cell_scope(layer):
    """The paths of ``layer``'s weights as Keras gives them: made by its cell sublayer (``lstm/lstm_cell/kernel``),
    the class's ``CELL_NAME``."""
    for weight in (layer.kernel, layer.recurrent_kernel) + ((layer.bias,) if layer.use_bias else ()):
        weight.path = scoped_path(layer, f"{layer.CELL_NAME}/{weight.name}")


def _by_name(arguments):
    """A subclass constructor's ``locals()`` (taken first thing) as the keyword arguments of ``_Recurrent``'s: its
    named parameters and what its ``**kwargs`` holds. The subclasses name every parameter in Keras's order, so
    that arguments given by position mean what they mean in Keras."""
    named = {k: v for k, v in arguments.items() if k not in ("self", "__class__", "kwargs")}
    return {**named, **arguments["kwargs"]}


class _Recurrent(SequenceLayer):
    """What LSTM, GRU and SimpleRNN share: arguments, weights, masks, output shapes."""

    GATES = 1
    STATES = 1   # states returned with return_state
    implementation = 2   # Keras's: 1 computes each gate apart (and drops each with a mask of its own)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where = self._where()
        self.units = positive_int(units, f"{where}: units")
        set_gated_cell_arguments(
            self, where, activation, recurrent_activation, use_bias, dropout, recurrent_dropout, seed,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint)
        # initial_state_gradients after backward: those of the initial states, [h] or [h, c]
        self._set_sequence_flags(return_sequences, return_state, go_backwards, stateful, unroll,
                                 zero_output_for_mask)
        self._carried_states = None   # stateful: the states the last call ended with
        self.kernel = self.recurrent_kernel = self.bias = None

    def _set_implementation(self, implementation):
        """Keras's ``implementation`` argument of LSTM and GRU (not in their configs): 1 or 2, and 1 wherever
        ``recurrent_dropout`` is above 0, as Keras sets it. It changes how many dropout masks a call takes."""
        if isinstance(implementation, bool) or implementation not in (1, 2):
            raise ValueError(f"{self._where()}: `implementation` must be 1 or 2, got {implementation!r}.")
        self.implementation = 1 if self.recurrent_dropout else int(implementation)

    def _where(self):
        """How errors name the layer; RNN(cell) sets ``described_as`` on the layer it runs so that they name
        the RNN layer the user made."""
        return getattr(self, "described_as", None) or f"{type(self).__name__} layer '{self.name}'"

    @property
    def state_count(self):
        return self.STATES

    @property
    def state_names(self):
        return ("h", "c")[:self.STATES]

    def checked_initial_state(self, initial_state, x):
        return self._given_states(array_module(x), initial_state, x.shape[0], x.dtype)

    # ----------------------------------------------------------------- shapes
    def _checked(self, input_shape):
        input_shape = tuple(input_shape)
        where = self._where()
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
        _in_cell_scope(self)
        if self.stateful and self._carried_states is None and input_shape[0] is None:
            # as Keras's RNN.build refuses it: the states' batch size must be known when they are made
            raise ValueError(f"{self._where()}: When using `stateful=True` in a RNN, the batch size must be static. "
                             f"Found dynamic batch size: sequence.shape={tuple(input_shape)}")
        self.start_states(input_shape[0])

    def start_states(self, batch_size):
        """Keras's build of a stateful layer: zero states for batches of ``batch_size`` (its build refuses a
        stateful layer without one, as Keras's does), which every later call must match. States already there
        are zeroed."""
        if not self.stateful:
            return
        if self._carried_states is not None:
            self.reset_state()
        elif batch_size is not None:
            self._carried_states = [numpy.zeros((int(batch_size), self.units), dtype=self.dtype)
                                    for _ in range(self.STATES)]

    def check_input_shape(self, shape):
        # rank and features only: the weights do not depend on the sequence length, so a layer built for
        # one length takes any other, as in Keras
        shape = self._checked(shape)
        if self.kernel is not None and shape[2] != self.kernel.shape[0]:
            raise ValueError(f"{self._where()} was built for {self.kernel.shape[0]} features "
                             f"per step; got an input of shape {shape} with {shape[2]}.")

    def check_initial_state_shapes(self, shapes):
        if len(shapes) != self.STATES or any(len(s) != 2 or s[1] not in (None, self.units) for s in shapes):
            raise ValueError(f"{self._where()}: initial_state needs {self.STATES} "
                             f"tensor(s) of shape (batch, {self.units}), got shapes {[tuple(s) for s in shapes]}.")

    def compute_output_shape(self, input_shape):
        n, t, _ = self._checked(input_shape)
        out = (n, t, self.units) if self.return_sequences else (n, self.units)
        if self.return_state:
            return [out] + [(n, self.units)] * self.STATES
        return out

    # ------------------------------------------------------------------ passes
    @property
    def dropout_mask_count(self):
        """How many masks Keras's cell draws per rate and call: one per gate with ``implementation=1`` (which
        a ``recurrent_dropout`` above 0 implies), else one."""
        return self.GATES if self.implementation == 1 or self.recurrent_dropout else 1

    def _dropout_masks(self, x, training):
        """The input mask (batch, features) and recurrent mask (batch, units) of one call, None where not drawn;
        the seed generator moves as Keras's (``dropout_pairs``). Where Keras's gated cell draws one per gate
        (implementation 1) each is (gates, batch, ...), one mask per gate."""
        n = x.shape[0]
        xp = array_module(x)
        found = []
        for pairs, rate, shape in zip(dropout_pairs(self, self.dropout_mask_count, training),
                                      (self.dropout, self.recurrent_dropout), ((n, x.shape[2]), (n, self.units))):
            masks = None if pairs is None else [keep_mask_of_pair(pair, x, shape, rate) for pair in pairs]
            found.append(None if masks is None else xp.stack(masks) if len(masks) > 1 else masks[0])
        return tuple(found)

    def call(self, x, training=False, mask=None, initial_state=None):
        xp = array_module(x)
        n = x.shape[0]
        self._check_carried_batch(n)
        starts_from_zeros = initial_state is None and self.carried_batch_size is None
        if starts_from_zeros:
            initial = [None] * self.STATES      # the sequence operations start from zeros without an array of them
        else:
            initial = self._initial_states(xp, n, x.dtype) if initial_state is None else \
                self._given_states(xp, initial_state, n, x.dtype)
        steps = x[:, ::-1] if self.go_backwards else x
        x_tm = xp.ascontiguousarray(steps.transpose(1, 0, 2))
        step_mask = None
        if mask is not None:
            step_mask = xp.ascontiguousarray((mask[:, ::-1] if self.go_backwards else mask).T)
        input_mask, recurrent_mask = self._dropout_masks(x, training)
        gate_inputs = None          # one input mask per gate: the sequence operation applies them
        if input_mask is not None and input_mask.ndim == 3:
            gate_inputs, input_mask = input_mask, None
        if input_mask is not None:
            x_tm = x_tm * input_mask
        states, saved = self.run(x_tm, initial, recurrent_mask, step_mask, training, **(
            {} if gate_inputs is None else {"input_mask": gate_inputs}))
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
        return [xp.asarray(s, dtype=dtype) for s in carried]

    def _check_carried_batch(self, n):
        """A stateful layer takes batches of the size its states have (Keras checks this with an initial_state
        given too); reset_state() zeroes the states and keeps that size."""
        carried = self.carried_batch_size if self.stateful else None
        if carried is not None and carried != n:
            raise ValueError(f"{self._where()} is stateful and carries states for batches of {carried} samples; "
                             f"got a batch of {n}. Give every batch the same size (batch_size that divides the "
                             "data, or drop the last partial batch); the states keep their batch size after "
                             "reset_state(), so another batch size needs a new layer.")

    def _given_states(self, xp, initial_state, n, dtype):
        """``initial_state`` (Keras's call argument: [h], LSTM [h, c], each (batch, units)) checked, on x's device."""
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self.STATES:
            raise ValueError(f"{self._where()}: initial_state needs {self.STATES} "
                             f"array(s) of shape ({n}, {self.units}), got {len(states)}.")
        checked = []
        for i, s in enumerate(states):
            s = xp.asarray(s, dtype=dtype)
            if s.shape != (n, self.units):
                raise ValueError(f"{self._where()}: initial_state[{i}] must have shape "
                                 f"({n}, {self.units}), got {tuple(s.shape)}.")
            checked.append(xp.ascontiguousarray(s))
        return checked

    def reset_state(self):
        """Zero the carried states (Keras's): the next call of a stateful layer starts from zeros, with the
        batch size the states have."""
        if self._carried_states is not None:
            self._carried_states = [array_module(s).zeros_like(s) for s in self._carried_states]

    @property
    def carried_batch_size(self):
        """The batch size a stateful layer carries states for; None when it carries none."""
        return None if self._carried_states is None else int(self._carried_states[0].shape[0])

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
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
            **self.sequence_flags_config(),
        })
        return config


class LSTM(_Recurrent):
    """Long short-term memory: kernel (features, 4u), recurrent_kernel (u, 4u), bias (4u,), gates i, f, c, o.

    With ``unit_forget_bias`` (default) the forget gate's bias starts at 1.
    """

    CELL_NAME = "lstm_cell"       # Keras's cell sublayer, whose scope its weights are made in

    GATES = 4
    STATES = 2

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto", **kwargs):
        arguments = _by_name(locals())
        del arguments["unit_forget_bias"], arguments["use_cudnn"]
        implementation = arguments.pop("implementation", 2)
        super().__init__(**arguments)
        self._set_implementation(implementation)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.use_cudnn = use_cudnn   # accepted for Keras compatibility: the GPU path is gpu_dl's own kernels

    def initial_bias(self):
        if not self.unit_forget_bias:
            return super().initial_bias()
        u = self.units
        return numpy.concatenate([self.bias_initializer((u,), dtype=self.dtype), numpy.ones(u, dtype=self.dtype),
                                  self.bias_initializer((2 * u,), dtype=self.dtype)])

    def run(self, x_tm, initial, recurrent_mask, step_mask, training, input_mask=None):
        h0, c0 = initial
        h, c, saved = rnn.lstm_forward(x_tm, self.kernel.value, self.recurrent_kernel.value, self._bias_value(),
                                       h0, c0, self.activation, self.recurrent_activation,
                                       recurrent_mask=recurrent_mask, step_mask=step_mask, training=training,
                                       input_mask=input_mask)
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

    CELL_NAME = "gru_cell"       # Keras's cell sublayer, whose scope its weights are made in

    GATES = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, reset_after=True, use_cudnn="auto", **kwargs):
        arguments = _by_name(locals())
        del arguments["reset_after"], arguments["use_cudnn"]
        implementation = arguments.pop("implementation", 2)
        super().__init__(**arguments)
        self._set_implementation(implementation)
        self.reset_after = bool(reset_after)
        self.use_cudnn = use_cudnn

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def run(self, x_tm, initial, recurrent_mask, step_mask, training, input_mask=None):
        forward = rnn.gru_forward if self.reset_after else rnn.gru_reset_before_forward
        h, saved = forward(x_tm, self.kernel.value, self.recurrent_kernel.value, self._bias_value(), initial[0],
                           self.activation, self.recurrent_activation, recurrent_mask=recurrent_mask,
                           step_mask=step_mask, training=training, input_mask=input_mask)
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

    CELL_NAME = "simple_rnn_cell"       # Keras's cell sublayer, whose scope its weights are made in

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 seed=None, **kwargs):
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNN got an unexpected keyword argument 'recurrent_activation' (it has no gates).")
        super().__init__(**_by_name(locals()))

    def run(self, x_tm, initial, recurrent_mask, step_mask, training):
        h, saved = rnn.simple_rnn_forward(x_tm, self.kernel.value, self.recurrent_kernel.value, self._bias_value(),
                                          initial[0], self.activation, recurrent_mask=recurrent_mask,
                                          step_mask=step_mask, training=training)
        return (h,), saved

    def run_backward(self, saved, dh_seq, dh_last, d_other_states, want_input):
        dx, dk, dr, db, dh0 = rnn.simple_rnn_backward(saved, dh_seq, dh_last, want_input=want_input)
        return dx, dk, dr, db, [dh0]


def __getattr__(name):
    # Bidirectional moved to bidirectional.py (which imports this module); the old import path still works.
    if name == "Bidirectional":
        from .bidirectional import Bidirectional
        return Bidirectional
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
