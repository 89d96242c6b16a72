"""``model.export(path, format="onnx")`` of the recurrent layers beyond one ONNX node each: ``RNN`` over built-in
cells (one, a list, StackedRNNCells), ``go_backwards``, Bidirectional with ``initial_state`` and over any
recurrent layer, ConvLSTM1D/2D/3D (a Scan), masks, and stateful layers' states as graph inputs and outputs. The
file, run in ONNX Runtime at other batch sizes and sequence lengths (1 and 17) than the model ran with, gives what
the model's own predict gives; Keras 3.15 as the oracle for the same weights (the helpers are
test_onnx_export.py's)."""
import os

import numpy
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import gpu_dl  # noqa: E402
from gpu_dl import activations, layers  # noqa: E402
import test_onnx_export  # noqa: E402
from test_onnx_export import _feeds, _session, assert_gives_predict, exported, normal  # noqa: E402
from test_onnx_export_masks import file_against_keras, masked_values  # noqa: E402
from test_onnx_export_ops import padded_ids  # noqa: E402

exact_convolutions = test_onnx_export.exact_convolutions    # the autouse fixture: float32 GPU convolutions here too
fresh_names = __import__("test_onnx_export_masks").fresh_names

LENGTHS = (1, 17)


def _randomize(model, seed=1, scale=0.5):
    rng = numpy.random.default_rng(seed)
    model.set_weights([rng.normal(scale=scale, size=w.shape).astype(w.dtype) for w in model.get_weights()])


def runs_as_predict(model, make_inputs, tmp_path, atol=2e-5, **kwargs):
    """The file, exported once (with ``kwargs``), gives what ``model.predict`` gives for each list of input arrays
    ``make_inputs(batch, steps)`` at batches 1 and 5 and sequence lengths ``LENGTHS``."""
    session = _session(exported(model, tmp_path, **kwargs))
    for n in (1, 5):
        for steps in LENGTHS:
            assert_gives_predict(session, model, make_inputs(n, steps), atol=atol)
    return session


def steps_of(features):
    return lambda n, steps: normal((steps,) + tuple(features))(n)


def ids_of(n, steps):
    return padded_ids(steps)(n)


# ---------------------------------------------------------------------------------------------- RNN(cell)
CELLS = {
    "simple_1": lambda: layers.SimpleRNNCell(1),
    "lstm_3": lambda: layers.LSTMCell(3),
    "gru_5": lambda: layers.GRUCell(5, activation="relu"),
    "gru_reset_before": lambda: layers.GRUCell(3, reset_after=False, use_bias=False),
    "list": lambda: [layers.LSTMCell(3), layers.GRUCell(1)],
    "stacked": lambda: layers.StackedRNNCells([layers.SimpleRNNCell(2), layers.LSTMCell(3), layers.GRUCell(5)]),
}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("return_sequences, go_backwards", [(False, False), (True, False), (True, True),
                                                            (False, True)])
def test_rnn_of_cells(xp, cell, return_sequences, go_backwards, tmp_path):
    x = gpu_dl.Input((None, 3))
    out = layers.RNN(CELLS[cell](), return_sequences=return_sequences, go_backwards=go_backwards,
                     return_state=True)(x)
    model = gpu_dl.Model(x, _flat(out))
    _randomize(model)
    session = runs_as_predict(model, steps_of((3,)), tmp_path)
    states = sum(2 if isinstance(c, layers.LSTMCell) else 1 for c in _cells(CELLS[cell]()))
    assert len(session.get_outputs()) == 1 + states


def _flat(structure):
    return [t for s in structure for t in (_flat(s) if isinstance(s, (list, tuple)) else [s])]


def _cells(cell):
    return cell if isinstance(cell, list) else cell.cells if isinstance(cell, layers.StackedRNNCells) else [cell]


