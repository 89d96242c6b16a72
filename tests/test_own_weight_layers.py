"""Layers with weights of their own (``add_weight``) used directly in ``call``, as Keras's subclassing guide writes
them: Keras's ``add_weight`` signature and defaults, the Variable API (value, assign, operators, NumPy
conversion), and training through the traced graph, where each variable is one read of its live value and gets
its gradient, on both backends: forward against NumPy, gradients against float64 finite differences, updates
(``assign_add``) that run each time the graph runs. Against Keras itself: tests/test_keras_oracle_own_weight_layers.py.
"""
import re

import h5py
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, ops
from gpu_dl.backend import to_numpy
from gpu_dl.layers.variable_operations import AfterUpdates, VariableRead, VariableUpdate
from gpu_dl.models.composite import untrainable_message

from gradcheck import assert_gradient
from own_weight_classes import compute_sum, linear, linear_made_in_init, mixed, mlp_block, scaled_classifier

Linear, LinearMadeInInit, MLPBlock = linear(gpu_dl), linear_made_in_init(gpu_dl), mlp_block(gpu_dl)
ComputeSum, Mixed, ScaledClassifier = compute_sum(gpu_dl), mixed(gpu_dl), scaled_classifier(gpu_dl)


def _randomize(model, rng, scale=0.5):
    model.set_weights([rng.standard_normal(w.shape) * scale for w in model.get_weights()])


def _operations(layer, cls):
    """The operations of class ``cls`` in the layer's traced graphs, per graph."""
    return [[op for op in graph._layers if isinstance(op, cls)] for graph, _ in layer.__dict__["_traces"].values()]


# ------------------------------------------------------------------ the guide's examples
def test_linear_computes_its_matmul_plus_bias(xp, rng):
    layer = Linear(4)
    x = rng.standard_normal((5, 3)).astype("float32")
    y = layer(xp.asarray(x))
    w, b = layer.get_weights()
    assert w.shape == (3, 4) and b.shape == (4,) and not b.any()
    assert 0 < w.std() < 0.2        # random_normal, standard deviation 0.05
    _randomize(layer, rng)
    w, b = layer.get_weights()
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), x @ w + b, rtol=1e-5, atol=1e-6)
    assert to_numpy(y).shape == (5, 4)
    assert [len(reads) for reads in _operations(layer, VariableRead)] == [2]


def test_linear_made_in_init_in_sequential_functional_and_subclassed_models(xp, rng):
    x = rng.standard_normal((6, 3)).astype("float32")
    sequential = gpu_dl.Sequential([gpu_dl.Input((3,)), LinearMadeInInit(4, input_dim=3), Linear(2)])
    inputs = gpu_dl.Input((3,))
    functional = gpu_dl.Model(inputs, Linear(2)(LinearMadeInInit(4, input_dim=3)(inputs)))

    class Subclassed(gpu_dl.Model):
        def __init__(self):
            super().__init__()
            self.first = LinearMadeInInit(4, input_dim=3)
            self.second = Linear(2)

        def call(self, x):
            return self.second(self.first(x))

    subclassed = Subclassed()
    subclassed(xp.asarray(x[:1]))
    for model in (sequential, functional, subclassed):
        _randomize(model, rng)
        w1, b1, w2, b2 = model.get_weights()
        numpy.testing.assert_allclose(model.predict(x, verbose=0), (x @ w1 + b1) @ w2 + b2, rtol=1e-5, atol=1e-6)
        assert model.count_params() == 3 * 4 + 4 + 4 * 2 + 2


def test_the_read_is_the_live_value_not_a_copy_from_the_trace(xp, rng):
    layer = Linear(2)
    x = xp.asarray(rng.standard_normal((3, 4)).astype("float32"))
    layer(x)                                    # traced here
    layer.w.assign(numpy.ones((4, 2), "float32"))
    layer.b.assign_add(numpy.full(2, 3.0, "float32"))
    expected = numpy.repeat(to_numpy(x).sum(1, keepdims=True) + 3.0, 2, axis=1)
    numpy.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5)


