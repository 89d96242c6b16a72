"""Arithmetic on symbolic tensors (``x + y``, ``2 * x``, ``x / y``, ``x ** 2``, ``-x``, ``abs(x)``) in functional
models: outputs against NumPy, gradients against float64 finite differences, training, summary, plot, saving,
and the errors of what is not supported."""
import json
import warnings
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.layers.operations import Add, Operation, TrueDivide, broadcast_shapes
from gpu_dl.models import load_model
from gpu_dl.models.saving import model_config, model_from_config
from gradcheck import assert_gradient

# (name, what the operators make of tensors a (None, 3) and b (None, 1), what NumPy makes of arrays a and b)
EXPRESSIONS = [
    ("add", lambda a, b: a + b, lambda a, b: a + b),
    ("radd", lambda a, b: 1.5 + a, lambda a, b: 1.5 + a),
    ("subtract", lambda a, b: a - b, lambda a, b: a - b),
    ("rsubtract", lambda a, b: 2.0 - a, lambda a, b: 2.0 - a),
    ("multiply", lambda a, b: a * b, lambda a, b: a * b),
    ("rmultiply", lambda a, b: 3 * a, lambda a, b: 3 * a),
    ("divide", lambda a, b: a / b, lambda a, b: a / b),
    ("rdivide", lambda a, b: 1.0 / a, lambda a, b: 1.0 / a),
    ("square", lambda a, b: a ** 2, lambda a, b: a ** 2),
    ("power", lambda a, b: abs(a) ** b, lambda a, b: numpy.abs(a) ** b),
    ("rpower", lambda a, b: 2.0 ** a, lambda a, b: 2.0 ** a),
    ("negative", lambda a, b: -a, lambda a, b: -a),
    ("absolute", lambda a, b: abs(a), lambda a, b: numpy.abs(a)),
    ("one_tensor_twice", lambda a, b: a * a - a, lambda a, b: a * a - a),
]


def _arrays(rng, n=5, dtype="float64"):
    a = rng.uniform(0.5, 2.0, (n, 3)) * rng.choice([-1, 1], (n, 3))     # away from 0: |a| and 1/a are smooth
    b = rng.uniform(0.5, 2.0, (n, 1))
    return a.astype(dtype), b.astype(dtype)


BINARY = {"add", "subtract", "multiply", "divide", "power"}     # the expressions that read b


def _model(name, expression, dtype="float64"):
    """The model of ``expression``: inputs a and b, or a alone where the expression does not read b."""
    a, b = gpu_dl.Input((3,), name="a", dtype=dtype), gpu_dl.Input((1,), name="b", dtype=dtype)
    return gpu_dl.Model([a, b] if name in BINARY else a, expression(a, b))


def _given(name, a, b):
    return [a, b] if name in BINARY else a


@pytest.mark.parametrize("name,symbolic,expected", EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_each_operator_computes_what_numpy_does(xp, rng, name, symbolic, expected):
    model = _model(name, symbolic)
    a, b = _arrays(rng)
    y = model.forward(_given(name, xp.asarray(a), xp.asarray(b)))
    assert array_module(y) is xp and y.dtype == numpy.float64
    numpy.testing.assert_allclose(to_numpy(y), expected(a, b), rtol=1e-12)
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize("name,symbolic,expected", EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_each_operator_has_the_gradient_of_finite_differences(xp, rng, name, symbolic, expected):
    model = _model(name, symbolic)
    a, b = (xp.asarray(v) for v in _arrays(rng))
    w = xp.asarray(rng.standard_normal((5, 3)))
    model.forward(_given(name, a, b), training=True)
    grads = model.backward(w)
    grads = grads if name in BINARY else [grads]
    for i, (value, grad) in enumerate(zip((a, b), grads)):
        assert grad.shape == value.shape

        def objective(v, i=i):
            xs = [a, b]
            xs[i] = v
            return (model.forward(_given(name, *xs), training=True) * w).sum()
        assert_gradient(objective, value, grad, rng, what=f"{name}: input {i}")


def test_an_expression_of_layers_trains_and_its_gradients_reach_the_weights(xp, rng):
    """A residual block with a learned scale written as operators, in float64: inputs' and weights'
    gradients against finite differences, then training lowers the loss."""
    backend.set_random_seed(3)
    x = gpu_dl.Input((4,), dtype="float64")
    h = layers.Dense(4, activation="tanh", dtype="float64")(x)
    y = layers.Dense(2, dtype="float64")(0.5 * (x + h) - h / (abs(h) + 2.0) + h ** 2)
    model = gpu_dl.Model(x, y)
    data = xp.asarray(rng.standard_normal((6, 4)))
    w = xp.asarray(rng.standard_normal((6, 2)))
    model.forward(data, training=True)
    grad = model.backward(w)
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), data, grad, rng, what="input")
    for var in model.trainable_weights:
        model.forward(data, training=True)
        model.backward(w, input_gradient=False)
        analytic, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return (model.forward(data, training=True) * w).sum()
        assert_gradient(of_weight, original.copy(), analytic, rng, what=var.path)
        var.value[...] = original

    targets = rng.standard_normal((32, 2))
    inputs = rng.standard_normal((32, 4))
    model.compile(optimizer=gpu_dl.optimizers.SGD(0.05), loss="mse")
    before = model.evaluate(inputs, targets, verbose=0)
    model.fit(inputs, targets, epochs=20, batch_size=8, verbose=0)
    assert model.evaluate(inputs, targets, verbose=0) < 0.8 * before


