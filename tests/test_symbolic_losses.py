"""Losses called on symbolic tensors in a layer's call (``self.add_loss(self.loss_fn(targets, logits))``), on both
backends: every built-in loss object and loss function gives what it gives on arrays, its gradient through the traced
graph against float64 finite differences, the result shapes its arrays have, the masks Keras applies, NumPy
expectations for the guide's endpoint layer, and clear errors where a loss cannot train through a graph. Against
Keras itself: tests/test_keras_oracle_symbolic_losses.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, losses, ops
from gpu_dl.backend import to_numpy

from gradcheck import assert_gradient
from symbolic_loss_cases import (C, N, SPECS, endpoint, endpoint_data, endpoint_model, function_endpoint,
                                 guide_model, predictions, targets)

REDUCTIONS = [("sum_over_batch_size", True), ("sum", False), ("mean_with_sample_weight", True), ("none", True)]
CASES = [(name, reduction, weighted) for name in SPECS for reduction, weighted in REDUCTIONS]


def _added(layer):
    return sum(float(to_numpy(v).sum()) for v in layer.losses)


def _arguments(xp, t, p, w):
    return tuple(xp.asarray(a) for a in ((t, p) if w is None else (t, p, w)))


@pytest.mark.parametrize("name, reduction, weighted", CASES, ids=[f"{n}-{r}-{w}" for n, r, w in CASES])
def test_builtin_loss_object_value_and_gradient(xp, rng, name, reduction, weighted):
    settings, _, kind = SPECS[name]
    t, _, _ = targets(kind, rng, dtype="float64")
    p = predictions(name, rng)
    w = rng.random(N) if weighted else None
    loss = getattr(losses, name)(reduction=reduction, dtype="float64", **settings)
    layer = endpoint(gpu_dl, loss)(dtype="float64")
    out = layer(*_arguments(xp, t, p, w))
    numpy.testing.assert_allclose(to_numpy(out), p)
    expected = to_numpy(loss(*_arguments(xp, t, p, w)))
    assert len(layer.losses) == 1
    numpy.testing.assert_allclose(to_numpy(layer.losses[0]), expected, rtol=1e-12, atol=1e-12)
    layer(*_arguments(xp, t, p, w), training=True)
    gradients = layer.backward(xp.zeros(p.shape))
    assert not weighted or gradients[2] is None         # weights are data
    assert (gradients[0] is None) != loss.has_target_grad     # targets too, unless the loss trains through them

    def total(x):
        layer(*_arguments(xp, t, x, w))
        return _added(layer)
    assert_gradient(total, xp.asarray(p), gradients[1], rng, rtol=1e-5, atol=1e-8, what=name)
    if loss.has_target_grad:
        def total_of_targets(x):
            layer(*_arguments(xp, x, p, w))
            return _added(layer)
        assert_gradient(total_of_targets, xp.asarray(t), gradients[0], rng, rtol=1e-5, atol=1e-8, what=name)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_symbolic_result_shapes_are_those_of_the_arrays(rng, name):
    settings, _, kind = SPECS[name]
    t, target_shape, target_dtype = targets(kind, rng)
    p = predictions(name, rng, dtype="float32")
    y_true = gpu_dl.Input(target_shape, dtype=target_dtype)
    y_pred = gpu_dl.Input(p.shape[1:])
    weight = gpu_dl.Input(())
    for reduction in ("sum_over_batch_size", "none"):
        loss = getattr(losses, name)(reduction=reduction, **settings)
        for tensor, array in ((loss(y_true, y_pred), loss(t, p)),
                              (loss(y_true, y_pred, weight), loss(t, p, numpy.ones(N, "float32")))):
            assert tensor.dtype == "float32"
            assert tensor.shape == tuple(None if i == 0 and len(array.shape) and d == N else d
                                         for i, d in enumerate(array.shape))
    fn = losses.FUNCTIONS[type(loss)]
    tensor, array = fn(y_true, y_pred, **_function_settings(name)), fn(t, p, **_function_settings(name))
    assert tensor.shape == (None,) * bool(array.ndim) + tuple(array.shape[1:])


def _function_settings(name):
    """SPECS's settings of the class, as its function takes them (its q has no default there, as in Keras)."""
    return dict(SPECS[name][0], **({"q": 0.5} if name == "CategoricalGeneralizedCrossEntropy" else {}))