def test_gradients_of_w_and_b_through_the_traced_graph(xp, rng):
    block = MLPBlock(5, 2, dtype="float64")
    inputs = gpu_dl.Input((3,), dtype="float64")
    model = gpu_dl.Model(inputs, block(inputs))
    _randomize(model, rng)
    x = xp.asarray(rng.standard_normal((4, 3)))
    w = xp.asarray(rng.standard_normal((4, 2)))
    model.forward(x, training=True)
    dx = model.backward(w)
    assert [v.path for v in model.trainable_weights] == [block.linear_1.w.path, block.linear_1.b.path,
                                                         block.linear_2.w.path, block.linear_2.b.path]
    for var in model.trainable_weights:
        original, grad = var.value.copy(), var.grad.copy()

        def loss(value, var=var):
            var.value[...] = value
            return (model.forward(x, training=True) * w).sum()
        assert_gradient(loss, original, grad, rng, rtol=1e-6, atol=1e-8, what=var.path)
        var.value[...] = original
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), x, dx, rng, what="input")


def test_a_variable_used_twice_is_read_once_and_gets_the_summed_gradient(xp, rng):
    class Twice(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], input_shape[-1]), dtype="float64")

        def call(self, x):
            return ops.matmul(x, self.w) * ops.sum(self.w, axis=0) + x @ self.w

    layer = Twice(dtype="float64")
    x = xp.asarray(rng.standard_normal((3, 4)))
    w = xp.asarray(rng.standard_normal((3, 4)))
    layer(x, training=True)
    assert [len(reads) for reads in _operations(layer, VariableRead)] == [1]
    layer.backward(w)
    original, grad = layer.w.value.copy(), layer.w.grad.copy()

    def loss(value):
        layer.w.value[...] = value
        return (layer(x, training=True) * w).sum()
    assert_gradient(loss, original, grad, rng, what="w")


def test_a_weight_of_another_layer_read_beside_its_call_gets_both_gradients(xp, rng):
    # Tied weights by hand: the decoder is the transposed kernel of the encoder.
    class Tied(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.encoder = layers.Dense(3, activation="tanh", use_bias=False, dtype=self.dtype)

        def call(self, x):
            return ops.matmul(self.encoder(x), ops.transpose(self.encoder.kernel))

    layer = Tied(dtype="float64")
    x = xp.asarray(rng.standard_normal((5, 4)))
    w = xp.asarray(rng.standard_normal((5, 4)))
    layer(x, training=True)
    layer.backward(w)
    kernel = layer.encoder.kernel
    original, grad = kernel.value.copy(), kernel.grad.copy()

    def loss(value):
        kernel.value[...] = value
        return (layer(x, training=True) * w).sum()
    assert_gradient(loss, original, grad, rng, what="kernel")


def test_fit_trains_own_weights_with_their_regularizer_and_constraint(xp, rng):
    class Constrained(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2), initializer="ones", regularizer="l2",
                                     constraint="non_neg", name="w")

        def call(self, x):
            return ops.matmul(x, self.w)

    layer = Constrained()
    model = gpu_dl.Sequential([gpu_dl.Input((3,)), layer])
    x = rng.standard_normal((16, 3)).astype("float32")
    y = -numpy.abs(rng.standard_normal((16, 2))).astype("float32") * 5
    model.compile(optimizer="sgd", loss="mse")
    prediction = x @ numpy.ones((3, 2), "float32")
    penalty = 0.01 * 6.0        # l2's default factor times the sum of squares of the ones
    assert model.evaluate(x, y, verbose=0) == pytest.approx(((prediction - y) ** 2).mean() + penalty, rel=1e-5)
    model.fit(x, y, epochs=5, batch_size=4, verbose=0)
    w = layer.w.numpy()
    assert w.min() >= 0 and not numpy.allclose(w, 1.0)


def test_a_non_trainable_or_frozen_variable_gets_no_gradient(xp, rng):
    class Frozen(layers.Layer):
        def build(self, input_shape):
            self.fixed = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=False)
            self.free = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.fixed + self.free

    layer = Frozen()
    x = xp.asarray(rng.standard_normal((2, 3)).astype("float32"))
    layer(x, training=True)
    layer.backward(xp.ones((2, 3), "float32"))
    assert layer.fixed.grad is None and layer.free.grad is not None
    assert [v.name for v in layer.weights] == [layer.free.name, layer.fixed.name]     # trainable first, as Keras
    layer.trainable = False
    assert not layer.free.trainable and layer.trainable_weights == []
    layer.free.grad = None
    layer(x, training=True)
    layer.backward(xp.ones((2, 3), "float32"))
    assert layer.free.grad is None
    layer.trainable = True
    assert layer.free.trainable and not layer.fixed.trainable


