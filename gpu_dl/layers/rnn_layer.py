"""Keras 3's ``RNN`` layer over gpu_dl's built-in cells.

``RNN(cell)`` with a SimpleRNNCell, LSTMCell or GRUCell computes what SimpleRNN, LSTM or GRU computes with the
same weights: it runs that layer (bound to the cell's variables), so masks, ``initial_state``, dropout,
``stateful``, the backward pass and the CUDA path are the layer's. Inputs (batch, timesteps, features);
output (batch, units), or (batch, timesteps, units) with ``return_sequences``.

A list of cells or ``StackedRNNCells([...])`` runs every cell at each step; that equals the matching layers
chained, each but the last returning sequences, which is how it runs here. With ``return_state`` the call
returns ``[output, *states]`` with the states nested per cell, as Keras gives them: for two LSTMCells
``[output, [h1, c1], [h2, c2]]`` (see ``_bare_cells`` for when a cell's entry is its state itself), on arrays and
on symbolic tensors; a functional graph holds them flat (``Node.outputs``), in that order. ``initial_state``
takes Keras's form (one entry per cell) or the states flat; ``backward`` takes the gradients in either form.

A cell of the user's own (a Layer with ``state_size`` and ``call(inputs, states)``, as in Keras's guide) runs
through ``cell_loop.py``: one Python step per time step, and training through the cell's traced call. A list
(or StackedRNNCells) of such cells stacks them as Keras's StackedRNNCells does; a list mixing them with built-in
cells is refused.
"""
from __future__ import annotations

from ..backend import array_module
from .base import Layer
from .cell_loop import CellLoop
from .rnn_cells import CELL_CLASSES, StackedRNNCells, _Cell, cell_from_entry, is_user_cell
from .sequence_layer import SequenceLayer
from .symbolic import flatten_structure, pack_like


