"""The gradients a training step applies are that step's, on both backends (layers/gradients.py): a weight the step
does not reach keeps its value and its optimizer slots (checked against a NumPy step of the layers it does
reach), a custom loop's ``model.backward`` starts from no gradients, and one contribution reaches the optimizer as
the array its backward made. A variable read by several calls (a layer twice in a Sequential, a layer built on
another's kernel, an Embedding and a tied projection through ops) gets the sum of their gradients, checked against
float64 finite differences. Against Keras itself: tests/test_keras_oracle_step_gradients.py."""
import inspect
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.backend import to_numpy
from gpu_dl.layers import gradients

from gradcheck import assert_gradient
from step_gradient_classes import STEPS, VOCABULARY, WIDTH, branchy, sharing_models


@pytest.fixture
def float64():
    backend.set_floatx("float64")
    yield
    backend.set_floatx("float32")


def _randomize(model, rng, scale=0.5):
    model.set_weights([rng.standard_normal(w.shape) * scale for w in model.get_weights()])


def _values(variables):
    return [to_numpy(v.value).copy() for v in variables]


# ------------------------------------------------------------------ a step's gradients
def _narrow_sgd_step(weights, x, t, lr):
    """The weights after one SGD step of ``first`` (tanh) then ``last`` on ``x`` with mean squared error, in NumPy."""
    w1, b1, w3, b3 = weights
    h = numpy.tanh(x @ w1 + b1)
    y = h @ w3 + b3
    dy = 2 * (y - t) / y.size
    dz = (dy @ w3.T) * (1 - h * h)
    grads = [numpy.einsum("bsi,bsj->ij", x, dz), dz.sum(axis=(0, 1)), numpy.einsum("bsi,bsj->ij", h, dy),
             dy.sum(axis=(0, 1))]
    return [w - lr * g for w, g in zip(weights, grads)]


def test_a_layer_a_step_skips_keeps_its_weights_and_slots(xp, rng, float64):
    model = branchy(gpu_dl)()
    model.compile(optimizer=gpu_dl.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    wide = xp.asarray(rng.standard_normal((4, 6, 3))), xp.asarray(rng.standard_normal((4, 6, 2)))
    narrow = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 2))
    model.train_on_batch(*wide)
    extra, optimizer = model.extra.trainable_weights, model.optimizer
    kept, kept_slots = _values(extra), [to_numpy(optimizer.get_slot(v, "momentum")).copy() for v in extra]
    reached = model.first.trainable_weights + model.last.trainable_weights
    start = _values(reached)
    momenta = [to_numpy(optimizer.get_slot(v, "momentum")).copy() for v in reached]
    missing = r"Gradients do not exist for variables \['\w+/extra/kernel', '\w+/extra/bias'\]"    # in its model's scope
    with pytest.warns(UserWarning, match=missing):
        model.train_on_batch(xp.asarray(narrow[0]), xp.asarray(narrow[1]))
    assert optimizer.iterations == 2
    assert model.extra.kernel.grad is None and model.extra.bias.grad is None
    for before, var in zip(kept, extra):
        numpy.testing.assert_array_equal(to_numpy(var.value), before)
    for before, var in zip(kept_slots, extra):
        numpy.testing.assert_array_equal(to_numpy(optimizer.get_slot(var, "momentum")), before)
    # The layers the step reached took SGD with momentum on this step's gradients alone.
    plain = _narrow_sgd_step(start, narrow[0], narrow[1], 1.0)
    for w0, w_plain, m, var in zip(start, plain, momenta, reached):
        expected = w0 + 0.9 * m - 0.1 * (w0 - w_plain)      # m = 0.9 m - lr g; w += m
        numpy.testing.assert_allclose(to_numpy(var.value), expected, rtol=1e-10, atol=1e-12)


def _two_heads():
    inputs = gpu_dl.Input((3,))
    trunk = layers.Dense(4, name="trunk")(inputs)
    return gpu_dl.Model(inputs, [layers.Dense(2, name="head_a")(trunk), layers.Dense(2, name="head_b")(trunk)])


def test_a_custom_loops_backward_starts_from_no_gradients(xp, rng, float64):
    model = _two_heads()
    _randomize(model, rng)
    optimizer = gpu_dl.optimizers.SGD(0.1)
    x = rng.standard_normal((5, 3))
    model(xp.asarray(x), training=True)
    model.backward([xp.ones((5, 2)), xp.ones((5, 2))])
    optimizer.apply(model.trainable_weights)
    head_b = model.get_layer("head_b").trainable_weights
    assert all(v.grad is not None for v in head_b)          # a step's gradients stay readable after it
    start = [w.copy() for w in model.get_weights()]
    dy = rng.standard_normal((5, 2))
    model(xp.asarray(x), training=True)
    model.backward([xp.asarray(dy), None])                   # only the first head's output has a loss
    assert all(v.grad is None for v in head_b)
    with pytest.warns(UserWarning, match=r"\['head_b/kernel', 'head_b/bias'\]"):
        optimizer.apply(model.trainable_weights)
    wt, bt, wa, ba, wb, bb = start
    trunk_out = x @ wt + bt
    d_trunk = dy @ wa.T
    expected = [wt - 0.1 * x.T @ d_trunk, bt - 0.1 * d_trunk.sum(0), wa - 0.1 * trunk_out.T @ dy,
                ba - 0.1 * dy.sum(0), wb, bb]
    for got, want in zip(model.get_weights(), expected):
        numpy.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_a_models_pass_leaves_another_models_gradients(xp, rng):
    first, second = _two_heads(), _two_heads()
    x = xp.asarray(rng.standard_normal((4, 3)).astype("float32"))
    first(x, training=True)
    first.backward([xp.ones((4, 2), dtype="float32"), xp.ones((4, 2), dtype="float32")])
    kept = [to_numpy(v.grad).copy() for v in first.trainable_weights]
    second(x, training=True)
    second.backward([xp.ones((4, 2), dtype="float32"), None])
    for grad, var in zip(kept, first.trainable_weights):
        numpy.testing.assert_array_equal(to_numpy(var.grad), grad)


