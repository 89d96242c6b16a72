"""keras.activations.<name> and the activation functions of gpu_dl.ops on symbolic tensors: each records Keras's
operation (class, module, config), computes what the function computes on arrays, has the gradient of float64
finite differences, is saved and read back; in the traced call of a composite layer (Keras's guide's MLPBlock)
they train."""
import numpy
import pytest

import gpu_dl
from gpu_dl import activations, backend, layers, ops
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import load_model
from gpu_dl.models.saving import model_config, model_from_config
from gradcheck import assert_gradient

NN, ACTIVATIONS, NUMPY = "keras.src.ops.nn", "keras.src.activations.activations", "keras.src.ops.numpy"

# (id, the call on a tensor, Keras's class and module, its config beyond the name)
CASES = [
    ("relu", lambda x: activations.relu(x), "ReLU", ACTIVATIONS,
     {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}),
    ("relu_settings", lambda x: activations.relu(x, negative_slope=0.1, max_value=1.5, threshold=0.2), "ReLU",
     ACTIVATIONS, {"negative_slope": 0.1, "max_value": 1.5, "threshold": 0.2}),
    ("leaky_relu", lambda x: activations.leaky_relu(x), "LeakyRelu", NN, {"negative_slope": 0.2}),
    ("relu6", lambda x: activations.relu6(x * 8.0), "Relu6", NN, {}),
    ("elu", lambda x: activations.elu(x, alpha=0.7), "Elu", NN, {"alpha": 0.7}),
    ("selu", lambda x: activations.selu(x), "Selu", NN, {}),
    ("celu", lambda x: activations.celu(x, 1.5), "Celu", NN, {"alpha": 1.5}),
    ("softplus", lambda x: activations.softplus(x), "Softplus", NN, {}),
    ("softsign", lambda x: activations.softsign(x), "Softsign", NN, {}),
    ("squareplus", lambda x: activations.squareplus(x, b=2), "Squareplus", NN, {"b": 2}),
    ("silu", lambda x: activations.silu(x), "Silu", NN, {}),
    ("swish", lambda x: activations.swish(x), "Silu", NN, {}),
    ("gelu", lambda x: activations.gelu(x), "Gelu", NN, {"approximate": False}),
    ("gelu_tanh", lambda x: activations.gelu(x, approximate=True), "Gelu", NN, {"approximate": True}),
    ("mish", lambda x: activations.mish(x), "Mish", ACTIVATIONS, {}),
    ("tanh", lambda x: activations.tanh(x), "Tanh", NUMPY, {}),
    ("tanh_shrink", lambda x: activations.tanh_shrink(x), "TanhShrink", NN, {}),
    ("hard_tanh", lambda x: activations.hard_tanh(x * 2.0), "HardTanh", NN, {}),
    ("sigmoid", lambda x: activations.sigmoid(x), "Sigmoid", NN, {}),
    ("log_sigmoid", lambda x: activations.log_sigmoid(x), "LogSigmoid", NN, {}),
    ("hard_sigmoid", lambda x: activations.hard_sigmoid(x * 5.0), "HardSigmoid", NN, {}),
    ("sparse_sigmoid", lambda x: activations.sparse_sigmoid(x * 2.0), "SparseSigmoid", NN, {}),
    ("sparse_plus", lambda x: activations.sparse_plus(x * 2.0), "SparsePlus", NN, {}),
    ("hard_silu", lambda x: activations.hard_silu(x * 5.0), "HardSilu", NN, {}),
    ("hard_swish", lambda x: activations.hard_swish(x * 5.0), "HardSilu", NN, {}),
    ("hard_shrink", lambda x: activations.hard_shrink(x, 0.3), "HardShrink", NN, {"threshold": 0.3}),
    ("soft_shrink", lambda x: activations.soft_shrink(x), "SoftShrink", NN, {"threshold": 0.5}),
    ("threshold", lambda x: activations.threshold(x, 0.1, -2.0), "Threshold", NN,
     {"threshold": 0.1, "default_value": -2.0}),
    ("exponential", lambda x: activations.exponential(x), "Exp", NUMPY, {}),
    ("softmax", lambda x: activations.softmax(x, axis=1), "Softmax", NN, {"axis": 1}),
    ("log_softmax", lambda x: activations.log_softmax(x), "LogSoftmax", NN, {"axis": -1}),
    ("sparsemax", lambda x: activations.sparsemax(x * 2.0), "Sparsemax", NN, {"axis": -1}),
    ("glu", lambda x: activations.glu(x), "Glu", NN, {"axis": -1}),
    ("glu_axis", lambda x: activations.glu(x, axis=1), "Glu", NN, {"axis": 1}),
]
IDS = [c[0] for c in CASES]


def _inputs(rng):
    # (N, 4, 6) values away from the kinks (|x| and |x - 0.2|, ... not within 1e-3), so finite differences hold.
    x = rng.uniform(-1.5, 1.5, (3, 4, 6))
    x[numpy.abs(x) < 0.01] += 0.05
    return x


