"""What a recurrent layer offers to ``Bidirectional``: the one contract LSTM, GRU, SimpleRNN, RNN and
ConvLSTM1D/2D/3D implement.

A ``SequenceLayer`` reads inputs (batch, time, ...) and has:

- the flags Keras's Bidirectional reads and sets: ``go_backwards`` (read the sequence from its end; a
  sequence output is then in the order read), ``return_sequences``, ``return_state``, ``stateful``,
  ``zero_output_for_mask`` (masked steps output zeros instead of repeating the step before; Bidirectional
  sets it to ``return_sequences``, as Keras does, and may do so after the layer is built);
- ``call(x, training, mask, initial_state)`` returning the output, or ``[output, *states]`` with
  ``return_state`` (``state_count`` states, in Keras's order, named in ``state_names``), and ``backward`` taking one
  gradient per returned array (None for those without one), leaving those of the initial states in
  ``initial_state_gradients`` (the same order);
- ``checked_initial_state(initial_state, x)``: the states for input ``x`` checked (a ValueError naming the
  layer) and returned as a flat list the layer's call takes back, so that a wrapper can check both
  directions' states before either runs; ``check_initial_state_shapes`` does the same for symbolic shapes;
- ``reset_state()``, ``states`` (a stateful layer's carried states, or None) and ``carried_batch_size``;
- ``get_config()``/``from_config()`` with ``name`` and ``go_backwards`` keys, from which the wrapper makes
  its forward and backward copies.
"""
from __future__ import annotations

from .. import backend
from .base import Layer, Variable

STATE_NAME = "rnn_state"


def state_variables(held, arrays, path, to_variable=None):
    """The Variables holding a stateful layer's carried states, as Keras keeps them: non-trainable, named
    ``rnn_state`` (``path`` ``<layer>/rnn_state``), and not among the layer's weights or variables. ``held`` are
    the ones so far (or None); ``arrays`` the new values (None: no states), each given to ``to_variable`` first
    where the layer carries them in another layout than it shows. The same Variables take the new values, so
    that what a user holds (``layer.states[0]``) follows the layer, and an ``assign`` to them reaches its next
    call."""
    if arrays is None:
        return None
    values = [a if to_variable is None else to_variable(a) for a in arrays]
    if held is not None and len(held) == len(values):
        for variable, value in zip(held, values):
            variable.value = backend.array_module(value).ascontiguousarray(value)
        return held
    # on the current device, as the layer's weights are
    return [Variable(backend.array_module(a).ascontiguousarray(a), name=STATE_NAME, trainable=False, path=path)
            for a in values]


class SequenceLayer(Layer):
    call_first_argument = "sequences"       # Keras's call(sequences, initial_state=None, mask=None, training=False)
    takes_mask = True
    takes_initial_state = True

    def _set_sequence_flags(self, return_sequences, return_state, go_backwards, stateful, unroll,
                            zero_output_for_mask):
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)   # accepted for Keras compatibility: the loop is the same either way
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.initial_state_gradients = None

    def sequence_flags_config(self):
        """The flags in Keras's config order."""
        return {"return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}

    @property
    def state_count(self):
        """How many states the layer returns with ``return_state`` (and takes as ``initial_state``)."""
        raise NotImplementedError

    @property
    def state_names(self):
        """The states' names for messages: ("h",) or ("h", "c"); an RNN of several cells lists every cell's."""
        raise NotImplementedError

    def checked_initial_state(self, initial_state, x):
        raise NotImplementedError

    def compute_mask(self, x, mask=None):
        return mask if self.return_sequences else None

    # ----------------------------------------------------------------- stateful
    # A stateful layer keeps its carried states in Variables (``states``, see ``state_variables``); its own code
    # reads and writes them as arrays in the layout it computes in through ``_carried_states`` (None: none).
    def _state_to_variable(self, array):
        """A carried state as the layer shows it (its data format); itself unless a layer says otherwise."""
        return array

    def _state_from_variable(self, array):
        """Inverse of ``_state_to_variable``."""
        return array

    @property
    def _carried_states(self):
        variables = self.__dict__.get("_state_variables")
        return None if variables is None else [self._state_from_variable(v.value) for v in variables]

    @_carried_states.setter
    def _carried_states(self, arrays):
        # the layer an RNN runs for a stack of cells is named '<rnn>/<cell>': its states are the RNN's
        self.__dict__["_state_variables"] = state_variables(
            self.__dict__.get("_state_variables"), arrays, f"{self.name.split('/')[0]}/{STATE_NAME}",
            self._state_to_variable)

    @property
    def states(self):
        """A stateful layer's carried states, as Keras's: non-trainable Variables (``numpy()``, ``assign``; not
        among the layer's weights), zeros from its build with a known batch size or after ``reset_state()``, then
        what its last call ended with; the next call starts from their values. None where the layer is not
        stateful, or before it knows its batch size."""
        variables = self.__dict__.get("_state_variables")
        return None if variables is None else list(variables)

    def reset_states(self):
        self.reset_state()
