"""Indexing (``x[:, -1]``, ``x[..., 0]``, ``x[:, None]``) and matrix products (``x @ y``, ``x @ array``) on
symbolic tensors in functional models: outputs and shapes against NumPy, gradients against float64 finite
differences, training, masks, saving, and the errors of what is not supported."""
import json
import warnings
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.layers.indexing_operations import GetItem, Matmul, get_item_shape, matmul_shape
from gpu_dl.models import load_model
from gpu_dl.models.saving import model_config, model_from_config
from gradcheck import assert_gradient

# (name, the key applied to a tensor of shape (None, 5, 4), the key as NumPy applies it to the arrays)
KEYS = [
    ("last_step", lambda x: x[:, -1], (slice(None), -1)),
    ("range", lambda x: x[:, 1:3], (slice(None), slice(1, 3))),
    ("ellipsis", lambda x: x[..., 0], (Ellipsis, 0)),
    ("stride", lambda x: x[:, ::2], (slice(None), slice(None, None, 2))),
    ("reversed", lambda x: x[:, ::-1, 1:], (slice(None), slice(None, None, -1), slice(1, None))),
    ("new_axis", lambda x: x[:, None], (slice(None), None)),
    ("new_axis_last", lambda x: x[..., None, 2], (Ellipsis, None, 2)),
    ("negative_bounds", lambda x: x[:, -4:-1:2, -1], (slice(None), slice(-4, -1, 2), -1)),
    ("past_the_end", lambda x: x[:, 3:100], (slice(None), slice(3, 100))),
    ("bare_slice", lambda x: x[:], (slice(None),)),
    ("numpy_int", lambda x: x[:, numpy.int64(2)], (slice(None), 2)),
]


def _data(rng, shape=(3, 5, 4)):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("name,symbolic,key", KEYS, ids=[k[0] for k in KEYS])
def test_each_key_gives_numpy_values_and_shapes_and_finite_difference_gradients(xp, rng, name, symbolic, key):
    x = gpu_dl.Input((5, 4), dtype="float64")
    model = gpu_dl.Model(x, symbolic(x))
    data = _data(rng)
    expected = data[key]
    assert model.output_shape == (None,) + expected.shape[1:]
    value = xp.asarray(data)
    y = model.forward(value, training=True)
    assert array_module(y) is xp and y.dtype == numpy.float64
    numpy.testing.assert_array_equal(to_numpy(y), expected)
    w = xp.asarray(rng.standard_normal(expected.shape))
    grad = model.backward(w)
    dense = numpy.zeros(data.shape)
    dense[key] = to_numpy(w)
    numpy.testing.assert_array_equal(to_numpy(grad), dense)
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), value, grad, rng, what=name)


def test_the_result_is_a_copy_a_later_layer_cannot_write_through(xp, rng):
    x = gpu_dl.Input((5, 4), dtype="float64")
    model = gpu_dl.Model(x, x[:, 0])
    data = xp.asarray(_data(rng))
    y = model.forward(data)
    y[...] = 0
    assert float(to_numpy(abs(data[:, 0]).sum())) > 0


def test_shapes_follow_keras(rng):
    assert get_item_shape((None, 5, 4), (slice(None), -1), "here") == (None, 4)
    assert get_item_shape((None, None, 4), (slice(None), slice(1, 3)), "here") == (None, None, 4)
    assert get_item_shape((None, 5, 4), 0, "here") == (5, 4)
    assert get_item_shape((None, 5, 4), (None, Ellipsis, None), "here") == (1, None, 5, 4, 1)
    assert matmul_shape((None, 5, 3), (None, 3, 5), "here") == (None, 5, 5)
    assert matmul_shape((None, 5, 3), (3,), "here") == (None, 5)
    assert matmul_shape((3,), (None, 3, 2), "here") == (None, 2)
    assert matmul_shape((None, 1, 5, 3), (7, 3, 2), "here") == (None, 7, 5, 2)
    for a, b in [((2, 5, 3), (1, 3, 2)), ((4, 1, 5, 3), (2, 3, 2)), ((3,), (4, 3, 2)), ((5, 3), (3,)), ((3,), (3,))]:
        assert matmul_shape(a, b, "here") == numpy.matmul(numpy.ones(a), numpy.ones(b)).shape


