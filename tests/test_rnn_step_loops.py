"""The LSTM and GRU step loops on the GPU (gpu_dl/ops/rnn.py without masks; LSTMs above the persistent
kernels' 64 units).

Their host work per step is pinned: forward one recurrent product written
into a preallocated buffer and one cell launch (GRU's adding the recurrent
bias itself), backward one cell launch (which adds the parts of h_t's
gradient itself: ``lstm_cell_bwd``'s ``dh_output``, ``gru_cell_bwd``'s
``dh_direct`` and ``dh_output``) and one product, and nothing else — no
elementwise operation, no allocation. The bound step launchers of
gpu_dl/ops/rnn_kernels.py are checked against the public launchers (the
new kernel inputs against the NumPy references are in
tests/test_rnn_kernels.py), and the whole loops against the NumPy backend
and float64 finite differences. Every body needs a CUDA device
(``cupy_only``). They run the eager loops (CUDA-graph replay off); the
graphs' replays of these loops are tests/test_rnn_graph_capture.py's.
"""
import collections

import numpy
import pytest

from gpu_dl import activations, layers
from gpu_dl.backend import launch
from gpu_dl.ops import rnn, rnn_kernels
from test_rnn_kernels import DTYPES, _normal, _pre_activations

pytestmark = pytest.mark.usefixtures("eager_rnn_loops")

TANH, SIGMOID = activations.get("tanh"), activations.get("sigmoid")
UNITS = 65   # one above PERSISTENT_MAX_UNITS: the step loops run


# ----------------------------------------------------------------------------------- the dh_output input
def test_lstm_cell_backward_refuses_a_bad_dh_output(cupy_only):
    cupy = cupy_only
    n, u = 3, 5
    s = [cupy.zeros((n, u), cupy.float32) for _ in range(4)]
    args = (s[0], None, cupy.zeros((n, 4 * u), cupy.float32), s[1], s[2], cupy.zeros((n, 4 * u), cupy.float32), s[3])
    with pytest.raises(ValueError, match=r"lstm_cell_bwd_f32: `dh_output` must have shape \(3, 5\), got \(3, 6\)"):
        rnn_kernels.lstm_cell_backward_cuda(*args, dh_output=cupy.zeros((n, u + 1), cupy.float32))
    with pytest.raises(TypeError, match="lstm_cell_bwd_f32: `dh_output` must have dtype float32, got float64"):
        rnn_kernels.lstm_cell_backward_cuda(*args, dh_output=cupy.zeros((n, u)))
    with pytest.raises(ValueError, match="lstm_cell_bwd_f32: `dh_output` must be C-contiguous"):
        rnn_kernels.lstm_cell_backward_cuda(*args, dh_output=cupy.zeros((u, n), cupy.float32).T)


