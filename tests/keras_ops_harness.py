"""The checks every keras.ops family runs on its table of cases ``(id, expression(a, b), expected(a, b))``: the
expression, written once with gpu_dl.ops, on arrays and in a functional model against what NumPy makes of it,
its gradient against float64 finite differences, and its .keras round trip. Each family's test file names the
four tests ``op_case_tests`` makes, so they keep their own names and parametrisations."""
import numpy
import pytest

import gpu_dl
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import load_model
from gpu_dl.models.saving import model_config, model_from_config
from gradcheck import assert_gradient


def positive_and_signed(rng, dtype="float64", n=5):
    """a (n, 3, 4) positive and b (n, 3, 4) signed, away from 0, from clipping bounds and from ties."""
    a = rng.uniform(0.5, 2.0, (n, 3, 4))
    b = rng.uniform(0.2, 1.0, (n, 3, 4)) * rng.choice([-1, 1], (n, 3, 4))
    return a.astype(dtype), b.astype(dtype)


def reached(tensor, inputs):
    """The inputs among ``inputs`` that ``tensor`` is computed from."""
    seen, stack, found = set(), [tensor], []
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if any(t is i for i in inputs):
            found.append(t)
        layer, index, _ = t._keras_history
        stack.extend(layer._inbound_nodes[index].input_tensors)
    return found


def model_of(expression, shapes=((3, 4), (3, 4)), dtype="float64"):
    """The model of ``expression`` with the inputs it reads (a, b, or both), and which they are (0: a, 1: b)."""
    a, b = (gpu_dl.Input(shape, name=name, dtype=dtype) for shape, name in zip(shapes, "ab"))
    y = expression(a, b)
    used = [i for i, t in enumerate((a, b)) if any(t is r for r in reached(y, (a, b)))]
    return gpu_dl.Model([(a, b)[i] for i in used], y), used


# what a family asks of a model's output shape against the shape of the arrays computed
def batch_shape(symbolic, actual):
    """The batch axis unknown, the others known."""
    assert symbolic == (None,) + actual[1:], (symbolic, actual)


def batch_or_fixed_shape(symbolic, actual):
    """As ``batch_shape``, or all known (slice and broadcast_to fix the batch size)."""
    assert symbolic in ((None,) + actual[1:], actual), (symbolic, actual)


def fitting_shape(symbolic, actual):
    """Every known size right, any axis may be unknown."""
    assert len(symbolic) == len(actual) and all(s is None or s == n for s, n in zip(symbolic, actual)), \
        (symbolic, actual)


def op_case_tests(cases, arrays=positive_and_signed, shapes=((3, 4), (3, 4)), *, rtol, atol, output_shape,
                  none_is_zero=True, gradient_tolerance=None, checks_array_shape=False):
    """The four tests of ``cases``: on arrays, in a model, gradients, saved and loaded.

    ``arrays(rng)`` draws a and b; ``shapes`` are their shapes without the batch axis. ``none_is_zero``: an input
    that only reaches the output through ops without a gradient gets None, checked as zeros (families whose
    cases all differentiate leave it False, so a None there fails)."""
    parametrized = pytest.mark.parametrize("name,expression,expected", cases, ids=[c[0] for c in cases])

    def on_arrays(xp, rng, name, expression, expected):
        a, b = arrays(rng)
        y = expression(xp.asarray(a), xp.asarray(b))
        assert array_module(y) is xp and y.dtype == numpy.float64
        want = expected(a, b)
        assert not checks_array_shape or y.shape == want.shape, (y.shape, want.shape)
        numpy.testing.assert_allclose(to_numpy(y), want, rtol=rtol, atol=atol)

    def in_a_model(xp, rng, name, expression, expected):
        model, used = model_of(expression, shapes)
        a, b = arrays(rng)
        y = model.forward([xp.asarray((a, b)[i]) for i in used])
        assert array_module(y) is xp and y.dtype == numpy.float64
        want = expected(a, b)
        numpy.testing.assert_allclose(to_numpy(y), want, rtol=rtol, atol=atol)
        output_shape(model.output_shape, want.shape)

    def gradient(xp, rng, name, expression, expected):
        model, used = model_of(expression, shapes)
        values = [xp.asarray(v) for v in arrays(rng)]
        want = expected(*(to_numpy(v) for v in values))
        assert_input_gradients(model, [values[i] for i in used], xp.asarray(rng.standard_normal(want.shape)), rng,
                               f"{name}: input", none_is_zero, **(gradient_tolerance or {}))

    def saved(tmp_path, rng, name, expression, expected):
        model, used = model_of(expression, shapes)
        a, b = arrays(rng)
        xs = [(a, b)[i] for i in used]
        rebuilt = model_from_config(model_config(model))
        numpy.testing.assert_allclose(rebuilt.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-12)
        model.save(tmp_path / "m.keras")
        loaded = load_model(tmp_path / "m.keras")
        numpy.testing.assert_allclose(loaded.predict(xs, verbose=0), expected(a, b), rtol=rtol, atol=atol)

    return tuple(parametrized(test) for test in (on_arrays, in_a_model, gradient, saved))


def assert_input_gradients(model, xs, w, rng, what="input", none_is_zero=False, **tolerance):
    """Each of the model's inputs ``xs``' gradient of ``sum(model(xs) * w)`` is finite differences; ``none_is_zero``
    as in ``op_case_tests``. Returns the gradients, a list of one for a model of one input."""
    model.forward(xs, training=True)
    grads = model.backward(w)
    grads = list(grads) if len(xs) > 1 else [grads]
    for i, (value, grad) in enumerate(zip(xs, grads)):
        if none_is_zero and grad is None:
            grad = array_module(value).zeros_like(value)

        def objective(v, i=i):
            given = list(xs)
            given[i] = v
            return (model.forward(given, training=True) * w).sum()
        assert_gradient(objective, value, grad, rng, what=f"{what} {i}", **tolerance)
    return grads


def assert_weight_gradients(model, x, w, rng, weights=None):
    """Each trainable weight's (or each of ``weights``') gradient of ``sum(model(x) * w)`` is finite
    differences; the weights are left as they were."""
    for var in model.trainable_weights if weights is None else weights:
        model.forward(x, training=True)
        model.backward(w, input_gradient=False)
        analytic, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return (model.forward(x, training=True) * w).sum()
        assert_gradient(of_weight, original.copy(), analytic, rng, what=var.path)
        var.value[...] = original


def assert_trains(model, x, y, *, learning_rate=0.01, loss="mse", epochs=10, batch_size=8, below=0.9):
    """Adam on ``loss`` brings the loss under ``below`` times where it started."""
    model.compile(optimizer=gpu_dl.optimizers.Adam(learning_rate), loss=loss)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    assert model.evaluate(x, y, verbose=0) < below * before
