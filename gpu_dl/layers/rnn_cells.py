"""Keras 3's recurrent cells: SimpleRNNCell, LSTMCell, GRUCell (one time step each) and StackedRNNCells.

A cell holds the weights of the matching layer in the same layout (kernel (features, G*u), recurrent_kernel
(u, G*u), bias; G = 1, 4, 3) and is called on one step, as in Keras::

    h, new_states = cell(x_t, states, training=False)

with x_t (batch, features) and states a list of (batch, units) arrays: [h] (SimpleRNNCell, GRUCell) or
[h, c] (LSTMCell). It returns h (batch, units) and the new states: [h] or [h, c]; SimpleRNNCell and
GRUCell given a single array instead of a list return a single array, as Keras's do.

The step runs through the matching layer's sequence operations with one time step (the cell owns such a
layer, with its own variables), so it has that layer's arithmetic, dropout and CUDA path.

Dropout is Keras's cells': the cell holds the ``SeedGenerator`` of its ``seed`` as ``seed_generator`` (among
its ``variables``), and a training call draws its input and recurrent masks (``get_dropout_mask``,
``get_recurrent_dropout_mask``: one, or one per gate with ``implementation=1`` or a ``recurrent_dropout``) only
if it holds none yet, so that every step of a loop drops the same units; ``reset_dropout_mask()`` and
``reset_recurrent_dropout_mask()`` forget them (before the next batch). Calls outside training use none (and
draw none, but for SimpleRNNCell's, which draw and keep them as Keras's does). Where they hold one per gate,
a step drops each gate's input and h_{t-1} with that gate's masks, as Keras's gated cells do.
``backward(dy)`` takes the gradient of h, or a list [d_h, *d_states] (None for those without one), writes
the weight gradients into ``kernel.grad`` etc., returns the gradient of x_t and leaves those of the states
in ``state_gradients``.
"""
from __future__ import annotations

import numpy

from .. import backend
from .base import Layer, call_arguments, scoped_path
from .recurrent import GRU, LSTM, SimpleRNN
from .regularization import keep_mask_of_pair

_WEIGHT_KEYS = ("kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
                "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
                "bias_constraint")


