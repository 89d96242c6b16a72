"""Layers that call a loss on their symbolic tensors, and data every built-in loss takes, written once for gpu_dl
and Keras 3 (``lib`` is either): the cases of tests/test_symbolic_losses.py and its Keras-oracle twin."""
import numpy

N, C, F, STEPS = 6, 4, 3, 5


def endpoint(lib, loss):
    """A layer adding ``loss(targets, predictions, weights)`` and giving the predictions on."""
    class LossEndpoint(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.loss_fn = loss

        def call(self, targets, predictions, weights=None):
            self.add_loss(self.loss_fn(targets, predictions, weights))
            return predictions * 1.0
    return LossEndpoint


def function_endpoint(lib, fn, **settings):
    """A layer adding the mean of the loss function ``fn(targets, predictions, **settings)``."""
    class FunctionEndpoint(lib.layers.Layer):
        def call(self, targets, predictions):
            self.add_loss(lib.ops.mean(fn(targets, predictions, **settings)))
            return predictions * 1.0
    return FunctionEndpoint


def logistic_endpoint(lib):
    """The endpoint layer of Keras's "Training & evaluation with the built-in methods" guide, as written there."""
    class LogisticEndpoint(lib.layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.loss_fn = lib.losses.BinaryCrossentropy(from_logits=True)

        def call(self, targets, logits, sample_weights=None):
            loss = self.loss_fn(targets, logits, sample_weights)
            self.add_loss(loss)
            return lib.ops.softmax(logits)
    return LogisticEndpoint


def guide_model(lib):
    """The guide's model: inputs and targets in, predictions out; compiled without a loss."""
    inputs = lib.Input(shape=(3,), name="inputs")
    targets = lib.Input(shape=(10,), name="targets")
    logits = lib.layers.Dense(10)(inputs)
    predictions = logistic_endpoint(lib)(name="predictions")(targets, logits)
    return lib.Model(inputs=[inputs, targets], outputs=predictions)


# name: (constructor arguments, the activation making sensible predictions from a Dense, the targets' kind)
SPECS = {
    "MeanSquaredError": ({}, None, "normal"),
    "MeanAbsoluteError": ({}, None, "normal"),
    "MeanAbsolutePercentageError": ({}, None, "normal"),
    "MeanSquaredLogarithmicError": ({}, "softplus", "uniform"),
    "Huber": ({"delta": 0.5}, None, "normal"),
    "LogCosh": ({}, None, "normal"),
    "CosineSimilarity": ({}, None, "normal"),
    "Hinge": ({}, None, "binary"),
    "SquaredHinge": ({}, None, "binary"),
    "CategoricalHinge": ({}, None, "onehot"),
    "KLDivergence": ({}, "softmax", "probs"),
    "Poisson": ({}, "softplus", "uniform"),
    "BinaryCrossentropy": ({"from_logits": True, "label_smoothing": 0.1}, None, "uniform"),
    "CategoricalCrossentropy": ({}, "softmax", "onehot"),
    "SparseCategoricalCrossentropy": ({"from_logits": True}, None, "ids"),
    "BinaryFocalCrossentropy": ({"apply_class_balancing": True}, "sigmoid", "binary"),
    "CategoricalFocalCrossentropy": ({}, "softmax", "onehot"),
    "CategoricalGeneralizedCrossEntropy": ({}, "softmax", "ids"),
    "Dice": ({}, "sigmoid", "binary"),
    "Tversky": ({"alpha": 0.3, "beta": 0.7}, "sigmoid", "binary"),
    "Circle": ({}, None, "pairs"),
    "CTC": ({}, None, "ctc"),
}


def targets(kind, rng, dtype="float32"):
    """``(targets, their per-sample shape, their dtype)`` of ``kind`` for a batch of N."""
    if kind == "normal":
        return rng.standard_normal((N, C)).astype(dtype), (C,), dtype
    if kind == "uniform":
        return rng.random((N, C)).astype(dtype), (C,), dtype
    if kind == "binary":
        return rng.integers(0, 2, (N, C)).astype(dtype), (C,), dtype
    if kind == "onehot":
        return numpy.eye(C, dtype=dtype)[rng.integers(0, C, N)], (C,), dtype
    if kind == "probs":
        e = numpy.exp(rng.standard_normal((N, C)))
        return (e / e.sum(1, keepdims=True)).astype(dtype), (C,), dtype
    if kind == "ids":
        return rng.integers(0, C, N).astype("int32"), (), "int32"
    if kind == "pairs":      # every sample has a partner of its class and one of the other
        return numpy.array([0, 1, 0, 1, 1, 0], "int32"), (), "int32"
    if kind == "ctc":
        return rng.integers(1, C, (N, 2)).astype("int32"), (2,), "int32"
    raise ValueError(kind)


def features_shape(name):
    """The per-sample shape of the features a Dense turns into predictions for loss ``name``."""
    return (STEPS, F) if name == "CTC" else (F,)


def predictions(name, rng, dtype="float64"):
    """Predictions loss ``name`` takes, for gradient checks: in the range its activation in SPECS gives."""
    activation = SPECS[name][1]
    z = rng.standard_normal((N,) + ((STEPS, C) if name == "CTC" else (C,)))
    if activation == "softplus":
        z = numpy.log1p(numpy.exp(z))
    elif activation == "sigmoid":
        z = 1.0 / (1.0 + numpy.exp(-z))
    elif activation == "softmax":
        z = numpy.exp(z) / numpy.exp(z).sum(-1, keepdims=True)
    elif name == "Circle":
        z = z / numpy.linalg.norm(z, axis=-1, keepdims=True)
    return z.astype(dtype)


def endpoint_model(lib, name, reduction, weighted, **settings):
    """features -> Dense (SPECS's activation) -> a layer adding loss ``name`` of the targets (and weights) and
    those predictions; compiled by the caller without a loss."""
    arguments, activation, kind = SPECS[name]
    _, target_shape, target_dtype = targets(kind, numpy.random.default_rng(0))
    x = lib.Input(features_shape(name), name="x")
    t = lib.Input(target_shape, dtype=target_dtype, name="t")
    inputs = [x, t]
    p = lib.layers.Dense(C, activation=activation, name="dense")(x)
    loss = getattr(lib.losses, name)(reduction=reduction, **arguments, **settings)
    if weighted:
        w = lib.Input((), name="w")
        inputs.append(w)
        out = endpoint(lib, loss)(name="endpoint")(t, p, w)
    else:
        out = endpoint(lib, loss)(name="endpoint")(t, p)
    return lib.Model(inputs, out)


def endpoint_data(name, rng, weighted):
    """The dict of features, targets (and weights) ``endpoint_model`` takes."""
    y, _, _ = targets(SPECS[name][2], rng)
    data = {"x": rng.standard_normal((N,) + features_shape(name)).astype("float32"), "t": y}
    if weighted:
        data["w"] = rng.random(N).astype("float32")
    return data
