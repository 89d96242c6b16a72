"""Masks of padded steps through custom layers, and custom layers called on several tensors, as Keras 3 handles
them, on both backends.

A custom layer that supports masking passes the mask on; one whose call names ``mask`` gets it (traced on a
symbolic mask, so it computes with it); its own ``compute_mask`` gives its output's mask; a mask reaching a traced
call reaches the layers called inside; a call may give a sublayer a mask itself. Symbolic tensors carry
``_keras_mask``. In Sequential, functional and subclassed models and inside traced calls: against NumPy (a padded
sequence gives what the unpadded one gives), and gradients through a masked traced call against float64 finite
differences. Calls of several tensor arguments (positional and keyword, and constants) on arrays and symbolic
tensors, in models, trained. Against Keras itself: tests/test_keras_oracle_custom_layer_masks.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, ops
from gpu_dl.backend import to_numpy

import custom_mask_classes as classes
from gradcheck import assert_gradient

Doubler = classes.doubler(gpu_dl)
Projected = classes.projected(gpu_dl)
MaskedScale = classes.masked_scale(gpu_dl)
SoftmaxOverTime = classes.softmax_over_time(gpu_dl)
TemporalSoftmax = classes.temporal_softmax(gpu_dl)
TemporalSplit = classes.temporal_split(gpu_dl)
DropFirstStep = classes.drop_first_step(gpu_dl)
CustomEmbedding = classes.custom_embedding(gpu_dl)
MaskedEncoder = classes.masked_encoder(gpu_dl)
PaddedClassifier = classes.padded_classifier(gpu_dl)
LogisticEndpoint = classes.logistic_endpoint(gpu_dl)

PADDED = numpy.array([[5, 6, 0, 0], [7, 3, 9, 0]])


class Encoder(layers.Layer):
    """A traced call holding the pass-through layer between an Embedding and an LSTM."""

    def __init__(self, middle, **kwargs):
        super().__init__(**kwargs)
        self.embedding = layers.Embedding(20, 4, mask_zero=True)
        self.middle = middle
        self.lstm = layers.LSTM(3)

    def call(self, inputs):
        return self.lstm(self.middle(self.embedding(inputs)))


class Sequences(layers.Layer):
    """No masking of its own: its output keeps the mask that reached it inside its call (an LSTM's sequences)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lstm = layers.LSTM(2, return_sequences=True)

    def call(self, inputs):
        return self.lstm(inputs)


class AttentionPool(layers.Layer):
    """Scores each step (a Dense, which passes the mask on), a softmax over the steps that count (a call that reads
    the mask), and the weighted sum: the mask reaching the traced call reaches the layers inside."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.score = layers.Dense(1, dtype=self.dtype)
        self.softmax = SoftmaxOverTime(dtype=self.dtype)

    def call(self, inputs):
        return ops.sum(self.softmax(self.score(inputs)) * inputs, axis=1)


class Gate(layers.Layer):
    """A call of two tensors: Dense(x) * sigmoid(context)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(units, dtype=self.dtype)

    def call(self, x, context):
        return self.dense(x) * ops.sigmoid(context)


class Scaled(layers.Layer):
    """A constant argument: a graph is traced per value."""

    def call(self, inputs, scale=1.0):
        return inputs * scale


def _ids(xp, ids):
    return xp.asarray(numpy.asarray(ids, dtype="int32"))


def _embedded(embedding, ids):
    return embedding.get_weights()[0][numpy.asarray(ids)]


def _same_for_padded_and_unpadded(model, xp):
    """The outputs for PADDED and for each row without its padding, one at a time."""
    padded = to_numpy(model(_ids(xp, PADDED)))
    for row, ids in enumerate(PADDED):
        kept = ids[ids != 0][None]
        numpy.testing.assert_allclose(padded[row], to_numpy(model(_ids(xp, kept)))[0], rtol=1e-5, atol=1e-6)
    return padded


# ------------------------------------------------------------------ compute_mask
def test_compute_mask_takes_the_mask_as_optional(xp, rng):
    ids = _ids(xp, PADDED)
    expected = PADDED != 0
    embedding = layers.Embedding(20, 3, mask_zero=True)
    numpy.testing.assert_array_equal(to_numpy(embedding.compute_mask(ids)), expected)
    numpy.testing.assert_array_equal(to_numpy(embedding.compute_mask(PADDED.tolist())), expected)
    assert layers.Embedding(20, 3).compute_mask(ids) is None
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    x[0, 2:] = 0.0
    numpy.testing.assert_array_equal(to_numpy(layers.Masking().compute_mask(xp.asarray(x))), (x != 0).any(-1))
    mask = xp.asarray(expected)
    assert layers.Dense(2).compute_mask(xp.asarray(x)) is None      # Keras's default: the mask given, None
    assert layers.Dense(2).compute_mask(xp.asarray(x), mask) is mask
    assert layers.LSTM(2, return_sequences=True).compute_mask(xp.asarray(x), mask) is mask
    assert layers.LSTM(2).compute_mask(xp.asarray(x), mask) is None
    assert layers.GlobalAveragePooling1D().compute_mask(xp.asarray(x), mask) is None     # it takes the mask in
    assert Doubler().compute_mask(xp.asarray(x), mask) is mask
    numpy.testing.assert_array_equal(to_numpy(DropFirstStep().compute_mask(xp.asarray(x), mask)), expected[:, 1:])
    halves = TemporalSplit().compute_mask(xp.asarray(x), mask)
    assert len(halves) == 2
    numpy.testing.assert_array_equal(to_numpy(halves[1]), expected[:, 2:])
    custom = CustomEmbedding(20, 3, mask_zero=True)
    numpy.testing.assert_array_equal(to_numpy(custom.compute_mask(ids)), expected)
    y = custom(ids)
    numpy.testing.assert_allclose(to_numpy(y), custom.get_weights()[0][PADDED], rtol=1e-6)
    assert not hasattr(y, "_keras_mask")      # an array takes no attributes: compute_mask gives its mask


# ------------------------------------------------------------------ a pass-through custom layer
def _sequential(middle):
    return gpu_dl.Sequential([gpu_dl.Input((None,), dtype="int32"), layers.Embedding(20, 4, mask_zero=True), middle,
                              layers.LSTM(3)])


def _functional(middle):
    ids = gpu_dl.Input((None,), dtype="int32")
    x = layers.Embedding(20, 4, mask_zero=True)(ids)
    return gpu_dl.Model(ids, layers.LSTM(3)(middle(x)))


def _traced(middle):
    return Encoder(middle)


@pytest.mark.parametrize("wrap", [_sequential, _functional, _traced])
def test_a_pass_through_custom_layer_keeps_the_mask_before_an_lstm(xp, wrap):
    model = wrap(Doubler())
    padded = _same_for_padded_and_unpadded(model, xp)
    # Doubler is 2 x: the model without it, its embeddings doubled, gives the same.
    plain = wrap(layers.Activation("linear"))
    plain(_ids(xp, PADDED))
    weights = model.get_weights()
    plain.set_weights([weights[0] * 2] + weights[1:])
    numpy.testing.assert_allclose(padded, to_numpy(plain(_ids(xp, PADDED))), rtol=1e-5, atol=1e-6)
    # Without the mask the padding counts.
    unmasked = wrap(Doubler())
    unmasked(_ids(xp, PADDED))
    unmasked.set_weights(weights)
    for layer in getattr(unmasked, "layers", None) or [unmasked.embedding]:
        if isinstance(layer, layers.Embedding):
            layer.mask_zero = False
    assert not numpy.allclose(to_numpy(unmasked(_ids(xp, PADDED))), padded, atol=1e-6)


def test_a_subclassed_model_passes_the_mask_through_a_custom_layer(xp):
    model = PaddedClassifier()
    _same_for_padded_and_unpadded(model, xp)


def test_a_pass_through_layer_with_a_sublayer_trains_in_a_sequential_model(xp, rng):
    model = gpu_dl.Sequential([gpu_dl.Input((None,), dtype="int32"), layers.Embedding(20, 4, mask_zero=True),
                               Projected(4), layers.LSTM(3), layers.Dense(2, activation="softmax")])
    _same_for_padded_and_unpadded(model, xp)
    ids = rng.integers(1, 20, (32, 6))
    ids[rng.random((32, 6)) < 0.3] = 0
    y = rng.integers(0, 2, 32)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    start = model.evaluate(ids, y, verbose=0)
    model.fit(ids, y, epochs=10, batch_size=8, verbose=0)
    assert model.evaluate(ids, y, verbose=0) < start
    _same_for_padded_and_unpadded(model, xp)


# ------------------------------------------------------------------ a call that reads the mask
@pytest.mark.parametrize("wrap", ["sequential", "functional", "traced"])
def test_a_call_that_names_mask_gets_it(xp, wrap):
    scale = MaskedScale()
    if wrap == "sequential":
        model = gpu_dl.Sequential([gpu_dl.Input((None,), dtype="int32"), layers.Embedding(20, 4, mask_zero=True),
                                   scale])
    elif wrap == "functional":
        ids = gpu_dl.Input((None,), dtype="int32")
        model = gpu_dl.Model(ids, scale(layers.Embedding(20, 4, mask_zero=True)(ids)))
    else:
        model = gpu_dl.Sequential([layers.Embedding(20, 4, mask_zero=True), Sequences(), scale])
    y = to_numpy(model(_ids(xp, PADDED)))
    embedding = next(layer for layer in model.layers if isinstance(layer, layers.Embedding))
    if wrap == "traced":
        x = to_numpy(model.layers[1](embedding(_ids(xp, PADDED)), mask=_ids(xp, PADDED != 0)))
    else:
        x = _embedded(embedding, PADDED)
    numpy.testing.assert_allclose(y, x * (PADDED != 0)[..., None], rtol=1e-6, atol=1e-7)
    assert "_trace_error" not in scale.__dict__


def test_the_guides_temporal_softmax_traces_on_a_symbolic_mask(xp):
    ids = gpu_dl.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=10, output_dim=32, mask_zero=True)(ids)
    x = layers.Dense(1)(x)
    softmax = TemporalSoftmax()
    outputs = softmax(x)
    assert outputs._keras_mask is x._keras_mask      # it supports masking: the mask passes on
    model = gpu_dl.Model(ids, outputs)
    data = numpy.random.default_rng(0).integers(0, 10, size=(8, 12))
    with numpy.errstate(invalid="ignore"):
        y = to_numpy(model(_ids(xp, data)))
    # exp(x) * m / (exp(x) * m), its sum over the last axis of size 1: 1 at the steps that count, 0 / 0 elsewhere.
    numpy.testing.assert_array_equal(y[..., 0][data != 0], 1.0)
    assert numpy.isnan(y[..., 0][data == 0]).all()
    assert "_trace_error" not in softmax.__dict__


