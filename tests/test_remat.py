"""gpu_dl.RematScope and gpu_dl.remat: rematerialised layers give exactly the plain layers' outputs and gradients
(dropout masks and moving statistics included) while keeping fewer bytes for the backward."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import backend
from gpu_dl.layers import remat as remat_module

os.environ.setdefault("KERAS_BACKEND", "torch")


def _stack(scope):
    gpu_dl.utils.set_random_seed(3)
    with scope:
        return [gpu_dl.layers.Dense(64, activation="tanh", name="wide"), gpu_dl.layers.Dropout(0.3, seed=1),
                gpu_dl.layers.BatchNormalization(), gpu_dl.layers.Dense(3, name="head")]


def _train_call(layers, x):
    """Forward with training=True, the bytes kept for the backward, then the backward of a fixed gradient."""
    h = x
    for layer in layers:
        h = layer(h, training=True)
    kept = remat_module.kept_bytes(*layers)
    g = backend.xp().linspace(-1, 1, h.size, dtype=h.dtype).reshape(h.shape)
    for layer in reversed(layers):
        g = layer.backward(g)
    grads = [backend.to_numpy(w.grad) for layer in layers for w in layer.trainable_weights]
    return backend.to_numpy(h), backend.to_numpy(g), grads, [w.numpy() for w in layers[2].non_trainable_weights], kept


def test_rematerialised_layers_give_the_same_outputs_and_gradients_with_fewer_bytes_kept(xp, rng):
    x = xp.asarray(rng.standard_normal((8, 5)).astype("float32"))
    plain = _train_call(_stack(gpu_dl.RematScope(mode=None)), x)
    layers = _stack(gpu_dl.RematScope())
    rematerialised = _train_call(layers, x)
    for got, want in zip(rematerialised[:4], plain[:4], strict=True):
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            numpy.testing.assert_array_equal(g, w)          # exactly: the same computation, run again
    # plain: Dense keeps its input and output (and its pre-activation on NumPy; the GPU's fused forward leaves it
    # out for tanh, whose gradient reads the output), Dropout its mask, BatchNormalization its input and
    # statistics, the head its input; rematerialised: each layer's input only, and the values of the seed state
    # (two uint32) and moving statistics (2 x 64 float32) the second call reads
    assert rematerialised[4] == 4 * (8 * 5 + 3 * 8 * 64) + 8 + 4 * 2 * 64
    assert plain[4] > 4 * (8 * 5 + 4 * 8 * 64) + 8 * 64 > rematerialised[4]
    # the moving statistics moved once (checked equal above), and a second step runs as the first
    again = _train_call(layers, x)
    assert not numpy.array_equal(again[3][0], rematerialised[3][0])
    assert all(layer._remat_call is None for layer in layers)     # each backward used its call's state


def test_fit_with_a_remat_scope_matches_fit_without(rng, monkeypatch):
    x = rng.standard_normal((32, 5)).astype("float32")
    y = rng.integers(0, 3, 32)

    def trained(scope):
        gpu_dl.utils.set_random_seed(7)
        with scope:
            model = gpu_dl.Sequential([gpu_dl.Input((5,)), gpu_dl.layers.Dense(16, activation="relu"),
                                       gpu_dl.layers.Dropout(0.2, seed=2),
                                       gpu_dl.layers.Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return history.history["loss"], model.get_weights()

    plain = trained(gpu_dl.RematScope(None))
    calls, recomputed = [], []
    monkeypatch.setattr(remat_module, "call", lambda layer, *a: calls.append(layer) or original_call(layer, *a))
    monkeypatch.setattr(remat_module, "_backward", lambda layer, *a, **k: recomputed.append(layer) or
                        original_backward(layer, *a, **k))
    rematerialised = trained(gpu_dl.RematScope("full"))
    assert len(calls) == len(recomputed) == 3 * 2 * 4       # three layers, two epochs of four batches
    assert plain[0] == rematerialised[0]
    for a, b in zip(plain[1], rematerialised[1], strict=True):
        numpy.testing.assert_array_equal(a, b)


original_call, original_backward = remat_module.call, remat_module._backward


def _rematerialised_after_a_call(scope, x):
    gpu_dl.utils.set_random_seed(1)
    with scope:
        layers = [gpu_dl.layers.Dense(4, activation="relu", name="small"), gpu_dl.layers.Dense(300, name="big"),
                  gpu_dl.layers.Flatten(name="flat")]
    h = x
    for layer in layers:
        h = layer(h, training=True)
    return [layer.name for layer in layers if layer.__dict__.get("_remat_call") is not None]


def test_a_shared_layer_rematerialised_recomputes_each_call_of_a_functional_model(xp, rng):
    def gradients(scope):
        gpu_dl.utils.set_random_seed(2)
        with scope:
            a, b = gpu_dl.Input((4,)), gpu_dl.Input((4,))
            shared = gpu_dl.layers.Dense(4, activation="tanh")
            model = gpu_dl.Model([a, b], gpu_dl.layers.Dense(1)(shared(a) * shared(shared(b))))
        x = [xp.asarray(rng.standard_normal((6, 4)).astype("float32")) for _ in range(2)]
        model.forward(x, training=True)
        dx = model.backward(xp.ones((6, 1), "float32"))
        return [backend.to_numpy(w.grad) for w in model.weights] + [backend.to_numpy(d) for d in dx]

    state = rng.bit_generator.state
    plain = gradients(gpu_dl.RematScope(None))
    rng.bit_generator.state = state
    for got, want in zip(gradients(gpu_dl.RematScope()), plain, strict=True):
        numpy.testing.assert_array_equal(got, want)


def test_remat_modes_choose_their_layers():
    x = numpy.ones((4, 3), "float32")
    assert _rematerialised_after_a_call(gpu_dl.RematScope(), x) == ["small", "big", "flat"]
    assert _rematerialised_after_a_call(gpu_dl.RematScope(None), x) == []
    assert _rematerialised_after_a_call(gpu_dl.RematScope("activations"), x) == ["small", "big"]
    assert _rematerialised_after_a_call(gpu_dl.RematScope("list_of_layers", layer_names=["big"]), x) == ["big"]
    # 4 x 300 outputs: above 1024; 4 x 4 below
    assert _rematerialised_after_a_call(gpu_dl.RematScope("larger_than"), x) == ["big", "flat"]
    assert _rematerialised_after_a_call(gpu_dl.RematScope("larger_than", output_size_threshold=8), x) == \
        ["small", "big", "flat"]
    layer = gpu_dl.layers.Dense(2)
    layer(x, training=False)
    assert layer.__dict__.get("_remat_call") is None      # an inference call keeps nothing either way


def test_remat_scopes_nest_and_remat_wraps_a_layer(rng):
    assert remat_module.get_current_remat_mode() is None
    with gpu_dl.RematScope("full"):
        with gpu_dl.RematScope("list_of_layers", layer_names=["a"]) as inner:
            assert remat_module.get_current_remat_mode() == ("list_of_layers", 1024, ["a"])
            assert inner.layer_names == ["a"]
        assert remat_module.get_current_remat_mode().mode == "full"
    assert remat_module.get_current_remat_mode() is None
    gpu_dl.utils.set_random_seed(4)
    layer = gpu_dl.layers.Dense(8, activation="sigmoid")
    x = rng.standard_normal((5, 3)).astype("float32")
    dy = rng.standard_normal((5, 8)).astype("float32")
    layer(x, training=True)
    dx_plain, grads_plain = layer.backward(dy), [w.grad.copy() for w in layer.weights]
    wrapped = gpu_dl.remat(layer)
    wrapped(x, training=True)
    assert layer._remat_call is not None and remat_module.kept_bytes(layer) == x.nbytes
    numpy.testing.assert_array_equal(layer.backward(dy), dx_plain)
    for w, g in zip(layer.weights, grads_plain):
        numpy.testing.assert_array_equal(w.grad, g)

    def function(v):
        return v * 2
    assert gpu_dl.remat(function) is function       # no tape of array operations to rematerialise


def test_remat_refuses_bad_arguments():
    with pytest.raises(ValueError, match="Invalid mode 'some'. Supported modes are"):
        gpu_dl.RematScope("some")
    with pytest.raises(TypeError, match="output_size_threshold"):
        gpu_dl.RematScope("larger_than", output_size_threshold="big")
    with pytest.raises(TypeError, match=r"layer_names=\['dense'\]"):
        gpu_dl.RematScope("list_of_layers", layer_names="dense")
    with pytest.raises(TypeError, match="remat: expected a layer or a function"):
        gpu_dl.remat(3)


def test_remat_scope_matches_keras():
    keras = pytest.importorskip("keras")
    from keras.src.backend.common.remat import get_current_remat_mode
    for lib, current in ((keras, get_current_remat_mode), (gpu_dl, remat_module.get_current_remat_mode)):
        with lib.RematScope("larger_than", output_size_threshold=10):
            assert tuple(current()) == ("larger_than", 10, [])
    scope, ours = keras.RematScope(), gpu_dl.RematScope()
    assert (scope.mode, scope.output_size_threshold, scope.layer_names) == \
        (ours.mode, ours.output_size_threshold, ours.layer_names)
    with pytest.raises(ValueError) as theirs:
        keras.RematScope("some")
    with pytest.raises(ValueError) as mine:
        gpu_dl.RematScope("some")
    assert str(theirs.value) == str(mine.value)
