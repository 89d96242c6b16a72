"""The LSTM and GRU cell kernels (kernels/lstm_cell.cu, launchers in gpu_dl/ops/rnn_kernels.py) against NumPy.

The references below are the cell formulas written out in plain NumPy
(Keras 3's LSTM with gates i, f, c, o and GRU with reset_after=True, gates
z, r, h; tanh and the sigmoid). Each kernel is checked against them on odd
sizes (N 1, 3, 17; U 1, 33, 64) in float64 (1e-12) and float32 (about 1e-5
relative); each backward cell also against central finite differences of
the forward kernel in float64 along random directions. The persistent LSTM
forward is checked against the step loop of cuBLAS products and cell
kernels and against the NumPy sequence, over 0, 1 and 17 steps, with tiles
of one and of several samples per block.

Kernel outputs start NaN (outputs come from ``launch.empty_output`` under the
suite's autouse ``launch.poisoned_outputs()``), so an element left unwritten
fails; cell outputs are written into the middle slice of a poisoned
time-major buffer, so a write outside it fails too. Everything except the
compile check and the argument checks that need no array needs a CUDA device
(the ``cupy_only`` fixture).
"""
import numpy
import pytest

from gpu_dl.backend import launch
from gpu_dl.ops import rnn_kernels

DTYPES = ["float32", "float64"]
SIZES = [(n, u) for n in (1, 3, 17) for u in (1, 33, 64)]
SIZE_IDS = [f"N{n}-U{u}" for n, u in SIZES]
# CUDA's expf/tanhf and NumPy's differ by an ulp or two; products such as f*c_prev and dc*c_prev*f*(1-f)
# carry that ulp of a value near 1 times factors up to about 10 into elements that may be near 0: hence atol.
TOLERANCE = {"float32": dict(rtol=1e-5, atol=5e-6), "float64": dict(rtol=1e-12, atol=1e-12)}
# The persistent kernel sums each recurrent product in its own order; over many steps the roundings add up.
SEQUENCE_TOLERANCE = {"float32": dict(rtol=1e-4, atol=2e-5), "float64": dict(rtol=1e-11, atol=1e-12)}


# ------------------------------------------------------------------------------------ NumPy references
def sigmoid(x):
    e = numpy.exp(-numpy.abs(x))
    return numpy.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def lstm_cell_reference(xw, hr, c_prev):
    """(h, c, gates) of one LSTM step from xw = x_t @ kernel + bias and hr = h_{t-1} @ recurrent_kernel."""
    u = c_prev.shape[1]
    z = xw + hr
    i = sigmoid(z[:, :u])
    f = sigmoid(z[:, u:2 * u])
    g = numpy.tanh(z[:, 2 * u:3 * u])
    o = sigmoid(z[:, 3 * u:])
    c = f * c_prev + i * g
    h = o * numpy.tanh(c)
    return h, c, numpy.concatenate([i, f, g, o], axis=1)


def lstm_cell_backward_reference(dh, dc_next, gates, c, c_prev):
    """(dz, dc_prev): gradients of the pre-activations z = xw + hr and of c_{t-1}."""
    u = c.shape[1]
    i, f, g, o = (gates[:, k * u:(k + 1) * u] for k in range(4))
    tc = numpy.tanh(c)
    do = dh * tc
    dc = dh * o * (1 - tc * tc)
    if dc_next is not None:
        dc = dc + dc_next
    di, dg, df = dc * g, dc * i, dc * c_prev
    dz = numpy.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=1)
    return dz, dc * f


def gru_cell_reference(xw, hr, h_prev):
    """(h, gates) of one GRU (reset_after) step; hr includes the recurrent bias; gates = z, r, hh, hr_h."""
    u = h_prev.shape[1]
    z = sigmoid(xw[:, :u] + hr[:, :u])
    r = sigmoid(xw[:, u:2 * u] + hr[:, u:2 * u])
    hr_h = hr[:, 2 * u:]
    hh = numpy.tanh(xw[:, 2 * u:] + r * hr_h)
    h = z * h_prev + (1 - z) * hh
    return h, numpy.concatenate([z, r, hh, hr_h], axis=1)


def gru_cell_backward_reference(dh, gates, h_prev):
    """(dxw, dhr, dh_prev direct)."""
    u = h_prev.shape[1]
    z, r, hh, hr_h = (gates[:, k * u:(k + 1) * u] for k in range(4))
    dz_ = dh * (h_prev - hh)
    dhh = dh * (1 - z)
    da_h = dhh * (1 - hh * hh)
    dr = da_h * hr_h
    da_r = dr * r * (1 - r)
    da_z = dz_ * z * (1 - z)
    return (numpy.concatenate([da_z, da_r, da_h], axis=1), numpy.concatenate([da_z, da_r, da_h * r], axis=1),
            dh * z)


def lstm_sequence_reference(xw, recurrent_kernel, h0, c0):
    """(h_seq, c_seq (T+1, N, U) with index 0 = h0, c0; gates (T, N, 4U)) of the whole forward."""
    steps = xw.shape[0]
    h_seq = numpy.empty((steps + 1,) + h0.shape, h0.dtype)
    c_seq = numpy.empty_like(h_seq)
    gates = numpy.empty(xw.shape, xw.dtype)
    h_seq[0], c_seq[0] = h0, c0
    for t in range(steps):
        h_seq[t + 1], c_seq[t + 1], gates[t] = lstm_cell_reference(xw[t], h_seq[t] @ recurrent_kernel, c_seq[t])
    return h_seq, c_seq, gates