@pytest.mark.parametrize("cell", ["lstm_3", "list", "stacked"])
@pytest.mark.parametrize("go_backwards, zero_output", [(False, False), (True, False), (True, True)])
def test_masked_rnn_of_cells(xp, cell, go_backwards, zero_output, tmp_path):
    """Embedding(mask_zero=True) into an RNN over cells: padding at either end, holes, a sample of padding alone;
    the sequence's mask reaches the GRU after it."""
    ids = gpu_dl.Input((None,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=True)(ids)
    sequence = layers.RNN(CELLS[cell](), return_sequences=True, go_backwards=go_backwards,
                          zero_output_for_mask=zero_output)(h)
    last = layers.RNN(CELLS[cell](), go_backwards=go_backwards)(h)
    model = gpu_dl.Model(ids, [sequence, last, layers.GRU(2)(sequence)])
    _randomize(model, seed=2)
    runs_as_predict(model, ids_of, tmp_path)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("nested", [False, True])
def test_rnn_of_cells_from_initial_states(xp, masked, nested, tmp_path):
    """An encoder RNN of two cells hands its states to a decoder of the same cells, nested per cell (Keras's form)
    or flat; the decoder runs every step (a call given initial_state is not handed the mask)."""
    ids = gpu_dl.Input((None,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=masked)(ids)
    _, first, second = layers.RNN([layers.LSTMCell(3), layers.GRUCell(2)], return_state=True)(h)
    states = [first, second] if nested else list(first) + [second]
    decoded = layers.RNN([layers.LSTMCell(3), layers.GRUCell(2)], return_sequences=True,
                         go_backwards=True)(h, initial_state=states)
    model = gpu_dl.Model(ids, [decoded, layers.SimpleRNN(2)(decoded)])
    _randomize(model, seed=3)
    runs_as_predict(model, ids_of, tmp_path)


# ---------------------------------------------------------------------------------------------- go_backwards
@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU, layers.SimpleRNN,
                                 lambda units, **kw: layers.GRU(units, reset_after=False, **kw)],
                         ids=["lstm", "gru", "simple_rnn", "gru_reset_before"])
