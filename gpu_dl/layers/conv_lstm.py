"""``ConvLSTM1D``, ``ConvLSTM2D`` and ``ConvLSTM3D``: Keras 3's convolutional LSTMs.

Inputs (batch, time, rows, cols, channels) for ConvLSTM2D, (batch, time,
steps, channels) for ConvLSTM1D and (batch, time, depth, rows, cols, channels)
for ConvLSTM3D. Each step's gates come from a convolution of
the input (the layer's strides, padding "valid"/"same" and dilation_rate)
plus a convolution of h_{t-1} (stride 1, "same"), so the states h and c are
(batch, out_rows, out_cols, filters) (1-D: (batch, out_steps, filters); 3-D:
(batch, out_depth, out_rows, out_cols, filters)). With
``data_format="channels_first"`` the channels (and the states' filters) come
right after the batch and time axes instead, as in Keras; the layer moves them
last on the way in and back on the way out, and runs channels_last. The
layer returns the last h, or every step's with ``return_sequences``
(batch, time, ...), and with ``return_state`` the list [output, h, c].

Weights as Keras lays them out: kernel kernel_size + (channels, 4*filters),
recurrent_kernel kernel_size + (filters, 4*filters), bias (4*filters,), gates
i, f, c, o; saved under ``<layer>/cell`` as Keras saves the ConvLSTM's cell.
The 1-D layer runs the 2-D operations on images of height 1 (its kernel
(k, a, b) read as (1, k, a, b)); the 3-D layer gives the same operations its
volumes as they are. The arithmetic is ``ops/conv_lstm.py``.

Masks, ``initial_state`` ([h, c], with their gradients in
``initial_state_gradients`` after ``backward``), ``go_backwards`` and
``stateful`` behave as in the LSTM layer (``recurrent.py``). Dropout is
Keras's ConvLSTM cell's: four masks of the input and four of h_{t-1}, one per
gate, drawn once per call and the same at every step, from the layer's
``seed_generator`` (a SeedGenerator of its ``seed``, among its ``variables``):
as Keras's, a call takes four seed pairs per rate above 0, in training or
not, and on NumPy the masks are the ones Keras's NumPy backend draws.
"""
from __future__ import annotations

import numpy

from .. import activations, regularizers
from ..backend import array_module
from ..ops.convolution import conv_padding, output_spatial
from ..ops.conv_lstm import GATES, conv_lstm_backward, conv_lstm_forward
from .base import scoped_path
from .core import positive_int
from .recurrent import dropout_pairs, set_gated_cell_arguments
from .regularization import keep_mask_of_pair
from .sequence_layer import SequenceLayer
from .spatial import data_format_word, int_tuple, padding_word, too_small_error


