"""CUDA-graph capture and replay of the LSTM and GRU step loops (gpu_dl/ops/rnn_graphs.py).

With graphs on, the unmasked fused step loops above the persistent kernels'
64 units run as a graph captured at a signature's first call and replayed
after: the results must be the eager loop's bit for bit (graphs off), a
call's outputs must survive the next call, a new T or N captures anew, a
capture that allocates or raises falls back to the eager loop for good, and
the switch, NumPy, masks, the persistent kernels and someone else's capture
keep the eager loop. The CuPy bodies run on the emulated GPU too, whose
stand-in records kernel launches and ``cupy.dot(out=...)`` while capturing
and refuses any other device operation (tests/emulated_gpu/cupy).
"""
import numpy
import pytest

from device_work import DeviceWork
from gpu_dl import activations, backend, layers, models
from gpu_dl.backend import config, launch
from gpu_dl.ops import rnn, rnn_graphs, rnn_kernels

TANH, SIGMOID = activations.get("tanh"), activations.get("sigmoid")
N = 3
D = 4


@pytest.fixture(autouse=True)
def fresh_graphs():
    """Every test starts with graphs on and an empty cache, and leaves them so."""
    previous = config.rnn_graphs()
    config.set_rnn_graphs(True)
    rnn_graphs.clear()
    yield
    rnn_graphs.clear()
    config.set_rnn_graphs(previous)


def _emulated(cupy):
    return cupy.__version__.endswith("emulated")


def _weights(rng, kind, u):
    g = 4 if kind == "LSTM" else 3
    bias = rng.standard_normal((g * u,) if kind == "LSTM" else (2, g * u))
    return [(0.3 * rng.standard_normal((D, g * u))).astype("float32"),
            (0.1 * rng.standard_normal((u, g * u))).astype("float32"), bias.astype("float32")]


def _run_layer(cupy, kind, graphs, weights, x, dy, *, calls=1, initial=None, **options):
    """Host copies of every output, dx, the weight gradients and the initial states' gradients of ``calls``
    forward+backward passes of a fresh layer holding ``weights`` (graphs on or off)."""
    config.set_rnn_graphs(graphs)
    u = weights[1].shape[0]
    layer = getattr(layers, kind)(u, **options)
    layer.build(x.shape)
    layer.set_weights(weights)
    results = []
    for _ in range(calls):
        state = None if initial is None else [cupy.asarray(s) for s in initial]
        y = layer(cupy.asarray(x), training=True, initial_state=state)
        dx = layer.backward(cupy.asarray(dy))
        results += [y, dx] + [v.grad for v in layer.trainable_weights]
        results += list(layer.initial_state_gradients) if initial is not None else []
    return [cupy.asnumpy(a) for a in results]


CASES = [  # (steps, units, options, initial states)
    (5, 65, {"return_sequences": True}, False),
    (17, 70, {"return_sequences": False}, False),
    (5, 70, {"return_sequences": True, "go_backwards": True}, False),
    (17, 65, {"return_sequences": True}, True),
]


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("steps,units,options,initial", CASES,
                         ids=["T5-U65-sequences", "T17-U70-last", "T5-U70-go_backwards", "T17-U65-initial_states"])
def test_layer_with_graphs_equals_eager_bit_for_bit(cupy_only, rng, kind, steps, units, options, initial):
    cupy = cupy_only
    assert not rnn_kernels.persistent_applies(N, units, numpy.float32)
    weights = _weights(rng, kind, units)
    x = rng.standard_normal((N, steps, D)).astype("float32")
    dy = rng.standard_normal((N, steps, units) if options["return_sequences"] else (N, units)).astype("float32")
    states = None
    if initial:
        states = [rng.standard_normal((N, units)).astype("float32") for _ in range(2 if kind == "LSTM" else 1)]
    eager = _run_layer(cupy, kind, False, weights, x, dy, calls=2, initial=states, **options)
    graphed = _run_layer(cupy, kind, True, weights, x, dy, calls=2, initial=states, **options)
    # two calls: the first captures, the second replays
    assert rnn_graphs.stats()["captures"] == 2 and rnn_graphs.stats()["replays"] == 4
    assert len(eager) == len(graphed)
    for index, (got, want) in enumerate(zip(graphed, eager)):
        assert not numpy.isnan(got).any(), f"result {index}: unwritten elements"
        numpy.testing.assert_array_equal(got, want, err_msg=f"result {index}")