def test_gradients_outside_a_pass_are_taken_as_given(xp, rng):
    dense = layers.Dense(3)
    x = xp.asarray(rng.standard_normal((4, 2)).astype("float32"))
    dense(x, training=True)
    dense.backward(xp.ones((4, 3), dtype="float32"))
    dense(x, training=True)
    dense.backward(xp.full((4, 3), 2.0, dtype="float32"))     # by hand, twice: the second replaces the first
    numpy.testing.assert_allclose(to_numpy(dense.kernel.grad), 2 * to_numpy(x).sum(0)[:, None] * numpy.ones(3),
                                  rtol=1e-6)
    given = xp.ones((3,), dtype="float32")
    dense.bias.grad = given
    assert dense.bias.grad is given


def test_a_pass_keeps_one_gradient_as_made_and_adds_a_second(xp):
    var = gpu_dl.Variable(xp.zeros((3,)), "v")
    var.grad = xp.full((3,), 7.0)
    first, second = xp.ones((3,)), xp.full((3,), 2.0)
    with gradients.gradient_pass([var]):
        assert var.grad is None                       # cleared: what came before is another step's
        var.grad = first
        assert var.grad is first                      # one gradient: the array as made, no copy
        var.grad = second
        var.grad = None                               # a call that sends none adds nothing
        with gradients.gradient_pass([var]):          # a pass inside a running one is that one
            var.grad = second
        numpy.testing.assert_array_equal(to_numpy(var.grad), [5.0, 5.0, 5.0])
        assert to_numpy(first).tolist() == [1.0, 1.0, 1.0]      # the sum is a new array
    numpy.testing.assert_array_equal(to_numpy(var.grad), [5.0, 5.0, 5.0])
    var.grad = first
    assert var.grad is first


def test_a_training_step_gives_the_optimizer_the_backwards_arrays(xp, rng, monkeypatch):
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    received = []
    update = type(model.optimizer)._update_step
    monkeypatch.setattr(type(model.optimizer), "_update_step",
                        lambda self, value, grad, *rest: received.append(grad) or update(self, value, grad, *rest))
    model.train_on_batch(xp.asarray(rng.standard_normal((6, 3)).astype("float32")),
                         xp.asarray(rng.standard_normal((6, 2)).astype("float32")))
    assert len(received) == 4
    assert all(grad is var.grad for grad, var in zip(received, model.trainable_weights))


# ------------------------------------------------------------------ one variable, several calls
def _inputs(rng, ids, batch=3):
    if ids:
        return rng.integers(0, VOCABULARY, (batch, STEPS)).astype("int32")
    return rng.standard_normal((batch, WIDTH))


@pytest.mark.parametrize("name", list(sharing_models(gpu_dl)))
def test_a_variable_read_by_several_calls_gets_their_summed_gradient(xp, rng, float64, name):
    make, ids = sharing_models(gpu_dl)[name]
    model = make()
    _randomize(model, rng)
    x = xp.asarray(_inputs(rng, ids))
    y = model(x, training=True)
    dy = xp.asarray(rng.standard_normal(y.shape))
    model.backward(dy)
    without = [v.path for v in model.trainable_weights if v.grad is None]
    # its own kernel, never read (built in the model's name scope, as in Keras)
    assert without == ([f"{model.name}/second/kernel"] if name == "kernel_taken" else [])
    for var in model.trainable_weights:
        if var.grad is None:
            continue
        grad, original = var.grad, var.value.copy()

        def objective(value, var=var):
            var.value[...] = value
            return float(to_numpy((model(x) * dy).sum()))
        assert_gradient(objective, original.copy(), grad, rng, what=var.path)
        var.value[...] = original


