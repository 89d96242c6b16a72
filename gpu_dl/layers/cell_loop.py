"""``RNN(cell)`` over a cell class of the user's own, as Keras's RNN runs any cell.

The cell is a ``Layer`` with ``state_size`` (an int, or a list of ints: one per state), optionally
``output_size`` (else the first state's size), a ``build(step_input_shape)`` making its weights, and
``call(inputs, states)`` (``training`` too where it names it) returning ``(output, new_states)``, written with
``gpu_dl.ops`` functions and operators on its weights. ``RNN`` builds it for (batch, features), then at every
time step calls it on that step's inputs and the states before, as Keras's ``backend.rnn`` does: a masked step
keeps the states and outputs the output of the step before (zeros before the first, or zeros with
``zero_output_for_mask``); ``go_backwards`` reads the sequence from its end. The states start from
``initial_state``, else the cell's ``get_initial_state(batch_size=...)`` where it has one, else zeros;
``stateful`` carries the last states to the next call. ``StackedRNNCells`` of such cells runs each cell's call in
turn at every step; its states are every cell's, flat (``initial_state`` also takes Keras's list per cell).

Training: gpu_dl has no automatic differentiation, so the cell's ``call`` is traced once on symbolic tensors into
a graph (``models/composite.py``: a step layer whose call is the cell's, its outputs flattened to
``[output, *new_states]``). The forward pass runs that graph at each step and keeps only the steps' inputs and
states; the backward pass runs through the steps in reverse, running each step's graph forward again on what it
kept and then backward, which adds each step's gradient to the cell's weights (one gradient pass,
``layers/gradients.py``) and carries the gradient of the states to the step before. A cell whose call draws
random numbers (dropout) would draw them afresh in that second run, so its gradient would not be the one of the
forward pass: such a cell is refused in training with a clear error. That second run adds no loss and updates
no metric; a variable the call assigns is assigned again in it.
"""
from __future__ import annotations

import numbers

from ..backend import array_module
from . import gradients, layer_losses, metric_updates
from .base import Layer, call_arguments
from .rnn_cells import StackedRNNCells, cell_output_size
from .sequence_layer import STATE_NAME, state_variables


