"""Composite layers: a Layer subclass that makes sublayers in __init__ and composes them in call, with no backward
of its own. Its sublayers' weights are its own (in Keras's order); it runs and trains through the graph traced
from its call, on both backends: forward against NumPy, input and weight gradients against float64 finite
differences; inside Sequential and functional models; the errors of a call that cannot be traced.
Against Keras itself: tests/test_keras_oracle_composite_layers.py."""
import warnings

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy

from composite_classes import branching, residual, shared, stack
from gradcheck import assert_gradient

Residual, Shared, Stack, Branching = residual(gpu_dl), shared(gpu_dl), stack(gpu_dl), branching(gpu_dl)


def _layer_norm(z, gamma, beta, epsilon=1e-3):
    mean = z.mean(-1, keepdims=True)
    var = z.var(-1, keepdims=True)
    return (z - mean) / numpy.sqrt(var + epsilon) * gamma + beta


def _randomize(layer, rng):
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()])


# ------------------------------------------------------------------ call arguments
def test_training_and_mask_reach_call_only_where_named(xp):
    seen = {}

    class Plain(layers.Layer):
        def call(self, x):
            return x * 2

        def backward(self, dy):
            return dy * 2

    class Named(layers.Layer):
        def call(self, x, training=None, mask=None):
            seen["named"] = (training, mask)
            return x

        def backward(self, dy):
            return dy

    class Keywords(layers.Layer):
        def call(self, x, **kwargs):
            seen["kwargs"] = dict(kwargs)
            return x

        def backward(self, dy):
            return dy

    x = xp.ones((2, 3), dtype="float32")
    numpy.testing.assert_array_equal(to_numpy(Plain()(x, training=True)), 2.0)
    Named()(x, training=True)
    assert seen["named"] == (True, None)
    Keywords()(x)
    assert seen["kwargs"] == {"training": False}


# ------------------------------------------------------------------ sublayers and weights
def test_sublayers_are_tracked_in_keras_order(xp, rng):
    layer = Stack(4)
    layer(xp.asarray(rng.standard_normal((3, 5)).astype("float32")))
    names = [v.path for v in layer.weights]
    inner = [layer.inp] + [sub for block in layer.blocks for sub in (block.d1, block.d2, block.norm)] + \
        [layer.heads["out"]]
    assert names == [v.path for sub in inner for v in sub.weights]
    assert layer.count_params() == sum(sub.count_params() for sub in inner)
    assert len(layer.trainable_weights) == len(names) and layer.non_trainable_weights == []
    values = [rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(values)
    for a, b in zip(layer.get_weights(), values):
        numpy.testing.assert_array_equal(a, b)
    layer.trainable = False
    assert not layer.blocks[1].d2.trainable and layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == len(names)
    layer.trainable = True
    assert layer.blocks[1].d2.trainable


def test_appended_sublayers_and_replaced_attributes_are_tracked():
    class Later(layers.Layer):
        def __init__(self):
            super().__init__()
            self.parts = []
            self.parts.append(layers.Dense(2))
            self.gone = layers.Dense(3)
            self.gone = None

        def call(self, x):
            return self.parts[0](x)

    layer = Later()
    layer(numpy.ones((1, 4), dtype="float32"))
    assert layer._sublayers() == layer.parts and layer.count_params() == 10


# ------------------------------------------------------------------ forward
def test_residual_forward_matches_numpy(xp, rng):
    layer = Residual(5)
    x = rng.standard_normal((3, 5)).astype("float32")
    layer(xp.asarray(x))
    _randomize(layer, rng)
    k1, b1, k2, b2, gamma, beta = layer.get_weights()
    expected = _layer_norm(x + numpy.tanh(x @ k1 + b1) @ k2 + b2, gamma, beta)
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), expected, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x), training=True)), expected, rtol=1e-5, atol=1e-5)


def test_branch_on_training_picks_its_graph(xp, rng):
    layer = Branching(4, rate=0.5)
    x = rng.standard_normal((64, 4)).astype("float32")
    inference = to_numpy(layer(xp.asarray(x)))
    k1, b1, k2, b2 = layer.get_weights()
    numpy.testing.assert_allclose(inference, numpy.tanh(x @ k1 + b1) @ k2 + b2 + x, rtol=1e-5, atol=1e-5)
    trained = to_numpy(layer(xp.asarray(x), training=True))
    assert not numpy.allclose(trained, inference)
    assert len([graph for graph, _ in layer._traces.values() if graph is not None]) == 2


