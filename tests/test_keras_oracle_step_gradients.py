"""Gradients per step and variables read by several calls, against Keras 3 itself (torch backend, where Keras is
installed): the same model classes (tests/step_gradient_classes.py) trained the same way give the same losses
and weights. A subclassed model whose call skips a layer on some steps leaves it (and its optimizer slots) as
Keras does; a custom loop whose second step has a loss on one head only matches Keras's loop of zero_grad,
backward and optimizer.apply; a layer twice in a Sequential, a layer built on another's kernel and an Embedding
with a tied projection (in a Sequential, in a composite layer, in a subclassed model) train as Keras trains them,
with SGD and Adam; the weights file of a Sequential holding a layer twice moves both ways."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import gpu_dl  # noqa: E402

from step_gradient_classes import STEPS, VOCABULARY, WIDTH, branchy, sharing_models  # noqa: E402

OPTIMIZERS = ["SGD", "Adam"]


def _compile_both(ours, theirs, optimizer, rate):
    ours.compile(optimizer=getattr(gpu_dl.optimizers, optimizer)(rate), loss="mse")
    theirs.compile(optimizer=getattr(keras.optimizers, optimizer)(rate), loss="mse")


def _assert_same_weights(ours, theirs):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def _step_both(ours, theirs, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # both warn of the weights without gradients
        return ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_layer_some_steps_skip_trains_as_in_keras(optimizer):
    rng = numpy.random.default_rng(3)
    ours, theirs = branchy(gpu_dl)(), branchy(keras)()
    wide = rng.standard_normal((2, 6, 3)).astype("float32")
    ours(wide)
    theirs(wide)
    theirs.set_weights(ours.get_weights())
    _compile_both(ours, theirs, optimizer, 0.05)
    extra_before = None
    for step, length in enumerate((6, 2, 2, 6, 3)):
        x = rng.standard_normal((4, length, 3)).astype("float32")
        y = rng.standard_normal((4, length, 2)).astype("float32")
        if step == 1:
            extra_before = [w.copy() for w in ours.extra.get_weights()]
        ours_loss, theirs_loss = _step_both(ours, theirs, x, y)
        assert ours_loss == pytest.approx(theirs_loss, rel=2e-5, abs=1e-6), f"step {step}"
        _assert_same_weights(ours, theirs)
    assert int(theirs.optimizer.iterations) == ours.optimizer.iterations == 5
    # The two narrow steps between left `extra` alone; the wide one after moved it again, in both.
    assert all(not numpy.array_equal(a, b) for a, b in zip(extra_before, ours.extra.get_weights()))


def _two_heads(lib):
    inputs = lib.Input((3,))
    trunk = lib.layers.Dense(4, activation="tanh", name="trunk")(inputs)
    return lib.Model(inputs, [lib.layers.Dense(2, name="head_a")(trunk), lib.layers.Dense(2, name="head_b")(trunk)])


def test_a_custom_loop_with_a_loss_on_some_heads_matches_keras():
    """Keras's loop on torch: zero_grad, the loss's backward, optimizer.apply(grads, variables) with None for a
    variable without a gradient. gpu_dl's: the model's backward with None for an output without a loss, then
    optimizer.apply(variables)."""
    rng = numpy.random.default_rng(4)
    ours, theirs = _two_heads(gpu_dl), _two_heads(keras)
    theirs.set_weights(ours.get_weights())
    ours_opt, theirs_opt = gpu_dl.optimizers.Adam(0.05), keras.optimizers.Adam(0.05)
    for step, both in enumerate((True, False, False, True)):
        x = rng.standard_normal((5, 3)).astype("float32")
        targets = [rng.standard_normal((5, 2)).astype("float32") for _ in range(2)]
        theirs.zero_grad()
        outputs = theirs(keras.ops.convert_to_tensor(x))
        heads = range(2) if both else range(1)
        loss = sum(((outputs[i] - torch.as_tensor(targets[i])) ** 2).mean() for i in heads)
        loss.backward()
        grads = [v.value.grad for v in theirs.trainable_weights]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs_opt.apply(grads, theirs.trainable_weights)
        y = ours(x, training=True)
        ours.backward([2 * (y[i] - targets[i]) / y[i].size if i in heads else None for i in range(2)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours_opt.apply(ours.trainable_weights)
        assert [v.grad is None for v in ours.trainable_weights] == [g is None for g in grads], f"step {step}"
        _assert_same_weights(ours, theirs)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("name", list(sharing_models(gpu_dl)))
def test_a_variable_several_calls_read_trains_as_in_keras(name, optimizer):
    rng = numpy.random.default_rng(5)
    make, ids = sharing_models(gpu_dl)[name]
    ours, theirs = make(), sharing_models(keras)[name][0]()
    assert [v.shape for v in ours.weights] == [tuple(v.shape) for v in theirs.weights]
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    _compile_both(ours, theirs, optimizer, 0.05)
    for step in range(3):
        x = rng.integers(0, VOCABULARY, (6, STEPS)).astype("int32") if ids else \
            rng.standard_normal((6, WIDTH)).astype("float32")
        y = rng.standard_normal((6, STEPS, VOCABULARY) if ids else (6, WIDTH)).astype("float32")
        ours_loss, theirs_loss = _step_both(ours, theirs, x, y)
        assert ours_loss == pytest.approx(theirs_loss, rel=2e-5, abs=1e-6), f"step {step}"
    _assert_same_weights(ours, theirs)
    assert any(not numpy.array_equal(a, b) for a, b in zip(weights, ours.get_weights()))


def test_a_repeated_layers_weights_file_moves_both_ways(tmp_path):
    rng = numpy.random.default_rng(6)
    make_ours, make_theirs = sharing_models(gpu_dl)["repeated"][0], sharing_models(keras)["repeated"][0]
    ours, theirs = make_ours(), make_theirs()
    ours.set_weights([rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    x = rng.standard_normal((3, WIDTH)).astype("float32")
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    theirs.set_weights([rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    again = make_ours()
    again.load_weights(tmp_path / "theirs.weights.h5")
    numpy.testing.assert_allclose(again.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # Why gpu_dl writes no config for it: Keras's lists the repeated layer once, a model of two layers.
    assert [entry["config"]["name"] for entry in theirs.get_config()["layers"]][1:] == ["block", "mid"]


def test_the_warning_of_variables_without_gradients_is_keras():
    """The same words and category as Keras's (the file differs: Keras names its own optimizer's line, gpu_dl the
    caller's, tests/test_step_gradients.py)."""
    rng = numpy.random.default_rng(5)
    x, y = rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((4, 2)).astype("float32")
    found = {}
    for lib in (gpu_dl, keras):
        model = _two_heads(lib)
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss=["mse", None])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, [y, y], batch_size=2, epochs=1, verbose=0)
            model.train_on_batch(x, [y, y])
        found[lib.__name__] = [(w.category, str(w.message)) for w in caught if "radients" in str(w.message)]
    assert found["gpu_dl"] == found["keras"]
    assert found["keras"] == [(UserWarning, "Gradients do not exist for variables ['head_b/kernel', 'head_b/bias'] "
                               "when minimizing the loss. If using `model.compile()`, did you forget to provide a "
                               "`loss` argument?")] * 3
