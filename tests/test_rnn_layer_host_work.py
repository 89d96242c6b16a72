"""What one call of an LSTM layer issues on the GPU, pinned (tests/device_work.py counts it).

An LSTM of at most 64 units runs its whole time loop in one persistent
kernel each way, so the work around that launch is the call's host cost.
Forward: the batch-major to time-major copy of x, one product for every
step's input projection and the bias added in place, one fill for zero
initial states (index 0 of h, read as both h0 and c0), the states and
gates buffers (h and c one allocation), the launch, and with
``return_sequences`` the copy of the output back to batch-major; inference
issues what training issues. Backward: the copy of the output gradient to
time-major, the launch, the three weight/input products, the bias
gradient's reduction and the copy of dx back to batch-major. Above 64
units the step loops run: per step one product and one cell launch, and
zero states are fills of index 0 of h and c (forward) and of one buffer
holding both state gradients (backward). On the emulated GPU every
category is pinned; on a GPU (whose CuPy has no hooks for ufuncs and
copies) the launches of gpu_dl's own kernels. The step loops run eagerly
here (CUDA-graph replay off); a replayed call's work is pinned in
tests/test_rnn_graph_capture.py.
"""
import numpy
import pytest

from device_work import DeviceWork
from gpu_dl import activations, layers
from gpu_dl.ops import rnn, rnn_kernels

pytestmark = pytest.mark.usefixtures("eager_rnn_loops")

TANH, SIGMOID = activations.get("tanh"), activations.get("sigmoid")

STEP_LOOP = rnn_kernels.PERSISTENT_MAX_UNITS + 1
# (forward, backward) of LSTM(units), batch 3, sequence 5, input 4, starting from zeros, by (units,
# return_sequences); the step loop's products and launches are one per step and the input projection's product
EXPECTED = {
    (8, True): ({"launches": 1, "products": 1, "elementwise": 1, "fills": 1, "copies": 2, "allocations": 5},
                {"launches": 1, "products": 3, "elementwise": 1, "copies": 2, "allocations": 8}),
    (8, False): ({"launches": 1, "products": 1, "elementwise": 1, "fills": 1, "copies": 1, "allocations": 4},
                 {"launches": 1, "products": 3, "elementwise": 1, "copies": 1, "allocations": 7}),
    (STEP_LOOP, True): ({"launches": 5, "products": 6, "elementwise": 1, "fills": 2, "copies": 2, "allocations": 6},
                        {"launches": 5, "products": 8, "elementwise": 1, "fills": 1, "copies": 2, "allocations": 8}),
    (STEP_LOOP, False): ({"launches": 5, "products": 6, "elementwise": 1, "fills": 2, "copies": 1, "allocations": 5},
                         {"launches": 5, "products": 8, "elementwise": 1, "fills": 1, "copies": 2,
                          "allocations": 7}),
}


def _pinned(work, cupy):
    """The categories pinned where ``work`` ran: all on the emulated GPU, the launches on a GPU."""
    return work if cupy.__version__.endswith("emulated") else {"launches": work.get("launches", 0)}


