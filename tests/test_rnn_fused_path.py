"""The GPU's fused-cell time loops of ops/rnn.py, run on the CPU.

On a GPU the LSTM and GRU loops call the cell kernels of ops/rnn_kernels.py
(and, for small LSTMs, the persistent kernel), which write into buffers the
loop owns. Here those launchers are replaced by NumPy functions that honour
the same contracts (documented in kernels/lstm_cell.cu), so the loops'
bookkeeping — which buffer holds which step, the dc buffers, the bound step launchers' views,
the persistent kernels' (T+1, N, U) layouts and optional gradients — is checked against the array
path without a GPU. The kernels themselves are tested on a GPU by
tests/test_rnn_kernels.py.
"""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.ops import rnn, rnn_kernels


def sigmoid(z):
    return 1 / (1 + numpy.exp(-z))


def lstm_cell_forward(xw, hr, c_prev, h, c, gates):
    u = c_prev.shape[1]
    z = xw + hr
    i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), numpy.tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
    gates[...] = numpy.concatenate([i, f, g, o], axis=1)
    c[...] = f * c_prev + i * g
    h[...] = o * numpy.tanh(c)


def lstm_cell_backward(dh, dc_next, gates, c, c_prev, dz, dc_prev, dh_output=None):
    u = c.shape[1]
    dh = dh if dh_output is None else dh + dh_output
    i, f, g, o = (gates[:, k * u:(k + 1) * u] for k in range(4))
    tc = numpy.tanh(c)
    dc = dh * o * (1 - tc ** 2) + (0 if dc_next is None else dc_next)
    dz[...] = numpy.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                                 dh * tc * o * (1 - o)], axis=1)
    dc_prev[...] = dc * f


def gru_cell_forward(xw, hr, h_prev, h, gates, hr_bias=None):
    u = h_prev.shape[1]
    hr = hr if hr_bias is None else hr + hr_bias
    z = sigmoid(xw[:, :u] + hr[:, :u])
    r = sigmoid(xw[:, u:2 * u] + hr[:, u:2 * u])
    hh = numpy.tanh(xw[:, 2 * u:] + r * hr[:, 2 * u:])
    gates[...] = numpy.concatenate([z, r, hh, hr[:, 2 * u:]], axis=1)
    h[...] = z * h_prev + (1 - z) * hh


def gru_cell_backward(dh, gates, h_prev, dxw, dhr, dh_prev, dh_direct=None, dh_output=None):
    u = h_prev.shape[1]
    dh = dh if dh_direct is None else dh_direct + dh
    dh = dh if dh_output is None else dh + dh_output
    z, r, hh, hr_h = (gates[:, k * u:(k + 1) * u] for k in range(4))
    da_h = dh * (1 - z) * (1 - hh ** 2)
    da_z = dh * (h_prev - hh) * z * (1 - z)
    da_r = da_h * hr_h * r * (1 - r)
    dxw[...] = numpy.concatenate([da_z, da_r, da_h], axis=1)
    dhr[...] = numpy.concatenate([da_z, da_r, da_h * r], axis=1)
    dh_prev[...] = dh * z


def lstm_cell_forward_steps(xw, hr, h, c, gates):
    return lambda t: lstm_cell_forward(xw[t], hr, c[t], h[t + 1], c[t + 1], gates[t])


def lstm_cell_backward_steps(dh, dh_seq, dc, gates, c, dz):
    return lambda t: lstm_cell_backward(dh, dc, gates[t], c[t + 1], c[t], dz[t], dc,
                                        dh_output=None if dh_seq is None else dh_seq[t])


def gru_cell_forward_steps(xw, hr, hr_bias, h, gates):
    return lambda t: gru_cell_forward(xw[t], hr, h[t], h[t + 1], gates[t], hr_bias)


def gru_cell_backward_steps(dh, dh_direct, dh_seq, gates, h, dxw, dhr):
    return lambda t: gru_cell_backward(dh, gates[t], h[t], dxw[t], dhr[t], dh_direct, dh_direct,
                                       None if dh_seq is None else dh_seq[t])