# ------------------------------------------------------------------------------ the bound step launchers
def _sequence(cupy, rng, steps, n, u, dtype):
    """A forward's arrays as the loop holds them: xw, hr, h, c (index 0 set), gates (poisoned)."""
    xw = cupy.asarray(_pre_activations(rng, steps * n, 4 * u, dtype).reshape(steps, n, 4 * u))
    h, c = launch.empty_output((steps + 1, n, u), dtype), launch.empty_output((steps + 1, n, u), dtype)
    h[0], c[0] = cupy.asarray(_normal(rng, (n, u), dtype)), cupy.asarray(_normal(rng, (n, u), dtype))
    return xw, cupy.asarray(_normal(rng, (n, 4 * u), dtype)), h, c, launch.empty_output((steps, n, 4 * u), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_dh_seq", [True, False], ids=["dh_seq", "last_state_only"])
def test_bound_step_launchers_equal_the_launchers(cupy_only, rng, dtype, with_dh_seq):
    cupy = cupy_only
    steps, n, u = 3, 3, 33
    xw, hr, h, c, gates = _sequence(cupy, rng, steps, n, u, dtype)
    h2, c2, gates2 = h.copy(), c.copy(), gates.copy()
    step = rnn_kernels.lstm_cell_forward_steps(xw, hr, h, c, gates)
    for t in range(steps):
        step(t)
        rnn_kernels.lstm_cell_forward_cuda(xw[t], hr, c2[t], h2[t + 1], c2[t + 1], gates2[t])
    for got, want, what in ((h, h2, "h"), (c, c2, "c"), (gates, gates2, "gates")):
        assert not numpy.isnan(cupy.asnumpy(got)).any(), f"forward {what}: unwritten elements"
        numpy.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want), err_msg=f"forward {what}")

    dh_seq = cupy.asarray(_normal(rng, (steps, n, u), dtype)) if with_dh_seq else None
    dh = cupy.asarray(_normal(rng, (n, u), dtype))
    dc = cupy.asarray(_normal(rng, (n, u), dtype))
    dc2 = dc.copy()
    dz, dz2 = launch.empty_output((steps, n, 4 * u), dtype), launch.empty_output((steps, n, 4 * u), dtype)
    step = rnn_kernels.lstm_cell_backward_steps(dh, dh_seq, dc, gates, c, dz)
    for t in range(steps - 1, -1, -1):
        step(t)
        rnn_kernels.lstm_cell_backward_cuda(dh, dc2, gates[t], c[t + 1], c[t], dz2[t], dc2,
                                            dh_output=None if dh_seq is None else dh_seq[t])
        dh[...] = dh * 0.5     # as the loop's product would, a new dh for the step before
    assert not numpy.isnan(cupy.asnumpy(dz)).any(), "backward dz: unwritten elements"
    numpy.testing.assert_array_equal(cupy.asnumpy(dz), cupy.asnumpy(dz2), err_msg="backward dz")
    numpy.testing.assert_array_equal(cupy.asnumpy(dc), cupy.asnumpy(dc2), err_msg="backward dc")


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("with_dh_seq", [True, False], ids=["dh_seq", "last_state_only"])
def test_gru_bound_step_launchers_equal_the_launchers(cupy_only, rng, with_bias, with_dh_seq):
    cupy = cupy_only
    steps, n, u, dtype = 3, 3, 33, "float64"
    xw = cupy.asarray(_pre_activations(rng, steps * n, 3 * u, dtype).reshape(steps, n, 3 * u))
    hr = cupy.asarray(_normal(rng, (n, 3 * u), dtype))
    hr_bias = cupy.asarray(_normal(rng, (3 * u,), dtype)) if with_bias else None
    h, gates = launch.empty_output((steps + 1, n, u), dtype), launch.empty_output((steps, n, 4 * u), dtype)
    h[0] = cupy.asarray(_normal(rng, (n, u), dtype))
    h2, gates2 = h.copy(), gates.copy()
    step = rnn_kernels.gru_cell_forward_steps(xw, hr, hr_bias, h, gates)
    for t in range(steps):
        step(t)
        rnn_kernels.gru_cell_forward_cuda(xw[t], hr, h2[t], h2[t + 1], gates2[t], hr_bias=hr_bias)
    for got, want, what in ((h, h2, "h"), (gates, gates2, "gates")):
        assert not numpy.isnan(cupy.asnumpy(got)).any(), f"forward {what}: unwritten elements"
        numpy.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want), err_msg=f"forward {what}")

    dh_seq = cupy.asarray(_normal(rng, (steps, n, u), dtype)) if with_dh_seq else None
    dh, direct = cupy.asarray(_normal(rng, (n, u), dtype)), cupy.asarray(_normal(rng, (n, u), dtype))
    direct2 = direct.copy()
    grads = [launch.empty_output((steps, n, 3 * u), dtype) for _ in range(4)]    # dxw, dhr; their twins
    step = rnn_kernels.gru_cell_backward_steps(dh, direct, dh_seq, gates, h, grads[0], grads[1])
    for t in range(steps - 1, -1, -1):
        step(t)
        rnn_kernels.gru_cell_backward_cuda(dh, gates[t], h[t], grads[2][t], grads[3][t], direct2, dh_direct=direct2,
                                           dh_output=None if dh_seq is None else dh_seq[t])
        dh[...] = dh * 0.5     # as the loop's product would, a new dh for the step before
    for got, want, what in ((grads[0], grads[2], "dxw"), (grads[1], grads[3], "dhr"), (direct, direct2, "dh")):
        assert not numpy.isnan(cupy.asnumpy(got)).any(), f"backward {what}: unwritten elements"
        numpy.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want), err_msg=f"backward {what}")


