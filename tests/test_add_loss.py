"""Layer.add_loss and Layer.losses, and training through the losses layers add, on both backends.

``losses`` holds what a layer and the layers within it added in its last top-level call (reset by the next one),
its activity penalties and its trainable weights' regularization penalties; the loss fit, evaluate and the
*_on_batch methods report is the compiled loss plus those, against NumPy; the gradient of that total with respect
to the weights, through the graph traced from a composite call, against float64 finite differences (nested
composite layers, a layer called twice, the model's own call, a non-scalar loss, no compiled loss). A loss added
on arrays counts as it is and is refused in training, unless the layer's backward says it adds its gradient.
Against Keras itself: tests/test_keras_oracle_add_loss.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, ops, regularizers
from gpu_dl.backend import to_numpy

from add_loss_classes import activity_regularization, outer, outer_with_kernel_regularizer, vae
from gradcheck import assert_gradient

ActivityRegularizationLayer = activity_regularization(gpu_dl)
OuterLayer = outer(gpu_dl)
OuterLayerWithKernelRegularizer = outer_with_kernel_regularizer(gpu_dl)
VariationalAutoEncoder = vae(gpu_dl)


class Penalized(layers.Layer):
    """tanh(Dense(x)), with the loss ``rate * h**2`` of its output (not a scalar: it counts by its sum) and the loss
    of an inner composite layer, traced apart."""

    def __init__(self, units, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.dense = layers.Dense(units, activation="tanh", dtype=self.dtype)
        self.reg = ActivityRegularizationLayer(rate * 3, dtype=self.dtype)

    def call(self, x):
        h = self.reg(self.dense(x))
        self.add_loss(self.rate * ops.square(h))
        return h


class Doubling(layers.Layer):
    """2 x, with its own backward, adding the loss ``rate * sum(x)`` on arrays."""

    def __init__(self, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, x):
        self.add_loss(self.rate * x.sum())
        return 2 * x

    def backward(self, dy):
        return 2 * dy


class DoublingWithLossGradient(Doubling):
    backward_includes_added_losses = True

    def backward(self, dy):
        return 2 * dy + dy.dtype.type(self.rate)


class Untraceable(layers.Layer):
    """A composite layer whose call cannot be traced (it takes the mean of an array): it runs as written."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(3, dtype=self.dtype)

    def call(self, x):
        h = self.dense(x)
        self.add_loss(0.5 * h.mean())
        return h


def _xs(xp, rng, shape, dtype="float32"):
    return xp.asarray(rng.standard_normal(shape).astype(dtype))


def _value(array):
    return float(to_numpy(array))


# ------------------------------------------------------------------ layer.losses
def test_losses_are_those_of_the_last_top_level_call(xp, rng):
    layer = OuterLayer()
    assert layer.losses == []
    x = _xs(xp, rng, (4, 3))
    layer(x)
    assert len(layer.losses) == 1 and len(layer.activity_reg.losses) == 1
    assert _value(layer.losses[0]) == pytest.approx(1e-2 * float(to_numpy(x).mean()), rel=1e-6)
    x2 = _xs(xp, rng, (2, 3))
    layer(x2)                           # reset at the start of each top-level call
    assert len(layer.losses) == 1
    assert _value(layer.losses[0]) == pytest.approx(1e-2 * float(to_numpy(x2).mean()), rel=1e-6)
    layer.activity_reg(x)               # the inner layer's own top-level call: its losses, the outer's too
    assert _value(layer.losses[0]) == pytest.approx(1e-2 * float(to_numpy(x).mean()), rel=1e-6)
    other = ActivityRegularizationLayer()
    other(x2)
    layer(x)                            # another layer's call leaves that layer's losses alone
    assert len(other.losses) == 1


def test_losses_list_weight_and_activity_penalties(xp, rng):
    layer = OuterLayerWithKernelRegularizer()
    layer(xp.zeros((1, 1), dtype="float32"))
    kernel = layer.dense.get_weights()[0]
    assert len(layer.losses) == 1
    assert _value(layer.losses[0]) == pytest.approx(1e-3 * float((kernel.astype("float64") ** 2).sum()), rel=1e-6)
    layer = OuterLayerWithKernelRegularizer(activity_regularizer=regularizers.l1(0.5))
    x = _xs(xp, rng, (5, 2))
    y = to_numpy(layer(x))
    kernel = layer.dense.get_weights()[0]
    values = [_value(v) for v in layer.losses]
    # Keras's order: the layers' added losses (here the activity penalty, over the batch), then the regularizers.
    assert values == pytest.approx([0.5 * numpy.abs(y).sum() / 5, 1e-3 * (kernel.astype("float64") ** 2).sum()],
                                   rel=1e-5)
    assert [_value(v) for v in layer.dense.losses] == pytest.approx(values, rel=1e-6)