def test_numpy_never_captures(xp, rng):
    layer = layers.LSTM(65, return_sequences=True)
    x = xp.asarray(rng.standard_normal((N, 5, D)).astype("float32"))
    y = layer(x, training=True)
    layer.backward(xp.ones_like(y))
    captured = rnn_graphs.stats()["captures"]
    assert captured == (0 if xp is numpy else 2)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_same_signature_replays_and_a_new_t_or_n_captures(cupy_only, rng, kind):
    cupy = cupy_only
    layer = getattr(layers, kind)(65, return_sequences=True)

    def call(n, steps):
        y = layer(cupy.asarray(rng.standard_normal((n, steps, D)).astype("float32")), training=True)
        layer.backward(cupy.ones_like(y))
        stats = rnn_graphs.stats()
        return stats["captures"], stats["replays"]
    assert call(N, 5) == (2, 2)
    assert call(N, 5) == (2, 4)         # forward and backward replayed, nothing captured
    assert call(N, 6) == (4, 6)         # another T
    assert call(N + 1, 6) == (6, 8)     # another N
    assert call(N, 5) == (6, 10)        # the first signature is still cached


def _lstm_arrays(cupy, rng, steps=5, n=N, u=65):
    arrays = [rng.standard_normal((steps, n, D)), 0.3 * rng.standard_normal((D, 4 * u)),
              0.1 * rng.standard_normal((u, 4 * u)), rng.standard_normal(4 * u)]
    return [cupy.asarray(a.astype("float32")) for a in arrays] + [None, None]


def test_outputs_of_a_call_survive_the_next_and_its_backward_uses_its_own(cupy_only, rng):
    """A layer called twice before its backward, or two layers of one shape: call 1's outputs and saved arrays
    are its own, not the workspace's."""
    cupy = cupy_only
    first, second = _lstm_arrays(cupy, rng), _lstm_arrays(cupy, rng)
    h1, c1, saved1 = rnn.lstm_forward(*first, TANH, SIGMOID, training=True)
    kept = [cupy.asnumpy(a) for a in (h1, c1, saved1[5])]
    h2, _, _ = rnn.lstm_forward(*second, TANH, SIGMOID, training=True)
    assert rnn_graphs.stats()["replays"] == 2
    for got, want in zip((h1, c1, saved1[5]), kept):
        numpy.testing.assert_array_equal(cupy.asnumpy(got), want)
    assert not numpy.array_equal(cupy.asnumpy(h2), kept[0])
    dh_seq = cupy.asarray(rng.standard_normal(h1[1:].shape).astype("float32"))
    graphed = rnn.lstm_backward(saved1, dh_seq)
    config.set_rnn_graphs(False)
    _, _, saved_eager = rnn.lstm_forward(*first, TANH, SIGMOID, training=True)
    eager = rnn.lstm_backward(saved_eager, dh_seq)
    for got, want in zip(graphed, eager):
        numpy.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want))


def test_new_weight_arrays_are_copied_in(cupy_only, rng):
    cupy = cupy_only
    arrays = _lstm_arrays(cupy, rng)
    rnn.lstm_forward(*arrays, TANH, SIGMOID)
    arrays[2] = cupy.asarray((0.1 * rng.standard_normal(arrays[2].shape)).astype("float32"))   # a new array
    h, _, _ = rnn.lstm_forward(*arrays, TANH, SIGMOID)
    config.set_rnn_graphs(False)
    want, _, _ = rnn.lstm_forward(*arrays, TANH, SIGMOID)
    numpy.testing.assert_array_equal(cupy.asnumpy(h), cupy.asnumpy(want))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_inference_calls_equal_eager_and_save_nothing(cupy_only, rng, kind):
    cupy = cupy_only
    arrays = _lstm_arrays(cupy, rng)
    if kind == "GRU":
        x, _, _, _, h0, _ = arrays
        arrays = [x, cupy.asarray((0.3 * rng.standard_normal((D, 195))).astype("float32")),
                  cupy.asarray((0.1 * rng.standard_normal((65, 195))).astype("float32")),
                  cupy.asarray(rng.standard_normal((2, 195)).astype("float32")), h0]

    def forward():
        if kind == "LSTM":
            h, c, saved = rnn.lstm_forward(*arrays, TANH, SIGMOID, training=False)
            return [h, c], saved
        h, saved = rnn.gru_forward(*arrays, TANH, SIGMOID, training=False)
        return [h], saved
    graphed = [forward() for _ in range(2)]
    assert rnn_graphs.stats()["captures"] == 1 and rnn_graphs.stats()["replays"] == 2
    config.set_rnn_graphs(False)
    eager, _ = forward()
    for states, saved in graphed:
        assert saved is None
        for got, want in zip(states, eager):
            numpy.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want))


def _patched_forward_steps(monkeypatch, extra):
    """``rnn_kernels.lstm_cell_forward_steps`` whose steps also run ``extra()`` first (inside the captured loop)."""
    bind = rnn_kernels.lstm_cell_forward_steps

    def binding(*args):
        step = bind(*args)

        def patched(t):
            extra()
            step(t)
        return patched
    monkeypatch.setattr(rnn_kernels, "lstm_cell_forward_steps", binding)


