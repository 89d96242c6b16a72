"""The recurrent layers' ONNX conversions (``onnx_export.py`` walks the model and calls them): LSTM, GRU,
SimpleRNN, ``RNN`` over SimpleRNNCell, LSTMCell and GRUCell (one, a list or StackedRNNCells) or over cells of the
user's own, ConvLSTM1D/2D/3D and Bidirectional over any of them.

LSTM, GRU and SimpleRNN become ONNX's LSTM, GRU and RNN nodes (``onnx_export._rnn_node``; masks as
``onnx_export._masked_recurrent`` reads them). ``RNN(cell)`` runs the layers gpu_dl runs for its cells
(``layers/rnn_layer.py``): one such node per cell, each reading the one before's sequence, the states flat in the
cells' order. ``go_backwards`` reads the steps (and the mask) reversed, and a sequence output stays in the order
read, as in Keras. Bidirectional is one bidirectional node where both directions are plain LSTM, GRU or SimpleRNN
layers without initial or carried states; otherwise each direction is converted as the layer it is, the backward
one's sequence turned back; ``initial_state`` gives the forward layer's states, then the backward layer's.

ConvLSTM has no ONNX node: the input convolution of every step is one Conv (time folded into the batch), and a
Scan over the steps runs the recurrent convolution and the gates (any activation the export converts) with h and c
as its carried states; a masked step keeps the states (a Where in the Scan's body). Scan rather than Loop: the
number of steps is the input's, every step reads one slice of it and adds one slice to the output, which is what
Scan states (and ONNX Runtime runs it without a trip count or condition). An ``RNN`` over a cell of the user's
own (``layers/cell_loop.py``) is such a Scan too, whose body is the graph the cell's call traced to (converted as a
composite layer's), carrying the output before the step (which a masked step repeats) and the states; a cell with
a ``get_initial_state`` of its own is refused unless the call gives ``initial_state``.

A masked step of any of these layers leaves the states as they were and outputs the output before it (zeros
before the first, or zeros with ``zero_output_for_mask``), as gpu_dl runs it. As in gpu_dl and Keras, a call given
``initial_state`` tensors is not handed its input's mask (every step runs); its sequence output still carries
that mask.

``stateful=True``: each call of a stateful layer starts from the states the call before ended with. An ONNX file
has no variables, so those states become graph inputs and outputs: ``<layer>/state_h`` (and ``<layer>/state_c``
for the LSTMs; for an RNN of several cells ``<rnn>/<cell>/state_h``, ...; over a cell of the user's own
``<rnn>/state_0``, ...) after the model's inputs, each (batch, units) (a ConvLSTM's as its states are shaped in
its data format), and ``<layer>/state_h_out``, ... after the model's outputs: feed zeros (or ``layer.states``) to
the first run and each run's outputs to the next, as the layer carries them. A stateful call given
``initial_state`` starts from those instead (no state inputs then).
"""
from __future__ import annotations

import numpy

from .onnx_export import (_INT64_MAX, _RNN_NODES, _Builder, _Value, _activation, _bidirectional_merge,
                          _emit_model, _masked_recurrent, _reversed_steps, _rnn_node, _unsupported, _weights)


def _flat(given):
    """The names of a (possibly nested: an RNN's states per cell) structure of ``_Value``."""
    if given is None:
        return []
    if isinstance(given, (list, tuple)):
        return [name for g in given for name in _flat(g)]
    return [given.name]


def _call_inputs(b, layer):
    """(initial states, the mask the call runs on) of the call being converted."""
    initial = _flat(b.call_tensors.get("initial_state"))
    # As gpu_dl (functional.py) and Keras: a call given initial_state tensors is not handed its input's mask.
    return initial, None if initial and not b.mask_given else b.mask


def _kind(layer):
    from ..layers import recurrent
    for cls in (recurrent.LSTM, recurrent.GRU, recurrent.SimpleRNN):
        if isinstance(layer, cls):
            return cls.__name__
    return None