# --------------------------------------------------------------------------------------------- helpers
def _normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _close(got, want, what, tolerance=None):
    got = got.get() if hasattr(got, "get") else numpy.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"
    unwritten = numpy.isnan(got) & ~numpy.isnan(want)
    assert not unwritten.any(), f"{what}: {unwritten.sum()} unwritten (NaN) elements"
    numpy.testing.assert_allclose(got, want, **(tolerance or TOLERANCE[want.dtype.name]), err_msg=what)


class _Slots:
    """Outputs as the sequence loops pass them: slice [1] of poisoned (3, ...) time-major buffers."""

    def __init__(self, cupy):
        self.cupy, self.buffers = cupy, []

    def __call__(self, shape, dtype):
        buffer = launch.empty_output((3,) + tuple(shape), dtype)
        self.buffers.append(buffer)
        return buffer[1]

    def check_untouched(self):
        for buffer in self.buffers:
            outside = self.cupy.asnumpy(buffer[::2])
            assert numpy.isnan(outside).all(), "a kernel wrote outside its output slice"


def _pre_activations(rng, n, width, dtype):
    """Pre-activations spread over the sigmoid's and tanh's whole range, a few saturated far out."""
    a = _normal(rng, (n, width), dtype, 2.0)
    a.flat[::7] *= 30
    return a


# ------------------------------------------------------------------------------------- runs anywhere
def test_supports_only_tanh_sigmoid_on_cupy_floats():
    x = numpy.zeros((2, 3), numpy.float32)
    assert not rnn_kernels.supports("tanh", "sigmoid", x)          # NumPy: the array path
    assert not rnn_kernels.supports("relu", "sigmoid", x)
    assert not rnn_kernels.supports(None, None, x)


def test_persistent_applies_limits():
    assert not rnn_kernels.persistent_applies(32, 65, numpy.float32)
    assert not rnn_kernels.persistent_applies(32, 0, numpy.float32)
    assert not rnn_kernels.persistent_applies(0, 64, numpy.float32)
    assert not rnn_kernels.persistent_applies(32, 64, numpy.float16)
    assert not rnn_kernels.persistent_applies(32, 64, "int32")


def test_persistent_tiles():
    """Samples per block on 132 SMs (an H100): about N / 132, at most 256 threads of 4 per unit; R lies in registers,
    so shared memory holds only the two step buffers."""
    assert rnn_kernels._tile(32, 64, 132) == 1
    assert rnn_kernels._tile(700, 64, 132) == 1
    assert rnn_kernels._tile(1001, 5, 132) == 8
    assert rnn_kernels._tile(301, 17, 132) == 3
    assert rnn_kernels._tile(100000, 1, 132) == 64
    assert rnn_kernels._shared_bytes(64, 1, 4, "fwd") == 2 * 64 * 4
    assert rnn_kernels._shared_bytes(16, 4, 8, "bwd") == 8 * 4 * 16 * 8


def test_launchers_refuse_numpy_arrays():
    x = numpy.zeros((2, 8), numpy.float32)
    with pytest.raises(TypeError, match="lstm_cell_fwd: `xw` must be a CuPy array"):
        rnn_kernels.lstm_cell_forward_cuda(x, x, x[:, :2], x[:, :2], x[:, :2], x)
    with pytest.raises(TypeError, match="gru_cell_bwd: `dh` must be a CuPy array"):
        rnn_kernels.gru_cell_backward_cuda(x, x, x, x, x, x)
    with pytest.raises(TypeError, match="lstm_persistent_fwd: `xw` must be a CuPy array"):
        rnn_kernels.lstm_sequence_forward_persistent_cuda(x, x, x, x, x, x, x)


# ------------------------------------------------------------------------------------------- LSTM cell
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,u", SIZES, ids=SIZE_IDS)
def test_lstm_cell_forward(cupy_only, rng, dtype, n, u):
    cupy = cupy_only
    xw, hr = _pre_activations(rng, n, 4 * u, dtype), _normal(rng, (n, 4 * u), dtype)
    c_prev = _normal(rng, (n, u), dtype, 2.0)
    want_h, want_c, want_gates = lstm_cell_reference(xw, hr, c_prev)
    slots = _Slots(cupy)
    h, c, gates = slots((n, u), dtype), slots((n, u), dtype), slots((n, 4 * u), dtype)
    out = rnn_kernels.lstm_cell_forward_cuda(cupy.asarray(xw), cupy.asarray(hr), cupy.asarray(c_prev), h, c, gates)
    assert out[0] is h and out[1] is c and out[2] is gates
    _close(gates, want_gates, "lstm gates")
    _close(c, want_c, "lstm c")
    _close(h, want_h, "lstm h")
    slots.check_untouched()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,u", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("with_dc_next", [True, False], ids=["dc_next", "last_step"])