@pytest.mark.parametrize("masked", [False, True])
def test_go_backwards(xp, rnn, masked, tmp_path):
    """The sequence output in the order read (the last step first), as Keras gives it; the states; the last
    output; zero_output_for_mask; the mask on to the next layer."""
    ids = gpu_dl.Input((None,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=masked)(ids)
    sequence, *states = rnn(5, return_sequences=True, return_state=True, go_backwards=True)(h)
    zeroed = rnn(1, return_sequences=True, go_backwards=True, zero_output_for_mask=True)(h)
    model = gpu_dl.Model(ids, [sequence, rnn(3, go_backwards=True)(h), zeroed, layers.LSTM(2)(sequence)] + states)
    _randomize(model, seed=4)
    runs_as_predict(model, ids_of, tmp_path)


def test_go_backwards_puts_the_last_step_first(xp, tmp_path):
    """A SimpleRNN of identity weights and relu sums positive steps: read backwards, its first output is the last
    step."""
    model = gpu_dl.Sequential([layers.Input((None, 2)), layers.SimpleRNN(2, activation="relu", use_bias=False,
                                                                         return_sequences=True, go_backwards=True)])
    model.set_weights([numpy.eye(2, dtype="float32"), numpy.eye(2, dtype="float32")])
    session = _session(exported(model, tmp_path))
    x = numpy.arange(12, dtype="float32").reshape(1, 6, 2)
    got = session.run(None, _feeds(session, [x]))[0]
    numpy.testing.assert_allclose(got, numpy.cumsum(x[:, ::-1], axis=1))


@pytest.mark.parametrize("make", [
    lambda: layers.LSTM(3, recurrent_activation="hard_sigmoid", activation="softsign", return_sequences=True),
    lambda: layers.GRU(5, recurrent_activation="hard_sigmoid", activation="linear", reset_after=False),
    lambda: layers.GRU(1, activation="softplus", go_backwards=True),
    lambda: layers.SimpleRNN(3, activation="elu", return_sequences=True),
    lambda: layers.SimpleRNN(3, activation=activations.make("leaky_relu", negative_slope=0.1)),
    lambda: layers.Bidirectional(layers.LSTM(3, recurrent_activation="hard_sigmoid", activation="linear")),
    lambda: layers.RNN(layers.LSTMCell(2, recurrent_activation="hard_sigmoid",
                                       activation=activations.make("elu", alpha=0.5))),
], ids=["lstm", "gru_reset_before", "gru_backwards", "simple_rnn_elu", "simple_rnn_leaky", "bidirectional",
        "rnn_of_cell"])
@pytest.mark.parametrize("masked", [False, True])
def test_activations_of_the_onnx_nodes(xp, make, masked, tmp_path):
    """The activations ONNX's recurrent nodes take beyond sigmoid, tanh and relu (Keras 3's hard_sigmoid, linear,
    softsign, softplus, elu, leaky_relu), some with an alpha and a beta."""
    ids = gpu_dl.Input((None,), dtype="int32")
    model = gpu_dl.Model(ids, make()(layers.Embedding(7, 3, mask_zero=masked)(ids)))
    _randomize(model, seed=11, scale=1.0)
    runs_as_predict(model, ids_of, tmp_path)


# ---------------------------------------------------------------------------------------------- Bidirectional
@pytest.mark.parametrize("rnn", [layers.LSTM, layers.GRU, layers.SimpleRNN])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("merge_mode", ["concat", None])
def test_bidirectional_from_initial_states(xp, rnn, masked, merge_mode, tmp_path):
    """initial_state: the forward layer's states, then the backward layer's (here another Bidirectional's)."""
    ids = gpu_dl.Input((None,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=masked)(ids)
    _, *states = layers.Bidirectional(rnn(3, return_state=True))(h)
    out = layers.Bidirectional(rnn(3, return_sequences=True, return_state=True), merge_mode=merge_mode)(
        h, initial_state=states)
    # The backward layer's states start the forward one and the other way round, in a Bidirectional of last outputs.
    model = gpu_dl.Model(ids, list(out) + [layers.Bidirectional(rnn(3))(h, initial_state=states[::-1])])
    _randomize(model, seed=5)
    runs_as_predict(model, ids_of, tmp_path)


BIDIRECTIONALS = {
    "rnn_of_cells": lambda: layers.Bidirectional(layers.RNN([layers.GRUCell(3), layers.LSTMCell(2)],
                                                            return_sequences=True)),
    "forward_reads_backwards": lambda: layers.Bidirectional(layers.LSTM(3, return_sequences=True,
                                                                        go_backwards=True), merge_mode="sum"),
    "lstm_and_gru": lambda: layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode="mul",
                                                 backward_layer=layers.GRU(3, return_sequences=True,
                                                                           go_backwards=True)),
    "last_of_different_units": lambda: layers.Bidirectional(
        layers.SimpleRNN(3), backward_layer=layers.GRU(1, go_backwards=True)),
}


@pytest.mark.parametrize("name", BIDIRECTIONALS)
@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_of_other_layers(xp, name, masked, tmp_path):
    ids = gpu_dl.Input((None,), dtype="int32")
    h = layers.Embedding(7, 4, mask_zero=masked)(ids)
    out = BIDIRECTIONALS[name]()(h)
    outputs = [out] + ([layers.GRU(2)(out)] if len(out.shape) == 3 else [])
    model = gpu_dl.Model(ids, outputs)
    _randomize(model, seed=6)
    runs_as_predict(model, ids_of, tmp_path)


# ---------------------------------------------------------------------------------------------- ConvLSTM
CONV_LSTMS = {
    "2d_same": (lambda: layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True), (5, 4, 2)),
    "2d_valid_strides": (lambda: layers.ConvLSTM2D(1, (2, 3), strides=(2, 1), use_bias=False), (5, 6, 3)),
    "2d_dilated_backwards": (lambda: layers.ConvLSTM2D(2, 2, dilation_rate=2, go_backwards=True,
                                                       return_sequences=True, activation="relu"), (6, 5, 1)),
    "2d_channels_first": (lambda: layers.ConvLSTM2D(3, 3, padding="same", data_format="channels_first",
                                                    return_sequences=True, recurrent_activation="hard_sigmoid"),
                          (2, 5, 4)),
    "1d": (lambda: layers.ConvLSTM1D(5, 3, padding="same", activation="gelu"), (7, 2)),
    "1d_even_kernel": (lambda: layers.ConvLSTM1D(2, 4, padding="same", go_backwards=True), (6, 3)),
    "1d_channels_first": (lambda: layers.ConvLSTM1D(2, 2, data_format="channels_first", return_sequences=True),
                          (3, 6)),
    "3d": (lambda: layers.ConvLSTM3D(2, 2, padding="same", return_sequences=True), (3, 4, 3, 1)),
}