def test_add_loss_takes_values_and_lists_and_refuses_other_things(xp, rng):
    layer = layers.Dense(2)
    layer(_xs(xp, rng, (3, 2)))
    values = [xp.ones((2, 2), dtype="float32"), numpy.float32(0.5)]
    layer.add_loss(values)
    assert len(layer.losses) == 2
    numpy.testing.assert_array_equal(to_numpy(layer.losses[0]), numpy.ones((2, 2)))   # recorded as computed
    assert _value(layer.losses[1]) == 0.5
    with pytest.raises(ValueError, match=r"`add_loss\(\)` can only be called .* Received invalid value: 1.5"):
        layer.add_loss(1.5)
    with pytest.raises(ValueError, match="invalid value"):
        layer.add_loss(numpy.array(["a"]))
    assert len(layer.losses) == 2
    inputs = gpu_dl.Input((3,))
    with pytest.raises(ValueError, match="add_loss got the symbolic tensor.*functional model"):
        layer.add_loss(ops.mean(inputs))


# ------------------------------------------------------------------ the loss models report
def _mse(y, out):
    return float(((y.astype("float64") - out) ** 2).mean())


def test_functional_model_reports_compiled_plus_added_loss(xp, rng):
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, ActivityRegularizationLayer()(inputs))
    assert model.losses == []                   # building the model adds none
    x, y = rng.random((6, 3)).astype("float32"), rng.random((6, 3)).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    expected = _mse(y, x) + 1e-2 * float(x.mean())
    assert model.train_on_batch(x, y) == pytest.approx(expected, rel=1e-6)
    assert model.test_on_batch(x, y) == pytest.approx(expected, rel=1e-6)
    # Batches of 4 and 2: each batch's loss, weighted by its size, as Keras's loss tracker averages them.
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    mean = sum((_mse(b, a) + 1e-2 * float(a.mean())) * len(a) for a, b in batches) / 6
    assert model.evaluate(x, y, batch_size=4, verbose=0) == pytest.approx(mean, rel=1e-6)
    history = model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(mean, rel=1e-6)
    model.predict(x, batch_size=4, verbose=0)
    assert _value(model.losses[0]) == pytest.approx(1e-2 * float(x[4:].mean()), rel=1e-6)   # the last batch's


def test_compile_without_a_loss_trains_on_the_added_losses(xp, rng):
    x = rng.standard_normal((8, 4)).astype("float32")
    model = gpu_dl.Sequential([gpu_dl.Input((4,)), layers.Dense(3), ActivityRegularizationLayer(0.5)])
    model.compile(optimizer="sgd")
    out = model.predict(x, verbose=0)
    assert model.test_on_batch(x) == pytest.approx(0.5 * float(out.mean()), rel=1e-5)
    first = model.evaluate(x, verbose=0)
    history = model.fit(x, epochs=5, batch_size=8, verbose=0)          # no targets: none is needed
    assert history.history["loss"][0] == pytest.approx(first, rel=1e-5)
    assert model.evaluate(x, verbose=0) < first                        # the mean of the outputs goes down
    assert model.train_on_batch(x, rng.random((8, 3))) < first          # targets given are not used


def test_without_any_loss_fit_and_evaluate_raise_keras_error(xp, rng):
    x, y = rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((4, 2)).astype("float32")
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(2)])
    model.compile(optimizer="adam")                  # accepted, as in Keras
    before = model.get_weights()
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.train_on_batch(x, y),
                 lambda: model.evaluate(x, y, verbose=0), lambda: model.test_on_batch(x, y)):
        with pytest.raises(ValueError, match=r"No loss to compute. Provide a `loss` argument in `compile\(\)`"):
            call()
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    assert int(to_numpy(model.optimizer.iterations)) == 0
    regularized = gpu_dl.Sequential([gpu_dl.Input((3,)), layers.Dense(2, kernel_regularizer=regularizers.l2(0.1))])
    regularized.compile(optimizer="sgd")             # a regularizer is a loss: it trains on it alone
    kernel = regularized.get_weights()[0]
    assert regularized.train_on_batch(x) == pytest.approx(0.1 * float((kernel.astype("float64") ** 2).sum()),
                                                          rel=1e-5)
    numpy.testing.assert_allclose(regularized.get_weights()[0], kernel * (1 - 0.01 * 0.2), rtol=1e-6)