def test_a_mask_reaching_a_traced_call_reaches_the_layers_inside(xp, rng):
    pool = AttentionPool()
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    mask = numpy.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=bool)
    y = to_numpy(pool(xp.asarray(x), mask=xp.asarray(mask)))
    kernel, bias = pool.get_weights()
    weights = numpy.exp(x @ kernel + bias) * mask[..., None]
    weights /= weights.sum(axis=1, keepdims=True)
    numpy.testing.assert_allclose(y, (weights * x).sum(axis=1), rtol=1e-5, atol=1e-6)
    # In a model, from Masking: the padded steps leave the result as it is without them.
    inputs = gpu_dl.Input((None, 4))
    model = gpu_dl.Model(inputs, pool(layers.Masking()(inputs)))
    padded = numpy.concatenate([x, numpy.zeros((3, 2, 4), dtype="float32")], axis=1)
    numpy.testing.assert_allclose(to_numpy(model(xp.asarray(padded))), to_numpy(model(xp.asarray(x))),
                                  rtol=1e-5, atol=1e-6)


def test_gradients_through_a_traced_masked_call(xp, rng):
    pool = AttentionPool(dtype="float64")
    x = xp.asarray(rng.standard_normal((3, 5, 4)))
    mask = xp.asarray(numpy.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 0, 0]], dtype=bool))
    y = pool(x, mask=mask, training=True)
    pool.set_weights([rng.standard_normal(w.shape) for w in pool.get_weights()])
    w = xp.asarray(rng.standard_normal(y.shape))

    def loss_at(value):
        return (pool(value, mask=mask, training=True) * w).sum()

    pool(x, mask=mask, training=True)
    dx = pool.backward(w)
    assert_gradient(loss_at, x, dx, rng, rtol=1e-5, atol=1e-7)
    masked_rows = to_numpy(dx)[~to_numpy(mask)]
    numpy.testing.assert_array_equal(masked_rows, 0.0)      # the padded steps take no part
    for var in pool.trainable_weights:
        grad, original = var.grad.copy(), var.value.copy()

        def loss_of_weight(value, var=var):
            var.value[...] = value
            return loss_at(x)
        assert_gradient(loss_of_weight, original, grad, rng, rtol=1e-5, atol=1e-7, what=var.path)
        var.value[...] = original