def _is_size(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def state_sizes(cell, where):
    """``(sizes, single)``: the cell's state sizes as a list, and whether ``state_size`` is one int. For
    StackedRNNCells: every cell's, in order (and False)."""
    if isinstance(cell, StackedRNNCells):
        return [u for c in cell.cells for u in state_sizes(c, where)[0]], False
    size = getattr(cell, "state_size", None)
    if _is_size(size):
        return [int(size)], True
    if isinstance(size, (list, tuple)) and size and all(_is_size(s) for s in size):
        return [int(s) for s in size], False
    raise ValueError(f"{where}: the cell {type(cell).__name__} must have a state_size that is a positive integer or "
                     f"a non-empty list of positive integers (one per state, each state (batch, size)), got "
                     f"{size!r:.200}.")


class _CellStep(Layer):
    """One step of a user's cell as a composite layer: ``call(inputs, states)`` is the cell's, its output and new
    states returned flat (``[output, *new_states]``), each a tensor of its own, so the traced graph has one output
    per array the step gives."""

    def __init__(self, cell, where, **kwargs):
        super().__init__(name=f"{cell.name}_step", dtype=cell.dtype_policy, **kwargs)
        self.__dict__["cell"] = cell        # not a sublayer: the RNN holds the cell and its weights
        self.__dict__["where"] = where

    def call(self, inputs, states, training=None):
        from .. import ops     # the operations sit above the layers: import late
        cell = self.cell
        kwargs = {"training": training} if call_arguments(type(cell).call)[0] else {}
        if isinstance(cell, StackedRNNCells):
            nested, start = [], 0
            for c in cell.cells:       # one list of states per cell, as Keras's StackedRNNCells takes them
                count = len(state_sizes(c, self.where)[0])
                nested.append(list(states[start:start + count]))
                start += count
            output, new_nested = cell.call(inputs, nested, **kwargs)
            result = output, [t for group in new_nested for t in group]
        else:
            result = cell.call(inputs, tuple(states), **kwargs)
        if not isinstance(result, (list, tuple)) or len(result) != 2:
            raise TypeError(f"{self.where}: the call of its cell {type(cell).__name__} must return (output, "
                            f"new_states), got {type(result).__name__}.")
        output, new_states = result
        new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
        if len(new_states) != len(states):
            raise ValueError(f"{self.where}: the cell returned {len(new_states)} state(s) for the {len(states)} "
                             "it was given (one per entry of its state_size).")
        flat, seen = [], [id(inputs)] + [id(s) for s in states]
        for t in [output] + new_states:
            if id(t) in seen:       # a graph lists each tensor once: a repeated one (output == state) is copied
                t = ops.multiply(t, 1)
            seen.append(id(t))
            flat.append(t)
        return flat


class CellLoop:
    """The time loop of ``RNN`` over a user's cell (see the module docstring); ``rnn`` is the RNN layer."""

    def __init__(self, rnn, cell):
        self.rnn = rnn
        self.where = f"RNN layer '{rnn.name}'"
        self.sizes, self.single = state_sizes(cell, self.where)
        output_size = cell_output_size(cell)
        if not _is_size(output_size):
            raise ValueError(f"{self.where}: the cell {type(cell).__name__}'s output_size must be a positive "
                             f"integer, got {output_size!r:.200}.")
        self.output_size = int(output_size)
        self.step = _CellStep(cell, self.where)
        self.step.input_gradient_wanted = True
        self._variables = None
        self.carried = None         # stateful: the states the last call ended with
        self.saved = None

    @property
    def cell(self):
        return self.rnn.cell

    # ----------------------------------------------------------------- shapes
    def build(self, input_shape):
        n, _, features = input_shape
        cell = self.cell
        if isinstance(cell, StackedRNNCells):
            cell.ensure_built((n, features))
        elif not cell.built:
            # As Keras's RNN: the cell's own build, given the shape of one step's inputs
            cell.build((n, features))
            cell.built = True

    def compute_output_shape(self, input_shape):
        n, t, _ = input_shape
        out = (n, t, self.output_size) if self.rnn.return_sequences else (n, self.output_size)
        if self.rnn.return_state:
            return [out] + [(n, s) for s in self.sizes]
        return out

    def check_initial_state_shapes(self, shapes):
        if len(shapes) != len(self.sizes) or any(len(s) != 2 or s[1] not in (None, u)
                                                 for s, u in zip(shapes, self.sizes)):
            raise ValueError(f"{self.where}: initial_state needs {len(self.sizes)} tensor(s) of shapes "
                             f"{[(None, u) for u in self.sizes]}, got shapes {[tuple(s) for s in shapes]}.")

    # ----------------------------------------------------------------- states
    def _states_of(self, states, xp, n, dtype, what):
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if isinstance(self.cell, StackedRNNCells):     # Keras's form: one entry (a state or a list) per cell
            states = [t for s in states for t in (s if isinstance(s, (list, tuple)) else [s])]
        if len(states) != len(self.sizes):
            raise ValueError(f"{self.where}: {what} needs {len(self.sizes)} array(s) of shapes "
                             f"{[(n, u) for u in self.sizes]}, got {len(states)}.")
        checked = []
        for i, (s, u) in enumerate(zip(states, self.sizes)):
            if hasattr(s, "current"):
                s = s.current()
            s = xp.asarray(s, dtype=dtype)
            if tuple(s.shape) != (n, u):
                raise ValueError(f"{self.where}: {what}[{i}] must have shape ({n}, {u}), got {tuple(s.shape)}.")
            checked.append(xp.ascontiguousarray(s))
        return checked

    def get_initial_state(self, batch_size, xp, dtype):
        """The cell's ``get_initial_state(batch_size=...)`` where it has one, else zeros, as Keras's RNN."""
        own = getattr(self.cell, "get_initial_state", None)
        if own is None:
            return [xp.zeros((batch_size, u), dtype=dtype) for u in self.sizes]
        return self._states_of(own(batch_size=batch_size), xp, batch_size, dtype, "the cell's get_initial_state()")

    def checked_initial_state(self, initial_state, x):
        return self._states_of(initial_state, array_module(x), x.shape[0], x.dtype, "initial_state")

    def _starting_states(self, xp, n, dtype):
        if self.rnn.stateful and self.carried is not None:
            if self.carried[0].shape[0] != n:
                raise ValueError(f"{self.where} is stateful and carries states for batches of "
                                 f"{self.carried[0].shape[0]} samples; got a batch of {n}. Give every batch the "
                                 "same size, or call reset_state() first.")
            return [xp.asarray(s, dtype=dtype) for s in self.carried]
        return self.get_initial_state(n, xp, dtype)

    # ----------------------------------------------------------------- passes
    def _run_step(self, x_t, states, training):
        flat = self.step(x_t, list(states), training=training)
        flat = list(flat) if isinstance(flat, (list, tuple)) else [flat]
        return flat[0], flat[1:]

    def call(self, x, training, mask, initial_state):
        rnn = self.rnn
        xp, n, steps = array_module(x), x.shape[0], x.shape[1]
        states = self._starting_states(xp, n, x.dtype) if initial_state is None else \
            self.checked_initial_state(initial_state, x)
        order = list(range(steps))[::-1] if rnn.go_backwards else list(range(steps))
        step_mask = None
        if mask is not None:
            step_mask = rnn._checked_mask(x, mask)
        inputs, befores, outputs, masks = [], [], [], []
        previous = None
        for t in order:
            x_t = xp.ascontiguousarray(x[:, t])
            output, new_states = self._run_step(x_t, states, training)
            if previous is None:
                previous = xp.zeros_like(output)
            m = None
            if step_mask is not None:
                m = step_mask[:, t][:, None]
                held = xp.zeros_like(output) if rnn.zero_output_for_mask else previous
                output = xp.where(m, output, held)
                new_states = [xp.where(m, s_new, s) for s_new, s in zip(new_states, states)]
            if training:
                inputs.append(x_t)
                befores.append(states)
                masks.append(m)
            outputs.append(output)
            previous, states = output, new_states
        if rnn.stateful:
            self.carried = [xp.array(s) for s in states]
        self.saved = (inputs, befores, masks, n, steps) if training else None
        output = xp.stack(outputs, axis=1) if rnn.return_sequences else outputs[-1]
        return [output] + list(states) if rnn.return_state else output

    def _check_trainable(self):
        graph = self.step.__dict__.get("_active_graph")
        if graph is None:
            raise NotImplementedError(
                f"{self.where} cannot train its cell {type(self.cell).__name__}: "
                f"{self.step.__dict__.get('_trace_error') or 'its call has not run'}. gpu_dl trains a cell of the "
                "user's own by tracing its call(inputs, states) on symbolic tensors: write it with gpu_dl.ops "
                "functions and the operators + - * / @ on its inputs, states and weights (made with add_weight).")
        weights = {id(v) for v in self.cell.weights}
        if any(id(v) not in weights for v in self.cell.variables):      # the state of a SeedGenerator
            raise NotImplementedError(f"{self.where}: its cell {type(self.cell).__name__} holds a SeedGenerator "
                                      "(it or a sublayer draws random numbers, such as dropout); gpu_dl trains a "
                                      "cell of the user's own by running each step again in the backward pass, "
                                      "which would draw them afresh.")

    def backward(self, d_output, d_states):
        if self.saved is None:
            raise RuntimeError(f"{self.where}: backward() needs a preceding call with training=True.")
        self._check_trainable()
        if gradients.in_pass():
            return self._backward(d_output, d_states)
        with gradients.gradient_pass(self.rnn.trainable_weights):
            return self._backward(d_output, d_states)

    def _backward(self, d_output, d_states):
        rnn = self.rnn
        inputs, befores, masks, n, steps = self.saved
        xp = array_module(inputs[0])
        dtype = inputs[0].dtype
        zeros = xp.zeros((n, self.output_size), dtype=dtype)
        ds = [xp.zeros((n, u), dtype=dtype) if g is None else xp.asarray(g, dtype=dtype)
              for g, u in zip(d_states, self.sizes)]
        d_carried = zeros      # the gradient of the output of the step, from the steps after it
        if d_output is not None and not rnn.return_sequences:
            d_carried = xp.asarray(d_output, dtype=dtype)
        dx = [None] * len(inputs)
        for i in reversed(range(len(inputs))):
            d_out = d_carried
            if d_output is not None and rnn.return_sequences:
                d_out = d_out + d_output[:, i]
            m = masks[i]
            if m is None:
                d_cell, d_new, d_carried = d_out, ds, zeros
            else:
                d_cell = xp.where(m, d_out, 0)
                d_new = [xp.where(m, g, 0) for g in ds]
                d_carried = zeros if rnn.zero_output_for_mask else xp.where(m, 0, d_out)
            # Each step's forward again: the graph keeps what its backward needs for the last run alone
            with layer_losses.dropped_losses(), metric_updates.updates_suppressed():
                self._run_step(inputs[i], befores[i], True)
            grads = self.step.backward([d_cell] + list(d_new))
            grads = list(grads) if isinstance(grads, (list, tuple)) else [grads]
            grads = [xp.zeros_like(a) if g is None else g for g, a in zip(grads, [inputs[i]] + list(befores[i]))]
            dx[i] = grads[0]
            ds = [g + (0 if m is None else xp.where(m, 0, d)) for g, d in zip(grads[1:], ds)]
        rnn.initial_state_gradients = ds
        order = list(range(steps))[::-1] if rnn.go_backwards else list(range(steps))
        d_x = xp.empty((n, steps) + tuple(inputs[0].shape[1:]), dtype=dtype)
        for i, t in enumerate(order):
            d_x[:, t] = dx[i]
        return d_x

    def reset_state(self):
        self.carried = None

    @property
    def carried_batch_size(self):
        return None if self.carried is None else int(self.carried[0].shape[0])

    @property
    def carried(self):
        return None if self._variables is None else [v.value for v in self._variables]

    @carried.setter
    def carried(self, arrays):
        self._variables = state_variables(self._variables, arrays, f"{self.rnn.name}/{STATE_NAME}")

    @property
    def states(self):
        """The carried states as Keras keeps them (non-trainable Variables, see ``sequence_layer.py``)."""
        return None if self._variables is None else list(self._variables)