@pytest.mark.parametrize("cls", sorted(losses.FUNCTIONS, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_loss_function_values_dtype_and_gradient(xp, rng, cls):
    fn = losses.FUNCTIONS[cls]
    settings = _function_settings(cls.__name__)
    t, _, _ = targets(SPECS[cls.__name__][2], rng, dtype="float64")
    p = predictions(cls.__name__, rng)
    layer = function_endpoint(gpu_dl, fn, **settings)(dtype="float64")
    layer(xp.asarray(t), xp.asarray(p), training=True)
    expected = numpy.mean(to_numpy(fn(xp.asarray(t), xp.asarray(p), **settings)))
    assert float(to_numpy(layer.losses[0])) == pytest.approx(expected, rel=1e-12, abs=1e-14)
    assert layer.losses[0].dtype == numpy.float64        # a loss function computes in y_pred's dtype
    gradient = layer.backward(xp.zeros(p.shape))[1]

    def total(x):
        layer(xp.asarray(t), x)
        return _added(layer)
    assert_gradient(total, xp.asarray(p), gradient, rng, rtol=1e-5, atol=1e-8, what=fn.__name__)


def test_guide_endpoint_loss_against_numpy(xp, rng):
    """The guide's LogisticEndpoint: binary cross-entropy from logits, weighted, averaged over the batch."""
    layer = guide_model(gpu_dl).get_layer("predictions")
    t, z, w = rng.random((N, 10)), rng.standard_normal((N, 10)), rng.random(N)
    for weights in (None, w):
        y = layer(*_arguments(xp, t.astype("float32"), z.astype("float32"), weights))
        values = (numpy.maximum(z, 0) - z * t + numpy.log1p(numpy.exp(-numpy.abs(z)))).mean(-1)
        expected = (values * (1.0 if weights is None else weights)).mean()
        assert float(to_numpy(layer.losses[0])) == pytest.approx(expected, rel=1e-6)
        numpy.testing.assert_allclose(to_numpy(y), numpy.exp(z) / numpy.exp(z).sum(-1, keepdims=True), rtol=1e-5)


def test_guide_model_trains_on_the_added_loss(xp, rng):
    model = guide_model(gpu_dl)
    model.compile(optimizer="adam")
    data = {"inputs": rng.random((3, 3)).astype("float32"), "targets": rng.random((3, 10)).astype("float32")}
    kernel, bias = model.get_weights()
    z = data["inputs"] @ kernel + bias
    t = data["targets"]
    first = (numpy.maximum(z, 0) - z * t + numpy.log1p(numpy.exp(-numpy.abs(z)))).mean()
    history = model.fit(data, epochs=3, verbose=0).history["loss"]
    assert history[0] == pytest.approx(first, rel=1e-6)
    assert history[2] < history[1] < history[0]
    assert not numpy.allclose(model.get_weights()[0], kernel)


def test_mask_reaching_the_predictions_leaves_padded_steps_out(xp, rng):
    ids = numpy.array([[3, 1, 0, 0], [2, 2, 5, 0], [1, 0, 0, 0]])
    y = rng.standard_normal((3, 4, C)).astype("float32")
    tokens = gpu_dl.Input((4,), dtype="int32")
    t = gpu_dl.Input((4, C))
    p = layers.Dense(C)(layers.Embedding(6, 3, mask_zero=True)(tokens))
    model = gpu_dl.Model([tokens, t], endpoint(gpu_dl, losses.MeanSquaredError())()(t, p))
    model.compile("sgd")
    out = model.predict([ids, y], verbose=0)
    per_step = ((out - y) ** 2).mean(-1)
    valid = ids != 0
    assert model.evaluate([ids, y], verbose=0) == pytest.approx(per_step[valid].mean(), rel=1e-6)
    assert per_step[valid].mean() != pytest.approx(per_step.mean(), rel=1e-3)


def test_ignore_class_and_integer_targets_as_constants(xp, rng):
    labels = numpy.array([0, 2, 1, 2, 3, 2])
    z = rng.standard_normal((N, C))
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2, dtype="float64")

    class Constant(layers.Layer):
        def call(self, logits):
            self.add_loss(loss(labels, logits))      # the targets, an array: a constant of the graph
            return logits * 1.0
    layer = Constant(dtype="float64")
    layer(xp.asarray(z), training=True)
    log_probs = z - numpy.log(numpy.exp(z).sum(-1, keepdims=True))
    kept = labels != 2
    expected = -log_probs[kept, labels[kept]].mean()
    assert float(to_numpy(layer.losses[0])) == pytest.approx(expected, rel=1e-12)
    gradient = layer.backward(xp.zeros(z.shape))
    assert not numpy.any(to_numpy(gradient)[~kept])

    def total(x):
        layer(x)
        return _added(layer)
    assert_gradient(total, xp.asarray(z), gradient, rng, rtol=1e-6, atol=1e-9)


def test_model_trains_through_a_loss_in_a_layer(xp, rng):
    model = endpoint_model(gpu_dl, "CategoricalCrossentropy", "sum_over_batch_size", True)
    model.compile(gpu_dl.optimizers.SGD(learning_rate=0.5))
    data = endpoint_data("CategoricalCrossentropy", rng, True)
    history = model.fit(data, epochs=4, batch_size=N, verbose=0).history["loss"]
    assert history == sorted(history, reverse=True) and history[-1] < history[0]


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_binary_crossentropy_trains_through_targets_computed_from_weights(xp, rng, from_logits, smoothing):
    """Keras's guide hands its LogisticEndpoint (logits, targets), which its call takes as (targets, logits): the
    loss's targets are a Dense layer's output, and Keras trains that layer through them."""
    loss = losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=smoothing, dtype="float64")
    assert loss.has_target_grad and not losses.MeanSquaredError().has_target_grad
    layer = endpoint(gpu_dl, loss)(dtype="float64")
    t = rng.standard_normal((N, C))                           # computed targets: any real numbers
    p = rng.random((N, C)) * 0.8 + 0.1 if not from_logits else rng.standard_normal((N, C))
    w = rng.random(N)
    layer(*_arguments(xp, t, p, w), training=True)
    smoothed = t * (1 - smoothing) + 0.5 * smoothing
    if from_logits:
        values = numpy.maximum(p, 0) - p * smoothed + numpy.log1p(numpy.exp(-numpy.abs(p)))
    else:
        values = -(smoothed * numpy.log(p) + (1 - smoothed) * numpy.log(1 - p))
    assert _added(layer) == pytest.approx((values.mean(-1) * w).mean(), rel=1e-12)
    gradients = layer.backward(xp.zeros(p.shape))
    expected = -(p if from_logits else numpy.log(p) - numpy.log(1 - p)) * (1 - smoothing) / C * w[:, None] / N
    numpy.testing.assert_allclose(to_numpy(gradients[0]), expected, rtol=1e-12)

    def total(x):
        layer(*_arguments(xp, x, p, w))
        return _added(layer)
    assert_gradient(total, xp.asarray(t), gradients[0], rng, rtol=1e-6, atol=1e-9, what="y_true")