# ------------------------------------------------------------------ compute_mask of a custom layer
def test_a_custom_compute_mask_gives_the_output_mask(xp):
    model = gpu_dl.Sequential([gpu_dl.Input((None,), dtype="int32"), layers.Embedding(20, 4, mask_zero=True),
                               DropFirstStep(), MaskedScale()])
    y = to_numpy(model(_ids(xp, PADDED)))
    expected = _embedded(model.layers[0], PADDED)[:, 1:] * (PADDED[:, 1:] != 0)[..., None]
    numpy.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)
    assert model.output_mask is None        # MaskedScale does not support masking: the mask ends there, as in Keras
    shorter = gpu_dl.Sequential(model.layers[:2])
    shorter(_ids(xp, PADDED))
    numpy.testing.assert_array_equal(to_numpy(shorter.output_mask), PADDED[:, 1:] != 0)
    ids = gpu_dl.Input((4,), dtype="int32")
    embedding = layers.Embedding(20, 4, mask_zero=True)
    first, second = TemporalSplit()(embedding(ids))
    assert first._keras_mask.shape == second._keras_mask.shape == (None, 2)
    split = gpu_dl.Model(ids, [MaskedScale()(first), MaskedScale()(second)])
    halves = [to_numpy(h) for h in split(_ids(xp, PADDED))]
    x = _embedded(embedding, PADDED) * (PADDED != 0)[..., None]
    numpy.testing.assert_allclose(halves[0], x[:, :2], rtol=1e-6)
    numpy.testing.assert_allclose(halves[1], x[:, 2:], rtol=1e-6)


