"""The recurrent and attention layers' seed state against Keras 3 itself (where Keras is installed): the RNN cells
(and so SimpleRNN, LSTM, GRU, ConvLSTM, RNN and Bidirectional) always hold a SeedGenerator, Attention and
AdditiveAttention one with dropout above 0, and MultiHeadAttention and GroupQueryAttention one in their dropout
sublayer; their ``variables`` list the seed states where Keras's do, each call moves them as Keras's calls do
(recurrent layers in inference too), and weight files leave them out and load both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from keras_steps import assert_seed_states_stay_out_of_weight_files, seed_generator_attributes  # noqa: E402
from keras_steps import seed_states as states  # noqa: E402

SEQUENCE = (2, 4, 5)
IMAGES = (2, 3, 5, 5, 1)


def counters(lib, layer):
    return [s[3][1] for s in states(lib, layer) if s[3] is not None]


RECURRENT = {
    "SimpleRNN": lambda lib, **kw: lib.layers.SimpleRNN(3, **kw),
    "LSTM": lambda lib, **kw: lib.layers.LSTM(3, **kw),
    # (Keras 3.15 fails a training call of implementation 1 with dropout on its cuDNN path: use_cudnn=False)
    "LSTM-implementation-1": lambda lib, **kw: lib.layers.LSTM(3, implementation=1, use_cudnn=False, **kw),
    "GRU": lambda lib, **kw: lib.layers.GRU(3, **kw),
    "GRU-reset-before": lambda lib, **kw: lib.layers.GRU(3, reset_after=False, **kw),
    "ConvLSTM2D": lambda lib, **kw: lib.layers.ConvLSTM2D(2, 3, **kw),
    "ConvLSTM1D": lambda lib, **kw: lib.layers.ConvLSTM1D(2, 3, **kw),
    "Bidirectional": lambda lib, **kw: lib.layers.Bidirectional(lib.layers.LSTM(3, **kw)),
    "RNN": lambda lib, **kw: lib.layers.RNN(lib.layers.GRUCell(3, **kw)),
    "RNN-stacked": lambda lib, **kw: lib.layers.RNN([lib.layers.LSTMCell(3, **kw), lib.layers.SimpleRNNCell(2, **kw)]),
}
RATES = [{}, {"dropout": 0.2}, {"recurrent_dropout": 0.3}, {"dropout": 0.2, "recurrent_dropout": 0.3}]


def _input(name):
    shape = IMAGES if name == "ConvLSTM2D" else (2, 3, 5, 1) if name == "ConvLSTM1D" else SEQUENCE
    return numpy.random.default_rng(0).uniform(-1, 1, shape).astype("float32")


@pytest.mark.parametrize("rates", RATES, ids=lambda r: "-".join(r) or "none")
@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_recurrent_layers_hold_and_move_keras_s_seed_states(name, rates):
    x = _input(name)
    found = []
    for lib in (gpu_dl, keras):
        layer = RECURRENT[name](lib, seed=11, **rates)
        made = states(lib, layer)
        layer(x)
        after_inference = counters(lib, layer)
        layer(x, training=True)
        found.append((made, after_inference, states(lib, layer), len(layer.weights)))
    assert found[0] == found[1]
    assert all(s[3][0] == 11 for s in found[0][2] if s[3] is not None)
    assert sum(s[3] is not None for s in found[0][2]) == (2 if name in ("Bidirectional", "RNN-stacked") else 1)
    if rates:           # a call takes its pairs in inference too, as Keras's RNN prepares its cell's masks then
        assert all(c > 0 for c in found[0][1])


@pytest.mark.parametrize("name", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
def test_cells_hold_keras_s_seed_generator_and_keep_their_masks_until_reset(name):
    x = numpy.random.default_rng(1).uniform(-1, 1, (2, 5)).astype("float32")
    found = []
    for lib in (gpu_dl, keras):
        cell = getattr(lib.layers, name)(3, dropout=0.2, recurrent_dropout=0.3, seed=4)
        made = (seed_generator_attributes(lib, cell), states(lib, cell))
        h = numpy.zeros((2, 3), "float32")
        states0 = [h, h] if name == "LSTMCell" else [h]
        cell(x, states0)
        moved = [counters(lib, cell)]
        cell(x, states0, training=True)
        moved.append(counters(lib, cell))
        cell(x, states0, training=True)           # the masks of the call before, kept
        moved.append(counters(lib, cell))
        cell.reset_dropout_mask()
        cell.reset_recurrent_dropout_mask()
        cell(x, states0, training=True)
        moved.append(counters(lib, cell))
        found.append((made, moved, states(lib, cell)))
    assert found[0] == found[1]
    assert found[0][0][0] == ["seed_generator"]
    per_call = {"SimpleRNNCell": 2, "LSTMCell": 8, "GRUCell": 6}[name]
    # (Keras's SimpleRNNCell draws its masks outside training too; the gated cells in training only)
    first = per_call if name == "SimpleRNNCell" else 0
    assert found[0][1] == [[first], [per_call], [per_call], [2 * per_call]]


ATTENTION = {
    "Attention": lambda lib, **kw: lib.layers.Attention(**kw),
    "AdditiveAttention": lambda lib, **kw: lib.layers.AdditiveAttention(**kw),
    "MultiHeadAttention": lambda lib, **kw: lib.layers.MultiHeadAttention(2, 3, **kw),
    "GroupQueryAttention": lambda lib, **kw: lib.layers.GroupQueryAttention(3, 4, 2, **kw),
}


@pytest.mark.parametrize("dropout", [0.0, 0.25])
@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_attention_layers_hold_and_move_keras_s_seed_states(name, dropout):
    rng = numpy.random.default_rng(2)
    q, v = rng.uniform(-1, 1, (2, 3, 4)).astype("float32"), rng.uniform(-1, 1, (2, 5, 4)).astype("float32")
    found = []
    for lib in (gpu_dl, keras):
        layer = ATTENTION[name](lib, dropout=dropout, seed=7)
        made = (seed_generator_attributes(lib, layer), states(lib, layer))
        call = (lambda **kw: layer([q, v], **kw)) if "Head" not in name and "Query" not in name else \
            (lambda **kw: layer(q, v, **kw))
        call()
        after_inference = states(lib, layer)
        call(training=True)
        call(training=True)
        found.append((made, after_inference, states(lib, layer)))
    assert found[0] == found[1]
    seeds = [s[3] for s in found[0][2] if s[3] is not None]
    assert seeds == ([[7, 2]] if dropout else [])
    if "Attention" in name and "Head" not in name and "Query" not in name:
        assert found[0][0][0] == (["seed_generator"] if dropout else [])
    else:       # held by the dropout sublayer the build makes, between the value and the output projections
        assert [s[0] for s in found[0][2]][-3:] == (["seed_generator_state", "kernel", "bias"] if dropout else
                                                    ["bias", "kernel", "bias"])


def _model(lib):
    L = lib.layers
    inputs = lib.Input((4, 6))
    x = L.LSTM(5, dropout=0.2, seed=1, return_sequences=True)(inputs)
    x = L.Bidirectional(L.GRU(3, recurrent_dropout=0.1, return_sequences=True))(x)
    x = L.MultiHeadAttention(2, 3, dropout=0.1, seed=2)(x, x)
    x = L.Attention(dropout=0.2)([x, x])
    x = L.RNN([L.SimpleRNNCell(3, dropout=0.1), L.LSTMCell(2)])(x)
    return lib.Model(inputs, L.Dense(2)(x))


def test_weight_files_leave_the_seed_states_out_as_keras_s_and_load_both_ways(tmp_path):
    ours, theirs = _model(gpu_dl), _model(keras)
    back, _ = assert_seed_states_stay_out_of_weight_files(
        ours, theirs, 7, numpy.random.default_rng(3), lambda rng: rng.uniform(-1, 1, (3, 4, 6)).astype("float32"),
        tmp_path, gpu_dl.models.load_model, scale=0.5, rtol=1e-4)
    assert back.layers[1].seed_generator.state.numpy().tolist() == [1, 1]      # its seed; one predict, one pair