def persistent_forward(xw, recurrent_kernel, h0, c0, h_seq, c_seq, gates):
    h_seq[0], c_seq[0] = h0, c0
    for t in range(xw.shape[0]):
        lstm_cell_forward(xw[t], h_seq[t] @ recurrent_kernel, c_seq[t], h_seq[t + 1], c_seq[t + 1], gates[t])
    return h_seq, c_seq, gates


def persistent_backward(dh_seq, dh_last, dc_last, gates, c_seq, recurrent_kernel, dz, dh0, dc0):
    steps, n, u = c_seq.shape[0] - 1, c_seq.shape[1], c_seq.shape[2]
    dh_next = numpy.zeros((n, u)) if dh_last is None else dh_last
    dc_next = dc_last
    for t in range(steps - 1, -1, -1):
        dh = dh_next if dh_seq is None else dh_next + dh_seq[t]
        dc_prev = numpy.empty((n, u))
        lstm_cell_backward(dh, dc_next, gates[t], c_seq[t + 1], c_seq[t], dz[t], dc_prev)
        dh_next, dc_next = dz[t] @ recurrent_kernel.T, dc_prev
    dh0[...] = dh_next
    dc0[...] = 0 if dc_next is None else dc_next
    return dz, dh0, dc0


@pytest.fixture(params=["step loop", "persistent"])
def fused_cells(request, monkeypatch):
    """The fused path, its launchers standing in as NumPy functions; LSTMs with or without the persistent kernel."""
    monkeypatch.setattr(rnn, "_fused", lambda *args: True)
    for name, fn in [("lstm_cell_forward_cuda", lstm_cell_forward), ("lstm_cell_backward_cuda", lstm_cell_backward),
                     ("lstm_cell_forward_steps", lstm_cell_forward_steps),
                     ("lstm_cell_backward_steps", lstm_cell_backward_steps),
                     ("gru_cell_forward_cuda", gru_cell_forward), ("gru_cell_backward_cuda", gru_cell_backward),
                     ("gru_cell_forward_steps", gru_cell_forward_steps),
                     ("gru_cell_backward_steps", gru_cell_backward_steps),
                     ("lstm_sequence_forward_persistent_cuda", persistent_forward),
                     ("lstm_sequence_backward_persistent_cuda", persistent_backward)]:
        monkeypatch.setattr(rnn_kernels, name, fn)
    persistent = request.param == "persistent"
    monkeypatch.setattr(rnn_kernels, "persistent_applies", lambda n, u, dtype: persistent)
    return request.param


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3])
@pytest.mark.parametrize("masked", [False, True], ids=["all steps", "masked steps"])
def test_fused_loops_match_the_array_path(monkeypatch, rng, fused_cells, kind, return_sequences, recurrent_dropout,
                                          masked):
    layer = getattr(layers, kind)(5, return_sequences=return_sequences, return_state=True, seed=3,
                                  recurrent_dropout=recurrent_dropout, bias_initializer="random_normal",
                                  dtype="float64")
    x = rng.standard_normal((3, 7, 4))
    mask = numpy.array([[True] * 7, [False, True, True, False, True, True, False], [False] * 5 + [True] * 2]) \
        if masked else None
    grads = [rng.standard_normal(o.shape) for o in layer(x)]

    def run():
        layer.seed_generator.state.assign([3, 0])
        outputs = layer(x, training=True, mask=mask)
        dx = layer.backward(grads)
        return outputs, dx, [v.grad.copy() for v in layer.trainable_weights]

    fused = run()
    with monkeypatch.context() as plain:
        plain.setattr(rnn, "_fused", lambda *args: False)
        reference = run()
    for a, b in zip(fused[0], reference[0]):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(fused[1], reference[1], rtol=1e-10, atol=1e-12)
    for a, b in zip(fused[2], reference[2]):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
