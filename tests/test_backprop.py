"""loss.backward() through eager calls (gpu_dl/backprop.py): gradients against NumPy and float64 finite differences
on both backends, for one model, two models chained as d(g(z)), ops.concatenate between them, a traced subclassed
model and a model of two outputs; the sums over contributions; and the errors where backward cannot follow.
Against Keras itself: tests/test_keras_oracle_custom_train_step.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backprop, layers, losses, ops
from gpu_dl.backend import to_numpy
from gpu_dl.backprop import LossValue

from gradcheck import assert_gradient

F64 = "float64"


def mlp(rng, n_in, hidden, n_out, activation="tanh", name=None):
    model = gpu_dl.Sequential([gpu_dl.Input((n_in,), dtype=F64), layers.Dense(hidden, activation=activation, dtype=F64),
                               layers.Dense(n_out, dtype=F64)], name=name)
    model.set_weights([rng.standard_normal(w.shape) * 0.7 for w in model.get_weights()])
    return model


def on_device(xp, rng, *shape):
    return xp.asarray(rng.standard_normal(shape))


def assert_weight_gradients(loss_of, variables, rng):
    """Each variable's ``grad`` is the gradient of ``loss_of()`` (computed without training) along random
    directions."""
    for var in variables:
        original = var.value.copy()

        def f(value, var=var):
            var.assign(value)
            return float(loss_of())
        assert var.grad is not None, var.path
        assert_gradient(f, original, var.grad, rng, what=var.path)
        var.assign(original)


def test_backward_fills_the_weight_gradients_numpy_computes(xp, rng):
    model = mlp(rng, 4, 5, 2)
    x, y = on_device(xp, rng, 6, 4), on_device(xp, rng, 6, 2)
    y_pred = model(x, training=True)
    loss = losses.MeanSquaredError(dtype=F64)(y, y_pred)
    assert isinstance(loss, LossValue)
    w1, b1, w2, b2 = [to_numpy(v.value) for v in model.weights]
    xh, yh = to_numpy(x), to_numpy(y)
    h = numpy.tanh(xh @ w1 + b1)
    p = h @ w2 + b2
    assert float(loss) == pytest.approx(((p - yh) ** 2).mean(), rel=1e-12)
    loss.backward()
    dp = 2 * (p - yh) / p.size
    dz = (dp @ w2.T) * (1 - h ** 2)
    expected = [xh.T @ dz, dz.sum(0), h.T @ dp, dp.sum(0)]
    for var, want in zip(model.weights, expected):
        numpy.testing.assert_allclose(to_numpy(var.grad), want, rtol=1e-10, atol=1e-12)


def test_backward_through_two_models_chained(xp, rng):
    g, d = mlp(rng, 3, 5, 4, name="g"), mlp(rng, 4, 3, 1, name="d")
    z, labels = on_device(xp, rng, 7, 3), xp.asarray((rng.random((7, 1)) > 0.5).astype(F64))
    loss_fn = losses.BinaryCrossentropy(from_logits=True, dtype=F64)
    loss = loss_fn(labels, d(g(z, training=True), training=True))
    loss.backward()
    assert_weight_gradients(lambda: loss_fn(labels, d(g(z))), g.trainable_weights + d.trainable_weights, rng)


def test_only_the_generator_is_stepped_while_the_discriminator_keeps_its_gradients(xp, rng):
    g, d = mlp(rng, 3, 5, 4, name="g"), mlp(rng, 4, 3, 1, name="d")
    z = on_device(xp, rng, 7, 3)
    before = d.get_weights()
    loss = losses.BinaryCrossentropy(from_logits=True, dtype=F64)(xp.zeros((7, 1)), d(g(z, training=True),
                                                                                    training=True))
    loss.backward()
    optimizer = gpu_dl.optimizers.SGD(learning_rate=0.1)
    g_before = g.get_weights()
    optimizer.apply([v.grad for v in g.trainable_weights], g.trainable_weights)
    for old, var in zip(g_before, g.trainable_weights):
        numpy.testing.assert_allclose(var.numpy(), old - 0.1 * to_numpy(var.grad), rtol=1e-12)
    assert all(v.grad is not None for v in d.trainable_weights)
    for old, new in zip(before, d.get_weights()):
        numpy.testing.assert_array_equal(old, new)


def test_gradients_add_up_until_zero_grad(xp, rng):
    model = mlp(rng, 4, 5, 2)
    x, y = on_device(xp, rng, 6, 4), on_device(xp, rng, 6, 2)
    loss_fn = losses.MeanSquaredError(dtype=F64)
    loss = loss_fn(y, model(x, training=True))
    loss.backward()
    once = [to_numpy(v.grad).copy() for v in model.trainable_weights]
    loss.backward()
    for var, g in zip(model.trainable_weights, once):
        numpy.testing.assert_allclose(to_numpy(var.grad), 2 * g, rtol=1e-12)
    backprop.zero_grad(model.weights)
    assert all(v.grad is None for v in model.weights)
    y_pred = model(x, training=True)
    (loss_fn(y, y_pred) + loss_fn(2 * y, y_pred)).backward()
    first = [to_numpy(v.grad).copy() for v in model.trainable_weights]
    backprop.zero_grad(model.weights)
    loss_fn(y, y_pred).backward()
    loss_fn(2 * y, y_pred).backward()
    for var, g in zip(model.trainable_weights, first):
        numpy.testing.assert_allclose(to_numpy(var.grad), g, rtol=1e-12)


def test_arithmetic_of_loss_values_keeps_their_gradient(xp, rng):
    model = mlp(rng, 4, 5, 2)
    x, y = on_device(xp, rng, 6, 4), on_device(xp, rng, 6, 2)
    mse, mae = losses.MeanSquaredError(dtype=F64), losses.Huber(dtype=F64)

    def combined(a, b):
        return 0.5 * a + b / 4.0 - 1.0 + a * b - 2.0 / b + (-a) ** 2 - (3.0 - b)

    y_pred = model(x, training=True)
    loss = combined(mse(y, y_pred), mae(y, y_pred))
    assert isinstance(loss, LossValue)
    plain = model(x)
    assert float(loss) == pytest.approx(combined(float(mse(y, plain)), float(mae(y, plain))), rel=1e-12)
    model(x, training=True)         # the call the loss reads is replaced: a new one for backward
    y_pred = model(x, training=True)
    loss = combined(mse(y, y_pred), mae(y, y_pred))
    loss.backward()
    assert_weight_gradients(lambda: combined(float(mse(y, model(x))), float(mae(y, model(x)))),
                            model.trainable_weights, rng)


def test_concatenate_and_stack_are_followed_back_to_the_calls(xp, rng):
    g, d = mlp(rng, 3, 5, 4, name="g"), mlp(rng, 4, 3, 1, name="d")
    z, real = on_device(xp, rng, 5, 3), on_device(xp, rng, 4, 4)
    labels = xp.asarray(numpy.r_[numpy.ones((5, 1)), numpy.zeros((4, 1))])
    loss_fn = losses.BinaryCrossentropy(from_logits=True, dtype=F64)
    loss = loss_fn(labels, d(ops.concatenate([g(z, training=True), real], axis=0), training=True))
    loss.backward()
    assert_weight_gradients(lambda: loss_fn(labels, d(ops.concatenate([g(z), real], axis=0))),
                            g.trainable_weights + d.trainable_weights, rng)
    backprop.zero_grad(g.weights + d.weights)
    stacked = ops.stack([g(z, training=True), xp.zeros((5, 4))], axis=1)     # (5, 2, 4)
    loss = losses.MeanSquaredError(dtype=F64)(xp.ones((5, 2, 1)), d(stacked, training=True))
    loss.backward()
    assert_weight_gradients(
        lambda: losses.MeanSquaredError(dtype=F64)(xp.ones((5, 2, 1)), d(ops.stack([g(z), xp.zeros((5, 4))], 1))),
        g.trainable_weights, rng)


def test_a_traced_subclassed_model_and_a_model_of_two_outputs(xp, rng):
    class Twice(gpu_dl.Model):
        def __init__(self):
            super().__init__(dtype=F64)
            self.a = layers.Dense(4, activation="tanh", dtype=F64)
            self.b = layers.Dense(2, dtype=F64)

        def call(self, x):
            h = self.a(x)
            return self.b(h + h * h)

    model = Twice()
    x, y = on_device(xp, rng, 5, 3), on_device(xp, rng, 5, 2)
    model(x)
    model.set_weights([rng.standard_normal(w.shape) * 0.7 for w in model.get_weights()])
    loss_fn = losses.MeanSquaredError(dtype=F64)
    loss_fn(y, model(x, training=True)).backward()
    assert_weight_gradients(lambda: loss_fn(y, model(x)), model.trainable_weights, rng)

    inputs = gpu_dl.Input((3,), dtype=F64)
    h = layers.Dense(4, activation="tanh", dtype=F64)(inputs)
    two = gpu_dl.Model(inputs, [layers.Dense(2, dtype=F64, name="first")(h), layers.Dense(1, dtype=F64)(h)])
    two.set_weights([rng.standard_normal(w.shape) * 0.7 for w in two.get_weights()])
    first, second = two(x, training=True)
    loss = loss_fn(y, first) + 0.3 * loss_fn(y[:, :1], second)
    loss.backward()

    def again():
        a, b = two(x)
        return loss_fn(y, a) + 0.3 * loss_fn(y[:, :1], b)
    assert_weight_gradients(again, two.trainable_weights, rng)
    backprop.zero_grad(two.weights)
    loss_fn(y, two(x, training=True)[0]).backward()          # the other output sends no gradient
    assert two.layers[-1].kernel.grad is None or not to_numpy(two.layers[-1].kernel.grad).any()


def test_a_layer_called_again_before_backward_is_an_error(xp, rng):
    d = mlp(rng, 4, 3, 1, name="d")
    a, b = on_device(xp, rng, 5, 4), on_device(xp, rng, 5, 4)
    loss_fn = losses.MeanSquaredError(dtype=F64)
    first = d(a, training=True)
    d(b, training=True)
    with pytest.raises(RuntimeError, match="Model 'd' .*called again.*concatenate"):
        loss_fn(xp.zeros((5, 1)), first).backward()
    # a layer inside the model, called by itself since, replaced the model's backward state too
    first = d(a, training=True)
    d.layers[0](b)
    with pytest.raises(RuntimeError, match="called again"):
        loss_fn(xp.zeros((5, 1)), first).backward()
    assert all(v.grad is None for v in d.weights)


def test_calls_without_training_are_constants(xp, rng):
    g, d = mlp(rng, 3, 5, 4, name="g"), mlp(rng, 4, 3, 1, name="d")
    z = on_device(xp, rng, 5, 3)
    loss_fn = losses.MeanSquaredError(dtype=F64)
    loss = loss_fn(xp.zeros((5, 1)), d(g(z)))
    with pytest.raises(RuntimeError, match="Model 'd' .* without training=True.*model\\(x, training=True\\)"):
        loss.backward()
    loss_fn(xp.zeros((5, 1)), d(g(z), training=True)).backward()
    assert all(v.grad is not None for v in d.trainable_weights)
    assert all(v.grad is None for v in g.trainable_weights)


def test_what_backward_cannot_follow_is_refused(xp, rng):
    g, d = mlp(rng, 3, 5, 4, name="g"), mlp(rng, 4, 3, 1, name="d")
    z = on_device(xp, rng, 5, 3)
    loss_fn = losses.MeanSquaredError(dtype=F64)
    loss = loss_fn(xp.zeros((5, 1)), d(ops.tanh(g(z, training=True)), training=True))
    with pytest.raises(NotImplementedError, match="ops.tanh from the output of the call of Model 'g' \\(Sequential\\)"):
        loss.backward()
    y_pred = g(z, training=True)
    loss = loss_fn(xp.zeros((5, 4)), y_pred)
    with pytest.raises(TypeError, match="gpu_dl.ops.sum got a loss value"):
        ops.sum(loss)
    with pytest.raises(TypeError, match="made by gpu_dl.ops from an output that needs a gradient"):
        loss + ops.mean(ops.square(y_pred))
    with pytest.raises(RuntimeError, match="detached"):
        loss.detach().backward()
    assert ops.convert_to_numpy(loss) == pytest.approx(float(loss))


def test_a_loss_value_reads_as_its_value(xp, rng):
    model = mlp(rng, 4, 5, 2)
    x, y = on_device(xp, rng, 6, 4), on_device(xp, rng, 6, 2)
    loss = losses.MeanSquaredError(dtype=F64)(y, model(x, training=True))
    value = float(to_numpy(losses.MeanSquaredError(dtype=F64)(y, model(x))))
    assert loss.shape == () and loss.dtype == numpy.float64
    assert loss.item() == float(loss) == pytest.approx(value) and f"{loss:.6f}" == f"{value:.6f}"
    numpy.testing.assert_allclose(numpy.asarray(loss), value)
    assert (loss < value + 1) and (loss > value - 1)
    tracker = gpu_dl.metrics.Mean()
    tracker.update_state(loss)
    tracker.update_state(loss * 3)
    assert tracker.result() == pytest.approx(2 * value)
    assert losses.MeanSquaredError()(numpy.ones((2, 1)), numpy.zeros((2, 1))).__class__ is not LossValue