def _model(call):
    inputs = gpu_dl.Input((4, 6), dtype="float64")
    return gpu_dl.Model(inputs, call(inputs))


def _operation(model):
    found = [layer for layer in model._operations[1:] if not isinstance(layer, gpu_dl.layers.InputLayer)]
    return found[-1]


@pytest.mark.parametrize("name,call,cls,module,config", CASES, ids=IDS)
def test_each_activation_records_keras_s_operation(name, call, cls, module, config):
    model = _model(call)
    op = _operation(model)
    assert (type(op).__name__, op.keras_module) == (cls, module)
    entry = [e for e in model_config(model)["config"]["layers"] if e["class_name"] == cls][0]
    assert entry["module"] == module
    assert {k: v for k, v in entry["config"].items() if k != "name"} == config


@pytest.mark.parametrize("name,call,cls,module,config", CASES, ids=IDS)
def test_each_activation_on_a_tensor_computes_what_it_computes_on_arrays(xp, rng, name, call, cls, module, config):
    x = _inputs(rng)
    model = _model(call)
    y = model.forward(xp.asarray(x))
    assert array_module(y) is xp and y.dtype == numpy.float64
    numpy.testing.assert_allclose(to_numpy(y), to_numpy(call(x)), rtol=1e-13, atol=1e-15)
    assert model.output_shape == (None,) + to_numpy(call(x)).shape[1:]


@pytest.mark.parametrize("name,call,cls,module,config", CASES, ids=IDS)
def test_each_activation_has_the_gradient_of_finite_differences(xp, rng, name, call, cls, module, config):
    model = _model(call)
    x = xp.asarray(_inputs(rng))
    w = xp.asarray(rng.standard_normal(to_numpy(model.forward(x)).shape))
    model.forward(x, training=True)
    grad = model.backward(w)
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), x, grad, rng, what=name)


@pytest.mark.parametrize("name,call,cls,module,config", CASES, ids=IDS)
def test_each_activation_is_saved_and_read_back(tmp_path, rng, name, call, cls, module, config):
    model = _model(call)
    x = _inputs(rng)
    rebuilt = model_from_config(model_config(model))
    assert type(_operation(rebuilt)) is type(_operation(model))
    numpy.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-13)
    model.save(tmp_path / "m.keras")
    numpy.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0),
                                  rtol=1e-13)


OPS = [
    ("relu6", lambda x: ops.relu6(x * 8.0), activations.relu6, 8.0),
    ("leaky_relu", lambda x: ops.leaky_relu(x, negative_slope=0.1), lambda x: activations.leaky_relu(x, 0.1), 1.0),
    ("elu", lambda x: ops.elu(x), activations.elu, 1.0),
    ("selu", lambda x: ops.selu(x), activations.selu, 1.0),
    ("celu", lambda x: ops.celu(x, alpha=2.0), lambda x: activations.celu(x, 2.0), 1.0),
    ("softsign", lambda x: ops.softsign(x), activations.softsign, 1.0),
    ("squareplus", lambda x: ops.squareplus(x), activations.squareplus, 1.0),
    ("tanh_shrink", lambda x: ops.tanh_shrink(x), activations.tanh_shrink, 1.0),
    ("hard_tanh", lambda x: ops.hard_tanh(x * 2.0), activations.hard_tanh, 2.0),
    ("log_sigmoid", lambda x: ops.log_sigmoid(x), activations.log_sigmoid, 1.0),
    ("hard_sigmoid", lambda x: ops.hard_sigmoid(x * 5.0), activations.hard_sigmoid, 5.0),
    ("sparse_sigmoid", lambda x: ops.sparse_sigmoid(x * 2.0), activations.sparse_sigmoid, 2.0),
    ("sparse_plus", lambda x: ops.sparse_plus(x * 2.0), activations.sparse_plus, 2.0),
    ("hard_silu", lambda x: ops.hard_silu(x * 5.0), activations.hard_silu, 5.0),
    ("hard_swish", lambda x: ops.hard_swish(x * 5.0), activations.hard_silu, 5.0),
    ("hard_shrink", lambda x: ops.hard_shrink(x), activations.hard_shrink, 1.0),
    ("soft_shrink", lambda x: ops.soft_shrink(x, threshold=0.2), lambda x: activations.soft_shrink(x, 0.2), 1.0),
    ("threshold", lambda x: ops.threshold(x, 0.0, 3.0), lambda x: activations.threshold(x, 0.0, 3.0), 1.0),
    ("glu", lambda x: ops.glu(x, axis=1), lambda x: activations.glu(x, 1), 1.0),
    ("sparsemax", lambda x: ops.sparsemax(x * 2.0), activations.sparsemax, 2.0),
    ("gelu", lambda x: ops.gelu(x), lambda x: activations.gelu(x, approximate=True), 1.0),
]