# (name, shapes of the two inputs without the batch axis, or an array's full shape after "array:")
PRODUCTS = [
    ("batched", (5, 3), (3, 4)),
    ("array_vector_right", (5, 3), "array:3"),
    ("broadcast_left", (2, 5, 3), (3, 4)),
    ("array_right", (5, 3), "array:3,2"),
    ("array_left", "array:4,5", (5, 3)),
    ("array_vector_left", "array:5", (5, 3)),
    ("array_broadcast", (1, 5, 3), "array:2,3,2"),
]


def _operand(spec, rng):
    """An Input (and its data, batch 2) for a shape, or a constant array for 'array:...'."""
    if isinstance(spec, str):
        return rng.standard_normal(tuple(int(n) for n in spec[6:].split(","))), None
    return gpu_dl.Input(spec, dtype="float64"), rng.standard_normal((2,) + spec)


@pytest.mark.parametrize("name,first,second", PRODUCTS, ids=[p[0] for p in PRODUCTS])
def test_matmul_gives_numpy_values_and_finite_difference_gradients(xp, rng, name, first, second):
    (a, da), (b, db) = _operand(first, rng), _operand(second, rng)
    inputs = [t for t, d in ((a, da), (b, db)) if d is not None]
    model = gpu_dl.Model(inputs if len(inputs) > 1 else inputs[0], a @ b)
    data = [xp.asarray(d) for d in (da, db) if d is not None]
    host = [da if da is not None else a, db if db is not None else b]
    expected = numpy.matmul(*host)
    assert model.output_shape == (None,) + expected.shape[1:]
    given = data if len(data) > 1 else data[0]
    y = model.forward(given, training=True)
    assert array_module(y) is xp and y.dtype == numpy.float64
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12)
    w = xp.asarray(rng.standard_normal(expected.shape))
    grads = model.backward(w)
    grads = grads if len(data) > 1 else [grads]
    for i, (value, grad) in enumerate(zip(data, grads)):
        def objective(v, i=i):
            xs = list(data)
            xs[i] = v
            return (model.forward(xs if len(xs) > 1 else xs[0], training=True) * w).sum()
        assert_gradient(objective, value, grad, rng, what=f"{name}: input {i}")


def test_attention_like_block_trains_and_its_weight_gradients_match_finite_differences(xp, rng):
    backend.set_random_seed(4)
    x = gpu_dl.Input((5, 4), dtype="float64")
    q = layers.Dense(3, dtype="float64")(x)
    k = layers.Dense(3, dtype="float64")(x)
    scores = layers.Softmax(dtype="float64")(q @ layers.Permute((2, 1), dtype="float64")(k) / 3.0 ** 0.5)
    mixed = scores @ x
    model = gpu_dl.Model(x, layers.Dense(2, dtype="float64")(mixed[:, -1] + mixed[:, 0]))
    data = xp.asarray(_data(rng, (4, 5, 4)))
    w = xp.asarray(rng.standard_normal((4, 2)))
    for var in model.trainable_weights:
        model.forward(data, training=True)
        model.backward(w, input_gradient=False)
        analytic, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return (model.forward(data, training=True) * w).sum()
        assert_gradient(of_weight, original.copy(), analytic, rng, what=var.path)
        var.value[...] = original
    inputs, targets = _data(rng, (32, 5, 4)), rng.standard_normal((32, 2))
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.01), loss="mse")
    before = model.evaluate(inputs, targets, verbose=0)
    model.fit(inputs, targets, epochs=15, batch_size=8, verbose=0)
    assert model.evaluate(inputs, targets, verbose=0) < 0.8 * before


def test_integer_ids_stay_integers_through_indexing(rng):
    ids = gpu_dl.Input((4,), dtype="int32")
    first = ids[:, 0]
    assert first.dtype == "int32"
    model = gpu_dl.Model(ids, layers.Embedding(7, 2)(first))
    assert model.predict(numpy.array([[1, 2, 3, 4], [5, 6, 0, 1]]), verbose=0).shape == (2, 2)