# ------------------------------------------------------------------ _keras_mask on symbolic tensors
def test_symbolic_tensors_carry_their_mask():
    ids = gpu_dl.Input((6,), dtype="int32")
    x = layers.Embedding(20, 4, mask_zero=True)(ids)
    mask = x._keras_mask
    assert mask.shape == (None, 6) and mask.dtype == "bool"
    assert layers.Dense(3)(x)._keras_mask is mask
    assert Doubler()(x)._keras_mask is mask and Projected(3)(x)._keras_mask is mask
    assert (x + 1.0)._keras_mask is None                # operations drop masks, as Keras's do
    assert MaskedScale()(x)._keras_mask is None         # no masking of its own, and an operation inside
    assert layers.LSTM(2)(x)._keras_mask is None
    assert layers.LSTM(2, return_sequences=True)(x)._keras_mask is mask
    assert DropFirstStep()(x)._keras_mask.shape == (None, 5)
    assert Sequences()(x)._keras_mask.shape == (None, 6)    # what reached its output inside its call
    assert ids._keras_mask is None
    assert layers.Embedding(20, 4)(ids)._keras_mask is None
    nested = gpu_dl.Sequential([layers.Dense(3), layers.LSTM(2, return_sequences=True)])
    assert nested(x)._keras_mask.shape == (None, 6)
    inner_in = gpu_dl.Input((6, 4))
    inner = gpu_dl.Model(inner_in, layers.LSTM(2)(inner_in))
    assert inner(x)._keras_mask is None