def test_bound_step_launchers_refuse_bad_arguments(cupy_only, rng):
    cupy = cupy_only
    steps, n, u = 4, 3, 5
    xw, hr, h, c, gates = _sequence(cupy, rng, steps, n, u, "float32")
    fwd = rnn_kernels.lstm_cell_forward_steps
    with pytest.raises(ValueError, match=r"lstm_cell_fwd_f32: `h` must have shape \(5, 3, 5\), got \(4, 3, 5\)"):
        fwd(xw, hr, h[1:], c, gates)
    with pytest.raises(ValueError, match=r"lstm_cell_fwd_f32: `hr` must have shape \(3, 20\)"):
        fwd(xw, hr[:, :-4], h, c, gates)
    with pytest.raises(ValueError, match=r"lstm_cell_fwd_f32: `xw` must have shape \(T, N, 4U\)"):
        fwd(xw[0], hr, h, c, gates)
    with pytest.raises(TypeError, match="lstm_cell_fwd_f32: `gates` must have dtype float32, got float64"):
        fwd(xw, hr, h, c, gates.astype("float64"))
    with pytest.raises(TypeError, match="lstm_cell_fwd: `xw` must be a CuPy array"):
        fwd(cupy.asnumpy(xw), hr, h, c, gates)
    bwd = rnn_kernels.lstm_cell_backward_steps
    dh, dc, dz = cupy.zeros((n, u), "float32"), cupy.zeros((n, u), "float32"), cupy.zeros((steps, n, 4 * u), "float32")
    with pytest.raises(ValueError, match=r"lstm_cell_bwd_f32: `dh_seq` must have shape \(4, 3, 5\), got \(3, 3, 5\)"):
        bwd(dh, cupy.zeros((steps - 1, n, u), "float32"), dc, gates, c, dz)
    with pytest.raises(ValueError, match=r"lstm_cell_bwd_f32: `c` must have shape \(5, 3, 5\), got \(4, 3, 5\)"):
        bwd(dh, None, dc, gates, c[1:], dz)
    with pytest.raises(ValueError, match="lstm_cell_bwd_f32: `dc` must be C-contiguous"):
        bwd(dh, None, cupy.zeros((u, n), "float32").T, gates, c, dz)
    with pytest.raises(TypeError, match="lstm_cell_bwd_f32: `dz` must have dtype float32, got float64"):
        bwd(dh, None, dc, gates, c, dz.astype("float64"))
    f32 = cupy.float32
    xw3, hr3, h3 = cupy.zeros((steps, n, 3 * u), f32), cupy.zeros((n, 3 * u), f32), cupy.zeros((steps + 1, n, u), f32)
    gru_fwd = rnn_kernels.gru_cell_forward_steps
    with pytest.raises(ValueError, match=r"gru_cell_fwd_f32: `xw` has 16 columns, not a multiple of 3"):
        gru_fwd(cupy.zeros((steps, n, 16), f32), hr3, None, h3, gates)
    with pytest.raises(ValueError, match=r"gru_cell_fwd_f32: `hr_bias` must have shape \(15,\), got \(2, 15\)"):
        gru_fwd(xw3, hr3, cupy.zeros((2, 3 * u), f32), h3, gates)
    with pytest.raises(ValueError, match=r"gru_cell_fwd_f32: `gates` must have shape \(4, 3, 20\)"):
        gru_fwd(xw3, hr3, None, h3, gates[:, :, :-1])
    gru_bwd = rnn_kernels.gru_cell_backward_steps
    with pytest.raises(ValueError, match=r"gru_cell_bwd_f32: `dhr` must have shape \(4, 3, 15\)"):
        gru_bwd(dh, dc, None, gates, h3, xw3, xw3[:, :, :-1])
    with pytest.raises(TypeError, match="gru_cell_bwd_f32: `dh_direct` must have dtype float32, got float64"):
        gru_bwd(dh, cupy.zeros((n, u)), None, gates, h3, xw3, xw3.copy())


def test_bound_step_launchers_hold_the_element_limit_to_a_step(cupy_only, rng, monkeypatch):
    """A launch indexes one step with 32-bit integers: a sequence of more than 2**31 elements in all is fine,
    so its checks (launch.check_device_array, which refuses 2**31 elements) see one step of it."""
    cupy = cupy_only
    steps, n, u = 3, 2, 5
    xw, hr, h, c, gates = _sequence(cupy, rng, steps, n, u, "float32")
    checked = {}
    check = launch.check_device_array

    def recording(a, kernel, argument, **kwargs):
        checked[argument] = tuple(a.shape)
        return check(a, kernel, argument, **kwargs)
    monkeypatch.setattr(launch, "check_device_array", recording)
    rnn_kernels.lstm_cell_forward_steps(xw, hr, h, c, gates)
    assert checked == {"xw": (n, 4 * u), "hr": (n, 4 * u), "h": (n, u), "c": (n, u), "gates": (n, 4 * u)}
    checked.clear()
    rnn_kernels.lstm_cell_backward_steps(cupy.zeros((n, u), "float32"), cupy.zeros((steps, n, u), "float32"),
                                         cupy.zeros((n, u), "float32"), gates, c, cupy.zeros_like(gates))
    assert checked == {"gates": (n, 4 * u), "dh": (n, u), "dc": (n, u), "c": (n, u), "dz": (n, 4 * u),
                       "dh_seq": (n, u)}