@pytest.mark.parametrize("name,call,expected,scale", OPS, ids=[o[0] for o in OPS])
def test_ops_functions_on_arrays_and_tensors(xp, rng, name, call, expected, scale):
    x = _inputs(rng)
    y = call(xp.asarray(x))
    assert array_module(y) is xp
    want = to_numpy(expected(x * scale))
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-13, atol=1e-15)
    numpy.testing.assert_allclose(to_numpy(_model(call).forward(xp.asarray(x))), want, rtol=1e-13, atol=1e-15)
    assert name in dir(ops)


def test_integer_tensors_give_floats(rng):
    ids = gpu_dl.Input((3,), dtype="int32")
    y = ops.elu(ids)
    assert y.dtype == "float32"
    model = gpu_dl.Model(ids, y)
    x = numpy.array([[-2, 0, 3]])
    numpy.testing.assert_allclose(model.predict(x, verbose=0), [[numpy.expm1(-2.0), 0.0, 3.0]], rtol=1e-6)
    assert ops.selu(numpy.array([1, 2])).dtype == numpy.float32


def test_what_is_refused():
    x = gpu_dl.Input((4, 5))
    with pytest.raises(ValueError, match="must be even"):
        activations.glu(x)
    with pytest.raises(ValueError, match="out of range"):
        ops.sparsemax(x, axis=3)
    with pytest.raises(TypeError, match="`alpha` must be a number"):
        ops.elu(x, alpha="1")
    with pytest.raises(TypeError, match="`max_value` must be a number or None"):
        activations.relu(x, max_value="6")
    with pytest.raises(TypeError, match=r"activations.step has no Keras operation.*Activation\('step'\)"):
        activations.step(x)
    assert activations.linear(x) is x


def test_arrays_still_take_the_fused_activation_functions(rng):
    # The public functions on arrays are what they were: the forward of gpu_dl's activations.
    x = _inputs(rng)
    numpy.testing.assert_array_equal(activations.relu(x, max_value=1.0), numpy.clip(x, 0.0, 1.0))
    assert activations.get("relu") is not None and activations.get(activations.relu).name == "relu"
    assert activations.serialize(activations.gelu) == "gelu"


class MLPBlock(layers.Layer):
    """Keras's guide's MLPBlock, as written there."""

    def __init__(self, dtype=None):
        super().__init__(dtype=dtype)
        self.linear_1 = layers.Dense(32)
        self.linear_2 = layers.Dense(1)

    def call(self, inputs):
        x = self.linear_1(inputs)
        x = activations.relu(x)
        return self.linear_2(x)


class Gated(layers.Layer):
    """A call mixing several activations, with settings, an axis-halving glu and a softmax."""

    def __init__(self, dtype=None):
        super().__init__(dtype=dtype)
        self.wide = layers.Dense(8)
        self.out = layers.Dense(3)

    def call(self, inputs):
        h = self.wide(inputs)
        h = activations.glu(h) + activations.elu(h[:, :4], alpha=0.5) * activations.hard_sigmoid(h[:, 4:])
        h = activations.relu(h, negative_slope=0.1, max_value=3.0) + activations.mish(h) + activations.gelu(h)
        return activations.softmax(self.out(activations.squareplus(h)))


@pytest.fixture
def float64():
    """float64 weights for the sublayers too (a layer's dtype is not its sublayers', in Keras as here)."""
    backend.set_floatx("float64")
    yield
    backend.set_floatx("float32")


def test_a_traced_call_using_activations_has_the_gradient_of_finite_differences(xp, rng, float64):
    for block in (MLPBlock(), Gated()):
        assert block.dtype == "float64"
        x = xp.asarray(rng.standard_normal((5, 6)))
        y = block(x)        # built and traced
        w = xp.asarray(rng.standard_normal(y.shape))
        block(x, training=True)
        dx = block.backward(w)
        assert block.__dict__.get("_active_graph") is not None       # trained through its traced graph

        def objective(v):
            return (block(v, training=True) * w).sum()
        assert_gradient(objective, x, dx, rng, what=type(block).__name__)
        for var in block.trainable_weights:
            grad = var.grad
            original = var.value.copy()

            def of_weight(value, var=var):
                var.value[...] = value
                return objective(x)
            assert_gradient(of_weight, original, grad, rng, what=f"{type(block).__name__} {var.path}")
            var.value[...] = original


def test_mlp_block_trains(rng):
    x = rng.standard_normal((64, 5)).astype("float32")
    y = x @ numpy.array([[1.0], [-2.0], [0.5], [0.0], [1.0]], dtype="float32")
    model = gpu_dl.Sequential([gpu_dl.Input((5,)), MLPBlock()])
    model.compile(gpu_dl.optimizers.Adam(0.01), "mse")
    losses = model.fit(x, y, epochs=40, verbose=0).history["loss"]
    assert losses[-1] < 0.1 * losses[0], losses
