"""ReversibleEmbedding: lookup and reverse projection against plain NumPy expectations (tied and separate weights,
soft-capped logits), the gradients of the reverse call against float64 finite differences (a tied table gets the
sum of both uses'), refused arguments, and a small language model that uses one layer both ways; quantized to int8
and int4, its variables, both directions and the hidden states' gradient against NumPy expectations read from its
variables."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


def expected_logits(hidden, kernel, cap):
    logits = hidden @ kernel
    return logits if cap is None else numpy.tanh(logits / cap) * cap


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("cap", [None, 2.5], ids=["plain", "capped"])
@pytest.mark.parametrize("input_dim,output_dim,lead", [(1, 1, (1,)), (17, 3, (3, 5)), (33, 17, (2,))])
def test_both_directions_match_numpy(xp, rng, tie, cap, input_dim, output_dim, lead):
    layer = layers.ReversibleEmbedding(input_dim, output_dim, tie_weights=tie, logit_soft_cap=cap,
                                       embeddings_initializer="random_normal")
    ids = rng.integers(0, input_dim, lead)
    y = layer(xp.asarray(ids))
    weights = layer.get_weights()
    assert [w.shape for w in weights] == [(input_dim, output_dim)] + ([] if tie else [(output_dim, input_dim)])
    assert [v.name for v in layer.weights] == ["embeddings"] + ([] if tie else ["reverse_embeddings"])
    numpy.testing.assert_array_equal(to_numpy(y), weights[0][ids])
    hidden = rng.standard_normal(lead + (output_dim,)).astype("float32")
    logits = layer(xp.asarray(hidden), reverse=True)
    kernel = weights[0].T if tie else weights[1]
    assert logits.shape == lead + (input_dim,) == layer.compute_output_shape(hidden.shape, reverse=True)
    assert logits.dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(logits), expected_logits(hidden, kernel, cap), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("cap", [None, 0.7], ids=["plain", "capped"])
def test_reverse_gradients_match_finite_differences(xp, rng, tie, cap):
    layer = layers.ReversibleEmbedding(7, 5, tie_weights=tie, logit_soft_cap=cap, dtype="float64",
                                       embeddings_initializer="random_normal")
    layer.build((None, 3))
    hidden = xp.asarray(rng.standard_normal((2, 3, 5)))
    dy = xp.asarray(rng.standard_normal((2, 3, 7)))
    layer(hidden, training=True, reverse=True)
    dx = layer.backward(dy)
    weight = layer.embeddings if tie else layer.reverse_embeddings
    grad = weight.grad
    if not tie:
        assert layer.embeddings.grad is None        # the projection does not read the lookup table
    # NumPy expectation
    h, g = to_numpy(hidden), to_numpy(dy)
    kernel = layer.get_weights()[0].T if tie else layer.get_weights()[1]
    dz = g if cap is None else g * (1 - numpy.tanh(h @ kernel / cap) ** 2)
    numpy.testing.assert_allclose(to_numpy(dx), dz @ kernel.T, rtol=1e-10, atol=1e-12)
    rows = dz.reshape(-1, 7).T @ h.reshape(-1, 5)
    numpy.testing.assert_allclose(to_numpy(grad), rows if tie else rows.T, rtol=1e-10, atol=1e-12)
    # finite differences
    assert_gradient(lambda v: (layer(v, reverse=True) * dy).sum(), hidden.copy(), dx, rng, what="hidden")
    original = weight.value.copy()

    def objective(value):
        weight.value[...] = value
        return (layer(hidden, reverse=True) * dy).sum()
    assert_gradient(objective, original.copy(), grad, rng, what=weight.name)


def test_tied_table_gets_the_sum_of_both_uses(xp, rng):
    """ids -> emb(ids) -> Dense -> emb(h, reverse=True): the table's gradient is the lookup's plus the
    projection's, checked against float64 finite differences of the whole model."""
    inputs = layers.Input((4,), dtype="int32")
    emb = layers.ReversibleEmbedding(6, 3, logit_soft_cap=1.5, dtype="float64", embeddings_initializer="random_normal")
    dense = layers.Dense(3, activation="tanh", dtype="float64")
    model = gpu_dl.Model(inputs, emb(dense(emb(inputs)), reverse=True))
    ids = xp.asarray(numpy.array([[0, 3, 3, 5], [1, 1, 2, 4]]))
    dy = xp.asarray(rng.standard_normal((2, 4, 6)))
    model.forward(ids, training=True)
    model.backward(dy)
    grad = emb.embeddings.grad
    original = emb.embeddings.value.copy()

    def objective(table):
        emb.embeddings.value[...] = table
        return (model.forward(ids) * dy).sum()
    assert_gradient(objective, original.copy(), grad, rng, what="tied embeddings")
    # and it differs from either use alone
    emb.embeddings.value[...] = original
    model.forward(ids, training=True)
    model.backward(dy)
    both = to_numpy(emb.embeddings.grad)
    emb(dense(emb(ids, training=True), training=True), training=True, reverse=True)
    emb.backward(dy)
    assert not numpy.allclose(both, to_numpy(emb.embeddings.grad))