@pytest.mark.parametrize("with_dh_output", [False, True], ids=["dh", "dh+dh_output"])
def test_lstm_cell_backward(cupy_only, rng, dtype, n, u, with_dc_next, with_dh_output):
    cupy = cupy_only
    xw, hr = _pre_activations(rng, n, 4 * u, dtype), _normal(rng, (n, 4 * u), dtype)
    c_prev = _normal(rng, (n, u), dtype, 2.0)
    _, c, gates = lstm_cell_reference(xw, hr, c_prev)
    dh = _normal(rng, (n, u), dtype)
    dc_next = _normal(rng, (n, u), dtype) if with_dc_next else None
    # the kernel's second dh input, which it adds to dh (the step loop's dh_seq[t])
    dh_output = _normal(rng, (n, u), dtype) if with_dh_output else None
    want_dz, want_dc_prev = lstm_cell_backward_reference(dh if dh_output is None else dh + dh_output, dc_next,
                                                         gates, c, c_prev)
    slots = _Slots(cupy)
    dz, dc_prev = slots((n, 4 * u), dtype), slots((n, u), dtype)
    rnn_kernels.lstm_cell_backward_cuda(cupy.asarray(dh), None if dc_next is None else cupy.asarray(dc_next),
                                        cupy.asarray(gates), cupy.asarray(c), cupy.asarray(c_prev), dz, dc_prev,
                                        dh_output=None if dh_output is None else cupy.asarray(dh_output))
    _close(dz, want_dz, "lstm dz")
    _close(dc_prev, want_dc_prev, "lstm dc_prev")
    slots.check_untouched()


def _directional(loss, arrays, name, rng, eps=1e-6):
    """Central difference of ``loss(**arrays)`` along a random direction of ``arrays[name]``: (value, direction)."""
    v = rng.standard_normal(arrays[name].shape)
    plus = dict(arrays, **{name: arrays[name] + eps * v})
    minus = dict(arrays, **{name: arrays[name] - eps * v})
    return (loss(**plus) - loss(**minus)) / (2 * eps), v


@pytest.mark.parametrize("n,u", [(1, 1), (3, 33), (17, 64)], ids=["N1-U1", "N3-U33", "N17-U64"])
def test_lstm_cell_backward_matches_finite_differences(cupy_only, rng, n, u):
    cupy = cupy_only
    dh, dc_next = rng.standard_normal((n, u)), rng.standard_normal((n, u))

    def forward(xw, hr, c_prev):
        h, c, gates = (cupy.empty((n, w)) for w in (u, u, 4 * u))
        rnn_kernels.lstm_cell_forward_cuda(cupy.asarray(xw), cupy.asarray(hr), cupy.asarray(c_prev), h, c, gates)
        return h.get(), c.get(), gates.get()

    def loss(xw, hr, c_prev):
        h, c, _ = forward(xw, hr, c_prev)
        return float((dh * h).sum() + (dc_next * c).sum())

    arrays = dict(xw=rng.standard_normal((n, 4 * u)) * 1.5, hr=rng.standard_normal((n, 4 * u)),
                  c_prev=rng.standard_normal((n, u)))
    _, c, gates = forward(**arrays)
    dz, dc_prev = cupy.empty((n, 4 * u)), cupy.empty((n, u))
    rnn_kernels.lstm_cell_backward_cuda(cupy.asarray(dh), cupy.asarray(dc_next), cupy.asarray(gates),
                                        cupy.asarray(c), cupy.asarray(arrays["c_prev"]), dz, dc_prev)
    grads = dict(xw=dz.get(), hr=dz.get(), c_prev=dc_prev.get())
    for name in ("xw", "hr", "c_prev"):
        numeric, v = _directional(loss, arrays, name, rng)
        analytic = float((grads[name] * v).sum())
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), \
            f"lstm d/d{name}: finite differences {numeric!r}, kernel {analytic!r}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_cell_in_place_state(cupy_only, rng, dtype):
    """c may be c_prev, and dc_prev may be dc_next (each thread reads its element before writing it)."""
    cupy = cupy_only
    n, u = 17, 33
    xw, hr = _normal(rng, (n, 4 * u), dtype), _normal(rng, (n, 4 * u), dtype)
    c_prev, dh, dc_next = (_normal(rng, (n, u), dtype) for _ in range(3))
    want_h, want_c, gates = lstm_cell_reference(xw, hr, c_prev)
    c = cupy.asarray(c_prev)
    h, g = cupy.empty((n, u), dtype), cupy.empty((n, 4 * u), dtype)
    rnn_kernels.lstm_cell_forward_cuda(cupy.asarray(xw), cupy.asarray(hr), c, h, c, g)
    _close(c, want_c, "lstm c, in place")
    _close(h, want_h, "lstm h, c in place")
    want_dz, want_dc_prev = lstm_cell_backward_reference(dh, dc_next, gates, want_c, c_prev)
    dc = cupy.asarray(dc_next)
    dz = cupy.empty((n, 4 * u), dtype)
    rnn_kernels.lstm_cell_backward_cuda(cupy.asarray(dh), dc, cupy.asarray(gates), cupy.asarray(want_c),
                                        cupy.asarray(c_prev), dz, dc)
    _close(dz, want_dz, "lstm dz, dc in place")
    _close(dc, want_dc_prev, "lstm dc_prev, in place")