def _state_shapes(layer, x):
    """The states' shapes for input ``x``: (batch, units) each, a ConvLSTM's (batch, ...) in its data format."""
    from ..layers.conv_lstm import ConvLSTM
    if isinstance(layer, ConvLSTM):
        shape = layer._moved((None,) + tuple(x.shape[1:]), 2, True)
        return [layer._given_format(layer._state_shape(shape), 1)] * 2
    sizes = layer._loop.sizes if getattr(layer, "_loop", None) is not None else [layer.units] * layer.state_count
    return [(None, size) for size in sizes]


def _state_labels(layer):
    """state_h, state_c; an RNN over a cell of the user's own: state_0, state_1, ..."""
    return [s if s.startswith("state_") else f"state_{s}" for s in layer.state_names]


def _state_inputs(b, layer, x):
    """A stateful layer's carried states as graph inputs."""
    seen = b.__dict__.setdefault("stateful_layers", set())
    if id(layer) in seen:
        # A second call would start from the first one's states, which one pair of graph inputs and outputs
        # per layer cannot say.
        raise _unsupported(layer, "a stateful layer called more than once in the model", "stateful layers called "
                           "once (or a stateless copy called on the model's inputs beside the stateful one)")
    seen.add(id(layer))
    names = []
    for s, shape in zip(_state_labels(layer), _state_shapes(layer, x)):
        name = b.name(f"{layer.name}/{s}")
        b.graph_inputs.append((name, shape))
        names.append(name)
    return names


def _state_outputs(b, layer, x, states):
    for s, shape, state in zip(_state_labels(layer), _state_shapes(layer, x), states):
        name = b.name(f"{layer.name}/{s}_out")
        b.nodes.append(b.onnx.helper.make_node("Identity", [state], [name], name=b.name(f"{name}_node")))
        b.graph_outputs.append((name, shape))


def _scan(b, hint, initial, scanned, step, shapes):
    """A Scan over axis 1 (the steps) of ``scanned`` (names of (batch, steps, ...) tensors) carrying the
    ``initial`` states: (the last states, the sequence (batch, steps, ...) of the first state). ``step(g, states,
    slices)`` adds the body's nodes to the builder ``g`` and gives the new states; ``shapes``: (shape, ONNX element
    type) of each state, then of each slice, which the body declares (ONNX Runtime runs a Scan whose body's
    outputs have known ranks, which shape inference finds only at some opsets)."""
    onnx = b.onnx
    g = _Builder(onnx, b.opset)
    g._used, g.initializers = b._used, b.initializers       # one namespace; constants in the outer graph
    inputs = [g.name(f"{hint}/state") for _ in initial] + [g.name(f"{hint}/step") for _ in scanned]
    new = step(g, inputs[:len(initial)], inputs[len(initial):])
    outputs = new + [g.op("Identity", [new[0]])]
    info = onnx.helper.make_tensor_value_info
    body = onnx.helper.make_graph(
        g.nodes, g.name(f"{hint}_step"), [info(name, kind, shape) for name, (shape, kind) in zip(inputs, shapes)],
        [info(name, kind, shape) for name, (shape, kind) in zip(outputs, shapes[:len(initial)] + shapes[:1])])
    results = b.op("Scan", list(initial) + list(scanned), hint=hint, outputs=len(outputs), body=body,
                   num_scan_inputs=len(scanned), scan_input_axes=[1] * len(scanned), scan_output_axes=[1])
    return results[:-1], results[-1]


def _kept(g, mask, new, old, rank):
    """``new`` where the step's ``mask`` (batch,) is True, else ``old`` (a name, or a number), for tensors of
    ``rank``."""
    keep = g.op("Reshape", [mask, g.ints([-1] + [1] * (rank - 1))])
    return g.op("Where", [keep, new, old if isinstance(old, str) else g.scalar(old)])