def test_a_symbolic_mask_computes_in_the_graph(xp):
    ids = gpu_dl.Input((None,), dtype="int32")
    x = layers.Embedding(20, 4, mask_zero=True)(ids)
    carried = Sequences()(x)._keras_mask        # the mask reaching a composite layer's output, read from the graph
    model = gpu_dl.Model(ids, [ops.cast(x._keras_mask, "float32"), ops.cast(carried, "float32")])
    direct, through = (to_numpy(y) for y in model(_ids(xp, PADDED)))
    numpy.testing.assert_array_equal(direct, PADDED != 0)
    numpy.testing.assert_array_equal(through, PADDED != 0)
    with pytest.raises(ValueError, match="_keras_mask cannot be written as a config"):
        model.get_config()


# ------------------------------------------------------------------ a mask given to a sublayer
def test_a_mask_given_to_a_sublayer_in_a_traced_call(xp):
    encoder = MaskedEncoder()
    padded = _same_for_padded_and_unpadded(encoder, xp)
    kept = _ids(xp, [[5, 6]])
    numpy.testing.assert_allclose(padded[0], to_numpy(encoder.lstm(encoder.embedding(kept)))[0], rtol=1e-5, atol=1e-6)


def test_a_mask_given_in_a_functional_model(xp):
    ids = gpu_dl.Input((None,), dtype="int32")
    x = layers.Embedding(20, 4)(ids)                # no mask of its own
    model = gpu_dl.Model(ids, layers.LSTM(3)(x, mask=ops.not_equal(ids, 0)))
    _same_for_padded_and_unpadded(model, xp)
    with pytest.raises(TypeError, match="`mask` must be a symbolic tensor"):
        layers.LSTM(3)(x, mask=numpy.ones((2, 4), dtype=bool))


# ------------------------------------------------------------------ several tensor arguments
def _bce(targets, logits, weights=1.0):
    losses = numpy.maximum(logits, 0) - logits * targets + numpy.log1p(numpy.exp(-numpy.abs(logits)))
    return (losses * weights).mean()


def _softmax(z):
    e = numpy.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_a_layer_of_several_tensor_arguments_on_arrays(xp, rng):
    targets = rng.random((4, 10)).astype("float32")
    logits = rng.standard_normal((4, 10)).astype("float32")
    weights = rng.random((4, 10)).astype("float32")
    endpoint = LogisticEndpoint()
    for args, kwargs, w in [((targets, logits), {}, 1.0), ((targets,), {"logits": logits}, 1.0),
                            ((targets, logits), {"sample_weights": weights}, weights),
                            ((targets, logits, weights), {}, weights)]:
        args = tuple(xp.asarray(a) for a in args)
        y = endpoint(*args, **{k: xp.asarray(v) for k, v in kwargs.items()})
        numpy.testing.assert_allclose(to_numpy(y), _softmax(logits), rtol=1e-5, atol=1e-6)
        assert len(endpoint.losses) == 1
        assert float(to_numpy(endpoint.losses[0])) == pytest.approx(_bce(targets, logits, w), rel=1e-5)


