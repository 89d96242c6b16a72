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
- ``reset_state()``, ``states`` (a stateful layer's carried states, flat, or None) and
  ``carried_batch_size``;
- ``get_config()``/``from_config()`` with ``name`` and ``go_backwards`` keys, from which the wrapper makes
  its forward and backward copies.
"""
from __future__ import annotations

from .base import Layer


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

    def reset_states(self):
        self.reset_state()