def sequence(b, layer, x, mask, initial, backwards=None):
    """``(output, states)`` of the recurrent ``layer`` on ``x`` (a ``_Value``) with ``mask`` (a (batch, steps)
    bool tensor's name or None) from the ``initial`` states (names; none: zeros, or a stateful layer's carried
    states as graph inputs); ``backwards``: whether it reads the steps reversed (its ``go_backwards`` unless
    said)."""
    from ..layers.conv_lstm import ConvLSTM
    from ..layers.rnn_layer import RNN
    if layer.go_backwards if backwards is None else backwards:
        x = _Value(_reversed_steps(b, x.name), x.shape)
        mask = None if mask is None else _reversed_steps(b, mask)
    own_cell = isinstance(layer, RNN) and layer._loop is not None
    if isinstance(layer, RNN) and not own_cell:
        return _cells(b, layer, x, mask, initial)
    if not (own_cell or isinstance(layer, ConvLSTM) or _kind(layer) is not None):
        raise _unsupported(layer, f"a recurrent layer of class {type(layer).__name__}",
                           "LSTM, GRU, SimpleRNN, RNN and ConvLSTM1D/2D/3D")
    if layer.stateful and not initial:
        initial = _state_inputs(b, layer, x)
    run = _cell_loop if own_cell else _conv_lstm if isinstance(layer, ConvLSTM) else _node
    y, states = run(b, layer, x, mask, initial)
    if layer.stateful:
        _state_outputs(b, layer, x, states)
    return y, states


def _node(b, layer, x, mask, initial):
    """LSTM, GRU or SimpleRNN read forward as one ONNX recurrent node."""
    op_type, order = _RNN_NODES[_kind(layer)]
    if mask is not None:
        return _masked_recurrent(b, layer, x, mask, op_type, order, initial)
    sequence_out, *states = _rnn_node(b, layer, x, op_type, order, [layer], initial=initial)
    if layer.return_sequences:
        y = b.transpose(b.op("Squeeze", [sequence_out, b.ints([1])]), [1, 0, 2])
    else:
        y = b.op("Squeeze", [states[0], b.ints([0])])
    return y, [b.op("Squeeze", [s, b.ints([0])]) for s in states]


def _cells(b, layer, x, mask, initial):
    """``RNN`` of built-in cells: the layers gpu_dl runs for them, one after the other, read forward (the steps
    are already in the order the first reads them)."""
    states, start = [], 0
    last = len(layer._layers) - 1
    for i, sub in enumerate(layer._layers):
        count = sub.state_count
        # As the RNN's call sets it: only the last layer's output is the RNN's.
        sub.zero_output_for_mask = layer.zero_output_for_mask if i == last else False
        y, sub_states = sequence(b, sub, x, mask, initial[start:start + count], backwards=False)
        start += count
        states += sub_states
        x = _Value(y, (None, None, sub.units))
    return y, states


def _zeros(b, x, sizes):
    """Zeros (batch, *sizes) for the batch of ``x``."""
    batch = b.op("Slice", [b.op("Shape", [x]), b.ints([0]), b.ints([1])])
    return b.op("ConstantOfShape", [b.op("Concat", [batch, b.ints(sizes)], axis=0)],
                value=b.onnx.numpy_helper.from_array(numpy.zeros((1,), numpy.float32)))


def _cell_loop(b, layer, x, mask, initial):
    """``RNN`` over a cell of the user's own (``layers/cell_loop.py``) read forward: a Scan whose body is the graph
    its step's call traced to, carrying the output before (which a masked step repeats) and the states."""
    from . import composite
    from ..layers import layer_losses, metric_updates
    loop = layer._loop
    cells = layer.cell.cells if hasattr(layer.cell, "cells") else [layer.cell]
    if not initial and any(getattr(type(c), "get_initial_state", None) is not None for c in cells):
        raise _unsupported(layer, f"the states its cell {type(layer.cell).__name__}'s get_initial_state gives",
                           "cells of your own starting from zeros or from initial_state tensors")
    features = x.shape[-1]
    # The step's inference graph: one call on zeros traces it where the last call was a training one.
    zeros = numpy.zeros((1, features), numpy.float32)
    with layer_losses.dropped_losses(), metric_updates.updates_suppressed():
        loop.step(zeros, [numpy.zeros((1, u), numpy.float32) for u in loop.sizes], training=False)
    graph = composite.active_graph(loop.step)
    if graph is None:
        why = loop.step.__dict__.get("_trace_error") or "it never ran"
        raise ValueError(f"Layer '{layer.name}' (RNN) cannot be exported to ONNX: the call of its cell "
                         f"{type(layer.cell).__name__} did not trace to a graph of layers ({why}).")
    initial = list(initial) or [_zeros(b, x.name, [u]) for u in loop.sizes]

    def step(g, states, slices):
        previous, old = states[0], states[1:]
        output, *new = (v.name for v in _emit_model(g, graph, [_Value(slices[0], (None, features))] +
                                                      [_Value(s, (None, u)) for s, u in zip(old, loop.sizes)]))
        if len(slices) > 1:     # a masked step keeps the states and repeats the output before (or gives zeros)
            new = [_kept(g, slices[1], n, o, 2) for n, o in zip(new, old)]
            output = _kept(g, slices[1], output, 0.0 if layer.zero_output_for_mask else previous, 2)
        return [g.op("Identity", [output])] + [g.op("Identity", [n]) for n in new]
    f32 = b.onnx.TensorProto.FLOAT
    shapes = [([None, u], f32) for u in [loop.output_size] + list(loop.sizes)]
    (last, *states), sequence_out = _scan(
        b, layer.name, [_zeros(b, x.name, [loop.output_size])] + initial,
        [x.name] + ([mask] if mask is not None else []), step,
        shapes + [([None, features], f32), ([None], b.onnx.TensorProto.BOOL)])
    return b.op("Identity", [sequence_out if layer.return_sequences else last], hint=layer.name), states