# -------------------------------------------------------------------------------------------- GRU cell
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,u", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("with_hr_bias", [False, True], ids=["hr", "hr+hr_bias"])
def test_gru_cell_forward(cupy_only, rng, dtype, n, u, with_hr_bias):
    cupy = cupy_only
    xw, hr = _pre_activations(rng, n, 3 * u, dtype), _normal(rng, (n, 3 * u), dtype)
    h_prev = _normal(rng, (n, u), dtype)
    # the recurrent bias, which the kernel adds to each row of hr where it is given
    hr_bias = _normal(rng, (3 * u,), dtype) if with_hr_bias else None
    want_h, want_gates = gru_cell_reference(xw, hr if hr_bias is None else hr + hr_bias, h_prev)
    slots = _Slots(cupy)
    h, gates = slots((n, u), dtype), slots((n, 4 * u), dtype)
    out = rnn_kernels.gru_cell_forward_cuda(cupy.asarray(xw), cupy.asarray(hr), cupy.asarray(h_prev), h, gates,
                                            hr_bias=None if hr_bias is None else cupy.asarray(hr_bias))
    assert out[0] is h and out[1] is gates
    _close(gates, want_gates, "gru gates")
    _close(h, want_h, "gru h")
    slots.check_untouched()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,u", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("parts", ["dh", "direct+dh", "dh+output", "direct+dh+output"])
def test_gru_cell_backward(cupy_only, rng, dtype, n, u, parts):
    cupy = cupy_only
    xw, hr = _pre_activations(rng, n, 3 * u, dtype), _normal(rng, (n, 3 * u), dtype)
    h_prev = _normal(rng, (n, u), dtype)
    _, gates = gru_cell_reference(xw, hr, h_prev)
    dh = _normal(rng, (n, u), dtype)
    # the kernel's optional parts of h_t's gradient, summed as (dh_direct + dh) + dh_output
    dh_direct = _normal(rng, (n, u), dtype) if "direct" in parts else None
    dh_output = _normal(rng, (n, u), dtype) if "output" in parts else None
    whole = dh if dh_direct is None else dh_direct + dh
    whole = whole if dh_output is None else whole + dh_output
    want_dxw, want_dhr, want_dh_prev = gru_cell_backward_reference(whole, gates, h_prev)
    slots = _Slots(cupy)
    dxw, dhr, dh_prev = slots((n, 3 * u), dtype), slots((n, 3 * u), dtype), slots((n, u), dtype)
    rnn_kernels.gru_cell_backward_cuda(cupy.asarray(dh), cupy.asarray(gates), cupy.asarray(h_prev), dxw, dhr,
                                       dh_prev, dh_direct=None if dh_direct is None else cupy.asarray(dh_direct),
                                       dh_output=None if dh_output is None else cupy.asarray(dh_output))
    _close(dxw, want_dxw, "gru dxw")
    _close(dhr, want_dhr, "gru dhr")
    _close(dh_prev, want_dh_prev, "gru dh_prev")
    slots.check_untouched()


@pytest.mark.parametrize("n,u", [(1, 1), (3, 33), (17, 64)], ids=["N1-U1", "N3-U33", "N17-U64"])
def test_gru_cell_backward_matches_finite_differences(cupy_only, rng, n, u):
    cupy = cupy_only
    dh = rng.standard_normal((n, u))

    def forward(xw, hr, h_prev):
        h, gates = cupy.empty((n, u)), cupy.empty((n, 4 * u))
        rnn_kernels.gru_cell_forward_cuda(cupy.asarray(xw), cupy.asarray(hr), cupy.asarray(h_prev), h, gates)
        return h.get(), gates.get()

    def loss(xw, hr, h_prev):
        return float((dh * forward(xw, hr, h_prev)[0]).sum())

    arrays = dict(xw=rng.standard_normal((n, 3 * u)) * 1.5, hr=rng.standard_normal((n, 3 * u)),
                  h_prev=rng.standard_normal((n, u)))
    _, gates = forward(**arrays)
    dxw, dhr, dh_prev = cupy.empty((n, 3 * u)), cupy.empty((n, 3 * u)), cupy.empty((n, u))
    rnn_kernels.gru_cell_backward_cuda(cupy.asarray(dh), cupy.asarray(gates), cupy.asarray(arrays["h_prev"]),
                                       dxw, dhr, dh_prev)
    grads = dict(xw=dxw.get(), hr=dhr.get(), h_prev=dh_prev.get())
    for name in ("xw", "hr", "h_prev"):
        numeric, v = _directional(loss, arrays, name, rng)
        analytic = float((grads[name] * v).sum())
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), \
            f"gru d/d{name}: finite differences {numeric!r}, kernel {analytic!r}"


def test_gru_dh_prev_may_be_dh(cupy_only, rng):
    cupy = cupy_only
    n, u = 3, 33
    xw, hr, h_prev, dh = (rng.standard_normal(s) for s in ((n, 3 * u), (n, 3 * u), (n, u), (n, u)))
    _, gates = gru_cell_reference(xw, hr, h_prev)
    want = gru_cell_backward_reference(dh, gates, h_prev)
    d = cupy.asarray(dh)
    dxw, dhr = cupy.empty((n, 3 * u)), cupy.empty((n, 3 * u))
    rnn_kernels.gru_cell_backward_cuda(d, cupy.asarray(gates), cupy.asarray(h_prev), dxw, dhr, d)
    _close(dxw, want[0], "gru dxw, dh in place")
    _close(dhr, want[1], "gru dhr, dh in place")
    _close(d, want[2], "gru dh_prev, in place")


# ------------------------------------------------------------------------------------ persistent LSTM
def _sequence_inputs(rng, steps, n, u, dtype):
    xw = _normal(rng, (steps, n, 4 * u), dtype)
    recurrent_kernel = (rng.uniform(-1, 1, (u, 4 * u)) * (2 / numpy.sqrt(u))).astype(dtype)
    return xw, recurrent_kernel, _normal(rng, (n, u), dtype, 0.5), _normal(rng, (n, u), dtype)