def test_a_functional_model_with_an_endpoint_layer_trains(xp, rng):
    model = classes.endpoint_model(gpu_dl)
    data = {"inputs": rng.random((16, 3)).astype("float32"), "targets": rng.random((16, 10)).astype("float32")}
    model.compile(optimizer="adam")
    kernel, bias = model.get_weights()
    logits = data["inputs"] @ kernel + bias
    assert model.train_on_batch(data) == pytest.approx(_bce(data["targets"], logits), rel=1e-5)
    numpy.testing.assert_allclose(model.predict(data, verbose=0),
                                  _softmax(data["inputs"] @ model.get_weights()[0] + model.get_weights()[1]),
                                  rtol=1e-5, atol=1e-6)
    history = model.fit(data, epochs=20, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < history[0]


def test_gradients_through_a_call_of_two_tensors(xp, rng):
    gate = Gate(3, dtype="float64")
    x, context = xp.asarray(rng.standard_normal((4, 5))), xp.asarray(rng.standard_normal((4, 3)))
    y = gate(x, context, training=True)
    kernel, bias = gate.get_weights()
    expected = (to_numpy(x) @ kernel + bias) / (1 + numpy.exp(-to_numpy(context)))
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx, dcontext = gate.backward(w)
    assert_gradient(lambda v: (gate(v, context) * w).sum(), x, dx, rng)
    assert_gradient(lambda v: (gate(x, context=v) * w).sum(), context, dcontext, rng, what="context")
    # In a functional model: one node of two inputs, each given its gradient.
    a, b = gpu_dl.Input((5,), dtype="float64"), gpu_dl.Input((3,), dtype="float64")
    model = gpu_dl.Model([a, b], gate(a, context=b))
    numpy.testing.assert_allclose(to_numpy(model([x, context])), expected, rtol=1e-12)
    model.forward([x, context], training=True)
    da, db = model.backward(w)
    numpy.testing.assert_allclose(to_numpy(da), to_numpy(dx), rtol=1e-12)
    numpy.testing.assert_allclose(to_numpy(db), to_numpy(dcontext), rtol=1e-12)


def test_constant_arguments_are_traced_per_value(xp, rng):
    layer = Scaled()
    x = rng.standard_normal((2, 3)).astype("float32")
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x), scale=2.0)), 2 * x, rtol=1e-6)
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x), 3.0)), 3 * x, rtol=1e-6)
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), x, rtol=1e-6)
    assert len({key for key in layer._traces}) == 3
    inputs = gpu_dl.Input((3,))
    model = gpu_dl.Model(inputs, layer(inputs, scale=-1.5))
    numpy.testing.assert_allclose(to_numpy(model(xp.asarray(x))), -1.5 * x, rtol=1e-6)


def test_the_errors_of_calls_of_several_arguments(xp):
    x = xp.ones((2, 10), dtype="float32")
    with pytest.raises(TypeError, match=r"LogisticEndpoint.*logits.*call\(targets, logits, sample_weights=None\)"):
        LogisticEndpoint()(x)
    with pytest.raises(TypeError, match="argument 'scale' is a ndarray.*numbers, strings"):
        Scaled()(x, scale=numpy.array(2.0))
    with pytest.raises(TypeError, match="mix of symbolic tensors"):
        LogisticEndpoint()(gpu_dl.Input((10,)), x)
    with pytest.raises(NotImplementedError, match="add_metric"):
        LogisticEndpoint().add_metric(x)