@pytest.mark.parametrize("units", [8, STEP_LOOP], ids=["persistent", "step_loop"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_lstm_layer_call_issues_a_fixed_amount_of_work(cupy_only, rng, units, return_sequences):
    cupy = cupy_only
    n, t, d, u = 3, 5, 4, units
    assert rnn_kernels.persistent_applies(n, u, numpy.float32) == (units == 8)
    layer = layers.LSTM(u, return_sequences=return_sequences, bias_initializer="random_normal")
    layer.build((n, t, d))
    x = cupy.asarray(rng.standard_normal((n, t, d)).astype("float32"))
    dy = cupy.asarray(rng.standard_normal((n, t, u) if return_sequences else (n, u)).astype("float32"))
    layer(x, training=True)      # the first call binds the kernels
    layer.backward(dy)
    want_forward, want_backward = (_pinned(w, cupy) for w in EXPECTED[units, return_sequences])
    with DeviceWork(cupy) as work:
        layer(x)
        assert work.take() == want_forward, "inference forward"
        y = layer(x, training=True)
        assert work.take() == want_forward, "training forward"
        dx = layer.backward(dy)
        assert work.take() == want_backward, "backward"
    assert y.shape == dy.shape and dx.shape == x.shape
    assert not numpy.isnan(cupy.asnumpy(y)).any() and not numpy.isnan(cupy.asnumpy(dx)).any()


def test_lstm_layer_zero_states_equal_given_zero_states(cupy_only, rng):
    """Starting from zeros without an array of them (h's index 0 filled and read as both states on the
    persistent path, both index 0 filled on the step loop's) gives the same bits as zero states given as
    initial_state."""
    cupy = cupy_only
    n, t, d = 3, 5, 4
    x = cupy.asarray(rng.standard_normal((n, t, d)).astype("float32"))
    for u in (8, STEP_LOOP):
        layer = layers.LSTM(u, return_sequences=True, return_state=True, bias_initializer="random_normal")
        layer.build((n, t, d))
        dy = [cupy.asarray(rng.standard_normal(shape).astype("float32")) for shape in ((n, t, u), (n, u), (n, u))]
        runs = []
        for initial_state in (None, [cupy.zeros((n, u), "float32"), cupy.zeros((n, u), "float32")]):
            outputs = layer(x, training=True, initial_state=initial_state)
            dx = layer.backward(dy)
            runs.append([cupy.asnumpy(a) for a in list(outputs) + [dx] + layer.initial_state_gradients]
                        + [cupy.asnumpy(w.grad) for w in layer.trainable_weights])
        for got, want in zip(*runs):
            assert not numpy.isnan(got).any()
            numpy.testing.assert_array_equal(got, want, err_msg=f"LSTM({u})")


@pytest.fixture
def poisoned_empty(cupy_only, monkeypatch):
    """CuPy whose ``empty`` buffers start as NaN, so that a state or state gradient left unset shows."""
    cupy, empty = cupy_only, cupy_only.empty

    def poisoned(*args, **kwargs):
        a = empty(*args, **kwargs)
        a.fill(numpy.nan)
        return a
    monkeypatch.setattr(cupy, "empty", poisoned)
    return cupy


@pytest.mark.parametrize("units", [8, STEP_LOOP], ids=["persistent", "step_loop"])
@pytest.mark.parametrize("left_out", ["h0", "c0", "both"])
def test_lstm_forward_takes_none_for_a_zero_initial_state(poisoned_empty, rng, units, left_out):
    """rnn.lstm_forward with an initial state None equals it with that state given as zeros, bit for bit,
    the other state given (random) or None too."""
    cupy = poisoned_empty
    n, t, d, u = 3, 5, 4, units
    x, kernel, recurrent_kernel, bias, h0, c0 = (
        cupy.asarray(rng.standard_normal(shape).astype("float32") * 0.5)
        for shape in ((t, n, d), (d, 4 * u), (u, 4 * u), (4 * u,), (n, u), (n, u)))
    zeros = cupy.zeros((n, u), "float32")
    given = {"h0": (zeros, c0), "c0": (h0, zeros), "both": (zeros, zeros)}[left_out]
    left = {"h0": (None, c0), "c0": (h0, None), "both": (None, None)}[left_out]
    runs = [rnn.lstm_forward(x, kernel, recurrent_kernel, bias, *states, TANH, SIGMOID)[:2]
            for states in (given, left)]
    for got, want in zip(runs[1], runs[0]):
        assert not numpy.isnan(cupy.asnumpy(got)).any()
        numpy.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want))


@pytest.mark.parametrize("units", [8, STEP_LOOP], ids=["persistent", "step_loop"])
@pytest.mark.parametrize("left_out", ["dh_last", "dc_last", "both"])
def test_lstm_backward_takes_none_for_a_zero_state_gradient(poisoned_empty, rng, units, left_out):
    """rnn.lstm_backward with dh_last and/or dc_last None equals it with zeros given, bit for bit (the step
    loop keeps both in one buffer: zeros filled where None, the other copied in)."""
    cupy = poisoned_empty
    n, t, d, u = 3, 5, 4, units
    x, kernel, recurrent_kernel, bias, h0, c0, dh_seq, dh_last, dc_last = (
        cupy.asarray(rng.standard_normal(shape).astype("float32") * 0.5)
        for shape in ((t, n, d), (d, 4 * u), (u, 4 * u), (4 * u,), (n, u), (n, u), (t, n, u), (n, u), (n, u)))
    zeros = cupy.zeros((n, u), "float32")
    given = {"dh_last": (zeros, dc_last), "dc_last": (dh_last, zeros), "both": (zeros, zeros)}[left_out]
    left = {"dh_last": (None, dc_last), "dc_last": (dh_last, None), "both": (None, None)}[left_out]
    _, _, saved = rnn.lstm_forward(x, kernel, recurrent_kernel, bias, h0, c0, TANH, SIGMOID, training=True)
    runs = [rnn.lstm_backward(saved, dh_seq, *states) for states in (given, left)]
    for got, want in zip(runs[1], runs[0]):
        assert not numpy.isnan(cupy.asnumpy(got)).any()
        numpy.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want))