class _Cell(Layer):
    """What the three cells share: a one-step layer of class ``LAYER`` holding the weights."""

    LAYER = None
    # Whether a call outside training draws the masks too (and keeps them), as Keras's SimpleRNNCell's does.
    MASKS_OUTSIDE_TRAINING = False
    # The cell's config keys after name/trainable/dtype, in Keras's order; the layer has all of them.
    CONFIG_KEYS = ()

    def __init__(self, units, **kwargs):
        base = {key: kwargs.pop(key) for key in ("name", "trainable", "dtype") if key in kwargs}
        super().__init__(**base)
        # return_state: the step returns [h, h] or [h, h, c]; the layer carries the cell's name so that its
        # variables are '<cell>/kernel' and its errors name the cell.
        self._layer = self.LAYER(units, name=self.name, dtype=self.dtype_policy, return_state=True, **kwargs)
        self.seed_generator = self._layer.seed_generator
        # The step's masks are the cell's, kept from one training call to the next (see the module docstring).
        self._layer._dropout_masks = self._step_dropout_masks
        self._dropout_mask = self._recurrent_dropout_mask = None
        self.state_gradients = None

    def __getattr__(self, name):
        # units, activation, dropout, kernel_initializer, ...: the layer's (only reached when not found)
        if name in type(self).CONFIG_KEYS and "_layer" in self.__dict__:
            return getattr(self.__dict__["_layer"], name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    @property
    def state_size(self):
        return self.units if self.LAYER.STATES == 1 else [self.units] * self.LAYER.STATES

    @property
    def output_size(self):
        return self.units

    @property
    def kernel(self):
        return self._layer.kernel

    @property
    def recurrent_kernel(self):
        return self._layer.recurrent_kernel

    @property
    def bias(self):
        return self._layer.bias

    def build(self, input_shape):
        """``input_shape`` (batch, features)."""
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}' is built for steps of shape (batch, features) "
                             f"with a known number of features, got shape {input_shape}.")
        self._layer.ensure_built((input_shape[0], 1, input_shape[-1]))
        self._weights = self._layer.weights
        for weight in self._weights:        # the cell's own, as Keras's cell makes them (rnn/lstm_cell/kernel)
            weight.path = scoped_path(self, weight.name)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_initial_state(self, batch_size=None):
        """Zeros, one (batch_size, units) array per state, on the current device."""
        return [backend.to_device(numpy.zeros((batch_size, self.units), dtype=self.compute_dtype))
                for _ in range(self.LAYER.STATES)]

    def _checked_step(self, x, states):
        where = f"{type(self).__name__} '{self.name}'"
        x = self._as_input(x)
        if x.ndim != 2:
            raise ValueError(f"{where} is called on one time step of shape (batch, features), got shape "
                             f"{tuple(x.shape)}; for whole sequences (batch, timesteps, features) use "
                             f"RNN({type(self).__name__}(...)) or layers.{self.LAYER.__name__}.")
        self.ensure_built(x.shape)
        features = self.kernel.shape[0]
        if x.shape[1] != features:
            raise ValueError(f"{where} was built for {features} features per step; got a step of shape "
                             f"{tuple(x.shape)} with {x.shape[1]}.")
        single = not isinstance(states, (list, tuple))
        states = [states] if single else list(states)
        count = self.LAYER.STATES
        if len(states) != count:
            raise ValueError(f"{where} takes {count} state(s) ({'[h, c]' if count == 2 else '[h]'}), each "
                             f"({x.shape[0]}, {self.units}), got {len(states)}.")
        xp = backend.array_module(x)
        states = [xp.asarray(s, dtype=self.compute_dtype) for s in states]
        for i, s in enumerate(states):
            if s.shape != (x.shape[0], self.units):
                raise ValueError(f"{where}: states[{i}] must have shape ({x.shape[0]}, {self.units}), got "
                                 f"{tuple(s.shape)}.")
        return x.astype(self.compute_dtype, copy=False), states, single and count == 1

    # ------------------------------------------------------------------ dropout masks
    def _cached_mask(self, attribute, rate, like, shape):
        """The masks held in ``attribute`` (Keras's ``_dropout_mask`` / ``_recurrent_dropout_mask``), drawn
        from the seed generator if there are none and ``rate`` is above 0: one mask, or a list of one per gate
        where Keras's cell draws that many."""
        masks = getattr(self, attribute)
        if masks is None and rate > 0:
            count = self._layer.dropout_mask_count
            like = self._as_input(like)
            drawn = [keep_mask_of_pair(self.seed_generator.next(), like, tuple(shape), rate) for _ in range(count)]
            masks = drawn[0] if count == 1 else drawn
            setattr(self, attribute, masks)
        return masks

    def get_dropout_mask(self, step_input):
        """The input's dropout mask(s) for steps like ``step_input`` (batch, features), drawn at the first
        call and kept until ``reset_dropout_mask()``; None with ``dropout`` 0."""
        step_input = self._as_input(step_input)
        return self._cached_mask("_dropout_mask", self.dropout, step_input, step_input.shape)

    def get_recurrent_dropout_mask(self, step_input):
        """The mask(s) of h_{t-1} for states like ``step_input`` (batch, units), kept until
        ``reset_recurrent_dropout_mask()``; None with ``recurrent_dropout`` 0."""
        step_input = self._as_input(step_input)
        return self._cached_mask("_recurrent_dropout_mask", self.recurrent_dropout, step_input, step_input.shape)

    def reset_dropout_mask(self):
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self):
        self._recurrent_dropout_mask = None

    def _step_dropout_masks(self, x, training):
        """The input and recurrent masks of a step on ``x`` (batch, 1, features), in training only: each kept
        list stacked (gates, batch, ...) where it holds one per gate (each gate takes its input and h_{t-1} under
        its own, as in Keras's gated cells), else its mask."""
        if not training and not self.MASKS_OUTSIDE_TRAINING:
            return None, None
        n = x.shape[0]
        found = []
        for attribute, rate, shape in (("_dropout_mask", self.dropout, (n, x.shape[2])),
                                       ("_recurrent_dropout_mask", self.recurrent_dropout, (n, self.units))):
            masks = self._cached_mask(attribute, rate, x, shape)
            mask = masks[0] if isinstance(masks, list) else masks
            if mask is not None and tuple(mask.shape) != shape:
                raise ValueError(f"{type(self).__name__} '{self.name}' holds the dropout masks of its last training "
                                 f"calls, for steps of shape {tuple(mask.shape)}; got a step of {shape[0]} samples. "
                                 "Call reset_dropout_mask() and reset_recurrent_dropout_mask() before a batch of "
                                 "another size.")
            if isinstance(masks, list) and len(masks) > 1:
                mask = backend.array_module(masks[0]).stack(masks)
            found.append(mask)
        return tuple(found) if training else (None, None)

    def __call__(self, inputs, states, training=False):
        given = getattr(inputs, "dtype", None)
        x, states, single = self._checked_step(inputs, states)
        self._layer.trainable = self.trainable
        # Under the layer's policy, as its own calls run: a mixed cell reads its weights as float16.
        h, *new_states = self._layer._policy_call(x.dtype if given is None else given, self._layer.call,
                                                  x[:, None, :], training=bool(training), initial_state=states)
        return h, (new_states[0] if single else new_states)

    def backward(self, dy):
        grads = list(dy) if isinstance(dy, (list, tuple)) else [dy]
        if len(grads) == 2 and isinstance(grads[1], (list, tuple)):   # [d_h, [d_states]], as the call returned
            grads = [grads[0]] + list(grads[1])
        if len(grads) > 1 + self.LAYER.STATES:
            raise ValueError(f"{type(self).__name__} '{self.name}': backward takes the gradient of h and at most "
                             f"{self.LAYER.STATES} of the new states, got {len(grads)} arrays.")
        self._layer.trainable = self.trainable
        self._layer.input_gradient_wanted = self.input_gradient_wanted
        dx = self._layer.backward(grads)
        self.state_gradients = self._layer.initial_state_gradients
        return None if dx is None else dx[:, 0]

    def get_config(self):
        layer_config = self._layer.get_config()
        return {**super().get_config(), **{key: layer_config[key] for key in self.CONFIG_KEYS}}

    def bound_layer(self, name, **flags):
        """A ``LAYER`` over whole sequences with this cell's arguments and flags (return_sequences, ...),
        sharing this (built) cell's variables: what ``RNN`` runs."""
        config = self._layer.get_config()
        # The layer draws from the cell's generator, and as many masks as the cell would.
        config.update(name=name, trainable=self.trainable, seed=self.seed_generator, **flags)
        if self.LAYER.GATES > 1:
            config["implementation"] = self._layer.implementation
        layer = self.LAYER.from_config(config)
        layer.kernel, layer.recurrent_kernel, layer.bias = self.kernel, self.recurrent_kernel, self.bias
        layer._weights = self._layer.weights
        layer.built = True
        layer.input_spec = (None, None, self.kernel.shape[0])
        return layer