class ConvLSTM(SequenceLayer):
    """What ConvLSTM1D, ConvLSTM2D and ConvLSTM3D share; ``rank`` is the number of spatial axes."""

    rank = 2
    STATES = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where = self._where()
        self.filters = positive_int(filters, f"{where}: filters")
        self.kernel_size = int_tuple(kernel_size, f"{where}: kernel_size", self.rank)
        self.strides = int_tuple(strides, f"{where}: strides", self.rank)
        self.dilation_rate = int_tuple(dilation_rate, f"{where}: dilation_rate", self.rank)
        self.padding = padding_word(padding, f"{where}: padding")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{where}: strides > 1 together with dilation_rate > 1 is not supported (as in Keras), "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}.")
        self.data_format = data_format_word(data_format, f"{where}: data_format")
        self.unit_forget_bias = bool(unit_forget_bias)
        set_gated_cell_arguments(
            self, where, activation, recurrent_activation, use_bias, dropout, recurrent_dropout, seed,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint)
        self._set_sequence_flags(return_sequences, return_state, go_backwards, stateful, unroll,
                                 zero_output_for_mask)
        self._carried_states = None
        self.kernel = self.recurrent_kernel = self.bias = None

    def _where(self):
        return f"{type(self).__name__} layer '{self.name}'"

    @property
    def state_count(self):
        return self.STATES

    state_names = ("h", "c")

    def checked_initial_state(self, initial_state, x):
        """[h, c] checked for input ``x``, in the layer's layout and data format (what its call takes)."""
        _, out = self._geometry(self._moved(x.shape, 2, True))
        state_shape = (x.shape[0],) + out + (self.filters,)
        return [self._given_format(self._layer(s, 1), 1)
                for s in self._given_states(array_module(x), initial_state, state_shape, x.dtype)]

    # ----------------------------------------------------------- data format
    def _moved(self, a, lead, to_last):
        """An array (a view) or shape with its channels axis moved from right after the ``lead`` batch/time
        axes to the end (``to_last``) or back; itself for channels_last."""
        if self.data_format == "channels_last":
            return a
        n = len(a) if isinstance(a, tuple) else a.ndim
        rest = tuple(range(lead + 1, n)) + (lead,) if to_last else (n - 1,) + tuple(range(lead, n - 1))
        order = tuple(range(lead)) + rest
        return tuple(a[i] for i in order) if isinstance(a, tuple) else a.transpose(order)

    def _given_format(self, a, lead):
        """A channels_last array or shape in the layer's data format."""
        return self._moved(a, lead, False)

    # ----------------------------------------------------------------- shapes
    def _image_pair(self, values, fill):
        """Per-axis values of the layer as the ops' spatial axes (1-D: the 2-D ops' (rows, cols) pair with
        ``fill`` for the rows)."""
        values = tuple(values)
        return values if self.rank > 1 else (fill,) + values

    def _layer_axes(self, pair):
        return tuple(pair) if self.rank > 1 else tuple(pair[1:])

    def _checked(self, input_shape):
        """The input shape checked (rank, a non-empty sequence, known channels and spatial sizes), as
        channels_last."""
        shape = tuple(input_shape)
        where = self._where()
        spatial = {1: "steps", 2: "rows, cols", 3: "depth, rows, cols"}[self.rank]
        axes = (f"(batch, time, channels, {spatial})" if self.data_format == "channels_first"
                else f"(batch, time, {spatial}, channels)")
        if len(shape) != self.rank + 3:
            raise ValueError(f"{where} expects inputs of rank {self.rank + 3} {axes}, got shape {shape} "
                             f"(rank {len(shape)}).")
        if shape[1] == 0:
            raise ValueError(f"{where}: the sequence length (time, axis 1) is 0, got input shape {shape}.")
        if any(s is None for s in shape[2:]):
            raise ValueError(f"{where} needs known spatial sizes and channels (as Keras's ConvLSTM does), got input "
                             f"shape {shape}.")
        return self._moved(shape, 2, True)

    def _geometry(self, shape):
        """(the input convolution's keyword arguments, output (OH, OW) as the 2-D ops see it) for a checked input
        shape; a clear error where the kernel does not fit."""
        spatial = self._image_pair(shape[2:-1], 1)
        window, strides, dilation = (self._image_pair(v, 1) for v in (self.kernel_size, self.strides,
                                                                      self.dilation_rate))
        pads = conv_padding(self.padding, spatial, window, strides, dilation)
        out = output_spatial(spatial, window, strides, dilation, pads)
        names = {1: ("steps",), 2: ("rows", "cols"), 3: ("depth", "rows", "cols")}[self.rank]
        for axis, n, k, s, d, p, o in zip(names, *(self._layer_axes(v) for v in
                                                   (spatial, window, strides, dilation, pads, out))):
            if o < 1:
                raise too_small_error(self, axis, n, k, s, d, p)
        return {"strides": strides, "padding": pads, "dilation": dilation}, out

    def _state_shape(self, input_shape):
        """A state's shape in the layer's layout: (batch,) + output spatial sizes + (filters,)."""
        _, out = self._geometry(input_shape)
        return (input_shape[0],) + self._layer_axes(out) + (self.filters,)

    def build(self, input_shape):
        shape = self._checked(input_shape)
        _, out = self._geometry(shape)
        width = GATES * self.filters
        self.kernel = self.add_weight(self.kernel_size + (shape[-1], width), self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(self.kernel_size + (self.filters, width), self.recurrent_initializer,
                                                name="recurrent_kernel", regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        if self.use_bias:
            self.bias = self.add_weight((width,), self._initial_bias(), name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        for weight in (self.kernel, self.recurrent_kernel) + ((self.bias,) if self.use_bias else ()):
            # made by Keras's cell sublayer, in its scope: conv_lstm2d/conv_lstm_cell/kernel
            weight.path = scoped_path(self, f"conv_lstm_cell/{weight.name}")
        if self.stateful and self._carried_states is not None:
            self.reset_state()
        elif self.stateful:
            if shape[0] is None:
                # as Keras's RNN.build refuses it: the states' batch size must be known when they are made
                raise ValueError(f"{self._where()}: When using `stateful=True` in a RNN, the batch size must be "
                                 f"static. Found dynamic batch size: sequence.shape={tuple(input_shape)}. Give the "
                                 "input a fixed batch size (keras.Input(shape, batch_size=...)).")
            # Keras's build of a stateful layer: zero states of the built batch size
            self._carried_states = [numpy.zeros((int(shape[0]),) + out + (self.filters,), dtype=self.dtype)
                                    for _ in range(self.STATES)]

    def _initial_bias(self):
        f = self.filters
        if not self.unit_forget_bias:
            return self.bias_initializer((GATES * f,), dtype=self.dtype)
        # Keras: the forget gate's block starts at ones, the others from bias_initializer
        return numpy.concatenate([self.bias_initializer((f,), dtype=self.dtype), numpy.ones(f, dtype=self.dtype),
                                  self.bias_initializer((2 * f,), dtype=self.dtype)])

    def check_input_shape(self, shape):
        # rank, channels and a kernel that fits: the weights depend on neither the sequence length nor the
        # spatial sizes
        last = self._checked(shape)
        if self.kernel is not None and last[-1] != self.kernel.shape[-2]:
            raise ValueError(f"{self._where()} was built for {self.kernel.shape[-2]} input channels (kernel "
                             f"{self.kernel.shape}); got an input of shape {tuple(shape)} with {last[-1]}.")
        self._geometry(last)

    def check_initial_state_shapes(self, shapes):
        rank = self.rank + 2
        filters_axis = 1 if self.data_format == "channels_first" else -1
        if len(shapes) != self.STATES or any(len(s) != rank or s[filters_axis] not in (None, self.filters)
                                             for s in shapes):
            raise ValueError(f"{self._where()}: initial_state needs 2 tensors [h, c] of rank {rank} (batch, ..., "
                             f"{self.filters}), got shapes {[tuple(s) for s in shapes]}.")

    def compute_output_shape(self, input_shape):
        shape = self._checked(input_shape)
        state = self._state_shape(shape)
        sequence = (state[0], shape[1]) + state[1:]
        out = self._given_format(sequence, 2) if self.return_sequences else self._given_format(state, 1)
        state = self._given_format(state, 1)
        return [out, state, state] if self.return_state else out

    def weight_groups(self, path):
        """Keras's weights-file groups: the layer's own (empty) and its cell's, named as Keras names the cell."""
        return [(path, self.name, []), (path + "/cell", "conv_lstm_cell", self.weights)]

    # ------------------------------------------------------------------ passes
    def _image(self, a, batch_axes):
        """An array in the layer's layout as the ops' (a view; 1-D: a unit rows axis after ``batch_axes``)."""
        if self.rank > 1:
            return a
        return a.reshape(a.shape[:batch_axes] + (1,) + a.shape[batch_axes:])

    def _layer(self, a, batch_axes):
        """Inverse of ``_image``."""
        if self.rank > 1:
            return a
        return a.reshape(a.shape[:batch_axes] + a.shape[batch_axes + 1:])

    def _image_weight(self, var):
        return var.value.reshape(self._image_pair(var.shape[:-2], 1) + var.shape[-2:])

    @staticmethod
    def _swap_batch_and_time(a):
        """(N, T, ...) <-> (T, N, ...), a view."""
        return a.transpose((1, 0) + tuple(range(2, a.ndim)))

    @staticmethod
    def _per_sample(mask, ndim):
        """A (..., N) mask shaped to broadcast over arrays of ``ndim`` more axes (spatial axes and filters)."""
        return mask.reshape(mask.shape + (1,) * ndim)

    def _gate_masks(self, pairs, x, spatial, channels, rate):
        """The four masks of one call, one per gate, as (N, *image spatial, GATES, channels): gate g's drawn from
        ``pairs[g]`` as Keras's cell draws it, in the shape of a step (or state) in the layer's data format
        (``spatial`` its sizes in the layer's axes), so that on NumPy the masks are Keras's."""
        n = x.shape[0]
        step = (n,) + tuple(spatial) + (channels,)
        masks = [self._image(self._moved(keep_mask_of_pair(pair, x, self._given_format(step, 1), rate), 1, True), 1)
                 for pair in pairs]
        return array_module(x).stack(masks, axis=-2)

    def call(self, x, training=False, mask=None, initial_state=None):
        xp = array_module(x)
        x = self._moved(x, 2, True)
        n = x.shape[0]
        args, out = self._geometry(x.shape)
        state_shape = (n,) + out + (self.filters,)
        self._check_carried_shape(state_shape)
        starts_from_zeros = initial_state is None and self.carried_batch_size is None
        h0, c0 = (self._initial_states(xp, state_shape, x.dtype) if initial_state is None
                  else self._given_states(xp, initial_state, state_shape, x.dtype))
        image = self._image(x, 2)
        steps = image[:, ::-1] if self.go_backwards else image
        x_tm = xp.ascontiguousarray(self._swap_batch_and_time(steps))
        step_mask = None
        if mask is not None:
            step_mask = xp.ascontiguousarray((mask[:, ::-1] if self.go_backwards else mask).T)
        # As Keras's RNN prepares its cell's masks: four pairs per rate above 0 at every call, in training or not.
        input_pairs, recurrent_pairs = dropout_pairs(self, GATES, training)
        input_masks = None if input_pairs is None else self._gate_masks(input_pairs, x, x.shape[2:-1], x.shape[-1],
                                                                         self.dropout)
        recurrent_masks = None if recurrent_pairs is None else self._gate_masks(
            recurrent_pairs, x, self._layer_axes(out), self.filters, self.recurrent_dropout)
        h, c, saved = conv_lstm_forward(
            x_tm, self._image_weight(self.kernel), self._image_weight(self.recurrent_kernel),
            self.bias.value if self.use_bias else None, h0, c0, self.activation, self.recurrent_activation,
            input_masks=input_masks, recurrent_masks=recurrent_masks, step_mask=step_mask, training=training, **args)
        if self.stateful:
            self._carried_states = [xp.array(h[-1]), xp.array(c[-1])]
        zeroed = step_mask if self.zero_output_for_mask else None
        if zeroed is None and step_mask is not None and not starts_from_zeros:
            # as the LSTM layer: a masked step outputs the output before it, zeros before the first step
            zeroed = xp.cumsum(step_mask, axis=0) > 0
        self._saved = (saved, zeroed) if training else None
        spatial_and_filters = h.ndim - 2
        if self.return_sequences:
            seq = h[1:] if zeroed is None else h[1:] * self._per_sample(zeroed, spatial_and_filters)
            output = self._given_format(self._layer(self._swap_batch_and_time(seq), 2), 2)
        else:
            output = self._given_format(self._layer(h[-1] if zeroed is None else h[-1] * self._per_sample(
                zeroed[-1], spatial_and_filters), 1), 1)
        output = xp.ascontiguousarray(output)
        if self.return_state:
            return [output] + [xp.ascontiguousarray(self._given_format(self._layer(s[-1], 1), 1)) for s in (h, c)]
        return output

    def _initial_states(self, xp, state_shape, dtype):
        """Zeros, or for a stateful layer the states its last call ended with (checked by the call)."""
        carried = self._carried_states if self.stateful else None
        if carried is None:
            return [xp.zeros(state_shape, dtype=dtype) for _ in range(self.STATES)]
        return [xp.asarray(s, dtype=dtype) for s in carried]

    def _check_carried_shape(self, state_shape):
        """A stateful layer takes inputs whose states have the shape its states have (Keras checks the batch
        size with an initial_state given too); reset_state() zeroes the states and keeps that shape."""
        carried = self._carried_states if self.stateful else None
        if carried is not None and carried[0].shape != state_shape:
            carries, needs = (self._given_format(self._layer_axes_of_state(tuple(s)), 1)
                              for s in (carried[0].shape, state_shape))
            raise ValueError(f"{self._where()} is stateful and carries states of shape {carries}; this input needs "
                             f"{needs}. Give every batch the same size (and spatial sizes); the states keep their "
                             "shape after reset_state(), so another shape needs a new layer.")

    def _given_states(self, xp, initial_state, state_shape, dtype):
        """``initial_state`` [h, c] in the layer's layout and data format, checked, as the ops' (N, OH, OW,
        filters)."""
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        expected = self._given_format(self._layer_axes_of_state(state_shape), 1)
        if len(states) != self.STATES:
            raise ValueError(f"{self._where()}: initial_state needs 2 arrays [h, c] of shape {expected}, got "
                             f"{len(states)}.")
        checked = []
        for i, s in enumerate(states):
            s = xp.asarray(s, dtype=dtype)
            if tuple(s.shape) != expected:
                raise ValueError(f"{self._where()}: initial_state[{i}] must have shape {expected}, got "
                                 f"{tuple(s.shape)}.")
            checked.append(xp.ascontiguousarray(self._moved(s, 1, True)).reshape(state_shape))
        return checked

    def _layer_axes_of_state(self, state_shape):
        return (state_shape[0],) + self._layer_axes(state_shape[1:-1]) + (state_shape[-1],)

    def backward(self, dy):
        saved, zeroed = self.saved()
        grads = list(dy) if isinstance(dy, (list, tuple)) else [dy]
        grads += [None] * (1 + self.STATES - len(grads))
        d_output, dh_state, dc_state = grads[:3]
        if d_output is not None:
            d_output = self._moved(d_output, 2 if self.return_sequences else 1, True)
        dh_state, dc_state = (None if g is None else self._moved(g, 1, True) for g in (dh_state, dc_state))
        xp = array_module(saved[0])
        dh_seq = dh_last = None
        spatial_and_filters = saved[0].ndim - 2
        if d_output is not None:
            if self.return_sequences:
                dh_seq = xp.ascontiguousarray(self._swap_batch_and_time(self._image(d_output, 2)))
                if zeroed is not None:
                    dh_seq = dh_seq * self._per_sample(zeroed, spatial_and_filters)
            else:
                d_output = self._image(d_output, 1)
                dh_last = d_output if zeroed is None else d_output * self._per_sample(zeroed[-1],
                                                                                     spatial_and_filters)
        if dh_state is not None:
            dh_state = self._image(dh_state, 1)
            dh_last = dh_state if dh_last is None else dh_last + dh_state
        if dc_state is not None:
            dc_state = self._image(dc_state, 1)
        dx_tm, dkernel, drecurrent, dbias, dh0, dc0 = conv_lstm_backward(
            saved, dh_seq, dh_last, dc_state, want_input=self.input_gradient_wanted)
        self.initial_state_gradients = [self._given_format(self._layer(d, 1), 1) for d in (dh0, dc0)]
        if self.trainable:
            self.kernel.grad = dkernel.reshape(self.kernel.shape)
            self.recurrent_kernel.grad = drecurrent.reshape(self.recurrent_kernel.shape)
            if self.use_bias:
                self.bias.grad = dbias
        if dx_tm is None:
            return None
        dx = self._swap_batch_and_time(dx_tm)
        dx = self._given_format(self._layer(dx[:, ::-1] if self.go_backwards else dx, 2), 2)
        return xp.ascontiguousarray(dx)

    # ------------------------------------------------------------------ stateful
    def reset_state(self):
        """Zero the carried states (Keras's): the next call of a stateful layer starts from zeros, with the
        shape the states have."""
        if self._carried_states is not None:
            self._carried_states = [array_module(s).zeros_like(s) for s in self._carried_states]

    @property
    def carried_batch_size(self):
        """The batch size a stateful layer carries states for; None when it carries none."""
        return None if self._carried_states is None else int(self._carried_states[0].shape[0])

    def _state_to_variable(self, array):
        # the states show in the layer's layout ([h, c], each (batch, *spatial, filters) or channels first)
        return self._given_format(self._layer(array, 1), 1)

    def _state_from_variable(self, array):
        return array_module(array).ascontiguousarray(self._image(self._moved(array, 1, True), 1))

    def get_config(self):
        config = super().get_config()
        config.update({
            **self.sequence_flags_config(),
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format, "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias, "unit_forget_bias": self.unit_forget_bias,
            **self.weight_arguments_config(),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
        })
        return config


class ConvLSTM2D(ConvLSTM):
    """Convolutional LSTM over (batch, time, rows, cols, channels); kernel (kh, kw, channels, 4*filters),
    recurrent_kernel (kh, kw, filters, 4*filters), bias (4*filters,); states (batch, out_rows, out_cols,
    filters)."""

    rank = 2


class ConvLSTM3D(ConvLSTM):
    """Convolutional LSTM over (batch, time, depth, rows, cols, channels); kernel (kd, kh, kw, channels,
    4*filters), recurrent_kernel (kd, kh, kw, filters, 4*filters), bias (4*filters,); states (batch, out_depth,
    out_rows, out_cols, filters)."""

    rank = 3


class ConvLSTM1D(ConvLSTM):
    """Convolutional LSTM over (batch, time, steps, channels); kernel (k, channels, 4*filters),
    recurrent_kernel (k, filters, 4*filters), bias (4*filters,); states (batch, out_steps, filters)."""

    rank = 1