# ------------------------------------------------------------------------------------- work per step
class _Counts:
    """Counts, while active, the cell launches (through the kernels rnn_kernels binds), the products
    (``cupy.dot``, which the loops call) and everything else that runs on device arrays: on the emulated
    GPU each ufunc call (elementwise arithmetic, ``@``) and NumPy function, on a GPU each allocation."""

    def __init__(self, cupy, monkeypatch):
        self.counts = collections.Counter()
        counts = self.counts
        get_kernel = rnn_kernels.get_kernel

        def counting_kernel(*args, **kwargs):
            function = get_kernel(*args, **kwargs)

            def launch_(*a, **k):
                counts["launches"] += 1
                return function(*a, **k)
            return launch_
        monkeypatch.setattr(rnn_kernels, "get_kernel", counting_kernel)
        dot = cupy.dot

        def counting_dot(*args, **kwargs):
            counts["products"] += 1
            return dot(*args, **kwargs)
        monkeypatch.setattr(cupy, "dot", counting_dot, raising=False)
        if cupy.__version__.endswith("emulated"):
            ufunc, function = cupy.ndarray.__array_ufunc__, cupy.ndarray.__array_function__

            def counting_ufunc(array, *args, **kwargs):
                counts["other"] += 1
                return ufunc(array, *args, **kwargs)

            def counting_function(array, func, types, args, kwargs):
                counts["other"] += func is not numpy.dot      # cupy.dot's own NumPy call is counted above
                return function(array, func, types, args, kwargs)
            monkeypatch.setattr(cupy.ndarray, "__array_ufunc__", counting_ufunc)
            monkeypatch.setattr(cupy.ndarray, "__array_function__", counting_function)
        self.previous_allocator = None
        if not cupy.__version__.endswith("emulated"):
            pool, self.previous_allocator = cupy.get_default_memory_pool(), cupy.cuda.get_allocator()

            def counting_malloc(size):
                counts["other"] += 1
                return pool.malloc(size)
            cupy.cuda.set_allocator(counting_malloc)
        self.cupy = cupy

    def restore(self):
        if self.previous_allocator is not None:
            self.cupy.cuda.set_allocator(self.previous_allocator)

    def take(self):
        taken = dict(self.counts)
        self.counts.clear()
        return taken


GATES = {"LSTM": 4, "GRU": 3}


def _loop_arrays(cupy, rng, kind, steps, n=2, d=3, u=UNITS, dtype="float32"):
    """(forward's arguments before the activations, dh_seq) of an LSTM or GRU loop."""
    g = GATES[kind]
    x = cupy.asarray(_normal(rng, (steps, n, d), dtype))
    kernel = cupy.asarray(_normal(rng, (d, g * u), dtype, 0.3))
    recurrent_kernel = cupy.asarray(_normal(rng, (u, g * u), dtype, 0.1))
    bias = cupy.asarray(_normal(rng, (g * u,) if kind == "LSTM" else (2, g * u), dtype))
    states = [cupy.asarray(_normal(rng, (n, u), dtype)) for _ in range(2 if kind == "LSTM" else 1)]
    dh_seq = cupy.asarray(_normal(rng, (steps, n, u), dtype))
    return (x, kernel, recurrent_kernel, bias, *states), dh_seq


def _forward(kind, arrays, training=False):
    """(h, saved) of rnn.lstm_forward or rnn.gru_forward (c left out)."""
    if kind == "LSTM":
        h, _, saved = rnn.lstm_forward(*arrays, TANH, SIGMOID, training=training)
        return h, saved
    return rnn.gru_forward(*arrays, TANH, SIGMOID, training=training)


def _backward(kind, saved, dh_seq, dh_last):
    return (rnn.lstm_backward if kind == "LSTM" else rnn.gru_backward)(saved, dh_seq, dh_last)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("with_dh_seq", [True, False], ids=["dh_seq", "last_state_only"])