@pytest.mark.parametrize("fault", ["allocates", "raises", "cannot_begin"])
def test_a_capture_that_allocates_or_raises_falls_back_to_eager_for_good(cupy_only, rng, monkeypatch, fault):
    cupy = cupy_only
    if fault == "allocates":
        # what a pool hands out while capturing would be baked into the graph: an allocation alone, no device work
        _patched_forward_steps(monkeypatch, lambda: cupy.empty((7,), "float32"))
    elif fault == "raises":
        def refused():
            if cupy.cuda.get_current_stream().is_capturing():
                raise cupy.cuda.runtime.CUDARuntimeError(900)    # cudaErrorStreamCaptureUnsupported
        _patched_forward_steps(monkeypatch, refused)
    else:
        class Refusing(cupy.cuda.Stream):
            def begin_capture(self, mode=None):
                raise cupy.cuda.runtime.CUDARuntimeError(900)
        monkeypatch.setattr(cupy.cuda, "Stream", Refusing)
    arrays = _lstm_arrays(cupy, rng)
    got = [rnn.lstm_forward(*arrays, TANH, SIGMOID)[0] for _ in range(2)]
    stats = rnn_graphs.stats()
    assert stats["captures"] == 0 and stats["replays"] == 0 and stats["refusals"] == 1   # refused once, not retried
    (reason,) = stats["refused"].values()
    assert ("allocation" in reason) if fault == "allocates" else ("raised CUDARuntimeError" in reason)
    config.set_rnn_graphs(False)
    want = cupy.asnumpy(rnn.lstm_forward(*arrays, TANH, SIGMOID)[0])
    for h in got:
        numpy.testing.assert_array_equal(cupy.asnumpy(h), want)


def test_the_switch_off_means_no_capture(cupy_only, rng):
    cupy = cupy_only
    backend.set_rnn_graphs(False)
    layer = layers.GRU(65, return_sequences=True)
    y = layer(cupy.asarray(rng.standard_normal((N, 5, D)).astype("float32")), training=True)
    layer.backward(cupy.ones_like(y))
    assert rnn_graphs.stats()["captures"] == 0 and rnn_graphs.stats()["cached"] == []


def test_turning_graphs_off_frees_the_cache(cupy_only, rng):
    arrays = _lstm_arrays(cupy_only, rng)
    rnn.lstm_forward(*arrays, TANH, SIGMOID)
    assert len(rnn_graphs.stats()["cached"]) == 1
    backend.set_rnn_graphs(False)
    rnn.lstm_forward(*arrays, TANH, SIGMOID)
    assert rnn_graphs.stats()["cached"] == []


def test_the_switch_and_its_environment_variable_are_checked(monkeypatch):
    with pytest.raises(TypeError, match="set_rnn_graphs takes True or False, got 'off'"):
        backend.set_rnn_graphs("off")
    monkeypatch.setenv("GPU_DL_RNN_GRAPHS", "maybe")
    with pytest.raises(ValueError, match="GPU_DL_RNN_GRAPHS must be one of"):
        config._switch_from_environment("GPU_DL_RNN_GRAPHS", True)
    for word, value in (("0", False), ("off", False), ("TRUE", True), (" 1 ", True)):
        monkeypatch.setenv("GPU_DL_RNN_GRAPHS", word)
        assert config._switch_from_environment("GPU_DL_RNN_GRAPHS", not value) is value


def test_masks_and_persistent_sizes_stay_eager(cupy_only, rng):
    cupy = cupy_only
    arrays = _lstm_arrays(cupy, rng)
    step_mask = cupy.asarray(rng.random((5, N)) < 0.7)
    rnn.lstm_forward(*arrays, TANH, SIGMOID, step_mask=step_mask)
    rnn.lstm_forward(*arrays, TANH, SIGMOID, recurrent_mask=cupy.ones((N, 65), "float32"))
    rnn.lstm_forward(*_lstm_arrays(cupy, rng, u=8), TANH, SIGMOID)        # the persistent kernel
    assert rnn_graphs.stats()["captures"] == 0 and rnn_graphs.stats()["cached"] == []


def test_nothing_is_captured_inside_someone_elses_capture(cupy_only, rng):
    cupy = cupy_only
    arrays = _lstm_arrays(cupy, rng)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            # the op's graph path steps aside before any device work: what runs then is the caller's to capture
            assert rnn_graphs.lstm_forward(*arrays[:6], None) is None
        finally:
            stream.end_capture()
    assert rnn_graphs.stats()["captures"] == 0 and rnn_graphs.stats()["cached"] == []