@pytest.mark.parametrize("name", CONV_LSTMS)
def test_conv_lstm(xp, name, tmp_path):
    make, shape = CONV_LSTMS[name]
    x = gpu_dl.Input((None,) + shape)
    layer = make()
    out, *states = type(layer).from_config({**layer.get_config(), "return_state": True})(x)
    model = gpu_dl.Model(x, [out, make()(x)] + states)
    _randomize(model, seed=7)
    runs_as_predict(model, steps_of(shape), tmp_path)


@pytest.mark.parametrize("opset", [13, 20])
def test_opsets(xp, opset, tmp_path):
    """A ConvLSTM's Scan (its body's shapes declared, as ONNX Runtime needs at the older opsets), a Bidirectional
    of ConvLSTMs and an RNN of cells read backwards."""
    x = gpu_dl.Input((None, 5, 4, 2))
    h = layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(x)
    h = layers.Bidirectional(layers.ConvLSTM2D(2, 2, return_sequences=True), merge_mode="sum")(h)
    h = layers.TimeDistributed(layers.Flatten())(h)
    model = gpu_dl.Model(x, layers.RNN([layers.LSTMCell(3), layers.GRUCell(2)], go_backwards=True)(h))
    _randomize(model, seed=10)
    runs_as_predict(model, steps_of((5, 4, 2)), tmp_path, opset_version=opset)
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == opset


@pytest.mark.parametrize("zero_output", [False, True])
def test_conv_lstm_masked_and_from_initial_states(xp, zero_output, tmp_path):
    """A mask given to the call (a bool input: padding at either end, holes, a sample of none) and initial states
    from another input; a sample of no step keeps its initial states."""
    x, given = gpu_dl.Input((None, 4, 3, 2)), gpu_dl.Input((None,), dtype="bool")
    start = gpu_dl.Input((4, 3, 3))
    layer = layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True, return_state=True,
                              zero_output_for_mask=zero_output)
    out, h, c = layer(x, mask=given, initial_state=[start, layers.Dense(3)(start)])
    last = layers.ConvLSTM2D(2, 3, zero_output_for_mask=zero_output)(x, mask=given)
    model = gpu_dl.Model([x, given, start], [out, h, c, last])
    _randomize(model, seed=8)

    def make(n, steps):
        rng = numpy.random.default_rng(n + steps)
        keep = rng.random((n, steps)) > 0.4
        keep[0] = False
        return normal((steps, 4, 3, 2))(n) + [keep] + normal((4, 3, 3), seed=3)(n)
    runs_as_predict(model, make, tmp_path)


# ---------------------------------------------------------------------------------------------- stateful
STATEFUL = {
    "lstm": lambda: layers.LSTM(3, stateful=True, return_sequences=True),
    "gru_backwards": lambda: layers.GRU(1, stateful=True, go_backwards=True),
    "simple_rnn": lambda: layers.SimpleRNN(5, stateful=True),
    "rnn_of_cells": lambda: layers.RNN([layers.LSTMCell(2), layers.GRUCell(3)], stateful=True,
                                       return_sequences=True),
    "bidirectional": lambda: layers.Bidirectional(layers.GRU(3, stateful=True)),
    "conv_lstm": lambda: layers.ConvLSTM1D(2, 3, padding="same", stateful=True),
}