_COMMON = ("units", "activation")
_TAIL = ("dropout", "recurrent_dropout")


class SimpleRNNCell(_Cell):
    """One step of SimpleRNN: ``h = activation(x_t @ kernel + h_prev @ recurrent_kernel + bias)``."""

    LAYER = SimpleRNN
    MASKS_OUTSIDE_TRAINING = True
    call_first_argument = "sequence"        # Keras's SimpleRNNCell.call(sequence, states, training=False)
    CONFIG_KEYS = _COMMON + ("use_bias",) + _WEIGHT_KEYS + _TAIL + ("seed",)

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)


class LSTMCell(_Cell):
    """One step of LSTM: kernel (features, 4u), recurrent_kernel (u, 4u), bias (4u,), gates i, f, c, o;
    states [h, c]. With ``unit_forget_bias`` (default) the forget gate's bias starts at 1."""

    LAYER = LSTM
    CONFIG_KEYS = (_COMMON + ("recurrent_activation", "use_bias", "unit_forget_bias") + _WEIGHT_KEYS + _TAIL
                   + ("seed",))

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         unit_forget_bias=unit_forget_bias, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
                         kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout, recurrent_dropout=recurrent_dropout,
                         seed=seed, **kwargs)


class GRUCell(_Cell):
    """One step of GRU: kernel (features, 3u), recurrent_kernel (u, 3u), gates z, r, h; ``reset_after=True``
    (default): bias (2, 3u), else (3u,)."""

    LAYER = GRU
    CONFIG_KEYS = (_COMMON + ("recurrent_activation", "use_bias") + _WEIGHT_KEYS + _TAIL
                   + ("reset_after", "seed"))

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 reset_after=True, seed=None, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, reset_after=reset_after, seed=seed,
                         **kwargs)