def test_the_cache_keeps_the_most_recent_signatures(cupy_only, rng, monkeypatch):
    monkeypatch.setattr(rnn_graphs, "ENTRIES", 2)
    for steps in (3, 4, 5):
        rnn.lstm_forward(*_lstm_arrays(cupy_only, rng, steps=steps), TANH, SIGMOID)
    assert [signature[1] for signature in rnn_graphs.stats()["cached"]] == [4, 5]
    rnn.lstm_forward(*_lstm_arrays(cupy_only, rng, steps=3), TANH, SIGMOID)     # evicted: captured again
    assert rnn_graphs.stats()["captures"] == 4


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_a_replayed_call_issues_no_work_per_step(cupy_only, rng, kind):
    """A replay's host work is the same at any T: no cell launch, one product (the input projection) forward and
    the weight gradients' products backward; copies in and out instead of 2T launches."""
    cupy = cupy_only
    per_steps = {}
    with launch.poisoned_outputs(False):    # the tests' poisoning fills would count as work
        for steps in (5, 17):
            layer = getattr(layers, kind)(65, return_sequences=True)
            x = cupy.asarray(rng.standard_normal((N, steps, D)).astype("float32"))
            dy = cupy.asarray(rng.standard_normal((N, steps, 65)).astype("float32"))
            layer(x, training=True)
            layer.backward(dy)                  # captures
            with DeviceWork(cupy) as work:
                layer(x, training=True)
                forward = work.take()
                layer.backward(dy)
                per_steps[steps] = forward, work.take()
    assert per_steps[5] == per_steps[17], per_steps
    forward, backward = per_steps[5]
    assert forward.get("launches", 0) == 0 and backward.get("launches", 0) == 0
    if _emulated(cupy):
        assert forward["products"] == 1 and backward["products"] == 3


def test_model_fit_trains_the_same_with_graphs_on_and_off(cupy_only, rng):
    cupy = cupy_only
    x = rng.standard_normal((10, 6, D)).astype("float32")
    y = rng.standard_normal((10, 1)).astype("float32")

    def train(graphs):
        config.set_rnn_graphs(graphs)
        backend.set_random_seed(7)
        model = models.Sequential([layers.Input((6, D)), layers.LSTM(65, return_sequences=True), layers.GRU(66),
                                   layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        # batches of 4, 4 and 2: the last, smaller batch is a signature of its own
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return history.history["loss"], [numpy.asarray(cupy.asnumpy(w)) for w in model.get_weights()]
    losses_off, weights_off = train(False)
    losses_on, weights_on = train(True)
    assert rnn_graphs.stats()["captures"] == 8 and rnn_graphs.stats()["replays"] > 8
    assert losses_on == losses_off and losses_on[1] < losses_on[0]
    for got, want in zip(weights_on, weights_off):
        numpy.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------------- the capture itself
def test_a_captured_product_runs_only_when_the_graph_is_launched(cupy_only, rng):
    cupy = cupy_only
    a = cupy.asarray(rng.standard_normal((3, 5)).astype("float32"))
    b = cupy.asarray(rng.standard_normal((5, 4)).astype("float32"))
    out = cupy.zeros((3, 4), "float32")
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        assert stream.is_capturing()
        cupy.dot(a, b, out=out)
        graph = stream.end_capture()
    assert not stream.is_capturing()
    assert not cupy.asnumpy(out).any()          # a capture executes nothing
    a2 = cupy.asarray(rng.standard_normal((3, 5)).astype("float32"))
    a[...] = a2
    graph.launch()
    cupy.cuda.get_current_stream().synchronize()
    numpy.testing.assert_allclose(cupy.asnumpy(out), cupy.asnumpy(a2) @ cupy.asnumpy(b), rtol=1e-5, atol=1e-6)


def test_the_emulated_capture_refuses_other_device_work(cupy_only):
    cupy = cupy_only
    if not _emulated(cupy):
        pytest.skip("the stand-in's own strictness: a real capture records these operations")
    a = cupy.ones((3,), "float32")
    with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="legacy default stream cannot capture"):
        cupy.cuda.Stream.null.begin_capture()
    stream = cupy.cuda.Stream(non_blocking=True)
    for operation in (lambda: a + 1, lambda: a.fill(2), lambda: a.__setitem__(0, 5), lambda: a.copy(),
                      lambda: cupy.zeros(3), lambda: cupy.asnumpy(a), lambda: stream.synchronize()):
        with stream:
            stream.begin_capture()
            with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="on a capturing stream"):
                operation()
            with pytest.raises(cupy.cuda.runtime.CUDARuntimeError, match="invalidated"):
                stream.end_capture()
    numpy.testing.assert_array_equal(cupy.asnumpy(a), numpy.ones(3))     # nothing ran