# ------------------------------------------------------------------ gradients
def _check_gradients(xp, rng, layer, x_shape, reset=lambda: None):
    """Input and weight gradients of sum(layer(x, training=True) * w) against float64 finite differences."""
    x = xp.asarray(rng.standard_normal(x_shape))
    y = layer(x, training=True)
    _randomize(layer, rng)
    w = xp.asarray(rng.standard_normal(y.shape))

    def loss_at(x_value):
        reset()
        return (layer(x_value, training=True) * w).sum()

    reset()
    layer(x, training=True)
    dx = layer.backward(w)
    assert_gradient(loss_at, x, dx, rng, rtol=1e-5, atol=1e-7)
    variables = layer.trainable_weights
    assert variables and all(v.grad is not None for v in variables)
    grads = [v.grad.copy() for v in variables]
    for var, grad in zip(variables, grads):
        original = var.value.copy()

        def loss_of_weight(value, var=var):
            var.value[...] = value
            return loss_at(x)
        assert_gradient(loss_of_weight, original, grad, rng, rtol=1e-5, atol=1e-7, what=var.path)
        var.value[...] = original


@pytest.mark.parametrize("make, x_shape", [
    (lambda: Residual(4, dtype="float64"), (3, 4)),
    (lambda: Shared(4, dtype="float64"), (3, 4)),
    (lambda: Stack(3, dtype="float64"), (2, 5)),
], ids=["residual", "shared_sublayer", "nested_list_dict"])
def test_gradients_through_composite_layers(xp, rng, make, x_shape):
    _check_gradients(xp, rng, make(), x_shape)


def test_gradients_through_a_training_branch_with_dropout(xp, rng):
    layer = Branching(5, rate=0.4, dtype="float64")

    def reset():
        layer.drop.seed_generator.state.assign([11, 0])     # the same dropout mask in every evaluation
    _check_gradients(xp, rng, layer, (4, 5), reset)


