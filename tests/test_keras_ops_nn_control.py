"""keras.ops.nn's pooling, convolution, normalization, attention, loss and CTC functions and keras.ops.core's
control flow as ``gpu_dl.ops.<name>``: on arrays and in functional models against plain NumPy (odd shapes),
gradients against float64 finite differences, Keras's dtypes and shapes, saving and loading, the errors, and
composite layers whose call uses them."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, ops
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import clone_model, load_model
from gpu_dl.models.saving import model_config, model_from_config
from gradcheck import assert_gradient
from keras_ops_harness import assert_trains, assert_weight_gradients
from gpu_dl.layers.keras_ops import nn_attention
from nn_control_cases import CASES, DECODE_CASES, IDS, decode_input, draw, np_attention, np_depthwise, np_rms_norm


def _integer(kind):
    return kind.startswith("i") or kind.startswith("ctc")


def _inputs(rng, shapes, dtype="float64"):
    return [draw(rng, shape, kind, dtype) for shape, kind in shapes]


def _model(shapes, expression, dtype="float64"):
    tensors = [gpu_dl.Input(batch_shape=shape, dtype="int32" if _integer(kind) else dtype)
               for shape, kind in shapes]
    return gpu_dl.Model(tensors if len(tensors) > 1 else tensors[0], expression(ops, *tensors))


def _forward(model, arrays, training=False):
    return model.forward(arrays if len(arrays) > 1 else arrays[0], training=training)


@pytest.mark.parametrize("name,shapes,expression,expected,differentiable,tol", CASES, ids=IDS)
def test_each_op_on_arrays_computes_what_numpy_does(xp, rng, name, shapes, expression, expected, differentiable,
                                                    tol):
    arrays = _inputs(rng, shapes)
    y = expression(ops, *[xp.asarray(a) for a in arrays])
    assert array_module(y) is xp and y.dtype == numpy.float64
    numpy.testing.assert_allclose(to_numpy(y), expected(*arrays), rtol=tol, atol=tol)


@pytest.mark.parametrize("name,shapes,expression,expected,differentiable,tol", CASES, ids=IDS)
def test_each_op_in_a_functional_model_computes_what_numpy_does(xp, rng, name, shapes, expression, expected,
                                                               differentiable, tol):
    model = _model(shapes, expression)
    arrays = _inputs(rng, shapes)
    y = _forward(model, [xp.asarray(a) for a in arrays])
    want = expected(*arrays)
    assert array_module(y) is xp and y.dtype == numpy.float64
    assert tuple(model.output_shape) == want.shape
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name,shapes,expression,expected,differentiable,tol", CASES, ids=IDS)
def test_each_op_has_the_gradient_of_finite_differences(xp, rng, name, shapes, expression, expected,
                                                        differentiable, tol):
    model = _model(shapes, expression)
    arrays = [xp.asarray(a) for a in _inputs(rng, shapes)]
    want = expected(*(to_numpy(a) for a in arrays))
    w = xp.asarray(rng.standard_normal(want.shape))
    _forward(model, arrays, training=True)
    grads = model.backward(w)
    grads = grads if len(arrays) > 1 else [grads]
    checked = 0
    for i, (value, grad) in enumerate(zip(arrays, grads)):
        if _integer(shapes[i][1]):
            assert grad is None, f"{name}: integer input {i} got a gradient"
            continue
        assert grad is not None, f"{name}: input {i} got no gradient"

        def objective(v, i=i):
            given = list(arrays)
            given[i] = v
            return (_forward(model, given, training=True) * w).sum()
        assert_gradient(objective, value, grad, rng, what=f"{name}: input {i}", rtol=1e-5)
        checked += 1
    assert checked


@pytest.mark.parametrize("name,shapes,expression,expected,differentiable,tol", CASES, ids=IDS)
def test_each_op_is_saved_and_loaded_as_keras_writes_it(tmp_path, rng, name, shapes, expression, expected,
                                                        differentiable, tol):
    model = _model(shapes, expression)
    arrays = _inputs(rng, shapes)
    want = expected(*arrays)
    rebuilt = model_from_config(model_config(model))
    numpy.testing.assert_allclose(_forward(rebuilt, arrays), want, rtol=tol, atol=tol)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_allclose(_forward(loaded, arrays), want, rtol=tol, atol=tol)
    entries = [e for e in model_config(loaded)["config"]["layers"] if e["module"].startswith("keras.src.ops")]
    # the op itself comes last (a mask computed for it, by keras.src.ops.numpy, before it)
    assert entries and entries[-1]["module"] == "keras.src.ops.nn"
    assert all(e["module"] == "keras.src.ops.nn" for e in entries) or name == "dot_product_attention_mask_tensor"


@pytest.mark.parametrize("name,shapes,expression,expected,differentiable,tol", CASES, ids=IDS)
def test_float32_inputs_give_float32(rng, name, shapes, expression, expected, differentiable, tol):
    arrays = _inputs(rng, shapes, "float32")
    y = expression(ops, *arrays)
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(y, expected(*[a.astype("float64") if a.dtype.kind == "f" else a for a in arrays]),
                                  rtol=2e-4, atol=2e-5)
    model = _model(shapes, expression, "float32")
    assert model.outputs[0].dtype == "float32"
    assert _forward(model, arrays).dtype == numpy.float32


@pytest.mark.parametrize("name,expression,expected", DECODE_CASES, ids=[c[0] for c in DECODE_CASES])
def test_ctc_decode_gives_the_best_paths_and_scores(xp, rng, tmp_path, name, expression, expected):
    z = decode_input(rng)
    decoded, scores = expression(ops, xp.asarray(z))
    want_decoded, want_scores = expected(z)
    assert array_module(decoded) is xp and decoded.dtype == numpy.int32 and scores.dtype == numpy.float64
    numpy.testing.assert_array_equal(to_numpy(decoded), want_decoded)
    numpy.testing.assert_allclose(to_numpy(scores), want_scores, rtol=1e-12)
    inputs = gpu_dl.Input(batch_shape=z.shape, dtype="float64")
    outputs = expression(ops, inputs)
    assert outputs[0].dtype == "int32" and tuple(outputs[0].shape) == want_decoded.shape and \
        tuple(outputs[1].shape) == want_scores.shape
    model = gpu_dl.Model(inputs, {"decoded": outputs[0], "scores": outputs[1]})
    model.save(tmp_path / "m.keras")
    for m in (model, load_model(tmp_path / "m.keras")):
        got = m.forward(xp.asarray(z))
        got = got if isinstance(got, dict) else dict(zip(["decoded", "scores"], got))
        numpy.testing.assert_array_equal(to_numpy(got["decoded"]), want_decoded)
        numpy.testing.assert_allclose(to_numpy(got["scores"]), want_scores, rtol=1e-12)


def test_the_batch_axis_stays_unknown_in_functional_models():
    x = gpu_dl.Input((7, 5, 3))
    assert ops.max_pool(x, 2).shape == (None, 3, 2, 3)
    assert ops.average_pool(x, 3, 2, "same").shape == (None, 4, 3, 3)
    assert ops.adaptive_max_pool(x, (2, 2)).shape == (None, 2, 2, 3)
    assert ops.depthwise_conv(x, numpy.ones((3, 3, 3, 2), "float32")).shape == (None, 5, 3, 6)
    assert ops.layer_normalization(x).shape == (None, 7, 5, 3)
    assert ops.sparse_categorical_crossentropy(gpu_dl.Input((7,), dtype="int32"), gpu_dl.Input((7, 4))).shape == \
        (None, 7)
    assert ops.psnr(x, x, 1.0).shape == ()
    assert ops.max_pool(gpu_dl.Input((6, 6, 2), dtype="int32"), 2).dtype == "int32"


def test_uneven_same_average_pooling_averages_the_positions_inside(xp, rng):
    # 7 rows in windows of 2 every 2: the last window holds row 6 alone (TensorFlow's rule, as the pooling layers)
    x = rng.standard_normal((2, 7, 5, 3))
    y = to_numpy(ops.average_pool(xp.asarray(x), 2, 2, "same"))
    assert y.shape == (2, 4, 3, 3)
    numpy.testing.assert_allclose(y[:, 3, 2], x[:, 6, 4], rtol=1e-12)
    numpy.testing.assert_allclose(y[:, 3, 0], x[:, 6, 0:2].mean(axis=1), rtol=1e-12)
    numpy.testing.assert_allclose(y[:, 0, 0], x[:, 0:2, 0:2].mean(axis=(1, 2)), rtol=1e-12)


def test_layer_normalization_over_inner_axes(xp, rng):
    x = rng.standard_normal((3, 4, 5, 2))
    gamma, beta = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    y = ops.layer_normalization(xp.asarray(x), xp.asarray(gamma), xp.asarray(beta), axis=(1, 3))
    mean, var = x.mean(axis=(1, 3), keepdims=True), x.var(axis=(1, 3), keepdims=True)
    want = (x - mean) / numpy.sqrt(var + 1e-7) * gamma[None, :, None] + beta[None, :, None]
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10)
    inputs = gpu_dl.Input((4, 5, 2), dtype="float64")
    model = gpu_dl.Model(inputs, ops.layer_normalization(inputs, gamma, axis=(1, 3)))
    w = xp.asarray(rng.standard_normal(x.shape))
    model.forward(xp.asarray(x), training=True)
    grad = model.backward(w)
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), xp.asarray(x), grad, rng, rtol=1e-5)


def test_integer_max_pooling_keeps_its_dtype(xp, rng):
    x = rng.integers(-5, 9, (2, 6, 5, 3)).astype("int32")
    y = ops.max_pool(xp.asarray(x), 2, 1)
    assert y.dtype == numpy.int32
    numpy.testing.assert_array_equal(to_numpy(y), numpy.max([x[:, i:i + 5, j:j + 4] for i in (0, 1) for j in (0, 1)],
                                                            axis=0))


def test_configs_hold_keras_settings():
    x = gpu_dl.Input((8, 6, 3))
    q = gpu_dl.Input((4, 2, 3))
    y = ops.max_pool(x, (2, 3), padding="SAME")
    z = ops.dot_product_attention(q, q, q, is_causal=True)
    r = ops.rms_normalization(z, numpy.ones(3, "float32"), epsilon=0.01)
    model = gpu_dl.Model([x, q], [y, r])
    entries = {e["class_name"]: e for e in model_config(model)["config"]["layers"]}
    assert entries["MaxPool"]["config"] == {"name": entries["MaxPool"]["name"], "pool_size": [2, 3], "strides": None,
                                            "padding": "same", "data_format": "channels_last"}
    assert entries["DotProductAttention"]["config"] == {
        "name": entries["DotProductAttention"]["name"], "is_causal": True, "flash_attention": None,
        "attn_logits_soft_cap": None}
    assert entries["DotProductAttention"]["inbound_nodes"][0]["kwargs"] == {"bias": None, "mask": None,
                                                                             "scale": None}
    assert entries["RMSNorm"]["config"] == {"name": entries["RMSNorm"]["name"], "axis": -1, "epsilon": 0.01}
    assert entries["RMSNorm"]["inbound_nodes"][0]["kwargs"]["scale"]["class_name"] == "__numpy__"


def _node(model, class_name):
    return [e for e in model_config(model)["config"]["layers"] if e["class_name"] == class_name][0]["inbound_nodes"][0]


def test_tensors_given_by_keyword_are_recorded_as_keywords(rng, tmp_path):
    q, k = gpu_dl.Input((4, 2, 3), dtype="float64"), gpu_dl.Input((6, 2, 3), dtype="float64")
    bias = gpu_dl.Input((2, 4, 6), dtype="float64")
    mask = gpu_dl.Input((2, 4, 6), dtype="bool")
    scale = gpu_dl.Input((3,), dtype="float64")
    biased = ops.dot_product_attention(q, k, k, bias=bias, scale=0.5)
    masked = ops.dot_product_attention(q, k, k, mask=mask)
    scaled = ops.rms_normalization(q, scale=ops.mean(scale, axis=0))
    model = gpu_dl.Model([q, k, bias, mask, scale], [biased, masked, scaled])
    nodes = [e["inbound_nodes"][0] for e in model_config(model)["config"]["layers"]
             if e["class_name"] in ("DotProductAttention", "RMSNorm")]
    assert [len(n["args"]) for n in nodes] == [3, 3, 1]
    assert nodes[0]["kwargs"]["bias"]["class_name"] == "__keras_tensor__" and nodes[0]["kwargs"]["mask"] is None
    assert nodes[0]["kwargs"]["scale"] == 0.5
    assert nodes[1]["kwargs"]["mask"]["config"]["dtype"] == "bool" and nodes[1]["kwargs"]["bias"] is None
    assert nodes[2]["kwargs"]["scale"]["config"]["keras_history"][0].startswith("mean")
    arrays = [rng.standard_normal((2, 4, 2, 3)), rng.standard_normal((2, 6, 2, 3)), rng.standard_normal((2, 2, 4, 6)),
              rng.random((2, 2, 4, 6)) > 0.3, rng.standard_normal((2, 3))]
    expected = model.forward(arrays)
    numpy.testing.assert_allclose(expected[1], np_attention_masked(arrays), rtol=1e-12)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    for got, want in zip(loaded.forward(arrays), expected):
        numpy.testing.assert_allclose(got, want, rtol=1e-12)
    assert model_config(loaded)["config"]["layers"][-1]["inbound_nodes"] == \
        model_config(model)["config"]["layers"][-1]["inbound_nodes"]
    # A clone gives the keyword tensors by keyword again.
    clone = clone_model(model)
    assert [len(n["args"]) for n in (_node(clone, "DotProductAttention"), _node(clone, "RMSNorm"))] == [3, 1]
    for got, want in zip(clone.forward(arrays), expected):
        numpy.testing.assert_allclose(got, want, rtol=1e-12)
    # The gradients reach the tensors given by keyword.
    y = model.forward(arrays, training=True)
    grads = model.backward([numpy.ones_like(t) for t in y])
    assert grads[2] is not None and grads[2].shape == (2, 2, 4, 6) and grads[3] is None
    assert grads[4] is not None and numpy.abs(grads[4]).sum() > 0


def np_attention_masked(arrays):
    q, k, _, mask, _ = arrays
    return np_attention(q, k, k, mask=mask)


def test_a_tensor_saved_in_its_positional_place_is_read_there(rng):
    # Files gpu_dl wrote before it recorded keyword tensors as keywords hold bias in its positional place.
    q, bias = gpu_dl.Input((4, 2, 3), dtype="float64"), gpu_dl.Input((2, 4, 4), dtype="float64")
    model = gpu_dl.Model([q, bias], ops.dot_product_attention(q, q, q, bias=bias))
    config = model_config(model)
    node = [e for e in config["config"]["layers"] if e["class_name"] == "DotProductAttention"][0]["inbound_nodes"][0]
    node["args"].append(node["kwargs"].pop("bias"))
    rebuilt = model_from_config(config)
    arrays = [rng.standard_normal((2, 4, 2, 3)), rng.standard_normal((2, 2, 4, 4))]
    numpy.testing.assert_allclose(rebuilt.forward(arrays), model.forward(arrays), rtol=1e-12)
    assert len(_node(rebuilt, "DotProductAttention")["args"]) == 4


def test_saved_calls_the_ops_do_not_take_are_refused():
    q, s = gpu_dl.Input((4, 2, 3)), gpu_dl.Input((3,))
    model = gpu_dl.Model([q, s], ops.dot_product_attention(q, q, q, bias=ops.expand_dims(s, 0)))

    def refused(edit, match):
        config = model_config(model)
        edit([e for e in config["config"]["layers"] if e["class_name"] == "DotProductAttention"][0]
             ["inbound_nodes"][0])
        with pytest.raises(ValueError, match=match):
            model_from_config(config)

    refused(lambda n: n["kwargs"].update(dropout=0.1), r"takes bias, mask, scale; its call gives 'dropout'")
    refused(lambda n: n["kwargs"].update(scale=n["kwargs"]["bias"]), "'scale' of DotProductAttention takes a "
                                                                     "constant, not a tensor")
    refused(lambda n: n["kwargs"].update(bias=[n["kwargs"]["bias"]]), "'bias' of DotProductAttention takes one "
                                                                      "tensor")
    refused(lambda n: n["kwargs"].update(scale="large"), "'scale' must be a number or null")
    refused(lambda n: n["args"].append(n["kwargs"]["bias"]), "given both positionally and by keyword")
    with pytest.raises(TypeError, match="`scale` must be a number or None, not a symbolic tensor"):
        nn_attention.DotProductAttention().apply(q, q, q, scale=s)


def test_what_the_ops_refuse():
    x = gpu_dl.Input((7, 5, 3))
    with pytest.raises(ValueError, match="rank 3 or 4 or 5"):
        ops.max_pool(gpu_dl.Input((4,)), 2)
    with pytest.raises(ValueError, match="padding"):
        ops.average_pool(x, 2, padding="full")
    with pytest.raises(ValueError, match="data_format"):
        ops.max_pool(x, 2, data_format="nhwc")
    with pytest.raises(ValueError, match="pool_size"):
        ops.max_pool(x, (2, 2, 2))
    with pytest.raises(ValueError, match="does not fit"):
        ops.max_pool(x, 6)
    with pytest.raises(ValueError, match="input channels"):
        ops.depthwise_conv(x, numpy.ones((3, 3, 4, 1)))
    with pytest.raises(ValueError, match="pointwise kernel"):
        ops.separable_conv(x, numpy.ones((3, 3, 3, 1)), numpy.ones((1, 1, 4, 2)))
    with pytest.raises(ValueError, match="4-D"):
        ops.dot_product_attention(gpu_dl.Input((4, 3)), x, x)
    with pytest.raises(ValueError, match="only one of"):
        ops.dot_product_attention(numpy.ones((1, 2, 1, 2)), numpy.ones((1, 2, 1, 2)), numpy.ones((1, 2, 1, 2)),
                                  bias=numpy.ones((1, 1, 2, 2)), mask=numpy.ones((1, 1, 2, 2), bool))
    with pytest.raises(ValueError, match="same shape"):
        ops.binary_crossentropy(numpy.ones((2, 3)), numpy.ones((2, 4)) / 2)
    with pytest.raises(ValueError, match="without axis"):
        ops.sparse_categorical_crossentropy(numpy.array([0, 1, 2]), numpy.ones((2, 4)))
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 4\)"):
        ops.sparse_categorical_crossentropy(numpy.array([0, 4]), numpy.ones((2, 4)))
    with pytest.raises(ValueError, match="features of axis"):
        ops.batch_normalization(numpy.ones((2, 3)), numpy.zeros(2), numpy.ones(3), axis=-1)
    with pytest.raises(ValueError, match="out of range"):
        ops.layer_normalization(numpy.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="'greedy' or 'beam_search'"):
        ops.ctc_decode(numpy.ones((1, 3, 2)), numpy.array([3]), strategy="best")
    with pytest.raises(ValueError, match="one length per sample"):
        ops.ctc_loss(numpy.ones((2, 1), "int32"), numpy.ones((2, 3, 3)), numpy.array([1]), numpy.array([3, 3]))
    with pytest.raises(ValueError, match="same shape"):
        ops.psnr(numpy.ones(3), numpy.ones(4), 1.0)


# ------------------------------------------------------------------ composite layers using the ops with weights
class DepthwiseRMS(layers.Layer):
    """A depthwise convolution of a kernel weight, then an RMS normalisation scaled by a weight."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(3, 3, input_shape[-1], 2), initializer="glorot_uniform", name="kernel")
        self.scale = self.add_weight(shape=(2 * input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return ops.rms_normalization(ops.depthwise_conv(x, self.kernel, padding="same"), self.scale)


def test_a_composite_layer_gets_exact_gradients_of_its_weights(xp, rng):
    backend.set_random_seed(1)
    inputs = gpu_dl.Input((5, 4, 3), dtype="float64")
    layer = DepthwiseRMS(dtype="float64")
    model = gpu_dl.Model(inputs, ops.max_pool(layer(inputs), 2, 1))
    x = xp.asarray(rng.standard_normal((2, 5, 4, 3)))
    kernel, scale = (to_numpy(v.value) for v in (layer.kernel, layer.scale))
    numpy.testing.assert_allclose(to_numpy(layer(x)), np_rms_norm(np_depthwise(to_numpy(x), kernel, padding="same"),
                                                                  scale), rtol=1e-10)
    y = model.forward(x, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    assert_weight_gradients(model, x, w, rng, weights=(layer.kernel, layer.scale))


def test_a_model_of_the_ops_trains(rng):
    backend.set_random_seed(2)
    inputs = gpu_dl.Input((8, 8, 2))
    h = layers.Conv2D(4, 3, padding="same")(inputs)
    h = ops.layer_normalization(ops.average_pool(h, 2), axis=-1)
    h = ops.adaptive_max_pool(h, (2, 2))
    model = gpu_dl.Model(inputs, layers.Dense(1)(layers.Flatten()(h)))
    x = rng.standard_normal((32, 8, 8, 2)).astype("float32")
    y = (x[:, :4, :4, 0].mean(axis=(1, 2)) > 0).astype("float32")[:, None]
    assert_trains(model, x, y, epochs=8, below=0.8)


# ------------------------------------------------------------------ control flow
def test_control_flow_on_arrays(xp):
    v = xp.arange(6.0)
    assert float(ops.cond(True, lambda: v.sum(), lambda: v.max())) == 15.0
    assert float(ops.cond(xp.asarray(False), lambda: v.sum(), lambda: v.max())) == 5.0
    branches = [lambda a: a + 1, lambda a: a * 2, lambda a: -a]
    assert [float(ops.switch(i, branches, v)[1]) for i in (-3, 0, 1, 2, 7)] == [2.0, 2.0, 2.0, -1.0, -1.0]
    assert float(ops.fori_loop(1, 5, lambda i, s: s * i, xp.asarray(1.0))) == 24.0
    i, s = ops.while_loop(lambda i, s: i < 4, lambda i, s: (i + 1, s + i), (0, 0))
    assert (int(i), int(s)) == (4, 6)
    if numpy.lib.NumpyVersion(numpy.__version__) >= "2.0.0":
        # NumPy 1.x promotes an int32 0-d array plus a Python int to int64 (value-based casting); 2.x keeps int32
        assert i.dtype == numpy.int32
    assert int(ops.while_loop(lambda n: n < 100, lambda n: n * 3, 1, maximum_iterations=2)) == 9
    carry, ys = ops.scan(lambda c, x: (c + x, c * x), xp.asarray(1.0), v)
    assert float(carry) == 16.0
    numpy.testing.assert_allclose(to_numpy(ys), [0, 1, 4, 12, 28, 55])
    carry, ys = ops.scan(lambda c, x: (c + x["a"], (c, -x["a"])), 0.0, {"a": v}, reverse=True)
    numpy.testing.assert_allclose(to_numpy(ys[0]), [15, 14, 12, 9, 5, 0])
    carry, ys = ops.scan(lambda c, _: (c * 2, None), 1.0, length=3)
    assert float(carry) == 8.0 and len(ys) == 1 and ys[0].shape == (3,)     # Keras's: a list of zeros_like(init)
    numpy.testing.assert_allclose(to_numpy(ops.map(lambda x: x * x, v)), to_numpy(v) ** 2)
    m = xp.asarray(numpy.linspace(0.5, 1.5, 35).reshape(5, 7))
    numpy.testing.assert_allclose(to_numpy(ops.associative_scan(lambda a, b: a * b, m, axis=1)),
                                  numpy.cumprod(to_numpy(m), axis=1), rtol=1e-12)
    numpy.testing.assert_allclose(to_numpy(ops.associative_scan(lambda a, b: a + b, m, reverse=True)),
                                  numpy.cumsum(to_numpy(m)[::-1], axis=0)[::-1], rtol=1e-12)
    pair = ops.associative_scan(lambda a, b: (a[0] + b[0], numpy.maximum(a[1], b[1]) if xp is numpy else
                                              xp.maximum(a[1], b[1])), (m, m[::-1]))
    numpy.testing.assert_allclose(to_numpy(pair[1]), numpy.maximum.accumulate(to_numpy(m)[::-1], axis=0))
    numpy.testing.assert_allclose(to_numpy(ops.vectorized_map(lambda row: row.sum(), m)), to_numpy(m).sum(1))
    added = ops.vectorize(lambda a, b: a * b + 1)(m, 2.0)
    numpy.testing.assert_allclose(to_numpy(added), to_numpy(m) * 2 + 1)
    dotted = ops.vectorize(lambda a, b: (a * b).sum(), signature="(n),(n)->()")(m, m[0])
    numpy.testing.assert_allclose(to_numpy(dotted), to_numpy(m) @ to_numpy(m[0]))

    @ops.custom_gradient
    def log1pexp(x):
        e = ops.exp(x)
        return ops.log(1 + e), lambda upstream: upstream * (1 - 1 / (1 + e))
    numpy.testing.assert_allclose(to_numpy(log1pexp(v)), numpy.log1p(numpy.exp(to_numpy(v))))


def _unrolled(a):
    """Control flow on a symbolic tensor with decisions known while the model is made."""
    h = ops.fori_loop(0, 3, lambda i, s: s * 0.5 + ops.sin(s) * (i + 1), a)
    h = ops.cond(h.shape[-1] == 4, lambda: h * 2.0, lambda: h)
    h = ops.switch(1, [lambda t: t, lambda t: ops.tanh(t)], h)
    steps = ops.transpose(h, (1, 0, 2))                   # (3, batch, 4): scan over the 3 known steps
    carry, ys = ops.scan(lambda c, x: (c * x + x, ops.square(c)), ops.ones_like(steps[0]), steps)
    scanned = ops.associative_scan(lambda u, v: u + v, h, axis=2)
    i, w = ops.while_loop(lambda i, w: i < 2, lambda i, w: (i + 1, ops.exp(-w) * w), (0, carry))
    return ops.concatenate([w, ops.mean(ys, axis=0), ops.mean(scanned, axis=1),
                            ops.mean(ops.map(lambda t: t * 3.0, steps), axis=0)], axis=-1)


def _unrolled_numpy(a):
    h = a
    for i in range(3):
        h = h * 0.5 + numpy.sin(h) * (i + 1)
    h = numpy.tanh(h * 2.0)
    steps = h.transpose(1, 0, 2)
    c, ys = numpy.ones_like(steps[0]), []
    for x in steps:
        ys.append(c ** 2)
        c = c * x + x
    w = c
    for _ in range(2):
        w = numpy.exp(-w) * w
    return numpy.concatenate([w, numpy.mean(ys, axis=0), numpy.cumsum(h, axis=2).mean(1), (steps * 3).mean(0)], -1)


def test_control_flow_on_symbolic_tensors_is_unrolled_with_exact_gradients(xp, rng, tmp_path):
    a = gpu_dl.Input((3, 4), dtype="float64")
    model = gpu_dl.Model(a, _unrolled(a))
    x = rng.standard_normal((2, 3, 4))
    y = model.forward(xp.asarray(x), training=True)
    numpy.testing.assert_allclose(to_numpy(y), _unrolled_numpy(x), rtol=1e-10)
    w = xp.asarray(rng.standard_normal(y.shape))
    grad = model.backward(w)
    assert_gradient(lambda v: (model.forward(v, training=True) * w).sum(), xp.asarray(x), grad, rng)
    model.save(tmp_path / "m.keras")
    numpy.testing.assert_allclose(to_numpy(load_model(tmp_path / "m.keras").forward(xp.asarray(x))),
                                  _unrolled_numpy(x), rtol=1e-10)


class Recurrence(layers.Layer):
    """A composite layer whose call loops with fori_loop over the known steps of its input."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], input_shape[-1]), initializer="orthogonal", name="w")

    def call(self, x):
        steps = x.shape[1]

        def body(i, h):
            return ops.tanh(ops.matmul(h, self.w) + x[:, i])
        return ops.fori_loop(0, steps, body, ops.zeros_like(x[:, 0]))


def test_a_composite_layer_looping_with_fori_loop_trains(xp, rng):
    backend.set_random_seed(4)
    inputs = gpu_dl.Input((4, 3), dtype="float64")
    layer = Recurrence(dtype="float64")
    model = gpu_dl.Model(inputs, layer(inputs))
    x = xp.asarray(rng.standard_normal((2, 4, 3)))
    w_value = to_numpy(layer.w.value)
    h = numpy.zeros((2, 3))
    for i in range(4):
        h = numpy.tanh(h @ w_value + to_numpy(x)[:, i])
    numpy.testing.assert_allclose(to_numpy(model.forward(x)), h, rtol=1e-12)
    assert_weight_gradients(model, x, xp.asarray(rng.standard_normal((2, 3))), rng, weights=(layer.w,))


@ops.custom_gradient
def _clipped_gradient(x):
    def grad(upstream):                         # JAX's and TensorFlow's form
        return ops.clip(upstream, -0.1, 0.1)
    return x * 3.0, grad


@ops.custom_gradient
def _softplus(x):
    e = ops.exp(x)

    def grad(*args, upstream):                  # Keras's torch backend's form
        return upstream * (1 - 1 / (1 + e))
    return ops.log(1 + e), grad


def test_custom_gradients_give_the_value_and_their_own_gradient(xp, rng, tmp_path):
    a = gpu_dl.Input((5,), dtype="float64")
    model = gpu_dl.Model(a, _clipped_gradient(a) + _softplus(ops.square(a)))
    x = rng.standard_normal((3, 5))
    y = model.forward(xp.asarray(x), training=True)
    numpy.testing.assert_allclose(to_numpy(y), 3 * x + numpy.log1p(numpy.exp(x * x)), rtol=1e-12)
    dy = rng.standard_normal((3, 5))
    dx = model.backward(xp.asarray(dy))
    want = numpy.clip(dy, -0.1, 0.1) + dy / (1 + numpy.exp(-x * x)) * 2 * x
    numpy.testing.assert_allclose(to_numpy(dx), want, rtol=1e-12)
    numpy.testing.assert_allclose(to_numpy(_softplus(xp.asarray(x))), numpy.log1p(numpy.exp(x)), rtol=1e-12)
    with pytest.raises(ValueError, match="custom_gradient cannot be saved"):
        model.save(tmp_path / "m.keras")


def test_control_flow_refuses_decisions_known_only_when_the_model_runs():
    a = gpu_dl.Input((3,))
    with pytest.raises(ValueError, match=r"cond: `pred` is a symbolic tensor.*ops.where"):
        ops.cond(ops.sum(a) > 0, lambda: a, lambda: -a)
    with pytest.raises(ValueError, match="switch: `index` is a symbolic tensor"):
        ops.switch(ops.cast(ops.sum(a), "int32"), [lambda t: t], a)
    with pytest.raises(ValueError, match="fori_loop: `upper` is a symbolic tensor"):
        ops.fori_loop(0, ops.cast(ops.sum(a), "int32"), lambda i, s: s, a)
    with pytest.raises(ValueError, match="while_loop.*fori_loop"):
        ops.while_loop(lambda s: ops.sum(s) < 10, lambda s: s * 2, a)
    with pytest.raises(ValueError, match="scan: the leading axis.*batch"):
        ops.scan(lambda c, x: (c, x), 0.0, a)
    with pytest.raises(ValueError, match="vectorized_map: the leading axis"):
        ops.vectorized_map(lambda t: t, a)
    with pytest.raises(ValueError, match="vectorize: gpu_dl calls the function once per element"):
        ops.vectorize(lambda t: t)(a)
    with pytest.raises(TypeError, match="branches"):
        ops.switch(0, [], a)
    with pytest.raises(ValueError, match="no `xs`"):
        ops.scan(lambda c, x: (c, x), 0.0)
    with pytest.raises(TypeError, match=r"\(value, grad_fn\)"):
        ops.custom_gradient(lambda t: t)(numpy.ones(2))
    with pytest.raises(TypeError, match=r"\(value, grad_fn\)"):
        ops.custom_gradient(lambda t: t)(a)


def test_the_nn_namespace_is_keras_s():
    from gpu_dl.ops import nn
    assert gpu_dl.ops.nn.max_pool is ops.max_pool and nn.relu is ops.relu and nn.softmax is ops.softmax
    assert "ctc_loss" in dir(nn) and "mean" not in dir(nn) and nn.conv is ops.conv
    with pytest.raises(AttributeError, match="offers these of Keras's keras.ops.nn"):
        nn.mean
    from gpu_dl.ops import pool          # the internal modules stay where they were
    assert callable(pool.max_pool2d_forward)