# ------------------------------------------------------------------ updates
def test_compute_sum_gives_running_sums_on_arrays(xp):
    layer = ComputeSum(2)
    x = xp.ones((2, 2), "float32")
    numpy.testing.assert_array_equal(to_numpy(layer(x)), [2.0, 2.0])
    numpy.testing.assert_array_equal(to_numpy(layer(x)), [4.0, 4.0])
    numpy.testing.assert_array_equal(layer.total.numpy(), [4.0, 4.0])
    assert layer.trainable_weights == [] and [v.name for v in layer.non_trainable_weights] == [layer.total.name]
    assert [len(u) for u in _operations(layer, VariableUpdate)] == [1]


def test_compute_sum_runs_its_update_inside_a_traced_model(xp, rng):
    class Summing(gpu_dl.Model):
        def __init__(self):
            super().__init__()
            self.sum = ComputeSum(3)
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x) + ops.sum(self.sum(x))

    model = Summing()
    x = rng.standard_normal((4, 3)).astype("float32")
    first = to_numpy(model(xp.asarray(x)))
    kernel, bias = model.dense.get_weights()
    numpy.testing.assert_allclose(first, x @ kernel + bias + x.sum(), rtol=1e-5, atol=1e-5)
    second = to_numpy(model(xp.asarray(x)))
    numpy.testing.assert_allclose(second, x @ kernel + bias + 2 * x.sum(), rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(model.sum.total.numpy(), 2 * x.sum(0), rtol=1e-6)
    # It trains: the update takes no gradient, the Dense does.
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, numpy.zeros((4, 2), "float32"), epochs=1, batch_size=4, verbose=0)
    numpy.testing.assert_allclose(model.sum.total.numpy(), 3 * x.sum(0), rtol=1e-5)
    assert not numpy.allclose(model.dense.get_weights()[0], kernel)


def test_an_update_no_output_depends_on_runs_in_every_call(xp, rng):
    layer = Mixed(2)
    x = xp.asarray(rng.standard_normal((3, 4)).astype("float32"))
    layer(x)
    layer(x, training=True)
    assert float(layer.calls) == 2.0
    assert [len(ops_) for ops_ in _operations(layer, AfterUpdates)] == [1]
    model = gpu_dl.Sequential([gpu_dl.Input((4,)), layer])
    model.compile(optimizer="sgd", loss="mse")
    before = layer.scale.numpy()
    model.fit(to_numpy(x), numpy.ones((3, 2), "float32"), epochs=2, batch_size=3, verbose=0)
    assert float(layer.calls) == 4.0 and not numpy.allclose(layer.scale.numpy(), before)


def test_updates_read_before_and_after(xp):
    class Both(layers.Layer):
        def __init__(self):
            super().__init__()
            self.v = self.add_weight(shape=(2,), initializer="ones", trainable=False, name="v")

        def call(self, x):
            before = x * self.v
            self.v.assign(self.v * 3.0)
            self.v.assign_sub(1.0)
            # The value after both updates, computed before the product that reads the value from before them.
            return self.v + before

    layer = Both()
    out = layer(xp.ones((1, 2), "float32"))
    numpy.testing.assert_array_equal(to_numpy(out), [[1.0 + 2.0, 1.0 + 2.0]])
    numpy.testing.assert_array_equal(layer.v.numpy(), [2.0, 2.0])
    out = layer(xp.ones((1, 2), "float32"))
    numpy.testing.assert_array_equal(to_numpy(out), [[2.0 + 5.0, 2.0 + 5.0]])


def test_an_update_that_does_not_fit_the_variable_is_refused(xp):
    class Wrong(layers.Layer):
        def __init__(self):
            super().__init__()
            self.v = self.add_weight(shape=(3,), initializer="zeros", trainable=False, name="v")

        def call(self, x):
            self.v.assign_add(x)        # keeps the batch axis
            return x

    layer = Wrong()
    # The trace refuses it, and the call then runs as written, which refuses it too.
    with pytest.raises(ValueError, match=r"Variable '.*/v' has shape \(3,\); cannot assign_add a value of shape "
                                         r"\(2, 3\)"):
        layer(xp.ones((2, 3), "float32"))
    assert re.search(r"v': assign_add: the variable has shape \(3,\); a value of shape \(None, 3\) does not fit",
                     untrainable_message(layer))
    with pytest.raises(TypeError, match="assign_add was given a symbolic tensor outside"):
        Wrong().v.assign_add(ops.sum(gpu_dl.Input((3,)), axis=0))