def test_a_composite_layer_of_several_inputs(xp, rng):
    class Pair(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.a = layers.Dense(3, dtype=self.dtype)
            self.b = layers.Dense(3, dtype=self.dtype)

        def call(self, inputs):
            first, second = inputs
            return self.a(first) * self.b(second)

    layer = Pair(dtype="float64")
    x1, x2 = xp.asarray(rng.standard_normal((2, 4))), xp.asarray(rng.standard_normal((2, 5)))
    y = layer([x1, x2], training=True)
    ka, ba, kb, bb = layer.get_weights()
    expected = (to_numpy(x1) @ ka + ba) * (to_numpy(x2) @ kb + bb)
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx1, dx2 = layer.backward(w)
    assert_gradient(lambda v: (layer([v, x2]) * w).sum(), x1, dx1, rng)
    assert_gradient(lambda v: (layer([x1, v]) * w).sum(), x2, dx2, rng)


# ------------------------------------------------------------------ inside models
def _data(rng, n=32, features=5, classes=3):
    x = rng.standard_normal((n, features)).astype("float32")
    return x, rng.integers(0, classes, n)


def test_in_a_sequential_model_trains(xp, rng):
    x, y = _data(rng)
    model = gpu_dl.Sequential([gpu_dl.Input((5,)), Residual(5), Branching(5), layers.Dense(3, activation="softmax")])
    assert model.count_params() == 5 * 5 * 2 + 10 + 10 + 5 * 5 * 2 + 10 + 18
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    start = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < start
    assert all(not numpy.allclose(a, b) for a, b in zip(before, model.get_weights()))
    assert model.predict(x, verbose=0).shape == (32, 3)


def test_in_a_functional_model_trains_and_is_shared(xp, rng):
    x, y = _data(rng)
    block = Residual(5)
    inputs = gpu_dl.Input((5,))
    h = block(block(inputs))                 # one composite layer called twice
    outputs = layers.Dense(3, activation="softmax")(Shared(5)(h))
    model = gpu_dl.Model(inputs, outputs)
    assert len(model.weights) == 6 + 2 + 2
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    start = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < start


def test_gradients_through_a_composite_layer_called_twice_in_a_model(xp, rng):
    block = Residual(4, dtype="float64")
    inputs = gpu_dl.Input((4,), dtype="float64")
    model = gpu_dl.Model(inputs, block(block(inputs)))
    x = xp.asarray(rng.standard_normal((3, 4)))
    _randomize(block, rng)
    w = xp.asarray(rng.standard_normal((3, 4)))
    model.forward(x, training=True)
    model.backward(w)
    for var in block.trainable_weights:
        original, grad = var.value.copy(), var.grad.copy()

        def loss(value, var=var):
            var.value[...] = value
            return (model.forward(x, training=True) * w).sum()
        assert_gradient(loss, original, grad, rng, rtol=1e-5, atol=1e-7, what=var.path)
        var.value[...] = original


def test_summary_counts_the_sublayers(rng):
    model = gpu_dl.Sequential([gpu_dl.Input((4,)), Residual(4, name="block"), layers.Dense(2)])
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    text = "\n".join(lines)
    assert "block (Residual)" in text and "(None, 4)" in text
    assert " 48 " in text and "Total params: 58" in text


def test_weights_files_round_trip(tmp_path, rng):
    def make():
        return gpu_dl.Sequential([gpu_dl.Input((5,)), Stack(4), layers.Dense(2)])
    x = rng.standard_normal((3, 5)).astype("float32")
    model, other = make(), make()
    model.save_weights(tmp_path / "m.weights.h5")
    other.load_weights(tmp_path / "m.weights.h5")
    numpy.testing.assert_array_equal(model.predict(x, verbose=0), other.predict(x, verbose=0))


# ------------------------------------------------------------------ what cannot train
def test_an_untraceable_call_runs_and_refuses_to_train(xp, rng):
    class NumpyInside(layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(3)

        def call(self, x):
            return self.dense(numpy.tanh(gpu_dl.backend.to_numpy(x)))

    layer = NumpyInside()
    x = rng.standard_normal((2, 4)).astype("float32")
    y = layer(xp.asarray(x), training=True)
    k, b = layer.get_weights()
    numpy.testing.assert_allclose(to_numpy(y), numpy.tanh(x) @ k + b, rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match=r"NumpyInside\).*could not be traced.*backward\(dy\)"):
        layer.backward(xp.ones((2, 3), dtype="float32"))
    model = gpu_dl.Sequential([gpu_dl.Input((4,)), layers.Dense(4), NumpyInside()])
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    with pytest.raises(NotImplementedError, match="cannot be trained through"):
        model.fit(x, numpy.zeros((2, 3)), verbose=0)
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)      # refused before the optimizer changed anything
    assert model.predict(x, verbose=0).shape == (2, 3)


def test_own_weights_used_through_their_value_array_train(xp, rng):
    # `self.scale.value` (the array) in a traced call is the variable, as Keras's `value` is its live tensor.
    class Scaled(layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight((input_shape[-1],), "ones", name="scale")
            self.dense = layers.Dense(2, dtype=self.dtype)

        def call(self, x):
            return self.dense(x * self.scale.value)

    layer = Scaled(dtype="float64")
    x = xp.asarray(rng.standard_normal((4, 3)))
    layer(x)
    assert [v.name for v in layer.weights] == ["scale", "kernel", "bias"]
    _randomize(layer, rng)
    scale, kernel, bias = layer.get_weights()
    numpy.testing.assert_allclose(to_numpy(layer(x)), to_numpy(x) * scale @ kernel + bias, rtol=1e-12)
    w = xp.asarray(rng.standard_normal((4, 2)))
    layer(x, training=True)
    layer.backward(w)
    original, grad = layer.scale.value.copy(), layer.scale.grad.copy()

    def loss(value):
        layer.scale.value[...] = value
        return (layer(x, training=True) * w).sum()
    assert_gradient(loss, original, grad, rng, rtol=1e-6, atol=1e-8, what="scale")


def test_a_class_with_its_own_backward_keeps_it(xp):
    class Doubler(layers.Layer):
        def __init__(self):
            super().__init__()
            self.inner = layers.Dense(2)

        def call(self, x, training=False):
            return 2 * x

        def backward(self, dy):
            return 2 * dy

    layer = Doubler()
    assert not layer._composite
    numpy.testing.assert_array_equal(to_numpy(layer.backward(xp.ones((1, 2)))), 2.0)


def test_a_built_in_layer_with_a_call_of_its_own_and_no_backward_says_what_to_do():
    """Keras differentiates an overridden call of a Dense subclass (``super().call(x) * 2``); gpu_dl would run
    Dense's backward, the gradient of Dense's own call: the class warns when it is made, and training names it."""
    with pytest.warns(UserWarning, match="Doubled overrides call\\(\\) of gpu_dl's Dense but not backward"):
        class Doubled(gpu_dl.layers.Dense):
            def call(self, x):
                return super().call(x) * 2.0
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), Doubled(2, name="doubled")])
    model.compile(optimizer="sgd", loss="mse")
    numpy.testing.assert_allclose(model.predict(numpy.ones((1, 3), "float32"), verbose=0),
                                  2.0 * (numpy.ones((1, 3)) @ model.get_weights()[0]), rtol=1e-6)
    with pytest.raises(RuntimeError, match="Layer 'doubled'.*Doubled overrides call\\(\\) of Dense but not "
                                           "backward\\(\\).*self.inner = Dense"):
        model.fit(numpy.ones((4, 3), "float32"), numpy.ones((4, 2), "float32"), verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Noted(gpu_dl.layers.Dense):       # no call of its own: no warning
            pass