class RNN(SequenceLayer):

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        first = cell[0] if isinstance(cell, (list, tuple)) and cell else cell
        if kwargs.get("dtype") is None and isinstance(first, Layer):
            kwargs["dtype"] = first.dtype   # computes in its cell's dtype (the sequence layer's is the cell's)
        super().__init__(**kwargs)
        where = f"RNN layer '{self.name}'"
        self._loop = None            # the time loop over a cell of the user's own
        if isinstance(cell, (list, tuple)):
            if not (all(isinstance(c, _Cell) for c in cell) or (cell and all(map(is_user_cell, cell)))):
                self._refuse(cell, where)
            cell = StackedRNNCells(cell)
        if self._is_user_cell(cell):
            self.cell = cell
            self._set_sequence_flags(return_sequences, return_state, go_backwards, stateful, unroll,
                                     zero_output_for_mask)
            self._layers = None
            self._loop = CellLoop(self, cell)
            return
        if not isinstance(cell, (_Cell, StackedRNNCells)):
            self._refuse(cell, where)
        self.cell = cell
        self._set_sequence_flags(return_sequences, return_state, go_backwards, stateful, unroll,
                                 zero_output_for_mask)
        self._layers = None          # the bound sequence layers, one per cell, made when built

    @staticmethod
    def _is_user_cell(cell):
        return is_user_cell(cell) or (isinstance(cell, StackedRNNCells) and cell.holds_user_cells)

    @staticmethod
    def _refuse(cell, where):
        cells = cell if isinstance(cell, (list, tuple)) else [cell]
        for c in cells:
            if isinstance(c, _Cell):
                continue
            if hasattr(c, "call") and hasattr(c, "state_size"):
                raise TypeError(f"{where}: the cell {type(c).__name__} is not one of gpu_dl's built-in cells; RNN "
                                f"takes a list or StackedRNNCells of {', '.join(CELL_CLASSES)}, or one of cells "
                                "of your own, not both.")
            raise ValueError(f"{where}: `cell` must be an RNN cell ({', '.join(CELL_CLASSES)}), a list of them or "
                             f"StackedRNNCells, got {c!r:.200}.")

    @property
    def variables(self):
        """The cell's variables: each cell's weights, then its seed state (Keras's order)."""
        return self.cell.variables

    @property
    def cells(self):
        if self._loop is not None and not isinstance(self.cell, StackedRNNCells):
            return [self.cell]
        return self.cell.cells if isinstance(self.cell, StackedRNNCells) else [self.cell]

    @property
    def state_size(self):
        if self._loop is not None:
            return list(self._loop.sizes)
        sizes = []
        for c in self.cells:
            sizes += c.state_size if isinstance(c.state_size, list) else [c.state_size]
        return sizes

    @property
    def state_count(self):
        return len(self.state_size)

    @property
    def state_names(self):
        if self._loop is not None:
            return tuple(f"state_{i}" for i in range(len(self._loop.sizes)))
        return tuple(name for c in self.cells for name in ("h", "c")[:c.LAYER.STATES])

    # ----------------------------------------------------------------- shapes
    def _checked(self, shape):
        shape = tuple(shape)
        where = f"RNN layer '{self.name}'"
        if len(shape) != 3:
            raise ValueError(f"{where} expects inputs of rank 3 (batch, timesteps, features), got shape {shape} "
                             f"(rank {len(shape)}). A 2-D array of samples needs a time axis: reshape to "
                             "(batch, timesteps, features); to run the cell on one step, call the cell itself.")
        if shape[1] == 0:
            raise ValueError(f"{where}: the sequence length (timesteps) is 0, got input shape {shape}.")
        if shape[2] is None:
            raise ValueError(f"{where} needs a known number of features (last axis), got input shape {shape}.")
        return shape

    def build(self, input_shape):
        n, _, features = self._checked(input_shape)
        if self.stateful and n is None and self.states is None:
            # as Keras's RNN.build refuses it: the states' batch size must be known when they are made
            raise ValueError(f"RNN layer '{self.name}': When using `stateful=True` in a RNN, the batch size must be "
                             f"static. Found dynamic batch size: sequence.shape={tuple(input_shape)}")
        if self._loop is not None:
            self._loop.build((n, None, features))
            return
        self.cell.ensure_built((n, features))
        built_for = self.cells[0].kernel.shape[0]
        if built_for != features:
            raise ValueError(f"RNN layer '{self.name}': its cell '{self.cells[0].name}' was built for {built_for} "
                             f"features per step; got an input of shape {tuple(input_shape)} with {features}.")
        last = len(self.cells) - 1
        self._layers = []
        for i, cell in enumerate(self.cells):
            # After the first layer the sequence is in the order it was read: the later ones read it forwards.
            layer = cell.bound_layer(
                self.name if last == 0 else f"{self.name}/{cell.name}",
                return_sequences=self.return_sequences if i == last else True, return_state=True,
                go_backwards=self.go_backwards and i == 0, stateful=self.stateful,
                zero_output_for_mask=self.zero_output_for_mask and i == last)
            # its errors (a stateful batch of another size, a bad initial state) name this layer
            layer.described_as = f"RNN layer '{self.name}'" + (f" (cell '{cell.name}')" if last else "")
            setattr(self, f"_step_layer_{i}", layer)   # kept as attributes too: a shared layer's call state
            layer.start_states(n)
            self._layers.append(layer)
        self._weights = self.cell.weights

    def check_input_shape(self, shape):
        shape = self._checked(shape)
        if self._loop is not None:
            return
        features = self.cells[0].kernel.shape[0] if self.cells[0].kernel is not None else None
        if features is not None and shape[2] != features:
            raise ValueError(f"RNN layer '{self.name}' was built for {features} features per step; got an input of "
                             f"shape {shape} with {shape[2]}.")

    def _flat_output_shape(self, input_shape):
        n, t, _ = self._checked(input_shape)
        if self._loop is not None:
            return self._loop.compute_output_shape((n, t, None))
        units = self.cells[-1].units
        out = (n, t, units) if self.return_sequences else (n, units)
        if self.return_state:
            return [out] + [(n, u) for u in self.state_size]
        return out

    def compute_output_shape(self, input_shape):
        """The output's shape; with ``return_state`` a list [output, *states], the states of a list of cells or
        StackedRNNCells nested per cell as the symbolic call gives them."""
        shapes = self._flat_output_shape(input_shape)
        return self.symbolic_structure(shapes) if self.return_state else shapes

    # --------------------------------------------------- the states' structure
    @property
    def _stacked(self):
        return isinstance(self.cell, StackedRNNCells)

    def _cell_state_counts(self):
        return [len(c.state_size) if isinstance(c.state_size, (list, tuple)) else 1 for c in self.cells]

    def _bare_cells(self, initial_state=None, symbolic=False):
        """Per cell of a stack, whether the call gives its states as one tensor instead of a list, as Keras's RNN
        does: a symbolic call follows each cell's ``state_size`` (an int: one tensor); a call on arrays follows the
        states it starts from, which are the entries of ``initial_state`` where it is given per cell (Keras's
        form), else the cell's ``get_initial_state`` (the built-in cells' give lists) or, for a cell without one,
        its ``state_size``."""
        cells = self.cell.cells
        if symbolic:
            return [not isinstance(c.state_size, (list, tuple)) for c in cells]
        if self._per_cell(initial_state):
            return [not isinstance(s, (list, tuple)) for s in initial_state]
        return [getattr(c, "get_initial_state", None) is None and not isinstance(c.state_size, (list, tuple))
                for c in cells]

    def _per_cell(self, initial_state):
        """Whether a stack's ``initial_state`` is given in Keras's form: one entry per cell, a list of its states
        or the state itself."""
        return self._stacked and isinstance(initial_state, (list, tuple)) and \
            len(initial_state) == len(self.cell.cells) and \
            [len(flatten_structure(s)) for s in initial_state] == self._cell_state_counts()

    def _nested(self, flat, bare):
        """The flat states (or their shapes) of a stack as one entry per cell: a list of its states, or the state
        itself where ``bare``."""
        nested, start = [], 0
        for count, one in zip(self._cell_state_counts(), bare):
            nested.append(flat[start] if one else list(flat[start:start + count]))
            start += count
        return nested

    def symbolic_structure(self, outputs):
        """[output, *states]; a stack's states nested per cell as Keras's symbolic call gives them (a cell whose
        ``state_size`` is an int: its state itself, else a list): for two LSTMCells [output, [h1, c1], [h2, c2]],
        for an LSTMCell and a GRUCell [output, [h1, c1], h2]."""
        outputs = list(outputs)
        if not self._stacked:
            return outputs
        return [outputs[0]] + self._nested(outputs[1:], self._bare_cells(symbolic=True))

    def check_initial_state_shapes(self, shapes):
        if self._loop is not None:
            return self._loop.check_initial_state_shapes(shapes)
        sizes = self.state_size
        if len(shapes) != len(sizes) or any(len(s) != 2 or s[1] not in (None, u) for s, u in zip(shapes, sizes)):
            raise ValueError(f"RNN layer '{self.name}': initial_state needs {len(sizes)} tensor(s) of shapes "
                             f"{[(None, u) for u in sizes]}, got shapes {[tuple(s) for s in shapes]}.")

    # ------------------------------------------------------------------ passes
    def _split_initial_state(self, initial_state):
        """One list of states per cell, from Keras's nested form or a flat list."""
        if initial_state is None:
            return [None] * len(self._layers)
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if not self._stacked:
            return [states]
        flat = []
        for s in states:
            flat += list(s) if isinstance(s, (list, tuple)) else [s]
        counts = [layer.STATES for layer in self._layers]
        if len(flat) != sum(counts):
            raise ValueError(f"RNN layer '{self.name}': initial_state needs {sum(counts)} arrays in all (per cell: "
                             f"{counts}), got {len(flat)}.")
        split, start = [], 0
        for count in counts:
            split.append(flat[start:start + count])
            start += count
        return split

    def checked_initial_state(self, initial_state, x):
        """The states checked, flat; given per cell (Keras's form), in that form, which the call keeps in its
        result."""
        if self._loop is not None:
            checked = self._loop.checked_initial_state(initial_state, x)
        else:
            xp, n = array_module(x), x.shape[0]
            checked = []
            for layer, states in zip(self._layers, self._split_initial_state(initial_state)):
                checked += layer._given_states(xp, states, n, x.dtype)
        return pack_like(list(initial_state), checked) if self._per_cell(initial_state) else checked

    def call(self, x, training=False, mask=None, initial_state=None):
        # Bidirectional may set zero_output_for_mask after the layers were made; only the last one's output
        # is this layer's.
        if self._loop is not None:
            y = self._loop.call(x, training, mask, initial_state)
        else:
            self._layers[-1].zero_output_for_mask = self.zero_output_for_mask
            states = []
            for i, (layer, initial) in enumerate(zip(self._layers, self._split_initial_state(initial_state))):
                x, *layer_states = layer.call(x, training=training, mask=mask, initial_state=initial)
                states += layer_states
                if i == 0 and self.go_backwards and mask is not None:
                    mask = mask[:, ::-1]   # the later layers read the sequence in the order the first one did
            y = [x] + states if self.return_state else x
        if self.return_state and self._stacked:
            # Keras's form: one entry per cell, each a list of its states or (see _bare_cells) the state itself
            return [y[0]] + self._nested(y[1:], self._bare_cells(initial_state))
        return y

    def backward(self, dy):
        # one gradient per array the call returned, flat or in the call's structure (a stack's nested per cell)
        grads = flatten_structure(dy) if isinstance(dy, (list, tuple)) else [dy]
        count = 1 + len(self.state_size)
        if len(grads) > count:
            raise ValueError(f"RNN layer '{self.name}': backward takes {count} gradient(s), one per array the call "
                             f"returned, got {len(grads)}.")
        grads += [None] * (count - len(grads))
        d_output, d_states = grads[0], grads[1:]
        if self._loop is not None:
            return self._loop.backward(d_output, d_states)
        starts, start = [], 0
        for layer in self._layers:
            starts.append(start)
            start += layer.STATES
        for i in reversed(range(len(self._layers))):
            layer = self._layers[i]
            layer.trainable = self.trainable
            layer.input_gradient_wanted = i > 0 or self.input_gradient_wanted
            d_output = layer.backward([d_output] + d_states[starts[i]:starts[i] + layer.STATES])
        self.initial_state_gradients = [g for layer in self._layers for g in layer.initial_state_gradients]
        return d_output

    # ---------------------------------------------------------------- stateful
    def reset_state(self):
        if self._loop is not None:
            self._loop.reset_state()
        for layer in self._layers or []:
            layer.reset_state()

    @property
    def carried_batch_size(self):
        if self._loop is not None:
            return self._loop.carried_batch_size
        return None if not self._layers else self._layers[0].carried_batch_size

    @property
    def states(self):
        """A stateful layer's carried states, every cell's in order, as Keras's: non-trainable Variables named
        ``rnn_state`` (``numpy()``, ``assign``; see ``sequence_layer.py``), zeros after its build with a known
        batch size or a reset; None before it knows its batch size (a cell of the caller's: None before its first
        call or after a reset). For a list of cells or StackedRNNCells, one entry per cell, as Keras nests them."""
        if self._loop is not None:
            flat = self._loop.states
        elif not self._layers or self._layers[0].states is None:
            flat = None
        else:
            flat = [s for layer in self._layers for s in layer.states]
        if flat is None or not self._stacked:
            return flat
        # Keras keeps a cell's states as its get_initial_state gives them: a cell of the user's own without one
        # and with an integer state_size carries its state as one tensor, not a list.
        return self._nested(flat, self._bare_cells())

    # -------------------------------------------------------------- serialising
    def weight_groups(self, path):
        """Where Keras 3 keeps the weights in a .weights.h5 file: ``<path>/cell/vars`` for one cell; for
        StackedRNNCells ``<path>/cell/cells/<cell class in snake case, numbered _1, _2 when repeated>/vars``."""
        from ..catalogue import keras_snake_case
        groups = [(path, self.name, [])]
        if not isinstance(self.cell, StackedRNNCells):
            return groups + [(path + "/cell", self.cell.name, self.cell.weights)]
        groups.append((path + "/cell", self.cell.name, []))
        used = {}
        for c in self.cell.cells:
            key = keras_snake_case(type(c).__name__)
            used[key] = used.get(key, -1) + 1
            groups.append((f"{path}/cell/cells/{key}" + (f"_{used[key]}" if used[key] else ""), c.name, c.weights))
        return groups

    def get_config(self):
        config = super().get_config()
        if self._loop is not None:
            from .layer_serialization import serialize
            # a cell of the user's own as Keras writes it: its module, class and registered name
            return {**config, **self.sequence_flags_config(), "cell": serialize(self.cell)}
        config.update({**self.sequence_flags_config(),
                       "cell": {"class_name": type(self.cell).__name__, "config": self.cell.get_config()}})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cell = config.pop("cell")
        builtin = isinstance(cell, dict) and cell.get("class_name") in (*CELL_CLASSES, "StackedRNNCells")
        if isinstance(cell, dict) and cell.get("class_name") == "StackedRNNCells":
            cell = StackedRNNCells.from_config(dict(cell.get("config") or {}), custom_objects=custom_objects)
        elif isinstance(cell, dict) and not builtin:
            from .layer_serialization import deserialize
            cell = deserialize(cell, custom_objects=custom_objects)
        elif not isinstance(cell, Layer):
            cell = cell_from_entry(cell, f"RNN layer '{config.get('name', 'rnn')}'")
        return cls(cell, **config)