def test_each_step_is_one_product_and_one_cell_launch(cupy_only, rng, monkeypatch, kind, with_dh_seq):
    cupy = cupy_only
    assert not rnn_kernels.persistent_applies(2, UNITS, numpy.float32)
    counts = _Counts(cupy, monkeypatch)
    try:
        per_run = {}
        for steps in (2, 7):
            arrays, dh_seq = _loop_arrays(cupy, rng, kind, steps)
            dh_last = None if with_dh_seq else cupy.asarray(_normal(rng, (2, UNITS), "float32"))
            counts.take()
            _, saved = _forward(kind, arrays, training=True)
            forward = counts.take()
            _backward(kind, saved, dh_seq if with_dh_seq else None, dh_last)
            per_run[steps] = forward, counts.take()
    finally:
        counts.restore()
    # what a call does once (the input projection, the weight gradients) cancels in the difference
    for direction, index in (("forward", 0), ("backward", 1)):
        short, long = per_run[2][index], per_run[7][index]
        per_step = {key: (long.get(key, 0) - short.get(key, 0)) / 5 for key in ("launches", "products", "other")}
        assert per_step == {"launches": 1, "products": 1, "other": 0}, (direction, per_step, short, long)


# ------------------------------------------------------------------------------------- the whole loop
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_step_loop_layer_matches_the_numpy_backend(cupy_only, rng, kind):
    """LSTM(65) / GRU(65), float64, return_sequences with the last states: GPU outputs and gradients equal
    NumPy's."""
    from gpu_dl import backend
    x = rng.standard_normal((3, 5, 4))
    states = 2 if kind == "LSTM" else 1
    grads = [rng.standard_normal(shape) for shape in [(3, 5, UNITS)] + [(3, UNITS)] * states]

    def run(device, weights=None):
        backend.set_device(device)
        xp = cupy_only if device == "gpu" else numpy
        host = cupy_only.asnumpy if device == "gpu" else numpy.array
        layer = getattr(layers, kind)(UNITS, return_sequences=True, return_state=True,
                                      bias_initializer="random_normal", dtype="float64")
        layer.build(x.shape)
        if weights is not None:
            layer.set_weights(weights)
        outputs = layer(xp.asarray(x), training=True)
        dx = layer.backward([xp.asarray(g) for g in grads])
        return [host(a) for a in list(outputs) + [dx]] + [host(v.grad) for v in layer.trainable_weights], \
            layer.get_weights()

    try:
        want, weights = run("cpu")
        got, _ = run("gpu", weights)
    finally:
        backend.set_device("gpu")
    assert len(got) == len(want) == 5 + states
    for a, b in zip(got, want):
        assert not numpy.isnan(a).any()
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_step_loop_gradients_match_finite_differences(cupy_only, rng, kind):
    """float64 central differences of <dh_seq, h> + <dh_last, h_T> (+ <dc_last, c_T>) along random
    directions."""
    cupy = cupy_only
    steps, n = 4, 2
    arrays, dh_seq = _loop_arrays(cupy, rng, kind, steps, n=n, dtype="float64")
    dh_last, dc_last = (cupy.asarray(rng.standard_normal((n, UNITS))) for _ in range(2))
    names = ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0")[:len(arrays)]

    def loss(values):
        if kind == "LSTM":
            h, c, _ = rnn.lstm_forward(*values, TANH, SIGMOID)
            return float((dh_seq * h[1:]).sum() + (dh_last * h[-1]).sum() + (dc_last * c[-1]).sum())
        h, _ = rnn.gru_forward(*values, TANH, SIGMOID)
        return float((dh_seq * h[1:]).sum() + (dh_last * h[-1]).sum())

    _, saved = _forward(kind, arrays, training=True)
    if kind == "LSTM":
        grads = rnn.lstm_backward(saved, dh_seq, dh_last, dc_last)
    else:
        grads = rnn.gru_backward(saved, dh_seq, dh_last)
    analytic = dict(zip(names, grads))
    eps = 1e-6
    for index, name in enumerate(names):
        v = cupy.asarray(rng.standard_normal(arrays[index].shape))
        plus = [a + eps * v if i == index else a for i, a in enumerate(arrays)]
        minus = [a - eps * v if i == index else a for i, a in enumerate(arrays)]
        numeric = (loss(plus) - loss(minus)) / (2 * eps)
        want = float((analytic[name] * v).sum())
        assert abs(numeric - want) <= 1e-6 * max(1.0, abs(want)), f"{kind} d/d{name}: {numeric!r} vs {want!r}"