# ------------------------------------------------------------------ the Variable API
def test_variable_api_on_arrays(xp):
    layer = layers.Layer(name="holder")
    v = layer.add_weight(shape=(2, 2), initializer="ones", name="v")
    assert (v.name, v.path, v.shape, v.ndim, v.trainable) == ("v", "holder/v", (2, 2), 2, True)
    assert v.dtype == numpy.float32 and v.aggregation == "none" and v.autocast
    a = numpy.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    numpy.testing.assert_array_equal(to_numpy(v.assign(a)), a)
    numpy.testing.assert_array_equal(numpy.asarray(v), a)
    numpy.testing.assert_array_equal(v.numpy(), a)
    numpy.testing.assert_array_equal(to_numpy(v.assign_add(1.0)), a + 1)
    numpy.testing.assert_array_equal(to_numpy(v.assign_sub(numpy.ones(2, "float32"))), a)
    value = xp.asarray(a)
    for got, expected in [(v + 1, a + 1), (1 - v, 1 - a), (v * v, a * a), (v / 2, a / 2), (2 ** v, 2 ** a),
                          (v @ v, a @ a), (value @ v, a @ a), (value + v, a + a), (v // 2, a // 2),
                          (v % 2, a % 2), (-v, -a), (abs(-v), a), (v[0], a[0]), (v[:, 1], a[:, 1]),
                          (v > 2, a > 2), (v <= 2, a <= 2), (v == a, a == a), (v != 1, a != 1),
                          (ops.sum(v, axis=0), a.sum(0)), (ops.matmul(value, v), a @ a),
                          (ops.concatenate([v, value]), numpy.concatenate([a, a]))]:
        numpy.testing.assert_allclose(to_numpy(got), expected, rtol=1e-6)
    assert ops.shape(v) == (2, 2) and ops.convert_to_numpy(v).tolist() == a.tolist()
    assert float(layer.add_weight(initializer="ones")) == 1.0
    with pytest.raises(ValueError, match="Variable 'holder/v' has shape \\(2, 2\\); cannot assign a value of shape"):
        v.assign(numpy.ones(3, "float32"))
    with pytest.raises(ValueError, match="cannot assign_add"):
        v.assign_add(numpy.ones((3, 2, 2), "float32"))
    with pytest.raises(TypeError, match="shape \\(2, 2\\) cannot be converted to a Python float"):
        float(v)
    assert {v: 1}[v] == 1       # a dict key by identity, whatever == computes


def test_variables_in_a_layer_call_on_arrays_and_tensors(xp, rng):
    dense = layers.Dense(2)
    holder = layers.Layer()
    v = holder.add_weight(shape=(3, 3), initializer="identity", name="eye")
    numpy.testing.assert_allclose(to_numpy(dense(v)), to_numpy(dense(xp.eye(3, dtype="float32"))), rtol=1e-6)


# ------------------------------------------------------------------ add_weight
def test_add_weight_defaults_as_keras(xp):
    layer = layers.Layer(name="defaults", dtype="float64")
    scalar = layer.add_weight()
    assert scalar.shape == () and scalar.dtype == numpy.float64 and scalar.name.startswith("variable")
    second = layer.add_weight(shape=(30, 20))
    assert second.name != scalar.name and second.name.startswith("variable_")
    limit = numpy.sqrt(6.0 / 50)        # glorot_uniform's
    values = second.numpy()
    assert numpy.abs(values).max() <= limit and values.std() > limit / 4
    count = layer.add_weight(shape=(2,), dtype="int32", trainable=False, name="count")
    assert count.dtype == numpy.int32 and count.numpy().tolist() == [0, 0]
    flag = layer.add_weight(shape=(), dtype=bool, trainable=False, name="flag")
    assert flag.dtype == numpy.bool_ and not flag.numpy()
    positional = layer.add_weight((2, 3), "ones", "float32", name="positional")
    assert positional.shape == (2, 3) and positional.dtype == numpy.float32 and positional.numpy().all()
    listed = layer.add_weight(shape=[4], initializer=gpu_dl.initializers.Constant(2.0), aggregation=None)
    assert listed.shape == (4,) and listed.numpy().tolist() == [2.0] * 4 and listed.aggregation == "none"
    assert [v.name for v in layer.weights] == [scalar.name, second.name, "positional", listed.name, "count", "flag"]


@pytest.mark.parametrize("args, kwargs, error, message", [
    (("w",), {}, ValueError, "`name` must be passed as a keyword argument"),
    (((2,), "ones", "float32", "w"), {}, TypeError, "at most 3 positional arguments"),
    (((2,),), {"shape": (3,)}, ValueError, "`shape` was passed both positionally and as a keyword"),
    ((), {"shape": (None, 3)}, ValueError, "holds None; a weight's shape must be fully known"),
    ((), {"shape": (2, -1)}, ValueError, "must hold sizes \\(integers >= 0\\), got -1"),
    ((), {"shape": (2.0,)}, ValueError, "must hold sizes"),
    ((), {"shape": 3}, ValueError, "`shape` must be a tuple of sizes"),
    ((), {"shape": (2,), "aggregation": "max"}, ValueError, "`aggregation` must be one of"),
    ((), {"shape": (2,), "name": "a/b"}, ValueError, "`name` must be a non-empty string without '/'"),
    ((), {"shape": (2,), "dtype": "complex64"}, ValueError, "float, integer or bool dtype"),
    ((), {"shape": (2,), "dtype": "float16"}, ValueError, "'float32' or 'float64'"),
    ((), {"shape": (2,), "initializer": "no_such_initializer"}, ValueError, "no_such_initializer"),
    ((), {"shape": (2,), "overwrite_with_gradient": 1}, TypeError, "`overwrite_with_gradient` must be a bool"),
])
def test_add_weight_refuses_bad_arguments_naming_the_layer(args, kwargs, error, message):
    layer = layers.Layer(name="checked")
    with pytest.raises(error, match=message) as caught:
        layer.add_weight(*args, **kwargs)
    assert "Layer 'checked' (Layer): add_weight" in str(caught.value)
    assert layer.weights == []


def test_add_weight_before_the_layer_is_initialised_says_what_to_do():
    class Early(layers.Layer):
        def __init__(self):
            self.w = self.add_weight(shape=(2,))
            super().__init__()

    with pytest.raises(RuntimeError, match="call super\\(\\).__init__\\(\\) at the start of __init__"):
        Early()


# ------------------------------------------------------------------ order and files
def test_weights_order_own_trainable_then_own_others_then_sublayers(xp):
    layer = Mixed(2)
    layer(xp.ones((1, 3), "float32"))
    names = [v.path for v in layer.weights]
    assert names == [layer.scale.path, layer.calls.path] + [v.path for v in layer.dense.weights] + \
        [v.path for v in layer.inner.weights]
    assert [v.path for v in layer.trainable_weights] == [n for n in names if n != layer.calls.path]
    assert [v.path for v in layer.non_trainable_weights] == [layer.calls.path]
    model = ScaledClassifier()
    model(xp.ones((1, 3), "float32"))
    assert [v.path for v in model.weights][0] == model.temperature.path and len(model.weights) == 5
    assert model.trainable_weights[0] is model.temperature
    built = ScaledClassifier()
    built.build((None, 3))                  # its own build() runs once, whoever calls it first
    built(xp.ones((1, 3), "float32"))
    assert built.built and len(built.weights) == 5


def test_weights_files_keep_own_weights_as_keras_lays_them_out(tmp_path, rng):
    x = rng.standard_normal((4, 3)).astype("float32")

    def subclassed():
        model = ScaledClassifier()
        model(x[:1])
        return model
    for make, root, group in [(lambda: gpu_dl.Sequential([gpu_dl.Input((3,)), Linear(4), MLPBlock(5, 2)]),
                               [], "layers/mlp_block/linear_1/vars"),
                              (subclassed, ["0"], "block/linear_2/vars")]:
        model, other = make(), make()
        _randomize(model, rng)
        model.save_weights(tmp_path / "m.weights.h5")
        with h5py.File(tmp_path / "m.weights.h5", "r") as f:
            assert sorted(f["vars"]) == root and sorted(f[group]) == ["0", "1"]
        other.load_weights(tmp_path / "m.weights.h5")
        numpy.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