def test_a_metric_updated_in_a_call_is_updated_and_logged(rng):
    class Tracked(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.accuracy = gpu_dl.metrics.BinaryAccuracy(name="hits")

        def call(self, targets, logits):
            self.add_loss(ops.mean(ops.square(targets - logits)))
            self.accuracy.update_state(targets, logits)
            return logits

    inputs, targets = gpu_dl.Input((3,)), gpu_dl.Input((2,))
    model = gpu_dl.Model([inputs, targets], Tracked()(targets, layers.Dense(2)(inputs)))
    model.compile(optimizer="adam")
    data = [rng.random((4, 3)).astype("float32"), (rng.random((4, 2)) > 0.5).astype("float32")]
    kernel, bias = model.get_weights()
    hits = float(((data[0] @ kernel + bias > 0.5) == data[1]).mean())
    assert model.fit(data, verbose=0).history["hits"] == pytest.approx([hits])     # before the step's update


def test_a_model_called_with_its_targets_as_a_second_argument_says_what_it_takes(xp):
    # The masking guide's model(x, y) of its TemporalSoftmax example: y lands in `training` (Keras refuses it too).
    ids = gpu_dl.Input((None,), dtype="int32")
    model = gpu_dl.Model(ids, TemporalSoftmax()(layers.Dense(1)(layers.Embedding(10, 4, mask_zero=True)(ids))))
    sequential = gpu_dl.Sequential([layers.Embedding(10, 4, mask_zero=True), Doubler()])
    for m in (model, sequential):
        with pytest.raises(TypeError, match="`training` must be True, False or None, got ndarray"):
            m(_ids(xp, PADDED), numpy.ones((3, 4, 1)))


def test_calls_of_several_arguments_and_given_masks_are_saved_and_loaded(xp, rng, tmp_path):
    endpoint = classes.endpoint_model(gpu_dl)
    endpoint.compile(optimizer="adam")
    endpoint.save(tmp_path / "endpoint.keras")
    loaded = gpu_dl.saving.load_model(tmp_path / "endpoint.keras",
                                      custom_objects={"LogisticEndpoint": LogisticEndpoint})
    data = {"inputs": rng.random((4, 3)).astype("float32"), "targets": rng.random((4, 10)).astype("float32")}
    numpy.testing.assert_allclose(loaded.predict(data, verbose=0), endpoint.predict(data, verbose=0), rtol=1e-6)
    assert loaded.train_on_batch(data) == pytest.approx(endpoint.train_on_batch(data), rel=1e-6)
    ids = gpu_dl.Input((None,), dtype="int32")
    x = layers.Embedding(20, 4)(ids)
    masked = gpu_dl.Model(ids, layers.LSTM(3)(x, mask=ops.not_equal(ids, 0)))
    masked.save(tmp_path / "masked.keras")
    back = gpu_dl.saving.load_model(tmp_path / "masked.keras")
    numpy.testing.assert_allclose(to_numpy(back(_ids(xp, PADDED))), to_numpy(masked(_ids(xp, PADDED))), rtol=1e-6)
    _same_for_padded_and_unpadded(back, xp)


def test_an_untraceable_call_on_symbolic_tensors_takes_the_class_s_output_shape(xp, rng):
    class OnArrays(layers.Layer):
        def call(self, inputs):
            return numpy.tanh(to_numpy(inputs))      # NumPy on the input: it cannot be traced

        def compute_output_shape(self, input_shape):
            return input_shape

    inputs = gpu_dl.Input((None, 3))
    y = OnArrays()(inputs)
    assert y.shape == (None, None, 3)
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    numpy.testing.assert_allclose(to_numpy(gpu_dl.Model(inputs, y)(xp.asarray(x))), numpy.tanh(x), rtol=1e-6)


def test_a_call_of_two_tensors_inside_a_traced_call(xp, rng):
    class Gated(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.gate = Gate(4, dtype=self.dtype)

        def call(self, inputs):
            return self.gate(inputs, context=ops.tanh(inputs[:, :4]))

    layer = Gated(dtype="float64")
    x = xp.asarray(rng.standard_normal((3, 5)))
    y = layer(x, training=True)
    kernel, bias = layer.get_weights()
    host = to_numpy(x)
    expected = (host @ kernel + bias) / (1 + numpy.exp(-numpy.tanh(host[:, :4])))
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)
    assert_gradient(lambda v: (layer(v) * w).sum(), x, dx, rng)