def recurrent_layer(b, layer, xs):
    """LSTM, GRU, SimpleRNN, RNN and the ConvLSTMs: the output, and the states after it with ``return_state``."""
    initial, mask = _call_inputs(b, layer)
    y, states = sequence(b, layer, xs[0], mask, initial)
    b.out_mask = b.mask if layer.return_sequences else None
    return [y] + states if layer.return_state else y


def bidirectional(b, layer, xs):
    """Bidirectional: one bidirectional ONNX node where it can be, else each direction as the layer it is."""
    from . import onnx_export
    forward, backward = layer.forward_layer, layer.backward_layer
    initial, mask = _call_inputs(b, layer)
    if not initial and not layer.stateful and type(forward).__name__ in _RNN_NODES and \
            type(backward) is type(forward) and not forward.go_backwards and backward.go_backwards and \
            forward.units == backward.units:
        return onnx_export._bidirectional(b, layer, xs)
    x = xs[0]
    count = forward.state_count
    y_f, states_f = sequence(b, forward, x, mask, initial[:count])
    y_b, states_b = sequence(b, backward, x, mask, initial[count:])
    if layer.return_sequences:
        y_b = _reversed_steps(b, y_b)
    return _bidirectional_merge(b, layer, y_f, y_b, states_f, states_b)


# ---------------------------------------------------------------------------------------------- ConvLSTM
def _channels_first(layer, rank):
    """The permutation of a tensor of ``rank`` (batch, ..., channels) in the layer's data format to ONNX's
    (batch, channels, ...)."""
    if layer.data_format == "channels_first":
        return list(range(rank))
    return [0, rank - 1] + list(range(1, rank - 1))


def _conv_kernel(kernel):
    """A Keras kernel kernel_size + (in, out) as ONNX's Conv takes it: (out, in) + kernel_size."""
    r = kernel.ndim - 2
    return kernel.transpose((r + 1, r) + tuple(range(r)))