CELL_CLASSES = {cls.__name__: cls for cls in (SimpleRNNCell, LSTMCell, GRUCell)}


def is_user_cell(cell):
    """Whether ``cell`` is a cell of the user's own: a Layer with ``call`` and ``state_size`` that is not one of
    gpu_dl's cells."""
    return isinstance(cell, Layer) and not isinstance(cell, (_Cell, StackedRNNCells)) and \
        hasattr(cell, "call") and hasattr(cell, "state_size")


def cell_output_size(cell):
    """A cell's ``output_size``, or its first state's size where it has none (as Keras's RNN reads it)."""
    size = getattr(cell, "output_size", None)
    if size is None:
        size = cell.state_size[0] if isinstance(cell.state_size, (list, tuple)) else cell.state_size
    return size


def cell_from_entry(entry, where):
    """A built-in cell from ``{"class_name": ..., "config": {...}}``: only the three cell classes, looked up by
    name here (never a module named in the entry)."""
    if isinstance(entry, _Cell):
        return entry
    cls = CELL_CLASSES.get(entry.get("class_name")) if isinstance(entry, dict) else None
    if cls is None:
        raise ValueError(f"{where}: the cell must be one of {', '.join(CELL_CLASSES)}, got "
                         f"{entry.get('class_name') if isinstance(entry, dict) else entry!r:.200}.")
    return cls.from_config(dict(entry.get("config") or {}))