def _step_loop(cupy, xw, recurrent_kernel, h0, c0):
    """The sequence loop of ops/rnn.py on the GPU: a cuBLAS product and one cell launch per step."""
    steps, n, width = xw.shape
    u = width // 4
    h_seq = launch.empty_output((steps + 1, n, u), xw.dtype)
    c_seq = launch.empty_output((steps + 1, n, u), xw.dtype)
    gates = launch.empty_output((steps, n, 4 * u), xw.dtype)
    h_seq[0], c_seq[0] = h0, c0
    hr = cupy.empty((n, 4 * u), xw.dtype)
    for t in range(steps):
        cupy.matmul(h_seq[t], recurrent_kernel, out=hr)
        rnn_kernels.lstm_cell_forward_cuda(xw[t], hr, c_seq[t], h_seq[t + 1], c_seq[t + 1], gates[t])
    return h_seq, c_seq, gates


# The last two take tiles of several samples whose quads of lanes (forward) start mid-warp, and a last tile of
# fewer samples than the others: 4*NB*U = 160 threads at U = 5 (NB = 8), 204 at U = 17 (NB = 3).
PERSISTENT_CASES = [(steps, n, u) for steps in (1, 17) for n, u in SIZES] + [(0, 3, 33), (5, 1000, 33), (3, 700, 64),
                                                                             (3, 1001, 5), (4, 301, 17)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps,n,u", PERSISTENT_CASES, ids=[f"T{t}-N{n}-U{u}" for t, n, u in PERSISTENT_CASES])
def test_persistent_lstm_matches_step_loop_and_numpy(cupy_only, rng, dtype, steps, n, u):
    cupy = cupy_only
    assert rnn_kernels.persistent_applies(n, u, dtype)   # R lies in registers: every device runs U <= 64
    xw, recurrent_kernel, h0, c0 = _sequence_inputs(rng, steps, n, u, dtype)
    d_xw, d_r, d_h0, d_c0 = (cupy.asarray(a) for a in (xw, recurrent_kernel, h0, c0))
    h_seq = launch.empty_output((steps + 1, n, u), dtype)
    c_seq = launch.empty_output((steps + 1, n, u), dtype)
    gates = launch.empty_output((steps, n, 4 * u), dtype)
    out = rnn_kernels.lstm_sequence_forward_persistent_cuda(d_xw, d_r, d_h0, d_c0, h_seq, c_seq, gates)
    assert out[0] is h_seq and out[1] is c_seq and out[2] is gates

    loop = _step_loop(cupy, d_xw, d_r, d_h0, d_c0)
    want = lstm_sequence_reference(xw, recurrent_kernel, h0, c0)
    tolerance = SEQUENCE_TOLERANCE[dtype]
    for got, by_loop, by_numpy, name in zip((h_seq, c_seq, gates), loop, want, ("h_seq", "c_seq", "gates")):
        _close(got, cupy.asnumpy(by_loop), f"persistent {name} against the step loop", tolerance)
        _close(got, by_numpy, f"persistent {name} against NumPy", tolerance)
    numpy.testing.assert_array_equal(cupy.asnumpy(h_seq[0]), h0)
    numpy.testing.assert_array_equal(cupy.asnumpy(c_seq[0]), c0)


def test_persistent_lstm_takes_the_initial_state_in_place(cupy_only, rng):
    """h0 and c0 may be h_seq[0] and c_seq[0] themselves (the layout ops/rnn.py allocates)."""
    cupy = cupy_only
    steps, n, u = 4, 5, 64
    xw, recurrent_kernel, h0, c0 = _sequence_inputs(rng, steps, n, u, "float64")
    h_seq, c_seq = cupy.empty((steps + 1, n, u)), cupy.empty((steps + 1, n, u))
    h_seq[0], c_seq[0] = cupy.asarray(h0), cupy.asarray(c0)
    gates = cupy.empty((steps, n, 4 * u))
    rnn_kernels.lstm_sequence_forward_persistent_cuda(cupy.asarray(xw), cupy.asarray(recurrent_kernel), h_seq[0],
                                                      c_seq[0], h_seq, c_seq, gates)
    want = lstm_sequence_reference(xw, recurrent_kernel, h0, c0)
    for got, expected, name in zip((h_seq, c_seq, gates), want, ("h_seq", "c_seq", "gates")):
        _close(got, expected, f"persistent {name}, state in place", SEQUENCE_TOLERANCE["float64"])


def test_persistent_lstm_refuses_large_units(cupy_only):
    cupy = cupy_only
    steps, n, u = 2, 3, 65
    with pytest.raises(ValueError, match=r"lstm_persistent_fwd_f32: .*units = 65"):
        rnn_kernels.lstm_sequence_forward_persistent_cuda(
            cupy.zeros((steps, n, 4 * u), cupy.float32), cupy.zeros((u, 4 * u), cupy.float32),
            cupy.zeros((n, u), cupy.float32), cupy.zeros((n, u), cupy.float32),
            cupy.zeros((steps + 1, n, u), cupy.float32), cupy.zeros((steps + 1, n, u), cupy.float32),
            cupy.zeros((steps, n, 4 * u), cupy.float32))


def lstm_sequence_backward_reference(dh_seq, dh_last, dc_last, gates, c_seq, recurrent_kernel):
    """(dz (T, N, 4U), dh0, dc0) of backpropagation through the whole sequence."""
    steps, n, u = c_seq.shape[0] - 1, c_seq.shape[1], c_seq.shape[2]
    dz = numpy.empty(gates.shape, gates.dtype)
    dh_next = numpy.zeros((n, u), gates.dtype) if dh_last is None else dh_last
    dc_next = dc_last
    for t in range(steps - 1, -1, -1):
        dh = dh_next if dh_seq is None else dh_next + dh_seq[t]
        dz[t], dc_next = lstm_cell_backward_reference(dh, dc_next, gates[t], c_seq[t + 1], c_seq[t])
        dh_next = dz[t] @ recurrent_kernel.T
    return dz, dh_next, numpy.zeros((n, u), gates.dtype) if dc_next is None else dc_next


def _backward_step_loop(cupy, dh_seq, dh_last, dc_last, gates, c_seq, recurrent_kernel):
    """The backward loop of ops/rnn.py on the GPU: one cell launch and a cuBLAS product per step."""
    steps, n, width = gates.shape
    u = width // 4
    dz = launch.empty_output((steps, n, 4 * u), gates.dtype)
    dh_next = cupy.zeros((n, u), gates.dtype) if dh_last is None else dh_last.copy()
    dc_next = dc_last
    for t in range(steps - 1, -1, -1):
        dh = dh_next if dh_seq is None else dh_next + dh_seq[t]
        dc_prev = cupy.empty((n, u), gates.dtype)
        rnn_kernels.lstm_cell_backward_cuda(dh, dc_next, gates[t], c_seq[t + 1], c_seq[t], dz[t], dc_prev)
        dh_next, dc_next = dz[t] @ recurrent_kernel.T, dc_prev
    return dz, dh_next, cupy.zeros((n, u), gates.dtype) if dc_next is None else dc_next


GRADIENTS_FROM_ABOVE = {"sequence+state": (True, True), "sequence": (True, False), "last state": (False, True)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps,n,u", PERSISTENT_CASES, ids=[f"T{t}-N{n}-U{u}" for t, n, u in PERSISTENT_CASES])
@pytest.mark.parametrize("above", list(GRADIENTS_FROM_ABOVE))
def test_persistent_lstm_backward_matches_step_loop_and_numpy(cupy_only, rng, dtype, steps, n, u, above):
    cupy = cupy_only
    assert rnn_kernels.persistent_applies(n, u, dtype)   # R lies in registers: every device runs U <= 64
    xw, recurrent_kernel, h0, c0 = _sequence_inputs(rng, steps, n, u, dtype)
    _, c_seq, gates = lstm_sequence_reference(xw, recurrent_kernel, h0, c0)
    with_sequence, with_state = GRADIENTS_FROM_ABOVE[above]
    dh_seq = _normal(rng, (steps, n, u), dtype) if with_sequence else None
    dh_last, dc_last = (_normal(rng, (n, u), dtype), _normal(rng, (n, u), dtype)) if with_state else (None, None)

    def device(a):
        return None if a is None else cupy.asarray(a)
    d_inputs = [device(a) for a in (dh_seq, dh_last, dc_last, gates, c_seq, recurrent_kernel)]
    dz = launch.empty_output((steps, n, 4 * u), dtype)
    dh0, dc0 = launch.empty_output((n, u), dtype), launch.empty_output((n, u), dtype)
    out = rnn_kernels.lstm_sequence_backward_persistent_cuda(*d_inputs, dz, dh0, dc0)
    assert out[0] is dz and out[1] is dh0 and out[2] is dc0

    loop = _backward_step_loop(cupy, *d_inputs)
    want = lstm_sequence_backward_reference(dh_seq, dh_last, dc_last, gates, c_seq, recurrent_kernel)
    tolerance = SEQUENCE_TOLERANCE[dtype]
    for got, by_loop, by_numpy, name in zip((dz, dh0, dc0), loop, want, ("dz", "dh0", "dc0")):
        _close(got, cupy.asnumpy(by_loop), f"persistent backward {name} against the step loop", tolerance)
        _close(got, by_numpy, f"persistent backward {name} against NumPy", tolerance)


def test_persistent_lstm_backward_matches_finite_differences(cupy_only, rng):
    """float64 through the whole sequence: the forward kernel's outputs along a random direction."""
    cupy = cupy_only
    steps, n, u = 5, 3, 7
    xw, recurrent_kernel, h0, c0 = _sequence_inputs(rng, steps, n, u, "float64")
    dh_seq, dh_last, dc_last = (_normal(rng, shape, "float64") for shape in ((steps, n, u), (n, u), (n, u)))

    def loss(xw, h0, c0):
        h_seq, c_seq, _ = lstm_sequence_reference(xw, recurrent_kernel, h0, c0)
        return (numpy.sum(h_seq[1:] * dh_seq) + numpy.sum(h_seq[-1] * dh_last)
                + numpy.sum(c_seq[-1] * dc_last))
    _, c_seq, gates = lstm_sequence_reference(xw, recurrent_kernel, h0, c0)
    dz, dh0, dc0 = (cupy.empty(shape) for shape in ((steps, n, 4 * u), (n, u), (n, u)))
    rnn_kernels.lstm_sequence_backward_persistent_cuda(*(cupy.asarray(a) for a in (dh_seq, dh_last, dc_last, gates,
                                                                                  c_seq, recurrent_kernel)),
                                                       dz, dh0, dc0)
    # dz is the gradient of xw (z = xw + hr); dh0 and dc0 those of the initial state
    for name, array, gradient in (("xw", xw, dz), ("h0", h0, dh0), ("c0", c0, dc0)):
        direction = rng.standard_normal(array.shape)
        args = {"xw": xw, "h0": h0, "c0": c0}
        eps = 1e-6
        plus = loss(**{**args, name: array + eps * direction})
        minus = loss(**{**args, name: array - eps * direction})
        numeric = (plus - minus) / (2 * eps)
        analytic = float(numpy.sum(cupy.asnumpy(gradient) * direction))
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (name, numeric, analytic)


def test_persistent_lstm_backward_refuses_large_units(cupy_only):
    cupy = cupy_only
    steps, n, u = 2, 3, 65
    f32 = cupy.float32
    with pytest.raises(ValueError, match=r"lstm_persistent_bwd_f32: .*units = 65"):
        rnn_kernels.lstm_sequence_backward_persistent_cuda(
            None, None, None, cupy.zeros((steps, n, 4 * u), f32), cupy.zeros((steps + 1, n, u), f32),
            cupy.zeros((u, 4 * u), f32), cupy.zeros((steps, n, 4 * u), f32), cupy.zeros((n, u), f32),
            cupy.zeros((n, u), f32))


# ------------------------------------------------------------------------------------------ bad input
def test_cell_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    n, u = 3, 5
    f32 = cupy.float32

    def lstm_args(**changes):
        args = dict(xw=cupy.zeros((n, 4 * u), f32), hr=cupy.zeros((n, 4 * u), f32), c_prev=cupy.zeros((n, u), f32),
                    h=cupy.zeros((n, u), f32), c=cupy.zeros((n, u), f32), gates=cupy.zeros((n, 4 * u), f32))
        args.update(changes)
        return args

    fwd = rnn_kernels.lstm_cell_forward_cuda
    with pytest.raises(TypeError, match="lstm_cell_fwd: `xw` must be float32 or float64, got float16"):
        fwd(**lstm_args(xw=cupy.zeros((n, 4 * u), cupy.float16)))
    with pytest.raises(TypeError, match="lstm_cell_fwd_f32: `hr` must have dtype float32, got float64"):
        fwd(**lstm_args(hr=cupy.zeros((n, 4 * u))))
    with pytest.raises(ValueError, match=r"lstm_cell_fwd_f32: `c_prev` must have shape \(3, 5\), got \(3, 6\)"):
        fwd(**lstm_args(c_prev=cupy.zeros((n, u + 1), f32)))
    with pytest.raises(ValueError, match="lstm_cell_fwd_f32: `h` must be C-contiguous"):
        fwd(**lstm_args(h=cupy.zeros((u, n), f32).T))
    with pytest.raises(TypeError, match="lstm_cell_fwd_f32: `gates` must be a CuPy array"):
        fwd(**lstm_args(gates=numpy.zeros((n, 4 * u), numpy.float32)))
    with pytest.raises(ValueError, match=r"lstm_cell_fwd_f32: `xw` has 21 columns, not a multiple of 4"):
        fwd(**lstm_args(xw=cupy.zeros((n, 4 * u + 1), f32)))
    with pytest.raises(ValueError, match=r"lstm_cell_fwd_f32: `xw` must have shape \(N, 4U\)"):
        fwd(**lstm_args(xw=cupy.zeros((1, n, 4 * u), f32)))
    with pytest.raises(ValueError, match="lstm_cell_fwd_f32: `xw` must be C-contiguous"):
        fwd(**lstm_args(xw=cupy.zeros((n, 8 * u), f32)[:, ::2]))

    bwd = rnn_kernels.lstm_cell_backward_cuda
    g = cupy.zeros((n, 4 * u), f32)
    s = [cupy.zeros((n, u), f32) for _ in range(4)]   # dh, c, c_prev, dc_prev
    with pytest.raises(ValueError, match=r"lstm_cell_bwd_f32: `dc_next` must have shape \(3, 5\)"):
        bwd(s[0], cupy.zeros((n, u + 1), f32), g, s[1], s[2], cupy.zeros((n, 4 * u), f32), s[3])
    with pytest.raises(TypeError, match="lstm_cell_bwd_f32: `dz` must have dtype float32"):
        bwd(s[0], None, g, s[1], s[2], cupy.zeros((n, 4 * u)), s[3])
    with pytest.raises(ValueError, match=r"lstm_cell_bwd_f32: `gates` must have shape \(3, 20\)"):
        bwd(s[0], None, g[:, :-1], s[1], s[2], cupy.zeros((n, 4 * u), f32), s[3])
    with pytest.raises(ValueError, match=r"lstm_cell_bwd_f32: `dh` must have shape \(N, U\)"):
        bwd(s[0][0], None, g, s[1], s[2], cupy.zeros((n, 4 * u), f32), s[3])

    with pytest.raises(ValueError, match=r"gru_cell_fwd_f32: `gates` must have shape \(3, 20\)"):
        rnn_kernels.gru_cell_forward_cuda(cupy.zeros((n, 3 * u), f32), cupy.zeros((n, 3 * u), f32), s[0], s[1],
                                          cupy.zeros((n, 3 * u), f32))
    with pytest.raises(ValueError, match=r"gru_cell_fwd_f32: `xw` has 16 columns, not a multiple of 3"):
        rnn_kernels.gru_cell_forward_cuda(cupy.zeros((n, 16), f32), cupy.zeros((n, 16), f32), s[0], s[1], g)
    with pytest.raises(TypeError, match="gru_cell_bwd_f32: `h_prev` must be a CuPy array"):
        rnn_kernels.gru_cell_backward_cuda(s[0], g, numpy.zeros((n, u), numpy.float32),
                                           cupy.zeros((n, 3 * u), f32), cupy.zeros((n, 3 * u), f32), s[1])
    with pytest.raises(ValueError, match=r"gru_cell_bwd_f32: `dhr` must have shape \(3, 15\)"):
        rnn_kernels.gru_cell_backward_cuda(s[0], g, s[1], cupy.zeros((n, 3 * u), f32), g, s[2])


def test_persistent_launcher_rejects_bad_arguments(cupy_only):
    cupy = cupy_only
    steps, n, u = 4, 3, 8
    f64 = cupy.float64

    def args(**changes):
        a = dict(xw=cupy.zeros((steps, n, 4 * u), f64), recurrent_kernel=cupy.zeros((u, 4 * u), f64),
                 h0=cupy.zeros((n, u), f64), c0=cupy.zeros((n, u), f64), h_seq=cupy.zeros((steps + 1, n, u), f64),
                 c_seq=cupy.zeros((steps + 1, n, u), f64), gates=cupy.zeros((steps, n, 4 * u), f64))
        a.update(changes)
        return a

    run = rnn_kernels.lstm_sequence_forward_persistent_cuda
    with pytest.raises(ValueError, match=r"lstm_persistent_fwd_f64: `xw` must have shape \(T, N, 4U\)"):
        run(**args(xw=cupy.zeros((n, 4 * u), f64)))
    with pytest.raises(ValueError, match=r"lstm_persistent_fwd_f64: `h_seq` must have shape \(5, 3, 8\), "
                                         r"got \(4, 3, 8\)"):
        run(**args(h_seq=cupy.zeros((steps, n, u), f64)))
    with pytest.raises(ValueError, match=r"lstm_persistent_fwd_f64: `recurrent_kernel` must have shape \(8, 32\)"):
        run(**args(recurrent_kernel=cupy.zeros((4 * u, u), f64)))
    with pytest.raises(ValueError, match="lstm_persistent_fwd_f64: `recurrent_kernel` must be C-contiguous"):
        run(**args(recurrent_kernel=cupy.zeros((4 * u, u), f64).T))
    with pytest.raises(TypeError, match="lstm_persistent_fwd_f64: `c0` must have dtype float64, got float32"):
        run(**args(c0=cupy.zeros((n, u), cupy.float32)))
    with pytest.raises(TypeError, match="lstm_persistent_fwd_f64: `gates` must be a CuPy array"):
        run(**args(gates=numpy.zeros((steps, n, 4 * u))))
    with pytest.raises(TypeError, match="lstm_persistent_fwd: `xw` must be float32 or float64, got int32"):
        run(**args(xw=cupy.zeros((steps, n, 4 * u), cupy.int32)))


def test_persistent_backward_launcher_rejects_bad_arguments(cupy_only):
    cupy = cupy_only
    steps, n, u = 4, 3, 8
    f64 = cupy.float64

    def args(**changes):
        a = dict(dh_seq=cupy.zeros((steps, n, u), f64), dh_last=None, dc_last=cupy.zeros((n, u), f64),
                 gates=cupy.zeros((steps, n, 4 * u), f64), c_seq=cupy.zeros((steps + 1, n, u), f64),
                 recurrent_kernel=cupy.zeros((u, 4 * u), f64), dz=cupy.zeros((steps, n, 4 * u), f64),
                 dh0=cupy.zeros((n, u), f64), dc0=cupy.zeros((n, u), f64))
        a.update(changes)
        return a

    run = rnn_kernels.lstm_sequence_backward_persistent_cuda
    with pytest.raises(ValueError, match=r"lstm_persistent_bwd_f64: `gates` must have shape \(T, N, 4U\)"):
        run(**args(gates=cupy.zeros((n, 4 * u), f64)))
    with pytest.raises(ValueError, match=r"lstm_persistent_bwd_f64: `c_seq` must have shape \(5, 3, 8\), "
                                         r"got \(4, 3, 8\)"):
        run(**args(c_seq=cupy.zeros((steps, n, u), f64)))
    with pytest.raises(ValueError, match=r"lstm_persistent_bwd_f64: `dh_seq` must have shape \(4, 3, 8\)"):
        run(**args(dh_seq=cupy.zeros((steps, n, 4 * u), f64)))
    with pytest.raises(ValueError, match="lstm_persistent_bwd_f64: `recurrent_kernel` must be C-contiguous"):
        run(**args(recurrent_kernel=cupy.zeros((4 * u, u), f64).T))
    with pytest.raises(TypeError, match="lstm_persistent_bwd_f64: `dc_last` must have dtype float64, got float32"):
        run(**args(dc_last=cupy.zeros((n, u), cupy.float32)))
    with pytest.raises(TypeError, match="lstm_persistent_bwd_f64: `dh0` must be a CuPy array"):
        run(**args(dh0=numpy.zeros((n, u))))
    with pytest.raises(TypeError, match="lstm_persistent_bwd: `gates` must be float32 or float64, got int32"):
        run(**args(gates=cupy.zeros((steps, n, 4 * u), cupy.int32)))