def test_compile_without_a_loss_keeps_the_earlier_loss_as_keras():
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, ActivityRegularizationLayer()(inputs))
    model.compile(optimizer="adam", loss="mse")
    loss = model.loss
    model.compile(optimizer="adam")
    assert model.loss is loss
    x, y = numpy.full((2, 3), 0.5, "float32"), numpy.zeros((2, 3), "float32")
    assert model.test_on_batch(x, y) == pytest.approx(0.25 + 0.005, rel=1e-6)


def test_vae_losses_and_reported_loss_against_numpy(xp, rng):
    model = VariationalAutoEncoder(5)
    x = rng.random((6, 5)).astype("float32")
    model(x)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in model.get_weights()]
    model.set_weights(weights)
    rec = to_numpy(model(x))
    k1, b1, km, bm, kv, bv, k2, b2, k3, b3 = [w.astype("float64") for w in weights]
    h = numpy.maximum(x @ k1 + b1, 0)
    z_mean, z_log_var = h @ km + bm, h @ kv + bv
    z = z_mean + numpy.exp(0.5 * z_log_var) * 0.3
    expected_rec = 1 / (1 + numpy.exp(-(numpy.maximum(z @ k2 + b2, 0) @ k3 + b3)))
    kl = -0.5 * (z_log_var - z_mean ** 2 - numpy.exp(z_log_var) + 1).mean()
    numpy.testing.assert_allclose(rec, expected_rec, rtol=1e-5, atol=1e-6)
    assert len(model.losses) == 1 and _value(model.losses[0]) == pytest.approx(kl, rel=1e-5)
    model.compile(optimizer="adam", loss=gpu_dl.losses.MeanSquaredError())
    assert model.test_on_batch(x, x) == pytest.approx(_mse(x, expected_rec) + kl, rel=1e-5)
    history = model.fit(x, x, epochs=3, batch_size=6, verbose=0)
    assert history.history["loss"][0] == pytest.approx(_mse(x, expected_rec) + kl, rel=1e-5)
    assert history.history["loss"][-1] < history.history["loss"][0]


# ------------------------------------------------------------------ gradients of the total loss
def _assert_total_loss_gradient(model, x, y, rng, loss="mse"):
    """One SGD step of learning rate 1 moves each weight by minus the gradient of the loss train_on_batch reports;
    the loss test_on_batch reports (the same forward pass, no dropout) must change along it as finite differences
    say, in float64."""
    model.compile(optimizer=gpu_dl.optimizers.SGD(learning_rate=1.0), loss=loss)
    before = model.get_weights()
    model.train_on_batch(x, y)
    gradients = [b - a for b, a in zip(before, model.get_weights())]
    model.set_weights(before)
    assert any(numpy.abs(g).max() > 0 for g in gradients)
    for i, (weight, gradient) in enumerate(zip(before, gradients)):
        def total(w, i=i):
            model.set_weights(before[:i] + [w] + before[i + 1:])
            return model.test_on_batch(x, y)
        assert_gradient(total, weight, gradient, rng, rtol=1e-5, atol=1e-9, what=model.weights[i].path)
    model.set_weights(before)


def test_gradient_of_compiled_plus_added_losses_through_the_traced_vae(xp, rng):
    model = VariationalAutoEncoder(4, dtype="float64")
    x = rng.random((5, 4))
    model(x)
    model.set_weights([rng.standard_normal(w.shape) * 0.5 for w in model.get_weights()])
    _assert_total_loss_gradient(model, x, rng.random((5, 4)), rng)