def test_a_repeated_layer_counts_each_calls_activity_penalty(xp, rng):
    block = layers.Dense(3, activation="tanh", activity_regularizer=gpu_dl.regularizers.L2(0.1), name="block")
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), block, layers.Dense(3, name="mid"), block])
    _randomize(model, rng)
    model.compile(optimizer="sgd", loss="mse")
    x, t = rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((4, 3)).astype("float32")
    wb, bb, wm, bm = model.get_weights()
    h1 = numpy.tanh(x @ wb + bb)
    y = numpy.tanh((h1 @ wm + bm) @ wb + bb)
    expected = ((y - t) ** 2).mean() + 0.1 * ((h1 ** 2).sum() + (y ** 2).sum()) / 4
    assert model.test_on_batch(xp.asarray(x), xp.asarray(t)) == pytest.approx(expected, rel=1e-5)
    assert model.train_on_batch(xp.asarray(x), xp.asarray(t)) == pytest.approx(expected, rel=1e-5)


def test_a_repeated_layer_is_listed_saved_and_cloned_once(tmp_path, rng):
    model = sharing_models(gpu_dl)["repeated"][0]()
    assert [layer.name for layer in model.layers] == ["block", "mid", "block"]
    assert len(model.weights) == 4 and model.count_params() == 2 * (WIDTH * WIDTH + WIDTH)
    _randomize(model, rng)
    x = rng.standard_normal((3, WIDTH)).astype("float32")
    model.save_weights(tmp_path / "m.weights.h5")
    again = sharing_models(gpu_dl)["repeated"][0]()
    again.load_weights(tmp_path / "m.weights.h5")
    numpy.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    clone = gpu_dl.models.clone_model(model)
    assert clone.layers[0] is clone.layers[2] and clone.layers[0] is not model.layers[0]
    message = r"Sequential '\w+' holds layer 'block' at positions \[0, 2\]: its config cannot say so"
    with pytest.raises(ValueError, match=message):
        model.get_config()
    with pytest.raises(ValueError, match=message):
        model.save(tmp_path / "m.keras")


def test_a_subclassed_model_with_its_own_backward_is_refused():
    class ByHand(gpu_dl.Model):
        def call(self, x):
            return x

        def backward(self, dy):
            return dy

    with pytest.raises(TypeError, match="ByHand: a subclassed model with its own backward\\(\\) is not supported"):
        ByHand()


# ------------------------------------------------------------------ the warning of variables without gradients
def _gradient_warnings(call):
    """What ``call()`` warns of variables without gradients, as (message, file, line), and the line it is on."""
    line = inspect.stack()[1].lineno
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [(str(w.message), w.filename, w.lineno) for w in caught if "radients do not exist" in str(w.message)], line


def test_the_warning_of_variables_without_gradients_names_the_callers_line(rng):
    """Keras's words, attributed to the caller's own line however deep in gpu_dl the step is: fit,
    train_on_batch, optimizer.apply, and the apply call inside a train_step of the caller's."""
    message = ("Gradients do not exist for variables ['head_b/kernel', 'head_b/bias'] when minimizing the loss. If "
               "using `model.compile()`, did you forget to provide a `loss` argument?")
    x, y = rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((4, 2)).astype("float32")
    model = _two_heads()
    model.compile(optimizer="sgd", loss=["mse", None])
    found, line = _gradient_warnings(lambda: model.fit(x, [y, y], epochs=2, batch_size=2, verbose=0))
    assert found == [(message, __file__, line)] * 4
    found, line = _gradient_warnings(lambda: model.train_on_batch(x, [y, y]))
    assert found == [(message, __file__, line)]

    optimizer = gpu_dl.optimizers.SGD(0.1)
    model(x, training=True)
    model.backward([numpy.ones((4, 2), "float32"), None])
    found, line = _gradient_warnings(lambda: optimizer.apply(model.trainable_weights))
    assert found == [(message, __file__, line)]

    apply_line = []

    class OwnStep(gpu_dl.Model):
        def train_step(self, data):
            inputs, targets = data
            outputs = self(inputs, training=True)
            self.backward([2 * (outputs[0] - targets[0]) / outputs[0].size, None])
            apply_line.append(inspect.currentframe().f_lineno + 1)
            self.optimizer.apply(self.trainable_weights)
            return {}
    inputs = gpu_dl.Input((3,))
    trunk = layers.Dense(4, name="trunk")(inputs)
    own = OwnStep(inputs, [layers.Dense(2, name="head_a")(trunk), layers.Dense(2, name="head_b")(trunk)])
    own.compile(optimizer="sgd")
    found, _ = _gradient_warnings(lambda: own.fit(x, [y, y], batch_size=4, verbose=0))
    assert found == [(message, __file__, apply_line[0])]


def test_a_variable_lives_on_the_current_device(xp):
    """Keras's Variable(value, dtype=...) puts its value on the device; ``host=True`` keeps a NumPy state on the
    host (a seed generator's, read by every draw)."""
    for value in (numpy.zeros(3), [0.0, 1.0, 2.0], 1.5):
        variable = gpu_dl.Variable(value, name="v")
        assert isinstance(variable.value, xp.ndarray)
    assert str(gpu_dl.Variable([1.0, 2.0]).dtype) == "float32"
    assert str(gpu_dl.Variable(numpy.zeros(2)).dtype) == "float64"
    state = numpy.array([1, 0], numpy.uint32)
    assert gpu_dl.Variable(state, "state", trainable=False, host=True).value is state
    assert isinstance(gpu_dl.random.SeedGenerator(3).state.value, numpy.ndarray)