def test_broadcasting_follows_numpy_and_keras_shapes(xp, rng):
    a, b = gpu_dl.Input((4, 3), dtype="float64"), gpu_dl.Input((4, 1), dtype="float64")
    c = gpu_dl.Input((3,), dtype="float64")
    model = gpu_dl.Model([a, b, c], a * b - layers.Reshape((1, 3), dtype="float64")(c))
    assert model.output_shape == (None, 4, 3)
    xa, xb, xc = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 1)), rng.standard_normal((2, 3))
    y = model.forward([xp.asarray(xa), xp.asarray(xb), xp.asarray(xc)], training=True)
    numpy.testing.assert_allclose(to_numpy(y), xa * xb - xc[:, None, :], rtol=1e-12)
    grads = model.backward(xp.ones((2, 4, 3)))
    assert [g.shape for g in grads] == [(2, 4, 3), (2, 4, 1), (2, 3)]
    numpy.testing.assert_allclose(to_numpy(grads[1]), xa.sum(axis=2, keepdims=True), rtol=1e-12)
    assert broadcast_shapes((None, 1, 3), (None, 5, 1), "here") == (None, 5, 3)
    assert broadcast_shapes((None, 3), (2, 1, 3), "here") == (2, None, 3)


def test_float32_stays_float32_and_numbers_do_not_widen_it(xp, rng):
    a = gpu_dl.Input((3,))
    model = gpu_dl.Model(a, (a * 2.5 + 1) ** 2 / 3.0)
    x = rng.standard_normal((4, 3)).astype("float32")
    y = model.forward(xp.asarray(x))
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(y), (x * 2.5 + 1) ** 2 / 3.0, rtol=1e-6)