def _conv_lstm(b, layer, x, mask, initial):
    """ConvLSTM read forward: one Conv of every step's input, then a Scan of the recurrent Conv and the gates."""
    r = layer.rank
    w = _weights(layer)
    filters = layer.filters
    shape = layer._moved(tuple(x.shape), 2, True)       # (batch, time, *spatial, channels)
    args, out = layer._geometry(shape)
    out, pads = layer._layer_axes(out), layer._layer_axes(args["padding"])
    # Every step's input as (batch * time, channels, *spatial), convolved at once.
    steps = b.transpose(x.name, [0, 1] + [1 + p for p in _channels_first(layer, r + 2)[1:]])
    folded = b.op("Reshape", [steps, b.ints([-1, shape[-1]] + list(shape[2:-1]))])
    conv_inputs = [folded, b.const(_conv_kernel(w["kernel"]), f"{layer.name}/kernel")]
    if layer.use_bias:
        conv_inputs.append(b.const(w["bias"], f"{layer.name}/bias"))
    xw = b.op("Conv", conv_inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
              dilations=list(layer.dilation_rate), pads=[p[0] for p in pads] + [p[1] for p in pads])
    batch_time = b.op("Slice", [b.op("Shape", [x.name]), b.ints([0]), b.ints([2])])
    xw = b.op("Reshape", [xw, b.op("Concat", [batch_time, b.ints([4 * filters] + list(out))], axis=0)])
    # The states in ONNX's layout (batch, filters, *out).
    to_onnx = _channels_first(layer, r + 2)
    if initial:
        h0, c0 = (b.transpose(s, to_onnx) for s in initial)
    else:
        h0 = c0 = _zeros(b, x.name, [filters] + list(out))
    f32 = b.onnx.TensorProto.FLOAT
    state = ([None, filters] + list(out), f32)
    (h_last, c_last), h_seq = _scan(
        b, layer.name, [h0, c0], [xw] + ([mask] if mask is not None else []),
        lambda g, states, slices: _conv_lstm_step(g, layer, states, slices),
        [state, state, ([None, 4 * filters] + list(out), f32), ([None], b.onnx.TensorProto.BOOL)])
    # gpu_dl's outputs: a masked step repeats the output before (zeros before the first), or gives zeros.
    keep = None
    if mask is not None:
        keep = b.op("Cast", [mask], to=b.onnx.TensorProto.FLOAT)
        if not layer.zero_output_for_mask:
            keep = b.op("Cast", [b.op("Greater", [b.op("CumSum", [keep, b.ints([1])]), b.scalar(0.0)])],
                        to=b.onnx.TensorProto.FLOAT)
        keep = b.op("Unsqueeze", [keep, b.ints(list(range(2, 3 + r)))])       # (batch, time, 1, ...)
    back = [int(i) for i in numpy.argsort(to_onnx)]
    if layer.return_sequences:
        y = h_seq if keep is None else b.op("Mul", [h_seq, keep])
        y = b.transpose(y, [0, 1] + [1 + p for p in back[1:]])
    else:
        y = h_last
        if keep is not None:
            y = b.op("Mul", [y, b.op("Squeeze", [b.op("Slice", [keep, b.ints([-1]), b.ints([_INT64_MAX]),
                                                                 b.ints([1])]), b.ints([1])])])
        y = b.transpose(y, back)
    return b.op("Identity", [y], hint=layer.name), [b.transpose(s, back) for s in (h_last, c_last)]


def _conv_lstm_step(g, layer, states, slices):
    """The Scan's body: (h, c), (the step's input convolution[, its mask]) -> (h, c), each (batch, filters, *out)
    in ONNX's layout; Keras's gates i, f, c, o, and a masked step keeps h and c."""
    r = layer.rank
    (h, c), xw_t = states, slices[0]
    recurrent = _conv_kernel(_weights(layer)["recurrent_kernel"])
    # The recurrent convolution: stride 1, Keras's "same" (the odd pad at the end).
    totals = [k - 1 for k in layer.kernel_size]
    z = g.op("Add", [xw_t, g.op("Conv", [h, g.const(recurrent, f"{layer.name}/recurrent_kernel")],
                                  kernel_shape=list(layer.kernel_size),
                                  pads=[t // 2 for t in totals] + [t - t // 2 for t in totals])])
    zi, zf, zc, zo = g.op("Split", [z, g.ints([layer.filters] * 4)], outputs=4, axis=1)
    i, f, o = (_activation(g, t, layer.recurrent_activation, layer) for t in (zi, zf, zo))
    c_new = g.op("Add", [g.op("Mul", [f, c]), g.op("Mul", [i, _activation(g, zc, layer.activation, layer)])])
    h_new = g.op("Mul", [o, _activation(g, c_new, layer.activation, layer)])
    if len(slices) > 1:
        return [_kept(g, slices[1], new, old, r + 2) for new, old in ((h_new, h), (c_new, c))]
    return [h_new, c_new]


def converters():
    """class -> conversion, for ``onnx_export``'s table."""
    from ..layers import bidirectional as bi, conv_lstm, recurrent, rnn_layer
    table = {cls: recurrent_layer for cls in (recurrent.LSTM, recurrent.GRU, recurrent.SimpleRNN, rnn_layer.RNN,
                                              conv_lstm.ConvLSTM1D, conv_lstm.ConvLSTM2D, conv_lstm.ConvLSTM3D)}
    table[bi.Bidirectional] = bidirectional
    return table