def test_language_model_trains_both_ways(rng):
    """A tiny next-token model: ids -> emb -> Dense -> emb(reverse) -> softmax loss; the loss falls."""
    vocab, steps = 12, 6
    for tie in (True, False):
        inputs = layers.Input((steps,), dtype="int32")
        emb = layers.ReversibleEmbedding(vocab, 8, tie_weights=tie, mask_zero=True, name="tokens")
        hidden = layers.Dense(8, activation="tanh")(emb(inputs))
        model = gpu_dl.Model(inputs, emb(hidden, reverse=True))
        model.compile(optimizer=gpu_dl.optimizers.Adam(0.05),
                      loss=gpu_dl.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = rng.integers(1, vocab, (16, steps))
        y = (x + 1) % vocab
        before = [w.copy() for w in emb.get_weights()]
        losses = [model.train_on_batch(x, y) for _ in range(30)]
        assert losses[-1] < 0.5 * losses[0], (tie, losses[0], losses[-1])
        assert all(not numpy.array_equal(a, b) for a, b in zip(before, emb.get_weights()))
        assert model.predict(x, verbose=0).shape == (16, steps, vocab)


def test_symbolic_calls_and_masks():
    ids = layers.Input((5,), dtype="int32")
    emb = layers.ReversibleEmbedding(9, 4, mask_zero=True)
    hidden = emb(ids)
    logits = emb(hidden, reverse=True)
    assert hidden.shape == (None, 5, 4) and logits.shape == (None, 5, 9)
    assert [n.kwargs for n in emb._inbound_nodes] == [{}, {"reverse": True}]
    x = numpy.array([[0, 2, 0]])
    emb(x)
    numpy.testing.assert_array_equal(emb.compute_mask(x, None), [[False, True, False]])
    emb(numpy.ones((1, 3, 4), "float32"), reverse=True)
    assert emb.compute_mask(x, None) is None       # a reverse call's output has no mask, as in Keras


def test_reverse_dtype_and_config_round_trip(rng):
    layer = layers.ReversibleEmbedding(5, 3, tie_weights=False, reverse_dtype="float64", logit_soft_cap=4,
                                       name="lm_head")
    out = layer(rng.standard_normal((2, 3)).astype("float32"), reverse=True)
    assert out.dtype == numpy.float64 and layer.embeddings.dtype == numpy.float32
    config = layer.get_config()
    assert {k: config[k] for k in ("tie_weights", "reverse_dtype", "logit_soft_cap", "input_dim", "output_dim")} == \
        {"tie_weights": False, "reverse_dtype": "float64", "logit_soft_cap": 4, "input_dim": 5, "output_dim": 3}
    again = layers.ReversibleEmbedding.from_config(config)
    assert again.get_config() == config
    # Keras's `weights=[...]` holds every weight, the reverse one included
    tables = [rng.standard_normal((5, 3)).astype("float32"), rng.standard_normal((3, 5)).astype("float32")]
    given = layers.ReversibleEmbedding(5, 3, tie_weights=False, weights=tables)
    given(numpy.array([[1]]))
    for a, b in zip(given.get_weights(), tables):
        numpy.testing.assert_array_equal(a, b)


def test_refused_arguments_and_calls_name_the_layer(xp):
    for kwargs, match in ((dict(tie_weights="yes"), "tie_weights"), (dict(logit_soft_cap=0), "logit_soft_cap"),
                          (dict(logit_soft_cap="big"), "logit_soft_cap"), (dict(reverse_dtype="int8"), "reverse_dtype"),
                          (dict(quantization_config="int8"), "quantization_config"), (dict(lora_rank=0), "lora_rank"),
                          (dict(input_dim=0), "input_dim")):
        arguments = {"input_dim": 5, "output_dim": 3, "name": "head", **kwargs}
        with pytest.raises((TypeError, ValueError), match=match):
            layers.ReversibleEmbedding(**arguments)
    layer = layers.ReversibleEmbedding(5, 3, name="head")
    with pytest.raises(ValueError, match=r"'head'.*output_dim=3, got shape \(2, 4\)"):
        layer(xp.ones((2, 4), dtype=xp.float32), reverse=True)
    with pytest.raises(TypeError, match="reverse"):
        layer(xp.ones((2, 3), dtype=xp.float32), reverse="yes")
    with pytest.raises(ValueError, match=r"'head' has input_dim=5: ids must lie in \[0, 4\]"):
        layer(xp.asarray(numpy.array([[5]])))
    assert layers.ReversibleEmbedding(5, 3, quantization_config=None).get_config()["input_dim"] == 5


def test_an_untied_table_read_only_in_reverse_takes_its_penalty_gradient_alone(xp, rng):
    # The id table gets no loss gradient when no call looks ids up; its L2 penalty still counts in the loss and
    # moves it, as Keras differentiates the sum. The model input feeds a reverse call: hidden states, which the
    # model must not check as ids (they are negative and fractional here).
    gpu_dl.backend.set_random_seed(0)
    emb = layers.ReversibleEmbedding(7, 3, tie_weights=False, embeddings_regularizer="l2")
    hidden = layers.Input((3,))
    model = gpu_dl.Model(hidden, emb(hidden, reverse=True))
    model.compile(optimizer="sgd", loss="mse")
    before = to_numpy(emb.embeddings.value).copy()
    x = rng.standard_normal((4, 3)).astype("float32")
    model.train_on_batch(x, rng.standard_normal((4, 7)).astype("float32"))
    expected = before - 0.01 * 0.01 * 2 * before          # SGD(0.01) on the gradient of 0.01 * sum(w**2)
    numpy.testing.assert_allclose(to_numpy(emb.embeddings.value), expected, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------ quantization
def quantize_rows(x, axis=-1, top=127):
    scale = numpy.float32(top) / (numpy.abs(x).max(axis=axis, keepdims=True) + numpy.float32(1e-7))
    return numpy.clip(numpy.round(x * scale), -top - (top == 7), top), scale


def dequantized_projection(layer):
    """The float (output_dim, input_dim) table a quantized layer's reverse call stands for, read from its variables
    with NumPy."""
    tie, out = layer.tie_weights, layer.output_dim
    table = (layer.embeddings if tie else layer.reverse_embeddings).numpy()
    scale = (layer.embeddings_scale if tie else layer.reverse_embeddings_scale).numpy()
    if layer.dtype_policy.quantization_mode == "int4":
        table = gpu_dl.quantizers.unpack_int4(table, out, axis=-1 if tie else 0)
    values = table.T if tie else table
    zero = getattr(layer, "embeddings_zero", None) if tie else layer.reverse_embeddings_zero
    if zero is None:
        return values / scale
    zero, scale = (zero.numpy().T, scale.T) if tie else (zero.numpy(), scale)
    groups = layer.g_idx.numpy().astype(int)
    return (values - zero[groups]) * scale[groups]


QUANTIZED = [("int8", None, False), ("int4", None, False), ("int4", None, True), ("int4", 4, False)]


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("mode,block_size,inputs_quantized", QUANTIZED,
                         ids=["int8", "int4-per-id", "int4-per-id-inputs-quantized", "int4-groups"])
def test_quantized_variables_and_both_directions_match_numpy(xp, rng, tie, mode, block_size, inputs_quantized):
    vocab, width = 7, 9
    layer = layers.ReversibleEmbedding(vocab, width, tie_weights=tie, logit_soft_cap=3.0, name="head")
    layer.build((None, 4))
    tables = [rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(tables)
    config = None
    if mode == "int4":
        config = gpu_dl.quantizers.Int4QuantizationConfig(
            block_size=block_size, activation_quantizer=gpu_dl.quantizers.AbsMaxQuantizer() if inputs_quantized
            else None)
    layer.quantize(mode, config=config)
    groups = -(-width // 4)
    packed = (width + 1) // 2
    if mode == "int8":
        expected = [("embeddings", "int8", (vocab, width)), ("embeddings_scale", "float32", (vocab,))] + \
            ([] if tie else [("reverse_embeddings", "int8", (width, vocab)),
                             ("reverse_embeddings_scale", "float32", (vocab,))])
    elif block_size is None:
        expected = [("embeddings", "int8", (vocab, packed)), ("embeddings_scale", "float32", (vocab,))] + \
            ([] if tie else [("reverse_embeddings", "int8", (packed, vocab)),
                             ("reverse_embeddings_scale", "float32", (vocab,))])
    else:
        expected = [("embeddings", "int8", (vocab, packed)), ("embeddings_scale", "float32", (vocab, groups)),
                    ("embeddings_zero", "int8", (vocab, groups)), ("g_idx", "float32", (width,))] + \
            ([] if tie else [("reverse_embeddings", "int8", (packed, vocab)),
                             ("reverse_embeddings_scale", "float32", (groups, vocab)),
                             ("reverse_embeddings_zero", "float32", (groups, vocab))])
    assert [(w.name, w.dtype, w.shape) for w in layer.weights] == expected
    assert not layer.trainable_weights
    assert layer.dtype_policy.name == ("int8" if mode == "int8" else f"int4/{block_size or -1}") + "_from_float32"
    kernel = dequantized_projection(layer)
    original = tables[0].T if tie else tables[-1]
    if block_size is None:
        # one scale per vocabulary column, quantized as Keras does: the untied table over output_dim (axis 0)
        top = 127 if mode == "int8" else 7
        values, scale = quantize_rows(original, axis=0, top=top)
        numpy.testing.assert_array_equal(kernel, values / scale)
        numpy.testing.assert_allclose(kernel, original, atol=numpy.abs(original).max() / top)
    # (in groups Keras clips the zero points to [-8, 7]: a group that does not straddle 0 saturates, and the
    # oracle tests compare those values with Keras's)

    gpu_dl.set_device("gpu" if xp.__name__ == "cupy" else "cpu")
    hidden = rng.standard_normal((2, 3, width)).astype("float32")
    layer.input_gradient_wanted = True
    logits = to_numpy(layer(xp.asarray(hidden), training=True, reverse=True))
    if mode == "int8" or inputs_quantized:
        # Keras's product: the hidden states quantized per row, exact in integers, over both scales
        rows, row_scale = quantize_rows(hidden)
        values = numpy.round(kernel * scale).astype(numpy.int64)
        want = (rows.astype(numpy.int64) @ values).astype("float32") / (row_scale * scale)
    else:
        want = hidden @ kernel.astype("float32")
    want = numpy.tanh(want / numpy.float32(3.0)) * numpy.float32(3.0)
    assert logits.dtype == numpy.float32
    numpy.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(logits.shape).astype("float32")
    dx = to_numpy(layer.backward(xp.asarray(dy)))
    # the frozen tables take no gradient; the hidden states theirs through the dequantized table
    numpy.testing.assert_allclose(dx, (dy * (1 - (logits / 3) ** 2)) @ kernel.T, rtol=1e-4, atol=1e-5)
    assert all(getattr(w, "grad", None) is None for w in layer.weights)
    # the lookup reads the dequantized rows of the table
    ids = rng.integers(0, vocab, (2, 3))
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(ids))), dequantized_rows(layer)[ids], rtol=1e-6,
                                  atol=1e-6)


def dequantized_rows(layer):
    """The float (input_dim, output_dim) lookup table of a quantized layer, read from its variables with NumPy."""
    table = layer.embeddings.numpy()
    scale = layer.embeddings_scale.numpy()
    if layer.dtype_policy.quantization_mode == "int4":
        table = gpu_dl.quantizers.unpack_int4(table, layer.output_dim, axis=-1)
    if getattr(layer, "embeddings_zero", None) is None:
        return table / scale[:, None]
    groups = layer.g_idx.numpy().astype(int)
    return (table - layer.embeddings_zero.numpy()[:, groups]) * scale[:, groups]


@pytest.mark.parametrize("block_size", [None, 2], ids=["per-id", "groups"])
def test_quantized_reverse_gradient_matches_finite_differences(xp, rng, block_size):
    # int4 without an inputs quantizer: the product runs on the dequantized table, differentiable in the hidden
    # states
    layer = layers.ReversibleEmbedding(5, 3, tie_weights=False, logit_soft_cap=0.8, dtype="float64")
    layer.build(None)
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
    layer.quantize("int4", config=gpu_dl.quantizers.Int4QuantizationConfig(block_size=block_size))
    hidden = xp.asarray(rng.standard_normal((2, 4, 3)))
    dy = xp.asarray(rng.standard_normal((2, 4, 5)))
    layer.input_gradient_wanted = True
    y = layer(hidden, training=True, reverse=True)
    assert y.dtype == numpy.float64
    dx = layer.backward(dy)
    assert_gradient(lambda v: (layer(v, reverse=True) * dy).sum(), hidden.copy(), dx, rng, what="hidden")


@pytest.mark.parametrize("policy", ["int8_from_float32", "int4/2_from_float32", "int4/-1_from_float32"])
def test_quantized_policy_builds_keras_s_variables_and_configs_round_trip(rng, policy):
    quantized = layers.ReversibleEmbedding(6, 5, tie_weights=False, name="head")
    quantized.build(None)
    mode = policy.split("_")[0]
    block_size = None if mode == "int8" else int(mode.split("/")[1])
    config = None if mode == "int8" else gpu_dl.quantizers.Int4QuantizationConfig(
        block_size=None if block_size == -1 else block_size)
    quantized.quantize(mode.split("/")[0], config=config)
    assert quantized.dtype_policy.name == policy
    # built from the policy alone (no config), the layer makes the same variables; its reverse call quantizes the
    # hidden states per row, Keras's fallback
    built = layers.ReversibleEmbedding(6, 5, tie_weights=False, dtype=policy, name="head")
    built.build(None)
    assert [(w.name, w.dtype, w.shape) for w in built.weights] == \
        [(w.name, w.dtype, w.shape) for w in quantized.weights]
    assert isinstance(built.inputs_quantizer, gpu_dl.quantizers.AbsMaxQuantizer)
    built.set_weights(quantized.get_weights())
    ids = rng.integers(0, 6, (3, 2))
    numpy.testing.assert_array_equal(to_numpy(built(ids)), to_numpy(quantized(ids)))
    # the config carries the quantization config: the layer it makes computes as the quantized one, both ways
    config = quantized.get_config()
    assert config["dtype"]["class_name"] in ("QuantizedDTypePolicy", "Int4DTypePolicy")
    assert config["quantization_config"] is not None
    again = layers.ReversibleEmbedding.from_config(config)
    again.build(None)
    again.set_weights(quantized.get_weights())
    hidden = rng.standard_normal((3, 5)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(again(hidden, reverse=True)), to_numpy(quantized(hidden, reverse=True)))
    numpy.testing.assert_array_equal(to_numpy(again(ids)), to_numpy(quantized(ids)))


def test_quantized_language_model_trains_the_rest(rng):
    vocab, steps = 12, 6
    inputs = layers.Input((steps,), dtype="int32")
    emb = layers.ReversibleEmbedding(vocab, 8, tie_weights=False, mask_zero=True, name="tokens")
    dense = layers.Dense(8, activation="tanh")
    model = gpu_dl.Model(inputs, emb(dense(emb(inputs)), reverse=True))
    emb.quantize("int8")
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.05),
                  loss=gpu_dl.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.integers(1, vocab, (16, steps))
    frozen, before = [w.copy() for w in emb.get_weights()], [w.copy() for w in dense.get_weights()]
    losses = [model.train_on_batch(x, (x + 1) % vocab) for _ in range(10)]
    assert losses[-1] < losses[0]
    assert all(numpy.array_equal(a, b) for a, b in zip(frozen, emb.get_weights()))
    assert all(not numpy.array_equal(a, b) for a, b in zip(before, dense.get_weights()))


def test_quantize_refusals_name_the_layer():
    layer = layers.ReversibleEmbedding(5, 3, name="head")
    with pytest.raises(ValueError, match="isn't yet built. Layer 'head'"):
        layer.quantize("int8")
    layer.build(None)
    layer.quantize("int8")
    with pytest.raises(ValueError, match="'head' is already quantized"):
        layer.quantize("int4")

    class Head(layers.ReversibleEmbedding):
        pass
    head = Head(5, 3)
    head.build(None)
    with pytest.raises(NotImplementedError, match="Head does not have a `quantize\\(\\)` method"):
        head.quantize("int8")
    head.quantize("int8", type_check=False)
    assert head.dtype_policy.name == "int8_from_float32"