@pytest.mark.parametrize("name", STATEFUL)
@pytest.mark.parametrize("masked", [False, True])
def test_stateful_layers_take_and_give_their_states(xp, name, masked, tmp_path):
    """A stateful layer's states are inputs after the model's and outputs after its: the file fed zeros, then
    each run's states, gives what consecutive predicts give; fed the layer's states, what the next one gives."""
    features = (4, 2) if name == "conv_lstm" else (3,)
    x = gpu_dl.Input((6,) + features, batch_size=2)
    h = layers.Masking(-1.0)(x) if masked and name != "conv_lstm" else x
    layer = STATEFUL[name]()
    model = gpu_dl.Model(x, layers.Dense(2)(layer(h)))
    _randomize(model, seed=9)
    layer.reset_state()
    session = _session(exported(model, tmp_path))
    inputs = session.get_inputs()
    assert [i.name.split("/")[-1] for i in inputs[1:]] == [f"state_{s}" for s in _state_letters(layer)]
    assert [o.name for o in session.get_outputs()[1:]] == [f"{i.name}_out" for i in inputs[1:]]
    make = masked_values(6, features[-1]) if masked and name != "conv_lstm" else None
    batches = [(make(2)[0] if make else normal((6,) + features, seed=s)(2)[0]) for s in (0, 1, 2)]
    states = [numpy.zeros([2] + list(i.shape[1:]), "float32") for i in inputs[1:]]
    for batch in batches[:2]:
        got, *states = session.run(None, _feeds(session, [batch] + states))
        numpy.testing.assert_allclose(got, model.predict(batch, verbose=0), rtol=1e-5, atol=2e-5)
    carried = [s.numpy() for s in _carried(layer)]
    for held, fed in zip(carried, states):
        numpy.testing.assert_allclose(fed, held, rtol=1e-5, atol=2e-5)
    got = session.run(None, _feeds(session, [batches[2]] + carried))[0]
    numpy.testing.assert_allclose(got, model.predict(batches[2], verbose=0), rtol=1e-5, atol=2e-5)


def _state_letters(layer):
    if isinstance(layer, layers.Bidirectional):
        return list(layer.forward_layer.state_names) + list(layer.backward_layer.state_names)
    return list(layer.state_names)


def _carried(layer):
    states = layer.states
    return _flat(states)


# ---------------------------------------------------------------------------------------------- cells of one's own
class MinimalCell(layers.Layer):
    """Keras's guide's cell: one state, the output is the state."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], self.units))
        self.recurrent_kernel = self.add_weight((self.units, self.units))

    def call(self, inputs, states):
        h = gpu_dl.ops.matmul(inputs, self.kernel) + gpu_dl.ops.matmul(states[0], self.recurrent_kernel)
        return gpu_dl.ops.tanh(h), [gpu_dl.ops.tanh(h)]


class TwoStateCell(layers.Layer):
    """Two states of other sizes than the output, an activation layer and a sum of the steps."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.state_size = [3, 1]
        self.output_size = 2
        self.dense = layers.Dense(3, activation="sigmoid")

    def build(self, input_shape):
        self.kernel = self.add_weight((3, 2))

    def call(self, inputs, states):
        h = self.dense(gpu_dl.ops.concatenate([inputs, states[0]], axis=-1))
        total = states[1] + gpu_dl.ops.sum(inputs, axis=-1, keepdims=True)
        return gpu_dl.ops.matmul(h, self.kernel) * total, [h, total]


OWN_CELLS = {
    "minimal_1": lambda: MinimalCell(1),
    "two_states": TwoStateCell,
    "stacked": lambda: [MinimalCell(3), TwoStateCell()],
}