def test_gradient_through_nested_and_shared_composite_layers_with_regularizers(xp, rng):
    inputs = gpu_dl.Input((3,), dtype="float64")
    block = Penalized(3, dtype="float64")
    h = layers.Dense(3, activation="tanh", kernel_regularizer=regularizers.l2(0.05), dtype="float64")(inputs)
    h = block(block(h))                 # called twice: each call's losses count
    model = gpu_dl.Model(inputs, layers.Dense(2, dtype="float64")(h))
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    model.compile(optimizer="sgd", loss="mse")
    weights = model.get_weights()
    w0, b0, wb, bb, w1, b1 = weights
    h1 = numpy.tanh(x @ w0 + b0)
    added = 0.0
    for _ in range(2):
        h1 = numpy.tanh(h1 @ wb + bb)
        added += 0.3 * h1.mean() + 0.1 * (h1 ** 2).sum()
    expected = ((h1 @ w1 + b1 - y) ** 2).mean() + added + 0.05 * (w0 ** 2).sum()
    assert model.test_on_batch(x, y) == pytest.approx(expected, rel=1e-10)
    assert len(block.losses) == 4 and len(block.reg.losses) == 2     # two calls, each a loss of its own and one
    assert len(model.losses) == 5                                     # inner; then the kernel regularizer's
    _assert_total_loss_gradient(model, x, y, rng)


def _two_outputs():
    inputs = gpu_dl.Input((3,), dtype="float64")
    h = layers.Dense(4, activation="tanh", dtype="float64")(inputs)
    first = layers.Dense(2, dtype="float64", name="first")(h)
    second = Penalized(2, dtype="float64", name="second")(h)        # no gradient reaches it but its losses'
    return gpu_dl.Model(inputs, [first, second])


def test_gradient_with_no_compiled_loss_and_an_output_without_a_loss(xp, rng):
    x, y = rng.standard_normal((5, 3)), [rng.standard_normal((5, 2)), None]
    _assert_total_loss_gradient(_two_outputs(), x, y, rng, loss=["mse", None])
    model = _two_outputs()
    model.compile(optimizer="sgd")
    assert model.test_on_batch(x) == pytest.approx(sum(float(to_numpy(v).sum()) for v in model.losses), rel=1e-12)
    with pytest.warns(UserWarning, match=r"Gradients do not exist for variables \['first/kernel', 'first/bias'\]"):
        _assert_total_loss_gradient(model, x, None, rng, loss=None)     # as Keras: no loss reads that output


def test_gradient_with_a_composite_layer_in_a_sequential_model(xp, rng):
    model = gpu_dl.Sequential([gpu_dl.Input((3,), dtype="float64"), layers.Dense(4, dtype="float64"),
                               Penalized(3, dtype="float64"), layers.Dense(2, dtype="float64")])
    _assert_total_loss_gradient(model, rng.standard_normal((4, 3)), rng.standard_normal((4, 2)), rng)


# ------------------------------------------------------------------ losses added on arrays
def _with(layer):
    return gpu_dl.Sequential([gpu_dl.Input((3,), dtype="float64"), layers.Dense(3, dtype="float64"), layer,
                              layers.Dense(2, dtype="float64")])


def test_loss_added_on_arrays_counts_and_is_refused_in_training(xp, rng):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    for layer, words in ((Doubling(dtype="float64", name="doubling"), "has its own backward"),
                         (Untraceable(dtype="float64", name="untraceable"), "not traced")):
        model = _with(layer)
        model.compile(optimizer="sgd", loss="mse")
        weights = model.get_weights()
        h = x @ weights[0] + weights[1]
        added = 0.1 * h.sum() if isinstance(layer, Doubling) else 0.5 * (h @ weights[2] + weights[3]).mean()
        out = model.predict(x, verbose=0)
        assert model.test_on_batch(x, y) == pytest.approx(_mse(y, out) + added, rel=1e-10)
        before = model.get_weights()
        with pytest.raises(NotImplementedError, match=f"Layer '{layer.name}'.*{words}.*backward_includes_added"):
            model.train_on_batch(x, y)
        for a, b in zip(before, model.get_weights()):
            numpy.testing.assert_array_equal(a, b)


def test_backward_that_includes_its_added_loss_trains(xp, rng):
    model = _with(DoublingWithLossGradient(dtype="float64"))
    model.compile(optimizer="sgd", loss="mse")
    _assert_total_loss_gradient(model, rng.standard_normal((4, 3)), rng.standard_normal((4, 2)), rng)