class StackedRNNCells(Layer):
    """Several cells run one after the other at each step: cell k's h is cell k+1's input.

    ``cells(x_t, states)``: states one entry per cell (that cell's [h] or [h, c], or h alone); returns the last
    cell's h and the list of every cell's new states. ``backward`` takes the gradient of that h, or
    [d_h, d_states] with d_states one list per cell (None for those without one); the gradients of the states
    go to ``state_gradients`` (one list per cell).

    The cells are all built-in ones, or all cells of the user's own (``holds_user_cells``: Layers with
    ``state_size`` and ``call(inputs, states)``); ``call(inputs, states)`` then runs each cell's call in turn, as
    Keras's does, and an ``RNN`` of them trains through that call traced (``cell_loop.py``).
    """

    def __init__(self, cells, **kwargs):
        cells = list(cells) if isinstance(cells, (list, tuple)) else None
        if cells and isinstance(cells[0], Layer) and kwargs.get("dtype") is None:
            kwargs["dtype"] = cells[0].dtype
        super().__init__(**kwargs)
        self.holds_user_cells = bool(cells) and all(is_user_cell(c) for c in cells)
        if not cells or not (self.holds_user_cells or all(isinstance(c, _Cell) for c in cells)):
            raise TypeError(f"StackedRNNCells '{self.name}' takes a non-empty list of built-in cells "
                            f"({', '.join(CELL_CLASSES)}), or of cells of your own (Layers with state_size and "
                            f"call(inputs, states)), not both, got {cells!r:.200}.")
        self.cells = cells
        self.state_gradients = None

    @property
    def variables(self):
        """Each cell's weights then its seed state, cell after cell (Keras's order)."""
        found = []
        for cell in self.cells:
            found += [v for v in cell.variables if all(v is not seen for seen in found)]
        return found

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        return cell_output_size(self.cells[-1])

    def get_initial_state(self, batch_size=None):
        found = []
        for c in self.cells:
            if hasattr(c, "get_initial_state"):
                found.append(c.get_initial_state(batch_size=batch_size))
            else:
                sizes = c.state_size if isinstance(c.state_size, (list, tuple)) else [c.state_size]
                found.append([backend.to_device(numpy.zeros((batch_size, u), dtype=c.compute_dtype))
                              for u in sizes])
        return found

    def call(self, inputs, states, training=None):
        """Keras's stacked step for cells of the user's own: each cell's call on the one before's output and its
        own states (``states`` one entry per cell); returns the last output and one list of states per cell."""
        new_states = []
        for cell, s in zip(self.cells, states):
            s = list(s) if isinstance(s, (list, tuple)) else [s]
            kwargs = {"training": training} if call_arguments(type(cell).call)[0] else {}
            inputs, s = cell.call(inputs, tuple(s), **kwargs)
            new_states.append(list(s) if isinstance(s, (list, tuple)) else [s])
        return inputs, new_states

    def build(self, input_shape):
        """``input_shape`` (batch, features): each cell is built for the one before's units."""
        shape = tuple(input_shape)
        if self.holds_user_cells:
            for cell in self.cells:
                if not cell.built:
                    cell.build(shape)       # as Keras's: each cell's own build, for the one before's output
                    cell.built = True
                shape = (shape[0], cell_output_size(cell))
            self._weights = [w for c in self.cells for w in c.weights]
            return
        for cell in self.cells:
            cell.ensure_built(shape)
            shape = (shape[0], cell.units)
        self._weights = [w for c in self.cells for w in c.weights]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size)

    def __call__(self, inputs, states, training=False):
        if not isinstance(states, (list, tuple)) or len(states) != len(self.cells):
            raise ValueError(f"StackedRNNCells '{self.name}' takes one entry of states per cell "
                             f"({len(self.cells)}), got {states!r:.200}.")
        x = self._as_input(inputs)
        self.ensure_built(x.shape)
        new_states = []
        for cell, s in zip(self.cells, states):
            x, s = cell(x, s, training=training)
            new_states.append(s)
        return x, new_states

    def backward(self, dy):
        grads = list(dy) if isinstance(dy, (list, tuple)) else [dy]
        d_h = grads[0]
        d_states = list(grads[1]) if len(grads) > 1 and grads[1] is not None else [None] * len(self.cells)
        gradients = []
        for cell, d_s in zip(reversed(self.cells), reversed(d_states)):
            d_s = [] if d_s is None else (list(d_s) if isinstance(d_s, (list, tuple)) else [d_s])
            d_h = cell.backward([d_h] + d_s)
            gradients.insert(0, cell.state_gradients)
        self.state_gradients = gradients
        return d_h

    def get_config(self):
        if self.holds_user_cells:
            from .layer_serialization import serialize
            return {**super().get_config(), "cells": [serialize(c) for c in self.cells]}
        return {**super().get_config(),
                "cells": [{"class_name": type(c).__name__, "config": c.get_config()} for c in self.cells]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cells = []
        for c in config.pop("cells", []):
            if isinstance(c, dict) and c.get("class_name") not in CELL_CLASSES:
                from .layer_serialization import deserialize
                cells.append(deserialize(c, custom_objects=custom_objects))
            else:
                cells.append(c if isinstance(c, Layer) else cell_from_entry(c, "StackedRNNCells"))
        return cls(cells, **config)