def test_a_mask_ends_at_indexing_without_a_warning():
    ids = gpu_dl.Input((None,))
    seq = layers.LSTM(3, return_sequences=True)(layers.Embedding(6, 3, mask_zero=True)(ids))
    model = gpu_dl.Model(ids, layers.Dense(2)(seq[:, -1]))
    x = numpy.array([[1, 2, 0, 0], [3, 4, 5, 1]], dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.predict(x, verbose=0).shape == (2, 2)


def test_a_model_with_indexing_and_products_saves_loads_resumes_and_clones(tmp_path, rng):
    backend.set_random_seed(6)
    x = gpu_dl.Input((5, 4), name="x")
    h = layers.LSTM(3, return_sequences=True, name="lstm")(x)
    out = layers.Dense(2, name="out")((h @ numpy.full((3, 3), 0.5, "float32"))[:, -1] + h[..., None, 0, :][:, 0])
    model = gpu_dl.Model(x, out)
    model.compile(optimizer="adam", loss="mse")
    data, targets = _data(rng, (8, 5, 4)).astype("float32"), rng.standard_normal((8, 2)).astype("float32")
    model.fit(data, targets, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict(data, verbose=0), model.predict(data, verbose=0))
    assert [type(op).__name__ for op in loaded._operations] == [type(op).__name__ for op in model._operations]
    model.fit(data, targets, epochs=1, batch_size=4, verbose=0, shuffle=False)
    loaded.fit(data, targets, epochs=1, batch_size=4, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        entries = json.loads(archive.read("config.json"))["config"]["layers"]
    matmul = next(e for e in entries if e["class_name"] == "Matmul")
    assert matmul["module"] == "keras.src.ops.numpy" and matmul["config"] == {"name": matmul["name"]}
    assert matmul["inbound_nodes"][0]["args"][1] == {"class_name": "__numpy__",
                                                     "config": {"value": [[0.5] * 3] * 3, "dtype": "float32"}}
    keys = [e["inbound_nodes"][0]["args"][1] for e in entries if e["class_name"] == "GetItem"]
    assert [{"class_name": "__slice__", "config": {"start": None, "stop": None, "step": None}}, -1] in keys
    assert [{"class_name": "__ellipsis__", "config": {}}, None, 0,
            {"class_name": "__slice__", "config": {"start": None, "stop": None, "step": None}}] in keys
    clone = gpu_dl.models.clone_model(model)
    clone.set_weights(model.get_weights())
    numpy.testing.assert_array_equal(clone.predict(data, verbose=0), model.predict(data, verbose=0))


def test_operations_are_in_the_summary_but_not_among_the_layers():
    x = gpu_dl.Input((5, 4), name="x")
    model = gpu_dl.Model(x, layers.Dense(2, name="d")(x[:, -1] @ numpy.ones((4, 4), "float32")))
    assert [layer.name for layer in model.layers] == ["x", "d"]
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    text = "\n".join(lines)
    assert "(GetItem)" in text and "(Matmul)" in text and "Total params: 10" in text


# ------------------------------------------------------------------ errors
def test_what_indexing_refuses():
    x = gpu_dl.Input((5, 4), name="x")
    for key, message in [
        ((slice(None), numpy.array([0, 1])), "fancy indexing"),
        ((slice(None), x), "holds a symbolic tensor"),
        ([0, 1], "a list key is fancy indexing"),
        ((slice(None), True), "bool"),
        ((slice(None), 1.0), "float"),
        ((slice(None), slice(0.5, 2)), "slice"),
    ]:
        with pytest.raises(TypeError, match=message):
            x[key]
    with pytest.raises(ValueError, match="step cannot be 0"):
        x[:, ::0]
    with pytest.raises(ValueError, match="index 5 is out of bounds for an axis of size 5"):
        x[:, 5]
    with pytest.raises(ValueError, match="more indices than the input's 3 axes"):
        x[:, 0, 0, 0]
    with pytest.raises(ValueError, match="one Ellipsis"):
        x[..., 0, ...]
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(x)
    assert len(x._keras_history.operation._inbound_nodes) == 1


def test_what_matmul_refuses():
    a, b = gpu_dl.Input((5, 3), name="a"), gpu_dl.Input((4, 2), name="b")
    with pytest.raises(ValueError, match=r"inner sizes must agree.*\(None, 5, 3\) and \(None, 4, 2\)"):
        a @ b
    with pytest.raises(TypeError, match="array of real numbers with one axis or more.*float"):
        a @ 2.0
    with pytest.raises(TypeError, match="array of real numbers"):
        a @ [[1.0], [2.0], [3.0]]
    with pytest.raises(ValueError, match="inner sizes"):
        numpy.ones((2, 4)) @ a
    with pytest.raises(TypeError, match="not supported on symbolic tensors"):
        a // 2


def test_a_runtime_shape_the_key_does_not_fit_is_refused(rng):
    x = gpu_dl.Input((None, 4))
    model = gpu_dl.Model(x, x[:, 2])
    assert model.predict(numpy.ones((2, 3, 4), "float32"), verbose=0).shape == (2, 4)
    with pytest.raises(ValueError, match="index 2 is out of bounds for an axis of size 2"):
        model.predict(numpy.ones((2, 2, 4), "float32"), verbose=0)


def _config_with(operation, edit):
    x = gpu_dl.Input((5, 3), name="x")
    y = x[:, -1] if operation == "GetItem" else (x @ numpy.ones((3, 2), "float32"))[:, 0]
    config = model_config(gpu_dl.Model(x, layers.Dense(2, name="d")(y)))
    edit(next(e for e in config["config"]["layers"] if e["class_name"] == operation)["inbound_nodes"][0]["args"])
    return config


@pytest.mark.parametrize("operation,edit,message", [
    ("GetItem", lambda args: args.__setitem__(1, [{"class_name": "__numpy__", "config": {}}]), "GetItem's key"),
    ("GetItem", lambda args: args.__setitem__(1, [0.5]), "GetItem's key holds 0.5"),
    ("GetItem", lambda args: args.__setitem__(1, [{"class_name": "__slice__", "config": {"start": "a"}}]),
     "GetItem's key"),
    ("GetItem", lambda args: args.__setitem__(1, [0, 0, 0, 0]), "more indices"),
    ("Matmul", lambda args: args.__setitem__(1, [[1.0, 2.0]]), r"__numpy__"),
    ("Matmul", lambda args: args[1]["config"].update(value=[[1.0, 2.0]]), "inner sizes"),
    ("Matmul", lambda args: args[1]["config"].update(dtype="complex64"), "real numbers"),
])
def test_bad_keys_and_arrays_in_a_config_are_named(operation, edit, message):
    with pytest.raises(ValueError, match=message):
        model_from_config(_config_with(operation, edit))


def test_each_use_is_an_operation_of_its_own():
    x = gpu_dl.Input((5, 3))
    first, second = x[:, 0], x[:, 1]
    assert first._keras_history.operation is not second._keras_history.operation
    assert isinstance(first._keras_history.operation, GetItem)
    assert isinstance((x @ numpy.ones((3, 1)))._keras_history.operation, Matmul)


@pytest.mark.parametrize("use", [lambda x: x != 0, lambda x: x & x, lambda x: ~x, lambda x: x ^ 1,
                                 lambda x: x // 2])
def test_operators_without_a_gradient_are_refused_on_symbolic_tensors(use):
    """Keras records `!=` and logical operators; gpu_dl refuses them clearly rather than answering `x != 0` with
    True (ops.not_equal and ops.logical_and record them)."""
    x = layers.Input((3,))
    with pytest.raises(TypeError, match="not supported on symbolic tensors"):
        use(x)


@pytest.mark.parametrize("use, name, expected", [
    (lambda x: x < 0, "Less", lambda a: a < 0), (lambda x: 0 >= x, "LessEqual", lambda a: a <= 0),
    (lambda x: x > 0.5, "Greater", lambda a: a > 0.5), (lambda x: x >= x[:, :1], "GreaterEqual",
                                                        lambda a: a >= a[:, :1])])
def test_ordering_comparisons_record_keras_operations(use, name, expected):
    """`<`, `<=`, `>`, `>=` record Keras's comparison operations, as Keras's KerasTensor does; a Python `if` on a
    symbolic tensor is refused instead of taking one branch for every value."""
    x = layers.Input((3,))
    out = use(x)
    assert type(out._keras_history.operation).__name__ == name and out.dtype == "bool"
    a = numpy.array([[-1.0, 0.0, 0.75], [0.5, 2.0, -3.0]], dtype="float32")
    numpy.testing.assert_array_equal(gpu_dl.Model(x, out).predict(a, verbose=0), expected(a))
    with pytest.raises(TypeError, match="no value to be True or False.*ops.where"):
        bool(x > 0)