def test_targets_or_weights_computed_from_weights_are_refused(rng):
    x = gpu_dl.Input((C,))
    dense = layers.Dense(C, name="teacher")(x)
    with pytest.raises(ValueError, match=r"Loss 'mean_squared_error'.*y_true is computed from the trainable "
                                         r"weights of layer 'teacher' \(Dense\)"):
        losses.MeanSquaredError()(dense, x)
    with pytest.raises(ValueError, match=r"sample_weight is computed from the trainable weights of layer 'teacher'"):
        losses.MeanSquaredError()(x, x, ops.sum(dense, axis=-1))
    Endpoint = endpoint(gpu_dl, losses.MeanSquaredError())
    with pytest.raises(ValueError, match=r"Layer 'student' \(LossEndpoint\): its argument tensor #0 .*y_true or "
                                         r"sample_weight.* layer 'teacher'"):
        Endpoint(name="student")(dense, x)
    Endpoint(name="ok")(x, dense)                   # the predictions may come from anywhere
    frozen = layers.Dense(C, trainable=False)
    Endpoint()(frozen(x), x)                        # weights that do not train need no gradient


def test_function_settings_must_be_constants_and_saving_is_refused(rng):
    x, y = gpu_dl.Input((C,)), gpu_dl.Input((C,))
    with pytest.raises(TypeError, match=r"Loss function 'huber' on symbolic tensors takes its argument 'delta' as a "
                                        r"constant"):
        losses.huber(x, y, delta=x)
    with pytest.raises(TypeError, match=r"Loss function 'circle' on symbolic tensors takes the arguments of its "
                                        r"class Circle"):
        losses.circle(x, y, ref_labels=numpy.zeros(3))
    model = gpu_dl.Model([x, y], losses.mean_squared_error(x, layers.Dense(C)(y)))
    assert model.predict([numpy.ones((2, C)), numpy.ones((2, C))], verbose=0).shape == (2,)
    with pytest.raises(NotImplementedError, match=r"Loss 'mean_squared_error'.*cannot be saved"):
        model.get_config()