def test_operations_are_in_the_summary_and_config_but_not_among_the_layers():
    a = gpu_dl.Input((3,), name="a")
    d = layers.Dense(3, name="d")
    model = gpu_dl.Model(a, d(a) * 2.0 + a)
    names = [layer.name for layer in model.layers]
    assert names == ["a", "d"]
    assert [type(op).__name__ for op in model._operations] == ["InputLayer", "Dense", "Multiply", "Add"]
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    text = "\n".join(lines)
    assert "(Multiply)" in text and "(Add)" in text and "Total params: 12" in text
    with pytest.raises(ValueError, match="No layer named"):
        model.get_layer(model._operations[2].name)
    entries = model.get_config()["layers"]
    multiply = entries[2]
    assert multiply["module"] == "keras.src.ops.numpy" and multiply["class_name"] == "Multiply"
    assert multiply["config"] == {"name": multiply["name"]}
    assert multiply["inbound_nodes"][0]["args"][1] == 2.0
    assert multiply["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == ["d", 0, 0]
    assert multiply["inbound_nodes"][0]["kwargs"] == {}


def test_plot_draws_the_operations_and_their_edges():
    pytest.importorskip("pydot")
    a = gpu_dl.Input((3,), name="a")
    model = gpu_dl.Model(a, layers.Dense(2, name="d")(-a))
    text = gpu_dl.utils.model_to_dot(model, show_layer_names=True).to_string()
    assert "negative" in text and text.count("->") == 2


def test_a_model_with_operations_saves_loads_and_resumes(tmp_path, rng):
    backend.set_random_seed(5)
    a, b = gpu_dl.Input((3,), name="a"), gpu_dl.Input((1,), name="b")
    h = layers.Dense(3, activation="tanh", name="h")(a)
    out = layers.Dense(2, name="out")((h - b) * 0.5 + abs(a) ** 2)
    model = gpu_dl.Model([a, b], out)
    model.compile(optimizer="adam", loss="mse")
    xa, xb = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 1)).astype("float32")
    y = rng.standard_normal((8, 2)).astype("float32")
    model.fit([xa, xb], y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict([xa, xb], verbose=0), model.predict([xa, xb], verbose=0))
    assert [type(op).__name__ for op in loaded._operations] == [type(op).__name__ for op in model._operations]
    model.fit([xa, xb], y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    loaded.fit([xa, xb], y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    for x, z in zip(model.get_weights(), loaded.get_weights()):
        numpy.testing.assert_array_equal(x, z)
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        config = json.loads(archive.read("config.json"))
    assert sorted(e["class_name"] for e in config["config"]["layers"]) == \
        ["Absolute", "Add", "Dense", "Dense", "InputLayer", "InputLayer", "Multiply", "Power", "Subtract"]


def test_a_mask_ends_at_an_operation_without_a_warning(rng):
    ids = gpu_dl.Input((None,))
    emb = layers.Embedding(6, 3, mask_zero=True)(ids)
    model = gpu_dl.Model(ids, layers.SimpleRNN(2)(emb * 2.0))
    x = numpy.array([[1, 2, 0, 0, 0], [3, 4, 5, 1, 2]], dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = model.predict(x, verbose=0)
    # Without the mask the padded steps run: the first row differs from a run on its unpadded steps alone.
    short = model.predict(x[:1, :2], verbose=0)
    assert not numpy.allclose(y[0], short[0])


# ------------------------------------------------------------------ errors
def test_what_the_operators_refuse():
    a, b = gpu_dl.Input((3,), name="a"), gpu_dl.Input((4,), name="b")
    with pytest.raises(TypeError, match=r"Add.*argument 1 must be a symbolic tensor, a Python number or an array of "
                                        r"real numbers.*str"):
        a + "x"
    with pytest.raises(TypeError, match="argument 0 must be a symbolic tensor, a Python number or an array.*ndarray"):
        TrueDivide().apply(numpy.array(["text"]), a)
    with pytest.raises(TypeError, match="bool"):
        a * True
    with pytest.raises(ValueError, match=r"Operation 'subtract.*' \(Subtract\): cannot broadcast shapes \(None, 3\) "
                                         r"and \(None, 4\) \(sizes 3 and 4\)"):
        a - b
    for bad in (lambda: a // 2, lambda: 2 // a, lambda: a % 2, lambda: 2 % a):
        with pytest.raises(TypeError, match="not supported on symbolic tensors"):
            bad()
    # A rejected call leaves no node behind: the graph of `a` is unchanged.
    assert len(a._keras_history.operation._inbound_nodes) == 1


def test_an_operation_called_on_arrays_before_a_graph_is_refused():
    with pytest.raises(ValueError, match="does not know where its arguments go"):
        Add()([numpy.ones((2, 3)), numpy.ones((2, 3))])
    assert issubclass(Add, Operation)


def _config_with_operation(edit):
    a = gpu_dl.Input((3,), name="a")
    model = gpu_dl.Model(a, layers.Dense(2, name="d")(a * 2.0))
    config = model_config(model)
    entry = next(e for e in config["config"]["layers"] if e["class_name"] == "Multiply")
    edit(entry)
    return config


@pytest.mark.parametrize("edit,message", [
    (lambda e: e["inbound_nodes"].append(e["inbound_nodes"][0]), "made for one call"),
    (lambda e: e["inbound_nodes"][0]["args"].append(1.0), "takes 2 positional argument"),
    (lambda e: e["inbound_nodes"][0].update(kwargs={"x": 1}), "takes no keyword arguments"),
    (lambda e: e["inbound_nodes"][0]["args"].__setitem__(1, "two"),
     "must be a symbolic tensor .*, a number or an array"),
    (lambda e: e["inbound_nodes"][0]["args"].__setitem__(0, 3.0), "hold no tensor"),
    (lambda e: e["config"].update(dtype="float32"), "takes only a name"),
])
def test_bad_operation_entries_in_a_config_are_named(edit, message):
    with pytest.raises(ValueError, match=message):
        model_from_config(_config_with_operation(edit))


def test_an_unknown_operation_feeding_a_layer_is_still_refused():
    def rename(entry):
        entry["class_name"] = entry["registered_name"] = "Histogramdd"     # not an operation gpu_dl rebuilds
    with pytest.raises(ValueError, match="keras.ops applied to tensors are not supported"):
        model_from_config(_config_with_operation(rename))