@pytest.mark.parametrize("cell", OWN_CELLS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_rnn_of_cells_of_ones_own(xp, cell, masked, go_backwards, tmp_path):
    """A Scan over the graph the cell's call traced to: the last output, the sequence (zeros at masked steps with
    zero_output_for_mask), the states, and a decoder started from them."""
    ids = gpu_dl.Input((None,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=masked)(ids)
    last, *states = layers.RNN(OWN_CELLS[cell](), return_state=True, go_backwards=go_backwards)(h)
    sequence = layers.RNN(OWN_CELLS[cell](), return_sequences=True, zero_output_for_mask=True,
                          go_backwards=go_backwards)(h)
    decoded = layers.RNN(OWN_CELLS[cell](), return_sequences=True)(h, initial_state=_flat(states))
    model = gpu_dl.Model(ids, [last, sequence, decoded] + _flat(states))
    _randomize(model, seed=12)
    runs_as_predict(model, ids_of, tmp_path)


def test_stateful_rnn_of_a_cell_of_ones_own(xp, tmp_path):
    x = gpu_dl.Input((5, 3), batch_size=2)
    layer = layers.RNN(TwoStateCell(), stateful=True)
    model = gpu_dl.Model(x, layer(x))
    _randomize(model, seed=13)
    session = _session(exported(model, tmp_path))
    assert [i.name for i in session.get_inputs()[1:]] == [f"{layer.name}/state_{i}" for i in (0, 1)]
    states = [numpy.zeros((2, 3), "float32"), numpy.zeros((2, 1), "float32")]
    layer.reset_state()
    for seed in (0, 1):
        batch = normal((5, 3), seed=seed)(2)[0]
        got, *states = session.run(None, _feeds(session, [batch] + states))
        numpy.testing.assert_allclose(got, model.predict(batch, verbose=0), rtol=1e-5, atol=2e-5)


# ---------------------------------------------------------------------------------------------- refusals
class OnesStartCell(MinimalCell):
    def get_initial_state(self, batch_size=None):
        return [numpy.ones((batch_size, self.units), "float32")]


def test_what_stays_refused_writes_nothing(xp, tmp_path):
    for made, what in ((layers.RNN(OnesStartCell(2)), "the states its cell OnesStartCell's get_initial_state"),
                       (layers.LSTM(2, go_backwards=True, recurrent_activation="gelu"), "activation 'gelu'"),
                       (layers.GRU(2, activation=lambda x: x * 2), "activation '<lambda>'"),
                       (layers.Bidirectional(layers.RNN(layers.SimpleRNNCell(2, activation="selu"))),
                        "activation 'selu'")):
        model = gpu_dl.Sequential([layers.Input((4, 3)), made])
        with pytest.raises(ValueError, match=f"Layer '\\w+' cannot be exported to ONNX: {what}"):
            model.export(tmp_path / "no.onnx", format="onnx")
    assert not os.listdir(tmp_path)
    x = gpu_dl.Input((4, 3), batch_size=2)
    shared = layers.GRU(2, stateful=True)
    model = gpu_dl.Model(x, layers.Add()([shared(x), shared(x)]))
    with pytest.raises(ValueError, match=f"Layer '{shared.name}' cannot be exported to ONNX: a stateful layer called "
                                         "more than once"):
        model.export(tmp_path / "no.onnx", format="onnx")
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------------------------- Keras as the oracle
def test_recurrent_file_against_keras(on_cpu, tmp_path):
    """Keras 3.15 (torch backend), given the same weights, predicts what the file gives: an RNN of stacked cells
    read backwards, a Bidirectional of it, a masked LSTM read backwards, an RNN over a cell of one's own (masked,
    backwards), a ConvLSTM2D and a ConvLSTM1D read backwards."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    keras.backend.clear_session()

    def make(lib):
        class Cell(lib.layers.Layer):
            state_size = 2

            def build(self, input_shape):
                self.kernel = self.add_weight(shape=(input_shape[-1], 2))
                self.recurrent_kernel = self.add_weight(shape=(2, 2))

            def call(self, inputs, states):
                h = lib.ops.tanh(lib.ops.matmul(inputs, self.kernel) + lib.ops.matmul(states[0],
                                                                                      self.recurrent_kernel))
                return h * 2, [h]

        ids, images = lib.Input((7,), dtype="int32"), lib.Input((5, 4, 3, 2))
        h = lib.layers.Embedding(7, 3, mask_zero=True)(ids)
        stacked = lib.layers.RNN([lib.layers.LSTMCell(3), lib.layers.GRUCell(2)], return_sequences=True,
                                 go_backwards=True)(h)
        both = lib.layers.Bidirectional(lib.layers.RNN(lib.layers.SimpleRNNCell(2), return_sequences=True))(h)
        backwards = lib.layers.LSTM(3, go_backwards=True, return_sequences=True)(h)
        own = lib.layers.RNN(Cell(), go_backwards=True, return_sequences=True)(h)
        conv = lib.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(images)
        conv1d = lib.layers.ConvLSTM1D(2, 2, strides=2, go_backwards=True)(images[:, :, 0])
        return lib.Model([ids, images], [stacked, both, backwards, own, conv, conv1d])

    assert len(file_against_keras(keras, make, padded_ids(7)(5) + normal((5, 4, 3, 2))(5), 13, tmp_path)) == 6
